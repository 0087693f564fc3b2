//! Layout, handle validation and compaction, checked directly.

use std::sync::Arc;

use zbud::{Buddy, CHUNK_SIZE, MAX_OBJECT, NCHUNKS, ZBud, chunks_for};
use zpool::testing::{CountingSource, FailMode, FailingSource};
use zpool::{Handle, HeapPageSource, PAGE_SIZE, ZPool, ZPoolError};

/// Generation bits of a zbud handle (23, 21, 19 at 4, 16, 64 KiB pages).
const GEN: u32 = zbud::HANDLE_BITS - 25;

/// Byte sizes below are written for 4 KiB pages and scaled by this (chunks scale with the
/// page: `CHUNK_SIZE = PAGE_SIZE / 64`), so every test places the same chunks.
const S: usize = zplat::PAGE_SCALE;

type Src = Arc<CountingSource<HeapPageSource>>;

fn pool() -> (ZBud<Src>, Src) {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    (ZBud::new(Arc::clone(&src)), src)
}

fn data(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ tag).collect()
}

fn read_back(p: &ZBud<Src>, h: Handle) -> Vec<u8> {
    let mut out = vec![0; p.object_len(h).unwrap()];
    assert_eq!(p.read(h, &mut out), Ok(out.len()));
    out
}

#[test]
fn first_buddy_at_start_last_right_justified() {
    let (p, src) = pool();
    let a = p.store(&data(1000 * S, 1)).unwrap();
    let b = p.store(&data(500 * S, 2)).unwrap();
    let la = p.locate(a).unwrap();
    let lb = p.locate(b).unwrap();
    assert_eq!((la.buddy, la.offset), (Buddy::First, 0));
    assert_eq!(lb.frame_index, la.frame_index, "500 B pairs with 1000 B");
    assert_eq!(lb.buddy, Buddy::Last);
    assert_eq!(lb.offset, PAGE_SIZE - chunks_for(500 * S) * CHUNK_SIZE);
    assert_eq!(lb.offset, 3584 * S);
    assert_eq!(src.live(), 1);
    assert_eq!(read_back(&p, a), data(1000 * S, 1));
    assert_eq!(read_back(&p, b), data(500 * S, 2));
    // Free the first buddy: the last one stays where it is, and a new object that fits
    // goes to the start.
    p.free(a).unwrap();
    let c = p.store(&data(3000 * S, 3)).unwrap();
    let lc = p.locate(c).unwrap();
    assert_eq!(
        (lc.frame_index, lc.buddy, lc.offset),
        (lb.frame_index, Buddy::First, 0)
    );
    assert_eq!(read_back(&p, b), data(500 * S, 2));
    assert_eq!(read_back(&p, c), data(3000 * S, 3));
}

#[test]
fn whole_frame_is_usable_and_largest_object_is_a_page() {
    let (p, src) = pool();
    assert_eq!(p.max_alloc(), MAX_OBJECT);
    assert_eq!(MAX_OBJECT, PAGE_SIZE);
    assert_eq!(NCHUNKS, 64);
    assert_eq!(
        p.malloc(MAX_OBJECT + 1),
        Err(ZPoolError::TooLarge {
            len: MAX_OBJECT + 1,
            max: MAX_OBJECT
        })
    );
    assert_eq!(p.malloc(0), Err(ZPoolError::ZeroSize));
    let full = p.store(&data(MAX_OBJECT, 9)).unwrap();
    assert_eq!(p.locate(full).unwrap().offset, 0);
    // Two objects that fill 64 chunks exactly share a frame: 40 + 24 chunks.
    let x = p.store(&data(40 * CHUNK_SIZE, 4)).unwrap();
    let y = p.store(&data(24 * CHUNK_SIZE, 5)).unwrap();
    assert_eq!(
        p.locate(x).unwrap().frame_index,
        p.locate(y).unwrap().frame_index
    );
    assert_eq!(p.locate(y).unwrap().offset, 40 * CHUNK_SIZE);
    assert_eq!(src.live(), 2);
    // No room beside a whole-frame object (nor beside the full pair).
    let small = p.store(&data(1, 1)).unwrap();
    assert_ne!(
        p.locate(small).unwrap().frame_index,
        p.locate(full).unwrap().frame_index
    );
    assert_eq!(src.live(), 3);
    assert_eq!(read_back(&p, full), data(MAX_OBJECT, 9));
    assert_eq!(read_back(&p, x), data(40 * CHUNK_SIZE, 4));
    assert_eq!(read_back(&p, y), data(24 * CHUNK_SIZE, 5));
}

