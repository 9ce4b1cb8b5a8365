//! An in-memory xenstored for tests (feature `test-utils`): a tree of
//! nodes, watches that fire on writes and removals (and once when set),
//! trivially serialised transactions, served over a unix socket pair.
//!
//! Watch events are sent *before* the reply of the request that caused
//! them, as a real xenstored may, so a client must demultiplex.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use super::client::Xenstore;
use super::wire::{self, Message, MsgType, WatchEvent, XsErrno};

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Vec<u8>>,
    watches: Vec<(String, String)>,
    out: Option<UnixStream>,
    next_tx: u32,
    conflicts: u32,
    log: Vec<MsgType>,
}

/// Handle on the fake daemon: inspect and change the tree as a toolstack
/// or frontend would (changes fire watches).
#[derive(Clone)]
pub struct FakeXenstored {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeXenstored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeXenstored").finish_non_exhaustive()
    }
}

fn under(path: &str, watch: &str) -> bool {
    path == watch || (path.starts_with(watch) && path.as_bytes().get(watch.len()) == Some(&b'/'))
}

impl State {
    fn fire(&mut self, path: &str) {
        let hits: Vec<String> = self
            .watches
            .iter()
            .filter(|(w, _)| under(path, w) || under(w, path))
            .map(|(_, t)| t.clone())
            .collect();
        for token in hits {
            self.event(path, &token);
        }
    }

    fn event(&mut self, path: &str, token: &str) {
        let msg = Message::request(
            MsgType::WATCH_EVENT,
            0,
            &[path.as_bytes(), token.as_bytes()],
            true,
        )
        .expect("short event");
        self.send(&msg);
    }

    fn send(&mut self, msg: &Message) {
        let mut b = Vec::new();
        if msg.encode(&mut b).is_ok() {
            if let Some(s) = self.out.as_mut() {
                let _ = s.write_all(&b);
            }
        }
    }

    fn write(&mut self, path: &str, value: &[u8]) {
        let mut p = String::new();
        for part in path.trim_start_matches('/').split('/') {
            p.push('/');
            p.push_str(part);
            self.nodes.entry(p.clone()).or_default();
        }
        self.nodes.insert(path.to_owned(), value.to_vec());
        self.fire(path);
    }

    fn rm(&mut self, path: &str) -> bool {
        let keys: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| under(k, path))
            .cloned()
            .collect();
        for k in &keys {
            self.nodes.remove(k);
        }
        if !keys.is_empty() {
            self.fire(path);
        }
        !keys.is_empty()
    }

    fn children(&self, path: &str) -> Option<Vec<String>> {
        self.nodes.get(path)?;
        let prefix = format!("{}/", path.trim_end_matches('/'));
        Some(
            self.nodes
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|rest| !rest.contains('/'))
                .map(str::to_owned)
                .collect(),
        )
    }

    fn handle(&mut self, m: &Message) -> Result<Vec<u8>, XsErrno> {
        self.log.push(m.msg_type);
        let s: Vec<String> = m
            .strings()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let arg = |i: usize| s.get(i).cloned().ok_or(XsErrno::Inval);
        let nul = |v: &str| format!("{v}\0").into_bytes();
        match m.msg_type {
            MsgType::READ => self.nodes.get(&arg(0)?).cloned().ok_or(XsErrno::NoEnt),
            MsgType::WRITE => {
                let split = m
                    .payload
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or(XsErrno::Inval)?;
                let path = String::from_utf8_lossy(&m.payload[..split]).into_owned();
                self.write(&path, &m.payload[split + 1..]);
                Ok(nul("OK"))
            }
            MsgType::MKDIR => {
                let p = arg(0)?;
                if !self.nodes.contains_key(&p) {
                    self.write(&p, b"");
                }
                Ok(nul("OK"))
            }
            MsgType::RM => {
                self.rm(&arg(0)?);
                Ok(nul("OK"))
            }
            MsgType::DIRECTORY => {
                let c = self.children(&arg(0)?).ok_or(XsErrno::NoEnt)?;
                Ok(c.iter().flat_map(|n| nul(n)).collect())
            }
            MsgType::GET_PERMS => {
                self.nodes.get(&arg(0)?).ok_or(XsErrno::NoEnt)?;
                Ok(nul("n0"))
            }
            MsgType::SET_PERMS => {
                self.nodes.get(&arg(0)?).ok_or(XsErrno::NoEnt)?;
                Ok(nul("OK"))
            }
            MsgType::WATCH => {
                let (p, t) = (arg(0)?, arg(1)?);
                self.watches.push((p.clone(), t.clone()));
                self.event(&p, &t);
                Ok(nul("OK"))
            }
            MsgType::UNWATCH => {
                let (p, t) = (arg(0)?, arg(1)?);
                let before = self.watches.len();
                self.watches.retain(|(wp, wt)| !(*wp == p && *wt == t));
                if before == self.watches.len() {
                    return Err(XsErrno::NoEnt);
                }
                Ok(nul("OK"))
            }
            MsgType::GET_DOMAIN_PATH => Ok(nul(&format!("/local/domain/{}", arg(0)?))),
            MsgType::TRANSACTION_START => {
                self.next_tx += 1;
                Ok(nul(&self.next_tx.to_string()))
            }
            MsgType::TRANSACTION_END => {
                if arg(0)? == "T" && self.conflicts > 0 {
                    self.conflicts -= 1;
                    return Err(XsErrno::Again);
                }
                Ok(nul("OK"))
            }
            _ => Err(XsErrno::Inval),
        }
    }
}

