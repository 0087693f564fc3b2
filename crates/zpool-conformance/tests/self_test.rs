//! The suite checks itself: a simple reference pool (one frame per object) passes it,
//! with and without page-source failures, and deliberately broken variants of the same
//! pool are caught.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use zpool::{CompactStep, Frame, Handle, PAGE_SIZE, PageSource, PoolStats, ZPool, ZPoolError};
use zpool_conformance::{
    Op, Settings, SharedSource, check_generation_reuse, check_zpool, check_zpool_failing,
    check_zpool_with, decode_ops, run_ops,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    None,
    IgnoreGeneration,
    LeakOnFree,
    ReadPastEnd,
    SharedFrame,
    StatsMiscount,
    CompactLies,
    /// `compact_step` reports a frame freed that was not.
    StepLies,
    /// `compact_step` never reports `done`.
    StepNeverDone,
    /// Handles carry 16 bits of generation: the 65 536th reuse of an entry brings a
    /// stale handle back.
    NarrowGeneration,
}

struct Obj {
    /// `None` for the broken variant's objects placed inside another object's frame.
    frame: Option<Frame>,
    /// The slot whose frame holds this object (itself, normally).
    host: usize,
    offset: usize,
    len: usize,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    obj: Option<Obj>,
}

struct Inner {
    slots: Vec<Slot>,
    frames: usize,
}

struct RefPool<S: PageSource> {
    source: S,
    inner: Mutex<Inner>,
    bug: Bug,
}

const MAX: usize = PAGE_SIZE;

impl<S: PageSource> RefPool<S> {
    fn new(source: S, bug: Bug) -> Self {
        RefPool {
            source,
            inner: Mutex::new(Inner {
                slots: Vec::new(),
                frames: 0,
            }),
            bug,
        }
    }

    /// 24 bits of generation (16 for the `NarrowGeneration` bug), 24 of index.
    fn gen_mask(&self) -> u32 {
        if self.bug == Bug::NarrowGeneration {
            0xffff
        } else {
            0xff_ffff
        }
    }

    fn handle(index: usize, generation: u32) -> Handle {
        Handle::from_raw(((index as u64 + 1) << 24) | u64::from(generation)).unwrap()
    }

    fn decode(&self, inner: &Inner, h: Handle) -> Result<usize, ZPoolError> {
        let raw = h.to_raw();
        let index = (raw >> 24)
            .checked_sub(1)
            .ok_or(ZPoolError::InvalidHandle)? as usize;
        let slot = inner.slots.get(index).ok_or(ZPoolError::InvalidHandle)?;
        let gen_ok =
            u64::from(slot.generation) == raw & 0xff_ffff || self.bug == Bug::IgnoreGeneration;
        match &slot.obj {
            Some(_) if gen_ok => Ok(index),
            _ => Err(ZPoolError::InvalidHandle),
        }
    }

    fn release(&self, inner: &mut Inner, index: usize) {
        let mask = self.gen_mask();
        let slot = &mut inner.slots[index];
        slot.generation = slot.generation.wrapping_add(1) & mask;
        let obj = slot.obj.take().unwrap();
        let Some(frame) = obj.frame else {
            return;
        };
        if self.bug != Bug::LeakOnFree {
            self.source.free_frame(frame);
        }
        inner.frames -= 1;
    }
}

