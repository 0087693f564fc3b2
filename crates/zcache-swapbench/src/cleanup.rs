//! Undoing what the bench did: a stack of [`Step`]s, run in reverse order when the
//! [`Cleanup`] is dropped (normal end, error, panic; SIGINT and SIGTERM end the run
//! through an error, so they drop it too). Every step is tried whatever happened to the
//! ones before it; failures are printed on stderr, never hidden.
//!
//! Every side effect on the machine goes through a [`Host`]: its paths (so that tests
//! run on a fake tree in a temporary directory) and its [`Ops`] (the commands and the
//! few system calls; tests record them instead).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::parse;

/// The operations a step needs besides plain file reads and writes.
pub trait Ops: Send + Sync {
    /// Runs a program (in its own process group, so a terminal's SIGINT does not reach
    /// it), returning its stdout; a failure carries its stderr.
    fn run(&self, prog: &str, args: &[&str]) -> Result<String, String>;
    /// Removes a cgroup directory (cgroupfs: `rmdir` of a directory with files in it).
    fn rmdir_cgroup(&self, dir: &Path) -> io::Result<()>;
    /// Sends a signal to a process (negative: a process group).
    fn kill(&self, pid: i32, sig: i32);
}

/// The real machine.
pub struct RealOps;

/// Where a program is (zcache-swapd's lookup: PATH, then the sbin directories).
pub use zcache_swapd::daemon::find_program;

impl Ops for RealOps {
    fn run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        zcache_swapd::daemon::run_cmd(prog, args)
    }

    fn rmdir_cgroup(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn kill(&self, pid: i32, sig: i32) {
        // SAFETY: kill takes plain integers; callers pass processes the bench started
        // (or their process groups).
        unsafe { libc::kill(pid, sig) };
    }
}

/// The machine the bench works on: its roots and its operations.
pub struct Host {
    /// `/sys`.
    pub sys: PathBuf,
    /// `/proc`.
    pub proc_: PathBuf,
    /// The cgroup v1 memory controller's root, `/sys/fs/cgroup/memory`.
    pub cgroup: PathBuf,
    /// Where the bench's files go (`/var/tmp`).
    pub var_tmp: PathBuf,
    /// Where mount points go (`/tmp`).
    pub tmp: PathBuf,
    /// Commands and system calls.
    pub ops: Box<dyn Ops>,
    /// Every cleanup step done, in order, as text (`swapoff /dev/zram1`, ...).
    pub log: Mutex<Vec<String>>,
}

impl Host {
    /// This machine.
    pub fn real() -> Host {
        Host {
            sys: "/sys".into(),
            proc_: "/proc".into(),
            cgroup: "/sys/fs/cgroup/memory".into(),
            var_tmp: "/var/tmp".into(),
            tmp: "/tmp".into(),
            ops: Box::new(RealOps),
            log: Mutex::new(Vec::new()),
        }
    }

    /// The zram control directory.
    pub fn zram_control(&self) -> PathBuf {
        self.sys.join("class/zram-control")
    }

    /// `/sys/block/NAME`.
    pub fn block(&self, name: &str) -> PathBuf {
        self.sys.join("block").join(name)
    }

    /// zswap's parameters directory.
    pub fn zswap_params(&self) -> PathBuf {
        self.sys.join("module/zswap/parameters")
    }

    fn note(&self, what: String) {
        if let Ok(mut l) = self.log.lock() {
            l.push(what);
        }
    }

    /// The steps done so far (tests).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// /proc/swaps.
    pub fn swaps(&self) -> Vec<parse::SwapArea> {
        parse::swaps(&std::fs::read_to_string(self.proc_.join("swaps")).unwrap_or_default())
    }
}

/// A `zcache swapd` child: stopped with SIGTERM (it undoes its own swap, loop device
/// and mount), then checked for anything left under its names.
pub struct SwapdChild {
    /// The process.
    pub child: Child,
    /// Its mount point (`--mountpoint`).
    pub mountpoint: PathBuf,
    /// Its backing file (`--backing`).
    pub backing: PathBuf,
    /// Its stdout (the JSON statistics), read by a thread.
    pub stdout: Option<std::thread::JoinHandle<String>>,
}

