//! Raw wire layouts of `io/blkif.h`, one set per ABI.
//!
//! Every field is a little-endian zerocopy integer (alignment 1), so the C
//! compiler's padding is spelled out as `_pad` fields: the x86_64 layout
//! (also every other 64-bit ABI and 32-bit Arm) aligns `uint64_t` to 8, the
//! x86_32 layout to 4. The layout tests below pin the numbers; the
//! `header_layout` integration test compares them with the real header,
//! compiled natively and with `-m32`.

use zerocopy::little_endian::{I16, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments per indirect page: `PAGE_SIZE / sizeof(struct blkif_request_segment)`.
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 4096 / 8;
/// Sector size of the protocol: sector numbers and `first_sect`/`last_sect`
/// count 512-byte units whatever the disk's block size.
pub const SECTOR_SIZE: u64 = 512;
/// Sectors in one 4 KiB page: `last_sect` must be below this.
pub const SECTORS_PER_PAGE: u8 = 8;

/// `struct blkif_request_segment` (8 bytes in every ABI).
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
    /// `uint8_t first_sect`.
    pub first_sect: u8,
    /// `uint8_t last_sect`.
    pub last_sect: u8,
    /// Tail padding to the 4-byte alignment.
    pub _pad: [u8; 2],
}

/// `struct blkif_request` (read, write, barrier, flush), x86_64 layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawRequest64 {
    /// `operation`.
    pub operation: u8,
    /// `nr_segments`.
    pub nr_segments: u8,
    /// `handle`.
    pub handle: U16,
    /// Padding before `id`.
    pub _pad: [u8; 4],
    /// `id`.
    pub id: U64,
    /// `sector_number`.
    pub sector_number: U64,
    /// `seg[11]`.
    pub seg: [RawSegment; MAX_SEGMENTS_PER_REQUEST],
}

/// `struct blkif_request`, x86_32 layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawRequest32 {
    /// `operation`.
    pub operation: u8,
    /// `nr_segments`.
    pub nr_segments: u8,
    /// `handle`.
    pub handle: U16,
    /// `id`.
    pub id: U64,
    /// `sector_number`.
    pub sector_number: U64,
    /// `seg[11]`.
    pub seg: [RawSegment; MAX_SEGMENTS_PER_REQUEST],
}

/// `struct blkif_request_discard`, x86_64 layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawDiscard64 {
    /// `operation` (`BLKIF_OP_DISCARD`).
    pub operation: u8,
    /// `flag` (`BLKIF_DISCARD_SECURE`).
    pub flag: u8,
    /// `handle`.
    pub handle: U16,
    /// Padding before `id`.
    pub _pad: [u8; 4],
    /// `id`.
    pub id: U64,
    /// `sector_number`.
    pub sector_number: U64,
    /// `nr_sectors`.
    pub nr_sectors: U64,
}

/// `struct blkif_request_discard`, x86_32 layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawDiscard32 {
    /// `operation`.
    pub operation: u8,
    /// `flag`.
    pub flag: u8,
    /// `handle`.
    pub handle: U16,
    /// `id`.
    pub id: U64,
    /// `sector_number`.
    pub sector_number: U64,
    /// `nr_sectors`.
    pub nr_sectors: U64,
}

/// `struct blkif_request_indirect`, x86_64 layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawIndirect64 {
    /// `operation` (`BLKIF_OP_INDIRECT`).
    pub operation: u8,
    /// `indirect_op`.
    pub indirect_op: u8,
    /// `nr_segments` (16 bits here).
    pub nr_segments: U16,
    /// Padding before `id`.
    pub _pad: [u8; 4],
    /// `id`.
    pub id: U64,
    /// `sector_number`.
    pub sector_number: U64,
    /// `handle`.
    pub handle: U16,
    /// Padding before `indirect_grefs`.
    pub _pad1: [u8; 2],
    /// `indirect_grefs[8]`.
    pub indirect_grefs: [U32; MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Tail padding to the 8-byte alignment.
    pub _pad2: [u8; 4],
}

/// `struct blkif_request_indirect`, x86_32 layout (with the `__i386__` pad).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawIndirect32 {
    /// `operation`.
    pub operation: u8,
    /// `indirect_op`.
    pub indirect_op: u8,
    /// `nr_segments`.
    pub nr_segments: U16,
    /// `id`.
    pub id: U64,
    /// `sector_number`.
    pub sector_number: U64,
    /// `handle`.
    pub handle: U16,
    /// Padding before `indirect_grefs`.
    pub _pad1: [u8; 2],
    /// `indirect_grefs[8]`.
    pub indirect_grefs: [U32; MAX_INDIRECT_PAGES_PER_REQUEST],
    /// `uint64_t pad` ("make it 64 byte aligned on i386").
    pub pad: U64,
}

