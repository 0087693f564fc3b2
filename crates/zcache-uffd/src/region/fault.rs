//! The fault handler: its thread, missing faults (`UFFDIO_COPY` from zcache or the
//! spill file, `UFFDIO_ZEROPAGE`) and write-protect faults on clean pages.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::config::FaultTiming;
use super::state::*;
use crate::sys::{self, UffdMsg};

impl Inner {
    fn handle(&self, msg: &UffdMsg, buf: &mut PageBuf) {
        if msg.event != sys::EVENT_PAGEFAULT {
            return;
        }
        let addr = (msg.address as usize) & !(PAGE - 1);
        if addr < self.base || addr >= self.base + self.len {
            return;
        }
        let p = (addr - self.base) / PAGE;
        let flags = msg.flags;
        let t0 = if self.record_latency {
            Some((Instant::now(), thread_cpu_ns()))
        } else {
            None
        };
        loop {
            let s = self.state[p].load(Ordering::Acquire);
            if s == BUSY {
                // An evictor owns the page: it wakes the range after publishing the
                // page's next state, and this thread's message was queued before
                // (it is being read now), so the wake reaches it; it then faults
                // again and that fault is served here.
                bump(&self.c.deferred);
                return;
            }
            let done = if flags & sys::PAGEFAULT_FLAG_WP != 0 {
                self.serve_wp(p, s)
            } else {
                self.serve_missing(p, s, flags & sys::PAGEFAULT_FLAG_WRITE != 0, buf, t0)
            };
            if done {
                self.referenced[p].store(true, Ordering::Relaxed);
                // Direct reclaim: over the limit (the background reclaimer lagging),
                // the handler evicts down to it before it serves the next fault, so
                // the limit holds within the faults already in flight. It never
                // faults on the region: it reads only pages it owns while resident.
                let limit = self.limit.load(Ordering::Relaxed);
                if self.direct_reclaim && self.resident.load(Ordering::Relaxed) > limit {
                    let r = self.enforce(limit);
                    self.c.direct.fetch_add(r.dropped(), Ordering::Relaxed);
                }
                return;
            }
            // The state changed under us (an evictor took the page): look again.
        }
    }

