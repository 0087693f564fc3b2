//! tmem-core's own cost per operation, with a trivial backend (the descriptor is the
//! page's first word; nothing is compressed or copied): store + load (keep) +
//! invalidate of one key, single thread, and two threads on distinct objects.
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
    fn load_stage(&self, ctx: &mut u64, d: &NonZeroU64, _: &mut Page) -> Result<LoadStep, ()> {
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

criterion_group!(benches, bench);
criterion_main!(benches);
