//! The shared conformance suite every [`ZPool`] runs.
//!
//! An allocator crate calls one line from its tests:
//!
//! ```ignore
//! #[test]
//! fn conformance() {
//!     zpool_conformance::check_zpool(|src| zbud::ZBud::new(src));
//! }
//! #[test]
//! fn conformance_under_failing_source() {
//!     zpool_conformance::check_zpool_failing(|src| zbud::ZBud::new(src));
//! }
//! #[test]
//! fn stale_handle_of_a_reused_entry() {
//!     zpool_conformance::check_generation_reuse(|src| zbud::ZBud::new(src), 1000).unwrap();
//! }
//! ```
//!
//! What it runs: random sequences of [`Op`]s (allocate, write, read, free, stale and
//! forged handles, wrong buffer lengths, whole and bounded compaction, page-source
//! failure switches) applied by an [`Interpreter`] to a pool built on a fresh
//! [`TestSource`] (counting + failing + poisoning), against a map model. After every
//! operation it checks:
//!
//! * contents byte for byte (every object holds a pattern derived from a unique id and a
//!   seed, so an object that overlaps another shows up as corruption of one of them;
//!   every live object is re-read after each operation that places, moves or frees
//!   objects);
//! * reads copy exactly the object into the front of the buffer and leave the rest alone;
//! * stale (freed), double-freed and forged handles, when their bits equal no live
//!   object's handle (the only ones validation can refuse), give
//!   [`ZPoolError::InvalidHandle`] for free, free_len, read, write and object_len and change
//!   nothing; handed-out handles are unique among live objects and fit [`Handle::BITS`];
//! * object ids, for a pool that numbers its objects ([`ZPool::object_ids`]): every live
//!   object has one inside the numbering, the same since it was made (compaction moves
//!   objects, not ids), no two share one, [`ZPool::handle_of_id`] gives the handle back,
//!   and never a freed one;
//! * zero-length, too-large and wrong-buffer-length requests give their typed errors;
//! * `stats()` agrees with the model (objects, bytes) and `total_frames()` agrees with the
//!   page source's own count of live frames;
//! * a failed allocation is [`ZPoolError::NoMemory`] only while failures are injected,
//!   and leaves frames, objects and every other object's bytes as they were;
//! * compaction (`compact`, and `compact_step` once or repeated until `done`) gives back
//!   exactly the frames it reports, moves no more objects than a step was allowed, ends,
//!   and keeps every handle valid;
//! * at the end: every object freed gives zero objects, zero bytes and zero frames (pool
//!   and source agree), dropping the pool returns every frame, and no freed frame was
//!   written after it was given back (poisoning source).
//!
//! [`check_generation_reuse`] checks what random sequences cannot reach: a handle stays
//! refused while its entry is freed and reused [`GENERATION_REUSES`] times (more than a
//! 16-bit generation allows).
//!
//! The same interpreter runs fixed sequences ([`run_ops`], for regressions) and
//! byte strings ([`decode_ops`], for a cargo-fuzz target).

use std::fmt;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use zpool::testing::{CountingSource, FailMode, FailingSource, PoisoningSource};
use zpool::{CompactStep, Handle, HeapPageSource, ZPool, ZPoolError};

/// The page source stack every conformance run builds a pool on, outermost first:
/// counting (so `live()` is exactly the frames the pool holds), failing (switched by
/// [`Op::SetFail`]), poisoning (write-after-free detection), heap.
pub type TestSource = CountingSource<FailingSource<PoisoningSource<HeapPageSource>>>;

/// A shared handle to a [`TestSource`]; pools are built from a clone of it.
pub type SharedSource = Arc<TestSource>;

/// A fresh test source: no failures, empty counters.
pub fn test_source() -> SharedSource {
    Arc::new(CountingSource::new(FailingSource::new(
        PoisoningSource::new(HeapPageSource),
    )))
}

