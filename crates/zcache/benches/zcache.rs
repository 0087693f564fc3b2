//! zcache end to end on the dev corpus (testdata/dev), in one run:
//! * frontswap store and load pages/s against bare lz4 compress / decompress of the same
//!   pages (zcomp's Lz4, the compressor zcache uses);
//! * two threads against one on a mixed store/load/invalidate frontswap workload (each
//!   thread its own swap type; and both on one swap type, key-based or through one
//!   `SwapArea`), and on cleancache put/get through one shared `Mount` (zbud's shards);
//! * metadata bytes per stored page, measured with a counting global allocator;
//! * the baseline a user would write instead: `Mutex<HashMap<key, Vec<u8>>>` of lz4
//!   output (the same lz4_flex build, through zcomp) on the global allocator (bytes per
//!   page and pages/s).
//!
//! Run: `cargo bench -p zcache --bench zcache` (prints a summary table at the end).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use zcache::PAGE_SIZE;
use zcache::{Config, Zcache};

/// The dev corpus at the build's page size (`Corpus::joined`).
type Corpus = zcache_testdata::Joined<PAGE_SIZE>;

fn dev() -> Corpus {
    zcache_testdata::Corpus::dev().joined::<PAGE_SIZE>()
}
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
            // What a hosted program sets (the kernel: its CPU number).
            context_hint: zcache::thread_hint,
            ..Config::default()
        },
        // Frames freed are reused, as in a running system (a kernel's page allocator
        // neither zeroes nor faults in a frame; the heap does both).
        Arc::new(zpool::RecyclingSource::new(zpool::HeapPageSource, 1 << 14).unwrap()),
    )
    .unwrap()
}

struct Summary {
    lines: Mutex<Vec<String>>,
}

