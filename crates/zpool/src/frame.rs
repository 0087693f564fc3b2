//! Page frames and page sources.

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of a page frame in bytes: the build's page size (`zplat::PAGE_SIZE`: 4 KiB, or
/// 16 or 64 KiB with the features `page-16k` and `page-64k`).
pub const PAGE_SIZE: usize = zplat::PAGE_SIZE;

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

/// Which page source a [`Frame`] belongs to: the source that will take it back checks
/// it, so a frame given to the wrong source is refused instead of freed.
///
/// A tag is a number in 2..=2047 chosen by the page source that makes frames with
/// [`Frame::from_raw`]; 1 is [`HeapPageSource`]'s and 0 is [`crate::BlockPageSource`]'s,
/// and no other source can obtain them. The range is the same at every page size (a
/// host's tag numbers do not depend on it).
/// It is stored in the low 11 bits of the frame's address (frames are page-aligned, so
/// at least 4096-aligned; bit 11 is left free), so
/// it costs no memory, one `or` when a frame is made, one `and` when its bytes are
/// reached, and one compare when it is freed (per frame, not per compressed page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTag(u16);

impl FrameTag {
    /// [`HeapPageSource`]'s tag. Not constructible outside this module; with
    /// [`Frame::from_raw`]'s contract, a frame carrying it has come from
    /// `HeapPageSource::alloc_frame`.
    const HEAP: FrameTag = FrameTag(1);

    /// [`crate::BlockPageSource`]'s tag (0: no host tag or heap frame has it).
    pub(crate) const BLOCKS: FrameTag = FrameTag(0);

    /// A tag for a page source of the host's, or `None` outside 2..=2047.
    pub const fn new(id: u16) -> Option<FrameTag> {
        if id >= 2 && (id as usize) < TAG_LIMIT {
            Some(FrameTag(id))
        } else {
            None
        }
    }

    /// The tag's number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// Tags are below this (11 bits) at every page size (bit 11 of a tagged address stays
/// free: it marked the wide form of the frame lists [`crate::FrameTable`] replaced, and
/// the tag range hosts were given stays as it is).
pub(crate) const TAG_LIMIT: usize = 2048;
/// The low address bits a page-aligned frame leaves free (its [`FrameTag`] uses the low
/// 11 of them).
pub(crate) const TAG_MASK: usize = PAGE_SIZE - 1;

const _: () = assert!(2 * TAG_LIMIT <= PAGE_SIZE && TAG_LIMIT <= u16::MAX as usize + 1);

/// An owned page frame of [`PAGE_SIZE`] bytes.
///
/// A `Frame` is to frame memory what a `Box<Page>` is to heap memory: exclusive ownership
/// of `PAGE_SIZE` bytes, accessed through `&`/`&mut`. It is obtained from a [`PageSource`] and
/// must be given back to the same source with [`PageSource::free_frame`]. It carries its
/// source's [`FrameTag`], and a source refuses (keeps, counts and never frees) a frame
/// with another tag, so handing a frame to the wrong source is a leak, never undefined
/// behaviour. Dropping a `Frame` without giving it back leaks the frame (counting test
/// sources report it); it is never freed behind the owner's back.
pub struct Frame {
    /// The frame's page-aligned address with its tag in the low 11 bits.
    tagged: NonNull<Page>,
}

// SAFETY: a `Frame` owns its `PAGE_SIZE` bytes exclusively (like `Box<Page>`), so moving
// it to another thread or sharing `&Frame` between threads is as safe as for `Box<Page>`.
unsafe impl Send for Frame {}
// SAFETY: see `Send`; `&Frame` only gives `&Page`.
unsafe impl Sync for Frame {}

impl Frame {
    /// Wraps a page frame provided by a page source, tagged with that source's tag.
    ///
    /// # Safety
    /// `ptr` must point to `PAGE_SIZE` bytes of memory that are valid for reads and
    /// writes, aligned to `PAGE_SIZE` bytes, initialised (any contents), and owned exclusively by the
    /// returned `Frame` until it is turned back into a pointer with [`Frame::into_raw`].
    /// Every source that accepts frames tagged `tag` on `free_frame` must be able to
    /// free this memory: pick your source's own tag (never one copied from another
    /// source's frame with [`Frame::tag`]).
    pub unsafe fn from_raw(ptr: NonNull<Page>, tag: FrameTag) -> Frame {
        debug_assert_eq!(ptr.addr().get() & TAG_MASK, 0, "frames are page-aligned");
        Frame {
            tagged: ptr.map_addr(|a| a | usize::from(tag.0)),
        }
    }

