//! The `extern "C"` functions.
//!
//! Conventions, for every function:
//! * the handle is checked first: a handle that names no live instance gives
//!   `-ZCACHE_ENODEV` whatever the other arguments are;
//! * pointer arguments are checked for null (and alignment, where the type has one)
//!   before use: `-ZCACHE_EINVAL`;
//! * page arguments point to `ZCACHE_PAGE_SIZE` bytes (the build's page size) the host
//!   has mapped, valid for the duration of the call and not accessed by anyone else
//!   during it (read for put/store, written for get/load), and never into a frame the
//!   host gave zcache;
//! * no function panics, blocks or sleeps; none calls back into the host except through
//!   the configured callbacks.
//!
//! `#[unsafe(no_mangle)]` on every function: each exported name starts with `zcache_`
//! and is declared once, in `include/zcache.h`; no C library or kernel symbol has such
//! a name, and the host defines none of them (it defines only the `zcache_host_*`
//! functions the staticlib declares), so no two definitions of one symbol meet in a link.

use core::ffi::{c_int, c_void};

use tmem_core::{Oid, PoolId};
use zcache::{Page, file_key_from_handle};

use crate::errno::{ZCACHE_EINVAL, ZCACHE_ENOENT, ZCACHE_ENOSPC, errno_of};
use crate::host::{ZCACHE_PAGE_SIZE, ZcacheConfig, build};
use crate::stats::{ZcacheShrinkResult, ZcacheStats};
use crate::table::{self, ZcacheHandle};

/// A cleancache file key: the kernel's `struct cleancache_filekey` (a union of an inode
/// number and up to six u32 of an exportfs file handle, 24 bytes, zero-filled by the
/// kernel before use), copied byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZcacheFilekey {
    /// The key's six 32-bit words.
    pub fh: [u32; 6],
}

impl ZcacheFilekey {
    fn oid(&self) -> Oid {
        file_key_from_handle(self.fh)
    }
}

/// A 128-bit uuid naming a shared file system: the kernel's `uuid_t`, byte for byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZcacheUuid {
    /// The uuid's bytes.
    pub b: [u8; 16],
}

macro_rules! instance {
    ($h:expr) => {
        match table::get($h) {
            Ok(i) => i,
            Err(e) => return e.into(),
        }
    };
}

/// A cleancache pool id as zcache's, or `-ZCACHE_EINVAL` for a negative one.
fn pool_of(pool_id: c_int) -> Result<PoolId, c_int> {
    u32::try_from(pool_id)
        .map(PoolId)
        .map_err(|_| -ZCACHE_EINVAL)
}

/// # Safety
/// `p` is null or points to `ZCACHE_PAGE_SIZE` readable bytes valid for `'a`, not written meanwhile,
/// and not inside a frame the host gave zcache (zcache writes its frames while it holds
/// the returned borrow).
unsafe fn page_ref<'a>(p: *const c_void) -> Option<&'a Page> {
    // SAFETY: the caller's contract; `Page` is a byte array (alignment 1) and `as_ref`
    // turns null into `None`.
    unsafe { p.cast::<Page>().as_ref() }
}

/// # Safety
/// `p` is null or points to `ZCACHE_PAGE_SIZE` writable bytes valid for `'a`, not accessed by anyone
/// else meanwhile, and not inside a frame the host gave zcache.
unsafe fn page_mut<'a>(p: *mut c_void) -> Option<&'a mut Page> {
    // SAFETY: as in `page_ref`, with exclusive access.
    unsafe { p.cast::<Page>().as_mut() }
}

