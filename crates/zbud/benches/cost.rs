//! Allocator cost per store and per load against lz4_flex compression and
//! decompression of a page, in the same run, on real pages (the 1024-page sample).
//!
//! Working sets are the same for the allocator and the compressor: 4096 live objects
//! (about 6.6 MiB: beyond L2, within L3 on this machine class), visited round robin.
//!
//! * `lz4_flex_compress_page`: one page at a time, round robin over the
//!   non-same-filled sample pages.
//! * `lz4_flex_decompress_page`: one compressed object at a time, round robin over 4096
//!   separately allocated objects (the same bytes the pool holds).
//! * `zbud_store_then_free_oldest/{heap,cached}`: `store` (malloc + write under one lock
//!   hold) of the next compressed object plus `free` of the oldest of 4096 live ones: an
//!   upper bound on the cost of one store in steady state. `heap` takes frames from the
//!   global allocator (4096-aligned, zeroed); `cached` from a free list of frames, as a
//!   kernel's per-CPU page lists would, which isolates the allocator's own work.
//! * `zbud_load`: `read` of one live object into a page buffer, round robin.
//! * `memcpy_object`: copying the same objects from 4096 separate buffers, the floor
//!   under any copying load.
//!
//! Before the criterion measurements, a noise-resistant summary is printed. Four paths
//! are timed in alternating blocks of 128 calls, 400 rounds; the allocator's cost is the
//! median over rounds of the difference between a pooled path and its bare path in the
//! same round (the machine is shared: short alternating blocks see the same noise and the
//! same data). The paths: compress a page; compress + `store` (into a pool of 2048
//! cycling objects); `free` of the oldest cycling object (one per store: steady state);
//! decompress an object from its own heap buffer; `read` the same object from the pool +
//! decompress it. Also printed: `store` + `free` of one object over and over (its frame
//! stays in cache), the allocator's bookkeeping without cold-memory misses. Objects are visited in one fixed random order, so the
//! bare and the pooled paths read equally cold memory. Allocator cost = pooled path -
//! bare path.
//!
//! Run: `cargo bench -p zbud --bench cost`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use zbud::ZBud;
use zcache_testdata::Corpus;
use zpool::{AllocError, Frame, HeapPageSource, PAGE_SIZE, PageSource, ZPool};

/// Frames recycled through a free list (the kernel's per-CPU page lists, in spirit).
struct CachedSource {
    free: Mutex<Vec<Frame>>,
}

impl PageSource for CachedSource {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        match self.free.lock().expect("lock").pop() {
            Some(f) => Ok(f),
            None => HeapPageSource.alloc_frame(),
        }
    }
    fn free_frame(&self, frame: Frame) {
        self.free.lock().expect("lock").push(frame)
    }
}

impl Drop for CachedSource {
    fn drop(&mut self) {
        for f in self.free.get_mut().expect("lock").drain(..) {
            HeapPageSource.free_frame(f);
        }
    }
}

const LIVE: usize = 4096;

fn store_free<S: PageSource>(c: &mut Criterion, name: &str, pool: ZBud<S>, objs: &[Vec<u8>]) {
    let mut live: VecDeque<_> = (0..LIVE)
        .map(|k| pool.store(&objs[k % objs.len()]).expect("store"))
        .collect();
    let mut i = 0usize;
    c.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % objs.len();
            let h = pool.store(black_box(&objs[i])).expect("store");
            live.push_back(h);
            let old = live.pop_front().expect("live");
            pool.free(old).expect("free");
        })
    });
    let st = pool.zbud_stats();
    println!(
        "{name}: steady state {} objects in {} frames ({} lone)",
        st.objects, st.frames, st.lone_frames
    );
}

