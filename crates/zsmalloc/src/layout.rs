//! The class layout: [`PoolConfig`], and the class table built from it (slot sizes,
//! each size's zspage geometry, merging of sizes with identical geometry, the huge
//! class, and the length -> class lookup).

use alloc::vec::Vec;
use core::fmt;
use zpool::PAGE_SIZE;

use crate::geometry::Geometry;
use crate::handle::{HEADER, MAX_SPAN};

/// Tunables of a pool's class layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Longest zspage, in frames (the kernel's `CONFIG_ZSMALLOC_CHAIN_SIZE`). Each class
    /// takes the length in `1..=max_chain` that wastes least (also bounded so a zspage
    /// holds at most 511, 2047, 8191 objects at 4, 16, 64 KiB pages). 1..=255.
    pub max_chain: usize,
    /// Smallest slot size (header included). Multiple of 8, at least 8 and at most the
    /// header's span + 4: 1028, 4100, 16388 at 4, 16, 64 KiB pages (a class spans at most
    /// 1024, 4096, 16384 lengths: the in-slot header keeps the length in 10, 12, 14 bits).
    pub min_class: usize,
    /// Class spacing for slots smaller than `split`. Multiple of 8, at most the header's
    /// span (1024, 4096, 16384).
    pub small_spacing: usize,
    /// Slot size from which `spacing` applies.
    pub split: usize,
    /// Class spacing from `split` up. Multiple of 8, at most the header's span.
    pub spacing: usize,
}

impl PoolConfig {
    /// The defaults, chosen per page size on the dev corpus (README, "Page sizes").
    ///
    /// At 4 KiB: 32-byte spacing below 1024, 48 above (a class-by-class model of the dev
    /// corpus). At 16 and 64 KiB: one spacing of 48 * `PAGE_SCALE` bytes (192, 768),
    /// three times Linux's `PAGE_SIZE >> 8` as at 4 KiB, with no finer band: on the
    /// dev corpus (the same bytes in 4x, 16x fewer pages) it is within 0.1 % of the best
    /// spacing swept for a larger pool (the corpus stored `PAGE_SCALE` times), better
    /// there than the 4 KiB pattern scaled (32/48 * `PAGE_SCALE`), and on the corpus
    /// stored once (where each class's partly filled last frame weighs more) better at
    /// 16 KiB and 0.5 % behind at 64 KiB (`benches/spacing.rs`).
    pub const DEFAULT: PoolConfig = if PAGE_SIZE == 4096 {
        PoolConfig {
            max_chain: 64,
            min_class: 32,
            small_spacing: 32,
            split: 1024,
            spacing: 48,
        }
    } else {
        PoolConfig {
            max_chain: 64,
            min_class: 32,
            small_spacing: 48 * zplat::PAGE_SCALE,
            split: 1024 * zplat::PAGE_SCALE,
            spacing: 48 * zplat::PAGE_SCALE,
        }
    };

    /// Linux-like spacing (`PAGE_SIZE >> 8`: 16, 64, 256 bytes, from 32) and chain 16
    /// with this crate's lazy zspages, for comparisons.
    pub const FINE: PoolConfig = PoolConfig {
        max_chain: 16,
        min_class: 32,
        small_spacing: crate::linux::CLASS_DELTA,
        split: PAGE_SIZE,
        spacing: crate::linux::CLASS_DELTA,
    };
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig::DEFAULT
    }
}

/// Why a pool could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// A [`PoolConfig`] field is out of range; the text says which.
    InvalidConfig(&'static str),
    /// Metadata memory could not be allocated.
    NoMemory,
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::InvalidConfig(why) => write!(f, "invalid zsmalloc configuration: {why}"),
            CreateError::NoMemory => f.write_str("no memory for zsmalloc metadata"),
        }
    }
}

/// One class of the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClassSpec {
    pub geo: Geometry,
    /// Shortest and longest object length it stores.
    pub min_len: usize,
    pub max_len: usize,
}

/// The class table: classes smallest first (the huge class last) and the lookup
/// `(len + HEADER).div_ceil(8)` -> class index for `len` in `1..=PAGE_SIZE`.
pub(crate) struct Layout {
    pub classes: Vec<ClassSpec>,
    pub lookup: Vec<u8>,
}

fn check(c: &PoolConfig) -> Result<(), CreateError> {
    if c.max_chain == 0 || c.max_chain > 255 {
        return Err(CreateError::InvalidConfig("max_chain must be in 1..=255"));
    }
    if c.min_class < 8 || !c.min_class.is_multiple_of(8) || c.min_class > MAX_SPAN + HEADER {
        return Err(CreateError::InvalidConfig(
            "min_class must be a multiple of 8, at least 8, at most the header's span + 4 (1028 at 4 KiB pages)",
        ));
    }
    let spacing_ok = |s: usize| s != 0 && s.is_multiple_of(8) && s <= MAX_SPAN;
    if !spacing_ok(c.small_spacing) || !spacing_ok(c.spacing) {
        return Err(CreateError::InvalidConfig(
            "spacings must be non-zero multiples of 8, at most the header's span (1024 at 4 KiB pages)",
        ));
    }
    Ok(())
}

