//! `zbud`: at most two compressed objects ("buddies") per page frame (the build's
//! [`PAGE_SIZE`]: 4, 16 or 64 KiB).
//!
//! * Frames are cut into [`NCHUNKS`] = 64 chunks of [`CHUNK_SIZE`] = `PAGE_SIZE / 64`
//!   bytes (64 at 4 KiB, 256 at 16 KiB, 1024 at 64 KiB: Linux zbud's `CHUNK_SHIFT =
//!   PAGE_SHIFT - NCHUNKS_ORDER`). All metadata lives outside the frames, so the whole
//!   frame is usable: the largest object is [`MAX_OBJECT`] = `PAGE_SIZE` bytes (64
//!   chunks, a frame of its own). The first buddy sits
//!   at offset 0, the last buddy is right-justified to the end of the frame, so the free
//!   space of a frame with one object is one contiguous run in the middle.
//! * Frames holding one object ("lone" frames) sit on unbuddied lists indexed by free
//!   chunks. A new object of `c` chunks takes the lone frame with the fewest free chunks
//!   that is still `>= c` (best fit, Linux `mm/zbud` order), so a well-compressed object
//!   fills the hole a poorly compressed one left; there is no 2:1 requirement. Without a
//!   fit, the object gets a fresh frame as its first buddy.
//! * No eviction: zbud allocates, the cache above decides what to evict (zcache keeps its
//!   own page LRU), so frames keep no LRU order.
//! * Compaction ([`ZPool::compact`], or bounded [`ZPool::compact_step`]s) re-pairs
//!   objects towards an optimal pairing (largest first, each with the largest object
//!   that fits beside it), moving objects between frames; handles stay valid because
//!   they go through an indirection table. Every lock hold of it does bounded work
//!   (`compact.rs`): a 64-frame slice of the snapshot, 512 planning steps, 8 pairs or
//!   8 moves.
//!
//! Metadata, all out of band and fallibly grown: 24 bytes per frame descriptor and 8
//! bytes per handle entry (see `PoolStats::metadata_bytes`). Each handle entry has its
//! own generation (22 bits at 4 KiB pages, 20 at 16 KiB, 18 at 64 KiB: a handle is
//! [`HANDLE_BITS`] wide, 59 - `PAGE_SHIFT`), moved on at every free, and the handle
//! carries it: a stale or double-freed handle is an error unless its entry has been
//! freed a multiple of 2^22 (4,194,304; 2^20, 2^18 at the larger pages) times since and
//! is live again, a forged one unless it equals a live
//! object's handle. Sharding changes none of that: the shard is part of the entry's
//! index in the handle. The entry's length field is `PAGE_SHIFT + 1` bits (13, 15, 17)
//! and its frame index `36 - PAGE_SHIFT` bits (24, 22, 20), so an entry stays 62 bits and
//! a shard holds 64 GiB of frames at every page size.
//!
//! Shards: a pool is `K` independent shards ([`ZBud::with_shards`]; [`ZBud::new`] takes
//! [`DEFAULT_SHARDS`] = 4; `K` is a power of two up to [`MAX_SHARDS`]), each with its own
//! lock, frame descriptors, unbuddied lists, handle table and compaction round. Objects
//! of different shards never share a frame. The handle's 25-bit entry index is
//! `local << log2(K) | shard`. Limits, per shard: [`MAX_FRAMES`] frames (64 GiB) and
//! `2^(25 - log2 K) - 2` handle entries (K = 4: 8 388 606 objects), so a pool holds at
//! most [`MAX_HANDLES`] objects in all; a store moves on to another shard when one is
//! full, and fails with `NoMemory` only when every shard is.
//!
//! Locking: one spin lock per shard; no operation holds two. A store (malloc) picks its
//! shard by `try_lock`, starting at shard 0 (so a pool used by one thread keeps every
//! object in shard 0 and packs exactly as one unsharded pool), or at shard `hint() % K`
//! for a pool made by [`ZBud::with_shard_hint`] (the caller's CPU or thread number),
//! then the next shards in order; after one round of busy shards it waits for the start
//! shard. `free`, `read`, `write`, `object_len` and `map_read` lock the handle's shard
//! only. Compaction steps go round the shards, one shard's round after the other, every
//! hold bounded as before. `stats`, `total_frames` and [`ZBud::zbud_stats`] sum the
//! shards one lock at a time (exact when no other thread changes the pool meanwhile).
//! Starting at shard 0 keeps a single thread's density, but two threads whose work is
//! mostly the allocator still meet on shard 0 (measured: no better than one lock); a
//! hint gives each its own shard (docs/performance.md). The page source is never called
//! under a lock: a fresh frame is taken with no lock held (and given back after
//! unlocking if no shard's metadata can grow); frames given back by `free` and
//! compaction are returned after the lock is released. Object bytes are copied under
//! the shard's lock.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod compact;
mod meta;
use zplat::sync;

