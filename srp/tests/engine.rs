//! SRP IUs end to end: session → engine → ram backstore, data through
//! `LocalMemory` (direct and indirect descriptors, a partial list), the
//! command mix a conformance run starts with: INQUIRY, READ/WRITE,
//! persistent reservations, task management.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use futures::executor::block_on;
use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, Target, TargetConfig};
use tgtkit_scsi_core::test_utils::MemBackstore;
use tgtkit_srp::cmd::{Command, TaskAttr};
use tgtkit_srp::desc::{DataDesc, DirectBuf};
use tgtkit_srp::engine::{EngineTarget, LocalMemory};
use tgtkit_srp::iu::Iu;
use tgtkit_srp::login::LOGIN_REQ_LEN;
use tgtkit_srp::rsp::{Residual, Response};
use tgtkit_srp::session::{Event, ExistingChannels, Session, SessionConfig};
use tgtkit_srp::tsk_mgmt::{TaskFunction, TskMgmt};
use zerocopy::IntoBytes;

const K: u32 = LocalMemory::KEY;

struct Rig {
    session: Session,
    engine: EngineTarget<LocalMemory>,
    tag: u8,
}

fn rig() -> Rig {
    let target = Target::new(TargetConfig::default());
    target
        .add_lun(0, LuConfig::new(Arc::new(MemBackstore::new(2048, 512))))
        .unwrap();
    let nexus = target.add_nexus(NexusInfo {
        initiator_port: "srp-initiator-0".into(),
        target_port: "srp-target-0".into(),
        relative_port: 1,
        transport_id: Vec::new(),
    });
    let mut r = Rig {
        session: Session::new(SessionConfig::default()),
        engine: EngineTarget::new(target, nexus, LocalMemory::new(1 << 20)),
        tag: 0,
    };
    let mut login = vec![0u8; LOGIN_REQ_LEN];
    login[16..20].copy_from_slice(&1024u32.to_be_bytes());
    login[24..26].copy_from_slice(&6u16.to_be_bytes());
    let events = block_on(r.engine.handle(&mut r.session, &login)).unwrap();
    assert!(matches!(events[..], [Event::Login { .. }]));
    r.session.accept_login(ExistingChannels::None).unwrap();
    assert!(matches!(
        Iu::decode(&r.session.poll_transmit().unwrap(), 4096).unwrap(),
        Iu::LoginRsp(_)
    ));
    // The power-on unit attention.
    r.cmd(&[0; 6], DataDesc::None, DataDesc::None);
    r
}

impl Rig {
    fn cmd(&mut self, cdb: &[u8], data_out: DataDesc, data_in: DataDesc) -> Response {
        self.tag += 1;
        let mut c = cdb.to_vec();
        c.resize(16, 0);
        let iu = Command {
            sol_not: 0,
            tag: [self.tag; 8],
            lun: [0; 8],
            task_attr: TaskAttr::Simple,
            cdb: c,
            data_out,
            data_in,
        }
        .encode();
        let events = block_on(self.engine.handle(&mut self.session, &iu)).unwrap();
        assert!(events.is_empty());
        match Iu::decode(&self.session.poll_transmit().unwrap(), 4096).unwrap() {
            Iu::Rsp(r) => {
                assert_eq!(r.tag, [self.tag; 8]);
                assert_eq!(r.req_lim_delta, 1);
                r
            }
            other => panic!("{other:?}"),
        }
    }

