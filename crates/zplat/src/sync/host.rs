//! The `host-lock` back end: locks whose operations the host implements.
//!
//! A host with a lock of its own (Rust-for-Linux's `spinlock_t` with lockdep, a
//! hypervisor's ticket lock) gives it the `lock_api` traits and names it once, in its
//! own crate, with [`host_locks!`](crate::host_locks):
//!
//! ```ignore
//! zplat::host_locks!(mutex: MyRawSpinLock, rwlock: MyRawRwLock);
//! ```
//!
//! The macro defines the nine `extern "Rust"` functions this module calls. Each lock
//! of every zcache-rs crate then holds a [`HostLockState`]: a readiness byte, the
//! lock's construction site, and [`HOST_LOCK_BYTES`] of storage in which the host's
//! lock is built at first use by [`HostLock::build`]. `build` is told where the
//! zcache-rs lock was made: a kernel lock needs a run-time init with a lockdep class
//! key, which a `const` cannot do, and the construction site is one `'static` address
//! per kind of lock.
//!
//! Why a link-time hook and not a type parameter: a generic lock would be a generic
//! parameter on every type of every crate (`Zcache`, `Tmem`, `ZsPool`, ...) and could
//! not cross the C ABI; a cargo feature and a hook cost nothing in the default build,
//! and one readiness load per acquisition in this one.
//!
//! A program built with the `host-lock` feature and no `host_locks!` does not link
//! (undefined `__zplat_host_mutex_lock` ...): a choice forgotten is a build error, not
//! a silent spin lock.

use core::cell::UnsafeCell;
use core::mem::{MaybeUninit, align_of, size_of};
use core::panic::Location;
use core::sync::atomic::{AtomicU8, Ordering};

/// How the host builds one of its locks in zplat's storage, at the lock's first use.
///
/// `site` is where the zcache-rs lock it serves was made (`Mutex::new`'s caller,
/// through `#[track_caller]`): one `'static` address per kind of lock (a tmem bucket, a
/// zsmalloc class, a zbud shard...), which is what a lockdep class key must be. A
/// Rust-for-Linux host maps it to a static `lock_class_key` for `__spin_lock_init`; a
/// host without lock classes ignores it.
pub trait HostLock: Send + Sync + Sized {
    /// The host's lock, unlocked, for a zcache-rs lock made at `site`.
    fn build(site: &'static Location<'static>) -> Self;
}

/// The most bytes a host's raw lock may occupy (its alignment must be at most 8).
/// Room for Linux's `spinlock_t` or `rwlock_t` with lockdep and lock statistics on
/// 64-bit (about 80 bytes by the 6.18 struct layouts).
pub const HOST_LOCK_BYTES: usize = 96;

/// Fresh: the host's lock has not been built yet.
const FRESH: u8 = 0;
/// One thread is building the host's lock now.
const BUILDING: u8 = 1;
/// The host's lock is built.
const READY: u8 = 2;

/// The storage of one host lock: a readiness byte, the lock's construction site, then
/// room for the host's raw lock.
#[repr(C, align(8))]
pub struct HostLockState {
    state: AtomicU8,
    site: &'static Location<'static>,
    body: UnsafeCell<MaybeUninit<[u64; HOST_LOCK_BYTES / 8]>>,
}

// SAFETY: the body is only reached as a `&L` of the host's lock type `L`, which is
// `Sync` (`get_or_init`'s bound), after it was built once under the readiness protocol;
// the readiness byte is an atomic.
unsafe impl Sync for HostLockState {}
// SAFETY: moving the storage moves the host's lock, which is `Send` (`get_or_init`'s
// bound) and, being a Rust value, movable; an unbuilt body is plain bytes.
unsafe impl Send for HostLockState {}

