//! Lock shim: `spin::Mutex` normally, loom's mutex under `--cfg loom` (a spin loop never
//! yields under loom and would hang a model). All pool state is under the shards' locks;
//! the one atomic of zbud's own, [`AtomicUsize`] (loom's under `--cfg loom`), holds hints
//! that no correctness depends on (compaction's shard cursor, the tests' round-robin
//! shard picking).
//!
//! The wrapper gives both back ends the same `lock()` signature (loom's returns a
//! `LockResult`). With the `lock-count` feature (tests only) every guard counts itself
//! in a process-global counter while it lives (`crate::held_locks`), so a test's page
//! source can check that no zbud lock is held when it is called; without the feature
//! the guard is the back end's own type, at no cost.

/// A mutual-exclusion lock: `spin::Mutex` (never sleeps), or loom's model of a mutex.
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    /// Set while the lock is held, read before each `try_lock`. loom switches threads
    /// only at its own operations and explores only orders of operations that conflict;
    /// a hold has none between acquire and release, so without this word no model could
    /// run a `try_lock` while the lock is held, and none would ever fail.
    #[cfg(loom)]
    held: loom::sync::atomic::AtomicBool,
}

/// The back end's guard.
#[cfg(not(loom))]
type RawGuard<'a, T> = spin::MutexGuard<'a, T>;
/// The back end's guard.
#[cfg(loom)]
type RawGuard<'a, T> = marked::Marked<'a, loom::sync::MutexGuard<'a, T>>;

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
            #[cfg(loom)]
            held: loom::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Takes the lock, spinning (never sleeping) while another thread holds it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        let g = self.inner.lock();
        #[cfg(loom)]
        // A panic while holding the lock already fails the model; take the data anyway.
        let g = marked::Marked::new(
            self.inner.lock().unwrap_or_else(|e| e.into_inner()),
            &self.held,
        );
        #[cfg(feature = "lock-count")]
        let g = counting::Counted::new(g);
        g
    }

    /// Takes the lock if it is free now; `None` if another thread holds it (never waits).
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(loom))]
        let g = self.inner.try_lock()?;
        #[cfg(loom)]
        let g = {
            // Relaxed: the mutex orders the data; this word only gives loom a conflict.
            self.held.load(core::sync::atomic::Ordering::Relaxed);
            // Poisoned (a panic already failed the model) counts as busy: `lock` takes it.
            marked::Marked::new(self.inner.try_lock().ok()?, &self.held)
        };
        #[cfg(feature = "lock-count")]
        let g = counting::Counted::new(g);
        Some(g)
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        {
            self.inner.get_mut()
        }
        #[cfg(loom)]
        {
            self.inner.get_mut().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// An atomic word for hints (see the module docs).
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::AtomicUsize;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicUsize;

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

#[cfg(loom)]
mod marked {
    use core::ops::{Deref, DerefMut};
    use core::sync::atomic::Ordering::Relaxed;
    use loom::sync::atomic::AtomicBool;

    /// A loom guard that sets its mutex's `held` word while it lives.
    pub(crate) struct Marked<'a, G> {
        g: G,
        held: &'a AtomicBool,
    }

    impl<'a, G> Marked<'a, G> {
        pub(super) fn new(g: G, held: &'a AtomicBool) -> Self {
            held.store(true, Relaxed);
            Marked { g, held }
        }
    }

    impl<G: Deref> Deref for Marked<'_, G> {
        type Target = G::Target;
        fn deref(&self) -> &G::Target {
            &self.g
        }
    }

    impl<G: DerefMut> DerefMut for Marked<'_, G> {
        fn deref_mut(&mut self) -> &mut G::Target {
            &mut self.g
        }
    }

    impl<G> Drop for Marked<'_, G> {
        fn drop(&mut self) {
            // Before the inner guard unlocks (fields drop after `drop`).
            self.held.store(false, Relaxed);
        }
    }
}
