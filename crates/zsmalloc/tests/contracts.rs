//! Targeted contracts: class layout and merging, lazy zspage growth, spanning and huge
//! objects, fullest-first allocation, compaction and `freeable`, failure at every frame,
//! corrupted pool memory, stale and forged handles, teardown, concurrent use.

use std::sync::Arc;

use zpool::testing::{CorruptingSource, CountingSource, FailMode, FailingSource};
use zpool::{Handle, HeapPageSource, PAGE_SIZE, ZPool, ZPoolError};
use zsmalloc::{ClassStats, CreateError, OBJ_HEADER_SIZE, PoolConfig, ZsPool};

type Src = Arc<CountingSource<FailingSource<HeapPageSource>>>;

fn source() -> Src {
    Arc::new(CountingSource::new(FailingSource::new(HeapPageSource)))
}

fn classes<S: zpool::PageSource>(pool: &ZsPool<S>) -> Vec<ClassStats> {
    let mut v = Vec::new();
    pool.for_each_class(|c| v.push(*c));
    v
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed * 7) as u8)
        .collect()
}

fn read_back<S: zpool::PageSource>(pool: &ZsPool<S>, h: Handle) -> Vec<u8> {
    let mut out = vec![0u8; PAGE_SIZE];
    let n = pool.read(h, &mut out).expect("read");
    out.truncate(n);
    out
}

/// Every length maps to exactly one class whose range holds it; class geometry wastes
/// no more than any other chain length allowed; adjacent classes differ (merged).
#[test]
fn class_table_is_consistent_and_merged() {
    for config in [
        PoolConfig::DEFAULT,
        PoolConfig::FINE,
        PoolConfig {
            max_chain: 4,
            ..PoolConfig::FINE
        },
    ] {
        let pool = ZsPool::with_config(HeapPageSource, config).expect("pool");
        let table = classes(&pool);
        assert_eq!(table.len(), pool.class_count());
        assert!(table.last().expect("huge class").huge);
        for len in 1..=PAGE_SIZE {
            let i = pool.class_index(len).expect("class");
            let c = &table[i];
            assert!(
                c.min_len <= len && len <= c.max_len,
                "len {len} in class {c:?}"
            );
            if !c.huge {
                assert!(len + OBJ_HEADER_SIZE <= c.size);
            }
        }
        assert_eq!(pool.class_index(0), None);
        assert_eq!(pool.class_index(PAGE_SIZE + 1), None);
        for w in table.windows(2) {
            assert!(w[0].max_len < w[1].min_len);
            if !w[1].huge {
                assert_ne!(
                    (w[0].frames_per_zspage, w[0].objs_per_zspage),
                    (w[1].frames_per_zspage, w[1].objs_per_zspage),
                    "classes with identical geometry must be merged"
                );
            }
        }
        for c in table.iter().filter(|c| !c.huge) {
            let k = c.frames_per_zspage;
            // Slot numbers take PAGE_SHIFT - 3 bits: 511, 2047, 8191 slots at most.
            let cap = PAGE_SIZE / 8;
            assert!(k <= config.max_chain && c.objs_per_zspage < cap);
            assert!(c.objs_per_zspage * c.size <= k * PAGE_SIZE);
            // Least waste fraction among the chain lengths allowed.
            let waste = |k: usize| {
                let m = (k * PAGE_SIZE / c.size).min(cap);
                (k * PAGE_SIZE - m * c.size) as f64 / (k * PAGE_SIZE) as f64
            };
            let kmax = config.max_chain.min((cap * c.size / PAGE_SIZE).max(1));
            let best = (1..=kmax).map(waste).fold(f64::INFINITY, f64::min);
            assert!(waste(k) <= best + 1e-12, "class {c:?}");
        }
        assert_eq!(pool.huge_class_size(), table[table.len() - 2].max_len + 1);
    }
}

#[test]
fn bad_configs_are_rejected() {
    let bad = [
        PoolConfig {
            max_chain: 0,
            ..PoolConfig::DEFAULT
        },
        PoolConfig {
            max_chain: 256,
            ..PoolConfig::DEFAULT
        },
        PoolConfig {
            min_class: 12,
            ..PoolConfig::DEFAULT
        },
        PoolConfig {
            spacing: 0,
            ..PoolConfig::DEFAULT
        },
        PoolConfig {
            small_spacing: 20,
            ..PoolConfig::DEFAULT
        },
        PoolConfig {
            min_class: 8,
            small_spacing: 8,
            split: 4096,
            spacing: 8,
            max_chain: 64,
        },
    ];
    for c in bad {
        assert!(
            matches!(
                ZsPool::with_config(HeapPageSource, c),
                Err(CreateError::InvalidConfig(_))
            ),
            "{c:?}"
        );
    }
}

