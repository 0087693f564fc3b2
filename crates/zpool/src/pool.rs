//! The allocator trait shared by zbud and zsmalloc.

use core::fmt;
use core::num::NonZeroU64;

/// An opaque, typed reference to an object in a [`ZPool`].
///
/// The bits are the allocator's own encoding (typically a slot index and a generation),
/// at most 48 bits wide so a user can pack a handle with a few bits of its own in one
/// `u64` (see [`Handle::BITS`]; zcache's page descriptor takes 47 and adds a kind bit). Any value may be turned into a `Handle` (a C
/// caller can forge anything), so every allocator validates a handle before use and
/// answers [`ZPoolError::InvalidHandle`] for one that names no live object, never
/// undefined behaviour or a panic. What validation can give, and the workspace's
/// allocators give: a handle is refused unless its bits equal those of a live object's
/// handle. So a forged value equal to a live handle names that object, and a stale
/// (freed, double-freed) handle is refused unless its entry has been freed a multiple of
/// the allocator's generation period times since and is live again: each handle-table
/// entry carries its own generation, moved on at every free (zsmalloc: 17 bits, never
/// 0, period 2^17 - 1 = 131,071 frees of that entry; zbud: 22 bits at 4 KiB pages, period
/// 2^22; 20 and 18 bits at 16 and 64 KiB). The
/// conformance suite requires a period above 100,000 (`check_generation_reuse`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(NonZeroU64);

impl Handle {
    /// Width of a handle's encoding: allocators never hand out a handle with bits set
    /// above this many.
    pub const BITS: u32 = 48;

    /// Rebuilds a handle from its raw bits; `None` for 0 or for a value wider than
    /// [`Handle::BITS`].
    pub const fn from_raw(raw: u64) -> Option<Handle> {
        if raw >> Self::BITS != 0 {
            return None;
        }
        match NonZeroU64::new(raw) {
            Some(v) => Some(Handle(v)),
            None => None,
        }
    }

    /// The raw bits, non-zero and below 2^48.
    pub const fn to_raw(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({:#x})", self.0)
    }
}

/// Why a [`ZPool`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZPoolError {
    /// A zero-length allocation was asked for.
    ZeroSize,
    /// The object is larger than this allocator can store ([`ZPool::max_alloc`]).
    TooLarge {
        /// Requested length.
        len: usize,
        /// Largest length this allocator stores.
        max: usize,
    },
    /// The page source had no frame (or metadata memory could not be allocated).
    NoMemory,
    /// The handle was never handed out by this pool, or its object was freed.
    InvalidHandle,
    /// The caller's buffer does not match the object's length.
    BadLength {
        /// The object's length.
        object: usize,
        /// The caller's buffer length.
        buffer: usize,
    },
    /// This allocator does not provide the (optional) operation.
    Unsupported,
}

impl fmt::Display for ZPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZPoolError::ZeroSize => f.write_str("zero-length allocation"),
            ZPoolError::TooLarge { len, max } => {
                write!(
                    f,
                    "object of {len} bytes exceeds the allocator's maximum of {max}"
                )
            }
            ZPoolError::NoMemory => f.write_str("no page frame or metadata memory available"),
            ZPoolError::InvalidHandle => f.write_str("stale, freed or forged handle"),
            ZPoolError::BadLength { object, buffer } => {
                write!(
                    f,
                    "buffer of {buffer} bytes for an object of {object} bytes"
                )
            }
            ZPoolError::Unsupported => f.write_str("operation not supported by this allocator"),
        }
    }
}

/// What one [`ZPool::compact_step`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStep {
    /// Frames given back to the page source (net: a destination that grew by a frame
    /// counts against the frames its sources gave back).
    pub frames_freed: usize,
    /// Objects moved.
    pub objects_moved: usize,
    /// No compaction work was left when the step ended (as far as the allocator could
    /// see: frees by other threads may create more).
    pub done: bool,
}

impl CompactStep {
    /// How many objects a step may move beyond its `max(max_moves, 1)`: an allocator
    /// may finish the moves that free a frame it took for a destination (zsmalloc: the
    /// objects on one frame, at most 128) or the second move of a pair (zbud), so that
    /// no step ends with more frames than it started with.
    pub const MAX_OVERSHOOT: usize = 128;
}

