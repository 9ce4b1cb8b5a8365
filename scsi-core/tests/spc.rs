//! SPC commands: INQUIRY and VPD, REQUEST SENSE, REPORT LUNS, MODE SENSE
#![allow(clippy::cast_possible_truncation)] // tests build CDB fields by hand
//! and MODE SELECT, LOG SENSE, REPORT SUPPORTED OPERATION CODES and TMFs.

mod common;

use common::*;
use tgtkit_scsi_core::backstore::{AtomicLimits, Capabilities};
use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::engine::{LuConfig, Residual};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::table;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore};

#[test]
fn answers_standard_inquiry() {
    let (_t, _s, init) = disk();
    let o = init.run(&[0x12, 0, 0, 0, 255, 0], 255);
    assert_good(&o);
    assert_eq!(o.data[0], 0x00);
    assert_eq!(o.data[2], 0x06);
    assert_eq!(o.data[3] & 0x0f, 2);
    assert_eq!(usize::from(o.data[4]) + 5, o.data.len());
    assert_eq!(&o.data[8..16], b"TGTKIT  ");
    assert_eq!(
        o.response.residual,
        Residual::Under(255 - o.data.len() as u32)
    );
    // Allocation length shorter than the data: truncated.
    let o = init.run(&[0x12, 0, 0, 0, 5, 0], 5);
    assert_eq!(o.data.len(), 5);
    // EVPD clear with a page code is an invalid field.
    assert_invalid_field(&init.run(&[0x12, 0, 0x80, 0, 255, 0], 255), 2, None);
    assert_invalid_field(&init.run(&[0x12, 1, 0x42, 0, 255, 0], 255), 2, None);
}

#[test]
fn lists_and_returns_every_vpd_page() {
    let (_t, _s, init) = disk();
    let o = init.run(&[0x12, 1, 0, 0, 255, 0], 255);
    let pages = o.data[4..].to_vec();
    assert_eq!(pages, [0x00, 0x80, 0x83, 0x86, 0x8f, 0xb0, 0xb1, 0xb2]);
    for page in pages {
        let o = init.run(&[0x12, 1, page, 0x10, 0, 0], 4096);
        assert_good(&o);
        assert_eq!(o.data[1], page);
        let len = usize::from(u16::from_be_bytes([o.data[2], o.data[3]]));
        assert_eq!(len + 4, o.data.len(), "page {page:#x}");
    }
}

#[test]
fn identifies_the_device_with_naa_t10_and_port_designators() {
    let (_t, _s, init) = disk();
    let o = init.run(&[0x12, 1, 0x83, 1, 0, 0], 256);
    let mut at = 4;
    let mut kinds = Vec::new();
    while at + 4 <= o.data.len() {
        let assoc = (o.data[at + 1] >> 4) & 3;
        let kind = o.data[at + 1] & 0x0f;
        kinds.push((assoc, kind));
        if kind == 3 {
            assert_eq!(o.data[at + 4] >> 4, 3, "NAA locally assigned");
        }
        at += 4 + usize::from(o.data[at + 3]);
    }
    assert_eq!(at, o.data.len());
    for want in [(0, 3), (0, 1), (1, 4), (1, 8), (2, 8)] {
        assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
    }
}

#[test]
fn reports_block_limits_and_provisioning() {
    let (t, _s, init) = disk();
    let o = init.run(&[0x12, 1, 0xb0, 0, 64, 0], 64);
    let max = u32::from_be_bytes(o.data[8..12].try_into().unwrap());
    assert_eq!(max, t.config().max_transfer_blocks);
    let o = init.run(&[0x12, 1, 0xb2, 0, 64, 0], 64);
    assert_eq!(o.data[5] & 0xe4, 0xe4, "LBPU LBPWS LBPWS10 LBPRZ");
    let (_t, _s, init) = disk_caps(Capabilities::WRITE_CACHE);
    let o = init.run(&[0x12, 1, 0xb2, 0, 64, 0], 64);
    assert_eq!(o.data[5], 0);
}

#[test]
fn reports_unit_attention_on_first_command_only() {
    let (t, _s, _init) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    // INQUIRY does not report or clear it.
    assert_good(&b.run(&[0x12, 0, 0, 0, 36, 0], 36));
    let o = b.run(&[0; 6], 0);
    assert_sense(&o, SenseKey::UNIT_ATTENTION, Asc::POWER_ON_RESET);
    assert_good(&b.run(&[0; 6], 0));
}

