//! zcache's tmem backend: compression, allocation, same-filled pages, checksummed
//! objects.

use alloc::boxed::Box;
use alloc::vec::Vec;
use hashbrown::HashMap;
use zplat::TryArc;

use tmem_core::{Key, LoadStep, PamOps, PoolInfo, PoolKind};
use zcomp::{AnyCompressor, Compressor, MAX_COMPRESSED_LEN, StorePolicy, Verdict};
use zpool::{PAGE_SIZE, Page, ZPool, ZPoolError};

use crate::allocator::Allocator;
use crate::desc::{DescKind, ZDesc};
use crate::header::{self, MAX_HEADER};
use crate::lru::{Lru, Removed};
use crate::source::LimitedSource;
use crate::stats::{C, Shards};
use crate::sync::Mutex;

/// Why zcache's backend refused or failed an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZError {
    /// No frame could be had (frame limit or the host's page source). The front end
    /// reclaims and retries.
    NoFrame,
    /// The page compressed to more than the hard limit.
    CompressPoor,
    /// The page compressed to more than the mean limit while the running mean was over
    /// it too.
    MeanCompressPoor,
    /// The object is larger than the allocator stores.
    TooLarge,
    /// Metadata memory (fill table, compressor tables) could not be allocated.
    NoMemory,
    /// The stored bytes failed their checksum or did not decompress to a page.
    Corrupt,
    /// A compressor for the object's algorithm is not available in this build.
    Unavailable,
    /// The allocator rejected a handle (never expected: a descriptor outlived its
    /// object).
    BadHandle,
    /// Every compression context was busy: more callers at once than
    /// [`crate::Config::contexts`]. A store refuses rather than wait.
    Busy,
}

impl core::fmt::Display for ZError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ZError::NoFrame => "no page frame available",
            ZError::CompressPoor => "page compresses poorly",
            ZError::MeanCompressPoor => "page compresses poorly and so does the running mean",
            ZError::TooLarge => "compressed page too large for the allocator",
            ZError::NoMemory => "out of metadata memory",
            ZError::Corrupt => "stored page is corrupt",
            ZError::Unavailable => "compression algorithm unavailable",
            ZError::BadHandle => "allocator rejected a handle",
            ZError::Busy => "every compression context is busy",
        })
    }
}

/// Longest object (header and compressed bytes) zcache stores: less than a page, or
/// storing it would save nothing.
const MAX_OBJECT_LEN: usize = PAGE_SIZE - 1;

/// Size of the object buffers in a context.
pub(crate) const OBJ_BUF: usize = MAX_HEADER + MAX_COMPRESSED_LEN;

enum Prepared {
    Same(u64),
    Object { start: usize, end: usize },
}

enum Staged {
    Nothing,
    Object { len: usize },
}

/// Scratch space for eviction and writeback, separate from the store path's buffers
/// (a store evicts while its own prepared object waits in `obj`).
pub(crate) struct EvictScratch {
    pub(crate) obj: Box<[u8]>,
    pub(crate) page: Box<Page>,
}

/// A compression context, like the kernel's per-CPU crypto contexts: compressor
/// instances (their tables), scratch buffers, and a statistics shard. Owned by one
/// caller at a time.
pub struct ZCtx {
    pub(crate) shard: usize,
    comps: [Option<AnyCompressor>; 5],
    obj: Box<[u8]>,
    prep: Option<(Key, Prepared)>,
    load: Box<[u8]>,
    staged: Staged,
    pub(crate) evict: EvictScratch,
}

fn try_boxed_zeroed(n: usize) -> Result<Box<[u8]>, ZError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| ZError::NoMemory)?;
    v.resize(n, 0);
    Ok(v.into_boxed_slice())
}

impl ZCtx {
    pub(crate) fn new(shard: usize, default: zcomp::Algorithm) -> Result<Self, ZError> {
        let page: Box<[u8]> = try_boxed_zeroed(PAGE_SIZE)?;
        let page: Box<Page> = page.try_into().map_err(|_| ZError::NoMemory)?;
        let mut c = ZCtx {
            shard,
            comps: [None, None, None, None, None],
            obj: try_boxed_zeroed(OBJ_BUF)?,
            prep: None,
            load: try_boxed_zeroed(PAGE_SIZE)?,
            staged: Staged::Nothing,
            evict: EvictScratch {
                obj: try_boxed_zeroed(PAGE_SIZE)?,
                page,
            },
        };
        c.compressor(default.id())?;
        Ok(c)
    }

