//! An in-memory initiator against `IscsiServer`: login, reads and writes
//! (immediate, unsolicited and R2T'd data), NOP, TMF, Text, Logout, CmdSN
//! windowing, Reject, session reinstatement and LUN masking.
#![allow(clippy::too_many_arguments)]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::executor::block_on;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::FutureExt;
use tgtkit_iscsi::chap::ChapCredentials;
use tgtkit_iscsi::pdu::*;
use tgtkit_iscsi::{text, Acl, AuthConfig, IscsiServer, PortalConfig, PortalGroup, TargetNode};
use tgtkit_scsi_core::backstore::Backstore;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig};
use tgtkit_scsi_core::test_utils::MemBackstore;

// ---- an in-memory duplex byte stream ----

#[derive(Default)]
struct PipeState {
    buf: VecDeque<u8>,
    waker: Option<Waker>,
    closed: bool,
}

#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<PipeState>>);

struct End {
    rx: Pipe,
    tx: Pipe,
}

fn duplex() -> (End, End) {
    let (a, b) = (Pipe::default(), Pipe::default());
    (
        End {
            rx: a.clone(),
            tx: b.clone(),
        },
        End { rx: b, tx: a },
    )
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.rx.0.lock().unwrap();
        if s.buf.is_empty() {
            if s.closed {
                return Poll::Ready(Ok(0));
            }
            s.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = out.len().min(s.buf.len());
        for (o, b) in out.iter_mut().zip(s.buf.drain(..n)) {
            *o = b;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for End {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.tx.0.lock().unwrap();
        if s.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        s.buf.extend(data);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.tx.0.lock().unwrap();
        s.closed = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for End {
    fn drop(&mut self) {
        for p in [&self.tx, &self.rx] {
            let mut s = p.0.lock().unwrap();
            s.closed = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }
}

// ---- a minimal initiator ----

const IQN: &str = "iqn.2026-11.dev.tgtkit:test";
const INI: &str = "iqn.2000-01.com.example:ini";

struct Ini {
    io: End,
    dec: PduDecoder,
    cmd_sn: u32,
    isid: [u8; 6],
    max_cmd_sn: u32,
}

impl Ini {
    fn new(io: End) -> Self {
        Self {
            io,
            dec: PduDecoder::new(1 << 20),
            cmd_sn: 1,
            isid: [0x80, 0, 0, 0, 0, 1],
            max_cmd_sn: 0,
        }
    }

    async fn send(&mut self, bhs: Bhs, data: &[u8]) {
        let mut out = Vec::new();
        encode_pdu(&bhs.emit(), &[], data, Digests::default(), &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next PDU, or `None` at end of stream.
    async fn recv(&mut self) -> Option<(Bhs, Vec<u8>)> {
        loop {
            if let Some(f) = self.dec.decode().unwrap() {
                let bhs = Bhs::parse(&f.header).unwrap();
                let mut b = bhs;
                if let Some(s) = b.seq_mut() {
                    self.max_cmd_sn = s.max_cmd_sn;
                }
                return Some((bhs, f.data));
            }
            let mut tmp = [0u8; 4096];
            let n = self.io.read(&mut tmp).await.unwrap();
            if n == 0 {
                return None;
            }
            self.dec.extend(&tmp[..n]);
        }
    }

    async fn login(&mut self, keys: &[(&str, &str)]) -> LoginResponse {
        let mut all: Vec<(&str, &str)> = vec![("InitiatorName", INI), ("TargetName", IQN)];
        all.extend_from_slice(keys);
        let req = Bhs::LoginRequest(LoginRequest {
            transit: true,
            cont: false,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
            version_max: 0,
            version_min: 0,
            isid: self.isid,
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: 0,
        });
        self.send(req, &text::encode(&all)).await;
        let (Bhs::LoginResponse(r), _) = self.recv().await.unwrap() else {
            panic!("no login response")
        };
        r
    }

    fn next_sn(&mut self) -> u32 {
        let s = self.cmd_sn;
        self.cmd_sn += 1;
        s
    }

    async fn command(
        &mut self,
        itt: u32,
        cdb: &[u8],
        read: bool,
        write: bool,
        edtl: u32,
        imm: &[u8],
        final_: bool,
    ) {
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        let cmd_sn = self.next_sn();
        self.send(
            Bhs::ScsiCommand(ScsiCommand {
                immediate: false,
                final_,
                read,
                write,
                attr: 1,
                lun: 0,
                itt,
                edtl,
                cmd_sn,
                exp_stat_sn: 0,
                cdb: c,
            }),
            imm,
        )
        .await;
    }

    /// Collect Data-In until the status arrives: (status, data, residual).
    async fn status(&mut self, itt: u32) -> (u8, Vec<u8>, ResidualKind, u32, Vec<u8>) {
        let mut data = Vec::new();
        loop {
            match self.recv().await.expect("stream ended") {
                (Bhs::DataIn(d), payload) if d.itt == itt => {
                    assert_eq!(d.buffer_offset as usize, data.len(), "Data-In in order");
                    data.extend_from_slice(&payload);
                    if let Some(s) = d.status {
                        return (s, data, d.residual_kind, d.residual, Vec::new());
                    }
                }
                (Bhs::ScsiResponse(r), sense) if r.itt == itt => {
                    return (r.status, data, r.residual_kind, r.residual, sense);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// A sleeper whose timers fire only when the test says so.
#[derive(Clone, Default)]
struct ManualClock(Arc<Mutex<Vec<futures::channel::oneshot::Sender<()>>>>);

impl ManualClock {
    /// Fire every pending timer.
    fn tick(&self) {
        let v: Vec<_> = self.0.lock().unwrap().drain(..).collect();
        for t in v {
            let _ = t.send(());
        }
    }
}

impl tgtkit_iscsi::Sleeper for ManualClock {
    fn sleep(
        &self,
        _: std::time::Duration,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (tx, rx) = futures::channel::oneshot::channel();
        self.0.lock().unwrap().push(tx);
        Box::pin(rx.map(|_| ()))
    }
}

fn server(
    nodes: Vec<TargetNode>,
    limits: impl FnOnce(&mut PortalGroup),
) -> (Arc<IscsiServer>, Arc<MemBackstore>) {
    server_with(nodes, limits, None)
}

fn server_with(
    nodes: Vec<TargetNode>,
    limits: impl FnOnce(&mut PortalGroup),
    clock: Option<ManualClock>,
) -> (Arc<IscsiServer>, Arc<MemBackstore>) {
    let disk = Arc::new(MemBackstore::new(2048, 512));
    let mut targets = Vec::new();
    for n in &nodes {
        let t = Target::new(TargetConfig {
            name: n.name.clone(),
            ..TargetConfig::default()
        });
        t.add_lun(0, LuConfig::new(disk.clone())).unwrap();
        t.add_lun(1, LuConfig::new(Arc::new(MemBackstore::new(64, 512))))
            .unwrap();
        targets.push(t);
    }
    let mut group = PortalGroup {
        addresses: vec!["127.0.0.1:3260".into()],
        ..PortalGroup::default()
    };
    limits(&mut group);
    let sleeper = clock.map(|c| Arc::new(c) as Arc<dyn tgtkit_iscsi::Sleeper>);
    // A second portal group elsewhere, for SendTargets to report.
    let other_portals = vec![tgtkit_iscsi::Portal {
        tpgt: 2,
        address: "[::1]:3261".into(),
    }];
    let config = PortalConfig {
        group,
        nodes,
        other_portals,
    };
    let s = IscsiServer::new(config, targets, sleeper).unwrap();
    (s, disk)
}

/// The pairs of a SendTargets answer, where TargetName and TargetAddress
/// repeat (RFC 7143 appendix C), so `text::parse` (which refuses repeated
/// negotiation keys) does not apply.
fn send_targets_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let p = String::from_utf8(p.to_vec()).unwrap();
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Run `client` against a fresh connection of `srv`.
fn with_conn<F, Fut>(srv: &Arc<IscsiServer>, client: F)
where
    F: FnOnce(Ini) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (a, b) = duplex();
    let srv = Arc::clone(srv);
    let serve = async move {
        let _ = srv.serve_connection(a).await;
    };
    block_on(futures::future::join(
        serve,
        client(Ini::new(b)).map(|()| ()),
    ));
}

const READ10_1: [u8; 10] = [0x28, 0, 0, 0, 0, 4, 0, 0, 1, 0];

fn write10(lba: u8, blocks: u8) -> [u8; 10] {
    [0x2a, 0, 0, 0, 0, lba, 0, 0, blocks, 0]
}

async fn clear_ua(ini: &mut Ini) {
    // The first command on a new nexus reports POWER ON (SAM-5 §5.14).
    ini.command(99, &[0; 6], false, false, 0, &[], true).await;
    let (s, ..) = ini.status(99).await;
    assert_eq!(s, 2);
}

#[test]
fn accepts_login_inquiry_and_read_with_status_in_data_in() {
    let (srv, disk) = server(vec![TargetNode::new(IQN)], |_| {});
    block_on(disk.write(
        2048,
        tgtkit_scsi_core::buffer::DataBuffer::from_vec(vec![0xab; 512]),
        Default::default(),
    ))
    .unwrap();
    with_conn(&srv, |mut ini| async move {
        let r = ini.login(&[("MaxRecvDataSegmentLength", "512")]).await;
        assert_eq!(r.status_class, 0);
        assert!(r.transit && r.nsg == Stage::FullFeature);
        assert_ne!(r.tsih, 0);
        clear_ua(&mut ini).await;
        ini.command(1, &[0x12, 0, 0, 0, 96, 0], true, false, 96, &[], true)
            .await;
        let (s, data, ..) = ini.status(1).await;
        assert_eq!(s, 0);
        assert_eq!(&data[8..14], b"TGTKIT");
        // A 4-block read comes in 512-byte Data-In PDUs (the initiator's limit).
        ini.command(
            2,
            &[0x28, 0, 0, 0, 0, 4, 0, 0, 4, 0],
            true,
            false,
            2048,
            &[],
            true,
        )
        .await;
        let (s, data, kind, ..) = ini.status(2).await;
        assert_eq!((s, kind), (0, ResidualKind::None));
        assert_eq!(data.len(), 2048);
        assert!(data[..512].iter().all(|&b| b == 0xab));
    });
}

#[test]
fn accepts_underflow_residual_on_short_read() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |_| {});
    with_conn(&srv, |mut ini| async move {
        ini.login(&[]).await;
        clear_ua(&mut ini).await;
        // RFC 7143 §11.4.5: EDTL larger than the CDB wants: U bit, residual.
        ini.command(3, &READ10_1, true, false, 1024, &[], true)
            .await;
        let (s, data, kind, residual, _) = ini.status(3).await;
        assert_eq!(
            (s, data.len(), kind, residual),
            (0, 512, ResidualKind::Underflow, 512)
        );
    });
}

#[test]
fn accepts_writes_with_immediate_unsolicited_and_r2t_data() {
    let (srv, disk) = server(vec![TargetNode::new(IQN)], |g| {
        g.limits.first_burst_length = 1024;
        g.limits.max_burst_length = 1024;
    });
    let disk2 = Arc::clone(&disk);
    with_conn(&srv, |mut ini| async move {
        ini.login(&[
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "1024"),
            ("FirstBurstLength", "1024"),
        ])
        .await;
        clear_ua(&mut ini).await;
        // 8 blocks = 4096 bytes: 512 immediate, 512 unsolicited Data-Out,
        // then R2Ts of MaxBurstLength for the remaining 3072.
        let payload: Vec<u8> = (0..4096u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        ini.command(
            5,
            &write10(10, 8),
            false,
            true,
            4096,
            &payload[..512],
            false,
        )
        .await;
        ini.send(
            Bhs::DataOut(DataOut {
                final_: true,
                itt: 5,
                ttt: RESERVED_TAG,
                data_sn: 0,
                buffer_offset: 512,
                ..DataOut::default()
            }),
            &payload[512..1024],
        )
        .await;
        let mut r2ts = 0;
        loop {
            match ini.recv().await.unwrap() {
                (Bhs::R2t(r), _) => {
                    assert_eq!(r.r2t_sn, r2ts);
                    r2ts += 1;
                    let (o, l) = (r.buffer_offset as usize, r.desired_len as usize);
                    assert!(l <= 1024);
                    ini.send(
                        Bhs::DataOut(DataOut {
                            final_: true,
                            itt: 5,
                            ttt: r.ttt,
                            data_sn: 0,
                            buffer_offset: r.buffer_offset,
                            ..DataOut::default()
                        }),
                        &payload[o..o + l],
                    )
                    .await;
                }
                (Bhs::ScsiResponse(r), _) => {
                    assert_eq!((r.itt, r.status), (5, 0));
                    assert_eq!(r.exp_data_sn, r2ts);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(r2ts, 3);
    });
    assert_eq!(
        disk2.contents(10 * 512, 4096),
        (0..4096u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect::<Vec<_>>()
    );
}

/// Send the 2-block write `itt` as the R2T asks, with the DataSN of each of
/// its two 512-byte Data-Out PDUs given by `sns`; return status and sense.
async fn write_with_data_sns(ini: &mut Ini, itt: u32, sns: [u32; 2]) -> (u8, Vec<u8>) {
    ini.command(itt, &write10(20, 2), false, true, 1024, &[], true)
        .await;
    let (Bhs::R2t(r), _) = ini.recv().await.unwrap() else {
        panic!("no R2T");
    };
    assert_eq!((r.buffer_offset, r.desired_len), (0, 1024));
    for (i, sn) in sns.into_iter().enumerate() {
        ini.send(
            Bhs::DataOut(DataOut {
                final_: i == 1,
                itt,
                ttt: r.ttt,
                data_sn: sn,
                buffer_offset: 512 * u32::try_from(i).unwrap(),
                ..DataOut::default()
            }),
            &[0x5a; 512],
        )
        .await;
    }
    let (s, _, _, _, sense) = ini.status(itt).await;
    (s, sense)
}

#[test]
fn rejects_data_out_with_wrong_data_sn_as_data_phase_error() {
    // RFC 7143 §11.7.5: DataSN counts each R2T's Data-Out PDUs from 0. At
    // ERL 0 a DataSN gap cannot be recovered: the command ends with CHECK
    // CONDITION, ABORTED COMMAND, DATA PHASE ERROR (libiscsi's
    // iSCSIdatasn test sends 0,0 / 27 / -1 / 1,0 and wants a failure) and
    // nothing reaches the medium; the connection stays usable.
    let (srv, disk) = server(vec![TargetNode::new(IQN)], |_| {});
    let disk2 = Arc::clone(&disk);
    with_conn(&srv, |mut ini| async move {
        ini.login(&[("ImmediateData", "No"), ("InitialR2T", "Yes")])
            .await;
        clear_ua(&mut ini).await;
        for (itt, sns) in [
            (30, [0, 0]),
            (31, [1, 0]),
            (32, [27, 28]),
            (33, [u32::MAX, 0]),
        ] {
            let (s, sense) = write_with_data_sns(&mut ini, itt, sns).await;
            assert_eq!(s, 2, "DataSN {sns:?}");
            // Sense length (2 bytes), then fixed-format sense data.
            assert_eq!(sense[2 + 2] & 0x0f, 0x0b, "ABORTED COMMAND");
            assert_eq!((sense[2 + 12], sense[2 + 13]), (0x4b, 0x00));
        }
        assert!(disk2.contents(20 * 512, 1024).iter().all(|&b| b == 0));
        let (s, _) = write_with_data_sns(&mut ini, 34, [0, 1]).await;
        assert_eq!(s, 0, "in-order DataSN succeeds");
    });
    assert!(disk.contents(20 * 512, 1024).iter().all(|&b| b == 0x5a));
}

#[test]
fn rejects_data_out_for_unknown_task_and_unknown_opcode() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |_| {});
    with_conn(&srv, |mut ini| async move {
        ini.login(&[]).await;
        let d = Bhs::DataOut(DataOut {
            final_: true,
            itt: 77,
            ttt: 5,
            ..DataOut::default()
        });
        ini.send(d, &[0; 4]).await;
        let (Bhs::Reject(r), hdr) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(r.reason, RejectReason::INVALID_PDU_FIELD);
        assert_eq!(hdr.len(), BHS_LEN);
        let mut raw = [0u8; 48];
        raw[0] = 0x1c; // no such opcode
        ini.send_raw(&raw).await;
        let (Bhs::Reject(r), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        // RFC 7143 §11.17.1: Command not supported.
        assert_eq!(r.reason, RejectReason::COMMAND_NOT_SUPPORTED);
        // The connection still works.
        ini.send(
            Bhs::NopOut(NopOut {
                immediate: true,
                itt: 9,
                ttt: RESERVED_TAG,
                cmd_sn: ini.cmd_sn,
                ..NopOut::default()
            }),
            b"hi",
        )
        .await;
        let (Bhs::NopIn(n), data) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!((n.itt, data.as_slice()), (9, &b"hi"[..]));
    });
}

#[test]
fn rejects_oversized_data_segment_by_dropping_connection() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |g| {
        g.limits.max_recv_data_segment_length = 4096;
    });
    with_conn(&srv, |mut ini| async move {
        ini.login(&[]).await;
        // RFC 7143 §13.12: more than our MaxRecvDataSegmentLength.
        let mut h = Bhs::NopOut(NopOut {
            immediate: true,
            itt: 1,
            ttt: RESERVED_TAG,
            ..NopOut::default()
        })
        .emit();
        let mut out = Vec::new();
        encode_pdu(&h, &[], &vec![0u8; 8192], Digests::default(), &mut out).unwrap();
        h = RawBhs::read(&out).unwrap();
        assert_eq!(h.data_len(), 8192);
        ini.send_raw(&out).await;
        assert!(ini.recv().await.is_none(), "connection must close");
    });
}

#[test]
fn accepts_cmdsn_window_and_ignores_commands_outside_it() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |g| g.limits.queue_depth = 4);
    with_conn(&srv, |mut ini| async move {
        let r = ini.login(&[]).await;
        // MaxCmdSN = ExpCmdSN + depth - 1.
        assert_eq!(r.seq.max_cmd_sn, r.seq.exp_cmd_sn + 3);
        // RFC 7143 §4.2.2.1: a CmdSN beyond MaxCmdSN is silently ignored.
        let mut c = [0u8; 16];
        c[0] = 0;
        ini.send(
            Bhs::ScsiCommand(ScsiCommand {
                final_: true,
                itt: 50,
                cmd_sn: ini.cmd_sn + 10,
                cdb: c,
                attr: 1,
                ..ScsiCommand::default()
            }),
            &[],
        )
        .await;
        clear_ua(&mut ini).await; // answered, and nothing for ITT 50 before it
        assert_eq!(ini.max_cmd_sn, ini.cmd_sn + 3);
    });
}

#[test]
fn accepts_text_send_targets_and_logout() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |_| {});
    with_conn(&srv, |mut ini| async move {
        ini.login(&[]).await;
        let sn = ini.next_sn();
        ini.send(
            Bhs::TextRequest(TextRequest {
                final_: true,
                itt: 3,
                ttt: RESERVED_TAG,
                cmd_sn: sn,
                ..TextRequest::default()
            }),
            b"SendTargets=All\0",
        )
        .await;
        let (Bhs::TextResponse(t), body) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert!(t.final_);
        let kv = send_targets_pairs(&body);
        assert_eq!(kv[0], ("TargetName".into(), IQN.into()));
        assert_eq!(kv[1], ("TargetAddress".into(), "127.0.0.1:3260,1".into()));
        // Every portal group's portals, with their tags.
        assert_eq!(kv[2], ("TargetAddress".into(), "[::1]:3261,2".into()));
        assert_eq!(kv.len(), 3);
        let sn = ini.next_sn();
        ini.send(
            Bhs::LogoutRequest(LogoutRequest {
                immediate: true,
                itt: 4,
                cmd_sn: sn,
                ..LogoutRequest::default()
            }),
            &[],
        )
        .await;
        let (Bhs::LogoutResponse(l), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!((l.itt, l.response), (4, 0));
        assert!(ini.recv().await.is_none());
    });
    assert_eq!(srv.session_count(), 0);
}

#[test]
fn accepts_abort_task_and_lun_reset() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |_| {});
    with_conn(&srv, |mut ini| async move {
        ini.login(&[("InitialR2T", "Yes")]).await;
        clear_ua(&mut ini).await;
        // A write waiting for its R2T data can be aborted.
        ini.command(7, &write10(0, 1), false, true, 512, &[], true)
            .await;
        let (Bhs::R2t(_), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        let sn = ini.cmd_sn;
        ini.send(
            Bhs::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function: TmfCode::ABORT_TASK,
                itt: 8,
                rtt: 7,
                cmd_sn: sn,
                ..TaskMgmtRequest::default()
            }),
            &[],
        )
        .await;
        let (Bhs::TaskMgmtResponse(t), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!((t.itt, t.response), (8, TmfResponseCode::COMPLETE));
        ini.send(
            Bhs::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function: TmfCode::LOGICAL_UNIT_RESET,
                itt: 9,
                rtt: RESERVED_TAG,
                cmd_sn: sn,
                ..TaskMgmtRequest::default()
            }),
            &[],
        )
        .await;
        let (Bhs::TaskMgmtResponse(t), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!((t.itt, t.response), (9, TmfResponseCode::COMPLETE));
        // §11.5.1: TASK REASSIGN is not possible at ErrorRecoveryLevel 0.
        ini.send(
            Bhs::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function: TmfCode::TASK_REASSIGN,
                itt: 10,
                rtt: 7,
                cmd_sn: sn,
                ..TaskMgmtRequest::default()
            }),
            &[],
        )
        .await;
        let (Bhs::TaskMgmtResponse(t), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(t.response, TmfResponseCode::REASSIGN_NOT_SUPPORTED);
    });
}

#[test]
fn accepts_session_reinstatement_by_isid() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |_| {});
    let (a1, b1) = duplex();
    let (a2, b2) = duplex();
    let s1 = Arc::clone(&srv);
    let s2 = Arc::clone(&srv);
    let srv2 = Arc::clone(&srv);
    block_on(async move {
        let first = async move { s1.serve_connection(a1).await.ok() };
        let client = async move {
            let mut i1 = Ini::new(b1);
            i1.login(&[]).await;
            clear_ua(&mut i1).await;
            assert_eq!(srv2.session_count(), 1);
            let second = async move { s2.serve_connection(a2).await.ok() };
            let c2 = async move {
                let mut i2 = Ini::new(b2);
                let r = i2.login(&[]).await;
                assert_eq!(r.status_class, 0);
                // The old connection is dropped (RFC 7143 §6.3.5).
                assert!(i1.recv().await.is_none());
                // The new nexus starts with a unit attention.
                i2.command(1, &[0; 6], false, false, 0, &[], true).await;
                let (s, ..) = i2.status(1).await;
                assert_eq!(s, 2);
                assert_eq!(srv2.session_count(), 1);
            };
            futures::future::join(second, c2).await;
        };
        futures::future::join(first, client).await;
    });
}

#[test]
fn rejects_masked_lun_and_hides_it_from_report_luns() {
    let mut node = TargetNode::new(IQN);
    node.acl = Acl {
        lun_masks: [(INI.to_string(), vec![0u16])].into_iter().collect(),
        ..Acl::default()
    };
    let (srv, _) = server(vec![node], |_| {});
    with_conn(&srv, |mut ini| async move {
        ini.login(&[]).await;
        clear_ua(&mut ini).await;
        ini.command(
            2,
            &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0],
            true,
            false,
            64,
            &[],
            true,
        )
        .await;
        let (s, data, ..) = ini.status(2).await;
        assert_eq!(s, 0);
        assert_eq!(
            u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
            8,
            "only LUN 0 listed"
        );
        // A command to masked LUN 1: LOGICAL UNIT NOT SUPPORTED.
        let sn = ini.next_sn();
        ini.send(
            Bhs::ScsiCommand(ScsiCommand {
                final_: true,
                attr: 1,
                lun: 0x0001_0000_0000_0000,
                itt: 3,
                cmd_sn: sn,
                ..ScsiCommand::default()
            }),
            &[],
        )
        .await;
        let (s, _, _, _, sense) = ini.status(3).await;
        assert_eq!(s, 2);
        assert_eq!((sense[2 + 2] & 0x0f, sense[2 + 12]), (5, 0x25));
    });
}

