//! cleancache under a small simulated file system.
//!
//! A [`Disk`] holds files (real file pages from the corpus). Reads go through a
//! [`PageCache`] of a few pages with LRU replacement, as the kernel's page cache does.
//! When the page cache evicts a clean page it offers it to cleancache
//! (`put_page`); when a read misses the page cache it asks cleancache first
//! (`get_page`) and goes to the disk only on a miss. Every page cleancache returns is
//! compared with the disk's current content, so a stale or wrong page would be counted.
//! Rewriting a file invalidates its pages (`invalidate_inode`), as truncation does in
//! the kernel, and the unmount at the end surrenders the pool (`invalidate_fs`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use tmem_core::PoolId;
use zcache::{Config, Oid, Zcache, file_key_from_inode};
use zpool::{BlockPageSource, Page};

use crate::{FILE_SOURCES, Rng, corpus_objects, pct, tagged};

/// The simulated disk: files of pages.
pub struct Disk {
    files: Vec<Vec<Page>>,
    /// Pages read from the disk.
    pub reads: u64,
}

impl Disk {
    /// A disk holding these files.
    pub fn new(files: Vec<Vec<Page>>) -> Disk {
        Disk { files, reads: 0 }
    }

    /// Number of files.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Pages of file `f`.
    pub fn len(&self, f: usize) -> usize {
        self.files[f].len()
    }

    /// Reads page `i` of file `f` (counted).
    pub fn read(&mut self, f: usize, i: usize) -> Page {
        self.reads += 1;
        self.files[f][i]
    }

    /// The current content of a page (not counted: the checker's view).
    pub fn peek(&self, f: usize, i: usize) -> &Page {
        &self.files[f][i]
    }

    /// Rewrites every page of file `f` with new content.
    pub fn rewrite(&mut self, f: usize, generation: u64) {
        for (i, p) in self.files[f].iter_mut().enumerate() {
            *p = tagged(p, (generation << 32) | i as u64);
        }
    }
}

/// A page cache of `capacity` pages with LRU replacement (clean pages only: the
/// simulated file system writes through).
pub struct PageCache {
    capacity: usize,
    pages: HashMap<(usize, usize), Page>,
    lru: VecDeque<(usize, usize)>,
}

impl PageCache {
    /// An empty cache.
    pub fn new(capacity: usize) -> PageCache {
        PageCache {
            capacity,
            pages: HashMap::new(),
            lru: VecDeque::new(),
        }
    }

    fn touch(&mut self, key: (usize, usize)) {
        if let Some(pos) = self.lru.iter().position(|k| *k == key) {
            self.lru.remove(pos);
        }
        self.lru.push_back(key);
    }

    /// Inserts a page; returns the page it evicted, if any.
    fn insert(&mut self, key: (usize, usize), page: Page) -> Option<((usize, usize), Page)> {
        let mut evicted = None;
        if self.pages.len() >= self.capacity
            && let Some(old) = self.lru.pop_front()
        {
            evicted = self.pages.remove(&old).map(|p| (old, p));
        }
        self.pages.insert(key, page);
        self.lru.push_back(key);
        evicted
    }

    /// Drops every page of file `f` (truncation); returns how many.
    fn drop_file(&mut self, f: usize) -> usize {
        let before = self.pages.len();
        self.pages.retain(|k, _| k.0 != f);
        self.lru.retain(|k| k.0 != f);
        before - self.pages.len()
    }
}

/// Settings of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Page cache size, pages.
    pub page_cache_pages: usize,
    /// zcache's frame limit (cleancache's memory), 4 KiB frames.
    pub zcache_frames: usize,
    /// Read requests (each reads a short run of consecutive pages).
    pub reads: usize,
    /// Every this many reads, a file is rewritten (its cached pages invalidated).
    pub rewrite_every: usize,
    /// Random seed.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            page_cache_pages: 64,
            zcache_frames: 96,
            reads: 6000,
            rewrite_every: 500,
            seed: 1,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Files and pages on the disk.
    pub files: usize,
    /// Pages on the disk.
    pub disk_pages: usize,
    /// Page reads requested.
    pub page_reads: u64,
    /// Page reads served by the page cache.
    pub page_cache_hits: u64,
    /// cleancache gets (page cache misses).
    pub cleancache_gets: u64,
    /// cleancache gets that returned the page.
    pub cleancache_hits: u64,
    /// Pages the page cache evicted into cleancache.
    pub cleancache_puts: u64,
    /// Pages read from the disk with cleancache.
    pub disk_reads: u64,
    /// Pages read from the disk by the same reads without cleancache.
    pub disk_reads_without: u64,
    /// Pages cleancache returned that differed from the disk (must be 0).
    pub wrong_pages: u64,
    /// File rewrites (each invalidated the file's cleancache pages).
    pub rewrites: u64,
    /// cleancache pages dropped by those invalidations.
    pub invalidated_pages: u64,
    /// Pages cleancache held at the end (before the unmount).
    pub stored_pages_at_end: i64,
    /// Frames zcache held at the end (before the unmount).
    pub frames_at_end: usize,
    /// Highest frame count.
    pub peak_frames: usize,
    /// Pages zcache evicted to stay under its limit.
    pub evicted_pages: i64,
    /// Stored pages after the unmount (must be 0).
    pub stored_after_unmount: i64,
}

