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
//! * **Handles** go through a per-class table of 4-byte entries (zspage, slot); a 4-byte
//!   in-slot header carries the length and the handle's 16-bit generation, so a stale or
//!   forged handle is an error and objects can move. There is no 8-byte in-object handle.
//! * **Fullness groups** (ten 10 % buckets plus full): allocation takes the fullest
//!   zspage with room; [`ZsPool::compact`] moves objects from the emptiest zspages of a
//!   class into the fullest, frees the emptied ones, packs the last one and trims its
//!   unused frames. [`ZsPool::freeable`] says cheaply how many frames that would free.
//! * **No eviction**: the allocator allocates; the cache above (zcache) owns the LRU
//!   and decides what to evict.
//! * **Locking**: one spin lock per class (two threads storing different sizes do not
//!   contend), leaf locks, never two at once. See `docs/concurrency.md`.
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
//! let mut out = [0u8; 4096];
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

mod class;
pub mod linux;
mod sync;

use alloc::vec::Vec;
use core::fmt;

use class::{ClassInner, Geometry, HEADER, INDEX_BITS, MAX_OBJS, NGROUPS};
use sync::{AtomicUsize, Mutex, Ordering};
pub use zpool::{CompactStep, Handle, PAGE_SIZE, PageSource, PoolStats, ZPool, ZPoolError};

/// Bytes of per-object header stored in the slot (length, magic, generation).
pub const OBJ_HEADER_SIZE: usize = HEADER;

/// Number of fullness groups reported per class: 0 (empty), ten 10 % buckets, full.
pub const FULLNESS_GROUPS: usize = NGROUPS;

/// Tunables of a pool's class layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Longest zspage, in frames (the kernel's `CONFIG_ZSMALLOC_CHAIN_SIZE`). Each class
    /// takes the length in `1..=max_chain` that wastes least (also bounded so a zspage
    /// holds at most 512 objects). 1..=255.
    pub max_chain: usize,
    /// Smallest slot size (header included). Multiple of 8, at least 8.
    pub min_class: usize,
    /// Class spacing for slots smaller than `split`. Multiple of 8.
    pub small_spacing: usize,
    /// Slot size from which `spacing` applies.
    pub split: usize,
    /// Class spacing from `split` up. Multiple of 8.
    pub spacing: usize,
}

impl PoolConfig {
    /// The defaults, chosen with a class-by-class model of the dev corpus (README).
    pub const DEFAULT: PoolConfig = PoolConfig {
        max_chain: 64,
        min_class: 32,
        small_spacing: 32,
        split: 1024,
        spacing: 48,
    };

    /// Linux-like spacing (16 bytes from 32) with this crate's lazy zspages, for
    /// comparisons.
    pub const FINE: PoolConfig = PoolConfig {
        max_chain: 16,
        min_class: 32,
        small_spacing: 16,
        split: PAGE_SIZE,
        spacing: 16,
    };
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig::DEFAULT
    }
}

/// Why a pool could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// A [`PoolConfig`] field is out of range; the text says which.
    InvalidConfig(&'static str),
    /// Metadata memory could not be allocated.
    NoMemory,
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::InvalidConfig(why) => write!(f, "invalid zsmalloc configuration: {why}"),
            CreateError::NoMemory => f.write_str("no memory for zsmalloc metadata"),
        }
    }
}

/// Where a pool's metadata bytes (outside its frames) go; see [`ZsPool::metadata`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataStats {
    /// Handle tables: 4 bytes per entry (live or free), plus growth slack.
    pub handle_tables: usize,
    /// Zspage descriptors.
    pub zspage_descriptors: usize,
    /// Frame lists: 8 bytes per frame held.
    pub frame_lists: usize,
    /// Slot bitmaps: one bit per slot, in 64-bit words per zspage.
    pub bitmaps: usize,
    /// Fixed: the pool, its class structs and its size lookup table.
    pub fixed: usize,
}

impl MetadataStats {
    /// Sum of all parts ([`PoolStats::metadata_bytes`]).
    pub fn total(&self) -> usize {
        self.handle_tables + self.zspage_descriptors + self.frame_lists + self.bitmaps + self.fixed
    }
}

