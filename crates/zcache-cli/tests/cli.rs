//! Runs the `zcache` binary as a user would: the default bench on the embedded sample,
//! JSON output, the SVG plot, every kind of bad input, `analyze` on a file and on this
//! test's own process, `capture` and replay, the scaled run (`--scale`).
//!
//! The binary is the debug build `cargo test` makes, so runs use `--min-time 0` (one
//! timed pass) and the fast compressors (lz4, zstd) except where a test is about names.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// The keys every JSON object must have.
const KEYS: [&str; 19] = [
    "workload",
    "allocator",
    "compressor",
    "pages",
    "same_filled_pages",
    "compressed_bytes",
    "ideal_frames",
    "pool_frames",
    "metadata_bytes",
    "store_pages_per_sec",
    "load_pages_per_sec",
    "bare_compress_pages_per_sec",
    "bare_decompress_pages_per_sec",
    "verified_pages",
    "mismatches",
    "evicted_pages",
    "baseline_bytes",
    "baseline_store_pages_per_sec",
    "baseline_load_pages_per_sec",
];

fn zcache(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zcache"))
        .args(args)
        .output()
        .expect("the zcache binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success with nothing on stderr (no progress bar when stderr is a pipe).
fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstderr: {}",
        o.status.code(),
        stderr(o)
    );
    assert_eq!(
        stderr(o),
        "",
        "stderr should be quiet when it is not a terminal"
    );
}

/// Asserts a failure with `code` and exactly one stderr line containing `needle`.
fn fails(o: &Output, code: i32, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one error line, got: {err:?}");
    assert!(err.starts_with("zcache: "), "{err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{err:?} lacks {needle:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "nothing on stdout on error");
    err
}

fn json_rows(o: &Output) -> Vec<Value> {
    ok(o);
    let v: Value = serde_json::from_str(&stdout(o)).expect("stdout is JSON");
    let rows = v.as_array().expect("a top-level array").clone();
    for r in &rows {
        for k in KEYS {
            assert!(r.get(k).is_some(), "key {k} missing from {r}");
        }
    }
    rows
}

fn u(r: &Value, k: &str) -> u64 {
    r[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is not an integer in {r}"))
}

fn f(r: &Value, k: &str) -> f64 {
    r[k].as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number in {r}"))
}

/// Every load right, every page accounted for, nothing leaked.
fn check_row(r: &Value) {
    assert_eq!(u(r, "mismatches"), 0, "{r}");
    assert_eq!(u(r, "frames_after_invalidate"), 0, "{r}");
    assert!(f(r, "store_pages_per_sec") > 0.0 && f(r, "load_pages_per_sec") > 0.0);
    assert!(f(r, "bare_compress_pages_per_sec") > 0.0);
    assert!(u(r, "baseline_bytes") > 0);
    let pages = u(r, "pages");
    match r["workload"].as_str() {
        Some("frontswap") => {
            // Every accepted store loads back byte for byte; the rest were refused
            // (poor compression), as a swap device would then get them.
            assert_eq!(u(r, "verified_pages"), u(r, "stored_pages"), "{r}");
            assert_eq!(
                u(r, "verified_pages") + u(r, "rejected_pages"),
                pages,
                "{r}"
            );
            assert!(u(r, "pool_frames") >= u(r, "ideal_frames"));
            assert!(r["linux_zsmalloc_frames"].as_u64().is_some());
            assert!(r["linux_zbud_frames"].as_u64().is_some());
        }
        Some("cleancache") => {
            // Under a frame limit of half the ideal: right bytes or a miss.
            let limit = u(r, "frame_limit");
            assert!(u(r, "pool_frames") <= limit, "{r}");
            assert_eq!(u(r, "verified_pages") + u(r, "missed_loads"), pages, "{r}");
            if u(r, "frame_limit") >= 4 {
                assert!(u(r, "verified_pages") > 0, "{r}");
            }
        }
        w => panic!("unknown workload {w:?}"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zcache-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn default_run_on_the_embedded_sample_verifies_every_page() {
    // What `zcache` prints with no argument, on the fast compressors, with a plot.
    let d = temp_dir("plot");
    let svg = d.join("out.svg");
    let o = zcache(&[
        "--min-time",
        "0",
        "--compressor",
        "lz4,zstd",
        "--plot",
        svg.to_str().expect("utf-8"),
    ]);
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("Plot written to"));
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(200)]);
    for needle in [
        "Compressed size",
        "Frames used",
        "Linux zsmalloc",
        "zcache zbud",
        "lz4",
        "zstd",
        "<rect",
        "<polyline",
    ] {
        assert!(text.contains(needle), "{needle} missing from the SVG");
    }
    std::fs::remove_dir_all(&d).expect("cleanup");
    for needle in [
        "embedded sample",
        "1024 pages",
        "Density",
        "Speed",
        "Bare compression",
        "Baseline: Mutex<HashMap<u64, Vec<u8>>>",
        "Saving:",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    // 2 workloads x 2 allocators x 2 compressors, each with 0 mismatches.
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("frontswap ") || l.starts_with("cleancache "))
        .collect();
    assert_eq!(rows.len(), 16, "density and speed rows:\n{out}");
    assert!(!out.contains("WARNING"), "{out}");

    let rows = json_rows(&zcache(&[
        "--min-time",
        "0",
        "--compressor",
        "lz4,zstd",
        "--json",
    ]));
    assert_eq!(rows.len(), 8);
    for r in &rows {
        assert_eq!(u(r, "pages"), 1024);
        check_row(r);
        if r["workload"] == "frontswap" {
            // Only the few pages that compress poorly (over 7/8 page) are refused.
            assert!(u(r, "verified_pages") >= 1000, "{r}");
            // Denser than Linux's zsmalloc layout for the same sizes.
            if r["allocator"] == "zsmalloc" {
                assert!(u(r, "pool_frames") < u(r, "linux_zsmalloc_frames"), "{r}");
            }
        }
    }
    let names: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().expect("string").to_string();
            (s("workload"), s("allocator"), s("compressor"))
        })
        .collect();
    for w in ["frontswap", "cleancache"] {
        for a in ["zbud", "zsmalloc"] {
            for c in ["lz4", "zstd"] {
                assert!(
                    names.contains(&(w.into(), a.into(), c.into())),
                    "{w} {a} {c} missing"
                );
            }
        }
    }
}

