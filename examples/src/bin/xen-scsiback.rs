//! A userspace Xen SCSI backend (scsiback) on tgtkit.
//!
//! Watches `backend/vscsi` (or each `--backend-type`) under this domain's
//! xenstore path and serves every vhost that appears there
//! (`vscsi/<frontend domid>/<devid>`): the vscsiif ring mapped with gntdev,
//! kicks on evtchn, each `vscsi-devs/dev-N` (`p-dev` a tgtkit LUN spec such
//! as `file:/srv/disk.img`, `v-dev` "host:channel:target:lun") a logical
//! unit of one engine target, requests run by `tgtkit_vscsiif::VscsiBackend`
//! with SG-grant segments, abort and reset; LUN hot-plug through the
//! xenbus Reconfiguring round ([`tgtkit_examples::xenback::scsi`]).
//!
//! Runs until SIGINT or SIGTERM, then closes its vhosts (state 6) and
//! exits 0. Logs to stderr (`RUST_LOG`).

use clap::Parser;
use tgtkit_examples::xenback::{self, scsi::Vscsi, DaemonArgs};

#[derive(Parser, Debug)]
#[command(
    about = "Userspace Xen scsiback: serves backend/vscsi/<domid>/<devid> vhosts with tgtkit"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> std::process::ExitCode {
    xenback::main(Vscsi::new(), Args::parse().daemon, "vscsi")
}
