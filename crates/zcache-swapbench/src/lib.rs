//! `zcache swap-bench`: one real program run three times, each time inside a fresh
//! memory cgroup v1 limited to a fraction of its peak, so that it swaps through
//!
//! * **zram** (lz4): a zram device of the bench's own (`hot_add`, lz4, `disksize`,
//!   mkswap, swapon at the highest priority; afterwards swapoff, reset, `hot_remove`);
//! * **zswap** (lz4, zsmalloc, shrinker on) in front of a loop device over a
//!   disk-backed file `/var/tmp/zcache-swapbench-PID-zswap.swap`; every zswap parameter
//!   it changes is written back as found afterwards; debugfs is mounted at
//!   `/tmp/zcache-swapbench-PID-debugfs` only if it is not mounted anywhere yet;
//! * **zcache** (`zcache swapd --swapon`, lz4, zsmalloc) as a child process, stopped
//!   with SIGTERM (it undoes its own swap, loop device and mount) and read for its JSON
//!   statistics.
//!
//! Before the three, one unlimited run in a cgroup of its own measures the peak
//! (`memory.max_usage_in_bytes`); the limit is `--limit-fraction` of it.
//!
//! Every ~100 ms during a run it samples the store (zram `mm_stat`, zswap's debugfs,
//! swapd's `stats` file and VmRSS) and keeps the sample where the store held the most
//! pages. Everything it creates is named `zcache-swapbench-PID...`; it touches no other
//! swap area, loop device, mount, cgroup or zram device; every change is undone by a
//! [`cleanup::Cleanup`] stack on every exit path (SIGINT/SIGTERM/SIGHUP included).
#![deny(missing_docs)]

pub mod cleanup;
pub mod parse;
pub mod workload;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::cleanup::{Cleanup, Host, Step, SwapdChild, find_program};
use crate::parse::MmStat;
use crate::workload::{RunFiles, Workload, WorkloadKind};

/// Bytes of one zram slot-table entry (estimate: handle + flags, Linux 6.12+ without
/// CONFIG_ZRAM_TRACK_ENTRY_ACTIME), one per 4 KiB of disksize.
pub const ZRAM_TABLE_ENTRY: u64 = 16;
/// Bytes of one zsmalloc handle (its `zs_handle` slab object), per stored object.
pub const ZS_HANDLE: u64 = 8;
/// Bytes of one `struct zswap_entry` on Linux 6.18 (estimate: swpentry 8, length 4 +
/// referenced 1 + padding 3, pool 8, handle 8, objcg 8, lru list_head 16 = 56).
pub const ZSWAP_ENTRY: u64 = 56;
/// zswap's xarray per stored page (estimate: a 576-byte xa_node per 64 slots).
pub const ZSWAP_XARRAY: u64 = 9;
/// The priority of the bench's swap areas (swapon's highest).
pub const SWAP_PRIORITY: i32 = 32767;

/// A swap backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// A zram device of the bench's own.
    Zram,
    /// zswap in front of a loop device over a disk file.
    Zswap,
    /// `zcache swapd --swapon`.
    Zcache,
}

impl BackendKind {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Zram => "zram",
            BackendKind::Zswap => "zswap",
            BackendKind::Zcache => "zcache",
        }
    }
}

/// A compressor the three backends share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compressor {
    /// lz4.
    Lz4,
    /// lzo.
    Lzo,
}

impl Compressor {
    /// Its name (zram, zswap and zcache spell it alike).
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Lz4 => "lz4",
            Compressor::Lzo => "lzo",
        }
    }
}

/// Whether the kernel's crypto API has `alg` (/proc/crypto), which zswap needs.
pub fn crypto_has(host: &Host, alg: &str) -> bool {
    std::fs::read_to_string(host.proc_.join("crypto"))
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.split_once(':')
                .is_some_and(|(k, v)| k.trim() == "name" && v.trim() == alg)
        })
}

/// `zcache swap-bench`.
#[derive(Debug, Args, Clone)]
pub struct SwapBenchArgs {
    /// The program: python, sqlite, gcc (zstd as one unity file, -O2), gcc-small.
    #[arg(long, value_enum, default_value = "python")]
    pub workload: WorkloadKind,
    /// MiB of real data the python and sqlite workloads hold (the gcc ones ignore it).
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub size_mib: u64,
    /// The cgroup's memory.limit_in_bytes as a fraction of the workload's peak.
    #[arg(long, value_name = "F", default_value_t = 0.5)]
    pub limit_fraction: f64,
    /// Compressor of all three: lz4 or lzo. zswap takes it from the kernel's crypto API:
    /// where that has no lz4 (this project's 6.18 kernels), zswap runs with lzo and the
    /// report says so.
    #[arg(long, value_enum, default_value = "lz4")]
    pub compressor: Compressor,
    /// Backends, comma-separated, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "zram,zswap,zcache"
    )]
    pub backends: Vec<BackendKind>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Give up on a run after this many seconds.
    #[arg(long, value_name = "S", default_value_t = 900)]
    pub timeout: u64,
    /// Sampling interval, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub sample_ms: u64,
}

