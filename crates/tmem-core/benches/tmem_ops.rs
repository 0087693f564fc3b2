//! tmem-core's own cost per operation, with a trivial backend (the descriptor is the
//! page's first word; nothing is compressed or copied): store + load (keep) +
//! invalidate of one key, single thread, and two threads on distinct objects; and, at
//! 4,096, 10^5 and 10^6 resident pages laid out as frontswap lays out swap slots (64
//! consecutive slots an object), a load and a replacing store of a random resident key
//! (issue 13's bar: tmem's own cost under 2% of one lz4 page compression at every size).
//!
//! Run: `cargo bench -p tmem-core --bench tmem_ops`

use std::hint::black_box;
use std::num::NonZeroU64;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tmem_core::{
    Key, LoadMode, LoadStep, Oid, PAGE_SIZE, Page, PamOps, PoolHandle, PoolInfo, PoolKind, Tmem,
};

/// The cheapest possible backend: the descriptor is the page's first word (+1).
struct WordPam;

impl PamOps for WordPam {
    type Desc = NonZeroU64;
    type Ctx = u64;
    type Error = ();
    fn create(&self, _: &mut u64, _: &Key, _: &PoolInfo, page: &Page) -> Result<NonZeroU64, ()> {
        NonZeroU64::new(u64::from_le_bytes(page[..8].try_into().unwrap()) | 1).ok_or(())
    }
    fn load_stage(
        &self,
        ctx: &mut u64,
        _: &PoolInfo,
        d: &NonZeroU64,
        _: &mut Page,
    ) -> Result<LoadStep, ()> {
        *ctx = d.get();
        Ok(LoadStep::Finish)
    }
    fn load_finish(&self, ctx: &mut u64, page: &mut Page) -> Result<(), ()> {
        page[..8].copy_from_slice(&ctx.to_le_bytes());
        Ok(())
    }
    fn load_and_free(
        &self,
        _: &mut u64,
        _: &PoolInfo,
        d: NonZeroU64,
        page: &mut Page,
    ) -> Result<(), ()> {
        page[..8].copy_from_slice(&d.get().to_le_bytes());
        Ok(())
    }
    fn free(&self, _: &PoolInfo, d: NonZeroU64) {
        black_box(d);
    }
}

/// One round: store, load (keep), invalidate one key. Returns nothing; 3 operations.
fn round(
    t: &Tmem<WordPam>,
    h: &PoolHandle<NonZeroU64>,
    ctx: &mut u64,
    oid: Oid,
    index: u64,
    page: &mut Page,
) {
    page[..8].copy_from_slice(&index.to_le_bytes());
    t.store_in(ctx, h, oid, index, page).unwrap();
    assert!(
        t.load_from(ctx, h, oid, index, page, LoadMode::Keep)
            .unwrap()
    );
    assert!(t.invalidate_page_in(h, oid, index).unwrap());
}

fn setup() -> (Tmem<WordPam>, PoolHandle<NonZeroU64>) {
    let t = Tmem::new(WordPam);
    let c = t.new_client().unwrap();
    let p = t.new_pool(c, PoolKind::Persistent).unwrap();
    let h = t.pool(p).unwrap();
    // A resident population so trees and maps are not trivially empty.
    let mut ctx = 0;
    let page = [7u8; PAGE_SIZE];
    for o in 0..64u64 {
        for i in 0..64u64 {
            t.store_in(&mut ctx, &h, Oid::new(o, 1, 0), i, &page)
                .unwrap();
        }
    }
    (t, h)
}

