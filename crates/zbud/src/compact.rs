//! Compaction: re-pairing objects so the frame count approaches the offline optimum,
//! in steps whose every lock hold does bounded work.
//!
//! Arrival-order best fit leaves lone frames whose objects are too large to pair with
//! each other (their would-be partners went into earlier frames), so pairing lone frames
//! alone gains little. A compaction round therefore has four phases, kept in each shard
//! (under its lock) between steps, each lock hold doing a bounded slice of one (a pool
//! of several shards runs the shards' rounds one after the other, see `ZBud::step`):
//!
//! 1. **Snapshot**: every object (entry index, generation, chunks, current partner), at
//!    most [`SNAP_FRAMES`] frames per hold.
//! 2. **Plan**: an optimal pairing, at most [`PLAN_UNITS`] item steps per hold: largest
//!    object first, each with the largest remaining object that fits beside it (an
//!    exchange argument shows this maximises the number of pairs, like the two-pointer
//!    method), preferring the current partner when it is as large as the best choice, so
//!    pairs that already share a frame stay put.
//! 3. **Realise**: at most [`PAIRS_PER_HOLD`] planned pairs per hold. Each revalidates
//!    both objects (entry live, same generation: the pool may have changed since the
//!    snapshot) and brings them into one frame: already together; or move one into the
//!    other's frame if that frame is lone; or first move the other frame's occupant to a
//!    lone frame with room (best fit, a few frames per unbuddied list), then move. A
//!    pair that finds no room is skipped. No frame is allocated, so compaction never
//!    ends a hold with more frames than it started with; a frame whose last object moves
//!    out goes back to the page source after the hold.
//! 4. **Lone pairing**: whatever lone frames remain are paired through the unbuddied
//!    lists (largest lone object with the smallest that fits, moving the smaller), at
//!    most [`MOVES_PER_HOLD`] moves per hold; lists that cannot pair with the smallest
//!    lone object are skipped as a whole, so a hold's work is O(lists + moves).
//!
//! The round ends (the step reports `done`) when the lone phase finds nothing to pair.
//! The snapshot and the plan need about 16 bytes per object plus 12 per pair of
//! temporary heap, allocated fallibly **with the lock dropped** (the round waits for it
//! in a phase of its own; whoever brings it installs it if the round still waits) and
//! freed after unlocking when the round ends; without it, only the lone phase runs.
//! Objects that move keep their handle (entry index and generation).

use alloc::vec::Vec;

use crate::meta::{Desc, Entry, HNIL, NIL};
use crate::{Inner, NCHUNKS, PageSource, Shard, ZBud, chunks_for, offset_of};
use zpool::{CompactStep, Frame};

/// Frames snapshotted per lock hold.
pub const SNAP_FRAMES: usize = 64;
/// Planning steps (items counted, sorted or paired) per lock hold.
pub const PLAN_UNITS: usize = 512;
/// Planned pairs carried out per lock hold (each at most two moves).
pub const PAIRS_PER_HOLD: usize = 8;
/// Lone-pairing moves per lock hold.
pub const MOVES_PER_HOLD: usize = 8;
/// Frames a hold can give back (two per pair).
const FREED_PER_HOLD: usize = 2 * PAIRS_PER_HOLD;
/// Frames of one unbuddied list examined when looking for room for a displaced object.
const TARGET_SCAN: usize = 4;
/// Work units (frames snapshotted, plan steps; a move counts as 64) per unit of a
/// step's budget: `compact_step(n)` does about `64 n` of them.
const UNITS_PER_MOVE: usize = 64;
/// The budget of each step `compact()` takes.
const COMPACT_BUDGET: usize = 1024;
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

/// Where a round of compaction is.
#[derive(Default)]
enum Phase {
    /// No round running.
    #[default]
    Idle,
    /// Waiting for the snapshot's memory, allocated with the lock dropped.
    ItemsAlloc,
    /// Snapshotting frames `from..`.
    Snapshot { from: usize },
    /// Waiting for the planner's memory, allocated with the lock dropped.
    PlanAlloc,
    /// Planning (see [`Stage`]).
    Plan,
    /// Realising planned pairs `next..`.
    Realise { next: usize },
    /// Pairing lone frames.
    Lone,
}

