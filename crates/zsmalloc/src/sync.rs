//! Lock and atomic shim: spin locks normally, loom's types under `--cfg loom` (a spin
//! loop never yields to loom's scheduler and would hang a model).

#[cfg(not(loom))]
mod imp {
    pub(crate) use core::sync::atomic::{AtomicUsize, Ordering};

    /// A spin lock (never sleeps; callable where sleeping is forbidden).
    pub(crate) struct Mutex<T>(spin::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex(spin::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> spin::MutexGuard<'_, T> {
            self.0.lock()
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};

    /// loom's mutex, so models explore every interleaving of lock acquisitions.
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            // Poisoning only follows a panic in another model thread, which already
            // fails the model.
            match self.0.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }
    }
}

pub(crate) use imp::{AtomicUsize, Mutex, Ordering};
