//! Compaction: moving objects out of the emptiest zspages into the fullest, so that
//! emptied zspages and trimmed frames go back to the page source. Handles stay valid:
//! a move copies the slot (header and object) and rewrites the one table entry the
//! slot's header points back at.
//!
//! Work is bounded per lock hold and never depends on the class's size:
//!
//! * **Choice, O(groups).** The source is the head of the emptiest fullness group, the
//!   destination the head of the fullest non-full one (`fullness.rs`); within one group
//!   the emptier of its first two zspages is the source, so every move goes from a
//!   zspage with no more objects than its destination (the sum of squared use counts
//!   grows with each move: compaction ends).
//! * **Move, O(1).** The source's highest used slot goes to the destination's lowest
//!   free one (bitmap scans of at most 8 words); the source's header names the entry.
//!   After each move the source gives back the frames it no longer needs (trim), or
//!   all of them when it is empty.
//! * **Hold.** At most [`MOVES_PER_HOLD`] moves (or the step's smaller budget), then the
//!   lock is dropped, the frames detached meanwhile go back to the page source, and the
//!   next hold chooses afresh (anything may have changed in between).
//! * **Growth.** A destination grows by a frame only when the objects on the source's
//!   last frame then fit (so that frame is freed by the moves that follow), and no more
//!   than [`MAX_GROW_MOVES`] objects touch it. The frame comes from the page source with
//!   no lock held: the hold ends with [`HoldEnd::NeedFrame`], the caller takes a frame,
//!   locks again and the next hold chooses afresh, using it if it still needs one (an
//!   unused spare goes back after unlocking). Having grown, the hold moves every object
//!   off the source's last frame before it ends (beyond its move limit if need be), so
//!   no hold ends with more frames than it started with.
//! * **Packing.** When only one partly used zspage is left, or a destination cannot
//!   grow, zspages are packed downwards (highest used slot into the lowest free one)
//!   and trimmed.

use zpool::{CompactStep, Frame, PAGE_SIZE, PageSource};

use crate::ZsPool;
use crate::bin::FrameBin;
use crate::class::ClassInner;
use crate::fullness::Candidates;
use crate::handle::HEADER;
use crate::sync::Ordering;
use crate::zspage;

/// Most objects moved per class-lock hold (more only to finish freeing a frame a
/// destination grew by).
pub const MOVES_PER_HOLD: usize = 8;
/// Most objects a destination's growth may commit a hold to moving: one frame of the
/// smallest default slots (`PAGE_SIZE / 32`: 128 at 4 KiB), but never more than a step
/// may exceed its budget by (`CompactStep::MAX_OVERSHOOT`, 128), so 128 at every page
/// size today. A source frame touched by more objects is not emptied that way (it is
/// packed instead): at 16 and 64 KiB that concerns classes under 128 and 512 bytes.
pub const MAX_GROW_MOVES: usize = min(PAGE_SIZE / 32, CompactStep::MAX_OVERSHOOT);

const fn min(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

const _: () = assert!(MAX_GROW_MOVES <= zpool::CompactStep::MAX_OVERSHOOT);
const _: () = assert!(PAGE_SIZE != 4096 || MAX_GROW_MOVES == 128);
/// The budget of each step `compact()` takes.
const COMPACT_BUDGET: usize = 1024;
/// Bin room (single frames) a hold keeps free before each move.
const TRIM_ROOM: usize = 8;
/// Bytes copied per chunk when an object moves (keeps stack use small).
const MOVE_CHUNK: usize = 128;

/// Why a hold ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HoldEnd {
    /// The move limit (or the frame bin) was reached: more may be possible.
    More,
    /// A destination needs a frame and there was no spare.
    NeedFrame,
    /// Nothing more to do in this class now.
    Done,
}

/// What one hold did.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold {
    pub moved: usize,
    pub end: HoldEnd,
}

/// What packing one zspage did.
#[derive(PartialEq, Eq)]
enum Packed {
    Moved,
    Trimmed,
    Nothing,
}

impl ClassInner {
    /// Used slots of zspage `z` with bytes in its last frame.
    fn touching_last_frame(&self, z: usize) -> usize {
        let nf = self.zspages[z].nframes();
        if nf == 0 {
            return 0;
        }
        let first = self.geo.first_slot_in_frame(nf - 1);
        self.slots.count_used(z, first, self.geo.objs())
    }

    /// Free slots of zspage `z` that `nframes` frames back.
    fn free_backed(&self, z: usize, nframes: usize) -> usize {
        let backed = self.geo.backed_slots(nframes);
        backed - self.slots.count_used(z, 0, backed)
    }

