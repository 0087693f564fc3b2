//! loom models of tmem-core's lock interplay (run by scripts/check.sh with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p tmem-core --test loom`).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use tmem_core::testing::{SeedCtx, SeedPam, seed_page};
use tmem_core::{LoadMode, Oid, PAGE_SIZE, PoolKind, Tmem, TmemError};

const O: Oid = Oid::new(42, 0, 0);

/// Stack for every model thread above 4 KiB pages: the models keep a few pages on the
/// stack (`seed_page` returns one by value), and loom's coroutines have 32 KiB.
const STACK: usize = 32 * PAGE_SIZE;

/// Runs a model body: as is at 4 KiB; at larger pages on a loom thread with [`STACK`]
/// (the model's main coroutine cannot be given more stack), joined at once.
fn model(f: impl Fn() + Sync + Send + 'static) {
    if PAGE_SIZE == 4096 {
        loom::model(f);
    } else {
        let f = std::sync::Arc::new(f);
        loom::model(move || {
            let f = f.clone();
            spawn(move || f()).join().unwrap();
        });
    }
}

/// `thread::spawn`, with [`STACK`] above 4 KiB pages.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    if PAGE_SIZE == 4096 {
        thread::spawn(f)
    } else {
        thread::Builder::new().stack_size(STACK).spawn(f).unwrap()
    }
}

fn setup(kind: PoolKind) -> (Arc<Tmem<SeedPam>>, tmem_core::ClientId, tmem_core::PoolId) {
    let t = Arc::new(Tmem::new(SeedPam::new()));
    let c = t.new_client().unwrap();
    let p = t.new_pool(c, kind).unwrap();
    (t, c, p)
}

/// Store, load and invalidate of keys in one bucket from two threads: every load sees a
/// page that was stored under that key (or a miss), never other bytes; nothing leaks.
#[test]
fn store_load_invalidate_one_bucket() {
    model(|| {
        let (t, c, p) = setup(PoolKind::Persistent);
        let mut ctx = SeedCtx::default();
        t.store(&mut ctx, p, O, 1, &seed_page(10)).unwrap();
        let t2 = t.clone();
        let th = spawn(move || {
            let mut ctx = SeedCtx::default();
            t2.store(&mut ctx, p, O, 1, &seed_page(11)).unwrap();
            t2.invalidate_page(p, O, 2).unwrap();
        });
        let mut out = [0u8; PAGE_SIZE];
        t.store(&mut ctx, p, O, 2, &seed_page(20)).unwrap();
        if t.load(&mut ctx, p, O, 1, &mut out, LoadMode::Keep).unwrap() {
            assert!(out == seed_page(10) || out == seed_page(11));
        } else {
            panic!("persistent page 1 vanished");
        }
        th.join().unwrap();
        // Page 1 now holds the second thread's store; page 2 may or may not be there.
        assert!(t.load(&mut ctx, p, O, 1, &mut out, LoadMode::Keep).unwrap());
        assert_eq!(out, seed_page(11));
        if t.load(&mut ctx, p, O, 2, &mut out, LoadMode::Keep).unwrap() {
            assert_eq!(out, seed_page(20));
        }
        t.destroy_pool(c, p).unwrap();
        assert_eq!(t.pam().live(), 0);
    });
}

/// Destroy racing a store and a load: the destroy never waits, in-flight operations
/// either complete before it or fail cleanly, and no descriptor leaks.
#[test]
fn destroy_races_store_and_load() {
    model(|| {
        let (t, c, p) = setup(PoolKind::Persistent);
        let mut ctx = SeedCtx::default();
        t.store(&mut ctx, p, O, 0, &seed_page(1)).unwrap();
        let h = t.pool(p).unwrap();
        let t2 = t.clone();
        let th = spawn(move || {
            let mut ctx = SeedCtx::default();
            let r = t2.store_in(&mut ctx, &h, O, 5, &seed_page(5));
            assert!(r.is_ok() || r == Err(TmemError::PoolDestroyed), "{r:?}");
            let mut out = [0u8; PAGE_SIZE];
            match t2.load_from(&mut ctx, &h, O, 0, &mut out, LoadMode::Keep) {
                Ok(true) => assert_eq!(out, seed_page(1)),
                Ok(false) => panic!("persistent page vanished before destroy"),
                Err(e) => assert_eq!(e, TmemError::PoolDestroyed),
            }
        });
        t.destroy_pool(c, p).unwrap();
        th.join().unwrap();
        assert_eq!(t.pam().live(), 0);
    });
}