fn bench(c: &mut Criterion) {
    let (t, h) = setup();
    let mut g = c.benchmark_group("tmem_core");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    // Single thread: per-round time (3 ops).
    g.bench_function("store_load_invalidate/1thread", |b| {
        let mut ctx = 0u64;
        let mut page = [0u8; PAGE_SIZE];
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            round(
                &t,
                &h,
                &mut ctx,
                Oid::new(1000 + (i & 255), 0, 0),
                i & 4095,
                &mut page,
            );
        })
    });

    // By pool id (registry lookup on every op), single thread.
    let pid = h.info().id;
    g.bench_function("store_load_invalidate_by_id/1thread", |b| {
        let mut ctx = 0u64;
        let mut page = [0u8; PAGE_SIZE];
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            let oid = Oid::new(1000 + (i & 255), 0, 0);
            page[..8].copy_from_slice(&i.to_le_bytes());
            t.store(&mut ctx, pid, oid, i & 4095, &page).unwrap();
            assert!(
                t.load(&mut ctx, pid, oid, i & 4095, &mut page, LoadMode::Keep)
                    .unwrap()
            );
            assert!(t.invalidate_page(pid, oid, i & 4095).unwrap());
        })
    });

    // Two threads, distinct objects: each thread does `iters` rounds; the reported time
    // is wall time / (2 * iters), i.e. per round of aggregate throughput. Compare it with
    // the 1-thread figure: speedup = t1 / t2.
    // Objects per thread: 16 (a thread working on a few files: few shared bucket lines)
    // and 256 (each thread's objects cover most of the 256 buckets, so bucket cache lines
    // move between the cores: the worst case).
    for (objects, threads) in [(16u64, 1usize), (16, 2), (256, 1), (256, 2)] {
        g.bench_function(
            format!("store_load_invalidate/{objects}objects_aggregate_{threads}threads"),
            |b| {
                b.iter_custom(|iters| {
                    let barrier = Barrier::new(threads);
                    let start = std::thread::scope(|s| {
                        let hs: Vec<_> = (0..threads)
                            .map(|tid| {
                                let (t, h, barrier) = (&t, &h, &barrier);
                                s.spawn(move || {
                                    let mut ctx = 0u64;
                                    let mut page = [0u8; PAGE_SIZE];
                                    barrier.wait();
                                    let start = Instant::now();
                                    for i in 0..iters {
                                        let oid = Oid::new(
                                            10_000 + (tid as u64) * 1000 + (i % objects),
                                            0,
                                            0,
                                        );
                                        round(t, h, &mut ctx, oid, i & 4095, &mut page);
                                    }
                                    start
                                })
                            })
                            .collect();
                        hs.into_iter().map(|h| h.join().unwrap()).min().unwrap()
                    });
                    start.elapsed() / threads as u32
                })
            },
        );
    }
    g.finish();
}

/// A pool of `n` resident pages at frontswap's layout: slot `s` is index `s & 63` of
/// object `s >> 6`.
fn setup_resident(n: u64) -> (Tmem<WordPam>, PoolHandle<NonZeroU64>) {
    let t = Tmem::new(WordPam);
    let c = t.new_client().unwrap();
    let p = t.new_pool(c, PoolKind::Persistent).unwrap();
    let h = t.pool(p).unwrap();
    let mut ctx = 0;
    let mut page = [7u8; PAGE_SIZE];
    for s in 0..n {
        page[..8].copy_from_slice(&s.to_le_bytes());
        t.store_in(&mut ctx, &h, Oid::new(s >> 6, 1, 0), s & 63, &page)
            .unwrap();
    }
    (t, h)
}

/// xorshift64*: a random slot below `n` per call (no allocation, a few cycles).
fn next_slot(state: &mut u64, n: u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
}

fn bench_resident(c: &mut Criterion) {
    let mut g = c.benchmark_group("tmem_core_resident");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for n in [4096u64, 100_000, 1_000_000] {
        let (t, h) = setup_resident(n);
        g.bench_function(format!("load_random/{n}"), |b| {
            let mut ctx = 0u64;
            let mut page = [0u8; PAGE_SIZE];
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            b.iter(|| {
                let s = next_slot(&mut rng, n);
                assert!(
                    t.load_from(
                        &mut ctx,
                        &h,
                        Oid::new(s >> 6, 1, 0),
                        s & 63,
                        &mut page,
                        LoadMode::Keep
                    )
                    .unwrap()
                );
                black_box(&page[..8]);
            })
        });
        g.bench_function(format!("store_replace_random/{n}"), |b| {
            let mut ctx = 0u64;
            let mut page = [0u8; PAGE_SIZE];
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            b.iter(|| {
                let s = next_slot(&mut rng, n);
                page[..8].copy_from_slice(&s.to_le_bytes());
                t.store_in(&mut ctx, &h, Oid::new(s >> 6, 1, 0), s & 63, &page)
                    .unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_resident);
criterion_main!(benches);
