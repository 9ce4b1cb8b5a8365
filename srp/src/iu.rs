//! Every information unit behind one enum, decoded by its opcode.

use zerocopy::IntoBytes;

use crate::aer::{AerRequest, AerRsp, OP_AER_REQ, OP_AER_RSP};
use crate::cmd::{Command, OP_CMD};
use crate::cred::{CredReq, CredRsp, OP_CRED_REQ, OP_CRED_RSP};
use crate::error::DecodeError;
use crate::login::{LoginRej, LoginReq, LoginRsp, OP_LOGIN_REJ, OP_LOGIN_REQ, OP_LOGIN_RSP};
use crate::logout::{ILogout, TLogout, OP_I_LOGOUT, OP_T_LOGOUT};
use crate::rsp::{Response, OP_RSP};
use crate::tsk_mgmt::{TskMgmt, OP_TSK_MGMT};

/// Any SRP information unit, copied out of the bytes it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Iu {
    LoginReq(LoginReq),
    LoginRsp(LoginRsp),
    LoginRej(LoginRej),
    ILogout(ILogout),
    TLogout(TLogout),
    TskMgmt(TskMgmt),
    Cmd(Command),
    Rsp(Response),
    CredReq(CredReq),
    CredRsp(CredRsp),
    AerReq(AerRequest),
    AerRsp(AerRsp),
}

impl Iu {
    /// Decode the IU that fills `iu`, refused if longer than `max_len`
    /// (the negotiated maximum IU length for its direction). Decoding only
    /// copies what the IU holds; allocation is bounded by `iu.len()`.
    ///
    /// ```
    /// use tgtkit_srp::iu::Iu;
    /// use tgtkit_srp::cred::CredRsp;
    /// use zerocopy::IntoBytes;
    /// let bytes = CredRsp::new([5; 8]).as_bytes().to_vec();
    /// assert!(matches!(Iu::decode(&bytes, 64), Ok(Iu::CredRsp(_))));
    /// assert!(Iu::decode(&[0xff; 16], 64).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`DecodeError`].
    pub fn decode(iu: &[u8], max_len: usize) -> Result<Self, DecodeError> {
        if iu.len() > max_len {
            return Err(DecodeError::TooLong {
                len: iu.len(),
                max: max_len,
            });
        }
        let Some(&op) = iu.first() else {
            return Err(DecodeError::Short { got: 0, need: 1 });
        };
        Ok(match op {
            OP_LOGIN_REQ => Self::LoginReq(LoginReq::decode(iu)?),
            OP_LOGIN_RSP => Self::LoginRsp(LoginRsp::decode(iu)?),
            OP_LOGIN_REJ => Self::LoginRej(LoginRej::decode(iu)?),
            OP_I_LOGOUT => Self::ILogout(ILogout::decode(iu)?),
            OP_T_LOGOUT => Self::TLogout(TLogout::decode(iu)?),
            OP_TSK_MGMT => Self::TskMgmt(TskMgmt::decode(iu)?),
            OP_CMD => Self::Cmd(Command::decode(iu)?),
            OP_RSP => Self::Rsp(Response::decode(iu)?),
            OP_CRED_REQ => Self::CredReq(CredReq::decode(iu)?),
            OP_CRED_RSP => Self::CredRsp(CredRsp::decode(iu)?),
            OP_AER_REQ => Self::AerReq(AerRequest::decode(iu)?),
            OP_AER_RSP => Self::AerRsp(AerRsp::decode(iu)?),
            other => return Err(DecodeError::UnknownOpcode(other)),
        })
    }

    /// The IU bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::LoginReq(v) => v.as_bytes().to_vec(),
            Self::LoginRsp(v) => v.as_bytes().to_vec(),
            Self::LoginRej(v) => v.as_bytes().to_vec(),
            Self::ILogout(v) => v.as_bytes().to_vec(),
            Self::TLogout(v) => v.as_bytes().to_vec(),
            Self::TskMgmt(v) => v.as_bytes().to_vec(),
            Self::Cmd(v) => v.encode(),
            Self::Rsp(v) => v.encode(),
            Self::CredReq(v) => v.as_bytes().to_vec(),
            Self::CredRsp(v) => v.as_bytes().to_vec(),
            Self::AerReq(v) => v.encode(),
            Self::AerRsp(v) => v.as_bytes().to_vec(),
        }
    }
}
