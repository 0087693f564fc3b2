//! Linux zsmalloc's layout, computed from its documented rules, so benches and tools can
//! print the frames Linux would need for the same object sizes next to ours.
//!
//! Rules (Linux 6.3+, `mm/zsmalloc.c`), for the build's page size: classes every
//! `ZS_SIZE_CLASS_DELTA = PAGE_SIZE >> CLASS_BITS (8)` bytes (16, 64, 256 at 4, 16,
//! 64 KiB) from `ZS_MIN_ALLOC_SIZE` (32) to `ZS_MAX_ALLOC_SIZE = PAGE_SIZE`,
//! `ZS_SIZE_CLASSES = ceil((PAGE_SIZE - 32) / delta) + 1` of them (255, 257, 257), the
//! last one capped at `PAGE_SIZE`; every object grows by an 8-byte in-object handle
//! before the class lookup; each class takes the zspage length in `1..=chain` frames that
//! minimises `k * PAGE_SIZE % size` (power-of-two sizes: one frame); walking from the
//! largest class down, a class with the same (frames, objects) as the last distinct
//! class is merged into it; a class of one object per frame is huge (its objects are
//! stored alone, without the handle word). A class with `n` objects holds
//! `ceil(n / objs) * frames` frames when its zspages are packed.
//!
//! `ZS_MIN_ALLOC_SIZE` is `max(32, (chain << PAGE_SHIFT) >> OBJ_INDEX_BITS)`; on 64-bit
//! (x86-64, arm64: `OBJ_INDEX_BITS` = 64 - (physical address bits - `PAGE_SHIFT`) - 1,
//! at least 23) the second term is 0 for every chain this model takes at every page size,
//! so it is 32.

/// log2 of the number of Linux size classes (`CLASS_BITS`).
pub const CLASS_BITS: u32 = 8;
/// Linux's size-class spacing: `PAGE_SIZE >> CLASS_BITS` (16, 64, 256 bytes).
pub const CLASS_DELTA: usize = PAGE >> CLASS_BITS;
/// Linux's smallest class.
pub const MIN_CLASS: usize = 32;
/// Bytes of in-object handle Linux adds to each non-huge object.
pub const HANDLE_SIZE: usize = 8;
/// Number of class slots (`MIN_CLASS + CLASS_DELTA * i`, the last one capped at
/// `PAGE_SIZE`): 255 at 4 KiB, 257 at 16 and 64 KiB.
pub const NR_CLASSES: usize = (PAGE - MIN_CLASS).div_ceil(CLASS_DELTA) + 1;

const PAGE: usize = zpool::PAGE_SIZE;

const _: () = assert!(PAGE != 4096 || (CLASS_DELTA == 16 && NR_CLASSES == 255));

/// One Linux class slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinuxClass {
    /// Object size of the slot's own class.
    pub size: usize,
    /// Frames per zspage.
    pub frames: usize,
    /// Objects per zspage.
    pub objs: usize,
    /// Index of the class this slot is merged into (itself if distinct).
    pub rep: usize,
}

/// Linux zsmalloc's class table for one chain size.
#[derive(Clone, Debug)]
pub struct LinuxLayout {
    chain: usize,
    classes: [LinuxClass; NR_CLASSES],
}

impl LinuxLayout {
    /// The table for `CONFIG_ZSMALLOC_CHAIN_SIZE = chain` (8 since 6.3; 4 before; the
    /// kernel accepts 4..=16, this model clamps to 1..=64).
    pub fn new(chain: usize) -> LinuxLayout {
        let chain = chain.clamp(1, 64);
        let mut classes = [LinuxClass::default(); NR_CLASSES];
        for (i, c) in classes.iter_mut().enumerate() {
            let size = (MIN_CLASS + CLASS_DELTA * i).min(PAGE);
            let frames = if size.is_power_of_two() {
                1
            } else {
                let mut best = (usize::MAX, 1);
                for k in 1..=chain {
                    let waste = k * PAGE % size;
                    if waste < best.0 {
                        best = (waste, k);
                    }
                }
                best.1
            };
            *c = LinuxClass {
                size,
                frames,
                objs: frames * PAGE / size,
                rep: i,
            };
        }
        let mut prev: Option<usize> = None;
        for i in (0..NR_CLASSES).rev() {
            if let Some(p) = prev
                && classes[p].frames == classes[i].frames
                && classes[p].objs == classes[i].objs
            {
                classes[i].rep = p;
                continue;
            }
            prev = Some(i);
        }
        LinuxLayout { chain, classes }
    }

    /// The chain size.
    pub fn chain(&self) -> usize {
        self.chain
    }

    /// Slot `i` of the table.
    pub fn class(&self, i: usize) -> Option<&LinuxClass> {
        self.classes.get(i)
    }

    /// Number of distinct classes after merging.
    pub fn distinct_classes(&self) -> usize {
        self.classes
            .iter()
            .enumerate()
            .filter(|(i, c)| c.rep == *i)
            .count()
    }

