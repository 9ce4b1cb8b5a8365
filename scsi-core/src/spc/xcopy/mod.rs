//! Third-party copy (SPC-4 §5.17): the copy manager behind EXTENDED COPY
//! (LID1), RECEIVE COPY RESULTS and the Third-party Copy VPD page (8Fh).
//!
//! A copy names its source and destination logical units by designator
//! (identification CSCD descriptors, E4h) and moves blocks between them
//! (block to block segment descriptors, 02h) on the backstores, in bounded
//! chunks, without passing through the transport. The copy manager only
//! resolves designators to logical units of its own [`Target`]: a copy can
//! never reach a logical unit of another target, nor one outside the
//! engine (the hole behind CVE-2020-28374, where LIO resolved designators
//! across every device on the host). Reservations on each unit a segment
//! names apply to the copy as if the initiator read and wrote it itself,
//! and a conflict ends the copy with COPY ABORTED before anything moves.
//!
//! Every check that needs no data movement runs before the first block is
//! copied, so a refused copy changes nothing. Copies are abortable: a task
//! management function that aborts the EXTENDED COPY stops it between
//! chunks, and RECEIVE COPY RESULTS then reports it as failed.
//!
//! [`Target`]: crate::engine::Target

mod list;
mod results;
pub(crate) mod rod;

use std::sync::Arc;

use crate::buffer::DataBuffer;
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::engine::lu::LogicalUnit;
use crate::sense::{Asc, FieldPointer, Sense, SenseKey};
use crate::table;

pub(crate) use results::HeldResults;

/// Third-party copy service actions (SPC-4 tables 183 and 184).
pub(crate) mod sa {
    /// EXTENDED COPY(LID1) (THIRD-PARTY COPY OUT).
    pub const EXTENDED_COPY_LID1: u8 = 0x00;
    /// POPULATE TOKEN (THIRD-PARTY COPY OUT).
    pub const POPULATE_TOKEN: u8 = 0x10;
    /// WRITE USING TOKEN (THIRD-PARTY COPY OUT).
    pub const WRITE_USING_TOKEN: u8 = 0x11;
    /// COPY STATUS (LID1).
    pub const COPY_STATUS: u8 = 0x00;
    /// OPERATING PARAMETERS.
    pub const OPERATING_PARAMETERS: u8 = 0x03;
    /// FAILED SEGMENT DETAILS (LID1).
    pub const FAILED_SEGMENT_DETAILS: u8 = 0x04;
}

/// COPY ABORTED with `asc`, pointing at byte `at` of the parameter list.
fn aborted(asc: Asc, at: u16) -> Sense {
    Sense::new(SenseKey::COPY_ABORTED, asc).with_field(FieldPointer::param(at))
}

/// Name segment `n` in the COMMAND-SPECIFIC INFORMATION of a COPY ABORTED
/// that processing it ended with (SPC-4, EXTENDED COPY, errors detected
/// during processing of segment descriptors: the third and fourth bytes
/// hold the segment number, the first two the offsets of copy target sense
/// data, none here). Other errors (ILLEGAL REQUEST) point at the parameter
/// list instead.
fn in_segment(sense: Sense, n: usize) -> Sense {
    if sense.key != SenseKey::COPY_ABORTED {
        return sense;
    }
    // MAX_SEGMENTS keeps the number within the two bytes.
    sense.with_command_specific(u64::from(u16::try_from(n).unwrap_or(u16::MAX)))
}

/// One segment, checked and resolved: byte offsets and length.
struct Plan {
    source: Arc<LogicalUnit>,
    destination: Arc<LogicalUnit>,
    from: u64,
    to: u64,
    bytes: u64,
}

/// EXTENDED COPY (LID1) (SPC-4 §6.4).
pub(crate) async fn extended_copy(ctx: &Ctx<'_>, param_len: u32) -> Outcome {
    // SPC-4 §6.4.1: a PARAMETER LIST LENGTH of zero copies nothing.
    if param_len == 0 {
        return Ok(Xfer::NONE);
    }
    if param_len > list::MAX_PARAM_LEN {
        return Err(list::length_error());
    }
    let p = ctx
        .data_out(param_len as usize)
        .ok_or_else(list::length_error)?;
    let copy = list::parse(&p)?;
    let units: Vec<Option<Arc<LogicalUnit>>> = copy
        .cscds
        .iter()
        .map(|c| {
            ctx.target
                .lu_by_designator(c.designator_type, c.association, c.designator())
        })
        .collect();
    let plans = copy
        .segments
        .iter()
        .enumerate()
        .map(|(n, s)| plan(ctx, &copy.cscds, &units, s).map_err(|e| in_segment(e, n)))
        .collect::<Result<Vec<_>, Sense>>()?;
    let running = ctx.lu.copies.start(
        ctx.nexus,
        u32::from(copy.list_id),
        copy.usage,
        sa::EXTENDED_COPY_LID1,
    )?;
    let mut outcome = Ok(());
    for (n, plan) in plans.iter().enumerate() {
        outcome = run(ctx, plan, &running).await.map_err(|e| in_segment(e, n));
        if outcome.is_err() {
            break;
        }
        running.segment_done();
    }
    running.finish(&outcome);
    outcome.map(|()| Xfer::NONE)
}

