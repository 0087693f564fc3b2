//! zbud against the shared conformance suite (model-based property tests, and stale
//! handles of an entry reused more often than a 16-bit generation counts), with the
//! default shards (4: one thread's objects all in shard 0), one shard, and pools whose
//! stores start at the next shard round robin (so one thread's objects, frees, stats
//! and compaction rounds span every shard).

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

#[test]
fn conformance_one_shard() {
    check_zpool(|s| ZBud::with_shards(s, 1));
    check_zpool_failing(|s| ZBud::with_shards(s, 1));
    check_generation_reuse(|s| ZBud::with_shards(s, 1), 1500).unwrap();
}

#[test]
fn conformance_objects_spread_over_shards() {
    check_zpool(|s| ZBud::with_shards_round_robin(s, 4));
    check_zpool(|s| ZBud::with_shards_round_robin(s, 64));
    check_zpool_failing(|s| ZBud::with_shards_round_robin(s, 8));
    check_generation_reuse(|s| ZBud::with_shards_round_robin(s, 2), 1500).unwrap();
}
