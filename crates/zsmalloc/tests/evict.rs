//! LRU eviction (`ZPool::evict_lru`): the order zspages are taken in, callbacks that keep
//! or free objects, frees and stores from inside the callback, compaction from inside the
//! callback and after eviction, and frame accounting against the page source.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

use zpool::testing::CountingSource;
use zpool::{EvictOutcome, Handle, HeapPageSource, PAGE_SIZE, ZPool, ZPoolError};
use zsmalloc::{ClassStats, PoolConfig, ZsPool};

type Src = Arc<CountingSource<HeapPageSource>>;

/// Four 1 KiB slots per one-frame zspage (1000-byte objects), so zspages are easy to
/// count; larger objects go to the huge class.
const ONE_K: PoolConfig = PoolConfig {
    max_chain: 1,
    min_class: 1024,
    small_spacing: 1024,
    split: 4096,
    spacing: 1024,
};

fn pool(config: PoolConfig) -> (Src, ZsPool<Src>) {
    let src = Arc::new(CountingSource::new(HeapPageSource));
    let pool = ZsPool::with_config(src.clone(), config).expect("pool");
    (src, pool)
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

fn class<S: zpool::PageSource>(pool: &ZsPool<S>, len: usize) -> ClassStats {
    let cls = pool.class_index(len).expect("class");
    let mut row = ClassStats::default();
    pool.for_each_class(|c| {
        if c.index == cls {
            row = *c;
        }
    });
    row
}

/// Zspages are evicted in the order of their last allocation, across classes: a free
/// does not make a zspage younger, an allocation does. A callback that frees nothing
/// leaves every object readable and relists each zspage at the most recently used end,
/// so the same order comes back.
#[test]
fn lru_order_is_last_allocation_across_classes() {
    let (src, pool) = pool(ONE_K);
    let len = 1000;
    // Z1: a0..a3 (full).
    let a: Vec<Handle> = (0..4)
        .map(|i| pool.store(&pattern(len, i)).expect("store"))
        .collect();
    // A huge object: its own frame, younger than Z1.
    let big = pool.store(&pattern(3500, 50)).expect("store");
    // Z2: a4, younger than the huge frame.
    let a4 = pool.store(&pattern(len, 4)).expect("store");
    // Free a0 (no LRU move), then store a5: Z1 (3 of 4) is the fullest with room, so
    // a5 goes there and Z1 becomes the youngest.
    pool.free(a[0]).expect("free");
    let a5 = pool.store(&pattern(len, 5)).expect("store");
    assert_eq!(src.live(), 3);
    let want: Vec<HashSet<Handle>> = vec![[big].into(), [a4].into(), [a[1], a[2], a[3], a5].into()];
    for round in 0..2 {
        let mut seen: Vec<Handle> = Vec::new();
        let r = pool.evict_lru(3, &mut |h| seen.push(h));
        assert_eq!(r, Err(ZPoolError::NothingToEvict), "round {round}");
        assert_eq!(seen.len(), 6, "round {round}: {seen:?}");
        let got: Vec<HashSet<Handle>> = vec![
            seen[..1].iter().copied().collect(),
            seen[1..2].iter().copied().collect(),
            seen[2..].iter().copied().collect(),
        ];
        assert_eq!(got, want, "round {round}");
        assert_eq!(src.live(), 3);
        assert_eq!(pool.total_frames(), 3);
        for (i, &h) in a.iter().enumerate().skip(1) {
            assert_eq!(read_back(&pool, h), pattern(len, i as u64));
        }
        assert_eq!(read_back(&pool, a4), pattern(len, 4));
        assert_eq!(read_back(&pool, a5), pattern(len, 5));
        assert_eq!(read_back(&pool, big), pattern(3500, 50));
    }
    // `retries` bounds the zspages tried.
    let mut calls = 0;
    assert_eq!(
        pool.evict_lru(1, &mut |_| calls += 1),
        Err(ZPoolError::NothingToEvict)
    );
    assert_eq!(
        calls, 1,
        "only the oldest zspage (the huge frame) was tried"
    );
    assert_eq!(
        pool.evict_lru(0, &mut |_| calls += 1),
        Err(ZPoolError::NothingToEvict)
    );
    assert_eq!(calls, 1);
    // The relisted huge frame is now the youngest: Z2 is the oldest.
    let mut seen = Vec::new();
    let r = pool.evict_lru(1, &mut |h| {
        seen.push(h);
        pool.free(h).expect("free");
    });
    assert_eq!(
        r,
        Ok(EvictOutcome {
            frames_freed: 1,
            objects_evicted: 1
        })
    );
    assert_eq!(seen, [a4]);
    assert_eq!(src.live(), 2);
    assert_eq!(pool.total_frames(), 2);
}

/// A callback that frees every object gives the zspage's frames back (all of a
/// multi-frame zspage), and the handles are dead.
#[test]
fn freeing_everything_returns_the_zspage_frames() {
    let (src, pool) = pool(PoolConfig::DEFAULT);
    let len = 1500;
    let k = class(&pool, len).frames_per_zspage;
    let m = class(&pool, len).objs_per_zspage;
    assert!(k > 1, "a multi-frame class");
    let hs: Vec<Handle> = (0..m)
        .map(|i| pool.store(&pattern(len, i as u64)).expect("store"))
        .collect();
    assert_eq!(src.live(), k);
    let mut seen = Vec::new();
    let r = pool.evict_lru(1, &mut |h| {
        assert_eq!(pool.object_len(h), Ok(len));
        seen.push(h);
        pool.free(h).expect("free");
    });
    assert_eq!(
        r,
        Ok(EvictOutcome {
            frames_freed: k,
            objects_evicted: m
        })
    );
    assert_eq!(
        seen.iter().copied().collect::<HashSet<_>>(),
        hs.iter().copied().collect()
    );
    assert_eq!(src.live(), 0);
    assert_eq!(pool.total_frames(), 0);
    assert_eq!(pool.stats().objects, 0);
    for h in hs {
        assert_eq!(pool.free(h), Err(ZPoolError::InvalidHandle));
    }
    assert_eq!(
        pool.evict_lru(4, &mut |_| panic!("empty pool")),
        Err(ZPoolError::NothingToEvict)
    );
}

/// Keeping some objects relists the zspage and the next one is tried; objects kept stay
/// readable; `objects_evicted` counts the frees.
#[test]
fn a_partly_evicted_zspage_is_relisted_and_the_next_is_tried() {
    let (src, pool) = pool(ONE_K);
    let len = 1000;
    let hs: Vec<Handle> = (0..8)
        .map(|i| pool.store(&pattern(len, i)).expect("store"))
        .collect();
    assert_eq!(src.live(), 2);
    // Z1 (hs[0..4]) is the oldest: keep hs[1], free the rest; then Z2 goes whole.
    let kept = hs[1];
    let mut seen = Vec::new();
    let r = pool.evict_lru(2, &mut |h| {
        seen.push(h);
        if h != kept {
            pool.free(h).expect("free");
        }
    });
    assert_eq!(
        r,
        Ok(EvictOutcome {
            frames_freed: 1,
            objects_evicted: 7
        })
    );
    assert_eq!(seen.len(), 8);
    assert_eq!(src.live(), 1);
    assert_eq!(read_back(&pool, kept), pattern(len, 1));
    assert_eq!(pool.stats().objects, 1);
    // The relisted zspage takes allocations again.
    let h = pool.store(&pattern(len, 99)).expect("store");
    assert_eq!(src.live(), 1);
    assert_eq!(read_back(&pool, h), pattern(len, 99));
}

/// From inside the callback: frees of other objects of the dying zspage (not yet
/// handed: they must not be handed later), double frees, reads, stores of the same
/// class (they must go to another zspage) and compaction (it must not touch the dying
/// zspage). Many objects per zspage, so the handles come in several batches.
#[test]
fn callback_frees_stores_and_compacts_around_the_dying_zspage() {
    let (src, pool) = pool(PoolConfig::DEFAULT);
    let len = 100;
    let m = class(&pool, len).objs_per_zspage;
    assert!(m > 64, "several batches per zspage: {m}");
    let hs: Vec<Handle> = (0..m)
        .map(|i| pool.store(&pattern(len, i as u64)).expect("store"))
        .collect();
    // A second, younger, partly used zspage of the same class, and objects of other
    // classes, so that compaction has work to do.
    let young: Vec<Handle> = (0..m / 3)
        .map(|i| pool.store(&pattern(len, 1000 + i as u64)).expect("store"))
        .collect();
    for &h in young.iter().step_by(2) {
        pool.free(h).expect("free");
    }
    let young: Vec<Handle> = young.into_iter().skip(1).step_by(2).collect();
    let index: std::collections::HashMap<Handle, usize> =
        hs.iter().enumerate().map(|(i, &h)| (h, i)).collect();
    let freed_early = RefCell::new(HashSet::new());
    let stored = RefCell::new(Vec::new());
    let mut handed = Vec::new();
    let r = pool.evict_lru(1, &mut |h| {
        let i = *index.get(&h).expect("a handle of the oldest zspage");
        assert!(
            !freed_early.borrow().contains(&h),
            "handed after it was freed"
        );
        handed.push(h);
        assert_eq!(read_back(&pool, h), pattern(len, i as u64));
        pool.free(h).expect("free");
        assert_eq!(pool.free(h), Err(ZPoolError::InvalidHandle));
        // Free an object further on in the same zspage before it is handed.
        let j = m - 1 - i;
        if j > i && j.is_multiple_of(3) && freed_early.borrow_mut().insert(hs[j]) {
            pool.free(hs[j]).expect("early free");
        }
        // A store of the same class goes elsewhere.
        let s = pool.store(&pattern(len, 5000 + i as u64)).expect("store");
        stored.borrow_mut().push((s, 5000 + i as u64));
        if i.is_multiple_of(16) {
            pool.compact();
        }
    });
    let early = freed_early.borrow().len();
    assert!(early > 0);
    let out = r.expect("evicted");
    assert_eq!(out.objects_evicted, m);
    assert_eq!(
        handed.len() + early,
        m,
        "every object handed once or freed early"
    );
    // Stores from the callback never went into the dying zspage: it was freed whole.
    assert!(out.frames_freed >= 1);
    assert_eq!(pool.total_frames(), src.live());
    assert_eq!(pool.stats().objects, young.len() + stored.borrow().len());
    for &(s, seed) in stored.borrow().iter() {
        assert_eq!(read_back(&pool, s), pattern(len, seed));
    }
    for (i, &h) in young.iter().enumerate() {
        assert_eq!(read_back(&pool, h), pattern(len, 1000 + 1 + 2 * i as u64));
    }
    for h in hs {
        assert_eq!(pool.object_len(h), Err(ZPoolError::InvalidHandle));
    }
    // Compaction afterwards keeps everything and leaves nothing freeable.
    pool.compact();
    assert_eq!(pool.freeable(), 0);
    assert_eq!(pool.total_frames(), src.live());
    for &(s, seed) in stored.borrow().iter() {
        assert_eq!(read_back(&pool, s), pattern(len, seed));
    }
}

/// Eviction after compaction takes the zspages compaction left, in allocation order;
/// compaction does not make a zspage younger.
#[test]
fn eviction_after_compaction() {
    let (src, pool) = pool(ONE_K);
    let len = 1000;
    let hs: Vec<Handle> = (0..12)
        .map(|i| pool.store(&pattern(len, i)).expect("store"))
        .collect();
    // Z1 keeps 1, Z2 keeps 2, Z3 keeps 4.
    for &i in &[0usize, 1, 2, 4, 5] {
        pool.free(hs[i]).expect("free");
    }
    assert_eq!(src.live(), 3);
    assert_eq!(pool.compact(), 1);
    assert_eq!(src.live(), 2);
    let live: Vec<usize> = vec![3, 6, 7, 8, 9, 10, 11];
    for &i in &live {
        assert_eq!(read_back(&pool, hs[i]), pattern(len, i as u64));
    }
    // Evict everything, zspage by zspage.
    let mut order = Vec::new();
    let mut frames = 0;
    loop {
        let mut group = Vec::new();
        match pool.evict_lru(4, &mut |h| {
            group.push(h);
            pool.free(h).expect("free");
        }) {
            Ok(o) => {
                frames += o.frames_freed;
                order.push(group);
            }
            Err(e) => {
                assert_eq!(e, ZPoolError::NothingToEvict);
                break;
            }
        }
    }
    assert_eq!(frames, 2);
    assert_eq!(order.len(), 2);
    // Z2 (objects 6, 7 plus the one moved in) is older than Z3.
    assert!(order[0].contains(&hs[6]) && order[0].contains(&hs[7]));
    assert!(order[1].contains(&hs[8]));
    assert_eq!(src.live(), 0);
    assert_eq!(pool.total_frames(), 0);
}

/// Threads storing, freeing and reading while others evict (each evictor frees what it
/// is handed, unless another thread got there first): no object is lost or corrupted
/// and the frame count matches the page source at the end.
#[test]
fn concurrent_eviction_store_free() {
    use std::sync::Mutex;
    let (src, pool) = pool(PoolConfig::DEFAULT);
    let pool = Arc::new(pool);
    // Owner map: handle -> seed, as zcache's tmem would hold it.
    let owner: Arc<Mutex<std::collections::HashMap<Handle, (usize, u64)>>> =
        Arc::new(Mutex::new(std::collections::HashMap::new()));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            let owner = owner.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..1500u64 {
                    let seed = t * 100_000 + i;
                    let len = 1 + ((seed * 2654435761) % 4000) as usize;
                    if t == 3 && i % 10 == 0 {
                        let _ = pool.evict_lru(2, &mut |h| {
                            // Compare-and-remove from the owner, then check and free.
                            let e = owner.lock().unwrap().remove(&h);
                            if let Some((len, seed)) = e {
                                assert_eq!(read_back(&pool, h), pattern(len, seed));
                                pool.free(h).expect("free");
                            }
                        });
                        continue;
                    }
                    let h = pool.store(&pattern(len, seed)).expect("store");
                    owner.lock().unwrap().insert(h, (len, seed));
                    mine.push(h);
                    if i % 3 == 0 {
                        let h = mine.swap_remove((seed as usize) % mine.len());
                        if owner.lock().unwrap().remove(&h).is_some() {
                            pool.free(h).expect("free");
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let owner = owner.lock().unwrap();
    assert_eq!(pool.stats().objects, owner.len());
    for (&h, &(len, seed)) in owner.iter() {
        assert_eq!(read_back(&pool, h), pattern(len, seed));
    }
    assert_eq!(pool.total_frames(), src.live());
}
