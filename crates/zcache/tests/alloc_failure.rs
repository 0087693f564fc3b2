//! Allocation failure is an error, never an abort, a panic or a lost page.
//!
//! This test binary's global allocator fails on request: the Nth allocation made by the
//! scenario's thread (`Plan::Once`), or the Nth and every later one (`Plan::From`, the
//! heap running dry). The scenario runs the whole life of a `Zcache`: create, mount
//! (cleancache `init_fs`), swapon (frontswap `init`), stores, loads, overwrites,
//! invalidations, reclaim with writeback, shrink, compaction, area and file-system
//! invalidation, and drop. It is swept over every N up to the number of allocations an
//! unfailed run makes. For every N:
//!
//! * every call returns (an abort would end the test binary, a panic fails the test);
//! * every error is one that the API documents for memory shortage (`NoMemory`,
//!   `NoFrame`, or a page the compressor could not shrink enough, which depends on no
//!   allocation) or follows from an earlier such error (a store to a swap type whose
//!   `init` failed is `UnknownSwapType`);
//! * every persistent page whose store returned `Ok` is still loadable with its bytes,
//!   or was written back (the host then holds exactly those bytes), when checked with
//!   the allocator working again; a failed store of one slot loses no other slot;
//! * every ephemeral page loaded is the one stored (it may be gone, never changed);
//! * after the drop, every frame is back at the page source.
//!
//! The host's own callbacks (the writeback device's log) allocate with failure
//! suspended: they stand for host code, not zcache's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use zcache::testing::test_page;
use zcache::{Config, Oid, SlotClaim, Writeback, ZError, Zcache, ZcacheError};
use zpool::testing::CountingSource;
use zpool::{HeapPageSource, PAGE_SIZE, Page};

/// When the scenario thread's allocations fail.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Count allocations, fail none.
    Count,
    /// Fail the Nth allocation (1-based) only.
    Once(u64),
    /// Fail the Nth allocation and every one after it.
    From(u64),
}

thread_local! {
    /// Whether this thread's allocations are being counted (and may fail).
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static PLAN: Cell<Plan> = const { Cell::new(Plan::Count) };
    static SEEN: Cell<u64> = const { Cell::new(0) };
    static FAILED: Cell<u64> = const { Cell::new(0) };
    static TRACE: Cell<bool> = const { Cell::new(false) };
}

struct FailingAlloc;

fn should_fail() -> bool {
    // `try_with`: allocations during thread-local teardown are never failed.
    ARMED
        .try_with(|armed| {
            if !armed.get() {
                return false;
            }
            let n = SEEN.get() + 1;
            SEEN.set(n);
            let fail = match PLAN.get() {
                Plan::Count => false,
                Plan::Once(at) => n == at,
                Plan::From(at) => n >= at,
            };
            if fail {
                FAILED.set(FAILED.get() + 1);
                if TRACE.get() {
                    // Diagnostics (ZCACHE_ALLOC_TRACE=1): where the failure was injected,
                    // so an abort can be traced to its allocation.
                    armed.set(false);
                    eprintln!(
                        "injected failure {n} ({:?}):\n{}",
                        PLAN.get(),
                        std::backtrace::Backtrace::force_capture()
                    );
                    armed.set(true);
                }
            }
            fail
        })
        .unwrap_or(false)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, or
// returns null, which `GlobalAlloc` allows for any allocation request.
unsafe impl GlobalAlloc for FailingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if should_fail() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `GlobalAlloc::alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if should_fail() {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if should_fail() {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`; `ptr` came from this allocator, hence from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, hence from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: FailingAlloc = FailingAlloc;

/// Runs `f` (a call into zcache) with failure injection on: only zcache's own
/// allocations are counted and failed, not the test's model bookkeeping.
fn zc<T>(f: impl FnOnce() -> T) -> T {
    ARMED.set(true);
    let r = f();
    ARMED.set(false);
    r
}

/// Suspends failure injection (and counting) while it lives: host code.
struct HostCode(bool);
impl HostCode {
    fn enter() -> HostCode {
        HostCode(ARMED.with(|a| a.replace(false)))
    }
}
impl Drop for HostCode {
    fn drop(&mut self) {
        ARMED.with(|a| a.set(self.0));
    }
}

fn arm(plan: Plan) {
    PLAN.set(plan);
    SEEN.set(0);
    FAILED.set(0);
}

/// A swap device that accepts every claim and write and logs the bytes.
#[derive(Default)]
struct Device {
    log: Mutex<BTreeMap<u64, Vec<u8>>>,
    next: Mutex<u64>,
}

impl Writeback for Device {
    fn claim(&self, _swap_type: u32, _offset: u64) -> Option<u64> {
        let _host = HostCode::enter();
        let mut n = self.next.lock().unwrap();
        *n += 1;
        Some(*n)
    }
    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        let _host = HostCode::enter();
        self.log.lock().unwrap().insert(claim.offset, page.to_vec());
        true
    }
    fn release(&self, _claim: SlotClaim, _written: bool) {}
}

