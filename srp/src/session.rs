//! A target-side SRP session, sans-I/O: information units in
//! ([`Session::handle_iu`]), information units out
//! ([`Session::poll_transmit`]) and events for the embedder
//! ([`Session::poll_event`]), with no I/O and no clock (the shape of
//! quinn-proto's `Connection`).
//!
//! It negotiates the login (IU lengths and buffer formats itself; the
//! multichannel action and access control by the embedder, through
//! [`Session::accept_login`] / [`Session::reject_login`]), keeps the request-limit credits (each `SRP_CMD` and
//! `SRP_TSK_MGMT` spends one, each `SRP_RSP` returns one), tracks the tags
//! in flight (a second command with a tag in flight is answered OVERLAPPED
//! COMMANDS ATTEMPTED, a request beyond the credits BUSY), maps task
//! management to the engine's functions ([`TaskFunction::to_engine`],
//! [`tmf_rsp_code`]) and handles logout both ways. What a data descriptor's
//! address means is the transport's business ([`MemoryResolver`]).
//!
//! ```
//! use tgtkit_srp::session::{Event, ExistingChannels, Session, SessionConfig};
//! use tgtkit_srp::login::LOGIN_REQ_LEN;
//! let mut s = Session::new(SessionConfig::default());
//! let mut login = [0u8; LOGIN_REQ_LEN];
//! login[16..20].copy_from_slice(&1024u32.to_be_bytes()); // req_it_iu_len
//! login[24..26].copy_from_slice(&6u16.to_be_bytes()); // direct + indirect
//! s.handle_iu(&login).unwrap();
//! assert!(matches!(s.poll_event(), Some(Event::Login { .. })));
//! s.accept_login(ExistingChannels::None).unwrap();
//! let rsp = s.poll_transmit().unwrap();
//! assert_eq!(rsp[0], tgtkit_srp::login::OP_LOGIN_RSP);
//! assert_eq!(s.credits(), SessionConfig::default().credits);
//! ```

use std::collections::{HashSet, VecDeque};

use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{TmFunction, TmfResponse};
use tgtkit_scsi_core::sense::{Asc, Sense, SenseFormat, SenseKey};
use zerocopy::IntoBytes;

use crate::cmd::Command;
use crate::desc::{DataDesc, BUF_FORMAT_DIRECT, BUF_FORMAT_INDIRECT};
use crate::error::DecodeError;
use crate::iu::Iu;
use crate::login::{LoginRej, LoginRsp, RejectReason, LOGIN_REQ_LEN};
use crate::logout::TLogout;
use crate::rsp::{Residual, Response};
use crate::tsk_mgmt::TaskFunction;

/// SCSI status BUSY.
const BUSY: u8 = 0x08;
/// SCSI status CHECK CONDITION.
const CHECK_CONDITION: u8 = 0x02;

/// What the target offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest initiator-to-target IU accepted (at least 64).
    pub max_it_iu_len: u32,
    /// Largest target-to-initiator IU sent.
    pub max_ti_iu_len: u32,
    /// Buffer formats supported (`BUF_FORMAT_DIRECT | BUF_FORMAT_INDIRECT`).
    pub buf_fmt: u16,
    /// Request-limit credits granted at login (requests in flight at most).
    pub credits: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_it_iu_len: 2116, // Linux ib_srpt's default srp_max_req_size
            max_ti_iu_len: 2116,
            buf_fmt: BUF_FORMAT_DIRECT | BUF_FORMAT_INDIRECT,
            credits: 32,
        }
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting for `SRP_LOGIN_REQ`.
    AwaitingLogin,
    /// A login passed the session's own checks and waits for the
    /// embedder's [`Session::accept_login`] or [`Session::reject_login`].
    LoginPending,
    /// Logged in: requests flow.
    Active,
    /// Logged out (either side); nothing more is accepted.
    LoggedOut,
}

/// The multichannel action a login asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultiChannel {
    /// Terminate the initiator's other channels to this target port.
    Single,
    /// Keep them.
    Multi,
}

/// What became of the initiator's other channels to this target port, as
/// the `SRP_LOGIN_RSP` reports it (SRP r16a table 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExistingChannels {
    /// There were none.
    None,
    /// They were terminated (the login asked [`MultiChannel::Single`]).
    Terminated,
    /// They were kept (the login asked [`MultiChannel::Multi`]).
    Maintained,
}

