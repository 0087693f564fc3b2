//! The one lock layer of zcache-rs: every crate's locks and atomics come from here.
//!
//! # What a host chooses
//!
//! The lock *interface* is the `lock_api` crate's [`RawMutex`](lock_api::RawMutex) and
//! [`RawRwLock`](lock_api::RawRwLock) traits. The *implementation* is picked once per
//! build, by a cargo feature of this crate (features are unified, so every crate of the
//! build uses the same locks):
//!
//! | feature | [`RawMutex`] and [`RawRwLock`] are | for |
//! |---|---|---|
//! | (none: the default) | `spin::Mutex<()>` and `spin::RwLock<()>`: spin, never sleep | kernels, hypervisors, interrupt-safe callers |
//! | `std-lock` | `parking_lot::RawMutex` and `parking_lot::RawRwLock`: spin briefly, then block | user-space VMMs and programs: a preempted holder does not keep other threads spinning |
//! | `host-lock` | [`HostRawMutex`] and [`HostRawRwLock`]: opaque storage whose operations the host implements (macro [`host_locks!`](crate::host_locks)) | Rust-for-Linux (`spinlock_t`, with lockdep), any host lock |
//!
//! `host-lock` wins over `std-lock` if both are on. A build with none of them costs
//! exactly what the `spin` crate's locks cost: [`Mutex`] is a `lock_api::Mutex` over
//! `spin::Mutex<()>`, and its guard is a `#[repr(transparent)]`-sized newtype with no
//! `Drop` of its own (the `lock-count` feature, for tests, adds one).
//!
//! Under `--cfg loom` every lock and atomic is loom's, whatever the features, so the
//! crates' loom models explore the interleavings (a spin loop never yields to loom's
//! scheduler and would hang a model).
//!
//! # Counted guards (tests)
//!
//! With the `lock-count` feature every guard counts itself in one process-global
//! counter while it lives, so a test's host callback (a page source, a writeback) can
//! check [`held_locks`]` == 0`: no zcache-rs lock is held across a call into the host.
//! [`Mutex::try_lock_token`] is the one uncounted acquisition: for try-only tokens
//! (zcache's compression contexts) that nobody ever waits on.

mod count;
#[cfg(all(not(loom), feature = "host-lock"))]
mod host;
mod mutex;
mod rwlock;

#[cfg(all(not(loom), feature = "host-lock"))]
pub use host::{HOST_LOCK_BYTES, HostLock, HostLockState, HostRawMutex, HostRawRwLock};
pub use mutex::{Mutex, MutexGuard, TokenGuard};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The raw mutex every [`Mutex`] of this build is made of (see the module docs).
#[cfg(all(not(loom), not(feature = "host-lock"), not(feature = "std-lock")))]
pub type RawMutex = spin::Mutex<()>;
/// The raw reader-writer lock every [`RwLock`] of this build is made of.
#[cfg(all(not(loom), not(feature = "host-lock"), not(feature = "std-lock")))]
pub type RawRwLock = spin::RwLock<()>;

/// The raw mutex every [`Mutex`] of this build is made of (see the module docs).
#[cfg(all(not(loom), not(feature = "host-lock"), feature = "std-lock"))]
pub type RawMutex = parking_lot::RawMutex;
/// The raw reader-writer lock every [`RwLock`] of this build is made of.
#[cfg(all(not(loom), not(feature = "host-lock"), feature = "std-lock"))]
pub type RawRwLock = parking_lot::RawRwLock;

/// The raw mutex every [`Mutex`] of this build is made of (see the module docs).
#[cfg(all(not(loom), feature = "host-lock"))]
pub type RawMutex = HostRawMutex;
/// The raw reader-writer lock every [`RwLock`] of this build is made of.
#[cfg(all(not(loom), feature = "host-lock"))]
pub type RawRwLock = HostRawRwLock;

/// The name of the lock implementation of this build, for reports: `"spin"`,
/// `"std-lock"`, `"host-lock"` or `"loom"`.
pub const LOCK_KIND: &str = if cfg!(loom) {
    "loom"
} else if cfg!(feature = "host-lock") {
    "host-lock"
} else if cfg!(feature = "std-lock") {
    "std-lock"
} else {
    "spin"
};

pub use count::held_locks;

#[cfg(not(loom))]
pub use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub use loom::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(test)]
mod tests;
