//! Raw wire layouts of `io/vscsiif.h`.
//!
//! Every field of these structures is naturally aligned, so the layout is
//! the same in every ABI (x86_32, x86_64, Arm). Fields are little-endian
//! zerocopy integers; `tests/header_layout.rs` compares every offset with
//! the real header.

use zerocopy::little_endian::{I32, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `VSCSIIF_SG_TABLESIZE`: segments in a request.
pub const SG_TABLESIZE: usize = 26;
/// `VSCSIIF_MAX_COMMAND_SIZE`: CDB bytes in a request.
pub const MAX_COMMAND_SIZE: usize = 16;
/// `VSCSIIF_SENSE_BUFFERSIZE`: sense bytes in a response.
pub const SENSE_BUFFERSIZE: usize = 96;
/// `VSCSIIF_PAGE_SIZE`.
pub const PAGE_SIZE: usize = 4096;
/// `VSCSIIF_SG_PER_PAGE`: segment descriptors per granted SG page.
pub const SG_PER_PAGE: usize = PAGE_SIZE / 8;
/// `VSCSIIF_SG_GRANT`: flag in `nr_segments`.
pub const SG_GRANT: u8 = 0x80;

/// `struct scsiif_request_segment`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(C)]
pub struct RawSegment {
    /// `grant_ref_t gref`.
    pub gref: U32,
    /// `uint16_t offset`.
    pub offset: U16,
    /// `uint16_t length`.
    pub length: U16,
}

/// `struct vscsiif_request` (252 bytes).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawRequest {
    /// `rqid`: private guest value, echoed in the response.
    pub rqid: U16,
    /// `act`: `VSCSIIF_ACT_SCSI_*`.
    pub act: u8,
    /// `cmd_len`: valid CDB bytes.
    pub cmd_len: u8,
    /// `cmnd[16]`: the CDB.
    pub cmnd: [u8; MAX_COMMAND_SIZE],
    /// `timeout_per_command` (deprecated).
    pub timeout_per_command: U16,
    /// `channel`.
    pub channel: U16,
    /// `id`.
    pub id: U16,
    /// `lun`.
    pub lun: U16,
    /// `ref_rqid`: the command an abort refers to.
    pub ref_rqid: U16,
    /// `sc_data_direction`.
    pub sc_data_direction: u8,
    /// `nr_segments` (with `VSCSIIF_SG_GRANT`).
    pub nr_segments: u8,
    /// `seg[26]`.
    pub seg: [RawSegment; SG_TABLESIZE],
    /// `reserved[3]`.
    pub reserved: [U32; 3],
}

/// `struct vscsiif_response` (252 bytes).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawResponse {
    /// `rqid`.
    pub rqid: U16,
    /// `act` (deprecated; echoed).
    pub act: u8,
    /// `sense_len`.
    pub sense_len: u8,
    /// `sense_buffer[96]`.
    pub sense_buffer: [u8; SENSE_BUFFERSIZE],
    /// `rslt`: host byte << 16 | status byte.
    pub rslt: I32,
    /// `residual_len`.
    pub residual_len: U32,
    /// `reserved[36]`.
    pub reserved: [U32; 36],
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn accepts_vscsiif_layout() {
        // io/vscsiif.h, as gcc lays it out (tests/header_layout.rs checks
        // the real header).
        assert_eq!(size_of::<RawSegment>(), 8);
        assert_eq!(size_of::<RawRequest>(), 252);
        assert_eq!(offset_of!(RawRequest, cmnd), 4);
        assert_eq!(offset_of!(RawRequest, timeout_per_command), 20);
        assert_eq!(offset_of!(RawRequest, channel), 22);
        assert_eq!(offset_of!(RawRequest, ref_rqid), 28);
        assert_eq!(offset_of!(RawRequest, sc_data_direction), 30);
        assert_eq!(offset_of!(RawRequest, nr_segments), 31);
        assert_eq!(offset_of!(RawRequest, seg), 32);
        assert_eq!(offset_of!(RawRequest, reserved), 240);
        assert_eq!(size_of::<RawResponse>(), 252);
        assert_eq!(offset_of!(RawResponse, sense_buffer), 4);
        assert_eq!(offset_of!(RawResponse, rslt), 100);
        assert_eq!(offset_of!(RawResponse, residual_len), 104);
        assert_eq!(offset_of!(RawResponse, reserved), 108);
    }
}
