//! EXTENDED COPY (LID1) and RECEIVE COPY RESULTS through the engine: copies
//! within and across logical units named by their VPD 83h designators,
//! every refusal before data moves, reservations on the copy targets,
//! held results, and abort by task management.
#![allow(clippy::cast_possible_truncation)] // tests build fields by hand

mod common;
mod gated;

use std::pin::pin;
use std::sync::Arc;

use common::*;
use futures::executor::block_on;
use gated::{poll_once, Gated};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig, TaskAttribute, TmFunction};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore, Outcome};

/// A target with LU 0 (1024 blocks of 512) and LU 1 (256 blocks of 4096).
fn two_disks() -> (Arc<Target>, Arc<MemBackstore>, Arc<MemBackstore>, Initiator) {
    let target = Target::new(TargetConfig::default());
    let a = Arc::new(MemBackstore::new(BLOCKS, BS));
    let b = Arc::new(MemBackstore::new(256, 4096));
    target.add_lun(0, LuConfig::new(a.clone())).unwrap();
    target.add_lun(1, LuConfig::new(b.clone())).unwrap();
    let init = Initiator::new(&target, "iqn.2026-11.test:a");
    init.clear_unit_attentions();
    init.clone().with_lun(lun(1)).clear_unit_attentions();
    (target, a, b, init)
}

fn lun(i: u16) -> Lun {
    Lun::from_index(i).unwrap()
}

/// The NAA designator of `init`'s logical unit, from VPD page 83h.
fn naa(init: &Initiator) -> [u8; 8] {
    let o = init.run(&[0x12, 1, 0x83, 0, 255, 0], 255);
    assert_good(&o);
    let d = &o.data[4..];
    assert_eq!(&d[..4], &[1, 3, 0, 8], "first designator is the NAA one");
    d[4..12].try_into().unwrap()
}

/// An identification CSCD descriptor naming `designator` with `block_len`.
fn cscd(designator: &[u8; 8], block_len: u32) -> Vec<u8> {
    let mut d = vec![0u8; 32];
    d[0] = 0xe4;
    d[4] = 1; // binary
    d[5] = 3; // LU association, NAA
    d[7] = 8;
    d[8..16].copy_from_slice(designator);
    d[29..32].copy_from_slice(&block_len.to_be_bytes()[1..]);
    d
}

/// A block to block segment descriptor.
fn segment(src: u16, dst: u16, blocks: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
    let mut d = vec![0u8; 28];
    d[0] = 0x02;
    d[3] = 0x18;
    d[4..6].copy_from_slice(&src.to_be_bytes());
    d[6..8].copy_from_slice(&dst.to_be_bytes());
    d[10..12].copy_from_slice(&blocks.to_be_bytes());
    d[12..20].copy_from_slice(&src_lba.to_be_bytes());
    d[20..28].copy_from_slice(&dst_lba.to_be_bytes());
    d
}

/// A parameter list with `list_id` held (LIST ID USAGE 00b).
fn params(list_id: u8, cscds: &[Vec<u8>], segments: &[Vec<u8>]) -> Vec<u8> {
    let c: Vec<u8> = cscds.concat();
    let s: Vec<u8> = segments.concat();
    let mut p = vec![0u8; 16];
    p[0] = list_id;
    p[2..4].copy_from_slice(&(c.len() as u16).to_be_bytes());
    p[8..12].copy_from_slice(&(s.len() as u32).to_be_bytes());
    p.extend(c);
    p.extend(s);
    p
}

