//! The stable fallback for the fuzz targets: no libFuzzer, no nightly, no coverage
//! feedback. For each target it replays every file of `corpus/TARGET/` and then, for a
//! time budget, feeds the target inputs from a seeded generator: random byte strings,
//! mutations of corpus entries and (for the decompressors) mutations of real compressed
//! pages. The bodies are the very functions the libFuzzer binaries call
//! (`zcache_fuzz::TARGETS`).
//!
//! ```sh
//! cd fuzz
//! cargo test --release --no-default-features --test stable            # 1 s per target
//! FUZZ_SECS=30 FUZZ_SEED=42 cargo test --release --no-default-features --test stable \
//!     -- tmem_ops zcache_ops                                           # chosen targets
//! ```
//!
//! `FUZZ_SECS` is the generator's budget per target (default 1; 0 replays the corpus
//! only), `FUZZ_SEED` the generator's seed (default: from the clock; printed either way,
//! so a run can be repeated). A failing input is written to `artifacts/TARGET/` as
//! `crash-stable-HASH` (a panic) or `timeout-stable-HASH` (one input ran longer than
//! `FUZZ_TIMEOUT` seconds, default 10), and the run fails; replay it with
//! `cargo +nightly fuzz run TARGET artifacts/TARGET/FILE` or with this driver by copying
//! it into `corpus/TARGET/`.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use std::{env, fs, process, thread};
use zcomp::{Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN, PAGE_SIZE, Page};

/// xorshift64*: small, fast, and the same sequence everywhere for a given seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // SplitMix64 of the seed, so that small seeds (0, 1, 42) start well mixed.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    /// A length in `0..=max`, biased towards short ones (most bugs need few bytes).
    fn len(&mut self, max: usize) -> usize {
        let cap = [8, 64, 512, max][self.below(4)].min(max);
        self.below(cap + 1)
    }
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.byte();
        }
    }
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xfe, 0xff];

/// Applies 1..=8 random edits to `data`: bit flips, interesting bytes, random bytes,
/// inserted, deleted or duplicated ranges, a splice from `other`, truncation.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    for _ in 0..1 + rng.below(8) {
        let n = data.len();
        match rng.below(8) {
            0 if n > 0 => {
                let i = rng.below(n);
                data[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if n > 0 => {
                let i = rng.below(n);
                data[i] = rng.byte();
            }
            3 => {
                let at = rng.below(n + 1);
                let k = 1 + rng.below(16);
                let ins: Vec<u8> = (0..k).map(|_| rng.byte()).collect();
                data.splice(at..at, ins);
            }
            4 if n > 0 => {
                let at = rng.below(n);
                let k = 1 + rng.below((n - at).min(64));
                data.drain(at..at + k);
            }
            5 if n > 0 => {
                let at = rng.below(n);
                let k = 1 + rng.below((n - at).min(64));
                let chunk = data[at..at + k].to_vec();
                let to = rng.below(n + 1);
                data.splice(to..to, chunk);
            }
            6 if !other.is_empty() => {
                let at = rng.below(other.len());
                let k = 1 + rng.below((other.len() - at).min(256));
                let to = rng.below(n + 1);
                data.splice(to..to, other[at..at + k].iter().copied());
            }
            _ if n > 0 => data.truncate(rng.below(n)),
            _ => data.push(rng.byte()),
        }
    }
    data.truncate(max_len);
}

/// A page worth compressing: runs, a small alphabet, a repeated chunk, zeros with
/// scattered bytes, or noise, in up to four segments.
fn page(rng: &mut Rng) -> Page {
    let mut p: Page = [0u8; PAGE_SIZE];
    let mut at = 0;
    while at < PAGE_SIZE {
        let end = if rng.chance(2) {
            PAGE_SIZE
        } else {
            (at + 1 + rng.below(PAGE_SIZE)).min(PAGE_SIZE)
        };
        let seg = &mut p[at..end];
        match rng.below(5) {
            0 => seg.fill(rng.byte()),
            1 => {
                let k = 2 + rng.below(6);
                let alphabet: Vec<u8> = (0..k).map(|_| rng.byte()).collect();
                for b in seg.iter_mut() {
                    *b = alphabet[rng.below(k)];
                }
            }
            2 => {
                let mut chunk = vec![0u8; 1 + rng.below(64)];
                rng.fill(&mut chunk);
                for (i, b) in seg.iter_mut().enumerate() {
                    *b = chunk[i % chunk.len()];
                }
            }
            3 => {
                seg.fill(0);
                for _ in 0..rng.below(64) {
                    let i = rng.below(seg.len());
                    seg[i] = rng.byte();
                }
            }
            _ => rng.fill(seg),
        }
        at = end;
    }
    p
}