/// One step of a conformance run. Slots are taken modulo the number of live (or dead)
/// objects at the time the step runs, so every generated sequence is meaningful; a step
/// that needs an object when there is none does nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `malloc(len)`, then `write` a fresh pattern.
    Malloc {
        /// Requested length (0 and over-maximum lengths test the errors).
        len: usize,
        /// Pattern seed.
        seed: u64,
    },
    /// `store(data)` of a fresh pattern.
    Store {
        /// Object length.
        len: usize,
        /// Pattern seed.
        seed: u64,
    },
    /// Overwrite a live object with a new pattern.
    Write {
        /// Live object, modulo the live count.
        slot: usize,
        /// Pattern seed.
        seed: u64,
    },
    /// Read a live object into a buffer `extra` bytes longer than it; compare.
    Read {
        /// Live object, modulo the live count.
        slot: usize,
        /// Spare bytes after the object in the caller's buffer (must stay untouched).
        extra: u8,
    },
    /// Write and read with wrong buffer lengths (`BadLength`, object unchanged).
    WrongLength {
        /// Live object, modulo the live count.
        slot: usize,
    },
    /// Free a live object.
    Free {
        /// Live object, modulo the live count.
        slot: usize,
    },
    /// Use a freed handle again: free (double free), read, write, object_len.
    Stale {
        /// Freed handle, modulo the number remembered.
        slot: usize,
    },
    /// Use a forged handle: free, read, write, object_len. With `near`, the forgery is a
    /// live handle with some bits flipped (`raw` gives the victim and the bits).
    Forged {
        /// Raw bits (or victim + xor mask when `near`).
        raw: u64,
        /// Derive the forgery from a live handle.
        near: bool,
    },
    /// `compact()`.
    Compact,
    /// `compact_step(max_moves)`, once, or repeated until it reports `done`.
    CompactStep {
        /// The step's budget.
        max_moves: u8,
        /// Repeat until `done` (checking that it ends).
        until_done: bool,
    },
    /// Switch the page source's failure mode (only in failing runs).
    SetFail(FailMode),
    /// Re-read and compare every live object.
    CheckAll,
}

/// A broken contract: what the interpreter saw, at which step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(Violation(format!($($arg)+)));
        }
    };
}

/// Fills `out` with the pattern of object `id` written with `seed` (xorshift64 stream;
/// distinct ids give unrelated streams).
pub fn fill_pattern(id: u64, seed: u64, out: &mut [u8]) {
    let mut x = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed.rotate_left(29)) | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

struct Live {
    handle: Handle,
    data: Vec<u8>,
    /// [`ZPool::object_id`] when the object was made: it must not change.
    id: Option<u32>,
}

const DEAD_KEEP: usize = 64;

/// Runs [`Op`]s on one pool and checks them against the model (see the crate docs for
/// the list of checks).
pub struct Interpreter<P: ZPool> {
    pool: Option<P>,
    source: SharedSource,
    live: Vec<Live>,
    dead: Vec<Handle>,
    next_id: u64,
    failing: bool,
    step: usize,
}

impl<P: ZPool> Interpreter<P> {
    /// Builds the pool with `make` on a fresh [`TestSource`].
    pub fn new(make: impl FnOnce(SharedSource) -> P) -> Self {
        let source = test_source();
        let pool = make(Arc::clone(&source));
        Interpreter {
            pool: Some(pool),
            source,
            live: Vec::new(),
            dead: Vec::new(),
            next_id: 1,
            failing: false,
            step: 0,
        }
    }

    /// The pool under test.
    pub fn pool(&self) -> &P {
        self.pool.as_ref().expect("pool is present until finish")
    }

    /// The page source the pool was built on.
    pub fn source(&self) -> &SharedSource {
        &self.source
    }

    /// Live objects in the model.
    pub fn live_objects(&self) -> usize {
        self.live.len()
    }

