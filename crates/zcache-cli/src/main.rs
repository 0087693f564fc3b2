//! The `zcache` command: replays real 4 KiB pages through zcache-rs (frontswap and
//! cleancache workloads, every allocator x compressor) and reports density, throughput
//! and what it saves, next to bare compression, the `Mutex<HashMap<_, Vec<u8>>>` a user
//! would write instead, and Linux's zsmalloc and zbud layouts.
//!
//! ```text
//! zcache                                  # bench on the embedded 1024-page sample
//! zcache bench --corpus testdata/dev --json
//! zcache bench --corpus testdata/dev --scale 10000,100000,1000000
//! zcache analyze --pid 1234 --plot out.svg
//! zcache analyze /usr/lib/x86_64-linux-gnu
//! zcache capture --pid 1234 --out my-corpus && zcache bench --corpus my-corpus
//! ```
//!
//! Errors end the command with one line on stderr: exit code 2 for usage and input
//! errors, 1 for failures while running.

mod cli;
mod corpus_out;
mod error;
mod heap;
mod input;
mod kernel;
mod linux;
mod measure;
mod plot;
mod procfs;
mod progress;
mod report;
mod scaled;
mod workload;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use cli::{BenchArgs, Cli, Command, RunArgs, SourceArgs};
use error::{CliError, EXIT_INPUT, EXIT_RUNTIME};
use input::PageSet;
use measure::{Budget, Keys};
use progress::Progress;
use report::Report;

#[global_allocator]
static GLOBAL: heap::CountingAlloc = heap::CountingAlloc;

fn main() -> ExitCode {
    // A bug must still end in one line, not a panic trace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("zcache: internal error: {msg}{at}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("zcache: {e}");
            ExitCode::from(e.code)
        }
        Err(_) => ExitCode::from(EXIT_RUNTIME),
    }
}

/// Help and version go to stdout with success; a usage error becomes one line.
fn clap_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(EXIT_INPUT)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.render().to_string();
            let mut parts = Vec::new();
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() {
                    if !parts.is_empty() {
                        break;
                    }
                    continue;
                }
                if line.starts_with("Usage:") || line.starts_with("For more information") {
                    break;
                }
                parts.push(line.strip_prefix("error: ").unwrap_or(line).to_string());
            }
            eprintln!("zcache: {} (see zcache --help)", parts.join(" "));
            ExitCode::from(EXIT_INPUT)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let progress = Progress::for_stderr();
    match cli.command {
        None => bench(&cli.bench, &progress),
        Some(Command::Bench(b)) => bench(&b, &progress),
        Some(Command::Swapd(s)) => zcache_swapd::args::run(&s).map_err(|e| {
            if e.is_refusal() {
                CliError::input(e.to_string())
            } else {
                CliError::runtime(e.to_string())
            }
        }),
        Some(Command::SwapBench(a)) => std::env::current_exe()
            .map_err(|e| CliError::runtime(format!("the zcache executable: {e}")))
            .and_then(|exe| {
                zcache_swapbench::cli_text(&a, exe).map_err(|e| {
                    if e.is_refusal() {
                        CliError::input(e.to_string())
                    } else {
                        CliError::runtime(e.to_string())
                    }
                })
            })
            .and_then(|text| emit(&text)),
        Some(Command::Analyze(a)) => {
            cli::check_page_size(a.run.page_size).map_err(CliError::input)?;
            check_plot_path(&a.run)?;
            let set = capture_source(&a.source, &progress)?;
            replay(&set, &a.run, &progress)
        }
        Some(Command::Capture(c)) => {
            if input::PAGE_SIZE != input::CORPUS_PAGE {
                return Err(CliError::input(format!(
                    "capture writes a corpus of 4 KiB pages, and this zcache was built for {} KiB \
                     pages: capture with a 4 KiB build, then replay the corpus here",
                    input::PAGE_SIZE / 1024
                )));
            }
            let set = capture_source(&c.source, &progress)?;
            corpus_out::write_corpus(&set, &c.out)?;
            emit(&format!(
                "{}\nwrote {} pages ({}) to {}; replay with: zcache bench --corpus {}\n",
                set.description,
                set.len(),
                report::mib(set.bytes()),
                c.out.display(),
                c.out.display()
            ))
        }
    }
}

fn bench(args: &BenchArgs, progress: &Progress) -> Result<(), CliError> {
    cli::check_page_size(args.run.page_size).map_err(CliError::input)?;
    check_plot_path(&args.run)?;
    let set = match &args.corpus {
        Some(dir) => input::corpus_dir(dir)?,
        None => input::embedded_sample()?,
    };
    let set = set.subset(args.max_pages);
    let sizes = args.scale_sizes();
    if args.kernel {
        kernel_side_by_side(&set, &args.run)
    } else if sizes.is_empty() {
        replay(&set, &args.run, progress)
    } else {
        scaled::run(&set, &sizes, &args.run, args.rounds, progress)
    }
}

