//! The process-global count of held guards (feature `lock-count`; tests only).

#[cfg(feature = "lock-count")]
// A plain `core` atomic even under loom: test instrumentation, not part of any
// modelled protocol.
static HELD: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// zcache-rs locks held right now by any thread: counted only with the `lock-count`
/// feature (tests), always 0 without it.
pub fn held_locks() -> usize {
    #[cfg(feature = "lock-count")]
    {
        HELD.load(core::sync::atomic::Ordering::SeqCst)
    }
    #[cfg(not(feature = "lock-count"))]
    {
        0
    }
}

/// One more guard lives (no-op without `lock-count`).
#[inline(always)]
pub(super) fn acquired() {
    #[cfg(feature = "lock-count")]
    HELD.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
}

/// One guard fewer (no-op without `lock-count`).
#[cfg(any(loom, feature = "lock-count"))]
#[inline(always)]
pub(super) fn released() {
    #[cfg(feature = "lock-count")]
    HELD.fetch_sub(1, core::sync::atomic::Ordering::SeqCst);
}