/// `struct blkif_response`, x86_64 layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawResponse64 {
    /// `id`.
    pub id: U64,
    /// `operation`.
    pub operation: u8,
    /// Padding before `status`.
    pub _pad: u8,
    /// `status`.
    pub status: I16,
    /// Tail padding.
    pub _pad2: [u8; 4],
}

/// `struct blkif_response`, x86_32 layout.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawResponse32 {
    /// `id`.
    pub id: U64,
    /// `operation`.
    pub operation: u8,
    /// Padding before `status`.
    pub _pad: u8,
    /// `status`.
    pub status: I16,
}

/// The SCSI pass-through extra slot (see the crate docs): the ring slot
/// that follows a request whose operation has `BLKIF_OP_EXTRA_FLAG`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawExtraRequest {
    /// `uint8_t type`: `BLKIF_EXTRA_TYPE_SCSI_CMD` (1).
    pub extra_type: u8,
    /// `uint8_t flags`: reserved, zero.
    pub flags: u8,
    /// `uint16_t cmd_len`: CDB length, 1 to 32.
    pub cmd_len: U16,
    /// `grant_ref_t cmd_gref`: page holding the CDB at offset 0.
    pub cmd_gref: U32,
    /// `uint16_t nr_segments`: data segments of the main request in use.
    pub nr_segments: U16,
    /// `uint16_t last_seg_len`: bytes used of the last segment (1..=4096).
    pub last_seg_len: U16,
    /// `grant_ref_t sense_gref`: page the sense data is written to (offset 0).
    pub sense_gref: U32,
    /// `uint8_t data_dir`: 0 none, 1 to device (write), 2 from device (read).
    pub data_dir: u8,
    /// Reserved, zero.
    pub _reserved: [u8; 3],
}

/// The extra response slot that follows the response to an extra request.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned)]
#[repr(C)]
pub struct RawExtraResponse {
    /// `uint8_t type`: `BLKIF_EXTRA_TYPE_SCSI_CMD` (1).
    pub extra_type: u8,
    /// `uint8_t status`: the SCSI status byte.
    pub scsi_status: u8,
    /// `uint16_t sense_len`: bytes of sense data written to `sense_gref`.
    pub sense_len: U16,
    /// `uint32_t residual`: expected minus transferred bytes.
    pub residual: U32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn accepts_x86_64_layout() {
        // Numbers as gcc lays out io/blkif.h on x86_64 (checked against the
        // header by tests/header_layout.rs).
        assert_eq!(size_of::<RawSegment>(), 8);
        assert_eq!(size_of::<RawRequest64>(), 112);
        assert_eq!(offset_of!(RawRequest64, handle), 2);
        assert_eq!(offset_of!(RawRequest64, id), 8);
        assert_eq!(offset_of!(RawRequest64, sector_number), 16);
        assert_eq!(offset_of!(RawRequest64, seg), 24);
        assert_eq!(size_of::<RawDiscard64>(), 32);
        assert_eq!(offset_of!(RawDiscard64, nr_sectors), 24);
        assert_eq!(size_of::<RawIndirect64>(), 64);
        assert_eq!(offset_of!(RawIndirect64, handle), 24);
        assert_eq!(offset_of!(RawIndirect64, indirect_grefs), 28);
        assert_eq!(size_of::<RawResponse64>(), 16);
        assert_eq!(offset_of!(RawResponse64, status), 10);
    }

    #[test]
    fn accepts_x86_32_layout() {
        assert_eq!(size_of::<RawRequest32>(), 108);
        assert_eq!(offset_of!(RawRequest32, id), 4);
        assert_eq!(offset_of!(RawRequest32, sector_number), 12);
        assert_eq!(offset_of!(RawRequest32, seg), 20);
        assert_eq!(size_of::<RawDiscard32>(), 28);
        assert_eq!(offset_of!(RawDiscard32, nr_sectors), 20);
        assert_eq!(size_of::<RawIndirect32>(), 64);
        assert_eq!(offset_of!(RawIndirect32, handle), 20);
        assert_eq!(offset_of!(RawIndirect32, indirect_grefs), 24);
        assert_eq!(size_of::<RawResponse32>(), 12);
    }

    #[test]
    fn accepts_extra_slot_layout() {
        assert_eq!(size_of::<RawExtraRequest>(), 20);
        assert_eq!(offset_of!(RawExtraRequest, cmd_gref), 4);
        assert_eq!(offset_of!(RawExtraRequest, nr_segments), 8);
        assert_eq!(offset_of!(RawExtraRequest, last_seg_len), 10);
        assert_eq!(offset_of!(RawExtraRequest, sense_gref), 12);
        assert_eq!(offset_of!(RawExtraRequest, data_dir), 16);
        assert_eq!(size_of::<RawExtraResponse>(), 8);
        assert_eq!(offset_of!(RawExtraResponse, residual), 4);
    }
}
