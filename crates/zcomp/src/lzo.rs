//! LZO1X through lzokay.

use alloc::boxed::Box;

use lzokay::compress::{Dict, compress_no_alloc, compress_worst_size};
use zerocopy::FromZeros;

use crate::{
    Algorithm, CompressError, Compressor, CompressorInitError, DecompressError, PAGE_SIZE, Page,
};

/// LZO's documented worst case for one page.
pub(crate) const MAX_LEN: usize = compress_worst_size(PAGE_SIZE);

/// LZO1X through lzokay (pure Rust).
///
/// lzokay's match-finder dictionary is about 440 KiB: it is allocated once, zeroed in
/// place on the heap (never on the stack) and fallibly, and reused for every page.
/// Decompression needs no state.
pub struct Lzo {
    dict: Box<Dict>,
}

impl Lzo {
    /// A compressor with its own dictionary; an error if it cannot be allocated.
    pub fn new() -> Result<Lzo, CompressorInitError> {
        let dict = Dict::new_box_zeroed().map_err(|_| CompressorInitError::OutOfMemory {
            algorithm: Algorithm::Lzo,
            bytes: core::mem::size_of::<Dict>(),
        })?;
        Ok(Lzo { dict })
    }
}

impl Compressor for Lzo {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Lzo
    }

    fn compress(&mut self, page: &Page, dst: &mut [u8]) -> Result<usize, CompressError> {
        if dst.len() < MAX_LEN {
            return Err(CompressError::ScratchTooSmall {
                needed: MAX_LEN,
                got: dst.len(),
            });
        }
        compress_no_alloc(page, dst, &mut self.dict)
            .map_err(|_| CompressError::Failed(Algorithm::Lzo))
    }

    fn decompress(&mut self, src: &[u8], page: &mut Page) -> Result<(), DecompressError> {
        decompress_page(src, page)
    }
}

/// LZO decompression needs no state.
pub(crate) fn decompress_page(src: &[u8], page: &mut Page) -> Result<(), DecompressError> {
    use lzokay::Error as E;
    const A: Algorithm = Algorithm::Lzo;
    match lzokay::decompress::decompress(src, page) {
        Ok(PAGE_SIZE) => Ok(()),
        Ok(len) => Err(DecompressError::ShortPage { algorithm: A, len }),
        Err(E::OutputOverrun) => Err(DecompressError::Overlong(A)),
        Err(E::InputNotConsumed) => Err(DecompressError::TrailingData(A)),
        Err(_) => Err(DecompressError::Corrupt(A)),
    }
}
