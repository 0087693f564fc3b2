//! Page compressors for zcache: LZ4 (the default), raw deflate, LZO and, with the `std`
//! feature, zstd; same-filled page detection; and the store policy that decides whether
//! a compressed page is worth keeping.
//!
//! `no_std` + `alloc`, no `unsafe` in this crate. Shaped after the kernel's per-CPU
//! compression contexts: a [`Compressor`] owns its tables (allocated fallibly when it is
//! created, reused for every page), compresses a page (`PAGE_SIZE`: 4, 16 or 64 KiB) into a caller-owned scratch
//! buffer and decompresses into a caller-owned page, and never allocates per call.
//!
//! ```
//! use zcomp::{Algorithm, MAX_COMPRESSED_LEN, PAGE_SIZE, StorePolicy, Verdict};
//!
//! let mut page = [0u8; PAGE_SIZE];
//! for (i, b) in page.iter_mut().enumerate() {
//!     *b = (i % 251) as u8;
//! }
//! // Same-filled pages are caught first and stored as their word alone.
//! assert_eq!(zcomp::same_filled(&page), None);
//!
//! let mut c = zcomp::new_compressor(Algorithm::from_name("lz4")?)?;
//! let mut scratch = [0u8; MAX_COMPRESSED_LEN];
//! let len = c.compress(&page, &mut scratch)?;
//! assert_eq!(StorePolicy::default().verdict(len, 0), Verdict::Store);
//!
//! // Store (c.algorithm().id(), the len bytes); later, read them back:
//! let alg = Algorithm::from_id(c.algorithm().id()).expect("a known id");
//! let mut back = [0u8; PAGE_SIZE];
//! zcomp::new_compressor(alg)?.decompress(&scratch[..len], &mut back)?;
//! assert_eq!(back, page);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Corrupt, truncated or hostile input to any decompressor gives a [`DecompressError`]:
//! never a panic, an out-of-bounds access or an endless loop, and never success unless
//! exactly one page came out.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod algorithm;
mod deflate;
mod error;
mod heap;
mod lz4;
mod lzo;
mod policy;
mod same;
#[cfg(feature = "std")]
mod zstd;

use alloc::boxed::Box;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use deflate::{DEFLATE_LEVEL, Deflate};
pub use error::{CompressError, CompressorInitError, DecompressError};
pub use lz4::Lz4;
pub use lzo::Lzo;
pub use policy::{StorePolicy, Verdict};
pub use same::{fill_page, same_filled};
#[cfg(feature = "std")]
pub use zstd::{ZSTD_DEFAULT_LEVEL, Zstd};

/// Size of a page: what every compressor takes in and gives back (the build's page
/// size, `zplat::PAGE_SIZE`).
pub const PAGE_SIZE: usize = zplat::PAGE_SIZE;

/// One page.
pub type Page = [u8; PAGE_SIZE];

/// The scratch buffer size a caller must provide to [`Compressor::compress`]: the largest
/// worst-case compressed size of any algorithm (lz4_flex's 4525 bytes).
pub const MAX_COMPRESSED_LEN: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < Algorithm::ALL.len() {
        let n = Algorithm::ALL[i].max_compressed_len();
        if n > max {
            max = n;
        }
        i += 1;
    }
    max
};

/// Which lz4_flex implementations this crate asked for: `(safe_encode, safe_decode)`.
///
/// Cargo features are additive: another crate in the same build can still switch on
/// lz4_flex's safe variants, never switch them off.
pub const LZ4_SAFE_MODES: (bool, bool) = (
    cfg!(feature = "lz4-safe-encode"),
    cfg!(feature = "lz4-safe-decode"),
);

/// A page compressor: one instance per CPU (or per thread), like the kernel's per-CPU
/// compression contexts. It owns its tables, so `&mut self`.
pub trait Compressor: Send {
    /// The algorithm, whose [`Algorithm::id`] must be stored with each compressed page.
    fn algorithm(&self) -> Algorithm;

