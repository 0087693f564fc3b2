//! The region: mapping, page states, the fault handler, eviction, the resident limit.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zcache::{SwapArea, Zcache};
use zpool::PageSource;

use crate::error::RegionError;
use crate::sys::{self, Uffd, UffdMsg};

/// The page size the region works in: this host's (x86_64) 4 KiB pages.
pub const PAGE: usize = 4096;

// The region hands zcache its pages as they are: zcache must be built for the same size.
// (A 16 or 64 KiB host would build both for its page size; this crate is written and
// tested for 4 KiB only.)
const _: () = assert!(
    PAGE == zcache::PAGE_SIZE,
    "zcache-uffd works in 4 KiB pages: build zcache without page-16k / page-64k"
);

// Page states (one `AtomicU8` per page). `BUSY` is the only exclusive one: whoever moves a
// page into `BUSY` (the handler thread, or one evictor) owns its transition, does the
// ioctls, publishes the next state with a release store and then wakes the page's
// waiters. See the crate docs for why every interleaving is safe.
/// Never populated: no data anywhere (a fault maps the zero page).
const UNTOUCHED: u8 = 0;
/// Resident and writable; the mapping holds the only copy.
const DIRTY: u8 = 1;
/// Resident, write-protected, and an identical compressed copy is in zcache.
const CLEAN: u8 = 2;
/// Resident, write-protected, and an identical copy is in the spill file.
const CLEAN_SPILL: u8 = 3;
/// Not present; the data is in zcache.
const OUT_Z: u8 = 4;
/// Not present; the data is in the spill file.
const OUT_SPILL: u8 = 5;
/// Not present; the data is all zero.
const OUT_ZERO: u8 = 6;
/// A transition is in flight (handler or evictor).
const BUSY: u8 = 7;

fn is_resident(s: u8) -> bool {
    matches!(s, DIRTY | CLEAN | CLEAN_SPILL)
}

/// A page-aligned page buffer (the source of `UFFDIO_COPY`).
#[repr(C, align(4096))]
struct PageBuf([u8; PAGE]);

impl PageBuf {
    fn new() -> Box<PageBuf> {
        Box::new(PageBuf([0; PAGE]))
    }
}

fn is_zero(p: &[u8; PAGE]) -> bool {
    p.chunks_exact(8)
        .all(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) == 0)
}

/// How a [`Region`] is built.
#[derive(Clone, Debug)]
pub struct RegionConfig {
    /// Bytes of address space (rounded up to whole pages). Nothing is allocated until a
    /// page is touched: several GiB of sparse guest memory cost only what is used.
    pub size: usize,
    /// Back the region with a memfd mapped `MAP_SHARED` (a VMM that shares guest memory
    /// with vhost-user back ends or a snapshotter), instead of private anonymous memory.
    pub shared: bool,
    /// Resident pages allowed (`None`: no limit). Enforced by a background thread
    /// (with [`RegionConfig::background_reclaim`]) or by [`Region::enforce_limit`].
    pub resident_limit: Option<usize>,
    /// Run the background reclaimer that keeps the resident limit (down to 15/16 of
    /// it, ahead of the faults).
    pub background_reclaim: bool,
    /// Let the fault handler evict down to the limit itself when a fault finds it
    /// exceeded (the reclaimer lagging): the limit then holds within the faults in
    /// flight, at the cost of those faults' latency. Off: the limit is soft.
    pub direct_reclaim: bool,
    /// A directory for the spill file: pages zcache refuses (frame limit, poor
    /// compression) go there instead of staying resident. `None`: they stay resident.
    pub spill_dir: Option<PathBuf>,
    /// The region's own zcache (its persistent pool holds the evicted pages; page index
    /// = swap offset). `frontswap_exclusive_loads` is forced off: a clean page's copy is
    /// kept when it faults back.
    pub zcache: zcache::Config,
    /// Pin the fault handler thread to this CPU. A fault's service ends by waking the
    /// faulting thread; on another CPU that wake is an inter-processor interrupt, which
    /// in a virtual machine (this project's machines are Firecracker guests) whose
    /// other vCPU is idle cost ~17 µs of the handler's time, more than the
    /// decompression and the copy together. A VMM that pins its vCPU threads pins the handler beside them.
    pub handler_cpu: Option<usize>,
    /// Record the handler's service time of every fault served from zcache
    /// ([`Region::take_fault_latencies`]); for benchmarks.
    pub record_fault_latency: bool,
    /// At most this many resident clean pages keep their compressed (or spilled) copy
    /// (`None`: every one does, the clean-page rule in full). A read fault that finds
    /// the budget used up is served as a write fault is: the page comes back writable
    /// and its copy is dropped, so the pool holds little more than the evicted pages,
    /// at the cost of compressing the page again when it is evicted. `Some(0)`: no
    /// resident page keeps a copy. Counted in [`RegionStats::copies_not_kept`].
    pub max_clean_copies: Option<usize>,
}

