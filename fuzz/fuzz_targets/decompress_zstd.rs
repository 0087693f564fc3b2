//! Arbitrary bytes into the zstd decompressor: an error or a whole page, never a panic,
//! an out-of-bounds access or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;
use zcomp::{Algorithm, AnyCompressor, Compressor, PAGE_SIZE};

static COMPRESSOR: Mutex<Option<AnyCompressor>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut slot = COMPRESSOR.lock().unwrap();
    let c = slot.get_or_insert_with(|| AnyCompressor::new(Algorithm::Zstd).unwrap());
    // Also try the input behind a zstd magic number: random bytes almost never start
    // with one, and libzstd (C) carries no coverage instrumentation to guide the fuzzer.
    let mut framed = Vec::with_capacity(data.len() + 4);
    framed.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    framed.extend_from_slice(data);
    check(c, data);
    check(c, &framed);
});

fn check(c: &mut AnyCompressor, data: &[u8]) {
    let mut page = [0xA5u8; PAGE_SIZE];
    match c.decompress(data, &mut page) {
        Ok(()) => {
            // Ok means exactly one page came out (zcomp checks the decoded length). Such
            // a page, odd as it may be, must also survive a compress/decompress round
            // trip, which feeds the compressor pages no test would think of.
            let mut scratch = [0u8; zcomp::MAX_COMPRESSED_LEN];
            let len = c.compress(&page, &mut scratch).unwrap();
            let mut again = [0u8; PAGE_SIZE];
            c.decompress(&scratch[..len], &mut again).unwrap();
            assert!(again == page);
        }
        Err(e) => assert_eq!(e.algorithm(), Algorithm::Zstd),
    }
}