/// The resumable planner's position.
#[derive(Clone, Copy)]
enum Stage {
    /// Zero-filling the by-size order (within its reserved capacity) up to the items.
    Zero,
    /// Counting items by chunks, from item `i`.
    Count { i: usize },
    /// Filling the by-size order, from item `i`.
    Fill { i: usize },
    /// Pairing: at size `k`, position `pos` of its run; `pending` = an item taken and
    /// the size of the partner being searched for.
    Pair {
        k: usize,
        pos: usize,
        pending: Option<(usize, usize)>,
    },
}

/// Per-size tables of the planner: `[count, start, fill/cursor, remaining]`.
type Tables = [[u32; NCHUNKS + 1]; 4];

/// A compaction round's state, kept in the shard between steps.
#[derive(Default)]
pub(crate) struct Compaction {
    phase: Phase,
    items: Vec<Item>,
    order: Vec<u32>,
    pairs: Vec<(u32, u32)>,
    tables: Vec<Tables>,
    stage: Option<Stage>,
}

impl Compaction {
    /// Heap bytes held by a running round.
    pub(crate) fn bytes(&self) -> usize {
        self.items.capacity() * core::mem::size_of::<Item>()
            + self.order.capacity() * 4
            + self.pairs.capacity() * 8
            + self.tables.capacity() * core::mem::size_of::<Tables>()
    }

    /// Ends the round: its memory is handed back to be freed after unlocking.
    fn take(&mut self) -> Compaction {
        core::mem::take(self)
    }
}

/// Memory a hold needs before the round can go on, to be allocated with no lock held.
#[derive(Clone, Copy)]
pub(crate) enum Need {
    /// The snapshot's items, for about this many objects.
    Items(usize),
    /// The planner's tables for this many items.
    Plan(usize),
}

/// What one hold did.
pub(crate) struct HoldOut {
    moved: usize,
    done: bool,
    /// The round ended at once, with O(1) work (fewer than two lone frames: nothing to
    /// gain); charged one work unit.
    trivial: bool,
    need: Option<Need>,
    /// A finished round's memory, to be freed after unlocking.
    garbage: Compaction,
}

impl HoldOut {
    fn moved(moved: usize, done: bool) -> HoldOut {
        HoldOut {
            moved,
            done,
            trivial: false,
            need: None,
            garbage: Compaction::default(),
        }
    }
}

/// Memory allocated for a [`Need`], with no lock held.
enum Supply {
    Items(Vec<Item>),
    Plan {
        order: Vec<u32>,
        pairs: Vec<(u32, u32)>,
        tables: Vec<Tables>,
    },
}

impl Supply {
    /// Allocates what `need` asks for; `None` without memory.
    fn allocate(need: Need) -> Option<Supply> {
        match need {
            Need::Items(n) => {
                let mut items = Vec::new();
                items.try_reserve_exact(n).ok()?;
                Some(Supply::Items(items))
            }
            Need::Plan(n) => {
                let (mut order, mut pairs, mut tables) = (Vec::new(), Vec::new(), Vec::new());
                order.try_reserve_exact(n).ok()?;
                pairs.try_reserve_exact(n / 2).ok()?;
                tables.try_reserve_exact(1).ok()?;
                tables.push([[0; NCHUNKS + 1]; 4]);
                Some(Supply::Plan {
                    order,
                    pairs,
                    tables,
                })
            }
        }
    }
}

/// Mutable borrows of two distinct descriptors.
fn two_mut(descs: &mut [Desc], a: usize, b: usize) -> Option<(&mut Desc, &mut Desc)> {
    if a == b || a >= descs.len() || b >= descs.len() {
        return None;
    }
    if a < b {
        let (lo, hi) = descs.split_at_mut(b);
        Some((&mut lo[a], &mut hi[0]))
    } else {
        let (lo, hi) = descs.split_at_mut(a);
        Some((&mut hi[0], &mut lo[b]))
    }
}

/// Frames freed during one hold, given back after it.
struct Freed {
    frames: [Option<Frame>; FREED_PER_HOLD],
    n: usize,
}

