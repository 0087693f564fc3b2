//! Configuration.

use core::fmt;

/// Which allocator backs a pool kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocatorKind {
    /// Two objects per frame: evicting a page often frees a whole frame (default for
    /// ephemeral pages).
    Zbud,
    /// Size classes over multi-frame zspages: density (default for persistent pages).
    Zsmalloc,
}

/// An allocator name that is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAllocator {
    /// The name's first bytes (the name is kept inline: parsing allocates nothing).
    bytes: [u8; 32],
    len: u8,
}

impl UnknownAllocator {
    fn new(name: &str) -> Self {
        // Cut at a character boundary at most 32 bytes in.
        let mut len = name.len().min(32);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; 32];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        UnknownAllocator {
            bytes,
            len: len as u8,
        }
    }

    /// The name asked for (its first 32 bytes).
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Display for UnknownAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown allocator {:?} (known: zbud, zsmalloc)",
            self.name()
        )
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
            .ok_or_else(|| UnknownAllocator::new(name))
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
    /// Decompress loads straight from the allocator's memory (zsmalloc: objects within
    /// one frame) instead of copying the compressed bytes out first. Measured: loads 2%
    /// faster (the copy's cost is mostly cache misses on the frame, which the
    /// decompressor then takes instead). The price: a keeping load holds its bucket lock, and
    /// zsmalloc's class lock, while it decompresses (about a microsecond), like the
    /// kernel's zcache did under its hash-bucket lock. `false`: copy under the locks,
    /// decompress after both are dropped. docs/concurrency.md weighs the two.
    pub decompress_in_place: bool,
    /// Compression contexts (the kernel has one per CPU): at least the number of
    /// threads that call in at once.
    pub contexts: usize,
    /// Ephemeral pages a single store may evict before giving up: the bound on the work
    /// of a store, which may run in atomic context. A store evicts only when freeing
    /// this many frames could let it in (never inside the accept hysteresis, where it is
    /// refused at once and [`crate::Zcache::reclaim`] does the work), and never writes
    /// back.
    pub max_reclaim_per_store: usize,
    /// Which context a call tries first (then the next free one, in order). A caller
    /// that keeps coming back to the same context keeps its compressor tables, buffers
    /// and statistics shard in its own CPU's cache: the kernel's per-CPU contexts. The
    /// default, [`stack_hint`], works anywhere (no_std, no thread-local storage); a
    /// kernel passes its CPU number (`raw_smp_processor_id`), a hosted program
    /// `thread_hint` (feature `std`). See docs/concurrency.md.
    pub context_hint: fn() -> usize,
}

/// The default [`Config::context_hint`]: a hash of the caller's stack address in 64 KiB
/// granules. Each thread (or kernel task) runs on its own stack, so one thread gets the
/// same hint on every call, and different threads usually different ones. Two threads
/// whose granules hash alike share a first choice and fall back to the next free
/// context; `thread_hint` avoids that where thread-local storage exists.
#[inline]
pub fn stack_hint() -> usize {
    let marker = 0u8;
    let granule = (core::ptr::addr_of!(marker) as usize as u64) >> 16;
    (granule.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
}

/// A [`Config::context_hint`] for hosted programs: each thread gets the next number of
/// a process-wide counter on its first call, so up to `contexts` threads never share a
/// first choice.
#[cfg(feature = "std")]
pub fn thread_hint() -> usize {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    MINE.with(|m| *m)
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
            decompress_in_place: false,
            contexts: 4,
            max_reclaim_per_store: 4,
            context_hint: stack_hint,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_kept_inline_and_cut_at_a_character_boundary() {
        assert_eq!(
            AllocatorKind::from_name("ZSMALLOC"),
            Ok(AllocatorKind::Zsmalloc)
        );
        let e = AllocatorKind::from_name("z3fold").unwrap_err();
        assert_eq!(e.name(), "z3fold");
        // 31 ASCII bytes, then a 2-byte character that would cross the 32-byte cut.
        let long = alloc::format!("{}é and more", "x".repeat(31));
        let e = AllocatorKind::from_name(&long).unwrap_err();
        assert_eq!(e.name(), "x".repeat(31));
        assert!(alloc::format!("{e}").contains("known: zbud, zsmalloc"));
    }
}