    /// The context's compressor for algorithm `id`, created on first use.
    pub(crate) fn compressor(&mut self, id: u8) -> Result<&mut AnyCompressor, ZError> {
        compressor_in(&mut self.comps, id)
    }

    pub(crate) fn clear_prepared(&mut self) {
        self.prep = None;
    }

    /// Splits out what eviction needs: compressors and the eviction scratch.
    pub(crate) fn evict_parts(&mut self) -> (&mut [Option<AnyCompressor>; 5], &mut EvictScratch) {
        (&mut self.comps, &mut self.evict)
    }
}

pub(crate) fn compressor_in(
    comps: &mut [Option<AnyCompressor>; 5],
    id: u8,
) -> Result<&mut AnyCompressor, ZError> {
    let alg = zcomp::Algorithm::from_id(id).ok_or(ZError::Corrupt)?;
    let slot = comps.get_mut(usize::from(id)).ok_or(ZError::Corrupt)?;
    if slot.is_none() {
        *slot = Some(AnyCompressor::new(alg).map_err(|e| match e {
            zcomp::CompressorInitError::Unavailable(_) => ZError::Unavailable,
            _ => ZError::NoMemory,
        })?);
    }
    slot.as_mut().ok_or(ZError::NoMemory)
}

/// Same-filled words that are not one repeated byte (rare: < 1% of same-filled swap
/// pages), interned with reference counts so a descriptor holds a 32-bit index.
#[derive(Default)]
struct FillTable {
    index: HashMap<u64, u32>,
    words: Vec<(u64, u32)>,
    free: Vec<u32>,
}

impl FillTable {
    fn get(&mut self, word: u64) -> Result<u32, ZError> {
        if let Some(&i) = self.index.get(&word) {
            self.words[i as usize].1 += 1;
            return Ok(i);
        }
        self.index.try_reserve(1).map_err(|_| ZError::NoMemory)?;
        let i = match self.free.pop() {
            Some(i) => {
                self.words[i as usize] = (word, 1);
                i
            }
            None => {
                self.words.try_reserve(1).map_err(|_| ZError::NoMemory)?;
                // Room for every entry, this one included, on the free list, so that
                // `put` never allocates: it runs on invalidate and teardown paths that
                // cannot fail. (Reserving one more at each creation was not enough: the
                // list can grow past it when many entries are freed.)
                let room = self.words.len() + 1 - self.free.len();
                self.free.try_reserve(room).map_err(|_| ZError::NoMemory)?;
                let i = u32::try_from(self.words.len()).map_err(|_| ZError::NoMemory)?;
                self.words.push((word, 1));
                i
            }
        };
        self.index.insert(word, i);
        Ok(i)
    }

    fn word(&self, i: u32) -> Option<u64> {
        self.words
            .get(i as usize)
            .filter(|(_, r)| *r > 0)
            .map(|(w, _)| *w)
    }

    fn put(&mut self, i: u32) {
        if let Some(e) = self.words.get_mut(i as usize)
            && e.1 > 0
        {
            e.1 -= 1;
            if e.1 == 0 {
                self.index.remove(&e.0);
                // `free` has room for every entry (reserved in `get`): no allocation.
                debug_assert!(self.free.len() < self.free.capacity());
                self.free.push(i);
            }
        }
    }

    fn bytes(&self) -> usize {
        self.index.capacity() * 13 + self.words.capacity() * 16 + self.free.capacity() * 4
    }
}

/// zcache's [`PamOps`] implementation.
pub struct ZPam {
    pub(crate) source: TryArc<LimitedSource>,
    pub(crate) eph: Box<[Allocator; 1]>,
    pub(crate) pers: Box<[Allocator; 1]>,
    /// The reclaim ring of each pool kind's compressed pages (zcache's, not the
    /// allocators'), a byte per object at its allocator id.
    pub(crate) eph_lru: Lru,
    pub(crate) pers_lru: Lru,
    fill: Mutex<FillTable>,
    pub(crate) stats: Shards,
    pub(crate) algorithm: zcomp::Algorithm,
    pub(crate) policy: StorePolicy,
    in_place: bool,
    /// The caller hint ([`crate::Config::context_hint`]) and the number of contexts:
    /// a path without a context of its own (invalidate, a free after a replace, a busy
    /// store) counts in the shard of the context the caller would try first.
    hint: fn() -> usize,
    contexts: usize,
}

