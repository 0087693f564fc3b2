//! loom models of compaction racing frees, reads and stores in the same pool.
//!
//! Setup (single-threaded): two frames, each holding one object (`x`, `z`) after their
//! buddies were freed, so compaction pairs them: it moves one into the
//! other's frame and gives a frame back. Then, in parallel, one thread compacts while
//! another frees `z` (before, between or after compaction's lock holds: the pool lock
//! makes each move atomic for a free and a read) and the main thread reads `x` and
//! stores, reads and frees a third object. Every interleaving loom explores (at most
//! `LOOM_MAX_PREEMPTIONS` preemptions: 2 in scripts/check.sh) must read the right
//! bytes, free `z` exactly once, report exactly the frames given back, and leave the
//! pool's frame count equal to the page source's live frames.
//!
//! A fourth model has two threads store and free at once on a pool of two shards, each
//! freeing the other's object: a store that finds shard 0 locked takes shard 1, so in
//! some interleavings the objects sit in different shards (the model checks that such
//! interleavings were explored), and every free must reach the handle's own shard.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p zbud --test loom`

#![cfg(loom)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::mpsc::channel;
use loom::thread;
use zbud::ZBud;
use zpool::testing::CountingSource;
use zpool::{HeapPageSource, PAGE_SIZE, ZPool, ZPoolError};

/// Generation bits of a zbud handle (23, 21, 19 at 4, 16, 64 KiB pages).
const GEN: u32 = zbud::HANDLE_BITS - 25;

/// Object sizes below are for 4 KiB pages, scaled to the build's page (zbud's chunks
/// scale with it), so the models place the same chunks at every page size.
const S: usize = zplat::PAGE_SCALE;

type Src = Arc<CountingSource<HeapPageSource>>;

/// Two lone frames holding `x` (2000 bytes of 1) and `z` (1500 bytes of 3), which fit
/// one frame together.
fn setup() -> (Src, Arc<ZBud<Src>>, zpool::Handle, zpool::Handle) {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    let pool = Arc::new(ZBud::new(Arc::clone(&src)));
    let x = pool.store(&vec![1; 2000 * S]).unwrap();
    let y = pool.store(&vec![2; 2000 * S]).unwrap(); // beside x
    let z = pool.store(&vec![3; 1500 * S]).unwrap(); // x's frame is full: a new frame
    let w = pool.store(&vec![4; 2500 * S]).unwrap(); // beside z
    pool.free(y).unwrap();
    pool.free(w).unwrap();
    assert_eq!(src.live(), 2);
    assert_eq!(pool.zbud_stats().lone_frames, 2);
    (src, pool, x, z)
}

fn check(buf: &[u8], len: usize, byte: u8) {
    assert!(buf[..len].iter().all(|&b| b == byte));
}

#[test]
fn compaction_races_free_and_read() {
    loom::model(|| {
        let (src, pool, x, z) = setup();
        let p1 = Arc::clone(&pool);
        let compactor = thread::spawn(move || p1.compact());
        let p2 = Arc::clone(&pool);
        let freer = thread::spawn(move || p2.free(z));

        let mut buf = vec![0u8; PAGE_SIZE];
        assert_eq!(pool.read(x, &mut buf), Ok(2000 * S));
        check(&buf, 2000 * S, 1);

        let freed = compactor.join().unwrap();
        assert_eq!(freer.join().unwrap(), Ok(()));
        // Either compaction paired x and z (one frame freed) and the free of z then
        // left x alone in its frame, or the free emptied z's frame first: one frame.
        assert!(freed <= 1, "{freed}");
        assert_eq!(pool.total_frames(), 1);
        assert_eq!(src.live(), 1);
        assert_eq!(pool.free(z), Err(ZPoolError::InvalidHandle), "freed once");
        assert_eq!(pool.read(x, &mut buf), Ok(2000 * S));
        check(&buf, 2000 * S, 1);
        pool.free(x).unwrap();
        assert_eq!(pool.total_frames(), 0);
        drop(pool);
        assert_eq!(src.live(), 0);
    });
}

/// Bounded steps racing a store: the stored object may land beside either lone object
/// (or in a fresh frame); compaction revalidates every move, so nothing is lost and the
/// frame count stays exact.
#[test]
fn compaction_steps_race_a_store() {
    loom::model(|| {
        let (src, pool, x, z) = setup();
        let p1 = Arc::clone(&pool);
        let compactor = thread::spawn(move || {
            let mut freed = 0;
            loop {
                let st = p1.compact_step(1);
                assert!(st.objects_moved <= 2, "one pair at most");
                freed += st.frames_freed;
                if st.done {
                    return freed;
                }
            }
        });
        let c = pool.store(&vec![5; 1500 * S]).unwrap();
        let mut buf = vec![0u8; PAGE_SIZE];
        assert_eq!(pool.read(c, &mut buf), Ok(1500 * S));
        check(&buf, 1500 * S, 5);

        let _freed = compactor.join().unwrap();
        assert_eq!(pool.total_frames(), src.live());
        for (h, len, byte) in [(x, 2000 * S, 1u8), (z, 1500 * S, 3), (c, 1500 * S, 5)] {
            assert_eq!(pool.read(h, &mut buf), Ok(len));
            check(&buf, len, byte);
            pool.free(h).unwrap();
        }
        assert_eq!(pool.total_frames(), 0);
        drop(pool);
        assert_eq!(src.live(), 0);
    });
}

