//! Compaction: re-pairing objects so the frame count approaches the offline optimum.
//!
//! Arrival-order best fit leaves lone frames whose objects are too large to pair with
//! each other (their would-be partners went into earlier frames), so pairing lone frames
//! alone gains little. `compact()` therefore works in two passes:
//!
//! 1. **Re-pairing** (`compact_repair`). A snapshot of every object (entry index,
//!    generation, chunks, current partner) is taken in batches of frames, then, without
//!    the lock, an optimal pairing is planned: largest object first, each with the largest
//!    remaining object that fits beside it (an exchange argument shows this maximises the
//!    number of pairs, like the two-pointer method), preferring the current partner when
//!    it is as large as the best choice, so pairs that already share a frame stay put.
//!    The plan is carried out in batches of [`BATCH`] pairs per lock hold. Each step
//!    revalidates both objects (entry live, same generation: the pool
//!    may have changed between batches) and brings the two objects into one frame:
//!    already together; or move one into the other's frame if that frame is lone; or
//!    first move the other frame's occupant to a lone frame with room (best fit, not a
//!    frame already finished in this run), then move. A step that finds no room is
//!    skipped. No step allocates a frame, so compaction never ends with more frames than
//!    it started with; a frame whose last object moves out goes back to the source.
//! 2. **Lone pairing** (`compact_lone`): whatever lone frames remain are paired with the
//!    unbuddied lists (largest lone object with the smallest, moving the smaller one).
//!
//! The plan needs 16 bytes per object plus 8 per pair of temporary heap, allocated
//! fallibly; without it, only the lone pass runs. Objects that move keep their handle
//! (entry index and generation); their frame's LRU position is the destination's.

use alloc::vec::Vec;

use crate::meta::{HNIL, NIL};
use crate::{Inner, NCHUNKS, PageSource, ZBud, chunks_for, offset_of};
use zpool::Frame;

/// Pairs carried out (or lone frames paired) per lock hold.
pub(crate) const BATCH: usize = 32;
/// Frames scanned per lock hold while snapshotting and cleaning up.
const SCAN_BATCH: usize = 1024;
/// Frames of one unbuddied list examined when looking for room for a displaced object.
const TARGET_SCAN: usize = 16;
const NONE: u32 = u32::MAX;

/// One object in the compaction snapshot.
#[derive(Clone, Copy)]
struct Item {
    /// Handle-entry index.
    idx: u32,
    /// Generation at snapshot time (revalidated before every move).
    generation: u32,
    /// Item index of the object sharing its frame, or `NONE`.
    partner: u32,
    chunks: u8,
    taken: bool,
}

impl Inner {
    /// Moves object `i` into the empty side of lone frame `d`; returns the source frame
    /// if that emptied it. `d` must be lone and have room.
    fn move_obj(&mut self, i: u32, d: u32) -> Option<Frame> {
        let e = self.entry(i);
        let (s, ss, len) = (e.frame(), e.side(), e.len());
        let dside = 1 - self.d(d).lone_side()?;
        if s == d || s as usize >= self.descs.len() || d as usize >= self.descs.len() {
            return None;
        }
        let s_count = self.d(s).count();
        self.ub_unlink(d);
        self.ub_unlink(s);
        let (src_off, dst_off) = (offset_of(ss, len), offset_of(dside, len));
        let (dd, sd) = zpool::span::two_mut(&mut self.descs, d as usize, s as usize)?;
        if let (Some(df), Some(sf)) = (dd.frame.as_mut(), sd.frame.as_ref()) {
            df[dst_off..dst_off + len].copy_from_slice(&sf[src_off..src_off + len]);
        }
        dd.set_rev(dside, i);
        dd.set_has(dside, true);
        sd.set_has(ss, false);
        self.entries[i as usize] = crate::meta::Entry::live(e.generation(), d, dside, len);
        self.lone -= 1; // `d` now holds two objects
        if s_count == 1 {
            self.lone -= 1;
            self.compacted_frames += 1;
            self.put_desc(s)
        } else {
            self.lone += 1;
            self.ub_push(s);
            None
        }
    }

    /// The frame of a snapshot item if the object is still the same one.
    fn validate(&self, it: &Item) -> Option<u32> {
        let e = *self.entries.get(it.idx as usize)?;
        if !e.is_live() || e.generation() != u64::from(it.generation) {
            return None;
        }
        Some(e.frame())
    }

