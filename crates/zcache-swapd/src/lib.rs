//! `zcache swapd`: zcache as the swap device of the running Linux.
//!
//! A FUSE file whose 4 KiB blocks are frontswap slots of a [`zcache::Zcache`]; a loop
//! device over it (`losetup --direct-io=on`) is a swap area, so the kernel's swap-outs
//! are zcache stores and its swap-ins zcache loads. Pages zcache cannot keep (a refused
//! store, or one written back under pressure) go to a backing file on disk, so the
//! device never loses a page.
//!
//! * [`device`]: the block request handler, independent of FUSE (read, write, discard;
//!   the backing file and its per-slot bitmap; zcache's [`zcache::Writeback`] with the
//!   claim protocol);
//! * [`fs`]: the FUSE file system (`swap` and `stats` files) over the handler;
//! * [`daemon`]: mount, optional swapon, signals, mlockall, cleanup on every exit path;
//! * [`args`]: the `zcache swapd` command line.
//!
//! How to run it and what it guarantees: docs/kernel-integration.md.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod args;
pub mod daemon;
pub mod device;
pub mod fs;

pub use args::SwapdArgs;
pub use daemon::{Daemon, Options, SwapdError};
pub use device::{BLOCK_SIZE, Device, DeviceConfig, DeviceError, Residency};
