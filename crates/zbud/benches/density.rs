//! Density of zbud on the dev corpus at the build's page size (`Corpus::joined::<
//! PAGE_SIZE>()`: 8,368 pages at 4 KiB, 1,874 at 16 KiB, 416 at 64 KiB): every page
//! compressed with lz4_flex (same-filled pages skipped, pages that do not shrink stored
//! raw at `PAGE_SIZE` bytes) and stored once, in arrival order. Prints frames against the
//! ideal, against a simulation of Linux `mm/zbud` at the same page size (chunks of
//! `PAGE_SIZE / 64`, 63 usable after a one-chunk header, unbuddied lists by free chunks,
//! smallest sufficient hole first) on the same sizes, and against the offline optimum
//! pairing (also with 64-byte chunks, what finer chunks could give at 16/64 KiB); then
//! compacts and prints again. The same report is printed for the C lz4
//! library's sizes (the `lz4` crate), which `testdata/README.md` used for its reference
//! figures. A criterion measurement of filling a pool with every dev object follows.
//!
//! Each report is made twice, with one shard and with the default shards (one thread:
//! every object goes to shard 0, so the figures must be the same).
//!
//! Run: `cargo bench -p zbud --bench density`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use zbud::{CHUNK_SIZE, NCHUNKS, ZBud};
use zcache_testdata::Corpus;
use zpool::testing::CountingSource;
use zpool::{HeapPageSource, PAGE_SIZE, ZPool};

/// Compressed objects of the non-same-filled pages, in arrival order (raw page when
/// compression does not shrink it).
fn objects(corpus: &Corpus, c_lz4: bool) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    corpus
        .joined::<PAGE_SIZE>()
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, page)| {
            let out: Vec<u8> = if c_lz4 {
                lz4::block::compress(page, None, false).expect("lz4 compress")
            } else {
                let n = lz4_flex::block::compress_into(page, &mut buf).expect("lz4_flex");
                buf[..n].to_vec()
            };
            if out.len() >= PAGE_SIZE {
                page.to_vec()
            } else {
                out
            }
        })
        .collect()
}

/// Linux's chunk at this page size: `CHUNK_SHIFT = PAGE_SHIFT - NCHUNKS_ORDER (6)`.
const LCHUNK: usize = PAGE_SIZE >> 6;
/// Linux's largest object: `PAGE_SIZE - ZHDR_SIZE_ALIGNED - CHUNK_SIZE` (3968 at 4 KiB).
const LMAX: usize = PAGE_SIZE - 2 * LCHUNK;

/// Linux `mm/zbud` placement in arrival order, no frees: a one-chunk header leaves 63
/// chunks of `PAGE_SIZE / 64`; objects over `LMAX` bytes are refused by Linux (counted
/// here as one frame each, as if stored uncompressed, and reported). Returns (frames,
/// refused).
fn linux_zbud_frames(sizes: &[usize]) -> (usize, usize) {
    const LNCHUNKS: usize = 63;
    // unbuddied[free chunks] = number of lone pages with that many free chunks (with no
    // frees, which page of a list is taken does not change the count).
    let mut unbuddied = [0usize; LNCHUNKS + 1];
    let (mut frames, mut refused) = (0, 0);
    for &s in sizes {
        if s > LMAX {
            refused += 1;
            frames += 1;
            continue;
        }
        let c = s.div_ceil(LCHUNK);
        // Search from `c` upward: the first non-empty list is the smallest sufficient hole.
        if let Some(k) = (c..LNCHUNKS).find(|&k| unbuddied[k] > 0) {
            unbuddied[k] -= 1; // the page becomes buddied
        } else {
            frames += 1;
            unbuddied[LNCHUNKS - c] += 1;
        }
    }
    (frames, refused)
}

/// Offline optimum: the most pairs of objects that fit `capacity` chunks together
/// (two-pointer on sorted chunk counts, which maximises the pairs); frames = objects -
/// pairs.
fn optimum_frames(sizes: &[usize], chunk: usize, capacity: usize) -> usize {
    let mut c: Vec<usize> = sizes.iter().map(|&s| s.div_ceil(chunk)).collect();
    c.sort_unstable();
    let (mut i, mut j, mut pairs) = (0usize, c.len(), 0usize);
    while j > 0 && i + 1 < j {
        if c[i] + c[j - 1] <= capacity {
            pairs += 1;
            i += 1;
        }
        j -= 1;
    }
    c.len() - pairs
}

