//! tmem-core operation sequences decoded from fuzzer bytes, run by the same interpreter
//! as `crates/tmem-core/tests/model.rs`: any divergence from the map model panics.
//! The body is `zcache_fuzz::tmem_ops` (src/lib.rs), which the stable driver
//! (tests/stable.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| zcache_fuzz::tmem_ops(data));
