//! A blocking xenstore client that multiplexes requests and watch events
//! over one connection.
//!
//! A reader thread owns the receiving half: it decodes each message,
//! sends `XS_WATCH_EVENT`s to the watch channel, and hands every other
//! message to the request that carries its `req_id`. Requests may be made
//! from any thread at once; each waits only for its own reply.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tracing::{debug, warn};

use super::wire::{
    self, Message, MsgType, WatchEvent, WireError, XsErrno, HEADER_LEN, PAYLOAD_MAX,
};

/// The kernel's xenbus device (`xenbus_dev_frontend`), the usual way in.
pub const XENBUS_DEV: &str = "/dev/xen/xenbus";
/// xenstored's unix socket (dom0 with a local daemon).
pub const XENSTORED_SOCKET: &str = "/var/run/xenstored/socket";

/// A xenstore request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XsError {
    /// xenstored answered `XS_ERROR`.
    #[error("xenstore: {0}")]
    Daemon(XsErrno),
    /// The reply was not what the request calls for.
    #[error("xenstore: unexpected {0:?} reply")]
    UnexpectedReply(MsgType),
    /// Malformed bytes (from the peer, or a request too long to send).
    #[error("xenstore: {0}")]
    Wire(#[from] WireError),
    /// The connection failed.
    #[error("xenstore: {0}")]
    Io(#[from] io::Error),
    /// The connection is closed (EOF or an earlier error).
    #[error("xenstore: connection closed")]
    Closed,
}

impl XsError {
    /// Whether this is xenstored's `ENOENT` (the node does not exist).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Daemon(XsErrno::NoEnt))
    }
}

type Reply = Result<Message, XsError>;

#[derive(Default)]
struct Pending {
    waiting: HashMap<u32, SyncSender<Reply>>,
    closed: bool,
}

/// A xenstore connection.
pub struct Xenstore {
    writer: Mutex<Box<dyn Write + Send>>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU32,
    _reader: JoinHandle<()>,
}

impl std::fmt::Debug for Xenstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xenstore").finish_non_exhaustive()
    }
}

impl Xenstore {
    /// Connect through [`XENBUS_DEV`], else [`XENSTORED_SOCKET`]; watch
    /// events arrive on the returned receiver.
    ///
    /// # Errors
    ///
    /// The error of the last attempt.
    pub fn open() -> Result<(Self, Receiver<WatchEvent>), XsError> {
        match Self::open_device(XENBUS_DEV) {
            Ok(x) => Ok(x),
            Err(e) => {
                debug!(error = %e, "xenstore: {XENBUS_DEV} unavailable, trying the socket");
                Self::open_socket(XENSTORED_SOCKET)
            }
        }
    }

