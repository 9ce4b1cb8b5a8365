//! Runnable tgtkit targets.
//!
//! The binaries in `src/bin/` (the iSCSI target, the TCMU handler, the Xen
//! blkback and scsiback backends, and the two embedding examples
//! `null-transport` and `closure-backstore`) are composed only from the
//! library crates; this library holds what they share, such as parsing
//! `--lun` specs, the null transport's framing, and the xenstore side of
//! the Xen backends ([`xenback`]).
pub mod logging;
pub mod lunspec;
pub mod null_proto;
pub mod srp_loop;
pub mod xenback;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
