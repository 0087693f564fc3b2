//! The region's closing report, shared by `examples/sqlite.rs` and `examples/replay.rs`
//! (`#[path]` module, not an example): its page table, residency, faults, evictions,
//! compressions and what zcache holds, in one line each; and the `--clean-copies`
//! option both take.

use zcache_uffd::{CleanCopies, PAGE, Region};

/// `--clean-copies`: `all`, `N` (at most N kept copies; 0: none) or `1/K` (adaptive:
/// copies at most 1/K of the evicted pages, none for pages written after their last one).
pub fn parse_clean_copies(v: &str) -> Result<CleanCopies, String> {
    let bad = |e: std::num::ParseIntError| format!("--clean-copies all|N|1/K, not {v}: {e}");
    match v {
        "all" => Ok(CleanCopies::All),
        _ => match v.strip_prefix("1/") {
            Some(k) => Ok(CleanCopies::Adaptive {
                share: k.parse::<usize>().map_err(bad)?.max(1),
            }),
            None => Ok(CleanCopies::AtMost(v.parse().map_err(bad)?)),
        },
    }
}

use crate::cgroup::mib;

/// What each store holds: right after the workload (`zram_stat`: run (b)'s zram, or
/// `region`: run (c)), and again after 0.2 s idle, when the region's reclaimer (which
/// wakes every 20 ms) has compacted the holes the last faults left. zram does not
/// compact by itself (only through its `compact` file or the kernel's shrinker under
/// global memory pressure), so its figure is the same then.
pub fn print_held(
    zram_stat: Option<&std::path::Path>,
    region: Option<&Region>,
) -> Result<(), String> {
    for when in ["right after the workload", "after 0.2 s idle"] {
        if when != "right after the workload" {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        println!("held compressed, {when}:");
        if let Some(p) = zram_stat {
            crate::cgroup::print_zram(p)?;
        }
        if let Some(r) = region {
            print_region(r)?;
        }
    }
    Ok(())
}

/// Prints the region's statistics; an error if any fault failed.
pub fn print_region(r: &Region) -> Result<(), String> {
    let s = r.stats();
    let meta = r.zcache().metadata_bytes() as u64;
    let frames = (s.zcache.pool_frames * PAGE) as u64;
    println!(
        "region page table: {} pages x 3 B (state, referenced, written) = {:.2} MiB; spilled pages are in a file in {}",
        s.pages,
        mib(3 * s.pages as u64),
        std::env::temp_dir().display()
    );
    println!(
        "region: limit {:?} pages, resident {} ({} clean; {} read faults kept no copy, {} of them written since their last copy), compressed {}, spilled {}, zero {}; faults {} (refaults {}, wp {}), evictions {}, compressions {}, saved by the clean-page rule {}, zcache rejects {}, direct reclaim {}; zcache {} pages ({:.1} MiB of objects) in {} frames = {:.1} MiB (peak {:.1} MiB) + {:.2} MiB metadata = {:.1} MiB held compressed",
        r.resident_limit(),
        s.resident_pages,
        s.clean_pages,
        s.copies_not_kept,
        s.copies_not_kept_written,
        s.compressed_pages,
        s.spilled_pages,
        s.zero_pages,
        s.faults,
        s.refaults,
        s.wp_faults,
        s.evictions,
        s.compressions,
        s.compressions_saved,
        s.zcache_rejects,
        s.direct_reclaim,
        s.zcache.counters.stored_pages,
        mib(s.zcache.counters.zbytes.max(0) as u64),
        s.zcache.pool_frames,
        mib(frames),
        mib((s.zcache.pool_frames_peak * PAGE) as u64),
        mib(meta),
        mib(frames + meta),
    );
    if s.fault_errors != 0 {
        return Err(format!("{} fault errors", s.fault_errors));
    }
    Ok(())
}
