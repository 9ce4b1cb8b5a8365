//! A userspace Xen block backend (blkback) on tgtkit.
//!
//! Watches `backend/<type>` under this domain's xenstore path for every
//! `--backend-type` (default `qdisk`), and serves each device that appears
//! there (`<type>/<frontend domid>/<devid>`), several disks and domains at
//! once: negotiation as Linux's xen-blkback does it, rings mapped with
//! gntdev, kicks on evtchn, requests run by `tgtkit_blkif::BlkifBackend`
//! on a raw file, qcow2 or ram backstore named by the `params` node
//! ([`tgtkit_examples::xenback::blk`]). One device's fault only closes that
//! device.
//!
//! Runs until SIGINT or SIGTERM, then closes its devices (state 6) and
//! exits 0. Logs to stderr (`RUST_LOG`).

use clap::Parser;
use tgtkit_examples::xenback::{self, blk::Blkif, DaemonArgs};

#[derive(Parser, Debug)]
#[command(
    about = "Userspace Xen blkback: serves backend/<type>/<domid>/<devid> devices with tgtkit"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> std::process::ExitCode {
    xenback::main(Blkif, Args::parse().daemon, "qdisk")
}
