//! The SBC disk device model, command by command, with its error answers.
#![allow(clippy::cast_possible_truncation)] // tests build CDB fields by hand

mod common;

use common::*;
use tgtkit_scsi_core::backstore::Capabilities;
use tgtkit_scsi_core::engine::Residual;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;

#[test]
fn accepts_write_then_read_in_every_cdb_size() {
    let (_t, store, init) = disk();
    let data = pattern(4 * BS as usize, 7);
    assert_good(&init.send(&write16(10, 4), &data));
    assert_eq!(store.contents(10 * u64::from(BS), data.len()), data);
    let r16 = init.run(&read16(10, 4), data.len());
    assert_good(&r16);
    assert_eq!(r16.data, data);
    let r10 = init.run(&rw10(0x28, 10, 4), data.len());
    assert_eq!(r10.data, data);
    let mut r12 = [0u8; 12];
    r12[0] = 0xa8;
    r12[2..6].copy_from_slice(&10u32.to_be_bytes());
    r12[6..10].copy_from_slice(&4u32.to_be_bytes());
    assert_eq!(init.run(&r12, data.len()).data, data);
    // READ(6): 21-bit LBA, length 4.
    let r6 = [0x08, 0, 0, 10, 4, 0];
    assert_eq!(init.run(&r6, data.len()).data, data);
    // WRITE(6) with transfer length 0 means 256 blocks (SBC-4 §5.40).
    let big = pattern(256 * BS as usize, 3);
    assert_good(&init.send(&[0x0a, 0, 0, 0, 0, 0], &big));
    assert_eq!(store.contents(0, big.len()), big);
}

