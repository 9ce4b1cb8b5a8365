//! `SRP_CMD` (SRP r16a §6.8): a SCSI command with its additional CDB and
//! data buffer descriptors.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::desc::{DataDesc, DescFormat};
use crate::error::DecodeError;

/// Opcode of `SRP_CMD`.
pub const OP_CMD: u8 = 0x02;
/// Length of the fixed part of `SRP_CMD` (`sizeof(struct srp_cmd)`).
pub const CMD_LEN: usize = 48;
/// Most additional CDB bytes (the 6-bit dword count of `add_cdb_len`).
pub const MAX_ADD_CDB: usize = 252;

/// The fixed part of `SRP_CMD`, 48 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct CmdHeader {
    /// Opcode, [`OP_CMD`].
    pub opcode: u8,
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Reserved.
    pub reserved1: [u8; 3],
    /// Data-out format (high nibble) and data-in format (low nibble).
    pub buf_fmt: u8,
    /// Descriptors of the data-out buffer carried in the IU.
    pub data_out_desc_cnt: u8,
    /// Descriptors of the data-in buffer carried in the IU.
    pub data_in_desc_cnt: u8,
    /// Initiator tag, opaque.
    pub tag: [u8; 8],
    /// Reserved.
    pub reserved2: [u8; 4],
    /// Logical unit number (SAM-5 format).
    pub lun: [u8; 8],
    /// Reserved.
    pub reserved3: u8,
    /// Task attribute in bits 2:0.
    pub task_attr: u8,
    /// Reserved.
    pub reserved4: u8,
    /// Additional CDB length in bytes (a multiple of 4; bits 1:0 reserved).
    pub add_cdb_len: u8,
    /// The first 16 CDB bytes.
    pub cdb: [u8; 16],
}

/// The task attribute of an `SRP_CMD` (SRP r16a table 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskAttr {
    /// SIMPLE.
    Simple,
    /// HEAD OF QUEUE.
    HeadOfQueue,
    /// ORDERED.
    Ordered,
    /// ACA.
    Aca,
    /// A reserved code (kept so the target can answer it).
    Reserved(u8),
}

impl TaskAttr {
    /// The attribute of bits 2:0 of `task_attr`.
    #[must_use]
    pub fn from_code(c: u8) -> Self {
        match c & 7 {
            0 => Self::Simple,
            1 => Self::HeadOfQueue,
            2 => Self::Ordered,
            4 => Self::Aca,
            r => Self::Reserved(r),
        }
    }

    /// The code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Simple => 0,
            Self::HeadOfQueue => 1,
            Self::Ordered => 2,
            Self::Aca => 4,
            Self::Reserved(r) => r & 7,
        }
    }
}

/// A decoded `SRP_CMD`, copied out of the IU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Command {
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Initiator tag.
    pub tag: [u8; 8],
    /// Logical unit number (SAM-5 format).
    pub lun: [u8; 8],
    /// Task attribute.
    pub task_attr: TaskAttr,
    /// The CDB: 16 bytes and the additional CDB (at most 268 bytes).
    pub cdb: Vec<u8>,
    /// Data-out buffer (initiator to target).
    pub data_out: DataDesc,
    /// Data-in buffer (target to initiator).
    pub data_in: DataDesc,
}

impl Command {
    /// Decode an `SRP_CMD` filling all of `iu`.
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: too short, wrong opcode, a reserved descriptor
    /// format, or descriptors that do not fit.
    pub fn decode(iu: &[u8]) -> Result<Self, DecodeError> {
        let (h, rest) = CmdHeader::read_from_prefix(iu).map_err(|_| DecodeError::Short {
            got: iu.len(),
            need: CMD_LEN,
        })?;
        if h.opcode != OP_CMD {
            return Err(DecodeError::Opcode {
                got: h.opcode,
                want: OP_CMD,
            });
        }
        let add = usize::from(h.add_cdb_len & !3);
        let Some(add_cdb) = rest.get(..add) else {
            return Err(DecodeError::Length("additional CDB"));
        };
        let mut cdb = Vec::with_capacity(16 + add);
        cdb.extend_from_slice(&h.cdb);
        cdb.extend_from_slice(add_cdb);
        let mut at = &rest[add..];
        let out_fmt = DescFormat::from_code(h.buf_fmt >> 4)?;
        let in_fmt = DescFormat::from_code(h.buf_fmt & 0xf)?;
        let (data_out, used) = DataDesc::decode(out_fmt, h.data_out_desc_cnt, at)?;
        at = &at[used..];
        let (data_in, _) = DataDesc::decode(in_fmt, h.data_in_desc_cnt, at)?;
        Ok(Self {
            sol_not: h.sol_not,
            tag: h.tag,
            lun: h.lun,
            task_attr: TaskAttr::from_code(h.task_attr),
            cdb,
            data_out,
            data_in,
        })
    }

