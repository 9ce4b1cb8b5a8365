//! Login information units: `SRP_LOGIN_REQ`, `SRP_LOGIN_RSP`, `SRP_LOGIN_REJ`.

use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::DecodeError;

/// Opcode of `SRP_LOGIN_REQ`.
pub const OP_LOGIN_REQ: u8 = 0x00;
/// Opcode of `SRP_LOGIN_RSP`.
pub const OP_LOGIN_RSP: u8 = 0xc0;
/// Opcode of `SRP_LOGIN_REJ`.
pub const OP_LOGIN_REJ: u8 = 0xc2;
/// Length of `SRP_LOGIN_REQ` in bytes.
pub const LOGIN_REQ_LEN: usize = 64;
/// Length of `SRP_LOGIN_RSP` in bytes.
pub const LOGIN_RSP_LEN: usize = 52;
/// Length of `SRP_LOGIN_REJ` in bytes.
pub const LOGIN_REJ_LEN: usize = 32;

/// Errors decoding a login or logout IU: the crate's [`DecodeError`].
pub type LoginError = DecodeError;

/// `SRP_LOGIN_REQ` (SRP r16a 6.2), 64 bytes, big-endian.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct LoginReq {
    /// Opcode, [`OP_LOGIN_REQ`].
    pub opcode: u8,
    /// Reserved.
    pub reserved1: [u8; 7],
    /// Initiator tag, opaque (echoed back unchanged).
    pub tag: [u8; 8],
    /// Requested maximum initiator-to-target IU length.
    pub req_it_iu_len: U32,
    /// Reserved.
    pub reserved2: [u8; 4],
    /// Requested buffer formats (bit 1 direct, bit 2 indirect).
    pub req_buf_fmt: U16,
    /// Request flags (multichannel action in bits 0-1).
    pub req_flags: u8,
    /// Reserved.
    pub reserved3: u8,
    /// Immediate data offset.
    pub imm_data_offset: U16,
    /// Reserved.
    pub reserved4: [u8; 2],
    /// Initiator port identifier.
    pub initiator_port_id: [u8; 16],
    /// Target port identifier.
    pub target_port_id: [u8; 16],
}

/// `SRP_LOGIN_RSP` (SRP r16a 6.3), 52 bytes, big-endian.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct LoginRsp {
    /// Opcode, [`OP_LOGIN_RSP`].
    pub opcode: u8,
    /// Reserved.
    pub reserved1: [u8; 3],
    /// Request-limit credits granted.
    pub req_lim_delta: U32,
    /// Tag of the `SRP_LOGIN_REQ` answered.
    pub tag: [u8; 8],
    /// Maximum initiator-to-target IU length accepted.
    pub max_it_iu_len: U32,
    /// Maximum target-to-initiator IU length.
    pub max_ti_iu_len: U32,
    /// Supported buffer formats.
    pub buf_fmt: U16,
    /// Response flags (multichannel result in bits 0-1).
    pub rsp_flags: u8,
    /// Reserved.
    pub reserved2: [u8; 25],
}

/// `SRP_LOGIN_REJ` (SRP r16a 6.4), 32 bytes, big-endian.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct LoginRej {
    /// Opcode, [`OP_LOGIN_REJ`].
    pub opcode: u8,
    /// Reserved.
    pub reserved1: [u8; 3],
    /// Reject reason, a [`RejectReason`] code.
    pub reason: U32,
    /// Tag of the `SRP_LOGIN_REQ` rejected.
    pub tag: [u8; 8],
    /// Reserved.
    pub reserved2: [u8; 8],
    /// Supported buffer formats.
    pub buf_fmt: U16,
    /// Reserved.
    pub reserved3: [u8; 6],
}

/// Login reject reason; a newtype so unknown codes survive parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectReason(pub u32);

impl RejectReason {
    /// Unable to establish the RDMA channel, no reason specified.
    pub const UNABLE_TO_ESTABLISH: Self = Self(0x0001_0000);
    /// Insufficient RDMA channel resources.
    pub const INSUFFICIENT_RESOURCES: Self = Self(0x0001_0001);
    /// Requested maximum initiator-to-target IU length too large.
    pub const REQ_IT_IU_LENGTH_TOO_LARGE: Self = Self(0x0001_0002);
    /// Unable to associate the channel with the I_T nexus.
    pub const UNABLE_TO_ASSOCIATE: Self = Self(0x0001_0003);
    /// One or more requested data buffer descriptor formats unsupported.
    pub const UNSUPPORTED_DESCRIPTOR_FORMAT: Self = Self(0x0001_0004);
    /// Multiple RDMA channels per I_T nexus not supported.
    pub const MULTICHANNEL_UNSUPPORTED: Self = Self(0x0001_0005);
    /// The target port has reached its channel limit.
    pub const CHANNEL_LIMIT_REACHED: Self = Self(0x0001_0006);
}

