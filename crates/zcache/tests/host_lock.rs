//! The whole stack on the host's own locks (feature `host-lock`: `cargo test -p zcache
//! --features host-lock --test host_lock`).
//!
//! The "host" here is what a kernel module would write with `zplat::host_locks!`: its
//! lock types are built at each zcache-rs lock's first use, and told where that lock
//! was made, which a kernel passes to lockdep as the class key. These locks wrap the
//! `spin` crate's and record each site, so the test sees that tmem's buckets, the
//! allocators' class and shard locks and zcache's own locks all run the host's code,
//! with one class per kind of lock, while two threads store and load real-looking
//! pages and read them back intact.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use zcache::testing::test_page;
use zcache::{AllocatorKind, Config, Zcache};
use zplat::lock_api::{GuardSend, RawMutex, RawRwLock};
use zplat::sync::HostLock;
use zpool::HeapPageSource;

/// Where the host's locks were built: (file, line).
static SITES: StdMutex<BTreeSet<(&'static str, u32)>> = StdMutex::new(BTreeSet::new());
/// Acquisitions through the host's mutex.
static ACQUIRED: AtomicUsize = AtomicUsize::new(0);

struct HostSpin(spin::Mutex<()>);
struct HostRw(spin::RwLock<()>);

impl HostLock for HostSpin {
    fn build(site: &'static std::panic::Location<'static>) -> Self {
        SITES.lock().unwrap().insert((site.file(), site.line()));
        HostSpin(spin::Mutex::new(()))
    }
}

impl HostLock for HostRw {
    fn build(site: &'static std::panic::Location<'static>) -> Self {
        SITES.lock().unwrap().insert((site.file(), site.line()));
        HostRw(spin::RwLock::new(()))
    }
}

// SAFETY: forwards to spin's `RawMutex`, which excludes.
unsafe impl RawMutex for HostSpin {
    const INIT: Self = HostSpin(<spin::Mutex<()> as RawMutex>::INIT);
    type GuardMarker = GuardSend;
    fn lock(&self) {
        ACQUIRED.fetch_add(1, Ordering::Relaxed);
        RawMutex::lock(&self.0)
    }
    fn try_lock(&self) -> bool {
        RawMutex::try_lock(&self.0)
    }
    unsafe fn unlock(&self) {
        // SAFETY: our caller holds the lock.
        unsafe { RawMutex::unlock(&self.0) }
    }
}

// SAFETY: forwards to spin's `RawRwLock`.
unsafe impl RawRwLock for HostRw {
    const INIT: Self = HostRw(<spin::RwLock<()> as RawRwLock>::INIT);
    type GuardMarker = GuardSend;
    fn lock_shared(&self) {
        self.0.lock_shared()
    }
    fn try_lock_shared(&self) -> bool {
        self.0.try_lock_shared()
    }
    unsafe fn unlock_shared(&self) {
        // SAFETY: our caller holds a shared lock.
        unsafe { self.0.unlock_shared() }
    }
    fn lock_exclusive(&self) {
        self.0.lock_exclusive()
    }
    fn try_lock_exclusive(&self) -> bool {
        self.0.try_lock_exclusive()
    }
    unsafe fn unlock_exclusive(&self) {
        // SAFETY: our caller holds the exclusive lock.
        unsafe { self.0.unlock_exclusive() }
    }
}

zplat::host_locks!(mutex: HostSpin, rwlock: HostRw);

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
                    let mut out = [0u8; 4096];
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
    assert!(ACQUIRED.load(Ordering::Relaxed) > 1000);
    let sites = SITES.lock().unwrap().clone();
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