use alloc::vec::Vec;

use meta::{Desc, Entry, FRAME_BITS, GEN_BITS, GEN_MASK, HIDX_BITS, HNIL, NIL};
use sync::{AtomicUsize, Mutex, MutexGuard};
use zpool::{Frame, Handle, PageSource, PoolStats, ZPool, ZPoolError};

pub use zpool::PAGE_SIZE;

pub use compact::{MOVES_PER_HOLD, PAIRS_PER_HOLD, PLAN_UNITS, SNAP_FRAMES};

/// log2 of [`NCHUNKS`] (Linux zbud's `NCHUNKS_ORDER`).
pub const NCHUNKS_ORDER: u32 = 6;
/// log2 of [`CHUNK_SIZE`]: `PAGE_SHIFT - NCHUNKS_ORDER` (6, 8, 10 at 4, 16, 64 KiB).
pub const CHUNK_SHIFT: u32 = zplat::PAGE_SHIFT - NCHUNKS_ORDER;
/// Bytes per chunk: objects are placed in whole chunks. `PAGE_SIZE / 64`: 64 bytes at
/// 4 KiB, 256 at 16 KiB, 1024 at 64 KiB. (Finer chunks at larger pages would grow the
/// per-shard list heads, the 64-bit list mask and compaction's per-hold work with
/// `NCHUNKS`; `benches/density.rs` prints what they would save.)
pub const CHUNK_SIZE: usize = 1 << CHUNK_SHIFT;
/// Chunks per frame (all usable: metadata is out of band): 64 at every page size.
pub const NCHUNKS: usize = PAGE_SIZE / CHUNK_SIZE;
/// The largest object: a whole frame (`PAGE_SIZE` bytes), which then holds no buddy.
pub const MAX_OBJECT: usize = PAGE_SIZE;
/// Most frames one shard holds (frame indexes are `36 - PAGE_SHIFT` bits: 24, 22, 20
/// at 4, 16, 64 KiB): 16 777 214, 4 194 302 or 1 048 574 frames, 64 GiB at each size.
/// A pool of one shard holds at most this many.
pub const MAX_FRAMES: usize = NIL as usize - 1;
/// Most handle entries (live objects) one pool holds, all shards together (25-bit
/// indexes). Each of a pool's `K` shards holds at most `(MAX_HANDLES + 2) / K - 2`.
pub const MAX_HANDLES: usize = HNIL as usize - 1;
/// Bits a handle of this allocator may use: 47, 45, 43 at 4, 16, 64 KiB pages (a 25-bit
/// entry index and the generation), so zcache's six-byte page descriptor holds it
/// beside a kind bit.
pub const HANDLE_BITS: u32 = HIDX_BITS + GEN_BITS;
/// Shards of a pool made by [`ZBud::new`].
pub const DEFAULT_SHARDS: usize = 4;
/// Most shards one pool has (6 of the handle's 25 index bits).
pub const MAX_SHARDS: usize = 64;

const _: () = assert!(NCHUNKS == 64 && CHUNK_SIZE * NCHUNKS == PAGE_SIZE);
const _: () = assert!(PAGE_SIZE <= meta::MAX_LEN);

/// Chunks an object of `len` bytes occupies.
pub const fn chunks_for(len: usize) -> usize {
    len.div_ceil(CHUNK_SIZE)
}

/// Offset of an object of `len` bytes on `side` (0 first, 1 last) of its frame.
const fn offset_of(side: usize, len: usize) -> usize {
    if side == 0 {
        0
    } else {
        PAGE_SIZE - chunks_for(len) * CHUNK_SIZE
    }
}

/// Which end of its frame an object sits at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buddy {
    /// At offset 0.
    First,
    /// Right-justified to the end of the frame.
    Last,
}

/// Where an object lives (diagnostics and layout tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The shard holding the object.
    pub shard: usize,
    /// Index of the frame's descriptor (in its shard).
    pub frame_index: usize,
    /// Address of the frame.
    pub frame_addr: usize,
    /// Which buddy the object is.
    pub buddy: Buddy,
    /// Byte offset of the object in its frame.
    pub offset: usize,
    /// Object length in bytes.
    pub len: usize,
}

/// zbud's own counters (a superset of [`PoolStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZBudStats {
    /// Frames held from the page source.
    pub frames: usize,
    /// Live objects.
    pub objects: usize,
    /// Sum of the live objects' lengths.
    pub bytes: usize,
    /// Frames holding exactly one object.
    pub lone_frames: usize,
    /// Frames holding two objects.
    pub buddied_frames: usize,
    /// Frames given back by compaction since creation.
    pub compacted_frames: u64,
    /// Heap bytes of frame descriptors (capacity x 24).
    pub descriptor_bytes: usize,
    /// Heap bytes of the handle table (capacity x 8).
    pub handle_bytes: usize,
}

