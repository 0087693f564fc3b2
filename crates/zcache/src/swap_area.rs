//! A swap area by value: the frontswap hot path without the registry or the swap type's
//! slot lock.

use core::ops::Deref;

use tmem_core::{LoadMode, PoolHandle};
use zpool::Page;

use crate::ZDesc;
use crate::frontswap::swap_key;
use crate::zcache::{Zcache, ZcacheError};

/// One initialised swap type of a [`Zcache`], held by value: `swapon` returns it, and
/// every store, load and invalidation through it goes straight to the swap type's pool
/// (a counted pointer taken once), touching neither tmem's registry nor the swap type's
/// slot lock that the key-based [`crate::Frontswap`] calls read.
///
/// `Z` is how the area reaches its cache: `&Zcache`, `Arc<Zcache>`, or any other
/// pointer to one, so a VMM can keep an area next to the `Arc` it shares.
///
/// The area stays initialised when the value is dropped (as a kernel's swap type does
/// without a value): [`SwapArea::swapoff`] (or [`crate::Frontswap::invalidate_area`])
/// ends it. Once it has ended, by either, operations through any value of it fail with
/// [`ZcacheError::PoolDestroyed`] and store nothing. Several values of one swap type
/// (from [`SwapArea::open`]) share its pages.
pub struct SwapArea<Z: Deref<Target = Zcache>> {
    z: Z,
    swap_type: u32,
    pool: PoolHandle<ZDesc>,
}

impl<Z: Deref<Target = Zcache>> SwapArea<Z> {
    /// swapon: prepares `swap_type` (empty; an area already on is emptied, as
    /// [`crate::Frontswap::init`] does) and returns it.
    pub fn swapon(z: Z, swap_type: u32) -> Result<SwapArea<Z>, ZcacheError> {
        z.frontswap().init(swap_type)?;
        Self::open(z, swap_type)
    }

    /// The area of a swap type that is on (pages kept), or
    /// [`ZcacheError::UnknownSwapType`].
    pub fn open(z: Z, swap_type: u32) -> Result<SwapArea<Z>, ZcacheError> {
        let pool = z.frontswap().pool(swap_type)?;
        Ok(SwapArea { z, swap_type, pool })
    }

    /// The swap type.
    pub fn swap_type(&self) -> u32 {
        self.swap_type
    }

    /// The cache.
    pub fn zcache(&self) -> &Zcache {
        &self.z
    }

    /// Stores a page. `Ok` means it is loadable until invalidated (or written back
    /// through the host's [`crate::Writeback`]); an error means the caller must write
    /// it to the swap device, and any older copy of the slot is gone.
    pub fn store(&self, offset: u64, page: &Page) -> Result<(), ZcacheError> {
        let (oid, index) = swap_key(self.swap_type, offset);
        self.z.store_page(&self.pool, oid, index, page).map(|_| ())
    }

    /// Loads a page: `Ok(true)` filled, `Ok(false)` not here (read the swap device).
    /// Exclusive or not per [`crate::Config::frontswap_exclusive_loads`].
    pub fn load(&self, offset: u64, page: &mut Page) -> Result<bool, ZcacheError> {
        let (oid, index) = swap_key(self.swap_type, offset);
        let mode = if self.z.config.frontswap_exclusive_loads {
            LoadMode::Exclusive
        } else {
            LoadMode::Keep
        };
        self.z.load_page(&self.pool, oid, index, page, mode)
    }

    /// Drops one slot's page; `Ok(true)` if there was one.
    pub fn invalidate_page(&self, offset: u64) -> Result<bool, ZcacheError> {
        let (oid, index) = swap_key(self.swap_type, offset);
        Ok(self.z.tmem.invalidate_page_in(&self.pool, oid, index)?)
    }

    /// swapoff: drops every page and ends the area (every value of it); returns the
    /// pages dropped. [`ZcacheError::UnknownSwapType`] if it had already ended.
    pub fn swapoff(self) -> Result<u64, ZcacheError> {
        self.z
            .frontswap()
            .end_area(self.swap_type, Some(&self.pool))
    }
}