/// Eviction's compare-and-invalidate racing a new store of the same key: the new page
/// must survive.
#[test]
fn compare_and_invalidate_races_new_store() {
    model(|| {
        let (t, c, p) = setup(PoolKind::Ephemeral);
        let mut ctx = SeedCtx::default();
        t.store(&mut ctx, p, O, 7, &seed_page(1)).unwrap();
        let old = t.pam().last_created(1);
        let t2 = t.clone();
        let th = spawn(move || {
            // The evictor holds the old descriptor and invalidates only if unchanged.
            t2.compare_and_invalidate(p, O, 7, &old).unwrap();
        });
        t.store(&mut ctx, p, O, 7, &seed_page(2)).unwrap();
        th.join().unwrap();
        let mut out = [0u8; PAGE_SIZE];
        assert!(
            t.load(&mut ctx, p, O, 7, &mut out, LoadMode::Keep).unwrap(),
            "new store lost"
        );
        assert_eq!(out, seed_page(2));
        t.destroy_pool(c, p).unwrap();
        assert_eq!(t.pam().live(), 0);
    });
}

/// `destroy_pool` of one of a client's pools racing `destroy_client` of that client:
/// whichever gets to the pool first, every pool of the client ends destroyed and every
/// page freed (destroy_client used to stop at the first pool it could not leave,
/// leaving phantom members in the rest, which were then never drained).
#[test]
fn destroy_client_races_destroy_pool() {
    model(|| {
        let t = Arc::new(Tmem::new(SeedPam::new()));
        let c = t.new_client().unwrap();
        let mut ctx = SeedCtx::default();
        let pools: Vec<_> = (0..2)
            .map(|i| {
                let p = t.new_pool(c, PoolKind::Persistent).unwrap();
                t.store(&mut ctx, p, O, i, &seed_page(i as u32)).unwrap();
                p
            })
            .collect();
        let t2 = t.clone();
        let p0 = pools[0];
        let th = spawn(move || {
            // May lose to destroy_client: then the client or membership is gone.
            let _ = t2.destroy_pool(c, p0);
        });
        let r = t.destroy_client(c);
        assert!(matches!(
            r,
            Ok(()) | Err(TmemError::NotAMember) | Err(TmemError::UnknownPool)
        ));
        th.join().unwrap();
        assert!(
            t.pool_ids().unwrap().is_empty(),
            "pools left: {:?}",
            t.pool_ids()
        );
        assert_eq!(t.pam().live(), 0);
    });
}

/// `invalidate_object` racing a flush of the whole pool and a new store of the same
/// object: the bucket keeps the counts of all its trees, and a tree taken out stays
/// counted until its drain is done, so each taker must take back exactly its own trees'
/// counts. (Had the flush zeroed the bucket's counts, the invalidate would subtract its
/// tree a second time, from the new store's.) Afterwards the counts are what is there.
#[test]
fn invalidate_object_races_flush_and_store_counts_stay_exact() {
    model(|| {
        let (t, c, p) = setup(PoolKind::Persistent);
        let mut ctx = SeedCtx::default();
        t.store(&mut ctx, p, O, 0, &seed_page(1)).unwrap();
        t.store(&mut ctx, p, O, 64, &seed_page(2)).unwrap();
        let t2 = t.clone();
        let th = spawn(move || {
            let n = t2.invalidate_object(p, O).unwrap();
            assert!(n == 0 || n == 2 || n == 1, "{n}");
        });
        t.invalidate_pool(p).unwrap();
        t.store(&mut ctx, p, O, 1, &seed_page(3)).unwrap();
        th.join().unwrap();
        let mut out = [0u8; PAGE_SIZE];
        let mut present = 0u64;
        for i in [0, 64, 1] {
            if t.load(&mut ctx, p, O, i, &mut out, LoadMode::Keep).unwrap() {
                present += 1;
            }
        }
        // Only page 1 can be left (if it was stored after the invalidate took the tree),
        // alone in a one-leaf tree.
        assert!(present <= 1);
        let n = t.counts(p).unwrap();
        assert_eq!(
            (n.objects, n.pages, n.leaves, n.interiors),
            (present, present, present, 0)
        );
        t.destroy_pool(c, p).unwrap();
        assert_eq!(t.pam().live(), 0);
    });
}
