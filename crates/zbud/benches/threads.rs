//! Two threads on one pool: zbud's own store + read + free mix on distinct objects, one
//! thread against two, one shard against the default shards (stores starting at shard
//! 0, and starting at a per-thread shard with `ZBud::with_shard_hint`), in the same run;
//! with bare
//! lz4_flex (compress + decompress of the same pages) as the machine's own two-thread
//! scaling, and lz4_flex + zbud (compress, store, read, decompress, free) as a store and
//! load would use the pool.
//!
//! Objects: the sample corpus's pages compressed by lz4_flex (those under a page; mean
//! about 1.6 KB). Each thread keeps its own 1024 live objects in a ring: an op stores
//! the next object, reads a live one (a fixed stride through the ring) and frees the
//! oldest, so the pool stays at 1024 objects per thread. Frames come from the global
//! allocator (`HeapPageSource`; glibc's per-thread arenas scale). Every pass is a fresh
//! pool, filled by each thread before a barrier; the figure is wall time from the
//! barrier until the last thread is done, ops counted over all threads. The passes of
//! every configuration alternate, round after round (the machine is shared: each round
//! sees the same noise), and the median round is reported, with the scaling ratio
//! (2-thread ops/s over 1-thread ops/s) computed per round and its median.
//!
//! Run: `cargo bench -p zbud --bench threads` (env `ROUNDS`, default 9).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use zbud::ZBud;
use zcache_testdata::Corpus;
use zpool::{Handle, HeapPageSource, PAGE_SIZE, ZPool};

const LIVE: usize = 1024;
/// zbud-only ops per thread per pass (about 0.3-0.5 us each).
const ZBUD_OPS: usize = 200_000;
/// Ops per thread per pass of the mixes that compress (about 10 us each).
const LZ4_OPS: usize = 8_000;

#[derive(Clone, Copy, Debug)]
enum Work {
    /// store + read + free.
    Zbud { shards: usize },
    /// The same, stores starting at the thread's own shard (`ZBud::with_shard_hint`).
    ZbudHint { shards: usize },
    /// compress + decompress of a page, no pool.
    Lz4,
    /// compress + store, read + decompress, free.
    Lz4Zbud { shards: usize },
}

impl Work {
    fn name(self) -> String {
        match self {
            Work::Zbud { shards } => format!("zbud store+read+free, K={shards}"),
            Work::ZbudHint { shards } => format!("zbud store+read+free, K={shards}, hint"),
            Work::Lz4 => "bare lz4_flex compress+decompress".to_string(),
            Work::Lz4Zbud { shards } => format!("lz4_flex + zbud, K={shards}"),
        }
    }
}

/// One thread's ops: returns a checksum so nothing is optimised away.
fn run_thread(
    work: Work,
    pool: Option<&ZBud<HeapPageSource>>,
    pages: &[&[u8; PAGE_SIZE]],
    objs: &[Vec<u8>],
    seed: usize,
    barrier: &Barrier,
) -> usize {
    let mut out = vec![0u8; PAGE_SIZE];
    let mut cbuf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    let mut page = [0u8; PAGE_SIZE];
    let mut sum = 0usize;
    let mut i = seed * 7919;
    let mut ring: Vec<Handle> = Vec::new();
    if let Some(p) = pool {
        ring = (0..LIVE)
            .map(|k| {
                p.store(&objs[(seed * 131 + k) % objs.len()])
                    .expect("store")
            })
            .collect();
    }
    let mut oldest = 0usize;
    barrier.wait();
    match work {
        Work::Zbud { .. } | Work::ZbudHint { .. } => {
            let p = pool.expect("pool");
            for _ in 0..ZBUD_OPS {
                i += 1;
                let h = p.store(black_box(&objs[i % objs.len()])).expect("store");
                sum += p.read(ring[(oldest + 517) % LIVE], &mut out).expect("read");
                p.free(std::mem::replace(&mut ring[oldest], h))
                    .expect("free");
                oldest = (oldest + 1) % LIVE;
            }
        }
        Work::Lz4 => {
            for _ in 0..LZ4_OPS {
                i += 1;
                let n = lz4_flex::block::compress_into(&pages[i % pages.len()][..], &mut cbuf)
                    .expect("compress");
                let o = &objs[(i + 517) % objs.len()];
                sum += n + lz4_flex::block::decompress_into(o, &mut page).expect("decompress");
            }
        }
        Work::Lz4Zbud { .. } => {
            let p = pool.expect("pool");
            for _ in 0..LZ4_OPS {
                i += 1;
                let n = lz4_flex::block::compress_into(&pages[i % pages.len()][..], &mut cbuf)
                    .expect("compress");
                let h = p.store(&cbuf[..n]).expect("store");
                let m = p.read(ring[(oldest + 517) % LIVE], &mut out).expect("read");
                sum += lz4_flex::block::decompress_into(&out[..m], &mut page).expect("decompress");
                p.free(std::mem::replace(&mut ring[oldest], h))
                    .expect("free");
                oldest = (oldest + 1) % LIVE;
            }
        }
    }
    barrier.wait();
    // The main thread counts objects per shard here.
    barrier.wait();
    if let Some(p) = pool {
        for h in ring {
            p.free(h).expect("free");
        }
    }
    sum
}

