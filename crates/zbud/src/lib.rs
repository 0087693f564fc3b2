//! `zbud`: at most two compressed objects ("buddies") per 4 KiB page frame.
//!
//! * Frames are cut into [`NCHUNKS`] = 64 chunks of [`CHUNK_SIZE`] = 64 bytes. All
//!   metadata lives outside the frames, so the whole frame is usable: the largest object
//!   is [`MAX_OBJECT`] = 4096 bytes (64 chunks, a frame of its own). The first buddy sits
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
//! own 23-bit generation, moved on at every free, and the handle carries it: a stale or
//! double-freed handle is an error unless its entry has been freed a multiple of 2^23
//! (8,388,608) times since and is live again, a forged one unless it equals a live
//! object's handle. Limits: [`MAX_FRAMES`] frames per pool (64 GiB of frames); beyond that,
//! allocation fails with `NoMemory`.
//!
//! Locking: one spin lock per pool. The page source is never called under it: a fresh
//! frame is taken with the lock dropped (and given back after unlocking if the metadata
//! cannot grow); frames given back by `free` and compaction are returned after the lock
//! is released. Object bytes are copied under the lock.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod compact;
mod meta;
mod sync;

use alloc::vec::Vec;

use meta::{Desc, Entry, FRAME_BITS, GEN_BITS, GEN_MASK, HIDX_BITS, HNIL, NIL};
use sync::Mutex;
use zpool::{Frame, Handle, PAGE_SIZE, PageSource, PoolStats, ZPool, ZPoolError};

pub use compact::{MOVES_PER_HOLD, PAIRS_PER_HOLD, PLAN_UNITS, SNAP_FRAMES};

/// Bytes per chunk: objects are placed in whole chunks.
pub const CHUNK_SIZE: usize = 64;
/// Chunks per frame (all usable: metadata is out of band).
pub const NCHUNKS: usize = PAGE_SIZE / CHUNK_SIZE;
/// The largest object: a whole frame (4096 bytes), which then holds no buddy.
pub const MAX_OBJECT: usize = PAGE_SIZE;
/// Most frames one pool holds (frame indexes are 24 bits): 16 777 214 frames, 64 GiB.
pub const MAX_FRAMES: usize = NIL as usize - 1;
/// Most handle entries one pool holds (25-bit indexes; two per frame suffice).
pub const MAX_HANDLES: usize = HNIL as usize - 1;

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
    /// Index of the frame's descriptor.
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

fn encode(index: u32, generation: u64) -> Handle {
    // `index < HNIL` (2^25 - 1), so `raw < 2^48` and non-zero: `from_raw` always succeeds.
    let raw = ((u64::from(index) + 1) << GEN_BITS) | (generation & GEN_MASK);
    Handle::from_raw(raw).unwrap_or(FALLBACK)
}

