//! Property tests: random pages round-trip through every algorithm; mutated, truncated
//! and random inputs give every decompressor an error or a page, never a panic.

use proptest::prelude::*;
use zcomp::{
    Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN, PAGE_SIZE, Page, fill_page,
    same_filled,
};

/// Pages live on the heap: at 64 KiB, proptest's copies of by-value pages overflow a
/// test thread's stack in debug builds.
type BoxPage = Box<Page>;

fn to_page(v: Vec<u8>) -> BoxPage {
    v.into_boxed_slice().try_into().expect("a page")
}

fn zeroed() -> BoxPage {
    to_page(vec![0u8; PAGE_SIZE])
}

/// Pages of the kinds a cache sees: random (incompressible), same-filled, same-filled
/// but for a few bytes, low-entropy, sparse, and repeated-pattern pages.
fn page() -> impl Strategy<Value = BoxPage> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), PAGE_SIZE).prop_map(to_page),
        any::<u64>().prop_map(|w| {
            let mut p = zeroed();
            fill_page(&mut p, w);
            p
        }),
        (
            any::<u64>(),
            prop::collection::vec((0..PAGE_SIZE, any::<u8>()), 1..4)
        )
            .prop_map(|(w, edits)| {
                let mut p = zeroed();
                fill_page(&mut p, w);
                for (i, b) in edits {
                    p[i] = b;
                }
                p
            }),
        prop::collection::vec(0u8..4, PAGE_SIZE).prop_map(to_page),
        prop::collection::vec((0..PAGE_SIZE, any::<u8>()), 0..64).prop_map(|edits| {
            let mut p = zeroed();
            for (i, b) in edits {
                p[i] = b;
            }
            p
        }),
        (prop::collection::vec(any::<u8>(), 1..300), 0..PAGE_SIZE).prop_map(|(pat, shift)| {
            let mut p = zeroed();
            for (i, b) in p.iter_mut().enumerate() {
                *b = pat[(i + shift) % pat.len()];
            }
            p
        }),
    ]
}

fn compressors() -> Vec<AnyCompressor> {
    Algorithm::AVAILABLE
        .iter()
        .map(|&a| AnyCompressor::new(a).expect("compressor"))
        .collect()
}

/// How to damage a valid compressed page.
#[derive(Debug, Clone)]
enum Damage {
    /// Flip these bits (positions taken modulo the length in bits).
    Flips(Vec<usize>),
    /// Keep only this many bytes (modulo the length: always strictly shorter).
    Truncate(usize),
    /// Overwrite a range with these bytes (start modulo the length).
    Overwrite(usize, Vec<u8>),
    /// Append these bytes.
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        prop::collection::vec(any::<usize>(), 1..8).prop_map(Damage::Flips),
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(at, b)| Damage::Overwrite(at, b)),
        prop::collection::vec(any::<u8>(), 1..16).prop_map(Damage::Append),
    ]
}

fn apply(d: &Damage, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    match d {
        Damage::Flips(bits) => {
            for &b in bits {
                let b = b % (v.len() * 8);
                v[b / 8] ^= 1 << (b % 8);
            }
        }
        Damage::Truncate(n) => v.truncate(n % v.len()),
        Damage::Overwrite(at, bytes) => {
            let at = at % v.len();
            for (i, &b) in bytes.iter().enumerate() {
                if let Some(x) = v.get_mut(at + i) {
                    *x = b;
                }
            }
        }
        Damage::Append(bytes) => v.extend_from_slice(bytes),
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn random_pages_round_trip(page in page()) {
        let mut scratch = vec![0u8; MAX_COMPRESSED_LEN];
        let mut back = zeroed();
        for mut c in compressors() {
            let a = c.algorithm();
            let len = c.compress(&page, &mut scratch).unwrap();
            prop_assert!(len <= a.max_compressed_len(), "{} {}", a, len);
            back.fill(!page[0]);
            prop_assert_eq!(c.decompress(&scratch[..len], &mut back), Ok(()));
            prop_assert!(*back == *page, "{} changed the page", a);
        }
        // The detector agrees with the plain definition.
        let naive = page.chunks_exact(8).all(|w| w == &page[..8]);
        prop_assert_eq!(same_filled(&page).is_some(), naive);
        if let Some(w) = same_filled(&page) {
            prop_assert_eq!(&w.to_ne_bytes()[..], &page[..8]);
        }
    }

    #[test]
    fn damaged_streams_give_errors_or_pages_never_panics(
        page in page(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let mut scratch = vec![0u8; MAX_COMPRESSED_LEN];
        let mut out = zeroed();
        for mut c in compressors() {
            let a = c.algorithm();
            let len = c.compress(&page, &mut scratch).unwrap();
            for d in &damages {
                let bad = apply(d, &scratch[..len]);
                match c.decompress(&bad, &mut out) {
                    Ok(()) => {
                        // Truncation always loses the end of the stream; appended bytes
                        // are never part of the page's stream.
                        prop_assert!(
                            !matches!(d, Damage::Truncate(_) | Damage::Append(_)),
                            "{} accepted {:?}", a, d
                        );
                    }
                    Err(e) => prop_assert_eq!(e.algorithm(), a),
                }
            }
            // The compressor still works after rejecting bad input.
            prop_assert_eq!(c.decompress(&scratch[..len], &mut out), Ok(()));
            prop_assert!(*out == *page);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn garbage_gives_errors_or_pages_never_panics(
        garbage in prop::collection::vec(any::<u8>(), 0..5000),
    ) {
        let mut out = zeroed();
        for mut c in compressors() {
            let a = c.algorithm();
            if let Err(e) = c.decompress(&garbage, &mut out) {
                prop_assert_eq!(e.algorithm(), a);
            }
        }
    }
}
