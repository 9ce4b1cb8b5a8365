//! The sequential-access device model (SSC-3): variable and fixed blocks,
//! filemarks, spacing and locating, READ POSITION, the exception
//! conditions with their FILEMARK/EOM/ILI bits and residues, LOAD UNLOAD,
//! and the disk commands a tape does not have.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::sync::Arc;

use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::engine::{LuConfig, Residual, Target, TargetConfig};
use tgtkit_scsi_core::sense::{Asc, SenseKey, StreamBits};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore, Outcome};

const REWIND: [u8; 6] = [0x01, 0, 0, 0, 0, 0];
const UNLOAD: [u8; 6] = [0x1b, 0, 0, 0, 0x00, 0];
const LOAD: [u8; 6] = [0x1b, 0, 0, 0, 0x01, 0];

/// A blank tape of `blocks` × 512 bytes at LUN 0.
fn tape(blocks: u64) -> (Arc<MemBackstore>, Initiator) {
    let t = Target::new(TargetConfig::default());
    let medium = Arc::new(MemBackstore::new(blocks, 512));
    t.add_lun(
        0,
        LuConfig::new(medium.clone()).device_type(DeviceType::Tape),
    )
    .unwrap();
    let i = Initiator::new(&t, "iqn.2026-12.test:a");
    i.clear_unit_attentions();
    (medium, i)
}

fn len24(n: u32) -> [u8; 3] {
    let b = n.to_be_bytes();
    [b[1], b[2], b[3]]
}

fn read(sili: bool, fixed: bool, n: u32) -> [u8; 6] {
    let l = len24(n);
    [
        0x08,
        u8::from(sili) << 1 | u8::from(fixed),
        l[0],
        l[1],
        l[2],
        0,
    ]
}

fn write(fixed: bool, n: u32) -> [u8; 6] {
    let l = len24(n);
    [0x0a, u8::from(fixed), l[0], l[1], l[2], 0]
}

fn filemarks(n: u32) -> [u8; 6] {
    let l = len24(n);
    [0x10, 0, l[0], l[1], l[2], 0]
}

