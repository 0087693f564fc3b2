//! Reclaim figures on the dev corpus (testdata/dev):
//! * cleancache under a frame limit of half the ideal: every page put in corpus order,
//!   then every page got. Hit rate, put and get pages/s, and the latency of single puts
//!   (p50, p99, max), for the two ways a store at the limit can go:
//!   - `worker`: accept hysteresis 90 %; a store at the limit is refused at once and
//!     the host's worker ([`Zcache::reclaim`]) runs when [`Zcache::reclaim_wanted`]
//!     says so (here on the same thread after the refused put; its time is reported
//!     apart);
//!   - `sync`: no hysteresis (accept 100 %); a store evicts up to
//!     `max_reclaim_per_store` pages itself.
//! * frontswap under the same limit with writeback to an in-memory swap device: every
//!   page stored (a refused one goes to the device, as the kernel does), then every
//!   slot read back and checked. Store latency p50/p99/max; with the worker, the
//!   worker's time apart.
//! * eviction cost per page against LRU population (1k, 10k, 100k stored pages): the
//!   time of `shrinker_scan` per page evicted, which must not grow with the population.
//!
//! Run: `cargo bench -p zcache --bench reclaim`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zcache::PAGE_SIZE;
use zcache::{AllocatorKind, Config, SlotClaim, Writeback, Zcache};

/// The dev corpus at the build's page size (`Corpus::joined`).
type Corpus = zcache_testdata::Joined<PAGE_SIZE>;

fn dev() -> Corpus {
    zcache_testdata::Corpus::dev().joined::<PAGE_SIZE>()
}
use zcomp::{Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN};

/// The host's worker, run after a refused put.
fn worker(z: &Zcache) -> Duration {
    let t = Instant::now();
    if z.reclaim_wanted() {
        z.reclaim(256);
    }
    t.elapsed()
}

fn ideal_frames(c: &Corpus) -> usize {
    let mut comp = AnyCompressor::new(Algorithm::Lz4).unwrap();
    let mut buf = vec![0u8; MAX_COMPRESSED_LEN];
    let mut bytes = 0usize;
    for p in c.pages() {
        if zcomp::same_filled(p).is_some() {
            continue;
        }
        if let Ok(n) = comp.compress(p, &mut buf) {
            bytes += n;
        }
    }
    bytes.div_ceil(PAGE_SIZE)
}