    fn fresh(&mut self, len: usize, seed: u64) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        let mut v = vec![0u8; len];
        fill_pattern(id, seed, &mut v);
        v
    }

    fn ctx(&self) -> String {
        format!("step {}", self.step)
    }

    /// Applies one operation and checks everything it may have affected.
    pub fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        self.step += 1;
        match *op {
            Op::Malloc { len, seed } => self.op_alloc(len, seed, false)?,
            Op::Store { len, seed } => self.op_alloc(len, seed, true)?,
            Op::Write { slot, seed } => {
                if !self.live.is_empty() {
                    let i = slot % self.live.len();
                    let data = self.fresh(self.live[i].data.len(), seed);
                    let r = self.pool().write(self.live[i].handle, &data);
                    ensure!(r == Ok(()), "{}: write of a live object: {r:?}", self.ctx());
                    self.live[i].data = data;
                    self.check_all()?;
                }
            }
            Op::Read { slot, extra } => {
                if !self.live.is_empty() {
                    let i = slot % self.live.len();
                    self.check_read(i, usize::from(extra))?;
                }
            }
            Op::WrongLength { slot } => {
                if !self.live.is_empty() {
                    self.op_wrong_length(slot % self.live.len())?;
                }
            }
            Op::Free { slot } => {
                if !self.live.is_empty() {
                    let i = slot % self.live.len();
                    let obj = self.live.swap_remove(i);
                    // Every other free through `free_len`, which must give the length.
                    if slot % 2 == 0 {
                        let r = self.pool().free(obj.handle);
                        ensure!(r == Ok(()), "{}: free of a live object: {r:?}", self.ctx());
                    } else {
                        let r = self.pool().free_len(obj.handle);
                        ensure!(
                            r == Ok(obj.data.len()),
                            "{}: free_len of a live object of {} bytes: {r:?}",
                            self.ctx(),
                            obj.data.len()
                        );
                    }
                    self.remember_dead(obj.handle);
                    self.check_all()?;
                }
            }
            Op::Stale { slot } => {
                if !self.dead.is_empty() {
                    let h = self.dead[slot % self.dead.len()];
                    if !self.live.iter().any(|l| l.handle == h) {
                        self.expect_invalid(h, "stale")?;
                    }
                }
            }
            Op::Forged { raw, near } => {
                let cand = if near && !self.live.is_empty() {
                    let victim = self.live[(raw as usize) % self.live.len()].handle.to_raw();
                    let mask = (raw >> 16) & ((1 << Handle::BITS) - 1);
                    victim ^ if mask == 0 { 1 } else { mask }
                } else {
                    raw & ((1 << Handle::BITS) - 1)
                };
                if let Some(h) = Handle::from_raw(cand)
                    && !self.live.iter().any(|l| l.handle == h)
                {
                    self.expect_invalid(h, "forged")?;
                }
            }
            Op::Compact => {
                let before = self.pool().total_frames();
                let freed = self.pool().compact();
                let after = self.pool().total_frames();
                ensure!(
                    after + freed == before,
                    "{}: compact reported {freed} frames freed, frames went {before} -> {after}",
                    self.ctx()
                );
                self.check_all()?;
            }
            Op::CompactStep {
                max_moves,
                until_done,
            } => self.op_compact_step(usize::from(max_moves), until_done)?,
            Op::SetFail(mode) => {
                self.source.inner().set_mode(mode);
                self.failing = mode != FailMode::Never;
            }
            Op::CheckAll => self.check_all()?,
        }
        self.check_counts()
    }

    fn remember_dead(&mut self, h: Handle) {
        if self.dead.len() == DEAD_KEEP {
            self.dead.remove(0);
        }
        self.dead.push(h);
    }

    fn op_alloc(&mut self, len: usize, seed: u64, store: bool) -> Result<(), Violation> {
        let max = self.pool().max_alloc();
        let frames = self.pool().total_frames();
        let data = self.fresh(len, seed);
        let r = if store {
            self.pool().store(&data)
        } else {
            self.pool().malloc(len)
        };
        let what = if store { "store" } else { "malloc" };
        if len == 0 {
            ensure!(
                r == Err(ZPoolError::ZeroSize),
                "{}: {what}(0) gave {r:?}",
                self.ctx()
            );
            return Ok(());
        }
        if len > max {
            ensure!(
                r == Err(ZPoolError::TooLarge { len, max }),
                "{}: {what}({len}) over max_alloc {max} gave {r:?}",
                self.ctx()
            );
            return Ok(());
        }
        let h = match r {
            Ok(h) => h,
            Err(ZPoolError::NoMemory) if self.failing => {
                let now = self.pool().total_frames();
                ensure!(
                    now == frames,
                    "{}: failed {what}({len}) changed frames {frames} -> {now}",
                    self.ctx()
                );
                return self.check_all();
            }
            Err(e) => {
                return Err(Violation(format!(
                    "{}: {what}({len}) failed: {e:?} (failures injected: {})",
                    self.ctx(),
                    self.failing
                )));
            }
        };
        ensure!(
            h.to_raw() >> Handle::BITS == 0,
            "{}: handle {h:?} wider than Handle::BITS",
            self.ctx()
        );
        ensure!(
            !self.live.iter().any(|l| l.handle == h),
            "{}: {what} handed out {h:?}, which is already live",
            self.ctx()
        );
        self.dead.retain(|d| *d != h);
        if !store {
            let w = self.pool().write(h, &data);
            ensure!(w == Ok(()), "{}: write after malloc: {w:?}", self.ctx());
        }
        let ol = self.pool().object_len(h);
        ensure!(
            ol == Ok(len),
            "{}: object_len after {what}({len}) = {ol:?}",
            self.ctx()
        );
        let id = self.pool().object_id(h);
        self.live.push(Live {
            handle: h,
            data,
            id,
        });
        self.check_all()
    }

    fn check_read(&self, i: usize, extra: usize) -> Result<(), Violation> {
        let obj = &self.live[i];
        let len = obj.data.len();
        let mut buf = vec![0xa5u8; len + extra];
        let r = self.pool().read(obj.handle, &mut buf);
        ensure!(
            r == Ok(len),
            "{}: read of {:?} ({len} bytes) gave {r:?}",
            self.ctx(),
            obj.handle
        );
        if buf[..len] != obj.data[..] {
            let at = buf.iter().zip(&obj.data).position(|(a, b)| a != b);
            return Err(Violation(format!(
                "{}: object {:?} ({len} bytes) corrupted, first difference at byte {at:?}",
                self.ctx(),
                obj.handle
            )));
        }
        ensure!(
            buf[len..].iter().all(|&b| b == 0xa5),
            "{}: read of {:?} wrote past the object's length",
            self.ctx(),
            obj.handle
        );
        // map_read: the same bytes, in place or through a page-sized bounce buffer.
        let mut bounce = vec![0u8; zpool::PAGE_SIZE];
        let mut seen = None;
        let r = self.pool().map_read(obj.handle, &mut bounce, &mut |b| {
            seen = Some(b == &obj.data[..])
        });
        ensure!(
            r == Ok(()) && seen == Some(true),
            "{}: map_read of {:?} ({len} bytes) gave {r:?}, bytes equal: {seen:?}",
            self.ctx(),
            obj.handle
        );
        Ok(())
    }

    /// Re-reads every live object and compares it with the model, and checks the
    /// pool's object ids.
    pub fn check_all(&self) -> Result<(), Violation> {
        for i in 0..self.live.len() {
            self.check_read(i, 0)?;
        }
        self.check_ids()
    }

    /// A pool that numbers its objects ([`ZPool::object_ids`]): every live object has
    /// an id inside the numbering, kept since it was made (compaction included), no
    /// two share one, and [`ZPool::handle_of_id`] gives the object's handle back.
    fn check_ids(&self) -> Result<(), Violation> {
        let pool = self.pool();
        let Some(ids) = pool.object_ids() else {
            ensure!(
                self.live.iter().all(|l| l.id.is_none()),
                "{}: object_id without object_ids",
                self.ctx()
            );
            return Ok(());
        };
        let mut seen = Vec::with_capacity(self.live.len());
        for l in &self.live {
            let id = pool.object_id(l.handle);
            ensure!(
                id.is_some() && id == l.id,
                "{}: object {:?} had id {:?}, now {id:?}",
                self.ctx(),
                l.handle,
                l.id
            );
            let id = id.unwrap_or(0);
            ensure!(
                ids.segment(id) < ids.segments,
                "{}: id {id:#x} outside {ids:?}",
                self.ctx()
            );
            let back = pool.handle_of_id(id);
            ensure!(
                back == Some(l.handle),
                "{}: handle_of_id({id:#x}) = {back:?}, the object is {:?}",
                self.ctx(),
                l.handle
            );
            seen.push(id);
        }
        for &d in &self.dead {
            let back = pool.object_id(d).and_then(|id| pool.handle_of_id(id));
            ensure!(
                back != Some(d),
                "{}: handle_of_id names the freed {d:?}",
                self.ctx()
            );
        }
        seen.sort_unstable();
        ensure!(
            seen.windows(2).all(|w| w[0] != w[1]),
            "{}: two live objects share an id",
            self.ctx()
        );
        Ok(())
    }

    fn check_counts(&self) -> Result<(), Violation> {
        let pool = self.pool();
        let st = pool.stats();
        let frames = pool.total_frames();
        let bytes: usize = self.live.iter().map(|l| l.data.len()).sum();
        ensure!(
            st.objects == self.live.len() && st.bytes == bytes,
            "{}: stats say {} objects / {} bytes, model {} / {bytes}",
            self.ctx(),
            st.objects,
            st.bytes,
            self.live.len()
        );
        ensure!(
            st.frames == frames && frames == self.source.live(),
            "{}: stats.frames {}, total_frames {frames}, page source live {}",
            self.ctx(),
            st.frames,
            self.source.live()
        );
        Ok(())
    }

    fn op_wrong_length(&self, i: usize) -> Result<(), Violation> {
        let obj = &self.live[i];
        let len = obj.data.len();
        let long = vec![0x3cu8; len + 1];
        let r = self.pool().write(obj.handle, &long);
        ensure!(
            r == Err(ZPoolError::BadLength {
                object: len,
                buffer: len + 1
            }),
            "{}: write of {} bytes to a {len}-byte object gave {r:?}",
            self.ctx(),
            len + 1
        );
        let short = &long[..len - 1];
        let r = self.pool().write(obj.handle, short);
        ensure!(
            r == Err(ZPoolError::BadLength {
                object: len,
                buffer: len - 1
            }),
            "{}: write of {} bytes to a {len}-byte object gave {r:?}",
            self.ctx(),
            len - 1
        );
        let mut out = vec![0u8; len - 1];
        let r = self.pool().read(obj.handle, &mut out);
        ensure!(
            r == Err(ZPoolError::BadLength {
                object: len,
                buffer: len - 1
            }),
            "{}: read into {} bytes of a {len}-byte object gave {r:?}",
            self.ctx(),
            len - 1
        );
        self.check_read(i, 0)
    }

    fn expect_invalid(&self, h: Handle, what: &str) -> Result<(), Violation> {
        let pool = self.pool();
        let r = pool.free(h);
        ensure!(
            r == Err(ZPoolError::InvalidHandle),
            "{}: free of {what} {h:?} gave {r:?}",
            self.ctx()
        );
        let r = pool.free_len(h);
        ensure!(
            r == Err(ZPoolError::InvalidHandle),
            "{}: free_len of {what} {h:?} gave {r:?}",
            self.ctx()
        );
        let mut buf = [0u8; 64];
        let r = pool.read(h, &mut buf);
        ensure!(
            r == Err(ZPoolError::InvalidHandle),
            "{}: read of {what} {h:?} gave {r:?}",
            self.ctx()
        );
        let r = pool.write(h, &[0xee; 1]);
        ensure!(
            r == Err(ZPoolError::InvalidHandle),
            "{}: write of {what} {h:?} gave {r:?}",
            self.ctx()
        );
        let r = pool.object_len(h);
        ensure!(
            r == Err(ZPoolError::InvalidHandle),
            "{}: object_len of {what} {h:?} gave {r:?}",
            self.ctx()
        );
        self.check_all()
    }

    fn op_compact_step(&mut self, max_moves: usize, until_done: bool) -> Result<(), Violation> {
        // Generous: a real allocator finishes in far fewer steps than objects + frames.
        let limit = 4 * (self.live.len() + self.pool().total_frames()) + 16;
        let mut steps = 0;
        loop {
            let before = self.pool().total_frames();
            let st = self.pool().compact_step(max_moves);
            let after = self.pool().total_frames();
            steps += 1;
            ensure!(
                after + st.frames_freed == before,
                "{}: compact_step({max_moves}) reported {} frames freed, frames went {before} -> {after}",
                self.ctx(),
                st.frames_freed
            );
            ensure!(
                st.objects_moved <= max_moves.max(1) + CompactStep::MAX_OVERSHOOT,
                "{}: compact_step({max_moves}) moved {} objects",
                self.ctx(),
                st.objects_moved
            );
            self.check_all()?;
            if st.done || !until_done {
                return Ok(());
            }
            ensure!(
                steps <= limit,
                "{}: compact_step({max_moves}) not done after {steps} steps",
                self.ctx()
            );
        }
    }

    /// Ends the run: frees every object, checks that objects, bytes and frames are back
    /// to zero (pool and source agree), drops the pool, and checks that every frame came
    /// back and no freed frame was written.
    pub fn finish(mut self) -> Result<(), Violation> {
        self.source.inner().disable();
        self.failing = false;
        self.check_all()?;
        self.step += 1;
        while let Some(obj) = self.live.pop() {
            let r = self.pool().free(obj.handle);
            ensure!(r == Ok(()), "finish: free of {:?}: {r:?}", obj.handle);
        }
        self.check_counts()?;
        let frames = self.pool().total_frames();
        ensure!(
            frames == 0,
            "finish: {frames} frames still held with no live object"
        );
        self.finish_by_drop()
    }

    /// Ends the run by dropping the pool with its objects still live: every frame must
    /// go back to the source, and no freed frame may have been written.
    pub fn finish_by_drop(mut self) -> Result<(), Violation> {
        drop(self.pool.take());
        let live = self.source.live();
        ensure!(
            live == 0,
            "after dropping the pool, {live} frames were never given back"
        );
        let poison = self.source.inner().inner().flush();
        ensure!(
            poison == 0,
            "{poison} freed frames were written after being given back"
        );
        Ok(())
    }
}

