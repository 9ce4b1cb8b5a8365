//! The full feature phase of one connection (RFC 7143 §4, §11).
//!
//! Two futures run side by side on the connection:
//!
//! * the **reader loop** cuts PDUs out of the stream, checks CmdSN against
//!   the window, collects write data (immediate, unsolicited, and R2T'd
//!   Data-Out), starts engine commands and TMFs (many at once, in a
//!   `FuturesUnordered`), answers NOP-Out, Text and Logout, and pings an
//!   idle initiator with NOP-In;
//! * the **writer loop** takes finished work from a bounded channel,
//!   stamps StatSN/ExpCmdSN/MaxCmdSN in the order it sends, splits read
//!   data into Data-In PDUs (status in the last one where allowed), and
//!   writes.
//!
//! Memory per connection is bounded: the decoder holds at most one PDU of
//! MaxRecvDataSegmentLength plus one read; commands in flight are bounded
//! by the CmdSN window (queue depth) and each command's buffer by
//! `TargetLimits::max_command_data`; the reader stops reading while the
//! bytes held by commands exceed a budget; the writer channel is bounded.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    Command, NexusId, RawCdb, Residual, Response, Target, TaskAttribute, TmFunction, TmfResponse,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, Sense, SenseFormat, SenseKey};
use tgtkit_scsi_core::status::Status;

use crate::config::PortalConfig;
use crate::login::{LoginResult, SessionKind};
use crate::params::SessionParams;
use crate::pdu::{
    self, Bhs, DataIn, DataOut, Digests, LogoutReason, LogoutRequest, LogoutResponse, NopIn,
    NopOut, PduDecoder, PduError, R2t, RawBhs, Reject, RejectReason, ResidualKind, ScsiCommand,
    ScsiResponse, SeqNums, TaskMgmtRequest, TaskMgmtResponse, TextRequest, TextResponse, TmfCode,
    TmfResponseCode, RESERVED_TAG,
};
use crate::server::{ConnSignal, ConnectionError, Sleeper};
use crate::text;

/// Bytes of command buffers a connection may hold before it stops reading.
const MEMORY_BUDGET: usize = 64 * 1024 * 1024;
/// Messages queued to the writer before the reader waits.
const WRITER_QUEUE: usize = 256;
/// Bytes the writer gathers before a write syscall.
const WRITE_BATCH: usize = 1024 * 1024;

/// Everything a connection needs after login.
pub(crate) struct ConnectionSetup {
    pub config: Arc<PortalConfig>,
    pub login: LoginResult,
    pub target: Option<Arc<Target>>,
    pub nexus: Option<NexusId>,
    pub node: Option<usize>,
    pub sleeper: Option<Arc<dyn Sleeper>>,
    pub signal: Arc<ConnSignal>,
}

/// ExpCmdSN and MaxCmdSN packed in one atomic so the writer reads a
/// consistent pair.
#[derive(Default)]
struct Window(AtomicU64);

impl Window {
    fn set(&self, exp: u32, max: u32) {
        self.0
            .store((u64::from(exp) << 32) | u64::from(max), Ordering::Release);
    }

    fn get(&self) -> (u32, u32) {
        let v = self.0.load(Ordering::Acquire);
        let [a, b, c, d, e, f, g, h] = v.to_be_bytes();
        (
            u32::from_be_bytes([a, b, c, d]),
            u32::from_be_bytes([e, f, g, h]),
        )
    }
}

/// Work for the writer.
enum Out {
    /// A PDU whose sequence numbers the writer stamps.
    Pdu(Bhs, Vec<u8>),
    /// Reject a PDU; the data segment is its header.
    Reject(RejectReason, RawBhs),
    /// A finished SCSI command.
    Scsi(Box<ScsiDone>),
    /// Flush and close.
    Close,
}

struct ScsiDone {
    itt: u32,
    lun: u64,
    read: bool,
    buffer: DataBuffer,
    resp: Response,
    r2ts: u32,
}

/// A completed piece of asynchronous work of the reader loop.
enum Done {
    Scsi {
        done: Box<ScsiDone>,
        counted: bool,
        bytes: usize,
        filter_luns: Option<Vec<u16>>,
    },
    Tmf {
        itt: u32,
        response: TmfResponseCode,
        close: bool,
    },
}

/// An outstanding R2T.
struct R2tState {
    ttt: u32,
    offset: u32,
    len: u32,
    received: u32,
    next_data_sn: u32,
}

/// A write command still collecting its data.
struct WriteTask {
    cmd: Command,
    buffer: DataBuffer,
    edtl: u32,
    received: u32,
    /// Unsolicited Data-Out still expected (F was clear in the command).
    unsolicited_open: bool,
    unsolicited_limit: u32,
    unsolicited_data_sn: u32,
    next_r2t_offset: u32,
    r2t_sn: u32,
    r2ts: Vec<R2tState>,
    counted: bool,
}

