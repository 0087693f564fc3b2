//! The block request handler: a device of N 4 KiB blocks whose blocks are frontswap
//! slots of a [`Zcache`], with a disk backing file for the pages zcache cannot keep.
//!
//! Block `k` is swap slot `k` of swap type 0 of the device's own [`Zcache`], reached
//! through a [`SwapArea`]:
//!
//! * **write** = store. If zcache keeps the page, any copy of the slot in the backing
//!   file is stale from then on and forgotten (its bit cleared). If zcache refuses it
//!   (frame limit, poor compression, no context free), the page is written to the backing
//!   file at `slot * 4096` and its bit set; if the refusal left zcache wanting reclaim,
//!   the writer then runs zcache's reclaim worker ([`Zcache::reclaim`]) once the request
//!   is done, which writes zcache's least recently used pages back to the backing file
//!   through [`Writeback`].
//! * **read** = zcache first (a load that keeps the page); on a miss the backing file if
//!   the slot's bit says the current copy is there, else zeros (a slot never written).
//! * **discard** (FUSE fallocate punch-hole or zero-range, what loop sends for discard
//!   and write-zeroes) = invalidate in zcache, clear the bit, punch the hole in the
//!   backing file.
//!
//! Invariant: a slot's current copy is in exactly one of zcache, the backing file (bit
//! set) or nowhere (zeros); never in zcache with the bit set ([`Device::residency`]).
//!
//! **Slot locks and the claim protocol.** Every operation on a slot, by a request or by
//! zcache's writeback, holds the slot's lock (a set of busy slots under one mutex, with
//! a condition variable). A request waits for it; a writeback *claims* it with a try
//! ([`Writeback::claim`] returns `None` if a request holds the slot) and holds it until
//! [`Writeback::release`]. So while zcache writes a page back, no request of that slot
//! runs: a read cannot miss in zcache (the page taken) and find the old backing copy,
//! and a refused store's own backing write cannot be overtaken by the older page the
//! writeback is writing (the one ordering the writeback protocol leaves to the host:
//! "a host that writes a slot itself while it is claimed must wait for the release").
//! The lock is never held across a reclaim, so a request never waits on itself.
//!
//! Loads never remove the page (`frontswap_exclusive_loads` is forced off): the kernel
//! may drop a clean swap-cache page and read the slot again later.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use zcache::{Config, SlotClaim, SwapArea, Writeback, Zcache, ZcacheError};
use zpool::{BlockPageSource, PAGE_SIZE, Page};

/// Bytes per block (one page, one swap slot).
pub const BLOCK_SIZE: u64 = PAGE_SIZE as u64;

/// The swap type the device's slots live in.
const SWAP_TYPE: u32 = 0;

/// Why a request was refused or failed.
#[derive(Debug)]
pub enum DeviceError {
    /// Offset or length not a multiple of [`BLOCK_SIZE`] (EINVAL).
    Unaligned {
        /// The request's byte offset.
        offset: u64,
        /// The request's byte length.
        len: u64,
    },
    /// The request reaches past the end of the device.
    OutOfRange {
        /// The request's byte offset.
        offset: u64,
        /// The request's byte length.
        len: u64,
        /// The device's size in bytes.
        size: u64,
    },
    /// zcache failed a load (corrupt pool bytes: EIO).
    Load(ZcacheError),
    /// The backing file failed (EIO).
    Io(io::Error),
}

impl DeviceError {
    /// The errno a FUSE reply carries for this error (`write`: whether the request was a
    /// write, where reaching past the end is ENOSPC as on a block device, else EINVAL).
    pub fn errno(&self, write: bool) -> i32 {
        match self {
            DeviceError::Unaligned { .. } => libc::EINVAL,
            DeviceError::OutOfRange { .. } if write => libc::ENOSPC,
            DeviceError::OutOfRange { .. } => libc::EINVAL,
            DeviceError::Load(_) | DeviceError::Io(_) => libc::EIO,
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Unaligned { offset, len } => write!(
                f,
                "request at byte {offset}, {len} bytes: not aligned to {BLOCK_SIZE}-byte blocks"
            ),
            DeviceError::OutOfRange { offset, len, size } => write!(
                f,
                "request at byte {offset}, {len} bytes: past the end of the {size}-byte device"
            ),
            DeviceError::Load(e) => write!(f, "zcache load failed: {e}"),
            DeviceError::Io(e) => write!(f, "backing file: {e}"),
        }
    }
}

