//! A zspage descriptor, and a zspage's frames taken as one byte range.
//!
//! A zspage holds up to `k` frames (its class's geometry), taken lazily one at a time as
//! its used slots need them and given back from the top when they no longer do
//! ("trim"). The frames are not in the descriptor: they are row `z` of the class's
//! [`zpool::FrameTable`] (4 bytes a frame, the distance in pages from the table's base
//! frame; 8 bytes a frame for a row with a frame too far away), so a load goes from the
//! handle entry's zspage number straight to the element of the frame it reads, and
//! neither trimming nor growing allocates (the row has room for `k` frames).
//!
//! No function here calls the page source: frames come in through a `spare` the caller
//! took with no lock held, and go out to the caller (see `bin.rs`).

use alloc::vec::Vec;
use zpool::{FrameTable, PAGE_SIZE, ZPoolError};

/// End of an intrusive list.
pub(crate) const NONE: u32 = u32::MAX;

/// A zspage descriptor: 16 bytes (the frames are the class's `FrameTable` row).
#[derive(Debug)]
pub(crate) struct ZsPage {
    /// Previous zspage in its fullness list.
    pub prev: u32,
    /// Next zspage in its fullness list, or next free descriptor.
    pub next: u32,
    /// Huge classes: the object's length (up to `PAGE_SIZE`, 65536 at 64 KiB pages).
    pub hlen: u32,
    /// Live objects.
    pub inuse: u16,
    /// Frames present (row `z` of the frame table holds `nframes` frames).
    pub nframes: u8,
    /// Fullness group it is listed in (0: not listed).
    pub group: u8,
}

// The descriptor's size is part of the metadata budget (README, "Metadata").
const _: () = assert!(core::mem::size_of::<ZsPage>() == 16);

/// Fallible growth by at least `additional`, by an eighth of the length (not the usual
/// doubling): metadata slack stays near 12 %, pushes stay amortised O(1).
pub(crate) fn reserve<T>(v: &mut Vec<T>, additional: usize) -> Result<(), ZPoolError> {
    if v.capacity() - v.len() >= additional {
        return Ok(());
    }
    let want = additional.max(v.len() / 8);
    v.try_reserve_exact(want).map_err(|_| ZPoolError::NoMemory)
}

impl ZsPage {
    /// A descriptor without frames.
    pub(crate) fn empty() -> ZsPage {
        ZsPage {
            prev: NONE,
            next: NONE,
            hlen: 0,
            inuse: 0,
            nframes: 0,
            group: 0,
        }
    }

    /// Frames present.
    pub(crate) fn nframes(&self) -> usize {
        usize::from(self.nframes)
    }
}

/// The pieces of bytes `off .. off + len` of a zspage, frame by frame: (frame, offset
/// in the frame, offset in the bytes, length).
fn pieces(off: usize, len: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut done = 0;
    core::iter::from_fn(move || {
        (done < len).then(|| {
            let at = off + done;
            let within = at % PAGE_SIZE;
            let n = (PAGE_SIZE - within).min(len - done);
            done += n;
            (at / PAGE_SIZE, within, done - n, n)
        })
    })
}

/// Copies `out.len()` bytes from byte `off` of zspage `z` (crossing frames).
pub(crate) fn read(t: &FrameTable, z: usize, off: usize, out: &mut [u8]) -> Result<(), ZPoolError> {
    for (i, within, at, n) in pieces(off, out.len()) {
        let f = t.get(z, i).ok_or(ZPoolError::InvalidHandle)?;
        out[at..at + n].copy_from_slice(&f[within..within + n]);
    }
    Ok(())
}

/// Copies `data` to byte `off` of zspage `z` (crossing frames).
pub(crate) fn write(
    t: &mut FrameTable,
    z: usize,
    off: usize,
    data: &[u8],
) -> Result<(), ZPoolError> {
    for (i, within, at, n) in pieces(off, data.len()) {
        let f = t.get_mut(z, i).ok_or(ZPoolError::InvalidHandle)?;
        f[within..within + n].copy_from_slice(&data[at..at + n]);
    }
    Ok(())
}

/// The `len` bytes at `off` of zspage `z` in place, if they lie in one present frame.
#[inline]
pub(crate) fn in_place(t: &FrameTable, z: usize, off: usize, len: usize) -> Option<&[u8]> {
    let within = off % PAGE_SIZE;
    if within + len > PAGE_SIZE {
        return None;
    }
    Some(&t.get(z, off / PAGE_SIZE)?[within..within + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use zpool::{FrameChain, HeapPageSource, PageSource};

    #[test]
    fn a_zspage_is_one_byte_range_over_its_row() {
        let mut t = FrameTable::new(3);
        let z = t.add_row().expect("row");
        for _ in 0..3 {
            let f = HeapPageSource.alloc_frame().expect("frame");
            t.push(z, f).map_err(|_| ()).expect("push");
        }
        write(&mut t, z, PAGE_SIZE - 2, &[1, 2, 3, 4]).expect("spanning write");
        let mut out = [0u8; 4];
        read(&t, z, PAGE_SIZE - 2, &mut out).expect("read");
        assert_eq!(out, [1, 2, 3, 4]);
        assert!(in_place(&t, z, PAGE_SIZE - 2, 4).is_none());
        assert_eq!(in_place(&t, z, PAGE_SIZE, 2), Some(&[3u8, 4][..]));
        let top = t.pop(z).expect("top");
        assert!(read(&t, z, 2 * PAGE_SIZE, &mut out).is_err());
        assert!(write(&mut t, z, 2 * PAGE_SIZE, &out).is_err());
        assert!(in_place(&t, z, 2 * PAGE_SIZE, 1).is_none());
        HeapPageSource.free_frame(top);
        let mut chain = FrameChain::new();
        assert_eq!(t.take_row(z, &mut chain), 2);
        while let Some(f) = chain.pop() {
            HeapPageSource.free_frame(f);
        }
        assert!(t.is_empty());
        assert_eq!(core::mem::size_of::<ZsPage>(), 16);
    }
}
