//! The per-object index tree: a radix tree of fanout 64 mapping a 64-bit [`Index`] to a
//! page descriptor, as the kernel's tmem "objnode" tree.
//!
//! * Height `h` covers indices `0 ..= 2^(6h) - 1`; height 0 holds only index 0 and the
//!   root *is* the descriptor; height 11 covers all of `u64`.
//! * Leaves hold 64 descriptor slots (`size_of::<Option<D>>()` each: 6 bytes for
//!   zcache's 6-byte descriptor with a niche), interior nodes 64 child slots.
//! * Insertion raises the height (new roots whose slot 0 holds the old root) when a
//!   larger index arrives, then allocates missing nodes on the path. Every node
//!   allocation is fallible; on failure the tree is put back exactly as it was (the
//!   kernel's "stump" cleanup) and the descriptor is handed back to the caller.
//! * Removal frees nodes whose last slot empties and collapses the root while only its
//!   slot 0 is used, down to height 0.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::key::Index;

/// Bits of index consumed per level.
pub(crate) const SHIFT: u32 = 6;
/// Slots per node.
pub(crate) const FANOUT: usize = 1 << SHIFT;
/// Height that covers every `u64` index (6 * 11 = 66 >= 64).
pub(crate) const MAX_HEIGHT: u8 = 11;

/// Largest index a tree of `height` can hold.
pub(crate) const fn max_index(height: u8) -> u64 {
    let bits = SHIFT * height as u32;
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Smallest height that can hold `index`.
pub(crate) const fn height_for(index: Index) -> u8 {
    let mut h = 0;
    while max_index(h) < index {
        h += 1;
    }
    h
}

/// A node allocation failed (the global allocator had no memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeAllocError;

/// A heap node, allocated fallibly on stable Rust (through `Vec::try_reserve_exact`,
/// whose exact-capacity boxed slice converts to a one-element array without copying).
type NodeBox<T> = Box<[T; 1]>;

/// Node-allocation failure injection for this crate's unit tests (per thread).
#[cfg(test)]
mod fault {
    use core::cell::Cell;
    std::thread_local! {
        /// 0: no failure armed; n: the n-th node allocation from now fails.
        pub(super) static FAIL_IN: Cell<u32> = const { Cell::new(0) };
    }

    pub(super) fn should_fail() -> bool {
        FAIL_IN.with(|c| match c.get() {
            0 => false,
            1 => {
                c.set(0);
                true
            }
            n => {
                c.set(n - 1);
                false
            }
        })
    }
}

fn try_box<T>(v: T) -> Result<NodeBox<T>, NodeAllocError> {
    #[cfg(test)]
    if fault::should_fail() {
        return Err(NodeAllocError);
    }
    let mut vec = Vec::new();
    vec.try_reserve_exact(1).map_err(|_| NodeAllocError)?;
    vec.push(v);
    NodeBox::<T>::try_from(vec.into_boxed_slice()).map_err(|_| NodeAllocError)
}

pub(crate) struct Leaf<D> {
    slots: [Option<D>; FANOUT],
    used: u8,
}

pub(crate) struct Interior<D> {
    slots: [Option<Node<D>>; FANOUT],
    used: u8,
}

pub(crate) enum Node<D> {
    Leaf(NodeBox<Leaf<D>>),
    Interior(NodeBox<Interior<D>>),
}

impl<D> Node<D> {
    /// A new empty node for `level` (1 = leaf).
    fn new(level: u8) -> Result<Node<D>, NodeAllocError> {
        if level == 1 {
            Ok(Node::Leaf(try_box(Leaf {
                slots: core::array::from_fn(|_| None),
                used: 0,
            })?))
        } else {
            Ok(Node::Interior(try_box(Interior {
                slots: core::array::from_fn(|_| None),
                used: 0,
            })?))
        }
    }

    fn used(&self) -> u8 {
        match self {
            Node::Leaf(l) => l[0].used,
            Node::Interior(n) => n[0].used,
        }
    }
}

/// Heap bytes of one leaf node.
pub(crate) const fn leaf_bytes<D>() -> usize {
    core::mem::size_of::<Leaf<D>>()
}

/// Heap bytes of one interior node.
pub(crate) const fn interior_bytes<D>() -> usize {
    core::mem::size_of::<Interior<D>>()
}

/// What a tree's owner counts for it: descriptors and nodes. The tree itself keeps no
/// counts (an object-map entry is the `Oid` and a 16-byte root, nothing else): its
/// operations add to and subtract from the counts the caller passes, which the bucket
/// keeps for all its trees at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TreeCounts {
    /// Descriptors.
    pub(crate) pages: u64,
    /// Leaf nodes.
    pub(crate) leaves: u64,
    /// Interior nodes.
    pub(crate) interiors: u64,
}

