//! The header zcache writes in front of every compressed object in an allocator:
//!
//! ```text
//! [checksum: u32 LE][algorithm id: u8][pool id, oid w0, w1, w2, index: LEB128 varints]
//! ```
//!
//! * The key lets eviction and writeback, which start from an allocator handle, find the
//!   tmem key to compare-and-invalidate without any reverse map in memory (a reverse map
//!   would cost ≥ 32 bytes per page of metadata; the varint key is typically 6-12 bytes
//!   inside the pool frames).
//! * The checksum covers everything after it (key and compressed bytes): corrupt pool
//!   memory is reported as an error on load even when the corrupt bytes still
//!   decompress. It is a wrapping sum of 64-bit words (any single-bit flip changes it),
//!   folded to 32 bits; it runs at memory speed (the loop vectorises).

use tmem_core::{Key, Oid, PoolId};

/// Longest possible header: 4 + 1 + 5 (u32 varint) + 4 × 10 (u64 varints).
pub const MAX_HEADER: usize = 4 + 1 + 5 + 40;

/// Checksum of `bytes`.
#[inline]
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut sums = [0u64; 4];
    let mut chunks = bytes.chunks_exact(32);
    for c in &mut chunks {
        for (i, s) in sums.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[i * 8..i * 8 + 8]);
            *s = s.wrapping_add(u64::from_le_bytes(w));
        }
    }
    let mut tail = 0u64;
    for (i, b) in chunks.remainder().iter().enumerate() {
        tail = tail.wrapping_add(u64::from(*b) << ((i % 8) * 8));
    }
    let s = sums[0]
        .wrapping_add(sums[1].rotate_left(16))
        .wrapping_add(sums[2].rotate_left(32))
        .wrapping_add(sums[3].rotate_left(48))
        .wrapping_add(tail)
        .wrapping_add(bytes.len() as u64);
    (s as u32) ^ ((s >> 32) as u32).rotate_left(7)
}

fn put_varint(out: &mut [u8], mut pos: usize, mut v: u64) -> usize {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[pos] = b;
            return pos + 1;
        }
        out[pos] = b | 0x80;
        pos += 1;
    }
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Writes the key part of a header (algorithm id and key, without the checksum) into
/// `out[4..]`, returning the header length (checksum included).
pub fn encode_key(out: &mut [u8; MAX_HEADER], alg: u8, key: &Key) -> usize {
    out[4] = alg;
    let mut pos = 5;
    pos = put_varint(out, pos, u64::from(key.pool.0));
    for w in key.oid.0 {
        pos = put_varint(out, pos, w);
    }
    put_varint(out, pos, key.index)
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Algorithm id.
    pub alg: u8,
    /// The tmem key.
    pub key: Key,
    /// Header length: the compressed bytes start here.
    pub len: usize,
}

/// Verifies the checksum of a whole object and parses its header.
pub fn decode(object: &[u8]) -> Option<Header> {
    if object.len() < 5 {
        return None;
    }
    let stored = u32::from_le_bytes([object[0], object[1], object[2], object[3]]);
    if checksum(&object[4..]) != stored {
        return None;
    }
    let alg = object[4];
    let mut pos = 5;
    let pool = u32::try_from(get_varint(object, &mut pos)?).ok()?;
    let w0 = get_varint(object, &mut pos)?;
    let w1 = get_varint(object, &mut pos)?;
    let w2 = get_varint(object, &mut pos)?;
    let index = get_varint(object, &mut pos)?;
    Some(Header {
        alg,
        key: Key {
            pool: PoolId(pool),
            oid: Oid::new(w0, w1, w2),
            index,
        },
        len: pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_bit_flips_are_caught() {
        let key = Key {
            pool: PoolId(u32::MAX),
            oid: Oid::new(u64::MAX, 0, 300),
            index: u64::MAX,
        };
        let mut h = [0u8; MAX_HEADER];
        let n = encode_key(&mut h, 3, &key);
        assert!(n <= MAX_HEADER);
        let mut obj = h[..n].to_vec();
        obj.extend((0..1500u32).map(|i| (i * 7 + i / 13) as u8));
        let c = checksum(&obj[4..]);
        obj[..4].copy_from_slice(&c.to_le_bytes());
        let d = decode(&obj).unwrap();
        assert_eq!((d.alg, d.key, d.len), (3, key, n));
        for bit in 0..obj.len() * 8 {
            let mut bad = obj.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&bad).is_none(), "flip of bit {bit} not caught");
        }
        assert!(decode(&obj[..obj.len() - 1]).is_none());
        assert!(decode(&[]).is_none());
    }
}
