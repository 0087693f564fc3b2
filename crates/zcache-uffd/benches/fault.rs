//! Fault service time and eviction rate of the zcache userfaultfd region, against bare
//! lz4 decompression of the same pages and `UFFDIO_COPY` alone (plain timing; issue 16).
//!
//! `cargo bench -p zcache-uffd --bench fault` (root, or wherever userfaultfd is
//! available; prints `SKIP: <reason>` otherwise). The dev corpus's pages that are not
//! same-filled, up to `ZCACHE_UFFD_BENCH_PAGES` (default 4096), stored at page k of a
//! region, evicted, then touched one byte each in a shuffled order from the owner's
//! thread. Printed: median and p99 per page of
//! * bare lz4 decompression (zcomp's, the one zcache uses) of the same pages;
//! * `UFFDIO_COPY` of one page into a registered, not-present page, with no fault;
//! * the handler's service time of a fault (message read to `UFFDIO_COPY` done:
//!   zcache load + decompression + copy), and the ratio to decompression + copy; split
//!   into the part before the copy (state, zcache load) and the copy in the fault
//!   (which wakes the faulting thread, unlike the copy alone);
//! * the owner's touch of an evicted page (trap, handler wake-up, service, wake-back);
//! * evictions per second: dirty (write-protect + compress + drop) and clean (drop
//!   only: the clean-page rule).

use std::time::Instant;

use zcache_uffd::{CleanCopies, PAGE, Region, RegionConfig};
use zcomp::Compressor;

fn pct(v: &mut [u32], q: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    f64::from(v[i]) / 1000.0
}

fn report(name: &str, v: &mut [u32]) -> (f64, f64) {
    let (m, p) = (pct(v, 0.5), pct(v, 0.99));
    println!(
        "{name:<52} median {m:>7.2} us   p99 {p:>7.2} us   (n={})",
        v.len()
    );
    (m, p)
}

fn main() {
    if let Err(why) = zcache_uffd::available() {
        println!("SKIP: userfaultfd unavailable: {why}");
        return;
    }
    let max: usize = std::env::var("ZCACHE_UFFD_BENCH_PAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let corpus = zcache_testdata::Corpus::dev();
    let pages: Vec<&[u8; PAGE]> = corpus
        .pages()
        .iter()
        .zip(corpus.records())
        .filter(|(_, r)| !r.same_filled())
        .map(|(p, _)| p)
        .take(max)
        .collect();
    let n = pages.len();
    println!("zcache-uffd fault bench: {n} dev-corpus pages (not same-filled), lz4, zsmalloc");

    // Bare decompression of the same pages, each timed alone (as the handler does one).
    let mut c = zcomp::Lz4::new().expect("lz4");
    let mut scratch = vec![0u8; 2 * PAGE];
    let compressed: Vec<Vec<u8>> = pages
        .iter()
        .map(|p| {
            let len = c.compress(p, &mut scratch).expect("compress");
            scratch[..len].to_vec()
        })
        .collect();
    // Shuffled touch order (xorshift Fisher-Yates).
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut out = [0u8; PAGE];
    // zcache's own load of the same pages in the same order (a SwapArea on a Zcache
    // configured as the region's): lookup + copy-out + decompression.
    {
        let z = std::sync::Arc::new(
            zcache::Zcache::new(RegionConfig::new(PAGE).zcache, zpool::HeapPageSource)
                .expect("zcache"),
        );
        let area = zcache::SwapArea::swapon(z, 0).expect("swapon");
        let stored: Vec<usize> = (0..n)
            .filter(|&k| area.store(k as u64, pages[k]).is_ok())
            .collect();
        let mut lt = Vec::with_capacity(n);
        for round in 0..3 {
            for &k in order.iter().filter(|k| stored.binary_search(k).is_ok()) {
                let t = Instant::now();
                assert!(area.load(k as u64, &mut out).expect("load"));
                if round == 2 {
                    lt.push(t.elapsed().as_nanos() as u32);
                }
            }
        }
        report("zcache SwapArea::load of the same pages", &mut lt);
    }

    // First with the scheduler's placement, then with the owner and the handler
    // pinned to one CPU (the wake-up stays on that CPU: no inter-processor interrupt).
    for placement in [None, Some(0usize)] {
        match placement {
            None => println!("-- placement: the scheduler's (handler and owner unpinned)"),
            Some(cpu) => {
                println!("-- placement: owner thread and handler pinned to CPU {cpu}");
                // SAFETY: see zcache-uffd's pin_to: an all-zero cpu_set_t is empty,
                // CPU_SET sets one bit, sched_setaffinity reads the set.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
                }
            }
        }
        run_region(&pages, &order, &compressed, &mut c, placement);
    }
}

