//! Test support shared by the property tests, the loom models, the fuzz target and the
//! benches: a deterministic backend ([`SeedPam`]) and the operation interpreter
//! ([`Op`], [`run`]) that checks tmem against a plain map model.
//!
//! Keeping the interpreter here, in one place, lets `tests/model.rs` (proptest) and
//! `fuzz/fuzz_targets/tmem_ops.rs` (cargo-fuzz) drive exactly the same checks.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::num::NonZeroU64;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use crate::key::{ClientId, Index, Key, Oid, PoolId, Uuid};
use crate::pam::{LoadStep, PAGE_SIZE, Page, PamOps};
use crate::pool::{LoadMode, PoolInfo, PoolKind, StoreOutcome};
use crate::{TmemError, tmem::Tmem};

/// The page that seed `seed` stands for: a cheap, seed-unique pattern over all `PAGE_SIZE`
/// bytes (the seed itself in the first 4 bytes).
pub fn seed_page(seed: u32) -> Page {
    let mut p = [0u8; PAGE_SIZE];
    let mut x = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in p.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    p[..4].copy_from_slice(&seed.to_le_bytes());
    p
}

/// A [`SeedPam`] descriptor: a creation number (high 32 bits) and the page's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedDesc(NonZeroU64);

impl SeedDesc {
    /// The seed of the page this descriptor stands for.
    pub fn seed(&self) -> u32 {
        self.0.get() as u32
    }
    /// The raw value (creation number << 32 | seed).
    pub fn raw(&self) -> u64 {
        self.0.get()
    }
}

/// [`SeedPam`]'s error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedError {
    /// Failure injected by the test.
    Injected,
    /// A load found no staged page (a tmem bug if it ever happens).
    NothingStaged,
}

/// [`SeedPam`]'s per-caller context.
#[derive(Default, Debug)]
pub struct SeedCtx {
    staged: Option<u32>,
}

/// A deterministic test backend. A page must be a [`seed_page`]; its descriptor records
/// the seed, and loads regenerate the page from it. Counts live descriptors (so tests can
/// prove every descriptor is freed exactly once), and fails creates on demand.
#[derive(Debug, Default)]
pub struct SeedPam {
    live: AtomicI64,
    created: AtomicU32,
    fail_next: AtomicU32,
    fail_every: AtomicU32,
    frees: AtomicU64,
}

impl SeedPam {
    /// A backend that never fails.
    pub fn new() -> Self {
        Self::default()
    }
    /// Live descriptors (created and not yet freed).
    pub fn live(&self) -> i64 {
        self.live.load(Ordering::SeqCst)
    }
    /// Descriptors freed so far.
    pub fn frees(&self) -> u64 {
        self.frees.load(Ordering::SeqCst)
    }
    /// Makes the next `n` creates fail.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }
    /// Makes every `n`th create fail (0: never).
    pub fn fail_every(&self, n: u32) {
        self.fail_every.store(n, Ordering::SeqCst);
    }
    /// The descriptor of the most recent successful create.
    pub fn last_created(&self, seed: u32) -> SeedDesc {
        let n = u64::from(self.created.load(Ordering::SeqCst));
        SeedDesc(NonZeroU64::new((n << 32) | u64::from(seed)).unwrap_or(NonZeroU64::MIN))
    }
}

impl PamOps for SeedPam {
    type Desc = SeedDesc;
    type Ctx = SeedCtx;
    type Error = SeedError;

