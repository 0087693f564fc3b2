//! Zstandard through the C library (std only).

use zstd::zstd_safe::{self, CCtx, DCtx};

use crate::{
    Algorithm, CompressError, Compressor, CompressorInitError, DecompressError, PAGE_SIZE, Page,
};

pub(crate) use crate::algorithm::ZSTD_MAX_LEN as MAX_LEN;

/// The default level: the kernel's crypto zstd default (`ZSTD_CLEVEL_DEFAULT`).
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// Zstandard frames through libzstd (`std` feature only).
///
/// Owns one compression and one decompression context (C allocations, made fallibly at
/// construction and reused for every page). Only single standard frames are accepted on
/// decompression: no skippable frames, no concatenated frames and no legacy (pre-1.0)
/// formats, so hostile input only reaches the current, fuzzed decoder.
pub struct Zstd {
    cctx: CCtx<'static>,
    dctx: DCtx<'static>,
    level: i32,
}

impl Zstd {
    /// A compressor at [`ZSTD_DEFAULT_LEVEL`].
    pub fn new() -> Result<Zstd, CompressorInitError> {
        Zstd::with_level(ZSTD_DEFAULT_LEVEL)
    }

    /// A compressor at `level` (libzstd clamps it to its supported range).
    pub fn with_level(level: i32) -> Result<Zstd, CompressorInitError> {
        let err = CompressorInitError::Backend(Algorithm::Zstd);
        let cctx = CCtx::try_create().ok_or(err)?;
        let dctx = DCtx::try_create().ok_or(err)?;
        Ok(Zstd { cctx, dctx, level })
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }
}

impl Compressor for Zstd {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Zstd
    }

    fn compress(&mut self, page: &Page, dst: &mut [u8]) -> Result<usize, CompressError> {
        if dst.len() < MAX_LEN {
            return Err(CompressError::ScratchTooSmall {
                needed: MAX_LEN,
                got: dst.len(),
            });
        }
        self.cctx
            .compress(dst, page, self.level)
            .map_err(|_| CompressError::Failed(Algorithm::Zstd))
    }

    fn decompress(&mut self, src: &[u8], page: &mut Page) -> Result<(), DecompressError> {
        const A: Algorithm = Algorithm::Zstd;
        // Exactly one standard frame: its magic number first, and its end at the end.
        if src.get(..4) != Some(&zstd_safe::MAGICNUMBER.to_le_bytes()[..]) {
            return Err(DecompressError::Corrupt(A));
        }
        match zstd_safe::find_frame_compressed_size(src) {
            Ok(n) if n == src.len() => {}
            Ok(_) => return Err(DecompressError::TrailingData(A)),
            Err(_) => return Err(DecompressError::Corrupt(A)),
        }
        match self.dctx.decompress(&mut page[..], src) {
            Ok(PAGE_SIZE) => Ok(()),
            Ok(len) => Err(DecompressError::ShortPage { algorithm: A, len }),
            Err(code) if is_dst_too_small(code) => Err(DecompressError::Overlong(A)),
            Err(_) => Err(DecompressError::Corrupt(A)),
        }
    }
}

fn is_dst_too_small(code: zstd_safe::ErrorCode) -> bool {
    zstd_safe::get_error_name(code).contains("too small")
}