fn run_region(
    pages: &[&[u8; PAGE]],
    order: &[usize],
    compressed: &[Vec<u8>],
    c: &mut zcomp::Lz4,
    placement: Option<usize>,
) {
    let n = pages.len();
    let mut out = [0u8; PAGE];
    let mut cfg = RegionConfig::new(n * PAGE);
    cfg.background_reclaim = false;
    cfg.record_fault_latency = true;
    cfg.handler_cpu = placement;
    // Every page read back keeps its copy: the clean evictions below measure the
    // clean-page rule on all of them.
    cfg.clean_copies = CleanCopies::All;
    let r = Region::new(cfg).expect("region");
    for (k, p) in pages.iter().enumerate() {
        r.write(k * PAGE, &p[..]).expect("write");
    }
    let t = Instant::now();
    let e = r.evict(0..n * PAGE).expect("evict");
    let dirty_s = t.elapsed().as_secs_f64();
    // Interleaved, so that all three see the same machine (it is shared and
    // virtual: its load changes from minute to minute): for each page in the shuffled
    // order, a bare decompression of it, one UFFDIO_COPY alone, then the touch.
    let mut copy_alone = zcache_uffd::bench_support::CopyAlone::new(n).expect("copy alone");
    let mut touch = Vec::with_capacity(n);
    let mut bare = Vec::with_capacity(n);
    let mut copy = Vec::with_capacity(n);
    let mut b = [0u8; 1];
    for &k in order {
        let t = Instant::now();
        c.decompress(&compressed[k], &mut out).expect("decompress");
        bare.push(t.elapsed().as_nanos() as u32);
        copy.push(
            copy_alone
                .copy()
                .expect("a page left")
                .expect("UFFDIO_COPY"),
        );
        let t = Instant::now();
        r.read(k * PAGE, &mut b).expect("read");
        touch.push(t.elapsed().as_nanos() as u32);
    }
    let timings = r.take_fault_latencies();
    let mut served: Vec<u32> = timings.iter().map(|t| t.wall_ns).collect();
    let mut served_cpu: Vec<u32> = timings.iter().map(|t| t.cpu_ns).collect();
    let mut in_fault_copy: Vec<u32> = timings.iter().map(|t| t.copy_wall_ns).collect();
    let mut before_copy: Vec<u32> = timings
        .iter()
        .map(|t| t.wall_ns.saturating_sub(t.copy_wall_ns))
        .collect();
    let t = Instant::now();
    let clean = r.evict(0..n * PAGE).expect("evict clean");
    let clean_s = t.elapsed().as_secs_f64();
    // Check every page (faults again, not timed).
    let mut back = vec![0u8; PAGE];
    for (k, p) in pages.iter().enumerate() {
        r.read(k * PAGE, &mut back).expect("read");
        assert_eq!(&back[..], &p[..], "page {k}");
    }
    let (bare_m, _) = report("bare lz4 decompression", &mut bare);
    let (copy_m, _) = report("UFFDIO_COPY alone (no fault, no waiter)", &mut copy);
    let (served_m, served_p) = report("fault served by the handler, wall (load+copy)", &mut served);
    let (cpu_m, cpu_p) = report(
        "fault served by the handler, thread CPU time",
        &mut served_cpu,
    );
    let (before_m, _) = report(
        "  of which: state + zcache load (wall, before the copy)",
        &mut before_copy,
    );
    let (fcopy_m, _) = report(
        "  of which: UFFDIO_COPY in the fault (wall, wake-up included)",
        &mut in_fault_copy,
    );
    let (touch_m, touch_p) = report("owner's touch of an evicted page (round trip)", &mut touch);
    let base = bare_m + copy_m;
    println!(
        "ratio, handler CPU time / (bare decompression + UFFDIO_COPY) = {cpu_m:.2} / {base:.2} = {:.2}x (p99 {:.2}x)",
        cpu_m / base,
        cpu_p / base
    );
    println!(
        "ratio, handler wall / (bare decompression + UFFDIO_COPY) = {served_m:.2} / {base:.2} = {:.2}x (p99 {:.2}x); owner round trip {:.2}x (p99 {:.2}x)",
        served_m / base,
        served_p / base,
        touch_m / base,
        touch_p / base
    );
    println!(
        "split: state + load / bare decompression = {before_m:.2} / {bare_m:.2} = {:.2}x; copy in the fault / copy alone = {fcopy_m:.2} / {copy_m:.2} = {:.2}x",
        before_m / bare_m,
        fcopy_m / copy_m
    );
    println!(
        "evictions: dirty {:.0}/s ({} compressed, {} zero, {} kept), clean {:.0}/s ({} with no compression)",
        n as f64 / dirty_s,
        e.compressed,
        e.zero,
        e.kept_resident,
        n as f64 / clean_s,
        clean.saved
    );
    let s = r.stats();
    println!(
        "region: {} faults, {} refaults, {} compressions, {} saved; zcache holds {} pages in {} frames (ratio {:.2})",
        s.faults,
        s.refaults,
        s.compressions,
        s.compressions_saved,
        s.zcache.counters.stored_pages,
        s.zcache.pool_frames,
        s.zcache.counters.stored_pages as f64 / s.zcache.pool_frames.max(1) as f64
    );
    assert_eq!(s.fault_errors, 0);
}