impl Freed {
    fn new() -> Freed {
        Freed {
            frames: [const { None }; FREED_PER_HOLD],
            n: 0,
        }
    }

    fn room(&self) -> usize {
        FREED_PER_HOLD - self.n
    }

    fn push(&mut self, f: Option<Frame>) {
        if let Some(f) = f {
            // Holds check `room` before each move (two per pair, one per lone move).
            debug_assert!(self.n < FREED_PER_HOLD);
            if let Some(slot) = self.frames.get_mut(self.n) {
                *slot = Some(f);
                self.n += 1;
            }
        }
    }

    fn release<S: PageSource + ?Sized>(&mut self, source: &S) -> usize {
        let n = self.n;
        for f in self.frames.iter_mut().filter_map(Option::take) {
            source.free_frame(f);
        }
        self.n = 0;
        n
    }
}

impl Inner {
    /// Moves object `i` into the empty side of lone frame `d`; returns the source frame
    /// if that emptied it. `d` must be lone and have room.
    fn move_obj(&mut self, i: u32, d: u32) -> Option<Frame> {
        let e = self.entry(i);
        if !e.is_live() {
            // Callers validate first; a free entry's bits are links, not a place.
            return None;
        }
        let (s, ss, len) = (e.frame(), e.side(), e.len());
        let dside = 1 - self.d(d).lone_side()?;
        if s == d || s as usize >= self.descs.len() || d as usize >= self.descs.len() {
            return None;
        }
        let s_count = self.d(s).count();
        self.ub_unlink(d);
        self.ub_unlink(s);
        let (src_off, dst_off) = (offset_of(ss, len), offset_of(dside, len));
        let (dd, sd) = two_mut(&mut self.descs, d as usize, s as usize)?;
        if let (Some(df), Some(sf)) = (dd.frame.as_mut(), sd.frame.as_ref()) {
            df[dst_off..dst_off + len].copy_from_slice(&sf[src_off..src_off + len]);
        }
        dd.set_rev(dside, i);
        dd.set_has(dside, true);
        sd.set_has(ss, false);
        self.entries[i as usize] = Entry::live(e.generation(), d, dside, len);
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

    /// A lone frame with room for `chunks`, not in `exclude` (best fit, at most
    /// [`TARGET_SCAN`] frames per list).
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
                if !exclude.contains(&f) {
                    return Some(f);
                }
                f = self.d(f).ub_next();
            }
            mask &= mask - 1;
        }
        None
    }

    /// Brings planned partners `a` (the larger) and `b` into one frame if the pool
    /// allows; returns the objects moved, frames freed into `out`.
    fn realise(&mut self, a: &Item, b: &Item, out: &mut Freed) -> usize {
        let (Some(fa), Some(fb)) = (self.validate(a), self.validate(b)) else {
            return 0;
        };
        if fa == fb {
            return 0;
        }
        if self.d(fa).count() == 1 {
            out.push(self.move_obj(b.idx, fa));
            return 1;
        }
        if self.d(fb).count() == 1 {
            out.push(self.move_obj(a.idx, fb));
            return 1;
        }
        // Both frames hold another object: move one of those out to make room.
        for (keep, kf, other, of) in [(a, fa, b, fb), (b, fb, a, fa)] {
            let kside = self.entry(keep.idx).side();
            let z = self.d(kf).rev(1 - kside);
            let zchunks = chunks_for(self.entry(z).len());
            if let Some(t) = self.find_target(zchunks, [kf, of]) {
                out.push(self.move_obj(z, t));
                out.push(self.move_obj(other.idx, kf));
                return 2;
            }
        }
        0
    }

    /// Appends the objects of frames `from..to` to `items` (capacity reserved).
    fn snapshot(&self, from: usize, to: usize, items: &mut Vec<Item>) {
        for f in from..to.min(self.descs.len()) {
            let d = &self.descs[f];
            if d.frame.is_none() {
                continue;
            }
            let base = items.len() as u32;
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
                items.push(Item {
                    idx,
                    generation: e.generation() as u32,
                    partner,
                    chunks: chunks_for(e.len()) as u8,
                    taken: false,
                });
            }
        }
    }

    /// Lone pairing: the largest lone object (fewest free chunks) with the smallest
    /// (most free chunks), moving the smaller, at most `max_moves` moves. `true` when
    /// nothing more pairs.
    fn lone_hold(&mut self, max_moves: usize, out: &mut Freed) -> (usize, bool) {
        let mut moved = 0;
        let mut hi_k = 1usize;
        loop {
            if moved >= max_moves || out.room() == 0 {
                return (moved, false);
            }
            if hi_k >= NCHUNKS {
                return (moved, true);
            }
            let above = (self.ub_mask >> hi_k) << hi_k;
            if above == 0 {
                return (moved, true);
            }
            hi_k = above.trailing_zeros() as usize;
            let hi_f = self.ub_head[hi_k];
            let lo_k = 63 - self.ub_mask.leading_zeros() as usize;
            let lo_f = if lo_k == hi_k {
                self.d(hi_f).ub_next()
            } else {
                self.ub_head[lo_k]
            };
            if lo_f == NIL {
                // One lone frame in the last list: nothing to pair it with.
                return (moved, true);
            }
            if hi_k + lo_k < NCHUNKS {
                // Not even the smallest lone object fits beside these: skip every list
                // whose objects are too large for it.
                hi_k = (hi_k + 1).max(NCHUNKS - lo_k);
                continue;
            }
            let Some(side) = self.d(lo_f).lone_side() else {
                return (moved, true);
            };
            let obj = self.d(lo_f).rev(side);
            out.push(self.move_obj(obj, hi_f));
            moved += 1;
        }
    }

    /// One bounded hold of the compaction round: at most `units` work units and
    /// `max_moves` moves (a pair may take one more).
    fn compact_hold(&mut self, units: usize, max_moves: usize, out: &mut Freed) -> HoldOut {
        match self.compaction.phase {
            Phase::Idle | Phase::ItemsAlloc if self.lone < 2 => {
                // At most one lone frame: frames = ceil(objects / 2) already, the
                // optimum. The round ends at once (a round waiting for memory too: whoever
                // brings it finds the round gone and frees it).
                self.compaction.phase = Phase::Idle;
                HoldOut {
                    trivial: true,
                    ..HoldOut::moved(0, true)
                }
            }
            Phase::Idle | Phase::ItemsAlloc => {
                // A round starts: room for every object's snapshot (and those stored
                // meanwhile), allocated with the lock dropped.
                self.compaction.phase = Phase::ItemsAlloc;
                let n = self.objects + self.objects / 8 + 2 * SNAP_FRAMES;
                HoldOut {
                    need: Some(Need::Items(n)),
                    ..HoldOut::moved(0, false)
                }
            }
            Phase::Snapshot { from } => {
                let n = self.descs.len();
                let to = (from + units.clamp(1, SNAP_FRAMES)).min(n);
                let items = &mut self.compaction.items;
                if items.capacity() - items.len() < 2 * (to - from) {
                    // More objects than reserved for (stored since the round began):
                    // plan with those snapshotted; the lone phase sees the rest.
                    self.compaction.phase = Phase::PlanAlloc;
                } else {
                    let mut items = core::mem::take(&mut self.compaction.items);
                    self.snapshot(from, to, &mut items);
                    self.compaction.items = items;
                    self.compaction.phase = if to >= n {
                        Phase::PlanAlloc
                    } else {
                        Phase::Snapshot { from: to }
                    };
                }
                HoldOut::moved(0, false)
            }
            Phase::PlanAlloc => HoldOut {
                need: Some(Need::Plan(self.compaction.items.len())),
                ..HoldOut::moved(0, false)
            },
            Phase::Plan => {
                if self.compaction.plan_units(units.clamp(1, PLAN_UNITS)) {
                    self.compaction.phase = Phase::Realise { next: 0 };
                }
                HoldOut::moved(0, false)
            }
            Phase::Realise { next } => {
                let mut moved = 0;
                let mut i = next;
                let pairs = core::mem::take(&mut self.compaction.pairs);
                let items = core::mem::take(&mut self.compaction.items);
                let budget = max_moves.max(2);
                while i < pairs.len()
                    && i < next + PAIRS_PER_HOLD
                    && moved + 2 <= budget
                    && out.room() >= 2
                {
                    let (a, b) = pairs[i];
                    moved += self.realise(&items[a as usize], &items[b as usize], out);
                    i += 1;
                }
                self.compaction.pairs = pairs;
                self.compaction.items = items;
                let mut o = HoldOut::moved(moved, false);
                if i >= self.compaction.pairs.len() {
                    // The plan is spent: its memory goes (after unlocking), then the lone
                    // frames left are paired.
                    o.garbage = self.compaction.take();
                    self.compaction.phase = Phase::Lone;
                } else {
                    self.compaction.phase = Phase::Realise { next: i };
                }
                o
            }
            Phase::Lone => {
                let (moved, done) = self.lone_hold(max_moves.clamp(1, MOVES_PER_HOLD), out);
                let mut o = HoldOut::moved(moved, done);
                if done {
                    o.garbage = self.compaction.take();
                }
                o
            }
        }
    }

    /// Installs memory allocated for a [`Need`] if the round still waits for it (another
    /// thread's step may have moved it on meanwhile); otherwise hands it back, to be
    /// freed after unlocking. Without memory (`None`), the round skips to lone pairing.
    fn supply(&mut self, need: Need, got: Option<Supply>) -> Option<Supply> {
        let c = &mut self.compaction;
        match (need, got, &c.phase) {
            (Need::Items(_), Some(Supply::Items(items)), Phase::ItemsAlloc) => {
                c.items = items;
                c.phase = Phase::Snapshot { from: 0 };
                None
            }
            (
                Need::Plan(n),
                Some(Supply::Plan {
                    order,
                    pairs,
                    tables,
                }),
                Phase::PlanAlloc,
            ) if n == c.items.len() => {
                c.order = order;
                c.pairs = pairs;
                c.tables = tables;
                c.stage = Some(Stage::Zero);
                c.phase = Phase::Plan;
                None
            }
            (Need::Items(_), None, Phase::ItemsAlloc) | (Need::Plan(_), None, Phase::PlanAlloc) => {
                let old = c.take();
                c.phase = Phase::Lone;
                Some(Supply::Items(old.items))
            }
            (_, got, _) => got,
        }
    }
}

