//! Page frames and page sources.

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// Size of a page frame in bytes. The whole workspace works in 4 KiB pages.
pub const PAGE_SIZE: usize = 4096;

/// The contents of one page frame.
pub type Page = [u8; PAGE_SIZE];

/// A page source could not provide a frame (it never blocks to find one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("page source has no frame available")
    }
}

/// An owned 4 KiB page frame.
///
/// A `Frame` is to frame memory what a `Box<Page>` is to heap memory: exclusive ownership
/// of 4096 bytes, accessed through `&`/`&mut`. It is obtained from a [`PageSource`] and
/// must be given back to the same source with [`PageSource::free_frame`]. Dropping a
/// `Frame` without giving it back leaks the frame (counting test sources report it); it
/// is never freed behind the owner's back.
pub struct Frame {
    ptr: NonNull<Page>,
}

// SAFETY: a `Frame` owns its 4096 bytes exclusively (like `Box<Page>`), so moving it to
// another thread or sharing `&Frame` between threads is as safe as for `Box<[u8; 4096]>`.
unsafe impl Send for Frame {}
// SAFETY: see `Send`; `&Frame` only gives `&Page`.
unsafe impl Sync for Frame {}

impl Frame {
    /// Wraps a page frame provided by a page source.
    ///
    /// # Safety
    /// `ptr` must point to 4096 bytes of memory that are valid for reads and writes,
    /// aligned to at least 8 bytes, initialised (any contents), and owned exclusively by
    /// the returned `Frame` until it is turned back into a pointer with
    /// [`Frame::into_raw`].
    pub unsafe fn from_raw(ptr: NonNull<Page>) -> Frame {
        Frame { ptr }
    }

    /// Gives up ownership and returns the frame's address (for a page source's
    /// `free_frame`).
    pub fn into_raw(self) -> NonNull<Page> {
        // `Frame` has no `Drop`: consuming `self` ends its ownership without freeing.
        self.ptr
    }

    /// The frame's address, for diagnostics and for identifying a frame.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The frame's pointer, without giving up ownership (for page sources that track the
    /// frames they hand out). Dereferencing it is `unsafe` and only sound while no borrow
    /// of the frame's bytes is live.
    pub fn as_non_null(&self) -> NonNull<Page> {
        self.ptr
    }

    /// The frame's bytes.
    pub fn as_page(&self) -> &Page {
        // SAFETY: `from_raw`'s contract: the pointer is valid, initialised and owned by
        // this `Frame`, so a shared borrow tied to `&self` cannot alias a mutable one.
        unsafe { self.ptr.as_ref() }
    }

    /// The frame's bytes, mutably.
    pub fn as_page_mut(&mut self) -> &mut Page {
        // SAFETY: as in `as_page`; `&mut self` guarantees exclusivity.
        unsafe { self.ptr.as_mut() }
    }
}

impl Deref for Frame {
    type Target = Page;
    fn deref(&self) -> &Page {
        self.as_page()
    }
}

impl DerefMut for Frame {
    fn deref_mut(&mut self) -> &mut Page {
        self.as_page_mut()
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:#x})", self.addr())
    }
}

/// Where page frames come from.
///
/// Implementations must not block: when no frame is available at once, `alloc_frame`
/// returns [`AllocError`]. Both methods may be called concurrently from several threads
/// and from contexts where sleeping is forbidden.
pub trait PageSource: Send + Sync {
    /// Hands out one 4 KiB frame, or fails at once.
    fn alloc_frame(&self) -> Result<Frame, AllocError>;
    /// Takes back a frame this source handed out.
    fn free_frame(&self, frame: Frame);
}

impl<S: PageSource + ?Sized> PageSource for &S {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        (**self).alloc_frame()
    }
    fn free_frame(&self, frame: Frame) {
        (**self).free_frame(frame)
    }
}

impl<S: PageSource + ?Sized> PageSource for alloc::sync::Arc<S> {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        (**self).alloc_frame()
    }
    fn free_frame(&self, frame: Frame) {
        (**self).free_frame(frame)
    }
}

impl<S: PageSource + ?Sized> PageSource for alloc::boxed::Box<S> {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        (**self).alloc_frame()
    }
    fn free_frame(&self, frame: Frame) {
        (**self).free_frame(frame)
    }
}

/// Frames from the global allocator (4096-byte aligned blocks): the user-space source.
///
/// Allocation failure of the global allocator is reported as [`AllocError`], not an
/// abort.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapPageSource;

const PAGE_LAYOUT: core::alloc::Layout =
    match core::alloc::Layout::from_size_align(PAGE_SIZE, PAGE_SIZE) {
        Ok(l) => l,
        Err(_) => panic!("page layout"),
    };

impl PageSource for HeapPageSource {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        // SAFETY: PAGE_LAYOUT has a non-zero size.
        let raw = unsafe { alloc::alloc::alloc_zeroed(PAGE_LAYOUT) };
        let ptr = NonNull::new(raw.cast::<Page>()).ok_or(AllocError)?;
        // SAFETY: a fresh, zeroed (so initialised), 4096-aligned block of 4096 bytes that
        // nobody else references.
        Ok(unsafe { Frame::from_raw(ptr) })
    }

    fn free_frame(&self, frame: Frame) {
        let ptr = frame.into_raw();
        // SAFETY: every `Frame` given to this source came from its `alloc_frame`, which
        // allocated it with PAGE_LAYOUT; `into_raw` ended the frame's ownership.
        unsafe { alloc::alloc::dealloc(ptr.as_ptr().cast::<u8>(), PAGE_LAYOUT) }
    }
}
