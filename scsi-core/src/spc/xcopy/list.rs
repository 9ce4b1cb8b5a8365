//! The EXTENDED COPY (LID1) parameter list (SPC-4 §6.4.3): the header, the
//! CSCD (copy source and copy destination) descriptors and the segment
//! descriptors, parsed into plain values before anything is copied.
//!
//! The copy manager implements one CSCD descriptor type, the identification
//! descriptor (E4h) naming a logical unit by its designator, and one
//! segment descriptor type, block device to block device (02h). Everything
//! else is refused with the additional sense code SPC-4 gives it.

use crate::cdb::{be16, be32, be64};
use crate::sense::{Asc, Sense};

/// Length of the parameter list header.
pub(crate) const HEADER_LEN: usize = 16;
/// Length of an identification CSCD descriptor (E4h).
pub(crate) const CSCD_LEN: usize = 32;
/// Length of a block to block segment descriptor (02h).
pub(crate) const B2B_LEN: usize = 28;
/// MAXIMUM CSCD DESCRIPTOR COUNT.
pub(crate) const MAX_CSCDS: u16 = 8;
/// MAXIMUM SEGMENT DESCRIPTOR COUNT.
pub(crate) const MAX_SEGMENTS: u16 = 64;
/// MAXIMUM DESCRIPTOR LIST LENGTH: both lists at their largest
/// (`MAX_CSCDS * CSCD_LEN + MAX_SEGMENTS * B2B_LEN`, checked by a test).
pub(crate) const MAX_DESC_LIST_LEN: u32 = 2048;
/// The largest parameter list the copy manager reads (no inline data).
pub(crate) const MAX_PARAM_LEN: u32 = 16 + MAX_DESC_LIST_LEN;

/// Identification CSCD descriptor type code.
pub(crate) const CSCD_IDENTIFICATION: u8 = 0xe4;
/// Block device to block device segment descriptor type code.
pub(crate) const SEG_BLOCK_TO_BLOCK: u8 = 0x02;

/// LIST ID USAGE (SPC-4 table 106).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListIdUsage {
    /// 00b: the list identifier is held, and so are the copy results until
    /// RECEIVE COPY RESULTS asks for them.
    Hold,
    /// 10b: the list identifier is unique while the copy runs; nothing is
    /// held afterwards.
    Unique,
    /// 11b: no list identifier.
    None,
}

/// A logical unit named by a CSCD descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cscd {
    /// The designation descriptor's code set, association and type byte
    /// pair, and the designator itself (at most 16 bytes).
    pub code_set: u8,
    pub association: u8,
    pub designator_type: u8,
    pub designator: [u8; 16],
    pub designator_len: u8,
    /// DISK BLOCK LENGTH from the block device type specific parameters.
    pub block_len: u32,
    /// Offset of the descriptor in the parameter list (for field pointers).
    pub at: u16,
}

impl Cscd {
    /// The designator bytes.
    pub(crate) fn designator(&self) -> &[u8] {
        &self.designator[..usize::from(self.designator_len)]
    }
}

/// A block to block segment descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// SOURCE CSCD DESCRIPTOR ID.
    pub source: u16,
    /// DESTINATION CSCD DESCRIPTOR ID.
    pub destination: u16,
    /// DC: NUMBER OF BLOCKS counts destination blocks (else source blocks).
    pub dc: bool,
    /// NUMBER OF BLOCKS.
    pub blocks: u16,
    /// SOURCE LOGICAL BLOCK ADDRESS.
    pub source_lba: u64,
    /// DESTINATION LOGICAL BLOCK ADDRESS.
    pub destination_lba: u64,
    /// Offset of the descriptor in the parameter list.
    pub at: u16,
}

/// A parsed parameter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyList {
    /// LIST IDENTIFIER.
    pub list_id: u8,
    /// LIST ID USAGE.
    pub usage: ListIdUsage,
    /// CSCD descriptors, in list order (their index is their ID).
    pub cscds: Vec<Cscd>,
    /// Segment descriptors, in list order.
    pub segments: Vec<Segment>,
}

fn at16(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(u16::MAX)
}

/// ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR.
pub(crate) fn length_error() -> Sense {
    Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR)
}

/// Parse the parameter list `p` (exactly PARAMETER LIST LENGTH bytes, at
/// least the header).
///
/// The checks run in the order libiscsi's ExtendedCopy family expects of
/// a copy manager: lengths against the parameter list first (PARAMETER
/// LIST LENGTH ERROR), then descriptor counts (TOO MANY TARGET / SEGMENT
/// DESCRIPTORS), then each descriptor's type code and fields.
pub(crate) fn parse(p: &[u8]) -> Result<CopyList, Sense> {
    if p.len() < HEADER_LEN {
        return Err(length_error());
    }
    let list_id = p[0];
    let usage = match (p[1] >> 3) & 3 {
        0 => ListIdUsage::Hold,
        2 => ListIdUsage::Unique,
        3 => ListIdUsage::None,
        _ => return Err(Sense::invalid_param_field(1, Some(4))),
    };
    let cscd_len = usize::from(be16(p, 2));
    let seg_len = usize::try_from(be32(p, 8)).unwrap_or(usize::MAX);
    let inline_len = be32(p, 12);
    let lists = cscd_len.saturating_add(seg_len);
    if lists > MAX_DESC_LIST_LEN as usize || HEADER_LEN.saturating_add(lists) > p.len() {
        return Err(length_error());
    }
    if inline_len != 0 {
        // MAXIMUM INLINE DATA LENGTH is zero.
        return Err(Sense::invalid_param_field(12, None));
    }
    if cscd_len > usize::from(MAX_CSCDS) * CSCD_LEN {
        return Err(Sense::illegal(Asc::TOO_MANY_TARGET_DESCRIPTORS));
    }
    let cscds = parse_cscds(p, HEADER_LEN, cscd_len)?;
    let segments = parse_segments(p, HEADER_LEN + cscd_len, seg_len)?;
    Ok(CopyList {
        list_id,
        usage,
        cscds,
        segments,
    })
}

