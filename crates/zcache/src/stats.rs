//! Statistics: zswap's debugfs names where they mean the same, plus zcache's.
//!
//! Counters are relaxed atomics in `contexts + 1` cache-padded shards (`Shards::add`
//! takes the shard number modulo the count); reading sums the shards without stopping
//! anybody. Which shard an update goes to, as implemented:
//!
//! * a store or load holding one of the `Config::contexts` compression contexts: that
//!   context's shard (`ZCtx::shard`, its index); the reclaimer's own context: the last
//!   shard;
//! * every path without a context of its own: `ZPam::free`, which every path that
//!   frees a stored page goes through (invalidations, a replaced copy, exclusive loads,
//!   eviction, writeback, pool destruction), a load that found every context busy (its
//!   temporary context), a store refused for want of a context (`reject_busy`): the
//!   shard of the context the caller tries first, `Config::context_hint() % contexts`
//!   (`ZPam::caller_shard`).
//!
//! So a CPU (or thread, with `thread_hint`) writes its own shard's line; callers share
//! one only when their hints collide, as they share the context.

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

    /// Shards with any counter not zero (tests: which shards a path touched).
    #[cfg(test)]
    pub(crate) fn touched(&self) -> Vec<usize> {
        (0..self.shards.len())
            .filter(|&i| {
                self.shards[i]
                    .iter()
                    .any(|c| c.load(Ordering::Relaxed) != 0)
            })
            .collect()
    }

    pub(crate) fn get(&self, c: C) -> i64 {
        self.shards
            .iter()
            .map(|s| s[c as usize].load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::testing::test_page;
    use crate::{Config, Oid, Zcache};

    fn hint_five() -> usize {
        5
    }

    #[test]
    fn every_path_counts_in_the_callers_shard() {
        let cfg = Config {
            contexts: 8,
            context_hint: hint_five,
            ..Config::default()
        };
        let z = Zcache::new(cfg, zpool::HeapPageSource).unwrap();
        let fs = z.frontswap();
        fs.init(0).unwrap();
        let cc = z.cleancache();
        let pool = cc.init_fs().unwrap();
        let mut out = [0u8; zpool::PAGE_SIZE];
        for i in 0..64u64 {
            // Objects of every kind: compressed, same-filled (zero and not).
            let page = test_page(i as u32);
            // (Random pages are refused as incompressible: counted too.)
            if fs.store(0, i, &page).is_ok() {
                fs.store(0, i, &page).unwrap(); // a replace frees the older copy
                assert!(fs.load(0, i, &mut out).unwrap());
            }
            cc.put_page(pool, Oid::new(i, 0, 0), 0, &page);
        }
        for i in 0..64u64 {
            fs.invalidate_page(0, i).unwrap();
            cc.invalidate_page(pool, Oid::new(i, 0, 0), 0);
        }
        // Stores, replaces, loads and invalidations (frees) all counted in shard 5; the
        // descriptor-derived shard of the old `free()` spread them over all nine.
        assert_eq!(z.tmem.pam().stats.touched(), [5]);
        assert_eq!(z.stored_pages(), 0);
    }

    /// The metadata parts add up to `metadata_bytes` and to what the layers report
    /// themselves; each lands where its structure is (zsmalloc's for frontswap, zbud's
    /// for cleancache, the defaults); the per-object parts go when the pages go.
    #[test]
    fn metadata_parts_add_up_and_follow_the_pages() {
        use zpool::ZPool;
        let z = Zcache::new(Config::default(), zpool::HeapPageSource).unwrap();
        let layers = |z: &Zcache| {
            let pam = z.tmem.pam();
            pam.eph[0].stats().metadata_bytes
                + pam.pers[0].stats().metadata_bytes
                + pam.fill_table_bytes()
                + pam.eph_lru.metadata_bytes()
                + pam.pers_lru.metadata_bytes()
                + z.tmem.total_counts().metadata_bytes as usize
        };
        let fs = z.frontswap();
        fs.init(0).unwrap();
        let cc = z.cleancache();
        let pool = cc.init_fs().unwrap();
        let empty = z.metadata_parts();
        assert_eq!(empty.total(), layers(&z));
        assert_eq!((empty.tree_nodes, empty.frame_lists), (0, 0));
        for i in 0..256u64 {
            let page = test_page(i as u32);
            let _ = fs.store(0, i, &page);
            cc.put_page(pool, Oid::new(i, 0, 0), 64 * i, &page);
        }
        let full = z.metadata_parts();
        assert_eq!(full.total(), layers(&z));
        assert_eq!(full.total(), z.metadata_bytes());
        assert!(full.tree_nodes > 0 && full.object_maps > empty.object_maps);
        assert!(full.handle_tables > 0 && full.frame_lists > 0, "{full:?}");
        assert!(
            full.zspages > empty.zspages && full.zbud > empty.zbud,
            "{full:?}"
        );
        assert!(full.rings > empty.rings, "{full:?}");
        fs.invalidate_area(0).unwrap();
        cc.invalidate_fs(pool).unwrap();
        let after = z.metadata_parts();
        assert_eq!(after.total(), layers(&z));
        // The zspages' frame rows stay allocated with their descriptors (reused by the
        // next zspages), as the descriptors do; no frame is left in them.
        assert_eq!(after.tree_nodes, 0, "{after:?}");
        assert_eq!(after.frame_lists, full.frame_lists, "{after:?}");
        assert_eq!(z.stats().pers_frames, 0);
    }
}
