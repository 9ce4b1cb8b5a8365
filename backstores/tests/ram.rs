//! Tests of the ram backstore through the `Backstore` trait.
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::sync::Arc;

use common::*;
use futures::executor::block_on;
use proptest::prelude::*;
use tgtkit_backstores::ram::{RamBackstore, RamOptions};
use tgtkit_scsi_core::backstore::{
    AllocationState, Backstore, Capabilities, Extent, IoError, WriteFlags,
};
use tgtkit_scsi_core::buffer::DataBuffer;

#[test]
fn accepts_round_trips_over_scattered_buffers() {
    let ram = RamOptions::new().chunk_size(4096).build(1 << 20).unwrap();
    block_on(async {
        // Unaligned segment boundaries, crossing chunk boundaries.
        for (i, cuts) in [vec![1], vec![511, 3, 4000], vec![4095, 2], vec![]]
            .iter()
            .enumerate()
        {
            let off = 4096 * 3 - 512 * (i as u64 + 1);
            let data = pattern(i as u64, 8192 + 512);
            write_bytes(&ram, off, &data, cuts, false).await;
            assert_eq!(read_bytes(&ram, off, data.len(), &[7, 1000, 3]).await, data);
        }
    });
}

#[test]
fn accepts_discard_and_reports_allocation() {
    let ram = RamOptions::new().chunk_size(4096).build(64 * 4096).unwrap();
    block_on(async {
        assert_eq!(
            ram.allocation(0, 64 * 4096).await.unwrap(),
            Extent {
                len: 64 * 4096,
                state: AllocationState::Deallocated
            }
        );
        write_bytes(&ram, 4096 * 2, &[1; 4096 * 3], &[], false).await;
        assert_eq!(ram.allocated_bytes(), 3 * 4096);
        assert_eq!(
            ram.allocation(0, 64 * 4096).await.unwrap(),
            Extent {
                len: 2 * 4096,
                state: AllocationState::Deallocated
            }
        );
        assert_eq!(
            ram.allocation(2 * 4096, 64 * 4096).await.unwrap(),
            Extent {
                len: 3 * 4096,
                state: AllocationState::Mapped
            }
        );
        // The query's length bounds the extent.
        assert_eq!(
            ram.allocation(2 * 4096, 512).await.unwrap(),
            Extent {
                len: 512,
                state: AllocationState::Mapped
            }
        );
        // Discard a whole chunk and half of another: one chunk freed, the
        // half zeroed (DISCARD_ZEROES) but still mapped.
        ram.discard(3 * 4096, 4096 + 2048).await.unwrap();
        assert_eq!(ram.allocated_bytes(), 2 * 4096);
        let got = read_bytes(&ram, 2 * 4096, 3 * 4096, &[100]).await;
        assert!(got[..4096].iter().all(|&b| b == 1));
        assert!(got[4096..2 * 4096 + 2048].iter().all(|&b| b == 0));
        assert!(got[2 * 4096 + 2048..].iter().all(|&b| b == 1));
        assert_eq!(
            ram.allocation(3 * 4096, 64 * 4096).await.unwrap(),
            Extent {
                len: 4096,
                state: AllocationState::Deallocated
            }
        );
        assert!(ram
            .capabilities()
            .contains(Capabilities::DISCARD | Capabilities::DISCARD_ZEROES));
    });
}

#[test]
fn accepts_write_zeroes_with_and_without_unmap() {
    let ram = RamOptions::new().chunk_size(4096).build(16 * 4096).unwrap();
    block_on(async {
        write_bytes(&ram, 0, &[5; 8 * 4096], &[], false).await;
        // Without may_unmap the range stays mapped (SBC-4 5.50 WRITE SAME, UNMAP=0).
        ram.write_zeroes(0, 4 * 4096, false).await.unwrap();
        assert_eq!(ram.allocated_bytes(), 8 * 4096);
        // Never-written chunks become mapped too.
        ram.write_zeroes(12 * 4096, 4096, false).await.unwrap();
        assert_eq!(
            ram.allocation(12 * 4096, 4096).await.unwrap().state,
            AllocationState::Mapped
        );
        // With may_unmap whole chunks are freed.
        ram.write_zeroes(4 * 4096, 4 * 4096, true).await.unwrap();
        assert_eq!(ram.allocated_bytes(), 5 * 4096);
        let all = read_bytes(&ram, 0, 16 * 4096, &[]).await;
        assert!(all.iter().all(|&b| b == 0));
    });
}

#[test]
fn rejects_writes_when_read_only() {
    let ram = RamOptions::new().read_only(true).build(1 << 20).unwrap();
    block_on(check_read_only(&ram));
    ram.set_read_only(false);
    assert!(!ram.geometry().read_only);
    block_on(ram.write(0, DataBuffer::zeroed(512), WriteFlags::empty())).unwrap();
}

#[test]
fn rejects_writes_past_the_memory_limit_as_no_space() {
    // A thin pool that runs dry maps to SPACE ALLOCATION FAILED WRITE PROTECT.
    let ram = RamOptions::new()
        .chunk_size(4096)
        .memory_limit(2 * 4096)
        .build(1 << 20)
        .unwrap();
    block_on(async {
        write_bytes(&ram, 0, &[1; 8192], &[], false).await;
        let r = ram
            .write(8192, DataBuffer::zeroed(512), WriteFlags::empty())
            .await;
        assert!(matches!(r, Err(IoError::NoSpace)), "{r:?}");
        // Rewriting allocated chunks still works; discarding frees room.
        write_bytes(&ram, 0, &[2; 512], &[], false).await;
        ram.discard(0, 4096).await.unwrap();
        ram.write(8192, DataBuffer::zeroed(512), WriteFlags::empty())
            .await
            .unwrap();
    });
}

