//! `zcache bench --kernel`: the same pages written through this kernel's zram, its
//! `mm_stat` figures printed beside zcache's for the same pages.
//!
//! The zram device is one this command creates (`/sys/class/zram-control/hot_add`) and
//! removes again (`reset`, then `hot_remove`) on every exit path, through a drop guard:
//! an existing zram device (say `/dev/zram0`, perhaps the machine's swap) is never
//! touched. Root only; without root, zram, or the compressor in this kernel's zram, the
//! command refuses with a message that says which.
//!
//! What is counted, for the same pages:
//! * zram: `mem_used_total` from `mm_stat` (the zsmalloc frames: exact, from the
//!   kernel), plus two estimates the kernel does not report: its slot table (one
//!   16-byte `zram_table_entry` per 4 KiB of disksize: an 8-byte handle and a 4-byte
//!   flags word, padded, Linux 6.12 and later without `CONFIG_ZRAM_TRACK_ENTRY_ACTIME`)
//!   and zsmalloc's 8-byte handle per stored object (its `zs_handle` slab). zram keeps
//!   every page: one that compresses poorly is stored whole (`huge_pages`).
//! * zcache: the frames it holds plus its metadata (`Zcache::metadata_bytes`: tmem's
//!   trees and maps, the allocator's tables, the LRU): both exact. zcache refuses a page
//!   that compresses poorly (the kernel then writes it to the swap device); so that both
//!   sides hold the same data, each refused page is counted at 4096 bytes.
//!
//! Pages are written with `O_DIRECT` (no page cache in between), then read back the
//! same way and compared byte for byte, so a row is only printed for data zram really
//! kept.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zcache::{AllocatorKind, Config, SwapArea, Zcache};
use zpool::BlockPageSource;

use crate::error::CliError;
use crate::input::{PAGE_SIZE, Page};

/// The sysfs directory of zram's control files.
const CONTROL: &str = "/sys/class/zram-control";
/// Bytes of one `zram_table_entry` (estimate: see the module docs).
pub const ZRAM_TABLE_ENTRY: u64 = 16;
/// Bytes of one zsmalloc handle (`zs_handle` slab object).
pub const ZS_HANDLE: u64 = 8;

/// `/sys/block/zramN/mm_stat`: the parser `zcache swap-bench` uses too.
pub use zcache_swapbench::parse::MmStat;

/// One side of the comparison, for the same pages.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Side {
    /// Pages written.
    pub pages: u64,
    /// Pages the store kept itself (zram: all; zcache: those not refused).
    pub kept: u64,
    /// Bytes of compressed data it reports (zram: compr_data_size; zcache: stored
    /// object bytes).
    pub data_bytes: u64,
    /// Frames' bytes (zram: mem_used_total; zcache: frames held x 4096).
    pub frame_bytes: u64,
    /// Metadata bytes (zram: estimated table + handles; zcache: counted).
    pub metadata_bytes: u64,
    /// Pages refused, counted at 4096 bytes each (zcache only).
    pub refused_bytes: u64,
}

impl Side {
    /// Everything the side needs to hold the pages.
    pub fn total(&self) -> u64 {
        self.frame_bytes + self.metadata_bytes + self.refused_bytes
    }

    /// [`Side::total`] per page written.
    pub fn per_page(&self) -> f64 {
        self.total() as f64 / self.pages.max(1) as f64
    }
}

/// The side-by-side result.
#[derive(Clone, Debug)]
pub struct KernelReport {
    /// The zram device used (e.g. `zram1`), removed again.
    pub device: String,
    /// The compressor (the same on both sides).
    pub compressor: String,
    /// zram's `mm_stat` after the writes.
    pub mm_stat: MmStat,
    /// zram's side.
    pub zram: Side,
    /// zcache's side.
    pub zcache: Side,
}

impl KernelReport {
    /// zcache's memory over zram's for the same pages.
    pub fn ratio(&self) -> f64 {
        self.zcache.total() as f64 / self.zram.total().max(1) as f64
    }

