//! Allocator cost per store and per load, against lz4_flex compression and decompression
//! of the same corpus pages in the same run.
//!
//! The pool is first filled with every dev page (compressed), so the measured operations
//! run in a realistic, populated pool. Its page source recycles freed frames (see
//! `RecyclingSource`), as a kernel's per-CPU page lists would. Each iteration handles the next page of a 1024-page
//! cycle:
//! * `lz4_flex/compress_page`: `compress_into` of one 4 KiB page;
//! * `lz4_flex/decompress_page`: `decompress_into` of one compressed page;
//! * `zsmalloc/store_free`: `store` of one compressed page (from a buffer just written,
//!   as a compressor's output is) then `free` of it: a store's cost plus its free;
//! * `zsmalloc/malloc_free`: `malloc` of one compressed page's length then `free`: the
//!   bookkeeping alone, without copying the bytes in;
//! * `zsmalloc/load`: `read` of one stored compressed page into a buffer (a copy);
//! * `zsmalloc/map`: `read_with` of one stored page, the closure touching nothing (the
//!   allocator's own cost of a zero-copy load: lock, handle check, location);
//! * `zsmalloc/map_and_decompress`: `read_with` with lz4 decompression from the pool's
//!   frames (compare with `lz4_flex/decompress_page`).
//!
//! After the criterion runs, an interleaved summary times every kind of operation back to
//! back in 40 rounds and prints the ratios (steadier on a shared machine).
//!
//! Run: `cargo bench -p zsmalloc --bench cost`

use std::hint::black_box;

use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group};
use std::sync::Mutex;
use zcache_testdata::Corpus;

use zpool::{AllocError, Frame, HeapPageSource, PAGE_SIZE, PageSource, ZPool};
use zsmalloc::ZsPool;

/// A page source that keeps freed frames on a list and hands them out again (as a
/// kernel's per-CPU page lists do), so the figures are the allocator's and not the cost of
/// `alloc_zeroed` + `dealloc` of 4 KiB aligned blocks in the C library's heap.
#[derive(Default)]
struct RecyclingSource {
    spare: Mutex<Vec<Frame>>,
}

impl PageSource for RecyclingSource {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        match self.spare.lock().expect("lock").pop() {
            Some(f) => Ok(f),
            None => HeapPageSource.alloc_frame(),
        }
    }

    fn free_frame(&self, frame: Frame) {
        self.spare.lock().expect("lock").push(frame);
    }
}

impl Drop for RecyclingSource {
    fn drop(&mut self) {
        for f in self.spare.get_mut().expect("lock").drain(..) {
            HeapPageSource.free_frame(f);
        }
    }
}

