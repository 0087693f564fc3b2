//! zcache's reclaim order of compressed pages: one CLOCK ring per pool kind, with a
//! second-chance referenced bit (zswap 6.8's shrinker gives the same second chance).
//!
//! The ring is a table beside the allocator's own handle table: one byte per object,
//! indexed by the allocator's object id ([`zpool::ZPool::object_id`]: zsmalloc's class
//! and handle-table entry, zbud's shard and entry). The page descriptor in tmem holds
//! the allocator handle; the handle gives the id by its bits alone, so a load marks its
//! page with no lock and no dependent read, and the hand turns an id back into a handle
//! with [`zpool::ZPool::handle_of_id`].
//!
//! ```text
//!   node (1 byte)
//!     bit 2       referenced (a load hit the page, or it is new, since the hand last
//!                 passed)
//!     bits 1..0   state: free 0, linked 1, isolated 2, dead 3
//! ```
//!
//! A hand goes round the ids, segment by segment (a segment is a zsmalloc class or a
//! zbud shard), in index order (CLOCK, as a kernel's page daemon goes round its
//! frames). It takes the first linked node whose referenced bit is clear, clearing the
//! bits it passes. A new page is stored referenced, as zswap stores its entries
//! (`entry->referenced = true` in `zswap_store`): whatever id the allocator gave it, it
//! is passed over once before it can be taken. One byte a page, where the ring of
//! 8-byte nodes this replaced took eight and the doubly linked LRU before it sixteen.
//!
//! A node is in one of four states, all changed under the ring lock:
//! * **free**: no object has this id;
//! * **linked**: in the ring, its object stored;
//! * **isolated**: taken by a reclaimer, which owns it until [`Lru::finish`]; the
//!   object is still stored;
//! * **dead**: the descriptor was freed while the node was isolated. The *allocator
//!   object is not freed then*: [`Lru::remove`] answers [`Removed::Deferred`], and the
//!   reclaimer frees it after `finish`. So an id, and the handle, cannot be reused
//!   while a reclaimer holds it, and a reclaimer's descriptor (kind, length, handle)
//!   can only ever match the object it isolated.
//!
//! Every operation is O(1) under the lock: the hand's walk is bounded by the caller's
//! rotation budget and by [`MAX_SKIPS`] steps that pass nodes over (free, isolated), and
//! a block of [`BLOCK`] ids with no linked node, a level not yet made and a segment's
//! unused tail are passed in one step each. A segment's nodes live in levels made on
//! demand and never moved, level `k` holding `FIRST << k` nodes (a segment of `n`
//! objects takes at most about `2n` bytes), so a node's address is stable and loads
//! read it without the lock.

use alloc::boxed::Box;
use alloc::vec::Vec;

use zpool::ObjectIds;

use crate::sync::Mutex;
// The node bytes are `core` atomics even under loom: as loom atomics every state change
// is a branch point and the models do not finish. The ring itself is under the
// (modelled) ring lock; what loom does not see is a load's lock-free mark racing the
// hand's clear (both atomic read-modify-writes; the worst outcome is one lost second
// chance).
use core::sync::atomic::{AtomicU8, Ordering};

/// Ids per block: the hand passes a block with no linked node in one step.
#[cfg(not(loom))]
pub(crate) const BLOCK: usize = 512;
/// Nodes of a segment's first level (level `k` holds `FIRST << k`): small, because
/// every segment in use has one (zsmalloc has about a hundred classes).
#[cfg(not(loom))]
const FIRST_SHIFT: u32 = 6;
// Under loom every lock acquisition is a branch point: small levels keep the models
// fast.
#[cfg(loom)]
pub(crate) const BLOCK: usize = 4;
#[cfg(loom)]
const FIRST_SHIFT: u32 = 2;
const FIRST: usize = 1 << FIRST_SHIFT;

/// Levels a segment of `2^bits` ids needs: the fewest `L` with
/// `FIRST * (2^L - 1) >= 2^bits` (zsmalloc's 22-bit classes: 16 levels).
const fn levels_for(bits: u32) -> usize {
    let mut l = 0;
    while (FIRST << l) - FIRST < (1usize << bits) {
        l += 1;
    }
    l
}

