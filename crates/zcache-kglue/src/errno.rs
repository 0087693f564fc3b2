//! Error numbers (Linux's values; functions return them negated) and the mapping from
//! zcache's errors.

use core::ffi::c_int;

use zcache::{ZError, ZcacheError};

/// No such page: a load or get that missed (the caller's page is untouched).
pub const ZCACHE_ENOENT: c_int = 2;
/// The stored page is corrupt (checksum or decompression failed); the key is dropped.
pub const ZCACHE_EIO: c_int = 5;
/// No such pool id, or the swap type was not initialised (or its area was invalidated).
pub const ZCACHE_ENXIO: c_int = 6;
/// The page compresses too poorly to be worth keeping (not stored).
pub const ZCACHE_E2BIG: c_int = 7;
/// Out of memory for metadata (tree nodes, objects, pool registry).
pub const ZCACHE_ENOMEM: c_int = 12;
/// The handle names no live instance: never set up, torn down, or forged.
pub const ZCACHE_ENODEV: c_int = 19;
/// A malformed argument: a null pointer, a page size other than `ZCACHE_PAGE_SIZE`, a
/// negative pool id, an invalid configuration.
pub const ZCACHE_EINVAL: c_int = 22;
/// No page frame could be had (frame limit or host allocator) even after the bounded
/// reclaim a store may do; for setup: every instance slot is in use.
pub const ZCACHE_ENOSPC: c_int = 28;
/// Every compression context was busy (more CPUs storing at once than `contexts`): the
/// store was refused rather than wait; the kernel writes the page to swap itself.
pub const ZCACHE_EBUSY: c_int = 16;

/// The negative errno for a zcache error.
pub(crate) fn errno_of(e: ZcacheError) -> c_int {
    -match e {
        ZcacheError::Backend(b) => match b {
            ZError::NoFrame => ZCACHE_ENOSPC,
            ZError::CompressPoor | ZError::MeanCompressPoor | ZError::TooLarge => ZCACHE_E2BIG,
            ZError::NoMemory => ZCACHE_ENOMEM,
            ZError::Busy => ZCACHE_EBUSY,
            ZError::Corrupt | ZError::Unavailable | ZError::BadHandle => ZCACHE_EIO,
        },
        ZcacheError::UnknownPool | ZcacheError::UnknownSwapType | ZcacheError::PoolDestroyed => {
            ZCACHE_ENXIO
        }
        ZcacheError::NoMemory => ZCACHE_ENOMEM,
        ZcacheError::InvalidConfig(_) | ZcacheError::NotHostClient => ZCACHE_EINVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_distinct_meaningful_errno() {
        assert_eq!(errno_of(ZcacheError::Backend(ZError::NoFrame)), -28);
        assert_eq!(errno_of(ZcacheError::Backend(ZError::CompressPoor)), -7);
        assert_eq!(errno_of(ZcacheError::Backend(ZError::MeanCompressPoor)), -7);
        assert_eq!(errno_of(ZcacheError::Backend(ZError::Corrupt)), -5);
        assert_eq!(errno_of(ZcacheError::UnknownPool), -6);
        assert_eq!(errno_of(ZcacheError::UnknownSwapType), -6);
        assert_eq!(errno_of(ZcacheError::NoMemory), -12);
        assert_eq!(errno_of(ZcacheError::InvalidConfig("x")), -22);
        assert_eq!(errno_of(ZcacheError::Backend(ZError::Busy)), -16);
    }
}
