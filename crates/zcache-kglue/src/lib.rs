//! `zcache-kglue`: zcache behind a C ABI shaped like the kernel's `cleancache_ops` and
//! `frontswap_ops`, for a C kernel (or a Rust-for-Linux module, or any C host) to fill
//! those ops tables with thin wrappers.
//!
//! The header is `include/zcache.h` at the repository root, generated from this crate
//! by cbindgen (`scripts/check-extra.sh` verifies it is current). The integration guide
//! is `docs/kernel-integration.md`.
//!
//! # Shape of the ABI
//!
//! * [`zcache_setup`] takes a [`ZcacheConfig`] (the host's page-frame callbacks, an
//!   optional writeback callback, limits) and returns an instance handle
//!   ([`ZcacheHandle`], a `uint64_t`); every other call takes the handle first.
//!   [`zcache_teardown`] ends it.
//! * cleancache: [`zcache_cleancache_init_fs`], [`zcache_cleancache_init_shared_fs`],
//!   [`zcache_cleancache_get_page`], [`zcache_cleancache_put_page`],
//!   [`zcache_cleancache_invalidate_page`], [`zcache_cleancache_invalidate_inode`],
//!   [`zcache_cleancache_invalidate_fs`].
//! * frontswap: [`zcache_frontswap_init`], [`zcache_frontswap_store`],
//!   [`zcache_frontswap_load`], [`zcache_frontswap_invalidate_page`],
//!   [`zcache_frontswap_invalidate_area`].
//! * [`zcache_get_stats`], [`zcache_shrink`], [`zcache_compact`].
//!
//! Every function returns `0` (or a non-negative count or id) on success and a negative
//! errno-style value ([`ZCACHE_EINVAL`] and friends, equal to Linux's numbers) on
//! failure. Null pointers, unknown pools, a wrong page size, a handle that was never
//! handed out or whose instance was torn down: each is an error return, never undefined
//! behaviour and never a panic.
//!
//! # Handles
//!
//! A handle is `generation << 8 | (slot + 1)` into a fixed table of
//! [`ZCACHE_MAX_INSTANCES`] slots. Each setup bumps its slot's 56-bit generation (it
//! wraps to 1 after 2^56 - 1 setups of one slot), so a stale handle (after teardown,
//! even after the slot was reused) or a forged one is detected by comparing numbers,
//! without touching freed memory. Each call clones the instance's reference count under
//! the slot's read lock (held for a few instructions); teardown removes the instance
//! from the slot and never waits: calls already in flight finish on their own
//! reference, the last one to return only drops it, and the instance is freed by
//! `zcache_teardown` itself when no call was in flight, else by a later `zcache_reap`.
//!
//! # `no_std`
//!
//! The crate is `#![no_std]` and needs `alloc`: the host provides the global allocator
//! (Rust-for-Linux's `kernel` crate does; the `zcache-kglue-staticlib` crate can bring
//! one built on two host functions). Stores allocate metadata on the store path with
//! fallible allocation, so that allocator must not sleep (`GFP_NOWAIT`/`GFP_ATOMIC` in a
//! kernel). Page frames come from the host's own callbacks, not from the global
//! allocator.
#![no_std]

extern crate alloc;

mod api;
mod errno;
mod host;
mod stats;
mod table;

pub use api::*;
pub use errno::*;
pub use host::{
    ZCACHE_ALLOC_DEFAULT, ZCACHE_ALLOC_ZBUD, ZCACHE_ALLOC_ZSMALLOC, ZCACHE_COMP_DEFAULT,
    ZCACHE_COMP_DEFLATE, ZCACHE_COMP_LZ4, ZCACHE_COMP_LZO, ZCACHE_FLAG_FRONTSWAP_EXCLUSIVE_LOADS,
    ZCACHE_PAGE_SIZE, ZcacheAllocFrameFn, ZcacheConfig, ZcacheFreeFrameFn, ZcacheReleaseFn,
    ZcacheWritebackClaimFn, ZcacheWritebackReleaseFn, ZcacheWritebackWriteFn,
};
pub use stats::{ZcacheShrinkResult, ZcacheStats};
pub use table::{ZCACHE_MAX_INSTANCES, ZCACHE_TEARDOWN_DEFERRED, ZcacheHandle};