/// Steps that pass nodes over (free, isolated: not rotations) in one [`Lru::isolate`]
/// call. An empty block, a missing level and a segment's end count as one each.
pub(crate) const MAX_SKIPS: usize = 512;

const REFERENCED: u8 = 1 << 2;
const STATE_MASK: u8 = 3;
const FREE: u8 = 0;
const LINKED: u8 = 1;
const ISOLATED: u8 = 2;
const DEAD: u8 = 3;

/// Level `k` of a segment: `FIRST << k` nodes.
type Level = Box<[AtomicU8]>;
/// A segment's levels.
type Segment = Box<[spin::Once<Level>]>;

/// Where index `i` of a segment lies: (level, offset in it).
#[inline]
fn locate(i: u32) -> (usize, usize) {
    let c = (i as usize >> FIRST_SHIFT) + 1;
    let k = (usize::BITS - 1 - c.leading_zeros()) as usize;
    (k, i as usize + FIRST - (FIRST << k))
}

/// The first index of level `k`.
fn level_start(k: usize) -> usize {
    (FIRST << k) - FIRST
}

/// One segment's ring state, under the lock.
#[derive(Default)]
struct SegState {
    /// Indexes below this have a level (made or passed over): the hand's range.
    extent: u32,
    /// Linked nodes per block of [`BLOCK`] ids, for the ids below `extent`.
    live: Vec<u16>,
}

/// Ring state, under the lock.
struct Inner {
    /// The next node the hand looks at: (segment, index).
    hand: (u32, u32),
    linked: usize,
    isolated: usize,
    segs: Vec<SegState>,
}

impl Inner {
    fn link(&mut self, s: u32, i: u32) {
        self.linked += 1;
        self.segs[s as usize].live[i as usize / BLOCK] += 1;
    }

    fn unlink(&mut self, s: u32, i: u32) {
        self.linked -= 1;
        self.segs[s as usize].live[i as usize / BLOCK] -= 1;
    }
}

/// What [`Lru::isolate`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Isolated {
    /// The object id (the allocator's).
    pub(crate) id: u32,
    /// Referenced pages passed on the way (second chances given).
    pub(crate) rotated: usize,
}

/// Why [`Lru::isolate`] isolated nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoTail {
    /// The ring holds no linked node.
    Empty,
    /// The rotation budget or [`MAX_SKIPS`] ran out (this many referenced pages were
    /// given their second chance): call again for the next ones.
    Rotated(usize),
}

/// Why a node could not be had: no memory for its level, an id outside the
/// numbering, or an id already in use (the allocator reused a live id: a bug).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoNode;

/// What [`Lru::remove`] did, and so who frees the allocator object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removed {
    /// The node was linked and is free now: the caller frees the object.
    Free,
    /// The node is isolated: it is dead now, and its reclaimer frees the object after
    /// [`Lru::finish`].
    Deferred,
    /// No object of the ring has this id (free or never made): the caller frees the
    /// object it holds.
    Unknown,
}

/// One ring and its nodes.
pub(crate) struct Lru {
    ids: ObjectIds,
    /// Levels of each segment ([`levels_for`] its index bits).
    levels: usize,
    inner: Mutex<Inner>,
    top: Box<[spin::Once<Segment>]>,
}

impl Lru {
    /// A ring for an allocator numbering its objects as `ids`.
    pub(crate) fn new(ids: ObjectIds) -> Result<Lru, NoNode> {
        let n = ids.segments as usize;
        let mut top = Vec::new();
        top.try_reserve_exact(n).map_err(|_| NoNode)?;
        top.resize_with(n, spin::Once::new);
        let mut segs = Vec::new();
        segs.try_reserve_exact(n).map_err(|_| NoNode)?;
        segs.resize_with(n, SegState::default);
        Ok(Lru {
            ids,
            levels: levels_for(ids.segment_bits),
            inner: Mutex::new(Inner {
                hand: (0, 0),
                linked: 0,
                isolated: 0,
                segs,
            }),
            top: top.into_boxed_slice(),
        })
    }