fn parse_cscds(p: &[u8], start: usize, len: usize) -> Result<Vec<Cscd>, Sense> {
    let mut out = Vec::with_capacity(len / CSCD_LEN);
    let mut at = start;
    let end = start + len;
    while at < end {
        let code = p[at];
        // Every CSCD descriptor type is 32 bytes except the 64-byte ones
        // (EAh-EBh IPv6 and iSCSI-named, SPC-4 table 109); none of them is
        // implemented, so the type code is what is refused.
        if code != CSCD_IDENTIFICATION {
            return Err(Sense::illegal(Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE)
                .with_field(crate::sense::FieldPointer::param(at16(at))));
        }
        if at + CSCD_LEN > end {
            return Err(length_error());
        }
        let d = &p[at..at + CSCD_LEN];
        // Byte 1: LU ID TYPE and NUL are ignored (SPC-4 makes the former
        // ignored for identification descriptors and the latter obsolete);
        // PERIPHERAL DEVICE TYPE must be a block device.
        if d[1] & 0x1f != 0 {
            return Err(Sense::invalid_param_field(at16(at + 1), Some(4)));
        }
        let designator_len = d[7];
        if designator_len > 16 {
            return Err(Sense::invalid_param_field(at16(at + 7), None));
        }
        let mut designator = [0u8; 16];
        designator[..usize::from(designator_len)]
            .copy_from_slice(&d[8..8 + usize::from(designator_len)]);
        out.push(Cscd {
            code_set: d[4] & 0x0f,
            association: (d[5] >> 4) & 3,
            designator_type: d[5] & 0x0f,
            designator,
            designator_len,
            block_len: u32::from_be_bytes([0, d[29], d[30], d[31]]),
            at: at16(at),
        });
        at += CSCD_LEN;
    }
    Ok(out)
}

