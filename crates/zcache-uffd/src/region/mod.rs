//! The region: mapping, page states, the fault handler, eviction, the resident limit.
//!
//! * `state`: page states and the shared `Inner`;
//! * `config`: the configuration and the reports;
//! * `fault`: the handler thread;
//! * `evict`: eviction, discard, the CLOCK and the reclaimer thread;
//! * `memory`: atomic byte access and [`ResidentMemory`].

mod config;
mod evict;
mod fault;
mod memory;
mod state;

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use zcache::{SwapArea, Zcache};
use zpool::PageSource;

use crate::error::RegionError;
use crate::sys::{self, Uffd};

pub use config::{CleanCopies, EvictReport, FaultTiming, RegionConfig, RegionStats};
use evict::reclaim_loop;
use fault::handler_loop;
pub use memory::ResidentMemory;
use memory::{atomic_read, atomic_write, check_bytes, check_range};
pub use state::PAGE;
use state::*;

/// A memory region whose pages zcache keeps compressed when they are evicted, served
/// back by a userfaultfd handler thread on first touch. See the crate docs.
pub struct Region {
    inner: Arc<Inner>,
    handler: Option<JoinHandle<()>>,
    reclaimer: Option<JoinHandle<()>>,
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
            copies: config.clean_copies,
            out: AtomicUsize::new(0),
            wrote: (0..npages).map(|_| AtomicBool::new(false)).collect(),
            verdicts: Verdicts::default(),
            read_faults: AtomicU64::new(0),
            spill,
            c: Counters::default(),
            hand: Mutex::new(0),
            trim_hand: Mutex::new(0),
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
        check_bytes(&bytes, self.inner.len)?;
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
        check_bytes(&bytes, self.inner.len)?;
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

    /// Runs the limit's CLOCK in the caller's thread, down to 15/16 of the limit, then
    /// (under [`CleanCopies::Adaptive`]) drops the kept copies beyond their share of the
    /// evicted pages, as the background reclaimer does after each of its runs.
    pub fn enforce_limit(&self) -> EvictReport {
        let r = match self.inner.limit_target() {
            Some(t) => self.inner.enforce(t),
            None => EvictReport::default(),
        };
        self.inner.trim_copies();
        r
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
        s.copies_not_kept_written = l(&i.c.copies_not_kept_written);
        s.copies_dropped = l(&i.c.copies_dropped);
        s.copies_not_kept_unpaid = l(&i.c.copies_not_kept_unpaid);
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
                if is_held_out(s) {
                    // Not taken (nothing else runs now), so `take` did not count it.
                    i.out.fetch_sub(1, Ordering::Relaxed);
                }
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
