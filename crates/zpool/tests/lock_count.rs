//! No lock of this crate is held while `RecyclingSource` calls its inner source.
//!
//! Needs the `lock-count` feature (`cargo test -p zpool --features lock-count --test
//! lock_count`): the inner source asserts `zpool::held_locks() == 0` on every call. One
//! test in its own binary, because the counter is process-global.

use std::sync::atomic::{AtomicUsize, Ordering};

use zpool::{AllocError, Frame, HeapPageSource, PageSource, RecyclingSource};

/// Counts the calls it got while some zpool lock was held.
#[derive(Default)]
struct Checking {
    calls: AtomicUsize,
    under_lock: AtomicUsize,
}

impl Checking {
    fn check(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if zpool::held_locks() != 0 {
            self.under_lock.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl PageSource for Checking {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        self.check();
        HeapPageSource.alloc_frame()
    }
    fn free_frame(&self, frame: Frame) {
        self.check();
        HeapPageSource.free_frame(frame)
    }
}

#[test]
fn recycling_source_never_calls_the_inner_source_under_its_lock() {
    let inner = Checking::default();
    {
        let r = RecyclingSource::new(&inner, 2).expect("cache");
        let frames: Vec<Frame> = (0..4).map(|_| r.alloc_frame().expect("frame")).collect();
        for f in frames {
            r.free_frame(f); // two cached, two over the capacity
        }
        assert_eq!(r.cached(), 2);
        let f = r.alloc_frame().expect("cached frame");
        r.free_frame(f);
        assert_eq!(r.drain(), 2);
        let frames: Vec<Frame> = (0..2).map(|_| r.alloc_frame().expect("frame")).collect();
        for f in frames {
            r.free_frame(f);
        }
        assert_eq!(r.cached(), 2);
        // Dropped with two frames cached: they go back to the inner source.
    }
    assert_eq!(zpool::held_locks(), 0);
    let calls = inner.calls.load(Ordering::Relaxed);
    assert!(calls >= 12, "{calls} calls");
    assert_eq!(
        inner.under_lock.load(Ordering::Relaxed),
        0,
        "inner source called with a RecyclingSource lock held ({calls} calls in all)"
    );
}