/// A zspage takes frames one at a time as its slots need them, objects span frames and
/// read back intact.
#[test]
fn zspages_grow_lazily_and_objects_span_frames() {
    let src = source();
    let pool = ZsPool::new(src.clone()).expect("pool");
    let len = 1500; // slot 1536 (32-byte spacing below 1024, 48 above): spans frames
    let cls = pool.class_index(len).expect("class");
    let c = classes(&pool)[cls];
    assert!(c.objs_per_zspage > 3 && c.frames_per_zspage > 1, "{c:?}");
    let mut handles = Vec::new();
    for i in 0..c.objs_per_zspage {
        handles.push(pool.store(&pattern(len, i as u64)).expect("store"));
        let want = ((i + 1) * c.size).div_ceil(PAGE_SIZE);
        assert_eq!(pool.total_frames(), want, "after {} objects", i + 1);
        assert_eq!(src.live(), want);
    }
    assert_eq!(pool.total_frames(), c.frames_per_zspage);
    for (i, &h) in handles.iter().enumerate() {
        assert_eq!(read_back(&pool, h), pattern(len, i as u64));
    }
    // The next object opens a second zspage.
    handles.push(pool.store(&pattern(len, 99)).expect("store"));
    assert_eq!(pool.total_frames(), c.frames_per_zspage + 1);
    let row = classes(&pool)[cls];
    assert_eq!(row.zspages, 2);
    assert_eq!(row.fullness[11], 1);
    for h in handles {
        pool.free(h).expect("free");
    }
    assert_eq!(pool.total_frames(), 0);
    assert_eq!(src.live(), 0);
}

#[test]
fn huge_objects_live_alone_in_a_frame() {
    let src = source();
    let pool = ZsPool::new(src.clone()).expect("pool");
    let huge = pool.huge_class_size();
    let a = pool.store(&pattern(PAGE_SIZE, 1)).expect("store");
    let b = pool.store(&pattern(huge, 2)).expect("store");
    assert_eq!(pool.total_frames(), 2);
    assert_eq!(read_back(&pool, a), pattern(PAGE_SIZE, 1));
    assert_eq!(read_back(&pool, b), pattern(huge, 2));
    assert_eq!(pool.object_len(b), Ok(huge));
    // Just under the huge size goes to a normal class.
    let c = pool.store(&pattern(huge - 1, 3)).expect("store");
    assert!(!classes(&pool)[pool.class_index(huge - 1).expect("class")].huge);
    pool.free(a).expect("free");
    assert_eq!(pool.free(a), Err(ZPoolError::InvalidHandle));
    assert_eq!(read_back(&pool, b), pattern(huge, 2));
    pool.free(b).expect("free");
    pool.free(c).expect("free");
    assert_eq!(src.live(), 0);
    assert_eq!(pool.store(&[]), Err(ZPoolError::ZeroSize));
    assert_eq!(
        pool.malloc(PAGE_SIZE + 1),
        Err(ZPoolError::TooLarge {
            len: PAGE_SIZE + 1,
            max: PAGE_SIZE
        })
    );
}

/// Allocation goes to the fullest zspage with room, not the newest or the emptiest.
#[test]
fn allocation_prefers_the_fullest_zspage() {
    let pool = ZsPool::new(HeapPageSource).expect("pool");
    let len = 200;
    let cls = pool.class_index(len).expect("class");
    let m = classes(&pool)[cls].objs_per_zspage;
    // Three zspages: A full, B full, C one object.
    let hs: Vec<Handle> = (0..2 * m + 1)
        .map(|i| pool.store(&pattern(len, i as u64)).expect("store"))
        .collect();
    // Free most of A and a few of B: B is fuller than A, both fuller than C? No: C has 1.
    for &h in &hs[..m - 2] {
        pool.free(h).expect("free");
    }
    for &h in &hs[m..m + 3] {
        pool.free(h).expect("free");
    }
    let before = classes(&pool)[cls];
    // New objects fill B's three holes first (B is the fullest with room).
    let frames = pool.total_frames();
    for i in 0..3 {
        pool.store(&pattern(len, 1000 + i)).expect("store");
    }
    let after = classes(&pool)[cls];
    assert_eq!(pool.total_frames(), frames, "holes reused, no frame taken");
    assert_eq!(
        after.fullness[11],
        before.fullness[11] + 1,
        "B is full again: {before:?} -> {after:?}"
    );
}

