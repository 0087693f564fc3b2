//! The front ends by value: `SwapArea` and `Mount` see the same pages as the key-based
//! calls, work through `Arc<Zcache>` from several threads, and end cleanly however the
//! area or mount is ended.

use std::sync::Arc;

use zcache::testing::test_page;
use zcache::{Config, Mount, Oid, SwapArea, Zcache, ZcacheError};
use zpool::HeapPageSource;

fn zcache() -> Arc<Zcache> {
    Arc::new(Zcache::new(Config::default(), HeapPageSource).unwrap())
}

/// Seeds of compressible test pages (not the random kind).
fn seed(i: u64) -> u32 {
    let s = i as u32 * 8 + 3;
    s + u32::from(s % 8 == 7)
}

#[test]
fn a_swap_area_and_the_key_based_calls_share_pages_across_threads() {
    let z = zcache();
    let area = Arc::new(SwapArea::swapon(z.clone(), 3).unwrap());
    assert_eq!(area.swap_type(), 3);
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let a = area.clone();
            std::thread::spawn(move || {
                let mut out = [0u8; zcache::PAGE_SIZE];
                for i in (t * 1000)..(t * 1000 + 300) {
                    a.store(i, &test_page(seed(i))).unwrap();
                    assert!(a.load(i, &mut out).unwrap());
                    assert_eq!(out, test_page(seed(i)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut out = [0u8; zcache::PAGE_SIZE];
    // The key-based calls see the area's pages, and the other way round.
    assert!(z.frontswap().load(3, 1005, &mut out).unwrap());
    assert_eq!(out, test_page(seed(1005)));
    z.frontswap().store(3, 7777, &test_page(seed(7))).unwrap();
    assert!(area.load(7777, &mut out).unwrap());
    assert!(area.invalidate_page(7777).unwrap());
    assert!(!z.frontswap().load(3, 7777, &mut out).unwrap());
    // A second value of the same area; swapoff through one ends both.
    let other = z.frontswap().area(3).unwrap();
    assert_eq!(Arc::try_unwrap(area).ok().unwrap().swapoff().unwrap(), 600);
    assert_eq!(other.load(1, &mut out), Err(ZcacheError::PoolDestroyed));
    assert_eq!(
        other.store(1, &test_page(3)),
        Err(ZcacheError::PoolDestroyed)
    );
    assert_eq!(
        z.frontswap().load(3, 1, &mut out),
        Err(ZcacheError::UnknownSwapType)
    );
    // A new area of the type: the old value neither sees it nor ends it.
    let fresh = SwapArea::swapon(&*z, 3).unwrap();
    fresh.store(1, &test_page(11)).unwrap();
    assert_eq!(other.load(1, &mut out), Err(ZcacheError::PoolDestroyed));
    assert_eq!(other.swapoff(), Err(ZcacheError::UnknownSwapType));
    assert!(fresh.load(1, &mut out).unwrap());
    assert_eq!(fresh.swapoff().unwrap(), 1);
    assert_eq!(z.stored_pages(), 0);
    assert!(matches!(
        SwapArea::open(&*z, 3),
        Err(ZcacheError::UnknownSwapType)
    ));
}

#[test]
fn a_mount_and_the_key_based_calls_share_pages() {
    let z = zcache();
    let m = Mount::new(z.clone()).unwrap();
    let file = Oid::new(42, 0, 0);
    let mut out = [0u8; zcache::PAGE_SIZE];
    for i in 0..100u64 {
        m.put_page(file, i, &test_page(seed(i)));
    }
    // Key-based get of the mount's pool (private pools give the page up).
    assert!(z.cleancache().get_page(m.pool_id(), file, 5, &mut out));
    assert_eq!(out, test_page(seed(5)));
    assert!(!m.get_page(file, 5, &mut out));
    assert!(m.get_page(file, 6, &mut out));
    m.invalidate_page(file, 7);
    assert!(!m.get_page(file, 7, &mut out));
    m.invalidate_inode(file);
    assert!(!m.get_page(file, 8, &mut out));
    assert_eq!(z.stored_pages(), 0);
    m.put_page(file, 1, &test_page(seed(1)));
    // Ended through the key-based unmount: the value's puts keep nothing, gets miss,
    // and its own unmount reports that it has ended.
    z.cleancache().invalidate_fs(m.pool_id()).unwrap();
    assert_eq!(z.stored_pages(), 0);
    m.put_page(file, 2, &test_page(seed(2)));
    assert!(!m.get_page(file, 2, &mut out));
    assert_eq!(m.unmount(), Err(ZcacheError::UnknownPool));
    assert_eq!(z.stored_pages(), 0);
}

#[test]
fn shared_mounts_keep_their_pool_until_the_last_unmount() {
    let z = zcache();
    let uuid = [7u8; 16];
    let a = z.cleancache().mount_shared(uuid).unwrap();
    let b = Mount::new_shared(&*z, uuid).unwrap();
    assert_eq!(a.pool_id(), b.pool_id());
    let file = Oid::new(9, 0, 0);
    a.put_page(file, 0, &test_page(seed(0)));
    let mut out = [0u8; zcache::PAGE_SIZE];
    // A shared pool keeps the page for the other mounts.
    assert!(b.get_page(file, 0, &mut out));
    assert!(a.get_page(file, 0, &mut out));
    a.unmount().unwrap();
    assert!(b.get_page(file, 0, &mut out));
    b.unmount().unwrap();
    assert_eq!(z.stored_pages(), 0);
}
