//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use zcache::AllocatorKind;
use zcomp::Algorithm;

use crate::measure::Clock;

/// The `zcache` command: replay real pages (4 KiB, or 16/64 KiB in a build for them)
/// through zcache-rs and report what it
/// saves and how fast it runs.
#[derive(Debug, Parser)]
#[command(
    name = "zcache",
    version,
    about = "Replay real pages through zcache-rs (frontswap and cleancache) and report \
             density, throughput and what it saves",
    long_about = "Replay real pages through zcache-rs (frontswap and cleancache) and \
                  report density, throughput and what it saves, next to bare compression, \
                  a Mutex<HashMap<_, Vec<u8>>> baseline and Linux's zsmalloc/zbud layouts.\n\n\
                  With no subcommand, `zcache` runs `zcache bench` on the 1024-page sample \
                  embedded in the binary.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: `bench`).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of the default `bench` run.
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a page corpus (default: the embedded 1024-page sample) through every chosen
    /// allocator x compressor and report what zcache achieved.
    Bench(BenchArgs),
    /// Capture the pages of a running process (--pid) or of files and report what zcache
    /// would save on them (same report as `bench`).
    Analyze(AnalyzeArgs),
    /// Capture the pages of a running process (--pid) or of files and write them as a
    /// corpus (pages.bin, pages.idx, manifest.json) to replay later with `bench --corpus`.
    Capture(CaptureArgs),
    /// Serve a FUSE file whose 4 KiB blocks are zcache's frontswap slots (a backing file
    /// on disk for the pages zcache cannot keep), optionally as this kernel's swap
    /// (--swapon, root), until SIGINT or SIGTERM; statistics as JSON on exit.
    Swapd(zcache_swapd::SwapdArgs),
    /// Run a real program (python, sqlite, gcc) in a memory cgroup limited to a fraction of
    /// its peak, three times: swapping to zram, to zswap over a loop file, and to
    /// `zcache swapd`; report each store's memory for the data it holds (root).
    SwapBench(zcache_swapbench::SwapBenchArgs),
}

/// `zcache bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Corpus directory holding pages.bin and pages.idx (format: testdata/README.md);
    /// default: the 1024-page sample embedded in the binary.
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,

    /// Replay at most N pages of the corpus, evenly spaced (a quick look).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pages: Option<u64>,

    /// Scaled run instead of the replay: store N pages, the corpus's pages reused under
    /// distinct keys (page k is corpus page k mod its length), for each N given
    /// (comma-separated or repeated, e.g. 10000,100000,1000000). Frontswap: slots 0..N
    /// stored in order, loaded in a random order, invalidated; cleancache: files of
    /// 1-64 pages, every page put, got in a random order, put again, invalidated file
    /// by file. Each against bare compression of the same N pages kept in memory; every
    /// load checked byte for byte. Default compressor lz4 and each workload's default
    /// allocator (zsmalloc for frontswap, zbud for cleancache) unless named. Needs
    /// about 4 KiB of memory per page (4 GiB at 10^6 on the dev corpus).
    #[arg(
        long,
        value_name = "N",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u64).range(1..=MAX_SCALE),
        conflicts_with_all = ["plot", "swap_offsets", "min_time"]
    )]
    pub scale: Vec<u64>,

    /// With --scale: run each size this many times, one round after the other on the
    /// same draws (each round a fresh cache and fresh bare passes), and add a row of
    /// the rounds' medians (its round column reads "medN"). On a shared machine one
    /// run's ratios move by 0.1 and more; quote the median.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 1,
        requires = "scale",
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub rounds: u32,

    /// The same pages through this kernel's zram as well (root only): a zram device of
    /// its own is created (hot_add), the pages are written to it with O_DIRECT and read
    /// back, its mm_stat is printed beside zcache's frames and metadata for the same
    /// pages (frontswap, zsmalloc), and the device is reset and removed again. The
    /// compressor is the first `--compressor` that zram has here (lz4 by default).
    #[arg(
        long,
        conflicts_with_all = ["scale", "plot", "swap_offsets", "min_time"]
    )]
    pub kernel: bool,

    /// Report options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The largest `--scale` size (about 400 GiB of memory).
