//! zcache's LRU of compressed pages: page-granular, one list per pool kind, with a
//! second-chance referenced bit (zswap 6.8's shrinker works the same way).
//!
//! Every compressed object zcache stores has a *node* here. The node is the object's
//! identity inside zcache: the page descriptor in tmem names the node (not the
//! allocator handle), and the node holds the allocator handle and the referenced bit.
//! So a descriptor finds its LRU position in O(1) (no scan, no hash), and a load marks
//! the page without taking any lock.
//!
//! ```text
//!   node (16 bytes)   word:  bit 63 referenced | bits 47..0 allocator handle
//!                     links: prev (32) | next (32), changed only under the list lock
//! ```
//!
//! A node is in one of four states, all changed under the list lock:
//! * **free**: on the free list;
//! * **linked**: on the LRU, between `head` (most recent) and `tail` (least recent);
//! * **isolated**: taken off the tail by a reclaimer, which owns it until
//!   [`Lru::finish`]; the object is still stored;
//! * **dead**: the object was freed while isolated; `finish` puts the node on the
//!   free list. So a node id is never reused while a reclaimer holds it, and a
//!   reclaimer's descriptor (kind, length, node id) can only ever match the object it
//!   isolated.
//!
//! Every operation is O(1) under the lock (the second-chance scan is bounded by the
//! caller's rotation budget). Node storage is two levels of chunks created on demand
//! and never moved, so a node's address is stable and loads read it without the lock
//! (the bucket lock that published the descriptor orders the handle's write before the
//! load's read).

use alloc::boxed::Box;
use alloc::vec::Vec;

use zpool::Handle;

use crate::sync::Mutex;
// The node words are `core` atomics even under loom: as loom atomics every link update
// is a branch point and the models do not finish. The list itself is under the (modelled)
// list lock; what loom does not see is the lock-free read of a node's handle by a load
// (ordered by the bucket lock that published the descriptor) and the referenced bit's
// set racing its clear (both atomic read-modify-writes; the worst outcome is one lost
// second chance).
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
/// Most nodes one list can hold.
pub(crate) const MAX_NODES: usize = TOP * DIR * CHUNK;

const NIL: u32 = u32::MAX;
const FREE: u32 = u32::MAX - 1;
const ISOLATED: u32 = u32::MAX - 2;
const DEAD: u32 = u32::MAX - 3;

const REFERENCED: u64 = 1 << 63;
const HANDLE_MASK: u64 = (1 << Handle::BITS) - 1;

/// One object's node.
pub(crate) struct Node {
    word: AtomicU64,
    links: AtomicU64,
}

impl Node {
    fn new() -> Node {
        Node {
            word: AtomicU64::new(0),
            links: AtomicU64::new(pack(FREE, NIL)),
        }
    }

    /// The allocator handle of the node's object.
    #[inline]
    pub(crate) fn handle(&self) -> Option<Handle> {
        Handle::from_raw(self.word.load(Ordering::Relaxed) & HANDLE_MASK)
    }

    /// Marks the page referenced (a load hit it). Lock-free; writes the line only when
    /// the bit is not already set.
    #[inline]
    pub(crate) fn mark(&self) {
        if self.word.load(Ordering::Relaxed) & REFERENCED == 0 {
            self.word.fetch_or(REFERENCED, Ordering::Relaxed);
        }
    }

    fn prev(&self) -> u32 {
        (self.links.load(Ordering::Relaxed) >> 32) as u32
    }
    fn next(&self) -> u32 {
        self.links.load(Ordering::Relaxed) as u32
    }
    fn set(&self, prev: u32, next: u32) {
        self.links.store(pack(prev, next), Ordering::Relaxed);
    }
    fn set_prev(&self, prev: u32) {
        self.set(prev, self.next());
    }
    fn set_next(&self, next: u32) {
        self.set(self.prev(), next);
    }
}

fn pack(prev: u32, next: u32) -> u64 {
    (u64::from(prev) << 32) | u64::from(next)
}

type Chunk = Box<[Node]>;
type Block = Box<[spin::Once<Chunk>]>;

/// List state, under the lock.
struct Inner {
    head: u32,
    tail: u32,
    free: u32,
    /// Nodes ever created (ids below this exist).
    created: u32,
    linked: usize,
    isolated: usize,
}

