//! Allocator cost per store and per load against lz4_flex compression and
//! decompression of a page, in the same run, on real pages.
//!
//! * `lz4_flex_compress_page` / `lz4_flex_decompress_page`: one dev page at a time, round
//!   robin over the non-same-filled pages of the 1024-page sample.
//! * `zbud_store_then_free_oldest`: `store` (malloc + write under one lock hold) of the
//!   next compressed object, plus the `free` of the oldest live one, in a pool kept at
//!   4096 live objects (a steady state with realistic unbuddied lists). This is an upper
//!   bound on the cost of a store.
//! * `zbud_load`: `read` of one live object into a page buffer, round robin.
//!
//! Run: `cargo bench -p zbud --bench cost`.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use zbud::ZBud;
use zcache_testdata::Corpus;
use zpool::{HeapPageSource, PAGE_SIZE, ZPool};

fn cost(c: &mut Criterion) {
    let corpus = Corpus::sample();
    let pages: Vec<&[u8; PAGE_SIZE]> = corpus
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, p)| p)
        .collect();
    let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    let objs: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let n = lz4_flex::block::compress_into(&p[..], &mut buf).expect("compress");
            buf[..n].to_vec()
        })
        .filter(|o| o.len() < PAGE_SIZE)
        .collect();
    let mean = objs.iter().map(Vec::len).sum::<usize>() / objs.len();
    println!("{} objects, mean compressed size {mean} B", objs.len());

    let mut g = c.benchmark_group("zbud_cost");
    let mut i = 0usize;
    g.bench_function("lz4_flex_compress_page", |b| {
        b.iter(|| {
            i = (i + 1) % pages.len();
            black_box(lz4_flex::block::compress_into(&pages[i][..], &mut buf).expect("compress"))
        })
    });
    let mut page = [0u8; PAGE_SIZE];
    g.bench_function("lz4_flex_decompress_page", |b| {
        b.iter(|| {
            i = (i + 1) % objs.len();
            black_box(lz4_flex::block::decompress_into(&objs[i], &mut page).expect("decompress"))
        })
    });

    let pool = ZBud::new(HeapPageSource);
    let mut live: VecDeque<_> = (0..4096)
        .map(|k| pool.store(&objs[k % objs.len()]).expect("store"))
        .collect();
    g.bench_function("zbud_store_then_free_oldest", |b| {
        b.iter(|| {
            i = (i + 1) % objs.len();
            let h = pool.store(black_box(&objs[i])).expect("store");
            live.push_back(h);
            let old = live.pop_front().expect("live");
            pool.free(old).expect("free");
        })
    });
    let handles: Vec<_> = live.iter().copied().collect();
    g.bench_function("zbud_load", |b| {
        b.iter(|| {
            i = (i + 1) % handles.len();
            black_box(pool.read(handles[i], &mut page).expect("read"))
        })
    });
    g.finish();
    let st = pool.zbud_stats();
    println!(
        "steady-state pool: {} objects in {} frames ({} lone)",
        st.objects, st.frames, st.lone_frames
    );
}

criterion_group!(benches, cost);
criterion_main!(benches);
