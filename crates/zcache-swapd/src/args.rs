//! `zcache swapd`'s command line (clap), shared by the `zcache` command.

use std::path::PathBuf;

use clap::Args;
use zcache::AllocatorKind;
use zcomp::Algorithm;

use crate::daemon::Options;

/// `zcache swapd`: serve a FUSE file whose 4 KiB blocks are zcache's frontswap slots,
/// so that a loop device over it can be the running kernel's swap.
#[derive(Debug, Args)]
pub struct SwapdArgs {
    /// Device size (bytes, or with K/M/G: 256M, 1G), a multiple of 4096, at least 40K.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256M")]
    pub size: u64,

    /// Compressor: lz4, deflate, lzo, zstd.
    #[arg(long, value_name = "NAME", value_parser = parse_compressor, default_value = "lz4")]
    pub compressor: Algorithm,

    /// Allocator for the swap pages: zsmalloc or zbud.
    #[arg(long, value_name = "NAME", value_parser = parse_allocator, default_value = "zsmalloc")]
    pub allocator: AllocatorKind,

    /// zcache's frame limit (4 KiB frames); beyond it pages go to the backing file
    /// (refused stores, and zcache's writeback of its least recently used pages).
    /// Default: no limit.
    #[arg(long, value_name = "FRAMES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_frames: Option<u64>,

    /// Backing file for the pages zcache cannot keep; created new (an existing file is
    /// refused) and removed at exit. Default: /var/tmp/zcache-swapd-PID.backing.
    #[arg(long, value_name = "PATH")]
    pub backing: Option<PathBuf>,

    /// Mount point (created if missing and then removed; an existing one must be an
    /// empty directory and is left). Default: $TMPDIR/zcache-swapd-PID.
    #[arg(long, value_name = "DIR")]
    pub mountpoint: Option<PathBuf>,

    /// Set the swap up too (root): losetup --direct-io=on --sector-size 4096 over the
    /// FUSE file, mkswap, swapon --discard=pages; undone (swapoff, losetup -d) before
    /// the unmount at exit.
    #[arg(long)]
    pub swapon: bool,

    /// swapon's priority (with --swapon).
    #[arg(
        long,
        value_name = "PRIO",
        requires = "swapon",
        allow_negative_numbers = true
    )]
    pub swap_priority: Option<i32>,

    /// FUSE request threads.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,

    /// Do not lock the daemon's memory (mlockall is the default: a swap daemon that is
    /// itself swapped out can deadlock).
    #[arg(long)]
    pub no_mlock: bool,
}

impl SwapdArgs {
    /// The daemon's options.
    pub fn options(&self) -> Options {
        Options {
            size: self.size,
            compressor: self.compressor,
            allocator: self.allocator,
            max_frames: self.max_frames.map(|f| f as usize),
            backing: self.backing.clone(),
            mountpoint: self.mountpoint.clone(),
            swapon: self.swapon,
            swap_priority: self.swap_priority,
            threads: self.threads as usize,
            mlock: !self.no_mlock,
            ..Options::new(self.size)
        }
    }
}

/// Parses a size: bytes, or a number with K, M, G (or KiB, MiB, GiB), powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: not a size"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("{s:?}: unknown unit (K, M, G)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))?;
    if !bytes.is_multiple_of(4096) || bytes < 40 << 10 {
        return Err(format!(
            "{s:?}: must be a multiple of 4096 bytes and at least 40K"
        ));
    }
    Ok(bytes)
}

fn parse_compressor(s: &str) -> Result<Algorithm, String> {
    let alg = Algorithm::from_name(s).map_err(|e| e.to_string())?;
    if alg.is_available() {
        Ok(alg)
    } else {
        Err(format!("compressor {s:?} is not available in this build"))
    }
}

fn parse_allocator(s: &str) -> Result<AllocatorKind, String> {
    AllocatorKind::from_name(s).map_err(|e| e.to_string())
}

/// Runs `zcache swapd` until SIGINT or SIGTERM and prints the final statistics as JSON
/// on stdout. Call it from the program's main thread before any other thread starts
/// (see [`crate::daemon::run`]).
pub fn run(args: &SwapdArgs) -> Result<(), crate::daemon::SwapdError> {
    let stats = crate::daemon::run(&args.options())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&stats).unwrap_or_default()
    );
    Ok(())
}

/// [`run`] as a process: exit code 2 for a refusal (bad options, not root, a facility
/// missing), 1 for a failure.
pub fn main(args: &SwapdArgs) -> std::process::ExitCode {
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zcache swapd: {e}");
            std::process::ExitCode::from(if e.is_refusal() { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("40960"), Ok(40960));
        assert!(parse_size("4097").is_err());
        assert!(parse_size("4K").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
    }
}
