//! Every page of the 1024-page sample (at the build's page size: `joined::<PAGE_SIZE>()`)
//! round-trips through every available algorithm, and the same-filled detector agrees
//! with the corpus's own flags (recomputed for joined pages).

use zcache_testdata::Corpus;
use zcomp::{
    Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN, PAGE_SIZE, fill_page, same_filled,
};

#[test]
fn sample_round_trips_with_every_algorithm() {
    let corpus = Corpus::sample().joined::<PAGE_SIZE>();
    assert!(!corpus.is_empty());
    let mut scratch = vec![0u8; MAX_COMPRESSED_LEN];
    let mut back = vec![0u8; PAGE_SIZE];
    for &alg in Algorithm::AVAILABLE {
        let mut c = AnyCompressor::new(alg).expect("compressor");
        assert_eq!(c.algorithm(), alg);
        let mut total = 0usize;
        for (i, page) in corpus.pages().iter().enumerate() {
            let len = c.compress(page, &mut scratch).expect("compress");
            assert!(len <= alg.max_compressed_len(), "{alg} page {i}: {len}");
            back.fill(0xA5);
            c.decompress(&scratch[..len], back.as_mut_slice().try_into().unwrap())
                .unwrap_or_else(|e| panic!("{alg} page {i}: {e}"));
            assert!(
                back[..] == page[..],
                "{alg} page {i} differs after the round trip"
            );
            total += len;
        }
        // Sanity: real pages compress (the sample is far from random data).
        assert!(total < corpus.len() * PAGE_SIZE / 2, "{alg}: {total} bytes");
    }
}

#[test]
fn same_filled_agrees_with_the_corpus_flags() {
    // Should the sample hold no same-filled page at this page size, the dev corpus is
    // checked instead. At 64 KiB neither holds one (16 consecutive same-filled 4 KiB
    // pages of one object with one word): the detector is then checked on real pages
    // that are not same-filled only (tests/api.rs and tests/props.rs build same-filled
    // ones).
    let corpus = match Corpus::sample().joined::<PAGE_SIZE>() {
        c if c.records().iter().any(|r| r.same_filled()) => c,
        _ => Corpus::dev().joined::<PAGE_SIZE>(),
    };
    let mut page = Box::new([0u8; PAGE_SIZE]);
    let mut seen = 0;
    for (rec, p) in corpus.iter() {
        let got = same_filled(p);
        assert_eq!(got.is_some(), rec.same_filled(), "record {rec:?}");
        if let Some(word) = got {
            seen += 1;
            fill_page(&mut page, word);
            assert!(*page == *p);
        }
    }
    let flagged = corpus.records().iter().filter(|r| r.same_filled()).count();
    assert_eq!(seen, flagged);
    if PAGE_SIZE < 65536 {
        assert!(seen > 0, "the corpus holds same-filled pages");
    }
}