#[test]
fn every_compressor_name_runs() {
    let rows = json_rows(&zcache(&[
        "bench",
        "--max-pages",
        "200",
        "--min-time",
        "0",
        "--json",
        "--allocator",
        "zsmalloc",
        "--compressor",
        "lz4,deflate,lzo,zstd",
    ]));
    assert_eq!(rows.len(), 8);
    for r in &rows {
        assert_eq!(u(r, "pages"), 200);
        check_row(r);
    }
}

#[test]
fn bad_corpora_give_one_line_and_exit_2() {
    let d = temp_dir("bad");
    let idx = |n: usize| vec![0u8; 16 * n];
    // (name, pages.bin, pages.idx if written, what the error must say)
    type Case = (&'static str, Vec<u8>, Option<Vec<u8>>, &'static str);
    let cases: [Case; 5] = [
        (
            "unaligned",
            vec![1u8; 100],
            Some(idx(1)),
            "not a multiple of 4096",
        ),
        (
            "badidx",
            vec![1u8; 4096],
            Some(vec![0u8; 15]),
            "not a multiple of 16",
        ),
        (
            "count",
            vec![1u8; 8192],
            Some(idx(1)),
            "holds 2 pages but pages.idx holds 1",
        ),
        ("empty", Vec::new(), Some(Vec::new()), "no page"),
        ("noidx", vec![1u8; 4096], None, "pages.idx"),
    ];
    for (name, bin, index, needle) in cases {
        let c = d.join(name);
        std::fs::create_dir_all(&c).expect("mkdir");
        std::fs::write(c.join("pages.bin"), bin).expect("write");
        if let Some(index) = index {
            std::fs::write(c.join("pages.idx"), index).expect("write");
        }
        let o = zcache(&[
            "bench",
            "--corpus",
            c.to_str().expect("utf-8"),
            "--min-time",
            "0",
        ]);
        fails(&o, 2, needle);
    }
    fails(
        &zcache(&["--corpus", d.join("missing").to_str().expect("utf-8")]),
        2,
        "not a directory",
    );
    std::fs::remove_dir_all(&d).expect("cleanup");
}

