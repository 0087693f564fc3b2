//! A hypervisor serving guests with Xen tmem-style operations over one zcache.
//!
//! Xen's tmem gave each guest (domain) its own pool numbers: a guest creates pools
//! (private or shared, ephemeral or persistent), puts, gets and flushes pages and
//! objects in them, and destroys them; the control domain authorises which guests may
//! join a shared pool (named by a 128-bit uuid), and sets per-guest limits. This module
//! is that hypervisor layer:
//!
//! * each guest is a tmem client; its pool numbers (0, 1, 2, ...) are its own and map
//!   to zcache pool ids, so a guest can name no other guest's private pool;
//! * shared ephemeral pools are joined by uuid, and only by guests the control domain
//!   authorised ([`Hypervisor::authorize`], Xen's `TMEM_AUTH`);
//! * a per-guest cap on the pages in the guest's private persistent pools (ephemeral
//!   pages need none: zcache evicts them whenever their frames are wanted): a put over
//!   the cap is refused, and like every refused put it leaves no older copy of the key;
//! * destroying a guest ([`Hypervisor::destroy_guest`]) frees its private pools and
//!   takes it out of the shared ones, which live on for the other members; it never
//!   waits for the other guests' operations in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use tmem_core::{ClientId, LoadMode, Oid, PoolId, PoolKind, Uuid};
use zcache::{Config, Zcache, ZcacheError};
use zpool::{BlockPageSource, Page};

use crate::{FILE_SOURCES, Rng, anon_pages, corpus_objects, tagged};

/// `new_pool` flag: persistent (else ephemeral). Xen's TMEM_POOL_PERSIST.
pub const TMEM_POOL_PERSIST: u32 = 1;
/// `new_pool` flag: shared by uuid (ephemeral only). Xen's TMEM_POOL_SHARED.
pub const TMEM_POOL_SHARED: u32 = 2;

/// A guest's id (Xen: domid).
pub type GuestId = u32;

/// Why a tmem operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmemOpError {
    /// No such guest (never created or destroyed).
    UnknownGuest,
    /// The guest has no pool of that number.
    UnknownPool,
    /// Unsupported flags (shared persistent pools, unknown bits, shared without uuid).
    InvalidFlags,
    /// The guest is not authorised for that shared pool's uuid.
    NotAuthorized,
    /// The put would take the guest over its page cap (the key's older copy is gone).
    OverCap,
    /// zcache refused or failed.
    Zcache(ZcacheError),
}

impl From<ZcacheError> for TmemOpError {
    fn from(e: ZcacheError) -> Self {
        TmemOpError::Zcache(e)
    }
}

impl<E> From<tmem_core::TmemError<E>> for TmemOpError
where
    ZcacheError: From<tmem_core::TmemError<E>>,
{
    fn from(e: tmem_core::TmemError<E>) -> Self {
        TmemOpError::Zcache(e.into())
    }
}

struct Guest {
    name: String,
    client: ClientId,
    /// Guest pool number -> zcache pool (None once destroyed).
    pools: Vec<Option<(PoolId, PoolKind, bool)>>,
    private_page_cap: u64,
}

/// The hypervisor: guests, their pool numbers, authorisations, one zcache.
pub struct Hypervisor {
    z: Zcache,
    guests: HashMap<GuestId, Guest>,
    next_guest: GuestId,
    auth: HashSet<(GuestId, [u64; 2])>,
}

impl Hypervisor {
    /// A hypervisor whose tmem memory is one zcache with this configuration.
    pub fn new(config: Config) -> Result<Hypervisor, ZcacheError> {
        Ok(Hypervisor {
            z: Zcache::new(config, Arc::new(BlockPageSource::new()))?,
            guests: HashMap::new(),
            next_guest: 1,
            auth: HashSet::new(),
        })
    }

    /// The zcache underneath (statistics).
    pub fn zcache(&self) -> &Zcache {
        &self.z
    }