/// Why the bench did not run or did not finish.
#[derive(Debug)]
pub enum BenchError {
    /// Refused before anything was created (not root, a facility missing, bad option).
    Refused(String),
    /// A failure while running (everything done was undone).
    Failed(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Refused(m) | BenchError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BenchError {}

fn failed(m: impl Into<String>) -> BenchError {
    BenchError::Failed(m.into())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP only set a flag; the run loop sees it and ends through an
/// error, so the cleanup stack runs. Public for other benches that reuse the cleanup
/// stack (they poll [`interrupted`]).
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic
        // (async-signal-safe); sigaction reads `sa` only.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether SIGINT, SIGTERM or SIGHUP arrived since [`catch_signals`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn check_interrupt() -> Result<(), BenchError> {
    if interrupted() {
        Err(failed("interrupted (signal): cleaning up"))
    } else {
        Ok(())
    }
}

/// Why the bench cannot run here, if it cannot: root, each facility the chosen
/// backends need, the workload's program.
pub fn refusal(host: &Host, args: &SwapBenchArgs) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "zcache swap-bench needs root: it creates memory cgroups, swap areas, a zram \
             device, loop devices and mounts, and changes zswap's parameters (and restores them)"
                .into(),
        );
    }
    if !(args.limit_fraction > 0.0 && args.limit_fraction < 1.0) {
        return Some(format!(
            "--limit-fraction {}: must be between 0 and 1",
            args.limit_fraction
        ));
    }
    if args.backends.is_empty() {
        return Some("--backends: name at least one".into());
    }
    if !host.cgroup.join("cgroup.procs").exists()
        || !host.cgroup.join("memory.limit_in_bytes").exists()
    {
        return Some(format!(
            "no cgroup v1 memory controller at {} (memory.limit_in_bytes)",
            host.cgroup.display()
        ));
    }
    for p in ["losetup", "mkswap", "swapon", "swapoff", "mount", "umount"] {
        if find_program(p).is_none() {
            return Some(format!("{p} not found (Debian packages util-linux, mount)"));
        }
    }
    let zswap_on =
        std::fs::read_to_string(host.zswap_params().join("enabled")).is_ok_and(|s| s.trim() == "Y");
    if zswap_on {
        return Some(
            "zswap is enabled on this machine: the zram and zcache runs would swap through \
             it too; this bench enables it for its zswap run only. Disable it first \
             (echo N > /sys/module/zswap/parameters/enabled)"
                .into(),
        );
    }
    for b in &args.backends {
        match b {
            BackendKind::Zram if !host.zram_control().join("hot_add").exists() => {
                return Some(format!(
                    "the zram backend needs zram with hot_add: {}/hot_add is missing (modprobe zram?)",
                    host.zram_control().display()
                ));
            }
            BackendKind::Zswap if !host.zswap_params().join("enabled").exists() => {
                return Some(format!(
                    "the zswap backend needs zswap: {} is missing (CONFIG_ZSWAP)",
                    host.zswap_params().display()
                ));
            }
            BackendKind::Zswap | BackendKind::Zcache
                if Command::new(find_program("losetup").unwrap_or_default())
                    .arg("-f")
                    .output()
                    .map_or(true, |o| !o.status.success()) =>
            {
                return Some("no free loop device (losetup -f failed)".into());
            }
            BackendKind::Zcache if !Path::new("/dev/fuse").exists() => {
                return Some("the zcache backend needs /dev/fuse (CONFIG_FUSE_FS)".into());
            }
            _ => {}
        }
    }
    workload::refusal(args.workload)
}

/// The store's state at one moment.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// Pages the store holds in memory.
    pub held_pages: u64,
    /// Compressed bytes of them (zram: compr_data_size; zcache: zbytes; zswap: not
    /// reported, 0).
    pub data_bytes: u64,
    /// Memory the allocator holds for them (zram: mem_used_total; zswap:
    /// pool_total_size; zcache: pool_frames x 4096).
    pub frame_bytes: u64,
    /// Metadata (zram and zswap: estimates; zcache: counted).
    pub metadata_bytes: u64,
    /// KiB used of the bench's swap area (/proc/swaps).
    pub swap_used_kib: u64,
    /// swapd's VmRSS (zcache only), bytes.
    pub rss_bytes: u64,
    /// The raw figures.
    pub raw: Value,
}

impl Sample {
    /// Memory for the held pages.
    pub fn total(&self) -> u64 {
        self.frame_bytes + self.metadata_bytes
    }

    /// [`Sample::total`] per held page.
    pub fn per_page(&self) -> f64 {
        self.total() as f64 / self.held_pages.max(1) as f64
    }

    /// Pages in the swap area at that moment.
    pub fn swapped_pages(&self) -> u64 {
        self.swap_used_kib / 4
    }

    /// Memory per page the swap area holds (its used slots: the live swapped data),
    /// pages of it not held in memory counted at 4096 B, so that every store is charged
    /// for the same data. A store that holds more pages than the area has in use (pages
    /// of freed slots not discarded yet: swapd behind a loop device learns of a freed
    /// slot only when the kernel discards its whole cluster) is charged for them too.
    pub fn per_swapped_page(&self) -> f64 {
        let swapped = self.swapped_pages();
        (self.total() + swapped.saturating_sub(self.held_pages) * 4096) as f64
            / swapped.max(1) as f64
    }

    fn json(&self) -> Value {
        json!({
            "at_s": self.at_s,
            "held_pages": self.held_pages,
            "data_bytes": self.data_bytes,
            "frame_bytes": self.frame_bytes,
            "metadata_bytes": self.metadata_bytes,
            "total_bytes": self.total(),
            "bytes_per_held_page": self.per_page(),
            "swap_used_kib": self.swap_used_kib,
            "bytes_per_swapped_page": self.per_swapped_page(),
            "rss_bytes": self.rss_bytes,
            "raw": self.raw,
        })
    }
}

