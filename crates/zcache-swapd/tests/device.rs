//! The block semantics of `zcache swapd`, through the request handler (no FUSE, no root).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use zcache_swapd::{BLOCK_SIZE, Device, DeviceConfig, DeviceError, Residency};

const B: usize = BLOCK_SIZE as usize;

fn backing_path() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "zcache-swapd-test-{}-{}.backing",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn device(blocks: u64, max_frames: Option<usize>) -> Device {
    let mut cfg = DeviceConfig::new(blocks, backing_path());
    if let Some(f) = max_frames {
        cfg.zcache.max_frames = f;
    }
    Device::new(&cfg).expect("device")
}

/// A page that compresses well (text-like, distinct per seed).
fn text_page(seed: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(B);
    let mut i = 0u64;
    while p.len() < B {
        p.extend_from_slice(format!("page {seed} line {i}: the quick brown fox; ").as_bytes());
        i += 1;
    }
    p.truncate(B);
    p
}

/// A page that does not compress (zcache refuses it).
fn random_page(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..B)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn read_block(d: &Device, slot: u64) -> Vec<u8> {
    let mut b = vec![0xAAu8; B];
    d.read(slot * BLOCK_SIZE, &mut b).expect("read");
    b
}

fn count(d: &Device, name: &str) -> u64 {
    d.counters()
        .named()
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .expect("counter")
}

/// Never in zcache and marked in the backing file at once.
fn assert_one_home(d: &Device) {
    for s in 0..d.blocks() {
        let r = d.residency(s);
        assert!(
            !(r.in_zcache && r.in_backing),
            "slot {s}: current copy in zcache and a backing bit set too"
        );
    }
}

#[test]
fn read_after_write_and_zeros_where_nothing_was_written() {
    let d = device(64, None);
    let p = text_page(3);
    d.write(3 * BLOCK_SIZE, &p).unwrap();
    assert_eq!(read_block(&d, 3), p);
    assert_eq!(read_block(&d, 4), vec![0; B]);
    let mut all = vec![0xAAu8; 64 * B];
    d.read(0, &mut all).unwrap();
    for (i, blk) in all.chunks(B).enumerate() {
        if i == 3 {
            assert_eq!(blk, &p[..]);
        } else {
            assert!(blk.iter().all(|&b| b == 0), "block {i} not zero");
        }
    }
    assert_eq!(count(&d, "stores_kept"), 1);
    assert_eq!(count(&d, "reads_zero"), 64);
}

#[test]
fn overwrite_keeps_the_newest_copy_wherever_each_lives() {
    let d = device(8, None);
    // zcache -> zcache
    d.write(0, &text_page(1)).unwrap();
    d.write(0, &text_page(2)).unwrap();
    assert_eq!(read_block(&d, 0), text_page(2));
    // zcache -> backing (refused: incompressible)
    d.write(0, &random_page(3)).unwrap();
    assert_eq!(read_block(&d, 0), random_page(3));
    assert_eq!(
        d.residency(0),
        Residency {
            in_zcache: false,
            in_backing: true
        }
    );
    // backing -> backing
    d.write(0, &random_page(4)).unwrap();
    assert_eq!(read_block(&d, 0), random_page(4));
    // backing -> zcache: the backing copy is stale and forgotten
    d.write(0, &text_page(5)).unwrap();
    assert_eq!(read_block(&d, 0), text_page(5));
    assert_eq!(
        d.residency(0),
        Residency {
            in_zcache: true,
            in_backing: false
        }
    );
    assert_eq!(count(&d, "backing_blocks"), 0);
}

