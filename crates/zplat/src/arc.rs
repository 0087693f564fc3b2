//! A fallible atomically reference-counted pointer.

use alloc::boxed::Box;
use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

#[cfg(not(loom))]
use core::sync::atomic::{AtomicUsize, Ordering, fence};
#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering, fence};

use crate::try_box;

/// A count above this means clones were leaked on purpose (`mem::forget` in a loop):
/// `alloc::sync::Arc` aborts there; without an abort in `core`, `TryArc` panics.
const MAX_COUNT: usize = isize::MAX as usize;

struct Inner<T> {
    count: AtomicUsize,
    value: T,
}

/// An atomically reference-counted pointer, like `alloc::sync::Arc`, whose constructor
/// reports allocation failure ([`TryArc::new`] returns the value back) instead of
/// aborting.
///
/// It is a strong count only (no weak references) over a block of the global
/// allocator. The orderings are `Arc`'s: `Relaxed` increments, `Release` decrements and
/// an `Acquire` fence before the last owner drops the value, `Acquire` in
/// [`TryArc::get_mut`] and [`TryArc::try_unwrap`].
///
/// `TryArc<dyn Trait>` is not possible (unsized coercion is unstable); the workspace
/// only shares sized types through it.
pub struct TryArc<T> {
    ptr: NonNull<Inner<T>>,
    /// Owns an `Inner<T>` (for the drop check and variance).
    _owns: PhantomData<Inner<T>>,
}

// SAFETY: as for `Arc<T>`: sending a `TryArc` to another thread can let that thread
// drop the last reference (so `T: Send`) while others read through theirs (so
// `T: Sync`). The count itself is atomic.
unsafe impl<T: Send + Sync> Send for TryArc<T> {}
// SAFETY: `&TryArc<T>` gives `&T` and lets another thread clone (and later drop) it,
// as for `Arc<T>`: `T: Send + Sync`.
unsafe impl<T: Send + Sync> Sync for TryArc<T> {}

impl<T> TryArc<T> {
    /// Places `value` on the heap with a count of one, or hands it back when the global
    /// allocator has no memory.
    pub fn new(value: T) -> Result<TryArc<T>, T> {
        let inner = Inner {
            count: AtomicUsize::new(1),
            value,
        };
        match try_box(inner) {
            Ok(b) => Ok(TryArc {
                ptr: NonNull::from(Box::leak(b)),
                _owns: PhantomData,
            }),
            Err(inner) => Err(inner.value),
        }
    }

    fn inner(&self) -> &Inner<T> {
        // SAFETY: `ptr` came from `Box::leak` in `new` and the block is freed only when
        // the count reaches zero, which cannot happen while `self` holds one of them.
        unsafe { self.ptr.as_ref() }
    }

    /// The value, mutably, when this is the only reference.
    pub fn get_mut(this: &mut TryArc<T>) -> Option<&mut T> {
        // `Acquire`: every other owner's accesses happened before its `Release`
        // decrement, so they are all over once we see 1.
        if this.inner().count.load(Ordering::Acquire) == 1 {
            // SAFETY: the count is 1 and it is ours, there are no weak references, and
            // `&mut this` stops anyone cloning it: nobody else can reach the value. The
            // block is live (see `inner`).
            Some(unsafe { &mut (*this.ptr.as_ptr()).value })
        } else {
            None
        }
    }

    /// The value, when this is the only reference; otherwise the pointer back.
    pub fn try_unwrap(this: TryArc<T>) -> Result<T, TryArc<T>> {
        if this
            .inner()
            .count
            .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(this);
        }
        let ptr = this.ptr;
        core::mem::forget(this);
        // SAFETY: we moved the count from 1 (ours) to 0, so no other `TryArc` exists and
        // none can be made; the block came from `Box::leak` of a `Box<Inner<T>>` in
        // `new` and is still live. Forgetting `this` keeps its `Drop` from touching it.
        let inner = unsafe { Box::from_raw(ptr.as_ptr()) };
        Ok(inner.value)
    }

    /// Whether both point to the same value.
    pub fn ptr_eq(a: &TryArc<T>, b: &TryArc<T>) -> bool {
        a.ptr == b.ptr
    }

    /// The number of references now (a snapshot: others may clone or drop meanwhile).
    pub fn strong_count(this: &TryArc<T>) -> usize {
        this.inner().count.load(Ordering::Relaxed)
    }
}

impl<T> Clone for TryArc<T> {
    fn clone(&self) -> TryArc<T> {
        // `Relaxed`, as in `Arc::clone`: a new reference can only be made from an
        // existing one, which keeps the value alive; no other memory is published.
        let old = self.inner().count.fetch_add(1, Ordering::Relaxed);
        if old > MAX_COUNT {
            self.inner().count.fetch_sub(1, Ordering::Relaxed);
            panic!("TryArc: reference count overflow (references leaked)");
        }
        TryArc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Deref for TryArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Drop for TryArc<T> {
    fn drop(&mut self) {
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other owner's `Release` decrement happened before this fence: their
        // uses of the value are over before it is dropped.
        fence(Ordering::Acquire);
        // SAFETY: the count went from 1 to 0 on our decrement, so this was the last
        // reference; the block came from `Box::leak` of a `Box<Inner<T>>` in `new`.
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl<T: fmt::Debug> fmt::Debug for TryArc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize as Counter;

    struct Noisy<'a>(&'a Counter);
    impl Drop for Noisy<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_last_owner_drops_the_value_once() {
        let drops = Counter::new(0);
        let a = TryArc::new(Noisy(&drops)).ok().unwrap();
        let b = a.clone();
        assert!(TryArc::ptr_eq(&a, &b));
        assert_eq!(TryArc::strong_count(&a), 2);
        drop(a);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(b);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn get_mut_and_try_unwrap_need_a_unique_reference() {
        let mut a = TryArc::new(5u32).unwrap();
        *TryArc::get_mut(&mut a).unwrap() += 1;
        let b = a.clone();
        assert!(TryArc::get_mut(&mut a).is_none());
        let a = TryArc::try_unwrap(a).unwrap_err();
        drop(b);
        assert_eq!(TryArc::try_unwrap(a).unwrap(), 6);
    }

    #[test]
    fn shared_between_threads() {
        extern crate std;
        let a = TryArc::new(alloc::vec![1u8; 100]).unwrap();
        let hs: alloc::vec::Vec<_> = (0..4)
            .map(|_| {
                let c = a.clone();
                std::thread::spawn(move || c.iter().map(|&x| usize::from(x)).sum::<usize>())
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), 100);
        }
        assert_eq!(TryArc::strong_count(&a), 1);
    }
}