    /// Serves a missing fault; `false` if the page's state changed before it was taken.
    fn serve_missing(
        &self,
        p: usize,
        s: u8,
        write: bool,
        buf: &mut PageBuf,
        t0: Option<(Instant, u64)>,
    ) -> bool {
        let addr = self.addr(p);
        match s {
            UNTOUCHED | OUT_ZERO => {
                if !self.take(p, s) {
                    return false;
                }
                bump(&self.c.faults);
                match self.uffd.zeropage(addr) {
                    Ok(()) => {
                        bump(&self.c.zero_fills);
                        if s == OUT_ZERO {
                            bump(&self.c.refaults);
                        }
                        // A zero-page pte is copied on write without a uffd fault: the
                        // page is dirty (unknown) from now on.
                        self.publish(p, DIRTY);
                        self.became_resident();
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.publish(p, DIRTY);
                        self.became_resident();
                        self.wake(p);
                    }
                    Err(_) => {
                        self.fault_failed(p, s);
                    }
                }
                true
            }
            OUT_Z | OUT_SPILL => {
                if !self.take(p, s) {
                    return false;
                }
                bump(&self.c.faults);
                bump(&self.c.refaults);
                let loaded = if s == OUT_Z {
                    matches!(self.area.load(p as u64, &mut buf.0), Ok(true))
                } else {
                    bump(&self.c.spill_reads);
                    self.spill.as_ref().is_some_and(|f| {
                        f.file.read_exact_at(&mut buf.0, (p * PAGE) as u64).is_ok()
                    })
                };
                if !loaded {
                    self.fault_failed(p, s);
                    return true;
                }
                // A read fault comes back write-protected with its copy kept (clean); a
                // write fault, or a read fault that `clean_copies` gives no copy, comes
                // back writable and the copy is dropped after the copy-in succeeded
                // (until then it is the only copy).
                let keep = !write && self.keep_copy(p);
                let copy_start = t0.map(|_| Instant::now());
                let copied = self.uffd.copy(addr, &buf.0, keep);
                let copy_ns =
                    copy_start.map_or(0, |t| t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                match copied {
                    Ok(()) => {
                        if !keep {
                            if s == OUT_Z {
                                let _ = self.area.invalidate_page(p as u64);
                            }
                            if !write {
                                bump(&self.c.copies_not_kept);
                            }
                            self.publish(p, DIRTY);
                        } else {
                            self.clean.fetch_add(1, Ordering::Relaxed);
                            self.publish(p, if s == OUT_Z { CLEAN } else { CLEAN_SPILL });
                        }
                        if let (Some((wall, cpu)), OUT_Z) = (t0, s) {
                            let t = FaultTiming {
                                wall_ns: wall.elapsed().as_nanos().min(u32::MAX as u128) as u32,
                                cpu_ns: thread_cpu_ns().saturating_sub(cpu).min(u32::MAX as u64)
                                    as u32,
                                copy_wall_ns: copy_ns,
                            };
                            if let Ok(mut v) = self.latencies.lock() {
                                v.push(t);
                            }
                        }
                        self.became_resident();
                    }
                    Err(_) => {
                        self.fault_failed(p, s);
                    }
                }
                true
            }
            // Resident already: a second thread's fault on a page the first one's
            // copy served. The copy woke it already; wake again in case it had not
            // queued yet.
            _ => {
                bump(&self.c.stale);
                self.wake(p);
                true
            }
        }
    }

    /// A fault the handler could not serve: counted, the page's state put back as it
    /// was (`s`), and the faulting thread woken so that it faults again.
    fn fault_failed(&self, p: usize, s: u8) {
        bump(&self.c.fault_errors);
        self.publish(p, s);
        self.wake(p);
    }

    /// Serves a write-protect fault; `false` if the state changed before it was taken.
    fn serve_wp(&self, p: usize, s: u8) -> bool {
        let addr = self.addr(p);
        match s {
            CLEAN | CLEAN_SPILL => {
                if !self.take(p, s) {
                    return false;
                }
                bump(&self.c.wp_faults);
                self.verdicts.note(true);
                // Remembered for `CleanCopies::Adaptive`: this page's next read fault
                // keeps no copy.
                self.wrote[p].store(true, Ordering::Relaxed);
                // Un-protect first (this wakes the writer), drop the kept copy next:
                // while the page is BUSY nobody reads the copy, and if un-protecting
                // failed the copy is still good and the page stays clean.
                match self.uffd.writeprotect(addr, PAGE, false) {
                    Ok(()) => {
                        if s == CLEAN {
                            let _ = self.area.invalidate_page(p as u64);
                        }
                        self.clean.fetch_sub(1, Ordering::Relaxed);
                        self.publish(p, DIRTY);
                    }
                    Err(_) => {
                        self.fault_failed(p, s);
                    }
                }
                true
            }
            DIRTY => {
                // Stale, or an eviction that gave up could not un-protect: make sure
                // the page is writable (this also wakes).
                bump(&self.c.stale);
                if self.uffd.writeprotect(addr, PAGE, false).is_err() {
                    self.wake(p);
                }
                true
            }
            _ => {
                // Not present any more (an eviction dropped it after this write
                // faulted): the woken thread retries and takes a missing fault.
                bump(&self.c.stale);
                self.wake(p);
                true
            }
        }
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` into `ts`, valid for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn pin_to(cpu: usize) {
    // SAFETY: `cpu_set_t` is plain data (all zeros is the empty set); CPU_SET writes a
    // bit inside it (it ignores CPUs beyond the set's size); sched_setaffinity(0, ..)
    // reads the set for the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

pub(super) fn handler_loop(inner: Arc<Inner>, cpu: Option<usize>) {
    if let Some(c) = cpu {
        pin_to(c);
    }
    let mut msgs = [UffdMsg::ZERO; 32];
    let mut buf = PageBuf::new();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: inner.uffd.raw(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: inner.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll(2) reads and writes exactly the two `pollfd`s of `fds`, valid
        // for the call; both descriptors are open for as long as `inner` lives.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        match inner.uffd.read_msgs(&mut msgs) {
            Ok(n) => {
                for m in &msgs[..n] {
                    inner.handle(m, &mut buf);
                }
            }
            Err(_) => return,
        }
    }
}
