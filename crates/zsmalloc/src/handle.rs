//! Handles, the per-class handle table and the in-slot object header.
//!
//! A handle names a table entry, not a place: the entry holds where the object is
//! (zspage, slot), so compaction moves an object by rewriting one entry. Each entry has
//! its own generation, moved on every time the entry is freed, and the handle carries
//! it: a stale handle is refused unless its own entry has since been freed a multiple
//! of 2^17 - 1 times (the generation skips 0) and is live again.
//!
//! ```text
//! handle (47 of Handle::BITS = 48):  generation (17) | class (8) | table index (22)
//! entry  (48 bits, 6 bytes):         generation (17) | zspage (22) | slot (9)
//!        free entry:                 generation (17) | next free (22) | 511
//! header (4 bytes, first in a slot): length - class minimum (10) | table index (22)
//! ```
//!
//! Those are the widths at 4 KiB pages. The slot field scales with the page size
//! (`SLOT_BITS = PAGE_SHIFT - 3`: 9, 11, 13 bits at 4, 16, 64 KiB, so a zspage of the
//! smallest 32-byte slots still spans a few frames), the zspage field takes the rest of
//! the entry's 31 bits (22, 20, 18: bigger zspages, fewer of them), and the table index
//! is as wide as the zspage field, because the free list threads next-free indexes
//! through it. A class thus holds at most 2^22, 2^20, 2^18 - 1 objects: the same
//! 16 GiB of uncompressed pages at each page size. The header's length field takes what
//! the index leaves of its 32 bits (10, 12, 14: a class may span 1024, 4096 or 16384
//! lengths).
//!
//! | page  | handle (gen/class/index) | entry (gen/zspage/slot) | header (len/index) |
//! |-------|--------------------------|-------------------------|--------------------|
//! | 4 KiB | 17 / 8 / 22 = 47         | 17 / 22 / 9             | 10 / 22            |
//! | 16 KiB| 17 / 8 / 20 = 45         | 17 / 20 / 11            | 12 / 20            |
//! | 64 KiB| 17 / 8 / 18 = 43         | 17 / 18 / 13            | 14 / 18            |
//!
//! The header is the slot's back-pointer to its entry: compaction finds the entry of
//! the object it moves there, never by scanning the table. A lookup checks that the
//! header points back at the handle's entry, so a corrupted header is an error, never a
//! copy of more than the slot. Huge classes (one object per frame) have no header: the
//! object's length is in the zspage descriptor and nothing moves.

use alloc::vec::Vec;
use zpool::{Handle, ZPoolError};

/// Bytes of in-slot header (non-huge classes).
pub(crate) const HEADER: usize = 4;
/// Bits of the slot number in an entry: 9, 11, 13 at 4, 16, 64 KiB pages.
const SLOT_BITS: u32 = zplat::PAGE_SHIFT - 3;
/// Bits of the zspage number in an entry (the rest of its 31 location bits).
pub(crate) const ZS_BITS: u32 = 31 - SLOT_BITS;
/// Bits of a handle's table index: as wide as the zspage field, which holds the next
/// free index in a free entry.
pub(crate) const INDEX_BITS: u32 = ZS_BITS;
/// Bits of a handle's class.
pub(crate) const CLASS_BITS: u32 = 8;
/// Bits of a generation.
pub(crate) const GEN_BITS: u32 = 17;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// The slot value of a free entry (so slots are `0..FREE_SLOT`).
const FREE_SLOT: u32 = (1 << SLOT_BITS) - 1;
/// End of the free list ("no entry").
const NIL: u32 = (1 << INDEX_BITS) - 1;
/// Most handle-table entries one class holds (indexes `0..MAX_ENTRIES`).
pub(crate) const MAX_ENTRIES: usize = NIL as usize;
/// Most zspages one class holds.
pub(crate) const MAX_ZSPAGES: usize = 1 << ZS_BITS;
/// Bits of the header's length field: a class spans at most 1024 lengths at 4 KiB
/// pages (4096 at 16 KiB, 16384 at 64 KiB).
pub(crate) const LEN_BITS: u32 = 32 - INDEX_BITS;
/// Most distinct lengths one (non-huge) class may hold.
pub(crate) const MAX_SPAN: usize = 1 << LEN_BITS;