impl FakeXenstored {
    /// Start a daemon and a [`Xenstore`] client connected to it.
    ///
    /// # Panics
    ///
    /// If the socket pair or the thread cannot be created.
    #[must_use]
    pub fn start() -> (Self, Xenstore, std::sync::mpsc::Receiver<WatchEvent>) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let state = Arc::new(Mutex::new(State {
            out: Some(ours.try_clone().expect("clone")),
            ..State::default()
        }));
        let st = Arc::clone(&state);
        std::thread::spawn(move || serve(ours, &st));
        let r = theirs.try_clone().expect("clone");
        let (xs, rx) = Xenstore::over(Box::new(r), Box::new(theirs));
        (Self { state }, xs, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write a node (fires watches).
    pub fn write(&self, path: &str, value: &str) {
        self.lock().write(path, value.as_bytes());
    }

    /// Remove a node and its children (fires watches).
    pub fn rm(&self, path: &str) {
        self.lock().rm(path);
    }

    /// A node's value.
    #[must_use]
    pub fn read(&self, path: &str) -> Option<String> {
        self.lock()
            .nodes
            .get(path)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Make the next `n` transaction commits fail with `EAGAIN`.
    pub fn conflict_next(&self, n: u32) {
        self.lock().conflicts = n;
    }

    /// Types of the requests received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<MsgType> {
        self.lock().log.clone()
    }

    /// Send raw bytes to the client (to test its handling of garbage).
    pub fn send_raw(&self, bytes: &[u8]) {
        if let Some(s) = self.lock().out.as_mut() {
            let _ = s.write_all(bytes);
        }
    }

    /// Close the connection.
    pub fn close(&self) {
        if let Some(s) = self.lock().out.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn serve(mut sock: UnixStream, state: &Mutex<State>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match wire::decode(&buf) {
            Ok(Some((m, used))) => {
                buf.drain(..used);
                let mut st = state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (ty, payload) = match st.handle(&m) {
                    Ok(p) => (m.msg_type, p),
                    Err(e) => (MsgType::ERROR, format!("{e}\0").into_bytes()),
                };
                st.send(&Message {
                    msg_type: ty,
                    req_id: m.req_id,
                    tx_id: m.tx_id,
                    payload,
                });
                continue;
            }
            Ok(None) => {}
            Err(_) => return,
        }
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
