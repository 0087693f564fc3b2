//! The `Zcache` value: tmem over zcache's backend, compression contexts, reclaim,
//! writeback.

use alloc::boxed::Box;
use alloc::vec::Vec;
use crossbeam_utils::CachePadded;
use hashbrown::HashMap;

use tmem_core::{
    ClientId, Index, Key, LoadMode, Oid, PoolHandle, PoolId, PoolInfo, StoreOutcome, Tmem,
    TmemError,
};
use zpool::{Page, PageSource, ZPool};

use crate::allocator::Allocator;
use crate::config::Config;
use crate::desc::ZDesc;
use crate::lru::Lru;
use crate::pam::{ZCtx, ZError, ZPam};
use crate::source::LimitedSource;
use crate::stats::{C, Counters, Shards};
use crate::sync::{Mutex, RwLock, TokenGuard};
use crate::writeback::Writeback;
use zplat::TryArc;

/// Why a zcache operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZcacheError {
    /// The backend refused or failed (see [`ZError`]).
    Backend(ZError),
    /// No such pool (never created, or invalidated).
    UnknownPool,
    /// The swap type was not initialised (or its area was invalidated).
    UnknownSwapType,
    /// The pool was destroyed while the operation was in flight.
    PoolDestroyed,
    /// Out of memory for metadata.
    NoMemory,
    /// The client is not one the host made with [`Zcache::new_client`] (or it was
    /// destroyed): the front ends' own clients (the swap client, a mount's) end through
    /// their front end ([`crate::SwapArea::swapoff`], [`crate::Mount::unmount`]).
    NotHostClient,
    /// A configuration value is out of range.
    InvalidConfig(&'static str),
}

impl core::fmt::Display for ZcacheError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ZcacheError::Backend(e) => write!(f, "{e}"),
            ZcacheError::UnknownPool => f.write_str("unknown pool"),
            ZcacheError::UnknownSwapType => f.write_str("swap type not initialised"),
            ZcacheError::PoolDestroyed => f.write_str("pool destroyed during the operation"),
            ZcacheError::NoMemory => f.write_str("out of metadata memory"),
            ZcacheError::NotHostClient => {
                f.write_str("not a client the host made (front ends end their own)")
            }
            ZcacheError::InvalidConfig(w) => write!(f, "invalid configuration: {w}"),
        }
    }
}

impl From<TmemError<ZError>> for ZcacheError {
    fn from(e: TmemError<ZError>) -> Self {
        match e {
            TmemError::Backend(b) => ZcacheError::Backend(b),
            TmemError::UnknownPool | TmemError::NotAMember | TmemError::UnknownClient => {
                ZcacheError::UnknownPool
            }
            TmemError::PoolDestroyed => ZcacheError::PoolDestroyed,
            TmemError::NoMemory | TmemError::IdsExhausted => ZcacheError::NoMemory,
        }
    }
}

/// A statistics snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The event and gauge counters (zswap / zcache names).
    pub counters: Counters,
    /// Frames held by both allocators (zswap's pool_total_size is this × the page size).
    pub pool_frames: usize,
    /// Highest `pool_frames` seen (since creation or the last [`Zcache::reset_peak`]).
    pub pool_frames_peak: usize,
    /// zswap's pool_total_size, bytes.
    pub pool_total_size: u64,
    /// Frames held by the ephemeral allocator.
    pub eph_frames: usize,
    /// Frames held by the persistent allocator.
    pub pers_frames: usize,
    /// Objects (compressed pages) in the ephemeral allocator.
    pub eph_zpages: usize,
    /// Objects in the persistent allocator.
    pub pers_zpages: usize,
    /// Allocations refused by the frame limit (zswap: pool_limit_hit).
    pub pool_limit_hit: u64,
    /// Allocations the host's page source refused.
    pub host_alloc_fail: u64,
    /// Whether the limit's hysteresis is currently refusing frames.
    pub limit_full: bool,
    /// Ephemeral pages on zcache's LRU.
    pub eph_lru_len: usize,
    /// Persistent pages on zcache's LRU.
    pub pers_lru_len: usize,
}