/// The reader side's state.
struct Conn {
    config: Arc<PortalConfig>,
    login: LoginResult,
    params: SessionParams,
    target: Option<Arc<Target>>,
    nexus: Option<NexusId>,
    visible: Option<Vec<u16>>,
    exp_cmd_sn: u32,
    inflight: u32,
    depth: u32,
    window: Arc<Window>,
    tx: mpsc::Sender<Out>,
    running: FuturesUnordered<BoxFuture<'static, Done>>,
    writes: HashMap<u32, WriteTask>,
    /// Writes failed while their Data-Out was still arriving.
    failed_writes: VecDeque<u32>,
    held_bytes: usize,
    next_ttt: u32,
    logout: Option<LogoutRequest>,
    closing: bool,
}

type Res<T = ()> = Result<T, ConnectionError>;

fn closed() -> ConnectionError {
    ConnectionError::Io(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "writer closed",
    ))
}

/// Run the full feature phase until logout, close or error.
pub(crate) async fn run<R, W>(
    setup: ConnectionSetup,
    reader: R,
    writer: W,
    decoder: PduDecoder,
) -> Result<(), ConnectionError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let params = setup.login.params;
    let window = Arc::new(Window::default());
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    let depth = setup.config.group.limits.queue_depth.max(1);
    let visible = match (setup.node, &setup.login) {
        (Some(i), l) => setup
            .config
            .nodes
            .get(i)
            .and_then(|n| n.acl.visible_luns(&l.initiator_name))
            .map(<[u16]>::to_vec),
        _ => None,
    };
    let conn = Conn {
        exp_cmd_sn: setup.login.exp_cmd_sn,
        inflight: 0,
        depth,
        window: Arc::clone(&window),
        params,
        config: setup.config,
        target: setup.target,
        nexus: setup.nexus,
        visible,
        tx,
        running: FuturesUnordered::new(),
        writes: HashMap::new(),
        failed_writes: VecDeque::new(),
        held_bytes: 0,
        next_ttt: 1,
        logout: None,
        closing: false,
        login: setup.login,
    };
    conn.publish_window();
    let writer_fut = write_loop(writer, rx, window, params, conn.login.stat_sn);
    let reader_fut = conn.read_loop(reader, decoder, setup.sleeper, setup.signal);
    // If the writer fails the reader is dropped; if the reader ends first
    // the writer still flushes what it was given (it ends on `Out::Close`).
    match futures::future::select(Box::pin(reader_fut), Box::pin(writer_fut)).await {
        futures::future::Either::Left((r, writer)) => {
            let w = writer.await;
            r.and(w)
        }
        futures::future::Either::Right((w, _reader)) => w,
    }
}

enum Event {
    Read(std::io::Result<usize>),
    Done(Done),
    Tick,
    Kill,
    Shutdown,
}

impl Conn {
    fn publish_window(&self) {
        let max = self
            .exp_cmd_sn
            .wrapping_add(self.depth.saturating_sub(self.inflight))
            .wrapping_sub(1);
        self.window.set(self.exp_cmd_sn, max);
    }

    async fn send(&mut self, out: Out) -> Res {
        self.tx.send(out).await.map_err(|_| closed())
    }

