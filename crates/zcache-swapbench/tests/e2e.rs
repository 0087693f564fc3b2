//! End-to-end: `zcache swap-bench` with the smallest workload (python, 4 MiB of real
//! files) through zram, zswap and zcache swapd, then a check that nothing of it is
//! left: no swap area, loop device, mount, zram device, cgroup, file or mount point of
//! its own, and zswap's parameters exactly as before.
//!
//! Needs root and every facility (`zcache_swapbench::refusal`: cgroup v1 memory, zram
//! hot_add, zswap, /dev/fuse, a free loop device, python3) and zswap off; otherwise it
//! prints `SKIP: <reason>` and passes. swapd runs as a child process: this binary with
//! `--zcache-swapd-daemon` and the `zcache swapd` arguments.
//!
//! A harness-less test (`harness = false`): `main` is the test.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};

use clap::Parser;
use zcache_swapbench::cleanup::Host;
use zcache_swapbench::{BackendKind, Compressor, SwapBenchArgs, workload::WorkloadKind};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--zcache-swapd-daemon") {
        #[derive(Parser)]
        struct W {
            #[command(flatten)]
            a: zcache_swapd::SwapdArgs,
        }
        let w = W::parse_from(
            std::iter::once("zcache-swapd".to_string()).chain(args[2..].iter().cloned()),
        );
        return zcache_swapd::args::main(&w.a);
    }
    let bench = SwapBenchArgs {
        workload: WorkloadKind::Python,
        size_mib: 4,
        limit_fraction: 0.5,
        compressor: Compressor::Lz4,
        backends: vec![BackendKind::Zram, BackendKind::Zswap, BackendKind::Zcache],
        json: false,
        timeout: 300,
        sample_ms: 100,
    };
    let host = Host::real();
    if let Some(reason) = zcache_swapbench::refusal(&host, &bench) {
        println!("SKIP: zcache swap-bench end-to-end: {reason}");
        return ExitCode::SUCCESS;
    }
    let before = State::read();
    let exe: OsString = std::env::current_exe().expect("test binary").into();
    let result = zcache_swapbench::run(&bench, &[exe, "--zcache-swapd-daemon".into()]);
    let after = State::read();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            after.assert_same_as(&before, &[]);
            panic!("swap-bench failed: {e}");
        }
    };
    print!("{}", report.render());
    let devices: Vec<String> = report.runs.iter().map(|r| r.device.clone()).collect();
    after.assert_same_as(&before, &devices);
    assert_eq!(report.runs.len(), 3);
    for r in &report.runs {
        assert!(
            r.ok,
            "{}: the workload's check failed: {}",
            r.backend, r.detail
        );
        assert!(!r.device.is_empty(), "{}: no device", r.backend);
    }
    assert!(
        report
            .runs
            .iter()
            .any(|r| r.peak.as_ref().is_some_and(|p| p.held_pages > 0)),
        "no store held any page: nothing was swapped"
    );
    assert!(report.runs[2].swapd.is_some(), "no swapd statistics");
    println!("e2e: swap-bench through zram, zswap and zcache swapd, nothing left: ok");
    ExitCode::SUCCESS
}

/// What the bench must leave as it found.
#[derive(Debug)]
struct State {
    swaps: Vec<String>,
    loops: String,
    mounts: Vec<String>,
    zram: Vec<String>,
    zswap: BTreeMap<String, String>,
    ours: Vec<String>,
}

impl State {
    fn read() -> State {
        let swaps = std::fs::read_to_string("/proc/swaps")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        let loops = Command::new("losetup")
            .arg("-a")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mounts = std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        let mut zram: Vec<String> = std::fs::read_dir("/sys/block")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("zram"))
            .collect();
        zram.sort();
        let zswap = std::fs::read_dir("/sys/module/zswap/parameters")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        // Everything named after this process: cgroups, files, mount points.
        let tag = format!("zcache-swapbench-{}", std::process::id());
        let ours = ["/sys/fs/cgroup/memory", "/var/tmp", "/tmp"]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path().display().to_string())
            .filter(|p| p.contains(&tag))
            .collect();
        State {
            swaps,
            loops,
            mounts,
            zram,
            zswap,
            ours,
        }
    }

    /// Nothing of the bench is left. `devices` are the swap devices it used: each must
    /// be gone from /proc/swaps (and its zram device from /sys/block). Other swap areas,
    /// loop devices and zram devices may come and go meanwhile (a CI run on the same
    /// machine): a difference that is not the bench's is printed, not failed.
    fn assert_same_as(&self, before: &State, devices: &[String]) {
        let tag = format!("zcache-swapbench-{}", std::process::id());
        assert_eq!(self.zswap, before.zswap, "zswap's parameters changed");
        assert!(self.ours.is_empty(), "left behind: {:?}", self.ours);
        for d in devices {
            assert!(
                !self.swaps.contains(d),
                "{d} is still swap: {:?}",
                self.swaps
            );
            if let Some(name) = d.strip_prefix("/dev/")
                && name.starts_with("zram")
            {
                assert!(
                    !Path::new("/sys/block").join(name).exists(),
                    "{name} still exists"
                );
            }
        }
        assert!(
            !self.loops.contains(&tag),
            "a loop device over the bench's files: {}",
            self.loops
        );
        let left: Vec<&String> = self.mounts.iter().filter(|m| m.contains(&tag)).collect();
        assert!(left.is_empty(), "mounts left: {left:?}");
        for (what, a, b) in [
            (
                "swap areas",
                format!("{:?}", before.swaps),
                format!("{:?}", self.swaps),
            ),
            ("loop devices", before.loops.clone(), self.loops.clone()),
            (
                "zram devices",
                format!("{:?}", before.zram),
                format!("{:?}", self.zram),
            ),
            ("mounts", before.mounts.join("\n"), self.mounts.join("\n")),
        ] {
            if a != b {
                println!(
                    "e2e: note: {what} differ from before (not the bench's; a concurrent run?):\n{a}\n---\n{b}"
                );
            }
        }
    }
}
