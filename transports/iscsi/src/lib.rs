//! An RFC 7143 iSCSI target transport for the tgtkit SCSI engine.
//!
//! * [`pdu`], [`text`], [`digest`]: the sans-I/O wire codec (BHS, AHS,
//!   data segments, CRC32C digests, key=value text).
//! * [`login`], [`chap`], [`params`]: the login phase as a sans-I/O state
//!   machine (security negotiation with CHAP, operational negotiation).
//!
//! * [`server`]: [`server::IscsiServer`], which runs each
//!   connection from login through the full feature phase against the
//!   `tgtkit-scsi-core` engine, with a session table for reinstatement.
//!
//! The library is runtime-agnostic: connections run over any
//! `futures::io::AsyncRead + AsyncWrite`.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod chap;
pub mod config;
mod connection;
pub mod digest;
pub mod login;
pub mod params;
pub mod pdu;
pub mod server;
pub mod text;

pub use config::{Acl, AuthConfig, Portal, PortalConfig, PortalGroup, TargetNode};
pub use params::TargetLimits;
pub use server::{ConnectionError, IscsiServer, ServerError, Sleeper};
