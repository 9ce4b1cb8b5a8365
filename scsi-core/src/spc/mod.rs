//! SCSI Primary Commands (SPC-4): INQUIRY and its VPD pages, REQUEST SENSE,
//! REPORT LUNS, LOG SENSE, mode parameters ([`mode`]), the REPORT
//! SUPPORTED ... commands ([`rsoc`]) and third-party copy ([`xcopy`]).

pub(crate) mod mode;
pub(crate) mod reserve;
pub(crate) mod rsoc;
mod vpd;
pub(crate) mod xcopy;

use crate::cdb::Cdb;
use crate::device::DeviceType;
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::engine::Target;
use crate::lun::Lun;
use crate::sense::{Asc, Sense, SenseFormat};

/// Fill `out` with `s`, space padded (SPC-4 §4.3.1 ASCII fields).
fn ascii(out: &mut [u8], s: &str) {
    out.fill(b' ');
    for (o, c) in out
        .iter_mut()
        .zip(s.bytes().filter(|c| (0x20..0x7f).contains(c)))
    {
        *o = c;
    }
}

/// Standard INQUIRY data (SPC-4 §6.6.2) with peripheral byte `peripheral`,
/// for a logical unit of model `device`.
fn standard_inquiry(
    target: &Target,
    peripheral: u8,
    removable: bool,
    device: DeviceType,
) -> Vec<u8> {
    let model = device.model();
    let mut d = vec![0u8; 66];
    d[0] = peripheral;
    d[1] = if removable { 0x80 } else { 0 }; // RMB
    d[2] = 0x06; // VERSION: SPC-4
    d[3] = 0x12; // HISUP, RESPONSE DATA FORMAT 2
    d[4] = u8::try_from(d.len() - 5).unwrap_or(0);
    // TPGS: implicit ALUA always, explicit with a policy (crate::alua).
    d[5] = if target.alua_policy().is_some() {
        0x30
    } else {
        0x10
    };
    if model.copy_manager && peripheral & 0xe0 == 0 {
        d[5] |= 0x08; // 3PC: the disk model is a copy manager (xcopy)
    }
    d[7] = 0x02; // CMDQUE
    let cfg = target.config();
    ascii(&mut d[8..16], &cfg.vendor);
    ascii(&mut d[16..32], &cfg.product);
    ascii(&mut d[32..36], &cfg.revision);
    // Version descriptors (SPC-4 table 143).
    for (i, v) in model.versions.iter().enumerate() {
        d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    d
}

/// INQUIRY data for a LUN with no logical unit: peripheral qualifier 011b,
/// device type 1Fh (SPC-4 §6.6.2 table 141).
pub(crate) fn inquiry_no_lu(target: &Target) -> Vec<u8> {
    standard_inquiry(target, 0x7f, false, DeviceType::Disk)
}

/// INQUIRY (SPC-4 §6.6).
pub(crate) fn inquiry(ctx: &Ctx<'_>, evpd: bool, page: u8, alloc_len: u16) -> Outcome {
    if !evpd {
        if page != 0 {
            // SPC-4 §6.6.1: PAGE CODE must be zero when EVPD is zero.
            return Err(Sense::invalid_cdb_field(2, None));
        }
        let device = ctx.lu.device;
        let data = standard_inquiry(
            ctx.target,
            device.peripheral_type(),
            ctx.lu.removable,
            device,
        );
        return Ok(ctx.data_in(&data, usize::from(alloc_len)));
    }
    let data = vpd::page(ctx, page).ok_or_else(|| Sense::invalid_cdb_field(2, None))?;
    Ok(ctx.data_in(&data, usize::from(alloc_len)))
}

/// REPORT TARGET PORT GROUPS (SPC-4 §6.36).
pub(crate) fn report_target_port_groups(ctx: &Ctx<'_>, format: u8, alloc_len: u32) -> Outcome {
    if format > 1 {
        return Err(Sense::invalid_cdb_field(1, Some(7)));
    }
    if alloc_len < 4 {
        return Err(Sense::invalid_cdb_field(6, None));
    }
    let ports = ctx.target.known_ports();
    let explicit = ctx.target.alua_policy().is_some();
    let data = ctx
        .target
        .alua_of(ctx.lu)
        .report(format == 1, &ports, explicit);
    Ok(ctx.data_in(&data, usize::try_from(alloc_len).unwrap_or(usize::MAX)))
}

/// SET TARGET PORT GROUPS (SPC-4 §6.37): every requested state is put to
/// the embedder's [`AluaPolicy`](crate::alua::AluaPolicy) first; a refusal
/// changes nothing.
pub(crate) fn set_target_port_groups(ctx: &Ctx<'_>, param_len: u32) -> Outcome {
    let Some(policy) = ctx.target.alua_policy() else {
        // Explicit ALUA is off (INQUIRY TPGS 01b).
        return Err(Sense::invalid_cdb_field(1, Some(4)));
    };
    if param_len == 0 {
        return Ok(Xfer::NONE);
    }
    // Bounded: one descriptor per possible group at most.
    if param_len > 4 + 4 * 1024 {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let p = ctx
        .data_out(param_len as usize)
        .ok_or_else(|| Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR))?;
    let changes = crate::alua::parse_set(&p, &ctx.target.read_alua())?;
    if !changes.iter().all(|&(g, s)| policy.allow(g, s)) {
        return Err(Sense::new(
            crate::sense::SenseKey::ABORTED_COMMAND,
            Asc::SET_TARGET_PORT_GROUPS_FAILED,
        ));
    }
    ctx.target.change_access_state(&changes, 1, Some(ctx.nexus));
    Ok(Xfer::NONE)
}

/// REQUEST SENSE (SPC-4 §6.39): a pending unit attention is returned (and
/// cleared) as the sense data; otherwise NO SENSE.
pub(crate) fn request_sense(ctx: &Ctx<'_>, desc: bool, alloc_len: u8) -> Outcome {
    let format = if desc {
        SenseFormat::Descriptor
    } else {
        SenseFormat::Fixed
    };
    let mut state = ctx.lu.state();
    let sense = match state.ua_of(ctx.nexus).pop() {
        Some(asc) => Sense::unit_attention(asc),
        // SBC-4 §4.11.3: the sanitize operation in progress is reported.
        None if state.sanitize == crate::sbc::SanitizeState::Running => {
            Sense::new(crate::sense::SenseKey::NOT_READY, Asc::SANITIZE_IN_PROGRESS)
        }
        None => Sense::new(crate::sense::SenseKey::NO_SENSE, Asc::NO_ADDITIONAL_SENSE),
    };
    drop(state);
    Ok(ctx.data_in(&sense.to_vec(format), usize::from(alloc_len)))
}

/// REPORT LUNS parameter data (SPC-4 §6.33).
pub(crate) fn report_luns_data(
    target: &Target,
    select: u8,
    alloc_len: u32,
) -> Result<Vec<u8>, Sense> {
    check_report_luns_alloc(alloc_len)?;
    let mut luns: Vec<Lun> = Vec::new();
    let ordinary = || {
        target
            .lun_indexes()
            .into_iter()
            .filter_map(Lun::from_index)
            .collect::<Vec<_>>()
    };
    match select {
        0x00 => luns = ordinary(),
        0x01 => luns.push(Lun::REPORT_LUNS_WLUN),
        0x02 => {
            luns = ordinary();
            luns.push(Lun::REPORT_LUNS_WLUN);
        }
        // 10h-12h: administrative and subsidiary LUs; we have none.
        0x10..=0x12 => {}
        _ => return Err(Sense::invalid_cdb_field(2, None)),
    }
    let mut d = vec![0u8; 8 + 8 * luns.len()];
    let list_len = u32::try_from(8 * luns.len()).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&list_len.to_be_bytes());
    for (i, lun) in luns.iter().enumerate() {
        d[8 + 8 * i..16 + 8 * i].copy_from_slice(&lun.0);
    }
    Ok(d)
}

