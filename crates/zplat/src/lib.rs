//! `zplat`: the platform layer under every zcache-rs crate.
//!
//! Today it holds what stable Rust's `alloc` lacks for code whose allocation failures
//! must be errors, never aborts (a kernel, a hypervisor):
//!
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

pub use arc::TryArc;
pub use boxed::try_box;
