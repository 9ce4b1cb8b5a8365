//! What a transport hands the engine, and what it gets back.

use std::fmt;

use crate::buffer::DataBuffer;
use crate::engine::NexusId;
use crate::lun::Lun;
use crate::sense::{Sense, SenseFormat, MAX_SENSE_LEN};
use crate::status::Status;

/// Largest CDB the engine accepts (SPC-4 variable-length CDBs longer than
/// this are refused).
pub const MAX_CDB_LEN: usize = 32;

/// The bytes of a command descriptor block, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawCdb {
    bytes: [u8; MAX_CDB_LEN],
    len: u8,
}

/// A CDB that is empty or longer than [`MAX_CDB_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CDB length {0} is outside 1..=32")]
pub struct CdbLengthError(pub usize);

impl RawCdb {
    /// Copy `bytes` in.
    ///
    /// # Errors
    ///
    /// [`CdbLengthError`] for an empty CDB or one longer than 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, CdbLengthError> {
        if bytes.is_empty() || bytes.len() > MAX_CDB_LEN {
            return Err(CdbLengthError(bytes.len()));
        }
        let mut out = Self::default();
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        out.len = u8::try_from(bytes.len()).map_err(|_| CdbLengthError(bytes.len()))?;
        Ok(out)
    }

    /// The CDB bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for RawCdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawCdb(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Task attribute (SAM-5 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TaskAttribute {
    /// SIMPLE: may run in any order relative to other SIMPLE tasks.
    #[default]
    Simple,
    /// ORDERED: runs after every older task and before every newer one.
    Ordered,
    /// HEAD OF QUEUE: runs at once, ahead of every waiting task.
    HeadOfQueue,
    /// ACA: not supported (NACA is never accepted), treated as SIMPLE.
    Aca,
}

/// One SCSI command from a transport.
#[derive(Debug, Clone)]
pub struct Command {
    /// The I_T nexus the command arrived on.
    pub nexus: NexusId,
    /// The addressed logical unit.
    pub lun: Lun,
    /// The task tag, unique among the nexus's outstanding tasks.
    pub tag: u64,
    /// Task attribute.
    pub attribute: TaskAttribute,
    /// The CDB.
    pub cdb: RawCdb,
    /// The transport's memory for this command's data: data-out contents,
    /// or where data-in goes. Its length is the expected transfer length.
    pub data: DataBuffer,
}

/// Encoded sense data, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SenseBytes {
    bytes: [u8; 40],
    len: u8,
}

impl SenseBytes {
    /// Encode `sense` in `format`.
    #[must_use]
    pub fn encode(sense: &Sense, format: SenseFormat) -> Self {
        let mut bytes = [0u8; 40];
        let len = sense.encode(format, &mut bytes);
        debug_assert!(len <= MAX_SENSE_LEN);
        Self {
            bytes,
            len: u8::try_from(len).unwrap_or(40),
        }
    }

    /// The encoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Decode back to a typed value.
    #[must_use]
    pub fn decode(&self) -> Option<Sense> {
        Sense::decode(self.as_bytes()).ok()
    }
}

impl fmt::Debug for SenseBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decode() {
            Some(s) => write!(f, "SenseBytes({:?} {:?})", s.key, s.asc),
            None => write!(f, "SenseBytes({:02x?})", self.as_bytes()),
        }
    }
}

/// Residual of a command's data transfer (SAM-5 §5.4.3; iSCSI's U/O bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Residual {
    /// The command transferred exactly the buffer's length.
    #[default]
    None,
    /// The command transferred this many bytes fewer than the buffer holds.
    Under(u32),
    /// The command wanted to transfer this many bytes more than the buffer
    /// holds.
    Over(u32),
}

impl Residual {
    /// The residual for a command that wanted `wanted` bytes through a
    /// buffer of `buffer` bytes.
    #[must_use]
    pub fn of(wanted: usize, buffer: usize) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match wanted.cmp(&buffer) {
            std::cmp::Ordering::Equal => Residual::None,
            std::cmp::Ordering::Less => Residual::Under(clamp(buffer - wanted)),
            std::cmp::Ordering::Greater => Residual::Over(clamp(wanted - buffer)),
        }
    }
}

/// The engine's answer to a [`Command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// SCSI status.
    pub status: Status,
    /// Sense data with CHECK CONDITION, in the logical unit's format.
    pub sense: Option<SenseBytes>,
    /// Bytes of data-in placed at the start of the buffer, or bytes of
    /// data-out consumed.
    pub data_len: usize,
    /// Residual against the buffer's length.
    pub residual: Residual,
    /// The task was aborted by task management: the transport sends nothing
    /// for it (SAM-5 §7.11), unless it reports TASK ABORTED status (TAS).
    pub aborted: bool,
}

impl Response {
    /// GOOD status with `data_len` bytes transferred.
    #[must_use]
    pub fn good(data_len: usize, residual: Residual) -> Self {
        Self {
            status: Status::GOOD,
            sense: None,
            data_len,
            residual,
            aborted: false,
        }
    }

    /// CHECK CONDITION with `sense` in `format`.
    #[must_use]
    pub fn check_condition(sense: &Sense, format: SenseFormat) -> Self {
        Self {
            status: Status::CHECK_CONDITION,
            sense: Some(SenseBytes::encode(sense, format)),
            data_len: 0,
            residual: Residual::None,
            aborted: false,
        }
    }

    /// A status without sense (BUSY, RESERVATION CONFLICT, TASK SET FULL).
    #[must_use]
    pub fn status(status: Status) -> Self {
        Self {
            status,
            sense: None,
            data_len: 0,
            residual: Residual::None,
            aborted: false,
        }
    }

    /// The response of an aborted task.
    #[must_use]
    pub fn aborted() -> Self {
        Self {
            aborted: true,
            ..Self::status(Status::TASK_ABORTED)
        }
    }

    /// The sense bytes, or an empty slice.
    #[must_use]
    pub fn sense_bytes(&self) -> &[u8] {
        self.sense.as_ref().map_or(&[], SenseBytes::as_bytes)
    }

    /// The decoded sense data, if any.
    #[must_use]
    pub fn sense_data(&self) -> Option<Sense> {
        self.sense.as_ref().and_then(SenseBytes::decode)
    }
}
