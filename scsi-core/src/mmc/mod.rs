//! Multimedia commands (MMC-6): the CD/DVD device model
//! ([`DeviceType::Cdrom`](crate::device::DeviceType::Cdrom)).
//!
//! The medium is the logical unit's backstore, read-only, in 2048-byte
//! blocks: a disc holding one complete session of one data track (mode 1)
//! from LBA 0 to the last block, the way an ISO 9660 image is burnt. READ,
//! READ CAPACITY, START STOP UNIT (eject and load) and PREVENT ALLOW MEDIUM
//! REMOVAL are the disk model's handlers; this module adds what a CD/DVD
//! device has of its own:
//!
//! * READ TOC/PMA/ATIP formats 0000b (TOC), 0001b (session information)
//!   and 0010b (full TOC) ([`toc`]);
//! * GET CONFIGURATION: the profile list (CD-ROM or DVD-ROM by size) and
//!   the features a read-only drive has ([`features`]);
//! * GET EVENT STATUS NOTIFICATION (polled, media class), READ DISC
//!   INFORMATION, READ TRACK INFORMATION and MECHANISM STATUS;
//! * the MM Capabilities and Mechanical Status mode page (2Ah).
//!
//! Writing (the CD-R/RW, DVD±R and BD profiles) is not implemented: their
//! commands are not in the table and answer INVALID COMMAND OPERATION CODE.

mod features;
mod toc;

pub(crate) use features::get_configuration;
pub(crate) use toc::read_toc;

use crate::engine::exec::{Ctx, Outcome};
use crate::sense::{Asc, Sense};

/// Media event code NEW MEDIA (MMC-6 table 128).
pub(crate) const NEW_MEDIA: u8 = 2;
/// Media event code MEDIA REMOVAL.
pub(crate) const MEDIA_REMOVAL: u8 = 3;

/// The largest disc addressable in MSF form (99:59:74 less the 2-second
/// pregap), in blocks: a bigger medium is reported as a DVD.
const CD_MAX_BLOCKS: u64 = (99 * 60 + 59) * 75 + 74 + 1 - 150;

/// The disc the backstore holds, as the MMC commands describe it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Disc {
    /// Blocks of the one data track (the lead-out starts here).
    pub blocks: u64,
    /// A CD (profile 0008h) rather than a DVD (0010h).
    pub cd: bool,
}

impl Disc {
    pub(crate) fn of(ctx: &Ctx<'_>) -> Self {
        Self::new(ctx.geometry.blocks())
    }

    fn new(blocks: u64) -> Self {
        Self {
            blocks,
            cd: blocks <= CD_MAX_BLOCKS,
        }
    }

    /// The lead-out's LBA, as a 32-bit address field.
    pub(crate) fn lead_out(self) -> u32 {
        u32::try_from(self.blocks).unwrap_or(u32::MAX)
    }
}

/// Whether the medium is in.
fn present(ctx: &Ctx<'_>) -> bool {
    !ctx.lu.state().medium.ejected
}

fn alloc(alloc_len: u16) -> usize {
    usize::from(alloc_len)
}

/// GET EVENT STATUS NOTIFICATION (MMC-6 §6.7), polled: the media class
/// only. A media event (new media after a load, media removal after an
/// eject) is reported once, to the first command that returns the whole
/// descriptor.
pub(crate) fn get_event_status(
    ctx: &Ctx<'_>,
    polled: bool,
    classes: u8,
    alloc_len: u16,
) -> Outcome {
    const MEDIA_CLASS: u8 = 0x10;
    if !polled {
        // Asynchronous operation is not supported (MMC-6 §6.7.1).
        return Err(Sense::invalid_cdb_field(1, Some(0)));
    }
    let mut d = vec![0u8; 4];
    d[3] = MEDIA_CLASS; // SUPPORTED EVENT CLASSES
    if classes & MEDIA_CLASS == 0 {
        // No supported class asked for: NEA, no event descriptor.
        d[1] = 2;
        d[2] = 0x80;
        return Ok(ctx.data_in(&d, alloc(alloc_len)));
    }
    let mut state = ctx.lu.state();
    let ejected = state.medium.ejected;
    let event = state.medium.event;
    d[1] = 6;
    d[2] = 0x04; // NOTIFICATION CLASS: media
    d.extend_from_slice(&[
        event,
        if ejected { 0x01 } else { 0x02 }, // DOOR OPEN / MEDIA PRESENT
        0,
        0,
    ]);
    if alloc(alloc_len) >= d.len() {
        state.medium.event = 0;
    }
    drop(state);
    Ok(ctx.data_in(&d, alloc(alloc_len)))
}

