//! WRITE ATOMIC (16) (SBC-4 §4.29 atomic writes, §5 WRITE ATOMIC (16)) and
//! the atomic-write fields of the Block Limits VPD page.
//!
//! An atomic write changes every block it addresses or none of them, and no
//! command sees part of it. This module gets the second half from the
//! engine: it holds the logical unit's write gate exclusively (every other
//! write holds it shared), and it bumps [`LogicalUnit::atomic_seq`] around
//! the I/O so a concurrent READ retries under the gate (see
//! [`super::read`]). The first half, and what happens across a crash, is
//! the backstore's [`AtomicLimits`] promise.
//!
//! [`AtomicLimits`]: crate::backstore::AtomicLimits
//!
//! [`LogicalUnit::atomic_seq`]: crate::engine::lu::LogicalUnit::atomic_seq

use std::sync::atomic::Ordering;

use crate::cdb::WriteAtomic;
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::sense::Sense;

use super::{check_protect, check_range, usize_of, writable_flags, write_durable_with};

/// The atomic-write limits of the unit in logical blocks, as the Block
/// Limits VPD page reports them: MAXIMUM ATOMIC TRANSFER LENGTH, ATOMIC
/// ALIGNMENT, ATOMIC TRANSFER LENGTH GRANULARITY. All zero when the
/// backstore has no atomic writes. The maximum never exceeds MAXIMUM
/// TRANSFER LENGTH (SBC-4 Block Limits VPD page).
pub(crate) fn limits_in_blocks(ctx: &Ctx<'_>) -> (u32, u32, u32) {
    let Some(l) = ctx.lu.backstore.atomic_limits() else {
        return (0, 0, 0);
    };
    let bs = ctx.block_size().max(1);
    let blocks = |bytes: u64| u32::try_from(bytes / bs).unwrap_or(u32::MAX);
    let max = blocks(l.max_bytes).min(ctx.target.config().max_transfer_blocks);
    (max, blocks(l.alignment), blocks(l.granularity))
}

/// Whether WRITE ATOMIC (16) is supported on this unit.
pub(crate) fn supported(ctx: &Ctx<'_>) -> bool {
    limits_in_blocks(ctx).0 > 0
}

/// WRITE ATOMIC (16).
pub(crate) async fn write_atomic(ctx: &Ctx<'_>, wa: &WriteAtomic) -> Outcome {
    let (max, alignment, granularity) = limits_in_blocks(ctx);
    if max == 0 {
        // No atomic writes on this backstore: not supported here, and not
        // listed by REPORT SUPPORTED OPERATION CODES either.
        return Err(crate::cdb::invalid_opcode());
    }
    check_protect(wa.wrprotect)?;
    // MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY is zero: a
    // non-zero ATOMIC BOUNDARY is an invalid field.
    if wa.boundary != 0 {
        return Err(Sense::invalid_cdb_field(10, None));
    }
    let blocks = u32::from(wa.blocks);
    if blocks > max || (granularity > 1 && blocks % granularity != 0) {
        return Err(Sense::invalid_cdb_field(12, None));
    }
    check_range(ctx, wa.lba, u64::from(blocks))?;
    if alignment > 1 && wa.lba % u64::from(alignment) != 0 {
        return Err(Sense::invalid_cdb_field(2, None));
    }
    let flags = writable_flags(ctx, wa.fua)?;
    if blocks == 0 {
        // SBC-4: a TRANSFER LENGTH of zero transfers nothing, no error.
        return Ok(Xfer::NONE);
    }
    let bytes = usize_of(u64::from(blocks) * ctx.block_size());
    if ctx.data.len() < bytes {
        // All or nothing: a data-out buffer shorter than the transfer
        // length is refused before any block is written.
        return Err(Sense::invalid_cdb_field(12, None));
    }
    let view = ctx.data.slice(0, bytes).unwrap_or_default();
    let offset = wa.lba * ctx.block_size();
    let _exclusive = ctx.lu.write_gate.write().await;
    ctx.lu.atomic_seq.fetch_add(1, Ordering::SeqCst);
    let done = write_durable_with(ctx, offset, view, flags, true).await;
    ctx.lu.atomic_seq.fetch_add(1, Ordering::SeqCst);
    done?;
    Ok(Xfer {
        len: bytes,
        wanted: bytes,
    })
}