/// REPORT LUNS' allocation length check (SPC-4 §6.33: at least 16).
fn check_report_luns_alloc(alloc_len: u32) -> Result<(), Sense> {
    if alloc_len < 16 {
        return Err(Sense::invalid_cdb_field(6, None));
    }
    Ok(())
}

/// LOG SENSE (SPC-4 §6.8): the Supported Log Pages page (00h) and the
/// Supported Log Pages and Subpages page (00h/FFh).
pub(crate) fn log_sense(ctx: &Ctx<'_>, cdb: &Cdb) -> Outcome {
    let Cdb::LogSense {
        sp,
        page,
        subpage,
        param_ptr,
        alloc_len,
        ..
    } = *cdb
    else {
        return Ok(Xfer::NONE);
    };
    if sp {
        // No savable log parameters.
        return Err(Sense::invalid_cdb_field(1, Some(0)));
    }
    if param_ptr != 0 {
        return Err(Sense::invalid_cdb_field(5, None));
    }
    let data: Vec<u8> = match (page, subpage) {
        (0x00, 0x00) => vec![0x00, 0x00, 0x00, 0x01, 0x00],
        (0x00, 0xff) => vec![0x40, 0xff, 0x00, 0x04, 0x00, 0x00, 0x00, 0xff],
        (0x00, _) => return Err(Sense::invalid_cdb_field(3, None)),
        _ => return Err(Sense::invalid_cdb_field(2, Some(5))),
    };
    Ok(ctx.data_in(&data, usize::from(alloc_len)))
}
