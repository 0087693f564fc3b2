//! Rows of owned frames in 4 bytes a frame: zsmalloc's zspages, all of a size class in
//! one array.
//!
//! A zspage holds up to `width` frames (its class's chain length, at most 255), taken
//! lazily. The table keeps the frames of row `r` in elements `r * width ..` of one
//! array of `u32`. An element names one of up to 8 **bases** (tagged frame addresses
//! the table took as it met frames far from the others, kept beside the array) in its
//! top 3 bits, and the frame's distance in pages from that base in the other 29. Frame
//! `i` of zspage `r` is then one load away from the zspage's number:
//!
//! ```text
//!   words: [ row 0: e0 e1 e2 .. | row 1: e0 e1 0 0 .. | row 2: WIDE WIDE 0 .. | ... ]
//!   e = base (3 bits) | distance + 2^28 (29 bits)
//!   frame (r, i) = bases[e >> 29] + ((e & (2^29 - 1)) - 2^28) pages
//!   wide rows:   [(2, [frame 0, frame 1, 0, ..]), ...]   sorted by row
//! ```
//!
//! A base covers 2^28 pages either side (1 TiB at 4 KiB pages) and one source (a frame
//! of another [`FrameTag`](crate::FrameTag) needs a base of its own). A frame no base
//! covers becomes a base while there are fewer than 8; the bases are chosen again
//! whenever the table holds no frame. Eight regions cover what hosts do: a
//! [`crate::BlockPageSource`] cuts frames from blocks that glibc puts in its mmap area
//! or, once its mmap threshold has risen, in the heap (about 42 TiB apart: two bases),
//! a kernel from its direct map (one). 0 marks an empty element and `WIDE`
//! (`u32::MAX`) a present frame of a **wide** row: a row with a frame that no base covers
//! and none can be added for keeps full tagged addresses in a side list instead
//! (8 bytes a frame). The present elements of a row are a prefix.
//!
//! Before this table each zspage owned a heap list of its frames (a 32-byte descriptor
//! with a pointer to it): a load read the descriptor, then the list, then the frame,
//! and adding a frame reallocated the list. Now a load reads one element, found from
//! the zspage's number alone, and adding a frame writes one (rows are allocated with
//! their zspage, `width` elements each).
//!
//! Frames become numbers here: pushing one exposes its pointer's provenance, and reaching
//! its bytes takes the exposed provenance back (`with_exposed_provenance`). That is sound
//! because the table owns every frame in it, as a `Frame` does, and gives each back as
//! a `Frame` at most once. Miri checks this module under permissive provenance
//! (`scripts/check.sh`); strict provenance cannot express it.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::frame::{AllocError, Frame, PAGE_SIZE, Page, TAG_MASK};
use crate::frame_chain::FrameChain;

/// Most frames a row holds (a zspage's frame count is a `u8`).
pub const FRAME_ROW_MAX: usize = 255;

const EMPTY: u32 = 0;
/// A present frame of a wide row (its address is in the side list).
const WIDE: u32 = u32::MAX;
/// Added to a distance so that 0 is no distance a frame can have.
const BIAS: u32 = 1 << (OFF_BITS - 1);
/// Bits of an element's distance from its base.
const OFF_BITS: u32 = 29;
const OFF_MASK: u32 = (1 << OFF_BITS) - 1;
/// Bases a table keeps (the top `32 - OFF_BITS` bits of an element).
pub const FRAME_TABLE_BASES: usize = 1 << (32 - OFF_BITS);

/// Rows of `width` frames each, 4 bytes a frame (see the module's documentation).
///
/// Like a [`Frame`], a table never frees its frames: dropping one that still holds
/// frames leaks them. Take them out with [`FrameTable::pop`] or
/// [`FrameTable::take_row`] and give them back to their source.
pub struct FrameTable {
    words: Vec<u32>,
    width: usize,
    /// Tagged addresses the elements are distances from (the first `nbases`; chosen
    /// again when `frames == 0`).
    bases: [usize; FRAME_TABLE_BASES],
    nbases: usize,
    /// Frames held, in all rows.
    frames: usize,
    /// Wide rows' frames as tagged addresses (0: empty element), sorted by row.
    wide: Vec<(u32, Box<[usize]>)>,
}