    /// Starts a guest with a cap on the pages of its private persistent pools.
    pub fn new_guest(&mut self, name: &str, private_page_cap: u64) -> Result<GuestId, TmemOpError> {
        let client = self.z.new_client()?;
        let id = self.next_guest;
        self.next_guest += 1;
        self.guests.insert(
            id,
            Guest {
                name: name.to_string(),
                client,
                pools: Vec::new(),
                private_page_cap,
            },
        );
        Ok(id)
    }

    /// The control domain authorises `guest` to join the shared pool `uuid`.
    pub fn authorize(&mut self, guest: GuestId, uuid: [u64; 2]) {
        self.auth.insert((guest, uuid));
    }

    fn guest(&self, g: GuestId) -> Result<&Guest, TmemOpError> {
        self.guests.get(&g).ok_or(TmemOpError::UnknownGuest)
    }

    fn pool(&self, g: GuestId, pool_no: u32) -> Result<(PoolId, PoolKind, bool), TmemOpError> {
        self.guest(g)?
            .pools
            .get(pool_no as usize)
            .copied()
            .flatten()
            .ok_or(TmemOpError::UnknownPool)
    }

    /// TMEM_NEW_POOL: a new pool for `guest`; returns the guest's pool number.
    pub fn new_pool(
        &mut self,
        g: GuestId,
        flags: u32,
        uuid: Option<[u64; 2]>,
    ) -> Result<u32, TmemOpError> {
        if flags & !(TMEM_POOL_PERSIST | TMEM_POOL_SHARED) != 0 {
            return Err(TmemOpError::InvalidFlags);
        }
        let client = self.guest(g)?.client;
        let kind = if flags & TMEM_POOL_PERSIST != 0 {
            PoolKind::Persistent
        } else {
            PoolKind::Ephemeral
        };
        let shared = flags & TMEM_POOL_SHARED != 0;
        let id = if shared {
            let (Some(u), PoolKind::Ephemeral) = (uuid, kind) else {
                return Err(TmemOpError::InvalidFlags);
            };
            if !self.auth.contains(&(g, u)) {
                return Err(TmemOpError::NotAuthorized);
            }
            self.z.join_shared_pool(client, Uuid(u), kind)?
        } else {
            self.z.new_pool(client, kind)?
        };
        let guest = self.guests.get_mut(&g).ok_or(TmemOpError::UnknownGuest)?;
        guest.pools.push(Some((id, kind, shared)));
        Ok((guest.pools.len() - 1) as u32)
    }

    /// Pages now in the guest's private persistent pools (what its cap limits).
    pub fn private_pages(&self, g: GuestId) -> Result<u64, TmemOpError> {
        let guest = self.guest(g)?;
        let mut n = 0;
        for (id, kind, shared) in guest.pools.iter().flatten() {
            if !shared && *kind == PoolKind::Persistent {
                n += self.z.pool_counts(*id)?.pages;
            }
        }
        Ok(n)
    }

    /// TMEM_PUT_PAGE.
    pub fn put_page(
        &self,
        g: GuestId,
        pool_no: u32,
        oid: Oid,
        index: u64,
        page: &Page,
    ) -> Result<(), TmemOpError> {
        let (id, kind, shared) = self.pool(g, pool_no)?;
        if !shared
            && kind == PoolKind::Persistent
            && self.private_pages(g)? >= self.guest(g)?.private_page_cap
        {
            // Refused puts leave no stale copy (tmem's coherency rule).
            let _ = self.z.invalidate_page(id, oid, index);
            return Err(TmemOpError::OverCap);
        }
        self.z.store(id, oid, index, page)?;
        Ok(())
    }