/// Creates a zcache instance and writes its handle to `*handle_out`. Returns 0, or:
/// `-ZCACHE_EINVAL` (a null or misaligned pointer, `config->size` not
/// `sizeof(struct zcache_config)`, `page_size` not `ZCACHE_PAGE_SIZE`, a missing frame callback, an
/// out-of-range or unknown field, unknown flag bits), `-ZCACHE_ENOSPC` (all
/// `ZCACHE_MAX_INSTANCES` slots in use), `-ZCACHE_ENOMEM`.
///
/// Setup runs in process context: it allocates the instance's fixed structures
/// (compression contexts, allocator tables) from the global allocator.
///
/// # Safety
/// `config` is null or points to a readable `struct zcache_config` (its `size` field is
/// read first, and the rest only if `size` matches); `handle_out` is null or points to
/// a writable `uint64_t`. The callbacks in `config` honour the contracts in their
/// documentation, for as long as the instance lives (until `release` is called).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_setup(
    config: *const ZcacheConfig,
    handle_out: *mut ZcacheHandle,
) -> c_int {
    if config.is_null() || !config.is_aligned() || handle_out.is_null() || !handle_out.is_aligned()
    {
        return -ZCACHE_EINVAL;
    }
    // SAFETY: non-null and aligned; the caller's contract makes at least the leading
    // `size` field readable (`ZcacheConfig` is repr(C) with `size` first).
    let size = unsafe { config.cast::<u32>().read() };
    if usize::try_from(size).ok() != Some(core::mem::size_of::<ZcacheConfig>()) {
        return -ZCACHE_EINVAL;
    }
    // SAFETY: the caller's contract: a whole, readable `struct zcache_config` (its
    // `size` says so). Every field is an integer, a raw pointer or a nullable function
    // pointer, so any bit pattern the host wrote is a valid value.
    let cfg = unsafe { config.read() };
    let inst = match build(&cfg) {
        Ok(i) => i,
        Err(e) => return e,
    };
    match table::insert(inst) {
        Ok(h) => {
            // SAFETY: non-null, aligned, writable (caller's contract).
            unsafe { handle_out.write(h) };
            0
        }
        Err(e) => e,
    }
}

/// Ends an instance: the handle is dead at once (every later call with it, and a
/// second teardown, gives `-ZCACHE_ENODEV`). Never waits. Returns 0 when the instance
/// was freed here (every frame given back through `free_frame`, then `release`
/// called), `ZCACHE_TEARDOWN_DEFERRED` (1) when calls on the handle were still in
/// flight: the instance is then freed by `zcache_reap`, which the host calls later from
/// a context of its choosing (never by whichever call in flight happens to finish last,
/// which may be a put with interrupts off), or `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_teardown(zc: ZcacheHandle) -> c_int {
    match table::remove(zc) {
        Ok(v) | Err(v) => v,
    }
}

/// cleancache `init_fs`: a mount of a local file system gets a new private ephemeral
/// pool. Returns the pool id (>= 0), or `-ZCACHE_EINVAL` (`pagesize` not `ZCACHE_PAGE_SIZE`),
/// `-ZCACHE_ENOMEM`, `-ZCACHE_ENOSPC` (pool ids beyond `INT_MAX`), `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_cleancache_init_fs(zc: ZcacheHandle, pagesize: usize) -> c_int {
    let inst = instance!(zc);
    if pagesize != ZCACHE_PAGE_SIZE as usize {
        return -ZCACHE_EINVAL;
    }
    mount_result(&inst.z, inst.z.cleancache().init_fs())
}

fn mount_result(z: &zcache::Zcache, r: Result<PoolId, zcache::ZcacheError>) -> c_int {
    match r {
        Ok(pool) => match c_int::try_from(pool.0) {
            Ok(id) => id,
            Err(_) => {
                // Not representable as the kernel's int pool id: undo the mount.
                let _ = z.cleancache().invalidate_fs(pool);
                -ZCACHE_ENOSPC
            }
        },
        Err(e) => errno_of(e),
    }
}

/// cleancache `init_shared_fs`: a mount of a shared (clustered) file system joins the
/// shared ephemeral pool of `uuid`, creating it for the first mount; every mount of the
/// same uuid gets the same pool id. Returns the pool id or a negative errno, as
/// `zcache_cleancache_init_fs` (`-ZCACHE_EINVAL` also for a null `uuid`).
///
/// # Safety
/// `uuid` is null or points to 16 readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_cleancache_init_shared_fs(
    zc: ZcacheHandle,
    uuid: *const ZcacheUuid,
    pagesize: usize,
) -> c_int {
    let inst = instance!(zc);
    // SAFETY: the caller's contract; `ZcacheUuid` is a byte array (alignment 1).
    let Some(uuid) = (unsafe { uuid.as_ref() }) else {
        return -ZCACHE_EINVAL;
    };
    if pagesize != ZCACHE_PAGE_SIZE as usize {
        return -ZCACHE_EINVAL;
    }
    mount_result(&inst.z, inst.z.cleancache().init_shared_fs(uuid.b))
}

