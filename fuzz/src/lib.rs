//! The bodies of the fuzz targets, one function per target, shared by the libFuzzer
//! binaries in `fuzz_targets/` (nightly, cargo-fuzz) and by the stable driver in
//! `tests/stable.rs` (a seeded generator plus replay of `corpus/`), so both run exactly
//! the same checks. Every function panics on a failed check and returns otherwise.

use std::sync::{Mutex, MutexGuard};
use zcomp::{Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN, PAGE_SIZE, Page};

/// A target's body: one input, a panic on a failed check.
pub type Body = fn(&[u8]);

/// Every target: its name (the `[[bin]]` name and the `corpus/` subdirectory) and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("decompress_lz4", decompress_lz4),
    ("decompress_deflate", decompress_deflate),
    ("decompress_lzo", decompress_lzo),
    ("decompress_zstd", decompress_zstd),
    ("zcomp_round_trip", zcomp_round_trip),
    ("tmem_ops", tmem_ops),
    ("zcache_ops", zcache_ops),
];

/// Locks a lazily filled slot even if an earlier input panicked while holding it (the
/// stable driver catches panics; libFuzzer stops at the first).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One compressor per algorithm, made on first use and reused (lzo's dictionary alone
/// is 400+ KiB).
fn with_compressor(a: Algorithm, f: impl FnOnce(&mut AnyCompressor)) {
    static SLOTS: Mutex<Vec<AnyCompressor>> = Mutex::new(Vec::new());
    let mut slots = lock(&SLOTS);
    let i = match slots.iter().position(|c| c.algorithm() == a) {
        Some(i) => i,
        None => {
            slots.push(AnyCompressor::new(a).unwrap());
            slots.len() - 1
        }
    };
    f(&mut slots[i]);
}

/// Arbitrary bytes into `c`'s decompressor: an error naming the algorithm, or a whole
/// page; never a panic, an out-of-bounds access or a hang.
fn check_decompress(c: &mut AnyCompressor, data: &[u8]) {
    let mut page = [0xA5u8; PAGE_SIZE];
    match c.decompress(data, &mut page) {
        Ok(()) => {
            // Ok means exactly one page came out (zcomp checks the decoded length). Such
            // a page, odd as it may be, must also survive a compress/decompress round
            // trip, which feeds the compressor pages no test would think of.
            let mut scratch = [0u8; MAX_COMPRESSED_LEN];
            let len = c.compress(&page, &mut scratch).unwrap();
            let mut again = [0u8; PAGE_SIZE];
            c.decompress(&scratch[..len], &mut again).unwrap();
            assert!(again == page);
        }
        Err(e) => assert_eq!(e.algorithm(), c.algorithm()),
    }
}

/// `decompress_lz4`: arbitrary bytes into the lz4 decompressor.
pub fn decompress_lz4(data: &[u8]) {
    with_compressor(Algorithm::Lz4, |c| check_decompress(c, data));
}

/// `decompress_deflate`: arbitrary bytes into the raw deflate decompressor.
pub fn decompress_deflate(data: &[u8]) {
    with_compressor(Algorithm::Deflate, |c| check_decompress(c, data));
}

/// `decompress_lzo`: arbitrary bytes into the lzo decompressor.
pub fn decompress_lzo(data: &[u8]) {
    with_compressor(Algorithm::Lzo, |c| check_decompress(c, data));
}

/// `decompress_zstd`: arbitrary bytes into the zstd decompressor, as they are and behind
/// a zstd magic number: random bytes almost never start with one, and libzstd (C) carries
/// no coverage instrumentation to guide the fuzzer.
pub fn decompress_zstd(data: &[u8]) {
    let mut framed = Vec::with_capacity(data.len() + 4);
    framed.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    framed.extend_from_slice(data);
    with_compressor(Algorithm::Zstd, |c| {
        check_decompress(c, data);
        check_decompress(c, &framed);
    });
}

/// `zcomp_round_trip`: a page built from the input (the input repeated to fill 4096
/// bytes: short inputs give repetitive, compressible pages, long ones random-looking
/// pages) round-trips exactly through every compressor, within each algorithm's size
/// bound, and same-filled detection matches its definition.
pub fn zcomp_round_trip(data: &[u8]) {
    let mut page: Page = [0u8; PAGE_SIZE];
    if !data.is_empty() {
        for (i, b) in page.iter_mut().enumerate() {
            *b = data[i % data.len()];
        }
    }
    let naive = page.chunks_exact(8).all(|w| w == &page[..8]);
    assert_eq!(zcomp::same_filled(&page).is_some(), naive);

    let mut scratch = [0u8; MAX_COMPRESSED_LEN];
    let mut back = [0u8; PAGE_SIZE];
    for &a in Algorithm::AVAILABLE {
        with_compressor(a, |c| {
            let len = c.compress(&page, &mut scratch).unwrap();
            assert!(len <= c.algorithm().max_compressed_len());
            c.decompress(&scratch[..len], &mut back).unwrap();
            assert!(back == page);
        });
    }
}

/// `tmem_ops`: tmem-core operation sequences decoded from the bytes, run by the same
/// interpreter as `crates/tmem-core/tests/model.rs`: any divergence from the map model
/// panics.
pub fn tmem_ops(data: &[u8]) {
    use tmem_core::testing::{Op, run};
    if let Err(e) = run(&Op::decode(data)) {
        panic!("{e}");
    }
}

/// `zcache_ops`: zcache front-end operation sequences decoded from the bytes, run by the
/// same interpreter as `crates/zcache/tests/model.rs`; the first byte picks the
/// allocators, the frame limit and in-place decompression.
pub fn zcache_ops(data: &[u8]) {
    use zcache::AllocatorKind;
    use zcache::testing::{Op, Setup, run};
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let setup = Setup {
        ephemeral: AllocatorKind::ALL[usize::from(sel & 1)],
        persistent: AllocatorKind::ALL[usize::from((sel >> 1) & 1)],
        max_frames: [12, 40, 200, usize::MAX][usize::from((sel >> 2) & 3)],
        decompress_in_place: sel & 0x10 != 0,
    };
    if let Err(e) = run(setup, &Op::decode(rest)) {
        panic!("{e}");
    }
}
