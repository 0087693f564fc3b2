//! loom models of the eviction protocol: allocation and free on one thread racing
//! `evict_lru` on another.
//!
//! The owner of the handles (tmem in zcache) is modelled by a map under its own lock:
//! the owner frees an object by removing it from the map, then calling `free` (lock
//! order: owner, then pool); the eviction callback frees only the handles it can still
//! remove from the map (compare and invalidate), then calls `free`. The pool lock is
//! never held while the callback runs, so the order is never pool, then owner.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p zbud --test loom`

#![cfg(loom)]

use std::sync::Arc;

use loom::sync::Mutex;
use loom::thread;
use zbud::ZBud;
use zpool::testing::CountingSource;
use zpool::{Handle, HeapPageSource, ZPool, ZPoolError};

type Src = Arc<CountingSource<HeapPageSource>>;

struct Owner {
    map: Mutex<Vec<(Handle, u8)>>,
}

impl Owner {
    fn take(&self, h: Handle) -> bool {
        let mut m = self.map.lock().unwrap();
        match m.iter().position(|(x, _)| *x == h) {
            Some(i) => {
                m.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

fn setup() -> (Src, Arc<ZBud<Src>>, Arc<Owner>) {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    let pool = Arc::new(ZBud::new(Arc::clone(&src)));
    let a = pool.store(&[1; 1000]).unwrap();
    let b = pool.store(&[2; 1000]).unwrap(); // same frame as a
    let owner = Arc::new(Owner {
        map: Mutex::new(vec![(a, 1), (b, 2)]),
    });
    (src, pool, owner)
}

fn evictor(pool: Arc<ZBud<Src>>, owner: Arc<Owner>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let r = pool.evict_lru(2, &mut |h| {
            if owner.take(h) {
                assert_eq!(pool.free(h), Ok(()));
            }
        });
        assert!(
            matches!(r, Ok(_) | Err(ZPoolError::NothingToEvict)),
            "{r:?}"
        );
    })
}

/// Every object the owner still has is intact; counts agree; everything can be freed
/// and every frame goes back.
fn check_and_teardown(src: Src, pool: Arc<ZBud<Src>>, owner: Arc<Owner>) {
    let map = owner.map.lock().unwrap().clone();
    let st = pool.zbud_stats();
    assert_eq!(st.objects, map.len());
    assert_eq!(st.dying_frames, 0);
    assert_eq!(st.frames, src.live());
    let mut buf = [0u8; 1000];
    for (h, v) in &map {
        assert_eq!(pool.read(*h, &mut buf), Ok(1000));
        assert!(buf.iter().all(|b| b == v));
        assert_eq!(pool.free(*h), Ok(()));
    }
    assert_eq!(pool.total_frames(), 0);
    drop(pool);
    assert_eq!(src.live(), 0);
}

#[test]
fn free_races_eviction_of_the_same_frame() {
    loom::model(|| {
        let (src, pool, owner) = setup();
        let (a, b) = {
            let m = owner.map.lock().unwrap();
            (m[0].0, m[1].0)
        };
        let ev = evictor(Arc::clone(&pool), Arc::clone(&owner));
        // The owner frees its first object (possibly while its frame is dying) and reads
        // the second if it still has it.
        if owner.take(a) {
            assert_eq!(pool.free(a), Ok(()));
            assert_eq!(pool.free(a), Err(ZPoolError::InvalidHandle));
        }
        let has_b = owner.map.lock().unwrap().iter().any(|(h, _)| *h == b);
        if has_b {
            let mut buf = [0u8; 1000];
            // The evictor may free b between the check and the read: then the handle is
            // invalid, never another object.
            match pool.read(b, &mut buf) {
                Ok(n) => assert!(n == 1000 && buf.iter().all(|&x| x == 2)),
                Err(e) => assert_eq!(e, ZPoolError::InvalidHandle),
            }
        }
        ev.join().unwrap();
        check_and_teardown(src, pool, owner);
    });
}

#[test]
fn alloc_races_eviction() {
    loom::model(|| {
        let (src, pool, owner) = setup();
        let ev = evictor(Arc::clone(&pool), Arc::clone(&owner));
        // A new object may not land in the dying frame; it must survive the eviction
        // (or be evicted through the owner, never freed behind its back).
        let c = pool.store(&[3; 1000]).unwrap();
        owner.map.lock().unwrap().push((c, 3));
        ev.join().unwrap();
        check_and_teardown(src, pool, owner);
    });
}
