//! Backstores for tgtkit logical units.
//!
//! This crate will hold the implementations of
//! `tgtkit_scsi_core::backstore::Backstore`: a sparse concurrent `ram`
//! backstore, a raw `file` backstore (regular files and block devices, on a
//! thread pool it owns or io_uring behind a feature), and `qcow2` images
//! with backing chains.

pub mod pool;
#[cfg(feature = "qcow2")]
pub mod qcow2;
