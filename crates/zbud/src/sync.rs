//! Lock shim: `spin::Mutex` normally, loom's mutex under `--cfg loom` (a spin loop never
//! yields under loom and would hang a model). zbud uses no atomics of its own: all state
//! is under the one pool lock.
//!
//! The wrapper gives both back ends the same `lock()` signature (loom's returns a
//! `LockResult`).

/// A mutual-exclusion lock: `spin::Mutex` (never sleeps), or loom's model of a mutex.
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard `Mutex::lock` returns.
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;
/// The guard `Mutex::lock` returns.
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

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
        {
            self.inner.lock()
        }
        #[cfg(loom)]
        {
            // A panic while holding the lock already fails the model; take the data anyway.
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

impl<T> Mutex<T> {
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