    /// TMEM_GET_PAGE: `Ok(true)` filled. Private ephemeral pools give the page up
    /// (exclusive, as in Xen); persistent and shared pools keep it.
    pub fn get_page(
        &self,
        g: GuestId,
        pool_no: u32,
        oid: Oid,
        index: u64,
        page: &mut Page,
    ) -> Result<bool, TmemOpError> {
        let (id, _, _) = self.pool(g, pool_no)?;
        Ok(self.z.load(id, oid, index, page, LoadMode::Default)?)
    }

    /// TMEM_FLUSH_PAGE.
    pub fn flush_page(
        &self,
        g: GuestId,
        pool_no: u32,
        oid: Oid,
        index: u64,
    ) -> Result<bool, TmemOpError> {
        let (id, _, _) = self.pool(g, pool_no)?;
        Ok(self.z.invalidate_page(id, oid, index)?)
    }

    /// TMEM_FLUSH_OBJECT: returns the pages flushed.
    pub fn flush_object(&self, g: GuestId, pool_no: u32, oid: Oid) -> Result<u64, TmemOpError> {
        let (id, _, _) = self.pool(g, pool_no)?;
        Ok(self.z.invalidate_object(id, oid)?)
    }

    /// TMEM_DESTROY_POOL: the guest leaves the pool (a private pool, or the last
    /// member's shared pool, is freed).
    pub fn destroy_pool(&mut self, g: GuestId, pool_no: u32) -> Result<(), TmemOpError> {
        let (id, _, _) = self.pool(g, pool_no)?;
        let client = self.guest(g)?.client;
        self.z.destroy_pool(client, id)?;
        if let Some(slot) = self
            .guests
            .get_mut(&g)
            .and_then(|guest| guest.pools.get_mut(pool_no as usize))
        {
            *slot = None;
        }
        Ok(())
    }

    /// Domain destruction: every private pool of the guest is freed, its shared pools
    /// go on for their other members.
    pub fn destroy_guest(&mut self, g: GuestId) -> Result<(), TmemOpError> {
        let guest = self.guests.remove(&g).ok_or(TmemOpError::UnknownGuest)?;
        self.auth.retain(|(a, _)| *a != g);
        self.z.destroy_client(guest.client)?;
        Ok(())
    }

    /// The guest's name.
    pub fn name(&self, g: GuestId) -> Result<&str, TmemOpError> {
        Ok(&self.guest(g)?.name)
    }
}

/// Settings of a run.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// zcache's frame limit for all guests together.
    pub zcache_frames: usize,
    /// Persistent pages each guest puts (its "swap").
    pub persistent_puts: u64,
    /// Ephemeral pages each guest puts (its "page cache").
    pub ephemeral_puts: u64,
    /// Pages the first guest puts in the shared pool.
    pub shared_puts: u64,
    /// Page cap of the two big guests and of the small one.
    pub caps: [u64; 3],
    /// Random seed.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            zcache_frames: 400,
            persistent_puts: 250,
            ephemeral_puts: 300,
            shared_puts: 120,
            caps: [500, 500, 150],
            seed: 3,
        }
    }
}