fn space(code: u8, n: i32) -> [u8; 6] {
    let l = len24(n as u32 & 0xff_ffff);
    [0x11, code, l[0], l[1], l[2], 0]
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

#[track_caller]
fn good(o: &Outcome) {
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
}

/// CHECK CONDITION with `key`/`asc`, `stream` bits and INFORMATION
/// `residue` (as the signed 32-bit value of the fixed format).
#[track_caller]
fn exception(o: &Outcome, key: SenseKey, asc: Asc, stream: StreamBits, residue: i32) {
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().unwrap();
    assert_eq!((s.key, s.asc, s.stream), (key, asc, stream), "{s:?}");
    assert_eq!(s.information, Some(u64::from(residue as u32)), "{s:?}");
}

#[track_caller]
fn invalid_field(o: &Outcome) -> (u16, Option<u8>) {
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().unwrap();
    assert_eq!(
        (s.key, s.asc),
        (SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB),
        "{s:?}"
    );
    let f = s.field.unwrap();
    (f.byte, f.bit)
}

/// READ POSITION short form: (BOP, first block location).
fn position(i: &Initiator) -> (bool, u32) {
    let o = i.run(&[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], 20);
    good(&o);
    (
        o.data[0] & 0x80 != 0,
        u32::from_be_bytes(o.data[4..8].try_into().unwrap()),
    )
}

#[test]
fn identifies_as_a_removable_tape_with_block_limits() {
    let (_, i) = tape(2048);
    let o = i.run(&[0x12, 0, 0, 0, 96, 0], 96);
    good(&o);
    assert_eq!(o.data[0], 0x01);
    assert_eq!(o.data[1] & 0x80, 0x80, "RMB");
    let o = i.run(&[0x05, 0, 0, 0, 0, 0], 6);
    good(&o);
    assert_eq!(o.data, [0, 0x00, 0xff, 0xff, 0, 1]);
    // MODE SENSE(6) page 0 with its block descriptor, as st asks.
    let o = i.run(&[0x1a, 0, 0, 0, 12, 0], 12);
    good(&o);
    assert_eq!(o.data[3], 8);
    assert_eq!(o.data[2], 0x10, "buffered mode, not write protected");
    assert_eq!(&o.data[9..12], &[0, 0, 0], "variable block length");
    // The device configuration page.
    let o = i.run(&[0x1a, 0x08, 0x10, 0, 255, 0], 255);
    good(&o);
    assert_eq!(&o.data[4..6], &[0x10, 0x0e]);
    // Disk commands are unknown opcodes here, and PRE-FETCH's opcode is
    // READ POSITION.
    for cdb in [
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        &[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0],
    ] {
        let o = i.run(cdb, 512);
        let s = o.sense().unwrap();
        assert_eq!(s.asc, Asc::INVALID_COMMAND_OPERATION_CODE, "{cdb:02x?}");
    }
    assert_eq!(position(&i), (true, 0));
}

#[test]
fn writes_and_reads_back_variable_blocks_and_filemarks() {
    let (_, i) = tape(2048);
    let a = pattern(1000, 1);
    let b = pattern(300, 2);
    good(&i.send(&write(false, 1000), &a));
    good(&i.send(&write(false, 300), &b));
    good(&i.run(&filemarks(1), 0));
    let c = pattern(10240, 3);
    good(&i.send(&write(false, 10240), &c));
    good(&i.run(&filemarks(1), 0));
    assert_eq!(position(&i), (false, 5));
    good(&i.run(&REWIND, 0));
    assert_eq!(position(&i), (true, 0));

    // Exact length.
    let o = i.run(&read(false, false, 1000), 1000);
    good(&o);
    assert_eq!(o.data, a);
    // A short block: its data, ILI, residue requested - actual.
    let o = i.run(&read(false, false, 4096), 4096);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::NO_ADDITIONAL_SENSE,
        StreamBits::ILI,
        4096 - 300,
    );
    assert_eq!(o.data, b);
    assert_eq!(o.response.residual, Residual::Under(4096 - 300));
    // The filemark: no data, FILEMARK, residue the whole request.
    let o = i.run(&read(false, false, 4096), 4096);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::FILEMARK_DETECTED,
        StreamBits::FILEMARK,
        4096,
    );
    assert_eq!(o.response.data_len, 0);
    // An overlength block: the part asked for, ILI, a negative residue;
    // the position is after the block all the same.
    let o = i.run(&read(false, false, 100), 100);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::NO_ADDITIONAL_SENSE,
        StreamBits::ILI,
        100 - 10240,
    );
    assert_eq!(o.data, &c[..100]);
    // SILI suppresses the short-block report in variable mode.
    good(&i.run(&space(0, -1), 0));
    let o = i.run(&read(true, false, 20000), 20000);
    good(&o);
    assert_eq!(o.data, c);
    // Past the last filemark: end of data.
    let o = i.run(&read(false, false, 512), 512);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::FILEMARK_DETECTED,
        StreamBits::FILEMARK,
        512,
    );
    let o = i.run(&read(false, false, 512), 512);
    exception(
        &o,
        SenseKey::BLANK_CHECK,
        Asc::END_OF_DATA_DETECTED,
        StreamBits::NONE,
        512,
    );
    assert_eq!(position(&i), (false, 5));
}

#[test]
fn fixed_block_mode_follows_the_mode_block_length() {
    let (_, i) = tape(2048);
    // FIXED without a block length is refused.
    assert_eq!(
        invalid_field(&i.send(&write(true, 1), &[0; 512])),
        (1, Some(0))
    );
    // MODE SELECT(6): a block descriptor with 512-byte blocks.
    let mut p = [0u8; 12];
    p[3] = 8;
    p[9..12].copy_from_slice(&len24(512));
    good(&i.send(&[0x15, 0x10, 0, 0, 12, 0], &p));
    let o = i.run(&[0x1a, 0, 0, 0, 12, 0], 12);
    assert_eq!(&o.data[9..12], &len24(512));
    // A density other than the default is refused.
    let mut bad = p;
    bad[4] = 0x42;
    let o = i.send(&[0x15, 0x10, 0, 0, 12, 0], &bad);
    assert_eq!(o.sense().unwrap().asc, Asc::INVALID_FIELD_IN_PARAMETER_LIST);

    let data = pattern(3 * 512, 9);
    good(&i.send(&write(true, 3), &data));
    good(&i.run(&filemarks(1), 0));
    good(&i.run(&REWIND, 0));
    // SILI with FIXED is invalid.
    assert_eq!(
        invalid_field(&i.run(&read(true, true, 1), 512)),
        (1, Some(1))
    );
    let o = i.run(&read(false, true, 2), 1024);
    good(&o);
    assert_eq!(o.data, &data[..1024]);
    // Two more asked, one block left: the block, then FILEMARK with one
    // block not read.
    let o = i.run(&read(false, true, 2), 1024);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::FILEMARK_DETECTED,
        StreamBits::FILEMARK,
        1,
    );
    assert_eq!(o.data, &data[1024..]);
    // A variable-length block of another size read in fixed mode: ILI.
    good(&i.send(&write(false, 100), &[7; 100]));
    good(&i.run(&space(0, -1), 0));
    let o = i.run(&read(false, true, 4), 2048);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::NO_ADDITIONAL_SENSE,
        StreamBits::ILI,
        4,
    );
    assert_eq!(o.data, [7; 100]);
}

