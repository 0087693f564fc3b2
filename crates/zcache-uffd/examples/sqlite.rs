//! SQLite with all its memory on a zcache-uffd region (issue 16, item 2; run (c)), on
//! the C heap or a plain mapping for comparison (run (a)), and in a memory cgroup
//! swapping to zram at the same limit (run (b)).
//!
//! ```text
//! cargo build --release -p zcache-uffd --example sqlite
//! S=target/release/examples/sqlite
//! $S --max-lines 1000000 --heap malloc                  # (a)  glibc, no limit
//! $S --max-lines 1000000 --heap mmap                    # (a'') the slab allocator, plain mapping
//! $S --max-lines 1000000 --limit-pages 16384            # (c)  on the region (root)
//! $S --max-lines 1000000 --heap mmap --cgroup-limit-pages 16384 [--zram-mib 512]
//!                                                       # (b)  cgroup + zram lz4 (root)
//! other options: [--clean-copies all|N|1/K] [--samples N] [--source DIR] [--space-mib M] [--timeout S]
//! (`--space-mib`: the heap's address space, default 8192; the region's page table
//! costs 2 B per page of it)
//! ```
//!
//! SQLite's allocator is replaced (`SQLITE_CONFIG_MALLOC`) by a size-class allocator
//! whose blocks are carved from the region (its bookkeeping is on the Rust heap, so a
//! free never touches an evicted page; a freed block of several pages is discarded, as
//! a guest's free-page report would be), so every page of the database (an in-memory
//! database: the page cache is the database), its indexes and SQLite's working memory
//! live in the region. `--heap mmap` is the same allocator on a plain anonymous mapping
//! (discard = `MADV_DONTNEED`), so that (b) and (c) differ only in where the pages go.
//! (`SQLITE_CONFIG_HEAP`, memsys5, would need `-DSQLITE_ENABLE_MEMSYS5` in the bundled
//! build's flags, which only an environment variable of the build can give; this
//! allocator needs nothing.)
//!
//! The workload: every line of the text files under `--source` (default /usr/include,
//! up to `--max-lines`) goes into a table (file, line number, text), two indexes are
//! built, then queries that check their own answers: the total, per-file counts,
//! `--samples` random (file, line) lookups, the `#include` lines by an index range, and
//! the distinct texts. The expected answers come from a first read of the files; the
//! text is not kept, the insert reads the files again (so the process holds little
//! besides SQLite's heap, which matters for (b)). Any wrong answer ends the run with
//! exit code 1. Printed: the time of each phase, the process's page faults, the
//! region's statistics (resident and compressed pages, faults, refaults, zcache frames
//! and metadata) or, in (b), zram's `mm_stat` at the end.
//!
//! Run (b) (`--cgroup-limit-pages N`, root, no swap area active, zswap off): a zram
//! device of its own (`hot_add`, lz4, made swap), a cgroup
//! `/sys/fs/cgroup/memory/zcache-uffd-sqlite-PID`, and this program again in it. The
//! child reads the text once, `mlockall(MCL_CURRENT)`s what it holds then (its code,
//! libraries, stacks, the expected answers: memory the region's limit does not count
//! either, and that the kernel must not swap instead of the heap), and limits its
//! cgroup to its usage at that moment (less page cache) plus N pages: the heap, mapped after that, gets N
//! pages, as on the region. The files are read once by the parent first, so their
//! page cache is charged outside the cgroup. zram, swapon and the cgroup are undone by
//! zcache-swapbench's cleanup stack on every exit path (SIGINT included).

#[path = "common/cgroup.rs"]
mod cgroup;
#[path = "common/report.rs"]
mod report;

use std::collections::HashSet;
use std::ffi::{CStr, CString, c_int, c_void};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use libsqlite3_sys as ffi;
use zcache_uffd::{PAGE, Region, RegionConfig};

// ---- an allocator over the region ----

/// Small blocks come from slabs of this size, one size class per slab.
const SLAB: usize = 128 * 1024;
/// Each block starts with a header holding its size (16 bytes keep 16-alignment).
const HDR: usize = 16;

