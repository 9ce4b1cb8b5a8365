//! iSCSI PDU codec (RFC 7143 §11): Basic Header Segment, Additional Header
//! Segments, data segment with padding, and CRC32C digests.
//!
//! Sans-I/O, in two layers:
//!
//! * [`RawBhs`] is the 48-byte Basic Header Segment as a `#[repr(C)]`
//!   zerocopy struct with big-endian fields; [`Bhs`] is the validated,
//!   typed header of every opcode a target receives or sends.
//! * [`PduDecoder`] cuts a byte stream into [`Frame`]s (header, AHS, data,
//!   digests checked), returning `Ok(None)` while it needs more bytes;
//!   [`encode_pdu`] writes one PDU into a caller-owned `Vec`.
//!
//! Panic contract: no function here panics on any input. Every length the
//! peer controls is checked against a cap before anything is allocated:
//! the data segment against [`PduDecoder::set_max_data_segment`] (the
//! negotiated MaxRecvDataSegmentLength), the AHS by its 8-bit length field.

use std::fmt;

use zerocopy::big_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::digest;

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// Largest AHS the 8-bit TotalAHSLength field can describe (255 words).
pub const MAX_AHS_LEN: usize = 255 * 4;
/// Largest data segment the 24-bit DataSegmentLength can describe.
pub const MAX_DATA_SEGMENT_FIELD: u32 = (1 << 24) - 1;
/// The reserved task tag (RFC 7143 §11.2.1.8): "no task".
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// An iSCSI opcode (the low six bits of BHS byte 0), an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Opcode(pub u8);

impl Opcode {
    /// NOP-Out (initiator).
    pub const NOP_OUT: Self = Self(0x00);
    /// SCSI Command (initiator).
    pub const SCSI_COMMAND: Self = Self(0x01);
    /// SCSI Task Management Function Request (initiator).
    pub const TASK_MGMT_REQUEST: Self = Self(0x02);
    /// Login Request (initiator).
    pub const LOGIN_REQUEST: Self = Self(0x03);
    /// Text Request (initiator).
    pub const TEXT_REQUEST: Self = Self(0x04);
    /// SCSI Data-Out (initiator).
    pub const DATA_OUT: Self = Self(0x05);
    /// Logout Request (initiator).
    pub const LOGOUT_REQUEST: Self = Self(0x06);
    /// SNACK Request (initiator).
    pub const SNACK_REQUEST: Self = Self(0x10);
    /// NOP-In (target).
    pub const NOP_IN: Self = Self(0x20);
    /// SCSI Response (target).
    pub const SCSI_RESPONSE: Self = Self(0x21);
    /// SCSI Task Management Function Response (target).
    pub const TASK_MGMT_RESPONSE: Self = Self(0x22);
    /// Login Response (target).
    pub const LOGIN_RESPONSE: Self = Self(0x23);
    /// Text Response (target).
    pub const TEXT_RESPONSE: Self = Self(0x24);
    /// SCSI Data-In (target).
    pub const DATA_IN: Self = Self(0x25);
    /// Logout Response (target).
    pub const LOGOUT_RESPONSE: Self = Self(0x26);
    /// Ready To Transfer (target).
    pub const R2T: Self = Self(0x31);
    /// Asynchronous Message (target).
    pub const ASYNC_MESSAGE: Self = Self(0x32);
    /// Reject (target).
    pub const REJECT: Self = Self(0x3f);
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opcode({:#04x})", self.0)
    }
}

/// A Reject reason code (RFC 7143 §11.17.1), an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RejectReason(pub u8);

impl RejectReason {
    /// Data (payload) digest error.
    pub const DATA_DIGEST_ERROR: Self = Self(0x02);
    /// SNACK Reject.
    pub const SNACK_REJECT: Self = Self(0x03);
    /// Protocol error (e.g. a SNACK for a status already acknowledged).
    pub const PROTOCOL_ERROR: Self = Self(0x04);
    /// Command not supported.
    pub const COMMAND_NOT_SUPPORTED: Self = Self(0x05);
    /// Immediate command rejected: too many immediate commands.
    pub const IMMEDIATE_COMMAND_REJECT: Self = Self(0x06);
    /// Task in progress.
    pub const TASK_IN_PROGRESS: Self = Self(0x07);
    /// Invalid data ack.
    pub const INVALID_DATA_ACK: Self = Self(0x08);
    /// Invalid PDU field.
    pub const INVALID_PDU_FIELD: Self = Self(0x09);
    /// Long operation reject: out of resources to generate a TTT.
    pub const LONG_OPERATION_REJECT: Self = Self(0x0a);
    /// Deprecated (negotiation reset).
    pub const NEGOTIATION_RESET: Self = Self(0x0b);
    /// Waiting for Logout.
    pub const WAITING_FOR_LOGOUT: Self = Self(0x0c);
}

impl fmt::Debug for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RejectReason({:#04x})", self.0)
    }
}

/// The Basic Header Segment as it is on the wire (RFC 7143 §11.2.1).
///
/// Bytes 0-19 have the same meaning for every opcode (opcode, flags,
/// lengths, LUN or opcode-specific, Initiator Task Tag); bytes 20-47 are
/// opcode-specific words, named here by their offset.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawBhs {
    opcode: u8,
    flags: u8,
    b2: u8,
    b3: u8,
    total_ahs_len: u8,
    data_len: [u8; 3],
    lun: [u8; 8],
    itt: U32,
    w20: U32,
    w24: U32,
    w28: U32,
    w32: U32,
    w36: U32,
    w40: U32,
    w44: U32,
}

impl fmt::Debug for RawBhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawBhs")
            .field("opcode", &self.opcode())
            .field("immediate", &self.immediate())
            .field("flags", &format_args!("{:#04x}", self.flags))
            .field("ahs_len", &self.ahs_len())
            .field("data_len", &self.data_len())
            .field("itt", &format_args!("{:#x}", self.itt.get()))
            .finish_non_exhaustive()
    }
}

impl RawBhs {
    /// Read a header from the first 48 bytes of `bytes`.
    #[must_use]
    pub fn read(bytes: &[u8]) -> Option<Self> {
        Self::read_from_prefix(bytes).ok().map(|(h, _)| h)
    }

    /// The header's 48 bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    /// The opcode, without the immediate bit.
    #[must_use]
    pub fn opcode(&self) -> Opcode {
        Opcode(self.opcode & 0x3f)
    }

    /// The immediate-delivery bit (byte 0, bit 6).
    #[must_use]
    pub fn immediate(&self) -> bool {
        self.opcode & 0x40 != 0
    }

    /// The Initiator Task Tag.
    #[must_use]
    pub fn itt(&self) -> u32 {
        self.itt.get()
    }

    /// Length of the AHS in bytes (TotalAHSLength is in four-byte words).
    #[must_use]
    pub fn ahs_len(&self) -> usize {
        usize::from(self.total_ahs_len) * 4
    }

    /// DataSegmentLength in bytes, without padding.
    #[must_use]
    pub fn data_len(&self) -> u32 {
        u32::from_be_bytes([0, self.data_len[0], self.data_len[1], self.data_len[2]])
    }

    fn set_lengths(&mut self, ahs_len: usize, data_len: usize) -> Result<(), EncodeError> {
        if ahs_len % 4 != 0 || ahs_len > MAX_AHS_LEN {
            return Err(EncodeError::AhsLength(ahs_len));
        }
        let dl = u32::try_from(data_len)
            .ok()
            .filter(|&d| d <= MAX_DATA_SEGMENT_FIELD)
            .ok_or(EncodeError::DataLength(data_len))?;
        self.total_ahs_len =
            u8::try_from(ahs_len / 4).map_err(|_| EncodeError::AhsLength(ahs_len))?;
        let [_, a, b, c] = dl.to_be_bytes();
        self.data_len = [a, b, c];
        Ok(())
    }

    fn lun_u64(&self) -> u64 {
        u64::from_be_bytes(self.lun)
    }

    fn f(&self, mask: u8) -> bool {
        self.flags & mask != 0
    }
}