#[test]
fn spaces_over_blocks_and_filemarks_both_ways() {
    let (_, i) = tape(2048);
    // File 0: blocks 0-2; filemark 3; file 1: blocks 4-5; filemark 6.
    for n in 0..3 {
        good(&i.send(&write(false, 64), &[n; 64]));
    }
    good(&i.run(&filemarks(1), 0));
    for n in 3..5 {
        good(&i.send(&write(false, 64), &[n; 64]));
    }
    good(&i.run(&filemarks(1), 0));
    good(&i.run(&REWIND, 0));

    // Forward over blocks into the filemark: stops after it, residue 2.
    let o = i.run(&space(0, 5), 0);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::FILEMARK_DETECTED,
        StreamBits::FILEMARK,
        2,
    );
    assert_eq!(position(&i).1, 4);
    // Backward over blocks into the filemark: stops before it.
    good(&i.run(&space(0, 1), 0));
    let o = i.run(&space(0, -3), 0);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::FILEMARK_DETECTED,
        StreamBits::FILEMARK,
        -2,
    );
    assert_eq!(position(&i).1, 3);
    // Backward into BOP: EOM, residue the blocks not spaced.
    let o = i.run(&space(0, -10), 0);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::BEGINNING_OF_PARTITION_MEDIUM_DETECTED,
        StreamBits::EOM,
        -7,
    );
    assert_eq!(position(&i), (true, 0));
    // Forward one filemark, read the second file's first block.
    good(&i.run(&space(1, 1), 0));
    let o = i.run(&read(false, false, 64), 64);
    good(&o);
    assert_eq!(o.data, [3; 64]);
    // Forward three filemarks: end of data with two not spaced.
    let o = i.run(&space(1, 3), 0);
    exception(
        &o,
        SenseKey::BLANK_CHECK,
        Asc::END_OF_DATA_DETECTED,
        StreamBits::NONE,
        2,
    );
    assert_eq!(position(&i).1, 7);
    // Back over two filemarks: on the BOP side of the first.
    good(&i.run(&space(1, -2), 0));
    assert_eq!(position(&i).1, 3);
    // To end of data, then READ POSITION's long form.
    good(&i.run(&space(3, 0), 0));
    let o = i.run(&[0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0], 32);
    good(&o);
    assert_eq!(u64::from_be_bytes(o.data[8..16].try_into().unwrap()), 7);
    assert_eq!(u64::from_be_bytes(o.data[16..24].try_into().unwrap()), 2);
    // Setmarks are not supported; nor is READ POSITION's extended form.
    assert_eq!(invalid_field(&i.run(&space(4, 1), 0)), (1, Some(3)));
    let o = i.run(&[0x34, 0x08, 0, 0, 0, 0, 0, 0, 0, 0], 32);
    assert_eq!(invalid_field(&o), (1, Some(4)));
    // LOCATE to block 4 reads the second file; past the end: end of data.
    good(&i.run(&[0x2b, 0, 0, 0, 0, 0, 4, 0, 0, 0], 0));
    assert_eq!(i.run(&read(false, false, 64), 64).data, [3; 64]);
    let o = i.run(&[0x2b, 0, 0, 0, 0, 0, 9, 0, 0, 0], 0);
    assert_eq!(o.sense().unwrap().asc, Asc::END_OF_DATA_DETECTED);
    assert_eq!(
        invalid_field(&i.run(&[0x2b, 0x02, 0, 0, 0, 0, 0, 0, 1, 0], 0)),
        (8, None)
    );
}