/// compact() frees exactly what freeable() promised, objects keep their handles and
/// bytes, and the result is the minimum the class geometry allows.
#[test]
fn compaction_frees_what_freeable_promises() {
    let src = source();
    let pool = ZsPool::new(src.clone()).expect("pool");
    let mut live: Vec<(Handle, Vec<u8>)> = Vec::new();
    let mut dead = Vec::new();
    for i in 0..3000u64 {
        let len = 300 + (i as usize * 37) % 2500;
        let data = pattern(len, i);
        let h = pool.store(&data).expect("store");
        if i % 3 == 0 {
            live.push((h, data))
        } else {
            dead.push(h)
        }
    }
    for h in dead {
        pool.free(h).expect("free");
    }
    let promised = pool.freeable();
    assert!(promised > 0 && pool.can_compact());
    let table_before: usize = classes(&pool).iter().map(|c| c.freeable).sum();
    assert_eq!(table_before, promised);
    let frames = pool.total_frames();
    let freed = pool.compact();
    assert_eq!(freed, promised);
    assert_eq!(pool.total_frames(), frames - freed);
    assert_eq!(src.live(), pool.total_frames());
    assert_eq!(pool.frames_compacted(), freed);
    assert_eq!(pool.freeable(), 0);
    assert!(!pool.can_compact());
    for c in classes(&pool) {
        // At most one partly used zspage per class, and it holds only the frames its
        // objects need.
        let partial: usize = c.fullness[1..11].iter().sum();
        assert!(partial <= 1, "{c:?}");
        if !c.huge && c.objs_used > 0 {
            let m = c.objs_per_zspage;
            let min = c.objs_used / m * c.frames_per_zspage
                + ((c.objs_used % m) * c.size).div_ceil(PAGE_SIZE);
            assert_eq!(c.frames, min, "{c:?}");
        }
    }
    for (h, data) in &live {
        assert_eq!(&read_back(&pool, *h), data);
    }
    assert_eq!(pool.compact(), 0);
    for (h, _) in live {
        pool.free(h).expect("free");
    }
    assert_eq!(src.live(), 0);
    assert_eq!(pool.stats().objects, 0);
}

/// A page-source failure at any frame leaves the pool as it was: earlier objects intact,
/// frame counts exact, NoMemory returned, and everything can still be freed.
#[test]
fn failure_at_every_frame_leaves_the_pool_consistent() {
    for fail_after in 0..40u64 {
        let src = source();
        let pool = ZsPool::with_config(
            src.clone(),
            PoolConfig {
                max_chain: 8,
                ..PoolConfig::DEFAULT
            },
        )
        .expect("pool");
        src.inner().set_mode(FailMode::AfterN(fail_after));
        let mut live = Vec::new();
        let mut failures = 0;
        for i in 0..120u64 {
            // (Lengths for 4 KiB pages, scaled by the page size.)
            let len = [1500usize, 2600, 700, 4096, 3100][i as usize % 5] * (PAGE_SIZE / 4096);
            let data = pattern(len, i);
            match pool.store(&data) {
                Ok(h) => live.push((h, data)),
                Err(e) => {
                    assert_eq!(e, ZPoolError::NoMemory);
                    failures += 1;
                }
            }
            assert_eq!(pool.total_frames(), src.live());
            assert_eq!(pool.stats().objects, live.len());
        }
        assert!(failures > 0);
        for (h, data) in &live {
            assert_eq!(&read_back(&pool, *h), data);
        }
        // Compaction under failure keeps everything consistent too.
        for (h, _) in live.iter().step_by(2) {
            pool.free(*h).expect("free");
        }
        pool.compact();
        assert_eq!(pool.total_frames(), src.live());
        src.inner().set_mode(FailMode::Never);
        for (h, data) in live.iter().skip(1).step_by(2) {
            assert_eq!(&read_back(&pool, *h), data);
        }
        drop(pool);
        assert_eq!(src.live(), 0, "dropping the pool returns every frame");
    }
}