    /// The IU bytes of this command.
    ///
    /// # Panics
    ///
    /// If the CDB is shorter than 16 bytes, longer than 268 or its
    /// additional part not a multiple of 4, or an indirect list has more
    /// than 255 descriptors (caller misuse).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let add = self
            .cdb
            .len()
            .checked_sub(16)
            .expect("a 16-byte CDB at least");
        assert!(add <= MAX_ADD_CDB && add % 4 == 0, "additional CDB length");
        for d in [&self.data_out, &self.data_in] {
            if let DataDesc::Indirect { list, .. } = d {
                assert!(list.len() <= 255, "at most 255 listed descriptors");
            }
        }
        let mut h = CmdHeader::new_zeroed_header();
        h.opcode = OP_CMD;
        h.sol_not = self.sol_not;
        h.buf_fmt = (self.data_out.format().code() << 4) | self.data_in.format().code();
        h.data_out_desc_cnt = self.data_out.count();
        h.data_in_desc_cnt = self.data_in.count();
        h.tag = self.tag;
        h.lun = self.lun;
        h.task_attr = self.task_attr.code();
        h.add_cdb_len = u8::try_from(add).unwrap_or(0);
        h.cdb.copy_from_slice(&self.cdb[..16]);
        let mut out = Vec::with_capacity(
            CMD_LEN + add + self.data_out.encoded_len() + self.data_in.encoded_len(),
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&self.cdb[16..]);
        self.data_out.encode(&mut out);
        self.data_in.encode(&mut out);
        out
    }
}

impl CmdHeader {
    fn new_zeroed_header() -> Self {
        zerocopy::FromZeros::new_zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desc::DirectBuf;

    fn read10() -> Command {
        let mut cdb = vec![0u8; 16];
        cdb[0] = 0x28;
        cdb[8] = 8;
        Command {
            sol_not: 0,
            tag: [1, 2, 3, 4, 5, 6, 7, 8],
            lun: [0, 1, 0, 0, 0, 0, 0, 0],
            task_attr: TaskAttr::Simple,
            cdb,
            data_out: DataDesc::None,
            data_in: DataDesc::Direct(DirectBuf::new(0x1000, 7, 4096)),
        }
    }

    #[test]
    fn direct_and_indirect_round_trip() {
        let c = read10();
        let iu = c.encode();
        assert_eq!(iu.len(), CMD_LEN + 16);
        assert_eq!(iu[5], 0x01);
        assert_eq!(Command::decode(&iu).unwrap(), c);
        // A 32-byte CDB, a partial indirect list (2 of a 4-entry table)
        // out, immediate in.
        let mut c = read10();
        c.cdb.resize(32, 0xa5);
        c.task_attr = TaskAttr::Ordered;
        c.data_out = DataDesc::Indirect {
            table: DirectBuf::new(0x9000, 3, 64),
            total_len: 16384,
            list: vec![
                DirectBuf::new(0x1000, 1, 4096),
                DirectBuf::new(0x2000, 1, 4096),
            ],
        };
        c.data_in = DataDesc::Immediate { len: 512 };
        let iu = c.encode();
        assert_eq!((iu[5], iu[6], iu[31]), (0x23, 2, 16));
        assert_eq!(Command::decode(&iu).unwrap(), c);
    }

    #[test]
    fn rejects_malformed_commands() {
        let iu = read10().encode();
        assert!(matches!(
            Command::decode(&iu[..47]),
            Err(DecodeError::Short { .. })
        ));
        // Descriptor cut short.
        assert_eq!(
            Command::decode(&iu[..60]),
            Err(DecodeError::Length("direct descriptor"))
        );
        // Reserved format 5.
        let mut bad = iu.clone();
        bad[5] = 0x05;
        assert_eq!(Command::decode(&bad), Err(DecodeError::DescriptorFormat(5)));
        // Additional CDB longer than the IU.
        let mut bad = iu.clone();
        bad[31] = 0xfc;
        assert_eq!(
            Command::decode(&bad),
            Err(DecodeError::Length("additional CDB"))
        );
        // An indirect list longer than its table says.
        let mut c = read10();
        c.data_in = DataDesc::Indirect {
            table: DirectBuf::new(0, 0, 16),
            total_len: 4096,
            list: vec![DirectBuf::new(0, 0, 4096); 2],
        };
        assert_eq!(
            Command::decode(&c.encode()),
            Err(DecodeError::Length("descriptor count"))
        );
        let mut bad = iu;
        bad[0] = 0x01;
        assert!(matches!(
            Command::decode(&bad),
            Err(DecodeError::Opcode { got: 1, .. })
        ));
    }

    #[test]
    fn task_attributes() {
        for c in 0..8u8 {
            assert_eq!(TaskAttr::from_code(c).code(), c);
        }
        assert_eq!(TaskAttr::from_code(0xf9), TaskAttr::HeadOfQueue);
    }
}