    async fn reject(&mut self, reason: RejectReason, header: RawBhs) -> Res {
        tracing::debug!(?reason, ?header, "reject");
        self.send(Out::Reject(reason, header)).await
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        mut self,
        mut reader: R,
        mut decoder: PduDecoder,
        sleeper: Option<Arc<dyn Sleeper>>,
        signal: Arc<ConnSignal>,
    ) -> Res {
        let interval = self.config.group.nop_in_interval_secs;
        let timeout_ticks = self
            .config
            .group
            .nop_in_timeout_secs
            .div_ceil(interval.max(1))
            .max(1);
        let mut timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = match &sleeper {
            Some(s) if interval > 0 => Some(s.sleep(Duration::from_secs(u64::from(interval)))),
            _ => None,
        };
        let mut active = false;
        let mut ping: Option<(u32, u32)> = None; // (ttt, ticks waited)
        let mut shutdown = false;
        let result: Res = loop {
            // Decode whatever is buffered before reading more.
            if !self.closing && !shutdown && self.held_bytes <= MEMORY_BUDGET {
                match decoder.decode() {
                    Ok(Some(frame)) => {
                        active = true;
                        if let Ok(Bhs::NopOut(n)) = Bhs::parse(&frame.header) {
                            if n.itt == RESERVED_TAG && ping.is_some_and(|(t, _)| t == n.ttt) {
                                ping = None;
                            }
                        }
                        if let Err(e) = self.frame(frame).await {
                            break Err(e);
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if let Err(e) = self.decode_error(e).await {
                            break Err(e);
                        }
                        continue;
                    }
                }
            }
            if (self.closing || shutdown) && self.running.is_empty() {
                break self.finish().await;
            }
            let read_enabled = !self.closing && !shutdown && self.held_bytes <= MEMORY_BUDGET;
            let ev = futures::future::poll_fn(|cx| {
                signal.waker.register(cx.waker());
                if signal.kill.load(Ordering::Acquire) {
                    return Poll::Ready(Event::Kill);
                }
                if !shutdown && signal.shutdown.load(Ordering::Acquire) {
                    return Poll::Ready(Event::Shutdown);
                }
                if let Poll::Ready(Some(d)) = self.running.poll_next_unpin(cx) {
                    return Poll::Ready(Event::Done(d));
                }
                if read_enabled {
                    if let Poll::Ready(r) = Pin::new(&mut reader).poll_read(cx, decoder.spare()) {
                        return Poll::Ready(Event::Read(r));
                    }
                }
                if let Some(t) = timer.as_mut() {
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Tick);
                    }
                }
                Poll::Pending
            })
            .await;
            match ev {
                Event::Read(Ok(0)) => break Ok(()),
                Event::Read(Ok(n)) => decoder.filled(n),
                Event::Read(Err(e)) => break Err(e.into()),
                Event::Done(d) => {
                    if let Err(e) = self.completed(d).await {
                        break Err(e);
                    }
                }
                Event::Kill => {
                    // Reinstated elsewhere: the new session removed our nexus.
                    self.nexus = None;
                    break Ok(());
                }
                Event::Shutdown => {
                    shutdown = true;
                    self.drop_collecting();
                }
                Event::Tick => {
                    if let Some(s) = &sleeper {
                        timer = Some(s.sleep(Duration::from_secs(u64::from(interval))));
                    }
                    if let Some((ttt, waited)) = ping {
                        if waited + 1 >= timeout_ticks {
                            break Err(ConnectionError::Protocol("NOP-In ping timed out".into()));
                        }
                        ping = Some((ttt, waited + 1));
                    } else if !active {
                        let ttt = self.alloc_ttt();
                        ping = Some((ttt, 0));
                        let nop = Bhs::NopIn(NopIn {
                            lun: 0,
                            itt: RESERVED_TAG,
                            ttt,
                            seq: SeqNums::default(),
                        });
                        if let Err(e) = self.send(Out::Pdu(nop, Vec::new())).await {
                            break Err(e);
                        }
                    }
                    active = false;
                }
            }
        };
        // Whatever happened, the writer must stop too.
        self.drop_collecting();
        let _ = self.tx.send(Out::Close).await;
        self.tx.close_channel();
        result
    }

    /// Logout or shutdown with nothing left running: answer and close.
    async fn finish(&mut self) -> Res {
        if let Some(l) = self.logout.take() {
            let (response, time2wait) = match l.reason {
                LogoutReason::CLOSE_SESSION => (0, 0),
                LogoutReason::CLOSE_CONNECTION if l.cid == self.login.cid => (0, 0),
                LogoutReason::CLOSE_CONNECTION => (1, 0),
                // §11.15.1: recovery is not supported at ERL 0.
                _ => (2, 0),
            };
            let r = Bhs::LogoutResponse(LogoutResponse {
                response,
                itt: l.itt,
                seq: SeqNums::default(),
                time2wait,
                time2retain: 0,
            });
            self.send(Out::Pdu(r, Vec::new())).await?;
        }
        Ok(())
    }

    fn alloc_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    fn drop_collecting(&mut self) {
        for (_, w) in self.writes.drain() {
            self.held_bytes = self.held_bytes.saturating_sub(w.edtl as usize);
            if w.counted {
                self.inflight = self.inflight.saturating_sub(1);
            }
        }
        self.publish_window();
    }

    async fn decode_error(&mut self, e: PduError) -> Res {
        match e {
            // §7.8.2: a data digest error on a PDU is answered with Reject
            // and the PDU discarded; a lost Data-Out fails its command at ERL 0.
            PduError::DataDigest { header, .. } => {
                // The Reject goes first so the initiator can still match it.
                self.reject(RejectReason::DATA_DIGEST_ERROR, header).await?;
                if let Ok(Bhs::DataOut(d)) = Bhs::parse(&header) {
                    // PROTOCOL SERVICE CRC ERROR (SPC-4 D.2: 47h/05h).
                    self.fail_write(d.itt, Asc::from_bytes(0x47, 0x05)).await?;
                }
                Ok(())
            }
            other => Err(ConnectionError::Protocol(other.to_string())),
        }
    }

    /// Serial-number window check (RFC 7143 §4.2.2.1): a non-immediate
    /// command must carry ExpCmdSN; others are silently ignored.
    fn accept_cmd_sn(&mut self, immediate: bool, cmd_sn: u32) -> bool {
        if immediate {
            return true;
        }
        if cmd_sn != self.exp_cmd_sn {
            tracing::debug!(
                cmd_sn,
                exp = self.exp_cmd_sn,
                "CmdSN outside window, ignored"
            );
            return false;
        }
        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
        self.publish_window();
        true
    }

    async fn frame(&mut self, f: pdu::Frame) -> Res {
        let header = f.header;
        let bhs = match Bhs::parse(&header) {
            Ok(b) => b,
            Err(PduError::UnknownOpcode(_)) => {
                return self
                    .reject(RejectReason::COMMAND_NOT_SUPPORTED, header)
                    .await;
            }
            Err(_) => return self.reject(RejectReason::INVALID_PDU_FIELD, header).await,
        };
        let discovery = self.login.kind == SessionKind::Discovery;
        match bhs {
            Bhs::ScsiCommand(c) if !discovery => {
                if self.accept_cmd_sn(c.immediate, c.cmd_sn) {
                    self.scsi_command(c, header, &f.ahs, f.data).await?;
                }
            }
            Bhs::DataOut(d) if !discovery => self.data_out(d, header, &f.data).await?,
            Bhs::TaskMgmtRequest(t) if !discovery => {
                if self.accept_cmd_sn(t.immediate, t.cmd_sn) {
                    self.tmf(t).await?;
                }
            }
            Bhs::NopOut(n) => {
                if n.itt != RESERVED_TAG && self.accept_cmd_sn(n.immediate, n.cmd_sn) {
                    self.nop_out(n, f.data).await?;
                } else if n.itt == RESERVED_TAG && !n.immediate {
                    // §11.18: a NOP-Out without a task tag must be immediate.
                    self.reject(RejectReason::PROTOCOL_ERROR, header).await?;
                }
            }
            Bhs::TextRequest(t) => {
                if self.accept_cmd_sn(t.immediate, t.cmd_sn) {
                    self.text(t, header, &f.data).await?;
                }
            }
            Bhs::LogoutRequest(l) => {
                if self.accept_cmd_sn(l.immediate, l.cmd_sn) {
                    self.logout = Some(l);
                    self.closing = true;
                    self.drop_collecting();
                }
            }
            // SNACK needs ErrorRecoveryLevel > 0; Login is over; target
            // opcodes and SCSI in a discovery session are protocol errors.
            _ => self.reject(RejectReason::PROTOCOL_ERROR, header).await?,
        }
        Ok(())
    }

    async fn nop_out(&mut self, n: NopOut, data: Vec<u8>) -> Res {
        // §11.19: echo the ping data.
        let nop = Bhs::NopIn(NopIn {
            lun: n.lun,
            itt: n.itt,
            ttt: RESERVED_TAG,
            seq: SeqNums::default(),
        });
        self.send(Out::Pdu(nop, data)).await
    }

    async fn text(&mut self, t: TextRequest, header: RawBhs, data: &[u8]) -> Res {
        let Ok(pairs) = text::parse(data) else {
            return self.reject(RejectReason::PROTOCOL_ERROR, header).await;
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            if k == "SendTargets" {
                self.send_targets(&v, &mut out);
            } else {
                out.push((k, "NotUnderstood".into()));
            }
        }
        let mut body = text::encode(&out);
        // Keep the answer within the initiator's limit, cut at a pair.
        let max = self.params.max_xmit_data_segment_length as usize;
        if body.len() > max {
            let cut = body[..max]
                .iter()
                .rposition(|&b| b == 0)
                .map_or(0, |p| p + 1);
            body.truncate(cut);
        }
        let r = Bhs::TextResponse(TextResponse {
            final_: true,
            cont: false,
            lun: t.lun,
            itt: t.itt,
            ttt: RESERVED_TAG,
            seq: SeqNums::default(),
        });
        self.send(Out::Pdu(r, body)).await
    }

    /// SendTargets (RFC 7143 §13.3, appendix C).
    fn send_targets(&self, value: &str, out: &mut Vec<(String, String)>) {
        let tpgt = self.config.group.tpgt;
        let nodes = self.config.nodes.iter().enumerate().filter(|(i, n)| {
            let wanted = match self.login.kind {
                // A Normal session only learns about its own target.
                SessionKind::Normal(own) => *i == own,
                SessionKind::Discovery => value == "All" || n.name.eq_ignore_ascii_case(value),
            };
            wanted && n.acl.allows(&self.login.initiator_name)
        });
        for (_, n) in nodes {
            out.push(("TargetName".into(), n.name.clone()));
            for a in &self.config.group.addresses {
                out.push(("TargetAddress".into(), format!("{a},{tpgt}")));
            }
            for p in &self.config.other_portals {
                out.push(("TargetAddress".into(), format!("{},{}", p.address, p.tpgt)));
            }
        }
    }

    async fn tmf(&mut self, t: TaskMgmtRequest) -> Res {
        let (Some(target), Some(nexus)) = (self.target.clone(), self.nexus) else {
            return Ok(());
        };
        let lun = self.engine_lun(t.lun);
        let function = match t.function {
            TmfCode::ABORT_TASK => {
                // A write still collecting data never reached the engine.
                if let Some(w) = self.writes.remove(&t.rtt) {
                    self.held_bytes = self.held_bytes.saturating_sub(w.edtl as usize);
                    if w.counted {
                        self.inflight = self.inflight.saturating_sub(1);
                        self.publish_window();
                    }
                    return self.tmf_response(t.itt, TmfResponseCode::COMPLETE).await;
                }
                TmFunction::AbortTask {
                    tag: u64::from(t.rtt),
                }
            }
            TmfCode::ABORT_TASK_SET => TmFunction::AbortTaskSet,
            TmfCode::CLEAR_ACA => TmFunction::ClearAca,
            TmfCode::CLEAR_TASK_SET => TmFunction::ClearTaskSet,
            TmfCode::LOGICAL_UNIT_RESET => TmFunction::LogicalUnitReset,
            TmfCode::TARGET_WARM_RESET | TmfCode::TARGET_COLD_RESET => TmFunction::TargetReset,
            // §11.5.1: at ErrorRecoveryLevel 0 allegiance cannot be reassigned.
            TmfCode::TASK_REASSIGN => {
                return self
                    .tmf_response(t.itt, TmfResponseCode::REASSIGN_NOT_SUPPORTED)
                    .await;
            }
            // RFC 7144 §4.1: QUERY TASK, QUERY TASK SET, I_T NEXUS RESET,
            // QUERY ASYNCHRONOUS EVENT.
            TmfCode(9) => TmFunction::QueryTask {
                tag: u64::from(t.rtt),
            },
            TmfCode(10) => TmFunction::QueryTaskSet,
            TmfCode(11) => TmFunction::ITNexusReset,
            TmfCode(12) => TmFunction::QueryAsyncEvent,
            _ => {
                return self
                    .tmf_response(t.itt, TmfResponseCode::NOT_SUPPORTED)
                    .await;
            }
        };
        if matches!(
            function,
            TmFunction::AbortTaskSet | TmFunction::ClearTaskSet | TmFunction::LogicalUnitReset
        ) {
            let lun = t.lun;
            let gone: Vec<u32> = self
                .writes
                .iter()
                .filter(|(_, w)| w.cmd.lun.to_u64() == lun)
                .map(|(k, _)| *k)
                .collect();
            for k in gone {
                if let Some(w) = self.writes.remove(&k) {
                    self.held_bytes = self.held_bytes.saturating_sub(w.edtl as usize);
                    if w.counted {
                        self.inflight = self.inflight.saturating_sub(1);
                    }
                }
            }
            self.publish_window();
        }
        if function == TmFunction::TargetReset {
            self.drop_collecting();
        }
        let close = t.function == TmfCode::TARGET_COLD_RESET;
        let itt = t.itt;
        self.running.push(
            async move {
                let r = target.task_management(nexus, lun, function).await;
                let response = match r {
                    TmfResponse::Complete => TmfResponseCode::COMPLETE,
                    TmfResponse::Succeeded => TmfResponseCode(7),
                    TmfResponse::Rejected => TmfResponseCode::REJECTED,
                    TmfResponse::NotSupported => TmfResponseCode::NOT_SUPPORTED,
                    TmfResponse::IncorrectLun => TmfResponseCode::LUN_DOES_NOT_EXIST,
                    TmfResponse::TaskNotFound => TmfResponseCode::TASK_DOES_NOT_EXIST,
                };
                Done::Tmf {
                    itt,
                    response,
                    close,
                }
            }
            .boxed(),
        );
        Ok(())
    }

    async fn tmf_response(&mut self, itt: u32, response: TmfResponseCode) -> Res {
        let r = Bhs::TaskMgmtResponse(TaskMgmtResponse {
            response,
            itt,
            seq: SeqNums::default(),
        });
        self.send(Out::Pdu(r, Vec::new())).await
    }

    /// The LUN the engine sees: masked LUNs become an unaddressable LUN so
    /// the engine answers as for a LUN that does not exist.
    fn engine_lun(&self, wire: u64) -> Lun {
        let lun = Lun::from_u64(wire);
        match (&self.visible, lun.index()) {
            (Some(v), Some(i)) if !v.contains(&i) => Lun([0xff; 8]),
            _ => lun,
        }
    }

    async fn scsi_command(
        &mut self,
        c: ScsiCommand,
        header: RawBhs,
        ahs: &[u8],
        data: Vec<u8>,
    ) -> Res {
        let (Some(target), Some(nexus)) = (self.target.clone(), self.nexus) else {
            return self.reject(RejectReason::PROTOCOL_ERROR, header).await;
        };
        let counted = !c.immediate;
        if counted {
            self.inflight += 1;
            self.publish_window();
        }
        let mut cdb_buf = [0u8; 260];
        let Ok(cdb_len) = pdu::scsi_command_cdb(&c, ahs, &mut cdb_buf) else {
            self.uncount(counted);
            return self.reject(RejectReason::INVALID_PDU_FIELD, header).await;
        };
        // Trailing zero bytes of the 16-byte field are padding for short CDBs;
        // the engine takes the CDB length from the opcode group.
        let Ok(cdb) = RawCdb::new(&cdb_buf[..cdb_len.min(tgtkit_scsi_core::engine::MAX_CDB_LEN)])
        else {
            self.uncount(counted);
            return self.reject(RejectReason::INVALID_PDU_FIELD, header).await;
        };
        let attribute = match c.attr {
            2 => TaskAttribute::Ordered,
            3 => TaskAttribute::HeadOfQueue,
            4 => TaskAttribute::Aca,
            _ => TaskAttribute::Simple,
        };
        let lun = self.engine_lun(c.lun);
        // §11.3.4: immediate data only with a write, within FirstBurstLength.
        let bad_immediate = !data.is_empty()
            && (!c.write
                || !self.params.immediate_data
                || data.len() > c.edtl as usize
                || data.len() > self.params.first_burst_length as usize);
        if bad_immediate {
            self.uncount(counted);
            return self.reject(RejectReason::PROTOCOL_ERROR, header).await;
        }
        let refuse = |sense: Sense| Response::check_condition(&sense, SenseFormat::Fixed);
        let early = if c.read && c.write {
            // Bidirectional commands are not supported by the engine API.
            Some(refuse(Sense::illegal(Asc::INVALID_COMMAND_OPERATION_CODE)))
        } else if c.edtl > self.config.group.limits.max_command_data {
            Some(refuse(Sense::invalid_cdb_field(0, None)))
        } else {
            None
        };
        if let Some(resp) = early {
            self.uncount(counted);
            let done = ScsiDone {
                itt: c.itt,
                lun: c.lun,
                read: false,
                buffer: DataBuffer::empty(),
                resp,
                r2ts: 0,
            };
            return self.send(Out::Scsi(Box::new(done))).await;
        }
        let edtl = c.edtl;
        // A write whose immediate data is all of it keeps the PDU's own
        // buffer: no second allocation, no zero-fill, no copy.
        let whole = c.write && edtl > 0 && data.len() == edtl as usize;
        let (buffer, data) = if whole {
            (DataBuffer::from_vec(data), Vec::new())
        } else {
            (DataBuffer::zeroed(edtl as usize), data)
        };
        self.held_bytes += edtl as usize;
        let cmd = Command {
            nexus,
            lun,
            tag: u64::from(c.itt),
            attribute,
            cdb,
            data: buffer.clone(),
        };
        if c.write && edtl > 0 {
            let received = if whole {
                edtl
            } else {
                buffer.write_at(0, &data);
                u32::try_from(data.len()).unwrap_or(u32::MAX)
            };
            let unsolicited_limit = if self.params.initial_r2t {
                received
            } else {
                self.params.first_burst_length.min(edtl)
            };
            let mut w = WriteTask {
                cmd,
                buffer,
                edtl,
                received,
                unsolicited_open: !c.final_ && !self.params.initial_r2t,
                unsolicited_limit,
                unsolicited_data_sn: 0,
                next_r2t_offset: received,
                r2t_sn: 0,
                r2ts: Vec::new(),
                counted,
            };
            if w.received >= w.edtl {
                self.start(target, w.cmd, w.buffer, false, counted, 0);
                return Ok(());
            }
            if !w.unsolicited_open {
                self.issue_r2ts(&mut w, c.lun).await?;
            }
            if self.writes.insert(c.itt, w).is_some() {
                // §11.2.1.8: a task tag must be unique in the session.
                tracing::debug!(itt = c.itt, "duplicate ITT for a write");
            }
            return Ok(());
        }
        self.start(target, cmd, buffer, c.read, counted, 0);
        Ok(())
    }

    fn uncount(&mut self, counted: bool) {
        if counted {
            self.inflight = self.inflight.saturating_sub(1);
            self.publish_window();
        }
    }

    fn start(
        &mut self,
        target: Arc<Target>,
        cmd: Command,
        buffer: DataBuffer,
        read: bool,
        counted: bool,
        r2ts: u32,
    ) {
        let itt = u32::try_from(cmd.tag).unwrap_or(RESERVED_TAG);
        let lun = cmd.lun.to_u64();
        let bytes = buffer.len();
        let filter_luns = if cmd.cdb.as_bytes().first() == Some(&0xa0) {
            self.visible.clone()
        } else {
            None
        };
        // The wire LUN, not the masked one, goes back in the response.
        let wire_lun = if cmd.lun == Lun([0xff; 8]) { 0 } else { lun };
        self.running.push(
            async move {
                let resp = target.execute(cmd).await;
                Done::Scsi {
                    done: Box::new(ScsiDone {
                        itt,
                        lun: wire_lun,
                        read,
                        buffer,
                        resp,
                        r2ts,
                    }),
                    counted,
                    bytes,
                    filter_luns,
                }
            }
            .boxed(),
        );
    }

    async fn issue_r2ts(&mut self, w: &mut WriteTask, lun: u64) -> Res {
        let max_out = usize::from(self.params.max_outstanding_r2t.max(1));
        while w.r2ts.len() < max_out && w.next_r2t_offset < w.edtl {
            let len = (w.edtl - w.next_r2t_offset).min(self.params.max_burst_length.max(512));
            let ttt = self.alloc_ttt();
            let r2t = Bhs::R2t(R2t {
                lun,
                itt: u32::try_from(w.cmd.tag).unwrap_or(RESERVED_TAG),
                ttt,
                seq: SeqNums::default(),
                r2t_sn: w.r2t_sn,
                buffer_offset: w.next_r2t_offset,
                desired_len: len,
            });
            w.r2ts.push(R2tState {
                ttt,
                offset: w.next_r2t_offset,
                len,
                received: 0,
                next_data_sn: 0,
            });
            w.r2t_sn += 1;
            w.next_r2t_offset += len;
            self.send(Out::Pdu(r2t, Vec::new())).await?;
        }
        Ok(())
    }

    /// A write whose data was lost (digest or sequence error): CHECK
    /// CONDITION, ABORTED COMMAND at ERL 0.
    async fn fail_write(&mut self, itt: u32, asc: Asc) -> Res {
        let Some(w) = self.writes.remove(&itt) else {
            return Ok(());
        };
        if self.failed_writes.len() >= 64 {
            self.failed_writes.pop_front();
        }
        self.failed_writes.push_back(itt);
        self.held_bytes = self.held_bytes.saturating_sub(w.edtl as usize);
        self.uncount(w.counted);
        let sense = Sense::new(SenseKey::ABORTED_COMMAND, asc);
        let done = ScsiDone {
            itt,
            lun: w.cmd.lun.to_u64(),
            read: false,
            buffer: DataBuffer::empty(),
            resp: Response::check_condition(&sense, SenseFormat::Fixed),
            r2ts: w.r2t_sn,
        };
        self.send(Out::Scsi(Box::new(done))).await
    }

    async fn data_out(&mut self, d: DataOut, header: RawBhs, data: &[u8]) -> Res {
        let Some(mut w) = self.writes.remove(&d.itt) else {
            if self.failed_writes.contains(&d.itt) {
                return Ok(());
            }
            // §11.7: Data-Out for a task we do not know.
            return self.reject(RejectReason::INVALID_PDU_FIELD, header).await;
        };
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let end = d.buffer_offset.checked_add(len);
        let ok = if d.ttt == RESERVED_TAG {
            w.unsolicited_open && end.is_some_and(|e| e <= w.unsolicited_limit)
        } else {
            w.r2ts.iter().any(|r| {
                r.ttt == d.ttt
                    && d.buffer_offset >= r.offset
                    && end.is_some_and(|e| e <= r.offset + r.len)
            })
        };
        if !ok {
            self.writes.insert(d.itt, w);
            return self.reject(RejectReason::PROTOCOL_ERROR, header).await;
        }
        // §11.7.5: DataSN counts the Data-Out PDUs of each sequence from 0.
        // At ERL 0 a sequence error cannot be recovered: the command fails.
        let expected_sn = if d.ttt == RESERVED_TAG {
            &mut w.unsolicited_data_sn
        } else {
            match w.r2ts.iter_mut().find(|r| r.ttt == d.ttt) {
                Some(r) => &mut r.next_data_sn,
                None => &mut w.unsolicited_data_sn,
            }
        };
        if d.data_sn != *expected_sn {
            tracing::debug!(
                itt = d.itt,
                got = d.data_sn,
                want = *expected_sn,
                "DataSN error"
            );
            self.writes.insert(d.itt, w);
            // DATA PHASE ERROR; the rest of this command's Data-Out is
            // dropped quietly (a Reject for a finished task confuses initiators).
            return self.fail_write(d.itt, Asc::from_bytes(0x4b, 0x00)).await;
        }
        *expected_sn = expected_sn.wrapping_add(1);
        w.buffer.write_at(d.buffer_offset as usize, data);
        w.received = w.received.saturating_add(len);
        if d.ttt == RESERVED_TAG {
            if d.final_ {
                w.unsolicited_open = false;
                w.next_r2t_offset = w.next_r2t_offset.max(end.unwrap_or(0));
            } else {
                w.next_r2t_offset = w.next_r2t_offset.max(end.unwrap_or(0));
            }
        } else if let Some(pos) = w.r2ts.iter().position(|r| r.ttt == d.ttt) {
            let r = &mut w.r2ts[pos];
            r.received = r.received.saturating_add(len);
            if d.final_ || r.received >= r.len {
                w.r2ts.remove(pos);
            }
        }
        if w.received >= w.edtl && w.r2ts.is_empty() {
            let target = self.target.clone();
            if let Some(target) = target {
                let (counted, r2ts) = (w.counted, w.r2t_sn);
                self.start(target, w.cmd, w.buffer, false, counted, r2ts);
            }
            return Ok(());
        }
        if !w.unsolicited_open {
            let lun = d.lun;
            self.issue_r2ts(&mut w, lun).await?;
        }
        self.writes.insert(d.itt, w);
        Ok(())
    }

    async fn completed(&mut self, d: Done) -> Res {
        match d {
            Done::Scsi {
                mut done,
                counted,
                bytes,
                filter_luns,
            } => {
                self.held_bytes = self.held_bytes.saturating_sub(bytes);
                self.uncount(counted);
                if done.resp.aborted {
                    // SAM-5 §7.11: nothing is sent for an aborted task.
                    return Ok(());
                }
                if let Some(v) = filter_luns {
                    filter_report_luns(&mut done, &v);
                }
                self.send(Out::Scsi(done)).await
            }
            Done::Tmf {
                itt,
                response,
                close,
            } => {
                self.tmf_response(itt, response).await?;
                if close {
                    self.closing = true;
                }
                Ok(())
            }
        }
    }
}

