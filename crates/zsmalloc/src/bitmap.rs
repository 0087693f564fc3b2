//! Slot bitmaps: one bit per slot, `words` 64-bit words per zspage, all zspages of a
//! class in one vector (zspage `z` owns words `z * words .. (z + 1) * words`). Every
//! query is O(words) word operations: at most 8, 32, 128 at 4, 16, 64 KiB pages
//! (`MAX_OBJS` / 64; only the smallest classes have that many).

use alloc::vec::Vec;
use zpool::ZPoolError;

/// The used-slot bitmaps of a class's zspages.
pub(crate) struct SlotMap {
    bits: Vec<u64>,
    words: u8,
    /// Slots per zspage.
    m: u16,
}

impl SlotMap {
    pub(crate) fn new(slots: usize) -> SlotMap {
        SlotMap {
            bits: Vec::new(),
            words: slots.div_ceil(64) as u8,
            m: slots as u16,
        }
    }

    fn words(&self) -> usize {
        usize::from(self.words)
    }

    fn of(&self, z: usize) -> &[u64] {
        &self.bits[z * self.words()..(z + 1) * self.words()]
    }

    /// Adds the (cleared) words of one more zspage, fallibly.
    pub(crate) fn push_zspage(&mut self) -> Result<(), ZPoolError> {
        let w = self.words();
        crate::zspage::reserve(&mut self.bits, w)?;
        self.bits.extend((0..w).map(|_| 0));
        Ok(())
    }

    /// Clears zspage `z`'s bits (its descriptor is being reused).
    pub(crate) fn clear(&mut self, z: usize) {
        let w = self.words();
        for x in &mut self.bits[z * w..(z + 1) * w] {
            *x = 0;
        }
    }

    pub(crate) fn set(&mut self, z: usize, j: usize, on: bool) {
        let w = self.words();
        let word = &mut self.bits[z * w + j / 64];
        if on {
            *word |= 1 << (j % 64);
        } else {
            *word &= !(1 << (j % 64));
        }
    }

    /// The lowest free slot of zspage `z`.
    pub(crate) fn lowest_free(&self, z: usize) -> Option<usize> {
        for (i, &w) in self.of(z).iter().enumerate() {
            if w != u64::MAX {
                let j = i * 64 + (!w).trailing_zeros() as usize;
                return (j < usize::from(self.m)).then_some(j);
            }
        }
        None
    }

    /// The highest used slot of zspage `z`.
    pub(crate) fn highest_used(&self, z: usize) -> Option<usize> {
        for (i, &w) in self.of(z).iter().enumerate().rev() {
            if w != 0 {
                return Some(i * 64 + 63 - w.leading_zeros() as usize);
            }
        }
        None
    }

    /// Used slots of zspage `z` in `lo..hi`.
    pub(crate) fn count_used(&self, z: usize, lo: usize, hi: usize) -> usize {
        let mut n = 0;
        for (i, &w) in self.of(z).iter().enumerate() {
            let (a, b) = (i * 64, i * 64 + 64);
            if b <= lo || a >= hi {
                continue;
            }
            let mut mask = u64::MAX;
            if lo > a {
                mask &= u64::MAX << (lo - a);
            }
            if hi < b {
                mask &= u64::MAX >> (b - hi);
            }
            n += (w & mask).count_ones() as usize;
        }
        n
    }

    /// Heap bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bits.capacity() * core::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let mut s = SlotMap::new(130);
        s.push_zspage().expect("words");
        s.push_zspage().expect("words");
        assert_eq!((s.lowest_free(1), s.highest_used(1)), (Some(0), None));
        for j in [0, 1, 63, 64, 129] {
            s.set(1, j, true);
        }
        assert_eq!((s.lowest_free(1), s.highest_used(1)), (Some(2), Some(129)));
        assert_eq!(s.count_used(1, 0, 130), 5);
        assert_eq!(s.count_used(1, 1, 64), 2);
        assert_eq!(s.count_used(1, 64, 129), 1);
        assert_eq!(s.count_used(0, 0, 130), 0);
        for j in 0..130 {
            s.set(0, j, true);
        }
        assert_eq!(s.lowest_free(0), None);
        s.clear(0);
        assert_eq!(s.highest_used(0), None);
    }
}
