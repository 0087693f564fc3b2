//! One size class: its zspages, its handle table, its fullness lists and compaction.
//!
//! Everything here runs under the class's own lock (see `lib.rs`).
//!
//! Layout of a zspage of class size `c` with geometry (`k` frames, `m` slots): slot `j`
//! occupies bytes `j*c .. (j+1)*c` of the zspage's frames taken as one byte range, so an
//! object may span two frames. Frames are taken lazily: a zspage holds only the frames
//! its highest used slot needs, and grows one frame at a time up to `k`. A slot starts
//! with a 4-byte header (object length, a magic and the handle's generation) followed by
//! the object. Huge classes (one object per frame) keep length and generation in the
//! zspage descriptor instead, so a whole 4096-byte object fits.

use alloc::boxed::Box;
use alloc::vec::Vec;
use zpool::{Frame, PAGE_SIZE, PageSource, ZPoolError};

/// Bytes of in-slot header (non-huge classes).
pub(crate) const HEADER: usize = 4;
/// Bits of the slot number in a handle-table entry.
pub(crate) const SLOT_BITS: u32 = 9;
/// Most objects one zspage holds.
pub(crate) const MAX_OBJS: usize = 1 << SLOT_BITS;
/// Bits of the zspage number in a handle-table entry.
const ZS_BITS: u32 = 22;
/// Most zspages one class holds at once.
const MAX_ZSPAGES: usize = 1 << ZS_BITS;
/// Bits of a handle's table index.
pub(crate) const INDEX_BITS: u32 = 24;
/// Most handle-table entries one class holds.
const MAX_HANDLES: usize = 1 << INDEX_BITS;
/// A free handle-table entry has this bit set; the rest links to the next free entry.
const FREE_BIT: u32 = 1 << 31;
/// End of an intrusive list.
const NONE: u32 = u32::MAX;
/// Fullness groups: 0 = empty (never listed: an empty zspage is freed at once),
/// 1..=10 = in-use ratio buckets of 10 %, 11 = full (the kernel's 6.4+ groups, with the
/// 99 % bucket folded into the 90 % one).
pub(crate) const NGROUPS: usize = 12;
const FULL: usize = NGROUPS - 1;

const LEN_MASK: u32 = 0x1fff;
const MAGIC_MASK: u32 = 0b111 << 13;
const MAGIC: u32 = 0b101 << 13;

/// Bytes copied per step when an object moves (keeps stack use small).
const MOVE_CHUNK: usize = 128;

/// Shape of a class's zspages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Slot size in bytes (header included for non-huge classes).
    sz: u16,
    /// Frames per full zspage.
    k: u16,
    /// Slots per zspage.
    m: u16,
    /// One object alone in a frame, header kept in the descriptor.
    pub huge: bool,
}

impl Geometry {
    /// A class shape (`size` <= 4096, `frames` <= 255, `objs` <= 512).
    pub(crate) const fn new(size: usize, frames: usize, objs: usize, huge: bool) -> Geometry {
        Geometry {
            sz: size as u16,
            k: frames as u16,
            m: objs as u16,
            huge,
        }
    }

    /// Slot size in bytes.
    pub(crate) const fn size(&self) -> usize {
        self.sz as usize
    }

    /// Frames per full zspage.
    pub(crate) const fn frames(&self) -> usize {
        self.k as usize
    }

    /// Slots per zspage.
    pub(crate) const fn objs(&self) -> usize {
        self.m as usize
    }

    /// Frames a zspage needs so that slots `0..=slot` are backed.
    fn frames_for_slot(&self, slot: usize) -> usize {
        if self.huge {
            1
        } else {
            ((slot + 1) * self.size()).div_ceil(PAGE_SIZE)
        }
    }

    /// Slots fully backed by `nframes` frames.
    pub(crate) fn backed_slots(&self, nframes: usize) -> usize {
        if self.huge {
            nframes.min(1)
        } else {
            (nframes * PAGE_SIZE / self.size()).min(self.objs())
        }
    }

    /// Fewest frames that can hold `n` objects: full zspages plus one prefix-packed one.
    pub(crate) fn min_frames(&self, n: usize) -> usize {
        let full = n / self.objs();
        let rest = n % self.objs();
        full * self.frames()
            + if rest == 0 {
                0
            } else {
                self.frames_for_slot(rest - 1)
            }
    }
}

