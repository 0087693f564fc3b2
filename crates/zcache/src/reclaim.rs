//! Reclaim: zcache's own CLOCK ring decides what leaves; the allocators only allocate.
//!
//! * **Eviction** (ephemeral pages): take the ring's next page (second chance for referenced
//!   pages), read its key from the object header, and invalidate the key only if it
//!   still maps to that object ([`tmem_core::Tmem::compare_and_invalidate`]).
//! * **Writeback** (persistent pages): the claim protocol of [`crate::writeback`].
//! * **Compaction** turns the holes eviction leaves into whole frames, in bounded
//!   steps.
//!
//! Entry points, and where they may run:
//! * a store that finds no frame evicts at most [`crate::Config::max_reclaim_per_store`]
//!   ephemeral pages, and only when that can let the store in (never just to be refused
//!   by the limit's hysteresis anyway); it never writes back (no host I/O in a store);
//! * [`Zcache::reclaim`]: the host's worker (zswap's shrink_worker), until the pool is
//!   back under its accept threshold or the budget is spent;
//! * [`Zcache::shrinker_count`] / [`Zcache::shrinker_scan`]: a kernel shrinker;
//! * [`Zcache::shrink`]: down to a frame target, in bounded rounds.
//!
//! Every lock is held for O(1) work per page (the ring lock, one bucket lock, one
//! allocator lock, one at a time), and none across a host callback.

use tmem_core::PoolKind;
use zpool::{Handle, ZPool};

use crate::desc::ZDesc;
use crate::frontswap::swap_key_of;
use crate::header;
use crate::lru::NoTail;
use crate::pam::{EvictScratch, ZCtx, decode_object};
use crate::stats::C;
use crate::writeback::SlotClaim;
use crate::zcache::Zcache;

/// Referenced pages one scan of the ring may pass (clearing their bits) before it
/// gives up for this call. A rotation is one byte's read-modify-write, as cheap as the
/// [`crate::lru::MAX_SKIPS`] free nodes a scan may pass, and every new page is stored
/// referenced: so a scan may clear as many bits as it passes nodes.
const MAX_ROTATIONS: usize = crate::lru::MAX_SKIPS;

/// Pages reclaimed between two bounded compaction steps.
const COMPACT_EVERY: usize = 32;

/// Objects one compaction step may move.
const COMPACT_MOVES: usize = 64;

/// What a reclaim call achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimOutcome {
    /// Frames given back to the page source (held before minus held after: a
    /// concurrent store can make it smaller than what reclaim itself freed).
    pub frames_freed: usize,
    /// Ephemeral pages evicted.
    pub evicted_pages: usize,
    /// Persistent pages written back (accepted by the host).
    pub written_back_pages: usize,
    /// Referenced pages given a second chance on the way.
    pub rotations: usize,
    /// Frames freed by compaction (included in `frames_freed`).
    pub compacted_frames: usize,
    /// Whether the pool is still at or over its accept threshold (more work wanted).
    pub more: bool,
}

/// The result of one page's reclaim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The page left zcache.
    Done,
    /// The page stays (refused, busy, not a swap page, raced): try the next one.
    Kept,
    /// The list is empty.
    Empty,
}

impl Zcache {
    /// Evicts the ephemeral ring's next page. Locks: the ring lock (O(1 +
    /// rotations)), then the allocator's for the header read, then one bucket lock.
    fn evict_one(&self, scratch: &mut EvictScratch, shard: usize, rot: &mut usize) -> Step {
        let pam = self.tmem.pam();
        let iso = match pam.eph_lru.isolate(MAX_ROTATIONS) {
            Ok(iso) => iso,
            Err(NoTail::Empty) => return Step::Empty,
            Err(NoTail::Rotated(n)) => {
                *rot += n;
                pam.stats.add(shard, C::lru_rotations, n as i64);
                return Step::Kept;
            }
        };
        *rot += iso.rotated;
        pam.stats.add(shard, C::lru_rotations, iso.rotated as i64);
        // The object outlives its descriptor while its node is isolated: the handle is
        // there (`None` only if the allocator broke its numbering).
        let handle = pam.eph[0].handle_of_id(iso.id);
        let step = match handle {
            Some(h) => self.evict_isolated(h, scratch, shard),
            None => {
                pam.stats.inc(shard, C::evict_corrupt);
                Step::Kept
            }
        };
        pam.finish_isolated(shard, false, iso.id, handle);
        step
    }

