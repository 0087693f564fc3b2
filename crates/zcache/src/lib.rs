//! `zcache`: transcendent memory's compressed backend, with cleancache and frontswap
//! front ends.
//!
//! A [`Zcache`] wires `tmem-core` (keys, pools, trees, buckets, coherency) to the
//! compressed-page allocators (`zbud` for ephemeral pages, `zsmalloc` for persistent
//! pages by default) and the compressors of `zcomp`, and adds the policy the kernel's
//! zcache and zswap had:
//!
//! * a hard limit on pool frames with accept hysteresis ([`Config::max_frames`],
//!   [`Config::accept_threshold_percent`]);
//! * rejection of poorly compressing pages (over 7/8 page, or over 5/8 while the running
//!   mean is too);
//! * zcache's own reclaim order of compressed pages, one CLOCK ring per pool kind (a
//!   byte per page beside the allocator's handle table) with a second-chance
//!   referenced bit; the allocators only allocate. A store that finds no frame evicts a
//!   few ephemeral pages ("eat its own tail"; persistent stores steal them), at most
//!   [`Config::max_reclaim_per_store`] and only when that can let it in; the rest is
//!   the host's worker's ([`Zcache::reclaim`]) and shrinker's
//!   ([`Zcache::shrinker_count`], [`Zcache::shrinker_scan`]);
//! * writeback of persistent pages to the host's swap device through a claim protocol
//!   that never writes a stale page ([`writeback`]); persistent pages are never simply
//!   dropped;
//! * same-filled pages stored as their word, with no allocation;
//! * statistics under zswap's and zcache's names, sharded so no counter is shared by
//!   every store.
//!
//! The front ends come by value: [`SwapArea`] (swapon returns it) and [`Mount`] hold
//! their pool's counted pointer, so their stores, loads and invalidations touch neither
//! tmem's registry nor the swap type's slot lock. The key-based [`Frontswap`] and
//! [`Cleancache`] calls are thin wrappers for the C ABI, whose ops carry only ids. A
//! host that speaks tmem itself (a hypervisor) uses the guarded pool operations on
//! [`Zcache`] (`new_client`, `new_pool`, `store`, `load`, ...), which refuse the front
//! ends' own clients.
//!
//! The page journey through the layers, the lock order, reclaim and the writeback
//! protocol are in `docs/architecture.md` and `docs/concurrency.md`.
//!
//! ```
//! use std::sync::Arc;
//! use zcache::{Config, Oid, SwapArea, Zcache};
//!
//! let z = Arc::new(Zcache::new(Config::default(), zpool::HeapPageSource).unwrap());
//! let area = SwapArea::swapon(z.clone(), 0).unwrap();
//! let mut page = [0u8; zcache::PAGE_SIZE];
//! page[..11].copy_from_slice(b"hello, swap");
//! area.store(12345, &page).unwrap();
//! let mut back = [0u8; zcache::PAGE_SIZE];
//! assert!(area.load(12345, &mut back).unwrap());
//! assert_eq!(back, page);
//! // The key-based call (what the C ABI's frontswap_ops use) sees the same page.
//! assert!(z.frontswap().load(0, 12345, &mut back).unwrap());
//! area.swapoff().unwrap();
//!
//! let mount = z.cleancache().mount().unwrap();
//! mount.put_page(Oid::new(7, 0, 0), 0, &page);
//! assert!(mount.get_page(Oid::new(7, 0, 0), 0, &mut back));
//! mount.unmount().unwrap();
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod allocator;
mod cleancache;
mod config;
mod desc;
mod frontswap;
pub mod header;
mod host;
mod lru;
mod mount;
mod pam;
mod reclaim;
mod source;
mod stats;
mod swap_area;
use zplat::sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod writeback;
mod zcache;

pub use cleancache::{Cleancache, file_key_from_handle, file_key_from_inode};
#[cfg(feature = "std")]
pub use config::thread_hint;
pub use config::{AllocatorKind, Config, UnknownAllocator, stack_hint};
pub use desc::{DescKind, ZDesc};
pub use frontswap::{FRONTSWAP_TAG, Frontswap, MAX_SWAP_TYPES, swap_key, swap_key_of};
pub use mount::Mount;
pub use pam::{ZCtx, ZError, ZPam};
pub use reclaim::ReclaimOutcome;
pub use stats::Counters;
pub use swap_area::SwapArea;
pub use tmem_core::{LoadMode, PoolInfo, PoolKind, StoreOutcome};
pub use tmem_core::{Oid, PoolId};
pub use writeback::{SlotClaim, Writeback};
pub use zcache::{MetadataParts, Stats, Zcache, ZcacheError};
pub use zpool::{PAGE_SIZE, Page};

impl Zcache {
    /// The cleancache front end.
    pub fn cleancache(&self) -> Cleancache<'_> {
        Cleancache { z: self }
    }

    /// The frontswap front end.
    pub fn frontswap(&self) -> Frontswap<'_> {
        Frontswap { z: self }
    }
}

/// Locks held right now by any thread in zcache and every layer below it (tmem-core,
/// zpool, zbud, zsmalloc), counted only with the `lock-count` feature (tests: a host's
/// callbacks can check that none is held while they run); always 0 without it.
/// Compression contexts are not counted: they are try-only tokens nobody waits on.
#[doc(hidden)]
pub fn held_locks() -> usize {
    // One process-global count in zplat covers every crate's locks.
    zplat::sync::held_locks()
}
