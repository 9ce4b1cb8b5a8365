//! The xenstore wire protocol (`io/xs_wire.h`), sans-I/O.
//!
//! Every message is a 16-byte [`RawHeader`] (`struct xsd_sockmsg`: type,
//! req_id, tx_id, len, in the host's byte order) followed by `len` payload
//! bytes, at most [`PAYLOAD_MAX`]. Payloads are NUL-separated strings.
//!
//! # Panic contract
//!
//! [`decode`] never panics and never allocates more than [`PAYLOAD_MAX`]
//! bytes on any input: a header announcing a longer payload is
//! [`WireError::PayloadTooLong`] (the stream is then unusable, as
//! xenstored itself treats it). The payload helpers ([`split_strings`],
//! [`parse_error`], [`WatchEvent::parse`]) return errors, never panic.
//! [`Message::encode`] refuses payloads over [`PAYLOAD_MAX`].

use std::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Largest payload of one message (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// Size of the header (`sizeof(struct xsd_sockmsg)`).
pub const HEADER_LEN: usize = 16;
/// Longest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;

/// A message type (`enum xsd_sockmsg_type`); unknown values survive.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgType(pub u32);

macro_rules! msg_types {
    ($($name:ident = $v:expr),* $(,)?) => {
        impl MsgType {
            $(#[doc = concat!("`XS_", stringify!($name), "`.")] pub const $name: Self = Self($v);)*
            /// The C name without the `XS_` prefix, if known.
            #[must_use]
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($v => Some(stringify!($name)),)* _ => None }
            }
        }
    };
}

msg_types! {
    CONTROL = 0,
    DIRECTORY = 1,
    READ = 2,
    GET_PERMS = 3,
    WATCH = 4,
    UNWATCH = 5,
    TRANSACTION_START = 6,
    TRANSACTION_END = 7,
    INTRODUCE = 8,
    RELEASE = 9,
    GET_DOMAIN_PATH = 10,
    WRITE = 11,
    MKDIR = 12,
    RM = 13,
    SET_PERMS = 14,
    WATCH_EVENT = 15,
    ERROR = 16,
    IS_DOMAIN_INTRODUCED = 17,
    RESUME = 18,
    SET_TARGET = 19,
    RESET_WATCHES = 21,
    DIRECTORY_PART = 22,
    INVALID = 0xffff,
}

impl fmt::Debug for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "XS_{n}"),
            None => write!(f, "MsgType({:#x})", self.0),
        }
    }
}

/// `struct xsd_sockmsg`, as it is on the wire (host byte order: xenstored
/// and its clients always share a machine).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RawHeader {
    ty: u32,
    req_id: u32,
    tx_id: u32,
    len: u32,
}

impl RawHeader {
    /// Message type.
    #[must_use]
    pub fn msg_type(&self) -> MsgType {
        MsgType(self.ty)
    }
    /// Request id, echoed in the reply.
    #[must_use]
    pub fn req_id(&self) -> u32 {
        self.req_id
    }
    /// Transaction id (0: none).
    #[must_use]
    pub fn tx_id(&self) -> u32 {
        self.tx_id
    }
    /// Payload length announced.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.len
    }
    /// Whether the payload is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A whole message: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Type.
    pub msg_type: MsgType,
    /// Request id.
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Payload (at most [`PAYLOAD_MAX`] bytes).
    pub payload: Vec<u8>,
}

/// Malformed bytes on a xenstore stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A header announcing more than [`PAYLOAD_MAX`] bytes.
    #[error("payload of {0} bytes exceeds XENSTORE_PAYLOAD_MAX")]
    PayloadTooLong(u32),
    /// A payload that is not the NUL-terminated strings its type needs.
    #[error("malformed {0:?} payload")]
    BadPayload(MsgType),
}