/// Flipped header bits make the handle an error, never a wrong copy or a panic. The
/// header is the slot's back-pointer (entry index, bits 0..22 at 4 KiB pages, 0..20 at
/// 16 KiB, 0..18 at 64 KiB) and the length above the class's shortest (the bits above):
/// a flipped back-pointer bit no longer names the
/// handle's entry (`InvalidHandle`); a flipped length bit gives `InvalidHandle` or a
/// length that still fits the slot.
#[test]
fn corrupted_headers_are_errors() {
    let src = Arc::new(CorruptingSource::new(HeapPageSource));
    let pool = ZsPool::new(src.clone()).expect("pool");
    let h = pool.store(&pattern(100, 1)).expect("store");
    let cap = classes(&pool)[pool.class_index(100).expect("class")].max_len;
    // Index bits: 34 - PAGE_SHIFT (22, 20, 18).
    let index_bits = 34 - PAGE_SIZE.trailing_zeros() as usize;
    for bit in 0..8 * OBJ_HEADER_SIZE {
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        // SAFETY: single-threaded test; the pool is not inside a method and holds no
        // borrow of its frames between calls.
        assert!(unsafe { src.flip_bits(0, byte, mask) });
        let mut out = vec![0u8; PAGE_SIZE];
        match pool.read(h, &mut out) {
            Err(ZPoolError::InvalidHandle) => {}
            Ok(n) => assert!(bit >= index_bits && n <= cap, "bit {bit}: read {n}"),
            Err(e) => panic!("unexpected {e:?}"),
        }
        if bit < index_bits {
            assert_eq!(pool.free(h), Err(ZPoolError::InvalidHandle), "bit {bit}");
        }
        // SAFETY: as above.
        assert!(unsafe { src.flip_bits(0, byte, mask) });
        assert_eq!(read_back(&pool, h), pattern(100, 1));
    }
}

#[test]
fn stale_and_forged_handles_are_errors() {
    let pool = ZsPool::new(HeapPageSource).expect("pool");
    let a = pool.store(&pattern(500, 1)).expect("store");
    pool.free(a).expect("free");
    // The table entry is reused by the next object of the class: the old handle stays
    // invalid (generation differs).
    let b = pool.store(&pattern(500, 2)).expect("store");
    assert_ne!(a, b);
    assert_eq!(pool.free(a), Err(ZPoolError::InvalidHandle));
    assert_eq!(pool.object_len(a), Err(ZPoolError::InvalidHandle));
    assert_eq!(
        pool.write(a, &pattern(500, 3)),
        Err(ZPoolError::InvalidHandle)
    );
    assert_eq!(read_back(&pool, b), pattern(500, 2));
    let raw = b.to_raw();
    for forged in [
        raw ^ 1,
        raw ^ (1 << 24),
        raw ^ (1 << 31),
        raw ^ (1 << 32),
        raw ^ (1 << 47),
        1,
        (1 << 48) - 1,
    ] {
        let h = Handle::from_raw(forged).expect("48-bit");
        assert_eq!(
            pool.read(h, &mut [0u8; PAGE_SIZE]),
            Err(ZPoolError::InvalidHandle),
            "{forged:#x}"
        );
        assert_eq!(pool.free(h), Err(ZPoolError::InvalidHandle));
    }
    assert_eq!(read_back(&pool, b), pattern(500, 2));
    assert_eq!(
        pool.read(b, &mut [0u8; 10]),
        Err(ZPoolError::BadLength {
            object: 500,
            buffer: 10
        })
    );
    assert_eq!(
        pool.write(b, &[0u8; 10]),
        Err(ZPoolError::BadLength {
            object: 500,
            buffer: 10
        })
    );
}

#[test]
fn stats_agree_with_the_class_table() {
    let pool = ZsPool::new(HeapPageSource).expect("pool");
    let mut bytes = 0;
    for i in 0..500usize {
        let len = 1 + (i * 97) % PAGE_SIZE;
        pool.store(&pattern(len, i as u64)).expect("store");
        bytes += len;
    }
    let st = pool.stats();
    assert_eq!(st.objects, 500);
    assert_eq!(st.bytes, bytes);
    assert_eq!(st.frames, pool.total_frames());
    assert!(st.metadata_bytes > 0);
    let table = classes(&pool);
    assert_eq!(table.iter().map(|c| c.objs_used).sum::<usize>(), 500);
    assert_eq!(table.iter().map(|c| c.frames).sum::<usize>(), st.frames);
    for c in &table {
        assert!(c.objs_used <= c.objs_allocated);
        assert_eq!(c.fullness.iter().sum::<usize>(), c.zspages, "{c:?}");
    }
}