/// Frame `a`'s element relative to base number `k` (tagged address `base`): the same
/// tag, within 2^28 pages, and neither of the two reserved values.
#[inline]
fn encode(k: usize, base: usize, a: usize) -> Option<u32> {
    if base & TAG_MASK != a & TAG_MASK {
        return None;
    }
    let pages = (a as isize).wrapping_sub(base as isize) / PAGE_SIZE as isize;
    let off = pages.checked_add(BIAS as isize)?;
    if !(0..=OFF_MASK as isize).contains(&off) {
        return None;
    }
    let s = ((k as u32) << OFF_BITS) | off as u32;
    (s != EMPTY && s != WIDE).then_some(s)
}

#[inline]
fn decode(bases: &[usize; FRAME_TABLE_BASES], s: u32) -> usize {
    let pages = (s & OFF_MASK) as isize - BIAS as isize;
    bases[(s >> OFF_BITS) as usize].wrapping_add_signed(pages.wrapping_mul(PAGE_SIZE as isize))
}

/// `n` zeroed slots, or `None` without memory.
fn try_zeroed<T: Copy + Default>(n: usize) -> Option<Box<[T]>> {
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::default());
    Some(v.into_boxed_slice())
}

impl FrameTable {
    /// A table of rows of `width` frames (clamped to `1..=`[`FRAME_ROW_MAX`]); it has
    /// no row yet and allocates nothing.
    pub fn new(width: usize) -> FrameTable {
        FrameTable {
            words: Vec::new(),
            width: width.clamp(1, FRAME_ROW_MAX),
            bases: [0; FRAME_TABLE_BASES],
            nbases: 0,
            frames: 0,
            wide: Vec::new(),
        }
    }

    /// Frames a row holds at most.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows allocated.
    pub fn rows(&self) -> usize {
        self.words.len() / self.width
    }

    /// Frames held, in all rows.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Adds an empty row and returns its number. The array grows by an eighth of its
    /// length (not the usual doubling: slack stays near 12 %), fallibly.
    pub fn add_row(&mut self) -> Result<usize, AllocError> {
        let r = self.rows();
        if self.words.capacity() - self.words.len() < self.width {
            let want = self.width.max(self.words.len() / 8);
            self.words.try_reserve_exact(want).map_err(|_| AllocError)?;
        }
        self.words.resize(self.words.len() + self.width, EMPTY);
        Ok(r)
    }

