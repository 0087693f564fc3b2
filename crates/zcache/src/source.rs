//! The frame limit: a [`PageSource`] wrapper that enforces zcache's hard limit on pool
//! frames with zswap-style accept hysteresis.

use alloc::boxed::Box;
use zpool::{AllocError, Frame, PageSource};

use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Counts and limits the frames both allocators take from the host's page source.
///
/// * Held frames may not exceed `max`.
/// * Once an allocation has been refused at `max` (a *limit hit*), allocations keep
///   failing until the held count has fallen below `accept` (`max` ×
///   accept_threshold_percent / 100): the hysteresis that stops a full cache from
///   thrashing at its limit (zswap's `accept_threshold_percent`).
///
/// The held count is one atomic updated per frame allocated or freed (not per stored
/// page: a frame holds several compressed pages), so it is not on every store's path.
pub(crate) struct LimitedSource {
    inner: Box<dyn PageSource>,
    max: usize,
    accept: usize,
    held: AtomicUsize,
    peak: AtomicUsize,
    full: AtomicBool,
    limit_hits: AtomicU64,
    host_failures: AtomicU64,
}

impl LimitedSource {
    pub(crate) fn new(inner: Box<dyn PageSource>, max: usize, accept_percent: u8) -> Self {
        let pct = usize::from(accept_percent.min(100));
        // At least one frame below the limit must re-open it, or a tiny limit (1 frame
        // at 90 %) would compute 0 and never accept again after its first hit.
        let accept = (max / 100 * pct + (max % 100) * pct / 100).max(max.min(1));
        LimitedSource {
            inner,
            max,
            accept,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            full: AtomicBool::new(false),
            limit_hits: AtomicU64::new(0),
            host_failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.held(), Ordering::Relaxed);
    }
    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Whether an allocation now would pass the limit (not in the hysteresis, below
    /// the maximum).
    pub(crate) fn can_accept(&self) -> bool {
        !self.is_full() && self.held() < self.max
    }

    /// Whether an allocation could pass the limit once `frames` more were freed: the
    /// test a store makes before it evicts, so it never evicts only to be refused.
    pub(crate) fn could_accept_after(&self, frames: usize) -> bool {
        let cap = if self.is_full() {
            self.accept
        } else {
            self.max
        };
        self.held().saturating_sub(frames) < cap
    }
    pub(crate) fn limit_hits(&self) -> u64 {
        self.limit_hits.load(Ordering::Relaxed)
    }
    pub(crate) fn host_failures(&self) -> u64 {
        self.host_failures.load(Ordering::Relaxed)
    }
}

impl PageSource for LimitedSource {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        let prev = self.held.fetch_add(1, Ordering::Relaxed);
        let cap = if self.full.load(Ordering::Relaxed) {
            self.accept
        } else {
            self.max
        };
        if prev >= cap {
            self.held.fetch_sub(1, Ordering::Relaxed);
            if prev >= self.max {
                self.full.store(true, Ordering::Relaxed);
            }
            self.limit_hits.fetch_add(1, Ordering::Relaxed);
            return Err(AllocError);
        }
        match self.inner.alloc_frame() {
            Ok(f) => {
                // A read first: once the pool is grown, the peak rarely moves, and a
                // locked read-modify-write per frame is the costliest instruction of a
                // store that takes a frame (it waits for the page source's stores).
                if self.peak.load(Ordering::Relaxed) <= prev {
                    self.peak.fetch_max(prev + 1, Ordering::Relaxed);
                }
                Ok(f)
            }
            Err(e) => {
                self.held.fetch_sub(1, Ordering::Relaxed);
                self.host_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn free_frame(&self, frame: Frame) {
        self.inner.free_frame(frame);
        let now = self.held.fetch_sub(1, Ordering::Relaxed) - 1;
        // Written only when it changes: no store to the shared line on every free.
        if now < self.accept && self.full.load(Ordering::Relaxed) {
            self.full.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use zpool::HeapPageSource;

    #[test]
    fn a_one_frame_limit_reopens() {
        let s = LimitedSource::new(Box::new(HeapPageSource), 1, 90);
        let f = s.alloc_frame().unwrap();
        assert!(s.alloc_frame().is_err());
        assert!(s.is_full());
        s.free_frame(f);
        assert!(!s.is_full());
        let f = s.alloc_frame().unwrap();
        s.free_frame(f);
    }

    #[test]
    fn limit_and_hysteresis() {
        let s = LimitedSource::new(Box::new(HeapPageSource), 10, 80);
        let mut frames: alloc::vec::Vec<_> = (0..10).map(|_| s.alloc_frame().unwrap()).collect();
        assert!(s.alloc_frame().is_err());
        assert!(s.is_full());
        assert_eq!(s.limit_hits(), 1);
        // Below max but not below accept (8): still refused.
        s.free_frame(frames.pop().unwrap());
        assert!(s.alloc_frame().is_err());
        s.free_frame(frames.pop().unwrap());
        assert!(s.alloc_frame().is_err());
        s.free_frame(frames.pop().unwrap()); // 7 held: below accept
        assert!(!s.is_full());
        frames.push(s.alloc_frame().unwrap());
        assert_eq!(s.held(), 8);
        assert_eq!(s.peak(), 10);
        for f in frames {
            s.free_frame(f);
        }
        assert_eq!(s.held(), 0);
    }
}
