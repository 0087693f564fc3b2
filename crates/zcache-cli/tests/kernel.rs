//! `zcache bench --kernel`: the same pages through this kernel's zram and through zcache.
//!
//! Behind a runtime check: it needs root and zram's hot_add. Without them the test
//! checks the refusal (one line, exit code 1) and prints a SKIP line for the real run.
//! With them it runs on 512 pages of the embedded sample and checks that the zram
//! device it made is gone afterwards, whatever the run printed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// The tests compare the zram devices before and after a run: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn zram_devices() -> BTreeSet<String> {
    std::fs::read_dir("/sys/block")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("zram"))
                .collect()
        })
        .unwrap_or_default()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn kernel_side_by_side_or_a_clear_refusal() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ready = is_root() && Path::new("/sys/class/zram-control/hot_add").exists();
    let before = zram_devices();
    let out = Command::new(env!("CARGO_BIN_EXE_zcache"))
        .args(["bench", "--kernel", "--max-pages", "512"])
        .output()
        .expect("the zcache binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(zram_devices(), before, "a zram device was left behind");
    if !ready {
        println!("SKIP: bench --kernel needs root and /sys/class/zram-control/hot_add");
        assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("--kernel needs"), "stderr: {stderr}");
        return;
    }
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("zram mm_stat:"), "{stdout}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(name) && w.next().is_some_and(|k| k.parse::<u64>().is_ok())
            })
            .unwrap_or_else(|| panic!("no {name} row in {stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (zram, zcache) = (row("zram"), row("zcache"));
    // store, kept, data, frames, metadata, refused, total, B/page.
    assert_eq!(zram.len(), 8, "{zram:?}");
    assert_eq!(zram[1], "512", "zram keeps every page: {zram:?}");
    let total = |r: &[String]| r[6].parse::<u64>().expect("total");
    assert!(total(&zram) > 0 && total(&zcache) > 0);
    // A young pool can hold more than the raw pages (each size class's first zspage is
    // mostly empty), so only the compressed data is bounded here.
    let data = |r: &[String]| r[2].parse::<u64>().expect("data");
    assert!(
        data(&zram) < 512 * 4096,
        "zram compressed nothing: {zram:?}"
    );
    assert!(
        data(&zcache) < 512 * 4096,
        "zcache compressed nothing: {zcache:?}"
    );
    assert!(stdout.contains("zcache / zram:"), "{stdout}");
}

#[test]
fn kernel_refuses_the_replay_only_options_and_compressors_zram_lacks() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for args in [
        &["bench", "--kernel", "--scale", "100"][..],
        &["bench", "--kernel", "--min-time", "0"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_zcache"))
            .args(args)
            .output()
            .expect("the zcache binary runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    if is_root() && Path::new("/sys/class/zram-control/hot_add").exists() {
        let before = zram_devices();
        let out = Command::new(env!("CARGO_BIN_EXE_zcache"))
            .args(["bench", "--kernel", "--compressor", "zstd"])
            .output()
            .expect("the zcache binary runs");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("lz4 or lzo"));
        assert_eq!(zram_devices(), before);
    } else {
        println!("SKIP: the compressor refusal needs root and zram (checked after the root check)");
    }
}