/// Drop masked LUNs from REPORT LUNS parameter data (SPC-4 §6.33).
fn filter_report_luns(done: &mut ScsiDone, visible: &[u16]) {
    if done.resp.status != Status::GOOD || done.resp.data_len < 8 {
        return;
    }
    let mut data = vec![0u8; done.resp.data_len];
    done.buffer.read_at(0, &mut data);
    let list_len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let mut kept = Vec::new();
    for entry in data[8..].chunks_exact(8).take(list_len / 8) {
        let mut l = [0u8; 8];
        l.copy_from_slice(entry);
        if Lun(l).index().is_none_or(|i| visible.contains(&i)) {
            kept.extend_from_slice(entry);
        }
    }
    let new_list = u32::try_from(kept.len()).unwrap_or(0);
    let mut out = new_list.to_be_bytes().to_vec();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&kept);
    let n = out.len().min(done.buffer.len());
    done.buffer.fill(0, done.buffer.len(), 0);
    done.buffer.write_at(0, &out[..n]);
    done.resp.data_len = n;
    done.resp.residual = Residual::of(n, done.buffer.len());
}

struct Writer {
    params: SessionParams,
    digests: Digests,
    stat_sn: u32,
    window: Arc<Window>,
    buf: Vec<u8>,
}

impl Writer {
    fn seq(&mut self, bhs: &mut Bhs) {
        let advance = bhs.advances_stat_sn();
        let (exp, max) = self.window.get();
        if let Some(s) = bhs.seq_mut() {
            s.stat_sn = self.stat_sn;
            s.exp_cmd_sn = exp;
            s.max_cmd_sn = max;
        }
        if advance {
            self.stat_sn = self.stat_sn.wrapping_add(1);
        }
    }

