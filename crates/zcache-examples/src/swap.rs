//! frontswap with a real swap file as the writeback target.
//!
//! A [`SwapFile`] is a file under the system's temporary directory, one 4 KiB slot per
//! swap offset. The simulated kernel swaps pages out (`store`); when zcache refuses a
//! page (poor compression, or no frame: zcache is at its limit) the kernel writes it to
//! the swap file itself, as the real swap path does. zcache holds at most a few frames
//! ([`Params::zcache_frames`]). A refused store at the limit makes
//! [`Zcache::reclaim_wanted`] true, and the kernel's worker (zswap's shrink_worker)
//! calls [`Zcache::reclaim`], which writes zcache's least recently used swap pages back
//! to the file through [`FileWriteback`] with the claim protocol: the slot is claimed
//! (pinned), zcache takes its copy only if the slot still holds it, the page is
//! written, the claim released. Swap-in (`load`) then reads each page from zcache or,
//! on a miss, from the file, and every page is compared with what was swapped out.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use zcache::{Config, SlotClaim, SwapArea, Writeback, Zcache};
use zpool::{BlockPageSource, PAGE_SIZE, Page};

use crate::{Rng, anon_pages, pct, tagged};

/// A swap device backed by a file: slot `offset` lives at byte `offset * 4096`.
pub struct SwapFile {
    path: PathBuf,
    file: File,
    /// Pages written to the file (by writeback and by the kernel directly).
    pub writes: AtomicU64,
    /// Pages read from the file.
    pub reads: AtomicU64,
}

impl SwapFile {
    /// Creates (truncates) a swap file at `path`.
    pub fn create(path: PathBuf) -> io::Result<SwapFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(SwapFile {
            path,
            file,
            writes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        })
    }

    /// Writes a slot.
    pub fn write(&self, offset: u64, page: &Page) -> io::Result<()> {
        self.file.write_all_at(page, offset * PAGE_SIZE as u64)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Reads a slot.
    pub fn read(&self, offset: u64, page: &mut Page) -> io::Result<()> {
        self.file.read_exact_at(page, offset * PAGE_SIZE as u64)?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// The file's size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Closes and deletes the file.
    pub fn remove(self) -> io::Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path)
    }
}

/// zcache's writeback target: the swap file, with the slots claimed for writeback
/// (the kernel's swap-cache pages: a claimed slot is neither reused nor written by the
/// kernel itself until released).
pub struct FileWriteback {
    /// The device.
    pub swap: Arc<SwapFile>,
    /// Pages zcache wrote back.
    pub written: AtomicU64,
    /// Slots pinned by a claim.
    pub claimed: Mutex<HashSet<u64>>,
}

impl FileWriteback {
    /// Whether a slot is pinned by a writeback in progress (the kernel would wait on
    /// its swap-cache page).
    pub fn is_claimed(&self, offset: u64) -> bool {
        self.claimed.lock().is_ok_and(|c| c.contains(&offset))
    }
}

impl Writeback for FileWriteback {
    fn claim(&self, swap_type: u32, offset: u64) -> Option<u64> {
        // One swap device (type 0) in this example; refuse anything else.
        if swap_type != 0 {
            return None;
        }
        let mut c = self.claimed.lock().ok()?;
        c.insert(offset).then_some(offset)
    }

    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        if self.swap.write(claim.offset, page).is_err() {
            return false;
        }
        self.written.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn release(&self, claim: SlotClaim, _written: bool) {
        if let Ok(mut c) = self.claimed.lock() {
            c.remove(&claim.offset);
        }
    }
}

/// Settings of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// zcache's frame limit.
    pub zcache_frames: usize,
    /// Distinct swap slots swapped out.
    pub slots: u64,
    /// Pages swapped out a second time with new contents (a page dirtied again).
    pub reswaps: u64,
    /// Random seed.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            zcache_frames: 128,
            slots: 1500,
            reswaps: 300,
            seed: 7,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The swap file's path.
    pub path: String,
    /// Swap-outs (stores attempted).
    pub swap_outs: u64,
    /// Stores zcache accepted.
    pub stored: u64,
    /// Stores zcache refused (the kernel wrote those pages to the file itself).
    pub refused: u64,
    /// Pages zcache wrote back to the file to stay under its limit.
    pub written_back: u64,
    /// Times the kernel's worker ran `Zcache::reclaim`.
    pub worker_runs: u64,
    /// Frame limit and peak frames.
    pub frame_limit: usize,
    /// Highest frame count.
    pub peak_frames: usize,
    /// Swap-ins served by zcache.
    pub loads_from_zcache: u64,
    /// Swap-ins read from the swap file.
    pub loads_from_file: u64,
    /// Swap-ins whose page differed from what was swapped out (must be 0).
    pub wrong_pages: u64,
    /// Bytes of the swap file at the end.
    pub file_bytes: u64,
    /// Pages the memory-pressure hook (shrink to half) wrote back.
    pub shrink_written_back: usize,
    /// Frames freed by that shrink.
    pub shrink_frames_freed: usize,
    /// Pages dropped by swapoff (invalidate_area).
    pub swapoff_dropped: u64,
    /// Whether the swap file was removed at the end.
    pub file_removed: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "swap file: {}", self.path)?;
        writeln!(
            f,
            "swap-outs: {} (real anonymous-memory pages), zcache limit {} frames ({} KiB)",
            self.swap_outs,
            self.frame_limit,
            self.frame_limit * 4
        )?;
        writeln!(
            f,
            "zcache took {} ({:.1}%), refused {} (written to the swap file by the kernel)",
            self.stored,
            pct(self.stored, self.swap_outs),
            self.refused
        )?;
        writeln!(
            f,
            "over the limit the worker ran {} times and zcache wrote back {} pages to the swap file; peak {} frames",
            self.worker_runs, self.written_back, self.peak_frames
        )?;
        writeln!(
            f,
            "swap-in of every slot: {} from zcache, {} from the swap file, {} wrong",
            self.loads_from_zcache, self.loads_from_file, self.wrong_pages
        )?;
        writeln!(
            f,
            "memory pressure (shrink to half the frames): {} pages written back, {} frames freed",
            self.shrink_written_back, self.shrink_frames_freed
        )?;
        writeln!(
            f,
            "swapoff: {} pages dropped; swap file was {} KiB, {}",
            self.swapoff_dropped,
            self.file_bytes / 1024,
            if self.file_removed {
                "removed"
            } else {
                "NOT removed"
            }
        )?;
        Ok(())
    }
}