    /// The report as JSON (`--kernel --json`): every figure of the table, by name.
    pub fn json(&self) -> String {
        let side = |s: &Side| {
            serde_json::json!({
                "pages": s.pages,
                "kept_pages": s.kept,
                "data_bytes": s.data_bytes,
                "frame_bytes": s.frame_bytes,
                "metadata_bytes": s.metadata_bytes,
                "refused_bytes": s.refused_bytes,
                "total_bytes": s.total(),
                "bytes_per_page": s.per_page(),
            })
        };
        let m = &self.mm_stat;
        let v = serde_json::json!({
            "device": self.device,
            "compressor": self.compressor,
            "mm_stat": {
                "orig_data_size": m.orig_data_size,
                "compr_data_size": m.compr_data_size,
                "mem_used_total": m.mem_used_total,
                "same_pages": m.same_pages,
                "huge_pages": m.huge_pages,
            },
            "zram": side(&self.zram),
            "zcache": side(&self.zcache),
            "zcache_over_zram": self.ratio(),
            "zram_table_entry_bytes_estimate": ZRAM_TABLE_ENTRY,
            "zs_handle_bytes_estimate": ZS_HANDLE,
        });
        let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The table printed by `zcache bench --kernel`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "kernel side by side: {} pages through this kernel's zram ({}, removed again) and through zcache (frontswap, zsmalloc), both {}",
            self.zram.pages, self.device, self.compressor
        );
        let _ = writeln!(
            s,
            "zram mm_stat: orig_data_size {} compr_data_size {} mem_used_total {} same_pages {} huge_pages {}",
            self.mm_stat.orig_data_size,
            self.mm_stat.compr_data_size,
            self.mm_stat.mem_used_total,
            self.mm_stat.same_pages,
            self.mm_stat.huge_pages
        );
        let _ = writeln!(
            s,
            "{:<8} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9}",
            "store", "kept", "data B", "frames B", "metadata B", "refused B", "total B", "B/page"
        );
        for (name, side) in [("zram", &self.zram), ("zcache", &self.zcache)] {
            let _ = writeln!(
                s,
                "{:<8} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9.1}",
                name,
                side.kept,
                side.data_bytes,
                side.frame_bytes,
                side.metadata_bytes,
                side.refused_bytes,
                side.total(),
                side.per_page()
            );
        }
        let _ = writeln!(
            s,
            "zcache / zram: {:.3}x the memory for the same pages (zram's metadata is an estimate: {} B table entry per slot, {} B handle per object; zcache's refused pages counted at 4096 B)",
            self.ratio(),
            ZRAM_TABLE_ENTRY,
            ZS_HANDLE
        );
        s
    }
}

/// The zram algorithm name for a zcache compressor, if this kernel's zram can have it.
fn zram_algorithm(alg: zcomp::Algorithm) -> Result<&'static str, CliError> {
    match alg {
        zcomp::Algorithm::Lz4 => Ok("lz4"),
        zcomp::Algorithm::Lzo => Ok("lzo"),
        other => Err(CliError::input(format!(
            "--kernel compares with zram, which has no {other:?} here: use --compressor lz4 or lzo"
        ))),
    }
}

fn write_sys(path: &Path, value: &str) -> Result<(), CliError> {
    std::fs::write(path, value)
        .map_err(|e| CliError::runtime(format!("writing {value:?} to {}: {e}", path.display())))
}

fn read_sys(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::runtime(format!("reading {}: {e}", path.display())))
}

/// A zram device this command created; reset and removed when dropped.
struct ZramGuard {
    id: u32,
}

impl ZramGuard {
    /// Creates a fresh device through `hot_add`.
    fn create() -> Result<ZramGuard, CliError> {
        let text = read_sys(&Path::new(CONTROL).join("hot_add"))?;
        let id = text
            .trim()
            .parse::<u32>()
            .map_err(|_| CliError::runtime(format!("zram hot_add answered {text:?}")))?;
        Ok(ZramGuard { id })
    }

    fn name(&self) -> String {
        format!("zram{}", self.id)
    }

    fn sys(&self, file: &str) -> PathBuf {
        Path::new("/sys/block").join(self.name()).join(file)
    }

