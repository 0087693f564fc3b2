//! Where pages come from: the embedded sample, a corpus directory, or files read as
//! page-cache pages. (Process capture is in `procfs`.)

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zcache_testdata::{Corpus, Record};

use crate::error::CliError;
use crate::progress::Progress;

/// Size of a page: the page size zcache was built for (4 KiB, or 16/64 KiB with the
/// features page-16k / page-64k).
pub const PAGE_SIZE: usize = zcache::PAGE_SIZE;

/// Size of a corpus page (and of this kernel's pages, which `capture` reads).
pub const CORPUS_PAGE: usize = zcache_testdata::PAGE_SIZE;

/// One page.
pub type Page = [u8; PAGE_SIZE];

/// `pages.idx` flag: the page is all zero.
pub const FLAG_ZERO: u16 = 1;
/// `pages.idx` flag: the page is one 8-byte word repeated.
pub const FLAG_SAME: u16 = 2;

/// Source id written for private anonymous pages captured from a process.
pub const SOURCE_PROCESS: u16 = 100;
/// Source id written for pages of files.
pub const SOURCE_FILES: u16 = 101;

/// The 1024-page sample shipped in `testdata/sample`, embedded in the binary.
static SAMPLE_PAGES: &[u8] = include_bytes!("../../../testdata/sample/pages.bin");
static SAMPLE_INDEX: &[u8] = include_bytes!("../../../testdata/sample/pages.idx");

/// A named object (a mapping of a process, a file) that pages belong to.
#[derive(Clone, Debug)]
pub struct ObjectName {
    /// `object_id` of its pages' records.
    pub id: u32,
    /// Their `source_id`.
    pub source: u16,
    /// What it is.
    pub name: String,
}

/// A set of pages to replay, with their index records.
pub struct PageSet {
    /// One line saying where the pages came from.
    pub description: String,
    /// The pages.
    pub pages: Vec<Page>,
    /// One record per page.
    pub records: Vec<Record>,
    /// Sources: (id, name).
    pub sources: Vec<(u16, String)>,
    /// Objects, when known (captures); empty for a loaded corpus.
    pub objects: Vec<ObjectName>,
}

impl PageSet {
    /// The corpus at [`PAGE_SIZE`] (`Corpus::joined`: at 16 or 64 KiB each page is
    /// consecutive 4 KiB pages of one object).
    fn from_corpus(corpus: &Corpus, description: String) -> PageSet {
        let joined = corpus.joined::<PAGE_SIZE>();
        let description = if PAGE_SIZE == CORPUS_PAGE {
            description
        } else {
            format!(
                "{description}, as {} pages of {} KiB (each {} consecutive 4 KiB pages of one object)",
                joined.len(),
                PAGE_SIZE / 1024,
                PAGE_SIZE / CORPUS_PAGE
            )
        };
        PageSet {
            description,
            pages: joined.pages().to_vec(),
            records: joined.records().to_vec(),
            sources: Vec::new(),
            objects: Vec::new(),
        }
    }

    /// Number of pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Keeps at most `max` pages, evenly spaced (all when `None`).
    pub fn subset(self, max: Option<u64>) -> PageSet {
        let total = self.pages.len() as u64;
        match max {
            Some(m) if m < total => {
                let keep = |i: usize| selected(i as u64, total, Some(m));
                let pages = self.pages.into_iter().enumerate().filter(|(i, _)| keep(*i));
                let records = self
                    .records
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep(*i));
                PageSet {
                    description: format!(
                        "{} ({m} evenly spaced pages of {total})",
                        self.description
                    ),
                    pages: pages.map(|(_, p)| p).collect(),
                    records: records.map(|(_, r)| r).collect(),
                    sources: self.sources,
                    objects: self.objects,
                }
            }
            _ => self,
        }
    }

    /// Total bytes of the pages.
    pub fn bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE_SIZE as u64
    }
}

/// The sample embedded in the binary.
pub fn embedded_sample() -> Result<PageSet, CliError> {
    let corpus = Corpus::from_bytes(SAMPLE_PAGES, SAMPLE_INDEX)
        .map_err(|e| CliError::runtime(format!("embedded sample: {e}")))?;
    let description = format!(
        "embedded sample (testdata/sample): {} pages of real programs' anonymous memory and files",
        corpus.len()
    );
    Ok(PageSet::from_corpus(&corpus, description))
}