    fn mem(&self) -> &LocalMemory {
        self.engine.resolver()
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn inquiry_through_a_direct_descriptor() {
    let mut r = rig();
    let rsp = r.cmd(
        &[0x12, 0, 0, 0, 96, 0],
        DataDesc::None,
        DataDesc::Direct(DirectBuf::new(4096, K, 96)),
    );
    assert_eq!(rsp.status, 0);
    assert_eq!(&r.mem().read(4096 + 8, 6), b"TGTKIT");
    assert!(matches!(rsp.data_in, Residual::Under(_)));
}

#[test]
fn write_indirect_with_a_partial_list_then_read_direct() {
    let mut r = rig();
    let data = pattern(4096, 9);
    // Three regions of 1 KiB, 2 KiB and 1 KiB; the table lives at 64 KiB,
    // the IU lists only its first two entries.
    let regions = [
        DirectBuf::new(100_000, K, 1024),
        DirectBuf::new(200_000, K, 2048),
        DirectBuf::new(300_000, K, 1024),
    ];
    let mut table = Vec::new();
    for d in &regions {
        table.extend_from_slice(d.as_bytes());
    }
    r.mem().write(65536, &table);
    r.mem().write(100_000, &data[..1024]);
    r.mem().write(200_000, &data[1024..3072]);
    r.mem().write(300_000, &data[3072..]);
    let rsp = r.cmd(
        &[0x2a, 0, 0, 0, 0, 16, 0, 0, 8, 0],
        DataDesc::Indirect {
            table: DirectBuf::new(65536, K, 48),
            total_len: 4096,
            list: regions[..2].to_vec(),
        },
        DataDesc::None,
    );
    assert_eq!((rsp.status, rsp.sense), (0, None));
    let rsp = r.cmd(
        &[0x28, 0, 0, 0, 0, 16, 0, 0, 8, 0],
        DataDesc::None,
        DataDesc::Direct(DirectBuf::new(500_000, K, 4096)),
    );
    assert_eq!(rsp.status, 0);
    assert_eq!(r.mem().read(500_000, 4096), data);
}

#[test]
fn persistent_reservations_and_task_management() {
    let mut r = rig();
    // PERSISTENT RESERVE OUT, REGISTER key 0xabc.
    let mut params = vec![0u8; 24];
    params[8..16].copy_from_slice(&0xabcu64.to_be_bytes());
    r.mem().write(8192, &params);
    let rsp = r.cmd(
        &[0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0],
        DataDesc::Direct(DirectBuf::new(8192, K, 24)),
        DataDesc::None,
    );
    assert_eq!((rsp.status, rsp.sense), (0, None));
    // PERSISTENT RESERVE IN, READ KEYS.
    let rsp = r.cmd(
        &[0x5e, 0x00, 0, 0, 0, 0, 0, 0, 64, 0],
        DataDesc::None,
        DataDesc::Direct(DirectBuf::new(12288, K, 64)),
    );
    assert_eq!(rsp.status, 0);
    let keys = r.mem().read(12288, 16);
    assert_eq!(&keys[4..8], &8u32.to_be_bytes());
    assert_eq!(&keys[8..16], &0xabcu64.to_be_bytes());
    // ABORT TASK of a task that is not there completes; a LUN reset too.
    for (tag, f) in [
        ([70; 8], TaskFunction::ABORT_TASK),
        ([71; 8], TaskFunction::LUN_RESET),
    ] {
        let t = TskMgmt::new(tag, [0; 8], f, [99; 8]);
        block_on(r.engine.handle(&mut r.session, t.as_bytes())).unwrap();
        match Iu::decode(&r.session.poll_transmit().unwrap(), 4096).unwrap() {
            Iu::Rsp(rsp) => {
                assert_eq!(rsp.tag, tag);
                assert_eq!(rsp.response_data.as_deref(), Some(&[0u8, 0, 0, 0][..]));
            }
            other => panic!("{other:?}"),
        }
    }
    // An unknown function is answered "not supported".
    let t = TskMgmt::new([72; 8], [0; 8], TaskFunction(0x80), [0; 8]);
    block_on(r.engine.handle(&mut r.session, t.as_bytes())).unwrap();
    match Iu::decode(&r.session.poll_transmit().unwrap(), 4096).unwrap() {
        Iu::Rsp(rsp) => assert_eq!(rsp.response_data.as_deref(), Some(&[0u8, 0, 0, 4][..])),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.session.credits(), SessionConfig::default().credits);
}

#[test]
fn refuses_bad_descriptors_with_check_condition() {
    let mut r = rig();
    // A key the memory does not know.
    let rsp = r.cmd(
        &[0x12, 0, 0, 0, 36, 0],
        DataDesc::None,
        DataDesc::Direct(DirectBuf::new(0, 0x1234, 36)),
    );
    assert_eq!(rsp.status, 2);
    assert_eq!(rsp.sense.unwrap()[2] & 0xf, 0x0b); // ABORTED COMMAND
                                                   // A region past the end.
    let rsp = r.cmd(
        &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        DataDesc::None,
        DataDesc::Direct(DirectBuf::new((1 << 20) - 100, K, 512)),
    );
    assert_eq!(rsp.status, 2);
    // Both directions at once.
    let rsp = r.cmd(
        &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        DataDesc::Direct(DirectBuf::new(0, K, 512)),
        DataDesc::Direct(DirectBuf::new(512, K, 512)),
    );
    assert_eq!((rsp.status, rsp.sense.unwrap()[2] & 0xf), (2, 5));
    // Immediate data is not offered.
    let rsp = r.cmd(
        &[0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        DataDesc::Immediate { len: 512 },
        DataDesc::None,
    );
    assert_eq!(rsp.status, 2);
    assert_eq!(r.session.in_flight(), 0);
}
