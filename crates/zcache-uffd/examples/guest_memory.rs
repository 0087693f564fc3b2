//! Guest memory for a VMM: a sparse 4 GiB region whose idle pages the VMM evicts into
//! zcache, served back by userfaultfd when the guest touches them.
//!
//! `cargo run --release -p zcache-uffd --example guest_memory` (root, or wherever
//! userfaultfd is available; prints `SKIP: <reason>` otherwise).
//!
//! What a VMM would do, step by step: map guest RAM as a [`Region`] (KVM gets
//! `region.as_ptr()` as the userspace address of its memory slot), let the guest run,
//! evict a range it has not touched lately, and let the guest fault it back; then cap
//! its resident memory and let the region's CLOCK keep it there. The guest's "memory"
//! here is real pages (the corpus's anonymous memory and files of real programs).

use std::time::{Duration, Instant};

use zcache_uffd::{CleanCopies, PAGE, Region, RegionConfig, RegionStats};

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

fn show(what: &str, s: &RegionStats) {
    println!(
        "{what:<44} resident {:>5} pages ({:>5.1} MiB)  compressed {:>5}  clean {:>5}  zero {:>3}  \
         faults {:>5}  refaults {:>5}  wp {:>4}  compressions {:>5}  saved {:>5}  zcache {:>4} frames",
        s.resident_pages,
        (s.resident_pages * PAGE) as f64 / MIB as f64,
        s.compressed_pages,
        s.clean_pages,
        s.zero_pages,
        s.faults,
        s.refaults,
        s.wp_faults,
        s.compressions,
        s.compressions_saved,
        s.zcache.pool_frames,
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Err(why) = zcache_uffd::available() {
        println!("SKIP: userfaultfd unavailable: {why}");
        return Ok(());
    }
    // 4 GiB of guest-physical address space; MAP_NORESERVE, so only touched pages cost.
    let mut cfg = RegionConfig::new(4 * GIB);
    // A memfd instead (vhost-user back ends, snapshots): cfg.shared = true;
    // Pages zcache refuses would go to a spill file here instead of staying resident:
    cfg.spill_dir = Some(std::env::temp_dir());
    // This guest's page cache is read-mostly: every page read back keeps its compressed
    // copy, so evicting it again is free. (The default, `CleanCopies::DEFAULT`, keeps
    // copies only up to 1/16 of the evicted pages, and none for pages written after
    // their last copy: the choice for memory that is written after it is read back.)
    cfg.clean_copies = CleanCopies::All;
    let guest = Region::new(cfg)?;
    println!(
        "guest memory: {} GiB at {:p}, {} pages of address space",
        guest.len() / GIB,
        guest.as_ptr(),
        guest.pages()
    );

    // The guest boots and fills three areas: its kernel (low memory), a page cache
    // around 1 GiB, an application heap around 3 GiB. Real pages from the corpus.
    let corpus = zcache_testdata::Corpus::sample();
    let areas = [(0, 256), (GIB, 2048), (3 * GIB, 1024)];
    let mut k = 0;
    for &(start, pages) in &areas {
        for p in 0..pages {
            let page = &corpus.pages()[k % corpus.len()];
            guest.write(start + p * PAGE, page)?;
            k += 1;
        }
    }
    show("after boot", &guest.stats());

    // The VMM sees the page cache at 1 GiB idle (its own policy: guest hints, a
    // balloon, a timer) and evicts it.
    let idle = GIB..GIB + 2048 * PAGE;
    let t = Instant::now();
    let r = guest.evict(idle.clone())?;
    println!(
        "evict 1 GiB + 8 MiB: {} compressed, {} zero, {} spilled, {} kept resident in {:.1} ms",
        r.compressed,
        r.zero,
        r.spilled,
        r.kept_resident,
        t.elapsed().as_secs_f64() * 1e3
    );
    show("after evicting the idle range", &guest.stats());

    // The guest reads a quarter of it again: each first touch is a fault served from
    // zcache; the pages come back write-protected with their compressed copy kept.
    let mut buf = vec![0u8; PAGE];
    let t = Instant::now();
    for p in 0..512 {
        guest.read(GIB + p * PAGE, &mut buf)?;
        assert_eq!(&buf[..], &corpus.pages()[(256 + p) % corpus.len()][..]);
    }
    println!(
        "guest re-reads 512 pages: {:.1} us per page (fault, decompress, copy; the wake-up \
         across CPUs dominates on a VM: RegionConfig::handler_cpu pins the handler)",
        t.elapsed().as_secs_f64() * 1e6 / 512.0
    );
    // ... and writes 16 of them (a write-protect fault each: the copy is dropped).
    for p in 0..16 {
        guest.write(GIB + p * PAGE + 64, b"dirtied by the guest")?;
    }
    show("after the guest touched 512, wrote 16", &guest.stats());

    // Idle again: the 496 clean pages go with no compression, the 16 written ones are
    // compressed again.
    let r = guest.evict(idle)?;
    println!(
        "evict again: {} dropped with no compression (clean), {} compressed (written)",
        r.saved, r.compressed
    );
    show("after the second eviction", &guest.stats());

    // Cap the guest at 512 resident pages (2 MiB): the region's background CLOCK
    // evicts the pages whose last fault is oldest.
    guest.set_resident_limit(Some(512));
    let t = Instant::now();
    while guest.stats().resident_pages > 512 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    show("with a 512-page limit", &guest.stats());

    // The guest goes on touching its heap: refaults, the limit holds.
    for round in 0..3 {
        for p in (0..1024).step_by(3) {
            guest.read(3 * GIB + p * PAGE, &mut buf)?;
        }
        let _ = round;
    }
    std::thread::sleep(Duration::from_millis(50));
    show("after the guest walked its heap 3 times", &guest.stats());

    // Every byte is still the guest's.
    let mut k = 0;
    for &(start, pages) in &areas {
        for p in 0..pages {
            guest.read(start + p * PAGE, &mut buf)?;
            let mut want = corpus.pages()[k % corpus.len()].to_vec();
            if start == GIB && p < 16 {
                want[64..84].copy_from_slice(b"dirtied by the guest");
            }
            assert_eq!(buf, want, "page {p} of the area at {start:#x}");
            k += 1;
        }
    }
    println!("all {k} guest pages verified");

    // Shutdown for a snapshot or a migration: everything resident again, unregistered.
    guest.set_resident_limit(None);
    let s = guest.stats();
    let z = s.zcache;
    println!(
        "zcache: {} pages stored in {} frames ({:.2} MiB), {} rejected, pool limit hits {}",
        z.counters.stored_pages,
        z.pool_frames,
        (z.pool_frames * PAGE) as f64 / MIB as f64,
        s.zcache_rejects,
        z.pool_limit_hit
    );
    let mem = guest.shutdown_resident()?;
    println!(
        "shutdown (resident): {} MiB of address space handed back as plain memory",
        mem.len() / MIB
    );
    Ok(())
}
