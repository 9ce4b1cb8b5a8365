//! Stream commands (SSC-3): the sequential-access (tape) device model
//! ([`DeviceType::Tape`](crate::device::DeviceType::Tape)).
//!
//! The medium is the logical unit's backstore holding one partition of
//! logical blocks and filemarks, in the AWSTAPE-style layout [`image`]
//! describes: a zero-filled file is a blank tape whose capacity is the
//! file's size. The device is removable (LOAD UNLOAD), writes are buffered
//! (BUFFERED MODE 1) and reach the medium by WRITE FILEMARKS or unload.
//!
//! Implemented: READ(6) and WRITE(6) in fixed and variable block mode
//! (the mode parameter block descriptor's BLOCK LENGTH, 0 for variable),
//! WRITE FILEMARKS(6), SPACE(6) over blocks, filemarks and to end of data
//! in both directions, REWIND, LOCATE(10), READ POSITION (short and long
//! forms), ERASE(6), LOAD UNLOAD, READ BLOCK LIMITS, and the Data
//! Compression (0Fh, compression not supported) and Device Configuration
//! (10h) mode pages. Each exception reports what SSC-3 §4.2 asks: FILEMARK,
//! EOM and ILI in the sense data and the residue in INFORMATION, with the
//! data transferred before it. Setmarks, partitions, compression and
//! REPORT DENSITY SUPPORT are not implemented: their fields are refused
//! with INVALID FIELD IN CDB and their commands are not in the table.

pub mod image;

pub(crate) use image::Position;
pub use image::MAX_BLOCK_LEN;

use crate::buffer::DataBuffer;
use crate::cdb::Cdb;
use crate::engine::exec::{Ctx, Xfer};
use crate::sense::{Asc, Sense, SenseKey, StreamBits};
use image::{Append, Object};

/// A tape command that ended with CHECK CONDITION: its sense, and the data
/// it transferred before the condition (SSC-3 §4.2.4).
#[derive(Debug)]
pub(crate) struct Stop {
    pub sense: Sense,
    pub xfer: Xfer,
}

impl From<Sense> for Stop {
    fn from(sense: Sense) -> Self {
        Self {
            sense,
            xfer: Xfer::NONE,
        }
    }
}

type TapeOutcome = Result<Xfer, Stop>;

/// An exception condition (SSC-3 §4.2.4): `key`/`asc` with the stream
/// bits and a residue.
fn exception(key: SenseKey, asc: Asc, stream: StreamBits, residue: i64) -> Sense {
    Sense::new(key, asc)
        .with_stream(stream)
        .with_residue(residue)
}

/// NO SENSE, FILEMARK DETECTED.
fn filemark(residue: i64) -> Sense {
    exception(
        SenseKey::NO_SENSE,
        Asc::FILEMARK_DETECTED,
        StreamBits::FILEMARK,
        residue,
    )
}

/// BLANK CHECK, END-OF-DATA DETECTED.
fn end_of_data(residue: i64) -> Sense {
    exception(
        SenseKey::BLANK_CHECK,
        Asc::END_OF_DATA_DETECTED,
        StreamBits::NONE,
        residue,
    )
}

/// NO SENSE, EOM, BEGINNING-OF-PARTITION/MEDIUM DETECTED.
fn beginning(residue: i64) -> Sense {
    exception(
        SenseKey::NO_SENSE,
        Asc::BEGINNING_OF_PARTITION_MEDIUM_DETECTED,
        StreamBits::EOM,
        residue,
    )
}

