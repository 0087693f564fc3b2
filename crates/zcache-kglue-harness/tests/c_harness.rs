//! Runs each test of the C harness (c/harness.c) against the real library.

use std::sync::Mutex;

use zcache_kglue_harness::{CTest, log};

/// The C tests share the library's instance table (and the harness's log): one at a
/// time.
static SERIAL: Mutex<()> = Mutex::new(());

fn run(t: CTest) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let failed = t.run();
    let notes = log();
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