impl<P: ZPool> Drop for Interpreter<P> {
    fn drop(&mut self) {
        // On an early return (a violation) the pool still goes back before the source.
        drop(self.pool.take());
    }
}

/// Runs `ops` on a fresh pool and finishes it (frees everything, or drops the pool with
/// its objects when `drop_live`).
pub fn run_ops<P: ZPool>(
    make: impl FnOnce(SharedSource) -> P,
    ops: &[Op],
    drop_live: bool,
) -> Result<(), Violation> {
    let mut it = Interpreter::new(make);
    for op in ops {
        it.apply(op)?;
    }
    if drop_live {
        it.finish_by_drop()
    } else {
        it.finish()
    }
}

// ---------------------------------------------------------------------------------------
// proptest strategies and entry points
// ---------------------------------------------------------------------------------------

/// Lengths weighted towards what a compressed-page pool sees, plus the edges (1, the
/// maximum, 0 and just over the maximum for the errors).
pub fn len_strategy(max_alloc: usize) -> BoxedStrategy<usize> {
    let max = max_alloc.max(2);
    prop_oneof![
        3 => 1..=64usize.min(max),
        6 => 1..=max,
        4 => (max / 4)..=(max * 3 / 4).max(max / 4 + 1),
        1 => Just(max),
        1 => (max - 64.min(max - 1))..=max,
        1 => Just(0usize),
        1 => (max + 1)..=(max + 64),
    ]
    .boxed()
}

