//! Consumers of zcache, as three runnable examples (`examples/`) whose logic lives here
//! so `tests/scenarios.rs` can run it on smaller settings and check what it claims:
//!
//! * [`fs`]: cleancache under a small simulated file system: files read through a page
//!   cache that evicts clean pages into zcache and gets them back
//!   (`cargo run -p zcache-examples --example cleancache_fs`);
//! * [`swap`]: frontswap with a real swap file as the writeback target
//!   (`cargo run -p zcache-examples --example frontswap_swapfile`);
//! * [`hypervisor`]: a hypervisor serving three guests with Xen tmem-style pool
//!   operations (`cargo run -p zcache-examples --example hypervisor`).
//!
//! Page contents are real pages from the repository's corpus (`testdata/sample`): file
//! pages for the file system, anonymous memory for swap and guests.

pub mod fs;
pub mod hypervisor;
pub mod swap;

use zcache_testdata::Corpus;
use zpool::Page;

/// A small deterministic random number generator (xorshift64*), so runs repeat.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A skewed pick in `0..n`: low numbers are much more likely (about Zipf-like), as
    /// file and page popularity is.
    pub fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(a + 1);
        self.below(b + 1)
    }
}

/// Corpus sources that are file pages (see testdata/README.md).
pub const FILE_SOURCES: [u16; 3] = [6, 7, 9];

/// Pages of the corpus sample from the given sources, grouped by object (one group per
/// file or per process mapping), each group in page-index order.
pub fn corpus_objects(sources: &[u16]) -> Vec<Vec<Page>> {
    let corpus = Corpus::sample();
    let mut objs: std::collections::BTreeMap<(u16, u32), Vec<(u64, Page)>> = Default::default();
    for (rec, page) in corpus.records().iter().zip(corpus.pages()) {
        if sources.contains(&rec.source_id) {
            objs.entry((rec.source_id, rec.object_id))
                .or_default()
                .push((rec.page_index, *page));
        }
    }
    objs.into_values()
        .map(|mut v| {
            v.sort_by_key(|(i, _)| *i);
            v.into_iter().map(|(_, p)| p).collect()
        })
        .collect()
}

/// Anonymous-memory pages of the corpus sample (what swap sees).
pub fn anon_pages() -> Vec<Page> {
    let corpus = Corpus::sample();
    corpus
        .records()
        .iter()
        .zip(corpus.pages())
        .filter(|(r, _)| !FILE_SOURCES.contains(&r.source_id))
        .map(|(_, p)| *p)
        .collect()
}

/// `page` with `tag` written over its first 8 bytes: a distinct page per tag, so a
/// load that returned another slot's page would be caught.
pub fn tagged(page: &Page, tag: u64) -> Page {
    let mut p = *page;
    p[..8].copy_from_slice(&tag.to_le_bytes());
    p
}

/// A percentage, for reports.
pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