#[test]
fn rejects_login_with_wrong_chap_and_unlisted_initiator() {
    let mut node = TargetNode::new(IQN);
    node.auth = AuthConfig {
        chap: Some(ChapCredentials::new("u", "secret-secret")),
        mutual_chap: None,
    };
    let (srv, _) = server(vec![node], |_| {});
    with_conn(&srv, |mut ini| async move {
        // Skipping security negotiation when CHAP is required: 0201.
        let r = ini.login(&[]).await;
        assert_eq!((r.status_class, r.status_detail), (2, 1));
        assert!(ini.recv().await.is_none());
    });
    let mut node = TargetNode::new(IQN);
    node.acl.allowed_initiators = vec!["iqn.2000-01.com.example:other".into()];
    let (srv, _) = server(vec![node], |_| {});
    with_conn(&srv, |mut ini| async move {
        let r = ini.login(&[]).await;
        assert_eq!((r.status_class, r.status_detail), (2, 2));
    });
}

#[test]
fn accepts_header_and_data_digests() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |_| {});
    with_conn(&srv, |mut ini| async move {
        ini.login(&[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")])
            .await;
        let dg = Digests {
            header: true,
            data: true,
        };
        ini.dec.set_digests(dg);
        let mut out = Vec::new();
        let nop = Bhs::NopOut(NopOut {
            immediate: true,
            itt: 5,
            ttt: RESERVED_TAG,
            cmd_sn: ini.cmd_sn,
            ..NopOut::default()
        });
        encode_pdu(&nop.emit(), &[], b"digest", dg, &mut out).unwrap();
        ini.send_raw(&out).await;
        let (Bhs::NopIn(n), data) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!((n.itt, data.as_slice()), (5, &b"digest"[..]));
        // A corrupted data digest is rejected (RFC 7143 §7.8), the session lives.
        let len = out.len();
        out[len - 1] ^= 0xff;
        ini.send_raw(&out).await;
        let (Bhs::Reject(r), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(r.reason, RejectReason::DATA_DIGEST_ERROR);
    });
}

/// Wait (yielding) until the clock has `n` timers armed.
async fn armed(clock: &ManualClock, n: usize) {
    futures::future::poll_fn(|cx| {
        if clock
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|t| !t.is_canceled())
            .count()
            >= n
        {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

#[test]
fn accepts_nop_in_ping_answered_and_drops_silent_initiator() {
    let clock = ManualClock::default();
    let (srv, _) = server_with(vec![TargetNode::new(IQN)], |_| {}, Some(clock.clone()));
    let c = clock.clone();
    with_conn(&srv, |mut ini| async move {
        ini.login(&[]).await;
        // A NOP exchange proves the full feature phase (and its timer) runs.
        ini.send(
            Bhs::NopOut(NopOut {
                immediate: true,
                itt: 1,
                ttt: RESERVED_TAG,
                cmd_sn: ini.cmd_sn,
                ..NopOut::default()
            }),
            &[],
        )
        .await;
        let (Bhs::NopIn(_), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        armed(&c, 1).await;
        c.tick(); // the connection was active: no ping
        armed(&c, 1).await;
        c.tick(); // idle for a whole interval: ping
                  // RFC 7143 §11.19: the target pings with ITT ffffffff and a TTT.
        let (Bhs::NopIn(n), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(n.itt, RESERVED_TAG);
        assert_ne!(n.ttt, RESERVED_TAG);
        ini.send(
            Bhs::NopOut(NopOut {
                immediate: true,
                itt: RESERVED_TAG,
                ttt: n.ttt,
                cmd_sn: ini.cmd_sn,
                ..NopOut::default()
            }),
            &[],
        )
        .await;
        armed(&c, 1).await;
        c.tick(); // answered and active: no ping this time
        armed(&c, 1).await;
        c.tick(); // idle: a new ping
        let (Bhs::NopIn(n2), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_ne!(n2.ttt, n.ttt);
        armed(&c, 1).await;
        c.tick(); // unanswered past the timeout: connection dropped
        assert!(ini.recv().await.is_none());
    });
}

#[test]
fn rejects_login_that_never_completes() {
    let clock = ManualClock::default();
    let (srv, _) = server_with(vec![TargetNode::new(IQN)], |_| {}, Some(clock.clone()));
    with_conn(&srv, |mut ini| async move {
        armed(&clock, 1).await;
        clock.tick();
        assert!(ini.recv().await.is_none(), "a silent initiator is dropped");
    });
}

#[test]
fn accepts_several_sessions_at_once() {
    let (srv, _) = server(vec![TargetNode::new(IQN)], |_| {});
    let (a1, b1) = duplex();
    let (a2, b2) = duplex();
    let (s1, s2, s3) = (Arc::clone(&srv), Arc::clone(&srv), Arc::clone(&srv));
    let client = |io: End, isid: u8, lba: u8| async move {
        let mut ini = Ini::new(io);
        ini.isid[5] = isid;
        let r = ini.login(&[]).await;
        assert_eq!(r.status_class, 0);
        clear_ua(&mut ini).await;
        // Several commands in flight on each session.
        let data = vec![isid; 512];
        for itt in 0..4u32 {
            ini.command(
                itt,
                &write10(lba + u8::try_from(itt).unwrap(), 1),
                false,
                true,
                512,
                &data,
                true,
            )
            .await;
        }
        for _ in 0..4 {
            let (Bhs::ScsiResponse(r), _) = ini.recv().await.unwrap() else {
                panic!()
            };
            assert_eq!(r.status, 0);
        }
        ini.command(
            9,
            &[0x28, 0, 0, 0, 0, lba, 0, 0, 4, 0],
            true,
            false,
            2048,
            &[],
            true,
        )
        .await;
        let (s, d, ..) = ini.status(9).await;
        assert_eq!(s, 0);
        assert!(d.iter().all(|&b| b == isid));
        ini
    };
    block_on(async move {
        let serve = futures::future::join(s1.serve_connection(a1), s2.serve_connection(a2));
        let clients = async move {
            let (i1, i2) = futures::future::join(client(b1, 1, 16), client(b2, 2, 32)).await;
            assert_eq!(s3.session_count(), 2);
            drop((i1, i2));
        };
        let ((r1, r2), ()) = futures::future::join(serve, clients).await;
        assert!(r1.is_ok() && r2.is_ok(), "{r1:?} {r2:?}");
    });
    assert_eq!(srv.session_count(), 0);
}

#[test]
fn accepts_discovery_session_send_targets_and_rejects_scsi() {
    let mut hidden = TargetNode::new("iqn.2026-11.dev.tgtkit:hidden");
    hidden.acl.allowed_initiators = vec!["iqn.2000-01.com.example:someone-else".into()];
    let (srv, _) = server(vec![TargetNode::new(IQN), hidden], |_| {});
    with_conn(&srv, |mut ini| async move {
        let req = Bhs::LoginRequest(LoginRequest {
            transit: true,
            cont: false,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
            version_max: 0,
            version_min: 0,
            isid: ini.isid,
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
        });
        let keys = text::encode(&[("InitiatorName", INI), ("SessionType", "Discovery")]);
        ini.send(req, &keys).await;
        let (Bhs::LoginResponse(r), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!((r.status_class, r.transit), (0, true));
        let sn = ini.cmd_sn;
        ini.send(
            Bhs::TextRequest(TextRequest {
                final_: true,
                itt: 1,
                ttt: RESERVED_TAG,
                cmd_sn: sn,
                ..TextRequest::default()
            }),
            b"SendTargets=All\0",
        )
        .await;
        let (Bhs::TextResponse(_), body) = ini.recv().await.unwrap() else {
            panic!()
        };
        let kv = send_targets_pairs(&body);
        // RFC 7143 appendix C: only the targets this initiator may reach.
        let names: Vec<&str> = kv
            .iter()
            .filter(|(k, _)| k == "TargetName")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(names, vec![IQN]);
        // A discovery session carries no SCSI commands.
        ini.send(
            Bhs::ScsiCommand(ScsiCommand {
                immediate: true,
                final_: true,
                itt: 2,
                ..ScsiCommand::default()
            }),
            &[],
        )
        .await;
        let (Bhs::Reject(rj), _) = ini.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!(rj.reason, RejectReason::PROTOCOL_ERROR);
    });
    assert_eq!(srv.session_count(), 0);
}

/// A server whose LUN 0 is a tape (SSC): its READ answers with data and
/// CHECK CONDITION together.
fn tape_server() -> Arc<IscsiServer> {
    let t = Target::new(TargetConfig {
        name: IQN.into(),
        ..TargetConfig::default()
    });
    let tape = LuConfig::new(Arc::new(MemBackstore::new(256, 512)))
        .device_type(tgtkit_scsi_core::device::DeviceType::Tape);
    t.add_lun(0, tape).unwrap();
    let group = PortalGroup {
        addresses: vec!["127.0.0.1:3260".into()],
        ..PortalGroup::default()
    };
    let config = PortalConfig {
        group,
        nodes: vec![TargetNode::new(IQN)],
        ..PortalConfig::default()
    };
    IscsiServer::new(config, vec![t], None).unwrap()
}

#[test]
fn sends_a_short_tape_block_then_its_check_condition() {
    let srv = tape_server();
    with_conn(&srv, |mut ini| async move {
        ini.login(&[]).await;
        clear_ua(&mut ini).await;
        // WRITE(6), one variable-length block of 100 bytes, as immediate data.
        ini.command(
            2,
            &[0x0a, 0, 0, 0, 100, 0],
            false,
            true,
            100,
            &[0x5c; 100],
            true,
        )
        .await;
        assert_eq!(ini.status(2).await.0, 0);
        ini.command(3, &[0x01, 0, 0, 0, 0, 0], false, false, 0, &[], true)
            .await;
        assert_eq!(ini.status(3).await.0, 0);
        // READ(6) of up to 512 bytes: the 100-byte block in Data-In, then a
        // SCSI Response with CHECK CONDITION (ILI, residue 412) and the
        // underflow.
        ini.command(4, &[0x08, 0, 0, 2, 0, 0], true, false, 512, &[], true)
            .await;
        let (s, data, kind, residual, sense) = ini.status(4).await;
        assert_eq!(s, 2);
        assert_eq!(data, vec![0x5c; 100]);
        assert_eq!((kind, residual), (ResidualKind::Underflow, 412));
        // The sense segment: a 2-byte length, then fixed-format sense.
        let sense = &sense[2..];
        assert_eq!(sense[2], 0x20, "ILI, NO SENSE");
        assert_eq!(&sense[3..7], &412u32.to_be_bytes());
    });
}
