//! A user-space page source that carves frames out of blocks of 64 frames of the global
//! allocator: one frame costs `PAGE_SIZE` of memory, not twice that as a separate
//! page-aligned allocation costs under glibc.
//!
//! [`crate::HeapPageSource`] asks the global allocator for every frame on its own. glibc
//! serves a page-aligned page-sized request from a larger chunk and leaves the rest as a
//! hole that only small allocations can use: measured here at 4 KiB, 100,000 frames grew
//! the resident size by 800,784 KiB, 8.01 KiB per frame. [`BlockPageSource`] asks for 64
//! frames at a time (one block of [`BLOCK_BYTES`], page-aligned: one alignment hole per
//! 64 frames)
//! and hands frames out of it; a frame given back goes on its block's free list (kept
//! in the free frames' own first byte: no allocation on `free_frame`), and a block whose
//! frames are all back is returned to the global allocator (one empty block is kept, so
//! a pool that breathes around a block boundary does not thrash).
//!
//! ```text
//!   blocks (sorted by address)     block: base | free head | free count | bump
//!   [b0][b1][b2] ...               frames [0, bump) handed out or on the free list,
//!                                  [bump, 64) never handed out (zeroed at creation)
//! ```
//!
//! The lock is held for O(log blocks) work (a binary search on `free_frame`) or an
//! amortised O(1) scan on `alloc_frame`; the global allocator is never called under it.
//! A frame of another source (its tag is not this source's, or its address is in none of
//! this source's blocks) is refused: kept, counted ([`BlockPageSource::refused_frees`])
//! and never freed. Dropping the source frees its blocks if every frame has come back;
//! if some are still out (their `Frame`s leaked or alive elsewhere), the blocks are
//! leaked instead, so those frames stay valid memory.
//!
//! A recycled frame keeps the bytes it held, and its first byte is the free list's link
//! while it was free: allocators never read bytes they have not written
//! ([`crate::RecyclingSource`] makes the same promise).

use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use crate::frame::{AllocError, Frame, FrameTag, PAGE_SIZE, Page, PageSource};
use crate::sync::Mutex;

/// Frames per block: 64 at every page size (the free list's links are `u8` frame
/// numbers, and 64 frames keep the alignment hole to 1/64 of a block).
pub const BLOCK_FRAMES: usize = 64;
/// Bytes per block: 64 frames, 256 KiB at 4 KiB pages, 1 MiB at 16 KiB, 4 MiB at 64 KiB
/// (large enough that glibc serves it by `mmap`, so a freed block goes back to the
/// system).
pub const BLOCK_BYTES: usize = BLOCK_FRAMES * PAGE_SIZE;
/// End of a block's free list.
const NONE: u8 = u8::MAX;

const BLOCK_LAYOUT: Layout = match Layout::from_size_align(BLOCK_BYTES, PAGE_SIZE) {
    Ok(l) => l,
    Err(_) => panic!("block layout"),
};

const _: () = assert!(BLOCK_FRAMES < NONE as usize);

/// One block's bookkeeping.
struct Block {
    /// The block's memory (from `alloc_zeroed(BLOCK_LAYOUT)`).
    base: NonNull<u8>,
    /// First free frame (its first byte links to the next), or `NONE`.
    free_head: u8,
    /// Frames on the free list.
    free: u8,
    /// Frames `bump..BLOCK_FRAMES` were never handed out.
    bump: u8,
}

impl Block {
    /// Frames this block can hand out now.
    fn available(&self) -> usize {
        usize::from(self.free) + (BLOCK_FRAMES - usize::from(self.bump))
    }

    fn frame_ptr(&self, i: usize) -> NonNull<u8> {
        // SAFETY: `i < BLOCK_FRAMES`, so the offset stays inside the block's allocation
        // of BLOCK_BYTES bytes.
        unsafe { self.base.add(i * PAGE_SIZE) }
    }
}

struct Inner {
    blocks: Vec<Block>,
    /// Where the next `alloc_frame` starts looking for a block with room.
    cursor: usize,
    /// Blocks with room (`available() > 0`).
    with_room: usize,
    /// Blocks with every frame back (`available() == BLOCK_FRAMES`).
    empty: usize,
    /// Frames handed out and not back.
    out: usize,
    /// Frames refused by `free_frame`.
    refused: usize,
}

// SAFETY: the block pointers are owned memory of this source, reached only under the
// source's lock (or through the `Frame`s handed out, which are `Send` themselves).
unsafe impl Send for Inner {}

/// Frames carved from blocks of 64 frames ([`BLOCK_BYTES`]) of the global allocator (see the module docs): the
/// user-space page source that costs one frame of memory per frame.
pub struct BlockPageSource {
    inner: Mutex<Inner>,
}

