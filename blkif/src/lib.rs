//! The Xen blkif ABI (`io/blkif.h`) and a blkif backend request processor.
//!
//! This crate will hold every request form of `io/blkif.h` (read, write,
//! barrier, flush, discard, indirect), the native, x86_32 and x86_64
//! layouts, the SCSI pass-through extra-request extension, and a backend
//! processor that validates ring requests and runs them on a
//! `tgtkit-scsi-core` `Backstore`.
