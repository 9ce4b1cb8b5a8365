//! Removable media: START STOP UNIT load and eject, PREVENT ALLOW MEDIUM
//! REMOVAL per I_T nexus and what ends it, and NOT READY, MEDIUM NOT
//! PRESENT for every medium access while the medium is out.
#![allow(clippy::cast_possible_truncation)]

mod pr_util;

use futures::executor::block_on;
use pr_util::*;
use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::engine::{TmFunction, TmfResponse};
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::table::{self, DataDirection};
use tgtkit_scsi_core::test_utils::{Initiator, Outcome};

const EJECT: [u8; 6] = [0x1b, 0, 0, 0, 0x02, 0];
const LOAD: [u8; 6] = [0x1b, 0, 0, 0, 0x03, 0];
const TUR: [u8; 6] = [0; 6];

fn prevent(i: &Initiator, on: bool) -> Outcome {
    i.run(&[0x1e, 0, 0, 0, u8::from(on), 0], 0)
}

#[track_caller]
fn good(o: &Outcome) {
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
}

#[track_caller]
fn sense(o: &Outcome, key: SenseKey, asc: Asc) {
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().unwrap();
    assert_eq!((s.key, s.asc), (key, asc), "{s:?}");
}

#[track_caller]
fn prevented(o: &Outcome) {
    sense(o, SenseKey::ILLEGAL_REQUEST, Asc::MEDIUM_REMOVAL_PREVENTED);
}

#[track_caller]
fn no_medium(o: &Outcome) {
    sense(o, SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT);
}

fn removable() -> std::sync::Arc<tgtkit_scsi_core::engine::Target> {
    target_with(|c| c.removable(true))
}

#[test]
fn reports_rmb_and_refuses_to_lock_a_fixed_medium() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    assert_eq!(a.run(&[0x12, 0, 0, 0, 36, 0], 36).data[1] & 0x80, 0);
    good(&prevent(&a, false));
    let o = prevent(&a, true);
    sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
    sense(
        &a.run(&EJECT, 0),
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_CDB,
    );

    let t = removable();
    let a = init(&t, "iqn.2026-11.test:a");
    assert_eq!(a.run(&[0x12, 0, 0, 0, 36, 0], 36).data[1] & 0x80, 0x80);
    // PREVENT 10b and 11b are for medium changers.
    let o = a.run(&[0x1e, 0, 0, 0, 2, 0], 0);
    sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
}

#[test]
fn answers_medium_not_present_for_every_medium_access_while_ejected() {
    let t = removable();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&a.run(&EJECT, 0));
    good(&a.run(&EJECT, 0)); // already out
    no_medium(&a.run(&TUR, 0));
    for row in table::rows(DeviceType::Disk) {
        let mut cdb = [0u8; 16];
        cdb[0] = row.opcode;
        if let Some(sa) = row.service_action {
            cdb[1] = sa as u8;
        }
        let cdb = &cdb[..usize::from(row.cdb_len)];
        let o = if row.direction == DataDirection::Write {
            a.send(cdb, &[])
        } else {
            a.run(cdb, 512)
        };
        if row.handler.needs_medium() {
            no_medium(&o);
        } else {
            assert_ne!(
                o.sense().map(|s| s.asc),
                Some(Asc::MEDIUM_NOT_PRESENT),
                "{}",
                row.name
            );
        }
    }
    // Loading it: the loader may go on at once, the others learn of it.
    good(&a.run(&LOAD, 0));
    good(&a.run(&TUR, 0));
    sense(
        &b.run(&TUR, 0),
        SenseKey::UNIT_ATTENTION,
        Asc::NOT_READY_TO_READY_CHANGE,
    );
    good(&b.run(&TUR, 0));
    good(&b.run(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 512));
}

#[test]
fn prevents_removal_while_any_nexus_prevents_it() {
    let t = removable();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prevent(&a, true));
    prevented(&a.run(&EJECT, 0));
    prevented(&b.run(&EJECT, 0));
    good(&a.run(&TUR, 0));
    // b allowing does not end a's prevention.
    good(&prevent(&b, false));
    prevented(&b.run(&EJECT, 0));
    good(&prevent(&a, false));
    good(&b.run(&EJECT, 0));
    // Loading is refused while prevented too (libiscsi PreventAllow.Eject).
    good(&prevent(&a, true));
    prevented(&a.run(&LOAD, 0));
    no_medium(&a.run(&TUR, 0));
    good(&prevent(&a, false));
    good(&a.run(&LOAD, 0));
}

#[test]
fn ends_prevention_with_nexus_loss_and_resets() {
    let t = removable();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    // I_T nexus loss: only that nexus's prevention ends.
    good(&prevent(&a, true));
    good(&prevent(&b, true));
    t.remove_nexus(a.nexus);
    prevented(&b.run(&EJECT, 0));
    let r = block_on(t.task_management(b.nexus, b.lun, TmFunction::ITNexusReset));
    assert_eq!(r, TmfResponse::Complete);
    b.clear_unit_attentions();
    good(&b.run(&EJECT, 0));
    good(&b.run(&LOAD, 0));
    // A logical unit reset or a target reset ends every prevention.
    for f in [TmFunction::LogicalUnitReset, TmFunction::TargetReset] {
        let c = init(&t, "iqn.2026-11.test:c");
        good(&prevent(&b, true));
        good(&prevent(&c, true));
        assert_eq!(
            block_on(t.task_management(c.nexus, c.lun, f)),
            TmfResponse::Complete
        );
        c.clear_unit_attentions();
        b.clear_unit_attentions();
        good(&c.run(&EJECT, 0));
        good(&c.run(&LOAD, 0));
        b.clear_unit_attentions();
        t.remove_nexus(c.nexus);
    }
}

#[test]
fn refuses_prevention_to_nexuses_a_reservation_excludes() {
    let t = removable();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&a, RESERVE, WE, 1, 0));
    assert_eq!(prevent(&b, true).status(), Status::RESERVATION_CONFLICT);
    good(&prevent(&b, false));
    good(&prevent(&a, true));
    good(&prevent(&a, false));
}