impl Default for BlockPageSource {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for BlockPageSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let g = self.inner.lock();
        f.debug_struct("BlockPageSource")
            .field("blocks", &g.blocks.len())
            .field("frames_out", &g.out)
            .finish()
    }
}

impl BlockPageSource {
    /// The tag of this source's frames (private: no other source can have it, so
    /// [`crate::HeapPageSource`] and hosts' sources refuse these frames).
    pub(crate) const TAG: FrameTag = FrameTag::BLOCKS;

    /// An empty source; it allocates nothing until the first frame is asked for.
    pub fn new() -> Self {
        BlockPageSource {
            inner: Mutex::new(Inner {
                blocks: Vec::new(),
                cursor: 0,
                with_room: 0,
                empty: 0,
                out: 0,
                refused: 0,
            }),
        }
    }

    /// Blocks held from the global allocator now (each [`BLOCK_BYTES`]).
    pub fn blocks(&self) -> usize {
        self.inner.lock().blocks.len()
    }

    /// Frames handed out and not given back.
    pub fn frames_out(&self) -> usize {
        self.inner.lock().out
    }

    /// Frames `free_frame` refused (another source's), since creation.
    pub fn refused_frees(&self) -> usize {
        self.inner.lock().refused
    }

    /// Takes a frame from a block with room, if there is one.
    fn take(g: &mut Inner) -> Option<NonNull<u8>> {
        if g.with_room == 0 {
            return None;
        }
        let n = g.blocks.len();
        // A block with room exists: the scan ends within one round.
        for step in 0..n {
            let k = (g.cursor + step) % n;
            if g.blocks[k].available() > 0 {
                g.cursor = k;
                return Some(Self::take_from(g, k));
            }
        }
        None
    }

    fn take_from(g: &mut Inner, k: usize) -> NonNull<u8> {
        let was_empty = g.blocks[k].available() == BLOCK_FRAMES;
        let b = &mut g.blocks[k];
        let i = if b.free_head != NONE {
            let i = usize::from(b.free_head);
            // SAFETY: frame `i` is on the free list: owned by this source, inside the
            // block, initialised; its first byte is the link written by `free_frame`.
            b.free_head = unsafe { b.frame_ptr(i).read() };
            b.free -= 1;
            i
        } else {
            let i = usize::from(b.bump);
            b.bump += 1;
            i
        };
        let ptr = b.frame_ptr(i);
        let now_full = b.available() == 0;
        if was_empty {
            g.empty -= 1;
        }
        if now_full {
            g.with_room -= 1;
        }
        g.out += 1;
        ptr
    }

    fn frame(ptr: NonNull<u8>) -> Frame {
        // SAFETY: `ptr` is frame `i` of one of this source's blocks: `PAGE_SIZE` bytes inside
        // a live allocation, page-aligned (the block is, and frames are `PAGE_SIZE` apart),
        // initialised (zeroed at creation, then only written through frames), handed out
        // to this one `Frame` (it left the free list or the bump range under the lock).
        // Only this source accepts `BlockPageSource::TAG`, and it can take the frame back.
        unsafe { Frame::from_raw(ptr.cast::<Page>(), Self::TAG) }
    }
}

