//! Safe byte copies for objects that cross a frame boundary (zsmalloc-style layouts), so
//! allocator crates can stay `#![forbid(unsafe_code)]`.
//!
//! An object of `len` bytes at `offset` in `first` occupies `first[offset..]` up to the end
//! of that frame and continues at offset 0 of `second`. When it fits in `first`,
//! `second` is not touched.

use core::fmt;

use crate::frame::{PAGE_SIZE, Page};

/// An object does not fit in two frames at the given offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Offset of the object in the first frame.
    pub offset: usize,
    /// Length of the object.
    pub len: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "object of {} bytes at offset {} does not fit in two frames",
            self.len, self.offset
        )
    }
}

/// Splits `len` bytes at `offset` into (bytes in the first frame, bytes in the second).
pub fn split(offset: usize, len: usize) -> Result<(usize, usize), OutOfBounds> {
    let err = OutOfBounds { offset, len };
    if offset >= PAGE_SIZE {
        return Err(err);
    }
    let head = len.min(PAGE_SIZE - offset);
    let tail = len - head;
    if tail > PAGE_SIZE {
        return Err(err);
    }
    Ok((head, tail))
}

/// Copies `data` to `offset` in `first`, continuing at the start of `second`.
pub fn write_split(
    first: &mut Page,
    offset: usize,
    second: &mut Page,
    data: &[u8],
) -> Result<(), OutOfBounds> {
    let (head, tail) = split(offset, data.len())?;
    first[offset..offset + head].copy_from_slice(&data[..head]);
    second[..tail].copy_from_slice(&data[head..]);
    Ok(())
}

/// Copies `out.len()` bytes from `offset` in `first`, continuing at the start of `second`.
pub fn read_split(
    first: &Page,
    offset: usize,
    second: &Page,
    out: &mut [u8],
) -> Result<(), OutOfBounds> {
    let (head, tail) = split(offset, out.len())?;
    out[..head].copy_from_slice(&first[offset..offset + head]);
    out[head..].copy_from_slice(&second[..tail]);
    Ok(())
}

/// Mutable borrows of two distinct elements of a slice (e.g. the two frames an object
/// spans in a zspage's frame list); `None` if `a == b` or either is out of bounds.
pub fn two_mut<T>(items: &mut [T], a: usize, b: usize) -> Option<(&mut T, &mut T)> {
    if a == b || a >= items.len() || b >= items.len() {
        return None;
    }
    if a < b {
        let (lo, hi) = items.split_at_mut(b);
        Some((&mut lo[a], &mut hi[0]))
    } else {
        let (lo, hi) = items.split_at_mut(a);
        Some((&mut hi[0], &mut lo[b]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_copies_round_trip() {
        let mut a = [0u8; PAGE_SIZE];
        let mut b = [0u8; PAGE_SIZE];
        let data: [u8; 100] = core::array::from_fn(|i| i as u8 + 1);
        write_split(&mut a, PAGE_SIZE - 30, &mut b, &data).unwrap();
        assert_eq!(a[PAGE_SIZE - 30], 1);
        assert_eq!(b[69], 100);
        assert_eq!(b[70], 0);
        let mut out = [0u8; 100];
        read_split(&a, PAGE_SIZE - 30, &b, &mut out).unwrap();
        assert_eq!(out, data);
        // Fits in the first frame: the second is untouched.
        write_split(&mut a, 0, &mut b, &[9; 10]).unwrap();
        assert_eq!(b[..3], [31, 32, 33]);
        assert_eq!(
            split(PAGE_SIZE, 1),
            Err(OutOfBounds {
                offset: PAGE_SIZE,
                len: 1
            })
        );
        assert!(split(1, 2 * PAGE_SIZE).is_err());
        assert_eq!(split(1, 2 * PAGE_SIZE - 1), Ok((PAGE_SIZE - 1, PAGE_SIZE)));
    }

    #[test]
    fn two_mut_distinct() {
        let mut v = [1, 2, 3];
        let (x, y) = two_mut(&mut v, 2, 0).unwrap();
        core::mem::swap(x, y);
        assert_eq!(v, [3, 2, 1]);
        assert!(two_mut(&mut v, 1, 1).is_none());
        assert!(two_mut(&mut v, 1, 3).is_none());
    }
}
