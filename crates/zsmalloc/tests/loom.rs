//! loom models: compaction racing free and read of objects in the same class, and the
//! lock-dropping paths that take a frame from the page source with no lock held
//! (compaction growing a destination, stores that need a frame), which must choose
//! again after retaking the lock.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p zsmalloc --test loom`
#![cfg(loom)]

use std::sync::Arc;
use zpool::testing::CountingSource;
use zpool::{Handle, HeapPageSource, PAGE_SIZE, ZPool, ZPoolError};
use zsmalloc::{PoolConfig, ZsPool};

/// Page size / 4 KiB: lengths below are for 4 KiB pages, scaled.
const S: usize = PAGE_SIZE / 4096;

/// Four 1 KiB slots per one-frame zspage (1000-byte objects); frames never grow (sizes
/// times `S` at larger pages).
const ONE_K: PoolConfig = PoolConfig {
    max_chain: 1,
    min_class: 1024 * S,
    small_spacing: 1024 * S,
    split: PAGE_SIZE,
    spacing: 1024 * S,
};

/// 2 KiB slots, four per two-frame zspage (2000-byte objects): slots 0 and 1 lie in the
/// first frame, 2 and 3 in the second, which a zspage takes only when slot 2 is used.
const TWO_K: PoolConfig = PoolConfig {
    max_chain: 2,
    ..ONE_K
};

type Src = Arc<CountingSource<HeapPageSource>>;

fn fill(len: usize, b: u8) -> Vec<u8> {
    vec![b; len]
}

fn read_is(pool: &ZsPool<Src>, h: Handle, len: usize, b: u8) {
    let mut out = vec![0u8; PAGE_SIZE];
    let n = pool.read(h, &mut out).expect("read");
    assert_eq!(&out[..n], &fill(len, b)[..]);
}

/// Setup (single-threaded): a class of four 1 KiB slots per one-frame zspage; zspage A
/// holds one object (`moving`) and B two (`stay`, `other`), so compaction moves `moving`
/// from A into B and gives A's frame back. In parallel: one thread compacts, one frees
/// `moving` (before or after its move: the class lock makes a move atomic for free and
/// read), the main thread reads `stay` and stores, reads and frees an object of another
/// class. Every interleaving loom explores (at most two preemptions in check.sh) must
/// read `stay`'s own bytes, free `moving` exactly once, and leave the pool's frame count
/// equal to the source's live frames.
#[test]
fn compaction_races_free_and_read_in_one_class() {
    loom::model(|| {
        let src = Arc::new(CountingSource::new(HeapPageSource));
        let pool = Arc::new(ZsPool::with_config(src.clone(), ONE_K).expect("pool"));
        let len = 1000 * S;
        // A: 4 objects, B: 4 objects; then free 3 of A and 2 of B.
        let hs: Vec<_> = (0..8u8)
            .map(|i| pool.store(&fill(len, i)).expect("store"))
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

        read_is(&pool, stay, len, 6);
        // A store in another class meanwhile: its own lock, no interference.
        let big = pool
            .store(&fill(3000 * S, 9))
            .expect("store in another class");
        read_is(&pool, big, 3000 * S, 9);
        pool.free(big).expect("free");

        let freed = compactor.join().expect("compactor");
        assert_eq!(freer.join().expect("freer"), Ok(()));
        // Whether compaction moved `moving` or the free emptied A first, A's frame is
        // gone and nothing else changed.
        assert!(freed <= 1);
        assert_eq!(pool.total_frames(), 1);
        assert_eq!(src.live(), 1);
        assert_eq!(pool.stats().objects, 2);
        assert_eq!(
            pool.free(moving),
            Err(ZPoolError::InvalidHandle),
            "freed once"
        );
        read_is(&pool, stay, len, 6);
        read_is(&pool, other, len, 7);
    });
}