impl Message {
    /// A request of type `msg_type` whose payload is `parts`, each
    /// followed by a NUL except the last when `last_nul` is false (XS_WRITE
    /// carries its value unterminated).
    ///
    /// # Errors
    ///
    /// [`WireError::PayloadTooLong`] past [`PAYLOAD_MAX`].
    pub fn request(
        msg_type: MsgType,
        tx_id: u32,
        parts: &[&[u8]],
        last_nul: bool,
    ) -> Result<Self, WireError> {
        let mut payload = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            payload.extend_from_slice(p);
            if last_nul || i + 1 < parts.len() {
                payload.push(0);
            }
            if payload.len() > PAYLOAD_MAX {
                return Err(WireError::PayloadTooLong(len_u32(payload.len())));
            }
        }
        Ok(Self {
            msg_type,
            req_id: 0,
            tx_id,
            payload,
        })
    }

    /// Append the encoded message to `out`.
    ///
    /// # Errors
    ///
    /// [`WireError::PayloadTooLong`] past [`PAYLOAD_MAX`] (nothing written).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        if self.payload.len() > PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(len_u32(self.payload.len())));
        }
        let h = RawHeader {
            ty: self.msg_type.0,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: len_u32(self.payload.len()),
        };
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    /// The payload as NUL-separated strings (see [`split_strings`]).
    #[must_use]
    pub fn strings(&self) -> Vec<&[u8]> {
        split_strings(&self.payload)
    }
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decode one message from the front of `buf`.
///
/// `Ok(None)`: more bytes are needed (at most [`HEADER_LEN`] +
/// [`PAYLOAD_MAX`] in all); `Ok(Some((msg, used)))`: a message and the
/// bytes it took.
///
/// # Errors
///
/// [`WireError::PayloadTooLong`]: the stream is corrupt.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Ok((h, rest)) = RawHeader::read_from_prefix(buf) else {
        return Ok(None);
    };
    let len = h.len as usize;
    if len > PAYLOAD_MAX {
        return Err(WireError::PayloadTooLong(h.len));
    }
    let Some(payload) = rest.get(..len) else {
        return Ok(None);
    };
    Ok(Some((
        Message {
            msg_type: h.msg_type(),
            req_id: h.req_id,
            tx_id: h.tx_id,
            payload: payload.to_vec(),
        },
        HEADER_LEN + len,
    )))
}

/// Split a payload into its NUL-terminated strings; a final string
/// without a NUL is kept, an empty payload gives no strings.
#[must_use]
pub fn split_strings(payload: &[u8]) -> Vec<&[u8]> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if payload.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == 0).collect()
}

/// An error a xenstore daemon answers (`XS_ERROR`, payload the errno name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsErrno {
    /// `EINVAL`.
    Inval,
    /// `EACCES`.
    Acces,
    /// `EEXIST`.
    Exist,
    /// `EISDIR`.
    IsDir,
    /// `ENOENT`.
    NoEnt,
    /// `ENOMEM`.
    NoMem,
    /// `ENOSPC`.
    NoSpc,
    /// `EIO`.
    Io,
    /// `ENOTEMPTY`.
    NotEmpty,
    /// `ENOSYS`.
    NoSys,
    /// `EROFS`.
    RoFs,
    /// `EBUSY`.
    Busy,
    /// `EAGAIN` (a transaction must be retried).
    Again,
    /// `EISCONN`.
    IsConn,
    /// `E2BIG`.
    TooBig,
    /// `EPERM`.
    Perm,
}

/// The `xsd_errors` table, in the header's order.
pub const XSD_ERRORS: [(XsErrno, &str); 16] = [
    (XsErrno::Inval, "EINVAL"),
    (XsErrno::Acces, "EACCES"),
    (XsErrno::Exist, "EEXIST"),
    (XsErrno::IsDir, "EISDIR"),
    (XsErrno::NoEnt, "ENOENT"),
    (XsErrno::NoMem, "ENOMEM"),
    (XsErrno::NoSpc, "ENOSPC"),
    (XsErrno::Io, "EIO"),
    (XsErrno::NotEmpty, "ENOTEMPTY"),
    (XsErrno::NoSys, "ENOSYS"),
    (XsErrno::RoFs, "EROFS"),
    (XsErrno::Busy, "EBUSY"),
    (XsErrno::Again, "EAGAIN"),
    (XsErrno::IsConn, "EISCONN"),
    (XsErrno::TooBig, "E2BIG"),
    (XsErrno::Perm, "EPERM"),
];

impl XsErrno {
    /// The errno name xenstored sends.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        XSD_ERRORS
            .iter()
            .find(|(e, _)| *e == self)
            .map_or("EINVAL", |(_, s)| s)
    }
}

impl fmt::Display for XsErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The errno of an `XS_ERROR` payload; an unknown name is `EINVAL`, as
/// libxenstore's `get_error` does.
#[must_use]
pub fn parse_error(payload: &[u8]) -> XsErrno {
    let name = split_strings(payload).first().copied().unwrap_or_default();
    XSD_ERRORS
        .iter()
        .find(|(_, s)| s.as_bytes() == name)
        .map_or(XsErrno::Inval, |(e, _)| *e)
}

