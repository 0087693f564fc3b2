//! Frames detached under a class lock, given back to the page source after it is
//! dropped.
//!
//! No zsmalloc lock is ever held while the page source runs (`alloc_frame` happens
//! before a lock is taken, `free_frame` after it is dropped). Code running under a
//! class lock therefore never frees a frame: it moves it into a [`FrameBin`], a
//! fixed-size value on the caller's stack (no allocation), and the caller calls
//! [`FrameBin::release`] once the guard is gone. Work under the lock that would need
//! more room stops first (`has_room`), so nothing is ever dropped or leaked.

use zpool::{Frame, PageSource};

use zpool::FrameList;

/// Single frames (trimmed from the top of a zspage) a bin holds.
pub(crate) const BIN_FRAMES: usize = 64;
/// Whole frame lists (of released zspages) a bin holds.
pub(crate) const BIN_LISTS: usize = 12;

/// Frames waiting to go back to the page source.
pub(crate) struct FrameBin {
    frames: [Option<Frame>; BIN_FRAMES],
    nframes: usize,
    lists: [Option<FrameList>; BIN_LISTS],
    nlists: usize,
}

impl FrameBin {
    /// An empty bin.
    pub(crate) const fn new() -> FrameBin {
        FrameBin {
            frames: [const { None }; BIN_FRAMES],
            nframes: 0,
            lists: [const { None }; BIN_LISTS],
            nlists: 0,
        }
    }

    /// Whether `frames` more single frames and `lists` more frame lists fit.
    pub(crate) fn has_room(&self, frames: usize, lists: usize) -> bool {
        self.nframes + frames <= BIN_FRAMES && self.nlists + lists <= BIN_LISTS
    }

    /// Keeps a single frame; hands it back if the bin is full.
    pub(crate) fn push_frame(&mut self, f: Frame) -> Result<(), Frame> {
        if self.nframes == BIN_FRAMES {
            return Err(f);
        }
        self.frames[self.nframes] = Some(f);
        self.nframes += 1;
        Ok(())
    }

    /// Keeps a whole frame list; hands it back if the bin is full.
    pub(crate) fn push_list(&mut self, l: FrameList) -> Result<(), FrameList> {
        if self.nlists == BIN_LISTS {
            return Err(l);
        }
        self.lists[self.nlists] = Some(l);
        self.nlists += 1;
        Ok(())
    }

    /// Gives every frame back to `source` (call with no lock held); returns how many.
    pub(crate) fn release<S: PageSource + ?Sized>(&mut self, source: &S) -> usize {
        let mut n = 0;
        for f in self.frames[..self.nframes]
            .iter_mut()
            .filter_map(Option::take)
        {
            source.free_frame(f);
            n += 1;
        }
        self.nframes = 0;
        for l in self.lists[..self.nlists]
            .iter_mut()
            .filter_map(Option::take)
        {
            n += release_list(l, source);
        }
        self.nlists = 0;
        n
    }
}

/// Gives a released zspage's frames back (call with no lock held); returns how many.
pub(crate) fn release_list<S: PageSource + ?Sized>(mut list: FrameList, source: &S) -> usize {
    let mut n = 0;
    while let Some(f) = list.pop() {
        source.free_frame(f);
        n += 1;
    }
    n
}

impl Drop for FrameBin {
    fn drop(&mut self) {
        // Every path releases its bin; a frame still here would be leaked (and counted
        // by the test page sources), never freed to the wrong source.
        debug_assert!(
            self.nframes == 0 && self.nlists == 0,
            "FrameBin dropped with frames in it"
        );
    }
}
