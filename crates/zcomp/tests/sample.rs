//! Every page of the 1024-page sample round-trips through every available algorithm, and
//! the same-filled detector agrees with the corpus's own flags.

use zcache_testdata::Corpus;
use zcomp::{
    Algorithm, AnyCompressor, Compressor, MAX_COMPRESSED_LEN, PAGE_SIZE, fill_page, same_filled,
};

#[test]
fn sample_round_trips_with_every_algorithm() {
    let corpus = Corpus::sample();
    let mut scratch = vec![0u8; MAX_COMPRESSED_LEN];
    let mut back = [0u8; PAGE_SIZE];
    for &alg in Algorithm::AVAILABLE {
        let mut c = AnyCompressor::new(alg).expect("compressor");
        assert_eq!(c.algorithm(), alg);
        let mut total = 0usize;
        for (i, page) in corpus.pages().iter().enumerate() {
            let len = c.compress(page, &mut scratch).expect("compress");
            assert!(len <= alg.max_compressed_len(), "{alg} page {i}: {len}");
            back.fill(0xA5);
            c.decompress(&scratch[..len], &mut back)
                .unwrap_or_else(|e| panic!("{alg} page {i}: {e}"));
            assert!(back == *page, "{alg} page {i} differs after the round trip");
            total += len;
        }
        // Sanity: real pages compress (the sample is far from random data).
        assert!(total < corpus.len() * PAGE_SIZE / 2, "{alg}: {total} bytes");
    }
}

#[test]
fn same_filled_agrees_with_the_corpus_flags() {
    let corpus = Corpus::sample();
    let mut page = [0u8; PAGE_SIZE];
    let mut seen = 0;
    for (rec, p) in corpus.iter() {
        let got = same_filled(p);
        assert_eq!(got.is_some(), rec.same_filled(), "record {rec:?}");
        if let Some(word) = got {
            seen += 1;
            fill_page(&mut page, word);
            assert!(page == *p);
        }
    }
    assert!(seen > 0, "the sample holds same-filled pages");
}