    fn create(
        &self,
        _ctx: &mut SeedCtx,
        _key: &Key,
        _pool: &PoolInfo,
        page: &Page,
    ) -> Result<SeedDesc, SeedError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SeedError::Injected);
        }
        let n = self.created.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        let every = self.fail_every.load(Ordering::SeqCst);
        if every != 0 && n.is_multiple_of(every) {
            return Err(SeedError::Injected);
        }
        let seed = u32::from_le_bytes([page[0], page[1], page[2], page[3]]);
        self.live.fetch_add(1, Ordering::SeqCst);
        let raw = (u64::from(n) << 32) | u64::from(seed);
        Ok(SeedDesc(NonZeroU64::new(raw).unwrap_or(NonZeroU64::MIN)))
    }

    /// Both kinds of backend at once: pages with an odd seed are produced under the
    /// bucket lock, the others staged for `load_finish`.
    fn load_stage(
        &self,
        ctx: &mut SeedCtx,
        _pool: &PoolInfo,
        desc: &SeedDesc,
        page: &mut Page,
    ) -> Result<LoadStep, SeedError> {
        if desc.seed() % 2 == 1 {
            *page = seed_page(desc.seed());
            return Ok(LoadStep::Done);
        }
        ctx.staged = Some(desc.seed());
        Ok(LoadStep::Finish)
    }

    fn load_finish(&self, ctx: &mut SeedCtx, page: &mut Page) -> Result<(), SeedError> {
        let seed = ctx.staged.take().ok_or(SeedError::NothingStaged)?;
        *page = seed_page(seed);
        Ok(())
    }

    fn load_and_free(
        &self,
        _ctx: &mut SeedCtx,
        pool: &PoolInfo,
        desc: SeedDesc,
        page: &mut Page,
    ) -> Result<(), SeedError> {
        *page = seed_page(desc.seed());
        self.free(pool, desc);
        Ok(())
    }

    fn free(&self, _pool: &PoolInfo, _desc: SeedDesc) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        self.frees.fetch_add(1, Ordering::SeqCst);
    }
}

/// Object ids the interpreter uses: extremes of the ordering and ordinary values.
pub const OIDS: [Oid; 6] = [
    Oid::new(0, 0, 0),
    Oid::new(1, 0, 0),
    Oid::new(0, 0, 1),
    Oid::new(u64::MAX, u64::MAX, u64::MAX),
    Oid::new(0x1234, 0xdead_beef, 7),
    Oid::new(u64::MAX, 0, 0),
];

/// Indices the interpreter favours: every tree height boundary.
pub const INDICES: [Index; 12] = [
    0,
    1,
    63,
    64,
    4095,
    4096,
    262_143,
    262_144,
    (1 << 32) - 1,
    1 << 32,
    u64::MAX - 1,
    u64::MAX,
];

/// One operation of a generated sequence. Small integers pick among the interpreter's
/// clients (3), pool slots (pools created so far, dead ones included), [`OIDS`] and
/// [`INDICES`] (an `index` ≥ `INDICES.len()` is used as a raw index).
#[derive(Clone, Debug)]
pub enum Op {
    /// Create a private pool, or join/create shared pool `uuid % 2` when `shared`.
    NewPool {
        /// Acting client.
        client: u8,
        /// Ephemeral or persistent.
        kind: PoolKind,
        /// Shared pool (by one of two uuids) or private.
        shared: Option<u8>,
    },
    /// A client leaves/destroys a pool.
    DestroyPool {
        /// Acting client.
        client: u8,
        /// Pool slot.
        slot: u8,
    },
    /// Store `seed_page(seed)`.
    Store {
        /// Pool slot.
        slot: u8,
        /// Oid choice.
        oid: u8,
        /// Index choice.
        index: u64,
        /// Page seed.
        seed: u32,
    },
    /// Load and check the bytes.
    Load {
        /// Pool slot.
        slot: u8,
        /// Oid choice.
        oid: u8,
        /// Index choice.
        index: u64,
        /// Load mode.
        mode: LoadMode,
    },
    /// Invalidate one page.
    InvalidatePage {
        /// Pool slot.
        slot: u8,
        /// Oid choice.
        oid: u8,
        /// Index choice.
        index: u64,
    },
    /// Invalidate an object.
    InvalidateObject {
        /// Pool slot.
        slot: u8,
        /// Oid choice.
        oid: u8,
    },
    /// Compare-and-invalidate with the current descriptor (`right`) or a wrong one.
    CompareInvalidate {
        /// Pool slot.
        slot: u8,
        /// Oid choice.
        oid: u8,
        /// Index choice.
        index: u64,
        /// Use the key's current descriptor.
        right: bool,
    },
    /// Invalidate every page of a pool, keeping the pool.
    InvalidatePool {
        /// Pool slot.
        slot: u8,
    },
    /// Make the next `n` creates fail.
    FailCreates {
        /// How many.
        n: u8,
    },
}