/// Block sizes (header included) served from slabs: 64-byte steps to 1 KiB, then
/// steps of about 1/8, up to 16 KiB. Larger blocks are whole pages.
fn classes() -> Vec<usize> {
    let mut v: Vec<usize> = (1..=16).map(|i| i * 64).collect();
    let mut s = 1024usize;
    while s < 16 * 1024 {
        s = (s + s / 8).div_ceil(64) * 64;
        v.push(s.min(16 * 1024));
    }
    v
}

struct Slab {
    class: usize,
    live: usize,
    /// Blocks freed in this slab (addresses), and the next never-used offset.
    free: Vec<usize>,
    next: usize,
}

/// A slab allocator over the region. Its bookkeeping is on the Rust heap: freeing
/// touches nothing in the region but the block's header page. A slab whose blocks are
/// all free, and the pages of a freed large block, are discarded (`Region::discard`):
/// free memory is neither kept resident nor compressed, as a guest's free-page reports
/// would let a VMM do.
struct Heap {
    base: usize,
    len: usize,
    bump: usize,
    classes: Vec<usize>,
    slabs: std::collections::HashMap<usize, Slab>,
    /// Per class: slabs with room.
    partial: Vec<Vec<usize>>,
    free_slabs: Vec<usize>,
    /// Free large blocks by size (page multiples).
    large: std::collections::BTreeMap<usize, Vec<usize>>,
    in_use: usize,
    peak: usize,
}

impl Heap {
    fn new(base: usize, len: usize) -> Heap {
        let classes = classes();
        Heap {
            base,
            len,
            bump: 0,
            partial: vec![Vec::new(); classes.len()],
            classes,
            slabs: Default::default(),
            free_slabs: Vec::new(),
            large: Default::default(),
            in_use: 0,
            peak: 0,
        }
    }

    fn block_size(&self, n: usize) -> (Option<usize>, usize) {
        let want = n + HDR;
        match self.classes.iter().position(|&c| c >= want) {
            Some(i) => (Some(i), self.classes[i]),
            None => (None, want.div_ceil(PAGE) * PAGE),
        }
    }

    fn carve(&mut self, size: usize, align: usize) -> Option<usize> {
        let start = self.bump.div_ceil(align) * align;
        if start + size > self.len {
            return None;
        }
        // The alignment gap (never touched) is simply skipped.
        self.bump = start + size;
        self.peak = self.peak.max(self.bump);
        Some(self.base + start)
    }

    fn alloc_small(&mut self, c: usize) -> Option<usize> {
        let size = self.classes[c];
        let slab = match self.partial[c].last() {
            Some(&s) => s,
            None => {
                let s = match self.free_slabs.pop() {
                    Some(s) => s,
                    None => self.carve(SLAB, SLAB)?,
                };
                self.slabs.insert(
                    s,
                    Slab {
                        class: c,
                        live: 0,
                        free: Vec::new(),
                        next: 0,
                    },
                );
                self.partial[c].push(s);
                s
            }
        };
        let info = self.slabs.get_mut(&slab)?;
        let b = match info.free.pop() {
            Some(b) => b,
            None => {
                let b = slab + info.next;
                info.next += size;
                b
            }
        };
        info.live += 1;
        if info.free.is_empty() && info.next + size > SLAB {
            self.partial[c].pop();
        }
        Some(b)
    }

    fn take_large(&mut self, size: usize) -> Option<usize> {
        let (&have, _) = self.large.range(size..).next()?;
        let v = self.large.get_mut(&have)?;
        let b = v.pop()?;
        if v.is_empty() {
            self.large.remove(&have);
        }
        if have > size {
            self.large.entry(have - size).or_default().push(b + size);
        }
        Some(b)
    }

