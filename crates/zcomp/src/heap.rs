//! Fallible heap placement of compressor state.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::{Algorithm, CompressorInitError};

/// Moves `value` into a new heap allocation, reporting allocation failure as an error
/// naming `algorithm` instead of aborting (`Box::new` cannot fail gracefully on stable
/// Rust; [`zplat::try_box`] does the placement).
pub(crate) fn try_box<T>(value: T, algorithm: Algorithm) -> Result<Box<T>, CompressorInitError> {
    zplat::try_box(value).map_err(|_| CompressorInitError::OutOfMemory {
        algorithm,
        bytes: core::mem::size_of::<T>(),
    })
}

/// Checks that the allocator can currently supply `bytes`, for a backend whose constructor
/// allocates infallibly (miniz_oxide). Not a guarantee (another allocation may take the
/// memory in between), but it turns the ordinary out-of-memory case into an error rather
/// than an abort.
pub(crate) fn preflight(bytes: usize, algorithm: Algorithm) -> Result<(), CompressorInitError> {
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(bytes)
        .map_err(|_| CompressorInitError::OutOfMemory { algorithm, bytes })
}
