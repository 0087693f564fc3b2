//! Directed tests of reclaim on real pages: the LRU order and its second chance, the
//! bounded work a store may do, the worker and shrinker entry points, stealing
//! ephemeral pages for persistent ones, and writeback (in LRU order; refused pages
//! stay).

use std::sync::Arc;

use zcache::PAGE_SIZE;
use zcache::testing::RecordingWriteback;
use zcache::{
    AllocatorKind, Config, LoadMode, Oid, PoolKind, Writeback, ZError, Zcache, ZcacheError,
};

/// The test set at the build's page size (the 1024-page sample at 4 KiB).
type Corpus = zcache_testdata::Joined<PAGE_SIZE>;

fn sample() -> Corpus {
    zcache_testdata::test_pages::<PAGE_SIZE>()
}

/// A frame limit of `n` frames for the 1024-page 4 KiB sample, as the same share of
/// the test set's bytes at the build's page size.
fn limit(n: usize, c: &Corpus) -> usize {
    n * c.len() / 1024
}
use zpool::HeapPageSource;

fn cfg(eph: AllocatorKind, pers: AllocatorKind, max_frames: usize, accept: u8) -> Config {
    Config {
        ephemeral_allocator: eph,
        persistent_allocator: pers,
        max_frames,
        accept_threshold_percent: accept,
        contexts: 2,
        ..Config::default()
    }
}

/// Pages of the test set that are not same-filled (same-filled pages use no frame and sit
/// on no LRU).
fn object_pages(c: &Corpus) -> Vec<usize> {
    (0..c.len())
        .filter(|&i| !c.records()[i].same_filled())
        .collect()
}

/// Fraction of `idx` still loadable (keeping loads), checking every hit's bytes.
fn surviving(z: &Zcache, pool: zcache::PoolId, c: &Corpus, idx: &[usize]) -> f64 {
    let mut out = [0u8; zcache::PAGE_SIZE];
    let mut hits = 0;
    for &i in idx {
        if z.load(pool, Oid::new(1, 2, 3), i as u64, &mut out, LoadMode::Keep)
            .unwrap()
        {
            assert_eq!(&out, &c.pages()[i], "page {i}");
            hits += 1;
        }
    }
    hits as f64 / idx.len() as f64
}

#[test]
fn eat_its_own_tail_keeps_the_most_recent_pages() {
    // Without hysteresis (accept 100 %) a store at the limit evicts synchronously.
    let c = sample();
    let pages = object_pages(&c);
    for eph in AllocatorKind::ALL {
        let z = Zcache::new(
            cfg(eph, AllocatorKind::Zsmalloc, limit(100, &c), 100),
            Arc::new(HeapPageSource),
        )
        .unwrap();
        let t = &z;
        let pool = t
            .new_pool(t.new_client().unwrap(), PoolKind::Ephemeral)
            .unwrap();
        let mut refused = 0;
        let mut accepted = Vec::new();
        for &i in &pages {
            match z.store(pool, Oid::new(1, 2, 3), i as u64, &c.pages()[i]) {
                Ok(_) => accepted.push(i),
                Err(_) => refused += 1,
            }
            assert!(z.stats().pool_frames <= limit(100, &c));
        }
        let st = z.stats();
        assert!(st.counters.eph_ate_tail > 0, "{eph:?}: {st:?}");
        // Of the pages zcache accepted (zsmalloc refuses more: evicting one page of
        // another size class seldom frees room in this one).
        let tenth = accepted.len() / 10;
        let newest = surviving(&z, pool, &c, &accepted[accepted.len() - tenth..]);
        let oldest = surviving(&z, pool, &c, &accepted[..tenth]);
        println!("{eph:?}: newest tenth {newest:.2}, oldest tenth {oldest:.2}, refused {refused}");
        // CLOCK order: a new page is stored referenced, so it outlives at least one
        // turn of the hand: the newest tenth survives almost whole (zsmalloc's ring
        // goes class by class, so a few new pages lie just where the hand turns; 0.88
        // measured), the oldest is gone.
        assert!(newest >= 0.8, "{eph:?}: newest tenth kept {newest}");
        assert!(oldest <= 0.02, "{eph:?}: oldest tenth kept {oldest}");
    }
}