/// Pad a data segment length up to the next multiple of four.
#[must_use]
pub fn padded(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Login stage codes (RFC 7143 §11.12.3): CSG and NSG values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Stage {
    /// 0: SecurityNegotiation.
    Security,
    /// 1: LoginOperationalNegotiation.
    Operational,
    /// 3: FullFeaturePhase.
    FullFeature,
}

impl Stage {
    fn from_bits(bits: u8) -> Option<Self> {
        match bits & 3 {
            0 => Some(Stage::Security),
            1 => Some(Stage::Operational),
            3 => Some(Stage::FullFeature),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Stage::Security => 0,
            Stage::Operational => 1,
            Stage::FullFeature => 3,
        }
    }
}

/// Residual flags of SCSI Response and Data-In (RFC 7143 §11.4.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ResidualKind {
    /// No residual (U and O clear).
    #[default]
    None,
    /// Residual underflow (U): the residual count is the bytes not moved.
    Underflow,
    /// Residual overflow (O): the residual count is the bytes that did not fit.
    Overflow,
}

impl ResidualKind {
    fn bits(self) -> u8 {
        match self {
            ResidualKind::None => 0,
            ResidualKind::Overflow => 0x04,
            ResidualKind::Underflow => 0x02,
        }
    }

    fn from_flags(flags: u8) -> Result<Self, PduError> {
        match (flags & 0x04 != 0, flags & 0x02 != 0) {
            (false, false) => Ok(ResidualKind::None),
            (true, false) => Ok(ResidualKind::Overflow),
            (false, true) => Ok(ResidualKind::Underflow),
            (true, true) => Err(PduError::InvalidField("both O and U set")),
        }
    }
}

/// NOP-Out (RFC 7143 §11.18).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NopOut {
    /// Immediate delivery.
    pub immediate: bool,
    /// LUN (echoed in a NOP-In answering a ping).
    pub lun: u64,
    /// Initiator Task Tag; [`RESERVED_TAG`] when answering a target's ping.
    pub itt: u32,
    /// Target Transfer Tag; [`RESERVED_TAG`] when this is the initiator's ping.
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

/// SCSI Command (RFC 7143 §11.3). The CDB's first 16 bytes; longer CDBs
/// continue in an Extended CDB AHS ([`scsi_command_cdb`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScsiCommand {
    /// Immediate delivery.
    pub immediate: bool,
    /// F: no unsolicited Data-Out PDUs follow.
    pub final_: bool,
    /// R: data-in is expected.
    pub read: bool,
    /// W: data-out is expected.
    pub write: bool,
    /// ATTR: task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA).
    pub attr: u8,
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Expected Data Transfer Length.
    pub edtl: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// CDB bytes 0-15.
    pub cdb: [u8; 16],
}

/// Task management function codes (RFC 7143 §11.5.1), an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TmfCode(pub u8);

impl TmfCode {
    /// ABORT TASK.
    pub const ABORT_TASK: Self = Self(1);
    /// ABORT TASK SET.
    pub const ABORT_TASK_SET: Self = Self(2);
    /// CLEAR ACA.
    pub const CLEAR_ACA: Self = Self(3);
    /// CLEAR TASK SET.
    pub const CLEAR_TASK_SET: Self = Self(4);
    /// LOGICAL UNIT RESET.
    pub const LOGICAL_UNIT_RESET: Self = Self(5);
    /// TARGET WARM RESET.
    pub const TARGET_WARM_RESET: Self = Self(6);
    /// TARGET COLD RESET.
    pub const TARGET_COLD_RESET: Self = Self(7);
    /// TASK REASSIGN.
    pub const TASK_REASSIGN: Self = Self(8);
}

impl fmt::Debug for TmfCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TmfCode({})", self.0)
    }
}

/// Task Management Function Request (RFC 7143 §11.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TaskMgmtRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// Function.
    pub function: TmfCode,
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag of this request.
    pub itt: u32,
    /// Referenced Task Tag (ABORT TASK, TASK REASSIGN).
    pub rtt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// RefCmdSN.
    pub ref_cmd_sn: u32,
    /// ExpDataSN.
    pub exp_data_sn: u32,
}

/// Login Request (RFC 7143 §11.12).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LoginRequest {
    /// T: the initiator is ready to move to `nsg`.
    pub transit: bool,
    /// C: the text continues in the next PDU.
    pub cont: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (meaningful with `transit`).
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-min.
    pub version_min: u8,
    /// Initiator Session ID.
    pub isid: [u8; 6],
    /// Target Session Identifying Handle (0 for a new session).
    pub tsih: u16,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Connection ID.
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

/// Text Request (RFC 7143 §11.10).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TextRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// F: last PDU of the request.
    pub final_: bool,
    /// C: the text continues in the next PDU.
    pub cont: bool,
    /// LUN (reserved).
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag ([`RESERVED_TAG`] for a new request).
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

/// SCSI Data-Out (RFC 7143 §11.7).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DataOut {
    /// F: last PDU of the sequence.
    pub final_: bool,
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag (from the R2T, or [`RESERVED_TAG`] for unsolicited data).
    pub ttt: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// DataSN within the sequence.
    pub data_sn: u32,
    /// Offset of this data in the command's buffer.
    pub buffer_offset: u32,
}

/// Logout reason codes (RFC 7143 §11.14.1), an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LogoutReason(pub u8);

impl LogoutReason {
    /// Close the session.
    pub const CLOSE_SESSION: Self = Self(0);
    /// Close the connection.
    pub const CLOSE_CONNECTION: Self = Self(1);
    /// Remove the connection for recovery.
    pub const REMOVE_FOR_RECOVERY: Self = Self(2);
}

impl fmt::Debug for LogoutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogoutReason({})", self.0)
    }
}

/// Logout Request (RFC 7143 §11.14).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LogoutRequest {
    /// Immediate delivery.
    pub immediate: bool,
    /// Reason code.
    pub reason: LogoutReason,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Connection ID (for closing or removing a connection).
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

/// SNACK Request (RFC 7143 §11.16).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Snack {
    /// Type (0 Data/R2T, 1 Status, 2 DataACK, 3 R-Data).
    pub kind: u8,
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag.
    pub ttt: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// BegRun.
    pub beg_run: u32,
    /// RunLength.
    pub run_length: u32,
}

/// The sequence numbers every target PDU carries after its tags.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SeqNums {
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

/// NOP-In (RFC 7143 §11.19).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NopIn {
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag (echo of a NOP-Out's, or [`RESERVED_TAG`] for a target ping).
    pub itt: u32,
    /// Target Transfer Tag ([`RESERVED_TAG`] unless a reply is wanted).
    pub ttt: u32,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
}

/// SCSI Response (RFC 7143 §11.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScsiResponse {
    /// Residual flags for the (read or write) data.
    pub residual_kind: ResidualKind,
    /// Response code (0 command completed at target, 1 target failure).
    pub response: u8,
    /// SCSI status byte.
    pub status: u8,
    /// Initiator Task Tag.
    pub itt: u32,
    /// SNACK Tag.
    pub snack_tag: u32,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
    /// ExpDataSN: the number of Data-In (or R2T) PDUs the target sent.
    pub exp_data_sn: u32,
    /// Bidirectional read residual count.
    pub bidi_residual: u32,
    /// Residual count.
    pub residual: u32,
}

/// Task Management Function response codes (RFC 7143 §11.6.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TmfResponseCode(pub u8);

impl TmfResponseCode {
    /// Function complete.
    pub const COMPLETE: Self = Self(0);
    /// Task does not exist.
    pub const TASK_DOES_NOT_EXIST: Self = Self(1);
    /// LUN does not exist.
    pub const LUN_DOES_NOT_EXIST: Self = Self(2);
    /// Task still allegiant.
    pub const TASK_STILL_ALLEGIANT: Self = Self(3);
    /// Task allegiance reassignment not supported.
    pub const REASSIGN_NOT_SUPPORTED: Self = Self(4);
    /// Task management function not supported.
    pub const NOT_SUPPORTED: Self = Self(5);
    /// Function authorization failed.
    pub const AUTHORIZATION_FAILED: Self = Self(6);
    /// Function rejected.
    pub const REJECTED: Self = Self(255);
}

impl fmt::Debug for TmfResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TmfResponseCode({})", self.0)
    }
}

/// Task Management Function Response (RFC 7143 §11.6).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TaskMgmtResponse {
    /// Response code.
    pub response: TmfResponseCode,
    /// Initiator Task Tag of the request.
    pub itt: u32,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
}

