//! TransportIDs (SPC-4 §7.6.4): the wire names of initiator ports in
//! PERSISTENT RESERVE OUT parameter lists and READ FULL STATUS data.
//!
//! [`TransportId::parse`] reads one TransportID from the start of a byte
//! slice and says how many bytes it used; it never panics and never reads
//! past the slice. Fibre Channel (protocol 0h), SRP (4h), iSCSI (5h, format
//! 00b without and 01b with the ISID) and SAS (6h) are parsed; other
//! protocols are kept as opaque 24-byte identifiers and compared bytewise.
//!
//! [`TransportId::matches`] decides whether a registration's TransportID
//! names an initiator port: an iSCSI TransportID without an ISID names every
//! port of that iSCSI name (SPC-4 §7.6.4.6); iSCSI names compare without
//! regard to case (RFC 3722 normalises them to lower case).

use std::fmt;

/// Longest TransportID we accept (the iSCSI name limit is 223 bytes, plus
/// the `,i,0x` separator, 12 ISID digits, the terminator and padding).
pub const MAX_TRANSPORT_ID_LEN: usize = 4 + 256;

/// Protocol identifiers (SPC-4 table 362).
pub mod protocol {
    /// Fibre Channel.
    pub const FC: u8 = 0x0;
    /// SCSI RDMA Protocol.
    pub const SRP: u8 = 0x4;
    /// iSCSI.
    pub const ISCSI: u8 = 0x5;
    /// Serial Attached SCSI.
    pub const SAS: u8 = 0x6;
}

/// An initiator port name in TransportID form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportId {
    /// Fibre Channel: the N_Port name.
    Fc([u8; 8]),
    /// SRP: the 16-byte initiator port identifier.
    Srp([u8; 16]),
    /// SAS: the SAS address.
    Sas([u8; 8]),
    /// iSCSI: the iSCSI name, and the ISID (12 lower-case hex digits) when
    /// the TransportID names one initiator port.
    Iscsi {
        /// iSCSI name, lower case.
        name: String,
        /// ISID as 12 lower-case hex digits (format 01b), or none
        /// (format 00b: every port of `name`).
        isid: Option<String>,
    },
    /// Another protocol: the 24 bytes as given.
    Other(Vec<u8>),
}

impl fmt::Debug for TransportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fc(n) => write!(f, "Fc({})", hex(n)),
            Self::Srp(n) => write!(f, "Srp({})", hex(n)),
            Self::Sas(n) => write!(f, "Sas({})", hex(n)),
            Self::Iscsi { name, isid: None } => write!(f, "Iscsi({name})"),
            Self::Iscsi {
                name,
                isid: Some(i),
            } => write!(f, "Iscsi({name},i,0x{i})"),
            Self::Other(b) => write!(f, "Other({})", hex(b)),
        }
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Why a TransportID could not be parsed; `offset` is the byte (relative to
/// the TransportID) that is wrong, for the sense-key-specific field pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportIdError {
    /// Shorter than its fixed part or its ADDITIONAL LENGTH.
    #[error("TransportID truncated")]
    Truncated,
    /// A field holds a value the standard does not allow.
    #[error("invalid TransportID field at byte {offset}")]
    InvalidField {
        /// Byte offset within the TransportID.
        offset: usize,
    },
}

fn normalise_isid(s: &str) -> Option<String> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("{:0>12}", s.to_ascii_lowercase()))
}

impl TransportId {
    /// An iSCSI initiator port from its SCSI port name
    /// (`<iSCSI name>,i,0x<ISID>`), or the iSCSI name alone.
    ///
    /// The name is made encodable: bytes outside printable ASCII become
    /// `_`, a stray `,i,` inside the name becomes `,_,`, and it is cut to
    /// 223 bytes, so the result always survives [`encode`](Self::encode)
    /// and [`parse`](Self::parse) (and so an APTPL store) unchanged.
    #[must_use]
    pub fn from_iscsi_port_name(port: &str) -> Self {
        let lower = port.to_ascii_lowercase();
        let (name, isid) = match lower.rfind(",i,") {
            Some(at) => match normalise_isid(&lower[at + 3..]) {
                Some(isid) => (&lower[..at], Some(isid)),
                None => (lower.as_str(), None),
            },
            None => (lower.as_str(), None),
        };
        let mut clean: String = name
            .bytes()
            .take(223)
            .map(|c| {
                if (0x21..0x7f).contains(&c) {
                    char::from(c)
                } else {
                    '_'
                }
            })
            .collect();
        while clean.contains(",i,") {
            clean = clean.replace(",i,", ",_,");
        }
        if clean.is_empty() {
            clean.push('_');
        }
        Self::Iscsi { name: clean, isid }
    }

