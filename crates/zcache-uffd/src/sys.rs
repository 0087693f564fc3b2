//! The userfaultfd interface, by raw `ioctl`s through `libc`.
//!
//! Why not the `userfaultfd` crate (Bytecode Alliance, 0.9.0): its `userfaultfd-sys`
//! 0.6 runs bindgen over the kernel headers at build time, so every build needs libclang
//! (Debian's `libclang-dev`, several hundred MB) for seven ioctls; and its `copy` has no
//! `UFFDIO_COPY_MODE_WP`, which the region needs to fault a clean page back
//! write-protected in one step (a copy followed by a separate write-protect leaves a
//! window in which a write goes unseen and the kept compressed copy goes stale). The
//! structures below are `include/uapi/linux/userfaultfd.h` of Linux 6.x, field for field.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `UFFD_API`.
const UFFD_API: u64 = 0xAA;
const UFFDIO: u64 = 0xAA;

const fn ioc(dir: u64, nr: u64, size: usize) -> libc::c_ulong {
    ((dir << 30) | ((size as u64) << 16) | (UFFDIO << 8) | nr) as libc::c_ulong
}
const IOC_READ: u64 = 2;
const IOC_RW: u64 = 3;

const UFFDIO_API: libc::c_ulong = ioc(IOC_RW, 0x3F, size_of::<UffdioApi>());
const UFFDIO_REGISTER: libc::c_ulong = ioc(IOC_RW, 0x00, size_of::<UffdioRegister>());
const UFFDIO_UNREGISTER: libc::c_ulong = ioc(IOC_READ, 0x01, size_of::<UffdioRange>());
const UFFDIO_WAKE: libc::c_ulong = ioc(IOC_READ, 0x02, size_of::<UffdioRange>());
const UFFDIO_COPY: libc::c_ulong = ioc(IOC_RW, 0x03, size_of::<UffdioCopy>());
const UFFDIO_ZEROPAGE: libc::c_ulong = ioc(IOC_RW, 0x04, size_of::<UffdioZeropage>());
const UFFDIO_WRITEPROTECT: libc::c_ulong = ioc(IOC_RW, 0x06, size_of::<UffdioWriteprotect>());
/// `USERFAULTFD_IOC_NEW` on `/dev/userfaultfd`: `_IO(0xAA, 0x00)`.
const USERFAULTFD_IOC_NEW: libc::c_ulong = (UFFDIO << 8) as libc::c_ulong;

/// `UFFD_FEATURE_PAGEFAULT_FLAG_WP`.
pub(crate) const FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
/// `UFFD_FEATURE_MISSING_SHMEM`.
pub(crate) const FEATURE_MISSING_SHMEM: u64 = 1 << 5;
/// `UFFD_FEATURE_WP_HUGETLBFS_SHMEM`.
pub(crate) const FEATURE_WP_SHMEM: u64 = 1 << 12;

const REGISTER_MODE_MISSING: u64 = 1 << 0;
const REGISTER_MODE_WP: u64 = 1 << 1;
const COPY_MODE_WP: u64 = 1 << 1;
const WRITEPROTECT_MODE_WP: u64 = 1 << 0;

/// `_UFFDIO_COPY`, `_UFFDIO_ZEROPAGE`, `_UFFDIO_WRITEPROTECT`, `_UFFDIO_WAKE` bits of
/// `uffdio_register.ioctls`.
const NEEDED_RANGE_IOCTLS: u64 = (1 << 0x02) | (1 << 0x03) | (1 << 0x04) | (1 << 0x06);

