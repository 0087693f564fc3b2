//! The host's side: the configuration struct, its callbacks, and their Rust wrappers
//! (a `PageSource` over the host's frame allocator, a `Writeback` over the host's swap
//! device).

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;

use zcache::{AllocatorKind, Config, SlotClaim, Writeback, Zcache};
use zpool::{AllocError, Frame, FrameTag, Page, PageSource};

use crate::errno::{ZCACHE_EINVAL, errno_of};

/// The page size this build of zcache works in: 4096 by default, 16384 with feature
/// `page-16k`, 65536 with `page-64k`. In C the header's value follows the macros
/// `ZCACHE_PAGE_16K` / `ZCACHE_PAGE_64K`, which the host defines when it builds the
/// library with the matching feature; `zcache_setup` refuses any other `page_size`.
#[cfg(not(any(feature = "page-16k", feature = "page-64k")))]
pub const ZCACHE_PAGE_SIZE: u32 = 4096;
/// The page size this build of zcache works in (feature `page-16k`).
#[cfg(all(feature = "page-16k", not(feature = "page-64k")))]
pub const ZCACHE_PAGE_SIZE: u32 = 16384;
/// The page size this build of zcache works in (feature `page-64k`).
#[cfg(feature = "page-64k")]
pub const ZCACHE_PAGE_SIZE: u32 = 65536;

// A crate of the program that turned on zplat's page size without kglue's feature
// would give the C side a wrong header value: refuse to build.
const _: () = assert!(ZCACHE_PAGE_SIZE as usize == zpool::PAGE_SIZE);

/// `flags`: frontswap loads remove the page from zcache (the kernel's
/// `frontswap_tmem_exclusive_gets`); without it a load keeps the page until
/// invalidated.
pub const ZCACHE_FLAG_FRONTSWAP_EXCLUSIVE_LOADS: u32 = 1;

/// `compressor`: the default (lz4).
pub const ZCACHE_COMP_DEFAULT: u32 = 0;
/// `compressor`: lz4.
pub const ZCACHE_COMP_LZ4: u32 = 1;
/// `compressor`: raw deflate.
pub const ZCACHE_COMP_DEFLATE: u32 = 2;
/// `compressor`: lzo1x.
pub const ZCACHE_COMP_LZO: u32 = 3;

/// `ephemeral_allocator` / `persistent_allocator`: the default (zbud for ephemeral
/// pages; zsmalloc for persistent pages).
pub const ZCACHE_ALLOC_DEFAULT: u32 = 0;
/// Allocator: zbud (two compressed pages per frame; compaction re-pairs them).
pub const ZCACHE_ALLOC_ZBUD: u32 = 1;
/// Allocator: zsmalloc (size classes, densest).
pub const ZCACHE_ALLOC_ZSMALLOC: u32 = 2;

/// Hands out one page frame of `ZCACHE_PAGE_SIZE` bytes, aligned to its size, mapped
/// and writable, or `NULL` at once when none is available (a misaligned frame is given
/// back and counted as a refusal). Must not sleep: it is called from stores, which may
/// run with interrupts disabled (a kernel uses `alloc_page(GFP_NOWAIT | __GFP_NOWARN)` and
/// `page_address`). The frame belongs to zcache until it is given to `free_frame`.
/// Must be callable from any CPU concurrently, and must not call into zcache.
pub type ZcacheAllocFrameFn = Option<unsafe extern "C" fn(host: *mut c_void) -> *mut c_void>;

/// Takes back a frame `alloc_frame` handed out. Must not sleep; may be called from any
/// CPU concurrently, and from teardown (or from `zcache_reap` when teardown was
/// deferred). Must not call into zcache. No zcache lock is held while it runs.
pub type ZcacheFreeFrameFn = Option<unsafe extern "C" fn(host: *mut c_void, frame: *mut c_void)>;

/// Writeback step 2: claims swap slot (`swap_type`, `offset`) for a writeback. Return 0
/// and set `*token` (any value; zcache passes it back) when the host has pinned the
/// slot: until the matching `writeback_release` it does not reuse the slot for another
/// page, does not write the slot itself, and serves a swap-in of it from the page being
/// written (or waits for the release). In Linux: allocate the swap-cache folio for the
/// entry, as zswap_writeback_entry does (`__read_swap_cache_async`). Return non-zero
/// when it cannot (the entry is free, already in the swap cache, or no page): zcache
/// keeps the page. Called from `zcache_reclaim`, `zcache_shrinker_scan` or
/// `zcache_shrink` with no zcache lock held, never from a store, on whichever CPU runs
/// that call: the three writeback callbacks must be callable from any CPU, but zcache
/// runs one reclaimer at a time, so they are never called concurrently for one
/// instance. It may call into zcache (any operation but reclaim).
pub type ZcacheWritebackClaimFn = Option<
    unsafe extern "C" fn(host: *mut c_void, swap_type: u32, offset: u64, token: *mut u64) -> c_int,
