//! xenstore: the wire codec ([`wire`]) and a client ([`Xenstore`]) over
//! `/dev/xen/xenbus` or xenstored's unix socket.
//!
//! ```no_run
//! use tgtkit_xen::xenstore::Xenstore;
//!
//! let (xs, events) = Xenstore::open()?;
//! xs.watch("/local/domain/0/backend/qdisk", "qdisk")?;
//! let ev = events.recv().unwrap(); // fires once at registration
//! for dom in xs.directory(&ev.path).unwrap_or_default() {
//!     println!("frontend domain {dom}");
//! }
//! # Ok::<(), tgtkit_xen::xenstore::XsError>(())
//! ```

mod client;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod wire;

pub use client::{Transaction, Xenstore, XsError, XENBUS_DEV, XENSTORED_SOCKET};
pub use wire::{WatchEvent, XsErrno};

#[cfg(test)]
mod tests;