    /// The node of `id`, if its level was made.
    #[inline]
    fn node(&self, id: u32) -> Option<&AtomicU8> {
        let seg = self.top.get(self.ids.segment(id) as usize)?.get()?;
        let (k, off) = locate(self.ids.index(id));
        seg.get(k)?.get()?.get(off)
    }

    /// Marks the page referenced (a load hit it). Lock-free; writes the line only when
    /// the bit is not already set. A mark that lands on a node freed meanwhile is
    /// harmless: an insert rewrites the whole byte, and the hand reads the state first.
    #[inline]
    pub(crate) fn mark(&self, id: u32) {
        if let Some(n) = self.node(id)
            && n.load(Ordering::Relaxed) & REFERENCED == 0
        {
            n.fetch_or(REFERENCED, Ordering::Relaxed);
        }
    }

    /// Makes the level holding index `i` of segment `s` (under the ring lock), and the
    /// live counts up to its end. Fallible.
    fn grow(&self, g: &mut Inner, s: u32, i: u32) -> Result<(), NoNode> {
        let (k, _) = locate(i);
        if k >= self.levels {
            return Err(NoNode);
        }
        let slot = self.top.get(s as usize).ok_or(NoNode)?;
        if slot.get().is_none() {
            let mut v = Vec::new();
            v.try_reserve_exact(self.levels).map_err(|_| NoNode)?;
            v.resize_with(self.levels, spin::Once::new);
            // Uncontended: only the holder of the ring lock makes segments and levels.
            slot.call_once(|| v.into_boxed_slice());
        }
        let seg = slot.get().ok_or(NoNode)?;
        if seg[k].get().is_some() {
            return Ok(());
        }
        let end = level_start(k + 1);
        let st = &mut g.segs[s as usize];
        let blocks = end.div_ceil(BLOCK);
        if st.live.len() < blocks {
            st.live
                .try_reserve_exact(blocks - st.live.len())
                .map_err(|_| NoNode)?;
        }
        let mut v = Vec::new();
        v.try_reserve_exact(FIRST << k).map_err(|_| NoNode)?;
        v.resize_with(FIRST << k, || AtomicU8::new(FREE));
        seg[k].call_once(|| v.into_boxed_slice());
        if st.live.len() < blocks {
            st.live.resize(blocks, 0);
        }
        st.extent = st.extent.max(end as u32);
        Ok(())
    }

    /// Links the new object `id` in the ring, referenced. O(1); makes a level of nodes
    /// now and then (fallible).
    pub(crate) fn insert(&self, id: u32) -> Result<(), NoNode> {
        let (s, i) = (self.ids.segment(id), self.ids.index(id));
        if s >= self.ids.segments {
            return Err(NoNode);
        }
        let mut g = self.inner.lock();
        self.grow(&mut g, s, i)?;
        let n = self.node(id).ok_or(NoNode)?;
        if n.load(Ordering::Relaxed) & STATE_MASK != FREE {
            return Err(NoNode);
        }
        n.store(LINKED | REFERENCED, Ordering::Relaxed);
        g.link(s, i);
        Ok(())
    }

    /// The descriptor of object `id` was freed. A linked node leaves the ring and is
    /// free again ([`Removed::Free`]: the caller frees the object); an isolated one is
    /// marked dead ([`Removed::Deferred`]: its reclaimer frees the object). O(1).
    pub(crate) fn remove(&self, id: u32) -> Removed {
        let mut g = self.inner.lock();
        let Some(n) = self.node(id) else {
            return Removed::Unknown;
        };
        match n.load(Ordering::Relaxed) & STATE_MASK {
            LINKED => {
                g.unlink(self.ids.segment(id), self.ids.index(id));
                n.store(FREE, Ordering::Relaxed);
                Removed::Free
            }
            ISOLATED => {
                n.store(DEAD, Ordering::Relaxed);
                Removed::Deferred
            }
            // Freed twice while isolated (a caller's bug): the reclaimer still frees the
            // object, once.
            DEAD => Removed::Deferred,
            _ => Removed::Unknown,
        }
    }

