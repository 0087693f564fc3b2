//! Stack depth of the store, load, eviction, reclaim and writeback paths: a kernel thread has
//! 16 KiB of stack. In a release build every path below runs on a thread with a 16 KiB
//! stack (a stack overflow aborts the whole test process). Debug builds keep page-sized
//! temporaries unmerged and need far more, so there the test is ignored:
//! `cargo test --release -p zcache --test stack`.

use std::sync::Arc;

use zcache::testing::{RecordingWriteback, test_page};
use zcache::{Config, Oid, Writeback, Zcache};

/// A zeroed page on the heap, never on the stack (a 64 KiB page would not fit the
/// 16 KiB thread; a host's page buffers are its own, not zcache's stack).
fn heap_page() -> Box<zcache::Page> {
    vec![0u8; zcache::PAGE_SIZE]
        .into_boxed_slice()
        .try_into()
        .expect("PAGE_SIZE bytes")
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "debug builds use far more stack; run with --release"
)]
fn every_path_fits_a_16_kib_stack() {
    let wb = Arc::new(RecordingWriteback::default());
    let cfg = Config {
        max_frames: 64,
        // No hysteresis: stores at the limit evict synchronously.
        accept_threshold_percent: 100,
        ..Config::default()
    };
    let z = Arc::new(
        Zcache::with_writeback(
            cfg,
            Arc::new(zpool::HeapPageSource),
            wb.clone() as Arc<dyn Writeback>,
        )
        .unwrap(),
    );
    z.frontswap().init(0).unwrap();
    let pool = z.cleancache().init_fs().unwrap();
    let z2 = z.clone();
    // The test's pages live on the heap, so the stack measured is zcache's.
    let pages: Vec<Box<zcache::Page>> = (0..5).map(|k| Box::new(test_page(3 + k))).collect();
    std::thread::Builder::new()
        .stack_size(16 * 1024)
        .spawn(move || {
            let mut out = heap_page();
            for i in 0..400u64 {
                let page = &pages[i as usize % 5];
                // Over the 64-frame limit: eviction and stealing in stores, writeback
                // in the worker.
                let _ = z2.frontswap().store(0, i, page);
                if i % 16 == 0 {
                    z2.reclaim(32);
                    z2.shrinker_scan(8);
                }
                z2.cleancache().put_page(pool, Oid::new(1, 0, 0), i, page);
                let _ = z2.frontswap().load(0, i / 2, &mut out);
                let _ = z2
                    .cleancache()
                    .get_page(pool, Oid::new(1, 0, 0), i / 2, &mut out);
            }
            z2.shrink(0);
            z2.compact();
        })
        .unwrap()
        .join()
        .unwrap();
    let st = z.stats();
    assert!(
        st.counters.written_back_pages > 0
            && st.counters.eph_ate_tail + st.counters.pers_ate_eph > 0,
        "{st:?}"
    );
}

/// Teardown paths at the deepest tree (index u64::MAX: height 11): invalidating an
/// object, destroying a pool, swapoff, and dropping a whole `Zcache` that still holds
/// pages, all on a 16 KiB thread. The test's own pages live on the heap (a host's
/// buffers are its own), so the stack measured is zcache's.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "debug builds use far more stack; run with --release"
)]
fn teardown_of_the_deepest_trees_fits_a_16_kib_stack() {
    let pages: Vec<Box<zcache::Page>> = (0..5).map(|k| Box::new(test_page(3 + k))).collect();
    std::thread::Builder::new()
        .stack_size(16 * 1024)
        .spawn(move || {
            let z = Zcache::new(Config::default(), Arc::new(zpool::HeapPageSource)).unwrap();
            let cc = z.cleancache();
            let fs = z.frontswap();
            fs.init(0).unwrap();
            let pools = [
                cc.init_fs().unwrap(),
                cc.init_fs().unwrap(),
                cc.init_fs().unwrap(),
            ];
            for i in 0..64u64 {
                let page = &pages[i as usize % 5];
                for (k, &p) in pools.iter().enumerate() {
                    for idx in [u64::MAX - i, i << 40, i] {
                        cc.put_page(p, Oid::new(k as u64, 0, 0), idx, page);
                    }
                }
                fs.store(0, u64::MAX - i, page).unwrap();
                fs.store(0, i << 50, page).unwrap();
            }
            let mut out = heap_page();
            assert!(cc.get_page(pools[0], Oid::new(0, 0, 0), u64::MAX, &mut out));
            cc.invalidate_inode(pools[0], Oid::new(0, 0, 0));
            cc.invalidate_fs(pools[1]).unwrap();
            fs.invalidate_area(0).unwrap();
            fs.init(0).unwrap();
            fs.store(0, u64::MAX, &pages[1]).unwrap();
            // pools[2] and swap type 0 still hold pages: dropping drains them.
            assert!(z.stored_pages() > 0);
            drop(z);
        })
        .unwrap()
        .join()
        .unwrap();
}