    fn evict_isolated(&self, handle: Handle, scratch: &mut EvictScratch, shard: usize) -> Step {
        let pam = self.tmem.pam();
        let mut found = None;
        // The header is decoded (and the whole object checksummed) where it lies.
        let r = pam.eph[0].map_read(handle, &mut scratch.obj, &mut |obj| {
            found = header::decode(obj);
        });
        if r.is_err() {
            return Step::Kept;
        }
        let Some(hdr) = found else {
            pam.stats.inc(shard, C::evict_corrupt);
            return Step::Kept;
        };
        let Some(desc) = ZDesc::object(handle) else {
            return Step::Kept;
        };
        let k = hdr.key;
        // Only an ephemeral pool files the ephemeral allocator's handles: a descriptor
        // does not name its allocator, so a persistent pool (one that took a destroyed
        // pool's id, say) is never searched for this handle.
        let Ok(pool) = self.tmem.pool(k.pool) else {
            return Step::Kept;
        };
        if pool.info().kind != PoolKind::Ephemeral {
            pam.stats.inc(shard, C::evict_corrupt);
            return Step::Kept;
        }
        if self
            .tmem
            .compare_and_invalidate_in(&pool, k.oid, k.index, &desc)
            == Ok(true)
        {
            pam.stats.inc(shard, C::evicted_eph_pages);
            Step::Done
        } else {
            Step::Kept
        }
    }

    /// Writes one persistent page back through the claim protocol
    /// ([`crate::writeback`]). No lock is held across `claim`, `write` or `release`.
    fn writeback_one(&self, ctx: &mut ZCtx, rot: &mut usize) -> Step {
        let Some(wb) = &self.writeback else {
            return Step::Empty;
        };
        let pam = self.tmem.pam();
        let shard = ctx.shard;
        let iso = match pam.pers_lru.isolate(MAX_ROTATIONS) {
            Ok(iso) => iso,
            Err(NoTail::Empty) => return Step::Empty,
            Err(NoTail::Rotated(n)) => {
                *rot += n;
                pam.stats.add(shard, C::lru_rotations, n as i64);
                return Step::Kept;
            }
        };
        *rot += iso.rotated;
        pam.stats.add(shard, C::lru_rotations, iso.rotated as i64);
        let (comps, scratch) = ctx.evict_parts();

        // 1. Pick: read the object (its key is in the header), no tmem lock. The object
        //    outlives its descriptor while the node is isolated, so the handle is there.
        let held = pam.pers[0].handle_of_id(iso.id);
        let read = held.map(|h| (h, pam.pers[0].read(h, &mut scratch.obj)));
        let Some((handle, Ok(n))) = read else {
            pam.finish_isolated(shard, true, iso.id, held);
            return Step::Kept;
        };
        let Some(hdr) = header::decode(&scratch.obj[..n]) else {
            pam.stats.inc(shard, C::evict_corrupt);
            pam.finish_isolated(shard, true, iso.id, held);
            return Step::Kept;
        };
        let k = hdr.key;
        // Only a persistent pool files the persistent allocator's handles (see
        // `evict_isolated`).
        let (Some((swap_type, offset)), Some(desc), Some(pool)) = (
            swap_key_of(&k),
            ZDesc::object(handle),
            self.tmem
                .pool(k.pool)
                .ok()
                .filter(|p| p.info().kind == PoolKind::Persistent),
        ) else {
            // A host-made persistent pool has no swap slot to write to.
            pam.stats.inc(shard, C::writeback_no_slot);
            pam.finish_isolated(shard, true, iso.id, held);
            return Step::Kept;
        };

        // 2. The host claims the slot.
        let Some(token) = wb.claim(swap_type, offset) else {
            pam.stats.inc(shard, C::writeback_busy);
            pam.finish_isolated(shard, true, iso.id, held);
            return Step::Kept;
        };
        let claim = SlotClaim {
            swap_type,
            offset,
            token,
        };

        // 3. Take the entry only if the slot still maps to it (bucket lock).
        let taken = match self.tmem.compare_and_take_in(&pool, k.oid, k.index, &desc) {
            Ok(Some(d)) => d,
            Ok(None) | Err(_) => {
                pam.stats.inc(shard, C::writeback_raced);
                wb.release(claim, false);
                pam.finish_isolated(shard, true, iso.id, held);
                return Step::Kept;
            }
        };

        // 4. Decompress what was taken (an isolated node's object is not freed, so its
        //    handle is not reused and the bytes read in step 1 are this object's) and
        //    hand it to the host.
        let decoded = decode_object(comps, &scratch.obj[..n], &mut scratch.page).is_ok();
        if !decoded {
            pam.stats.inc(shard, C::evict_corrupt);
        }
        let written = decoded && wb.write(&claim, &scratch.page);
        let info = pool.info();
        if written {
            tmem_core::PamOps::free(pam, &info, taken);
            pam.stats.inc(shard, C::written_back_pages);
        } else {
            if decoded {
                pam.stats.inc(shard, C::writeback_refused);
            }
            // Nothing is lost: back in place unless a newer store filled the slot.
            if let Some(d) = self.tmem.restore_if_absent_in(&pool, k.oid, k.index, taken) {
                tmem_core::PamOps::free(pam, &info, d);
            }
        }

        // 5. The host releases the claim.
        wb.release(claim, written);
        pam.finish_isolated(shard, true, iso.id, held);
        if written { Step::Done } else { Step::Kept }
    }