impl PageSource for BlockPageSource {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        if let Some(p) = Self::take(&mut self.inner.lock()) {
            return Ok(Self::frame(p));
        }
        // A new block, with the lock dropped (the global allocator may be slow).
        // SAFETY: BLOCK_LAYOUT has a non-zero size.
        let raw = unsafe { alloc::alloc::alloc_zeroed(BLOCK_LAYOUT) };
        let base = NonNull::new(raw).ok_or(AllocError)?;
        let mut g = self.inner.lock();
        if g.blocks.try_reserve(1).is_err() {
            drop(g);
            // SAFETY: `base` came from `alloc_zeroed(BLOCK_LAYOUT)` just above and was
            // never shared.
            unsafe { alloc::alloc::dealloc(base.as_ptr(), BLOCK_LAYOUT) };
            return Err(AllocError);
        }
        let at = g.blocks.partition_point(|b| b.base.addr() < base.addr());
        g.blocks.insert(
            at,
            Block {
                base,
                free_head: NONE,
                free: 0,
                bump: 0,
            },
        );
        g.with_room += 1;
        g.empty += 1;
        g.cursor = at;
        let p = Self::take_from(&mut g, at);
        Ok(Self::frame(p))
    }

    fn free_frame(&self, frame: Frame) {
        let mut g = self.inner.lock();
        if frame.tag() != Self::TAG {
            g.refused += 1;
            return;
        }
        let ptr = frame.into_raw().cast::<u8>();
        let addr = ptr.addr().get();
        let k = g.blocks.partition_point(|b| b.base.addr().get() <= addr);
        let owner = k.checked_sub(1).filter(|&k| {
            let base = g.blocks[k].base.addr().get();
            addr - base < BLOCK_BYTES && (addr - base).is_multiple_of(PAGE_SIZE)
        });
        let Some(k) = owner else {
            // Tagged like ours but not in our blocks: another instance's frame. Kept,
            // never linked into our lists.
            g.refused += 1;
            return;
        };
        let b = &mut g.blocks[k];
        let i = (addr - b.base.addr().get()) / PAGE_SIZE;
        let was_full = b.available() == 0;
        // SAFETY: the frame is ours (inside block `k`, tagged by this source) and its
        // `Frame` was consumed by `into_raw`: nobody else can reach these bytes; `ptr`
        // carries the frame's provenance.
        unsafe { ptr.write(b.free_head) };
        // `i < BLOCK_FRAMES < NONE`, so it fits the link byte.
        b.free_head = i as u8;
        b.free += 1;
        let now_empty = b.available() == BLOCK_FRAMES;
        g.out -= 1;
        if was_full {
            g.with_room += 1;
        }
        if !now_empty {
            return;
        }
        g.empty += 1;
        if g.empty < 2 {
            // Keep one empty block for the next allocations.
            return;
        }
        let gone = g.blocks.remove(k);
        g.empty -= 1;
        g.with_room -= 1;
        if g.cursor >= g.blocks.len() {
            g.cursor = 0;
        }
        drop(g);
        // SAFETY: the block came from `alloc_zeroed(BLOCK_LAYOUT)`; every one of its
        // frames is back (none is out), and it left the list under the lock, so nothing
        // can reach it any more.
        unsafe { alloc::alloc::dealloc(gone.base.as_ptr(), BLOCK_LAYOUT) };
    }
}

