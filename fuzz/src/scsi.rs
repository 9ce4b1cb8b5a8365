//! SCSI targets: CDB decoding, and whole commands through the engine.

use std::sync::Arc;

use tgtkit_backstores::{RamBackstore, RamOptions};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::cdb::Cdb;
use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::engine::{LuConfig, RawCdb, Target, TargetConfig, TaskAttribute};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::table;
use tgtkit_scsi_core::test_utils::Initiator;

/// Decode arbitrary bytes as a CDB; whatever decodes must re-encode to a
/// CDB that decodes to the same value, and its first bytes must match.
pub fn cdb_decode(data: &[u8]) {
    for device in DeviceType::ALL {
        let Ok(cdb) = Cdb::decode_for(device, data) else {
            let _ = table::lookup_for(device, data);
            continue;
        };
        let raw = cdb.encode();
        assert_eq!(Cdb::decode_for(device, raw.as_bytes()), Ok(cdb));
        assert_eq!(raw.as_bytes()[0], data[0]);
    }
}

/// Run a sequence of commands against a small ram disk (LUN 0), a small
/// CD over another ram medium (LUN 1) and a 32 KiB tape (LUN 2). Input:
/// repeated
/// records of `[flags, cdb_len, cdb.., buf_len_hi, buf_len_lo, data..]`
/// where `data` is `buf_len` bytes of data-out (or a data-in buffer of that
/// size when the command reads). The engine must answer every command with
/// a consistent response.
pub fn scsi_command(mut data: &[u8]) {
    let target = Target::new(TargetConfig {
        max_transfer_blocks: 64,
        max_unmap_blocks: 64,
        ..TargetConfig::default()
    });
    let Ok(disk) = RamBackstore::new(64 * 512) else {
        return;
    };
    if target.add_lun(0, LuConfig::new(Arc::new(disk))).is_err() {
        return;
    }
    let Ok(disc) = RamOptions::new().logical_block_size(2048).build(32 * 2048) else {
        return;
    };
    let cd = LuConfig::new(Arc::new(disc)).device_type(DeviceType::Cdrom);
    if target.add_lun(1, cd).is_err() {
        return;
    }
    let Ok(cartridge) = RamBackstore::new(64 * 512) else {
        return;
    };
    let tape = LuConfig::new(Arc::new(cartridge)).device_type(DeviceType::Tape);
    if target.add_lun(2, tape).is_err() {
        return;
    }
    let init = Initiator::new(&target, "iqn.2026-11.fuzz:i");
    let mut commands = 0;
    while data.len() >= 2 && commands < 16 {
        commands += 1;
        let flags = data[0];
        let cdb_len = usize::from(data[1]).min(32);
        data = &data[2..];
        if data.len() < cdb_len + 2 {
            break;
        }
        let (cdb, rest) = data.split_at(cdb_len);
        let buf_len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(64 * 1024);
        data = &rest[2..];
        let take = buf_len.min(data.len());
        let mut bytes = data[..take].to_vec();
        bytes.resize(buf_len, 0);
        data = &data[take..];
        let Ok(raw) = RawCdb::new(cdb) else { continue };
        let lun = if flags & 0x80 != 0 {
            Lun::from_index(u16::from(flags & 3)).unwrap_or_default()
        } else {
            Lun::from_index(0).unwrap_or_default()
        };
        let attribute = match flags & 0x30 {
            0x10 => TaskAttribute::Ordered,
            0x20 => TaskAttribute::HeadOfQueue,
            _ => TaskAttribute::Simple,
        };
        let mut cmd = init.command(raw.as_bytes(), DataBuffer::from_vec(bytes), attribute);
        cmd.lun = lun;
        let response = futures::executor::block_on(target.execute(cmd));
        assert!(response.data_len <= buf_len);
        // Only a tape transfers data with CHECK CONDITION.
        if response.status != Status::GOOD && response.data_len > 0 {
            assert_eq!(lun, Lun::from_index(2).unwrap_or_default());
        }
        match response.status {
            Status::CHECK_CONDITION => {
                assert!(
                    response.sense_data().is_some(),
                    "CHECK CONDITION without sense"
                );
            }
            Status::GOOD => assert!(response.sense.is_none()),
            _ => {}
        }
    }
}

/// The NAA identifiers [`xcopy_params`] gives its two logical units: the
/// designators `30 00 00 00 00 00 00 01` and `...02` name them.
pub const XCOPY_NAA: [u64; 2] = [1, 2];

/// Send arbitrary bytes as an EXTENDED COPY (LID1) parameter list to a
/// target with two small ram disks (512- and 4096-byte blocks) named by
/// [`XCOPY_NAA`], then ask RECEIVE COPY RESULTS about its list identifier.
/// The copy manager must answer GOOD or CHECK CONDITION with sense, never
/// touch more than the disks hold, and keep well-formed copy results.
pub fn xcopy_params(data: &[u8]) {
    let target = Target::new(TargetConfig::default());
    for (lun, (size, bs)) in [(64 * 512, 512), (16 * 4096, 4096)].into_iter().enumerate() {
        let Ok(disk) = tgtkit_backstores::RamOptions::new()
            .logical_block_size(bs)
            .build(size)
        else {
            return;
        };
        let config = LuConfig::new(Arc::new(disk)).naa(XCOPY_NAA[lun]);
        if target
            .add_lun(u16::try_from(lun).unwrap_or(0), config)
            .is_err()
        {
            return;
        }
    }
    let init = Initiator::new(&target, "iqn.2026-11.fuzz:x");
    init.clear_unit_attentions();
    let params = &data[..data.len().min(4096)];
    let mut cdb = [0u8; 16];
    cdb[0] = 0x83;
    cdb[10..14].copy_from_slice(&u32::try_from(params.len()).unwrap_or(0).to_be_bytes());
    let o = init.send(&cdb, params);
    match o.status() {
        Status::GOOD => {}
        Status::CHECK_CONDITION => assert!(o.sense().is_some(), "CHECK CONDITION without sense"),
        other => panic!("EXTENDED COPY answered {other:?}"),
    }
    let list_id = params.first().copied().unwrap_or(0);
    for sa in [0u8, 3, 4] {
        let mut rcr = [0u8; 16];
        rcr[0] = 0x84;
        rcr[1] = sa;
        rcr[2] = list_id;
        rcr[13] = 0xff;
        let r = init.run(&rcr, 255);
        if r.status() == Status::GOOD {
            assert!(r.data.len() >= 4);
            let available = u32::from_be_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]);
            assert!(available as usize + 4 >= r.data.len());
        } else {
            assert_eq!(r.status(), Status::CHECK_CONDITION);
        }
    }
}
