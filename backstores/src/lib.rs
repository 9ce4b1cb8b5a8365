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

pub use error::ConfigError;
pub use file::{FileBackstore, FileOptions, IoEngine};
pub use ram::{RamBackstore, RamOptions};