#[test]
fn best_fit_picks_the_smallest_sufficient_hole() {
    let (p, _src) = pool();
    let a = p.store(&data(47 * CHUNK_SIZE, 1)).unwrap(); // 17 free chunks
    let b = p.store(&data(32 * CHUNK_SIZE, 2)).unwrap(); // does not fit beside a: 32 free
    let c = p.store(&data(20 * CHUNK_SIZE, 3)).unwrap(); // 20 chunks fit beside b only
    let fa = p.locate(a).unwrap().frame_index;
    let fb = p.locate(b).unwrap().frame_index;
    assert_ne!(fa, fb);
    assert_eq!(
        p.locate(c).unwrap().frame_index,
        fb,
        "20 chunks fit only beside b"
    );
    let d = p.store(&data(10 * CHUNK_SIZE, 4)).unwrap(); // fits a (17 free)
    assert_eq!(p.locate(d).unwrap().frame_index, fa);
    // Now a frame with 40 free chunks and one with 20: 15 chunks go to the 20.
    let e = p.store(&data(24 * CHUNK_SIZE, 5)).unwrap(); // 40 free
    let f = p.store(&data(44 * CHUNK_SIZE, 6)).unwrap(); // 20 free (44 > 40: own frame)
    let g = p.store(&data(15 * CHUNK_SIZE, 7)).unwrap();
    assert_ne!(
        p.locate(e).unwrap().frame_index,
        p.locate(f).unwrap().frame_index
    );
    assert_eq!(
        p.locate(g).unwrap().frame_index,
        p.locate(f).unwrap().frame_index
    );
}

#[test]
fn stale_double_freed_and_forged_handles_are_errors() {
    let (p, src) = pool();
    let a = p.store(&data(100, 1)).unwrap();
    let b = p.store(&data(200, 2)).unwrap();
    p.free(a).unwrap();
    assert_eq!(p.free(a), Err(ZPoolError::InvalidHandle));
    let mut buf = [0u8; 100];
    assert_eq!(p.read(a, &mut buf), Err(ZPoolError::InvalidHandle));
    assert_eq!(p.write(a, &buf), Err(ZPoolError::InvalidHandle));
    assert_eq!(p.object_len(a), Err(ZPoolError::InvalidHandle));
    // The entry is reused with a new generation: the old handle stays invalid.
    let c = p.store(&data(100, 3)).unwrap();
    assert_ne!(a, c);
    assert_eq!(
        c.to_raw() >> GEN,
        a.to_raw() >> GEN,
        "same entry, new generation"
    );
    assert_eq!(p.free(a), Err(ZPoolError::InvalidHandle));
    assert_eq!(read_back(&p, c), data(100, 3));
    for raw in [
        1u64,
        2,
        1 << GEN,
        (1 << 48) - 1,
        b.to_raw() ^ 1,
        b.to_raw() + (5 << GEN),
    ] {
        let h = Handle::from_raw(raw).unwrap();
        if h == b || h == c {
            continue;
        }
        assert_eq!(p.free(h), Err(ZPoolError::InvalidHandle), "{h:?}");
        assert_eq!(p.read(h, &mut buf), Err(ZPoolError::InvalidHandle), "{h:?}");
    }
    assert_eq!(read_back(&p, b), data(200, 2));
    assert_eq!(
        p.write(b, &[0; 199]),
        Err(ZPoolError::BadLength {
            object: 200,
            buffer: 199
        })
    );
    assert!(b.to_raw() < 1 << Handle::BITS);
    p.free(b).unwrap();
    p.free(c).unwrap();
    assert_eq!((p.total_frames(), src.live()), (0, 0));
}

