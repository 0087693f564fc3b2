//! Contracts of the public API: ids, names, bounds, policy, same-filled edge cases,
//! scratch-size checks and hand-made hostile streams.

use zcomp::{
    Algorithm, AnyCompressor, CompressError, Compressor, CompressorInitError, DecompressError,
    MAX_COMPRESSED_LEN, PAGE_SIZE, Page, StorePolicy, Verdict, fill_page, new_compressor,
    same_filled,
};

fn word_page(word: u64) -> Page {
    let mut p = [0u8; PAGE_SIZE];
    fill_page(&mut p, word);
    p
}

#[test]
fn ids_round_trip_fit_three_bits_and_are_never_zero() {
    for a in Algorithm::ALL {
        assert_eq!(Algorithm::from_id(a.id()), Some(a));
        assert!(a.id() != 0 && u32::from(a.id()) < 1 << Algorithm::ID_BITS);
        assert_eq!(u8::from(a), a.id());
    }
    assert_eq!(Algorithm::Lz4.id(), 1);
    assert_eq!(Algorithm::Deflate.id(), 2);
    assert_eq!(Algorithm::Lzo.id(), 3);
    assert_eq!(Algorithm::Zstd.id(), 4);
    for id in [0u8, 5, 7, 8, 255] {
        assert_eq!(Algorithm::from_id(id), None, "id {id}");
    }
    assert_eq!(Algorithm::default(), Algorithm::Lz4);
}

#[test]
fn names_parse_case_insensitively_and_unknown_names_list_the_known_ones() {
    for a in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(a.name()), Ok(a));
        assert_eq!(a.to_string(), a.name());
        assert_eq!(a.name().to_uppercase().parse::<Algorithm>(), Ok(a));
    }
    let e = Algorithm::from_name("lz77").unwrap_err();
    assert_eq!(e.name(), "lz77");
    let msg = e.to_string();
    assert!(msg.contains("\"lz77\""), "{msg}");
    for a in Algorithm::ALL {
        assert!(msg.contains(a.name()), "{msg}");
    }
    assert!(Algorithm::from_name("").is_err());
    assert!(Algorithm::from_name("lz4 ").is_err());
    // A long non-ASCII name is cut at a character boundary, and says so.
    let long = "é".repeat(40);
    let e = Algorithm::from_name(&long).unwrap_err();
    assert!(long.starts_with(e.name()) && e.name().len() <= 24 && !e.name().is_empty());
    assert!(e.to_string().contains("...\""));
}

#[test]
fn available_list_matches_what_can_be_built() {
    for a in Algorithm::ALL {
        assert_eq!(a.is_available(), Algorithm::AVAILABLE.contains(&a));
        match new_compressor(a) {
            Ok(c) => {
                assert!(a.is_available());
                assert_eq!(c.algorithm(), a);
            }
            Err(e) => {
                assert!(!a.is_available());
                assert_eq!(e, CompressorInitError::Unavailable(a));
                assert!(e.to_string().contains("std"));
            }
        }
    }
    assert_eq!(Algorithm::Zstd.is_available(), cfg!(feature = "std"));
}

#[test]
fn max_compressed_len_covers_every_algorithm() {
    // lz4_flex's worst case, 20 + n * 110 / 100, is the largest at every page size (lzo:
    // n + n/16 + 67; deflate: n + 64 per 4 KiB; zstd: ZSTD_compressBound).
    let expected = match PAGE_SIZE {
        4096 => 4525,
        16384 => 18042,
        65536 => 72109,
        _ => unreachable!(),
    };
    assert_eq!(
        MAX_COMPRESSED_LEN, expected,
        "lz4_flex's worst case for {PAGE_SIZE} bytes"
    );
    assert_eq!(
        Algorithm::Zstd.max_compressed_len(),
        PAGE_SIZE + PAGE_SIZE / 256 + ((128 << 10) - PAGE_SIZE) / 2048
    );
    assert_eq!(
        Algorithm::Lzo.max_compressed_len(),
        PAGE_SIZE + PAGE_SIZE / 16 + 67
    );
    for a in Algorithm::ALL {
        assert!(a.max_compressed_len() <= MAX_COMPRESSED_LEN);
        assert!(a.max_compressed_len() > PAGE_SIZE);
    }
}

#[test]
fn short_scratch_is_an_error_not_a_panic() {
    let page = word_page(0x0102_0304_0506_0708);
    for &a in Algorithm::AVAILABLE {
        let mut c = AnyCompressor::new(a).unwrap();
        let needed = a.max_compressed_len();
        let mut dst = vec![0u8; needed - 1];
        assert_eq!(
            c.compress(&page, &mut dst),
            Err(CompressError::ScratchTooSmall {
                needed,
                got: needed - 1
            })
        );
        assert_eq!(
            c.compress(&page, &mut []),
            Err(CompressError::ScratchTooSmall { needed, got: 0 })
        );
        // A scratch buffer longer than needed is fine.
        let mut dst = vec![0u8; MAX_COMPRESSED_LEN + 100];
        let len = c.compress(&page, &mut dst).unwrap();
        let mut back = [0u8; PAGE_SIZE];
        c.decompress(&dst[..len], &mut back).unwrap();
        assert_eq!(back, page);
    }
}

