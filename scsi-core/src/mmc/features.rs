//! GET CONFIGURATION (MMC-6 §6.6): the profiles and features of a
//! read-only CD/DVD drive, one table row per feature.
//!
//! The current profile follows the medium: none while it is out, CD-ROM
//! (0008h) for an image a CD can hold in MSF form, DVD-ROM (0010h) for a
//! larger one.

use super::Disc;
use crate::engine::exec::{Ctx, Outcome};
use crate::sense::Sense;

const PROFILE_CD_ROM: u16 = 0x0008;
const PROFILE_DVD_ROM: u16 = 0x0010;

/// What a feature's current bit and body depend on.
#[derive(Clone, Copy)]
struct Drive {
    /// The disc, if the medium is in.
    disc: Option<Disc>,
}

impl Drive {
    fn profile(self) -> u16 {
        match self.disc {
            None => 0,
            Some(d) if d.cd => PROFILE_CD_ROM,
            Some(_) => PROFILE_DVD_ROM,
        }
    }
}

/// One feature descriptor (MMC-6 §5.2): its code, version, whether it is
/// persistent, whether it is current, and its additional data.
struct Feature {
    code: u16,
    version: u8,
    persistent: bool,
    current: fn(Drive) -> bool,
    body: fn(Drive) -> Vec<u8>,
}

fn always(_: Drive) -> bool {
    true
}

/// Every feature, ascending by code (the order GET CONFIGURATION returns).
static FEATURES: &[Feature] = &[
    // Profile List: DVD-ROM and CD-ROM, the current one marked.
    Feature {
        code: 0x0000,
        version: 0,
        persistent: true,
        current: always,
        body: |drive| {
            let mut d = Vec::new();
            for p in [PROFILE_DVD_ROM, PROFILE_CD_ROM] {
                d.extend_from_slice(&p.to_be_bytes());
                d.extend_from_slice(&[u8::from(drive.profile() == p), 0]);
            }
            d
        },
    },
    // Core: physical interface standard 1 (SCSI family).
    Feature {
        code: 0x0001,
        version: 2,
        persistent: true,
        current: always,
        body: |_| vec![0, 0, 0, 1, 0, 0, 0, 0],
    },
    // Morphing: neither asynchronous events nor operational change events.
    Feature {
        code: 0x0002,
        version: 1,
        persistent: true,
        current: always,
        body: |_| vec![0, 0, 0, 0],
    },
    // Removable Medium: a tray that loads, ejects and locks.
    Feature {
        code: 0x0003,
        version: 2,
        persistent: true,
        current: always,
        body: |_| vec![0x20 | 0x10 | 0x08 | 0x01, 0, 0, 0],
    },
    // Random Readable: 2048-byte blocks, blocking 1 (CD) or 16 (DVD).
    Feature {
        code: 0x0010,
        version: 0,
        persistent: false,
        current: |drive| drive.disc.is_some(),
        body: |drive| {
            let blocking: u16 = if drive.disc.is_some_and(|d| !d.cd) {
                16
            } else {
                1
            };
            let mut d = 2048u32.to_be_bytes().to_vec();
            d.extend_from_slice(&blocking.to_be_bytes());
            d.extend_from_slice(&[0, 0]);
            d
        },
    },
    // CD Read: no CD-DA, C2 pointers or CD-TEXT.
    Feature {
        code: 0x001e,
        version: 2,
        persistent: false,
        current: |drive| drive.disc.is_some_and(|d| d.cd),
        body: |_| vec![0, 0, 0, 0],
    },
    // DVD Read: single layer, no MULTI110.
    Feature {
        code: 0x001f,
        version: 1,
        persistent: false,
        current: |drive| drive.disc.is_some_and(|d| !d.cd),
        body: |_| vec![0, 0, 0, 0],
    },
];

fn descriptor(out: &mut Vec<u8>, f: &Feature, drive: Drive) {
    let body = (f.body)(drive);
    out.extend_from_slice(&f.code.to_be_bytes());
    out.push((f.version << 2) | (u8::from(f.persistent) << 1) | u8::from((f.current)(drive)));
    out.push(u8::try_from(body.len()).unwrap_or(0));
    out.extend_from_slice(&body);
}

/// GET CONFIGURATION: RT 00b every feature from STARTING FEATURE NUMBER
/// on, 01b the current ones among them, 10b only the one named.
pub(crate) fn get_configuration(ctx: &Ctx<'_>, rt: u8, start: u16, alloc_len: u16) -> Outcome {
    let drive = Drive {
        disc: (!ctx.lu.state().medium.ejected).then(|| Disc::of(ctx)),
    };
    let wanted = |f: &&Feature| match rt {
        0 => f.code >= start,
        1 => f.code >= start && (f.current)(drive),
        _ => f.code == start,
    };
    if rt == 3 {
        return Err(Sense::invalid_cdb_field(1, Some(1)));
    }
    let mut d = vec![0u8; 8];
    d[6..8].copy_from_slice(&drive.profile().to_be_bytes());
    for f in FEATURES.iter().filter(wanted) {
        descriptor(&mut d, f, drive);
    }
    let len = u32::try_from(d.len() - 4).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(ctx.data_in(&d, usize::from(alloc_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_ascend_and_fit_their_length_byte() {
        assert!(FEATURES.windows(2).all(|w| w[0].code < w[1].code));
        let drive = Drive {
            disc: Some(Disc {
                blocks: 100,
                cd: true,
            }),
        };
        for f in FEATURES {
            let body = (f.body)(drive);
            assert_eq!(body.len() % 4, 0, "feature {:#06x}", f.code);
        }
    }
}
