//! Page states, the region's shared state (`Inner`) and the few primitives every
//! transition uses: take a page, publish its next state, wake its waiters, drop its
//! memory.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use zcache::{SwapArea, Zcache};

use super::config::{CleanCopies, FaultTiming};
use crate::sys::Uffd;

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
pub(super) const UNTOUCHED: u8 = 0;
/// Resident and writable; the mapping holds the only copy.
pub(super) const DIRTY: u8 = 1;
/// Resident, write-protected, and an identical compressed copy is in zcache.
pub(super) const CLEAN: u8 = 2;
/// Resident, write-protected, and an identical copy is in the spill file.
pub(super) const CLEAN_SPILL: u8 = 3;
/// Not present; the data is in zcache.
pub(super) const OUT_Z: u8 = 4;
/// Not present; the data is in the spill file.
pub(super) const OUT_SPILL: u8 = 5;
/// Not present; the data is all zero.
pub(super) const OUT_ZERO: u8 = 6;
/// A transition is in flight (handler or evictor).
pub(super) const BUSY: u8 = 7;

pub(super) fn is_resident(s: u8) -> bool {
    matches!(s, DIRTY | CLEAN | CLEAN_SPILL)
}

/// Read faults (under [`CleanCopies::Adaptive`]) after which the copies' verdicts are
/// halved: what the region learnt of its copies fades over this many.
pub(super) const VERDICT_WINDOW: u64 = 4096;
/// While kept copies are written more often than they save a compression, one read
/// fault in this many still keeps its copy, so that the verdicts can change.
pub(super) const EXPLORE: u64 = 32;

/// What became of the kept copies, in two 32-bit halves of one word: *paid* (the page
/// was evicted again unwritten: a compression saved) and *wasted* (it was written: the
/// copy dropped, a write-protect fault paid). Halved every [`VERDICT_WINDOW`] read
/// faults, so it follows the workload.
#[derive(Default)]
pub(super) struct Verdicts(AtomicU64);

impl Verdicts {
    /// Records one copy's fate.
    pub(super) fn note(&self, wasted: bool) {
        let add = if wasted { 1 << 32 } else { 1 };
        // A full half stays full, so it never carries into the other (in practice both
        // stay small: they are halved every few thousand read faults).
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let (p, w) = (v as u32, (v >> 32) as u32);
                let full = if wasted { w == u32::MAX } else { p == u32::MAX };
                Some(if full { v } else { v + add })
            });
    }

    /// Halves both counts.
    pub(super) fn halve(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let (p, w) = (v as u32 / 2, (v >> 32) as u32 / 2);
                Some(u64::from(p) | (u64::from(w) << 32))
            });
    }

    /// (paid, wasted).
    pub(super) fn get(&self) -> (u32, u32) {
        let v = self.0.load(Ordering::Relaxed);
        (v as u32, (v >> 32) as u32)
    }
}

/// Out of memory with the data kept (zcache or the spill file): what `Inner::out` counts.
pub(super) fn is_held_out(s: u8) -> bool {
    matches!(s, OUT_Z | OUT_SPILL)
}

/// A page-aligned page buffer (the source of `UFFDIO_COPY`).
#[repr(C, align(4096))]
pub(super) struct PageBuf(pub(super) [u8; PAGE]);

impl PageBuf {
    pub(super) fn new() -> Box<PageBuf> {
        Box::new(PageBuf([0; PAGE]))
    }
}

pub(super) fn is_zero(p: &[u8; PAGE]) -> bool {
    p.chunks_exact(8)
        .all(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) == 0)
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) faults: AtomicU64,
    pub(super) refaults: AtomicU64,
    pub(super) zero_fills: AtomicU64,
    pub(super) wp_faults: AtomicU64,
    pub(super) deferred: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) evictions: AtomicU64,
    pub(super) compressions: AtomicU64,
    pub(super) saved: AtomicU64,
    pub(super) rejects: AtomicU64,
    pub(super) spill_writes: AtomicU64,
    pub(super) spill_reads: AtomicU64,
    pub(super) kept: AtomicU64,
    pub(super) fault_errors: AtomicU64,
    pub(super) direct: AtomicU64,
    pub(super) copies_not_kept: AtomicU64,
    pub(super) copies_not_kept_written: AtomicU64,
    pub(super) copies_dropped: AtomicU64,
    pub(super) copies_not_kept_unpaid: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The spill file: page `p` at byte offset `p * 4096` (sparse).
pub(super) struct Spill {
    pub(super) file: File,
}

