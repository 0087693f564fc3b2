//! Model-based property tests: random operation sequences over several pools (private
//! and shared, ephemeral and persistent), objects and indices up to u64::MAX, with
//! injected backend failures, checked step by step against a plain map model by the
//! shared interpreter `tmem_core::testing::run` (the fuzz target runs the same one).

use proptest::prelude::*;
use tmem_core::testing::{INDICES, Op, run};
use tmem_core::{LoadMode, PoolKind};

fn index() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..INDICES.len() as u64,
        1 => any::<u64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0u8..5;
    let oid = 0u8..6;
    prop_oneof![
        2 => (0u8..3, prop_oneof![Just(PoolKind::Ephemeral), Just(PoolKind::Persistent)],
              prop::option::of(0u8..2))
            .prop_map(|(client, kind, shared)| Op::NewPool { client, kind, shared }),
        1 => (0u8..3, slot.clone()).prop_map(|(client, slot)| Op::DestroyPool { client, slot }),
        10 => (slot.clone(), oid.clone(), index(), 0u32..8)
            .prop_map(|(slot, oid, index, seed)| Op::Store { slot, oid, index, seed }),
        8 => (slot.clone(), oid.clone(), index(),
              prop_oneof![Just(LoadMode::Default), Just(LoadMode::Exclusive), Just(LoadMode::Keep)])
            .prop_map(|(slot, oid, index, mode)| Op::Load { slot, oid, index, mode }),
        3 => (slot.clone(), oid.clone(), index())
            .prop_map(|(slot, oid, index)| Op::InvalidatePage { slot, oid, index }),
        1 => (slot.clone(), oid.clone()).prop_map(|(slot, oid)| Op::InvalidateObject { slot, oid }),
        2 => (slot.clone(), oid, index(), any::<bool>())
            .prop_map(|(slot, oid, index, right)| Op::CompareInvalidate { slot, oid, index, right }),
        1 => slot.prop_map(|slot| Op::InvalidatePool { slot }),
        1 => (0u8..3).prop_map(|n| Op::FailCreates { n }),
    ]
}

fn sequence() -> impl Strategy<Value = Vec<Op>> {
    // Start with two pools so most operations land somewhere.
    prop::collection::vec(op(), 1..120).prop_map(|mut v| {
        v.insert(
            0,
            Op::NewPool {
                client: 0,
                kind: PoolKind::Persistent,
                shared: None,
            },
        );
        v.insert(
            1,
            Op::NewPool {
                client: 1,
                kind: PoolKind::Ephemeral,
                shared: None,
            },
        );
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1200, ..ProptestConfig::default() })]

    #[test]
    fn tmem_matches_map_model(ops in sequence()) {
        if let Err(e) = run(&ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn decoder_sequences_run_clean() {
    // The fuzz target's decoder over a few fixed byte strings.
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        run(&Op::decode(&bytes)).unwrap();
    }
}
