//! Lock and atomic shim: spin locks normally, loom's types under `--cfg loom` (a spin
//! loop never yields to loom's scheduler and would hang a model).
//!
//! With the `lock-count` feature (tests only) every guard counts itself in a
//! process-global counter while it lives (`crate::held_locks`), so a test's page source
//! can check that no class lock is held when it is called; without the feature the
//! guard is the back end's own type, at no cost.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

/// A spin lock (never sleeps; callable where sleeping is forbidden), or loom's mutex so
/// models explore the interleavings of lock acquisitions (every one with at most
/// `LOOM_MAX_PREEMPTIONS` preemptions: 2 in scripts/check.sh).
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The back end's guard.
#[cfg(not(loom))]
type RawGuard<'a, T> = spin::MutexGuard<'a, T>;
/// The back end's guard.
#[cfg(loom)]
type RawGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// The guard `Mutex::lock` returns.
#[cfg(not(feature = "lock-count"))]
pub(crate) type MutexGuard<'a, T> = RawGuard<'a, T>;
/// The guard `Mutex::lock` returns.
#[cfg(feature = "lock-count")]
pub(crate) type MutexGuard<'a, T> = counting::Counted<RawGuard<'a, T>>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub(crate) fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(loom))]
            inner: spin::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Takes the lock, spinning (never sleeping) while another thread holds it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        let g = self.inner.lock();
        // Poisoning only follows a panic in another model thread, which already fails
        // the model.
        #[cfg(loom)]
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        #[cfg(feature = "lock-count")]
        let g = counting::Counted::new(g);
        g
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        {
            self.inner.get_mut()
        }
        #[cfg(loom)]
        {
            self.inner.get_mut().unwrap_or_else(|p| p.into_inner())
        }
    }
}

/// Locks of this crate held now, by any thread (see `crate::held_locks`).
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

#[cfg(feature = "lock-count")]
mod counting {
    use core::ops::{Deref, DerefMut};
    // A plain `core` atomic even under loom: test instrumentation, not part of any
    // modelled protocol.
    use core::sync::atomic::{AtomicUsize, Ordering};

    pub(super) static HELD: AtomicUsize = AtomicUsize::new(0);

    /// A guard that is counted in [`HELD`] from creation to drop.
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
            // Runs just before the inner guard unlocks (fields drop after `drop`);
            // nothing of the guard's own thread runs in between.
            HELD.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