struct Inner {
    /// Most handle entries this shard may hold (its share of the handle's index bits).
    max_entries: usize,
    descs: Vec<Desc>,
    free_desc: u32,
    entries: Vec<Entry>,
    free_entry: u32,
    /// Unbuddied lists, indexed by free chunks (1..NCHUNKS; index 0 unused).
    ub_head: [u32; NCHUNKS],
    /// Bit k set iff `ub_head[k]` is non-empty.
    ub_mask: u64,
    frames: usize,
    objects: usize,
    bytes: usize,
    lone: usize,
    compacted_frames: u64,
    /// The compaction round in progress (its phase and temporary tables).
    compaction: compact::Compaction,
}

/// Makes room for at least one more element, growing by an eighth (at least 64
/// elements) rather than doubling: metadata stays within about 12% of what is used, and
/// the copies stay amortised O(1) per element.
fn grow<T>(v: &mut Vec<T>) -> Result<(), ZPoolError> {
    if v.len() < v.capacity() {
        return Ok(());
    }
    let extra = (v.len() / 8).max(64);
    v.try_reserve_exact(extra)
        .or_else(|_| v.try_reserve_exact(1))
        .map_err(|_| ZPoolError::NoMemory)
}

/// A valid handle value, the fallback of `encode` (never used: see there).
const FALLBACK: Handle = match Handle::from_raw(1) {
    Some(h) => h,
    None => panic!("1 is a valid handle"),
};

/// The handle of entry `local` of shard `shard` (of `1 << shift` shards).
fn encode(shard: usize, shift: u32, local: u32, generation: u64) -> Handle {
    // `local < (2^25 >> shift) - 2` (the shard's `max_entries`) and `shard < 1 << shift`,
    // so the entry index is below 2^25 - 1, `raw < 2^48` and non-zero: `from_raw` always
    // succeeds.
    let index = (u64::from(local) << shift) | shard as u64;
    let raw = ((index + 1) << GEN_BITS) | (generation & GEN_MASK);
    Handle::from_raw(raw).unwrap_or(FALLBACK)
}

/// Handle entries one shard of `1 << shift` may hold: the local indexes whose entry
/// index `local << shift | shard` stays below `HNIL - 1` for every shard (K = 1: 2^25 -
/// 2, [`MAX_HANDLES`], as before shards).
const fn shard_entries(shift: u32) -> usize {
    (1usize << (HIDX_BITS - shift)) - 2
}

impl Inner {
    fn new(max_entries: usize) -> Inner {
        Inner {
            max_entries,
            descs: Vec::new(),
            free_desc: NIL,
            entries: Vec::new(),
            free_entry: HNIL,
            ub_head: [NIL; NCHUNKS],
            ub_mask: 0,
            frames: 0,
            objects: 0,
            bytes: 0,
            lone: 0,
            compacted_frames: 0,
            compaction: compact::Compaction::default(),
        }
    }

    fn d(&self, f: u32) -> &Desc {
        &self.descs[f as usize]
    }

    fn dm(&mut self, f: u32) -> &mut Desc {
        &mut self.descs[f as usize]
    }

    /// Validates a handle's local part: index in range, entry live, generation equal.
    fn decode(&self, k: Key) -> Result<Entry, ZPoolError> {
        let e = *self
            .entries
            .get(k.local as usize)
            .ok_or(ZPoolError::InvalidHandle)?;
        if !e.is_live() || e.generation() != k.generation {
            return Err(ZPoolError::InvalidHandle);
        }
        Ok(e)
    }

    /// Whether an object of `chunks` can be placed here without exceeding the shard's
    /// limits: a handle entry, and a descriptor too unless a lone frame fits it.
    fn has_room(&self, chunks: Option<usize>) -> bool {
        let entry = self.free_entry != HNIL || self.entries.len() < self.max_entries;
        let fits = chunks.is_some_and(|c| self.find_fit(c).is_some());
        entry && (fits || self.free_desc != NIL || self.descs.len() < MAX_FRAMES)
    }

    fn entry(&self, i: u32) -> Entry {
        self.entries[i as usize]
    }

    /// Free chunks of a lone frame (0 for a frame holding a whole-frame object).
    fn lone_free(&self, f: u32) -> Option<usize> {
        let d = self.d(f);
        let side = d.lone_side()?;
        Some(NCHUNKS - chunks_for(self.entry(d.rev(side)).len()))
    }

    /// Makes sure one handle entry (and, with `desc`, one descriptor) can be taken
    /// without allocating.
    fn reserve(&mut self, desc: bool) -> Result<(), ZPoolError> {
        if self.free_entry == HNIL {
            if self.entries.len() >= self.max_entries {
                return Err(ZPoolError::NoMemory);
            }
            grow(&mut self.entries)?;
        }
        if desc && self.free_desc == NIL {
            if self.descs.len() >= MAX_FRAMES {
                return Err(ZPoolError::NoMemory);
            }
            grow(&mut self.descs)?;
        }
        Ok(())
    }