impl RegionConfig {
    /// A private anonymous region of `size` bytes, no limit, no spill file, zcache's
    /// defaults (lz4, zsmalloc for the persistent pool).
    pub fn new(size: usize) -> RegionConfig {
        RegionConfig {
            size,
            shared: false,
            resident_limit: None,
            background_reclaim: true,
            direct_reclaim: true,
            spill_dir: None,
            zcache: zcache::Config {
                context_hint: zcache::thread_hint,
                ..zcache::Config::default()
            },
            record_fault_latency: false,
            handler_cpu: None,
            max_clean_copies: None,
        }
    }
}

/// The handler's service time of one fault served from zcache: from the message's
/// read to the end of `UFFDIO_COPY` (zcache load, decompression, copy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultTiming {
    /// Wall-clock nanoseconds (includes any time the handler thread was preempted).
    pub wall_ns: u32,
    /// The handler thread's CPU nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
    pub cpu_ns: u32,
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

/// What one [`Region::evict`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvictReport {
    /// Pages compressed into zcache and dropped.
    pub compressed: u64,
    /// Clean pages dropped with no compression (their zcache or spill copy was kept).
    pub saved: u64,
    /// All-zero pages dropped (nothing stored).
    pub zero: u64,
    /// Pages zcache refused that went to the spill file.
    pub spilled: u64,
    /// Pages zcache refused with no spill file (or a failing one): still resident.
    pub kept_resident: u64,
    /// Pages not resident (never touched, or already out).
    pub not_resident: u64,
    /// Pages skipped because a fault or another eviction was working on them.
    pub busy: u64,
}

impl EvictReport {
    /// Pages that left memory.
    pub fn dropped(&self) -> u64 {
        self.compressed + self.saved + self.zero + self.spilled
    }
}

/// A statistics snapshot of a [`Region`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RegionStats {
    /// Pages in the region.
    pub pages: usize,
    /// Pages resident now (mapped: dirty or clean).
    pub resident_pages: usize,
    /// Resident pages that are write-protected and have a kept copy (zcache or spill):
    /// evicting them again costs no compression.
    pub clean_pages: usize,
    /// Pages held compressed in zcache and not resident.
    pub compressed_pages: usize,
    /// Pages in the spill file and not resident.
    pub spilled_pages: usize,
    /// Pages out as zero (nothing stored).
    pub zero_pages: usize,
    /// Pages in a transition right now (a fault being served, an eviction). A thread
    /// whose fault was served may run on before the handler has published the page's
    /// new state, so a snapshot taken right after a fault can count it here.
    pub busy_pages: usize,
    /// Missing faults served (zero fills included).
    pub faults: u64,
    /// Missing faults on pages the region had evicted (refaults).
    pub refaults: u64,
    /// Missing faults on never-touched or zero pages, served by `UFFDIO_ZEROPAGE`.
    pub zero_fills: u64,
    /// Write-protect faults served (a write to a clean page: its copy dropped).
    pub wp_faults: u64,
    /// Fault messages that arrived while an eviction owned the page (the evictor wakes
    /// the thread when it is done; it then faults again).
    pub deferred_faults: u64,
    /// Fault messages for pages already served (another thread's fault on the same
    /// page): woken only.
    pub stale_faults: u64,
    /// Pages dropped from memory by evictions (all kinds).
    pub evictions: u64,
    /// Pages compressed and stored into zcache.
    pub compressions: u64,
    /// Evictions of clean pages that cost no compression (the clean-page rule).
    pub compressions_saved: u64,
    /// Pages zcache refused (frame limit, host refused a frame, poor compression).
    pub zcache_rejects: u64,
    /// Pages written to the spill file.
    pub spill_writes: u64,
    /// Faults served from the spill file.
    pub spill_reads: u64,
    /// Evictions given up: the page stayed resident (refused and no spill file).
    pub kept_resident: u64,
    /// Pages the fault handler evicted itself (direct reclaim over the limit).
    pub direct_reclaim: u64,
    /// ioctl or load failures while serving a fault (0 unless something is broken).
    pub fault_errors: u64,
    /// Read faults served beyond [`RegionConfig::max_clean_copies`]: the page came
    /// back writable (dirty) and its copy was dropped.
    pub copies_not_kept: u64,
    /// The region's zcache.
    pub zcache: zcache::Stats,
}

