//! Eviction (write-protect, copy, store, drop), discard, the CLOCK over the resident
//! pages that keeps the limit, and the background reclaimer.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::config::{CleanCopies, EvictReport};
use super::state::*;
use crate::error::RegionError;

impl Inner {
    pub(super) fn discard_page(&self, p: usize) -> Result<bool, RegionError> {
        let s = loop {
            let s = self.state[p].load(Ordering::Acquire);
            match s {
                UNTOUCHED => return Ok(false),
                BUSY => std::thread::yield_now(),
                _ => {
                    if self.take(p, s) {
                        break s;
                    }
                }
            }
        };
        if is_resident(s) {
            if let Err(e) = self.drop_memory(p) {
                self.publish(p, s);
                return Err(RegionError::Io("madvise (discard)", e));
            }
            self.resident.fetch_sub(1, Ordering::Relaxed);
        }
        if matches!(s, CLEAN | OUT_Z) {
            let _ = self.area.invalidate_page(p as u64);
        }
        if matches!(s, CLEAN | CLEAN_SPILL) {
            self.clean.fetch_sub(1, Ordering::Relaxed);
        }
        // A discarded page starts a new life: what was written to the old one says
        // nothing about it.
        self.wrote[p].store(false, Ordering::Relaxed);
        // A clean page was write-protected: the next fault is a missing fault on a
        // none pte (zero fill), and no write-protect marker survives the drop of
        // anonymous memory (for a memfd, MADV_REMOVE drops it with the page).
        self.publish(p, UNTOUCHED);
        self.wake(p);
        Ok(true)
    }

    /// Evicts one page. `wait`: a page busy with a fault or another eviction is waited
    /// for (a transition is short and never waits for an evictor, so this cannot
    /// deadlock: an evictor holds at most one page, and holds none while it waits);
    /// otherwise it is skipped.
    fn evict_page(&self, p: usize, buf: &mut PageBuf, r: &mut EvictReport, wait: bool) {
        let s = loop {
            let s = self.state[p].load(Ordering::Acquire);
            match s {
                DIRTY | CLEAN | CLEAN_SPILL => {
                    if self.take(p, s) {
                        break s;
                    }
                }
                BUSY if wait => std::thread::yield_now(),
                BUSY => {
                    r.busy += 1;
                    return;
                }
                _ => {
                    r.not_resident += 1;
                    return;
                }
            }
        };
        let addr = self.addr(p);
        if s != DIRTY {
            // Clean: write-protected since its copy was made (a write would have
            // taken a WP fault and made it DIRTY first), so the copy is current.
            if self.drop_memory(p).is_err() {
                self.publish(p, s);
                r.kept_resident += 1;
                return;
            }
            self.clean.fetch_sub(1, Ordering::Relaxed);
            self.publish(p, if s == CLEAN { OUT_Z } else { OUT_SPILL });
            self.resident.fetch_sub(1, Ordering::Relaxed);
            bump(&self.c.saved);
            self.verdicts.note(false);
            bump(&self.c.evictions);
            r.saved += 1;
            self.wake(p);
            return;
        }
        // Dirty. 1: write-protect. From here on every write to the page blocks in a
        // WP fault that the handler defers (the page is BUSY) until this eviction has
        // published its outcome and woken the range.
        if self.uffd.writeprotect(addr, PAGE, true).is_err() {
            self.publish(p, DIRTY);
            r.kept_resident += 1;
            bump(&self.c.kept);
            return;
        }
        // 2: copy the page out (reads still go straight through); its bytes can no
        // longer change.
        // SAFETY: `addr` is a resident page of the region's mapping (DIRTY, owned by
        // this eviction), readable, and write-protected since step 1, so no write can
        // race this read; `buf` is a separate 4096-byte buffer.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, buf.0.as_mut_ptr(), PAGE) };
        // 3: keep the copy somewhere, then 4: drop the memory.
        let next = if is_zero(&buf.0) {
            r.zero += 1;
            Some(OUT_ZERO)
        } else {
            match self.area.store(p as u64, &buf.0) {
                Ok(()) => {
                    bump(&self.c.compressions);
                    r.compressed += 1;
                    Some(OUT_Z)
                }
                Err(_) => {
                    bump(&self.c.rejects);
                    match &self.spill {
                        Some(f) if f.file.write_all_at(&buf.0, (p * PAGE) as u64).is_ok() => {
                            bump(&self.c.spill_writes);
                            r.spilled += 1;
                            Some(OUT_SPILL)
                        }
                        _ => None,
                    }
                }
            }
        };
        match next {
            Some(n) if self.drop_memory(p).is_ok() => {
                self.publish(p, n);
                self.resident.fetch_sub(1, Ordering::Relaxed);
                bump(&self.c.evictions);
                // 5: wake any writer blocked since step 1: it retries, takes a missing
                // fault, and the handler copies in the page as stored in step 3.
                self.wake(p);
            }
            other => {
                if other == Some(OUT_Z) {
                    let _ = self.area.invalidate_page(p as u64);
                }
                // Kept resident: un-protect (wakes blocked writers, which then write
                // to the page as it is).
                bump(&self.c.kept);
                r.kept_resident += 1;
                if other.is_some() {
                    // The counters above counted a keep that did not happen.
                    r.compressed = r.compressed.saturating_sub(u64::from(other == Some(OUT_Z)));
                    r.zero = r.zero.saturating_sub(u64::from(other == Some(OUT_ZERO)));
                    r.spilled = r
                        .spilled
                        .saturating_sub(u64::from(other == Some(OUT_SPILL)));
                }
                if self.uffd.writeprotect(addr, PAGE, false).is_err() {
                    self.wake(p);
                }
                self.publish(p, DIRTY);
            }
        }
    }

