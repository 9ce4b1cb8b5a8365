//! tgtkit's SCSI target engine.
//!
//! This crate turns SCSI commands into answers. It holds:
//!
//! * [`cdb`]: typed CDB decoding and encoding for every supported command;
//! * [`sense`], [`status`], [`lun`]: the wire vocabulary;
//! * [`table`]: the one command table that drives parsing, dispatch and
//!   REPORT SUPPORTED OPERATION CODES;
//! * [`engine`]: the [`Target`](engine::Target), its logical units, I_T
//!   nexuses, unit attentions and task sets;
//! * [`pr`]: persistent reservations, TransportIDs and the APTPL store;
//! * `spc`, `sbc` and `mmc` (internal) and [`ssc`]: the primary command
//!   set, and the block (disk), multimedia (CD/DVD) and stream (tape)
//!   device models, chosen per logical unit by its [`device::DeviceType`]
//!   (`ssc` is public for its tape image format);
//! * [`backstore`] and [`buffer`]: the async storage trait under a logical
//!   unit and the transport-owned data buffers it reads and writes in place.
//!
//! It does no OS I/O of its own: it drives [`Backstore`](backstore::Backstore)
//! futures and is runtime-agnostic.
//!
//! To embed it, start with the [`guide`]: a new transport and a new
//! backstore, each a complete page of code run as a doc test, and what the
//! engine does for each of them.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alua;
pub mod backstore;
pub mod buffer;
pub mod cdb;
pub mod device;
pub mod engine;
pub mod guide;
pub mod lun;
pub(crate) mod mmc;
pub mod pr;
pub(crate) mod sbc;
pub mod sense;
pub(crate) mod spc;
pub mod ssc;
pub mod status;
pub mod table;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
