//! The real programs the bench runs, each checking its own result.
//!
//! * `python`: CPython holding SIZE MiB of real files (/usr/include, then /usr/share)
//!   in 64 KiB chunks with their SHA-256, revisited with a skewed access pattern and
//!   then in order, every checksum recomputed (`workloads/pydata.py`);
//! * `sqlite`: an in-memory SQLite database (CPython's sqlite3 module) of SIZE MiB of
//!   the same text, one row per line, with an index, queried twice and every answer
//!   compared with counts computed independently while reading (`workloads/sqlite.py`);
//! * `gcc` / `gcc-small`: GCC at -O2 compiling zstd 1.5.7 (from the local cargo
//!   registry's zstd-sys sources) as one unity translation unit: common + compress +
//!   decompress (`gcc`, ~330 MB peak, ~22 s here) or common + decompress
//!   (`gcc-small`); the object file must be byte for byte the one the unlimited run
//!   produced.

use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// Which program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// CPython: real files, SHA-256 of each chunk, skewed revisits.
    Python,
    /// SQLite (in memory) over real text, answers checked.
    Sqlite,
    /// GCC -O2 on zstd as one unity translation unit.
    Gcc,
    /// GCC -O2 on zstd's common + decompress parts as one unity translation unit.
    GccSmall,
}

impl WorkloadKind {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Python => "python",
            WorkloadKind::Sqlite => "sqlite",
            WorkloadKind::Gcc => "gcc",
            WorkloadKind::GccSmall => "gcc-small",
        }
    }

    fn is_gcc(self) -> bool {
        matches!(self, WorkloadKind::Gcc | WorkloadKind::GccSmall)
    }
}

const PYDATA: &str = include_str!("workloads/pydata.py");
const SQLITE: &str = include_str!("workloads/sqlite.py");
/// Where the python and sqlite workloads read their data.
pub const DATA_ROOTS: [&str; 2] = ["/usr/include", "/usr/share"];

/// Makes the process `c` spawns join a cgroup before it runs its first instruction:
/// "0" (itself) is written to `procs` (a cgroup's `cgroup.procs`) between fork and
/// exec, and the spawn fails if that write fails.
pub fn join_cgroup_on_exec(c: &mut Command, procs: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let path = CString::new(procs.display().to_string()).map_err(|e| e.to_string())?;
    // SAFETY: the hook runs in the child between fork and exec and calls only
    // async-signal-safe functions (open, write, close) on memory prepared before the
    // fork (`path`, a static buffer).
    unsafe {
        c.pre_exec(move || {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, c"0".as_ptr().cast(), 1);
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            if n != 1 {
                return Err(e);
            }
            Ok(())
        });
    }
    Ok(())
}

/// A workload ready to run.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The program.
    pub kind: WorkloadKind,
    /// MiB of data (python, sqlite).
    pub size_mib: u64,
    /// The unity file (gcc), in the bench's work directory.
    pub unity: Option<PathBuf>,
    /// zstd's lib directory (gcc).
    pub zstd_lib: Option<PathBuf>,
    /// The object file of the reference (unlimited) run (gcc).
    pub reference: Option<PathBuf>,
}

/// zstd's sources in the local cargo registry (zstd-sys), if there.
pub fn find_zstd_lib() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let src = home.join("registry/src");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&src)
        .ok()?
        .flatten()
        .flat_map(|reg| {
            std::fs::read_dir(reg.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|e| e.file_name().to_string_lossy().starts_with("zstd-sys-"))
        .map(|e| e.path().join("zstd/lib"))
        .filter(|p| p.join("compress/zstd_compress.c").is_file())
        .collect();
    found.sort();
    found.pop()
}

/// The unity translation unit's text.
pub fn unity_source(lib: &Path, kind: WorkloadKind) -> std::io::Result<String> {
    let parts: &[&str] = if kind == WorkloadKind::GccSmall {
        &["common", "decompress"]
    } else {
        &["common", "compress", "decompress"]
    };
    let mut s = String::from("/* zcache swap-bench: zstd as one translation unit */\n");
    for part in parts {
        let mut files: Vec<PathBuf> = std::fs::read_dir(lib.join(part))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "c"))
            .collect();
        files.sort();
        for f in files {
            s.push_str(&format!("#include \"{}\"\n", f.display()));
        }
    }
    Ok(s)
}