impl TreeCounts {
    fn node_new(&mut self, level: u8) {
        if level == 1 {
            self.leaves += 1;
        } else {
            self.interiors += 1;
        }
    }

    fn node_freed(&mut self, level: u8) {
        if level == 1 {
            self.leaves -= 1;
        } else {
            self.interiors -= 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: &TreeCounts) {
        self.pages += other.pages;
        self.leaves += other.leaves;
        self.interiors += other.interiors;
    }

    /// Takes out what a drained tree held (see [`Tree::drain`]). The owner counted it
    /// while the tree was in its map, so the subtraction cannot underflow; it saturates
    /// rather than wrap should a bug upstream ever make it.
    pub(crate) fn subtract(&mut self, freed: &TreeCounts) {
        debug_assert!(
            self.pages >= freed.pages
                && self.leaves >= freed.leaves
                && self.interiors >= freed.interiors,
            "{self:?} - {freed:?}"
        );
        self.pages = self.pages.saturating_sub(freed.pages);
        self.leaves = self.leaves.saturating_sub(freed.leaves);
        self.interiors = self.interiors.saturating_sub(freed.interiors);
    }
}

/// The root. Its variant is the height: 0 (empty, or index 0's descriptor itself), 1 (a
/// leaf) or the height kept beside an interior root (2 ..= [`MAX_HEIGHT`]). 16 bytes for
/// descriptors of up to 8 bytes.
enum Root<D> {
    Empty,
    /// Height 0: the only possible index is 0 and the root is its descriptor.
    Desc(D),
    /// Height 1.
    Leaf(NodeBox<Leaf<D>>),
    /// Height 2 or more.
    Interior(u8, NodeBox<Interior<D>>),
}

impl<D> Root<D> {
    fn height(&self) -> u8 {
        match self {
            Root::Empty | Root::Desc(_) => 0,
            Root::Leaf(_) => 1,
            Root::Interior(h, _) => *h,
        }
    }

    /// The root for `node` at `level` (a leaf is only ever at level 1: `Node::new`).
    fn of_node(node: Node<D>, level: u8) -> Root<D> {
        match node {
            Node::Leaf(l) => Root::Leaf(l),
            Node::Interior(n) => Root::Interior(level, n),
        }
    }
}

/// A per-object index tree.
pub(crate) struct Tree<D> {
    root: Root<D>,
}

// An object-map entry is the 24-byte `Oid` and this root (issue 13's metadata budget).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<Tree<u64>>() == 16);

#[inline]
fn slot_of(index: Index, level: u8) -> usize {
    ((index >> (SHIFT * (level as u32 - 1))) as usize) & (FANOUT - 1)
}

impl<D> Tree<D> {
    pub(crate) const fn new() -> Self {
        Tree { root: Root::Empty }
    }

    /// Current height.
    #[cfg(test)]
    pub(crate) fn height(&self) -> u8 {
        self.root.height()
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.root, Root::Empty)
    }

    /// Takes the root node and its level out, leaving the root empty; `None` (and the
    /// root untouched) at height 0.
    fn take_node(&mut self) -> Option<(Node<D>, u8)> {
        match core::mem::replace(&mut self.root, Root::Empty) {
            Root::Leaf(l) => Some((Node::Leaf(l), 1)),
            Root::Interior(h, n) => Some((Node::Interior(n), h)),
            other => {
                self.root = other;
                None
            }
        }
    }

