//! The CD/DVD device model (MMC-6): a read-only, removable medium of
//! 2048-byte blocks with one data track, its own commands (READ TOC, GET
//! CONFIGURATION, GET EVENT STATUS NOTIFICATION, READ DISC/TRACK
//! INFORMATION, MECHANISM STATUS), the MM Capabilities mode page, and the
//! disk model's commands it does not have refused as unknown opcodes.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::engine::{ConfigError, LuConfig, Target, TargetConfig};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::table;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore, Outcome};

/// 300 blocks of 2048 bytes: 600 KiB.
const BLOCKS: u64 = 300;
const EJECT: [u8; 6] = [0x1b, 0, 0, 0, 0x02, 0];
const LOAD: [u8; 6] = [0x1b, 0, 0, 0, 0x03, 0];

/// A target with a disk at LUN 0 and a CD over the same medium at LUN 1
/// (the disk writes what the CD reads). Returns the CD's initiator and the
/// disk's.
fn cd() -> (Arc<Target>, Initiator, Initiator) {
    let t = Target::new(TargetConfig::default());
    let medium = Arc::new(MemBackstore::new(BLOCKS, 2048));
    t.add_lun(0, LuConfig::new(medium.clone())).unwrap();
    t.add_lun(1, LuConfig::new(medium).device_type(DeviceType::Cdrom))
        .unwrap();
    let disk = Initiator::new(&t, "iqn.2026-12.test:a");
    disk.clear_unit_attentions();
    let cd = Initiator::new(&t, "iqn.2026-12.test:a").with_lun(Lun::from_index(1).unwrap());
    cd.clear_unit_attentions();
    (t, cd, disk)
}

#[track_caller]
fn good(o: &Outcome) {
    assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
}

#[track_caller]
fn sense(o: &Outcome, key: SenseKey, asc: Asc) -> Option<(u16, Option<u8>)> {
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().unwrap();
    assert_eq!((s.key, s.asc), (key, asc), "{s:?}");
    s.field.map(|f| (f.byte, f.bit))
}

#[track_caller]
fn invalid_field(o: &Outcome) -> (u16, Option<u8>) {
    sense(o, SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB).unwrap()
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn toc(msf: bool, format: u8, track: u8, control: u8) -> [u8; 10] {
    [
        0x43,
        u8::from(msf) << 1,
        format,
        0,
        0,
        0,
        track,
        0x03,
        0x00,
        control,
    ]
}

fn config(rt: u8, start: u16) -> [u8; 10] {
    let s = start.to_be_bytes();
    [0x46, rt, s[0], s[1], 0, 0, 0, 0x04, 0x00, 0]
}

fn gesn(polled: bool, classes: u8, alloc: u8) -> [u8; 10] {
    [0x4a, u8::from(polled), 0, 0, classes, 0, 0, 0, alloc, 0]
}

/// The feature codes and current bits of a GET CONFIGURATION answer.
fn features(d: &[u8]) -> Vec<(u16, bool)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 4 <= d.len() {
        out.push((be16(d, at), d[at + 2] & 1 != 0));
        at += 4 + usize::from(d[at + 3]);
    }
    out
}

