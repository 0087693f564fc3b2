//! A counting global allocator: the binary installs it so the baseline's heap use (what a
//! `Mutex<HashMap<_, Vec<u8>>>` really holds) is measured, not estimated.
//!
//! Counters are per thread (a `const` thread-local `Cell` without a destructor, so
//! counting never allocates): a measurement on one thread is not disturbed by another
//! (a progress bar's ticker). Two figures are kept: the bytes asked for, and the bytes a
//! glibc-style malloc takes for them (8-byte chunk header, 16-byte granules, 32-byte
//! minimum chunk).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting.
pub struct CountingAlloc;

thread_local! {
    static REQUESTED: Cell<i64> = const { Cell::new(0) };
    static CHUNKS: Cell<i64> = const { Cell::new(0) };
}

/// Bytes a glibc-style malloc takes for a block of this layout (the model; the real
/// allocator is whatever `System` is).
pub fn malloc_chunk(layout: Layout) -> usize {
    let base = (layout.size() + 8).div_ceil(16) * 16;
    let base = base.max(32);
    if layout.align() > 16 {
        base + layout.align()
    } else {
        base
    }
}

fn note(layout: Layout, sign: i64) {
    let req = layout.size() as i64 * sign;
    let chunk = malloc_chunk(layout) as i64 * sign;
    let _ = REQUESTED.try_with(|c| c.set(c.get() + req));
    let _ = CHUNKS.try_with(|c| c.set(c.get() + chunk));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the bookkeeping touches only thread-local integers
// and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(layout, -1);
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`, as the
        // caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which we pass on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(layout, -1);
            if let Ok(new) = Layout::from_size_align(new_size, layout.align()) {
                note(new, 1);
            }
        }
        p
    }
}

/// The calling thread's live heap bytes, as counted since it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapCount {
    /// Bytes asked for.
    pub requested: i64,
    /// Bytes a glibc-style malloc would take for them.
    pub malloc: i64,
}

impl HeapCount {
    /// The calling thread's counters now.
    pub fn now() -> HeapCount {
        HeapCount {
            requested: REQUESTED.try_with(Cell::get).unwrap_or(0),
            malloc: CHUNKS.try_with(Cell::get).unwrap_or(0),
        }
    }

    /// Growth since `earlier`.
    pub fn since(self, earlier: HeapCount) -> HeapCount {
        HeapCount {
            requested: self.requested - earlier.requested,
            malloc: self.malloc - earlier.malloc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malloc_model_matches_glibc_chunk_sizes() {
        let l = |n| Layout::from_size_align(n, 1).expect("layout");
        assert_eq!(malloc_chunk(l(1)), 32);
        assert_eq!(malloc_chunk(l(24)), 32);
        assert_eq!(malloc_chunk(l(25)), 48);
        assert_eq!(malloc_chunk(l(1640)), 1648);
    }
}
