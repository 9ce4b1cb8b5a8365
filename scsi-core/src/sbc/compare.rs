//! VERIFY (10/12/16), COMPARE AND WRITE and ORWRITE (16) (SBC-4
//! §5.33-5.35, §5.2, §5.9): the commands that read the medium before or
//! instead of writing it.

use crate::buffer::DataBuffer;
use crate::cdb::Rw;
use crate::engine::exec::{Ctx, Outcome, Xfer};
use crate::sense::{Asc, Sense, SenseKey};

use super::{
    check_protect, check_range, check_writable, usize_of, write_durable, write_flags, CHUNK_BYTES,
};

/// MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION, with the offset of the
/// first differing byte in INFORMATION (SBC-4 §5.2, §5.33).
fn miscompare(offset: usize) -> Sense {
    Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY).with_information(offset as u64)
}

/// Compare `len` bytes of the medium at `offset` with `expected(i, out)`,
/// which fills `out` with the expected bytes starting at byte `i`. Returns
/// the index of the first difference.
async fn compare_medium(
    ctx: &Ctx<'_>,
    offset: u64,
    len: usize,
    mut expected: impl FnMut(usize, &mut [u8]),
) -> Result<Option<usize>, Sense> {
    let chunk = CHUNK_BYTES.min(len);
    let scratch = DataBuffer::zeroed(chunk);
    let mut medium = vec![0u8; chunk];
    let mut want = vec![0u8; chunk];
    let mut done = 0usize;
    while done < len {
        let n = chunk.min(len - done);
        let view = scratch.truncated(n);
        ctx.lu
            .backstore
            .read(offset + done as u64, view.clone())
            .await
            .map_err(|e| e.sense())?;
        view.read_at(0, &mut medium[..n]);
        expected(done, &mut want[..n]);
        if let Some(i) = medium[..n].iter().zip(&want[..n]).position(|(a, b)| a != b) {
            return Ok(Some(done + i));
        }
        done += n;
    }
    Ok(None)
}

/// VERIFY (10/12/16): BYTCHK 00b verifies the medium (reads it), 01b
/// compares it with the data-out buffer, 11b compares every block with the
/// one block sent.
pub(crate) async fn verify(ctx: &Ctx<'_>, rw: &Rw) -> Outcome {
    check_protect(rw.protect)?;
    if rw.bytchk == 2 {
        return Err(Sense::invalid_cdb_field(1, Some(2)));
    }
    if rw.blocks > ctx.target.config().max_transfer_blocks {
        return Err(Sense::invalid_cdb_field(super::length_field(rw.size), None));
    }
    check_range(ctx, rw.lba, u64::from(rw.blocks))?;
    let bs = usize_of(ctx.block_size());
    let bytes = usize_of(u64::from(rw.blocks) * ctx.block_size());
    let offset = rw.lba * ctx.block_size();
    if bytes == 0 {
        return Ok(Xfer::NONE);
    }
    match rw.bytchk {
        0 => {
            compare_medium(ctx, offset, bytes, |_, out| out.fill(0)).await?;
            Ok(Xfer::NONE)
        }
        1 => {
            let avail = bytes.min(ctx.data.len());
            let data = ctx.data;
            if let Some(at) = compare_medium(ctx, offset, avail, |i, out| {
                data.read_at(i, out);
            })
            .await?
            {
                return Err(miscompare(at));
            }
            Ok(Xfer {
                len: avail,
                wanted: bytes,
            })
        }
        _ => {
            if ctx.data.len() < bs {
                return Err(Sense::invalid_cdb_field(1, Some(2)));
            }
            let mut block = vec![0u8; bs];
            ctx.data.read_at(0, &mut block);
            if let Some(at) = compare_medium(ctx, offset, bytes, |i, out| {
                for (k, o) in out.iter_mut().enumerate() {
                    *o = block[(i + k) % bs];
                }
            })
            .await?
            {
                return Err(miscompare(at));
            }
            Ok(Xfer {
                len: bs,
                wanted: bs,
            })
        }
    }
}

