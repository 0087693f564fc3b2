//! The region against a shadow copy, under failure, under concurrency; the SKIP path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use zcache_uffd::{CleanCopies, PAGE, Region, RegionConfig};

/// The region, or `None` after printing `SKIP: <reason>` when userfaultfd is not usable.
fn region(cfg: RegionConfig) -> Option<Region> {
    if let Err(why) = zcache_uffd::available() {
        println!("SKIP: userfaultfd unavailable: {why}");
        return None;
    }
    Some(Region::new(cfg).expect("region"))
}

/// No background reclaimer, and the clean-page rule in full (most tests count what it
/// saves; `adaptive_copies_follow_the_pool_and_skip_written_pages` tests the default).
fn config(pages: usize) -> RegionConfig {
    let mut c = RegionConfig::new(pages * PAGE);
    c.background_reclaim = false;
    c.clean_copies = CleanCopies::All;
    c
}

/// A compressible page: text-like, depending on `seed`.
fn text_page(seed: u64) -> Vec<u8> {
    let words = ["guest ", "memory ", "page ", "zcache ", "fault ", "kvm "];
    let mut out = Vec::with_capacity(PAGE);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < PAGE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % 6) as usize].as_bytes());
    }
    out.truncate(PAGE);
    out
}

/// An incompressible page (xorshift bytes).
fn random_page(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..PAGE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Statistics once no page is in a transition (a faulting thread runs on as soon as its
/// page is copied in, a moment before the handler publishes the page's state).
fn settled(r: &Region) -> zcache_uffd::RegionStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = r.stats();
        if s.busy_pages == 0 || Instant::now() > deadline {
            return s;
        }
        std::thread::yield_now();
    }
}

fn read_page(r: &Region, p: usize) -> Vec<u8> {
    let mut b = vec![0u8; PAGE];
    r.read(p * PAGE, &mut b).unwrap();
    b
}

#[test]
fn round_trip_and_the_clean_page_rule() {
    let Some(r) = region(config(64)) else { return };
    for p in 0..32 {
        r.write(p * PAGE, &text_page(p as u64)).unwrap();
    }
    let s0 = settled(&r);
    assert_eq!(s0.resident_pages, 32);
    assert_eq!(
        s0.zero_fills, 32,
        "first touch of a never-written page: ZEROPAGE"
    );
    let e = r.evict(0..64 * PAGE).unwrap();
    assert_eq!(e.compressed, 32);
    assert_eq!(e.not_resident, 32);
    let s = settled(&r);
    assert_eq!((s.resident_pages, s.compressed_pages), (0, 32));
    // Read back: faults served from zcache, pages come back clean.
    for p in 0..32 {
        assert_eq!(read_page(&r, p), text_page(p as u64), "page {p}");
    }
    let s = settled(&r);
    assert_eq!(s.refaults, 32);
    assert_eq!(s.clean_pages, 32);
    // Evicting them again costs no compression.
    let e = r.evict(0..32 * PAGE).unwrap();
    assert_eq!((e.saved, e.compressed), (32, 0));
    let s = settled(&r);
    assert_eq!(s.compressions, 32);
    assert_eq!(s.compressions_saved, 32);
    // Read page 3 back, write it (WP fault: copy dropped), evict: compressed again, and
    // the write survives.
    assert_eq!(read_page(&r, 3), text_page(3));
    r.write(3 * PAGE + 100, b"written after a clean refault")
        .unwrap();
    assert_eq!(settled(&r).wp_faults, 1);
    let e = r.evict(3 * PAGE..4 * PAGE).unwrap();
    assert_eq!(e.compressed, 1);
    let mut want = text_page(3);
    want[100..129].copy_from_slice(b"written after a clean refault");
    assert_eq!(read_page(&r, 3), want);
    // A write fault on an evicted page: comes back dirty, copy dropped.
    r.write(5 * PAGE, b"x").unwrap();
    let mut want5 = text_page(5);
    want5[0] = b'x';
    r.evict(5 * PAGE..6 * PAGE).unwrap();
    assert_eq!(read_page(&r, 5), want5);
    assert_eq!(settled(&r).fault_errors, 0);
}