/// One run of the workload.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// "unlimited" or the backend's name.
    pub backend: String,
    /// The swap device it used (`/dev/zram1`, `/dev/loop3`); empty for the unlimited run.
    pub device: String,
    /// Wall time of the workload, seconds.
    pub wall_s: f64,
    /// /proc/vmstat pswpin delta (every swap area of the machine).
    pub pswpin: u64,
    /// /proc/vmstat pswpout delta.
    pub pswpout: u64,
    /// /proc/vmstat zswpin delta (loads from zswap).
    pub zswpin: u64,
    /// /proc/vmstat zswpout delta (stores into zswap).
    pub zswpout: u64,
    /// The workload's own check.
    pub ok: bool,
    /// What the workload said.
    pub detail: String,
    /// The sample where the store held the most pages.
    pub peak: Option<Sample>,
    /// Samples taken.
    pub samples: u64,
    /// The cgroup's memory.max_usage_in_bytes.
    pub max_usage: u64,
    /// Processes the memory cgroup's OOM killer killed (memory.oom_control oom_kill).
    pub oom_kills: u64,
    /// The most swapd's VmRSS was (zcache).
    pub rss_max: u64,
    /// swapd's VmRSS at the first sample, before the workload swapped (zcache): its
    /// memory without frames (binary, stacks, FUSE buffers, all locked by mlockall).
    pub rss_first: u64,
    /// swapd's final JSON statistics (zcache).
    pub swapd: Option<Value>,
    /// swapd's CPU time over the run, seconds (zcache).
    pub swapd_cpu_s: f64,
}

impl RunReport {
    fn json(&self) -> Value {
        let dev = self.swapd.as_ref().map(|v| &v["device"]);
        json!({
            "backend": self.backend,
            "device": self.device,
            "wall_s": self.wall_s,
            "pswpin": self.pswpin,
            "pswpout": self.pswpout,
            "zswpin": self.zswpin,
            "zswpout": self.zswpout,
            "ok": self.ok,
            "detail": self.detail,
            "max_usage_in_bytes": self.max_usage,
            "oom_kills": self.oom_kills,
            "samples": self.samples,
            "peak_sample": self.peak.as_ref().map(Sample::json),
            "swapd_rss_max_bytes": self.rss_max,
            "swapd_rss_first_bytes": self.rss_first,
            "swapd_cpu_s": self.swapd_cpu_s,
            "swapd_zcache_s": dev.and_then(|d| d["zcache_ns"].as_f64()).map(|n| n / 1e9),
            "swapd_backing_s": dev.and_then(|d| d["backing_ns"].as_f64()).map(|n| n / 1e9),
            "swapd": self.swapd,
        })
    }
}

/// The whole bench.
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// The workload's name.
    pub workload: String,
    /// MiB of data (python, sqlite).
    pub size_mib: u64,
    /// The unlimited run.
    pub unlimited: RunReport,
    /// The cgroup limit, bytes.
    pub limit: u64,
    /// The swap area size of every backend, bytes.
    pub swap_size: u64,
    /// One run per backend.
    pub runs: Vec<RunReport>,
    /// zswap's parameters during its run.
    pub zswap_params: Vec<(String, String)>,
    /// The compressor of zram and zcache.
    pub compressor: String,
}

impl BenchReport {
    fn run(&self, name: &str) -> Option<&RunReport> {
        self.runs.iter().find(|r| r.backend == name)
    }

    /// zcache's bytes per held page over another backend's, same bench.
    pub fn ratio(&self, other: &str) -> Option<f64> {
        let z = self.run("zcache")?.peak.as_ref()?;
        let o = self.run(other)?.peak.as_ref()?;
        (o.held_pages > 0 && z.held_pages > 0).then(|| z.per_page() / o.per_page())
    }

    /// The same with pages not held counted at 4096 B (per swapped page).
    pub fn ratio_swapped(&self, other: &str) -> Option<f64> {
        let z = self.run("zcache")?.peak.as_ref()?;
        let o = self.run(other)?.peak.as_ref()?;
        (o.swapped_pages() > 0 && z.swapped_pages() > 0)
            .then(|| z.per_swapped_page() / o.per_swapped_page())
    }

    /// Everything as JSON.
    pub fn json(&self) -> Value {
        json!({
            "workload": self.workload,
            "size_mib": self.size_mib,
            "compressor": self.compressor,
            "unlimited": self.unlimited.json(),
            "limit_in_bytes": self.limit,
            "swap_size_bytes": self.swap_size,
            "runs": self.runs.iter().map(RunReport::json).collect::<Vec<_>>(),
            "zswap_params": self.zswap_params.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "zcache_over_zram": self.ratio("zram"),
            "zcache_over_zswap": self.ratio("zswap"),
            "zcache_over_zram_per_swapped_page": self.ratio_swapped("zram"),
            "zcache_over_zswap_per_swapped_page": self.ratio_swapped("zswap"),
            "estimates": {
                "zram_table_entry_bytes_per_slot": ZRAM_TABLE_ENTRY,
                "zs_handle_bytes_per_object": ZS_HANDLE,
                "zswap_entry_bytes": ZSWAP_ENTRY,
                "zswap_xarray_bytes_per_entry": ZSWAP_XARRAY,
            },
        })
    }

