//! `SRP_AER_REQ` and `SRP_AER_RSP` (SRP r16a §6.12, §6.13): asynchronous
//! event reports, a logical unit's sense data sent unasked.

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::DecodeError;

/// Opcode of `SRP_AER_REQ` (target to initiator).
pub const OP_AER_REQ: u8 = 0x82;
/// Opcode of `SRP_AER_RSP` (initiator to target).
pub const OP_AER_RSP: u8 = 0x42;
/// Length of the fixed part of `SRP_AER_REQ`.
pub const AER_REQ_LEN: usize = 36;
/// Length of `SRP_AER_RSP`.
pub const AER_RSP_LEN: usize = 16;

/// The fixed part of `SRP_AER_REQ`, 36 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct AerReqHeader {
    /// Opcode, [`OP_AER_REQ`].
    pub opcode: u8,
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Reserved.
    pub reserved1: [u8; 2],
    /// Credits granted.
    pub req_lim_delta: U32,
    /// Target tag.
    pub tag: [u8; 8],
    /// Reserved.
    pub reserved2: [u8; 4],
    /// Logical unit number (SAM-5 format).
    pub lun: [u8; 8],
    /// Sense data length.
    pub sense_data_len: U32,
    /// Reserved.
    pub reserved3: [u8; 4],
}

/// A decoded `SRP_AER_REQ`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AerRequest {
    /// Credits granted.
    pub req_lim_delta: u32,
    /// Target tag.
    pub tag: [u8; 8],
    /// Logical unit the event is about.
    pub lun: [u8; 8],
    /// The sense data reported.
    pub sense: Vec<u8>,
}

impl AerRequest {
    /// Decode from `iu`; the sense data must lie inside it.
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: too short, wrong opcode, or sense past the IU.
    pub fn decode(iu: &[u8]) -> Result<Self, DecodeError> {
        let (h, rest) = AerReqHeader::read_from_prefix(iu).map_err(|_| DecodeError::Short {
            got: iu.len(),
            need: AER_REQ_LEN,
        })?;
        if h.opcode != OP_AER_REQ {
            return Err(DecodeError::Opcode {
                got: h.opcode,
                want: OP_AER_REQ,
            });
        }
        let len = usize::try_from(h.sense_data_len.get()).unwrap_or(usize::MAX);
        let sense = rest
            .get(..len)
            .ok_or(DecodeError::Length("sense data"))?
            .to_vec();
        Ok(Self {
            req_lim_delta: h.req_lim_delta.get(),
            tag: h.tag,
            lun: h.lun,
            sense,
        })
    }

    /// The IU bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut h = AerReqHeader::new_zeroed();
        h.opcode = OP_AER_REQ;
        h.req_lim_delta.set(self.req_lim_delta);
        h.tag = self.tag;
        h.lun = self.lun;
        h.sense_data_len
            .set(u32::try_from(self.sense.len()).unwrap_or(u32::MAX));
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(&self.sense);
        out
    }
}

/// `SRP_AER_RSP`, 16 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct AerRsp {
    /// Opcode, [`OP_AER_RSP`].
    pub opcode: u8,
    /// Reserved.
    pub reserved: [u8; 7],
    /// Tag of the `SRP_AER_REQ` answered.
    pub tag: [u8; 8],
}

impl AerRsp {
    /// The answer to the `SRP_AER_REQ` tagged `tag`.
    #[must_use]
    pub fn new(tag: [u8; 8]) -> Self {
        let mut a = Self::new_zeroed();
        a.opcode = OP_AER_RSP;
        a.tag = tag;
        a
    }

    /// Decode from the start of `iu` (copied out).
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: too short or the wrong opcode.
    pub fn decode(iu: &[u8]) -> Result<Self, DecodeError> {
        crate::fixed(iu, OP_AER_RSP)
    }
}
