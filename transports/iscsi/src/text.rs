//! Text key=value pairs (RFC 7143 §6.1): the data segment of Login and
//! Text PDUs.
//!
//! Each pair is `key=value` followed by a NUL. Keys are at most 63 bytes
//! of letters, digits, `.`, `-`, `+`, `@`, `_` (§6.1); values at most
//! [`MAX_VALUE_LEN`] bytes of UTF-8. A whole (continued) text is capped at
//! [`MAX_TEXT_LEN`] bytes by [`TextAccumulator`], so a peer cannot make us
//! buffer an unbounded negotiation.

/// Longest key name (RFC 7143 §6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value accepted (RFC 7143 §6.1: 255 for most, 8192 for some;
/// CHAP responses in hex of big challenges can be long).
pub const MAX_VALUE_LEN: usize = 8192;
/// Largest text accepted across continued PDUs.
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// Most key=value pairs accepted in one text.
pub const MAX_PAIRS: usize = 256;

/// A malformed text segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// A pair without `=`.
    #[error("pair without '='")]
    MissingEquals,
    /// A key that is empty, too long or has characters RFC 7143 §6.1 forbids.
    #[error("invalid key")]
    InvalidKey,
    /// A value that is too long or not UTF-8.
    #[error("invalid value for key {0}")]
    InvalidValue(String),
    /// The same key twice in one text (RFC 7143 §6.2: a protocol error
    /// for negotiated keys).
    #[error("key {0} repeated")]
    DuplicateKey(String),
    /// More text than [`MAX_TEXT_LEN`] or more pairs than [`MAX_PAIRS`].
    #[error("text too long")]
    TooLong,
}

/// Whether `key` is a valid key name (RFC 7143 §6.1).
#[must_use]
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b".-+@_".contains(&c))
}

/// Parse a complete text into pairs, in order.
///
/// Trailing bytes after the last NUL are a pair too (some initiators omit
/// the last NUL); empty strings between NULs are skipped (padding).
///
/// # Errors
///
/// [`TextError`] for any malformed pair, duplicated key or excess length.
pub fn parse(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    if data.len() > MAX_TEXT_LEN {
        return Err(TextError::TooLong);
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for item in data.split(|&b| b == 0) {
        if item.is_empty() {
            continue;
        }
        let eq = item
            .iter()
            .position(|&b| b == b'=')
            .ok_or(TextError::MissingEquals)?;
        let (k, v) = (&item[..eq], &item[eq + 1..]);
        if !valid_key(k) {
            return Err(TextError::InvalidKey);
        }
        // valid_key guarantees ASCII.
        let key = String::from_utf8_lossy(k).into_owned();
        if v.len() > MAX_VALUE_LEN {
            return Err(TextError::InvalidValue(key));
        }
        let value = std::str::from_utf8(v)
            .map_err(|_| TextError::InvalidValue(key.clone()))?
            .to_owned();
        if pairs.iter().any(|(pk, _)| *pk == key) {
            return Err(TextError::DuplicateKey(key));
        }
        if pairs.len() >= MAX_PAIRS {
            return Err(TextError::TooLong);
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Encode pairs as `key=value\0...`.
#[must_use]
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref().as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_ref().as_bytes());
        out.push(0);
    }
    out
}

/// Collects the data segments of a continued text (C bit) up to
/// [`MAX_TEXT_LEN`].
#[derive(Debug, Default, Clone)]
pub struct TextAccumulator {
    buf: Vec<u8>,
}

impl TextAccumulator {
    /// Append one PDU's data segment.
    ///
    /// # Errors
    ///
    /// [`TextError::TooLong`] past [`MAX_TEXT_LEN`].
    pub fn push(&mut self, data: &[u8]) -> Result<(), TextError> {
        if self.buf.len() + data.len() > MAX_TEXT_LEN {
            self.buf.clear();
            return Err(TextError::TooLong);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Take the whole text collected so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Whether nothing is buffered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Splits a long response text into data segments of at most `max` bytes
/// (the initiator's MaxRecvDataSegmentLength); the caller sets C on all but
/// the last.
#[must_use]
pub fn chunks(text: &[u8], max: usize) -> Vec<&[u8]> {
    if text.is_empty() {
        return vec![&[]];
    }
    text.chunks(max.max(1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_login_text_from_libiscsi() {
        let t = b"InitiatorName=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-inq\0TargetName=iqn.2026-11.dev.tgtkit:disk0\0SessionType=Normal\0HeaderDigest=None,CRC32C\0";
        let p = parse(t).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[3], ("HeaderDigest".into(), "None,CRC32C".into()));
    }

    #[test]
    fn rejects_duplicate_keys() {
        // RFC 7143 §6.2: a key repeated in one negotiation is a protocol error.
        assert!(matches!(
            parse(b"A=1\0A=2\0"),
            Err(TextError::DuplicateKey(_))
        ));
    }

    #[test]
    fn rejects_bad_keys_and_missing_equals() {
        assert_eq!(parse(b"A B=1\0"), Err(TextError::InvalidKey));
        assert_eq!(parse(b"=1\0"), Err(TextError::InvalidKey));
        assert_eq!(parse(b"novalue\0"), Err(TextError::MissingEquals));
        let long = format!("{}=1\0", "K".repeat(64));
        assert_eq!(parse(long.as_bytes()), Err(TextError::InvalidKey));
    }

    #[test]
    fn rejects_text_past_cap() {
        let mut acc = TextAccumulator::default();
        acc.push(&vec![b'a'; MAX_TEXT_LEN]).unwrap();
        assert_eq!(acc.push(b"x"), Err(TextError::TooLong));
    }

    #[test]
    fn accepts_empty_values_and_missing_final_nul() {
        let p = parse(b"TargetAlias=\0SendTargets=All").unwrap();
        assert_eq!(p[0].1, "");
        assert_eq!(p[1].1, "All");
    }

    proptest! {
        #[test]
        fn round_trips(pairs in proptest::collection::btree_map("[A-Za-z][A-Za-z0-9.+@_-]{0,20}", "[ -~]{0,40}", 0..10)) {
            let v: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k, v.replace('\0', ""))).collect();
            prop_assert_eq!(parse(&encode(&v)).unwrap(), v);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
