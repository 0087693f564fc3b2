//! Same-filled page detection: one 64-bit word repeated over the whole page.

use crate::{PAGE_SIZE, Page};

/// Bytes compared per early-exit step: 4 cache lines. Inside a block the comparison is
/// branch-free (OR of XORs), which the compiler turns into vector code; the early exit
/// costs one branch per block.
const BLOCK: usize = 256;

/// The word repeated over the whole page, if the page is one native-endian `u64`
/// repeated (all-zero pages included, word 0); `None` otherwise.
///
/// Runs before any compression on every store, so it is built to reject fast: it first
/// compares the first word with the last (as zswap does: most pages that are not
/// same-filled differ there), then the first 256-byte block, and only then scans the rest
/// in 256-byte blocks of branch-free vector compares.
#[inline]
pub fn same_filled(page: &Page) -> Option<u64> {
    let (words, _) = page.as_chunks::<8>();
    let (first, last) = match (words.first(), words.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return None,
    };
    if first != last {
        return None;
    }
    let word = u64::from_ne_bytes(first);
    let (blocks, _) = page.as_chunks::<BLOCK>();
    for block in blocks {
        if !block_is(block, word) {
            return None;
        }
    }
    Some(word)
}

/// Whether every word of `block` equals `word`, without a branch per word.
#[inline(always)]
fn block_is(block: &[u8; BLOCK], word: u64) -> bool {
    let (words, _) = block.as_chunks::<8>();
    let mut diff = 0u64;
    for w in words {
        diff |= u64::from_ne_bytes(*w) ^ word;
    }
    diff == 0
}

/// Fills `page` with `word` repeated (native-endian): the inverse of [`same_filled`].
#[inline]
pub fn fill_page(page: &mut Page, word: u64) {
    if word == 0 {
        page.fill(0);
        return;
    }
    let bytes = word.to_ne_bytes();
    let (words, _) = page.as_chunks_mut::<8>();
    for w in words {
        *w = bytes;
    }
}

const _: () = assert!(PAGE_SIZE.is_multiple_of(BLOCK));
