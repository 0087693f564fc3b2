//! The real corpus pages replayed as guest memory on a zcache-uffd region, with a
//! skewed access pattern under a resident limit well below the working set (issue 16,
//! item 2's second workload); or the same replay on a plain mapping in a memory cgroup
//! swapping to zram at the same limit (run (b), root).
//!
//! ```text
//! cargo build --release -p zcache-uffd --example replay
//! R=target/release/examples/replay
//! $R --limit-pages 2048                        # on the region (root)
//! $R --memory mmap                             # a plain mapping, no limit
//! $R --memory mmap --cgroup-limit-pages 2048   # cgroup v1 + zram lz4 (root)
//! other options: [--clean-copies all|N|1/K] [--corpus DIR] [--copies K] [--ops N] [--write-pct P] [--zipf S]
//!                [--seed X] [--zram-mib M] [--timeout S]
//! ```
//!
//! The guest: `--copies` (default 2) x the corpus's pages (default testdata/dev: 8,368
//! pages of real programs' anonymous memory and files), guest page `g` holding corpus
//! page `(g + v * 7919) mod n` at version `v` (0 at boot). Boot writes every page once,
//! in order. Then `--ops` accesses: a page drawn from a Zipf distribution of exponent
//! `--zipf` (default 0.99) over a random permutation of the guest's pages (the hot pages
//! are scattered, not a prefix), `--write-pct` percent of them (default 10) writes of
//! the page's next version, the rest whole-page reads compared byte for byte with the
//! expected version. At the end every page is read and compared once more. Any
//! mismatch ends the run with exit code 1. Printed: boot and replay times, accesses/s,
//! the process's page faults, and the region's statistics (faults, refaults, write-
//! protect faults, compressions and those saved by the clean-page rule, zcache's
//! frames and metadata) or, in (b), zram's `mm_stat`.
//!
//! On the region the owner reads and writes through `Region::read`/`write`; on the
//! mapping through plain copies. In (b) the corpus (the expected contents) is locked in
//! memory before the limit is set (see `common/cgroup.rs`), as the region's limit does
//! not count it either.

#[path = "common/cgroup.rs"]
mod cgroup;
#[path = "common/report.rs"]
mod report;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use cgroup::mib;
use zcache_testdata::Corpus;
use zcache_uffd::{PAGE, Region, RegionConfig};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Memory {
    Region,
    Mmap,
}

struct Args {
    memory: Memory,
    limit: Option<usize>,
    /// `RegionConfig::clean_copies`.
    clean_copies: zcache_uffd::CleanCopies,
    corpus: Option<PathBuf>,
    copies: usize,
    ops: usize,
    write_pct: u64,
    zipf: f64,
    seed: u64,
    cgroup_limit: Option<usize>,
    zram_mib: u64,
    timeout_s: u64,
    child_limit: Option<usize>,
    zram_stat: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        memory: Memory::Region,
        limit: None,
        clean_copies: zcache_uffd::CleanCopies::DEFAULT,
        corpus: None,
        copies: 2,
        ops: 400_000,
        write_pct: 10,
        zipf: 0.99,
        seed: 0x5EED_0016,
        cgroup_limit: None,
        zram_mib: 256,
        timeout_s: 900,
        child_limit: None,
        zram_stat: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--memory" => {
                a.memory = match v()?.as_str() {
                    "region" => Memory::Region,
                    "mmap" => Memory::Mmap,
                    o => return Err(format!("--memory region|mmap, not {o}")),
                }
            }
            "--limit-pages" => a.limit = Some(num(v()?)? as usize),
            "--clean-copies" => a.clean_copies = report::parse_clean_copies(&v()?)?,
            "--corpus" => a.corpus = Some(PathBuf::from(v()?)),
            "--copies" => a.copies = num(v()?)?.max(1) as usize,
            "--ops" => a.ops = num(v()?)? as usize,
            "--write-pct" => a.write_pct = num(v()?)?.min(100),
            "--zipf" => a.zipf = v()?.parse().map_err(|e| format!("--zipf: {e}"))?,
            "--seed" => a.seed = num(v()?)?,
            "--cgroup-limit-pages" => a.cgroup_limit = Some(num(v()?)? as usize),
            "--zram-mib" => a.zram_mib = num(v()?)?,
            "--timeout" => a.timeout_s = num(v()?)?,
            "--child-limit-pages" => a.child_limit = Some(num(v()?)? as usize),
            "--zram-stat" => a.zram_stat = Some(PathBuf::from(v()?)),
            o => return Err(format!("unknown argument {o}")),
        }
    }
    if a.cgroup_limit.is_some() && (a.memory == Memory::Region || a.limit.is_some()) {
        return Err("--cgroup-limit-pages runs --memory mmap, without --limit-pages".into());
    }
    Ok(a)
}