impl ZPam {
    pub(crate) fn new(
        source: TryArc<LimitedSource>,
        (eph, pers): (Box<[Allocator; 1]>, Box<[Allocator; 1]>),
        // The counters, and how a caller's shard is picked: `Config::context_hint`, the
        // number of contexts.
        (stats, hint, contexts): (Shards, fn() -> usize, usize),
        algorithm: zcomp::Algorithm,
        policy: StorePolicy,
        in_place: bool,
        lrus: (Lru, Lru),
    ) -> Self {
        ZPam {
            source,
            eph,
            pers,
            eph_lru: lrus.0,
            pers_lru: lrus.1,
            fill: Mutex::new(FillTable::default()),
            stats,
            algorithm,
            policy,
            in_place,
            hint,
            contexts: contexts.max(1),
        }
    }

    /// The statistics shard of the calling CPU or thread: the shard of the context it
    /// tries first (`Zcache::try_ctx` starts at the same index).
    #[inline]
    pub(crate) fn caller_shard(&self) -> usize {
        (self.hint)() % self.contexts
    }

    pub(crate) fn pool(&self, persistent: bool) -> &Allocator {
        if persistent {
            &self.pers[0]
        } else {
            &self.eph[0]
        }
    }

    pub(crate) fn lru(&self, persistent: bool) -> &Lru {
        if persistent {
            &self.pers_lru
        } else {
            &self.eph_lru
        }
    }

    /// Frees an allocator object whose descriptor was freed and whose node the ring
    /// no longer holds (the ring answered `Free`, or a reclaimer's `finish` found it
    /// dead), and counts its bytes out (the allocator gives the length back: the
    /// descriptor has none); a refused free is counted.
    pub(crate) fn free_object(&self, shard: usize, persistent: bool, handle: zpool::Handle) {
        match self.pool(persistent).free_len(handle) {
            Ok(len) => {
                self.stats.add(shard, C::zbytes, -(len as i64));
                if persistent {
                    self.stats.add(shard, C::pers_zpages, -1);
                    self.stats.add(shard, C::pers_zbytes, -(len as i64));
                }
            }
            Err(_) => self.stats.inc(shard, C::free_errors),
        }
    }

    /// Ends a reclaimer's hold on `id`, whose object's handle it looked up when it took
    /// the node, freeing the object if its descriptor was freed meanwhile (see
    /// `lru.rs`: the object outlives its descriptor while isolated).
    pub(crate) fn finish_isolated(
        &self,
        shard: usize,
        persistent: bool,
        id: u32,
        handle: Option<zpool::Handle>,
    ) {
        if self.lru(persistent).finish(id)
            && let Some(h) = handle
        {
            self.free_object(shard, persistent, h);
        }
    }

    pub(crate) fn fill_table_bytes(&self) -> usize {
        self.fill.lock().bytes()
    }

    /// Same-filled detection, compression and policy, before any tmem lock: leaves the
    /// object (header + compressed bytes) ready in the context.
    pub(crate) fn prepare(
        &self,
        ctx: &mut ZCtx,
        key: &Key,
        kind: PoolKind,
        page: &Page,
    ) -> Result<(), ZError> {
        ctx.prep = None;
        if let Some(word) = zcomp::same_filled(page) {
            ctx.prep = Some((*key, Prepared::Same(word)));
            return Ok(());
        }
        let alg = self.algorithm.id();
        let mut head = [0u8; MAX_HEADER];
        let hlen = header::encode_key(&mut head, alg, key);
        let start = MAX_HEADER - hlen;
        let clen = {
            let (comps, obj) = (&mut ctx.comps, &mut ctx.obj);
            let c = compressor_in(comps, alg)?;
            c.compress(page, &mut obj[MAX_HEADER..])
                .map_err(|_| ZError::CompressPoor)?
        };
        // zcache2's rule: the mean is that of the persistent pages stored now (summed
        // from the shards only for the few pages over the mean limit).
        let mean = if kind == PoolKind::Persistent && clen > self.policy.mean_max_len {
            self.pers_mean()
        } else {
            0
        };
        match self.policy.verdict(clen, mean) {
            Verdict::Store => {}
            Verdict::RejectPoor => {
                self.stats.inc(ctx.shard, C::reject_compress_poor);
                return Err(ZError::CompressPoor);
            }
            Verdict::RejectMeanPoor => {
                self.stats.inc(ctx.shard, C::reject_mean_compress_poor);
                return Err(ZError::MeanCompressPoor);
            }
        }
        let end = MAX_HEADER + clen;
        if end - start > MAX_OBJECT_LEN {
            self.stats.inc(ctx.shard, C::reject_compress_poor);
            return Err(ZError::TooLarge);
        }
        ctx.obj[start..MAX_HEADER].copy_from_slice(&head[..hlen]);
        let sum = header::checksum(&ctx.obj[start + 4..end]);
        ctx.obj[start..start + 4].copy_from_slice(&sum.to_le_bytes());
        ctx.prep = Some((*key, Prepared::Object { start, end }));
        Ok(())
    }

