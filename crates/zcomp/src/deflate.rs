//! Raw deflate through miniz_oxide.

use alloc::boxed::Box;

use miniz_oxide::DataFormat;
use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{
    DecompressorOxide, decompress, inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
};

use crate::heap::{preflight, try_box};
use crate::{
    Algorithm, CompressError, Compressor, CompressorInitError, DecompressError, PAGE_SIZE, Page,
};

/// Worst case: miniz falls back to stored blocks when a block would not shrink; one stored
/// block costs 5 header bytes (plus up to one byte of padding before it); the 64 bytes
/// of margin per 4 KiB cover a final empty block and bit flushing at 4 KiB, and at 16 or
/// 64 KiB the more blocks miniz cuts a page into (it ends a block after about 31 KiB of
/// input, and a stored block holds at most 65 535 bytes). The tests compress random
/// pages to check the bound holds.
pub(crate) const MAX_LEN: usize = PAGE_SIZE + 64 * zplat::PAGE_SCALE;

/// The compression level: level 1 is miniz's fast greedy path (one hash probe).
pub const DEFLATE_LEVEL: u8 = 1;

/// Heap bytes miniz_oxide's compressor allocates itself (dictionary 33 KiB, hash chains
/// 2 x 64 KiB, output buffer 83 KiB, Huffman tables 5 KiB: about 250 KiB; rounded up),
/// used for the pre-flight check in [`Deflate::new`].
const MINIZ_STATE_BYTES: usize = 256 << 10;

/// Raw deflate (RFC 1951: no zlib header or checksum) through miniz_oxide, level 1.
///
/// Owns one miniz compressor state (about 320 KiB, reset for every page; the reset
/// zeroes about 85 KiB, a fixed cost per page) and one inflate
/// state (about 11 KiB), both on the heap and reused.
///
/// Not kernel-stack-friendly: miniz_oxide's compressor keeps a 64 KiB LZ code buffer
/// inline and builds it by value, so [`Deflate::new`] uses about 64 KiB of stack once
/// (measured in the release build: a 65 744-byte frame); compressing and decompressing
/// use a few hundred bytes per frame. Fine in user space (the CLI, benches); a host with
/// small stacks should use lz4 or lzo.
pub struct Deflate {
    comp: Box<CompressorOxide>,
    decomp: Box<DecompressorOxide>,
}

impl Deflate {
    /// A compressor at [`DEFLATE_LEVEL`].
    ///
    /// miniz_oxide allocates its compressor state with infallible `Box`es: that cannot be
    /// made fallible from outside, so this first checks that the allocator can supply
    /// that much memory and returns [`CompressorInitError::OutOfMemory`] if it cannot
    /// (a check, not a reservation: a concurrent allocation can still win the race).
    pub fn new() -> Result<Deflate, CompressorInitError> {
        let decomp = try_box(DecompressorOxide::new(), Algorithm::Deflate)?;
        preflight(
            MINIZ_STATE_BYTES + core::mem::size_of::<CompressorOxide>(),
            Algorithm::Deflate,
        )?;
        // Infallible allocation (miniz offers no other): the pre-flight check covers it.
        // `Box::default` copies the 64 KiB state once where `try_box(new())` copied it
        // twice (128 KiB of stack in the release build).
        let mut comp: Box<CompressorOxide> = Box::default();
        comp.set_format_and_level(DataFormat::Raw, DEFLATE_LEVEL);
        Ok(Deflate { comp, decomp })
    }
}

impl Compressor for Deflate {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Deflate
    }

    fn compress(&mut self, page: &Page, dst: &mut [u8]) -> Result<usize, CompressError> {
        if dst.len() < MAX_LEN {
            return Err(CompressError::ScratchTooSmall {
                needed: MAX_LEN,
                got: dst.len(),
            });
        }
        let comp = &mut *self.comp;
        comp.reset();
        match compress(comp, page, dst, TDEFLFlush::Finish) {
            (TDEFLStatus::Done, PAGE_SIZE, len) => Ok(len),
            _ => Err(CompressError::Failed(Algorithm::Deflate)),
        }
    }

    fn decompress(&mut self, src: &[u8], page: &mut Page) -> Result<(), DecompressError> {
        const A: Algorithm = Algorithm::Deflate;
        let state = &mut *self.decomp;
        state.init();
        // No TINFL_FLAG_HAS_MORE_INPUT: `src` is the whole stream, so running out of input
        // is an error, not a request for more. The whole page is the (non-wrapping) window.
        let (status, consumed, len) = decompress(
            state,
            src,
            page,
            0,
            TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        );
        match status {
            TINFLStatus::Done if len != PAGE_SIZE => {
                Err(DecompressError::ShortPage { algorithm: A, len })
            }
            TINFLStatus::Done if consumed != src.len() => Err(DecompressError::TrailingData(A)),
            TINFLStatus::Done => Ok(()),
            TINFLStatus::HasMoreOutput => Err(DecompressError::Overlong(A)),
            _ => Err(DecompressError::Corrupt(A)),
        }
    }
}