pub const MAX_SCALE: u64 = 100_000_000;

impl BenchArgs {
    /// The `--scale` sizes, in the order given, without repeats (empty: a replay).
    pub fn scale_sizes(&self) -> Vec<usize> {
        let mut v: Vec<usize> = Vec::new();
        for &n in &self.scale {
            let n = n as usize;
            if !v.contains(&n) {
                v.push(n);
            }
        }
        v
    }
}

/// Where captured pages come from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Capture the private anonymous pages present in memory of this process (reads
    /// /proc/PID/maps, /proc/PID/pagemap and /proc/PID/mem: needs ptrace access to it).
    #[arg(
        long,
        value_name = "PID",
        conflicts_with = "files",
        required_unless_present = "files"
    )]
    pub pid: Option<u32>,

    /// Files (or directories, walked recursively) read as page-cache pages; the last
    /// partial page of a file is zero-padded.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Keep at most N pages, evenly spaced over everything found.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_pages: Option<u64>,
}

/// `zcache analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Where the pages come from.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Report options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `zcache capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Where the pages come from.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Directory to write pages.bin, pages.idx and manifest.json to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Options shared by `bench` and `analyze`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Allocators to run, comma-separated or repeated (default: all).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub allocator: Vec<AllocatorArg>,

    /// Compressors to run: lz4, deflate, lzo, zstd; comma-separated or repeated
    /// (default: all).
    #[arg(long, value_name = "NAME", value_delimiter = ',', value_parser = parse_compressor)]
    pub compressor: Vec<Algorithm>,

    /// Workloads to run, comma-separated or repeated (default: both).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub workload: Vec<WorkloadArg>,

    /// Print one JSON object per (workload, allocator, compressor) in a top-level array
    /// instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also draw an SVG picture: compressed-size histogram and, per allocator, frames used
    /// against the ideal and Linux's layouts.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Frontswap offsets: `sequential` gives page k of the corpus swap slot k, as a
    /// swap device hands out slots to pages swapped out together; `index` packs the
    /// record's key, `object_id << 36 | page_index` (for anonymous memory the virtual
    /// page number: sparse offsets, one tmem object per 64-slot run touched).
    #[arg(long, value_name = "HOW", default_value = "sequential")]
    pub swap_offsets: SwapOffsets,

    /// Clock for the timings: `cpu` (the measuring thread's CPU time: per-core speed,
    /// steady on a busy machine) or `wall`.
    #[arg(long, value_name = "CLOCK", default_value = "cpu")]
    pub clock: Clock,

    /// Repeat each timed pass over the pages until it has run this many seconds (0: one
    /// pass). Small corpora need repeats for a stable figure.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.1, value_parser = parse_min_time)]
    pub min_time: f64,

    /// Page size of the replay: 4096 (4k), 16384 (16k) or 65536 (64k); default: the
    /// size this zcache was built for. Pages larger than 4 KiB are built from
    /// consecutive 4 KiB corpus pages of one object (a file's pages: read in pieces of
    /// that size). zcache's page size is fixed when it is built (features page-16k and
    /// page-64k, as a kernel's PAGE_SIZE is), so a size other than the build's is
    /// refused with the command that builds it.
    #[arg(long, value_name = "BYTES", value_parser = parse_page_size)]
    pub page_size: Option<usize>,
}

/// An allocator name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AllocatorArg {
    /// Two objects per frame, best-fit buddies.
    Zbud,
    /// Size classes in multi-frame zspages.
    Zsmalloc,
}

impl AllocatorArg {
    /// Every allocator, in report order.
    pub const ALL: [AllocatorArg; 2] = [AllocatorArg::Zbud, AllocatorArg::Zsmalloc];

    /// The allocator's name.
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// The library's allocator.
    pub fn kind(self) -> AllocatorKind {
        match self {
            AllocatorArg::Zbud => AllocatorKind::Zbud,
            AllocatorArg::Zsmalloc => AllocatorKind::Zsmalloc,
        }
    }
}

