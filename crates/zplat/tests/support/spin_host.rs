//! A host for `host-lock` builds in tests: the `spin` crate's locks behind
//! `zplat::host_locks!`, counting what passes through them and recording where each was
//! built. Shared by zplat's and zcache's `tests/host_lock.rs` (`#[path]` module).

#![allow(dead_code)] // each test uses part of it

use std::sync::atomic::{AtomicUsize, Ordering};

use zplat::lock_api::{GuardSend, RawMutex, RawRwLock};
use zplat::sync::HostLock;

/// The construction sites (file and line) of every host lock built, in build order.
pub static BUILT: std::sync::Mutex<Vec<(&'static str, u32)>> = std::sync::Mutex::new(Vec::new());

impl HostLock for CountingMutex {
    fn build(site: &'static std::panic::Location<'static>) -> Self {
        BUILT.lock().unwrap().push((site.file(), site.line()));
        <Self as RawMutex>::INIT
    }
}

impl HostLock for CountingRwLock {
    fn build(site: &'static std::panic::Location<'static>) -> Self {
        BUILT.lock().unwrap().push((site.file(), site.line()));
        <Self as RawRwLock>::INIT
    }
}

/// Mutex acquisitions through the host.
pub static LOCKS: AtomicUsize = AtomicUsize::new(0);
/// Mutex releases through the host.
pub static UNLOCKS: AtomicUsize = AtomicUsize::new(0);
/// Shared rwlock acquisitions through the host.
pub static SHARED: AtomicUsize = AtomicUsize::new(0);

/// The host's mutex: a spin lock that counts.
pub struct CountingMutex(spin::Mutex<()>);
/// The host's reader-writer lock: a spin rwlock that counts shared acquisitions.
pub struct CountingRwLock(spin::RwLock<()>);

// SAFETY: forwards to spin's `RawMutex` impl, which excludes.
unsafe impl RawMutex for CountingMutex {
    const INIT: Self = CountingMutex(<spin::Mutex<()> as RawMutex>::INIT);
    type GuardMarker = GuardSend;
    fn lock(&self) {
        LOCKS.fetch_add(1, Ordering::Relaxed);
        RawMutex::lock(&self.0)
    }
    fn try_lock(&self) -> bool {
        let ok = RawMutex::try_lock(&self.0);
        if ok {
            LOCKS.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }
    unsafe fn unlock(&self) {
        UNLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: our caller holds the lock.
        unsafe { RawMutex::unlock(&self.0) }
    }
}

// SAFETY: forwards to spin's `RawRwLock` impl.
unsafe impl RawRwLock for CountingRwLock {
    const INIT: Self = CountingRwLock(<spin::RwLock<()> as RawRwLock>::INIT);
    type GuardMarker = GuardSend;
    fn lock_shared(&self) {
        SHARED.fetch_add(1, Ordering::Relaxed);
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

zplat::host_locks!(mutex: CountingMutex, rwlock: CountingRwLock);
