//! Keyed store and load for hosts that manage their own tmem clients and pools.
//!
//! The front ends ([`crate::Cleancache`], [`crate::Frontswap`]) cover the kernel's two
//! users. A host that speaks tmem itself (a hypervisor serving guests with Xen-style
//! pool operations; a C glue that wants to tell its caller why a cleancache put was not
//! kept) creates clients and pools through [`Zcache::tmem`] (`new_client`, `new_pool`,
//! `join_shared_pool`, `destroy_pool`, `destroy_client`, `invalidate_page`,
//! `invalidate_object`) and stores and loads through these two methods, which apply
//! zcache's policy exactly as the front ends do: compression outside every lock, the
//! frame limit with its hysteresis, bounded reclaim (eat its own tail, steal ephemeral
//! frames, writeback), and the statistics.

use tmem_core::{Index, LoadMode, Oid, PoolId, StoreOutcome};
use zpool::Page;

use crate::zcache::{Zcache, ZcacheError};

impl Zcache {
    /// Stores a copy of `page` at (`pool`, `oid`, `index`) in any pool of this zcache,
    /// with zcache's policy. A duplicate store replaces the old copy
    /// ([`StoreOutcome::Replaced`]); a failed store leaves no copy of the key (no stale
    /// data). May be called where sleeping is forbidden.
    ///
    /// Errors: [`ZcacheError::UnknownPool`] for a pool that does not exist,
    /// [`ZcacheError::Backend`] when the page was refused (poor compression, no frame
    /// after bounded reclaim), [`ZcacheError::NoMemory`] for metadata.
    pub fn store(
        &self,
        pool: PoolId,
        oid: Oid,
        index: Index,
        page: &Page,
    ) -> Result<StoreOutcome, ZcacheError> {
        let h = self.tmem.pool(pool)?;
        self.store_page(&h, oid, index, page)
    }

    /// Loads (`pool`, `oid`, `index`) into `page`: `Ok(true)` filled, `Ok(false)` miss
    /// (`page` untouched). `mode` says whether the page stays ([`LoadMode::Default`]:
    /// exclusive for private ephemeral pools, kept otherwise). Hits, misses and corrupt
    /// pages are counted as the front ends count them; a corrupt page is
    /// `Err(ZcacheError::Backend(ZError::Corrupt))`.
    ///
    /// [`ZError::Corrupt`]: crate::ZError::Corrupt
    pub fn load(
        &self,
        pool: PoolId,
        oid: Oid,
        index: Index,
        page: &mut Page,
        mode: LoadMode,
    ) -> Result<bool, ZcacheError> {
        let h = self.tmem.pool(pool)?;
        self.load_page(&h, oid, index, page, mode)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::sync::Arc;

    use tmem_core::{LoadMode, Oid, PoolId, PoolKind, StoreOutcome, Uuid};
    use zpool::HeapPageSource;

    use crate::testing::test_page;
    use crate::{Config, Zcache, ZcacheError};

    #[test]
    fn keyed_store_and_load_in_host_made_pools() {
        let z = Zcache::new(Config::default(), Arc::new(HeapPageSource)).unwrap();
        let t = z.tmem();
        let guest = t.new_client().unwrap();
        let pers = t.new_pool(guest, PoolKind::Persistent).unwrap();
        let oid = Oid::new(7, 8, 9);
        for i in 0..64u32 {
            let p = test_page(i * 8 + 3);
            assert_eq!(
                z.store(pers, oid, u64::from(i) << 40, &p).unwrap(),
                StoreOutcome::New
            );
        }
        // Duplicate store replaces.
        let newer = test_page(1001 * 8 + 4);
        assert_eq!(
            z.store(pers, oid, 0, &newer).unwrap(),
            StoreOutcome::Replaced
        );
        let mut out = [0u8; 4096];
        assert!(z.load(pers, oid, 0, &mut out, LoadMode::Default).unwrap());
        assert_eq!(out, newer);
        for i in 1..64u32 {
            assert!(
                z.load(pers, oid, u64::from(i) << 40, &mut out, LoadMode::Default)
                    .unwrap()
            );
            assert_eq!(out, test_page(i * 8 + 3));
        }
        // Persistent pools keep pages on a default load; an exclusive load removes.
        assert!(z.load(pers, oid, 0, &mut out, LoadMode::Exclusive).unwrap());
        assert!(!z.load(pers, oid, 0, &mut out, LoadMode::Default).unwrap());
        let s = z.stats();
        assert_eq!(s.counters.duplicate_entry, 1);
        assert_eq!(s.counters.load_hits, 65);
        assert_eq!(s.counters.load_misses, 1);
        assert_eq!(z.stored_pages(), 63);

        // Unknown pools are errors, not misses.
        assert_eq!(
            z.store(PoolId(9999), oid, 0, &newer),
            Err(ZcacheError::UnknownPool)
        );
        assert_eq!(
            z.load(PoolId(9999), oid, 0, &mut out, LoadMode::Default),
            Err(ZcacheError::UnknownPool)
        );
        t.destroy_client(guest).unwrap();
        assert_eq!(z.stored_pages(), 0);
        assert_eq!(z.stats().pool_frames, 0);
    }

    #[test]
    fn shared_ephemeral_pool_serves_every_member() {
        let z = Zcache::new(Config::default(), Arc::new(HeapPageSource)).unwrap();
        let t = z.tmem();
        let (a, b) = (t.new_client().unwrap(), t.new_client().unwrap());
        let uuid = Uuid([0x1234, 0x5678]);
        let pa = t.join_shared_pool(a, uuid, PoolKind::Ephemeral).unwrap();
        let pb = t.join_shared_pool(b, uuid, PoolKind::Ephemeral).unwrap();
        assert_eq!(pa, pb);
        let p = test_page(5 * 8 + 5);
        z.store(pa, Oid::new(1, 0, 0), 3, &p).unwrap();
        let mut out = [0u8; 4096];
        // Shared pools keep the page on a default load, so both members see it.
        assert!(
            z.load(pb, Oid::new(1, 0, 0), 3, &mut out, LoadMode::Default)
                .unwrap()
        );
        assert!(
            z.load(pa, Oid::new(1, 0, 0), 3, &mut out, LoadMode::Default)
                .unwrap()
        );
        assert_eq!(out, p);
        // One member leaving keeps the pool for the other.
        t.destroy_client(a).unwrap();
        assert!(
            z.load(pb, Oid::new(1, 0, 0), 3, &mut out, LoadMode::Default)
                .unwrap()
        );
        t.destroy_client(b).unwrap();
        assert_eq!(
            z.load(pb, Oid::new(1, 0, 0), 3, &mut out, LoadMode::Default),
            Err(ZcacheError::UnknownPool)
        );
    }
}