/// `CleanCopies::AtMost`: read faults beyond the budget come back dirty with their copy
/// dropped (so evicting them compresses again), within it clean as before; a write to a
/// clean page, its eviction and its discard each give its place in the budget back.
#[test]
fn the_budget_of_kept_copies_is_kept() {
    let mut c = config(32);
    c.clean_copies = CleanCopies::AtMost(3);
    let Some(r) = region(c) else { return };
    for p in 0..8 {
        r.write(p * PAGE, &text_page(p as u64)).unwrap();
    }
    assert_eq!(r.evict(0..8 * PAGE).unwrap().compressed, 8);
    for p in 0..8 {
        assert_eq!(read_page(&r, p), text_page(p as u64), "page {p}");
    }
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.copies_not_kept), (3, 5));
    assert_eq!(
        s.zcache.counters.stored_pages, 3,
        "only the kept copies stay stored"
    );
    // Evicting all: 3 saved, 5 compressed again; all read back right.
    let e = r.evict(0..8 * PAGE).unwrap();
    assert_eq!((e.saved, e.compressed), (3, 5));
    for p in 0..8 {
        assert_eq!(read_page(&r, p), text_page(p as u64), "page {p}");
    }
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.copies_not_kept), (3, 10));
    // Which three kept their copy depends on the order of the faults: pages 0-2.
    // A write to one gives its place back: the next read fault keeps its copy.
    r.write(PAGE + 7, b"w").unwrap();
    r.evict(5 * PAGE..6 * PAGE).unwrap();
    assert_eq!(read_page(&r, 5), text_page(5));
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.copies_not_kept, s.wp_faults), (3, 10, 1));
    // A discard of a clean page gives its place back too.
    r.discard(0..PAGE).unwrap();
    r.evict(6 * PAGE..7 * PAGE).unwrap();
    assert_eq!(read_page(&r, 6), text_page(6));
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.copies_not_kept), (3, 10));
    let mut want1 = text_page(1);
    want1[7] = b'w';
    assert_eq!(read_page(&r, 1), want1);
    assert_eq!(read_page(&r, 0), vec![0u8; PAGE]);
    assert_eq!(s.fault_errors, 0);
}

/// The default, `CleanCopies::Adaptive`: a read fault keeps its copy only while the kept
/// copies are fewer than 1/`share` of the pages held out; a page written after its last
/// kept copy keeps none at its next read fault, and keeps one again at the fault after.
#[test]
fn adaptive_copies_follow_the_pool_and_skip_written_pages() {
    let mut c = config(32);
    c.clean_copies = CleanCopies::Adaptive { share: 4 };
    let Some(r) = region(c) else { return };
    for p in 0..32 {
        r.write(p * PAGE, &text_page(p as u64 + 900)).unwrap();
    }
    assert_eq!(r.evict(0..32 * PAGE).unwrap().compressed, 32);
    // Read back in order: page k's fault finds 31 - k pages out and k copies kept (for
    // k up to 5), and keeps a copy while (copies + 1) x 4 <= out: pages 0-5 do (the
    // sixth, page 5: 6 x 4 = 24 <= 26), page 6 does not (7 x 4 = 28 > 25), nor any after.
    for p in 0..32 {
        assert_eq!(read_page(&r, p), text_page(p as u64 + 900), "page {p}");
    }
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.copies_not_kept), (6, 26));
    assert_eq!(s.copies_not_kept_written, 0);
    assert_eq!(
        s.zcache.counters.stored_pages, 6,
        "only the kept copies stay stored"
    );
    // Page 0 is clean: write it (its copy dropped, the page marked), evict everything.
    r.write(100, b"written after a kept copy").unwrap();
    assert_eq!(settled(&r).wp_faults, 1);
    let e = r.evict(0..32 * PAGE).unwrap();
    assert_eq!((e.saved, e.compressed), (5, 27));
    // Its next read fault keeps no copy although the budget has room (no copies, 31
    // pages out): it comes back writable, and a second write takes no fault.
    let mut want0 = text_page(900);
    want0[100..125].copy_from_slice(b"written after a kept copy");
    assert_eq!(read_page(&r, 0), want0);
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.copies_not_kept_written), (0, 1));
    r.write(200, b"x").unwrap();
    want0[200] = b'x';
    assert_eq!(settled(&r).wp_faults, 1, "page 0 came back writable");
    // The mark is used up: evicted (compressed again) and read, it keeps a copy.
    assert_eq!(r.evict(0..PAGE).unwrap().compressed, 1);
    assert_eq!(read_page(&r, 0), want0);
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.copies_not_kept_written), (1, 1));
    // Everything reads back.
    for p in 1..32 {
        assert_eq!(read_page(&r, p), text_page(p as u64 + 900), "page {p}");
    }
    // Nothing is out now, but the copies kept on the way are still there: the
    // reclaimer's trim (here `enforce_limit`, there is no limit) drops them down to
    // (out + 4) / 4 = 1, making their pages writable; a write to one then takes no fault.
    let before = settled(&r);
    assert_eq!(before.compressed_pages, 0);
    assert!(before.clean_pages >= 2, "{before:?}");
    r.enforce_limit();
    let s = settled(&r);
    assert_eq!(s.clean_pages, 1);
    assert_eq!(s.copies_dropped, before.clean_pages as u64 - 1);
    assert_eq!(
        s.zcache.counters.stored_pages, 1,
        "the dropped copies are freed"
    );
    for p in 1..32 {
        r.write(p * PAGE + 8, b"after the trim").unwrap();
    }
    let writes = settled(&r).wp_faults - s.wp_faults;
    assert_eq!(
        writes, 1,
        "only the page that kept its copy was still protected"
    );
    let after_trim = |p: usize| {
        let mut want = text_page(p as u64 + 900);
        want[8..22].copy_from_slice(b"after the trim");
        want
    };
    for p in 1..32 {
        assert_eq!(read_page(&r, p), after_trim(p), "page {p}");
    }
    // The trimmed pages are dirty now, page 0 (trimmed, not written since) included:
    // evicting compresses all 32 again, and all read back.
    let e = r.evict(0..32 * PAGE).unwrap();
    assert_eq!((e.saved, e.compressed), (0, 32));
    assert_eq!(read_page(&r, 0), want0);
    for p in 1..32 {
        assert_eq!(read_page(&r, p), after_trim(p), "page {p}");
    }
    assert_eq!(settled(&r).fault_errors, 0);
}