impl std::error::Error for DeviceError {}

/// How a [`Device`] is built.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// Blocks (4 KiB each) of the device.
    pub blocks: u64,
    /// zcache's configuration (`frontswap_exclusive_loads` is forced off).
    pub zcache: Config,
    /// The backing file, created new (an existing file is refused, never touched) and
    /// removed when the device is dropped.
    pub backing: PathBuf,
    /// Pages one run of zcache's reclaim worker may write back after a refused store.
    pub reclaim_budget: usize,
}

impl DeviceConfig {
    /// A device of `blocks` blocks with zcache's defaults and a reclaim budget of 256.
    pub fn new(blocks: u64, backing: PathBuf) -> DeviceConfig {
        DeviceConfig {
            blocks,
            zcache: Config {
                context_hint: zcache::thread_hint,
                ..Config::default()
            },
            backing,
            reclaim_budget: 256,
        }
    }
}

/// Where a slot's current copy lives ([`Device::residency`], for tests and tools).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Residency {
    /// zcache holds a copy.
    pub in_zcache: bool,
    /// The backing-file bit is set.
    pub in_backing: bool,
}

/// The device's own counters (zcache's are in [`Zcache::stats`]).
#[derive(Debug, Default)]
pub struct DeviceCounters {
    /// Read requests.
    pub read_requests: AtomicU64,
    /// Write requests.
    pub write_requests: AtomicU64,
    /// Discard (punch-hole / zero-range) requests.
    pub discard_requests: AtomicU64,
    /// Requests refused as unaligned or out of range.
    pub invalid_requests: AtomicU64,
    /// Blocks read and served by zcache.
    pub reads_zcache: AtomicU64,
    /// Blocks read from the backing file.
    pub reads_backing: AtomicU64,
    /// Blocks read as zeros (never written, or discarded).
    pub reads_zero: AtomicU64,
    /// Blocks written and kept by zcache.
    pub stores_kept: AtomicU64,
    /// Blocks written whose store zcache refused (written to the backing file).
    pub stores_refused: AtomicU64,
    /// Blocks discarded.
    pub discarded_blocks: AtomicU64,
    /// Blocks zcache wrote back to the backing file.
    pub written_back: AtomicU64,
    /// Writebacks this device refused (the backing write failed).
    pub writeback_refused: AtomicU64,
    /// Writebacks abandoned because a request held the slot.
    pub claims_busy: AtomicU64,
    /// Runs of zcache's reclaim worker after a refused store.
    pub reclaim_runs: AtomicU64,
    /// Backing-file reads and writes that failed.
    pub io_errors: AtomicU64,
    /// Blocks whose current copy is in the backing file (a gauge).
    pub backing_blocks: AtomicU64,
    /// Nanoseconds spent in zcache's store and load calls.
    pub zcache_ns: AtomicU64,
    /// Nanoseconds spent in backing-file reads and writes (requests and writeback).
    pub backing_ns: AtomicU64,
}