    /// The table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let u = &self.unlimited;
        let _ = writeln!(
            s,
            "zcache swap-bench: workload {}{}; unlimited run {:.2} s, peak {:.1} MiB ({}); \
             cgroup limit {:.1} MiB; swap areas {} MiB at priority {SWAP_PRIORITY}",
            self.workload,
            if self.workload.starts_with("gcc") {
                String::new()
            } else {
                format!(" {} MiB", self.size_mib)
            },
            u.wall_s,
            u.max_usage as f64 / 1048576.0,
            if u.ok { "check ok" } else { "CHECK FAILED" },
            self.limit as f64 / 1048576.0,
            self.swap_size >> 20
        );
        let zc = self
            .zswap_params
            .iter()
            .find(|(k, _)| k == "compressor")
            .map(|(_, v)| v.as_str());
        let _ = writeln!(
            s,
            "compressor {} (zram, zcache){}; zsmalloc everywhere",
            self.compressor,
            match zc {
                Some(c) if c != self.compressor => format!(
                    ", zswap {c} (the kernel's crypto API has no {})",
                    self.compressor
                ),
                Some(_) => ", zswap the same".to_string(),
                None => String::new(),
            }
        );
        let _ = writeln!(
            s,
            "{:<7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>7} {:>11} {:>10} {:>8} {:>8} {:>9} {:>9} {:>7}",
            "backend",
            "wall s",
            "pswpin",
            "pswpout",
            "zswpin",
            "zswpout",
            "check",
            "held pg",
            "at s",
            "frames B",
            "meta B",
            "B/held",
            "swap pg",
            "B/swapped",
            "RSS MiB",
            "samples"
        );
        for r in &self.runs {
            let p = r.peak.clone().unwrap_or_default();
            let _ = writeln!(
                s,
                "{:<7} {:>7.2} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>7.1} {:>11} {:>10} {:>8.1} {:>8} {:>9.1} {:>9} {:>7}",
                r.backend,
                r.wall_s,
                r.pswpin,
                r.pswpout,
                r.zswpin,
                r.zswpout,
                if r.ok {
                    "ok"
                } else if r.oom_kills > 0 {
                    "OOM"
                } else {
                    "FAILED"
                },
                p.held_pages,
                p.at_s,
                p.frame_bytes,
                p.metadata_bytes,
                p.per_page(),
                p.swapped_pages(),
                p.per_swapped_page(),
                if r.backend == "zcache" {
                    format!("{:.1}", p.rss_bytes as f64 / 1048576.0)
                } else {
                    "-".into()
                },
                r.samples
            );
        }
        for r in self.runs.iter().filter(|r| !r.ok) {
            let _ = writeln!(s, "{}: check failed: {}", r.backend, r.detail);
        }
        for other in ["zram", "zswap"] {
            if let Some(x) = self.ratio(other) {
                let _ = writeln!(
                    s,
                    "zcache / {other}: {x:.3}x the memory per held page ({:.3}x per swapped page, pages not held at 4096 B)",
                    self.ratio_swapped(other).unwrap_or(f64::NAN)
                );
            }
        }
        if let Some(r) = self.run("zcache") {
            let dev = r
                .swapd
                .as_ref()
                .map(|v| v["device"].clone())
                .unwrap_or_default();
            let p = r.peak.clone().unwrap_or_default();
            let ns = |k: &str| dev[k].as_f64().unwrap_or(0.0) / 1e9;
            let frames = p.frame_bytes / 4096;
            let _ = writeln!(
                s,
                "zcache swapd: at the peak sample {} frames ({:.1} MiB) + {:.1} MiB metadata, VmRSS {:.1} MiB \
                 ({:.1} MiB at the first sample: {:.2} KiB per frame beyond it); VmRSS max {:.1} MiB; CPU {:.2} s of which zcache {:.2} s, backing file {:.2} s, \
                 the rest (FUSE requests, copies) {:.2} s; wall {:.2} s",
                frames,
                p.frame_bytes as f64 / 1048576.0,
                p.metadata_bytes as f64 / 1048576.0,
                p.rss_bytes as f64 / 1048576.0,
                r.rss_first as f64 / 1048576.0,
                p.rss_bytes.saturating_sub(r.rss_first) as f64 / 1024.0 / frames.max(1) as f64,
                r.rss_max as f64 / 1048576.0,
                r.swapd_cpu_s,
                ns("zcache_ns"),
                ns("backing_ns"),
                (r.swapd_cpu_s - ns("zcache_ns") - ns("backing_ns")).max(0.0),
                r.wall_s
            );
            let _ = writeln!(
                s,
                "zcache swapd device: stores kept {} refused {} written back {}; reads zcache {} backing {} zero {}; discarded {}",
                dev["stores_kept"],
                dev["stores_refused"],
                dev["written_back"],
                dev["reads_zcache"],
                dev["reads_backing"],
                dev["reads_zero"],
                dev["discarded_blocks"]
            );
        }
        let _ = writeln!(
            s,
            "held pg / B/held: pages the store held in memory at its peak sample (max held, sampled every ~100 ms) and its memory per held page: \
             zram mem_used_total + {ZRAM_TABLE_ENTRY} B/slot of disksize + {ZS_HANDLE} B/object (estimates); \
             zswap pool_total_size + {} B/stored page (estimate: zswap_entry {ZSWAP_ENTRY} + handle {ZS_HANDLE} + xarray {ZSWAP_XARRAY}); \
             zcache pool frames x 4096 + metadata (counted). B/swapped: the same memory per page in use in the swap area (/proc/swaps Used: the live data), its pages not held in memory at 4096 B; a store holding pages of freed slots (swapd: freed slots reach it only as whole-cluster discards) pays for them here. \
             pswpin/pswpout/zswpin/zswpout are the machine's /proc/vmstat deltas over the run (every swap area; zswap's stores count as zswpout, not pswpout).",
            ZSWAP_ENTRY + ZS_HANDLE + ZSWAP_XARRAY
        );
        s
    }
}

/// One backend set up for a run.
enum Store {
    Zram {
        id: u32,
        slots: u64,
    },
    Zswap {
        debugfs: PathBuf,
        dev: String,
    },
    Zcache {
        mountpoint: PathBuf,
        pid: u32,
        dev: String,
    },
}

fn read(path: &Path) -> Result<String, BenchError> {
    std::fs::read_to_string(path).map_err(|e| failed(format!("reading {}: {e}", path.display())))
}

fn run_ok(host: &Host, prog: &str, args: &[&str]) -> Result<String, BenchError> {
    host.ops.run(prog, args).map_err(failed)
}

