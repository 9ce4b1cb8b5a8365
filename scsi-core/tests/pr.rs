//! Persistent reservations (SPC-4 §5.13, §6.15, §6.16) through the engine,
//! with several initiators in process.
#![allow(clippy::cast_possible_truncation)]

mod pr_util;

use std::sync::Arc;

use pr_util::*;
use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::engine::ConfigError;
use tgtkit_scsi_core::pr::{FilePrStore, PrStore};
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::table::{self, Handler};
use tgtkit_scsi_core::test_utils::Outcome;

#[track_caller]
fn good(o: &Outcome) {
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
}

#[track_caller]
fn conflict(o: &Outcome) {
    assert_eq!(o.status(), Status::RESERVATION_CONFLICT, "{:?}", o.sense());
}

#[track_caller]
fn check(o: &Outcome, key: SenseKey, asc: Asc) {
    assert_eq!(o.status(), Status::CHECK_CONDITION);
    let s = o.sense().unwrap();
    assert_eq!((s.key, s.asc), (key, asc), "{s:?}");
}

#[track_caller]
fn ua(i: &tgtkit_scsi_core::test_utils::Initiator, asc: Asc) {
    check(&i.run(&[0; 6], 0), SenseKey::UNIT_ATTENTION, asc);
}

#[test]
fn accepts_register_reregister_and_unregister() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    assert_eq!(read_keys(&a), (0, vec![]));
    good(&prout(&a, REGISTER, 0, 0, 0x1111));
    assert_eq!(read_keys(&a), (1, vec![0x1111]));
    // SPC-4 §5.13.7: a registered nexus must give its key.
    conflict(&prout(&a, REGISTER, 0, 0, 0x2222));
    conflict(&prout(&a, REGISTER, 0, 0x9999, 0x2222));
    good(&prout(&a, REGISTER, 0, 0x1111, 0x2222));
    assert_eq!(read_keys(&a), (2, vec![0x2222]));
    good(&prout(&a, REGISTER, 0, 0x2222, 0));
    assert_eq!(read_keys(&a), (3, vec![]));
    // Unregistered, SARK zero: nothing happens, PRgeneration stays.
    good(&prout(&a, REGISTER, 0, 0, 0));
    assert_eq!(read_keys(&a).0, 3);
    // Unregistered with a non-zero RESERVATION KEY.
    conflict(&prout(&a, REGISTER, 0, 5, 6));
}

#[test]
fn accepts_register_and_ignore_existing_key() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    good(&prout(&a, REGISTER_AND_IGNORE, 0, 0, 0xa));
    good(&prout(&a, REGISTER_AND_IGNORE, 0, 0xdead, 0xb));
    assert_eq!(read_keys(&a), (2, vec![0xb]));
    good(&prout(&a, REGISTER_AND_IGNORE, 0, 0, 0));
    assert_eq!(read_keys(&a), (3, vec![]));
}

#[test]
fn rejects_bad_parameter_lists_with_field_pointers() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    // SPC-4 §6.16.3: 24 bytes unless SPEC_I_PT.
    let o = a.send(&prout_cdb(REGISTER, 0, 20), &[0; 20]);
    check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
    let o = a.send(&prout_cdb(REGISTER, 0, 28), &[0; 28]);
    check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
    // Buffer shorter than the parameter list length.
    let o = a.send(&prout_cdb(REGISTER, 0, 24), &[0; 10]);
    check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
    // APTPL without a store: PTPL_C is zero.
    let o = prout_params(&a, REGISTER, 0, &basic(0, 1, 0x01));
    check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    let f = o.sense().unwrap().field.unwrap();
    assert_eq!((f.in_cdb, f.byte, f.bit), (false, 20, Some(0)));
    // SPEC_I_PT on anything but REGISTER.
    good(&prout(&a, REGISTER, 0, 0, 1));
    let mut p = basic(1, 0, 0x08);
    p.extend_from_slice(&[0; 4]);
    let o = prout_params(&a, RESERVE, WE, &p);
    let f = o.sense().unwrap().field.unwrap();
    assert_eq!((f.in_cdb, f.byte, f.bit), (false, 20, Some(3)));
    // Bad TYPE and SCOPE in the CDB.
    let o = prout(&a, RESERVE, 2, 1, 0);
    let f = o.sense().unwrap().field.unwrap();
    assert_eq!((f.in_cdb, f.byte, f.bit), (true, 2, Some(0)));
    let p = basic(1, 0, 0);
    let mut cdb = prout_cdb(RESERVE, WE, 24);
    cdb[2] |= 0x10;
    let o = a.send(&cdb, &p);
    let f = o.sense().unwrap().field.unwrap();
    assert_eq!((f.in_cdb, f.byte, f.bit), (true, 2, Some(4)));
    // A TransportID with an invalid ADDITIONAL LENGTH, pointed at.
    let b = init(&t, "iqn.2026-11.test:b");
    let mut p = basic(0, 7, 0x08);
    let tid = [0x05u8, 0, 0, 5, b'x', 0, 0, 0, 0];
    p.extend_from_slice(&(tid.len() as u32).to_be_bytes());
    p.extend_from_slice(&tid);
    let o = prout_params(&b, REGISTER, 0, &p);
    let f = o.sense().unwrap().field.unwrap();
    assert_eq!((f.in_cdb, f.byte), (false, 28 + 2));
    assert_eq!(read_keys(&a).1, vec![1]);
}

