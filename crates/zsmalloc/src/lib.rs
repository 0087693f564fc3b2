//! `zsmalloc`: a size-class allocator for compressed pages, built to be denser than
//! Linux's zsmalloc on real pages.
//!
//! * **Size classes.** Slot sizes are multiples of 8 bytes, spaced
//!   [`PoolConfig::small_spacing`] apart below [`PoolConfig::split`] and
//!   [`PoolConfig::spacing`] apart above (defaults 32 and 48 bytes: coarser than Linux's
//!   16, which pays off in partly filled zspages; see the crate README for the model).
//! * **Zspages** of up to `k` frames per class, `k` chosen per class in
//!   `1..=`[`PoolConfig::max_chain`] to minimise the tail waste; objects span frame
//!   boundaries. Frames are taken **lazily**: a zspage holds only the frames its used
//!   slots need and grows one frame at a time, so a class with few objects costs less
//!   than one frame of slack instead of a whole `k`-frame zspage. Classes whose geometry
//!   (frames, objects) is identical are merged into the larger one. Objects too large for
//!   any class live alone in a frame (the huge class).
//! * **Handles** go through a per-class table of 5-byte entries (the object's slot
//!   number in its class and the entry's own 17-bit generation, which the handle
//!   carries): a stale handle is an
//!   error unless its entry has been freed a multiple of 2^17 - 1 times since and is
//!   live again, a forged one unless it equals a live object's handle; and objects can
//!   move. Each slot starts with a 4-byte header naming
//!   its entry (the back-pointer compaction uses) and the object's length. There is no
//!   8-byte in-object handle.
//! * **Fullness groups** (ten 10 % buckets plus full): allocation takes the fullest
//!   zspage with room; compaction moves objects from the emptiest zspages of a class
//!   into the fullest, frees the emptied ones, packs the last one and trims its unused
//!   frames, in bounded steps ([`ZPool::compact_step`]). [`ZsPool::freeable`] says
//!   cheaply how many frames that would free.
//! * **No eviction**: the allocator allocates; the cache above (zcache) owns the LRU
//!   and decides what to evict.
//! * **Locking**: one spin lock per class (two threads storing different sizes do not
//!   contend), leaf locks, never two at once, and **never held while the page source
//!   runs**: a frame is taken before the lock (or the lock is dropped, a frame taken,
//!   the lock retaken and the choice made again), frames to give back are collected
//!   under the lock and given back after it is dropped. Compaction moves at most
//!   [`MOVES_PER_HOLD`] objects per lock hold. See the crate README and
//!   `docs/concurrency.md`.
//!
//! The crate is `no_std` and free of `unsafe`: frame memory is reached through
//! [`zpool::Frame`].
//!
//! ```
//! use zpool::{HeapPageSource, ZPool};
//! use zsmalloc::ZsPool;
//!
//! let pool = ZsPool::new(HeapPageSource).expect("pool");
//! let h = pool.store(&[7u8; 1500]).expect("store");
//! let mut out = [0u8; zsmalloc::PAGE_SIZE];
//! assert_eq!(pool.read(h, &mut out), Ok(1500));
//! assert_eq!(pool.read_with(h, &mut out, |bytes| bytes.len()), Ok(1500));
//! assert_eq!(pool.total_frames(), 1);
//! pool.free(h).expect("free");
//! assert_eq!(pool.compact(), 0);
//! assert_eq!(pool.total_frames(), 0);
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod bin;
mod bitmap;
mod class;
mod compact;
mod fullness;
mod geometry;
mod handle;
mod layout;
pub mod linux;
mod stats;
use zplat::sync;
mod zspage;

use alloc::vec::Vec;
use core::fmt;

use class::{AllocFail, ClassInner};
use sync::{AtomicUsize, Mutex, Ordering};
use zpool::Frame;

pub use compact::{MAX_GROW_MOVES, MOVES_PER_HOLD};
pub use layout::{CreateError, PoolConfig};
pub use stats::{ClassStats, FULLNESS_GROUPS, MetadataStats};
pub use zpool::{CompactStep, Handle, PAGE_SIZE, PageSource, PoolStats, ZPool, ZPoolError};