/// What the generator knows about a target's input.
enum Shape {
    /// Compressed data of this algorithm.
    Compressed(Algorithm),
    /// A page pattern (repeated to fill a page).
    Pattern,
    /// 8-byte operations, after `prefix` setup bytes.
    Ops { prefix: usize },
}

fn shape(target: &str) -> Shape {
    match target {
        "decompress_lz4" => Shape::Compressed(Algorithm::Lz4),
        "decompress_deflate" => Shape::Compressed(Algorithm::Deflate),
        "decompress_lzo" => Shape::Compressed(Algorithm::Lzo),
        "decompress_zstd" => Shape::Compressed(Algorithm::Zstd),
        "zcomp_round_trip" => Shape::Pattern,
        "tmem_ops" => Shape::Ops { prefix: 0 },
        "zcache_ops" => Shape::Ops { prefix: 1 },
        other => panic!("stable driver: no generator for target {other}"),
    }
}

const MAX_LEN: usize = 8192;

/// One generated input for `shape`.
fn generate(
    rng: &mut Rng,
    shape: &Shape,
    corpus: &[Vec<u8>],
    compressor: &mut Option<AnyCompressor>,
) -> Vec<u8> {
    fn seed<'a>(rng: &mut Rng, corpus: &'a [Vec<u8>]) -> &'a [u8] {
        if corpus.is_empty() {
            &[]
        } else {
            &corpus[rng.below(corpus.len())]
        }
    }
    match rng.below(3) {
        // A corpus entry, mutated.
        0 if !corpus.is_empty() => {
            let mut v = seed(rng, corpus).to_vec();
            let other = seed(rng, corpus);
            mutate(rng, &mut v, other, MAX_LEN);
            return v;
        }
        // Structured: real compressed pages, whole op sequences.
        1 => match shape {
            Shape::Compressed(a) => {
                let c = compressor.get_or_insert_with(|| AnyCompressor::new(*a).unwrap());
                let mut out = vec![0u8; MAX_COMPRESSED_LEN];
                if let Ok(n) = c.compress(&page(rng), &mut out) {
                    out.truncate(n);
                    // decompress_zstd adds the magic number itself to half its calls.
                    if *a == Algorithm::Zstd && rng.chance(2) {
                        out.drain(..4.min(out.len()));
                    }
                    if !rng.chance(4) {
                        let other = seed(rng, corpus);
                        mutate(rng, &mut out, other, MAX_LEN);
                    }
                    return out;
                }
            }
            Shape::Pattern => {
                let mut v = vec![0u8; 1 + rng.below(16)];
                rng.fill(&mut v);
                let n = rng.len(PAGE_SIZE + 64);
                return (0..n).map(|i| v[i % v.len()]).collect();
            }
            Shape::Ops { prefix } => {
                let mut v = vec![0u8; prefix + 8 * rng.len(256)];
                rng.fill(&mut v);
                return v;
            }
        },
        _ => {}
    }
    // Random bytes.
    let mut v = vec![0u8; rng.len(MAX_LEN)];
    rng.fill(&mut v);
    v
}

/// FNV-1a, for artifact names.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex(data: &[u8]) -> String {
    let mut s: String = data.iter().take(256).map(|b| format!("{b:02x}")).collect();
    if data.len() > 256 {
        s.push_str("...");
    }
    s
}

fn save(dir: &Path, kind: &str, target: &str, data: &[u8]) -> PathBuf {
    let dir = dir.join("artifacts").join(target);
    let path = dir.join(format!("{kind}-stable-{:016x}", hash(data)));
    if let Err(e) = fs::create_dir_all(&dir).and_then(|()| fs::write(&path, data)) {
        eprintln!("could not save {}: {e}", path.display());
    }
    path
}

fn env_u64(name: &str, default: u64) -> u64 {
    match env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a whole number");
            process::exit(2)
        }),
        Err(_) => default,
    }
}

