//! A stack of owned frames in 4 bytes a frame: zsmalloc's zspage frame lists.
//!
//! A zspage owns up to 255 frames, and at a million stored pages the pointers to them
//! were 3.2 bytes of every page's metadata (8 bytes a frame, 0.40 frames a page). The
//! frames of one list are nearly always near one another (a [`crate::BlockPageSource`]
//! cuts them from blocks, a kernel from its direct map), so the list keeps the first
//! frame's tagged address and, for each other frame, its distance from the first in
//! pages as an `i32`:
//!
//! ```text
//!   compact: [ frame 0's tagged address (2 words) | delta 1 | delta 2 | ... ]
//!   wide:    [ frame 0 | WIDE (2 words)  | frame 1 (2 words) | frame 2 | ... ]
//! ```
//!
//! A frame that cannot be written as a delta (more than 2^31 pages away, or made by
//! another source: its [`FrameTag`](crate::FrameTag) differs) turns the list wide: 8
//! bytes a frame, as before. The mark is bit 11 of the first word, which tags leave
//! free (they are below 2048). A delta of 0 would be the first frame itself, so 0 marks
//! an empty element in both forms; the present elements are always a prefix.
//!
//! Frames become numbers here: pushing one exposes its pointer's provenance, and reaching
//! its bytes takes the exposed provenance back (`with_exposed_provenance`). That is sound
//! because the list owns every frame in it, as a `Frame` does, and gives each back as
//! a `Frame` at most once. Miri checks this module under permissive provenance
//! (`scripts/check.sh`); strict provenance cannot express it.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use crate::frame::{Frame, PAGE_SIZE, Page, TAG_LIMIT, TAG_MASK};

/// The wide form's mark, in the first word (a tag bit no [`crate::FrameTag`] uses).
const WIDE: usize = TAG_LIMIT;

/// Most frames a list holds (a zspage's frame count is a `u8`).
pub const FRAME_LIST_MAX: usize = 255;

/// An owned stack of frames, 4 bytes a frame when they lie within 2^31 pages of the
/// first (see the module's documentation).
///
/// Like a [`Frame`], a list never frees its frames: dropping a list that still holds
/// frames leaks them. Take them out with [`FrameList::pop`] and give them back to their
/// source.
#[derive(Default)]
pub struct FrameList {
    words: Box<[u32]>,
}

#[inline]
fn join(lo: u32, hi: u32) -> usize {
    // On 32-bit targets the high word is always 0 (addresses are 32 bits).
    (u64::from(lo) | (u64::from(hi) << 32)) as usize
}

#[inline]
fn split(a: usize) -> (u32, u32) {
    let a = a as u64;
    (a as u32, (a >> 32) as u32)
}

/// Frame `a`'s distance from frame `head` in pages, if it can stand for `a` in a compact
/// list: the same tag, not `head` itself, within an `i32` of pages.
fn delta(head: usize, a: usize) -> Option<u32> {
    let head = head & !WIDE;
    if head & TAG_MASK != a & TAG_MASK {
        return None;
    }
    let pages = (a as isize).wrapping_sub(head as isize) / PAGE_SIZE as isize;
    let d = i32::try_from(pages).ok()?;
    (d != 0).then_some(d as u32)
}

/// A boxed slice of `n` zeroed words, or `None` without memory.
fn try_words(n: usize) -> Option<Box<[u32]>> {
    let mut v: Vec<u32> = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0);
    Some(v.into_boxed_slice())
}

impl FrameList {
    /// An empty list (allocates nothing).
    pub fn new() -> FrameList {
        FrameList::default()
    }

    /// Frame 0's tagged address with the wide mark, or 0 for an empty list.
    #[inline]
    fn head(&self) -> usize {
        match self.words.get(..2) {
            Some(w) => join(w[0], w[1]),
            None => 0,
        }
    }

    #[inline]
    fn is_wide(&self) -> bool {
        self.head() & WIDE != 0
    }