impl Report {
    /// cleancache hit rate in percent (hits / gets).
    pub fn hit_rate(&self) -> f64 {
        pct(self.cleancache_hits, self.cleancache_gets)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "file system: {} files, {} pages of real file data (ELF, text, Canterbury corpus)",
            self.files, self.disk_pages
        )?;
        writeln!(
            f,
            "page reads: {}; page cache hits: {} ({:.1}%)",
            self.page_reads,
            self.page_cache_hits,
            pct(self.page_cache_hits, self.page_reads)
        )?;
        writeln!(
            f,
            "cleancache: {} puts of evicted clean pages, {} gets, {} hits: hit rate {:.1}%",
            self.cleancache_puts,
            self.cleancache_gets,
            self.cleancache_hits,
            self.hit_rate()
        )?;
        writeln!(
            f,
            "disk reads: {} with cleancache, {} without: {:.1}% fewer",
            self.disk_reads,
            self.disk_reads_without,
            100.0 - pct(self.disk_reads, self.disk_reads_without)
        )?;
        writeln!(
            f,
            "every cleancache page compared with the disk: {} wrong",
            self.wrong_pages
        )?;
        writeln!(
            f,
            "{} file rewrites invalidated {} cleancache pages (invalidate_inode)",
            self.rewrites, self.invalidated_pages
        )?;
        writeln!(
            f,
            "zcache at the end: {} pages in {} frames ({:.2} pages per frame), peak {} frames, {} pages evicted to stay under the limit",
            self.stored_pages_at_end,
            self.frames_at_end,
            self.stored_pages_at_end as f64 / self.frames_at_end.max(1) as f64,
            self.peak_frames,
            self.evicted_pages
        )?;
        write!(
            f,
            "unmount (invalidate_fs): {} pages left",
            self.stored_after_unmount
        )
    }
}

/// The reads of a run: (file, first page, pages), and the rewrites between them.
enum Op {
    Read(usize, usize, usize),
    Rewrite(usize),
}

fn workload(disk: &Disk, p: &Params) -> Vec<Op> {
    let mut rng = Rng::new(p.seed);
    // Popularity: a fixed random order of files, then skewed picks in it.
    let mut order: Vec<usize> = (0..disk.files()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut ops = Vec::new();
    for r in 0..p.reads {
        if p.rewrite_every > 0 && r > 0 && r % p.rewrite_every == 0 {
            ops.push(Op::Rewrite(order[rng.skewed(order.len())]));
        }
        let f = order[rng.skewed(order.len())];
        let n = disk.len(f);
        let start = rng.below(n);
        let run = 1 + rng.below(4).min(n - start - 1);
        ops.push(Op::Read(f, start, run));
    }
    ops
}

fn oid_of(f: usize) -> Oid {
    // The kernel's inode number: files are inodes 1000, 1001, ...
    file_key_from_inode(1000 + f as u64)
}

/// Runs the same reads with and without cleancache and reports.
pub fn run(p: &Params) -> Report {
    let files = corpus_objects(&FILE_SOURCES);
    let mut rep = Report {
        files: files.len(),
        disk_pages: files.iter().map(Vec::len).sum(),
        ..Report::default()
    };

    // Baseline: the page cache alone.
    let mut disk = Disk::new(files.clone());
    let ops = workload(&disk, p);
    let mut pc = PageCache::new(p.page_cache_pages);
    let mut generation = 0;
    for op in &ops {
        match *op {
            Op::Read(f, start, n) => {
                for i in start..start + n {
                    if pc.pages.contains_key(&(f, i)) {
                        pc.touch((f, i));
                    } else {
                        let page = disk.read(f, i);
                        pc.insert((f, i), page);
                    }
                }
            }
            Op::Rewrite(f) => {
                generation += 1;
                disk.rewrite(f, generation);
                pc.drop_file(f);
            }
        }
    }
    rep.disk_reads_without = disk.reads;

    // With cleancache.
    let z = Zcache::new(
        Config {
            max_frames: p.zcache_frames,
            ..Config::default()
        },
        Arc::new(BlockPageSource::new()),
    )
    .expect("zcache");
    let cc = z.cleancache();
    let pool: PoolId = cc.init_fs().expect("mount");
    let mut disk = Disk::new(files);
    let mut pc = PageCache::new(p.page_cache_pages);
    let mut generation = 0;
    let mut buf = [0u8; 4096];
    for op in &ops {
        match *op {
            Op::Read(f, start, n) => {
                for i in start..start + n {
                    rep.page_reads += 1;
                    if pc.pages.contains_key(&(f, i)) {
                        pc.touch((f, i));
                        rep.page_cache_hits += 1;
                        continue;
                    }
                    rep.cleancache_gets += 1;
                    let page = if cc.get_page(pool, oid_of(f), i as u64, &mut buf) {
                        rep.cleancache_hits += 1;
                        if &buf != disk.peek(f, i) {
                            rep.wrong_pages += 1;
                        }
                        buf
                    } else {
                        disk.read(f, i)
                    };
                    if let Some(((ef, ei), evicted)) = pc.insert((f, i), page) {
                        // A clean page leaves the page cache: offer it to cleancache.
                        cc.put_page(pool, oid_of(ef), ei as u64, &evicted);
                        rep.cleancache_puts += 1;
                    }
                }
            }
            Op::Rewrite(f) => {
                generation += 1;
                disk.rewrite(f, generation);
                pc.drop_file(f);
                rep.rewrites += 1;
                let before = z.stored_pages();
                cc.invalidate_inode(pool, oid_of(f));
                rep.invalidated_pages += (before - z.stored_pages()).max(0) as u64;
            }
        }
    }
    rep.disk_reads = disk.reads;
    let s = z.stats();
    rep.stored_pages_at_end = s.counters.stored_pages;
    rep.frames_at_end = s.pool_frames;
    rep.peak_frames = s.pool_frames_peak;
    rep.evicted_pages = s.counters.evicted_eph_pages;
    cc.invalidate_fs(pool).expect("unmount");
    rep.stored_after_unmount = z.stored_pages();
    rep
}
