//! The hot path at real sizes (issue 13): frontswap over many swap slots and cleancache
//! over many files, at N stored pages (10^4 to 10^6 and beyond), one thread, against
//! bare compression of the same pages that is equally fair at every size.
//!
//! One runner for both of its callers: `cargo bench -p zcache --bench scale` (the dev
//! corpus, `Config::default()`) and `zcache bench --scale N` (the user's pages,
//! allocator and compressor).
//!
//! The input pages are reused under distinct keys: page k of a pass is input page
//! `k % pages.len()`, so N pages are never held uncompressed.
//! * frontswap, through a `SwapArea`: store slots 0..N in order, load them all in a
//!   random order, invalidate them all;
//! * cleancache, through a `Mount`: files of 1-64 pages (sizes drawn at random) up to
//!   N pages; put every page, get every page in a random order (a private pool's get
//!   is exclusive), put them all again, then invalidate file by file.
//!
//! Every load is checked against its input page, byte for byte, inside the timed pass:
//! a frontswap load of an accepted store must return the page, one of a refused store
//! must miss; a cleancache get returns the page or misses. Anything else counts as a
//! mismatch ([`Row::failures`]).
//!
//! The bare passes: the same compressor compresses the same N pages in the same order,
//! keeping every output (memory of the same total size), then decompresses them in the
//! load pass's order, comparing each page with its input as the load pass does. They
//! run after the zcache pass, once its cache is dropped, so at most one of the two
//! holds N compressed pages.
//!
//! Rounds: a sweep may run each (size, setup) several times over the same draws (the
//! same files and load order), each round a fresh cache and fresh bare passes, and add
//! a row of the medians of the rounds' figures. On a shared machine one run's ratios
//! move by 0.1 and more from run to run (docs/performance-scale.md, "What the load gap is
//! not"); the median of alternated rounds in one process is the figure to quote.
//!
//! Reported per page: zcache's store, load and invalidate; the bare compress and
//! decompress; the ratios (zcache pages/s over bare pages/s, the 0.95x bar) and
//! the cost beyond compression; metadata bytes per stored page
//! (`Zcache::metadata_bytes`).

use std::fmt;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;
use zcache::{
    AllocatorKind, Config, Mount, Oid, PAGE_SIZE, Page, SwapArea, Zcache, ZcacheError,
    file_key_from_inode,
};
use zcomp::{Algorithm, AnyCompressor, Compressor};
use zpool::BlockPageSource;

mod median;
mod table;

pub use median::median;
pub use table::{header, line, parts_header, parts_line};

/// The sizes the scale bench runs by default.
pub const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// The seed of the key and order draws (the same runs draw the same files and orders).
pub const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Swap slots through a `SwapArea` (a persistent pool).
    Frontswap,
    /// Files through a `Mount` (an ephemeral private pool).
    Cleancache,
}

impl Workload {
    /// Both, in report order.
    pub const ALL: [Workload; 2] = [Workload::Frontswap, Workload::Cleancache];

    /// The workload's name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Frontswap => "frontswap",
            Workload::Cleancache => "cleancache",
        }
    }
}

/// Which clock times the passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// CPU time of the measuring thread (`CLOCK_THREAD_CPUTIME_ID`): what one core
    /// achieves, whatever else the machine runs.
    Cpu,
    /// Wall-clock time (`Instant`).
    Wall,
}

impl Clock {
    /// Seconds on this clock since an arbitrary start.
    pub fn now(self) -> f64 {
        match self {
            Clock::Cpu => thread_cpu_secs(),
            Clock::Wall => {
                static EPOCH: OnceLock<Instant> = OnceLock::new();
                EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64()
            }
        }
    }

    /// The clock's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Cpu => "thread CPU time",
            Clock::Wall => "wall-clock time",
        }
    }

    /// The clock's short name (JSON).
    pub fn short_name(self) -> &'static str {
        match self {
            Clock::Cpu => "cpu",
            Clock::Wall => "wall",
        }
    }

    /// Seconds `f` takes on this clock.
    fn time(self, f: impl FnOnce()) -> f64 {
        let t = self.now();
        f();
        self.now() - t
    }
}

/// CPU time consumed by the calling thread, seconds (0 if the clock cannot be read).
pub fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every Linux since 2.6.12 supports.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The xorshift generator of file sizes and load orders.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (not 0).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A random permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            v.swap(i, (self.next_u64() % (i as u64 + 1)) as usize);
        }
        v
    }
}

