//! Directed tests of the front ends on real pages: every page of the test set (the
//! 1024-page sample at 4 KiB, `zcache_testdata::test_pages`) through both front ends and every allocator pairing, corrupt pool bytes, fault
//! injection and leak accounting. (Reclaim, eviction and writeback: `tests/reclaim.rs`.)

use std::sync::Arc;

use zcache::PAGE_SIZE;
use zcache::{AllocatorKind, Config, ZError, Zcache, ZcacheError};

/// The test set at the build's page size.
fn pages() -> zcache_testdata::Joined<PAGE_SIZE> {
    zcache_testdata::test_pages::<PAGE_SIZE>()
}
use zpool::testing::{CorruptingSource, CountingSource, FailMode, FailingSource};
use zpool::{HeapPageSource, Page};

fn cfg(eph: AllocatorKind, pers: AllocatorKind, max_frames: usize) -> Config {
    Config {
        ephemeral_allocator: eph,
        persistent_allocator: pers,
        max_frames,
        contexts: 2,
        ..Config::default()
    }
}

#[test]
fn sample_through_both_front_ends_byte_exact() {
    let corpus = pages();
    for eph in AllocatorKind::ALL {
        for pers in AllocatorKind::ALL {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let z = Zcache::new(cfg(eph, pers, usize::MAX), src.clone()).unwrap();
            let fs = z.frontswap();
            fs.init(1).unwrap();
            let cc = z.cleancache();
            let pool = cc.init_fs().unwrap();
            let mut stored = 0i64;
            for (i, p) in corpus.pages().iter().enumerate() {
                if fs.store(1, i as u64, p).is_ok() {
                    stored += 1;
                }
            }
            // Only the compression policy may refuse a page (no limit is set).
            let c = z.stats().counters;
            assert_eq!(
                stored + c.reject_compress_poor + c.reject_mean_compress_poor,
                corpus.len() as i64,
                "{eph:?}/{pers:?}: {c:?}"
            );
            assert!(stored as usize * 1024 > corpus.len() * 900);
            for (r, p) in corpus.iter() {
                cc.put_page(
                    pool,
                    zcache::file_key_from_inode(u64::from(r.object_id)),
                    r.page_index,
                    p,
                );
            }
            let mut out: Page = [0; zcache::PAGE_SIZE];
            for (i, p) in corpus.pages().iter().enumerate() {
                if fs.load(1, i as u64, &mut out).unwrap() {
                    assert_eq!(&out, p, "frontswap page {i}");
                }
                let r = corpus.records()[i];
                let key = zcache::file_key_from_inode(u64::from(r.object_id));
                if cc.get_page(pool, key, r.page_index, &mut out) {
                    // Duplicate keys in the corpus: the last put of the key wins.
                    let last = corpus
                        .records()
                        .iter()
                        .rposition(|q| q.object_id == r.object_id && q.page_index == r.page_index)
                        .unwrap();
                    assert_eq!(&out, &corpus.pages()[last], "cleancache page {i}");
                }
            }
            let st = z.stats();
            assert!(
                st.counters.same_filled_pages > 0
                    || corpus.records().iter().all(|r| !r.same_filled())
            );
            fs.invalidate_area(1).unwrap();
            cc.invalidate_fs(pool).unwrap();
            let st = z.stats();
            assert_eq!(st.counters.stored_pages, 0, "{st:?}");
            drop(z);
            assert_eq!(src.live(), 0, "frames leaked");
        }
    }
}

