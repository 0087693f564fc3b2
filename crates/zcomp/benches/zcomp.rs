//! Compression ratio and per-core throughput of every algorithm on the dev corpus, the C
//! lz4 library on the same pages, and same-filled detection speed.
//!
//! ```text
//! cargo bench -p zcomp --features std --bench zcomp -- --measurement-time 3
//! # lz4_flex's unsafe encoder and decoder instead of the safe ones:
//! cargo bench -p zcomp --no-default-features --features std --bench zcomp -- lz4
//! ```
//!
//! Time is the bench thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the
//! project's machines are shared, and time spent preempted by other processes would
//! otherwise land in the figures. Throughput counts uncompressed bytes per second of CPU
//! time of one thread (decimal MB/s): that is, per core. Pages that
//! are same-filled never reach a compressor in zcache, so they are left out of the
//! compressor figures (they are the same-filled benches' worst case instead). Ratios are
//! printed once, before the timings.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use zcache_testdata::Corpus;
use zcomp::{
    Algorithm, AnyCompressor, Compressor, LZ4_SAFE_MODES, MAX_COMPRESSED_LEN, PAGE_SIZE, Page,
    StorePolicy, fill_page, same_filled,
};

/// The dev pages a compressor sees (same-filled ones removed), and how many were removed.
fn compressible_dev_pages() -> (Vec<Page>, usize) {
    // Pages of the build's size, from consecutive 4 KiB corpus pages of one object.
    let corpus = Corpus::dev().joined::<PAGE_SIZE>();
    let pages: Vec<Page> = corpus
        .pages()
        .iter()
        .filter(|p| same_filled(p).is_none())
        .copied()
        .collect();
    let removed = corpus.len() - pages.len();
    (pages, removed)
}

/// 4 MiB of worst-case pages at every page size.
fn zplat_scale() -> usize {
    PAGE_SIZE / 4096
}

/// Bench label of an algorithm, naming lz4_flex's mode for lz4.
fn label(alg: Algorithm, decode: bool) -> String {
    if alg != Algorithm::Lz4 {
        return alg.name().to_string();
    }
    let safe = if decode {
        LZ4_SAFE_MODES.1
    } else {
        LZ4_SAFE_MODES.0
    };
    format!("lz4_flex-{}", if safe { "safe" } else { "unsafe" })
}

/// Compresses every page once; returns the streams.
fn compress_all(c: &mut AnyCompressor, pages: &[Page]) -> Vec<Vec<u8>> {
    let mut scratch = vec![0u8; MAX_COMPRESSED_LEN];
    pages
        .iter()
        .map(|p| {
            let n = c.compress(p, &mut scratch).expect("compress");
            scratch[..n].to_vec()
        })
        .collect()
}

fn report_ratio(name: &str, pages: usize, streams: impl Iterator<Item = usize>) {
    let policy = StorePolicy::default();
    let (mut total, mut poor) = (0usize, 0usize);
    for n in streams {
        total += n;
        if !policy.verdict(n, 0).is_store() {
            poor += 1;
        }
    }
    let input = pages * PAGE_SIZE;
    println!(
        "ratio {name:>16}: {:.3} ({} pages, mean {} bytes, {} over 7/8 of a page)",
        input as f64 / total as f64,
        pages,
        total / pages,
        poor
    );
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is a clock id every Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Criterion measurement: CPU time of the bench thread (criterion runs the routine on the
/// thread that calls it), reported like wall time.
struct ThreadCpuTime;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

type Crit = Criterion<ThreadCpuTime>;

fn group<'a>(
    c: &'a mut Crit,
    name: &str,
    bytes: usize,
) -> criterion::BenchmarkGroup<'a, ThreadCpuTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::BytesDecimal(bytes as u64));
    g
}