impl Drop for BlockPageSource {
    fn drop(&mut self) {
        let g = self.inner.lock();
        if g.out != 0 {
            // Frames still out must stay valid memory: leak every block.
            return;
        }
        for b in &g.blocks {
            // SAFETY: every frame is back (none is out), the source is being dropped
            // (no other reference), and each block came from `alloc_zeroed(BLOCK_LAYOUT)`.
            unsafe { alloc::alloc::dealloc(b.base.as_ptr(), BLOCK_LAYOUT) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::HeapPageSource;

    #[test]
    fn frames_are_aligned_distinct_zeroed_and_reused() {
        let s = BlockPageSource::new();
        let mut frames: Vec<Frame> = (0..3 * BLOCK_FRAMES / 2)
            .map(|_| s.alloc_frame().expect("frame"))
            .collect();
        assert_eq!((s.blocks(), s.frames_out()), (2, 3 * BLOCK_FRAMES / 2));
        let mut addrs: Vec<usize> = frames.iter().map(Frame::addr).collect();
        assert!(addrs.iter().all(|a| a % PAGE_SIZE == 0));
        assert!(frames.iter().all(|f| f.as_page().iter().all(|&b| b == 0)));
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), frames.len(), "every frame is distinct");
        for (n, f) in frames.iter_mut().enumerate() {
            f.as_page_mut().fill(n as u8);
        }
        // A frame given back comes out again (LIFO), bytes kept but the link byte.
        let f = frames.pop().expect("frame");
        let (addr, fill) = (f.addr(), f.as_page()[1]);
        s.free_frame(f);
        let g = s.alloc_frame().expect("frame");
        assert_eq!((g.addr(), g.as_page()[1]), (addr, fill));
        frames.push(g);
        // Writes through one frame never show in another.
        for (n, f) in frames.iter().enumerate() {
            assert!(f.as_page()[1..].iter().all(|&b| b == n as u8), "frame {n}");
        }
        for f in frames {
            s.free_frame(f);
        }
        assert_eq!(s.frames_out(), 0);
        assert_eq!(s.blocks(), 1, "one empty block kept, the other returned");
        assert_eq!(s.refused_frees(), 0);
    }

    #[test]
    fn a_block_is_returned_when_its_last_frame_comes_back() {
        let s = BlockPageSource::new();
        let frames: Vec<Frame> = (0..4 * BLOCK_FRAMES)
            .map(|_| s.alloc_frame().expect("frame"))
            .collect();
        assert_eq!(s.blocks(), 4);
        // Free every other frame: no block empties.
        let (keep, give): (Vec<_>, Vec<_>) = frames
            .into_iter()
            .enumerate()
            .partition(|(n, _)| n % 2 == 0);
        for (_, f) in give {
            s.free_frame(f);
        }
        assert_eq!(s.blocks(), 4);
        // Allocations refill the holes before any new block.
        let refill: Vec<Frame> = (0..2 * BLOCK_FRAMES)
            .map(|_| s.alloc_frame().expect("frame"))
            .collect();
        assert_eq!(s.blocks(), 4);
        for f in refill.into_iter().chain(keep.into_iter().map(|(_, f)| f)) {
            s.free_frame(f);
        }
        assert_eq!((s.blocks(), s.frames_out()), (1, 0));
    }

    /// Page-aligned memory that is no source's (so a refusal leaks nothing).
    static mut FOREIGN: crate::testing::PageAligned = crate::testing::PageAligned::ZERO;

    fn foreign(tag: FrameTag) -> Frame {
        let ptr = NonNull::new(core::ptr::addr_of_mut!(FOREIGN).cast::<Page>()).unwrap();
        // SAFETY: the static is page-aligned and initialised; every test that wraps it
        // gives the frame to a source that refuses it, so it is never freed, and no two
        // frames of it are alive at once in one test (each call's frame is consumed
        // before the next).
        unsafe { Frame::from_raw(ptr, tag) }
    }

    #[test]
    fn other_sources_frames_are_refused() {
        let a = BlockPageSource::new();
        let fa = a.alloc_frame().expect("frame");
        // Tagged like ours but in none of our blocks (another instance's, say).
        a.free_frame(foreign(BlockPageSource::TAG));
        assert_eq!(a.refused_frees(), 1);
        // A host's tag.
        a.free_frame(foreign(FrameTag::new(9).expect("tag")));
        assert_eq!(a.refused_frees(), 2);
        // And the heap refuses our tag: it would free it with the wrong layout.
        let before = HeapPageSource::refused_frees();
        HeapPageSource.free_frame(foreign(BlockPageSource::TAG));
        assert_eq!(HeapPageSource::refused_frees(), before + 1);
        // Another instance's frame, above one of the receiver's blocks in memory (so the
        // address search lands on that block and only the range check refuses it).
        let (x, y) = (BlockPageSource::new(), BlockPageSource::new());
        let (fx, fy) = (
            x.alloc_frame().expect("frame"),
            y.alloc_frame().expect("frame"),
        );
        let (low, high, flow, mut fhigh) = if fx.addr() < fy.addr() {
            (&x, &y, fx, fy)
        } else {
            (&y, &x, fy, fx)
        };
        let p = NonNull::from(fhigh.as_page_mut());
        low.free_frame(fhigh);
        assert_eq!(low.refused_frees(), 1);
        // SAFETY: `p` is the frame `low` refused: still `high`'s, unfreed, aligned and
        // initialised, and no other `Frame` of it is alive (the refused one was consumed).
        high.free_frame(unsafe { Frame::from_raw(p, BlockPageSource::TAG) });
        low.free_frame(flow);
        assert_eq!((x.frames_out(), y.frames_out()), (0, 0));
        // Nothing refused was linked into our lists: our own frame still comes back.
        let addr = fa.addr();
        a.free_frame(fa);
        assert_eq!((a.frames_out(), a.refused_frees()), (0, 2));
        let again = a.alloc_frame().expect("frame");
        assert_eq!(again.addr(), addr);
        a.free_frame(again);
    }

    #[test]
    fn two_threads_allocate_and_free_through_one_source() {
        extern crate std;
        // Miri runs the spin lock's waits step by step: a short run there.
        const ROUNDS: usize = if cfg!(miri) { 12 } else { 300 };
        const BYTES: usize = if cfg!(miri) { 64 } else { PAGE_SIZE };
        let s = BlockPageSource::new();
        std::thread::scope(|sc| {
            for t in 0..2u8 {
                let s = &s;
                sc.spawn(move || {
                    let mut held = Vec::new();
                    for round in 0..ROUNDS {
                        let mut f = s.alloc_frame().expect("frame");
                        f.as_page_mut()[8..BYTES].fill(t);
                        held.push(f);
                        if round % 3 == 0 {
                            let f = held.swap_remove(round % held.len());
                            assert!(f.as_page()[8..BYTES].iter().all(|&b| b == t));
                            s.free_frame(f);
                        }
                    }
                    for f in held {
                        assert!(f.as_page()[8..BYTES].iter().all(|&b| b == t));
                        s.free_frame(f);
                    }
                });
            }
        });
        assert_eq!((s.frames_out(), s.blocks()), (0, 1));
    }
}
