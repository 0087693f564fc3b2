//! The frontswap front end: swap pages keyed by (swap type, offset).
//!
//! Each swap type gets its own persistent tmem pool. A slot maps to
//! `oid = (offset >> 6, type, FRONTSWAP_TAG)`, `index = offset & 63`: 64 consecutive
//! slots share one object (one full leaf of the 64-way tree: 6 bytes of tree per page),
//! and different 64-slot runs hash to different buckets. The kernel hands out swap slots
//! in per-CPU clusters, so concurrent stores from different CPUs land in different
//! objects, hence different bucket locks. (zcache2 spread a device over 256 objects by
//! the low 8 bits of the offset, which puts consecutive slots in different buckets but
//! leaves each object's tree 1/256 full on a small device: ~8x the tree metadata.)
//! The mapping is reversible, so writeback finds the slot of a page from its key.

use tmem_core::{Key, Oid, PoolKind};
use zpool::Page;

use crate::swap_area::SwapArea;
use crate::zcache::{Zcache, ZcacheError};

/// Marks frontswap oids (word 2), so writeback recognises them.
pub const FRONTSWAP_TAG: u64 = 0x7377_6170; // "swap"

/// Bits of the offset that index within an object.
pub const OFFSET_BITS_PER_OBJECT: u32 = 6;

/// Largest swap type accepted (Linux has MAX_SWAPFILES = 32; we allow more).
pub const MAX_SWAP_TYPES: u32 = 1024;

/// The tmem (oid, index) of swap slot (`swap_type`, `offset`).
pub fn swap_key(swap_type: u32, offset: u64) -> (Oid, u64) {
    (
        Oid::new(
            offset >> OFFSET_BITS_PER_OBJECT,
            u64::from(swap_type),
            FRONTSWAP_TAG,
        ),
        offset & ((1 << OFFSET_BITS_PER_OBJECT) - 1),
    )
}

/// The swap slot of a frontswap key, or `None` for a key that is not one.
pub fn swap_key_of(key: &Key) -> Option<(u32, u64)> {
    let w = key.oid.0;
    if w[2] != FRONTSWAP_TAG
        || key.index >> OFFSET_BITS_PER_OBJECT != 0
        || w[0] >> (64 - OFFSET_BITS_PER_OBJECT) != 0
    {
        return None;
    }
    Some((
        u32::try_from(w[1]).ok()?,
        (w[0] << OFFSET_BITS_PER_OBJECT) | key.index,
    ))
}

/// The frontswap front end of a [`Zcache`] (the kernel's `frontswap_ops`).
pub struct Frontswap<'a> {
    pub(crate) z: &'a Zcache,
}

impl<'z> Frontswap<'z> {
    pub(crate) fn pool(
        &self,
        swap_type: u32,
    ) -> Result<tmem_core::PoolHandle<crate::ZDesc>, ZcacheError> {
        let slot = self
            .z
            .swap
            .get(swap_type as usize)
            .ok_or(ZcacheError::UnknownSwapType)?;
        let p = slot.read().clone();
        p.ok_or(ZcacheError::UnknownSwapType)
    }

    /// swapon: prepares `swap_type` (empty). Calling it again empties the area.
    pub fn init(&self, swap_type: u32) -> Result<(), ZcacheError> {
        if swap_type >= MAX_SWAP_TYPES {
            return Err(ZcacheError::InvalidConfig("swap type too large"));
        }
        if let Ok(p) = self.pool(swap_type) {
            self.z.tmem.invalidate_pool(p.info().id)?;
            return Ok(());
        }
        let id = self
            .z
            .tmem
            .new_pool(self.z.swap_client, PoolKind::Persistent)?;
        let handle = self.z.tmem.pool(id)?;
        let mut slot = self.z.swap[swap_type as usize].write();
        if slot.is_some() {
            // A concurrent init of the same type won: keep its pool, drop ours.
            drop(slot);
            self.z.tmem.destroy_pool(self.z.swap_client, id)?;
            return Ok(());
        }
        *slot = Some(handle);
        Ok(())
    }

    /// The swap type's area by value ([`SwapArea`]): operations through it skip the
    /// swap type's slot lock. [`ZcacheError::UnknownSwapType`] if it is not on.
    pub fn area(&self, swap_type: u32) -> Result<SwapArea<&'z Zcache>, ZcacheError> {
        SwapArea::open(self.z, swap_type)
    }

    /// Stores a page (key-based, for the C ABI: [`SwapArea::store`] without the slot
    /// lookup is the hot path). `Ok` means it is loadable until invalidated (or written
    /// back through the host's [`crate::Writeback`]); an error means the caller must
    /// write it to the swap device, and any older copy of the slot is gone.
    pub fn store(&self, swap_type: u32, offset: u64, page: &Page) -> Result<(), ZcacheError> {
        self.area(swap_type)?.store(offset, page)
    }

    /// Loads a page (key-based; see [`SwapArea::load`]): `Ok(true)` filled,
    /// `Ok(false)` not here (read the swap device). Exclusive or not per
    /// [`crate::Config::frontswap_exclusive_loads`].
    pub fn load(&self, swap_type: u32, offset: u64, page: &mut Page) -> Result<bool, ZcacheError> {
        self.area(swap_type)?.load(offset, page)
    }

    /// Drops one slot's page (key-based; see [`SwapArea::invalidate_page`]);
    /// `Ok(true)` if there was one.
    pub fn invalidate_page(&self, swap_type: u32, offset: u64) -> Result<bool, ZcacheError> {
        self.area(swap_type)?.invalidate_page(offset)
    }

    /// swapoff: drops every page of `swap_type` and refuses further stores until the
    /// next `init`. Returns the pages dropped.
    pub fn invalidate_area(&self, swap_type: u32) -> Result<u64, ZcacheError> {
        self.end_area(swap_type, None)
    }

    /// Ends `swap_type`'s area: only if its slot still holds `expect`'s pool when one
    /// is given (a [`SwapArea`] does not end a newer area of the same type).
    pub(crate) fn end_area(
        &self,
        swap_type: u32,
        expect: Option<&tmem_core::PoolHandle<crate::ZDesc>>,
    ) -> Result<u64, ZcacheError> {
        let slot = self
            .z
            .swap
            .get(swap_type as usize)
            .ok_or(ZcacheError::UnknownSwapType)?;
        let p = {
            let mut s = slot.write();
            match (&*s, expect) {
                (Some(cur), Some(e)) if cur.info().id != e.info().id => {
                    return Err(ZcacheError::UnknownSwapType);
                }
                _ => {}
            }
            s.take().ok_or(ZcacheError::UnknownSwapType)?
        };
        let id = p.info().id;
        let n = self.z.tmem.invalidate_pool(id)?;
        self.z.tmem.destroy_pool(self.z.swap_client, id)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmem_core::PoolId;

    #[test]
    fn key_mapping_round_trips() {
        for &(t, off) in &[
            (0u32, 0u64),
            (3, 63),
            (3, 64),
            (31, u64::MAX),
            (31, 1 << 40),
        ] {
            let (oid, index) = swap_key(t, off);
            assert!(index < 64);
            let key = Key {
                pool: PoolId(9),
                oid,
                index,
            };
            assert_eq!(swap_key_of(&key), Some((t, off)));
        }
        let key = Key {
            pool: PoolId(9),
            oid: Oid::new(1, 2, 3),
            index: 0,
        };
        assert_eq!(swap_key_of(&key), None);
    }
}