/// Bytes of per-object header stored in the slot (the owning entry's index, length).
pub const OBJ_HEADER_SIZE: usize = handle::HEADER;

/// Bits a handle of this allocator may use (47, 45, 43 at 4, 16, 64 KiB pages): a
/// user packing handles with other fields can check its layout against it.
pub const HANDLE_BITS: u32 = handle::GEN_BITS + handle::CLASS_BITS + handle::INDEX_BITS;

struct Class {
    /// The class's shape (also in `inner`; here for lock-free reports).
    geo: geometry::Geometry,
    inner: Mutex<ClassInner>,
}

/// Size-class allocator over a [`PageSource`]; implements [`ZPool`].
pub struct ZsPool<S: PageSource> {
    source: S,
    config: PoolConfig,
    classes: Vec<Class>,
    /// `(len + HEADER).div_ceil(8)` -> class index, for `len` in `1..=PAGE_SIZE`.
    lookup: Vec<u8>,
    /// Frames held, summed over classes (relaxed: updated after each class lock hold
    /// that changed a class's count).
    frames: AtomicUsize,
    /// Frames freed by compaction since creation.
    compacted: AtomicUsize,
    /// The class the next compaction step starts at (a hint).
    cursor: AtomicUsize,
}

impl<S: PageSource> ZsPool<S> {
    /// A pool with [`PoolConfig::DEFAULT`].
    pub fn new(source: S) -> Result<Self, CreateError> {
        Self::with_config(source, PoolConfig::DEFAULT)
    }

    /// A pool with the given class layout.
    pub fn with_config(source: S, config: PoolConfig) -> Result<Self, CreateError> {
        let layout = layout::build(&config)?;
        let mut classes: Vec<Class> = Vec::new();
        classes
            .try_reserve_exact(layout.classes.len())
            .map_err(|_| CreateError::NoMemory)?;
        for spec in &layout.classes {
            classes.push(Class {
                geo: spec.geo,
                inner: Mutex::new(ClassInner::new(spec.geo, spec.min_len)),
            });
        }
        let n = classes.len();
        Ok(ZsPool {
            source,
            config,
            classes,
            lookup: layout.lookup,
            frames: AtomicUsize::new(0),
            compacted: AtomicUsize::new(0),
            // The huge class, then the largest normal classes first.
            cursor: AtomicUsize::new(n - 1),
        })
    }

