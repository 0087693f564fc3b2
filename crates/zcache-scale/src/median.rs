//! The row of medians that ends a sweep's rounds of one size and setup.

use crate::Row;

/// The median of a sequence (the mean of the middle two for an even count).
pub(crate) fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The row of medians of `rounds` (rows of one size and setup): each timing, ratio and
/// cost beyond is the median of the rounds' own (a ratio is the median of the rounds'
/// ratios, not a ratio of medians); the metadata and counts are the first round's (every
/// round draws the same pages and keys; the metadata may still differ by a few tenths of
/// a byte a page, where the heap placed a zspage's frames farther than any of its
/// class's frame-table bases reach, and its row turned wide); the failures are summed,
/// so that none is hidden. `None` for no rows.
pub fn median(rounds: &[Row]) -> Option<Row> {
    let first = rounds.first()?;
    let m = |f: fn(&Row) -> f64| median_of(rounds.iter().map(f).collect());
    Some(Row {
        store_us: m(|r| r.store_us),
        compress_us: m(|r| r.compress_us),
        store_vs_bare: m(|r| r.store_vs_bare),
        store_beyond_us: m(|r| r.store_beyond_us),
        load_us: m(|r| r.load_us),
        decompress_us: m(|r| r.decompress_us),
        load_vs_bare: m(|r| r.load_vs_bare),
        load_beyond_us: m(|r| r.load_beyond_us),
        invalidate_us: m(|r| r.invalidate_us),
        mismatches: rounds.iter().map(|r| r.mismatches).sum(),
        pages_after_invalidate: rounds.iter().map(|r| r.pages_after_invalidate).sum(),
        frames_after_invalidate: rounds.iter().map(|r| r.frames_after_invalidate).sum(),
        round: 0,
        median_of: rounds.len() as u32,
        ..first.clone()
    })
}
