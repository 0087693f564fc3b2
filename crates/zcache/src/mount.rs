//! A mounted file system by value: the cleancache hot path without the registry.

use core::ops::Deref;

use tmem_core::{ClientId, LoadMode, Oid, PoolHandle, PoolId};
use zpool::Page;

use crate::ZDesc;
use crate::zcache::{Zcache, ZcacheError};

/// One mount's cleancache pool, held by value: [`Mount::new`] (or
/// [`crate::Cleancache::mount`]) returns it, and every put, get and invalidation through
/// it goes straight to the pool (a counted pointer taken once), without tmem's registry
/// lookup that the key-based [`crate::Cleancache`] calls make.
///
/// `Z` is how the mount reaches its cache: `&Zcache`, `Arc<Zcache>`, or any other
/// pointer to one.
///
/// Dropping the value leaves the file system mounted (the kernel's cleancache has no
/// value to drop either): [`Mount::unmount`], or [`crate::Cleancache::invalidate_fs`]
/// with [`Mount::pool_id`], ends it, and every page goes when the last mount of its
/// pool leaves (`Zcache`'s drop frees whatever is left). After that, puts through the
/// value keep nothing and gets miss.
pub struct Mount<Z: Deref<Target = Zcache>> {
    z: Z,
    client: ClientId,
    pool: PoolHandle<ZDesc>,
}

impl<Z: Deref<Target = Zcache>> Mount<Z> {
    /// A mount of a local file system: a new private ephemeral pool.
    pub fn new(z: Z) -> Result<Mount<Z>, ZcacheError> {
        let (client, pool) = z.cleancache().add_mount(None)?;
        Ok(Mount { z, client, pool })
    }

    /// A mount of a shared (clustered) file system named by `uuid`: joins the shared
    /// ephemeral pool of that uuid, creating it for the first mount.
    pub fn new_shared(z: Z, uuid: [u8; 16]) -> Result<Mount<Z>, ZcacheError> {
        let (client, pool) = z
            .cleancache()
            .add_mount(Some(crate::cleancache::uuid_of(uuid)))?;
        Ok(Mount { z, client, pool })
    }

    /// The pool's id (for the key-based [`crate::Cleancache`] calls and statistics).
    pub fn pool_id(&self) -> PoolId {
        self.pool.info().id
    }

    /// The cache.
    pub fn zcache(&self) -> &Zcache {
        &self.z
    }

    /// Offers a clean page. Never fails visibly: a page that cannot be kept is simply
    /// not kept, and any older copy of the key is gone either way. May be called where
    /// sleeping is forbidden.
    pub fn put_page(&self, key: Oid, index: u64, page: &Page) {
        let _ = self.z.store_page(&self.pool, key, index, page);
    }

    /// Fills `page` if the pool holds the key: `true` filled, `false` miss (page
    /// untouched). A private pool gives the page up (exclusive cache); a shared pool
    /// keeps it for the other mounts. A corrupt stored page is a miss (and is counted).
    pub fn get_page(&self, key: Oid, index: u64, page: &mut Page) -> bool {
        self.try_get_page(key, index, page).unwrap_or(false)
    }

    /// Like [`Mount::get_page`], but reports errors (the mount ended, a corrupt page).
    pub fn try_get_page(&self, key: Oid, index: u64, page: &mut Page) -> Result<bool, ZcacheError> {
        self.z
            .load_page(&self.pool, key, index, page, LoadMode::Default)
    }

    /// Drops one page.
    pub fn invalidate_page(&self, key: Oid, index: u64) {
        let _ = self.z.tmem.invalidate_page_in(&self.pool, key, index);
    }

    /// Drops every page of a file.
    pub fn invalidate_inode(&self, key: Oid) {
        let _ = self.z.tmem.invalidate_object_in(&self.pool, key);
    }

    /// Unmount: this mount leaves its pool; a private pool (or the last mount of a
    /// shared one) is destroyed and every page freed. [`ZcacheError::UnknownPool`] if
    /// the mount had already ended (through `invalidate_fs`).
    pub fn unmount(self) -> Result<(), ZcacheError> {
        self.z.cleancache().remove_mount(self.client)
    }
}
