//! Model-based property tests of both front ends (shared interpreter:
//! `zcache::testing::run`), with every allocator pairing, a small frame limit (so
//! eviction, "eat its own tail", stealing and writeback happen), and injected page
//! source failures.

use proptest::prelude::*;
use zcache::AllocatorKind;
use zcache::testing::{Op, Setup};

/// Debug builds of the whole stack use far more stack than release builds (the
/// interpreter's page-sized temporaries are not merged): give the model a roomy thread.
fn run(setup: Setup, ops: &[Op]) -> Result<(), String> {
    let ops = ops.to_vec();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || zcache::testing::run(setup, &ops))
        .expect("spawn")
        .join()
        .expect("model thread panicked")
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0u8..3;
    let off = 0u16..200;
    let fs = 0u8..3;
    let file = 0u8..4;
    let index = 0u16..64;
    prop_oneof![
        2 => t.clone().prop_map(|t| Op::SwapInit { t }),
        10 => (t.clone(), off.clone(), any::<u32>()).prop_map(|(t, off, seed)| Op::SwapStore { t, off, seed }),
        6 => (t.clone(), off.clone()).prop_map(|(t, off)| Op::SwapLoad { t, off }),
        2 => (t.clone(), off).prop_map(|(t, off)| Op::SwapInvalidate { t, off }),
        1 => t.prop_map(|t| Op::SwapInvalidateArea { t }),
        2 => (fs.clone(), any::<bool>()).prop_map(|(fs, shared)| Op::CcInit { fs, shared }),
        10 => (fs.clone(), file.clone(), index.clone(), any::<u32>())
            .prop_map(|(fs, file, index, seed)| Op::CcPut { fs, file, index, seed }),
        6 => (fs.clone(), file.clone(), index.clone()).prop_map(|(fs, file, index)| Op::CcGet { fs, file, index }),
        2 => (fs.clone(), file.clone(), index).prop_map(|(fs, file, index)| Op::CcInvalidatePage { fs, file, index }),
        1 => (fs.clone(), file).prop_map(|(fs, file)| Op::CcInvalidateInode { fs, file }),
        1 => fs.prop_map(|fs| Op::CcInvalidateFs { fs }),
        1 => (0u8..30).prop_map(|target| Op::Shrink { target }),
        1 => Just(Op::Compact),
        1 => (0u8..32).prop_map(|budget| Op::Reclaim { budget }),
        1 => (0u8..32).prop_map(|nr| Op::ShrinkerScan { nr }),
        1 => (0u8..4).prop_map(|mode| Op::FailFrames { mode }),
    ]
}

fn sequence() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..150).prop_map(|mut v| {
        v.insert(0, Op::SwapInit { t: 0 });
        v.insert(
            1,
            Op::CcInit {
                fs: 0,
                shared: false,
            },
        );
        v
    })
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![Just(AllocatorKind::Zbud), Just(AllocatorKind::Zsmalloc)],
        prop_oneof![Just(AllocatorKind::Zbud), Just(AllocatorKind::Zsmalloc)],
        prop_oneof![Just(12usize), Just(40), Just(usize::MAX)],
        any::<bool>(),
    )
        .prop_map(
            |(ephemeral, persistent, max_frames, decompress_in_place)| Setup {
                ephemeral,
                persistent,
                max_frames,
                decompress_in_place,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn front_ends_match_the_model(setup in setup(), ops in sequence()) {
        if let Err(e) = run(setup, &ops) {
            prop_assert!(false, "{:?}: {}", setup, e);
        }
    }
}

#[test]
fn decoded_byte_sequences_run_clean() {
    let mut x: u64 = 0x0123_4567_89ab_cdef;
    for round in 0..40 {
        let bytes: Vec<u8> = (0..1200)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let setup = Setup {
            ephemeral: AllocatorKind::ALL[round % 2],
            persistent: AllocatorKind::ALL[(round / 2) % 2],
            max_frames: [12, 40, usize::MAX][round % 3],
            decompress_in_place: round % 5 < 2,
        };
        run(setup, &Op::decode(&bytes)).unwrap();
    }
}