/// READ DISC INFORMATION (MMC-6 §6.22), data type 000b: a complete
/// (finalised) disc of one complete session holding track 1.
pub(crate) fn read_disc_information(ctx: &Ctx<'_>, data_type: u8, alloc_len: u16) -> Outcome {
    if data_type != 0 {
        return Err(Sense::invalid_cdb_field(1, Some(2)));
    }
    let mut d = vec![0u8; 34];
    d[0..2].copy_from_slice(&32u16.to_be_bytes());
    d[2] = 0x0e; // last session complete (11b), disc complete (10b)
    d[3] = 1; // first track on the disc
    d[4] = 1; // number of sessions
    d[5] = 1; // first track in the last session
    d[6] = 1; // last track in the last session
    d[7] = 0x20; // URU: unrestricted use
                 // Last session lead-in and last possible lead-out start: FFFFFFFFh for
                 // a complete disc.
    d[16..24].fill(0xff);
    Ok(ctx.data_in(&d, alloc(alloc_len)))
}

/// READ TRACK INFORMATION (MMC-6 §6.27) for track 1, named by an LBA in
/// it, by its number, or by its session.
pub(crate) fn read_track_information(
    ctx: &Ctx<'_>,
    open: bool,
    address_type: u8,
    address: u32,
    alloc_len: u16,
) -> Outcome {
    if open {
        // No track is open on a complete disc.
        return Err(Sense::invalid_cdb_field(1, Some(2)));
    }
    let disc = Disc::of(ctx);
    match address_type {
        0 if u64::from(address) < disc.blocks => {}
        0 => return Err(Sense::illegal(Asc::LBA_OUT_OF_RANGE)),
        1 | 2 if address == 1 => {}
        1 | 2 => return Err(Sense::invalid_cdb_field(2, None)),
        _ => return Err(Sense::invalid_cdb_field(1, Some(1))),
    }
    let mut d = vec![0u8; 48];
    d[0..2].copy_from_slice(&46u16.to_be_bytes());
    d[2] = 1; // track number
    d[3] = 1; // session number
    d[5] = 0x04; // TRACK MODE: data, recorded uninterrupted
    d[6] = 0x01; // DATA MODE 1
    d[24..28].copy_from_slice(&disc.lead_out().to_be_bytes()); // track size
    Ok(ctx.data_in(&d, alloc(alloc_len)))
}

/// MECHANISM STATUS (MMC-6 §6.11): no changer, idle, the tray open while
/// the medium is out.
pub(crate) fn mechanism_status(ctx: &Ctx<'_>, alloc_len: u16) -> Outcome {
    let mut d = vec![0u8; 8];
    if !present(ctx) {
        d[1] = 0x10; // DOOR OPEN
    }
    Ok(ctx.data_in(&d, alloc(alloc_len)))
}

/// The MM Capabilities and Mechanical Status mode page (2Ah, MMC-3 layout,
/// which initiators still read): reads CD-ROM and DVD-ROM, writes nothing,
/// a tray that ejects and locks. `locked`: a nexus prevents removal. The
/// changeable form is all zeros.
pub(crate) fn capabilities_page(changeable: bool, locked: bool) -> Vec<u8> {
    let mut d = vec![0u8; 32];
    if changeable {
        return d;
    }
    d[2] = 0x08; // DVD-ROM read
                 // Tray loading mechanism (001b), eject, lock, and the lock's state.
    d[6] = 0x20 | 0x08 | 0x01 | if locked { 0x02 } else { 0 };
    // Read speeds (obsolete, but read for the drive's speed): 40x.
    d[8..10].copy_from_slice(&7056u16.to_be_bytes());
    d[14..16].copy_from_slice(&7056u16.to_be_bytes());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disc_too_big_for_msf_is_a_dvd() {
        // 99:59:74 is the last MSF address; LBA 0 is 00:02:00.
        assert!(Disc::new(CD_MAX_BLOCKS).cd);
        assert!(!Disc::new(CD_MAX_BLOCKS + 1).cd);
        assert_eq!(CD_MAX_BLOCKS, 449_850);
        assert_eq!(Disc::new(u64::MAX).lead_out(), u32::MAX);
    }
}
