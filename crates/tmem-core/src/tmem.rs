//! The tmem instance: its backend, clients and pool registry.

use alloc::vec::Vec;
use hashbrown::HashMap;

use crate::error::TmemError;
use crate::key::{ClientId, Index, Oid, PoolId, Uuid};
use crate::pam::{Page, PamOps};
use crate::pool::{LoadMode, Pool, PoolCounts, PoolInfo, PoolKind, StoreOutcome};
use crate::sync::RwLock;
use zplat::TryArc;

struct PoolEntry<D> {
    pool: TryArc<Pool<D>>,
    members: Vec<ClientId>,
    uuid: Option<Uuid>,
}

struct Registry<D> {
    pools: HashMap<u32, PoolEntry<D>>,
    clients: HashMap<u32, Vec<PoolId>>,
    shared: HashMap<Uuid, u32>,
    next_pool: u32,
    next_client: u32,
}

/// Result type of tmem operations for backend `P`.
pub type TmemResult<T, P> = Result<T, TmemError<<P as PamOps>::Error>>;

/// A transcendent-memory instance: a backend ([`PamOps`]), its clients and pools.
///
/// No global state: any number of instances, with the same or different backends, live
/// in one process. Every method takes `&self` and may be called from several threads.
///
/// Lock order (docs/concurrency.md): registry (a spin `RwLock`, write-locked only to
/// create, join, leave or destroy pools and clients), then one bucket lock of one pool,
/// then whatever the backend takes inside [`PamOps::load_stage`] (the allocator's).
/// The registry lock is never held while a bucket lock is taken: operations clone the
/// pool's counted pointer under the read lock and drop the lock at once.
pub struct Tmem<P: PamOps> {
    pam: P,
    registry: RwLock<Registry<P::Desc>>,
}

/// A counted reference to one pool, for callers that want to skip the registry lookup
/// on every operation (a front end that owns its pool). Operations through a handle
/// whose pool was destroyed fail with [`TmemError::PoolDestroyed`].
pub struct PoolHandle<D> {
    pool: TryArc<Pool<D>>,
}

impl<D> Clone for PoolHandle<D> {
    fn clone(&self) -> Self {
        PoolHandle {
            pool: self.pool.clone(),
        }
    }
}

impl<D> PoolHandle<D> {
    /// The pool's description.
    pub fn info(&self) -> PoolInfo {
        self.pool.info
    }
}

fn next_free<V>(map: &HashMap<u32, V>, next: &mut u32) -> Option<u32> {
    // Monotonic ids; after 2^32 allocations wrap and skip ids still in use, so an id is
    // never reused while the pool or client it names exists.
    for _ in 0..=map.len() {
        let id = *next;
        *next = next.wrapping_add(1);
        if !map.contains_key(&id) {
            return Some(id);
        }
    }
    None
}

impl<P: PamOps> Tmem<P> {
    /// A new, empty instance over `pam`.
    pub fn new(pam: P) -> Self {
        Tmem {
            pam,
            registry: RwLock::new(Registry {
                pools: HashMap::new(),
                clients: HashMap::new(),
                shared: HashMap::new(),
                next_pool: 0,
                next_client: 0,
            }),
        }
    }

    /// The backend.
    pub fn pam(&self) -> &P {
        &self.pam
    }

    /// Registers a new client (a file system, a swap front end, a guest).
    pub fn new_client(&self) -> TmemResult<ClientId, P> {
        let mut r = self.registry.write();
        let r = &mut *r;
        r.clients.try_reserve(1).map_err(|_| TmemError::NoMemory)?;
        let id = next_free(&r.clients, &mut r.next_client).ok_or(TmemError::IdsExhausted)?;
        r.clients.insert(id, Vec::new());
        Ok(ClientId(id))
    }