/// Runs the scenario with a swap file under `std::env::temp_dir()`.
pub fn run(p: &Params) -> io::Result<Report> {
    let path = std::env::temp_dir().join(format!(
        "zcache-example-swap-{}-{}.img",
        std::process::id(),
        p.seed
    ));
    let swap = Arc::new(SwapFile::create(path)?);
    let result = run_on(p, &swap);
    let swap = Arc::into_inner(swap).ok_or_else(|| io::Error::other("swap file still in use"))?;
    let mut rep = result?;
    rep.file_bytes = swap.size()?;
    let path = swap.path().clone();
    swap.remove()?;
    rep.file_removed = !path.exists();
    Ok(rep)
}

fn run_on(p: &Params, swap: &Arc<SwapFile>) -> io::Result<Report> {
    let wb = Arc::new(FileWriteback {
        swap: swap.clone(),
        written: AtomicU64::new(0),
        claimed: Mutex::new(HashSet::new()),
    });
    let z = Zcache::with_writeback(
        Config {
            max_frames: p.zcache_frames,
            ..Config::default()
        },
        Arc::new(BlockPageSource::new()),
        wb.clone(),
    )
    .map_err(|e| io::Error::other(e.to_string()))?;
    // swapon: the swap area by value (its stores and loads skip the slot lookup).
    let area = SwapArea::swapon(&z, 0).map_err(|e| io::Error::other(e.to_string()))?;
    let anon = anon_pages();
    let mut rng = Rng::new(p.seed);
    let mut rep = Report {
        path: swap.path().display().to_string(),
        frame_limit: p.zcache_frames,
        ..Report::default()
    };
    // What each slot holds now (the truth to compare swap-ins with).
    let mut truth: Vec<Page> = Vec::with_capacity(p.slots as usize);
    let swap_out = |offset: u64, page: &Page, rep: &mut Report| -> io::Result<()> {
        rep.swap_outs += 1;
        // No writeback is in flight here (the worker runs below, on this thread), so
        // the slot is never claimed now; a kernel would wait on its swap-cache page.
        debug_assert!(!wb.is_claimed(offset));
        match area.store(offset, page) {
            Ok(()) => rep.stored += 1,
            Err(_) => {
                // frontswap said no: the kernel writes the page to the device.
                swap.write(offset, page)?;
                rep.refused += 1;
                if z.reclaim_wanted() {
                    // The kernel's worker: back under the accept threshold.
                    z.reclaim(1024);
                    rep.worker_runs += 1;
                }
            }
        }
        Ok(())
    };
    for offset in 0..p.slots {
        let page = tagged(&anon[rng.below(anon.len())], offset);
        swap_out(offset, &page, &mut rep)?;
        truth.push(page);
    }
    for r in 0..p.reswaps {
        let offset = rng.below(p.slots as usize) as u64;
        let page = tagged(&anon[rng.below(anon.len())], (r + 1) << 32 | offset);
        swap_out(offset, &page, &mut rep)?;
        truth[offset as usize] = page;
    }
    let verify = |rep: &mut Report| -> io::Result<()> {
        let mut buf = [0u8; PAGE_SIZE];
        for (offset, want) in truth.iter().enumerate() {
            let offset = offset as u64;
            let hit = area
                .load(offset, &mut buf)
                .map_err(|e| io::Error::other(e.to_string()))?;
            if hit {
                rep.loads_from_zcache += 1;
            } else {
                swap.read(offset, &mut buf)?;
                rep.loads_from_file += 1;
            }
            if &buf != want {
                rep.wrong_pages += 1;
            }
        }
        Ok(())
    };
    verify(&mut rep)?;
    let s = z.stats();
    rep.written_back = s.counters.written_back_pages as u64;
    rep.peak_frames = s.pool_frames_peak;
    // The host's memory-pressure hook: give back half the frames.
    let out = z.shrink(s.pool_frames / 2);
    rep.shrink_written_back = out.written_back_pages;
    rep.shrink_frames_freed = out.frames_freed;
    // Every page must still come back exact after the shrink.
    let mut after = Report::default();
    verify(&mut after)?;
    rep.wrong_pages += after.wrong_pages;
    rep.swapoff_dropped = area
        .swapoff()
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(rep)
}