    /// Compresses `page` into `dst` and returns the compressed length.
    ///
    /// `dst` must hold at least [`Algorithm::max_compressed_len`] bytes
    /// ([`MAX_COMPRESSED_LEN`] always does), otherwise
    /// [`CompressError::ScratchTooSmall`]. The result may be longer than a page for
    /// incompressible data: decide with a [`StorePolicy`] whether to keep it. Does not
    /// allocate.
    fn compress(&mut self, page: &Page, dst: &mut [u8]) -> Result<usize, CompressError>;

    /// Decompresses `src` (exactly the bytes `compress` returned) into `page`.
    ///
    /// Succeeds only if `src` is one valid stream that decodes to exactly
    /// [`PAGE_SIZE`] bytes with nothing left over; any other input, however malformed,
    /// gives an error in bounded time. On error `page` holds unspecified bytes. Does not
    /// allocate.
    fn decompress(&mut self, src: &[u8], page: &mut Page) -> Result<(), DecompressError>;
}

/// Any of the compressors, for static dispatch and fully fallible construction.
pub enum AnyCompressor {
    /// LZ4.
    Lz4(Lz4),
    /// Raw deflate.
    Deflate(Deflate),
    /// LZO.
    Lzo(Lzo),
    /// Zstandard (`std` feature).
    #[cfg(feature = "std")]
    Zstd(Zstd),
}

impl AnyCompressor {
    /// A new compressor for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Result<AnyCompressor, CompressorInitError> {
        Ok(match algorithm {
            Algorithm::Lz4 => AnyCompressor::Lz4(Lz4::new()?),
            Algorithm::Deflate => AnyCompressor::Deflate(Deflate::new()?),
            Algorithm::Lzo => AnyCompressor::Lzo(Lzo::new()?),
            #[cfg(feature = "std")]
            Algorithm::Zstd => AnyCompressor::Zstd(Zstd::new()?),
            #[cfg(not(feature = "std"))]
            Algorithm::Zstd => return Err(CompressorInitError::Unavailable(algorithm)),
        })
    }

    fn inner(&mut self) -> &mut dyn Compressor {
        match self {
            AnyCompressor::Lz4(c) => c,
            AnyCompressor::Deflate(c) => c,
            AnyCompressor::Lzo(c) => c,
            #[cfg(feature = "std")]
            AnyCompressor::Zstd(c) => c,
        }
    }
}

impl Compressor for AnyCompressor {
    fn algorithm(&self) -> Algorithm {
        match self {
            AnyCompressor::Lz4(_) => Algorithm::Lz4,
            AnyCompressor::Deflate(_) => Algorithm::Deflate,
            AnyCompressor::Lzo(_) => Algorithm::Lzo,
            #[cfg(feature = "std")]
            AnyCompressor::Zstd(_) => Algorithm::Zstd,
        }
    }

    #[inline]
    fn compress(&mut self, page: &Page, dst: &mut [u8]) -> Result<usize, CompressError> {
        self.inner().compress(page, dst)
    }

    #[inline]
    fn decompress(&mut self, src: &[u8], page: &mut Page) -> Result<(), DecompressError> {
        self.inner().decompress(src, page)
    }
}

/// A new boxed compressor for `algorithm`.
///
/// Every allocation is fallible and its failure is [`CompressorInitError::OutOfMemory`]
/// (miniz_oxide's internal boxes excepted: see [`Deflate::new`]); zstd without the `std`
/// feature is [`CompressorInitError::Unavailable`]. Use [`AnyCompressor::new`] to avoid
/// the box and the dynamic dispatch.
pub fn new_compressor(algorithm: Algorithm) -> Result<Box<dyn Compressor>, CompressorInitError> {
    let c = AnyCompressor::new(algorithm)?;
    Ok(heap::try_box(c, algorithm)?)
}