/// Compaction that must grow its destination, racing a free of the object it moves, a
/// store into the destination and a read.
///
/// Setup: zspage A (2 frames) holds `moving` in slot 3; zspage B (1 frame) holds `b0`
/// and `b1` in slots 0 and 1. Compaction's destination is B (the fuller), whose next
/// slot (2) needs a second frame: the compactor drops the class lock, takes a frame from
/// the page source, locks again and chooses afresh. Meanwhile the freer frees `moving`
/// (then A empties and there is nothing to move) and the main thread stores `fresh`
/// (which goes into B's slot 2, growing B itself, unless compaction got there first)
/// and reads `b0`. Every explored interleaving: right bytes everywhere, `moving` freed
/// once, no slot used twice, the spare frame given back when it turned out not to be
/// needed, and the pool's frames equal to the source's live frames.
#[test]
fn compaction_growing_a_destination_races_free_store_and_read() {
    loom::model(|| {
        let src = Arc::new(CountingSource::new(HeapPageSource));
        let pool = Arc::new(ZsPool::with_config(src.clone(), TWO_K).expect("pool"));
        let len = 2000 * S;
        // A: slots 0..4 (2 frames); B: slots 0, 1 (1 frame).
        let a: Vec<_> = (0..4u8)
            .map(|i| pool.store(&fill(len, i)).expect("store"))
            .collect();
        let b0 = pool.store(&fill(len, 10)).expect("store");
        let b1 = pool.store(&fill(len, 11)).expect("store");
        for &h in &a[..3] {
            pool.free(h).expect("free");
        }
        let moving = a[3];
        assert_eq!((src.live(), pool.freeable()), (3, 1));

        let p1 = pool.clone();
        let compactor = loom::thread::spawn(move || {
            let mut freed = 0;
            loop {
                let s = p1.compact_step(8);
                freed += s.frames_freed;
                if s.done {
                    return freed;
                }
            }
        });
        let p2 = pool.clone();
        let freer = loom::thread::spawn(move || p2.free(moving));

        let fresh = pool.store(&fill(len, 20)).expect("store");
        read_is(&pool, b0, len, 10);

        compactor.join().expect("compactor");
        assert_eq!(freer.join().expect("freer"), Ok(()));
        assert_eq!(
            pool.free(moving),
            Err(ZPoolError::InvalidHandle),
            "freed once"
        );
        for (h, b) in [(b0, 10u8), (b1, 11), (fresh, 20)] {
            read_is(&pool, h, len, b);
        }
        assert_eq!(pool.stats().objects, 3);
        assert_eq!(pool.total_frames(), src.live());
        for h in [b0, b1, fresh] {
            pool.free(h).expect("free");
        }
        assert_eq!((pool.total_frames(), src.live()), (0, 0));
    });
}

/// Two stores that each need a frame: zspage A (1 frame) holds slots 0 and 1, so the
/// next object (slot 2) needs A's second frame. Both stores find that out under the
/// class lock, drop it, take a frame and lock again; whichever comes second must see
/// that slot 2 is taken and slot 3 needs no frame, put its object there and give its
/// spare back after unlocking. Every explored interleaving: both objects intact in
/// distinct slots, two frames held, none leaked.
#[test]
fn stores_that_need_a_frame_race() {
    loom::model(|| {
        let src = Arc::new(CountingSource::new(HeapPageSource));
        let pool = Arc::new(ZsPool::with_config(src.clone(), TWO_K).expect("pool"));
        let len = 2000 * S;
        let a0 = pool.store(&fill(len, 1)).expect("store");
        let a1 = pool.store(&fill(len, 2)).expect("store");
        assert_eq!(src.live(), 1);

        let p1 = pool.clone();
        let other = loom::thread::spawn(move || p1.store(&fill(len, 3)).expect("store"));
        let mine = pool.store(&fill(len, 4)).expect("store");
        let theirs = other.join().expect("storer");

        assert_ne!(mine, theirs);
        for (h, b) in [(a0, 1u8), (a1, 2), (theirs, 3), (mine, 4)] {
            read_is(&pool, h, len, b);
        }
        assert_eq!(pool.total_frames(), 2, "one zspage, both frames");
        assert_eq!(src.live(), 2, "the unneeded spare went back");
        drop(pool);
        assert_eq!(src.live(), 0);
    });
}
