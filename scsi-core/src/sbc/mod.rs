//! SCSI Block Commands (SBC-4): the disk device model.
//!
//! Every handler validates its CDB fields against the logical unit first
//! (protection fields, ranges, block limits, write protection), then moves
//! data between the backstore and the transport's buffer without an
//! intermediate copy on the READ/WRITE path.

mod atomic;
mod compare;
mod medium;
mod provisioning;
mod sanitize;

pub(crate) use atomic::{
    limits_in_blocks as atomic_limits_in_blocks, supported as atomic_supported, write_atomic,
};
pub(crate) use compare::{compare_and_write, or_write, verify};
pub(crate) use medium::{load_eject, not_present as medium_not_present, prevent_allow, Medium};
pub(crate) use provisioning::{get_lba_status, unmap, write_same};
pub(crate) use sanitize::{sanitize, SanitizeState};

use std::sync::atomic::Ordering;

use crate::backstore::{Capabilities, WriteFlags};
use crate::buffer::DataBuffer;
use crate::cdb::{CacheRange, CdbSize, Rw};
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::sense::{Asc, Sense, SenseKey};

/// MAXIMUM COMPARE AND WRITE LENGTH reported in VPD B0h.
pub(crate) const MAX_CAW_BLOCKS: u8 = 255;

/// Largest scratch buffer a handler allocates (VERIFY, COMPARE AND WRITE,
/// WRITE SAME patterns): work is chunked to this size.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Offset of the transfer-length field in each CDB size.
fn length_field(size: CdbSize) -> u16 {
    match size {
        CdbSize::Six => 4,
        CdbSize::Ten => 7,
        CdbSize::Twelve => 6,
        CdbSize::Sixteen => 10,
    }
}

/// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
pub(crate) fn out_of_range() -> Sense {
    Sense::illegal(Asc::LBA_OUT_OF_RANGE)
}

/// DATA PROTECT, WRITE PROTECTED.
pub(crate) fn write_protected() -> Sense {
    Sense::new(SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED)
}

/// Refuse writes to a read-only or software-write-protected unit.
pub(crate) fn check_writable(ctx: &Ctx<'_>) -> Result<(), Sense> {
    writable_flags(ctx, false).map(|_| ())
}

/// [`check_writable`] and [`write_flags`] under one lock: the hot path.
pub(crate) fn writable_flags(ctx: &Ctx<'_>, fua: bool) -> Result<WriteFlags, Sense> {
    if ctx.lu.read_only {
        return Err(write_protected());
    }
    let mode = ctx.lu.state().mode;
    if mode.swp {
        return Err(write_protected());
    }
    Ok(if fua || !mode.wce {
        WriteFlags::FUA
    } else {
        WriteFlags::empty()
    })
}

/// Check that `blocks` blocks at `lba` lie inside the medium (SBC-4 §4.5).
pub(crate) fn check_range(ctx: &Ctx<'_>, lba: u64, blocks: u64) -> Result<(), Sense> {
    let end = lba.checked_add(blocks).ok_or_else(out_of_range)?;
    if end > ctx.geometry.blocks() {
        return Err(out_of_range());
    }
    Ok(())
}

/// Check RDPROTECT/WRPROTECT/VRPROTECT: without protection information any
/// non-zero value is an invalid field (SBC-4 §5.16 table 71 and peers).
pub(crate) fn check_protect(protect: u8) -> Result<(), Sense> {
    if protect != 0 {
        return Err(Sense::invalid_cdb_field(1, Some(7)));
    }
    Ok(())
}