/// A page-source failure mode.
pub fn fail_mode_strategy() -> BoxedStrategy<FailMode> {
    prop_oneof![
        2 => Just(FailMode::Never),
        1 => Just(FailMode::Always),
        1 => (1u64..6).prop_map(FailMode::EveryNth),
        1 => (0u64..10).prop_map(FailMode::AfterN),
        2 => (any::<u64>(), 10u8..90).prop_map(|(seed, percent)| FailMode::Random { seed, percent }),
    ]
    .boxed()
}

/// One operation; `failing` adds [`Op::SetFail`] steps.
pub fn op_strategy(max_alloc: usize, failing: bool) -> BoxedStrategy<Op> {
    let len = len_strategy(max_alloc);
    let base = prop_oneof![
        10 => (len.clone(), any::<u64>()).prop_map(|(len, seed)| Op::Malloc { len, seed }),
        6 => (len, any::<u64>()).prop_map(|(len, seed)| Op::Store { len, seed }),
        4 => (any::<usize>(), any::<u64>()).prop_map(|(slot, seed)| Op::Write { slot, seed }),
        5 => (any::<usize>(), 0u8..16).prop_map(|(slot, extra)| Op::Read { slot, extra }),
        1 => any::<usize>().prop_map(|slot| Op::WrongLength { slot }),
        9 => any::<usize>().prop_map(|slot| Op::Free { slot }),
        2 => any::<usize>().prop_map(|slot| Op::Stale { slot }),
        2 => (any::<u64>(), any::<bool>()).prop_map(|(raw, near)| Op::Forged { raw, near }),
        1 => Just(Op::Compact),
        1 => (prop_oneof![Just(0u8), Just(1u8), 1u8..40], any::<bool>())
            .prop_map(|(max_moves, until_done)| Op::CompactStep { max_moves, until_done }),
        1 => Just(Op::CheckAll),
    ];
    if failing {
        prop_oneof![12 => base, 1 => fail_mode_strategy().prop_map(Op::SetFail)].boxed()
    } else {
        base.boxed()
    }
}

