//! The daemon: mounts the FUSE file system, optionally sets the swap up on it, waits
//! for SIGINT or SIGTERM, and undoes everything it did, in reverse order, on every exit
//! path (a [`Teardown`] guard runs on drop too).
//!
//! What it creates, and nothing else it touches:
//! * the mount point, `zcache-swapd-PID` under the temporary directory (or the one the
//!   caller names: created if missing and then removed, left alone if it existed);
//! * the backing file, `zcache-swapd-PID.backing` under /var/tmp (or the caller's path:
//!   always created new, an existing file is refused), removed at exit;
//! * with `swapon`: a loop device (`losetup --find --direct-io=on --sector-size 4096`
//!   over the FUSE file), a swap signature on it (mkswap) and the swap area (swapon).
//!
//! Teardown order: swapoff (while the file system still serves the pages the kernel
//! reads back), `losetup -d`, unmount (the session thread then ends), the backing file,
//! the mount point.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, MountOption, Session, SessionACL};
use zcache::{AllocatorKind, Config};
use zcomp::Algorithm;

use crate::device::{BLOCK_SIZE, Device, DeviceConfig};
use crate::fs::{SWAP_FILE, SwapFs};

/// Prefix of everything the daemon creates.
pub const PREFIX: &str = "zcache-";

/// What the daemon runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Device size in bytes (a multiple of 4096, at least 40 KiB: mkswap's minimum).
    pub size: u64,
    /// zcache's compressor.
    pub compressor: Algorithm,
    /// zcache's allocator for the swap pages (persistent pool).
    pub allocator: AllocatorKind,
    /// zcache's frame limit (`None`: no limit).
    pub max_frames: Option<usize>,
    /// The backing file (default `/var/tmp/zcache-swapd-PID.backing`).
    pub backing: Option<PathBuf>,
    /// The mount point (default `$TMPDIR/zcache-swapd-PID`).
    pub mountpoint: Option<PathBuf>,
    /// Set the swap up: losetup, mkswap, swapon (root only).
    pub swapon: bool,
    /// swapon's priority (`None`: the kernel's default).
    pub swap_priority: Option<i32>,
    /// FUSE request threads.
    pub threads: usize,
    /// Lock the daemon's memory (mlockall): a swap daemon must not be swapped out.
    pub mlock: bool,
    /// Pages one run of zcache's reclaim worker may write back.
    pub reclaim_budget: usize,
}

impl Options {
    /// Defaults: lz4, zsmalloc, no frame limit, no swapon, one thread, mlock.
    pub fn new(size: u64) -> Options {
        Options {
            size,
            compressor: Algorithm::Lz4,
            allocator: AllocatorKind::Zsmalloc,
            max_frames: None,
            backing: None,
            mountpoint: None,
            swapon: false,
            swap_priority: None,
            threads: 1,
            mlock: true,
            reclaim_budget: 256,
        }
    }
}

/// Why the daemon could not start or stop.
#[derive(Debug)]
pub enum SwapdError {
    /// The options or the machine rule the run out before anything was created.
    Refused(String),
    /// Setting up or tearing down failed.
    Failed(String),
}

impl std::fmt::Display for SwapdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SwapdError::Refused(m) | SwapdError::Failed(m) => f.write_str(m),
        }
    }
}

impl SwapdError {
    /// Whether the run was refused before anything was created (bad input, not root,
    /// a facility missing), as opposed to failing while running.
    pub fn is_refusal(&self) -> bool {
        matches!(self, SwapdError::Refused(_))
    }
}