#[test]
fn corrupt_pool_bytes_fail_that_page_only() {
    let corpus = pages();
    for (pers, in_place) in AllocatorKind::ALL
        .into_iter()
        .flat_map(|a| [(a, false), (a, true)])
    {
        let src = Arc::new(CorruptingSource::new(HeapPageSource));
        let config = Config {
            decompress_in_place: in_place,
            ..cfg(AllocatorKind::Zbud, pers, usize::MAX)
        };
        let z = Zcache::new(config, src.clone()).unwrap();
        let fs = z.frontswap();
        fs.init(0).unwrap();
        let pages: Vec<usize> = (0..300.min(corpus.len()))
            .filter(|&i| !corpus.records()[i].same_filled())
            .collect();
        for &i in &pages {
            fs.store(0, i as u64, &corpus.pages()[i]).unwrap_or(());
        }
        // Flip one bit in the middle of frame 3.
        // SAFETY: single-threaded test; no zcache call is in progress.
        assert!(unsafe { src.flip_bits(3, 2048 + 17, 0x10) });
        let mut out = [0u8; zcache::PAGE_SIZE];
        let mut errors = 0;
        for &i in &pages {
            match fs.load(0, i as u64, &mut out) {
                Ok(true) => assert_eq!(
                    &out,
                    &corpus.pages()[i],
                    "undetected corruption in page {i}"
                ),
                Ok(false) => {}
                Err(ZcacheError::Backend(ZError::Corrupt | ZError::BadHandle)) => errors += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            (1..=2).contains(&errors),
            "{pers:?} in place {in_place}: {errors} pages failed"
        );
        assert!(z.stats().counters.load_corrupt >= 1);
    }
}

#[test]
fn page_source_failures_lose_nothing_and_leak_nothing() {
    let corpus = pages();
    for mode in [
        FailMode::EveryNth(3),
        FailMode::Random {
            seed: 7,
            percent: 40,
        },
        FailMode::AfterN(20),
    ] {
        let src = Arc::new(CountingSource::new(FailingSource::with_mode(
            HeapPageSource,
            mode,
        )));
        let z = Zcache::new(
            cfg(AllocatorKind::Zbud, AllocatorKind::Zsmalloc, usize::MAX),
            src.clone(),
        )
        .unwrap();
        let fs = z.frontswap();
        fs.init(0).unwrap();
        let cc = z.cleancache();
        let pool = cc.init_fs().unwrap();
        let mut ok = Vec::new();
        for (i, p) in corpus.pages().iter().enumerate().take(500) {
            if fs.store(0, i as u64, p).is_ok() {
                ok.push(i);
            }
            cc.put_page(pool, zcache::file_key_from_inode(3), i as u64, p);
        }
        let mut out = [0u8; zcache::PAGE_SIZE];
        for &i in &ok {
            assert!(fs.load(0, i as u64, &mut out).unwrap());
            assert_eq!(&out, &corpus.pages()[i]);
        }
        fs.invalidate_area(0).unwrap();
        cc.invalidate_fs(pool).unwrap();
        drop(z);
        assert_eq!(src.live(), 0, "{mode:?}: frames leaked");
    }
}

#[test]
fn duplicate_store_replaces_and_refused_duplicate_drops_the_old_copy() {
    let z = Zcache::new(Config::default(), Arc::new(HeapPageSource)).unwrap();
    let fs = z.frontswap();
    fs.init(0).unwrap();
    let corpus = pages();
    let good = &corpus.pages()[10];
    let mut random = [0u8; zcache::PAGE_SIZE];
    let mut x = 1u64;
    for b in random.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 33) as u8;
    }
    fs.store(0, 5, good).unwrap();
    fs.store(0, 5, &corpus.pages()[11]).unwrap();
    assert_eq!(z.stats().counters.duplicate_entry, 1);
    let mut out = [0u8; zcache::PAGE_SIZE];
    assert!(fs.load(0, 5, &mut out).unwrap());
    assert_eq!(out, corpus.pages()[11]);
    // Incompressible: refused, and the older copy must not survive.
    assert_eq!(
        fs.store(0, 5, &random),
        Err(ZcacheError::Backend(ZError::CompressPoor))
    );
    assert!(!fs.load(0, 5, &mut out).unwrap());
    assert_eq!(z.stats().counters.stored_pages, 0);
    assert_eq!(fs.store(7, 0, good), Err(ZcacheError::UnknownSwapType));
}

/// A page whose first `noisy` bytes are pseudo-random (incompressible) and the rest
/// zero: lz4 compresses it to a little over `noisy` bytes.
fn noisy_page(noisy: usize, seed: u64) -> Page {
    let mut p: Page = [0; zcache::PAGE_SIZE];
    let mut x = seed | 1;
    for b in &mut p[..noisy] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    p
}

#[test]
fn mean_rule_compares_with_the_mean_of_the_persistent_pages_stored_now() {
    // zcache2: a page over 5/8 of a page is refused while the mean compressed size of
    // the persistent pages stored now is over 5/8 too; over 7/8 is always refused.
    let z = Zcache::new(
        cfg(AllocatorKind::Zbud, AllocatorKind::Zsmalloc, usize::MAX),
        Arc::new(HeapPageSource),
    )
    .unwrap();
    let fs = z.frontswap();
    fs.init(0).unwrap();
    // Sizes in 4 KiB-page bytes, scaled to the page size.
    let at = |n: usize| n * PAGE_SIZE / 4096;
    let poor = |seed| noisy_page(at(3000), seed); // ~3000 B at 4 KiB: between 5/8 and 7/8
    let good = |seed| noisy_page(at(100), seed); // ~110 B at 4 KiB
    let c = || z.stats().counters;
    // Empty pool: the mean is 0, so the first poor page is kept.
    fs.store(0, 0, &poor(1)).unwrap();
    assert_eq!(c().pers_zpages, 1);
    assert!(c().pers_zbytes > at(2560) as i64);
    // Now the mean is over 5/8: the next poor page is refused, and counted.
    assert!(fs.store(0, 1, &poor(2)).is_err());
    assert_eq!(c().reject_mean_compress_poor, 1);
    // A well-compressing page brings the mean under 5/8: poor pages are kept again.
    fs.store(0, 2, &good(3)).unwrap();
    fs.store(0, 3, &poor(4)).unwrap();
    assert_eq!(c().pers_zpages, 3);
    // Over 7/8 of a page is refused whatever the mean.
    assert!(fs.store(0, 4, &noisy_page(at(4000), 5)).is_err());
    assert_eq!(c().reject_compress_poor, 1);
    // Dropping the good page raises the mean over 5/8 again.
    assert!(fs.invalidate_page(0, 2).unwrap());
    assert!(fs.store(0, 5, &poor(6)).is_err());
    assert_eq!(c().reject_mean_compress_poor, 2);
    // Same-filled pages are not objects: they do not move the mean.
    fs.store(0, 6, &[0u8; zcache::PAGE_SIZE]).unwrap();
    assert_eq!(c().pers_zpages, 2);
    assert!(fs.store(0, 7, &poor(7)).is_err());
    // Counters follow invalidation back to zero.
    fs.invalidate_area(0).unwrap();
    assert_eq!((c().pers_zpages, c().pers_zbytes), (0, 0));
}