    /// Heap bytes of the table (the array's capacity and the wide rows' lists).
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * core::mem::size_of::<u32>()
            + self.wide.capacity() * core::mem::size_of::<(u32, Box<[usize]>)>()
            + self
                .wide
                .iter()
                .map(|(_, l)| l.len() * core::mem::size_of::<usize>())
                .sum::<usize>()
    }

    #[inline]
    fn element(&self, r: usize, i: usize) -> Option<u32> {
        if i >= self.width {
            return None;
        }
        self.words.get(r.checked_mul(self.width)? + i).copied()
    }

    fn wide_pos(&self, r: usize) -> Option<usize> {
        self.wide
            .binary_search_by_key(&r, |&(w, _)| w as usize)
            .ok()
    }

    /// Whether row `r` keeps its frames in the side list.
    pub fn is_wide(&self, r: usize) -> bool {
        self.element(r, 0) == Some(WIDE)
    }

    /// Frame (`r`, `i`)'s tagged address, if present.
    #[inline]
    fn tagged(&self, r: usize, i: usize) -> Option<usize> {
        match self.element(r, i)? {
            EMPTY => None,
            WIDE => {
                let a = *self.wide.get(self.wide_pos(r)?)?.1.get(i)?;
                (a != 0).then_some(a)
            }
            s => Some(decode(&self.bases, s)),
        }
    }

    /// Frames present in row `r`.
    pub fn len(&self, r: usize) -> usize {
        // The present elements are a prefix: the first empty one, by bisection.
        let (mut lo, mut hi) = (0, if r < self.rows() { self.width } else { 0 });
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.element(r, mid).is_some_and(|s| s != EMPTY) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Whether frame `i` of row `r` is present (one element read: the cheap check that
    /// a zspage's slot is backed).
    #[inline]
    pub fn contains(&self, r: usize, i: usize) -> bool {
        self.element(r, i).is_some_and(|s| s != EMPTY)
    }

    /// Whether the table holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Frame `i` of row `r`, if present.
    #[inline]
    pub fn get(&self, r: usize, i: usize) -> Option<&Page> {
        let a = self.tagged(r, i)? & !TAG_MASK;
        let p = core::ptr::with_exposed_provenance::<Page>(a);
        // SAFETY: the table owns frame (`r`, `i`) (it was pushed as a `Frame`, whose
        // provenance `into_exposed` exposed, and has not been popped), and the element
        // gives its address back exactly, so `a` is the address of `PAGE_SIZE` valid,
        // initialised bytes that nothing else borrows; the borrow is tied to `&self`.
        Some(unsafe { &*p })
    }

    /// Frame `i` of row `r`, mutably.
    #[inline]
    pub fn get_mut(&mut self, r: usize, i: usize) -> Option<&mut Page> {
        let a = self.tagged(r, i)? & !TAG_MASK;
        let p = core::ptr::with_exposed_provenance_mut::<Page>(a);
        // SAFETY: as in `get`; `&mut self` makes the borrow exclusive.
        Some(unsafe { &mut *p })
    }

    /// Adds `frame` on top of row `r`. A full row, a row out of range, or no memory for
    /// a wide row's list gives the frame back and changes nothing.
    pub fn push(&mut self, r: usize, frame: Frame) -> Result<(), Frame> {
        let n = self.len(r);
        if r >= self.rows() || n >= self.width {
            return Err(frame);
        }
        let a = frame.addr() | usize::from(frame.tag().get());
        if self.frames == 0 {
            // No frame to be near: the bases are chosen afresh (every row is empty, and
            // no row is wide).
            self.nbases = 0;
        }
        let at = r * self.width;
        if n > 0 && self.words[at] == WIDE {
            let Some(p) = self.wide_pos(r) else {
                return Err(frame);
            };
            self.wide[p].1[n] = frame.into_exposed();
            self.words[at + n] = WIDE;
        } else if let Some(s) = self.element_for(a) {
            let _exposed = frame.into_exposed();
            self.words[at + n] = s;
        } else {
            // Frame `a` cannot be an element: the row turns wide.
            if self.wide.try_reserve(1).is_err() {
                return Err(frame);
            }
            let Some(mut list) = try_zeroed::<usize>(self.width) else {
                return Err(frame);
            };
            for (i, slot) in list.iter_mut().enumerate().take(n) {
                *slot = self.tagged(r, i).unwrap_or(0);
            }
            list[n] = frame.into_exposed();
            self.words[at..at + n + 1].fill(WIDE);
            let p = self.wide.partition_point(|&(w, _)| (w as usize) < r);
            // `r < rows()`, and rows are numbered in a `u32` by zsmalloc's descriptors.
            self.wide.insert(p, (r as u32, list));
        }
        self.frames += 1;
        Ok(())
    }

    /// Frame `a`'s element: relative to the first base that covers it, else to `a`
    /// itself as a new base while there is room for one.
    fn element_for(&mut self, a: usize) -> Option<u32> {
        let covered = (0..self.nbases).find_map(|k| encode(k, self.bases[k], a));
        covered.or_else(|| {
            let k = self.nbases;
            if k >= FRAME_TABLE_BASES {
                return None;
            }
            let s = encode(k, a, a)?;
            self.bases[k] = a;
            self.nbases += 1;
            Some(s)
        })
    }

    /// Takes the top frame of row `r` out, leaving its element empty. A wide row that
    /// empties drops its list (it is compact again).
    pub fn pop(&mut self, r: usize) -> Option<Frame> {
        let i = self.len(r).checked_sub(1)?;
        let a = self.tagged(r, i)?;
        let at = r * self.width;
        if self.words[at] == WIDE
            && let Some(p) = self.wide_pos(r)
        {
            self.wide[p].1[i] = 0;
            if i == 0 {
                self.wide.remove(p);
            }
        }
        self.words[at + i] = EMPTY;
        self.frames -= 1;
        // SAFETY: `a` is the tagged address `into_exposed` gave for the frame pushed as
        // element `i` of row `r` (a compact element stores it as a distance from the
        // base, which gives it back exactly); its element is now empty, so this is the
        // only `Frame` made from it.
        Some(unsafe { Frame::from_exposed(a) })
    }

    /// Moves every frame of row `r` onto `out` (top first); returns how many. Never
    /// allocates (the chain links through the frames: their first word is overwritten).
    pub fn take_row(&mut self, r: usize, out: &mut FrameChain) -> usize {
        let mut n = 0;
        while let Some(f) = self.pop(r) {
            out.push(f);
            n += 1;
        }
        n
    }
}

impl fmt::Debug for FrameTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameTable")
            .field("width", &self.width)
            .field("rows", &self.rows())
            .field("frames", &self.frames)
            .field("wide_rows", &self.wide.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameTag;
    use crate::{HeapPageSource, PageSource};
    use core::alloc::Layout;
    use core::ptr::NonNull;

    #[test]
    fn push_read_pop_and_reuse() {
        let src = HeapPageSource;
        let mut t = FrameTable::new(5);
        assert_eq!((t.rows(), t.heap_bytes(), t.len(0)), (0, 0, 0));
        assert_eq!(t.add_row(), Ok(0));
        assert_eq!(t.add_row(), Ok(1));
        for i in 0..5u8 {
            let mut f = src.alloc_frame().expect("frame");
            f.fill(i);
            t.push(1, f).expect("push");
        }
        let extra = src.alloc_frame().expect("frame");
        let extra = t.push(1, extra).expect_err("a full row");
        let extra = t.push(2, extra).expect_err("no such row");
        src.free_frame(extra);
        assert_eq!((t.len(0), t.len(1), t.frames()), (0, 5, 5));
        for i in 0..5 {
            assert!(t.get(1, i).expect("present").iter().all(|&b| b == i as u8));
        }
        assert!(t.get(1, 5).is_none() && t.get(0, 0).is_none() && t.get(9, 0).is_none());
        assert!(t.contains(1, 4) && !t.contains(1, 5) && !t.contains(0, 0) && !t.contains(9, 0));
        if !t.is_wide(1) {
            // Heap frames of one thread lie close together: 4 bytes a frame.
            assert_eq!(t.heap_bytes(), 4 * t.words.capacity());
        }
        t.get_mut(1, 3).expect("present")[7] = 0xee;
        let top = t.pop(1).expect("top");
        assert_eq!((top[0], t.len(1)), (4, 4));
        t.push(1, top).expect("the element is reused");
        assert_eq!(t.get(1, 3).expect("present")[7], 0xee);
        let mut out = FrameChain::new();
        assert_eq!(t.take_row(1, &mut out), 5);
        assert!(t.is_empty() && t.len(1) == 0);
        while let Some(f) = out.pop() {
            src.free_frame(f);
        }
    }

    const LAYOUT: Layout = match Layout::from_size_align(PAGE_SIZE, PAGE_SIZE) {
        Ok(l) => l,
        Err(_) => panic!("layout"),
    };

    /// A frame of the test's own, tagged `tag`, filled with `v`.
    fn own(tag: FrameTag, v: u8) -> Frame {
        // SAFETY: a non-zero size.
        let p = unsafe { alloc::alloc::alloc(LAYOUT) };
        let p = NonNull::new(p).expect("memory").cast::<Page>();
        // SAFETY: `PAGE_SIZE` fresh bytes, page-aligned, owned by the frame alone.
        let mut f = unsafe { Frame::from_raw(p, tag) };
        f.fill(v);
        f
    }

    fn disown(f: Frame) {
        // SAFETY: made by `own` with `LAYOUT`.
        unsafe { alloc::alloc::dealloc(f.into_raw().as_ptr().cast(), LAYOUT) }
    }

    /// A frame no base covers once there are eight (here: a ninth source, another tag)
    /// turns its row wide: the row keeps every frame's bytes and gives each back with
    /// its own tag; the other rows stay compact.
    #[test]
    fn a_ninth_source_makes_the_row_wide() {
        let tag = FrameTag::new(9).expect("tag");
        let other = FrameTag::new(10).expect("tag");
        let mut t = FrameTable::new(FRAME_TABLE_BASES);
        for _ in 0..3 {
            t.add_row().expect("row");
        }
        t.push(0, own(tag, 7)).expect("push");
        // Seven more sources take the other bases (row 1, all compact).
        let mut fill = Vec::new();
        for k in 1..FRAME_TABLE_BASES {
            let f = own(FrameTag::new(10 + k as u16).expect("tag"), 0);
            fill.push(f.tag());
            t.push(1, f).expect("push");
        }
        assert_eq!((t.nbases, t.is_wide(1)), (FRAME_TABLE_BASES, false));
        t.push(2, own(tag, 1)).expect("push");
        t.push(2, own(tag, 3)).expect("push");
        t.push(2, own(other, 2)).expect("push");
        assert!(t.is_wide(2) && !t.is_wide(0));
        assert_eq!((t.len(2), t.frames()), (3, 4 + FRAME_TABLE_BASES - 1));
        assert_eq!(t.get(2, 0).expect("a")[0], 1);
        assert_eq!(t.get(2, 1).expect("h")[0], 3);
        assert_eq!(t.get(2, 2).expect("b")[0], 2);
        assert_eq!(t.get(0, 0).expect("row 0")[0], 7);
        let b = t.pop(2).expect("b");
        assert_eq!(b.tag(), other);
        let h = t.pop(2).expect("h");
        let a = t.pop(2).expect("a");
        assert_eq!((a.tag(), h.tag()), (tag, tag));
        assert!(!t.is_wide(2) && t.len(2) == 0 && t.wide.is_empty());
        // The emptied row is compact again.
        t.push(2, h).expect("push");
        assert!(!t.is_wide(2));
        assert_eq!(t.get(2, 0).expect("h")[0], 3);
        let h = t.pop(2).expect("h");
        let z = t.pop(0).expect("row 0");
        for f in [a, b, h, z] {
            disown(f);
        }
        while let Some(f) = t.pop(1) {
            assert_eq!(Some(f.tag()), fill.pop());
            disown(f);
        }
        assert!(t.is_empty());
    }

    /// Random pushes (of two sources' frames) and pops over several rows against plain
    /// vectors: every frame's bytes and tag stay its own, compact and wide.
    #[test]
    fn random_against_vecs() {
        // Twelve sources: more than the table has bases, so some rows turn wide.
        let tags: Vec<FrameTag> = (9..21).map(|t| FrameTag::new(t).expect("tag")).collect();
        const ROWS: usize = 4;
        let mut t = FrameTable::new(6);
        let mut model: [Vec<(u8, FrameTag)>; ROWS] = Default::default();
        let mut x: u32 = 0x9e37_79b9;
        let steps = if cfg!(miri) { 1_000 } else { 5_000 };
        // Steps that ended with a row of two frames or more, compact and wide.
        let mut forms = [0usize; 2];
        for step in 0..steps {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let r = (x >> 8) as usize % ROWS;
            while t.rows() <= r {
                t.add_row().expect("row");
            }
            match x % 8 {
                // Pops outnumber pushes, so rows empty often (and turn compact again).
                0..=2 if model[r].len() < 6 => {
                    // Mostly one source: rows stay compact until a foreign frame comes.
                    let tag = if x.is_multiple_of(5) {
                        tags[1 + (x >> 20) as usize % (tags.len() - 1)]
                    } else {
                        tags[0]
                    };
                    let v = step as u8;
                    t.push(r, own(tag, v)).expect("push");
                    model[r].push((v, tag));
                }
                _ => {
                    let f = t.pop(r);
                    assert_eq!(f.as_ref().map(|f| (f[0], f.tag())), model[r].pop());
                    if let Some(f) = f {
                        disown(f);
                    }
                }
            }
            for (r, m) in model.iter().enumerate() {
                assert_eq!(t.len(r), m.len());
                for (i, (v, _)) in m.iter().enumerate() {
                    assert_eq!(t.get(r, i).expect("present")[PAGE_SIZE - 1], *v, "{r}/{i}");
                }
                assert!(t.get(r, m.len()).is_none());
                forms[usize::from(t.is_wide(r))] += usize::from(m.len() > 1);
            }
            assert_eq!(t.frames(), model.iter().map(Vec::len).sum::<usize>());
        }
        assert!(forms[0] > steps / 10 && forms[1] > steps / 10, "{forms:?}");
        for r in 0..ROWS {
            while let Some(f) = t.pop(r) {
                disown(f);
            }
        }
        assert!(t.is_empty() && t.wide.is_empty());
    }

    #[test]
    fn elements_cover_2_pow_28_pages_either_side_of_their_base() {
        let base = 0x7000_0000_0000usize | 5;
        let at =
            |pages: isize| (base & !TAG_MASK).wrapping_add_signed(pages * PAGE_SIZE as isize) | 5;
        let mut bases = [0; FRAME_TABLE_BASES];
        for k in 0..FRAME_TABLE_BASES {
            bases[k] = base;
            let lo = if k == 0 { 1 - (1 << 28) } else { -(1 << 28) };
            let hi = if k == FRAME_TABLE_BASES - 1 {
                (1 << 28) - 2
            } else {
                (1 << 28) - 1
            };
            for pages in [0, 1, -1, lo, hi] {
                let s = encode(k, base, at(pages)).expect("representable");
                assert_eq!(s >> OFF_BITS, k as u32);
                assert_eq!(decode(&bases, s), at(pages), "{k}: {pages}");
            }
            assert_eq!(encode(k, base, at(lo - 1)), None, "{k}");
            assert_eq!(encode(k, base, at(hi + 1)), None, "{k}");
        }
        // The two reserved values are never elements.
        assert_eq!(encode(0, base, at(-(1 << 28))), None);
        assert_eq!(encode(FRAME_TABLE_BASES - 1, base, at((1 << 28) - 1)), None);
        assert_eq!(encode(0, base, at(1) & !TAG_MASK | 6), None, "another tag");
    }

    /// Frames far apart (two regions, as glibc's mmap area and heap) take a base each
    /// and stay compact; a ninth region turns its row wide.
    #[test]
    fn far_regions_take_bases_until_there_are_eight() {
        let tag = FrameTag::new(9).expect("tag");
        let mut t = FrameTable::new(2);
        let mut frames = Vec::new();
        for _ in 0..FRAME_TABLE_BASES + 1 {
            frames.push(own(tag, 0));
        }
        // Made-up far addresses cannot be read, so the test checks the encoding alone:
        // frame `i` stands for an address `3 * 2^28 * i` pages above the first (a base
        // covers 2^28 pages either side, whatever the page size).
        let first = frames[0].addr() | 9;
        for i in 0..=FRAME_TABLE_BASES {
            let a = first + i * 3 * (1usize << 28) * PAGE_SIZE;
            let got = t.element_for(a);
            if i < FRAME_TABLE_BASES {
                let s = got.expect("a base");
                assert_eq!(((s >> OFF_BITS) as usize, t.nbases), (i, i + 1));
                assert_eq!(decode(&t.bases, s), a);
            } else {
                assert_eq!(got, None, "no ninth base");
            }
        }
        // A neighbour of a base is covered by it.
        let s = t.element_for(first + 3 * PAGE_SIZE).expect("covered");
        assert_eq!(s >> OFF_BITS, 0);
        for f in frames {
            disown(f);
        }
    }
}