/// xorshift64*: a fixed, seedable sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Page `g`'s content at version `v`: a corpus page.
fn content(corpus: &Corpus, g: usize, v: u32) -> &[u8; PAGE] {
    let n = corpus.len();
    &corpus.pages()[(g + v as usize * 7919) % n]
}

/// Where the guest's pages are, and how the owner reaches them.
enum Guest {
    Region(Region),
    Mmap(*mut u8),
}

impl Guest {
    fn write(&self, g: usize, data: &[u8; PAGE]) -> Result<(), String> {
        match self {
            Guest::Region(r) => r.write(g * PAGE, data).map_err(|e| e.to_string()),
            Guest::Mmap(base) => {
                // SAFETY: `g` < the guest's pages (the caller's loop bounds), so the
                // page is inside the mapping, which lives as long as the process; one
                // thread touches it.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(g * PAGE), PAGE) };
                Ok(())
            }
        }
    }
    fn read(&self, g: usize, out: &mut [u8; PAGE]) -> Result<(), String> {
        match self {
            Guest::Region(r) => r.read(g * PAGE, out).map_err(|e| e.to_string()),
            Guest::Mmap(base) => {
                // SAFETY: as in `write`.
                unsafe {
                    std::ptr::copy_nonoverlapping(base.add(g * PAGE), out.as_mut_ptr(), PAGE)
                };
                Ok(())
            }
        }
    }
}

fn faults() -> (i64, i64) {
    // SAFETY: getrusage fills one `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above, `ru` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_minflt, ru.ru_majflt)
}

