//! The two workloads, run through the zcache library.
//!
//! - frontswap: one swap type; store every page at its key (`Keys::offsets`), load every
//!   page back and compare it byte for byte, then invalidate every page. No frame limit.
//! - cleancache: one private file-system pool; put every page at (object, index) with a
//!   frame limit of half the ideal frames of the whole page set (so eviction, "eat its
//!   own tail", happens), then get every page: a get must return the right bytes or
//!   miss, never other bytes. Then unmount (invalidate_fs).
//!
//! Stores and loads are timed over whole passes (the clock read around the loop, nothing
//! else inside it); each pass starts from a fresh `Zcache`, and passes repeat until
//! stores and loads together have run `--min-time` seconds. Statistics are those of the
//! first pass.

use std::sync::Arc;

use zcache::{Config, Mount, SwapArea, Zcache, file_key_from_inode};
use zcomp::Algorithm;
use zpool::{HeapPageSource, RecyclingSource};

use crate::cli::{AllocatorArg, WorkloadArg};
use crate::error::CliError;
use crate::input::{PAGE_SIZE, Page};
use crate::measure::{Bare, BareRunner, Budget, Keys, Timing};

/// The swap type the frontswap workload uses.
const SWAP_TYPE: u32 = 0;

/// What one (workload, allocator, compressor) run achieved.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Pages offered (stores or puts per pass).
    pub pages: u64,
    /// Stores that succeeded (frontswap), or pages still held after every put
    /// (cleancache), first pass.
    pub stored_pages: u64,
    /// Stores refused (frontswap errors; cleancache: policy or allocation rejects).
    pub rejected_pages: u64,
    /// Same-filled pages held after the stores.
    pub same_filled_pages: u64,
    /// Compressed lengths (bare, this algorithm) of the pages held after the stores that
    /// are not same-filled: the sizes whose sum / PAGE_SIZE is the ideal.
    pub held_lens: Vec<u32>,
    /// zcache's own count of bytes in its allocators (objects with their headers).
    pub zbytes: u64,
    /// Highest frame count during the stores.
    pub pool_frames_peak: u64,
    /// Frames held right after the stores.
    pub pool_frames_after_stores: u64,
    /// Frames held after the pages were invalidated (should be 0).
    pub frames_after_invalidate: u64,
    /// Metadata bytes after the stores.
    pub metadata_bytes: u64,
    /// The frame limit (cleancache).
    pub frame_limit: Option<u64>,
    /// Bare compression passes, interleaved with the store passes.
    pub bare_compress: Timing,
    /// Bare decompression passes, interleaved with the load passes.
    pub bare_decompress: Timing,
    /// Timed stores.
    pub store: Timing,
    /// Timed loads.
    pub load: Timing,
    /// Timed invalidations.
    pub invalidate: Timing,
    /// Loads that returned the right bytes (first pass).
    pub verified_pages: u64,
    /// Loads that returned wrong bytes, failed, or missed a page that a successful
    /// frontswap store made loadable (all passes).
    pub mismatches: u64,
    /// Loads that missed where a miss is allowed (cleancache; rejected frontswap stores),
    /// first pass.
    pub misses: u64,
    /// Pages evicted (first pass).
    pub evicted_pages: u64,
    /// zcache's counters after the stores, by name (first pass).
    pub counters: Vec<(&'static str, i64)>,
}

fn zerr(what: &str) -> impl Fn(zcache::ZcacheError) -> CliError + '_ {
    move |e| CliError::runtime(format!("{what}: {e}"))
}