    /// Moves the object in slot `from` (zspage, slot) to the free, backed slot `to` and
    /// repoints its entry (found through the slot's header). `false` if the header does
    /// not point at an entry that points back (corrupted memory): nothing moved.
    fn move_object(&mut self, from: (usize, usize), to: (usize, usize)) -> bool {
        let Ok((idx, len)) = self.read_header(from.0, from.1) else {
            return false;
        };
        if self.table.place(idx) != Some(from) || len == 0 || len > self.geo.size() - HEADER {
            return false;
        }
        let (src, dst) = (self.geo.slot_offset(from.1), self.geo.slot_offset(to.1));
        let total = HEADER + len;
        let mut buf = [0u8; MOVE_CHUNK];
        let mut done = 0;
        while done < total {
            let n = MOVE_CHUNK.min(total - done);
            if zspage::read(&self.frames, from.0, src + done, &mut buf[..n])
                .and_then(|()| zspage::write(&mut self.frames, to.0, dst + done, &buf[..n]))
                .is_err()
            {
                // Only possible with an unbacked destination, which the callers rule
                // out; the source is still intact and the entry unchanged.
                return false;
            }
            done += n;
        }
        self.slots.set(from.0, from.1, false);
        self.slots.set(to.0, to.1, true);
        self.zspages[from.0].inuse -= 1;
        self.zspages[to.0].inuse += 1;
        self.table.repoint(idx, to.0, to.1);
        true
    }

    /// Moves `src`'s highest used object into `dst`'s lowest free slot.
    fn move_top(&mut self, src: usize, dst: usize) -> bool {
        match (self.slots.highest_used(src), self.slots.lowest_free(dst)) {
            (Some(from), Some(to))
                if self.geo.frames_for_slot(to) <= self.zspages[dst].nframes() =>
            {
                self.move_object((src, from), (dst, to))
            }
            _ => false,
        }
    }

    /// After moves from `src` into `dst`: release or trim `src`, relist both.
    fn settle(&mut self, src: usize, dst: usize, bin: &mut FrameBin) {
        let objs = self.geo.objs();
        if self.zspages[src].inuse == 0 {
            self.release_zspage(src, bin.chain());
        } else {
            self.trim(src, bin);
            self.lists.relink(&mut self.zspages, src, objs);
        }
        self.lists.relink(&mut self.zspages, dst, objs);
    }

    /// One packing move inside zspage `z` (highest used slot into the lowest free one
    /// below it), then a trim.
    fn pack(&mut self, z: usize, bin: &mut FrameBin) -> Packed {
        let moved = match (self.slots.lowest_free(z), self.slots.highest_used(z)) {
            (Some(lo), Some(hi)) if lo < hi => self.move_object((z, hi), (z, lo)),
            _ => false,
        };
        let trimmed = self.trim(z, bin) > 0;
        if trimmed && !moved {
            return Packed::Trimmed;
        }
        if moved {
            Packed::Moved
        } else {
            Packed::Nothing
        }
    }

