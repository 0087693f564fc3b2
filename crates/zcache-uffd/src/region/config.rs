//! What a region is built from ([`RegionConfig`]) and what it reports ([`RegionStats`],
//! [`EvictReport`], [`FaultTiming`]).

use std::path::PathBuf;

/// How a [`Region`] is built.
#[derive(Clone, Debug)]
pub struct RegionConfig {
    /// Bytes of address space (rounded up to whole pages). Nothing is allocated until a
    /// page is touched: several GiB of sparse guest memory cost only what is used.
    pub size: usize,
    /// Back the region with a memfd mapped `MAP_SHARED` (a VMM that shares guest memory
    /// with vhost-user back ends or a snapshotter), instead of private anonymous memory.
    pub shared: bool,
    /// Resident pages allowed (`None`: no limit). Enforced by a background thread
    /// (with [`RegionConfig::background_reclaim`]) or by [`Region::enforce_limit`].
    pub resident_limit: Option<usize>,
    /// Run the background reclaimer that keeps the resident limit (down to 15/16 of
    /// it, ahead of the faults).
    pub background_reclaim: bool,
    /// Let the fault handler evict down to the limit itself when a fault finds it
    /// exceeded (the reclaimer lagging): the limit then holds within the faults in
    /// flight, at the cost of those faults' latency. Off: the limit is soft.
    pub direct_reclaim: bool,
    /// A directory for the spill file: pages zcache refuses (frame limit, poor
    /// compression) go there instead of staying resident. `None`: they stay resident.
    pub spill_dir: Option<PathBuf>,
    /// The region's own zcache (its persistent pool holds the evicted pages; page index
    /// = swap offset). `frontswap_exclusive_loads` is forced off: a clean page's copy is
    /// kept when it faults back.
    pub zcache: zcache::Config,
    /// Pin the fault handler thread to this CPU. A fault's service ends by waking the
    /// faulting thread; on another CPU that wake is an inter-processor interrupt, which
    /// in a virtual machine (this project's machines are Firecracker guests) whose
    /// other vCPU is idle cost ~17 µs of the handler's time, more than the
    /// decompression and the copy together. A VMM that pins its vCPU threads pins the handler beside them.
    pub handler_cpu: Option<usize>,
    /// Record the handler's service time of every fault served from zcache
    /// ([`Region::take_fault_latencies`]); for benchmarks.
    pub record_fault_latency: bool,
    /// Which pages a read fault brings back with their copy kept (the clean-page rule:
    /// evicting such a page again, unwritten, costs no compression). A page that does
    /// not keep its copy comes back writable, as after a write fault, and its copy is
    /// dropped. Default [`CleanCopies::DEFAULT`]: the copies follow the pool's size.
    pub clean_copies: CleanCopies,
}

/// Which resident pages keep a copy (in zcache or the spill file) after a read fault
/// brought them back: [`RegionConfig::clean_copies`].
///
/// A kept copy makes the next eviction of the page free (no compression) as long as
/// the page is not written, and costs the copy's memory while the page is resident,
/// which zram does not pay (it frees a slot when its page is swapped in). On
/// read-mostly memory the copies save most compressions; on memory that is written
/// after it is read back (a database's pages) they are dropped again at the first write
/// and cost a write-protect fault each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanCopies {
    /// Every page a read fault brings back keeps its copy (the clean-page rule in full).
    All,
    /// At most this many resident pages keep a copy at once; `AtMost(0)`: none does.
    AtMost(usize),
    /// The copies follow the pool: a read fault keeps the page's copy only while the
    /// kept copies are fewer than 1/`share` of the pages held out of memory (compressed
    /// or spilled), and when the evicted pages become fewer (faulted back in), the
    /// reclaimer drops the copies beyond that share (the page made writable, its copy
    /// freed). So the copies add about 1/`share` to what the pool holds for evicted
    /// pages. A page written after its last kept copy keeps none at its next read
    /// fault (its mark is used up by that fault, so a page that stops being written
    /// keeps copies again from the fault after). And while kept copies are, lately,
    /// written more often than evicted again unwritten (a database that writes what it
    /// reads back), only one read fault in 32 keeps its copy: each written copy cost a
    /// write-protect fault and saved nothing. "Lately": both counts are halved every
    /// 4,096 read faults.
    Adaptive {
        /// The copies' share of the evicted pages is at most 1/`share` (at least 1).
        share: usize,
    },
}

impl CleanCopies {
    /// The default: [`CleanCopies::Adaptive`] with copies at most 1/16 of the evicted
    /// pages (docs/performance-uffd.md, "Budgets", has the measurements behind the choice).
    pub const DEFAULT: CleanCopies = CleanCopies::Adaptive { share: 16 };
}

impl Default for CleanCopies {
    fn default() -> CleanCopies {
        CleanCopies::DEFAULT
    }
}