/// cleancache `get_page`: fills `page` with the page of (`key`, `index`) if the pool
/// holds it. Returns 0 (filled; a private pool gives the page up, a shared pool keeps
/// it), `-ZCACHE_ENOENT` (miss: `page` untouched), `-ZCACHE_EIO` (the stored copy was
/// corrupt: dropped, `page` may have been written), `-ZCACHE_ENXIO` (unknown pool),
/// `-ZCACHE_EINVAL` (null `page`, negative `pool_id`), `-ZCACHE_ENODEV`.
///
/// # Safety
/// `page` is null or points to `ZCACHE_PAGE_SIZE` writable bytes, valid for the call, not accessed
/// by anyone else during it, and not inside a frame the host gave zcache.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_cleancache_get_page(
    zc: ZcacheHandle,
    pool_id: c_int,
    key: ZcacheFilekey,
    index: u64,
    page: *mut c_void,
) -> c_int {
    let inst = instance!(zc);
    let pool = match pool_of(pool_id) {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: the caller's contract for `page`.
    let Some(page) = (unsafe { page_mut(page) }) else {
        return -ZCACHE_EINVAL;
    };
    match inst
        .z
        .cleancache()
        .try_get_page(pool, key.oid(), index, page)
    {
        Ok(true) => 0,
        Ok(false) => -ZCACHE_ENOENT,
        Err(e) => errno_of(e),
    }
}

/// cleancache `put_page`: offers a clean page. The kernel ignores the result (a put
/// never fails visibly); it is returned for hosts that count: 0 kept, or why not:
/// `-ZCACHE_E2BIG` (compresses poorly), `-ZCACHE_ENOSPC` (no frame even after evicting
/// older cleancache pages), `-ZCACHE_ENOMEM`, `-ZCACHE_ENXIO`, `-ZCACHE_EINVAL`,
/// `-ZCACHE_ENODEV`. Whatever the result, no older copy of the key survives a put that
/// reached the pool. Callable with interrupts disabled.
///
/// # Safety
/// `page` is null or points to `ZCACHE_PAGE_SIZE` readable bytes, valid for the call, not written
/// during it, and not inside a frame the host gave zcache.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_cleancache_put_page(
    zc: ZcacheHandle,
    pool_id: c_int,
    key: ZcacheFilekey,
    index: u64,
    page: *const c_void,
) -> c_int {
    let inst = instance!(zc);
    let pool = match pool_of(pool_id) {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: the caller's contract for `page`.
    let Some(page) = (unsafe { page_ref(page) }) else {
        return -ZCACHE_EINVAL;
    };
    match inst.z.store(pool, key.oid(), index, page) {
        Ok(_) => 0,
        Err(e) => errno_of(e),
    }
}

/// cleancache `invalidate_page`: drops one page. Returns 1 if a page was dropped, 0 if
/// there was none, or `-ZCACHE_ENXIO`, `-ZCACHE_EINVAL`, `-ZCACHE_ENODEV`. Callable
/// with interrupts disabled.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_cleancache_invalidate_page(
    zc: ZcacheHandle,
    pool_id: c_int,
    key: ZcacheFilekey,
    index: u64,
) -> c_int {
    let inst = instance!(zc);
    let pool = match pool_of(pool_id) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match inst.z.invalidate_page(pool, key.oid(), index) {
        Ok(found) => c_int::from(found),
        Err(e) => errno_of(e),
    }
}

/// cleancache `invalidate_inode`: drops every page of a file. Returns the number of
/// pages dropped, or `-ZCACHE_ENXIO`, `-ZCACHE_EINVAL`, `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_cleancache_invalidate_inode(
    zc: ZcacheHandle,
    pool_id: c_int,
    key: ZcacheFilekey,
) -> i64 {
    let inst = instance!(zc);
    let pool = match pool_of(pool_id) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    match inst.z.invalidate_object(pool, key.oid()) {
        Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Err(e) => errno_of(e).into(),
    }
}

/// cleancache `invalidate_fs` (unmount): the mount leaves its pool and surrenders the
/// pool id; a private pool, or the last mount of a shared one, is destroyed and every
/// page freed. Never waits for calls in flight on the pool (they fail or finish on their
/// own reference). Returns 0, or `-ZCACHE_ENXIO` (not a mounted cleancache pool),
/// `-ZCACHE_EINVAL`, `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_cleancache_invalidate_fs(zc: ZcacheHandle, pool_id: c_int) -> c_int {
    let inst = instance!(zc);
    let pool = match pool_of(pool_id) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match inst.z.cleancache().invalidate_fs(pool) {
        Ok(()) => 0,
        Err(e) => errno_of(e),
    }
}

/// frontswap `init` (swapon): prepares swap type `swap_type` (below zcache's
/// `MAX_SWAP_TYPES`, 1024 today), empty; calling it again empties the area. Returns 0,
/// or `-ZCACHE_EINVAL` (type too large), `-ZCACHE_ENOMEM`, `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_frontswap_init(zc: ZcacheHandle, swap_type: u32) -> c_int {
    let inst = instance!(zc);
    match inst.z.frontswap().init(swap_type) {
        Ok(()) => 0,
        Err(e) => errno_of(e),
    }
}