/// The input being run and how many have finished, for the hang watchdog.
struct Progress {
    current: Mutex<(&'static str, Vec<u8>)>,
    done: AtomicU64,
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let secs = env_u64("FUZZ_SECS", 1);
    let timeout = env_u64("FUZZ_TIMEOUT", 10).max(1);
    let clock = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = env_u64("FUZZ_SEED", clock % 1_000_000_007);

    // Targets named on the command line (cargo test passes its own flags through too).
    let names: Vec<String> = env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for n in &names {
        if !zcache_fuzz::TARGETS.iter().any(|(t, _)| t == n) {
            eprintln!("unknown fuzz target {n}");
            process::exit(2);
        }
    }
    let targets: Vec<_> = zcache_fuzz::TARGETS
        .iter()
        .filter(|(t, _)| names.is_empty() || names.iter().any(|n| n == t))
        .collect();
    println!(
        "stable fuzz driver: seed {seed} (FUZZ_SEED), {secs} s per target (FUZZ_SECS), \
         per-input timeout {timeout} s"
    );

    // Hang watchdog: one input running longer than the timeout is saved and fails the run.
    let progress = Arc::new(Progress {
        current: Mutex::new(("", Vec::new())),
        done: AtomicU64::new(0),
    });
    {
        let progress = progress.clone();
        thread::spawn(move || {
            let (mut last, mut since) = (u64::MAX, Instant::now());
            loop {
                thread::sleep(Duration::from_millis(250));
                let done = progress.done.load(Ordering::Relaxed);
                if done != last {
                    (last, since) = (done, Instant::now());
                } else if since.elapsed() >= Duration::from_secs(timeout) {
                    let cur = progress.current.lock().unwrap_or_else(|e| e.into_inner());
                    let path = save(dir, "timeout", cur.0, &cur.1);
                    eprintln!(
                        "TIMEOUT: {}: an input ran over {timeout} s; saved as {} ({} bytes: {})",
                        cur.0,
                        path.display(),
                        cur.1.len(),
                        hex(&cur.1)
                    );
                    process::exit(1);
                }
            }
        });
    }

    let mut failed = Vec::new();
    for (i, &&(name, body)) in targets.iter().enumerate() {
        let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let run = |data: &[u8]| -> bool {
            {
                let mut cur = progress.current.lock().unwrap_or_else(|e| e.into_inner());
                cur.0 = name;
                cur.1.clear();
                cur.1.extend_from_slice(data);
            }
            let ok = panic::catch_unwind(AssertUnwindSafe(|| body(data))).is_ok();
            progress.done.fetch_add(1, Ordering::Relaxed);
            if !ok {
                let path = save(dir, "crash", name, data);
                eprintln!(
                    "CRASH: {name}: the input above panicked (seed {seed}); saved as {} \
                     ({} bytes: {})",
                    path.display(),
                    data.len(),
                    hex(data)
                );
            }
            ok
        };

        // 1. Replay the corpus.
        let corpus_dir = dir.join("corpus").join(name);
        let mut files: Vec<PathBuf> = match fs::read_dir(&corpus_dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        let mut corpus = Vec::with_capacity(files.len());
        let mut ok = true;
        let started = Instant::now();
        for f in &files {
            let data = fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if !run(&data) {
                eprintln!("  (corpus file {})", f.display());
                ok = false;
                break;
            }
            corpus.push(data);
        }
        let replay = started.elapsed();

        // 2. Generate until the budget is spent.
        let shape = shape(name);
        let mut compressor = None;
        let mut execs = 0u64;
        let started = Instant::now();
        let budget = Duration::from_secs(secs);
        while ok && started.elapsed() < budget {
            for _ in 0..16 {
                let input = generate(&mut rng, &shape, &corpus, &mut compressor);
                execs += 1;
                if !run(&input) {
                    ok = false;
                    break;
                }
            }
        }
        let t = started.elapsed().as_secs_f64();
        println!(
            "{name}: {} corpus files replayed in {:.1} s; {execs} generated inputs in {t:.1} s \
             ({:.0}/s); {}",
            corpus.len(),
            replay.as_secs_f64(),
            execs as f64 / t.max(1e-9),
            if ok { "0 crashes" } else { "CRASH" }
        );
        if !ok {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        eprintln!("stable fuzz driver: failed: {}", failed.join(", "));
        process::exit(1);
    }
}
