//! Algorithm ids and names.

use core::fmt;
use core::str::FromStr;

/// A compression algorithm, with the id stored beside every compressed object.
///
/// The id (see [`Algorithm::id`]) is what a page descriptor records, so a page written by
/// one algorithm is still read back correctly after the default changes. Ids are stable
/// (they are an on-media format), never 0, and fit in [`Algorithm::ID_BITS`] bits.
///
/// `Zstd` exists in every build so that its id is always recognised, but it can only be
/// instantiated with the `std` feature (see [`Algorithm::is_available`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Algorithm {
    /// LZ4 block format (lz4_flex). The default: the fastest of the four.
    #[default]
    Lz4 = 1,
    /// Raw deflate (RFC 1951, no zlib header) by miniz_oxide, level 1.
    Deflate = 2,
    /// LZO1X by lzokay.
    Lzo = 3,
    /// Zstandard (C library), only with the `std` feature.
    Zstd = 4,
}

impl Algorithm {
    /// Every algorithm this crate knows, available in this build or not, in id order.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Lz4,
        Algorithm::Deflate,
        Algorithm::Lzo,
        Algorithm::Zstd,
    ];

    /// The algorithms that [`crate::new_compressor`] can instantiate in this build.
    #[cfg(feature = "std")]
    pub const AVAILABLE: &'static [Algorithm] = &Algorithm::ALL;
    /// The algorithms that [`crate::new_compressor`] can instantiate in this build.
    #[cfg(not(feature = "std"))]
    pub const AVAILABLE: &'static [Algorithm] =
        &[Algorithm::Lz4, Algorithm::Deflate, Algorithm::Lzo];

    /// Number of bits an id needs: every id is below `1 << ID_BITS`.
    pub const ID_BITS: u32 = 3;

    /// The id stored with compressed objects (1..=4; 0 is never an algorithm id).
    #[inline]
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The algorithm with this id, or `None` for an unknown id.
    #[inline]
    pub const fn from_id(id: u8) -> Option<Algorithm> {
        match id {
            1 => Some(Algorithm::Lz4),
            2 => Some(Algorithm::Deflate),
            3 => Some(Algorithm::Lzo),
            4 => Some(Algorithm::Zstd),
            _ => None,
        }
    }

    /// The name used on command lines and in statistics (the kernel's crypto names).
    #[inline]
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Lz4 => "lz4",
            Algorithm::Deflate => "deflate",
            Algorithm::Lzo => "lzo",
            Algorithm::Zstd => "zstd",
        }
    }

    /// The algorithm with this name (ASCII case-insensitive).
    ///
    /// A known name is accepted even when its algorithm is not available in this build;
    /// [`crate::new_compressor`] then reports it as unavailable.
    pub fn from_name(name: &str) -> Result<Algorithm, UnknownAlgorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .find(|a| a.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownAlgorithm::new(name))
    }

    /// Whether this build can instantiate the algorithm (zstd needs the `std` feature).
    #[inline]
    pub const fn is_available(self) -> bool {
        match self {
            Algorithm::Lz4 | Algorithm::Deflate | Algorithm::Lzo => true,
            Algorithm::Zstd => cfg!(feature = "std"),
        }
    }

    /// Worst-case compressed size of one page with this algorithm: the scratch buffer this
    /// algorithm needs. [`crate::MAX_COMPRESSED_LEN`] is the largest of these.
    #[inline]
    pub const fn max_compressed_len(self) -> usize {
        match self {
            Algorithm::Lz4 => crate::lz4::MAX_LEN,
            Algorithm::Deflate => crate::deflate::MAX_LEN,
            Algorithm::Lzo => crate::lzo::MAX_LEN,
            Algorithm::Zstd => ZSTD_MAX_LEN,
        }
    }
}

/// `ZSTD_compressBound(PAGE_SIZE)`: n + n/256 + ((128 KiB - n) >> 11) for n below
/// 128 KiB (4096: 4178; 16384: 16504; 65536: 65824).
pub(crate) const ZSTD_MAX_LEN: usize = {
    let n = crate::PAGE_SIZE;
    assert!(n < 128 << 10);
    n + (n >> 8) + (((128 << 10) - n) >> 11)
};

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Algorithm, UnknownAlgorithm> {
        Algorithm::from_name(s)
    }
}

impl From<Algorithm> for u8 {
    fn from(a: Algorithm) -> u8 {
        a.id()
    }
}

/// Longest prefix of an unknown name kept for the error message.
const NAME_KEPT: usize = 24;

/// A name that is not one of [`Algorithm::ALL`]; its `Display` lists the known names.
///
/// Keeps (a prefix of) the rejected name without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UnknownAlgorithm {
    name: [u8; NAME_KEPT],
    len: u8,
    truncated: bool,
}

impl UnknownAlgorithm {
    fn new(name: &str) -> UnknownAlgorithm {
        let mut cut = name.len().min(NAME_KEPT);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut kept = [0u8; NAME_KEPT];
        kept[..cut].copy_from_slice(&name.as_bytes()[..cut]);
        UnknownAlgorithm {
            name: kept,
            len: cut as u8,
            truncated: cut < name.len(),
        }
    }

    /// The rejected name (its first 24 bytes at most).
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnknownAlgorithm")
            .field("name", &self.name())
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown compression algorithm \"{}", self.name())?;
        if self.truncated {
            f.write_str("...")?;
        }
        f.write_str("\"; known:")?;
        for (i, a) in Algorithm::ALL.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{a}")?;
            if !a.is_available() {
                f.write_str(" (needs the std feature)")?;
            }
        }
        Ok(())
    }
}

impl core::error::Error for UnknownAlgorithm {}
