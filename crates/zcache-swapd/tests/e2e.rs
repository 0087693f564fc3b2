//! End-to-end: zcache swapd as the running kernel's swap device.
//!
//! Needs root, /dev/fuse, a free loop device, losetup/mkswap/swapon/swapoff, the cgroup
//! v1 memory controller at /sys/fs/cgroup/memory and zswap off; otherwise it prints one
//! `SKIP: <reason>` line and passes. What it does:
//!
//! 1. In-process: starts the daemon with `swapon` (losetup --direct-io=on over the FUSE
//!    file, mkswap, swapon) and a 128-frame zcache limit, runs a workload child (this
//!    binary, `--zcache-swapd-workload`) that fills 24 MiB with a checkable pattern in a
//!    fresh memory cgroup `/sys/fs/cgroup/memory/zcache-swapd-test-PID` limited to
//!    8 MiB, so most of it goes through swap; the child checks every page twice. Then
//!    stops the daemon (swapoff, losetup -d, unmount) and removes the cgroup. Prints the
//!    pswpout/pswpin deltas and the wall time.
//! 2. As a child process (`--zcache-swapd-daemon`, the `zcache swapd` arguments):
//!    SIGTERM ends it cleanly and it prints its statistics as JSON.
//!
//! After each, nothing of it may be left: no swap, loop device, mount, cgroup or
//! backing file. Everything is undone by drop guards, so a failure leaves nothing
//! either. It never touches zswap or zram.
//!
//! A harness-less test (`harness = false`): `main` is the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use zcache_swapd::{Daemon, Options, SwapdArgs};

const WORKLOAD_MIB: usize = 24;
const CGROUP_LIMIT: u64 = 8 << 20;
const PAGE: usize = 4096;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--zcache-swapd-workload") => return workload(),
        Some("--zcache-swapd-daemon") => {
            #[derive(Parser)]
            struct W {
                #[command(flatten)]
                a: SwapdArgs,
            }
            let w = W::parse_from(
                std::iter::once("zcache-swapd".to_string()).chain(args[2..].iter().cloned()),
            );
            return zcache_swapd::args::main(&w.a);
        }
        _ => {}
    }
    if let Err(reason) = prerequisites() {
        println!("SKIP: zcache swapd end-to-end: {reason}");
        return ExitCode::SUCCESS;
    }
    swap_through_swapd();
    daemon_process_ends_cleanly_on_sigterm();
    println!("e2e: ok");
    ExitCode::SUCCESS
}

fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (needs mount, losetup, swapon, cgroups)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Err("no /dev/fuse".into());
    }
    for p in ["losetup", "mkswap", "swapon", "swapoff"] {
        if !["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(p).is_file())
        {
            return Err(format!("{p} not found"));
        }
    }
    match Command::new("losetup").arg("-f").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("no free loop device (losetup -f failed)".into()),
    }
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        return Err("no cgroup v1 memory controller at /sys/fs/cgroup/memory".into());
    }
    if std::fs::read_to_string("/sys/module/zswap/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
    {
        return Err(
            "zswap is enabled (it would take the pages before swapd sees them; \
                    this test does not change it)"
                .into(),
        );
    }
    Ok(())
}

/// Page `i` of the workload: text-like and compressible, except every 7th page, which
/// is pseudo-random (zcache refuses it: the backing-file path).
fn pattern(i: usize, page: &mut [u8]) {
    if i % 7 == 3 {
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for b in page.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
    } else {
        let rec = format!("zcache-swapd e2e page {i:08} of the workload, checked twice.\n");
        for (b, r) in page.iter_mut().zip(rec.as_bytes().iter().cycle()) {
            *b = *r;
        }
    }
}

