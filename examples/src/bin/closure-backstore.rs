//! `closure-backstore`: a logical unit whose reads and writes are two
//! closures.
//!
//! [`FnBackstore`] adapts any pair of `Fn(offset, &DataBuffer)` closures
//! to the [`Backstore`] trait, so a medium that is "some code" (a
//! generator, a key-value store, a test double) needs no trait impl. The
//! medium here is a synthetic disk: a block never written reads as its own
//! block number in every byte (mod 256); written blocks live in a map the
//! write closure fills.
//!
//! ```sh
//! # drive the LUN through the engine in-process and print what it saw
//! closure-backstore
//! # or serve it over the null transport, for `null-transport --client`
//! closure-backstore --serve /tmp/closure.sock
//! ```
//!
//! The in-process run prints one line per check (`read lba 5: pattern ok`,
//! `write+read lba 5: ok`, `read past the end: ...`) and exits non-zero if
//! any check fails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use clap::Parser;
use tgtkit_scsi_core::backstore::{
    Backstore, Capabilities, Geometry, IoError, IoResult, WriteFlags,
};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    Command, LuConfig, NexusInfo, RawCdb, Response, Target, TargetConfig, TaskAttribute,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;

/// A [`Backstore`] whose reads and writes call `R` and `W` with the byte
/// offset and the transport's buffer (read into it, or write from it, in
/// place through [`DataBuffer::write_at`]/[`DataBuffer::read_at`]).
///
/// The engine only calls them with block-aligned ranges inside the
/// geometry. They run on the executor thread, inline: they must not block
/// for long (a closure over blocking I/O belongs behind a thread pool).
struct FnBackstore<R, W> {
    geometry: Geometry,
    read: R,
    write: W,
}

#[async_trait]
impl<R, W> Backstore for FnBackstore<R, W>
where
    R: Fn(u64, &DataBuffer) -> IoResult<()> + Send + Sync + 'static,
    W: Fn(u64, &DataBuffer) -> IoResult<()> + Send + Sync + 'static,
{
    fn geometry(&self) -> Geometry {
        self.geometry
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::empty()
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        (self.read)(offset, &buf)
    }
    async fn write(&self, offset: u64, buf: DataBuffer, _: WriteFlags) -> IoResult<()> {
        (self.write)(offset, &buf)
    }
    async fn flush(&self) -> IoResult<()> {
        Ok(())
    }
    // The closures complete inline, so they also serve the fast path: no
    // future is boxed for a READ or WRITE.
    fn read_nowait(&self, offset: u64, buf: &DataBuffer) -> Option<IoResult<()>> {
        Some((self.read)(offset, buf))
    }
    fn write_nowait(&self, offset: u64, buf: &DataBuffer, _: WriteFlags) -> Option<IoResult<()>> {
        Some((self.write)(offset, buf))
    }
}

const BLOCK: u32 = 512;

/// The synthetic disk: `blocks` blocks, unwritten ones reading as their
/// block number.
fn synthetic_disk(blocks: u64) -> Arc<dyn Backstore> {
    let written: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
    let bs = u64::from(BLOCK);
    let overlay = Arc::clone(&written);
    let read = move |offset: u64, buf: &DataBuffer| {
        let map = overlay.lock().map_err(|_| IoError::Unsupported)?;
        for (i, at) in (0..buf.len()).step_by(BLOCK as usize).enumerate() {
            let lba = offset / bs + i as u64;
            match map.get(&lba) {
                Some(data) => buf.write_at(at, data),
                None => buf.fill(at, BLOCK as usize, lba.to_le_bytes()[0]),
            };
        }
        Ok(())
    };
    let write = move |offset: u64, buf: &DataBuffer| {
        let mut map = written.lock().map_err(|_| IoError::Unsupported)?;
        for (i, at) in (0..buf.len()).step_by(BLOCK as usize).enumerate() {
            let mut block = vec![0u8; BLOCK as usize];
            buf.read_at(at, &mut block);
            map.insert(offset / bs + i as u64, block);
        }
        Ok(())
    };
    Arc::new(FnBackstore {
        geometry: Geometry::new(blocks * bs, BLOCK),
        read,
        write,
    })
}

