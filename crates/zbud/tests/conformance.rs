//! zbud against the shared conformance suite (model-based property tests, and stale
//! handles of an entry reused more often than a 16-bit generation counts).

use zbud::ZBud;
use zpool_conformance::{check_generation_reuse, check_zpool, check_zpool_failing};

#[test]
fn conformance() {
    check_zpool(ZBud::new);
}

#[test]
fn conformance_under_failing_source() {
    check_zpool_failing(ZBud::new);
}

#[test]
fn a_stale_handle_stays_refused_while_its_entry_is_reused() {
    check_generation_reuse(ZBud::new, 1500).unwrap();
}
