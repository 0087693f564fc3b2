//! The model-based operation interpreter for zcache's two front ends, shared by the
//! property tests (`tests/model.rs`) and the fuzz target (`fuzz/fuzz_targets/zcache_ops.rs`).
//!
//! The model knows the contract: an ephemeral (cleancache) page may vanish but never
//! change, and after a miss it stays missing until the next put; a persistent
//! (frontswap) page never vanishes unless invalidated or accepted by writeback, in which
//! case the writeback log must hold exactly that page for that slot.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use tmem_core::{Oid, PoolId};
use zpool::testing::{CountingSource, FailMode, FailingSource};
use zpool::{HeapPageSource, PAGE_SIZE, Page};

use crate::sync::Mutex;
use crate::{AllocatorKind, Config, SlotClaim, Writeback, Zcache};

/// A test page for `seed`: zero, same-filled, incompressible or compressible (of varying
/// size), deterministically.
pub fn test_page(seed: u32) -> Page {
    let mut p = [0u8; PAGE_SIZE];
    let mut x = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    match seed % 8 {
        0 => {}
        1 => zcomp::fill_page(&mut p, next() | 1),
        2 => p.iter_mut().for_each(|b| *b = next() as u8),
        k => {
            // Runs of bytes from a small alphabet: longer runs for larger k, so the
            // compressed size varies from about half a page down to a few hundred bytes.
            let distinct = 4 + (k as usize) * 4;
            let alphabet: Vec<u8> = (0..distinct).map(|_| next() as u8).collect();
            let mut i = 0;
            while i < PAGE_SIZE {
                let run = 1 + (next() as usize) % (2 * k as usize * k as usize);
                let b = alphabet[(next() as usize) % distinct];
                let end = (i + run).min(PAGE_SIZE);
                p[i..end].fill(b);
                i = end;
            }
            p[..4].copy_from_slice(&seed.to_le_bytes());
        }
    }
    p
}

/// A writeback target that records every page it accepts, refuses to write slots whose
/// offset is a multiple of 5 and refuses to claim slots whose offset is a multiple of
/// 7. It checks the protocol: every write and release is for a live claim, and every
/// claim is released exactly once.
pub struct RecordingWriteback {
    // Pages on the heap: a host's writeback runs on the storing thread's stack (16 KiB
    // in a kernel), so it must not move pages around by value.
    log: Mutex<BTreeMap<(u32, u64), Vec<u8>>>,
    order: Mutex<Vec<(u32, u64)>>,
    claims: Mutex<BTreeMap<u64, (u32, u64)>>,
    next: Mutex<u64>,
    violations: Mutex<Vec<String>>,
}

impl Default for RecordingWriteback {
    fn default() -> Self {
        RecordingWriteback {
            log: Mutex::new(BTreeMap::new()),
            order: Mutex::new(Vec::new()),
            claims: Mutex::new(BTreeMap::new()),
            next: Mutex::new(1),
            violations: Mutex::new(Vec::new()),
        }
    }
}

impl RecordingWriteback {
    /// The page last written for a slot.
    pub fn written(&self, swap_type: u32, offset: u64) -> Option<Page> {
        self.log
            .lock()
            .get(&(swap_type, offset))
            .and_then(|v| Page::try_from(v.as_slice()).ok())
    }
    /// Slots accepted, in the order they were written.
    pub fn order(&self) -> Vec<(u32, u64)> {
        self.order.lock().clone()
    }
    /// Slots written so far.
    pub fn count(&self) -> usize {
        self.log.lock().len()
    }
    /// Forgets a slot (the host reused it).
    pub fn forget(&self, swap_type: u32, offset: u64) {
        self.log.lock().remove(&(swap_type, offset));
    }
    /// Protocol violations seen (write or release of an unknown claim, a claim never
    /// released); empty when zcache kept the protocol.
    pub fn violations(&self) -> Vec<String> {
        let mut v = self.violations.lock().clone();
        for (t, c) in self.claims.lock().iter() {
            v.push(format!("claim {t} on {c:?} never released"));
        }
        v
    }
    fn check(&self, claim: &SlotClaim, what: &str) {
        let ok = self.claims.lock().get(&claim.token) == Some(&(claim.swap_type, claim.offset));
        if !ok {
            self.violations
                .lock()
                .push(format!("{what} of an unknown claim {claim:?}"));
        }
    }
}

