//! Capture of a running process's private anonymous pages through /proc:
//! `/proc/PID/maps` lists the mappings, `/proc/PID/pagemap` says which pages are present
//! in memory and which of those are anonymous, `/proc/PID/mem` gives their bytes.
//!
//! A page is taken when its mapping is private and readable, the page is present (not
//! swapped out, not never touched) and pagemap does not flag it as a file page or
//! shared-anonymous page (bit 61). That is what would go to swap, hence to frontswap:
//! anonymous mappings, the heap, stacks, and the copied-on-write pages of private file
//! mappings (a program's `.data`). Pages still mapped to the shared zero page are present
//! and anonymous too: they count as same-filled.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use zcache_testdata::Record;

use crate::error::CliError;
use crate::input::{ObjectName, PAGE_SIZE, PageSet, SOURCE_PROCESS, flags_of, io_msg, selected};
use crate::progress::Progress;

/// Pagemap bit 63: the page is present in RAM.
const PM_PRESENT: u64 = 1 << 63;
/// Pagemap bit 62: the page is swapped out.
const PM_SWAPPED: u64 = 1 << 62;
/// Pagemap bit 61: file page or shared anonymous page.
const PM_FILE: u64 = 1 << 61;

/// Pagemap entries read per call.
const PAGEMAP_BATCH: u64 = 4096;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `rwxp`-style permissions.
    pub perms: String,
    /// Path or `[heap]`-style name; empty for anonymous mappings.
    pub path: String,
}

impl Mapping {
    /// Whether pages of this mapping can be private anonymous pages we can read.
    pub fn is_candidate(&self) -> bool {
        let p = self.perms.as_bytes();
        p.len() == 4
            && p[0] == b'r'
            && p[3] == b'p'
            && !matches!(
                self.path.as_str(),
                "[vsyscall]" | "[vvar]" | "[vvar_vclock]" | "[vdso]"
            )
    }
}

/// Parses `/proc/PID/maps`.
pub fn parse_maps(text: &str) -> Result<Vec<Mapping>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // The first five fields are separated by single spaces, the path is padded.
        let mut f = line.splitn(6, ' ');
        let (range, perms) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let path = f.nth(3).unwrap_or("").trim().to_string();
        let bad = || format!("maps line {}: cannot parse \"{line}\"", n + 1);
        let (a, b) = range.split_once('-').ok_or_else(bad)?;
        let start = u64::from_str_radix(a, 16).map_err(|_| bad())?;
        let end = u64::from_str_radix(b, 16).map_err(|_| bad())?;
        if end < start || perms.len() != 4 {
            return Err(bad());
        }
        out.push(Mapping {
            start,
            end,
            perms: perms.to_string(),
            path,
        });
    }
    Ok(out)
}

/// What a capture found besides the pages.
#[derive(Debug, Default, Clone, Copy)]
pub struct CaptureCounts {
    /// Present private anonymous pages found.
    pub found: u64,
    /// Pages swapped out (not read: reading them would swap them back in).
    pub swapped: u64,
    /// Present pages whose read failed (the mapping went away meanwhile).
    pub unreadable: u64,
    /// Mappings that gave pages.
    pub mappings: u64,
}