/// What the embedder must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A login passed the IU-length and buffer-format checks: apply the
    /// multichannel action to the initiator's other channels (and any
    /// access control), then [`Session::accept_login`] or
    /// [`Session::reject_login`].
    Login {
        /// The initiator port identifier (the I_T nexus's initiator).
        initiator_port_id: [u8; 16],
        /// The target port identifier.
        target_port_id: [u8; 16],
        /// The multichannel action requested.
        multichannel: MultiChannel,
    },
    /// A SCSI command to run; answer with [`Session::respond`].
    Command(Command),
    /// A task management request; answer with [`Session::respond_tmf`].
    TaskManagement {
        /// Tag of this request.
        tag: [u8; 8],
        /// Logical unit.
        lun: [u8; 8],
        /// The function.
        function: TaskFunction,
        /// The task it names (ABORT TASK).
        task_tag: [u8; 8],
    },
    /// The initiator logged out: end every task of this session.
    Logout,
}

/// A protocol error: the IU was not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The bytes are not a valid IU.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An IU other than `SRP_LOGIN_REQ` before login.
    #[error("IU {0:#04x} before login")]
    NotLoggedIn(u8),
    /// The session is logged out.
    #[error("session is logged out")]
    LoggedOut,
    /// An IU a target never receives (a response, a second login).
    #[error("unexpected IU {0:#04x}")]
    Unexpected(u8),
    /// An answer for a tag that is not in flight.
    #[error("tag {0:02x?} is not in flight")]
    UnknownTag([u8; 8]),
    /// `accept_login` or `reject_login` with no login pending.
    #[error("no login is pending")]
    NoLoginPending,
}

/// How a transport turns a data descriptor into memory: an RDMA region,
/// a grant reference, a buffer of its own. Indirect tables the IU lists
/// only in part are the resolver's to fetch. [`crate::engine::LocalMemory`]
/// is one, over memory in this process.
pub trait MemoryResolver {
    /// Why a descriptor cannot be resolved.
    type Error: std::fmt::Display;

    /// The buffer `desc` names in command IU `iu`; for data-out
    /// (`to_device`) it holds the initiator's data.
    ///
    /// # Errors
    ///
    /// A descriptor the transport cannot map (bad key, out of range).
    fn resolve(
        &self,
        desc: &DataDesc,
        iu: &[u8],
        to_device: bool,
    ) -> Result<DataBuffer, Self::Error>;

    /// Deliver the first `len` bytes of data-in `buf` to the memory `desc`
    /// names (an RDMA WRITE). The default does nothing: for a resolver
    /// whose buffers are the initiator's memory itself.
    ///
    /// # Errors
    ///
    /// The transfer failed.
    fn deliver(&self, desc: &DataDesc, buf: &DataBuffer, len: usize) -> Result<(), Self::Error> {
        let _ = (desc, buf, len);
        Ok(())
    }
}

impl<R: MemoryResolver + ?Sized> MemoryResolver for std::sync::Arc<R> {
    type Error = R::Error;

    fn resolve(
        &self,
        desc: &DataDesc,
        iu: &[u8],
        to_device: bool,
    ) -> Result<DataBuffer, Self::Error> {
        (**self).resolve(desc, iu, to_device)
    }

    fn deliver(&self, desc: &DataDesc, buf: &DataBuffer, len: usize) -> Result<(), Self::Error> {
        (**self).deliver(desc, buf, len)
    }
}

/// The SRP response code (SRP r16a table 24) of an engine TMF answer.
#[must_use]
pub fn tmf_rsp_code(r: TmfResponse) -> u8 {
    match r {
        // SAM-5: an ABORT TASK naming no task completes.
        TmfResponse::Complete | TmfResponse::TaskNotFound => 0x00,
        TmfResponse::NotSupported => 0x04,
        TmfResponse::Rejected => 0x05,
        TmfResponse::Succeeded => 0x08,
        TmfResponse::IncorrectLun => 0x09,
    }
}

impl TaskFunction {
    /// The engine's function for this SRP function (`task_tag` for ABORT
    /// TASK, as a big-endian number); `None` for codes SRP does not define.
    #[must_use]
    pub fn to_engine(self, task_tag: [u8; 8]) -> Option<TmFunction> {
        Some(match self {
            Self::ABORT_TASK => TmFunction::AbortTask {
                tag: u64::from_be_bytes(task_tag),
            },
            Self::ABORT_TASK_SET => TmFunction::AbortTaskSet,
            Self::CLEAR_TASK_SET => TmFunction::ClearTaskSet,
            Self::LUN_RESET => TmFunction::LogicalUnitReset,
            Self::CLEAR_ACA => TmFunction::ClearAca,
            _ => return None,
        })
    }
}