#[test]
fn discard_gives_zeros_and_forgets_both_copies() {
    let d = device(16, None);
    d.write(2 * BLOCK_SIZE, &text_page(2)).unwrap();
    d.write(3 * BLOCK_SIZE, &random_page(3)).unwrap();
    d.write(4 * BLOCK_SIZE, &text_page(4)).unwrap();
    d.discard(2 * BLOCK_SIZE, 2 * BLOCK_SIZE).unwrap();
    assert_eq!(read_block(&d, 2), vec![0; B]);
    assert_eq!(read_block(&d, 3), vec![0; B]);
    assert_eq!(read_block(&d, 4), text_page(4));
    for s in [2, 3] {
        assert_eq!(
            d.residency(s),
            Residency {
                in_zcache: false,
                in_backing: false
            }
        );
    }
    assert_eq!(count(&d, "backing_blocks"), 0);
    assert_eq!(d.zcache().stored_pages(), 1);
    // Written again after the discard: the new page.
    d.write(3 * BLOCK_SIZE, &text_page(33)).unwrap();
    assert_eq!(read_block(&d, 3), text_page(33));
    // An empty discard is fine and changes nothing.
    d.discard(0, 0).unwrap();
    assert_eq!(read_block(&d, 4), text_page(4));
}

#[test]
fn multi_block_requests() {
    let d = device(32, None);
    let mut data = Vec::new();
    for i in 0..8 {
        data.extend(if i % 3 == 0 {
            random_page(i)
        } else {
            text_page(i)
        });
    }
    d.write(10 * BLOCK_SIZE, &data).unwrap();
    let mut back = vec![0u8; 8 * B];
    d.read(10 * BLOCK_SIZE, &mut back).unwrap();
    assert_eq!(back, data);
    // A sub-range starting inside the request, and one crossing its end.
    let mut mid = vec![0u8; 3 * B];
    d.read(12 * BLOCK_SIZE, &mut mid).unwrap();
    assert_eq!(mid, data[2 * B..5 * B]);
    let mut tail = vec![0xAAu8; 4 * B];
    d.read(16 * BLOCK_SIZE, &mut tail).unwrap();
    assert_eq!(tail[..2 * B], data[6 * B..]);
    assert!(tail[2 * B..].iter().all(|&b| b == 0));
    assert_eq!(count(&d, "stores_refused"), 3);
    assert_eq!(count(&d, "stores_kept"), 5);
}