/// Login Response (RFC 7143 §11.13).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LoginResponse {
    /// T: the target agrees to move to `nsg`.
    pub transit: bool,
    /// C: the text continues in the next PDU.
    pub cont: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage.
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-active.
    pub version_active: u8,
    /// Initiator Session ID (echoed).
    pub isid: [u8; 6],
    /// Target Session Identifying Handle (set in the final response).
    pub tsih: u16,
    /// Initiator Task Tag.
    pub itt: u32,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
    /// Status-Class.
    pub status_class: u8,
    /// Status-Detail.
    pub status_detail: u8,
}

/// Text Response (RFC 7143 §11.11).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TextResponse {
    /// F: last PDU of the response.
    pub final_: bool,
    /// C: the text continues in the next PDU.
    pub cont: bool,
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag ([`RESERVED_TAG`] when the response is complete).
    pub ttt: u32,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
}

/// SCSI Data-In (RFC 7143 §11.7).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DataIn {
    /// F: last PDU of the sequence.
    pub final_: bool,
    /// A: acknowledge (ERL > 0 only).
    pub ack: bool,
    /// Residual flags (only meaningful with `status`).
    pub residual_kind: ResidualKind,
    /// S: the SCSI status, when it travels in this PDU.
    pub status: Option<u8>,
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag.
    pub ttt: u32,
    /// StatSN (only meaningful with `status`), ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
    /// DataSN.
    pub data_sn: u32,
    /// Offset of this data in the command's buffer.
    pub buffer_offset: u32,
    /// Residual count (only meaningful with `status`).
    pub residual: u32,
}

/// Logout Response (RFC 7143 §11.15).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LogoutResponse {
    /// Response (0 closed successfully, 1 CID not found, 2 recovery not supported, 3 cleanup failed).
    pub response: u8,
    /// Initiator Task Tag.
    pub itt: u32,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
    /// Time2Wait.
    pub time2wait: u16,
    /// Time2Retain.
    pub time2retain: u16,
}

/// Ready To Transfer (RFC 7143 §11.8).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct R2t {
    /// LUN.
    pub lun: u64,
    /// Initiator Task Tag.
    pub itt: u32,
    /// Target Transfer Tag the Data-Out PDUs must carry.
    pub ttt: u32,
    /// StatSN (not advanced), ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
    /// R2TSN.
    pub r2t_sn: u32,
    /// Buffer offset of the requested data.
    pub buffer_offset: u32,
    /// Desired Data Transfer Length.
    pub desired_len: u32,
}

/// Asynchronous Message (RFC 7143 §11.9).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct AsyncMessage {
    /// LUN.
    pub lun: u64,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
    /// AsyncEvent (1 = target requests logout, 2 = connection drop, ...).
    pub event: u8,
    /// AsyncVCode.
    pub vcode: u8,
    /// Parameter1.
    pub param1: u16,
    /// Parameter2.
    pub param2: u16,
    /// Parameter3.
    pub param3: u16,
}

/// Reject (RFC 7143 §11.17). Its data segment is the rejected PDU's header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Reject {
    /// Reason.
    pub reason: RejectReason,
    /// StatSN, ExpCmdSN, MaxCmdSN.
    pub seq: SeqNums,
    /// DataSN/R2TSN (for a rejected SNACK).
    pub data_sn: u32,
}

/// A validated Basic Header Segment of any opcode tgtkit knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)] // each variant is the struct of the same name
pub enum Bhs {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    Snack(Snack),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
}

fn seq_of(r: &RawBhs) -> SeqNums {
    SeqNums {
        stat_sn: r.w24.get(),
        exp_cmd_sn: r.w28.get(),
        max_cmd_sn: r.w32.get(),
    }
}

fn put_seq(r: &mut RawBhs, s: &SeqNums) {
    r.w24.set(s.stat_sn);
    r.w28.set(s.exp_cmd_sn);
    r.w32.set(s.max_cmd_sn);
}

impl Bhs {
    /// Validate a raw header into its typed form.
    ///
    /// # Errors
    ///
    /// [`PduError::UnknownOpcode`] for opcodes tgtkit does not know,
    /// [`PduError::InvalidField`] for fields the RFC forbids (a Login
    /// Request without the immediate bit, a reserved stage code, both
    /// residual flags).
    pub fn parse(r: &RawBhs) -> Result<Self, PduError> {
        let imm = r.immediate();
        Ok(match r.opcode() {
            Opcode::NOP_OUT => Bhs::NopOut(NopOut {
                immediate: imm,
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                cmd_sn: r.w24.get(),
                exp_stat_sn: r.w28.get(),
            }),
            Opcode::SCSI_COMMAND => {
                let mut cdb = [0u8; 16];
                cdb.copy_from_slice(&r.as_bytes()[32..48]);
                Bhs::ScsiCommand(ScsiCommand {
                    immediate: imm,
                    final_: r.f(0x80),
                    read: r.f(0x40),
                    write: r.f(0x20),
                    attr: r.flags & 0x07,
                    lun: r.lun_u64(),
                    itt: r.itt(),
                    edtl: r.w20.get(),
                    cmd_sn: r.w24.get(),
                    exp_stat_sn: r.w28.get(),
                    cdb,
                })
            }
            Opcode::TASK_MGMT_REQUEST => Bhs::TaskMgmtRequest(TaskMgmtRequest {
                immediate: imm,
                function: TmfCode(r.flags & 0x7f),
                lun: r.lun_u64(),
                itt: r.itt(),
                rtt: r.w20.get(),
                cmd_sn: r.w24.get(),
                exp_stat_sn: r.w28.get(),
                ref_cmd_sn: r.w32.get(),
                exp_data_sn: r.w36.get(),
            }),
            Opcode::LOGIN_REQUEST => {
                // RFC 7143 §11.12: a Login Request always has the I bit set.
                if !imm {
                    return Err(PduError::InvalidField(
                        "login request without immediate bit",
                    ));
                }
                let csg = Stage::from_bits((r.flags >> 2) & 3)
                    .ok_or(PduError::InvalidField("reserved login stage"))?;
                let nsg = Stage::from_bits(r.flags & 3)
                    .ok_or(PduError::InvalidField("reserved login stage"))?;
                let mut isid = [0u8; 6];
                isid.copy_from_slice(&r.lun[..6]);
                Bhs::LoginRequest(LoginRequest {
                    transit: r.f(0x80),
                    cont: r.f(0x40),
                    csg,
                    nsg,
                    version_max: r.b2,
                    version_min: r.b3,
                    isid,
                    tsih: u16::from_be_bytes([r.lun[6], r.lun[7]]),
                    itt: r.itt(),
                    cid: u16::try_from(r.w20.get() >> 16).unwrap_or(0),
                    cmd_sn: r.w24.get(),
                    exp_stat_sn: r.w28.get(),
                })
            }
            Opcode::TEXT_REQUEST => Bhs::TextRequest(TextRequest {
                immediate: imm,
                final_: r.f(0x80),
                cont: r.f(0x40),
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                cmd_sn: r.w24.get(),
                exp_stat_sn: r.w28.get(),
            }),
            Opcode::DATA_OUT => Bhs::DataOut(DataOut {
                final_: r.f(0x80),
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                exp_stat_sn: r.w28.get(),
                data_sn: r.w36.get(),
                buffer_offset: r.w40.get(),
            }),
            Opcode::LOGOUT_REQUEST => Bhs::LogoutRequest(LogoutRequest {
                immediate: imm,
                reason: LogoutReason(r.flags & 0x7f),
                itt: r.itt(),
                cid: u16::try_from(r.w20.get() >> 16).unwrap_or(0),
                cmd_sn: r.w24.get(),
                exp_stat_sn: r.w28.get(),
            }),
            Opcode::SNACK_REQUEST => Bhs::Snack(Snack {
                kind: r.flags & 0x0f,
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                exp_stat_sn: r.w28.get(),
                beg_run: r.w40.get(),
                run_length: r.w44.get(),
            }),
            Opcode::NOP_IN => Bhs::NopIn(NopIn {
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                seq: seq_of(r),
            }),
            Opcode::SCSI_RESPONSE => Bhs::ScsiResponse(ScsiResponse {
                residual_kind: ResidualKind::from_flags(r.flags)?,
                response: r.b2,
                status: r.b3,
                itt: r.itt(),
                snack_tag: r.w20.get(),
                seq: seq_of(r),
                exp_data_sn: r.w36.get(),
                bidi_residual: r.w40.get(),
                residual: r.w44.get(),
            }),
            Opcode::TASK_MGMT_RESPONSE => Bhs::TaskMgmtResponse(TaskMgmtResponse {
                response: TmfResponseCode(r.b2),
                itt: r.itt(),
                seq: seq_of(r),
            }),
            Opcode::LOGIN_RESPONSE => {
                let csg = Stage::from_bits((r.flags >> 2) & 3)
                    .ok_or(PduError::InvalidField("reserved login stage"))?;
                let nsg = Stage::from_bits(r.flags & 3)
                    .ok_or(PduError::InvalidField("reserved login stage"))?;
                let mut isid = [0u8; 6];
                isid.copy_from_slice(&r.lun[..6]);
                let w36 = r.w36.get().to_be_bytes();
                Bhs::LoginResponse(LoginResponse {
                    transit: r.f(0x80),
                    cont: r.f(0x40),
                    csg,
                    nsg,
                    version_max: r.b2,
                    version_active: r.b3,
                    isid,
                    tsih: u16::from_be_bytes([r.lun[6], r.lun[7]]),
                    itt: r.itt(),
                    seq: seq_of(r),
                    status_class: w36[0],
                    status_detail: w36[1],
                })
            }
            Opcode::TEXT_RESPONSE => Bhs::TextResponse(TextResponse {
                final_: r.f(0x80),
                cont: r.f(0x40),
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                seq: seq_of(r),
            }),
            Opcode::DATA_IN => Bhs::DataIn(DataIn {
                final_: r.f(0x80),
                ack: r.f(0x40),
                residual_kind: ResidualKind::from_flags(r.flags)?,
                status: r.f(0x01).then_some(r.b3),
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                seq: seq_of(r),
                data_sn: r.w36.get(),
                buffer_offset: r.w40.get(),
                residual: r.w44.get(),
            }),
            Opcode::LOGOUT_RESPONSE => Bhs::LogoutResponse(LogoutResponse {
                response: r.b2,
                itt: r.itt(),
                seq: seq_of(r),
                time2wait: u16::try_from(r.w40.get() >> 16).unwrap_or(0),
                time2retain: u16::try_from(r.w40.get() & 0xffff).unwrap_or(0),
            }),
            Opcode::R2T => Bhs::R2t(R2t {
                lun: r.lun_u64(),
                itt: r.itt(),
                ttt: r.w20.get(),
                seq: seq_of(r),
                r2t_sn: r.w36.get(),
                buffer_offset: r.w40.get(),
                desired_len: r.w44.get(),
            }),
            Opcode::ASYNC_MESSAGE => {
                let w36 = r.w36.get().to_be_bytes();
                let w40 = r.w40.get();
                Bhs::AsyncMessage(AsyncMessage {
                    lun: r.lun_u64(),
                    seq: seq_of(r),
                    event: w36[0],
                    vcode: w36[1],
                    param1: u16::from_be_bytes([w36[2], w36[3]]),
                    param2: u16::try_from(w40 >> 16).unwrap_or(0),
                    param3: u16::try_from(w40 & 0xffff).unwrap_or(0),
                })
            }
            Opcode::REJECT => Bhs::Reject(Reject {
                reason: RejectReason(r.b2),
                seq: seq_of(r),
                data_sn: r.w36.get(),
            }),
            other => return Err(PduError::UnknownOpcode(other)),
        })
    }