#[test]
fn policy_defaults_are_zcaches() {
    // 7/8 and 5/8 of a page: 3584 and 2560 bytes at 4 KiB, scaled by the page size.
    let s = PAGE_SIZE / 4096;
    let p = StorePolicy::default();
    assert_eq!((p.max_len, p.mean_max_len), (3584 * s, 2560 * s));
    assert_eq!(p.verdict(0, 0), Verdict::Store);
    assert_eq!(p.verdict(3584 * s, 0), Verdict::Store);
    assert_eq!(p.verdict(3584 * s + 1, 0), Verdict::RejectPoor);
    assert_eq!(p.verdict(PAGE_SIZE, PAGE_SIZE), Verdict::RejectPoor);
    // Over 5/8 is stored while the mean is at or under 5/8...
    assert_eq!(p.verdict(2560 * s + 1, 2560 * s), Verdict::Store);
    assert_eq!(p.verdict(3000 * s, 1000 * s), Verdict::Store);
    // ...and rejected once the mean is over 5/8 too.
    assert_eq!(
        p.verdict(2560 * s + 1, 2560 * s + 1),
        Verdict::RejectMeanPoor
    );
    assert_eq!(p.verdict(2560 * s, 4000 * s), Verdict::Store);
    assert!(p.verdict(100, 4000 * s).is_store());
    assert!(!p.verdict(4000 * s, 0).is_store());
    let custom = StorePolicy::new(1000, 500);
    assert_eq!(custom.verdict(1001, 0), Verdict::RejectPoor);
    assert_eq!(custom.verdict(501, 501), Verdict::RejectMeanPoor);
    assert_eq!(
        StorePolicy::store_all().verdict(usize::MAX, usize::MAX),
        Verdict::Store
    );
}

#[test]
fn same_filled_finds_repeated_words() {
    assert_eq!(same_filled(&[0u8; PAGE_SIZE]), Some(0));
    assert_eq!(same_filled(&[0xFFu8; PAGE_SIZE]), Some(u64::MAX));
    for w in [
        1u64,
        0x8000_0000_0000_0000,
        0xDEAD_BEEF_0BAD_F00D,
        0x0101_0101_0101_0101,
    ] {
        let p = word_page(w);
        assert_eq!(same_filled(&p), Some(w));
        assert_eq!(p[..8], w.to_ne_bytes());
    }
    // Native-endian: the word is the first 8 bytes read in memory order.
    let mut p = [0u8; PAGE_SIZE];
    for w in p.chunks_exact_mut(8) {
        w.copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    }
    assert_eq!(
        same_filled(&p),
        Some(u64::from_ne_bytes([1, 2, 3, 4, 5, 6, 7, 8]))
    );
}

#[test]
fn same_filled_rejects_a_single_differing_byte_anywhere() {
    for base in [0u64, 0x1122_3344_5566_7788] {
        let page = word_page(base);
        // Every byte position: first word, last word, last byte, middle, block edges.
        for pos in 0..PAGE_SIZE {
            let mut p = page;
            p[pos] ^= 0x01;
            assert_eq!(same_filled(&p), None, "base {base:#x} byte {pos}");
        }
        // Only the high bit of the last byte.
        let mut p = page;
        p[PAGE_SIZE - 1] ^= 0x80;
        assert_eq!(same_filled(&p), None);
    }
}

#[test]
fn same_filled_needs_a_whole_word_period() {
    // A 4-byte pattern repeated is a repeated 8-byte word too.
    let mut p = [0u8; PAGE_SIZE];
    for w in p.chunks_exact_mut(4) {
        w.copy_from_slice(&[9, 8, 7, 6]);
    }
    assert_eq!(
        same_filled(&p),
        Some(u64::from_ne_bytes([9, 8, 7, 6, 9, 8, 7, 6]))
    );
    // A 16-byte period (two alternating words) is not.
    let mut p = [0u8; PAGE_SIZE];
    for (i, w) in p.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&(i as u64 % 2).to_ne_bytes());
    }
    assert_eq!(same_filled(&p), None);
    // Nor is a pattern whose period does not divide 8 (first and last word still differ
    // or some word in the middle does).
    let mut p = [0u8; PAGE_SIZE];
    for (i, b) in p.iter_mut().enumerate() {
        *b = (i % 3) as u8;
    }
    assert_eq!(same_filled(&p), None);
}

