//! Loads the real 4 KiB page corpus (`pages.bin` + `pages.idx`, format in
//! `testdata/README.md`) for tests, benches and tools. std only; never a dependency of a
//! library crate.
//!
//! ```
//! let sample = zcache_testdata::Corpus::sample();
//! assert_eq!(sample.len(), 1024);
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

/// Page size of every corpus page (the corpus is always 4 KiB pages; [`Corpus::joined`]
/// builds larger ones from them).
pub const PAGE_SIZE: usize = 4096;

/// One `pages.idx` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Source id (see the manifest).
    pub source_id: u16,
    /// Bit 0: all zero; bit 1: one 8-byte word repeated.
    pub flags: u16,
    /// Object id: with `page_index`, a natural tmem (oid, index) key.
    pub object_id: u32,
    /// Page index within the object.
    pub page_index: u64,
}

impl Record {
    /// Whether the corpus marks this page as same-filled (one repeated 8-byte word).
    pub fn same_filled(&self) -> bool {
        self.flags & 0b11 != 0
    }
}

/// Why a corpus could not be loaded.
#[derive(Debug)]
pub enum CorpusError {
    /// A file could not be read.
    Io(PathBuf, std::io::Error),
    /// `pages.bin` is not a whole number of pages.
    PagesNotAligned(usize),
    /// `pages.idx` is not a whole number of 16-byte records.
    IndexNotAligned(usize),
    /// Page and record counts differ.
    CountMismatch {
        /// Pages in `pages.bin`.
        pages: usize,
        /// Records in `pages.idx`.
        records: usize,
    },
    /// The corpus holds no page.
    Empty,
}

impl fmt::Display for CorpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorpusError::Io(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            CorpusError::PagesNotAligned(n) => {
                write!(f, "pages.bin is {n} bytes, not a multiple of {PAGE_SIZE}")
            }
            CorpusError::IndexNotAligned(n) => {
                write!(f, "pages.idx is {n} bytes, not a multiple of 16")
            }
            CorpusError::CountMismatch { pages, records } => write!(
                f,
                "pages.bin holds {pages} pages but pages.idx holds {records} records"
            ),
            CorpusError::Empty => f.write_str("the corpus holds no page"),
        }
    }
}

impl std::error::Error for CorpusError {}

/// Pages of `N` bytes and their index records, in file order: the corpus itself
/// ([`Corpus`], `N` = 4096) or the corpus at a larger page size ([`Joined`], built by
/// [`Corpus::joined`]).
#[derive(Clone)]
pub struct Pages<const N: usize> {
    pages: Vec<[u8; N]>,
    records: Vec<Record>,
}

/// A loaded corpus: 4 KiB pages and their index records, in file order.
pub type Corpus = Pages<PAGE_SIZE>;

/// Pages of `N` bytes (a multiple of 4096) built from a corpus by [`Corpus::joined`].
pub type Joined<const N: usize> = Pages<N>;

impl Corpus {
    /// Parses a corpus from the bytes of `pages.bin` and `pages.idx`.
    pub fn from_bytes(pages_bin: &[u8], pages_idx: &[u8]) -> Result<Corpus, CorpusError> {
        if !pages_bin.len().is_multiple_of(PAGE_SIZE) {
            return Err(CorpusError::PagesNotAligned(pages_bin.len()));
        }
        if !pages_idx.len().is_multiple_of(16) {
            return Err(CorpusError::IndexNotAligned(pages_idx.len()));
        }
        let n = pages_bin.len() / PAGE_SIZE;
        let m = pages_idx.len() / 16;
        if n != m {
            return Err(CorpusError::CountMismatch {
                pages: n,
                records: m,
            });
        }
        if n == 0 {
            return Err(CorpusError::Empty);
        }
        let pages = pages_bin
            .chunks_exact(PAGE_SIZE)
            .map(|c| <[u8; PAGE_SIZE]>::try_from(c).expect("exact chunk"))
            .collect();
        let records = pages_idx
            .chunks_exact(16)
            .map(|r| Record {
                source_id: u16::from_le_bytes([r[0], r[1]]),
                flags: u16::from_le_bytes([r[2], r[3]]),
                object_id: u32::from_le_bytes(r[4..8].try_into().expect("4 bytes")),
                page_index: u64::from_le_bytes(r[8..16].try_into().expect("8 bytes")),
            })
            .collect();
        Ok(Corpus { pages, records })
    }

