//! Asymmetric logical unit access through the engine: INQUIRY TPGS and the
//! VPD 83h target port group designator, REPORT TARGET PORT GROUPS, what
//! each access state lets through, implicit changes by the embedder and
//! explicit ones by SET TARGET PORT GROUPS under an `AluaPolicy`.
#![allow(clippy::cast_possible_truncation)]

mod pr_util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pr_util::*;
use tgtkit_scsi_core::alua::{AccessState, AluaPolicy};
use tgtkit_scsi_core::engine::Target;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, Outcome};

fn on_port(t: &Arc<Target>, name: &str, port: u16) -> Initiator {
    init_on(t, &format!("{name},i,0x1"), port, Vec::new())
}

fn rtpg(i: &Initiator, extended: bool) -> Outcome {
    let mut c = [0u8; 12];
    c[0] = 0xa3;
    c[1] = 0x0a | if extended { 0x20 } else { 0 };
    c[9] = 0xff;
    i.run(&c, 255)
}

fn stpg(i: &Initiator, changes: &[(u8, u16)]) -> Outcome {
    let mut p = vec![0u8; 4];
    for &(state, group) in changes {
        p.extend_from_slice(&[state, 0]);
        p.extend_from_slice(&group.to_be_bytes());
    }
    let mut c = [0u8; 12];
    c[0] = 0xa4;
    c[1] = 0x0a;
    c[6..10].copy_from_slice(&(p.len() as u32).to_be_bytes());
    i.send(&c, &p)
}

/// (group, state code, ports) of each descriptor.
fn groups(o: &Outcome) -> Vec<(u16, u8, Vec<u16>)> {
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
    let d = &o.data;
    assert_eq!(be32(d, 0) as usize, d.len() - 4);
    let mut at = 4;
    let mut out = Vec::new();
    while at < d.len() {
        let n = usize::from(d[at + 7]);
        let ports = (0..n)
            .map(|i| u16::from_be_bytes([d[at + 8 + 4 * i + 2], d[at + 8 + 4 * i + 3]]))
            .collect();
        out.push((
            u16::from_be_bytes([d[at + 2], d[at + 3]]),
            d[at] & 0x0f,
            ports,
        ));
        at += 8 + 4 * n;
    }
    out
}

#[track_caller]
fn sense(o: &Outcome, key: SenseKey, asc: Asc) {
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().unwrap();
    assert_eq!((s.key, s.asc), (key, asc), "{s:?}");
}

#[test]
fn reports_one_active_group_by_default() {
    let t = target();
    let a = on_port(&t, "iqn.2026-11.test:a", 1);
    let b = on_port(&t, "iqn.2026-11.test:b", 2);
    let inq = a.run(&[0x12, 0, 0, 0, 36, 0], 36);
    assert_eq!((inq.data[5] >> 4) & 3, 1, "implicit ALUA");
    assert_eq!(groups(&rtpg(&a, false)), vec![(1, 0, vec![1, 2])]);
    let ext = rtpg(&b, true);
    assert_eq!(ext.data[4], 0x10);
    // VPD 83h names the port's group.
    let vpd = a.run(&[0x12, 1, 0x83, 0, 255, 0], 255);
    let d = &vpd.data;
    let mut at = 4;
    let mut group = None;
    while at + 4 <= d.len() {
        let len = usize::from(d[at + 3]);
        if d[at + 1] == 0x15 {
            group = Some(u16::from_be_bytes([d[at + 6], d[at + 7]]));
        }
        at += 4 + len;
    }
    assert_eq!(group, Some(1));
    // Without a policy, SET TARGET PORT GROUPS is refused and not listed.
    let o = stpg(&a, &[(2, 1)]);
    sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB);
    let rsoc = a.run(&[0xa3, 0x0c, 0x02, 0xa4, 0, 0x0a, 0, 0, 0, 16, 0, 0], 16);
    assert_eq!(rsoc.data[1] & 7, 1, "SET TARGET PORT GROUPS not supported");
}

#[test]
fn lets_standby_and_unavailable_paths_through_only_what_spc4_allows() {
    let t = target();
    t.add_port_group(2, &[2], AccessState::Standby).unwrap();
    let a = on_port(&t, "iqn.2026-11.test:a", 1);
    let b = on_port(&t, "iqn.2026-11.test:b", 2);
    assert_eq!(
        groups(&rtpg(&b, false)),
        vec![(1, 0, vec![1]), (2, 2, vec![2])]
    );
    assert_eq!(
        a.run(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 512).status(),
        Status::GOOD
    );
    let read = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    sense(
        &b.run(&read, 512),
        SenseKey::NOT_READY,
        Asc::LUN_NOT_ACCESSIBLE_STANDBY,
    );
    sense(
        &b.run(&[0; 6], 0),
        SenseKey::NOT_READY,
        Asc::LUN_NOT_ACCESSIBLE_STANDBY,
    );
    assert_eq!(
        b.run(&[0x1a, 0, 0x3f, 0, 255, 0], 255).status(),
        Status::GOOD
    );
    assert_eq!(b.run(&[0x12, 0, 0, 0, 36, 0], 36).status(), Status::GOOD);

    // The embedder moves the group: everyone is told.
    assert!(t.set_access_state(2, AccessState::Unavailable));
    sense(
        &a.run(&[0; 6], 0),
        SenseKey::UNIT_ATTENTION,
        Asc::ASYMMETRIC_ACCESS_STATE_CHANGED,
    );
    sense(
        &b.run(&rtpg_cdb(), 255),
        SenseKey::UNIT_ATTENTION,
        Asc::ASYMMETRIC_ACCESS_STATE_CHANGED,
    );
    sense(
        &b.run(&[0x1a, 0, 0x3f, 0, 255, 0], 255),
        SenseKey::NOT_READY,
        Asc::LUN_NOT_ACCESSIBLE_UNAVAILABLE,
    );
    assert_eq!(groups(&rtpg(&b, false))[1].1, 3);
    assert!(t.set_access_state(2, AccessState::ActiveNonOptimized));
    b.clear_unit_attentions();
    assert_eq!(b.run(&read, 512).status(), Status::GOOD);
    assert!(!t.set_access_state(9, AccessState::Standby));
}