/// One swap type's pool, in its own cache line: stores to different swap devices never
/// touch a shared lock word.
pub(crate) type SwapSlot = CachePadded<RwLock<Option<PoolHandle<ZDesc>>>>;

/// zcache: tmem + compressed-page allocators + compressors, with a frame limit,
/// eviction, writeback and statistics. No global state: any number may coexist.
///
/// Use it through its front ends, [`Zcache::cleancache`] and [`Zcache::frontswap`], or
/// through its host calls ([`Zcache::new_client`], [`Zcache::new_pool`],
/// [`Zcache::store`], [`Zcache::load`], ...) for tmem's own operations (a hypervisor).
pub struct Zcache {
    pub(crate) tmem: Tmem<ZPam>,
    ctxs: Box<[CachePadded<Mutex<ZCtx>>]>,
    /// The reclaimer's own context (one reclaimer at a time, try-locked).
    pub(crate) reclaim_ctx: Mutex<ZCtx>,
    pub(crate) config: Config,
    pub(crate) writeback: Option<Box<dyn Writeback>>,
    /// Cleancache mounts: the client created for each mount -> its pool.
    pub(crate) mounts: RwLock<HashMap<ClientId, PoolId>>,
    /// The clients the host made ([`Zcache::new_client`]): the only ones the host's
    /// pool operations accept (an allow list, so no id of a front end's is ever the
    /// host's, not even one made a moment ago and not yet recorded in `mounts`).
    pub(crate) host_clients: RwLock<hashbrown::HashSet<ClientId>>,
    pub(crate) swap_client: ClientId,
    pub(crate) swap: Box<[SwapSlot]>,
}