impl Compaction {
    /// Runs up to `units` planning steps; `true` when the plan is complete.
    fn plan_units(&mut self, units: usize) -> bool {
        let (Some(mut stage), Some(t)) = (self.stage, self.tables.first_mut()) else {
            return true;
        };
        let [count, start, cursor, remaining] = t;
        let items = &mut self.items;
        let n = items.len();
        let mut left = units;
        let done = loop {
            if left == 0 {
                break false;
            }
            left -= 1;
            match stage {
                Stage::Zero if self.order.len() < n => {
                    // Within the capacity reserved with no lock held: no allocation.
                    let k = (n - self.order.len()).min(16);
                    self.order.extend((0..k).map(|_| 0));
                }
                Stage::Zero => stage = Stage::Count { i: 0 },
                Stage::Count { i } if i < n => {
                    count[usize::from(items[i].chunks)] += 1;
                    stage = Stage::Count { i: i + 1 };
                }
                Stage::Count { .. } => {
                    for k in 1..=NCHUNKS {
                        start[k] = start[k - 1] + count[k - 1];
                    }
                    *cursor = *start;
                    stage = Stage::Fill { i: 0 };
                }
                Stage::Fill { i } if i < n => {
                    let k = usize::from(items[i].chunks);
                    self.order[cursor[k] as usize] = i as u32;
                    cursor[k] += 1;
                    stage = Stage::Fill { i: i + 1 };
                }
                Stage::Fill { .. } => {
                    *cursor = *start;
                    *remaining = *count;
                    stage = Stage::Pair {
                        k: NCHUNKS,
                        pos: start[NCHUNKS] as usize,
                        pending: None,
                    };
                }
                Stage::Pair { k: 0, .. } => break true,
                Stage::Pair { k, pos, pending } => {
                    if let Some((a, kb)) = pending {
                        // Searching size kb's run for an untaken partner of `a`.
                        let end = (start[kb] + count[kb]) as usize;
                        if (cursor[kb] as usize) < end {
                            let c = self.order[cursor[kb] as usize] as usize;
                            cursor[kb] += 1;
                            if !items[c].taken {
                                items[c].taken = true;
                                remaining[kb] -= 1;
                                self.pairs.push((a as u32, c as u32));
                                stage = Stage::Pair {
                                    k,
                                    pos,
                                    pending: None,
                                };
                            }
                        } else {
                            stage = Stage::Pair {
                                k,
                                pos,
                                pending: None,
                            };
                        }
                        continue;
                    }
                    if pos >= (start[k] + count[k]) as usize {
                        let k = k - 1;
                        stage = Stage::Pair {
                            k,
                            pos: start[k] as usize,
                            pending: None,
                        };
                        continue;
                    }
                    stage = Stage::Pair {
                        k,
                        pos: pos + 1,
                        pending: None,
                    };
                    let a = self.order[pos] as usize;
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
                    if p != NONE
                        && !items[p as usize].taken
                        && usize::from(items[p as usize].chunks) == kb
                    {
                        items[p as usize].taken = true;
                        remaining[kb] -= 1;
                        self.pairs.push((a as u32, p));
                    } else {
                        stage = Stage::Pair {
                            k,
                            pos: pos + 1,
                            pending: Some((a, kb)),
                        };
                    }
                }
            }
        };
        self.stage = Some(stage);
        done
    }
}

