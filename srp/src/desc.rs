//! Data buffer descriptors (SRP r16a §5.5, `srp_direct_buf`,
//! `srp_indirect_buf`, `srp_imm_buf`).
//!
//! A descriptor names memory by address, key and length; what an address
//! and key mean (an RDMA region, a grant reference, a local buffer) is the
//! transport's business (a memory resolver), never this codec's.

use zerocopy::byteorder::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::DecodeError;

/// Length of `srp_direct_buf`.
pub const DIRECT_LEN: usize = 16;
/// Length of the fixed part of `srp_indirect_buf` (table descriptor and
/// total length).
pub const INDIRECT_LEN: usize = 20;
/// Length of `srp_imm_buf`.
pub const IMM_LEN: usize = 4;
/// Buffer format bit of direct descriptors in login `buf_fmt` fields.
pub const BUF_FORMAT_DIRECT: u16 = 1 << 1;
/// Buffer format bit of indirect descriptors in login `buf_fmt` fields.
pub const BUF_FORMAT_INDIRECT: u16 = 1 << 2;

/// `srp_direct_buf`: one memory region, 16 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct DirectBuf {
    /// Virtual address.
    pub va: U64,
    /// Memory key (RDMA rkey, grant, ...).
    pub key: U32,
    /// Length in bytes.
    pub len: U32,
}

impl DirectBuf {
    /// A descriptor of `len` bytes at `va` under `key`.
    #[must_use]
    pub fn new(va: u64, key: u32, len: u32) -> Self {
        Self {
            va: va.into(),
            key: key.into(),
            len: len.into(),
        }
    }
}

/// The format of a data-out or data-in descriptor (the nibbles of
/// `buf_fmt` in `SRP_CMD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DescFormat {
    /// No data buffer.
    None,
    /// One direct descriptor.
    Direct,
    /// An indirect descriptor table.
    Indirect,
    /// Immediate data inside the IU (SRP-2).
    Immediate,
}

impl DescFormat {
    /// The format of code `c` (0..=3); the rest are reserved.
    ///
    /// # Errors
    ///
    /// [`DecodeError::DescriptorFormat`] for a reserved code.
    pub fn from_code(c: u8) -> Result<Self, DecodeError> {
        Ok(match c {
            0 => Self::None,
            1 => Self::Direct,
            2 => Self::Indirect,
            3 => Self::Immediate,
            _ => return Err(DecodeError::DescriptorFormat(c)),
        })
    }

    /// The format code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Direct => 1,
            Self::Indirect => 2,
            Self::Immediate => 3,
        }
    }
}

/// One direction's data buffer, as `SRP_CMD` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataDesc {
    /// No data in this direction.
    None,
    /// One region.
    Direct(DirectBuf),
    /// An indirect table: `table` names the whole descriptor table in
    /// initiator memory (its length / 16 descriptors), `total_len` is the
    /// sum of their lengths, and `list` holds the descriptors the IU itself
    /// carries: all of the table, or a leading part of it (a partial list
    /// the target completes by fetching `table`).
    Indirect {
        /// The descriptor table in initiator memory.
        table: DirectBuf,
        /// Total length of the data buffer.
        total_len: u32,
        /// The descriptors inside the IU.
        list: Vec<DirectBuf>,
    },
    /// Immediate data of `len` bytes inside the IU (at the login's
    /// immediate data offset).
    Immediate {
        /// Length of the immediate data.
        len: u32,
    },
}

impl DataDesc {
    /// The format of this descriptor.
    #[must_use]
    pub fn format(&self) -> DescFormat {
        match self {
            Self::None => DescFormat::None,
            Self::Direct(_) => DescFormat::Direct,
            Self::Indirect { .. } => DescFormat::Indirect,
            Self::Immediate { .. } => DescFormat::Immediate,
        }
    }

    /// Bytes of data this buffer holds.
    #[must_use]
    pub fn data_len(&self) -> u64 {
        match self {
            Self::None => 0,
            Self::Direct(d) => d.len.get().into(),
            Self::Indirect { total_len, .. } => (*total_len).into(),
            Self::Immediate { len } => (*len).into(),
        }
    }

    /// Descriptors the IU carries for this buffer (the `desc_cnt` field):
    /// the list length for an indirect table, 0 otherwise (Linux's ib_srp
    /// leaves it 0 for a direct descriptor).
    #[must_use]
    pub fn count(&self) -> u8 {
        match self {
            Self::Indirect { list, .. } => u8::try_from(list.len()).unwrap_or(u8::MAX),
            _ => 0,
        }
    }

    /// Bytes this descriptor takes in the IU.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::None => 0,
            Self::Direct(_) => DIRECT_LEN,
            Self::Indirect { list, .. } => INDIRECT_LEN + DIRECT_LEN * list.len(),
            Self::Immediate { .. } => IMM_LEN,
        }
    }

    /// Parse a descriptor of `format` with `count` listed descriptors from
    /// the start of `buf`; returns it and the bytes it took.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Length`] when `buf` is too short for it.
    pub fn decode(format: DescFormat, count: u8, buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let short = |what| DecodeError::Length(what);
        match format {
            DescFormat::None => Ok((Self::None, 0)),
            DescFormat::Direct => {
                let (d, _) =
                    DirectBuf::read_from_prefix(buf).map_err(|_| short("direct descriptor"))?;
                Ok((Self::Direct(d), DIRECT_LEN))
            }
            DescFormat::Indirect => {
                let (table, rest) =
                    DirectBuf::read_from_prefix(buf).map_err(|_| short("indirect descriptor"))?;
                let (total, mut rest) =
                    U32::read_from_prefix(rest).map_err(|_| short("indirect descriptor"))?;
                // The list in the IU never holds more than the table does.
                let in_table = table.len.get() as usize / DIRECT_LEN;
                if usize::from(count) > in_table {
                    return Err(short("descriptor count"));
                }
                let mut list = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let (d, r) =
                        DirectBuf::read_from_prefix(rest).map_err(|_| short("descriptor list"))?;
                    list.push(d);
                    rest = r;
                }
                let used = INDIRECT_LEN + DIRECT_LEN * usize::from(count);
                Ok((
                    Self::Indirect {
                        table,
                        total_len: total.get(),
                        list,
                    },
                    used,
                ))
            }
            DescFormat::Immediate => {
                let (len, _) =
                    U32::read_from_prefix(buf).map_err(|_| short("immediate descriptor"))?;
                Ok((Self::Immediate { len: len.get() }, IMM_LEN))
            }
        }
    }

    /// Append the descriptor's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::None => {}
            Self::Direct(d) => out.extend_from_slice(d.as_bytes()),
            Self::Indirect {
                table,
                total_len,
                list,
            } => {
                out.extend_from_slice(table.as_bytes());
                out.extend_from_slice(&total_len.to_be_bytes());
                for d in list {
                    out.extend_from_slice(d.as_bytes());
                }
            }
            Self::Immediate { len } => out.extend_from_slice(&len.to_be_bytes()),
        }
    }
}