/// What [`Lru::isolate_tail`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Isolated {
    /// The node id (what the object's descriptor names).
    pub(crate) id: u32,
    /// The object's allocator handle.
    pub(crate) handle: Handle,
    /// Referenced pages rotated to the head on the way (second chances given).
    pub(crate) rotated: usize,
}

/// Why [`Lru::isolate_tail`] isolated nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoTail {
    /// The list is empty.
    Empty,
    /// The rotation budget ran out on referenced pages (this many were rotated): call
    /// again for the next ones.
    Rotated(usize),
}

/// Why a node could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoNode;

/// One LRU list and its nodes.
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
                head: NIL,
                tail: NIL,
                free: NIL,
                created: 0,
                linked: 0,
                isolated: 0,
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

    /// Creates the chunk holding node `id` (under the list lock). Fallible.
    fn grow(&self, id: u32) -> Result<(), NoNode> {
        let i = id as usize;
        let slot = self.top.get(i / (DIR * CHUNK)).ok_or(NoNode)?;
        if slot.get().is_none() {
            let mut v = Vec::new();
            v.try_reserve_exact(DIR).map_err(|_| NoNode)?;
            v.resize_with(DIR, spin::Once::new);
            // Uncontended: only the holder of the list lock creates blocks.
            slot.call_once(|| v.into_boxed_slice());
        }
        let block = slot.get().ok_or(NoNode)?;
        let cslot = &block[(i / CHUNK) % DIR];
        if cslot.get().is_none() {
            let mut v = Vec::new();
            v.try_reserve_exact(CHUNK).map_err(|_| NoNode)?;
            v.resize_with(CHUNK, Node::new);
            cslot.call_once(|| v.into_boxed_slice());
        }
        Ok(())
    }

    /// A node for a new object holding `handle`, linked at the head (most recently
    /// used). O(1); allocates a chunk of nodes now and then (fallible).
    pub(crate) fn insert(&self, handle: Handle) -> Result<u32, NoNode> {
        let mut g = self.inner.lock();
        let id = if g.free != NIL {
            let id = g.free;
            g.free = self.at(id).next();
            id
        } else {
            if g.created as usize >= MAX_NODES {
                return Err(NoNode);
            }
            let id = g.created;
            self.grow(id)?;
            g.created += 1;
            id
        };
        let n = self.at(id);
        n.word.store(handle.to_raw(), Ordering::Relaxed);
        self.link_head(&mut g, id);
        Ok(id)
    }

    fn link_head(&self, g: &mut Inner, id: u32) {
        let n = self.at(id);
        n.set(NIL, g.head);
        if g.head != NIL {
            self.at(g.head).set_prev(id);
        } else {
            g.tail = id;
        }
        g.head = id;
        g.linked += 1;
    }

    fn unlink(&self, g: &mut Inner, id: u32) {
        let n = self.at(id);
        let (p, x) = (n.prev(), n.next());
        if p == NIL {
            g.head = x;
        } else {
            self.at(p).set_next(x);
        }
        if x == NIL {
            g.tail = p;
        } else {
            self.at(x).set_prev(p);
        }
        g.linked -= 1;
    }

    fn push_free(&self, g: &mut Inner, id: u32) {
        let n = self.at(id);
        n.word.store(0, Ordering::Relaxed);
        n.set(FREE, g.free);
        g.free = id;
    }

    /// The object of node `id` was freed. A linked node leaves the list and is free
    /// again; an isolated one is marked dead for its reclaimer to free. O(1).
    pub(crate) fn remove(&self, id: u32) {
        let mut g = self.inner.lock();
        let Some(n) = self.node(id) else { return };
        match n.prev() {
            FREE | DEAD => {}
            ISOLATED => n.set(DEAD, NIL),
            _ => {
                self.unlink(&mut g, id);
                self.push_free(&mut g, id);
            }
        }
    }

    /// Takes the least recently used node off the list for reclaim. A referenced node
    /// met on the way gets its second chance: its bit is cleared and it moves to the
    /// head, at most `max_rotations` times in this call; when that budget runs out the
    /// call isolates nothing ([`NoTail::Rotated`]) and the caller decides whether to go
    /// on. O(1 + max_rotations) under the lock.
    pub(crate) fn isolate_tail(&self, max_rotations: usize) -> Result<Isolated, NoTail> {
        let mut g = self.inner.lock();
        let mut rotated = 0;
        loop {
            let t = g.tail;
            if t == NIL {
                return Err(if rotated > 0 {
                    NoTail::Rotated(rotated)
                } else {
                    NoTail::Empty
                });
            }
            let n = self.at(t);
            let w = n.word.load(Ordering::Relaxed);
            if w & REFERENCED != 0 && g.linked > 1 {
                if rotated == max_rotations {
                    return Err(NoTail::Rotated(rotated));
                }
                n.word.fetch_and(!REFERENCED, Ordering::Relaxed);
                self.unlink(&mut g, t);
                self.link_head(&mut g, t);
                rotated += 1;
                continue;
            }
            n.word.fetch_and(!REFERENCED, Ordering::Relaxed);
            self.unlink(&mut g, t);
            n.set(ISOLATED, NIL);
            g.isolated += 1;
            let Some(handle) = Handle::from_raw(w & HANDLE_MASK) else {
                // Never: a linked node always holds a valid handle. Keep the list whole.
                n.set(NIL, NIL);
                g.isolated -= 1;
                self.link_head(&mut g, t);
                return Err(NoTail::Rotated(rotated));
            };
            return Ok(Isolated {
                id: t,
                handle,
                rotated,
            });
        }
    }

    /// Ends a reclaimer's hold on node `id`: a dead node (its object was freed) goes to
    /// the free list; a node whose object is still stored goes back at the head (it
    /// could not be reclaimed now: refused writeback, a busy slot, a page with no
    /// writeback target). Returns whether the object was freed.
    pub(crate) fn finish(&self, id: u32) -> bool {
        let mut g = self.inner.lock();
        let Some(n) = self.node(id) else { return false };
        match n.prev() {
            DEAD => {
                g.isolated -= 1;
                self.push_free(&mut g, id);
                true
            }
            ISOLATED => {
                g.isolated -= 1;
                self.link_head(&mut g, id);
                false
            }
            _ => false,
        }
    }

    /// Nodes on the list (isolated ones not counted).
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
        n
    }
}