    pub(super) fn evict_pages(&self, pages: Range<usize>) -> EvictReport {
        let mut r = EvictReport::default();
        let mut buf = PageBuf::new();
        for p in pages {
            self.evict_page(p, &mut buf, &mut r, true);
        }
        r
    }

    /// The CLOCK hand's next victim: the next resident page whose referenced bit is
    /// clear, clearing the bits it passes (second chance); `None` after two turns.
    /// The hand's lock is held only to move the hand: evictions run outside it, so the
    /// reclaimer and the handler's direct reclaim evict side by side.
    fn clock_pick(&self) -> Option<usize> {
        let mut hand = self.hand.lock().ok()?;
        for _ in 0..2 * self.npages {
            let p = *hand;
            *hand = (p + 1) % self.npages;
            if !is_resident(self.state[p].load(Ordering::Relaxed)) {
                continue;
            }
            if self.referenced[p].swap(false, Ordering::Relaxed) {
                continue;
            }
            return Some(p);
        }
        None
    }

    /// CLOCK over the resident pages until at most `target` are resident (or 64 picks
    /// in a row evicted nothing: pages zcache refuses with no spill file stay).
    pub(super) fn enforce(&self, target: usize) -> EvictReport {
        self.enforce_some(target, u64::MAX)
    }

    /// [`Inner::enforce`], stopping after `most` pages dropped.
    pub(super) fn enforce_some(&self, target: usize, most: u64) -> EvictReport {
        let mut r = EvictReport::default();
        if self.npages == 0 {
            return r;
        }
        let mut buf: Option<Box<PageBuf>> = None;
        let mut misses = 0;
        while self.resident.load(Ordering::Relaxed) > target && misses < 64 && r.dropped() < most {
            let Some(p) = self.clock_pick() else { break };
            let before = r.dropped();
            let b = buf.get_or_insert_with(PageBuf::new);
            self.evict_page(p, b, &mut r, false);
            if r.dropped() == before {
                misses += 1;
            } else {
                misses = 0;
            }
        }
        r
    }

    /// Under [`CleanCopies::Adaptive`]: while the kept copies of resident pages are more
    /// than 1/`share` of the pages held out (plus one), drops copies: a clean page with
    /// its copy in zcache is taken, made writable (which wakes a writer that faulted on
    /// it meanwhile) and its copy freed, exactly as a write-protect fault would. Copies
    /// in the spill file cost no memory and stay. At most one pass over the pages;
    /// returns the copies dropped.
    pub(super) fn trim_copies(&self) -> u64 {
        let CleanCopies::Adaptive { share } = self.copies else {
            return 0;
        };
        let share = share.max(1);
        let over = || {
            self.clean.load(Ordering::Relaxed).saturating_mul(share)
                > self.out.load(Ordering::Relaxed).saturating_add(share)
        };
        if self.npages == 0 || !over() {
            return 0;
        }
        let Ok(mut hand) = self.trim_hand.lock() else {
            return 0;
        };
        let mut dropped = 0;
        for _ in 0..self.npages {
            if !over() {
                break;
            }
            let p = *hand;
            *hand = (p + 1) % self.npages;
            if self.state[p].load(Ordering::Relaxed) != CLEAN || !self.take(p, CLEAN) {
                continue;
            }
            if self.uffd.writeprotect(self.addr(p), PAGE, false).is_err() {
                // Still protected: the copy stays good, the page clean.
                self.publish(p, CLEAN);
                self.wake(p);
                break;
            }
            let _ = self.area.invalidate_page(p as u64);
            self.clean.fetch_sub(1, Ordering::Relaxed);
            self.publish(p, DIRTY);
            bump(&self.c.copies_dropped);
            dropped += 1;
        }
        dropped
    }

    pub(super) fn limit_target(&self) -> Option<usize> {
        let l = self.limit.load(Ordering::Relaxed);
        (l != usize::MAX).then(|| l - (l / 16))
    }
}

/// Pages the reclaimer evicts between two looks at the pool's holes.
const RECLAIM_BATCH: u64 = 256;

pub(super) fn reclaim_loop(inner: Arc<Inner>) {
    loop {
        {
            let (lock, cv) = &inner.reclaim;
            let Ok(stop) = lock.lock() else { return };
            if *stop {
                return;
            }
            let over = inner.resident.load(Ordering::Relaxed) > inner.limit.load(Ordering::Relaxed);
            if !over {
                let Ok((stop, _)) = cv.wait_timeout(stop, Duration::from_millis(20)) else {
                    return;
                };
                if *stop {
                    return;
                }
            }
        }
        // Pages come and go (refaults free objects, evictions store new ones), which
        // leaves holes in zsmalloc's zspages: compact whenever a few frames can be had,
        // also between batches of a long eviction run, so that the pool's peak does not
        // carry the holes of a whole run.
        let z = inner.area.zcache();
        let compact = || {
            if z.compactable_frames() >= 16 {
                z.compact();
            }
        };
        if let Some(t) = inner.limit_target() {
            while inner.enforce_some(t, RECLAIM_BATCH).dropped() == RECLAIM_BATCH {
                compact();
            }
        }
        inner.trim_copies();
        compact();
    }
}
