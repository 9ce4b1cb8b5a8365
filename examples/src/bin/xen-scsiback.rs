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
use tgtkit_examples::xenback::{self, scsi::Vscsi};

#[derive(Parser, Debug)]
#[command(
    about = "Userspace Xen scsiback: serves backend/vscsi/<domid>/<devid> vhosts with tgtkit"
)]
struct Args {
    /// Backend type to serve (the directory under `backend/`); repeatable.
    #[arg(long = "backend-type", value_name = "TYPE")]
    backend_types: Vec<String>,
    /// Serve only frontends of this domain; repeatable (default: all).
    #[arg(long = "domid", value_name = "N")]
    domids: Vec<u32>,
    /// File I/O engine: "io-uring" (falls back to the thread pool where the
    /// kernel has no io_uring) or "threads" (a blocking thread pool).
    #[arg(long, default_value = "threads", value_parser = ["threads", "io-uring"])]
    io_engine: String,
}

fn main() -> std::process::ExitCode {
    xenback::init_logging();
    let mut args = Args::parse();
    if args.backend_types.is_empty() {
        args.backend_types.push("vscsi".into());
    }
    match xenback::serve(
        Vscsi::new().with_io_uring(args.io_engine == "io-uring"),
        args.backend_types,
        args.domids,
    ) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xen-scsiback: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