    /// A lone frame with room for `chunks`, not finished in this compaction and not in
    /// `exclude` (best fit, a few frames per list).
    fn find_target(&self, chunks: usize, exclude: [u32; 2]) -> Option<u32> {
        if chunks >= NCHUNKS {
            return None;
        }
        let mut mask = (self.ub_mask >> chunks) << chunks;
        while mask != 0 {
            let k = mask.trailing_zeros() as usize;
            let mut f = self.ub_head[k];
            for _ in 0..TARGET_SCAN {
                if f == NIL {
                    break;
                }
                if !self.d(f).done() && !exclude.contains(&f) {
                    return Some(f);
                }
                f = self.d(f).ub_next();
            }
            mask &= mask - 1;
        }
        None
    }

    /// Brings planned partners `a` (the larger) and `b` into one frame if the pool
    /// allows; returns a frame freed on the way.
    fn realise(&mut self, a: &Item, b: &Item) -> Option<Frame> {
        let fa = self.validate(a)?;
        let fb = self.validate(b)?;
        if fa == fb {
            self.dm(fa).set_done(true);
            return None;
        }
        if self.d(fa).count() == 1 {
            let freed = self.move_obj(b.idx, fa);
            self.dm(fa).set_done(true);
            return freed;
        }
        if self.d(fb).count() == 1 {
            let freed = self.move_obj(a.idx, fb);
            self.dm(fb).set_done(true);
            return freed;
        }
        // Both frames hold another object: move one of those out to make room.
        for (keep, kf, other, of) in [(a, fa, b, fb), (b, fb, a, fa)] {
            let kside = self.entry(keep.idx).side();
            let z = self.d(kf).rev(1 - kside);
            let zchunks = chunks_for(self.entry(z).len());
            if let Some(t) = self.find_target(zchunks, [kf, of]) {
                let f1 = self.move_obj(z, t);
                let f2 = self.move_obj(other.idx, kf);
                self.dm(kf).set_done(true);
                return f1.or(f2);
            }
        }
        None
    }

    /// Appends the objects of frames `from..to` to `out` (capacity reserved).
    fn snapshot(&self, from: usize, to: usize, out: &mut Vec<Item>) {
        for f in from..to.min(self.descs.len()) {
            let d = &self.descs[f];
            if d.frame.is_none() {
                continue;
            }
            let base = out.len() as u32;
            let both = d.count() == 2;
            for side in 0..2 {
                if !d.has(side) {
                    continue;
                }
                let idx = d.rev(side);
                let e = self.entry(idx);
                let partner = match (both, side) {
                    (true, 0) => base + 1,
                    (true, _) => base,
                    _ => NONE,
                };
                out.push(Item {
                    idx,
                    generation: e.generation() as u32,
                    partner,
                    chunks: chunks_for(e.len()) as u8,
                    taken: false,
                });
            }
        }
    }

    /// Pairs lone frames through the unbuddied lists (largest lone object with the
    /// smallest that fits beside it, moving the smaller); up to `out.len()` frames freed.
    fn compact_lone_batch(&mut self, out: &mut [Option<Frame>]) -> usize {
        let mut done = 0;
        let mut hi_k = 1usize;
        let mut hi_f = self.ub_head[1];
        while done < out.len() {
            while hi_f == NIL {
                hi_k += 1;
                if hi_k >= NCHUNKS {
                    return done;
                }
                hi_f = self.ub_head[hi_k];
            }
            let above = if hi_k + 1 >= NCHUNKS {
                0
            } else {
                (self.ub_mask >> (hi_k + 1)) << (hi_k + 1)
            };
            let (lo_k, lo_f) = if above != 0 {
                let k = 63 - above.leading_zeros() as usize;
                (k, self.ub_head[k])
            } else {
                let n = self.d(hi_f).ub_next();
                if n == NIL {
                    return done;
                }
                (hi_k, n)
            };
            if hi_k + lo_k < NCHUNKS {
                // Even the smallest lone object does not fit beside this one.
                hi_f = self.d(hi_f).ub_next();
                continue;
            }
            let mut next = self.d(hi_f).ub_next();
            if next == lo_f {
                next = self.d(lo_f).ub_next();
            }
            let Some(side) = self.d(lo_f).lone_side() else {
                return done;
            };
            let moved = self.d(lo_f).rev(side);
            out[done] = self.move_obj(moved, hi_f);
            done += 1;
            hi_f = next;
        }
        done
    }
}

