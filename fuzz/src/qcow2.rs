//! qcow2 target: arbitrary bytes opened and read (and written) as a qcow2
//! image, in memory, through tgtkit's qcow2 backstore on imago.
//!
//! The outcome must be an error or data: never a panic (a panic inside
//! imago surfaces as the backstore's "pool is gone" error, which this body
//! turns back into a panic so the fuzzer sees it), never a hang, and never
//! an allocation beyond the caps: the header check refuses L1 tables over
//! 32 MiB and refcount tables over 8 MiB, and the in-memory image may not
//! grow past the input plus [`WRITE_ROOM`].

use std::sync::OnceLock;

use futures::executor::block_on;
use tgtkit_backstores::pool::BlockingPool;
use tgtkit_backstores::qcow2::{Qcow2Backstore, Qcow2Error, Qcow2Options};
use tgtkit_scsi_core::backstore::{Backstore, IoError, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

/// Largest input considered (bigger inputs are ignored).
pub const MAX_INPUT: usize = 4 << 20;
/// How far writes may grow the in-memory image.
pub const WRITE_ROOM: u64 = 8 << 20;
/// Longest read issued.
const MAX_READ: u64 = 64 << 10;

fn pool() -> BlockingPool {
    static POOL: OnceLock<BlockingPool> = OnceLock::new();
    POOL.get_or_init(|| BlockingPool::new("fuzz-qcow2", 1))
        .clone()
}

fn opts(read_only: bool) -> Qcow2Options {
    Qcow2Options {
        read_only,
        pool: Some(pool()),
        ..Qcow2Options::default()
    }
}

/// A panic inside imago kills the pool job; the backstore reports it as
/// an error. The fuzzer must see it as the crash it is.
fn check_open(r: &Result<Qcow2Backstore, Qcow2Error>) {
    if let Err(Qcow2Error::PoolGone) = r {
        panic!("qcow2 open panicked inside the pool");
    }
}

fn check_io<T>(r: &Result<T, IoError>) {
    if let Err(IoError::Read(e) | IoError::Write(e)) = r {
        assert!(
            !e.to_string().contains("pool is gone"),
            "qcow2 request panicked inside the pool"
        );
    }
}

/// Offsets to probe: start, middle, end, and one picked by the input.
fn probes(size: u64, data: &[u8]) -> Vec<(u64, u64)> {
    let len = size.min(MAX_READ);
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let span = size - len;
    let mut v = vec![0, span / 2 / 512 * 512, span];
    if span > 0 {
        v.push(h % span / 512 * 512);
    }
    v.into_iter().map(|o| (o, len)).collect()
}

async fn exercise(bs: &Qcow2Backstore, data: &[u8], write: bool) {
    let size = bs.geometry().size;
    if size == 0 {
        return;
    }
    for (off, len) in probes(size, data) {
        let buf = DataBuffer::zeroed(usize::try_from(len).unwrap_or(0));
        check_io(&bs.read(off, buf).await);
        check_io(&bs.allocation(off, len).await);
        if write {
            let w = len.min(4096);
            check_io(
                &bs.write(
                    off,
                    DataBuffer::from_vec(vec![0xa5; w as usize]),
                    WriteFlags::empty(),
                )
                .await,
            );
            check_io(&bs.write_zeroes(off, w, off % 1024 == 0).await);
            check_io(&bs.discard(off, len).await);
        }
    }
    if write {
        check_io(&bs.flush().await);
    }
}

/// Open `data` as a qcow2 image read-only and read it, then read-write and
/// write to it.
pub fn qcow2_open(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    block_on(async {
        let cap = data.len() as u64;
        let r = Qcow2Backstore::open_in_memory(data.to_vec(), cap, opts(true)).await;
        check_open(&r);
        if let Ok(bs) = r {
            exercise(&bs, data, false).await;
        }
        let r = Qcow2Backstore::open_in_memory(data.to_vec(), cap + WRITE_ROOM, opts(false)).await;
        check_open(&r);
        if let Ok(bs) = r {
            exercise(&bs, data, true).await;
        }
    });
}
