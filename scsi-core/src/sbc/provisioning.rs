//! Logical block provisioning: WRITE SAME (10/16), UNMAP and GET LBA STATUS
//! (SBC-4 §5.48, §5.49, §5.32, §5.7, §4.7).

use crate::backstore::{AllocationState, Capabilities};
use crate::buffer::DataBuffer;
use crate::cdb::{CdbSize, WriteSame};
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::sense::{Asc, Sense};

use super::{
    check_protect, check_range, check_writable, out_of_range, usize_of, write_durable, write_flags,
    CHUNK_BYTES,
};

/// WRITE SAME (10/16).
pub(crate) async fn write_same(ctx: &Ctx<'_>, ws: &WriteSame) -> Outcome {
    check_protect(ws.wrprotect)?;
    // A write-protected unit answers WRITE PROTECTED before anything about
    // UNMAP support (libiscsi's ReadOnly test wants it for WRITE SAME with
    // UNMAP on a read-only unit whose backstore cannot deallocate).
    check_writable(ctx)?;
    let caps = ctx.lu.backstore.capabilities();
    if ws.anchor {
        // ANC_SUP is zero in VPD B2h.
        return Err(Sense::invalid_cdb_field(1, Some(4)));
    }
    if ws.unmap && !caps.contains(Capabilities::DISCARD) {
        return Err(Sense::invalid_cdb_field(1, Some(3)));
    }
    let blocks = same_blocks(ctx, ws)?;
    let bs = usize_of(ctx.block_size());
    let offset = ws.lba * ctx.block_size();
    let total = blocks * ctx.block_size();

    let mut block = vec![0u8; bs];
    // NDOB, or UNMAP with an empty data-out buffer (libiscsi sends WRITE
    // SAME UNMAP without data and expects LIO's answer: the blocks are
    // deallocated as if the block were zeroes).
    let consumed = if ws.ndob || (ws.unmap && ctx.data.is_empty()) {
        0
    } else {
        if ctx.data.len() != bs {
            // The data-out buffer is exactly one logical block (SBC-4
            // §5.48); libiscsi checks both a shorter and a longer one.
            return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
        }
        ctx.data.read_at(0, &mut block);
        bs
    };
    let zero = block.iter().all(|&b| b == 0);
    let backstore = &ctx.lu.backstore;
    let _shared = ctx.lu.write_gate.read().await;
    if zero {
        // SBC-4 §5.49: with UNMAP the blocks may be deallocated if they
        // then read back as the zero block; otherwise they are written.
        let may_unmap = ws.unmap && caps.contains(Capabilities::DISCARD_ZEROES);
        backstore
            .write_zeroes(offset, total, may_unmap)
            .await
            .map_err(|e| e.sense().with_information(ws.lba))?;
        if !write_flags(ctx, false).is_empty() {
            backstore.flush().await.map_err(|e| e.sense())?;
        }
    } else {
        let per_chunk = (CHUNK_BYTES / bs).max(1);
        let chunk_blocks = per_chunk.min(usize_of(blocks));
        let mut pattern = Vec::with_capacity(chunk_blocks * bs);
        for _ in 0..chunk_blocks {
            pattern.extend_from_slice(&block);
        }
        let pattern = DataBuffer::from_vec(pattern);
        let mut at = 0u64;
        while at < total {
            let n = (total - at).min(pattern.len() as u64);
            let piece = pattern.truncated(usize_of(n));
            write_durable(ctx, offset + at, piece, write_flags(ctx, false)).await?;
            at += n;
        }
    }
    Ok(Xfer {
        len: consumed,
        wanted: consumed,
    })
}

/// The number of blocks a WRITE SAME writes, checked against the medium and
/// the Block Limits VPD page.
///
/// SBC-4 §5.48/§5.49: NUMBER OF LOGICAL BLOCKS zero means every block from
/// the LBA to the end of the medium (our WSNZ bit is zero). An LBA past the
/// last one is LOGICAL BLOCK ADDRESS OUT OF RANGE; a count (given or implied
/// by zero) over a non-zero MAXIMUM WRITE SAME LENGTH is INVALID FIELD IN
/// CDB pointing at the NUMBER OF LOGICAL BLOCKS field (Block Limits VPD
/// page, MAXIMUM WRITE SAME LENGTH).
fn same_blocks(ctx: &Ctx<'_>, ws: &WriteSame) -> Result<u64, Sense> {
    let len_field = if ws.size == CdbSize::Sixteen { 10 } else { 7 };
    let capacity = ctx.geometry.blocks();
    let blocks = if ws.blocks == 0 {
        if ws.lba >= capacity {
            return Err(out_of_range());
        }
        capacity - ws.lba
    } else {
        u64::from(ws.blocks)
    };
    let max = ctx.target.config().max_write_same_blocks;
    if max != 0 && blocks > u64::from(max) {
        return Err(Sense::invalid_cdb_field(len_field, None));
    }
    check_range(ctx, ws.lba, blocks)?;
    Ok(blocks)
}

