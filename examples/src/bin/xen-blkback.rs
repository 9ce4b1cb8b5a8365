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
use tgtkit_examples::xenback::{self, blk::Blkif};

#[derive(Parser, Debug)]
#[command(
    about = "Userspace Xen blkback: serves backend/<type>/<domid>/<devid> devices with tgtkit"
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
        args.backend_types.push("qdisk".into());
    }
    match xenback::serve(
        Blkif {
            io_uring: args.io_engine == "io-uring",
        },
        args.backend_types,
        args.domids,
    ) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xen-blkback: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
