//! The backend trait: page-accessible memory (PAM).

use crate::key::{Key, Oid};
use crate::pool::PoolInfo;

/// Size of a tmem page: the build's page size (`zplat::PAGE_SIZE`: 4, 16 or 64 KiB).
pub const PAGE_SIZE: usize = zplat::PAGE_SIZE;

/// A tmem page.
pub type Page = [u8; PAGE_SIZE];

/// What [`PamOps::load_stage`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadStep {
    /// The page is produced: the load is complete.
    Done,
    /// What the page needs is staged in the context: tmem calls
    /// [`PamOps::load_finish`] once the bucket lock is dropped.
    Finish,
}

/// The backend of one tmem instance: turns pages into descriptors and back.
///
/// There is no global registration: each [`crate::Tmem`] owns its `PamOps` value, so
/// several backends live side by side in one process, and a backend may hold another
/// `Tmem` and chain to it.
///
/// # Context and locking contract
/// * [`create`](PamOps::create), [`load_finish`](PamOps::load_finish),
///   [`load_and_free`](PamOps::load_and_free) and [`free`](PamOps::free) run with no tmem
///   lock held: compression happens there, decompression too unless the backend does
///   it in place under the bucket lock ([`LoadStep::Done`]), and they may call back
///   into this tmem instance (eviction's `compare_and_invalidate`).
/// * [`load_stage`](PamOps::load_stage), [`object_created`](PamOps::object_created) and
///   [`object_freed`](PamOps::object_freed) run with the object's bucket lock held. They
///   must do bounded work, must not block, and must not call back into this tmem
///   instance (that would deadlock on the bucket lock). They may take locks that come
///   after the bucket lock in the lock order (the allocator's).
/// * Store and invalidate paths may run where sleeping is forbidden; so must the
///   backend's parts of them.
pub trait PamOps: Send + Sync {
    /// A page descriptor ("pampd"): what the backend needs to find, copy and free the
    /// page. Stored in tree slots, so keep it small (8 bytes with a niche keeps a leaf
    /// slot at 8 bytes).
    type Desc: Send + Sync + PartialEq;

    /// Per-caller working state (compressor instance, scratch buffers), like the kernel's
    /// per-CPU compression contexts. tmem passes it through to the backend untouched.
    type Ctx;

    /// The backend's error.
    type Error: core::fmt::Debug + Clone;

    /// Makes a descriptor holding a copy of `page` (for example: compress it and
    /// allocate room for it). Runs outside every tmem lock. May fail for any reason
    /// (no memory, page compresses poorly, over a limit): tmem then leaves no older copy
    /// of the key behind.
    fn create(
        &self,
        ctx: &mut Self::Ctx,
        key: &Key,
        pool: &PoolInfo,
        page: &Page,
    ) -> Result<Self::Desc, Self::Error>;

    /// First half of a load that keeps the page, under the bucket lock (which keeps
    /// `desc` alive: nobody can free it meanwhile). The backend chooses:
    /// * produce `page` right here, straight from the stored bytes, and return
    ///   [`LoadStep::Done`]: no copy, but the bucket lock is held while it works
    ///   (decompression: about a microsecond);
    /// * or copy out of `desc` whatever [`load_finish`](PamOps::load_finish) needs (for
    ///   example the compressed bytes) and return [`LoadStep::Finish`]: the descriptor
    ///   may then be freed as soon as the lock drops, and the page is produced outside
    ///   every lock.
    ///
    /// `pool` is the pool the descriptor is filed in (a backend may keep what the
    /// pool's kind implies out of its descriptors).
    fn load_stage(
        &self,
        ctx: &mut Self::Ctx,
        pool: &PoolInfo,
        desc: &Self::Desc,
        page: &mut Page,
    ) -> Result<LoadStep, Self::Error>;

    /// Second half of a keeping load after [`LoadStep::Finish`], outside every lock:
    /// produce the page from what [`load_stage`](PamOps::load_stage) left in `ctx` (for
    /// example: decompress).
    fn load_finish(&self, ctx: &mut Self::Ctx, page: &mut Page) -> Result<(), Self::Error>;

    /// An exclusive load: `desc` has already left tmem; produce the page and free the
    /// descriptor, whether or not producing the page succeeded. Outside every lock.
    fn load_and_free(
        &self,
        ctx: &mut Self::Ctx,
        pool: &PoolInfo,
        desc: Self::Desc,
        page: &mut Page,
    ) -> Result<(), Self::Error>;

    /// Frees a descriptor that has left tmem (invalidate, replace, destroy). Outside
    /// every lock.
    fn free(&self, pool: &PoolInfo, desc: Self::Desc);

    /// An object was created in `pool` (bucket lock held). Default: nothing.
    fn object_created(&self, pool: &PoolInfo, oid: &Oid) {
        let _ = (pool, oid);
    }

    /// An object left `pool` (bucket lock held, or the pool is being destroyed).
    /// Default: nothing.
    fn object_freed(&self, pool: &PoolInfo, oid: &Oid) {
        let _ = (pool, oid);
    }
}