fn run(a: &Args) -> Result<(), String> {
    let corpus = match &a.corpus {
        Some(d) => Corpus::load(d).map_err(|e| e.to_string())?,
        None => Corpus::dev(),
    };
    let pages = corpus.len() * a.copies;
    // The access pattern, drawn before anything is timed: a Zipf CDF over ranks, ranks
    // mapped to pages by a random permutation.
    let mut rng = Rng(a.seed | 1);
    let mut perm: Vec<usize> = (0..pages).collect();
    for i in (1..pages).rev() {
        perm.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut cdf: Vec<f64> = Vec::with_capacity(pages);
    let mut acc = 0.0;
    for r in 0..pages {
        acc += 1.0 / ((r + 1) as f64).powf(a.zipf);
        cdf.push(acc);
    }
    let ops: Vec<(u32, bool)> = (0..a.ops)
        .map(|_| {
            let u = rng.unit() * acc;
            let r = cdf.partition_point(|&c| c < u).min(pages - 1);
            (perm[r] as u32, rng.next() % 100 < a.write_pct)
        })
        .collect();
    drop((cdf, perm));
    let mut distinct = vec![false; pages];
    for &(g, _) in &ops {
        distinct[g as usize] = true;
    }
    let touched = distinct.iter().filter(|&&t| t).count();
    drop(distinct);
    let mut version = vec![0u32; pages];
    println!(
        "guest: {pages} pages ({:.1} MiB) = {} x {} corpus pages; {} accesses (zipf {}, {}% writes) touching {touched} distinct pages",
        mib((pages * PAGE) as u64),
        a.copies,
        corpus.len(),
        a.ops,
        a.zipf,
        a.write_pct
    );
    if let Some(n) = a.child_limit {
        cgroup::limit_own_cgroup(n)?;
    }
    let guest = match a.memory {
        Memory::Region => {
            let mut cfg = RegionConfig::new(pages * PAGE);
            cfg.resident_limit = a.limit;
            cfg.clean_copies = a.clean_copies;
            println!(
                "region: resident limit {:?} pages, clean copies {:?}",
                cfg.resident_limit, cfg.clean_copies
            );
            cfg.spill_dir = Some(std::env::temp_dir());
            cfg.handler_cpu = Some(0);
            let r = Region::new(cfg).map_err(|e| format!("region: {e}"))?;
            // The owner beside the pinned handler.
            // SAFETY: an all-zero cpu_set_t is empty; CPU_SET sets one bit;
            // sched_setaffinity(0, ..) reads the set for this thread.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
            }
            Guest::Region(r)
        }
        Memory::Mmap => {
            // SAFETY: a fresh private anonymous mapping; no address hint.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    pages * PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(format!("mmap: {}", std::io::Error::last_os_error()));
            }
            Guest::Mmap(p.cast())
        }
    };

    let (min0, maj0) = faults();
    let t = Instant::now();
    for g in 0..pages {
        guest.write(g, content(&corpus, g, 0))?;
    }
    let t_boot = t.elapsed().as_secs_f64();
    let mut buf = [0u8; PAGE];
    let (mut reads, mut writes, mut wrong) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    for &(g, w) in &ops {
        let g = g as usize;
        if w {
            version[g] += 1;
            guest.write(g, content(&corpus, g, version[g]))?;
            writes += 1;
        } else {
            guest.read(g, &mut buf)?;
            reads += 1;
            wrong += u64::from(&buf != content(&corpus, g, version[g]));
        }
    }
    let t_replay = t.elapsed().as_secs_f64();
    let (min1, maj1) = faults();
    // The state the memory figures describe: right after the replay.
    let region = match &guest {
        Guest::Region(r) => Some(r),
        _ => None,
    };
    report::print_held(a.zram_stat.as_deref(), region)?;
    let t = Instant::now();
    for (g, &v) in version.iter().enumerate() {
        guest.read(g, &mut buf)?;
        wrong += u64::from(&buf != content(&corpus, g, v));
    }
    let t_verify = t.elapsed().as_secs_f64();
    println!(
        "replay on {}: boot {t_boot:.2} s, {} accesses in {t_replay:.2} s ({:.0}/s; {reads} reads checked, {writes} writes), final check of every page {t_verify:.2} s; wrong pages {wrong}",
        match a.memory {
            Memory::Region => "the zcache-uffd region",
            Memory::Mmap => "a plain mapping",
        },
        a.ops,
        a.ops as f64 / t_replay,
    );
    println!(
        "process page faults (boot + replay): minor {}, major {}",
        min1 - min0,
        maj1 - maj0
    );
    if wrong != 0 {
        return Err(format!("{wrong} pages read back wrong"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = if let Some(n) = a.cgroup_limit {
        // The corpus files into the page cache, charged to this (root) cgroup.
        match &a.corpus {
            Some(d) => drop(Corpus::load(d)),
            None => drop(Corpus::dev()),
        }
        let mut args: Vec<OsString> = vec!["--memory".into(), "mmap".into()];
        for (k, v) in [
            ("--copies", a.copies.to_string()),
            ("--ops", a.ops.to_string()),
            ("--write-pct", a.write_pct.to_string()),
            ("--zipf", a.zipf.to_string()),
            ("--seed", a.seed.to_string()),
        ] {
            args.push(k.into());
            args.push(v.into());
        }
        if let Some(d) = &a.corpus {
            args.push("--corpus".into());
            args.push(d.into());
        }
        cgroup::run_in_cgroup("replay", args, n, a.zram_mib, a.timeout_s)
    } else if a.memory == Memory::Region
        && let Err(why) = zcache_uffd::available()
    {
        println!("SKIP: userfaultfd unavailable: {why}");
        return ExitCode::SUCCESS;
    } else {
        run(&a)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
