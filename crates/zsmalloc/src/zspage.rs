//! A zspage descriptor and its frames.
//!
//! A zspage holds up to `k` frames (its class's geometry), taken lazily one at a time as
//! its used slots need them and given back from the top when they no longer do
//! ("trim"). The frame list is a [`zpool::FrameList`]: 4 bytes a frame (the first
//! frame's address and the others' distances from it in pages; 8 bytes a frame if some
//! frame lies too far away). Trimming takes frames out of the top elements without
//! reallocating (so it never allocates), and growing reuses such an empty element when
//! there is one, else reallocates the list one element longer (fallibly).
//!
//! No method here calls the page source: frames come in through a `spare` the caller
//! took with no lock held, and go out to the caller (see `bin.rs`).

use alloc::vec::Vec;
use zpool::{FRAME_LIST_MAX, Frame, FrameList, PAGE_SIZE, Page, ZPoolError};

/// End of an intrusive list.
pub(crate) const NONE: u32 = u32::MAX;

/// A zspage descriptor: 32 bytes.
#[derive(Debug)]
pub(crate) struct ZsPage {
    frames: FrameList,
    /// Previous zspage in its fullness list.
    pub prev: u32,
    /// Next zspage in its fullness list, or next free descriptor.
    pub next: u32,
    /// Live objects.
    pub inuse: u16,
    /// Huge classes: the object's length (up to `PAGE_SIZE`, 65536 at 64 KiB pages).
    pub hlen: u32,
    /// Frames present (`frames[..nframes]`).
    nframes: u8,
    /// Fullness group it is listed in (0: not listed).
    pub group: u8,
}

// The descriptor's size is part of the metadata budget (README, "Metadata").
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<ZsPage>() == 32);

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
    /// A descriptor without frames (an empty boxed slice does not allocate).
    pub(crate) fn empty() -> ZsPage {
        ZsPage {
            frames: FrameList::new(),
            prev: NONE,
            next: NONE,
            inuse: 0,
            hlen: 0,
            nframes: 0,
            group: 0,
        }
    }

    /// Frames present.
    pub(crate) fn nframes(&self) -> usize {
        usize::from(self.nframes)
    }

    /// Heap bytes of the frame list (present and empty elements).
    pub(crate) fn list_bytes(&self) -> usize {
        self.frames.heap_bytes()
    }

    #[inline]
    fn frame(&self, i: usize) -> Option<&Page> {
        self.frames.get(i)
    }

    #[inline]
    fn frame_mut(&mut self, i: usize) -> Option<&mut Page> {
        self.frames.get_mut(i)
    }

    /// Adds the frame in `spare` on top, taking it only on success (the list may have
    /// to be reallocated, which may fail: then `spare` keeps the frame).
    pub(crate) fn push_frame(&mut self, spare: &mut Option<Frame>) -> Result<(), ZPoolError> {
        const _: () = assert!(FRAME_LIST_MAX <= u8::MAX as usize);
        let f = spare.take().ok_or(ZPoolError::NoMemory)?;
        match self.frames.push(f) {
            Ok(()) => {
                self.nframes += 1;
                Ok(())
            }
            // Full (255 frames), or no memory for a longer list: `spare` keeps the frame.
            Err(f) => {
                *spare = Some(f);
                Err(ZPoolError::NoMemory)
            }
        }
    }

    /// Takes the top frame out (trimming), leaving its element empty.
    pub(crate) fn pop_frame(&mut self) -> Option<Frame> {
        let f = self.frames.pop();
        if f.is_some() {
            self.nframes -= 1;
        }
        f
    }

    /// Reallocates the frame list to exactly the frames present, dropping the empty
    /// elements trims left (best effort: without memory for the new list, nothing
    /// changes). Compaction calls it; the free path never does (it must not allocate).
    pub(crate) fn shrink_list(&mut self) {
        self.frames.shrink_to_fit();
    }

    /// Takes the whole frame list out (the zspage is being released).
    pub(crate) fn take_frames(&mut self) -> FrameList {
        self.nframes = 0;
        core::mem::take(&mut self.frames)
    }

    /// Copies `out.len()` bytes from byte `off` of the zspage (crossing frames).
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) -> Result<(), ZPoolError> {
        let mut off = off;
        let mut done = 0;
        while done < out.len() {
            let f = self
                .frame(off / PAGE_SIZE)
                .ok_or(ZPoolError::InvalidHandle)?;
            let within = off % PAGE_SIZE;
            let n = (PAGE_SIZE - within).min(out.len() - done);
            out[done..done + n].copy_from_slice(&f[within..within + n]);
            done += n;
            off += n;
        }
        Ok(())
    }

    /// Copies `data` to byte `off` of the zspage (crossing frames).
    pub(crate) fn write(&mut self, off: usize, data: &[u8]) -> Result<(), ZPoolError> {
        let mut off = off;
        let mut done = 0;
        while done < data.len() {
            let f = self
                .frame_mut(off / PAGE_SIZE)
                .ok_or(ZPoolError::InvalidHandle)?;
            let within = off % PAGE_SIZE;
            let n = (PAGE_SIZE - within).min(data.len() - done);
            f[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
            off += n;
        }
        Ok(())
    }

    /// The `len` bytes at `off` in place, if they lie in one frame.
    pub(crate) fn in_place(&self, off: usize, len: usize) -> Option<&[u8]> {
        let within = off % PAGE_SIZE;
        if within + len > PAGE_SIZE {
            return None;
        }
        Some(&self.frame(off / PAGE_SIZE)?[within..within + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zpool::{HeapPageSource, PageSource};

    #[test]
    fn frames_grow_trim_and_regrow_without_reallocating() {
        let mut z = ZsPage::empty();
        for _ in 0..3 {
            let mut spare = Some(HeapPageSource.alloc_frame().expect("frame"));
            z.push_frame(&mut spare).expect("push");
            assert!(spare.is_none());
        }
        z.write(PAGE_SIZE - 2, &[1, 2, 3, 4])
            .expect("spanning write");
        let mut out = [0u8; 4];
        z.read(PAGE_SIZE - 2, &mut out).expect("read");
        assert_eq!(out, [1, 2, 3, 4]);
        assert!(z.in_place(PAGE_SIZE - 2, 4).is_none());
        assert_eq!(z.in_place(PAGE_SIZE, 2), Some(&[3u8, 4][..]));
        let top = z.pop_frame().expect("top");
        assert_eq!((z.nframes(), z.list_bytes()), (2, 16));
        assert!(z.read(2 * PAGE_SIZE, &mut out).is_err());
        // Regrowing reuses the empty element.
        let mut spare = Some(top);
        z.push_frame(&mut spare).expect("push");
        assert_eq!((z.nframes(), z.list_bytes()), (3, 16));
        let top = z.pop_frame().expect("top");
        z.shrink_list();
        assert_eq!((z.nframes(), z.list_bytes()), (2, 12));
        z.read(PAGE_SIZE - 2, &mut out).expect("frames kept");
        HeapPageSource.free_frame(top);
        let mut list = z.take_frames();
        while let Some(f) = list.pop() {
            HeapPageSource.free_frame(f);
        }
        assert_eq!(z.nframes(), 0);
        assert!(z.pop_frame().is_none());
    }
}
