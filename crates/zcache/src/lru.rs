//! zcache's reclaim order of compressed pages: one CLOCK ring per pool kind, with a
//! second-chance referenced bit (zswap 6.8's shrinker gives the same second chance).
//!
//! Every compressed object zcache stores has a *node* here. The node is the object's
//! identity inside zcache: the page descriptor in tmem names the node (not the
//! allocator handle), and the node holds the allocator handle, the referenced bit and
//! the node's state. So a descriptor finds its node in O(1) (no scan, no hash), and a
//! load marks the page without taking any lock.
//!
//! ```text
//!   node (8 bytes, one word)
//!     bit 63      referenced (a load hit the page since the hand last passed)
//!     bit 62      young (stored ahead of the hand: skipped once, so that a new page
//!                 is not the next one reclaimed)
//!     bits 61..60 state: free 0, linked 1, isolated 2, dead 3
//!     bits 47..0  the allocator handle; in a free node, the next free id (32 bits)
//! ```
//!
//! The nodes are the ring, in id order, and a hand goes round it (CLOCK, as a kernel's
//! page daemon goes round its frames). The hand takes the first linked node whose
//! referenced bit is clear, clearing the bits it passes. A node freed by reclaim is
//! reused by the next store, and it lies just behind the hand: the new page is met last,
//! as at an LRU's head. A node freed by an invalidation can lie anywhere; a store that
//! reuses one in the half of the ring the hand reaches first marks it young, so it is
//! passed over once. There are no links: 8 bytes a page where the doubly linked LRU
//! this replaced took 16.
//!
//! A node is in one of four states, all changed under the ring lock:
//! * **free**: on the free list (threaded through the handle bits);
//! * **linked**: in the ring, its object stored;
//! * **isolated**: taken by a reclaimer, which owns it until [`Lru::finish`]; the
//!   object is still stored;
//! * **dead**: the object was freed while isolated; `finish` puts the node on the free
//!   list. So a node id is never reused while a reclaimer holds it, and a reclaimer's
//!   descriptor (kind, length, node id) can only ever match the object it isolated.
//!
//! Every operation is O(1) under the lock: the hand's walk is bounded by the caller's
//! rotation budget and by [`MAX_SKIPS`] nodes passed over (free, isolated, young), and a
//! chunk with no linked node is passed in one step. Node storage is two levels of chunks
//! created on demand and never moved, so a node's address is stable and loads read it
//! without the lock (the bucket lock that published the descriptor orders the handle's
//! write before the load's read).

use alloc::boxed::Box;
use alloc::vec::Vec;

use zpool::Handle;

use crate::sync::Mutex;
// The node words are `core` atomics even under loom: as loom atomics every state change
// is a branch point and the models do not finish. The ring itself is under the
// (modelled) ring lock; what loom does not see is the lock-free read of a node's handle
// by a load (ordered by the bucket lock that published the descriptor) and the
// referenced bit's set racing its clear (both atomic read-modify-writes; the worst
// outcome is one lost second chance).
use core::sync::atomic::{AtomicU64, Ordering};

/// Nodes per chunk.
#[cfg(not(loom))]
const CHUNK: usize = 1024;
/// Chunks per directory block.
#[cfg(not(loom))]
const DIR: usize = 1024;
/// Directory blocks: 256 x 1024 x 1024 = 2^28 nodes (a terabyte of 4 KiB pages, 16 TiB of 64 KiB ones).
#[cfg(not(loom))]
const TOP: usize = 256;
// Under loom every atomic is a modelled object: small chunks keep the models fast.
#[cfg(loom)]
const CHUNK: usize = 8;
#[cfg(loom)]
const DIR: usize = 8;
#[cfg(loom)]
const TOP: usize = 8;
/// Most nodes one ring can hold.
pub(crate) const MAX_NODES: usize = TOP * DIR * CHUNK;

/// Nodes the hand may pass over (free, isolated, young: not rotations) in one
/// [`Lru::isolate`] call. A chunk with no linked node counts as one.
pub(crate) const MAX_SKIPS: usize = 512;

const NIL: u32 = u32::MAX;

const REFERENCED: u64 = 1 << 63;
const YOUNG: u64 = 1 << 62;
const STATE_SHIFT: u32 = 60;
const STATE_MASK: u64 = 3 << STATE_SHIFT;
const FREE: u64 = 0;
const LINKED: u64 = 1 << STATE_SHIFT;
const ISOLATED: u64 = 2 << STATE_SHIFT;
const DEAD: u64 = 3 << STATE_SHIFT;
const HANDLE_MASK: u64 = (1 << Handle::BITS) - 1;
const _: () = assert!(Handle::BITS < STATE_SHIFT);