/// A corpus directory (`pages.bin` + `pages.idx`).
pub fn corpus_dir(dir: &Path) -> Result<PageSet, CliError> {
    if !dir.is_dir() {
        return Err(CliError::input(format!(
            "corpus {}: not a directory (expected a directory holding pages.bin and pages.idx)",
            dir.display()
        )));
    }
    let corpus =
        Corpus::load(dir).map_err(|e| CliError::input(format!("corpus {}: {e}", dir.display())))?;
    let description = format!("corpus {}: {} pages", dir.display(), corpus.len());
    Ok(PageSet::from_corpus(&corpus, description))
}

/// The `pages.idx` flags of a page.
pub fn flags_of(page: &Page) -> u16 {
    match zcomp::same_filled(page) {
        Some(0) => FLAG_ZERO | FLAG_SAME,
        Some(_) => FLAG_SAME,
        None => 0,
    }
}

/// Whether item `i` of `total` is kept when at most `keep` are kept, evenly spaced.
pub fn selected(i: u64, total: u64, keep: Option<u64>) -> bool {
    match keep {
        Some(k) if k < total => {
            let (i, total, k) = (u128::from(i), u128::from(total), u128::from(k));
            (i + 1) * k / total > i * k / total
        }
        _ => true,
    }
}

/// A regular file found under the named paths.
struct FoundFile {
    path: PathBuf,
    pages: u64,
}

/// Reads files (directories walked recursively, symbolic links inside them not
/// followed) as page-cache pages: page `k` of a file is bytes `PAGE_SIZE k ..`, the last one
/// zero-padded. Files named on the command line must be readable; unreadable files found
/// inside directories are skipped and counted.
pub fn files(
    paths: &[PathBuf],
    max_pages: Option<u64>,
    progress: &Progress,
) -> Result<PageSet, CliError> {
    let mut found = Vec::new();
    let mut skipped = 0u64;
    for p in paths {
        let meta = fs::metadata(p)
            .map_err(|e| CliError::input(format!("cannot read {}: {}", p.display(), io_msg(&e))))?;
        if meta.is_dir() {
            walk(p, &mut found, &mut skipped);
        } else if meta.is_file() {
            File::open(p).map_err(|e| {
                CliError::input(format!("cannot read {}: {}", p.display(), io_msg(&e)))
            })?;
            found.push(FoundFile {
                path: p.clone(),
                pages: meta.len().div_ceil(PAGE_SIZE as u64),
            });
        } else {
            return Err(CliError::input(format!(
                "{}: not a regular file or directory",
                p.display()
            )));
        }
    }
    let total: u64 = found.iter().map(|f| f.pages).sum();
    let keep = max_pages.map_or(total, |m| m.min(total));
    let bar = progress.bar(keep, "reading files");
    let mut set = PageSet {
        description: String::new(),
        pages: Vec::new(),
        records: Vec::new(),
        sources: vec![(SOURCE_FILES, "files".to_string())],
        objects: Vec::new(),
    };
    let mut global = 0u64;
    let mut files_used = 0u32;
    for f in &found {
        // Pages are counted from the listing: a file that grew since is read up to its
        // listed size, one that shrank up to its end.
        let first = global;
        global += f.pages;
        let wanted: Vec<u64> = (0..f.pages)
            .filter(|&k| selected(first + k, total, max_pages))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let file = match File::open(&f.path) {
            Ok(file) => file,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        let object_id = files_used;
        let mut got_any = false;
        for k in wanted {
            let mut page = [0u8; PAGE_SIZE];
            let n = match read_page_at(&file, &mut page, k * PAGE_SIZE as u64) {
                Ok(n) => n,
                Err(_) => {
                    skipped += 1;
                    break;
                }
            };
            if n == 0 {
                break;
            }
            set.records.push(Record {
                source_id: SOURCE_FILES,
                flags: flags_of(&page),
                object_id,
                page_index: k,
            });
            set.pages.push(page);
            got_any = true;
            bar.inc(1);
        }
        if got_any {
            set.objects.push(ObjectName {
                id: object_id,
                source: SOURCE_FILES,
                name: f.path.display().to_string(),
            });
            files_used += 1;
        }
    }
    bar.finish_and_clear();
    if set.pages.is_empty() {
        return Err(CliError::input(format!(
            "no page to analyse: the {} named file(s) hold no readable data",
            paths.len()
        )));
    }
    set.description = format!(
        "{} pages of {} file(s) read as page-cache pages{}{}",
        set.len(),
        files_used,
        if max_pages.is_some_and(|m| m < total) {
            format!(" (evenly spaced from {total})")
        } else {
            String::new()
        },
        if skipped > 0 {
            format!("; {skipped} unreadable file(s) skipped")
        } else {
            String::new()
        }
    );
    Ok(set)
}

fn walk(dir: &Path, found: &mut Vec<FoundFile>, skipped: &mut u64) {
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => {
            *skipped += 1;
            return;
        }
    };
    entries.sort();
    for p in entries {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, found, skipped),
            Ok(m) if m.is_file() => found.push(FoundFile {
                pages: m.len().div_ceil(PAGE_SIZE as u64),
                path: p,
            }),
            Ok(_) => {}
            Err(_) => *skipped += 1,
        }
    }
}