    /// One bounded compaction step of both allocators; frames freed.
    /// One bounded compaction step of the pools that may have holes (`eph`, `pers`) and
    /// hold frames at all (a relaxed read: an empty pool is not walked).
    fn compact_step(&self, eph: bool, pers: bool) -> usize {
        let pam = self.tmem.pam();
        let step = |p: &crate::allocator::Allocator| {
            if p.total_frames() > 0 {
                p.compact_step(COMPACT_MOVES).frames_freed
            } else {
                0
            }
        };
        (if eph { step(&pam.eph[0]) } else { 0 }) + (if pers { step(&pam.pers[0]) } else { 0 })
    }

    /// Reclaims up to `budget` pages (ephemeral first, then persistent through
    /// writeback), stopping early once `stop()` says enough; compacts in bounded steps
    /// as it goes. One reclaimer at a time: a second caller returns at once.
    fn reclaim_pages(&self, budget: usize, stop: &dyn Fn() -> bool) -> Option<ReclaimOutcome> {
        let mut g = self.reclaim_ctx.try_lock_token()?;
        let ctx = &mut *g;
        let src = &self.tmem.pam().source;
        let before = src.held();
        let mut out = ReclaimOutcome::default();
        let mut since_compact = 0;
        let mut misses = 0;
        let mut eph_empty = false;
        while out.evicted_pages + out.written_back_pages < budget && !stop() {
            let shard = ctx.shard;
            let step = if eph_empty {
                Step::Empty
            } else {
                self.evict_one(&mut ctx.evict, shard, &mut out.rotations)
            };
            let step = match step {
                Step::Empty => {
                    eph_empty = true;
                    let s = self.writeback_one(ctx, &mut out.rotations);
                    if s == Step::Done {
                        out.written_back_pages += 1;
                    }
                    s
                }
                s => {
                    if s == Step::Done {
                        out.evicted_pages += 1;
                    }
                    s
                }
            };
            match step {
                Step::Done => {
                    misses = 0;
                    since_compact += 1;
                    if since_compact >= COMPACT_EVERY {
                        since_compact = 0;
                        out.compacted_frames += self.compact_step(!eph_empty, eph_empty);
                    }
                }
                // Bounded: a run of pages that all stay ends the call (each one is
                // back at the head, so the next call sees others).
                Step::Kept => {
                    misses += 1;
                    if misses >= budget.max(1) {
                        break;
                    }
                }
                Step::Empty => break,
            }
        }
        if out.evicted_pages + out.written_back_pages == 0 {
            // Nothing left to evict: holes left by invalidations may still free frames.
            out.compacted_frames += self.compact_step(true, true);
        } else if since_compact > 0 {
            out.compacted_frames +=
                self.compact_step(out.evicted_pages > 0, out.written_back_pages > 0);
        }
        out.frames_freed = before.saturating_sub(src.held());
        out.more = !src.can_accept();
        let stats = &self.tmem.pam().stats;
        if out.frames_freed == 0 && out.evicted_pages + out.written_back_pages == 0 {
            stats.inc(ctx.shard, C::reject_reclaim_fail);
        }
        Some(out)
    }

