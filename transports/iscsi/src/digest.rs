//! CRC32C (Castagnoli) digests for iSCSI headers and data (RFC 7143 §13.1,
//! RFC 3720 appendix B.4). The digest travels least significant byte first.

/// CRC32C of `bytes`.
#[must_use]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