/// A zspage descriptor: its frames (grown one at a time) and list links. 32 bytes.
#[derive(Debug)]
struct ZsPage {
    /// Frames held (none for a free descriptor). A boxed slice, not a `Vec`: its length
    /// is its capacity, which saves the 8-byte capacity field.
    frames: Box<[Frame]>,
    /// Live objects.
    inuse: u16,
    /// Fullness group it is listed in (0: not listed).
    group: u8,
    /// Previous zspage in its fullness list.
    prev: u32,
    /// Next zspage in its fullness list, or next free descriptor.
    next: u32,
    /// Huge classes: the object's length and generation.
    hlen: u16,
    hgen: u16,
}

// The descriptor's size is part of the metadata budget (README, "Metadata").
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<ZsPage>() == 32);

impl ZsPage {
    /// A descriptor without frames (an empty boxed slice does not allocate).
    fn empty() -> ZsPage {
        ZsPage {
            frames: Box::default(),
            inuse: 0,
            group: 0,
            prev: NONE,
            next: NONE,
            hlen: 0,
            hgen: 0,
        }
    }
}

/// Per-class counters reported by [`crate::ClassStats`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub used: usize,
    pub bytes: usize,
    pub frames: usize,
    pub zspages: u32,
    pub compacted: u32,
}

/// A validated object location.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    zs: usize,
    slot: usize,
    pub len: usize,
}

/// State of one size class (lives inside the class lock).
pub(crate) struct ClassInner {
    pub geo: Geometry,
    words: u8,
    zspages: Vec<ZsPage>,
    free_zs: u32,
    bitmap: Vec<u64>,
    handles: Vec<u32>,
    free_handle: u32,
    heads: [u32; NGROUPS],
    pub counts: [u32; NGROUPS],
    generation: u16,
    pub c: Counters,
}

fn group_of(inuse: usize, objs: usize) -> usize {
    if inuse == 0 {
        0
    } else if inuse >= objs {
        FULL
    } else {
        1 + (inuse * 100 / objs / 10).min(9)
    }
}

fn read_bytes(frames: &[Frame], off: usize, out: &mut [u8]) -> Result<(), ZPoolError> {
    let mut off = off;
    let mut done = 0;
    while done < out.len() {
        let f = frames.get(off / PAGE_SIZE);
        let f = f.ok_or(ZPoolError::InvalidHandle)?;
        let within = off % PAGE_SIZE;
        let n = (PAGE_SIZE - within).min(out.len() - done);
        out[done..done + n].copy_from_slice(&f.as_page()[within..within + n]);
        done += n;
        off += n;
    }
    Ok(())
}

fn write_bytes(frames: &mut [Frame], off: usize, data: &[u8]) -> Result<(), ZPoolError> {
    let mut off = off;
    let mut done = 0;
    while done < data.len() {
        let f = frames.get_mut(off / PAGE_SIZE);
        let f = f.ok_or(ZPoolError::InvalidHandle)?;
        let within = off % PAGE_SIZE;
        let n = (PAGE_SIZE - within).min(data.len() - done);
        f.as_page_mut()[within..within + n].copy_from_slice(&data[done..done + n]);
        done += n;
        off += n;
    }
    Ok(())
}

/// Most zspages one compaction pass works on (half sources, half destinations).
pub(crate) const PASS_ZSPAGES: usize = 64;

/// What one compaction pass did.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassOutcome {
    /// Net frames given back to the source.
    pub freed: usize,
    /// Another pass may free more.
    pub more: bool,
}

/// Slot -> handle index map over a compaction pass's zspages.
struct RevMap<'a> {
    /// The pass's zspage ids, sorted.
    set: &'a [u32],
    /// `rev[pos * m + slot]`: handle index of the object in that slot, or `NONE`.
    rev: &'a mut [u32],
    m: usize,
}

impl RevMap<'_> {
    fn index(&self, (z, slot): (usize, usize)) -> Option<usize> {
        let pos = self.set.binary_search(&(z as u32)).ok()?;
        Some(pos * self.m + slot)
    }
}