fn parse_segments(p: &[u8], start: usize, len: usize) -> Result<Vec<Segment>, Sense> {
    let mut out = Vec::new();
    let mut at = start;
    let end = start + len;
    while at < end {
        if at + 4 > end {
            return Err(length_error());
        }
        let code = p[at];
        if code != SEG_BLOCK_TO_BLOCK {
            return Err(
                Sense::illegal(Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE)
                    .with_field(crate::sense::FieldPointer::param(at16(at))),
            );
        }
        if usize::from(be16(p, at + 2)) != B2B_LEN - 4 {
            return Err(Sense::invalid_param_field(at16(at + 2), None));
        }
        if at + B2B_LEN > end {
            return Err(length_error());
        }
        if out.len() == usize::from(MAX_SEGMENTS) {
            return Err(Sense::illegal(Asc::TOO_MANY_SEGMENT_DESCRIPTORS));
        }
        let d = &p[at..at + B2B_LEN];
        out.push(Segment {
            source: be16(d, 4),
            destination: be16(d, 6),
            dc: d[1] & 0x02 != 0,
            blocks: be16(d, 10),
            source_lba: be64(d, 12),
            destination_lba: be64(d, 20),
            at: at16(at),
        });
        at += B2B_LEN;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cscd_len: u16, seg_len: u32, usage: u8) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[0] = 7;
        h[1] = usage << 3;
        h[2..4].copy_from_slice(&cscd_len.to_be_bytes());
        h[8..12].copy_from_slice(&seg_len.to_be_bytes());
        h
    }

    fn cscd(naa: u64) -> Vec<u8> {
        let mut d = vec![0u8; CSCD_LEN];
        d[0] = CSCD_IDENTIFICATION;
        d[4] = 1;
        d[5] = 3;
        d[7] = 8;
        d[8..16].copy_from_slice(&naa.to_be_bytes());
        d[29..32].copy_from_slice(&[0, 2, 0]);
        d
    }

    fn segment(src: u16, dst: u16, blocks: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
        let mut d = vec![0u8; B2B_LEN];
        d[0] = SEG_BLOCK_TO_BLOCK;
        d[2..4].copy_from_slice(&24u16.to_be_bytes());
        d[4..6].copy_from_slice(&src.to_be_bytes());
        d[6..8].copy_from_slice(&dst.to_be_bytes());
        d[10..12].copy_from_slice(&blocks.to_be_bytes());
        d[12..20].copy_from_slice(&src_lba.to_be_bytes());
        d[20..28].copy_from_slice(&dst_lba.to_be_bytes());
        d
    }

    fn list(cscds: usize, segs: usize) -> Vec<u8> {
        let mut p = header(
            u16::try_from(cscds * CSCD_LEN).unwrap(),
            u32::try_from(segs * B2B_LEN).unwrap(),
            0,
        );
        for i in 0..cscds {
            p.extend(cscd(0x3000_0000_0000_0000 | i as u64));
        }
        for _ in 0..segs {
            p.extend(segment(0, 0, 8, 0, 100));
        }
        p
    }

    #[test]
    fn limits_agree() {
        let lists = usize::from(MAX_CSCDS) * CSCD_LEN + usize::from(MAX_SEGMENTS) * B2B_LEN;
        assert_eq!(MAX_DESC_LIST_LEN as usize, lists);
        assert_eq!(MAX_PARAM_LEN as usize, HEADER_LEN + lists);
    }

    #[test]
    fn parses_a_one_segment_copy() {
        let l = parse(&list(1, 1)).unwrap();
        assert_eq!(l.list_id, 7);
        assert_eq!(l.usage, ListIdUsage::Hold);
        assert_eq!(l.cscds.len(), 1);
        assert_eq!(l.cscds[0].designator_type, 3);
        assert_eq!(
            l.cscds[0].designator(),
            &0x3000_0000_0000_0000u64.to_be_bytes()
        );
        assert_eq!(l.cscds[0].block_len, 512);
        assert_eq!(l.segments[0].blocks, 8);
        assert_eq!(l.segments[0].destination_lba, 100);
        assert_eq!(l.segments[0].at, 48);
    }

    #[test]
    fn rejects_truncated_lists_with_parameter_list_length_error() {
        let p = list(1, 1);
        for cut in [0, 15, 16 + CSCD_LEN - 1, p.len() - 1] {
            assert_eq!(
                parse(&p[..cut]).unwrap_err().asc,
                Asc::PARAMETER_LIST_LENGTH_ERROR,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn counts_descriptors_against_the_operating_parameters() {
        let e = parse(&list(usize::from(MAX_CSCDS) + 1, 1)).unwrap_err();
        assert_eq!(e.asc, Asc::TOO_MANY_TARGET_DESCRIPTORS);
        let e = parse(&list(1, usize::from(MAX_SEGMENTS) + 1)).unwrap_err();
        assert_eq!(e.asc, Asc::TOO_MANY_SEGMENT_DESCRIPTORS);
        // Lists longer than MAXIMUM DESCRIPTOR LIST LENGTH are a length
        // error before they are too many descriptors.
        let e = parse(&list(usize::from(MAX_CSCDS) + 1, usize::from(MAX_SEGMENTS))).unwrap_err();
        assert_eq!(e.asc, Asc::PARAMETER_LIST_LENGTH_ERROR);
        assert!(parse(&list(usize::from(MAX_CSCDS), usize::from(MAX_SEGMENTS))).is_ok());
    }

    #[test]
    fn refuses_unimplemented_descriptor_types_and_fields() {
        let mut p = list(1, 1);
        p[16] = 0xe0; // FC N_Port_Name CSCD descriptor
        let e = parse(&p).unwrap_err();
        assert_eq!(e.asc, Asc::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE);
        assert_eq!(e.field.unwrap().byte, 16);

        let mut p = list(1, 1);
        p[48] = 0x03; // stream to stream
        assert_eq!(
            parse(&p).unwrap_err().asc,
            Asc::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE
        );

        let mut p = list(1, 1);
        p[17] = 0x01; // a sequential-access CSCD
        let e = parse(&p).unwrap_err();
        assert_eq!(e.asc, Asc::INVALID_FIELD_IN_PARAMETER_LIST);
        assert_eq!(e.field.unwrap().byte, 17);

        let mut p = list(1, 1);
        p[1] = 1 << 3; // LIST ID USAGE 01b is reserved
        assert_eq!(parse(&p).unwrap_err().field.unwrap().byte, 1);

        let mut p = list(1, 1);
        p[15] = 1; // inline data
        assert_eq!(parse(&p).unwrap_err().field.unwrap().byte, 12);

        let mut p = list(1, 1);
        p[51] = 0x10; // wrong segment descriptor length
        assert_eq!(parse(&p).unwrap_err().field.unwrap().byte, 50);

        let mut p = list(1, 1);
        p[23] = 17; // designator longer than the descriptor holds
        assert_eq!(parse(&p).unwrap_err().field.unwrap().byte, 23);
    }

    #[test]
    fn ignores_lu_id_type_and_nul() {
        let mut p = list(1, 1);
        p[17] = 0xe0; // LU ID TYPE 11b, NUL
        assert!(parse(&p).is_ok());
    }

    #[test]
    fn accepts_an_empty_copy() {
        let l = parse(&header(0, 0, 3)).unwrap();
        assert_eq!(l.usage, ListIdUsage::None);
        assert!(l.cscds.is_empty() && l.segments.is_empty());
    }
}
