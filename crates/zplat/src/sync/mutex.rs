//! [`Mutex`]: the build's raw mutex (see the module docs) under one API, or loom's.

use core::ops::{Deref, DerefMut};

use super::count;

/// A mutual-exclusion lock over the build's [`RawMutex`](super::RawMutex), or loom's
/// model of a mutex under `--cfg loom`.
///
/// The API is the part of `std::sync::Mutex` the crates use, without poisoning (a
/// panic while a lock is held is a bug of the holder; the data stays reachable).
pub struct Mutex<T> {
    #[cfg(not(loom))]
    inner: lock_api::Mutex<super::RawMutex, T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    /// For a mutex made by [`Mutex::new_for_try_lock`]: set while the lock is held,
    /// read before each `try_lock`. loom switches threads only at its own operations
    /// and explores only orders of operations that conflict; a hold has none between
    /// acquire and release, so without this word no model could run a `try_lock` while
    /// the lock is held, and none would ever fail. Only such mutexes carry it: each
    /// store is a loom operation, and every other model would pay for it in branches.
    #[cfg(loom)]
    held: Option<loom::sync::atomic::AtomicBool>,
}

/// The back end's guard.
#[cfg(not(loom))]
type RawGuard<'a, T> = lock_api::MutexGuard<'a, super::RawMutex, T>;
/// The back end's guard.
#[cfg(loom)]
type RawGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// Proof that a [`Mutex`] is held; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    g: RawGuard<'a, T>,
    #[cfg(loom)]
    held: Option<&'a loom::sync::atomic::AtomicBool>,
}

/// A guard of [`Mutex::try_lock_token`]: like [`MutexGuard`], but never counted as a
/// held lock (feature `lock-count`).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct TokenGuard<'a, T> {
    g: RawGuard<'a, T>,
    #[cfg(loom)]
    held: Option<&'a loom::sync::atomic::AtomicBool>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value` (a `const fn`, except under loom).
    #[cfg(all(not(loom), not(feature = "host-lock")))]
    pub const fn new(value: T) -> Self {
        Mutex {
            inner: lock_api::Mutex::new(value),
        }
    }

    /// A new unlocked lock holding `value`; the host's lock is told where it was made
    /// (`HostLock::build`'s `site`: a lockdep class per construction site).
    #[cfg(all(not(loom), feature = "host-lock"))]
    #[track_caller]
    pub const fn new(value: T) -> Self {
        Mutex {
            inner: lock_api::Mutex::from_raw(
                super::HostRawMutex::at(core::panic::Location::caller()),
                value,
            ),
        }
    }

    /// A new unlocked mutex holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Mutex {
            inner: loom::sync::Mutex::new(value),
            held: None,
        }
    }

    /// [`new`](Self::new), for a mutex that threads `try_lock` while others hold it
    /// (zbud's shards): the same lock, except that under loom its holds are visible to
    /// `try_lock`, so models explore the failing `try_lock`s too.
    #[cfg(not(loom))]
    #[cfg_attr(feature = "host-lock", track_caller)]
    pub const fn new_for_try_lock(value: T) -> Self {
        Self::new(value)
    }

    /// [`new`](Self::new), for a mutex that threads `try_lock` while others hold it
    /// (zbud's shards): under loom its holds are visible to `try_lock`, so models
    /// explore the failing `try_lock`s too.
    #[cfg(loom)]
    pub fn new_for_try_lock(value: T) -> Self {
        Mutex {
            inner: loom::sync::Mutex::new(value),
            held: Some(loom::sync::atomic::AtomicBool::new(false)),
        }
    }

    #[inline]
    fn raw_lock(&self) -> RawGuard<'_, T> {
        #[cfg(not(loom))]
        {
            self.inner.lock()
        }
        #[cfg(loom)]
        {
            // A panic while holding the lock already fails the model; take the data.
            let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = &self.held {
                h.store(true, core::sync::atomic::Ordering::Relaxed);
            }
            g
        }
    }

    #[inline]
    fn raw_try_lock(&self) -> Option<RawGuard<'_, T>> {
        #[cfg(not(loom))]
        {
            self.inner.try_lock()
        }
        #[cfg(loom)]
        {
            // Relaxed: the mutex orders the data; this word only gives loom a conflict.
            if let Some(h) = &self.held {
                h.load(core::sync::atomic::Ordering::Relaxed);
            }
            // Poisoned (a panic already failed the model) counts as busy.
            let g = self.inner.try_lock().ok()?;
            if let Some(h) = &self.held {
                h.store(true, core::sync::atomic::Ordering::Relaxed);
            }
            Some(g)
        }
    }

    /// Takes the lock, waiting as the build's raw mutex waits (spinning, or blocking
    /// with `std-lock`) while another thread holds it.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let g = self.raw_lock();
        count::acquired();
        MutexGuard {
            g,
            #[cfg(loom)]
            held: self.held.as_ref(),
        }
    }

    /// Takes the lock if it is free now; `None` if another thread holds it (never
    /// waits).
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let g = self.raw_try_lock()?;
        count::acquired();
        Some(MutexGuard {
            g,
            #[cfg(loom)]
            held: self.held.as_ref(),
        })
    }

    /// [`try_lock`](Self::try_lock) for a try-only token: a lock nobody ever waits on
    /// (zcache's per-CPU compression contexts), which is therefore not counted as a
    /// held lock by the `lock-count` feature.
    #[inline]
    pub fn try_lock_token(&self) -> Option<TokenGuard<'_, T>> {
        let g = self.raw_try_lock()?;
        Some(TokenGuard {
            g,
            #[cfg(loom)]
            held: self.held.as_ref(),
        })
    }

    /// The data, through exclusive access to the mutex (no locking needed).
    #[inline]
    pub fn get_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        {
            self.inner.get_mut()
        }
        #[cfg(loom)]
        {
            self.inner.get_mut().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// The data, consuming the mutex.
    #[inline]
    pub fn into_inner(self) -> T {
        #[cfg(not(loom))]
        {
            self.inner.into_inner()
        }
        #[cfg(loom)]
        {
            self.inner.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    // Under host-lock the lock's site (its lockdep class) is the caller's, not this file.
    #[cfg_attr(all(not(loom), feature = "host-lock"), track_caller)]
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mutex").finish_non_exhaustive()
    }
}

macro_rules! guard_impls {
    ($guard:ident, $counted:expr) => {
        impl<T> Deref for $guard<'_, T> {
            type Target = T;
            #[inline]
            fn deref(&self) -> &T {
                &self.g
            }
        }

        impl<T> DerefMut for $guard<'_, T> {
            #[inline]
            fn deref_mut(&mut self) -> &mut T {
                &mut self.g
            }
        }

        #[cfg(any(loom, feature = "lock-count"))]
        impl<T> Drop for $guard<'_, T> {
            #[inline]
            fn drop(&mut self) {
                // Runs just before the inner guard unlocks (fields drop after `drop`);
                // nothing of this thread runs in between.
                #[cfg(loom)]
                if let Some(h) = self.held {
                    h.store(false, core::sync::atomic::Ordering::Relaxed);
                }
                if $counted {
                    count::released();
                }
            }
        }
    };
}

guard_impls!(MutexGuard, true);
guard_impls!(TokenGuard, false);
