//! Runs each test of the C harness (c/harness.c) against the real library.

use zcache_kglue_harness::CTest;

/// Runs one C test (`CTest::run` serialises them: they share the instance table).
fn run(t: CTest) {
    let (failed, notes) = t.run();
    println!("{t:?}:\n{notes}");
    assert_eq!(failed, 0, "{t:?}: {failed} C checks failed:\n{notes}");
}

#[test]
fn no_instance() {
    run(CTest::NoInstance);
}

#[test]
fn setup_errors() {
    run(CTest::SetupErrors);
}

#[test]
fn cleancache() {
    run(CTest::Cleancache);
}

#[test]
fn shared_fs() {
    run(CTest::SharedFs);
}

#[test]
fn frontswap() {
    run(CTest::Frontswap);
}

#[test]
fn failing_allocator() {
    run(CTest::FailingAllocator);
}

#[test]
fn limits() {
    run(CTest::Limits);
}

#[test]
fn writeback() {
    run(CTest::Writeback);
}

#[test]
fn stats_compact() {
    run(CTest::StatsCompact);
}

#[test]
fn corruption() {
    run(CTest::Corruption);
}

#[test]
fn instances() {
    run(CTest::Instances);
}

#[test]
fn threads() {
    run(CTest::Threads);
}