/// Reads the page at `offset` until `buf` is full or the end of the file; returns the
/// bytes read (the rest of `buf` keeps its zeros).
fn read_page_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An I/O error as a short lower-case message, without the "(os error N)" suffix.
pub fn io_msg(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_sample_is_testdata_sample() {
        let s = embedded_sample().expect("sample");
        let c = Corpus::sample().joined::<PAGE_SIZE>();
        // 1024 pages at 4 KiB; its runs of one object at 16 and 64 KiB.
        assert_eq!(
            s.len(),
            [1024, 195, 33][PAGE_SIZE.trailing_zeros() as usize / 2 - 6]
        );
        assert_eq!(s.pages, c.pages());
        assert_eq!(s.records, c.records());
    }

    #[test]
    fn even_selection_keeps_exactly_the_asked_count() {
        for (total, keep) in [(10u64, 3u64), (1000, 1), (7, 7), (7, 100), (1 << 20, 999)] {
            let n = (0..total)
                .filter(|&i| selected(i, total, Some(keep)))
                .count() as u64;
            assert_eq!(n, keep.min(total), "{total} {keep}");
        }
        assert!((0..5).all(|i| selected(i, 5, None)));
    }

    #[test]
    fn flags_follow_the_corpus_convention() {
        let mut p = [0u8; PAGE_SIZE];
        assert_eq!(flags_of(&p), FLAG_ZERO | FLAG_SAME);
        zcomp::fill_page(&mut p, 0x0102_0304_0506_0708);
        assert_eq!(flags_of(&p), FLAG_SAME);
        p[100] ^= 1;
        assert_eq!(flags_of(&p), 0);
        // And agree with the sample's own flags.
        let s = embedded_sample().expect("sample");
        for (page, rec) in s.pages.iter().zip(&s.records) {
            assert_eq!(flags_of(page), rec.flags, "{rec:?}");
        }
    }

    #[test]
    fn files_become_zero_padded_pages() {
        let dir = std::env::temp_dir().join(format!("zcache-cli-input-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).expect("mkdir");
        let len = PAGE_SIZE + 904;
        let a: Vec<u8> = (0..len as u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(dir.join("a"), &a).expect("write");
        fs::write(dir.join("sub/empty"), b"").expect("write");
        fs::write(dir.join("sub/b"), b"hello").expect("write");
        let set = files(std::slice::from_ref(&dir), None, &Progress::hidden()).expect("files");
        assert_eq!(set.len(), 3);
        assert_eq!(&set.pages[0][..], &a[..PAGE_SIZE]);
        assert_eq!(&set.pages[1][..len - PAGE_SIZE], &a[PAGE_SIZE..]);
        assert!(set.pages[1][len - PAGE_SIZE..].iter().all(|&b| b == 0));
        assert_eq!(&set.pages[2][..5], b"hello");
        assert_eq!(
            set.records
                .iter()
                .map(|r| (r.object_id, r.page_index))
                .collect::<Vec<_>>(),
            vec![(0, 0), (0, 1), (1, 0)]
        );
        assert_eq!(set.objects.len(), 2);
        let sample = embedded_sample().expect("sample");
        let n = sample.len();
        let sub = sample.subset(Some(20));
        assert_eq!((sub.pages.len(), sub.records.len()), (20, 20));
        assert!(
            sub.description
                .contains(&format!("20 evenly spaced pages of {n}"))
        );
        let one = files(&[dir.join("a")], Some(1), &Progress::hidden()).expect("files");
        assert_eq!(one.len(), 1);
        assert!(files(&[dir.join("missing")], None, &Progress::hidden()).is_err());
        assert!(files(&[dir.join("sub/empty")], None, &Progress::hidden()).is_err());
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
