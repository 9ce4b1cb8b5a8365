//! The login phase, target side (RFC 7143 §6.3, §11.12, §11.13), as a
//! sans-I/O state machine: feed each Login Request to
//! [`LoginMachine::handle`], send the [`LoginReply`] it returns.
//!
//! ```text
//!                    first Login Request
//!                  (InitiatorName, SessionType, TargetName: identify,
//!                   check ACL; TargetPortalGroupTag declared)
//!           CSG=0  /                               \  CSG=1 (only if
//!                 v                                 v   AuthMethod=None allowed)
//!   +-------------------------+   T=1,NSG=1   +--------------------------+
//!   | SecurityNegotiation     |-------------->| LoginOperational-        |
//!   |  AuthMethod -> CHAP:    |               |  Negotiation             |
//!   |   WaitAlgorithm         |               |  (keys of RFC 7143 §13;  |
//!   |   -(CHAP_A=5)->         |               |   our MaxRecvDataSegment-|
//!   |   WaitResponse          |               |   Length and TargetAlias |
//!   |   -(CHAP_N,CHAP_R ok;   |               |   declared once)         |
//!   |     CHAP_I,CHAP_C for   |               +--------------------------+
//!   |     mutual)-> Done      |                    | T=1, NSG=3
//!   |  AuthMethod -> None     |     T=1,NSG=3      v
//!   +-------------------------+------------->+--------------------------+
//!                                            | FullFeaturePhase: Complete|
//!    any stage: protocol error, auth         +--------------------------+
//!    failure, unknown target, ...
//!        -> Failed (Login Response with Status-Class 02h/03h, then close)
//! ```
//!
//! The target sets T only when the initiator did and every condition of
//! the stage is met (authentication done); it answers every key in the
//! PDU it is answering; a C-bit PDU gets an empty response until the text
//! is whole.

use std::fmt;
use std::sync::Arc;

use crate::chap::{self, ChapCredentials};
use crate::config::{AuthConfig, PortalConfig};
use crate::params::{Answer, Negotiator, SessionParams};
use crate::pdu::{LoginRequest, LoginResponse, SeqNums, Stage};
use crate::text::{self, TextAccumulator};

/// Login Status-Class and Status-Detail (RFC 7143 §11.13.5), an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LoginStatus(pub u16);

impl LoginStatus {
    /// Success.
    pub const SUCCESS: Self = Self(0x0000);
    /// Initiator error (miscellaneous).
    pub const INITIATOR_ERROR: Self = Self(0x0200);
    /// Authentication failure.
    pub const AUTHENTICATION_FAILURE: Self = Self(0x0201);
    /// Authorization failure: the initiator may not access this target.
    pub const AUTHORIZATION_FAILURE: Self = Self(0x0202);
    /// Target not found.
    pub const NOT_FOUND: Self = Self(0x0203);
    /// Target removed.
    pub const TARGET_REMOVED: Self = Self(0x0204);
    /// Unsupported version.
    pub const UNSUPPORTED_VERSION: Self = Self(0x0205);
    /// Too many connections.
    pub const TOO_MANY_CONNECTIONS: Self = Self(0x0206);
    /// Missing parameter.
    pub const MISSING_PARAMETER: Self = Self(0x0207);
    /// Cannot include in session.
    pub const CANT_INCLUDE_IN_SESSION: Self = Self(0x0208);
    /// Session type not supported.
    pub const SESSION_TYPE_NOT_SUPPORTED: Self = Self(0x0209);
    /// Session does not exist.
    pub const SESSION_DOES_NOT_EXIST: Self = Self(0x020a);
    /// Invalid request during login.
    pub const INVALID_DURING_LOGIN: Self = Self(0x020b);
    /// Target error (miscellaneous).
    pub const TARGET_ERROR: Self = Self(0x0300);
    /// Service unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(0x0301);
    /// Out of resources.
    pub const OUT_OF_RESOURCES: Self = Self(0x0302);

    /// Status-Class.
    #[must_use]
    pub fn class(self) -> u8 {
        self.0.to_be_bytes()[0]
    }

