//! Compaction work per lock hold, against the class's population.
//!
//! A pool holds N objects of one size (1500 bytes: 1536-byte slots, objects spanning
//! frames, 168 per 63-frame zspage), half of them then freed at random (fixed seed), so
//! every zspage is partly used. Each measured call is `compact_step(MOVES_PER_HOLD)`:
//! one class-lock hold that moves up to 8 objects (and gives back the frames they
//! free). The time per call must not grow with N: the source and destination come from
//! the fullness groups in O(groups) and each moved slot names its handle entry, so no
//! hold scans the class. Frames come from a `RecyclingSource` (as a kernel's per-CPU
//! page lists), so the figures are the allocator's, not the heap's.
//!
//! Prints, per N: steps, objects moved per step, mean / median / 99th percentile /
//! maximum time per step and time per object moved; then criterion's measurement of
//! the same call.
//!
//! Run: `cargo bench -p zsmalloc --bench compact`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group};
use zpool::{HeapPageSource, RecyclingSource, ZPool};
use zsmalloc::{MOVES_PER_HOLD, ZsPool};

const LEN: usize = 1500;
const POPULATIONS: [usize; 3] = [1_000, 10_000, 100_000];

type Pool = ZsPool<RecyclingSource<HeapPageSource>>;

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

/// N objects stored, a random half freed.
fn populated(n: usize, seed: u64) -> Pool {
    let src = RecyclingSource::new(HeapPageSource, 4096).expect("cache");
    let pool = ZsPool::new(src).expect("pool");
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
    assert!(pool.freeable() > 0);
    pool
}

fn summary() {
    println!(
        "compact_step({MOVES_PER_HOLD}) per call, one class of {LEN}-byte objects, half freed at random:"
    );
    println!(
        "| objects | frames before -> after | steps | moved/step | mean | median | p99 | max | per object moved |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in POPULATIONS {
        // Three pools per population, so a step's time is not one layout's accident.
        let mut times: Vec<Duration> = Vec::new();
        let mut moved = 0usize;
        let mut frames = (0, 0);
        for seed in 0..3 {
            let pool = populated(n, 0x5eed + seed);
            let before = pool.total_frames();
            loop {
                let t = Instant::now();
                let s = pool.compact_step(MOVES_PER_HOLD);
                times.push(t.elapsed());
                moved += s.objects_moved;
                if s.done {
                    break;
                }
            }
            assert_eq!(pool.freeable(), 0);
            frames = (before, pool.total_frames());
        }
        let steps = times.len();
        let total: Duration = times.iter().sum();
        times.sort();
        let ns = |d: Duration| d.as_secs_f64() * 1e9;
        println!(
            "| {n} | {} -> {} | {} | {:.2} | {:.0} ns | {:.0} ns | {:.0} ns | {:.0} ns | {:.0} ns |",
            frames.0,
            frames.1,
            steps / 3,
            moved as f64 / steps as f64,
            ns(total) / steps as f64,
            ns(times[steps / 2]),
            ns(times[steps * 99 / 100]),
            ns(times[steps - 1]),
            ns(total) / moved as f64,
        );
    }
    println!();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("compact_step");
    for n in POPULATIONS {
        g.bench_with_input(BenchmarkId::new("objects", n), &n, |b, &n| {
            let mut pool = populated(n, 1);
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if pool.freeable() == 0 {
                        // Spent: a fresh pool, outside the timing.
                        pool = populated(n, 1);
                    }
                    let t = Instant::now();
                    black_box(pool.compact_step(black_box(MOVES_PER_HOLD)));
                    total += t.elapsed();
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
