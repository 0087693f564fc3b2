//! Error types.

use core::fmt;

use crate::{Algorithm, MAX_COMPRESSED_LEN, PAGE_SIZE};

/// Why a page could not be compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompressError {
    /// The scratch buffer is shorter than the algorithm's worst case
    /// ([`Algorithm::max_compressed_len`]; [`MAX_COMPRESSED_LEN`] always suffices).
    ScratchTooSmall {
        /// Bytes the algorithm needs.
        needed: usize,
        /// Bytes the caller gave.
        got: usize,
    },
    /// The backend reported a failure (not expected with a large enough scratch buffer).
    Failed(Algorithm),
}

impl fmt::Display for CompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressError::ScratchTooSmall { needed, got } => write!(
                f,
                "compression scratch buffer too small: {got} bytes, need {needed} \
                 (MAX_COMPRESSED_LEN = {MAX_COMPRESSED_LEN})"
            ),
            CompressError::Failed(a) => write!(f, "{a} compression failed"),
        }
    }
}

impl core::error::Error for CompressError {}

/// Why compressed bytes could not be turned back into a page.
///
/// Every variant means the input was not a valid compressed page for the algorithm
/// (corrupt, truncated, written by another algorithm, or hostile). The destination page
/// then holds unspecified bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecompressError {
    /// The input is not a valid stream (bad token, offset before the start, truncated...).
    Corrupt(Algorithm),
    /// The stream is valid but ends before a whole page came out.
    ShortPage {
        /// The algorithm.
        algorithm: Algorithm,
        /// Bytes produced (less than [`PAGE_SIZE`]).
        len: usize,
    },
    /// The stream would produce more than one page.
    Overlong(Algorithm),
    /// A whole page came out but bytes follow the end of the stream.
    TrailingData(Algorithm),
}

impl DecompressError {
    /// The algorithm that rejected the input.
    pub fn algorithm(&self) -> Algorithm {
        match *self {
            DecompressError::Corrupt(a)
            | DecompressError::Overlong(a)
            | DecompressError::TrailingData(a) => a,
            DecompressError::ShortPage { algorithm, .. } => algorithm,
        }
    }
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecompressError::Corrupt(a) => write!(f, "corrupt {a} data"),
            DecompressError::ShortPage { algorithm, len } => write!(
                f,
                "{algorithm} data decompresses to {len} bytes, not a {PAGE_SIZE}-byte page"
            ),
            DecompressError::Overlong(a) => {
                write!(
                    f,
                    "{a} data decompresses to more than a {PAGE_SIZE}-byte page"
                )
            }
            DecompressError::TrailingData(a) => {
                write!(f, "{a} data has bytes after the end of the page's stream")
            }
        }
    }
}

impl core::error::Error for DecompressError {}

/// Why a compressor could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompressorInitError {
    /// Its tables could not be allocated.
    OutOfMemory {
        /// The algorithm.
        algorithm: Algorithm,
        /// Size of the allocation that failed.
        bytes: usize,
    },
    /// The algorithm is not compiled into this build (zstd without the `std` feature).
    Unavailable(Algorithm),
    /// The backend library refused to create a context.
    Backend(Algorithm),
}

impl fmt::Display for CompressorInitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressorInitError::OutOfMemory { algorithm, bytes } => write!(
                f,
                "out of memory creating a {algorithm} compressor ({bytes} bytes)"
            ),
            CompressorInitError::Unavailable(a) => write!(
                f,
                "the {a} compressor is not available in this build (it needs the std feature)"
            ),
            CompressorInitError::Backend(a) => {
                write!(f, "the {a} library could not create a context")
            }
        }
    }
}

impl core::error::Error for CompressorInitError {}