#[test]
fn fill_page_overwrites_every_byte() {
    let mut p = [0x5Au8; PAGE_SIZE];
    fill_page(&mut p, 0);
    assert!(p.iter().all(|&b| b == 0));
    let w = 0x0123_4567_89AB_CDEF;
    fill_page(&mut p, w);
    assert!(p.chunks_exact(8).all(|c| c == w.to_ne_bytes()));
}

/// Hand-made hostile streams that stress length fields and offsets.
fn hostile_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one zero byte", vec![0]),
        ("all 0xFF, 64 KiB", vec![0xFF; 64 << 10]),
        ("all zero, 64 KiB", vec![0; 64 << 10]),
    ];
    // lz4: literal length of 15 + a run of 255s then nothing.
    let mut lz = vec![0xF0];
    lz.extend(std::iter::repeat_n(0xFF, 20_000));
    v.push(("lz4 endless literal length", lz));
    // lz4: one literal, then a match with offset 2 (before the start).
    v.push((
        "lz4 offset before start",
        vec![0x14, b'a', 0x02, 0x00, 0x00],
    ));
    // lz4: one literal then a zero offset.
    v.push(("lz4 zero offset", vec![0x14, b'a', 0x00, 0x00, 0x00]));
    // lz4: a literal then a match of 64 KiB (far more than a page), offset 1.
    let mut big = vec![0x1F, b'a', 0x01, 0x00];
    big.extend(std::iter::repeat_n(0xFF, 300));
    big.push(0x00);
    v.push(("lz4 overlong match", big));
    // lzo: a long literal run promised but not given.
    v.push(("lzo long literal", vec![0x00, 0x00, 0x00, 0x00, 0xFF]));
    // lzo: end marker only.
    v.push(("lzo end marker only", vec![0x11, 0x00, 0x00]));
    // deflate: stored block header claiming 65535 bytes with 3 given.
    v.push((
        "deflate stored overlong",
        vec![0x01, 0xFF, 0xFF, 0x00, 0x00, 1, 2, 3],
    ));
    // deflate: a long run of empty non-final stored blocks.
    let mut empties = Vec::new();
    for _ in 0..10_000 {
        empties.extend([0x00, 0x00, 0x00, 0xFF, 0xFF]);
    }
    v.push(("deflate empty stored blocks", empties));
    // deflate: reserved block type 3.
    v.push(("deflate reserved block type", vec![0x07, 0, 0, 0]));
    // zstd: magic number then garbage; magic with a skippable frame.
    v.push((
        "zstd magic + garbage",
        vec![0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF],
    ));
    v.push((
        "zstd skippable frame",
        vec![0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0],
    ));
    v
}

#[test]
fn hostile_streams_are_errors_for_every_algorithm() {
    let mut page = [0u8; PAGE_SIZE];
    for &a in Algorithm::AVAILABLE {
        let mut c = AnyCompressor::new(a).unwrap();
        for (what, input) in hostile_inputs() {
            match c.decompress(&input, &mut page) {
                Ok(()) => panic!("{a}: {what} decoded to a page"),
                Err(e) => {
                    assert_eq!(e.algorithm(), a, "{what}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}

#[test]
fn each_algorithm_rejects_the_others_streams() {
    let mut page = [0u8; PAGE_SIZE];
    for (i, b) in page.iter_mut().enumerate() {
        *b = (i * 7 % 13) as u8;
    }
    let mut out = [0u8; PAGE_SIZE];
    for &writer in Algorithm::AVAILABLE {
        let mut w = AnyCompressor::new(writer).unwrap();
        let mut buf = vec![0u8; MAX_COMPRESSED_LEN];
        let len = w.compress(&page, &mut buf).unwrap();
        for &reader in Algorithm::AVAILABLE {
            let mut r = AnyCompressor::new(reader).unwrap();
            let got = r.decompress(&buf[..len], &mut out);
            if reader == writer {
                assert_eq!(got, Ok(()));
                assert_eq!(out, page);
            } else {
                // Reading with the wrong algorithm must not silently give the page back.
                assert!(got.is_err() || out != page, "{writer} read by {reader}");
            }
        }
    }
}

#[test]
fn errors_name_the_algorithm() {
    let e = DecompressError::ShortPage {
        algorithm: Algorithm::Lzo,
        len: 10,
    };
    assert_eq!(e.algorithm(), Algorithm::Lzo);
    assert!(e.to_string().contains("lzo") && e.to_string().contains("10"));
    assert!(
        DecompressError::Overlong(Algorithm::Deflate)
            .to_string()
            .contains("deflate")
    );
    let oom = CompressorInitError::OutOfMemory {
        algorithm: Algorithm::Lzo,
        bytes: 1 << 20,
    };
    assert!(oom.to_string().contains("1048576"));
}
