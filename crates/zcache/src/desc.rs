//! The page descriptor zcache files in tmem: seven bytes.
//!
//! ```text
//!  55..53  kind: 1..=4 algorithm id (compressed object), 6 same-filled byte,
//!                7 same-filled word from the fill table (0 and 5 never occur)
//!  52      allocator: 0 ephemeral pool's, 1 persistent pool's
//!  51..48  0
//!  47..0   the allocator handle (zbud's and zsmalloc's handles are at most
//!          `Handle::BITS` = 48 bits wide: checked at compile time), or, for
//!          same-filled pages, the byte / the fill-table index
//! ```
//! Seven bytes with a niche (the top byte holds the kind, never 0), so a tree leaf slot
//! is 7 bytes and a leaf of 64 slots 449 bytes (7.1 bytes a page at 10^6 frontswap
//! pages, where the 8-byte descriptor's leaves were 8.1). The object's length is not here: the allocator keeps it (zsmalloc in the slot
//! header, zbud in its entry), [`zpool::ZPool::free_len`] gives it back with the free,
//! and whoever frees the object counts its bytes out of the statistics.
//!
//! A descriptor holds the handle itself: a load goes from the tree straight to the
//! allocator, and the reclaim ring's node is found from the handle's bits
//! ([`zpool::ZPool::object_id`], see `lru.rs`). A reclaimer's descriptor can only match
//! the object it isolated, because the allocator object of an isolated node is not
//! freed (so its handle is not reused) until the reclaimer is done.

use core::num::NonZeroU8;

use zpool::Handle;

/// A zcache page descriptor: 56 bits in seven bytes, the top byte never 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZDesc {
    low: [u8; 6],
    top: NonZeroU8,
}

/// What a descriptor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescKind {
    /// A compressed object.
    Object {
        /// Algorithm id (zcomp).
        alg: u8,
        /// Persistent allocator (true) or ephemeral (false).
        persistent: bool,
        /// The allocator handle.
        handle: Handle,
    },
    /// A page of one repeated byte.
    SameByte(u8),
    /// A same-filled page whose word is in the fill table at this index.
    SameWord(u32),
}

const KIND_SHIFT: u32 = 53;
const POOL_BIT: u64 = 1 << 52;
const LOW_MASK: u64 = (1 << Handle::BITS) - 1;

// Both allocators' handles fit.
const _: () = assert!(zbud::HANDLE_BITS <= Handle::BITS && zsmalloc::HANDLE_BITS <= Handle::BITS);
const _: () = assert!(Handle::BITS == 48);

const KIND_SAME_BYTE: u64 = 6;
const KIND_SAME_WORD: u64 = 7;

/// A valid handle, the never-taken fallback of `kind` (an object descriptor's handle bits
/// are those of a handle, never 0).
const ONE: Handle = match Handle::from_raw(1) {
    Some(h) => h,
    None => panic!("1 is a valid handle"),
};

impl ZDesc {
    /// From 56 bits whose top byte (the kind) is not 0.
    fn from_bits(raw: u64) -> ZDesc {
        let b = raw.to_le_bytes();
        ZDesc {
            low: [b[0], b[1], b[2], b[3], b[4], b[5]],
            // The kind is 1..=7 in every constructor.
            top: NonZeroU8::new(b[6]).unwrap_or(NonZeroU8::MIN),
        }
    }

    /// A compressed object's descriptor; `None` for an algorithm id outside 1..=4.
    pub fn object(alg: u8, persistent: bool, handle: Handle) -> Option<ZDesc> {
        if !(1..=4).contains(&alg) {
            return None;
        }
        Some(ZDesc::from_bits(
            (u64::from(alg) << KIND_SHIFT)
                | if persistent { POOL_BIT } else { 0 }
                | (handle.to_raw() & LOW_MASK),
        ))
    }

    /// A same-filled page of one repeated byte.
    pub fn same_byte(b: u8) -> ZDesc {
        ZDesc::from_bits(KIND_SAME_BYTE << KIND_SHIFT | u64::from(b))
    }

    /// A same-filled page whose word is fill-table entry `index`.
    pub fn same_word(index: u32) -> ZDesc {
        ZDesc::from_bits(KIND_SAME_WORD << KIND_SHIFT | u64::from(index))
    }

    /// The raw 56 bits.
    pub fn raw(self) -> u64 {
        let l = self.low;
        u64::from_le_bytes([l[0], l[1], l[2], l[3], l[4], l[5], self.top.get(), 0])
    }

    /// Decodes the descriptor.
    pub fn kind(self) -> DescKind {
        let raw = self.raw();
        match raw >> KIND_SHIFT {
            KIND_SAME_BYTE => DescKind::SameByte(raw as u8),
            KIND_SAME_WORD => DescKind::SameWord((raw & LOW_MASK) as u32),
            alg => DescKind::Object {
                alg: alg as u8,
                persistent: raw & POOL_BIT != 0,
                // Never 0: a handle is never 0.
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
        let d = ZDesc::object(4, true, h).unwrap();
        assert_eq!(
            d.kind(),
            DescKind::Object {
                alg: 4,
                persistent: true,
                handle: h
            }
        );
        let d = ZDesc::object(1, false, ONE).unwrap();
        assert_eq!(
            d.kind(),
            DescKind::Object {
                alg: 1,
                persistent: false,
                handle: ONE
            }
        );
        assert_ne!(
            ZDesc::object(1, false, ONE),
            ZDesc::object(1, true, ONE),
            "the allocator bit is part of the descriptor"
        );
        assert!(ZDesc::object(0, false, h).is_none());
        assert!(ZDesc::object(5, false, h).is_none());
        assert_eq!(ZDesc::same_byte(0).kind(), DescKind::SameByte(0));
        assert_eq!(ZDesc::same_byte(0xff).kind(), DescKind::SameByte(0xff));
        assert_eq!(
            ZDesc::same_word(u32::MAX).kind(),
            DescKind::SameWord(u32::MAX)
        );
        assert_eq!(core::mem::size_of::<ZDesc>(), 7);
        assert_eq!(core::mem::size_of::<Option<ZDesc>>(), 7);
    }
}
