//! Test-only crate: `build.rs` compiles `c/harness.c` (a C host of the zcache C ABI,
//! including the committed `include/zcache.h`) with the `cc` crate, and links it with
//! the real `zcache-kglue` library. `tests/c_harness.rs` runs each C test; `cargo test
//! -p zcache-kglue-harness` runs them all.
//!
//! The C host plays a kernel: a page-frame allocator that can fail (every Nth frame,
//! after N frames, at random), counts outstanding frames and keeps a registry of them
//! (so a test can corrupt pool memory), a swap device for writeback, and a release
//! callback. Each C test returns its number of failed checks; [`log`] gives its notes.

use core::ffi::{CStr, c_char, c_int};

// Link the real library: every `zcache_*` symbol the C code calls comes from it.
use zcache_kglue as _;

// SAFETY: the declarations match c/harness.h (every test `int name(void)`, the log
// `const char *zc_harness_log(void)`); build.rs compiles and links c/harness.c.
unsafe extern "C" {
    fn zc_harness_log() -> *const c_char;
    fn zc_test_no_instance() -> c_int;
    fn zc_test_setup_errors() -> c_int;
    fn zc_test_cleancache() -> c_int;
    fn zc_test_shared_fs() -> c_int;
    fn zc_test_frontswap() -> c_int;
    fn zc_test_failing_allocator() -> c_int;
    fn zc_test_limits() -> c_int;
    fn zc_test_writeback() -> c_int;
    fn zc_test_stats_compact() -> c_int;
    fn zc_test_corruption() -> c_int;
    fn zc_test_instances() -> c_int;
    fn zc_test_threads() -> c_int;
}

/// One C test of the harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CTest {
    /// Every function with handle 0, forged handles, and a torn-down handle.
    NoInstance,
    /// Every malformed configuration; every compressor x allocator pairing.
    SetupErrors,
    /// cleancache: many pages, exclusive gets, duplicates, invalidations, errors.
    Cleancache,
    /// Shared file systems joined by uuid.
    SharedFs,
    /// frontswap: many pages, duplicates, invalidations, swap types, errors.
    Frontswap,
    /// A host allocator that fails every 3rd frame, after 40 frames, at random.
    FailingAllocator,
    /// A frame limit: eat-own-tail eviction, stealing, refusal.
    Limits,
    /// Writeback to the host's swap device; shrink.
    Writeback,
    /// Statistics and compaction, with their error paths.
    StatsCompact,
    /// Bits flipped in every pool frame: exact pages or -ZCACHE_EIO.
    Corruption,
    /// The instance table: independent instances, full table, slot reuse.
    Instances,
    /// Threads on one instance; teardown racing calls.
    Threads,
}

impl CTest {
    /// Every test.
    pub const ALL: [CTest; 12] = [
        CTest::NoInstance,
        CTest::SetupErrors,
        CTest::Cleancache,
        CTest::SharedFs,
        CTest::Frontswap,
        CTest::FailingAllocator,
        CTest::Limits,
        CTest::Writeback,
        CTest::StatsCompact,
        CTest::Corruption,
        CTest::Instances,
        CTest::Threads,
    ];

    /// Runs the test and returns its number of failed checks and its notes (its
    /// figures and every failed check). Tests share the library's instance table and
    /// the harness's static log, so calls are serialised here: concurrent callers wait.
    pub fn run(self) -> (i32, String) {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let f: unsafe extern "C" fn() -> c_int = match self {
            CTest::NoInstance => zc_test_no_instance,
            CTest::SetupErrors => zc_test_setup_errors,
            CTest::Cleancache => zc_test_cleancache,
            CTest::SharedFs => zc_test_shared_fs,
            CTest::Frontswap => zc_test_frontswap,
            CTest::FailingAllocator => zc_test_failing_allocator,
            CTest::Limits => zc_test_limits,
            CTest::Writeback => zc_test_writeback,
            CTest::StatsCompact => zc_test_stats_compact,
            CTest::Corruption => zc_test_corruption,
            CTest::Instances => zc_test_instances,
            CTest::Threads => zc_test_threads,
        };
        // SAFETY: a C function of the harness with no arguments; it only calls the
        // zcache C ABI with arguments that honour its contracts, and libc. No other
        // harness test runs meanwhile (`SERIAL` is held): c/harness.c's `begin()` resets
        // its static log without a lock of its own.
        let failed = unsafe { f() };
        // SAFETY: the harness returns a pointer to its static log buffer, NUL-terminated
        // (zero-initialised, `begin()` writes a NUL, `vsnprintf` terminates what it
        // writes); the test that wrote it has returned and `SERIAL` keeps any other from
        // writing it while it is copied.
        let notes = unsafe { CStr::from_ptr(zc_harness_log()) }
            .to_string_lossy()
            .into_owned();
        (failed, notes)
    }
}
