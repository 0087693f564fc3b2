//! No zbud lock is held while the page source runs.
//!
//! Needs the `lock-count` feature (`cargo test -p zbud --features lock-count --test
//! lock_count`): the page source checks `zbud::held_locks() == 0` on every
//! `alloc_frame` and `free_frame`, during stores, frees, compaction and teardown, on a
//! pool with the default shards and on one whose objects spread over four shards. One
//! test in its own binary, because the counter is process-global.

use std::sync::atomic::{AtomicUsize, Ordering};

use zbud::ZBud;
use zpool::{AllocError, Frame, HeapPageSource, PageSource, ZPool};

/// Counts its calls, and those made while a zbud lock was held.
#[derive(Default)]
struct Checking {
    calls: AtomicUsize,
    under_lock: AtomicUsize,
    live: AtomicUsize,
}

impl Checking {
    fn check(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if zbud::held_locks() != 0 {
            self.under_lock.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (calls, calls under a lock) since the last `take`.
    fn take(&self) -> (usize, usize) {
        (
            self.calls.swap(0, Ordering::Relaxed),
            self.under_lock.swap(0, Ordering::Relaxed),
        )
    }
}

impl PageSource for Checking {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        self.check();
        let f = HeapPageSource.alloc_frame()?;
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(f)
    }
    fn free_frame(&self, frame: Frame) {
        self.check();
        self.live.fetch_sub(1, Ordering::Relaxed);
        HeapPageSource.free_frame(frame)
    }
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + seed * 7) as u8).collect()
}

#[test]
fn page_source_is_never_called_with_a_lock_held() {
    check(|src| ZBud::new(src));
    check(|src| ZBud::with_shards_round_robin(src, 4));
}

fn check(make: impl Fn(&Checking) -> ZBud<&Checking>) {
    let src = Checking::default();
    let pool = make(&src);
    let mut report = Vec::new();
    // Stores of sizes that pair in arrival order only partly.
    let mut live: Vec<_> = (0..3000)
        .map(|i| {
            let len = [300, 1500, 2600, 3900, 4096, 900][i % 6] * zplat::PAGE_SCALE - i % 40;
            (pool.store(&pattern(len, i)).expect("store"), len, i)
        })
        .collect();
    report.push(("store", src.take()));
    let mut kept = Vec::new();
    for (n, (h, len, i)) in live.drain(..).enumerate() {
        if n % 3 == 0 || n % 7 == 0 {
            kept.push((h, len, i));
        } else {
            pool.free(h).expect("free");
        }
    }
    report.push(("free", src.take()));
    let freed = pool.compact();
    assert!(freed > 0);
    report.push(("compact", src.take()));
    let mut out = vec![0u8; zpool::PAGE_SIZE];
    for &(h, len, i) in &kept {
        assert_eq!(pool.read(h, &mut out), Ok(len));
        assert_eq!(out[..len], pattern(len, i)[..]);
    }
    drop(pool);
    report.push(("drop", src.take()));
    assert_eq!(src.live.load(Ordering::Relaxed), 0);
    assert_eq!(zbud::held_locks(), 0);
    for (what, (calls, _)) in &report {
        assert!(*calls > 0, "{what}: the page source was never called");
    }
    let bad: Vec<_> = report.iter().filter(|(_, (_, u))| *u > 0).collect();
    assert!(
        bad.is_empty(),
        "page source called with a zbud lock held, (phase, (calls, under a lock)): {bad:?}"
    );
}