impl DeviceCounters {
    /// Every counter as (name, value), in declaration order.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("read_requests", r(&self.read_requests)),
            ("write_requests", r(&self.write_requests)),
            ("discard_requests", r(&self.discard_requests)),
            ("invalid_requests", r(&self.invalid_requests)),
            ("reads_zcache", r(&self.reads_zcache)),
            ("reads_backing", r(&self.reads_backing)),
            ("reads_zero", r(&self.reads_zero)),
            ("stores_kept", r(&self.stores_kept)),
            ("stores_refused", r(&self.stores_refused)),
            ("discarded_blocks", r(&self.discarded_blocks)),
            ("written_back", r(&self.written_back)),
            ("writeback_refused", r(&self.writeback_refused)),
            ("claims_busy", r(&self.claims_busy)),
            ("reclaim_runs", r(&self.reclaim_runs)),
            ("io_errors", r(&self.io_errors)),
            ("backing_blocks", r(&self.backing_blocks)),
            ("zcache_ns", r(&self.zcache_ns)),
            ("backing_ns", r(&self.backing_ns)),
        ]
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn add_ns(a: &AtomicU64, since: Instant) {
    a.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// The slots a request or a writeback holds right now.
struct SlotLocks {
    busy: Mutex<HashSet<u64>>,
    released: Condvar,
}

impl SlotLocks {
    fn busy(&self) -> MutexGuard<'_, HashSet<u64>> {
        // A panic elsewhere while the set was locked left it consistent (every update
        // is one insert or one remove).
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no one holds `slot`, then holds it.
    fn lock(&self, slot: u64) -> SlotGuard<'_> {
        let mut busy = self.busy();
        while busy.contains(&slot) {
            busy = self.released.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(slot);
        SlotGuard { locks: self, slot }
    }

    /// Holds `slot` if no one does.
    fn try_lock(&self, slot: u64) -> bool {
        self.busy().insert(slot)
    }

    fn unlock(&self, slot: u64) {
        self.busy().remove(&slot);
        self.released.notify_all();
    }
}

struct SlotGuard<'a> {
    locks: &'a SlotLocks,
    slot: u64,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.locks.unlock(self.slot);
    }
}

/// The backing file, its per-slot bitmap and the slot locks: shared by the device and
/// zcache's writeback (the [`Writeback`] implementation).
pub struct Backing {
    file: File,
    path: PathBuf,
    blocks: u64,
    /// Bit `k`: the current copy of slot `k` is in the file. Changed only by a holder of
    /// the slot's lock.
    bits: Box<[AtomicU64]>,
    slots: SlotLocks,
    counters: Arc<DeviceCounters>,
}

impl Backing {
    fn create(path: &Path, blocks: u64, counters: Arc<DeviceCounters>) -> io::Result<Backing> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let backing = Backing {
            file,
            path: path.to_path_buf(),
            blocks,
            bits: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            slots: SlotLocks {
                busy: Mutex::new(HashSet::new()),
                released: Condvar::new(),
            },
            counters,
        };
        // Sparse: only pages written take disk space. (On failure `backing` is dropped
        // and removes the file it created.)
        backing.file.set_len(blocks * BLOCK_SIZE)?;
        Ok(backing)
    }

    /// The backing file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bit(&self, slot: u64) -> bool {
        self.bits[(slot / 64) as usize].load(Ordering::Relaxed) & (1 << (slot % 64)) != 0
    }

    fn set_bit(&self, slot: u64, on: bool) {
        let word = &self.bits[(slot / 64) as usize];
        let mask = 1u64 << (slot % 64);
        let old = if on {
            word.fetch_or(mask, Ordering::Relaxed)
        } else {
            word.fetch_and(!mask, Ordering::Relaxed)
        };
        let was = old & mask != 0;
        if on && !was {
            self.counters.backing_blocks.fetch_add(1, Ordering::Relaxed);
        } else if !on && was {
            self.counters.backing_blocks.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Writes a slot's page to the file and sets its bit (caller holds the slot). On
    /// failure the bit is cleared: the file's copy can no longer be trusted.
    fn write_slot(&self, slot: u64, page: &Page) -> io::Result<()> {
        let t = Instant::now();
        let r = self.file.write_all_at(page, slot * BLOCK_SIZE);
        add_ns(&self.counters.backing_ns, t);
        match r {
            Ok(()) => {
                self.set_bit(slot, true);
                Ok(())
            }
            Err(e) => {
                bump(&self.counters.io_errors);
                self.set_bit(slot, false);
                Err(e)
            }
        }
    }

    fn read_slot(&self, slot: u64, page: &mut Page) -> io::Result<()> {
        let t = Instant::now();
        let r = self.file.read_exact_at(page, slot * BLOCK_SIZE);
        add_ns(&self.counters.backing_ns, t);
        if r.is_err() {
            bump(&self.counters.io_errors);
        }
        r
    }

    /// Gives a slot's disk space back (the bit is already clear; best effort: the bit,
    /// not the file, says where the copy is).
    fn punch(&self, slot: u64) {
        // SAFETY: fallocate on a file descriptor this value owns (open for writing),
        // with a mode and a byte range inside the file; it touches no memory of ours.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (slot * BLOCK_SIZE) as libc::off_t,
                BLOCK_SIZE as libc::off_t,
            )
        };
        let _ = r;
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        // The device created this file (create_new): it removes it.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Writeback for Backing {
    fn claim(&self, swap_type: u32, offset: u64) -> Option<u64> {
        if swap_type != SWAP_TYPE || offset >= self.blocks {
            return None;
        }
        if self.slots.try_lock(offset) {
            Some(offset)
        } else {
            bump(&self.counters.claims_busy);
            None
        }
    }

    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        // The slot is held by the claim: no request of it runs until the release.
        if self.write_slot(claim.offset, page).is_ok() {
            bump(&self.counters.written_back);
            true
        } else {
            bump(&self.counters.writeback_refused);
            false
        }
    }

    fn release(&self, claim: SlotClaim, _written: bool) {
        self.slots.unlock(claim.offset);
    }
}

