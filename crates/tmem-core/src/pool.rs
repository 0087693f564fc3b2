//! A pool: 256 hash buckets of objects, each bucket with its own spin lock.

use alloc::boxed::Box;
use alloc::vec::Vec;
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use crate::error::TmemError;
use crate::key::{BuildPremixed, Index, Key, Oid, PoolId};
use crate::pam::{LoadStep, Page, PamOps};
use crate::sync::{AtomicBool, Mutex, Ordering};
use crate::tree::{self, Tree, TreeCounts};

/// Number of hash buckets per pool (the kernel's TMEM_HASH_BUCKET_BITS = 8).
pub const BUCKETS: usize = 256;

/// Ephemeral (cleancache: pages may vanish) or persistent (frontswap: pages stay until
/// invalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// The backend may drop any page at any time.
    Ephemeral,
    /// A successfully stored page stays loadable until invalidated.
    Persistent,
}

/// What a pool is, as the backend sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolInfo {
    /// The pool's id.
    pub id: PoolId,
    /// Ephemeral or persistent.
    pub kind: PoolKind,
    /// Shared pools are found by uuid and may have several member clients.
    pub shared: bool,
}

impl PoolInfo {
    /// Whether the pool is ephemeral.
    pub fn is_ephemeral(&self) -> bool {
        self.kind == PoolKind::Ephemeral
    }
}

/// How a load treats the page it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMode {
    /// tmem's default: exclusive for private ephemeral pools (the page leaves the pool,
    /// as cleancache's exclusive cache wants), keep for persistent and shared pools.
    Default,
    /// The page leaves the pool (frontswap exclusive loads).
    Exclusive,
    /// The page stays.
    Keep,
}

/// Whether a successful store replaced an older copy of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// The key held nothing.
    New,
    /// A duplicate store: the older copy was replaced (and freed).
    Replaced,
}

/// Per-pool counts, summed over the buckets when read (each bucket keeps its own, under
/// the bucket lock the operation already holds, so the counts add no shared cache line;
/// what the operation paths do share, the registry lock and the pool's reference count
/// among them, is listed in docs/concurrency.md, "Shared words on the operation paths").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Objects (oids with at least one page).
    pub objects: u64,
    /// Pages (descriptors).
    pub pages: u64,
    /// Tree leaf nodes.
    pub leaves: u64,
    /// Tree interior nodes.
    pub interiors: u64,
    /// Estimated heap bytes of tmem metadata for this pool: buckets, object maps, tree
    /// nodes (descriptors live inside leaves and in height-0 roots).
    pub metadata_bytes: u64,
    /// The part of `metadata_bytes` that is tree nodes (leaves and interior nodes); the
    /// rest is the pool, its buckets and their object maps.
    pub node_bytes: u64,
}

impl PoolCounts {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &PoolCounts) {
        self.objects += other.objects;
        self.pages += other.pages;
        self.leaves += other.leaves;
        self.interiors += other.interiors;
        self.metadata_bytes += other.metadata_bytes;
        self.node_bytes += other.node_bytes;
    }
}

struct Bucket<D> {
    objects: HashMap<Oid, Tree<D>, BuildPremixed>,
    /// What the trees hold, all of them together (a tree keeps no counts of its own).
    /// A tree taken out of the map (`take_object`, `drain`) stays counted until it has
    /// been drained outside the lock and its counts are taken back (`forget`).
    counts: TreeCounts,
}

/// What a failed insert hands back: the new descriptor and any older copy it removed.
pub(crate) type InsertFailure<D> = (D, Option<D>);

impl<D> Bucket<D> {
    fn new() -> Self {
        Bucket {
            objects: HashMap::default(),
            counts: TreeCounts::default(),
        }
    }

    fn get(&self, oid: &Oid, index: Index) -> Option<&D> {
        self.objects.get(oid)?.get(index)
    }