/// An error the API documents for memory shortage, or for a page that does not
/// compress (independent of allocation).
fn shortage(e: &ZcacheError) -> bool {
    matches!(
        e,
        ZcacheError::NoMemory
            | ZcacheError::Backend(
                ZError::NoMemory
                    | ZError::NoFrame
                    | ZError::CompressPoor
                    | ZError::MeanCompressPoor
                    | ZError::TooLarge
            )
    )
}

const SLOTS: u64 = 48;

/// Seeds of the pages stored (test pages of every kind: zero, same-filled, text-like,
/// random).
fn seed(i: u64, round: u64) -> u32 {
    (i * 7 + round * 3) as u32
}

/// Runs the scenario under `plan`; returns (allocations seen, failures injected).
fn scenario(plan: Plan, drop_live: bool) -> (u64, u64) {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    let dev = Arc::new(Device::default());
    let cfg = Config {
        // A limit the stores reach, so reclaim, writeback and compaction all run.
        max_frames: 20,
        accept_threshold_percent: 100,
        ..Config::default()
    };
    arm(plan);
    let outcome = run(&src, &dev, cfg, drop_live);
    let counts = (SEEN.get(), FAILED.get());
    if let Err(why) = outcome {
        panic!("{plan:?} (of {} allocations): {why}", counts.0);
    }
    assert_eq!(src.live(), 0, "{plan:?}: frames leaked");
    counts
}

/// `drop_live`: drop the `Zcache` with its pools still holding pages (teardown drains
/// them), instead of invalidating the area and the file system first.
fn run(
    src: &Arc<CountingSource>,
    dev: &Arc<Device>,
    cfg: Config,
    drop_live: bool,
) -> Result<(), String> {
    let z = match zc(|| Zcache::with_writeback(cfg, src.clone(), dev.clone())) {
        Ok(z) => z,
        Err(e) if shortage(&e) => return Ok(()),
        Err(e) => return Err(format!("new: {e}")),
    };
    let fs = match zc(|| z.cleancache().init_fs()) {
        Ok(p) => Some(p),
        Err(e) if shortage(&e) => None,
        Err(e) => return Err(format!("init_fs: {e}")),
    };
    let swap_on = match zc(|| z.frontswap().init(0)) {
        Ok(()) => true,
        Err(e) if shortage(&e) => false,
        Err(e) => return Err(format!("init: {e}")),
    };
    // Persistent pages acknowledged: slot -> seed. Ephemeral pages put: index -> seed.
    let mut pers: BTreeMap<u64, u32> = BTreeMap::new();
    let mut eph: BTreeMap<u64, u32> = BTreeMap::new();
    let file = Oid::new(3, 0, 0);
    let mut out: Box<Page> = Box::new([0; PAGE_SIZE]);

    let store = |z: &Zcache, pers: &mut BTreeMap<u64, u32>, i: u64, s: u32| {
        let page = test_page(s);
        match zc(|| z.frontswap().store(0, i, &page)) {
            Ok(()) => {
                pers.insert(i, s);
                dev.log.lock().unwrap().remove(&i);
                Ok(())
            }
            // A failed store leaves no older copy behind (no stale data).
            Err(e) if shortage(&e) || (!swap_on && e == ZcacheError::UnknownSwapType) => {
                pers.remove(&i);
                Ok(())
            }
            Err(e) => Err(format!("store {i}: {e}")),
        }
    };
    for round in 0..2 {
        for i in 0..SLOTS {
            store(&z, &mut pers, i, seed(i, round))?;
            if let Some(pool) = fs {
                let s = seed(i, round) + 1;
                let page = test_page(s);
                zc(|| z.cleancache().put_page(pool, file, i, &page));
                eph.insert(i, s);
            }
        }
        check(&z, fs, file, &pers, &eph, dev, &mut out, false)?;
        zc(|| {
            z.reclaim(8);
            z.shrinker_scan(4);
            z.compact();
        });
    }
    for i in (0..SLOTS).step_by(3) {
        match zc(|| z.frontswap().invalidate_page(0, i)) {
            Ok(_) => {
                pers.remove(&i);
                dev.log.lock().unwrap().remove(&i);
            }
            Err(e) if !swap_on && e == ZcacheError::UnknownSwapType => {}
            Err(e) => return Err(format!("invalidate {i}: {e}")),
        }
        if let Some(pool) = fs {
            zc(|| z.cleancache().invalidate_page(pool, file, i));
            eph.remove(&i);
        }
    }
    zc(|| z.shrink(4));
    // With the allocator working again, nothing acknowledged is lost or changed.
    check(&z, fs, file, &pers, &eph, dev, &mut out, true)?;
    if drop_live {
        zc(|| drop(z));
        return Ok(());
    }
    if let Some(pool) = fs {
        match zc(|| z.cleancache().invalidate_fs(pool)) {
            Ok(()) => {}
            Err(e) if shortage(&e) => {}
            Err(e) => return Err(format!("invalidate_fs: {e}")),
        }
    }
    match zc(|| z.frontswap().invalidate_area(0)) {
        Ok(_) => {}
        Err(e) if !swap_on && e == ZcacheError::UnknownSwapType => {}
        Err(e) => return Err(format!("invalidate_area: {e}")),
    }
    zc(|| drop(z));
    Ok(())
}

