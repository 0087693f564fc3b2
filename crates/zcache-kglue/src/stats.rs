//! The statistics snapshot and shrink result structs.

use zcache::{ReclaimOutcome, Stats};

/// A statistics snapshot (`zcache_get_stats`). Names are zswap's debugfs names where
/// they mean the same, else zcache's. Gauges and counters are summed from per-CPU-style
/// shards without stopping anybody, so figures may be a few operations apart.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZcacheStats {
    /// Pages currently stored (same-filled included).
    pub stored_pages: i64,
    /// Same-filled pages currently stored (they use no frame).
    pub same_filled_pages: i64,
    /// Bytes of compressed objects (headers included) in the allocators.
    pub zbytes: i64,
    /// Stores that replaced an older copy of their key.
    pub duplicate_entry: i64,
    /// Pages refused: compressed to more than 7/8 page.
    pub reject_compress_poor: i64,
    /// Pages refused: over 5/8 page while the running mean was too.
    pub reject_mean_compress_poor: i64,
    /// Stores that failed for want of a frame after bounded reclaim.
    pub reject_alloc_fail: i64,
    /// Reclaim attempts that freed nothing.
    pub reject_reclaim_fail: i64,
    /// Stores refused for want of metadata memory.
    pub reject_no_memory: i64,
    /// Persistent pages the host's writeback accepted.
    pub written_back_pages: i64,
    /// Persistent pages the host's writeback refused (still loadable).
    pub writeback_refused: i64,
    /// Ephemeral stores that evicted the LRU ephemeral frame.
    pub eph_ate_tail: i64,
    /// ... and found nothing to evict.
    pub eph_ate_tail_failed: i64,
    /// Persistent stores that stole ephemeral frames.
    pub pers_ate_eph: i64,
    /// ... and found none.
    pub pers_ate_eph_failed: i64,
    /// Ephemeral pages evicted.
    pub evicted_eph_pages: i64,
    /// Ephemeral frames freed by eviction.
    pub evicted_eph_frames: i64,
    /// Loads and gets that filled the page.
    pub load_hits: i64,
    /// Loads and gets that missed.
    pub load_misses: i64,
    /// Loads and gets that found corrupt bytes (returned `-ZCACHE_EIO`).
    pub load_corrupt: i64,
    /// Objects found corrupt by eviction or writeback (left in place).
    pub evict_corrupt: i64,
    /// Frees the allocators refused (never expected).
    pub free_errors: i64,
    /// Frames held by both allocators (zswap's pool_total_size is this times the page size).
    pub pool_frames: u64,
    /// Highest `pool_frames` seen.
    pub pool_frames_peak: u64,
    /// zswap's pool_total_size, in bytes.
    pub pool_total_size: u64,
    /// Frames held by the ephemeral (cleancache) allocator.
    pub eph_frames: u64,
    /// Frames held by the persistent (frontswap) allocator.
    pub pers_frames: u64,
    /// Compressed pages in the ephemeral allocator.
    pub eph_zpages: u64,
    /// Compressed pages in the persistent allocator.
    pub pers_zpages: u64,
    /// Frame allocations refused by the frame limit (zswap: pool_limit_hit).
    pub pool_limit_hit: u64,
    /// Frame allocations the host's `alloc_frame` refused.
    pub host_alloc_fail: u64,
    /// 1 while the limit's hysteresis is refusing frames, else 0.
    pub limit_full: u64,
    /// Stores refused because every compression context was busy.
    pub reject_busy: i64,
    /// Referenced pages zcache's LRU scan rotated (second chances given).
    pub lru_rotations: i64,
    /// Writebacks abandoned because `writeback_claim` refused the slot.
    pub writeback_busy: i64,
    /// Writebacks abandoned because the slot no longer held the picked page once
    /// claimed (nothing was written).
    pub writeback_raced: i64,
    /// Persistent LRU pages with no swap slot (not frontswap pages).
    pub writeback_no_slot: i64,
    /// Cleancache pages on zcache's LRU.
    pub eph_lru_len: u64,
    /// Frontswap pages on zcache's LRU.
    pub pers_lru_len: u64,
}

impl From<&Stats> for ZcacheStats {
    fn from(s: &Stats) -> Self {
        let c = &s.counters;
        let u = |v: usize| v as u64;
        ZcacheStats {
            stored_pages: c.stored_pages,
            same_filled_pages: c.same_filled_pages,
            zbytes: c.zbytes,
            duplicate_entry: c.duplicate_entry,
            reject_compress_poor: c.reject_compress_poor,
            reject_mean_compress_poor: c.reject_mean_compress_poor,
            reject_alloc_fail: c.reject_alloc_fail,
            reject_reclaim_fail: c.reject_reclaim_fail,
            reject_no_memory: c.reject_no_memory,
            written_back_pages: c.written_back_pages,
            writeback_refused: c.writeback_refused,
            eph_ate_tail: c.eph_ate_tail,
            eph_ate_tail_failed: c.eph_ate_tail_failed,
            pers_ate_eph: c.pers_ate_eph,
            pers_ate_eph_failed: c.pers_ate_eph_failed,
            evicted_eph_pages: c.evicted_eph_pages,
            evicted_eph_frames: c.evicted_eph_frames,
            load_hits: c.load_hits,
            load_misses: c.load_misses,
            load_corrupt: c.load_corrupt,
            evict_corrupt: c.evict_corrupt,
            free_errors: c.free_errors,
            pool_frames: u(s.pool_frames),
            pool_frames_peak: u(s.pool_frames_peak),
            pool_total_size: s.pool_total_size,
            eph_frames: u(s.eph_frames),
            pers_frames: u(s.pers_frames),
            eph_zpages: u(s.eph_zpages),
            pers_zpages: u(s.pers_zpages),
            pool_limit_hit: s.pool_limit_hit,
            host_alloc_fail: s.host_alloc_fail,
            limit_full: u64::from(s.limit_full),
            reject_busy: c.reject_busy,
            lru_rotations: c.lru_rotations,
            writeback_busy: c.writeback_busy,
            writeback_raced: c.writeback_raced,
            writeback_no_slot: c.writeback_no_slot,
            eph_lru_len: u(s.eph_lru_len),
            pers_lru_len: u(s.pers_lru_len),
        }
    }
}

/// What `zcache_shrink` or `zcache_reclaim` achieved.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZcacheShrinkResult {
    /// Frames given back to the host.
    pub frames_freed: u64,
    /// Cleancache pages evicted.
    pub evicted_pages: u64,
    /// Frontswap pages the host's writeback accepted.
    pub written_back_pages: u64,
    /// Referenced pages given a second chance on the way.
    pub rotations: u64,
    /// Frames freed by compaction (included in `frames_freed`).
    pub compacted_frames: u64,
    /// 1 if the pool is still at or over its accept threshold (call again), else 0.
    pub more: u64,
}

impl From<ReclaimOutcome> for ZcacheShrinkResult {
    fn from(o: ReclaimOutcome) -> Self {
        ZcacheShrinkResult {
            frames_freed: o.frames_freed as u64,
            evicted_pages: o.evicted_pages as u64,
            written_back_pages: o.written_back_pages as u64,
            rotations: o.rotations as u64,
            compacted_frames: o.compacted_frames as u64,
            more: u64::from(o.more),
        }
    }
}