    /// Takes a handle entry (capacity reserved by `reserve`).
    fn take_entry(&mut self, frame: u32, side: usize, len: usize) -> (u32, u64) {
        if self.free_entry != HNIL {
            let i = self.free_entry;
            let old = self.entry(i);
            self.free_entry = old.next_free();
            let g = old.generation();
            self.entries[i as usize] = Entry::live(g, frame, side, len);
            (i, g)
        } else {
            let i = self.entries.len() as u32;
            self.entries.push(Entry::live(0, frame, side, len));
            (i, 0)
        }
    }

    /// Returns a handle entry to the free list with a new generation.
    fn put_entry(&mut self, i: u32) {
        let g = (self.entry(i).generation() + 1) & GEN_MASK;
        self.entries[i as usize] = Entry::free(g, self.free_entry);
        self.free_entry = i;
    }

    /// Takes a descriptor for `frame` (capacity reserved by `reserve`).
    fn take_desc(&mut self, frame: Frame) -> u32 {
        if self.free_desc != NIL {
            let f = self.free_desc;
            self.free_desc = self.d(f).free_next();
            *self.dm(f) = Desc::fresh(frame);
            f
        } else {
            let f = self.descs.len() as u32;
            self.descs.push(Desc::fresh(frame));
            f
        }
    }

    /// Returns an empty, unlisted descriptor to the free list and gives back its frame.
    fn put_desc(&mut self, f: u32) -> Option<Frame> {
        let next = self.free_desc;
        let old = core::mem::replace(self.dm(f), Desc::free(next));
        self.free_desc = f;
        self.frames -= 1;
        old.frame
    }

    /// Puts a lone frame on the unbuddied list for its free chunks (frames whose object
    /// fills them stay off the lists).
    fn ub_push(&mut self, f: u32) {
        let Some(k) = self.lone_free(f) else {
            return;
        };
        if k == 0 || self.d(f).listed() {
            return;
        }
        let head = self.ub_head[k];
        {
            let d = self.dm(f);
            d.set_ub_prev(NIL);
            d.set_ub_next(head);
            d.set_listed(true);
        }
        if head != NIL {
            self.dm(head).set_ub_prev(f);
        }
        self.ub_head[k] = f;
        self.ub_mask |= 1 << k;
    }

    /// Takes a frame off its unbuddied list, if it is on one. Must run while the frame
    /// is still lone with the object it was listed with.
    fn ub_unlink(&mut self, f: u32) {
        if !self.d(f).listed() {
            return;
        }
        let Some(k) = self.lone_free(f) else {
            return;
        };
        let (prev, next) = (self.d(f).ub_prev(), self.d(f).ub_next());
        if prev != NIL {
            self.dm(prev).set_ub_next(next);
        } else {
            self.ub_head[k] = next;
            if next == NIL {
                self.ub_mask &= !(1 << k);
            }
        }
        if next != NIL {
            self.dm(next).set_ub_prev(prev);
        }
        let d = self.dm(f);
        d.set_ub_prev(NIL);
        d.set_ub_next(NIL);
        d.set_listed(false);
    }

    /// Best fit: the lone frame with the fewest free chunks that still holds `chunks`.
    fn find_fit(&self, chunks: usize) -> Option<u32> {
        if chunks >= NCHUNKS {
            return None;
        }
        let candidates = self.ub_mask >> chunks;
        if candidates == 0 {
            return None;
        }
        let k = chunks + candidates.trailing_zeros() as usize;
        Some(self.ub_head[k])
    }

    fn frame_bytes_mut(&mut self, f: u32) -> Result<&mut [u8; PAGE_SIZE], ZPoolError> {
        self.dm(f)
            .frame
            .as_mut()
            .map(|fr| fr.as_page_mut())
            .ok_or(ZPoolError::InvalidHandle)
    }

    fn frame_bytes(&self, f: u32) -> Result<&[u8; PAGE_SIZE], ZPoolError> {
        self.d(f)
            .frame
            .as_ref()
            .map(|fr| fr.as_page())
            .ok_or(ZPoolError::InvalidHandle)
    }

    /// Places a `len`-byte object in lone frame `f` (on its empty side); returns its
    /// entry index and generation.
    fn place_in_lone(&mut self, f: u32, len: usize) -> Result<(u32, u64), ZPoolError> {
        self.reserve(false)?;
        let side = match self.d(f).lone_side() {
            Some(s) => 1 - s,
            None => return Err(ZPoolError::NoMemory),
        };
        self.ub_unlink(f);
        let (i, g) = self.take_entry(f, side, len);
        {
            let d = self.dm(f);
            d.set_rev(side, i);
            d.set_has(side, true);
        }
        self.lone -= 1;
        self.objects += 1;
        self.bytes += len;
        Ok((i, g))
    }