impl Store {
    fn sample(&self, host: &Host) -> Option<Sample> {
        let used = |dev: &str| {
            host.swaps()
                .iter()
                .find(|a| a.name == dev)
                .map_or(0, |a| a.used_kib)
        };
        match self {
            Store::Zram { id, slots } => {
                let name = format!("zram{id}");
                let m = MmStat::parse(
                    &std::fs::read_to_string(host.block(&name).join("mm_stat")).ok()?,
                )
                .ok()?;
                let objects = m.pages().saturating_sub(m.same_pages);
                Some(Sample {
                    held_pages: m.pages(),
                    data_bytes: m.compr_data_size,
                    frame_bytes: m.mem_used_total,
                    metadata_bytes: slots * ZRAM_TABLE_ENTRY + objects * ZS_HANDLE,
                    swap_used_kib: used(&format!("/dev/{name}")),
                    raw: json!({
                        "orig_data_size": m.orig_data_size, "compr_data_size": m.compr_data_size,
                        "mem_used_total": m.mem_used_total, "mem_used_max": m.mem_used_max,
                        "same_pages": m.same_pages, "huge_pages": m.huge_pages, "slots": slots,
                    }),
                    ..Sample::default()
                })
            }
            Store::Zswap { debugfs, dev } => {
                let z = parse::ZswapStats::from_numbers(parse::number_dir(debugfs).ok()?).ok()?;
                Some(Sample {
                    held_pages: z.stored_pages,
                    frame_bytes: z.pool_total_size,
                    metadata_bytes: z.stored_pages * (ZSWAP_ENTRY + ZS_HANDLE + ZSWAP_XARRAY),
                    swap_used_kib: used(dev),
                    raw: json!(z.all),
                    ..Sample::default()
                })
            }
            Store::Zcache {
                mountpoint,
                pid,
                dev,
            } => {
                let kv =
                    parse::key_values(&std::fs::read_to_string(mountpoint.join("stats")).ok()?);
                let g = |k: &str| kv.get(k).copied().unwrap_or(0).max(0) as u64;
                let rss = std::fs::read_to_string(host.proc_.join(format!("{pid}/status")))
                    .ok()
                    .and_then(|s| parse::vm_rss(&s))
                    .unwrap_or(0);
                Some(Sample {
                    held_pages: g("stored_pages"),
                    data_bytes: g("zbytes"),
                    frame_bytes: g("pool_frames") * 4096,
                    metadata_bytes: g("metadata_bytes"),
                    swap_used_kib: used(dev),
                    rss_bytes: rss,
                    raw: json!(kv),
                    ..Sample::default()
                })
            }
        }
    }
}

/// The process's CPU ticks per second.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// What one run needs.
struct RunCtx<'a> {
    host: &'a Host,
    args: &'a SwapBenchArgs,
    workload: &'a Workload,
    n: usize,
}

