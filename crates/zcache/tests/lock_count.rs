//! No zcache, tmem or allocator lock is held while a host callback runs.
//!
//! Needs the `lock-count` feature (`cargo test -p zcache --features lock-count --test
//! lock_count`): the host's page source and writeback check `zcache::held_locks() == 0`
//! on every call (alloc_frame, free_frame, claim, write, release) while stores, loads,
//! invalidations, synchronous eviction, the reclaim worker, the shrinker, shrink,
//! compaction, pool destruction and drop run. One thread, one test: the counter is
//! process-global.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use zcache::testing::test_page;
use zcache::{AllocatorKind, Config, SlotClaim, Writeback, Zcache};
use zpool::{AllocError, Frame, HeapPageSource, Page, PageSource};

#[derive(Default)]
struct Host {
    calls: [AtomicUsize; 5],
    under_lock: [AtomicUsize; 5],
    live: AtomicUsize,
}

const NAMES: [&str; 5] = ["alloc_frame", "free_frame", "claim", "write", "release"];

impl Host {
    fn check(&self, which: usize) {
        self.calls[which].fetch_add(1, Ordering::Relaxed);
        if zcache::held_locks() != 0 {
            self.under_lock[which].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl PageSource for Host {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        self.check(0);
        let f = HeapPageSource.alloc_frame()?;
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(f)
    }
    fn free_frame(&self, frame: Frame) {
        self.check(1);
        self.live.fetch_sub(1, Ordering::Relaxed);
        HeapPageSource.free_frame(frame)
    }
}

impl Writeback for Host {
    fn claim(&self, _t: u32, offset: u64) -> Option<u64> {
        self.check(2);
        Some(offset)
    }
    fn write(&self, claim: &SlotClaim, _page: &Page) -> bool {
        self.check(3);
        claim.offset % 3 != 0
    }
    fn release(&self, _claim: SlotClaim, _written: bool) {
        self.check(4);
    }
}

struct Shared(Arc<Host>);
impl PageSource for Shared {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        self.0.alloc_frame()
    }
    fn free_frame(&self, frame: Frame) {
        self.0.free_frame(frame)
    }
}
impl Writeback for Shared {
    fn claim(&self, t: u32, offset: u64) -> Option<u64> {
        self.0.claim(t, offset)
    }
    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        self.0.write(claim, page)
    }
    fn release(&self, claim: SlotClaim, written: bool) {
        self.0.release(claim, written)
    }
}

#[test]
fn no_lock_is_held_across_a_host_callback() {
    let host = Arc::new(Host::default());
    for (eph, pers, accept) in [
        (AllocatorKind::Zbud, AllocatorKind::Zsmalloc, 100),
        (AllocatorKind::Zsmalloc, AllocatorKind::Zbud, 90),
    ] {
        let cfg = Config {
            ephemeral_allocator: eph,
            persistent_allocator: pers,
            max_frames: 48,
            accept_threshold_percent: accept,
            contexts: 2,
            ..Config::default()
        };
        let z = Zcache::with_writeback(
            cfg,
            Arc::new(Shared(host.clone())),
            Arc::new(Shared(host.clone())),
        )
        .unwrap();
        let cc = z.cleancache();
        let fs = z.frontswap();
        let pool = cc.init_fs().unwrap();
        fs.init(0).unwrap();
        let mut page = [0u8; zcache::PAGE_SIZE];
        for i in 0..600u32 {
            let p = test_page(i * 8 + 3 + i % 5);
            cc.put_page(
                pool,
                zcache::file_key_from_inode(u64::from(i / 64)),
                u64::from(i),
                &p,
            );
            let _ = fs.store(0, u64::from(i), &p);
            if i % 7 == 0 {
                let _ = fs.load(0, u64::from(i / 2), &mut page);
                cc.get_page(
                    pool,
                    zcache::file_key_from_inode(u64::from(i / 128)),
                    u64::from(i / 2),
                    &mut page,
                );
                let _ = fs.invalidate_page(0, u64::from(i / 3));
            }
            if i % 50 == 49 {
                z.reclaim(64);
                z.shrinker_scan(16);
            }
        }
        z.compact();
        z.shrink(8);
        cc.invalidate_fs(pool).unwrap();
        fs.invalidate_area(0).unwrap();
        for i in 0..100u32 {
            let _ = fs.init(1);
            let _ = fs.store(1, u64::from(i), &test_page(i * 8 + 4));
        }
        drop(z);
    }
    assert_eq!(host.live.load(Ordering::Relaxed), 0, "frames leaked");
    let mut report = String::new();
    for (i, name) in NAMES.iter().enumerate() {
        let (c, u) = (
            host.calls[i].load(Ordering::Relaxed),
            host.under_lock[i].load(Ordering::Relaxed),
        );
        report.push_str(&format!("{name}: {c} calls, {u} under a lock; "));
        assert!(c > 0, "{name} was never called: {report}");
    }
    println!("{report}");
    let under: usize = host
        .under_lock
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .sum();
    assert_eq!(under, 0, "{report}");
}
