//! loom models: compaction racing free and read of objects in the same class, and LRU
//! eviction racing a free and reads in the same class.
//!
//! Compaction model:
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

/// Eviction racing a free, reads and a store in the same class.
///
/// Setup: zspage A (older) holds `victim` and `racer`, zspage B (younger) holds `stay`;
/// an owner map (zcache's tmem in miniature) holds all three. In parallel: the evictor
/// runs `evict_lru(1, ..)` with a callback that removes the handle from the owner map
/// (compare-and-remove) and, if it was still there, reads and frees it; the freer removes
/// `racer` from the map and frees it if it won; the main thread reads `stay` and `victim`
/// (either may be gone) and stores `fresh` (no owner: an evictor keeps it) in the same
/// class, which goes into A, the fullest, unless A is dying (then into B), and makes its
/// zspage the youngest (so the evictor may find B the oldest). Every interleaving: the
/// handed objects are those of one zspage, each owned object is freed exactly once (by
/// whoever removed it from the map), the evicted zspage's frames go back unless an
/// object kept by the callback or the freer's pending free is left in it (never because
/// a store went into a dying zspage), and once everything is freed no frame is left.
#[test]
fn eviction_races_free_and_read_in_one_class() {
    loom::model(|| {
        use zpool::{Handle, ZPoolError};
        let src = Arc::new(CountingSource::new(HeapPageSource));
        let pool = Arc::new(ZsPool::with_config(src.clone(), ONE_K).expect("pool"));
        let len = 1000;
        let fill = |b: u8| vec![b; len];
        // A: objects 0..4, B: objects 4..8; keep 0, 1 in A and 4 in B.
        let hs: Vec<_> = (0..8u8)
            .map(|i| pool.store(&fill(i)).expect("store"))
            .collect();
        for &i in &[2usize, 3, 5, 6, 7] {
            pool.free(hs[i]).expect("free");
        }
        let (victim, racer, stay) = (hs[0], hs[1], hs[4]);
        assert_eq!(src.live(), 2);
        let seed = move |h: Handle| {
            [(victim, 0u8), (racer, 1), (stay, 4)]
                .into_iter()
                .find(|e| e.0 == h)
                .map(|e| e.1)
        };
        let owner = Arc::new(loom::sync::Mutex::new(vec![victim, racer, stay]));
        let take = |owner: &loom::sync::Mutex<Vec<Handle>>, h| {
            let mut o = owner.lock().expect("owner");
            let pos = o.iter().position(|&x| x == h);
            pos.map(|p| o.swap_remove(p)).is_some()
        };

        let (p1, o1) = (pool.clone(), owner.clone());
        let evictor = loom::thread::spawn(move || {
            let mut freed = 0;
            let mut kept = 0;
            let mut handed = Vec::new();
            let r = p1.evict_lru(1, &mut |h| {
                handed.push(h);
                let Some(b) = seed(h) else {
                    kept += 1; // `fresh`: no owner
                    return;
                };
                if take(&o1, h) {
                    let mut out = vec![0u8; 4096];
                    let n = p1.read(h, &mut out).expect("read in callback");
                    assert_eq!(&out[..n], &vec![b; len][..]);
                    p1.free(h).expect("free in callback");
                    freed += 1;
                }
            });
            (r, freed, kept, handed)
        });
        let (p2, o2) = (pool.clone(), owner.clone());
        let freer = loom::thread::spawn(move || {
            if take(&o2, racer) {
                p2.free(racer).expect("freer");
                true
            } else {
                false
            }
        });

        let mut out = vec![0u8; 4096];
        for (h, b) in [(stay, 4u8), (victim, 0)] {
            match pool.read(h, &mut out) {
                Ok(n) => assert_eq!(&out[..n], &fill(b)[..]),
                Err(e) => assert_eq!(e, ZPoolError::InvalidHandle),
            }
        }
        let fresh = pool.store(&fill(9)).expect("store");

        let (r, by_evictor, kept, handed) = evictor.join().expect("evictor");
        let by_freer = freer.join().expect("freer");
        let in_a = |h: Handle| h == victim || h == racer;
        assert!(
            handed.iter().all(|&h| in_a(h) || h == fresh)
                || handed.iter().all(|&h| h == stay || h == fresh),
            "one zspage's objects: {handed:?}"
        );
        let left = owner.lock().expect("owner").clone();
        assert_eq!(
            by_evictor + usize::from(by_freer) + left.len(),
            3,
            "each freed once"
        );
        let o = r.expect("something evicted");
        // Objects that left the zspage while it was dying: the callback's frees, plus the
        // freer's if it landed then.
        assert!(
            o.objects_evicted >= by_evictor
                && o.objects_evicted <= by_evictor + usize::from(by_freer),
            "{o:?}"
        );
        assert!(
            o.frames_freed == 1 || (o.frames_freed == 0 && (by_freer || kept == 1)),
            "{o:?}, kept {kept}, freer {by_freer}"
        );
        assert_eq!(pool.total_frames(), src.live());
        for h in [victim, racer, stay] {
            match seed(h) {
                Some(b) if left.contains(&h) => {
                    let n = pool.read(h, &mut out).expect("owned: readable");
                    assert_eq!(&out[..n], &fill(b)[..]);
                    pool.free(h).expect("free owned");
                }
                _ => assert_eq!(pool.free(h), Err(ZPoolError::InvalidHandle)),
            }
        }
        let n = pool.read(fresh, &mut out).expect("read fresh");
        assert_eq!(&out[..n], &fill(9)[..]);
        pool.free(fresh).expect("free fresh");
        assert_eq!(pool.stats().objects, 0);
        assert_eq!(src.live(), 0, "no zspage left behind");
        assert_eq!(pool.total_frames(), 0);
    });
}