/// One guest's figures.
#[derive(Clone, Debug, Default)]
pub struct GuestReport {
    /// Guest name.
    pub name: String,
    /// Persistent puts accepted.
    pub pers_stored: u64,
    /// Persistent puts refused by the guest's cap.
    pub pers_over_cap: u64,
    /// Persistent puts refused by zcache (poor compression, no frame).
    pub pers_refused: u64,
    /// Persistent pages the guest holds (all rounds) and checked with a get.
    pub pers_checked: u64,
    /// Persistent gets that returned the page.
    pub pers_hits: u64,
    /// Persistent pages accepted and then not found (must be 0).
    pub pers_lost: u64,
    /// Ephemeral puts and gets, and gets that hit.
    pub eph_puts: u64,
    /// Ephemeral gets.
    pub eph_gets: u64,
    /// Ephemeral gets that hit.
    pub eph_hits: u64,
    /// Shared-pool gets and hits (pages put by another guest).
    pub shared_gets: u64,
    /// Shared-pool hits.
    pub shared_hits: u64,
    /// Pages returned that differed from what was put (must be 0).
    pub wrong: u64,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Per guest, while all three run.
    pub before: Vec<GuestReport>,
    /// Per surviving guest, after the first guest was destroyed.
    pub after: Vec<GuestReport>,
    /// Refusals seen by guests that asked for what they may not have.
    pub access_refusals: Vec<String>,
    /// Stored pages and frames just before and after the destroy.
    pub stored_before_destroy: i64,
    /// Stored pages after.
    pub stored_after_destroy: i64,
    /// Frames before.
    pub frames_before_destroy: usize,
    /// Frames after.
    pub frames_after_destroy: usize,
    /// Frames freed by the compaction the hypervisor runs after a destroy.
    pub compacted_frames: usize,
    /// Peak frames (limit: `Params::zcache_frames`).
    pub peak_frames: usize,
    /// The limit.
    pub frame_limit: usize,
    /// Ephemeral pages zcache evicted for others' frames.
    pub evicted: i64,
    /// Stored pages and frames after every guest is gone (must be 0).
    pub stored_at_end: i64,
    /// Frames at the end.
    pub frames_at_end: usize,
}

impl fmt::Display for GuestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  {:<6} persistent: {} kept, {} over cap, {} refused; {} of {} held got back, {} lost | ephemeral: {} puts, {}/{} hits",
            self.name,
            self.pers_stored,
            self.pers_over_cap,
            self.pers_refused,
            self.pers_hits,
            self.pers_checked,
            self.pers_lost,
            self.eph_puts,
            self.eph_hits,
            self.eph_gets
        )?;
        if self.shared_gets > 0 {
            write!(
                f,
                " | shared: {}/{} hits",
                self.shared_hits, self.shared_gets
            )?;
        }
        write!(f, " | wrong pages: {}", self.wrong)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "three guests on one zcache limited to {} frames ({} KiB); caps on private persistent pages",
            self.frame_limit,
            self.frame_limit * 4
        )?;
        for g in &self.before {
            writeln!(f, "{g}")?;
        }
        for r in &self.access_refusals {
            writeln!(f, "  refused: {r}")?;
        }
        writeln!(
            f,
            "destroy guest 1: stored pages {} -> {}, frames {} -> {} (compaction freed {})",
            self.stored_before_destroy,
            self.stored_after_destroy,
            self.frames_before_destroy,
            self.frames_after_destroy,
            self.compacted_frames
        )?;
        writeln!(f, "the others keep running:")?;
        for g in &self.after {
            writeln!(f, "{g}")?;
        }
        writeln!(
            f,
            "peak {} frames of {}; {} ephemeral pages evicted for other pages",
            self.peak_frames, self.frame_limit, self.evicted
        )?;
        write!(
            f,
            "all guests destroyed: {} pages, {} frames left",
            self.stored_at_end, self.frames_at_end
        )
    }
}

/// A guest's pools in the scenario.
struct Pools {
    pers: u32,
    eph: u32,
    shared: Option<u32>,
}

/// What a guest put, to check what it gets.
type Truth = BTreeMap<(u32, u64, u64), Page>;

/// Where page contents come from: real anonymous and file pages, picked at random.
struct Content {
    rng: Rng,
    anon: Vec<Page>,
    files: Vec<Page>,
}

impl Content {
    fn anon(&mut self, tag: u64) -> Page {
        let i = self.rng.below(self.anon.len());
        tagged(&self.anon[i], tag)
    }

    fn file(&mut self, tag: u64) -> Page {
        let i = self.rng.below(self.files.len());
        tagged(&self.files[i], tag)
    }
}