    /// Elements the allocation holds, present or empty.
    pub fn capacity(&self) -> usize {
        if self.is_wide() {
            self.words.len() / 2
        } else {
            self.words.len().saturating_sub(1)
        }
    }

    /// Heap bytes of the list.
    pub fn heap_bytes(&self) -> usize {
        self.words.len() * core::mem::size_of::<u32>()
    }

    /// Frame `i`'s tagged address, if present.
    #[inline]
    fn tagged(&self, i: usize) -> Option<usize> {
        let head = self.head();
        if head == 0 {
            return None;
        }
        let first = head & !WIDE;
        if i == 0 {
            return Some(first);
        }
        let a = if head & WIDE != 0 {
            let w = self.words.get(2 * i..2 * i + 2)?;
            join(w[0], w[1])
        } else {
            let d = *self.words.get(i + 1)?;
            if d == 0 {
                return None;
            }
            first.wrapping_add_signed((d as i32 as isize).wrapping_mul(PAGE_SIZE as isize))
        };
        (a != 0).then_some(a)
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        if self.head() == 0 {
            return 0;
        }
        // The present elements are a prefix: the first empty one, by bisection.
        let (mut lo, mut hi) = (1, self.capacity());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.tagged(mid).is_some() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Whether the list holds no frame.
    pub fn is_empty(&self) -> bool {
        self.head() == 0
    }

    /// Frame `i`'s bytes.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Page> {
        let a = self.tagged(i)? & !TAG_MASK;
        let p = core::ptr::with_exposed_provenance::<Page>(a);
        // SAFETY: the list owns frame `i` (it was pushed as a `Frame`, whose provenance
        // `into_exposed` exposed, and has not been popped), so `a` is the address of
        // `PAGE_SIZE` valid, initialised bytes that nothing else borrows; the borrow is
        // tied to `&self`.
        Some(unsafe { &*p })
    }

    /// Frame `i`'s bytes, mutably.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Page> {
        let a = self.tagged(i)? & !TAG_MASK;
        let p = core::ptr::with_exposed_provenance_mut::<Page>(a);
        // SAFETY: as in `get`; `&mut self` makes the borrow exclusive.
        Some(unsafe { &mut *p })
    }

    fn set_head(&mut self, a: usize) {
        let (lo, hi) = split(a);
        self.words[0] = lo;
        self.words[1] = hi;
    }

    /// Adds `frame` on top. Growing the allocation (by one element, or to the wide form)
    /// may fail: the frame then comes back, and the list is unchanged.
    pub fn push(&mut self, frame: Frame) -> Result<(), Frame> {
        let n = self.len();
        if n >= FRAME_LIST_MAX {
            return Err(frame);
        }
        let a = frame.addr() | usize::from(frame.tag().get());
        if n == 0 {
            // A fresh compact list of at least one element (all words are 0 when empty).
            if self.words.len() < 2 {
                match try_words(2) {
                    Some(w) => self.words = w,
                    None => return Err(frame),
                }
            }
            self.set_head(frame.into_exposed());
            return Ok(());
        }
        let head = self.head();
        if head & WIDE == 0 {
            if let Some(d) = delta(head, a) {
                if n + 1 >= self.words.len() {
                    let Some(mut w) = try_words(n + 2) else {
                        return Err(frame);
                    };
                    w[..self.words.len()].copy_from_slice(&self.words);
                    self.words = w;
                }
                self.words[n + 1] = d;
                let _exposed = frame.into_exposed();
                return Ok(());
            }
            // Frame `a` cannot be a delta: the list turns wide, one element longer.
            let Some(mut w) = try_words(2 * (n + 1)) else {
                return Err(frame);
            };
            for i in 0..n {
                let t = self.tagged(i).unwrap_or(0);
                let (lo, hi) = split(if i == 0 { t | WIDE } else { t });
                w[2 * i] = lo;
                w[2 * i + 1] = hi;
            }
            self.words = w;
        } else if 2 * (n + 1) > self.words.len() {
            let Some(mut w) = try_words(2 * (n + 1)) else {
                return Err(frame);
            };
            w[..self.words.len()].copy_from_slice(&self.words);
            self.words = w;
        }
        let (lo, hi) = split(frame.into_exposed());
        self.words[2 * n] = lo;
        self.words[2 * n + 1] = hi;
        Ok(())
    }

    /// Takes the top frame out, leaving its element empty (the allocation is kept, so a
    /// push after it does not allocate).
    pub fn pop(&mut self) -> Option<Frame> {
        let n = self.len();
        let i = n.checked_sub(1)?;
        let a = self.tagged(i)?;
        if i == 0 {
            // The list is empty now, and every word is 0: compact again.
            self.set_head(0);
        } else if self.is_wide() {
            self.words[2 * i] = 0;
            self.words[2 * i + 1] = 0;
        } else {
            self.words[i + 1] = 0;
        }
        // SAFETY: `a` is the tagged address `into_exposed` gave for the frame pushed as
        // element `i` (compact elements store it as a distance from frame 0's, which
        // gives it back exactly); its element is now empty, so this is the only `Frame`
        // made from it.
        Some(unsafe { Frame::from_exposed(a) })
    }

    /// Reallocates to exactly the frames held, dropping empty elements (best effort:
    /// without memory for the new allocation, nothing changes).
    pub fn shrink_to_fit(&mut self) {
        let n = self.len();
        let want = match n {
            0 => 0,
            _ if self.is_wide() => 2 * n,
            _ => n + 1,
        };
        if self.words.len() == want {
            return;
        }
        if want == 0 {
            self.words = Box::default();
            return;
        }
        if let Some(mut w) = try_words(want) {
            w.copy_from_slice(&self.words[..want]);
            self.words = w;
        }
    }
}