#[test]
fn bad_names_and_arguments_give_one_line_and_exit_2() {
    fails(&zcache(&["--allocator", "slab"]), 2, "slab");
    fails(&zcache(&["bench", "--compressor", "lz77"]), 2, "lz77");
    fails(&zcache(&["--min-time", "soon"]), 2, "soon");
    fails(&zcache(&["frobnicate"]), 2, "frobnicate");
    fails(&zcache(&["analyze"]), 2, "--pid");
    fails(&zcache(&["capture", "--pid", "1"]), 2, "--out");
    fails(
        &zcache(&["--plot", "/nonexistent-dir/x.svg"]),
        2,
        "does not exist",
    );
    fails(
        &zcache(&["analyze", "/nonexistent/file"]),
        2,
        "cannot read /nonexistent/file",
    );
    // Help is not an error.
    let o = zcache(&["--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("analyze"));
}

/// The page size this binary was built for.
const PAGE_SIZE: u64 = if cfg!(feature = "page-64k") {
    65536
} else if cfg!(feature = "page-16k") {
    16384
} else {
    4096
};

#[test]
fn page_size_is_the_builds_and_other_sizes_name_the_build_that_has_them() {
    // The build's own size: a replay of pages of that size, built from the corpus (the
    // embedded sample has 33 at 64 KiB).
    let own = PAGE_SIZE.to_string();
    let rows = json_rows(&zcache(&[
        "--page-size",
        &own,
        "--max-pages",
        "32",
        "--min-time",
        "0",
        "--compressor",
        "lz4",
        "--allocator",
        "zsmalloc",
        "--workload",
        "frontswap",
        "--json",
    ]));
    assert_eq!(rows.len(), 1);
    check_row(&rows[0]);
    assert_eq!(u(&rows[0], "pages"), 32);
    // A size this build is not made for: refused, naming the feature that builds it.
    for (size, feature) in [("4k", ""), ("16384", "page-16k"), ("64k", "page-64k")] {
        let n = match size {
            "4k" => 4096,
            "16384" => 16384,
            _ => 65536,
        };
        if n == PAGE_SIZE {
            continue;
        }
        let err = fails(
            &zcache(&["--page-size", size]),
            2,
            "this zcache was built for",
        );
        assert!(err.contains(feature), "{err}");
    }
    fails(&zcache(&["--page-size", "8192"]), 2, "4096, 16384 or 65536");
}

/// A PID that cannot exist: at or above the kernel's pid_max.
fn absent_pid() -> String {
    let max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(4_194_304);
    max.to_string()
}

#[test]
fn a_pid_that_does_not_exist_gives_one_line_and_exit_2() {
    let pid = absent_pid();
    fails(
        &zcache(&["analyze", "--pid", &pid]),
        2,
        &format!("no process with PID {pid}"),
    );
    let d = temp_dir("nopid");
    fails(
        &zcache(&[
            "capture",
            "--pid",
            &pid,
            "--out",
            d.to_str().expect("utf-8"),
        ]),
        2,
        "no process",
    );
    std::fs::remove_dir_all(&d).expect("cleanup");
}

#[test]
fn analyze_reads_a_file_as_page_cache_pages() {
    let d = temp_dir("file");
    let file = d.join("data.txt");
    // 40 pages of text and a partial page.
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 40 * 4096 + 1000 {
        text.push_str(&format!(
            "line {i}: the quick brown fox {} jumps\n",
            i * i % 977
        ));
        i += 1;
    }
    std::fs::write(&file, &text).expect("write");
    let pages = text.len().div_ceil(4096) as u64;
    let rows = json_rows(&zcache(&[
        "analyze",
        file.to_str().expect("utf-8"),
        "--json",
        "--min-time",
        "0",
        "--compressor",
        "lz4",
    ]));
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(u(r, "pages"), pages);
        check_row(r);
    }
    // The table names the input.
    let o = zcache(&[
        "analyze",
        file.to_str().expect("utf-8"),
        "--min-time",
        "0",
        "--compressor",
        "lz4",
    ]);
    ok(&o);
    assert!(
        stdout(&o).contains(&format!("{pages} pages of 1 file(s)")),
        "{}",
        stdout(&o)
    );
    std::fs::remove_dir_all(&d).expect("cleanup");
}

/// Runs `f`, or reports why /proc access is denied and skips.
fn with_proc_access(o: &Output, f: impl FnOnce()) {
    if o.status.code() == Some(1) && stderr(o).contains("permission denied") {
        eprintln!("skipped: /proc access denied: {}", stderr(o).trim());
        return;
    }
    f();
}

#[test]
fn analyze_captures_this_test_process() {
    // Some memory of our own that is certainly present.
    let mine: Vec<u8> = (0..4 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let pid = std::process::id().to_string();
    let o = zcache(&[
        "analyze",
        "--pid",
        &pid,
        "--max-pages",
        "600",
        "--json",
        "--min-time",
        "0",
        "--compressor",
        "lz4",
        "--allocator",
        "zsmalloc",
    ]);
    with_proc_access(&o, || {
        let rows = json_rows(&o);
        assert_eq!(rows.len(), 2);
        for r in &rows {
            // 600 chosen; a page whose mapping vanished meanwhile is skipped.
            assert!((500..=600).contains(&u(r, "pages")), "{r}");
            check_row(r);
        }
    });
    std::hint::black_box(&mine);
}

#[test]
fn capture_writes_a_corpus_that_bench_replays() {
    let d = temp_dir("capture");
    let src = d.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("a.bin"), vec![7u8; 3 * 4096]).expect("write");
    let doc: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("{i} ").into_bytes())
        .collect();
    std::fs::write(src.join("b.txt"), &doc).expect("write");
    let out = d.join("corpus");
    let o = zcache(&[
        "capture",
        src.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    ok(&o);
    assert!(
        stdout(&o).contains("zcache bench --corpus"),
        "{}",
        stdout(&o)
    );
    let total = 3 + doc.len().div_ceil(4096) as u64;
    assert_eq!(
        std::fs::metadata(out.join("pages.bin"))
            .expect("pages.bin")
            .len(),
        total * 4096
    );
    assert_eq!(
        std::fs::metadata(out.join("pages.idx"))
            .expect("pages.idx")
            .len(),
        total * 16
    );
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest"),
    )
    .expect("manifest is JSON");
    assert_eq!(m["pages"], total);
    let rows = json_rows(&zcache(&[
        "bench",
        "--corpus",
        out.to_str().expect("utf-8"),
        "--json",
        "--min-time",
        "0",
        "--compressor",
        "zstd",
        "--workload",
        "frontswap",
    ]));
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(u(r, "pages"), total);
        // The three 7-filled pages are same-filled.
        assert_eq!(u(r, "same_filled_pages"), 3);
        check_row(r);
    }

    // And a process capture, when /proc allows it.
    let pid = std::process::id().to_string();
    let pout = d.join("proc");
    let o = zcache(&[
        "capture",
        "--pid",
        &pid,
        "--max-pages",
        "100",
        "--out",
        pout.to_str().expect("utf-8"),
    ]);
    with_proc_access(&o, || {
        ok(&o);
        // This process is multi-threaded (the test harness): a page seen present in
        // pagemap can be unmapped (a finished test's stack) before it is read, and
        // capture then skips it and says so. So: at most 100 pages, nearly all read.
        let idx = std::fs::metadata(pout.join("pages.idx"))
            .expect("idx")
            .len();
        assert_eq!(idx % 16, 0);
        let pages = idx / 16;
        assert!((90..=100).contains(&pages), "{pages} pages captured");
        let m: Value = serde_json::from_str(
            &std::fs::read_to_string(pout.join("manifest.json")).expect("manifest"),
        )
        .expect("manifest is JSON");
        assert_eq!(m["pages"], pages);
        if pages < 100 {
            assert!(
                stdout(&o).contains("unreadable pages skipped"),
                "{}",
                stdout(&o)
            );
        }
    });
    std::fs::remove_dir_all(&d).expect("cleanup");
}