#[test]
fn unaligned_and_out_of_range_requests_are_refused_and_touch_nothing() {
    let d = device(8, None);
    d.write(7 * BLOCK_SIZE, &text_page(7)).unwrap();
    let before: Vec<Vec<u8>> = (0..8).map(|s| read_block(&d, s)).collect();
    let page = text_page(99);
    let two = [page.clone(), page.clone()].concat();
    let mut buf = vec![0u8; B];
    let cases: Vec<(&str, Result<(), DeviceError>, i32)> = vec![
        ("write at 100", d.write(100, &page), libc::EINVAL),
        ("write of 100 bytes", d.write(0, &page[..100]), libc::EINVAL),
        (
            "write of 1.5 blocks",
            d.write(0, &two[..B + B / 2]),
            libc::EINVAL,
        ),
        (
            "write across the end",
            d.write(7 * BLOCK_SIZE, &two),
            libc::ENOSPC,
        ),
        (
            "write past the end",
            d.write(8 * BLOCK_SIZE, &page),
            libc::ENOSPC,
        ),
        (
            "write at an offset that overflows",
            d.write(u64::MAX - (BLOCK_SIZE - 1), &page),
            libc::ENOSPC,
        ),
        ("read at 512", d.read(512, &mut buf), libc::EINVAL),
        (
            "read past the end",
            d.read(8 * BLOCK_SIZE, &mut buf),
            libc::EINVAL,
        ),
        (
            "discard unaligned",
            d.discard(BLOCK_SIZE, 100),
            libc::EINVAL,
        ),
        (
            "discard across the end",
            d.discard(6 * BLOCK_SIZE, 3 * BLOCK_SIZE),
            libc::EINVAL,
        ),
    ];
    for (what, r, errno) in cases {
        let e = r.expect_err(what);
        let write = what.starts_with("write");
        assert_eq!(e.errno(write), errno, "{what}: {e}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(count(&d, "invalid_requests"), 10);
    let after: Vec<Vec<u8>> = (0..8).map(|s| read_block(&d, s)).collect();
    assert_eq!(before, after, "a refused request changed the device");
    assert_eq!(count(&d, "stores_kept"), 1);
}

#[test]
fn refused_stores_land_in_the_backing_file_and_read_back() {
    let d = device(16, None);
    let p = random_page(5);
    d.write(5 * BLOCK_SIZE, &p).unwrap();
    assert_eq!(count(&d, "stores_refused"), 1);
    assert!(d.zcache().stats().counters.reject_compress_poor >= 1);
    assert_eq!(
        d.residency(5),
        Residency {
            in_zcache: false,
            in_backing: true
        }
    );
    assert_eq!(read_block(&d, 5), p);
    assert_eq!(count(&d, "reads_backing"), 1);
    // The page is in the file, at slot * 4096.
    let file = std::fs::read(d.backing_path()).unwrap();
    assert_eq!(file.len(), 16 * B);
    assert_eq!(&file[5 * B..6 * B], &p[..]);
}

#[test]
fn a_full_zcache_refuses_and_writes_back_to_the_backing_file() {
    let d = device(256, Some(4));
    let pages: Vec<Vec<u8>> = (0..256).map(text_page).collect();
    for (s, p) in pages.iter().enumerate() {
        d.write(s as u64 * BLOCK_SIZE, p).unwrap();
    }
    let st = d.zcache().stats();
    assert!(
        st.pool_frames <= 4,
        "{} frames over the limit",
        st.pool_frames
    );
    assert!(count(&d, "stores_refused") > 0);
    assert!(count(&d, "written_back") > 0, "no writeback happened");
    assert_eq!(
        count(&d, "written_back"),
        st.counters.written_back_pages as u64
    );
    for (s, p) in pages.iter().enumerate() {
        assert_eq!(&read_block(&d, s as u64), p, "slot {s}");
    }
    assert_one_home(&d);
    // The host's memory pressure: everything zcache holds goes to the file.
    let out = d.zcache().shrink(0);
    assert!(out.written_back_pages > 0);
    assert_eq!(d.zcache().stats().pool_frames, 0);
    for (s, p) in pages.iter().enumerate() {
        assert_eq!(&read_block(&d, s as u64), p, "slot {s} after shrink");
    }
    assert_one_home(&d);
    assert_eq!(count(&d, "backing_blocks"), 256);
}

#[test]
fn the_backing_file_is_created_new_and_removed_with_the_device() {
    let path = backing_path();
    std::fs::write(&path, b"not ours").unwrap();
    let e = Device::new(&DeviceConfig::new(8, path.clone()))
        .err()
        .expect("an existing file is refused");
    assert!(e.contains("exists"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not ours", "touched");
    std::fs::remove_file(&path).unwrap();
    let d = Device::new(&DeviceConfig::new(8, path.clone())).unwrap();
    assert!(path.exists());
    drop(d);
    assert!(!path.exists(), "backing file left behind");
}

#[test]
fn concurrent_requests_and_writeback_keep_the_newest_page() {
    let d = Arc::new(device(64, Some(6)));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                // Each thread owns half the slots and writes each several times.
                for round in 0..20u64 {
                    for s in (t * 32)..(t * 32 + 32) {
                        let seed = round << 32 | s;
                        let p = if (s + round) % 5 == 0 {
                            random_page(seed)
                        } else {
                            text_page(seed)
                        };
                        d.write(s * BLOCK_SIZE, &p).unwrap();
                        assert_eq!(read_block(&d, s), p, "slot {s} round {round}");
                    }
                }
            })
        })
        .collect();
    let shrinker = {
        let d = d.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                d.zcache().shrink(2);
                std::thread::yield_now();
            }
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    shrinker.join().unwrap();
    for s in 0..64u64 {
        let seed = 19 << 32 | s;
        let want = if (s + 19) % 5 == 0 {
            random_page(seed)
        } else {
            text_page(seed)
        };
        assert_eq!(read_block(&d, s), want, "slot {s}");
    }
    assert_one_home(&d);
}