/// Per-op times (ns) of each op in each of `rounds` rounds of `block` calls, the blocks
/// of the different ops alternating within a round.
fn rounds_ns(ops: &mut [&mut dyn FnMut()], rounds: usize, block: usize) -> Vec<Vec<f64>> {
    let mut t = vec![Vec::with_capacity(rounds); ops.len()];
    for _ in 0..rounds {
        for (op, times) in ops.iter_mut().zip(t.iter_mut()) {
            let start = Instant::now();
            for _ in 0..block {
                op();
            }
            times.push(start.elapsed().as_nanos() as f64 / block as f64);
        }
    }
    t
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A fixed pseudo-random permutation of `0..n` (xorshift, Fisher-Yates).
fn permutation(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn summary(pages: &[&[u8; PAGE_SIZE]], objs: &[Vec<u8>]) {
    let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    // Pages that compress below a page (zcache stores the others raw or rejects them).
    let pages: Vec<&[u8; PAGE_SIZE]> = pages
        .iter()
        .copied()
        .filter(|p| lz4_flex::block::compress_into(&p[..], &mut buf).expect("c") < PAGE_SIZE)
        .collect();
    let mut buf2 = buf.clone();
    let mut buf3 = buf.clone();
    let mut page = [0u8; PAGE_SIZE];
    let mut page2 = [0u8; PAGE_SIZE];
    let cached = ZBud::new(CachedSource {
        free: Mutex::new(Vec::new()),
    });
    // Half the pool cycles through store+free; loads read the other half, in a random
    // order, and the bare decompression reads the same objects from separate heap
    // buffers in the same order (equally cold).
    let cycling: RefCell<VecDeque<_>> = RefCell::new(
        (0..LIVE / 2)
            .map(|k| cached.store(&objs[k % objs.len()]).expect("store"))
            .collect(),
    );
    let order = permutation(LIVE / 2);
    let stable: Vec<_> = (0..LIVE / 2)
        .map(|k| {
            let o = &objs[(LIVE / 2 + k) % objs.len()];
            (cached.store(o).expect("store"), o.clone())
        })
        .collect();
    let (mut i1, mut i2, mut i3, mut i4) = (0usize, 0usize, 0usize, 0usize);
    let t = rounds_ns(
        &mut [
            &mut || {
                i1 = (i1 + 1) % pages.len();
                let src = &pages[i1][..];
                black_box(lz4_flex::block::compress_into(src, black_box(&mut buf)).expect("c"));
            },
            &mut || {
                i2 = (i2 + 1) % pages.len();
                let src = &pages[i2][..];
                let n = lz4_flex::block::compress_into(src, black_box(&mut buf2)).expect("c");
                let h = cached.store(&buf2[..n]).expect("store");
                cycling.borrow_mut().push_back(h);
            },
            &mut || {
                let h = cycling.borrow_mut().pop_front().expect("live");
                cached.free(black_box(h)).expect("free");
            },
            &mut || {
                i3 = (i3 + 1) % order.len();
                let o = &stable[order[i3]].1;
                black_box(lz4_flex::block::decompress_into(o, black_box(&mut page)).expect("d"));
            },
            &mut || {
                // Hot: store and free at once, so the same frame is reused every time:
                // the bookkeeping without cold-memory misses.
                let h = cached.store(black_box(&objs[7])).expect("store");
                cached.free(h).expect("free");
            },
            &mut || {
                i4 = (i4 + 1) % order.len();
                let h = stable[order[i4]].0;
                let n = cached.read(h, black_box(&mut buf3)).expect("read");
                let d = lz4_flex::block::decompress_into(&buf3[..n], black_box(&mut page2));
                black_box(d.expect("d"));
            },
        ],
        400,
        128,
    );
    // Both ops of a pair see the same pages/objects in a round (their indexes advance in
    // lockstep), so per-round differences cancel the data; medians filter the noise of
    // the shared machine.
    let diff = |a: usize, b: usize| median(t[b].iter().zip(&t[a]).map(|(y, x)| y - x).collect());
    let m: Vec<f64> = t.iter().map(|v| median(v.clone())).collect();
    let (ds, dl) = (diff(0, 1), diff(3, 5));
    let df = m[2];
    println!(
        "median ns per op: compress {:.0}, compress+store {:.0}, free {:.0}, decompress {:.0}, store+free hot {:.0}, read+decompress {:.0}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    println!(
        "allocator cost: store {ds:.0} ns = {:.2}% of compression (free {df:.0} ns = {:.2}%); load {dl:.0} ns = {:.2}% of decompression",
        100.0 * ds / m[0],
        100.0 * df / m[0],
        100.0 * dl / m[3]
    );
}

fn cost(c: &mut Criterion) {
    let corpus = Corpus::sample().joined::<PAGE_SIZE>();
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
    // 4096 separately allocated copies: the compressor's and memcpy's working set.
    let spread: Vec<Vec<u8>> = (0..LIVE).map(|k| objs[k % objs.len()].clone()).collect();
    summary(&pages, &objs);

    let mut i = 0usize;
    c.bench_function("lz4_flex_compress_page", |b| {
        b.iter(|| {
            i = (i + 1) % pages.len();
            black_box(
                lz4_flex::block::compress_into(&pages[i][..], black_box(&mut buf))
                    .expect("compress"),
            )
        })
    });
    let mut page = [0u8; PAGE_SIZE];
    c.bench_function("lz4_flex_decompress_page", |b| {
        b.iter(|| {
            i = (i + 1) % spread.len();
            black_box(
                lz4_flex::block::decompress_into(&spread[i], black_box(&mut page))
                    .expect("decompress"),
            )
        })
    });
    c.bench_function("memcpy_object", |b| {
        b.iter(|| {
            i = (i + 1) % spread.len();
            let o = &spread[i];
            page[..o.len()].copy_from_slice(black_box(o));
            black_box(&mut page);
        })
    });

    store_free(
        c,
        "zbud_store_then_free_oldest/heap",
        ZBud::new(HeapPageSource),
        &objs,
    );
    let cached = ZBud::new(CachedSource {
        free: Mutex::new(Vec::new()),
    });
    store_free(c, "zbud_store_then_free_oldest/cached", cached, &objs);

    let pool = ZBud::new(HeapPageSource);
    let handles: Vec<_> = (0..LIVE)
        .map(|k| pool.store(&objs[k % objs.len()]).expect("store"))
        .collect();
    c.bench_function("zbud_load", |b| {
        b.iter(|| {
            i = (i + 1) % handles.len();
            black_box(pool.read(handles[i], black_box(&mut page)).expect("read"))
        })
    });
}

criterion_group!(benches, cost);
criterion_main!(benches);