#[test]
fn rejects_unknown_service_actions() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    // libiscsi PrinServiceactionRange: 0-3 work, 4-1Fh fail.
    for sa in 0..4u8 {
        assert_eq!(a.run(&prin_cdb(sa, 16384), 16384).status(), Status::GOOD);
    }
    for sa in 4..0x20u8 {
        let o = a.run(&prin_cdb(sa, 16384), 16384);
        let s = o.sense().unwrap();
        assert_eq!(s.asc, Asc::INVALID_FIELD_IN_CDB);
        assert_eq!(s.field.map(|f| (f.byte, f.bit)), Some((1, Some(4))));
    }
    for sa in 9..0x20u8 {
        let o = prout(&a, sa, 0, 0, 0);
        assert_eq!(o.sense().unwrap().asc, Asc::INVALID_FIELD_IN_CDB);
    }
}

#[test]
fn accepts_report_capabilities() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let o = a.run(&prin_cdb(2, 16384), 16384);
    good(&o);
    assert_eq!(o.data.len(), 8);
    assert_eq!(u16::from_be_bytes([o.data[0], o.data[1]]), 8);
    // CRH, SIP_C, ATP_C set; PTPL_C clear without a store.
    assert_eq!(o.data[2] & 0x1d, 0x1c);
    // TMV set, ALLOW COMMANDS <= 5 (libiscsi), PTPL_A clear.
    assert_eq!(o.data[3] & 0x80, 0x80);
    assert!((o.data[3] >> 4) & 7 <= 5);
    // All six types (SPC-4 table 217).
    assert_eq!((o.data[4], o.data[5]), (0xea, 0x01));
    // And each type really works (libiscsi PrinReportCapabilities).
    good(&prout(&a, REGISTER_AND_IGNORE, 0, 0, 0x77));
    for ty in TYPES {
        good(&prout(&a, RESERVE, ty, 0x77, 0));
        let expect = if ty == WE_AR || ty == EA_AR { 0 } else { 0x77 };
        assert_eq!(read_reservation(&a), Some((expect, ty)));
        good(&prout(&a, RELEASE, ty, 0x77, 0));
        assert_eq!(read_reservation(&a), None);
    }
}

#[test]
fn accepts_truncated_read_keys() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, REGISTER, 0, 0, 2));
    // An allocation length shorter than the data: the ADDITIONAL LENGTH
    // still tells the whole length (SPC-4 §4.2.5.6).
    let o = a.run(&prin_cdb(0, 12), 12);
    good(&o);
    assert_eq!(o.data.len(), 12);
    assert_eq!(be32(&o.data, 4), 16);
}

/// libiscsi ProutReserve.Access*: what a registered and an unregistered
/// second initiator may do under each type.
#[test]
fn accepts_access_rules_of_every_type() {
    // (type, reg read, reg write, unreg read, unreg write)
    let cases = [
        (EA, false, false, false, false),
        (WE, true, false, true, false),
        (EA_RO, true, true, false, false),
        (WE_RO, true, true, true, false),
        (EA_AR, true, true, false, false),
        (WE_AR, true, true, true, false),
    ];
    for (ty, rr, rw, ur, uw) in cases {
        let t = target();
        let a = init(&t, "iqn.2026-11.test:a");
        let b = init(&t, "iqn.2026-11.test:b");
        good(&prout(&a, REGISTER_AND_IGNORE, 0, 0, 0xa));
        good(&prout(&b, REGISTER_AND_IGNORE, 0, 0, 0xb));
        good(&prout(&a, RESERVE, ty, 0xa, 0));
        let key = if ty == WE_AR || ty == EA_AR { 0 } else { 0xa };
        assert_eq!(read_reservation(&a), Some((key, ty)));
        assert_eq!(read10(&a), Status::GOOD);
        assert_eq!(write10(&a), Status::GOOD);
        let st = |ok: bool| {
            if ok {
                Status::GOOD
            } else {
                Status::RESERVATION_CONFLICT
            }
        };
        assert_eq!(read10(&b), st(rr), "type {ty} registered read");
        assert_eq!(write10(&b), st(rw), "type {ty} registered write");
        good(&prout(&b, REGISTER, 0, 0xb, 0));
        assert_eq!(read10(&b), st(ur), "type {ty} unregistered read");
        assert_eq!(write10(&b), st(uw), "type {ty} unregistered write");
        good(&prout(&a, RELEASE, ty, 0xa, 0));
        good(&prout(&a, REGISTER, 0, 0xa, 0));
        assert_eq!(write10(&b), Status::GOOD);
    }
}

