//! The shape of a class's zspages: slot size, frames per zspage, slots per zspage.
//!
//! Slot `j` of a zspage occupies bytes `j * size .. (j + 1) * size` of the zspage's
//! frames taken as one byte range, so a slot may span two frames. Frames are taken
//! lazily, so a zspage holds only the frames its highest used slot needs.

use zpool::PAGE_SIZE;

/// Most slots one zspage holds: 511, 2047, 8191 at 4, 16, 64 KiB pages, so at every
/// page size a zspage of 32-byte slots spans up to 3 frames. (A handle-table entry
/// numbers a class's slots as `zspage * objs + slot`, `handle.rs`.)
pub(crate) const MAX_OBJS: usize = (1 << (zplat::PAGE_SHIFT - 3)) - 1;

/// Shape of a class's zspages (8 bytes: it is kept twice per class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Slot size in bytes (header included for non-huge classes; up to 65536).
    sz: u32,
    /// Frames per full zspage (`max_chain` <= 255).
    k: u8,
    /// Slots per zspage.
    m: u16,
    /// One object alone in a frame, its length kept in the descriptor (no header).
    pub huge: bool,
}

const _: () = assert!(core::mem::size_of::<Geometry>() == 8);

impl Geometry {
    /// A class shape (`size` <= `PAGE_SIZE`, `frames` <= 255, `objs` <= [`MAX_OBJS`]).
    pub(crate) const fn new(size: usize, frames: usize, objs: usize, huge: bool) -> Geometry {
        Geometry {
            sz: size as u32,
            k: frames as u8,
            m: objs as u16,
            huge,
        }
    }

    /// The zspage shape for slot size `size` wasting least: smallest waste fraction
    /// over `1..=max_chain` frames, the longer zspage on ties (frames are taken lazily,
    /// so length costs nothing, and fewer zspages mean fewer descriptors), at most
    /// [`MAX_OBJS`] slots.
    pub(crate) fn best(size: usize, max_chain: usize) -> Geometry {
        let kmax = max_chain.min((MAX_OBJS * size / PAGE_SIZE).max(1));
        let mut best = (usize::MAX, 1usize, 1usize); // (waste, k, m)
        for k in 1..=kmax {
            let m = (k * PAGE_SIZE / size).min(MAX_OBJS);
            if m == 0 {
                continue;
            }
            let waste = k * PAGE_SIZE - m * size;
            // waste / (k * PAGE_SIZE) without floats: w1 * k2 <= w2 * k1.
            if best.0 == usize::MAX || waste * best.1 <= best.0 * k {
                best = (waste, k, m);
            }
        }
        Geometry::new(size, best.1, best.2, false)
    }

    /// Slot size in bytes.
    pub(crate) const fn size(&self) -> usize {
        self.sz as usize
    }

    /// Frames per full zspage.
    pub(crate) const fn frames(&self) -> usize {
        self.k as usize
    }

    /// Slots per zspage.
    pub(crate) const fn objs(&self) -> usize {
        self.m as usize
    }

    /// Byte offset of slot `j` in its zspage.
    pub(crate) const fn slot_offset(&self, j: usize) -> usize {
        j * self.size()
    }

    /// Frames a zspage needs so that slots `0..=slot` are backed.
    pub(crate) fn frames_for_slot(&self, slot: usize) -> usize {
        if self.huge {
            1
        } else {
            ((slot + 1) * self.size()).div_ceil(PAGE_SIZE)
        }
    }

    /// Slots fully backed by `nframes` frames.
    pub(crate) fn backed_slots(&self, nframes: usize) -> usize {
        if self.huge {
            nframes.min(1)
        } else {
            (nframes * PAGE_SIZE / self.size()).min(self.objs())
        }
    }

    /// The first slot with bytes in frame `frame` (0-based) of a zspage.
    pub(crate) fn first_slot_in_frame(&self, frame: usize) -> usize {
        if self.huge {
            0
        } else {
            frame * PAGE_SIZE / self.size()
        }
    }

    /// Fewest frames that can hold `n` objects: full zspages plus one prefix-packed one.
    pub(crate) fn min_frames(&self, n: usize) -> usize {
        let full = n / self.objs();
        let rest = n % self.objs();
        full * self.frames()
            + if rest == 0 {
                0
            } else {
                self.frames_for_slot(rest - 1)
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        // 3/8-frame slots (1536 bytes at 4 KiB): 8 slots per 3 frames waste nothing; on
        // the tie the longest zspage (63 frames, 168 slots) wins (at 64 KiB the slot cap
        // does not bind: 168 < 8191).
        let s = PAGE_SIZE * 3 / 8;
        assert_eq!(
            (Geometry::best(s, 64).frames(), Geometry::best(s, 64).objs()),
            (63, 168)
        );
        let g = Geometry::best(s, 3);
        assert_eq!((g.frames(), g.objs()), (3, 8));
        assert_eq!(g.frames_for_slot(2), 2); // slot 2 ends at 9/8 of a frame
        assert_eq!(g.backed_slots(2), 5);
        assert_eq!(g.first_slot_in_frame(1), 2);
        assert_eq!(g.min_frames(9), 3 + 1);
        // Small slots are capped at MAX_OBJS per zspage: 32-byte slots fill 3 frames
        // (PAGE_SIZE / 32 per frame, MAX_OBJS = 16 * PAGE_SIZE / 128 - 1).
        let g = Geometry::best(32, 64);
        assert!(g.objs() <= MAX_OBJS);
        assert!(g.objs() * 32 <= g.frames() * PAGE_SIZE);
        assert_eq!((g.frames(), g.objs()), (3, 3 * PAGE_SIZE / 32));
        assert_eq!(MAX_OBJS, PAGE_SIZE / 8 - 1);
        let h = Geometry::new(PAGE_SIZE, 1, 1, true);
        assert_eq!((h.frames_for_slot(0), h.backed_slots(3)), (1, 1));
    }
}