const _: () = assert!(GEN_BITS + CLASS_BITS + INDEX_BITS <= Handle::BITS);
const _: () = assert!(GEN_BITS + ZS_BITS + SLOT_BITS == 48);
const _: () = assert!(crate::geometry::MAX_OBJS == FREE_SLOT as usize);
// The free list's next-free index lives in the zspage field.
const _: () = assert!(INDEX_BITS <= ZS_BITS);
// A zspage of 32-byte slots (the smallest default) can span more than one frame.
const _: () = assert!(FREE_SLOT as usize > 2 * zplat::PAGE_SIZE / 32);
// At 4 KiB the widths are the original ones.
const _: () = assert!(
    zplat::PAGE_SIZE != 4096
        || (SLOT_BITS == 9 && ZS_BITS == 22 && INDEX_BITS == 22 && LEN_BITS == 10)
);

/// Packs (class, index, generation) into a handle. The generation is never 0, so the
/// raw value is never 0.
pub(crate) fn encode(class: usize, index: u32, generation: u32) -> Option<Handle> {
    let raw = (u64::from(generation & GEN_MASK) << (CLASS_BITS + INDEX_BITS))
        | ((class as u64 & ((1 << CLASS_BITS) - 1)) << INDEX_BITS)
        | u64::from(index & NIL);
    Handle::from_raw(raw)
}

/// Splits a handle into (class, index, generation); nothing is validated yet except
/// that no bit above the encoding is set (`None`: no handle of ours looks like that).
pub(crate) fn decode(handle: Handle) -> Option<(usize, u32, u32)> {
    let raw = handle.to_raw();
    if raw >> (GEN_BITS + CLASS_BITS + INDEX_BITS) != 0 {
        return None;
    }
    Some((
        ((raw >> INDEX_BITS) & ((1 << CLASS_BITS) - 1)) as usize,
        (raw & u64::from(NIL)) as u32,
        ((raw >> (CLASS_BITS + INDEX_BITS)) & u64::from(GEN_MASK)) as u32,
    ))
}

/// The generation after `g` (never 0: handles are never 0).
fn next_gen(g: u32) -> u32 {
    let n = (g + 1) & GEN_MASK;
    if n == 0 { 1 } else { n }
}

/// One handle-table entry: 48 bits in three `u16`s (6 bytes, 2-byte aligned).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry([u16; 3]);

impl Entry {
    fn from_bits(b: u64) -> Entry {
        Entry([b as u16, (b >> 16) as u16, (b >> 32) as u16])
    }

    fn bits(self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1]) << 16) | (u64::from(self.0[2]) << 32)
    }

    fn pack(generation: u32, mid: u32, slot: u32) -> Entry {
        Entry::from_bits(
            u64::from(slot & FREE_SLOT)
                | (u64::from(mid & NIL) << SLOT_BITS)
                | (u64::from(generation & GEN_MASK) << (SLOT_BITS + ZS_BITS)),
        )
    }

    fn slot_field(self) -> u32 {
        (self.bits() as u32) & FREE_SLOT
    }

    fn mid(self) -> u32 {
        ((self.bits() >> SLOT_BITS) as u32) & NIL
    }

    fn generation(self) -> u32 {
        (self.bits() >> (SLOT_BITS + ZS_BITS)) as u32 & GEN_MASK
    }

    fn is_live(self) -> bool {
        self.slot_field() != FREE_SLOT
    }
}

/// A class's handle table: entries and a LIFO free list threaded through free entries.
pub(crate) struct HandleTable {
    entries: Vec<Entry>,
    free: u32,
}

impl HandleTable {
    pub(crate) const fn new() -> HandleTable {
        HandleTable {
            entries: Vec::new(),
            free: NIL,
        }
    }

    /// Makes sure [`HandleTable::take`] will not allocate: a free entry exists or the
    /// table has room for one more (grown by an eighth, fallibly).
    pub(crate) fn reserve_one(&mut self) -> Result<(), ZPoolError> {
        if self.free != NIL {
            return Ok(());
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(ZPoolError::NoMemory);
        }
        crate::zspage::reserve(&mut self.entries, 1)
    }

    /// Takes an entry for an object at (`zs`, `slot`); returns (index, generation).
    /// [`HandleTable::reserve_one`] must have succeeded since the last `take`.
    pub(crate) fn take(&mut self, zs: usize, slot: usize) -> (u32, u32) {
        if self.free != NIL {
            let i = self.free;
            let e = self.entries[i as usize];
            self.free = e.mid();
            let g = e.generation();
            self.entries[i as usize] = Entry::pack(g, zs as u32, slot as u32);
            (i, g)
        } else {
            let i = self.entries.len() as u32;
            self.entries.push(Entry::pack(1, zs as u32, slot as u32));
            (i, 1)
        }
    }

    /// Retires a live entry: its generation moves on, so every handle to it is stale.
    pub(crate) fn put(&mut self, index: u32) {
        let e = self.entries[index as usize];
        self.entries[index as usize] = Entry::pack(next_gen(e.generation()), self.free, FREE_SLOT);
        self.free = index;
    }

