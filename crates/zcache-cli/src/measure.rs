//! The measurements that do not need zcache: bare compression and decompression of the
//! pages, and the baseline a user would write instead (a `Mutex<HashMap<u64, Vec<u8>>>`
//! of lz4 output on the global allocator). Also the keys every workload uses.

use std::collections::HashMap;
use std::hash::Hash;
use std::hint::black_box;
use std::sync::{Mutex, PoisonError};

use zcache_testdata::Record;
use zcomp::{Algorithm, AnyCompressor, Compressor};

use crate::cli::SwapOffsets;
use crate::error::CliError;
use crate::heap::HeapCount;
use crate::input::{PAGE_SIZE, Page};

/// Bits of `page_index` kept below `object_id` in an `--swap-offsets index` offset: a
/// 48-bit virtual address is a 36-bit page index.
pub const PACK_INDEX_BITS: u32 = 36;

/// The keys of a page set.
pub struct Keys {
    /// Frontswap offset (and baseline key) of each page.
    pub offsets: Vec<u64>,
    /// How `offsets` were made.
    pub swap_offsets: SwapOffsets,
    /// Cleancache (object, index) of each page: `(object_id, page_index)`.
    pub file_keys: Vec<(u64, u64)>,
    /// Pages whose offset is not stored again later (the ones a load must return).
    pub last_offset: Vec<bool>,
    /// Pages whose file key is not stored again later.
    pub last_file_key: Vec<bool>,
}

impl Keys {
    /// Keys from the corpus index: cleancache keys are the records' (object_id,
    /// page_index); frontswap offsets as `mode` says. `SwapOffsets::Index` falls back to
    /// `Sequential` when a record does not fit the packing.
    pub fn new(records: &[Record], mode: SwapOffsets) -> Keys {
        let fits = records.iter().all(|r| {
            r.page_index < 1 << PACK_INDEX_BITS && r.object_id < 1 << (64 - PACK_INDEX_BITS)
        });
        let mode = if mode == SwapOffsets::Index && !fits {
            SwapOffsets::Sequential
        } else {
            mode
        };
        let offsets: Vec<u64> = records
            .iter()
            .enumerate()
            .map(|(i, r)| match mode {
                SwapOffsets::Index => (u64::from(r.object_id) << PACK_INDEX_BITS) | r.page_index,
                SwapOffsets::Sequential => i as u64,
            })
            .collect();
        let file_keys: Vec<(u64, u64)> = records
            .iter()
            .map(|r| (u64::from(r.object_id), r.page_index))
            .collect();
        Keys {
            last_offset: last_occurrences(&offsets),
            last_file_key: last_occurrences(&file_keys),
            offsets,
            swap_offsets: mode,
            file_keys,
        }
    }
}

/// For each position, whether no later position has the same key.
fn last_occurrences<K: Hash + Eq + Copy>(keys: &[K]) -> Vec<bool> {
    let mut last: HashMap<K, usize> = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        last.insert(*k, i);
    }
    keys.iter()
        .enumerate()
        .map(|(i, k)| last.get(k) == Some(&i))
        .collect()
}

/// Accumulated time of a repeated pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Passes run.
    pub passes: u32,
    /// Seconds, summed over the passes.
    pub secs: f64,
    /// Items per pass.
    pub items: u64,
}

impl Timing {
    /// Items per second over all passes.
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.items as f64 * f64::from(self.passes) / self.secs
        } else {
            0.0
        }
    }

    /// Adds one pass of `secs`.
    pub fn add(&mut self, secs: f64) {
        self.passes += 1;
        self.secs += secs;
    }
}

/// Which clock times the passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Clock {
    /// CPU time of the measuring thread (`CLOCK_THREAD_CPUTIME_ID`): what one core
    /// achieves, whatever else the machine runs.
    Cpu,
    /// Wall-clock time (`Instant`).
    Wall,
}

