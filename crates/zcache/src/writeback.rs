//! The writeback protocol: how a persistent page leaves zcache for the host's swap
//! device without ever putting stale bytes on the device.
//!
//! The host owns the device; zcache owns the compressed copy. Writing a page back is
//! five steps, and the order is the whole point:
//!
//! 1. zcache picks the LRU page and reads its key, holding no lock.
//! 2. **The host claims the slot** ([`Writeback::claim`]). From now until the release
//!    the host does not reuse the slot for another page, does not write it itself, and
//!    serves a read of it from the claimed page (or waits for the release). In Linux
//!    this is the swap-cache folio zswap allocates: it pins the swap entry
//!    (SWAP_HAS_CACHE) and its lock keeps swap-in and swap-out of that entry out.
//! 3. **zcache takes the entry only if the slot still maps to it**, under the bucket
//!    lock ([`tmem_core::Tmem::compare_and_take_in`]). If the slot was invalidated
//!    between 1 and 2 (swap-in freed it, perhaps it was reused for another page whose
//!    store then went to the device), the take fails, zcache releases the claim and
//!    writes nothing.
//! 4. zcache decompresses the page it took and hands it to [`Writeback::write`].
//! 5. The host releases the claim ([`Writeback::release`]).
//!
//! The old one-call protocol decompressed, wrote, and only then checked: a slot reused
//! between the read and the write got the old page written over the new one.
//!
//! **A store or invalidate that meets a claimed slot supersedes; zcache never waits.**
//! An invalidate before step 3 makes the take fail (nothing is written). A store that
//! reaches zcache after step 3 is kept as usual, and since every read of a slot asks
//! zcache first, the newer page wins whatever the device holds. The one ordering zcache
//! cannot provide is between two writes to the device: a host that writes a slot itself
//! while it is claimed (a refused store) must wait for the release, as the kernel's
//! folio lock makes it. That is why the claim exists, and why it is safe for a kernel:
//! the kernel already gives exactly this guarantee to zswap.
//!
//! If [`Writeback::write`] refuses, zcache puts its copy back unless the slot was
//! stored again meanwhile (the newer copy wins): a refused writeback loses nothing.
//!
//! No zcache, tmem or allocator lock is held while any of the three callbacks runs.
//! They run from [`crate::Zcache::reclaim`], [`crate::Zcache::shrinker_scan`] and
//! [`crate::Zcache::shrink`], never from a store: a store never does host I/O.

use zpool::Page;

/// A claim on one swap slot, from [`Writeback::claim`] to [`Writeback::release`].
#[derive(Debug, PartialEq, Eq)]
pub struct SlotClaim {
    /// The swap type.
    pub swap_type: u32,
    /// The slot.
    pub offset: u64,
    /// The host's own token for this claim (a swap-cache page, an index): zcache
    /// passes it back untouched.
    pub token: u64,
}

/// The host's swap device, for writeback of persistent pages. See the module docs for
/// the protocol and what each step promises.
pub trait Writeback: Send + Sync {
    /// Claims slot (`swap_type`, `offset`) for a writeback: `Some(token)` when the host
    /// has pinned the slot (no reuse, no device write of its own, reads served from the
    /// claim, until [`Writeback::release`]); `None` when it cannot (the slot is free,
    /// busy with a swap-in, or the host is out of pages): zcache keeps the page.
    fn claim(&self, swap_type: u32, offset: u64) -> Option<u64>;

    /// Writes the page zcache took for a claimed slot. `true`: the host has the page
    /// (zcache has dropped its copy, so later loads of the slot miss and the host reads
    /// its device); `false`: refused, and zcache keeps the page loadable.
    fn write(&self, claim: &SlotClaim, page: &Page) -> bool;

    /// Ends the claim. Called exactly once for every successful claim, after
    /// [`Writeback::write`] if zcache wrote (`written` says whether the page was
    /// accepted), or without a write when the slot no longer held the page zcache had
    /// picked.
    fn release(&self, claim: SlotClaim, written: bool);
}

impl<W: Writeback + ?Sized> Writeback for alloc::sync::Arc<W> {
    fn claim(&self, swap_type: u32, offset: u64) -> Option<u64> {
        (**self).claim(swap_type, offset)
    }
    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        (**self).write(claim, page)
    }
    fn release(&self, claim: SlotClaim, written: bool) {
        (**self).release(claim, written)
    }
}

impl<W: Writeback + ?Sized> Writeback for alloc::boxed::Box<W> {
    fn claim(&self, swap_type: u32, offset: u64) -> Option<u64> {
        (**self).claim(swap_type, offset)
    }
    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        (**self).write(claim, page)
    }
    fn release(&self, claim: SlotClaim, written: bool) {
        (**self).release(claim, written)
    }
}