/// UNMAP: parameter list header (8 bytes) then 16-byte block descriptors.
pub(crate) async fn unmap(ctx: &Ctx<'_>, anchor: bool, param_len: u16) -> Outcome {
    // A read-only unit changes nothing: WRITE PROTECTED, whether or not its
    // backstore could deallocate (a read-only file cannot be probed for it).
    check_writable(ctx)?;
    if !super::super::spc::rsoc::unmap_supported(ctx) {
        return Err(crate::cdb::invalid_opcode());
    }
    if anchor {
        return Err(Sense::invalid_cdb_field(1, Some(0)));
    }
    check_writable(ctx)?;
    let param_len = usize::from(param_len);
    if param_len == 0 {
        return Ok(Xfer::NONE);
    }
    if param_len < 8 {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let Some(p) = ctx.data_out(param_len) else {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    };
    let data_len = usize::from(u16::from_be_bytes([p[0], p[1]]));
    let bd_len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if data_len + 2 > param_len || bd_len + 8 > param_len {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    // A trailing partial descriptor is ignored (SBC-4 §5.32.2).
    let count = bd_len / 16;
    let cfg = ctx.target.config();
    if count > cfg.max_unmap_descriptors as usize {
        return Err(Sense::invalid_param_field(2, None));
    }
    let mut ranges = Vec::with_capacity(count);
    for i in 0..count {
        let d = &p[8 + 16 * i..24 + 16 * i];
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&d[0..8]);
        let lba = u64::from_be_bytes(lba);
        let blocks = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        if blocks > cfg.max_unmap_blocks {
            return Err(Sense::invalid_param_field(
                u16::try_from(16 + 16 * i).unwrap_or(0),
                None,
            ));
        }
        check_range(ctx, lba, u64::from(blocks))?;
        if blocks > 0 {
            ranges.push((lba, blocks));
        }
    }
    let bs = ctx.block_size();
    let _shared = ctx.lu.write_gate.read().await;
    for (lba, blocks) in ranges {
        ctx.lu
            .backstore
            .discard(lba * bs, u64::from(blocks) * bs)
            .await
            .map_err(|e| e.sense().with_information(lba))?;
    }
    Ok(Xfer {
        len: param_len,
        wanted: param_len,
    })
}

/// Most LBA status descriptors one GET LBA STATUS returns.
const MAX_LBA_STATUS_DESCRIPTORS: usize = 64;

/// GET LBA STATUS: descriptors for consecutive extents from `lba`.
pub(crate) async fn get_lba_status(ctx: &Ctx<'_>, lba: u64, alloc_len: u32) -> Outcome {
    let blocks = ctx.geometry.blocks();
    if lba >= blocks {
        return Err(out_of_range());
    }
    let bs = ctx.block_size();
    let room = (alloc_len as usize).saturating_sub(8) / 16;
    let max = room.clamp(1, MAX_LBA_STATUS_DESCRIPTORS);
    let mut d = vec![0u8; 8];
    let mut at = lba;
    for _ in 0..max {
        if at >= blocks {
            break;
        }
        let remaining = (blocks - at) * bs;
        let extent = ctx
            .lu
            .backstore
            .allocation(at * bs, remaining)
            .await
            .map_err(|e| e.sense())?;
        let n = (extent.len / bs)
            .clamp(1, blocks - at)
            .min(u64::from(u32::MAX));
        let status = match extent.state {
            AllocationState::Mapped => 0,
            AllocationState::Deallocated => 1,
            AllocationState::Anchored => 2,
        };
        d.extend_from_slice(&at.to_be_bytes());
        d.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
        d.extend_from_slice(&[status, 0, 0, 0]);
        at += n;
    }
    let len = u32::try_from(d.len() - 4).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(ctx.data_in(&d, alloc_len as usize))
}