#[test]
fn writing_in_the_middle_ends_the_data_there() {
    let (medium, i) = tape(2048);
    for n in 0..4 {
        good(&i.send(&write(false, 100), &[n; 100]));
    }
    good(&i.run(&REWIND, 0));
    good(&i.run(&space(0, 1), 0));
    good(&i.send(&write(false, 50), &[9; 50]));
    good(&i.run(&REWIND, 0));
    good(&i.run(&space(0, 1), 0));
    assert_eq!(i.run(&read(false, false, 50), 50).data, [9; 50]);
    let o = i.run(&read(false, false, 100), 100);
    exception(
        &o,
        SenseKey::BLANK_CHECK,
        Asc::END_OF_DATA_DETECTED,
        StreamBits::NONE,
        100,
    );
    // ERASE from BOP leaves a blank tape.
    good(&i.run(&REWIND, 0));
    good(&i.run(&[0x19, 0x01, 0, 0, 0, 0], 0));
    let o = i.run(&read(false, false, 100), 100);
    assert_eq!(o.sense().unwrap().key, SenseKey::BLANK_CHECK);
    // The image: an end-of-data header at offset 0.
    assert_eq!(medium.contents(4, 1), [0]);
    // Too long a variable block is refused.
    assert_eq!(
        invalid_field(&i.send(&write(false, 70000), &[0; 70000])),
        (2, None)
    );
}

#[test]
fn a_full_tape_reports_early_warning_then_volume_overflow() {
    // 32 KiB: the early-warning zone is its last 1 KiB.
    let (_, i) = tape(64);
    let block = vec![5u8; 10000];
    good(&i.send(&write(false, 10000), &block));
    good(&i.send(&write(false, 10000), &block));
    good(&i.send(&write(false, 10000), &block));
    // 30,018 bytes used: a 2,000-byte block ends in the zone.
    let o = i.send(&write(false, 2000), &block[..2000]);
    exception(
        &o,
        SenseKey::NO_SENSE,
        Asc::END_OF_PARTITION_MEDIUM_DETECTED,
        StreamBits::EOM,
        0,
    );
    // Nothing more fits.
    let o = i.send(&write(false, 10000), &block);
    exception(
        &o,
        SenseKey::VOLUME_OVERFLOW,
        Asc::END_OF_PARTITION_MEDIUM_DETECTED,
        StreamBits::EOM,
        10000,
    );
    let o = i.run(&[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], 20);
    assert_eq!(o.data[0] & 0x40, 0x40, "EOP");
}

#[test]
fn writes_many_filemarks_in_runs() {
    let (_, i) = tape(2048);
    good(&i.run(&filemarks(10_000), 0));
    assert_eq!(position(&i), (false, 10_000));
    good(&i.run(&space(1, -10_000), 0));
    assert_eq!(position(&i), (true, 0));
    let o = i.run(&space(3, 0), 0);
    good(&o);
    assert_eq!(position(&i).1, 10_000);
    // More than the medium holds: nothing written.
    let o = i.run(&filemarks(1 << 20), 0);
    assert_eq!(o.sense().unwrap().key, SenseKey::VOLUME_OVERFLOW);
}

#[test]
fn unload_takes_the_medium_out_until_load() {
    let (_, i) = tape(2048);
    good(&i.send(&write(false, 10), &[1; 10]));
    // Prevented: refused.
    good(&i.run(&[0x1e, 0, 0, 0, 1, 0], 0));
    let o = i.run(&UNLOAD, 0);
    assert_eq!(o.sense().unwrap().asc, Asc::MEDIUM_REMOVAL_PREVENTED);
    good(&i.run(&[0x1e, 0, 0, 0, 0, 0], 0));
    good(&i.run(&UNLOAD, 0));
    let o = i.run(&[0, 0, 0, 0, 0, 0], 0);
    assert_eq!(
        (o.sense().unwrap().key, o.sense().unwrap().asc),
        (SenseKey::NOT_READY, Asc::MEDIUM_NOT_PRESENT)
    );
    assert_eq!(
        i.run(&REWIND, 0).sense().unwrap().asc,
        Asc::MEDIUM_NOT_PRESENT
    );
    // READ BLOCK LIMITS is about the drive.
    good(&i.run(&[0x05, 0, 0, 0, 0, 0], 6));
    assert_eq!(
        invalid_field(&i.run(&[0x1b, 0, 0, 0, 0x08, 0], 0)),
        (4, Some(3))
    );
    assert_eq!(
        invalid_field(&i.run(&[0x1b, 0, 0, 0, 0x05, 0], 0)),
        (4, Some(2))
    );
    good(&i.run(&LOAD, 0));
    assert_eq!(position(&i), (true, 0));
    assert_eq!(i.run(&read(false, false, 10), 10).data, [1; 10]);
}
