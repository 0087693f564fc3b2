//! tmem's own operations for hosts that manage their own tmem clients and pools.
//!
//! The front ends ([`crate::Cleancache`] / [`crate::Mount`], [`crate::Frontswap`] /
//! [`crate::SwapArea`]) cover the kernel's two users. A host that speaks tmem itself (a
//! hypervisor serving guests with Xen-style pool operations; a C glue that wants to tell
//! its caller why a cleancache put was not kept) creates clients and pools, stores,
//! loads and invalidates through these methods, which apply zcache's policy exactly as
//! the front ends do: compression outside every lock, the frame limit with its
//! hysteresis, bounded reclaim, and the statistics.
//!
//! The pool operations take only clients the host made with [`Zcache::new_client`]; any
//! other id, the front ends' own clients (the swap client, one per mount) included, is
//! refused with [`ZcacheError::NotHostClient`], so a host cannot pull a pool out from
//! under zcache's own maps. (The `Tmem` inside is not exposed for that reason.)

use tmem_core::{ClientId, Index, LoadMode, Oid, PoolCounts, PoolId, PoolKind, StoreOutcome, Uuid};
use zpool::Page;

use crate::zcache::{Zcache, ZcacheError};

impl Zcache {
    /// `Ok` for a client the host made ([`Zcache::new_client`]) and has not destroyed.
    fn host_client(&self, client: ClientId) -> Result<(), ZcacheError> {
        if self.host_clients.read().contains(&client) {
            Ok(())
        } else {
            Err(ZcacheError::NotHostClient)
        }
    }

    /// A new tmem client of the host's (a guest).
    pub fn new_client(&self) -> Result<ClientId, ZcacheError> {
        let client = self.tmem.new_client()?;
        let mut set = self.host_clients.write();
        if set.try_reserve(1).is_err() {
            drop(set);
            let _ = self.tmem.destroy_client(client);
            return Err(ZcacheError::NoMemory);
        }
        set.insert(client);
        Ok(client)
    }

    /// Destroys a client of the host's: it leaves every pool it is in, and each pool
    /// left without members is destroyed (its pages freed).
    pub fn destroy_client(&self, client: ClientId) -> Result<(), ZcacheError> {
        if !self.host_clients.write().remove(&client) {
            return Err(ZcacheError::NotHostClient);
        }
        Ok(self.tmem.destroy_client(client)?)
    }

    /// A new private pool of `kind` owned by a client of the host's.
    pub fn new_pool(&self, client: ClientId, kind: PoolKind) -> Result<PoolId, ZcacheError> {
        self.host_client(client)?;
        Ok(self.tmem.new_pool(client, kind)?)
    }

    /// Joins (creating on first use) the shared pool named `uuid`.
    pub fn join_shared_pool(
        &self,
        client: ClientId,
        uuid: Uuid,
        kind: PoolKind,
    ) -> Result<PoolId, ZcacheError> {
        self.host_client(client)?;
        Ok(self.tmem.join_shared_pool(client, uuid, kind)?)
    }

    /// `client` leaves `pool`; the pool is destroyed when its last member leaves.
    pub fn destroy_pool(&self, client: ClientId, pool: PoolId) -> Result<(), ZcacheError> {
        self.host_client(client)?;
        Ok(self.tmem.destroy_pool(client, pool)?)
    }

    /// Drops one page of any pool; `Ok(true)` if there was one.
    pub fn invalidate_page(
        &self,
        pool: PoolId,
        oid: Oid,
        index: Index,
    ) -> Result<bool, ZcacheError> {
        Ok(self.tmem.invalidate_page(pool, oid, index)?)
    }

    /// Drops every page of one object of any pool; returns how many.
    pub fn invalidate_object(&self, pool: PoolId, oid: Oid) -> Result<u64, ZcacheError> {
        Ok(self.tmem.invalidate_object(pool, oid)?)
    }

    /// A pool's counts (objects, pages, tree nodes, metadata bytes).
    pub fn pool_counts(&self, pool: PoolId) -> Result<PoolCounts, ZcacheError> {
        Ok(self.tmem.counts(pool)?)
    }

    /// Ids of every live pool (the front ends' included), sorted.
    pub fn pool_ids(&self) -> Result<alloc::vec::Vec<PoolId>, ZcacheError> {
        Ok(self.tmem.pool_ids()?)
    }

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

    use tmem_core::{ClientId, LoadMode, Oid, PoolId, PoolKind, StoreOutcome, Uuid};
    use zpool::HeapPageSource;

    use crate::testing::test_page;
    use crate::{Config, Zcache, ZcacheError};

    #[test]
    fn keyed_store_and_load_in_host_made_pools() {
        let z = Zcache::new(Config::default(), Arc::new(HeapPageSource)).unwrap();
        let t = &z;
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
        let mut out = [0u8; zpool::PAGE_SIZE];
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
        let t = &z;
        let (a, b) = (t.new_client().unwrap(), t.new_client().unwrap());
        let uuid = Uuid([0x1234, 0x5678]);
        let pa = t.join_shared_pool(a, uuid, PoolKind::Ephemeral).unwrap();
        let pb = t.join_shared_pool(b, uuid, PoolKind::Ephemeral).unwrap();
        assert_eq!(pa, pb);
        let p = test_page(5 * 8 + 5);
        z.store(pa, Oid::new(1, 0, 0), 3, &p).unwrap();
        let mut out = [0u8; zpool::PAGE_SIZE];
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

    #[test]
    fn the_front_ends_clients_are_not_the_hosts() {
        let z = Zcache::new(Config::default(), HeapPageSource).unwrap();
        let area = crate::SwapArea::swapon(&z, 0).unwrap();
        area.store(1, &test_page(11)).unwrap();
        let mount = z.cleancache().mount().unwrap();
        let guest = z.new_client().unwrap();
        // The swap client was made first (0), the mount's next (1), the guest last.
        assert_eq!(guest, ClientId(2));
        for own in [ClientId(0), ClientId(1)] {
            assert_eq!(z.destroy_client(own), Err(ZcacheError::NotHostClient));
            assert_eq!(
                z.new_pool(own, PoolKind::Persistent),
                Err(ZcacheError::NotHostClient)
            );
            assert_eq!(
                z.join_shared_pool(own, Uuid([1, 2]), PoolKind::Ephemeral),
                Err(ZcacheError::NotHostClient)
            );
        }
        assert_eq!(
            z.destroy_pool(ClientId(1), mount.pool_id()),
            Err(ZcacheError::NotHostClient)
        );
        // zcache's own bookkeeping is intact: the area and the mount still work.
        let mut out = [0u8; zpool::PAGE_SIZE];
        assert!(area.load(1, &mut out).unwrap());
        assert_eq!(out, test_page(11));
        mount.put_page(Oid::new(5, 0, 0), 0, &test_page(12));
        assert!(mount.get_page(Oid::new(5, 0, 0), 0, &mut out));
        mount.unmount().unwrap();
        // Once unmounted, its client id is still not the host's; nor is one never made.
        assert_eq!(
            z.destroy_client(ClientId(1)),
            Err(ZcacheError::NotHostClient)
        );
        assert_eq!(
            z.destroy_client(ClientId(77)),
            Err(ZcacheError::NotHostClient)
        );
        z.destroy_client(guest).unwrap();
        assert_eq!(z.destroy_client(guest), Err(ZcacheError::NotHostClient));
    }
}