#[derive(Default)]
struct Counters {
    faults: AtomicU64,
    refaults: AtomicU64,
    zero_fills: AtomicU64,
    wp_faults: AtomicU64,
    deferred: AtomicU64,
    stale: AtomicU64,
    evictions: AtomicU64,
    compressions: AtomicU64,
    saved: AtomicU64,
    rejects: AtomicU64,
    spill_writes: AtomicU64,
    spill_reads: AtomicU64,
    kept: AtomicU64,
    fault_errors: AtomicU64,
    direct: AtomicU64,
    copies_not_kept: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The spill file: page `p` at byte offset `p * 4096` (sparse).
struct Spill {
    file: File,
}

impl Spill {
    fn create(dir: &std::path::Path) -> io::Result<Spill> {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            ".zcache-uffd-spill-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unlinked at once: the file lives as long as the region, and no crash leaves it.
        std::fs::remove_file(&path)?;
        Ok(Spill { file })
    }
}

struct Inner {
    base: usize,
    len: usize,
    npages: usize,
    uffd: Uffd,
    shared: bool,
    memfd: Mutex<Option<OwnedFd>>,
    unmap_on_drop: AtomicBool,
    area: SwapArea<Arc<Zcache>>,
    state: Box<[AtomicU8]>,
    referenced: Box<[AtomicBool]>,
    resident: AtomicUsize,
    limit: AtomicUsize,
    /// Resident pages in CLEAN or CLEAN_SPILL (raised before such a state is published,
    /// lowered by whoever takes the page out of it), and the budget for them.
    clean: AtomicUsize,
    max_clean: usize,
    spill: Option<Spill>,
    c: Counters,
    /// The CLOCK hand (also serialises limit enforcement).
    hand: Mutex<usize>,
    /// The reclaimer sleeps here; `true` = stop.
    reclaim: (Mutex<bool>, Condvar),
    record_latency: bool,
    direct_reclaim: bool,
    latencies: Mutex<Vec<FaultTiming>>,
    /// The handler's stop signal (an eventfd it polls beside the userfaultfd).
    stop: OwnedFd,
}

// SAFETY: `base..base+len` is a mapping `Inner` owns; every access to it from any
// thread goes through the kernel (ioctls, madvise) or through atomics
// (`Region::read`/`write`), and page ownership is arbitrated by the atomic states.
unsafe impl Send for Inner {}
// SAFETY: as for `Send`: shared access is by atomics and ioctls only.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.unmap_on_drop.load(Ordering::Relaxed) {
            // SAFETY: `base..base+len` is the mapping this region made and still owns
            // (the flag is cleared when ownership moves to a `ResidentMemory`); both
            // threads have been joined and no `Region` is left, so nothing uses it.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
        }
    }
}

impl Inner {
    fn addr(&self, p: usize) -> usize {
        self.base + p * PAGE
    }

    fn publish(&self, p: usize, s: u8) {
        self.state[p].store(s, Ordering::Release);
    }