impl Writeback for RecordingWriteback {
    fn claim(&self, swap_type: u32, offset: u64) -> Option<u64> {
        if offset.is_multiple_of(7) {
            return None;
        }
        let mut n = self.next.lock();
        let token = *n;
        *n += 1;
        self.claims.lock().insert(token, (swap_type, offset));
        Some(token)
    }
    fn write(&self, claim: &SlotClaim, page: &Page) -> bool {
        self.check(claim, "write");
        if claim.offset.is_multiple_of(5) {
            return false;
        }
        self.log
            .lock()
            .insert((claim.swap_type, claim.offset), page.to_vec());
        self.order.lock().push((claim.swap_type, claim.offset));
        true
    }
    fn release(&self, claim: SlotClaim, _written: bool) {
        self.check(&claim, "release");
        self.claims.lock().remove(&claim.token);
    }
}

/// One operation. Small integers choose among 3 swap types, 3 file-system slots, 4
/// files, and offsets/indices.
#[derive(Clone, Debug)]
pub enum Op {
    /// frontswap init.
    SwapInit {
        /// Swap type.
        t: u8,
    },
    /// frontswap store of `test_page(seed)`.
    SwapStore {
        /// Swap type.
        t: u8,
        /// Offset.
        off: u16,
        /// Page seed.
        seed: u32,
    },
    /// frontswap load (checked).
    SwapLoad {
        /// Swap type.
        t: u8,
        /// Offset.
        off: u16,
    },
    /// frontswap invalidate_page.
    SwapInvalidate {
        /// Swap type.
        t: u8,
        /// Offset.
        off: u16,
    },
    /// frontswap invalidate_area.
    SwapInvalidateArea {
        /// Swap type.
        t: u8,
    },
    /// cleancache init_fs (or init_shared_fs for `shared`) into a slot.
    CcInit {
        /// File-system slot.
        fs: u8,
        /// Shared mount.
        shared: bool,
    },
    /// cleancache put_page.
    CcPut {
        /// File-system slot.
        fs: u8,
        /// File.
        file: u8,
        /// Page index.
        index: u16,
        /// Page seed.
        seed: u32,
    },
    /// cleancache get_page (checked).
    CcGet {
        /// File-system slot.
        fs: u8,
        /// File.
        file: u8,
        /// Page index.
        index: u16,
    },
    /// cleancache invalidate_page.
    CcInvalidatePage {
        /// File-system slot.
        fs: u8,
        /// File.
        file: u8,
        /// Page index.
        index: u16,
    },
    /// cleancache invalidate_inode.
    CcInvalidateInode {
        /// File-system slot.
        fs: u8,
        /// File.
        file: u8,
    },
    /// cleancache invalidate_fs.
    CcInvalidateFs {
        /// File-system slot.
        fs: u8,
    },
    /// Host memory pressure: shrink to `target` frames.
    Shrink {
        /// Target frames.
        target: u8,
    },
    /// The host's reclaim worker: `Zcache::reclaim(budget)`.
    Reclaim {
        /// Pages.
        budget: u8,
    },
    /// A kernel shrinker: count, then scan `nr` pages.
    ShrinkerScan {
        /// Pages to scan.
        nr: u8,
    },
    /// Compact both allocators.
    Compact,
    /// Page source failure mode: 0 never, 1 every 3rd, 2 random 30 %, 3 always.
    FailFrames {
        /// Mode selector.
        mode: u8,
    },
}