/// libiscsi ProutReserve.Ownership*: unregistering the holder releases a
/// reservation, except an All Registrants one while registrants remain.
#[test]
fn accepts_ownership_rules_of_every_type() {
    for ty in TYPES {
        let shared = ty == WE_AR || ty == EA_AR;
        let t = target();
        let a = init(&t, "iqn.2026-11.test:a");
        let b = init(&t, "iqn.2026-11.test:b");
        good(&prout(&a, REGISTER_AND_IGNORE, 0, 0, 1));
        good(&prout(&b, REGISTER_AND_IGNORE, 0, 0, 2));
        good(&prout(&a, RESERVE, ty, 1, 0));
        good(&prout(&a, REGISTER, 0, 1, 0));
        if shared {
            assert_eq!(read_reservation(&a), Some((0, ty)));
            good(&prout(&b, RELEASE, ty, 2, 0));
            // SPC-4 §5.13.11.2.2: releasing an All Registrants reservation
            // tells the other registrants (none left here but b).
        } else {
            assert_eq!(read_reservation(&a), None);
            if ty == WE_RO || ty == EA_RO {
                // SPC-4 §5.13.11.2.3: the remaining registrants learn it.
                ua(&b, Asc::RESERVATIONS_RELEASED);
            }
        }
        b.clear_unit_attentions();
        good(&prout(&b, REGISTER, 0, 2, 0));
        assert_eq!(read_keys(&a).1, Vec::<u64>::new());
    }
}

#[test]
fn accepts_reserve_rules() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    // Unregistered: conflict.
    conflict(&prout(&a, RESERVE, WE, 0, 0));
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, REGISTER, 0, 0, 2));
    conflict(&prout(&a, RESERVE, WE, 9, 0));
    good(&prout(&a, RESERVE, WE, 1, 0));
    let gen = read_keys(&a).0;
    // Same type again from the holder: no effect; another type: conflict.
    good(&prout(&a, RESERVE, WE, 1, 0));
    conflict(&prout(&a, RESERVE, EA, 1, 0));
    conflict(&prout(&b, RESERVE, WE, 2, 0));
    // RESERVE does not change PRgeneration (SPC-4 §6.15.2).
    assert_eq!(read_keys(&a).0, gen);
}

#[test]
fn accepts_release_rules() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    let c = init(&t, "iqn.2026-11.test:c");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, REGISTER, 0, 0, 2));
    good(&prout(&a, RELEASE, WE, 1, 0)); // nothing reserved: GOOD
    good(&prout(&a, RESERVE, WE_RO, 1, 0));
    good(&prout(&b, RELEASE, WE_RO, 2, 0)); // not the holder: no effect
    assert_eq!(read_reservation(&a), Some((1, WE_RO)));
    conflict(&prout(&c, RELEASE, WE_RO, 0, 0)); // not registered
    conflict(&prout(&a, RELEASE, WE_RO, 2, 0)); // wrong key
    let o = prout(&a, RELEASE, WE, 1, 0); // wrong type
    check(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
    );
    good(&prout(&a, RELEASE, WE_RO, 1, 0));
    assert_eq!(read_reservation(&a), None);
    ua(&b, Asc::RESERVATIONS_RELEASED);
    assert_eq!(
        c.run(&[0; 6], 0).status(),
        Status::GOOD,
        "c is not registered"
    );
    assert_eq!(
        a.run(&[0; 6], 0).status(),
        Status::GOOD,
        "not to the releaser"
    );
    // Releasing Write Exclusive raises nothing (SPC-4 §5.13.11.2.2).
    good(&prout(&a, RESERVE, WE, 1, 0));
    good(&prout(&a, RELEASE, WE, 1, 0));
    assert_eq!(b.run(&[0; 6], 0).status(), Status::GOOD);
}