/// The scaled run's JSON keys.
const SCALE_KEYS: [&str; 23] = [
    "workload",
    "allocator",
    "compressor",
    "pages",
    "distinct_pages",
    "store_us",
    "compress_us",
    "store_vs_bare",
    "store_beyond_us",
    "load_us",
    "decompress_us",
    "load_vs_bare",
    "load_beyond_us",
    "invalidate_us",
    "metadata_bytes_per_page",
    "stored_pages",
    "verified_pages",
    "missed_loads",
    "mismatches",
    "pages_after_invalidate",
    "frames_after_invalidate",
    "round",
    "median_of",
];

#[test]
fn scaled_run_reuses_the_pages_and_verifies_every_load() {
    // 2,000 pages from the 1024-page sample, then 2,500 from 300 of them: the table,
    // one line per run, in size order.
    let o = zcache(&[
        "bench",
        "--scale",
        "2000",
        "--compressor",
        "lz4,zstd",
        "--allocator",
        "zsmalloc",
    ]);
    ok(&o);
    let out = stdout(&o);
    for needle in [
        "embedded sample",
        "scaled run: N pages stored per run, page k = input page k mod 1024",
        "store us",
        "x bare",
        "beyond",
        "inval us",
        "meta B",
        "verified",
        "mismatch",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    let (table, parts) = out
        .split_once("metadata by part")
        .expect("the metadata-by-part table follows the main one");
    fn rows(t: &str) -> Vec<Vec<&str>> {
        t.lines()
            .filter(|l| l.starts_with("frontswap ") || l.starts_with("cleancache "))
            .map(|l| l.split_whitespace().collect())
            .collect()
    }
    let (lines, part_lines) = (rows(table), rows(parts));
    let names = |ls: &[Vec<&str>]| -> Vec<(String, String, String, String)> {
        ls.iter()
            .map(|l| (l[0].into(), l[1].into(), l[2].into(), l[3].into()))
            .collect()
    };
    let want: Vec<(String, String, String, String)> = [
        ("frontswap", "zsmalloc", "lz4", "2000"),
        ("frontswap", "zsmalloc", "zstd", "2000"),
        ("cleancache", "zsmalloc", "lz4", "2000"),
        ("cleancache", "zsmalloc", "zstd", "2000"),
    ]
    .iter()
    .map(|&(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
    .collect();
    assert_eq!(names(&lines), want, "{out}");
    assert_eq!(names(&part_lines), want, "{out}");
    for l in &part_lines {
        // meta B, then its parts (2 decimals each): they add up to it.
        let v: Vec<f64> = l[4..].iter().map(|x| x.parse().expect("bytes")).collect();
        let sum: f64 = v[1..].iter().sum();
        assert!((sum - v[0]).abs() < 0.06, "parts do not add up in {l:?}");
        // The main table's meta B is the same figure, to its one decimal (compared as
        // numbers: 69.65 from the parts table is the main table's 69.6 when the exact
        // figure was 69.649).
        let main = lines.iter().find(|m| m[..4] == l[..4]).expect("row");
        let meta: f64 = main[main.len() - 5].parse().expect("meta B");
        assert!((meta - v[0]).abs() <= 0.0501, "{l:?} / {main:?}");
    }
    for l in &lines {
        // ... verified, missed, mismatch, round: every page loaded back or rightly
        // missed, in the one round run.
        assert_eq!(l[l.len() - 1], "1", "{l:?}");
        let n = |i: usize| l[l.len() - 1 - i].parse::<u64>().expect("a count");
        assert_eq!(n(1), 0, "mismatches in {l:?}");
        assert_eq!(n(3) + n(2), 2000, "{l:?}");
        assert!(n(3) >= 1900, "{l:?}");
    }
    assert!(!out.contains("WARNING"), "{out}");

    // JSON, on a subset of the pages, with each workload's default allocator.
    let o = zcache(&["--scale", "2500", "--max-pages", "300", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("stdout is JSON");
    let rows = v.as_array().expect("a top-level array");
    assert_eq!(rows.len(), 2);
    for (r, (w, a)) in rows
        .iter()
        .zip([("frontswap", "zsmalloc"), ("cleancache", "zbud")])
    {
        for k in SCALE_KEYS {
            assert!(r.get(k).is_some(), "key {k} missing from {r}");
        }
        assert_eq!(
            (r["workload"].as_str(), r["allocator"].as_str()),
            (Some(w), Some(a))
        );
        assert_eq!(r["compressor"], "lz4");
        assert_eq!((u(r, "pages"), u(r, "distinct_pages")), (2500, 300), "{r}");
        // Byte for byte: every page zcache took loads back exactly, the rest miss.
        assert_eq!(u(r, "mismatches"), 0, "{r}");
        assert_eq!(u(r, "verified_pages"), u(r, "stored_pages"), "{r}");
        assert_eq!(u(r, "verified_pages") + u(r, "missed_loads"), 2500, "{r}");
        assert_eq!(u(r, "pages_after_invalidate"), 0, "{r}");
        assert_eq!(u(r, "frames_after_invalidate"), 0, "{r}");
        for k in [
            "store_us",
            "compress_us",
            "load_us",
            "decompress_us",
            "metadata_bytes_per_page",
        ] {
            assert!(f(r, k) > 0.0, "{k} in {r}");
        }
    }

    // What the scaled run does not use is refused, in one line.
    fails(
        &zcache(&["--scale", "1000", "--plot", "x.svg"]),
        2,
        "--plot",
    );
    fails(&zcache(&["bench", "--scale", "0"]), 2, "0");
    fails(&zcache(&["bench", "--rounds", "2"]), 2, "--scale");
    fails(
        &zcache(&["bench", "--scale", "10", "--rounds", "0"]),
        2,
        "0",
    );
}

#[test]
fn scaled_rounds_print_each_round_then_their_medians() {
    let o = zcache(&[
        "bench",
        "--scale",
        "1500,700",
        "--rounds",
        "3",
        "--workload",
        "frontswap",
        "--compressor",
        "lz4",
    ]);
    ok(&o);
    let out = stdout(&o);
    let (table, parts) = out
        .split_once("metadata by part")
        .expect("the metadata-by-part table follows the main one");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("frontswap "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let got: Vec<(&str, &str)> = rows.iter().map(|l| (l[3], l[l.len() - 1])).collect();
    assert_eq!(
        got,
        [
            ("1500", "1"),
            ("1500", "2"),
            ("1500", "3"),
            ("1500", "med3"),
            ("700", "1"),
            ("700", "2"),
            ("700", "3"),
            ("700", "med3")
        ],
        "{out}"
    );
    // The median row's load ratio is the middle one of its three rounds'.
    for size in rows.chunks(4) {
        let ratio =
            |l: &Vec<&str>| -> f64 { l[10].trim_end_matches('x').parse().expect("a ratio") };
        let mut v: Vec<f64> = size[..3].iter().map(ratio).collect();
        v.sort_by(f64::total_cmp);
        assert_eq!(ratio(&size[3]), v[1], "{size:?}");
        // The same draws in every round: the same counts. (The metadata may differ
        // a little: a zspage whose frames the heap placed far apart keeps a wide frame
        // list.)
        for l in &size[1..] {
            assert_eq!(l[14..17], size[0][14..17], "{size:?}");
        }
    }
    // One line a size in the metadata table (the first round's).
    assert_eq!(
        parts
            .lines()
            .filter(|l| l.starts_with("frontswap "))
            .count(),
        2,
        "{out}"
    );

    let o = zcache(&["--scale", "600", "--rounds", "2", "--json"]);
    ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("stdout is JSON");
    let rows = v.as_array().expect("a top-level array");
    let rounds: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["round"].as_u64().unwrap(),
                r["median_of"].as_u64().unwrap(),
            )
        })
        .collect();
    // Both workloads: two rounds each, then the medians of two.
    assert_eq!(rounds, [(1, 1), (2, 1), (0, 2), (1, 1), (2, 1), (0, 2)]);
}
