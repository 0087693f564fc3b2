//! [`RwLock`]: the build's raw reader-writer lock under one API, or loom's.

use core::ops::{Deref, DerefMut};

use super::count;

/// A reader-writer lock over the build's [`RawRwLock`](super::RawRwLock), or loom's
/// model of one under `--cfg loom`. No poisoning.
pub struct RwLock<T> {
    #[cfg(not(loom))]
    inner: lock_api::RwLock<super::RawRwLock, T>,
    #[cfg(loom)]
    inner: loom::sync::RwLock<T>,
}

#[cfg(not(loom))]
type RawRead<'a, T> = lock_api::RwLockReadGuard<'a, super::RawRwLock, T>;
#[cfg(loom)]
type RawRead<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
#[cfg(not(loom))]
type RawWrite<'a, T> = lock_api::RwLockWriteGuard<'a, super::RawRwLock, T>;
#[cfg(loom)]
type RawWrite<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

/// Shared access to an [`RwLock`]'s data; releases when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T>(RawRead<'a, T>);

/// Exclusive access to an [`RwLock`]'s data; releases when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T>(RawWrite<'a, T>);

impl<T> RwLock<T> {
    /// A new unlocked reader-writer lock holding `value` (a `const fn`, except under
    /// loom).
    #[cfg(all(not(loom), not(feature = "host-lock")))]
    pub const fn new(value: T) -> Self {
        RwLock {
            inner: lock_api::RwLock::new(value),
        }
    }

    /// A new unlocked lock holding `value`; the host's lock is told where it was made
    /// (`HostLock::build`'s `site`: a lockdep class per construction site).
    #[cfg(all(not(loom), feature = "host-lock"))]
    #[track_caller]
    pub const fn new(value: T) -> Self {
        RwLock {
            inner: lock_api::RwLock::from_raw(
                super::HostRawRwLock::at(core::panic::Location::caller()),
                value,
            ),
        }
    }

    /// A new unlocked reader-writer lock holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        RwLock {
            inner: loom::sync::RwLock::new(value),
        }
    }

    /// Takes the lock shared, waiting while a writer holds it.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        #[cfg(not(loom))]
        let g = self.inner.read();
        #[cfg(loom)]
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        count::acquired();
        RwLockReadGuard(g)
    }

    /// Takes the lock exclusive, waiting while anyone holds it.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        #[cfg(not(loom))]
        let g = self.inner.write();
        #[cfg(loom)]
        let g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        count::acquired();
        RwLockWriteGuard(g)
    }

    /// Takes the lock shared if no writer holds it now (never waits).
    #[inline]
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        #[cfg(not(loom))]
        let g = self.inner.try_read()?;
        #[cfg(loom)]
        let g = self.inner.try_read().ok()?;
        count::acquired();
        Some(RwLockReadGuard(g))
    }

    /// Takes the lock exclusive if nobody holds it now (never waits).
    #[inline]
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        #[cfg(not(loom))]
        let g = self.inner.try_write()?;
        #[cfg(loom)]
        let g = self.inner.try_write().ok()?;
        count::acquired();
        Some(RwLockWriteGuard(g))
    }

    /// The data, through exclusive access to the lock (no locking needed).
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

    /// The data, consuming the lock.
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

impl<T: Default> Default for RwLock<T> {
    // Under host-lock the lock's site (its lockdep class) is the caller's, not this file.
    #[cfg_attr(all(not(loom), feature = "host-lock"), track_caller)]
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> core::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RwLock").finish_non_exhaustive()
    }
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(feature = "lock-count")]
impl<T> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        count::released();
    }
}

#[cfg(feature = "lock-count")]
impl<T> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        count::released();
    }
}