    /// Loads `DIR/pages.bin` and `DIR/pages.idx`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Corpus, CorpusError> {
        let dir = dir.as_ref();
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| CorpusError::Io(p, e))
        };
        Corpus::from_bytes(&read("pages.bin")?, &read("pages.idx")?)
    }

    /// The repository's `testdata/` folder.
    pub fn testdata_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
    }

    /// The 1024-page sample shipped in `testdata/sample` (panics if the checkout lacks it).
    pub fn sample() -> Corpus {
        Corpus::load(Self::testdata_dir().join("sample")).expect("testdata/sample")
    }

    /// The 8368-page dev set shipped in `testdata/dev` (panics if the checkout lacks it).
    pub fn dev() -> Corpus {
        Corpus::load(Self::testdata_dir().join("dev")).expect("testdata/dev")
    }

    /// The corpus at page size `N` (4096, 16384, 65536, ...): each page is `N / 4096`
    /// consecutive corpus pages of one object (same source and object id, in file
    /// order, which is page-index order), so it holds real content of that object. An
    /// object's last pages that do not fill a whole `N`-byte page are left out. Each
    /// record is its first corpus page's, its flags recomputed for the joined bytes. At
    /// `N == 4096` this is the corpus itself.
    ///
    /// The dev set gives 8,368 pages at 4 KiB, 1,874 at 16 KiB (7,496 corpus pages) and
    /// 416 at 64 KiB (6,656 corpus pages).
    pub fn joined<const N: usize>(&self) -> Joined<N> {
        const { assert!(N >= PAGE_SIZE && N.is_multiple_of(PAGE_SIZE)) };
        let k = N / PAGE_SIZE;
        let mut pages = Vec::new();
        let mut records = Vec::new();
        let mut i = 0;
        while i + k <= self.len() {
            let first = self.records[i];
            let same_object = self.records[i..i + k]
                .iter()
                .all(|r| r.source_id == first.source_id && r.object_id == first.object_id);
            if !same_object {
                i += 1;
                continue;
            }
            let mut page = [0u8; N];
            for (j, chunk) in page.chunks_exact_mut(PAGE_SIZE).enumerate() {
                chunk.copy_from_slice(&self.pages[i + j]);
            }
            let w0 = &page[..8];
            // The corpus convention: a zero page is both zero-filled and same-filled.
            let flags = if page.iter().all(|&b| b == 0) {
                0b11
            } else if page.chunks_exact(8).all(|w| w == w0) {
                0b10
            } else {
                0
            };
            records.push(Record { flags, ..first });
            pages.push(page);
            i += k;
        }
        Pages { pages, records }
    }
}

/// The test set at page size `N`: the 1,024-page sample at 4 KiB; at larger sizes the
/// dev set joined ([`Corpus::joined`]: 1,874 pages at 16 KiB, 416 at 64 KiB), because
/// the sample has few runs of one object (195 pages at 16 KiB, 33 at 64 KiB). Panics if
/// the checkout lacks it.
pub fn test_pages<const N: usize>() -> Joined<N> {
    if N == PAGE_SIZE {
        Corpus::sample().joined::<N>()
    } else {
        Corpus::dev().joined::<N>()
    }
}

impl<const N: usize> Pages<N> {
    /// Number of pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether there is no page (never true for a loaded corpus; a joined one is empty
    /// if no object has `N / 4096` pages).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The pages.
    pub fn pages(&self) -> &[[u8; N]] {
        &self.pages
    }

    /// The index records, one per page (joined: the first corpus page's, flags
    /// recomputed).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Pages with their records.
    pub fn iter(&self) -> impl Iterator<Item = (&Record, &[u8; N])> {
        self.records.iter().zip(self.pages.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_loads_and_flags_match_contents() {
        let c = Corpus::sample();
        assert_eq!(c.len(), 1024);
        for (r, p) in c.iter() {
            let w0 = &p[..8];
            let same = p.chunks_exact(8).all(|w| w == w0);
            assert_eq!(r.same_filled(), same, "record {r:?}");
        }
    }

    #[test]
    fn joined_pages_are_consecutive_pages_of_one_object() {
        let c = Corpus::dev();
        let same = c.joined::<4096>();
        assert_eq!(same.len(), c.len());
        assert!(same.pages().iter().zip(c.pages()).all(|(a, b)| a == b));
        assert_eq!(same.records(), c.records());
        let j16 = c.joined::<16384>();
        let j64 = c.joined::<65536>();
        assert_eq!((j16.len(), j64.len()), (1874, 416));
        // Each joined page is a run of corpus pages of its first page's object.
        let mut at = 0;
        for (r, p) in j64.iter() {
            while (c.records()[at]
                != Record {
                    flags: c.records()[at].flags,
                    ..*r
                })
            {
                at += 1;
            }
            for j in 0..16 {
                assert_eq!(c.records()[at + j].object_id, r.object_id);
                assert_eq!(
                    &p[j * PAGE_SIZE..(j + 1) * PAGE_SIZE],
                    &c.pages()[at + j][..]
                );
            }
            let w0 = &p[..8];
            assert_eq!(r.same_filled(), p.chunks_exact(8).all(|w| w == w0));
            at += 16;
        }
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(matches!(
            Corpus::from_bytes(&[0; 100], &[0; 16]),
            Err(CorpusError::PagesNotAligned(100))
        ));
        assert!(matches!(
            Corpus::from_bytes(&[0; 4096], &[0; 15]),
            Err(CorpusError::IndexNotAligned(15))
        ));
        assert!(matches!(
            Corpus::from_bytes(&[0; 8192], &[0; 16]),
            Err(CorpusError::CountMismatch {
                pages: 2,
                records: 1
            })
        ));
        assert!(matches!(
            Corpus::from_bytes(&[], &[]),
            Err(CorpusError::Empty)
        ));
    }
}