/// A snapshot of an allocator's occupancy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Page frames held from the page source.
    pub frames: usize,
    /// Live objects.
    pub objects: usize,
    /// Sum of the live objects' lengths.
    pub bytes: usize,
    /// Heap bytes of metadata kept outside the frames (handle tables, frame descriptors).
    pub metadata_bytes: usize,
}

/// How a pool numbers its live objects, for a caller's table beside the pool's own
/// handle table (as zram keeps a table beside zsmalloc's handles; zcache keeps its
/// reclaim ring so). An id is `segment << segment_bits | index`, with
/// `segment < segments` and `index < 1 << segment_bits`; within a segment the pool gives
/// out indexes densely from 0 (freed ones are reused first), so a table of each
/// segment's indexes grows with the objects held there, not with the id space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectIds {
    /// Segments (zsmalloc: size classes; zbud: shards).
    pub segments: u32,
    /// Index bits of one segment.
    pub segment_bits: u32,
}

impl ObjectIds {
    /// The segment of `id`.
    pub const fn segment(self, id: u32) -> u32 {
        id >> self.segment_bits
    }

    /// The index of `id` in its segment.
    pub const fn index(self, id: u32) -> u32 {
        id & ((1 << self.segment_bits) - 1)
    }
}

/// The common face of the compressed-page allocators.
///
/// Allocators allocate; they do not decide what to evict: reclaim policy (an LRU of
/// pages, writeback) belongs to the cache above (zcache), as Linux moved it into zswap
/// (6.8). No method calls back into the caller.
///
/// Every method takes `&self`: implementations lock internally (spin locks only) and may
/// be called concurrently, including from contexts where sleeping is forbidden. No
/// method blocks waiting for memory; a page source that cannot give a frame makes
/// `malloc`/`store` fail with [`ZPoolError::NoMemory`] and leaves the pool as it was.
pub trait ZPool: Send + Sync {
    /// A short name for reports ("zbud", "zsmalloc").
    fn name(&self) -> &'static str;

    /// The largest object length `malloc` accepts.
    fn max_alloc(&self) -> usize;

    /// Allocates an object of `len` bytes (contents unspecified until written).
    fn malloc(&self, len: usize) -> Result<Handle, ZPoolError>;

    /// Frees an object. A handle that names no live object (stale, double-freed or
    /// forged; see [`Handle`] for what validation can tell apart) is an error and
    /// changes nothing.
    fn free(&self, handle: Handle) -> Result<(), ZPoolError>;

