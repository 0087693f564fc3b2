//! Page sources for tests, public so every crate's tests (and fuzz targets) use the same
//! ones. They wrap any [`PageSource`] and compose:
//!
//! * [`CountingSource`]: live frames, high-water mark, allocations, frees, failures.
//! * [`PoisoningSource`]: fills every frame it hands out or takes back with a pattern and
//!   keeps freed frames in a small quarantine; a frame whose pattern changed while it was
//!   free (a write after free) is counted as a violation when it is reused or released.
//! * [`FailingSource`]: fails allocations on demand ([`FailMode`]: every Nth, after N,
//!   seeded random, always), switchable at run time from any thread.
//! * [`CorruptingSource`]: tracks the frames it has handed out and lets a test flip bits
//!   in them (an `unsafe fn` with a stated contract), so a layer above the allocator can
//!   check that corrupt pool bytes give an error on load.
//!
//! A typical stack, outermost first, is
//! `CountingSource<FailingSource<PoisoningSource<HeapPageSource>>>`: the counter then sees
//! exactly the frames the pool holds, and injected failures are counted as failures.
//!
//! Everything here is `no_std`, compiled with the `testing` feature, and uses the crate's
//! `sync` shim, so it also runs inside loom models.

use core::ptr::NonNull;

use alloc::vec::Vec;

use crate::frame::{AllocError, Frame, HeapPageSource, PAGE_SIZE, Page, PageSource};
use crate::sync::{AtomicU8, AtomicU64, AtomicUsize, Mutex, Ordering};

// ---------------------------------------------------------------------------------------
// PageAligned
// ---------------------------------------------------------------------------------------

/// Zero-sized types aligned to each page size, picked by [`PageAlign`].
#[doc(hidden)]
#[repr(align(4096))]
pub struct Align4K;
#[doc(hidden)]
#[repr(align(16384))]
pub struct Align16K;
#[doc(hidden)]
#[repr(align(65536))]
pub struct Align64K;

/// Maps a page size to a zero-sized type of that alignment (`repr(align)` takes only a
/// literal, so the build's `PAGE_SIZE` picks one of these).
#[doc(hidden)]
pub trait PageAlign {
    /// A zero-sized type aligned to the page size.
    type T;
}
#[doc(hidden)]
pub struct PageSizeIs<const N: usize>;
impl PageAlign for PageSizeIs<4096> {
    type T = Align4K;
}
impl PageAlign for PageSizeIs<16384> {
    type T = Align16K;
}
impl PageAlign for PageSizeIs<65536> {
    type T = Align64K;
}

/// One page of memory aligned to [`PAGE_SIZE`] (whatever the build's page size), for
/// statics and stack buffers that tests wrap as foreign frames.
#[repr(C)]
pub struct PageAligned {
    _align: [<PageSizeIs<PAGE_SIZE> as PageAlign>::T; 0],
    /// The page's bytes.
    pub page: Page,
}

impl PageAligned {
    /// A zeroed page.
    pub const ZERO: PageAligned = PageAligned {
        _align: [],
        page: [0; PAGE_SIZE],
    };
}

const _: () = assert!(core::mem::align_of::<PageAligned>() == PAGE_SIZE);
const _: () = assert!(core::mem::size_of::<PageAligned>() == PAGE_SIZE);

// ---------------------------------------------------------------------------------------
// CountingSource
// ---------------------------------------------------------------------------------------

/// Counts the frames that pass through it: live frames (handed out, not yet given back),
/// their high-water mark, and totals of allocations, frees and failed allocations.
///
/// Counters are relaxed atomics: exact when the source is quiescent, approximate while
/// other threads allocate (each counter is individually exact, their combination is not
/// a snapshot).
#[derive(Debug, Default)]
pub struct CountingSource<S = HeapPageSource> {
    inner: S,
    live: AtomicUsize,
    high_water: AtomicUsize,
    allocations: AtomicU64,
    frees: AtomicU64,
    failures: AtomicU64,
}