/// One row of the per-class table (the kernel's debugfs `classes` file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Class index (the representative of merged classes; the huge class is last).
    pub index: usize,
    /// Slot size in bytes (header included; 4096 for the huge class).
    pub size: usize,
    /// Smallest object length this class stores.
    pub min_len: usize,
    /// Largest object length this class stores.
    pub max_len: usize,
    /// Whether this is the huge class (one object alone in a frame).
    pub huge: bool,
    /// Zspages per fullness group (0 = empty, 1..=10 = 10 % buckets, 11 = full).
    pub fullness: [usize; FULLNESS_GROUPS],
    /// Slots backed by frames (the kernel's `obj_allocated`).
    pub objs_allocated: usize,
    /// Live objects (`obj_used`).
    pub objs_used: usize,
    /// Live bytes.
    pub bytes: usize,
    /// Frames held (`pages_used`).
    pub frames: usize,
    /// Zspages held.
    pub zspages: usize,
    /// Frames per full zspage (`pages_per_zspage`).
    pub frames_per_zspage: usize,
    /// Objects per zspage.
    pub objs_per_zspage: usize,
    /// Frames compaction could free now (`freeable`).
    pub freeable: usize,
    /// Frames freed by compaction in this class so far.
    pub compacted: usize,
}

struct Class {
    geo: Geometry,
    min_len: u16,
    inner: Mutex<ClassInner>,
}

/// Size-class allocator over a [`PageSource`]; implements [`ZPool`].
pub struct ZsPool<S: PageSource> {
    source: S,
    config: PoolConfig,
    classes: Vec<Class>,
    /// `(len + HEADER).div_ceil(8)` -> class index, for `len` in `1..=PAGE_SIZE`.
    lookup: Vec<u8>,
    frames: AtomicUsize,
    compacted: AtomicUsize,
}

/// Picks (frames, objects) for slot size `size`: least waste fraction, most frames on
/// ties, at most `max_chain` frames and `MAX_OBJS` objects.
fn geometry(size: usize, max_chain: usize) -> Geometry {
    let kmax = max_chain.min((MAX_OBJS * size / PAGE_SIZE).max(1));
    let mut best = (usize::MAX, 1usize, 1usize); // (waste * PAGE_SIZE-normalised, k, m)
    for k in 1..=kmax {
        let m = (k * PAGE_SIZE / size).min(MAX_OBJS);
        if m == 0 {
            continue;
        }
        let waste = k * PAGE_SIZE - m * size;
        // Compare waste / (k * PAGE_SIZE) without floats: w1 * k2 <= w2 * k1. On a tie
        // the longer zspage wins: frames are taken lazily, so length costs nothing, and
        // fewer zspages mean fewer descriptors.
        if best.0 == usize::MAX || waste * best.1 <= best.0 * k {
            best = (waste, k, m);
        }
    }
    Geometry::new(size, best.1, best.2, false)
}

impl<S: PageSource> ZsPool<S> {
    /// A pool with [`PoolConfig::DEFAULT`].
    pub fn new(source: S) -> Result<Self, CreateError> {
        Self::with_config(source, PoolConfig::DEFAULT)
    }

