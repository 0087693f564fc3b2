//! Frames detached under a class lock, given back to the page source after it is
//! dropped.
//!
//! No zsmalloc lock is ever held while the page source runs (`alloc_frame` happens
//! before a lock is taken, `free_frame` after it is dropped). Code running under a
//! class lock therefore never frees a frame: it moves it into a [`FrameBin`], a
//! [`zpool::FrameChain`] on the caller's stack that links its frames through their
//! first word (no allocation, any number of frames: a released zspage's whole row goes
//! in at once), and the caller calls [`FrameBin::release`] once the guard is gone.
//!
//! Linking writes one word into each frame under the lock: a frame's first line is
//! touched there instead of in the page source's `free_frame` (a
//! `zpool::BlockPageSource` writes its free-list link into the same word).

use zpool::{Frame, FrameChain, PageSource};

/// Frames a compaction hold detaches by trimming before it ends (a released zspage's
/// frames come on top: at most one row, 255 frames).
pub(crate) const BIN_FRAMES: usize = 64;

/// Frames waiting to go back to the page source.
pub(crate) struct FrameBin {
    chain: FrameChain,
}

impl FrameBin {
    /// An empty bin.
    pub(crate) const fn new() -> FrameBin {
        FrameBin {
            chain: FrameChain::new(),
        }
    }

    /// Whether `frames` more trimmed frames keep the bin within [`BIN_FRAMES`] (holds
    /// stop trimming beyond it: the work of one hold stays bounded).
    pub(crate) fn has_room(&self, frames: usize) -> bool {
        self.chain.len() + frames <= BIN_FRAMES
    }

    /// Keeps a frame (never fails, never allocates).
    pub(crate) fn push_frame(&mut self, f: Frame) {
        self.chain.push(f);
    }

    /// The chain to take a released zspage's row into.
    pub(crate) fn chain(&mut self) -> &mut FrameChain {
        &mut self.chain
    }

    /// Gives every frame back to `source` (call with no lock held); returns how many.
    pub(crate) fn release<S: PageSource + ?Sized>(&mut self, source: &S) -> usize {
        let mut n = 0;
        while let Some(f) = self.chain.pop() {
            source.free_frame(f);
            n += 1;
        }
        n
    }
}

impl Drop for FrameBin {
    fn drop(&mut self) {
        // Every path releases its bin; a frame still here would be leaked (and counted
        // by the test page sources), never freed to the wrong source.
        debug_assert!(self.chain.is_empty(), "FrameBin dropped with frames in it");
    }
}