    /// The opcode of this header.
    #[must_use]
    pub fn opcode(&self) -> Opcode {
        match self {
            Bhs::NopOut(_) => Opcode::NOP_OUT,
            Bhs::ScsiCommand(_) => Opcode::SCSI_COMMAND,
            Bhs::TaskMgmtRequest(_) => Opcode::TASK_MGMT_REQUEST,
            Bhs::LoginRequest(_) => Opcode::LOGIN_REQUEST,
            Bhs::TextRequest(_) => Opcode::TEXT_REQUEST,
            Bhs::DataOut(_) => Opcode::DATA_OUT,
            Bhs::LogoutRequest(_) => Opcode::LOGOUT_REQUEST,
            Bhs::Snack(_) => Opcode::SNACK_REQUEST,
            Bhs::NopIn(_) => Opcode::NOP_IN,
            Bhs::ScsiResponse(_) => Opcode::SCSI_RESPONSE,
            Bhs::TaskMgmtResponse(_) => Opcode::TASK_MGMT_RESPONSE,
            Bhs::LoginResponse(_) => Opcode::LOGIN_RESPONSE,
            Bhs::TextResponse(_) => Opcode::TEXT_RESPONSE,
            Bhs::DataIn(_) => Opcode::DATA_IN,
            Bhs::LogoutResponse(_) => Opcode::LOGOUT_RESPONSE,
            Bhs::R2t(_) => Opcode::R2T,
            Bhs::AsyncMessage(_) => Opcode::ASYNC_MESSAGE,
            Bhs::Reject(_) => Opcode::REJECT,
        }
    }