    fn alloc(&mut self, n: usize) -> *mut c_void {
        let (class, size) = self.block_size(n);
        let block = match class {
            Some(c) => self.alloc_small(c),
            None => self.take_large(size).or_else(|| self.carve(size, PAGE)),
        };
        let Some(block) = block else {
            return std::ptr::null_mut();
        };
        self.in_use += size;
        // SAFETY: `block..block+size` is inside the region (carved or handed out before),
        // 16-aligned, and owned by no one else now.
        unsafe { *(block as *mut usize) = size };
        (block + HDR) as *mut c_void
    }

    /// # Safety
    /// `p` came from `alloc` and was not freed since.
    unsafe fn size_of(&self, p: *mut c_void) -> usize {
        // SAFETY: per the contract, a header written by `alloc` is just before `p`.
        unsafe { *((p as usize - HDR) as *const usize) }
    }

    fn discard(&self, addr: usize, len: usize) {
        if let Some(r) = REGION.get() {
            let off = addr - self.base;
            let _ = r.discard(off..off + len);
        } else {
            // `--heap mmap`: a plain mapping; its free pages go back to the kernel, as
            // the region's are discarded.
            // SAFETY: `addr..addr+len` is a page-aligned range of the heap's own mapping
            // that holds no live block; MADV_DONTNEED only drops its pages.
            unsafe { libc::madvise(addr as *mut c_void, len, libc::MADV_DONTNEED) };
        }
    }

    /// # Safety
    /// `p` came from `alloc` and was not freed since.
    unsafe fn free(&mut self, p: *mut c_void) {
        // SAFETY: forwarded contract.
        let size = unsafe { self.size_of(p) };
        let block = p as usize - HDR;
        self.in_use -= size;
        if self.classes.binary_search(&size).is_ok() {
            let slab = block - (block - self.base) % SLAB;
            let Some(info) = self.slabs.get_mut(&slab) else {
                return;
            };
            let c = info.class;
            let was_full = info.free.is_empty() && info.next + self.classes[c] > SLAB;
            info.free.push(block);
            info.live -= 1;
            if info.live == 0 {
                // Empty: back to the slab pool, its memory discarded.
                self.slabs.remove(&slab);
                if !was_full {
                    self.partial[c].retain(|&s| s != slab);
                }
                self.free_slabs.push(slab);
                self.discard(slab, SLAB);
            } else if was_full {
                self.partial[c].push(slab);
            }
        } else {
            self.large.entry(size).or_default().push(block);
            if size >= 2 * PAGE {
                // Keep the header's page; the rest need not be kept.
                self.discard(block + PAGE, size - PAGE);
            }
        }
    }
}

static HEAP: Mutex<Option<Heap>> = Mutex::new(None);
static REGION: OnceLock<Region> = OnceLock::new();

fn heap() -> std::sync::MutexGuard<'static, Option<Heap>> {
    HEAP.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    match (usize::try_from(n), heap().as_mut()) {
        (Ok(n), Some(h)) => h.alloc(n),
        _ => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    if let Some(h) = heap().as_mut() {
        // SAFETY: SQLite frees only what its xMalloc/xRealloc returned, once.
        unsafe { h.free(p) };
    }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    match heap().as_ref() {
        // SAFETY: SQLite asks the size only of live allocations.
        Some(h) if !p.is_null() => (unsafe { h.size_of(p) } - HDR) as c_int,
        _ => 0,
    }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    let Ok(n) = usize::try_from(n) else {
        return std::ptr::null_mut();
    };
    let mut g = heap();
    let Some(h) = g.as_mut() else {
        return std::ptr::null_mut();
    };
    // SAFETY: `p` is a live allocation of SQLite's (xRealloc's contract).
    let old = unsafe { h.size_of(p) };
    if h.block_size(n).1 == old {
        return p;
    }
    let q = h.alloc(n);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live, distinct and at least min(old-HDR, n) long.
    unsafe {
        std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, (old - HDR).min(n));
        h.free(p);
    }
    q
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    match (usize::try_from(n), heap().as_ref()) {
        (Ok(n), Some(h)) => (h.block_size(n).1 - HDR) as c_int,
        _ => n,
    }
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

