//! The hot path at real sizes (issue 13): frontswap over many swap slots and cleancache
//! over many files, at 10^4, 10^5 and 10^6 stored pages, one thread, Config::default().
//!
//! The dev corpus pages (testdata/dev) are reused under distinct keys: page k of a pass
//! is corpus page k mod len.
//! * frontswap, through a `SwapArea`: store slots 0..N in order, load them all in a
//!   random order, invalidate them all;
//! * cleancache, through a `Mount`: files of 1-64 pages (sizes drawn at random) up to
//!   N pages; put every page, get every page in a random order (a private pool's get
//!   is exclusive), put them all again, then invalidate file by file.
//!
//! The bare passes are equally fair at every size: lz4 compresses the same pages in the
//! same order, keeping every output (memory of the same total size), and decompresses
//! them in the load pass's order. Reported per page (thread CPU time): zcache's store,
//! load and invalidate; the bare compress and decompress; the ratios (zcache pages/s
//! over bare pages/s, the 0.95x bar) and the cost beyond compression; metadata
//! bytes per stored page (`Zcache::metadata_bytes`).
//!
//! Run: `cargo bench -p zcache --bench scale` (sizes: `SCALE_SIZES=10000,100000`).

use std::hint::black_box;

use zcache::{Config, Mount, Oid, SwapArea, Zcache, file_key_from_inode};
use zcache_testdata::Corpus;
use zcomp::{Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN};
use zpool::{HeapPageSource, PAGE_SIZE, Page};

/// Thread CPU time in seconds: what one core does, whatever else the machine runs.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call; the clock id is a
    // constant the C library defines.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Seconds `f` takes on this thread's CPU.
fn timed(f: impl FnOnce()) -> f64 {
    let t = cpu_now();
    f();
    cpu_now() - t
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            v.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
        v
    }
}

/// The bare lz4 passes: compress `n` pages in order keeping every output, then
/// decompress them in `order`. Returns (compress s, decompress s).
fn bare(pages: &[Page], n: usize, order: &[usize]) -> (f64, f64) {
    let mut comp = AnyCompressor::new(Algorithm::Lz4).unwrap();
    let mut buf = vec![0u8; MAX_COMPRESSED_LEN];
    let mut outs: Vec<Box<[u8]>> = Vec::with_capacity(n);
    let c = timed(|| {
        for k in 0..n {
            let len = comp
                .compress(&pages[k % pages.len()], &mut buf)
                .unwrap_or(0);
            outs.push(buf[..len].into());
        }
    });
    let mut page: Box<Page> = Box::new([0; PAGE_SIZE]);
    let d = timed(|| {
        for &k in order {
            if !outs[k].is_empty() {
                comp.decompress(&outs[k], &mut page).unwrap();
            }
            black_box(&page);
        }
    });
    (c, d)
}

struct Row {
    workload: &'static str,
    n: usize,
    store: f64,
    load: f64,
    invalidate: f64,
    compress: f64,
    decompress: f64,
    meta: f64,
}

impl Row {
    /// A row from zcache's timings (`store`, `load`, `invalidate` seconds, metadata
    /// bytes per page), with the bare lz4 passes over the same `n` pages in `order`.
    fn measured(
        workload: &'static str,
        (pages, n, order): (&[Page], usize, &[usize]),
        (store, load, invalidate): (f64, f64, f64),
        meta: f64,
    ) -> Row {
        let (compress, decompress) = bare(pages, n, order);
        Row {
            workload,
            n,
            store,
            load,
            invalidate,
            compress,
            decompress,
            meta,
        }
    }
}

fn frontswap(pages: &[Page], n: usize, rng: &mut Rng) -> Row {
    let z = Zcache::new(Config::default(), HeapPageSource).unwrap();
    let area = SwapArea::swapon(&z, 0).unwrap();
    let order = rng.permutation(n);
    let store = timed(|| {
        for k in 0..n {
            let _ = area.store(k as u64, &pages[k % pages.len()]);
        }
    });
    let meta = z.metadata_bytes() as f64 / z.stored_pages().max(1) as f64;
    let mut page: Box<Page> = Box::new([0; PAGE_SIZE]);
    let load = timed(|| {
        for &k in &order {
            black_box(area.load(k as u64, &mut page).unwrap());
        }
    });
    let invalidate = timed(|| {
        for k in 0..n {
            black_box(area.invalidate_page(k as u64).unwrap());
        }
    });
    assert_eq!(z.stored_pages(), 0);
    Row::measured(
        "frontswap",
        (pages, n, &order),
        (store, load, invalidate),
        meta,
    )
}

fn cleancache(pages: &[Page], n: usize, rng: &mut Rng) -> Row {
    let z = Zcache::new(Config::default(), HeapPageSource).unwrap();
    let mount = Mount::new(&z).unwrap();
    // (file, index) of page k: files of 1-64 pages.
    let mut keys: Vec<(Oid, u64)> = Vec::with_capacity(n);
    let mut files = Vec::new();
    let mut ino = 1u64;
    while keys.len() < n {
        let len = 1 + rng.next() % 64;
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
    let store = timed(|| put(&mount));
    let meta = z.metadata_bytes() as f64 / z.stored_pages().max(1) as f64;
    let mut page: Box<Page> = Box::new([0; PAGE_SIZE]);
    let load = timed(|| {
        for &k in &order {
            let (f, i) = keys[k];
            black_box(mount.get_page(f, i, &mut page));
        }
    });
    put(&mount);
    let held = z.stored_pages().max(1) as f64;
    let invalidate = timed(|| {
        for f in &files {
            mount.invalidate_inode(*f);
        }
    }) * n as f64
        / held;
    assert_eq!(z.stored_pages(), 0);
    Row::measured(
        "cleancache",
        (pages, n, &order),
        (store, load, invalidate),
        meta,
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let corpus = Corpus::dev();
    let pages = corpus.pages();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    println!(
        "{:<10} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7}",
        "workload",
        "pages",
        "store us",
        "lz4 us",
        "x bare",
        "beyond",
        "load us",
        "x bare",
        "beyond",
        "unlz4 us",
        "inval us",
        "meta B"
    );
    for &n in &sizes {
        for row in [
            frontswap(pages, n, &mut rng),
            cleancache(pages, n, &mut rng),
        ] {
            let us = |s: f64| s / row.n as f64 * 1e6;
            println!(
                "{:<10} {:>9} {:>8.2} {:>8.2} {:>6.2}x {:>8.2} {:>8.2} {:>6.2}x {:>8.2} {:>8.2} {:>8.3} {:>7.1}",
                row.workload,
                row.n,
                us(row.store),
                us(row.compress),
                row.compress / row.store,
                us(row.store - row.compress),
                us(row.load),
                row.decompress / row.load,
                us(row.load - row.decompress),
                us(row.decompress),
                us(row.invalidate),
                row.meta
            );
        }
    }
}