    /// Status-Detail.
    #[must_use]
    pub fn detail(self) -> u8 {
        self.0.to_be_bytes()[1]
    }
}

impl fmt::Debug for LoginStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoginStatus({:#06x})", self.0)
    }
}

/// What kind of session the login creates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SessionKind {
    /// A Normal session to the node at this index of [`PortalConfig::nodes`].
    Normal(usize),
    /// A Discovery session (SendTargets only).
    Discovery,
}

/// A completed login.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LoginResult {
    /// InitiatorName.
    pub initiator_name: String,
    /// InitiatorAlias, if declared.
    pub initiator_alias: Option<String>,
    /// The initiator's ISID.
    pub isid: [u8; 6],
    /// Connection ID.
    pub cid: u16,
    /// The session type and target.
    pub kind: SessionKind,
    /// Negotiated parameters.
    pub params: SessionParams,
    /// The next CmdSN expected (the login's CmdSN; Login is immediate).
    pub exp_cmd_sn: u32,
    /// The next StatSN to send.
    pub stat_sn: u32,
}

/// What became of the login after this PDU.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LoginOutcome {
    /// More Login Requests are expected.
    Continue,
    /// The reply moves the connection to the full feature phase. The
    /// caller must set the reply's TSIH before sending it.
    Complete(Box<LoginResult>),
    /// The reply carries a failure status; close the connection after
    /// sending it.
    Failed(LoginStatus),
}

