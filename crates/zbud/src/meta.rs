//! Out-of-band metadata, packed: frame descriptors (24 bytes) and handle entries (8 bytes).
//!
//! Frame descriptor, besides the `Frame` (8 bytes), 128 bits in two `u64` words (not a
//! `u128`, whose 16-byte alignment would pad the descriptor to 32 bytes), 77 of them used
//! (the `prev` field is [`FRAME_BITS`] wide: 24 bits at 4 KiB, fewer at larger pages):
//!
//! | bits    | field                                                                |
//! |---------|----------------------------------------------------------------------|
//! | 0..25   | handle-entry index of the first buddy (or, for a lone frame whose   |
//! |         | first side is empty, the `next` link of its unbuddied list)          |
//! | 25..50  | same for the last buddy                                              |
//! | 50..74  | unbuddied-list `prev`; for an unused descriptor, the free-list link |
//! | 74,75   | first / last buddy present                                           |
//! | 76      | on an unbuddied list                                                 |
//!
//! A lone frame has one empty side, and only lone frames sit on unbuddied lists: the
//! empty side's 25 bits hold the list's `next` link, so the doubly linked unbuddied lists
//! cost no extra word.
//!
//! Handle entry (`u64`): generation (22 bits at 4 KiB, 20 at 16 KiB, 18 at 64 KiB, in a
//! 23-bit field), live (1), buddy (1), length
//! (`PAGE_SHIFT + 1` bits, 1..=PAGE_SIZE: 13 bits at 4 KiB, 15 at 16 KiB, 17 at 64 KiB),
//! frame index (`36 - PAGE_SHIFT` bits: 24, 22, 20; a shard's frames span 64 GiB at every
//! size). 62 bits at every page size. A free entry keeps its generation and links the
//! free list through bits 25..50.

use zpool::Frame;

/// "No frame": the largest `FRAME_BITS`-bit value.
pub(crate) const NIL: u32 = (1 << FRAME_BITS) - 1;
/// "No handle entry": the largest 25-bit value.
pub(crate) const HNIL: u32 = (1 << HIDX_BITS) - 1;

/// Frame-index bits: 24 at 4 KiB, 22 at 16 KiB, 20 at 64 KiB (2^36 bytes of frames).
pub(crate) const FRAME_BITS: u32 = 36 - zplat::PAGE_SHIFT;
pub(crate) const HIDX_BITS: u32 = 25;
/// Generation bits: 22, 20, 18 at 4, 16, 64 KiB pages, so that a handle (25 + these
/// bits: 47, 45, 43) fits zcache's six-byte page descriptor beside its kind bit
/// ([`crate::HANDLE_BITS`]). The period stays above the 100,000 frees of one entry the
/// conformance suite requires (2^18 = 262,144 at 64 KiB).
pub(crate) const GEN_BITS: u32 = 34 - zplat::PAGE_SHIFT;
pub(crate) const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

#[derive(Clone, Copy)]
struct Field {
    shift: u32,
    width: u32,
}

const REV: [Field; 2] = [
    Field {
        shift: 0,
        width: HIDX_BITS,
    },
    Field {
        shift: 25,
        width: HIDX_BITS,
    },
];
const UB_PREV: Field = Field {
    shift: 50,
    width: FRAME_BITS,
};
const HAS: [Field; 2] = [
    Field {
        shift: 74,
        width: 1,
    },
    Field {
        shift: 75,
        width: 1,
    },
];
const LISTED: Field = Field {
    shift: 76,
    width: 1,
};
/// One frame's descriptor (24 bytes).
pub(crate) struct Desc {
    /// The frame, or `None` for a descriptor on the free list.
    pub(crate) frame: Option<Frame>,
    w: [u64; 2],
}

impl Desc {
    /// An unused descriptor whose free-list link is `next`.
    pub(crate) fn free(next: u32) -> Desc {
        let mut d = Desc {
            frame: None,
            w: [0; 2],
        };
        d.set_free_next(next);
        d
    }

    /// A descriptor for a fresh frame: no buddy, off every list.
    pub(crate) fn fresh(frame: Frame) -> Desc {
        let mut d = Desc {
            frame: Some(frame),
            w: [0; 2],
        };
        d.set_ub_prev(NIL);
        d
    }

    fn bits(&self) -> u128 {
        (u128::from(self.w[1]) << 64) | u128::from(self.w[0])
    }

    fn get(&self, f: Field) -> u32 {
        ((self.bits() >> f.shift) & ((1u128 << f.width) - 1)) as u32
    }

    fn put(&mut self, f: Field, v: u32) {
        let mask = ((1u128 << f.width) - 1) << f.shift;
        let b = (self.bits() & !mask) | ((u128::from(v) << f.shift) & mask);
        self.w = [b as u64, (b >> 64) as u64];
    }