/// Validate a READ/WRITE/VERIFY transfer; returns its byte length.
fn check_rw(ctx: &Ctx<'_>, rw: &Rw) -> Result<u64, Sense> {
    check_protect(rw.protect)?;
    if rw.blocks > ctx.target.config().max_transfer_blocks {
        return Err(Sense::invalid_cdb_field(length_field(rw.size), None));
    }
    check_range(ctx, rw.lba, u64::from(rw.blocks))?;
    Ok(u64::from(rw.blocks) * ctx.block_size())
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// READ (6/10/12/16) (SBC-4 §5.12-5.16).
pub(crate) async fn read(ctx: &Ctx<'_>, rw: &Rw) -> Outcome {
    let bytes = usize_of(check_rw(ctx, rw)?);
    if bytes == 0 {
        return Ok(Xfer::NONE);
    }
    let offset = rw.lba * ctx.block_size();
    let bs = usize_of(ctx.block_size());
    let avail = bytes.min(ctx.data.len());
    let whole = avail - avail % bs;
    if whole > 0 {
        let read_all = || {
            let view = ctx.data.slice(0, whole).unwrap_or_default();
            ctx.lu.backstore.read(offset, view)
        };
        let err = |e: crate::backstore::IoError| e.sense().with_information(rw.lba);
        // Never return part of a WRITE ATOMIC (see sbc::atomic): a read
        // that overlapped one in time is done again under the shared gate,
        // which an atomic write holds exclusively.
        let seq = ctx.lu.atomic_seq.load(Ordering::SeqCst);
        let clean = seq % 2 == 0 && {
            read_all().await.map_err(err)?;
            ctx.lu.atomic_seq.load(Ordering::SeqCst) == seq
        };
        if !clean {
            let _shared = ctx.lu.write_gate.read().await;
            read_all().await.map_err(err)?;
        }
    }
    if whole < avail {
        // The buffer ends inside a block: read that block aside and copy
        // the part that fits (a cold path: only short buffers take it).
        let tail = DataBuffer::zeroed(bs);
        ctx.lu
            .backstore
            .read(offset + whole as u64, tail.clone())
            .await
            .map_err(|e| e.sense().with_information(rw.lba))?;
        ctx.data.copy_from_buffer(whole, &tail, 0, avail - whole);
    }
    Ok(Xfer {
        len: avail,
        wanted: bytes,
    })
}

/// The write flags for a command with `fua`, honouring WCE: with the write
/// cache disabled every write is durable at completion (SBC-4 §4.15).
pub(crate) fn write_flags(ctx: &Ctx<'_>, fua: bool) -> WriteFlags {
    let wce = ctx.lu.state().mode.wce;
    if fua || !wce {
        WriteFlags::FUA
    } else {
        WriteFlags::empty()
    }
}

/// Write `buf` at `offset` with `flags`, flushing afterwards when the
/// backstore cannot honour FUA itself.
pub(crate) async fn write_durable(
    ctx: &Ctx<'_>,
    offset: u64,
    buf: DataBuffer,
    flags: WriteFlags,
) -> Result<(), Sense> {
    write_durable_with(ctx, offset, buf, flags, false).await
}

/// [`write_durable`], through [`Backstore::write_atomic`] when `atomic`.
///
/// [`Backstore::write_atomic`]: crate::backstore::Backstore::write_atomic
pub(crate) async fn write_durable_with(
    ctx: &Ctx<'_>,
    offset: u64,
    buf: DataBuffer,
    flags: WriteFlags,
    atomic: bool,
) -> Result<(), Sense> {
    let backstore = &ctx.lu.backstore;
    let caps = backstore.capabilities();
    let native_fua = caps.contains(Capabilities::FUA);
    let lba = offset / ctx.block_size();
    let pass = if native_fua {
        flags
    } else {
        WriteFlags::empty()
    };
    let done = if atomic {
        backstore.write_atomic(offset, buf, pass).await
    } else {
        backstore.write(offset, buf, pass).await
    };
    done.map_err(|e| e.sense().with_information(lba))?;
    if flags.contains(WriteFlags::FUA) && !native_fua && caps.contains(Capabilities::WRITE_CACHE) {
        backstore.flush().await.map_err(|e| e.sense())?;
    }
    Ok(())
}

/// WRITE (6/10/12/16) and WRITE AND VERIFY (10/12/16) (SBC-4 §5.40-5.46).
///
/// With a buffer shorter than the transfer length, only the whole blocks
/// the buffer holds are written and the residual reports the overflow
/// (the behaviour libiscsi's residual tests expect).
pub(crate) async fn write(ctx: &Ctx<'_>, rw: &Rw, and_verify: bool) -> Outcome {
    let bytes = usize_of(check_rw(ctx, rw)?);
    if and_verify && rw.bytchk > 1 {
        return Err(Sense::invalid_cdb_field(1, Some(2)));
    }
    let flags = writable_flags(ctx, rw.fua)?;
    if bytes == 0 {
        return Ok(Xfer::NONE);
    }
    let bs = usize_of(ctx.block_size());
    let avail = bytes.min(ctx.data.len());
    let whole = avail - avail % bs;
    if whole > 0 {
        let view = ctx.data.slice(0, whole).unwrap_or_default();
        let _shared = ctx.lu.write_gate.read().await;
        write_durable(ctx, rw.lba * ctx.block_size(), view, flags).await?;
    }
    Ok(Xfer {
        len: whole,
        wanted: bytes,
    })
}

/// READ CAPACITY (10) (SBC-4 §5.20).
pub(crate) fn read_capacity_10(ctx: &Ctx<'_>, lba: u32, pmi: bool) -> Outcome {
    if !pmi && lba != 0 {
        return Err(Sense::invalid_cdb_field(2, None));
    }
    let last = ctx.geometry.blocks().saturating_sub(1);
    let mut d = [0u8; 8];
    d[0..4].copy_from_slice(&u32::try_from(last).unwrap_or(u32::MAX).to_be_bytes());
    d[4..8].copy_from_slice(&ctx.geometry.logical_block_size.to_be_bytes());
    Ok(ctx.data_in(&d, d.len()))
}

/// READ CAPACITY (16) (SBC-4 §5.21).
pub(crate) fn read_capacity_16(ctx: &Ctx<'_>, alloc_len: u32) -> Outcome {
    let g = ctx.geometry;
    let caps = ctx.lu.backstore.capabilities();
    let mut d = [0u8; 32];
    d[0..8].copy_from_slice(&g.blocks().saturating_sub(1).to_be_bytes());
    d[8..12].copy_from_slice(&g.logical_block_size.to_be_bytes());
    let ratio = (g.physical_block_size / g.logical_block_size.max(1)).max(1);
    d[13] = (ratio.trailing_zeros() & 0x0f) as u8;
    if caps.contains(Capabilities::DISCARD) {
        d[14] |= 0x80; // LBPME
        if caps.contains(Capabilities::DISCARD_ZEROES) {
            d[14] |= 0x40; // LBPRZ
        }
    }
    // LOWEST ALIGNED LOGICAL BLOCK ADDRESS: 0.
    Ok(ctx.data_in(&d, alloc_len as usize))
}

/// SYNCHRONIZE CACHE (10/16) (SBC-4 §5.28).
pub(crate) async fn synchronize_cache(ctx: &Ctx<'_>, r: &CacheRange) -> Outcome {
    check_range(ctx, r.lba, u64::from(r.blocks))?;
    ctx.lu.backstore.flush().await.map_err(|e| e.sense())?;
    Ok(Xfer::NONE)
}

/// PRE-FETCH (10/16) (SBC-4 §5.10): we keep no read cache to fill, so a
/// valid request completes with GOOD (the status SBC-4 gives when the cache
/// cannot hold the blocks).
pub(crate) fn pre_fetch(ctx: &Ctx<'_>, r: &CacheRange) -> Outcome {
    check_range(ctx, r.lba, u64::from(r.blocks))?;
    Ok(Xfer::NONE)
}

/// START STOP UNIT (SBC-4 §5.27). The medium is not removable: LOEJ is an
/// invalid field; power conditions are accepted; stopping flushes the cache
/// unless NO_FLUSH.
pub(crate) async fn start_stop_unit(
    ctx: &Ctx<'_>,
    power_condition: u8,
    no_flush: bool,
    start: bool,
    loej: bool,
) -> Outcome {
    if !matches!(power_condition, 0x0 | 0x1 | 0x2 | 0x3 | 0x7 | 0xa | 0xb) {
        return Err(Sense::invalid_cdb_field(4, Some(7)));
    }
    if loej && power_condition == 0 {
        if ctx.lu.removable {
            return medium::load_eject(ctx, start).await;
        }
        // No medium to load or eject.
        return Err(Sense::invalid_cdb_field(4, Some(1)));
    }
    if !start && !no_flush && power_condition == 0 {
        ctx.lu.backstore.flush().await.map_err(|e| e.sense())?;
    }
    Ok(Xfer::NONE)
}

/// FORMAT UNIT (SBC-4 §5.3) without a parameter list: the medium keeps its
/// format, so there is nothing to do beyond validating the request.
pub(crate) fn format_unit(ctx: &Ctx<'_>, fmtpinfo: u8, longlist: bool, fmtdata: bool) -> Outcome {
    if fmtpinfo != 0 {
        return Err(Sense::invalid_cdb_field(1, Some(7)));
    }
    if fmtdata {
        return Err(Sense::invalid_cdb_field(1, Some(4)));
    }
    if longlist {
        return Err(Sense::invalid_cdb_field(1, Some(5)));
    }
    check_writable(ctx)?;
    Ok(Xfer::NONE)
}

/// READ DEFECT DATA (10/12) (SBC-4 §5.17, §5.18): the defect lists are empty.
pub(crate) fn read_defect_data(
    ctx: &Ctx<'_>,
    size: CdbSize,
    req_plist: bool,
    req_glist: bool,
    format: u8,
    alloc_len: u32,
) -> Outcome {
    let flags = (u8::from(req_plist) << 4) | (u8::from(req_glist) << 3) | (format & 7);
    let d: Vec<u8> = if size == CdbSize::Twelve {
        vec![0, flags, 0, 0, 0, 0, 0, 0]
    } else {
        vec![0, flags, 0, 0]
    };
    Ok(ctx.data_in(&d, alloc_len as usize))
}
