//! The FUSE file system over a [`Device`]: a root directory holding
//!
//! * `swap`: a regular file of the device's size (mode 0600), whose reads, writes and
//!   fallocate calls are the device's requests. Opened with `FOPEN_DIRECT_IO`, so every
//!   access reaches the handler (no second copy in the page cache). A read that starts
//!   at or past the end returns nothing (end of file) and one that crosses it is cut
//!   short, as for any file; every other range error is the handler's (EINVAL for an
//!   unaligned request, ENOSPC for a write past the end, EIO for a failing backing
//!   file or a corrupt page). fallocate: punch-hole (loop's discard), zero-range and
//!   write-zeroes (loop's write-zeroes) invalidate, plain allocation inside the file is a no-op, anything
//!   else is EOPNOTSUPP. The size cannot change (truncate: EPERM).
//! * `stats`: read-only text, the device's and zcache's statistics
//!   ([`Device::stats_text`]) as of the open.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, WriteFlags,
};

use crate::device::{BLOCK_SIZE, Device};

/// The swap file's name in the mount root.
pub const SWAP_FILE: &str = "swap";
/// The statistics file's name in the mount root.
pub const STATS_FILE: &str = "stats";

const SWAP_INO: INodeNo = INodeNo(2);
const STATS_INO: INodeNo = INodeNo(3);
const TTL: Duration = Duration::from_secs(1);
/// Linux 6.17's fallocate mode for write-zeroes that keeps the blocks allocated (loop
/// sends it for REQ_NOUNMAP); reads give zeros after it, as after a punched hole.
const FALLOC_FL_WRITE_ZEROES: i32 = 0x80;

/// The FUSE file system (see the module docs).
pub struct SwapFs {
    dev: Arc<Device>,
    uid: u32,
    gid: u32,
    started: SystemTime,
    /// Open `stats` handles: the text as of their open.
    stats: Mutex<HashMap<u64, Arc<[u8]>>>,
    next_fh: AtomicU64,
}

impl SwapFs {
    /// The file system over `dev`, its files owned by the calling process's user.
    pub fn new(dev: Arc<Device>) -> SwapFs {
        // SAFETY: getuid and getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        SwapFs {
            dev,
            uid,
            gid,
            started: SystemTime::now(),
            stats: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0o755, 0, 2),
            SWAP_INO => (FileType::RegularFile, 0o600, self.dev.size(), 1),
            STATS_INO => (
                FileType::RegularFile,
                0o444,
                self.dev.stats_text().len() as u64,
                1,
            ),
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK_SIZE as u32,
            flags: 0,
        })
    }

    fn stats_of(&self, fh: FileHandle) -> Option<Arc<[u8]>> {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned()
    }
}

fn errno(e: &crate::device::DeviceError, write: bool) -> Errno {
    Errno::from_i32(e.errno(write))
}

impl Filesystem for SwapFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = match (parent, name.to_str()) {
            (INodeNo::ROOT, Some(SWAP_FILE)) => SWAP_INO,
            (INodeNo::ROOT, Some(STATS_FILE)) => STATS_INO,
            _ => return reply.error(Errno::ENOENT),
        };
        match self.attr(ino) {
            // The stats file's size changes: no caching of it.
            Some(a) if ino == STATS_INO => reply.entry(&Duration::ZERO, &a, Generation(0)),
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) if ino == STATS_INO => reply.attr(&Duration::ZERO, &a),
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(a) = self.attr(ino) else {
            return reply.error(Errno::ENOENT);
        };
        // The files are fixed: no resize, no owner or mode change (times are ignored).
        if size.is_some_and(|s| s != a.size) || mode.is_some() || uid.is_some() || gid.is_some() {
            return reply.error(Errno::EPERM);
        }
        reply.attr(&TTL, &a);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match ino {
            SWAP_INO => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            STATS_INO => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                let text: Arc<[u8]> = self.dev.stats_text().into_bytes().into();
                self.stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(fh, text);
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO);
            }
            INodeNo::ROOT => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match ino {
            SWAP_INO => {
                let end = offset.saturating_add(u64::from(size)).min(self.dev.size());
                if offset >= end {
                    return reply.data(&[]);
                }
                let mut buf = vec![0u8; (end - offset) as usize];
                match self.dev.read(offset, &mut buf) {
                    Ok(()) => reply.data(&buf),
                    Err(e) => reply.error(errno(&e, false)),
                }
            }
            STATS_INO => {
                let Some(text) = self.stats_of(fh) else {
                    return reply.error(Errno::EBADF);
                };
                let start = (offset as usize).min(text.len());
                let end = start.saturating_add(size as usize).min(text.len());
                reply.data(&text[start..end]);
            }
            INodeNo::ROOT => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino != SWAP_INO {
            return reply.error(Errno::EACCES);
        }
        match self.dev.write(offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(&e, true)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if ino != SWAP_INO {
            return reply.error(Errno::EACCES);
        }
        let keep = libc::FALLOC_FL_KEEP_SIZE;
        let punch = libc::FALLOC_FL_PUNCH_HOLE | keep;
        let zero = libc::FALLOC_FL_ZERO_RANGE;
        let r = if mode == punch || mode & !keep == zero || mode & !keep == FALLOC_FL_WRITE_ZEROES {
            self.dev.discard(offset, length)
        } else if mode & !keep == 0 {
            // Allocation: every block already exists; only the range is checked.
            match offset.checked_add(length) {
                Some(end) if end <= self.dev.size() => Ok(()),
                _ => return reply.error(Errno::EFBIG),
            }
        } else {
            return reply.error(Errno::EOPNOTSUPP);
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e, false)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Swap does not outlive the daemon: nothing to make durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if ino == STATS_INO {
            self.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&fh.0);
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (SWAP_INO, FileType::RegularFile, SWAP_FILE),
            (STATS_INO, FileType::RegularFile, STATS_FILE),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.dev.blocks();
        reply.statfs(
            blocks,
            0,
            0,
            3,
            0,
            BLOCK_SIZE as u32,
            255,
            BLOCK_SIZE as u32,
        );
    }
}