    /// Moves the hand to the next node that may be reclaimed and takes it. A
    /// referenced node met on the way gets its second chance (its bit is cleared), at
    /// most `max_rotations` times in this call; free and isolated nodes are passed. When
    /// the rotations or [`MAX_SKIPS`] run out the call isolates nothing
    /// ([`NoTail::Rotated`]) and the caller decides whether to go on.
    /// O(1 + max_rotations + MAX_SKIPS) under the lock.
    pub(crate) fn isolate(&self, max_rotations: usize) -> Result<Isolated, NoTail> {
        let mut g = self.inner.lock();
        let mut rotated = 0;
        let mut skipped = 0;
        loop {
            if g.linked == 0 {
                return Err(if rotated > 0 {
                    NoTail::Rotated(rotated)
                } else {
                    NoTail::Empty
                });
            }
            if skipped == MAX_SKIPS {
                return Err(NoTail::Rotated(rotated));
            }
            let (mut s, i) = g.hand;
            if s >= self.ids.segments {
                s = 0;
            }
            let st = &g.segs[s as usize];
            if i >= st.extent {
                // The segment's end (or a segment with no levels): the next one.
                g.hand = (s + 1, 0);
                skipped += 1;
                continue;
            }
            if st.live[i as usize / BLOCK] == 0 {
                // No linked node in this block: to the next one in one step.
                g.hand = (s, (i / BLOCK as u32 + 1) * BLOCK as u32);
                skipped += 1;
                continue;
            }
            let id = (s << self.ids.segment_bits) | i;
            let Some(n) = self.node(id) else {
                // A level passed over (ids above it were made first): its end.
                let (k, _) = locate(i);
                g.hand = (s, level_start(k + 1) as u32);
                skipped += 1;
                continue;
            };
            g.hand = (s, i + 1);
            let b = n.load(Ordering::Relaxed);
            if b & STATE_MASK != LINKED {
                skipped += 1;
                continue;
            }
            if b & REFERENCED != 0 && g.linked > 1 {
                if rotated == max_rotations {
                    g.hand = (s, i);
                    return Err(NoTail::Rotated(rotated));
                }
                n.fetch_and(!REFERENCED, Ordering::Relaxed);
                rotated += 1;
                continue;
            }
            // The bit goes with the state change (the page is being reclaimed); a mark
            // racing it since the read above is lost: one second chance, at worst.
            n.store(ISOLATED, Ordering::Relaxed);
            g.unlink(s, i);
            g.isolated += 1;
            return Ok(Isolated { id, rotated });
        }
    }

