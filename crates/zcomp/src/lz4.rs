//! LZ4 block format through lz4_flex.

use alloc::boxed::Box;

use lz4_flex::block::{CompressTable, compress_into_with_table, decompress_into};

use crate::heap::try_box;
use crate::{
    Algorithm, CompressError, Compressor, CompressorInitError, DecompressError, PAGE_SIZE, Page,
};

/// lz4_flex refuses a destination shorter than this before compressing anything.
pub(crate) const MAX_LEN: usize = lz4_flex::block::get_maximum_output_size(PAGE_SIZE);

/// The table for a page: lz4_flex swaps a 16-bit table for a 32-bit one (on the stack, at
/// the first call) when `input.len() >= u16::MAX`, so a 64 KiB page starts with the large
/// one.
fn table() -> CompressTable {
    if PAGE_SIZE < u16::MAX as usize {
        CompressTable::small()
    } else {
        CompressTable::large()
    }
}

/// LZ4 (block format, no size prefix, no checksum) through lz4_flex.
///
/// Holds lz4_flex's hash table (4096 entries: 16-bit positions at 4 and 16 KiB pages,
/// 32-bit at 64 KiB, where positions reach 65535, which lz4_flex's 16-bit table does not
/// take) in a heap allocation made at construction, cleared and reused for every page:
/// nothing is allocated per call and nothing large sits on the stack. Decompression
/// needs no state.
pub struct Lz4 {
    table: Box<CompressTable>,
}

impl Lz4 {
    /// A compressor with its own hash table; an error if the table cannot be allocated.
    pub fn new() -> Result<Lz4, CompressorInitError> {
        Ok(Lz4 {
            table: try_box(table(), Algorithm::Lz4)?,
        })
    }
}

impl Compressor for Lz4 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Lz4
    }

    fn compress(&mut self, page: &Page, dst: &mut [u8]) -> Result<usize, CompressError> {
        if dst.len() < MAX_LEN {
            return Err(CompressError::ScratchTooSmall {
                needed: MAX_LEN,
                got: dst.len(),
            });
        }
        compress_into_with_table(page, dst, &mut self.table)
            .map_err(|_| CompressError::Failed(Algorithm::Lz4))
    }

    fn decompress(&mut self, src: &[u8], page: &mut Page) -> Result<(), DecompressError> {
        decompress_page(src, page)
    }
}

/// LZ4 decompression needs no state: usable without a compressor instance.
pub(crate) fn decompress_page(src: &[u8], page: &mut Page) -> Result<(), DecompressError> {
    use lz4_flex::block::DecompressError as E;
    // An LZ4 block has no end marker: its end is the end of the input, so every valid
    // stream consumes all of `src` and trailing garbage is simply more (corrupt) tokens.
    match decompress_into(src, page) {
        Ok(PAGE_SIZE) => Ok(()),
        Ok(len) => Err(DecompressError::ShortPage {
            algorithm: Algorithm::Lz4,
            len,
        }),
        Err(E::OutputTooSmall { .. }) => Err(DecompressError::Overlong(Algorithm::Lz4)),
        Err(_) => Err(DecompressError::Corrupt(Algorithm::Lz4)),
    }
}