impl<S: PageSource> ZPool for RefPool<S> {
    fn name(&self) -> &'static str {
        "reference"
    }
    fn max_alloc(&self) -> usize {
        MAX
    }
    fn malloc(&self, len: usize) -> Result<Handle, ZPoolError> {
        if len == 0 {
            return Err(ZPoolError::ZeroSize);
        }
        if len > MAX {
            return Err(ZPoolError::TooLarge { len, max: MAX });
        }
        let mut inner = self.inner.lock().unwrap();
        // The broken variant places small objects in the previous object's frame.
        if self.bug == Bug::SharedFrame
            && len < 64
            && let Some(host) = inner
                .slots
                .iter()
                .position(|s| s.obj.as_ref().is_some_and(|o| o.frame.is_some()))
        {
            {
                let idx = inner.slots.len();
                inner.slots.push(Slot {
                    generation: 0,
                    obj: Some(Obj {
                        frame: None,
                        host,
                        offset: 8,
                        len,
                    }),
                });
                return Ok(Self::handle(idx, 0));
            }
        }
        drop(inner);
        let frame = self
            .source
            .alloc_frame()
            .map_err(|_| ZPoolError::NoMemory)?;
        let mut inner = self.inner.lock().unwrap();
        let index = match inner.slots.iter().position(|s| s.obj.is_none()) {
            Some(i) => i,
            None => {
                inner.slots.push(Slot::default());
                inner.slots.len() - 1
            }
        };
        inner.slots[index].obj = Some(Obj {
            frame: Some(frame),
            host: index,
            offset: 0,
            len,
        });
        inner.frames += 1;
        Ok(Self::handle(index, inner.slots[index].generation))
    }
    fn free(&self, handle: Handle) -> Result<(), ZPoolError> {
        let mut inner = self.inner.lock().unwrap();
        let i = self.decode(&inner, handle)?;
        self.release(&mut inner, i);
        Ok(())
    }
    fn write(&self, handle: Handle, data: &[u8]) -> Result<(), ZPoolError> {
        let mut inner = self.inner.lock().unwrap();
        let i = self.decode(&inner, handle)?;
        let obj = inner.slots[i].obj.as_ref().unwrap();
        if data.len() != obj.len {
            return Err(ZPoolError::BadLength {
                object: obj.len,
                buffer: data.len(),
            });
        }
        let (off, host) = (obj.offset, obj.host);
        let frame = inner.slots[host]
            .obj
            .as_mut()
            .and_then(|o| o.frame.as_mut())
            .ok_or(ZPoolError::InvalidHandle)?;
        frame[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn read(&self, handle: Handle, out: &mut [u8]) -> Result<usize, ZPoolError> {
        let inner = self.inner.lock().unwrap();
        let i = self.decode(&inner, handle)?;
        let obj = inner.slots[i].obj.as_ref().unwrap();
        if out.len() < obj.len {
            return Err(ZPoolError::BadLength {
                object: obj.len,
                buffer: out.len(),
            });
        }
        let off = obj.offset;
        let frame = inner.slots[obj.host]
            .obj
            .as_ref()
            .and_then(|o| o.frame.as_ref())
            .ok_or(ZPoolError::InvalidHandle)?;
        out[..obj.len].copy_from_slice(&frame[off..off + obj.len]);
        if self.bug == Bug::ReadPastEnd && out.len() > obj.len {
            out[obj.len] = 0;
        }
        Ok(obj.len)
    }
    fn object_len(&self, handle: Handle) -> Result<usize, ZPoolError> {
        let inner = self.inner.lock().unwrap();
        let i = self.decode(&inner, handle)?;
        Ok(inner.slots[i].obj.as_ref().unwrap().len)
    }
    fn total_frames(&self) -> usize {
        self.inner.lock().unwrap().frames
    }
    fn stats(&self) -> PoolStats {
        let inner = self.inner.lock().unwrap();
        let objs = inner.slots.iter().filter_map(|s| s.obj.as_ref());
        let (objects, bytes) = objs.fold((0, 0), |(n, b), o| (n + 1, b + o.len));
        PoolStats {
            frames: inner.frames,
            objects: if self.bug == Bug::StatsMiscount && objects > 2 {
                objects - 1
            } else {
                objects
            },
            bytes,
            metadata_bytes: inner.slots.capacity() * std::mem::size_of::<Slot>(),
        }
    }
    fn compact(&self) -> usize {
        if self.bug == Bug::CompactLies && self.total_frames() > 0 {
            1
        } else {
            0
        }
    }
    fn compact_step(&self, _max_moves: usize) -> CompactStep {
        CompactStep {
            frames_freed: usize::from(self.bug == Bug::StepLies && self.total_frames() > 0),
            objects_moved: 0,
            done: self.bug != Bug::StepNeverDone,
        }
    }
}

impl<S: PageSource> Drop for RefPool<S> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap();
        for s in inner.slots.drain(..) {
            if let Some(f) = s.obj.and_then(|o| o.frame) {
                self.source.free_frame(f);
            }
        }
    }
}

fn make(bug: Bug) -> impl Fn(SharedSource) -> RefPool<SharedSource> {
    move |s| RefPool::new(s, bug)
}

#[test]
fn reference_pool_passes() {
    check_zpool(make(Bug::None));
}

#[test]
fn reference_pool_passes_under_failures() {
    check_zpool_failing(make(Bug::None));
}

#[test]
fn generation_reuse_check_passes_and_catches_a_16_bit_generation() {
    check_generation_reuse(make(Bug::None), 100).unwrap();
    let v = check_generation_reuse(make(Bug::NarrowGeneration), 100).unwrap_err();
    // The 65 536th store after the free (index 65535) hands the first handle out again.
    assert!(v.0.contains("store 65535 "), "{v}");
    assert!(check_generation_reuse(make(Bug::IgnoreGeneration), 100).is_err());
}

#[test]
fn each_bug_is_caught() {
    for bug in [
        Bug::IgnoreGeneration,
        Bug::LeakOnFree,
        Bug::ReadPastEnd,
        Bug::SharedFrame,
        Bug::StatsMiscount,
        Bug::CompactLies,
        Bug::StepLies,
        Bug::StepNeverDone,
    ] {
        let settings = Settings {
            cases: 64,
            max_ops: 60,
            failing: false,
            persist: false,
        };
        let r = catch_unwind(AssertUnwindSafe(|| check_zpool_with(make(bug), settings)));
        assert!(r.is_err(), "the suite missed {bug:?}");
    }
}

#[test]
fn decoded_fuzz_input_runs() {
    let bytes: Vec<u8> = (0..600u32).map(|i| (i * 7 + i / 3) as u8).collect();
    let ops = decode_ops(&bytes, MAX, true);
    assert!(ops.len() > 50);
    assert_eq!(
        decode_ops(&[10, 5], MAX, false),
        [Op::CompactStep {
            max_moves: 2,
            until_done: true
        }]
    );
    run_ops(make(Bug::None), &ops, false).unwrap();
    zpool_conformance::fuzz_one(make(Bug::None), &bytes);
}

#[test]
fn decoded_lengths_reach_the_maximum_and_beyond() {
    // At every page size a fuzz input can ask for the largest object and for just over it.
    for len in [1, MAX, MAX + 1, MAX + 65] {
        let mut bytes = vec![0u8, len as u8, (len >> 8) as u8];
        if MAX + 66 > 1 << 16 {
            bytes.push((len >> 16) as u8);
        }
        bytes.push(9);
        assert_eq!(
            decode_ops(&bytes, MAX, false),
            [Op::Malloc { len, seed: 9 }],
            "{len}"
        );
    }
}
