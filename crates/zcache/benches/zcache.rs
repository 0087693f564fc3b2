//! zcache end to end on the dev corpus (testdata/dev), in one run:
//! * frontswap store and load pages/s against bare lz4 compress / decompress of the same
//!   pages (zcomp's Lz4, the compressor zcache uses);
//! * two threads against one on a mixed store/load/invalidate workload;
//! * metadata bytes per stored page, measured with a counting global allocator;
//! * the baseline a user would write instead: `Mutex<HashMap<key, Vec<u8>>>` of
//!   lz4_flex output on the global allocator (bytes per page and pages/s).
//!
//! Run: `cargo bench -p zcache --bench zcache` (prints a summary table at the end).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use zcache::{Config, Zcache};
use zcache_testdata::Corpus;
use zcomp::{Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN};

struct Counting;
static HEAP: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HEAP.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HEAP.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        HEAP.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        HEAP.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> isize {
    HEAP.load(Ordering::Relaxed)
}

/// Frames come from the heap too: count them apart so metadata = heap growth - frames.
fn zcache() -> Zcache {
    Zcache::new(
        Config {
            contexts: 4,
            ..Config::default()
        },
        Arc::new(zpool::HeapPageSource),
    )
    .unwrap()
}

struct Summary {
    lines: Mutex<Vec<String>>,
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let corpus = Corpus::dev();
    let pages = corpus.pages();
    let n = pages.len();
    let summary = Summary {
        lines: Mutex::new(Vec::new()),
    };
    let mut g = c.benchmark_group("zcache");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    g.warm_up_time(Duration::from_secs(1));

    // --- bare lz4 (zcomp) ---
    let mut comp = AnyCompressor::new(Algorithm::Lz4).unwrap();
    let mut buf = vec![0u8; MAX_COMPRESSED_LEN];
    let compressed: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let l = comp.compress(p, &mut buf).unwrap();
            buf[..l].to_vec()
        })
        .collect();
    g.bench_function("bare_lz4_compress_corpus", |b| {
        b.iter(|| {
            for p in pages {
                black_box(comp.compress(p, &mut buf).unwrap());
            }
        })
    });
    let mut out = [0u8; 4096];
    g.bench_function("bare_lz4_decompress_corpus", |b| {
        b.iter(|| {
            for cz in &compressed {
                comp.decompress(cz, &mut out).unwrap();
                black_box(&out);
            }
        })
    });

    // --- zcache frontswap ---
    g.bench_function("frontswap_store_corpus", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let z = zcache();
                let f = z.frontswap();
                f.init(0).unwrap();
                let t = Instant::now();
                for (i, p) in pages.iter().enumerate() {
                    let _ = f.store(0, i as u64, p);
                }
                total += t.elapsed();
            }
            total
        })
    });
    let z = zcache();
    let f = z.frontswap();
    f.init(0).unwrap();
    let before = heap();
    let frames_before = z.stats().pool_frames;
    for (i, p) in pages.iter().enumerate() {
        let _ = f.store(0, i as u64, p);
    }
    let st = z.stats();
    let heap_growth = heap() - before - ((st.pool_frames - frames_before) as isize) * 4096;
    let stored = st.counters.stored_pages as usize;
    g.bench_function("frontswap_load_corpus", |b| {
        b.iter(|| {
            for i in 0..n {
                black_box(f.load(0, i as u64, &mut out).unwrap());
            }
        })
    });
    // Verify once.
    let mut verified = 0;
    for (i, p) in pages.iter().enumerate() {
        if f.load(0, i as u64, &mut out).unwrap() {
            assert_eq!(&out, p);
            verified += 1;
        }
    }
    summary.lines.lock().unwrap().push(format!(
        "frontswap dev: stored {stored}/{n} (verified {verified}), frames {} (ideal {:.0}), metadata {} B = {:.2} B/page (counting allocator: {:.2} B/page)",
        st.pool_frames,
        st.counters.zbytes as f64 / 4096.0,
        z.metadata_bytes(),
        z.metadata_bytes() as f64 / stored as f64,
        heap_growth as f64 / stored as f64,
    ));
    drop(z);

    // --- two threads vs one, mixed store/load/invalidate ---
    for threads in [1usize, 2] {
        g.bench_function(format!("mixed_aggregate_{threads}threads"), |b| {
            b.iter_custom(|iters| {
                let z = zcache();
                for t in 0..threads as u32 {
                    z.frontswap().init(t).unwrap();
                }
                let barrier = Barrier::new(threads);
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = std::thread::scope(|s| {
                        let hs: Vec<_> = (0..threads)
                            .map(|tid| {
                                let (z, barrier) = (&z, &barrier);
                                s.spawn(move || {
                                    let f = z.frontswap();
                                    let mut out = [0u8; 4096];
                                    let my = &pages[tid * n / threads..(tid + 1) * n / threads];
                                    barrier.wait();
                                    let t = Instant::now();
                                    // Each thread: its own swap type; per page: store,
                                    // load, and invalidate every other one.
                                    for (i, p) in my.iter().enumerate() {
                                        let _ = f.store(tid as u32, i as u64, p);
                                        black_box(f.load(tid as u32, i as u64, &mut out).unwrap());
                                        if i % 2 == 0 {
                                            f.invalidate_page(tid as u32, i as u64).unwrap();
                                        }
                                    }
                                    t
                                })
                            })
                            .collect();
                        hs.into_iter().map(|h| h.join().unwrap()).min().unwrap()
                    });
                    total += start.elapsed();
                    for t in 0..threads as u32 {
                        z.frontswap().invalidate_area(t).unwrap();
                        z.frontswap().init(t).unwrap();
                    }
                }
                // Time per corpus pass, whatever the thread count: compare directly.
                total
            })
        });
    }

    // --- baseline: Mutex<HashMap<key, Vec<u8>>> of lz4_flex output ---
    let map: Mutex<HashMap<(u32, u64), Vec<u8>>> = Mutex::new(HashMap::new());
    let base_before = heap();
    for (i, p) in pages.iter().enumerate() {
        map.lock()
            .unwrap()
            .insert((0, i as u64), lz4_flex::block::compress(p));
    }
    let base_bytes = heap() - base_before;
    g.bench_function("baseline_hashmap_store_corpus", |b| {
        b.iter(|| {
            let m: Mutex<HashMap<(u32, u64), Vec<u8>>> = Mutex::new(HashMap::new());
            for (i, p) in pages.iter().enumerate() {
                m.lock()
                    .unwrap()
                    .insert((0, i as u64), lz4_flex::block::compress(p));
            }
            black_box(m);
        })
    });
    g.bench_function("baseline_hashmap_load_corpus", |b| {
        b.iter(|| {
            for i in 0..n {
                let m = map.lock().unwrap();
                let v = m.get(&(0, i as u64)).unwrap();
                lz4_flex::block::decompress_into(v, &mut out).unwrap();
                black_box(&out);
            }
        })
    });
    summary.lines.lock().unwrap().push(format!(
        "baseline HashMap<_, Vec<u8>> dev: {base_bytes} heap bytes = {:.1} B/page",
        base_bytes as f64 / n as f64
    ));
    g.finish();
    for l in summary.lines.lock().unwrap().iter() {
        println!("{l}");
    }
    let _ = per_sec;
}

criterion_group!(benches, bench);
criterion_main!(benches);