impl Zcache {
    /// Builds a zcache over the host's page source (any [`PageSource`], an
    /// `Arc<dyn PageSource>` included). The source is moved to the heap fallibly:
    /// allocation failure anywhere in here is [`ZcacheError::NoMemory`], never an abort.
    pub fn new<S: PageSource + 'static>(config: Config, source: S) -> Result<Zcache, ZcacheError> {
        let source = zplat::try_box(source).map_err(|_| ZcacheError::NoMemory)?;
        Self::build(config, source, None)
    }

    /// Builds a zcache whose persistent pages can be written back to `writeback`.
    pub fn with_writeback<S: PageSource + 'static, W: Writeback + 'static>(
        config: Config,
        source: S,
        writeback: W,
    ) -> Result<Zcache, ZcacheError> {
        let source = zplat::try_box(source).map_err(|_| ZcacheError::NoMemory)?;
        let writeback = zplat::try_box(writeback).map_err(|_| ZcacheError::NoMemory)?;
        Self::build(config, source, Some(writeback))
    }

    fn build(
        config: Config,
        source: Box<dyn PageSource>,
        writeback: Option<Box<dyn Writeback>>,
    ) -> Result<Zcache, ZcacheError> {
        if config.contexts == 0 || config.contexts > 1024 {
            return Err(ZcacheError::InvalidConfig("contexts must be 1..=1024"));
        }
        if !config.compressor.is_available() {
            return Err(ZcacheError::InvalidConfig(
                "compressor not available in this build",
            ));
        }
        let limited = TryArc::new(LimitedSource::new(
            source,
            config.max_frames,
            config.accept_threshold_percent,
        ))
        .map_err(|_| ZcacheError::NoMemory)?;
        let eph = Allocator::boxed(
            config.ephemeral_allocator,
            limited.clone(),
            config.context_hint,
        )?;
        let pers = Allocator::boxed(
            config.persistent_allocator,
            limited.clone(),
            config.context_hint,
        )?;
        // One shard per context, one for the reclaimer.
        let stats = Shards::new(config.contexts + 1).map_err(|_| ZcacheError::NoMemory)?;
        // Each ring numbers its nodes as its allocator numbers its objects.
        let ring = |a: &Allocator| {
            let ids = a.object_ids().ok_or(ZcacheError::InvalidConfig(
                "the allocator does not number its objects",
            ))?;
            Lru::new(ids).map_err(|_| ZcacheError::NoMemory)
        };
        let lrus = (ring(&eph[0])?, ring(&pers[0])?);
        let pam = ZPam::new(
            limited,
            (eph, pers),
            (stats, config.context_hint, config.contexts),
            config.compressor,
            config.policy,
            config.decompress_in_place,
            lrus,
        );
        let mut ctxs = Vec::new();
        ctxs.try_reserve_exact(config.contexts)
            .map_err(|_| ZcacheError::NoMemory)?;
        for i in 0..config.contexts {
            let c = ZCtx::new(i, config.compressor).map_err(ZcacheError::Backend)?;
            ctxs.push(CachePadded::new(Mutex::new(c)));
        }
        let reclaim_ctx = Mutex::new(
            ZCtx::new(config.contexts, config.compressor).map_err(ZcacheError::Backend)?,
        );
        let tmem = Tmem::new(pam);
        let swap_client = tmem.new_client()?;
        let mut swap = Vec::new();
        swap.try_reserve_exact(crate::frontswap::MAX_SWAP_TYPES as usize)
            .map_err(|_| ZcacheError::NoMemory)?;
        for _ in 0..crate::frontswap::MAX_SWAP_TYPES {
            swap.push(CachePadded::new(RwLock::new(None)));
        }
        Ok(Zcache {
            tmem,
            ctxs: ctxs.into_boxed_slice(),
            reclaim_ctx,
            config,
            writeback,
            mounts: RwLock::new(HashMap::new()),
            host_clients: RwLock::new(hashbrown::HashSet::new()),
            swap_client,
            swap: swap.into_boxed_slice(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A compression context: the first free one, starting at the one
    /// [`Config::context_hint`] picks, so a caller keeps using the same context (its
    /// tables stay in that CPU's cache) and concurrent callers spread over the
    /// contexts without a shared counter. Never waits: each context is tried once.
    /// A context is an owned token, not a lock anyone waits on (nobody spins on a busy
    /// one), so holding it across the allocator's `alloc_frame` cannot deadlock, as
    /// zswap holds its per-CPU acomp context across zpool_malloc.
    pub(crate) fn try_ctx(&self) -> Option<TokenGuard<'_, ZCtx>> {
        let n = self.ctxs.len();
        let start = (self.config.context_hint)() % n;
        (0..n).find_map(|i| self.ctxs[(start + i) % n].try_lock_token())
    }

    /// A context for a load: a free one, or else a temporary one built for this call
    /// (more concurrent callers than [`Config::contexts`]: a load must not fail for
    /// that, and must not wait either).
    fn load_ctx(&self) -> Result<CtxRef<'_>, ZcacheError> {
        match self.try_ctx() {
            Some(g) => Ok(CtxRef::Shared(g)),
            None => {
                let c = ZCtx::new(self.tmem.pam().caller_shard(), self.config.compressor)
                    .map_err(ZcacheError::Backend)?;
                let mut v = Vec::new();
                v.try_reserve_exact(1).map_err(|_| ZcacheError::NoMemory)?;
                v.push(c);
                Ok(CtxRef::Temporary(v))
            }
        }
    }

    /// Stores a page through tmem with zcache's policy: compress first (outside every
    /// lock), then file it, reclaiming frames (bounded) when none can be had.
    pub(crate) fn store_page(
        &self,
        pool: &PoolHandle<ZDesc>,
        oid: Oid,
        index: Index,
        page: &Page,
    ) -> Result<StoreOutcome, ZcacheError> {
        let info = pool.info();
        let key = Key {
            pool: info.id,
            oid,
            index,
        };
        let pam = self.tmem.pam();
        let Some(mut g) = self.try_ctx() else {
            // More callers than contexts: refuse rather than wait (a store may fail),
            // and drop any older copy (no stale data).
            let _ = self.tmem.invalidate_page_in(pool, oid, index);
            pam.stats.inc(pam.caller_shard(), C::reject_busy);
            return Err(ZcacheError::Backend(ZError::Busy));
        };
        let ctx = &mut *g;
        if let Err(e) = pam.prepare(ctx, &key, info.kind, page) {
            // Refused before tmem saw it: still drop any older copy (no stale data).
            let _ = self.tmem.invalidate_page_in(pool, oid, index);
            return Err(ZcacheError::Backend(e));
        }
        let budget = self.config.max_reclaim_per_store;
        let mut evicted = 0;
        let mut compacted = false;
        let result = loop {
            match self.tmem.store_in(ctx, pool, oid, index, page) {
                Err(TmemError::Backend(ZError::NoFrame)) => {
                    // Bounded synchronous reclaim: a few ephemeral pages, only when
                    // that can let this store in; the rest is the worker's.
                    if evicted < budget && self.reclaim_for_store(ctx, info.kind, budget - evicted)
                    {
                        evicted += 1;
                        continue;
                    }
                    // The evicted pages left holes but no whole frame (zsmalloc: other
                    // size classes): one bounded compaction step of the ephemeral
                    // pool, then a last try.
                    if evicted > 0 && !compacted && self.compact_for_store() > 0 {
                        compacted = true;
                        continue;
                    }
                    pam.stats.inc(ctx.shard, C::reject_alloc_fail);
                    break Err(ZcacheError::Backend(ZError::NoFrame));
                }
                Err(TmemError::NoMemory) => {
                    pam.stats.inc(ctx.shard, C::reject_no_memory);
                    break Err(ZcacheError::NoMemory);
                }
                Err(e) => break Err(e.into()),
                Ok(o) => {
                    if o == StoreOutcome::Replaced {
                        pam.stats.inc(ctx.shard, C::duplicate_entry);
                    }
                    break Ok(o);
                }
            }
        };
        ctx.clear_prepared();
        result
    }

    /// Loads through tmem, counting hits, misses and corrupt pages.
    pub(crate) fn load_page(
        &self,
        pool: &PoolHandle<ZDesc>,
        oid: Oid,
        index: Index,
        page: &mut Page,
        mode: LoadMode,
    ) -> Result<bool, ZcacheError> {
        let mut c = self.load_ctx()?;
        let ctx = c.get();
        let r = self.tmem.load_from(ctx, pool, oid, index, page, mode);
        let stats = &self.tmem.pam().stats;
        match r {
            Ok(true) => stats.inc(ctx.shard, C::load_hits),
            Ok(false) => stats.inc(ctx.shard, C::load_misses),
            Err(_) => {}
        }
        Ok(r?)
    }

    /// Frames compaction could give back now, both allocators together: exact for
    /// zsmalloc (the kernel's `zs_can_compact`), an upper bound for zbud (half its lone
    /// frames). Takes each allocator lock briefly.
    pub fn compactable_frames(&self) -> usize {
        let pam = self.tmem.pam();
        pam.eph[0].compactable_frames() + pam.pers[0].compactable_frames()
    }

    /// Runs both allocators' compaction; returns frames freed.
    pub fn compact(&self) -> usize {
        let pam = self.tmem.pam();
        pam.eph[0].compact() + pam.pers[0].compact()
    }

    /// A statistics snapshot (no lock is held across the read; figures from different
    /// shards may be a few operations apart).
    pub fn stats(&self) -> Stats {
        let pam = self.tmem.pam();
        let (e, p) = (pam.eph[0].stats(), pam.pers[0].stats());
        let frames = pam.source.held();
        Stats {
            counters: pam.stats.snapshot(),
            pool_frames: frames,
            pool_frames_peak: pam.source.peak(),
            pool_total_size: frames as u64 * zpool::PAGE_SIZE as u64,
            eph_frames: e.frames,
            pers_frames: p.frames,
            eph_zpages: e.objects,
            pers_zpages: p.objects,
            pool_limit_hit: pam.source.limit_hits(),
            host_alloc_fail: pam.source.host_failures(),
            limit_full: pam.source.is_full(),
            eph_lru_len: pam.eph_lru.len(),
            pers_lru_len: pam.pers_lru.len(),
        }
    }

    /// Pages currently stored (a cheap read of one gauge).
    pub fn stored_pages(&self) -> i64 {
        self.tmem.pam().stats.get(C::stored_pages)
    }

    /// Restarts the peak-frames measurement from the current count.
    pub fn reset_peak(&self) {
        self.tmem.pam().source.reset_peak();
    }

    /// Heap bytes of metadata outside the pool frames: tmem's trees, buckets and object
    /// maps for every pool, the allocators' handle tables and frame descriptors, and the
    /// fill-word table. (Compression contexts are a fixed cost, not per page, and are
    /// not included.)
    pub fn metadata_bytes(&self) -> usize {
        self.metadata_parts().total()
    }

    /// [`Zcache::metadata_bytes`] by part: where each byte of metadata goes.
    pub fn metadata_parts(&self) -> MetadataParts {
        let pam = self.tmem.pam();
        let tmem = self.tmem.total_counts();
        let mut p = MetadataParts {
            tree_nodes: tmem.node_bytes as usize,
            object_maps: (tmem.metadata_bytes - tmem.node_bytes) as usize,
            rings: pam.eph_lru.metadata_bytes() + pam.pers_lru.metadata_bytes(),
            fill_table: pam.fill_table_bytes(),
            ..MetadataParts::default()
        };
        pam.eph[0].metadata_into(&mut p);
        pam.pers[0].metadata_into(&mut p);
        p
    }

    /// The pool description of a pool id.
    pub fn pool_info(&self, pool: PoolId) -> Result<PoolInfo, ZcacheError> {
        Ok(self.tmem.pool_info(pool)?)
    }
}

/// Where zcache's metadata bytes go ([`Zcache::metadata_parts`]): everything outside the
/// pool frames, by the structure that holds it. [`MetadataParts::total`] is
/// [`Zcache::metadata_bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataParts {
    /// tmem's tree nodes: the leaves, which hold the page descriptors, and interior
    /// nodes.
    pub tree_nodes: usize,
    /// tmem's pools, buckets and their object maps (an entry per object).
    pub object_maps: usize,
    /// zsmalloc's handle tables (of both allocators, where they are zsmalloc).
    pub handle_tables: usize,
    /// zsmalloc's zspage frames (its classes' frame tables; 4 bytes a frame).
    pub frame_lists: usize,
    /// zsmalloc's zspage descriptors, slot bitmaps and fixed part (pool, classes).
    pub zspages: usize,
    /// zbud's metadata: frame descriptors, handle entries and fixed part.
    pub zbud: usize,
    /// The two reclaim rings (one byte per object, and their tables).
    pub rings: usize,
    /// The fill-word table of same-filled pages.
    pub fill_table: usize,
}

impl MetadataParts {
    /// The sum of the parts.
    pub fn total(&self) -> usize {
        self.tree_nodes
            + self.object_maps
            + self.handle_tables
            + self.frame_lists
            + self.zspages
            + self.zbud
            + self.rings
            + self.fill_table
    }
}

/// A context held for one call: one of the shared ones, or a temporary one.
enum CtxRef<'a> {
    Shared(TokenGuard<'a, ZCtx>),
    Temporary(Vec<ZCtx>),
}

impl CtxRef<'_> {
    fn get(&mut self) -> &mut ZCtx {
        match self {
            CtxRef::Shared(g) => g,
            CtxRef::Temporary(v) => &mut v[0],
        }
    }
}