fn check(buf: &[u8], need: usize, want: u8) -> Result<(), LoginError> {
    if buf.len() < need {
        return Err(LoginError::Short {
            got: buf.len(),
            need,
        });
    }
    if buf[0] != want {
        return Err(LoginError::Opcode { got: buf[0], want });
    }
    Ok(())
}

impl LoginReq {
    /// Decodes an `SRP_LOGIN_REQ` from the start of `buf` (copied out).
    pub fn decode(buf: &[u8]) -> Result<Self, LoginError> {
        check(buf, LOGIN_REQ_LEN, OP_LOGIN_REQ)?;
        Self::read_from_prefix(buf)
            .map(|(v, _)| v)
            .map_err(|_| LoginError::Short {
                got: buf.len(),
                need: LOGIN_REQ_LEN,
            })
    }
}

impl LoginRsp {
    /// Builds an `SRP_LOGIN_RSP` answering `tag`.
    pub fn new(tag: [u8; 8], req_lim_delta: u32, max_it: u32, max_ti: u32, buf_fmt: u16) -> Self {
        let mut rsp = Self::new_zeroed();
        rsp.opcode = OP_LOGIN_RSP;
        rsp.tag = tag;
        rsp.req_lim_delta.set(req_lim_delta);
        rsp.max_it_iu_len.set(max_it);
        rsp.max_ti_iu_len.set(max_ti);
        rsp.buf_fmt.set(buf_fmt);
        rsp
    }

    /// Decodes an `SRP_LOGIN_RSP` from the start of `buf` (copied out).
    pub fn decode(buf: &[u8]) -> Result<Self, LoginError> {
        check(buf, LOGIN_RSP_LEN, OP_LOGIN_RSP)?;
        Self::read_from_prefix(buf)
            .map(|(v, _)| v)
            .map_err(|_| LoginError::Short {
                got: buf.len(),
                need: LOGIN_RSP_LEN,
            })
    }
}

impl LoginRej {
    /// Builds an `SRP_LOGIN_REJ` rejecting `tag` for `reason`.
    pub fn new(tag: [u8; 8], reason: RejectReason, buf_fmt: u16) -> Self {
        let mut rej = Self::new_zeroed();
        rej.opcode = OP_LOGIN_REJ;
        rej.tag = tag;
        rej.reason.set(reason.0);
        rej.buf_fmt.set(buf_fmt);
        rej
    }

    /// Decodes an `SRP_LOGIN_REJ` from the start of `buf` (copied out).
    pub fn decode(buf: &[u8]) -> Result<Self, LoginError> {
        check(buf, LOGIN_REJ_LEN, OP_LOGIN_REJ)?;
        Self::read_from_prefix(buf)
            .map(|(v, _)| v)
            .map_err(|_| LoginError::Short {
                got: buf.len(),
                need: LOGIN_REJ_LEN,
            })
    }

    /// The reject reason.
    pub fn reject_reason(&self) -> RejectReason {
        RejectReason(self.reason.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn sizes_and_offsets_match_srp_h() {
        assert_eq!(size_of::<LoginReq>(), LOGIN_REQ_LEN);
        assert_eq!(size_of::<LoginRsp>(), LOGIN_RSP_LEN);
        assert_eq!(size_of::<LoginRej>(), LOGIN_REJ_LEN);
        assert_eq!(offset_of!(LoginReq, req_it_iu_len), 16);
        assert_eq!(offset_of!(LoginReq, req_buf_fmt), 24);
        assert_eq!(offset_of!(LoginReq, imm_data_offset), 28);
        assert_eq!(offset_of!(LoginReq, target_port_id), 48);
        assert_eq!(offset_of!(LoginRsp, max_ti_iu_len), 20);
        assert_eq!(offset_of!(LoginRsp, rsp_flags), 26);
        assert_eq!(offset_of!(LoginRej, buf_fmt), 24);
    }

    #[test]
    fn rsp_and_rej_round_trip_and_short_input_errors() {
        let rsp = LoginRsp::new([7; 8], 32, 4096, 8192, 0x6);
        let back = LoginRsp::decode(rsp.as_bytes()).unwrap();
        assert_eq!(back.as_bytes(), rsp.as_bytes());
        assert_eq!(back.max_ti_iu_len.get(), 8192);
        let rej = LoginRej::new([1; 8], RejectReason::CHANNEL_LIMIT_REACHED, 0x6);
        let back = LoginRej::decode(rej.as_bytes()).unwrap();
        assert_eq!(back.reject_reason(), RejectReason::CHANNEL_LIMIT_REACHED);
        assert_eq!(
            LoginReq::decode(&[0u8; 10]),
            Err(LoginError::Short {
                got: 10,
                need: LOGIN_REQ_LEN
            })
        );
        assert_eq!(
            LoginReq::decode(&[0xc0u8; 64]).unwrap_err(),
            LoginError::Opcode {
                got: 0xc0,
                want: OP_LOGIN_REQ
            }
        );
    }
}