#[test]
fn is_a_removable_read_only_cdrom_of_2048_byte_blocks() {
    let (_t, cd, _disk) = cd();
    let inq = cd.run(&[0x12, 0, 0, 0, 96, 0], 96);
    good(&inq);
    assert_eq!(inq.data[0], 0x05, "peripheral device type");
    assert_eq!(inq.data[1] & 0x80, 0x80, "RMB");
    assert_eq!(inq.data[5] & 0x08, 0, "not a copy manager");
    let vpd = cd.run(&[0x12, 1, 0, 0, 64, 0], 64);
    assert_eq!(&vpd.data[4..], &[0x00, 0x80, 0x83]);
    invalid_field(&cd.run(&[0x12, 1, 0xb0, 0, 64, 0], 64));
    let cap = cd.run(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    good(&cap);
    assert_eq!(be32(&cap.data, 0), BLOCKS as u32 - 1);
    assert_eq!(be32(&cap.data, 4), 2048);

    // A CD/DVD device needs 2048-byte blocks.
    let t = Target::new(TargetConfig::default());
    let small = LuConfig::new(Arc::new(MemBackstore::new(8, 512))).device_type(DeviceType::Cdrom);
    assert!(matches!(
        t.add_lun(0, small),
        Err(ConfigError::BadGeometry(_))
    ));
}

#[test]
fn reads_what_the_medium_holds_and_refuses_disk_commands() {
    let (_t, cd, disk) = cd();
    let data: Vec<u8> = (0..2048 * 2).map(|i| (i * 7 + 1) as u8).collect();
    good(&disk.send(&[0x2a, 0, 0, 0, 0, 16, 0, 0, 2, 0], &data));
    let o = cd.run(&[0x28, 0, 0, 0, 0, 16, 0, 0, 2, 0], data.len());
    good(&o);
    assert_eq!(o.data, data);
    let o = cd.run(&[0xa8, 0, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0], data.len());
    assert_eq!(o.data, data);
    // The disk model's commands a CD-ROM drive does not have.
    for cdb in [
        &[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0][..],
        &[0x0a, 0, 0, 0, 1, 0],
        &[0x08, 0, 0, 0, 1, 0],
        &[0x48, 0x01, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        &[0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let o = cd.send(cdb, &[0; 2048]);
        sense(
            &o,
            SenseKey::ILLEGAL_REQUEST,
            Asc::INVALID_COMMAND_OPERATION_CODE,
        );
    }
    // And the CD/DVD commands are not the disk's.
    let o = disk.run(&toc(false, 0, 0, 0), 64);
    sense(
        &o,
        SenseKey::ILLEGAL_REQUEST,
        Asc::INVALID_COMMAND_OPERATION_CODE,
    );
}

#[test]
fn read_toc_describes_one_data_track_and_its_lead_out() {
    let (_t, cd, _disk) = cd();
    let o = cd.run(&toc(false, 0, 0, 0), 256);
    good(&o);
    assert_eq!(o.data.len(), 20);
    assert_eq!(be16(&o.data, 0), 18);
    assert_eq!(&o.data[2..4], &[1, 1], "first and last track");
    assert_eq!(&o.data[4..8], &[0, 0x14, 1, 0], "track 1: data");
    assert_eq!(be32(&o.data, 8), 0);
    assert_eq!(&o.data[12..16], &[0, 0x14, 0xaa, 0], "lead-out");
    assert_eq!(be32(&o.data, 16), BLOCKS as u32);
    // MSF: 00:02:00 for LBA 0; the lead-out at LBA 300 is 00:06:00.
    let o = cd.run(&toc(true, 0, 0, 0), 256);
    assert_eq!(&o.data[8..12], &[0, 0, 2, 0]);
    assert_eq!(&o.data[16..20], &[0, 0, 6, 0]);
    // From the lead-out only; a track past the last is invalid.
    let o = cd.run(&toc(false, 0, 0xaa, 0), 256);
    assert_eq!(be16(&o.data, 0), 10);
    assert_eq!(o.data[6], 0xaa);
    assert_eq!(invalid_field(&cd.run(&toc(false, 0, 2, 0), 256)), (6, None));
    // Session information, also asked the older way (CONTROL bits 7-6, as
    // Linux's sr does for the last session).
    for cdb in [toc(false, 1, 0, 0), toc(false, 0, 0, 0x40)] {
        let o = cd.run(&cdb, 12);
        good(&o);
        assert_eq!(be16(&o.data, 0), 10);
        assert_eq!(&o.data[2..8], &[1, 1, 0, 0x14, 1, 0]);
        assert_eq!(be32(&o.data, 8), 0);
    }
    // The full TOC: points A0h, A1h, A2h and track 1, in MSF.
    let o = cd.run(&toc(false, 2, 0, 0), 256);
    good(&o);
    assert_eq!(be16(&o.data, 0), 2 + 4 * 11);
    let points: Vec<u8> = o.data[4..].chunks(11).map(|d| d[3]).collect();
    assert_eq!(points, [0xa0, 0xa1, 0xa2, 0x01]);
    assert_eq!(&o.data[4 + 2 * 11 + 8..4 + 3 * 11], &[0, 6, 0]);
    // PMA, ATIP and CD-TEXT are for recordable and audio discs.
    for format in 3..16 {
        assert_eq!(
            invalid_field(&cd.run(&toc(false, format, 0, 0), 256)),
            (2, Some(3))
        );
    }
    // The allocation length cuts the answer.
    assert_eq!(cd.run(&toc(false, 0, 0, 0), 4).data.len(), 4);
}

#[test]
fn get_configuration_reports_the_cd_rom_profile_and_its_features() {
    let (_t, cd, _disk) = cd();
    let o = cd.run(&config(0, 0), 1024);
    good(&o);
    assert_eq!(be32(&o.data, 0) as usize, o.data.len() - 4);
    assert_eq!(be16(&o.data, 6), 0x0008, "current profile CD-ROM");
    assert_eq!(
        features(&o.data),
        [
            (0x0000, true),
            (0x0001, true),
            (0x0002, true),
            (0x0003, true),
            (0x0010, true),
            (0x001e, true),
            (0x001f, false)
        ]
    );
    // The profile list marks CD-ROM current, not DVD-ROM.
    assert_eq!(&o.data[12..20], &[0x00, 0x10, 0, 0, 0x00, 0x08, 1, 0]);
    // Random Readable: 2048-byte blocks.
    let o = cd.run(&config(2, 0x0010), 1024);
    assert_eq!(features(&o.data), [(0x0010, true)]);
    assert_eq!(be32(&o.data, 12), 2048);
    // RT 01b: the current features from 0003h on.
    let o = cd.run(&config(1, 3), 1024);
    assert_eq!(
        features(&o.data),
        [(0x0003, true), (0x0010, true), (0x001e, true)]
    );
    // An unknown feature named alone: the header only.
    assert_eq!(cd.run(&config(2, 0x0107), 1024).data.len(), 8);
    assert_eq!(invalid_field(&cd.run(&config(3, 0), 1024)), (1, Some(1)));

    // With the medium out: no current profile, no medium features, and the
    // command still runs (it is about the drive).
    good(&cd.run(&EJECT, 0));
    let o = cd.run(&config(1, 0), 1024);
    good(&o);
    assert_eq!(be16(&o.data, 6), 0);
    assert_eq!(
        features(&o.data),
        [
            (0x0000, true),
            (0x0001, true),
            (0x0002, true),
            (0x0003, true)
        ]
    );
}

#[test]
fn event_status_reports_each_media_event_once() {
    let (_t, cd, _disk) = cd();
    assert_eq!(
        invalid_field(&cd.run(&gesn(false, 0x10, 8), 8)),
        (1, Some(0))
    );
    // Only the media class is supported: asking for another gets NEA.
    let o = cd.run(&gesn(true, 0x02, 8), 8);
    good(&o);
    assert_eq!(o.data, [0, 2, 0x80, 0x10]);
    // Nothing happened yet: medium present, no event.
    let o = cd.run(&gesn(true, 0x10, 8), 8);
    assert_eq!(o.data, [0, 6, 0x04, 0x10, 0, 0x02, 0, 0]);
    good(&cd.run(&EJECT, 0));
    // A header-only read does not consume the event.
    assert_eq!(cd.run(&gesn(true, 0x10, 4), 4).data.len(), 4);
    let o = cd.run(&gesn(true, 0x10, 8), 8);
    assert_eq!(&o.data[4..6], &[3, 0x01], "media removal, tray open");
    let o = cd.run(&gesn(true, 0x10, 8), 8);
    assert_eq!(&o.data[4..6], &[0, 0x01], "reported once");
    let o = cd.run(&[0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8);
    good(&o);
    assert_eq!(o.data[1] & 0x10, 0x10, "MECHANISM STATUS: door open");
    sense(
        &cd.run(&toc(false, 0, 0, 0), 64),
        SenseKey::NOT_READY,
        Asc::MEDIUM_NOT_PRESENT,
    );
    good(&cd.run(&LOAD, 0));
    let o = cd.run(&gesn(true, 0x10, 8), 8);
    assert_eq!(&o.data[4..6], &[2, 0x02], "new media, present");
    let o = cd.run(&[0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8);
    assert_eq!(o.data, [0; 8]);
}

#[test]
fn disc_and_track_information_describe_a_complete_disc() {
    let (_t, cd, _disk) = cd();
    let o = cd.run(&[0x51, 0, 0, 0, 0, 0, 0, 0, 64, 0], 64);
    good(&o);
    assert_eq!(o.data.len(), 34);
    assert_eq!(be16(&o.data, 0), 32);
    assert_eq!(o.data[2] & 0x03, 0x02, "disc complete");
    assert_eq!((o.data[2] >> 2) & 0x03, 0x03, "last session complete");
    assert_eq!(&o.data[3..7], &[1, 1, 1, 1]);
    assert_eq!(
        invalid_field(&cd.run(&[0x51, 1, 0, 0, 0, 0, 0, 0, 64, 0], 64)),
        (1, Some(2))
    );
    let track = |ty: u8, addr: u32| {
        let a = addr.to_be_bytes();
        cd.run(&[0x52, ty, a[0], a[1], a[2], a[3], 0, 0, 64, 0], 64)
    };
    for (ty, addr) in [(0, 0), (0, BLOCKS as u32 - 1), (1, 1), (2, 1)] {
        let o = track(ty, addr);
        good(&o);
        assert_eq!(be16(&o.data, 0), 46);
        assert_eq!(&o.data[2..4], &[1, 1]);
        assert_eq!(o.data[5] & 0x0f, 4, "data track");
        assert_eq!(be32(&o.data, 8), 0, "start");
        assert_eq!(be32(&o.data, 24), BLOCKS as u32, "size");
    }
    sense(
        &track(0, BLOCKS as u32),
        SenseKey::ILLEGAL_REQUEST,
        Asc::LBA_OUT_OF_RANGE,
    );
    assert_eq!(invalid_field(&track(1, 2)), (2, None));
    assert_eq!(invalid_field(&track(3, 0)), (1, Some(1)));
    assert_eq!(invalid_field(&track(0x04 | 1, 1)), (1, Some(2)));
}

#[test]
fn mode_sense_has_the_capabilities_page_and_no_disk_pages() {
    let (_t, cd, _disk) = cd();
    let page = |cd: &Initiator, code: u8| cd.run(&[0x5a, 0x08, code, 0, 0, 0, 0, 0x01, 0, 0], 256);
    let o = page(&cd, 0x2a);
    good(&o);
    assert_eq!(o.data[3], 0, "no WP/DPOFUA: reserved for MMC");
    let p = &o.data[8..];
    assert_eq!(p[0], 0x2a);
    assert_eq!(usize::from(p[1]) + 2, p.len());
    assert_eq!(p[2] & 0x08, 0x08, "reads DVD-ROM");
    assert_eq!(p[3], 0, "writes nothing");
    assert_eq!(p[6], 0x29, "tray, eject, lock; unlocked");
    good(&cd.run(&[0x1e, 0, 0, 0, 1, 0], 0));
    assert_eq!(page(&cd, 0x2a).data[8 + 6], 0x2b, "locked");
    good(&cd.run(&[0x1e, 0, 0, 0, 0, 0], 0));
    let all = page(&cd, 0x3f);
    let mut codes = Vec::new();
    let mut at = 8;
    while at < all.data.len() {
        codes.push(all.data[at] & 0x3f);
        at += 2 + usize::from(all.data[at + 1]);
    }
    assert_eq!(codes, [0x01, 0x0a, 0x2a]);
    assert_eq!(invalid_field(&page(&cd, 0x08)), (2, Some(5)));
}

#[test]
fn report_supported_opcodes_lists_the_cdrom_rows() {
    let (_t, cd, _disk) = cd();
    let o = cd.run(&[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    good(&o);
    let listed: Vec<u8> = o.data[4..].chunks(8).map(|d| d[0]).collect();
    let rows: Vec<u8> = table::rows(DeviceType::Cdrom)
        .filter(|r| r.handler != table::Handler::SetTargetPortGroups)
        .map(|r| r.opcode)
        .collect();
    assert_eq!(listed, rows);
    for op in [0x43, 0x46, 0x4a, 0x51, 0x52, 0xbd, 0x28, 0xa8, 0x25] {
        assert!(listed.contains(&op), "{op:#x}");
    }
    for op in [0x2a, 0x08, 0x0a, 0x88, 0x48, 0x83] {
        assert!(!listed.contains(&op), "{op:#x}");
    }
    // One command: READ TOC with its usage data.
    let o = cd.run(&[0xa3, 0x0c, 1, 0x43, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    assert_eq!(o.data[1] & 7, 3);
    assert_eq!(&o.data[4..6], &[0x43, 0x02]);
}