/// Plans an optimal pairing of `items`: largest first, each with the largest untaken
/// object that fits beside it (the current partner when it is that large). Returns item
/// index pairs (larger, smaller), or `None` if the plan's memory cannot be had.
fn plan(items: &mut [Item]) -> Option<Vec<(u32, u32)>> {
    let n = items.len();
    let mut count = [0usize; NCHUNKS + 1];
    for it in items.iter() {
        count[usize::from(it.chunks)] += 1;
    }
    let mut start = [0usize; NCHUNKS + 1];
    for k in 1..=NCHUNKS {
        start[k] = start[k - 1] + count[k - 1];
    }
    let mut order: Vec<u32> = Vec::new();
    order.try_reserve_exact(n).ok()?;
    order.resize(n, 0);
    let mut fill = start;
    for (i, it) in items.iter().enumerate() {
        let k = usize::from(it.chunks);
        order[fill[k]] = i as u32;
        fill[k] += 1;
    }
    let mut pairs = Vec::new();
    pairs.try_reserve_exact(n / 2).ok()?;
    let mut cursor = start;
    let mut remaining = count;
    for k in (1..=NCHUNKS).rev() {
        for pos in start[k]..start[k] + count[k] {
            let a = order[pos] as usize;
            if items[a].taken {
                continue;
            }
            items[a].taken = true;
            remaining[k] -= 1;
            let limit = (NCHUNKS - k).min(k);
            let Some(kb) = (1..=limit).rev().find(|&j| remaining[j] > 0) else {
                continue;
            };
            let p = items[a].partner;
            let b = if p != NONE
                && !items[p as usize].taken
                && usize::from(items[p as usize].chunks) == kb
            {
                p as usize
            } else {
                let end = start[kb] + count[kb];
                let mut found = None;
                while cursor[kb] < end {
                    let c = order[cursor[kb]] as usize;
                    cursor[kb] += 1;
                    if !items[c].taken {
                        found = Some(c);
                        break;
                    }
                }
                match found {
                    Some(c) => c,
                    None => continue,
                }
            };
            items[b].taken = true;
            remaining[kb] -= 1;
            pairs.push((a as u32, b as u32));
        }
    }
    Some(pairs)
}

impl<S: PageSource> ZBud<S> {
    /// Pass 1: plan an optimal pairing of every object and carry it out. Returns frames
    /// given back.
    pub(crate) fn compact_repair(&self) -> usize {
        let mut items: Vec<Item> = Vec::new();
        let mut from = 0;
        loop {
            if items.try_reserve(2 * SCAN_BATCH).is_err() {
                return 0;
            }
            let g = self.inner.lock();
            let n = g.descs.len();
            if from >= n {
                break;
            }
            let to = (from + SCAN_BATCH).min(n);
            g.snapshot(from, to, &mut items);
            from = to;
        }
        let Some(pairs) = plan(&mut items) else {
            return 0;
        };
        let mut freed = 0;
        for chunk in pairs.chunks(BATCH) {
            let mut batch: [Option<Frame>; BATCH] = [const { None }; BATCH];
            {
                let mut g = self.inner.lock();
                for (slot, &(a, b)) in batch.iter_mut().zip(chunk) {
                    *slot = g.realise(&items[a as usize], &items[b as usize]);
                }
            }
            for frame in batch.iter_mut().filter_map(Option::take) {
                self.source.free_frame(frame);
                freed += 1;
            }
        }
        // Clear the "finished" marks.
        let mut from = 0;
        loop {
            let mut g = self.inner.lock();
            let n = g.descs.len();
            if from >= n {
                break;
            }
            let to = (from + SCAN_BATCH).min(n);
            for d in &mut g.descs[from..to] {
                d.set_done(false);
            }
            from = to;
        }
        freed
    }

    /// Pass 2: pair the remaining lone frames. Returns frames given back.
    pub(crate) fn compact_lone(&self) -> usize {
        let mut total = 0;
        loop {
            let mut batch: [Option<Frame>; BATCH] = [const { None }; BATCH];
            let n = self.inner.lock().compact_lone_batch(&mut batch);
            for frame in batch.iter_mut().filter_map(Option::take) {
                self.source.free_frame(frame);
            }
            total += n;
            if n < BATCH {
                return total;
            }
        }
    }
}

const _: () = assert!(HNIL < NONE);