impl RegionConfig {
    /// A private anonymous region of `size` bytes, no limit, no spill file, zcache's
    /// defaults (lz4, zsmalloc for the persistent pool).
    pub fn new(size: usize) -> RegionConfig {
        RegionConfig {
            size,
            shared: false,
            resident_limit: None,
            background_reclaim: true,
            direct_reclaim: true,
            spill_dir: None,
            zcache: zcache::Config {
                context_hint: zcache::thread_hint,
                ..zcache::Config::default()
            },
            record_fault_latency: false,
            handler_cpu: None,
            clean_copies: CleanCopies::DEFAULT,
        }
    }
}

/// The handler's service time of one fault served from zcache: from the message's
/// read to the end of `UFFDIO_COPY` (zcache load, decompression, copy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultTiming {
    /// Wall-clock nanoseconds (includes any time the handler thread was preempted).
    pub wall_ns: u32,
    /// The handler thread's CPU nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
    pub cpu_ns: u32,
    /// Wall-clock nanoseconds of the `UFFDIO_COPY` alone, inside the above: the copy
    /// and the wake-up of the faulting thread (the rest is the page's state and
    /// zcache's load and decompression).
    pub copy_wall_ns: u32,
}

/// What one [`Region::evict`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvictReport {
    /// Pages compressed into zcache and dropped.
    pub compressed: u64,
    /// Clean pages dropped with no compression (their zcache or spill copy was kept).
    pub saved: u64,
    /// All-zero pages dropped (nothing stored).
    pub zero: u64,
    /// Pages zcache refused that went to the spill file.
    pub spilled: u64,
    /// Pages zcache refused with no spill file (or a failing one): still resident.
    pub kept_resident: u64,
    /// Pages not resident (never touched, or already out).
    pub not_resident: u64,
    /// Pages skipped because a fault or another eviction was working on them.
    pub busy: u64,
}

impl EvictReport {
    /// Pages that left memory.
    pub fn dropped(&self) -> u64 {
        self.compressed + self.saved + self.zero + self.spilled
    }
}

/// A statistics snapshot of a [`Region`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RegionStats {
    /// Pages in the region.
    pub pages: usize,
    /// Pages resident now (mapped: dirty or clean).
    pub resident_pages: usize,
    /// Resident pages that are write-protected and have a kept copy (zcache or spill):
    /// evicting them again costs no compression.
    pub clean_pages: usize,
    /// Pages held compressed in zcache and not resident.
    pub compressed_pages: usize,
    /// Pages in the spill file and not resident.
    pub spilled_pages: usize,
    /// Pages out as zero (nothing stored).
    pub zero_pages: usize,
    /// Pages in a transition right now (a fault being served, an eviction). A thread
    /// whose fault was served may run on before the handler has published the page's
    /// new state, so a snapshot taken right after a fault can count it here.
    pub busy_pages: usize,
    /// Missing faults served (zero fills included).
    pub faults: u64,
    /// Missing faults on pages the region had evicted (refaults).
    pub refaults: u64,
    /// Missing faults on never-touched or zero pages, served by `UFFDIO_ZEROPAGE`.
    pub zero_fills: u64,
    /// Write-protect faults served (a write to a clean page: its copy dropped).
    pub wp_faults: u64,
    /// Fault messages that arrived while an eviction owned the page (the evictor wakes
    /// the thread when it is done; it then faults again).
    pub deferred_faults: u64,
    /// Fault messages for pages already served (another thread's fault on the same
    /// page): woken only.
    pub stale_faults: u64,
    /// Pages dropped from memory by evictions (all kinds).
    pub evictions: u64,
    /// Pages compressed and stored into zcache.
    pub compressions: u64,
    /// Evictions of clean pages that cost no compression (the clean-page rule).
    pub compressions_saved: u64,
    /// Pages zcache refused (frame limit, host refused a frame, poor compression).
    pub zcache_rejects: u64,
    /// Pages written to the spill file.
    pub spill_writes: u64,
    /// Faults served from the spill file.
    pub spill_reads: u64,
    /// Evictions given up: the page stayed resident (refused and no spill file).
    pub kept_resident: u64,
    /// Pages the fault handler evicted itself (direct reclaim over the limit).
    pub direct_reclaim: u64,
    /// ioctl or load failures while serving a fault (0 unless something is broken).
    pub fault_errors: u64,
    /// Read faults that brought a page back writable (dirty), its copy dropped, under
    /// [`RegionConfig::clean_copies`] (the budget used up, or a page that was written
    /// after its last kept copy, or copies lately not paying);
    /// [`RegionStats::copies_not_kept_written`] and
    /// [`RegionStats::copies_not_kept_unpaid`] count the last two reasons.
    pub copies_not_kept: u64,
    /// Read faults whose page kept no copy because it had been written after its last
    /// kept copy ([`CleanCopies::Adaptive`]).
    pub copies_not_kept_written: u64,
    /// Kept copies dropped because the evicted pages became fewer than their share
    /// allows ([`CleanCopies::Adaptive`]): the page was made writable and its copy freed,
    /// as a write would have.
    pub copies_dropped: u64,
    /// Read faults whose page kept no copy because, lately, kept copies were written
    /// more often than they saved a compression ([`CleanCopies::Adaptive`]).
    pub copies_not_kept_unpaid: u64,
    /// The region's zcache.
    pub zcache: zcache::Stats,
}