    /// Places a `len`-byte object as the first buddy of a fresh frame (returns its entry
    /// index and generation), or gives the frame back if metadata cannot grow.
    fn place_in_new(&mut self, frame: Frame, len: usize) -> Result<(u32, u64), Frame> {
        if self.reserve(true).is_err() {
            return Err(frame);
        }
        let f = self.take_desc(frame);
        let (i, g) = self.take_entry(f, 0, len);
        {
            let d = self.dm(f);
            d.set_rev(0, i);
            d.set_has(0, true);
        }
        self.ub_push(f);
        self.frames += 1;
        self.lone += 1;
        self.objects += 1;
        self.bytes += len;
        Ok((i, g))
    }

    fn write_object(&mut self, e: Entry, data: &[u8]) -> Result<(), ZPoolError> {
        let off = offset_of(e.side(), e.len());
        let page = self.frame_bytes_mut(e.frame())?;
        page[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Frees object `i` (entry `e`); returns a frame to give back to the source.
    fn free_object(&mut self, i: u32, e: Entry) -> Option<Frame> {
        let (f, side) = (e.frame(), e.side());
        self.objects -= 1;
        self.bytes -= e.len();
        if self.d(f).has(1 - side) {
            // Two buddies: the frame becomes lone.
            self.dm(f).set_has(side, false);
            self.put_entry(i);
            self.lone += 1;
            self.ub_push(f);
            None
        } else {
            // Last object: the frame goes back.
            self.ub_unlink(f);
            self.dm(f).set_has(side, false);
            self.put_entry(i);
            self.lone -= 1;
            self.put_desc(f)
        }
    }

    /// Heap bytes of this shard's tables and compaction memory (the shard itself is
    /// counted by the pool).
    fn metadata_bytes(&self) -> usize {
        self.descs.capacity() * core::mem::size_of::<Desc>()
            + self.entries.capacity() * core::mem::size_of::<Entry>()
            + self.compaction.bytes()
    }
}

/// A handle taken apart: shard, entry index in the shard, generation.
#[derive(Clone, Copy)]
struct Key {
    shard: usize,
    local: u32,
    generation: u64,
}

/// One shard: its lock and everything under it, on cache lines of its own (128 bytes:
/// the adjacent-line prefetcher pairs 64-byte lines), so two shards' lock words and
/// counters never share a line.
#[repr(align(128))]
struct Shard {
    inner: Mutex<Inner>,
}

impl Shard {
    fn new(shift: u32) -> Shard {
        Shard {
            inner: Mutex::new_for_try_lock(Inner::new(shard_entries(shift))),
        }
    }
}

/// The zbud allocator over page source `S`.
pub struct ZBud<S: PageSource> {
    source: S,
    /// Shard 0, where a pool used by one thread keeps everything.
    first: Shard,
    /// Shards 1..K.
    rest: Vec<Shard>,
    /// log2 of the shard count: the low bits of a handle's entry index name the shard.
    shift: u32,
    /// The shard whose compaction round `compact_step` works on (a hint: racing
    /// compactors may move it on twice; each shard's round is under its own lock).
    cursor: AtomicUsize,
    /// Where a store starts looking: shard `hint() % K` ([`ZBud::with_shard_hint`]),
    /// else shard 0.
    hint: Option<fn() -> usize>,
    /// Tests only ([`ZBud::with_shards_round_robin`]): stores start at the next shard
    /// round robin rather than at shard 0, so one thread spreads objects over shards.
    round_robin: Option<AtomicUsize>,
}

impl<S: PageSource> ZBud<S> {
    /// An empty pool of [`DEFAULT_SHARDS`] shards taking frames from `source` (see
    /// [`ZBud::with_shards`]).
    pub fn new(source: S) -> Self {
        Self::with_shards(source, DEFAULT_SHARDS)
    }

    /// An empty pool of `shards` shards (rounded up to a power of two, 1 to
    /// [`MAX_SHARDS`]) taking frames from `source`. Shards beyond the first are
    /// allocated here (about 640 bytes each), fallibly: without that memory the pool has
    /// one shard (see [`ZBud::shards`]). No frame is taken until first used.
    pub fn with_shards(source: S, shards: usize) -> Self {
        let k = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        let mut rest = Vec::new();
        let k = if rest.try_reserve_exact(k - 1).is_ok() {
            k
        } else {
            1
        };
        let shift = k.trailing_zeros();
        rest.extend((1..k).map(|_| Shard::new(shift)));
        ZBud {
            source,
            first: Shard::new(shift),
            rest,
            shift,
            cursor: AtomicUsize::new(0),
            hint: None,
            round_robin: None,
        }
    }

    /// [`ZBud::with_shards`] whose stores start at shard `hint() % K` instead of shard 0
    /// (then `try_lock` on as usual): `hint` names the caller (a CPU number in a
    /// kernel, a per-thread number in a hosted program), so that callers on different
    /// CPUs store into different shards and do not share a lock or its cache lines. One
    /// caller's objects stay in one shard (as dense as one shard); callers whose hints
    /// differ never pair their objects in a frame.
    pub fn with_shard_hint(source: S, shards: usize, hint: fn() -> usize) -> Self {
        let mut p = Self::with_shards(source, shards);
        p.hint = Some(hint);
        p
    }

    /// Tests only: a pool whose stores start at the next shard in turn instead of shard
    /// 0 (then `try_lock` on as usual), so that one thread's objects spread over every
    /// shard and single-threaded tests exercise cross-shard handles, frees, stats and
    /// compaction. Packs worse than [`ZBud::with_shards`]: objects of different shards
    /// never pair.
    #[doc(hidden)]
    pub fn with_shards_round_robin(source: S, shards: usize) -> Self {
        let mut p = Self::with_shards(source, shards);
        p.round_robin = Some(AtomicUsize::new(0));
        p
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        1 << self.shift
    }

    fn shard(&self, i: usize) -> &Shard {
        match i.checked_sub(1) {
            None => &self.first,
            Some(j) => &self.rest[j],
        }
    }

    fn each_shard(&self) -> impl Iterator<Item = &Shard> {
        core::iter::once(&self.first).chain(self.rest.iter())
    }

    /// Takes a handle apart (no lock): shard bits, entry index in the shard, generation.
    fn key(&self, h: Handle) -> Result<Key, ZPoolError> {
        let raw = h.to_raw();
        let index = (raw >> GEN_BITS)
            .checked_sub(1)
            .ok_or(ZPoolError::InvalidHandle)?;
        let shard = (index & ((1 << self.shift) - 1)) as usize;
        let local = u32::try_from(index >> self.shift).map_err(|_| ZPoolError::InvalidHandle)?;
        Ok(Key {
            shard,
            local,
            generation: raw & GEN_MASK,
        })
    }

    /// The handle's shard, locked, and its validated entry.
    fn lock_handle(&self, h: Handle) -> Result<(MutexGuard<'_, Inner>, Key, Entry), ZPoolError> {
        let k = self.key(h)?;
        let g = self.shard(k.shard).inner.lock();
        let e = g.decode(k)?;
        Ok((g, k, e))
    }

    /// Where a store starts looking: shard 0, or the next in turn for a round-robin
    /// test pool.
    fn start_shard(&self) -> usize {
        if let Some(rr) = &self.round_robin {
            // Relaxed: a hint, ordering nothing.
            return rr.fetch_add(1, core::sync::atomic::Ordering::Relaxed) % self.shards();
        }
        self.hint.map_or(0, |h| h() & (self.shards() - 1))
    }

    /// Locks a shard that `ok` accepts, for a store: `try_lock` on each shard in turn
    /// from `start`, then, after one round, waits for `start` and the others in turn.
    /// `None` when `ok` accepts no shard (every shard is full).
    fn lock_for_store(
        &self,
        start: usize,
        ok: impl Fn(&Inner) -> bool,
    ) -> Option<(usize, MutexGuard<'_, Inner>)> {
        let k = self.shards();
        for i in (start..k).chain(0..start) {
            if let Some(g) = self.shard(i).inner.try_lock()
                && ok(&g)
            {
                return Some((i, g));
            }
        }
        for i in (start..k).chain(0..start) {
            let g = self.shard(i).inner.lock();
            if ok(&g) {
                return Some((i, g));
            }
        }
        None
    }

    /// zbud's counters, summed over the shards (one shard locked at a time).
    pub fn zbud_stats(&self) -> ZBudStats {
        let mut s = ZBudStats::default();
        for i in 0..self.shards() {
            let t = self.shard_stats(i).unwrap_or_default();
            s.frames += t.frames;
            s.objects += t.objects;
            s.bytes += t.bytes;
            s.lone_frames += t.lone_frames;
            s.buddied_frames += t.buddied_frames;
            s.compacted_frames += t.compacted_frames;
            s.descriptor_bytes += t.descriptor_bytes;
            s.handle_bytes += t.handle_bytes;
        }
        s
    }

    /// One shard's counters (`None` for a shard the pool does not have).
    pub fn shard_stats(&self, shard: usize) -> Option<ZBudStats> {
        if shard >= self.shards() {
            return None;
        }
        let g = self.shard(shard).inner.lock();
        Some(ZBudStats {
            frames: g.frames,
            objects: g.objects,
            bytes: g.bytes,
            lone_frames: g.lone,
            buddied_frames: g.frames - g.lone,
            compacted_frames: g.compacted_frames,
            descriptor_bytes: g.descs.capacity() * core::mem::size_of::<Desc>(),
            handle_bytes: g.entries.capacity() * core::mem::size_of::<Entry>(),
        })
    }

    /// Where an object lives (for diagnostics and layout tests).
    pub fn locate(&self, handle: Handle) -> Result<Location, ZPoolError> {
        let (g, k, e) = self.lock_handle(handle)?;
        let f = e.frame();
        let frame_addr = g
            .d(f)
            .frame
            .as_ref()
            .map(Frame::addr)
            .ok_or(ZPoolError::InvalidHandle)?;
        Ok(Location {
            shard: k.shard,
            frame_index: f as usize,
            frame_addr,
            buddy: if e.side() == 0 {
                Buddy::First
            } else {
                Buddy::Last
            },
            offset: offset_of(e.side(), e.len()),
            len: e.len(),
        })
    }

    fn check_len(len: usize) -> Result<(), ZPoolError> {
        if len == 0 {
            return Err(ZPoolError::ZeroSize);
        }
        if len > MAX_OBJECT {
            return Err(ZPoolError::TooLarge {
                len,
                max: MAX_OBJECT,
            });
        }
        Ok(())
    }

    /// Allocates `len` bytes and, with `data`, fills them, under one lock hold.
    fn alloc(&self, len: usize, data: Option<&[u8]>) -> Result<Handle, ZPoolError> {
        Self::check_len(len)?;
        let chunks = chunks_for(len);
        let start = self.start_shard();
        {
            let (si, mut g) = self
                .lock_for_store(start, |g| g.has_room(Some(chunks)))
                .ok_or(ZPoolError::NoMemory)?;
            if let Some(f) = g.find_fit(chunks) {
                let (i, gen_) = g.place_in_lone(f, len)?;
                if let Some(d) = data {
                    let e = g.entry(i);
                    g.write_object(e, d)?;
                }
                return Ok(encode(si, self.shift, i, gen_));
            }
        }
        // No fitting lone frame: take a fresh one without holding a lock, then place it
        // in whichever shard `try_lock` finds free.
        let frame = self
            .source
            .alloc_frame()
            .map_err(|_| ZPoolError::NoMemory)?;
        let Some((si, mut g)) = self.lock_for_store(start, |g| g.has_room(None)) else {
            self.source.free_frame(frame);
            return Err(ZPoolError::NoMemory);
        };
        match g.place_in_new(frame, len) {
            Ok((i, gen_)) => {
                if let Some(d) = data {
                    let e = g.entry(i);
                    g.write_object(e, d)?;
                }
                Ok(encode(si, self.shift, i, gen_))
            }
            Err(frame) => {
                drop(g);
                self.source.free_frame(frame);
                Err(ZPoolError::NoMemory)
            }
        }
    }
}

impl<S: PageSource> ZPool for ZBud<S> {
    fn name(&self) -> &'static str {
        "zbud"
    }

    fn max_alloc(&self) -> usize {
        MAX_OBJECT
    }

    fn malloc(&self, len: usize) -> Result<Handle, ZPoolError> {
        self.alloc(len, None)
    }

    fn store(&self, data: &[u8]) -> Result<Handle, ZPoolError> {
        self.alloc(data.len(), Some(data))
    }

    fn free(&self, handle: Handle) -> Result<(), ZPoolError> {
        self.free_len(handle).map(|_| ())
    }

    fn free_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        let (mut g, k, e) = self.lock_handle(handle)?;
        let len = e.len();
        let frame = g.free_object(k.local, e);
        drop(g);
        if let Some(frame) = frame {
            self.source.free_frame(frame);
        }
        Ok(len)
    }

