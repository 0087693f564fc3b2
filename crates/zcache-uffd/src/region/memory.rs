//! Safe byte access to the region's memory (atomic copies), and the memory handed back
//! by a resident shutdown.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::error::RegionError;

/// A region after [`Region::shutdown_resident`]: the same memory, every page resident,
/// no longer registered with userfaultfd. Unmapped when dropped.
#[derive(Debug)]
pub struct ResidentMemory {
    pub(super) base: usize,
    pub(super) len: usize,
    pub(super) memfd: Option<OwnedFd>,
}

impl ResidentMemory {
    /// The memory's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base as *mut u8
    }
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it is empty (never: regions have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The memfd behind it, for a shared region.
    pub fn memfd(&self) -> Option<BorrowedFd<'_>> {
        self.memfd.as_ref().map(|f| f.as_fd())
    }
    /// Copies bytes out (atomic loads: safe beside other threads' writes).
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), RegionError> {
        check_range(offset, out.len(), self.len)?;
        atomic_read(self.base + offset, out);
        Ok(())
    }
}

impl Drop for ResidentMemory {
    fn drop(&mut self) {
        // SAFETY: this value owns the mapping (moved out of the region, which no longer
        // unmaps it), and it is being dropped: nothing can use it afterwards.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

pub(super) fn check_range(offset: usize, len: usize, total: usize) -> Result<(), RegionError> {
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(()),
        _ => Err(RegionError::OutOfRange {
            offset,
            len,
            size: total,
        }),
    }
}

/// A byte range `start..end` of a region of `total` bytes: well-formed and inside it.
pub(super) fn check_bytes(bytes: &std::ops::Range<usize>, total: usize) -> Result<(), RegionError> {
    if bytes.start > bytes.end {
        return Err(RegionError::OutOfRange {
            offset: bytes.start,
            len: 0,
            size: total,
        });
    }
    check_range(bytes.start, bytes.end - bytes.start, total)
}

pub(super) fn atomic_read(addr: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: `addr + i` is inside a live mapping (checked by the caller) and
        // `AtomicU8` has the alignment and size of `u8`; concurrent accesses to the
        // region from safe code are all atomic, so this is no data race.
        *b = unsafe { &*((addr + i) as *const AtomicU8) }.load(Ordering::Relaxed);
    }
}

pub(super) fn atomic_write(addr: usize, data: &[u8]) {
    let mut i = 0;
    // Byte steps up to a word boundary, words, then bytes.
    while i < data.len() && !(addr + i).is_multiple_of(8) {
        // SAFETY: as in `atomic_read`.
        unsafe { &*((addr + i) as *const AtomicU8) }.store(data[i], Ordering::Relaxed);
        i += 1;
    }
    while i + 8 <= data.len() {
        let w = u64::from_ne_bytes(data[i..i + 8].try_into().unwrap_or([0; 8]));
        // SAFETY: `addr + i` is 8-aligned and the 8 bytes are inside the mapping
        // (checked by the caller); `AtomicU64` has `u64`'s size and alignment.
        unsafe { &*((addr + i) as *const AtomicU64) }.store(w, Ordering::Relaxed);
        i += 8;
    }
    while i < data.len() {
        // SAFETY: as in `atomic_read`.
        unsafe { &*((addr + i) as *const AtomicU8) }.store(data[i], Ordering::Relaxed);
        i += 1;
    }
}