impl<S: PageSource> ZBud<S> {
    /// [`zpool::ZPool::compact_step`]: the shards' compaction rounds one after the
    /// other, from the shard `cursor` names, in lock holds of bounded work until about
    /// `max_moves` objects moved (a pair may take one more), `64 * max_moves` work units
    /// of snapshot and planning were spent, or the last shard's round ended (`done`).
    /// A shard with fewer than two lone frames ends its round in one O(1) hold.
    pub(crate) fn step(&self, max_moves: usize) -> CompactStep {
        use core::sync::atomic::Ordering::Relaxed;
        let budget = max_moves.max(1);
        let mut units = budget.saturating_mul(UNITS_PER_MOVE);
        let mut out = CompactStep::default();
        let k = self.shards();
        // Rounds that ended in this call: a bound on the loop even if racing compactors
        // keep moving the cursor back.
        let mut ended = 0;
        while out.objects_moved < budget && units > 0 && ended <= k {
            // Relaxed: the cursor only picks a shard; the shard's own lock orders
            // everything its round touches.
            let c = self.cursor.load(Relaxed) % k;
            let done = self.step_shard(self.shard(c), budget, &mut units, &mut out);
            if done {
                ended += 1;
                // Another compactor may have moved the cursor on already: then it stays.
                let _ = self
                    .cursor
                    .compare_exchange(c, (c + 1) % k, Relaxed, Relaxed);
                if c == k - 1 {
                    out.done = true;
                    break;
                }
            }
        }
        out
    }