/// The block device: the request handler the FUSE file system calls, usable without
/// FUSE (tests, tools). See the module docs for the semantics.
pub struct Device {
    blocks: u64,
    area: SwapArea<Arc<Zcache>>,
    backing: Arc<Backing>,
    counters: Arc<DeviceCounters>,
    reclaim_budget: usize,
}

impl Device {
    /// Creates the backing file (new: an existing file is refused) and a zcache with
    /// the backing file as its writeback target, and turns swap type 0 on.
    pub fn new(cfg: &DeviceConfig) -> Result<Device, String> {
        if cfg.blocks == 0 {
            return Err("a device needs at least one block".into());
        }
        if cfg.blocks > u64::MAX / BLOCK_SIZE {
            return Err(format!("{} blocks do not fit in a file", cfg.blocks));
        }
        let counters = Arc::new(DeviceCounters::default());
        let backing = Arc::new(
            Backing::create(&cfg.backing, cfg.blocks, counters.clone())
                .map_err(|e| format!("cannot create the backing file: {e}"))?,
        );
        let zcfg = Config {
            frontswap_exclusive_loads: false,
            ..cfg.zcache
        };
        let z = Zcache::with_writeback(zcfg, BlockPageSource::new(), backing.clone())
            .map_err(|e| format!("cannot build zcache: {e}"))?;
        let area = SwapArea::swapon(Arc::new(z), SWAP_TYPE)
            .map_err(|e| format!("cannot turn zcache's swap area on: {e}"))?;
        Ok(Device {
            blocks: cfg.blocks,
            area,
            backing,
            counters,
            reclaim_budget: cfg.reclaim_budget.max(1),
        })
    }

