//! Reports: the per-class table (the kernel's debugfs `classes` file), the metadata
//! breakdown and the pool totals.

use core::fmt;
use zpool::{PAGE_SIZE, PageSource, PoolStats};

use crate::ZsPool;
use crate::fullness::NGROUPS;
use crate::handle::HEADER;

/// Number of fullness groups reported per class: 0 (empty), ten 10 % buckets, full.
pub const FULLNESS_GROUPS: usize = NGROUPS;

/// Where a pool's metadata bytes (outside its frames) go; see [`ZsPool::metadata`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetadataStats {
    /// Handle tables: 5 bytes per entry (live or free), plus growth slack.
    pub handle_tables: usize,
    /// Zspage descriptors (16 bytes each).
    pub zspage_descriptors: usize,
    /// Zspages' frames (each class's `zpool::FrameTable`; the name is from the per-zspage
    /// lists it replaced): 4 bytes per frame a zspage may hold (its class's chain
    /// length), plus growth slack; 8 more per element of a row that had to turn wide.
    pub frame_lists: usize,
    /// Slot bitmaps: one bit per slot, in 64-bit words per zspage.
    pub bitmaps: usize,
    /// Fixed: the pool, its class structs and its size lookup table.
    pub fixed: usize,
}

impl MetadataStats {
    /// Sum of all parts ([`PoolStats::metadata_bytes`]).
    pub fn total(&self) -> usize {
        self.handle_tables + self.zspage_descriptors + self.frame_lists + self.bitmaps + self.fixed
    }
}

/// One row of the per-class table (the kernel's debugfs `classes` file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Class index (the representative of merged classes; the huge class is last).
    pub index: usize,
    /// Slot size in bytes (header included; `PAGE_SIZE` for the huge class).
    pub size: usize,
    /// Smallest object length this class stores.
    pub min_len: usize,
    /// Largest object length this class stores.
    pub max_len: usize,
    /// Whether this is the huge class (one object alone in a frame).
    pub huge: bool,
    /// Zspages per fullness group (0 = empty, 1..=10 = 10 % buckets, 11 = full).
    pub fullness: [usize; FULLNESS_GROUPS],
    /// Slots backed by frames (the kernel's `obj_allocated`).
    pub objs_allocated: usize,
    /// Live objects (`obj_used`).
    pub objs_used: usize,
    /// Live bytes.
    pub bytes: usize,
    /// Frames held (`pages_used`).
    pub frames: usize,
    /// Zspages held.
    pub zspages: usize,
    /// Frames per full zspage (`pages_per_zspage`).
    pub frames_per_zspage: usize,
    /// Objects per zspage.
    pub objs_per_zspage: usize,
    /// Frames compaction could free now (`freeable`).
    pub freeable: usize,
    /// Frames freed by compaction in this class so far.
    pub compacted: usize,
}

impl<S: PageSource> ZsPool<S> {
    /// Metadata bytes outside the frames, by kind.
    pub fn metadata(&self) -> MetadataStats {
        let mut m = MetadataStats {
            fixed: core::mem::size_of::<Self>()
                + self.classes.capacity() * core::mem::size_of::<crate::Class>()
                + self.lookup.capacity(),
            ..MetadataStats::default()
        };
        for class in &self.classes {
            let [h, z, f, b] = class.inner.lock().metadata();
            m.handle_tables += h;
            m.zspage_descriptors += z;
            m.frame_lists += f;
            m.bitmaps += b;
        }
        m
    }

    /// Pool totals, summed class by class under each class lock.
    pub(crate) fn pool_stats(&self) -> PoolStats {
        let mut st = PoolStats::default();
        for class in &self.classes {
            let inner = class.inner.lock();
            st.frames += inner.c.frames;
            st.objects += inner.c.used;
            st.bytes += inner.c.bytes;
        }
        st.metadata_bytes = self.metadata().total();
        st
    }

    /// The per-class table: calls `f` once per class, smallest first, huge class last
    /// (each row read under its class lock, `f` called after it is dropped).
    pub fn for_each_class(&self, mut f: impl FnMut(&ClassStats)) {
        for (index, class) in self.classes.iter().enumerate() {
            let inner = class.inner.lock();
            let geo = inner.geo;
            let row = ClassStats {
                index,
                size: geo.size(),
                min_len: inner.min_len,
                max_len: if geo.huge {
                    PAGE_SIZE
                } else {
                    geo.size() - HEADER
                },
                huge: geo.huge,
                fullness: inner.lists.counts.map(|n| n as usize),
                objs_allocated: inner.objs_allocated(),
                objs_used: inner.c.used,
                bytes: inner.c.bytes,
                frames: inner.c.frames,
                zspages: inner.c.zspages,
                frames_per_zspage: geo.frames(),
                objs_per_zspage: geo.objs(),
                freeable: inner.freeable(),
                compacted: inner.c.compacted,
            };
            drop(inner);
            f(&row);
        }
    }

    /// Writes the per-class table in the layout of the kernel's debugfs
    /// `zsmalloc/<pool>/classes` file (one line per class holding frames, then a total
    /// line). Columns: class, slot size, zspages per fullness group (`10%` = in use
    /// under 10 %, ..., `100%` = 90-99 %, `full`), `obj_allocated`, `obj_used`,
    /// `pages_used`, `pages_per_zspage`, `freeable`.
    pub fn write_class_table(&self, w: &mut impl fmt::Write) -> fmt::Result {
        write!(w, "{:>5} {:>5}", "class", "size")?;
        for g in 1..FULLNESS_GROUPS - 1 {
            write!(w, " {:>3}%", g * 10)?;
        }
        writeln!(
            w,
            " {:>4} {:>13} {:>8} {:>10} {:>16} {:>8}",
            "full", "obj_allocated", "obj_used", "pages_used", "pages_per_zspage", "freeable"
        )?;
        let mut total = ClassStats::default();
        let mut result = Ok(());
        self.for_each_class(|c| {
            if c.frames == 0 || result.is_err() {
                return;
            }
            result = (|| {
                write!(w, "{:>5} {:>5}", c.index, c.size)?;
                for g in 1..FULLNESS_GROUPS {
                    write!(w, " {:>4}", c.fullness[g])?;
                }
                writeln!(
                    w,
                    " {:>13} {:>8} {:>10} {:>16} {:>8}",
                    c.objs_allocated, c.objs_used, c.frames, c.frames_per_zspage, c.freeable
                )
            })();
            total.objs_allocated += c.objs_allocated;
            total.objs_used += c.objs_used;
            total.frames += c.frames;
            total.freeable += c.freeable;
        });
        result?;
        writeln!(
            w,
            "{:<width$} {:>13} {:>8} {:>10} {:>16} {:>8}",
            "Total",
            total.objs_allocated,
            total.objs_used,
            total.frames,
            "",
            total.freeable,
            width = 11 + 5 * (FULLNESS_GROUPS - 1),
        )
    }
}
