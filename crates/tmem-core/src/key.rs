//! Keys: pool ids, client ids, object ids, indices.

use core::cmp::Ordering;
use core::fmt;

/// A page index within an object. 64 bits end to end: the kernel's `pgoff_t` is 64-bit
/// and nothing in tmem-core truncates it.
pub type Index = u64;

/// A pool's id, allocated by [`crate::Tmem`] (monotonically: an id is not reused while
/// the 32-bit space has fresh ids, and never while the pool it named is still alive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(pub u32);

/// A client's id (a file system, a swap front end, a guest), allocated dynamically with
/// no fixed cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u32);

/// A 128-bit uuid naming a shared pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u64; 2]);

/// A 192-bit object id (three 64-bit words, room for a file system's file handle).
///
/// Ordered as tmem orders it: word 2 is the most significant, then word 1, then word 0.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Oid(pub [u64; 3]);

impl Oid {
    /// An oid from its three words (`w[0]` least significant).
    pub const fn new(w0: u64, w1: u64, w2: u64) -> Oid {
        Oid([w0, w1, w2])
    }

    /// A well-mixed 64-bit hash of the three words (used to pick a bucket and inside the
    /// bucket's map).
    #[inline]
    pub fn hash64(&self) -> u64 {
        // Multiply-xorshift mix of each word (constants from splitmix64).
        let mut h = self.0[0] ^ self.0[1].rotate_left(21) ^ self.0[2].rotate_left(42);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl core::hash::Hash for Oid {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // Bucket selection uses the top byte of `hash64`; rotate so the per-bucket map
        // sees well-mixed high bits (hashbrown's control bytes use the top 7).
        state.write_u64(self.hash64().rotate_left(8));
    }
}

/// Hasher for maps keyed by an already-mixed 64-bit value ([`Oid`]'s `Hash`).
#[derive(Clone, Copy, Default)]
pub(crate) struct PremixedHasher(u64);

impl core::hash::Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

/// `BuildHasher` for [`PremixedHasher`].
pub(crate) type BuildPremixed = core::hash::BuildHasherDefault<PremixedHasher>;

impl Ord for Oid {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0[2], self.0[1], self.0[0]).cmp(&(other.0[2], other.0[1], other.0[0]))
    }
}

impl PartialOrd for Oid {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({:#x}:{:#x}:{:#x})", self.0[2], self.0[1], self.0[0])
    }
}

/// A full tmem key: (pool, object, index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The pool.
    pub pool: PoolId,
    /// The object within the pool.
    pub oid: Oid,
    /// The page within the object.
    pub index: Index,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_orders_by_word_2_then_1_then_0() {
        let a = Oid::new(u64::MAX, u64::MAX, 0);
        let b = Oid::new(0, 0, 1);
        assert!(a < b);
        let c = Oid::new(u64::MAX, 0, 1);
        let d = Oid::new(0, 1, 1);
        assert!(c < d);
        let e = Oid::new(1, 1, 1);
        assert!(d < e);
        assert_eq!(e.cmp(&e), Ordering::Equal);
    }
}
