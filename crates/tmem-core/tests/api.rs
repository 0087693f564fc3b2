//! Directed tests of the public API: coherency corner cases, ids, shared pools, several
//! instances, errors.

use tmem_core::testing::{SeedCtx, SeedError, SeedPam, seed_page};
use tmem_core::{LoadMode, Oid, PAGE_SIZE, Page, PoolKind, StoreOutcome, Tmem, TmemError, Uuid};

fn page() -> Page {
    [0u8; PAGE_SIZE]
}

#[test]
fn duplicate_store_replaces_and_failed_duplicate_leaves_nothing() {
    let t = Tmem::new(SeedPam::new());
    let c = t.new_client().unwrap();
    let p = t.new_pool(c, PoolKind::Persistent).unwrap();
    let mut ctx = SeedCtx::default();
    let o = Oid::new(1, 2, 3);
    assert_eq!(
        t.store(&mut ctx, p, o, 9, &seed_page(1)).unwrap(),
        StoreOutcome::New
    );
    assert_eq!(
        t.store(&mut ctx, p, o, 9, &seed_page(2)).unwrap(),
        StoreOutcome::Replaced
    );
    let mut out = page();
    assert!(
        t.load(&mut ctx, p, o, 9, &mut out, LoadMode::Default)
            .unwrap()
    );
    assert_eq!(out, seed_page(2));
    // A failing duplicate store: the old copy must be gone (no stale data).
    t.pam().fail_next(1);
    assert_eq!(
        t.store(&mut ctx, p, o, 9, &seed_page(3)),
        Err(TmemError::Backend(SeedError::Injected))
    );
    assert!(
        !t.load(&mut ctx, p, o, 9, &mut out, LoadMode::Default)
            .unwrap()
    );
    assert_eq!(t.pam().live(), 0);
}

#[test]
fn get_get_coherency_and_exclusive_defaults() {
    let t = Tmem::new(SeedPam::new());
    let c = t.new_client().unwrap();
    let eph = t.new_pool(c, PoolKind::Ephemeral).unwrap();
    let pers = t.new_pool(c, PoolKind::Persistent).unwrap();
    let mut ctx = SeedCtx::default();
    let o = Oid::new(5, 0, 0);
    let mut out = page();
    for p in [eph, pers] {
        t.store(&mut ctx, p, o, u64::MAX, &seed_page(7)).unwrap();
    }
    // Private ephemeral: exclusive by default; then misses until the next store.
    assert!(
        t.load(&mut ctx, eph, o, u64::MAX, &mut out, LoadMode::Default)
            .unwrap()
    );
    assert!(
        !t.load(&mut ctx, eph, o, u64::MAX, &mut out, LoadMode::Default)
            .unwrap()
    );
    assert!(
        !t.load(&mut ctx, eph, o, u64::MAX, &mut out, LoadMode::Keep)
            .unwrap()
    );
    // Persistent: kept by default, exclusive on request.
    assert!(
        t.load(&mut ctx, pers, o, u64::MAX, &mut out, LoadMode::Default)
            .unwrap()
    );
    assert!(
        t.load(&mut ctx, pers, o, u64::MAX, &mut out, LoadMode::Exclusive)
            .unwrap()
    );
    assert!(
        !t.load(&mut ctx, pers, o, u64::MAX, &mut out, LoadMode::Default)
            .unwrap()
    );
    assert_eq!(t.pam().live(), 0);
}

#[test]
fn shared_pools_join_by_uuid_and_live_until_the_last_member_leaves() {
    let t = Tmem::new(SeedPam::new());
    let a = t.new_client().unwrap();
    let b = t.new_client().unwrap();
    let u = Uuid([0xfeed, 0xbeef]);
    let pa = t.join_shared_pool(a, u, PoolKind::Ephemeral).unwrap();
    let pb = t.join_shared_pool(b, u, PoolKind::Ephemeral).unwrap();
    assert_eq!(pa, pb);
    assert!(t.pool_info(pa).unwrap().shared);
    let mut ctx = SeedCtx::default();
    t.store(&mut ctx, pa, Oid::new(1, 0, 0), 0, &seed_page(4))
        .unwrap();
    // Shared ephemeral loads keep the page for the other sharers.
    let mut out = page();
    assert!(
        t.load(
            &mut ctx,
            pb,
            Oid::new(1, 0, 0),
            0,
            &mut out,
            LoadMode::Default
        )
        .unwrap()
    );
    assert!(
        t.load(
            &mut ctx,
            pa,
            Oid::new(1, 0, 0),
            0,
            &mut out,
            LoadMode::Default
        )
        .unwrap()
    );
    t.destroy_pool(a, pa).unwrap();
    assert!(
        t.load(
            &mut ctx,
            pb,
            Oid::new(1, 0, 0),
            0,
            &mut out,
            LoadMode::Default
        )
        .unwrap()
    );
    assert_eq!(t.destroy_pool(a, pa), Err(TmemError::NotAMember));
    t.destroy_pool(b, pb).unwrap();
    assert_eq!(
        t.load(
            &mut ctx,
            pb,
            Oid::new(1, 0, 0),
            0,
            &mut out,
            LoadMode::Default
        ),
        Err(TmemError::UnknownPool)
    );
    assert_eq!(t.pam().live(), 0);
}