    /// Mean compressed size of the persistent objects stored now (0 when none is).
    fn pers_mean(&self) -> usize {
        let n = self.stats.get(C::pers_zpages);
        if n <= 0 {
            return 0;
        }
        (self.stats.get(C::pers_zbytes).max(0) / n) as usize
    }

    fn word_of(&self, kind: DescKind) -> Option<u64> {
        match kind {
            DescKind::SameByte(b) => Some(u64::from_ne_bytes([b; 8])),
            DescKind::SameWord(i) => self.fill.lock().word(i),
            DescKind::Object(_) => None,
        }
    }

    /// Under the bucket lock (keeping loads) or with the descriptor already out of tmem
    /// (exclusive loads): same-filled pages are filled at once; objects are decompressed
    /// straight from the allocator's memory when [`crate::Config::decompress_in_place`]
    /// is set, else copied into the context for [`ZPam::finish`].
    fn stage(
        &self,
        ctx: &mut ZCtx,
        info: &PoolInfo,
        desc: &ZDesc,
        page: &mut Page,
    ) -> Result<LoadStep, ZError> {
        ctx.staged = Staged::Nothing;
        let kind = desc.kind();
        let DescKind::Object(handle) = kind else {
            zcomp::fill_page(page, self.word_of(kind).ok_or(ZError::Corrupt)?);
            return Ok(LoadStep::Done);
        };
        // The pool's kind names the allocator (the descriptor does not).
        let persistent = info.kind == PoolKind::Persistent;
        let pool = self.pool(persistent);
        // Second chance: the hand passes a referenced page once before it takes it.
        if let Some(id) = pool.object_id(handle) {
            self.lru(persistent).mark(id);
        }
        if self.in_place {
            let (comps, bounce) = (&mut ctx.comps, &mut ctx.load);
            let mut r = Err(ZError::Corrupt);
            pool.map_read(handle, bounce, &mut |object| {
                r = decode_object(comps, object, page).map(|_| ());
            })
            .map_err(|_| ZError::BadHandle)?;
            if r.is_err() {
                self.stats.inc(ctx.shard, C::load_corrupt);
            }
            return r.map(|()| LoadStep::Done);
        }
        let len = pool
            .read(handle, &mut ctx.load)
            .map_err(|_| ZError::BadHandle)?;
        ctx.staged = Staged::Object { len };
        Ok(LoadStep::Finish)
    }

    fn finish(&self, ctx: &mut ZCtx, page: &mut Page) -> Result<(), ZError> {
        match core::mem::replace(&mut ctx.staged, Staged::Nothing) {
            Staged::Nothing => Err(ZError::Corrupt),
            Staged::Object { len } => {
                let r = decode_object(&mut ctx.comps, &ctx.load[..len], page);
                if r.is_err() {
                    self.stats.inc(ctx.shard, C::load_corrupt);
                }
                r.map(|_| ())
            }
        }
    }
}

/// Verifies and decompresses one stored object into `page`; returns its header.
pub(crate) fn decode_object(
    comps: &mut [Option<AnyCompressor>; 5],
    object: &[u8],
    page: &mut Page,
) -> Result<header::Header, ZError> {
    let h = header::decode(object).ok_or(ZError::Corrupt)?;
    let c = compressor_in(comps, h.alg)?;
    c.decompress(&object[h.len..], page)
        .map_err(|_| ZError::Corrupt)?;
    Ok(h)
}

impl PamOps for ZPam {
    type Desc = ZDesc;
    type Ctx = ZCtx;
    type Error = ZError;