/// The workload child: waits for a byte on stdin (the parent has moved it into the
/// cgroup by then), fills WORKLOAD_MIB MiB, and checks every page twice (in order, then
/// in a strided order).
fn workload() -> ExitCode {
    let mut go = [0u8; 1];
    if std::io::stdin().read_exact(&mut go).is_err() {
        eprintln!("workload: no go byte");
        return ExitCode::from(3);
    }
    let pages = WORKLOAD_MIB << 20 >> 12;
    let mut mem = vec![0u8; pages * PAGE];
    for (i, p) in mem.chunks_mut(PAGE).enumerate() {
        pattern(i, p);
    }
    let mut want = vec![0u8; PAGE];
    let mut bad = 0;
    for pass in 0..2 {
        for k in 0..pages {
            let i = if pass == 0 { k } else { (k * 7919) % pages };
            pattern(i, &mut want);
            if mem[i * PAGE..][..PAGE] != want[..] {
                bad += 1;
            }
        }
    }
    if bad == 0 {
        println!("workload: {pages} pages checked twice: ok");
        ExitCode::SUCCESS
    } else {
        println!("workload: {bad} page checks FAILED");
        ExitCode::from(1)
    }
}

fn vmstat(name: &str) -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// The workload's cgroup, removed on drop (after killing anything left in it).
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    fn create(limit: u64) -> Cgroup {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/zcache-swapd-test-{}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).expect("create the cgroup");
        let cg = Cgroup { dir };
        std::fs::write(cg.dir.join("memory.limit_in_bytes"), limit.to_string())
            .expect("set memory.limit_in_bytes");
        cg
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("join the cgroup");
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill takes plain integers; these are processes this test put in
                // its own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("e2e: could not remove {}", self.dir.display());
    }
}