#[test]
fn compaction_repairs_lone_frames_and_keeps_handles_valid() {
    let (p, src) = pool();
    // 20 frames of pairs (3000 B + 1000 B), then free one buddy of each: 20 lone frames,
    // 10 with 3000 B (17 free chunks) and 10 with 1000 B (48 free chunks).
    let mut keep = Vec::new();
    let pairs: Vec<(Handle, Handle)> = (0..20u8)
        .map(|i| {
            let big = p.store(&data(3000 * S, i)).unwrap();
            let small = p.store(&data(1000 * S, 100 + i)).unwrap();
            assert_eq!(
                p.locate(big).unwrap().frame_index,
                p.locate(small).unwrap().frame_index
            );
            (big, small)
        })
        .collect();
    for (i, (big, small)) in (0..20u8).zip(pairs) {
        if i.is_multiple_of(2) {
            p.free(small).unwrap();
            keep.push((big, 3000 * S, i));
        } else {
            p.free(big).unwrap();
            keep.push((small, 1000 * S, 100 + i));
        }
    }
    assert_eq!((p.total_frames(), p.zbud_stats().lone_frames), (20, 20));
    let freed = p.compact();
    assert_eq!(freed, 10);
    assert_eq!((p.total_frames(), src.live()), (10, 10));
    let st = p.zbud_stats();
    assert_eq!(
        (st.lone_frames, st.buddied_frames, st.compacted_frames),
        (0, 10, 10)
    );
    for (h, len, tag) in &keep {
        assert_eq!(read_back(&p, *h), data(*len, *tag));
    }
    // Layout holds after moves: each frame has a first buddy at 0 and a last buddy
    // right-justified.
    for (h, len, _) in &keep {
        let l = p.locate(*h).unwrap();
        match l.buddy {
            Buddy::First => assert_eq!(l.offset, 0),
            Buddy::Last => assert_eq!(l.offset, PAGE_SIZE - chunks_for(*len) * CHUNK_SIZE),
        }
    }
    assert_eq!(p.compact(), 0, "nothing left to pair");
    for (h, _, _) in keep {
        p.free(h).unwrap();
    }
    assert_eq!((p.total_frames(), src.live()), (0, 0));
}

#[test]
fn compaction_leaves_unpairable_frames_alone() {
    let (p, _src) = pool();
    let hs: Vec<Handle> = (0..5)
        .map(|i| p.store(&data(2500 * S, i)).unwrap())
        .collect();
    assert_eq!(p.total_frames(), 5);
    assert_eq!(p.compact(), 0, "no two 40-chunk objects fit one frame");
    for (i, h) in hs.iter().enumerate() {
        assert_eq!(read_back(&p, *h), data(2500 * S, i as u8));
    }
}

#[test]
fn same_list_pairs_in_compaction() {
    let (p, _src) = pool();
    // Objects of exactly 32 chunks pair with each other (both on the unbuddied list for
    // 32 free chunks): make lone ones by freeing one buddy of each pair.
    let mut lone = Vec::new();
    let pairs: Vec<(Handle, Handle)> = (0..6u8)
        .map(|i| {
            let a = p.store(&data(32 * CHUNK_SIZE, i)).unwrap();
            let b = p.store(&data(32 * CHUNK_SIZE, 50 + i)).unwrap();
            assert_eq!(
                p.locate(a).unwrap().frame_index,
                p.locate(b).unwrap().frame_index
            );
            (a, b)
        })
        .collect();
    for (i, (a, b)) in (0..6u8).zip(pairs) {
        p.free(b).unwrap();
        lone.push((a, i));
    }
    assert_eq!(p.total_frames(), 6);
    assert_eq!(p.compact(), 3);
    assert_eq!(p.total_frames(), 3);
    for (h, i) in lone {
        assert_eq!(read_back(&p, h), data(32 * CHUNK_SIZE, i));
    }
}