    fn dev(&self) -> PathBuf {
        Path::new("/dev").join(self.name())
    }
}

impl Drop for ZramGuard {
    fn drop(&mut self) {
        // Reset frees the device's memory; hot_remove takes the device away. Both are
        // tried whatever happened before; a failure is reported, never hidden.
        if let Err(e) = write_sys(&self.sys("reset"), "1") {
            eprintln!("zcache: {e}");
        }
        if let Err(e) = write_sys(&Path::new(CONTROL).join("hot_remove"), &self.id.to_string()) {
            eprintln!(
                "zcache: {e} (remove it by hand: echo {} > {CONTROL}/hot_remove)",
                self.id
            );
        }
    }
}

/// A 4096-byte aligned page buffer for `O_DIRECT`.
struct AlignedPage {
    ptr: std::ptr::NonNull<u8>,
}

const ALIGNED: std::alloc::Layout = match std::alloc::Layout::from_size_align(PAGE_SIZE, 4096) {
    Ok(l) => l,
    Err(_) => panic!("page layout"),
};

impl AlignedPage {
    fn new() -> Result<AlignedPage, CliError> {
        // SAFETY: ALIGNED has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(ALIGNED) };
        std::ptr::NonNull::new(raw)
            .map(|ptr| AlignedPage { ptr })
            .ok_or_else(|| CliError::runtime("out of memory for an I/O buffer"))
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live, zeroed (initialised) allocation of PAGE_SIZE bytes,
        // owned by `self` and borrowed mutably through it only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), PAGE_SIZE) }
    }
}

