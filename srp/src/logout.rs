//! Logout information units: `SRP_I_LOGOUT` (initiator) and `SRP_T_LOGOUT` (target).

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::login::LoginError;

/// Opcode of `SRP_I_LOGOUT`.
pub const OP_I_LOGOUT: u8 = 0x03;
/// Opcode of `SRP_T_LOGOUT`.
pub const OP_T_LOGOUT: u8 = 0x80;
/// Length of both logout IUs in bytes.
pub const LOGOUT_LEN: usize = 16;

/// `SRP_I_LOGOUT` (SRP r16a 6.5), 16 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct ILogout {
    /// Opcode, [`OP_I_LOGOUT`].
    pub opcode: u8,
    /// Reserved.
    pub reserved: [u8; 7],
    /// Initiator tag, opaque.
    pub tag: [u8; 8],
}

/// `SRP_T_LOGOUT` (SRP r16a 6.6), 16 bytes, big-endian.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct TLogout {
    /// Opcode, [`OP_T_LOGOUT`].
    pub opcode: u8,
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Reserved.
    pub reserved: [u8; 2],
    /// Logout reason code.
    pub reason: U32,
    /// Target tag, opaque.
    pub tag: [u8; 8],
}

impl ILogout {
    /// Decodes an `SRP_I_LOGOUT` from the start of `buf` (copied out).
    pub fn decode(buf: &[u8]) -> Result<Self, LoginError> {
        let short = LoginError::Short {
            got: buf.len(),
            need: LOGOUT_LEN,
        };
        let (v, _) = Self::read_from_prefix(buf).map_err(|_| short)?;
        if v.opcode != OP_I_LOGOUT {
            return Err(LoginError::Opcode {
                got: v.opcode,
                want: OP_I_LOGOUT,
            });
        }
        Ok(v)
    }
}

impl TLogout {
    /// Builds an `SRP_T_LOGOUT` with `reason` and target `tag`.
    pub fn new(tag: [u8; 8], reason: u32) -> Self {
        let mut t = Self::new_zeroed();
        t.opcode = OP_T_LOGOUT;
        t.tag = tag;
        t.reason.set(reason);
        t
    }

    /// Decodes an `SRP_T_LOGOUT` from the start of `buf` (copied out).
    ///
    /// # Errors
    ///
    /// Too short, or the wrong opcode.
    pub fn decode(buf: &[u8]) -> Result<Self, LoginError> {
        crate::fixed(buf, OP_T_LOGOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i_logout_decodes_and_rejects_bad_input() {
        let mut iu = [0u8; LOGOUT_LEN];
        iu[0] = OP_I_LOGOUT;
        iu[8] = 9;
        assert_eq!(ILogout::decode(&iu).unwrap().tag[0], 9);
        assert!(matches!(
            ILogout::decode(&iu[..15]),
            Err(LoginError::Short { got: 15, .. })
        ));
        iu[0] = OP_T_LOGOUT;
        assert!(matches!(
            ILogout::decode(&iu),
            Err(LoginError::Opcode { got: 0x80, .. })
        ));
        let t = TLogout::new([3; 8], 7);
        assert_eq!(&t.as_bytes()[4..8], &7u32.to_be_bytes());
    }
}
