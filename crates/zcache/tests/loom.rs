//! loom models of zcache's lock interplay across layers (tmem buckets, allocator locks,
//! compression contexts, eviction's compare-and-invalidate):
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p zcache --test loom`
#![cfg(loom)]

use std::sync::Arc;

use loom::thread;
use zcache::testing::test_page;
use zcache::{AllocatorKind, Config, Zcache};
use zpool::HeapPageSource;
use zpool::testing::CountingSource;

fn zcache(src: Arc<CountingSource<HeapPageSource>>) -> Arc<Zcache> {
    zcache_with(src, false)
}

fn zcache_with(src: Arc<CountingSource<HeapPageSource>>, in_place: bool) -> Arc<Zcache> {
    let cfg = Config {
        decompress_in_place: in_place,
        ephemeral_allocator: AllocatorKind::Zbud,
        persistent_allocator: AllocatorKind::Zsmalloc,
        contexts: 2,
        // Deterministic (loom replays each execution exactly; a stack address is not
        // stable across them). Both threads start at context 0: the busy-context
        // fallback is exercised.
        context_hint: || 0,
        ..Config::default()
    };
    Arc::new(Zcache::new(cfg, src).unwrap())
}

const FILE: zcache::Oid = zcache::Oid::new(9, 0, 0);

/// Runs `f` on a loom thread with a 1 MiB stack (a model's main coroutine has a small
/// one, and the models keep several pages on the stack) and waits for it.
fn big<F: FnOnce() + Send + 'static>(f: F) {
    spawn_big(f).join().unwrap();
}

/// Spawns a loom thread with a 1 MiB stack.
fn spawn_big<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(f: F) -> thread::JoinHandle<T> {
    thread::Builder::new().stack_size(1 << 20).spawn(f).unwrap()
}

/// Eviction (the host's shrink) racing a load and an invalidate of the same key: the
/// load returns the page or a miss, never other bytes; nothing leaks.
#[test]
fn eviction_races_load_and_invalidate() {
    eviction_races_load_and_invalidate_with(false);
}

/// The same, with loads decompressing in place (bucket lock and allocator lock held
/// across decompression).
#[test]
fn eviction_races_in_place_load_and_invalidate() {
    eviction_races_load_and_invalidate_with(true);
}

fn eviction_races_load_and_invalidate_with(in_place: bool) {
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(move || {
        big(move || {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let z = zcache_with(src.clone(), in_place);
            let pool = z.cleancache().init_fs().unwrap();
            z.cleancache().put_page(pool, FILE, 1, &test_page(11));
            z.cleancache().put_page(pool, FILE, 2, &test_page(12));
            assert_eq!(z.stored_pages(), 2);
            let z2 = z.clone();
            let evictor = spawn_big(move || {
                z2.shrink(0);
            });
            let mut out = [0u8; zcache::PAGE_SIZE];
            if z.cleancache().get_page(pool, FILE, 1, &mut out) {
                assert_eq!(out, test_page(11));
            }
            z.cleancache().invalidate_page(pool, FILE, 2);
            evictor.join().unwrap();
            assert!(!z.cleancache().get_page(pool, FILE, 2, &mut out));
            z.cleancache().invalidate_fs(pool).unwrap();
            assert_eq!(z.stats().counters.stored_pages, 0);
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}

/// A store of key K racing eviction of the frame holding K's old copy: a later load
/// returns the new page or a miss, never the old page.
#[test]
fn store_races_eviction_of_old_copy() {
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(|| {
        big(|| {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let z = zcache(src.clone());
            let pool = z.cleancache().init_fs().unwrap();
            z.cleancache().put_page(pool, FILE, 5, &test_page(3));
            assert_eq!(z.stored_pages(), 1);
            let z2 = z.clone();
            let evictor = spawn_big(move || {
                z2.shrink(0);
            });
            z.cleancache().put_page(pool, FILE, 5, &test_page(4));
            evictor.join().unwrap();
            let mut out = [0u8; zcache::PAGE_SIZE];
            if z.cleancache().get_page(pool, FILE, 5, &mut out) {
                assert_eq!(out, test_page(4), "old copy resurfaced");
            }
            z.cleancache().invalidate_fs(pool).unwrap();
            assert_eq!(z.stats().counters.stored_pages, 0);
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}

/// Pool destroy (unmount) racing a store into it: the store lands before the destroy
/// (and is freed by it) or fails; nothing leaks; persistent pages elsewhere survive.
#[test]
fn destroy_races_store() {
    // zsmalloc's store path touches many atomics: raise loom's per-execution branch cap.
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(|| {
        big(|| {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let z = zcache(src.clone());
            let pool = z.cleancache().init_fs().unwrap();
            z.frontswap().init(0).unwrap();
            z.frontswap().store(0, 1, &test_page(21)).unwrap();
            let z2 = z.clone();
            let storer = spawn_big(move || {
                z2.cleancache().put_page(pool, FILE, 0, &test_page(5));
            });
            z.cleancache().invalidate_fs(pool).unwrap();
            storer.join().unwrap();
            let mut out = [0u8; zcache::PAGE_SIZE];
            assert!(z.frontswap().load(0, 1, &mut out).unwrap());
            assert_eq!(out, test_page(21));
            z.frontswap().invalidate_area(0).unwrap();
            assert_eq!(z.stats().counters.stored_pages, 0);
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}

/// A keeping frontswap load decompressing in place (bucket lock, then zsmalloc's class
/// lock, held across decompression) racing compaction that really moves objects: three
/// pages of one size class, the first and last invalidated, so compaction has a frame
/// to free (checked before the race) and must move the middle page, the one being
/// loaded. The load sees its own page, whole, and so does a load after the move.
#[test]
fn in_place_load_races_compaction() {
    // Compaction walks every class lock: raise loom's per-execution branch cap.
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(|| {
        big(|| {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let z = zcache_with(src.clone(), true);
            let fs = z.frontswap();
            fs.init(0).unwrap();
            // test_page(3 + 8k) compresses to 1.6-1.7 KiB: one zsmalloc class.
            let page = test_page(3);
            for i in 0..3u64 {
                fs.store(0, i, &page).unwrap();
            }
            fs.invalidate_page(0, 0).unwrap();
            fs.invalidate_page(0, 2).unwrap();
            let before = z.stats().pool_frames;
            assert!(z.compactable_frames() > 0, "nothing for compaction to move");
            let z2 = z.clone();
            let compactor = spawn_big(move || z2.compact());
            let mut out = [0u8; zcache::PAGE_SIZE];
            assert!(z.frontswap().load(0, 1, &mut out).unwrap());
            assert_eq!(out, page);
            let freed = compactor.join().unwrap();
            assert!(freed > 0 && z.stats().pool_frames == before - freed);
            assert!(z.frontswap().load(0, 1, &mut out).unwrap());
            assert_eq!(out, page);
            z.frontswap().invalidate_area(0).unwrap();
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}

/// A loom-safe swap device for the writeback models: claims pin slots; the device keeps
/// the last page written to each slot.
#[derive(Default)]
struct Device {
    st: loom::sync::Mutex<(Vec<(u64, u32)>, Vec<u64>)>,
}

impl Device {
    /// The host writing a slot itself (a store zcache refused): it waits while the slot
    /// is claimed, as the kernel's folio lock makes it.
    fn host_write(&self, slot: u64, page: &zcache::Page) {
        loop {
            {
                let mut st = self.st.lock().unwrap();
                if !st.1.contains(&slot) {
                    st.0.push((slot, tag_of(page)));
                    return;
                }
            }
            thread::yield_now();
        }
    }

    /// A swap-in that missed in zcache: waits while the slot is claimed (the kernel
    /// finds the swap-cache folio and waits on its lock), then reads the device.
    fn host_read(&self, slot: u64) -> Option<u32> {
        loop {
            {
                let st = self.st.lock().unwrap();
                if !st.1.contains(&slot) {
                    return st.0.iter().rev().find(|(s, _)| *s == slot).map(|(_, t)| *t);
                }
            }
            thread::yield_now();
        }
    }

    /// The first bytes' tag of the page the device holds for `slot` (the test pages are
    /// told apart by their first word).
    fn holds(&self, slot: u64) -> Option<u32> {
        let st = self.st.lock().unwrap();
        st.0.iter().rev().find(|(s, _)| *s == slot).map(|(_, t)| *t)
    }
}

fn tag_of(page: &zcache::Page) -> u32 {
    u32::from_le_bytes([page[0], page[1], page[2], page[3]])
}

impl zcache::Writeback for Device {
    fn claim(&self, _t: u32, offset: u64) -> Option<u64> {
        let mut st = self.st.lock().unwrap();
        if st.1.contains(&offset) {
            return None;
        }
        st.1.push(offset);
        Some(offset)
    }
    fn write(&self, claim: &zcache::SlotClaim, page: &zcache::Page) -> bool {
        let mut st = self.st.lock().unwrap();
        assert!(st.1.contains(&claim.offset), "write without a claim");
        st.0.push((claim.offset, tag_of(page)));
        true
    }
    fn release(&self, claim: zcache::SlotClaim, _written: bool) {
        let mut st = self.st.lock().unwrap();
        st.1.retain(|&o| o != claim.offset);
    }
}

fn zcache_wb(
    src: Arc<CountingSource<HeapPageSource>>,
    dev: Arc<Device>,
    cfg: Config,
) -> Arc<Zcache> {
    let cfg = Config {
        contexts: 2,
        context_hint: || 0,
        ..cfg
    };
    Arc::new(Zcache::with_writeback(cfg, src, dev).unwrap())
}

/// Writeback of slot S racing the kernel freeing S and reusing it for a new page that
/// zcache refuses (incompressible), which the kernel then writes to the device itself
/// (waiting while S is claimed): in every interleaving explored, S reads as the new page.
/// This is the review's corruption: writing the old page before checking that S still
/// held it put it over the new one.
#[test]
fn writeback_races_invalidate_then_reuse() {
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(|| {
        big(|| {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let dev = Arc::new(Device::default());
            let z = zcache_wb(src.clone(), dev.clone(), Config::default());
            let fs = z.frontswap();
            fs.init(0).unwrap();
            // test_page(8k + 2) is random bytes: zcache refuses it.
            let (old, new) = (test_page(3 * 8 + 3), test_page(5 * 8 + 2));
            fs.store(0, 7, &old).unwrap();
            let z2 = z.clone();
            let wb = spawn_big(move || {
                z2.shrinker_scan(1);
            });
            // Swap-in frees S; S is reused for `new`, which zcache refuses.
            let mut out = [0u8; zcache::PAGE_SIZE];
            if fs.load(0, 7, &mut out).unwrap() {
                assert_eq!(out, old);
            } else {
                // Written back (or being written): the swap-in reads the device.
                assert_eq!(dev.host_read(7), Some(tag_of(&old)));
            }
            fs.invalidate_page(0, 7).unwrap();
            assert!(fs.store(0, 7, &new).is_err());
            dev.host_write(7, &new);
            wb.join().unwrap();
            assert!(!fs.load(0, 7, &mut out).unwrap());
            assert_eq!(
                dev.holds(7),
                Some(tag_of(&new)),
                "a stale page overwrote the new one"
            );
            fs.invalidate_area(0).unwrap();
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}

/// Writeback of slot S racing the kernel invalidating S and storing a new page to it
/// that zcache keeps: S reads as the new page (zcache first, then the device), and once
/// everything is written back the device holds the new page too.
#[test]
fn writeback_races_invalidate_then_restore() {
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(|| {
        big(|| {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let dev = Arc::new(Device::default());
            let z = zcache_wb(src.clone(), dev.clone(), Config::default());
            let fs = z.frontswap();
            fs.init(0).unwrap();
            let (old, new) = (test_page(3 * 8 + 3), test_page(5 * 8 + 3));
            fs.store(0, 7, &old).unwrap();
            let z2 = z.clone();
            let wb = spawn_big(move || {
                z2.shrinker_scan(1);
            });
            fs.invalidate_page(0, 7).unwrap();
            fs.store(0, 7, &new).unwrap();
            wb.join().unwrap();
            let mut out = [0u8; zcache::PAGE_SIZE];
            if fs.load(0, 7, &mut out).unwrap() {
                assert_eq!(out, new, "zcache holds the old page");
            } else {
                assert_eq!(
                    dev.holds(7),
                    Some(tag_of(&new)),
                    "the device holds the old page"
                );
            }
            // Write everything back: the device ends with the new page.
            while z.shrinker_scan(4) > 0 {}
            assert!(!fs.load(0, 7, &mut out).unwrap());
            assert_eq!(dev.holds(7), Some(tag_of(&new)));
            fs.invalidate_area(0).unwrap();
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}

/// The reclaim worker writing a slot back racing a keeping load of the same slot: the
/// load returns the page or misses, and then the device has it.
#[test]
fn reclaim_races_load_of_the_same_page() {
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(|| {
        big(|| {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let dev = Arc::new(Device::default());
            let z = zcache_wb(src.clone(), dev.clone(), Config::default());
            let fs = z.frontswap();
            fs.init(0).unwrap();
            let page = test_page(4 * 8 + 3);
            fs.store(0, 9, &page).unwrap();
            let z2 = z.clone();
            let worker = spawn_big(move || {
                z2.shrinker_scan(1);
            });
            let mut out = [0u8; zcache::PAGE_SIZE];
            if fs.load(0, 9, &mut out).unwrap() {
                assert_eq!(out, page);
            } else {
                assert_eq!(dev.host_read(9), Some(tag_of(&page)), "page lost");
            }
            worker.join().unwrap();
            if !fs.load(0, 9, &mut out).unwrap() {
                assert_eq!(dev.holds(9), Some(tag_of(&page)), "page lost");
            } else {
                assert_eq!(out, page);
            }
            fs.invalidate_area(0).unwrap();
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}

/// A cleancache store at the frame limit (evicting synchronously: no hysteresis) racing
/// the host's shrink: the limit holds, the stored page reads back exact or misses,
/// nothing leaks.
#[test]
fn store_at_the_limit_races_shrink() {
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.check(|| {
        big(|| {
            let src = Arc::new(CountingSource::new(HeapPageSource));
            let cfg = Config {
                max_frames: 1,
                accept_threshold_percent: 100,
                ..Config::default()
            };
            let z = zcache_wb(src.clone(), Arc::new(Device::default()), cfg);
            let cc = z.cleancache();
            let pool = cc.init_fs().unwrap();
            // Two pages of over half a frame each: the frame holds one.
            let (a, b) = (test_page(7 * 8 + 2 + 1), test_page(9 * 8 + 3));
            cc.put_page(pool, FILE, 1, &a);
            let z2 = z.clone();
            let shrinker = spawn_big(move || {
                z2.shrink(0);
            });
            cc.put_page(pool, FILE, 2, &b);
            assert!(z.stats().pool_frames <= 1);
            shrinker.join().unwrap();
            let mut out = [0u8; zcache::PAGE_SIZE];
            if cc.get_page(pool, FILE, 2, &mut out) {
                assert_eq!(out, b);
            }
            if cc.get_page(pool, FILE, 1, &mut out) {
                assert_eq!(out, a);
            }
            assert!(z.stats().pool_frames <= 1);
            cc.invalidate_fs(pool).unwrap();
            assert_eq!(z.stats().counters.stored_pages, 0);
            drop(z);
            assert_eq!(src.live(), 0);
        })
    });
}