/// `CleanCopies::Adaptive`'s verdicts: once kept copies have been written more often
/// than evicted unwritten, only one read fault in 32 keeps its copy.
#[test]
fn adaptive_copies_stop_while_they_are_written() {
    let mut c = config(64);
    c.clean_copies = CleanCopies::Adaptive { share: 1 };
    let Some(r) = region(c) else { return };
    for p in 0..64 {
        r.write(p * PAGE, &text_page(p as u64 + 1200)).unwrap();
    }
    assert_eq!(r.evict(0..64 * PAGE).unwrap().compressed, 64);
    // Read all back: page k finds 63 - k out and k copies, and keeps its copy while
    // k + 1 <= 63 - k: pages 0-31. Then write every page: 32 copies wasted.
    for p in 0..64 {
        assert_eq!(read_page(&r, p), text_page(p as u64 + 1200), "page {p}");
    }
    assert_eq!(settled(&r).clean_pages, 32);
    for p in 0..64 {
        r.write(p * PAGE + 1, b"w").unwrap();
    }
    let s = settled(&r);
    assert_eq!((s.clean_pages, s.wp_faults), (0, 32));
    assert_eq!(r.evict(0..64 * PAGE).unwrap().compressed, 64);
    // Read all back again: pages 0-31 were written after their copy (marked); of the
    // other 32, only the read fault whose number is a multiple of 32 (the 97th, page
    // 32) keeps its copy (32 copies wasted, none paid), pages 62 and 63 find too few
    // out for a second copy, and the other 29 are refused by the verdicts.
    for p in 0..64 {
        let mut want = text_page(p as u64 + 1200);
        want[1] = b'w';
        assert_eq!(read_page(&r, p), want, "page {p}");
    }
    let s = settled(&r);
    assert_eq!(s.clean_pages, 1);
    assert_eq!(
        (s.copies_not_kept_written, s.copies_not_kept_unpaid),
        (32, 29)
    );
    // Round one: pages 32-63 over the budget; round two: all but page 32.
    assert_eq!(s.copies_not_kept, 32 + 63);
    assert_eq!(s.fault_errors, 0);
}

