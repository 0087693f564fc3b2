//! Whether a compressed page is worth storing.

use crate::PAGE_SIZE;

/// What to do with a page that compressed to some length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Store it.
    Store,
    /// Reject it: it compressed to more than [`StorePolicy::max_len`] (zswap's
    /// `reject_compress_poor`, zcache's `compress_poor`).
    RejectPoor,
    /// Reject it: it compressed to more than [`StorePolicy::mean_max_len`] while the
    /// running mean of stored pages is also above it (zcache's `mean_compress_poor`).
    RejectMeanPoor,
}

impl Verdict {
    /// Whether the page should be stored.
    #[inline]
    pub const fn is_store(self) -> bool {
        matches!(self, Verdict::Store)
    }
}

/// Thresholds deciding whether a compressed page is worth a place in the pool.
///
/// zcache's rule: reject a page that compresses to more than 7/8 of a page; also reject
/// one over 5/8 of a page when the mean compressed size of the stored pages is over 5/8
/// too (a pool already full of poor pages takes no more of them). Both comparisons are
/// strict ("more than"), as in zcache. The caller keeps the running mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StorePolicy {
    /// Hard limit: a compressed length above this is always rejected.
    pub max_len: usize,
    /// Soft limit: a length above this is rejected when the running mean is above it too.
    pub mean_max_len: usize,
}

impl StorePolicy {
    /// zcache's hard limit: 7/8 of a page (3584 bytes at 4 KiB; it scales with the page).
    pub const DEFAULT_MAX_LEN: usize = PAGE_SIZE / 8 * 7;
    /// zcache's mean limit: 5/8 of a page (2560 bytes at 4 KiB).
    pub const DEFAULT_MEAN_MAX_LEN: usize = PAGE_SIZE / 8 * 5;

    /// A policy with these thresholds (in bytes of compressed data).
    #[inline]
    pub const fn new(max_len: usize, mean_max_len: usize) -> StorePolicy {
        StorePolicy {
            max_len,
            mean_max_len,
        }
    }

    /// A policy that stores everything that compressed at all (limits at `usize::MAX`).
    #[inline]
    pub const fn store_all() -> StorePolicy {
        StorePolicy::new(usize::MAX, usize::MAX)
    }

    /// The verdict for a page that compressed to `len` bytes, given `running_mean`, the
    /// mean compressed length of the pages stored so far (0 when none is stored).
    #[inline]
    pub const fn verdict(&self, len: usize, running_mean: usize) -> Verdict {
        if len > self.max_len {
            Verdict::RejectPoor
        } else if len > self.mean_max_len && running_mean > self.mean_max_len {
            Verdict::RejectMeanPoor
        } else {
            Verdict::Store
        }
    }
}

impl Default for StorePolicy {
    /// zcache's limits: 7/8 of a page hard, 5/8 against the running mean (3584 and 2560
    /// bytes at 4 KiB).
    fn default() -> StorePolicy {
        StorePolicy::new(Self::DEFAULT_MAX_LEN, Self::DEFAULT_MEAN_MAX_LEN)
    }
}
