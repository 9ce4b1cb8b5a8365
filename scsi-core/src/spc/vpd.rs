//! Vital product data pages (SPC-4 §7.8, SBC-4 §6.6).

use crate::backstore::Capabilities;
use crate::engine::exec::Ctx;

/// The VPD page `code`, or `None` if not supported.
pub(crate) fn page(ctx: &Ctx<'_>, code: u8) -> Option<Vec<u8>> {
    // The pages of the unit's device model, in ascending order (SPC-4
    // §7.8.13).
    let supported = ctx.lu.device.model().vpd_pages;
    if !supported.contains(&code) {
        return None;
    }
    let body = match code {
        0x00 => supported.to_vec(),
        0x80 => ctx.lu.serial.as_bytes().to_vec(),
        0x83 => device_identification(ctx),
        0x86 => extended_inquiry(ctx),
        0x8f => super::xcopy::vpd_page(ctx.geometry.logical_block_size),
        0xb0 => block_limits(ctx),
        0xb1 => block_device_characteristics(ctx),
        0xb2 => logical_block_provisioning(ctx),
        _ => return None,
    };
    let mut d = Vec::with_capacity(4 + body.len());
    d.extend_from_slice(&[0x00, code]);
    d.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_be_bytes());
    d.extend_from_slice(&body);
    Some(d)
}

/// One designation descriptor (SPC-4 §7.8.6.1).
fn designator(out: &mut Vec<u8>, code_set: u8, association: u8, kind: u8, id: &[u8]) {
    out.push(code_set & 0x0f);
    out.push(((association & 3) << 4) | (kind & 0x0f));
    out.push(0);
    out.push(u8::try_from(id.len()).unwrap_or(0));
    out.extend_from_slice(id);
}

/// A SCSI name string: UTF-8, null terminated, padded to a multiple of four
/// (SPC-4 §7.8.6.11).
fn name_string(name: &str) -> Vec<u8> {
    let mut s: Vec<u8> = name.bytes().take(251).collect();
    s.push(0);
    while s.len() % 4 != 0 {
        s.push(0);
    }
    s
}

fn device_identification(ctx: &Ctx<'_>) -> Vec<u8> {
    let mut d = Vec::new();
    // NAA locally assigned (type 3) logical unit designator.
    designator(&mut d, 1, 0, 3, &ctx.lu.naa_designator());
    // T10 vendor ID based: vendor (8) + serial number.
    let mut t10 = vec![b' '; 8];
    super::ascii(&mut t10, &ctx.target.config().vendor);
    t10.extend_from_slice(ctx.lu.serial.as_bytes());
    designator(&mut d, 2, 0, 1, &t10);
    if let Some(info) = ctx.target.nexus_info(ctx.nexus) {
        // Relative target port identifier (association: target port).
        let [hi, lo] = info.relative_port.to_be_bytes();
        designator(&mut d, 1, 1, 4, &[0, 0, hi, lo]);
        // Target port group (association: target port).
        let [hi, lo] = ctx
            .target
            .read_alua()
            .of_port(info.relative_port)
            .id
            .to_be_bytes();
        designator(&mut d, 1, 1, 5, &[0, 0, hi, lo]);
        if !info.target_port.is_empty() {
            designator(&mut d, 3, 1, 8, &name_string(&info.target_port));
        }
    }
    // SCSI target device name (association: target device).
    if !ctx.target.config().name.is_empty() {
        designator(&mut d, 3, 2, 8, &name_string(&ctx.target.config().name));
    }
    d
}

fn extended_inquiry(ctx: &Ctx<'_>) -> Vec<u8> {
    let mut d = vec![0u8; 0x3c];
    // Byte 5 of the page (1 here): HEADSUP, ORDSUP, SIMPSUP.
    d[1] = 0x07;
    // Byte 6 (2 here): V_SUP when there is a volatile cache.
    if ctx
        .lu
        .backstore
        .capabilities()
        .contains(Capabilities::WRITE_CACHE)
    {
        d[2] = 0x01;
    }
    // Byte 8 (4 here): LUICLR: unit attentions are cleared per I_T nexus.
    d[4] = 0x01;
    d
}

fn block_limits(ctx: &Ctx<'_>) -> Vec<u8> {
    let cfg = ctx.target.config();
    let caps = ctx.lu.backstore.capabilities();
    let g = ctx.geometry;
    let mut d = vec![0u8; 0x3c];
    // Page byte 4 (0 here): WSNZ is zero: WRITE SAME with zero blocks
    // writes to the end of the medium, bounded by MAXIMUM WRITE SAME LENGTH.
    // MAXIMUM COMPARE AND WRITE LENGTH.
    d[1] = super::super::sbc::MAX_CAW_BLOCKS;
    let granularity = (g.physical_block_size / g.logical_block_size.max(1)).max(1);
    d[2..4].copy_from_slice(&u16::try_from(granularity).unwrap_or(1).to_be_bytes());
    d[4..8].copy_from_slice(&cfg.max_transfer_blocks.to_be_bytes());
    d[8..12].copy_from_slice(&cfg.max_transfer_blocks.to_be_bytes());
    d[12..16].copy_from_slice(&cfg.max_transfer_blocks.to_be_bytes());
    if caps.contains(Capabilities::DISCARD) {
        d[16..20].copy_from_slice(&cfg.max_unmap_blocks.to_be_bytes());
        d[20..24].copy_from_slice(&cfg.max_unmap_descriptors.to_be_bytes());
        d[24..28].copy_from_slice(&granularity.to_be_bytes());
    }
    d[32..40].copy_from_slice(&u64::from(cfg.max_write_same_blocks).to_be_bytes());
    // Page bytes 44-63: MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC ALIGNMENT,
    // ATOMIC TRANSFER LENGTH GRANULARITY; the two atomic boundary fields
    // stay zero (no ATOMIC BOUNDARY support).
    let (max, alignment, granularity) = super::super::sbc::atomic_limits_in_blocks(ctx);
    d[40..44].copy_from_slice(&max.to_be_bytes());
    d[44..48].copy_from_slice(&alignment.to_be_bytes());
    d[48..52].copy_from_slice(&granularity.to_be_bytes());
    d
}

fn block_device_characteristics(ctx: &Ctx<'_>) -> Vec<u8> {
    let mut d = vec![0u8; 0x3c];
    // MEDIUM ROTATION RATE: 1 = non-rotating medium; 0 = not reported.
    if !ctx.geometry.rotational {
        d[1] = 0x01;
    }
    // Page byte 7 (3 here): WABEREQ 01b: a read after BLOCK ERASE returns
    // GOOD (and the data the deallocated blocks read as); WACEREQ 00b:
    // CRYPTO ERASE is not supported.
    d[3] = 0x40;
    d
}

fn logical_block_provisioning(ctx: &Ctx<'_>) -> Vec<u8> {
    let caps = ctx.lu.backstore.capabilities();
    let mut d = vec![0u8; 4];
    if caps.contains(Capabilities::DISCARD) {
        // LBPU, LBPWS, LBPWS10; LBPRZ (001b) when deallocated blocks read
        // as zeroes; PROVISIONING TYPE 010b: thin provisioned.
        d[1] = 0xe0;
        if caps.contains(Capabilities::DISCARD_ZEROES) {
            d[1] |= 0x04;
        }
        d[2] = 0x02;
    }
    d
}