    /// One bounded hold of compaction: at most `budget.min(MOVES_PER_HOLD)` moves
    /// (plus, after growing a destination, the moves that free the source's last
    /// frame). A destination that needs a frame takes `spare`; without one the hold
    /// ends with [`HoldEnd::NeedFrame`]. Frames given back are moved into `bin`.
    pub(crate) fn compact_hold(
        &mut self,
        budget: usize,
        spare: &mut Option<Frame>,
        bin: &mut FrameBin,
    ) -> Hold {
        let limit = budget.clamp(1, MOVES_PER_HOLD);
        let mut moved = 0;
        let end = |moved, end| Hold { moved, end };
        if self.geo.huge {
            return end(0, HoldEnd::Done);
        }
        // Room kept in the bin for the trims of one iteration. A trim takes what fits;
        // frames it leaves are trimmed by a later hold (the source is chosen again, or
        // packed as the last partly used zspage).
        let trim_room = TRIM_ROOM;
        loop {
            if self.freeable() == 0 {
                return end(moved, HoldEnd::Done);
            }
            if moved >= limit || !bin.has_room(trim_room) {
                return end(moved, HoldEnd::More);
            }
            let (src, dst) = match self.lists.candidates(&self.zspages) {
                Candidates::None => return end(moved, HoldEnd::Done),
                Candidates::One(z) => match self.pack(z, bin) {
                    Packed::Moved => {
                        moved += 1;
                        continue;
                    }
                    Packed::Trimmed => continue,
                    Packed::Nothing => return end(moved, HoldEnd::Done),
                },
                Candidates::Two { src, dst } => (src, dst),
            };
            let Some(to) = self.slots.lowest_free(dst) else {
                return end(moved, HoldEnd::Done);
            };
            let need = self.geo.frames_for_slot(to);
            let have = self.zspages[dst].nframes();
            if need <= have {
                if !self.move_top(src, dst) {
                    return end(moved, HoldEnd::Done);
                }
                moved += 1;
                self.settle(src, dst, bin);
                continue;
            }
            // The destination must grow by a frame: worth it only if every object on
            // the source's last frame then fits, so that frame is freed right after.
            let touching = self.touching_last_frame(src);
            if need > have + 1
                || touching > MAX_GROW_MOVES
                || touching > self.free_backed(dst, need)
            {
                // Stalled: pack the source, else the destination, else stop.
                let p = match self.pack(src, bin) {
                    Packed::Nothing => self.pack(dst, bin),
                    p => p,
                };
                match p {
                    Packed::Moved => moved += 1,
                    Packed::Trimmed => {}
                    Packed::Nothing => return end(moved, HoldEnd::Done),
                }
                continue;
            }
            if spare.is_none() {
                return end(moved, HoldEnd::NeedFrame);
            }
            if self.grow(dst, spare).is_err() {
                return end(moved, HoldEnd::Done);
            }
            for _ in 0..touching {
                if !self.move_top(src, dst) {
                    self.settle(src, dst, bin);
                    return end(moved, HoldEnd::Done);
                }
                moved += 1;
            }
            self.settle(src, dst, bin);
        }
    }
}

impl<S: PageSource> ZsPool<S> {
    /// Compacts class `cls` in holds until it is done or `budget` (>= 1) moves are
    /// spent; returns (objects moved, frames freed, done). No lock is held between
    /// holds, nor while the page source is called.
    pub(crate) fn compact_class_budget(&self, cls: usize, budget: usize) -> (usize, usize, bool) {
        let Some(class) = self.classes.get(cls) else {
            return (0, 0, true);
        };
        let mut spare: Option<Frame> = None;
        let (mut moved, mut freed) = (0usize, 0usize);
        let done = loop {
            if moved >= budget {
                break false;
            }
            let mut bin = FrameBin::new();
            let mut inner = class.inner.lock();
            let before = inner.c.frames;
            let hold = inner.compact_hold(budget - moved, &mut spare, &mut bin);
            let after = inner.c.frames;
            let net = before.saturating_sub(after);
            inner.c.compacted += net;
            drop(inner);
            bin.release(&self.source);
            self.account(before, after);
            moved += hold.moved;
            freed += net;
            match hold.end {
                HoldEnd::Done => break true,
                // No progress at all: do not spin on it.
                HoldEnd::More if hold.moved == 0 && net == 0 => break true,
                HoldEnd::More => {}
                HoldEnd::NeedFrame => {
                    if spare.is_some() {
                        break true;
                    }
                    match self.source.alloc_frame() {
                        Ok(f) => spare = Some(f),
                        // The page source refuses: this class stops here, consistent.
                        Err(_) => break true,
                    }
                }
            }
        };
        if let Some(f) = spare {
            self.source.free_frame(f);
        }
        self.compacted.fetch_add(freed, Ordering::Relaxed);
        (moved, freed, done)
    }

    /// [`zpool::ZPool::compact_step`]: classes from the largest down, starting where the
    /// last step stopped, until `max_moves` (at least 1) objects moved; `done` when every
    /// class was found done in this call.
    pub(crate) fn step(&self, max_moves: usize) -> CompactStep {
        let budget = max_moves.max(1);
        let n = self.classes.len();
        let start = self.cursor.load(Ordering::Relaxed) % n;
        let mut out = CompactStep::default();
        for i in 0..n {
            let cls = (start + n - i) % n;
            let left = budget.saturating_sub(out.objects_moved).max(1);
            let (m, f, done) = self.compact_class_budget(cls, left);
            out.objects_moved += m;
            out.frames_freed += f;
            if !done {
                self.cursor.store(cls, Ordering::Relaxed);
                return out;
            }
            if out.objects_moved >= budget {
                self.cursor.store((cls + n - 1) % n, Ordering::Relaxed);
                return out;
            }
        }
        out.done = true;
        out
    }

    /// Steps until done; frames freed.
    pub(crate) fn compact_all(&self) -> usize {
        let mut total = 0;
        loop {
            let s = self.step(COMPACT_BUDGET);
            total += s.frames_freed;
            if s.done {
                return total;
            }
        }
    }
}