/// What one run measures.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// The workload.
    pub workload: Workload,
    /// zcache's compressor, and the bare passes'.
    pub compressor: Algorithm,
    /// The workload's allocator; `None`: `Config::default()`'s (zsmalloc for
    /// frontswap, zbud for cleancache).
    pub allocator: Option<AllocatorKind>,
    /// The clock.
    pub clock: Clock,
}

impl Setup {
    /// The scale bench's run of `workload`: lz4, the default allocator, thread CPU time.
    pub fn new(workload: Workload) -> Setup {
        Setup {
            workload,
            compressor: Algorithm::Lz4,
            allocator: None,
            clock: Clock::Cpu,
        }
    }

    /// The cache's configuration: `Config::default()` with this compressor and
    /// allocator.
    fn config(&self) -> Config {
        let mut c = Config {
            compressor: self.compressor,
            ..Config::default()
        };
        if let Some(a) = self.allocator {
            match self.workload {
                Workload::Frontswap => c.persistent_allocator = a,
                Workload::Cleancache => c.ephemeral_allocator = a,
            }
        }
        c
    }

    /// The allocator the run uses.
    pub fn allocator_kind(&self) -> AllocatorKind {
        let c = self.config();
        match self.workload {
            Workload::Frontswap => c.persistent_allocator,
            Workload::Cleancache => c.ephemeral_allocator,
        }
    }
}

/// A failure that stops a run (a cache that cannot be made, a compressor that fails).
#[derive(Debug)]
pub struct ScaleError(String);

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScaleError {}

fn zerr(what: &'static str) -> impl Fn(ZcacheError) -> ScaleError {
    move |e| ScaleError(format!("{what}: {e}"))
}

/// One run's result: the table's line, the JSON object key for key.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `frontswap` or `cleancache`.
    pub workload: &'static str,
    /// `zbud` or `zsmalloc`.
    pub allocator: &'static str,
    /// `lz4`, `deflate`, `lzo` or `zstd` (zcache's and the bare passes').
    pub compressor: &'static str,
    /// Pages stored (N).
    pub pages: u64,
    /// Input pages they are drawn from (page k is input page k mod this).
    pub distinct_pages: u64,
    /// zcache's store (put), µs per page.
    pub store_us: f64,
    /// Bare compression, µs per page.
    pub compress_us: f64,
    /// zcache's stores per second over bare compressions per second.
    pub store_vs_bare: f64,
    /// `store_us - compress_us`: the cost beyond compression.
    pub store_beyond_us: f64,
    /// zcache's load (get), µs per page.
    pub load_us: f64,
    /// Bare decompression, µs per page.
    pub decompress_us: f64,
    /// zcache's loads per second over bare decompressions per second.
    pub load_vs_bare: f64,
    /// `load_us - decompress_us`.
    pub load_beyond_us: f64,
    /// Invalidation, µs per page held (cleancache: by file).
    pub invalidate_us: f64,
    /// Metadata bytes per stored page after the stores.
    pub metadata_bytes_per_page: f64,
    /// The same, by part ([`zcache::MetadataParts`]): they add up to
    /// `metadata_bytes_per_page`.
    pub metadata_parts_per_page: MetaParts,
    /// Pages zcache held after the stores (the rest were refused: poor compression).
    pub stored_pages: u64,
    /// Loads that returned the input page byte for byte.
    pub verified_pages: u64,
    /// Loads that missed where a miss is right (a refused store; cleancache).
    pub missed_loads: u64,
    /// Loads that returned wrong bytes, failed, missed an accepted frontswap store, or
    /// hit a refused one.
    pub mismatches: u64,
    /// Pages still stored after everything was invalidated (should be 0).
    pub pages_after_invalidate: u64,
    /// Frames still held after everything was invalidated (should be 0).
    pub frames_after_invalidate: u64,
    /// The clock (`cpu` or `wall`).
    pub clock: &'static str,
    /// The round (1-based), or 0 for the row of medians of the rounds before it.
    pub round: u32,
    /// Rounds the figures are the median of: 1 for a round's own row.
    pub median_of: u32,
}