/// One SRP channel's target side.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    pending: Option<crate::login::LoginReq>,
    max_it: usize,
    credits: u32,
    in_flight: HashSet<[u8; 8]>,
    next_target_tag: u64,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Session {
    /// A session waiting for its login.
    #[must_use]
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            state: State::AwaitingLogin,
            pending: None,
            max_it: LOGIN_REQ_LEN,
            credits: 0,
            in_flight: HashSet::new(),
            next_target_tag: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Where the session is.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// Credits the initiator holds (requests it may still send).
    #[must_use]
    pub fn credits(&self) -> u32 {
        self.credits
    }

    /// Requests answered by neither side yet.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next IU to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Take one IU from the initiator.
    ///
    /// # Errors
    ///
    /// [`SessionError`]: the IU is malformed or out of place; nothing was
    /// queued for it (the transport decides whether to drop the channel).
    pub fn handle_iu(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        match self.state {
            State::LoggedOut => return Err(SessionError::LoggedOut),
            State::LoginPending => {
                return Err(SessionError::NotLoggedIn(
                    bytes.first().copied().unwrap_or(0),
                ))
            }
            State::AwaitingLogin => {
                return match Iu::decode(bytes, self.config.max_it_iu_len as usize)? {
                    Iu::LoginReq(req) => {
                        self.login(&req);
                        Ok(())
                    }
                    _ => Err(SessionError::NotLoggedIn(bytes[0])),
                }
            }
            State::Active => {}
        }
        match Iu::decode(bytes, self.max_it)? {
            Iu::Cmd(cmd) => {
                if let Some(answer) = self.admit(cmd.tag) {
                    self.transmit.push_back(answer.encode());
                } else {
                    self.events.push_back(Event::Command(cmd));
                }
            }
            Iu::TskMgmt(t) => {
                if let Some(answer) = self.admit(t.tag) {
                    self.transmit.push_back(answer.encode());
                } else {
                    self.events.push_back(Event::TaskManagement {
                        tag: t.tag,
                        lun: t.lun,
                        function: t.function(),
                        task_tag: t.task_tag,
                    });
                }
            }
            Iu::ILogout(_) => {
                self.state = State::LoggedOut;
                self.in_flight.clear();
                self.events.push_back(Event::Logout);
            }
            // Acknowledgements of what we sent: nothing to do.
            Iu::CredRsp(_) | Iu::AerRsp(_) => {}
            _ => return Err(SessionError::Unexpected(bytes[0])),
        }
        Ok(())
    }

    fn login(&mut self, req: &crate::login::LoginReq) {
        let asked = req.req_it_iu_len.get();
        let formats = req.req_buf_fmt.get();
        let reject = if (asked as usize) < LOGIN_REQ_LEN || asked > self.config.max_it_iu_len {
            Some(RejectReason::REQ_IT_IU_LENGTH_TOO_LARGE)
        } else if formats != 0 && formats & self.config.buf_fmt == 0 {
            Some(RejectReason::UNSUPPORTED_DESCRIPTOR_FORMAT)
        } else {
            None
        };
        if let Some(reason) = reject {
            let rej = LoginRej::new(req.tag, reason, self.config.buf_fmt);
            self.transmit.push_back(rej.as_bytes().to_vec());
            return;
        }
        self.pending = Some(*req);
        self.state = State::LoginPending;
        self.events.push_back(Event::Login {
            initiator_port_id: req.initiator_port_id,
            target_port_id: req.target_port_id,
            multichannel: if req.req_flags & 3 == 1 {
                MultiChannel::Multi
            } else {
                MultiChannel::Single
            },
        });
    }

    /// Accept the pending login: `SRP_LOGIN_RSP` with the credits, the IU
    /// lengths and what became of the initiator's other channels.
    ///
    /// # Errors
    ///
    /// [`SessionError::NoLoginPending`].
    pub fn accept_login(&mut self, existing: ExistingChannels) -> Result<(), SessionError> {
        let req = self.pending.take().ok_or(SessionError::NoLoginPending)?;
        let asked = req.req_it_iu_len.get();
        self.max_it = asked as usize;
        self.credits = self.config.credits;
        self.state = State::Active;
        let mut rsp = LoginRsp::new(
            req.tag,
            self.config.credits,
            asked,
            self.config.max_ti_iu_len,
            self.config.buf_fmt,
        );
        rsp.rsp_flags = match existing {
            ExistingChannels::None => 0,
            ExistingChannels::Terminated => 1,
            ExistingChannels::Maintained => 2,
        };
        self.transmit.push_back(rsp.as_bytes().to_vec());
        Ok(())
    }

    /// Refuse the pending login for `reason` (an ACL, a channel limit); the
    /// session waits for another login.
    ///
    /// # Errors
    ///
    /// [`SessionError::NoLoginPending`].
    pub fn reject_login(&mut self, reason: RejectReason) -> Result<(), SessionError> {
        let req = self.pending.take().ok_or(SessionError::NoLoginPending)?;
        self.state = State::AwaitingLogin;
        let rej = LoginRej::new(req.tag, reason, self.config.buf_fmt);
        self.transmit.push_back(rej.as_bytes().to_vec());
        Ok(())
    }

    /// Spend a credit on request `tag`; `Some(answer)` if it is refused at
    /// once (no credit: BUSY; a tag in flight: OVERLAPPED COMMANDS).
    fn admit(&mut self, tag: [u8; 8]) -> Option<Response> {
        if self.credits == 0 {
            // A request beyond the limit returns no credit: it had none.
            return Some(Response::scsi(tag, 0, BUSY, None));
        }
        self.credits -= 1;
        if !self.in_flight.insert(tag) {
            self.credits += 1;
            let sense = Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::OVERLAPPED_COMMANDS_ATTEMPTED,
            );
            let mut buf = vec![0u8; sense.encoded_len(SenseFormat::Fixed)];
            let n = sense.encode(SenseFormat::Fixed, &mut buf);
            buf.truncate(n);
            return Some(Response::scsi(tag, 1, CHECK_CONDITION, Some(buf)));
        }
        None
    }

    fn finish(&mut self, tag: [u8; 8]) -> Result<(), SessionError> {
        if self.state != State::Active {
            return Err(SessionError::LoggedOut);
        }
        if !self.in_flight.remove(&tag) {
            return Err(SessionError::UnknownTag(tag));
        }
        self.credits += 1;
        Ok(())
    }

    /// Answer command `tag` with `status`, `sense` (cut to fit the
    /// negotiated target-to-initiator IU length) and residuals; returns its
    /// credit.
    ///
    /// # Errors
    ///
    /// [`SessionError::UnknownTag`] if `tag` is not in flight.
    pub fn respond(
        &mut self,
        tag: [u8; 8],
        status: u8,
        sense: Option<&[u8]>,
        data_out: Residual,
        data_in: Residual,
    ) -> Result<(), SessionError> {
        self.finish(tag)?;
        let room = (self.config.max_ti_iu_len as usize).saturating_sub(crate::rsp::RSP_LEN);
        let mut r = Response::scsi(
            tag,
            1,
            status,
            sense.map(|s| s[..s.len().min(room)].to_vec()),
        );
        r.data_out = data_out;
        r.data_in = data_in;
        self.transmit.push_back(r.encode());
        Ok(())
    }

    /// Answer task management request `tag`; returns its credit.
    ///
    /// # Errors
    ///
    /// [`SessionError::UnknownTag`] if `tag` is not in flight.
    pub fn respond_tmf(&mut self, tag: [u8; 8], response: TmfResponse) -> Result<(), SessionError> {
        self.finish(tag)?;
        let r = Response::task_management(tag, 1, tmf_rsp_code(response));
        self.transmit.push_back(r.encode());
        Ok(())
    }

    /// Grant `n` more credits outside a response (`SRP_CRED_REQ`).
    pub fn grant_credits(&mut self, n: u32) {
        if self.state != State::Active || n == 0 {
            return;
        }
        self.credits = self.credits.saturating_add(n);
        self.next_target_tag += 1;
        let req = crate::cred::CredReq::new(self.next_target_tag.to_be_bytes(), n);
        self.transmit.push_back(req.as_bytes().to_vec());
    }

    /// Log the initiator out (`SRP_T_LOGOUT` with `reason`).
    pub fn logout(&mut self, reason: u32) {
        if self.state == State::LoggedOut {
            return;
        }
        self.state = State::LoggedOut;
        self.in_flight.clear();
        self.next_target_tag += 1;
        let t = TLogout::new(self.next_target_tag.to_be_bytes(), reason);
        self.transmit.push_back(t.as_bytes().to_vec());
    }
}