fn oom<T>(_: T) -> CreateError {
    CreateError::NoMemory
}

/// Builds the class table for `c`.
pub(crate) fn build(c: &PoolConfig) -> Result<Layout, CreateError> {
    check(c)?;
    // Slot sizes, smallest first.
    let mut sizes: Vec<usize> = Vec::new();
    let mut s = c.min_class;
    while s < PAGE_SIZE {
        sizes.try_reserve(1).map_err(oom)?;
        sizes.push(s);
        s += if s < c.split {
            c.small_spacing
        } else {
            c.spacing
        };
    }
    // Lengths a size would hold alone: (previous size - HEADER, size - HEADER].
    let lo = |p: usize| if p == 0 { 1 } else { sizes[p - 1] - HEADER + 1 };
    // From the largest size down: a size whose geometry equals the next larger distinct
    // class's is merged into it, as long as the class then spans at most MAX_SPAN
    // lengths; one object per frame goes to the huge class. `class_of[p]` is the class
    // of size `p`, counted from the largest (0 = huge).
    let mut reps: Vec<(Geometry, usize)> = Vec::new(); // (geometry, largest size index)
    reps.try_reserve(sizes.len() + 1).map_err(oom)?;
    reps.push((Geometry::new(PAGE_SIZE, 1, 1, true), usize::MAX));
    let mut class_of: Vec<usize> = Vec::new();
    class_of.try_reserve(sizes.len()).map_err(oom)?;
    class_of.resize(sizes.len(), 0);
    for p in (0..sizes.len()).rev() {
        let g = Geometry::best(sizes[p], c.max_chain);
        let last = reps.len() - 1;
        let (prev, rep) = reps[last];
        let mergeable = !prev.huge
            && prev.frames() == g.frames()
            && prev.objs() == g.objs()
            && sizes[rep] - HEADER + 1 - lo(p) <= MAX_SPAN;
        if mergeable {
            class_of[p] = last;
        } else if g.objs() == 1 && g.frames() == 1 {
            // One object per frame: the huge class does that without a header.
            class_of[p] = 0;
        } else {
            reps.push((g, p));
            class_of[p] = reps.len() - 1;
        }
    }
    if reps.len() > 256 {
        return Err(CreateError::InvalidConfig(
            "more than 256 distinct classes: use a coarser spacing",
        ));
    }
    // Ascending numbering: class (counted from the largest) d becomes n - 1 - d; the
    // huge class goes last.
    let n = reps.len();
    let asc = |d: usize| if d == 0 { n - 1 } else { n - 1 - d };
    let slots = (PAGE_SIZE + HEADER).div_ceil(8) + 1;
    let mut lookup: Vec<u8> = Vec::new();
    lookup.try_reserve_exact(slots).map_err(oom)?;
    for key in 0..slots {
        let pos = sizes.partition_point(|&s| s < key * 8);
        let cls = if pos == sizes.len() {
            n - 1
        } else {
            asc(class_of[pos])
        };
        lookup.push(cls as u8);
    }
    let mut classes: Vec<ClassSpec> = Vec::new();
    classes.try_reserve_exact(n).map_err(oom)?;
    for i in 0..n {
        let d = if i == n - 1 { 0 } else { n - 1 - i };
        let geo = reps[d].0;
        let max_len = if geo.huge {
            PAGE_SIZE
        } else {
            geo.size() - HEADER
        };
        classes.push(ClassSpec {
            geo,
            min_len: max_len,
            max_len,
        });
    }
    for len in (1..=PAGE_SIZE).rev() {
        let cls = lookup[(len + HEADER).div_ceil(8)] as usize;
        classes[cls].min_len = len;
    }
    // The in-slot header keeps `len - min_len` in LEN_BITS bits.
    if classes
        .iter()
        .any(|c| !c.geo.huge && c.max_len - c.min_len >= MAX_SPAN)
    {
        return Err(CreateError::InvalidConfig(
            "a class would span more lengths than the header holds (1024 at 4 KiB pages)",
        ));
    }
    Ok(Layout { classes, lookup })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_fine_layouts_fit_the_header() {
        for c in [PoolConfig::DEFAULT, PoolConfig::FINE] {
            let l = build(&c).expect("layout");
            assert!(l.classes.last().expect("huge").geo.huge);
            for w in l.classes.windows(2) {
                assert_eq!(w[0].max_len + 1, w[1].min_len);
            }
            assert_eq!(l.classes[0].min_len, 1);
        }
        let coarse = PoolConfig {
            max_chain: 1,
            min_class: 1024,
            small_spacing: 1024,
            split: PAGE_SIZE,
            spacing: 1024,
        };
        assert!(build(&coarse).is_ok());
        let too_wide = PoolConfig {
            spacing: MAX_SPAN + 8,
            ..coarse
        };
        assert!(matches!(
            build(&too_wide),
            Err(CreateError::InvalidConfig(_))
        ));
    }
}