/// Fallible growth by at least `additional`, by an eighth of the length (not the usual
/// doubling): metadata slack stays near 12 %, pushes stay amortised O(1).
fn reserve<T>(v: &mut Vec<T>, additional: usize) -> Result<(), ZPoolError> {
    if v.capacity() - v.len() >= additional {
        return Ok(());
    }
    let want = additional.max(v.len() / 8);
    v.try_reserve_exact(want).map_err(|_| ZPoolError::NoMemory)
}

impl ClassInner {
    pub(crate) fn new(geo: Geometry) -> ClassInner {
        ClassInner {
            geo,
            words: geo.objs().div_ceil(64) as u8,
            zspages: Vec::new(),
            free_zs: NONE,
            bitmap: Vec::new(),
            handles: Vec::new(),
            free_handle: NONE,
            heads: [NONE; NGROUPS],
            counts: [0; NGROUPS],
            generation: 0,
            c: Counters::default(),
        }
    }

    /// Heap bytes of this class's metadata: (handle table, zspage descriptors, frame
    /// lists, slot bitmaps).
    pub(crate) fn metadata(&self) -> [usize; 4] {
        [
            self.handles.capacity() * core::mem::size_of::<u32>(),
            self.zspages.capacity() * core::mem::size_of::<ZsPage>(),
            self.zspages
                .iter()
                .map(|z| z.frames.len() * core::mem::size_of::<Frame>())
                .sum::<usize>(),
            self.bitmap.capacity() * core::mem::size_of::<u64>(),
        ]
    }

    /// Slots backed by frames, over all zspages (the kernel's `obj_allocated`).
    pub(crate) fn objs_allocated(&self) -> usize {
        self.zspages
            .iter()
            .map(|z| self.geo.backed_slots(z.frames.len()))
            .sum()
    }

    /// Frames compaction could give back now (the kernel's `zs_can_compact`).
    pub(crate) fn freeable(&self) -> usize {
        if self.geo.huge {
            return 0;
        }
        self.c
            .frames
            .saturating_sub(self.geo.min_frames(self.c.used))
    }

    /// Bitmap words per zspage.
    fn words(&self) -> usize {
        usize::from(self.words)
    }