    /// Inserts; on failure nothing of this key remains (no stale copy).
    fn insert<P: PamOps<Desc = D>>(
        &mut self,
        pam: &P,
        info: &PoolInfo,
        oid: Oid,
        index: Index,
        desc: D,
    ) -> Result<Option<D>, InsertFailure<D>> {
        // One probe when the object exists (the common case) or the map has room; a
        // vacant entry's insert grows the map only when no room is left
        // (`len == capacity`), and that growth must be fallible, so it is done first.
        let room = self.objects.len() < self.objects.capacity();
        let tree = match self.objects.entry(oid) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) if room => {
                pam.object_created(info, &oid);
                v.insert(Tree::new())
            }
            Entry::Vacant(_) => {
                if self.objects.try_reserve(1).is_err() {
                    return Err((desc, None));
                }
                pam.object_created(info, &oid);
                self.objects.entry(oid).or_insert_with(Tree::new)
            }
        };
        let res = match tree.insert(index, desc, &mut self.counts) {
            Ok(old) => Ok(old),
            Err((_, desc)) => Err((desc, tree.remove(index, &mut self.counts))),
        };
        if tree.is_empty() {
            self.objects.remove(&oid);
            pam.object_freed(info, &oid);
        }
        res
    }

    fn remove<P: PamOps<Desc = D>>(
        &mut self,
        pam: &P,
        info: &PoolInfo,
        oid: &Oid,
        index: Index,
    ) -> Option<D> {
        let tree = self.objects.get_mut(oid)?;
        let d = tree.remove(index, &mut self.counts);
        if tree.is_empty() {
            self.objects.remove(oid);
            pam.object_freed(info, oid);
        }
        d
    }

    /// Takes an object's tree out of the map. Its pages and nodes stay counted (finding
    /// them would mean walking the tree under the lock) until the caller has drained it
    /// and hands its counts to [`Bucket::forget`].
    fn take_object(&mut self, oid: &Oid) -> Option<Tree<D>> {
        self.objects.remove(oid)
    }

    /// Takes back the counts of trees taken out and drained.
    fn forget(&mut self, freed: &TreeCounts) {
        self.counts.subtract(freed);
    }
}

/// One bucket per 64-byte cache line: two threads working in different buckets never
/// share a line. (A bucket is 64 bytes: lock, map header, three counts; crossbeam's
/// 128-byte `CachePadded` would double the 256 buckets' fixed 16 KiB per pool.)
#[repr(align(64))]
struct LinePadded<T>(T);

impl<T> core::ops::Deref for LinePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One tmem pool. Shared through `Arc`: in-flight operations hold a reference, so a
/// destroy never waits for them; the memory goes when the last reference drops.
pub(crate) struct Pool<D> {
    pub(crate) info: PoolInfo,
    /// Set by destroy before it empties the buckets; read under a bucket lock, so an
    /// operation that takes a bucket lock after destroy emptied that bucket sees it
    /// (destroy's unlock of the bucket happens-before that lock) and does not insert
    /// into a pool nobody will drain again.
    dead: AtomicBool,
    buckets: Box<[LinePadded<Mutex<Bucket<D>>>]>,
}

impl<D> Pool<D> {
    pub(crate) fn new(info: PoolInfo) -> Result<Self, ()> {
        let mut v = Vec::new();
        v.try_reserve_exact(BUCKETS).map_err(|_| ())?;
        for _ in 0..BUCKETS {
            v.push(LinePadded(Mutex::new(Bucket::new())));
        }
        Ok(Pool {
            info,
            dead: AtomicBool::new(false),
            buckets: v.into_boxed_slice(),
        })
    }

    #[inline]
    fn bucket(&self, oid: &Oid) -> &Mutex<Bucket<D>> {
        &self.buckets[(oid.hash64() >> 56) as usize % BUCKETS]
    }

    #[inline]
    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    pub(crate) fn store<P: PamOps<Desc = D>>(
        &self,
        pam: &P,
        ctx: &mut P::Ctx,
        oid: Oid,
        index: Index,
        page: &Page,
    ) -> Result<StoreOutcome, TmemError<P::Error>> {
        let key = Key {
            pool: self.info.id,
            oid,
            index,
        };
        // Compression and allocation: outside every tmem lock.
        let created = pam.create(ctx, &key, &self.info, page);
        let bucket = self.bucket(&oid);
        match created {
            Err(e) => {
                // A failed duplicate store leaves no stale copy behind.
                let old = {
                    let mut b = bucket.lock();
                    if self.is_dead() {
                        None
                    } else {
                        b.remove(pam, &self.info, &oid, index)
                    }
                };
                if let Some(old) = old {
                    pam.free(&self.info, old);
                }
                Err(TmemError::Backend(e))
            }
            Ok(desc) => {
                let mut b = bucket.lock();
                if self.is_dead() {
                    drop(b);
                    pam.free(&self.info, desc);
                    return Err(TmemError::PoolDestroyed);
                }
                let res = b.insert(pam, &self.info, oid, index, desc);
                drop(b);
                match res {
                    Ok(None) => Ok(StoreOutcome::New),
                    Ok(Some(old)) => {
                        pam.free(&self.info, old);
                        Ok(StoreOutcome::Replaced)
                    }
                    Err((desc, old)) => {
                        pam.free(&self.info, desc);
                        if let Some(old) = old {
                            pam.free(&self.info, old);
                        }
                        Err(TmemError::NoMemory)
                    }
                }
            }
        }
    }

