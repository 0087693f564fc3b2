//! The instance table: a fixed array of slots, each with a generation number, so a
//! handle is checked by comparing numbers and a stale or forged handle never touches
//! freed memory.

use core::ffi::c_int;
use zplat::TryArc;

use zplat::sync::RwLock;

use crate::errno::{ZCACHE_ENODEV, ZCACHE_ENOMEM, ZCACHE_ENOSPC};
use crate::host::Instance;

/// An instance handle: `generation << 8 | (slot + 1)`. `0` is never a valid handle.
pub type ZcacheHandle = u64;

/// Instances that can exist at once (each is a whole zcache with its own clients and
/// pools, which have no cap; a kernel typically needs one).
pub const ZCACHE_MAX_INSTANCES: usize = 64;

/// `zcache_teardown`'s return when calls on the handle were still in flight: the handle
/// is dead at once, and `zcache_reap` frees the instance (and calls the host's
/// `release`) once they have returned, in the context the host calls it from.
pub const ZCACHE_TEARDOWN_DEFERRED: c_int = 1;

const SLOT_BITS: u32 = 8;
const GEN_MASK: u64 = (1 << (64 - SLOT_BITS)) - 1;

// Every slot index + 1 fits the handle's slot field.
const _: () = assert!(ZCACHE_MAX_INSTANCES < (1 << SLOT_BITS));

struct SlotState {
    /// Bumped by every setup that takes the slot (56 bits; wraps to 1, never 0).
    generation: u64,
    instance: Option<TryArc<Instance>>,
    /// A torn-down instance that calls in flight still held: `reap` frees it once this
    /// is its only reference. The slot is not reused meanwhile.
    dying: Option<TryArc<Instance>>,
}

struct Slot {
    /// Read-locked by every call for as long as it takes to compare the generation and
    /// clone the `Arc`; write-locked by setup and teardown just as briefly.
    state: RwLock<SlotState>,
}

static TABLE: [Slot; ZCACHE_MAX_INSTANCES] = [const {
    Slot {
        state: RwLock::new(SlotState {
            generation: 0,
            instance: None,
            dying: None,
        }),
    }
}; ZCACHE_MAX_INSTANCES];

fn encode(slot: usize, generation: u64) -> ZcacheHandle {
    (generation << SLOT_BITS) | (slot as u64 + 1)
}

fn decode(h: ZcacheHandle) -> Option<(&'static Slot, u64)> {
    let idx = usize::try_from(h & ((1 << SLOT_BITS) - 1)).ok()?;
    let slot = TABLE.get(idx.checked_sub(1)?)?;
    Some((slot, h >> SLOT_BITS))
}

/// The live instance of a handle (a counted reference: teardown cannot free it while
/// the caller holds it), or `-ZCACHE_ENODEV`.
pub(crate) fn get(h: ZcacheHandle) -> Result<TryArc<Instance>, c_int> {
    let (slot, generation) = decode(h).ok_or(-ZCACHE_ENODEV)?;
    let s = slot.state.read();
    match &s.instance {
        Some(i) if s.generation == generation => Ok(i.clone()),
        _ => Err(-ZCACHE_ENODEV),
    }
}

/// Puts an instance in the first free slot and returns its handle, or
/// `-ZCACHE_ENOSPC` when every slot is taken (the instance is discarded without
/// calling the host's `release`).
pub(crate) fn insert(inst: Instance) -> Result<ZcacheHandle, c_int> {
    // Allocate before taking any lock, fallibly.
    let arc = match TryArc::new(inst) {
        Ok(a) => a,
        Err(inst) => {
            inst.discard();
            return Err(-ZCACHE_ENOMEM);
        }
    };
    for (i, slot) in TABLE.iter().enumerate() {
        let mut s = slot.state.write();
        if s.instance.is_none() && s.dying.is_none() {
            let mut g = s.generation.wrapping_add(1) & GEN_MASK;
            if g == 0 {
                g = 1;
            }
            s.generation = g;
            s.instance = Some(arc);
            return Ok(encode(i, g));
        }
    }
    // Nobody else has seen `arc`: this is its only reference.
    if let Ok(inst) = TryArc::try_unwrap(arc) {
        inst.discard();
    }
    Err(-ZCACHE_ENOSPC)
}

/// Kills a handle: `Ok(0)` if the instance was freed here, `Ok(DEFERRED)` if calls in
/// flight still hold it, `Err(-ZCACHE_ENODEV)` for a handle that names no live
/// instance. Never waits.
pub(crate) fn remove(h: ZcacheHandle) -> Result<c_int, c_int> {
    let (slot, generation) = decode(h).ok_or(-ZCACHE_ENODEV)?;
    let arc = {
        let mut s = slot.state.write();
        if s.generation != generation {
            return Err(-ZCACHE_ENODEV);
        }
        s.instance.take().ok_or(-ZCACHE_ENODEV)?
    };
    // Outside the slot lock: freeing gives every frame back through the host.
    match TryArc::try_unwrap(arc) {
        Ok(inst) => {
            drop(inst);
            Ok(0)
        }
        Err(arc) => {
            // Calls in flight hold it: park it, so the last of them only drops a count
            // and the bulk freeing waits for `reap`.
            slot.state.write().dying = Some(arc);
            Ok(ZCACHE_TEARDOWN_DEFERRED)
        }
    }
}

/// Frees every parked instance that no call holds any more (in the caller's context);
/// returns how many are still held by calls in flight.
pub(crate) fn reap() -> c_int {
    let mut waiting = 0;
    for slot in TABLE.iter() {
        let Some(arc) = slot.state.write().dying.take() else {
            continue;
        };
        // No new reference can appear: `get` only clones `instance`.
        match TryArc::try_unwrap(arc) {
            Ok(inst) => drop(inst),
            Err(arc) => {
                slot.state.write().dying = Some(arc);
                waiting += 1;
            }
        }
    }
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_reject_garbage() {
        for (slot, generation) in [(0usize, 1u64), (63, GEN_MASK), (5, 12345)] {
            let h = encode(slot, generation);
            assert_ne!(h, 0);
            let (s, g) = decode(h).unwrap();
            assert!(core::ptr::eq(s, &TABLE[slot]));
            assert_eq!(g, generation);
        }
        // Slot field 0, or past the table: not a handle.
        assert!(decode(0).is_none());
        assert!(decode(1 << SLOT_BITS).is_none());
        assert!(decode(ZCACHE_MAX_INSTANCES as u64 + 1).is_none());
        assert!(decode(u64::MAX).is_none());
        // A slot that was never set up has generation 0, which no handle carries.
        assert_eq!(get(encode(ZCACHE_MAX_INSTANCES - 1, 0)).err(), Some(-19));
    }
}