    /// Ends a reclaimer's hold on node `id`. A dead node (its descriptor was freed) is
    /// free again and the call returns `true`: the reclaimer frees the allocator object
    /// now. A node whose object is still stored is linked again where it is (it could
    /// not be reclaimed now: refused writeback, a busy slot, a page with no writeback
    /// target), so the hand comes back to it after a whole turn; `false`.
    pub(crate) fn finish(&self, id: u32) -> bool {
        let mut g = self.inner.lock();
        let Some(n) = self.node(id) else { return false };
        match n.load(Ordering::Relaxed) & STATE_MASK {
            DEAD => {
                g.isolated -= 1;
                n.store(FREE, Ordering::Relaxed);
                true
            }
            ISOLATED => {
                g.isolated -= 1;
                // A load while it was isolated keeps its mark.
                let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some((b & REFERENCED) | LINKED)
                });
                g.link(self.ids.segment(id), self.ids.index(id));
                false
            }
            _ => false,
        }
    }

    /// Nodes in the ring (isolated ones not counted).
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().linked
    }

    /// Heap bytes of the ring: the segment table, each made segment's level table and
    /// levels, and the live counts.
    pub(crate) fn metadata_bytes(&self) -> usize {
        let mut n = self.top.len() * core::mem::size_of::<spin::Once<Segment>>();
        for seg in self.top.iter().filter_map(|s| s.get()) {
            n += seg.len() * core::mem::size_of::<spin::Once<Level>>();
            n += seg
                .iter()
                .filter_map(|l| l.get())
                .map(|l| l.len())
                .sum::<usize>();
        }
        let g = self.inner.lock();
        n + g.segs.capacity() * core::mem::size_of::<SegState>()
            + g.segs
                .iter()
                .map(|s| s.live.capacity() * core::mem::size_of::<u16>())
                .sum::<usize>()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    /// Four segments of 2^12 ids.
    const IDS: ObjectIds = ObjectIds {
        segments: 4,
        segment_bits: 12,
    };

    fn ring() -> Lru {
        Lru::new(IDS).unwrap()
    }

    fn referenced(l: &Lru, id: u32) -> bool {
        l.node(id).unwrap().load(Ordering::Relaxed) & REFERENCED != 0
    }

    /// The next node the hand takes, calling again while a call gives up (as the
    /// reclaimer does); (id, rotations in all).
    fn take(l: &Lru, rot: usize) -> Option<(u32, usize)> {
        let mut rotated = 0;
        for _ in 0..64 {
            match l.isolate(rot) {
                Ok(a) => return Some((a.id, rotated + a.rotated)),
                Err(NoTail::Rotated(n)) => rotated += n,
                Err(NoTail::Empty) => return None,
            }
        }
        panic!("the hand found nothing in 64 calls");
    }

    /// Takes the next node and frees its descriptor; returns its id.
    fn evict(l: &Lru) -> u32 {
        let (id, _) = take(l, 8).unwrap();
        assert_eq!(l.remove(id), Removed::Deferred);
        assert!(l.finish(id));
        id
    }

    #[test]
    fn levels_double() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST as u32 - 1), (0, FIRST - 1));
        assert_eq!(locate(FIRST as u32), (1, 0));
        assert_eq!(locate(3 * FIRST as u32 - 1), (1, 2 * FIRST - 1));
        assert_eq!(locate(3 * FIRST as u32), (2, 0));
        assert_eq!(level_start(2), 3 * FIRST);
        // Every id of zbud with one shard has a level, and no more levels are made.
        let l = levels_for(25);
        assert!(locate((1 << 25) - 1).0 < l && level_start(l - 1) < 1 << 25);
    }

    #[test]
    fn clock_order_and_second_chance() {
        let l = ring();
        for id in 0..4 {
            l.insert(id).unwrap();
            assert!(referenced(&l, id), "a new page is stored referenced");
        }
        assert_eq!(l.len(), 4);
        // The first turn gives every new page its second chance, then takes the first.
        assert_eq!(take(&l, 8), Some((0, 4)));
        // Not freed: linked again where it is, met after a whole turn.
        assert!(!l.finish(0));
        // A load of 2 gives it another chance: 1, then 3 go first.
        l.mark(2);
        assert_eq!(take(&l, 8), Some((1, 0)));
        assert_eq!(l.remove(1), Removed::Deferred);
        assert!(l.finish(1), "dead: the reclaimer frees the object");
        assert_eq!(take(&l, 8), Some((3, 1)));
        assert!(!l.finish(3));
        assert_eq!(evict(&l), 0);
        assert_eq!(evict(&l), 2, "the rotated page, now unreferenced");
        assert_eq!(evict(&l), 3);
        assert_eq!(l.isolate(8), Err(NoTail::Empty));
        assert_eq!(l.len(), 0);
        // A freed id can be inserted again.
        l.insert(1).unwrap();
        assert_eq!(l.remove(1), Removed::Free);
    }

    #[test]
    fn the_hand_goes_round_the_segments() {
        let l = ring();
        // Ids in segments 3, 1 and 0; segment 2 has none.
        for id in [3 << 12 | 5, 1 << 12 | 700, 7] {
            l.insert(id).unwrap();
        }
        let order: Vec<u32> = (0..3).map(|_| evict(&l)).collect();
        assert_eq!(order, [7, 1 << 12 | 700, 3 << 12 | 5]);
        assert_eq!(
            l.insert(4 << 12),
            Err(NoNode),
            "segment 4 is outside the numbering"
        );
        assert_eq!(l.insert(1 << 12 | 4095), Ok(()));
    }

    #[test]
    fn rotation_budget_bounds_the_scan() {
        let l = ring();
        for id in 0..100 {
            l.insert(id).unwrap();
        }
        // Every page referenced: each call rotates at most 3 and isolates nothing.
        for _ in 0..33 {
            assert_eq!(l.isolate(3), Err(NoTail::Rotated(3)));
        }
        // The last referenced page rotates; then every bit is clear and the hand,
        // round again, takes the first page.
        let a = l.isolate(3).unwrap();
        assert_eq!((a.id, a.rotated), (0, 1));
        assert_eq!(l.len(), 99);
    }

    #[test]
    fn an_empty_block_is_one_step_and_skips_are_bounded() {
        let l = ring();
        let b = BLOCK as u32;
        for id in 0..4 * b {
            l.insert(id).unwrap();
        }
        let a = l.isolate(4 * BLOCK).unwrap();
        assert_eq!((a.id, a.rotated), (0, 4 * BLOCK));
        assert!(!l.finish(0));
        // Block 0 keeps 0 and 500, block 1 is emptied.
        for id in (1..500).chain(501..2 * b) {
            assert_eq!(l.remove(id), Removed::Free);
        }
        // 499 free nodes pass before 500 within one call (fewer than MAX_SKIPS).
        assert_eq!(l.isolate(8).map(|a| a.id), Ok(500));
        assert_eq!(l.remove(500), Removed::Deferred);
        assert!(l.finish(500));
        // The empty block 1 is one step: the next call reaches block 2.
        assert_eq!(l.isolate(8).map(|a| a.id), Ok(2 * b));
        assert_eq!(l.remove(2 * b), Removed::Deferred);
        assert!(l.finish(2 * b));
        // Block 2 emptied (one step), and 511 free nodes before the last one of block
        // 3: more than one call passes. It gives up; the next call goes on.
        for id in 2 * b + 1..4 * b - 1 {
            assert_eq!(l.remove(id), Removed::Free);
        }
        assert_eq!(l.isolate(8), Err(NoTail::Rotated(0)));
        assert_eq!(l.isolate(8).map(|a| a.id), Ok(4 * b - 1));
    }

    #[test]
    fn an_object_is_not_freed_while_isolated() {
        let l = ring();
        l.insert(9).unwrap();
        let a = l.isolate(0).unwrap();
        assert_eq!(a.id, 9);
        // Freed while isolated: the ring keeps the id until the reclaimer is done.
        assert_eq!(l.remove(9), Removed::Deferred);
        assert_eq!(l.insert(9), Err(NoNode), "the id is still the reclaimer's");
        assert_eq!(
            l.remove(9),
            Removed::Deferred,
            "a second free frees nothing"
        );
        assert!(l.finish(9));
        l.insert(9).unwrap();
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let l = ring();
        assert_eq!(l.remove(12345), Removed::Unknown);
        assert!(!l.finish(12345));
        l.mark(u32::MAX);
        for id in 0..2000 {
            l.insert(id).unwrap();
        }
        assert_eq!(
            l.insert(5),
            Err(NoNode),
            "a linked id is not inserted twice"
        );
        assert_eq!(l.len(), 2000);
        // 2000 ids take the levels of 64 to 1024 nodes (level_start(5) = 1984, so
        // 2048 more): a byte each, and the tables.
        assert_eq!(level_start(5), 1984);
        let levels = level_start(6);
        assert!(l.metadata_bytes() >= levels && l.metadata_bytes() < levels + 2048);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32),
        Remove(usize),
        Isolate(usize),
        Finish(usize),
        Mark(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Ids in all four segments, most of them low (as allocators give them).
            4 => (0u32..4, prop_oneof![0u32..64, 0u32..4096])
                .prop_map(|(s, i)| Op::Insert(s << 12 | i)),
            2 => any::<usize>().prop_map(Op::Remove),
            3 => (1usize..4).prop_map(Op::Isolate),
            2 => any::<usize>().prop_map(Op::Finish),
            2 => any::<usize>().prop_map(Op::Mark),
        ]
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum M {
        Linked,
        Isolated,
        Dead,
    }

    proptest! {
        /// The ring against a plain model: every node's state, who frees the object,
        /// and that the hand always gets to a linked node within a bounded number of
        /// calls.
        #[test]
        fn the_ring_matches_a_model(ops in proptest::collection::vec(op(), 1..400)) {
            let l = ring();
            let mut model: BTreeMap<u32, M> = BTreeMap::new();
            let pick = |model: &BTreeMap<u32, M>, i: usize, want: &[M]| {
                let v: Vec<u32> = model
                    .iter()
                    .filter(|(_, m)| want.contains(m))
                    .map(|(id, _)| *id)
                    .collect();
                (!v.is_empty()).then(|| v[i % v.len()])
            };
            for op in ops {
                match op {
                    Op::Insert(id) => {
                        let r = l.insert(id);
                        prop_assert_eq!(r.is_ok(), !model.contains_key(&id), "insert of {}", id);
                        model.entry(id).or_insert(M::Linked);
                    }
                    Op::Remove(i) => {
                        if let Some(id) = pick(&model, i, &[M::Linked, M::Isolated, M::Dead]) {
                            let r = l.remove(id);
                            match model[&id] {
                                M::Linked => {
                                    prop_assert_eq!(r, Removed::Free);
                                    model.remove(&id);
                                }
                                M::Isolated => {
                                    prop_assert_eq!(r, Removed::Deferred);
                                    model.insert(id, M::Dead);
                                }
                                M::Dead => prop_assert_eq!(r, Removed::Deferred),
                            }
                        }
                    }
                    Op::Isolate(rot) => {
                        let linked = model.values().filter(|m| **m == M::Linked).count();
                        // Bounded: a linked node is found within this many calls (each
                        // call passes MAX_SKIPS blocks, levels or nodes; the ids lie
                        // in 4 segments of at most 15 blocks; two turns at most, the
                        // first clearing the bits).
                        let calls = 2 * (2 + (4 * 16 * (BLOCK + 1) + 4) / MAX_SKIPS + linked / rot);
                        let mut got = None;
                        for _ in 0..calls {
                            match l.isolate(rot) {
                                Ok(a) => { got = Some(a); break; }
                                Err(NoTail::Empty) => break,
                                Err(NoTail::Rotated(_)) => {}
                            }
                        }
                        match got {
                            Some(a) => {
                                prop_assert_eq!(model.get(&a.id), Some(&M::Linked), "isolated {:?}", a);
                                model.insert(a.id, M::Isolated);
                            }
                            None => prop_assert_eq!(linked, 0, "no node found in {} calls", calls),
                        }
                    }
                    Op::Finish(i) => {
                        if let Some(id) = pick(&model, i, &[M::Isolated, M::Dead]) {
                            let freed = l.finish(id);
                            prop_assert_eq!(freed, model[&id] == M::Dead);
                            if freed {
                                model.remove(&id);
                            } else {
                                model.insert(id, M::Linked);
                            }
                        }
                    }
                    Op::Mark(i) => {
                        if let Some(id) = pick(&model, i, &[M::Linked, M::Isolated]) {
                            l.mark(id);
                        }
                    }
                }
                let linked = model.values().filter(|m| **m == M::Linked).count();
                prop_assert_eq!(l.len(), linked);
                for (id, m) in &model {
                    let state = l.node(*id).unwrap().load(Ordering::Relaxed) & STATE_MASK;
                    let want = match m { M::Linked => LINKED, M::Isolated => ISOLATED, M::Dead => DEAD };
                    prop_assert_eq!(state, want, "node {}", id);
                }
            }
        }
    }
}