#[test]
fn with_hysteresis_a_store_never_evicts_only_to_be_refused() {
    let c = sample();
    let pages = object_pages(&c);
    let z = Zcache::new(
        cfg(
            AllocatorKind::Zbud,
            AllocatorKind::Zsmalloc,
            limit(100, &c),
            90,
        ),
        Arc::new(HeapPageSource),
    )
    .unwrap();
    let t = &z;
    let pool = t
        .new_pool(t.new_client().unwrap(), PoolKind::Ephemeral)
        .unwrap();
    let mut refused_at_limit = 0;
    let mut worker_runs = 0;
    for &i in &pages {
        let before = z.stats().counters;
        let r = z.store(pool, Oid::new(1, 2, 3), i as u64, &c.pages()[i]);
        let after = z.stats().counters;
        let evicted = after.evicted_eph_pages - before.evicted_eph_pages;
        assert!(
            evicted <= z.config().max_reclaim_per_store as i64,
            "one store evicted {evicted} pages"
        );
        if evicted > 0 {
            assert!(
                r.is_ok(),
                "store {i} evicted {evicted} pages and was refused"
            );
        }
        if r == Err(ZcacheError::Backend(ZError::NoFrame)) {
            refused_at_limit += 1;
            assert!(z.reclaim_wanted());
            // The host's worker runs now and then, not on every refusal.
            if refused_at_limit % 8 == 0 {
                let o = z.reclaim(256);
                worker_runs += 1;
                assert!(o.evicted_pages > 0 && o.evicted_pages <= 256, "{o:?}");
                assert!(
                    !o.more,
                    "the worker stops below the accept threshold: {o:?}"
                );
                assert!(!z.reclaim_wanted());
            }
        }
    }
    let st = z.stats();
    assert!(refused_at_limit > 0 && worker_runs > 0, "{st:?}");
    assert!(st.pool_frames <= limit(100, &c));
    // The worker kept recency order too.
    let tenth = pages.len() / 10;
    let newest = surviving(&z, pool, &c, &pages[pages.len() - tenth..]);
    let oldest = surviving(&z, pool, &c, &pages[..tenth]);
    println!(
        "hysteresis: newest tenth {newest:.2}, oldest {oldest:.2}, refused {refused_at_limit}"
    );
    assert!(
        newest > 0.5 && oldest <= 0.02,
        "newest {newest}, oldest {oldest}"
    );
}

#[test]
fn second_chance_spares_referenced_pages() {
    let c = sample();
    let pages = object_pages(&c);
    let z = Zcache::new(
        cfg(AllocatorKind::Zbud, AllocatorKind::Zsmalloc, usize::MAX, 90),
        Arc::new(HeapPageSource),
    )
    .unwrap();
    let t = &z;
    let pool = t
        .new_pool(t.new_client().unwrap(), PoolKind::Ephemeral)
        .unwrap();
    let n = 200;
    let pages: Vec<usize> = pages
        .into_iter()
        .filter(|&i| {
            z.store(pool, Oid::new(1, 2, 3), i as u64, &c.pages()[i])
                .is_ok()
        })
        .take(n)
        .collect();
    assert_eq!(pages.len(), n);
    // New pages are stored referenced: the first eviction's hand goes round once,
    // clearing every bit, and takes the first page (one thread: zbud's ids, and so the
    // ring's order, are the store order).
    // (A call that only rotates frees nothing: the shrinker calls again.)
    assert!((0..100).any(|_| z.shrinker_scan(1) == 1));
    assert_eq!(surviving(&z, pool, &c, &pages[..1]), 0.0);
    let pages = &pages[1..];
    // Touch the 20 oldest pages: they get a second chance.
    let mut out = [0u8; zcache::PAGE_SIZE];
    for &i in &pages[..20] {
        assert!(
            z.load(pool, Oid::new(1, 2, 3), i as u64, &mut out, LoadMode::Keep)
                .unwrap()
        );
    }
    // Evict 40 pages: the referenced ones rotate, the next 40 unreferenced go.
    let mut evicted = 0;
    while evicted < 40 {
        let k = z.shrinker_scan(40 - evicted);
        assert!(k > 0);
        evicted += k;
    }
    assert_eq!(
        surviving(&z, pool, &c, &pages[..20]),
        1.0,
        "referenced pages evicted"
    );
    assert_eq!(
        surviving(&z, pool, &c, &pages[20..60]),
        0.0,
        "LRU pages kept"
    );
    assert_eq!(surviving(&z, pool, &c, &pages[60..]), 1.0);
    let st = z.stats();
    assert!(st.counters.lru_rotations >= 20, "{st:?}");
    assert_eq!(st.eph_lru_len, n - 41);
    assert_eq!(z.shrinker_count(), n - 41);
}

