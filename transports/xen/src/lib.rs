//! The Xen transport of tgtkit, in pure Rust.
//!
//! * [`xenstore`]: the xenstore wire protocol (`io/xs_wire.h`) as a
//!   sans-I/O codec, and a client over `/dev/xen/xenbus` (or xenstored's
//!   socket) that demultiplexes watch events from replies;
//! * [`xenbus`]: the `XenbusState` values and a sans-I/O backend state
//!   machine (frontend moves in, actions out);
//! * [`gntdev`]: `/dev/xen/gntdev` (batched grant maps, grant copy) and a
//!   [`GrantAccess`](tgtkit_xen_ring::grant::GrantAccess) over it, so the
//!   blkif and vscsiif backends run on real grants;
//! * [`evtchn`]: `/dev/xen/evtchn` interdomain ports and an
//!   [`EventChannel`](tgtkit_xen_ring::event::EventChannel) over them.
//!
//! The Rust Xen crates that exist are GPL-licensed or wrap the C
//! libraries (libxenstore, libxengnttab, libxenevtchn); this crate is
//! written by hand against the public headers (Xen's `io/xs_wire.h` and
//! Linux's `xen/{gntdev,evtchn}.h` UAPI), MIT OR Apache-2.0, and talks to
//! the kernel devices directly through `rustix`. Its layouts and ioctl
//! numbers are checked against those headers by `tests/header_layout.rs`.
//!
//! # Shared memory
//!
//! Mapped grant pages are written by the guest at any time: they are
//! never turned into Rust references. They are handed out as raw
//! pointers in a [`GrantMapping`](tgtkit_xen_ring::grant::GrantMapping) or
//! a [`RingMemory`](tgtkit_xen_ring::RingMemory) and touched through
//! volatile accessors only.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod evtchn;
pub mod gntdev;
mod ioctl;
pub mod xenbus;
pub mod xenstore;
