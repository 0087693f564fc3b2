//! The page descriptor zcache files in tmem: six bytes.
//!
//! ```text
//!  47      1: a compressed object, its allocator handle in 46..0
//!          0: a same-filled page:
//!  46        1 (so the top byte is never 0)
//!  45        0: one repeated byte, in 7..0; 1: a word from the fill table, its index
//!            in 31..0
//! ```
//! Six bytes with a niche (the top byte is never 0), so a tree leaf slot is 6 bytes and a
//! leaf of 64 slots 385 bytes (6.0 bytes a page at 10^6 frontswap pages; the 7-byte
//! descriptor's leaves were 7.1, the 8-byte one's 8.1).
//!
//! What is not here, and where it is:
//! * the object's length: the allocator keeps it (zsmalloc in the slot header, zbud in
//!   its entry), [`zpool::ZPool::free_len`] gives it back with the free, and whoever
//!   frees the object counts its bytes out of the statistics;
//! * the compressor: the object's own header names it (`header.rs`), and a load reads
//!   the header first anyway;
//! * which allocator holds the object: the pool's kind says it (persistent pools store
//!   in the persistent allocator, ephemeral ones in the ephemeral allocator), and every
//!   backend call that reaches a descriptor is given the pool's [`tmem_core::PoolInfo`].
//!   A reclaimer compares a descriptor only with what is filed in a pool of its own
//!   allocator's kind (`reclaim.rs`), so two equal handles of the two allocators are
//!   never taken for each other.
//!
//! Both allocators' handles are at most 47 bits (checked at compile time): zsmalloc's
//! are 17 generation, 8 class and 22 index bits at 4 KiB pages, zbud's 22 generation
//! and 25 index bits.
//!
//! A descriptor holds the handle itself: a load goes from the tree straight to the
//! allocator, and the reclaim ring's node is found from the handle's bits
//! ([`zpool::ZPool::object_id`], see `lru.rs`). A reclaimer's descriptor can only match
//! the object it isolated, because the allocator object of an isolated node is not
//! freed (so its handle is not reused) until the reclaimer is done.

use core::num::NonZeroU8;

use zpool::Handle;

/// A zcache page descriptor: 48 bits in six bytes, the top byte never 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZDesc {
    low: [u8; 5],
    top: NonZeroU8,
}

/// What a descriptor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescKind {
    /// A compressed object: its handle in the allocator of the pool's kind.
    Object(Handle),
    /// A page of one repeated byte.
    SameByte(u8),
    /// A same-filled page whose word is in the fill table at this index.
    SameWord(u32),
}

/// Bits of handle a descriptor holds.
pub const HANDLE_BITS: u32 = 47;
const OBJECT_BIT: u64 = 1 << 47;
const SAME_BIT: u64 = 1 << 46;
const WORD_BIT: u64 = 1 << 45;
const HANDLE_MASK: u64 = OBJECT_BIT - 1;

// Both allocators' handles fit.
const _: () = assert!(zbud::HANDLE_BITS <= HANDLE_BITS && zsmalloc::HANDLE_BITS <= HANDLE_BITS);
const _: () = assert!(HANDLE_BITS < Handle::BITS);

/// A valid handle, the never-taken fallback of `kind` (an object descriptor's handle bits
/// are those of a handle, never 0).
const ONE: Handle = match Handle::from_raw(1) {
    Some(h) => h,
    None => panic!("1 is a valid handle"),
};

impl ZDesc {
    /// From 48 bits whose top byte is not 0.
    fn from_bits(raw: u64) -> ZDesc {
        let b = raw.to_le_bytes();
        ZDesc {
            low: [b[0], b[1], b[2], b[3], b[4]],
            // Bit 47 or bit 46 is set by every constructor.
            top: NonZeroU8::new(b[5]).unwrap_or(NonZeroU8::MIN),
        }
    }

    /// A compressed object's descriptor; `None` for a handle wider than
    /// [`HANDLE_BITS`] (neither allocator makes one).
    pub fn object(handle: Handle) -> Option<ZDesc> {
        let raw = handle.to_raw();
        (raw & !HANDLE_MASK == 0).then(|| ZDesc::from_bits(OBJECT_BIT | raw))
    }

    /// A same-filled page of one repeated byte.
    pub fn same_byte(b: u8) -> ZDesc {
        ZDesc::from_bits(SAME_BIT | u64::from(b))
    }

    /// A same-filled page whose word is fill-table entry `index`.
    pub fn same_word(index: u32) -> ZDesc {
        ZDesc::from_bits(SAME_BIT | WORD_BIT | u64::from(index))
    }

    /// The raw 48 bits.
    pub fn raw(self) -> u64 {
        let l = self.low;
        u64::from_le_bytes([l[0], l[1], l[2], l[3], l[4], self.top.get(), 0, 0])
    }

    /// Decodes the descriptor.
    pub fn kind(self) -> DescKind {
        let raw = self.raw();
        if raw & OBJECT_BIT != 0 {
            // Never 0: a handle is never 0.
            DescKind::Object(Handle::from_raw(raw & HANDLE_MASK).unwrap_or(ONE))
        } else if raw & WORD_BIT != 0 {
            DescKind::SameWord(raw as u32)
        } else {
            DescKind::SameByte(raw as u8)
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
        let widest = Handle::from_raw(HANDLE_MASK).unwrap();
        for h in [widest, ONE, Handle::from_raw(0x1234_5678_9abc).unwrap()] {
            let d = ZDesc::object(h).unwrap();
            assert_eq!(d.kind(), DescKind::Object(h));
            assert_ne!(d.raw() >> 40, 0, "the top byte is never 0");
        }
        assert!(
            ZDesc::object(Handle::from_raw(OBJECT_BIT).unwrap()).is_none(),
            "a handle wider than 47 bits is refused, not truncated"
        );
        assert_ne!(ZDesc::object(ONE), Some(ZDesc::same_byte(1)));
        assert_eq!(ZDesc::same_byte(0).kind(), DescKind::SameByte(0));
        assert_eq!(ZDesc::same_byte(0xff).kind(), DescKind::SameByte(0xff));
        assert_eq!(ZDesc::same_word(0).kind(), DescKind::SameWord(0));
        assert_eq!(
            ZDesc::same_word(u32::MAX).kind(),
            DescKind::SameWord(u32::MAX)
        );
        assert_ne!(ZDesc::same_byte(0), ZDesc::same_word(0));
        assert_eq!(core::mem::size_of::<ZDesc>(), 6);
        assert_eq!(core::mem::size_of::<Option<ZDesc>>(), 6);
    }
}