#[test]
fn accepts_clear() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    let c = init(&t, "iqn.2026-11.test:c");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, REGISTER, 0, 0, 2));
    good(&prout(&a, RESERVE, EA, 1, 0));
    conflict(&prout(&c, CLEAR, 0, 0, 0));
    conflict(&prout(&b, CLEAR, 0, 3, 0));
    let gen = read_keys(&a).0;
    good(&prout(&b, CLEAR, 0, 2, 0));
    ua(&a, Asc::RESERVATIONS_PREEMPTED);
    assert_eq!(read_keys(&a), (gen + 1, vec![]));
    assert_eq!(read_reservation(&a), None);
    assert_eq!(b.run(&[0; 6], 0).status(), Status::GOOD);
    assert_eq!(c.run(&[0; 6], 0).status(), Status::GOOD);
    assert_eq!(write10(&c), Status::GOOD);
}

/// libiscsi ProutPreempt.RemoveRegistration and the SPC-4 §5.13.11.4 cases.
#[test]
fn accepts_preempt() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    let c = init(&t, "iqn.2026-11.test:c");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, REGISTER, 0, 0, 2));
    // No reservation: removes registrations with the key.
    good(&prout(&a, PREEMPT, WE, 1, 2));
    assert_eq!(read_keys(&a).1, vec![1]);
    ua(&b, Asc::REGISTRATIONS_PREEMPTED);
    // No such key: conflict; key zero: invalid field at byte 8.
    conflict(&prout(&a, PREEMPT, WE, 1, 2));
    let o = prout(&a, PREEMPT, WE, 1, 0);
    let f = o.sense().unwrap().field.unwrap();
    assert_eq!((f.in_cdb, f.byte), (false, 8));
    conflict(&prout(&c, PREEMPT, WE, 0, 1)); // unregistered
                                             // Preempting the holder moves the reservation, with the new type.
    good(&prout(&b, REGISTER, 0, 0, 2));
    good(&prout(&c, REGISTER, 0, 0, 3));
    good(&prout(&a, RESERVE, WE, 1, 0));
    good(&prout(&b, PREEMPT, EA_RO, 2, 1));
    assert_eq!(read_reservation(&b), Some((2, EA_RO)));
    assert_eq!(read_keys(&b).1, vec![2, 3]);
    ua(&a, Asc::REGISTRATIONS_PREEMPTED);
    ua(&c, Asc::RESERVATIONS_RELEASED); // the type changed
                                        // Preempting a non-holder key leaves the reservation alone.
    good(&prout(&b, PREEMPT, EA_RO, 2, 3));
    assert_eq!(read_reservation(&b), Some((2, EA_RO)));
    ua(&c, Asc::REGISTRATIONS_PREEMPTED);
    // All Registrants, SARK zero: everyone else goes, new reservation.
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, RELEASE, EA_RO, 2, 0));
    good(&prout(&b, RESERVE, WE_AR, 2, 0));
    a.clear_unit_attentions();
    good(&prout(&a, PREEMPT, EA, 1, 0));
    assert_eq!(read_reservation(&a), Some((1, EA)));
    assert_eq!(read_keys(&a).1, vec![1]);
    ua(&b, Asc::REGISTRATIONS_PREEMPTED);
}

#[test]
fn accepts_register_and_move() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&a, RESERVE, WE, 1, 0));
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&1u64.to_be_bytes());
    p[8..16].copy_from_slice(&0xbbu64.to_be_bytes());
    p[17] = 0x02; // UNREG
    p[18..20].copy_from_slice(&1u16.to_be_bytes());
    let tid = iscsi_tid("iqn.2026-11.test:b", Some("000000000001"));
    p[20..24].copy_from_slice(&(tid.len() as u32).to_be_bytes());
    p.extend_from_slice(&tid);
    good(&prout_params(&a, REGISTER_AND_MOVE, WE, &p));
    assert_eq!(read_reservation(&b), Some((0xbb, WE)));
    assert_eq!(read_keys(&b).1, vec![0xbb]);
    assert_eq!(write10(&b), Status::GOOD);
    assert_eq!(write10(&a), Status::RESERVATION_CONFLICT);
    // The one who is not the holder cannot move it.
    conflict(&prout_params(&a, REGISTER_AND_MOVE, WE, &p));
}

