//! The Xen blkif ABI (`io/blkif.h`) and a blkif backend request processor.
//!
//! * [`wire`]: the raw layouts, per ABI (x86_32, x86_64; native is x86_64
//!   on every 64-bit host), checked against the real header by
//!   `tests/header_layout.rs`;
//! * [`request`]: typed requests and responses, decoded and encoded;
//! * [`grant`]: the [`GrantAccess`] trait through which
//!   the backend maps the frontend's pages, and the persistent-grant cache;
//! * [`backend`]: the request processor for one ring;
//! * [`passthrough`] and [`engine`]: the SCSI pass-through extra request,
//!   routed through the `tgtkit-scsi-core` engine.
//!
//! # Panic contract
//!
//! Decoding never panics on any slot contents; the backend never panics,
//! hangs or touches memory outside the granted pages on anything a
//! frontend writes (the hostile-frontend suite in `tests/hostile.rs`).
//! Encoders panic only on an output buffer shorter than the ABI's struct
//! size, which is caller misuse.
//!
//! # The extra request (SCSI pass-through), `feature-extra-request`
//!
//! This extension lives only in a proposal on xen-devel, so its layout is
//! written down here; tgtkit implements exactly this. The backend
//! advertises `feature-extra-request = 1`; a frontend that sees it may set
//! `BLKIF_OP_EXTRA_FLAG` (`0x80`) on a `BLKIF_OP_READ` or `BLKIF_OP_WRITE`
//! request. The request's slot keeps its usual layout, its `seg[]` and
//! `nr_segments` describe the data buffer (`sector_number` is ignored),
//! and **the next ring slot** is an extra request, published in the same
//! `req_prod` update:
//!
//! ```text
//! offset size field          meaning
//!   0     1   type           1 = BLKIF_EXTRA_TYPE_SCSI_CMD
//!   1     1   flags          reserved, 0
//!   2     2   cmd_len        CDB length, 1..=32
//!   4     4   cmd_gref       grant of a page holding the CDB at offset 0
//!   8     2   nr_segments    must equal the request's nr_segments
//!  10     2   last_seg_len   bytes of the last segment used, 1..=its size
//!  12     4   sense_gref     grant of a writable page for sense data
//!  16     1   data_dir       0 none, 1 to device (data-out), 2 from device
//!  17     3   reserved       0
//! ```
//!
//! The transfer length is the sum of the segments' sector ranges, with the
//! last segment cut to `last_seg_len` bytes. The backend answers with two
//! response slots: the ordinary response (operation with the flag,
//! `BLKIF_RSP_OKAY` when the command was executed, whatever its SCSI
//! status; `BLKIF_RSP_ERROR` when it could not be, e.g. a refused grant or
//! a malformed extra slot; `BLKIF_RSP_EOPNOTSUPP` when no SCSI logical unit
//! is attached), then an extra response slot:
//!
//! ```text
//! offset size field          meaning
//!   0     1   type           1 = BLKIF_EXTRA_TYPE_SCSI_CMD
//!   1     1   status         SCSI status byte
//!   2     2   sense_len      sense bytes written at offset 0 of sense_gref (<= 252)
//!   4     4   residual       expected minus transferred bytes
//! ```
//!
//! All fields little-endian, the same in every ABI; see
//! [`wire::RawExtraRequest`] and [`wire::RawExtraResponse`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod engine;
pub mod passthrough;
pub mod request;
pub mod wire;

/// The grant layer (re-exported from `tgtkit-xen-ring`).
pub use tgtkit_xen_ring::grant;
/// Test doubles (re-exported from `tgtkit-xen-ring`, feature `test-utils`).
#[cfg(feature = "test-utils")]
pub use tgtkit_xen_ring::testing;

pub use backend::{BackendConfig, BlkifBackend, Shutdown};
pub use grant::{GrantAccess, GrantError, GrantMapping, GrantRef};
pub use request::{Abi, Operation, Request, Response, Status};
pub use tgtkit_xen_ring::event::EventChannel;