#[cold]
fn unreachable_node(id: u32) -> ! {
    // A node id the list itself handed out always exists; reaching this is a bug in
    // this module, not bad input (descriptors from callers go through `node`).
    panic!("zcache lru: node {id} was never created")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn h(n: u64) -> Handle {
        Handle::from_raw(n).unwrap()
    }

    #[test]
    fn lru_order_and_second_chance() {
        let l = Lru::new().unwrap();
        let ids: Vec<u32> = (1..=4).map(|i| l.insert(h(i)).unwrap()).collect();
        assert_eq!(l.len(), 4);
        // A load of the oldest gives it a second chance: the next oldest goes first.
        l.node(ids[0]).unwrap().mark();
        let a = l.isolate_tail(8).unwrap();
        assert_eq!((a.id, a.handle, a.rotated), (ids[1], h(2), 1));
        l.remove(a.id); // freed while isolated: dead
        assert!(l.finish(a.id));
        let b = l.isolate_tail(8).unwrap();
        assert_eq!(b.id, ids[2]);
        // Not freed: goes back at the head.
        assert!(!l.finish(b.id));
        let c = l.isolate_tail(8).unwrap();
        assert_eq!(c.id, ids[3]);
        l.remove(c.id);
        l.finish(c.id);
        let d = l.isolate_tail(8).unwrap();
        assert_eq!(d.id, ids[0], "the rotated page, now unreferenced");
        l.remove(d.id);
        l.finish(d.id);
        let e = l.isolate_tail(8).unwrap();
        assert_eq!(e.id, ids[2]);
        l.remove(e.id);
        l.finish(e.id);
        assert_eq!(l.isolate_tail(8), Err(NoTail::Empty));
        assert_eq!(l.len(), 0);
        // Freed ids are reused.
        let again = l.insert(h(9)).unwrap();
        assert!(ids.contains(&again));
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
            assert_eq!(l.isolate_tail(3), Err(NoTail::Rotated(3)));
        }
        // The last referenced page rotates; then every bit is clear and the oldest
        // page (the first rotated) comes out.
        let a = l.isolate_tail(3).unwrap();
        assert_eq!((a.id, a.rotated), (0, 1));
        assert_eq!(l.len(), 99);
    }

    #[test]
    fn a_node_is_not_reused_while_isolated() {
        let l = Lru::new().unwrap();
        let id = l.insert(h(1)).unwrap();
        let a = l.isolate_tail(0).unwrap();
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
        assert!(l.metadata_bytes() >= 2 * CHUNK * 16);
    }
}