#[test]
fn failed_allocation_leaves_the_pool_as_it_was() {
    let src = Arc::new(CountingSource::new(FailingSource::new(HeapPageSource)));
    let p = ZBud::new(Arc::clone(&src));
    let a = p.store(&data(3000 * S, 1)).unwrap();
    src.inner().set_mode(FailMode::Always);
    assert_eq!(p.store(&data(3000 * S, 2)), Err(ZPoolError::NoMemory));
    assert_eq!(p.malloc(2000 * S), Err(ZPoolError::NoMemory));
    // A fit needs no frame: still works while the source fails.
    let b = p.store(&data(1000 * S, 3)).unwrap();
    src.inner().disable();
    assert_eq!(p.stats().objects, 2);
    assert_eq!(p.total_frames(), 1);
    let mut out = vec![0; 3000 * S];
    p.read(a, &mut out).unwrap();
    assert_eq!(out, data(3000 * S, 1));
    p.free(a).unwrap();
    p.free(b).unwrap();
    assert_eq!(src.live(), 0);
}

#[test]
fn dropping_the_pool_returns_every_frame() {
    let (p, src) = pool();
    for i in 0..50 {
        p.store(&data(100 + i * 70, i as u8)).unwrap();
    }
    assert!(src.live() > 0);
    drop(p);
    assert_eq!(src.live(), 0);
}

#[test]
fn metadata_is_lean() {
    let (p, _src) = pool();
    let hs: Vec<Handle> = (0..1000)
        .map(|i| p.store(&data(1000 + (i % 7) * 300, i as u8)).unwrap())
        .collect();
    let st = p.zbud_stats();
    let ps = p.stats();
    // 24-byte descriptors and 8-byte handle entries, tables grown by an eighth.
    assert!(st.descriptor_bytes <= 24 * (st.frames * 9 / 8 + 64));
    assert!(st.handle_bytes <= 8 * (hs.len() * 9 / 8 + 64));
    assert!(ps.metadata_bytes >= st.descriptor_bytes + st.handle_bytes);
    // Under 24 bytes per stored object (descriptor and handle tables at capacity).
    assert!(
        ps.metadata_bytes < 24 * hs.len(),
        "{} bytes",
        ps.metadata_bytes
    );
}

#[test]
fn compaction_repairs_pairs_that_arrival_order_got_wrong() {
    let (p, src) = pool();
    // Arrival order A (10 chunks), B (50), C (54), D (14): best fit gives [A, B], [C],
    // [D]; the lone C and D cannot pair (68 chunks), but [A, C] + [B, D] fit two frames.
    let sizes = [
        10 * CHUNK_SIZE,
        50 * CHUNK_SIZE,
        54 * CHUNK_SIZE,
        14 * CHUNK_SIZE,
    ];
    let hs: Vec<Handle> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| p.store(&data(s, i as u8)).unwrap())
        .collect();
    assert_eq!(p.total_frames(), 3);
    assert_eq!(p.zbud_stats().lone_frames, 2);
    assert_eq!(p.compact(), 1);
    assert_eq!((p.total_frames(), src.live()), (2, 2));
    let loc: Vec<_> = hs.iter().map(|h| p.locate(*h).unwrap()).collect();
    assert_eq!(loc[0].frame_index, loc[2].frame_index, "A beside C");
    assert_eq!(loc[1].frame_index, loc[3].frame_index, "B beside D");
    for (i, (&h, &s)) in hs.iter().zip(&sizes).enumerate() {
        assert_eq!(read_back(&p, h), data(s, i as u8));
    }
    let st = p.zbud_stats();
    assert_eq!((st.lone_frames, st.buddied_frames), (0, 2));
}

