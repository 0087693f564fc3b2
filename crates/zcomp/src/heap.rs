//! Fallible heap placement of compressor state.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::{Algorithm, CompressorInitError};

/// Moves `value` into a new heap allocation, reporting allocation failure as an error
/// instead of aborting (`Box::new` cannot fail gracefully on stable Rust).
///
/// The result is a one-element array so that the conversion from the `Vec` needs no
/// `unsafe`; index it with `[0]` (a constant index into an array: no run-time check).
pub(crate) fn try_box<T>(
    value: T,
    algorithm: Algorithm,
) -> Result<Box<[T; 1]>, CompressorInitError> {
    let oom = CompressorInitError::OutOfMemory {
        algorithm,
        bytes: core::mem::size_of::<T>(),
    };
    let mut v = Vec::new();
    v.try_reserve_exact(1).map_err(|_| oom)?;
    v.push(value);
    Box::<[T; 1]>::try_from(v).map_err(|_| oom)
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