    /// Size of the largest non-huge class (a class with more than one frame and more
    /// than one object per zspage); `zs_huge_class_size` is this minus 7.
    pub fn largest_non_huge_class(&self) -> usize {
        self.classes
            .iter()
            .rev()
            .find(|c| c.frames != 1 && c.objs != 1)
            .map_or(MIN_CLASS, |c| c.size)
    }

    /// Objects this long or longer are stored alone in a frame (`zs_huge_class_size`).
    pub fn huge_class_size(&self) -> usize {
        self.largest_non_huge_class() - (HANDLE_SIZE - 1)
    }

    /// The (merged) class index an object of `len` bytes goes to (`len` in
    /// `1..=PAGE_SIZE`; longer lengths map to the last class).
    pub fn class_index(&self, len: usize) -> usize {
        let size = len.saturating_add(HANDLE_SIZE);
        let i = if size <= MIN_CLASS {
            0
        } else {
            (size - MIN_CLASS).div_ceil(CLASS_DELTA)
        };
        self.classes[i.min(NR_CLASSES - 1)].rep
    }

    /// Frames Linux holds for objects of these lengths with every zspage packed (no
    /// frees): per class `ceil(n / objs) * frames`.
    pub fn frames_for(&self, lens: impl IntoIterator<Item = usize>) -> usize {
        let mut counts = [0usize; NR_CLASSES];
        for len in lens {
            counts[self.class_index(len)] += 1;
        }
        counts
            .iter()
            .zip(self.classes.iter())
            .map(|(&n, c)| n.div_ceil(c.objs) * c.frames)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(any(feature = "page-16k", feature = "page-64k")))]
    #[test]
    fn worked_example_from_the_kernel_docs() {
        // zsmalloc.rst: size 1568 with chain >= 5 takes 5 pages for 13 objects.
        let l = LinuxLayout::new(8);
        let c = l.classes.iter().find(|c| c.size == 1568).copied();
        let c = c.unwrap_or_default();
        assert_eq!(c.frames, 5);
        assert_eq!(c.objs, 13);
    }

    #[cfg(not(any(feature = "page-16k", feature = "page-64k")))]
    #[test]
    fn cluster_counts_and_huge_watermarks() {
        // Documented: chain 4 -> 69 classes, huge class from 3264; chain 8 -> 3632;
        // chain 16 -> 3840.
        let l4 = LinuxLayout::new(4);
        assert_eq!(l4.distinct_classes(), 69);
        assert_eq!(l4.largest_non_huge_class(), 3264);
        assert_eq!(LinuxLayout::new(8).largest_non_huge_class(), 3632);
        assert_eq!(LinuxLayout::new(16).largest_non_huge_class(), 3840);
        assert_eq!(LinuxLayout::new(8).huge_class_size(), 3625);
    }

    #[cfg(not(any(feature = "page-16k", feature = "page-64k")))]
    #[test]
    fn frames_for_counts_whole_zspages() {
        let l = LinuxLayout::new(8);
        // 1560 + 8 = 1568: 13 objects per 5 frames.
        assert_eq!(l.frames_for([1560; 13]), 5);
        assert_eq!(l.frames_for([1560; 14]), 10);
        // Huge: alone in a frame.
        assert_eq!(l.frames_for([4000, 4096, 3700]), 3);
        assert_eq!(l.frames_for([]), 0);
    }

    #[test]
    fn the_rules_scale_with_the_page_size() {
        assert_eq!(CLASS_DELTA, PAGE >> 8);
        assert_eq!(NR_CLASSES, if PAGE == 4096 { 255 } else { 257 });
        let l = LinuxLayout::new(8);
        // Sizes step by the delta from 32; the last slot is capped at PAGE_SIZE.
        for i in 0..NR_CLASSES - 1 {
            assert_eq!(l.classes[i].size, MIN_CLASS + CLASS_DELTA * i);
        }
        assert_eq!(l.classes[NR_CLASSES - 1].size, PAGE);
        assert_eq!(l.class_index(PAGE), l.classes[NR_CLASSES - 1].rep);
        // Each class takes the least-waste chain length, and its objects fill
        // `frames` frames `objs` at a time (class 96: 1568 bytes at 4 KiB).
        let c = l.classes[96];
        let waste = |k: usize| k * PAGE % c.size;
        assert!((1..=8).all(|k| waste(c.frames) <= waste(k)));
        let rep = l.classes[c.rep];
        let len = c.size - HANDLE_SIZE;
        assert_eq!(
            l.frames_for(core::iter::repeat_n(len, rep.objs)),
            rep.frames
        );
        assert_eq!(
            l.frames_for(core::iter::repeat_n(len, rep.objs + 1)),
            2 * rep.frames
        );
        // Huge objects are alone in a frame at every size.
        assert_eq!(l.frames_for([PAGE, PAGE - 100]), 2);
        assert!(l.huge_class_size() < PAGE);
    }
}
