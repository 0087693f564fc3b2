//! The whole stack on the host's own locks (feature `host-lock`: `cargo test -p zcache
//! --features host-lock --test host_lock`).
//!
//! The "host" here is what a kernel module would write with `zplat::host_locks!`: its
//! lock types are built at each zcache-rs lock's first use, and told where that lock
//! was made, which a kernel passes to lockdep as the class key. These locks
//! (`crates/zplat/tests/support/spin_host.rs`) wrap the `spin` crate's and record each
//! site, so the test sees that tmem's buckets, the
//! allocators' class and shard locks and zcache's own locks all run the host's code,
//! with one class per kind of lock, while two threads store and load real-looking
//! pages and read them back intact.

#[path = "../../zplat/tests/support/spin_host.rs"]
mod spin_host;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use spin_host::{BUILT, LOCKS};
use zcache::testing::test_page;
use zcache::{AllocatorKind, Config, Zcache};
use zpool::HeapPageSource;

#[test]
fn zcache_runs_on_the_hosts_locks_with_one_class_per_kind_of_lock() {
    assert_eq!(zplat::sync::LOCK_KIND, "host-lock");
    for (eph, pers) in [
        (AllocatorKind::Zbud, AllocatorKind::Zsmalloc),
        (AllocatorKind::Zsmalloc, AllocatorKind::Zbud),
    ] {
        let cfg = Config {
            ephemeral_allocator: eph,
            persistent_allocator: pers,
            ..Config::default()
        };
        let z = Arc::new(Zcache::new(cfg, Arc::new(HeapPageSource)).unwrap());
        z.frontswap().init(0).unwrap();
        let pool = z.cleancache().init_fs().unwrap();
        let workers: Vec<_> = (0..2u32)
            .map(|t| {
                let z = z.clone();
                thread::spawn(move || {
                    let fs = z.frontswap();
                    let cc = z.cleancache();
                    let key = zcache::file_key_from_inode(u64::from(t));
                    let mut out = [0u8; zcache::PAGE_SIZE];
                    for i in 0..400u32 {
                        let off = u64::from(t * 1000 + i);
                        let p = test_page(i * 8 + t);
                        fs.store(0, off, &p).unwrap();
                        cc.put_page(pool, key, u64::from(i), &p);
                        fs.load(0, off, &mut out).unwrap();
                        assert_eq!(out, p, "frontswap page {off} read back wrong");
                        if cc.get_page(pool, key, u64::from(i), &mut out) {
                            assert_eq!(out, p, "cleancache page {i} read back wrong");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        z.reclaim(32);
        z.compact();
    }
    assert!(LOCKS.load(Ordering::Relaxed) > 1000);
    let sites: BTreeSet<(&str, u32)> = BUILT.lock().unwrap().iter().copied().collect();
    let crates: BTreeSet<&str> = sites
        .iter()
        .filter_map(|(f, _)| f.split("crates/").nth(1)?.split('/').next())
        .collect();
    for c in ["tmem-core", "zbud", "zsmalloc", "zcache"] {
        assert!(
            crates.contains(c),
            "no host lock was built for a lock of {c}; sites: {sites:?}"
        );
    }
}