/// COMPARE AND WRITE: the data-out buffer holds the verify data then the
/// write data; the compare and the write are atomic against every other
/// write to the logical unit (the exclusive write gate).
pub(crate) async fn compare_and_write(
    ctx: &Ctx<'_>,
    lba: u64,
    blocks: u8,
    wrprotect: u8,
    fua: bool,
) -> Outcome {
    check_protect(wrprotect)?;
    check_range(ctx, lba, u64::from(blocks))?;
    check_writable(ctx)?;
    if blocks == 0 {
        if !ctx.data.is_empty() {
            // No blocks, yet the initiator sent data: a NUMBER OF LOGICAL
            // BLOCKS that cannot describe the transfer (libiscsi sends 256
            // blocks this way and expects INVALID FIELD IN CDB).
            return Err(Sense::invalid_cdb_field(13, None));
        }
        return Ok(Xfer::NONE);
    }
    let half = usize::from(blocks) * usize_of(ctx.block_size());
    let wanted = 2 * half;
    if ctx.data.len() != wanted {
        // The data-out buffer must hold exactly the verify and the write
        // halves (SBC-4 §5.2): NUMBER OF LOGICAL BLOCKS does not match.
        return Err(Sense::invalid_cdb_field(13, None));
    }
    let offset = lba * ctx.block_size();
    let _exclusive = ctx.lu.write_gate.write().await;
    let data = ctx.data;
    if let Some(at) = compare_medium(ctx, offset, half, |i, out| {
        data.read_at(i, out);
    })
    .await?
    {
        return Err(miscompare(at));
    }
    let write_half = ctx.data.slice(half, half).unwrap_or_default();
    write_durable(ctx, offset, write_half, write_flags(ctx, fua)).await?;
    Ok(Xfer {
        len: wanted,
        wanted,
    })
}

/// ORWRITE (16): each block becomes the bitwise OR of its contents and the
/// data-out buffer, atomically against every other write (the exclusive
/// write gate), in chunks of at most [`CHUNK_BYTES`].
pub(crate) async fn or_write(ctx: &Ctx<'_>, rw: &Rw) -> Outcome {
    check_protect(rw.protect)?;
    if rw.blocks > ctx.target.config().max_transfer_blocks {
        return Err(Sense::invalid_cdb_field(super::length_field(rw.size), None));
    }
    check_range(ctx, rw.lba, u64::from(rw.blocks))?;
    check_writable(ctx)?;
    let bs = usize_of(ctx.block_size());
    let bytes = usize_of(u64::from(rw.blocks) * ctx.block_size());
    let avail = bytes.min(ctx.data.len());
    let whole = avail - avail % bs;
    if whole == 0 {
        return Ok(Xfer {
            len: 0,
            wanted: bytes,
        });
    }
    let offset = rw.lba * ctx.block_size();
    let chunk = CHUNK_BYTES - CHUNK_BYTES % bs;
    let scratch = DataBuffer::zeroed(chunk.min(whole));
    let mut medium = vec![0u8; scratch.len()];
    let mut mask = vec![0u8; scratch.len()];
    let flags = write_flags(ctx, rw.fua);
    let _exclusive = ctx.lu.write_gate.write().await;
    let mut done = 0;
    while done < whole {
        let n = chunk.min(whole - done);
        let view = scratch.truncated(n);
        let at = offset + done as u64;
        ctx.lu
            .backstore
            .read(at, view.clone())
            .await
            .map_err(|e| e.sense().with_information(at / ctx.block_size()))?;
        view.read_at(0, &mut medium[..n]);
        ctx.data.read_at(done, &mut mask[..n]);
        for (m, o) in medium[..n].iter_mut().zip(&mask[..n]) {
            *m |= o;
        }
        view.write_at(0, &medium[..n]);
        write_durable(ctx, at, view, flags).await?;
        done += n;
    }
    Ok(Xfer {
        len: whole,
        wanted: bytes,
    })
}
