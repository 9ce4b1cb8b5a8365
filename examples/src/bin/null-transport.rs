//! `null-transport`: the tgtkit engine over a Unix socket, with the
//! simplest framing that carries SCSI (see `tgtkit_examples::null_proto`
//! for the wire format: length-prefixed requests of LUN, CDB and data-out,
//! responses of status, sense and data-in).
//!
//! It is the transport of the `tgtkit_scsi_core::guide` as a program: each
//! connection is one I_T nexus, served on its own thread under
//! `futures::executor::block_on`, with no async runtime.
//!
//! ```sh
//! # serve a 64 MiB ram disk as LUN 0 (the default) on $XDG_RUNTIME_DIR/tgtkit-null.sock
//! null-transport --lun ram:64M
//! # in another shell: INQUIRY, READ CAPACITY, WRITE and READ back through it
//! null-transport --client
//! ```
//!
//! `--socket PATH` picks the socket (default `$XDG_RUNTIME_DIR/tgtkit-null.sock`,
//! or `/tmp/tgtkit-null.sock`); `--lun SPEC` (repeatable) takes `ram:SIZE`,
//! `file:PATH` or `qcow2:PATH` as `iscsi-target` does. The server prints
//! `null-transport: listening on PATH` once it accepts connections.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tgtkit_examples::lunspec::LunSpec;
use tgtkit_examples::null_proto::{self, Client};
use tgtkit_scsi_core::engine::{Target, TargetConfig};
use tgtkit_scsi_core::status::Status;

/// Serve tgtkit logical units over a Unix socket (or, with --client, test one).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The socket path.
    #[arg(long, value_name = "PATH", default_value_os_t = null_proto::default_socket())]
    socket: PathBuf,
    /// A logical unit, in LUN order from 0: ram:SIZE, file:PATH or
    /// qcow2:PATH, with ",ro" for read-only (repeatable). Default: ram:64M.
    #[arg(long = "lun", value_name = "SPEC")]
    luns: Vec<LunSpec>,
    /// Connect to a running server and check LUN 0: INQUIRY, READ CAPACITY
    /// (10), WRITE (10) of a pattern to the last 8 blocks, READ (10) back.
    #[arg(long)]
    client: bool,
}

fn main() -> ExitCode {
    tgtkit_examples::logging::init("warn");
    let args = Args::parse();
    let result = if args.client {
        client(&args)
    } else {
        server(args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("null-transport: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server(mut args: Args) -> Result<(), String> {
    if args.luns.is_empty() {
        args.luns.push(LunSpec::ram(64 << 20));
    }
    let target = Target::new(TargetConfig::default());
    for (i, spec) in args.luns.iter().enumerate() {
        let index = u16::try_from(i).map_err(|_| "too many LUNs".to_string())?;
        let lu = spec.lu_config(spec.open(false)?);
        target
            .add_lun(index, lu)
            .map_err(|e| format!("LUN {i} ({spec}): {e}"))?;
    }
    let listener = null_proto::bind_unix(&args.socket)
        .map_err(|e| format!("cannot bind {}: {e}", args.socket.display()))?;
    println!("null-transport: listening on {}", args.socket.display());
    null_proto::serve_unix(&target, &listener).map_err(|e| format!("accept: {e}"))
}

fn client(args: &Args) -> Result<(), String> {
    let stream = UnixStream::connect(&args.socket)
        .map_err(|e| format!("cannot connect to {}: {e}", args.socket.display()))?;
    let mut c = Client::new(stream);
    let io = |e: std::io::Error| e.to_string();
    c.wait_ready(0).map_err(io)?;
    let check = |what: &str, r: &null_proto::Reply| {
        if r.status == Status::GOOD {
            Ok(())
        } else {
            Err(format!(
                "{what}: status {:?}, sense {:?}",
                r.status,
                r.sense_code()
            ))
        }
    };

    let inq = c.command(0, &[0x12, 0, 0, 0, 36, 0], 36, &[]).map_err(io)?;
    check("INQUIRY", &inq)?;
    if inq.data.len() < 36 {
        return Err(format!("INQUIRY returned {} bytes", inq.data.len()));
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_owned();
    println!(
        "inquiry: vendor={} product={} revision={}",
        text(&inq.data[8..16]),
        text(&inq.data[16..32]),
        text(&inq.data[32..36])
    );

    let cap = c
        .command(0, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8, &[])
        .map_err(io)?;
    check("READ CAPACITY (10)", &cap)?;
    if cap.data.len() < 8 {
        return Err(format!(
            "READ CAPACITY (10) returned {} bytes",
            cap.data.len()
        ));
    }
    let word = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (last, bs) = (word(&cap.data[0..4]), word(&cap.data[4..8]));
    println!("capacity: blocks={} block_size={bs}", u64::from(last) + 1);

    // 8 blocks at the end of the medium, a pattern that differs per block.
    let blocks = 8u16;
    let lba = last
        .checked_sub(u32::from(blocks) - 1)
        .ok_or("medium too small")?;
    let bs = usize::try_from(bs)
        .ok()
        .filter(|bs| (512..=65536).contains(bs))
        .ok_or(format!("unusable block size {bs}"))?;
    let len = usize::from(blocks) * bs;
    let pattern: Vec<u8> = (0..len)
        .map(|i| ((i / bs) ^ i.wrapping_mul(31)).to_le_bytes()[0])
        .collect();
    let mut cdb = [0x2a, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    check("WRITE (10)", &c.command(0, &cdb, 0, &pattern).map_err(io)?)?;
    cdb[0] = 0x28;
    let read = c
        .command(0, &cdb, u32::try_from(len).map_err(|_| "too long")?, &[])
        .map_err(io)?;
    check("READ (10)", &read)?;
    if read.data != pattern {
        return Err(format!(
            "READ (10) at LBA {lba} returned other data than written"
        ));
    }
    println!("write+read: {len} bytes at lba {lba} verified");
    Ok(())
}