fn proc_file(pid: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

/// The error for a /proc file that could not be opened or read.
fn access_error(pid: u32, name: &str, e: &io::Error) -> CliError {
    match e.kind() {
        io::ErrorKind::NotFound => {
            CliError::input(format!("no process with PID {pid} (it has exited?)"))
        }
        io::ErrorKind::PermissionDenied => CliError::runtime(format!(
            "permission denied reading /proc/{pid}/{name}: capturing another process's pages \
             needs ptrace access to it (run as its user with kernel.yama.ptrace_scope=0, or as \
             root / with CAP_SYS_PTRACE)"
        )),
        _ => CliError::runtime(format!("cannot read /proc/{pid}/{name}: {}", io_msg(e))),
    }
}

/// Captures the present private anonymous pages of process `pid`.
pub fn capture(pid: u32, max_pages: Option<u64>, progress: &Progress) -> Result<PageSet, CliError> {
    if PAGE_SIZE != crate::input::CORPUS_PAGE {
        return Err(CliError::input(format!(
            "--pid reads this kernel's 4 KiB pages, and this zcache was built for {} KiB pages: \
             capture the process with a 4 KiB build (zcache capture --pid), then replay the \
             corpus here",
            PAGE_SIZE / 1024
        )));
    }
    if !PathBuf::from(format!("/proc/{pid}")).is_dir() {
        if !PathBuf::from("/proc/self").is_dir() {
            return Err(CliError::runtime(
                "/proc is not mounted: capturing a process needs Linux procfs",
            ));
        }
        return Err(CliError::input(format!("no process with PID {pid}")));
    }
    let maps_text = std::fs::read_to_string(proc_file(pid, "maps"))
        .map_err(|e| access_error(pid, "maps", &e))?;
    let maps =
        parse_maps(&maps_text).map_err(|m| CliError::runtime(format!("/proc/{pid}/maps: {m}")))?;
    let pagemap =
        File::open(proc_file(pid, "pagemap")).map_err(|e| access_error(pid, "pagemap", &e))?;
    let mem = File::open(proc_file(pid, "mem")).map_err(|e| access_error(pid, "mem", &e))?;
    // A process we may not trace can still let us open /proc/PID/mem (same user) but fail
    // the first read: probe one present page before scanning everything.
    let mut counts = CaptureCounts::default();
    let mut wanted: Vec<(usize, u64)> = Vec::new(); // (mapping, address)
    let mut entries = vec![0u8; (PAGEMAP_BATCH * 8) as usize];
    for (mi, m) in maps.iter().enumerate() {
        if !m.is_candidate() {
            continue;
        }
        let first = m.start / PAGE_SIZE as u64;
        let last = m.end / PAGE_SIZE as u64;
        let mut vpn = first;
        while vpn < last {
            let n = (last - vpn).min(PAGEMAP_BATCH);
            let buf = &mut entries[..(n * 8) as usize];
            match pagemap.read_exact_at(buf, vpn * 8) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(access_error(pid, "pagemap", &e));
                }
                // The mapping went away while we read: skip the rest of it.
                Err(_) => break,
            }
            for (k, e) in buf.chunks_exact(8).enumerate() {
                let e = u64::from_le_bytes(e.try_into().unwrap_or([0; 8]));
                if e & PM_SWAPPED != 0 {
                    counts.swapped += 1;
                } else if e & PM_PRESENT != 0 && e & PM_FILE == 0 {
                    wanted.push((mi, (vpn + k as u64) * PAGE_SIZE as u64));
                }
            }
            vpn += n;
        }
    }
    counts.found = wanted.len() as u64;
    if wanted.is_empty() {
        return Err(CliError::input(format!(
            "process {pid} has no private anonymous page in memory to capture"
        )));
    }
    let total = wanted.len() as u64;
    let keep = max_pages.map_or(total, |m| m.min(total));
    let bar = progress.bar(keep, &format!("reading process {pid}"));
    let mut set = PageSet {
        description: String::new(),
        pages: Vec::new(),
        records: Vec::new(),
        sources: vec![(SOURCE_PROCESS, format!("process {pid}"))],
        objects: Vec::new(),
    };
    let mut object_of_mapping: Vec<Option<u32>> = vec![None; maps.len()];
    let mut first_read = true;
    for (i, &(mi, addr)) in wanted.iter().enumerate() {
        if !selected(i as u64, total, max_pages) {
            continue;
        }
        let mut page = [0u8; PAGE_SIZE];
        match mem.read_exact_at(&mut page, addr) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(access_error(pid, "mem", &e));
            }
            Err(e) if first_read && e.raw_os_error() == Some(1) => {
                // EPERM on the first read: ptrace access refused.
                return Err(access_error(
                    pid,
                    "mem",
                    &io::Error::new(io::ErrorKind::PermissionDenied, e),
                ));
            }
            Err(_) => {
                counts.unreadable += 1;
                continue;
            }
        }
        first_read = false;
        let object_id = match object_of_mapping[mi] {
            Some(id) => id,
            None => {
                let id = set.objects.len() as u32;
                let m = &maps[mi];
                set.objects.push(ObjectName {
                    id,
                    source: SOURCE_PROCESS,
                    name: format!(
                        "process {pid} {:x}-{:x} {} {}",
                        m.start,
                        m.end,
                        m.perms,
                        if m.path.is_empty() { "[anon]" } else { &m.path }
                    ),
                });
                object_of_mapping[mi] = Some(id);
                id
            }
        };
        set.records.push(Record {
            source_id: SOURCE_PROCESS,
            flags: flags_of(&page),
            object_id,
            page_index: addr / PAGE_SIZE as u64,
        });
        set.pages.push(page);
        bar.inc(1);
    }
    bar.finish_and_clear();
    counts.mappings = set.objects.len() as u64;
    if set.pages.is_empty() {
        return Err(CliError::runtime(format!(
            "none of the {} present private anonymous pages of process {pid} could be read",
            counts.found
        )));
    }
    let mut d = format!(
        "process {pid}: {} private anonymous pages present in memory from {} mappings",
        set.len(),
        counts.mappings
    );
    if keep < total {
        d.push_str(&format!(" (evenly spaced from {total})"));
    }
    if counts.swapped > 0 {
        d.push_str(&format!("; {} swapped-out pages not read", counts.swapped));
    }
    if counts.unreadable > 0 {
        d.push_str(&format!("; {} unreadable pages skipped", counts.unreadable));
    }
    set.description = d;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse_with_padded_paths_and_spaces_in_names() {
        let text = "00400000-00452000 r--s 00000000 08:02 173521      /usr/bin/dbus-daemon\n\
                    00e03000-00e24000 rw-p 00000000 00:00 0                                  [heap]\n\
                    7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n\
                    7f0000001000-7f0000002000 rw-p 00001000 08:02 42   /tmp/a file (deleted)\n\
                    ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";
        let m = parse_maps(text).expect("parses");
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].start, 0x400000);
        assert_eq!(m[0].path, "/usr/bin/dbus-daemon");
        // Shared: never anonymous. (Private file mappings are candidates: pagemap then
        // keeps only their copied-on-write pages.)
        assert!(!m[0].is_candidate());
        assert_eq!(m[1].path, "[heap]");
        assert!(m[1].is_candidate());
        assert_eq!(m[2].path, "");
        assert!(m[2].is_candidate());
        assert_eq!(m[3].path, "/tmp/a file (deleted)");
        assert!(!m[4].is_candidate());
        assert!(parse_maps("zz-10 rw-p 0 0 0\n").is_err());
        assert!(parse_maps("10-0 rw-p 0 0 0\n").is_err());
    }

    #[test]
    #[cfg_attr(
        any(feature = "page-16k", feature = "page-64k"),
        ignore = "4 KiB builds only"
    )]
    fn a_missing_pid_is_an_input_error() {
        // PIDs are below 2^22 on Linux.
        let e = capture(u32::MAX - 1, None, &Progress::hidden())
            .err()
            .expect("fails");
        assert_eq!(e.code, crate::error::EXIT_INPUT);
        assert!(e.message.contains("no process"), "{}", e.message);
    }

    #[test]
    #[cfg_attr(
        any(feature = "page-16k", feature = "page-64k"),
        ignore = "4 KiB builds only"
    )]
    fn own_heap_pages_are_captured_when_proc_allows_it() {
        // A recognisable heap page of our own.
        let mut marker = vec![0u8; 64 * PAGE_SIZE];
        for (i, b) in marker.iter_mut().enumerate() {
            *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
        }
        match capture(std::process::id(), None, &Progress::hidden()) {
            Ok(set) => {
                assert!(!set.pages.is_empty());
                assert_eq!(set.pages.len(), set.records.len());
                let off = (PAGE_SIZE - marker.as_ptr() as usize % PAGE_SIZE) % PAGE_SIZE;
                let inner = &marker[off + PAGE_SIZE * 8..off + PAGE_SIZE * 9];
                assert!(
                    set.pages.iter().any(|p| &p[..] == inner),
                    "our own marker page was not captured"
                );
            }
            Err(e) if e.message.contains("permission denied") => {
                eprintln!("skipped: {e}");
            }
            Err(e) => panic!("capture of our own process failed: {e}"),
        }
        std::hint::black_box(&marker);
    }
}
