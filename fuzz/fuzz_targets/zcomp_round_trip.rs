//! Arbitrary pages through every compressor: the round trip is exact, the compressed
//! length is within the algorithm's bound, and same-filled detection matches its
//! definition.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;
use zcomp::{Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN, PAGE_SIZE, Page};

static COMPRESSORS: Mutex<Vec<AnyCompressor>> = Mutex::new(Vec::new());

fuzz_target!(|data: &[u8]| {
    // Build a page from the input: repeat it to fill 4096 bytes (short inputs give
    // repetitive, compressible pages; long ones random-looking pages).
    let mut page: Page = [0u8; PAGE_SIZE];
    if !data.is_empty() {
        for (i, b) in page.iter_mut().enumerate() {
            *b = data[i % data.len()];
        }
    }
    let naive = page.chunks_exact(8).all(|w| w == &page[..8]);
    assert_eq!(zcomp::same_filled(&page).is_some(), naive);

    let mut cs = COMPRESSORS.lock().unwrap();
    if cs.is_empty() {
        for &a in Algorithm::AVAILABLE {
            cs.push(AnyCompressor::new(a).unwrap());
        }
    }
    let mut scratch = [0u8; MAX_COMPRESSED_LEN];
    let mut back = [0u8; PAGE_SIZE];
    for c in cs.iter_mut() {
        let len = c.compress(&page, &mut scratch).unwrap();
        assert!(len <= c.algorithm().max_compressed_len());
        c.decompress(&scratch[..len], &mut back).unwrap();
        assert!(back == page);
    }
});