#[test]
fn accepts_spec_i_pt_and_all_tg_pt() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    // b registered by a through SPEC_I_PT, name-only TransportID (every
    // port of that name), plus an FC port.
    let mut tids = iscsi_tid("IQN.2026-11.test:B", None);
    let mut fc = vec![0u8; 24];
    fc[8..16].copy_from_slice(&[0x21, 0, 0, 0x24, 0xff, 0x12, 0x34, 0x56]);
    tids.extend_from_slice(&fc);
    let mut p = basic(0, 0x5, 0x08);
    p.extend_from_slice(&(tids.len() as u32).to_be_bytes());
    p.extend_from_slice(&tids);
    good(&prout_params(&a, REGISTER, 0, &p));
    assert_eq!(read_keys(&a).1, vec![5, 5, 5]);
    // b is registered: it may reserve with the key.
    good(&prout(&b, RESERVE, EA, 5, 0));
    conflict(&prout(&a, RESERVE, EA, 5, 0));
    good(&prout(&b, RELEASE, EA, 5, 0));
    // READ FULL STATUS lists the three with their TransportIDs.
    let o = a.run(&prin_cdb(3, 4096), 4096);
    good(&o);
    let mut at = 8;
    let mut protos = Vec::new();
    while at < o.data.len() {
        let add = be32(&o.data, at + 20) as usize;
        protos.push(o.data[at + 24] & 0x0f);
        at += 24 + add;
    }
    assert_eq!(at, o.data.len());
    assert_eq!(protos, vec![5, 5, 0]);
    // ALL_TG_PT: a registration through port 1 covers port 2.
    let c1 = init_on(&t, "iqn.2026-11.test:c,i,0x000000000009", 1, Vec::new());
    let c2 = init_on(&t, "iqn.2026-11.test:c,i,0x000000000009", 2, Vec::new());
    good(&prout_params(&c1, REGISTER, 0, &basic(0, 0xc, 0x04)));
    good(&prout(&c2, RESERVE, WE, 0xc, 0));
    // Without ALL_TG_PT the other port is a different I_T nexus.
    let d1 = init_on(&t, "iqn.2026-11.test:d,i,0x000000000009", 1, Vec::new());
    let d2 = init_on(&t, "iqn.2026-11.test:d,i,0x000000000009", 2, Vec::new());
    good(&prout(&d1, REGISTER, 0, 0, 0xd));
    conflict(&prout(&d2, RESERVE, WE, 0xd, 0));
}

#[test]
fn keeps_registrations_across_relogin() {
    let t = target();
    let port = "iqn.2026-11.test:a,i,0x23d000000001";
    let tid = iscsi_tid("iqn.2026-11.test:a", Some("23d000000001"));
    let a = init_on(&t, port, 1, tid.clone());
    good(&prout(&a, REGISTER, 0, 0, 0x42));
    good(&prout(&a, RESERVE, EA, 0x42, 0));
    t.remove_nexus(a.nexus);
    let a2 = {
        let mut i = tgtkit_scsi_core::test_utils::Initiator::new(&t, "iqn.2026-11.test:tmp");
        t.remove_nexus(i.nexus);
        i.nexus = t.add_nexus(tgtkit_scsi_core::engine::NexusInfo {
            initiator_port: port.into(),
            target_port: "t".into(),
            relative_port: 1,
            transport_id: tid,
        });
        i
    };
    // SAM-5 §6.3.4: the new nexus learns of the loss first.
    ua(&a2, Asc::I_T_NEXUS_LOSS_OCCURRED);
    assert_eq!(read_keys(&a2).1, vec![0x42]);
    assert_eq!(write10(&a2), Status::GOOD, "still the holder");
    good(&prout(&a2, RELEASE, EA, 0x42, 0));
    // The same name with another ISID is another initiator port.
    let other = init_on(&t, "iqn.2026-11.test:a,i,0x23d000000002", 1, Vec::new());
    conflict(&prout(&other, RESERVE, EA, 0x42, 0));
}

#[test]
fn accepts_replace_lost_reservation() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, REGISTER, 0, 0, 2));
    good(&prout(&a, RESERVE, WE, 1, 0));
    conflict(&prout(&b, REPLACE_LOST, EA, 9, 0));
    good(&prout(&b, REPLACE_LOST, EA, 2, 0));
    ua(&a, Asc::RESERVATIONS_RELEASED);
    assert_eq!(read_reservation(&a), Some((2, EA)));
}

