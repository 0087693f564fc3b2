//! The `host-lock` back end (`cargo test -p zplat --features host-lock --test host_lock`):
//! a host names its own lock types once with `zplat::host_locks!`, and every
//! `zplat::sync` lock then runs the host's code. The host here wraps the `spin` crate's
//! locks and counts each operation, so the test sees that the hooks, not a built-in
//! lock, do the work, that each lock is built once from the host's `INIT`, and that
//! exclusion holds.

#[path = "support/spin_host.rs"]
mod spin_host;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use spin_host::{BUILT, LOCKS, SHARED, UNLOCKS};
use zplat::sync::{LOCK_KIND, Mutex, RwLock};

#[test]
fn the_build_runs_the_hosts_locks() {
    assert_eq!(LOCK_KIND, "host-lock");
    let before = (
        LOCKS.load(Ordering::Relaxed),
        UNLOCKS.load(Ordering::Relaxed),
    );
    let m = Mutex::new(1u32);
    *m.lock() += 1;
    assert!(m.try_lock().is_some());
    let g = m.lock();
    assert!(m.try_lock().is_none(), "the host's lock excludes");
    drop(g);
    let after = (
        LOCKS.load(Ordering::Relaxed),
        UNLOCKS.load(Ordering::Relaxed),
    );
    assert!(after.0 - before.0 >= 3 && after.1 - before.1 >= 3);
    let shared = SHARED.load(Ordering::Relaxed);
    let l = RwLock::new(0u8);
    let r = l.read();
    assert!(l.try_write().is_none());
    drop(r);
    assert!(SHARED.load(Ordering::Relaxed) > shared);
}

#[test]
fn each_lock_is_built_once_at_first_use_and_knows_where_it_was_made() {
    let line = line!() + 1;
    let m = Mutex::new(0u8);
    let built = |line: u32| {
        BUILT
            .lock()
            .unwrap()
            .iter()
            .filter(|&&(f, l)| f.ends_with("host_lock.rs") && l == line)
            .count()
    };
    assert_eq!(built(line), 0, "not built before its first use");
    for _ in 0..10 {
        *m.lock() += 1;
    }
    assert_eq!(built(line), 1, "built once, at the site of Mutex::new");
    let line2 = line!() + 1;
    let l = RwLock::new(());
    drop(l.write());
    drop(l.read());
    assert_eq!(built(line2), 1);
}

#[test]
fn first_use_from_two_threads_builds_one_lock_and_excludes() {
    // Few rounds under Miri (which checks the storage's unsafe code, ~100x slower).
    let (rounds, per_thread) = if cfg!(miri) { (3, 20) } else { (200, 500) };
    for _ in 0..rounds {
        // A fresh lock each round: both threads race to build it at first use.
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    for _ in 0..per_thread {
                        let mut g = m.lock();
                        let v = *g;
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("worker");
        }
        assert_eq!(*m.lock(), 2 * per_thread);
    }
}

#[test]
fn a_lock_moved_after_use_still_works() {
    let m = Mutex::new(vec![1u8]);
    m.lock().push(2);
    let boxed = Box::new(m);
    boxed.lock().push(3);
    let v: Vec<Mutex<u8>> = (0..64).map(Mutex::new).collect();
    for (i, m) in v.iter().enumerate() {
        assert_eq!(*m.lock() as usize, i);
    }
    let mut v = v;
    v.reserve(1000); // moves every lock
    for (i, m) in v.iter().enumerate() {
        assert_eq!(*m.lock() as usize, i);
    }
    assert_eq!(*boxed.lock(), vec![1, 2, 3]);
}