fn bench(c: &mut Criterion) {
    let corpus = Corpus::dev().joined::<PAGE_SIZE>();
    let pages: Vec<&[u8; PAGE_SIZE]> = corpus
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, p)| p)
        .collect();
    let mut scratch = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE).max(4525)];
    let compressed: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let n = lz4_flex::block::compress_into(&p[..], &mut scratch).expect("scratch");
            if n > PAGE_SIZE {
                p.to_vec()
            } else {
                scratch[..n].to_vec()
            }
        })
        .collect();
    // The cycle: 1024 pages spread over the corpus, all compressible ones (so the
    // decompression bench has a compressed form for each).
    let cycle: Vec<usize> = (0..pages.len())
        .step_by((pages.len() / 1024).max(1))
        .filter(|&i| compressed[i].len() < PAGE_SIZE)
        .take(
            std::env::var("ZS_COST_CYCLE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1024),
        )
        .collect();

    let pool = ZsPool::new(RecyclingSource::default()).expect("pool");
    let handles: Vec<_> = compressed
        .iter()
        .map(|o| pool.store(o).expect("store"))
        .collect();

    let mut g = c.benchmark_group("cost_per_page");
    let mut i = 0;
    g.bench_function("lz4_flex/compress_page", |b| {
        b.iter(|| {
            let p = pages[cycle[i % cycle.len()]];
            i += 1;
            black_box(
                lz4_flex::block::compress_into(black_box(&p[..]), &mut scratch).expect("compress"),
            )
        })
    });
    let mut page = vec![0u8; PAGE_SIZE];
    g.bench_function("lz4_flex/decompress_page", |b| {
        b.iter(|| {
            let o = &compressed[cycle[i % cycle.len()]];
            i += 1;
            black_box(
                lz4_flex::block::decompress_into(black_box(o), &mut page).expect("decompress"),
            )
        })
    });
    g.bench_function("zsmalloc/store_free", |b| {
        // The object to store is first copied (untimed) into a fresh buffer, as a
        // compressor's output would be: hot in cache, like in a real store.
        b.iter_batched_ref(
            || {
                let o = compressed[cycle[i % cycle.len()]].clone();
                i += 1;
                o
            },
            |o| {
                let h = pool.store(black_box(o)).expect("store");
                pool.free(black_box(h)).expect("free");
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("zsmalloc/malloc_free", |b| {
        b.iter(|| {
            let len = compressed[cycle[i % cycle.len()]].len();
            i += 1;
            let h = pool.malloc(black_box(len)).expect("malloc");
            pool.free(black_box(h)).expect("free");
        })
    });
    let mut out = vec![0u8; PAGE_SIZE];
    g.bench_function("zsmalloc/load", |b| {
        b.iter(|| {
            let h = handles[cycle[i % cycle.len()]];
            i += 1;
            black_box(pool.read(black_box(h), &mut out).expect("read"))
        })
    });
    let mut bounce = vec![0u8; PAGE_SIZE];
    g.bench_function("zsmalloc/map", |b| {
        b.iter(|| {
            let h = handles[cycle[i % cycle.len()]];
            i += 1;
            pool.read_with(black_box(h), &mut bounce, |s| black_box(s.len()))
                .expect("map")
        })
    });
    g.bench_function("zsmalloc/map_and_decompress", |b| {
        b.iter(|| {
            let h = handles[cycle[i % cycle.len()]];
            i += 1;
            pool.read_with(black_box(h), &mut bounce, |s| {
                lz4_flex::block::decompress_into(s, &mut page).expect("decompress")
            })
            .expect("map")
        })
    });
    g.finish();
}

/// Interleaved rounds: for each chunk of 64 pages, every kind of operation is timed back to
/// back, 40 times, and the minimum per chunk and kind is kept. On a shared machine this ratio
/// is steadier than one made of separate criterion runs minutes apart. "In context"
/// compares a compression followed by a store with the compression alone, and a
/// decompression straight from the pool's frames (`read_with`) with one from a heap
/// buffer: the allocator's cost as a store or load sees it, with the first touch of the
/// object's bytes charged to whichever step makes it.
fn interleaved_summary() {
    let corpus = Corpus::dev().joined::<PAGE_SIZE>();
    let pages: Vec<&[u8; PAGE_SIZE]> = corpus
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, p)| p)
        .collect();
    let mut scratch = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE).max(4525)];
    let compressed: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let n = lz4_flex::block::compress_into(&p[..], &mut scratch).expect("scratch");
            if n > PAGE_SIZE {
                p.to_vec()
            } else {
                scratch[..n].to_vec()
            }
        })
        .collect();
    let cycle: Vec<usize> = (0..pages.len())
        .step_by((pages.len() / 1024).max(1))
        .filter(|&i| compressed[i].len() < PAGE_SIZE)
        .take(1024)
        .collect();
    let pool = ZsPool::new(RecyclingSource::default()).expect("pool");
    let handles: Vec<_> = compressed
        .iter()
        .map(|o| pool.store(o).expect("store"))
        .collect();
    let mut page = vec![0u8; PAGE_SIZE];
    let mut out = vec![0u8; PAGE_SIZE];
    let mut bounce = vec![0u8; PAGE_SIZE];
    let names = [
        "lz4_flex compress",
        "lz4_flex compress + zsmalloc store",
        "lz4_flex decompress (from a heap buffer)",
        "zsmalloc map + lz4_flex decompress (from frames)",
        "zsmalloc malloc + free (bookkeeping only)",
        "zsmalloc read (copy out)",
        "zsmalloc map alone (read_with, no copy)",
        "zsmalloc free",
        "lz4_flex compress + copy to a bump arena (floor)",
    ];
    // 16 chunks of 64 pages; per chunk and kind the minimum over 40 repetitions (a chunk
    // takes about a millisecond, short enough to often run undisturbed on a busy
    // machine); per kind the sum over chunks, divided by the pages.
    let full_cycle = cycle.clone();
    let mut sum = [0f64; 9];
    for chunk in full_cycle.chunks(64) {
        let cycle: Vec<usize> = chunk.to_vec();
        let mut best = [f64::INFINITY; 9];
        let mut stored = vec![None; cycle.len()];
        let mut arena = vec![0u8; cycle.len() * PAGE_SIZE];
        for _ in 0..40 {
            let mut times = [0f64; 9];
            let t = Instant::now();
            for &i in &cycle {
                black_box(lz4_flex::block::compress_into(&pages[i][..], &mut scratch).expect("c"));
            }
            times[0] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for (k, &i) in cycle.iter().enumerate() {
                let n = lz4_flex::block::compress_into(&pages[i][..], &mut scratch).expect("c");
                stored[k] = Some(pool.store(black_box(&scratch[..n])).expect("store"));
            }
            times[1] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for h in stored.iter_mut() {
                if let Some(h) = h.take() {
                    pool.free(h).expect("free");
                }
            }
            times[7] = t.elapsed().as_secs_f64();
            // The floor any backend pays: the compressed bytes copied to their resting
            // place, here a bump pointer in a preallocated arena.
            let t = Instant::now();
            let mut at = 0;
            for &i in &cycle {
                let n = lz4_flex::block::compress_into(&pages[i][..], &mut scratch).expect("c");
                arena[at..at + n].copy_from_slice(black_box(&scratch[..n]));
                at += n;
            }
            black_box(&arena);
            times[8] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for &i in &cycle {
                black_box(lz4_flex::block::decompress_into(&compressed[i], &mut page).expect("d"));
            }
            times[2] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for &i in &cycle {
                pool.read_with(handles[i], &mut bounce, |s| {
                    black_box(lz4_flex::block::decompress_into(s, &mut page).expect("d"))
                })
                .expect("map");
            }
            times[3] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for &i in &cycle {
                let h = pool.malloc(compressed[i].len()).expect("malloc");
                pool.free(black_box(h)).expect("free");
            }
            times[4] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for &i in &cycle {
                black_box(pool.read(handles[i], &mut out).expect("read"));
            }
            times[5] = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for &i in &cycle {
                black_box(
                    pool.read_with(handles[i], &mut bounce, |s| s.len())
                        .expect("map"),
                );
            }
            times[6] = t.elapsed().as_secs_f64();
            for (b, t) in best.iter_mut().zip(times) {
                *b = b.min(t);
            }
        }
        for (s, b) in sum.iter_mut().zip(best) {
            *s += b;
        }
    }
    let best = sum.map(|t| t / full_cycle.len() as f64);
    let cycle = &full_cycle;
    println!();
    println!(
        "interleaved rounds ({} pages in chunks of 64, min of 40 runs per chunk), per page:",
        cycle.len()
    );
    for (n, b) in names.iter().zip(best) {
        println!("  {n:<50} {:>9.1} ns", b * 1e9);
    }
    let pct = |a: f64, b: f64| 100.0 * a / b;
    println!(
        "  store in context: (compress+store - compress+copy to arena) / compress = {:.2} %; (compress+store - compress) / compress = {:.2} %; free / compress = {:.2} %",
        pct(best[1] - best[8], best[0]),
        pct(best[1] - best[0], best[0]),
        pct(best[7], best[0])
    );
    println!(
        "  load in context: (map+decompress - decompress) / decompress = {:.2} %",
        pct(best[3] - best[2], best[2])
    );
    println!(
        "  alone: malloc+free / compress = {:.2} %, read / decompress = {:.2} %, map / decompress = {:.2} %",
        pct(best[4], best[0]),
        pct(best[5], best[2]),
        pct(best[6], best[2])
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    interleaved_summary();
    Criterion::default().configure_from_args().final_summary();
}