    /// The page source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> PoolConfig {
        self.config
    }

    /// Number of distinct classes (after merging), huge class included.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Objects at least this long are stored alone in a frame (the kernel's
    /// `zs_huge_class_size`).
    pub fn huge_class_size(&self) -> usize {
        self.classes
            .iter()
            .rev()
            .find(|c| !c.geo.huge)
            .map_or(1, |c| c.geo.size() - OBJ_HEADER_SIZE + 1)
    }

    /// Class index that stores objects of `len` bytes (`None` if `len` is 0 or over
    /// [`PAGE_SIZE`]).
    pub fn class_index(&self, len: usize) -> Option<usize> {
        if len == 0 || len > PAGE_SIZE {
            return None;
        }
        Some(self.lookup[(len + OBJ_HEADER_SIZE).div_ceil(8)] as usize)
    }

    /// Map-style read (the kernel's `zs_map_object` for reading): calls `f` with the
    /// object's bytes and returns its result. An object that lies in one frame is passed
    /// in place, without a copy; one that spans two frames is first copied into
    /// `bounce`, which must then be at least the object's length
    /// ([`ZPoolError::BadLength`] otherwise; a [`PAGE_SIZE`] bounce always suffices).
    ///
    /// `f` runs under the object's class lock (so compaction cannot move the object
    /// meanwhile): keep it short (decompress one page, copy) and do not call back into
    /// this pool from it, or it deadlocks on that lock.
    pub fn read_with<R>(
        &self,
        handle: Handle,
        bounce: &mut [u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, ZPoolError> {
        let (class, idx, generation) = self.split(handle)?;
        let inner = class.inner.lock();
        let loc = inner.lookup(idx, generation)?;
        let blen = bounce.len();
        let bytes = inner.map(loc, bounce).map_err(|e| match e {
            ZPoolError::BadLength { object, .. } => ZPoolError::BadLength {
                object,
                buffer: blen,
            },
            e => e,
        })?;
        Ok(f(bytes))
    }

    /// Frames compaction could give back now (the kernel's `zs_can_compact` summed over
    /// classes). Takes each class lock briefly; O(classes).
    pub fn freeable(&self) -> usize {
        self.classes.iter().map(|c| c.inner.lock().freeable()).sum()
    }

    /// Whether compaction would free at least one frame.
    pub fn can_compact(&self) -> bool {
        self.classes.iter().any(|c| c.inner.lock().freeable() > 0)
    }

    /// Frames freed by compaction since the pool was created (`pages_compacted`).
    pub fn frames_compacted(&self) -> usize {
        self.compacted.load(Ordering::Relaxed)
    }

    /// Compacts one class (in bounded lock holds); returns frames freed.
    pub fn compact_class(&self, index: usize) -> usize {
        let mut total = 0;
        loop {
            let (_, freed, done) = self.compact_class_budget(index, 1024);
            total += freed;
            if done {
                return total;
            }
        }
    }

    /// Applies a class's frame-count change to the pool total.
    fn account(&self, before: usize, after: usize) {
        if after > before {
            self.frames.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.frames.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    fn split(&self, handle: Handle) -> Result<(&Class, u32, u32), ZPoolError> {
        let (cls, idx, generation) = handle::decode(handle).ok_or(ZPoolError::InvalidHandle)?;
        let class = self.classes.get(cls).ok_or(ZPoolError::InvalidHandle)?;
        Ok((class, idx, generation))
    }

    fn alloc_in(&self, len: usize, data: Option<&[u8]>) -> Result<Handle, ZPoolError> {
        let cls = match self.class_index(len) {
            Some(c) => c,
            None if len == 0 => return Err(ZPoolError::ZeroSize),
            None => {
                return Err(ZPoolError::TooLarge {
                    len,
                    max: PAGE_SIZE,
                });
            }
        };
        let class = &self.classes[cls];
        // A frame is only ever taken with no lock held: when the class needs one, it
        // says so without changing anything, the lock is dropped, a frame taken, and
        // the allocation tried again from scratch (another thread may have made room
        // meanwhile: then the spare goes back, after unlocking).
        let mut spare: Option<Frame> = None;
        let res = loop {
            let mut inner = class.inner.lock();
            let before = inner.c.frames;
            let r = inner.alloc(len, data, &mut spare);
            let after = inner.c.frames;
            drop(inner);
            self.account(before, after);
            match r {
                Ok(x) => break Ok(x),
                Err(AllocFail::NeedFrame) if spare.is_none() => match self.source.alloc_frame() {
                    Ok(f) => spare = Some(f),
                    Err(_) => break Err(ZPoolError::NoMemory),
                },
                Err(AllocFail::NeedFrame) => break Err(ZPoolError::NoMemory),
                Err(AllocFail::Error(e)) => break Err(e),
            }
        };
        if let Some(f) = spare {
            self.source.free_frame(f);
        }
        let (idx, generation) = res?;
        handle::encode(cls, idx, generation).ok_or(ZPoolError::NoMemory)
    }
}

impl<S: PageSource> ZPool for ZsPool<S> {
    fn name(&self) -> &'static str {
        "zsmalloc"
    }

    fn max_alloc(&self) -> usize {
        PAGE_SIZE
    }

    fn malloc(&self, len: usize) -> Result<Handle, ZPoolError> {
        self.alloc_in(len, None)
    }

    fn store(&self, data: &[u8]) -> Result<Handle, ZPoolError> {
        self.alloc_in(data.len(), Some(data))
    }

    fn free(&self, handle: Handle) -> Result<(), ZPoolError> {
        self.free_len(handle).map(|_| ())
    }

    fn free_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        let (class, idx, generation) = self.split(handle)?;
        let mut inner = class.inner.lock();
        let loc = inner.lookup(idx, generation)?;
        let before = inner.c.frames;
        let mut bin = bin::FrameBin::new();
        inner.free(idx, loc, &mut bin);
        let after = inner.c.frames;
        drop(inner);
        self.account(before, after);
        // An emptied zspage's frames go back with no lock held.
        bin.release(&self.source);
        Ok(loc.len)
    }

    fn write(&self, handle: Handle, data: &[u8]) -> Result<(), ZPoolError> {
        let (class, idx, generation) = self.split(handle)?;
        let mut inner = class.inner.lock();
        let loc = inner.lookup(idx, generation)?;
        if data.len() != loc.len {
            return Err(ZPoolError::BadLength {
                object: loc.len,
                buffer: data.len(),
            });
        }
        inner.write(loc, data)
    }

    fn read(&self, handle: Handle, out: &mut [u8]) -> Result<usize, ZPoolError> {
        let (class, idx, generation) = self.split(handle)?;
        let inner = class.inner.lock();
        let loc = inner.lookup(idx, generation)?;
        if out.len() < loc.len {
            return Err(ZPoolError::BadLength {
                object: loc.len,
                buffer: out.len(),
            });
        }
        inner.read(loc, out)?;
        Ok(loc.len)
    }

    /// In place for an object inside one frame, under its class lock (see
    /// [`ZsPool::read_with`]).
    fn map_read(
        &self,
        handle: Handle,
        bounce: &mut [u8],
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<(), ZPoolError> {
        self.read_with(handle, bounce, f)
    }

    fn object_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        let (class, idx, generation) = self.split(handle)?;
        let inner = class.inner.lock();
        Ok(inner.lookup(idx, generation)?.len)
    }

    fn total_frames(&self) -> usize {
        self.frames.load(Ordering::Relaxed)
    }

    fn stats(&self) -> PoolStats {
        self.pool_stats()
    }

    /// One segment per class; the index is the class's handle-table entry.
    fn object_ids(&self) -> Option<zpool::ObjectIds> {
        Some(zpool::ObjectIds {
            segments: self.classes.len() as u32,
            segment_bits: handle::INDEX_BITS,
        })
    }

    fn object_id(&self, handle: Handle) -> Option<u32> {
        let (cls, idx, _) = handle::decode(handle)?;
        (cls < self.classes.len() && (idx as usize) < handle::MAX_ENTRIES)
            .then_some(((cls as u32) << handle::INDEX_BITS) | idx)
    }

    fn handle_of_id(&self, id: u32) -> Option<Handle> {
        let cls = (id >> handle::INDEX_BITS) as usize;
        let idx = id & ((1 << handle::INDEX_BITS) - 1);
        let generation = self
            .classes
            .get(cls)?
            .inner
            .lock()
            .table
            .live_generation(idx)?;
        handle::encode(cls, idx, generation)
    }

    /// Every class, largest first, in bounded steps until done.
    fn compact(&self) -> usize {
        self.compact_all()
    }

    /// Classes from the largest down (resuming where the last step stopped), at most
    /// [`MOVES_PER_HOLD`] moves per class-lock hold; see the crate README.
    fn compact_step(&self, max_moves: usize) -> CompactStep {
        self.step(max_moves)
    }
}

impl<S: PageSource> Drop for ZsPool<S> {
    fn drop(&mut self) {
        let source = &self.source;
        for class in &mut self.classes {
            // Exclusive access: no lock is taken, none is held while frames go back.
            class
                .inner
                .get_mut()
                .take_all_frames(|f| source.free_frame(f));
        }
    }
}

impl<S: PageSource> fmt::Debug for ZsPool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZsPool")
            .field("classes", &self.classes.len())
            .field("frames", &self.total_frames())
            .finish()
    }
}

/// Locks of this crate (class locks) held right now by any thread, counted only with
/// the `lock-count` feature (tests: a page source checks that it is never called with
/// one held); always 0 without it.
#[doc(hidden)]
pub fn held_locks() -> usize {
    zplat::sync::held_locks()
}
