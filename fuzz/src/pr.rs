//! Persistent reservation targets: TransportID parsing, and PERSISTENT
//! RESERVE OUT parameter lists through the engine from three nexuses.

use std::sync::Arc;

use tgtkit_backstores::RamBackstore;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig};
use tgtkit_scsi_core::pr::TransportId;
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::Initiator;

/// Parse arbitrary bytes as a TransportID; whatever parses must encode to
/// a TransportID that parses back to the same value, within the bytes it
/// claimed.
pub fn transport_id(data: &[u8]) {
    let Ok((id, len)) = TransportId::parse(data) else {
        return;
    };
    assert!(len <= data.len());
    let bytes = id.encode();
    let (again, used) = TransportId::parse(&bytes).expect("own encoding parses");
    assert_eq!(again, id);
    assert_eq!(used, bytes.len());
}

/// Records of `[who, service action, type, len_hi, len_lo, params..]` sent
/// as PERSISTENT RESERVE OUT from nexus `who % 3`, each followed by every
/// PERSISTENT RESERVE IN service action and a WRITE. Every response must be
/// one a device server may give, and READ KEYS must stay well formed.
pub fn pr_out(mut data: &[u8]) {
    let target = Target::new(TargetConfig::default());
    let Ok(disk) = RamBackstore::new(64 * 512) else {
        return;
    };
    if target.add_lun(0, LuConfig::new(Arc::new(disk))).is_err() {
        return;
    }
    let inits: Vec<Initiator> = (0..3)
        .map(|i| {
            let init = Initiator::new(&target, &format!("iqn.2026-11.fuzz:n{i}"));
            init.clear_unit_attentions();
            init
        })
        .collect();
    let mut records = 0;
    while data.len() >= 5 && records < 16 {
        records += 1;
        let who = &inits[usize::from(data[0]) % 3];
        let (sa, ty) = (data[1], data[2]);
        let len = usize::from(u16::from_be_bytes([data[3], data[4]])).min(8192);
        data = &data[5..];
        let take = len.min(data.len());
        let mut params = data[..take].to_vec();
        params.resize(len, 0);
        data = &data[take..];
        let mut cdb = [0x5f, sa & 0x1f, ty, 0, 0, 0, 0, 0, 0, 0];
        cdb[5..9].copy_from_slice(&u32::try_from(len).unwrap_or(0).to_be_bytes());
        let o = who.send(&cdb, &params);
        assert!(matches!(
            o.status(),
            Status::GOOD | Status::CHECK_CONDITION | Status::RESERVATION_CONFLICT
        ));
        who.clear_unit_attentions();
        for sa in 0..4u8 {
            let o = who.run(&[0x5e, sa, 0, 0, 0, 0, 0, 0x10, 0, 0], 4096);
            assert_eq!(o.status(), Status::GOOD);
            assert!(o.data.len() >= 8);
            if sa == 0 {
                let n = u32::from_be_bytes([o.data[4], o.data[5], o.data[6], o.data[7]]);
                assert_eq!(n % 8, 0);
                assert_eq!(o.data.len(), 8 + n as usize);
            }
        }
        let w = who.send(&[0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0], &[0; 512]);
        assert!(matches!(
            w.status(),
            Status::GOOD | Status::RESERVATION_CONFLICT | Status::CHECK_CONDITION
        ));
    }
}
