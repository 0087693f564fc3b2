//! Frames Linux's allocators would need for the same compressed sizes, computed from
//! their documented layouts (no frees, every object stored once, in arrival order).
//!
//! - zsmalloc: `zsmalloc::linux::LinuxLayout` (the zsmalloc crate's model of Linux 6.3+:
//!   16-byte classes from 32 B, an 8-byte in-object handle, zspage chains of up to 8
//!   frames chosen to minimise waste, merged classes, huge objects alone in a frame).
//! - zbud: `mm/zbud.c`: 64 chunks of `PAGE_SIZE >> 6` bytes (64 B at 4 KiB, 256 B at
//!   16 KiB, 1 KiB at 64 KiB); a one-chunk header leaves 63; a new object goes into the
//!   lone frame with the fewest free chunks that still fit it (the first non-empty
//!   unbuddied list from its own size up), else into a new frame. Linux refuses objects
//!   over `PAGE_SIZE` - 2 chunks (3968 bytes at 4 KiB); they are counted here as one
//!   frame each (stored uncompressed elsewhere) and reported.

use zsmalloc::linux::LinuxLayout;

use crate::input::PAGE_SIZE;

/// Linux zbud's chunk size (`CHUNK_SHIFT = PAGE_SHIFT - NCHUNKS_ORDER`, order 6).
const CHUNK: usize = PAGE_SIZE >> 6;
/// Chunks per frame after Linux zbud's one-chunk header.
const NCHUNKS: usize = PAGE_SIZE / CHUNK - 1;
/// Largest object Linux zbud accepts.
pub const ZBUD_MAX: usize = PAGE_SIZE - 2 * CHUNK;

/// Frames Linux zsmalloc (chain 8) holds for objects of these lengths.
pub fn zsmalloc_frames(lens: &[u32]) -> u64 {
    let layout = LinuxLayout::new(8);
    layout.frames_for(lens.iter().map(|&l| (l as usize).clamp(1, PAGE_SIZE))) as u64
}

/// Frames Linux zbud holds for objects of these lengths, and how many it refuses.
pub fn zbud_frames(lens: &[u32]) -> (u64, u64) {
    // unbuddied[k]: lone frames with k free chunks. With no frees, which frame of a list
    // is taken does not change the count.
    let mut unbuddied = [0u64; NCHUNKS + 1];
    let (mut frames, mut refused) = (0u64, 0u64);
    for &len in lens {
        let len = len as usize;
        if len > ZBUD_MAX {
            refused += 1;
            frames += 1;
            continue;
        }
        let c = len.div_ceil(CHUNK).max(1);
        if let Some(k) = (c..NCHUNKS).find(|&k| unbuddied[k] > 0) {
            unbuddied[k] -= 1;
        } else {
            frames += 1;
            unbuddied[NCHUNKS - c] += 1;
        }
    }
    (frames, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zbud_pairs_best_fit_in_arrival_order() {
        // Lengths at 4 KiB, scaled to the page size (chunks scale alike).
        let s = |l: u32| l * (PAGE_SIZE / 4096) as u32;
        // 2000 B (32 chunks) leaves 31; 1900 B (30 chunks) fits there; 1900 again needs a
        // new frame.
        assert_eq!(zbud_frames(&[s(2000), s(1900), s(1900)]), (2, 0));
        // Best fit: 100 B goes into the frame with 2 free chunks, not the one with 30.
        assert_eq!(zbud_frames(&[s(3900), s(2000), s(100), s(1900)]), (2, 0));
        assert_eq!(zbud_frames(&[s(4000), s(3968)]), (2, 1));
        assert_eq!(zbud_frames(&[]), (0, 0));
    }

    #[test]
    #[cfg(not(any(feature = "page-16k", feature = "page-64k")))]
    fn zsmalloc_matches_the_kernel_docs_example() {
        // 1560 + 8 = 1568: 13 objects in 5 frames.
        assert_eq!(zsmalloc_frames(&[1560; 13]), 5);
        assert_eq!(zsmalloc_frames(&[4096, 5000]), 2);
    }
}