impl HostLockState {
    /// A fresh state for a lock made at `site`: the host's lock is built at its first
    /// use.
    pub const fn new(site: &'static Location<'static>) -> Self {
        HostLockState {
            state: AtomicU8::new(FRESH),
            site,
            body: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Where the zcache-rs lock this state serves was made.
    pub fn site(&self) -> &'static Location<'static> {
        self.site
    }

    /// The host's lock of type `L` in this storage, built by [`HostLock::build`] for the
    /// first caller (others wait until it is built).
    ///
    /// # Safety
    ///
    /// Every call on one state names the same `L` (what [`host_locks!`](crate::host_locks)
    /// guarantees: mutex states reach only the mutex hooks, reader-writer states only
    /// the reader-writer hooks). `L` fits (`size_of::<L>() <= HOST_LOCK_BYTES`,
    /// `align_of::<L>() <= 8`; checked here too) and needs no drop: it is never dropped.
    #[inline]
    pub unsafe fn get_or_init<L: HostLock>(&self) -> &L {
        const { assert!(size_of::<L>() <= HOST_LOCK_BYTES && align_of::<L>() <= 8) };
        // Acquire: pairs with the Release below, so the built lock is visible.
        if self.state.load(Ordering::Acquire) != READY {
            self.build::<L>();
        }
        // SAFETY: READY means the body holds an `L` (built once, below, with the same
        // `L` by the caller's contract), and it is never written again: shared access.
        unsafe { &*self.body.get().cast::<L>() }
    }

    #[cold]
    fn build<L: HostLock>(&self) {
        match self
            .state
            .compare_exchange(FRESH, BUILDING, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY: BUILDING is ours alone: nobody reads the body before READY,
                // and the size and alignment fit (`get_or_init`'s assertion).
                unsafe { self.body.get().cast::<L>().write(L::build(self.site)) };
                self.state.store(READY, Ordering::Release);
            }
            Err(_) => {
                while self.state.load(Ordering::Acquire) != READY {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

unsafe extern "Rust" {
    fn __zplat_host_mutex_lock(s: &HostLockState);
    fn __zplat_host_mutex_try_lock(s: &HostLockState) -> bool;
    fn __zplat_host_mutex_unlock(s: &HostLockState);
    fn __zplat_host_rwlock_read(s: &HostLockState);
    fn __zplat_host_rwlock_try_read(s: &HostLockState) -> bool;
    fn __zplat_host_rwlock_unlock_read(s: &HostLockState);
    fn __zplat_host_rwlock_write(s: &HostLockState);
    fn __zplat_host_rwlock_try_write(s: &HostLockState) -> bool;
    fn __zplat_host_rwlock_unlock_write(s: &HostLockState);
}

/// A raw mutex whose operations are the host's (the `host-lock` feature).
pub struct HostRawMutex(HostLockState);

impl HostRawMutex {
    /// A raw mutex for a lock made at `site`.
    pub const fn at(site: &'static Location<'static>) -> Self {
        HostRawMutex(HostLockState::new(site))
    }
}

/// A raw reader-writer lock whose operations are the host's (the `host-lock` feature).
pub struct HostRawRwLock(HostLockState);

impl HostRawRwLock {
    /// A raw reader-writer lock for a lock made at `site`.
    pub const fn at(site: &'static Location<'static>) -> Self {
        HostRawRwLock(HostLockState::new(site))
    }
}

// SAFETY: each operation is the host's lock's own (`host_locks!` forwards to the host
// type's `lock_api::RawMutex` impl, itself an `unsafe impl` promising exclusion).
// Guards are not `Send`: a kernel spin lock is released on the CPU that took it.
unsafe impl lock_api::RawMutex for HostRawMutex {
    // A lock made through `lock_api` directly has this file as its site.
    const INIT: Self = HostRawMutex::at(Location::caller());
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        // SAFETY: the hook only builds and takes the host's mutex in this state.
        unsafe { __zplat_host_mutex_lock(&self.0) }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        // SAFETY: as in `lock`.
        unsafe { __zplat_host_mutex_try_lock(&self.0) }
    }

    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: our caller holds the lock in this context (`RawMutex::unlock`'s
        // contract), which is the host's `unlock` contract too.
        unsafe { __zplat_host_mutex_unlock(&self.0) }
    }
}

// SAFETY: as for `HostRawMutex`, with the host type's `lock_api::RawRwLock` impl.
unsafe impl lock_api::RawRwLock for HostRawRwLock {
    const INIT: Self = HostRawRwLock::at(Location::caller());
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock_shared(&self) {
        // SAFETY: the hook only builds and takes the host's rwlock in this state.
        unsafe { __zplat_host_rwlock_read(&self.0) }
    }

    #[inline]
    fn try_lock_shared(&self) -> bool {
        // SAFETY: as in `lock_shared`.
        unsafe { __zplat_host_rwlock_try_read(&self.0) }
    }

    #[inline]
    unsafe fn unlock_shared(&self) {
        // SAFETY: our caller holds a shared lock (the trait's contract).
        unsafe { __zplat_host_rwlock_unlock_read(&self.0) }
    }

    #[inline]
    fn lock_exclusive(&self) {
        // SAFETY: as in `lock_shared`.
        unsafe { __zplat_host_rwlock_write(&self.0) }
    }

    #[inline]
    fn try_lock_exclusive(&self) -> bool {
        // SAFETY: as in `lock_shared`.
        unsafe { __zplat_host_rwlock_try_write(&self.0) }
    }

    #[inline]
    unsafe fn unlock_exclusive(&self) {
        // SAFETY: our caller holds the exclusive lock (the trait's contract).
        unsafe { __zplat_host_rwlock_unlock_write(&self.0) }
    }
}

/// Names the host's lock types for a `host-lock` build: defines the hooks the
/// [`HostRawMutex`](crate::sync::HostRawMutex) and
/// [`HostRawRwLock`](crate::sync::HostRawRwLock) call. Use it once, in the final
/// program or module.
///
/// `mutex` implements `lock_api::RawMutex`, `rwlock` implements `lock_api::RawRwLock`,
/// and both implement [`HostLock`](crate::sync::HostLock) (how one is built); each fits in [`HOST_LOCK_BYTES`](crate::sync::HOST_LOCK_BYTES) with an alignment of
/// at most 8, and needs no drop (checked at compile time).
#[macro_export]
macro_rules! host_locks {
    (mutex: $m:ty, rwlock: $rw:ty $(,)?) => {
        const _: () = {
            assert!(
                !::core::mem::needs_drop::<$m>() && !::core::mem::needs_drop::<$rw>(),
                "host lock types must not need drop: zplat never drops them"
            );
        };

        #[inline]
        fn __zplat_host_m(s: &$crate::sync::HostLockState) -> &$m {
            // SAFETY: mutex states reach only the mutex hooks below, all of which name
            // `$m`; `$m` needs no drop (asserted above), and fits (asserted inside).
            unsafe { s.get_or_init::<$m>() }
        }

        #[inline]
        fn __zplat_host_rw(s: &$crate::sync::HostLockState) -> &$rw {
            // SAFETY: as in `__zplat_host_m`, for the reader-writer hooks and `$rw`.
            unsafe { s.get_or_init::<$rw>() }
        }

        #[unsafe(no_mangle)]
        extern "Rust" fn __zplat_host_mutex_lock(s: &$crate::sync::HostLockState) {
            $crate::lock_api::RawMutex::lock(__zplat_host_m(s))
        }

        #[unsafe(no_mangle)]
        extern "Rust" fn __zplat_host_mutex_try_lock(s: &$crate::sync::HostLockState) -> bool {
            $crate::lock_api::RawMutex::try_lock(__zplat_host_m(s))
        }

        /// # Safety
        /// The caller holds the lock in this context.
        #[unsafe(no_mangle)]
        unsafe extern "Rust" fn __zplat_host_mutex_unlock(s: &$crate::sync::HostLockState) {
            // SAFETY: zplat's `HostRawMutex::unlock` calls this only for a held lock.
            unsafe { $crate::lock_api::RawMutex::unlock(__zplat_host_m(s)) }
        }

        #[unsafe(no_mangle)]
        extern "Rust" fn __zplat_host_rwlock_read(s: &$crate::sync::HostLockState) {
            $crate::lock_api::RawRwLock::lock_shared(__zplat_host_rw(s))
        }

        #[unsafe(no_mangle)]
        extern "Rust" fn __zplat_host_rwlock_try_read(s: &$crate::sync::HostLockState) -> bool {
            $crate::lock_api::RawRwLock::try_lock_shared(__zplat_host_rw(s))
        }

        /// # Safety
        /// The caller holds a shared lock in this context.
        #[unsafe(no_mangle)]
        unsafe extern "Rust" fn __zplat_host_rwlock_unlock_read(s: &$crate::sync::HostLockState) {
            // SAFETY: zplat calls this only for a held shared lock.
            unsafe { $crate::lock_api::RawRwLock::unlock_shared(__zplat_host_rw(s)) }
        }

        #[unsafe(no_mangle)]
        extern "Rust" fn __zplat_host_rwlock_write(s: &$crate::sync::HostLockState) {
            $crate::lock_api::RawRwLock::lock_exclusive(__zplat_host_rw(s))
        }

        #[unsafe(no_mangle)]
        extern "Rust" fn __zplat_host_rwlock_try_write(s: &$crate::sync::HostLockState) -> bool {
            $crate::lock_api::RawRwLock::try_lock_exclusive(__zplat_host_rw(s))
        }

        /// # Safety
        /// The caller holds the exclusive lock in this context.
        #[unsafe(no_mangle)]
        unsafe extern "Rust" fn __zplat_host_rwlock_unlock_write(s: &$crate::sync::HostLockState) {
            // SAFETY: zplat calls this only for the held exclusive lock.
            unsafe { $crate::lock_api::RawRwLock::unlock_exclusive(__zplat_host_rw(s)) }
        }
    };
}