    pub(crate) fn load<P: PamOps<Desc = D>>(
        &self,
        pam: &P,
        ctx: &mut P::Ctx,
        oid: Oid,
        index: Index,
        page: &mut Page,
        mode: LoadMode,
    ) -> Result<bool, TmemError<P::Error>> {
        let exclusive = match mode {
            LoadMode::Exclusive => true,
            LoadMode::Keep => false,
            LoadMode::Default => self.info.kind == PoolKind::Ephemeral && !self.info.shared,
        };
        let bucket = self.bucket(&oid);
        if exclusive {
            let desc = {
                let mut b = bucket.lock();
                if self.is_dead() {
                    return Err(TmemError::PoolDestroyed);
                }
                b.remove(pam, &self.info, &oid, index)
            };
            match desc {
                None => Ok(false),
                Some(d) => pam
                    .load_and_free(ctx, &self.info, d, page)
                    .map(|()| true)
                    .map_err(TmemError::Backend),
            }
        } else {
            let step = {
                let b = bucket.lock();
                if self.is_dead() {
                    return Err(TmemError::PoolDestroyed);
                }
                match b.get(&oid, index) {
                    None => return Ok(false),
                    Some(d) => pam
                        .load_stage(ctx, &self.info, d, page)
                        .map_err(TmemError::Backend)?,
                }
            };
            if step == LoadStep::Finish {
                // The staged half: outside the bucket lock.
                pam.load_finish(ctx, page).map_err(TmemError::Backend)?;
            }
            Ok(true)
        }
    }