/// Runs the workload once in a fresh cgroup (`limit`: None = unlimited), sampling
/// `store`.
fn run_workload(
    cx: &RunCtx,
    cl: &mut Cleanup,
    limit: Option<u64>,
    store: Option<&Store>,
    files: &RunFiles,
) -> Result<RunReport, BenchError> {
    let host = cx.host;
    let cg = host
        .cgroup
        .join(format!("zcache-swapbench-{}-{}", std::process::id(), cx.n));
    std::fs::create_dir(&cg)
        .map_err(|e| failed(format!("creating cgroup {}: {e}", cg.display())))?;
    cl.push(Step::Cgroup(cg.clone()));
    if let Some(l) = limit {
        cleanup::write(&cg.join("memory.limit_in_bytes"), &l.to_string()).map_err(failed)?;
    }
    for f in [&files.stdout, &files.stderr, &files.object] {
        cl.push(Step::RemoveFile(f.clone()));
    }
    let vm =
        || parse::pswp(&std::fs::read_to_string(host.proc_.join("vmstat")).unwrap_or_default());
    let zvm =
        || parse::zswp(&std::fs::read_to_string(host.proc_.join("vmstat")).unwrap_or_default());
    let (in0, out0) = vm().map_err(failed)?;
    let (zin0, zout0) = zvm();
    let t0 = Instant::now();
    let child = cx
        .workload
        .spawn(&cg.join("cgroup.procs"), files)
        .map_err(failed)?;
    cl.push(Step::Workload(child));
    let mut peak: Option<Sample> = None;
    let mut samples = 0;
    let mut rss_max = 0;
    let mut rss_first = 0;
    let interval = Duration::from_millis(cx.args.sample_ms.max(10));
    let status = loop {
        let c = cl.workload().ok_or_else(|| failed("workload lost"))?;
        if let Some(st) = c.try_wait().map_err(|e| failed(format!("wait: {e}")))? {
            break st;
        }
        check_interrupt()?;
        if t0.elapsed() > Duration::from_secs(cx.args.timeout) {
            return Err(failed(format!(
                "the {} workload did not finish in {} s (--timeout)",
                cx.workload.kind.name(),
                cx.args.timeout
            )));
        }
        if let Some(store) = store
            && let Some(mut s) = store.sample(host)
        {
            samples += 1;
            if samples == 1 {
                rss_first = s.rss_bytes;
            }
            s.at_s = t0.elapsed().as_secs_f64();
            rss_max = rss_max.max(s.rss_bytes);
            if peak.as_ref().is_none_or(|p| s.held_pages >= p.held_pages) {
                peak = Some(s);
            }
        }
        std::thread::sleep(interval);
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let (in1, out1) = vm().map_err(failed)?;
    let (zin1, zout1) = zvm();
    let _ = cl.take_workload();
    let max_usage =
        parse::one_number(&read(&cg.join("memory.max_usage_in_bytes"))?).map_err(failed)?;
    let oom_kills = std::fs::read_to_string(cg.join("memory.oom_control"))
        .ok()
        .and_then(|t| parse::key_values(&t).get("oom_kill").map(|v| *v as u64))
        .unwrap_or(0);
    let (ok, mut detail) = cx.workload.check(status, files);
    if oom_kills > 0 {
        detail = format!("the cgroup's OOM killer killed {oom_kills} process(es); {detail}");
    }
    Ok(RunReport {
        backend: String::new(),
        device: String::new(),
        wall_s,
        pswpin: in1.saturating_sub(in0),
        pswpout: out1.saturating_sub(out0),
        zswpin: zin1.saturating_sub(zin0),
        zswpout: zout1.saturating_sub(zout0),
        ok,
        detail,
        peak,
        samples,
        max_usage,
        oom_kills,
        rss_max,
        rss_first,
        swapd: None,
        swapd_cpu_s: 0.0,
    })
}

fn files(work: &Path, n: usize) -> RunFiles {
    RunFiles {
        stdout: work.join(format!("run-{n}.out")),
        stderr: work.join(format!("run-{n}.err")),
        object: work.join(format!("run-{n}.o")),
    }
}

/// zram: a device of its own, lz4, `size` bytes, swap at the highest priority.
fn setup_zram(host: &Host, cl: &mut Cleanup, size: u64, alg: &str) -> Result<Store, BenchError> {
    let id = setup_zram_swap(host, cl, size, alg)?;
    Ok(Store::Zram {
        id,
        slots: size / 4096,
    })
}

/// A zram device of its own (`hot_add`), compressor `alg`, `size` bytes, made swap at
/// the highest priority; returns its number. The undo steps (swapoff, reset,
/// hot_remove) are on `cl` before each change is made.
pub fn setup_zram_swap(
    host: &Host,
    cl: &mut Cleanup,
    size: u64,
    alg: &str,
) -> Result<u32, BenchError> {
    let text = read(&host.zram_control().join("hot_add"))?;
    let id: u32 = text
        .trim()
        .parse()
        .map_err(|_| failed(format!("zram hot_add answered {text:?}")))?;
    cl.push(Step::ZramRemove(id));
    cl.push(Step::ZramReset(id));
    let name = format!("zram{id}");
    let sys = host.block(&name);
    let algs = read(&sys.join("comp_algorithm"))?;
    if !algs
        .split_whitespace()
        .any(|a| a.trim_matches(['[', ']']) == alg)
    {
        return Err(failed(format!(
            "this kernel's zram has no {alg}: {}",
            algs.trim()
        )));
    }
    cleanup::write(&sys.join("comp_algorithm"), alg).map_err(failed)?;
    cleanup::write(&sys.join("disksize"), &size.to_string()).map_err(failed)?;
    let dev = format!("/dev/{name}");
    run_ok(host, "mkswap", &["-L", "zcache-swapbench-zram", &dev])?;
    run_ok(
        host,
        "swapon",
        &["--priority", &SWAP_PRIORITY.to_string(), &dev],
    )?;
    cl.push(Step::Swapoff(dev));
    Ok(id)
}

/// Sets zswap's parameters (compressor `alg`, zsmalloc where the kernel still has a
/// `zpool` parameter (6.18 has zsmalloc only), the shrinker, enabled), pushing a
/// restore step for each one it changes before writing it; every value is read back
/// after zswap is enabled (zswap's first enable can fall back to another compressor).
/// Returns the values in force.
pub fn set_zswap(
    host: &Host,
    cl: &mut Cleanup,
    alg: &str,
) -> Result<Vec<(String, String)>, BenchError> {
    let dir = host.zswap_params();
    let set = [
        ("compressor", alg),
        ("zpool", "zsmalloc"),
        ("shrinker_enabled", "Y"),
        ("enabled", "Y"),
    ];
    for (k, v) in set {
        let p = dir.join(k);
        if !p.exists() {
            continue;
        }
        let old = read(&p)?.trim().to_string();
        if old != v {
            cl.push(Step::Restore {
                path: p.clone(),
                value: old,
            });
            cleanup::write(&p, v).map_err(failed)?;
        }
    }
    let mut now = Vec::new();
    for (k, v) in set {
        let p = dir.join(k);
        if !p.exists() {
            continue;
        }
        let got = read(&p)?.trim().to_string();
        if got != v {
            return Err(failed(format!("zswap {k}: wrote {v}, reads {got}")));
        }
        now.push((k.to_string(), got));
    }
    Ok(now)
}

/// A loop device over a new disk file of `size` bytes, swap at the highest priority.
fn setup_loop_swap(
    host: &Host,
    cl: &mut Cleanup,
    file: &Path,
    size: u64,
) -> Result<String, BenchError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| failed(format!("creating {}: {e}", file.display())))?;
    cl.push(Step::RemoveFile(file.to_path_buf()));
    f.set_len(size)
        .map_err(|e| failed(format!("{}: {e}", file.display())))?;
    drop(f);
    let dev = run_ok(
        host,
        "losetup",
        &[
            "--find",
            "--show",
            "--direct-io=on",
            &file.display().to_string(),
        ],
    )?;
    cl.push(Step::LoopDetach(dev.clone()));
    run_ok(host, "mkswap", &["-L", "zcache-swapbench-zswap", &dev])?;
    run_ok(
        host,
        "swapon",
        &["--priority", &SWAP_PRIORITY.to_string(), &dev],
    )?;
    cl.push(Step::Swapoff(dev.clone()));
    Ok(dev)
}

/// debugfs's zswap directory, mounting debugfs at a zcache- mount point if it is not
/// mounted anywhere.
fn zswap_debugfs(host: &Host, cl: &mut Cleanup) -> Result<PathBuf, BenchError> {
    let mounts = std::fs::read_to_string(host.proc_.join("mounts")).unwrap_or_default();
    let root = match parse::mounts_of_type(&mounts, "debugfs").into_iter().next() {
        Some(m) => PathBuf::from(m),
        None => {
            let dir = host
                .tmp
                .join(format!("zcache-swapbench-{}-debugfs", std::process::id()));
            std::fs::create_dir(&dir)
                .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
            cl.push(Step::RemoveDir(dir.clone()));
            run_ok(
                host,
                "mount",
                &[
                    "-t",
                    "debugfs",
                    "zcache-debugfs",
                    &dir.display().to_string(),
                ],
            )?;
            cl.push(Step::Unmount(dir.clone()));
            dir
        }
    };
    // zswap creates its directory when it is first enabled.
    Ok(root.join("zswap"))
}