fn report(name: &str, objs: &[Vec<u8>], shards: usize) {
    let sizes: Vec<usize> = objs.iter().map(Vec::len).collect();
    let total: usize = sizes.iter().sum();
    let ideal = total.div_ceil(PAGE_SIZE);
    let src = Arc::new(CountingSource::new(HeapPageSource));
    let pool = ZBud::with_shards(Arc::clone(&src), shards);
    let handles: Vec<_> = objs.iter().map(|o| pool.store(o).expect("store")).collect();
    let frames = pool.total_frames();
    let st = pool.zbud_stats();
    let meta = pool.stats().metadata_bytes;
    let (linux, refused) = linux_zbud_frames(&sizes);
    let opt64 = optimum_frames(&sizes, CHUNK_SIZE, NCHUNKS);
    let opt63 = optimum_frames(&sizes, CHUNK_SIZE, 63);
    let opt_fine = optimum_frames(&sizes, 64, PAGE_SIZE / 64);
    let freed = pool.compact();
    let after = pool.total_frames();
    let st2 = pool.zbud_stats();
    // Every object is intact after compaction.
    let mut buf = vec![0u8; PAGE_SIZE];
    for (h, o) in handles.iter().zip(objs) {
        let n = pool.read(*h, &mut buf).expect("read");
        assert_eq!(&buf[..n], &o[..], "object changed by compaction");
    }
    let per_shard: Vec<usize> = (0..pool.shards())
        .map(|i| pool.shard_stats(i).map_or(0, |s| s.objects))
        .collect();
    println!(
        "== zbud density, {name} sizes, dev corpus, {} KiB pages ({CHUNK_SIZE} B chunks), {shards} shard(s) ==",
        PAGE_SIZE >> 10
    );
    println!("objects per shard (one thread): {per_shard:?}");
    println!(
        "objects {} (same-filled pages skipped), bytes {total}, mean {:.0} B, raw (>= {PAGE_SIZE} B) {}",
        sizes.len(),
        total as f64 / sizes.len() as f64,
        sizes.iter().filter(|&&s| s == PAGE_SIZE).count()
    );
    println!("ideal (bytes / {PAGE_SIZE})             {ideal:>6}");
    println!(
        "Linux mm/zbud best fit, arrival   {linux:>6}  = {:.3}x ideal ({refused} objects over {LMAX} B counted as one frame each)",
        linux as f64 / ideal as f64
    );
    println!(
        "offline optimum pairing, 64 chunks {opt64:>5}   (63 chunks: {opt63}; 64-byte chunks: {opt_fine})"
    );
    println!(
        "zbud, arrival order               {frames:>6}  = {:.3}x ideal, {:.3}x Linux, {:.3}x optimum; lone frames {}",
        frames as f64 / ideal as f64,
        frames as f64 / linux as f64,
        frames as f64 / opt64 as f64,
        st.lone_frames
    );
    println!(
        "zbud after compact()              {after:>6}  = {:.3}x ideal, {:.3}x optimum; {freed} frames freed, lone frames {}",
        after as f64 / ideal as f64,
        after as f64 / opt64 as f64,
        st2.lone_frames
    );
    println!(
        "metadata outside frames: {meta} B = {:.1} B per object ({} B descriptors, {} B handles)",
        meta as f64 / sizes.len() as f64,
        st.descriptor_bytes,
        st.handle_bytes
    );
    drop(pool);
    assert_eq!(src.live(), 0);
}

fn fill_bench(c: &mut Criterion) {
    let corpus = Corpus::dev();
    let objs = objects(&corpus, false);
    for shards in [1, zbud::DEFAULT_SHARDS] {
        report("lz4_flex", &objs, shards);
    }
    let c_lz4 = objects(&corpus, true);
    for shards in [1, zbud::DEFAULT_SHARDS] {
        report("C lz4 (lz4 crate)", &c_lz4, shards);
    }
    let mut g = c.benchmark_group("zbud_density");
    g.sample_size(20);
    g.bench_function("fill_pool_with_every_dev_object_then_compact", |b| {
        b.iter(|| {
            let pool = ZBud::new(HeapPageSource);
            for o in &objs {
                black_box(pool.store(o).expect("store"));
            }
            black_box(pool.compact());
            black_box(pool.total_frames())
        })
    });
    g.finish();
}

criterion_group!(benches, fill_bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