    pub(crate) fn rev(&self, side: usize) -> u32 {
        self.get(REV[side])
    }
    pub(crate) fn set_rev(&mut self, side: usize, v: u32) {
        self.put(REV[side], v)
    }
    pub(crate) fn has(&self, side: usize) -> bool {
        self.get(HAS[side]) != 0
    }
    pub(crate) fn set_has(&mut self, side: usize, v: bool) {
        self.put(HAS[side], u32::from(v))
    }
    pub(crate) fn count(&self) -> usize {
        usize::from(self.has(0)) + usize::from(self.has(1))
    }
    /// The occupied side of a frame holding exactly one object.
    pub(crate) fn lone_side(&self) -> Option<usize> {
        match (self.has(0), self.has(1)) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        }
    }
    /// The free-list link of an unused descriptor (kept in the unbuddied `prev` field).
    pub(crate) fn free_next(&self) -> u32 {
        self.get(UB_PREV)
    }
    pub(crate) fn set_free_next(&mut self, v: u32) {
        self.put(UB_PREV, v)
    }
    pub(crate) fn ub_prev(&self) -> u32 {
        self.get(UB_PREV)
    }
    pub(crate) fn set_ub_prev(&mut self, v: u32) {
        self.put(UB_PREV, v)
    }
    /// The unbuddied-list `next` link, kept in the empty side of a lone frame.
    pub(crate) fn ub_next(&self) -> u32 {
        match self.lone_side() {
            Some(side) => self.rev(1 - side),
            None => NIL,
        }
    }
    pub(crate) fn set_ub_next(&mut self, v: u32) {
        if let Some(side) = self.lone_side() {
            self.set_rev(1 - side, v)
        }
    }
    pub(crate) fn listed(&self) -> bool {
        self.get(LISTED) != 0
    }
    pub(crate) fn set_listed(&mut self, v: bool) {
        self.put(LISTED, u32::from(v))
    }
}

/// One handle-table entry (8 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry(u64);

const LIVE_BIT: u32 = 23;
const _: () = assert!(GEN_BITS <= LIVE_BIT);
const BUDDY_BIT: u32 = 24;
const LEN_SHIFT: u32 = 25;
/// Length bits: lengths 1..=PAGE_SIZE, stored as is (13 bits at 4 KiB).
const LEN_BITS: u32 = zplat::PAGE_SHIFT + 1;
/// The longest length an entry holds.
pub(crate) const MAX_LEN: usize = (1 << LEN_BITS) - 1;
const FRAME_SHIFT: u32 = LEN_SHIFT + LEN_BITS;
const NEXT_SHIFT: u32 = 25;

const _: () = assert!(FRAME_SHIFT + FRAME_BITS <= 64);
const _: () = assert!(NEXT_SHIFT + HIDX_BITS <= 64);
const _: () = assert!(UB_PREV.shift + FRAME_BITS <= HAS[0].shift);

impl Entry {
    /// A free entry with generation `generation` linking to `next`.
    pub(crate) fn free(generation: u64, next: u32) -> Entry {
        Entry((generation & GEN_MASK) | (u64::from(next) << NEXT_SHIFT))
    }

    /// A live entry for an object of `len` bytes (1..=PAGE_SIZE) on side `side` of `frame`.
    pub(crate) fn live(generation: u64, frame: u32, side: usize, len: usize) -> Entry {
        Entry(
            (generation & GEN_MASK)
                | (1 << LIVE_BIT)
                | ((side as u64 & 1) << BUDDY_BIT)
                | ((len as u64 & ((1 << LEN_BITS) - 1)) << LEN_SHIFT)
                | (u64::from(frame) << FRAME_SHIFT),
        )
    }

    pub(crate) fn generation(self) -> u64 {
        self.0 & GEN_MASK
    }
    pub(crate) fn is_live(self) -> bool {
        self.0 & (1 << LIVE_BIT) != 0
    }
    pub(crate) fn side(self) -> usize {
        ((self.0 >> BUDDY_BIT) & 1) as usize
    }
    pub(crate) fn len(self) -> usize {
        ((self.0 >> LEN_SHIFT) & ((1 << LEN_BITS) - 1)) as usize
    }
    pub(crate) fn frame(self) -> u32 {
        ((self.0 >> FRAME_SHIFT) & ((1 << FRAME_BITS) - 1)) as u32
    }
    pub(crate) fn next_free(self) -> u32 {
        ((self.0 >> NEXT_SHIFT) & ((1 << HIDX_BITS) - 1)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(core::mem::size_of::<Desc>(), 24);
        assert_eq!(core::mem::size_of::<Entry>(), 8);
    }

    #[test]
    fn fields_are_independent() {
        let mut d = Desc::free(NIL);
        assert_eq!(d.free_next(), NIL);
        d.set_rev(0, HNIL - 1);
        d.set_rev(1, 12345);
        d.set_ub_prev(NIL - 1);
        d.set_has(0, true);
        d.set_listed(true);
        assert_eq!(
            (d.rev(0), d.rev(1), d.ub_prev()),
            (HNIL - 1, 12345, NIL - 1)
        );
        assert!(d.has(0) && !d.has(1) && d.listed());
        assert_eq!(d.lone_side(), Some(0));
        d.set_ub_next(99);
        assert_eq!((d.ub_next(), d.rev(1), d.rev(0)), (99, 99, HNIL - 1));
        d.set_has(1, true);
        assert_eq!((d.lone_side(), d.count(), d.ub_next()), (None, 2, NIL));
        d.set_listed(false);
        assert!(!d.listed() && d.has(1));
        assert_eq!(d.ub_prev(), NIL - 1);
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry::live(GEN_MASK, NIL - 1, 1, zpool::PAGE_SIZE);
        assert!(e.is_live());
        assert_eq!(
            (e.generation(), e.frame(), e.side(), e.len()),
            (GEN_MASK, NIL - 1, 1, zpool::PAGE_SIZE)
        );
        let e = Entry::live(0, 0, 0, 1);
        assert_eq!((e.generation(), e.frame(), e.side(), e.len()), (0, 0, 0, 1));
        assert_eq!(FRAME_SHIFT + FRAME_BITS, 62);
        // 64 GiB of frames per shard at every page size.
        assert_eq!((NIL as usize + 1) * zpool::PAGE_SIZE, 1 << 36);
        let f = Entry::free(5, HNIL);
        assert!(!f.is_live());
        assert_eq!((f.generation(), f.next_free()), (5, HNIL));
    }
}