/// frontswap `store`: 0 means the page is loadable until invalidated (or accepted by
/// the host's writeback); a negative errno means the kernel must write the page to its
/// swap device, and no older copy of the slot survives: `-ZCACHE_E2BIG` (compresses
/// poorly), `-ZCACHE_ENOSPC` (no frame after bounded reclaim), `-ZCACHE_ENOMEM`,
/// `-ZCACHE_ENXIO` (type not initialised), `-ZCACHE_EINVAL` (null `page`),
/// `-ZCACHE_ENODEV`. Callable with interrupts disabled.
///
/// # Safety
/// `page` is null or points to `ZCACHE_PAGE_SIZE` readable bytes, valid for the call, not written
/// during it, and not inside a frame the host gave zcache.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_frontswap_store(
    zc: ZcacheHandle,
    swap_type: u32,
    offset: u64,
    page: *const c_void,
) -> c_int {
    let inst = instance!(zc);
    // SAFETY: the caller's contract for `page`.
    let Some(page) = (unsafe { page_ref(page) }) else {
        return -ZCACHE_EINVAL;
    };
    match inst.z.frontswap().store(swap_type, offset, page) {
        Ok(()) => 0,
        Err(e) => errno_of(e),
    }
}

/// frontswap `load`: 0 filled (the page stays unless the instance was set up with
/// `ZCACHE_FLAG_FRONTSWAP_EXCLUSIVE_LOADS`), `-ZCACHE_ENOENT` (not here: read the swap
/// device; `page` untouched), `-ZCACHE_EIO` (corrupt copy: dropped), `-ZCACHE_ENXIO`,
/// `-ZCACHE_EINVAL`, `-ZCACHE_ENODEV`.
///
/// # Safety
/// `page` is null or points to `ZCACHE_PAGE_SIZE` writable bytes, valid for the call, not accessed
/// by anyone else during it, and not inside a frame the host gave zcache.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_frontswap_load(
    zc: ZcacheHandle,
    swap_type: u32,
    offset: u64,
    page: *mut c_void,
) -> c_int {
    let inst = instance!(zc);
    // SAFETY: the caller's contract for `page`.
    let Some(page) = (unsafe { page_mut(page) }) else {
        return -ZCACHE_EINVAL;
    };
    match inst.z.frontswap().load(swap_type, offset, page) {
        Ok(true) => 0,
        Ok(false) => -ZCACHE_ENOENT,
        Err(e) => errno_of(e),
    }
}

/// frontswap `invalidate_page`: drops one slot's page. Returns 1 if there was one, 0 if
/// not, or `-ZCACHE_ENXIO`, `-ZCACHE_ENODEV`. Callable with interrupts disabled.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_frontswap_invalidate_page(
    zc: ZcacheHandle,
    swap_type: u32,
    offset: u64,
) -> c_int {
    let inst = instance!(zc);
    match inst.z.frontswap().invalidate_page(swap_type, offset) {
        Ok(found) => c_int::from(found),
        Err(e) => errno_of(e),
    }
}

/// frontswap `invalidate_area` (swapoff): drops every page of `swap_type` and refuses
/// further stores (`-ZCACHE_ENXIO`) until the next `zcache_frontswap_init`. Returns the
/// pages dropped, or `-ZCACHE_ENXIO`, `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_frontswap_invalidate_area(zc: ZcacheHandle, swap_type: u32) -> i64 {
    let inst = instance!(zc);
    match inst.z.frontswap().invalidate_area(swap_type) {
        Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Err(e) => errno_of(e).into(),
    }
}

/// Writes a statistics snapshot to `*out`. Returns 0, `-ZCACHE_EINVAL` (null or
/// misaligned `out`), `-ZCACHE_ENODEV`.
///
/// # Safety
/// `out` is null or points to a writable `struct zcache_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_get_stats(zc: ZcacheHandle, out: *mut ZcacheStats) -> c_int {
    let inst = instance!(zc);
    if out.is_null() || !out.is_aligned() {
        return -ZCACHE_EINVAL;
    }
    let s = ZcacheStats::from(&inst.z.stats());
    // SAFETY: non-null, aligned, writable (caller's contract).
    unsafe { out.write(s) };
    0
}