/// One thing to undo.
pub enum Step {
    /// `swapoff DEV` (retried while the kernel needs time to read pages back).
    Swapoff(String),
    /// `losetup -d DEV`.
    LoopDetach(String),
    /// Remove a file the bench created.
    RemoveFile(PathBuf),
    /// Remove a directory the bench created (it must be empty).
    RemoveDir(PathBuf),
    /// `umount DIR` (a mount the bench made).
    Unmount(PathBuf),
    /// `echo 1 > /sys/block/zramN/reset`.
    ZramReset(u32),
    /// `echo N > /sys/class/zram-control/hot_remove`.
    ZramRemove(u32),
    /// Write a sysfs value back as it was found (a zswap parameter).
    Restore {
        /// The file.
        path: PathBuf,
        /// Its value before the bench wrote it.
        value: String,
    },
    /// A cgroup the bench created: its tasks killed (they are the workload's) and waited
    /// for, anything still there moved to the root cgroup, the directory removed.
    Cgroup(PathBuf),
    /// A workload process group: SIGKILL, then reaped.
    Workload(Child),
    /// A `zcache swapd` child.
    Swapd(Box<SwapdChild>),
}

impl Step {
    /// What the step does, as text.
    pub fn describe(&self) -> String {
        match self {
            Step::Swapoff(d) => format!("swapoff {d}"),
            Step::LoopDetach(d) => format!("losetup -d {d}"),
            Step::RemoveFile(p) => format!("rm {}", p.display()),
            Step::RemoveDir(p) => format!("rmdir {}", p.display()),
            Step::Unmount(p) => format!("umount {}", p.display()),
            Step::ZramReset(id) => format!("zram{id} reset"),
            Step::ZramRemove(id) => format!("zram hot_remove {id}"),
            Step::Restore { path, value } => format!("restore {} = {value}", path.display()),
            Step::Cgroup(p) => format!("remove cgroup {}", p.display()),
            Step::Workload(c) => format!("kill workload {}", c.id()),
            Step::Swapd(s) => format!("stop swapd {}", s.child.id()),
        }
    }