    /// The host's reclaim worker (zswap's shrink_worker): reclaims at most `budget`
    /// pages, ephemeral ones first (evicted), then persistent ones (written back through
    /// the host's [`crate::Writeback`]), until the pool is below its accept threshold,
    /// so stores are accepted again. Call it from a context that may do the host's I/O;
    /// when a store was refused at the limit, [`Zcache::reclaim_wanted`] says so.
    pub fn reclaim(&self, budget: usize) -> ReclaimOutcome {
        let src = &self.tmem.pam().source;
        self.reclaim_pages(budget, &|| src.can_accept() && !src.is_full())
            .unwrap_or(ReclaimOutcome {
                more: !src.can_accept(),
                ..ReclaimOutcome::default()
            })
    }

    /// Whether the pool is at its limit or inside its hysteresis, so stores are being
    /// refused until [`Zcache::reclaim`] runs.
    pub fn reclaim_wanted(&self) -> bool {
        !self.tmem.pam().source.can_accept()
    }

    /// A kernel shrinker's `count_objects`: pages reclaim could free now (every
    /// ephemeral page; persistent pages too when a [`crate::Writeback`] is configured).
    pub fn shrinker_count(&self) -> usize {
        let pam = self.tmem.pam();
        pam.eph_lru.len()
            + if self.writeback.is_some() {
                pam.pers_lru.len()
            } else {
                0
            }
    }

    /// A kernel shrinker's `scan_objects`: reclaims up to `nr_to_scan` pages whatever
    /// the threshold, and returns how many left zcache (0 also when another reclaimer is
    /// running: the kernel then tries later).
    pub fn shrinker_scan(&self, nr_to_scan: usize) -> usize {
        self.reclaim_pages(nr_to_scan, &|| false)
            .map(|o| o.evicted_pages + o.written_back_pages)
            .unwrap_or(0)
    }

    /// Gives frames back until at most `target_frames` are held, in rounds of bounded
    /// reclaim (64 pages each); stops when a round frees nothing.
    pub fn shrink(&self, target_frames: usize) -> ReclaimOutcome {
        let src = &self.tmem.pam().source;
        let mut total = ReclaimOutcome::default();
        while src.held() > target_frames {
            let Some(o) = self.reclaim_pages(64, &|| src.held() <= target_frames) else {
                break;
            };
            total.frames_freed += o.frames_freed;
            total.evicted_pages += o.evicted_pages;
            total.written_back_pages += o.written_back_pages;
            total.rotations += o.rotations;
            total.compacted_frames += o.compacted_frames;
            if o.frames_freed == 0 && o.evicted_pages + o.written_back_pages == 0 {
                break;
            }
        }
        total.more = !src.can_accept();
        total
    }

    /// One bounded compaction step of the ephemeral allocator for a store whose
    /// evictions freed no whole frame; frames freed.
    pub(crate) fn compact_for_store(&self) -> usize {
        self.compact_step(true, false)
    }

