//! Handles, the per-class handle table and the in-slot object header.
//!
//! A handle names a table entry, not a place: the entry holds where the object is
//! (its slot number in the class, `zspage * objects per zspage + slot`), so compaction
//! moves an object by rewriting one entry. Each entry has its own generation, moved on
//! every time the entry is freed, and the handle carries it: a stale handle is refused
//! unless its own entry has since been freed a multiple of 2^17 - 1 times (the
//! generation skips 0) and is live again.
//!
//! ```text
//! handle (47 of Handle::BITS = 48):  generation (17) | class (8) | table index (22)
//! entry  (40 bits, 5 bytes):         generation (17) | live (1) | place (22)
//!        live:  place = zspage * objs + slot
//!        free:  place = next free index
//! header (4 bytes, first in a slot): length - class minimum (10) | table index (22)
//! ```
//!
//! Those are the widths at 4 KiB pages. The table index is 22, 20, 18 bits at 4, 16,
//! 64 KiB pages (`34 - PAGE_SHIFT`): a class holds at most 2^22, 2^20, 2^18 - 1
//! objects, the same 16 GiB of uncompressed pages at each page size. A class's slots
//! (backed or not, over all its zspages) number at most 2^22 - 1 at every page size, so
//! at 4 KiB a class that has as many slots as objects is full (a few percent of its
//! slots are free in partly used zspages). The header's length field takes what the
//! index leaves of its 32 bits (10, 12, 14: a class may span 1024, 4096 or 16384
//! lengths).
//!
//! | page  | handle (gen/class/index) | entry (gen/place) | header (len/index) |
//! |-------|--------------------------|-------------------|--------------------|
//! | 4 KiB | 17 / 8 / 22 = 47         | 17 / 1 / 22       | 10 / 22            |
//! | 16 KiB| 17 / 8 / 20 = 45         | 17 / 1 / 22       | 12 / 20            |
//! | 64 KiB| 17 / 8 / 18 = 43         | 17 / 1 / 22       | 14 / 18            |
//!
//! An entry was 6 bytes (the zspage and the slot in fields of their own) until the
//! metadata budget of issue 13: one slot number in 5 bytes is 1.05 bytes a page less at
//! 10^6 pages. The generation keeps its 17 bits: the conformance suite requires a
//! period above 100,000 frees of one entry (`check_generation_reuse`).
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
/// Bits of a handle's table index: 22, 20, 18 at 4, 16, 64 KiB pages.
pub(crate) const INDEX_BITS: u32 = 34 - zplat::PAGE_SHIFT;
/// Bits of a handle's class.
pub(crate) const CLASS_BITS: u32 = 8;
/// Bits of a generation.
pub(crate) const GEN_BITS: u32 = 17;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// Bits of an entry's place field (a slot number, or the next free index).
const PLACE_BITS: u32 = 22;
const PLACE_MASK: u32 = (1 << PLACE_BITS) - 1;
const LIVE_BIT: u64 = 1 << PLACE_BITS;
const GEN_SHIFT: u32 = PLACE_BITS + 1;
/// End of the free list ("no entry").
const NIL: u32 = (1 << INDEX_BITS) - 1;
/// Most slots one class numbers (backed or not, over all its zspages).
pub(crate) const MAX_SLOTS: usize = PLACE_MASK as usize;
/// Most handle-table entries one class holds (indexes `0..MAX_ENTRIES`).
pub(crate) const MAX_ENTRIES: usize = NIL as usize;
/// Bits of the header's length field: a class spans at most 1024 lengths at 4 KiB
/// pages (4096 at 16 KiB, 16384 at 64 KiB).
pub(crate) const LEN_BITS: u32 = 32 - INDEX_BITS;
/// Most distinct lengths one (non-huge) class may hold.
pub(crate) const MAX_SPAN: usize = 1 << LEN_BITS;

const _: () = assert!(GEN_BITS + CLASS_BITS + INDEX_BITS <= Handle::BITS);
// An entry is 40 bits; the free list's indexes fit its place field.
const _: () = assert!(GEN_SHIFT + GEN_BITS == 40 && INDEX_BITS <= PLACE_BITS);
const _: () = assert!(MAX_SLOTS >= MAX_ENTRIES);
// At 4 KiB the index and length widths are the original ones.
const _: () = assert!(zplat::PAGE_SIZE != 4096 || (INDEX_BITS == 22 && LEN_BITS == 10));

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

/// One handle-table entry: 40 bits in five bytes (byte-aligned, so a table is 5 bytes
/// an entry): generation (17) | live (1) | place (22).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Entry([u8; 5]);

impl Entry {
    fn from_bits(b: u64) -> Entry {
        let [b0, b1, b2, b3, b4, ..] = b.to_le_bytes();
        Entry([b0, b1, b2, b3, b4])
    }

    fn bits(self) -> u64 {
        let [b0, b1, b2, b3, b4] = self.0;
        u64::from_le_bytes([b0, b1, b2, b3, b4, 0, 0, 0])
    }

    fn live(generation: u32, slot_no: u32) -> Entry {
        Entry::from_bits(
            (u64::from(generation & GEN_MASK) << GEN_SHIFT)
                | LIVE_BIT
                | u64::from(slot_no & PLACE_MASK),
        )
    }