/// Loads every page the models hold. `strict`: a persistent page must be found (or be
/// in the device's log); otherwise a load may also fail for memory.
#[allow(clippy::too_many_arguments)]
fn check(
    z: &Zcache,
    fs: Option<zcache::PoolId>,
    file: Oid,
    pers: &BTreeMap<u64, u32>,
    eph: &BTreeMap<u64, u32>,
    dev: &Device,
    out: &mut Page,
    strict: bool,
) -> Result<(), String> {
    for (&i, &s) in pers {
        let want = test_page(s);
        let r = if strict {
            z.frontswap().load(0, i, out)
        } else {
            zc(|| z.frontswap().load(0, i, out))
        };
        match r {
            Ok(true) if *out == want => {}
            Ok(true) => return Err(format!("slot {i}: wrong bytes")),
            Ok(false) => match dev.log.lock().unwrap().get(&i) {
                Some(v) if v.as_slice() == want.as_slice() => {}
                Some(_) => return Err(format!("slot {i}: written back with wrong bytes")),
                None => return Err(format!("slot {i}: acknowledged page lost")),
            },
            Err(e) if !strict && shortage(&e) => {}
            Err(e) => return Err(format!("load {i}: {e}")),
        }
    }
    if let Some(pool) = fs {
        for (&i, &s) in eph {
            let hit = if strict {
                z.cleancache().get_page(pool, file, i, out)
            } else {
                zc(|| z.cleancache().get_page(pool, file, i, out))
            };
            if hit && *out != test_page(s) {
                return Err(format!("ephemeral page {i}: wrong bytes"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_allocation_failure_is_an_error() {
    TRACE.set(std::env::var_os("ZCACHE_ALLOC_TRACE").is_some());
    let (total, failed) = scenario(Plan::Count, false);
    assert_eq!(failed, 0);
    assert_eq!(scenario(Plan::Count, true).1, 0);
    assert!(total > 50, "the scenario allocates ({total})");
    let mut injected = 0;
    for n in 1..=total + 1 {
        // Both teardowns, each under both plans, over the sweep.
        injected += scenario(Plan::Once(n), n % 2 == 0).1;
        injected += scenario(Plan::From(n), n % 2 == 1).1;
    }
    println!("{total} allocations per run; {injected} failures injected over the sweep");
    assert!(
        injected >= total,
        "every allocation was failed at least once"
    );
}