/// Threads storing, reading and freeing in the same and in different classes while
/// another compacts: every object reads back its own bytes and the counts add up.
#[test]
fn concurrent_store_read_free_compact() {
    let src = source();
    let pool = Arc::new(ZsPool::new(src.clone()).expect("pool"));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut live: Vec<(Handle, Vec<u8>)> = Vec::new();
                for i in 0..1500u64 {
                    let len =
                        [600usize, 1500, 1500, 2300][((i + t) % 4) as usize] + (i % 40) as usize;
                    let data = pattern(len, t * 100_000 + i);
                    live.push((pool.store(&data).expect("store"), data));
                    if i % 3 == 2 {
                        let (h, d) = live.swap_remove((i as usize * 7) % live.len());
                        assert_eq!(read_back(&pool, h), d);
                        pool.free(h).expect("free");
                    }
                    if t == 0 && i % 100 == 0 {
                        pool.compact();
                    }
                }
                live
            })
        })
        .collect();
    let lives: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    pool.compact();
    assert_eq!(pool.total_frames(), src.live());
    let n: usize = lives.iter().map(Vec::len).sum();
    assert_eq!(pool.stats().objects, n);
    for live in &lives {
        for (h, d) in live {
            assert_eq!(&read_back(&pool, *h), d);
        }
    }
    drop(lives);
    drop(pool);
    assert_eq!(src.live(), 0);
}

/// `read_with` passes an object that lies in one frame in place and copies one that
/// spans two frames through the bounce buffer; both give the object's exact bytes.
#[test]
fn read_with_maps_in_place_or_through_the_bounce_buffer() {
    let pool = ZsPool::new(HeapPageSource).expect("pool");
    let len = 1500 * (PAGE_SIZE / 4096);
    let hs: Vec<Handle> = (0..8u64)
        .map(|i| pool.store(&pattern(len, i)).expect("store"))
        .collect();
    let mut spanning = 0;
    for (i, &h) in hs.iter().enumerate() {
        let mut bounce = vec![0u8; PAGE_SIZE];
        let got = pool.read_with(h, &mut bounce, |s| s.to_vec()).expect("map");
        assert_eq!(got, pattern(len, i as u64));
        // With an empty bounce buffer only in-frame objects can be mapped.
        match pool.read_with(h, &mut [], |s| s.len()) {
            Ok(n) => assert_eq!(n, len),
            Err(e) => {
                assert_eq!(
                    e,
                    ZPoolError::BadLength {
                        object: len,
                        buffer: 0
                    }
                );
                spanning += 1;
            }
        }
    }
    // Slots of 1536 bytes: some of the eight cross a frame boundary.
    assert!(spanning > 0 && spanning < 8, "{spanning}");
    pool.free(hs[0]).expect("free");
    assert_eq!(
        pool.read_with(hs[0], &mut [0u8; PAGE_SIZE], |s| s.len()),
        Err(ZPoolError::InvalidHandle)
    );
}

#[test]
fn class_table_text_lists_used_classes_and_totals() {
    let pool = ZsPool::new(HeapPageSource).expect("pool");
    let hs: Vec<Handle> = (0..40u64)
        .map(|i| pool.store(&pattern(700 + i as usize, i)).expect("store"))
        .collect();
    for h in hs.iter().step_by(3) {
        pool.free(*h).expect("free");
    }
    let mut text = String::new();
    pool.write_class_table(&mut text).expect("fmt");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("class  size") && lines[0].ends_with("freeable"),
        "{text}"
    );
    let used = classes(&pool).iter().filter(|c| c.frames > 0).count();
    assert_eq!(lines.len(), used + 2, "{text}");
    let total = lines.last().expect("total line");
    assert!(total.starts_with("Total"));
    let nums: Vec<usize> = total
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().expect("number"))
        .collect();
    let st = pool.stats();
    assert_eq!(nums[1], st.objects, "{text}");
    assert_eq!(nums[2], st.frames, "{text}");
    assert_eq!(nums[3], pool.freeable(), "{text}");
}

/// Each handle-table entry has its own 17-bit generation, carried by the handle: a
/// stale handle stays refused while its own entry is freed and reused 2^17 - 2 times
/// (the 2^17 - 1st reuse would bring it back; a per-class 16-bit counter used to let it
/// back in at the 65 535th). The same entry is reused every time (LIFO free list).
#[test]
fn a_stale_handle_is_refused_for_every_reuse_of_its_entry_up_to_the_generation_period() {
    let pool = ZsPool::new(HeapPageSource).expect("pool");
    let data = pattern(700, 1);
    let first = pool.store(&data).expect("store");
    pool.free(first).expect("free");
    let index = |h: Handle| h.to_raw() & ((1 << 22) - 1);
    let mut out = vec![0u8; PAGE_SIZE];
    for i in 0..(1u32 << 17) - 2 {
        let h = pool.store(&data).expect("store");
        assert_eq!(index(h), index(first), "reuse {i}: the same entry");
        assert_ne!(h, first, "reuse {i}");
        assert_eq!(pool.read(first, &mut out), Err(ZPoolError::InvalidHandle));
        assert_eq!(pool.free(first), Err(ZPoolError::InvalidHandle));
        pool.free(h).expect("free");
    }
}