>;

/// Writeback step 4: writes `page` (`ZCACHE_PAGE_SIZE` bytes, valid for the call
/// only), the slot's current content, which zcache has just taken out of its tree, to
/// the claimed slot. Return 0 if the host has the page (zcache drops its copy; later loads of the slot
/// miss, so the host reads its device), non-zero to refuse (zcache puts its copy back
/// unless the slot was stored again meanwhile). No zcache lock is held.
pub type ZcacheWritebackWriteFn = Option<
    unsafe extern "C" fn(
        host: *mut c_void,
        swap_type: u32,
        offset: u64,
        token: u64,
        page: *const c_void,
    ) -> c_int,
>;

/// Writeback step 5: ends a claim. Called exactly once for every successful claim:
/// after the write (`written` is 1 if it was accepted), or without a write (`written`
/// 0) when the slot no longer held the page zcache had picked. No zcache lock is held.
pub type ZcacheWritebackReleaseFn = Option<
    unsafe extern "C" fn(
        host: *mut c_void,
        swap_type: u32,
        offset: u64,
        token: u64,
        written: c_int,
    ),
>;

/// Called once when the instance's memory is finally gone: at the end of
/// `zcache_teardown`, or, when teardown was deferred, in the `zcache_reap` call that
/// frees it. After it, zcache will not call any of the host's callbacks again.
pub type ZcacheReleaseFn = Option<unsafe extern "C" fn(host: *mut c_void)>;

/// How `zcache_setup` builds an instance. Zero means "the default" for every numeric
/// field, so a host fills `size`, `page_size` and the two frame callbacks and leaves
/// the rest zeroed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ZcacheConfig {
    /// `sizeof(struct zcache_config)`: lets the ABI grow without breaking old hosts.
    pub size: u32,
    /// The host's page size: must be [`ZCACHE_PAGE_SIZE`] (the page size the library was
    /// built for).
    pub page_size: u32,
    /// `ZCACHE_FLAG_*` bits; unknown bits are an error.
    pub flags: u32,
    /// `ZCACHE_COMP_*`.
    pub compressor: u32,
    /// Passed unchanged to every callback.
    pub host: *mut c_void,
    /// Required.
    pub alloc_frame: ZcacheAllocFrameFn,
    /// Required.
    pub free_frame: ZcacheFreeFrameFn,
    /// Writeback, optional: all three or none (`NULL`: persistent pages are never
    /// written back; when the frame limit is reached, frontswap stores fail and the
    /// kernel writes the page to swap itself). The protocol: docs/concurrency.md.
    pub writeback_claim: ZcacheWritebackClaimFn,
    /// See `writeback_claim`.
    pub writeback_write: ZcacheWritebackWriteFn,
    /// See `writeback_claim`.
    pub writeback_release: ZcacheWritebackReleaseFn,
    /// Optional.
    pub release: ZcacheReleaseFn,
    /// Hard limit on page frames held (0: no limit beyond the host allocator's).
    pub max_frames: u64,
    /// After the limit is hit, frames are refused until fewer than this percentage of
    /// `max_frames` are held (0: 90; at most 100).
    pub accept_threshold_percent: u32,
    /// Compression contexts: at least the number of CPUs that call in at once
    /// (0: 4; at most 1024).
    pub contexts: u32,
    /// Cleancache pages one store may evict before it gives up: the bound on the work
    /// of a store (0: 4). A store never writes back, and evicts only when that can let
    /// it in (not while the accept threshold's hysteresis refuses frames).
    pub max_reclaim_per_store: u32,
    /// `ZCACHE_ALLOC_*` for cleancache (ephemeral) pages.
    pub ephemeral_allocator: u32,
    /// `ZCACHE_ALLOC_*` for frontswap (persistent) pages. The default is zsmalloc.
    /// The LRU that writeback follows is zcache's own (of pages), so writeback works
    /// with either allocator.
    pub persistent_allocator: u32,
    /// Must be 0.
    pub reserved: u32,
}

/// The host's frame allocator as a [`PageSource`].
struct HostSource {
    alloc: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void, *mut c_void),
    host: *mut c_void,
}

// SAFETY: `HostSource` only holds the host's callbacks and its opaque pointer. The
// configuration contract (header and docs/kernel-integration.md) requires the callbacks
// to be callable from any CPU, concurrently, with this `host` pointer: exactly what
// `Send + Sync` promises the `PageSource` users.
unsafe impl Send for HostSource {}
// SAFETY: see `Send`.
unsafe impl Sync for HostSource {}

