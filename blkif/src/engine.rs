//! The extra request's SCSI pass-through over the `tgtkit-scsi-core` engine.
//!
//! Waiting for the engine API to land on main; until then there is no
//! engine-backed [`ScsiPassThrough`](crate::passthrough::ScsiPassThrough).
