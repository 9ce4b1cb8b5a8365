//! POPULATE TOKEN, WRITE USING TOKEN and RECEIVE ROD TOKEN INFORMATION
//! through the engine: copies within and across logical units and
//! nexuses, OFFSET INTO ROD and its residues, the zero token, every
//! refusal of a parameter list or a token, lapsed and deleted tokens,
//! reservations on the token's source, and the Third-party Copy VPD page.
#![allow(clippy::cast_possible_truncation)] // tests build fields by hand

mod common;

use std::sync::Arc;

use common::*;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore, Outcome};

/// A target with LU 0 and LU 1, both 1024 blocks of 512 bytes.
fn two_disks() -> (Arc<Target>, Arc<MemBackstore>, Arc<MemBackstore>, Initiator) {
    let target = Target::new(TargetConfig::default());
    let a = Arc::new(MemBackstore::new(BLOCKS, BS));
    let b = Arc::new(MemBackstore::new(BLOCKS, BS));
    target.add_lun(0, LuConfig::new(a.clone())).unwrap();
    target.add_lun(1, LuConfig::new(b.clone())).unwrap();
    let init = Initiator::new(&target, "iqn.2026-12.test:a");
    init.clear_unit_attentions();
    on(&init, 1).clear_unit_attentions();
    (target, a, b, init)
}

fn on(init: &Initiator, lun: u16) -> Initiator {
    init.clone().with_lun(Lun::from_index(lun).unwrap())
}

fn ranges(list: &[(u64, u32)]) -> Vec<u8> {
    let mut d = Vec::new();
    for &(lba, blocks) in list {
        d.extend_from_slice(&lba.to_be_bytes());
        d.extend_from_slice(&blocks.to_be_bytes());
        d.extend_from_slice(&[0; 4]);
    }
    d
}

