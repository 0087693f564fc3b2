//! The page descriptor zcache files in tmem: one `u64`.
//!
//! ```text
//!  63..61  kind: 1..=4 algorithm id (compressed object), 6 same-filled byte,
//!                7 same-filled word from the fill table (0 and 5 never occur)
//!  60      allocator: 0 ephemeral pool's, 1 persistent pool's
//!  59..L   object length in the allocator (header + compressed bytes, < PAGE_SIZE):
//!          PAGE_SHIFT bits, so L = 60 - PAGE_SHIFT (48 at 4 KiB, 46 at 16 KiB,
//!          44 at 64 KiB)
//!  L-1..0  the allocator handle (zbud's and zsmalloc's handles are at most L bits
//!          wide: checked at compile time), or, for same-filled pages, the byte / the
//!          fill-table index
//! ```
//! Eight bytes with a niche (the kind is never 0), so a tree leaf slot stays 8 bytes.
//! A descriptor holds the handle itself: a load goes from the tree straight to the
//! allocator, and the reclaim ring's node is found from the handle's bits
//! ([`zpool::ZPool::object_id`], see `lru.rs`). A reclaimer's descriptor can only match
//! the object it isolated, because the allocator object of an isolated node is not
//! freed (so its handle is not reused) until the reclaimer is done.

use core::num::NonZeroU64;

use zplat::PAGE_SHIFT;
use zpool::Handle;

/// A zcache page descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZDesc(NonZeroU64);

/// What a descriptor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescKind {
    /// A compressed object.
    Object {
        /// Algorithm id (zcomp).
        alg: u8,
        /// Persistent allocator (true) or ephemeral (false).
        persistent: bool,
        /// Object length in the allocator.
        len: usize,
        /// The allocator handle.
        handle: Handle,
    },
    /// A page of one repeated byte.
    SameByte(u8),
    /// A same-filled page whose word is in the fill table at this index.
    SameWord(u32),
}

const KIND_SHIFT: u32 = 61;
const POOL_BIT: u64 = 1 << 60;
const LEN_SHIFT: u32 = 60 - PAGE_SHIFT;
const LEN_MASK: u64 = (1 << PAGE_SHIFT) - 1;
const _: () = assert!(LEN_SHIFT >= 32);
const LOW_MASK: u64 = (1 << LEN_SHIFT) - 1;
// Both allocators' handles fit below the length.
const _: () = assert!(zbud::HANDLE_BITS <= LEN_SHIFT && zsmalloc::HANDLE_BITS <= LEN_SHIFT);
const KIND_SAME_BYTE: u64 = 6;
const KIND_SAME_WORD: u64 = 7;

/// A valid handle, the never-taken fallback of `kind` (an object descriptor's handle bits
/// are those of a handle, never 0).
const ONE: Handle = match Handle::from_raw(1) {
    Some(h) => h,
    None => panic!("1 is a valid handle"),
};

/// Largest object length a descriptor can carry.
pub const MAX_OBJECT_LEN: usize = LEN_MASK as usize;

impl ZDesc {
    /// A compressed object's descriptor; `None` if a field does not fit.
    pub fn object(alg: u8, persistent: bool, len: usize, handle: Handle) -> Option<ZDesc> {
        let h = handle.to_raw();
        if !(1..=4).contains(&alg) || len > MAX_OBJECT_LEN || h > LOW_MASK {
            return None;
        }
        let raw = (u64::from(alg) << KIND_SHIFT)
            | if persistent { POOL_BIT } else { 0 }
            | ((len as u64) << LEN_SHIFT)
            | h;
        NonZeroU64::new(raw).map(ZDesc)
    }

    /// A same-filled page of one repeated byte.
    pub fn same_byte(b: u8) -> ZDesc {
        ZDesc(NonZeroU64::MIN.saturating_add((KIND_SAME_BYTE << KIND_SHIFT | u64::from(b)) - 1))
    }

    /// A same-filled page whose word is fill-table entry `index`.
    pub fn same_word(index: u32) -> ZDesc {
        ZDesc(NonZeroU64::MIN.saturating_add((KIND_SAME_WORD << KIND_SHIFT | u64::from(index)) - 1))
    }

    /// The raw bits.
    pub fn raw(self) -> u64 {
        self.0.get()
    }

    /// Decodes the descriptor.
    pub fn kind(self) -> DescKind {
        let raw = self.0.get();
        match raw >> KIND_SHIFT {
            KIND_SAME_BYTE => DescKind::SameByte(raw as u8),
            KIND_SAME_WORD => DescKind::SameWord((raw & LOW_MASK) as u32),
            alg => DescKind::Object {
                alg: alg as u8,
                persistent: raw & POOL_BIT != 0,
                len: ((raw >> LEN_SHIFT) & LEN_MASK) as usize,
                // Never 0: `object` refuses no handle, and a handle is never 0.
                handle: Handle::from_raw(raw & LOW_MASK).unwrap_or(ONE),
            },
        }
    }
}

impl core::fmt::Debug for ZDesc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ZDesc({:?})", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let h = Handle::from_raw(LOW_MASK).unwrap();
        let d = ZDesc::object(4, true, zplat::PAGE_SIZE - 1, h).unwrap();
        assert_eq!(
            d.kind(),
            DescKind::Object {
                alg: 4,
                persistent: true,
                len: zplat::PAGE_SIZE - 1,
                handle: h
            }
        );
        if let Some(wide) = Handle::from_raw(LOW_MASK + 1) {
            assert!(ZDesc::object(4, true, 1, wide).is_none());
        }
        let h = ONE;
        let d = ZDesc::object(1, false, 0, h).unwrap();
        assert_eq!(
            d.kind(),
            DescKind::Object {
                alg: 1,
                persistent: false,
                len: 0,
                handle: h
            }
        );
        assert!(ZDesc::object(0, false, 1, h).is_none());
        assert!(ZDesc::object(5, false, 1, h).is_none());
        assert!(ZDesc::object(1, false, zplat::PAGE_SIZE, h).is_none());
        assert_eq!(ZDesc::same_byte(0).kind(), DescKind::SameByte(0));
        assert_eq!(ZDesc::same_byte(0xff).kind(), DescKind::SameByte(0xff));
        assert_eq!(
            ZDesc::same_word(u32::MAX).kind(),
            DescKind::SameWord(u32::MAX)
        );
        assert_eq!(core::mem::size_of::<Option<ZDesc>>(), 8);
    }
}
