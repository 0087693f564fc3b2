//! A page source that keeps frames given back, up to a bound, and hands them out again.

use alloc::vec::Vec;

use crate::frame::{AllocError, Frame, PageSource};
use crate::sync::Mutex;

/// Wraps a [`PageSource`] and keeps up to `capacity` frees for the next allocations,
/// like the kernel's per-CPU free-page lists in front of the buddy allocator.
///
/// For hosts whose frame allocator is expensive per call: the heap
/// ([`crate::HeapPageSource`] zeroes every new frame, and the C library may return freed
/// memory to the kernel and fault it in again), a hypervisor's page pool behind a lock.
/// A recycled frame keeps the bytes it held (it is initialised memory); allocators never
/// read bytes they have not written.
///
/// The cache is one spin lock around a vector reserved up front, so `free_frame` never
/// allocates. It is taken once per frame (not per page), only to push or pop one frame,
/// and is innermost in the lock order (docs/concurrency.md): it is never held while the
/// inner source is called (`tests/lock_count.rs` checks this). Frames still cached go
/// back to the inner source when the `RecyclingSource` is dropped, or on
/// [`RecyclingSource::drain`].
pub struct RecyclingSource<S: PageSource> {
    inner: S,
    cache: Mutex<Vec<Frame>>,
}

impl<S: PageSource> RecyclingSource<S> {
    /// A source that caches up to `capacity` frames in front of `inner`. Fails only
    /// when the cache's `capacity` pointers cannot be allocated.
    pub fn new(inner: S, capacity: usize) -> Result<Self, AllocError> {
        let mut v = Vec::new();
        v.try_reserve_exact(capacity).map_err(|_| AllocError)?;
        Ok(RecyclingSource {
            inner,
            cache: Mutex::new(v),
        })
    }

    /// Frames cached now.
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }

    /// Gives every cached frame back to the inner source (a host's memory-pressure
    /// hook); returns how many.
    pub fn drain(&self) -> usize {
        let mut n = 0;
        // One at a time: the lock is not held while the inner source works, and the
        // reservation stays, so later frees still never allocate. (Not `while let` on
        // `lock().pop()`: a `while let` scrutinee's guard lives through the loop body.)
        loop {
            let f = self.cache.lock().pop();
            let Some(f) = f else {
                return n;
            };
            self.inner.free_frame(f);
            n += 1;
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: PageSource> PageSource for RecyclingSource<S> {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        let cached = self.cache.lock().pop();
        match cached {
            Some(f) => Ok(f),
            None => self.inner.alloc_frame(),
        }
    }

    fn free_frame(&self, frame: Frame) {
        let mut c = self.cache.lock();
        if c.len() < c.capacity() {
            c.push(frame);
        } else {
            drop(c);
            self.inner.free_frame(frame);
        }
    }
}

impl<S: PageSource> Drop for RecyclingSource<S> {
    fn drop(&mut self) {
        // Move the frames out first: the lock is never held while the inner source runs.
        let frames = core::mem::take(&mut *self.cache.lock());
        for f in frames {
            self.inner.free_frame(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeapPageSource;
    use crate::testing::{CountingSource, FailMode, FailingSource};

    #[test]
    fn frees_are_reused_up_to_the_capacity_and_returned_on_drop() {
        let counting = CountingSource::new(HeapPageSource);
        {
            let r = RecyclingSource::new(&counting, 2).unwrap();
            let frames: Vec<Frame> = (0..3).map(|_| r.alloc_frame().unwrap()).collect();
            assert_eq!(counting.live(), 3);
            for f in frames {
                r.free_frame(f);
            }
            // Two kept, the third went back.
            assert_eq!((r.cached(), counting.live()), (2, 2));
            let a = r.alloc_frame().unwrap();
            let b = r.alloc_frame().unwrap();
            assert_eq!((r.cached(), counting.live()), (0, 2));
            let c = r.alloc_frame().unwrap();
            assert_eq!(counting.live(), 3);
            r.free_frame(a);
            r.free_frame(b);
            r.free_frame(c); // over the capacity: straight back
            assert_eq!((r.cached(), counting.live()), (2, 2));
            assert_eq!(r.drain(), 2);
            assert_eq!((r.cached(), counting.live()), (0, 0));
            // The reservation survives a drain: a later free still caches.
            let d = r.alloc_frame().unwrap();
            r.free_frame(d);
            assert_eq!(r.cached(), 1);
        }
        assert_eq!(counting.live(), 0, "drop gives the cache back");
    }

    #[test]
    fn an_empty_cache_passes_the_inner_failure_through() {
        let failing = FailingSource::with_mode(HeapPageSource, FailMode::Always);
        let r = RecyclingSource::new(&failing, 4).unwrap();
        assert!(r.alloc_frame().is_err());
    }
}
