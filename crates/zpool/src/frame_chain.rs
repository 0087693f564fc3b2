//! An owned stack of frames linked through the frames themselves: no allocation, any
//! length.
//!
//! An allocator that detaches frames under its lock hands them back to the page source
//! after the lock is dropped (zsmalloc's `FrameBin`). Holding them meanwhile must not
//! allocate (a free path may not fail), and a whole zspage of up to 255 frames may be
//! released at once, so the stack keeps its links where the kernel keeps a free page's:
//! in the page. Each frame's first word holds the tagged address of the frame below
//! it; the chain itself is one word and a count.
//!
//! ```text
//!   chain.head -> [ next | ... ] -> [ next | ... ] -> [ 0 | ... ]
//! ```
//!
//! So pushing a frame **overwrites its first `size_of::<usize>()` bytes**: a chain is
//! for frames whose contents are no longer wanted. Like a [`Frame`], a chain never frees
//! its frames: dropping one that still holds frames leaks them. Frames are numbers in
//! the links, as in [`crate::FrameTable`] (exposed provenance, checked by Miri under
//! permissive provenance).

use crate::frame::Frame;

const WORD: usize = core::mem::size_of::<usize>();

/// An owned stack of frames, linked through their first word (see the module's
/// documentation).
#[derive(Debug, Default)]
pub struct FrameChain {
    /// The top frame's tagged address (0: empty).
    head: usize,
    len: usize,
}

impl FrameChain {
    /// An empty chain.
    pub const fn new() -> FrameChain {
        FrameChain { head: 0, len: 0 }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chain holds no frame.
    pub fn is_empty(&self) -> bool {
        self.head == 0
    }

    /// Puts `frame` on top, writing the link into its first word. Never fails, never
    /// allocates.
    pub fn push(&mut self, mut frame: Frame) {
        frame.as_page_mut()[..WORD].copy_from_slice(&self.head.to_ne_bytes());
        self.head = frame.into_exposed();
        self.len += 1;
    }

    /// Takes the top frame off (its first word still holds the old link).
    pub fn pop(&mut self) -> Option<Frame> {
        if self.head == 0 {
            return None;
        }
        // SAFETY: a non-zero head is the tagged address `into_exposed` gave for the frame
        // pushed last and not popped since (`push` stores it, `pop` replaces it by the
        // link below), so this is the only `Frame` made from it.
        let f = unsafe { Frame::from_exposed(self.head) };
        let mut link = [0u8; WORD];
        link.copy_from_slice(&f[..WORD]);
        self.head = usize::from_ne_bytes(link);
        self.len -= 1;
        Some(f)
    }

    /// Moves every frame of `other` on top of this chain (O(len of `other`)).
    pub fn append(&mut self, other: &mut FrameChain) {
        while let Some(f) = other.pop() {
            self.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HeapPageSource, PAGE_SIZE, PageSource};

    #[test]
    fn frames_come_back_last_in_first_out_with_their_bytes() {
        let src = HeapPageSource;
        let mut c = FrameChain::new();
        assert!(c.is_empty() && c.pop().is_none());
        for i in 0..20u8 {
            let mut f = src.alloc_frame().expect("frame");
            f.fill(i);
            c.push(f);
        }
        assert_eq!(c.len(), 20);
        let mut other = FrameChain::new();
        other.push(c.pop().expect("top"));
        c.append(&mut other);
        assert!(other.is_empty() && other.pop().is_none());
        for i in (0..20u8).rev() {
            let f = c.pop().expect("frame");
            // Only the link word was written.
            assert!(f[WORD..].iter().all(|&b| b == i), "frame {i}");
            assert_eq!(f[PAGE_SIZE - 1], i);
            src.free_frame(f);
        }
        assert!(c.is_empty() && c.pop().is_none());
        assert_eq!(c.len(), 0);
    }
}
