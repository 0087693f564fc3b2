//! zcache front-end operation sequences decoded from fuzzer bytes, run by the same
//! interpreter as `crates/zcache/tests/model.rs`; the first byte picks the allocators
//! and the frame limit.
//! The body is `zcache_fuzz::zcache_ops` (src/lib.rs), which the stable driver
//! (tests/stable.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| zcache_fuzz::zcache_ops(data));
