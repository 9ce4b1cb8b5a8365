//! WRITE ATOMIC (16): the command-table row, the Block Limits VPD fields and
//! every refusal (SBC-4 §4.29 and the WRITE ATOMIC (16) command).
mod common;
mod gated;

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use futures::executor::block_on;
use gated::poll_once;
use tgtkit_scsi_core::backstore::AtomicLimits;
use tgtkit_scsi_core::backstore::{Backstore, Capabilities, Geometry, IoResult, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig, TaskAttribute};
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore};

/// Up to 64 blocks, aligned to and a multiple of 8 blocks (4 KiB).
const LIMITS: AtomicLimits = AtomicLimits {
    max_bytes: 64 * 512,
    alignment: 8 * 512,
    granularity: 8 * 512,
    crash_atomic: false,
};

fn atomic_disk() -> (
    std::sync::Arc<tgtkit_scsi_core::engine::Target>,
    std::sync::Arc<MemBackstore>,
    tgtkit_scsi_core::test_utils::Initiator,
) {
    disk_with(MemBackstore::new(BLOCKS, BS).atomic(LIMITS), false)
}

fn wa16(lba: u64, blocks: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9c;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[12..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[test]
fn accepts_aligned_atomic_writes_and_reports_them() {
    let (_t, store, init) = atomic_disk();
    assert_good(&init.send(&wa16(16, 16), &[0x6b; 16 * 512]));
    assert_eq!(store.contents(16 * 512, 16 * 512), vec![0x6b; 16 * 512]);
    assert_eq!(store.contents(32 * 512, 512), vec![0; 512]);
    // The last blocks of the medium, with FUA and DPO.
    let mut c = wa16(BLOCKS - 8, 8);
    c[1] = 0x18;
    assert_good(&init.send(&c, &[0x11; 8 * 512]));
    assert_eq!(
        store.contents((BLOCKS - 8) * 512, 8 * 512),
        vec![0x11; 8 * 512]
    );
    // Zero blocks transfer nothing and are no error.
    assert_good(&init.send(&wa16(0, 0), &[]));
    // Block Limits VPD: MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT,
    // ATOMIC TRANSFER LENGTH GRANULARITY in blocks; boundary fields zero.
    let vpd = init.run(&[0x12, 1, 0xb0, 0, 64, 0], 64);
    assert_good(&vpd);
    let be32 = |at: usize| u32::from_be_bytes(vpd.data[at..at + 4].try_into().unwrap());
    assert_eq!((be32(44), be32(48), be32(52)), (64, 8, 8));
    assert_eq!((be32(56), be32(60)), (0, 0));
    assert!(
        be32(44) <= be32(8),
        "atomic max within MAXIMUM TRANSFER LENGTH"
    );
    // REPORT SUPPORTED OPERATION CODES lists it with its usage data.
    let o = init.run(&[0xa3, 0x0c, 0x01, 0x9c, 0, 0, 0, 0, 0x01, 0, 0, 0], 256);
    assert_good(&o);
    assert_eq!(o.data[1] & 0x07, 0x03, "supported");
    assert_eq!(&o.data[4..6], &[0x9c, 0xf8]);
}

#[test]
fn rejects_atomic_writes_outside_the_limits() {
    let (_t, store, init) = atomic_disk();
    // Misaligned LBA: INVALID FIELD IN CDB at the LBA.
    assert_invalid_field(&init.send(&wa16(4, 8), &[1; 8 * 512]), 2, None);
    // Not a multiple of the granularity, and over the maximum: at the
    // TRANSFER LENGTH.
    assert_invalid_field(&init.send(&wa16(0, 4), &[1; 4 * 512]), 12, None);
    assert_invalid_field(&init.send(&wa16(0, 72), &[1; 72 * 512]), 12, None);
    // A non-zero ATOMIC BOUNDARY (no boundary support).
    let mut c = wa16(0, 8);
    c[11] = 8;
    assert_invalid_field(&init.send(&c, &[1; 8 * 512]), 10, None);
    // WRPROTECT without protection information.
    let mut c = wa16(0, 8);
    c[1] = 0x20;
    assert_invalid_field(&init.send(&c, &[1; 8 * 512]), 1, Some(7));
    // Past the end of the medium, and an LBA that wraps.
    for lba in [BLOCKS, !7] {
        let o = init.send(&wa16(lba, 8), &[1; 8 * 512]);
        assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    }
    let o = init.send(&wa16(BLOCKS - 8, 16), &[1; 16 * 512]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    // A data-out buffer shorter than the transfer: nothing is written.
    assert_invalid_field(&init.send(&wa16(8, 16), &[2; 8 * 512]), 12, None);
    assert_eq!(store.contents(8 * 512, 512), vec![0; 512]);
    assert!(store
        .contents(0, 8 * 512 * 8)
        .iter()
        .all(|&b| b != 1 && b != 2));
}

#[test]
fn rejects_atomic_writes_to_protected_or_reserved_units() {
    let (_t, _s, init) = disk_with(MemBackstore::new(BLOCKS, BS).atomic(LIMITS), true);
    let o = init.send(&wa16(0, 8), &[1; 8 * 512]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);

    let (t, store, a) = atomic_disk();
    assert_good(&a.send(&[0x16, 0, 0, 0, 0, 0], &[]));
    let b = tgtkit_scsi_core::test_utils::Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    let o = b.send(&wa16(0, 8), &[1; 8 * 512]);
    assert_eq!(o.status(), Status::RESERVATION_CONFLICT);
    assert_eq!(store.contents(0, 8 * 512), vec![0; 8 * 512]);
    assert_good(&a.send(&wa16(0, 8), &[1; 8 * 512]));
}

#[test]
fn refuses_write_atomic_as_an_unknown_opcode_without_backstore_support() {
    let (_t, _s, init) = disk();
    let o = init.send(&wa16(0, 8), &[1; 8 * 512]);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_COMMAND_OPERATION_CODE,
    );
    let vpd = init.run(&[0x12, 1, 0xb0, 0, 64, 0], 64);
    assert!(vpd.data[44..64].iter().all(|&b| b == 0));
    let o = init.run(&[0xa3, 0x0c, 0x01, 0x9c, 0, 0, 0, 0, 0x01, 0, 0, 0], 256);
    assert_good(&o);
    assert_eq!(o.data[1] & 0x07, 0x01, "not supported");
}

/// Atomic writes land in two halves with a wait in between (until
/// [`HalfWrites::finish`]): a reader that ignored the engine's atomic
/// sequence would see the first half new and the second half old.
struct HalfWrites {
    inner: MemBackstore,
    go: AtomicBool,
    event: event_listener::Event,
}

impl HalfWrites {
    fn finish(&self) {
        self.go.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }
}

#[async_trait]
impl Backstore for HalfWrites {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn atomic_limits(&self) -> Option<AtomicLimits> {
        self.inner.atomic_limits()
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        self.inner.read(offset, buf).await
    }
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.inner.write(offset, buf, flags).await
    }
    async fn write_atomic(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        let half = buf.len() / 2;
        let first = buf.slice(0, half).unwrap();
        self.inner.write(offset, first, flags).await?;
        while !self.go.load(Ordering::Acquire) {
            let l = self.event.listen();
            if self.go.load(Ordering::Acquire) {
                break;
            }
            l.await;
        }
        let rest = buf.slice(half, buf.len() - half).unwrap();
        self.inner.write(offset + half as u64, rest, flags).await
    }
    async fn flush(&self) -> IoResult<()> {
        self.inner.flush().await
    }
}

#[test]
fn never_returns_part_of_an_atomic_write_to_a_concurrent_read() {
    let store = Arc::new(HalfWrites {
        inner: MemBackstore::new(BLOCKS, BS).atomic(LIMITS),
        go: AtomicBool::new(false),
        event: event_listener::Event::new(),
    });
    let t = Target::new(TargetConfig::default());
    t.add_lun(0, LuConfig::new(store.clone())).unwrap();
    let init = Initiator::new(&t, "iqn.2026-11.test:a");
    init.clear_unit_attentions();
    let data = DataBuffer::from_vec(vec![0xbb; 16 * 512]);
    let write = init.command(&wa16(16, 16), data, TaskAttribute::Simple);
    let mut write = pin!(t.execute(write));
    assert!(poll_once(write.as_mut()).is_pending());
    // Half of it is on the medium now.
    assert_eq!(store.inner.contents(16 * 512, 512), vec![0xbb; 512]);
    assert_eq!(store.inner.contents(31 * 512, 512), vec![0; 512]);
    let out = DataBuffer::zeroed(16 * 512);
    let read = init.command(&read16(16, 16), out.clone(), TaskAttribute::Simple);
    let mut read = pin!(t.execute(read));
    assert!(
        poll_once(read.as_mut()).is_pending(),
        "the read waits for the atomic write instead of returning half of it"
    );
    store.finish();
    assert_eq!(block_on(write).status, Status::GOOD);
    assert_eq!(block_on(read).status, Status::GOOD);
    assert_eq!(out.to_vec(), vec![0xbb; 16 * 512]);
}