impl fmt::Debug for FrameList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameList")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("wide", &self.is_wide())
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

    fn fill(p: &mut Page, v: u8) {
        p.fill(v);
    }

    #[test]
    fn compact_push_read_pop_and_reuse() {
        let src = HeapPageSource;
        let mut l = FrameList::new();
        assert_eq!((l.len(), l.capacity(), l.heap_bytes()), (0, 0, 0));
        for i in 0..5u8 {
            let mut f = src.alloc_frame().expect("frame");
            fill(&mut f, i);
            l.push(f).expect("push");
        }
        assert_eq!(l.len(), 5);
        for i in 0..5 {
            assert!(l.get(i).expect("present").iter().all(|&b| b == i as u8));
        }
        assert!(l.get(5).is_none());
        if !l.is_wide() {
            // Heap frames of one thread lie close together: 4 bytes a frame, plus 4.
            assert_eq!(l.heap_bytes(), 4 * 5 + 4);
        }
        l.get_mut(3).expect("present")[7] = 0xee;
        let top = l.pop().expect("top");
        assert_eq!(top[0], 4);
        assert_eq!(l.len(), 4);
        let cap = l.capacity();
        l.push(top).expect("push reuses the element");
        assert_eq!((l.len(), l.capacity()), (5, cap));
        assert_eq!(l.get(3).expect("present")[7], 0xee);
        let mut freed = 0;
        while let Some(f) = l.pop() {
            src.free_frame(f);
            freed += 1;
        }
        assert_eq!(freed, 5);
        assert!(l.is_empty());
        l.shrink_to_fit();
        assert_eq!(l.heap_bytes(), 0);
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

    /// A frame of another source (another tag) turns the list wide: it keeps every
    /// frame's bytes and gives each frame back with its own tag.
    #[test]
    fn foreign_frames_make_the_list_wide() {
        let tag = FrameTag::new(9).expect("tag");
        let other = FrameTag::new(10).expect("tag");
        let (fa, fb) = (own(tag, 1), own(other, 2));
        let src = HeapPageSource;
        let mut l = FrameList::new();
        l.push(fa).expect("push");
        let h = own(tag, 3);
        l.push(h).expect("push");
        l.push(fb).expect("push");
        assert!(l.is_wide());
        assert_eq!(l.len(), 3);
        assert_eq!(l.heap_bytes(), 3 * 8);
        assert_eq!(l.get(0).expect("a")[0], 1);
        assert_eq!(l.get(1).expect("h")[0], 3);
        assert_eq!(l.get(2).expect("b")[0], 2);
        let b = l.pop().expect("b");
        assert_eq!(b.tag(), other);
        let h = l.pop().expect("h");
        let a = l.pop().expect("a");
        assert_eq!((a.tag(), h.tag()), (tag, tag));
        assert!(l.is_empty() && !l.is_wide());
        // The emptied list takes a compact start again, in its old allocation.
        l.push(h).expect("push");
        assert!(!l.is_wide());
        assert_eq!(l.get(0).expect("h")[0], 3);
        let h = l.pop().expect("h");
        let _ = src;
        for f in [a, b, h] {
            disown(f);
        }
    }

    /// Random pushes (of two sources' frames), pops and shrinks against a plain vector:
    /// every frame's bytes and tag stay its own, through both forms.
    #[test]
    fn random_against_a_vec() {
        let tags = [
            FrameTag::new(9).expect("tag"),
            FrameTag::new(10).expect("tag"),
        ];
        let mut l = FrameList::new();
        let mut model: Vec<(u8, FrameTag)> = Vec::new();
        let mut x: u32 = 0x9e37_79b9;
        let steps = if cfg!(miri) { 1_000 } else { 5_000 };
        // Steps that ended with two frames or more in the compact and in the wide form.
        let mut forms = [0usize; 2];
        for step in 0..steps {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match x % 8 {
                0..=2 if model.len() < 40 => {
                    // Mostly one source: lists stay compact until a foreign frame comes.
                    let tag = tags[usize::from(x.is_multiple_of(23))];
                    let v = step as u8;
                    l.push(own(tag, v)).expect("push");
                    model.push((v, tag));
                }
                3..=6 => {
                    let f = l.pop();
                    assert_eq!(f.as_ref().map(|f| (f[0], f.tag())), model.pop());
                    if let Some(f) = f {
                        disown(f);
                    }
                }
                _ => l.shrink_to_fit(),
            }
            assert_eq!(l.len(), model.len());
            assert!(l.capacity() >= l.len());
            for (i, (v, _)) in model.iter().enumerate() {
                assert_eq!(l.get(i).expect("present")[PAGE_SIZE - 1], *v, "frame {i}");
            }
            assert!(l.get(model.len()).is_none());
            forms[usize::from(l.is_wide())] += usize::from(model.len() > 1);
        }
        assert!(forms[0] > steps / 10 && forms[1] > steps / 10, "{forms:?}");
        while let Some(f) = l.pop() {
            disown(f);
        }
    }

    #[test]
    fn deltas_cover_an_i32_of_pages_and_no_more() {
        let head = 0x7000_0000_0000usize | 5;
        let at =
            |pages: isize| (head & !TAG_MASK).wrapping_add_signed(pages * PAGE_SIZE as isize) | 5;
        assert_eq!(delta(head, at(1)), Some(1));
        assert_eq!(delta(head, at(-1)), Some(u32::MAX));
        assert_eq!(delta(head, at(i32::MAX as isize)), Some(i32::MAX as u32));
        assert_eq!(delta(head, at(i32::MIN as isize)), Some(i32::MIN as u32));
        assert_eq!(delta(head, at(i32::MAX as isize + 1)), None);
        assert_eq!(delta(head, at(i32::MIN as isize - 1)), None);
        assert_eq!(delta(head, at(0)), None, "the first frame itself");
        assert_eq!(delta(head, at(1) & !TAG_MASK | 6), None, "another tag");
        assert_eq!(
            delta(head | WIDE, at(1)),
            Some(1),
            "the mark is not the tag"
        );
    }
}