    fn pdu(&mut self, mut bhs: Bhs, data: &[u8]) {
        self.seq(&mut bhs);
        // Lengths are within the 24-bit field by construction.
        let _ = pdu::encode_pdu(&bhs.emit(), &[], data, self.digests, &mut self.buf);
    }

    fn scsi(&mut self, d: &ScsiDone) {
        let resp = &d.resp;
        let (kind, residual) = match resp.residual {
            Residual::None => (ResidualKind::None, 0),
            Residual::Under(n) => (ResidualKind::Underflow, n),
            Residual::Over(n) => (ResidualKind::Overflow, n),
        };
        let read_len = if d.read {
            resp.data_len.min(d.buffer.len())
        } else {
            0
        };
        // §11.7.4: status may ride in the last Data-In only without sense.
        let status_in_data = read_len > 0 && resp.sense.is_none();
        let max_pdu = (self.params.max_xmit_data_segment_length as usize).max(512);
        let burst = (self.params.max_burst_length as usize).max(max_pdu);
        let mut data_sn = 0u32;
        let mut off = 0usize;
        while off < read_len {
            let n = (read_len - off).min(max_pdu).min(burst - off % burst);
            let last = off + n == read_len;
            let end_of_burst = (off + n) % burst == 0;
            let with_status = last && status_in_data;
            let din = Bhs::DataIn(DataIn {
                final_: last || end_of_burst,
                ack: false,
                residual_kind: if with_status {
                    kind
                } else {
                    ResidualKind::None
                },
                status: with_status.then_some(resp.status.0),
                lun: d.lun,
                itt: d.itt,
                ttt: RESERVED_TAG,
                seq: SeqNums::default(),
                data_sn,
                buffer_offset: u32::try_from(off).unwrap_or(u32::MAX),
                residual: if with_status { residual } else { 0 },
            });
            let mut bhs = din;
            self.seq(&mut bhs);
            let buffer = &d.buffer;
            let _ = pdu::encode_pdu_with(&bhs.emit(), n, self.digests, &mut self.buf, |dst| {
                buffer.read_at(off, dst);
            });
            data_sn += 1;
            off += n;
        }
        if status_in_data {
            return;
        }
        let sense = resp.sense_bytes();
        let mut seg = Vec::new();
        if !sense.is_empty() {
            let sl = u16::try_from(sense.len()).unwrap_or(0);
            seg.extend_from_slice(&sl.to_be_bytes());
            seg.extend_from_slice(&sense[..usize::from(sl)]);
        }
        let r = Bhs::ScsiResponse(ScsiResponse {
            residual_kind: kind,
            response: 0,
            status: resp.status.0,
            itt: d.itt,
            snack_tag: 0,
            seq: SeqNums::default(),
            exp_data_sn: if d.read { data_sn } else { d.r2ts },
            bidi_residual: 0,
            residual,
        });
        self.pdu(r, &seg);
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut sink: W,
    mut rx: mpsc::Receiver<Out>,
    window: Arc<Window>,
    params: SessionParams,
    stat_sn: u32,
) -> Res {
    let mut w = Writer {
        params,
        digests: Digests {
            header: params.header_digest,
            data: params.data_digest,
        },
        stat_sn,
        window,
        buf: Vec::with_capacity(64 * 1024),
    };
    let mut close = false;
    while !close {
        let Some(first) = rx.next().await else {
            break;
        };
        let mut msg = Some(first);
        while let Some(m) = msg.take() {
            match m {
                Out::Pdu(bhs, data) => w.pdu(bhs, &data),
                Out::Reject(reason, header) => {
                    let r = Bhs::Reject(Reject {
                        reason,
                        seq: SeqNums::default(),
                        data_sn: 0,
                    });
                    w.pdu(r, header.bytes());
                }
                Out::Scsi(d) => w.scsi(&d),
                Out::Close => {
                    close = true;
                    break;
                }
            }
            if w.buf.len() >= WRITE_BATCH {
                break;
            }
            msg = rx.try_recv().ok();
        }
        if !w.buf.is_empty() {
            sink.write_all(&w.buf).await?;
            w.buf.clear();
        }
        sink.flush().await?;
    }
    rx.close();
    let _ = sink.close().await;
    Ok(())
}