    fn next_gen(&mut self) -> u16 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.generation = 1;
        }
        self.generation
    }

    // ---- fullness lists ----

    fn unlink(&mut self, z: usize) {
        let g = self.zspages[z].group as usize;
        if g == 0 {
            return;
        }
        let (prev, next) = (self.zspages[z].prev, self.zspages[z].next);
        if prev == NONE {
            self.heads[g] = next;
        } else {
            self.zspages[prev as usize].next = next;
        }
        if next != NONE {
            self.zspages[next as usize].prev = prev;
        }
        self.counts[g] -= 1;
        let zs = &mut self.zspages[z];
        zs.group = 0;
        zs.prev = NONE;
        zs.next = NONE;
    }

    fn link(&mut self, z: usize) {
        let g = group_of(self.zspages[z].inuse as usize, self.geo.objs());
        if g == 0 {
            return;
        }
        let head = self.heads[g];
        if head != NONE {
            self.zspages[head as usize].prev = z as u32;
        }
        let zs = &mut self.zspages[z];
        zs.group = g as u8;
        zs.prev = NONE;
        zs.next = head;
        self.heads[g] = z as u32;
        self.counts[g] += 1;
    }

    fn relink(&mut self, z: usize) {
        let g = group_of(self.zspages[z].inuse as usize, self.geo.objs());
        if g != self.zspages[z].group as usize {
            self.unlink(z);
            self.link(z);
        }
    }

    /// The fullest zspage with a free slot.
    fn fullest_nonfull(&self) -> Option<usize> {
        (1..FULL)
            .rev()
            .map(|g| self.heads[g])
            .find(|&h| h != NONE)
            .map(|h| h as usize)
    }

    // ---- bitmaps ----

    /// Used slots of zspage `z` with bytes in its last frame.
    fn touching_last_frame(&self, z: usize) -> usize {
        let f = self.zspages[z].frames.len();
        if f == 0 {
            return 0;
        }
        let start = (f - 1) * PAGE_SIZE;
        // Slot j reaches into the last frame when (j + 1) * size > start.
        let first = start / self.geo.size();
        (first..self.geo.objs())
            .filter(|&j| self.is_used(z, j))
            .count()
    }

    /// Free slots of zspage `z` that `nframes` frames back.
    fn free_backed(&self, z: usize, nframes: usize) -> usize {
        let backed = self.geo.backed_slots(nframes);
        (0..backed).filter(|&j| !self.is_used(z, j)).count()
    }

    fn is_used(&self, z: usize, j: usize) -> bool {
        self.bitmap[z * self.words() + j / 64] & (1 << (j % 64)) != 0
    }

    fn lowest_free(&self, z: usize) -> Option<usize> {
        let words = &self.bitmap[z * self.words()..(z + 1) * self.words()];
        for (i, &w) in words.iter().enumerate() {
            if w != u64::MAX {
                let j = i * 64 + (!w).trailing_zeros() as usize;
                return (j < self.geo.objs()).then_some(j);
            }
        }
        None
    }

    fn highest_used(&self, z: usize) -> Option<usize> {
        let words = &self.bitmap[z * self.words()..(z + 1) * self.words()];
        for (i, &w) in words.iter().enumerate().rev() {
            if w != 0 {
                return Some(i * 64 + 63 - w.leading_zeros() as usize);
            }
        }
        None
    }

    fn set_bit(&mut self, z: usize, j: usize, on: bool) {
        let words = self.words();
        let w = &mut self.bitmap[z * words + j / 64];
        if on {
            *w |= 1 << (j % 64);
        } else {
            *w &= !(1 << (j % 64));
        }
    }

    // ---- zspages ----

    fn zs_frames(&self, z: usize) -> &[Frame] {
        &self.zspages[z].frames
    }

    fn zs_frames_mut(&mut self, z: usize) -> &mut [Frame] {
        &mut self.zspages[z].frames
    }

    /// Takes a free descriptor (all metadata reserved fallibly); the zspage has no frame.
    fn new_zspage(&mut self) -> Result<usize, ZPoolError> {
        if self.free_zs != NONE {
            let z = self.free_zs as usize;
            self.free_zs = self.zspages[z].next;
            self.zspages[z] = ZsPage::empty();
            return Ok(z);
        }
        let z = self.zspages.len();
        if z >= MAX_ZSPAGES {
            return Err(ZPoolError::NoMemory);
        }
        reserve(&mut self.zspages, 1)?;
        let words = self.words();
        reserve(&mut self.bitmap, words)?;
        self.zspages.push(ZsPage::empty());
        self.bitmap.extend((0..self.words()).map(|_| 0));
        Ok(z)
    }

    /// Gives an empty zspage's frames back and puts its descriptor on the free list.
    fn release_zspage<S: PageSource + ?Sized>(&mut self, z: usize, source: &S) -> usize {
        self.unlink(z);
        let frames = core::mem::take(&mut self.zspages[z].frames);
        let n = frames.len();
        for frame in frames.into_vec() {
            source.free_frame(frame);
        }
        if n > 0 {
            self.c.zspages -= 1;
        }
        self.c.frames -= n;
        let words = self.words();
        for w in &mut self.bitmap[z * words..(z + 1) * words] {
            *w = 0;
        }
        self.zspages[z] = ZsPage {
            next: self.free_zs,
            ..ZsPage::empty()
        };
        self.free_zs = z as u32;
        n
    }

    /// Grows zspage `z` to `need` frames. On failure the frames taken by this call go
    /// back to the source and the zspage is as it was.
    fn grow<S: PageSource + ?Sized>(
        &mut self,
        z: usize,
        need: usize,
        source: &S,
    ) -> Result<(), ZPoolError> {
        let before = self.zspages[z].frames.len();
        let need = need.min(self.geo.frames());
        if need <= before {
            return Ok(());
        }
        // The new list, reserved exactly (its length will be its capacity, so turning it
        // into a boxed slice does not reallocate); the new frames first, then the old
        // ones moved in front of them. Nothing changes until every step has succeeded.
        let mut v: Vec<Frame> = Vec::new();
        v.try_reserve_exact(need)
            .map_err(|_| ZPoolError::NoMemory)?;
        while v.len() < need - before {
            match source.alloc_frame() {
                Ok(f) => v.push(f),
                Err(_) => {
                    for f in v {
                        source.free_frame(f);
                    }
                    return Err(ZPoolError::NoMemory);
                }
            }
        }
        let added = v.len();
        v.extend(core::mem::take(&mut self.zspages[z].frames).into_vec());
        v.rotate_left(added);
        self.zspages[z].frames = v.into_boxed_slice();
        if before == 0 {
            self.c.zspages += 1;
        }
        self.c.frames += need - before;
        Ok(())
    }

    /// Frees the frames of zspage `z` beyond those its highest used slot needs.
    fn trim<S: PageSource + ?Sized>(&mut self, z: usize, source: &S) {
        let Some(top) = self.highest_used(z) else {
            return;
        };
        let need = self.geo.frames_for_slot(top);
        let have = self.zspages[z].frames.len();
        if have <= need {
            return;
        }
        // A new exact list for the frames kept; without memory for it, nothing is trimmed.
        let mut v: Vec<Frame> = Vec::new();
        if v.try_reserve_exact(need).is_err() {
            return;
        }
        let mut old = core::mem::take(&mut self.zspages[z].frames)
            .into_vec()
            .into_iter();
        v.extend(old.by_ref().take(need));
        for f in old {
            source.free_frame(f);
        }
        self.zspages[z].frames = v.into_boxed_slice();
        self.c.frames -= have - need;
    }

    // ---- objects ----

    fn write_header(
        &mut self,
        z: usize,
        j: usize,
        len: usize,
        generation: u16,
    ) -> Result<(), ZPoolError> {
        if self.geo.huge {
            let zs = &mut self.zspages[z];
            zs.hlen = len as u16;
            zs.hgen = generation;
            return Ok(());
        }
        let h = ((len as u32 & LEN_MASK) | MAGIC | (u32::from(generation) << 16)).to_le_bytes();
        let off = j * self.geo.size();
        let within = off % PAGE_SIZE;
        if within + HEADER <= PAGE_SIZE {
            // Fast path: the header lies in one frame.
            let f = self.zspages[z]
                .frames
                .get_mut(off / PAGE_SIZE)
                .ok_or(ZPoolError::InvalidHandle)?;
            f.as_page_mut()[within..within + HEADER].copy_from_slice(&h);
            return Ok(());
        }
        write_bytes(self.zs_frames_mut(z), off, &h)
    }

    /// Allocates a slot for `len` bytes; returns (table index, generation).
    /// With `data` (of length `len`), the object is written before its handle is
    /// committed.
    pub(crate) fn alloc<S: PageSource + ?Sized>(
        &mut self,
        len: usize,
        data: Option<&[u8]>,
        source: &S,
    ) -> Result<(u32, u16), ZPoolError> {
        // Reserve the handle entry first: nothing below may fail after frames are taken
        // except the frames themselves.
        if self.free_handle == NONE {
            if self.handles.len() >= MAX_HANDLES {
                return Err(ZPoolError::NoMemory);
            }
            reserve(&mut self.handles, 1)?;
        }
        let (z, fresh) = match self.fullest_nonfull() {
            Some(z) => (z, false),
            None => (self.new_zspage()?, true),
        };
        let Some(j) = self.lowest_free(z) else {
            // A listed non-full zspage always has a free slot; a fresh one too.
            return Err(ZPoolError::NoMemory);
        };
        let need = self.geo.frames_for_slot(j);
        if let Err(e) = self.grow(z, need, source) {
            if fresh {
                self.release_zspage(z, source);
            }
            return Err(e);
        }
        let generation = self.next_gen();
        let written = self
            .write_header(z, j, len, generation)
            .and_then(|()| match data {
                Some(d) => {
                    let off = self.data_off(Loc {
                        zs: z,
                        slot: j,
                        len,
                    });
                    write_bytes(self.zs_frames_mut(z), off, d)
                }
                None => Ok(()),
            });
        if let Err(e) = written {
            if fresh {
                self.release_zspage(z, source);
            }
            return Err(e);
        }
        let idx = if self.free_handle != NONE {
            let i = self.free_handle;
            self.free_handle = self.handles[i as usize] & !FREE_BIT;
            if self.free_handle == !FREE_BIT {
                self.free_handle = NONE;
            }
            i
        } else {
            self.handles.push(0);
            (self.handles.len() - 1) as u32
        };
        self.handles[idx as usize] = ((z as u32) << SLOT_BITS) | j as u32;
        self.set_bit(z, j, true);
        self.zspages[z].inuse += 1;
        if fresh {
            self.link(z);
        } else {
            self.relink(z);
        }
        self.c.used += 1;
        self.c.bytes += len;
        Ok((idx, generation))
    }

    /// Validates a handle's (index, generation) and returns where its object lives.
    pub(crate) fn lookup(&self, idx: u32, generation: u16) -> Result<Loc, ZPoolError> {
        let e = *self
            .handles
            .get(idx as usize)
            .ok_or(ZPoolError::InvalidHandle)?;
        if e & FREE_BIT != 0 {
            return Err(ZPoolError::InvalidHandle);
        }
        let z = (e >> SLOT_BITS) as usize;
        let j = (e & (MAX_OBJS as u32 - 1)) as usize;
        let zs = self.zspages.get(z).ok_or(ZPoolError::InvalidHandle)?;
        if zs.frames.is_empty() || j >= self.geo.objs() {
            return Err(ZPoolError::InvalidHandle);
        }
        let len = if self.geo.huge {
            if zs.hgen != generation {
                return Err(ZPoolError::InvalidHandle);
            }
            zs.hlen as usize
        } else {
            let off = j * self.geo.size();
            let within = off % PAGE_SIZE;
            let h = if within + HEADER <= PAGE_SIZE {
                // Fast path: the header lies in one frame.
                let f = zs
                    .frames
                    .get(off / PAGE_SIZE)
                    .ok_or(ZPoolError::InvalidHandle)?;
                let b = &f.as_page()[within..within + HEADER];
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            } else {
                let mut h = [0u8; HEADER];
                read_bytes(&zs.frames, off, &mut h)?;
                u32::from_le_bytes(h)
            };
            if h & MAGIC_MASK != MAGIC || (h >> 16) as u16 != generation {
                return Err(ZPoolError::InvalidHandle);
            }
            (h & LEN_MASK) as usize
        };
        let cap = if self.geo.huge {
            PAGE_SIZE
        } else {
            self.geo.size() - HEADER
        };
        if len == 0 || len > cap {
            // Corrupted header: never trust it with a copy.
            return Err(ZPoolError::InvalidHandle);
        }
        Ok(Loc {
            zs: z,
            slot: j,
            len,
        })
    }

    fn data_off(&self, loc: Loc) -> usize {
        if self.geo.huge {
            0
        } else {
            loc.slot * self.geo.size() + HEADER
        }
    }

    /// The object's bytes without a copy when they lie in one frame; otherwise copied
    /// into `bounce` (which must hold `loc.len` bytes) and returned from there.
    pub(crate) fn map<'a>(
        &'a self,
        loc: Loc,
        bounce: &'a mut [u8],
    ) -> Result<&'a [u8], ZPoolError> {
        let off = self.data_off(loc);
        let within = off % PAGE_SIZE;
        if within + loc.len <= PAGE_SIZE {
            let f = self
                .zs_frames(loc.zs)
                .get(off / PAGE_SIZE)
                .ok_or(ZPoolError::InvalidHandle)?;
            return Ok(&f.as_page()[within..within + loc.len]);
        }
        let out = bounce.get_mut(..loc.len).ok_or(ZPoolError::BadLength {
            object: loc.len,
            buffer: 0,
        })?;
        read_bytes(self.zs_frames(loc.zs), off, out)?;
        Ok(out)
    }

    pub(crate) fn read(&self, loc: Loc, out: &mut [u8]) -> Result<(), ZPoolError> {
        read_bytes(
            self.zs_frames(loc.zs),
            self.data_off(loc),
            &mut out[..loc.len],
        )
    }

    pub(crate) fn write(&mut self, loc: Loc, data: &[u8]) -> Result<(), ZPoolError> {
        let off = self.data_off(loc);
        write_bytes(self.zs_frames_mut(loc.zs), off, data)
    }

    /// Frees a validated object; returns frames given back to the source.
    pub(crate) fn free<S: PageSource + ?Sized>(&mut self, idx: u32, loc: Loc, source: &S) -> usize {
        let z = loc.zs;
        self.set_bit(z, loc.slot, false);
        self.handles[idx as usize] = FREE_BIT | (self.free_handle & !FREE_BIT);
        self.free_handle = idx;
        self.c.used -= 1;
        self.c.bytes -= loc.len;
        self.zspages[z].inuse -= 1;
        if self.zspages[z].inuse == 0 {
            self.release_zspage(z, source)
        } else {
            self.relink(z);
            0
        }
    }

    /// Moves the object in (zs, slot) `from` to the free slot `to` and repoints its
    /// handle entry (found through `rev`, slot -> table index).
    fn move_object(
        &mut self,
        from: (usize, usize),
        to: (usize, usize),
        map: &mut RevMap<'_>,
    ) -> Result<(), ZPoolError> {
        let size = self.geo.size();
        let (Some(rf), Some(rt)) = (map.index(from), map.index(to)) else {
            return Err(ZPoolError::InvalidHandle);
        };
        let idx = map.rev[rf];
        if idx == NONE {
            return Err(ZPoolError::InvalidHandle);
        }
        let mut buf = [0u8; MOVE_CHUNK];
        let mut done = 0;
        while done < size {
            let n = MOVE_CHUNK.min(size - done);
            read_bytes(
                &self.zspages[from.0].frames,
                from.1 * size + done,
                &mut buf[..n],
            )?;
            write_bytes(
                &mut self.zspages[to.0].frames,
                to.1 * size + done,
                &buf[..n],
            )?;
            done += n;
        }
        self.set_bit(from.0, from.1, false);
        self.set_bit(to.0, to.1, true);
        self.zspages[from.0].inuse -= 1;
        self.zspages[to.0].inuse += 1;
        map.rev[rf] = NONE;
        map.rev[rt] = idx;
        self.handles[idx as usize] = ((to.0 as u32) << SLOT_BITS) | to.1 as u32;
        Ok(())
    }

    /// One compaction pass over at most [`PASS_ZSPAGES`] partly used zspages of this
    /// class: the emptiest half are sources, the fullest half destinations. Objects move
    /// from the emptiest source into the fullest destination until one empties or the
    /// other fills; emptied zspages are freed; the partly used zspages left are packed
    /// downwards and their unused frames trimmed. The caller repeats passes (dropping
    /// the class lock in between) while [`PassOutcome::more`] says so.
    ///
    /// Memory: a temporary list of the pass's zspages and a slot -> handle map for them
    /// (`PASS_ZSPAGES * objs * 4` bytes at most), both fallible: if they cannot be had
    /// the pass does nothing. Work: one pass over the class's handle table plus the
    /// moves.
    pub(crate) fn compact_pass<S: PageSource + ?Sized>(&mut self, source: &S) -> PassOutcome {
        let stop = PassOutcome {
            freed: 0,
            more: false,
        };
        if self.geo.huge || self.freeable() == 0 {
            return stop;
        }
        let m = self.geo.objs();
        let frames_before = self.c.frames;
        // The partly used zspages, emptiest first.
        let partly: usize = self.counts[1..FULL].iter().map(|&n| n as usize).sum();
        let mut all: Vec<u32> = Vec::new();
        if all.try_reserve_exact(partly).is_err() {
            return stop;
        }
        for g in 1..FULL {
            let mut z = self.heads[g];
            while z != NONE {
                all.push(z);
                z = self.zspages[z as usize].next;
            }
        }
        all.sort_unstable_by_key(|&z| (self.zspages[z as usize].inuse, z));
        // The pass's set: the emptiest and the fullest, sorted by id for lookups.
        let mut set: Vec<u32> = Vec::new();
        if set.try_reserve_exact(all.len().min(PASS_ZSPAGES)).is_err() {
            return stop;
        }
        if all.len() <= PASS_ZSPAGES {
            set.extend_from_slice(&all);
        } else {
            set.extend_from_slice(&all[..PASS_ZSPAGES / 2]);
            set.extend_from_slice(&all[all.len() - PASS_ZSPAGES / 2..]);
        }
        drop(all);
        set.sort_unstable();
        // Slot -> handle index for the set's zspages.
        let mut rev: Vec<u32> = Vec::new();
        if rev.try_reserve_exact(set.len() * m).is_err() {
            return stop;
        }
        rev.resize(set.len() * m, NONE);
        for (i, &e) in self.handles.iter().enumerate() {
            if e & FREE_BIT == 0
                && let Ok(pos) = set.binary_search(&(e >> SLOT_BITS))
            {
                rev[pos * m + (e & (MAX_OBJS as u32 - 1)) as usize] = i as u32;
            }
        }
        let mut map = RevMap {
            set: &set,
            rev: &mut rev,
            m,
        };
        let mut failed = false;
        let mut stalled = false;
        let mut moved = 0usize;
        // Local choice of source and destination among the set's partly used zspages.
        let pick = |this: &ClassInner, fullest: bool, not: Option<u32>| {
            let cands = set.iter().copied().filter(|&z| {
                let zs = &this.zspages[z as usize];
                Some(z) != not && !zs.frames.is_empty() && zs.inuse > 0 && (zs.inuse as usize) < m
            });
            if fullest {
                cands.max_by_key(|&z| (this.zspages[z as usize].inuse, z))
            } else {
                cands.min_by_key(|&z| (this.zspages[z as usize].inuse, z))
            }
        };
        while let Some(dst) = pick(self, true, None) {
            let Some(src) = pick(self, false, Some(dst)) else {
                break;
            };
            let (dst, src) = (dst as usize, src as usize);
            self.unlink(dst);
            self.unlink(src);
            while self.zspages[src].inuse > 0 && (self.zspages[dst].inuse as usize) < m {
                let (Some(from), Some(to)) = (self.highest_used(src), self.lowest_free(dst)) else {
                    failed = true;
                    break;
                };
                let need = self.geo.frames_for_slot(to);
                if need > self.zspages[dst].frames.len() {
                    // Growing the destination by a frame is worth it only if the objects
                    // touching the source's last frame then fit, so that frame is
                    // freed by the moves that follow: the pool never ends a step with
                    // more frames than it started with, even if a later frame cannot
                    // be had.
                    if need > self.zspages[dst].frames.len() + 1
                        || self.touching_last_frame(src) > self.free_backed(dst, need)
                    {
                        stalled = true;
                        break;
                    }
                    if self.grow(dst, need, source).is_err() {
                        failed = true;
                        break;
                    }
                }
                if self.move_object((src, from), (dst, to), &mut map).is_err() {
                    failed = true;
                    break;
                }
                moved += 1;
                if self.zspages[src].inuse > 0 {
                    self.trim(src, source);
                }
            }
            self.link(dst);
            if self.zspages[src].inuse == 0 {
                self.release_zspage(src, source);
            } else {
                self.link(src);
            }
            if failed || stalled {
                break;
            }
        }
        // Pack the set's partly used zspages downwards and trim their unused frames.
        if !failed {
            for &z in &set {
                let zu = z as usize;
                if self.zspages[zu].frames.is_empty() {
                    continue;
                }
                while let (Some(lo), Some(hi)) = (self.lowest_free(zu), self.highest_used(zu)) {
                    if lo > hi || self.move_object((zu, hi), (zu, lo), &mut map).is_err() {
                        break;
                    }
                }
                self.trim(zu, source);
            }
        }
        // Net: a destination may have grown by a frame before its sources emptied.
        let freed = frames_before.saturating_sub(self.c.frames);
        self.c.compacted = self.c.compacted.saturating_add(freed as u32);
        PassOutcome {
            freed,
            // Each move goes from a zspage with no more objects than its destination, so
            // the sum of squared in-use counts grows with every move: passes end.
            more: !failed && !stalled && (freed > 0 || moved > 0) && self.freeable() > 0,
        }
    }

    /// Gives every frame back (pool teardown).
    pub(crate) fn release_all<S: PageSource + ?Sized>(&mut self, source: &S) {
        for z in self.zspages.iter_mut() {
            for frame in core::mem::take(&mut z.frames).into_vec() {
                source.free_frame(frame);
            }
        }
        self.c.frames = 0;
    }
}
