//! `zcache bench --scale N`: the scaled run of issue 13 on the chosen pages, through the
//! runner the library's scale bench uses (`zcache-scale`): N pages stored per run, the
//! input pages reused under distinct keys, against bare compression of the same N
//! pages, every load checked byte for byte.

use zcache::AllocatorKind;
use zcache_scale::Setup;
use zcomp::Algorithm;

use crate::cli::RunArgs;
use crate::error::CliError;
use crate::input::PageSet;
use crate::progress::Progress;
use crate::report;

/// The runs `run` asks for: every workload x allocator x compressor named; lz4 and
/// each workload's default allocator when none is named (the library bench's runs).
pub fn setups(run: &RunArgs) -> Vec<Setup> {
    let compressors = if run.compressor.is_empty() {
        vec![Algorithm::Lz4]
    } else {
        run.compressors()
    };
    let allocators: Vec<Option<AllocatorKind>> = if run.allocator.is_empty() {
        vec![None]
    } else {
        run.allocators()
            .into_iter()
            .map(|a| Some(a.kind()))
            .collect()
    };
    let mut v = Vec::new();
    for w in run.workloads() {
        for &allocator in &allocators {
            for &compressor in &compressors {
                v.push(Setup {
                    workload: w.scale(),
                    compressor,
                    allocator,
                    clock: run.clock.scale(),
                });
            }
        }
    }
    v
}

/// Runs every setup at every size on `set` and prints the table (row by row) or JSON.
pub fn run(
    set: &PageSet,
    sizes: &[usize],
    run: &RunArgs,
    rounds: u32,
    progress: &Progress,
) -> Result<(), CliError> {
    let setups = setups(run);
    if !run.json {
        crate::emit(&format!(
            "zcache {}: {} ({})\n\
             scaled run: N pages stored per run, page k = input page k mod {}; one thread, timed by {}\n\
             us per page; x bare = pages/s against bare compression of the same N pages (every output kept, \
             decompressed in the load order), beyond = zcache us - bare us; every load checked byte for byte\n\n{}",
            env!("CARGO_PKG_VERSION"),
            set.description,
            report::mib(set.bytes()),
            set.len(),
            run.clock.name(),
            zcache_scale::header()
        ))?;
    }
    let bar = progress.bar(
        (sizes.len() * setups.len()) as u64 * u64::from(rounds),
        "scaled run",
    );
    let mut emitted = Ok(());
    let rows = zcache_scale::sweep(&set.pages, sizes, &setups, rounds as usize, |r| {
        if r.round != 0 {
            bar.inc(1);
        }
        if !run.json && emitted.is_ok() {
            emitted = bar.suspend(|| crate::emit(&zcache_scale::line(r)));
        }
    })
    .map_err(|e| CliError::runtime(format!("scaled run: {e}")));
    bar.finish_and_clear();
    let rows = rows?;
    emitted?;
    if !run.json {
        let mut t = format!(
            "\nmetadata by part, bytes per stored page\n{}",
            zcache_scale::parts_header()
        );
        // The first round's metadata (the same draws in every round; the frame tables
        // may differ a little with where the heap put the frames).
        for r in rows.iter().filter(|r| r.round == 1) {
            t.push_str(&zcache_scale::parts_line(r));
        }
        crate::emit(&t)?;
    }
    if run.json {
        let text = serde_json::to_string_pretty(&rows)
            .map_err(|e| CliError::runtime(format!("JSON output: {e}")))?;
        crate::emit(&(text + "\n"))?;
    }
    // A median row sums its rounds' failures: count the rounds' own rows only.
    let rows_run = || rows.iter().filter(|r| r.round != 0);
    let bad: u64 = rows_run().map(|r| r.mismatches).sum();
    if bad > 0 {
        return Err(CliError::runtime(format!(
            "{bad} load(s) returned wrong bytes, failed or lost a stored page"
        )));
    }
    let left: u64 = rows_run()
        .map(|r| r.pages_after_invalidate + r.frames_after_invalidate)
        .sum();
    if left > 0 {
        return Err(CliError::runtime(format!(
            "{left} page(s) or frame(s) still held after every page was invalidated"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn named_options_choose_the_runs_and_the_defaults_are_the_library_bench() {
        let cli = Cli::try_parse_from(["zcache", "--scale", "10"]).expect("parses");
        let s = setups(&cli.bench.run);
        assert_eq!(s.len(), 2);
        for (s, w) in s.iter().zip(zcache_scale::Workload::ALL) {
            assert_eq!(
                (s.workload, s.compressor, s.allocator),
                (w, Algorithm::Lz4, None)
            );
            assert_eq!(s.clock, zcache_scale::Clock::Cpu);
        }
        let cli = Cli::try_parse_from([
            "zcache",
            "--scale",
            "10",
            "--allocator",
            "zbud,zsmalloc",
            "--compressor",
            "zstd,lz4",
            "--workload",
            "cleancache",
            "--clock",
            "wall",
        ])
        .expect("parses");
        let s = setups(&cli.bench.run);
        let got: Vec<_> = s.iter().map(|s| (s.allocator, s.compressor)).collect();
        assert_eq!(
            got,
            [
                (Some(AllocatorKind::Zbud), Algorithm::Lz4),
                (Some(AllocatorKind::Zbud), Algorithm::Zstd),
                (Some(AllocatorKind::Zsmalloc), Algorithm::Lz4),
                (Some(AllocatorKind::Zsmalloc), Algorithm::Zstd),
            ]
        );
        assert!(
            s.iter()
                .all(|s| s.workload == zcache_scale::Workload::Cleancache
                    && s.clock == zcache_scale::Clock::Wall)
        );
    }
}