fn out_cdb(sa: u8, list_id: u32, len: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x83;
    c[1] = sa;
    c[6..10].copy_from_slice(&list_id.to_be_bytes());
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

/// A POPULATE TOKEN parameter list.
fn pt_params(timeout: u32, list: &[(u64, u32)]) -> Vec<u8> {
    let r = ranges(list);
    let mut p = vec![0u8; 16];
    p[0..2].copy_from_slice(&((14 + r.len()) as u16).to_be_bytes());
    p[4..8].copy_from_slice(&timeout.to_be_bytes());
    p[14..16].copy_from_slice(&(r.len() as u16).to_be_bytes());
    p.extend(r);
    p
}

fn populate(init: &Initiator, list_id: u32, list: &[(u64, u32)]) -> Outcome {
    let p = pt_params(0, list);
    init.send(&out_cdb(0x10, list_id, p.len()), &p)
}

/// A WRITE USING TOKEN parameter list.
fn wut_params(token: &[u8], offset: u64, delete: bool, list: &[(u64, u32)]) -> Vec<u8> {
    let r = ranges(list);
    let mut p = vec![0u8; 536];
    p[0..2].copy_from_slice(&((534 + r.len()) as u16).to_be_bytes());
    p[2] = if delete { 0x02 } else { 0 };
    p[8..16].copy_from_slice(&offset.to_be_bytes());
    p[16..528].copy_from_slice(token);
    p[534..536].copy_from_slice(&(r.len() as u16).to_be_bytes());
    p.extend(r);
    p
}

fn write_using(
    init: &Initiator,
    list_id: u32,
    token: &[u8],
    offset: u64,
    list: &[(u64, u32)],
) -> Outcome {
    let p = wut_params(token, offset, false, list);
    init.send(&out_cdb(0x11, list_id, p.len()), &p)
}

/// RECEIVE ROD TOKEN INFORMATION for `list_id`.
fn rrti(init: &Initiator, list_id: u32) -> Outcome {
    let mut c = [0u8; 16];
    c[0] = 0x84;
    c[1] = 0x07;
    c[2..6].copy_from_slice(&list_id.to_be_bytes());
    c[10..14].copy_from_slice(&1024u32.to_be_bytes());
    init.run(&c, 1024)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Response to service action, copy operation status and transfer count
/// (in blocks) of a RECEIVE ROD TOKEN INFORMATION answer.
fn status_of(o: &Outcome) -> (u8, u8, u64) {
    assert_good(o);
    assert_eq!(o.data[15], 0xf1, "transfer count in logical blocks");
    (o.data[4], o.data[5], be64(&o.data, 16))
}

/// POPULATE TOKEN then RECEIVE ROD TOKEN INFORMATION: the token.
fn token_for(init: &Initiator, list_id: u32, list: &[(u64, u32)]) -> Vec<u8> {
    assert_good(&populate(init, list_id, list));
    let o = rrti(init, list_id);
    let blocks: u64 = list.iter().map(|r| u64::from(r.1)).sum();
    assert_eq!(status_of(&o), (0x10, 0x01, blocks));
    let off = 32 + usize::from(o.data[13]);
    assert_eq!(be32(&o.data, off), 514, "one ROD token descriptor");
    let token = o.data[off + 6..off + 6 + 512].to_vec();
    assert_eq!(be32(&token, 0), 0x0001_0000, "access upon reference");
    assert_eq!(&token[6..8], &[0x01, 0xf8]);
    token
}

#[test]
fn copies_through_a_token_within_and_across_units_and_nexuses() {
    let (t, a, b, init) = two_disks();
    let data = pattern(8 * 512, 5);
    assert_good(&init.send(&write16(10, 8), &data));
    // Two source ranges, copied into one destination range on LU 0.
    let token = token_for(&init, 1, &[(10, 4), (14, 4)]);
    assert_good(&write_using(&init, 2, &token, 0, &[(500, 8)]));
    assert_eq!(a.contents(500 * 512, data.len()), data);
    assert_eq!(status_of(&rrti(&init, 2)), (0x11, 0x01, 8));
    // Another initiator uses the same token on LU 1, into two ranges.
    let other = on(&Initiator::new(&t, "iqn.2026-12.test:b"), 1);
    other.clear_unit_attentions();
    assert_good(&write_using(&other, 7, &token, 0, &[(0, 3), (100, 5)]));
    assert_eq!(b.contents(0, 3 * 512), data[..3 * 512]);
    assert_eq!(b.contents(100 * 512, 5 * 512), data[3 * 512..]);
    // Results are per nexus: the first initiator has no list 7.
    assert_invalid_field(&rrti(&init, 7), 2, None);
}

#[test]
fn starts_at_offset_into_rod_and_reports_what_fell_short() {
    let (_t, a, _b, init) = two_disks();
    let data = pattern(8 * 512, 9);
    assert_good(&init.send(&write16(0, 8), &data));
    let token = token_for(&init, 1, &[(0, 8)]);
    // From block 2 of the ROD, into ten blocks: six are written, the rest
    // is residual (copy operation status 04h).
    assert_good(&write_using(&init, 2, &token, 2, &[(200, 10)]));
    assert_eq!(a.contents(200 * 512, 6 * 512), data[2 * 512..]);
    assert_eq!(a.contents(206 * 512, 4 * 512), vec![0; 4 * 512]);
    assert_eq!(status_of(&rrti(&init, 2)), (0x11, 0x04, 6));
    // Four blocks of an eight-block ROD: partial ROD token usage (03h).
    assert_good(&write_using(&init, 3, &token, 0, &[(300, 4)]));
    assert_eq!(status_of(&rrti(&init, 3)), (0x11, 0x03, 4));
    assert_eq!(a.contents(300 * 512, 4 * 512), data[..4 * 512]);
    // An offset past the ROD is an invalid field (OFFSET INTO ROD).
    let o = write_using(&init, 4, &token, 8, &[(400, 1)]);
    assert_invalid_param_field(&o, 8);
}

#[test]
fn copies_an_overlapping_range_of_one_unit_as_memmove_does() {
    let (_t, a, _b, init) = two_disks();
    let data = pattern(8 * 512, 2);
    assert_good(&init.send(&write16(0, 8), &data));
    let token = token_for(&init, 1, &[(0, 8)]);
    // Forwards by four blocks: the source's tail is overwritten, so the
    // copy runs back to front.
    assert_good(&write_using(&init, 2, &token, 0, &[(4, 8)]));
    assert_eq!(a.contents(4 * 512, 8 * 512), data);
    // Overlap across several ranges is refused.
    let token = token_for(&init, 3, &[(100, 4), (200, 4)]);
    let o = write_using(&init, 4, &token, 0, &[(102, 2), (196, 6)]);
    assert_invalid_param_field(&o, 534);
}

#[test]
fn writes_zeroes_for_the_block_device_zero_token() {
    let (_t, a, _b, init) = two_disks();
    assert_good(&init.send(&write16(50, 4), &pattern(4 * 512, 1)));
    let mut zero = vec![0u8; 512];
    zero[0..4].copy_from_slice(&0xffff_0001u32.to_be_bytes());
    zero[6..8].copy_from_slice(&0x01f8u16.to_be_bytes());
    assert_good(&write_using(&init, 1, &zero, 0, &[(51, 2)]));
    assert_eq!(a.contents(51 * 512, 2 * 512), vec![0; 1024]);
    assert_ne!(a.contents(50 * 512, 512), vec![0; 512]);
    assert_ne!(a.contents(53 * 512, 512), vec![0; 512]);
    assert_eq!(status_of(&rrti(&init, 1)), (0x11, 0x01, 2));
}

#[test]
fn refuses_tokens_it_did_not_make_or_no_longer_has() {
    let (t, _a, _b, init) = two_disks();
    let token = token_for(&init, 1, &[(0, 4)]);
    // A forged token: right header, wrong bytes.
    let mut forged = token.clone();
    forged[300] ^= 1;
    let o = write_using(&init, 2, &forged, 0, &[(10, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::TOKEN_UNKNOWN);
    // The failure is what RECEIVE ROD TOKEN INFORMATION reports.
    let info = rrti(&init, 2);
    assert_good(&info);
    assert_eq!((info.data[5], info.data[12]), (0x02, 0x02));
    assert_eq!((info.data[32 + 12], info.data[32 + 13]), (0x23, 0x04));
    // A wrong ROD TOKEN LENGTH, or another ROD type.
    let mut short = token.clone();
    short[7] = 0;
    let o = write_using(&init, 2, &short, 0, &[(10, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_TOKEN_LENGTH);
    let mut other_type = token.clone();
    other_type[0..4].copy_from_slice(&0x0080_0000u32.to_be_bytes());
    let o = write_using(&init, 2, &other_type, 0, &[(10, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::UNSUPPORTED_TOKEN_TYPE);
    // Another target's store does not know it, though its first token
    // carries the same copy manager identifier.
    let (_t2, _a2, _b2, stranger) = two_disks();
    let _theirs = token_for(&stranger, 1, &[(0, 4)]);
    let o = write_using(&stranger, 2, &token, 0, &[(10, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::TOKEN_UNKNOWN);
    // DEL_TKN: the token is gone after the write that asked for it.
    let p = wut_params(&token, 0, true, &[(10, 4)]);
    assert_good(&init.send(&out_cdb(0x11, 3, p.len()), &p));
    let o = write_using(&init, 4, &token, 0, &[(20, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::TOKEN_UNKNOWN);
    // Removing the source unit revokes its tokens.
    let token = token_for(&init, 5, &[(0, 4)]);
    assert!(t.remove_lun(0));
    let lu1 = on(&init, 1);
    lu1.clear_unit_attentions();
    let o = write_using(&lu1, 6, &token, 0, &[(0, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::TOKEN_UNKNOWN);
}

#[test]
fn a_token_lapses_after_its_inactivity_timeout() {
    let (_t, _a, _b, init) = two_disks();
    let p = pt_params(1, &[(0, 4)]);
    assert_good(&init.send(&out_cdb(0x10, 1, p.len()), &p));
    let o = rrti(&init, 1);
    let token = o.data[38..38 + 512].to_vec();
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let o = write_using(&init, 2, &token, 0, &[(10, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::TOKEN_EXPIRED);
    // Longer than the most the VPD page allows is refused.
    let p = pt_params(601, &[(0, 4)]);
    let o = init.send(&out_cdb(0x10, 3, p.len()), &p);
    assert_invalid_param_field(&o, 4);
}

#[test]
fn refuses_malformed_parameter_lists() {
    let (_t, _a, _b, init) = two_disks();
    // Too short for one range, or longer than 64 ranges: PARAMETER LIST
    // LENGTH is an invalid field.
    let p = pt_params(0, &[(0, 1)]);
    assert_invalid_field(&init.send(&out_cdb(0x10, 1, 16), &p[..16]), 10, None);
    assert_invalid_field(
        &init.send(&out_cdb(0x10, 1, 16 + 65 * 16), &[0; 16 + 65 * 16]),
        10,
        None,
    );
    // Fewer bytes than the CDB says.
    let o = init.send(&out_cdb(0x10, 1, p.len()), &p[..20]);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
    // A range descriptor list length that is not whole descriptors.
    let mut bad = p.clone();
    bad[15] = 8;
    let o = init.send(&out_cdb(0x10, 1, bad.len()), &bad);
    assert_invalid_param_field(&o, 14);
    // More than 64 descriptors claimed.
    let mut many = p.clone();
    many[14..16].copy_from_slice(&(65u16 * 16).to_be_bytes());
    let o = init.send(&out_cdb(0x10, 1, many.len()), &many);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::TOO_MANY_SEGMENT_DESCRIPTORS,
    );
    // Past the end of the medium.
    let o = populate(&init, 1, &[(BLOCKS - 2, 4)]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    // Overlapping ranges: the second descriptor is the invalid one.
    let o = populate(&init, 1, &[(0, 8), (4, 8)]);
    assert_invalid_param_field(&o, 32);
    // A ROD type we do not make.
    let mut typed = pt_params(0, &[(0, 1)]);
    typed[2] = 0x02; // RTV
    typed[8..12].copy_from_slice(&0x0080_0000u32.to_be_bytes());
    let o = init.send(&out_cdb(0x10, 1, typed.len()), &typed);
    assert_invalid_param_field(&o, 8);
    // Nothing was made under list 1.
    assert_invalid_field(&rrti(&init, 1), 2, None);
}

#[test]
fn honours_reservations_and_write_protection() {
    let (t, _a, _b, init) = two_disks();
    let token = token_for(&init, 1, &[(0, 4)]);
    // b holds Exclusive Access on LU 0, the token's source.
    let holder = Initiator::new(&t, "iqn.2026-12.test:b");
    holder.clear_unit_attentions();
    let mut key = [0u8; 24];
    key[8..16].copy_from_slice(&7u64.to_be_bytes());
    assert_good(&holder.send(&[0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0], &key));
    let mut res = [0u8; 24];
    res[0..8].copy_from_slice(&7u64.to_be_bytes());
    assert_good(&holder.send(&[0x5f, 0x01, 0x03, 0, 0, 0, 0, 0, 24, 0], &res));
    // a may not read LU 0 through a token written to LU 1, nor make one.
    let o = write_using(&on(&init, 1), 2, &token, 0, &[(0, 4)]);
    assert_sense(&o, SenseKey::COPY_ABORTED, Asc::NO_ADDITIONAL_SENSE);
    assert_eq!(
        populate(&init, 3, &[(0, 1)]).status(),
        Status::RESERVATION_CONFLICT
    );
    // The holder may.
    let holder_lu1 = on(&holder, 1);
    holder_lu1.clear_unit_attentions();
    assert_good(&write_using(&holder_lu1, 2, &token, 0, &[(0, 4)]));

    // A read-only destination.
    let t = Target::new(TargetConfig::default());
    let ro = Arc::new(MemBackstore::new(BLOCKS, BS).read_only());
    t.add_lun(0, LuConfig::new(Arc::new(MemBackstore::new(BLOCKS, BS))))
        .unwrap();
    t.add_lun(1, LuConfig::new(ro)).unwrap();
    let init = Initiator::new(&t, "iqn.2026-12.test:a");
    init.clear_unit_attentions();
    on(&init, 1).clear_unit_attentions();
    let token = token_for(&init, 1, &[(0, 4)]);
    let o = write_using(&on(&init, 1), 2, &token, 0, &[(0, 4)]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
}

#[test]
fn the_third_party_copy_page_describes_the_token_commands() {
    let (_t, _a, _b, init) = two_disks();
    let o = init.run(&[0x12, 1, 0x8f, 0x04, 0, 0], 1024);
    assert_good(&o);
    let page = &o.data[4..];
    let mut at = 0;
    let mut found = std::collections::HashMap::new();
    while at + 4 <= page.len() {
        let kind = u16::from_be_bytes([page[at], page[at + 1]]);
        let len = usize::from(u16::from_be_bytes([page[at + 2], page[at + 3]]));
        found.insert(kind, page[at..at + 4 + len].to_vec());
        at += 4 + len;
    }
    // Block Device ROD Token Limits, as ddpt and Windows read it.
    let limits = &found[&0x0000];
    assert_eq!(limits.len(), 36);
    assert_eq!(u16::from_be_bytes([limits[10], limits[11]]), 64);
    assert_eq!(be32(limits, 12), 600);
    assert_eq!(be32(limits, 16), 60);
    // Supported Commands: 83h with POPULATE TOKEN and WRITE USING TOKEN,
    // 84h with RECEIVE ROD TOKEN INFORMATION.
    let commands = &found[&0x0001];
    let list = &commands[5..5 + usize::from(commands[4])];
    let mut i = 0;
    let mut actions = std::collections::HashMap::new();
    while i + 2 <= list.len() {
        let n = usize::from(list[i + 1]);
        actions.insert(list[i], list[i + 2..i + 2 + n].to_vec());
        i += 2 + n;
    }
    assert!(actions[&0x83].contains(&0x10) && actions[&0x83].contains(&0x11));
    assert!(actions[&0x84].contains(&0x07));
    // Supported ROD types: access upon reference and block device zero.
    let types = &found[&0x0108];
    assert_eq!(be32(types, 8), 0x0001_0000);
    assert_eq!(be32(types, 16), 0xffff_0001);
    assert!(found.contains_key(&0x0106));
}