// ---- a little SQLite wrapper ----

struct Db(*mut ffi::sqlite3);

struct Stmt(*mut ffi::sqlite3_stmt);

impl Db {
    fn open() -> Result<Db, String> {
        let mut db = std::ptr::null_mut();
        // SAFETY: a NUL-terminated name and an out pointer.
        let rc = unsafe { ffi::sqlite3_open(c":memory:".as_ptr(), &mut db) };
        if rc != ffi::SQLITE_OK {
            return Err(format!("sqlite3_open: {rc}"));
        }
        Ok(Db(db))
    }

    fn err(&self) -> String {
        // SAFETY: the handle is open; sqlite3_errmsg returns a NUL-terminated string
        // that lives until the next call on the handle.
        unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.0)) }
            .to_string_lossy()
            .into_owned()
    }

    fn exec(&self, sql: &str) -> Result<(), String> {
        let c = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: an open handle and a NUL-terminated statement; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.0,
                c.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(format!("{sql}: {}", self.err()));
        }
        Ok(())
    }

    fn prepare(&self, sql: &str) -> Result<Stmt, String> {
        let c = CString::new(sql).map_err(|e| e.to_string())?;
        let mut st = std::ptr::null_mut();
        // SAFETY: an open handle, a NUL-terminated statement, an out pointer.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(self.0, c.as_ptr(), -1, &mut st, std::ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return Err(format!("{sql}: {}", self.err()));
        }
        Ok(Stmt(st))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: every statement has been finalized (they are dropped first).
        unsafe { ffi::sqlite3_close(self.0) };
    }
}