/// The tag of frames from a host's `alloc_frame` (zpool's check on free: a frame of
/// another source is never passed to the host's `free_frame`).
const HOST_TAG: FrameTag = match FrameTag::new(0x6b6) {
    Some(t) => t,
    None => panic!("host frame tag"),
};

impl PageSource for HostSource {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        // SAFETY: the host gave this callback for this purpose with this `host` pointer;
        // it takes no Rust references and may be called from any context (contract).
        let p = unsafe { (self.alloc)(self.host) };
        let Some(nn) = NonNull::new(p.cast::<Page>()) else {
            return Err(AllocError);
        };
        if p.addr() % zpool::PAGE_SIZE != 0 {
            // A misaligned frame breaks `Frame`'s contract: give it back, report none.
            // SAFETY: `p` came from `alloc` just now and was never used.
            unsafe { (self.free)(self.host, p) };
            return Err(AllocError);
        }
        // SAFETY: the host's contract for `alloc_frame`: `p` points to PAGE_SIZE mapped,
        // writable bytes (any contents), not referenced by anyone else until zcache
        // gives it back through `free_frame`; it is PAGE_SIZE-aligned (checked). Frames
        // tagged HOST_TAG are given to the host's `free` only (`free_frame` below).
        Ok(unsafe { Frame::from_raw(nn, HOST_TAG) })
    }

    fn free_frame(&self, frame: Frame) {
        if frame.tag() != HOST_TAG {
            // Not the host's memory (kglue never does this; the check makes it a leak
            // rather than a foreign pointer in the host's allocator).
            return;
        }
        let p = frame.into_raw();
        // SAFETY: frames tagged HOST_TAG are made only by `alloc_frame` above (nothing
        // else in this crate calls `Frame::from_raw`), so this one came from the host's
        // `alloc`, and from this instance's: `HostSource` is private, each one is moved
        // into one `Zcache`, and zcache and its allocators make no frames of their own
        // (they forbid `unsafe`). `into_raw` ended zcache's ownership of it.
        unsafe { (self.free)(self.host, p.as_ptr().cast::<c_void>()) }
    }
}

type ClaimFn = unsafe extern "C" fn(*mut c_void, u32, u64, *mut u64) -> c_int;
type WriteFn = unsafe extern "C" fn(*mut c_void, u32, u64, u64, *const c_void) -> c_int;
type ReleaseFn = unsafe extern "C" fn(*mut c_void, u32, u64, u64, c_int);

/// The host's swap device as a [`Writeback`].
struct HostWriteback {
    claim: ClaimFn,
    write: WriteFn,
    release: ReleaseFn,
    host: *mut c_void,
}

// SAFETY: `HostWriteback` holds the host's three callbacks and its opaque pointer. The
// callbacks' contract (`ZcacheWritebackClaimFn`) makes them callable from any CPU with
// this `host` pointer, which is what moving it (`Send`) needs; zcache calls them from
// one reclaimer at a time (its reclaim context is try-locked), and sharing `&self`
// (`Sync`) gives nothing but those calls.
unsafe impl Send for HostWriteback {}
// SAFETY: see `Send`.
unsafe impl Sync for HostWriteback {}

impl Writeback for HostWriteback {
    fn claim(&self, swap_type: u32, offset: u64) -> Option<u64> {
        let mut token = 0u64;
        // SAFETY: `&mut token` is a valid, aligned, writable u64 for the call; the
        // callback's own contract is the host's.
        let r = unsafe { (self.claim)(self.host, swap_type, offset, &mut token) };
        (r == 0).then_some(token)
    }

    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        // SAFETY: `page` is PAGE_SIZE readable bytes borrowed for the duration of the call,
        // which is all the callback is promised.
        unsafe {
            (self.write)(
                self.host,
                claim.swap_type,
                claim.offset,
                claim.token,
                page.as_ptr().cast(),
            ) == 0
        }
    }

    fn release(&self, claim: SlotClaim, written: bool) {
        // SAFETY: plain values; the callback's contract is the host's.
        unsafe {
            (self.release)(
                self.host,
                claim.swap_type,
                claim.offset,
                claim.token,
                c_int::from(written),
            )
        }
    }
}

/// Calls the host's `release` when dropped (after the zcache it follows in
/// [`Instance`] has been dropped and every frame given back).
struct ReleaseHook {
    release: ZcacheReleaseFn,
    host: *mut c_void,
}

