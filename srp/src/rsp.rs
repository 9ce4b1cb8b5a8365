//! `SRP_RSP` (SRP r16a §6.9): status, residuals, response and sense data.

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::DecodeError;

/// Opcode of `SRP_RSP`.
pub const OP_RSP: u8 = 0xc1;
/// Length of the fixed part of `SRP_RSP` (`sizeof(struct srp_rsp)`).
pub const RSP_LEN: usize = 36;
/// `RSPVALID`: response data present.
pub const FLAG_RSPVALID: u8 = 1 << 0;
/// `SNSVALID`: sense data present.
pub const FLAG_SNSVALID: u8 = 1 << 1;
/// `DOOVER`: data-out overflow (residual = bytes not transferred).
pub const FLAG_DOOVER: u8 = 1 << 2;
/// `DOUNDER`: data-out underflow.
pub const FLAG_DOUNDER: u8 = 1 << 3;
/// `DIOVER`: data-in overflow.
pub const FLAG_DIOVER: u8 = 1 << 4;
/// `DIUNDER`: data-in underflow.
pub const FLAG_DIUNDER: u8 = 1 << 5;

/// The fixed part of `SRP_RSP`, 36 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct RspHeader {
    /// Opcode, [`OP_RSP`].
    pub opcode: u8,
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Reserved.
    pub reserved1: [u8; 2],
    /// Request-limit credits returned.
    pub req_lim_delta: U32,
    /// Tag of the request answered.
    pub tag: [u8; 8],
    /// Reserved.
    pub reserved2: [u8; 2],
    /// `FLAG_*` bits.
    pub flags: u8,
    /// SCSI status.
    pub status: u8,
    /// Data-out residual count.
    pub data_out_res_cnt: U32,
    /// Data-in residual count.
    pub data_in_res_cnt: U32,
    /// Sense data length.
    pub sense_data_len: U32,
    /// Response data length.
    pub resp_data_len: U32,
}

/// A residual: how the transferred length differs from the buffer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Residual {
    /// Exactly the buffer's length.
    #[default]
    None,
    /// The command wanted more than the buffer held (bytes not moved).
    Over(u32),
    /// The command moved less than the buffer held.
    Under(u32),
}

/// A decoded `SRP_RSP`, copied out of the IU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Response {
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Credits returned to the initiator.
    pub req_lim_delta: u32,
    /// Tag of the request answered.
    pub tag: [u8; 8],
    /// SCSI status.
    pub status: u8,
    /// Data-out residual.
    pub data_out: Residual,
    /// Data-in residual.
    pub data_in: Residual,
    /// Response data (for task management: 4 bytes, the response code in
    /// the last), when `RSPVALID`.
    pub response_data: Option<Vec<u8>>,
    /// Sense data, when `SNSVALID`.
    pub sense: Option<Vec<u8>>,
}

fn residual(flags: u8, over: u8, under: u8, count: u32) -> Residual {
    if flags & over != 0 {
        Residual::Over(count)
    } else if flags & under != 0 {
        Residual::Under(count)
    } else {
        Residual::None
    }
}

fn residual_bits(r: Residual, over: u8, under: u8) -> (u8, u32) {
    match r {
        Residual::None => (0, 0),
        Residual::Over(n) => (over, n),
        Residual::Under(n) => (under, n),
    }
}

impl Response {
    /// A command's answer: `status`, with `sense` if any.
    #[must_use]
    pub fn scsi(tag: [u8; 8], req_lim_delta: u32, status: u8, sense: Option<Vec<u8>>) -> Self {
        Self {
            sol_not: 0,
            req_lim_delta,
            tag,
            status,
            data_out: Residual::None,
            data_in: Residual::None,
            response_data: None,
            sense,
        }
    }

    /// A task management answer with SRP response code `code` (SRP r16a
    /// table 24: 0 complete, 4 not supported, 5 failed, ...).
    #[must_use]
    pub fn task_management(tag: [u8; 8], req_lim_delta: u32, code: u8) -> Self {
        Self {
            response_data: Some(vec![0, 0, 0, code]),
            ..Self::scsi(tag, req_lim_delta, 0, None)
        }
    }