#[test]
fn persistent_stores_steal_ephemeral_pages_never_persistent_ones() {
    let c = sample();
    let z = Zcache::new(
        cfg(
            AllocatorKind::Zbud,
            AllocatorKind::Zsmalloc,
            limit(200, &c),
            100,
        ),
        Arc::new(HeapPageSource),
    )
    .unwrap();
    let cc = z.cleancache();
    let pool = cc.init_fs().unwrap();
    for (i, p) in c.pages().iter().enumerate().take(400) {
        cc.put_page(pool, zcache::file_key_from_inode(1), i as u64, p);
    }
    let eph_before = z.stats().eph_frames;
    assert!(eph_before > limit(50, &c));
    let fs = z.frontswap();
    fs.init(0).unwrap();
    let mut ok = Vec::new();
    for (i, p) in c.pages().iter().enumerate() {
        match fs.store(0, i as u64, p) {
            Ok(()) => ok.push(i),
            Err(ZcacheError::Backend(
                ZError::NoFrame | ZError::CompressPoor | ZError::MeanCompressPoor,
            )) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let st = z.stats();
    assert!(st.counters.pers_ate_eph > 0, "{st:?}");
    assert!(st.eph_frames < eph_before);
    assert!(
        st.counters.reject_alloc_fail > 0,
        "the limit must refuse at last"
    );
    // Without writeback, persistent pages stay: every accepted store loads back exact.
    let mut out = [0u8; zcache::PAGE_SIZE];
    for i in ok {
        assert!(
            fs.load(0, i as u64, &mut out).unwrap(),
            "persistent page {i} lost"
        );
        assert_eq!(&out, &c.pages()[i]);
    }
    // Nothing to reclaim but persistent pages, and no writeback: the worker frees none.
    while z.stats().eph_lru_len > 0 {
        z.shrinker_scan(64);
    }
    assert_eq!(z.shrinker_count(), 0);
    assert_eq!(z.shrinker_scan(10), 0);
}

#[test]
fn writeback_goes_in_lru_order_and_refused_pages_stay() {
    let c = sample();
    let pages = object_pages(&c);
    for pers in AllocatorKind::ALL {
        let wb = Arc::new(RecordingWriteback::default());
        let z = Zcache::with_writeback(
            cfg(AllocatorKind::Zbud, pers, limit(120, &c), 90),
            Arc::new(HeapPageSource),
            wb.clone() as Arc<dyn Writeback>,
        )
        .unwrap();
        let fs = z.frontswap();
        fs.init(2).unwrap();
        let mut stored = Vec::new();
        for &i in &pages {
            if fs.store(2, i as u64, &c.pages()[i]).is_ok() {
                stored.push(i);
            }
        }
        // Stores never write back: only the worker does.
        assert_eq!(wb.count(), 0);
        assert!(z.reclaim_wanted());
        let o = z.reclaim(10_000);
        assert!(!o.more && o.written_back_pages > 0, "{pers:?}: {o:?}");
        assert!(wb.violations().is_empty(), "{:?}", wb.violations());
        // CLOCK order, the allocator's object ids: with one thread zbud's are the
        // store order, so the pages written are the oldest stored ones, in store order
        // (skipping slots the host would not claim or write). zsmalloc's go class by
        // class: each page is written once, and only pages the host takes.
        let order: Vec<u64> = wb.order().into_iter().map(|(_, off)| off).collect();
        let writable: Vec<u64> = stored
            .iter()
            .map(|&i| i as u64)
            .filter(|off| off % 7 != 0 && off % 5 != 0)
            .collect();
        if pers == AllocatorKind::Zbud {
            assert_eq!(
                order,
                writable[..order.len()],
                "{pers:?}: writeback out of store order"
            );
        } else {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), order.len(), "a page written twice");
            assert!(sorted.iter().all(|off| writable.contains(off)));
        }
        let out = &mut [0u8; zcache::PAGE_SIZE];
        let mut from_wb = 0;
        for &i in &stored {
            if fs.load(2, i as u64, out).unwrap() {
                assert_eq!(&out[..], &c.pages()[i][..]);
            } else {
                assert_eq!(
                    wb.written(2, i as u64).as_ref(),
                    Some(&c.pages()[i]),
                    "page {i} lost"
                );
                assert!(i % 5 != 0 && i % 7 != 0, "a refused page was dropped");
                from_wb += 1;
            }
        }
        let st = z.stats();
        assert_eq!(from_wb as i64, st.counters.written_back_pages);
        assert!(
            st.counters.writeback_refused > 0 && st.counters.writeback_busy > 0,
            "{st:?}"
        );
        // shrink() from the host's memory-pressure hook: it stops at the target, or
        // when only pages the host will not take are left.
        let before = z.stats().pool_frames;
        let out = z.shrink(before / 2);
        if z.stats().pool_frames > before / 2 {
            for &i in &stored {
                if fs.load(2, i as u64, &mut [0u8; zcache::PAGE_SIZE]).unwrap() {
                    assert!(i % 5 == 0 || i % 7 == 0, "{pers:?}: page {i} left: {out:?}");
                }
            }
        }
        assert!(wb.violations().is_empty());
    }
}