impl Clock {
    /// The shared runner's clock of the same name.
    pub fn scale(self) -> zcache_scale::Clock {
        match self {
            Clock::Cpu => zcache_scale::Clock::Cpu,
            Clock::Wall => zcache_scale::Clock::Wall,
        }
    }

    /// Seconds on this clock since an arbitrary start.
    pub fn now(self) -> f64 {
        self.scale().now()
    }

    /// The clock's name in reports.
    pub fn name(self) -> &'static str {
        self.scale().name()
    }
}

/// How long to measure and with which clock.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// The clock.
    pub clock: Clock,
    /// Seconds each timed measurement runs at least (repeating passes).
    pub min_time: f64,
}

/// Runs `pass` (timed) until `budget.min_time` seconds have accumulated, at least once.
fn repeat(
    budget: Budget,
    items: u64,
    mut pass: impl FnMut() -> Result<(), CliError>,
) -> Result<Timing, CliError> {
    let mut t = Timing {
        items,
        ..Timing::default()
    };
    loop {
        let start = budget.clock.now();
        pass()?;
        t.add(budget.clock.now() - start);
        if t.secs >= budget.min_time {
            return Ok(t);
        }
    }
}

/// A new compressor, or a runtime error naming it.
pub fn compressor(alg: Algorithm) -> Result<AnyCompressor, CliError> {
    AnyCompressor::new(alg).map_err(|e| CliError::runtime(format!("{alg} compressor: {e}")))
}

/// Bare compression and decompression of every page with one algorithm, on one thread.
#[derive(Clone, Debug)]
pub struct Bare {
    /// The algorithm.
    pub alg: Algorithm,
    /// Compressed length of every page.
    pub lens: Vec<u32>,
    /// Whether each page is same-filled (zcache stores those as their word).
    pub same: Vec<bool>,
    /// Every page's compressed bytes, one after the other.
    stream: Vec<u8>,
    /// Compression of every page (measured on its own).
    pub compress: Timing,
    /// Decompression of every page (measured on its own).
    pub decompress: Timing,
}

impl Bare {
    /// Ideal frames for every page that is not same-filled (lengths capped at a page).
    pub fn ideal_frames(&self) -> u64 {
        let capped: u64 = self
            .lens
            .iter()
            .zip(&self.same)
            .filter(|(_, s)| !**s)
            .map(|(&l, _)| u64::from(l).min(PAGE_SIZE as u64))
            .sum();
        capped.div_ceil(PAGE_SIZE as u64)
    }
}

/// Runs bare passes: a compressor, its scratch buffer and an output page.
pub struct BareRunner<'a> {
    bare: &'a Bare,
    c: AnyCompressor,
    scratch: Vec<u8>,
    out: Box<Page>,
}