    fn write(&self, handle: Handle, data: &[u8]) -> Result<(), ZPoolError> {
        let (mut g, _, e) = self.lock_handle(handle)?;
        if data.len() != e.len() {
            return Err(ZPoolError::BadLength {
                object: e.len(),
                buffer: data.len(),
            });
        }
        g.write_object(e, data)
    }

    fn read(&self, handle: Handle, out: &mut [u8]) -> Result<usize, ZPoolError> {
        let (g, _, e) = self.lock_handle(handle)?;
        let len = e.len();
        if out.len() < len {
            return Err(ZPoolError::BadLength {
                object: len,
                buffer: out.len(),
            });
        }
        let off = offset_of(e.side(), len);
        let page = g.frame_bytes(e.frame())?;
        out[..len].copy_from_slice(&page[off..off + len]);
        Ok(len)
    }

    fn object_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        self.lock_handle(handle).map(|(_, _, e)| e.len())
    }

    /// Summed over the shards, one lock at a time.
    fn total_frames(&self) -> usize {
        self.each_shard().map(|s| s.inner.lock().frames).sum()
    }

    /// Summed over the shards, one lock at a time.
    fn stats(&self) -> PoolStats {
        let mut st = PoolStats {
            metadata_bytes: core::mem::size_of::<Self>()
                + self.rest.capacity() * core::mem::size_of::<Shard>(),
            ..PoolStats::default()
        };
        for sh in self.each_shard() {
            let g = sh.inner.lock();
            st.frames += g.frames;
            st.objects += g.objects;
            st.bytes += g.bytes;
            st.metadata_bytes += g.metadata_bytes();
        }
        st
    }

    /// Compaction rounds' steps until one round is done.
    fn compact(&self) -> usize {
        self.compact_all()
    }

    /// One bounded slice of the compaction round (see `compact.rs`): lock holds of at
    /// most 64 frames snapshotted, 512 planning steps, 8 pairs or 8 moves, until about
    /// `max_moves` objects moved; the shards' rounds one after the other, `done` when the
    /// last shard's round ends.
    fn compact_step(&self, max_moves: usize) -> zpool::CompactStep {
        self.step(max_moves)
    }

    /// One segment per shard; the index is the entry's index in its shard.
    fn object_ids(&self) -> Option<zpool::ObjectIds> {
        Some(zpool::ObjectIds {
            segments: self.shards() as u32,
            segment_bits: HIDX_BITS - self.shift,
        })
    }

    fn object_id(&self, handle: Handle) -> Option<u32> {
        let k = self.key(handle).ok()?;
        ((k.local as usize) < shard_entries(self.shift))
            .then_some(((k.shard as u32) << (HIDX_BITS - self.shift)) | k.local)
    }

    fn handle_of_id(&self, id: u32) -> Option<Handle> {
        let bits = HIDX_BITS - self.shift;
        let (shard, local) = ((id >> bits) as usize, id & ((1 << bits) - 1));
        if shard >= self.shards() {
            return None;
        }
        let g = self.shard(shard).inner.lock();
        let e = *g.entries.get(local as usize)?;
        e.is_live()
            .then(|| encode(shard, self.shift, local, e.generation()))
    }
}

