//! The cleancache front end: clean page-cache pages keyed by (file system, file, page
//! offset).
//!
//! Each mount (`init_fs` / `init_shared_fs`) is a tmem client with one ephemeral pool; a
//! shared file system's mounts join one shared pool by uuid. The kernel's file key (an
//! inode number, or up to six u32 of an exportfs file handle: 24 bytes) is the oid
//! ([`file_key_from_inode`], [`file_key_from_handle`]); the page offset is the index, all
//! 64 bits of it.

use tmem_core::{ClientId, LoadMode, Oid, PoolHandle, PoolId, PoolKind, Uuid};
use zpool::Page;

use crate::ZDesc;
use crate::mount::Mount;
use crate::zcache::{Zcache, ZcacheError};

/// The oid of a file known by inode number.
pub fn file_key_from_inode(ino: u64) -> Oid {
    Oid::new(ino, 0, 0)
}

/// The oid of a file known by an exportfs file handle (up to six u32 words, as the
/// kernel's `cleancache_filekey.u.fh`).
pub fn file_key_from_handle(fh: [u32; 6]) -> Oid {
    let w = |i: usize| u64::from(fh[i]) | (u64::from(fh[i + 1]) << 32);
    Oid::new(w(0), w(2), w(4))
}

/// The cleancache front end of a [`Zcache`] (the kernel's `cleancache_ops`).
pub struct Cleancache<'a> {
    pub(crate) z: &'a Zcache,
}

/// The tmem uuid of a 16-byte file-system uuid.
pub(crate) fn uuid_of(uuid: [u8; 16]) -> Uuid {
    let mut lo = [0; 8];
    let mut hi = [0; 8];
    lo.copy_from_slice(&uuid[..8]);
    hi.copy_from_slice(&uuid[8..]);
    Uuid([u64::from_le_bytes(lo), u64::from_le_bytes(hi)])
}

impl<'z> Cleancache<'z> {
    /// A mount by value ([`Mount`]): puts and gets through it skip the registry lookup.
    pub fn mount(&self) -> Result<Mount<&'z Zcache>, ZcacheError> {
        Mount::new(self.z)
    }

    /// A mount of a shared file system by value (see [`Cleancache::init_shared_fs`]).
    pub fn mount_shared(&self, uuid: [u8; 16]) -> Result<Mount<&'z Zcache>, ZcacheError> {
        Mount::new_shared(self.z, uuid)
    }

    /// Makes a mount's client and pool and records it; returns both.
    pub(crate) fn add_mount(
        &self,
        shared: Option<Uuid>,
    ) -> Result<(ClientId, PoolHandle<ZDesc>), ZcacheError> {
        let t = &self.z.tmem;
        let client = t.new_client()?;
        let pool = match shared {
            None => t.new_pool(client, PoolKind::Ephemeral),
            Some(u) => t.join_shared_pool(client, u, PoolKind::Ephemeral),
        };
        let pool = match pool.and_then(|id| t.pool(id)) {
            Ok(p) => p,
            Err(e) => {
                let _ = t.destroy_client(client);
                return Err(e.into());
            }
        };
        let mut m = self.z.mounts.write();
        if m.try_reserve(1).is_err() {
            drop(m);
            let _ = t.destroy_client(client);
            return Err(ZcacheError::NoMemory);
        }
        // One client per mount: a shared pool has several.
        m.insert(client, pool.info().id);
        Ok((client, pool))
    }

    /// A mount of a local file system: a new private ephemeral pool (key-based, for the
    /// C ABI; [`Cleancache::mount`] returns it by value).
    pub fn init_fs(&self) -> Result<PoolId, ZcacheError> {
        Ok(self.add_mount(None)?.1.info().id)
    }

    /// A mount of a shared (clustered) file system named by `uuid`: joins the shared
    /// ephemeral pool of that uuid, creating it for the first mount.
    pub fn init_shared_fs(&self, uuid: [u8; 16]) -> Result<PoolId, ZcacheError> {
        Ok(self.add_mount(Some(uuid_of(uuid)))?.1.info().id)
    }

    /// Offers a clean page. Never fails visibly: a page that cannot be kept is simply not
    /// kept, and any older copy of the key is gone either way. May be called where
    /// sleeping is forbidden.
    pub fn put_page(&self, pool: PoolId, key: Oid, index: u64, page: &Page) {
        if let Ok(h) = self.z.tmem.pool(pool) {
            let _ = self.z.store_page(&h, key, index, page);
        }
    }

    /// Fills `page` if the pool holds the key: `true` filled, `false` miss (page
    /// untouched). A private pool gives the page up (exclusive cache); a shared pool
    /// keeps it for the other mounts. A corrupt stored page is a miss (and is counted).
    pub fn get_page(&self, pool: PoolId, key: Oid, index: u64, page: &mut Page) -> bool {
        match self.z.tmem.pool(pool) {
            Ok(h) => self
                .z
                .load_page(&h, key, index, page, LoadMode::Default)
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Like [`Cleancache::get_page`], but reports errors (unknown pool, corrupt page).
    pub fn try_get_page(
        &self,
        pool: PoolId,
        key: Oid,
        index: u64,
        page: &mut Page,
    ) -> Result<bool, ZcacheError> {
        let h = self.z.tmem.pool(pool)?;
        self.z.load_page(&h, key, index, page, LoadMode::Default)
    }

    /// Drops one page.
    pub fn invalidate_page(&self, pool: PoolId, key: Oid, index: u64) {
        let _ = self.z.tmem.invalidate_page(pool, key, index);
    }

    /// Drops every page of a file.
    pub fn invalidate_inode(&self, pool: PoolId, key: Oid) {
        let _ = self.z.tmem.invalidate_object(pool, key);
    }

    /// Unmount: this mount leaves its pool; a private pool (or the last mount of a
    /// shared one) is destroyed and every page freed.
    pub fn invalidate_fs(&self, pool: PoolId) -> Result<(), ZcacheError> {
        let client = {
            let m = self.z.mounts.read();
            m.iter()
                .find(|(_, p)| **p == pool)
                .map(|(c, _)| *c)
                .ok_or(ZcacheError::UnknownPool)?
        };
        self.remove_mount(client)
    }

    /// Ends the mount of `client`: [`ZcacheError::UnknownPool`] if it has ended.
    pub(crate) fn remove_mount(&self, client: ClientId) -> Result<(), ZcacheError> {
        if self.z.mounts.write().remove(&client).is_none() {
            return Err(ZcacheError::UnknownPool);
        }
        // Outside the mounts lock: the last member's leaving frees every page.
        self.z.tmem.destroy_client(client)?;
        Ok(())
    }
}
