//! The iSCSI target server: the session table, login over a stream, and
//! hand-over to the full feature phase (the private `connection` module).
//!
//! [`IscsiServer::serve_connection`] runs one TCP (or any byte-stream)
//! connection from its first Login Request to its close. The caller owns
//! the listener and the runtime: spawn one `serve_connection` future per
//! accepted stream.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::task::AtomicWaker;
use futures::FutureExt;
use tgtkit_scsi_core::engine::{NexusId, NexusInfo, Target};

use crate::config::PortalConfig;
use crate::connection::{self, ConnectionSetup};
use crate::login::{LoginMachine, LoginOutcome, LoginResult, SessionKind};
use crate::pdu::{self, Bhs, Digests, PduDecoder};

/// A source of timers, so the library stays runtime-agnostic: the embedder
/// passes its runtime's sleep (for example `tokio::time::sleep`).
pub trait Sleeper: Send + Sync + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The initiator broke the protocol so badly the connection was dropped.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Login failed with the given status (already sent to the initiator).
    #[error("login failed: {0:?}")]
    LoginFailed(crate::login::LoginStatus),
    /// The stream closed before the login completed.
    #[error("connection closed during login")]
    ClosedDuringLogin,
}

/// A configuration the server cannot run with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `targets` and `config.nodes` differ in length.
    #[error("{nodes} target nodes but {targets} engine targets")]
    TargetCount {
        /// Nodes configured.
        nodes: usize,
        /// Engine targets given.
        targets: usize,
    },
    /// Mutual CHAP must not reuse the initiator's secret (RFC 7143 §12.1.3).
    #[error("node {0}: mutual CHAP secret equals the CHAP secret")]
    SameChapSecrets(String),
}

/// Signals from the server (reinstatement, shutdown) to one connection.
#[derive(Default)]
pub(crate) struct ConnSignal {
    /// Drop the connection at once (session reinstated elsewhere).
    pub kill: AtomicBool,
    /// Finish outstanding commands, then close (server shutdown).
    pub shutdown: AtomicBool,
    pub waker: AtomicWaker,
}