    /// Blocks of the device.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.blocks * BLOCK_SIZE
    }

    /// The zcache behind the device.
    pub fn zcache(&self) -> &Zcache {
        self.area.zcache()
    }

    /// The backing file's path.
    pub fn backing_path(&self) -> &Path {
        self.backing.path()
    }

    /// The device's counters.
    pub fn counters(&self) -> &DeviceCounters {
        &self.counters
    }

    /// Checks a request against alignment and the device's end; the first block and
    /// the number of blocks.
    fn check(&self, offset: u64, len: u64) -> Result<(u64, u64), DeviceError> {
        let bad = if !offset.is_multiple_of(BLOCK_SIZE) || !len.is_multiple_of(BLOCK_SIZE) {
            Some(DeviceError::Unaligned { offset, len })
        } else if offset.checked_add(len).is_none_or(|end| end > self.size()) {
            Some(DeviceError::OutOfRange {
                offset,
                len,
                size: self.size(),
            })
        } else {
            None
        };
        match bad {
            Some(e) => {
                bump(&self.counters.invalid_requests);
                Err(e)
            }
            None => Ok((offset / BLOCK_SIZE, len / BLOCK_SIZE)),
        }
    }

    /// Reads `buf.len()` bytes at `offset` (both multiples of 4096, inside the device).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        bump(&self.counters.read_requests);
        let (first, _) = self.check(offset, buf.len() as u64)?;
        for (i, chunk) in buf.chunks_exact_mut(PAGE_SIZE).enumerate() {
            let page: &mut Page = chunk.try_into().expect("chunks of PAGE_SIZE");
            self.read_block(first + i as u64, page)?;
        }
        Ok(())
    }

    fn read_block(&self, slot: u64, page: &mut Page) -> Result<(), DeviceError> {
        let _held = self.backing.slots.lock(slot);
        let t = Instant::now();
        let hit = self.area.load(slot, page);
        add_ns(&self.counters.zcache_ns, t);
        match hit {
            Ok(true) => bump(&self.counters.reads_zcache),
            // A slot of an area that has ended (swapoff during shutdown) is a miss too.
            Ok(false) | Err(ZcacheError::UnknownSwapType | ZcacheError::PoolDestroyed) => {
                if self.backing.bit(slot) {
                    self.backing
                        .read_slot(slot, page)
                        .map_err(DeviceError::Io)?;
                    bump(&self.counters.reads_backing);
                } else {
                    page.fill(0);
                    bump(&self.counters.reads_zero);
                }
            }
            Err(e) => return Err(DeviceError::Load(e)),
        }
        Ok(())
    }

    /// Writes `data` at `offset` (both multiples of 4096, inside the device).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        bump(&self.counters.write_requests);
        let (first, _) = self.check(offset, data.len() as u64)?;
        let mut refused = false;
        let mut result = Ok(());
        for (i, chunk) in data.chunks_exact(PAGE_SIZE).enumerate() {
            let page: &Page = chunk.try_into().expect("chunks of PAGE_SIZE");
            match self.write_block(first + i as u64, page) {
                Ok(kept) => refused |= !kept,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // zcache's reclaim worker, with no slot held: pages it writes back are claimed
        // one at a time through `Backing`.
        if refused && self.zcache().reclaim_wanted() {
            bump(&self.counters.reclaim_runs);
            self.zcache().reclaim(self.reclaim_budget);
        }
        result
    }

    /// One block; `Ok(true)` if zcache kept it.
    fn write_block(&self, slot: u64, page: &Page) -> Result<bool, DeviceError> {
        let _held = self.backing.slots.lock(slot);
        let t = Instant::now();
        let stored = self.area.store(slot, page);
        add_ns(&self.counters.zcache_ns, t);
        match stored {
            Ok(()) => {
                // zcache has the current copy: the file's (if any) is stale.
                self.backing.set_bit(slot, false);
                bump(&self.counters.stores_kept);
                Ok(true)
            }
            Err(_) => {
                // Refused, and any older zcache copy is gone: the file gets the page.
                bump(&self.counters.stores_refused);
                self.backing
                    .write_slot(slot, page)
                    .map_err(DeviceError::Io)?;
                Ok(false)
            }
        }
    }

    /// Discards `len` bytes at `offset` (both multiples of 4096, inside the device):
    /// reads of them give zeros until they are written again.
    pub fn discard(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        bump(&self.counters.discard_requests);
        let (first, n) = self.check(offset, len)?;
        for slot in first..first + n {
            let _held = self.backing.slots.lock(slot);
            let _ = self.area.invalidate_page(slot);
            if self.backing.bit(slot) {
                self.backing.set_bit(slot, false);
                self.backing.punch(slot);
            }
            bump(&self.counters.discarded_blocks);
        }
        Ok(())
    }

    /// Where slot `slot`'s current copy lives (holds the slot while it looks).
    pub fn residency(&self, slot: u64) -> Residency {
        let _held = self.backing.slots.lock(slot);
        let mut scratch = [0u8; PAGE_SIZE];
        Residency {
            in_zcache: self.area.load(slot, &mut scratch) == Ok(true),
            in_backing: self.backing.bit(slot),
        }
    }

    /// The device's and zcache's statistics as text, one `name value` per line.
    pub fn stats_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "# zcache swapd: device");
        let _ = writeln!(s, "blocks {}", self.blocks);
        let _ = writeln!(s, "backing_file {}", self.backing.path().display());
        for (k, v) in self.counters.named() {
            let _ = writeln!(s, "{k} {v}");
        }
        let _ = writeln!(s, "# zcache");
        for (k, v) in zcache_stats(self.zcache()) {
            let _ = writeln!(s, "{k} {v}");
        }
        s
    }

    /// The device's and zcache's statistics as JSON.
    pub fn stats_json(&self) -> serde_json::Value {
        let dev: serde_json::Map<String, serde_json::Value> = self
            .counters
            .named()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .chain([
                ("blocks".to_string(), self.blocks.into()),
                (
                    "backing_file".to_string(),
                    self.backing.path().display().to_string().into(),
                ),
            ])
            .collect();
        let z: serde_json::Map<String, serde_json::Value> = zcache_stats(self.zcache())
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        serde_json::json!({ "device": dev, "zcache": z })
    }
}