    /// Frees an object as [`ZPool::free`] does and returns the length it had, so a user
    /// that keeps no length of its own (zcache's page descriptor) can count the bytes
    /// out. The default looks the length up first, then frees: two validations, and a
    /// concurrent free of the same handle between them makes the second one fail.
    /// zbud and zsmalloc do both in one lock hold.
    fn free_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        let len = self.object_len(handle)?;
        self.free(handle)?;
        Ok(len)
    }

    /// Overwrites the whole object with `data` (`data.len()` must equal its length).
    fn write(&self, handle: Handle, data: &[u8]) -> Result<(), ZPoolError>;

    /// Copies the whole object into the front of `out` and returns its length
    /// (`out` must be at least that long).
    fn read(&self, handle: Handle, out: &mut [u8]) -> Result<usize, ZPoolError>;

    /// The object's length.
    fn object_len(&self, handle: Handle) -> Result<usize, ZPoolError>;

    /// Calls `f` with the object's bytes (the kernel's `zpool_map_handle` for reading):
    /// in place when the allocator can hand them out without a copy, otherwise copied
    /// into `bounce` first (a `bounce` of [`PAGE_SIZE`](crate::PAGE_SIZE) bytes always
    /// suffices). `f` may run under an allocator lock: keep it short (decompress one
    /// page) and never call back into this pool from it. The default copies with
    /// [`ZPool::read`] and holds no lock while `f` runs.
    fn map_read(
        &self,
        handle: Handle,
        bounce: &mut [u8],
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<(), ZPoolError> {
        let n = self.read(handle, bounce)?;
        f(&bounce[..n]);
        Ok(())
    }

    /// Allocates an object holding a copy of `data`: `malloc` + `write` in one call.
    /// Allocators override it to take their lock once.
    fn store(&self, data: &[u8]) -> Result<Handle, ZPoolError> {
        let h = self.malloc(data.len())?;
        if let Err(e) = self.write(h, data) {
            let _ = self.free(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Page frames currently held from the page source.
    fn total_frames(&self) -> usize;

    /// Occupancy snapshot.
    fn stats(&self) -> PoolStats;

    /// Moves objects to free frames, returning how many frames went back to the page
    /// source. Handles stay valid. The default does nothing. Allocators implement it as
    /// [`ZPool::compact_step`] repeated until it reports `done`.
    fn compact(&self) -> usize {
        0
    }

    /// The numbering of [`ZPool::object_id`]; `None` (the default) if the pool has
    /// none. zbud and zsmalloc number their objects by handle-table entry.
    fn object_ids(&self) -> Option<ObjectIds> {
        None
    }

    /// The id of the object `handle` names, from the handle's bits alone (no lookup,
    /// no lock): `None` when the bits spell no id. Two live objects never have the
    /// same id; an object keeps its id until it is freed (compaction moves objects, not
    /// ids); a freed object's id may go to the next object allocated. For a handle of
    /// no live object the answer names no object: check with [`ZPool::handle_of_id`].
    fn object_id(&self, handle: Handle) -> Option<u32> {
        let _ = handle;
        None
    }

    /// The handle of the live object whose id is `id`, if one is (the pool's lock of
    /// that id is taken for the lookup).
    fn handle_of_id(&self, id: u32) -> Option<Handle> {
        let _ = id;
        None
    }

    /// Bounded compaction: moves at most `max(max_moves, 1)` objects, plus at most
    /// [`CompactStep::MAX_OVERSHOOT`] to finish freeing a frame (at least one step of
    /// work when there is any), and returns what it did, so a caller with a budget (a
    /// reclaim worker, a shrinker) can compact a little at a time. Called until it
    /// reports `done`, it ends. No allocator lock is
    /// held between calls, and each lock hold inside a call does work proportional to
    /// the objects it moves, never to the pool's size. The default runs the whole
    /// [`ZPool::compact`] and reports `done`.
    fn compact_step(&self, max_moves: usize) -> CompactStep {
        let _ = max_moves;
        CompactStep {
            frames_freed: self.compact(),
            objects_moved: 0,
            done: true,
        }
    }
}

impl<P: ZPool + ?Sized> ZPool for alloc::boxed::Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn max_alloc(&self) -> usize {
        (**self).max_alloc()
    }
    fn malloc(&self, len: usize) -> Result<Handle, ZPoolError> {
        (**self).malloc(len)
    }
    fn free(&self, handle: Handle) -> Result<(), ZPoolError> {
        (**self).free(handle)
    }
    fn free_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        (**self).free_len(handle)
    }
    fn write(&self, handle: Handle, data: &[u8]) -> Result<(), ZPoolError> {
        (**self).write(handle, data)
    }
    fn read(&self, handle: Handle, out: &mut [u8]) -> Result<usize, ZPoolError> {
        (**self).read(handle, out)
    }
    fn object_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        (**self).object_len(handle)
    }
    fn store(&self, data: &[u8]) -> Result<Handle, ZPoolError> {
        (**self).store(data)
    }
    fn total_frames(&self) -> usize {
        (**self).total_frames()
    }
    fn stats(&self) -> PoolStats {
        (**self).stats()
    }
    fn map_read(
        &self,
        handle: Handle,
        bounce: &mut [u8],
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<(), ZPoolError> {
        (**self).map_read(handle, bounce, f)
    }
    fn compact(&self) -> usize {
        (**self).compact()
    }
    fn compact_step(&self, max_moves: usize) -> CompactStep {
        (**self).compact_step(max_moves)
    }
    fn object_ids(&self) -> Option<ObjectIds> {
        (**self).object_ids()
    }
    fn object_id(&self, handle: Handle) -> Option<u32> {
        (**self).object_id(handle)
    }
    fn handle_of_id(&self, id: u32) -> Option<Handle> {
        (**self).handle_of_id(id)
    }
}