fn pct(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn limited(c: &Corpus, eph: AllocatorKind, limit: usize, mode: &str) {
    let accept = if mode == "sync" { 100 } else { 90 };
    let z = Zcache::new(
        Config {
            ephemeral_allocator: eph,
            max_frames: limit,
            accept_threshold_percent: accept,
            ..Config::default()
        },
        Arc::new(zpool::RecyclingSource::new(zpool::HeapPageSource, 1 << 14).unwrap()),
    )
    .unwrap();
    let cc = z.cleancache();
    let pool = cc.init_fs().unwrap();
    let mut lat = Vec::with_capacity(c.len());
    let mut worker_time = Duration::ZERO;
    let t0 = Instant::now();
    for (r, p) in c.iter() {
        let key = zcache::file_key_from_inode(u64::from(r.object_id));
        let t = Instant::now();
        cc.put_page(pool, key, r.page_index, p);
        lat.push(t.elapsed());
        if mode == "worker" {
            worker_time += worker(&z);
        }
    }
    let put_time = t0.elapsed() - worker_time;
    let mut out = [0u8; PAGE_SIZE];
    let mut hits = 0usize;
    let t1 = Instant::now();
    for (r, _) in c.iter() {
        let key = zcache::file_key_from_inode(u64::from(r.object_id));
        if cc.get_page(pool, key, r.page_index, black_box(&mut out)) {
            hits += 1;
        }
    }
    let get_time = t1.elapsed();
    let st = z.stats();
    let n = c.len();
    println!(
        "{:<8} {:<7} {:>6} {:>6.1}% {:>9.0} {:>9.0} {:>7.1} {:>7.1} {:>8.1} {:>9.3} {:>8} {:>8}",
        eph.name(),
        mode,
        limit,
        100.0 * hits as f64 / n as f64,
        n as f64 / put_time.as_secs_f64(),
        n as f64 / get_time.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
        worker_time.as_secs_f64(),
        st.counters.evicted_eph_pages,
        st.pool_frames_peak,
    );
}

/// An in-memory swap device.
#[derive(Default)]
struct Device {
    slots: Mutex<HashMap<u64, Box<[u8; PAGE_SIZE]>>>,
}

impl Writeback for Device {
    fn claim(&self, _t: u32, offset: u64) -> Option<u64> {
        Some(offset)
    }
    fn write(&self, claim: &SlotClaim, page: &[u8; PAGE_SIZE]) -> bool {
        self.slots
            .lock()
            .unwrap()
            .insert(claim.offset, Box::new(*page));
        true
    }
    fn release(&self, _claim: SlotClaim, _written: bool) {}
}

fn frontswap_limited(c: &Corpus, limit: usize) {
    let dev = Arc::new(Device::default());
    let z = Zcache::with_writeback(
        Config {
            max_frames: limit,
            ..Config::default()
        },
        Arc::new(zpool::RecyclingSource::new(zpool::HeapPageSource, 1 << 14).unwrap()),
        dev.clone(),
    )
    .unwrap();
    let fs = z.frontswap();
    fs.init(0).unwrap();
    let mut lat = Vec::with_capacity(c.len());
    let mut worker_time = Duration::ZERO;
    let t0 = Instant::now();
    for (i, p) in c.pages().iter().enumerate() {
        let t = Instant::now();
        let r = fs.store(0, i as u64, p);
        lat.push(t.elapsed());
        if r.is_err() {
            dev.slots.lock().unwrap().insert(i as u64, Box::new(*p));
            worker_time += worker(&z);
        }
    }
    let store_time = t0.elapsed() - worker_time;
    let mut out = [0u8; PAGE_SIZE];
    let mut wrong = 0;
    for (i, p) in c.pages().iter().enumerate() {
        let hit = fs.load(0, i as u64, &mut out).unwrap();
        let ok = if hit {
            &out == p
        } else {
            dev.slots
                .lock()
                .unwrap()
                .get(&(i as u64))
                .is_some_and(|d| **d == *p)
        };
        wrong += usize::from(!ok);
    }
    let st = z.stats();
    let n = c.len();
    println!(
        "{:<9} {:>6} {:>9.0} {:>7.1} {:>7.1} {:>9.1} {:>9.3} {:>9} {:>6}",
        "zsmalloc",
        limit,
        n as f64 / store_time.as_secs_f64(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
        worker_time.as_secs_f64(),
        st.counters.written_back_pages,
        wrong,
    );
    assert_eq!(wrong, 0, "frontswap pages lost or wrong");
}

fn eviction_cost(c: &Corpus, eph: AllocatorKind, population: usize) {
    let z = Zcache::new(
        Config {
            ephemeral_allocator: eph,
            ..Config::default()
        },
        Arc::new(zpool::HeapPageSource),
    )
    .unwrap();
    let cc = z.cleancache();
    let pool = cc.init_fs().unwrap();
    let pages: Vec<&[u8; PAGE_SIZE]> = c
        .pages()
        .iter()
        .filter(|p| zcomp::same_filled(p).is_none())
        .collect();
    for i in 0..population {
        let key = zcache::file_key_from_inode(i as u64 / 64);
        cc.put_page(pool, key, i as u64 % 64, pages[i % pages.len()]);
    }
    let stored = z.stats().eph_lru_len;
    let batch = 1000.min(stored / 2);
    // Untimed: every new page is stored referenced, so the hand's first turn only
    // clears bits. Scan until the first page goes.
    let mut first = 0;
    for _ in 0..stored {
        first = z.shrinker_scan(100);
        if first > 0 {
            break;
        }
    }
    let t = Instant::now();
    let mut evicted = 0;
    while evicted < batch {
        let k = z.shrinker_scan(100);
        if k == 0 {
            break;
        }
        evicted += k;
    }
    let d = t.elapsed();
    println!(
        "{:<8} {:>9} {:>9} {:>8} {:>10.3}",
        eph.name(),
        population,
        stored,
        first + evicted,
        d.as_secs_f64() * 1e6 / evicted.max(1) as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let c = dev();
    let ideal = ideal_frames(&c);
    let limit = ideal / 2;
    println!(
        "cleancache, dev corpus: {} pages, ideal {} frames, limit {} frames (half)",
        c.len(),
        ideal,
        limit
    );
    println!(
        "{:<8} {:<7} {:>6} {:>7} {:>9} {:>9} {:>7} {:>7} {:>8} {:>9} {:>8} {:>8}",
        "alloc",
        "mode",
        "limit",
        "hits",
        "put/s",
        "get/s",
        "p50 us",
        "p99 us",
        "max us",
        "worker s",
        "evicted",
        "peak"
    );
    for eph in AllocatorKind::ALL {
        for mode in ["worker", "sync"] {
            for _ in 0..3 {
                limited(&c, eph, limit, mode);
            }
        }
    }
    println!();
    println!("frontswap with writeback, limit {limit} frames");
    println!(
        "{:<9} {:>6} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>6}",
        "alloc", "limit", "store/s", "p50 us", "p99 us", "max us", "worker s", "written", "wrong"
    );
    for _ in 0..3 {
        frontswap_limited(&c, limit);
    }
    println!();
    println!("eviction cost per page against LRU population (shrinker_scan, 1000 pages)");
    println!(
        "{:<8} {:>9} {:>9} {:>8} {:>10}",
        "alloc", "stored", "on LRU", "evicted", "us/page"
    );
    for eph in AllocatorKind::ALL {
        for population in [1_000, 10_000, 100_000] {
            eviction_cost(&c, eph, population);
        }
    }
}
