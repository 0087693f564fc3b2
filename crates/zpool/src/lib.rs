//! `zpool`: where page frames come from, and the common face of the compressed-page
//! allocators (`zbud`, `zsmalloc`).
//!
//! * [`PageSource`] hands out and takes back 4 KiB page frames. Allocation may fail and
//!   never blocks. A kernel implements it with a non-sleeping page allocator, a hypervisor
//!   with its free-page pool, user space with the heap ([`HeapPageSource`]).
//! * [`Frame`] is an owned page frame. All `unsafe` frame-memory access of the workspace's
//!   allocators lives in this crate: allocator crates built on it can
//!   `#![forbid(unsafe_code)]`.
//! * [`ZPool`] is the allocator trait (Linux's zpool API is the reference): allocate, free,
//!   read, write, total frames, optional LRU eviction, optional compaction. Handles are
//!   typed ([`Handle`]) and validated: a stale, double-freed or forged handle is an
//!   [`ZPoolError::InvalidHandle`], never corruption, a panic or undefined behaviour.
#![no_std]

extern crate alloc;

mod frame;
mod pool;

pub use frame::{AllocError, Frame, HeapPageSource, PAGE_SIZE, Page, PageSource};
pub use pool::{EvictOutcome, Handle, PoolStats, ZPool, ZPoolError};