/// A sequence of up to `max_ops` operations.
pub fn ops_strategy(max_alloc: usize, failing: bool, max_ops: usize) -> BoxedStrategy<Vec<Op>> {
    prop::collection::vec(op_strategy(max_alloc, failing), 1..=max_ops).boxed()
}

/// Settings of a property run.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Cases (random sequences); the `PROPTEST_CASES` environment variable overrides it.
    pub cases: u32,
    /// Longest sequence.
    pub max_ops: usize,
    /// Inject page-source failures ([`Op::SetFail`] steps).
    pub failing: bool,
    /// Save failing cases in `<test file>.proptest-regressions` next to the calling test file
    /// (and replay them first on the next run).
    pub persist: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cases: 256,
            max_ops: 120,
            failing: false,
            persist: true,
        }
    }
}

/// The model-based property test: random sequences on fresh pools built by `make`,
/// each finished by freeing everything or by dropping the pool with objects live.
/// Panics with the shrunk failing sequence on a violation. Failing cases are persisted
/// in `<test file>.proptest-regressions` next to the calling test file.
#[track_caller]
pub fn check_zpool<P, F>(make: F)
where
    P: ZPool,
    F: Fn(SharedSource) -> P,
{
    check_zpool_with(make, Settings::default())
}

/// [`check_zpool`] with page-source failures injected: [`FailMode`] switches at random
/// points of each sequence. Every failure must be a [`ZPoolError::NoMemory`] that leaves
/// the pool as it was; nothing else may be lost.
#[track_caller]
pub fn check_zpool_failing<P, F>(make: F)
where
    P: ZPool,
    F: Fn(SharedSource) -> P,
{
    check_zpool_with(
        make,
        Settings {
            failing: true,
            ..Settings::default()
        },
    )
}

