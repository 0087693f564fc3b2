//! `tmem-core`: transcendent memory's core, in `no_std` Rust.
//!
//! A client (a file system's cleancache, a swap device's frontswap, a guest) hands tmem
//! pages under keys `(pool, oid, index)`; tmem keeps them through a backend ([`PamOps`],
//! page-accessible memory) that may compress, copy or drop them, and answers loads with
//! tmem's coherency rules (see `docs/semantics.md`):
//!
//! * after a successful store, a load of the key returns those exact bytes (persistent
//!   pools) or those bytes or a miss (ephemeral pools, whose backend may drop pages);
//!   never other bytes;
//! * a duplicate store replaces the old copy; if it fails, the old copy is gone too;
//! * once a load misses, loads keep missing until the next store;
//! * loads from private ephemeral pools are exclusive by default (the page leaves the
//!   pool); persistent and shared pools keep the page unless asked otherwise.
//!
//! Structure, as in the kernel's tmem: each pool has [`BUCKETS`] hash buckets, each a
//! spin lock over a map from [`Oid`] to an object; each object holds a radix tree of
//! fanout 64 over 64-bit indices that grows and shrinks in height. Pool and client ids
//! are allocated dynamically with no cap. There is no global registration: each
//! [`Tmem`] owns its backend.
//!
//! ```
//! use tmem_core::{LoadMode, Oid, PoolKind, Tmem};
//! use tmem_core::testing::{SeedPam, seed_page};
//!
//! let tmem = Tmem::new(SeedPam::new());
//! let client = tmem.new_client().unwrap();
//! let pool = tmem.new_pool(client, PoolKind::Persistent).unwrap();
//! let mut ctx = Default::default();
//! let page = seed_page(42);
//! tmem.store(&mut ctx, pool, Oid::new(7, 0, 0), u64::MAX, &page).unwrap();
//! let mut out = [0u8; tmem_core::PAGE_SIZE];
//! assert!(tmem.load(&mut ctx, pool, Oid::new(7, 0, 0), u64::MAX, &mut out, LoadMode::Default).unwrap());
//! assert_eq!(out, page);
//! tmem.destroy_pool(client, pool).unwrap();
//! assert_eq!(tmem.pam().live(), 0);
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod error;
mod key;
mod pam;
mod pool;
use zplat::sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tmem;
mod tree;

pub use error::TmemError;
pub use key::{ClientId, Index, Key, Oid, PoolId, Uuid};
pub use pam::{LoadStep, PAGE_SIZE, Page, PamOps};
pub use pool::{BUCKETS, LoadMode, PoolCounts, PoolInfo, PoolKind, StoreOutcome};
pub use tmem::{PoolHandle, Tmem, TmemResult};

/// tmem's locks (registry, buckets) held right now by any thread, counted only with the
/// `lock-count` feature (tests: a backend or host callback can check that no tmem lock
/// is held around it); always 0 without it.
#[doc(hidden)]
pub fn held_locks() -> usize {
    zplat::sync::held_locks()
}
