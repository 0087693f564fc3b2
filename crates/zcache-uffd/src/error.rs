//! Errors.

use std::fmt;
use std::io;

/// Why a region operation failed.
#[derive(Debug)]
pub enum RegionError {
    /// userfaultfd (with write-protect) cannot be used here; the reason says why
    /// (no syscall access, `vm.unprivileged_userfaultfd=0` for a non-root user, an old
    /// kernel).
    Unavailable(String),
    /// A system call failed: which one, and its error.
    Io(&'static str, io::Error),
    /// zcache could not be built or its swap area set up.
    Zcache(zcache::ZcacheError),
    /// The size is 0 or does not fit the address space.
    InvalidSize(usize),
    /// A byte range outside the region.
    OutOfRange {
        /// The first byte asked for.
        offset: usize,
        /// Bytes asked for.
        len: usize,
        /// The region's size.
        size: usize,
    },
    /// The copy of this page could not be read back (a bug or corrupted pool memory).
    Lost(usize),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionError::Unavailable(why) => write!(f, "userfaultfd unavailable: {why}"),
            RegionError::Io(what, e) => write!(f, "{what}: {e}"),
            RegionError::Zcache(e) => write!(f, "zcache: {e}"),
            RegionError::InvalidSize(s) => write!(f, "invalid region size {s}"),
            RegionError::OutOfRange { offset, len, size } => write!(
                f,
                "bytes {offset}..{} are outside the region of {size} bytes",
                offset.saturating_add(*len)
            ),
            RegionError::Lost(p) => write!(f, "page {p}'s copy could not be read back"),
        }
    }
}

impl std::error::Error for RegionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegionError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}