/// One pass: ops/s over all threads, and (for a pool) the objects per shard at the end
/// of the timed part.
fn pass(
    work: Work,
    threads: usize,
    pages: &[&[u8; PAGE_SIZE]],
    objs: &[Vec<u8>],
) -> (f64, Vec<usize>) {
    let pool = match work {
        Work::Zbud { shards } | Work::Lz4Zbud { shards } => {
            Some(ZBud::with_shards(HeapPageSource, shards))
        }
        Work::ZbudHint { shards } => {
            Some(ZBud::with_shard_hint(HeapPageSource, shards, thread_hint))
        }
        Work::Lz4 => None,
    };
    let barrier = Barrier::new(threads + 1);
    let ops = match work {
        Work::Zbud { .. } | Work::ZbudHint { .. } => ZBUD_OPS,
        _ => LZ4_OPS,
    } * threads;
    let (elapsed, per_shard) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (pool, barrier) = (pool.as_ref(), &barrier);
                s.spawn(move || run_thread(work, pool, pages, objs, t + 1, barrier))
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        let elapsed = start.elapsed();
        let per_shard = pool.as_ref().map(shard_objects).unwrap_or_default();
        barrier.wait();
        for h in handles {
            black_box(h.join().expect("thread"));
        }
        (elapsed, per_shard)
    });
    if let Some(p) = &pool {
        assert_eq!(p.stats().objects, 0);
    }
    (ops as f64 / elapsed.as_secs_f64(), per_shard)
}

/// Live objects per shard.
fn shard_objects(p: &ZBud<HeapPageSource>) -> Vec<usize> {
    (0..p.shards())
        .map(|i| p.shard_stats(i).map_or(0, |s| s.objects))
        .collect()
}

/// Each thread's number, in order of first use (zcache's `thread_hint`).
fn thread_hint() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    MINE.with(|m| *m)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is parsed.
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    let corpus = Corpus::sample().joined::<PAGE_SIZE>();
    let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    let pages: Vec<&[u8; PAGE_SIZE]> = corpus
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, p)| p)
        .filter(|p| lz4_flex::block::compress_into(&p[..], &mut buf).expect("c") < PAGE_SIZE)
        .collect();
    let objs: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let n = lz4_flex::block::compress_into(&p[..], &mut buf).expect("compress");
            buf[..n].to_vec()
        })
        .collect();
    let mean = objs.iter().map(Vec::len).sum::<usize>() / objs.len();
    let k = zbud::DEFAULT_SHARDS;
    let works = [
        Work::Zbud { shards: 1 },
        Work::Zbud { shards: k },
        Work::ZbudHint { shards: k },
        Work::Lz4,
        Work::Lz4Zbud { shards: 1 },
        Work::Lz4Zbud { shards: k },
    ];
    println!(
        "{} objects (mean {mean} B), {LIVE} live per thread, {rounds} rounds; \
         available parallelism {}",
        objs.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // results[work][threads-1] = ops/s per round
    let mut results = vec![[Vec::new(), Vec::new()]; works.len()];
    let mut spread = vec![[Vec::new(), Vec::new()]; works.len()];
    let t0 = Instant::now();
    for _ in 0..rounds {
        for (w, work) in works.iter().enumerate() {
            for threads in [1, 2] {
                let (ops, per_shard) = pass(*work, threads, &pages, &objs);
                results[w][threads - 1].push(ops);
                spread[w][threads - 1] = per_shard;
            }
        }
    }
    println!(
        "{:<40} {:>12} {:>12} {:>9} {:>9}",
        "work", "1 thread/s", "2 threads/s", "scaling", "(min-max)"
    );
    for (w, work) in works.iter().enumerate() {
        let [one, two] = &results[w];
        let ratios: Vec<f64> = one.iter().zip(two).map(|(a, b)| b / a).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), &r| (l.min(r), h.max(r)));
        println!(
            "{:<40} {:>11.0}k {:>11.0}k {:>8.2}x {:>4.2}-{:.2}",
            work.name(),
            median(one.clone()) / 1e3,
            median(two.clone()) / 1e3,
            median(ratios),
            lo,
            hi
        );
    }
    for (w, work) in works.iter().enumerate() {
        let [one, two] = &spread[w];
        {
            if one.len() > 1 {
                println!(
                    "{}: live objects per shard at the end of the last round's timed part: \
                     1 thread {one:?}, 2 threads {two:?}",
                    work.name()
                );
            }
        }
    }
    println!("total {:.1} s", t0.elapsed().as_secs_f64());
}