    /// Lock holds of `shard`'s round until `out` reaches `budget` moves, `units` run
    /// out or the round ends (`true`). Frames freed go back to the page source after
    /// each hold.
    fn step_shard(
        &self,
        shard: &Shard,
        budget: usize,
        units: &mut usize,
        out: &mut CompactStep,
    ) -> bool {
        while out.objects_moved < budget && *units > 0 {
            let mut freed = Freed::new();
            let hold_units = (*units).min(SNAP_FRAMES.max(PLAN_UNITS));
            let hold =
                shard
                    .inner
                    .lock()
                    .compact_hold(hold_units, budget - out.objects_moved, &mut freed);
            let cost = if hold.trivial {
                1
            } else {
                hold_units.max(hold.moved * UNITS_PER_MOVE)
            };
            *units = units.saturating_sub(cost);
            // No lock held from here: frames go back, a finished round's memory is
            // freed, and memory the round needs is allocated, then installed under the
            // lock if the round still waits for it.
            out.frames_freed += freed.release(&self.source);
            out.objects_moved += hold.moved;
            drop(hold.garbage);
            if let Some(need) = hold.need {
                let got = Supply::allocate(need);
                let unused = shard.inner.lock().supply(need, got);
                drop(unused);
            }
            if hold.done {
                return true;
            }
        }
        false
    }

    /// Steps until the last shard's round is done; frames freed.
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

const _: () = assert!(HNIL < NONE);