/// A child killed and reaped on drop unless it was waited for.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_timeout(g: &mut ChildGuard, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        let c = g.0.as_mut().expect("child");
        if let Some(st) = c.try_wait().expect("wait") {
            g.0 = None;
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "child did not finish in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nothing of a run is left: swap, loop device, mount, backing file, cgroup.
fn assert_nothing_left(mountpoint: &Path, backing: &str, loop_dev: Option<&str>) {
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if let Some(dev) = loop_dev {
        assert!(
            !swaps
                .lines()
                .any(|l| l.split_whitespace().next() == Some(dev)),
            "{dev} still swap: {swaps}"
        );
    }
    let losetup = Command::new("losetup")
        .arg("-a")
        .output()
        .expect("losetup -a");
    let losetup = String::from_utf8_lossy(&losetup.stdout);
    let mp = mountpoint.display().to_string();
    assert!(
        !losetup.contains(&mp),
        "loop device left over {mp}: {losetup}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    assert!(!mounts.contains(&mp), "mount left at {mp}");
    assert!(!mountpoint.exists(), "mount point {mp} left");
    assert!(!Path::new(backing).exists(), "backing file {backing} left");
    let cg = format!(
        "/sys/fs/cgroup/memory/zcache-swapd-test-{}",
        std::process::id()
    );
    assert!(!Path::new(&cg).exists(), "cgroup {cg} left");
}

fn swap_through_swapd() {
    let opts = Options {
        swapon: true,
        max_frames: Some(128),
        // The test process stays unlocked (the daemon's own runs lock).
        mlock: false,
        ..Options::new(64 << 20)
    };
    let daemon = Daemon::start(&opts).expect("start swapd");
    let mountpoint = daemon.mountpoint().to_path_buf();
    let backing = daemon.device().backing_path().display().to_string();
    let loop_dev = daemon.loop_device().map(str::to_string);
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let dev = loop_dev.clone().expect("a loop device");
    assert!(swaps.contains(&dev), "{dev} not in /proc/swaps: {swaps}");

    let (out0, in0) = (vmstat("pswpout"), vmstat("pswpin"));
    let t = Instant::now();
    let status = {
        let cg = Cgroup::create(CGROUP_LIMIT);
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .arg("--zcache-swapd-workload")
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn the workload");
        let mut g = ChildGuard(Some(child));
        let c = g.0.as_mut().expect("child");
        cg.add(c.id());
        c.stdin.take().expect("stdin").write_all(b"g").expect("go");
        wait_timeout(&mut g, Duration::from_secs(300))
        // `cg` drops here: the cgroup is removed.
    };
    let wall = t.elapsed();
    let (out1, in1) = (vmstat("pswpout"), vmstat("pswpin"));
    let live = daemon.stats_json();
    let stats = daemon.stop().expect("stop swapd");
    assert!(status.success(), "workload failed: {status}");
    let dv = &live["device"];
    let z = &live["zcache"];
    println!(
        "e2e: {WORKLOAD_MIB} MiB workload in an {} MiB memory cgroup through zcache swapd \
         (64 MiB device, zcache limit 128 frames, lz4 + zsmalloc): wall {:.2} s; \
         pswpout +{}, pswpin +{}; device writes {} blocks kept by zcache + {} refused \
         (to the backing file), {} written back, reads {} from zcache + {} from the backing \
         file + {} zeros; discards {}; zcache peak {} frames",
        CGROUP_LIMIT >> 20,
        wall.as_secs_f64(),
        out1 - out0,
        in1 - in0,
        dv["stores_kept"],
        dv["stores_refused"],
        dv["written_back"],
        dv["reads_zcache"],
        dv["reads_backing"],
        dv["reads_zero"],
        dv["discarded_blocks"],
        z["pool_frames_peak"],
    );
    assert!(out1 - out0 > 0, "nothing was swapped out");
    assert!(
        dv["stores_kept"].as_u64().unwrap_or(0) > 0,
        "zcache kept no page"
    );
    assert_eq!(stats["daemon"]["clean_exit"], true);
    assert_nothing_left(&mountpoint, &backing, loop_dev.as_deref());
}

fn daemon_process_ends_cleanly_on_sigterm() {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--zcache-swapd-daemon",
            "--size",
            "16M",
            "--max-frames",
            "64",
            "--swapon",
            "--swap-priority",
            "-2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the daemon");
    let pid = child.id();
    let mut g = ChildGuard(Some(child));
    let c = g.0.as_mut().expect("child");
    let stderr = c.stderr.take().expect("stderr");
    let mut stdout = c.stdout.take().expect("stdout");
    // Wait for its "serving" line.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[daemon] {line}");
            if line.contains("stops it") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the daemon did not come up");
    let mountpoint = std::env::temp_dir().join(format!("zcache-swapd-{pid}"));
    let backing = format!("/var/tmp/zcache-swapd-{pid}.backing");
    let stats_text =
        std::fs::read_to_string(mountpoint.join("stats")).expect("read the stats file");
    assert!(stats_text.contains("stores_kept "), "{stats_text}");
    assert!(stats_text.contains("stored_pages "), "{stats_text}");
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let dev = swaps
        .lines()
        .filter(|l| l.contains("/dev/loop"))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .find(|d| {
            let back = std::fs::read_to_string(format!(
                "/sys/block/{}/loop/backing_file",
                d.trim_start_matches("/dev/")
            ))
            .unwrap_or_default();
            back.contains(&mountpoint.display().to_string())
        })
        .expect("the daemon's loop device is swap");
    // SAFETY: kill takes plain integers; `pid` is the daemon child this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = wait_timeout(&mut g, Duration::from_secs(60));
    let mut out = String::new();
    stdout.read_to_string(&mut out).expect("stdout");
    assert!(status.success(), "daemon exit: {status}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON statistics on stdout");
    assert_eq!(v["daemon"]["clean_exit"], true, "{out}");
    assert!(v["zcache"]["stored_pages"].is_i64(), "{out}");
    assert!(
        v["device"]["write_requests"].as_u64().unwrap_or(0) > 0,
        "{out}"
    );
    assert_nothing_left(&mountpoint, &backing, Some(&dev));
    println!("e2e: daemon process: SIGTERM -> swapoff, losetup -d, unmount, JSON statistics: ok");
}