    fn free(generation: u32, next: u32) -> Entry {
        Entry::from_bits((u64::from(generation & GEN_MASK) << GEN_SHIFT) | u64::from(next & NIL))
    }

    fn place(self) -> u32 {
        self.bits() as u32 & PLACE_MASK
    }

    /// The next free index of a free entry.
    fn next(self) -> u32 {
        self.place() & NIL
    }

    fn generation(self) -> u32 {
        (self.bits() >> GEN_SHIFT) as u32 & GEN_MASK
    }

    fn is_live(self) -> bool {
        self.bits() & LIVE_BIT != 0
    }
}

/// A class's handle table: entries and a LIFO free list threaded through free entries.
pub(crate) struct HandleTable {
    entries: Vec<Entry>,
    free: u32,
    /// Slots per zspage of the class (a place is `zspage * objs + slot`).
    objs: u32,
}

impl HandleTable {
    pub(crate) const fn new(objs: usize) -> HandleTable {
        HandleTable {
            entries: Vec::new(),
            free: NIL,
            objs: if objs == 0 { 1 } else { objs as u32 },
        }
    }

    /// Zspages a class of this table may number (its slots stay under [`MAX_SLOTS`]).
    pub(crate) fn max_zspages(&self) -> usize {
        MAX_SLOTS / self.objs as usize
    }

    fn place_of(&self, zs: usize, slot: usize) -> u32 {
        zs as u32 * self.objs + slot as u32
    }

    fn split(&self, place: u32) -> (usize, usize) {
        ((place / self.objs) as usize, (place % self.objs) as usize)
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

    /// Takes an entry for an object at (`zs`, `slot`), which must lie under
    /// [`HandleTable::max_zspages`]; returns (index, generation).
    /// [`HandleTable::reserve_one`] must have succeeded since the last `take`.
    pub(crate) fn take(&mut self, zs: usize, slot: usize) -> (u32, u32) {
        let place = self.place_of(zs, slot);
        if self.free != NIL {
            let i = self.free;
            let e = self.entries[i as usize];
            self.free = e.next();
            let g = e.generation();
            self.entries[i as usize] = Entry::live(g, place);
            (i, g)
        } else {
            let i = self.entries.len() as u32;
            self.entries.push(Entry::live(1, place));
            (i, 1)
        }
    }

    /// Retires a live entry: its generation moves on, so every handle to it is stale.
    pub(crate) fn put(&mut self, index: u32) {
        let e = self.entries[index as usize];
        self.entries[index as usize] = Entry::free(next_gen(e.generation()), self.free);
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
        Ok(self.split(e.place()))
    }

    /// Where a live entry points (for compaction, which found it through a header).
    pub(crate) fn place(&self, index: u32) -> Option<(usize, usize)> {
        let e = *self.entries.get(index as usize)?;
        e.is_live().then(|| self.split(e.place()))
    }

    /// The generation of a live entry (`None` for a free one or one out of range).
    pub(crate) fn live_generation(&self, index: u32) -> Option<u32> {
        let e = *self.entries.get(index as usize)?;
        e.is_live().then(|| e.generation())
    }

    /// Points a live entry at the object's new place (compaction).
    pub(crate) fn repoint(&mut self, index: u32, zs: usize, slot: usize) {
        let e = self.entries[index as usize];
        self.entries[index as usize] = Entry::live(e.generation(), self.place_of(zs, slot));
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
        assert_eq!(core::mem::size_of::<Entry>(), 5);
        let h = encode(255, NIL - 1, GEN_MASK).expect("47 bits");
        assert_eq!(decode(h), Some((255, NIL - 1, GEN_MASK)));
        assert_eq!(
            decode(
                Handle::from_raw(h.to_raw() | 1 << (GEN_BITS + CLASS_BITS + INDEX_BITS))
                    .expect("48 bits")
            ),
            None
        );
        assert!(encode(0, 0, 1).is_some());
        // Live places up to the last slot below FREE_BASE, next to the generation.
        for objs in [1usize, 3, 511, crate::geometry::MAX_OBJS] {
            let t = HandleTable::new(objs);
            let top = t.max_zspages() - 1;
            for (zs, slot) in [
                (0, 0),
                (0, objs - 1),
                (top, 0),
                (top, objs - 1),
                (top / 2, objs / 2),
            ] {
                let e = Entry::live(GEN_MASK, t.place_of(zs, slot));
                assert!(e.is_live(), "objs {objs}: ({zs}, {slot})");
                assert_eq!((e.generation(), t.split(e.place())), (GEN_MASK, (zs, slot)));
            }
            assert!(t.max_zspages() * objs <= MAX_SLOTS);
        }
        for next in [0, 1, NIL - 1, NIL] {
            let e = Entry::free(GEN_MASK, next);
            assert!(!e.is_live());
            assert_eq!((e.generation(), e.next()), (GEN_MASK, next));
        }
        let span = MAX_SPAN - 1;
        let (i, n) = parse_header(header(NIL - 1, 1000 + span, 1000), 1000);
        assert_eq!((i, n), (NIL - 1, 1000 + span));
    }

    #[test]
    fn generations_are_per_entry_and_skip_zero() {
        let mut t = HandleTable::new(16);
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