/// Runs one workload.
pub fn run(
    workload: WorkloadArg,
    allocator: AllocatorArg,
    alg: Algorithm,
    pages: &[Page],
    keys: &Keys,
    bare: &Bare,
    budget: Budget,
) -> Result<Outcome, CliError> {
    let mut config = Config {
        compressor: alg,
        context_hint: zcache::thread_hint,
        ..Config::default()
    };
    match workload {
        WorkloadArg::Frontswap => config.persistent_allocator = allocator.kind(),
        WorkloadArg::Cleancache => {
            config.ephemeral_allocator = allocator.kind();
            config.max_frames = (bare.ideal_frames() / 2).max(1) as usize;
        }
    }
    let mut out = Outcome {
        pages: pages.len() as u64,
        frame_limit: (workload == WorkloadArg::Cleancache).then_some(config.max_frames as u64),
        ..Outcome::default()
    };
    let last = match workload {
        WorkloadArg::Frontswap => &keys.last_offset,
        WorkloadArg::Cleancache => &keys.last_file_key,
    };
    let loads: Vec<usize> = (0..pages.len()).filter(|&i| last[i]).collect();
    out.store.items = pages.len() as u64;
    out.load.items = loads.len() as u64;
    out.invalidate.items = loads.len() as u64;
    let mut loaded = vec![[0u8; PAGE_SIZE]; loads.len()];
    let mut hit = vec![false; loads.len()];
    let mut stored_ok = vec![false; pages.len()];
    let name = format!("{} {} {}", workload.name(), allocator.name(), alg);
    // Bare passes run right before each store and load pass, so that both see the same
    // machine (caches, clock speed, other load) and their ratio is fair.
    let mut runner = BareRunner::new(bare)?;
    out.bare_compress.items = pages.len() as u64;
    out.bare_decompress.items = pages.len() as u64;
    // Frames freed by one pass serve the next, as in a running system (the heap source
    // zeroes each new frame and the C library may hand freed memory back to the kernel).
    let source = Arc::new(
        RecyclingSource::new(HeapPageSource, pages.len())
            .map_err(|_| CliError::runtime("out of memory for the frame cache"))?,
    );
    loop {
        let first = out.store.passes == 0;
        let z = Zcache::new(config, source.clone()).map_err(zerr(&name))?;
        let mut load_errors = 0u64;
        match workload {
            WorkloadArg::Frontswap => {
                // The swap area by value: the hot path a host uses.
                let area = SwapArea::swapon(&z, SWAP_TYPE).map_err(zerr(&name))?;
                let start = budget.clock.now();
                runner.compress_pass(pages)?;
                out.bare_compress.add(budget.clock.now() - start);
                let start = budget.clock.now();
                for ((p, &off), ok) in pages.iter().zip(&keys.offsets).zip(stored_ok.iter_mut()) {
                    *ok = area.store(off, p).is_ok();
                }
                out.store.add(budget.clock.now() - start);
                if first {
                    snapshot(&z, &mut out);
                }
                let start = budget.clock.now();
                runner.decompress_pass()?;
                out.bare_decompress.add(budget.clock.now() - start);
                let start = budget.clock.now();
                for ((&i, buf), h) in loads.iter().zip(loaded.iter_mut()).zip(hit.iter_mut()) {
                    *h = match area.load(keys.offsets[i], buf) {
                        Ok(h) => h,
                        Err(_) => {
                            load_errors += 1;
                            false
                        }
                    };
                }
                out.load.add(budget.clock.now() - start);
                let start = budget.clock.now();
                for &i in &loads {
                    area.invalidate_page(keys.offsets[i]).map_err(zerr(&name))?;
                }
                out.invalidate.add(budget.clock.now() - start);
            }
            WorkloadArg::Cleancache => {
                let mount = Mount::new(&z).map_err(zerr(&name))?;
                let start = budget.clock.now();
                runner.compress_pass(pages)?;
                out.bare_compress.add(budget.clock.now() - start);
                let start = budget.clock.now();
                for (p, &(obj, index)) in pages.iter().zip(&keys.file_keys) {
                    mount.put_page(file_key_from_inode(obj), index, p);
                    // A put refused at the limit wakes the host's reclaim worker; run
                    // inline, its time is part of the put pass.
                    if z.reclaim_wanted() {
                        z.reclaim(256);
                    }
                }
                out.store.add(budget.clock.now() - start);
                if first {
                    snapshot(&z, &mut out);
                }
                let start = budget.clock.now();
                runner.decompress_pass()?;
                out.bare_decompress.add(budget.clock.now() - start);
                let start = budget.clock.now();
                for ((&i, buf), h) in loads.iter().zip(loaded.iter_mut()).zip(hit.iter_mut()) {
                    let (obj, index) = keys.file_keys[i];
                    *h = match mount.try_get_page(file_key_from_inode(obj), index, buf) {
                        Ok(h) => h,
                        Err(_) => {
                            load_errors += 1;
                            false
                        }
                    };
                }
                out.load.add(budget.clock.now() - start);
                let start = budget.clock.now();
                mount.unmount().map_err(zerr(&name))?;
                out.invalidate.add(budget.clock.now() - start);
            }
        }
        if first {
            out.frames_after_invalidate = z.stats().pool_frames as u64;
        }
        // Check every load of this pass.
        let mut good = 0u64;
        let mut bad = load_errors;
        let mut misses = 0u64;
        for ((&i, buf), &h) in loads.iter().zip(&loaded).zip(&hit) {
            let must_hit = workload == WorkloadArg::Frontswap && stored_ok[i];
            if h {
                if *buf == pages[i] && (workload == WorkloadArg::Cleancache || stored_ok[i]) {
                    good += 1;
                } else {
                    bad += 1;
                }
            } else if must_hit {
                bad += 1;
            } else {
                misses += 1;
            }
        }
        out.mismatches += bad;
        if first {
            out.verified_pages = good;
            out.misses = misses;
            // The pages held after the stores: frontswap's accepted stores; cleancache's
            // hits (gets do not evict, so the hits are exactly what the puts left).
            out.held_lens = loads
                .iter()
                .zip(&hit)
                .filter(|&(&i, &h)| match workload {
                    WorkloadArg::Frontswap => stored_ok[i],
                    WorkloadArg::Cleancache => h,
                })
                .filter(|&(&i, _)| !bare.same[i])
                .map(|(&i, _)| bare.lens[i])
                .collect();
            if workload == WorkloadArg::Frontswap {
                out.stored_pages = stored_ok.iter().filter(|&&o| o).count() as u64;
                out.rejected_pages = out.pages - out.stored_pages;
            }
        }
        drop(z);
        if out.store.secs + out.load.secs >= budget.min_time {
            return Ok(out);
        }
    }
}

/// Records the statistics right after the stores of the first pass.
fn snapshot(z: &Zcache, out: &mut Outcome) {
    let s = z.stats();
    let c = s.counters;
    out.same_filled_pages = c.same_filled_pages.max(0) as u64;
    out.zbytes = c.zbytes.max(0) as u64;
    out.pool_frames_peak = s.pool_frames_peak as u64;
    out.pool_frames_after_stores = s.pool_frames as u64;
    out.metadata_bytes = z.metadata_bytes() as u64;
    out.evicted_pages = c.evicted_eph_pages.max(0) as u64;
    out.stored_pages = c.stored_pages.max(0) as u64;
    out.rejected_pages = (c.reject_compress_poor
        + c.reject_mean_compress_poor
        + c.reject_alloc_fail
        + c.reject_no_memory)
        .max(0) as u64;
    out.counters = c.named().to_vec();
}
