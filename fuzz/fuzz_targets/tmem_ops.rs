//! tmem-core operation sequences decoded from fuzzer bytes, run by the same interpreter
//! as `crates/tmem-core/tests/model.rs`: any divergence from the map model panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tmem_core::testing::{Op, run};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = run(&Op::decode(data)) {
        panic!("{e}");
    }
});
