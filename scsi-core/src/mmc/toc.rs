//! READ TOC/PMA/ATIP (MMC-6 §6.26) for a disc of one session holding one
//! data track: the TOC (0000b), session information (0001b) and, on a CD,
//! the full TOC (0010b). The PMA, ATIP and CD-TEXT formats belong to
//! recordable or audio discs and are refused.

use super::Disc;
use crate::engine::exec::{Ctx, Outcome};
use crate::sense::Sense;

/// ADR 1 (Q sub-channel position), CONTROL 4 (data track, recorded
/// uninterrupted).
const ADR_CONTROL: u8 = 0x14;
/// The lead-out's track number.
const LEAD_OUT: u8 = 0xaa;

/// An LBA as a 4-byte address field: the LBA, or 0/M/S/F with the
/// 2-second (150-frame) pregap (MMC-6 §4.2.3.4). Minutes saturate at 255 on
/// a disc too big for MSF form.
fn address(lba: u32, msf: bool) -> [u8; 4] {
    if !msf {
        return lba.to_be_bytes();
    }
    let [m, s, f] = msf_of(lba);
    [0, m, s, f]
}

fn msf_of(lba: u32) -> [u8; 3] {
    let frames = u64::from(lba) + 150;
    let m = u8::try_from(frames / (60 * 75)).unwrap_or(u8::MAX);
    // Both below 75 and 60: the casts cannot truncate.
    let s = u8::try_from(frames / 75 % 60).unwrap_or(0);
    let f = u8::try_from(frames % 75).unwrap_or(0);
    [m, s, f]
}

fn with_length(mut body: Vec<u8>) -> Vec<u8> {
    let len = u16::try_from(body.len() - 2).unwrap_or(u16::MAX);
    body[0..2].copy_from_slice(&len.to_be_bytes());
    body
}

/// READ TOC/PMA/ATIP.
pub(crate) fn read_toc(ctx: &Ctx<'_>, msf: bool, format: u8, track: u8, alloc_len: u16) -> Outcome {
    let disc = Disc::of(ctx);
    let data = match format {
        0 => {
            // Descriptors from TRACK NUMBER on: track 1, then the lead-out.
            let tracks: &[(u8, u32)] = match track {
                0 | 1 => &[(1, 0), (LEAD_OUT, disc.lead_out())],
                LEAD_OUT => &[(LEAD_OUT, disc.lead_out())],
                _ => return Err(Sense::invalid_cdb_field(6, None)),
            };
            let mut d = vec![0, 0, 1, 1];
            for &(number, lba) in tracks {
                d.extend_from_slice(&[0, ADR_CONTROL, number, 0]);
                d.extend_from_slice(&address(lba, msf));
            }
            with_length(d)
        }
        1 => {
            // The first complete session is also the last: track 1 at 0.
            let mut d = vec![0, 0, 1, 1, 0, ADR_CONTROL, 1, 0];
            d.extend_from_slice(&address(0, msf));
            with_length(d)
        }
        2 if disc.cd => {
            if track > 1 {
                return Err(Sense::invalid_cdb_field(6, None));
            }
            let mut d = vec![0, 0, 1, 1];
            // POINT A0h (first track; disc type 00h, CD-ROM), A1h (last
            // track), A2h (lead-out start), then track 1's start.
            let points = [
                (0xa0, [1, 0, 0]),
                (0xa1, [1, 0, 0]),
                (0xa2, msf_of(disc.lead_out())),
                (0x01, msf_of(0)),
            ];
            for (point, p) in points {
                d.extend_from_slice(&[1, ADR_CONTROL, 0, point, 0, 0, 0, 0]);
                d.extend_from_slice(&p);
            }
            with_length(d)
        }
        _ => return Err(Sense::invalid_cdb_field(2, Some(3))),
    };
    Ok(ctx.data_in(&data, usize::from(alloc_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msf_counts_the_pregap() {
        assert_eq!(msf_of(0), [0, 2, 0]);
        assert_eq!(msf_of(75 * 60 - 150), [1, 0, 0]);
        assert_eq!(address(16, true), [0, 0, 2, 16]);
        assert_eq!(address(16, false), [0, 0, 0, 16]);
        assert_eq!(msf_of(u32::MAX)[0], u8::MAX);
    }
}
