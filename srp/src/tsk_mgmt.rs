//! `SRP_TSK_MGMT` (SRP r16a §6.7): task management requests.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::DecodeError;

/// Opcode of `SRP_TSK_MGMT`.
pub const OP_TSK_MGMT: u8 = 0x01;
/// Length of `SRP_TSK_MGMT`.
pub const TSK_MGMT_LEN: usize = 48;

/// `SRP_TSK_MGMT`, 48 bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct TskMgmt {
    /// Opcode, [`OP_TSK_MGMT`].
    pub opcode: u8,
    /// Solicited notification flags.
    pub sol_not: u8,
    /// Reserved.
    pub reserved1: [u8; 6],
    /// Initiator tag of this request.
    pub tag: [u8; 8],
    /// Reserved.
    pub reserved2: [u8; 4],
    /// Logical unit number (SAM-5 format).
    pub lun: [u8; 8],
    /// Reserved.
    pub reserved3: [u8; 2],
    /// Task management function, a [`TaskFunction`] code.
    pub tsk_mgmt_func: u8,
    /// Reserved.
    pub reserved4: u8,
    /// Tag of the task to abort (ABORT TASK).
    pub task_tag: [u8; 8],
    /// Reserved.
    pub reserved5: [u8; 8],
}

/// A task management function code; a newtype so unknown codes survive
/// (the target answers them "function not supported").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskFunction(pub u8);

impl TaskFunction {
    /// ABORT TASK.
    pub const ABORT_TASK: Self = Self(0x01);
    /// ABORT TASK SET.
    pub const ABORT_TASK_SET: Self = Self(0x02);
    /// CLEAR TASK SET.
    pub const CLEAR_TASK_SET: Self = Self(0x04);
    /// LOGICAL UNIT RESET.
    pub const LUN_RESET: Self = Self(0x08);
    /// CLEAR ACA.
    pub const CLEAR_ACA: Self = Self(0x40);
}

impl TskMgmt {
    /// A request for `func` on `lun` (`task_tag` for ABORT TASK).
    #[must_use]
    pub fn new(tag: [u8; 8], lun: [u8; 8], func: TaskFunction, task_tag: [u8; 8]) -> Self {
        let mut t = Self::new_zeroed();
        t.opcode = OP_TSK_MGMT;
        t.tag = tag;
        t.lun = lun;
        t.tsk_mgmt_func = func.0;
        t.task_tag = task_tag;
        t
    }

    /// Decode an `SRP_TSK_MGMT` from the start of `iu` (copied out).
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: too short or the wrong opcode.
    pub fn decode(iu: &[u8]) -> Result<Self, DecodeError> {
        crate::fixed(iu, OP_TSK_MGMT)
    }

    /// The function requested.
    #[must_use]
    pub fn function(&self) -> TaskFunction {
        TaskFunction(self.tsk_mgmt_func)
    }
}