    /// Parse one TransportID at the start of `b`; returns it and its length.
    ///
    /// # Errors
    ///
    /// [`TransportIdError`] for a truncated or malformed TransportID.
    pub fn parse(b: &[u8]) -> Result<(Self, usize), TransportIdError> {
        let &b0 = b.first().ok_or(TransportIdError::Truncated)?;
        let format = b0 >> 6;
        let proto = b0 & 0x0f;
        let fixed = |len: usize| -> Result<&[u8], TransportIdError> {
            b.get(..len).ok_or(TransportIdError::Truncated)
        };
        match proto {
            protocol::FC | protocol::SRP | protocol::SAS => {
                if format != 0 {
                    return Err(TransportIdError::InvalidField { offset: 0 });
                }
                let t = fixed(24)?;
                let id = match proto {
                    protocol::FC => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&t[8..16]);
                        Self::Fc(n)
                    }
                    protocol::SRP => {
                        let mut n = [0u8; 16];
                        n.copy_from_slice(&t[8..24]);
                        Self::Srp(n)
                    }
                    _ => {
                        let mut n = [0u8; 8];
                        n.copy_from_slice(&t[4..12]);
                        Self::Sas(n)
                    }
                };
                Ok((id, 24))
            }
            protocol::ISCSI => {
                let head = fixed(4)?;
                let add = usize::from(u16::from_be_bytes([head[2], head[3]]));
                if add < 4 || add % 4 != 0 {
                    return Err(TransportIdError::InvalidField { offset: 2 });
                }
                let total = 4 + add;
                if total > MAX_TRANSPORT_ID_LEN {
                    return Err(TransportIdError::InvalidField { offset: 2 });
                }
                let t = fixed(total)?;
                let body = &t[4..];
                // The name is null terminated within the additional length.
                let end = body
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or(TransportIdError::InvalidField { offset: 4 })?;
                let text = std::str::from_utf8(&body[..end])
                    .map_err(|_| TransportIdError::InvalidField { offset: 4 })?;
                if text.is_empty() || !text.bytes().all(|c| (0x21..0x7f).contains(&c)) {
                    return Err(TransportIdError::InvalidField { offset: 4 });
                }
                // The ",i," separator never belongs to an iSCSI name, in
                // either case.
                let lower = text.to_ascii_lowercase();
                let id = match format {
                    0 => {
                        if lower.contains(",i,") {
                            return Err(TransportIdError::InvalidField { offset: 4 });
                        }
                        Self::Iscsi {
                            name: lower,
                            isid: None,
                        }
                    }
                    1 => {
                        let at = lower
                            .rfind(",i,0x")
                            .ok_or(TransportIdError::InvalidField { offset: 4 })?;
                        if lower[..at].contains(",i,") {
                            return Err(TransportIdError::InvalidField { offset: 4 });
                        }
                        let isid = normalise_isid(&lower[at + 3..])
                            .ok_or(TransportIdError::InvalidField { offset: 4 + at + 5 })?;
                        if at == 0 {
                            return Err(TransportIdError::InvalidField { offset: 4 });
                        }
                        Self::Iscsi {
                            name: lower[..at].to_string(),
                            isid: Some(isid),
                        }
                    }
                    _ => return Err(TransportIdError::InvalidField { offset: 0 }),
                };
                Ok((id, total))
            }
            _ => Ok((Self::Other(fixed(24)?.to_vec()), 24)),
        }
    }

    /// Encode as a TransportID (iSCSI: null terminated, padded to a multiple
    /// of four, at least 24 bytes in all).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Fc(n) => {
                let mut t = vec![0u8; 24];
                t[0] = protocol::FC;
                t[8..16].copy_from_slice(n);
                t
            }
            Self::Srp(n) => {
                let mut t = vec![0u8; 24];
                t[0] = protocol::SRP;
                t[8..24].copy_from_slice(n);
                t
            }
            Self::Sas(n) => {
                let mut t = vec![0u8; 24];
                t[0] = protocol::SAS;
                t[4..12].copy_from_slice(n);
                t
            }
            Self::Iscsi { name, isid } => {
                let (format, text) = match isid {
                    None => (0u8, name.clone()),
                    Some(i) => (1u8, format!("{name},i,0x{i}")),
                };
                let mut add = (text.len() + 1).div_ceil(4) * 4;
                add = add.max(20);
                let mut t = vec![0u8; 4 + add];
                t[0] = (format << 6) | protocol::ISCSI;
                let [hi, lo] = u16::try_from(add).unwrap_or(u16::MAX).to_be_bytes();
                t[2] = hi;
                t[3] = lo;
                t[4..4 + text.len()].copy_from_slice(text.as_bytes());
                t
            }
            Self::Other(b) => b.clone(),
        }
    }

    /// Whether this TransportID (from a registration or a parameter list)
    /// names the initiator port `port`.
    #[must_use]
    pub fn matches(&self, port: &TransportId) -> bool {
        match (self, port) {
            (
                Self::Iscsi {
                    name: a,
                    isid: None,
                },
                Self::Iscsi { name: b, .. },
            ) => a.eq_ignore_ascii_case(b),
            (
                Self::Iscsi {
                    name: a,
                    isid: Some(i),
                },
                Self::Iscsi {
                    name: b,
                    isid: Some(j),
                },
            ) => a.eq_ignore_ascii_case(b) && i == j,
            (a, b) => a == b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_iscsi_with_and_without_isid() {
        let with =
            TransportId::from_iscsi_port_name("IQN.1993-08.org.debian:01:abc,i,0x23d000000001");
        let bytes = with.encode();
        assert_eq!(bytes[0], 0x45); // format 01b, protocol 5h (SPC-4 table 375)
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            TransportId::parse(&bytes).unwrap(),
            (with.clone(), bytes.len())
        );
        let name_only = TransportId::from_iscsi_port_name("iqn.1993-08.org.debian:01:abc");
        let nb = name_only.encode();
        assert_eq!(nb[0], 0x05);
        assert_eq!(nb.len(), 36); // 4 + (29 name bytes + NUL, padded to 32)
        assert!(name_only.matches(&with));
        assert!(!with.matches(&name_only));
        let other_port =
            TransportId::from_iscsi_port_name("iqn.1993-08.org.debian:01:abc,i,0x23d000000002");
        assert!(!with.matches(&other_port));
        assert!(name_only.matches(&other_port));
    }

    #[test]
    fn accepts_fc_sas_srp() {
        for (proto, range) in [(0u8, 8..16), (6, 4..12), (4, 8..24)] {
            let mut t = [0u8; 24];
            t[0] = proto;
            for (i, b) in (1u8..).zip(t[range.clone()].iter_mut()) {
                *b = i;
            }
            let (id, len) = TransportId::parse(&t).unwrap();
            assert_eq!(len, 24);
            assert_eq!(id.encode(), t.to_vec());
        }
    }

    #[test]
    fn accepts_any_port_name_and_round_trips_it() {
        for port in [
            "",
            "a,i,b,i,0x1",
            "x y\u{e9}",
            ",i,0x12",
            "iqn.a,I,0XABC",
            &"n".repeat(400),
        ] {
            let id = TransportId::from_iscsi_port_name(port);
            let bytes = id.encode();
            assert_eq!(
                TransportId::parse(&bytes),
                Ok((id, bytes.len())),
                "{port:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(TransportId::parse(&[]), Err(TransportIdError::Truncated));
        assert_eq!(
            TransportId::parse(&[0; 10]),
            Err(TransportIdError::Truncated)
        );
        // iSCSI, additional length not a multiple of 4.
        assert!(matches!(
            TransportId::parse(&[0x05, 0, 0, 5, b'a', 0, 0, 0, 0]),
            Err(TransportIdError::InvalidField { offset: 2 })
        ));
        // iSCSI, no terminator.
        assert!(TransportId::parse(&[0x05, 0, 0, 4, b'a', b'b', b'c', b'd']).is_err());
        // Format 01b without ISID.
        assert!(TransportId::parse(&[0x45, 0, 0, 4, b'a', b'b', 0, 0]).is_err());
        // FC with a format code.
        let mut t = [0u8; 24];
        t[0] = 0x40;
        assert!(TransportId::parse(&t).is_err());
    }
}