    /// The raw header, with zero AHS and data lengths (the frame encoder
    /// sets them).
    #[must_use]
    pub fn emit(&self) -> RawBhs {
        let mut r = RawBhs {
            opcode: self.opcode().0,
            ..RawBhs::default()
        };
        let imm = |r: &mut RawBhs, i: bool| {
            if i {
                r.opcode |= 0x40;
            }
        };
        let flag = |b: bool, m: u8| if b { m } else { 0 };
        match self {
            Bhs::NopOut(p) => {
                imm(&mut r, p.immediate);
                r.flags = 0x80;
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                r.w24.set(p.cmd_sn);
                r.w28.set(p.exp_stat_sn);
            }
            Bhs::ScsiCommand(p) => {
                imm(&mut r, p.immediate);
                r.flags =
                    flag(p.final_, 0x80) | flag(p.read, 0x40) | flag(p.write, 0x20) | (p.attr & 7);
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.edtl);
                r.w24.set(p.cmd_sn);
                r.w28.set(p.exp_stat_sn);
                r.as_mut_bytes()[32..48].copy_from_slice(&p.cdb);
            }
            Bhs::TaskMgmtRequest(p) => {
                imm(&mut r, p.immediate);
                r.flags = 0x80 | (p.function.0 & 0x7f);
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.rtt);
                r.w24.set(p.cmd_sn);
                r.w28.set(p.exp_stat_sn);
                r.w32.set(p.ref_cmd_sn);
                r.w36.set(p.exp_data_sn);
            }
            Bhs::LoginRequest(p) => {
                imm(&mut r, true);
                r.flags =
                    flag(p.transit, 0x80) | flag(p.cont, 0x40) | (p.csg.bits() << 2) | p.nsg.bits();
                r.b2 = p.version_max;
                r.b3 = p.version_min;
                r.lun[..6].copy_from_slice(&p.isid);
                r.lun[6..].copy_from_slice(&p.tsih.to_be_bytes());
                r.itt.set(p.itt);
                r.w20.set(u32::from(p.cid) << 16);
                r.w24.set(p.cmd_sn);
                r.w28.set(p.exp_stat_sn);
            }
            Bhs::TextRequest(p) => {
                imm(&mut r, p.immediate);
                r.flags = flag(p.final_, 0x80) | flag(p.cont, 0x40);
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                r.w24.set(p.cmd_sn);
                r.w28.set(p.exp_stat_sn);
            }
            Bhs::DataOut(p) => {
                r.flags = flag(p.final_, 0x80);
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                r.w28.set(p.exp_stat_sn);
                r.w36.set(p.data_sn);
                r.w40.set(p.buffer_offset);
            }
            Bhs::LogoutRequest(p) => {
                imm(&mut r, p.immediate);
                r.flags = 0x80 | (p.reason.0 & 0x7f);
                r.itt.set(p.itt);
                r.w20.set(u32::from(p.cid) << 16);
                r.w24.set(p.cmd_sn);
                r.w28.set(p.exp_stat_sn);
            }
            Bhs::Snack(p) => {
                r.flags = 0x80 | (p.kind & 0x0f);
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                r.w28.set(p.exp_stat_sn);
                r.w40.set(p.beg_run);
                r.w44.set(p.run_length);
            }
            Bhs::NopIn(p) => {
                r.flags = 0x80;
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                put_seq(&mut r, &p.seq);
            }
            Bhs::ScsiResponse(p) => {
                r.flags = 0x80 | p.residual_kind.bits();
                r.b2 = p.response;
                r.b3 = p.status;
                r.itt.set(p.itt);
                r.w20.set(p.snack_tag);
                put_seq(&mut r, &p.seq);
                r.w36.set(p.exp_data_sn);
                r.w40.set(p.bidi_residual);
                r.w44.set(p.residual);
            }
            Bhs::TaskMgmtResponse(p) => {
                r.flags = 0x80;
                r.b2 = p.response.0;
                r.itt.set(p.itt);
                put_seq(&mut r, &p.seq);
            }
            Bhs::LoginResponse(p) => {
                r.flags =
                    flag(p.transit, 0x80) | flag(p.cont, 0x40) | (p.csg.bits() << 2) | p.nsg.bits();
                r.b2 = p.version_max;
                r.b3 = p.version_active;
                r.lun[..6].copy_from_slice(&p.isid);
                r.lun[6..].copy_from_slice(&p.tsih.to_be_bytes());
                r.itt.set(p.itt);
                put_seq(&mut r, &p.seq);
                r.w36
                    .set(u32::from_be_bytes([p.status_class, p.status_detail, 0, 0]));
            }
            Bhs::TextResponse(p) => {
                r.flags = flag(p.final_, 0x80) | flag(p.cont, 0x40);
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                put_seq(&mut r, &p.seq);
            }
            Bhs::DataIn(p) => {
                r.flags = flag(p.final_, 0x80)
                    | flag(p.ack, 0x40)
                    | p.residual_kind.bits()
                    | flag(p.status.is_some(), 0x01);
                r.b3 = p.status.unwrap_or(0);
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                put_seq(&mut r, &p.seq);
                r.w36.set(p.data_sn);
                r.w40.set(p.buffer_offset);
                r.w44.set(p.residual);
            }
            Bhs::LogoutResponse(p) => {
                r.flags = 0x80;
                r.b2 = p.response;
                r.itt.set(p.itt);
                put_seq(&mut r, &p.seq);
                r.w40
                    .set((u32::from(p.time2wait) << 16) | u32::from(p.time2retain));
            }
            Bhs::R2t(p) => {
                r.flags = 0x80;
                r.lun = p.lun.to_be_bytes();
                r.itt.set(p.itt);
                r.w20.set(p.ttt);
                put_seq(&mut r, &p.seq);
                r.w36.set(p.r2t_sn);
                r.w40.set(p.buffer_offset);
                r.w44.set(p.desired_len);
            }
            Bhs::AsyncMessage(p) => {
                r.flags = 0x80;
                r.lun = p.lun.to_be_bytes();
                r.itt.set(RESERVED_TAG);
                put_seq(&mut r, &p.seq);
                let [a, b] = p.param1.to_be_bytes();
                r.w36.set(u32::from_be_bytes([p.event, p.vcode, a, b]));
                r.w40.set((u32::from(p.param2) << 16) | u32::from(p.param3));
            }
            Bhs::Reject(p) => {
                r.flags = 0x80;
                r.b2 = p.reason.0;
                r.itt.set(RESERVED_TAG);
                put_seq(&mut r, &p.seq);
                r.w36.set(p.data_sn);
            }
        }
        r
    }

    /// The sequence numbers of a target PDU, for the sender to stamp.
    pub fn seq_mut(&mut self) -> Option<&mut SeqNums> {
        match self {
            Bhs::NopIn(p) => Some(&mut p.seq),
            Bhs::ScsiResponse(p) => Some(&mut p.seq),
            Bhs::TaskMgmtResponse(p) => Some(&mut p.seq),
            Bhs::LoginResponse(p) => Some(&mut p.seq),
            Bhs::TextResponse(p) => Some(&mut p.seq),
            Bhs::DataIn(p) => Some(&mut p.seq),
            Bhs::LogoutResponse(p) => Some(&mut p.seq),
            Bhs::R2t(p) => Some(&mut p.seq),
            Bhs::AsyncMessage(p) => Some(&mut p.seq),
            Bhs::Reject(p) => Some(&mut p.seq),
            _ => None,
        }
    }

    /// Whether sending this target PDU consumes a StatSN (RFC 7143 §4.2.2.2:
    /// status-bearing PDUs; R2T, Data-In without status, and unsolicited
    /// NOP-In only carry the next StatSN).
    #[must_use]
    pub fn advances_stat_sn(&self) -> bool {
        match self {
            Bhs::NopIn(p) => p.itt != RESERVED_TAG,
            Bhs::DataIn(p) => p.status.is_some(),
            Bhs::R2t(_) => false,
            Bhs::ScsiResponse(_)
            | Bhs::TaskMgmtResponse(_)
            | Bhs::LoginResponse(_)
            | Bhs::TextResponse(_)
            | Bhs::LogoutResponse(_)
            | Bhs::AsyncMessage(_)
            | Bhs::Reject(_) => true,
            _ => false,
        }
    }
}

/// The whole CDB of a SCSI Command: the 16 header bytes, continued by an
/// Extended CDB AHS (RFC 7143 §11.3.5) when present. Returns the CDB in
/// `out` and its length.
///
/// # Errors
///
/// [`PduError::InvalidAhs`] for a malformed AHS list or an extended CDB
/// longer than 260 bytes.
pub fn scsi_command_cdb(
    cmd: &ScsiCommand,
    ahs: &[u8],
    out: &mut [u8; 260],
) -> Result<usize, PduError> {
    out[..16].copy_from_slice(&cmd.cdb);
    let mut len = 16;
    for a in ahs_iter(ahs) {
        let (kind, body) = a?;
        if kind == 1 {
            // AHSLength counts the reserved byte plus the CDB bytes past 16.
            let extra = body.get(1..).ok_or(PduError::InvalidAhs)?;
            if extra.len() > out.len() - 16 {
                return Err(PduError::InvalidAhs);
            }
            out[16..16 + extra.len()].copy_from_slice(extra);
            len = 16 + extra.len();
        }
    }
    Ok(len)
}

/// The Bidirectional Read Expected Data Transfer Length AHS (type 2), if any.
///
/// # Errors
///
/// [`PduError::InvalidAhs`] for a malformed AHS list.
pub fn bidi_read_edtl(ahs: &[u8]) -> Result<Option<u32>, PduError> {
    for a in ahs_iter(ahs) {
        let (kind, body) = a?;
        if kind == 2 {
            let b = body.get(1..5).ok_or(PduError::InvalidAhs)?;
            return Ok(Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]])));
        }
    }
    Ok(None)
}

/// Walk an AHS list: `(AHSType, body)` where body starts at the
/// type-specific byte and is `AHSLength` bytes long (RFC 7143 §11.2.2).
fn ahs_iter(mut ahs: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), PduError>> {
    std::iter::from_fn(move || {
        if ahs.is_empty() {
            return None;
        }
        if ahs.len() < 4 {
            ahs = &[];
            return Some(Err(PduError::InvalidAhs));
        }
        let len = usize::from(u16::from_be_bytes([ahs[0], ahs[1]]));
        let kind = ahs[2];
        // Body = the byte after AHSType plus AHSLength-1 more; padded to 4.
        let total = padded(3 + len.max(1));
        if total > ahs.len() {
            ahs = &[];
            return Some(Err(PduError::InvalidAhs));
        }
        let body = &ahs[3..3 + len.max(1)];
        ahs = &ahs[total..];
        Some(Ok((kind, body)))
    })
}