/// Why this workload cannot run here, if it cannot.
pub fn refusal(kind: WorkloadKind) -> Option<String> {
    let need = |p: &str, pkg: &str| {
        crate::cleanup::find_program(p).is_none().then(|| {
            format!(
                "the {} workload needs {p} (Debian package {pkg})",
                kind.name()
            )
        })
    };
    if kind.is_gcc() {
        need("gcc", "gcc").or_else(|| {
            find_zstd_lib().is_none().then(|| {
                "the gcc workloads compile zstd from the local cargo registry \
                 (~/.cargo/registry/src/*/zstd-sys-*/zstd/lib): not found; `cargo fetch` \
                 in this workspace brings it"
                    .to_string()
            })
        })
    } else {
        need("python3", "python3").or_else(|| {
            (kind == WorkloadKind::Sqlite
                && Command::new("python3")
                    .args(["-c", "import sqlite3"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_or(true, |s| !s.success()))
            .then(|| "the sqlite workload needs python3's sqlite3 module".to_string())
        })
    }
}

/// Where a run's output goes.
pub struct RunFiles {
    /// stdout.
    pub stdout: PathBuf,
    /// stderr.
    pub stderr: PathBuf,
    /// The object file (gcc).
    pub object: PathBuf,
}

impl Workload {
    /// The command of one run.
    fn command(&self, files: &RunFiles) -> Command {
        let mut c;
        match self.kind {
            WorkloadKind::Python | WorkloadKind::Sqlite => {
                c = Command::new("python3");
                let script = if self.kind == WorkloadKind::Python {
                    PYDATA
                } else {
                    SQLITE
                };
                c.args(["-c", script, &self.size_mib.to_string()]);
                c.args(DATA_ROOTS);
            }
            WorkloadKind::Gcc | WorkloadKind::GccSmall => {
                let lib = self.zstd_lib.clone().unwrap_or_default();
                c = Command::new("gcc");
                c.args(["-O2", "-c", "-DZSTD_DISABLE_ASM", "-DZSTD_MULTITHREAD=0"]);
                c.arg(format!("-I{}", lib.display()));
                c.arg(format!("-I{}", lib.join("common").display()));
                c.arg(self.unity.clone().unwrap_or_default());
                c.arg("-o").arg(&files.object);
            }
        }
        c
    }

    /// Starts a run inside the cgroup `procs` (the child writes itself into
    /// cgroup.procs before exec, so none of its memory is charged elsewhere), in its own
    /// process group.
    pub fn spawn(&self, procs: &Path, files: &RunFiles) -> Result<Child, String> {
        use std::os::unix::process::CommandExt;
        let mut c = self.command(files);
        let out =
            File::create(&files.stdout).map_err(|e| format!("{}: {e}", files.stdout.display()))?;
        let err =
            File::create(&files.stderr).map_err(|e| format!("{}: {e}", files.stderr.display()))?;
        c.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        join_cgroup_on_exec(&mut c, procs)?;
        c.spawn()
            .map_err(|e| format!("starting the {} workload: {e}", self.kind.name()))
    }

    /// Whether the run passed its own check, and what it said.
    pub fn check(&self, status: ExitStatus, files: &RunFiles) -> (bool, String) {
        let out = std::fs::read_to_string(&files.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&files.stderr).unwrap_or_default();
        let tail = |s: &str| s.lines().last().unwrap_or("").trim().to_string();
        if self.kind.is_gcc() {
            if !status.success() {
                return (false, format!("gcc {status}: {}", tail(&err)));
            }
            let got = std::fs::read(&files.object).unwrap_or_default();
            match &self.reference {
                None => (
                    !got.is_empty(),
                    format!("object {} bytes (the reference)", got.len()),
                ),
                Some(r) => {
                    let want = std::fs::read(r).unwrap_or_default();
                    if !got.is_empty() && got == want {
                        (
                            true,
                            format!("object {} bytes, identical to the reference", got.len()),
                        )
                    } else {
                        (
                            false,
                            format!(
                                "object {} bytes DIFFERS from the reference ({} bytes)",
                                got.len(),
                                want.len()
                            ),
                        )
                    }
                }
            }
        } else {
            let line = tail(&out);
            let ok_json = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .is_some_and(|v| v["ok"] == true);
            let ok = status.success() && ok_json;
            let detail = if line.is_empty() {
                format!("{status}: {}", tail(&err))
            } else if !status.success() {
                format!("{status} after printing: {line}")
            } else {
                line
            };
            (ok, detail)
        }
    }
}