/// The early-warning zone before the end of a medium of `size` bytes: a
/// write ending inside it reports EOM (SSC-3 §4.2.5).
fn early_warning(size: u64) -> u64 {
    (size / 32).min(1 << 20)
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// VOLUME OVERFLOW: nothing was written, `residue` is what was asked.
fn overflow(residue: i64) -> Sense {
    exception(
        SenseKey::VOLUME_OVERFLOW,
        Asc::END_OF_PARTITION_MEDIUM_DETECTED,
        StreamBits::EOM,
        residue,
    )
}

/// Run a tape command.
pub(crate) async fn dispatch(ctx: &Ctx<'_>, cdb: &Cdb) -> TapeOutcome {
    if *cdb == Cdb::ReadBlockLimits {
        return Ok(read_block_limits(ctx));
    }
    let bs = &ctx.lu.backstore;
    let mut pos = ctx.lu.tape.lock().await;
    let pos = &mut *pos;
    match *cdb {
        Cdb::Rewind { .. } => {
            *pos = Position::default();
            Ok(Xfer::NONE)
        }
        Cdb::TapeRead {
            sili,
            fixed,
            length,
        } => read(ctx, pos, sili, fixed, length).await,
        Cdb::TapeWrite { fixed, length } => write(ctx, pos, fixed, length).await,
        Cdb::WriteFilemarks { wsmk, immed, count } => {
            if wsmk {
                return Err(Sense::invalid_cdb_field(1, Some(1)).into());
            }
            write_filemarks(ctx, pos, immed, count).await
        }
        Cdb::Space { code, count } => space(ctx, pos, code, count).await,
        Cdb::Erase { .. } => {
            crate::sbc::check_writable(ctx)?;
            let flags = crate::sbc::write_flags(ctx, false);
            Append::new(pos, 0, 0).write(bs, pos, flags).await?;
            Ok(Xfer::NONE)
        }
        Cdb::LoadUnload {
            hold, eot, load, ..
        } => {
            if hold {
                return Err(Sense::invalid_cdb_field(4, Some(3)).into());
            }
            if eot && load {
                return Err(Sense::invalid_cdb_field(4, Some(2)).into());
            }
            load_unload(ctx, pos, load).await
        }
        Cdb::Locate {
            cp,
            block,
            partition,
            ..
        } => {
            if cp && partition != 0 {
                return Err(Sense::invalid_cdb_field(8, None).into());
            }
            locate(ctx, pos, u64::from(block)).await
        }
        Cdb::ReadPosition { service_action, .. } => read_position(ctx, pos, service_action),
        _ => Ok(Xfer::NONE),
    }
}

/// READ BLOCK LIMITS (SSC-3 §7.4): any length from 1 byte to one
/// AWSTAPE chunk.
fn read_block_limits(ctx: &Ctx<'_>) -> Xfer {
    let mut d = [0u8; 6];
    d[1..4].copy_from_slice(&MAX_BLOCK_LEN.to_be_bytes()[1..]);
    d[4..6].copy_from_slice(&1u16.to_be_bytes());
    ctx.data_in(&d, d.len())
}

/// The mode block length, checked against FIXED: fixed-block mode needs a
/// block length.
fn block_len(ctx: &Ctx<'_>, fixed: bool) -> Result<u32, Sense> {
    let len = ctx.lu.state().mode.block_len;
    if fixed && len == 0 {
        return Err(Sense::invalid_cdb_field(1, Some(0)));
    }
    Ok(len)
}

/// READ(6) (SSC-3 §7.3).
async fn read(
    ctx: &Ctx<'_>,
    pos: &mut Position,
    sili: bool,
    fixed: bool,
    length: u32,
) -> TapeOutcome {
    if fixed && sili {
        return Err(Sense::invalid_cdb_field(1, Some(1)).into());
    }
    let block = block_len(ctx, fixed)?;
    if length == 0 {
        return Ok(Xfer::NONE);
    }
    if !fixed {
        return read_variable(ctx, pos, sili, block, length).await;
    }
    let bs = &ctx.lu.backstore;
    let size = usize::try_from(block).unwrap_or(usize::MAX);
    let mut done = 0usize;
    for i in 0..u64::from(length) {
        let left = i64_of(u64::from(length) - i);
        let xfer = Xfer {
            len: done,
            wanted: done,
        };
        let stop = |sense| Stop { sense, xfer };
        match pos.peek(bs).await? {
            Object::EndOfData => return Err(stop(end_of_data(left))),
            Object::Filemark => {
                pos.pass(Object::Filemark);
                return Err(stop(filemark(left)));
            }
            Object::Block(len) => {
                let n = usize::from(len);
                let room = ctx.data.len().saturating_sub(done).min(size);
                read_data(ctx, pos, done, n.min(room)).await?;
                pos.pass(Object::Block(len));
                done += n.min(room);
                if n != size {
                    // SSC-3 §7.3: a block of another length ends the
                    // command after it; the residue counts the blocks not
                    // read, that one included.
                    let sense = exception(
                        SenseKey::NO_SENSE,
                        Asc::NO_ADDITIONAL_SENSE,
                        StreamBits::ILI,
                        left,
                    );
                    return Err(Stop {
                        sense,
                        xfer: Xfer {
                            len: done,
                            wanted: done,
                        },
                    });
                }
            }
        }
    }
    Ok(Xfer {
        len: done,
        wanted: usize::try_from(u64::from(length) * u64::from(block)).unwrap_or(usize::MAX),
    })
}

/// Copy `len` bytes of the block after `pos` into the command's buffer at
/// `at`.
async fn read_data(ctx: &Ctx<'_>, pos: &Position, at: usize, len: usize) -> Result<(), Sense> {
    if len == 0 {
        return Ok(());
    }
    let view = ctx.data.slice(at, len).unwrap_or_else(DataBuffer::empty);
    ctx.lu
        .backstore
        .read(pos.offset + image::HEADER_LEN, view)
        .await
        .map_err(|e| e.sense())
}

/// READ(6) of one variable-length block of up to `length` bytes.
async fn read_variable(
    ctx: &Ctx<'_>,
    pos: &mut Position,
    sili: bool,
    block: u32,
    length: u32,
) -> TapeOutcome {
    let bs = &ctx.lu.backstore;
    let asked = i64::from(length);
    let n = match pos.peek(bs).await? {
        Object::EndOfData => return Err(end_of_data(asked).into()),
        Object::Filemark => {
            pos.pass(Object::Filemark);
            return Err(filemark(asked).into());
        }
        Object::Block(n) => n,
    };
    let want = usize::try_from(length).unwrap_or(usize::MAX);
    let len = usize::from(n).min(want).min(ctx.data.len());
    read_data(ctx, pos, 0, len).await?;
    pos.pass(Object::Block(n));
    let xfer = Xfer { len, wanted: len };
    let residue = asked - i64::from(n);
    // SILI suppresses the incorrect length report, except for an
    // overlength block in fixed-length mode (SSC-3 §7.3).
    let suppressed = sili && (residue > 0 || block == 0);
    if residue == 0 || suppressed {
        return Ok(xfer);
    }
    let sense = exception(
        SenseKey::NO_SENSE,
        Asc::NO_ADDITIONAL_SENSE,
        StreamBits::ILI,
        residue,
    );
    Err(Stop { sense, xfer })
}

/// WRITE(6) (SSC-3 §7.13).
async fn write(ctx: &Ctx<'_>, pos: &mut Position, fixed: bool, length: u32) -> TapeOutcome {
    let block = block_len(ctx, fixed)?;
    if !fixed && length > MAX_BLOCK_LEN {
        return Err(Sense::invalid_cdb_field(2, None).into());
    }
    crate::sbc::check_writable(ctx)?;
    if length == 0 {
        return Ok(Xfer::NONE);
    }
    let (count, each) = if fixed { (length, block) } else { (1, length) };
    let bytes = u64::from(count) * u64::from(each);
    if (ctx.data.len() as u64) < bytes {
        // The initiator sent less than the CDB asks to write.
        return Err(Sense::invalid_cdb_field(2, None).into());
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let each16 = u16::try_from(each).unwrap_or(u16::MAX);
    let each = usize::from(each16);
    let mut run = Append::new(pos, count, count * each);
    for i in 0..count {
        run.block(each16, ctx.data, i * each);
    }
    append(ctx, pos, run, i64::from(length)).await?;
    Ok(Xfer {
        len: count * each,
        wanted: count * each,
    })
}

/// Write `run` at `pos`, or report VOLUME OVERFLOW with nothing written
/// (residue `asked`) when it does not fit; EOM when it ends in the
/// early-warning zone.
async fn append(ctx: &Ctx<'_>, pos: &mut Position, run: Append, asked: i64) -> Result<(), Stop> {
    let size = ctx.geometry.size;
    let end = pos.offset + run.len();
    if end > size {
        return Err(overflow(asked).into());
    }
    let flags = crate::sbc::write_flags(ctx, false);
    run.write(&ctx.lu.backstore, pos, flags).await?;
    if end > size - early_warning(size) {
        return Err(exception(
            SenseKey::NO_SENSE,
            Asc::END_OF_PARTITION_MEDIUM_DETECTED,
            StreamBits::EOM,
            0,
        )
        .into());
    }
    Ok(())
}

/// Most filemarks written in one backstore write.
const FILEMARK_RUN: u32 = 4096;

/// WRITE FILEMARKS(6) (SSC-3 §7.14): the filemarks, then (IMMED clear)
/// the buffered data to the medium.
async fn write_filemarks(
    ctx: &Ctx<'_>,
    pos: &mut Position,
    immed: bool,
    count: u32,
) -> TapeOutcome {
    crate::sbc::check_writable(ctx)?;
    if count > 0 {
        let room = ctx.geometry.size.saturating_sub(pos.offset) / image::HEADER_LEN;
        if u64::from(count) > room {
            return Err(overflow(i64::from(count)).into());
        }
        // In runs of at most FILEMARK_RUN, so that a large count does not
        // become one large buffer.
        let mut left = count;
        while left > 0 {
            let n = left.min(FILEMARK_RUN);
            let mut run = Append::new(pos, n as usize, 0);
            for _ in 0..n {
                run.filemark();
            }
            left -= n;
            match append(ctx, pos, run, i64::from(count)).await {
                // The early warning, with filemarks still to write.
                Err(stop) if left > 0 && stop.sense.key == SenseKey::NO_SENSE => {}
                other => other?,
            }
        }
    }
    if !immed {
        ctx.lu.backstore.flush().await.map_err(|e| e.sense())?;
    }
    Ok(Xfer::NONE)
}

/// SPACE(6) (SSC-3 §7.9).
async fn space(ctx: &Ctx<'_>, pos: &mut Position, code: u8, count: i32) -> TapeOutcome {
    let bs = &ctx.lu.backstore;
    let n = i64::from(count);
    match code {
        // Logical blocks: stop at a filemark (after it going forward,
        // before it going backward), at end of data or at BOP.
        0 => {
            for i in 0..n.abs() {
                let left = if n > 0 { n - i } else { n + i };
                let met = pos.step(bs, n > 0).await?;
                match met {
                    Some(Object::Block(_)) => {}
                    // Backward, `backward` left us on its BOP side.
                    Some(Object::Filemark) => return Err(filemark(left).into()),
                    Some(Object::EndOfData) => return Err(end_of_data(left).into()),
                    None => return Err(beginning(left).into()),
                }
            }
        }
        // Filemarks.
        1 => {
            let mut left = n;
            while left != 0 {
                let met = pos.step(bs, n > 0).await?;
                match met {
                    Some(Object::Block(_)) => {}
                    Some(Object::Filemark) => left -= n.signum(),
                    Some(Object::EndOfData) => return Err(end_of_data(left).into()),
                    None => return Err(beginning(left).into()),
                }
            }
        }
        // End of data.
        3 => while pos.forward(bs).await? != Object::EndOfData {},
        // Sequential filemarks and setmarks are not supported.
        _ => return Err(Sense::invalid_cdb_field(1, Some(3)).into()),
    }
    Ok(Xfer::NONE)
}

/// LOCATE(10) (SSC-3 §7.5): to logical object `target` of partition 0.
async fn locate(ctx: &Ctx<'_>, pos: &mut Position, target: u64) -> TapeOutcome {
    let bs = &ctx.lu.backstore;
    if target < pos.object {
        *pos = Position::default();
    }
    while pos.object < target {
        if pos.forward(bs).await? == Object::EndOfData {
            return Err(end_of_data(0).into());
        }
    }
    Ok(Xfer::NONE)
}

/// READ POSITION (SSC-3 §7.7): short form (service actions 00h and 01h;
/// our block address is the logical object number either way) and long
/// form (06h).
fn read_position(ctx: &Ctx<'_>, pos: &Position, service_action: u8) -> TapeOutcome {
    let size = ctx.geometry.size;
    let mut flags = 0u8;
    if pos.at_bop() {
        flags |= 0x80; // BOP
    }
    if pos.offset > size - early_warning(size) {
        flags |= 0x40; // EOP
    }
    let d: Vec<u8> = match service_action {
        0x00 | 0x01 => {
            let mut d = vec![0u8; 20];
            d[0] = flags;
            let at = u32::try_from(pos.object).unwrap_or(u32::MAX);
            d[4..8].copy_from_slice(&at.to_be_bytes());
            d[8..12].copy_from_slice(&at.to_be_bytes());
            d
        }
        0x06 => {
            let mut d = vec![0u8; 32];
            d[0] = flags;
            d[8..16].copy_from_slice(&pos.object.to_be_bytes());
            d[16..24].copy_from_slice(&pos.file.to_be_bytes());
            d
        }
        _ => return Err(Sense::invalid_cdb_field(1, Some(4)).into()),
    };
    Ok(ctx.data_in(&d, d.len()))
}

/// LOAD UNLOAD (SSC-3 §7.2): load positions at BOP; unload (unless
/// prevented) writes buffered data, rewinds and takes the medium out.
async fn load_unload(ctx: &Ctx<'_>, pos: &mut Position, load: bool) -> TapeOutcome {
    if load {
        let mut state = ctx.lu.state();
        if state.medium.ejected {
            state.set_ejected(false);
            state.raise_all(Asc::NOT_READY_TO_READY_CHANGE, Some(ctx.nexus));
        }
        *pos = Position::default();
        return Ok(Xfer::NONE);
    }
    // The removable-medium eject: refused while prevented, buffered
    // data written first.
    crate::sbc::load_eject(ctx, false).await?;
    *pos = Position::default();
    Ok(Xfer::NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_warning_is_bounded() {
        assert_eq!(early_warning(1 << 20), 32 << 10);
        assert_eq!(early_warning(1 << 40), 1 << 20);
    }
}