/// Resolve and check one segment descriptor before anything is copied.
fn plan(
    ctx: &Ctx<'_>,
    cscds: &[list::Cscd],
    units: &[Option<Arc<LogicalUnit>>],
    s: &list::Segment,
) -> Result<Plan, Sense> {
    let unit = |id: u16, field: u16| -> Result<(Arc<LogicalUnit>, u64), Sense> {
        let at = s.at + field;
        let idx = usize::from(id);
        let lu = units
            .get(idx)
            .and_then(Clone::clone)
            .ok_or_else(|| aborted(Asc::COPY_TARGET_DEVICE_NOT_REACHABLE, at))?;
        let bs = lu.backstore.geometry().logical_block_size;
        if cscds[idx].block_len != bs {
            // DISK BLOCK LENGTH must be the unit's logical block length.
            return Err(Sense::invalid_param_field(cscds[idx].at + 29, None));
        }
        Ok((lu, u64::from(bs)))
    };
    let (source, src_bs) = unit(s.source, 4)?;
    let (destination, dst_bs) = unit(s.destination, 6)?;
    let bytes = u64::from(s.blocks) * if s.dc { dst_bs } else { src_bs };
    if bytes % src_bs != 0 || bytes % dst_bs != 0 {
        return Err(Sense::invalid_param_field(s.at + 10, None));
    }
    let in_range = |lu: &LogicalUnit, lba: u64, bs: u64| {
        lba.checked_add(bytes / bs)
            .is_some_and(|end| end <= lu.backstore.geometry().blocks())
    };
    // libiscsi's ValidSegDescr wants COPY ABORTED here, as for any error a
    // copy target would report; the segment pointer names the LBA field.
    if !in_range(&source, s.source_lba, src_bs) {
        return Err(aborted(Asc::NO_ADDITIONAL_SENSE, s.at + 12));
    }
    if !in_range(&destination, s.destination_lba, dst_bs) {
        return Err(aborted(Asc::NO_ADDITIONAL_SENSE, s.at + 20));
    }
    // SPC-4 table 62 gives EXTENDED COPY the "policy" of its copy
    // targets: the source is read and the destination written as if by the
    // initiator, on every unit the segment names (this one included).
    if ctx.target.conflicts_on(&source, ctx.nexus, &table::READS) {
        return Err(aborted(Asc::NO_ADDITIONAL_SENSE, s.at + 4));
    }
    if ctx
        .target
        .conflicts_on(&destination, ctx.nexus, &table::WRITES)
    {
        return Err(aborted(Asc::NO_ADDITIONAL_SENSE, s.at + 6));
    }
    crate::sbc::check_writable(&ctx.on(&destination))?;
    Ok(Plan {
        from: s.source_lba * src_bs,
        to: s.destination_lba * dst_bs,
        source,
        destination,
        bytes,
    })
}

/// Copy one planned segment (back to front when it overlaps itself
/// forwards), as COPY ABORTED if a copy target fails.
async fn run(ctx: &Ctx<'_>, plan: &Plan, running: &results::Running<'_>) -> Result<(), Sense> {
    let backwards = Arc::ptr_eq(&plan.source, &plan.destination)
        && plan.to > plan.from
        && plan.to < plan.from + plan.bytes;
    let span = Span {
        source: &plan.source,
        from: plan.from,
        destination: &plan.destination,
        to: plan.to,
        bytes: plan.bytes,
    };
    copy_span(ctx, &span, backwards, |n| running.progress(n))
        .await
        .map_err(|s| Sense {
            key: SenseKey::COPY_ABORTED,
            ..s
        })
}

/// `bytes` bytes at byte `from` of `source`, to byte `to` of
/// `destination`: one contiguous run on both sides.
pub(crate) struct Span<'a> {
    pub source: &'a LogicalUnit,
    pub from: u64,
    pub destination: &'a LogicalUnit,
    pub to: u64,
    pub bytes: u64,
}