fn algorithms(c: &mut Crit) {
    let (pages, removed) = compressible_dev_pages();
    println!(
        "dev corpus, {} KiB pages: {} pages reach the compressor ({} same-filled pages left out)",
        PAGE_SIZE >> 10,
        pages.len(),
        removed
    );
    let bytes = pages.len() * PAGE_SIZE;
    let mut streams = Vec::new();
    for &alg in Algorithm::AVAILABLE {
        let mut comp = AnyCompressor::new(alg).expect("compressor");
        let s = compress_all(&mut comp, &pages);
        report_ratio(alg.name(), pages.len(), s.iter().map(Vec::len));
        streams.push((alg, comp, s));
    }
    // The C library (lz4 1.x, LZ4_compress_default), same pages.
    let mut scratch = vec![0u8; MAX_COMPRESSED_LEN];
    let c_streams: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let n = lz4::block::compress_to_buffer(p, None, false, &mut scratch).expect("lz4 C");
            scratch[..n].to_vec()
        })
        .collect();
    report_ratio("lz4-c", pages.len(), c_streams.iter().map(Vec::len));

    let mut g = group(c, "compress", bytes);
    for (alg, comp, _) in &mut streams {
        g.bench_function(label(*alg, false), |b| {
            b.iter(|| {
                for p in &pages {
                    black_box(comp.compress(black_box(p), &mut scratch).expect("compress"));
                }
            })
        });
    }
    g.bench_function("lz4-c", |b| {
        b.iter(|| {
            for p in &pages {
                black_box(
                    lz4::block::compress_to_buffer(black_box(p), None, false, &mut scratch)
                        .expect("lz4 C"),
                );
            }
        })
    });
    g.finish();

    let mut out = [0u8; PAGE_SIZE];
    let mut g = group(c, "decompress", bytes);
    for (alg, comp, s) in &mut streams {
        g.bench_function(label(*alg, true), |b| {
            b.iter(|| {
                for src in s.iter() {
                    comp.decompress(black_box(src), &mut out)
                        .expect("decompress");
                    black_box(&out);
                }
            })
        });
    }
    g.bench_function("lz4-c", |b| {
        b.iter(|| {
            for src in &c_streams {
                let n = lz4::block::decompress_to_buffer(
                    black_box(src),
                    Some(PAGE_SIZE as i32),
                    &mut out,
                )
                .expect("lz4 C");
                black_box((n, &out));
            }
        })
    });
    g.finish();
}

fn same_filled_detection(c: &mut Crit) {
    let (pages, _) = compressible_dev_pages();
    let mut g = group(c, "same_filled", pages.len() * PAGE_SIZE);
    // What every store sees: real pages that are not same-filled.
    g.bench_function("dev-pages-not-same-filled", |b| {
        b.iter(|| {
            for p in &pages {
                black_box(same_filled(black_box(p)));
            }
        })
    });
    g.finish();

    // Worst cases: a full scan. Same-filled pages, and pages whose first and last words
    // agree but whose second-to-last word differs.
    let n = 1024 / zplat_scale();
    let mut same = vec![[0u8; PAGE_SIZE]; n];
    for (i, p) in same.iter_mut().enumerate() {
        fill_page(p, (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    let mut late = same.clone();
    for p in &mut late {
        p[PAGE_SIZE - 16] ^= 1;
    }
    let mut g = group(c, "same_filled", n * PAGE_SIZE);
    g.bench_function("full-scan-same-filled", |b| {
        b.iter(|| {
            for p in &same {
                black_box(same_filled(black_box(p)));
            }
        })
    });
    g.bench_function("full-scan-differs-at-end", |b| {
        b.iter(|| {
            for p in &late {
                black_box(same_filled(black_box(p)));
            }
        })
    });
    g.bench_function("fill_page", |b| {
        b.iter(|| {
            for (i, p) in same.iter_mut().enumerate() {
                fill_page(black_box(p), black_box(i as u64 | 1));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = algorithms, same_filled_detection
}
criterion_main!(benches);