impl<S: PageSource> CountingSource<S> {
    /// Wraps `inner` with all counters at zero.
    pub fn new(inner: S) -> Self {
        CountingSource {
            inner,
            live: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
            allocations: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Frames handed out and not yet given back.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The largest `live` value seen since creation or the last
    /// [`reset_high_water`](Self::reset_high_water).
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Relaxed)
    }

    /// Resets the high-water mark to the current live count.
    pub fn reset_high_water(&self) {
        self.high_water.store(self.live(), Ordering::Relaxed);
    }

    /// Successful allocations since creation.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Frames given back since creation.
    pub fn frees(&self) -> u64 {
        self.frees.load(Ordering::Relaxed)
    }

    /// Failed allocations since creation.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl<S: PageSource> PageSource for CountingSource<S> {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        match self.inner.alloc_frame() {
            Ok(f) => {
                let now = self.live.fetch_add(1, Ordering::Relaxed) + 1;
                self.high_water.fetch_max(now, Ordering::Relaxed);
                self.allocations.fetch_add(1, Ordering::Relaxed);
                Ok(f)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn free_frame(&self, frame: Frame) {
        // Saturating: a frame this source never counted must not wrap the counter.
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        self.frees.fetch_add(1, Ordering::Relaxed);
        self.inner.free_frame(frame)
    }
}

// ---------------------------------------------------------------------------------------
// PoisoningSource
// ---------------------------------------------------------------------------------------

/// The default poison byte (Linux's `POISON_FREE`).
pub const POISON_FREE: u8 = 0x6b;

/// Frames a [`PoisoningSource`] keeps back after they are freed.
pub const QUARANTINE_FRAMES: usize = 32;

struct Quarantine {
    frames: [Option<Frame>; QUARANTINE_FRAMES],
    /// Index of the oldest entry.
    head: usize,
    len: usize,
}

impl Quarantine {
    const fn new() -> Self {
        Quarantine {
            frames: [const { None }; QUARANTINE_FRAMES],
            head: 0,
            len: 0,
        }
    }

    fn pop_oldest(&mut self) -> Option<Frame> {
        if self.len == 0 {
            return None;
        }
        let f = self.frames[self.head].take();
        self.head = (self.head + 1) % QUARANTINE_FRAMES;
        self.len -= 1;
        f
    }

    /// Pushes `frame`; when full, first pops and returns the oldest entry.
    fn push(&mut self, frame: Frame) -> Option<Frame> {
        let evicted = if self.len == QUARANTINE_FRAMES {
            self.pop_oldest()
        } else {
            None
        };
        let tail = (self.head + self.len) % QUARANTINE_FRAMES;
        self.frames[tail] = Some(frame);
        self.len += 1;
        evicted
    }
}

/// Poisons frames: every frame it hands out is filled with the pattern (so an allocator
/// cannot rely on zeroed or stale contents), every frame given back is filled with it and
/// held in a FIFO quarantine of [`QUARANTINE_FRAMES`] frames. When a quarantined frame is
/// reused (handed out again) or released to the inner source, its pattern is checked; a
/// changed byte means someone wrote to the frame after freeing it, and is counted in
/// [`violations`](Self::violations).
///
/// Frames are reused from the quarantine once it is more than half full, so the
/// quarantine also turns "freed and immediately reallocated" paths into real reuse.
/// Dropping the source checks and releases every quarantined frame.
pub struct PoisoningSource<S: PageSource = HeapPageSource> {
    inner: S,
    pattern: u8,
    quarantine: Mutex<Quarantine>,
    violations: AtomicU64,
    checked: AtomicU64,
}

impl<S: PageSource> PoisoningSource<S> {
    /// Wraps `inner`, poisoning with [`POISON_FREE`].
    pub fn new(inner: S) -> Self {
        Self::with_pattern(inner, POISON_FREE)
    }