#[test]
fn discarded_pages_read_as_zero_and_free_their_copies() {
    let Some(r) = region(config(8)) else { return };
    for p in 0..8 {
        r.write(p * PAGE, &text_page(p as u64 + 300)).unwrap();
    }
    r.evict(0..4 * PAGE).unwrap();
    assert_eq!(read_page(&r, 1), text_page(301)); // clean: copy kept
    assert_eq!(settled(&r).zcache.counters.stored_pages, 4);
    // Pages 0-5: two out, one clean, three dirty; a partial page at each end is kept.
    assert_eq!(r.discard(0..6 * PAGE + 100).unwrap(), 6);
    let s = settled(&r);
    assert_eq!(s.zcache.counters.stored_pages, 0);
    assert_eq!(s.resident_pages, 2);
    for p in 0..6 {
        assert!(read_page(&r, p).iter().all(|&b| b == 0), "page {p}");
    }
    assert_eq!(read_page(&r, 6), text_page(306));
    r.write(PAGE, b"again").unwrap();
    r.evict(0..8 * PAGE).unwrap();
    assert_eq!(&read_page(&r, 1)[..5], b"again");
    assert_eq!(settled(&r).fault_errors, 0);
}

#[test]
fn zero_pages_cost_nothing() {
    let Some(r) = region(config(16)) else { return };
    // Read never-written pages: zero, resident as the zero page.
    assert!(read_page(&r, 2).iter().all(|&b| b == 0));
    r.write(4 * PAGE, &[0u8; PAGE]).unwrap();
    let e = r.evict(0..16 * PAGE).unwrap();
    assert_eq!((e.zero, e.compressed), (2, 0));
    assert_eq!(settled(&r).zero_pages, 2);
    assert!(read_page(&r, 4).iter().all(|&b| b == 0));
    // Written after a zero refault: kept.
    r.write(2 * PAGE + 7, b"non-zero").unwrap();
    r.evict(0..16 * PAGE).unwrap();
    assert_eq!(&read_page(&r, 2)[7..15], b"non-zero");
    assert_eq!(settled(&r).zcache.counters.stored_pages, 1);
}

#[test]
fn shared_memfd_region_round_trip() {
    let mut c = config(32);
    c.shared = true;
    let Some(r) = region(c) else { return };
    assert!(r.memfd().is_some());
    for p in 0..32 {
        r.write(p * PAGE, &text_page(100 + p as u64)).unwrap();
    }
    assert_eq!(r.evict(0..32 * PAGE).unwrap().compressed, 32);
    for p in 0..32 {
        assert_eq!(read_page(&r, p), text_page(100 + p as u64));
    }
    let e = r.evict(0..32 * PAGE).unwrap();
    assert_eq!(e.saved, 32, "{e:?} {:?}", settled(&r));
    r.write(9 * PAGE, b"shared write").unwrap();
    assert_eq!(r.evict(0..32 * PAGE).unwrap().compressed, 1);
    assert_eq!(&read_page(&r, 9)[..12], b"shared write");
    assert_eq!(settled(&r).fault_errors, 0);
}

/// Failure (1): zcache refuses pages (a 2-frame limit, incompressible data) and there
/// is no spill file: the refused pages stay resident, every byte reads back.
#[test]
fn refused_pages_stay_resident() {
    let mut c = config(64);
    c.zcache.max_frames = 2;
    let Some(r) = region(c) else { return };
    let pages: Vec<Vec<u8>> = (0..64)
        .map(|p| {
            if p % 2 == 0 {
                random_page(p)
            } else {
                text_page(p)
            }
        })
        .collect();
    for (p, d) in pages.iter().enumerate() {
        r.write(p * PAGE, d).unwrap();
    }
    let e = r.evict(0..64 * PAGE).unwrap();
    assert!(e.kept_resident >= 32, "{e:?}");
    assert!(e.compressed > 0, "some text pages fit in 2 frames: {e:?}");
    let s = settled(&r);
    assert!(s.zcache_rejects >= 32);
    assert_eq!(s.resident_pages as u64, e.kept_resident);
    for (p, d) in pages.iter().enumerate() {
        assert_eq!(&read_page(&r, p), d, "page {p}");
    }
}