    /// A pool with the given class layout.
    pub fn with_config(source: S, config: PoolConfig) -> Result<Self, CreateError> {
        let c = config;
        if c.max_chain == 0 || c.max_chain > 255 {
            return Err(CreateError::InvalidConfig("max_chain must be in 1..=255"));
        }
        if c.min_class < 8 || !c.min_class.is_multiple_of(8) || c.min_class > PAGE_SIZE {
            return Err(CreateError::InvalidConfig(
                "min_class must be a multiple of 8 in 8..=4096",
            ));
        }
        if c.small_spacing == 0
            || !c.small_spacing.is_multiple_of(8)
            || c.spacing == 0
            || !c.spacing.is_multiple_of(8)
        {
            return Err(CreateError::InvalidConfig(
                "spacings must be non-zero multiples of 8",
            ));
        }
        // Slot sizes, smallest first; the huge class comes last.
        let mut sizes: Vec<usize> = Vec::new();
        let mut s = c.min_class;
        while s < PAGE_SIZE {
            sizes.try_reserve(1).map_err(|_| CreateError::NoMemory)?;
            sizes.push(s);
            s += if s < c.split {
                c.small_spacing
            } else {
                c.spacing
            };
        }
        // Merge from the largest down: a class with the geometry of the next larger
        // distinct class uses that one.
        let mut geos: Vec<Geometry> = Vec::new();
        geos.try_reserve(sizes.len() + 1)
            .map_err(|_| CreateError::NoMemory)?;
        geos.push(Geometry::new(PAGE_SIZE, 1, 1, true));
        // rep_of_size[i] = index into `geos` (built in descending order).
        let mut rep_desc: Vec<usize> = Vec::new();
        rep_desc
            .try_reserve(sizes.len())
            .map_err(|_| CreateError::NoMemory)?;
        for &size in sizes.iter().rev() {
            let g = geometry(size, c.max_chain);
            let last = geos.len() - 1;
            let prev = geos[last];
            if !prev.huge && prev.frames() == g.frames() && prev.objs() == g.objs() {
                rep_desc.push(last);
            } else if g.objs() == 1 && g.frames() == 1 {
                // One object per frame: the huge class does that without a header.
                rep_desc.push(0);
            } else {
                geos.push(g);
                rep_desc.push(geos.len() - 1);
            }
        }
        if geos.len() > 256 {
            return Err(CreateError::InvalidConfig(
                "more than 256 distinct classes: use a coarser spacing",
            ));
        }
        // Renumber ascending: class index = geos.len() - 1 - desc index, except the huge
        // class which goes last.
        let n = geos.len();
        let asc = |d: usize| if d == 0 { n - 1 } else { n - 1 - d };
        let mut classes: Vec<Class> = Vec::new();
        classes.try_reserve(n).map_err(|_| CreateError::NoMemory)?;
        for i in 0..n {
            let d = if i == n - 1 { 0 } else { n - 1 - i };
            let geo = geos[d];
            classes.push(Class {
                geo,
                min_len: 0,
                inner: Mutex::new(ClassInner::new(geo)),
            });
        }
        let slots = (PAGE_SIZE + HEADER).div_ceil(8) + 1;
        let mut lookup: Vec<u8> = Vec::new();
        lookup
            .try_reserve_exact(slots)
            .map_err(|_| CreateError::NoMemory)?;
        // sizes ascending; rep_desc is in descending size order.
        let nsizes = sizes.len();
        for key in 0..slots {
            let need = key * 8;
            let pos = sizes.partition_point(|&s| s < need);
            let cls = if pos == nsizes {
                n - 1
            } else {
                asc(rep_desc[nsizes - 1 - pos])
            };
            lookup.push(cls as u8);
        }
        // Smallest length per class, for reports.
        for len in (1..=PAGE_SIZE).rev() {
            let cls = lookup[(len + HEADER).div_ceil(8)] as usize;
            classes[cls].min_len = len as u16;
        }
        Ok(ZsPool {
            source,
            config,
            classes,
            lookup,
            frames: AtomicUsize::new(0),
            compacted: AtomicUsize::new(0),
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
            .map_or(1, |c| c.geo.size() - HEADER + 1)
    }

    /// Class index that stores objects of `len` bytes (`None` if `len` is 0 or over
    /// 4096).
    pub fn class_index(&self, len: usize) -> Option<usize> {
        if len == 0 || len > PAGE_SIZE {
            return None;
        }
        Some(self.lookup[(len + HEADER).div_ceil(8)] as usize)
    }

    /// Map-style read (the kernel's `zs_map_object` for reading): calls `f` with the
    /// object's bytes and returns its result. An object that lies in one frame is passed
    /// in place, without a copy; one that spans two frames is first copied into
    /// `bounce`, which must then be at least the object's length
    /// ([`ZPoolError::BadLength`] otherwise; a 4096-byte bounce always suffices).
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

    /// Metadata bytes outside the frames, by kind.
    pub fn metadata(&self) -> MetadataStats {
        let mut m = MetadataStats {
            fixed: core::mem::size_of::<Self>()
                + self.classes.capacity() * core::mem::size_of::<Class>()
                + self.lookup.capacity(),
            ..MetadataStats::default()
        };
        for class in &self.classes {
            let [h, z, f, b] = class.inner.lock().metadata();
            m.handle_tables += h;
            m.zspage_descriptors += z;
            m.frame_lists += f;
            m.bitmaps += b;
        }
        m
    }

    /// Frames [`ZsPool::compact`] could give back now (the kernel's `zs_can_compact`
    /// summed over classes). Takes each class lock briefly; O(classes).
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

    /// Compacts one class; returns frames freed.
    pub fn compact_class(&self, index: usize) -> usize {
        let Some(class) = self.classes.get(index) else {
            return 0;
        };
        let mut total = 0;
        loop {
            // One bounded pass per lock hold: stores, loads and frees of the class get
            // the lock between passes.
            let mut inner = class.inner.lock();
            let before = inner.c.frames;
            let pass = inner.compact_pass(&self.source);
            let after = inner.c.frames;
            drop(inner);
            self.account(before, after);
            self.compacted.fetch_add(pass.freed, Ordering::Relaxed);
            total += pass.freed;
            if !pass.more {
                return total;
            }
        }
    }

    /// The per-class table: calls `f` once per class, smallest first, huge class last.
    pub fn for_each_class(&self, mut f: impl FnMut(&ClassStats)) {
        for (index, class) in self.classes.iter().enumerate() {
            let inner = class.inner.lock();
            let row = ClassStats {
                index,
                size: class.geo.size(),
                min_len: usize::from(class.min_len),
                max_len: if class.geo.huge {
                    PAGE_SIZE
                } else {
                    class.geo.size() - HEADER
                },
                huge: class.geo.huge,
                fullness: inner.counts.map(|n| n as usize),
                objs_allocated: inner.objs_allocated(),
                objs_used: inner.c.used,
                bytes: inner.c.bytes,
                frames: inner.c.frames,
                zspages: inner.c.zspages as usize,
                frames_per_zspage: class.geo.frames(),
                objs_per_zspage: class.geo.objs(),
                freeable: inner.freeable(),
                compacted: inner.c.compacted as usize,
            };
            drop(inner);
            f(&row);
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

    /// Writes the per-class table in the layout of the kernel's debugfs
    /// `zsmalloc/<pool>/classes` file (one line per class holding frames, then a total
    /// line). Columns: class, slot size, zspages per fullness group (`10%` = in use
    /// under 10 %, ..., `100%` = 90-99 %, `full`), `obj_allocated`, `obj_used`,
    /// `pages_used`, `pages_per_zspage`, `freeable`.
    pub fn write_class_table(&self, w: &mut impl fmt::Write) -> fmt::Result {
        write!(w, "{:>5} {:>5}", "class", "size")?;
        for g in 1..FULLNESS_GROUPS - 1 {
            write!(w, " {:>3}%", g * 10)?;
        }
        writeln!(
            w,
            " {:>4} {:>13} {:>8} {:>10} {:>16} {:>8}",
            "full", "obj_allocated", "obj_used", "pages_used", "pages_per_zspage", "freeable"
        )?;
        let mut total = ClassStats::default();
        let mut result = Ok(());
        self.for_each_class(|c| {
            if c.frames == 0 || result.is_err() {
                return;
            }
            result = (|| {
                write!(w, "{:>5} {:>5}", c.index, c.size)?;
                for g in 1..FULLNESS_GROUPS {
                    write!(w, " {:>4}", c.fullness[g])?;
                }
                writeln!(
                    w,
                    " {:>13} {:>8} {:>10} {:>16} {:>8}",
                    c.objs_allocated, c.objs_used, c.frames, c.frames_per_zspage, c.freeable
                )
            })();
            total.objs_allocated += c.objs_allocated;
            total.objs_used += c.objs_used;
            total.frames += c.frames;
            total.freeable += c.freeable;
        });
        result?;
        writeln!(
            w,
            "{:<width$} {:>13} {:>8} {:>10} {:>16} {:>8}",
            "Total",
            total.objs_allocated,
            total.objs_used,
            total.frames,
            "",
            total.freeable,
            width = 11 + 5 * (FULLNESS_GROUPS - 1),
        )
    }

    fn split(&self, handle: Handle) -> Result<(&Class, u32, u16), ZPoolError> {
        let raw = handle.to_raw();
        let idx = (raw & ((1 << INDEX_BITS) - 1)) as u32;
        let cls = ((raw >> INDEX_BITS) & 0xff) as usize;
        let generation = (raw >> 32) as u16;
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
        let mut inner = class.inner.lock();
        let before = inner.c.frames;
        let res = inner.alloc(len, data, &self.source);
        let after = inner.c.frames;
        drop(inner);
        self.account(before, after);
        let (idx, generation) = res?;
        Self::handle(cls, idx, generation).ok_or(ZPoolError::NoMemory)
    }

    fn handle(cls: usize, idx: u32, generation: u16) -> Option<Handle> {
        let raw = (u64::from(generation) << 32) | ((cls as u64) << INDEX_BITS) | u64::from(idx);
        Handle::from_raw(raw)
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
        let (class, idx, generation) = self.split(handle)?;
        let mut inner = class.inner.lock();
        let loc = inner.lookup(idx, generation)?;
        let before = inner.c.frames;
        inner.free(idx, loc, &self.source);
        let after = inner.c.frames;
        drop(inner);
        self.account(before, after);
        Ok(())
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
        let mut st = PoolStats::default();
        for class in &self.classes {
            let inner = class.inner.lock();
            st.frames += inner.c.frames;
            st.objects += inner.c.used;
            st.bytes += inner.c.bytes;
        }
        st.metadata_bytes = self.metadata().total();
        st
    }

    fn compact(&self) -> usize {
        // Largest classes first, as the kernel does (they free the most per move).
        (0..self.classes.len())
            .rev()
            .map(|i| self.compact_class(i))
            .sum()
    }
}

impl<S: PageSource> Drop for ZsPool<S> {
    fn drop(&mut self) {
        for class in &self.classes {
            class.inner.lock().release_all(&self.source);
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

/// Locks of this crate (class locks) held right now by any thread, counted only with the
/// `lock-count` feature (tests: a page source checks that it is never called with one
/// held); always 0 without it.
#[doc(hidden)]
pub fn held_locks() -> usize {
    sync::held()
}
