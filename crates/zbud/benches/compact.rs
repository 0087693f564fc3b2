//! Compaction work per lock hold, against the pool's population.
//!
//! A pool holds N objects of one size (1500 bytes, 24 chunks: two per frame), half of
//! them then freed at random (fixed seed), so about half the frames are lone. Each
//! measured call is `compact_step(8)`: one lock hold of one phase of the round (a
//! 64-frame slice of the snapshot, 512 planning steps, up to 4 planned pairs, or up to 8
//! lone-pairing moves). The time per call must not grow with N. Frames come from a
//! `RecyclingSource`, so the figures are the allocator's, not the heap's.
//!
//! Run: `cargo bench -p zbud --bench compact`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group};
use zbud::ZBud;
use zpool::{HeapPageSource, RecyclingSource, ZPool};

const LEN: usize = 1500;
const STEP: usize = 8;
const POPULATIONS: [usize; 3] = [1_000, 10_000, 100_000];

type Pool = ZBud<RecyclingSource<HeapPageSource>>;

/// Fixed-seed splitmix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn populated(n: usize, seed: u64) -> Pool {
    let pool = ZBud::new(RecyclingSource::new(HeapPageSource, 4096).expect("cache"));
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7) as u8).collect();
    let mut hs: Vec<_> = (0..n).map(|_| pool.store(&data).expect("store")).collect();
    let mut rng = Rng(seed);
    for i in (1..hs.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        hs.swap(i, j);
    }
    for h in hs.drain(n / 2..) {
        pool.free(h).expect("free");
    }
    pool
}

fn summary() {
    println!("compact_step({STEP}) per call, {LEN}-byte objects, half freed at random:");
    println!(
        "| objects | frames before -> after | steps | moved | mean | median | p99 | max | per step that moved |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in POPULATIONS {
        let mut times: Vec<Duration> = Vec::new();
        let mut moving: Vec<Duration> = Vec::new();
        let mut moved = 0usize;
        let mut frames = (0, 0);
        for seed in 0..3 {
            let pool = populated(n, 0x5eed + seed);
            let before = pool.total_frames();
            loop {
                let t = Instant::now();
                let s = pool.compact_step(STEP);
                let d = t.elapsed();
                times.push(d);
                if s.objects_moved > 0 {
                    moving.push(d);
                }
                moved += s.objects_moved;
                if s.done {
                    break;
                }
            }
            frames = (before, pool.total_frames());
        }
        let steps = times.len();
        let total: Duration = times.iter().sum();
        let mtotal: Duration = moving.iter().sum();
        times.sort();
        let ns = |d: Duration| d.as_secs_f64() * 1e9;
        println!(
            "| {n} | {} -> {} | {} | {} | {:.0} ns | {:.0} ns | {:.0} ns | {:.0} ns | {:.0} ns |",
            frames.0,
            frames.1,
            steps / 3,
            moved / 3,
            ns(total) / steps as f64,
            ns(times[steps / 2]),
            ns(times[steps * 99 / 100]),
            ns(times[steps - 1]),
            ns(mtotal) / moving.len().max(1) as f64,
        );
    }
    println!();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("zbud_compact_step");
    for n in POPULATIONS {
        g.bench_with_input(BenchmarkId::new("objects", n), &n, |b, &n| {
            let mut pool = populated(n, 1);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let s = black_box(pool.compact_step(black_box(STEP)));
                    total += t.elapsed();
                    if s.done {
                        // Spent: a fresh pool, outside the timing.
                        pool = populated(n, 1);
                    }
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    summary();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