#[test]
fn request_sense_returns_and_clears_unit_attention() {
    let (t, _s, _init) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    let o = b.run(&[0x03, 0, 0, 0, 252, 0], 252);
    assert_good(&o);
    assert_eq!(o.data[0], 0x70);
    assert_eq!((o.data[2], o.data[12], o.data[13]), (0x06, 0x29, 0x00));
    let o = b.run(&[0x03, 1, 0, 0, 252, 0], 252);
    assert_eq!(o.data[0], 0x72);
    assert_eq!((o.data[1], o.data[2]), (0x00, 0x00), "NO SENSE");
}

#[test]
fn reports_luns_and_lun_changes() {
    let (t, _s, init) = disk();
    let o = init.run(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_good(&o);
    assert_eq!(&o.data[0..4], &8u32.to_be_bytes());
    assert_eq!(&o.data[8..16], &Lun::from_index(0).unwrap().0);
    let o = init.run(&[0xa0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(&o.data[0..4], &16u32.to_be_bytes());
    assert_invalid_field(
        &init.run(&[0xa0, 0, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256),
        2,
        None,
    );
    assert_invalid_field(
        &init.run(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8),
        6,
        None,
    );
    // Adding a LUN raises REPORTED LUNS DATA HAS CHANGED on the others.
    t.add_lun(
        5,
        LuConfig::new(std::sync::Arc::new(MemBackstore::new(8, 512))),
    )
    .unwrap();
    assert_sense(
        &init.run(&[0; 6], 0),
        SenseKey::UNIT_ATTENTION,
        Asc::REPORTED_LUNS_DATA_HAS_CHANGED,
    );
}

#[test]
fn answers_for_absent_logical_units() {
    let (_t, _s, init) = disk();
    let other = init.clone().with_lun(Lun::from_index(9).unwrap());
    let o = other.run(&[0x12, 0, 0, 0, 36, 0], 36);
    assert_good(&o);
    assert_eq!(o.data[0], 0x7f);
    assert_sense(
        &other.run(&[0; 6], 0),
        SenseKey::ILLEGAL_REQUEST,
        Asc::LUN_NOT_SUPPORTED,
    );
    let o = other.run(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_good(&o);
    let wlun = init.clone().with_lun(Lun::REPORT_LUNS_WLUN);
    assert_good(&wlun.run(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256));
}

#[test]
fn mode_sense_returns_every_page_in_every_form() {
    let (_t, _s, init) = disk();
    for pc in [0u8, 1, 2] {
        let o = init.run(&[0x1a, 0, (pc << 6) | 0x3f, 0, 255, 0], 255);
        assert_good(&o);
        assert_eq!(usize::from(o.data[0]) + 1, o.data.len());
        assert_eq!(o.data[3], 8, "block descriptor");
        let mut at = 4 + 8;
        let mut codes = Vec::new();
        while at < o.data.len() {
            codes.push(o.data[at] & 0x3f);
            at += 2 + usize::from(o.data[at + 1]);
        }
        assert_eq!(codes, [0x01, 0x08, 0x0a, 0x1c]);
    }
    // Saved values are not implemented.
    let o = init.run(&[0x1a, 0, 0xff, 0, 255, 0], 255);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::SAVING_PARAMETERS_NOT_SUPPORTED,
    );
    // Unknown page.
    assert_invalid_field(&init.run(&[0x1a, 0, 0x19, 0, 255, 0], 255), 2, Some(5));
    // MODE SENSE(10) with LLBAA: a 16-byte block descriptor.
    let o = init.run(&[0x5a, 0x10, 0x08, 0, 0, 0, 0, 1, 0, 0], 256);
    assert_eq!(o.data[4] & 1, 1);
    assert_eq!(u16::from_be_bytes([o.data[6], o.data[7]]), 16);
    assert_eq!(&o.data[8..16], &BLOCKS.to_be_bytes());
    // DBD: none.
    let o = init.run(&[0x1a, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!(o.data[3], 0);
    assert_eq!(o.data[4], 0x08);
}

fn control_page(d_sense: bool) -> Vec<u8> {
    let mut p = vec![0u8, 0, 0, 0]; // MODE SELECT(6) header
    let mut page = vec![
        0x0a,
        0x0a,
        if d_sense { 0x04 } else { 0 },
        0x10,
        0,
        0,
        0,
        0,
        0xff,
        0xff,
        0,
        0,
    ];
    p.append(&mut page);
    p
}

#[test]
fn mode_select_changes_d_sense_and_notifies_others() {
    let (t, _s, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    let p = control_page(true);
    assert_good(&a.send(&[0x15, 0x10, 0, 0, p.len() as u8, 0], &p));
    // Sense is now in descriptor format.
    let o = a.run(&read16(u64::MAX, 1), 512);
    assert_eq!(o.response.sense_bytes()[0], 0x72);
    // The other nexus gets MODE PARAMETERS CHANGED.
    assert_sense(
        &b.run(&[0; 6], 0),
        SenseKey::UNIT_ATTENTION,
        Asc::MODE_PARAMETERS_CHANGED,
    );
    assert_good(&a.run(&[0; 6], 0));
}

#[test]
fn mode_select_rejects_unchangeable_fields_with_a_pointer() {
    let (_t, _s, a) = disk();
    let mut p = control_page(false);
    p[4 + 3] = 0x00; // QUEUE ALGORITHM MODIFIER is not changeable
    let o = a.send(&[0x15, 0x10, 0, 0, p.len() as u8, 0], &p);
    let s = assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    assert_eq!(s.field.unwrap().byte, 7);
    // SP is not supported; PF must be set.
    let p = control_page(false);
    assert_invalid_field(
        &a.send(&[0x15, 0x11, 0, 0, p.len() as u8, 0], &p),
        1,
        Some(0),
    );
    assert_invalid_field(
        &a.send(&[0x15, 0x00, 0, 0, p.len() as u8, 0], &p),
        1,
        Some(4),
    );
    // A list shorter than its header.
    let o = a.send(&[0x15, 0x10, 0, 0, 2, 0], &[0, 0]);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
}

#[test]
fn mode_select_toggles_the_backstore_write_cache() {
    let (_t, store, a) = disk();
    use tgtkit_scsi_core::backstore::Backstore;
    assert!(store.write_cache());
    let ms = a.run(&[0x1a, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!(ms.data[4 + 2] & 0x04, 0x04, "WCE set");
    let mut p = vec![0u8; 4];
    p.extend_from_slice(&ms.data[4..]);
    p[0] = 0;
    p[2] = 0;
    p[4 + 2] &= !0x04;
    assert_good(&a.send(&[0x15, 0x10, 0, 0, p.len() as u8, 0], &p));
    assert!(!store.write_cache());
    // Turning the cache off flushes what it held.
    assert_eq!(store.flushes.load(std::sync::atomic::Ordering::Relaxed), 1);
    let ms = a.run(&[0x1a, 0x08, 0x08, 0, 255, 0], 255);
    assert_eq!(ms.data[4 + 2] & 0x04, 0);
    // With the cache off every write is FUA.
    assert_good(&a.send(&write16(0, 1), &[1; 512]));
    assert_eq!(
        store.fua_writes.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn log_sense_lists_supported_pages() {
    let (_t, _s, a) = disk();
    let o = a.run(&[0x4d, 0, 0x00, 0, 0, 0, 0, 0, 255, 0], 255);
    assert_good(&o);
    assert_eq!(o.data, [0, 0, 0, 1, 0]);
    let o = a.run(&[0x4d, 0, 0x00, 0xff, 0, 0, 0, 0, 255, 0], 255);
    assert_eq!(o.data[0] & 0x40, 0x40, "SPF");
    assert_invalid_field(
        &a.run(&[0x4d, 0, 0x2f, 0, 0, 0, 0, 0, 255, 0], 255),
        2,
        Some(5),
    );
    assert_invalid_field(
        &a.run(&[0x4d, 1, 0x00, 0, 0, 0, 0, 0, 255, 0], 255),
        1,
        Some(0),
    );
}

/// Atomic writes, so that every row of the table applies.
const ATOMIC: AtomicLimits = AtomicLimits {
    max_bytes: 1 << 16,
    alignment: 0,
    granularity: 0,
    crash_atomic: false,
};

#[test]
fn reports_exactly_the_table_as_supported_opcodes() {
    let (t, _s, a) = disk_with(MemBackstore::new(BLOCKS, BS).atomic(ATOMIC), false);
    // Explicit ALUA, so that SET TARGET PORT GROUPS applies too.
    struct Yes;
    impl tgtkit_scsi_core::alua::AluaPolicy for Yes {
        fn allow(&self, _: u16, _: tgtkit_scsi_core::alua::AccessState) -> bool {
            true
        }
    }
    t.set_alua_policy(std::sync::Arc::new(Yes));
    let o = a.run(&[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    assert_good(&o);
    let len = u32::from_be_bytes(o.data[0..4].try_into().unwrap()) as usize;
    let rows: Vec<_> = table::rows(DeviceType::Disk).collect();
    assert_eq!(len, 8 * rows.len());
    for (i, row) in rows.iter().enumerate() {
        let d = &o.data[4 + 8 * i..12 + 8 * i];
        assert_eq!(d[0], row.opcode);
        assert_eq!(u16::from_be_bytes([d[6], d[7]]), u16::from(row.cdb_len));
    }
    // With RCTD every descriptor carries a timeouts descriptor.
    let o = a.run(&[0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    let len = u32::from_be_bytes(o.data[0..4].try_into().unwrap()) as usize;
    assert_eq!(len, 20 * rows.len());
    // One command: READ(16) with its usage data.
    let o = a.run(&[0xa3, 0x0c, 1, 0x88, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(o.data[1] & 7, 3);
    assert_eq!(u16::from_be_bytes([o.data[2], o.data[3]]), 16);
    assert_eq!(o.data[4], 0x88);
    // An opcode we do not implement is reported as not supported.
    let o = a.run(&[0xa3, 0x0c, 1, 0xc0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(o.data[1] & 7, 1);
    // Options 1 for an opcode with service actions is an invalid field.
    assert_invalid_field(
        &a.run(&[0xa3, 0x0c, 1, 0x9e, 0, 0, 0, 0, 1, 0, 0, 0], 256),
        2,
        Some(0),
    );
    let o = a.run(&[0xa3, 0x0c, 2, 0x9e, 0, 0x10, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(o.data[1] & 7, 3);
}

#[test]
fn leaves_unmap_out_when_the_backstore_cannot_deallocate() {
    let (_t, _s, a) = disk_with(
        MemBackstore::with_capabilities(BLOCKS, BS, Capabilities::WRITE_CACHE).atomic(ATOMIC),
        false,
    );
    let o = a.run(&[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    let len = u32::from_be_bytes(o.data[0..4].try_into().unwrap()) as usize;
    // UNMAP and SANITIZE BLOCK ERASE need deallocation; SET TARGET PORT
    // GROUPS needs an ALUA policy.
    assert_eq!(len, 8 * (table::rows(DeviceType::Disk).count() - 3));
    let o = a.run(&[0xa3, 0x0c, 1, 0x42, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(o.data[1] & 7, 1);
    let o = a.run(&[0xa3, 0x0c, 2, 0x48, 0, 0x02, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(o.data[1] & 7, 1);
}

#[test]
fn reports_supported_task_management_functions() {
    let (_t, _s, a) = disk();
    let o = a.run(&[0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0], 4);
    assert_good(&o);
    assert_eq!(o.data, [0xde, 0x07, 0, 0]);
    let o = a.run(&[0xa3, 0x0d, 0x80, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16);
    assert_eq!(o.data.len(), 16);
    assert_eq!(o.data[3], 0x0c);
}

#[test]
fn rejects_unknown_opcodes_honestly() {
    let (_t, _s, a) = disk();
    for op in [0x01u8, 0x1d, 0x3b, 0xc0, 0xff] {
        let o = a.run(&[op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0);
        assert_sense(
            &o,
            SenseKey::ILLEGAL_REQUEST,
            Asc::INVALID_COMMAND_OPERATION_CODE,
        );
    }
    let o = a.run(&[0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0);
    assert_invalid_field(&o, 1, Some(4));
    assert_eq!(a.run(&[0; 6], 0).status(), Status::GOOD);
}
