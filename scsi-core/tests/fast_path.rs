//! The engine's lock-free fast path (a nexus with nothing pending skips the
//! logical unit's state lock) must never hide a unit attention, a
//! reservation conflict or a capacity change: every test first makes the
//! nexus "quiet" with a GOOD command, then changes something behind its
//! back, and checks that the next command sees it (SAM-5 §5.14, SPC-4
//! §5.14, SPC-2 §5.5.1).

mod common;

use std::sync::Arc;

use common::*;
use tgtkit_scsi_core::engine::{LuConfig, TmFunction, TmfResponse};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore};

const TUR: [u8; 6] = [0; 6];
const RESERVE6: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
const RELEASE6: [u8; 6] = [0x17, 0, 0, 0, 0, 0];

/// Two GOOD READs in a row: the second one runs on the fast path.
#[track_caller]
fn quiet(i: &Initiator) {
    for _ in 0..2 {
        assert_good(&i.run(&read16(0, 1), BS as usize));
    }
}

#[track_caller]
fn unit_attention(i: &Initiator, asc: Asc) {
    let o = i.run(&read16(0, 1), BS as usize);
    assert_sense(&o, SenseKey::UNIT_ATTENTION, asc);
}

#[test]
fn rejects_quiet_reads_after_a_lun_is_added() {
    let (t, _s, a) = disk();
    quiet(&a);
    t.add_lun(1, LuConfig::new(Arc::new(MemBackstore::new(8, BS))))
        .unwrap();
    unit_attention(&a, Asc::REPORTED_LUNS_DATA_HAS_CHANGED);
    quiet(&a);
}

#[test]
fn rejects_quiet_reads_after_a_capacity_change() {
    let (_t, s, a) = disk();
    quiet(&a);
    s.resize(BLOCKS * 2);
    unit_attention(&a, Asc::CAPACITY_DATA_HAS_CHANGED);
    quiet(&a);
}

#[test]
fn rejects_quiet_reads_after_a_logical_unit_reset_from_another_nexus() {
    let (t, _s, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    quiet(&a);
    quiet(&b);
    let r = futures::executor::block_on(t.task_management(
        b.nexus,
        Lun::from_index(0).unwrap(),
        TmFunction::LogicalUnitReset,
    ));
    assert_eq!(r, TmfResponse::Complete);
    unit_attention(&a, Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
    unit_attention(&b, Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
    quiet(&a);
}

#[test]
fn rejects_quiet_reads_while_another_nexus_holds_a_reservation() {
    let (t, _s, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    quiet(&a);
    quiet(&b);
    // SPC-2 RESERVE(6) by B: A's commands conflict until B releases.
    assert_good(&b.run(&RESERVE6, 0));
    let o = a.run(&read16(0, 1), BS as usize);
    assert_eq!(o.status(), Status::RESERVATION_CONFLICT);
    quiet(&b);
    assert_good(&b.run(&RELEASE6, 0));
    quiet(&a);
}

#[test]
fn accepts_power_on_for_every_new_nexus_sharing_a_quiet_slot() {
    // More nexuses than the fast path has slots: each one still reports
    // its power-on condition first, however the slots collide.
    let (t, _s, a) = disk();
    quiet(&a);
    let others: Vec<Initiator> = (0..130)
        .map(|i| Initiator::new(&t, &format!("iqn.2026-11.test:n{i}")))
        .collect();
    for i in &others {
        let o = i.run(&TUR, 0);
        assert_sense(&o, SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET);
        quiet(i);
        quiet(&a);
    }
}

/// PERSISTENT RESERVE OUT service action `sa`, type `ty`, with the basic
/// 24-byte parameter list.
fn prout(i: &Initiator, sa: u8, ty: u8, key: u64, sa_key: u64) -> Status {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    i.send(&[0x5f, sa, ty, 0, 0, 0, 0, 0, 24, 0], &p).status()
}

fn write(i: &Initiator) -> Status {
    i.send(&write16(0, 1), &vec![0; BS as usize]).status()
}

const REGISTER: u8 = 0;
const RESERVE: u8 = 1;
const RELEASE: u8 = 2;
const PREEMPT: u8 = 4;
const WRITE_EXCLUSIVE: u8 = 1;
const WRITE_EXCLUSIVE_RO: u8 = 5;

#[test]
fn accepts_quiet_reads_under_write_exclusive_and_still_refuses_writes() {
    let (t, _s, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    assert_eq!(prout(&a, REGISTER, 0, 0, 1), Status::GOOD);
    assert_eq!(prout(&a, RESERVE, WRITE_EXCLUSIVE, 1, 0), Status::GOOD);
    // Reads stay open to everyone under Write Exclusive (SPC-4 table 47),
    // so they may take the fast path; writes and PREVENT MEDIUM REMOVAL
    // (a write-class command, SPC-4 table 62) from B must still see the
    // reservation however quiet B is.
    quiet(&b);
    assert_eq!(write(&b), Status::RESERVATION_CONFLICT);
    quiet(&b);
    let prevent = b.run(&[0x1e, 0, 0, 0, 1, 0], 0);
    assert_eq!(prevent.status(), Status::RESERVATION_CONFLICT);
    quiet(&b);
    assert_good(&b.run(&[0x1e, 0, 0, 0, 0, 0], 0));
    assert_eq!(write(&a), Status::GOOD);
    assert_eq!(prout(&a, RELEASE, WRITE_EXCLUSIVE, 1, 0), Status::GOOD);
    quiet(&b);
    assert_eq!(write(&b), Status::GOOD);
}

#[test]
fn rechecks_a_nexus_standing_after_every_reservation_change() {
    // The engine remembers whether a nexus is registered or holds the
    // reservation; each PERSISTENT RESERVE OUT must make it look again.
    let (t, _s, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    assert_eq!(prout(&a, REGISTER, 0, 0, 1), Status::GOOD);
    assert_eq!(prout(&a, RESERVE, WRITE_EXCLUSIVE_RO, 1, 0), Status::GOOD);
    assert_eq!(write(&b), Status::RESERVATION_CONFLICT);
    assert_eq!(write(&b), Status::RESERVATION_CONFLICT);
    // Registered, B is one of the registrants who may write.
    assert_eq!(prout(&b, REGISTER, 0, 0, 2), Status::GOOD);
    assert_eq!(write(&b), Status::GOOD);
    assert_eq!(write(&b), Status::GOOD);
    // Preempted, it is not (after the unit attention saying so).
    assert_eq!(prout(&a, PREEMPT, WRITE_EXCLUSIVE_RO, 1, 2), Status::GOOD);
    assert_sense(
        &b.run(&TUR, 0),
        SenseKey::UNIT_ATTENTION,
        Asc::REGISTRATIONS_PREEMPTED,
    );
    assert_eq!(write(&b), Status::RESERVATION_CONFLICT);
    quiet(&b);
    assert_eq!(write(&b), Status::RESERVATION_CONFLICT);
    // A nexus that goes and comes back is looked at afresh.
    assert_eq!(prout(&b, REGISTER, 0, 0, 3), Status::GOOD);
    assert_eq!(write(&b), Status::GOOD);
    drop(b);
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    assert_eq!(write(&b), Status::GOOD, "the registration names the port");
}