/// How frontswap offsets are made from the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SwapOffsets {
    /// Page k of the corpus goes to swap slot k.
    Sequential,
    /// `object_id << 36 | page_index`.
    Index,
}

/// A workload name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// Store every page (persistent pool), load every page back and verify, invalidate.
    Frontswap,
    /// Put every page (ephemeral pool) under a frame limit of half the ideal, then get.
    Cleancache,
}

impl WorkloadArg {
    /// Every workload, in report order.
    pub const ALL: [WorkloadArg; 2] = [WorkloadArg::Frontswap, WorkloadArg::Cleancache];

    /// The workload's name.
    pub fn name(self) -> &'static str {
        self.scale().name()
    }

    /// The shared runner's workload of the same name.
    pub fn scale(self) -> zcache_scale::Workload {
        match self {
            WorkloadArg::Frontswap => zcache_scale::Workload::Frontswap,
            WorkloadArg::Cleancache => zcache_scale::Workload::Cleancache,
        }
    }
}

fn parse_compressor(s: &str) -> Result<Algorithm, String> {
    let alg = Algorithm::from_name(s).map_err(|e| e.to_string())?;
    if !alg.is_available() {
        return Err(format!("{alg} is not available in this build"));
    }
    Ok(alg)
}

fn parse_page_size(s: &str) -> Result<usize, String> {
    match s.to_ascii_lowercase().as_str() {
        "4096" | "4k" | "4kib" => Ok(4096),
        "16384" | "16k" | "16kib" => Ok(16384),
        "65536" | "64k" | "64kib" => Ok(65536),
        _ => Err(format!(
            "\"{s}\" is not a page size zcache supports: 4096, 16384 or 65536 (4k, 16k, 64k)"
        )),
    }
}

/// Refuses a `--page-size` this build was not made for, naming the build that has it.
pub fn check_page_size(asked: Option<usize>) -> Result<(), String> {
    match asked {
        Some(n) if n != zcache::PAGE_SIZE => {
            let feature = match n {
                16384 => " --features page-16k",
                65536 => " --features page-64k",
                _ => "",
            };
            Err(format!(
                "--page-size {n}: this zcache was built for {} KiB pages; build one for {} KiB \
                 pages with: cargo build --release -p zcache-cli{feature}",
                zcache::PAGE_SIZE / 1024,
                n / 1024
            ))
        }
        _ => Ok(()),
    }
}

fn parse_min_time(s: &str) -> Result<f64, String> {
    let t: f64 = s
        .parse()
        .map_err(|_| format!("\"{s}\" is not a number of seconds"))?;
    if !(0.0..=3600.0).contains(&t) {
        return Err(format!("{t} is not between 0 and 3600 seconds"));
    }
    Ok(t)
}

impl RunArgs {
    /// The chosen allocators (all when none was named), without repeats.
    pub fn allocators(&self) -> Vec<AllocatorArg> {
        pick(&self.allocator, &AllocatorArg::ALL)
    }

    /// The chosen compressors (all when none was named), without repeats.
    pub fn compressors(&self) -> Vec<Algorithm> {
        pick(&self.compressor, Algorithm::AVAILABLE)
    }

    /// The chosen workloads (both when none was named), without repeats.
    pub fn workloads(&self) -> Vec<WorkloadArg> {
        pick(&self.workload, &WorkloadArg::ALL)
    }
}