    /// The descriptor at `index`.
    pub(crate) fn get(&self, index: Index) -> Option<&D> {
        let (mut node, mut level) = match &self.root {
            Root::Empty => return None,
            Root::Desc(d) => return if index == 0 { Some(d) } else { None },
            Root::Leaf(l) => {
                return if index < FANOUT as u64 {
                    l[0].slots[index as usize].as_ref()
                } else {
                    None
                };
            }
            Root::Interior(h, n) => {
                if index > max_index(*h) {
                    return None;
                }
                (&n[0], *h)
            }
        };
        loop {
            match node.slots[slot_of(index, level)].as_ref()? {
                Node::Leaf(l) => return l[0].slots[slot_of(index, 1)].as_ref(),
                Node::Interior(n) => node = &n[0],
            }
            level -= 1;
        }
    }

    /// Inserts `desc` at `index`, returning the descriptor it replaced, and counts what
    /// it adds in `c`. On allocation failure the tree (and `c`) is as it was and `desc`
    /// comes back in the error.
    pub(crate) fn insert(
        &mut self,
        index: Index,
        desc: D,
        c: &mut TreeCounts,
    ) -> Result<Option<D>, (NodeAllocError, D)> {
        let need = height_for(index);
        debug_assert!(need <= MAX_HEIGHT);
        match &mut self.root {
            Root::Empty if need == 0 => {
                self.root = Root::Desc(desc);
                c.pages += 1;
                return Ok(None);
            }
            Root::Desc(old) if need == 0 => return Ok(Some(core::mem::replace(old, desc))),
            Root::Empty => match Node::new(need) {
                Ok(n) => {
                    self.root = Root::of_node(n, need);
                    c.node_new(need);
                }
                Err(e) => return Err((e, desc)),
            },
            _ => {}
        }
        // Grow: new roots whose slot 0 holds the old root.
        while self.root.height() < need {
            let level = self.root.height() + 1;
            let mut node = match Node::new(level) {
                Ok(n) => n,
                Err(e) => {
                    self.shrink(c);
                    return Err((e, desc));
                }
            };
            match (core::mem::replace(&mut self.root, Root::Empty), &mut node) {
                (Root::Desc(d), Node::Leaf(l)) => {
                    l[0].slots[0] = Some(d);
                    l[0].used = 1;
                }
                (Root::Leaf(old), Node::Interior(n)) => {
                    n[0].slots[0] = Some(Node::Leaf(old));
                    n[0].used = 1;
                }
                (Root::Interior(_, old), Node::Interior(n)) => {
                    n[0].slots[0] = Some(Node::Interior(old));
                    n[0].used = 1;
                }
                // Growth only ever wraps a descriptor in a leaf (height 0 -> 1) or a
                // node in an interior node; the tree is non-empty here.
                (old, _) => {
                    self.root = old;
                    return Err((NodeAllocError, desc));
                }
            }
            self.root = Root::of_node(node, level);
            c.node_new(level);
        }
        let Some((mut node, level)) = self.take_node() else {
            // Height 0 with index 0 was handled above.
            return Err((NodeAllocError, desc));
        };
        let result = node_insert(&mut node, level, index, desc, c);
        self.root = Root::of_node(node, level);
        match result {
            Ok(old) => {
                if old.is_none() {
                    c.pages += 1;
                }
                Ok(old)
            }
            Err(e) => {
                self.shrink(c);
                Err(e)
            }
        }
    }

