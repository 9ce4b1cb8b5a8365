//! iSCSI PDU stream fuzz target: framing, digests, typed headers, AHS and
//! the text codec.

use tgtkit_iscsi::pdu::{self, Bhs, Digests, PduDecoder};
use tgtkit_iscsi::text;

/// Decode `data` as a PDU stream. The first byte picks the digests and the
/// data segment cap; every frame that decodes is parsed, re-encoded and
/// decoded again, and must come back identical.
pub fn iscsi_pdu(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let digests = Digests {
        header: mode & 1 != 0,
        data: mode & 2 != 0,
    };
    let cap = 512u32 << (mode >> 4 & 7);
    let mut dec = PduDecoder::new(cap);
    dec.set_digests(digests);
    // Feed in uneven pieces to exercise partial frames.
    let mut frames = Vec::new();
    for piece in stream.chunks(usize::from(mode >> 2 & 3) * 13 + 1) {
        dec.extend(piece);
        loop {
            match dec.decode() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) if e.is_fatal() => return check(frames, digests, cap),
                Err(_) => {}
            }
        }
    }
    check(frames, digests, cap);
}

fn check(frames: Vec<pdu::Frame>, digests: Digests, cap: u32) {
    for f in frames {
        let _ = text::parse(&f.data);
        let Ok(bhs) = Bhs::parse(&f.header) else {
            continue;
        };
        if let Bhs::ScsiCommand(c) = &bhs {
            let mut cdb = [0u8; 260];
            let _ = pdu::scsi_command_cdb(c, &f.ahs, &mut cdb);
            let _ = pdu::bidi_read_edtl(&f.ahs);
        }
        let mut out = Vec::new();
        pdu::encode_pdu(&bhs.emit(), &f.ahs, &f.data, digests, &mut out)
            .expect("a decoded frame re-encodes");
        let mut again = PduDecoder::new(cap);
        again.set_digests(digests);
        again.extend(&out);
        let g = again
            .decode()
            .expect("re-encoded frame decodes")
            .expect("whole frame");
        assert_eq!(Bhs::parse(&g.header).ok(), Some(bhs));
        assert_eq!(g.ahs, f.ahs);
        assert_eq!(g.data, f.data);
    }
}

/// Seed inputs: real-looking PDU streams a libiscsi initiator sends.
#[must_use]
pub fn iscsi_pdu_seeds() -> Vec<(String, Vec<u8>)> {
    use pdu::*;
    let mut seeds = Vec::new();
    let login_text = text::encode(&[
        (
            "InitiatorName",
            "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
        ),
        ("TargetName", "iqn.2026-11.dev.tgtkit:disk0"),
        ("SessionType", "Normal"),
        ("AuthMethod", "CHAP,None"),
        ("HeaderDigest", "CRC32C,None"),
        ("DataDigest", "CRC32C,None"),
    ]);
    let login = Bhs::LoginRequest(LoginRequest {
        transit: true,
        cont: false,
        csg: Stage::Security,
        nsg: Stage::Operational,
        version_max: 0,
        version_min: 0,
        isid: [0x80, 0x12, 0x34, 0x56, 0, 1],
        tsih: 0,
        itt: 0,
        cid: 0,
        cmd_sn: 0,
        exp_stat_sn: 0,
    });
    let mut cdb_read = [0u8; 16];
    cdb_read[..10].copy_from_slice(&[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0]);
    let mut cdb_write = [0u8; 16];
    cdb_write[..10].copy_from_slice(&[0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0]);
    let read = Bhs::ScsiCommand(ScsiCommand {
        final_: true,
        read: true,
        attr: 1,
        itt: 1,
        edtl: 4096,
        cmd_sn: 1,
        cdb: cdb_read,
        ..ScsiCommand::default()
    });
    let write = Bhs::ScsiCommand(ScsiCommand {
        final_: false,
        write: true,
        attr: 1,
        itt: 2,
        edtl: 512,
        cmd_sn: 2,
        cdb: cdb_write,
        ..ScsiCommand::default()
    });
    let data_out = Bhs::DataOut(DataOut {
        final_: true,
        itt: 2,
        ttt: RESERVED_TAG,
        buffer_offset: 256,
        ..DataOut::default()
    });
    let nop = Bhs::NopOut(NopOut {
        immediate: true,
        itt: 3,
        ttt: RESERVED_TAG,
        cmd_sn: 3,
        ..NopOut::default()
    });
    let tmf = Bhs::TaskMgmtRequest(TaskMgmtRequest {
        immediate: true,
        function: TmfCode::ABORT_TASK,
        itt: 4,
        rtt: 2,
        cmd_sn: 3,
        ..TaskMgmtRequest::default()
    });
    let text_req = Bhs::TextRequest(TextRequest {
        final_: true,
        itt: 5,
        ttt: RESERVED_TAG,
        cmd_sn: 3,
        ..TextRequest::default()
    });
    let logout = Bhs::LogoutRequest(LogoutRequest {
        immediate: true,
        itt: 6,
        cmd_sn: 3,
        ..LogoutRequest::default()
    });
    let mut ext_ahs = vec![0, 17, 1, 0];
    ext_ahs.extend(0u8..16);
    let long_cdb = Bhs::ScsiCommand(ScsiCommand {
        final_: true,
        itt: 7,
        cdb: [0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0x09, 0, 0, 0, 0, 0, 0, 0],
        ..ScsiCommand::default()
    });
    let items: Vec<(&str, Bhs, Vec<u8>, Vec<u8>)> = vec![
        ("login", login, vec![], login_text),
        ("read10", read, vec![], vec![]),
        ("write10_immediate", write, vec![], vec![0x5a; 256]),
        ("data_out", data_out, vec![], vec![0xa5; 256]),
        ("nop_out", nop, vec![], b"ping".to_vec()),
        ("abort_task", tmf, vec![], vec![]),
        (
            "send_targets",
            text_req,
            vec![],
            b"SendTargets=All\0".to_vec(),
        ),
        ("logout", logout, vec![], vec![]),
        ("extended_cdb", long_cdb, ext_ahs, vec![]),
    ];
    for mode in [0u8, 1, 2, 3, 0x13, 0x27] {
        let digests = Digests {
            header: mode & 1 != 0,
            data: mode & 2 != 0,
        };
        let mut stream = vec![mode];
        for (name, bhs, ahs, data) in &items {
            let mut one = vec![mode];
            encode_pdu(&bhs.emit(), ahs, data, digests, &mut one).expect("seed encodes");
            stream.extend_from_slice(&one[1..]);
            seeds.push((format!("{name}-m{mode:02x}"), one));
        }
        seeds.push((format!("session-m{mode:02x}"), stream));
    }
    seeds
}

#[cfg(test)]
mod tests {
    /// Regenerate the seed corpus: `cargo test -p tgtkit-fuzz write_iscsi_corpus -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/corpus/iscsi_pdu"]
    fn write_iscsi_corpus() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/iscsi_pdu");
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in super::iscsi_pdu_seeds() {
            std::fs::write(format!("{dir}/{name}"), bytes).unwrap();
        }
    }

    #[test]
    fn accepts_every_seed() {
        for (_, bytes) in super::iscsi_pdu_seeds() {
            super::iscsi_pdu(&bytes);
        }
    }
}
