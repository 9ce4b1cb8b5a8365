//! Every IU survives encode → decode unchanged, and arbitrary bytes never
//! panic the decoder.

use proptest::prelude::*;
use tgtkit_srp::aer::AerRequest;
use tgtkit_srp::cmd::{Command, TaskAttr};
use tgtkit_srp::desc::{DataDesc, DirectBuf};
use tgtkit_srp::iu::Iu;
use tgtkit_srp::rsp::{Residual, Response};

fn direct() -> impl Strategy<Value = DirectBuf> {
    (any::<u64>(), any::<u32>(), any::<u32>())
        .prop_map(|(va, key, len)| DirectBuf::new(va, key, len))
}

fn desc() -> impl Strategy<Value = DataDesc> {
    prop_oneof![
        Just(DataDesc::None),
        direct().prop_map(DataDesc::Direct),
        (
            direct(),
            any::<u32>(),
            proptest::collection::vec(direct(), 0..20),
            0u32..8
        )
            .prop_map(|(table, total_len, list, extra)| {
                // The table holds at least the listed descriptors.
                let entries = u32::try_from(list.len()).unwrap() + extra;
                DataDesc::Indirect {
                    table: DirectBuf::new(table.va.get(), table.key.get(), entries * 16),
                    total_len,
                    list,
                }
            }),
        any::<u32>().prop_map(|len| DataDesc::Immediate { len }),
    ]
}

fn residual() -> impl Strategy<Value = Residual> {
    prop_oneof![
        Just(Residual::None),
        any::<u32>().prop_map(Residual::Over),
        any::<u32>().prop_map(Residual::Under),
    ]
}

proptest! {
    #[test]
    fn commands_round_trip(
        sol_not in any::<u8>(),
        tag in any::<[u8; 8]>(),
        lun in any::<[u8; 8]>(),
        attr in 0u8..8,
        cdb in any::<[u8; 16]>(),
        add in proptest::collection::vec(any::<u8>(), 0..64),
        data_out in desc(),
        data_in in desc(),
    ) {
        let mut cdb = cdb.to_vec();
        cdb.extend_from_slice(&add[..add.len() / 4 * 4]);
        let c = Command { sol_not, tag, lun, task_attr: TaskAttr::from_code(attr), cdb, data_out, data_in };
        let iu = c.encode();
        prop_assert_eq!(Iu::decode(&iu, iu.len()).unwrap(), Iu::Cmd(c));
    }

    #[test]
    fn responses_round_trip(
        tag in any::<[u8; 8]>(),
        delta in any::<u32>(),
        status in any::<u8>(),
        data_out in residual(),
        data_in in residual(),
        response_data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        sense in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..96)),
    ) {
        let r = Response { sol_not: 0, req_lim_delta: delta, tag, status, data_out, data_in, response_data, sense };
        let iu = r.encode();
        prop_assert_eq!(Iu::decode(&iu, 4096).unwrap(), Iu::Rsp(r));
    }

    #[test]
    fn event_reports_round_trip(
        tag in any::<[u8; 8]>(),
        lun in any::<[u8; 8]>(),
        delta in any::<u32>(),
        sense in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let a = AerRequest { req_lim_delta: delta, tag, lun, sense };
        let iu = a.encode();
        prop_assert_eq!(Iu::decode(&iu, 4096).unwrap(), Iu::AerReq(a));
    }

    /// Whatever decodes re-encodes to an IU that decodes the same; the
    /// fixed-layout IUs re-encode to their exact bytes.
    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(
        op in prop::sample::select(vec![0x00u8, 0x01, 0x02, 0x03, 0x41, 0x42, 0x80, 0x81, 0x82, 0xc0, 0xc1, 0xc2, 0x55]),
        mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        if let Some(b) = bytes.first_mut() {
            *b = op;
        }
        if let Ok(iu) = Iu::decode(&bytes, 4096) {
            let again = iu.encode();
            prop_assert_eq!(Iu::decode(&again, 4096).unwrap(), iu.clone());
            if !matches!(iu, Iu::Cmd(_) | Iu::Rsp(_) | Iu::AerReq(_)) {
                prop_assert_eq!(&again[..], &bytes[..again.len()]);
            }
        }
    }
}

#[test]
fn refuses_ius_past_the_negotiated_length() {
    let iu = Response::scsi([0; 8], 1, 0, None).encode();
    assert!(Iu::decode(&iu, 35).is_err());
    assert!(Iu::decode(&iu, 36).is_ok());
    assert!(Iu::decode(&[], 36).is_err());
}

/// The fuzz seeds (fuzz/corpus/srp_iu) are what their names say: the
/// well-formed ones decode, the malformed ones are refused.
#[test]
fn fuzz_seeds_decode_as_named() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/srp_iu");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let bad = ["bad_", "empty", "_short", "_past_", "_huge"]
            .iter()
            .any(|m| name.contains(m));
        let r = Iu::decode(&bytes, 4096);
        assert_eq!(r.is_err(), bad, "{name}: {r:?}");
        n += 1;
    }
    assert!(n >= 15);
}