// SAFETY: the hook holds the host's callback and opaque pointer; the contract lets the
// release callback run on whichever CPU drops the last reference.
unsafe impl Send for ReleaseHook {}
// SAFETY: `&ReleaseHook` gives no access to anything; see `Send`.
unsafe impl Sync for ReleaseHook {}

impl Drop for ReleaseHook {
    fn drop(&mut self) {
        if let Some(f) = self.release {
            // SAFETY: the host's optional callback, called exactly once, after the last
            // use of every other callback (fields of `Instance` drop in order).
            unsafe { f(self.host) }
        }
    }
}

/// One zcache instance behind a handle.
pub(crate) struct Instance {
    /// Declared first so it drops first: every frame goes back before `release` runs.
    pub(crate) z: Zcache,
    release: ReleaseHook,
}

impl Instance {
    /// Drops the instance without calling the host's `release` (a setup that fails
    /// after building it: the host never got a handle, so it expects no callback).
    pub(crate) fn discard(mut self) {
        self.release.release = None;
    }
}

/// The zcache configuration for a C configuration, or the negative errno.
fn translate(cfg: &ZcacheConfig) -> Result<Config, c_int> {
    let bad = -ZCACHE_EINVAL;
    if cfg.page_size != ZCACHE_PAGE_SIZE
        || cfg.flags & !ZCACHE_FLAG_FRONTSWAP_EXCLUSIVE_LOADS != 0
        || cfg.reserved != 0
        || cfg.accept_threshold_percent > 100
        || cfg.contexts > 1024
    {
        return Err(bad);
    }
    let alloc_kind = |v: u32, default: AllocatorKind| match v {
        ZCACHE_ALLOC_DEFAULT => Ok(default),
        ZCACHE_ALLOC_ZBUD => Ok(AllocatorKind::Zbud),
        ZCACHE_ALLOC_ZSMALLOC => Ok(AllocatorKind::Zsmalloc),
        _ => Err(bad),
    };
    let compressor = match cfg.compressor {
        ZCACHE_COMP_DEFAULT => zcomp::Algorithm::Lz4,
        ZCACHE_COMP_LZ4 | ZCACHE_COMP_DEFLATE | ZCACHE_COMP_LZO => u8::try_from(cfg.compressor)
            .ok()
            .and_then(zcomp::Algorithm::from_id)
            .ok_or(bad)?,
        _ => return Err(bad),
    };
    let d = Config::default();
    let or_default = |v: u32, default: usize| {
        if v == 0 {
            default
        } else {
            usize::try_from(v).unwrap_or(default)
        }
    };
    Ok(Config {
        max_frames: match cfg.max_frames {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
        accept_threshold_percent: match cfg.accept_threshold_percent {
            0 => d.accept_threshold_percent,
            p => u8::try_from(p).map_err(|_| bad)?,
        },
        ephemeral_allocator: alloc_kind(cfg.ephemeral_allocator, d.ephemeral_allocator)?,
        persistent_allocator: alloc_kind(cfg.persistent_allocator, d.persistent_allocator)?,
        compressor,
        policy: d.policy,
        frontswap_exclusive_loads: cfg.flags & ZCACHE_FLAG_FRONTSWAP_EXCLUSIVE_LOADS != 0,
        decompress_in_place: d.decompress_in_place,
        contexts: or_default(cfg.contexts, d.contexts),
        max_reclaim_per_store: or_default(cfg.max_reclaim_per_store, d.max_reclaim_per_store),
        // The stack-address hint: a kernel task's stack is its own, so a task keeps its
        // context. (A CPU-number callback would be the kernel's per-CPU contexts
        // exactly; the C configuration has no field for it yet.)
        context_hint: d.context_hint,
    })
}

/// Builds an instance from a validated-by-type configuration.
pub(crate) fn build(cfg: &ZcacheConfig) -> Result<Instance, c_int> {
    let config = translate(cfg)?;
    let (Some(alloc), Some(free)) = (cfg.alloc_frame, cfg.free_frame) else {
        return Err(-ZCACHE_EINVAL);
    };
    let source = HostSource {
        alloc,
        free,
        host: cfg.host,
    };
    let z = match (
        cfg.writeback_claim,
        cfg.writeback_write,
        cfg.writeback_release,
    ) {
        (Some(claim), Some(write), Some(release)) => Zcache::with_writeback(
            config,
            source,
            HostWriteback {
                claim,
                write,
                release,
                host: cfg.host,
            },
        ),
        (None, None, None) => Zcache::new(config, source),
        _ => return Err(-ZCACHE_EINVAL),
    }
    .map_err(errno_of)?;
    Ok(Instance {
        z,
        release: ReleaseHook {
            release: cfg.release,
            host: cfg.host,
        },
    })
}