fn xcopy_cdb(len: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

fn xcopy(init: &Initiator, p: &[u8]) -> Outcome {
    init.send(&xcopy_cdb(p.len()), p)
}

fn rcr(init: &Initiator, sa: u8, list_id: u8) -> Outcome {
    let mut c = [0u8; 16];
    c[0] = 0x84;
    c[1] = sa;
    c[2] = list_id;
    c[10..14].copy_from_slice(&1024u32.to_be_bytes());
    init.run(&c, 1024)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn copies_blocks_within_one_logical_unit() {
    let (_t, a, _b, init) = two_disks();
    let data = pattern(8 * 512, 3);
    assert_good(&init.send(&write16(10, 8), &data));
    let me = naa(&init);
    let p = params(1, &[cscd(&me, 512)], &[segment(0, 0, 8, 10, 900)]);
    assert_good(&xcopy(&init, &p));
    assert_eq!(a.contents(900 * 512, data.len()), data);

    let o = rcr(&init, 0x00, 1);
    assert_good(&o);
    // Completed without errors, one segment, 4096 bytes.
    assert_eq!(&o.data[..8], &[0, 0, 0, 8, 0x01, 0, 1, 0]);
    assert_eq!(be32(&o.data, 8), 4096);
    // Nothing failed.
    assert_eq!(&rcr(&init, 0x04, 1).data[..4], &[0, 0, 0, 0]);
}

#[test]
fn copies_across_logical_units_with_different_block_sizes() {
    let (_t, a, b, init) = two_disks();
    let data = pattern(16 * 512, 9);
    assert_good(&init.send(&write16(0, 16), &data));
    let src = naa(&init);
    let dst = naa(&init.clone().with_lun(lun(1)));
    assert_ne!(src, dst);
    // 16 source blocks of 512 (DC clear) into LU 1, then back again
    // counted in destination blocks of 512 (DC set).
    let there = segment(0, 1, 16, 0, 5);
    let mut back = segment(1, 0, 16, 5, 100);
    back[1] = 0x02; // DC
    let p = params(2, &[cscd(&src, 512), cscd(&dst, 4096)], &[there, back]);
    assert_good(&xcopy(&init, &p));
    assert_eq!(b.contents(5 * 4096, data.len()), data);
    assert_eq!(a.contents(100 * 512, data.len()), data);
    assert_eq!(&rcr(&init, 0x00, 2).data[4..7], &[0x01, 0, 2]);
}

#[test]
fn copies_overlapping_ranges_as_if_through_a_buffer() {
    let (_t, a, _b, init) = two_disks();
    // More than one 1 MiB chunk, shifted forward by one block.
    let blocks = 2100u16.min(BLOCKS as u16 - 1);
    let blocks = blocks.min(1000);
    let data = pattern(usize::from(blocks) * 512, 5);
    assert_good(&init.send(&write16(0, u32::from(blocks)), &data));
    let me = naa(&init);
    let p = params(3, &[cscd(&me, 512)], &[segment(0, 0, blocks, 0, 1)]);
    assert_good(&xcopy(&init, &p));
    assert_eq!(a.contents(512, data.len()), data);
}

#[test]
fn refuses_copies_naming_units_outside_the_target() {
    let (_t, a, _b, init) = two_disks();
    let other = Target::new(TargetConfig {
        name: "iqn.2026-11.test:elsewhere".into(),
        ..TargetConfig::default()
    });
    other
        .add_lun(0, LuConfig::new(Arc::new(MemBackstore::new(BLOCKS, BS))))
        .unwrap();
    let stranger = Initiator::new(&other, "iqn.2026-11.test:a");
    stranger.clear_unit_attentions();
    let foreign = naa(&stranger);
    let me = naa(&init);
    assert_ne!(foreign, me);
    assert_good(&init.send(&write16(0, 1), &pattern(512, 1)));
    let p = params(
        4,
        &[cscd(&me, 512), cscd(&foreign, 512)],
        &[segment(0, 1, 1, 0, 0)],
    );
    let o = xcopy(&init, &p);
    let s = assert_sense(
        &o,
        SenseKey::COPY_ABORTED,
        Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
    );
    assert_eq!(
        s.field.unwrap().byte,
        16 + 64 + 6,
        "points at the destination ID"
    );
    // An index past the list is as unreachable.
    let p = params(4, &[cscd(&me, 512)], &[segment(0, 1, 1, 0, 8)]);
    assert_sense(
        &xcopy(&init, &p),
        SenseKey::COPY_ABORTED,
        Asc::COPY_TARGET_DEVICE_NOT_REACHABLE,
    );
    assert_eq!(a.contents(8 * 512, 512), vec![0; 512]);
    // Refused before it started: nothing is held.
    assert_invalid_field(&rcr(&init, 0x00, 4), 2, None);
}

#[test]
fn refuses_before_copying_anything() {
    let (_t, a, _b, init) = two_disks();
    let me = naa(&init);
    assert_good(&init.send(&write16(0, 4), &pattern(2048, 7)));
    // The second segment runs off the end: the first is not copied either.
    let p = params(
        5,
        &[cscd(&me, 512)],
        &[segment(0, 0, 4, 0, 500), segment(0, 0, 4, 0, BLOCKS - 1)],
    );
    let s = assert_sense(
        &xcopy(&init, &p),
        SenseKey::COPY_ABORTED,
        Asc::NO_ADDITIONAL_SENSE,
    );
    assert_eq!(
        s.field.unwrap().byte,
        16 + 32 + 28 + 20,
        "destination LBA field"
    );
    // The third and fourth bytes of COMMAND-SPECIFIC INFORMATION name the
    // segment (SPC-4: errors detected during processing of segments).
    assert_eq!(s.command_specific, Some(1), "the second segment failed");
    assert_eq!(a.contents(500 * 512, 2048), vec![0; 2048]);
    // A wrong DISK BLOCK LENGTH.
    let p = params(5, &[cscd(&me, 4096)], &[segment(0, 0, 1, 0, 1)]);
    let o = xcopy(&init, &p);
    let s = assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    assert_eq!(s.field.unwrap().byte, 16 + 29);
    // 3 destination blocks of 512 are not whole 4096-byte blocks.
    let dst = naa(&init.clone().with_lun(lun(1)));
    let p = params(
        5,
        &[cscd(&me, 512), cscd(&dst, 4096)],
        &[segment(0, 1, 3, 0, 0)],
    );
    let s = assert_sense(
        &xcopy(&init, &p),
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    assert_eq!(s.field.unwrap().byte, 16 + 64 + 10);
}

#[test]
fn answers_parameter_list_errors_as_libiscsi_expects() {
    let (_t, _a, _b, init) = two_disks();
    let me = naa(&init);
    // PARAMETER LIST LENGTH zero: nothing to do.
    assert_good(&init.send(&xcopy_cdb(0), &[]));
    let p = params(6, &[cscd(&me, 512)], &[segment(0, 0, 1, 0, 1)]);
    for cut in [15, 16 + 31, p.len() - 1] {
        let o = init.send(&xcopy_cdb(cut), &p[..cut]);
        assert_sense(
            &o,
            SenseKey::ILLEGAL_REQUEST,
            Asc::PARAMETER_LIST_LENGTH_ERROR,
        );
    }
    // A parameter list longer than any the copy manager accepts is refused
    // without being read.
    let o = init.send(&xcopy_cdb(1 << 20), &[]);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
    // Fewer bytes than the CDB says.
    let o = init.send(&xcopy_cdb(p.len()), &p[..20]);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
    // LID4 is not implemented: its service action is an invalid field.
    let mut c = xcopy_cdb(p.len());
    c[1] = 0x01;
    assert_invalid_field(&init.send(&c, &p), 1, Some(4));
}

#[test]
fn honours_reservations_on_every_unit_a_copy_names() {
    let (t, a, _b, init) = two_disks();
    let me = naa(&init);
    let dst = naa(&init.clone().with_lun(lun(1)));
    let other = Initiator::new(&t, "iqn.2026-11.test:b").with_lun(lun(1));
    other.clear_unit_attentions();
    // b registers and takes Write Exclusive on LU 1.
    let mut key = [0u8; 24];
    key[8..16].copy_from_slice(&7u64.to_be_bytes());
    assert_good(&other.send(&[0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0], &key));
    let mut res = [0u8; 24];
    res[0..8].copy_from_slice(&7u64.to_be_bytes());
    assert_good(&other.send(&[0x5f, 0x01, 0x01, 0, 0, 0, 0, 0, 24, 0], &res));
    let to_b = params(
        7,
        &[cscd(&me, 512), cscd(&dst, 4096)],
        &[segment(0, 1, 8, 0, 0)],
    );
    let s = assert_sense(
        &xcopy(&init, &to_b),
        SenseKey::COPY_ABORTED,
        Asc::NO_ADDITIONAL_SENSE,
    );
    assert_eq!(s.field.unwrap().byte, 16 + 64 + 6);
    // Reading from the reserved unit is allowed under Write Exclusive.
    let from_b = params(
        7,
        &[cscd(&me, 512), cscd(&dst, 4096)],
        &[segment(1, 0, 1, 0, 0)],
    );
    assert_good(&xcopy(&init, &from_b));
    // The holder may copy into its own unit.
    let holder = other.clone().with_lun(lun(0));
    holder.clear_unit_attentions();
    assert_good(&xcopy(&holder, &to_b));
    let _ = a;
}

#[test]
fn refuses_a_read_only_destination() {
    let target = Target::new(TargetConfig::default());
    target
        .add_lun(
            0,
            LuConfig::new(Arc::new(MemBackstore::new(BLOCKS, BS))).read_only(true),
        )
        .unwrap();
    let init = Initiator::new(&target, "iqn.2026-11.test:a");
    init.clear_unit_attentions();
    let me = naa(&init);
    let p = params(8, &[cscd(&me, 512)], &[segment(0, 0, 1, 0, 1)]);
    assert_sense(
        &xcopy(&init, &p),
        SenseKey::DATA_PROTECT,
        Asc::WRITE_PROTECTED,
    );
}

#[test]
fn keeps_copy_results_per_nexus_and_list_identifier() {
    let (t, _a, _b, init) = two_disks();
    let me = naa(&init);
    // No copy yet.
    assert_invalid_field(&rcr(&init, 0x00, 9), 2, None);
    assert_invalid_field(&rcr(&init, 0x04, 9), 2, None);
    let p = params(9, &[cscd(&me, 512)], &[segment(0, 0, 1, 0, 1)]);
    assert_good(&xcopy(&init, &p));
    assert_good(&rcr(&init, 0x00, 9));
    // Another nexus has its own identifiers.
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    assert_invalid_field(&rcr(&b, 0x00, 9), 2, None);
    // LIST ID USAGE 11b: nothing is held.
    let mut p = params(10, &[cscd(&me, 512)], &[segment(0, 0, 1, 0, 1)]);
    p[1] = 0x18;
    assert_good(&xcopy(&init, &p));
    assert_invalid_field(&rcr(&init, 0x00, 10), 2, None);
    // The nexus going away drops its results.
    t.remove_nexus(init.nexus);
    let again = Initiator::new(&t, "iqn.2026-11.test:a");
    again.clear_unit_attentions();
    assert_invalid_field(&rcr(&again, 0x00, 9), 2, None);
    // RECEIVE DATA (01h) holds nothing here and is not implemented.
    assert_invalid_field(&rcr(&again, 0x01, 9), 1, Some(4));
}

#[test]
fn reports_operating_parameters_and_the_third_party_copy_page() {
    let (_t, _a, _b, init) = two_disks();
    let o = rcr(&init, 0x03, 0);
    assert_good(&o);
    let d = &o.data;
    assert_eq!(be32(d, 0) as usize, d.len() - 4);
    let (max_cscd, max_seg) = (
        u16::from_be_bytes([d[8], d[9]]),
        u16::from_be_bytes([d[10], d[11]]),
    );
    let max_list = be32(d, 12);
    assert!(max_list as usize >= usize::from(max_cscd) * 32 + 28);
    assert_eq!(&d[43..], &[2, 0x02, 0xe4]);

    // The copy manager refuses one descriptor more than it advertises.
    let me = naa(&init);
    let many: Vec<Vec<u8>> = (0..=max_cscd).map(|_| cscd(&me, 512)).collect();
    let o = xcopy(&init, &params(11, &many, &[segment(0, 0, 1, 0, 1)]));
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::TOO_MANY_TARGET_DESCRIPTORS,
    );
    let segs: Vec<Vec<u8>> = (0..=max_seg).map(|_| segment(0, 0, 1, 0, 1)).collect();
    let o = xcopy(&init, &params(11, &[cscd(&me, 512)], &segs));
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::TOO_MANY_SEGMENT_DESCRIPTORS,
    );

    // Standard INQUIRY sets 3PC; VPD 8Fh lists the same limits.
    let inq = init.run(&[0x12, 0, 0, 0, 96, 0], 96);
    assert_eq!(inq.data[5] & 0x08, 0x08);
    let vpd = init.run(&[0x12, 1, 0x8f, 0, 255, 0], 255);
    assert_good(&vpd);
    let page = &vpd.data;
    assert_eq!(page[1], 0x8f);
    let mut at = 4;
    let mut kinds = Vec::new();
    while at < page.len() {
        let kind = u16::from_be_bytes([page[at], page[at + 1]]);
        let len = usize::from(u16::from_be_bytes([page[at + 2], page[at + 3]]));
        assert_eq!(len % 4, 0);
        if kind == 0x0004 {
            assert_eq!(u16::from_be_bytes([page[at + 8], page[at + 9]]), max_cscd);
            assert_eq!(u16::from_be_bytes([page[at + 10], page[at + 11]]), max_seg);
            assert_eq!(be32(page, at + 12), max_list);
        }
        if kind == 0x0001 {
            // THIRD-PARTY COPY OUT: EXTENDED COPY(LID1), POPULATE TOKEN,
            // WRITE USING TOKEN; IN: 00h, 03h, 04h and RECEIVE ROD TOKEN
            // INFORMATION.
            assert_eq!(
                &page[at + 4..at + 16],
                &[11, 0x83, 3, 0, 0x10, 0x11, 0x84, 4, 0, 3, 4, 7]
            );
        }
        kinds.push(kind);
        at += 4 + len;
    }
    assert_eq!(at, page.len());
    assert_eq!(
        kinds,
        vec![0x0001, 0x0004, 0x0008, 0x0000, 0x0106, 0x0108, 0x8001]
    );
}

#[test]
fn stops_an_aborted_copy_and_reports_it_failed() {
    let target = Target::new(TargetConfig::default());
    let store = Arc::new(Gated::new(MemBackstore::new(BLOCKS, BS)));
    target.add_lun(0, LuConfig::new(store.clone())).unwrap();
    let init = Initiator::new(&target, "iqn.2026-11.test:a");
    init.clear_unit_attentions();
    let me = naa(&init);
    // A copy of a held list whose first read waits at the gate.
    let p = params(12, &[cscd(&me, 512)], &[segment(0, 0, 4, 0, 100)]);
    let cmd = init.command(
        &xcopy_cdb(p.len()),
        DataBuffer::from_vec(p),
        TaskAttribute::Simple,
    );
    let mut fut = pin!(target.execute(cmd));
    assert!(
        poll_once(fut.as_mut()).is_pending(),
        "the copy waits on its read"
    );
    // While it runs its list identifier is in use.
    let s = rcr(&init, 0x00, 12);
    assert_good(&s);
    assert_eq!(s.data[4], 0x00, "in progress");
    let again = params(12, &[cscd(&me, 512)], &[segment(0, 0, 1, 0, 200)]);
    assert_sense(
        &xcopy(&init, &again),
        SenseKey::ILLEGAL_REQUEST,
        Asc::OPERATION_IN_PROGRESS,
    );
    let r = block_on(target.task_management(init.nexus, init.lun, TmFunction::AbortTaskSet));
    assert_eq!(r, tgtkit_scsi_core::engine::TmfResponse::Complete);
    match poll_once(fut.as_mut()) {
        std::task::Poll::Ready(r) => assert!(r.aborted, "{r:?}"),
        std::task::Poll::Pending => panic!("aborted copy still pending"),
    }
    store.open();
    assert_eq!(rcr(&init, 0x00, 12).data[4], 0x02, "completed with errors");
    let f = rcr(&init, 0x04, 12);
    assert_good(&f);
    assert_eq!(f.data[56], Status::TASK_ABORTED.0);
    let o = init.run(&read16(100, 4), 2048);
    assert_good(&o);
    assert_eq!(o.data, vec![0; 2048], "nothing was written");
}