    /// Does it; `Err` says what failed.
    pub fn undo(self, host: &Host) -> Result<(), String> {
        host.note(self.describe());
        match self {
            Step::Swapoff(dev) => {
                let mut last = String::new();
                for _ in 0..20 {
                    match host.ops.run("swapoff", &[&dev]) {
                        Ok(_) => return Ok(()),
                        Err(e) => last = e,
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(last)
            }
            Step::LoopDetach(dev) => host.ops.run("losetup", &["-d", &dev]).map(drop),
            Step::RemoveFile(p) => match std::fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(format!("rm {}: {e}", p.display()))
                }
                _ => Ok(()),
            },
            Step::RemoveDir(p) => match std::fs::remove_dir(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(format!("rmdir {}: {e}", p.display()))
                }
                _ => Ok(()),
            },
            Step::Unmount(p) => {
                let s = p.display().to_string();
                let mut last = String::new();
                for _ in 0..20 {
                    match host.ops.run("umount", &[&s]) {
                        Ok(_) => return Ok(()),
                        Err(e) => last = e,
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(last)
            }
            Step::ZramReset(id) => write(&host.block(&format!("zram{id}")).join("reset"), "1"),
            Step::ZramRemove(id) => write(&host.zram_control().join("hot_remove"), &id.to_string()),
            Step::Restore { path, value } => write(&path, &value),
            Step::Cgroup(dir) => remove_cgroup(host, &dir),
            Step::Workload(mut c) => {
                host.ops.kill(-(c.id() as i32), libc::SIGKILL);
                let _ = c.kill();
                c.wait()
                    .map(drop)
                    .map_err(|e| format!("wait for the workload: {e}"))
            }
            Step::Swapd(s) => stop_swapd(host, *s, Duration::from_secs(180)).map(drop),
        }
    }
}

/// Writes a sysfs (or cgroupfs) file.
pub fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

fn remove_cgroup(host: &Host, dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    let procs = dir.join("cgroup.procs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut moved = false;
    loop {
        let left = parse::pids(&std::fs::read_to_string(&procs).unwrap_or_default());
        if left.is_empty() {
            match host.ops.rmdir_cgroup(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("rmdir {}: {e}", dir.display()));
                }
                Err(_) => {}
            }
        } else if Instant::now() + Duration::from_secs(20) > deadline && !moved {
            // Still there after SIGKILL and 10 s: move them out so the directory can go.
            for pid in &left {
                let _ = write(&host.cgroup.join("cgroup.procs"), &pid.to_string());
            }
            moved = true;
        } else {
            // Only the workload's own processes are in a cgroup the bench created.
            for pid in &left {
                host.ops.kill(*pid, libc::SIGKILL);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "cgroup {} still holds tasks {left:?}",
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops a swapd child: SIGTERM, wait up to `limit` (its swapoff reads every page back
/// first), then its JSON statistics. Afterwards, whatever of it is left under its names
/// (swap on a loop device over its file, the loop device, the mount, the backing file,
/// the mount point) is undone here. swapd is never SIGKILLed while its device may still
/// be swap: the kernel would lose pages.
pub fn stop_swapd(
    host: &Host,
    mut s: SwapdChild,
    limit: Duration,
) -> Result<serde_json::Value, String> {
    let pid = s.child.id() as i32;
    host.ops.kill(pid, libc::SIGTERM);
    let deadline = Instant::now() + limit;
    let status = loop {
        match s.child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => break None,
        }
    };
    let mut errors = Vec::new();
    let Some(status) = status else {
        return Err(format!(
            "zcache swapd (pid {pid}) did not stop in {limit:?} after SIGTERM: left running \
             (it may still be the kernel's swap); stop it with kill -TERM {pid}"
        ));
    };
    let out = s
        .stdout
        .take()
        .and_then(|t| t.join().ok())
        .unwrap_or_default();
    if !status.success() {
        errors.push(format!("zcache swapd exited with {status}"));
    }
    errors.extend(swapd_residue(host, &s.mountpoint, &s.backing));
    let json = serde_json::from_str::<serde_json::Value>(&out)
        .map_err(|e| format!("zcache swapd's statistics are not JSON ({e}): {out:?}"));
    if errors.is_empty() {
        json
    } else {
        Err(errors.join("; "))
    }
}

/// Undoes what a swapd that died left under its names; returns what was found.
fn swapd_residue(host: &Host, mountpoint: &Path, backing: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mp = mountpoint.display().to_string();
    let loops: Vec<String> = std::fs::read_dir(host.sys.join("block"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let back = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            back.starts_with(&mp).then(|| format!("/dev/{name}"))
        })
        .collect();
    for dev in loops {
        if host.swaps().iter().any(|a| a.name == dev) {
            found.push(format!("{dev} was still swap"));
            if let Err(e) = Step::Swapoff(dev.clone()).undo(host) {
                found.push(e);
                continue;
            }
        }
        found.push(format!("{dev} was still attached"));
        if let Err(e) = Step::LoopDetach(dev).undo(host) {
            found.push(e);
        }
    }
    let mounts = std::fs::read_to_string(host.proc_.join("mounts")).unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(mp.as_str()))
    {
        found.push(format!("{mp} was still mounted"));
        if let Err(e) = host.ops.run("umount", &["-l", &mp]) {
            found.push(e);
        }
    }
    if backing.exists() {
        found.push(format!("{} was left", backing.display()));
        let _ = std::fs::remove_file(backing);
    }
    if mountpoint.exists() {
        found.push(format!("{mp} was left"));
        let _ = std::fs::remove_dir(mountpoint);
    }
    found
}

/// The stack of steps; dropping it undoes them in reverse order.
pub struct Cleanup<'h> {
    host: &'h Host,
    steps: Vec<Step>,
}

impl<'h> Cleanup<'h> {
    /// An empty stack.
    pub fn new(host: &'h Host) -> Cleanup<'h> {
        Cleanup {
            host,
            steps: Vec::new(),
        }
    }

    /// The host.
    pub fn host(&self) -> &'h Host {
        self.host
    }

    /// Something to undo, after everything pushed later.
    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// The steps waiting, in the order they would run.
    pub fn pending(&self) -> Vec<String> {
        self.steps.iter().rev().map(Step::describe).collect()
    }

    /// Takes the swapd child off the stack (to stop it on the normal path).
    pub fn take_swapd(&mut self) -> Option<SwapdChild> {
        let i = self
            .steps
            .iter()
            .position(|s| matches!(s, Step::Swapd(_)))?;
        match self.steps.remove(i) {
            Step::Swapd(s) => Some(*s),
            _ => None,
        }
    }

    /// Takes the workload child off the stack (it was waited for).
    pub fn take_workload(&mut self) -> Option<Child> {
        let i = self
            .steps
            .iter()
            .position(|s| matches!(s, Step::Workload(_)))?;
        match self.steps.remove(i) {
            Step::Workload(c) => Some(c),
            _ => None,
        }
    }

    /// Mutable access to the workload child on the stack.
    pub fn workload(&mut self) -> Option<&mut Child> {
        self.steps.iter_mut().find_map(|s| match s {
            Step::Workload(c) => Some(c),
            _ => None,
        })
    }

    /// Undoes everything now, in reverse order; every step is tried; the failures.
    pub fn finish(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(step) = self.steps.pop() {
            let what = step.describe();
            if let Err(e) = step.undo(self.host) {
                errors.push(format!("{what}: {e}"));
            }
        }
        errors
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for e in self.finish() {
            eprintln!("zcache swap-bench: cleanup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Records commands instead of running them; fails the programs in `fail`.
    struct FakeOps {
        log: Arc<Mutex<Vec<String>>>,
        fail: Vec<&'static str>,
    }

    impl Ops for FakeOps {
        fn run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
            self.log
                .lock()
                .unwrap()
                .push(format!("{prog} {}", args.join(" ")));
            if self.fail.contains(&prog) {
                Err(format!("{prog}: failed on purpose"))
            } else {
                Ok(String::new())
            }
        }
        fn rmdir_cgroup(&self, dir: &Path) -> io::Result<()> {
            std::fs::remove_dir_all(dir)
        }
        fn kill(&self, pid: i32, sig: i32) {
            self.log.lock().unwrap().push(format!("kill {pid} {sig}"));
        }
    }

    /// A fake /sys, /proc and cgroup tree in a temporary directory.
    fn fake_host(tag: &str, fail: Vec<&'static str>) -> (Host, PathBuf, Arc<Mutex<Vec<String>>>) {
        let root = std::env::temp_dir().join(format!(
            "zcache-swapbench-unit-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let params = root.join("sys/module/zswap/parameters");
        std::fs::create_dir_all(&params).unwrap();
        for (k, v) in [
            ("enabled", "N\n"),
            ("compressor", "lzo\n"),
            ("shrinker_enabled", "N\n"),
            ("max_pool_percent", "20\n"),
        ] {
            std::fs::write(params.join(k), v).unwrap();
        }
        std::fs::create_dir_all(root.join("sys/block/zram5")).unwrap();
        std::fs::write(root.join("sys/block/zram5/reset"), "").unwrap();
        std::fs::create_dir_all(root.join("sys/class/zram-control")).unwrap();
        std::fs::write(root.join("sys/class/zram-control/hot_remove"), "").unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/swaps"),
            "Filename Type Size Used Priority\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("cgroup")).unwrap();
        std::fs::create_dir_all(root.join("var_tmp")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let host = Host {
            sys: root.join("sys"),
            proc_: root.join("proc"),
            cgroup: root.join("cgroup"),
            var_tmp: root.join("var_tmp"),
            tmp: root.join("tmp"),
            ops: Box::new(FakeOps {
                log: log.clone(),
                fail,
            }),
            log: Mutex::new(Vec::new()),
        };
        (host, root, log)
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap().trim().to_string()
    }

    /// The steps of one zswap run and one zram run, pushed in the order the bench pushes
    /// them, undo in the reverse order: cgroup, swapoff, losetup -d, the file, zswap's
    /// parameters (exactly as found: only those changed), then zram's swapoff, reset,
    /// hot_remove, then the debugfs mount and its directory.
    #[test]
    fn steps_undo_in_reverse_order_and_restore_zswap_exactly() {
        let (host, root, cmds) = fake_host("order", vec![]);
        let params = host.zswap_params();
        let debugfs = host.tmp.join("zcache-swapbench-1-debugfs");
        std::fs::create_dir(&debugfs).unwrap();
        let file = host.var_tmp.join("zcache-swapbench-1-zswap.swap");
        std::fs::write(&file, "x").unwrap();
        let cg = host.cgroup.join("zcache-swapbench-1-2");
        std::fs::create_dir(&cg).unwrap();
        std::fs::write(cg.join("cgroup.procs"), "").unwrap();
        {
            let mut global = Cleanup::new(&host);
            global.push(Step::RemoveDir(debugfs.clone()));
            global.push(Step::Unmount(debugfs.clone()));
            let mut zram = Cleanup::new(&host);
            zram.push(Step::ZramRemove(5));
            zram.push(Step::ZramReset(5));
            zram.push(Step::Swapoff("/dev/zram5".into()));
            let mut cl = Cleanup::new(&host);
            let now = crate::set_zswap(&host, &mut cl, "lzo").unwrap();
            assert_eq!(
                now,
                [
                    ("compressor", "lzo"),
                    ("shrinker_enabled", "Y"),
                    ("enabled", "Y")
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
            );
            assert_eq!(read(&params.join("enabled")), "Y");
            assert_eq!(read(&params.join("shrinker_enabled")), "Y");
            cl.push(Step::RemoveFile(file.clone()));
            cl.push(Step::LoopDetach("/dev/loop9".into()));
            cl.push(Step::Swapoff("/dev/loop9".into()));
            cl.push(Step::Cgroup(cg.clone()));
            assert_eq!(
                cl.pending(),
                vec![
                    format!("remove cgroup {}", cg.display()),
                    "swapoff /dev/loop9".into(),
                    "losetup -d /dev/loop9".into(),
                    format!("rm {}", file.display()),
                    format!("restore {} = N", params.join("enabled").display()),
                    format!("restore {} = N", params.join("shrinker_enabled").display()),
                ]
            );
            // Dropped in reverse order of declaration: cl, zram, global.
        }
        assert_eq!(
            *cmds.lock().unwrap(),
            vec![
                "swapoff /dev/loop9".to_string(),
                "losetup -d /dev/loop9".into(),
                "swapoff /dev/zram5".into(),
                format!("umount {}", debugfs.display()),
            ]
        );
        let log = host.log();
        let pos = |s: &str| {
            log.iter()
                .position(|l| l.starts_with(s))
                .unwrap_or_else(|| panic!("{s} not in {log:?}"))
        };
        assert!(pos("remove cgroup") < pos("swapoff /dev/loop9"));
        assert!(pos("rm ") < pos("restore"));
        assert!(pos("swapoff /dev/zram5") < pos("zram5 reset"));
        assert!(pos("zram5 reset") < pos("zram hot_remove 5"));
        assert!(pos("zram hot_remove 5") < pos("umount"));
        assert!(pos("umount") < pos("rmdir"));
        // zswap exactly as found; the parameter that was not changed not written.
        for (k, v) in [
            ("enabled", "N"),
            ("compressor", "lzo"),
            ("shrinker_enabled", "N"),
            ("max_pool_percent", "20"),
        ] {
            assert_eq!(read(&params.join(k)), v, "{k}");
        }
        assert!(!log.iter().any(|l| l.contains("compressor")), "{log:?}");
        assert_eq!(read(&host.sys.join("block/zram5/reset")), "1");
        assert_eq!(read(&host.sys.join("class/zram-control/hot_remove")), "5");
        assert!(!cg.exists() && !file.exists() && !debugfs.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A step that fails does not stop the ones after it, and the failure is reported.
    #[test]
    fn a_failing_step_is_reported_and_the_rest_still_run() {
        let (host, root, cmds) = fake_host("fail", vec!["losetup"]);
        let params = host.zswap_params();
        let file = host.var_tmp.join("zcache-swapbench-1-zswap.swap");
        std::fs::write(&file, "x").unwrap();
        let mut cl = Cleanup::new(&host);
        crate::set_zswap(&host, &mut cl, "lz4").unwrap();
        assert_eq!(read(&params.join("compressor")), "lz4");
        cl.push(Step::RemoveFile(file.clone()));
        cl.push(Step::LoopDetach("/dev/loop9".into()));
        let errors = cl.finish();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("losetup -d /dev/loop9"), "{errors:?}");
        assert!(!file.exists());
        for (k, v) in [
            ("enabled", "N"),
            ("compressor", "lzo"),
            ("shrinker_enabled", "N"),
        ] {
            assert_eq!(read(&params.join(k)), v, "{k}");
        }
        assert_eq!(
            *cmds.lock().unwrap(),
            vec!["losetup -d /dev/loop9".to_string()]
        );
        drop(cl);
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A cgroup whose tasks are still listed gets them SIGKILLed (they are the
    /// workload's), and goes once they are gone.
    #[test]
    fn a_cgroup_with_tasks_left_is_emptied_then_removed() {
        let (host, root, cmds) = fake_host("cgroup", vec![]);
        let cg = host.cgroup.join("zcache-swapbench-1-1");
        std::fs::create_dir(&cg).unwrap();
        std::fs::write(cg.join("cgroup.procs"), "4242\n").unwrap();
        let procs = cg.join("cgroup.procs");
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(procs, "").unwrap();
        });
        Step::Cgroup(cg.clone()).undo(&host).unwrap();
        t.join().unwrap();
        assert!(!cg.exists());
        assert!(
            cmds.lock()
                .unwrap()
                .iter()
                .any(|c| c == &format!("kill 4242 {}", libc::SIGKILL))
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