impl Op {
    /// Decodes an operation sequence from raw bytes (for fuzzing): 8 bytes per op.
    pub fn decode(bytes: &[u8]) -> Vec<Op> {
        bytes
            .chunks_exact(8)
            .map(|b| {
                let slot = b[1] % 6;
                let oid = b[2] % OIDS.len() as u8;
                let index = if b[3] < 200 {
                    u64::from(b[3]) % INDICES.len() as u64
                } else {
                    u64::from(u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
                };
                let seed = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let mode = match b[4] % 3 {
                    0 => LoadMode::Default,
                    1 => LoadMode::Exclusive,
                    _ => LoadMode::Keep,
                };
                match b[0] % 16 {
                    0 => Op::NewPool {
                        client: b[1] % 3,
                        kind: if b[2] & 1 == 0 {
                            PoolKind::Ephemeral
                        } else {
                            PoolKind::Persistent
                        },
                        shared: if b[3] & 1 == 0 { None } else { Some(b[3] >> 1) },
                    },
                    1 => Op::DestroyPool {
                        client: b[2] % 3,
                        slot,
                    },
                    2..=5 => Op::Store {
                        slot,
                        oid,
                        index,
                        seed,
                    },
                    6..=8 => Op::Load {
                        slot,
                        oid,
                        index,
                        mode,
                    },
                    9 | 10 => Op::InvalidatePage { slot, oid, index },
                    11 => Op::InvalidateObject { slot, oid },
                    12 | 13 => Op::CompareInvalidate {
                        slot,
                        oid,
                        index,
                        right: b[4] & 1 == 0,
                    },
                    14 => Op::InvalidatePool { slot },
                    _ => Op::FailCreates { n: b[4] % 3 },
                }
            })
            .collect()
    }
}

struct ModelPool {
    id: PoolId,
    info: PoolInfo,
    uuid: Option<u8>,
    members: Vec<u8>,
    alive: bool,
    pages: BTreeMap<(Oid, Index), SeedDesc>,
}

fn resolve_index(i: u64) -> Index {
    if (i as usize) < INDICES.len() {
        INDICES[i as usize]
    } else {
        i
    }
}

/// Runs `ops` on a fresh `Tmem<SeedPam>` with three clients and checks every result
/// against a map model; finally destroys every pool and checks that every descriptor
/// was freed. Returns a description of the first divergence.
pub fn run(ops: &[Op]) -> Result<(), String> {
    let tmem = Tmem::new(SeedPam::new());
    let mut ctx = SeedCtx::default();
    let clients: Vec<ClientId> = (0..3)
        .map(|_| tmem.new_client().map_err(|e| format!("new_client: {e:?}")))
        .collect::<Result<_, _>>()?;
    let mut pools: Vec<ModelPool> = Vec::new();
    let mut pending_failures = 0u32;
    let mut page = [0u8; PAGE_SIZE];

    for (step, op) in ops.iter().enumerate() {
        let ctxt = |what: &str| format!("step {step} {op:?}: {what}");
        match *op {
            Op::NewPool {
                client,
                kind,
                shared,
            } => {
                let c = clients[client as usize % 3];
                let id = match shared {
                    None => tmem.new_pool(c, kind),
                    Some(u) => tmem.join_shared_pool(c, Uuid([u64::from(u % 2), 0x5eed]), kind),
                }
                .map_err(|e| ctxt(&format!("{e:?}")))?;
                if let Some(p) = pools.iter_mut().find(|p| p.alive && p.id == id) {
                    if shared.map(|u| u % 2) != p.uuid {
                        return Err(ctxt("joined a pool with another uuid"));
                    }
                    if !p.members.contains(&(client % 3)) {
                        p.members.push(client % 3);
                    }
                } else {
                    if pools.iter().any(|p| p.id == id) {
                        return Err(ctxt("pool id reused"));
                    }
                    let info = tmem.pool_info(id).map_err(|e| ctxt(&format!("{e:?}")))?;
                    if info.kind != kind || info.shared != shared.is_some() {
                        return Err(ctxt("pool info mismatch"));
                    }
                    pools.push(ModelPool {
                        id,
                        info,
                        uuid: shared.map(|u| u % 2),
                        members: alloc::vec![client % 3],
                        alive: true,
                        pages: BTreeMap::new(),
                    });
                }
            }
            Op::DestroyPool { client, slot } => {
                let Some(p) = pools.get_mut(slot as usize) else {
                    continue;
                };
                let r = tmem.destroy_pool(clients[client as usize % 3], p.id);
                if !p.alive {
                    if r != Err(TmemError::UnknownPool) {
                        return Err(ctxt(&format!("destroy of dead pool gave {r:?}")));
                    }
                    continue;
                }
                match p.members.iter().position(|m| *m == client % 3) {
                    None => {
                        if r != Err(TmemError::NotAMember) {
                            return Err(ctxt(&format!("non-member destroy gave {r:?}")));
                        }
                    }
                    Some(pos) => {
                        r.map_err(|e| ctxt(&format!("{e:?}")))?;
                        p.members.swap_remove(pos);
                        if p.members.is_empty() {
                            p.alive = false;
                            p.pages.clear();
                        }
                    }
                }
            }
            Op::Store {
                slot,
                oid,
                index,
                seed,
            } => {
                let Some(p) = pools.get_mut(slot as usize) else {
                    continue;
                };
                let (o, i) = (OIDS[oid as usize % OIDS.len()], resolve_index(index));
                let r = tmem.store(&mut ctx, p.id, o, i, &seed_page(seed));
                if !p.alive {
                    if r != Err(TmemError::UnknownPool) {
                        return Err(ctxt(&format!("store in dead pool gave {r:?}")));
                    }
                    continue;
                }
                if pending_failures > 0 {
                    pending_failures -= 1;
                    if r != Err(TmemError::Backend(SeedError::Injected)) {
                        return Err(ctxt(&format!("injected failure gave {r:?}")));
                    }
                    p.pages.remove(&(o, i));
                } else {
                    let out = r.map_err(|e| ctxt(&format!("{e:?}")))?;
                    let had = p
                        .pages
                        .insert((o, i), tmem.pam().last_created(seed))
                        .is_some();
                    let want = if had {
                        StoreOutcome::Replaced
                    } else {
                        StoreOutcome::New
                    };
                    if out != want {
                        return Err(ctxt(&format!("outcome {out:?}, want {want:?}")));
                    }
                }
            }
            Op::Load {
                slot,
                oid,
                index,
                mode,
            } => {
                let Some(p) = pools.get_mut(slot as usize) else {
                    continue;
                };
                let (o, i) = (OIDS[oid as usize % OIDS.len()], resolve_index(index));
                page.fill(0xa5);
                let r = tmem.load(&mut ctx, p.id, o, i, &mut page, mode);
                if !p.alive {
                    if r != Err(TmemError::UnknownPool) {
                        return Err(ctxt(&format!("load from dead pool gave {r:?}")));
                    }
                    continue;
                }
                let hit = r.map_err(|e| ctxt(&format!("{e:?}")))?;
                let exclusive = match mode {
                    LoadMode::Exclusive => true,
                    LoadMode::Keep => false,
                    LoadMode::Default => p.info.kind == PoolKind::Ephemeral && !p.info.shared,
                };
                match p.pages.get(&(o, i)).copied() {
                    None => {
                        if hit {
                            return Err(ctxt("hit where the model has nothing"));
                        }
                        if page.iter().any(|b| *b != 0xa5) {
                            return Err(ctxt("a miss wrote the page"));
                        }
                    }
                    Some(d) => {
                        if !hit {
                            return Err(ctxt("miss where the model has a page"));
                        }
                        if page != seed_page(d.seed()) {
                            return Err(ctxt("wrong bytes"));
                        }
                        if exclusive {
                            p.pages.remove(&(o, i));
                        }
                    }
                }
            }
            Op::InvalidatePage { slot, oid, index } => {
                let Some(p) = pools.get_mut(slot as usize) else {
                    continue;
                };
                let (o, i) = (OIDS[oid as usize % OIDS.len()], resolve_index(index));
                let r = tmem.invalidate_page(p.id, o, i);
                if !p.alive {
                    if r != Err(TmemError::UnknownPool) {
                        return Err(ctxt(&format!("invalidate in dead pool gave {r:?}")));
                    }
                    continue;
                }
                let found = r.map_err(|e| ctxt(&format!("{e:?}")))?;
                if found != p.pages.remove(&(o, i)).is_some() {
                    return Err(ctxt("invalidate_page found mismatch"));
                }
            }
            Op::InvalidateObject { slot, oid } => {
                let Some(p) = pools.get_mut(slot as usize) else {
                    continue;
                };
                let o = OIDS[oid as usize % OIDS.len()];
                let r = tmem.invalidate_object(p.id, o);
                if !p.alive {
                    if r != Err(TmemError::UnknownPool) {
                        return Err(ctxt(&format!("invalidate_object in dead pool gave {r:?}")));
                    }
                    continue;
                }
                let n = r.map_err(|e| ctxt(&format!("{e:?}")))?;
                let before = p.pages.len();
                p.pages.retain(|(ko, _), _| *ko != o);
                if n != (before - p.pages.len()) as u64 {
                    return Err(ctxt(&format!("invalidate_object freed {n}")));
                }
            }
            Op::CompareInvalidate {
                slot,
                oid,
                index,
                right,
            } => {
                let Some(p) = pools.get_mut(slot as usize) else {
                    continue;
                };
                let (o, i) = (OIDS[oid as usize % OIDS.len()], resolve_index(index));
                let current = p.pages.get(&(o, i)).copied();
                let expected = match (current, right) {
                    (Some(d), true) => d,
                    (Some(d), false) => {
                        SeedDesc(NonZeroU64::new(d.raw() ^ (1 << 40)).unwrap_or(NonZeroU64::MIN))
                    }
                    (None, _) => SeedDesc(NonZeroU64::MIN),
                };
                let r = tmem.compare_and_invalidate(p.id, o, i, &expected);
                if !p.alive {
                    if r != Err(TmemError::UnknownPool) {
                        return Err(ctxt(&format!("cai in dead pool gave {r:?}")));
                    }
                    continue;
                }
                let done = r.map_err(|e| ctxt(&format!("{e:?}")))?;
                let want = current.is_some() && right;
                if done != want {
                    return Err(ctxt(&format!(
                        "compare_and_invalidate gave {done}, want {want}"
                    )));
                }
                if done {
                    p.pages.remove(&(o, i));
                }
            }
            Op::InvalidatePool { slot } => {
                let Some(p) = pools.get_mut(slot as usize) else {
                    continue;
                };
                let r = tmem.invalidate_pool(p.id);
                if !p.alive {
                    if r != Err(TmemError::UnknownPool) {
                        return Err(ctxt(&format!("invalidate_pool of dead pool gave {r:?}")));
                    }
                    continue;
                }
                let n = r.map_err(|e| ctxt(&format!("{e:?}")))?;
                if n != p.pages.len() as u64 {
                    return Err(ctxt(&format!("invalidate_pool freed {n}")));
                }
                p.pages.clear();
            }
            Op::FailCreates { n } => {
                pending_failures += u32::from(n);
                tmem.pam().fail_next(pending_failures);
            }
        }
        // Global invariants after every step.
        let model_live: usize = pools
            .iter()
            .filter(|p| p.alive)
            .map(|p| p.pages.len())
            .sum();
        if tmem.pam().live() != model_live as i64 {
            return Err(ctxt(&format!(
                "backend holds {} descriptors, model {model_live}",
                tmem.pam().live()
            )));
        }
        for p in pools.iter().filter(|p| p.alive) {
            let c = tmem.counts(p.id).map_err(|e| ctxt(&format!("{e:?}")))?;
            if c.pages != p.pages.len() as u64 {
                return Err(ctxt(&format!(
                    "pool counts {} pages, model {}",
                    c.pages,
                    p.pages.len()
                )));
            }
            let objects = {
                let mut v: Vec<Oid> = p.pages.keys().map(|(o, _)| *o).collect();
                v.dedup();
                v.len() as u64
            };
            if c.objects != objects {
                return Err(ctxt(&format!(
                    "pool counts {} objects, model {objects}",
                    c.objects
                )));
            }
        }
    }
    // Teardown: every client leaves; everything must be freed.
    for c in clients {
        tmem.destroy_client(c)
            .map_err(|e| format!("destroy_client: {e:?}"))?;
    }
    if !tmem
        .pool_ids()
        .map_err(|e| format!("pool_ids: {e}"))?
        .is_empty()
    {
        return Err(format!(
            "pools left after teardown: {:?}",
            tmem.pool_ids().ok()
        ));
    }
    if tmem.pam().live() != 0 {
        return Err(format!("{} descriptors leaked", tmem.pam().live()));
    }
    Ok(())
}