/// Two compactors racing a read. A round's memory (snapshot, plan) is allocated with
/// the lock dropped and installed only if the round still waits for it: the compactor
/// that comes back second must hand its memory back, whatever the other has done
/// meanwhile (snapshotted, planned, realised or finished the round). Every explored
/// interleaving: one frame freed in all, both objects intact, frames exact.
#[test]
fn two_compactors_race_a_read() {
    loom::model(|| {
        let (src, pool, x, z) = setup();
        let p1 = Arc::clone(&pool);
        let c1 = thread::spawn(move || p1.compact());
        let p2 = Arc::clone(&pool);
        let c2 = thread::spawn(move || p2.compact());
        let mut buf = vec![0u8; PAGE_SIZE];
        assert_eq!(pool.read(z, &mut buf), Ok(1500 * S));
        check(&buf, 1500 * S, 3);

        let freed = c1.join().unwrap() + c2.join().unwrap();
        assert_eq!(freed, 1, "x and z paired once");
        assert_eq!((pool.total_frames(), src.live()), (1, 1));
        for (h, len, byte) in [(x, 2000 * S, 1u8), (z, 1500 * S, 3)] {
            assert_eq!(pool.read(h, &mut buf), Ok(len));
            check(&buf, len, byte);
            pool.free(h).unwrap();
        }
        drop(pool);
        assert_eq!(src.live(), 0);
    });
}

/// The shard a handle names (the low bit of its entry index, for two shards).
fn shard_of(h: zpool::Handle) -> usize {
    (((h.to_raw() >> GEN) - 1) & 1) as usize
}

/// Two threads each store an object (2000 bytes: two fit one frame), hand its handle to
/// the other, read the other's object and free it. Where the stores overlap, one finds
/// shard 0 locked and takes shard 1 (`try_lock`), so a thread frees an object of the
/// other shard while the other thread works in its own. Every explored interleaving:
/// the right bytes, each object freed once through its handle, no frame left.
#[test]
fn stores_on_two_shards_and_frees_of_the_other_shard() {
    static SPLIT: AtomicUsize = AtomicUsize::new(0);
    static SAME: AtomicUsize = AtomicUsize::new(0);
    loom::model(|| {
        let src = Arc::new(CountingSource::new(HeapPageSource));
        let pool = Arc::new(ZBud::with_shards(Arc::clone(&src), 2));
        let (to_main, from_t) = channel();
        let (to_t, from_main) = channel();
        let p = Arc::clone(&pool);
        let t = thread::spawn(move || {
            let a = p.store(&vec![1; 2000 * S]).unwrap();
            to_main.send(a).unwrap();
            let b = from_main.recv().unwrap();
            let mut buf = vec![0u8; PAGE_SIZE];
            assert_eq!(p.read(b, &mut buf), Ok(2000 * S));
            check(&buf, 2000 * S, 2);
            p.free(b).unwrap();
            a
        });
        let b = pool.store(&vec![2; 2000 * S]).unwrap();
        to_t.send(b).unwrap();
        let a = from_t.recv().unwrap();
        let mut buf = vec![0u8; PAGE_SIZE];
        assert_eq!(pool.read(a, &mut buf), Ok(2000 * S));
        check(&buf, 2000 * S, 1);
        pool.free(a).unwrap();
        assert_eq!(t.join().unwrap(), a);
        if shard_of(a) == shard_of(b) {
            SAME.fetch_add(1, Ordering::Relaxed);
        } else {
            SPLIT.fetch_add(1, Ordering::Relaxed);
        }
        for h in [a, b] {
            assert_eq!(pool.free(h), Err(ZPoolError::InvalidHandle), "freed once");
            assert_eq!(pool.read(h, &mut buf), Err(ZPoolError::InvalidHandle));
        }
        assert_eq!((pool.total_frames(), src.live()), (0, 0));
        drop(pool);
        assert_eq!(src.live(), 0);
    });
    let (split, same) = (SPLIT.load(Ordering::Relaxed), SAME.load(Ordering::Relaxed));
    println!("interleavings: {split} with the objects in two shards, {same} in one");
    assert!(
        split > 0,
        "no interleaving put the objects in different shards"
    );
    assert!(same > 0);
}