impl Op {
    /// Decodes operations from raw bytes (8 per op), for fuzzing.
    pub fn decode(bytes: &[u8]) -> Vec<Op> {
        bytes
            .chunks_exact(8)
            .map(|b| {
                let t = b[1] % 3;
                let off = u16::from_le_bytes([b[2], b[3]]) % 512;
                let seed = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let (fs, file) = (b[1] % 3, b[2] % 4);
                let index = u16::from(b[3]) % 128;
                match b[0] % 16 {
                    0 => Op::SwapInit { t },
                    1..=3 => Op::SwapStore { t, off, seed },
                    4 | 5 => Op::SwapLoad { t, off },
                    6 => Op::SwapInvalidate { t, off },
                    7 => Op::SwapInvalidateArea { t },
                    8 => Op::CcInit {
                        fs,
                        shared: b[4] & 1 == 1,
                    },
                    9 | 10 => Op::CcPut {
                        fs,
                        file,
                        index,
                        seed,
                    },
                    11 => Op::CcGet { fs, file, index },
                    12 => Op::CcInvalidatePage { fs, file, index },
                    13 => Op::CcInvalidateInode { fs, file },
                    14 => match b[4] % 5 {
                        0 => Op::Shrink { target: b[5] },
                        1 => Op::Compact,
                        2 => Op::Reclaim { budget: b[5] % 32 },
                        3 => Op::ShrinkerScan { nr: b[5] % 32 },
                        _ => Op::CcInvalidateFs { fs },
                    },
                    _ => Op::FailFrames { mode: b[4] % 4 },
                }
            })
            .collect()
    }
}

/// The zcache configuration the interpreter runs with.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Allocator for ephemeral pools.
    pub ephemeral: AllocatorKind,
    /// Allocator for persistent pools.
    pub persistent: AllocatorKind,
    /// Frame limit (small, so eviction and writeback happen).
    pub max_frames: usize,
    /// [`Config::decompress_in_place`].
    pub decompress_in_place: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            ephemeral: AllocatorKind::Zbud,
            persistent: AllocatorKind::Zsmalloc,
            max_frames: 24,
            decompress_in_place: false,
        }
    }
}

type Src = CountingSource<FailingSource<HeapPageSource>>;

/// Runs `ops` against a fresh zcache built per `setup` and the model; returns the first
/// divergence. At the end everything is invalidated, the zcache dropped, and every frame
/// must be back.
pub fn run(setup: Setup, ops: &[Op]) -> Result<(), String> {
    let src: Arc<Src> = Arc::new(CountingSource::new(FailingSource::new(HeapPageSource)));
    let wb = Arc::new(RecordingWriteback::default());
    let cfg = Config {
        max_frames: setup.max_frames,
        ephemeral_allocator: setup.ephemeral,
        persistent_allocator: setup.persistent,
        decompress_in_place: setup.decompress_in_place,
        contexts: 2,
        ..Config::default()
    };
    let z =
        Zcache::with_writeback(cfg, src.clone(), wb.clone()).map_err(|e| format!("new: {e}"))?;
    let result = run_on(&z, &src, &wb, ops);
    if result.is_ok() {
        // Teardown: invalidate everything; stored pages must reach zero.
        for t in 0..3 {
            let _ = z.frontswap().invalidate_area(t);
        }
        // Every mount leaves (a shared pool has one member per mount).
        for p in z.pool_ids().map_err(|e| format!("pool_ids: {e}"))? {
            while z.cleancache().invalidate_fs(p).is_ok() {}
        }
        let st = z.stats();
        if st.counters.stored_pages != 0
            || st.counters.zbytes != 0
            || st.counters.same_filled_pages != 0
        {
            return Err(format!("after teardown: {:?}", st.counters));
        }
        if st.eph_zpages != 0 || st.pers_zpages != 0 {
            return Err(format!("objects left after teardown: {st:?}"));
        }
    }
    drop(z);
    result?;
    if src.live() != 0 {
        return Err(format!("{} frames leaked", src.live()));
    }
    Ok(())
}

