//! `zplat`: the platform layer under every zcache-rs crate.
//!
//! * [`sync`]: the one lock layer. Locks are `lock_api` raw locks, chosen once per
//!   build by a feature: spin locks by default, a blocking lock (`std-lock`) for
//!   user-space VMMs, or the host's own (`host-lock` and [`host_locks!`]) for a kernel
//!   with lockdep; loom's under `--cfg loom`. Atomics come from here too.
//! * [`PAGE_SIZE`]: the page size of the build, 4 KiB by default, 16 KiB or 64 KiB with
//!   the features `page-16k` and `page-64k` (module [`page`]).
//! * [`try_box`]: `Box::new` that hands the value back when the heap is exhausted
//!   (`Box::try_new` is unstable).
//! * [`TryArc`]: an atomically reference-counted pointer whose constructor fails
//!   instead of aborting (`Arc::try_new` is unstable). It has what the workspace uses of
//!   `Arc` (clone, deref, `get_mut`, `try_unwrap`, `ptr_eq`) and no weak references.
//!
//! Under `--cfg loom` the reference count is loom's atomic, so loom models see its
//! orderings.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod arc;
mod boxed;
pub mod page;
pub mod sync;

pub use arc::TryArc;
pub use boxed::try_box;
/// The lock traits a host implements for [`host_locks!`] (re-exported so the macro and
/// the host name the same version).
pub use lock_api;
pub use page::{PAGE_SCALE, PAGE_SHIFT, PAGE_SIZE, Page};