impl Row {
    /// Wrong loads plus pages and frames left after invalidation: 0 for a good run.
    pub fn failures(&self) -> u64 {
        self.mismatches + self.pages_after_invalidate + self.frames_after_invalidate
    }
}

/// The checks of the loads of one pass.
#[derive(Clone, Copy, Debug, Default)]
struct Check {
    verified: u64,
    missed: u64,
    mismatches: u64,
}

impl Check {
    /// Counts one load that returned `got` into `page` where `want` was stored; a hit
    /// is right if `hit_ok`, a miss if `miss_ok`.
    #[inline]
    fn load(
        &mut self,
        got: Result<bool, ZcacheError>,
        (page, want): (&Page, &Page),
        hit_ok: bool,
        miss_ok: bool,
    ) {
        match got {
            Ok(true) if hit_ok && page == want => self.verified += 1,
            Ok(false) if miss_ok => self.missed += 1,
            _ => self.mismatches += 1,
        }
    }
}

/// [`zcache::MetadataParts`] per stored page.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MetaParts {
    /// tmem's tree nodes (leaves hold the descriptors).
    pub tree_nodes: f64,
    /// tmem's pools, buckets and object maps.
    pub object_maps: f64,
    /// zsmalloc's handle tables.
    pub handle_tables: f64,
    /// zsmalloc's frame tables (4 bytes a frame a zspage may hold).
    pub frame_lists: f64,
    /// zsmalloc's zspage descriptors, bitmaps and fixed part.
    pub zspages: f64,
    /// zbud's metadata.
    pub zbud: f64,
    /// The reclaim rings.
    pub rings: f64,
    /// The fill-word table.
    pub fill_table: f64,
}

impl MetaParts {
    fn of(p: &zcache::MetadataParts, pages: u64) -> MetaParts {
        let per = |b: usize| b as f64 / pages.max(1) as f64;
        MetaParts {
            tree_nodes: per(p.tree_nodes),
            object_maps: per(p.object_maps),
            handle_tables: per(p.handle_tables),
            frame_lists: per(p.frame_lists),
            zspages: per(p.zspages),
            zbud: per(p.zbud),
            rings: per(p.rings),
            fill_table: per(p.fill_table),
        }
    }
}

/// zcache's state right after the stores.
#[derive(Clone, Copy, Debug)]
struct AfterStores {
    /// Metadata bytes per stored page.
    meta: f64,
    /// The same by part.
    parts: MetaParts,
    /// Pages held.
    stored: u64,
}

impl AfterStores {
    fn of(z: &Zcache) -> AfterStores {
        let parts = z.metadata_parts();
        let stored = z.stored_pages().max(1) as u64;
        AfterStores {
            meta: parts.total() as f64 / stored as f64,
            parts: MetaParts::of(&parts, stored),
            stored: z.stored_pages().max(0) as u64,
        }
    }
}

/// What the zcache pass of one run measured.
struct Measured {
    /// Seconds of the store, load and invalidate passes (invalidate: scaled to N).
    secs: (f64, f64, f64),
    after_stores: AfterStores,
    check: Check,
    /// The load pass's order.
    order: Vec<usize>,
}

