//! Run (b) of the examples: the same workload in a memory cgroup v1 swapping to a zram
//! device of its own (lz4), at the same limit as the region's. Shared by
//! `examples/sqlite.rs` and `examples/replay.rs` (`#[path]` module, not an example).
//!
//! The parent ([`run_in_cgroup`]) makes the zram device swap, creates the cgroup
//! `/sys/fs/cgroup/memory/zcache-uffd-NAME-PID` and runs this program again in it with
//! `--child-limit-pages N --zram-stat PATH`; the child, once it holds what the region's
//! limit would not count (code, libraries, stacks, the expected contents), calls
//! [`limit_own_cgroup`]: everything it holds is locked, and the limit becomes its usage
//! (less any page cache charged to the cgroup, which would be reclaimed first) plus N
//! pages, so that the memory it maps afterwards gets N pages, as on the region.
//! At the end the child prints zram's memory ([`print_zram`]). zcache-swapbench's
//! cleanup stack undoes the swapon, the device and the cgroup on every exit path
//! (SIGINT, SIGTERM, SIGHUP end the wait through an error).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zcache_swapbench::cleanup::{Cleanup, Host, Step};

const PAGE: u64 = 4096;

/// Bytes as MiB.
pub fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// The child's side: `mlockall(MCL_CURRENT)`, then its memory cgroup's limit set to its
/// usage now, less the page cache charged to it, plus `pages` pages. Returns (what it
/// holds, limit) in bytes.
pub fn limit_own_cgroup(pages: usize) -> Result<(u64, u64), String> {
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT) } != 0 {
        return Err(format!("mlockall: {}", std::io::Error::last_os_error()));
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let rel = own
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            ctl.split(',').any(|c| c == "memory").then_some(path)
        })
        .ok_or("no memory cgroup in /proc/self/cgroup")?;
    let dir = Path::new("/sys/fs/cgroup/memory").join(rel.trim_start_matches('/'));
    let usage_text = std::fs::read_to_string(dir.join("memory.usage_in_bytes"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let usage: u64 = usage_text
        .trim()
        .parse()
        .map_err(|e| format!("memory.usage_in_bytes {usage_text:?}: {e}"))?;
    // Page cache charged to the cgroup (files the child read that were not cached
    // before) is not locked and would be reclaimed first, giving the workload that much
    // more room: it is not counted.
    let stat = std::fs::read_to_string(dir.join("memory.stat"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let cache = zcache_swapbench::parse::key_values(&stat)
        .get("cache")
        .map_or(0, |&c| c.max(0) as u64);
    let held = usage.saturating_sub(cache);
    let limit = held + pages as u64 * PAGE;
    zcache_swapbench::cleanup::write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
    println!(
        "cgroup: {:.1} MiB held and locked before the workload's memory is mapped (usage {:.1} MiB less {:.1} MiB page cache); limit {:.1} MiB = that + {pages} pages",
        mib(held),
        mib(usage),
        mib(cache),
        mib(limit)
    );
    Ok((held, limit))
}

/// zram's memory as docs/performance-swap.md "Swap under real programs" counts it:
/// `mem_used_total` + 16 B per slot of disksize + 8 B per stored object (estimates).
/// Returns that total in bytes.
pub fn print_zram(mm_stat: &Path) -> Result<u64, String> {
    use zcache_swapbench::{ZRAM_TABLE_ENTRY, ZS_HANDLE, parse::MmStat};
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let m = MmStat::parse(&read(mm_stat)?)?;
    let disk = mm_stat.with_file_name("disksize");
    let size: u64 = read(&disk)?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let slots = size / PAGE;
    let objects = m.pages().saturating_sub(m.same_pages);
    let est = slots * ZRAM_TABLE_ENTRY + objects * ZS_HANDLE;
    println!(
        "zram: {} pages held ({} same-filled), compressed {:.1} MiB, mem_used_total {:.1} MiB (mem_used_max {:.1} MiB) + slot table estimate {:.2} MiB ({ZRAM_TABLE_ENTRY} B x {slots} slots + {ZS_HANDLE} B x {objects} objects) = {:.1} MiB",
        m.pages(),
        m.same_pages,
        mib(m.compr_data_size),
        mib(m.mem_used_total),
        mib(m.mem_used_max),
        mib(est),
        mib(m.mem_used_total + est),
    );
    Ok(m.mem_used_total + est)
}

/// The parent's side: refuses unless root, cgroup v1, zram `hot_add`, no swap area
/// active and zswap off; then zram (lz4, `zram_mib` MiB) as swap, the cgroup, and
/// this program again in it with `args` + `--child-limit-pages pages --zram-stat P`.
/// Prints pswpin/pswpout over the run, the cgroup's max usage and its OOM kills.
pub fn run_in_cgroup(
    name: &str,
    args: Vec<OsString>,
    pages: usize,
    zram_mib: u64,
    timeout_s: u64,
) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("run (b) needs root (a memory cgroup, a zram device, swapon)".into());
    }
    let host = Host::real();
    if !host.cgroup.join("memory.limit_in_bytes").exists() {
        return Err(format!(
            "no cgroup v1 memory controller at {}",
            host.cgroup.display()
        ));
    }
    if !host.zram_control().join("hot_add").exists() {
        return Err("no zram hot_add (modprobe zram?)".into());
    }
    let active = host.swaps();
    if !active.is_empty() {
        let names: Vec<&str> = active.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "a swap area is already active ({}): the run's swap counts would mix; swapoff it first",
            names.join(", ")
        ));
    }
    if std::fs::read_to_string(host.zswap_params().join("enabled")).is_ok_and(|s| s.trim() == "Y") {
        return Err("zswap is enabled: swap-outs would go through it, not zram".into());
    }
    zcache_swapbench::catch_signals();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cl = Cleanup::new(&host);
    let id = zcache_swapbench::setup_zram_swap(&host, &mut cl, zram_mib << 20, "lz4")
        .map_err(|e| e.to_string())?;
    let cg = host
        .cgroup
        .join(format!("zcache-uffd-{name}-{}", std::process::id()));
    std::fs::create_dir(&cg).map_err(|e| format!("{}: {e}", cg.display()))?;
    cl.push(Step::Cgroup(cg.clone()));
    let mut c = Command::new(exe);
    c.args(args)
        .args(["--child-limit-pages", &pages.to_string()])
        .arg("--zram-stat")
        .arg(host.block(&format!("zram{id}")).join("mm_stat"))
        .stdin(Stdio::null());
    {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
    }
    zcache_swapbench::workload::join_cgroup_on_exec(&mut c, &cg.join("cgroup.procs"))?;
    let vmstat = || {
        zcache_swapbench::parse::pswp(&std::fs::read_to_string("/proc/vmstat").unwrap_or_default())
    };
    let (in0, out0) = vmstat()?;
    let t0 = Instant::now();
    let child = c
        .spawn()
        .map_err(|e| format!("starting the workload: {e}"))?;
    cl.push(Step::Workload(child));
    let status = loop {
        let ch = cl.workload().ok_or("workload lost")?;
        if let Some(st) = ch.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if zcache_swapbench::interrupted() {
            return Err("interrupted: cleaning up".into());
        }
        if t0.elapsed().as_secs() > timeout_s {
            return Err(format!(
                "the workload did not end in {timeout_s} s (--timeout)"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall = t0.elapsed().as_secs_f64();
    let _ = cl.take_workload();
    let (in1, out1) = vmstat()?;
    let get = |f: &str| std::fs::read_to_string(cg.join(f)).unwrap_or_default();
    let oom = zcache_swapbench::parse::key_values(&get("memory.oom_control"))
        .get("oom_kill")
        .copied()
        .unwrap_or(0);
    println!(
        "run (b): zram{id} lz4 ({zram_mib} MiB disksize), cgroup {}: pswpin {}, pswpout {}; cgroup max usage {:.1} MiB, OOM kills {oom}; the child's wall {wall:.2} s",
        cg.display(),
        in1.saturating_sub(in0),
        out1.saturating_sub(out0),
        mib(get("memory.max_usage_in_bytes").trim().parse().unwrap_or(0)),
    );
    let errors = cl.finish();
    if !errors.is_empty() {
        return Err(format!("cleanup: {}", errors.join("; ")));
    }
    if !status.success() {
        return Err(format!(
            "the workload exited with {status}{}",
            if oom > 0 {
                " (the cgroup's OOM killer)"
            } else {
                ""
            }
        ));
    }
    Ok(())
}