/// A logical unit whose reads and writes are closures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Blocks of 512 bytes on the synthetic disk.
    #[arg(long, default_value_t = 2048)]
    blocks: u64,
    /// Serve the disk as LUN 0 over the null transport on this socket
    /// instead of exercising it in-process.
    #[arg(long, value_name = "PATH")]
    serve: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let target = Target::new(TargetConfig::default());
    if let Err(e) = target.add_lun(0, LuConfig::new(synthetic_disk(args.blocks))) {
        eprintln!("closure-backstore: {e}");
        return ExitCode::FAILURE;
    }
    let result = match &args.serve {
        Some(path) => serve(&target, path),
        None => exercise(&target, args.blocks),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("closure-backstore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(target: &Arc<Target>, path: &std::path::Path) -> Result<(), String> {
    let listener = tgtkit_examples::null_proto::bind_unix(path)
        .map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    println!("closure-backstore: listening on {}", path.display());
    tgtkit_examples::null_proto::serve_unix(target, &listener).map_err(|e| e.to_string())
}

/// READ and WRITE through the engine, as a transport would send them.
fn exercise(target: &Target, blocks: u64) -> Result<(), String> {
    let nexus = target.add_nexus(NexusInfo::default());
    let mut tag = 0;
    let mut run = |cdb: &[u8], data: DataBuffer| -> Response {
        tag += 1;
        futures::executor::block_on(target.execute(Command {
            nexus,
            lun: Lun::from_index(0).unwrap_or_default(),
            tag,
            attribute: TaskAttribute::Simple,
            cdb: RawCdb::new(cdb).unwrap_or_default(),
            data,
        }))
    };
    let rw10 = |op: u8, lba: u32| {
        let mut cdb = [op, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb
    };
    // A new nexus starts with a unit attention (POWER ON OCCURRED).
    let first = run(&[0; 6], DataBuffer::empty());
    println!("first command: status {:?} (unit attention)", first.status);
    let mut failed = first.status != Status::CHECK_CONDITION;

    let buf = DataBuffer::zeroed(BLOCK as usize);
    let r = run(&rw10(0x28, 5), buf.clone());
    let pattern_ok = r.status == Status::GOOD && buf.to_vec().iter().all(|&b| b == 5);
    println!(
        "read lba 5: {}",
        if pattern_ok { "pattern ok" } else { "WRONG" }
    );
    failed |= !pattern_ok;

    let data: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
    let w = run(&rw10(0x2a, 5), DataBuffer::from_vec(data.clone()));
    let back = DataBuffer::zeroed(BLOCK as usize);
    let r = run(&rw10(0x28, 5), back.clone());
    let rw_ok = w.status == Status::GOOD && r.status == Status::GOOD && back.to_vec() == data;
    println!("write+read lba 5: {}", if rw_ok { "ok" } else { "WRONG" });
    failed |= !rw_ok;

    // The engine checks the range before the closures are called.
    let past = u32::try_from(blocks).map_err(|_| "too many blocks")?;
    let r = run(&rw10(0x28, past), DataBuffer::zeroed(BLOCK as usize));
    let sense = r.sense_data();
    let range_ok = r.status == Status::CHECK_CONDITION
        && sense.is_some_and(|s| s.asc == tgtkit_scsi_core::sense::Asc::LBA_OUT_OF_RANGE);
    println!(
        "read past the end: {:?} {:?}",
        r.status,
        sense.map(|s| (s.key, s.asc))
    );
    failed |= !range_ok;
    if failed {
        Err("a check failed".into())
    } else {
        Ok(())
    }
}
