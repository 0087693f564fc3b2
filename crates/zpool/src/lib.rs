//! `zpool`: where page frames come from, and the common face of the compressed-page
//! allocators (`zbud`, `zsmalloc`).
//!
//! * [`PageSource`] hands out and takes back page frames of [`PAGE_SIZE`] bytes (the
//!   build's page size: 4 KiB, or 16 / 64 KiB with `page-16k` / `page-64k`). Allocation
//!   may fail and never blocks. A kernel implements it with a non-sleeping page
//!   allocator, a hypervisor with its free-page pool, user space with the heap:
//!   [`BlockPageSource`] (frames cut from blocks of 64 frames: one frame of memory per
//!   frame) or [`HeapPageSource`] (one allocation per frame: simplest, but glibc spends
//!   about two pages per page-aligned frame),
//!   behind [`RecyclingSource`] when allocation per frame is costly.
//! * [`Frame`] is an owned page frame; [`FrameTable`] owns rows of them in 4 bytes a
//!   frame (zsmalloc's zspages, a size class in one array); [`FrameChain`] is a stack of
//!   them linked through their own first word (frames on their way back to the source,
//!   held without allocating). All `unsafe` frame-memory access of the workspace's
//!   allocators lives in this crate: allocator crates built on it can
//!   `#![forbid(unsafe_code)]`.
//! * [`ZPool`] is the allocator trait (Linux's zpool API is the reference): allocate, free,
//!   read, write, map, total frames, compaction (whole, or bounded steps). There is no
//!   eviction: the cache above owns the LRU. Handles are
//!   typed ([`Handle`]) and validated: a handle is never undefined behaviour or a panic,
//!   and one whose bits equal no live object's handle is [`ZPoolError::InvalidHandle`].
//!   A stale or double-freed handle is refused unless its entry has since been freed a
//!   multiple of the allocator's per-entry generation period times and is live again
//!   (zsmalloc: 2^17 - 1, zbud: 2^22 at 4 KiB pages); it then names that entry's new object.
//! * `testing` (feature `testing`): page sources for tests (counting, poisoning,
//!   failing, corrupting), shared by every crate's tests and the fuzz targets; a kernel
//!   build does not carry them.
#![no_std]

extern crate alloc;

mod blocks;
mod frame;
mod frame_chain;
mod frame_table;
mod pool;
mod recycle;
use zplat::sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use blocks::{BLOCK_BYTES, BLOCK_FRAMES, BlockPageSource};
pub use frame::{AllocError, Frame, FrameTag, HeapPageSource, PAGE_SIZE, Page, PageSource};
pub use frame_chain::FrameChain;
pub use frame_table::{FRAME_ROW_MAX, FrameTable};
pub use pool::{CompactStep, Handle, ObjectIds, PoolStats, ZPool, ZPoolError};
pub use recycle::RecyclingSource;

/// Locks of this crate (the [`RecyclingSource`] cache, the test sources' state) held
/// right now by any thread, counted only with the `lock-count` feature (tests: a page
/// source can check that no lock is held around its callbacks); always 0 without it.
#[doc(hidden)]
pub fn held_locks() -> usize {
    zplat::sync::held_locks()
}