/// One object's node.
pub(crate) struct Node {
    word: AtomicU64,
}

impl Node {
    fn new() -> Node {
        Node {
            word: AtomicU64::new(FREE | u64::from(NIL)),
        }
    }

    /// The allocator handle of the node's object (none for a free node).
    #[inline]
    pub(crate) fn handle(&self) -> Option<Handle> {
        let w = self.word.load(Ordering::Relaxed);
        if w & STATE_MASK == FREE {
            return None;
        }
        Handle::from_raw(w & HANDLE_MASK)
    }

    /// Marks the page referenced (a load hit it). Lock-free; writes the line only when
    /// the bit is not already set. A mark that lands on a node freed meanwhile is
    /// harmless: the free list reads only the low 32 bits, and a store rewrites the
    /// whole word.
    #[inline]
    pub(crate) fn mark(&self) {
        if self.word.load(Ordering::Relaxed) & REFERENCED == 0 {
            self.word.fetch_or(REFERENCED, Ordering::Relaxed);
        }
    }

    fn state(&self) -> u64 {
        self.word.load(Ordering::Relaxed) & STATE_MASK
    }

    /// Sets the state and clears the bits in `clear`, keeping the others (a racing
    /// `mark` is not lost). One read-modify-write.
    fn set_state(&self, state: u64, clear: u64) {
        let _ = self
            .word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some((w & !(STATE_MASK | clear)) | state)
            });
    }

    fn next_free(&self) -> u32 {
        self.word.load(Ordering::Relaxed) as u32
    }
}

type Chunk = Box<[Node]>;
type Block = Box<[spin::Once<Chunk>]>;

/// Ring state, under the lock.
struct Inner {
    /// The next node the hand looks at.
    hand: u32,
    free: u32,
    /// Nodes ever created (ids below this exist: the ring).
    created: u32,
    linked: usize,
    isolated: usize,
    /// Linked nodes per chunk, so the hand passes an empty chunk in one step.
    live: Vec<u16>,
}

impl Inner {
    fn link(&mut self, id: u32) {
        self.linked += 1;
        self.live[id as usize / CHUNK] += 1;
    }

    fn unlink(&mut self, id: u32) {
        self.linked -= 1;
        self.live[id as usize / CHUNK] -= 1;
    }
}

/// What [`Lru::isolate`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Isolated {
    /// The node id (what the object's descriptor names).
    pub(crate) id: u32,
    /// The object's allocator handle.
    pub(crate) handle: Handle,
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

/// Why a node could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoNode;

/// One ring and its nodes.
pub(crate) struct Lru {
    inner: Mutex<Inner>,
    top: Box<[spin::Once<Block>]>,
}

impl Lru {
    pub(crate) fn new() -> Result<Lru, NoNode> {
        let mut top = Vec::new();
        top.try_reserve_exact(TOP).map_err(|_| NoNode)?;
        top.resize_with(TOP, spin::Once::new);
        Ok(Lru {
            inner: Mutex::new(Inner {
                hand: 0,
                free: NIL,
                created: 0,
                linked: 0,
                isolated: 0,
                live: Vec::new(),
            }),
            top: top.into_boxed_slice(),
        })
    }

    /// The node `id`, if it was ever created.
    #[inline]
    pub(crate) fn node(&self, id: u32) -> Option<&Node> {
        let i = id as usize;
        let block = self.top.get(i / (DIR * CHUNK))?.get()?;
        let chunk = block[(i / CHUNK) % DIR].get()?;
        chunk.get(i % CHUNK)
    }

    fn at(&self, id: u32) -> &Node {
        // Callers pass ids that exist: linked, isolated or free nodes were created.
        match self.node(id) {
            Some(n) => n,
            None => unreachable_node(id),
        }
    }