    /// Removes and returns the descriptor at `index`, counting what it frees in `c`.
    pub(crate) fn remove(&mut self, index: Index, c: &mut TreeCounts) -> Option<D> {
        if index > max_index(self.root.height()) {
            return None;
        }
        let removed = match self.take_node() {
            Some((mut node, level)) => {
                let r = node_remove(&mut node, level, index, c);
                self.root = Root::of_node(node, level);
                r
            }
            // Height 0: `index` is 0.
            None => match core::mem::replace(&mut self.root, Root::Empty) {
                Root::Desc(d) => Some(d),
                other => {
                    self.root = other;
                    None
                }
            },
        };
        if removed.is_some() {
            c.pages -= 1;
            self.shrink(c);
        }
        removed
    }

    /// Collapses the root while it is empty or uses only slot 0.
    fn shrink(&mut self, c: &mut TreeCounts) {
        while let Some((node, level)) = self.take_node() {
            match node {
                n if n.used() == 0 => {
                    c.node_freed(level);
                    return; // root stays Empty
                }
                Node::Interior(mut n) if n[0].used == 1 && n[0].slots[0].is_some() => {
                    if let Some(child) = n[0].slots[0].take() {
                        self.root = Root::of_node(child, level - 1);
                    }
                    c.node_freed(level);
                }
                Node::Leaf(mut l) if l[0].used == 1 && l[0].slots[0].is_some() => {
                    if let Some(d) = l[0].slots[0].take() {
                        self.root = Root::Desc(d);
                    }
                    c.node_freed(level);
                    return;
                }
                other => {
                    self.root = Root::of_node(other, level);
                    return;
                }
            }
        }
    }

    /// Removes every descriptor, handing each to `f`, frees every node, and returns
    /// what the tree held (for its owner to subtract).
    pub(crate) fn drain(&mut self, f: &mut dyn FnMut(Index, D)) -> TreeCounts {
        let mut freed = TreeCounts::default();
        match core::mem::replace(&mut self.root, Root::Empty) {
            Root::Empty => {}
            Root::Desc(d) => {
                freed.pages += 1;
                f(0, d);
            }
            Root::Leaf(l) => node_drain(Node::Leaf(l), 1, 0, f, &mut freed),
            Root::Interior(h, n) => node_drain(Node::Interior(n), h, 0, f, &mut freed),
        }
        freed
    }

    /// Visits every (index, descriptor) in index order.
    pub(crate) fn for_each(&self, f: &mut dyn FnMut(Index, &D)) {
        match &self.root {
            Root::Empty => {}
            Root::Desc(d) => f(0, d),
            Root::Leaf(l) => leaf_for_each(&l[0], 0, f),
            Root::Interior(h, n) => interior_for_each(&n[0], *h, 0, f),
        }
    }

    /// What the tree holds, counted by walking it (tests check the counts the
    /// operations keep against it).
    #[cfg(test)]
    pub(crate) fn census(&self) -> TreeCounts {
        fn walk<D>(node: &Node<D>, c: &mut TreeCounts) {
            match node {
                Node::Leaf(l) => {
                    c.leaves += 1;
                    let n = l[0].slots.iter().filter(|s| s.is_some()).count();
                    assert_eq!(n, usize::from(l[0].used), "leaf used count");
                    c.pages += n as u64;
                }
                Node::Interior(i) => {
                    c.interiors += 1;
                    let n = i[0].slots.iter().filter(|s| s.is_some()).count();
                    assert_eq!(n, usize::from(i[0].used), "interior used count");
                    i[0].slots.iter().flatten().for_each(|ch| walk(ch, c));
                }
            }
        }
        let mut c = TreeCounts::default();
        // Reborrowing the root's box as a `Node` would move it; walk the children.
        match &self.root {
            Root::Empty => {}
            Root::Desc(_) => c.pages = 1,
            Root::Leaf(l) => {
                c.leaves = 1;
                c.pages = l[0].slots.iter().filter(|s| s.is_some()).count() as u64;
            }
            Root::Interior(_, n) => {
                c.interiors = 1;
                n[0].slots.iter().flatten().for_each(|ch| walk(ch, &mut c));
            }
        }
        c
    }
}

