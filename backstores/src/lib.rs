//! Backstores for tgtkit logical units.
//!
//! Implementations of [`Backstore`](tgtkit_scsi_core::backstore::Backstore):
//!
//! * [`ram::RamBackstore`]: sparse and concurrent, in memory;
//! * [`file::FileBackstore`]: a regular file or a block device, with
//!   positioned vectored I/O on a [`pool::BlockingPool`] the backstore owns,
//!   or on an io_uring ring behind the cargo feature `io-uring`;
//! * `qcow2::Qcow2Backstore` (cargo feature `qcow2`): qcow2 images with
//!   backing chains, on imago.
//!
//! Atomic writes (WRITE ATOMIC (16)): the ram and file backstores offer
//! them up to [`ATOMIC_MAX_BYTES`] (see each one's `atomic_limits` for what
//! they promise against a crash); qcow2 offers none, because one guest
//! write can span clusters whose allocation and mapping updates are
//! separate writes, so an error or a crash between them would leave part of
//! the range written.
//!
//! The ram and file backstores move data straight between the medium and the transport's
//! [`DataBuffer`](tgtkit_scsi_core::buffer::DataBuffer): no per-command copy.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod file;
pub mod pool;
#[cfg(feature = "qcow2")]
pub mod qcow2;
pub mod ram;
mod sys;
#[cfg(feature = "io-uring")]
mod uring;

/// The largest atomic write the ram and file backstores offer: 1 MiB (the
/// engine also keeps it within MAXIMUM TRANSFER LENGTH).
pub const ATOMIC_MAX_BYTES: u64 = 1 << 20;

pub use error::ConfigError;
pub use file::{FileBackstore, FileOptions, IoEngine};
pub use ram::{RamBackstore, RamOptions};