/// `bench --kernel`: refuses at once without root or zram, before reading anything else.
fn kernel_side_by_side(set: &PageSet, run: &RunArgs) -> Result<(), CliError> {
    if input::PAGE_SIZE != input::CORPUS_PAGE {
        return Err(CliError::input(format!(
            "--kernel compares with this kernel's zram, which works in 4 KiB pages; this zcache \
             was built for {} KiB pages",
            input::PAGE_SIZE / 1024
        )));
    }
    if let Some(why) = kernel::refusal() {
        return Err(CliError::runtime(why));
    }
    let named = !run.compressor.is_empty();
    let alg = if named {
        run.compressors()
            .into_iter()
            .find(|a| matches!(a, zcomp::Algorithm::Lz4 | zcomp::Algorithm::Lzo))
            .ok_or_else(|| {
                CliError::input("--kernel compares with zram: name --compressor lz4 or lzo")
            })?
    } else {
        zcomp::Algorithm::Lz4
    };
    let report = kernel::side_by_side(&set.pages, alg)?;
    let mut out = std::io::stdout().lock();
    let text = if run.json {
        report.json()
    } else {
        report.render()
    };
    out.write_all(text.as_bytes())
        .map_err(|e| CliError::runtime(format!("writing the report: {e}")))
}

fn capture_source(src: &SourceArgs, progress: &Progress) -> Result<PageSet, CliError> {
    match src.pid {
        Some(pid) => procfs::capture(pid, src.max_pages, progress),
        None => input::files(&src.files, src.max_pages, progress),
    }
}

/// Refuses a plot path whose directory does not exist before any long run.
fn check_plot_path(run: &RunArgs) -> Result<(), CliError> {
    if let Some(p) = &run.plot {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(CliError::input(format!(
                "--plot {}: directory {} does not exist",
                p.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Runs every measurement on `set` and prints the report.
fn replay(set: &PageSet, run: &RunArgs, progress: &Progress) -> Result<(), CliError> {
    let algs = run.compressors();
    let allocs = run.allocators();
    let workloads = run.workloads();
    let keys = Keys::new(&set.records, run.swap_offsets);
    let budget = Budget {
        clock: run.clock,
        min_time: run.min_time,
    };
    let steps = algs.len() + 1 + workloads.len() * allocs.len() * algs.len();
    let bar = progress.bar(steps as u64, "bare compression");
    let mut bares = Vec::new();
    for &alg in &algs {
        bar.set_message(format!("bare {alg}"));
        bares.push(measure::bare(&set.pages, alg, budget)?);
        bar.inc(1);
    }
    bar.set_message("baseline HashMap + lz4");
    let baseline = measure::baseline(&set.pages, &keys, budget)?;
    bar.inc(1);
    let mut rows = Vec::new();
    for &w in &workloads {
        for &a in &allocs {
            for (&alg, b) in algs.iter().zip(&bares) {
                bar.set_message(format!("{} {} {}", w.name(), a.name(), alg));
                let o = workload::run(w, a, alg, &set.pages, &keys, b, budget)?;
                let how = report::How {
                    swap_offsets: keys.swap_offsets,
                    clock: run.clock,
                };
                rows.push(report::row(w, a, alg, &o, &baseline, how));
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &run.plot {
        let title = format!("zcache: {}", set.description);
        plot::draw(path, &title, &bares, &rows, &baseline)?;
    }
    let text = if run.json {
        report::json(&rows).map_err(|e| CliError::runtime(format!("JSON output: {e}")))?
    } else {
        let mut s = Report {
            description: &set.description,
            pages: set.len() as u64,
            swap_offsets: keys.swap_offsets,
            rows: &rows,
            bare: &bares,
            baseline: &baseline,
            min_time: run.min_time,
            clock: run.clock,
        }
        .render();
        if let Some(p) = &run.plot {
            s.push_str(&format!("\nPlot written to {}\n", p.display()));
        }
        s
    };
    emit(&text)?;
    let bad: u64 = rows.iter().map(|r| r.mismatches).sum::<u64>() + baseline.mismatches;
    if bad > 0 {
        return Err(CliError::runtime(format!(
            "{bad} load(s) returned wrong bytes or lost a stored page"
        )));
    }
    let leaked: u64 = rows.iter().map(|r| r.frames_after_invalidate).sum();
    if leaked > 0 {
        return Err(CliError::runtime(format!(
            "{leaked} frame(s) still held after every page was invalidated"
        )));
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`zcache | head`) is not an error.
fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::runtime(format!(
            "cannot write the report: {}",
            input::io_msg(&e)
        ))),
    }
}
