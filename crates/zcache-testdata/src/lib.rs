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

/// Page size of every corpus page.
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

/// A loaded corpus: pages and their index records, in file order.
#[derive(Clone)]
pub struct Corpus {
    pages: Vec<[u8; PAGE_SIZE]>,
    records: Vec<Record>,
}

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

    /// Number of pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether there is no page (never true for a loaded corpus).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The pages.
    pub fn pages(&self) -> &[[u8; PAGE_SIZE]] {
        &self.pages
    }

    /// The index records, one per page.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Pages with their records.
    pub fn iter(&self) -> impl Iterator<Item = (&Record, &[u8; PAGE_SIZE])> {
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
