//! loom models: compaction racing free and read of objects in the same class.
//!
//! Setup (single-threaded): a class of four 1 KiB slots per one-frame zspage; two
//! zspages, A holding one object (`moving`) and B holding two (`stay`, `other`), so
//! `compact()` moves `moving` from A into B and gives A's frame back. Then, in parallel:
//! one thread compacts, one frees `moving` (before or after its move: the class lock makes
//! a move atomic for free and read), the main thread reads `stay` and stores, reads and
//! frees an object of another class. Every interleaving must read `stay`'s own bytes,
//! free `moving` exactly once, and leave the pool's frame count equal to the source's
//! live frames.
#![cfg(loom)]

use std::sync::Arc;
use zpool::testing::CountingSource;
use zpool::{HeapPageSource, ZPool};
use zsmalloc::{PoolConfig, ZsPool};

const ONE_K: PoolConfig = PoolConfig {
    max_chain: 1,
    min_class: 1024,
    small_spacing: 1024,
    split: 4096,
    spacing: 1024,
};

#[test]
fn compaction_races_free_and_read_in_one_class() {
    loom::model(|| {
        let src = Arc::new(CountingSource::new(HeapPageSource));
        let pool = Arc::new(ZsPool::with_config(src.clone(), ONE_K).expect("pool"));
        let len = 1000;
        let fill = |b: u8| vec![b; len];
        // A: 4 objects, B: 4 objects; then free 3 of A and 2 of B.
        let hs: Vec<_> = (0..8u8)
            .map(|i| pool.store(&fill(i)).expect("store"))
            .collect();
        for &i in &[0usize, 1, 2, 4, 5] {
            pool.free(hs[i]).expect("free");
        }
        let (moving, stay, other) = (hs[3], hs[6], hs[7]);
        assert_eq!(pool.freeable(), 1);

        let p1 = pool.clone();
        let compactor = loom::thread::spawn(move || p1.compact());
        let p2 = pool.clone();
        let freer = loom::thread::spawn(move || p2.free(moving));

        let mut out = vec![0u8; 4096];
        let n = pool.read(stay, &mut out).expect("read while compacting");
        assert_eq!(&out[..n], &fill(6)[..]);
        // A store in another class meanwhile: its own lock, no interference.
        let big = pool.store(&[9u8; 3000]).expect("store in another class");
        let n = pool.read(big, &mut out).expect("read");
        assert_eq!(&out[..n], &[9u8; 3000][..]);
        pool.free(big).expect("free");

        let freed = compactor.join().expect("compactor");
        assert_eq!(freer.join().expect("freer"), Ok(()));
        // Whether compaction moved `moving` or the free emptied A first, A's frame is
        // gone and nothing else changed.
        assert!(freed <= 1);
        assert_eq!(pool.total_frames(), 1);
        assert_eq!(src.live(), 1);
        assert_eq!(pool.stats().objects, 2);
        assert!(pool.free(moving).is_err(), "freed exactly once");
        for (h, b) in [(stay, 6u8), (other, 7u8)] {
            let n = pool.read(h, &mut out).expect("read after");
            assert_eq!(&out[..n], &fill(b)[..]);
        }
    });
}
