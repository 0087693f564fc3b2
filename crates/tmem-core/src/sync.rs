//! Lock and atomic shim: spin locks and core atomics normally, loom's under `--cfg loom`
//! so the loom models in `tests/loom.rs` explore the interleavings (every one with at
//! most `LOOM_MAX_PREEMPTIONS` preemptions: 2 in scripts/check.sh; a spin loop never
//! yields under loom and would hang the model).

#[cfg(not(loom))]
mod imp {
    pub(crate) use core::sync::atomic::{AtomicBool, Ordering};

    /// Spin mutex (never sleeps: usable where sleeping is forbidden).
    pub(crate) struct Mutex<T>(spin::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = super::Guard<spin::MutexGuard<'a, T>>;

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(spin::Mutex::new(v))
        }
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            super::counted(self.0.lock())
        }
    }

    /// Spin reader-writer lock.
    pub(crate) struct RwLock<T>(spin::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(v: T) -> Self {
            RwLock(spin::RwLock::new(v))
        }
        #[inline]
        pub(crate) fn read(&self) -> super::Guard<spin::RwLockReadGuard<'_, T>> {
            super::counted(self.0.read())
        }
        #[inline]
        pub(crate) fn write(&self) -> super::Guard<spin::RwLockWriteGuard<'_, T>> {
            super::counted(self.0.write())
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};

    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = super::Guard<loom::sync::MutexGuard<'a, T>>;

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(loom::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            super::counted(self.0.lock().expect("loom mutex poisoned"))
        }
    }

    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(v: T) -> Self {
            RwLock(loom::sync::RwLock::new(v))
        }
        pub(crate) fn read(&self) -> super::Guard<loom::sync::RwLockReadGuard<'_, T>> {
            super::counted(self.0.read().expect("loom rwlock poisoned"))
        }
        pub(crate) fn write(&self) -> super::Guard<loom::sync::RwLockWriteGuard<'_, T>> {
            super::counted(self.0.write().expect("loom rwlock poisoned"))
        }
    }
}

pub(crate) use imp::*;

/// Locks of this crate held now, by any thread (see the crate's `held_locks`).
pub(crate) fn held() -> usize {
    #[cfg(feature = "lock-count")]
    {
        counting::HELD.load(core::sync::atomic::Ordering::SeqCst)
    }
    #[cfg(not(feature = "lock-count"))]
    {
        0
    }
}

/// Wraps a guard so it is counted while it lives (feature `lock-count`), or returns it
/// as it is (no cost).
#[inline]
pub(crate) fn counted<G>(g: G) -> Guard<G> {
    #[cfg(feature = "lock-count")]
    {
        counting::Counted::new(g)
    }
    #[cfg(not(feature = "lock-count"))]
    {
        g
    }
}

/// A guard as [`counted`] returns it.
#[cfg(feature = "lock-count")]
pub(crate) type Guard<G> = counting::Counted<G>;
/// A guard as [`counted`] returns it.
#[cfg(not(feature = "lock-count"))]
pub(crate) type Guard<G> = G;

#[cfg(feature = "lock-count")]
mod counting {
    use core::ops::{Deref, DerefMut};
    // A plain `core` atomic even under loom: test instrumentation, not part of any
    // modelled protocol.
    use core::sync::atomic::{AtomicUsize, Ordering};

    pub(super) static HELD: AtomicUsize = AtomicUsize::new(0);

    /// A guard counted in [`HELD`] from creation to drop.
    pub(crate) struct Counted<G>(G);

    impl<G> Counted<G> {
        pub(super) fn new(g: G) -> Self {
            HELD.fetch_add(1, Ordering::SeqCst);
            Counted(g)
        }
    }

    impl<G: Deref> Deref for Counted<G> {
        type Target = G::Target;
        fn deref(&self) -> &G::Target {
            &self.0
        }
    }

    impl<G: DerefMut> DerefMut for Counted<G> {
        fn deref_mut(&mut self) -> &mut G::Target {
            &mut self.0
        }
    }

    impl<G> Drop for Counted<G> {
        fn drop(&mut self) {
            HELD.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