    fn take(&self, p: usize, from: u8) -> bool {
        self.state[p]
            .compare_exchange(from, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn wake(&self, p: usize) {
        if self.uffd.wake(self.addr(p), PAGE).is_err() {
            bump(&self.c.fault_errors);
        }
    }

    fn became_resident(&self) {
        let r = self.resident.fetch_add(1, Ordering::Relaxed) + 1;
        if r > self.limit.load(Ordering::Relaxed) {
            self.reclaim.1.notify_one();
        }
    }

    /// Drops a page's memory (the evictor owns it, it is write-protected and its data is
    /// safe elsewhere). Private memory: MADV_DONTNEED (the pte becomes none, the next
    /// access a missing fault). memfd: MADV_REMOVE punches the page out of the file as
    /// well, or the next access would map the page-cache page with no fault at all.
    fn drop_memory(&self, p: usize) -> io::Result<()> {
        let advice = if self.shared {
            libc::MADV_REMOVE
        } else {
            libc::MADV_DONTNEED
        };
        // SAFETY: the page is inside the region's own mapping; dropping it only makes
        // the next access fault, which the handler serves from the copy just kept.
        let r = unsafe { libc::madvise(self.addr(p) as *mut libc::c_void, PAGE, advice) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    // ---- the handler ----

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
                // write fault, or a read fault beyond the budget of kept copies, comes
                // back writable and the copy is dropped after the copy-in succeeded
                // (until then it is the only copy).
                let keep = !write && self.clean.load(Ordering::Relaxed) < self.max_clean;
                match self.uffd.copy(addr, &buf.0, keep) {
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

    // ---- eviction ----

    fn discard_page(&self, p: usize) -> Result<bool, RegionError> {
        let s = loop {
            let s = self.state[p].load(Ordering::Acquire);
            match s {
                UNTOUCHED => return Ok(false),
                BUSY => std::thread::yield_now(),
                _ => {
                    if self.take(p, s) {
                        break s;
                    }
                }
            }
        };
        if is_resident(s) {
            if let Err(e) = self.drop_memory(p) {
                self.publish(p, s);
                return Err(RegionError::Io("madvise (discard)", e));
            }
            self.resident.fetch_sub(1, Ordering::Relaxed);
        }
        if matches!(s, CLEAN | OUT_Z) {
            let _ = self.area.invalidate_page(p as u64);
        }
        if matches!(s, CLEAN | CLEAN_SPILL) {
            self.clean.fetch_sub(1, Ordering::Relaxed);
        }
        // A clean page was write-protected: the next fault is a missing fault on a
        // none pte (zero fill), and no write-protect marker survives the drop of
        // anonymous memory (for a memfd, MADV_REMOVE drops it with the page).
        self.publish(p, UNTOUCHED);
        self.wake(p);
        Ok(true)
    }

    /// Evicts one page. `wait`: a page busy with a fault or another eviction is waited
    /// for (a transition is short and never waits for an evictor, so this cannot
    /// deadlock: an evictor holds at most one page, and holds none while it waits);
    /// otherwise it is skipped.
    fn evict_page(&self, p: usize, buf: &mut PageBuf, r: &mut EvictReport, wait: bool) {
        let s = loop {
            let s = self.state[p].load(Ordering::Acquire);
            match s {
                DIRTY | CLEAN | CLEAN_SPILL => {
                    if self.take(p, s) {
                        break s;
                    }
                }
                BUSY if wait => std::thread::yield_now(),
                BUSY => {
                    r.busy += 1;
                    return;
                }
                _ => {
                    r.not_resident += 1;
                    return;
                }
            }
        };
        let addr = self.addr(p);
        if s != DIRTY {
            // Clean: write-protected since its copy was made (a write would have
            // taken a WP fault and made it DIRTY first), so the copy is current.
            if self.drop_memory(p).is_err() {
                self.publish(p, s);
                r.kept_resident += 1;
                return;
            }
            self.clean.fetch_sub(1, Ordering::Relaxed);
            self.publish(p, if s == CLEAN { OUT_Z } else { OUT_SPILL });
            self.resident.fetch_sub(1, Ordering::Relaxed);
            bump(&self.c.saved);
            bump(&self.c.evictions);
            r.saved += 1;
            self.wake(p);
            return;
        }
        // Dirty. 1: write-protect. From here on every write to the page blocks in a
        // WP fault that the handler defers (the page is BUSY) until this eviction has
        // published its outcome and woken the range.
        if self.uffd.writeprotect(addr, PAGE, true).is_err() {
            self.publish(p, DIRTY);
            r.kept_resident += 1;
            bump(&self.c.kept);
            return;
        }
        // 2: copy the page out (reads still go straight through); its bytes can no
        // longer change.
        // SAFETY: `addr` is a resident page of the region's mapping (DIRTY, owned by
        // this eviction), readable, and write-protected since step 1, so no write can
        // race this read; `buf` is a separate 4096-byte buffer.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, buf.0.as_mut_ptr(), PAGE) };
        // 3: keep the copy somewhere, then 4: drop the memory.
        let next = if is_zero(&buf.0) {
            r.zero += 1;
            Some(OUT_ZERO)
        } else {
            match self.area.store(p as u64, &buf.0) {
                Ok(()) => {
                    bump(&self.c.compressions);
                    r.compressed += 1;
                    Some(OUT_Z)
                }
                Err(_) => {
                    bump(&self.c.rejects);
                    match &self.spill {
                        Some(f) if f.file.write_all_at(&buf.0, (p * PAGE) as u64).is_ok() => {
                            bump(&self.c.spill_writes);
                            r.spilled += 1;
                            Some(OUT_SPILL)
                        }
                        _ => None,
                    }
                }
            }
        };
        match next {
            Some(n) if self.drop_memory(p).is_ok() => {
                self.publish(p, n);
                self.resident.fetch_sub(1, Ordering::Relaxed);
                bump(&self.c.evictions);
                // 5: wake any writer blocked since step 1: it retries, takes a missing
                // fault, and the handler copies in the page as stored in step 3.
                self.wake(p);
            }
            other => {
                if other == Some(OUT_Z) {
                    let _ = self.area.invalidate_page(p as u64);
                }
                // Kept resident: un-protect (wakes blocked writers, which then write
                // to the page as it is).
                bump(&self.c.kept);
                r.kept_resident += 1;
                if other.is_some() {
                    // The counters above counted a keep that did not happen.
                    r.compressed = r.compressed.saturating_sub(u64::from(other == Some(OUT_Z)));
                    r.zero = r.zero.saturating_sub(u64::from(other == Some(OUT_ZERO)));
                    r.spilled = r
                        .spilled
                        .saturating_sub(u64::from(other == Some(OUT_SPILL)));
                }
                if self.uffd.writeprotect(addr, PAGE, false).is_err() {
                    self.wake(p);
                }
                self.publish(p, DIRTY);
            }
        }
    }

    fn evict_pages(&self, pages: Range<usize>) -> EvictReport {
        let mut r = EvictReport::default();
        let mut buf = PageBuf::new();
        for p in pages {
            self.evict_page(p, &mut buf, &mut r, true);
        }
        r
    }

    /// The CLOCK hand's next victim: the next resident page whose referenced bit is
    /// clear, clearing the bits it passes (second chance); `None` after two turns.
    /// The hand's lock is held only to move the hand: evictions run outside it, so the
    /// reclaimer and the handler's direct reclaim evict side by side.
    fn clock_pick(&self) -> Option<usize> {
        let mut hand = self.hand.lock().ok()?;
        for _ in 0..2 * self.npages {
            let p = *hand;
            *hand = (p + 1) % self.npages;
            if !is_resident(self.state[p].load(Ordering::Relaxed)) {
                continue;
            }
            if self.referenced[p].swap(false, Ordering::Relaxed) {
                continue;
            }
            return Some(p);
        }
        None
    }

    /// CLOCK over the resident pages until at most `target` are resident (or 64 picks
    /// in a row evicted nothing: pages zcache refuses with no spill file stay).
    fn enforce(&self, target: usize) -> EvictReport {
        let mut r = EvictReport::default();
        if self.npages == 0 {
            return r;
        }
        let mut buf: Option<Box<PageBuf>> = None;
        let mut misses = 0;
        while self.resident.load(Ordering::Relaxed) > target && misses < 64 {
            let Some(p) = self.clock_pick() else { break };
            let before = r.dropped();
            let b = buf.get_or_insert_with(PageBuf::new);
            self.evict_page(p, b, &mut r, false);
            if r.dropped() == before {
                misses += 1;
            } else {
                misses = 0;
            }
        }
        r
    }

    fn limit_target(&self) -> Option<usize> {
        let l = self.limit.load(Ordering::Relaxed);
        (l != usize::MAX).then(|| l - (l / 16))
    }
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

fn handler_loop(inner: Arc<Inner>, cpu: Option<usize>) {
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

fn reclaim_loop(inner: Arc<Inner>) {
    loop {
        {
            let (lock, cv) = &inner.reclaim;
            let Ok(stop) = lock.lock() else { return };
            if *stop {
                return;
            }
            let over = inner.resident.load(Ordering::Relaxed) > inner.limit.load(Ordering::Relaxed);
            if !over {
                let Ok((stop, _)) = cv.wait_timeout(stop, Duration::from_millis(20)) else {
                    return;
                };
                if *stop {
                    return;
                }
            }
        }
        if let Some(t) = inner.limit_target() {
            inner.enforce(t);
        }
        // Pages come and go (write faults drop copies, evictions store new ones), which
        // leaves holes in zsmalloc's zspages: compact when a few frames can be had.
        let z = inner.area.zcache();
        if z.compactable_frames() >= 16 {
            z.compact();
        }
    }
}

/// A memory region whose pages zcache keeps compressed when they are evicted, served
/// back by a userfaultfd handler thread on first touch. See the crate docs.
pub struct Region {
    inner: Arc<Inner>,
    handler: Option<JoinHandle<()>>,
    reclaimer: Option<JoinHandle<()>>,
}

/// A region after [`Region::shutdown_resident`]: the same memory, every page resident,
/// no longer registered with userfaultfd. Unmapped when dropped.
#[derive(Debug)]
pub struct ResidentMemory {
    base: usize,
    len: usize,
    memfd: Option<OwnedFd>,
}

impl ResidentMemory {
    /// The memory's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base as *mut u8
    }
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it is empty (never: regions have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The memfd behind it, for a shared region.
    pub fn memfd(&self) -> Option<BorrowedFd<'_>> {
        self.memfd.as_ref().map(|f| f.as_fd())
    }
    /// Copies bytes out (atomic loads: safe beside other threads' writes).
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), RegionError> {
        check_range(offset, out.len(), self.len)?;
        atomic_read(self.base + offset, out);
        Ok(())
    }
}

impl Drop for ResidentMemory {
    fn drop(&mut self) {
        // SAFETY: this value owns the mapping (moved out of the region, which no longer
        // unmaps it), and it is being dropped: nothing can use it afterwards.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

fn check_range(offset: usize, len: usize, total: usize) -> Result<(), RegionError> {
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(()),
        _ => Err(RegionError::OutOfRange {
            offset,
            len,
            size: total,
        }),
    }
}

fn atomic_read(addr: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: `addr + i` is inside a live mapping (checked by the caller) and
        // `AtomicU8` has the alignment and size of `u8`; concurrent accesses to the
        // region from safe code are all atomic, so this is no data race.
        *b = unsafe { &*((addr + i) as *const AtomicU8) }.load(Ordering::Relaxed);
    }
}

fn atomic_write(addr: usize, data: &[u8]) {
    let mut i = 0;
    // Byte steps up to a word boundary, words, then bytes.
    while i < data.len() && !(addr + i).is_multiple_of(8) {
        // SAFETY: as in `atomic_read`.
        unsafe { &*((addr + i) as *const AtomicU8) }.store(data[i], Ordering::Relaxed);
        i += 1;
    }
    while i + 8 <= data.len() {
        let w = u64::from_ne_bytes(data[i..i + 8].try_into().unwrap_or([0; 8]));
        // SAFETY: `addr + i` is 8-aligned and the 8 bytes are inside the mapping
        // (checked by the caller); `AtomicU64` has `u64`'s size and alignment.
        unsafe { &*((addr + i) as *const AtomicU64) }.store(w, Ordering::Relaxed);
        i += 8;
    }
    while i < data.len() {
        // SAFETY: as in `atomic_read`.
        unsafe { &*((addr + i) as *const AtomicU8) }.store(data[i], Ordering::Relaxed);
        i += 1;
    }
}

impl Region {
    /// Maps and registers a region whose zcache draws frames from a
    /// `zpool::BlockPageSource` (frames cut from 256 KiB blocks: 4 KiB of memory per
    /// frame, where the heap's 4096-aligned allocations cost 8 KiB each under glibc).
    pub fn new(config: RegionConfig) -> Result<Region, RegionError> {
        Self::with_source(config, zpool::BlockPageSource::new())
    }

    /// Maps and registers a region whose zcache draws frames from `source`.
    pub fn with_source<S: PageSource + 'static>(
        mut config: RegionConfig,
        source: S,
    ) -> Result<Region, RegionError> {
        let npages = config.size.div_ceil(PAGE);
        if npages == 0 {
            return Err(RegionError::InvalidSize(config.size));
        }
        let len = npages
            .checked_mul(PAGE)
            .ok_or(RegionError::InvalidSize(config.size))?;
        let mut features = sys::FEATURE_PAGEFAULT_FLAG_WP;
        if config.shared {
            features |= sys::FEATURE_MISSING_SHMEM | sys::FEATURE_WP_SHMEM;
        }
        let uffd = Uffd::open(features).map_err(|u| RegionError::Unavailable(u.0))?;
        config.zcache.frontswap_exclusive_loads = false;
        let z = Arc::new(Zcache::new(config.zcache, source).map_err(RegionError::Zcache)?);
        let area = SwapArea::swapon(z, 0).map_err(RegionError::Zcache)?;
        let spill = match &config.spill_dir {
            Some(d) => Some(Spill::create(d).map_err(|e| RegionError::Io("spill file", e))?),
            None => None,
        };
        let memfd = if config.shared {
            // SAFETY: memfd_create takes a NUL-terminated name (a literal) and flags.
            let fd = unsafe { libc::memfd_create(c"zcache-uffd".as_ptr(), libc::MFD_CLOEXEC) };
            if fd < 0 {
                return Err(RegionError::Io("memfd_create", io::Error::last_os_error()));
            }
            // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: ftruncate on our own descriptor, with a length that fits off_t
            // (checked by the conversion).
            let r = unsafe {
                libc::ftruncate(
                    fd.as_raw_fd(),
                    libc::off_t::try_from(len)
                        .map_err(|_| RegionError::InvalidSize(config.size))?,
                )
            };
            if r < 0 {
                return Err(RegionError::Io("ftruncate", io::Error::last_os_error()));
            }
            Some(fd)
        } else {
            None
        };
        let (flags, fd) = match &memfd {
            Some(f) => (libc::MAP_SHARED | libc::MAP_NORESERVE, f.as_raw_fd()),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
            ),
        };
        // SAFETY: a fresh mapping at an address the kernel picks; it overlaps nothing
        // Rust owns. `fd` is our memfd (or -1 for anonymous memory).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(RegionError::Io("mmap", io::Error::last_os_error()));
        }
        let base = base as usize;
        if let Err(e) = uffd.register(base, len) {
            // SAFETY: the mapping made just above, used by nothing yet.
            unsafe { libc::munmap(base as *mut libc::c_void, len) };
            return Err(RegionError::Io("UFFDIO_REGISTER", e));
        }
        // SAFETY: eventfd takes an initial value and flags, returns a descriptor or -1.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if stop < 0 {
            // SAFETY: as above.
            unsafe { libc::munmap(base as *mut libc::c_void, len) };
            return Err(RegionError::Io("eventfd", io::Error::last_os_error()));
        }
        // SAFETY: eventfd just returned this descriptor; nothing else owns it.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let inner = Arc::new(Inner {
            base,
            len,
            npages,
            uffd,
            shared: config.shared,
            memfd: Mutex::new(memfd),
            unmap_on_drop: AtomicBool::new(true),
            area,
            state: (0..npages).map(|_| AtomicU8::new(UNTOUCHED)).collect(),
            referenced: (0..npages).map(|_| AtomicBool::new(false)).collect(),
            resident: AtomicUsize::new(0),
            limit: AtomicUsize::new(config.resident_limit.unwrap_or(usize::MAX)),
            clean: AtomicUsize::new(0),
            max_clean: config.max_clean_copies.unwrap_or(usize::MAX),
            spill,
            c: Counters::default(),
            hand: Mutex::new(0),
            reclaim: (Mutex::new(false), Condvar::new()),
            record_latency: config.record_fault_latency,
            direct_reclaim: config.direct_reclaim,
            latencies: Mutex::new(Vec::new()),
            stop,
        });
        let mut region = Region {
            inner: inner.clone(),
            handler: None,
            reclaimer: None,
        };
        let h = inner.clone();
        let cpu = config.handler_cpu;
        region.handler = Some(
            std::thread::Builder::new()
                .name("zcache-uffd-fault".into())
                .spawn(move || handler_loop(h, cpu))
                .map_err(|e| RegionError::Io("spawn handler", e))?,
        );
        if config.background_reclaim {
            let h = inner;
            region.reclaimer = Some(
                std::thread::Builder::new()
                    .name("zcache-uffd-reclaim".into())
                    .spawn(move || reclaim_loop(h))
                    .map_err(|e| RegionError::Io("spawn reclaimer", e))?,
            );
        }
        Ok(region)
    }

    /// The region's first byte (page-aligned), for a VMM to hand to KVM
    /// (`KVM_SET_USER_MEMORY_REGION`) or to its device emulation. Accesses through it
    /// fault and are served like any other; see the crate docs for what may not be done
    /// with it (unmapping, mremap, madvise of its own).
    pub fn as_ptr(&self) -> *mut u8 {
        self.inner.base as *mut u8
    }

    /// Bytes in the region.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether the region is empty (never: at least one page).
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// Pages in the region.
    pub fn pages(&self) -> usize {
        self.inner.npages
    }

    /// The memfd behind a shared region (to pass to another process); `None` for
    /// private memory. A process mapping it must leave evicted pages alone or register
    /// its mapping with the same handler: see the crate docs.
    pub fn memfd(&self) -> Option<OwnedFd> {
        self.inner
            .memfd
            .lock()
            .ok()
            .and_then(|g| g.as_ref().and_then(|f| f.try_clone().ok()))
    }

    /// Copies bytes out of the region (faulting pages in as needed). Atomic loads:
    /// safe beside other threads' writes.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), RegionError> {
        check_range(offset, out.len(), self.inner.len)?;
        atomic_read(self.inner.base + offset, out);
        Ok(())
    }

    /// Copies bytes into the region (faulting pages in as needed). Atomic stores:
    /// safe beside other threads' accesses.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), RegionError> {
        check_range(offset, data.len(), self.inner.len)?;
        atomic_write(self.inner.base + offset, data);
        Ok(())
    }

    /// Evicts every resident page overlapping `bytes`: clean pages are dropped at once
    /// (their copy is kept), dirty pages are write-protected, compressed into zcache (or
    /// spilled) and dropped. Runs in the caller's thread.
    pub fn evict(&self, bytes: Range<usize>) -> Result<EvictReport, RegionError> {
        if bytes.start > bytes.end {
            return Err(RegionError::OutOfRange {
                offset: bytes.start,
                len: 0,
                size: self.inner.len,
            });
        }
        check_range(bytes.start, bytes.end - bytes.start, self.inner.len)?;
        let first = bytes.start / PAGE;
        let end = bytes.end.div_ceil(PAGE);
        Ok(self.inner.evict_pages(first..end))
    }

    /// Discards every page wholly inside `bytes`: its contents no longer matter (a
    /// guest's free-page report, a balloon inflating, an allocator's freed block).
    /// Resident pages are dropped, kept copies (zcache, spill file) are dropped, and the
    /// next touch of the page reads zeros, like a page never written. No compression.
    /// The caller must not access the range while this runs (as for `MADV_DONTNEED`).
    /// Returns the pages that held memory or a copy.
    pub fn discard(&self, bytes: Range<usize>) -> Result<u64, RegionError> {
        if bytes.start > bytes.end {
            return Err(RegionError::OutOfRange {
                offset: bytes.start,
                len: 0,
                size: self.inner.len,
            });
        }
        check_range(bytes.start, bytes.end - bytes.start, self.inner.len)?;
        let first = bytes.start.div_ceil(PAGE);
        let end = bytes.end / PAGE;
        let mut n = 0;
        for p in first..end.max(first) {
            if self.inner.discard_page(p)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Sets the resident-page limit (`None`: none) and wakes the reclaimer.
    pub fn set_resident_limit(&self, limit: Option<usize>) {
        self.inner
            .limit
            .store(limit.unwrap_or(usize::MAX), Ordering::Relaxed);
        self.inner.reclaim.1.notify_one();
    }

    /// The resident-page limit.
    pub fn resident_limit(&self) -> Option<usize> {
        let l = self.inner.limit.load(Ordering::Relaxed);
        (l != usize::MAX).then_some(l)
    }

    /// Runs the limit's CLOCK in the caller's thread, down to 15/16 of the limit.
    pub fn enforce_limit(&self) -> EvictReport {
        match self.inner.limit_target() {
            Some(t) => self.inner.enforce(t),
            None => EvictReport::default(),
        }
    }

    /// A statistics snapshot (the page-state gauges are one pass over the states).
    pub fn stats(&self) -> RegionStats {
        let i = &self.inner;
        let mut s = RegionStats {
            pages: i.npages,
            ..RegionStats::default()
        };
        for st in i.state.iter() {
            match st.load(Ordering::Relaxed) {
                DIRTY => s.resident_pages += 1,
                CLEAN | CLEAN_SPILL => {
                    s.resident_pages += 1;
                    s.clean_pages += 1;
                }
                OUT_Z => s.compressed_pages += 1,
                OUT_SPILL => s.spilled_pages += 1,
                OUT_ZERO => s.zero_pages += 1,
                BUSY => s.busy_pages += 1,
                _ => {}
            }
        }
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.faults = l(&i.c.faults);
        s.refaults = l(&i.c.refaults);
        s.zero_fills = l(&i.c.zero_fills);
        s.wp_faults = l(&i.c.wp_faults);
        s.deferred_faults = l(&i.c.deferred);
        s.stale_faults = l(&i.c.stale);
        s.evictions = l(&i.c.evictions);
        s.compressions = l(&i.c.compressions);
        s.compressions_saved = l(&i.c.saved);
        s.zcache_rejects = l(&i.c.rejects);
        s.spill_writes = l(&i.c.spill_writes);
        s.spill_reads = l(&i.c.spill_reads);
        s.kept_resident = l(&i.c.kept);
        s.direct_reclaim = l(&i.c.direct);
        s.fault_errors = l(&i.c.fault_errors);
        s.copies_not_kept = l(&i.c.copies_not_kept);
        s.zcache = i.area.zcache().stats();
        s
    }

    /// The region's zcache.
    pub fn zcache(&self) -> &Zcache {
        self.inner.area.zcache()
    }

    /// The handler's service times of the faults served from zcache since the last
    /// call, when [`RegionConfig::record_fault_latency`] is on.
    pub fn take_fault_latencies(&self) -> Vec<FaultTiming> {
        self.inner
            .latencies
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    fn stop_threads(&mut self) {
        if let Ok(mut stop) = self.inner.reclaim.0.lock() {
            *stop = true;
        }
        self.inner.reclaim.1.notify_all();
        if let Some(h) = self.reclaimer.take() {
            let _ = h.join();
        }
        let one: u64 = 1;
        // SAFETY: write(2) of 8 bytes from `one` to our own eventfd.
        unsafe { libc::write(self.inner.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if let Some(h) = self.handler.take() {
            let _ = h.join();
        }
    }

    /// Clean shutdown, resident: every evicted page is copied back in (from zcache,
    /// the spill file, or as zeros for zero pages; never-touched pages stay untouched,
    /// which reads as zero), clean pages are made writable, the range is unregistered,
    /// the threads stop and zcache is emptied. The memory is handed back as a
    /// [`ResidentMemory`]. The caller must have stopped every other user of the region.
    pub fn shutdown_resident(mut self) -> Result<ResidentMemory, RegionError> {
        // Stop the reclaimer first, so nothing evicts while pages come back.
        if let Ok(mut stop) = self.inner.reclaim.0.lock() {
            *stop = true;
        }
        self.inner.reclaim.1.notify_all();
        if let Some(h) = self.reclaimer.take() {
            let _ = h.join();
        }
        let i = self.inner.clone();
        let mut buf = PageBuf::new();
        for p in 0..i.npages {
            // A fault the handler is still finishing (its thread ran on before the
            // publish): wait for it, it never waits for anything.
            let s = loop {
                let s = i.state[p].load(Ordering::Acquire);
                if s != BUSY {
                    break s;
                }
                std::thread::yield_now();
            };
            let res = match s {
                OUT_Z | OUT_SPILL => {
                    let ok = if s == OUT_Z {
                        matches!(i.area.load(p as u64, &mut buf.0), Ok(true))
                    } else {
                        i.spill.as_ref().is_some_and(|f| {
                            f.file.read_exact_at(&mut buf.0, (p * PAGE) as u64).is_ok()
                        })
                    };
                    if !ok {
                        return Err(RegionError::Lost(p));
                    }
                    i.uffd.copy(i.addr(p), &buf.0, false)
                }
                CLEAN | CLEAN_SPILL => i.uffd.writeprotect(i.addr(p), PAGE, false),
                _ => Ok(()),
            };
            match res {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(RegionError::Io("fault back", e)),
            }
            if s != UNTOUCHED && s != OUT_ZERO {
                i.publish(p, DIRTY);
            }
        }
        i.uffd
            .unregister(i.base, i.len)
            .map_err(|e| RegionError::Io("UFFDIO_UNREGISTER", e))?;
        self.stop_threads();
        i.unmap_on_drop.store(false, Ordering::Relaxed);
        let memfd = i.memfd.lock().ok().and_then(|mut g| g.take());
        Ok(ResidentMemory {
            base: i.base,
            len: i.len,
            memfd,
        })
    }

    /// Clean shutdown, freed: the threads stop, the mapping is unmapped and zcache's
    /// pages are dropped. (Dropping a `Region` does the same.)
    pub fn shutdown_free(mut self) -> RegionStats {
        let s = self.stats();
        self.stop_threads();
        s
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.stop_threads();
        // The last `Arc<Inner>` goes with this value (the threads have ended): the
        // mapping is unmapped then, and the zcache with its pool is dropped.
    }
}
