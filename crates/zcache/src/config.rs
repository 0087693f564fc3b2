//! Configuration.

use core::fmt;

/// Which allocator backs a pool kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocatorKind {
    /// Two objects per frame, frame LRU: cheap eviction (default for ephemeral pages).
    Zbud,
    /// Size classes over multi-frame zspages: density (default for persistent pages).
    Zsmalloc,
}

/// An allocator name that is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAllocator(pub alloc::string::String);

impl fmt::Display for UnknownAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown allocator {:?} (known: zbud, zsmalloc)", self.0)
    }
}

impl AllocatorKind {
    /// Both allocators.
    pub const ALL: [AllocatorKind; 2] = [AllocatorKind::Zbud, AllocatorKind::Zsmalloc];

    /// The allocator's name.
    pub const fn name(self) -> &'static str {
        match self {
            AllocatorKind::Zbud => "zbud",
            AllocatorKind::Zsmalloc => "zsmalloc",
        }
    }

    /// Looks an allocator up by name (case-insensitive).
    pub fn from_name(name: &str) -> Result<AllocatorKind, UnknownAllocator> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownAllocator(alloc::string::String::from(name)))
    }
}

/// How a [`crate::Zcache`] is built.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Hard limit on page frames held by both allocators together
    /// (`usize::MAX`: no limit beyond the page source's own).
    pub max_frames: usize,
    /// After the limit is hit, frames are refused until fewer than this percentage of
    /// `max_frames` are held (zswap's accept_threshold_percent; 100 disables).
    pub accept_threshold_percent: u8,
    /// Allocator for ephemeral (cleancache) pools.
    pub ephemeral_allocator: AllocatorKind,
    /// Allocator for persistent (frontswap) pools.
    pub persistent_allocator: AllocatorKind,
    /// Compressor for new pages (pages keep the algorithm they were stored with).
    pub compressor: zcomp::Algorithm,
    /// Which compressed sizes are worth storing.
    pub policy: zcomp::StorePolicy,
    /// Frontswap loads remove the page (the kernel's frontswap_tmem_exclusive_gets).
    pub frontswap_exclusive_loads: bool,
    /// Compression contexts (the kernel has one per CPU): at least the number of
    /// threads that call in at once.
    pub contexts: usize,
    /// Frames a single store may reclaim (evict or write back) before giving up: the
    /// bound on work in a store, which may run in atomic context.
    pub max_reclaim_per_store: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frames: usize::MAX,
            accept_threshold_percent: 90,
            ephemeral_allocator: AllocatorKind::Zbud,
            persistent_allocator: AllocatorKind::Zsmalloc,
            compressor: zcomp::Algorithm::Lz4,
            policy: zcomp::StorePolicy::default(),
            frontswap_exclusive_loads: false,
            contexts: 4,
            max_reclaim_per_store: 4,
        }
    }
}