#[test]
fn accepts_resize_and_exposes_zeroes_when_growing() {
    let ram = RamOptions::new().chunk_size(4096).build(8 * 4096).unwrap();
    block_on(async {
        write_bytes(&ram, 0, &[3; 8 * 4096], &[], false).await;
        ram.resize(2 * 4096 + 512).unwrap();
        assert_eq!(ram.geometry().size, 2 * 4096 + 512);
        assert!(matches!(
            ram.read(2 * 4096, DataBuffer::zeroed(1024)).await,
            Err(IoError::OutOfRange)
        ));
        assert_eq!(ram.allocated_bytes(), 3 * 4096);
        ram.resize(8 * 4096).unwrap();
        let all = read_bytes(&ram, 0, 8 * 4096, &[]).await;
        assert!(all[..2 * 4096 + 512].iter().all(|&b| b == 3));
        assert!(
            all[2 * 4096 + 512..].iter().all(|&b| b == 0),
            "stale data after regrow"
        );
        assert!(ram.resize(1000).is_err());
    });
}

#[test]
fn accepts_write_cache_toggle() {
    let ram = RamOptions::new()
        .write_cache(true)
        .logical_block_size(4096)
        .physical_block_size(16384)
        .build(1 << 20)
        .unwrap();
    assert!(ram.write_cache());
    assert!(ram
        .capabilities()
        .contains(Capabilities::WRITE_CACHE | Capabilities::WRITE_CACHE_TOGGLE));
    ram.set_write_cache(false).unwrap();
    assert!(!ram.write_cache());
    assert!(!ram.capabilities().contains(Capabilities::WRITE_CACHE));
    let g = ram.geometry();
    assert_eq!(
        (g.logical_block_size, g.physical_block_size, g.blocks()),
        (4096, 16384, 256)
    );
}

#[test]
fn accepts_many_commands_in_flight() {
    let ram: Arc<dyn Backstore> = Arc::new(RamBackstore::new(64 << 20).unwrap());
    let pool = futures::executor::ThreadPool::builder()
        .pool_size(4)
        .create()
        .unwrap();
    let (tx, rx) = futures::channel::oneshot::channel();
    pool.spawn_ok(async move {
        check_concurrency(ram, 256, 8192 + 512).await;
        tx.send(()).unwrap();
    });
    block_on(rx).unwrap();
}

#[test]
fn accepts_concurrent_writers_to_one_chunk_from_threads() {
    // Writers on disjoint blocks of the same chunks, from several threads.
    let ram = Arc::new(RamOptions::new().chunk_size(65536).build(1 << 20).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let ram = Arc::clone(&ram);
            std::thread::spawn(move || {
                for i in 0..64u64 {
                    let block = i * 4 + t;
                    let data = pattern(block, 512);
                    block_on(write_bytes(&*ram, block * 512, &data, &[100], false));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all = block_on(read_bytes(&*ram, 0, 256 * 512, &[]));
    for block in 0..256u64 {
        let at = (block * 512) as usize;
        assert_eq!(all[at..at + 512], pattern(block, 512)[..], "block {block}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn accepts_random_op_sequences_like_the_model(ops in proptest::collection::vec(op_strategy(64), 1..40)) {
        // 64 blocks of 512 in 2 KiB chunks: ops cross chunks all the time.
        let ram = RamOptions::new().chunk_size(2048).build(64 * 512).unwrap();
        let mut model = Model::new(64 * 512);
        block_on(run_ops(&ram, &mut model, &ops));
    }
}

#[test]
fn writes_atomically_or_not_at_all_under_the_memory_limit() {
    let ram = RamOptions::new()
        .chunk_size(4096)
        .memory_limit(2 * 4096)
        .build(1 << 20)
        .unwrap();
    let limits = ram.atomic_limits().expect("ram offers atomic writes");
    assert_eq!(limits.max_bytes, tgtkit_backstores::ATOMIC_MAX_BYTES);
    block_on(async {
        write_bytes(&ram, 0, &[1; 4096], &[], false).await;
        // Three chunks where only one more fits: refused before a byte of
        // the first (already allocated) chunk changes.
        let r = ram
            .write_atomic(
                0,
                DataBuffer::from_vec(vec![9; 3 * 4096]),
                WriteFlags::empty(),
            )
            .await;
        assert!(matches!(r, Err(IoError::NoSpace)), "{r:?}");
        let back = DataBuffer::zeroed(3 * 4096);
        ram.read(0, back.clone()).await.unwrap();
        assert_eq!(&back.to_vec()[..4096], &[1; 4096][..]);
        assert!(back.to_vec()[4096..].iter().all(|&b| b == 0));
        // Two chunks fit.
        ram.write_atomic(
            0,
            DataBuffer::from_vec(vec![9; 2 * 4096]),
            WriteFlags::empty(),
        )
        .await
        .unwrap();
        let back = DataBuffer::zeroed(2 * 4096);
        ram.read(0, back.clone()).await.unwrap();
        assert_eq!(back.to_vec(), vec![9; 2 * 4096]);
    });
}
