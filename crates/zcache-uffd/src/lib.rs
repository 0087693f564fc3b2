//! `zcache-uffd`: guest memory for user-space VMMs whose cold pages live compressed in
//! zcache, served back on first touch through userfaultfd.
//!
//! A [`Region`] maps anonymous memory (`MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE`),
//! or a memfd mapped `MAP_SHARED` when the VMM shares guest memory
//! ([`RegionConfig::shared`]), and registers it with a userfaultfd for missing and
//! write-protect faults. A handler thread serves the faults:
//!
//! * a missing fault on a page never written (or evicted as all zeros):
//!   `UFFDIO_ZEROPAGE`;
//! * a missing fault on an evicted page: decompress from the region's own [`zcache`]
//!   (a persistent pool through a `SwapArea`, page index = slot) and `UFFDIO_COPY`.
//!   A read fault copies the page in **write-protected and keeps the compressed copy**
//!   (the page is *clean*) when [`RegionConfig::clean_copies`] allows it; a write
//!   fault, or a read fault it does not allow, copies the page in writable and drops
//!   the copy. The default, [`CleanCopies::DEFAULT`], keeps copies only up to 1/16 of
//!   the evicted pages, none for a page written after its last copy, and few while
//!   copies are lately written more often than they save a compression: a kept copy
//!   costs memory that zram, which frees a slot at swap-in, does not spend;
//! * a write-protect fault on a clean page: un-protect it and drop its copy (now
//!   *dirty*).
//!
//! Eviction ([`Region::evict`], or the resident limit's CLOCK) drops a clean page at
//! once, with no compression: its copy is still current, since any write would have
//! taken a write-protect fault first. A dirty page is write-protected, copied,
//! compressed into zcache and dropped (`MADV_DONTNEED`; `MADV_REMOVE` for a memfd). A
//! page zcache refuses (frame limit, a frame the page source refuses, poor compression)
//! goes to the region's spill file ([`RegionConfig::spill_dir`]) or stays resident:
//! it is never lost.
//!
//! # The resident limit
//!
//! [`RegionConfig::resident_limit`] / [`Region::set_resident_limit`]: a background
//! thread (or [`Region::enforce_limit`] in the caller's thread) runs CLOCK over the
//! resident pages down to 15/16 of the limit. This kernel has no idle-page tracking
//! and no soft-dirty bits, and user space cannot read the accessed bits, so the only
//! references the region sees are faults: a page's referenced bit is set when a fault
//! is served on it (missing or write-protect) and cleared by the passing hand, which
//! evicts pages whose bit is clear. That approximates LRU on the time of the last
//! *fault*, not the last access: a page read all the time without ever faulting again
//! looks as cold as an idle one, is evicted, and if it is hot its refault (counted in
//! [`RegionStats::refaults`]) marks it referenced so the next pass spares it: cold
//! pages are found by refault sampling. The reclaimer keeps 15/16 of the limit ahead
//! of the faults; when a fault finds the limit exceeded anyway, the handler evicts
//! down to it before serving the next one ([`RegionConfig::direct_reclaim`]), so the
//! limit holds within the faults in flight. The reclaimer also compacts zcache's pool.
//! [`Region::discard`] drops pages whose contents no longer matter (free-page
//! reports), with no compression.
//!
//! # Concurrency: why no write is lost
//!
//! Each page has one atomic state: untouched, dirty, clean (copy in zcache or the
//! spill file), out (in zcache, in the spill file, or zero), or busy. Whoever moves a
//! page to *busy* with a compare-and-swap (the handler thread, or one evictor: any
//! owner thread calling [`Region::evict`], or the reclaimer) owns its transition; it
//! publishes the next state with a release store and only then wakes the page's
//! waiting threads (`UFFDIO_WAKE`, or the wake built into `UFFDIO_COPY`/un-protect).
//! Evicting a dirty page, while other threads of the owner may read or write it:
//!
//! 1. **write-protect** (`UFFDIO_WRITEPROTECT`). When the ioctl returns, the kernel has
//!    changed the pte and flushed the TLBs: every write from now on, by any thread,
//!    blocks in a write-protect fault. Writes before it are in the page.
//! 2. **copy** the page out and **compress/store** it (or spill it). Reads go on; the
//!    bytes cannot change. A write-protect fault that arrives now finds the page
//!    *busy*: the handler leaves the writer asleep (counted in
//!    [`RegionStats::deferred_faults`]).
//! 3. **drop** the memory (`MADV_DONTNEED`), publish *out*, then **wake** the page.
//!    The writer retries its write, finds no page, takes a missing fault, and the
//!    handler copies in exactly the bytes stored in step 2; the write then lands on
//!    them. A write that was attempted between 1 and 3 is therefore *delayed*, never
//!    lost: it happens after the eviction, on the restored page.
//! 4. If zcache and the spill file both refuse, the evictor un-protects instead (which
//!    wakes the writer, who writes the resident page) and publishes *dirty*.
//!
//! Why the wake cannot be missed: a fault message exists only while its thread waits
//! on the userfaultfd's queue. If the handler reads it while the page is *busy*, the
//! message was queued before the evictor publishes, so the evictor's wake, which
//! comes after the publish, reaches the thread. A thread that faults after the
//! publish finds the page as published (not present: a missing fault that is served;
//! write-protected again because it was made clean: a write-protect fault that is
//! served). A message that arrives after its page was already served (two threads
//! faulting the same page) only wakes. The reverse order (drop before write-protect)
//! would let a write land between the copy and the drop and vanish: the tests
//! include a writer hammering a page that is being evicted in a loop.
//!
//! The handler never touches the region's memory itself (it only issues ioctls from
//! its own buffer) and evictors touch only pages they own while those are resident,
//! so neither can fault on the region and deadlock.
//!
//! What the owner must not do: unmap, `mremap`, `mprotect` or `madvise` the region
//! itself, or `fork` expecting the child to share the handler. For a shared region,
//! another process mapping the memfd sees evicted pages as holes (its own mapping is
//! not registered): it must access guest memory only through pages the VMM has made
//! resident, or register its own mapping with a handler of its own.
//!
//! ```no_run
//! use zcache_uffd::{Region, RegionConfig};
//!
//! let region = Region::new(RegionConfig::new(1 << 30)).unwrap();
//! region.write(4096 * 10, b"hello, guest").unwrap();
//! let r = region.evict(0..1 << 20).unwrap(); // page 10 compressed and dropped
//! assert_eq!(r.compressed, 1);
//! let mut back = [0u8; 12];
//! region.read(4096 * 10, &mut back).unwrap(); // a fault, served from zcache
//! assert_eq!(&back, b"hello, guest");
//! ```

