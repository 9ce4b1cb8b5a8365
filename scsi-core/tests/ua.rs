//! Unit attention conditions (SAM-5 §5.14, SPC-4 §5.14): one queue per
//! I_T nexus per logical unit, reported oldest first, and the commands
//! that do not report them (INQUIRY, REPORT LUNS) or report them as data
//! (REQUEST SENSE).

mod pr_util;

use std::sync::Arc;

use pr_util::*;
use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, TmFunction};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, Sense, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore};

#[track_caller]
fn ua(i: &Initiator, asc: Asc) {
    let o = i.run(&[0; 6], 0);
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().unwrap();
    assert_eq!((s.key, s.asc), (SenseKey::UNIT_ATTENTION, asc), "{s:?}");
}

#[track_caller]
fn none(i: &Initiator) {
    assert_eq!(i.run(&[0; 6], 0).status(), Status::GOOD);
}

const INQUIRY: [u8; 6] = [0x12, 0, 0, 0, 36, 0];
const REPORT_LUNS: [u8; 12] = [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];

#[test]
fn accepts_inquiry_and_report_luns_without_reporting() {
    let t = target();
    let a = Initiator::new(&t, "iqn.2026-11.test:a");
    // SPC-4 §5.14 / SAM-5 §5.14: INQUIRY and REPORT LUNS complete and the
    // unit attention stays pending.
    assert_eq!(a.run(&INQUIRY, 36).status(), Status::GOOD);
    assert_eq!(a.run(&REPORT_LUNS, 256).status(), Status::GOOD);
    ua(&a, Asc::POWER_ON_RESET);
    none(&a);
}

#[test]
fn accepts_request_sense_as_the_report() {
    let t = target();
    let a = Initiator::new(&t, "iqn.2026-11.test:a");
    let o = a.run(&[0x03, 0, 0, 0, 252, 0], 252);
    assert_eq!(o.status(), Status::GOOD);
    let s = Sense::decode(&o.data).unwrap();
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET)
    );
    none(&a); // cleared by REQUEST SENSE
    let o = a.run(&[0x03, 0, 0, 0, 252, 0], 252);
    assert_eq!(Sense::decode(&o.data).unwrap().key, SenseKey::NO_SENSE);
}

#[test]
fn accepts_report_luns_clearing_only_reported_luns_data_has_changed() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    set_tas(&b, false); // same value: no change, nothing raised
    none(&a);
    set_tas(&b, true); // MODE PARAMETERS CHANGED for a
    t.add_lun(1, LuConfig::new(Arc::new(MemBackstore::new(8, 512))))
        .unwrap();
    // SPC-4 §6.33: REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED only.
    assert_eq!(a.run(&REPORT_LUNS, 256).status(), Status::GOOD);
    ua(&a, Asc::MODE_PARAMETERS_CHANGED);
    none(&a);
    assert_eq!(b.run(&REPORT_LUNS, 256).status(), Status::GOOD);
    none(&b);
}

#[test]
fn reports_oldest_first_and_resets_supersede() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    set_tas(&b, true);
    t.add_lun(1, LuConfig::new(Arc::new(MemBackstore::new(8, 512))))
        .unwrap();
    ua(&a, Asc::MODE_PARAMETERS_CHANGED);
    ua(&a, Asc::REPORTED_LUNS_DATA_HAS_CHANGED);
    none(&a);
    b.clear_unit_attentions();
    set_tas(&b, false);
    let r = futures::executor::block_on(t.task_management(
        b.nexus,
        b.lun,
        TmFunction::LogicalUnitReset,
    ));
    assert_eq!(r, tgtkit_scsi_core::engine::TmfResponse::Complete);
    // SAM-5 §5.14: the reset condition replaces what was pending before it.
    ua(&a, Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
    none(&a);
}

#[test]
fn accepts_per_logical_unit_queues() {
    let t = target();
    t.add_lun(1, LuConfig::new(Arc::new(MemBackstore::new(8, 512))))
        .unwrap();
    let a = init(&t, "iqn.2026-11.test:a");
    let a1 = a.clone().with_lun(Lun::from_index(1).unwrap());
    ua(&a1, Asc::POWER_ON_RESET);
    none(&a1);
}

#[test]
fn accepts_i_t_nexus_loss_on_relogin() {
    let t = target();
    let info = |port: &str| NexusInfo {
        initiator_port: port.into(),
        target_port: "iqn.2026-11.dev.tgtkit:target,t,0x0001".into(),
        relative_port: 1,
        transport_id: Vec::new(),
    };
    let mut a = Initiator::new(&t, "iqn.2026-11.test:x");
    t.remove_nexus(a.nexus);
    a.nexus = t.add_nexus(info("iqn.2026-11.test:a,i,0x000000000001"));
    ua(&a, Asc::POWER_ON_RESET);
    t.remove_nexus(a.nexus);
    a.nexus = t.add_nexus(info("iqn.2026-11.test:a,i,0x000000000001"));
    // SAM-5 §6.3.4: the same initiator port learns of the loss.
    ua(&a, Asc::I_T_NEXUS_LOSS_OCCURRED);
    none(&a);
    // Once only; a different port is a new nexus and sees power on.
    t.remove_nexus(a.nexus);
    a.nexus = t.add_nexus(info("iqn.2026-11.test:a,i,0x000000000002"));
    ua(&a, Asc::POWER_ON_RESET);
}

#[test]
fn accepts_capacity_change_for_every_nexus() {
    let store = Arc::new(MemBackstore::new(64, 512));
    let t = tgtkit_scsi_core::engine::Target::new(Default::default());
    t.add_lun(0, LuConfig::new(store.clone())).unwrap();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    store.resize(128);
    ua(&a, Asc::CAPACITY_DATA_HAS_CHANGED);
    ua(&b, Asc::CAPACITY_DATA_HAS_CHANGED);
}

#[test]
fn accepts_reservation_unit_attentions_in_order() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    assert_eq!(prout(&a, REGISTER, 0, 0, 1).status(), Status::GOOD);
    assert_eq!(prout(&b, REGISTER, 0, 0, 2).status(), Status::GOOD);
    assert_eq!(prout(&b, RESERVE, WE_RO, 2, 0).status(), Status::GOOD);
    assert_eq!(prout(&b, REGISTER, 0, 2, 0).status(), Status::GOOD); // releases: RR
    assert_eq!(prout(&b, REGISTER, 0, 0, 2).status(), Status::GOOD);
    assert_eq!(prout(&b, PREEMPT, 0, 2, 1).status(), Status::GOOD); // a preempted
    ua(&a, Asc::RESERVATIONS_RELEASED);
    ua(&a, Asc::REGISTRATIONS_PREEMPTED);
    none(&a);
}