    /// Creates the chunk holding node `id` (under the ring lock). Fallible.
    fn grow(&self, g: &mut Inner, id: u32) -> Result<(), NoNode> {
        let i = id as usize;
        let slot = self.top.get(i / (DIR * CHUNK)).ok_or(NoNode)?;
        if slot.get().is_none() {
            let mut v = Vec::new();
            v.try_reserve_exact(DIR).map_err(|_| NoNode)?;
            v.resize_with(DIR, spin::Once::new);
            // Uncontended: only the holder of the ring lock creates blocks.
            slot.call_once(|| v.into_boxed_slice());
        }
        let block = slot.get().ok_or(NoNode)?;
        let cslot = &block[(i / CHUNK) % DIR];
        if cslot.get().is_none() {
            g.live.try_reserve(1).map_err(|_| NoNode)?;
            let mut v = Vec::new();
            v.try_reserve_exact(CHUNK).map_err(|_| NoNode)?;
            v.resize_with(CHUNK, Node::new);
            cslot.call_once(|| v.into_boxed_slice());
            g.live.push(0);
        }
        Ok(())
    }

    /// A node for a new object holding `handle`, linked in the ring. O(1); allocates a
    /// chunk of nodes now and then (fallible).
    pub(crate) fn insert(&self, handle: Handle) -> Result<u32, NoNode> {
        let mut g = self.inner.lock();
        let id = if g.free != NIL {
            let id = g.free;
            g.free = self.at(id).next_free();
            id
        } else {
            if g.created as usize >= MAX_NODES {
                return Err(NoNode);
            }
            let id = g.created;
            self.grow(&mut g, id)?;
            g.created += 1;
            id
        };
        // Ahead of the hand, in the half of the ring it reaches first: skipped once.
        let hand = if g.hand >= g.created { 0 } else { g.hand };
        let ahead = if id >= hand {
            id - hand
        } else {
            id + (g.created - hand)
        };
        let young = if ahead < g.created / 2 { YOUNG } else { 0 };
        self.at(id)
            .word
            .store(LINKED | young | handle.to_raw(), Ordering::Relaxed);
        g.link(id);
        Ok(id)
    }

    fn push_free(&self, g: &mut Inner, id: u32) {
        self.at(id)
            .word
            .store(FREE | u64::from(g.free), Ordering::Relaxed);
        g.free = id;
    }

    /// The object of node `id` was freed. A linked node leaves the ring and is free
    /// again; an isolated one is marked dead for its reclaimer to free. O(1).
    pub(crate) fn remove(&self, id: u32) {
        let mut g = self.inner.lock();
        let Some(n) = self.node(id) else { return };
        match n.state() {
            LINKED => {
                g.unlink(id);
                self.push_free(&mut g, id);
            }
            ISOLATED => n.set_state(DEAD, 0),
            _ => {}
        }
    }

    /// Moves the hand to the next node that may be reclaimed and takes it. A
    /// referenced node met on the way gets its second chance (its bit is cleared), at
    /// most `max_rotations` times in this call; a young node is passed over once; free
    /// and isolated nodes are passed. When the rotations or [`MAX_SKIPS`] run out the
    /// call isolates nothing ([`NoTail::Rotated`]) and the caller decides whether to go
    /// on. O(1 + max_rotations + MAX_SKIPS) under the lock.
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
            if g.hand >= g.created {
                g.hand = 0;
            }
            let t = g.hand;
            if g.live[t as usize / CHUNK] == 0 {
                // No linked node in this chunk: to the next one in one step.
                g.hand = (t / CHUNK as u32 + 1) * CHUNK as u32;
                skipped += 1;
                continue;
            }
            g.hand = t + 1;
            let n = self.at(t);
            let w = n.word.load(Ordering::Relaxed);
            if w & STATE_MASK != LINKED {
                skipped += 1;
                continue;
            }
            if w & YOUNG != 0 && g.linked > 1 {
                n.word.fetch_and(!YOUNG, Ordering::Relaxed);
                skipped += 1;
                continue;
            }
            if w & REFERENCED != 0 && g.linked > 1 {
                if rotated == max_rotations {
                    g.hand = t;
                    return Err(NoTail::Rotated(rotated));
                }
                n.word.fetch_and(!REFERENCED, Ordering::Relaxed);
                rotated += 1;
                continue;
            }
            let Some(handle) = Handle::from_raw(w & HANDLE_MASK) else {
                // Never: a linked node always holds a valid handle. Leave it linked.
                skipped += 1;
                continue;
            };
            n.set_state(ISOLATED, REFERENCED | YOUNG);
            g.unlink(t);
            g.isolated += 1;
            return Ok(Isolated {
                id: t,
                handle,
                rotated,
            });
        }
    }

    /// Ends a reclaimer's hold on node `id`: a dead node (its object was freed) goes to
    /// the free list; a node whose object is still stored is linked again where it is
    /// (it could not be reclaimed now: refused writeback, a busy slot, a page with no
    /// writeback target), so the hand comes back to it after a whole turn. Returns
    /// whether the object was freed.
    pub(crate) fn finish(&self, id: u32) -> bool {
        let mut g = self.inner.lock();
        let Some(n) = self.node(id) else { return false };
        match n.state() {
            DEAD => {
                g.isolated -= 1;
                self.push_free(&mut g, id);
                true
            }
            ISOLATED => {
                g.isolated -= 1;
                n.set_state(LINKED, 0);
                g.link(id);
                false
            }
            _ => false,
        }
    }

    /// Nodes in the ring (isolated ones not counted).
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().linked
    }

    /// Heap bytes of the node tables.
    pub(crate) fn metadata_bytes(&self) -> usize {
        let mut n = self.top.len() * core::mem::size_of::<spin::Once<Block>>();
        for b in self.top.iter().filter_map(|b| b.get()) {
            n += b.len() * core::mem::size_of::<spin::Once<Chunk>>();
            n += b.iter().filter(|c| c.get().is_some()).count()
                * CHUNK
                * core::mem::size_of::<Node>();
        }
        n + self.inner.lock().live.capacity() * core::mem::size_of::<u16>()
    }
}