/// Waits for zswap's debugfs statistics (they appear once zswap is enabled).
fn wait_zswap_stats(dir: &Path) -> Result<(), BenchError> {
    for _ in 0..50 {
        if dir.join("stored_pages").exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(failed(format!(
        "zswap is enabled but its debugfs statistics are missing: {}",
        dir.display()
    )))
}

/// `zcache swapd --swapon` as a child; waits for it to serve.
fn setup_swapd(
    host: &Host,
    cl: &mut Cleanup,
    swapd_cmd: &[OsString],
    size: u64,
    alg: &str,
) -> Result<Store, BenchError> {
    use std::os::unix::process::CommandExt;
    let pid = std::process::id();
    let mountpoint = host.tmp.join(format!("zcache-swapbench-{pid}-swapd"));
    let backing = host
        .var_tmp
        .join(format!("zcache-swapbench-{pid}-swapd.backing"));
    let (prog, pre) = swapd_cmd
        .split_first()
        .ok_or_else(|| failed("no swapd command"))?;
    let mut c = Command::new(prog);
    c.args(pre)
        .args([
            "--size",
            &size.to_string(),
            "--compressor",
            alg,
            "--allocator",
            "zsmalloc",
        ])
        .args(["--swapon", "--swap-priority", &SWAP_PRIORITY.to_string()])
        .arg("--mountpoint")
        .arg(&mountpoint)
        .arg("--backing")
        .arg(&backing)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = c
        .spawn()
        .map_err(|e| failed(format!("starting zcache swapd: {e}")))?;
    let mut out = child.stdout.take().ok_or_else(|| failed("swapd stdout"))?;
    let err = child.stderr.take().ok_or_else(|| failed("swapd stderr"))?;
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("[zcache swapd] {line}");
            if line.contains("stops it") {
                let _ = tx.send(());
            }
        }
    });
    let spid = child.id();
    cl.push(Step::Swapd(Box::new(SwapdChild {
        child,
        mountpoint: mountpoint.clone(),
        backing,
        stdout: Some(stdout),
    })));
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        return Err(failed(
            "zcache swapd did not come up in 60 s (its stderr is above)",
        ));
    }
    let mp = mountpoint.display().to_string();
    let dev = host
        .swaps()
        .into_iter()
        .map(|a| a.name)
        .find(|d| {
            std::fs::read_to_string(
                host.block(d.trim_start_matches("/dev/"))
                    .join("loop/backing_file"),
            )
            .is_ok_and(|b| b.starts_with(&mp))
        })
        .ok_or_else(|| failed("zcache swapd is up but its loop device is not swap"))?;
    Ok(Store::Zcache {
        mountpoint,
        pid: spid,
        dev,
    })
}

/// Runs the bench. `swapd_cmd`: the program and leading arguments that start
/// `zcache swapd` (the `zcache` binary and "swapd").
pub fn run(args: &SwapBenchArgs, swapd_cmd: &[OsString]) -> Result<BenchReport, BenchError> {
    let host = Host::real();
    run_on(&host, args, swapd_cmd)
}