mod error;
mod region;
mod sys;

pub use error::RegionError;
pub use region::{
    CleanCopies, EvictReport, FaultTiming, PAGE, Region, RegionConfig, RegionStats, ResidentMemory,
};

/// Whether userfaultfd with write-protect faults can be used by this process: `Err`
/// with the reason when not (tests print `SKIP: <reason>`).
pub fn available() -> Result<(), String> {
    sys::Uffd::open(sys::FEATURE_PAGEFAULT_FLAG_WP)
        .map(drop)
        .map_err(|u| u.0)
}

#[doc(hidden)]
pub mod bench_support {
    //! What the fault bench measures beside the region: `UFFDIO_COPY` alone.
    use std::time::Instant;

    #[repr(C, align(4096))]
    struct P([u8; 4096]);

    /// A registered, never-touched mapping of `n` pages and a source page: each
    /// [`CopyAlone::copy`] is one `UFFDIO_COPY` into the next page, with no fault
    /// (nobody waits on it).
    pub struct CopyAlone {
        uffd: crate::sys::Uffd,
        base: usize,
        n: usize,
        next: usize,
        src: Box<P>,
    }

    impl CopyAlone {
        /// Maps and registers `n` pages.
        pub fn new(n: usize) -> Result<CopyAlone, String> {
            let uffd =
                crate::sys::Uffd::open(crate::sys::FEATURE_PAGEFAULT_FLAG_WP).map_err(|u| u.0)?;
            // SAFETY: a fresh anonymous mapping at an address the kernel picks.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    n * 4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(format!("mmap: {}", std::io::Error::last_os_error()));
            }
            let mut src = Box::new(P([0; 4096]));
            src.0.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
            let c = CopyAlone {
                uffd,
                base: base as usize,
                n,
                next: 0,
                src,
            };
            c.uffd
                .register(c.base, n * 4096)
                .map_err(|e| e.to_string())?;
            Ok(c)
        }

        /// One `UFFDIO_COPY` into the next page: nanoseconds (`None` when all are used).
        pub fn copy(&mut self) -> Option<Result<u32, String>> {
            if self.next == self.n {
                return None;
            }
            let dst = self.base + self.next * 4096;
            self.next += 1;
            let t = Instant::now();
            let r = self.uffd.copy(dst, &self.src.0, false);
            let ns = t.elapsed().as_nanos() as u32;
            Some(r.map(|()| ns).map_err(|e| e.to_string()))
        }
    }

    impl Drop for CopyAlone {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, used by nothing else.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.n * 4096) };
        }
    }
}