impl<D> Drop for Tree<D> {
    fn drop(&mut self) {
        // Owners drain trees through the backend before dropping them; a tree dropped
        // with descriptors still inside (a bug upstream) frees its nodes iteratively
        // enough: depth is at most MAX_HEIGHT, so recursion is bounded.
        let _ = self.drain(&mut |_, _| {});
    }
}

fn node_insert<D>(
    node: &mut Node<D>,
    level: u8,
    index: Index,
    desc: D,
    c: &mut TreeCounts,
) -> Result<Option<D>, (NodeAllocError, D)> {
    let slot = slot_of(index, level);
    match node {
        Node::Leaf(l) => {
            let l = &mut l[0];
            let old = l.slots[slot].replace(desc);
            if old.is_none() {
                l.used += 1;
            }
            Ok(old)
        }
        Node::Interior(n) => {
            let n = &mut n[0];
            let created = n.slots[slot].is_none();
            if created {
                match Node::new(level - 1) {
                    Ok(child) => {
                        n.slots[slot] = Some(child);
                        n.used += 1;
                        c.node_new(level - 1);
                    }
                    Err(e) => return Err((e, desc)),
                }
            }
            let result = match &mut n.slots[slot] {
                Some(child) => node_insert(child, level - 1, index, desc, c),
                None => Err((NodeAllocError, desc)),
            };
            if result.is_err() && created {
                // Undo the stump: the child we created holds nothing.
                if let Some(child) = &n.slots[slot]
                    && child.used() == 0
                {
                    n.slots[slot] = None;
                    n.used -= 1;
                    c.node_freed(level - 1);
                }
            }
            result
        }
    }
}

fn node_remove<D>(node: &mut Node<D>, level: u8, index: Index, c: &mut TreeCounts) -> Option<D> {
    let slot = slot_of(index, level);
    match node {
        Node::Leaf(l) => {
            let l = &mut l[0];
            let old = l.slots[slot].take();
            if old.is_some() {
                l.used -= 1;
            }
            old
        }
        Node::Interior(n) => {
            let n = &mut n[0];
            let (removed, child_empty) = match &mut n.slots[slot] {
                Some(child) => {
                    let r = node_remove(child, level - 1, index, c);
                    (r, child.used() == 0)
                }
                None => return None,
            };
            if child_empty {
                n.slots[slot] = None;
                n.used -= 1;
                c.node_freed(level - 1);
            }
            removed
        }
    }
}

/// Drains a node in place: its box is walked where it lies and freed at the end, so no
/// node (up to a kilobyte) is ever moved onto the stack. The recursion is at most the
/// tree's height (11) deep, each frame a few words. Counts what it frees in `freed`.
fn node_drain<D>(
    node: Node<D>,
    level: u8,
    base: Index,
    f: &mut dyn FnMut(Index, D),
    freed: &mut TreeCounts,
) {
    let span_shift = SHIFT * (level as u32 - 1);
    match node {
        Node::Leaf(mut l) => {
            freed.leaves += 1;
            for (i, s) in l[0].slots.iter_mut().enumerate() {
                if let Some(d) = s.take() {
                    freed.pages += 1;
                    f(base | i as u64, d);
                }
            }
        }
        Node::Interior(mut n) => {
            freed.interiors += 1;
            for (i, s) in n[0].slots.iter_mut().enumerate() {
                if let Some(child) = s.take() {
                    let base = base | ((i as u64) << span_shift);
                    node_drain(child, level - 1, base, f, freed);
                }
            }
        }
    }
}

fn leaf_for_each<D>(l: &Leaf<D>, base: Index, f: &mut dyn FnMut(Index, &D)) {
    for (i, s) in l.slots.iter().enumerate() {
        if let Some(d) = s {
            f(base | i as u64, d);
        }
    }
}

