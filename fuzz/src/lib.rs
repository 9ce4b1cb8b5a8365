//! Fuzz target bodies for tgtkit's wire formats.
//!
//! Each function here is one fuzz target's body: it must never panic on any
//! input. The binaries in `fuzz_targets/` wrap them for cargo-fuzz
//! (`cargo fuzz run <target> --features libfuzzer`), and `tests/replay.rs`
//! runs every file of `corpus/<target>/` through them on the stable
//! toolchain, so each corpus is a regression suite for `cargo test`.

pub mod iscsi;
pub mod pr;
pub mod qcow2;
pub mod scsi;
pub mod srp;
pub mod tcmu;
pub mod xen;