/// [`run`] on a given host.
pub fn run_on(
    host: &Host,
    args: &SwapBenchArgs,
    swapd_cmd: &[OsString],
) -> Result<BenchReport, BenchError> {
    if let Some(r) = refusal(host, args) {
        return Err(BenchError::Refused(r));
    }
    catch_signals();
    let pid = std::process::id();
    let mut global = Cleanup::new(host);
    let work = host.var_tmp.join(format!("zcache-swapbench-{pid}"));
    std::fs::create_dir(&work).map_err(|e| failed(format!("creating {}: {e}", work.display())))?;
    global.push(Step::RemoveDir(work.clone()));
    let mut wl = Workload {
        kind: args.workload,
        size_mib: args.size_mib,
        unity: None,
        zstd_lib: None,
        reference: None,
    };
    if matches!(args.workload, WorkloadKind::Gcc | WorkloadKind::GccSmall) {
        let lib = workload::find_zstd_lib().ok_or_else(|| failed("zstd sources not found"))?;
        let unity = work.join("zstd-unity.c");
        let src = workload::unity_source(&lib, args.workload).map_err(|e| failed(e.to_string()))?;
        std::fs::write(&unity, src).map_err(|e| failed(e.to_string()))?;
        global.push(Step::RemoveFile(unity.clone()));
        wl.unity = Some(unity);
        wl.zstd_lib = Some(lib);
    }
    let debugfs = if args.backends.contains(&BackendKind::Zswap) {
        Some(zswap_debugfs(host, &mut global)?)
    } else {
        None
    };

    // The unlimited run: the peak (and gcc's reference object).
    let mut report = BenchReport {
        workload: args.workload.name().into(),
        size_mib: args.size_mib,
        compressor: args.compressor.name().into(),
        ..BenchReport::default()
    };
    {
        let mut cl = Cleanup::new(host);
        let f = files(&work, 0);
        let cx = RunCtx {
            host,
            args,
            workload: &wl,
            n: 0,
        };
        let mut r = run_workload(&cx, &mut cl, None, None, &f)?;
        r.backend = "unlimited".into();
        if !r.ok {
            return Err(failed(format!(
                "the unlimited run failed its own check: {}",
                r.detail
            )));
        }
        if wl.unity.is_some() {
            let reference = work.join("reference.o");
            std::fs::rename(&f.object, &reference).map_err(|e| failed(e.to_string()))?;
            global.push(Step::RemoveFile(reference.clone()));
            wl.reference = Some(reference);
        }
        let errors = cl.finish();
        if !errors.is_empty() {
            return Err(failed(errors.join("; ")));
        }
        report.unlimited = r;
    }
    let peak = report.unlimited.max_usage;
    report.limit = ((peak as f64 * args.limit_fraction) as u64) & !4095;
    report.swap_size = ((peak + (64 << 20)) + (1 << 20) - 1) & !((1 << 20) - 1);
    let size = report.swap_size;

    for (i, b) in args.backends.iter().enumerate() {
        check_interrupt()?;
        let mut cl = Cleanup::new(host);
        let store = match b {
            BackendKind::Zram => setup_zram(host, &mut cl, size, args.compressor.name())?,
            BackendKind::Zswap => {
                let file = host
                    .var_tmp
                    .join(format!("zcache-swapbench-{pid}-zswap.swap"));
                // The restore steps go first on the stack: zswap is put back after the
                // swap area is gone.
                let alg = if crypto_has(host, args.compressor.name()) {
                    args.compressor.name()
                } else {
                    eprintln!(
                        "zcache swap-bench: this kernel's crypto API has no {} (/proc/crypto): zswap runs with lzo",
                        args.compressor.name()
                    );
                    "lzo"
                };
                let params = set_zswap(host, &mut cl, alg)?;
                report.zswap_params = params;
                let stats = debugfs.clone().unwrap_or_default();
                wait_zswap_stats(&stats)?;
                let dev = setup_loop_swap(host, &mut cl, &file, size)?;
                Store::Zswap {
                    debugfs: stats,
                    dev,
                }
            }
            BackendKind::Zcache => {
                setup_swapd(host, &mut cl, swapd_cmd, size, args.compressor.name())?
            }
        };
        let n = i + 1;
        let f = files(&work, n);
        let cx = RunCtx {
            host,
            args,
            workload: &wl,
            n,
        };
        let cpu0 = match &store {
            Store::Zcache { pid, .. } => {
                std::fs::read_to_string(host.proc_.join(format!("{pid}/stat")))
                    .ok()
                    .and_then(|s| parse::cpu_ticks(&s))
            }
            _ => None,
        };
        let mut r = run_workload(&cx, &mut cl, Some(report.limit), Some(&store), &f)?;
        r.backend = b.name().into();
        r.device = match &store {
            Store::Zram { id, .. } => format!("/dev/zram{id}"),
            Store::Zswap { dev, .. } | Store::Zcache { dev, .. } => dev.clone(),
        };
        if let Store::Zcache { pid, .. } = &store {
            let cpu1 = std::fs::read_to_string(host.proc_.join(format!("{pid}/stat")))
                .ok()
                .and_then(|s| parse::cpu_ticks(&s));
            if let (Some(a), Some(b)) = (cpu0, cpu1) {
                r.swapd_cpu_s = b.saturating_sub(a) as f64 / ticks_per_s();
            }
            // The cgroup goes first (the workload's memory is freed), then swapd stops.
            let s = cl.take_swapd().ok_or_else(|| failed("swapd child lost"))?;
            let cg = host.cgroup.join(format!(
                "zcache-swapbench-{pid_}-{n}",
                pid_ = std::process::id()
            ));
            if let Err(e) = Step::Cgroup(cg).undo(host) {
                return Err(failed(e));
            }
            let v = cleanup::stop_swapd(host, s, Duration::from_secs(180)).map_err(failed)?;
            r.swapd = Some(v);
        }
        let errors = cl.finish();
        if !errors.is_empty() {
            return Err(failed(format!(
                "cleanup after the {} run: {}",
                b.name(),
                errors.join("; ")
            )));
        }
        report.runs.push(r);
    }
    let errors = global.finish();
    if !errors.is_empty() {
        return Err(failed(format!("cleanup: {}", errors.join("; "))));
    }
    Ok(report)
}

/// `zcache swap-bench` as a process: prints the table (or JSON); exit code 2 for a
/// refusal, 1 for a failure or a workload whose check failed.
pub fn main(args: &SwapBenchArgs, swapd_cmd: &[OsString]) -> ExitCode {
    match run(args, swapd_cmd) {
        Ok(r) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r.json()).unwrap_or_default()
                );
            } else {
                print!("{}", r.render());
            }
            if r.runs.iter().all(|x| x.ok) {
                ExitCode::SUCCESS
            } else {
                eprintln!("zcache swap-bench: a workload failed its own check (see the table)");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("zcache swap-bench: {e}");
            ExitCode::from(if matches!(e, BenchError::Refused(_)) {
                2
            } else {
                1
            })
        }
    }
}

impl BenchError {
    /// Whether the bench was refused before anything was created.
    pub fn is_refusal(&self) -> bool {
        matches!(self, BenchError::Refused(_))
    }
}

/// For the `zcache` command: runs the bench with `zcache_exe swapd` as the daemon and
/// returns the table (or the JSON with `--json`); a workload that failed its own check
/// is an error (after the output is printed on stdout).
pub fn cli_text(args: &SwapBenchArgs, zcache_exe: PathBuf) -> Result<String, BenchError> {
    let r = run(args, &[zcache_exe.into_os_string(), "swapd".into()])?;
    let mut text = if args.json {
        serde_json::to_string_pretty(&r.json()).unwrap_or_default() + "\n"
    } else {
        r.render()
    };
    if let Some(bad) = r.runs.iter().find(|x| !x.ok) {
        print!("{text}");
        text.clear();
        return Err(failed(format!(
            "the {} run failed the workload's own check: {}",
            bad.backend, bad.detail
        )));
    }
    Ok(text)
}