/// An `XS_WATCH_EVENT`: the path that changed and the watch's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed (or was removed).
    pub path: String,
    /// The token given to `XS_WATCH`.
    pub token: String,
}

impl WatchEvent {
    /// Parse a watch event payload (`path\0token\0`).
    ///
    /// # Errors
    ///
    /// [`WireError::BadPayload`] unless it holds two UTF-8 strings.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let bad = || WireError::BadPayload(MsgType::WATCH_EVENT);
        let parts = split_strings(payload);
        let [path, token, ..] = parts.as_slice() else {
            return Err(bad());
        };
        Ok(Self {
            path: String::from_utf8(path.to_vec()).map_err(|_| bad())?,
            token: String::from_utf8(token.to_vec()).map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_a_read_request_byte_for_byte() {
        let mut m = Message::request(MsgType::READ, 0, &[b"device/vbd"], true).unwrap();
        m.req_id = 7;
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        let mut want = Vec::new();
        for v in [2u32, 7, 0, 11] {
            want.extend_from_slice(&v.to_ne_bytes());
        }
        want.extend_from_slice(b"device/vbd\0");
        assert_eq!(out, want);
        assert_eq!(decode(&out).unwrap(), Some((m, out.len())));
    }

    #[test]
    fn write_value_is_not_terminated() {
        let m = Message::request(MsgType::WRITE, 3, &[b"a/b", b"42"], false).unwrap();
        assert_eq!(m.payload, b"a/b\x0042");
        assert_eq!(m.strings(), vec![&b"a/b"[..], b"42"]);
    }

    #[test]
    fn rejects_oversized_payloads() {
        let mut h = Vec::new();
        for v in [2u32, 1, 0, 4097] {
            h.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(decode(&h), Err(WireError::PayloadTooLong(4097)));
        let big = vec![b'x'; PAYLOAD_MAX + 1];
        assert!(Message::request(MsgType::READ, 0, &[&big], false).is_err());
        let m = Message {
            msg_type: MsgType::WRITE,
            req_id: 0,
            tx_id: 0,
            payload: big,
        };
        let mut out = Vec::new();
        assert!(m.encode(&mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn needs_more_bytes_for_truncated_input() {
        let m = Message::request(MsgType::DIRECTORY, 0, &[b"backend"], true).unwrap();
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn errno_strings_round_trip_and_unknown_is_einval() {
        for (e, s) in XSD_ERRORS {
            assert_eq!(parse_error(format!("{s}\0").as_bytes()), e);
            assert_eq!(e.as_str(), s);
        }
        assert_eq!(parse_error(b"EWHATEVER\0"), XsErrno::Inval);
        assert_eq!(parse_error(b""), XsErrno::Inval);
    }

    #[test]
    fn watch_events_parse_and_reject_garbage() {
        let e = WatchEvent::parse(b"backend/qdisk\0tok\0").unwrap();
        assert_eq!(e.path, "backend/qdisk");
        assert_eq!(e.token, "tok");
        assert!(WatchEvent::parse(b"only-path\0").is_err());
        assert!(WatchEvent::parse(b"\xff\0tok\0").is_err());
    }

    #[test]
    fn msg_type_debug_names() {
        assert_eq!(format!("{:?}", MsgType::WATCH_EVENT), "XS_WATCH_EVENT");
        assert_eq!(format!("{:?}", MsgType(99)), "MsgType(0x63)");
    }

    proptest! {
        #[test]
        fn round_trips(ty: u32, req: u32, tx: u32, payload in proptest::collection::vec(any::<u8>(), 0..=PAYLOAD_MAX)) {
            let m = Message { msg_type: MsgType(ty), req_id: req, tx_id: tx, payload };
            let mut out = Vec::new();
            m.encode(&mut out).unwrap();
            out.extend_from_slice(b"trailing");
            let (d, used) = decode(&out).unwrap().unwrap();
            prop_assert_eq!(used, out.len() - 8);
            prop_assert_eq!(d, m);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((m, used))) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
                let _ = m.strings();
                let _ = WatchEvent::parse(&m.payload);
                let _ = parse_error(&m.payload);
            }
        }
    }
}