/// Gives frames back until at most `target_frames` are held, in rounds of bounded
/// reclaim: cleancache pages are evicted first, then frontswap pages are written back
/// through the writeback callbacks (if configured). Stops when a round frees nothing.
/// Runs the host's writeback callbacks: call it where they may run (a worker).
/// Returns the frames freed (and, if `out` is not null, the detail in `*out`), or
/// `-ZCACHE_EINVAL` (misaligned `out`), `-ZCACHE_ENODEV`.
///
/// # Safety
/// `out` is null or points to a writable `struct zcache_shrink_result`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_shrink(
    zc: ZcacheHandle,
    target_frames: u64,
    out: *mut ZcacheShrinkResult,
) -> i64 {
    let inst = instance!(zc);
    if !out.is_aligned() {
        return (-ZCACHE_EINVAL).into();
    }
    let target = usize::try_from(target_frames).unwrap_or(usize::MAX);
    let r = ZcacheShrinkResult::from(inst.z.shrink(target));
    if !out.is_null() {
        // SAFETY: non-null, aligned, writable (caller's contract).
        unsafe { out.write(r) };
    }
    i64::try_from(r.frames_freed).unwrap_or(i64::MAX)
}

/// The host's reclaim worker (zswap's shrink_worker): reclaims at most `budget` pages,
/// cleancache pages first, then frontswap pages through writeback, until the pool is
/// below its accept threshold so stores are accepted again. Call it from a worker when
/// `zcache_reclaim_wanted` says so (a store refused at the limit). Returns the pages
/// reclaimed (and the detail in `*out` if not null), or `-ZCACHE_EINVAL` (misaligned
/// `out`), `-ZCACHE_ENODEV`.
///
/// # Safety
/// `out` is null or points to a writable `struct zcache_shrink_result`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zcache_reclaim(
    zc: ZcacheHandle,
    budget: u64,
    out: *mut ZcacheShrinkResult,
) -> i64 {
    let inst = instance!(zc);
    if !out.is_aligned() {
        return (-ZCACHE_EINVAL).into();
    }
    let r = ZcacheShrinkResult::from(
        inst.z
            .reclaim(usize::try_from(budget).unwrap_or(usize::MAX)),
    );
    if !out.is_null() {
        // SAFETY: non-null, aligned, writable (caller's contract).
        unsafe { out.write(r) };
    }
    i64::try_from(r.evicted_pages + r.written_back_pages).unwrap_or(i64::MAX)
}

/// 1 when the pool is at its limit or inside its hysteresis (stores are being refused
/// until `zcache_reclaim` runs), 0 when not, or `-ZCACHE_ENODEV`. Cheap: two atomic
/// reads; a store path may call it to decide whether to queue the worker.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_reclaim_wanted(zc: ZcacheHandle) -> c_int {
    let inst = instance!(zc);
    c_int::from(inst.z.reclaim_wanted())
}

/// A kernel shrinker's `count_objects`: the pages reclaim could free now (every
/// cleancache page; frontswap pages too when writeback is configured). Returns the
/// count, or `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_shrinker_count(zc: ZcacheHandle) -> i64 {
    let inst = instance!(zc);
    i64::try_from(inst.z.shrinker_count()).unwrap_or(i64::MAX)
}

/// A kernel shrinker's `scan_objects`: reclaims up to `nr_to_scan` pages whatever the
/// threshold (runs the writeback callbacks) and returns how many left zcache (0 also
/// when another reclaimer is running), or `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_shrinker_scan(zc: ZcacheHandle, nr_to_scan: u64) -> i64 {
    let inst = instance!(zc);
    let n = inst
        .z
        .shrinker_scan(usize::try_from(nr_to_scan).unwrap_or(usize::MAX));
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Frees the instances whose teardown was deferred (`ZCACHE_TEARDOWN_DEFERRED`) and
/// whose last call in flight has returned: every frame goes back through `free_frame`
/// and `release` is called, here, in the caller's context. Call it from a context that
/// may free memory in bulk (a worker), after a deferred teardown. Returns how many
/// deferred instances are still waiting for calls in flight (0: none left).
#[unsafe(no_mangle)]
pub extern "C" fn zcache_reap() -> c_int {
    table::reap()
}

/// Runs both allocators' compaction (work proportional to the pool: call it from a
/// worker, not from atomic context). Returns the frames freed, or `-ZCACHE_ENODEV`.
#[unsafe(no_mangle)]
pub extern "C" fn zcache_compact(zc: ZcacheHandle) -> i64 {
    let inst = instance!(zc);
    i64::try_from(inst.z.compact()).unwrap_or(i64::MAX)
}