/// Failure (2): the page source refuses every frame and a spill file exists: every
/// non-zero page goes to the file, comes back, and a clean one is dropped again with no
/// write.
#[test]
fn refused_pages_go_to_the_spill_file() {
    let dir = std::env::temp_dir().join(format!("zcache-uffd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = config(32);
    c.spill_dir = Some(dir.clone());
    if let Err(why) = zcache_uffd::available() {
        println!("SKIP: userfaultfd unavailable: {why}");
        return;
    }
    let source = zpool::testing::FailingSource::with_mode(
        zpool::HeapPageSource,
        zpool::testing::FailMode::Always,
    );
    let r = Region::with_source(c, source).unwrap();
    // The directory holds no file: the spill file was unlinked at creation.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    for p in 0..32 {
        r.write(p * PAGE, &text_page(p as u64 + 7)).unwrap();
    }
    let e = r.evict(0..32 * PAGE).unwrap();
    assert_eq!(
        (e.spilled, e.compressed, e.kept_resident),
        (32, 0, 0),
        "{e:?}"
    );
    assert!(settled(&r).zcache.host_alloc_fail > 0);
    for p in 0..32 {
        assert_eq!(read_page(&r, p), text_page(p as u64 + 7));
    }
    let e = r.evict(0..32 * PAGE).unwrap();
    assert_eq!(
        e.saved, 32,
        "clean spilled pages are dropped again with no write"
    );
    r.write(PAGE, b"after").unwrap();
    r.evict(0..32 * PAGE).unwrap();
    assert_eq!(&read_page(&r, 1)[..5], b"after");
    let s = settled(&r);
    assert_eq!(s.spill_writes, 33);
    assert_eq!(s.fault_errors, 0);
    drop(r);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The owner's thread writes a page over and over while another thread evicts it over
/// and over: every write must be seen by the writer's next read, and the final page
/// must hold the last write. (Caught the deliberately broken order: drop before
/// write-protect.)
#[test]
fn a_write_during_eviction_is_never_lost() {
    let Some(r) = region(config(4)) else { return };
    let r = Arc::new(r);
    r.write(0, &text_page(1)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let evictor = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            let deadline = Instant::now() + Duration::from_secs(8);
            while n < 3000 && Instant::now() < deadline {
                let d = r.evict(0..PAGE).unwrap().dropped();
                n += d;
                if d == 0 {
                    // Out already: let the writer fault it back.
                    std::thread::yield_now();
                }
            }
            stop.store(true, Ordering::Relaxed);
            n
        })
    };
    let mut k = 0u64;
    let mut word = [0u8; 8];
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        // Spread writes over the page so some land while the copy is being taken.
        let off = (((k as usize) * 8 * 67) % (PAGE - 16)) & !7;
        r.write(off, &k.to_ne_bytes()).unwrap();
        r.read(off, &mut word).unwrap();
        assert_eq!(u64::from_ne_bytes(word), k, "write {k} at {off} lost");
        r.write(PAGE - 8, &k.to_ne_bytes()).unwrap();
        if k.is_multiple_of(16) {
            std::thread::yield_now();
        }
    }
    let evictions = evictor.join().unwrap();
    r.read(PAGE - 8, &mut word).unwrap();
    assert_eq!(u64::from_ne_bytes(word), k);
    let s = settled(&r);
    println!(
        "{k} writes, {evictions} evictions, {} deferred faults, {} wp faults",
        s.deferred_faults, s.wp_faults
    );
    assert!(
        evictions >= 1000,
        "the race was exercised: {evictions} evictions"
    );
    assert_eq!(s.fault_errors, 0);
}