#[test]
fn shard_counts_are_powers_of_two_up_to_the_maximum() {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    assert_eq!(ZBud::new(Arc::clone(&src)).shards(), zbud::DEFAULT_SHARDS);
    for (asked, got) in [(0, 1), (1, 1), (2, 2), (3, 4), (5, 8), (64, 64), (1000, 64)] {
        assert_eq!(
            ZBud::with_shards(Arc::clone(&src), asked).shards(),
            got,
            "{asked}"
        );
    }
    assert_eq!(zbud::MAX_SHARDS, 64);
}

#[test]
fn one_thread_keeps_every_object_in_shard_zero_and_packs_as_one_shard() {
    let (p, _src) = pool();
    let one = ZBud::with_shards(HeapPageSource, 1);
    let mut hs = Vec::new();
    for i in 0..500usize {
        let len = [300, 1500, 2600, 3900, 4096, 900][i % 6] * S - i % 40;
        let d = data(len, i as u8);
        let h = p.store(&d).unwrap();
        let h1 = one.store(&d).unwrap();
        assert_eq!(p.locate(h).unwrap().shard, 0);
        let (l, l1) = (p.locate(h).unwrap(), one.locate(h1).unwrap());
        assert_eq!((l.frame_index, l.buddy), (l1.frame_index, l1.buddy));
        hs.push((h, h1));
        if i % 3 == 0 {
            let (a, b) = hs.swap_remove(i % hs.len());
            p.free(a).unwrap();
            one.free(b).unwrap();
        }
    }
    assert_eq!(p.total_frames(), one.total_frames());
    assert_eq!(p.compact(), one.compact());
    assert_eq!(p.total_frames(), one.total_frames());
}

#[test]
fn handles_carry_their_shard_and_shards_keep_their_own_entries() {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    let p = ZBud::with_shards_round_robin(Arc::clone(&src), 4);
    let hs: Vec<Handle> = (0..8u8)
        .map(|i| p.store(&data(3000 * S, i)).unwrap())
        .collect();
    for (i, h) in hs.iter().enumerate() {
        let shard = i % 4;
        assert_eq!(p.locate(*h).unwrap().shard, shard);
        // Entry index = local << 2 | shard; local = i / 4; generation 0.
        let index = (h.to_raw() >> GEN) - 1;
        assert_eq!((index & 3, index >> 2), (shard as u64, (i / 4) as u64));
        assert_eq!(h.to_raw() & ((1u64 << GEN) - 1), 0);
        assert_eq!(read_back(&p, *h), data(3000 * S, i as u8));
    }
    // Objects of different shards never share a frame.
    let addrs: std::collections::HashSet<usize> = hs
        .iter()
        .map(|h| p.locate(*h).unwrap().frame_addr)
        .collect();
    assert_eq!((addrs.len(), src.live()), (8, 8));
    // Free shard 3's objects: a handle moved to shard 3 (same local entry, same
    // generation) is refused; one moved to a live shard's entry names that object.
    p.free(hs[3]).unwrap();
    p.free(hs[7]).unwrap();
    let to_shard = |h: Handle, s: u64| {
        let index = (h.to_raw() >> GEN) - 1;
        Handle::from_raw((((index & !3) | s) + 1) << GEN | (h.to_raw() & ((1u64 << GEN) - 1)))
            .unwrap()
    };
    let mut buf = vec![0u8; PAGE_SIZE];
    for h in [hs[0], hs[1], hs[2], hs[4], hs[5], hs[6]] {
        assert_eq!(
            p.read(to_shard(h, 3), &mut buf),
            Err(ZPoolError::InvalidHandle)
        );
        assert_eq!(p.free(to_shard(h, 3)), Err(ZPoolError::InvalidHandle));
    }
    assert_eq!(to_shard(hs[1], 2), hs[2]);
    assert_eq!(p.free(hs[3]), Err(ZPoolError::InvalidHandle), "double free");
    // Shard 3's entries are reused with a new generation; the others' are untouched.
    let again = p.store(&data(100, 9)).unwrap(); // the 9th store: shard 0 again
    assert_eq!(p.locate(again).unwrap().shard, 0);
    for s in 1..4u64 {
        let h = p.store(&data(100, 9)).unwrap();
        assert_eq!(p.locate(h).unwrap().shard as u64, s);
        let (index, generation) = ((h.to_raw() >> GEN) - 1, h.to_raw() & ((1u64 << GEN) - 1));
        if s == 3 {
            // Shard 3's free list is LIFO: hs[7]'s entry (local 1), one generation on.
            assert_eq!((index, generation), ((1 << 2) | 3, 1));
        } else {
            assert_eq!((index, generation), ((2 << 2) | s, 0), "a fresh entry");
        }
    }
    assert_eq!(read_back(&p, hs[4]), data(3000 * S, 4));
}