    /// Where the object of a handle's (index, generation) lives: (zspage, slot), or
    /// `InvalidHandle` for an index out of range, a free entry or another generation.
    pub(crate) fn get(&self, index: u32, generation: u32) -> Result<(usize, usize), ZPoolError> {
        let e = *self
            .entries
            .get(index as usize)
            .ok_or(ZPoolError::InvalidHandle)?;
        if !e.is_live() || e.generation() != generation {
            return Err(ZPoolError::InvalidHandle);
        }
        Ok((e.mid() as usize, e.slot_field() as usize))
    }

    /// Where a live entry points (for compaction, which found it through a header).
    pub(crate) fn place(&self, index: u32) -> Option<(usize, usize)> {
        let e = *self.entries.get(index as usize)?;
        e.is_live()
            .then(|| (e.mid() as usize, e.slot_field() as usize))
    }

    /// The generation of a live entry (`None` for a free one or one out of range).
    pub(crate) fn live_generation(&self, index: u32) -> Option<u32> {
        let e = *self.entries.get(index as usize)?;
        e.is_live().then(|| e.generation())
    }

    /// Points a live entry at the object's new place (compaction).
    pub(crate) fn repoint(&mut self, index: u32, zs: usize, slot: usize) {
        let e = self.entries[index as usize];
        self.entries[index as usize] = Entry::pack(e.generation(), zs as u32, slot as u32);
    }

    /// Heap bytes of the table.
    pub(crate) fn bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<Entry>()
    }
}

/// The 4-byte in-slot header of an object of length `len` in a class whose shortest
/// length is `min_len`, owned by table entry `index`.
pub(crate) fn header(index: u32, len: usize, min_len: usize) -> [u8; HEADER] {
    let delta = (len - min_len) as u32 & ((1 << LEN_BITS) - 1);
    ((delta << INDEX_BITS) | (index & NIL)).to_le_bytes()
}

/// The (entry index, length) a header records.
pub(crate) fn parse_header(h: [u8; HEADER], min_len: usize) -> (u32, usize) {
    let v = u32::from_le_bytes(h);
    (v & NIL, min_len + (v >> INDEX_BITS) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_round_trips() {
        assert_eq!(core::mem::size_of::<Entry>(), 6);
        let h = encode(255, NIL - 1, GEN_MASK).expect("47 bits");
        assert_eq!(decode(h), Some((255, NIL - 1, GEN_MASK)));
        assert_eq!(
            decode(Handle::from_raw(h.to_raw() | 1 << 47).expect("48 bits")),
            None
        );
        assert!(encode(0, 0, 1).is_some());
        let top = FREE_SLOT - 1;
        let e = Entry::pack(GEN_MASK, (MAX_ZSPAGES - 1) as u32, top);
        assert!(e.is_live());
        assert_eq!(
            (e.generation(), e.mid(), e.slot_field()),
            (GEN_MASK, (MAX_ZSPAGES - 1) as u32, top)
        );
        // Every slot number below FREE_SLOT round-trips next to neighbouring fields.
        for slot in [0, 1, 510, 511, 2046, 2047, 8190] {
            if slot < FREE_SLOT {
                let e = Entry::pack(1, 0x2_aaaa & NIL, slot);
                assert_eq!((e.mid(), e.slot_field()), (0x2_aaaa & NIL, slot));
            }
        }
        let span = MAX_SPAN - 1;
        let (i, n) = parse_header(header(NIL - 1, 1000 + span, 1000), 1000);
        assert_eq!((i, n), (NIL - 1, 1000 + span));
        // The slot field holds one zspage of the smallest slots over a few frames.
        assert_eq!(
            FREE_SLOT as usize,
            (8 * zplat::PAGE_SIZE / 64) - 1,
            "9 | 11 | 13 slot bits at 4 | 16 | 64 KiB"
        );
    }

    #[test]
    fn generations_are_per_entry_and_skip_zero() {
        let mut t = HandleTable::new();
        t.reserve_one().expect("room");
        let (a, ga) = t.take(3, 4);
        t.reserve_one().expect("room");
        let (b, gb) = t.take(3, 5);
        assert_eq!((ga, gb), (1, 1));
        for round in 0..3 * (1 << GEN_BITS) {
            t.put(a);
            t.reserve_one().expect("room");
            let (i, g) = t.take(7, 8);
            assert_eq!(i, a, "LIFO reuse");
            assert_ne!(g, 0, "round {round}");
        }
        // The other entry's generation never moved.
        assert_eq!(t.get(b, gb), Ok((3, 5)));
        assert_eq!(next_gen(GEN_MASK), 1);
    }
}
