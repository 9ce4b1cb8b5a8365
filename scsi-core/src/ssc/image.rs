//! The tape image: logical objects laid out in the backstore's bytes.
//!
//! Each object starts with a six-byte header in the layout of the AWSTAPE
//! format (Hercules, P/390): the length of this object's data (16 bits,
//! little endian), the length of the previous object's data (16 bits, little
//! endian, so the medium can be read backward), and two flag bytes. A
//! logical block is one chunk with BEGIN OF RECORD and END OF RECORD set
//! (`A0h`), a filemark has TAPEMARK set (`40h`) and no data. A header whose
//! flags are zero, or fewer than six bytes left before the end of the
//! backstore, is the end of data: a zero-filled file is a blank tape. Every
//! write ends with such an end-of-data header, which is how writing in the
//! middle of the medium discards what followed (SSC-3 §4.2.4).
//!
//! Blocks split over several chunks (AWSTAPE's way past 65,535 bytes) are
//! not written and read as MEDIUM FORMAT CORRUPTED: READ BLOCK LIMITS
//! reports 65,535 bytes as the largest block.

use crate::buffer::DataBuffer;
use crate::engine::lu::LuBackstore;
use crate::sense::{Asc, Sense, SenseKey};

/// Bytes of an object header.
pub(crate) const HEADER_LEN: u64 = 6;

/// Largest logical block, in bytes: one AWSTAPE chunk.
pub const MAX_BLOCK_LEN: u32 = 0xffff;

const BEGIN_OF_RECORD: u8 = 0x80;
const TAPEMARK: u8 = 0x40;
const END_OF_RECORD: u8 = 0x20;

/// Where a tape is: the byte offset of the next object's header, and the
/// counts SSC reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Position {
    /// Byte offset of the header of the object after the position.
    pub(crate) offset: u64,
    /// Data length of the object before the position (0 at BOP).
    pub(crate) prev: u16,
    /// Logical objects (blocks and filemarks) between BOP and here.
    pub(crate) object: u64,
    /// Filemarks between BOP and here (the logical file identifier).
    pub(crate) file: u64,
}

/// One logical object of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    /// A logical block of this many bytes.
    Block(u16),
    /// A filemark.
    Filemark,
    /// End of data: nothing was written past here.
    EndOfData,
}

impl Object {
    fn data_len(self) -> u16 {
        match self {
            Object::Block(n) => n,
            _ => 0,
        }
    }
}

/// A header as bytes.
pub(crate) fn header(object: Object, prev: u16) -> [u8; 6] {
    let flags = match object {
        Object::Block(_) => BEGIN_OF_RECORD | END_OF_RECORD,
        Object::Filemark => TAPEMARK,
        Object::EndOfData => 0,
    };
    let [l0, l1] = object.data_len().to_le_bytes();
    let [p0, p1] = prev.to_le_bytes();
    [l0, l1, p0, p1, flags, 0]
}

/// MEDIUM ERROR, MEDIUM FORMAT CORRUPTED: the image is not one we wrote.
pub(crate) fn corrupt() -> Sense {
    Sense::new(SenseKey::MEDIUM_ERROR, Asc::MEDIUM_FORMAT_CORRUPTED)
}

/// Decode header bytes found at `offset` of a medium of `size` bytes:
/// the object and the previous object's data length.
pub(crate) fn parse(b: [u8; 6], offset: u64, size: u64) -> Result<(Object, u16), Sense> {
    let len = u16::from_le_bytes([b[0], b[1]]);
    let prev = u16::from_le_bytes([b[2], b[3]]);
    let object = match b[4] {
        0 => Object::EndOfData,
        TAPEMARK if len == 0 => Object::Filemark,
        f if f == BEGIN_OF_RECORD | END_OF_RECORD => Object::Block(len),
        _ => return Err(corrupt()),
    };
    let end = offset + HEADER_LEN + u64::from(len);
    if object != Object::EndOfData && end > size {
        return Err(corrupt());
    }
    Ok((object, prev))
}

/// The header at `offset`, read from the medium.
async fn read_header(bs: &LuBackstore, offset: u64) -> Result<(Object, u16), Sense> {
    let size = bs.geometry().size;
    if offset + HEADER_LEN > size {
        return Ok((Object::EndOfData, 0));
    }
    let buf = DataBuffer::zeroed(6);
    bs.read(offset, buf.clone()).await.map_err(|e| e.sense())?;
    let mut b = [0u8; 6];
    buf.read_at(0, &mut b);
    parse(b, offset, size)
}

impl Position {
    /// At the beginning of the partition.
    pub(crate) fn at_bop(&self) -> bool {
        self.offset == 0
    }

    /// The object after the position, without moving.
    pub(crate) async fn peek(&self, bs: &LuBackstore) -> Result<Object, Sense> {
        read_header(bs, self.offset).await.map(|(o, _)| o)
    }

