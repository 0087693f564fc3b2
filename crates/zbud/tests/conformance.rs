//! zbud against the shared conformance suite (model-based property tests).

use zbud::ZBud;
use zpool_conformance::{Expect, check_zpool, check_zpool_failing};

#[test]
fn conformance() {
    check_zpool(ZBud::new, Expect::LRU);
}

#[test]
fn conformance_under_failing_source() {
    check_zpool_failing(ZBud::new, Expect::LRU);
}