/// SPC-4 §5.13.1 table 47 and SBC-3 table 13, written out again by command
/// name: (WE other, EA other, unregistered under WE RO/AR, unregistered
/// under EA RO/AR) conflict. Registered nexuses under RO/AR are always
/// allowed.
fn expected(name: &str) -> Option<[bool; 4]> {
    const A: [bool; 4] = [false, false, false, false];
    const R: [bool; 4] = [false, true, false, true];
    const W: [bool; 4] = [true, true, true, true];
    Some(match name {
        "TEST UNIT READY"
        | "INQUIRY"
        | "REQUEST SENSE"
        | "REPORT LUNS"
        | "LOG SENSE"
        | "READ CAPACITY(10)"
        | "READ CAPACITY(16)"
        | "PERSISTENT RESERVE IN"
        // Policy: the copy manager checks the units it reads and writes
        // (tests/xcopy.rs).
        | "EXTENDED COPY(LID1)"
        // PREVENT 00b (the zeroed CDB); PREVENT set is tests/medium.rs's.
        | "PREVENT ALLOW MEDIUM REMOVAL"
        | "REPORT TARGET PORT GROUPS" => A,
        "MODE SENSE(6)"
        | "MODE SENSE(10)"
        | "REPORT SUPPORTED OPERATION CODES"
        | "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS"
        | "GET LBA STATUS" => R,
        n if n.starts_with("RECEIVE COPY") => R,
        // The ROD token commands read as READ does (WRITE USING TOKEN is a
        // WRITE below).
        "POPULATE TOKEN" | "RECEIVE ROD TOKEN INFORMATION" => R,
        n if n.starts_with("READ(")
            || n.starts_with("VERIFY")
            || n.starts_with("PRE-FETCH")
            || n.starts_with("READ DEFECT DATA") =>
        {
            R
        }
        n if n.starts_with("WRITE")
            || n.starts_with("SYNCHRONIZE CACHE")
            || n.starts_with("MODE SELECT") =>
        {
            W
        }
        "UNMAP" | "COMPARE AND WRITE" | "FORMAT UNIT" | "START STOP UNIT" | "ORWRITE(16)"
        | "SANITIZE"
        | "SET TARGET PORT GROUPS" => W,
        _ => return None,
    })
}

#[test]
fn accepts_every_conflict_table_row_under_every_type() {
    let mut rows = 0;
    for ty in TYPES {
        for row in table::rows(DeviceType::Disk) {
            if matches!(
                row.handler,
                Handler::PersistentReserveOut | Handler::Reserve | Handler::Release
            ) {
                continue; // their handlers decide; tested above and below
            }
            let want =
                expected(row.name).unwrap_or_else(|| panic!("no reference for {}", row.name));
            let t = target();
            let holder = init(&t, "iqn.2026-11.test:holder");
            let reg = init(&t, "iqn.2026-11.test:reg");
            let unreg = init(&t, "iqn.2026-11.test:unreg");
            good(&prout(&holder, REGISTER, 0, 0, 1));
            good(&prout(&reg, REGISTER, 0, 0, 2));
            good(&prout(&holder, RESERVE, ty, 1, 0));
            let mut cdb = [0u8; 16];
            cdb[0] = row.opcode;
            if let Some(sa) = row.service_action {
                cdb[1] = sa as u8;
            }
            let cdb = &cdb[..usize::from(row.cdb_len)];
            let ro_ar = !matches!(ty, WE | EA);
            let we_kind = matches!(ty, WE | WE_RO | WE_AR);
            let column = |registered: bool| match (ty, registered) {
                (WE, _) => want[0],
                (EA, _) => want[1],
                (_, true) => false,
                _ if we_kind => want[2],
                _ => want[3],
            };
            let run = |i: &tgtkit_scsi_core::test_utils::Initiator| {
                let buf = if row.direction == tgtkit_scsi_core::table::DataDirection::Write {
                    i.send(cdb, &[])
                } else {
                    i.run(cdb, 512)
                };
                buf.status() == Status::RESERVATION_CONFLICT
            };
            assert!(!run(&holder), "{} from the holder under {ty}", row.name);
            assert_eq!(
                run(&reg),
                column(ro_ar),
                "{} registered under {ty}",
                row.name
            );
            assert_eq!(
                run(&unreg),
                column(false),
                "{} unregistered under {ty}",
                row.name
            );
            rows += 1;
        }
    }
    assert!(rows > 6 * 40);
}

#[test]
fn accepts_start_stop_unit_start_under_any_reservation() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&a, RESERVE, EA, 1, 0));
    // SBC-3 table 13: START=1, POWER CONDITION 0h is allowed.
    assert_eq!(b.run(&[0x1b, 0, 0, 0, 0x01, 0], 0).status(), Status::GOOD);
    assert_eq!(
        b.run(&[0x1b, 0, 0, 0, 0x00, 0], 0).status(),
        Status::RESERVATION_CONFLICT
    );
}

