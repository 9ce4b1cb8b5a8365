//! Helpers shared by the backstore tests: scattered buffers, an in-memory
//! model, and checks that any `Backstore` must pass.
#![allow(dead_code, clippy::cast_possible_truncation)]

use std::sync::Arc;

use tgtkit_scsi_core::backstore::{AllocationState, Backstore, Capabilities, IoError, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

/// A buffer of `len` bytes split into segments of the given sizes (the last
/// one takes the rest), each in its own allocation, at an odd address
/// offset when `misalign` so nothing is aligned.
pub fn scattered(len: usize, cuts: &[usize], misalign: bool) -> DataBuffer {
    let mut sizes = Vec::new();
    let mut left = len;
    for &c in cuts {
        if left == 0 {
            break;
        }
        let c = c.clamp(1, left);
        sizes.push(c);
        left -= c;
    }
    if left > 0 {
        sizes.push(left);
    }
    let pad = usize::from(misalign);
    let mut mem: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n + pad]).collect();
    let segs: Vec<(*mut u8, usize)> = mem
        .iter_mut()
        .zip(&sizes)
        // SAFETY: `pad` is 0 or 1 and each vector has `n + pad` bytes.
        .map(|(v, &n)| (unsafe { v.as_mut_ptr().add(pad) }, n))
        .collect();
    let owner = Arc::new(mem);
    // SAFETY: the vectors live in `owner`, which the buffer keeps alive, and
    // are never touched through references while the buffer exists.
    unsafe { DataBuffer::from_raw_segments(&segs, owner) }
}

/// A buffer of `len` bytes aligned to 4096 in segments of `seg` bytes (a
/// multiple of 4096), each in its own allocation.
pub fn aligned(len: usize, seg: usize) -> DataBuffer {
    let mut mem = Vec::new();
    let mut segs = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(seg);
        let mut v = vec![0u8; n + 4096];
        let skew = v.as_ptr().align_offset(4096);
        // SAFETY: skew < 4096, so `skew + n` stays inside the vector.
        segs.push((unsafe { v.as_mut_ptr().add(skew) }, n));
        mem.push(v);
        left -= n;
    }
    // SAFETY: as in `scattered`.
    unsafe { DataBuffer::from_raw_segments(&segs, Arc::new(mem)) }
}

/// Deterministic bytes for a (seed, position) pair.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Write `data` through a scattered buffer.
pub async fn write_bytes(b: &dyn Backstore, offset: u64, data: &[u8], cuts: &[usize], fua: bool) {
    let buf = scattered(data.len(), cuts, true);
    assert_eq!(buf.write_at(0, data), data.len());
    let flags = if fua {
        WriteFlags::FUA
    } else {
        WriteFlags::empty()
    };
    b.write(offset, buf, flags).await.expect("write");
}

/// Read `len` bytes through a scattered buffer pre-filled with garbage.
pub async fn read_bytes(b: &dyn Backstore, offset: u64, len: usize, cuts: &[usize]) -> Vec<u8> {
    let buf = scattered(len, cuts, true);
    buf.fill(0, len, 0xee);
    b.read(offset, buf.clone()).await.expect("read");
    buf.to_vec()
}

/// An in-memory model of a backstore's contents.
pub struct Model {
    pub data: Vec<u8>,
}

impl Model {
    pub fn new(size: usize) -> Self {
        Self {
            data: vec![0; size],
        }
    }
}

/// Check every allocation extent over the whole medium against the model:
/// extents tile the medium, and deallocated extents read as zeroes.
pub async fn check_allocation(b: &dyn Backstore, model: &Model) {
    let size = b.geometry().size;
    let lbs = u64::from(b.geometry().logical_block_size);
    let mut at = 0;
    while at < size {
        let e = b.allocation(at, size - at).await.expect("allocation");
        assert!(e.len > 0 && at + e.len <= size, "extent {e:?} at {at}");
        assert_eq!(e.len % lbs, 0, "extent {e:?} not block aligned");
        if e.state == AllocationState::Deallocated
            && b.capabilities().contains(Capabilities::DISCARD_ZEROES)
        {
            let range = &model.data[at as usize..(at + e.len) as usize];
            assert!(
                range.iter().all(|&x| x == 0),
                "deallocated extent at {at} (+{}) holds data",
                e.len
            );
        }
        at += e.len;
    }
}

/// Writes, discards and write-zeroes must be refused on a read-only medium
/// (SBC-4 4.11 write protection: DATA PROTECT / WRITE PROTECTED).
pub async fn check_read_only(b: &dyn Backstore) {
    assert!(b.geometry().read_only);
    let buf = DataBuffer::zeroed(512);
    assert!(matches!(
        b.write(0, buf, WriteFlags::empty()).await,
        Err(IoError::ReadOnly)
    ));
    assert!(matches!(
        b.write_zeroes(0, 512, true).await,
        Err(IoError::ReadOnly)
    ));
    let r = b.discard(0, 512).await;
    assert!(
        matches!(r, Err(IoError::ReadOnly | IoError::Unsupported)),
        "{r:?}"
    );
    // Reads still work.
    b.read(0, DataBuffer::zeroed(512))
        .await
        .expect("read-only read");
}