    fn create(
        &self,
        ctx: &mut ZCtx,
        key: &Key,
        pool: &PoolInfo,
        page: &Page,
    ) -> Result<ZDesc, ZError> {
        if !matches!(&ctx.prep, Some((k, _)) if k == key) {
            self.prepare(ctx, key, pool.kind, page)?;
        }
        let persistent = pool.kind == PoolKind::Persistent;
        match &ctx.prep {
            Some((_, Prepared::Same(word))) => {
                let bytes = word.to_ne_bytes();
                let d = if bytes.iter().all(|b| *b == bytes[0]) {
                    ZDesc::same_byte(bytes[0])
                } else {
                    ZDesc::same_word(self.fill.lock().get(*word)?)
                };
                self.stats.inc(ctx.shard, C::stored_pages);
                self.stats.inc(ctx.shard, C::same_filled_pages);
                Ok(d)
            }
            Some((_, Prepared::Object { start, end })) => {
                let (start, end) = (*start, *end);
                let zp = self.pool(persistent);
                let handle = zp.store(&ctx.obj[start..end]).map_err(|e| match e {
                    ZPoolError::NoMemory => ZError::NoFrame,
                    ZPoolError::TooLarge { .. } => ZError::TooLarge,
                    _ => ZError::BadHandle,
                })?;
                let linked = zp
                    .object_id(handle)
                    .map(|id| (id, self.lru(persistent).insert(id)));
                let Some((id, Ok(()))) = linked else {
                    let _ = zp.free(handle);
                    return Err(ZError::NoMemory);
                };
                match ZDesc::object(handle) {
                    Some(d) => {
                        self.stats.inc(ctx.shard, C::stored_pages);
                        self.stats.add(ctx.shard, C::zbytes, (end - start) as i64);
                        if persistent {
                            self.stats.inc(ctx.shard, C::pers_zpages);
                            self.stats
                                .add(ctx.shard, C::pers_zbytes, (end - start) as i64);
                        }
                        Ok(d)
                    }
                    None => {
                        // Not reached: both allocators' handles fit a descriptor.
                        self.lru(persistent).remove(id);
                        let _ = zp.free(handle);
                        Err(ZError::Corrupt)
                    }
                }
            }
            None => Err(ZError::Corrupt),
        }
    }

    fn load_stage(
        &self,
        ctx: &mut ZCtx,
        pool: &PoolInfo,
        desc: &ZDesc,
        page: &mut Page,
    ) -> Result<LoadStep, ZError> {
        self.stage(ctx, pool, desc, page)
    }

    fn load_finish(&self, ctx: &mut ZCtx, page: &mut Page) -> Result<(), ZError> {
        self.finish(ctx, page)
    }

    fn load_and_free(
        &self,
        ctx: &mut ZCtx,
        pool: &PoolInfo,
        desc: ZDesc,
        page: &mut Page,
    ) -> Result<(), ZError> {
        // The descriptor is ours alone now: in place, only the allocator's lock is
        // held while decompressing.
        let staged = self.stage(ctx, pool, &desc, page);
        self.free(pool, desc);
        match staged? {
            LoadStep::Done => Ok(()),
            LoadStep::Finish => self.finish(ctx, page),
        }
    }

    fn free(&self, pool: &PoolInfo, desc: ZDesc) {
        // The caller's shard (not one derived from the descriptor, which spread one
        // CPU's frees over every shard's cache line).
        let shard = self.caller_shard();
        self.stats.add(shard, C::stored_pages, -1);
        match desc.kind() {
            DescKind::Object(handle) => {
                let persistent = pool.kind == PoolKind::Persistent;
                // The ring first: a node a reclaimer holds keeps its object (and so its
                // id and handle) until the reclaimer's `finish`, which frees it. The
                // object's bytes are counted out by whoever frees it.
                let removed = match self.pool(persistent).object_id(handle) {
                    Some(id) => self.lru(persistent).remove(id),
                    None => Removed::Unknown,
                };
                if removed != Removed::Deferred {
                    self.free_object(shard, persistent, handle);
                }
            }
            DescKind::SameByte(_) => self.stats.add(shard, C::same_filled_pages, -1),
            DescKind::SameWord(i) => {
                self.stats.add(shard, C::same_filled_pages, -1);
                self.fill.lock().put(i);
            }
        }
    }
}
