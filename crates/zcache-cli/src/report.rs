//! Rows of results, the stdout table and the JSON output.

use serde::Serialize;

use crate::cli::{AllocatorArg, SwapOffsets, WorkloadArg};
use crate::input::PAGE_SIZE;
use crate::linux;
use crate::measure::{Bare, Baseline, Clock};
use crate::workload::Outcome;
use zcomp::Algorithm;

/// One (workload, allocator, compressor) result: the JSON object, key for key.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `frontswap` or `cleancache`.
    pub workload: &'static str,
    /// `zbud` or `zsmalloc`.
    pub allocator: &'static str,
    /// `lz4`, `deflate`, `lzo` or `zstd`.
    pub compressor: &'static str,
    /// Pages offered.
    pub pages: u64,
    /// Same-filled pages held after the stores (stored as their word, no frame).
    pub same_filled_pages: u64,
    /// Sum of the compressed sizes of the other pages held after the stores.
    pub compressed_bytes: u64,
    /// `compressed_bytes / PAGE_SIZE`, rounded up.
    pub ideal_frames: u64,
    /// Peak frames held by the allocators during the stores.
    pub pool_frames: u64,
    /// Metadata bytes outside the frames after the stores (trees, buckets, handles,
    /// descriptors).
    pub metadata_bytes: u64,
    /// Stores per second (one thread).
    pub store_pages_per_sec: f64,
    /// Loads per second (one thread).
    pub load_pages_per_sec: f64,
    /// Bare compression of the same pages, per second (passes interleaved with the
    /// store passes).
    pub bare_compress_pages_per_sec: f64,
    /// Bare decompression of the same pages, per second (passes interleaved with the
    /// load passes).
    pub bare_decompress_pages_per_sec: f64,
    /// Loads that returned the right bytes.
    pub verified_pages: u64,
    /// Loads that returned wrong bytes, failed, or lost a stored page.
    pub mismatches: u64,
    /// Pages evicted.
    pub evicted_pages: u64,
    /// Heap bytes of the baseline `Mutex<HashMap<u64, Vec<u8>>>` of lz4 output.
    pub baseline_bytes: u64,
    /// Baseline stores per second.
    pub baseline_store_pages_per_sec: f64,
    /// Baseline loads per second.
    pub baseline_load_pages_per_sec: f64,

    /// Stores accepted (frontswap) or pages held after the puts (cleancache).
    pub stored_pages: u64,
    /// Stores refused (poor compression, no frame).
    pub rejected_pages: u64,
    /// Loads that missed where a miss is allowed.
    pub missed_loads: u64,
    /// Frames held right after the stores.
    pub pool_frames_after_stores: u64,
    /// Frames held after invalidating everything (0 unless frames leak).
    pub frames_after_invalidate: u64,
    /// The frame limit (cleancache: half the ideal frames of every page).
    pub frame_limit: Option<u64>,
    /// `pool_frames / ideal_frames`.
    pub frames_per_ideal: f64,
    /// zcache's own byte count in its allocators (compressed bytes plus object headers).
    pub zbytes: u64,
    /// `pool_frames * PAGE_SIZE + metadata_bytes`.
    pub zcache_bytes: u64,
    /// Frames Linux zsmalloc (chain 8) needs for the same sizes (frontswap).
    pub linux_zsmalloc_frames: Option<u64>,
    /// Frames Linux zbud needs for the same sizes (frontswap).
    pub linux_zbud_frames: Option<u64>,
    /// Objects Linux zbud refuses (over 3968 B; counted as a frame each above).
    pub linux_zbud_refused: Option<u64>,
    /// Uncompressed MB (10^6 bytes) stored per second.
    pub store_mb_per_sec: f64,
    /// Uncompressed MB loaded per second.
    pub load_mb_per_sec: f64,
    /// Invalidations per second.
    pub invalidate_pages_per_sec: f64,
    /// `store_pages_per_sec / bare_compress_pages_per_sec`.
    pub store_vs_bare: f64,
    /// `load_pages_per_sec / bare_decompress_pages_per_sec`.
    pub load_vs_bare: f64,
    /// The baseline's allocations as a glibc-style malloc takes them.
    pub baseline_malloc_bytes: u64,
    /// Timed passes over the pages.
    pub passes: u32,
    /// How frontswap offsets were made (`sequential` or `index`).
    pub swap_offsets: &'static str,
    /// The clock of the timings (`cpu`: the thread's CPU time, or `wall`).
    pub clock: &'static str,
    /// zcache's counters after the stores.
    pub counters: serde_json::Map<String, serde_json::Value>,
}