    /// Connect through a xenbus character device.
    ///
    /// # Errors
    ///
    /// [`XsError::Io`].
    pub fn open_device(path: impl AsRef<Path>) -> Result<(Self, Receiver<WatchEvent>), XsError> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let r = f.try_clone()?;
        Ok(Self::over(Box::new(r), Box::new(f)))
    }

    /// Connect to xenstored's unix socket.
    ///
    /// # Errors
    ///
    /// [`XsError::Io`].
    pub fn open_socket(path: impl AsRef<Path>) -> Result<(Self, Receiver<WatchEvent>), XsError> {
        let s = std::os::unix::net::UnixStream::connect(path)?;
        let r = s.try_clone()?;
        Ok(Self::over(Box::new(r), Box::new(s)))
    }

    /// A client over any byte stream (its two halves), e.g. a fake
    /// xenstored in tests.
    #[must_use]
    pub fn over(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
    ) -> (Self, Receiver<WatchEvent>) {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (watch_tx, watch_rx) = mpsc::channel();
        let p = Arc::clone(&pending);
        let handle = std::thread::Builder::new()
            .name("xenstore-reader".into())
            .spawn(move || read_loop(reader, &p, &watch_tx))
            .expect("spawn the xenstore reader thread");
        (
            Self {
                writer: Mutex::new(writer),
                pending,
                next_id: AtomicU32::new(1),
                _reader: handle,
            },
            watch_rx,
        )
    }

    fn request(&self, mut msg: Message) -> Result<Message, XsError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        msg.req_id = id;
        let mut bytes = Vec::with_capacity(HEADER_LEN + msg.payload.len());
        msg.encode(&mut bytes)?;
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut p = lock(&self.pending);
            if p.closed {
                return Err(XsError::Closed);
            }
            p.waiting.insert(id, tx);
        }
        let sent = {
            let mut w = lock(&self.writer);
            w.write_all(&bytes).and_then(|()| w.flush())
        };
        if let Err(e) = sent {
            lock(&self.pending).waiting.remove(&id);
            return Err(e.into());
        }
        let reply = rx.recv().map_err(|_| XsError::Closed)??;
        if reply.msg_type == MsgType::ERROR {
            return Err(XsError::Daemon(wire::parse_error(&reply.payload)));
        }
        if reply.msg_type != msg.msg_type {
            return Err(XsError::UnexpectedReply(reply.msg_type));
        }
        Ok(reply)
    }

    fn op(
        &self,
        ty: MsgType,
        tx: u32,
        parts: &[&[u8]],
        last_nul: bool,
    ) -> Result<Message, XsError> {
        self.request(Message::request(ty, tx, parts, last_nul)?)
    }

    /// `XS_READ`: the value of `path`.
    ///
    /// # Errors
    ///
    /// [`XsError`] (`Daemon(NoEnt)` when it does not exist).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        self.read_tx(0, path)
    }

    /// `XS_READ` as a UTF-8 string (lossy), trailing NULs trimmed.
    ///
    /// # Errors
    ///
    /// As [`Xenstore::read`].
    pub fn read_string(&self, path: &str) -> Result<String, XsError> {
        let v = self.read(path)?;
        let v = v.strip_suffix(&[0]).unwrap_or(&v);
        Ok(String::from_utf8_lossy(v).into_owned())
    }

    /// `XS_WRITE` of `value` at `path` (creating parents).
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn write(&self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.write_tx(0, path, value)
    }

    /// `XS_MKDIR`.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.op(MsgType::MKDIR, 0, &[path.as_bytes()], true)
            .map(drop)
    }

    /// `XS_RM` (the node and its children).
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        self.rm_tx(0, path)
    }

    /// `XS_DIRECTORY`: the names of `path`'s children.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.directory_tx(0, path)
    }

    /// `XS_GET_PERMS`: the permission strings (`n0`, `r5`, ...).
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn get_perms(&self, path: &str) -> Result<Vec<String>, XsError> {
        let m = self.op(MsgType::GET_PERMS, 0, &[path.as_bytes()], true)?;
        Ok(to_strings(&m))
    }

    /// `XS_SET_PERMS`: owner first (`n0`), then one entry per domain.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn set_perms(&self, path: &str, perms: &[&str]) -> Result<(), XsError> {
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(perms.iter().map(|p| p.as_bytes()));
        self.op(MsgType::SET_PERMS, 0, &parts, true).map(drop)
    }

    /// `XS_WATCH`: events for `path` and everything below it arrive on the
    /// watch channel with `token` (xenstored fires once at registration).
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn watch(&self, path: &str, token: &str) -> Result<(), XsError> {
        self.op(
            MsgType::WATCH,
            0,
            &[path.as_bytes(), token.as_bytes()],
            true,
        )
        .map(drop)
    }

    /// `XS_UNWATCH`.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn unwatch(&self, path: &str, token: &str) -> Result<(), XsError> {
        self.op(
            MsgType::UNWATCH,
            0,
            &[path.as_bytes(), token.as_bytes()],
            true,
        )
        .map(drop)
    }

    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn domain_path(&self, domid: u32) -> Result<String, XsError> {
        let d = domid.to_string();
        let m = self.op(MsgType::GET_DOMAIN_PATH, 0, &[d.as_bytes()], true)?;
        Ok(to_strings(&m).into_iter().next().unwrap_or_default())
    }

    /// `XS_TRANSACTION_START`.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn transaction(&self) -> Result<Transaction<'_>, XsError> {
        let m = self.op(MsgType::TRANSACTION_START, 0, &[b""], true)?;
        let id = to_strings(&m)
            .first()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or(WireError::BadPayload(MsgType::TRANSACTION_START))?;
        Ok(Transaction {
            xs: self,
            id,
            done: false,
        })
    }

    /// Run `f` in a transaction and commit, retrying on `EAGAIN`.
    ///
    /// # Errors
    ///
    /// The first error of `f` (the transaction is aborted) or of the commit.
    pub fn in_transaction<T>(
        &self,
        mut f: impl FnMut(&Transaction<'_>) -> Result<T, XsError>,
    ) -> Result<T, XsError> {
        loop {
            let mut t = self.transaction()?;
            let v = f(&t)?;
            match t.end(true) {
                Ok(()) => return Ok(v),
                Err(XsError::Daemon(XsErrno::Again)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn read_tx(&self, tx: u32, path: &str) -> Result<Vec<u8>, XsError> {
        Ok(self
            .op(MsgType::READ, tx, &[path.as_bytes()], true)?
            .payload)
    }

    fn write_tx(&self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.op(MsgType::WRITE, tx, &[path.as_bytes(), value], false)
            .map(drop)
    }

    fn rm_tx(&self, tx: u32, path: &str) -> Result<(), XsError> {
        self.op(MsgType::RM, tx, &[path.as_bytes()], true).map(drop)
    }

    fn directory_tx(&self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        let m = self.op(MsgType::DIRECTORY, tx, &[path.as_bytes()], true)?;
        Ok(to_strings(&m))
    }
}

/// An open transaction; dropped without [`Transaction::end`], it aborts.
pub struct Transaction<'a> {
    xs: &'a Xenstore,
    id: u32,
    done: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("id", &self.id).finish()
    }
}

impl Transaction<'_> {
    /// The transaction id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `XS_READ` inside the transaction.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        self.xs.read_tx(self.id, path)
    }

    /// `XS_WRITE` inside the transaction.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn write(&self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.xs.write_tx(self.id, path, value)
    }

    /// `XS_RM` inside the transaction.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        self.xs.rm_tx(self.id, path)
    }

    /// `XS_DIRECTORY` inside the transaction.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.xs.directory_tx(self.id, path)
    }

    /// `XS_TRANSACTION_END`: commit (`T`) or abort (`F`). A commit that
    /// conflicted fails with `Daemon(Again)`.
    ///
    /// # Errors
    ///
    /// [`XsError`].
    pub fn end(&mut self, commit: bool) -> Result<(), XsError> {
        self.done = true;
        let arg: &[u8] = if commit { b"T" } else { b"F" };
        self.xs
            .op(MsgType::TRANSACTION_END, self.id, &[arg], true)
            .map(drop)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.end(false);
        }
    }
}