/// The property test with explicit settings.
#[track_caller]
pub fn check_zpool_with<P, F>(make: F, settings: Settings)
where
    P: ZPool,
    F: Fn(SharedSource) -> P,
{
    let mut config = Config {
        source_file: Some(std::panic::Location::caller().file()),
        ..Config::default()
    };
    config.failure_persistence = if settings.persist {
        Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        )))
    } else {
        None
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = settings.cases;
    }
    let max_alloc = make(test_source()).max_alloc();
    let strategy = (
        ops_strategy(max_alloc, settings.failing, settings.max_ops),
        prop::bool::weighted(0.2),
    );
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(ops, drop_live)| {
        run_ops(&make, &ops, drop_live).map_err(|v| TestCaseError::fail(v.0))
    });
    if let Err(e) = result {
        panic!("{} conformance failed: {e}", make(test_source()).name());
    }
}

// ---------------------------------------------------------------------------------------
// Stale handles of a reused entry
// ---------------------------------------------------------------------------------------

/// Store/free cycles [`check_generation_reuse`] runs: more than a 16-bit generation
/// counts, so an allocator whose handles carry 16 bits of generation (or one shared
/// counter per class) lets the first handle back in before the end.
pub const GENERATION_REUSES: usize = 100_000;

/// Frees a handle, then runs [`GENERATION_REUSES`] store/free cycles of an object of
/// `len` bytes on an otherwise empty pool (so a LIFO entry free list hands the same entry
/// out every time) and checks after each store that the first handle is still refused
/// by `free`, `read`, `write` and `object_len` and that the new handle is not it. The
/// allocator's handles must carry a generation per entry wide enough for that.
pub fn check_generation_reuse<P: ZPool>(
    make: impl FnOnce(SharedSource) -> P,
    len: usize,
) -> Result<(), Violation> {
    let source = test_source();
    let pool = make(Arc::clone(&source));
    let mut data = vec![0u8; len];
    fill_pattern(1, 1, &mut data);
    let first = pool
        .store(&data)
        .map_err(|e| Violation(format!("first store: {e:?}")))?;
    ensure!(pool.free(first) == Ok(()), "free of the first handle");
    let mut out = vec![0u8; len];
    for i in 0..GENERATION_REUSES {
        let h = pool
            .store(&data)
            .map_err(|e| Violation(format!("store {i}: {e:?}")))?;
        ensure!(
            h != first,
            "store {i} of a reused entry handed out the first handle {first:?} again"
        );
        ensure!(
            pool.read(first, &mut out) == Err(ZPoolError::InvalidHandle)
                && pool.object_len(first) == Err(ZPoolError::InvalidHandle)
                && pool.write(first, &data) == Err(ZPoolError::InvalidHandle)
                && pool.free(first) == Err(ZPoolError::InvalidHandle),
            "after {} reuses the first handle {first:?} is accepted again (it now names {h:?})",
            i + 1
        );
        ensure!(pool.free(h) == Ok(()), "free {i} of {h:?}");
    }
    ensure!(pool.total_frames() == 0, "frames left after the cycles");
    drop(pool);
    ensure!(source.live() == 0, "frames not given back");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Fuzz decoding
// ---------------------------------------------------------------------------------------

/// Decodes arbitrary bytes into operations (for a cargo-fuzz target sharing this
/// interpreter): each operation takes a tag byte and a few parameter bytes; a truncated
/// tail is dropped. `failing` allows [`Op::SetFail`] steps.
pub fn decode_ops(data: &[u8], max_alloc: usize, failing: bool) -> Vec<Op> {
    struct Cur<'a>(&'a [u8]);
    impl Cur<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (head, tail) = self.0.split_first_chunk::<N>()?;
            self.0 = tail;
            Some(*head)
        }
        fn u8(&mut self) -> Option<u8> {
            self.take::<1>().map(|b| b[0])
        }
        fn u16(&mut self) -> Option<u16> {
            self.take::<2>().map(u16::from_le_bytes)
        }
        fn u64(&mut self) -> Option<u64> {
            self.take::<8>().map(u64::from_le_bytes)
        }
        fn len(&mut self, wide: bool, lens: usize) -> Option<usize> {
            let lo = usize::from(self.u16()?);
            let hi = if wide { usize::from(self.u8()?) } else { 0 };
            Some((hi << 16 | lo) % lens)
        }
    }
    let lens = max_alloc + 66;
    // Lengths are two bytes while every length up to `max_alloc + 65` fits them (4 KiB
    // and 16 KiB pages), three bytes beyond (64 KiB pages: the maximum and the lengths
    // just over it need more than 16 bits).
    let wide = lens > 1 << 16;
    let mut c = Cur(data);
    let mut ops = Vec::new();
    while let Some(tag) = c.u8() {
        let op = (|| {
            Some(match tag % 14 {
                0 | 1 => Op::Malloc {
                    len: c.len(wide, lens)?,
                    seed: u64::from(c.u8()?),
                },
                2 => Op::Store {
                    len: c.len(wide, lens)?,
                    seed: u64::from(c.u8()?),
                },
                3 => Op::Write {
                    slot: usize::from(c.u8()?),
                    seed: u64::from(c.u8()?),
                },
                4 => Op::Read {
                    slot: usize::from(c.u8()?),
                    extra: c.u8()? % 16,
                },
                5 => Op::WrongLength {
                    slot: usize::from(c.u8()?),
                },
                6 | 7 => Op::Free {
                    slot: usize::from(c.u8()?),
                },
                8 => Op::Stale {
                    slot: usize::from(c.u8()?),
                },
                9 => {
                    let raw = c.u64()?;
                    Op::Forged {
                        raw,
                        near: raw & 1 == 0,
                    }
                }
                10 => {
                    let b = c.u8()?;
                    Op::CompactStep {
                        max_moves: b >> 1,
                        until_done: b & 1 != 0,
                    }
                }
                11 => Op::Compact,
                12 => Op::CheckAll,
                _ => {
                    let b = c.u8()?;
                    let p = c.u8()?;
                    if !failing {
                        Op::CheckAll
                    } else {
                        Op::SetFail(match b % 5 {
                            0 => FailMode::Never,
                            1 => FailMode::Always,
                            2 => FailMode::EveryNth(u64::from(p % 6)),
                            3 => FailMode::AfterN(u64::from(p % 10)),
                            _ => FailMode::Random {
                                seed: u64::from(b),
                                percent: p % 100,
                            },
                        })
                    }
                }
            })
        })();
        match op {
            Some(op) => ops.push(op),
            None => break,
        }
    }
    ops
}

/// Runs a fuzz input: decodes `data` and interprets it on a pool built by `make`,
/// panicking on a violation (what a fuzzer reports as a crash).
pub fn fuzz_one<P: ZPool>(make: impl Fn(SharedSource) -> P, data: &[u8]) {
    let (failing, drop_live, rest) = match data.split_first() {
        Some((b, rest)) => (b & 1 != 0, b & 2 != 0, rest),
        None => return,
    };
    let max_alloc = make(test_source()).max_alloc();
    let ops = decode_ops(rest, max_alloc, failing);
    if let Err(v) = run_ops(make, &ops, drop_live) {
        panic!("conformance violation: {v}");
    }
}
