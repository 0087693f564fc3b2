//! Arbitrary bytes into the zstd decompressor (also behind a zstd magic number): an error
//! or a whole page, never a panic, an out-of-bounds access or a hang.
//! The body is `zcache_fuzz::decompress_zstd` (src/lib.rs), which the stable driver
//! (tests/stable.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| zcache_fuzz::decompress_zstd(data));