impl Inner {
    fn new() -> Inner {
        Inner {
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

    /// Validates a handle: index in range, entry live, generation equal.
    fn decode(&self, h: Handle) -> Result<(u32, Entry), ZPoolError> {
        let raw = h.to_raw();
        let index = (raw >> GEN_BITS)
            .checked_sub(1)
            .ok_or(ZPoolError::InvalidHandle)?;
        let e = *self
            .entries
            .get(usize::try_from(index).map_err(|_| ZPoolError::InvalidHandle)?)
            .ok_or(ZPoolError::InvalidHandle)?;
        if !e.is_live() || e.generation() != raw & GEN_MASK {
            return Err(ZPoolError::InvalidHandle);
        }
        Ok((index as u32, e))
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
            if self.entries.len() >= MAX_HANDLES {
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

    /// Places a `len`-byte object in lone frame `f` (on its empty side).
    fn place_in_lone(&mut self, f: u32, len: usize) -> Result<Handle, ZPoolError> {
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
        Ok(encode(i, g))
    }

    /// Places a `len`-byte object as the first buddy of a fresh frame, or gives the
    /// frame back if metadata cannot grow.
    fn place_in_new(&mut self, frame: Frame, len: usize) -> Result<Handle, Frame> {
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
        Ok(encode(i, g))
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

    fn metadata_bytes(&self) -> usize {
        self.descs.capacity() * core::mem::size_of::<Desc>()
            + self.entries.capacity() * core::mem::size_of::<Entry>()
            + core::mem::size_of::<Inner>()
            + self.compaction.bytes()
    }
}

/// The zbud allocator over page source `S`.
pub struct ZBud<S: PageSource> {
    source: S,
    inner: Mutex<Inner>,
}

impl<S: PageSource> ZBud<S> {
    /// An empty pool taking frames from `source`. Allocates nothing until first used.
    pub fn new(source: S) -> Self {
        ZBud {
            source,
            inner: Mutex::new(Inner::new()),
        }
    }

    /// The page source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// zbud's counters.
    pub fn zbud_stats(&self) -> ZBudStats {
        let g = self.inner.lock();
        ZBudStats {
            frames: g.frames,
            objects: g.objects,
            bytes: g.bytes,
            lone_frames: g.lone,
            buddied_frames: g.frames - g.lone,
            compacted_frames: g.compacted_frames,
            descriptor_bytes: g.descs.capacity() * core::mem::size_of::<Desc>(),
            handle_bytes: g.entries.capacity() * core::mem::size_of::<Entry>(),
        }
    }

    /// Where an object lives (for diagnostics and layout tests).
    pub fn locate(&self, handle: Handle) -> Result<Location, ZPoolError> {
        let g = self.inner.lock();
        let (_, e) = g.decode(handle)?;
        let f = e.frame();
        let frame_addr = g
            .d(f)
            .frame
            .as_ref()
            .map(Frame::addr)
            .ok_or(ZPoolError::InvalidHandle)?;
        Ok(Location {
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
        {
            let mut g = self.inner.lock();
            if let Some(f) = g.find_fit(chunks) {
                let h = g.place_in_lone(f, len)?;
                if let Some(d) = data {
                    let (_, e) = g.decode(h)?;
                    g.write_object(e, d)?;
                }
                return Ok(h);
            }
        }
        // No fitting lone frame: take a fresh one without holding the lock.
        let frame = self
            .source
            .alloc_frame()
            .map_err(|_| ZPoolError::NoMemory)?;
        let mut g = self.inner.lock();
        match g.place_in_new(frame, len) {
            Ok(h) => {
                if let Some(d) = data {
                    let (_, e) = g.decode(h)?;
                    g.write_object(e, d)?;
                }
                Ok(h)
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
        let mut g = self.inner.lock();
        let (i, e) = g.decode(handle)?;
        let frame = g.free_object(i, e);
        drop(g);
        if let Some(frame) = frame {
            self.source.free_frame(frame);
        }
        Ok(())
    }

    fn write(&self, handle: Handle, data: &[u8]) -> Result<(), ZPoolError> {
        let mut g = self.inner.lock();
        let (_, e) = g.decode(handle)?;
        if data.len() != e.len() {
            return Err(ZPoolError::BadLength {
                object: e.len(),
                buffer: data.len(),
            });
        }
        g.write_object(e, data)
    }

    fn read(&self, handle: Handle, out: &mut [u8]) -> Result<usize, ZPoolError> {
        let g = self.inner.lock();
        let (_, e) = g.decode(handle)?;
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
        let g = self.inner.lock();
        g.decode(handle).map(|(_, e)| e.len())
    }

    fn total_frames(&self) -> usize {
        self.inner.lock().frames
    }

    fn stats(&self) -> PoolStats {
        let g = self.inner.lock();
        PoolStats {
            frames: g.frames,
            objects: g.objects,
            bytes: g.bytes,
            metadata_bytes: g.metadata_bytes(),
        }
    }

    /// Compaction rounds' steps until one round is done.
    fn compact(&self) -> usize {
        self.compact_all()
    }

    /// One bounded slice of the compaction round (see `compact.rs`): lock holds of at
    /// most 64 frames snapshotted, 512 planning steps, 8 pairs or 8 moves, until about
    /// `max_moves` objects moved.
    fn compact_step(&self, max_moves: usize) -> zpool::CompactStep {
        self.step(max_moves)
    }
}

impl<S: PageSource> Drop for ZBud<S> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        for d in inner.descs.iter_mut() {
            if let Some(frame) = d.frame.take() {
                self.source.free_frame(frame);
            }
        }
    }
}

// Compile-time checks of the encoding widths.
const _: () = assert!(HIDX_BITS + GEN_BITS == Handle::BITS);
const _: () = assert!(2 * MAX_FRAMES <= MAX_HANDLES);
const _: () = assert!(FRAME_BITS == 24);

/// Locks of this crate (the pool lock) held right now by any thread, counted only with the
/// `lock-count` feature (tests: a page source checks that it is never called with one
/// held); always 0 without it.
#[doc(hidden)]
pub fn held_locks() -> usize {
    sync::held()
}
