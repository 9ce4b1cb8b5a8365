//! REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35) and REPORT SUPPORTED TASK
//! MANAGEMENT FUNCTIONS (SPC-4 §6.36), both read from the command table.

use crate::backstore::Capabilities;
use crate::engine::exec::{Ctx, Outcome};
use crate::sense::Sense;
use crate::table::{self, CommandDesc, Handler, COMMANDS};

/// Whether the logical unit really supports `row` (UNMAP needs a backstore
/// that can deallocate, WRITE ATOMIC one with atomic writes).
fn supported_here(ctx: &Ctx<'_>, row: &CommandDesc) -> bool {
    if !row.devices.contains(ctx.lu.device) {
        return false;
    }
    match row.handler {
        Handler::Unmap => ctx
            .lu
            .backstore
            .capabilities()
            .contains(Capabilities::DISCARD),
        Handler::WriteAtomic => crate::sbc::atomic_supported(ctx),
        Handler::SetTargetPortGroups => ctx.target.alua_policy().is_some(),
        // BLOCK ERASE deallocates: only where the backstore can.
        Handler::Sanitize
            if row.service_action == Some(crate::cdb::opcode::SA_SANITIZE_BLOCK_ERASE) =>
        {
            ctx.lu
                .backstore
                .capabilities()
                .contains(Capabilities::DISCARD)
        }
        _ => true,
    }
}

/// Whether the LU supports this command (for dispatch-time refusals).
pub(crate) fn unmap_supported(ctx: &Ctx<'_>) -> bool {
    ctx.lu
        .backstore
        .capabilities()
        .contains(Capabilities::DISCARD)
}

fn timeouts(row: &CommandDesc) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[0..2].copy_from_slice(&0x0au16.to_be_bytes());
    t[4..8].copy_from_slice(&row.nominal_timeout.to_be_bytes());
    t[8..12].copy_from_slice(&row.recommended_timeout.to_be_bytes());
    t
}

/// REPORT SUPPORTED OPERATION CODES.
pub(crate) fn report(
    ctx: &Ctx<'_>,
    rctd: bool,
    options: u8,
    opcode: u8,
    service_action: u16,
    alloc_len: u32,
) -> Outcome {
    let alloc_len = alloc_len as usize;
    let device = ctx.lu.device;
    let has_sa = |op: u8| table::has_service_actions(device, op);
    let one = |row: Option<&CommandDesc>| -> Vec<u8> {
        let mut d = vec![0u8; 4];
        match row.filter(|r| supported_here(ctx, r)) {
            Some(r) => {
                // SUPPORT 011b: supported as the standard says.
                d[1] = 0x03 | if rctd { 0x80 } else { 0 };
                d[2..4].copy_from_slice(&u16::from(r.cdb_len).to_be_bytes());
                d.extend_from_slice(&r.usage[..usize::from(r.cdb_len)]);
                if rctd {
                    d.extend_from_slice(&timeouts(r));
                }
            }
            // SUPPORT 001b: not supported.
            None => d[1] = 0x01,
        }
        d
    };
    let data = match options {
        0 => {
            let mut list = Vec::new();
            for r in COMMANDS.iter().filter(|r| supported_here(ctx, r)) {
                list.push(r.opcode);
                list.push(0);
                list.extend_from_slice(&r.service_action.unwrap_or(0).to_be_bytes());
                list.push(0);
                list.push(if rctd { 0x02 } else { 0 } | u8::from(r.service_action.is_some()));
                list.extend_from_slice(&u16::from(r.cdb_len).to_be_bytes());
                if rctd {
                    list.extend_from_slice(&timeouts(r));
                }
            }
            let mut d = u32::try_from(list.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes()
                .to_vec();
            d.extend_from_slice(&list);
            d
        }
        1 => {
            if has_sa(opcode) {
                return Err(Sense::invalid_cdb_field(2, Some(0)));
            }
            one(table::find_for(device, opcode, None))
        }
        2 => {
            if !has_sa(opcode) {
                return Err(Sense::invalid_cdb_field(2, Some(0)));
            }
            one(table::find_for(device, opcode, Some(service_action)))
        }
        3 => {
            if has_sa(opcode) {
                one(table::find_for(device, opcode, Some(service_action)))
            } else if service_action != 0 {
                one(None)
            } else {
                one(table::find_for(device, opcode, None))
            }
        }
        _ => return Err(Sense::invalid_cdb_field(2, Some(0))),
    };
    Ok(ctx.data_in(&data, alloc_len))
}

/// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS: ABORT TASK, ABORT TASK SET,
/// CLEAR TASK SET, LOGICAL UNIT RESET, QUERY TASK, target reset, QUERY
/// ASYNCHRONOUS EVENT, QUERY TASK SET and I_T NEXUS RESET. CLEAR ACA is not
/// supported (NACA is never accepted).
pub(crate) fn report_tmf(ctx: &Ctx<'_>, repd: bool, alloc_len: u32) -> Outcome {
    if alloc_len < 4 {
        return Err(Sense::invalid_cdb_field(6, None));
    }
    let mut d = vec![0u8; if repd { 16 } else { 4 }];
    // ATS, ATSS, CTSS, LURS, QTS, TRS.
    d[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x04 | 0x02;
    // QAES, QTSS, ITNRS.
    d[1] = 0x04 | 0x02 | 0x01;
    if repd {
        d[3] = 0x0c;
    }
    Ok(ctx.data_in(&d, alloc_len as usize))
}
