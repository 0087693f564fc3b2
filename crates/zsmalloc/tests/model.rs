//! Model-based property test aimed at what the shared suite's random lengths rarely
//! reach: many objects in the same few classes, so zspages fill, span frames, empty out
//! and get compacted. Runs the shared interpreter (map model, byte-exact contents,
//! stale/forged handles, frame accounting against the page source) on sequences whose
//! lengths come from a narrow band, with frequent frees, whole compactions and bounded
//! compaction steps.

use proptest::prelude::*;
use zpool_conformance::{Op, fail_mode_strategy, run_ops};
use zsmalloc::{PoolConfig, ZsPool};

fn ops(failing: bool) -> impl Strategy<Value = Vec<Op>> {
    // A band of a few classes: either small objects (many per frame) or objects around
    // 1-3 KiB that span frames of long zspages.
    // (Bounds for 4 KiB pages, scaled by the page size.)
    let s = zpool::PAGE_SIZE / 4096;
    let band = prop_oneof![
        Just((1usize, 120 * s)),
        Just((900 * s, 1200 * s)),
        Just((2000 * s, 3000 * s)),
        Just((3900 * s, 4096 * s))
    ];
    band.prop_flat_map(move |(lo, hi)| {
        let len = lo..=hi;
        let op = prop_oneof![
            8 => (len.clone(), any::<u64>()).prop_map(|(len, seed)| Op::Store { len, seed }),
            3 => (len, any::<u64>()).prop_map(|(len, seed)| Op::Malloc { len, seed }),
            6 => any::<usize>().prop_map(|slot| Op::Free { slot }),
            2 => (any::<usize>(), 0u8..8).prop_map(|(slot, extra)| Op::Read { slot, extra }),
            1 => (any::<usize>(), any::<u64>()).prop_map(|(slot, seed)| Op::Write { slot, seed }),
            1 => any::<usize>().prop_map(|slot| Op::Stale { slot }),
            1 => (any::<u64>(), Just(true)).prop_map(|(raw, near)| Op::Forged { raw, near }),
            2 => Just(Op::Compact),
            2 => (prop_oneof![Just(1u8), 0u8..24], any::<bool>())
                .prop_map(|(max_moves, until_done)| Op::CompactStep { max_moves, until_done }),
            if failing { 1 } else { 0 } => fail_mode_strategy().prop_map(Op::SetFail),
        ];
        prop::collection::vec(op, 1..400)
    })
}

fn make(
    config: PoolConfig,
) -> impl Fn(zpool_conformance::SharedSource) -> ZsPool<zpool_conformance::SharedSource> {
    move |src| ZsPool::with_config(src, config).expect("valid config")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn same_class_churn_and_compaction(ops in ops(false), drop_live in prop::bool::weighted(0.2)) {
        if let Err(v) = run_ops(make(PoolConfig::DEFAULT), &ops, drop_live) {
            return Err(TestCaseError::fail(v.0));
        }
    }

    #[test]
    fn same_class_churn_and_compaction_failing_source(ops in ops(true), drop_live in prop::bool::weighted(0.2)) {
        let config = PoolConfig { max_chain: 4, ..PoolConfig::DEFAULT };
        if let Err(v) = run_ops(make(config), &ops, drop_live) {
            return Err(TestCaseError::fail(v.0));
        }
    }
}
