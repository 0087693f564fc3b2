//! `zcache-kglue` as a C static library: `libzcache_kglue_staticlib.a` exports every
//! `zcache_*` function of `include/zcache.h`.
//!
//! * Hosted targets (Linux user space, tests): links std, which brings the panic
//!   runtime and the global allocator.
//! * Bare-metal targets (`target_os = "none"`, e.g. `x86_64-unknown-none` for a kernel
//!   module): `no_std`. With the default features the archive brings a
//!   `#[panic_handler]` (feature `panic-handler`, calling the host's
//!   `zcache_host_panic`) and a `#[global_allocator]` (feature `global-allocator`, on
//!   the host's `zcache_host_alloc` / `zcache_host_free`); the header declares the
//!   three symbols the host must then define. rustc requires both in a bare-metal
//!   staticlib, so `--no-default-features` only builds for hosted targets. A host that
//!   has its own Rust runtime (Rust-for-Linux, a Rust kernel) does not link this
//!   archive: it depends on the `zcache-kglue` rlib, and its runtime brings both.
//!
//! ```text
//! cargo build -p zcache-kglue-staticlib --release --target x86_64-unknown-none
//! # -> target/x86_64-unknown-none/release/libzcache_kglue_staticlib.a
//! ```
#![cfg_attr(target_os = "none", no_std)]

// Re-exported so the archive keeps every `#[no_mangle]` function of the glue.
pub use zcache_kglue::*;

#[cfg(all(target_os = "none", feature = "panic-handler"))]
mod panic {
    use core::panic::PanicInfo;

    // SAFETY: the declaration matches the one in include/zcache.h (`void
    // zcache_host_panic(const char *file, size_t file_len, uint32_t line)`, which "must
    // not return", hence `-> !`); the host defines it when it links this archive.
    unsafe extern "C" {
        /// Provided by the host: report and stop (a kernel calls `panic()`).
        fn zcache_host_panic(file: *const u8, file_len: usize, line: u32) -> !;
    }

    #[panic_handler]
    fn panic(info: &PanicInfo<'_>) -> ! {
        let (file, line) = match info.location() {
            Some(l) => (l.file(), l.line()),
            None => ("<unknown>", 0),
        };
        // SAFETY: the host's function, given a pointer and length to a static string
        // (location files are 'static) and a line number; it never returns.
        unsafe { zcache_host_panic(file.as_ptr(), file.len(), line) }
    }
}

#[cfg(all(target_os = "none", feature = "global-allocator"))]
mod heap {
    use core::alloc::{GlobalAlloc, Layout};

    // SAFETY: the declarations match include/zcache.h (`void *zcache_host_alloc(size_t
    // size, size_t align)`, `void zcache_host_free(void *ptr, size_t size, size_t
    // align)`); the host defines both when it links this archive.
    unsafe extern "C" {
        /// Provided by the host: `size` bytes aligned to `align`, or null. Must not
        /// sleep (called from stores, possibly with interrupts disabled).
        fn zcache_host_alloc(size: usize, align: usize) -> *mut u8;
        /// Provided by the host: frees what `zcache_host_alloc` returned.
        fn zcache_host_free(ptr: *mut u8, size: usize, align: usize);
    }

    /// Rust's heap on the host's two functions.
    struct HostHeap;

    // SAFETY: relies on the host honouring the contract the header states for these
    // two functions (include/zcache.h, after the declarations): `zcache_host_alloc`
    // returns null or a block of at least `size` bytes aligned to `align` that nothing
    // else uses until it is freed, for every alignment zcache asks for (at most 128 on
    // x86_64), `zcache_host_free` takes back exactly such a block, both are callable
    // from any CPU concurrently and neither unwinds nor calls into zcache. That is
    // GlobalAlloc's contract; zero-size layouts never reach `alloc` (GlobalAlloc's
    // callers' rule).
    unsafe impl GlobalAlloc for HostHeap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: a plain call into the host with the layout's numbers.
            unsafe { zcache_host_alloc(layout.size(), layout.align()) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's contract).
            unsafe { zcache_host_free(ptr, layout.size(), layout.align()) }
        }
    }

    #[global_allocator]
    static HEAP: HostHeap = HostHeap;
}
