//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use zcomp::Algorithm;

use crate::measure::Clock;

/// The `zcache` command: replay real 4 KiB pages through zcache-rs and report what it
/// saves and how fast it runs.
#[derive(Debug, Parser)]
#[command(
    name = "zcache",
    version,
    about = "Replay real 4 KiB pages through zcache-rs (frontswap and cleancache) and report \
             density, throughput and what it saves",
    long_about = "Replay real 4 KiB pages through zcache-rs (frontswap and cleancache) and \
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

    /// Report options.
    #[command(flatten)]
    pub run: RunArgs,
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
        match self {
            AllocatorArg::Zbud => "zbud",
            AllocatorArg::Zsmalloc => "zsmalloc",
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
        match self {
            WorkloadArg::Frontswap => "frontswap",
            WorkloadArg::Cleancache => "cleancache",
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
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} parsed");
        }
    }
}