fn guest_round(
    hv: &Hypervisor,
    g: GuestId,
    pools: &Pools,
    p: &Params,
    round: u64,
    content: &mut Content,
    truth: &mut Truth,
) -> Result<GuestReport, TmemOpError> {
    let mut r = GuestReport {
        name: hv.name(g)?.to_string(),
        ..GuestReport::default()
    };
    let base = round * 100_000;
    // Persistent: the guest's swap (object = 64-page cluster, index within it).
    for i in base..base + p.persistent_puts {
        let page = content.anon(u64::from(g) << 48 | i);
        let (oid, index) = (Oid::new(i >> 6, 0, 0), i & 63);
        match hv.put_page(g, pools.pers, oid, index, &page) {
            Ok(()) => {
                r.pers_stored += 1;
                truth.insert((pools.pers, i >> 6, index), page);
            }
            Err(TmemOpError::OverCap) => r.pers_over_cap += 1,
            Err(_) => r.pers_refused += 1,
        }
    }
    // Ephemeral: clean file pages (object = inode, index = page offset).
    for i in base..base + p.ephemeral_puts {
        let page = content.file(u64::from(g) << 48 | i);
        let (oid, index) = (Oid::new(i / 16, 0, 0), i % 16);
        r.eph_puts += 1;
        if hv.put_page(g, pools.eph, oid, index, &page).is_ok() {
            truth.insert((pools.eph, i / 16, index), page);
        }
    }
    let mut buf = [0u8; 4096];
    for (&(pool_no, o, index), want) in truth.iter() {
        let hit = hv.get_page(g, pool_no, Oid::new(o, 0, 0), index, &mut buf)?;
        if pool_no == pools.pers {
            r.pers_checked += 1;
            r.pers_hits += u64::from(hit);
            r.pers_lost += u64::from(!hit);
        } else {
            r.eph_gets += 1;
            r.eph_hits += u64::from(hit);
        }
        if hit && &buf != want {
            r.wrong += 1;
        }
    }
    // Private ephemeral gets were exclusive: forget those keys.
    truth.retain(|k, _| k.0 != pools.eph);
    let _ = pools.shared;
    Ok(r)
}