impl ConnSignal {
    fn raise(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.waker.wake();
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SessionKey {
    initiator: String,
    isid: [u8; 6],
    node: usize,
}

struct SessionEntry {
    id: u64,
    tsih: u16,
    nexus: NexusId,
    signal: Arc<ConnSignal>,
}

#[derive(Default)]
struct Registry {
    sessions: HashMap<SessionKey, SessionEntry>,
    connections: HashMap<u64, Arc<ConnSignal>>,
    next_tsih: u16,
}

/// A running iSCSI target: one portal group, its nodes, their engines.
pub struct IscsiServer {
    config: Arc<PortalConfig>,
    targets: Vec<Arc<Target>>,
    sleeper: Option<Arc<dyn Sleeper>>,
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
}

impl fmt::Debug for IscsiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IscsiServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The SCSI initiator port name of an iSCSI initiator (RFC 7143 §4.4.1):
/// `<name>,i,0x<ISID in 12 hex digits>`.
#[must_use]
pub fn initiator_port_name(name: &str, isid: &[u8; 6]) -> String {
    let mut s = format!("{name},i,0x");
    for b in isid {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The SCSI target port name (RFC 7143 §4.4.1): `<name>,t,0x<TPGT in 4 hex digits>`.
#[must_use]
pub fn target_port_name(name: &str, tpgt: u16) -> String {
    format!("{name},t,0x{tpgt:04x}")
}

/// The iSCSI TransportID of an initiator port (SPC-4 §7.6.4.6, FORMAT CODE
/// 01b: name, separator and ISID, NUL-terminated, padded to four bytes).
#[must_use]
pub fn transport_id(name: &str, isid: &[u8; 6]) -> Vec<u8> {
    let port = initiator_port_name(name, isid);
    let mut v = vec![0x40 | 0x05, 0, 0, 0];
    v.extend_from_slice(port.as_bytes());
    v.push(0);
    // ADDITIONAL LENGTH is at least 20 and a multiple of four.
    while v.len() % 4 != 0 || v.len() < 24 {
        v.push(0);
    }
    let additional = u16::try_from(v.len() - 4).unwrap_or(u16::MAX);
    v[2..4].copy_from_slice(&additional.to_be_bytes());
    v
}

impl IscsiServer {
    /// A server for `config`, with `targets[i]` the engine behind
    /// `config.nodes[i]`. Without a `sleeper` the target never pings idle
    /// connections.
    ///
    /// # Errors
    ///
    /// [`ServerError`] for inconsistent configuration.
    pub fn new(
        config: PortalConfig,
        targets: Vec<Arc<Target>>,
        sleeper: Option<Arc<dyn Sleeper>>,
    ) -> Result<Arc<Self>, ServerError> {
        if config.nodes.len() != targets.len() {
            return Err(ServerError::TargetCount {
                nodes: config.nodes.len(),
                targets: targets.len(),
            });
        }
        for n in &config.nodes {
            if let (Some(a), Some(b)) = (&n.auth.chap, &n.auth.mutual_chap) {
                if a.secret == b.secret {
                    return Err(ServerError::SameChapSecrets(n.name.clone()));
                }
            }
        }
        Ok(Arc::new(Self {
            config: Arc::new(config),
            targets,
            sleeper,
            registry: Mutex::new(Registry {
                next_tsih: 1,
                ..Registry::default()
            }),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &PortalConfig {
        &self.config
    }

    /// The engine behind node `index`.
    #[must_use]
    pub fn target(&self, index: usize) -> Option<&Arc<Target>> {
        self.targets.get(index)
    }

    /// Number of Normal sessions logged in.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Number of open connections (any phase).
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    /// Ask every connection to finish its outstanding commands and close;
    /// new connections are refused. Await the `serve_connection` futures
    /// (or poll [`IscsiServer::connection_count`]) to know when all are gone.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for s in self.lock().connections.values() {
            s.raise(&s.shutdown);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serve one connection until it closes.
    ///
    /// # Errors
    ///
    /// [`ConnectionError`] when the stream fails or the initiator broke the
    /// protocol; a clean logout returns `Ok`.
    pub async fn serve_connection<S>(self: &Arc<Self>, stream: S) -> Result<(), ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if self.shutting_down.load(Ordering::Acquire) {
            return Ok(());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let signal = Arc::new(ConnSignal::default());
        self.lock().connections.insert(id, Arc::clone(&signal));
        let result = self.run(id, stream, Arc::clone(&signal)).await;
        self.lock().connections.remove(&id);
        result
    }

    async fn run<S>(
        self: &Arc<Self>,
        id: u64,
        stream: S,
        signal: Arc<ConnSignal>,
    ) -> Result<(), ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut reader, mut writer) = stream.split();
        let limits = &self.config.group.limits;
        let mut decoder = PduDecoder::new(limits.max_recv_data_segment_length.max(8192));
        let mut login = LoginMachine::new(Arc::clone(&self.config), 1);
        let mut out = Vec::new();
        // A silent or slow initiator cannot hold a connection in login forever.
        let login_secs = self.config.group.login_timeout_secs;
        let mut deadline = match &self.sleeper {
            Some(s) if login_secs > 0 => {
                Some(s.sleep(Duration::from_secs(u64::from(login_secs))).fuse())
            }
            _ => None,
        };
        let result: Box<LoginResult> = loop {
            let frame = loop {
                match decoder.decode() {
                    Ok(Some(f)) => break f,
                    Ok(None) => {}
                    Err(e) => return Err(ConnectionError::Protocol(e.to_string())),
                }
                let read = reader.read(decoder.spare());
                let n = match deadline.as_mut() {
                    Some(d) => match futures::future::select(read, d).await {
                        futures::future::Either::Left((n, _)) => n?,
                        futures::future::Either::Right(_) => {
                            return Err(ConnectionError::Protocol("login timed out".into()));
                        }
                    },
                    None => read.await?,
                };
                if n == 0 {
                    return Err(ConnectionError::ClosedDuringLogin);
                }
                decoder.filled(n);
                if signal.shutdown.load(Ordering::Acquire) || signal.kill.load(Ordering::Acquire) {
                    return Ok(());
                }
            };
            let Ok(Bhs::LoginRequest(req)) = Bhs::parse(&frame.header) else {
                // RFC 7143 §6.1: only Login Requests before the full feature phase.
                return Err(ConnectionError::Protocol(
                    "non-login PDU during login".into(),
                ));
            };
            let mut reply = login.handle(&req, &frame.data);
            let done = match reply.outcome {
                LoginOutcome::Continue => None,
                LoginOutcome::Failed(status) => {
                    out.clear();
                    encode_login(&reply.header, &reply.data, &mut out)?;
                    writer.write_all(&out).await?;
                    writer.flush().await?;
                    let _ = writer.close().await;
                    return Err(ConnectionError::LoginFailed(status));
                }
                LoginOutcome::Complete(ref r) => Some(r.clone()),
            };
            if let Some(r) = done {
                reply.header.tsih = self.register_tsih(id, &r, &signal);
                out.clear();
                encode_login(&reply.header, &reply.data, &mut out)?;
                writer.write_all(&out).await?;
                writer.flush().await?;
                break r;
            }
            out.clear();
            encode_login(&reply.header, &reply.data, &mut out)?;
            writer.write_all(&out).await?;
            writer.flush().await?;
        };
        drop(deadline);
        tracing::info!(
            initiator = %result.initiator_name,
            kind = ?result.kind,
            "login complete"
        );
        // Digests start with the first PDU after the final Login Response.
        decoder.set_digests(Digests {
            header: result.params.header_digest,
            data: result.params.data_digest,
        });
        decoder.set_max_data_segment(result.params.max_recv_data_segment_length);
        let (target, nexus, node) = match result.kind {
            SessionKind::Normal(i) => {
                let nexus = self
                    .lock()
                    .sessions
                    .values()
                    .find(|s| s.id == id)
                    .map(|s| s.nexus);
                (self.targets.get(i).cloned(), nexus, Some(i))
            }
            SessionKind::Discovery => (None, None, None),
        };
        let setup = ConnectionSetup {
            config: Arc::clone(&self.config),
            login: *result.clone(),
            target,
            nexus,
            node,
            sleeper: self.sleeper.clone(),
            signal: Arc::clone(&signal),
        };
        let r = connection::run(setup, reader, writer, decoder).await;
        // Session end: I_T nexus loss unless a reinstatement took it over.
        if let SessionKind::Normal(i) = result.kind {
            let key = SessionKey {
                initiator: result.initiator_name.to_ascii_lowercase(),
                isid: result.isid,
                node: i,
            };
            let mut reg = self.lock();
            if reg.sessions.get(&key).is_some_and(|s| s.id == id) {
                if let Some(s) = reg.sessions.remove(&key) {
                    drop(reg);
                    if let Some(t) = self.targets.get(i) {
                        t.remove_nexus(s.nexus);
                    }
                }
            }
        }
        r
    }

    /// Register a completed Normal session (reinstating any session with
    /// the same initiator and ISID, RFC 7143 §6.3.5) and return its TSIH.
    fn register_tsih(&self, id: u64, r: &LoginResult, signal: &Arc<ConnSignal>) -> u16 {
        let SessionKind::Normal(node) = r.kind else {
            let mut reg = self.lock();
            return alloc_tsih(&mut reg);
        };
        let Some(target) = self.targets.get(node) else {
            return 0;
        };
        let key = SessionKey {
            initiator: r.initiator_name.to_ascii_lowercase(),
            isid: r.isid,
            node,
        };
        let name = &self.config.nodes[node].name;
        let info = NexusInfo {
            initiator_port: initiator_port_name(&r.initiator_name, &r.isid),
            target_port: target_port_name(name, self.config.group.tpgt),
            relative_port: self.config.group.tpgt.max(1),
            transport_id: transport_id(&r.initiator_name, &r.isid),
        };
        let mut reg = self.lock();
        if let Some(old) = reg.sessions.remove(&key) {
            // Reinstatement: the old session's tasks are aborted and its
            // nexus removed before the new one exists.
            tracing::info!(initiator = %r.initiator_name, "session reinstatement");
            old.signal.raise(&old.signal.kill);
            target.remove_nexus(old.nexus);
        }
        let tsih = alloc_tsih(&mut reg);
        let nexus = target.add_nexus(info);
        reg.sessions.insert(
            key,
            SessionEntry {
                id,
                tsih,
                nexus,
                signal: Arc::clone(signal),
            },
        );
        tsih
    }
}

fn alloc_tsih(reg: &mut Registry) -> u16 {
    loop {
        let t = reg.next_tsih;
        reg.next_tsih = reg.next_tsih.checked_add(1).unwrap_or(1);
        if t != 0 && !reg.sessions.values().any(|s| s.tsih == t) {
            return t;
        }
    }
}

fn encode_login(
    header: &crate::pdu::LoginResponse,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ConnectionError> {
    pdu::encode_pdu(
        &Bhs::LoginResponse(*header).emit(),
        &[],
        data,
        Digests::default(),
        out,
    )
    .map_err(|e| ConnectionError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spc4_iscsi_transport_id_format_01b() {
        // SPC-4 §7.6.4.6 table 508: byte 0 = 0x45 (format 01b, protocol 5).
        let t = transport_id("iqn.a", &[0x23, 0xd0, 0, 0, 0, 1]);
        assert_eq!(t[0], 0x45);
        assert_eq!(t.len() % 4, 0);
        assert_eq!(usize::from(u16::from_be_bytes([t[2], t[3]])), t.len() - 4);
        let name = b"iqn.a,i,0x23d000000001\0";
        assert_eq!(&t[4..4 + name.len()], name);
        assert!(t.len() >= 24);
    }

    #[test]
    fn accepts_rfc7143_port_names() {
        assert_eq!(
            initiator_port_name("iqn.x", &[0x80, 0x12, 0x34, 0x56, 0, 1]),
            "iqn.x,i,0x801234560001"
        );
        assert_eq!(target_port_name("iqn.t", 1), "iqn.t,t,0x0001");
    }
}
