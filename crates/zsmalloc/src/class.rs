//! One size class: its zspages, slot bitmaps, fullness lists and handle table, and
//! the operations on them. Everything here runs under the class's own lock (`lib.rs`),
//! and nothing here calls the page source: a frame comes in as a `spare` the caller
//! took before locking ([`AllocFail::NeedFrame`] asks for one), and frames go out to
//! the caller, who gives them back after unlocking (`bin.rs`). Compaction is in
//! `compact.rs`.
//!
//! A slot starts with the 4-byte header (`handle.rs`: the owning entry's index and the
//! length) followed by the object. Huge classes (one object per frame) have no header:
//! the length is in the zspage descriptor, so a whole `PAGE_SIZE` object fits.

use alloc::vec::Vec;
use zpool::{Frame, PAGE_SIZE, ZPoolError};

use crate::bin::FrameBin;
use crate::bitmap::SlotMap;
use crate::fullness::Fullness;
use crate::geometry::Geometry;
use crate::handle::{HEADER, HandleTable, header, parse_header};
use crate::zspage::{self, NONE, ZsPage, reserve};
use zpool::{FrameChain, FrameTable};

/// Per-class counters reported by [`crate::ClassStats`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub used: usize,
    pub bytes: usize,
    pub frames: usize,
    pub zspages: usize,
    pub compacted: usize,
}

/// A validated object location.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    pub zs: usize,
    pub slot: usize,
    pub len: usize,
}

/// Why an allocation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllocFail {
    /// The object needs a frame and the caller has none to give: drop the lock, take
    /// one from the page source, lock again and retry (nothing was changed).
    NeedFrame,
    /// A real failure (metadata memory, limits).
    Error(ZPoolError),
}

/// State of one size class (lives inside the class lock).
pub(crate) struct ClassInner {
    pub geo: Geometry,
    /// Shortest length this class stores (the header keeps `len - min_len`).
    pub(crate) min_len: usize,
    pub(crate) zspages: Vec<ZsPage>,
    /// Zspage `z`'s frames are row `z` (rows are added with descriptors, and reused
    /// with them).
    pub(crate) frames: FrameTable,
    free_zs: u32,
    pub(crate) slots: SlotMap,
    pub(crate) table: HandleTable,
    pub(crate) lists: Fullness,
    pub c: Counters,
}

impl ClassInner {
    pub(crate) fn new(geo: Geometry, min_len: usize) -> ClassInner {
        ClassInner {
            geo,
            min_len,
            zspages: Vec::new(),
            frames: FrameTable::new(geo.frames()),
            free_zs: NONE,
            slots: SlotMap::new(geo.objs()),
            table: HandleTable::new(geo.objs()),
            lists: Fullness::new(),
            c: Counters::default(),
        }
    }

    /// Heap bytes of this class's metadata: (handle table, zspage descriptors, frame
    /// table, slot bitmaps).
    pub(crate) fn metadata(&self) -> [usize; 4] {
        [
            self.table.bytes(),
            self.zspages.capacity() * core::mem::size_of::<ZsPage>(),
            self.frames.heap_bytes(),
            self.slots.bytes(),
        ]
    }