    /// Wraps `inner`, poisoning with `pattern`.
    pub fn with_pattern(inner: S, pattern: u8) -> Self {
        PoisoningSource {
            inner,
            pattern,
            quarantine: Mutex::new(Quarantine::new()),
            violations: AtomicU64::new(0),
            checked: AtomicU64::new(0),
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The poison byte.
    pub fn pattern(&self) -> u8 {
        self.pattern
    }

    /// Freed frames whose poison was found changed (writes after free).
    pub fn violations(&self) -> u64 {
        self.violations.load(Ordering::Relaxed)
    }

    /// Freed frames whose poison has been checked so far.
    pub fn checked(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    /// Frames currently in quarantine.
    pub fn quarantined(&self) -> usize {
        self.quarantine.lock().len
    }

    /// Checks every quarantined frame now and releases it to the inner source. Returns
    /// the total violation count afterwards.
    pub fn flush(&self) -> u64 {
        loop {
            let f = self.quarantine.lock().pop_oldest();
            match f {
                Some(f) => {
                    self.check(&f);
                    self.inner.free_frame(f);
                }
                None => return self.violations(),
            }
        }
    }

    fn check(&self, frame: &Frame) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        let p = self.pattern;
        if frame.iter().any(|&b| b != p) {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<S: PageSource> PageSource for PoisoningSource<S> {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        let reused = {
            let mut q = self.quarantine.lock();
            if q.len > QUARANTINE_FRAMES / 2 {
                q.pop_oldest()
            } else {
                None
            }
        };
        if let Some(f) = reused {
            // Contents stay the poison pattern: the allocator must not assume zeroes.
            self.check(&f);
            return Ok(f);
        }
        let mut f = self.inner.alloc_frame()?;
        f.fill(self.pattern);
        Ok(f)
    }

    fn free_frame(&self, mut frame: Frame) {
        frame.fill(self.pattern);
        let evicted = self.quarantine.lock().push(frame);
        if let Some(old) = evicted {
            self.check(&old);
            self.inner.free_frame(old);
        }
    }
}

impl<S: PageSource> Drop for PoisoningSource<S> {
    fn drop(&mut self) {
        self.flush();
    }
}

// ---------------------------------------------------------------------------------------
// FailingSource
// ---------------------------------------------------------------------------------------

/// When a [`FailingSource`] refuses an allocation. Counting restarts at every
/// [`FailingSource::set_mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Every allocation is passed through.
    Never,
    /// Every allocation fails.
    Always,
    /// The Nth, 2Nth, 3Nth... allocation attempt fails (`EveryNth(0)` never fails,
    /// `EveryNth(1)` always does).
    EveryNth(u64),
    /// The first N attempts are passed through, every later one fails.
    AfterN(u64),
    /// Each attempt fails with probability `percent`/100, drawn from a xorshift64
    /// generator seeded with `seed` (deterministic for a single-threaded caller).
    Random {
        /// Generator seed (0 is replaced by a fixed non-zero constant).
        seed: u64,
        /// Failure probability in percent (values over 100 act as 100).
        percent: u8,
    },
}

const KIND_NEVER: u8 = 0;
const KIND_ALWAYS: u8 = 1;
const KIND_EVERY: u8 = 2;
const KIND_AFTER: u8 = 3;
const KIND_RANDOM: u8 = 4;

/// The xorshift64 step used by [`FailMode::Random`] (exposed so tests can predict it).
pub const fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Fails allocations on demand, passing the others to the inner source. The mode can be
/// switched at any time from any thread ([`set_mode`](Self::set_mode)); frees always pass
/// through.
///
/// A mode switch stores several atomics one after the other: an allocation racing the
/// switch may see the old mode with the new counter or parameters. Tests that need an
/// exact failure position switch modes while no allocation is in flight.
#[derive(Debug)]
pub struct FailingSource<S = HeapPageSource> {
    inner: S,
    kind: AtomicU8,
    param: AtomicU64,
    count: AtomicU64,
    rng: AtomicU64,
    attempts: AtomicU64,
    injected: AtomicU64,
}

impl<S: PageSource> FailingSource<S> {
    /// Wraps `inner` in mode [`FailMode::Never`].
    pub fn new(inner: S) -> Self {
        Self::with_mode(inner, FailMode::Never)
    }

    /// Wraps `inner` in `mode`.
    pub fn with_mode(inner: S, mode: FailMode) -> Self {
        let s = FailingSource {
            inner,
            kind: AtomicU8::new(KIND_NEVER),
            param: AtomicU64::new(0),
            count: AtomicU64::new(0),
            rng: AtomicU64::new(1),
            attempts: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        };
        s.set_mode(mode);
        s
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Switches the failure mode and restarts its counting.
    pub fn set_mode(&self, mode: FailMode) {
        let (kind, param, seed) = match mode {
            FailMode::Never => (KIND_NEVER, 0, 1),
            FailMode::Always => (KIND_ALWAYS, 0, 1),
            FailMode::EveryNth(n) => (KIND_EVERY, n, 1),
            FailMode::AfterN(n) => (KIND_AFTER, n, 1),
            FailMode::Random { seed, percent } => (
                KIND_RANDOM,
                u64::from(percent.min(100)),
                if seed == 0 {
                    0x9e37_79b9_7f4a_7c15
                } else {
                    seed
                },
            ),
        };
        self.param.store(param, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.rng.store(seed, Ordering::Relaxed);
        // Release: an allocation that sees the new kind also sees its parameters.
        self.kind.store(kind, Ordering::Release);
    }

    /// Shorthand for `set_mode(FailMode::Never)`.
    pub fn disable(&self) {
        self.set_mode(FailMode::Never);
    }

    /// The current mode (for a random mode, `seed` is the generator's current state).
    pub fn mode(&self) -> FailMode {
        let kind = self.kind.load(Ordering::Acquire);
        let param = self.param.load(Ordering::Relaxed);
        match kind {
            KIND_ALWAYS => FailMode::Always,
            KIND_EVERY => FailMode::EveryNth(param),
            KIND_AFTER => FailMode::AfterN(param),
            KIND_RANDOM => FailMode::Random {
                seed: self.rng.load(Ordering::Relaxed),
                percent: u8::try_from(param).unwrap_or(100),
            },
            _ => FailMode::Never,
        }
    }

    /// Allocation attempts since creation.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Failures injected since creation (inner-source failures are not counted).
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn should_fail(&self) -> bool {
        let kind = self.kind.load(Ordering::Acquire);
        let param = self.param.load(Ordering::Relaxed);
        match kind {
            KIND_ALWAYS => true,
            KIND_EVERY => {
                let c = self.count.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
                param != 0 && c.is_multiple_of(param)
            }
            KIND_AFTER => self.count.fetch_add(1, Ordering::Relaxed) >= param,
            KIND_RANDOM => {
                let prev = self
                    .rng
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
                        Some(xorshift64(x))
                    })
                    .unwrap_or(1);
                xorshift64(prev) % 100 < param
            }
            _ => false,
        }
    }
}

impl<S: PageSource> PageSource for FailingSource<S> {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if self.should_fail() {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(AllocError);
        }
        self.inner.alloc_frame()
    }

    fn free_frame(&self, frame: Frame) {
        self.inner.free_frame(frame)
    }
}

// ---------------------------------------------------------------------------------------
// CorruptingSource
// ---------------------------------------------------------------------------------------

/// The address of a frame this source handed out, kept so a test can reach its bytes.
struct Tracked(NonNull<Page>);

// SAFETY: `Tracked` is only an address; it is dereferenced only inside
// `CorruptingSource::flip_bits`, whose caller guarantees exclusive access (see there).
unsafe impl Send for Tracked {}
// SAFETY: as for `Send`: shared `&Tracked` never dereferences the pointer.
unsafe impl Sync for Tracked {}

/// Tracks the frames it hands out (in allocation order, a freed frame leaving the list
/// with `swap_remove`) so a test can corrupt pool memory with
/// [`flip_bits`](Self::flip_bits) and check that the layer above notices.
///
/// If the tracking list cannot grow (heap exhausted), the allocation fails with
/// [`AllocError`] and the frame goes back to the inner source.
pub struct CorruptingSource<S = HeapPageSource> {
    inner: S,
    live: Mutex<Vec<Tracked>>,
}

impl<S: PageSource> CorruptingSource<S> {
    /// Wraps `inner` with no frame tracked.
    pub fn new(inner: S) -> Self {
        CorruptingSource {
            inner,
            live: Mutex::new(Vec::new()),
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Frames handed out and not yet given back.
    pub fn live_frames(&self) -> usize {
        self.live.lock().len()
    }

    /// The address of live frame number `index` (see the struct's ordering note).
    pub fn frame_addr(&self, index: usize) -> Option<usize> {
        self.live.lock().get(index).map(|t| t.0.as_ptr() as usize)
    }

    /// XORs `mask` into byte `offset` of live frame number `index`. Returns `false`
    /// (and changes nothing) when there is no such frame or `offset >= PAGE_SIZE`.
    ///
    /// # Safety
    /// Every frame this source handed out must still be held (by the pool, or leaked) or
    /// have come back through this source's own `free_frame`: a frame given back any other
    /// way (to the inner source directly, to another source) stays in the list, and its
    /// address may then be freed memory. The frame's owner (the pool) must not be
    /// accessing any of its frames during the call: no other thread may be inside a
    /// method of the pool that holds the frame, and no borrow of the frame's bytes
    /// (`&Page`, `&mut Page`) may be live anywhere. In a single-threaded test that calls
    /// this between pool operations, on a pool that frees only into this source, the
    /// contract holds, since a pool's borrows of its frames end when its methods return.
    pub unsafe fn flip_bits(&self, index: usize, offset: usize, mask: u8) -> bool {
        if offset >= PAGE_SIZE {
            return false;
        }
        let live = self.live.lock();
        let Some(t) = live.get(index) else {
            return false;
        };
        let byte = t.0.cast::<u8>().as_ptr().wrapping_add(offset);
        // SAFETY: `t.0` is a `PAGE_SIZE`-byte frame this source handed out and that has not
        // come back through `free_frame` (which removes it from the list, under the lock
        // held here, so it cannot come back during the write); the caller guarantees it
        // was not freed any other way, so the memory is still allocated. `offset` is in
        // bounds, and the caller guarantees that nothing else reads or writes the frame
        // now and that no reference to its bytes is live, so this raw read-modify-write
        // cannot race or invalidate a borrow.
        unsafe { byte.write(byte.read() ^ mask) };
        true
    }

    /// XORs `mask` into byte `offset` of every live frame; returns how many were changed.
    ///
    /// # Safety
    /// As for [`flip_bits`](Self::flip_bits), for every live frame.
    pub unsafe fn flip_bits_all(&self, offset: usize, mask: u8) -> usize {
        let n = self.live_frames();
        let mut changed = 0;
        for i in 0..n {
            // SAFETY: forwarded from this function's own contract.
            if unsafe { self.flip_bits(i, offset, mask) } {
                changed += 1;
            }
        }
        changed
    }
}

impl<S: PageSource> PageSource for CorruptingSource<S> {
    fn alloc_frame(&self) -> Result<Frame, AllocError> {
        let f = self.inner.alloc_frame()?;
        let mut live = self.live.lock();
        if live.try_reserve(1).is_err() {
            drop(live);
            self.inner.free_frame(f);
            return Err(AllocError);
        }
        live.push(Tracked(f.as_non_null()));
        Ok(f)
    }

    fn free_frame(&self, frame: Frame) {
        {
            let mut live = self.live.lock();
            if let Some(i) = live.iter().position(|t| t.0 == frame.as_non_null()) {
                live.swap_remove(i);
            }
        }
        self.inner.free_frame(frame)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counting_tracks_live_and_high_water() {
        let s = CountingSource::new(HeapPageSource);
        let a = s.alloc_frame().unwrap();
        let b = s.alloc_frame().unwrap();
        assert_eq!((s.live(), s.high_water(), s.allocations()), (2, 2, 2));
        s.free_frame(a);
        assert_eq!((s.live(), s.high_water(), s.frees()), (1, 2, 1));
        s.reset_high_water();
        assert_eq!(s.high_water(), 1);
        s.free_frame(b);
        assert_eq!(s.live(), 0);
    }

    #[test]
    fn failing_modes() {
        let s = CountingSource::new(FailingSource::new(HeapPageSource));
        let f = s.inner();
        let run = |n: usize| -> alloc::vec::Vec<bool> {
            (0..n)
                .map(|_| match s.alloc_frame() {
                    Ok(fr) => {
                        s.free_frame(fr);
                        true
                    }
                    Err(AllocError) => false,
                })
                .collect()
        };
        f.set_mode(FailMode::EveryNth(3));
        assert_eq!(run(6), [true, true, false, true, true, false]);
        f.set_mode(FailMode::AfterN(2));
        assert_eq!(run(4), [true, true, false, false]);
        f.set_mode(FailMode::Always);
        assert_eq!(run(2), [false, false]);
        f.disable();
        assert_eq!(run(2), [true, true]);
        f.set_mode(FailMode::Random {
            seed: 7,
            percent: 50,
        });
        let a = run(200);
        f.set_mode(FailMode::Random {
            seed: 7,
            percent: 50,
        });
        let b = run(200);
        assert_eq!(a, b, "seeded random is deterministic");
        let fails = a.iter().filter(|ok| !**ok).count();
        assert!((50..150).contains(&fails), "about half fail: {fails}");
        assert!(matches!(f.mode(), FailMode::Random { percent: 50, .. }));
        assert_eq!(s.failures(), f.injected());
        assert_eq!(s.live(), 0);
    }

    #[test]
    fn poisoning_detects_write_after_free() {
        let s = PoisoningSource::new(CountingSource::new(HeapPageSource));
        let mut f = s.alloc_frame().unwrap();
        assert!(
            f.iter().all(|&b| b == POISON_FREE),
            "fresh frames are poisoned"
        );
        f[0] = 1;
        let raw = f.as_non_null();
        s.free_frame(f);
        assert_eq!(s.quarantined(), 1);
        // Simulate a write after free through a dangling pointer kept by a buggy allocator.
        // SAFETY: the frame sits in the quarantine, owned by `s`, and nothing borrows it.
        unsafe { raw.cast::<u8>().as_ptr().add(100).write(0) };
        assert_eq!(s.flush(), 1);
        assert_eq!(s.checked(), 1);
        assert_eq!(s.inner().live(), 0);
    }

    #[test]
    fn poisoning_reuses_from_quarantine_and_drop_releases() {
        let counting = CountingSource::new(HeapPageSource);
        {
            let s = PoisoningSource::new(&counting);
            let frames: alloc::vec::Vec<Frame> = (0..QUARANTINE_FRAMES + 4)
                .map(|_| s.alloc_frame().unwrap())
                .collect();
            for f in frames {
                s.free_frame(f);
            }
            assert_eq!(s.quarantined(), QUARANTINE_FRAMES);
            assert_eq!(counting.live(), QUARANTINE_FRAMES);
            let f = s.alloc_frame().unwrap();
            assert_eq!(
                s.quarantined(),
                QUARANTINE_FRAMES - 1,
                "reused from quarantine"
            );
            s.free_frame(f);
            assert_eq!(s.violations(), 0);
        }
        assert_eq!(counting.live(), 0, "drop releases the quarantine");
    }

    #[test]
    fn corrupting_flips_live_frames_only() {
        let s = CorruptingSource::new(CountingSource::new(HeapPageSource));
        let a = s.alloc_frame().unwrap();
        let b = s.alloc_frame().unwrap();
        assert_eq!(s.live_frames(), 2);
        // SAFETY: single-threaded, no borrow of a's or b's bytes is live.
        unsafe {
            assert!(s.flip_bits(0, 5, 0xff));
            assert!(!s.flip_bits(2, 0, 1));
            assert!(!s.flip_bits(0, PAGE_SIZE, 1));
            assert_eq!(s.flip_bits_all(7, 0x01), 2);
        }
        assert_eq!((a[5], a[7], b[7]), (0xff, 1, 1));
        assert_eq!(s.frame_addr(1), Some(b.addr()));
        s.free_frame(a);
        assert_eq!(s.live_frames(), 1);
        assert_eq!(s.frame_addr(0), Some(b.addr()));
        s.free_frame(b);
        assert_eq!(s.inner().live(), 0);
    }
}
