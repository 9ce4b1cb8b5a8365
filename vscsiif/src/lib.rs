//! The Xen vscsiif ABI (`io/vscsiif.h`) and its mapping to engine commands.
//!
//! This crate will hold vscsiif requests and responses (CDB, abort, reset,
//! SG-grant indirect segments, sense and result words) and a backend
//! processor that turns them into `tgtkit-scsi-core` engine commands.