impl Stmt {
    fn bind_i64(&self, i: c_int, v: i64) {
        // SAFETY: a prepared statement; SQLite checks the index.
        unsafe { ffi::sqlite3_bind_int64(self.0, i, v) };
    }
    fn bind_text(&self, i: c_int, s: &str) {
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes before returning.
        unsafe {
            ffi::sqlite3_bind_text(
                self.0,
                i,
                s.as_ptr().cast(),
                s.len() as c_int,
                ffi::SQLITE_TRANSIENT(),
            )
        };
    }
    fn step(&self) -> Result<bool, String> {
        // SAFETY: a prepared statement.
        match unsafe { ffi::sqlite3_step(self.0) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(format!("sqlite3_step: {rc}")),
        }
    }
    fn reset(&self) {
        // SAFETY: a prepared statement.
        unsafe { ffi::sqlite3_reset(self.0) };
    }
    fn col_i64(&self, i: c_int) -> i64 {
        // SAFETY: a statement positioned on a row.
        unsafe { ffi::sqlite3_column_int64(self.0, i) }
    }
    fn col_text(&self, i: c_int) -> String {
        // SAFETY: a statement on a row; the text and its length are valid until the
        // next step/reset, and are copied out at once.
        unsafe {
            let p = ffi::sqlite3_column_text(self.0, i);
            let n = ffi::sqlite3_column_bytes(self.0, i) as usize;
            if p.is_null() {
                return String::new();
            }
            String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned()
        }
    }
    fn one_i64(&self) -> Result<i64, String> {
        let v = if self.step()? { self.col_i64(0) } else { -1 };
        self.reset();
        Ok(v)
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: a prepared statement, finalized once.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

// ---- the workload ----

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            files(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

fn hash(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn faults() -> (i64, i64) {
    // SAFETY: getrusage fills one `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above, `ru` is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_minflt, ru.ru_majflt)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HeapKind {
    /// The slab allocator on the zcache-uffd region.
    Region,
    /// glibc malloc (SQLite's default).
    Malloc,
    /// The slab allocator on a plain anonymous mapping (free pages `MADV_DONTNEED`ed).
    Mmap,
}

struct Args {
    heap: HeapKind,
    limit: Option<usize>,
    /// `RegionConfig::clean_copies`.
    clean_copies: zcache_uffd::CleanCopies,
    max_lines: usize,
    source: PathBuf,
    samples: usize,
    /// Bytes of address space for the heap (region or mapping).
    space: usize,
    /// Run (b): this process sets up zram and a cgroup and runs the workload in it.
    cgroup_limit: Option<usize>,
    zram_mib: u64,
    timeout_s: u64,
    /// Internal (the child of run (b)): limit the own cgroup to its usage + N pages.
    child_limit: Option<usize>,
    /// Internal: the zram device's mm_stat, printed at the end.
    zram_stat: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        heap: HeapKind::Region,
        limit: None,
        clean_copies: zcache_uffd::CleanCopies::DEFAULT,
        max_lines: 500_000,
        source: PathBuf::from("/usr/include"),
        samples: 20_000,
        space: 8 << 30,
        cgroup_limit: None,
        zram_mib: 512,
        timeout_s: 900,
        child_limit: None,
        zram_stat: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--heap" => {
                a.heap = match v()?.as_str() {
                    "region" => HeapKind::Region,
                    "malloc" => HeapKind::Malloc,
                    "mmap" => HeapKind::Mmap,
                    o => return Err(format!("--heap region|malloc|mmap, not {o}")),
                }
            }
            "--limit-pages" => a.limit = Some(num(v()?)?),
            "--clean-copies" => a.clean_copies = report::parse_clean_copies(&v()?)?,
            "--max-lines" => a.max_lines = num(v()?)?,
            "--samples" => a.samples = num(v()?)?,
            "--source" => a.source = PathBuf::from(v()?),
            "--space-mib" => a.space = num(v()?)? << 20,
            "--cgroup-limit-pages" => a.cgroup_limit = Some(num(v()?)?),
            "--zram-mib" => a.zram_mib = num(v()?)? as u64,
            "--timeout" => a.timeout_s = num(v()?)? as u64,
            "--child-limit-pages" => a.child_limit = Some(num(v()?)?),
            "--zram-stat" => a.zram_stat = Some(PathBuf::from(v()?)),
            o => return Err(format!("unknown argument {o}")),
        }
    }
    if a.cgroup_limit.is_some() && (a.heap == HeapKind::Region || a.limit.is_some()) {
        return Err(
            "--cgroup-limit-pages runs --heap mmap or malloc, without --limit-pages".into(),
        );
    }
    Ok(a)
}

/// What the workload takes from the text, found by a first read of the files (not
/// timed, nothing of the text kept): per file, its path and how many of its lines go
/// in; the expected answers.
struct Text {
    per_file: Vec<(PathBuf, i64)>,
    total: i64,
    includes: i64,
    distinct: i64,
    bytes: usize,
}

fn read_text(p: &Path) -> Option<String> {
    std::fs::read(p)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn scan(a: &Args) -> Text {
    let mut paths = Vec::new();
    files(&a.source, &mut paths);
    let mut t = Text {
        per_file: Vec::new(),
        total: 0,
        includes: 0,
        distinct: 0,
        bytes: 0,
    };
    let mut distinct = HashSet::new();
    'outer: for p in paths {
        let Some(text) = read_text(&p) else {
            continue;
        };
        let mut n = 0;
        for l in text.lines() {
            if t.total as usize == a.max_lines {
                t.per_file.push((p, n));
                break 'outer;
            }
            t.total += 1;
            n += 1;
            t.bytes += l.len();
            t.includes += i64::from(l.starts_with("#include"));
            distinct.insert(hash(l));
        }
        t.per_file.push((p, n));
    }
    t.distinct = distinct.len() as i64;
    t
}

fn config_malloc() -> Result<(), String> {
    let m = ffi::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: before any other SQLite call; SQLite copies the methods structure; the
    // functions above are valid for the whole process.
    let rc = unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_MALLOC,
            &m as *const ffi::sqlite3_mem_methods,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(format!("sqlite3_config(SQLITE_CONFIG_MALLOC): {rc}"));
    }
    Ok(())
}