#[test]
fn accepts_preempt_and_abort_state_changes() {
    // The task aborts of PREEMPT AND ABORT are tested in tests/tmf.rs.
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prout(&a, REGISTER, 0, 0, 1));
    good(&prout(&b, REGISTER, 0, 0, 2));
    good(&prout(&b, RESERVE, WE, 2, 0));
    good(&prout(&a, PREEMPT_AND_ABORT, EA, 1, 2));
    assert_eq!(read_reservation(&a), Some((1, EA)));
    assert_eq!(read_keys(&a).1, vec![1]);
    ua(&b, Asc::REGISTRATIONS_PREEMPTED);
}

#[test]
fn persists_with_aptpl_and_reloads() {
    let dir = std::env::temp_dir().join(format!("tgtkit-pr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lun0.pr");
    let _ = std::fs::remove_file(&path);
    let store: Arc<dyn PrStore> = Arc::new(FilePrStore::new(&path));
    let t = target_with(|c| c.persist_reservations(store.clone()));
    let a = init(&t, "iqn.2026-11.test:a");
    let o = a.run(&prin_cdb(2, 8), 8);
    assert_eq!(o.data[2] & 0x01, 0x01, "PTPL_C");
    good(&prout(&a, REGISTER, 0, 0, 1)); // APTPL clear: nothing saved
    assert!(!path.exists());
    good(&prout_params(&a, REGISTER, 0, &basic(1, 2, 0x01)));
    good(&prout(&a, RESERVE, WE_RO, 2, 0));
    assert!(path.exists());
    assert_eq!(a.run(&prin_cdb(2, 8), 8).data[3] & 0x01, 0x01, "PTPL_A");
    // A "power cycle": a new target over the same store.
    let t2 = target_with(|c| c.persist_reservations(store.clone()));
    let a2 = init(&t2, "iqn.2026-11.test:a");
    assert_eq!(read_keys(&a2).1, vec![2]);
    assert_eq!(read_reservation(&a2), Some((2, WE_RO)));
    let b2 = init(&t2, "iqn.2026-11.test:b");
    assert_eq!(write10(&b2), Status::RESERVATION_CONFLICT);
    // APTPL turned off: the saved state goes.
    good(&prout_params(&a2, REGISTER, 0, &basic(2, 2, 0)));
    assert!(!path.exists());
    // Corrupt state is an error at start-up, never an empty state.
    std::fs::write(&path, b"tgtkit-pr 1\naptpl 1\nend 0000000000000000\n").unwrap();
    let t3 = tgtkit_scsi_core::engine::Target::new(Default::default());
    let err = t3
        .add_lun(
            0,
            tgtkit_scsi_core::engine::LuConfig::new(Arc::new(
                tgtkit_scsi_core::test_utils::MemBackstore::new(8, 512),
            ))
            .persist_reservations(store),
        )
        .unwrap_err();
    assert!(matches!(err, ConfigError::ReservationState(_)), "{err:?}");
    assert!(t3.lun_indexes().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- SPC-2 RESERVE / RELEASE (libiscsi Reserve6.*) ----

#[test]
fn accepts_reserve6_between_two_initiators() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    assert_eq!(reserve6(&a), Status::GOOD);
    assert_eq!(reserve6(&a), Status::GOOD);
    assert_eq!(reserve6(&b), Status::RESERVATION_CONFLICT);
    assert_eq!(release6(&b), Status::GOOD, "a no-op");
    let mode_sense = [0x1a, 0, 0x3f, 0, 0xff, 0];
    assert_eq!(a.run(&mode_sense, 255).status(), Status::GOOD);
    assert_eq!(
        b.run(&mode_sense, 255).status(),
        Status::RESERVATION_CONFLICT
    );
    // SPC-2 §5.5.1: INQUIRY, REPORT LUNS, REQUEST SENSE still pass.
    assert_eq!(b.run(&[0x12, 0, 0, 0, 36, 0], 36).status(), Status::GOOD);
    assert_eq!(
        b.run(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256)
            .status(),
        Status::GOOD
    );
    assert_eq!(b.run(&[0x03, 0, 0, 0, 18, 0], 18).status(), Status::GOOD);
    // PERSISTENT RESERVE IN/OUT conflict with another nexus's RESERVE.
    assert_eq!(
        b.run(&prin_cdb(0, 64), 64).status(),
        Status::RESERVATION_CONFLICT
    );
    conflict(&prout(&b, REGISTER, 0, 0, 1));
    assert_eq!(release6(&a), Status::GOOD);
    assert_eq!(reserve6(&b), Status::GOOD);
    assert_eq!(release6(&b), Status::GOOD);
    // RESERVE(10)/RELEASE(10) too; third-party forms are refused.
    assert_eq!(
        a.run(&[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0).status(),
        Status::GOOD
    );
    assert_eq!(
        b.run(&[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0).status(),
        Status::RESERVATION_CONFLICT
    );
    let o = a.run(&[0x56, 0x10, 0, 0, 0, 0, 0, 0, 0, 0], 0);
    check(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
    assert_eq!(
        a.run(&[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0).status(),
        Status::GOOD
    );
    assert_eq!(reserve6(&b), Status::GOOD);
}

#[test]
fn releases_reserve6_on_nexus_loss_and_resets() {
    use tgtkit_scsi_core::engine::TmFunction;
    let block = |f: &mut dyn FnMut(
        &Arc<tgtkit_scsi_core::engine::Target>,
        &tgtkit_scsi_core::test_utils::Initiator,
    )| {
        let t = target();
        let a = init(&t, "iqn.2026-11.test:a");
        let b = init(&t, "iqn.2026-11.test:b");
        assert_eq!(reserve6(&a), Status::GOOD);
        assert_eq!(reserve6(&b), Status::RESERVATION_CONFLICT);
        f(&t, &a);
        b.clear_unit_attentions();
        assert_eq!(reserve6(&b), Status::GOOD);
    };
    block(&mut |t, a| t.remove_nexus(a.nexus));
    for f in [
        TmFunction::LogicalUnitReset,
        TmFunction::TargetReset,
        TmFunction::ITNexusReset,
    ] {
        block(&mut |t, a| {
            let r = futures::executor::block_on(t.task_management(a.nexus, a.lun, f));
            assert_eq!(r, tgtkit_scsi_core::engine::TmfResponse::Complete);
        });
    }
}

#[test]
fn accepts_reserve6_interplay_with_persistent_reservations() {
    let t = target();
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    good(&prout(&a, REGISTER, 0, 0, 1));
    // Registrations alone do not stop RESERVE (SPC-4 §5.13.3, CRH=1).
    assert_eq!(reserve6(&b), Status::GOOD);
    assert_eq!(release6(&b), Status::GOOD);
    good(&prout(&a, RESERVE, WE, 1, 0));
    // While a persistent reservation exists: holder's RESERVE does nothing,
    // anyone else's conflicts; RELEASE from a registrant does nothing.
    assert_eq!(reserve6(&a), Status::GOOD);
    assert_eq!(reserve6(&b), Status::RESERVATION_CONFLICT);
    assert_eq!(release6(&a), Status::GOOD);
    assert_eq!(release6(&b), Status::RESERVATION_CONFLICT);
    assert_eq!(read_reservation(&a), Some((1, WE)));
    good(&prout(&a, RELEASE, WE, 1, 0));
    assert_eq!(reserve6(&b), Status::GOOD);
}

/// A store whose saves fail: the command fails and nothing changes.
#[derive(Debug)]
struct BrokenStore;

impl PrStore for BrokenStore {
    fn load(
        &self,
    ) -> Result<Option<tgtkit_scsi_core::pr::PrState>, tgtkit_scsi_core::pr::PrStoreError> {
        Ok(None)
    }
    fn save(
        &self,
        _: &tgtkit_scsi_core::pr::PrState,
    ) -> Result<(), tgtkit_scsi_core::pr::PrStoreError> {
        Err(tgtkit_scsi_core::pr::PrStoreError::Io {
            path: "broken".into(),
            source: std::io::Error::other("disk full"),
        })
    }
    fn clear(&self) -> Result<(), tgtkit_scsi_core::pr::PrStoreError> {
        Ok(())
    }
}

#[test]
fn rejects_changes_that_cannot_be_persisted() {
    let t = target_with(|c| c.persist_reservations(Arc::new(BrokenStore)));
    let a = init(&t, "iqn.2026-11.test:a");
    let o = prout_params(&a, REGISTER, 0, &basic(0, 1, 0x01));
    check(&o, SenseKey::HARDWARE_ERROR, Asc::INTERNAL_TARGET_FAILURE);
    assert_eq!(read_keys(&a), (0, vec![]));
    // Without APTPL nothing is saved, so nothing fails.
    good(&prout(&a, REGISTER, 0, 0, 1));
    assert_eq!(read_keys(&a), (1, vec![1]));
}
