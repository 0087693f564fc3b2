//! Allocator cost per store and per load, against lz4_flex compression and decompression
//! of the same corpus pages in the same run.
//!
//! The pool is first filled with every dev page (compressed), so the measured operations
//! run in a realistic, populated pool. Each iteration handles the next page of a 1024-page
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
//! Run: `cargo bench -p zsmalloc --bench cost`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use zcache_testdata::Corpus;
use zpool::{HeapPageSource, ZPool};
use zsmalloc::ZsPool;

fn bench(c: &mut Criterion) {
    let corpus = Corpus::dev();
    let pages: Vec<&[u8; 4096]> = corpus
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, p)| p)
        .collect();
    let mut scratch = vec![0u8; 4525];
    let compressed: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let n = lz4_flex::block::compress_into(&p[..], &mut scratch).expect("scratch");
            if n > 4096 {
                p.to_vec()
            } else {
                scratch[..n].to_vec()
            }
        })
        .collect();
    // The cycle: 1024 pages spread over the corpus, all compressible ones (so the
    // decompression bench has a compressed form for each).
    let cycle: Vec<usize> = (0..pages.len())
        .step_by(pages.len() / 1024)
        .filter(|&i| compressed[i].len() < 4096)
        .take(
            std::env::var("ZS_COST_CYCLE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1024),
        )
        .collect();

    let pool = ZsPool::new(HeapPageSource).expect("pool");
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
    let mut page = vec![0u8; 4096];
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
    let mut out = vec![0u8; 4096];
    g.bench_function("zsmalloc/load", |b| {
        b.iter(|| {
            let h = handles[cycle[i % cycle.len()]];
            i += 1;
            black_box(pool.read(black_box(h), &mut out).expect("read"))
        })
    });
    let mut bounce = vec![0u8; 4096];
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

criterion_group!(benches, bench);
criterion_main!(benches);