fn install_heap(a: &Args) -> Result<(), String> {
    match a.heap {
        HeapKind::Malloc => Ok(()),
        HeapKind::Region => {
            let mut cfg = RegionConfig::new(a.space);
            cfg.resident_limit = a.limit;
            cfg.clean_copies = a.clean_copies;
            println!(
                "region: resident limit {:?} pages, clean copies {:?}",
                cfg.resident_limit, cfg.clean_copies
            );
            cfg.spill_dir = Some(std::env::temp_dir());
            cfg.handler_cpu = Some(0);
            let r = Region::new(cfg).map_err(|e| format!("region: {e}"))?;
            *heap() = Some(Heap::new(r.as_ptr() as usize, r.len()));
            let _ = REGION.set(r);
            // The pin of the handler (handler_cpu) pays off only with the owner on the
            // same CPU.
            // SAFETY: an all-zero cpu_set_t is empty; CPU_SET sets one bit;
            // sched_setaffinity(0, ..) reads the set for this thread.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
            }
            config_malloc()
        }
        HeapKind::Mmap => {
            // SAFETY: a fresh private anonymous mapping; no address hint.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    a.space,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(format!("mmap: {}", std::io::Error::last_os_error()));
            }
            // The mapping lives as long as the process.
            *heap() = Some(Heap::new(p as usize, a.space));
            config_malloc()
        }
    }
}