fn mb(pages_per_sec: f64) -> f64 {
    pages_per_sec * PAGE_SIZE as f64 / 1e6
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// How the run was made.
#[derive(Clone, Copy, Debug)]
pub struct How {
    /// Frontswap offsets.
    pub swap_offsets: SwapOffsets,
    /// Clock.
    pub clock: Clock,
}

/// Builds a row.
pub fn row(
    workload: WorkloadArg,
    allocator: AllocatorArg,
    alg: Algorithm,
    o: &Outcome,
    base: &Baseline,
    how: How,
) -> Row {
    let compressed_bytes: u64 = o.held_lens.iter().map(|&l| u64::from(l)).sum();
    let capped: u64 = o
        .held_lens
        .iter()
        .map(|&l| u64::from(l).min(PAGE_SIZE as u64))
        .sum();
    let ideal_frames = capped.div_ceil(PAGE_SIZE as u64);
    let (lz, lb, lr) = if workload == WorkloadArg::Frontswap {
        let (f, r) = linux::zbud_frames(&o.held_lens);
        (Some(linux::zsmalloc_frames(&o.held_lens)), Some(f), Some(r))
    } else {
        (None, None, None)
    };
    let store = o.store.per_sec();
    let load = o.load.per_sec();
    // Bare passes interleaved with this run's stores and loads.
    let bc = o.bare_compress.per_sec();
    let bd = o.bare_decompress.per_sec();
    Row {
        workload: workload.name(),
        allocator: allocator.name(),
        compressor: alg.name(),
        pages: o.pages,
        same_filled_pages: o.same_filled_pages,
        compressed_bytes,
        ideal_frames,
        pool_frames: o.pool_frames_peak,
        metadata_bytes: o.metadata_bytes,
        store_pages_per_sec: store,
        load_pages_per_sec: load,
        bare_compress_pages_per_sec: bc,
        bare_decompress_pages_per_sec: bd,
        verified_pages: o.verified_pages,
        mismatches: o.mismatches,
        evicted_pages: o.evicted_pages,
        baseline_bytes: base.bytes,
        baseline_store_pages_per_sec: base.store.per_sec(),
        baseline_load_pages_per_sec: base.load.per_sec(),
        stored_pages: o.stored_pages,
        rejected_pages: o.rejected_pages,
        missed_loads: o.misses,
        pool_frames_after_stores: o.pool_frames_after_stores,
        frames_after_invalidate: o.frames_after_invalidate,
        frame_limit: o.frame_limit,
        frames_per_ideal: ratio(o.pool_frames_peak as f64, ideal_frames as f64),
        zbytes: o.zbytes,
        zcache_bytes: o.pool_frames_peak * PAGE_SIZE as u64 + o.metadata_bytes,
        linux_zsmalloc_frames: lz,
        linux_zbud_frames: lb,
        linux_zbud_refused: lr,
        store_mb_per_sec: mb(store),
        load_mb_per_sec: mb(load),
        invalidate_pages_per_sec: o.invalidate.per_sec(),
        store_vs_bare: ratio(store, bc),
        load_vs_bare: ratio(load, bd),
        baseline_malloc_bytes: base.malloc_bytes,
        passes: o.store.passes,
        clock: how.clock.scale().short_name(),
        swap_offsets: match how.swap_offsets {
            SwapOffsets::Sequential => "sequential",
            SwapOffsets::Index => "index",
        },
        counters: o
            .counters
            .iter()
            .map(|&(k, v)| (k.to_string(), serde_json::Value::from(v)))
            .collect(),
    }
}

/// The JSON output: the rows as a top-level array.
pub fn json(rows: &[Row]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(rows).map(|s| s + "\n")
}

/// A plain-text table with right-aligned columns (the first `left` left-aligned).
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl Table {
    fn new(head: &[&str], left: usize) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            left,
        }
    }

    fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn render(&self, out: &mut String) {
        let n = self.head.len();
        let mut w = vec![0usize; n];
        for r in std::iter::once(&self.head).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        for r in std::iter::once(&self.head).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate().take(n) {
                if i > 0 {
                    line.push_str("  ");
                }
                if i < self.left {
                    line.push_str(&format!("{c:<width$}", width = w[i]));
                } else {
                    line.push_str(&format!("{c:>width$}", width = w[i]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// Pages per second as `412.3k` / `1.80M`.
pub fn rate(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2}M", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1}k", pps / 1e3)
    } else {
        format!("{pps:.0}")
    }
}

/// Bytes as MiB with one decimal (or KiB for small amounts).
pub fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn x(v: f64) -> String {
    format!("{v:.2}x")
}

/// Everything the table output shows.
pub struct Report<'a> {
    /// Where the pages came from.
    pub description: &'a str,
    /// Pages.
    pub pages: u64,
    /// How frontswap offsets were made.
    pub swap_offsets: SwapOffsets,
    /// The rows.
    pub rows: &'a [Row],
    /// Bare compression per algorithm.
    pub bare: &'a [Bare],
    /// The baseline.
    pub baseline: &'a Baseline,
    /// `--min-time`.
    pub min_time: f64,
    /// The clock.
    pub clock: Clock,
}

impl Report<'_> {
    /// The table output.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "zcache {}: {} ({})\n",
            env!("CARGO_PKG_VERSION"),
            self.description,
            mib(self.pages * PAGE_SIZE as u64)
        ));
        s.push_str(&format!(
            "one thread, timed by {}; each timed pass repeated to >= {} s; keys: {}\n\n",
            self.clock.name(),
            self.min_time,
            match self.swap_offsets {
                SwapOffsets::Index => {
                    "frontswap offset = object_id << 36 | page_index, cleancache (object_id, page_index)"
                }
                SwapOffsets::Sequential => {
                    "frontswap offset = position in the corpus, cleancache (object_id, page_index)"
                }
            }
        ));

        s.push_str(&format!(
            "Density (frames of {} KiB; ideal = compressed bytes / {PAGE_SIZE}; Linux = its layout for the same sizes)\n",
            PAGE_SIZE / 1024
        ));
        let mut t = Table::new(
            &[
                "workload",
                "allocator",
                "comp",
                "pages",
                "stored",
                "same",
                "ratio",
                "frames/ideal",
                "x ideal",
                "Linux zsm",
                "Linux zbud",
                "meta B/pg",
                "B/page",
                "verified",
                "mismatch",
                "evicted",
            ],
            3,
        );
        for r in self.rows {
            let stored_nonsame = (r.stored_pages.saturating_sub(r.same_filled_pages)).max(1);
            let held = if r.workload == "cleancache" {
                r.verified_pages.max(1)
            } else {
                r.stored_pages.max(1)
            };
            let linux = |f: Option<u64>| match f {
                Some(f) if r.ideal_frames > 0 => x(f as f64 / r.ideal_frames as f64),
                _ => "-".to_string(),
            };
            t.push(vec![
                r.workload.to_string(),
                r.allocator.to_string(),
                r.compressor.to_string(),
                r.pages.to_string(),
                r.stored_pages.to_string(),
                r.same_filled_pages.to_string(),
                format!(
                    "{:.2}",
                    if r.compressed_bytes > 0 {
                        (stored_nonsame * PAGE_SIZE as u64) as f64 / r.compressed_bytes as f64
                    } else {
                        0.0
                    }
                ),
                format!(
                    "{}/{}{}",
                    r.pool_frames,
                    r.ideal_frames,
                    r.frame_limit
                        .map(|l| format!(" (max {l})"))
                        .unwrap_or_default()
                ),
                x(r.frames_per_ideal),
                linux(r.linux_zsmalloc_frames),
                linux(r.linux_zbud_frames),
                format!(
                    "{:.1}",
                    r.metadata_bytes as f64 / r.stored_pages.max(1) as f64
                ),
                format!("{:.0}", r.zcache_bytes as f64 / held as f64),
                r.verified_pages.to_string(),
                r.mismatches.to_string(),
                r.evicted_pages.to_string(),
            ]);
        }
        t.render(&mut s);

        s.push_str("\nSpeed (pages/s and MB/s of uncompressed pages; x bare = against bare (de)compression of the same pages)\n");
        let mut t = Table::new(
            &[
                "workload",
                "allocator",
                "comp",
                "store/s",
                "MB/s",
                "x bare",
                "load/s",
                "MB/s",
                "x bare",
                "store x baseline",
                "load x baseline",
            ],
            3,
        );
        for r in self.rows {
            t.push(vec![
                r.workload.to_string(),
                r.allocator.to_string(),
                r.compressor.to_string(),
                rate(r.store_pages_per_sec),
                format!("{:.0}", r.store_mb_per_sec),
                x(r.store_vs_bare),
                rate(r.load_pages_per_sec),
                format!("{:.0}", r.load_mb_per_sec),
                x(r.load_vs_bare),
                x(ratio(r.store_pages_per_sec, r.baseline_store_pages_per_sec)),
                x(ratio(r.load_pages_per_sec, r.baseline_load_pages_per_sec)),
            ]);
        }
        t.render(&mut s);

        s.push_str("\nBare compression of the same pages (every page, one thread)\n");
        let mut t = Table::new(
            &[
                "comp",
                "ratio",
                "mean B",
                "compress/s",
                "MB/s",
                "decompress/s",
                "MB/s",
            ],
            1,
        );
        for b in self.bare {
            let total: u64 = b.lens.iter().map(|&l| u64::from(l)).sum();
            let n = b.lens.len().max(1) as u64;
            t.push(vec![
                b.alg.name().to_string(),
                format!("{:.2}", (n * PAGE_SIZE as u64) as f64 / total.max(1) as f64),
                format!("{:.0}", total as f64 / n as f64),
                rate(b.compress.per_sec()),
                format!("{:.0}", mb(b.compress.per_sec())),
                rate(b.decompress.per_sec()),
                format!("{:.0}", mb(b.decompress.per_sec())),
            ]);
        }
        t.render(&mut s);

        let b = self.baseline;
        let n = b.store.items.max(1);
        s.push_str(&format!(
            "\nBaseline: Mutex<HashMap<u64, Vec<u8>>> of lz4 output on the global allocator: {} heap bytes \
             ({:.0} B/page; {:.0} B/page as glibc malloc chunks); store {}/s ({:.0} MB/s), load {}/s \
             ({:.0} MB/s); verified {}, mismatches {}\n",
            b.bytes,
            b.bytes as f64 / n as f64,
            b.malloc_bytes as f64 / n as f64,
            rate(b.store.per_sec()),
            mb(b.store.per_sec()),
            rate(b.load.per_sec()),
            mb(b.load.per_sec()),
            b.verified_pages,
            b.mismatches
        ));

        if let Some(best) = self
            .rows
            .iter()
            .filter(|r| r.workload == "frontswap" && r.stored_pages > 0)
            .min_by_key(|r| {
                // Least memory per stored page.
                r.zcache_bytes * 1_000_000 / r.stored_pages.max(1)
            })
        {
            let raw = best.stored_pages * PAGE_SIZE as u64;
            let saved = raw.saturating_sub(best.zcache_bytes);
            s.push_str(&format!(
                "\nSaving: with {} + {}, zcache holds the {} stored pages ({}) in {} of frames and metadata: \
                 {} saved ({:.0}%); the baseline holds {} pages in {}.\n",
                best.allocator,
                best.compressor,
                best.stored_pages,
                mib(raw),
                mib(best.zcache_bytes),
                mib(saved),
                100.0 * saved as f64 / raw.max(1) as f64,
                b.store.items,
                mib(b.bytes),
            ));
        }
        let bad: u64 = self.rows.iter().map(|r| r.mismatches).sum();
        if bad > 0 {
            s.push_str(&format!(
                "\nWARNING: {bad} load(s) returned wrong bytes or lost a stored page\n"
            ));
        }
        let leaked: u64 = self.rows.iter().map(|r| r.frames_after_invalidate).sum();
        if leaked > 0 {
            s.push_str(&format!(
                "\nWARNING: {leaked} frame(s) still held after every page was invalidated\n"
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_sizes_read_well() {
        assert_eq!(rate(412_345.0), "412.3k");
        assert_eq!(rate(1_804_000.0), "1.80M");
        assert_eq!(rate(12.0), "12");
        assert_eq!(mib(4 << 20), "4.0 MiB");
        assert_eq!(mib(2048), "2.0 KiB");
    }

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["a", "bb"], 1);
        t.push(vec!["long".into(), "1".into()]);
        let mut s = String::new();
        t.render(&mut s);
        assert_eq!(s, "a     bb\nlong   1\n");
    }
}