/// A decoding error: the byte stream is not a valid PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PduError {
    /// The header digest did not match: the header (and its lengths) cannot
    /// be trusted; at ErrorRecoveryLevel 0 the connection must be dropped.
    #[error("header digest mismatch (got {got:#010x}, computed {computed:#010x})")]
    HeaderDigest {
        /// Digest received.
        got: u32,
        /// Digest computed.
        computed: u32,
    },
    /// The data digest did not match (RFC 7143 §7.8: Reject, reason 02h).
    #[error("data digest mismatch (got {got:#010x}, computed {computed:#010x})")]
    DataDigest {
        /// The header of the PDU with the bad data (for the Reject).
        header: RawBhs,
        /// Digest received.
        got: u32,
        /// Digest computed.
        computed: u32,
    },
    /// DataSegmentLength is larger than the negotiated MaxRecvDataSegmentLength.
    #[error("data segment of {len} bytes exceeds the limit of {max}")]
    DataSegmentTooLong {
        /// Length announced.
        len: u32,
        /// Limit in force.
        max: u32,
    },
    /// An opcode tgtkit does not know.
    #[error("unknown opcode {0:?}")]
    UnknownOpcode(Opcode),
    /// A field has a value the RFC forbids.
    #[error("invalid PDU field: {0}")]
    InvalidField(&'static str),
    /// The AHS list is malformed.
    #[error("malformed additional header segment")]
    InvalidAhs,
}

impl PduError {
    /// Whether the connection must be dropped: the stream framing is lost.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            PduError::HeaderDigest { .. } | PduError::DataSegmentTooLong { .. }
        )
    }
}

/// An encoding error: the caller asked for something the format cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// AHS length not a multiple of four or over 1020 bytes.
    #[error("AHS of {0} bytes cannot be encoded")]
    AhsLength(usize),
    /// Data segment longer than the 24-bit length field.
    #[error("data segment of {0} bytes cannot be encoded")]
    DataLength(usize),
}

/// Digests in force on a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Digests {
    /// HeaderDigest=CRC32C.
    pub header: bool,
    /// DataDigest=CRC32C.
    pub data: bool,
}

/// One PDU cut from the stream: header, AHS, and unpadded data segment.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    /// The Basic Header Segment.
    pub header: RawBhs,
    /// The AHS bytes (a multiple of four).
    pub ahs: Vec<u8>,
    /// The data segment without padding.
    pub data: Vec<u8>,
}

/// Cuts PDUs out of a byte stream.
///
/// Feed bytes with [`PduDecoder::spare`] + [`PduDecoder::filled`] (read
/// straight into the decoder) or [`PduDecoder::extend`], then call
/// [`PduDecoder::decode`] until it returns `Ok(None)`. The internal buffer
/// never grows past one maximal PDU plus one read's worth of bytes, and
/// an idle connection's stays small: the read offered starts at 16 KiB and
/// doubles (up to 64 KiB) each time a read fills it.
#[derive(Debug)]
pub struct PduDecoder {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_data_segment: u32,
    digests: Digests,
    /// Bytes offered to the next read (`MIN_READ_CHUNK..=READ_CHUNK`).
    chunk: usize,
    /// Bytes the last [`PduDecoder::spare`] offered.
    offered: usize,
}

/// The most bytes the decoder offers to a single read.
const READ_CHUNK: usize = 64 * 1024;
/// What it offers first, until reads fill it.
const MIN_READ_CHUNK: usize = 16 * 1024;

impl PduDecoder {
    /// A decoder accepting data segments up to `max_data_segment` bytes.
    #[must_use]
    pub fn new(max_data_segment: u32) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_data_segment: max_data_segment.min(MAX_DATA_SEGMENT_FIELD),
            digests: Digests::default(),
            chunk: MIN_READ_CHUNK,
            offered: 0,
        }
    }

    /// Change the data segment cap (our MaxRecvDataSegmentLength).
    pub fn set_max_data_segment(&mut self, max: u32) {
        self.max_data_segment = max.min(MAX_DATA_SEGMENT_FIELD);
    }

    /// The data segment cap in force.
    #[must_use]
    pub fn max_data_segment(&self) -> u32 {
        self.max_data_segment
    }

    /// Change the digests expected on received PDUs.
    pub fn set_digests(&mut self, digests: Digests) {
        self.digests = digests;
    }

    /// Bytes buffered and not yet decoded.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Most bytes one PDU can take on the wire under the current settings.
    fn max_pdu(&self) -> usize {
        let digest =
            if self.digests.header { 4 } else { 0 } + if self.digests.data { 4 } else { 0 };
        BHS_LEN + MAX_AHS_LEN + padded(self.max_data_segment as usize) + digest
    }

    /// Free space to read into; call [`PduDecoder::filled`] with the count read.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let want = self.max_pdu() + self.chunk;
        if self.buf.len() - self.end < self.chunk.min(want) {
            // Compact, then grow up to the cap.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < want {
                let new_len = (self.end + self.chunk).min(want).max(self.buf.len());
                self.buf.resize(new_len, 0);
            }
        }
        self.offered = self.buf.len() - self.end;
        &mut self.buf[self.end..]
    }

    /// Record that `n` bytes were read into [`PduDecoder::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
        // A read that took all it was offered says more was waiting.
        if n >= self.offered && self.chunk < READ_CHUNK {
            self.chunk *= 2;
        }
    }

    /// Append bytes (for tests and fuzzing).
    pub fn extend(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(bytes.len());
            if n == 0 {
                // Cannot happen: spare() always offers a chunk.
                return;
            }
            spare[..n].copy_from_slice(&bytes[..n]);
            self.filled(n);
            bytes = &bytes[n..];
        }
    }

    /// The next whole PDU, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`PduError::HeaderDigest`] and [`PduError::DataSegmentTooLong`]
    /// leave the stream unframed ([`PduError::is_fatal`]); after
    /// [`PduError::DataDigest`] the PDU has been consumed and decoding may
    /// continue.
    pub fn decode(&mut self) -> Result<Option<Frame>, PduError> {
        let avail = &self.buf[self.start..self.end];
        let Some(header) = RawBhs::read(avail) else {
            return Ok(None);
        };
        let ahs_len = header.ahs_len();
        let hd = if self.digests.header { 4 } else { 0 };
        let data_len = header.data_len();
        let have_header = BHS_LEN + ahs_len + hd;
        if avail.len() >= have_header && self.digests.header {
            let computed = digest::crc32c(&avail[..BHS_LEN + ahs_len]);
            let g = &avail[BHS_LEN + ahs_len..have_header];
            let got = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
            if got != computed {
                return Err(PduError::HeaderDigest { got, computed });
            }
        }
        if data_len > self.max_data_segment {
            return Err(PduError::DataSegmentTooLong {
                len: data_len,
                max: self.max_data_segment,
            });
        }
        let data_len = data_len as usize;
        let dd = if self.digests.data && data_len > 0 {
            4
        } else {
            0
        };
        let total = have_header + padded(data_len) + dd;
        if avail.len() < total {
            return Ok(None);
        }
        let ahs = avail[BHS_LEN..BHS_LEN + ahs_len].to_vec();
        let data_start = have_header;
        let padded_end = data_start + padded(data_len);
        let data = avail[data_start..data_start + data_len].to_vec();
        let digest_check = if dd == 4 {
            let computed = digest::crc32c(&avail[data_start..padded_end]);
            let g = &avail[padded_end..padded_end + 4];
            let got = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
            (got != computed).then_some((got, computed))
        } else {
            None
        };
        self.start += total;
        if let Some((got, computed)) = digest_check {
            return Err(PduError::DataDigest {
                header,
                got,
                computed,
            });
        }
        Ok(Some(Frame { header, ahs, data }))
    }
}