impl Spill {
    pub(super) fn create(dir: &std::path::Path) -> io::Result<Spill> {
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

pub(super) struct Inner {
    pub(super) base: usize,
    pub(super) len: usize,
    pub(super) npages: usize,
    pub(super) uffd: Uffd,
    pub(super) shared: bool,
    pub(super) memfd: Mutex<Option<OwnedFd>>,
    pub(super) unmap_on_drop: AtomicBool,
    pub(super) area: SwapArea<Arc<Zcache>>,
    pub(super) state: Box<[AtomicU8]>,
    pub(super) referenced: Box<[AtomicBool]>,
    pub(super) resident: AtomicUsize,
    pub(super) limit: AtomicUsize,
    /// Resident pages in CLEAN or CLEAN_SPILL (raised before such a state is published,
    /// lowered by whoever takes the page out of it), and the budget for them.
    pub(super) clean: AtomicUsize,
    pub(super) copies: CleanCopies,
    /// Pages in OUT_Z or OUT_SPILL (lowered by `take` from such a state, raised by
    /// `publish` of one): what [`CleanCopies::Adaptive`] measures the copies against.
    pub(super) out: AtomicUsize,
    /// Per page: written (a write-protect fault on its kept copy) since its last kept
    /// copy. Read by [`CleanCopies::Adaptive`] at the page's next read fault.
    pub(super) wrote: Box<[AtomicBool]>,
    /// What became of the kept copies lately ([`CleanCopies::Adaptive`]).
    pub(super) verdicts: Verdicts,
    /// Read faults seen by [`CleanCopies::Adaptive`] (its clock for `verdicts`).
    pub(super) read_faults: AtomicU64,
    pub(super) spill: Option<Spill>,
    pub(super) c: Counters,
    /// The CLOCK hand (also serialises limit enforcement).
    pub(super) hand: Mutex<usize>,
    /// Where `trim_copies` looks next for a kept copy to drop (and its serialisation).
    pub(super) trim_hand: Mutex<usize>,
    /// The reclaimer sleeps here; `true` = stop.
    pub(super) reclaim: (Mutex<bool>, Condvar),
    pub(super) record_latency: bool,
    pub(super) direct_reclaim: bool,
    pub(super) latencies: Mutex<Vec<FaultTiming>>,
    /// The handler's stop signal (an eventfd it polls beside the userfaultfd).
    pub(super) stop: OwnedFd,
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
    pub(super) fn addr(&self, p: usize) -> usize {
        self.base + p * PAGE
    }

    /// Publishes page `p`'s next state (its owner, who took it, ends the transition).
    pub(super) fn publish(&self, p: usize, s: u8) {
        if is_held_out(s) {
            self.out.fetch_add(1, Ordering::Relaxed);
        }
        self.state[p].store(s, Ordering::Release);
    }

    /// Takes page `p` from state `from` into `BUSY`; `false` if it was not in `from`.
    pub(super) fn take(&self, p: usize, from: u8) -> bool {
        let ok = self.state[p]
            .compare_exchange(from, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if ok && is_held_out(from) {
            self.out.fetch_sub(1, Ordering::Relaxed);
        }
        ok
    }

    /// Whether a read fault on page `p` keeps the page's copy, under
    /// [`RegionConfig::clean_copies`](super::RegionConfig::clean_copies). The caller owns
    /// the page (taken out of OUT_Z or OUT_SPILL, so `out` no longer counts it).
    pub(super) fn keep_copy(&self, p: usize) -> bool {
        let clean = self.clean.load(Ordering::Relaxed);
        match self.copies {
            CleanCopies::All => true,
            CleanCopies::AtMost(n) => clean < n,
            CleanCopies::Adaptive { share } => {
                let n = self.read_faults.fetch_add(1, Ordering::Relaxed);
                if n % VERDICT_WINDOW == VERDICT_WINDOW - 1 {
                    self.verdicts.halve();
                }
                if self.wrote[p].swap(false, Ordering::Relaxed) {
                    bump(&self.c.copies_not_kept_written);
                    return false;
                }
                if (clean + 1).saturating_mul(share.max(1)) > self.out.load(Ordering::Relaxed) {
                    return false;
                }
                let (paid, wasted) = self.verdicts.get();
                if wasted > paid && !n.is_multiple_of(EXPLORE) {
                    bump(&self.c.copies_not_kept_unpaid);
                    return false;
                }
                true
            }
        }
    }

    pub(super) fn wake(&self, p: usize) {
        if self.uffd.wake(self.addr(p), PAGE).is_err() {
            bump(&self.c.fault_errors);
        }
    }

    pub(super) fn became_resident(&self) {
        let r = self.resident.fetch_add(1, Ordering::Relaxed) + 1;
        if r > self.limit.load(Ordering::Relaxed) {
            self.reclaim.1.notify_one();
        }
    }

    /// Drops a page's memory (the evictor owns it, it is write-protected and its data is
    /// safe elsewhere). Private memory: MADV_DONTNEED (the pte becomes none, the next
    /// access a missing fault). memfd: MADV_REMOVE punches the page out of the file as
    /// well, or the next access would map the page-cache page with no fault at all.
    pub(super) fn drop_memory(&self, p: usize) -> io::Result<()> {
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
}