impl Drop for AlignedPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(ALIGNED)` and is freed once, here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), ALIGNED) }
    }
}

/// Why `--kernel` cannot run here, if it cannot.
pub fn refusal() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "--kernel needs root: it creates a zram device of its own (hot_add) and removes it again"
                .into(),
        );
    }
    if !Path::new(CONTROL).join("hot_add").exists() {
        return Some(format!(
            "--kernel needs zram with hot_add: {CONTROL}/hot_add is missing (modprobe zram?)"
        ));
    }
    None
}

/// Writes `pages` through a fresh zram device and through zcache; compares.
pub fn side_by_side(pages: &[Page], alg: zcomp::Algorithm) -> Result<KernelReport, CliError> {
    if let Some(why) = refusal() {
        return Err(CliError::runtime(why));
    }
    if pages.is_empty() {
        return Err(CliError::input("--kernel needs at least one page"));
    }
    let name = zram_algorithm(alg)?;
    let dev = ZramGuard::create()?;
    let offered = read_sys(&dev.sys("comp_algorithm"))?;
    if !offered
        .split_whitespace()
        .any(|w| w.trim_matches(|c| c == '[' || c == ']') == name)
    {
        return Err(CliError::runtime(format!(
            "this kernel's zram has no {name} (it offers: {})",
            offered.trim()
        )));
    }
    write_sys(&dev.sys("comp_algorithm"), name)?;
    let size = pages.len() as u64 * PAGE_SIZE as u64;
    write_sys(&dev.sys("disksize"), &size.to_string())?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(dev.dev())
        .map_err(|e| CliError::runtime(format!("opening {}: {e}", dev.dev().display())))?;
    let mut buf = AlignedPage::new()?;
    for (i, p) in pages.iter().enumerate() {
        buf.bytes().copy_from_slice(p);
        file.write_all_at(buf.bytes(), (i * PAGE_SIZE) as u64)
            .map_err(|e| CliError::runtime(format!("writing page {i} to zram: {e}")))?;
    }
    file.sync_all()
        .map_err(|e| CliError::runtime(format!("syncing zram: {e}")))?;
    let mm_stat = MmStat::parse(&read_sys(&dev.sys("mm_stat"))?).map_err(CliError::runtime)?;
    verify(&mut file, pages, &mut buf)?;
    drop(file);
    let stored = pages.len() as u64;
    let objects = stored - mm_stat.same_pages;
    let zram = Side {
        pages: stored,
        kept: stored,
        data_bytes: mm_stat.compr_data_size,
        frame_bytes: mm_stat.mem_used_total,
        metadata_bytes: stored * ZRAM_TABLE_ENTRY + objects * ZS_HANDLE,
        refused_bytes: 0,
    };
    let zcache = zcache_side(pages, alg)?;
    Ok(KernelReport {
        device: dev.name(),
        compressor: name.to_string(),
        mm_stat,
        zram,
        zcache,
    })
}

/// Reads every page back with `O_DIRECT` and compares.
fn verify(file: &mut File, pages: &[Page], buf: &mut AlignedPage) -> Result<(), CliError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| CliError::runtime(format!("seeking zram: {e}")))?;
    for (i, p) in pages.iter().enumerate() {
        file.read_exact(buf.bytes())
            .map_err(|e| CliError::runtime(format!("reading page {i} back from zram: {e}")))?;
        if buf.bytes() != &p[..] {
            return Err(CliError::runtime(format!(
                "zram returned other bytes for page {i}"
            )));
        }
    }
    Ok(())
}

/// zcache's side: the same pages stored in slot order through a frontswap area, with
/// zsmalloc and the same compressor; every page loaded back and compared.
pub fn zcache_side(pages: &[Page], alg: zcomp::Algorithm) -> Result<Side, CliError> {
    let config = Config {
        compressor: alg,
        persistent_allocator: AllocatorKind::Zsmalloc,
        ..Config::default()
    };
    let z = Zcache::new(config, BlockPageSource::new())
        .map_err(|e| CliError::runtime(format!("zcache: {e}")))?;
    let area = SwapArea::swapon(&z, 0).map_err(|e| CliError::runtime(format!("zcache: {e}")))?;
    let mut refused = 0u64;
    for (i, p) in pages.iter().enumerate() {
        if area.store(i as u64, p).is_err() {
            refused += 1;
        }
    }
    let stats = z.stats();
    let side = Side {
        pages: pages.len() as u64,
        kept: pages.len() as u64 - refused,
        data_bytes: stats.counters.zbytes.max(0) as u64,
        frame_bytes: stats.pool_frames as u64 * PAGE_SIZE as u64,
        metadata_bytes: z.metadata_bytes() as u64,
        refused_bytes: refused * PAGE_SIZE as u64,
    };
    let mut out: Box<Page> = Box::new([0; PAGE_SIZE]);
    for (i, p) in pages.iter().enumerate() {
        let hit = area
            .load(i as u64, &mut out)
            .map_err(|e| CliError::runtime(format!("zcache load of slot {i}: {e}")))?;
        if hit && out[..] != p[..] {
            return Err(CliError::runtime(format!(
                "zcache returned other bytes for page {i}"
            )));
        }
    }
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lz4_and_lzo_are_compared() {
        assert_eq!(zram_algorithm(zcomp::Algorithm::Lz4).ok(), Some("lz4"));
        assert_eq!(zram_algorithm(zcomp::Algorithm::Lzo).ok(), Some("lzo"));
        assert!(zram_algorithm(zcomp::Algorithm::Deflate).is_err());
    }

    #[test]
    fn totals_count_refused_pages_whole() {
        let s = Side {
            pages: 4,
            kept: 3,
            data_bytes: 3000,
            frame_bytes: 4096,
            metadata_bytes: 100,
            refused_bytes: 4096,
        };
        assert_eq!(s.total(), 8292);
        assert_eq!(s.per_page(), 2073.0);
    }

    #[test]
    fn zcache_side_keeps_and_returns_the_pages() {
        let mut pages: Vec<Page> = Vec::new();
        for i in 0..64u32 {
            let mut p = [0u8; PAGE_SIZE];
            for (j, b) in p.iter_mut().enumerate() {
                *b = ((j as u32 / 16) ^ i) as u8;
            }
            pages.push(p);
        }
        let s = zcache_side(&pages, zcomp::Algorithm::Lz4).expect("zcache side");
        assert_eq!((s.pages, s.kept, s.refused_bytes), (64, 64, 0));
        assert!(s.frame_bytes > 0 && s.metadata_bytes > 0);
        assert!(s.total() < 64 * PAGE_SIZE as u64);
    }
}