fn to_strings(m: &Message) -> Vec<String> {
    m.strings()
        .into_iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_loop(
    mut reader: Box<dyn Read + Send>,
    pending: &Mutex<Pending>,
    watches: &Sender<WatchEvent>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(HEADER_LEN + PAYLOAD_MAX);
    let mut chunk = vec![0u8; HEADER_LEN + PAYLOAD_MAX];
    let err = loop {
        match wire::decode(&buf) {
            Ok(Some((msg, used))) => {
                buf.drain(..used);
                dispatch(msg, pending, watches);
                continue;
            }
            Ok(None) => {}
            Err(e) => break XsError::Wire(e),
        }
        match reader.read(&mut chunk) {
            Ok(0) => break XsError::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break XsError::Io(e),
        }
    };
    debug!(error = %err, "xenstore: reader stops");
    let mut p = lock(pending);
    p.closed = true;
    // Dropping the senders wakes every waiting request with `Closed`.
    p.waiting.clear();
}

fn dispatch(msg: Message, pending: &Mutex<Pending>, watches: &Sender<WatchEvent>) {
    if msg.msg_type == MsgType::WATCH_EVENT {
        match WatchEvent::parse(&msg.payload) {
            Ok(ev) => {
                let _ = watches.send(ev);
            }
            Err(e) => warn!(error = %e, "xenstore: dropping a malformed watch event"),
        }
        return;
    }
    let waiter = lock(pending).waiting.remove(&msg.req_id);
    match waiter {
        Some(tx) => {
            let _ = tx.send(Ok(msg));
        }
        None => warn!(req_id = msg.req_id, ty = ?msg.msg_type, "xenstore: reply to no request"),
    }
}