/// `chosen` in the order of `all`, or `all` when nothing was chosen.
fn pick<T: Copy + PartialEq>(chosen: &[T], all: &[T]) -> Vec<T> {
    if chosen.is_empty() {
        return all.to_vec();
    }
    all.iter().copied().filter(|a| chosen.contains(a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_zcache_is_a_bench_on_the_sample_with_everything() {
        let cli = Cli::try_parse_from(["zcache"]).expect("parses");
        assert!(cli.command.is_none());
        assert!(cli.bench.corpus.is_none());
        assert_eq!(cli.bench.run.allocators(), AllocatorArg::ALL.to_vec());
        assert_eq!(cli.bench.run.compressors(), Algorithm::AVAILABLE.to_vec());
        assert_eq!(cli.bench.run.workloads(), WorkloadArg::ALL.to_vec());
        assert_eq!(cli.bench.run.min_time, 0.1);
        assert_eq!(cli.bench.run.swap_offsets, SwapOffsets::Sequential);
        assert_eq!(cli.bench.run.clock, Clock::Cpu);
    }

    #[test]
    fn lists_are_comma_separated_or_repeated_and_deduplicated() {
        let cli = Cli::try_parse_from([
            "zcache",
            "bench",
            "--compressor",
            "zstd,LZ4",
            "--compressor",
            "lz4",
            "--allocator",
            "zsmalloc",
        ])
        .expect("parses");
        let Some(Command::Bench(b)) = cli.command else {
            panic!("not bench: {:?}", cli.command)
        };
        assert_eq!(b.run.compressors(), vec![Algorithm::Lz4, Algorithm::Zstd]);
        assert_eq!(b.run.allocators(), vec![AllocatorArg::Zsmalloc]);
    }

    #[test]
    fn scale_takes_sizes_comma_separated_or_repeated_with_the_run_options() {
        let cli = Cli::try_parse_from(["zcache"]).expect("parses");
        assert!(cli.bench.scale_sizes().is_empty());
        let cli = Cli::try_parse_from([
            "zcache",
            "bench",
            "--corpus",
            "testdata/dev",
            "--scale",
            "10000,100000",
            "--scale",
            "1000000",
            "--scale",
            "10000",
            "--compressor",
            "zstd",
            "--allocator",
            "zbud",
            "--workload",
            "frontswap",
            "--json",
        ])
        .expect("parses");
        let Some(Command::Bench(b)) = cli.command else {
            panic!("not bench: {:?}", cli.command)
        };
        assert_eq!(b.scale_sizes(), vec![10_000, 100_000, 1_000_000]);
        assert_eq!(b.run.compressor, vec![Algorithm::Zstd]);
        assert_eq!(b.run.allocators(), vec![AllocatorArg::Zbud]);
        assert_eq!(b.run.workloads(), vec![WorkloadArg::Frontswap]);
        assert!(b.run.json);
        // The default bench takes it too, with the clock.
        let cli =
            Cli::try_parse_from(["zcache", "--scale", "2000", "--clock", "wall"]).expect("parses");
        assert_eq!(cli.bench.scale_sizes(), vec![2000]);
        assert_eq!(cli.bench.run.clock, Clock::Wall);
        // Names map to the library's.
        assert_eq!(AllocatorArg::Zbud.kind(), AllocatorKind::Zbud);
        assert_eq!(AllocatorArg::Zsmalloc.name(), "zsmalloc");
        assert_eq!(WorkloadArg::Cleancache.name(), "cleancache");
    }

    #[test]
    fn bad_names_and_numbers_are_errors() {
        for args in [
            &["zcache", "--allocator", "slab"][..],
            &["zcache", "--compressor", "lz77"],
            &["zcache", "--min-time", "-1"],
            &["zcache", "--min-time", "soon"],
            &["zcache", "analyze"],
            &["zcache", "analyze", "--pid", "1", "file"],
            &["zcache", "capture", "--pid", "1"],
            &["zcache", "analyze", "--pid", "x"],
            &["zcache", "--swap-offsets", "random"],
            &["zcache", "--clock", "sundial"],
            &["zcache", "--scale", "0"],
            &["zcache", "--scale", "many"],
            &["zcache", "--scale", "1e6"],
            &["zcache", "--scale", "100000001"],
            &["zcache", "bench", "--scale"],
            // Options of the replay that a scaled run does not use.
            &["zcache", "--scale", "1000", "--plot", "x.svg"],
            &["zcache", "--scale", "1000", "--min-time", "1"],
            &[
                "zcache",
                "bench",
                "--scale",
                "1000",
                "--swap-offsets",
                "index",
            ],
            &["zcache", "analyze", "--scale", "1000", "file"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} parsed");
        }
    }
}