impl<'a> BareRunner<'a> {
    /// A runner for `bare`'s algorithm.
    pub fn new(bare: &'a Bare) -> Result<BareRunner<'a>, CliError> {
        Ok(BareRunner {
            bare,
            c: compressor(bare.alg)?,
            scratch: vec![0u8; bare.alg.max_compressed_len()],
            out: Box::new([0u8; PAGE_SIZE]),
        })
    }

    fn err(&self, e: &dyn std::fmt::Display) -> CliError {
        CliError::runtime(format!("{}: {e}", self.bare.alg))
    }

    /// Compresses every page into the scratch buffer (nothing kept).
    pub fn compress_pass(&mut self, pages: &[Page]) -> Result<(), CliError> {
        for p in pages {
            match self.c.compress(black_box(p), &mut self.scratch) {
                Ok(len) => {
                    black_box(len);
                }
                Err(e) => return Err(self.err(&e)),
            }
        }
        Ok(())
    }

    /// Decompresses every page's compressed bytes into one output page.
    pub fn decompress_pass(&mut self) -> Result<(), CliError> {
        let mut at = 0usize;
        for &l in &self.bare.lens {
            let src = &self.bare.stream[at..at + l as usize];
            if let Err(e) = self.c.decompress(black_box(src), &mut self.out) {
                return Err(self.err(&e));
            }
            black_box(&self.out);
            at += l as usize;
        }
        Ok(())
    }
}

/// Measures bare compression and decompression of `pages` with `alg`.
pub fn bare(pages: &[Page], alg: Algorithm, budget: Budget) -> Result<Bare, CliError> {
    let mut c = compressor(alg)?;
    let mut scratch = vec![0u8; alg.max_compressed_len()];
    let err = |e: &dyn std::fmt::Display| CliError::runtime(format!("{alg}: {e}"));
    // Untimed first pass (also the warm-up): lengths and the compressed stream, each
    // page checked to come back exactly.
    let mut lens = Vec::with_capacity(pages.len());
    let mut stream = Vec::new();
    let mut out = Box::new([0u8; PAGE_SIZE]);
    for (i, p) in pages.iter().enumerate() {
        let n = c.compress(p, &mut scratch).map_err(|e| err(&e))?;
        c.decompress(&scratch[..n], &mut out).map_err(|e| err(&e))?;
        if *out != *p {
            return Err(CliError::runtime(format!(
                "{alg}: page {i} did not survive a bare compress/decompress round trip"
            )));
        }
        stream.extend_from_slice(&scratch[..n]);
        lens.push(n as u32);
    }
    let same = pages
        .iter()
        .map(|p| zcomp::same_filled(p).is_some())
        .collect();
    let mut bare = Bare {
        alg,
        lens,
        same,
        stream,
        compress: Timing::default(),
        decompress: Timing::default(),
    };
    let n = pages.len() as u64;
    let mut r = BareRunner::new(&bare)?;
    let compress = repeat(budget, n, || r.compress_pass(pages))?;
    let decompress = repeat(budget, n, || r.decompress_pass())?;
    bare.compress = compress;
    bare.decompress = decompress;
    Ok(bare)
}

/// What the baseline (a locked `HashMap<u64, Vec<u8>>` of lz4 output) achieved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Baseline {
    /// Heap bytes the map held after every store (bytes asked of the allocator: the
    /// table and every `Vec`), measured by the counting global allocator.
    pub bytes: u64,
    /// The same allocations as a glibc-style malloc would take them (chunk headers and
    /// 16-byte rounding).
    pub malloc_bytes: u64,
    /// Stores.
    pub store: Timing,
    /// Loads.
    pub load: Timing,
    /// Loads that returned the right bytes (first pass).
    pub verified_pages: u64,
    /// Loads that returned wrong bytes or nothing (every pass).
    pub mismatches: u64,
}