/// This thread's CPU time: single-thread ratios are measured in CPU time so that other
/// work on a shared 2-core machine does not leak into them.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let corpus = dev();
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
    let mut out = [0u8; PAGE_SIZE];
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
    let heap_growth =
        heap() - before - ((st.pool_frames - frames_before) as isize) * PAGE_SIZE as isize;
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
        st.counters.zbytes as f64 / PAGE_SIZE as f64,
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
                                    let mut out = [0u8; PAGE_SIZE];
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

    // --- baseline: Mutex<HashMap<key, Vec<u8>>> of lz4 output ---
    let base_store = |comp: &mut AnyCompressor, buf: &mut [u8]| {
        let m: Mutex<HashMap<(u32, u64), Vec<u8>>> = Mutex::new(HashMap::new());
        for (i, p) in pages.iter().enumerate() {
            let l = comp.compress(p, buf).unwrap();
            m.lock().unwrap().insert((0, i as u64), buf[..l].to_vec());
        }
        m
    };
    let base_before = heap();
    let map = base_store(&mut comp, &mut buf);
    let base_bytes = heap() - base_before;
    g.bench_function("baseline_hashmap_store_corpus", |b| {
        b.iter(|| black_box(base_store(&mut comp, &mut buf)))
    });
    let base_load = |comp: &mut AnyCompressor, out: &mut [u8; PAGE_SIZE]| {
        for i in 0..n {
            let m = map.lock().unwrap();
            let v = m.get(&(0, i as u64)).unwrap();
            comp.decompress(v, out).unwrap();
            black_box(&out);
        }
    };
    g.bench_function("baseline_hashmap_load_corpus", |b| {
        b.iter(|| base_load(&mut comp, &mut out))
    });
    g.finish();

    if std::env::args().any(|a| a == "--profile-time") {
        return; // profiling one criterion bench: skip the summary passes
    }
    // --- one summary table from interleaved timed passes (median of 7) ---
    let median = |mut f: Box<dyn FnMut() -> Duration + '_>| {
        let mut v: Vec<Duration> = (0..7).map(|_| f()).collect();
        v.sort();
        v[3]
    };
    let timed = |f: &mut dyn FnMut()| {
        let t = thread_cpu();
        f();
        thread_cpu() - t
    };
    let mut comp2 = AnyCompressor::new(Algorithm::Lz4).unwrap();
    let mut buf2 = vec![0u8; MAX_COMPRESSED_LEN];
    let mut out2 = [0u8; PAGE_SIZE];
    // CPU time of this thread. Steady state, interleaved: one long-lived zcache (as in a running system, frames
    // are recycled), each round times bare compress, store, load and bare decompress
    // back to back, so machine load affects both sides alike; medians of 7 rounds.
    let z = zcache();
    let f = z.frontswap();
    let (mut cs, mut ss, mut ls, mut ds) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..12 {
        f.invalidate_area(0).ok();
        f.init(0).unwrap();
        cs.push(timed(&mut || {
            for p in pages {
                black_box(comp2.compress(p, &mut buf2).unwrap());
            }
        }));
        ss.push(timed(&mut || {
            for (i, p) in pages.iter().enumerate() {
                let _ = f.store(0, i as u64, p);
            }
        }));
        ls.push(timed(&mut || {
            for i in 0..n {
                black_box(f.load(0, i as u64, &mut out2).unwrap());
            }
        }));
        ds.push(timed(&mut || {
            for cz in &compressed {
                comp2.decompress(cz, &mut out2).unwrap();
                black_box(&out2);
            }
        }));
    }
    let med = |v: &mut Vec<Duration>| {
        v.remove(0); // the first round pays first-touch page faults
        v.sort();
        v[v.len() / 2]
    };
    // Ratios per round (each round's four passes ran back to back, on the same machine
    // state), then their median: steadier than a ratio of medians on a shared machine.
    let ratio_med = |bare: &[Duration], ours: &[Duration]| {
        let mut r: Vec<f64> = bare[1..]
            .iter()
            .zip(&ours[1..])
            .map(|(b, o)| b.as_secs_f64() / o.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let (store_ratio, load_ratio) = (ratio_med(&cs, &ss), ratio_med(&ds, &ls));
    let (bare_c, zstore, zload, bare_d) = (med(&mut cs), med(&mut ss), med(&mut ls), med(&mut ds));
    let bstore = median(Box::new(|| {
        timed(&mut || drop(black_box(base_store(&mut comp2, &mut buf2))))
    }));
    let bload = median(Box::new(|| timed(&mut || base_load(&mut comp2, &mut out2))));
    // Wall time of one pass over the corpus by each of `threads` threads at once, on
    // zcache (store, load, invalidate every other page) or, as the machine's own
    // ceiling, bare lz4 (compress and decompress each page). zcache: each thread its
    // own swap type through the key-based calls (`Mixed::OwnType`), or every thread on
    // one swap type at distinct offsets, through the key-based calls (`SharedKeyed`:
    // the swap type's slot lock is shared) or through one `SwapArea` (`SharedArea`).
    #[derive(Clone, Copy, PartialEq)]
    enum Mixed {
        Bare,
        OwnType,
        SharedKeyed,
        SharedArea,
        /// Cleancache through one shared `Mount` (zbud, the ephemeral default): each
        /// thread its own files; put every page, get it back (exclusive: the get frees
        /// it), so every page is one zbud store, one read and one free.
        Cleancache,
    }
    let mixed_pass = |threads: usize, mode: Mixed| {
        let bare = mode == Mixed::Bare;
        let z = zcache();
        for t in 0..threads as u32 {
            z.frontswap().init(t).unwrap();
        }
        let area = zcache::SwapArea::open(&z, 0).unwrap();
        let mount = zcache::Mount::new(&z).unwrap();
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|tid| {
                    let (z, barrier, area, mount) = (&z, &barrier, &area, &mount);
                    s.spawn(move || {
                        let f = z.frontswap();
                        let mut out = [0u8; PAGE_SIZE];
                        let mut c = AnyCompressor::new(Algorithm::Lz4).unwrap();
                        let mut buf = vec![0u8; MAX_COMPRESSED_LEN];
                        barrier.wait();
                        let t = Instant::now();
                        for (i, p) in pages.iter().enumerate() {
                            if bare {
                                let l = c.compress(p, &mut buf).unwrap();
                                c.decompress(&buf[..l], &mut out).unwrap();
                                black_box(&out);
                                continue;
                            }
                            let (ty, off) = match mode {
                                Mixed::OwnType => (tid as u32, i as u64),
                                _ => (0, (tid * pages.len() + i) as u64),
                            };
                            if mode == Mixed::Cleancache {
                                let ino = (tid as u64) << 32 | (i / 64) as u64;
                                let file = zcache::file_key_from_inode(ino);
                                mount.put_page(file, (i % 64) as u64, p);
                                black_box(mount.get_page(file, (i % 64) as u64, &mut out));
                                continue;
                            }
                            if mode == Mixed::SharedArea {
                                let _ = area.store(off, p);
                                black_box(area.load(off, &mut out).unwrap());
                                if i % 2 == 0 {
                                    area.invalidate_page(off).unwrap();
                                }
                                continue;
                            }
                            let _ = f.store(ty, off, p);
                            black_box(f.load(ty, off, &mut out).unwrap());
                            if i % 2 == 0 {
                                f.invalidate_page(ty, off).unwrap();
                            }
                        }
                        t.elapsed()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
        })
    };
    // Interleaved rounds (1 thread, 2 threads, bare 1, bare 2), median of 7 each: a
    // drift in machine speed hits both sides of each ratio alike.
    let (mut z1, mut z2, mut b1, mut b2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut k2, mut a1, mut a2) = (Vec::new(), Vec::new(), Vec::new());
    let (mut c1, mut c2) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        c1.push(mixed_pass(1, Mixed::Cleancache));
        c2.push(mixed_pass(2, Mixed::Cleancache));
        z1.push(mixed_pass(1, Mixed::OwnType));
        z2.push(mixed_pass(2, Mixed::OwnType));
        b1.push(mixed_pass(1, Mixed::Bare));
        b2.push(mixed_pass(2, Mixed::Bare));
        k2.push(mixed_pass(2, Mixed::SharedKeyed));
        a1.push(mixed_pass(1, Mixed::SharedArea));
        a2.push(mixed_pass(2, Mixed::SharedArea));
    }
    let mid = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (m1, m2, bm1, bm2) = (mid(&mut z1), mid(&mut z2), mid(&mut b1), mid(&mut b2));
    let (km2, am1, am2) = (mid(&mut k2), mid(&mut a1), mid(&mut a2));
    let (cm1, cm2) = (mid(&mut c1), mid(&mut c2));
    let ps = |d: Duration| per_sec(n, d);
    let mut lines = summary.lines.lock().unwrap();
    lines.push(format!(
        "store: zcache {:.0} pages/s vs bare lz4 compress {:.0} pages/s (medians); median of per-round ratios {:.3}x",
        ps(zstore),
        ps(bare_c),
        store_ratio
    ));
    lines.push(format!(
        "load:  zcache {:.0} pages/s vs bare lz4 decompress {:.0} pages/s (medians); median of per-round ratios {:.3}x",
        ps(zload),
        ps(bare_d),
        load_ratio
    ));
    lines.push(format!(
        "baseline HashMap: store {:.0} pages/s, load {:.0} pages/s; {base_bytes} heap bytes = {:.1} B/page",
        ps(bstore),
        ps(bload),
        base_bytes as f64 / n as f64
    ));
    lines.push(format!(
        "mixed store/load/invalidate: 1 thread {:.0} pages/s, 2 threads {:.0} pages/s = {:.2}x",
        ps(m1),
        2.0 * ps(m2),
        2.0 * m1.as_secs_f64() / m2.as_secs_f64()
    ));
    lines.push(format!(
        "  machine ceiling, bare lz4 compress+decompress: 1 thread {:.0} pages/s, 2 threads {:.0} pages/s = {:.2}x",
        ps(bm1),
        2.0 * ps(bm2),
        2.0 * bm1.as_secs_f64() / bm2.as_secs_f64()
    ));
    lines.push(format!(
        "  one swap type, 2 threads at distinct offsets: key-based {:.0} pages/s ({:.2}x of 1 thread), one SwapArea {:.0} pages/s ({:.2}x of its 1 thread, {:.0} pages/s)",
        2.0 * ps(km2),
        2.0 * m1.as_secs_f64() / km2.as_secs_f64(),
        2.0 * ps(am2),
        2.0 * am1.as_secs_f64() / am2.as_secs_f64(),
        ps(am1)
    ));
    lines.push(format!(
        "  cleancache on one Mount (zbud, 4 shards), 2 threads on their own files: 1 thread {:.0} pages/s, 2 threads {:.0} pages/s = {:.2}x ({:.2} of the machine's ceiling)",
        ps(cm1),
        2.0 * ps(cm2),
        2.0 * cm1.as_secs_f64() / cm2.as_secs_f64(),
        (cm1.as_secs_f64() / cm2.as_secs_f64()) / (bm1.as_secs_f64() / bm2.as_secs_f64())
    ));
    println!();
    for l in lines.iter() {
        println!("{l}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