/// Many writes and reads in flight at once, on disjoint ranges, then all
/// verified.
pub async fn check_concurrency(b: Arc<dyn Backstore>, count: usize, block: usize) {
    let writes = (0..count).map(|i| {
        let b = Arc::clone(&b);
        async move {
            let data = pattern(i as u64 + 1000, block);
            write_bytes(
                &*b,
                (i * block) as u64,
                &data,
                &[block / 3, 1, 17],
                i % 2 == 0,
            )
            .await;
        }
    });
    futures::future::join_all(writes).await;
    let reads = (0..count).map(|i| {
        let b = Arc::clone(&b);
        async move {
            let got = read_bytes(&*b, (i * block) as u64, block, &[5, block / 2]).await;
            assert_eq!(got, pattern(i as u64 + 1000, block), "block {i}");
        }
    });
    futures::future::join_all(reads).await;
}

/// One step of a random operation sequence.
#[derive(Debug, Clone)]
pub enum Op {
    Write {
        block: u64,
        blocks: u64,
        seed: u64,
        cuts: Vec<usize>,
        fua: bool,
    },
    Read {
        block: u64,
        blocks: u64,
        cuts: Vec<usize>,
    },
    Discard {
        block: u64,
        blocks: u64,
    },
    Zeroes {
        block: u64,
        blocks: u64,
        may_unmap: bool,
    },
    Flush,
}

pub fn op_strategy(blocks: u64) -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let range = (0..blocks).prop_flat_map(move |b| (Just(b), 1..=(blocks - b).min(40)));
    let cuts = proptest::collection::vec(1usize..3000, 0..5);
    prop_oneof![
        4 => (range.clone(), any::<u64>(), cuts.clone(), any::<bool>())
            .prop_map(|((block, blocks), seed, cuts, fua)| Op::Write { block, blocks, seed, cuts, fua }),
        3 => (range.clone(), cuts).prop_map(|((block, blocks), cuts)| Op::Read { block, blocks, cuts }),
        1 => range.clone().prop_map(|(block, blocks)| Op::Discard { block, blocks }),
        1 => (range, any::<bool>()).prop_map(|((block, blocks), may_unmap)| Op::Zeroes { block, blocks, may_unmap }),
        1 => Just(Op::Flush),
    ]
}

/// Apply `ops` to the backstore and the model; compare every read, and
/// the whole medium and its allocation map at the end.
pub async fn run_ops(b: &dyn Backstore, model: &mut Model, ops: &[Op]) {
    let lbs = u64::from(b.geometry().logical_block_size);
    let discard_zeroes = b.capabilities().contains(Capabilities::DISCARD_ZEROES);
    for op in ops {
        match op {
            Op::Write {
                block,
                blocks,
                seed,
                cuts,
                fua,
            } => {
                let (off, len) = ((block * lbs) as usize, (blocks * lbs) as usize);
                let data = pattern(*seed, len);
                write_bytes(b, off as u64, &data, cuts, *fua).await;
                model.data[off..off + len].copy_from_slice(&data);
            }
            Op::Read {
                block,
                blocks,
                cuts,
            } => {
                let (off, len) = ((block * lbs) as usize, (blocks * lbs) as usize);
                let got = read_bytes(b, off as u64, len, cuts).await;
                assert!(
                    got == model.data[off..off + len],
                    "read at {off}+{len} differs from the model after {ops:?}"
                );
            }
            Op::Discard { block, blocks } => {
                let (off, len) = ((block * lbs) as usize, (blocks * lbs) as usize);
                if b.capabilities().contains(Capabilities::DISCARD) {
                    b.discard(off as u64, len as u64).await.expect("discard");
                    if discard_zeroes {
                        model.data[off..off + len].fill(0);
                    } else {
                        // Unspecified contents: take what the medium says.
                        let got = read_bytes(b, off as u64, len, &[]).await;
                        model.data[off..off + len].copy_from_slice(&got);
                    }
                }
            }
            Op::Zeroes {
                block,
                blocks,
                may_unmap,
            } => {
                let (off, len) = ((block * lbs) as usize, (blocks * lbs) as usize);
                b.write_zeroes(off as u64, len as u64, *may_unmap)
                    .await
                    .expect("write_zeroes");
                model.data[off..off + len].fill(0);
                if !*may_unmap && b.capabilities().contains(Capabilities::ALLOCATION_STATUS) {
                    // Without may-unmap the range stays mapped or reads as
                    // zeroes; it must never hold old data.
                    let got = read_bytes(b, off as u64, len, &[]).await;
                    assert!(got.iter().all(|&x| x == 0));
                }
            }
            Op::Flush => b.flush().await.expect("flush"),
        }
    }
    let size = b.geometry().size as usize;
    let all = read_bytes(b, 0, size, &[4096, 1, 100]).await;
    assert!(
        all == model.data,
        "final contents differ from the model after {ops:?}"
    );
    if b.capabilities().contains(Capabilities::ALLOCATION_STATUS) {
        check_allocation(b, model).await;
    }
}
