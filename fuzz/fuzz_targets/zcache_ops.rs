//! zcache front-end operation sequences decoded from fuzzer bytes, run by the same
//! interpreter as `crates/zcache/tests/model.rs`; the first byte picks the allocators
//! and the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcache::AllocatorKind;
use zcache::testing::{Op, Setup, run};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let setup = Setup {
        ephemeral: AllocatorKind::ALL[usize::from(sel & 1)],
        persistent: AllocatorKind::ALL[usize::from((sel >> 1) & 1)],
        max_frames: [12, 40, 200, usize::MAX][usize::from((sel >> 2) & 3)],
        decompress_in_place: sel & 0x10 != 0,
    };
    if let Err(e) = run(setup, &Op::decode(rest)) {
        panic!("{e}");
    }
});