    /// The frame's pointer without its tag.
    #[inline]
    fn ptr(&self) -> NonNull<Page> {
        // The address is page-aligned and non-null, so clearing the tag bits leaves a
        // non-zero address (at least `PAGE_SIZE`).
        self.tagged
            .map_addr(|a| core::num::NonZeroUsize::new(a.get() & !TAG_MASK).unwrap_or(a))
    }

    /// The tag of the source this frame belongs to.
    pub fn tag(&self) -> FrameTag {
        // The low bits hold a tag in 0..=2047 (set in `from_raw`; the bits above it up to
        // `PAGE_SIZE` are zero), which fits a u16.
        FrameTag((self.tagged.addr().get() & TAG_MASK) as u16)
    }

    /// Gives up ownership and returns the frame's address (for a page source's
    /// `free_frame`, after it has checked [`Frame::tag`]).
    pub fn into_raw(self) -> NonNull<Page> {
        // `Frame` has no `Drop`: consuming `self` ends its ownership without freeing.
        self.ptr()
    }

    /// Gives up ownership and returns the tagged address, exposing the pointer's
    /// provenance ([`crate::FrameTable`] and [`crate::FrameChain`] keep frames as numbers).
    pub(crate) fn into_exposed(self) -> usize {
        self.tagged.as_ptr().expose_provenance()
    }

    /// The frame `into_exposed` returned `tagged` for.
    ///
    /// # Safety
    /// `tagged` came from [`Frame::into_exposed`], and this is the only `Frame` made from
    /// it since (the frame's ownership passes back, once).
    pub(crate) unsafe fn from_exposed(tagged: usize) -> Frame {
        let ptr = core::ptr::with_exposed_provenance_mut::<Page>(tagged);
        Frame {
            // SAFETY: by the contract, `tagged` is a frame's page-aligned, non-null
            // address plus its tag, so not 0.
            tagged: unsafe { NonNull::new_unchecked(ptr) },
        }
    }

    /// The frame's address, for diagnostics and for identifying a frame.
    pub fn addr(&self) -> usize {
        self.ptr().as_ptr() as usize
    }

    /// The frame's pointer, without giving up ownership (for page sources that track the
    /// frames they hand out). Dereferencing it is `unsafe` and only sound while no borrow
    /// of the frame's bytes is live.
    pub fn as_non_null(&self) -> NonNull<Page> {
        self.ptr()
    }

    /// The frame's bytes.
    pub fn as_page(&self) -> &Page {
        // SAFETY: `from_raw`'s contract: the pointer (untagged by `ptr()`, with the
        // provenance it was given) is valid, initialised and owned by this `Frame`, so a
        // shared borrow tied to `&self` cannot alias a mutable one.
        unsafe { self.ptr().as_ref() }
    }

