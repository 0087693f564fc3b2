//! Statistics: zswap's debugfs names where they mean the same, plus zcache's.
//!
//! Counters are relaxed atomics in `contexts + 1` cache-padded shards (`Shards::add`
//! takes the shard number modulo the count); reading sums the shards without stopping
//! anybody. Which shard an update goes to, as implemented:
//!
//! * a store or load holding one of the `Config::contexts` compression contexts: that
//!   context's shard (`ZCtx::shard`, its index); the reclaimer's own context: the last
//!   shard;
//! * a load that found every context busy runs on a temporary context built with the
//!   last shard's number, and a store refused for want of a context counts
//!   `reject_busy` there too: both share the reclaimer's shard;
//! * `ZPam::free`, which every path that frees a stored page goes through
//!   (invalidations, a replaced copy, exclusive loads, eviction, writeback, pool
//!   destruction), decrements the shard `(descriptor bits >> 4) % shards`: chosen by
//!   the page, not by the caller, so it lands in any context's shard, concurrently
//!   with that context's holder.
//!
//! So no counter is shared by every store, but shards are not private to their
//! context: `free`'s updates and the last shard are contended cache lines (issue 13:
//! every path to update its caller's own shard).

use alloc::boxed::Box;
use alloc::vec::Vec;
use crossbeam_utils::CachePadded;

use crate::sync::{AtomicI64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counter indices.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug)]
        #[repr(usize)]
        pub(crate) enum C { $($name),* }
        const N: usize = [$(C::$name),*].len();

        /// A snapshot of zcache's statistics.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $name: i64,)*
        }

        impl Counters {
            fn from_array(a: &[i64; N]) -> Counters {
                Counters { $($name: a[C::$name as usize],)* }
            }
            /// Every counter as (name, value), in declaration order.
            pub fn named(&self) -> [(&'static str, i64); N] {
                [$((stringify!($name), self.$name)),*]
            }
        }
    };
}

counters! {
    /// Pages currently stored (same-filled included). zswap: stored_pages.
    stored_pages,
    /// Same-filled pages currently stored (no frame used). zswap: same_filled_pages.
    same_filled_pages,
    /// Bytes of compressed objects (headers included) currently in the allocators.
    /// zcache: zbytes.
    zbytes,
    /// Compressed objects currently in the persistent allocator (same-filled pages
    /// excluded). zcache2: curr_pers_zpages.
    pers_zpages,
    /// Their bytes (headers included); `pers_zbytes / pers_zpages` is the mean the 5/8
    /// rule compares with. zcache2: curr_pers_zbytes.
    pers_zbytes,
    /// Stores that replaced an older copy of the key. zswap: duplicate_entry.
    duplicate_entry,
    /// Pages refused because they compressed to more than the hard limit (7/8 page).
    /// zswap: reject_compress_poor.
    reject_compress_poor,
    /// Pages refused because they compressed to more than 5/8 page while the running
    /// mean was also over 5/8. zcache: mean_compress_poor.
    reject_mean_compress_poor,
    /// Stores that failed for want of a frame (limit or host) after reclaim was tried
    /// or was not possible. zswap: reject_alloc_fail.
    reject_alloc_fail,
    /// Reclaim (eviction or writeback) attempts that freed nothing.
    /// zswap: reject_reclaim_fail.
    reject_reclaim_fail,
    /// Stores refused because metadata could not be allocated.
    reject_no_memory,
    /// Persistent pages handed to the host's writeback and accepted.
    /// zswap: written_back_pages.
    written_back_pages,
    /// Persistent pages the host's writeback refused (they stay loadable).
    writeback_refused,
    /// Ephemeral stores that reclaimed the LRU ephemeral frame. zcache: eph_ate_tail.
    eph_ate_tail,
    /// ... and found nothing to reclaim. zcache: eph_ate_tail_failed.
    eph_ate_tail_failed,
    /// Persistent stores that stole ephemeral frames. zcache: pers_ate_eph.
    pers_ate_eph,
    /// ... and found none. zcache: pers_ate_eph_failed.
    pers_ate_eph_failed,
    /// Ephemeral pages evicted. zcache: evicted_eph_zpages.
    evicted_eph_pages,
    /// Ephemeral frames freed by eviction. zcache: evicted_eph_pageframes.
    evicted_eph_frames,
    /// Successful loads.
    load_hits,
    /// Loads that missed.
    load_misses,
    /// Loads that failed on corrupt pool bytes (checksum or decompression).
    /// zswap: decompress_fail.
    load_corrupt,
    /// Objects whose header failed its checksum during eviction or writeback (left in
    /// place: their key cannot be trusted).
    evict_corrupt,
    /// Frees the allocator refused (a descriptor with a stale handle: never expected).
    free_errors,
    /// Stores refused because every compression context was busy.
    reject_busy,
    /// Referenced pages the LRU scan rotated to the head (second chances given).
    lru_rotations,
    /// Writebacks abandoned because the host could not claim the slot.
    writeback_busy,
    /// Writebacks abandoned because the slot no longer held the picked page when it
    /// was claimed (invalidated, perhaps reused): nothing was written.
    writeback_raced,
    /// Persistent LRU pages with no swap slot to write to (host-made pools).
    writeback_no_slot,
}

/// Sharded counters.
pub(crate) struct Shards {
    shards: Box<[CachePadded<[AtomicI64; N]>]>,
}

impl Shards {
    pub(crate) fn new(n: usize) -> Result<Self, ()> {
        let mut v = Vec::new();
        v.try_reserve_exact(n.max(1)).map_err(|_| ())?;
        for _ in 0..n.max(1) {
            v.push(CachePadded::new(core::array::from_fn(|_| {
                AtomicI64::new(0)
            })));
        }
        Ok(Shards {
            shards: v.into_boxed_slice(),
        })
    }

    #[inline]
    pub(crate) fn add(&self, shard: usize, c: C, v: i64) {
        self.shards[shard % self.shards.len()][c as usize].fetch_add(v, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn inc(&self, shard: usize, c: C) {
        self.add(shard, c, 1);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let mut sum = [0i64; N];
        for s in self.shards.iter() {
            for (i, c) in s.iter().enumerate() {
                sum[i] += c.load(Ordering::Relaxed);
            }
        }
        Counters::from_array(&sum)
    }

    pub(crate) fn get(&self, c: C) -> i64 {
        self.shards
            .iter()
            .map(|s| s[c as usize].load(Ordering::Relaxed))
            .sum()
    }
}
