//! The page size of the build: 4 KiB unless the host asks for 16 KiB (`page-16k`) or
//! 64 KiB (`page-64k`).
//!
//! It is a constant, as `PAGE_SIZE` is in a kernel: a kernel is built for one page size,
//! so the host chooses it when it builds this library, and every layer (tmem pages,
//! zpool frames, zsmalloc's classes, zbud's chunks, zcomp's same-filled check) is
//! compiled for it. At 4 KiB the code is the code of a build with `4096` written out:
//! nothing is read at run time, no division is by a variable.
//!
//! The two features exclude each other. A build that enables both (feature unification
//! can do that when two crates of one program ask for different sizes) does not compile,
//! rather than silently picking one.

#[cfg(all(feature = "page-16k", feature = "page-64k"))]
compile_error!(
    "zplat: features `page-16k` and `page-64k` exclude each other: choose one page size"
);

/// log2 of [`PAGE_SIZE`].
#[cfg(not(any(feature = "page-16k", feature = "page-64k")))]
pub const PAGE_SHIFT: u32 = 12;
/// log2 of [`PAGE_SIZE`].
#[cfg(all(feature = "page-16k", not(feature = "page-64k")))]
pub const PAGE_SHIFT: u32 = 14;
/// log2 of [`PAGE_SIZE`].
#[cfg(feature = "page-64k")]
pub const PAGE_SHIFT: u32 = 16;

/// Bytes in a page (and in a zpool frame): 4096, 16384 or 65536.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// How many times larger than 4 KiB a page is (1, 4 or 16): the factor Linux's own
/// page-size-dependent constants scale by.
pub const PAGE_SCALE: usize = PAGE_SIZE / 4096;

/// A page's bytes.
pub type Page = [u8; PAGE_SIZE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_size_is_one_of_three() {
        assert!(matches!(PAGE_SIZE, 4096 | 16384 | 65536));
        assert_eq!(PAGE_SIZE, 1usize << PAGE_SHIFT);
        assert_eq!(PAGE_SCALE * 4096, PAGE_SIZE);
    }
}