fn interior_for_each<D>(n: &Interior<D>, level: u8, base: Index, f: &mut dyn FnMut(Index, &D)) {
    let span_shift = SHIFT * (level as u32 - 1);
    for (i, s) in n.slots.iter().enumerate() {
        let base = base | ((i as u64) << span_shift);
        match s {
            Some(Node::Leaf(l)) => leaf_for_each(&l[0], base, f),
            Some(Node::Interior(c)) => interior_for_each(&c[0], level - 1, base, f),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    #[test]
    fn heights() {
        assert_eq!(max_index(0), 0);
        assert_eq!(max_index(1), 63);
        assert_eq!(max_index(2), 4095);
        assert_eq!(max_index(6), (1 << 36) - 1);
        assert_eq!(max_index(11), u64::MAX);
        assert_eq!(height_for(0), 0);
        assert_eq!(height_for(1), 1);
        assert_eq!(height_for(63), 1);
        assert_eq!(height_for(64), 2);
        assert_eq!(height_for(4095), 2);
        assert_eq!(height_for(4096), 3);
        assert_eq!(height_for(1 << 32), 6);
        assert_eq!(height_for(u64::MAX), MAX_HEIGHT);
    }

    fn check(tree: &Tree<u64>, c: &TreeCounts, model: &BTreeMap<u64, u64>) {
        // The counts the operations kept are what the tree holds.
        assert_eq!(tree.census(), *c, "model {model:?}");
        let mut seen = alloc::vec::Vec::new();
        tree.for_each(&mut |i, d| seen.push((i, *d)));
        let want: alloc::vec::Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(seen, want);
        assert_eq!(c.pages, model.len() as u64);
        for (k, v) in model {
            assert_eq!(tree.get(*k), Some(v));
        }
        // Minimal height: the largest index decides it, or 0 when empty.
        let want_h = model.keys().next_back().map_or(0, |&k| height_for(k));
        assert_eq!(tree.height(), want_h, "model {model:?}");
    }

    #[test]
    fn grows_and_shrinks_at_the_boundaries() {
        for &(a, b) in &[
            (63u64, 64u64),
            (4095, 4096),
            ((1 << 32) - 1, 1 << 32),
            (u64::MAX - 1, u64::MAX),
            (0, u64::MAX),
        ] {
            let mut t = Tree::new();
            let mut c = TreeCounts::default();
            let mut m = BTreeMap::new();
            assert!(t.insert(a, a, &mut c).unwrap().is_none());
            m.insert(a, a);
            check(&t, &c, &m);
            assert!(t.insert(b, b, &mut c).unwrap().is_none());
            m.insert(b, b);
            check(&t, &c, &m);
            assert_eq!(t.height(), height_for(b));
            assert_eq!(t.remove(b, &mut c), Some(b));
            m.remove(&b);
            check(&t, &c, &m);
            assert_eq!(t.height(), height_for(a));
            assert_eq!(t.remove(a, &mut c), Some(a));
            m.remove(&a);
            check(&t, &c, &m);
            assert_eq!((c.leaves, c.interiors), (0, 0));
            assert!(t.is_empty());
        }
    }

    #[test]
    fn replace_returns_old() {
        let mut t = Tree::new();
        let mut c = TreeCounts::default();
        assert_eq!(t.insert(5, 1, &mut c).unwrap(), None);
        assert_eq!(t.insert(5, 2, &mut c).unwrap(), Some(1));
        assert_eq!(c.pages, 1);
        assert_eq!(t.get(5), Some(&2));
        assert_eq!(t.remove(4, &mut c), None);
        assert_eq!(t.remove(5, &mut c), Some(2));
        assert_eq!((c.leaves, c.interiors), (0, 0));
    }

    #[test]
    fn node_counts_track_structure() {
        let mut t = Tree::new();
        let mut c = TreeCounts::default();
        for i in 0..64u64 {
            t.insert(i, i, &mut c).unwrap();
        }
        assert_eq!((c.leaves, c.interiors), (1, 0));
        t.insert(64, 64, &mut c).unwrap();
        assert_eq!((c.leaves, c.interiors), (2, 1));
        t.insert(u64::MAX, 0, &mut c).unwrap();
        // Growth 2 -> 11 adds 9 interior roots; the path from the root to u64::MAX
        // (slot 15 at the top) adds interiors at levels 10..=2 (9) and one leaf.
        assert_eq!(t.height(), 11);
        assert_eq!((c.leaves, c.interiors), (3, 1 + 9 + 9));
        assert_eq!(t.census(), c);
        let mut drained = 0;
        let freed = t.drain(&mut |_, _| drained += 1);
        assert_eq!(drained, 66);
        // The drain hands back exactly what the owner counted for the tree.
        assert_eq!(freed, c);
        c.subtract(&freed);
        assert_eq!(c, TreeCounts::default());
        assert!(t.is_empty());
    }

    /// Draining a height-11 tree must not move nodes onto the stack: measured as the
    /// distance between a local at the call and the deepest local the callback sees.
    #[test]
    #[inline(never)]
    fn drain_keeps_nodes_off_the_stack() {
        let mut t: Tree<[u64; 8]> = Tree::new();
        let mut c = TreeCounts::default();
        for i in 0..4u64 {
            t.insert(u64::MAX - i, [i; 8], &mut c).unwrap();
            t.insert(i << 33, [i; 8], &mut c).unwrap();
        }
        assert_eq!(t.height(), 11);
        let top = 0u8;
        let top = core::ptr::addr_of!(top) as usize;
        let mut deepest = top;
        t.drain(&mut |_, d| {
            let here = 0u8;
            let here = core::hint::black_box(core::ptr::addr_of!(here)) as usize;
            deepest = deepest.min(here);
            core::hint::black_box(d);
        });
        let used = top - deepest;
        // Measured with 64-byte descriptors (4 KiB leaves): in place, 1.7 KiB in release
        // and 9.4 KiB in debug (which keeps every temporary); moving nodes out of their
        // boxes, 52 KiB and 71 KiB.
        let limit = if cfg!(debug_assertions) {
            16 * 1024
        } else {
            3 * 1024
        };
        assert!(
            used < limit,
            "drain used {used} bytes of stack at height 11"
        );
    }

    /// Every node allocation an insert makes may fail: the tree, its height and the
    /// owner's counts are then exactly as before, and the descriptor comes back.
    #[test]
    fn failed_inserts_leave_tree_and_counts_as_they_were() {
        let mut t = Tree::new();
        let mut c = TreeCounts::default();
        let mut m = BTreeMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut failures = 0;
        for step in 0..3_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread indices over many heights, so inserts grow the tree and make paths.
            let idx = (x >> 8) >> ((x & 63) as u32);
            if x.is_multiple_of(4) {
                assert_eq!(t.remove(idx, &mut c), m.remove(&idx));
                check(&t, &c, &m);
                continue;
            }
            let arm = 1 + (x >> 58) as u32 % 4;
            fault::FAIL_IN.with(|f| f.set(arm));
            match t.insert(idx, step, &mut c) {
                Ok(old) => assert_eq!(old, m.insert(idx, step)),
                Err((_, d)) => {
                    assert_eq!(d, step);
                    failures += 1;
                }
            }
            fault::FAIL_IN.with(|f| f.set(0));
            check(&t, &c, &m);
        }
        assert!(failures > 500, "only {failures} inserts failed");
    }

    #[test]
    fn random_against_btreemap() {
        let mut t = Tree::new();
        let mut c = TreeCounts::default();
        let mut m = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let interesting = [0u64, 1, 63, 64, 4095, 4096, 1 << 32, u64::MAX, u64::MAX - 1];
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let idx = if x.is_multiple_of(3) {
                interesting[(x >> 8) as usize % interesting.len()]
            } else {
                (x >> 20) % 300
            };
            if x % 5 < 3 {
                assert_eq!(t.insert(idx, step, &mut c).unwrap(), m.insert(idx, step));
            } else {
                assert_eq!(t.remove(idx, &mut c), m.remove(&idx));
            }
            if step % 997 == 0 {
                check(&t, &c, &m);
            }
        }
        check(&t, &c, &m);
    }
}