fn frontswap(
    z: &Zcache,
    clock: Clock,
    pages: &[Page],
    n: usize,
    rng: &mut Rng,
) -> Result<Measured, ScaleError> {
    let area = SwapArea::swapon(z, 0).map_err(zerr("swapon"))?;
    let order = rng.permutation(n);
    let mut stored_ok = vec![false; n];
    let store = clock.time(|| {
        for (k, ok) in stored_ok.iter_mut().enumerate() {
            *ok = area.store(k as u64, &pages[k % pages.len()]).is_ok();
        }
    });
    let after_stores = AfterStores::of(z);
    let mut page: Box<Page> = Box::new([0; PAGE_SIZE]);
    let mut check = Check::default();
    let load = clock.time(|| {
        for &k in &order {
            let got = area.load(k as u64, &mut page);
            let ok = stored_ok[k];
            check.load(got, (&page, &pages[k % pages.len()]), ok, !ok);
        }
    });
    let mut failed = None;
    let invalidate = clock.time(|| {
        for k in 0..n {
            if let Err(e) = area.invalidate_page(k as u64) {
                failed.get_or_insert(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(zerr("frontswap invalidate")(e));
    }
    Ok(Measured {
        secs: (store, load, invalidate),
        after_stores,
        check,
        order,
    })
}

fn cleancache(
    z: &Zcache,
    clock: Clock,
    pages: &[Page],
    n: usize,
    rng: &mut Rng,
) -> Result<Measured, ScaleError> {
    let mount = Mount::new(z).map_err(zerr("mount"))?;
    // (file, index) of page k: files of 1-64 pages.
    let mut keys: Vec<(Oid, u64)> = Vec::with_capacity(n);
    let mut files = Vec::new();
    let mut ino = 1u64;
    while keys.len() < n {
        let len = 1 + rng.next_u64() % 64;
        files.push(file_key_from_inode(ino));
        for i in 0..len.min((n - keys.len()) as u64) {
            keys.push((file_key_from_inode(ino), i));
        }
        ino += 1;
    }
    let order = rng.permutation(n);
    let put = |m: &Mount<&Zcache>| {
        for (k, &(f, i)) in keys.iter().enumerate() {
            m.put_page(f, i, &pages[k % pages.len()]);
        }
    };
    let store = clock.time(|| put(&mount));
    let after_stores = AfterStores::of(z);
    let mut page: Box<Page> = Box::new([0; PAGE_SIZE]);
    let mut check = Check::default();
    let load = clock.time(|| {
        for &k in &order {
            let (f, i) = keys[k];
            let got = mount.try_get_page(f, i, &mut page);
            check.load(got, (&page, &pages[k % pages.len()]), true, true);
        }
    });
    put(&mount);
    let held = z.stored_pages().max(1) as f64;
    let invalidate = clock.time(|| {
        for f in &files {
            mount.invalidate_inode(*f);
        }
    }) * n as f64
        / held;
    Ok(Measured {
        secs: (store, load, invalidate),
        after_stores,
        check,
        order,
    })
}

/// The bare passes: compress `n` pages in order keeping every output, then decompress
/// them in `order`, comparing each with its input page. Returns (compress s,
/// decompress s).
fn bare(
    setup: &Setup,
    pages: &[Page],
    n: usize,
    order: &[usize],
) -> Result<(f64, f64), ScaleError> {
    let alg = setup.compressor;
    let mut comp = AnyCompressor::new(alg).map_err(|e| ScaleError(format!("{alg}: {e}")))?;
    let mut buf = vec![0u8; alg.max_compressed_len()];
    let mut outs: Vec<Box<[u8]>> = Vec::with_capacity(n);
    let c = setup.clock.time(|| {
        for k in 0..n {
            // A page that does not compress is kept as nothing (zcache refuses it too).
            let len = comp
                .compress(&pages[k % pages.len()], &mut buf)
                .unwrap_or(0);
            outs.push(buf[..len].into());
        }
    });
    let mut page: Box<Page> = Box::new([0; PAGE_SIZE]);
    let mut bad = 0u64;
    let d = setup.clock.time(|| {
        for &k in order {
            if !outs[k].is_empty() {
                let ok = comp.decompress(&outs[k], &mut page).is_ok();
                if !ok || *page != pages[k % pages.len()] {
                    bad += 1;
                }
            }
            black_box(&page);
        }
    });
    if bad > 0 {
        return Err(ScaleError(format!(
            "bare {alg}: {bad} page(s) did not survive a compress/decompress round trip"
        )));
    }
    Ok((c, d))
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Runs `setup` at `n` pages drawn from `pages` (page k is `pages[k % pages.len()]`).
pub fn run(setup: &Setup, pages: &[Page], n: usize, rng: &mut Rng) -> Result<Row, ScaleError> {
    if pages.is_empty() || n == 0 {
        return Err(ScaleError("a scaled run needs at least one page".into()));
    }
    let z = Zcache::new(setup.config(), BlockPageSource::new()).map_err(zerr("zcache"))?;
    let m = match setup.workload {
        Workload::Frontswap => frontswap(&z, setup.clock, pages, n, rng)?,
        Workload::Cleancache => cleancache(&z, setup.clock, pages, n, rng)?,
    };
    let pages_left = z.stored_pages().max(0) as u64;
    let frames_left = z.stats().pool_frames as u64;
    // The cache is gone: the bare passes have the memory to themselves.
    drop(z);
    let (compress, decompress) = bare(setup, pages, n, &m.order)?;
    let us = |s: f64| s / n as f64 * 1e6;
    let (store, load, invalidate) = m.secs;
    Ok(Row {
        workload: setup.workload.name(),
        allocator: setup.allocator_kind().name(),
        compressor: setup.compressor.name(),
        pages: n as u64,
        distinct_pages: pages.len() as u64,
        store_us: us(store),
        compress_us: us(compress),
        store_vs_bare: ratio(compress, store),
        store_beyond_us: us(store - compress),
        load_us: us(load),
        decompress_us: us(decompress),
        load_vs_bare: ratio(decompress, load),
        load_beyond_us: us(load - decompress),
        invalidate_us: us(invalidate),
        metadata_bytes_per_page: m.after_stores.meta,
        metadata_parts_per_page: m.after_stores.parts,
        stored_pages: m.after_stores.stored,
        verified_pages: m.check.verified,
        missed_loads: m.check.missed,
        mismatches: m.check.mismatches,
        pages_after_invalidate: pages_left,
        frames_after_invalidate: frames_left,
        clock: setup.clock.short_name(),
        round: 1,
        median_of: 1,
    })
}

/// Runs every setup at every size (sizes outermost), one draw sequence from [`SEED`],
/// handing each row to `each` as it is done; returns them all.
///
/// Each (size, setup) runs `rounds` times (at least once) on the same draws, one round
/// after the other, each with a fresh cache; with more than one round a row of their
/// medians ([`median`]) follows the rounds' rows. One round draws exactly what a
/// sweep of one round draws.
pub fn sweep(
    pages: &[Page],
    sizes: &[usize],
    setups: &[Setup],
    rounds: usize,
    mut each: impl FnMut(&Row),
) -> Result<Vec<Row>, ScaleError> {
    let rounds = rounds.max(1);
    let mut rng = Rng::new(SEED);
    let mut rows = Vec::with_capacity(sizes.len() * setups.len() * (rounds + 1));
    for &n in sizes {
        for s in setups {
            let start = rng.clone();
            let mut these = Vec::with_capacity(rounds);
            for r in 1..=rounds {
                rng = start.clone();
                let mut row = run(s, pages, n, &mut rng)?;
                row.round = r as u32;
                each(&row);
                these.push(row);
            }
            if rounds > 1
                && let Some(m) = median(&these)
            {
                each(&m);
                these.push(m);
            }
            rows.append(&mut these);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::median::median_of;
    use super::*;

    /// 40 pages: half text-like, a few same-filled, a few that do not compress.
    fn pages() -> Vec<Page> {
        let mut rng = Rng::new(7);
        (0..40u64)
            .map(|i| {
                let mut p = [0u8; PAGE_SIZE];
                match i % 4 {
                    0 => p.fill(i as u8),
                    1 => p.iter_mut().for_each(|b| *b = rng.next_u64() as u8),
                    _ => {
                        for (j, b) in p.iter_mut().enumerate() {
                            *b = b"the quick brown fox "[(j + i as usize) % 20];
                        }
                    }
                }
                p
            })
            .collect()
    }

    #[test]
    fn every_workload_and_allocator_verifies_every_load_and_leaves_nothing() {
        let pages = pages();
        let n = 1000;
        for w in Workload::ALL {
            for a in [
                None,
                Some(AllocatorKind::Zbud),
                Some(AllocatorKind::Zsmalloc),
            ] {
                let s = Setup {
                    allocator: a,
                    ..Setup::new(w)
                };
                let r = run(&s, &pages, n, &mut Rng::new(SEED)).expect("runs");
                assert_eq!(r.failures(), 0, "{r:?}");
                assert_eq!(r.pages, n as u64);
                assert_eq!(r.distinct_pages, 40);
                // Every load is accounted for; a quarter of the pages do not compress
                // and are refused, the rest load back.
                assert_eq!(r.verified_pages + r.missed_loads, n as u64, "{r:?}");
                assert_eq!(r.verified_pages, r.stored_pages, "{r:?}");
                assert_eq!(r.missed_loads, n as u64 / 4, "{r:?}");
                assert!(r.store_us > 0.0 && r.compress_us > 0.0 && r.load_us > 0.0);
                assert!(r.metadata_bytes_per_page > 0.0);
                let p = &r.metadata_parts_per_page;
                let sum = p.tree_nodes
                    + p.object_maps
                    + p.handle_tables
                    + p.frame_lists
                    + p.zspages
                    + p.zbud
                    + p.rings
                    + p.fill_table;
                assert!((sum - r.metadata_bytes_per_page).abs() < 1e-6, "{r:?}");
                assert!(parts_line(&r).starts_with(r.workload));
                if a.is_none() {
                    let default = match w {
                        Workload::Frontswap => "zsmalloc",
                        Workload::Cleancache => "zbud",
                    };
                    assert_eq!(r.allocator, default);
                }
            }
        }
    }

    #[test]
    fn wrong_bytes_count_as_mismatches() {
        let a = [1u8; PAGE_SIZE];
        let b = [2u8; PAGE_SIZE];
        let mut c = Check::default();
        c.load(Ok(true), (&a, &a), true, false);
        c.load(Ok(true), (&a, &b), true, true);
        c.load(Ok(false), (&a, &a), true, false);
        c.load(Ok(true), (&a, &a), false, true);
        c.load(Ok(false), (&a, &a), false, true);
        c.load(Err(ZcacheError::PoolDestroyed), (&a, &a), true, true);
        assert_eq!((c.verified, c.missed, c.mismatches), (1, 1, 4));
    }

    #[test]
    fn rounds_repeat_the_same_draws_and_end_in_a_row_of_medians() {
        let pages = pages();
        let setups = [Setup::new(Workload::Cleancache)];
        let one = sweep(&pages, &[200], &setups, 1, |_| {}).expect("runs");
        let mut seen = Vec::new();
        let three = sweep(&pages, &[200, 100], &setups, 3, |r| seen.push(r.round)).expect("runs");
        // Three rounds, then their medians, per size.
        assert_eq!(seen, [1, 2, 3, 0, 1, 2, 3, 0]);
        assert_eq!(three.len(), 8);
        let (rounds, med) = (&three[..3], &three[3]);
        // Every round draws what a one-round sweep draws: the same files and the same
        // checks. (Not always the same metadata to the byte: where the heap puts the
        // frames decides whether a zspage's frame row is compact or wide.)
        for r in rounds {
            assert_eq!(r.failures(), 0, "{r:?}");
            assert_eq!(r.median_of, 1);
            assert_eq!(
                (r.stored_pages, r.verified_pages, r.missed_loads),
                (
                    one[0].stored_pages,
                    one[0].verified_pages,
                    one[0].missed_loads
                )
            );
        }
        assert_eq!((med.round, med.median_of), (0, 3));
        let mid = |f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[1]
        };
        assert_eq!(med.load_vs_bare, mid(|r| r.load_vs_bare));
        assert_eq!(med.store_us, mid(|r| r.store_us));
        assert_eq!(med.invalidate_us, mid(|r| r.invalidate_us));
        assert!(line(med).trim_end().ends_with("med3"), "{}", line(med));
        assert!(line(&rounds[1]).trim_end().ends_with(" 2"));
        // The next size's rounds follow, and a failure in any round shows in the medians.
        assert_eq!(three[4].pages, 100);
        let mut bad = rounds.to_vec();
        bad[2].mismatches = 2;
        bad[0].frames_after_invalidate = 1;
        let m = median(&bad).expect("rows");
        assert_eq!((m.mismatches, m.failures()), (2, 3));
        assert!(median(&[]).is_none());
        assert_eq!(median_of(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn sweeps_run_sizes_outermost_and_lines_hold_every_column() {
        let pages = pages();
        let setups = [
            Setup::new(Workload::Frontswap),
            Setup::new(Workload::Cleancache),
        ];
        let mut seen = Vec::new();
        let rows = sweep(&pages, &[100, 300], &setups, 1, |r| {
            seen.push((r.workload, r.pages))
        })
        .expect("runs");
        assert_eq!(
            seen,
            [
                ("frontswap", 100),
                ("cleancache", 100),
                ("frontswap", 300),
                ("cleancache", 300)
            ]
        );
        assert_eq!(rows.len(), 4);
        let head = header();
        let columns = head.split_whitespace().count();
        // "store us", "comp us", ... are two words each in the heading.
        assert_eq!(columns, 18 + 8, "{head}");
        for r in &rows {
            let l = line(r);
            assert_eq!(l.split_whitespace().count(), 18, "{l}");
            assert!(l.starts_with(r.workload));
        }
        assert!(run(&setups[0], &[], 10, &mut Rng::new(1)).is_err());
    }
}
