//! The backstores under the scsi-core engine: commands from an in-process
//! initiator reach the ram and file backstores, and their errors come back
//! as the sense data SBC-4 prescribes.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use tgtkit_backstores::file::FileOptions;
use tgtkit_backstores::ram::{RamBackstore, RamOptions};
use tgtkit_scsi_core::backstore::Backstore;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig};
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, Outcome};

fn lun(backstore: Arc<dyn Backstore>) -> Initiator {
    let target = Target::new(TargetConfig::default());
    target.add_lun(0, LuConfig::new(backstore)).unwrap();
    let init = Initiator::new(&target, "iqn.2026-11.test:backstores");
    init.clear_unit_attentions();
    init
}

fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// GET LBA STATUS (SBC-4 5.7): the first descriptor's (LBA, blocks, status).
fn lba_status(init: &Initiator, lba: u64) -> (u64, u32, u8) {
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x12;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&64u32.to_be_bytes());
    let o = init.run(&c, 64);
    assert_good(&o);
    let d = &o.data[8..24];
    (
        u64::from_be_bytes(d[0..8].try_into().unwrap()),
        u32::from_be_bytes(d[8..12].try_into().unwrap()),
        d[12] & 0x0f,
    )
}

#[track_caller]
fn assert_good(o: &Outcome) {
    assert_eq!(o.status(), Status::GOOD, "sense: {:?}", o.sense());
}

#[track_caller]
fn assert_sense(o: &Outcome, key: SenseKey, asc: Asc) {
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().expect("sense data");
    assert_eq!((s.key, s.asc), (key, asc), "{s:?}");
}

#[test]
fn accepts_write_read_unmap_and_lba_status_on_ram() {
    let ram = Arc::new(RamOptions::new().chunk_size(4096).build(1 << 20).unwrap());
    let init = lun(ram.clone());
    let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    assert_good(&init.send(&rw16(0x8a, 16, 16), &data));
    let o = init.run(&rw16(0x88, 16, 16), 8192);
    assert_good(&o);
    assert_eq!(o.data, data);
    // Mapped where written (provisioning status 0), deallocated before (1).
    assert_eq!(lba_status(&init, 0), (0, 16, 1));
    assert_eq!(lba_status(&init, 16), (16, 16, 0));
    // WRITE SAME(16) with UNMAP (SBC-4 5.50) frees the chunks again.
    let mut ws = rw16(0x93, 16, 16);
    ws[1] = 0x08;
    assert_good(&init.send(&ws, &[0; 512]));
    assert_eq!(ram.allocated_bytes(), 0);
    let (_, _, state) = lba_status(&init, 16);
    assert_eq!(state, 1);
}

#[test]
fn accepts_resize_as_capacity_data_has_changed() {
    let ram = Arc::new(RamBackstore::new(1 << 20).unwrap());
    let init = lun(ram.clone());
    ram.resize(2 << 20).unwrap();
    // SPC-4 6.47: the next command gets the unit attention.
    let o = init.run(&[0; 6], 0);
    assert_sense(&o, SenseKey::UNIT_ATTENTION, Asc::CAPACITY_DATA_HAS_CHANGED);
    let mut rc16 = [0u8; 16];
    rc16[0] = 0x9e;
    rc16[1] = 0x10;
    rc16[13] = 32;
    let o = init.run(&rc16, 32);
    assert_good(&o);
    let last = u64::from_be_bytes(o.data[0..8].try_into().unwrap());
    assert_eq!(last, (2 << 20) / 512 - 1);
}

#[test]
fn rejects_writes_past_a_thin_pool_as_space_allocation_failed() {
    let ram = Arc::new(
        RamOptions::new()
            .chunk_size(4096)
            .memory_limit(4096)
            .build(1 << 20)
            .unwrap(),
    );
    let init = lun(ram);
    assert_good(&init.send(&rw16(0x8a, 0, 8), &[1; 4096]));
    let o = init.send(&rw16(0x8a, 8, 8), &[1; 4096]);
    // SBC-4 4.7.3.6: DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT.
    assert_sense(
        &o,
        SenseKey::DATA_PROTECT,
        Asc::SPACE_ALLOCATION_FAILED_WRITE_PROTECT,
    );
}

#[test]
fn rejects_writes_to_a_read_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let file = Arc::new(FileOptions::new().read_only(true).open(&path).unwrap());
    let init = lun(file);
    let o = init.send(&rw16(0x8a, 0, 1), &[1; 512]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
    assert_good(&init.run(&rw16(0x88, 0, 1), 512));
}

#[test]
fn accepts_write_read_and_sync_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rw.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let file = Arc::new(FileOptions::new().open(&path).unwrap());
    let init = lun(file);
    let data = vec![0x3c; 4096];
    let mut w = rw16(0x8a, 100, 8);
    w[1] = 0x08; // FUA
    assert_good(&init.send(&w, &data));
    let mut sync16 = [0u8; 16];
    sync16[0] = 0x91;
    assert_good(&init.run(&sync16, 0));
    let o = init.run(&rw16(0x88, 100, 8), 4096);
    assert_good(&o);
    assert_eq!(o.data, data);
    assert_eq!(
        &std::fs::read(&path).unwrap()[100 * 512..108 * 512],
        &data[..]
    );
    assert_eq!(lba_status(&init, 0).2, 1);
    assert_eq!(lba_status(&init, 100).2, 0);
}
