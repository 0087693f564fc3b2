//! The hot path at real sizes (issue 13): frontswap over many swap slots and cleancache
//! over many files, at 10^4, 10^5 and 10^6 stored pages, one thread, Config::default()
//! (lz4; zsmalloc for frontswap, zbud for cleancache), on the dev corpus (testdata/dev),
//! its pages reused under distinct keys.
//!
//! The runner (workloads, equally fair bare lz4 passes, byte-for-byte checks of every
//! load, the table) is `zcache-scale`, which `zcache bench --scale N` runs too: see that
//! crate's documentation for what each pass does.
//!
//! Run: `cargo bench -p zcache --bench scale` (sizes: `SCALE_SIZES=10000,100000`;
//! rounds per size, with a row of their medians: `SCALE_ROUNDS=5`).

use zcache::PAGE_SIZE;
use zcache_scale::{SIZES, Setup, Workload};

/// The dev corpus at the build's page size (`Corpus::joined`).
type Corpus = zcache_testdata::Joined<PAGE_SIZE>;

fn dev() -> Corpus {
    zcache_testdata::Corpus::dev().joined::<PAGE_SIZE>()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec());
    let rounds: usize = std::env::var("SCALE_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    let corpus = dev();
    let setups = Workload::ALL.map(Setup::new);
    print!("{}", zcache_scale::header());
    let rows = zcache_scale::sweep(corpus.pages(), &sizes, &setups, rounds, |r| {
        print!("{}", zcache_scale::line(r))
    })
    .expect("scaled run");
    print!(
        "\nmetadata by part, bytes per stored page\n{}",
        zcache_scale::parts_header()
    );
    for r in rows.iter().filter(|r| r.round == 1) {
        print!("{}", zcache_scale::parts_line(r));
    }
    let failures: u64 = rows.iter().map(|r| r.failures()).sum();
    assert_eq!(failures, 0, "wrong loads or pages left after invalidation");
}