/// zcache's statistics snapshot and memory figures as (name, value).
fn zcache_stats(z: &Zcache) -> Vec<(&'static str, i64)> {
    let s = z.stats();
    let mut v: Vec<(&'static str, i64)> = s.counters.named().to_vec();
    v.extend([
        ("pool_frames", s.pool_frames as i64),
        ("pool_frames_peak", s.pool_frames_peak as i64),
        ("pool_total_size", s.pool_total_size as i64),
        ("pers_frames", s.pers_frames as i64),
        ("pers_objects", s.pers_zpages as i64),
        ("pool_limit_hit", s.pool_limit_hit as i64),
        ("limit_full", i64::from(s.limit_full)),
        ("pers_lru_len", s.pers_lru_len as i64),
        ("metadata_bytes", z.metadata_bytes() as i64),
    ]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn device() -> Device {
        let path = std::env::temp_dir().join(format!(
            "zcache-swapd-unit-{}-{:?}.backing",
            std::process::id(),
            std::thread::current().id()
        ));
        Device::new(&DeviceConfig::new(8, path)).unwrap()
    }

    #[test]
    fn a_claimed_slot_holds_requests_until_the_release() {
        let d = Arc::new(device());
        let page = [7u8; PAGE_SIZE];
        d.write(0, &page).unwrap();
        let token = d.backing.claim(SWAP_TYPE, 0).expect("free slot claims");
        // A second claim, and a claim of a slot the device does not have, are refused.
        assert_eq!(d.backing.claim(SWAP_TYPE, 0), None);
        assert_eq!(d.backing.claim(SWAP_TYPE, 8), None);
        assert_eq!(d.backing.claim(SWAP_TYPE + 1, 1), None);
        let writer = {
            let d = d.clone();
            std::thread::spawn(move || d.write(0, &[9u8; PAGE_SIZE]).unwrap())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            d.counters.write_requests.load(Ordering::Relaxed),
            2,
            "the write started"
        );
        assert_eq!(
            d.counters.stores_kept.load(Ordering::Relaxed),
            1,
            "a write of a claimed slot ran before the release"
        );
        let claim = SlotClaim {
            swap_type: SWAP_TYPE,
            offset: 0,
            token,
        };
        d.backing.release(claim, false);
        writer.join().unwrap();
        let mut back = [0u8; PAGE_SIZE];
        d.read(0, &mut back).unwrap();
        assert_eq!(back, [9u8; PAGE_SIZE]);
    }

    #[test]
    fn a_slot_held_by_a_request_cannot_be_claimed() {
        let d = device();
        let held = d.backing.slots.lock(3);
        assert_eq!(d.backing.claim(SWAP_TYPE, 3), None);
        assert_eq!(d.counters.claims_busy.load(Ordering::Relaxed), 1);
        drop(held);
        assert_eq!(d.backing.claim(SWAP_TYPE, 3), Some(3));
    }
}
