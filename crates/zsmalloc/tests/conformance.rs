//! The shared zpool conformance suite (model-based, against a map model), on the default
//! layout and on layouts chosen to stress merging, long and short chains and compaction.

use zpool_conformance::{Settings, check_zpool_with};
use zsmalloc::{PoolConfig, ZsPool};

fn pool(
    config: PoolConfig,
) -> impl Fn(zpool_conformance::SharedSource) -> ZsPool<zpool_conformance::SharedSource> {
    move |src| ZsPool::with_config(src, config).expect("valid config")
}

const SETTINGS: Settings = Settings {
    cases: 96,
    max_ops: 120,
    failing: false,
    persist: true,
};

#[test]
fn conformance_default_layout() {
    check_zpool_with(
        pool(PoolConfig::DEFAULT),
        Settings {
            cases: 256,
            ..SETTINGS
        },
    );
}

#[test]
fn conformance_default_layout_failing_source() {
    check_zpool_with(
        pool(PoolConfig::DEFAULT),
        Settings {
            cases: 256,
            failing: true,
            ..SETTINGS
        },
    );
}

/// Very coarse classes: many objects share a class, so compaction, spanning objects and
/// multi-frame zspages are exercised by the suite's random lengths (an eighth of a page
/// apart: 512 bytes at 4 KiB).
const COARSE: PoolConfig = PoolConfig {
    max_chain: 7,
    min_class: zpool::PAGE_SIZE / 8,
    small_spacing: zpool::PAGE_SIZE / 8,
    split: zpool::PAGE_SIZE,
    spacing: zpool::PAGE_SIZE / 8,
};

#[test]
fn conformance_coarse_classes() {
    check_zpool_with(pool(COARSE), SETTINGS);
}

#[test]
fn conformance_coarse_classes_failing_source() {
    check_zpool_with(
        pool(COARSE),
        Settings {
            failing: true,
            ..SETTINGS
        },
    );
}

#[test]
fn conformance_fine_classes_short_chains() {
    let config = PoolConfig {
        max_chain: 2,
        ..PoolConfig::FINE
    };
    check_zpool_with(
        pool(config),
        Settings {
            failing: true,
            ..SETTINGS
        },
    );
}

/// A stale handle stays refused while its table entry is freed and reused more often
/// than a 16-bit generation counts (the suite's check), in a normal and in the huge
/// class.
#[test]
fn a_stale_handle_stays_refused_while_its_entry_is_reused() {
    for len in [700, zpool::PAGE_SIZE] {
        zpool_conformance::check_generation_reuse(pool(PoolConfig::DEFAULT), len)
            .unwrap_or_else(|v| panic!("len {len}: {v}"));
    }
}
