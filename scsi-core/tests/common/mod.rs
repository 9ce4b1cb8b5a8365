//! Shared set-up for the device-model tests.
#![allow(clippy::cast_possible_truncation)] // tests build CDB fields by hand
#![allow(dead_code)]

use std::sync::Arc;

use tgtkit_scsi_core::backstore::Capabilities;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig};
use tgtkit_scsi_core::sense::{Asc, Sense, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore, Outcome};

pub const BLOCKS: u64 = 1024;
pub const BS: u32 = 512;

pub fn disk_with(
    backstore: MemBackstore,
    read_only: bool,
) -> (Arc<Target>, Arc<MemBackstore>, Initiator) {
    let target = Target::new(TargetConfig::default());
    let store = Arc::new(backstore);
    target
        .add_lun(0, LuConfig::new(store.clone()).read_only(read_only))
        .unwrap();
    let init = Initiator::new(&target, "iqn.2026-11.test:a");
    init.clear_unit_attentions();
    (target, store, init)
}

pub fn disk() -> (Arc<Target>, Arc<MemBackstore>, Initiator) {
    disk_with(MemBackstore::new(BLOCKS, BS), false)
}

pub fn disk_caps(caps: Capabilities) -> (Arc<Target>, Arc<MemBackstore>, Initiator) {
    disk_with(MemBackstore::with_capabilities(BLOCKS, BS, caps), false)
}

#[track_caller]
pub fn assert_good(o: &Outcome) {
    assert_eq!(o.status(), Status::GOOD, "sense: {:?}", o.sense());
}

#[track_caller]
pub fn assert_sense(o: &Outcome, key: SenseKey, asc: Asc) -> Sense {
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().expect("sense data");
    assert_eq!((s.key, s.asc), (key, asc), "{s:?}");
    s
}

/// INVALID FIELD IN CDB pointing at `byte` (and `bit`).
#[track_caller]
pub fn assert_invalid_field(o: &Outcome, byte: u16, bit: Option<u8>) {
    let s = assert_sense(o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
    let f = s.field.expect("field pointer");
    assert!(f.in_cdb);
    assert_eq!((f.byte, f.bit), (byte, bit), "{s:?}");
}

/// INVALID FIELD IN PARAMETER LIST pointing at `byte` of the parameter
/// data.
#[track_caller]
pub fn assert_invalid_param_field(o: &Outcome, byte: u16) {
    let s = assert_sense(
        o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    let f = s.field.expect("field pointer");
    assert!(!f.in_cdb, "{s:?}");
    assert_eq!(f.byte, byte, "{s:?}");
}

pub fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x88;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

pub fn write16(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = read16(lba, blocks);
    c[0] = 0x8a;
    c
}

pub fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