#[test]
fn compaction_goes_round_every_shard_and_stats_sum_them() {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    let p = ZBud::with_shards_round_robin(Arc::clone(&src), 4);
    // 40 objects of 1500 B, object i in shard i % 4: each shard pairs its 10 into 5
    // frames. Freeing the second of each pair leaves 5 lone frames per shard, which
    // compaction packs into 3: 20 frames -> 12.
    let hs: Vec<Handle> = (0..40u8)
        .map(|i| p.store(&data(1500 * S, i)).unwrap())
        .collect();
    assert_eq!((p.total_frames(), src.live()), (20, 20));
    let mut keep = Vec::new();
    for (i, h) in hs.into_iter().enumerate() {
        if (i / 4) % 2 == 1 {
            p.free(h).unwrap();
        } else {
            keep.push((h, i as u8));
        }
    }
    let st = p.zbud_stats();
    assert_eq!((st.frames, st.objects, st.lone_frames), (20, 20, 20));
    assert_eq!(st.bytes, 20 * 1500 * S);
    let mut freed = 0;
    let mut steps = 0;
    loop {
        let s = p.compact_step(1);
        assert!(s.objects_moved <= 2);
        freed += s.frames_freed;
        steps += 1;
        assert!(steps < 1000, "compaction never ends");
        if s.done {
            break;
        }
    }
    assert_eq!(freed, 8);
    assert_eq!((p.total_frames(), src.live()), (12, 12));
    let st = p.zbud_stats();
    assert_eq!(
        (
            st.frames,
            st.lone_frames,
            st.buddied_frames,
            st.compacted_frames
        ),
        (12, 4, 8, 8)
    );
    let ps = p.stats();
    assert_eq!((ps.frames, ps.objects, ps.bytes), (12, 20, 20 * 1500 * S));
    assert!(ps.metadata_bytes >= st.descriptor_bytes + st.handle_bytes);
    for &(h, i) in &keep {
        assert_eq!(read_back(&p, h), data(1500 * S, i));
        assert_eq!(
            p.locate(h).unwrap().shard,
            i as usize % 4,
            "moved within its shard"
        );
    }
    assert_eq!(p.compact(), 0);
    for (h, _) in keep {
        p.free(h).unwrap();
    }
    assert_eq!((p.total_frames(), src.live()), (0, 0));
}

#[test]
fn a_shard_hint_picks_the_start_shard() {
    fn three() -> usize {
        3
    }
    fn six() -> usize {
        6
    }
    let p = ZBud::with_shard_hint(HeapPageSource, 4, three);
    let q = ZBud::with_shard_hint(HeapPageSource, 4, six);
    for i in 0..20u8 {
        let h = p.store(&data(1500 * S, i)).unwrap();
        assert_eq!(p.locate(h).unwrap().shard, 3);
        let h = q.store(&data(1500 * S, i)).unwrap();
        assert_eq!(q.locate(h).unwrap().shard, 2, "6 % 4");
    }
    assert_eq!(p.shard_stats(3).unwrap().objects, 20);
    assert_eq!(p.shard_stats(0).unwrap().objects, 0);
    assert_eq!(p.shard_stats(4), None);
    assert_eq!((p.total_frames(), p.zbud_stats().frames), (10, 10));
}