/// Runs the three-guest scenario.
pub fn run(p: &Params) -> Result<Report, TmemOpError> {
    let mut content = Content {
        rng: Rng::new(p.seed),
        anon: anon_pages(),
        files: corpus_objects(&FILE_SOURCES).concat(),
    };
    let mut hv = Hypervisor::new(Config {
        max_frames: p.zcache_frames,
        ..Config::default()
    })?;
    let mut rep = Report {
        frame_limit: p.zcache_frames,
        ..Report::default()
    };
    let cluster_fs: [u64; 2] = [0x6f63_6673_3200_0001, 0x7368_6172_6564_0001];
    let names = ["web", "db", "batch"];
    let mut guests = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let g = hv.new_guest(name, p.caps[i])?;
        if i < 2 {
            hv.authorize(g, cluster_fs);
        }
        guests.push(g);
    }
    let mut pools = Vec::new();
    for (i, &g) in guests.iter().enumerate() {
        let pers = hv.new_pool(g, TMEM_POOL_PERSIST, None)?;
        let eph = hv.new_pool(g, 0, None)?;
        let shared = if i < 2 {
            Some(hv.new_pool(g, TMEM_POOL_SHARED, Some(cluster_fs))?)
        } else {
            None
        };
        pools.push(Pools { pers, eph, shared });
    }
    // Access control: the small guest may not join the cluster file system's pool,
    // and nobody may make a shared persistent pool or name a pool it does not have.
    let batch = guests[2];
    if let Err(e) = hv.new_pool(batch, TMEM_POOL_SHARED, Some(cluster_fs)) {
        rep.access_refusals
            .push(format!("batch joining the cluster fs pool: {e:?}"));
    }
    if let Err(e) = hv.new_pool(
        guests[1],
        TMEM_POOL_SHARED | TMEM_POOL_PERSIST,
        Some([9, 9]),
    ) {
        rep.access_refusals
            .push(format!("db asking for a shared persistent pool: {e:?}"));
    }
    let mut probe = [0u8; 4096];
    if let Err(e) = hv.get_page(batch, 7, Oid::new(0, 0, 0), 0, &mut probe) {
        rep.access_refusals
            .push(format!("batch naming pool number 7: {e:?}"));
    }

    // The first guest fills the shared pool (pages of the cluster file system).
    let web_shared = pools[0].shared.ok_or(TmemOpError::UnknownPool)?;
    let db_shared = pools[1].shared.ok_or(TmemOpError::UnknownPool)?;
    let mut shared_truth = BTreeMap::new();
    for i in 0..p.shared_puts {
        let page = content.file(0x5_0000_0000 | i);
        if hv
            .put_page(guests[0], web_shared, Oid::new(i / 8, 1, 0), i % 8, &page)
            .is_ok()
        {
            shared_truth.insert(i, page);
        }
    }
    let shared_check = |hv: &Hypervisor,
                        g: GuestId,
                        pool_no: u32,
                        r: &mut GuestReport|
     -> Result<(), TmemOpError> {
        let mut buf = [0u8; 4096];
        for (i, want) in &shared_truth {
            r.shared_gets += 1;
            if hv.get_page(g, pool_no, Oid::new(i / 8, 1, 0), i % 8, &mut buf)? {
                r.shared_hits += 1;
                if &buf != want {
                    r.wrong += 1;
                }
            }
        }
        Ok(())
    };

    // Both sharers read the cluster fs pages at once (db reads what web put).
    let mut shared_reads = [GuestReport::default(), GuestReport::default()];
    shared_check(&hv, guests[0], web_shared, &mut shared_reads[0])?;
    shared_check(&hv, guests[1], db_shared, &mut shared_reads[1])?;

    let mut truths: Vec<Truth> = vec![Truth::new(); 3];
    for (i, &g) in guests.iter().enumerate() {
        let mut r = guest_round(&hv, g, &pools[i], p, 0, &mut content, &mut truths[i])?;
        if let Some(s) = shared_reads.get(i) {
            r.shared_gets = s.shared_gets;
            r.shared_hits = s.shared_hits;
            r.wrong += s.wrong;
        }
        rep.before.push(r);
    }

    // Destroy the first guest while the others keep their pools.
    rep.stored_before_destroy = hv.zcache().stored_pages();
    rep.frames_before_destroy = hv.zcache().stats().pool_frames;
    hv.destroy_guest(guests[0])?;
    rep.stored_after_destroy = hv.zcache().stored_pages();
    // The guest's pages were spread over frames shared with the others' pages:
    // compaction gives the emptied space back.
    rep.compacted_frames = hv.zcache().compact();
    rep.frames_after_destroy = hv.zcache().stats().pool_frames;
    if let Err(e) = hv.put_page(guests[0], 0, Oid::new(0, 0, 0), 0, &probe) {
        rep.access_refusals
            .push(format!("the destroyed guest putting a page: {e:?}"));
    }

    // The shared pool outlived its creator: db still reads it (what eviction left).
    let mut db_after = GuestReport::default();
    shared_check(&hv, guests[1], db_shared, &mut db_after)?;
    for (i, &g) in guests.iter().enumerate().skip(1) {
        let mut r = guest_round(&hv, g, &pools[i], p, 1, &mut content, &mut truths[i])?;
        if i == 1 {
            r.shared_gets = db_after.shared_gets;
            r.shared_hits = db_after.shared_hits;
            r.wrong += db_after.wrong;
        }
        rep.after.push(r);
    }
    let s = hv.zcache().stats();
    rep.peak_frames = s.pool_frames_peak;
    rep.evicted = s.counters.evicted_eph_pages;
    for &g in &guests[1..] {
        hv.destroy_guest(g)?;
    }
    rep.stored_at_end = hv.zcache().stored_pages();
    rep.frames_at_end = hv.zcache().stats().pool_frames;
    Ok(rep)
}
