//! CHAP with MD5 (RFC 1994, as iSCSI uses it in RFC 7143 §12.1.3).
//!
//! The response to a challenge is `MD5(identifier || secret || challenge)`.
//! Binary values travel as `0x` hex or `0b` base64 strings (RFC 7143
//! §6.1); [`decode_binary`] accepts both, capped at [`MAX_BINARY_LEN`].

use md5::{Digest, Md5};

/// CHAP algorithm number for MD5 (CHAP_A=5).
pub const CHAP_MD5: &str = "5";
/// Length of the challenges the target sends.
pub const CHALLENGE_LEN: usize = 16;
/// Longest binary value accepted (a generous cap on initiator challenges).
pub const MAX_BINARY_LEN: usize = 1024;

/// A CHAP user name and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapCredentials {
    /// CHAP_N: the user name.
    pub user: String,
    /// The shared secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ChapCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapCredentials")
            .field("user", &self.user)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ChapCredentials {
    /// Credentials from a user name and a secret string.
    #[must_use]
    pub fn new(user: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        Self {
            user: user.into(),
            secret: secret.as_ref().to_vec(),
        }
    }
}

/// MD5(identifier || secret || challenge) (RFC 1994 §4.1).
#[must_use]
pub fn response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([id]);
    h.update(secret);
    h.update(challenge);
    h.finalize().into()
}

/// Compare two byte strings without an early exit.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `0x` followed by lower-case hex.
#[must_use]
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Decode a binary value: `0x`/`0X` hex (an odd digit count gets a leading
/// zero) or `0b`/`0B` base64. `None` if malformed or longer than
/// [`MAX_BINARY_LEN`].
#[must_use]
pub fn decode_binary(value: &str) -> Option<Vec<u8>> {
    let v = value.as_bytes();
    if v.len() < 3 || v[0] != b'0' {
        return None;
    }
    let body = &v[2..];
    match v[1] {
        b'x' | b'X' => {
            if body.len().div_ceil(2) > MAX_BINARY_LEN {
                return None;
            }
            let nib = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
            let mut out = Vec::with_capacity(body.len().div_ceil(2));
            let (head, rest) = body.split_at(body.len() % 2);
            if let [c] = head {
                out.push(nib(*c)?);
            }
            for pair in rest.chunks(2) {
                out.push(nib(pair[0])? << 4 | nib(pair[1])?);
            }
            Some(out)
        }
        b'b' | b'B' => {
            if body.len() / 4 * 3 > MAX_BINARY_LEN || body.len() % 4 != 0 {
                return None;
            }
            let val = |c: u8| -> Option<u32> {
                Some(u32::from(match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'+' => 62,
                    b'/' => 63,
                    _ => return None,
                }))
            };
            let mut out = Vec::new();
            let quads = body.len() / 4;
            for (i, q) in body.chunks(4).enumerate() {
                let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
                if pad > 2 || (pad > 0 && i + 1 != quads) {
                    return None;
                }
                let mut n = 0u32;
                for &c in &q[..4 - pad] {
                    n = n << 6 | val(c)?;
                }
                n <<= 6 * pad;
                let bytes = n.to_be_bytes();
                out.extend_from_slice(&bytes[1..4 - pad]);
            }
            Some(out)
        }
        _ => None,
    }
}

/// Fresh random bytes for a challenge or an identifier.
///
/// # Errors
///
/// When the OS random source fails.
pub fn random_bytes(out: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc1321_md5_vector() {
        // RFC 1321 A.5: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        let r = response(b'a', b"b", b"c");
        assert_eq!(encode_hex(&r), "0x900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn accepts_hex_and_base64() {
        assert_eq!(decode_binary("0x0aFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_binary("0xabc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(decode_binary("0bTWFu"), Some(b"Man".to_vec()));
        assert_eq!(decode_binary("0bTWE="), Some(b"Ma".to_vec()));
        assert_eq!(decode_binary("0bTQ=="), Some(b"M".to_vec()));
    }

    #[test]
    fn rejects_malformed_binary() {
        assert_eq!(decode_binary("0x"), None);
        assert_eq!(decode_binary("0xzz"), None);
        assert_eq!(decode_binary("12"), None);
        assert_eq!(decode_binary("0bTQ="), None);
        assert_eq!(decode_binary("0bT==="), None);
        let long = format!("0x{}", "00".repeat(MAX_BINARY_LEN + 1));
        assert_eq!(decode_binary(&long), None);
    }
}