    /// The frame's bytes, mutably.
    pub fn as_page_mut(&mut self) -> &mut Page {
        // SAFETY: as in `as_page`; `&mut self` guarantees exclusivity.
        unsafe { self.ptr().as_mut() }
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
    /// Hands out one frame of [`PAGE_SIZE`] bytes, or fails at once.
    fn alloc_frame(&self) -> Result<Frame, AllocError>;
    /// Takes back a frame this source handed out. A frame whose [`Frame::tag`] is not
    /// this source's must be refused (kept, not freed; a source may count it): wrapping
    /// sources pass frames through to the source that made them, which checks.
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

impl<S: PageSource> PageSource for zplat::TryArc<S> {
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

/// Frames from the global allocator, one `PAGE_SIZE`-aligned allocation of `PAGE_SIZE`
/// bytes each: the simplest user-space source.
///
/// Under glibc each such allocation costs about twice its size in resident memory (at
/// 4 KiB, a 4 KiB hole beside every frame: 100,000 frames grew RSS by 800,784 KiB here).
/// [`crate::BlockPageSource`] cuts frames out of blocks of 64 frames instead (4.07 KiB
/// per 4 KiB frame on the same test) and is what a hosted program should use.
///
/// Allocation failure of the global allocator is reported as [`AllocError`], not an
/// abort. A frame another source made (its [`FrameTag`] is not the heap's) is refused
/// by `free_frame`: it is leaked, never handed to the global allocator, and counted in
/// [`HeapPageSource::refused_frees`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapPageSource;

/// Frames from other sources given to any `HeapPageSource` (refused and leaked).
static HEAP_REFUSED: AtomicUsize = AtomicUsize::new(0);

impl HeapPageSource {
    /// How many frames of other sources `free_frame` has refused, process-wide.
    pub fn refused_frees() -> usize {
        HEAP_REFUSED.load(Ordering::Relaxed)
    }
}

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
        // SAFETY: a fresh, zeroed (so initialised), page-aligned block of `PAGE_SIZE` bytes that
        // nobody else references; it carries the heap's tag, which `free_frame` checks.
        Ok(unsafe { Frame::from_raw(ptr, FrameTag::HEAP) })
    }

    fn free_frame(&self, frame: Frame) {
        if frame.tag() != FrameTag::HEAP {
            // Not ours: freeing it would hand foreign memory to the global allocator.
            HEAP_REFUSED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let ptr = frame.into_raw();
        // SAFETY: the frame carries the heap's tag. Safe code cannot make a frame (only
        // `alloc_frame` above and the unsafe `Frame::from_raw` can), `FrameTag::new`
        // never returns the heap's tag, and `from_raw`'s contract forbids tagging memory
        // with a tag (one copied from `Frame::tag` included) whose source cannot free it.
        // So this frame came from a `HeapPageSource::alloc_frame` (any instance: they
        // share the global allocator), allocated with PAGE_LAYOUT; `into_raw` ended the
        // frame's ownership.
        unsafe { alloc::alloc::dealloc(ptr.as_ptr().cast::<u8>(), PAGE_LAYOUT) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A page-aligned block that is not the global allocator's.
    static mut FOREIGN: crate::testing::PageAligned = crate::testing::PageAligned::ZERO;

    #[test]
    fn a_frame_from_another_source_is_refused_not_freed() {
        let tag = FrameTag::new(7).unwrap();
        let ptr = NonNull::new(core::ptr::addr_of_mut!(FOREIGN).cast::<Page>()).unwrap();
        assert_eq!(ptr.addr().get() % PAGE_SIZE, 0);
        // SAFETY: the static is page-aligned, initialised and used by this test only.
        let mut f = unsafe { Frame::from_raw(ptr, tag) };
        f[0] = 0xa5;
        assert_eq!(f.tag(), tag);
        assert_eq!(
            f.addr(),
            ptr.as_ptr() as usize,
            "the tag is not part of the address"
        );
        let before = HeapPageSource::refused_frees();
        // Before frames carried tags, this handed a static to `dealloc`: undefined
        // behaviour (glibc aborts with "free(): invalid pointer").
        HeapPageSource.free_frame(f);
        assert_eq!(HeapPageSource::refused_frees(), before + 1);
        // SAFETY: the frame was refused, so the static is still ours and unfreed.
        assert_eq!(unsafe { (*core::ptr::addr_of!(FOREIGN)).page[0] }, 0xa5);
    }

    #[test]
    fn heap_frames_round_trip_and_carry_the_heap_tag() {
        let mut f = HeapPageSource.alloc_frame().unwrap();
        assert_eq!(f.tag(), FrameTag::HEAP);
        assert_eq!(f.addr() % PAGE_SIZE, 0);
        f[PAGE_SIZE - 1] = 3;
        assert_eq!(f.as_page()[PAGE_SIZE - 1], 3);
        let before = HeapPageSource::refused_frees();
        HeapPageSource.free_frame(f);
        assert_eq!(HeapPageSource::refused_frees(), before);
    }

    #[test]
    fn tags_outside_the_host_range_do_not_exist() {
        assert_eq!(FrameTag::new(0), None);
        assert_eq!(FrameTag::new(1), None, "the heap's tag is not for hosts");
        // 12-bit tags at every page size (not `PAGE_SIZE - 1` at 16 or 64 KiB).
        assert_eq!(FrameTag::new(2048), None);
        assert_eq!(FrameTag::new(4096), None);
        assert_eq!(FrameTag::new(u16::MAX), None);
        assert_eq!(FrameTag::new(2047).map(FrameTag::get), Some(2047));
    }
}