    /// Move over the object after the position (not past end of data);
    /// returns it.
    pub(crate) async fn forward(&mut self, bs: &LuBackstore) -> Result<Object, Sense> {
        let object = self.peek(bs).await?;
        self.pass(object);
        Ok(object)
    }

    /// Account for moving forward over `object` (whose header is at the
    /// position).
    pub(crate) fn pass(&mut self, object: Object) {
        if object == Object::EndOfData {
            return;
        }
        let len = object.data_len();
        self.offset += HEADER_LEN + u64::from(len);
        self.prev = len;
        self.object += 1;
        self.file += u64::from(object == Object::Filemark);
    }

    /// Move over one object forward (`Some(EndOfData)` at the end) or
    /// backward (`None` at BOP).
    pub(crate) async fn step(
        &mut self,
        bs: &LuBackstore,
        forward: bool,
    ) -> Result<Option<Object>, Sense> {
        if forward {
            self.forward(bs).await.map(Some)
        } else {
            self.backward(bs).await
        }
    }

    /// Move back over the object before the position; `None` at BOP.
    pub(crate) async fn backward(&mut self, bs: &LuBackstore) -> Result<Option<Object>, Sense> {
        if self.at_bop() {
            return Ok(None);
        }
        let at = self
            .offset
            .checked_sub(HEADER_LEN + u64::from(self.prev))
            .ok_or_else(corrupt)?;
        let (object, prev) = read_header(bs, at).await?;
        if object == Object::EndOfData || object.data_len() != self.prev {
            return Err(corrupt());
        }
        self.offset = at;
        self.prev = prev;
        self.object = self.object.saturating_sub(1);
        self.file = self
            .file
            .saturating_sub(u64::from(object == Object::Filemark));
        Ok(Some(object))
    }
}

/// Objects to write at a position, encoded with their headers and the
/// end-of-data header after them.
#[derive(Debug)]
pub(crate) struct Append {
    bytes: Vec<u8>,
    objects: u64,
    filemarks: u64,
    last: u16,
}

impl Append {
    /// An empty run of objects after `pos`, with room for `data_bytes` of
    /// block data in `objects` objects.
    pub(crate) fn new(pos: &Position, objects: usize, data_bytes: usize) -> Self {
        let cap = objects * 6 + data_bytes + 6;
        Self {
            bytes: Vec::with_capacity(cap),
            objects: 0,
            filemarks: 0,
            last: pos.prev,
        }
    }

    /// Add a block of `len` bytes, its data copied from `data` at `at`.
    pub(crate) fn block(&mut self, len: u16, data: &DataBuffer, at: usize) {
        self.bytes
            .extend_from_slice(&header(Object::Block(len), self.last));
        let start = self.bytes.len();
        self.bytes.resize(start + usize::from(len), 0);
        data.read_at(at, &mut self.bytes[start..]);
        self.last = len;
        self.objects += 1;
    }

    /// Add a filemark.
    pub(crate) fn filemark(&mut self) {
        self.bytes
            .extend_from_slice(&header(Object::Filemark, self.last));
        self.last = 0;
        self.objects += 1;
        self.filemarks += 1;
    }

    /// Bytes the objects take on the medium (without the end-of-data
    /// header).
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Write the objects at `pos` (whose space the caller checked) and move
    /// past them.
    pub(crate) async fn write(
        mut self,
        bs: &LuBackstore,
        pos: &mut Position,
        flags: crate::backstore::WriteFlags,
    ) -> Result<(), Sense> {
        let end = pos.offset + self.len();
        if end + HEADER_LEN <= bs.geometry().size {
            self.bytes
                .extend_from_slice(&header(Object::EndOfData, self.last));
        }
        if self.bytes.is_empty() {
            return Ok(());
        }
        bs.write(pos.offset, DataBuffer::from_vec(self.bytes), flags)
            .await
            .map_err(|e| e.sense())?;
        pos.offset = end;
        pos.prev = self.last;
        pos.object += self.objects;
        pos.file += self.filemarks;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_junk_is_corrupt() {
        for (object, prev) in [
            (Object::Block(10240), 7),
            (Object::Filemark, 10240),
            (Object::EndOfData, 0),
        ] {
            assert_eq!(parse(header(object, prev), 0, 1 << 20), Ok((object, prev)));
        }
        // A zeroed medium is blank.
        assert_eq!(parse([0; 6], 0, 512), Ok((Object::EndOfData, 0)));
        // A split chunk, a filemark with data, a block past the end.
        assert_eq!(parse([1, 0, 0, 0, 0x80, 0], 0, 512), Err(corrupt()));
        assert_eq!(parse([1, 0, 0, 0, 0x40, 0], 0, 512), Err(corrupt()));
        assert_eq!(parse(header(Object::Block(600), 0), 0, 512), Err(corrupt()));
    }
}
