//! The Xen vscsiif ABI (`io/vscsiif.h`) and its mapping to engine commands.
//!
//! * [`wire`]: the raw layouts (identical in every ABI), checked against
//!   the real header by `tests/header_layout.rs`;
//! * [`request`]: typed requests (CDB, abort, reset; direct and SG-grant
//!   segments) and responses (result word, sense, residual);
//! * [`backend`]: the backend processor of one ring (one vhost), mapping
//!   virtual devices "host:channel:id:lun" to engine logical units: a CDB
//!   becomes an engine command whose data buffer is the granted pages,
//!   ABORT becomes ABORT TASK, RESET becomes LOGICAL UNIT RESET;
//! * [`devices`]: the virtual-device map of a vhost, shared with whoever
//!   hot-plugs devices while the ring runs.
//!
//! # Panic contract
//!
//! Decoding never panics; the backend never panics, hangs or touches memory
//! outside the granted pages on anything a frontend writes. Encoders panic
//! only on an output shorter than 252 bytes (caller misuse).
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod devices;
pub mod request;
pub mod wire;

pub use backend::{VscsiBackend, VscsiConfig};
pub use devices::{DeviceMap, DeviceTarget};
pub use request::{Action, DataDirection, HostByte, Request, Response, VirtualDevice};