/// Copy `span` on the backstores in chunks of at most
/// [`sbc::CHUNK_BYTES`], front to back or (`backwards`) back to front,
/// reporting each chunk's bytes to `progress`. Each chunk is read under the
/// source's write gate and written durably under the destination's, so a
/// chunk never interleaves with an atomic write. The error is the failing
/// backstore's sense data.
///
/// [`sbc::CHUNK_BYTES`]: crate::sbc::CHUNK_BYTES
pub(crate) async fn copy_span(
    ctx: &Ctx<'_>,
    span: &Span<'_>,
    backwards: bool,
    progress: impl Fn(u64),
) -> Result<(), Sense> {
    if span.bytes == 0 {
        return Ok(());
    }
    let chunk = (crate::sbc::CHUNK_BYTES as u64).min(span.bytes);
    let buf = DataBuffer::zeroed(usize::try_from(chunk).unwrap_or(0));
    let dst = ctx.on(span.destination);
    let chunks = span.bytes.div_ceil(chunk);
    for i in 0..chunks {
        let i = if backwards { chunks - 1 - i } else { i };
        let at = i * chunk;
        let n = chunk.min(span.bytes - at);
        let view = buf
            .slice(0, usize::try_from(n).unwrap_or(0))
            .unwrap_or_default();
        {
            let _shared = span.source.write_gate.read().await;
            span.source
                .backstore
                .read(span.from + at, view.clone())
                .await
                .map_err(|e| e.sense())?;
        }
        let flags = crate::sbc::writable_flags(&dst, false)?;
        let _shared = span.destination.write_gate.read().await;
        crate::sbc::write_durable(&dst, span.to + at, view, flags).await?;
        progress(n);
    }
    Ok(())
}

/// RECEIVE COPY RESULTS (SPC-4 §6.18).
pub(crate) fn receive_copy_results(
    ctx: &Ctx<'_>,
    service_action: u8,
    list_id: u8,
    alloc_len: u32,
) -> Outcome {
    let data = match service_action {
        sa::OPERATING_PARAMETERS => results::operating_parameters(ctx.geometry.logical_block_size),
        sa::COPY_STATUS | sa::FAILED_SEGMENT_DETAILS => {
            // SPC-4 §6.18.1: a list identifier with no copy is an invalid
            // field (the LIST IDENTIFIER byte).
            let r = ctx
                .lu
                .copies
                .get(ctx.nexus, u32::from(list_id))
                .ok_or_else(|| Sense::invalid_cdb_field(2, None))?;
            if service_action == sa::COPY_STATUS {
                results::copy_status(&r)
            } else {
                results::failed_segment_details(&r)
            }
        }
        // The table lists only the service actions above.
        _ => return Err(Sense::invalid_cdb_field(1, Some(4))),
    };
    Ok(ctx.data_in(&data, usize::try_from(alloc_len).unwrap_or(usize::MAX)))
}

/// The body of the Third-party Copy VPD page (SPC-4 §7.8.17) for a logical
/// unit with `block_size`-byte blocks: the Supported Commands, Parameter
/// Data, Supported Descriptors and General Copy Operations descriptors.
pub(crate) fn vpd_page(block_size: u32) -> Vec<u8> {
    let mut d = Vec::new();
    // Supported Commands (0001h): the THIRD-PARTY COPY OUT and IN service
    // actions of the command table.
    let mut commands = Vec::new();
    for opcode in [
        crate::cdb::opcode::EXTENDED_COPY,
        crate::cdb::opcode::RECEIVE_COPY_RESULTS,
    ] {
        let actions: Vec<u8> = table::COMMANDS
            .iter()
            .filter(|r| r.opcode == opcode)
            .filter_map(|r| r.service_action.and_then(|sa| u8::try_from(sa).ok()))
            .collect();
        commands.push(opcode);
        commands.push(u8::try_from(actions.len()).unwrap_or(0));
        commands.extend(actions);
    }
    let mut body = vec![u8::try_from(commands.len()).unwrap_or(0)];
    body.extend(commands);
    tpc_descriptor(&mut d, 0x0001, &body);
    // Parameter Data (0004h).
    let mut body = vec![0u8; 28];
    body[4..6].copy_from_slice(&list::MAX_CSCDS.to_be_bytes());
    body[6..8].copy_from_slice(&list::MAX_SEGMENTS.to_be_bytes());
    body[8..12].copy_from_slice(&list::MAX_DESC_LIST_LEN.to_be_bytes());
    tpc_descriptor(&mut d, 0x0004, &body);
    // Supported Descriptors (0008h).
    tpc_descriptor(
        &mut d,
        0x0008,
        &[2, list::SEG_BLOCK_TO_BLOCK, list::CSCD_IDENTIFICATION],
    );
    // ROD token limits, features and types (POPULATE TOKEN and WRITE
    // USING TOKEN).
    rod::vpd_descriptors(&mut d);
    // General Copy Operations (8001h).
    let mut body = vec![0u8; 28];
    let copies = u32::from(results::MAX_CONCURRENT_COPIES);
    body[0..4].copy_from_slice(&copies.to_be_bytes());
    body[4..8].copy_from_slice(&copies.to_be_bytes());
    body[8..12].copy_from_slice(&results::max_segment_len(block_size).to_be_bytes());
    body[12] = u8::try_from(block_size.trailing_zeros()).unwrap_or(0);
    tpc_descriptor(&mut d, 0x8001, &body);
    d
}

/// Append a third-party copy descriptor of `kind` with `body`, padded to a
/// multiple of four bytes.
fn tpc_descriptor(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    let len = body.len().div_ceil(4) * 4;
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + len - body.len(), 0);
}