#[cold]
fn unreachable_node(id: u32) -> ! {
    // A node id the ring itself handed out always exists; reaching this is a bug in
    // this module, not bad input (descriptors from callers go through `node`).
    panic!("zcache lru: node {id} was never created")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    fn h(n: u64) -> Handle {
        Handle::from_raw(n).unwrap()
    }

    /// Takes the next node and frees its object.
    fn evict(l: &Lru) -> u32 {
        let a = l.isolate(8).unwrap();
        l.remove(a.id);
        assert!(l.finish(a.id));
        a.id
    }

    #[test]
    fn clock_order_and_second_chance() {
        let l = Lru::new().unwrap();
        let ids: Vec<u32> = (1..=4).map(|i| l.insert(h(i)).unwrap()).collect();
        assert_eq!(l.len(), 4);
        // A load of the oldest gives it a second chance: the next oldest goes first.
        l.node(ids[0]).unwrap().mark();
        let a = l.isolate(8).unwrap();
        assert_eq!((a.id, a.handle, a.rotated), (ids[1], h(2), 1));
        l.remove(a.id); // freed while isolated: dead
        assert!(l.finish(a.id));
        let b = l.isolate(8).unwrap();
        assert_eq!(b.id, ids[2]);
        // Not freed: linked again where it is, met after a whole turn.
        assert!(!l.finish(b.id));
        assert_eq!(evict(&l), ids[3]);
        assert_eq!(evict(&l), ids[0], "the rotated page, now unreferenced");
        assert_eq!(evict(&l), ids[2]);
        assert_eq!(l.isolate(8), Err(NoTail::Empty));
        assert_eq!(l.len(), 0);
        // Freed ids are reused.
        let again = l.insert(h(9)).unwrap();
        assert!(ids.contains(&again));
        assert_eq!(l.node(again).unwrap().handle(), Some(h(9)));
    }

    #[test]
    fn rotation_budget_bounds_the_scan() {
        let l = Lru::new().unwrap();
        for i in 1..=100 {
            let id = l.insert(h(i)).unwrap();
            l.node(id).unwrap().mark();
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
    fn a_page_stored_ahead_of_the_hand_is_passed_over_once() {
        let l = Lru::new().unwrap();
        for i in 1..=10 {
            l.insert(h(i)).unwrap();
        }
        assert_eq!(evict(&l), 0); // the hand is at 1 now
        l.remove(5); // an invalidation frees a node ahead of the hand
        // Reused first (the free list is last in, first out): 4 ahead of the hand, in
        // the half it reaches first: young.
        assert_eq!(l.insert(h(11)).unwrap(), 5);
        // Node 0 lies just behind the hand: not young.
        assert_eq!(l.insert(h(12)).unwrap(), 0);
        let order: Vec<u32> = (0..10).map(|_| evict(&l)).collect();
        assert_eq!(order, [1, 2, 3, 4, 6, 7, 8, 9, 0, 5]);
        assert_eq!(l.isolate(8), Err(NoTail::Empty));
    }

    #[test]
    fn an_empty_chunk_is_one_step_and_skips_are_bounded() {
        let l = Lru::new().unwrap();
        let n = 3 * CHUNK as u64;
        for i in 1..=n {
            l.insert(h(i)).unwrap();
        }
        // Chunk 1 emptied by invalidations; in chunk 0 only nodes 0 and 1000 stay.
        for id in (1..1000).chain(1001..2 * CHUNK as u32) {
            l.remove(id);
        }
        assert_eq!(evict(&l), 0);
        // 999 free nodes before node 1000: more than one call's skips.
        assert_eq!(l.isolate(8), Err(NoTail::Rotated(0)));
        assert_eq!(evict(&l), 1000);
        // A whole empty chunk is one skip: the next call reaches chunk 2.
        assert_eq!(evict(&l), 2 * CHUNK as u32);
    }

    #[test]
    fn a_node_is_not_reused_while_isolated() {
        let l = Lru::new().unwrap();
        let id = l.insert(h(1)).unwrap();
        let a = l.isolate(0).unwrap();
        l.remove(a.id);
        // Dead, not free: a new insert gets another id.
        let other = l.insert(h(2)).unwrap();
        assert_ne!(other, id);
        assert!(l.finish(a.id));
        assert_eq!(l.insert(h(3)).unwrap(), id);
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let l = Lru::new().unwrap();
        l.remove(12345);
        assert!(!l.finish(12345));
        assert!(l.node(u32::MAX).is_none());
        for i in 0..2000 {
            l.insert(h(i + 1)).unwrap();
        }
        assert_eq!(l.len(), 2000);
        assert_eq!(core::mem::size_of::<Node>(), 8);
        assert!(l.metadata_bytes() >= 2 * CHUNK * 8);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert,
        Remove(usize),
        Isolate(usize),
        Finish(usize),
        Mark(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Insert),
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
        /// The ring against a plain model: every node's state, the handle it holds, and
        /// that the hand always gets to a linked node within a bounded number of calls.
        #[test]
        fn the_ring_matches_a_model(ops in proptest::collection::vec(op(), 1..400)) {
            let l = Lru::new().unwrap();
            let mut model: BTreeMap<u32, (M, u64)> = BTreeMap::new();
            let mut next = 1u64;
            let pick = |model: &BTreeMap<u32, (M, u64)>, i: usize, want: &[M]| {
                let v: Vec<u32> = model
                    .iter()
                    .filter(|(_, (m, _))| want.contains(m))
                    .map(|(id, _)| *id)
                    .collect();
                (!v.is_empty()).then(|| v[i % v.len()])
            };
            for op in ops {
                match op {
                    Op::Insert => {
                        let id = l.insert(h(next)).unwrap();
                        prop_assert!(!model.contains_key(&id), "node {} reused while in use", id);
                        model.insert(id, (M::Linked, next));
                        next += 1;
                    }
                    Op::Remove(i) => {
                        if let Some(id) = pick(&model, i, &[M::Linked, M::Isolated]) {
                            l.remove(id);
                            let e = model.get_mut(&id).unwrap();
                            if e.0 == M::Linked {
                                model.remove(&id);
                            } else {
                                e.0 = M::Dead;
                            }
                        }
                    }
                    Op::Isolate(rot) => {
                        let linked = model.values().filter(|(m, _)| *m == M::Linked).count();
                        // Bounded: a linked node is found within this many calls.
                        let calls = 2 + 2 * (l.inner.lock().created as usize) / MAX_SKIPS
                            + linked / rot;
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
                                let e = model.get_mut(&a.id);
                                prop_assert!(matches!(e, Some((M::Linked, _))), "isolated {:?}", a);
                                let e = e.unwrap();
                                prop_assert_eq!(a.handle, h(e.1));
                                e.0 = M::Isolated;
                            }
                            None => prop_assert_eq!(linked, 0, "no node found in {} calls", calls),
                        }
                    }
                    Op::Finish(i) => {
                        if let Some(id) = pick(&model, i, &[M::Isolated, M::Dead]) {
                            let freed = l.finish(id);
                            let e = model.get_mut(&id).unwrap();
                            prop_assert_eq!(freed, e.0 == M::Dead);
                            if freed {
                                model.remove(&id);
                            } else {
                                e.0 = M::Linked;
                            }
                        }
                    }
                    Op::Mark(i) => {
                        if let Some(id) = pick(&model, i, &[M::Linked, M::Isolated]) {
                            l.node(id).unwrap().mark();
                        }
                    }
                }
                let linked = model.values().filter(|(m, _)| *m == M::Linked).count();
                prop_assert_eq!(l.len(), linked);
                for (id, (_, handle)) in &model {
                    prop_assert_eq!(l.node(*id).unwrap().handle(), Some(h(*handle)));
                }
            }
        }
    }
}