impl std::error::Error for SwapdError {}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where a program is: PATH, then the usual sbin and bin directories (root's PATH may
/// lack them). Shared with zcache-swapbench.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a program (found by [`find_program`]) and returns its stdout; a failure carries
/// its stderr. Its stdin is closed and it runs in a process group of its own, so a
/// Ctrl-C meant for us does not also kill a `swapoff` or `losetup -d` we run while
/// cleaning up. Shared with zcache-swapbench.
pub fn run_cmd(prog: &str, args: &[&str]) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let out = Command::new(find_program(prog).unwrap_or_else(|| prog.into()))
        .args(args)
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{prog} {}: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

/// Checks that the machine and the caller can run `opts`, before anything is created.
pub fn preflight(opts: &Options) -> Result<(), SwapdError> {
    let refuse = |m: String| Err(SwapdError::Refused(m));
    // The kernel swaps pages of its own size: each block is one of them.
    // SAFETY: sysconf has no preconditions; it only reads a system value.
    let kernel_page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if kernel_page != BLOCK_SIZE as libc::c_long {
        return refuse(format!(
            "this kernel's pages are {kernel_page} bytes, and this zcache was built for {BLOCK_SIZE}-byte \
             pages: build zcache for the kernel's page size (features page-16k, page-64k)"
        ));
    }
    if !opts.size.is_multiple_of(BLOCK_SIZE) || opts.size < 10 * BLOCK_SIZE {
        return refuse(format!(
            "device size {} bytes: must be a multiple of {BLOCK_SIZE} and at least 10 blocks",
            opts.size
        ));
    }
    if opts.threads == 0 || opts.threads > 64 {
        return refuse("threads must be 1..=64".into());
    }
    if !opts.compressor.is_available() {
        return refuse(format!(
            "compressor {} is not available in this build",
            opts.compressor.name()
        ));
    }
    if !Path::new("/dev/fuse").exists() {
        return refuse("/dev/fuse does not exist: this kernel has no FUSE (CONFIG_FUSE_FS)".into());
    }
    if opts.swapon {
        if !is_root() {
            return refuse(
                "--swapon needs root (losetup, mkswap and swapon): run zcache swapd as root".into(),
            );
        }
        for p in ["losetup", "mkswap", "swapon", "swapoff"] {
            if find_program(p).is_none() {
                return refuse(format!(
                    "--swapon needs {p} (Debian package util-linux / mount), not found in PATH"
                ));
            }
        }
    }
    if !is_root() && find_program("fusermount3").is_none() && find_program("fusermount").is_none() {
        return refuse(
            "mounting FUSE needs root (mount(2) on /dev/fuse) or fusermount3 (Debian package \
             fuse3): run zcache swapd as root"
                .into(),
        );
    }
    Ok(())
}

/// Undoes what the daemon did, in reverse order; runs on drop if not run before.
struct Teardown {
    /// The loop device swapon'd.
    swap: Option<String>,
    /// The loop device attached.
    loop_dev: Option<String>,
    /// The FUSE session (mounted at `mountpoint`).
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    /// The mount point, if the daemon created it.
    created_dir: Option<PathBuf>,
    /// The backing file (the daemon created it).
    backing: Option<PathBuf>,
    device: Option<Arc<Device>>,
}

impl Teardown {
    /// swapoff, retried: the kernel must read every page back first, and a memory-tight
    /// machine may refuse for a while.
    fn swapoff(&mut self) -> Result<(), String> {
        let Some(dev) = self.swap.clone() else {
            return Ok(());
        };
        let mut last = String::new();
        for _ in 0..3 {
            match run_cmd("swapoff", &[&dev]) {
                Ok(_) => {
                    self.swap = None;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(last)
    }

    /// Everything after swapoff; errors are collected, every step is tried (a step that
    /// cannot be done safely, unmounting while the loop device is still attached, is
    /// not).
    fn finish(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.swap.is_some() {
            // swapoff failed: the kernel still uses the device. Detaching the loop device
            // only marks it autoclear; the file system must keep serving until the
            // process exits.
            errors.push(format!(
                "{} is still swap: not unmounting {} (the kernel would lose its pages)",
                self.swap.as_deref().unwrap_or(""),
                self.mountpoint.display()
            ));
            return errors;
        }
        if let Some(dev) = self.loop_dev.take()
            && let Err(e) = run_cmd("losetup", &["-d", &dev])
        {
            errors.push(e);
        }
        if let Some(session) = self.session.take() {
            // A session that ended by itself was unmounted from outside.
            let gone = session.guard.is_finished();
            match if gone {
                Ok(())
            } else {
                unmount(&self.mountpoint)
            } {
                Ok(()) => {
                    if let Err(e) = session.join() {
                        errors.push(format!("FUSE session: {e}"));
                    }
                }
                Err(e) => {
                    errors.push(format!("unmount {}: {e}", self.mountpoint.display()));
                    // Lazy: the mount goes once its last user does; the session thread
                    // is left to the process's exit.
                    let _ = umount2(&self.mountpoint, libc::MNT_DETACH);
                    std::mem::forget(session);
                }
            }
        }
        self.device = None;
        if let Some(p) = self.backing.take()
            && let Err(e) = std::fs::remove_file(&p)
            && e.kind() != io::ErrorKind::NotFound
        {
            errors.push(format!("remove {}: {e}", p.display()));
        }
        if let Some(d) = self.created_dir.take()
            && let Err(e) = std::fs::remove_dir(&d)
        {
            errors.push(format!("rmdir {}: {e}", d.display()));
        }
        errors
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Err(e) = self.swapoff() {
            eprintln!("zcache swapd: swapoff: {e}");
        }
        for e in self.finish() {
            eprintln!("zcache swapd: cleanup: {e}");
        }
    }
}

fn umount2(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; umount2 reads it only.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unmounts, retrying while busy (a loop device just detached lets go of the file a
/// moment later).
fn unmount(path: &Path) -> io::Result<()> {
    let mut last = None;
    for _ in 0..50 {
        match umount2(path, 0) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some(e),
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.unwrap_or_else(|| io::Error::other("busy")))
}

/// Locks the process's memory; `Err` says why not.
fn mlock_all() -> io::Result<()> {
    // SAFETY: mlockall takes flags only and changes no memory contents.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A running daemon.
pub struct Daemon {
    td: Teardown,
    device: Arc<Device>,
    swap_file: PathBuf,
    started: Instant,
    mlocked: bool,
}

impl Daemon {
    /// Checks ([`preflight`]), creates the mount point and backing file, mounts, and
    /// with `swapon` sets the swap up. On any failure everything done so far is undone.
    pub fn start(opts: &Options) -> Result<Daemon, SwapdError> {
        preflight(opts)?;
        let pid = std::process::id();
        let mlocked = if opts.mlock {
            match mlock_all() {
                Ok(()) => true,
                Err(e) => {
                    eprintln!(
                        "zcache swapd: WARNING: mlockall(MCL_CURRENT|MCL_FUTURE) failed ({e}): \
                         the daemon's own memory can be swapped out, and swapping it in may \
                         need the daemon (a deadlock under memory pressure); run as root or \
                         raise RLIMIT_MEMLOCK"
                    );
                    false
                }
            }
        } else {
            false
        };
        let backing = opts.backing.clone().unwrap_or_else(|| {
            let dir = Path::new("/var/tmp");
            let dir = if dir.is_dir() {
                dir.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            dir.join(format!("{PREFIX}swapd-{pid}.backing"))
        });
        if backing.exists() {
            return Err(SwapdError::Refused(format!(
                "backing file {} exists: swapd only uses a file it creates",
                backing.display()
            )));
        }
        let mountpoint = opts
            .mountpoint
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("{PREFIX}swapd-{pid}")));
        let mut td = Teardown {
            swap: None,
            loop_dev: None,
            session: None,
            mountpoint: mountpoint.clone(),
            created_dir: None,
            backing: None,
            device: None,
        };
        let failed = |m: String| SwapdError::Failed(m);
        match std::fs::create_dir(&mountpoint) {
            Ok(()) => td.created_dir = Some(mountpoint.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && opts.mountpoint.is_some() => {
                let empty = std::fs::read_dir(&mountpoint)
                    .map_err(|e| failed(format!("{}: {e}", mountpoint.display())))?
                    .next()
                    .is_none();
                if !empty {
                    return Err(SwapdError::Refused(format!(
                        "mount point {} is not an empty directory",
                        mountpoint.display()
                    )));
                }
            }
            Err(e) => {
                return Err(failed(format!(
                    "cannot create the mount point {}: {e}",
                    mountpoint.display()
                )));
            }
        }
        let zcache = Config {
            max_frames: opts.max_frames.unwrap_or(usize::MAX),
            compressor: opts.compressor,
            persistent_allocator: opts.allocator,
            contexts: opts.threads + 1,
            context_hint: zcache::thread_hint,
            ..Config::default()
        };
        let cfg = DeviceConfig {
            blocks: opts.size / BLOCK_SIZE,
            zcache,
            backing: backing.clone(),
            reclaim_budget: opts.reclaim_budget,
        };
        let device = Arc::new(Device::new(&cfg).map_err(failed)?);
        td.backing = Some(backing);
        td.device = Some(device.clone());

        let mut fcfg = fuser::Config::default();
        fcfg.mount_options = vec![
            MountOption::FSName(format!("{PREFIX}swapd")),
            MountOption::Subtype(format!("{PREFIX}swapd")),
            MountOption::DefaultPermissions,
            MountOption::NoSuid,
            MountOption::NoDev,
            MountOption::NoExec,
        ];
        fcfg.acl = SessionACL::Owner;
        fcfg.n_threads = Some(opts.threads);
        fcfg.clone_fd = opts.threads > 1;
        let session = Session::new(SwapFs::new(device.clone()), &mountpoint, &fcfg)
            .and_then(Session::spawn)
            .map_err(|e| {
                failed(format!(
                    "cannot mount FUSE at {}: {e}",
                    mountpoint.display()
                ))
            })?;
        td.session = Some(session);
        let swap_file = mountpoint.join(SWAP_FILE);

        if opts.swapon {
            let file = swap_file.display().to_string();
            let dev = run_cmd(
                "losetup",
                &[
                    "--find",
                    "--show",
                    "--direct-io=on",
                    "--sector-size",
                    "4096",
                    &file,
                ],
            )
            .map_err(failed)?;
            td.loop_dev = Some(dev.clone());
            let name = dev.trim_start_matches("/dev/");
            if std::fs::read_to_string(format!("/sys/block/{name}/loop/dio"))
                .is_ok_and(|s| s.trim() == "0")
            {
                eprintln!(
                    "zcache swapd: note: {dev} does not use direct I/O (the kernel refused it): \
                     its pages go through the page cache once more"
                );
            }
            run_cmd("mkswap", &["-L", &format!("{PREFIX}swapd"), &dev]).map_err(failed)?;
            let prio = opts.swap_priority.map(|p| p.to_string());
            let mut args = vec!["--discard=pages"];
            if let Some(p) = &prio {
                args.extend(["--priority", p]);
            }
            args.push(&dev);
            run_cmd("swapon", &args).map_err(failed)?;
            td.swap = Some(dev);
        }
        Ok(Daemon {
            td,
            device,
            swap_file,
            started: Instant::now(),
            mlocked,
        })
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// The FUSE file (`MOUNTPOINT/swap`).
    pub fn swap_file(&self) -> &Path {
        &self.swap_file
    }

    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.td.mountpoint
    }

    /// The loop device, with `swapon`.
    pub fn loop_device(&self) -> Option<&str> {
        self.td.loop_dev.as_deref()
    }

    /// Whether the FUSE session has ended (unmounted from outside, or failed).
    pub fn session_ended(&self) -> bool {
        self.td
            .session
            .as_ref()
            .is_none_or(|s| s.guard.is_finished())
    }

    /// The statistics as JSON (device, zcache, daemon).
    pub fn stats_json(&self) -> serde_json::Value {
        let mut v = self.device.stats_json();
        v["daemon"] = serde_json::json!({
            "mountpoint": self.td.mountpoint.display().to_string(),
            "swap_file": self.swap_file.display().to_string(),
            "loop_device": self.td.loop_dev,
            "swap_active": self.td.swap.is_some(),
            "mlocked": self.mlocked,
            "uptime_s": self.started.elapsed().as_secs_f64(),
        });
        v
    }

    /// swapoff (retried). An error means the kernel still needs the device: keep
    /// serving (the daemon stays up) and try again later.
    pub fn swapoff(&mut self) -> Result<(), SwapdError> {
        self.td
            .swapoff()
            .map_err(|e| SwapdError::Failed(format!("swapoff: {e}")))
    }

    /// Tears everything down (swapoff first) and returns the final statistics.
    pub fn stop(mut self) -> Result<serde_json::Value, SwapdError> {
        self.swapoff()?;
        let mut stats = self.stats_json();
        let errors = self.td.finish();
        stats["daemon"]["uptime_s"] = self.started.elapsed().as_secs_f64().into();
        stats["daemon"]["clean_exit"] = errors.is_empty().into();
        if errors.is_empty() {
            Ok(stats)
        } else {
            Err(SwapdError::Failed(errors.join("; ")))
        }
    }
}

/// SIGINT and SIGTERM, blocked in the calling thread (and so in every thread it starts
/// afterwards) and waited for with sigtimedwait.
struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    fn block() -> Signals {
        // SAFETY: a zeroed sigset_t is a valid argument for sigemptyset, which
        // initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, initialised sigset_t owned by this frame; the calls
        // only write it and the calling thread's mask.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        Signals { set }
    }

    /// A pending SIGINT or SIGTERM, waiting at most `timeout`.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `self.set` is an initialised sigset_t and `ts` a valid timespec, both
        // alive across the call; a null siginfo pointer is allowed.
        let r = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (r > 0).then_some(r)
    }
}

/// Runs the daemon until SIGINT or SIGTERM and returns the final statistics. Call it
/// before starting any other thread: it blocks both signals in the calling thread, so
/// that the threads it starts inherit the mask and only its own wait takes them.
pub fn run(opts: &Options) -> Result<serde_json::Value, SwapdError> {
    let signals = Signals::block();
    let mut daemon = Daemon::start(opts)?;
    eprintln!(
        "zcache swapd: serving {} ({} MiB{}), backing file {}{}; SIGINT or SIGTERM stops it",
        daemon.swap_file().display(),
        opts.size >> 20,
        opts.max_frames
            .map(|f| format!(", zcache limit {f} frames"))
            .unwrap_or_default(),
        daemon.device().backing_path().display(),
        daemon
            .loop_device()
            .map(|d| format!(", swap on {d}"))
            .unwrap_or_default(),
    );
    loop {
        if let Some(sig) = signals.wait(Duration::from_millis(500)) {
            eprintln!("zcache swapd: signal {sig}: shutting down");
            match daemon.swapoff() {
                Ok(()) => return daemon.stop(),
                Err(e) => eprintln!(
                    "zcache swapd: {e}; still serving the swap device (the kernel needs it): \
                     free some memory and signal again"
                ),
            }
        } else if daemon.session_ended() {
            eprintln!("zcache swapd: the FUSE session ended (unmounted from outside?)");
            return daemon.stop();
        }
    }
}