#[test]
fn rejects_lba_out_of_range() {
    let (_t, _s, init) = disk();
    let o = init.run(&read16(BLOCKS - 1, 2), 2 * BS as usize);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    let o = init.send(&write16(u64::MAX, 1), &[0; 512]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    // The last block itself is fine.
    assert_good(&init.run(&read16(BLOCKS - 1, 1), BS as usize));
}

#[test]
fn rejects_protection_fields_without_pi() {
    let (_t, _s, init) = disk();
    let mut c = read16(0, 1);
    c[1] = 0x20; // RDPROTECT 001b
    assert_invalid_field(&init.run(&c, 512), 1, Some(7));
    let mut w = rw10(0x2a, 0, 1);
    w[1] = 0x40;
    assert_invalid_field(&init.send(&w, &[0; 512]), 1, Some(7));
}

#[test]
fn rejects_transfers_past_the_block_limits() {
    let (t, _s, init) = disk();
    let max = t.config().max_transfer_blocks;
    let o = init.run(&read16(0, max + 1), 0);
    assert_invalid_field(&o, 10, None);
}

#[test]
fn rejects_writes_to_read_only_units() {
    let (_t, _s, init) = disk_with(
        tgtkit_scsi_core::test_utils::MemBackstore::new(BLOCKS, BS),
        true,
    );
    let o = init.send(&write16(0, 1), &[1; 512]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
    let o = init.send(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &[0; 24]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
    // MODE SENSE reports WP in the device-specific parameter.
    let ms = init.run(&[0x1a, 0x08, 0x3f, 0, 255, 0], 255);
    assert_eq!(ms.data[2] & 0x80, 0x80);
}

#[test]
fn reports_residuals_for_short_and_long_buffers() {
    let (_t, store, init) = disk();
    // Data-in buffer larger than the transfer: underflow.
    let o = init.run(&read16(0, 1), 1000);
    assert_good(&o);
    assert_eq!(o.response.residual, Residual::Under(1000 - 512));
    // Shorter: overflow, and only what fits is moved.
    let o = init.run(&read16(0, 2), 700);
    assert_eq!(o.response.residual, Residual::Over(1024 - 700));
    assert_eq!(o.response.data_len, 700);
    // Write of two blocks with one block of data: one block written.
    assert_good(&init.send(&write16(0, 2), &[0xaa; 1024]));
    let o = init.send(&write16(0, 2), &[0xbb; 512]);
    assert_good(&o);
    assert_eq!(o.response.residual, Residual::Over(512));
    assert_eq!(store.contents(0, 1024)[..512], [0xbb; 512]);
    assert_eq!(store.contents(0, 1024)[512..], [0xaa; 512]);
}

#[test]
fn honours_fua_and_write_cache_enable() {
    let (_t, store, init) = disk();
    let mut w = write16(0, 1);
    w[1] = 0x08; // FUA
    assert_good(&init.send(&w, &[1; 512]));
    assert_eq!(
        store.fua_writes.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Without a native FUA the device model flushes after the write.
    let (_t, store, init) = disk_caps(Capabilities::all() - Capabilities::FUA);
    assert_good(&init.send(&w, &[1; 512]));
    assert_eq!(store.flushes.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn reads_capacity() {
    let (_t, _s, init) = disk();
    let o = init.run(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_good(&o);
    assert_eq!(o.data, [0, 0, 0x03, 0xff, 0, 0, 0x02, 0x00]);
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x10;
    c[13] = 32;
    let o = init.run(&c, 32);
    assert_eq!(
        &o.data[0..12],
        &[0, 0, 0, 0, 0, 0, 0x03, 0xff, 0, 0, 0x02, 0]
    );
    assert_eq!(o.data[14] & 0xc0, 0xc0, "LBPME and LBPRZ");
    // PMI clear with a non-zero LBA is invalid (SBC-4 §5.20.1).
    let o = init.run(&[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0], 8);
    assert_invalid_field(&o, 2, None);
}

#[test]
fn reports_physical_block_exponent() {
    let store =
        tgtkit_scsi_core::test_utils::MemBackstore::new(BLOCKS, 512).physical_block_size(4096);
    let (_t, _s, init) = disk_with(store, false);
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x10;
    c[13] = 32;
    assert_eq!(init.run(&c, 32).data[13] & 0x0f, 3);
}

#[test]
fn verifies_with_every_bytchk() {
    let (_t, _s, init) = disk();
    let data = pattern(1024, 1);
    assert_good(&init.send(&write16(4, 2), &data));
    let mut v = [0u8; 16];
    v[0] = 0x8f;
    v[2..10].copy_from_slice(&4u64.to_be_bytes());
    v[10..14].copy_from_slice(&2u32.to_be_bytes());
    assert_good(&init.send(&v, &[]));
    v[1] = 0x02; // BYTCHK 01b
    assert_good(&init.send(&v, &data));
    let mut bad = data.clone();
    bad[700] ^= 1;
    let o = init.send(&v, &bad);
    let s = assert_sense(&o, SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY);
    assert_eq!(s.information, Some(700));
    // BYTCHK 11b: one block compared against each block.
    assert_good(&init.send(&write16(8, 2), &[9u8; 1024]));
    v[1] = 0x06;
    v[2..10].copy_from_slice(&8u64.to_be_bytes());
    assert_good(&init.send(&v, &[9u8; 512]));
    let o = init.send(&v, &[8u8; 512]);
    assert_sense(&o, SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY);
    // BYTCHK 10b is reserved.
    v[1] = 0x04;
    assert_invalid_field(&init.send(&v, &[0; 512]), 1, Some(2));
}

#[test]
fn compares_and_writes() {
    let (_t, store, init) = disk();
    assert_good(&init.send(&write16(3, 1), &[5u8; 512]));
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[2..10].copy_from_slice(&3u64.to_be_bytes());
    c[13] = 1;
    let mut buf = vec![5u8; 512];
    buf.extend_from_slice(&[6u8; 512]);
    assert_good(&init.send(&c, &buf));
    assert_eq!(store.contents(3 * 512, 512), vec![6u8; 512]);
    // Now the compare fails at byte 0 and nothing is written.
    let o = init.send(&c, &buf);
    let s = assert_sense(&o, SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY);
    assert_eq!(s.information, Some(0));
    assert_eq!(store.contents(3 * 512, 512), vec![6u8; 512]);
}

#[test]
fn writes_same_with_and_without_unmap() {
    let (_t, store, init) = disk();
    let mut ws = [0u8; 16];
    ws[0] = 0x93;
    ws[2..10].copy_from_slice(&100u64.to_be_bytes());
    ws[10..14].copy_from_slice(&8u32.to_be_bytes());
    assert_good(&init.send(&ws, &[0x5a; 512]));
    assert_eq!(store.contents(100 * 512, 8 * 512), vec![0x5a; 8 * 512]);
    // UNMAP with a zero block deallocates.
    ws[1] = 0x08;
    assert_good(&init.send(&ws, &[0; 512]));
    assert_eq!(store.contents(100 * 512, 8 * 512), vec![0; 8 * 512]);
    let mut gls = [0u8; 16];
    gls[0] = 0x9e;
    gls[1] = 0x12;
    gls[2..10].copy_from_slice(&100u64.to_be_bytes());
    gls[13] = 24;
    let o = init.run(&gls, 24);
    assert_good(&o);
    assert_eq!(o.data[20] & 0x0f, 1, "deallocated");
    // NDOB: no data-out buffer.
    ws[1] = 0x09;
    assert_good(&init.send(&ws, &[]));
    // ANCHOR is not supported.
    let mut ws10 = rw10(0x41, 0, 1);
    ws10[1] = 0x10;
    assert_invalid_field(&init.send(&ws10, &[0; 512]), 1, Some(4));
}

#[test]
fn rejects_unmap_bit_without_thin_provisioning() {
    let (_t, _s, init) = disk_caps(Capabilities::WRITE_CACHE);
    let mut ws = rw10(0x41, 0, 1);
    ws[1] = 0x08;
    assert_invalid_field(&init.send(&ws, &[0; 512]), 1, Some(3));
    let o = init.send(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &[0; 24]);
    assert_sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_COMMAND_OPERATION_CODE,
    );
}

fn unmap_list(ranges: &[(u64, u32)]) -> Vec<u8> {
    let mut p = vec![0u8; 8];
    for (lba, n) in ranges {
        p.extend_from_slice(&lba.to_be_bytes());
        p.extend_from_slice(&n.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
    }
    let len = p.len();
    p[0..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
    p[2..4].copy_from_slice(&((len - 8) as u16).to_be_bytes());
    p
}

#[test]
fn unmaps_within_the_block_limits() {
    let (t, store, init) = disk();
    assert_good(&init.send(&write16(0, 4), &[1; 2048]));
    let list = unmap_list(&[(1, 2)]);
    let mut c = [0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    c[8] = list.len() as u8;
    assert_good(&init.send(&c, &list));
    assert_eq!(store.contents(0, 2048)[512..1536], [0; 1024]);
    assert_eq!(store.contents(0, 512), vec![1; 512]);
    // Past the end.
    let list = unmap_list(&[(BLOCKS - 1, 2)]);
    c[8] = list.len() as u8;
    assert_sense(
        &init.send(&c, &list),
        SenseKey::ILLEGAL_REQUEST,
        Asc::LBA_OUT_OF_RANGE,
    );
    // More LBAs than MAXIMUM UNMAP LBA COUNT.
    let max = t.config().max_unmap_blocks;
    let list = unmap_list(&[(0, max + 1)]);
    c[8] = list.len() as u8;
    assert_sense(
        &init.send(&c, &list),
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_FIELD_IN_PARAMETER_LIST,
    );
    // A parameter list shorter than its header.
    c[8] = 4;
    assert_sense(
        &init.send(&c, &[0; 4]),
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
}

#[test]
fn synchronizes_cache_and_prefetches() {
    let (_t, store, init) = disk();
    assert_good(&init.run(&rw10(0x35, 0, 0), 0));
    assert_eq!(store.flushes.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_sense(
        &init.run(&rw10(0x35, BLOCKS as u32, 1), 0),
        SenseKey::ILLEGAL_REQUEST,
        Asc::LBA_OUT_OF_RANGE,
    );
    assert_good(&init.run(&rw10(0x34, 0, 8), 0));
    assert_sense(
        &init.run(&rw10(0x34, BLOCKS as u32 - 1, 2), 0),
        SenseKey::ILLEGAL_REQUEST,
        Asc::LBA_OUT_OF_RANGE,
    );
}

#[test]
fn starts_stops_formats_and_reads_defects() {
    let (_t, _s, init) = disk();
    assert_good(&init.run(&[0x1b, 0, 0, 0, 0x01, 0], 0));
    assert_good(&init.run(&[0x1b, 0, 0, 0, 0x00, 0], 0));
    // LOEJ on a non-removable medium.
    assert_invalid_field(&init.run(&[0x1b, 0, 0, 0, 0x02, 0], 0), 4, Some(1));
    assert_invalid_field(&init.run(&[0x1b, 0, 0, 0, 0x50, 0], 0), 4, Some(7));
    assert_good(&init.run(&[0x04, 0, 0, 0, 0, 0], 0));
    assert_invalid_field(&init.run(&[0x04, 0x10, 0, 0, 0, 0], 0), 1, Some(4));
    let o = init.run(&[0x37, 0, 0x18, 0, 0, 0, 0, 0, 4, 0], 4);
    assert_good(&o);
    assert_eq!(o.data, [0, 0x18, 0, 0]);
}

#[test]
fn maps_backstore_errors_to_medium_errors() {
    let (_t, store, init) = disk();
    store.fail_reads(true);
    let o = init.run(&read16(5, 1), 512);
    let s = assert_sense(&o, SenseKey::MEDIUM_ERROR, Asc::UNRECOVERED_READ_ERROR);
    assert_eq!(s.information, Some(5));
}

#[test]
fn raises_capacity_changed_after_resize() {
    let (_t, store, init) = disk();
    store.resize(2 * BLOCKS);
    let o = init.run(&[0; 6], 0);
    assert_sense(&o, SenseKey::UNIT_ATTENTION, Asc::CAPACITY_DATA_HAS_CHANGED);
    let o = init.run(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(
        u32::from_be_bytes(o.data[0..4].try_into().unwrap()),
        2 * BLOCKS as u32 - 1
    );
}

#[test]
fn rejects_naca_and_link_bits() {
    let (_t, _s, init) = disk();
    assert_invalid_field(&init.run(&[0, 0, 0, 0, 0, 0x04], 0), 5, Some(2));
    assert_invalid_field(&init.run(&[0, 0, 0, 0, 0, 0x01], 0), 5, Some(0));
    assert_eq!(init.run(&[0; 6], 0).status(), Status::GOOD);
}

#[test]
fn rejects_compare_and_write_of_zero_blocks_with_data() {
    let (_t, _s, init) = disk();
    let mut c = [0u8; 16];
    c[0] = 0x89;
    assert_good(&init.send(&c, &[]));
    assert_invalid_field(&init.send(&c, &[0; 1024]), 13, None);
}

#[test]
fn bounds_write_same_by_its_own_limit() {
    let (t, _s, init) = disk_with(
        tgtkit_scsi_core::test_utils::MemBackstore::new(1 << 17, BS),
        false,
    );
    let max = t.config().max_write_same_blocks;
    let mut ws = [0u8; 16];
    ws[0] = 0x93;
    ws[1] = 0x08;
    ws[10..14].copy_from_slice(&max.to_be_bytes());
    assert_good(&init.send(&ws, &[0; 512]));
    ws[10..14].copy_from_slice(&(max + 1).to_be_bytes());
    assert_invalid_field(&init.send(&ws, &[0; 512]), 10, None);
    let vpd = init.run(&[0x12, 1, 0xb0, 0, 64, 0], 64);
    assert_eq!(
        u64::from_be_bytes(vpd.data[36..44].try_into().unwrap()),
        u64::from(max)
    );
    assert!(u32::from_be_bytes(vpd.data[20..24].try_into().unwrap()) <= 1 << 20);
}

#[test]
fn writes_same_with_zero_blocks_to_the_end_of_the_medium() {
    // SBC-4 §5.48/§5.49 with WSNZ zero (Block Limits VPD byte 4 bit 0).
    let (_t, store, init) = disk();
    let vpd = init.run(&[0x12, 1, 0xb0, 0, 64, 0], 64);
    assert_eq!(vpd.data[4] & 1, 0, "WSNZ");
    let lba = BLOCKS as u32 - 4;
    assert_good(&init.send(&rw10(0x41, lba, 0), &[0xc3; 512]));
    let tail = store.contents(u64::from(lba) * 512, 4 * 512);
    assert_eq!(tail, vec![0xc3; 4 * 512]);
    assert_eq!(store.contents(u64::from(lba - 1) * 512, 512), vec![0; 512]);
    // The last block alone, then one past it.
    assert_good(&init.send(&rw10(0x41, BLOCKS as u32 - 1, 0), &[0x3c; 512]));
    assert_eq!(store.contents((BLOCKS - 1) * 512, 512), vec![0x3c; 512]);
    for lba in [BLOCKS as u32, BLOCKS as u32 + 1, u32::MAX] {
        let o = init.send(&rw10(0x41, lba, 0), &[0; 512]);
        assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
    }
    let mut ws = [0u8; 16];
    ws[0] = 0x93;
    ws[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
    let o = init.send(&ws, &[0; 512]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
}

#[test]
fn bounds_write_same_of_zero_blocks_by_maximum_write_same_length() {
    // More blocks to the end than MAXIMUM WRITE SAME LENGTH: INVALID FIELD
    // IN CDB at NUMBER OF LOGICAL BLOCKS (what libiscsi's ZeroBlocks wants).
    let blocks = 1u64 << 17;
    let (t, store, init) = disk_with(
        tgtkit_scsi_core::test_utils::MemBackstore::new(blocks, BS),
        false,
    );
    let max = u64::from(t.config().max_write_same_blocks);
    let mut ws = [0u8; 16];
    ws[0] = 0x93;
    assert_invalid_field(&init.send(&ws, &[1; 512]), 10, None);
    assert_invalid_field(&init.send(&rw10(0x41, 0, 0), &[1; 512]), 7, None);
    ws[2..10].copy_from_slice(&(blocks - max - 1).to_be_bytes());
    assert_invalid_field(&init.send(&ws, &[1; 512]), 10, None);
    assert_eq!(store.contents((blocks - max - 1) * 512, 512), vec![0; 512]);
    ws[2..10].copy_from_slice(&(blocks - max).to_be_bytes());
    assert_good(&init.send(&ws, &[1; 512]));
    assert_eq!(store.contents((blocks - max) * 512, 512), vec![1; 512]);
    assert_eq!(store.contents((blocks - 1) * 512, 512), vec![1; 512]);
}

#[test]
fn or_writes_into_existing_blocks() {
    let (_t, store, init) = disk();
    assert_good(&init.send(&write16(6, 2), &[0x0f; 1024]));
    let mut c = write16(6, 2);
    c[0] = 0x8b;
    assert_good(&init.send(&c, &[0xa0; 1024]));
    assert_eq!(store.contents(6 * 512, 1024), vec![0xaf; 1024]);
    c[1] = 0x20; // ORPROTECT
    assert_invalid_field(&init.send(&c, &[0; 1024]), 1, Some(7));
    let o = init.send(&write16(BLOCKS, 1).map_or_write(), &[0; 512]);
    assert_sense(&o, SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE);
}

trait OrWriteCdb {
    fn map_or_write(self) -> Self;
}

impl OrWriteCdb for [u8; 16] {
    fn map_or_write(mut self) -> Self {
        self[0] = 0x8b;
        self
    }
}

#[test]
fn unmaps_with_write_same_and_no_data_out() {
    let (_t, store, init) = disk();
    assert_good(&init.send(&write16(20, 2), &[7; 1024]));
    let mut ws = [0u8; 16];
    ws[0] = 0x93;
    ws[1] = 0x08;
    ws[2..10].copy_from_slice(&20u64.to_be_bytes());
    ws[10..14].copy_from_slice(&2u32.to_be_bytes());
    assert_good(&init.send(&ws, &[]));
    assert_eq!(store.contents(20 * 512, 1024), vec![0; 1024]);
    // Without UNMAP the block is required.
    ws[1] = 0;
    assert_sense(
        &init.send(&ws, &[]),
        SenseKey::ILLEGAL_REQUEST,
        Asc::PARAMETER_LIST_LENGTH_ERROR,
    );
}

#[test]
fn rejects_data_out_sizes_that_do_not_match_the_cdb() {
    let (_t, _s, init) = disk();
    let mut ws = rw10(0x41, 0, 1);
    ws[1] = 0x08;
    for len in [256usize, 1024] {
        let o = init.send(&ws, &vec![0xa6; len]);
        assert_sense(
            &o,
            SenseKey::ILLEGAL_REQUEST,
            Asc::PARAMETER_LIST_LENGTH_ERROR,
        );
    }
    let mut caw = [0u8; 16];
    caw[0] = 0x89;
    caw[13] = 1;
    assert_invalid_field(&init.send(&caw, &[0xa6; 2048]), 13, None);
    caw[13] = 3;
    assert_invalid_field(&init.send(&caw, &[0xa6; 2048]), 13, None);
}

#[test]
fn unmaps_with_write_same_10_of_zero_blocks_to_the_end() {
    // libiscsi WriteSame10.UnmapUntilEnd: the last i blocks, NUMBER OF
    // LOGICAL BLOCKS zero, UNMAP set, a zero block; they read back zero.
    let (_t, store, init) = disk();
    for i in [1u32, 2, 7] {
        let lba = BLOCKS as u32 - i;
        assert_good(&init.send(&rw10(0x2a, lba, i as u16), &vec![0xff; 512 * i as usize]));
        let mut ws = rw10(0x41, lba, 0);
        ws[1] = 0x08;
        assert_good(&init.send(&ws, &[0; 512]));
        let got = store.contents(u64::from(lba) * 512, 512 * i as usize);
        assert!(got.iter().all(|&b| b == 0), "{i} blocks");
    }
}

#[test]
fn refuses_unmap_and_write_same_unmap_on_read_only_units_as_write_protected() {
    // Even where the backstore cannot deallocate (a read-only file cannot
    // be probed for hole punching): libiscsi's ReadOnly.ReadOnlySBC.
    let (_t, _s, init) = disk_with(
        tgtkit_scsi_core::test_utils::MemBackstore::with_capabilities(
            BLOCKS,
            BS,
            Capabilities::WRITE_CACHE,
        ),
        true,
    );
    let mut ws = rw10(0x41, 0, 1);
    ws[1] = 0x08;
    let o = init.send(&ws, &[0; 512]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
    let o = init.send(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &[0; 24]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
}