/// Measures the baseline on `pages` keyed by `keys.offsets`.
pub fn baseline(pages: &[Page], keys: &Keys, budget: Budget) -> Result<Baseline, CliError> {
    let alg = Algorithm::Lz4;
    let mut c = compressor(alg)?;
    let mut scratch = vec![0u8; alg.max_compressed_len()];
    let err = |e: &dyn std::fmt::Display| CliError::runtime(format!("baseline lz4: {e}"));
    let loads: Vec<usize> = (0..pages.len()).filter(|&i| keys.last_offset[i]).collect();
    let mut out = vec![[0u8; PAGE_SIZE]; loads.len()];
    let mut b = Baseline {
        store: Timing {
            items: pages.len() as u64,
            ..Timing::default()
        },
        load: Timing {
            items: loads.len() as u64,
            ..Timing::default()
        },
        ..Baseline::default()
    };
    loop {
        let before = HeapCount::now();
        let map: Mutex<HashMap<u64, Vec<u8>>> = Mutex::new(HashMap::new());
        let start = budget.clock.now();
        for (p, &k) in pages.iter().zip(&keys.offsets) {
            let n = c.compress(p, &mut scratch).map_err(|e| err(&e))?;
            let v = scratch[..n].to_vec();
            map.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(k, v);
        }
        b.store.add(budget.clock.now() - start);
        if b.store.passes == 1 {
            let held = HeapCount::now().since(before);
            b.bytes = held.requested.max(0) as u64;
            b.malloc_bytes = held.malloc.max(0) as u64;
        }
        let mut hits = vec![false; loads.len()];
        let start = budget.clock.now();
        for ((&i, o), hit) in loads.iter().zip(out.iter_mut()).zip(hits.iter_mut()) {
            let g = map.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = g.get(&keys.offsets[i]) {
                c.decompress(v, o).map_err(|e| err(&e))?;
                *hit = true;
            }
        }
        b.load.add(budget.clock.now() - start);
        let good = loads
            .iter()
            .zip(&out)
            .zip(&hits)
            .filter(|((i, o), h)| **h && **o == pages[**i])
            .count() as u64;
        if b.load.passes == 1 {
            b.verified_pages = good;
        }
        b.mismatches += loads.len() as u64 - good;
        drop(map);
        if b.store.secs + b.load.secs >= budget.min_time {
            return Ok(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(object_id: u32, page_index: u64) -> Record {
        Record {
            source_id: 0,
            flags: 0,
            object_id,
            page_index,
        }
    }

    #[test]
    fn keys_follow_the_index_and_mark_the_last_store_of_each() {
        let recs = [rec(1, 5), rec(2, 5), rec(1, 5)];
        let k = Keys::new(&recs, SwapOffsets::Index);
        assert_eq!(k.swap_offsets, SwapOffsets::Index);
        assert_eq!(k.offsets, vec![(1 << 36) | 5, (2 << 36) | 5, (1 << 36) | 5]);
        assert_eq!(k.last_offset, vec![false, true, true]);
        assert_eq!(k.last_file_key, vec![false, true, true]);
        let k = Keys::new(&recs, SwapOffsets::Sequential);
        assert_eq!(k.offsets, vec![0, 1, 2]);
        assert_eq!(k.last_offset, vec![true, true, true]);
        assert_eq!(k.last_file_key, vec![false, true, true]);
        // An index that does not fit the packing falls back to positions.
        let k = Keys::new(&[rec(1, 1 << 40), rec(1, 1 << 40)], SwapOffsets::Index);
        assert_eq!(k.swap_offsets, SwapOffsets::Sequential);
        assert_eq!(k.offsets, vec![0, 1]);
        assert_eq!(k.file_keys[0], k.file_keys[1]);
    }

    #[test]
    fn bare_and_baseline_round_trip_the_sample() {
        let set = crate::input::embedded_sample().expect("sample");
        // 64 pages (the embedded sample has 33 at 64 KiB).
        let n = set.len().min(64);
        let pages = &set.pages[..n];
        let budget = Budget {
            clock: Clock::Cpu,
            min_time: 0.0,
        };
        let b = bare(pages, Algorithm::Lz4, budget).expect("bare");
        assert_eq!(b.lens.len(), n);
        assert_eq!(b.compress.passes, 1);
        assert!(b.ideal_frames() <= n as u64);
        let keys = Keys::new(&set.records[..n], SwapOffsets::Sequential);
        let base = baseline(pages, &keys, budget).expect("baseline");
        assert_eq!(base.verified_pages, n as u64);
        assert_eq!(base.mismatches, 0);
        // It holds at least the compressed bytes.
        assert!(base.bytes >= b.lens.iter().map(|&l| u64::from(l)).sum::<u64>());
        assert!(base.malloc_bytes >= base.bytes);
        // Both clocks tick.
        for clock in [Clock::Cpu, Clock::Wall] {
            let t0 = clock.now();
            let b = bare(
                pages,
                Algorithm::Lz4,
                Budget {
                    clock,
                    min_time: 0.01,
                },
            )
            .expect("bare");
            assert!(clock.now() > t0);
            assert!(b.compress.secs >= 0.01 && b.compress.per_sec() > 0.0);
        }
    }
}