fn run_on(z: &Zcache, src: &Src, wb: &RecordingWriteback, ops: &[Op]) -> Result<(), String> {
    // Frontswap model: slot -> seed. Cleancache model: (slot, file, index) -> seed.
    let mut swap: [Option<BTreeMap<u64, u32>>; 3] = [None, None, None];
    let mut fs: [Option<(PoolId, bool)>; 3] = [None, None, None];
    let mut cc: BTreeMap<(PoolId, u8, u16), u32> = BTreeMap::new();
    let mut page = [0u8; PAGE_SIZE];
    let fsw = z.frontswap();
    let ccf = z.cleancache();
    let file_oid = |f: u8| Oid::new(u64::from(f) + 1, 0x100, 0);

    for (step, op) in ops.iter().enumerate() {
        let ctxt = |what: &str| format!("step {step} {op:?}: {what}");
        match *op {
            Op::SwapInit { t } => {
                fsw.init(u32::from(t)).map_err(|e| ctxt(&format!("{e}")))?;
                swap[t as usize] = Some(BTreeMap::new());
                for off in 0..512 {
                    wb.forget(u32::from(t), off);
                }
            }
            Op::SwapStore { t, off, seed } => {
                let off = u64::from(off);
                let r = fsw.store(u32::from(t), off, &test_page(seed));
                match &mut swap[t as usize] {
                    None => {
                        if r.is_ok() {
                            return Err(ctxt("store to an uninitialised type succeeded"));
                        }
                    }
                    Some(m) => {
                        wb.forget(u32::from(t), off);
                        if r.is_ok() {
                            m.insert(off, seed);
                        } else {
                            m.remove(&off);
                        }
                    }
                }
            }
            Op::SwapLoad { t, off } => {
                let off = u64::from(off);
                page.fill(0x5a);
                let r = fsw.load(u32::from(t), off, &mut page);
                let Some(m) = &mut swap[t as usize] else {
                    if r.is_ok() {
                        return Err(ctxt("load from an uninitialised type succeeded"));
                    }
                    continue;
                };
                let hit = r.map_err(|e| ctxt(&format!("{e}")))?;
                match m.get(&off).copied() {
                    Some(seed) if hit && page != test_page(seed) => {
                        return Err(ctxt("wrong bytes from frontswap"));
                    }
                    Some(_) if hit => {}
                    Some(seed) => {
                        // Only writeback may take a persistent page away.
                        match wb.written(u32::from(t), off) {
                            Some(p) if p == test_page(seed) => {
                                m.remove(&off);
                            }
                            Some(_) => return Err(ctxt("written-back page has other bytes")),
                            None => return Err(ctxt("persistent page lost")),
                        }
                    }
                    None if hit => return Err(ctxt("hit where the model has nothing")),
                    None => {}
                }
            }
            Op::SwapInvalidate { t, off } => {
                let r = fsw.invalidate_page(u32::from(t), u64::from(off));
                if let Some(m) = &mut swap[t as usize] {
                    r.map_err(|e| ctxt(&format!("{e}")))?;
                    m.remove(&u64::from(off));
                    wb.forget(u32::from(t), u64::from(off));
                }
            }
            Op::SwapInvalidateArea { t } => {
                let r = fsw.invalidate_area(u32::from(t));
                if swap[t as usize].take().is_some() {
                    r.map_err(|e| ctxt(&format!("{e}")))?;
                } else if r.is_ok() {
                    return Err(ctxt("invalidate_area of an uninitialised type succeeded"));
                }
            }
            Op::CcInit { fs: slot, shared } => {
                if let Some((old, _)) = fs[slot as usize].take() {
                    // Replace the mount in this slot: unmount first.
                    ccf.invalidate_fs(old).map_err(|e| ctxt(&format!("{e}")))?;
                    if !fs.iter().flatten().any(|(p, _)| *p == old) {
                        cc.retain(|(p, _, _), _| *p != old);
                    }
                }
                let id = if shared {
                    ccf.init_shared_fs([7; 16])
                } else {
                    ccf.init_fs()
                }
                .map_err(|e| ctxt(&format!("{e}")))?;
                fs[slot as usize] = Some((id, shared));
            }
            Op::CcPut {
                fs: slot,
                file,
                index,
                seed,
            } => {
                let Some((id, _)) = fs[slot as usize] else {
                    continue;
                };
                ccf.put_page(id, file_oid(file), u64::from(index), &test_page(seed));
                cc.insert((id, file, index), seed);
            }
            Op::CcGet {
                fs: slot,
                file,
                index,
            } => {
                let Some((id, shared)) = fs[slot as usize] else {
                    continue;
                };
                page.fill(0x5a);
                let hit = ccf.get_page(id, file_oid(file), u64::from(index), &mut page);
                match cc.get(&(id, file, index)).copied() {
                    Some(seed) if hit => {
                        if page != test_page(seed) {
                            return Err(ctxt("wrong bytes from cleancache"));
                        }
                        if !shared {
                            cc.remove(&(id, file, index));
                        }
                    }
                    Some(_) => {
                        cc.remove(&(id, file, index));
                    }
                    None if hit => return Err(ctxt("cleancache hit after a miss or invalidate")),
                    None => {
                        if page.iter().any(|b| *b != 0x5a) {
                            return Err(ctxt("a miss wrote the page"));
                        }
                    }
                }
            }
            Op::CcInvalidatePage {
                fs: slot,
                file,
                index,
            } => {
                let Some((id, _)) = fs[slot as usize] else {
                    continue;
                };
                ccf.invalidate_page(id, file_oid(file), u64::from(index));
                cc.remove(&(id, file, index));
            }
            Op::CcInvalidateInode { fs: slot, file } => {
                let Some((id, _)) = fs[slot as usize] else {
                    continue;
                };
                ccf.invalidate_inode(id, file_oid(file));
                cc.retain(|(p, f, _), _| !(*p == id && *f == file));
            }
            Op::CcInvalidateFs { fs: slot } => {
                let Some((id, _)) = fs[slot as usize].take() else {
                    continue;
                };
                ccf.invalidate_fs(id).map_err(|e| ctxt(&format!("{e}")))?;
                if !fs.iter().flatten().any(|(p, _)| *p == id) {
                    cc.retain(|(p, _, _), _| *p != id);
                }
            }
            Op::Shrink { target } => {
                z.shrink(usize::from(target));
            }
            Op::Reclaim { budget } => {
                let o = z.reclaim(usize::from(budget));
                if o.evicted_pages + o.written_back_pages > usize::from(budget) {
                    return Err(ctxt(&format!("reclaim over its budget: {o:?}")));
                }
            }
            Op::ShrinkerScan { nr } => {
                let count = z.shrinker_count();
                let freed = z.shrinker_scan(usize::from(nr));
                if freed > usize::from(nr) || freed > count {
                    return Err(ctxt(&format!(
                        "shrinker freed {freed} (count {count}, nr_to_scan {nr})"
                    )));
                }
            }
            Op::Compact => {
                z.compact();
            }
            Op::FailFrames { mode } => src.inner().set_mode(match mode {
                0 => FailMode::Never,
                1 => FailMode::EveryNth(3),
                2 => FailMode::Random {
                    seed: step as u64 + 1,
                    percent: 30,
                },
                _ => FailMode::Always,
            }),
        }
        let v = wb.violations();
        if !v.is_empty() {
            return Err(ctxt(&format!("writeback protocol: {v:?}")));
        }
        let st = z.stats();
        if st.pool_frames > z.config().max_frames {
            return Err(ctxt(&format!(
                "{} frames held over the limit",
                st.pool_frames
            )));
        }
        if st.pool_frames != src.live() {
            return Err(ctxt(&format!(
                "zcache counts {} frames, source {}",
                st.pool_frames,
                src.live()
            )));
        }
    }
    // Final sweep: every persistent page of the model is loadable (or written back).
    src.inner().set_mode(FailMode::Never);
    for (t, m) in swap.iter().enumerate() {
        let Some(m) = m else { continue };
        for (&off, &seed) in m {
            let hit = fsw
                .load(t as u32, off, &mut page)
                .map_err(|e| format!("final load: {e}"))?;
            if hit {
                if page != test_page(seed) {
                    return Err(format!("final: wrong bytes at {t}/{off}"));
                }
            } else if wb.written(t as u32, off) != Some(test_page(seed)) {
                return Err(format!("final: persistent page {t}/{off} lost"));
            }
        }
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use zcomp::{AnyCompressor, Compressor, MAX_COMPRESSED_LEN};

    #[test]
    fn test_pages_cover_every_kind() {
        let mut c = AnyCompressor::new(zcomp::Algorithm::Lz4).unwrap();
        let mut buf = alloc::vec![0u8; MAX_COMPRESSED_LEN];
        let mut sizes = Vec::new();
        for seed in 0..64u32 {
            let p = test_page(seed);
            match seed % 8 {
                0 | 1 => assert!(zcomp::same_filled(&p).is_some()),
                2 => assert!(c.compress(&p, &mut buf).unwrap() > PAGE_SIZE * 7 / 8),
                _ => {
                    assert!(zcomp::same_filled(&p).is_none());
                    let n = c.compress(&p, &mut buf).unwrap();
                    assert!(n < PAGE_SIZE * 5 / 8, "seed {seed}: {n} bytes");
                    sizes.push(n);
                }
            }
        }
        sizes.sort();
        assert!(sizes[sizes.len() - 1] > 2 * sizes[0], "{sizes:?}");
    }
}