#[test]
fn the_resident_limit_is_kept_by_the_background_clock() {
    let mut c = RegionConfig::new(256 * PAGE);
    c.resident_limit = Some(32);
    let Some(r) = region(c) else { return };
    for p in 0..256 {
        r.write(p * PAGE, &text_page(p as u64 + 1000)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while settled(&r).resident_pages > 32 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = settled(&r);
    assert!(s.resident_pages <= 32, "{s:?}");
    for p in 0..256 {
        assert_eq!(read_page(&r, p), text_page(p as u64 + 1000));
    }
    r.set_resident_limit(None);
    assert_eq!(r.resident_limit(), None);
    assert_eq!(settled(&r).fault_errors, 0);
}

#[test]
fn shutdown_resident_keeps_every_byte_and_shutdown_free_frees() {
    let Some(r) = region(config(48)) else { return };
    for p in (0..48).step_by(3) {
        r.write(p * PAGE, &text_page(p as u64 + 50)).unwrap();
    }
    r.evict(0..24 * PAGE).unwrap();
    for p in (0..12).step_by(3) {
        let _ = read_page(&r, p); // clean
    }
    let mem = r.shutdown_resident().unwrap();
    let mut b = vec![0u8; PAGE];
    for p in 0..48 {
        mem.read(p * PAGE, &mut b).unwrap();
        if p % 3 == 0 {
            assert_eq!(b, text_page(p as u64 + 50), "page {p}");
        } else {
            assert!(b.iter().all(|&x| x == 0));
        }
    }
    // The memory is plain memory now: writable without any handler.
    // SAFETY: page 3 of the mapping `mem` owns; no other user.
    unsafe { *mem.as_ptr().add(3 * PAGE) = 0xAB };
    mem.read(3 * PAGE, &mut b[..1]).unwrap();
    assert_eq!(b[0], 0xAB);
    drop(mem);

    let Some(r) = region(config(8)) else { return };
    r.write(0, &text_page(9)).unwrap();
    r.evict(0..PAGE).unwrap();
    let s = r.shutdown_free();
    assert_eq!(s.compressed_pages, 1);
}

#[test]
fn out_of_range_is_an_error() {
    let Some(r) = region(config(2)) else { return };
    assert!(r.write(2 * PAGE - 1, b"ab").is_err());
    assert!(r.read(usize::MAX, &mut [0u8; 2]).is_err());
    #[allow(clippy::reversed_empty_ranges)]
    let bad = 8..4;
    assert!(r.evict(bad).is_err());
    assert!(r.evict(0..3 * PAGE).is_err());
}

/// (3) The SKIP path: as an unprivileged user on this kernel (vm.unprivileged_userfaultfd
/// = 0, /dev/userfaultfd root-only) `available()` must say why. Run as root, the test
/// re-runs itself as `nobody` and checks that; otherwise it checks its own answer.
#[test]
fn skip_reason_is_clear_for_an_unprivileged_user() {
    if std::env::var_os("ZCACHE_UFFD_SKIP_CHILD").is_some() {
        match zcache_uffd::available() {
            Ok(()) => println!("CHILD: available"),
            Err(why) => println!("CHILD SKIP: {why}"),
        }
        return;
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        match zcache_uffd::available() {
            Ok(()) => println!("userfaultfd available to this user"),
            Err(why) => println!("SKIP: userfaultfd unavailable: {why}"),
        }
        return;
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "skip_reason_is_clear_for_an_unprivileged_user",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("ZCACHE_UFFD_SKIP_CHILD", "1");
    // SAFETY: between fork and exec the closure calls only setgroups/setgid/setuid,
    // which are async-signal-safe and allocate nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let sysctl =
        std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").unwrap_or_default();
    if sysctl.trim() == "0" {
        let line = text
            .lines()
            .find_map(|l| l.find("CHILD").map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no answer from the child: {text}"));
        assert!(line.starts_with("CHILD SKIP: "), "{line}");
        assert!(line.contains("vm.unprivileged_userfaultfd is 0"), "{line}");
        println!("as nobody: {line}");
    } else {
        println!(
            "vm.unprivileged_userfaultfd={}: nobody may use it; child said: {text}",
            sysctl.trim()
        );
    }
}

// ---- the model-based test ----

#[derive(Clone, Debug)]
enum Op {
    /// Write `len` bytes of `seed`-derived data at page `page`, byte `off` (the thread's
    /// own half).
    Write {
        page: usize,
        off: usize,
        len: usize,
        seed: u64,
    },
    /// Read a page of the thread's own half and compare with the shadow.
    Read { page: usize },
    /// Evict pages `first..first+n` of the whole region (either half).
    Evict { first: usize, n: usize },
    /// Discard pages `first..first+n` of the thread's own half (they read as zeros).
    Discard { first: usize, n: usize },
    /// Set the resident limit.
    Limit(Option<usize>),
    /// Run the limit's CLOCK inline.
    Enforce,
}

const MODEL_PAGES: usize = 32;
const HALF: usize = MODEL_PAGES / 2;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..HALF, 0..PAGE, 1..PAGE, any::<u64>()).prop_map(|(page, off, len, seed)| Op::Write {
            page,
            off,
            len: len.min(PAGE - off),
            seed
        }),
        3 => (0..HALF).prop_map(|page| Op::Read { page }),
        3 => (0..MODEL_PAGES, 1..MODEL_PAGES).prop_map(|(first, n)| Op::Evict {
            first,
            n: n.min(MODEL_PAGES - first)
        }),
        1 => (0..HALF, 1..4usize).prop_map(|(first, n)| Op::Discard {
            first,
            n: n.min(HALF - first)
        }),
        1 => prop::option::of(0..MODEL_PAGES).prop_map(Op::Limit),
        1 => Just(Op::Enforce),
    ]
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    // Mostly compressible with some random runs: both zcache outcomes happen.
    let t = text_page(seed);
    let r = random_page(seed);
    (0..len)
        .map(|i| if (i / 512) % 3 == 2 { r[i] } else { t[i] })
        .collect()
}

/// Runs one thread's ops on its half (`base` = its first page) against its shadow.
fn run_half(r: &Region, base: usize, ops: &[Op]) -> Result<Vec<u8>, String> {
    let mut shadow = vec![0u8; HALF * PAGE];
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Write {
                page,
                off,
                len,
                seed,
            } => {
                let d = data(seed, len);
                r.write((base + page) * PAGE + off, &d)
                    .map_err(|e| e.to_string())?;
                shadow[page * PAGE + off..page * PAGE + off + len].copy_from_slice(&d);
            }
            Op::Read { page } => {
                let got = read_page(r, base + page);
                if got[..] != shadow[page * PAGE..(page + 1) * PAGE] {
                    return Err(format!(
                        "op {i}: page {} differs from the shadow",
                        base + page
                    ));
                }
            }
            Op::Evict { first, n } => {
                r.evict(first * PAGE..(first + n) * PAGE)
                    .map_err(|e| e.to_string())?;
            }
            Op::Discard { first, n } => {
                r.discard((base + first) * PAGE..(base + first + n) * PAGE)
                    .map_err(|e| e.to_string())?;
                shadow[first * PAGE..(first + n) * PAGE].fill(0);
            }
            Op::Limit(l) => r.set_resident_limit(l),
            Op::Enforce => {
                r.enforce_limit();
            }
        }
    }
    Ok(shadow)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Two owner threads, one per half, each with its own shadow; evictions and limit
    /// changes from both cross the halves, and the background reclaimer runs too. The
    /// region always reads back as the shadows, during the run and at the end (also
    /// after a resident shutdown).
    #[test]
    fn region_reads_back_as_the_shadow(
        a in prop::collection::vec(op(), 1..80),
        b in prop::collection::vec(op(), 1..80),
        frames in prop::option::of(1usize..8),
        spill in any::<bool>(),
        copies in prop_oneof![
            Just(CleanCopies::All),
            (0usize..6).prop_map(CleanCopies::AtMost),
            (1usize..5).prop_map(|share| CleanCopies::Adaptive { share }),
        ],
    ) {
        if let Err(why) = zcache_uffd::available() {
            println!("SKIP: userfaultfd unavailable: {why}");
            return Ok(());
        }
        let mut c = RegionConfig::new(MODEL_PAGES * PAGE);
        c.clean_copies = copies;
        if let Some(f) = frames {
            c.zcache.max_frames = f;
        }
        let dir = std::env::temp_dir();
        if spill {
            c.spill_dir = Some(dir);
        }
        let r = Arc::new(Region::new(c).unwrap());
        let barrier = Arc::new(Barrier::new(2));
        let t = {
            let (r, barrier, b) = (r.clone(), barrier.clone(), b.clone());
            std::thread::spawn(move || {
                barrier.wait();
                run_half(&r, HALF, &b)
            })
        };
        barrier.wait();
        let sa = run_half(&r, 0, &a);
        let sb = t.join().unwrap();
        let (sa, sb) = (sa.map_err(TestCaseError::fail)?, sb.map_err(TestCaseError::fail)?);
        let s = settled(&r);
        prop_assert_eq!(s.fault_errors, 0);
        let r = Arc::try_unwrap(r).ok().unwrap();
        let mem = r.shutdown_resident().unwrap();
        let mut all = vec![0u8; MODEL_PAGES * PAGE];
        mem.read(0, &mut all).unwrap();
        prop_assert!(all[..HALF * PAGE] == sa[..], "half A differs after shutdown");
        prop_assert!(all[HALF * PAGE..] == sb[..], "half B differs after shutdown");
    }
}
