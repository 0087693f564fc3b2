//! The suite checks itself: a simple reference pool (one frame per object) passes it,
//! with and without page-source failures, and deliberately broken variants of the same
//! pool are caught.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use zpool::{EvictOutcome, Frame, Handle, PAGE_SIZE, PageSource, PoolStats, ZPool, ZPoolError};
use zpool_conformance::{
    Expect, Op, Settings, SharedSource, check_zpool, check_zpool_failing, check_zpool_with,
    decode_ops, run_ops,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    None,
    IgnoreGeneration,
    LeakOnFree,
    ReadPastEnd,
    SharedFrame,
    StatsMiscount,
    EvictUnknownHandle,
    CompactLies,
}

struct Obj {
    /// `None` for the broken variant's objects placed inside another object's frame.
    frame: Option<Frame>,
    /// The slot whose frame holds this object (itself, normally).
    host: usize,
    offset: usize,
    len: usize,
    dying: bool,
    freed_while_dying: bool,
}

#[derive(Default)]
struct Slot {
    generation: u16,
    obj: Option<Obj>,
}

struct Inner {
    slots: Vec<Slot>,
    lru: VecDeque<usize>,
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
                lru: VecDeque::new(),
                frames: 0,
            }),
            bug,
        }
    }

    fn handle(index: usize, generation: u16) -> Handle {
        Handle::from_raw(((index as u64 + 1) << 16) | u64::from(generation)).unwrap()
    }

    fn decode(&self, inner: &Inner, h: Handle) -> Result<usize, ZPoolError> {
        let raw = h.to_raw();
        let index = (raw >> 16)
            .checked_sub(1)
            .ok_or(ZPoolError::InvalidHandle)? as usize;
        let slot = inner.slots.get(index).ok_or(ZPoolError::InvalidHandle)?;
        let gen_ok = slot.generation == raw as u16 || self.bug == Bug::IgnoreGeneration;
        match &slot.obj {
            Some(o) if gen_ok && !o.freed_while_dying => Ok(index),
            _ => Err(ZPoolError::InvalidHandle),
        }
    }

    fn release(&self, inner: &mut Inner, index: usize) {
        let slot = &mut inner.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        let obj = slot.obj.take().unwrap();
        inner.lru.retain(|&i| i != index);
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
                        dying: false,
                        freed_while_dying: false,
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
            dying: false,
            freed_while_dying: false,
        });
        inner.frames += 1;
        inner.lru.push_back(index);
        Ok(Self::handle(index, inner.slots[index].generation))
    }
    fn free(&self, handle: Handle) -> Result<(), ZPoolError> {
        let mut inner = self.inner.lock().unwrap();
        let i = self.decode(&inner, handle)?;
        let obj = inner.slots[i].obj.as_mut().unwrap();
        if obj.dying {
            obj.freed_while_dying = true;
            return Ok(());
        }
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
    fn evict_lru(
        &self,
        retries: usize,
        evict: &mut dyn FnMut(Handle),
    ) -> Result<EvictOutcome, ZPoolError> {
        let mut out = EvictOutcome::default();
        for _ in 0..retries.max(1) {
            let (index, h) = {
                let mut inner = self.inner.lock().unwrap();
                let Some(index) = inner.lru.pop_front() else {
                    break;
                };
                let slot = &mut inner.slots[index];
                slot.obj.as_mut().unwrap().dying = true;
                (index, Self::handle(index, slot.generation))
            };
            if self.bug == Bug::EvictUnknownHandle {
                evict(Handle::from_raw(h.to_raw() + (1 << 30)).unwrap());
            }
            evict(h);
            let mut inner = self.inner.lock().unwrap();
            let obj = inner.slots[index].obj.as_mut().unwrap();
            obj.dying = false;
            if obj.freed_while_dying {
                self.release(&mut inner, index);
                out.frames_freed += 1;
                out.objects_evicted += 1;
                return Ok(out);
            }
            inner.lru.push_back(index);
        }
        if out.objects_evicted == 0 {
            Err(ZPoolError::NothingToEvict)
        } else {
            Ok(out)
        }
    }
    fn compact(&self) -> usize {
        if self.bug == Bug::CompactLies && self.total_frames() > 0 {
            1
        } else {
            0
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
    check_zpool(make(Bug::None), Expect::LRU);
}

#[test]
fn reference_pool_passes_under_failures() {
    check_zpool_failing(make(Bug::None), Expect::LRU);
}

#[test]
fn evict_expectation_is_checked() {
    let ops = [
        Op::Malloc { len: 10, seed: 1 },
        Op::Evict {
            retries: 1,
            keep_mask: 0,
            alloc_in_callback: false,
        },
    ];
    assert!(run_ops(make(Bug::None), Expect::LRU, &ops, false).is_ok());
    let v = run_ops(make(Bug::None), Expect::NO_LRU, &ops, false).unwrap_err();
    assert!(v.0.contains("expected Unsupported"), "{v}");
}

#[test]
fn each_bug_is_caught() {
    for bug in [
        Bug::IgnoreGeneration,
        Bug::LeakOnFree,
        Bug::ReadPastEnd,
        Bug::SharedFrame,
        Bug::StatsMiscount,
        Bug::EvictUnknownHandle,
        Bug::CompactLies,
    ] {
        let settings = Settings {
            cases: 64,
            max_ops: 60,
            failing: false,
            persist: false,
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            check_zpool_with(make(bug), Expect::LRU, settings)
        }));
        assert!(r.is_err(), "the suite missed {bug:?}");
    }
}

#[test]
fn decoded_fuzz_input_runs() {
    let bytes: Vec<u8> = (0..600u32).map(|i| (i * 7 + i / 3) as u8).collect();
    let ops = decode_ops(&bytes, MAX, true);
    assert!(ops.len() > 50);
    run_ops(make(Bug::None), Expect::LRU, &ops, false).unwrap();
    zpool_conformance::fuzz_one(make(Bug::None), Expect::LRU, &bytes);
}