#[test]
fn ids_are_not_capped_and_not_reused() {
    let t = Tmem::new(SeedPam::new());
    let c = t.new_client().unwrap();
    let mut seen = std::collections::HashSet::new();
    // Far beyond the old 16-pools-per-client cap.
    let mut live = Vec::new();
    for _ in 0..1000 {
        let p = t.new_pool(c, PoolKind::Ephemeral).unwrap();
        assert!(seen.insert(p));
        live.push(p);
    }
    for p in live.drain(..500) {
        t.destroy_pool(c, p).unwrap();
    }
    for _ in 0..100 {
        assert!(seen.insert(t.new_pool(c, PoolKind::Persistent).unwrap()));
    }
    let clients: Vec<_> = (0..100).map(|_| t.new_client().unwrap()).collect();
    let mut cs = std::collections::HashSet::new();
    assert!(clients.iter().all(|c| cs.insert(*c)));
    t.destroy_client(c).unwrap();
    assert!(t.pool_ids().unwrap().is_empty());
    assert_eq!(t.destroy_client(c), Err(TmemError::UnknownClient));
}

#[test]
fn unknown_pool_and_client_are_typed_errors() {
    let t = Tmem::new(SeedPam::new());
    let mut ctx = SeedCtx::default();
    let mut out = page();
    let bogus = tmem_core::PoolId(77);
    assert_eq!(
        t.store(&mut ctx, bogus, Oid::default(), 0, &seed_page(0)),
        Err(TmemError::UnknownPool)
    );
    assert_eq!(
        t.load(&mut ctx, bogus, Oid::default(), 0, &mut out, LoadMode::Keep),
        Err(TmemError::UnknownPool)
    );
    assert_eq!(
        t.invalidate_page(bogus, Oid::default(), 0),
        Err(TmemError::UnknownPool)
    );
    assert_eq!(
        t.invalidate_object(bogus, Oid::default()),
        Err(TmemError::UnknownPool)
    );
    assert_eq!(
        t.new_pool(tmem_core::ClientId(9), PoolKind::Ephemeral),
        Err(TmemError::UnknownClient)
    );
}

#[test]
fn handles_outlive_destroy_without_waiting() {
    let t = Tmem::new(SeedPam::new());
    let c = t.new_client().unwrap();
    let p = t.new_pool(c, PoolKind::Persistent).unwrap();
    let h = t.pool(p).unwrap();
    let mut ctx = SeedCtx::default();
    t.store_in(&mut ctx, &h, Oid::new(1, 0, 0), 3, &seed_page(1))
        .unwrap();
    t.destroy_pool(c, p).unwrap();
    assert_eq!(t.pam().live(), 0);
    assert_eq!(
        t.store_in(&mut ctx, &h, Oid::new(1, 0, 0), 3, &seed_page(1)),
        Err(TmemError::PoolDestroyed)
    );
    // The failed store's descriptor was freed, not leaked into a dead pool.
    assert_eq!(t.pam().live(), 0);
    let mut out = page();
    assert_eq!(
        t.load_from(&mut ctx, &h, Oid::new(1, 0, 0), 3, &mut out, LoadMode::Keep),
        Err(TmemError::PoolDestroyed)
    );
}

