//! Fallible `Box` construction.

use alloc::boxed::Box;
use core::alloc::Layout;

/// Moves `value` into a new heap allocation, or hands it back when the global allocator
/// has no memory (`Box::new` would abort).
///
/// A zero-sized `T` needs no allocation and always succeeds.
pub fn try_box<T>(value: T) -> Result<Box<T>, T> {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        // `Box::new` of a zero-sized type does not allocate, so it cannot fail.
        return Ok(Box::new(value));
    }
    // SAFETY: `layout` has a non-zero size (checked above).
    let raw = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    if raw.is_null() {
        return Err(value);
    }
    // SAFETY: `raw` is a fresh allocation of the global allocator with `Layout::new::<T>()`,
    // so it is valid for a write of `T` and aligned for it; after the write it holds an
    // initialised `T`, which is exactly what `Box::from_raw` requires of a pointer to
    // take ownership of (its "Memory layout" rules: global allocator, `Layout::new::<T>`).
    unsafe {
        raw.write(value);
        Ok(Box::from_raw(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_values_and_zero_sized_types() {
        let b = try_box([7u64; 64]).unwrap();
        assert_eq!(b[63], 7);
        let z = try_box(()).unwrap();
        assert_eq!(*z, ());
        let s: Box<dyn core::fmt::Debug> = try_box(alloc::string::String::from("x")).unwrap();
        assert_eq!(alloc::format!("{s:?}"), "\"x\"");
    }
}
