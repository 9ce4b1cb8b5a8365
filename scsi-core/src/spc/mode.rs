//! Mode parameters (SPC-4 §7.5, SBC-4 §6.5, MMC-6 §7, SSC-3 §8.3): MODE
//! SENSE and MODE SELECT for the Read-Write Error Recovery (01h), Caching
//! (08h), Control (0Ah), Data Compression (0Fh), Device Configuration (10h),
//! Informational Exceptions Control (1Ch) and MM Capabilities (2Ah) pages,
//! each device model serving its own list of them, and the tape block
//! descriptor's block length.
//!
//! Each page is built from the logical unit's [`ModeParams`] in one of three
//! forms (current, changeable mask, default); saved values are not
//! implemented, so page control 11b and SP=1 are refused with SAVING
//! PARAMETERS NOT SUPPORTED / INVALID FIELD IN CDB (SPC-4 §6.13, §6.11).

use crate::backstore::Capabilities;
use crate::cdb::Cdb;
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::engine::lu::ModeParams;
use crate::sense::{Asc, Sense};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Current,
    Changeable,
    Default,
}

fn build(code: u8, form: Form, p: &ModeParams, wce_changeable: bool, locked: bool) -> Vec<u8> {
    let changeable = form == Form::Changeable;
    let def = ModeParams::defaults(p.wce);
    let v = match form {
        Form::Current => *p,
        Form::Default => def,
        Form::Changeable => *p,
    };
    let mut d = match code {
        0x01 => {
            let mut d = vec![0u8; 12];
            if !changeable {
                d[2] = 0xc0; // AWRE, ARRE: automatic reallocation (nothing to do)
            }
            d
        }
        0x08 => {
            let mut d = vec![0u8; 20];
            if changeable {
                if wce_changeable {
                    d[2] = 0x04;
                }
            } else if v.wce {
                d[2] = 0x04;
            }
            d
        }
        0x0a => {
            let mut d = vec![0u8; 12];
            if changeable {
                d[2] = 0x04; // D_SENSE
                d[4] = 0x08; // SWP
                d[5] = 0x40; // TAS
            } else {
                d[2] = if v.d_sense { 0x04 } else { 0 };
                d[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
                d[4] = if v.swp { 0x08 } else { 0 };
                d[5] = if v.tas { 0x40 } else { 0 };
                d[8..10].copy_from_slice(&0xffffu16.to_be_bytes()); // busy timeout: unlimited
            }
            d
        }
        0x2a => crate::mmc::capabilities_page(changeable, locked),
        // SSC-3 §8.3.2: Data Compression, not capable (DCC zero).
        0x0f => vec![0u8; 16],
        // SSC-3 §8.3.3: Device Configuration. LOIS (READ POSITION reports
        // logical object identifiers), EEG (end-of-data is written) and
        // SEW (buffered data is written at early warning); none changeable.
        0x10 => {
            let mut d = vec![0u8; 16];
            if !changeable {
                d[8] = 0x40;
                d[10] = 0x18;
            }
            d
        }
        0x1c => {
            let mut d = vec![0u8; 12];
            if !changeable {
                d[2] = if v.dexcpt { 0x08 } else { 0 };
                d[3] = v.mrie & 0x0f;
            }
            d
        }
        _ => Vec::new(),
    };
    if !d.is_empty() {
        d[0] = code;
        d[1] = u8::try_from(d.len() - 2).unwrap_or(0);
    }
    d
}

/// MODE SENSE (6) and (10) (SPC-4 §6.13, §6.14).
pub(crate) fn sense(ctx: &Ctx<'_>, cdb: &Cdb) -> Outcome {
    let Cdb::ModeSense {
        long,
        dbd,
        llbaa,
        pc,
        page,
        subpage,
        alloc_len,
    } = *cdb
    else {
        return Ok(Xfer::NONE);
    };
    let form = match pc {
        0 => Form::Current,
        1 => Form::Changeable,
        2 => Form::Default,
        _ => return Err(Sense::illegal(Asc::SAVING_PARAMETERS_NOT_SUPPORTED)),
    };
    if subpage != 0x00 && subpage != 0xff {
        return Err(Sense::invalid_cdb_field(3, None));
    }
    let (params, locked) = {
        let state = ctx.lu.state();
        (state.mode, !state.medium.prevent.is_empty())
    };
    let wce_changeable = ctx
        .lu
        .backstore
        .capabilities()
        .contains(Capabilities::WRITE_CACHE_TOGGLE);
    // The page codes of the unit's device model, ascending (the order MODE
    // SENSE 3Fh returns).
    let known = ctx.lu.device.model().mode_pages;
    let tape = ctx.lu.device == crate::device::DeviceType::Tape;
    let mut pages = Vec::new();
    if page == 0 && tape {
        // The header and block descriptor alone, as Linux's st asks for
        // them (page 00h is vendor specific: ours has no page data).
    } else if page == 0x3f {
        for &code in known {
            pages.extend(build(code, form, &params, wce_changeable, locked));
        }
    } else if known.contains(&page) {
        pages.extend(build(page, form, &params, wce_changeable, locked));
    } else {
        return Err(Sense::invalid_cdb_field(2, Some(5)));
    }

    // Block descriptor (SPC-4 §7.5.5/7.5.6).
    let g = ctx.geometry;
    let blocks = g.blocks();
    let bd: Vec<u8> = if dbd {
        Vec::new()
    } else if tape {
        // SSC-3 §8.3: DENSITY CODE 0 (default), NUMBER OF BLOCKS 0 (the
        // rest of the medium), BLOCK LENGTH (0 = variable).
        let mut b = vec![0u8; 8];
        let len = match form {
            Form::Default => 0,
            _ => params.block_len,
        };
        b[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
        b
    } else if llbaa {
        let mut b = vec![0u8; 16];
        b[0..8].copy_from_slice(&blocks.to_be_bytes());
        b[12..16].copy_from_slice(&g.logical_block_size.to_be_bytes());
        b
    } else {
        let mut b = vec![0u8; 8];
        let n = u32::try_from(blocks).unwrap_or(u32::MAX);
        b[0..4].copy_from_slice(&n.to_be_bytes());
        b[5..8].copy_from_slice(&g.logical_block_size.to_be_bytes()[1..]);
        b
    };
    // DEVICE-SPECIFIC PARAMETER (SBC-4 §6.5.1): WP and DPOFUA; reserved
    // for a CD/DVD device (MMC-6 §7.2.2).
    let wp = ctx.lu.read_only || params.swp;
    let dsp = match ctx.lu.device {
        crate::device::DeviceType::Cdrom => 0,
        _ => (if wp { 0x80 } else { 0 }) | 0x10,
    };
    let mut d = Vec::with_capacity(8 + bd.len() + pages.len());
    if long {
        let len = 6 + bd.len() + pages.len();
        d.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        d.push(0);
        d.push(dsp);
        d.push(u8::from(llbaa && !dbd));
        d.push(0);
        d.extend_from_slice(&u16::try_from(bd.len()).unwrap_or(0).to_be_bytes());
    } else {
        let len = 3 + bd.len() + pages.len();
        d.push(u8::try_from(len).unwrap_or(u8::MAX));
        d.push(0);
        d.push(dsp);
        d.push(u8::try_from(bd.len()).unwrap_or(0));
    }
    d.extend_from_slice(&bd);
    d.extend_from_slice(&pages);
    Ok(ctx.data_in(&d, usize::from(alloc_len)))
}

/// MODE SELECT (6) and (10) (SPC-4 §6.11, §6.12).
pub(crate) async fn select(
    ctx: &Ctx<'_>,
    long: bool,
    pf: bool,
    sp: bool,
    param_len: u16,
) -> Outcome {
    if sp {
        return Err(Sense::invalid_cdb_field(1, Some(0)));
    }
    let param_len = usize::from(param_len);
    if param_len == 0 {
        return Ok(Xfer::NONE);
    }
    let header_len = if long { 8 } else { 4 };
    if param_len < header_len {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let Some(p) = ctx.data_out(param_len) else {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    };
    let bd_len = if long {
        usize::from(u16::from_be_bytes([p[6], p[7]]))
    } else {
        usize::from(p[3])
    };
    let g = ctx.geometry;
    let mut at = header_len;
    // Block descriptors: the block length must stay what it is.
    let bd_size = if long && p[4] & 1 != 0 { 16 } else { 8 };
    if bd_len % bd_size != 0 || at + bd_len > param_len {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let tape = ctx.lu.device == crate::device::DeviceType::Tape;
    let mut block_len = None;
    while tape && at < header_len + bd_len {
        // SSC-3 §8.3: the density must be the default one; the block
        // length is 0 (variable) or one READ BLOCK LIMITS allows.
        if bd_size != 8 || p[at] != 0 {
            return Err(Sense::invalid_param_field(
                u16::try_from(at).unwrap_or(0),
                None,
            ));
        }
        let blen = u32::from_be_bytes([0, p[at + 5], p[at + 6], p[at + 7]]);
        if blen > crate::ssc::MAX_BLOCK_LEN {
            return Err(Sense::invalid_param_field(
                u16::try_from(at + 5).unwrap_or(0),
                None,
            ));
        }
        block_len = Some(blen);
        at += bd_size;
    }
    while at < header_len + bd_len {
        let (blen_off, blen) = if bd_size == 16 {
            (
                at + 12,
                u32::from_be_bytes([p[at + 12], p[at + 13], p[at + 14], p[at + 15]]),
            )
        } else {
            (
                at + 5,
                u32::from_be_bytes([0, p[at + 5], p[at + 6], p[at + 7]]),
            )
        };
        if blen != g.logical_block_size {
            return Err(Sense::invalid_param_field(
                u16::try_from(blen_off).unwrap_or(0),
                None,
            ));
        }
        at += bd_size;
    }

    let caps = ctx.lu.backstore.capabilities();
    let wce_changeable = caps.contains(Capabilities::WRITE_CACHE_TOGGLE);
    let (old, locked) = {
        let state = ctx.lu.state();
        (state.mode, !state.medium.prevent.is_empty())
    };
    let mut new = old;
    if let Some(len) = block_len {
        new.block_len = len;
    }
    if !pf && at < param_len {
        // Pages only in the standard page format (a header and block
        // descriptors alone do without it).
        return Err(Sense::invalid_cdb_field(1, Some(4)));
    }
    while at < param_len {
        if at + 2 > param_len {
            return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let code = p[at] & 0x3f;
        if p[at] & 0x40 != 0 {
            // SPF: no subpages implemented.
            return Err(Sense::invalid_param_field(
                u16::try_from(at).unwrap_or(0),
                Some(6),
            ));
        }
        let ours = if ctx.lu.device.model().mode_pages.contains(&code) {
            build(code, Form::Current, &old, wce_changeable, locked)
        } else {
            Vec::new()
        };
        if ours.is_empty() {
            return Err(Sense::invalid_param_field(
                u16::try_from(at).unwrap_or(0),
                Some(5),
            ));
        }
        let len = usize::from(p[at + 1]) + 2;
        if len != ours.len() {
            return Err(Sense::invalid_param_field(
                u16::try_from(at + 1).unwrap_or(0),
                None,
            ));
        }
        if at + len > param_len {
            return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        let mask = build(code, Form::Changeable, &old, wce_changeable, locked);
        let page = &p[at..at + len];
        for i in 2..len {
            if (page[i] ^ ours[i]) & !mask[i] != 0 {
                return Err(Sense::invalid_param_field(
                    u16::try_from(at + i).unwrap_or(0),
                    None,
                ));
            }
        }
        match code {
            0x08 => new.wce = page[2] & 0x04 != 0,
            0x0a => {
                new.d_sense = page[2] & 0x04 != 0;
                new.swp = page[4] & 0x08 != 0;
                new.tas = page[5] & 0x40 != 0;
            }
            _ => {}
        }
        at += len;
    }
    if new.wce != old.wce {
        if let Err(err) = ctx.lu.backstore.set_write_cache(new.wce) {
            tracing::warn!(%err, "backstore refused the write-cache change");
            return Err(err.sense());
        }
        if !new.wce {
            // Writes acknowledged while the cache was on must be durable
            // once it is off (SBC-4 §4.15).
            ctx.lu.backstore.flush().await.map_err(|e| e.sense())?;
        }
    }
    if new != old {
        let mut state = ctx.lu.state();
        state.mode = new;
        state.raise_all(Asc::MODE_PARAMETERS_CHANGED, Some(ctx.nexus));
    }
    Ok(Xfer {
        len: param_len,
        wanted: param_len,
    })
}