/// Append one PDU to `out`: header (with lengths set), AHS, header digest,
/// data, padding, data digest.
///
/// # Errors
///
/// [`EncodeError`] when the AHS or data cannot be described by the header.
pub fn encode_pdu(
    header: &RawBhs,
    ahs: &[u8],
    data: &[u8],
    digests: Digests,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut h = *header;
    h.set_lengths(ahs.len(), data.len())?;
    let start = out.len();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(ahs);
    if digests.header {
        let crc = digest::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    if !data.is_empty() {
        let ds = out.len();
        out.extend_from_slice(data);
        out.resize(ds + padded(data.len()), 0);
        if digests.data {
            let crc = digest::crc32c(&out[ds..]);
            out.extend_from_slice(&crc.to_le_bytes());
        }
    }
    Ok(())
}

/// Like [`encode_pdu`] without AHS, but the caller writes the
/// `data_len` data bytes in place through `fill` (no intermediate buffer).
///
/// # Errors
///
/// [`EncodeError`] when `data_len` exceeds the 24-bit length field.
pub fn encode_pdu_with(
    header: &RawBhs,
    data_len: usize,
    digests: Digests,
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), EncodeError> {
    let mut h = *header;
    h.set_lengths(0, data_len)?;
    let start = out.len();
    out.extend_from_slice(h.as_bytes());
    if digests.header {
        let crc = digest::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    if data_len > 0 {
        let ds = out.len();
        out.resize(ds + padded(data_len), 0);
        fill(&mut out[ds..ds + data_len]);
        if digests.data {
            let crc = digest::crc32c(&out[ds..]);
            out.extend_from_slice(&crc.to_le_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn accepts_layout_of_rfc7143_bhs() {
        // RFC 7143 §11.2.1: the BHS is 48 bytes; ITT at 16, words from 20.
        assert_eq!(size_of::<RawBhs>(), BHS_LEN);
        assert_eq!(offset_of!(RawBhs, total_ahs_len), 4);
        assert_eq!(offset_of!(RawBhs, data_len), 5);
        assert_eq!(offset_of!(RawBhs, lun), 8);
        assert_eq!(offset_of!(RawBhs, itt), 16);
        assert_eq!(offset_of!(RawBhs, w20), 20);
        assert_eq!(offset_of!(RawBhs, w44), 44);
    }

    /// A Login Request captured from libiscsi 1.19 (iscsi-inq), header only.
    const LIBISCSI_LOGIN: [u8; 48] = [
        0x43, 0x87, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8e, // I, T, CSG=1, NSG=3; dlen 142
        0x80, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, // ISID, TSIH 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ITT 0, CID 0
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // CmdSN, ExpStatSN
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn accepts_captured_login_request() {
        let raw = RawBhs::read(&LIBISCSI_LOGIN).unwrap();
        assert_eq!(raw.data_len(), 142);
        let Bhs::LoginRequest(l) = Bhs::parse(&raw).unwrap() else {
            panic!("not a login request")
        };
        assert!(l.transit && !l.cont);
        assert_eq!((l.csg, l.nsg), (Stage::Operational, Stage::FullFeature));
        assert_eq!(l.isid, [0x80, 0x12, 0x34, 0x56, 0, 0]);
        let mut again = Bhs::LoginRequest(l).emit();
        again.set_lengths(0, 142).unwrap();
        assert_eq!(again.bytes(), &LIBISCSI_LOGIN[..]);
    }

    #[test]
    fn rejects_login_without_immediate_bit() {
        let mut b = LIBISCSI_LOGIN;
        b[0] = 0x03;
        let raw = RawBhs::read(&b).unwrap();
        assert!(matches!(Bhs::parse(&raw), Err(PduError::InvalidField(_))));
    }

    #[test]
    fn rejects_unknown_opcode() {
        let mut b = [0u8; 48];
        b[0] = 0x1c;
        let raw = RawBhs::read(&b).unwrap();
        assert_eq!(Bhs::parse(&raw), Err(PduError::UnknownOpcode(Opcode(0x1c))));
    }

    #[test]
    fn rejects_data_segment_past_limit() {
        // RFC 7143 §13.12: MaxRecvDataSegmentLength bounds what we accept.
        let mut d = PduDecoder::new(8192);
        let mut h = Bhs::NopOut(NopOut::default()).emit();
        h.set_lengths(0, 8193).unwrap();
        d.extend(h.bytes());
        assert!(matches!(
            d.decode(),
            Err(PduError::DataSegmentTooLong {
                len: 8193,
                max: 8192
            })
        ));
    }

    #[test]
    fn accepts_partial_input_as_need_more() {
        let mut out = Vec::new();
        let h = Bhs::NopOut(NopOut {
            itt: 5,
            ..NopOut::default()
        })
        .emit();
        encode_pdu(
            &h,
            &[],
            b"ping",
            Digests {
                header: true,
                data: true,
            },
            &mut out,
        )
        .unwrap();
        let mut d = PduDecoder::new(8192);
        d.set_digests(Digests {
            header: true,
            data: true,
        });
        for (i, b) in out.iter().enumerate() {
            assert_eq!(d.decode().unwrap(), None, "byte {i}");
            d.extend(&[*b]);
        }
        let f = d.decode().unwrap().unwrap();
        assert_eq!(f.data, b"ping");
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn rejects_bad_header_digest() {
        let mut out = Vec::new();
        let h = Bhs::NopOut(NopOut::default()).emit();
        encode_pdu(
            &h,
            &[],
            &[],
            Digests {
                header: true,
                data: false,
            },
            &mut out,
        )
        .unwrap();
        out[48] ^= 1;
        let mut d = PduDecoder::new(8192);
        d.set_digests(Digests {
            header: true,
            data: false,
        });
        d.extend(&out);
        let e = d.decode().unwrap_err();
        assert!(e.is_fatal());
    }

    #[test]
    fn rejects_bad_data_digest_and_continues() {
        // RFC 7143 §7.8.2: a data digest error discards the PDU only.
        let dg = Digests {
            header: false,
            data: true,
        };
        let mut out = Vec::new();
        let h = Bhs::NopOut(NopOut::default()).emit();
        encode_pdu(&h, &[], b"abcde", dg, &mut out).unwrap();
        let len = out.len();
        out[50] ^= 0xff;
        encode_pdu(&h, &[], b"xyz", dg, &mut out).unwrap();
        let mut d = PduDecoder::new(8192);
        d.set_digests(dg);
        d.extend(&out);
        assert!(matches!(d.decode(), Err(PduError::DataDigest { .. })));
        assert_eq!(d.buffered(), out.len() - len);
        assert_eq!(d.decode().unwrap().unwrap().data, b"xyz");
    }

    #[test]
    fn accepts_in_place_encoding_identical_to_encode_pdu() {
        let h = Bhs::DataIn(DataIn {
            itt: 3,
            status: Some(0),
            ..DataIn::default()
        })
        .emit();
        for dg in [
            Digests::default(),
            Digests {
                header: true,
                data: true,
            },
        ] {
            for len in [0usize, 1, 5, 512] {
                let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                encode_pdu(&h, &[], &data, dg, &mut a).unwrap();
                encode_pdu_with(&h, len, dg, &mut b, |d| d.copy_from_slice(&data)).unwrap();
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn accepts_rfc3720_crc32c_vector() {
        // RFC 3720 B.4: 32 bytes of zeroes digest to 0x8a9136aa.
        assert_eq!(digest::crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn accepts_extended_cdb_ahs() {
        let cmd = ScsiCommand {
            cdb: [0x7f; 16],
            ..ScsiCommand::default()
        };
        // AHSLength = 1 reserved + 16 extra CDB bytes = 17; padded to 20.
        let mut ahs = vec![0, 17, 1, 0];
        ahs.extend((16u8..32).collect::<Vec<_>>());
        let mut out = [0u8; 260];
        assert_eq!(scsi_command_cdb(&cmd, &ahs, &mut out).unwrap(), 32);
        assert_eq!(out[16], 16);
        assert_eq!(out[31], 31);
        assert!(scsi_command_cdb(&cmd, &[0, 200, 1, 0], &mut out).is_err());
    }

    fn arb_seq() -> impl Strategy<Value = SeqNums> {
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| SeqNums {
            stat_sn: a,
            exp_cmd_sn: b,
            max_cmd_sn: c,
        })
    }

    fn arb_stage() -> impl Strategy<Value = Stage> {
        prop_oneof![
            Just(Stage::Security),
            Just(Stage::Operational),
            Just(Stage::FullFeature)
        ]
    }

    fn arb_bhs() -> impl Strategy<Value = Bhs> {
        prop_oneof![
            (
                any::<bool>(),
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>()
            )
                .prop_map(|(immediate, lun, itt, ttt, cmd_sn, exp_stat_sn)| {
                    Bhs::NopOut(NopOut {
                        immediate,
                        lun,
                        itt,
                        ttt,
                        cmd_sn,
                        exp_stat_sn,
                    })
                }),
            (
                any::<[bool; 4]>(),
                0u8..8,
                any::<u64>(),
                any::<[u32; 4]>(),
                any::<[u8; 16]>()
            )
                .prop_map(|(b, attr, lun, w, cdb)| Bhs::ScsiCommand(ScsiCommand {
                    immediate: b[0],
                    final_: b[1],
                    read: b[2],
                    write: b[3],
                    attr,
                    lun,
                    itt: w[0],
                    edtl: w[1],
                    cmd_sn: w[2],
                    exp_stat_sn: w[3],
                    cdb
                })),
            (any::<bool>(), 0u8..0x80, any::<u64>(), any::<[u32; 6]>()).prop_map(
                |(immediate, f, lun, w)| Bhs::TaskMgmtRequest(TaskMgmtRequest {
                    immediate,
                    function: TmfCode(f),
                    lun,
                    itt: w[0],
                    rtt: w[1],
                    cmd_sn: w[2],
                    exp_stat_sn: w[3],
                    ref_cmd_sn: w[4],
                    exp_data_sn: w[5]
                })
            ),
            (
                any::<[bool; 2]>(),
                arb_stage(),
                arb_stage(),
                any::<[u8; 2]>(),
                any::<[u8; 6]>(),
                any::<u16>(),
                any::<u16>(),
                any::<[u32; 3]>()
            )
                .prop_map(|(b, csg, nsg, v, isid, tsih, cid, w)| Bhs::LoginRequest(
                    LoginRequest {
                        transit: b[0],
                        cont: b[1],
                        csg,
                        nsg,
                        version_max: v[0],
                        version_min: v[1],
                        isid,
                        tsih,
                        itt: w[0],
                        cid,
                        cmd_sn: w[1],
                        exp_stat_sn: w[2]
                    }
                )),
            (any::<[bool; 3]>(), any::<u64>(), any::<[u32; 4]>()).prop_map(|(b, lun, w)| {
                Bhs::TextRequest(TextRequest {
                    immediate: b[0],
                    final_: b[1],
                    cont: b[2],
                    lun,
                    itt: w[0],
                    ttt: w[1],
                    cmd_sn: w[2],
                    exp_stat_sn: w[3],
                })
            }),
            (any::<bool>(), any::<u64>(), any::<[u32; 5]>()).prop_map(|(final_, lun, w)| {
                Bhs::DataOut(DataOut {
                    final_,
                    lun,
                    itt: w[0],
                    ttt: w[1],
                    exp_stat_sn: w[2],
                    data_sn: w[3],
                    buffer_offset: w[4],
                })
            }),
            (any::<bool>(), 0u8..0x80, any::<u16>(), any::<[u32; 3]>()).prop_map(
                |(immediate, reason, cid, w)| Bhs::LogoutRequest(LogoutRequest {
                    immediate,
                    reason: LogoutReason(reason),
                    itt: w[0],
                    cid,
                    cmd_sn: w[1],
                    exp_stat_sn: w[2]
                })
            ),
            (0u8..16, any::<u64>(), any::<[u32; 5]>()).prop_map(|(kind, lun, w)| Bhs::Snack(
                Snack {
                    kind,
                    lun,
                    itt: w[0],
                    ttt: w[1],
                    exp_stat_sn: w[2],
                    beg_run: w[3],
                    run_length: w[4]
                }
            )),
            (any::<u64>(), any::<[u32; 2]>(), arb_seq()).prop_map(|(lun, w, seq)| Bhs::NopIn(
                NopIn {
                    lun,
                    itt: w[0],
                    ttt: w[1],
                    seq
                }
            )),
            (0u8..3, any::<[u8; 2]>(), any::<[u32; 5]>(), arb_seq()).prop_map(|(k, b, w, seq)| {
                Bhs::ScsiResponse(ScsiResponse {
                    residual_kind: [
                        ResidualKind::None,
                        ResidualKind::Underflow,
                        ResidualKind::Overflow,
                    ][usize::from(k)],
                    response: b[0],
                    status: b[1],
                    itt: w[0],
                    snack_tag: w[1],
                    seq,
                    exp_data_sn: w[2],
                    bidi_residual: w[3],
                    residual: w[4],
                })
            }),
            (any::<u8>(), any::<u32>(), arb_seq()).prop_map(|(r, itt, seq)| Bhs::TaskMgmtResponse(
                TaskMgmtResponse {
                    response: TmfResponseCode(r),
                    itt,
                    seq
                }
            )),
            (
                any::<[bool; 2]>(),
                arb_stage(),
                arb_stage(),
                any::<[u8; 4]>(),
                any::<[u8; 6]>(),
                any::<u16>(),
                any::<u32>(),
                arb_seq()
            )
                .prop_map(|(b, csg, nsg, v, isid, tsih, itt, seq)| Bhs::LoginResponse(
                    LoginResponse {
                        transit: b[0],
                        cont: b[1],
                        csg,
                        nsg,
                        version_max: v[0],
                        version_active: v[1],
                        isid,
                        tsih,
                        itt,
                        seq,
                        status_class: v[2],
                        status_detail: v[3]
                    }
                )),
            (
                any::<[bool; 2]>(),
                any::<u64>(),
                any::<[u32; 2]>(),
                arb_seq()
            )
                .prop_map(|(b, lun, w, seq)| Bhs::TextResponse(TextResponse {
                    final_: b[0],
                    cont: b[1],
                    lun,
                    itt: w[0],
                    ttt: w[1],
                    seq
                })),
            (
                any::<[bool; 2]>(),
                0u8..3,
                proptest::option::of(any::<u8>()),
                any::<u64>(),
                any::<[u32; 5]>(),
                arb_seq()
            )
                .prop_map(|(b, k, status, lun, w, seq)| Bhs::DataIn(DataIn {
                    final_: b[0],
                    ack: b[1],
                    residual_kind: [
                        ResidualKind::None,
                        ResidualKind::Underflow,
                        ResidualKind::Overflow
                    ][usize::from(k)],
                    status,
                    lun,
                    itt: w[0],
                    ttt: w[1],
                    seq,
                    data_sn: w[2],
                    buffer_offset: w[3],
                    residual: w[4]
                })),
            (any::<u8>(), any::<u32>(), arb_seq(), any::<[u16; 2]>()).prop_map(
                |(response, itt, seq, t)| Bhs::LogoutResponse(LogoutResponse {
                    response,
                    itt,
                    seq,
                    time2wait: t[0],
                    time2retain: t[1]
                })
            ),
            (any::<u64>(), any::<[u32; 5]>(), arb_seq()).prop_map(|(lun, w, seq)| Bhs::R2t(R2t {
                lun,
                itt: w[0],
                ttt: w[1],
                seq,
                r2t_sn: w[2],
                buffer_offset: w[3],
                desired_len: w[4]
            })),
            (any::<u64>(), arb_seq(), any::<[u8; 2]>(), any::<[u16; 3]>()).prop_map(
                |(lun, seq, e, p)| Bhs::AsyncMessage(AsyncMessage {
                    lun,
                    seq,
                    event: e[0],
                    vcode: e[1],
                    param1: p[0],
                    param2: p[1],
                    param3: p[2]
                })
            ),
            (any::<u8>(), arb_seq(), any::<u32>()).prop_map(|(r, seq, data_sn)| Bhs::Reject(
                Reject {
                    reason: RejectReason(r),
                    seq,
                    data_sn
                }
            )),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_every_opcode(
            bhs in arb_bhs(),
            ahs_words in 0usize..4,
            data in proptest::collection::vec(any::<u8>(), 0..64),
            hd in any::<bool>(),
            dd in any::<bool>(),
        ) {
            let digests = Digests { header: hd, data: dd };
            let ahs = vec![0xa5; ahs_words * 4];
            let mut out = Vec::new();
            encode_pdu(&bhs.emit(), &ahs, &data, digests, &mut out).unwrap();
            prop_assert_eq!(out.len() % 4, 0);
            let mut d = PduDecoder::new(8192);
            d.set_digests(digests);
            d.extend(&out);
            let f = d.decode().unwrap().unwrap();
            prop_assert_eq!(&f.ahs, &ahs);
            prop_assert_eq!(&f.data, &data);
            prop_assert_eq!(Bhs::parse(&f.header).unwrap(), bhs);
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut d = PduDecoder::new(256);
            d.extend(&bytes);
            while let Ok(Some(f)) = d.decode() {
                let _ = Bhs::parse(&f.header);
                let mut cdb = [0u8; 260];
                if let Ok(Bhs::ScsiCommand(c)) = Bhs::parse(&f.header) {
                    let _ = scsi_command_cdb(&c, &f.ahs, &mut cdb);
                }
            }
        }
    }
}
