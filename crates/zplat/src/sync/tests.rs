//! The lock layer's own contracts, on whichever back end this build selected.

extern crate std;

use super::{Mutex, RwLock, held_locks};
use std::sync::Arc;
use std::thread;
use std::vec::Vec;

#[test]
fn a_held_mutex_refuses_try_lock_until_released() {
    let m = Mutex::new(5u32);
    let g = m.lock();
    assert!(m.try_lock().is_none());
    assert!(m.try_lock_token().is_none());
    drop(g);
    let mut g = m.try_lock().expect("free after the guard dropped");
    *g += 1;
    drop(g);
    assert_eq!(*m.try_lock_token().expect("free"), 6);
    assert_eq!(m.into_inner(), 6);
}

#[test]
fn rwlock_readers_share_and_writers_exclude() {
    let l = RwLock::new(1u64);
    let r1 = l.read();
    let r2 = l.try_read().expect("readers share");
    assert!(l.try_write().is_none());
    assert_eq!(*r1 + *r2, 2);
    drop((r1, r2));
    let mut w = l.try_write().expect("free");
    *w = 7;
    assert!(l.try_read().is_none());
    drop(w);
    let mut l = l;
    *l.get_mut() += 1;
    assert_eq!(l.into_inner(), 8);
}

/// Increments per thread (few under Miri, which runs ~100x slower).
const ROUNDS: u64 = if cfg!(miri) { 300 } else { 20_000 };

#[test]
fn two_threads_never_lose_an_increment() {
    let m = Arc::new(Mutex::new(0u64));
    let l = Arc::new(RwLock::new(0u64));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (m, l) = (m.clone(), l.clone());
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    // A non-atomic read-modify-write: lost updates show if the lock
                    // does not exclude.
                    let mut g = m.lock();
                    let v = *g;
                    *g = v + 1;
                    drop(g);
                    let mut w = l.write();
                    let v = *w;
                    *w = v + 1;
                    drop(w);
                    let _ = *l.read();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker");
    }
    assert_eq!(*m.lock(), 2 * ROUNDS);
    assert_eq!(*l.read(), 2 * ROUNDS);
}

#[test]
fn guards_are_counted_with_lock_count_and_tokens_never() {
    // Other tests of this binary run in parallel and take locks too, so count only
    // while this test's own guards live, against a floor that they cannot lower.
    let m = Mutex::new(());
    let l = RwLock::new(());
    let g = m.lock();
    let r = l.read();
    let t = Mutex::new(()).try_lock_token().map(|_| ());
    assert!(t.is_some());
    if cfg!(feature = "lock-count") {
        assert!(held_locks() >= 2);
    } else {
        assert_eq!(held_locks(), 0);
    }
    drop((g, r));
}
