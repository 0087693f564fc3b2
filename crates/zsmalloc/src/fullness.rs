//! Fullness groups: each class keeps its non-empty zspages on intrusive lists by the
//! share of their slots in use (the kernel's 6.4+ groups): 1..=10 are 10 % buckets,
//! 11 is full; an empty zspage is released at once, so group 0 is never listed.
//!
//! Allocation takes the head of the fullest non-full group; compaction moves objects
//! from the emptiest group's head into the fullest's. Both choices are O(groups).

use crate::zspage::{NONE, ZsPage};

/// Groups: 0 (empty, never listed), ten 10 % buckets, full.
pub(crate) const NGROUPS: usize = 12;
/// The full group.
pub(crate) const FULL: usize = NGROUPS - 1;

/// The group of a zspage with `inuse` of `objs` slots used.
pub(crate) fn group_of(inuse: usize, objs: usize) -> usize {
    if inuse == 0 {
        0
    } else if inuse >= objs {
        FULL
    } else {
        1 + (inuse * 100 / objs / 10).min(9)
    }
}

/// The heads and lengths of a class's fullness lists (links live in the descriptors).
pub(crate) struct Fullness {
    heads: [u32; NGROUPS],
    pub counts: [u32; NGROUPS],
}

/// What compaction can work on in a class.
pub(crate) enum Candidates {
    /// No partly used zspage.
    None,
    /// Exactly one partly used zspage (only packing can help).
    One(usize),
    /// A source (emptiest head) and a destination (fullest head) with
    /// `inuse(src) <= inuse(dst)`.
    Two { src: usize, dst: usize },
}

impl Fullness {
    pub(crate) const fn new() -> Fullness {
        Fullness {
            heads: [NONE; NGROUPS],
            counts: [0; NGROUPS],
        }
    }

    /// Takes zspage `z` off its list (if listed).
    pub(crate) fn unlink(&mut self, zs: &mut [ZsPage], z: usize) {
        let g = usize::from(zs[z].group);
        if g == 0 {
            return;
        }
        let (prev, next) = (zs[z].prev, zs[z].next);
        if prev == NONE {
            self.heads[g] = next;
        } else {
            zs[prev as usize].next = next;
        }
        if next != NONE {
            zs[next as usize].prev = prev;
        }
        self.counts[g] -= 1;
        let d = &mut zs[z];
        d.group = 0;
        d.prev = NONE;
        d.next = NONE;
    }

    /// Puts unlisted zspage `z` at the head of the list its use says (none if empty).
    pub(crate) fn link(&mut self, zs: &mut [ZsPage], z: usize, objs: usize) {
        let g = group_of(usize::from(zs[z].inuse), objs);
        if g == 0 {
            return;
        }
        let head = self.heads[g];
        if head != NONE {
            zs[head as usize].prev = z as u32;
        }
        let d = &mut zs[z];
        d.group = g as u8;
        d.prev = NONE;
        d.next = head;
        self.heads[g] = z as u32;
        self.counts[g] += 1;
    }

    /// Moves zspage `z` to the list its use now says, if that changed.
    pub(crate) fn relink(&mut self, zs: &mut [ZsPage], z: usize, objs: usize) {
        if group_of(usize::from(zs[z].inuse), objs) != usize::from(zs[z].group) {
            self.unlink(zs, z);
            self.link(zs, z, objs);
        }
    }

    /// The fullest zspage with a free slot (allocation's choice).
    pub(crate) fn fullest_nonfull(&self) -> Option<usize> {
        (1..FULL)
            .rev()
            .map(|g| self.heads[g])
            .find(|&h| h != NONE)
            .map(|h| h as usize)
    }

    /// Compaction's choice: the head of the emptiest group as source and the head of the
    /// fullest non-full group as destination (within one group: the two first, the
    /// emptier as source).
    pub(crate) fn candidates(&self, zs: &[ZsPage]) -> Candidates {
        let Some(dst) = self.fullest_nonfull() else {
            return Candidates::None;
        };
        let lowest = (1..FULL).find(|&g| self.heads[g] != NONE);
        let src = match lowest {
            Some(g) if g != usize::from(zs[dst].group) => self.heads[g],
            _ => zs[dst].next,
        };
        if src == NONE {
            return Candidates::One(dst);
        }
        let src = src as usize;
        if zs[src].inuse > zs[dst].inuse {
            Candidates::Two { src: dst, dst: src }
        } else {
            Candidates::Two { src, dst }
        }
    }
}