impl<S: PageSource> Drop for ZBud<S> {
    fn drop(&mut self) {
        let source = &self.source;
        for sh in core::iter::once(&mut self.first).chain(self.rest.iter_mut()) {
            for d in sh.inner.get_mut().descs.iter_mut() {
                if let Some(frame) = d.frame.take() {
                    source.free_frame(frame);
                }
            }
        }
    }
}

// Compile-time checks of the encoding widths.
const _: () = assert!(HANDLE_BITS <= Handle::BITS && HANDLE_BITS + zplat::PAGE_SHIFT == 59);
const _: () = assert!(2 * MAX_FRAMES <= MAX_HANDLES);
const _: () = assert!(FRAME_BITS + zplat::PAGE_SHIFT == 36); // 64 GiB of frames per shard
const _: () = assert!(shard_entries(0) == MAX_HANDLES);
const _: () = assert!(MAX_SHARDS.is_power_of_two() && MAX_SHARDS.trailing_zeros() < HIDX_BITS);

/// Locks of this crate (the shard locks) held right now by any thread, counted only with the
/// `lock-count` feature (tests: a page source checks that it is never called with one
/// held); always 0 without it.
#[doc(hidden)]
pub fn held_locks() -> usize {
    zplat::sync::held_locks()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zpool::HeapPageSource;

    #[test]
    fn a_full_shard_sends_stores_to_the_next_and_all_full_is_no_memory() {
        let mut p = ZBud::with_shards(HeapPageSource, 2);
        p.first.inner.get_mut().max_entries = 3;
        p.rest[0].inner.get_mut().max_entries = 2;
        // Objects of 47 of 64 chunks (3000 bytes at 4 KiB) never pair: a frame each.
        const OBJ: usize = 3000 * zplat::PAGE_SCALE;
        let obj = alloc::vec![7u8; OBJ];
        let hs: Vec<Handle> = (0..5).map(|_| p.store(&obj).unwrap()).collect();
        let shards: Vec<usize> = hs.iter().map(|h| p.locate(*h).unwrap().shard).collect();
        assert_eq!(shards, [0, 0, 0, 1, 1]);
        assert_eq!(p.store(&obj), Err(ZPoolError::NoMemory));
        assert_eq!(p.malloc(10), Err(ZPoolError::NoMemory));
        assert_eq!(p.total_frames(), 5);
        // A free in shard 0 makes room there again (an entry of its own).
        p.free(hs[1]).unwrap();
        let h = p.store(&[8; 100]).unwrap();
        assert_eq!(p.locate(h).unwrap().shard, 0);
        let mut out = alloc::vec![0u8; PAGE_SIZE];
        assert_eq!(p.read(h, &mut out), Ok(100));
        assert_eq!(p.read(hs[4], &mut out), Ok(OBJ));
    }
}