#[test]
fn several_instances_with_their_own_backends() {
    let t1 = Tmem::new(SeedPam::new());
    let t2 = Tmem::new(SeedPam::new());
    let (c1, c2) = (t1.new_client().unwrap(), t2.new_client().unwrap());
    let (p1, p2) = (
        t1.new_pool(c1, PoolKind::Persistent).unwrap(),
        t2.new_pool(c2, PoolKind::Persistent).unwrap(),
    );
    let mut ctx = SeedCtx::default();
    t1.store(&mut ctx, p1, Oid::default(), 1, &seed_page(1))
        .unwrap();
    t2.store(&mut ctx, p2, Oid::default(), 1, &seed_page(2))
        .unwrap();
    t2.store(&mut ctx, p2, Oid::default(), 2, &seed_page(2))
        .unwrap();
    assert_eq!((t1.pam().live(), t2.pam().live()), (1, 2));
    drop(t1);
    assert_eq!(t2.pam().live(), 2);
}

#[test]
fn counts_and_metadata() {
    let t = Tmem::new(SeedPam::new());
    let c = t.new_client().unwrap();
    let p = t.new_pool(c, PoolKind::Persistent).unwrap();
    let mut ctx = SeedCtx::default();
    for o in 0..10u64 {
        for i in 0..64u64 {
            t.store(&mut ctx, p, Oid::new(o, 0, 0), i, &seed_page(i as u32))
                .unwrap();
        }
    }
    let k = t.counts(p).unwrap();
    assert_eq!(
        (k.objects, k.pages, k.leaves, k.interiors),
        (10, 640, 10, 0)
    );
    assert!(k.metadata_bytes > 10 * 512);
    assert_eq!(t.invalidate_object(p, Oid::new(3, 0, 0)).unwrap(), 64);
    let k = t.counts(p).unwrap();
    assert_eq!((k.objects, k.pages, k.leaves), (9, 576, 9));
    assert_eq!(t.invalidate_pool(p).unwrap(), 576);
    assert_eq!(t.counts(p).unwrap().pages, 0);
    assert_eq!(t.pam().live(), 0);
}

#[test]
fn compare_and_take_then_restore_if_absent() {
    let t = Tmem::new(SeedPam::new());
    let c = t.new_client().unwrap();
    let p = t.new_pool(c, PoolKind::Persistent).unwrap();
    let h = t.pool(p).unwrap();
    let mut ctx = SeedCtx::default();
    let o = Oid::new(4, 0, 1);
    let mut out = page();
    t.store(&mut ctx, p, o, 3, &seed_page(1)).unwrap();
    let first = t.pam().last_created(1);
    // A descriptor that is not the one there: nothing is taken.
    t.store(&mut ctx, p, o, 4, &seed_page(2)).unwrap();
    let other = t.pam().last_created(2);
    assert_eq!(t.compare_and_take_in(&h, o, 3, &other).unwrap(), None);
    // The right one: it leaves tmem, is not freed, and the key misses.
    let taken = t.compare_and_take_in(&h, o, 3, &first).unwrap().unwrap();
    assert_eq!(t.pam().frees(), 0);
    assert!(!t.load(&mut ctx, p, o, 3, &mut out, LoadMode::Keep).unwrap());
    // Put back into an empty key: loadable again.
    assert!(t.restore_if_absent_in(&h, o, 3, taken).is_none());
    assert!(t.load(&mut ctx, p, o, 3, &mut out, LoadMode::Keep).unwrap());
    assert_eq!(out, seed_page(1));
    // Taken again, and the key stored anew meanwhile: the newer copy wins, the taken
    // descriptor comes back to the caller.
    let taken = t.compare_and_take_in(&h, o, 3, &first).unwrap().unwrap();
    t.store(&mut ctx, p, o, 3, &seed_page(5)).unwrap();
    let back = t.restore_if_absent_in(&h, o, 3, taken).unwrap();
    assert_eq!(back, first);
    assert!(t.load(&mut ctx, p, o, 3, &mut out, LoadMode::Keep).unwrap());
    assert_eq!(out, seed_page(5));
    tmem_core::PamOps::free(t.pam(), &h.info(), back);
    // A destroyed pool: take fails, restore hands the descriptor back.
    let taken = t.compare_and_take_in(&h, o, 4, &other).unwrap().unwrap();
    t.destroy_pool(c, p).unwrap();
    assert_eq!(
        t.compare_and_take_in(&h, o, 3, &other),
        Err(TmemError::PoolDestroyed)
    );
    let back = t.restore_if_absent_in(&h, o, 4, taken).unwrap();
    tmem_core::PamOps::free(t.pam(), &h.info(), back);
    assert_eq!(t.pam().live(), 0);
}
