//! The two allocators behind one value, with static dispatch (no `Box<dyn ZPool>`,
//! which stable Rust cannot allocate fallibly). Each lives on the heap in a
//! one-element boxed array made fallibly ([`Allocator::boxed`]), so a `Zcache` stays
//! small enough to be built and moved on a 16 KiB kernel stack.

use alloc::boxed::Box;
use zplat::TryArc;

use zbud::ZBud;
use zpool::{CompactStep, Handle, ObjectIds, PoolStats, ZPool, ZPoolError};
use zsmalloc::ZsPool;

use crate::config::AllocatorKind;
use crate::source::LimitedSource;
use crate::zcache::{MetadataParts, ZcacheError};

/// zbud or zsmalloc over zcache's frame limit.
// One of each per `Zcache`, on the heap: the few hundred bytes the smaller variant
// wastes are nothing; boxing each variant would add an indirection per operation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Allocator {
    Zbud(ZBud<TryArc<LimitedSource>>),
    Zsmalloc(ZsPool<TryArc<LimitedSource>>),
}

impl Allocator {
    /// The allocator of `kind`, on the heap (allocated fallibly). Index it with `[0]`.
    /// `hint` is [`crate::Config::context_hint`]: zbud starts each store at the caller's
    /// own shard, so CPUs (threads) storing at once take different locks.
    pub(crate) fn boxed(
        kind: AllocatorKind,
        source: TryArc<LimitedSource>,
        hint: fn() -> usize,
    ) -> Result<Box<[Allocator; 1]>, ZcacheError> {
        let a = Self::new(kind, source, hint)?;
        zplat::try_box([a]).map_err(|_| ZcacheError::NoMemory)
    }

    fn new(
        kind: AllocatorKind,
        source: TryArc<LimitedSource>,
        hint: fn() -> usize,
    ) -> Result<Self, ZcacheError> {
        Ok(match kind {
            AllocatorKind::Zbud => {
                Allocator::Zbud(ZBud::with_shard_hint(source, zbud::DEFAULT_SHARDS, hint))
            }
            AllocatorKind::Zsmalloc => {
                Allocator::Zsmalloc(ZsPool::new(source).map_err(|e| match e {
                    zsmalloc::CreateError::NoMemory => ZcacheError::NoMemory,
                    zsmalloc::CreateError::InvalidConfig(w) => ZcacheError::InvalidConfig(w),
                })?)
            }
        })
    }
}

impl Allocator {
    /// Adds this allocator's metadata bytes to `parts`, by kind.
    pub(crate) fn metadata_into(&self, parts: &mut MetadataParts) {
        match self {
            Allocator::Zbud(z) => parts.zbud += z.stats().metadata_bytes,
            Allocator::Zsmalloc(z) => {
                let m = z.metadata();
                parts.handle_tables += m.handle_tables;
                parts.frame_lists += m.frame_lists;
                parts.zspages += m.zspage_descriptors + m.bitmaps + m.fixed;
            }
        }
    }

    /// Frames compaction could give back now: exact for zsmalloc (the kernel's
    /// `zs_can_compact`), an upper bound for zbud (half its lone frames).
    pub(crate) fn compactable_frames(&self) -> usize {
        match self {
            Allocator::Zbud(p) => p.zbud_stats().lone_frames / 2,
            Allocator::Zsmalloc(p) => p.freeable(),
        }
    }
}

macro_rules! both {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            Allocator::Zbud($p) => $e,
            Allocator::Zsmalloc($p) => $e,
        }
    };
}

impl ZPool for Allocator {
    fn name(&self) -> &'static str {
        both!(self, p => p.name())
    }
    fn max_alloc(&self) -> usize {
        both!(self, p => p.max_alloc())
    }
    fn malloc(&self, len: usize) -> Result<Handle, ZPoolError> {
        both!(self, p => p.malloc(len))
    }
    fn free(&self, handle: Handle) -> Result<(), ZPoolError> {
        both!(self, p => p.free(handle))
    }
    fn free_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        both!(self, p => p.free_len(handle))
    }
    fn write(&self, handle: Handle, data: &[u8]) -> Result<(), ZPoolError> {
        both!(self, p => p.write(handle, data))
    }
    fn read(&self, handle: Handle, out: &mut [u8]) -> Result<usize, ZPoolError> {
        both!(self, p => p.read(handle, out))
    }
    fn object_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        both!(self, p => p.object_len(handle))
    }
    fn map_read(
        &self,
        handle: Handle,
        bounce: &mut [u8],
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<(), ZPoolError> {
        both!(self, p => p.map_read(handle, bounce, f))
    }
    fn store(&self, data: &[u8]) -> Result<Handle, ZPoolError> {
        both!(self, p => p.store(data))
    }
    fn total_frames(&self) -> usize {
        both!(self, p => p.total_frames())
    }
    fn stats(&self) -> PoolStats {
        both!(self, p => p.stats())
    }
    fn compact(&self) -> usize {
        both!(self, p => p.compact())
    }
    fn compact_step(&self, max_moves: usize) -> CompactStep {
        both!(self, p => p.compact_step(max_moves))
    }
    fn object_ids(&self) -> Option<ObjectIds> {
        both!(self, p => p.object_ids())
    }
    #[inline]
    fn object_id(&self, handle: Handle) -> Option<u32> {
        both!(self, p => p.object_id(handle))
    }
    fn handle_of_id(&self, id: u32) -> Option<Handle> {
        both!(self, p => p.handle_of_id(id))
    }
}