    /// Destroys a client: leaves every shared pool it joined and destroys every pool
    /// that no client is left in. Goes through the whole list even when leaving one
    /// pool fails (a concurrent `destroy_pool` of it got there first: `NotAMember`), so
    /// no membership is left behind; returns the first such error.
    pub fn destroy_client(&self, client: ClientId) -> TmemResult<(), P> {
        let pools = {
            let mut r = self.registry.write();
            r.clients
                .remove(&client.0)
                .ok_or(TmemError::UnknownClient)?
        };
        let mut first = Ok(());
        for p in pools {
            // leave() works from the pool side; the client entry is already gone.
            let r = self.leave(client, p, false);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    fn add_pool(
        &self,
        client: ClientId,
        kind: PoolKind,
        uuid: Option<Uuid>,
    ) -> TmemResult<PoolId, P> {
        // The pool (its 16 KiB bucket array, then its counted pointer, both fallibly) is
        // made before the registry lock is taken, so no allocation happens with the
        // registry locked. Its id is set once known, while the pointer is still ours
        // alone.
        let placeholder = PoolInfo {
            id: PoolId(0),
            kind,
            shared: uuid.is_some(),
        };
        let mut fresh = Some(
            TryArc::new(Pool::new(placeholder).map_err(|_| TmemError::NoMemory)?)
                .map_err(|_| TmemError::NoMemory)?,
        );
        let mut r = self.registry.write();
        let r = &mut *r;
        if let Some(u) = uuid
            && let Some(&id) = r.shared.get(&u)
        {
            // Join an existing shared pool.
            let entry = r.pools.get_mut(&id).ok_or(TmemError::UnknownPool)?;
            if !entry.members.contains(&client) {
                let Some(list) = r.clients.get_mut(&client.0) else {
                    return Err(TmemError::UnknownClient);
                };
                list.try_reserve(1).map_err(|_| TmemError::NoMemory)?;
                entry
                    .members
                    .try_reserve(1)
                    .map_err(|_| TmemError::NoMemory)?;
                list.push(PoolId(id));
                entry.members.push(client);
            }
            return Ok(PoolId(id));
        }
        if !r.clients.contains_key(&client.0) {
            return Err(TmemError::UnknownClient);
        }
        r.pools.try_reserve(1).map_err(|_| TmemError::NoMemory)?;
        r.shared.try_reserve(1).map_err(|_| TmemError::NoMemory)?;
        let id = next_free(&r.pools, &mut r.next_pool).ok_or(TmemError::IdsExhausted)?;
        let mut pool = fresh.take().ok_or(TmemError::NoMemory)?;
        TryArc::get_mut(&mut pool)
            .ok_or(TmemError::NoMemory)?
            .info
            .id = PoolId(id);
        let mut members = Vec::new();
        members.try_reserve(1).map_err(|_| TmemError::NoMemory)?;
        members.push(client);
        let Some(list) = r.clients.get_mut(&client.0) else {
            return Err(TmemError::UnknownClient);
        };
        list.try_reserve(1).map_err(|_| TmemError::NoMemory)?;
        list.push(PoolId(id));
        r.pools.insert(
            id,
            PoolEntry {
                pool,
                members,
                uuid,
            },
        );
        if let Some(u) = uuid {
            r.shared.insert(u, id);
        }
        Ok(PoolId(id))
    }

    /// Creates a private pool owned by `client`.
    pub fn new_pool(&self, client: ClientId, kind: PoolKind) -> TmemResult<PoolId, P> {
        self.add_pool(client, kind, None)
    }

    /// Joins the shared pool named `uuid`, creating it (of `kind`) if it does not exist.
    /// Joining an existing pool keeps its kind.
    pub fn join_shared_pool(
        &self,
        client: ClientId,
        uuid: Uuid,
        kind: PoolKind,
    ) -> TmemResult<PoolId, P> {
        self.add_pool(client, kind, Some(uuid))
    }

    /// `client` leaves `pool`; when no member is left the pool is destroyed: every page
    /// is freed through the backend. Never waits for operations in flight: they hold a
    /// reference, fail with [`TmemError::PoolDestroyed`] if they reach a bucket after
    /// the destroy did, and the pool's memory goes when the last reference drops.
    pub fn destroy_pool(&self, client: ClientId, pool: PoolId) -> TmemResult<(), P> {
        self.leave(client, pool, true)
    }

    fn leave(&self, client: ClientId, pool: PoolId, unlist: bool) -> TmemResult<(), P> {
        let doomed = {
            let mut r = self.registry.write();
            let r = &mut *r;
            let entry = r.pools.get_mut(&pool.0).ok_or(TmemError::UnknownPool)?;
            let pos = entry
                .members
                .iter()
                .position(|c| *c == client)
                .ok_or(TmemError::NotAMember)?;
            entry.members.swap_remove(pos);
            if unlist && let Some(list) = r.clients.get_mut(&client.0) {
                list.retain(|p| *p != pool);
            }
            if entry.members.is_empty() {
                let e = r.pools.remove(&pool.0);
                if let Some(e) = &e
                    && let Some(u) = e.uuid
                {
                    r.shared.remove(&u);
                }
                e
            } else {
                None
            }
        };
        // Outside the registry lock: mark dead and free everything.
        if let Some(e) = doomed {
            e.pool.drain(&self.pam, true);
        }
        Ok(())
    }

    /// A counted reference to `pool`.
    pub fn pool(&self, pool: PoolId) -> TmemResult<PoolHandle<P::Desc>, P> {
        let r = self.registry.read();
        let e = r.pools.get(&pool.0).ok_or(TmemError::UnknownPool)?;
        Ok(PoolHandle {
            pool: e.pool.clone(),
        })
    }

    /// The pool's description.
    pub fn pool_info(&self, pool: PoolId) -> TmemResult<PoolInfo, P> {
        let r = self.registry.read();
        Ok(r.pools
            .get(&pool.0)
            .ok_or(TmemError::UnknownPool)?
            .pool
            .info)
    }

    /// Ids of the live pools, sorted; [`TmemError::NoMemory`] when the list cannot be
    /// allocated.
    pub fn pool_ids(&self) -> TmemResult<Vec<PoolId>, P> {
        let mut v = Vec::new();
        let r = self.registry.read();
        v.try_reserve_exact(r.pools.len())
            .map_err(|_| TmemError::NoMemory)?;
        v.extend(r.pools.keys().map(|k| PoolId(*k)));
        drop(r);
        v.sort_unstable();
        Ok(v)
    }

    /// The counts of every live pool, summed (no allocation: the registry's read side
    /// is held while each pool's buckets are visited, one bucket lock at a time).
    pub fn total_counts(&self) -> PoolCounts {
        let r = self.registry.read();
        let mut t = PoolCounts::default();
        for e in r.pools.values() {
            t.add(&e.pool.counts());
        }
        t
    }

    fn lookup(&self, pool: PoolId) -> TmemResult<TryArc<Pool<P::Desc>>, P> {
        let r = self.registry.read();
        Ok(r.pools
            .get(&pool.0)
            .ok_or(TmemError::UnknownPool)?
            .pool
            .clone())
    }

    /// Stores a copy of `page` at (pool, oid, index). A duplicate store replaces the old
    /// copy; a failed store leaves no copy of the key at all (no stale data).
    pub fn store(
        &self,
        ctx: &mut P::Ctx,
        pool: PoolId,
        oid: Oid,
        index: Index,
        page: &Page,
    ) -> TmemResult<StoreOutcome, P> {
        self.lookup(pool)?.store(&self.pam, ctx, oid, index, page)
    }

    /// Loads (pool, oid, index) into `page`: `Ok(true)` filled, `Ok(false)` miss (page
    /// untouched). See [`LoadMode`] for whether the page stays.
    pub fn load(
        &self,
        ctx: &mut P::Ctx,
        pool: PoolId,
        oid: Oid,
        index: Index,
        page: &mut Page,
        mode: LoadMode,
    ) -> TmemResult<bool, P> {
        self.lookup(pool)?
            .load(&self.pam, ctx, oid, index, page, mode)
    }

    /// Invalidates one page; `Ok(true)` if there was one.
    pub fn invalidate_page(&self, pool: PoolId, oid: Oid, index: Index) -> TmemResult<bool, P> {
        self.lookup(pool)?.invalidate_page(&self.pam, oid, index)
    }

    /// Invalidates every page of an object; returns how many there were.
    pub fn invalidate_object(&self, pool: PoolId, oid: Oid) -> TmemResult<u64, P> {
        self.lookup(pool)?.invalidate_object(&self.pam, oid)
    }

    /// Invalidates (pool, oid, index) only if it still maps to `expected`: eviction's
    /// primitive, so a newer store of the same key is never lost. `Ok(true)` if it did.
    pub fn compare_and_invalidate(
        &self,
        pool: PoolId,
        oid: Oid,
        index: Index,
        expected: &P::Desc,
    ) -> TmemResult<bool, P> {
        self.lookup(pool)?
            .compare_and_invalidate(&self.pam, oid, index, expected)
    }

    /// Invalidates every page of the pool but keeps the pool (frontswap's
    /// invalidate_area). Returns the pages freed.
    pub fn invalidate_pool(&self, pool: PoolId) -> TmemResult<u64, P> {
        Ok(self.lookup(pool)?.drain(&self.pam, false))
    }

    /// The pool's counts, summed over its buckets.
    pub fn counts(&self, pool: PoolId) -> TmemResult<PoolCounts, P> {
        Ok(self.lookup(pool)?.counts())
    }

    /// Visits every (oid, index, descriptor) of a pool, one bucket lock at a time.
    /// `f` runs under a bucket lock: it must not call back into tmem.
    pub fn for_each(
        &self,
        pool: PoolId,
        f: &mut dyn FnMut(&Oid, Index, &P::Desc),
    ) -> TmemResult<(), P> {
        self.lookup(pool)?.for_each(f);
        Ok(())
    }

    // ---- operations through a handle (no registry lookup) ----

    /// [`Tmem::store`] through a handle.
    pub fn store_in(
        &self,
        ctx: &mut P::Ctx,
        pool: &PoolHandle<P::Desc>,
        oid: Oid,
        index: Index,
        page: &Page,
    ) -> TmemResult<StoreOutcome, P> {
        pool.pool.store(&self.pam, ctx, oid, index, page)
    }

    /// [`Tmem::load`] through a handle.
    pub fn load_from(
        &self,
        ctx: &mut P::Ctx,
        pool: &PoolHandle<P::Desc>,
        oid: Oid,
        index: Index,
        page: &mut Page,
        mode: LoadMode,
    ) -> TmemResult<bool, P> {
        pool.pool.load(&self.pam, ctx, oid, index, page, mode)
    }

    /// [`Tmem::invalidate_page`] through a handle.
    pub fn invalidate_page_in(
        &self,
        pool: &PoolHandle<P::Desc>,
        oid: Oid,
        index: Index,
    ) -> TmemResult<bool, P> {
        pool.pool.invalidate_page(&self.pam, oid, index)
    }

    /// [`Tmem::compare_and_invalidate`] through a handle.
    pub fn compare_and_invalidate_in(
        &self,
        pool: &PoolHandle<P::Desc>,
        oid: Oid,
        index: Index,
        expected: &P::Desc,
    ) -> TmemResult<bool, P> {
        pool.pool
            .compare_and_invalidate(&self.pam, oid, index, expected)
    }

    /// Takes (pool, oid, index) out of tmem only if it still maps to `expected`, and
    /// returns the descriptor: the caller owns it and must either free it with
    /// [`PamOps::free`] or put it back with [`Tmem::restore_if_absent_in`]. The check
    /// and the removal are one step under the bucket lock (writeback's primitive: a key
    /// stored again meanwhile is never taken). `Ok(None)`: the key no longer maps to
    /// `expected`.
    pub fn compare_and_take_in(
        &self,
        pool: &PoolHandle<P::Desc>,
        oid: Oid,
        index: Index,
        expected: &P::Desc,
    ) -> TmemResult<Option<P::Desc>, P> {
        pool.pool.compare_and_take(&self.pam, oid, index, expected)
    }

    /// Puts back a descriptor that [`Tmem::compare_and_take_in`] took, only if the key
    /// holds nothing now: a store made meanwhile is newer and wins. `None`: it is back;
    /// `Some(desc)`: it was not put back (key taken, pool destroyed, or no metadata
    /// memory), and the caller frees it.
    pub fn restore_if_absent_in(
        &self,
        pool: &PoolHandle<P::Desc>,
        oid: Oid,
        index: Index,
        desc: P::Desc,
    ) -> Option<P::Desc> {
        pool.pool.restore_if_absent(&self.pam, oid, index, desc)
    }

    /// [`Tmem::invalidate_object`] through a handle.
    pub fn invalidate_object_in(&self, pool: &PoolHandle<P::Desc>, oid: Oid) -> TmemResult<u64, P> {
        pool.pool.invalidate_object(&self.pam, oid)
    }
}

impl<P: PamOps> Drop for Tmem<P> {
    fn drop(&mut self) {
        // Free every page through the backend; handles still held elsewhere see their
        // pools dead.
        // One pool at a time, without collecting them first: a `Drop` cannot report an
        // allocation failure. The registry lock is not held while a pool drains.
        loop {
            let next = {
                let mut r = self.registry.write();
                let key = r.pools.keys().next().copied();
                key.and_then(|k| r.pools.remove(&k))
            };
            let Some(e) = next else {
                break;
            };
            e.pool.drain(&self.pam, true);
        }
        let mut r = self.registry.write();
        r.shared.clear();
        r.clients.clear();
    }
}