    /// Decode an `SRP_RSP` from `iu`; the response and sense data must lie
    /// inside it.
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: too short, wrong opcode, or lengths past the IU.
    pub fn decode(iu: &[u8]) -> Result<Self, DecodeError> {
        let (h, rest) = RspHeader::read_from_prefix(iu).map_err(|_| DecodeError::Short {
            got: iu.len(),
            need: RSP_LEN,
        })?;
        if h.opcode != OP_RSP {
            return Err(DecodeError::Opcode {
                got: h.opcode,
                want: OP_RSP,
            });
        }
        let take =
            |at: &mut &[u8], valid: bool, len: u32, what| -> Result<Option<Vec<u8>>, DecodeError> {
                if !valid {
                    return Ok(None);
                }
                let len = usize::try_from(len).map_err(|_| DecodeError::Length(what))?;
                let Some(bytes) = at.get(..len) else {
                    return Err(DecodeError::Length(what));
                };
                *at = &at[len..];
                Ok(Some(bytes.to_vec()))
            };
        let mut at = rest;
        // Response data first, then sense data (as Linux ib_srp reads them).
        let response_data = take(
            &mut at,
            h.flags & FLAG_RSPVALID != 0,
            h.resp_data_len.get(),
            "response data",
        )?;
        let sense = take(
            &mut at,
            h.flags & FLAG_SNSVALID != 0,
            h.sense_data_len.get(),
            "sense data",
        )?;
        Ok(Self {
            sol_not: h.sol_not,
            req_lim_delta: h.req_lim_delta.get(),
            tag: h.tag,
            status: h.status,
            data_out: residual(h.flags, FLAG_DOOVER, FLAG_DOUNDER, h.data_out_res_cnt.get()),
            data_in: residual(h.flags, FLAG_DIOVER, FLAG_DIUNDER, h.data_in_res_cnt.get()),
            response_data,
            sense,
        })
    }

    /// The IU bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut h = RspHeader::new_zeroed();
        h.opcode = OP_RSP;
        h.sol_not = self.sol_not;
        h.req_lim_delta.set(self.req_lim_delta);
        h.tag = self.tag;
        h.status = self.status;
        let (fo, no) = residual_bits(self.data_out, FLAG_DOOVER, FLAG_DOUNDER);
        let (fi, ni) = residual_bits(self.data_in, FLAG_DIOVER, FLAG_DIUNDER);
        h.flags = fo | fi;
        h.data_out_res_cnt.set(no);
        h.data_in_res_cnt.set(ni);
        let len = |v: &[u8]| u32::try_from(v.len()).unwrap_or(u32::MAX);
        if let Some(r) = &self.response_data {
            h.flags |= FLAG_RSPVALID;
            h.resp_data_len.set(len(r));
        }
        if let Some(s) = &self.sense {
            h.flags |= FLAG_SNSVALID;
            h.sense_data_len.set(len(s));
        }
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(self.response_data.as_deref().unwrap_or_default());
        out.extend_from_slice(self.sense.as_deref().unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_sense_residuals_and_response_data() {
        let mut r = Response::scsi([9; 8], 1, 2, Some(vec![0x70, 0, 5, 0, 0, 0, 0, 10]));
        r.data_in = Residual::Under(512);
        r.data_out = Residual::Over(7);
        let iu = r.encode();
        assert_eq!(iu.len(), RSP_LEN + 8);
        assert_eq!(iu[18], FLAG_SNSVALID | FLAG_DIUNDER | FLAG_DOOVER);
        assert_eq!(Response::decode(&iu).unwrap(), r);
        let t = Response::task_management([1; 8], 1, 4);
        let iu = t.encode();
        assert_eq!((iu[18], &iu[36..]), (FLAG_RSPVALID, &[0u8, 0, 0, 4][..]));
        assert_eq!(Response::decode(&iu).unwrap(), t);
    }

    #[test]
    fn rejects_lengths_past_the_iu() {
        let iu = Response::scsi([0; 8], 0, 2, Some(vec![0; 18])).encode();
        assert_eq!(
            Response::decode(&iu[..40]),
            Err(DecodeError::Length("sense data"))
        );
        let mut bad = iu.clone();
        bad[18] |= FLAG_RSPVALID;
        bad[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Response::decode(&bad),
            Err(DecodeError::Length("response data"))
        );
        assert!(matches!(
            Response::decode(&iu[..35]),
            Err(DecodeError::Short { .. })
        ));
    }
}