#[derive(Clone, Debug)]
enum Op {
    /// Write `n` blocks at `slot`; block i gets content (seed + i), incompressible if
    /// `random`.
    Write {
        slot: u64,
        n: u64,
        seed: u64,
        random: bool,
    },
    Read {
        slot: u64,
        n: u64,
    },
    Discard {
        slot: u64,
        n: u64,
    },
    /// Memory pressure: shrink zcache to `target` frames (writeback).
    Shrink {
        target: usize,
    },
}

const PBLOCKS: u64 = 24;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..PBLOCKS, 1..4u64, any::<u16>(), prop::bool::weighted(0.2)).prop_map(
            |(slot, n, seed, random)| Op::Write { slot, n, seed: u64::from(seed), random }
        ),
        3 => (0..PBLOCKS, 1..4u64).prop_map(|(slot, n)| Op::Read { slot, n }),
        1 => (0..PBLOCKS, 1..4u64).prop_map(|(slot, n)| Op::Discard { slot, n }),
        1 => (0..4usize).prop_map(|target| Op::Shrink { target }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The device against a plain Vec of pages, with a frame limit small enough that
    /// zcache refuses stores and writes pages back all the time.
    #[test]
    fn device_matches_a_plain_vec_of_pages(ops in prop::collection::vec(op(), 1..120)) {
        let d = device(PBLOCKS, Some(3));
        let mut model = vec![vec![0u8; B]; PBLOCKS as usize];
        for op in &ops {
            match *op {
                Op::Write { slot, n, seed, random } => {
                    let data: Vec<u8> = (0..n)
                        .flat_map(|i| if random { random_page(seed + i) } else { text_page(seed + i) })
                        .collect();
                    let r = d.write(slot * BLOCK_SIZE, &data);
                    if slot + n > PBLOCKS {
                        prop_assert!(matches!(r, Err(DeviceError::OutOfRange { .. })), "{:?}", r);
                    } else {
                        prop_assert!(r.is_ok(), "{:?}", r);
                        for i in 0..n {
                            model[(slot + i) as usize] = data[i as usize * B..][..B].to_vec();
                        }
                    }
                }
                Op::Read { slot, n } => {
                    let mut buf = vec![0xAAu8; n as usize * B];
                    let r = d.read(slot * BLOCK_SIZE, &mut buf);
                    if slot + n > PBLOCKS {
                        prop_assert!(matches!(r, Err(DeviceError::OutOfRange { .. })), "{:?}", r);
                    } else {
                        prop_assert!(r.is_ok(), "{:?}", r);
                        for i in 0..n {
                            prop_assert_eq!(&buf[i as usize * B..][..B], &model[(slot + i) as usize][..],
                                "slot {}", slot + i);
                        }
                    }
                }
                Op::Discard { slot, n } => {
                    let r = d.discard(slot * BLOCK_SIZE, n * BLOCK_SIZE);
                    if slot + n > PBLOCKS {
                        prop_assert!(matches!(r, Err(DeviceError::OutOfRange { .. })), "{:?}", r);
                    } else {
                        prop_assert!(r.is_ok(), "{:?}", r);
                        for i in 0..n {
                            model[(slot + i) as usize] = vec![0; B];
                        }
                    }
                }
                Op::Shrink { target } => {
                    d.zcache().shrink(target);
                }
            }
            prop_assert!(d.zcache().stats().pool_frames <= 3);
        }
        for s in 0..PBLOCKS {
            prop_assert_eq!(&read_block(&d, s), &model[s as usize], "slot {} at the end", s);
            let r = d.residency(s);
            prop_assert!(!(r.in_zcache && r.in_backing), "slot {}: two homes", s);
        }
    }
}