    /// Slots backed by frames, over all zspages (the kernel's `obj_allocated`).
    pub(crate) fn objs_allocated(&self) -> usize {
        self.zspages
            .iter()
            .map(|z| self.geo.backed_slots(z.nframes()))
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

    /// Largest object length (header excluded).
    fn cap(&self) -> usize {
        if self.geo.huge {
            PAGE_SIZE
        } else {
            self.geo.size() - HEADER
        }
    }

    // ---- zspages ----

    /// Takes a free descriptor (metadata reserved fallibly); the zspage has no frame.
    fn new_zspage(&mut self) -> Result<usize, ZPoolError> {
        if self.free_zs != NONE {
            let z = self.free_zs as usize;
            self.free_zs = self.zspages[z].next;
            self.zspages[z] = ZsPage::empty();
            return Ok(z);
        }
        let z = self.zspages.len();
        if z >= self.table.max_zspages() {
            return Err(ZPoolError::NoMemory);
        }
        reserve(&mut self.zspages, 1)?;
        // A row left by an earlier attempt that failed below is reused.
        if self.frames.rows() <= z {
            self.frames.add_row().map_err(|_| ZPoolError::NoMemory)?;
        }
        self.slots.push_zspage()?;
        self.zspages.push(ZsPage::empty());
        Ok(z)
    }

    /// Takes an empty zspage off its list, puts its descriptor on the free list and
    /// moves its frames onto `out` (to be given back after the lock is dropped).
    pub(crate) fn release_zspage(&mut self, z: usize, out: &mut FrameChain) {
        self.lists.unlink(&mut self.zspages, z);
        let n = self.zspages[z].nframes();
        let taken = self.frames.take_row(z, out);
        debug_assert_eq!(
            taken, n,
            "descriptor and frame table disagree on zspage {z}"
        );
        if n > 0 {
            self.c.zspages -= 1;
        }
        self.c.frames -= n;
        self.slots.clear(z);
        let mut d = ZsPage::empty();
        d.next = self.free_zs;
        self.zspages[z] = d;
        self.free_zs = z as u32;
    }

    /// Undoes `new_zspage` for a zspage that never kept a frame (its grow failed, or
    /// was undone): nothing goes to the page source.
    fn release_fresh_zspage(&mut self, z: usize) {
        let mut none = FrameChain::new();
        self.release_zspage(z, &mut none);
        // A frame here would be leaked with the chain.
        debug_assert!(none.is_empty(), "fresh zspage {z} still had frames");
    }

    /// Grows zspage `z` by the frame in `spare` (taken only on success).
    pub(crate) fn grow(&mut self, z: usize, spare: &mut Option<Frame>) -> Result<(), ZPoolError> {
        const _: () = assert!(zpool::FRAME_ROW_MAX <= u8::MAX as usize);
        let was_empty = self.zspages[z].nframes() == 0;
        let f = spare.take().ok_or(ZPoolError::NoMemory)?;
        if let Err(f) = self.frames.push(z, f) {
            // A full row (cannot happen: slots never need more than `k` frames), or no
            // memory to turn the row wide: `spare` keeps the frame.
            *spare = Some(f);
            return Err(ZPoolError::NoMemory);
        }
        self.zspages[z].nframes += 1;
        if was_empty {
            self.c.zspages += 1;
        }
        self.c.frames += 1;
        Ok(())
    }

    /// Undoes `grow`: the top frame goes back into `spare`.
    fn ungrow(&mut self, z: usize, spare: &mut Option<Frame>) {
        if let Some(f) = self.frames.pop(z) {
            *spare = Some(f);
            self.zspages[z].nframes -= 1;
            self.c.frames -= 1;
            if self.zspages[z].nframes() == 0 {
                self.c.zspages -= 1;
            }
        }
    }

    /// Moves the frames of non-empty zspage `z` beyond those its highest used slot
    /// needs into `bin` (as many as it has room for); returns how many.
    pub(crate) fn trim(&mut self, z: usize, bin: &mut FrameBin) -> usize {
        let Some(top) = self.slots.highest_used(z) else {
            return 0;
        };
        let need = self.geo.frames_for_slot(top);
        let mut n = 0;
        while self.zspages[z].nframes() > need && bin.has_room(1) {
            let Some(f) = self.frames.pop(z) else {
                break;
            };
            bin.push_frame(f);
            self.zspages[z].nframes -= 1;
            self.c.frames -= 1;
            n += 1;
        }
        n
    }

    // ---- objects ----

    fn data_off(&self, loc: Loc) -> usize {
        if self.geo.huge {
            0
        } else {
            self.geo.slot_offset(loc.slot) + HEADER
        }
    }

    /// Allocates a slot for `len` bytes and, with `data` (of length `len`), writes it;
    /// returns (table index, generation). If the slot needs a frame, the frame comes
    /// from `spare` (the caller took it from the page source without the lock); with no
    /// spare, [`AllocFail::NeedFrame`] and nothing changed. On any failure `spare`
    /// keeps its frame.
    pub(crate) fn alloc(
        &mut self,
        len: usize,
        data: Option<&[u8]>,
        spare: &mut Option<Frame>,
    ) -> Result<(u32, u32), AllocFail> {
        // Reserve the handle entry first: nothing below fails after the frame is placed.
        self.table.reserve_one().map_err(AllocFail::Error)?;
        let existing = self.lists.fullest_nonfull();
        let (j, have) = match existing {
            Some(z) => match self.slots.lowest_free(z) {
                Some(j) => (j, self.zspages[z].nframes()),
                // A listed non-full zspage always has a free slot.
                None => return Err(AllocFail::Error(ZPoolError::NoMemory)),
            },
            None => (0, 0),
        };
        let need = self.geo.frames_for_slot(j);
        // The lowest free slot of a zspage whose lower slots are all backed needs at
        // most one more frame.
        if need > have + 1 {
            return Err(AllocFail::Error(ZPoolError::NoMemory));
        }
        if need > have && spare.is_none() {
            return Err(AllocFail::NeedFrame);
        }
        let (z, fresh) = match existing {
            Some(z) => (z, false),
            None => (self.new_zspage().map_err(AllocFail::Error)?, true),
        };
        let grew = need > have;
        if grew && let Err(e) = self.grow(z, spare) {
            if fresh {
                self.release_fresh_zspage(z);
            }
            return Err(AllocFail::Error(e));
        }
        let (idx, generation) = self.table.take(z, j);
        let written = if self.geo.huge {
            self.zspages[z].hlen = len as u32;
            Ok(())
        } else {
            let off = self.geo.slot_offset(j);
            zspage::write(&mut self.frames, z, off, &header(idx, len, self.min_len))
        };
        let written = written.and_then(|()| match data {
            Some(d) => {
                let off = self.data_off(Loc {
                    zs: z,
                    slot: j,
                    len,
                });
                zspage::write(&mut self.frames, z, off, d)
            }
            None => Ok(()),
        });
        if let Err(e) = written {
            // Cannot happen once the slot is backed; undo everything anyway.
            self.table.put(idx);
            if grew {
                self.ungrow(z, spare);
            }
            if fresh {
                self.release_fresh_zspage(z);
            }
            return Err(AllocFail::Error(e));
        }
        self.slots.set(z, j, true);
        self.zspages[z].inuse += 1;
        if fresh {
            self.lists.link(&mut self.zspages, z, self.geo.objs());
        } else {
            self.lists.relink(&mut self.zspages, z, self.geo.objs());
        }
        self.c.used += 1;
        self.c.bytes += len;
        Ok((idx, generation))
    }

    /// The (entry index, length) recorded in the header of slot (`z`, `j`).
    pub(crate) fn read_header(&self, z: usize, j: usize) -> Result<(u32, usize), ZPoolError> {
        let off = self.geo.slot_offset(j);
        let h = match zspage::in_place(&self.frames, z, off, HEADER) {
            // Fast path: the header lies in one frame.
            Some(b) => [b[0], b[1], b[2], b[3]],
            None => {
                let mut h = [0u8; HEADER];
                zspage::read(&self.frames, z, off, &mut h)?;
                h
            }
        };
        Ok(parse_header(h, self.min_len))
    }

    /// Validates a handle's (index, generation) and returns where its object lives.
    pub(crate) fn lookup(&self, idx: u32, generation: u32) -> Result<Loc, ZPoolError> {
        let (z, j) = self.table.get(idx, generation)?;
        // (The slot's used bit is not read: a live entry and a header naming it back
        // already say the slot is this object's, and the bitmap is one more cache line.
        // Nor is the descriptor, but for a huge object's length: the frame table's
        // element of the slot's last frame says the slot is backed, and it is on the
        // line the header's frame address comes from.)
        if j >= self.geo.objs() || !self.frames.contains(z, self.geo.frames_for_slot(j) - 1) {
            return Err(ZPoolError::InvalidHandle);
        }
        let len = if self.geo.huge {
            self.zspages.get(z).ok_or(ZPoolError::InvalidHandle)?.hlen as usize
        } else {
            let (owner, len) = self.read_header(z, j)?;
            if owner != idx {
                // The slot does not point back at this entry: corrupted pool memory.
                return Err(ZPoolError::InvalidHandle);
            }
            len
        };
        if len == 0 || len > self.cap() {
            // Never trust a corrupted length with a copy.
            return Err(ZPoolError::InvalidHandle);
        }
        Ok(Loc {
            zs: z,
            slot: j,
            len,
        })
    }

    /// The object's bytes without a copy when they lie in one frame; otherwise copied
    /// into `bounce` (which must hold `loc.len` bytes) and returned from there.
    pub(crate) fn map<'a>(
        &'a self,
        loc: Loc,
        bounce: &'a mut [u8],
    ) -> Result<&'a [u8], ZPoolError> {
        let off = self.data_off(loc);
        if let Some(b) = zspage::in_place(&self.frames, loc.zs, off, loc.len) {
            return Ok(b);
        }
        let out = bounce.get_mut(..loc.len).ok_or(ZPoolError::BadLength {
            object: loc.len,
            buffer: 0,
        })?;
        zspage::read(&self.frames, loc.zs, off, out)?;
        Ok(out)
    }

    pub(crate) fn read(&self, loc: Loc, out: &mut [u8]) -> Result<(), ZPoolError> {
        zspage::read(
            &self.frames,
            loc.zs,
            self.data_off(loc),
            &mut out[..loc.len],
        )
    }

    pub(crate) fn write(&mut self, loc: Loc, data: &[u8]) -> Result<(), ZPoolError> {
        let off = self.data_off(loc);
        zspage::write(&mut self.frames, loc.zs, off, data)
    }

    /// Frees a validated object; if that emptied its zspage, its frames go into `bin`
    /// (to be given back after the lock is dropped).
    pub(crate) fn free(&mut self, idx: u32, loc: Loc, bin: &mut FrameBin) {
        let z = loc.zs;
        self.slots.set(z, loc.slot, false);
        self.table.put(idx);
        self.c.used -= 1;
        self.c.bytes -= loc.len;
        self.zspages[z].inuse -= 1;
        if self.zspages[z].inuse == 0 {
            self.release_zspage(z, bin.chain());
        } else {
            self.lists.relink(&mut self.zspages, z, self.geo.objs());
        }
    }

    /// Takes every frame out (pool teardown, with exclusive access: no lock held).
    pub(crate) fn take_all_frames(&mut self, mut each: impl FnMut(Frame)) {
        for (z, d) in self.zspages.iter_mut().enumerate() {
            while let Some(f) = self.frames.pop(z) {
                each(f);
            }
            d.nframes = 0;
        }
        self.c.frames = 0;
    }
}