fn run(a: &Args) -> Result<(), String> {
    // First read: what the checks compare with (nothing of the text kept; the insert
    // reads the files again).
    let t0 = Instant::now();
    let text = scan(a);
    println!(
        "text: {} lines ({:.1} MiB) of {} files under {} (first read in {:.2} s; not kept, read again while inserting)",
        text.total,
        text.bytes as f64 / (1 << 20) as f64,
        text.per_file.len(),
        a.source.display(),
        t0.elapsed().as_secs_f64()
    );
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let n_samples = a.samples.min(text.total as usize);
    // (global line number, sample number), in line order.
    let mut want: Vec<(usize, usize)> = (0..n_samples)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % text.total as u64) as usize, k)
        })
        .collect();
    want.sort_unstable();
    let mut samples: Vec<(i64, i64, String)> = vec![(0, 0, String::new()); n_samples];
    if let Some(pages) = a.child_limit {
        cgroup::limit_own_cgroup(pages)?;
    }
    install_heap(a)?;

    let (min0, maj0) = faults();
    let start = Instant::now();
    let db = Db::open()?;
    db.exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4000000; PRAGMA temp_store=MEMORY")?;
    db.exec("CREATE TABLE files(id INTEGER PRIMARY KEY, path TEXT); CREATE TABLE lines(id INTEGER PRIMARY KEY, file INTEGER, lineno INTEGER, text TEXT)")?;
    db.exec("BEGIN")?;
    {
        let ins = db.prepare("INSERT INTO files VALUES(?, ?)")?;
        for (i, (p, _)) in text.per_file.iter().enumerate() {
            ins.bind_i64(1, i as i64);
            ins.bind_text(2, &p.display().to_string());
            ins.step()?;
            ins.reset();
        }
        let ins = db.prepare("INSERT INTO lines(file, lineno, text) VALUES(?, ?, ?)")?;
        let (mut g, mut w) = (0usize, 0usize);
        for (fid, (p, n)) in text.per_file.iter().enumerate() {
            let body = read_text(p).ok_or(format!("{} cannot be read again", p.display()))?;
            for (i, l) in body.lines().take(*n as usize).enumerate() {
                ins.bind_i64(1, fid as i64);
                ins.bind_i64(2, i as i64 + 1);
                ins.bind_text(3, l);
                ins.step()?;
                ins.reset();
                while w < want.len() && want[w].0 == g {
                    samples[want[w].1] = (fid as i64, i as i64 + 1, l.to_string());
                    w += 1;
                }
                g += 1;
            }
        }
        if g as i64 != text.total {
            return Err(format!(
                "read {g} lines again, {} the first time",
                text.total
            ));
        }
    }
    db.exec("COMMIT")?;
    let t_insert = start.elapsed().as_secs_f64();
    let t = Instant::now();
    db.exec(
        "CREATE INDEX lines_text ON lines(text); CREATE INDEX lines_file ON lines(file, lineno)",
    )?;
    let t_index = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut wrong = 0u64;
    if db.prepare("SELECT COUNT(*) FROM lines")?.one_i64()? != text.total {
        wrong += 1;
    }
    let q = db.prepare("SELECT COUNT(*) FROM lines WHERE file = ?")?;
    for (i, (_, n)) in text.per_file.iter().enumerate() {
        q.bind_i64(1, i as i64);
        if q.one_i64()? != *n {
            wrong += 1;
        }
    }
    let q = db.prepare("SELECT text FROM lines WHERE file = ? AND lineno = ?")?;
    for (f, n, want) in &samples {
        q.bind_i64(1, *f);
        q.bind_i64(2, *n);
        let got = if q.step()? { Some(q.col_text(0)) } else { None };
        q.reset();
        if got.as_deref() != Some(want.as_str()) {
            wrong += 1;
        }
    }
    let inc =
        db.prepare("SELECT COUNT(*) FROM lines WHERE text >= '#include' AND text < '#includf'")?;
    if inc.one_i64()? != text.includes {
        wrong += 1;
    }
    let d = db.prepare("SELECT COUNT(DISTINCT text) FROM lines")?;
    // Distinct by a 64-bit hash on our side: a collision would make ours smaller.
    if d.one_i64()? != text.distinct {
        wrong += 1;
    }
    let t_query = t.elapsed().as_secs_f64();
    let wall = start.elapsed().as_secs_f64();
    let (min1, maj1) = faults();
    drop((q, inc, d));
    println!(
        "sqlite on {}: insert {t_insert:.2} s, index {t_index:.2} s, queries {t_query:.2} s ({} checks), wall {wall:.2} s; wrong answers {wrong}",
        match a.heap {
            HeapKind::Region => "the zcache-uffd region",
            HeapKind::Malloc => "malloc",
            HeapKind::Mmap => "a plain mapping",
        },
        2 + text.per_file.len() + samples.len() + 1
    );
    println!(
        "process page faults: minor {}, major {}",
        min1 - min0,
        maj1 - maj0
    );
    if let Some(h) = heap().as_ref() {
        println!(
            "heap: {:.1} MiB of the address space used at peak, {:.1} MiB in use",
            h.peak as f64 / (1 << 20) as f64,
            h.in_use as f64 / (1 << 20) as f64
        );
    }
    report::print_held(a.zram_stat.as_deref(), REGION.get())?;
    drop(db);
    if wrong != 0 {
        return Err(format!("{wrong} wrong answers"));
    }
    Ok(())
}

/// Run (b): this program again, `--heap mmap` (or malloc), in a memory cgroup swapping
/// to zram (`common/cgroup.rs`). The files are read here first, so that their page cache
/// is charged to this (root) cgroup, not the child's.
fn run_b(a: &Args, pages: usize) -> Result<(), String> {
    let _ = scan(a);
    let heap = if a.heap == HeapKind::Malloc {
        "malloc"
    } else {
        "mmap"
    };
    let args: Vec<std::ffi::OsString> = vec![
        "--heap".into(),
        heap.into(),
        "--max-lines".into(),
        a.max_lines.to_string().into(),
        "--samples".into(),
        a.samples.to_string().into(),
        "--source".into(),
        a.source.clone().into(),
        "--space-mib".into(),
        (a.space >> 20).to_string().into(),
    ];
    cgroup::run_in_cgroup("sqlite", args, pages, a.zram_mib, a.timeout_s)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(pages) = a.cgroup_limit {
        return match run_b(&a, pages) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        };
    }
    if a.heap == HeapKind::Region
        && let Err(why) = zcache_uffd::available()
    {
        println!("SKIP: userfaultfd unavailable: {why}");
        return ExitCode::SUCCESS;
    }
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