    /// A store found no frame: evicts ephemeral pages (at most `left`) so it may retry,
    /// but only when freeing that many frames could let it in. Returns whether a page
    /// was evicted. Persistent stores steal ephemeral pages; they never write back here.
    pub(crate) fn reclaim_for_store(&self, ctx: &mut ZCtx, kind: PoolKind, left: usize) -> bool {
        let pam = self.tmem.pam();
        let shard = ctx.shard;
        if !pam.source.could_accept_after(left) {
            // The hysteresis would refuse the retry anyway: leave it to the worker.
            return false;
        }
        let mut rot = 0;
        let mut ok = false;
        // Bounded: at most `left` pages are looked at (a page that stays is one try).
        for _ in 0..left.max(1) {
            match self.evict_one(&mut ctx.evict, shard, &mut rot) {
                Step::Kept => continue,
                Step::Done => ok = true,
                Step::Empty => {}
            }
            break;
        }
        let c = match (kind, ok) {
            (PoolKind::Ephemeral, true) => C::eph_ate_tail,
            (PoolKind::Ephemeral, false) => C::eph_ate_tail_failed,
            (PoolKind::Persistent, true) => C::pers_ate_eph,
            (PoolKind::Persistent, false) => C::pers_ate_eph_failed,
        };
        pam.stats.inc(shard, c);
        ok
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::sync::Arc;
    use tmem_core::{Oid, PoolKind};
    use zpool::{HeapPageSource, ZPool};

    use crate::config::{AllocatorKind, Config};
    use crate::desc::{DescKind, ZDesc};
    use crate::header::{MAX_HEADER, checksum, decode, encode_key};
    use crate::zcache::Zcache;
    use tmem_core::{Key, PoolId};

    fn page(seed: u8) -> zpool::Page {
        let mut p = [0u8; zpool::PAGE_SIZE];
        for (i, b) in p.iter_mut().enumerate() {
            *b = ((i / 16) as u8).wrapping_mul(seed) ^ (i / 1024) as u8;
        }
        p
    }

    /// Rewrites the header of object `h` to name `pool` (same key otherwise), with a
    /// checksum that matches: a corrupt header no check below the key can catch.
    fn rename_pool(a: &crate::allocator::Allocator, h: zpool::Handle, pool: PoolId) {
        let mut obj = alloc::vec![0u8; zpool::PAGE_SIZE];
        let n = a.read(h, &mut obj).unwrap();
        let hdr = decode(&obj[..n]).unwrap();
        let mut head = [0u8; MAX_HEADER];
        let key = Key { pool, ..hdr.key };
        // Pool ids of one varint byte: the header keeps its length.
        assert_eq!(encode_key(&mut head, hdr.alg, &key), hdr.len);
        obj[4..hdr.len].copy_from_slice(&head[4..hdr.len]);
        let sum = checksum(&obj[4..n]);
        obj[..4].copy_from_slice(&sum.to_le_bytes());
        a.write(h, &obj[..n]).unwrap();
    }

    /// The only descriptor of `pool`.
    fn only_desc(z: &Zcache, pool: PoolId) -> Option<DescKind> {
        let mut found = None;
        z.tmem
            .for_each(pool, &mut |_, _, d: &ZDesc| found = Some(d.kind()))
            .unwrap();
        found
    }

    fn both_zsmalloc() -> Config {
        Config {
            ephemeral_allocator: AllocatorKind::Zsmalloc,
            persistent_allocator: AllocatorKind::Zsmalloc,
            ..Config::default()
        }
    }

    /// Eviction starts from an ephemeral allocator handle and finds the key in the
    /// object's header. A descriptor does not name its allocator, and both allocators
    /// here are zsmalloc, so a persistent pool can hold a descriptor with the very same
    /// handle bits. Should a header name that pool (a pool id destroyed and reused
    /// while the reclaimer held the node, after 2^32 pool creations; or a corrupt
    /// header whose checksum still matches, as made here), eviction must refuse, not
    /// invalidate the persistent page.
    #[test]
    fn eviction_never_compares_in_a_persistent_pool() {
        let z = Zcache::new(both_zsmalloc(), Arc::new(HeapPageSource)).unwrap();
        let c = z.new_client().unwrap();
        let eph = z.new_pool(c, PoolKind::Ephemeral).unwrap();
        let pers = z.new_pool(c, PoolKind::Persistent).unwrap();
        let oid = Oid::new(1, 2, 3);
        let a = page(3);
        z.store(eph, oid, 0, &a).unwrap();
        z.store(pers, oid, 0, &a).unwrap();
        let pam = z.tmem.pam();
        let iso = (0..4)
            .find_map(|_| pam.eph_lru.isolate(super::MAX_ROTATIONS).ok())
            .unwrap();
        let h = pam.eph[0].handle_of_id(iso.id).unwrap();
        // The two allocators gave the two objects equal handles: the case the check is for.
        assert_eq!(only_desc(&z, pers), Some(DescKind::Object(h)));

        // The ephemeral object's header now names the persistent pool.
        rename_pool(&pam.eph[0], h, pers);

        let mut scratch = crate::pam::EvictScratch {
            obj: alloc::vec![0u8; zpool::PAGE_SIZE].into_boxed_slice(),
            page: alloc::boxed::Box::new([0u8; zpool::PAGE_SIZE]),
        };
        let corrupt = z.stats().counters.evict_corrupt;
        assert_eq!(z.evict_isolated(h, &mut scratch, 0), super::Step::Kept);
        assert_eq!(z.stats().counters.evict_corrupt, corrupt + 1);
        pam.finish_isolated(0, false, iso.id, Some(h));
        let mut out = [0u8; zpool::PAGE_SIZE];
        let hit = z.load(pers, oid, 0, &mut out, tmem_core::LoadMode::Keep);
        assert_eq!(hit, Ok(true), "the persistent page was evicted");
        assert_eq!(out, a);
    }

    /// The same for writeback, which starts from a persistent handle: a header naming an
    /// ephemeral pool that holds equal handle bits at a swap-shaped key is not written
    /// back, and neither pool loses its page.
    #[test]
    fn writeback_never_takes_from_an_ephemeral_pool() {
        use crate::frontswap::FRONTSWAP_TAG;
        let wb = Arc::new(crate::testing::RecordingWriteback::default());
        let z =
            Zcache::with_writeback(both_zsmalloc(), Arc::new(HeapPageSource), wb.clone()).unwrap();
        let c = z.new_client().unwrap();
        let eph = z.new_pool(c, PoolKind::Ephemeral).unwrap();
        let pers = z.new_pool(c, PoolKind::Persistent).unwrap();
        // Swap type 0, offset 1: a slot the recording host claims and writes.
        let oid = Oid::new(0, 0, FRONTSWAP_TAG);
        let a = page(3);
        z.store(pers, oid, 1, &a).unwrap();
        z.store(eph, oid, 1, &a).unwrap();
        let Some(DescKind::Object(h)) = only_desc(&z, pers) else {
            panic!("no persistent object");
        };
        assert_eq!(only_desc(&z, eph), Some(DescKind::Object(h)));
        rename_pool(&z.tmem.pam().pers[0], h, eph);

        let mut ctx = crate::pam::ZCtx::new(0, z.config.compressor).unwrap();
        let no_slot = z.stats().counters.writeback_no_slot;
        let mut rot = 0;
        assert_eq!(z.writeback_one(&mut ctx, &mut rot), super::Step::Kept);
        assert_eq!(z.stats().counters.writeback_no_slot, no_slot + 1);
        assert_eq!(wb.count(), 0, "a page was written back");
        assert!(wb.violations().is_empty(), "{:?}", wb.violations());
        let mut out = [0u8; zpool::PAGE_SIZE];
        for pool in [eph, pers] {
            let hit = z.load(pool, oid, 1, &mut out, tmem_core::LoadMode::Keep);
            assert_eq!(hit, Ok(true), "pool {pool:?} lost its page");
            assert_eq!(out, a);
        }
    }

    /// A page invalidated while a reclaimer holds its node keeps its allocator object
    /// (so its id and handle) until the reclaimer's `finish`, which frees it; a store
    /// meanwhile gets another id.
    #[test]
    fn an_object_outlives_its_descriptor_while_isolated() {
        for kind in AllocatorKind::ALL {
            let z = Zcache::new(
                Config {
                    ephemeral_allocator: kind,
                    ..Config::default()
                },
                Arc::new(HeapPageSource),
            )
            .unwrap();
            let pool = z
                .new_pool(z.new_client().unwrap(), PoolKind::Ephemeral)
                .unwrap();
            let oid = Oid::new(1, 2, 3);
            let (a, b) = (page(3), page(5));
            z.store(pool, oid, 0, &a).unwrap();
            let pam = z.tmem.pam();
            let iso = (0..4)
                .find_map(|_| pam.eph_lru.isolate(super::MAX_ROTATIONS).ok())
                .unwrap();
            z.invalidate_page(pool, oid, 0).unwrap();
            let held = pam.eph[0].handle_of_id(iso.id);
            assert!(held.is_some(), "{kind:?}: object freed while isolated");
            assert_eq!(pam.eph[0].stats().objects, 1);
            z.store(pool, oid, 1, &b).unwrap();
            assert_eq!(pam.eph[0].stats().objects, 2);
            pam.finish_isolated(0, false, iso.id, held);
            assert_eq!(pam.eph[0].handle_of_id(iso.id), None, "{kind:?}");
            assert_eq!(pam.eph[0].stats().objects, 1);
            let mut out = [0u8; zpool::PAGE_SIZE];
            let hit = z.load(pool, oid, 1, &mut out, tmem_core::LoadMode::Keep);
            assert_eq!(hit, Ok(true));
            assert_eq!(out, b);
            assert_eq!(z.stats().counters.free_errors, 0);
        }
    }
}