    pub(crate) fn invalidate_page<P: PamOps<Desc = D>>(
        &self,
        pam: &P,
        oid: Oid,
        index: Index,
    ) -> Result<bool, TmemError<P::Error>> {
        let old = {
            let mut b = self.bucket(&oid).lock();
            if self.is_dead() {
                return Err(TmemError::PoolDestroyed);
            }
            b.remove(pam, &self.info, &oid, index)
        };
        match old {
            Some(d) => {
                pam.free(&self.info, d);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub(crate) fn compare_and_invalidate<P: PamOps<Desc = D>>(
        &self,
        pam: &P,
        oid: Oid,
        index: Index,
        expected: &D,
    ) -> Result<bool, TmemError<P::Error>>
    where
        D: PartialEq,
    {
        let old = {
            let mut b = self.bucket(&oid).lock();
            if self.is_dead() {
                return Err(TmemError::PoolDestroyed);
            }
            if b.get(&oid, index) == Some(expected) {
                b.remove(pam, &self.info, &oid, index)
            } else {
                None
            }
        };
        match old {
            Some(d) => {
                pam.free(&self.info, d);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Takes (oid, index) out of the pool only if it still maps to `expected`, and
    /// hands the descriptor to the caller, who now owns it (and must free it, or put it
    /// back with [`Pool::restore_if_absent`]). Writeback's primitive: the check and the
    /// removal happen under the bucket lock, so a newer store of the key is never taken.
    pub(crate) fn compare_and_take<P: PamOps<Desc = D>>(
        &self,
        pam: &P,
        oid: Oid,
        index: Index,
        expected: &D,
    ) -> Result<Option<D>, TmemError<P::Error>>
    where
        D: PartialEq,
    {
        let mut b = self.bucket(&oid).lock();
        if self.is_dead() {
            return Err(TmemError::PoolDestroyed);
        }
        if b.get(&oid, index) == Some(expected) {
            Ok(b.remove(pam, &self.info, &oid, index))
        } else {
            Ok(None)
        }
    }

    /// Puts a descriptor taken by [`Pool::compare_and_take`] back, only if the key holds
    /// nothing now (a newer store, which must win, may have filled it meanwhile).
    /// `None`: it is back in the pool. `Some(desc)`: it was not put back (the key is
    /// taken, the pool is dead, or metadata memory ran out); the caller frees it.
    pub(crate) fn restore_if_absent<P: PamOps<Desc = D>>(
        &self,
        pam: &P,
        oid: Oid,
        index: Index,
        desc: D,
    ) -> Option<D> {
        let mut b = self.bucket(&oid).lock();
        if self.is_dead() || b.get(&oid, index).is_some() {
            return Some(desc);
        }
        match b.insert(pam, &self.info, oid, index, desc) {
            Ok(None) => None,
            // Cannot happen (the key was empty under this lock); keep the newer copy.
            Ok(Some(old)) => Some(old),
            Err((desc, _)) => Some(desc),
        }
    }

    pub(crate) fn invalidate_object<P: PamOps<Desc = D>>(
        &self,
        pam: &P,
        oid: Oid,
    ) -> Result<u64, TmemError<P::Error>> {
        let tree = {
            let mut b = self.bucket(&oid).lock();
            if self.is_dead() {
                return Err(TmemError::PoolDestroyed);
            }
            b.take_object(&oid)
        };
        // Freeing happens outside the bucket lock: the object is already unreachable.
        // Then one more short hold takes its counts back (the bucket counted its pages
        // and nodes until now; a reader of `counts` meanwhile sees them).
        match tree {
            Some(mut t) => {
                let freed = t.drain(&mut |_, d| pam.free(&self.info, d));
                pam.object_freed(&self.info, &oid);
                self.bucket(&oid).lock().forget(&freed);
                Ok(freed.pages)
            }
            None => Ok(0),
        }
    }

    /// Empties every bucket (used by destroy, with `dead` set first, and by a flush of
    /// the whole pool). Returns the pages freed.
    pub(crate) fn drain<P: PamOps<Desc = D>>(&self, pam: &P, mark_dead: bool) -> u64 {
        if mark_dead {
            self.dead.store(true, Ordering::Release);
        }
        let mut freed = 0;
        for b in self.buckets.iter() {
            let objects = core::mem::take(&mut b.lock().objects);
            if objects.is_empty() {
                continue;
            }
            // As in `invalidate_object`: drained outside the lock, then the counts of
            // exactly these trees are taken back (zeroing them instead would also take
            // out those of a tree an `invalidate_object` is draining meanwhile, which
            // that call subtracts again).
            let mut gone = TreeCounts::default();
            for (oid, mut tree) in objects {
                let t = tree.drain(&mut |_, d| pam.free(&self.info, d));
                pam.object_freed(&self.info, &oid);
                gone.add(&t);
            }
            b.lock().forget(&gone);
            freed += gone.pages;
        }
        freed
    }

    pub(crate) fn counts(&self) -> PoolCounts {
        let mut c = PoolCounts {
            metadata_bytes: (core::mem::size_of::<Self>()
                + self.buckets.len() * core::mem::size_of::<LinePadded<Mutex<Bucket<D>>>>())
                as u64,
            ..PoolCounts::default()
        };
        let entry = core::mem::size_of::<(Oid, Tree<D>)>() + 1;
        for b in self.buckets.iter() {
            let g = b.lock();
            c.objects += g.objects.len() as u64;
            c.pages += g.counts.pages;
            c.leaves += g.counts.leaves;
            c.interiors += g.counts.interiors;
            c.metadata_bytes += (g.objects.capacity() * entry) as u64;
        }
        c.node_bytes = c.leaves * tree::leaf_bytes::<D>() as u64
            + c.interiors * tree::interior_bytes::<D>() as u64;
        c.metadata_bytes += c.node_bytes;
        c
    }

    /// Visits every key of the pool and its descriptor, bucket by bucket (each bucket
    /// locked while it is visited; `f` must not call back into tmem).
    pub(crate) fn for_each(&self, f: &mut dyn FnMut(&Oid, Index, &D)) {
        for b in self.buckets.iter() {
            let g = b.lock();
            for (oid, tree) in g.objects.iter() {
                tree.for_each(&mut |i, d| f(oid, i, d));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(core::mem::size_of::<LinePadded<Mutex<Bucket<u64>>>>(), 64);
    }
}
