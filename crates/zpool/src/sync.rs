//! Lock and atomic shim: `spin` and `core` types normally, `loom`'s under `--cfg loom`
//! (a spin loop never yields under loom and would hang a model).
//!
//! Only what this crate uses is re-exported. The mutex wrapper gives both back ends the
//! same `lock()` signature (loom's returns a `LockResult`).

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

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