/// `UFFD_EVENT_PAGEFAULT`.
pub(crate) const EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_PAGEFAULT_FLAG_WRITE`.
pub(crate) const PAGEFAULT_FLAG_WRITE: u64 = 1 << 0;
/// `UFFD_PAGEFAULT_FLAG_WP`.
pub(crate) const PAGEFAULT_FLAG_WP: u64 = 1 << 1;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
struct UffdioZeropage {
    range: UffdioRange,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

/// `struct uffd_msg` (packed, 32 bytes), as read from the descriptor.
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub(crate) struct UffdMsg {
    pub(crate) event: u8,
    _reserved1: u8,
    _reserved2: u16,
    _reserved3: u32,
    /// `arg.pagefault.flags`.
    pub(crate) flags: u64,
    /// `arg.pagefault.address`.
    pub(crate) address: u64,
    _rest: u64,
}

const _: () = assert!(size_of::<UffdMsg>() == 32);

impl UffdMsg {
    pub(crate) const ZERO: UffdMsg = UffdMsg {
        event: 0,
        _reserved1: 0,
        _reserved2: 0,
        _reserved3: 0,
        flags: 0,
        address: 0,
        _rest: 0,
    };
}

/// An open, API-handshaken userfaultfd (`O_CLOEXEC | O_NONBLOCK`).
#[derive(Debug)]
pub(crate) struct Uffd {
    fd: OwnedFd,
}

/// Why userfaultfd cannot be used here.
#[derive(Debug)]
pub(crate) struct Unavailable(pub(crate) String);

fn errno() -> io::Error {
    io::Error::last_os_error()
}

impl Uffd {
    /// Opens a userfaultfd (the syscall, else `/dev/userfaultfd`) and asks for `features`.
    pub(crate) fn open(features: u64) -> Result<Uffd, Unavailable> {
        // SAFETY: userfaultfd(2) takes only flags and returns a new descriptor or -1.
        let raw =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        let fd = if raw >= 0 {
            // SAFETY: the syscall just returned this descriptor; nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(raw as i32) }
        } else {
            let sys_err = errno();
            let dev = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/userfaultfd")
                .map_err(|e| {
                    Unavailable(format!(
                        "userfaultfd(2) failed ({sys_err}) and /dev/userfaultfd cannot be opened ({e}); \
                         vm.unprivileged_userfaultfd is {}",
                        std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
                            .map(|s| s.trim().to_string())
                            .unwrap_or_else(|_| "unreadable".into())
                    ))
                })?;
            // SAFETY: USERFAULTFD_IOC_NEW takes its flags by value and returns a new
            // descriptor or -1; `dev` is an open descriptor of /dev/userfaultfd.
            let r = unsafe {
                libc::ioctl(
                    dev.as_raw_fd(),
                    USERFAULTFD_IOC_NEW,
                    libc::O_CLOEXEC | libc::O_NONBLOCK,
                )
            };
            if r < 0 {
                return Err(Unavailable(format!(
                    "USERFAULTFD_IOC_NEW on /dev/userfaultfd failed: {}",
                    errno()
                )));
            }
            // SAFETY: the ioctl just returned this descriptor; nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(r) }
        };
        let mut api = UffdioApi {
            api: UFFD_API,
            features,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes exactly one `uffdio_api`, which `api` is
        // (repr(C), the kernel's layout), valid for the call's duration.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api as *mut UffdioApi) };
        if r < 0 {
            return Err(Unavailable(format!(
                "UFFDIO_API with features {features:#x} refused: {}",
                errno()
            )));
        }
        Ok(Uffd { fd })
    }

    pub(crate) fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Registers `[start, start+len)` for missing and write-protect faults.
    pub(crate) fn register(&self, start: usize, len: usize) -> io::Result<()> {
        let mut reg = UffdioRegister {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            mode: REGISTER_MODE_MISSING | REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes one `uffdio_register` (`reg`, valid
        // for the call). Registering only changes how faults in that range are served;
        // the caller owns the mapping.
        let r =
            unsafe { libc::ioctl(self.raw(), UFFDIO_REGISTER, &mut reg as *mut UffdioRegister) };
        if r < 0 {
            return Err(errno());
        }
        if reg.ioctls & NEEDED_RANGE_IOCTLS != NEEDED_RANGE_IOCTLS {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the range offers ioctls {:#x}; COPY, ZEROPAGE, WRITEPROTECT and WAKE are needed",
                    reg.ioctls
                ),
            ));
        }
        Ok(())
    }

    /// Unregisters a range (faults there are then served by the kernel as usual).
    pub(crate) fn unregister(&self, start: usize, len: usize) -> io::Result<()> {
        let mut range = UffdioRange {
            start: start as u64,
            len: len as u64,
        };
        // SAFETY: UFFDIO_UNREGISTER reads one `uffdio_range` (`range`, valid for the call).
        let r = unsafe {
            libc::ioctl(
                self.raw(),
                UFFDIO_UNREGISTER,
                &mut range as *mut UffdioRange,
            )
        };
        if r < 0 { Err(errno()) } else { Ok(()) }
    }

    /// Wakes the threads waiting on faults in `[start, start+len)` (they retry the access).
    pub(crate) fn wake(&self, start: usize, len: usize) -> io::Result<()> {
        let mut range = UffdioRange {
            start: start as u64,
            len: len as u64,
        };
        // SAFETY: UFFDIO_WAKE reads one `uffdio_range` (`range`, valid for the call).
        let r = unsafe { libc::ioctl(self.raw(), UFFDIO_WAKE, &mut range as *mut UffdioRange) };
        if r < 0 { Err(errno()) } else { Ok(()) }
    }

    /// UFFDIO_COPY of one page from `src` to the registered, not-present page at `dst`,
    /// write-protected if `wp`; wakes the waiters. `EEXIST` (the page is present) is
    /// returned as an error for the caller to judge.
    pub(crate) fn copy(&self, dst: usize, src: &[u8; 4096], wp: bool) -> io::Result<()> {
        loop {
            let mut c = UffdioCopy {
                dst: dst as u64,
                src: src.as_ptr() as u64,
                len: 4096,
                mode: if wp { COPY_MODE_WP } else { 0 },
                copy: 0,
            };
            // SAFETY: UFFDIO_COPY reads and writes one `uffdio_copy` (`c`, valid for the
            // call); the kernel reads 4096 bytes at `src`, which the borrow keeps alive
            // and unchanged for the call, and writes only a new page at `dst` inside a
            // range registered with this descriptor (the kernel checks the range).
            let r = unsafe { libc::ioctl(self.raw(), UFFDIO_COPY, &mut c as *mut UffdioCopy) };
            if r >= 0 {
                return Ok(());
            }
            let e = errno();
            if e.raw_os_error() == Some(libc::EAGAIN) && c.copy <= 0 {
                // The mm was changing (e.g. a concurrent mremap/fork): retry.
                std::thread::yield_now();
                continue;
            }
            return Err(e);
        }
    }

    /// UFFDIO_ZEROPAGE of one page at `dst`; wakes the waiters.
    pub(crate) fn zeropage(&self, dst: usize) -> io::Result<()> {
        loop {
            let mut z = UffdioZeropage {
                range: UffdioRange {
                    start: dst as u64,
                    len: 4096,
                },
                mode: 0,
                zeropage: 0,
            };
            // SAFETY: UFFDIO_ZEROPAGE reads and writes one `uffdio_zeropage` (`z`, valid
            // for the call) and maps a zero page at `dst`, inside a range registered with
            // this descriptor (the kernel checks the range).
            let r =
                unsafe { libc::ioctl(self.raw(), UFFDIO_ZEROPAGE, &mut z as *mut UffdioZeropage) };
            if r >= 0 {
                return Ok(());
            }
            let e = errno();
            if e.raw_os_error() == Some(libc::EAGAIN) && z.zeropage <= 0 {
                std::thread::yield_now();
                continue;
            }
            return Err(e);
        }
    }

    /// Write-protects (`wp`) or un-protects one page range. Protecting does not wake;
    /// un-protecting wakes the threads waiting on write-protect faults there. When this
    /// returns, the kernel has flushed the TLBs: no thread of the process can write
    /// through an old writable entry.
    pub(crate) fn writeprotect(&self, start: usize, len: usize, wp: bool) -> io::Result<()> {
        let mut w = UffdioWriteprotect {
            range: UffdioRange {
                start: start as u64,
                len: len as u64,
            },
            // (WP with DONTWAKE is EINVAL: protecting never wakes anyway.)
            mode: if wp { WRITEPROTECT_MODE_WP } else { 0 },
        };
        // SAFETY: UFFDIO_WRITEPROTECT reads one `uffdio_writeprotect` (`w`, valid for the
        // call) and changes only the protection of a range registered with this
        // descriptor in WP mode (the kernel checks it).
        let r = unsafe {
            libc::ioctl(
                self.raw(),
                UFFDIO_WRITEPROTECT,
                &mut w as *mut UffdioWriteprotect,
            )
        };
        if r < 0 { Err(errno()) } else { Ok(()) }
    }

    /// Reads up to `buf.len()` messages without blocking; 0 when none is pending.
    pub(crate) fn read_msgs(&self, buf: &mut [UffdMsg]) -> io::Result<usize> {
        // SAFETY: read(2) writes at most `size_of_val(buf)` bytes into `buf`, which is
        // valid for writes of that many bytes; `UffdMsg` is plain old data, any bytes
        // are a valid value.
        let r = unsafe {
            libc::read(
                self.raw(),
                buf.as_mut_ptr().cast(),
                std::mem::size_of_val(buf),
            )
        };
        if r < 0 {
            let e = errno();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        Ok(r as usize / size_of::<UffdMsg>())
    }
}
