//! `SRP_CRED_REQ` and `SRP_CRED_RSP` (SRP r16a §6.10, §6.11): credits the
//! target grants outside a response.

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::DecodeError;

/// Opcode of `SRP_CRED_REQ` (target to initiator).
pub const OP_CRED_REQ: u8 = 0x81;
/// Opcode of `SRP_CRED_RSP` (initiator to target).
pub const OP_CRED_RSP: u8 = 0x41;
/// Length of both.
pub const CRED_LEN: usize = 16;

/// `SRP_CRED_REQ`, 16 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct CredReq {
    /// Opcode, [`OP_CRED_REQ`].
    pub opcode: u8,
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Reserved.
    pub reserved: [u8; 2],
    /// Credits granted.
    pub req_lim_delta: U32,
    /// Target tag.
    pub tag: [u8; 8],
}

/// `SRP_CRED_RSP`, 16 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct CredRsp {
    /// Opcode, [`OP_CRED_RSP`].
    pub opcode: u8,
    /// Reserved.
    pub reserved: [u8; 7],
    /// Tag of the `SRP_CRED_REQ` answered.
    pub tag: [u8; 8],
}

impl CredReq {
    /// A grant of `delta` credits under target tag `tag`.
    #[must_use]
    pub fn new(tag: [u8; 8], delta: u32) -> Self {
        let mut c = Self::new_zeroed();
        c.opcode = OP_CRED_REQ;
        c.tag = tag;
        c.req_lim_delta.set(delta);
        c
    }

    /// Decode from the start of `iu` (copied out).
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: too short or the wrong opcode.
    pub fn decode(iu: &[u8]) -> Result<Self, DecodeError> {
        crate::fixed(iu, OP_CRED_REQ)
    }
}

impl CredRsp {
    /// The answer to the `SRP_CRED_REQ` tagged `tag`.
    #[must_use]
    pub fn new(tag: [u8; 8]) -> Self {
        let mut c = Self::new_zeroed();
        c.opcode = OP_CRED_RSP;
        c.tag = tag;
        c
    }

    /// Decode from the start of `iu` (copied out).
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: too short or the wrong opcode.
    pub fn decode(iu: &[u8]) -> Result<Self, DecodeError> {
        crate::fixed(iu, OP_CRED_RSP)
    }
}
