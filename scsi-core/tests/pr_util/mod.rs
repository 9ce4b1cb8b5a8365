//! Helpers for the reservation, TMF and UA tests: CDB builders and readers
//! for PERSISTENT RESERVE IN/OUT, RESERVE/RELEASE and the control page.
#![allow(dead_code)]
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, Target, TargetConfig};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore, Outcome};

pub const WE: u8 = 1;
pub const EA: u8 = 3;
pub const WE_RO: u8 = 5;
pub const EA_RO: u8 = 6;
pub const WE_AR: u8 = 7;
pub const EA_AR: u8 = 8;
pub const TYPES: [u8; 6] = [WE, EA, WE_RO, EA_RO, WE_AR, EA_AR];

pub const REGISTER: u8 = 0;
pub const RESERVE: u8 = 1;
pub const RELEASE: u8 = 2;
pub const CLEAR: u8 = 3;
pub const PREEMPT: u8 = 4;
pub const PREEMPT_AND_ABORT: u8 = 5;
pub const REGISTER_AND_IGNORE: u8 = 6;
pub const REGISTER_AND_MOVE: u8 = 7;
pub const REPLACE_LOST: u8 = 8;

pub fn target_with(config: impl FnOnce(LuConfig) -> LuConfig) -> Arc<Target> {
    let target = Target::new(TargetConfig::default());
    target
        .add_lun(
            0,
            config(LuConfig::new(Arc::new(MemBackstore::new(1024, 512)))),
        )
        .unwrap();
    target
}

pub fn target() -> Arc<Target> {
    target_with(|c| c)
}

/// A ready initiator (unit attentions consumed).
pub fn init(t: &Arc<Target>, name: &str) -> Initiator {
    let i = Initiator::new(t, name);
    i.clear_unit_attentions();
    i
}

/// An initiator on a nexus with explicit identity.
pub fn init_on(
    t: &Arc<Target>,
    port: &str,
    relative_port: u16,
    transport_id: Vec<u8>,
) -> Initiator {
    let mut i = Initiator::new(t, "iqn.2026-11.test:placeholder");
    t.remove_nexus(i.nexus);
    i.nexus = t.add_nexus(NexusInfo {
        initiator_port: port.into(),
        target_port: format!("{},t,0x{relative_port:04x}", t.config().name),
        relative_port,
        transport_id,
    });
    i.clear_unit_attentions();
    i
}

pub fn prout_cdb(sa: u8, pr_type: u8, len: u32) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x5f;
    c[1] = sa;
    c[2] = pr_type & 0x0f;
    c[5..9].copy_from_slice(&len.to_be_bytes());
    c
}

/// The basic 24-byte parameter list (SPC-4 table 221).
pub fn basic(key: u64, sa_key: u64, flags: u8) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = flags;
    p
}

pub fn prout(i: &Initiator, sa: u8, pr_type: u8, key: u64, sa_key: u64) -> Outcome {
    let p = basic(key, sa_key, 0);
    i.send(&prout_cdb(sa, pr_type, p.len() as u32), &p)
}

pub fn prout_params(i: &Initiator, sa: u8, pr_type: u8, p: &[u8]) -> Outcome {
    i.send(&prout_cdb(sa, pr_type, p.len() as u32), p)
}

pub fn prin_cdb(sa: u8, alloc: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x5e;
    c[1] = sa;
    c[7..9].copy_from_slice(&alloc.to_be_bytes());
    c
}

pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// READ KEYS: (PRgeneration, keys).
pub fn read_keys(i: &Initiator) -> (u32, Vec<u64>) {
    let o = i.run(&prin_cdb(0, 4096), 4096);
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
    let n = be32(&o.data, 4) as usize;
    assert_eq!(n % 8, 0);
    let keys = (0..n / 8).map(|k| be64(&o.data, 8 + 8 * k)).collect();
    (be32(&o.data, 0), keys)
}

/// READ RESERVATION: (key, type) if reserved.
pub fn read_reservation(i: &Initiator) -> Option<(u64, u8)> {
    let o = i.run(&prin_cdb(1, 4096), 4096);
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
    match be32(&o.data, 4) {
        0 => None,
        16 => {
            assert_eq!(o.data[21] >> 4, 0, "scope");
            Some((be64(&o.data, 8), o.data[21] & 0x0f))
        }
        n => panic!("additional length {n}"),
    }
}

pub fn read10(i: &Initiator) -> Status {
    i.run(&[0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0], 512).status()
}

pub fn write10(i: &Initiator) -> Status {
    i.send(&[0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0], &[0x5a; 512])
        .status()
}

pub fn reserve6(i: &Initiator) -> Status {
    i.run(&[0x16, 0, 0, 0, 0, 0], 0).status()
}

pub fn release6(i: &Initiator) -> Status {
    i.run(&[0x17, 0, 0, 0, 0, 0], 0).status()
}

/// Set the TAS bit of the control mode page (SPC-4 §7.5.8).
pub fn set_tas(i: &Initiator, tas: bool) {
    let mut p = vec![0u8, 0, 0, 0];
    p.extend_from_slice(&[
        0x0a,
        0x0a,
        0x00,
        0x10,
        0x00,
        if tas { 0x40 } else { 0 },
        0,
        0,
        0xff,
        0xff,
        0,
        0,
    ]);
    let o = i.send(&[0x15, 0x10, 0, 0, p.len() as u8, 0], &p);
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
}

/// An iSCSI TransportID (SPC-4 §7.6.4.6), format 01b with `,i,0x<isid>` or
/// 00b without.
pub fn iscsi_tid(name: &str, isid: Option<&str>) -> Vec<u8> {
    let (format, text) = match isid {
        Some(i) => (0x40u8, format!("{name},i,0x{i}")),
        None => (0u8, name.to_string()),
    };
    let add = ((text.len() + 1).div_ceil(4) * 4).max(20);
    let mut t = vec![0u8; 4 + add];
    t[0] = format | 0x05;
    t[2..4].copy_from_slice(&(add as u16).to_be_bytes());
    t[4..4 + text.len()].copy_from_slice(text.as_bytes());
    t
}
