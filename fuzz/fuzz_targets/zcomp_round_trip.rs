//! Arbitrary pages through every compressor: the round trip is exact, the compressed
//! length is within the algorithm's bound, and same-filled detection matches its
//! definition.
//! The body is `zcache_fuzz::zcomp_round_trip` (src/lib.rs), which the stable driver
//! (tests/stable.rs) runs too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| zcache_fuzz::zcomp_round_trip(data));