fn rtpg_cdb() -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xa3;
    c[1] = 0x0a;
    c[9] = 0xff;
    c
}

struct Gate(AtomicBool);

impl AluaPolicy for Gate {
    fn allow(&self, _group: u16, _state: AccessState) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[test]
fn sets_states_explicitly_as_the_policy_allows() {
    let t = target();
    t.add_port_group(2, &[2], AccessState::Standby).unwrap();
    let gate = Arc::new(Gate(AtomicBool::new(false)));
    t.set_alua_policy(gate.clone());
    let a = on_port(&t, "iqn.2026-11.test:a", 1);
    let b = on_port(&t, "iqn.2026-11.test:b", 2);
    assert_eq!((a.run(&[0x12, 0, 0, 0, 36, 0], 36).data[5] >> 4) & 3, 3);
    // Refused by the policy: nothing changes.
    let o = stpg(&b, &[(0, 2), (1, 1)]);
    sense(
        &o,
        SenseKey::ABORTED_COMMAND,
        Asc::SET_TARGET_PORT_GROUPS_FAILED,
    );
    assert_eq!(t.access_state_of_port(2), AccessState::Standby);
    gate.0.store(true, Ordering::Release);
    // A standby path may ask to become active; its own nexus is not told.
    assert_eq!(stpg(&b, &[(0, 2), (1, 1)]).status(), Status::GOOD);
    assert_eq!(t.access_state_of_port(2), AccessState::ActiveOptimized);
    assert_eq!(t.access_state_of_port(1), AccessState::ActiveNonOptimized);
    assert_eq!(b.run(&[0; 6], 0).status(), Status::GOOD);
    sense(
        &a.run(&[0; 6], 0),
        SenseKey::UNIT_ATTENTION,
        Asc::ASYMMETRIC_ACCESS_STATE_CHANGED,
    );
    let g = groups(&rtpg(&a, false));
    assert_eq!((g[0].1, g[1].1), (1, 0));
    // Transitioning cannot be asked for; unknown groups are refused.
    let o = stpg(&a, &[(0x0f, 1)]);
    sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    let o = stpg(&a, &[(0, 7)]);
    sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
}

#[test]
fn refuses_bad_port_groups() {
    let t = target();
    assert!(t.add_port_group(0, &[3], AccessState::Standby).is_err());
    assert!(t.add_port_group(1, &[3], AccessState::Standby).is_err());
    t.add_port_group(2, &[3], AccessState::Standby).unwrap();
    assert!(t.add_port_group(4, &[3], AccessState::Standby).is_err());
}

#[test]
fn gives_one_logical_unit_its_own_access_states() {
    let t = target();
    t.add_lun(
        1,
        tgtkit_scsi_core::engine::LuConfig::new(Arc::new(
            tgtkit_scsi_core::test_utils::MemBackstore::new(64, 512),
        )),
    )
    .unwrap();
    t.add_port_group(2, &[2], AccessState::ActiveOptimized)
        .unwrap();
    let lun1 = tgtkit_scsi_core::lun::Lun::from_index(1).unwrap();
    let a0 = on_port(&t, "iqn.2026-11.test:a", 2);
    let a1 = on_port(&t, "iqn.2026-11.test:a1", 2).with_lun(lun1);
    a0.clear_unit_attentions();
    a1.clear_unit_attentions();
    let read = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    // LUN 1 is in standby through group 2; LUN 0 is not.
    assert!(t.set_lu_access_state(1, 2, Some(AccessState::Standby)));
    assert!(!t.set_lu_access_state(1, 9, Some(AccessState::Standby)));
    assert!(!t.set_lu_access_state(7, 2, Some(AccessState::Standby)));
    sense(
        &a1.run(&read, 512),
        SenseKey::UNIT_ATTENTION,
        Asc::ASYMMETRIC_ACCESS_STATE_CHANGED,
    );
    sense(
        &a1.run(&read, 512),
        SenseKey::NOT_READY,
        Asc::LUN_NOT_ACCESSIBLE_STANDBY,
    );
    assert_eq!(a0.run(&read, 512).status(), Status::GOOD, "no UA on LUN 0");
    assert_eq!(groups(&rtpg(&a1, false))[1].1, 2, "standby on LUN 1");
    assert_eq!(groups(&rtpg(&a0, false))[1].1, 0, "active on LUN 0");
    // A target-wide change leaves LUN 1's own state in place.
    assert!(t.set_access_state(2, AccessState::ActiveNonOptimized));
    a0.clear_unit_attentions();
    a1.clear_unit_attentions();
    assert_eq!(groups(&rtpg(&a0, false))[1].1, 1);
    assert_eq!(groups(&rtpg(&a1, false))[1].1, 2);
    // Back to the group's state.
    assert!(t.set_lu_access_state(1, 2, None));
    a1.clear_unit_attentions();
    assert_eq!(a1.run(&read, 512).status(), Status::GOOD);
    assert_eq!(groups(&rtpg(&a1, false))[1].1, 1);
}