/// The Login Response to send.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LoginReply {
    /// Its header.
    pub header: LoginResponse,
    /// Its data segment (key=value text).
    pub data: Vec<u8>,
    /// The login's state after it.
    pub outcome: LoginOutcome,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Start,
    Security,
    Operational,
    Done,
    Failed,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Chap {
    NotChosen,
    WaitAlgorithm,
    WaitResponse {
        id: u8,
        challenge: [u8; chap::CHALLENGE_LEN],
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct First {
    isid: [u8; 6],
    tsih: u16,
    cid: u16,
    itt: u32,
}

/// The target side of one connection's login.
#[derive(Debug)]
pub struct LoginMachine {
    config: Arc<PortalConfig>,
    state: State,
    first: Option<First>,
    initiator: Option<String>,
    alias: Option<String>,
    kind: Option<SessionKind>,
    neg: Option<Negotiator>,
    text: TextAccumulator,
    stat_sn: u32,
    exp_cmd_sn: u32,
    declared: bool,
    chap: Chap,
    authenticated: bool,
}

type Pairs = Vec<(String, String)>;

impl LoginMachine {
    /// A login for a new connection; `initial_stat_sn` is the connection's
    /// first StatSN.
    #[must_use]
    pub fn new(config: Arc<PortalConfig>, initial_stat_sn: u32) -> Self {
        Self {
            config,
            state: State::Start,
            first: None,
            initiator: None,
            alias: None,
            kind: None,
            neg: None,
            text: TextAccumulator::default(),
            stat_sn: initial_stat_sn,
            exp_cmd_sn: 0,
            declared: false,
            chap: Chap::NotChosen,
            authenticated: false,
        }
    }

    /// The initiator name, once the first PDU declared it.
    #[must_use]
    pub fn initiator_name(&self) -> Option<&str> {
        self.initiator.as_deref()
    }

    fn auth(&self) -> AuthConfig {
        match self.kind {
            Some(SessionKind::Normal(i)) => self
                .config
                .nodes
                .get(i)
                .map(|n| n.auth.clone())
                .unwrap_or_default(),
            _ => self.config.group.discovery_auth.clone(),
        }
    }

    fn header(&mut self, req: &LoginRequest, transit: bool, nsg: Stage) -> LoginResponse {
        let stat_sn = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        let depth = self.config.group.limits.queue_depth.max(1);
        LoginResponse {
            transit,
            cont: false,
            csg: req.csg,
            nsg: if transit { nsg } else { Stage::Security },
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: 0,
            itt: req.itt,
            seq: SeqNums {
                stat_sn,
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.exp_cmd_sn.wrapping_add(depth - 1),
            },
            status_class: 0,
            status_detail: 0,
        }
    }

    fn fail(&mut self, req: &LoginRequest, status: LoginStatus) -> LoginReply {
        self.state = State::Failed;
        let mut header = self.header(req, false, Stage::Security);
        header.status_class = status.class();
        header.status_detail = status.detail();
        tracing::debug!(?status, initiator = ?self.initiator, "login failed");
        LoginReply {
            header,
            data: Vec::new(),
            outcome: LoginOutcome::Failed(status),
        }
    }

    /// Handle one Login Request and its data segment.
    pub fn handle(&mut self, req: &LoginRequest, data: &[u8]) -> LoginReply {
        match self.state {
            State::Done | State::Failed => {
                return self.fail(req, LoginStatus::INVALID_DURING_LOGIN);
            }
            State::Start | State::Security | State::Operational => {}
        }
        match self.first {
            None => {
                self.exp_cmd_sn = req.cmd_sn;
                self.first = Some(First {
                    isid: req.isid,
                    tsih: req.tsih,
                    cid: req.cid,
                    itt: req.itt,
                });
                // RFC 7143 §11.12.4: we speak version 0x00 only.
                if req.version_min > 0 {
                    return self.fail(req, LoginStatus::UNSUPPORTED_VERSION);
                }
                // MaxConnections=1: no connection joins an existing session.
                if req.tsih != 0 {
                    return self.fail(req, LoginStatus::SESSION_DOES_NOT_EXIST);
                }
            }
            Some(f) => {
                // §6.3: ISID, TSIH, CID and ITT stay the same through login.
                if f.isid != req.isid || f.tsih != req.tsih || f.cid != req.cid || f.itt != req.itt
                {
                    return self.fail(req, LoginStatus::INVALID_DURING_LOGIN);
                }
            }
        }
        // §11.12.2: T and C may not both be set.
        if req.transit && req.cont {
            return self.fail(req, LoginStatus::INITIATOR_ERROR);
        }
        let stage_ok = match self.state {
            State::Start => matches!(req.csg, Stage::Security | Stage::Operational),
            State::Security => req.csg == Stage::Security,
            State::Operational => req.csg == Stage::Operational,
            State::Done | State::Failed => false,
        };
        let transit_ok = !req.transit
            || matches!(
                (req.csg, req.nsg),
                (Stage::Security, Stage::Operational | Stage::FullFeature)
                    | (Stage::Operational, Stage::FullFeature)
            );
        if !stage_ok || !transit_ok {
            return self.fail(req, LoginStatus::INVALID_DURING_LOGIN);
        }
        if self.text.push(data).is_err() {
            return self.fail(req, LoginStatus::INITIATOR_ERROR);
        }
        if req.cont {
            // §6.3: answer a continued text with an empty response.
            let header = self.header(req, false, Stage::Security);
            return LoginReply {
                header,
                data: Vec::new(),
                outcome: LoginOutcome::Continue,
            };
        }
        let Ok(pairs) = text::parse(&self.text.take()) else {
            return self.fail(req, LoginStatus::INITIATOR_ERROR);
        };
        let mut out: Pairs = Vec::new();
        if self.state == State::Start {
            if let Err(status) = self.identify(req, &pairs, &mut out) {
                return self.fail(req, status);
            }
        }
        if let Err(status) = self.keys(req, &pairs, &mut out) {
            return self.fail(req, status);
        }
        // Decide whether to move on.
        let mut transit = false;
        if req.transit {
            match self.state {
                State::Security => {
                    if self.authenticated {
                        transit = true;
                    } else if self.chap == Chap::NotChosen {
                        // Transit without agreeing on an AuthMethod.
                        if self.auth().allows_none() {
                            self.authenticated = true;
                            transit = true;
                        } else {
                            return self.fail(req, LoginStatus::AUTHENTICATION_FAILURE);
                        }
                    }
                }
                State::Operational => transit = true,
                _ => {}
            }
        }
        let entering_ffp = transit && req.nsg == Stage::FullFeature;
        if !self.declared && (self.state == State::Operational || entering_ffp) {
            self.declared = true;
            let neg = self
                .neg
                .as_ref()
                .map(|n| n.params.max_recv_data_segment_length);
            out.push((
                "MaxRecvDataSegmentLength".into(),
                neg.unwrap_or(8192).to_string(),
            ));
            if let Some(SessionKind::Normal(i)) = self.kind {
                if let Some(alias) = self.config.nodes.get(i).and_then(|n| n.alias.clone()) {
                    out.push(("TargetAlias".into(), alias));
                }
            }
        }
        if transit {
            self.state = match req.nsg {
                Stage::Operational => State::Operational,
                _ => State::Done,
            };
        }
        let header = self.header(req, transit, req.nsg);
        let data = text::encode(&out);
        let outcome = if self.state == State::Done {
            LoginOutcome::Complete(Box::new(LoginResult {
                initiator_name: self.initiator.clone().unwrap_or_default(),
                initiator_alias: self.alias.clone(),
                isid: req.isid,
                cid: req.cid,
                kind: self.kind.unwrap_or(SessionKind::Discovery),
                params: self.neg.as_ref().map(|n| n.params).unwrap_or_default(),
                exp_cmd_sn: self.exp_cmd_sn,
                stat_sn: self.stat_sn,
            }))
        } else {
            LoginOutcome::Continue
        };
        LoginReply {
            header,
            data,
            outcome,
        }
    }

    /// The first PDU: who is logging in, to what.
    fn identify(
        &mut self,
        req: &LoginRequest,
        pairs: &Pairs,
        out: &mut Pairs,
    ) -> Result<(), LoginStatus> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        let initiator = get("InitiatorName").ok_or(LoginStatus::MISSING_PARAMETER)?;
        if initiator.is_empty() {
            return Err(LoginStatus::MISSING_PARAMETER);
        }
        self.initiator = Some(initiator.to_owned());
        self.alias = get("InitiatorAlias").map(str::to_owned);
        let kind = match get("SessionType").unwrap_or("Normal") {
            "Normal" => {
                let name = get("TargetName").ok_or(LoginStatus::MISSING_PARAMETER)?;
                let (idx, node) = self.config.node(name).ok_or(LoginStatus::NOT_FOUND)?;
                if !node.acl.allows(initiator) {
                    return Err(LoginStatus::AUTHORIZATION_FAILURE);
                }
                SessionKind::Normal(idx)
            }
            "Discovery" => SessionKind::Discovery,
            _ => return Err(LoginStatus::SESSION_TYPE_NOT_SUPPORTED),
        };
        self.kind = Some(kind);
        self.neg = Some(Negotiator::new(
            self.config.group.limits.clone(),
            kind == SessionKind::Discovery,
        ));
        // §13.9: the target returns its portal group tag in the first response.
        out.push((
            "TargetPortalGroupTag".into(),
            self.config.group.tpgt.to_string(),
        ));
        self.state = match req.csg {
            Stage::Security => State::Security,
            _ => {
                // Skipping security is only allowed where no auth is needed.
                if !self.auth().allows_none() {
                    return Err(LoginStatus::AUTHENTICATION_FAILURE);
                }
                self.authenticated = true;
                State::Operational
            }
        };
        Ok(())
    }

    fn keys(
        &mut self,
        req: &LoginRequest,
        pairs: &Pairs,
        out: &mut Pairs,
    ) -> Result<(), LoginStatus> {
        let auth = self.auth();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        for (k, v) in pairs {
            match k.as_str() {
                "InitiatorName" | "TargetName" | "SessionType" | "InitiatorAlias" => {
                    // Declarations consumed by identify(); no reply.
                }
                "AuthMethod" => {
                    if self.state != State::Security {
                        out.push((k.clone(), "Irrelevant".into()));
                        continue;
                    }
                    let offered: Vec<&str> = v.split(',').collect();
                    let choice = if auth.chap.is_some() {
                        offered.contains(&"CHAP").then_some("CHAP")
                    } else if offered.contains(&"None") {
                        Some("None")
                    } else {
                        None
                    };
                    match choice {
                        Some("CHAP") => self.chap = Chap::WaitAlgorithm,
                        Some(_) => self.authenticated = true,
                        None => return Err(LoginStatus::AUTHENTICATION_FAILURE),
                    }
                    out.push((k.clone(), choice.unwrap_or("Reject").into()));
                }
                "CHAP_A" | "CHAP_N" | "CHAP_R" | "CHAP_I" | "CHAP_C" => {
                    if self.state != State::Security {
                        return Err(LoginStatus::INITIATOR_ERROR);
                    }
                }
                "TargetPortalGroupTag" | "TargetAddress" => {
                    // Target-declared keys: an initiator may not send them.
                    out.push((k.clone(), "Reject".into()));
                }
                key if Negotiator::handles(key) => {
                    let neg = self.neg.as_mut().ok_or(LoginStatus::INITIATOR_ERROR)?;
                    if let Answer::Reply(r) = neg.answer(key, v) {
                        out.push((k.clone(), r));
                    }
                }
                _ => out.push((k.clone(), "NotUnderstood".into())),
            }
        }
        if self.state == State::Security {
            self.chap_keys(
                get("CHAP_A"),
                get("CHAP_N"),
                get("CHAP_R"),
                get("CHAP_I"),
                get("CHAP_C"),
                &auth,
                out,
            )?;
        }
        let _ = req;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn chap_keys(
        &mut self,
        a: Option<&str>,
        n: Option<&str>,
        r: Option<&str>,
        i: Option<&str>,
        c: Option<&str>,
        auth: &AuthConfig,
        out: &mut Pairs,
    ) -> Result<(), LoginStatus> {
        let fail = Err(LoginStatus::AUTHENTICATION_FAILURE);
        match self.chap.clone() {
            Chap::NotChosen => {
                if a.or(n).or(r).or(i).or(c).is_some() {
                    return fail;
                }
            }
            Chap::WaitAlgorithm => {
                if n.or(r).or(i).or(c).is_some() {
                    return fail;
                }
                let Some(a) = a else { return Ok(()) };
                if !a.split(',').any(|x| x == chap::CHAP_MD5) {
                    out.push(("CHAP_A".into(), "Reject".into()));
                    return fail;
                }
                let mut rnd = [0u8; 1 + chap::CHALLENGE_LEN];
                chap::random_bytes(&mut rnd).map_err(|_| LoginStatus::TARGET_ERROR)?;
                let id = rnd[0];
                let mut challenge = [0u8; chap::CHALLENGE_LEN];
                challenge.copy_from_slice(&rnd[1..]);
                out.push(("CHAP_A".into(), chap::CHAP_MD5.into()));
                out.push(("CHAP_I".into(), id.to_string()));
                out.push(("CHAP_C".into(), chap::encode_hex(&challenge)));
                self.chap = Chap::WaitResponse { id, challenge };
            }
            Chap::WaitResponse { id, challenge } => {
                if a.is_some() {
                    return fail;
                }
                let (Some(n), Some(r)) = (n, r) else {
                    return if n.or(r).or(i).or(c).is_some() {
                        fail
                    } else {
                        Ok(())
                    };
                };
                let Some(creds) = auth.chap.as_ref() else {
                    return fail;
                };
                let expected = chap::response(id, &creds.secret, &challenge);
                let got = chap::decode_binary(r).unwrap_or_default();
                // Compare both so the timing does not tell which was wrong.
                let user_ok = chap::constant_time_eq(n.as_bytes(), creds.user.as_bytes());
                let resp_ok = chap::constant_time_eq(&got, &expected);
                if !(user_ok & resp_ok) {
                    return fail;
                }
                match (i, c) {
                    (None, None) => {}
                    (Some(i), Some(c)) => {
                        let Some(mutual) = auth.mutual_chap.as_ref() else {
                            return fail;
                        };
                        let Ok(mid) = i.parse::<u8>() else {
                            return fail;
                        };
                        let Some(mc) = chap::decode_binary(c) else {
                            return fail;
                        };
                        // §12.1.3: refuse a reflected challenge.
                        if mc.is_empty() || mc == challenge {
                            return fail;
                        }
                        let resp = chap::response(mid, &mutual.secret, &mc);
                        out.push(("CHAP_N".into(), mutual.user.clone()));
                        out.push(("CHAP_R".into(), chap::encode_hex(&resp)));
                    }
                    _ => return fail,
                }
                self.chap = Chap::NotChosen;
                self.authenticated = true;
            }
        }
        Ok(())
    }
}

/// A simulated initiator's CHAP answer, for tests and examples.
#[must_use]
pub fn chap_answer(creds: &ChapCredentials, id: u8, challenge: &[u8]) -> String {
    chap::encode_hex(&chap::response(id, &creds.secret, challenge))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Acl, TargetNode};

    const IQN: &str = "iqn.2026-11.dev.tgtkit:disk0";
    const INI: &str = "iqn.1993-08.org.debian:01:abc";

    fn config(auth: AuthConfig, acl: Acl) -> Arc<PortalConfig> {
        let mut node = TargetNode::new(IQN);
        node.auth = auth;
        node.acl = acl;
        node.alias = Some("disk0".into());
        Arc::new(PortalConfig {
            nodes: vec![node],
            ..PortalConfig::default()
        })
    }

    fn req(csg: Stage, nsg: Stage, transit: bool) -> LoginRequest {
        LoginRequest {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 1, 2, 3, 0, 0],
            tsih: 0,
            itt: 7,
            cid: 0,
            cmd_sn: 100,
            exp_stat_sn: 0,
        }
    }

    fn kv(reply: &LoginReply) -> Vec<(String, String)> {
        text::parse(&reply.data).unwrap()
    }

    fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
        p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn accepts_auth_none_then_operational_to_ffp() {
        let mut m = LoginMachine::new(config(AuthConfig::default(), Acl::default()), 1);
        let t = text::encode(&[
            ("InitiatorName", INI),
            ("TargetName", IQN),
            ("SessionType", "Normal"),
            ("AuthMethod", "None"),
        ]);
        let r = m.handle(&req(Stage::Security, Stage::Operational, true), &t);
        assert_eq!(r.outcome, LoginOutcome::Continue);
        assert!(r.header.transit);
        assert_eq!(r.header.nsg, Stage::Operational);
        let p = kv(&r);
        assert_eq!(get(&p, "AuthMethod"), Some("None"));
        assert_eq!(get(&p, "TargetPortalGroupTag"), Some("1"));
        assert_eq!(r.header.seq.stat_sn, 1);
        assert_eq!(r.header.seq.exp_cmd_sn, 100);

        let t = text::encode(&[
            ("HeaderDigest", "CRC32C,None"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "65536"),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "262144"),
            ("FirstBurstLength", "65536"),
            ("ErrorRecoveryLevel", "0"),
        ]);
        let r = m.handle(&req(Stage::Operational, Stage::FullFeature, true), &t);
        let LoginOutcome::Complete(res) = &r.outcome else {
            panic!("login did not complete: {r:?}")
        };
        assert!(r.header.transit && r.header.nsg == Stage::FullFeature);
        let p = kv(&r);
        assert_eq!(get(&p, "HeaderDigest"), Some("CRC32C"));
        assert_eq!(get(&p, "MaxRecvDataSegmentLength"), Some("262144"));
        assert_eq!(get(&p, "TargetAlias"), Some("disk0"));
        assert_eq!(res.params.max_xmit_data_segment_length, 65536);
        assert!(res.params.header_digest && !res.params.initial_r2t);
        assert_eq!(res.kind, SessionKind::Normal(0));
        assert_eq!(res.stat_sn, 3);
    }

    fn chap_login(m: &mut LoginMachine, secret: &str, mutual: Option<(u8, &[u8])>) -> LoginReply {
        let t = text::encode(&[
            ("InitiatorName", INI),
            ("TargetName", IQN),
            ("AuthMethod", "CHAP,None"),
        ]);
        let r = m.handle(&req(Stage::Security, Stage::Operational, true), &t);
        assert_eq!(get(&kv(&r), "AuthMethod"), Some("CHAP"));
        // RFC 7143 §12.1.3: no transit until CHAP is done.
        assert!(!r.header.transit);
        let r = m.handle(
            &req(Stage::Security, Stage::Operational, false),
            &text::encode(&[("CHAP_A", "7,5")]),
        );
        let p = kv(&r);
        assert_eq!(get(&p, "CHAP_A"), Some("5"));
        let id: u8 = get(&p, "CHAP_I").unwrap().parse().unwrap();
        let ch = chap::decode_binary(get(&p, "CHAP_C").unwrap()).unwrap();
        assert_eq!(ch.len(), chap::CHALLENGE_LEN);
        let resp = chap_answer(&ChapCredentials::new("user", secret), id, &ch);
        let mut keys = vec![
            ("CHAP_N".to_owned(), "user".to_owned()),
            ("CHAP_R".to_owned(), resp),
        ];
        if let Some((mid, mc)) = mutual {
            keys.push(("CHAP_I".into(), mid.to_string()));
            keys.push(("CHAP_C".into(), chap::encode_hex(mc)));
        }
        m.handle(
            &req(Stage::Security, Stage::Operational, true),
            &text::encode(&keys),
        )
    }

    fn chap_config(mutual: bool) -> Arc<PortalConfig> {
        config(
            AuthConfig {
                chap: Some(ChapCredentials::new("user", "secret-of-12b")),
                mutual_chap: mutual.then(|| ChapCredentials::new("target", "other-secret-12")),
            },
            Acl::default(),
        )
    }

    #[test]
    fn accepts_one_way_chap() {
        let mut m = LoginMachine::new(chap_config(false), 1);
        let r = chap_login(&mut m, "secret-of-12b", None);
        assert_eq!(r.outcome, LoginOutcome::Continue);
        assert!(r.header.transit);
        assert_eq!(r.header.status_class, 0);
    }

    #[test]
    fn rejects_wrong_chap_secret_with_0201() {
        let mut m = LoginMachine::new(chap_config(false), 1);
        let r = chap_login(&mut m, "wrong-secret!", None);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::AUTHENTICATION_FAILURE)
        );
        assert_eq!((r.header.status_class, r.header.status_detail), (2, 1));
    }

    #[test]
    fn accepts_mutual_chap_and_answers_challenge() {
        let mut m = LoginMachine::new(chap_config(true), 1);
        let ch = [9u8; 16];
        let r = chap_login(&mut m, "secret-of-12b", Some((42, &ch)));
        assert!(r.header.transit, "{r:?}");
        let p = kv(&r);
        assert_eq!(get(&p, "CHAP_N"), Some("target"));
        let expect = chap_answer(&ChapCredentials::new("target", "other-secret-12"), 42, &ch);
        assert_eq!(get(&p, "CHAP_R"), Some(expect.as_str()));
    }

    #[test]
    fn rejects_mutual_chap_when_not_configured() {
        let mut m = LoginMachine::new(chap_config(false), 1);
        let r = chap_login(&mut m, "secret-of-12b", Some((42, &[9u8; 16])));
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::AUTHENTICATION_FAILURE)
        );
    }

    #[test]
    fn rejects_auth_none_when_chap_required() {
        let mut m = LoginMachine::new(chap_config(false), 1);
        let t = text::encode(&[
            ("InitiatorName", INI),
            ("TargetName", IQN),
            ("AuthMethod", "None"),
        ]);
        let r = m.handle(&req(Stage::Security, Stage::Operational, true), &t);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::AUTHENTICATION_FAILURE)
        );
        // Skipping the security stage is refused too.
        let mut m = LoginMachine::new(chap_config(false), 1);
        let t = text::encode(&[("InitiatorName", INI), ("TargetName", IQN)]);
        let r = m.handle(&req(Stage::Operational, Stage::FullFeature, true), &t);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::AUTHENTICATION_FAILURE)
        );
    }

    #[test]
    fn rejects_unknown_target_and_acl_and_missing_name() {
        let cfg = config(
            AuthConfig::default(),
            Acl {
                allowed_initiators: vec!["iqn.2000-01.com.example:allowed".into()],
                ..Acl::default()
            },
        );
        let mut m = LoginMachine::new(cfg.clone(), 1);
        let t = text::encode(&[
            ("InitiatorName", INI),
            ("TargetName", "iqn.2026-11.dev.tgtkit:nope"),
        ]);
        let r = m.handle(&req(Stage::Operational, Stage::FullFeature, true), &t);
        assert_eq!(r.outcome, LoginOutcome::Failed(LoginStatus::NOT_FOUND));
        let mut m = LoginMachine::new(cfg.clone(), 1);
        let t = text::encode(&[("InitiatorName", INI), ("TargetName", IQN)]);
        let r = m.handle(&req(Stage::Operational, Stage::FullFeature, true), &t);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::AUTHORIZATION_FAILURE)
        );
        let mut m = LoginMachine::new(cfg, 1);
        let t = text::encode(&[("TargetName", IQN)]);
        let r = m.handle(&req(Stage::Operational, Stage::FullFeature, true), &t);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::MISSING_PARAMETER)
        );
    }

    #[test]
    fn accepts_discovery_session_and_continued_text() {
        let mut m = LoginMachine::new(config(AuthConfig::default(), Acl::default()), 1);
        let t = text::encode(&[("InitiatorName", INI), ("SessionType", "Discovery")]);
        let (a, b) = t.split_at(10);
        let mut first = req(Stage::Operational, Stage::FullFeature, false);
        first.cont = true;
        let r = m.handle(&first, a);
        assert!(r.data.is_empty() && !r.header.transit);
        let r = m.handle(&req(Stage::Operational, Stage::FullFeature, true), b);
        let LoginOutcome::Complete(res) = r.outcome else {
            panic!("{r:?}")
        };
        assert_eq!(res.kind, SessionKind::Discovery);
    }

    #[test]
    fn rejects_stage_regression_and_bad_transit() {
        let mut m = LoginMachine::new(config(AuthConfig::default(), Acl::default()), 1);
        let t = text::encode(&[("InitiatorName", INI), ("TargetName", IQN)]);
        let r = m.handle(&req(Stage::Operational, Stage::Security, true), &t);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::INVALID_DURING_LOGIN)
        );
        let mut m = LoginMachine::new(config(AuthConfig::default(), Acl::default()), 1);
        let r = m.handle(&req(Stage::Operational, Stage::Operational, false), &t);
        assert_eq!(r.outcome, LoginOutcome::Continue);
        let r = m.handle(&req(Stage::Security, Stage::Operational, true), &[]);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::INVALID_DURING_LOGIN)
        );
    }

    #[test]
    fn rejects_unsupported_version_and_existing_tsih() {
        let mut m = LoginMachine::new(config(AuthConfig::default(), Acl::default()), 1);
        let mut r0 = req(Stage::Operational, Stage::FullFeature, true);
        r0.version_min = 1;
        let r = m.handle(&r0, &[]);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::UNSUPPORTED_VERSION)
        );
        let mut m = LoginMachine::new(config(AuthConfig::default(), Acl::default()), 1);
        let mut r0 = req(Stage::Operational, Stage::FullFeature, true);
        r0.tsih = 5;
        let r = m.handle(&r0, &[]);
        assert_eq!(
            r.outcome,
            LoginOutcome::Failed(LoginStatus::SESSION_DOES_NOT_EXIST)
        );
    }

    #[test]
    fn accepts_not_understood_for_unknown_keys() {
        let mut m = LoginMachine::new(config(AuthConfig::default(), Acl::default()), 1);
        let t = text::encode(&[
            ("InitiatorName", INI),
            ("TargetName", IQN),
            ("X-Vendor.Key", "1"),
        ]);
        let r = m.handle(&req(Stage::Operational, Stage::FullFeature, true), &t);
        assert_eq!(get(&kv(&r), "X-Vendor.Key"), Some("NotUnderstood"));
    }
}
