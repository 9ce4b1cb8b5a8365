//! The command table: one row per operation code and service action.
//!
//! Every part of the engine that needs to know about a command reads this
//! table: [`Cdb::decode`](crate::cdb::Cdb::decode) finds the CDB length and
//! the handler here, dispatch runs the handler, REPORT SUPPORTED OPERATION
//! CODES lists exactly these rows with their CDB usage data and timeouts, and
//! the fuzzers and transports ask it for the data direction. A command that
//! is not in the table is answered with INVALID COMMAND OPERATION CODE, and
//! is not listed as supported.
//!
//! Each row also carries its reservation conflict columns
//! ([`PrConflicts`]): SPC-4 §5.13.1 table 47 (SPC commands) and SBC-3
//! §4.17 table 13 (block commands), plus the SPC-2 column for logical units
//! reserved with RESERVE(6)/(10) (SPC-2 §5.5.1). The engine answers
//! RESERVATION CONFLICT from these columns alone; PERSISTENT RESERVE OUT and
//! RESERVE/RELEASE are allowed here and checked by their handlers, whose
//! rules depend on the service action and the reservation key; so is
//! EXTENDED COPY, whose copy manager checks each unit it reads or writes.

use std::sync::OnceLock;

use crate::cdb::opcode as op;
use crate::device::DeviceType;
use crate::sense::Sense;

/// Direction of the data transfer of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataDirection {
    /// No data transfer.
    None,
    /// Data-in: device server to application client.
    Read,
    /// Data-out: application client to device server.
    Write,
}

/// Which device-model routine handles a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Handler {
    TestUnitReady,
    RequestSense,
    Inquiry,
    ModeSense,
    ModeSelect,
    LogSense,
    ReportLuns,
    ReportSupportedOpcodes,
    ReportSupportedTmf,
    ReportTargetPortGroups,
    SetTargetPortGroups,
    ReadCapacity10,
    ReadCapacity16,
    GetLbaStatus,
    Read,
    Write,
    WriteAndVerify,
    OrWrite,
    Verify,
    WriteSame,
    WriteAtomic,
    Unmap,
    CompareAndWrite,
    SynchronizeCache,
    PreFetch,
    StartStopUnit,
    PreventAllow,
    Sanitize,
    FormatUnit,
    ReadDefectData,
    ReadToc,
    GetConfiguration,
    GetEventStatus,
    ReadDiscInformation,
    ReadTrackInformation,
    MechanismStatus,
    Rewind,
    ReadBlockLimits,
    TapeRead,
    TapeWrite,
    WriteFilemarks,
    Space,
    Erase,
    LoadUnload,
    Locate,
    ReadPosition,
    ExtendedCopy,
    ReceiveCopyResults,
    PopulateToken,
    WriteUsingToken,
    ReceiveRodTokenInformation,
    PersistentReserveIn,
    PersistentReserveOut,
    Reserve,
    Release,
}

bitflags::bitflags! {
    /// The conditions under which a handler still runs: one column per
    /// condition that refuses most commands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct RunsWhen: u8 {
        /// With the removable medium out (SBC-4 §4.2.2; MMC-6 §4.1.7): the
        /// commands about the device itself rather than its medium.
        const NO_MEDIUM = 1 << 0;
        /// While a sanitize operation runs (SBC-4 §4.11.2).
        const SANITIZING = 1 << 1;
        /// Through a target port group in standby (SPC-4 §5.15.2.4.4).
        const STANDBY = 1 << 2;
        /// Through a port group that is unavailable (§5.15.2.4.5).
        const UNAVAILABLE = 1 << 3;
        /// Through a port group in transition (§5.15.2.4.6).
        const TRANSITIONING = 1 << 4;
    }
}

impl Handler {
    /// Whether the command accesses the medium, and so answers NOT READY,
    /// MEDIUM NOT PRESENT while a removable medium is out (SBC-4 §4.2.2):
    /// TEST UNIT READY and everything else but the commands about the
    /// device itself (for a CD/DVD device, MMC-6 §4.1.7: its configuration,
    /// events and mechanism; for a tape device, its block limits and LOAD).
    #[must_use]
    pub fn needs_medium(self) -> bool {
        !self.runs_when().contains(RunsWhen::NO_MEDIUM)
    }

    /// The table of which handlers run under which conditions; a handler
    /// not listed runs under none of them.
    pub(crate) fn runs_when(self) -> RunsWhen {
        use Handler as H;
        const ASK: RunsWhen = RunsWhen::all();
        const PATHS: RunsWhen = RunsWhen::NO_MEDIUM
            .union(RunsWhen::STANDBY)
            .union(RunsWhen::UNAVAILABLE)
            .union(RunsWhen::TRANSITIONING);
        const CONFIGURE: RunsWhen = RunsWhen::NO_MEDIUM.union(RunsWhen::STANDBY);
        match self {
            // Finding out about the device: always.
            H::Inquiry
            | H::ReportLuns
            | H::RequestSense
            | H::ReportSupportedOpcodes
            | H::ReportSupportedTmf => ASK,
            // Finding out about the paths.
            H::ReportTargetPortGroups => PATHS,
            H::SetTargetPortGroups => CONFIGURE.union(RunsWhen::UNAVAILABLE),
            // Mode and log pages and reservations: through standby ports.
            H::ModeSense
            | H::ModeSelect
            | H::LogSense
            | H::PersistentReserveIn
            | H::PersistentReserveOut => CONFIGURE,
            // The drive, its mechanism and its copy results.
            H::ReceiveCopyResults
            | H::ReceiveRodTokenInformation
            | H::GetConfiguration
            | H::GetEventStatus
            | H::MechanismStatus
            | H::StartStopUnit
            | H::ReadBlockLimits
            | H::LoadUnload
            | H::PreventAllow
            | H::Reserve
            | H::Release => RunsWhen::NO_MEDIUM,
            _ => RunsWhen::empty(),
        }
    }
}

/// Whether a command conflicts with a reservation held by another I_T
/// nexus: one column per case of SPC-4 table 47 (`true` = RESERVATION
/// CONFLICT, `false` = allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::struct_excessive_bools)]
pub struct PrConflicts {
    /// Write Exclusive, from any I_T nexus other than the holder.
    pub we: bool,
    /// Exclusive Access, from any I_T nexus other than the holder.
    pub ea: bool,
    /// Any Registrants Only or All Registrants type, from a registered
    /// I_T nexus (allowed for every command in SPC-4; kept as a column so
    /// the table reads like the standard's).
    pub registered: bool,
    /// Write Exclusive – Registrants Only / All Registrants, from an I_T
    /// nexus that is not registered.
    pub unreg_we: bool,
    /// Exclusive Access – Registrants Only / All Registrants, from an I_T
    /// nexus that is not registered.
    pub unreg_ea: bool,
    /// An SPC-2 RESERVE held by another I_T nexus (SPC-2 §5.5.1: only
    /// INQUIRY, LOG SENSE, RELEASE, REPORT LUNS and REQUEST SENSE pass).
    pub spc2: bool,
}

impl PrConflicts {
    const fn new(we: bool, ea: bool, unreg_we: bool, unreg_ea: bool, spc2: bool) -> Self {
        Self {
            we,
            ea,
            registered: false,
            unreg_we,
            unreg_ea,
            spc2,
        }
    }

    /// The columns set, as [`column`] bits: what the lock-free check in
    /// the engine compares with the columns a held reservation can fire.
    #[must_use]
    pub(crate) const fn bits(&self) -> u8 {
        (self.we as u8 * column::WE)
            | (self.ea as u8 * column::EA)
            | (self.registered as u8 * column::REGISTERED)
            | (self.unreg_we as u8 * column::UNREG_WE)
            | (self.unreg_ea as u8 * column::UNREG_EA)
            | (self.spc2 as u8 * column::SPC2)
    }
}

/// One bit per [`PrConflicts`] column.
pub(crate) mod column {
    /// [`PrConflicts::we`](super::PrConflicts::we).
    pub const WE: u8 = 1 << 0;
    /// [`PrConflicts::ea`](super::PrConflicts::ea).
    pub const EA: u8 = 1 << 1;
    /// [`PrConflicts::registered`](super::PrConflicts::registered).
    pub const REGISTERED: u8 = 1 << 2;
    /// [`PrConflicts::unreg_we`](super::PrConflicts::unreg_we).
    pub const UNREG_WE: u8 = 1 << 3;
    /// [`PrConflicts::unreg_ea`](super::PrConflicts::unreg_ea).
    pub const UNREG_EA: u8 = 1 << 4;
    /// [`PrConflicts::spc2`](super::PrConflicts::spc2).
    pub const SPC2: u8 = 1 << 5;
}

/// Allowed under every persistent reservation and under SPC-2 RESERVE.
pub const ALWAYS: PrConflicts = PrConflicts::new(false, false, false, false, false);
/// Allowed under every persistent reservation; conflicts with SPC-2 RESERVE.
pub const ALLOWED: PrConflicts = PrConflicts::new(false, false, false, false, true);
/// Read-class commands: allowed under the Write Exclusive types, conflict
/// under the Exclusive Access types for non-registrants.
pub const READS: PrConflicts = PrConflicts::new(false, true, false, true, true);
/// Write-class commands: only the holder (and registrants under the RO/AR
/// types) may run them.
pub const WRITES: PrConflicts = PrConflicts::new(true, true, true, true, true);

/// One row of the command table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandDesc {
    /// Operation code.
    pub opcode: u8,
    /// Service action, for opcodes that have them.
    pub service_action: Option<u16>,
    /// Command name as the standard spells it.
    pub name: &'static str,
    /// CDB length in bytes.
    pub cdb_len: u8,
    /// Data direction.
    pub direction: DataDirection,
    /// Handler.
    pub handler: Handler,
    /// CDB USAGE DATA for REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35.3):
    /// the first `cdb_len` bytes are used; byte 0 is the opcode, and the
    /// other bytes have a bit set for every CDB bit the device server
    /// evaluates.
    pub usage: [u8; 16],
    /// Nominal command processing timeout, seconds (0 = not specified).
    pub nominal_timeout: u32,
    /// Recommended command timeout, seconds.
    pub recommended_timeout: u32,
    /// Reservation conflict columns.
    pub conflicts: PrConflicts,
    /// The device models that implement the command.
    pub devices: Devices,
}

/// A set of device models (one bit per [`DeviceType`]): the table column
/// saying which models implement a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Devices(u8);

impl Devices {
    /// Direct-access block devices (SBC) only.
    pub const DISK: Devices = Devices(1 << DeviceType::Disk as u8);
    /// CD/DVD devices (MMC) only.
    pub const CDROM: Devices = Devices(1 << DeviceType::Cdrom as u8);
    /// Sequential-access (tape) devices (SSC) only.
    pub const TAPE: Devices = Devices(1 << DeviceType::Tape as u8);
    /// The block models: disks and CD/DVD devices.
    pub const BLOCK: Devices = Devices(Self::DISK.0 | Self::CDROM.0);
    /// Every model (most SPC commands).
    pub const ALL: Devices = Devices(Self::DISK.0 | Self::CDROM.0 | Self::TAPE.0);

    /// Whether the set holds `device`.
    #[must_use]
    pub const fn contains(self, device: DeviceType) -> bool {
        self.0 & (1 << device as u8) != 0
    }
}

macro_rules! row {
    ($op:expr, $sa:expr, $name:literal, $len:literal, $dir:ident, $h:ident, $pr:ident, $dev:ident, [$($u:expr),* $(,)?]) => {
        row!($op, $sa, $name, $len, $dir, $h, $pr, $dev, [$($u),*], 0, 30)
    };
    ($op:expr, $sa:expr, $name:literal, $len:literal, $dir:ident, $h:ident, $pr:ident, $dev:ident, [$($u:expr),* $(,)?], $nom:expr, $rec:expr) => {
        CommandDesc {
            opcode: $op,
            service_action: $sa,
            name: $name,
            cdb_len: $len,
            direction: DataDirection::$dir,
            handler: Handler::$h,
            usage: pad([$($u),*]),
            nominal_timeout: $nom,
            recommended_timeout: $rec,
            conflicts: $pr,
            devices: Devices::$dev,
        }
    };
}

const fn pad<const N: usize>(bytes: [u8; N]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The CONTROL byte usage: NACA and LINK are evaluated (and rejected).
const CTL: u8 = 0x05;

/// Every command of every device model; [`CommandDesc::devices`] says
/// which models implement a row.
#[rustfmt::skip]
pub static COMMANDS: &[CommandDesc] = &[
    row!(op::TEST_UNIT_READY, None, "TEST UNIT READY", 6, None, TestUnitReady, ALLOWED, ALL,
        [op::TEST_UNIT_READY, 0, 0, 0, 0, CTL]),
    row!(op::REWIND, None, "REWIND", 6, None, Rewind, READS, TAPE,
        [op::REWIND, 0x01, 0, 0, 0, CTL], 1, 600),
    row!(op::REQUEST_SENSE, None, "REQUEST SENSE", 6, Read, RequestSense, ALWAYS, ALL,
        [op::REQUEST_SENSE, 0x01, 0, 0, 0xff, CTL]),
    row!(op::FORMAT_UNIT, None, "FORMAT UNIT", 6, None, FormatUnit, WRITES, DISK,
        [op::FORMAT_UNIT, 0xff, 0, 0, 0, CTL], 1, 60),
    row!(op::READ_BLOCK_LIMITS, None, "READ BLOCK LIMITS", 6, Read, ReadBlockLimits, ALLOWED, TAPE,
        [op::READ_BLOCK_LIMITS, 0, 0, 0, 0, CTL]),
    row!(op::READ_6, None, "READ(6)", 6, Read, Read, READS, DISK,
        [op::READ_6, 0x1f, 0xff, 0xff, 0xff, CTL]),
    row!(op::READ_6, None, "READ(6)", 6, Read, TapeRead, READS, TAPE,
        [op::READ_6, 0x03, 0xff, 0xff, 0xff, CTL], 1, 600),
    row!(op::WRITE_6, None, "WRITE(6)", 6, Write, Write, WRITES, DISK,
        [op::WRITE_6, 0x1f, 0xff, 0xff, 0xff, CTL]),
    row!(op::WRITE_6, None, "WRITE(6)", 6, Write, TapeWrite, WRITES, TAPE,
        [op::WRITE_6, 0x01, 0xff, 0xff, 0xff, CTL], 1, 600),
    row!(op::WRITE_FILEMARKS_6, None, "WRITE FILEMARKS(6)", 6, None, WriteFilemarks, WRITES, TAPE,
        [op::WRITE_FILEMARKS_6, 0x03, 0xff, 0xff, 0xff, CTL], 1, 600),
    row!(op::SPACE_6, None, "SPACE(6)", 6, None, Space, READS, TAPE,
        [op::SPACE_6, 0x0f, 0xff, 0xff, 0xff, CTL], 1, 600),
    row!(op::INQUIRY, None, "INQUIRY", 6, Read, Inquiry, ALWAYS, ALL,
        [op::INQUIRY, 0x01, 0xff, 0xff, 0xff, CTL]),
    row!(op::MODE_SELECT_6, None, "MODE SELECT(6)", 6, Write, ModeSelect, WRITES, ALL,
        [op::MODE_SELECT_6, 0x11, 0, 0, 0xff, CTL]),
    row!(op::RESERVE_6, None, "RESERVE(6)", 6, None, Reserve, ALLOWED, ALL,
        [op::RESERVE_6, 0, 0, 0, 0, CTL]),
    row!(op::RELEASE_6, None, "RELEASE(6)", 6, None, Release, ALWAYS, ALL,
        [op::RELEASE_6, 0, 0, 0, 0, CTL]),
    row!(op::ERASE_6, None, "ERASE(6)", 6, None, Erase, WRITES, TAPE,
        [op::ERASE_6, 0x03, 0, 0, 0, CTL], 1, 600),
    row!(op::MODE_SENSE_6, None, "MODE SENSE(6)", 6, Read, ModeSense, READS, ALL,
        [op::MODE_SENSE_6, 0x08, 0xff, 0xff, 0xff, CTL]),
    row!(op::START_STOP_UNIT, None, "START STOP UNIT", 6, None, StartStopUnit, WRITES, BLOCK,
        [op::START_STOP_UNIT, 0x01, 0, 0x0f, 0xf7, CTL]),
    row!(op::LOAD_UNLOAD, None, "LOAD UNLOAD", 6, None, LoadUnload, WRITES, TAPE,
        [op::LOAD_UNLOAD, 0x01, 0, 0, 0x0f, CTL], 1, 600),
    row!(op::PREVENT_ALLOW_MEDIUM_REMOVAL, None, "PREVENT ALLOW MEDIUM REMOVAL", 6, None, PreventAllow, ALLOWED, ALL,
        [op::PREVENT_ALLOW_MEDIUM_REMOVAL, 0, 0, 0, 0x03, CTL]),
    row!(op::READ_CAPACITY_10, None, "READ CAPACITY(10)", 10, Read, ReadCapacity10, ALLOWED, BLOCK,
        [op::READ_CAPACITY_10, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, CTL]),
    row!(op::READ_10, None, "READ(10)", 10, Read, Read, READS, BLOCK,
        [op::READ_10, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, CTL]),
    row!(op::WRITE_10, None, "WRITE(10)", 10, Write, Write, WRITES, DISK,
        [op::WRITE_10, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, CTL]),
    row!(op::LOCATE_10, None, "LOCATE(10)", 10, None, Locate, READS, TAPE,
        [op::LOCATE_10, 0x07, 0, 0xff, 0xff, 0xff, 0xff, 0, 0xff, CTL], 1, 600),
    row!(op::WRITE_AND_VERIFY_10, None, "WRITE AND VERIFY(10)", 10, Write, WriteAndVerify, WRITES, DISK,
        [op::WRITE_AND_VERIFY_10, 0xf2, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, CTL]),
    row!(op::VERIFY_10, None, "VERIFY(10)", 10, Write, Verify, READS, DISK,
        [op::VERIFY_10, 0xf6, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, CTL]),
    row!(op::PRE_FETCH_10, None, "PRE-FETCH(10)", 10, None, PreFetch, READS, DISK,
        [op::PRE_FETCH_10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, CTL]),
    row!(op::READ_POSITION, None, "READ POSITION", 10, Read, ReadPosition, ALLOWED, TAPE,
        [op::READ_POSITION, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::SYNCHRONIZE_CACHE_10, None, "SYNCHRONIZE CACHE(10)", 10, None, SynchronizeCache, WRITES, DISK,
        [op::SYNCHRONIZE_CACHE_10, 0x02, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, CTL]),
    row!(op::READ_DEFECT_DATA_10, None, "READ DEFECT DATA(10)", 10, Read, ReadDefectData, READS, DISK,
        [op::READ_DEFECT_DATA_10, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::WRITE_SAME_10, None, "WRITE SAME(10)", 10, Write, WriteSame, WRITES, DISK,
        [op::WRITE_SAME_10, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, CTL]),
    row!(op::UNMAP, None, "UNMAP", 10, Write, Unmap, WRITES, DISK,
        [op::UNMAP, 0x01, 0, 0, 0, 0, 0x3f, 0xff, 0xff, CTL]),
    row!(op::SANITIZE, Some(op::SA_SANITIZE_OVERWRITE), "SANITIZE", 10, Write, Sanitize, WRITES, DISK,
        [op::SANITIZE, 0xbf, 0, 0, 0, 0, 0, 0xff, 0xff, CTL], 60, 3600),
    row!(op::SANITIZE, Some(op::SA_SANITIZE_BLOCK_ERASE), "SANITIZE", 10, Write, Sanitize, WRITES, DISK,
        [op::SANITIZE, 0xbf, 0, 0, 0, 0, 0, 0xff, 0xff, CTL], 10, 600),
    row!(op::SANITIZE, Some(op::SA_SANITIZE_EXIT_FAILURE_MODE), "SANITIZE", 10, Write, Sanitize, WRITES, DISK,
        [op::SANITIZE, 0xbf, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::LOG_SENSE, None, "LOG SENSE", 10, Read, LogSense, ALWAYS, ALL,
        [op::LOG_SENSE, 0x01, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::MODE_SELECT_10, None, "MODE SELECT(10)", 10, Write, ModeSelect, WRITES, ALL,
        [op::MODE_SELECT_10, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::RESERVE_10, None, "RESERVE(10)", 10, None, Reserve, ALLOWED, ALL,
        [op::RESERVE_10, 0x12, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::RELEASE_10, None, "RELEASE(10)", 10, None, Release, ALWAYS, ALL,
        [op::RELEASE_10, 0x12, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::MODE_SENSE_10, None, "MODE SENSE(10)", 10, Read, ModeSense, READS, ALL,
        [op::MODE_SENSE_10, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_IN, Some(op::SA_PRIN_READ_KEYS), "PERSISTENT RESERVE IN", 10, Read, PersistentReserveIn, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_IN, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_IN, Some(op::SA_PRIN_READ_RESERVATION), "PERSISTENT RESERVE IN", 10, Read, PersistentReserveIn, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_IN, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_IN, Some(op::SA_PRIN_REPORT_CAPABILITIES), "PERSISTENT RESERVE IN", 10, Read, PersistentReserveIn, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_IN, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_IN, Some(op::SA_PRIN_READ_FULL_STATUS), "PERSISTENT RESERVE IN", 10, Read, PersistentReserveIn, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_IN, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_REGISTER), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_RESERVE), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_RELEASE), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_CLEAR), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_PREEMPT), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_PREEMPT_AND_ABORT), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_REGISTER_AND_IGNORE_EXISTING_KEY), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_REGISTER_AND_MOVE), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::PERSISTENT_RESERVE_OUT, Some(op::SA_PROUT_REPLACE_LOST_RESERVATION), "PERSISTENT RESERVE OUT", 10, Write, PersistentReserveOut, ALLOWED, ALL,
        [op::PERSISTENT_RESERVE_OUT, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, CTL]),
    row!(op::EXTENDED_COPY, Some(op::SA_EXTENDED_COPY_LID1), "EXTENDED COPY(LID1)", 16, Write, ExtendedCopy, ALLOWED, DISK,
        [op::EXTENDED_COPY, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::EXTENDED_COPY, Some(op::SA_POPULATE_TOKEN), "POPULATE TOKEN", 16, Write, PopulateToken, READS, DISK,
        [op::EXTENDED_COPY, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::EXTENDED_COPY, Some(op::SA_WRITE_USING_TOKEN), "WRITE USING TOKEN", 16, Write, WriteUsingToken, WRITES, DISK,
        [op::EXTENDED_COPY, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::RECEIVE_COPY_RESULTS, Some(op::SA_RCR_COPY_STATUS), "RECEIVE COPY STATUS(LID1)", 16, Read, ReceiveCopyResults, READS, DISK,
        [op::RECEIVE_COPY_RESULTS, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::RECEIVE_COPY_RESULTS, Some(op::SA_RCR_OPERATING_PARAMETERS), "RECEIVE COPY OPERATING PARAMETERS", 16, Read, ReceiveCopyResults, READS, DISK,
        [op::RECEIVE_COPY_RESULTS, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::RECEIVE_COPY_RESULTS, Some(op::SA_RCR_FAILED_SEGMENT_DETAILS), "RECEIVE COPY FAILURE DETAILS(LID1)", 16, Read, ReceiveCopyResults, READS, DISK,
        [op::RECEIVE_COPY_RESULTS, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::RECEIVE_COPY_RESULTS, Some(op::SA_RECEIVE_ROD_TOKEN_INFORMATION), "RECEIVE ROD TOKEN INFORMATION", 16, Read, ReceiveRodTokenInformation, READS, DISK,
        [op::RECEIVE_COPY_RESULTS, 0x1f, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::READ_16, None, "READ(16)", 16, Read, Read, READS, DISK,
        [op::READ_16, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::COMPARE_AND_WRITE, None, "COMPARE AND WRITE", 16, Write, CompareAndWrite, WRITES, DISK,
        [op::COMPARE_AND_WRITE, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x3f, CTL]),
    row!(op::WRITE_16, None, "WRITE(16)", 16, Write, Write, WRITES, DISK,
        [op::WRITE_16, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::ORWRITE_16, None, "ORWRITE(16)", 16, Write, OrWrite, WRITES, DISK,
        [op::ORWRITE_16, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::WRITE_AND_VERIFY_16, None, "WRITE AND VERIFY(16)", 16, Write, WriteAndVerify, WRITES, DISK,
        [op::WRITE_AND_VERIFY_16, 0xf2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::VERIFY_16, None, "VERIFY(16)", 16, Write, Verify, READS, DISK,
        [op::VERIFY_16, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::PRE_FETCH_16, None, "PRE-FETCH(16)", 16, None, PreFetch, READS, DISK,
        [op::PRE_FETCH_16, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::SYNCHRONIZE_CACHE_16, None, "SYNCHRONIZE CACHE(16)", 16, None, SynchronizeCache, WRITES, DISK,
        [op::SYNCHRONIZE_CACHE_16, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::WRITE_SAME_16, None, "WRITE SAME(16)", 16, Write, WriteSame, WRITES, DISK,
        [op::WRITE_SAME_16, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::WRITE_ATOMIC_16, None, "WRITE ATOMIC(16)", 16, Write, WriteAtomic, WRITES, DISK,
        [op::WRITE_ATOMIC_16, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::SERVICE_ACTION_IN_16, Some(op::SA_READ_CAPACITY_16), "READ CAPACITY(16)", 16, Read, ReadCapacity16, ALLOWED, DISK,
        [op::SERVICE_ACTION_IN_16, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::SERVICE_ACTION_IN_16, Some(op::SA_GET_LBA_STATUS), "GET LBA STATUS", 16, Read, GetLbaStatus, READS, DISK,
        [op::SERVICE_ACTION_IN_16, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::REPORT_LUNS, None, "REPORT LUNS", 12, Read, ReportLuns, ALWAYS, ALL,
        [op::REPORT_LUNS, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::MAINTENANCE_IN, Some(op::SA_REPORT_SUPPORTED_OPCODES), "REPORT SUPPORTED OPERATION CODES", 12, Read, ReportSupportedOpcodes, READS, ALL,
        [op::MAINTENANCE_IN, 0x1f, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::MAINTENANCE_IN, Some(op::SA_REPORT_SUPPORTED_TMF), "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", 12, Read, ReportSupportedTmf, READS, ALL,
        [op::MAINTENANCE_IN, 0x1f, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::MAINTENANCE_IN, Some(op::SA_REPORT_TARGET_PORT_GROUPS), "REPORT TARGET PORT GROUPS", 12, Read, ReportTargetPortGroups, ALWAYS, ALL,
        [op::MAINTENANCE_IN, 0xea, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::MAINTENANCE_OUT, Some(op::SA_SET_TARGET_PORT_GROUPS), "SET TARGET PORT GROUPS", 12, Write, SetTargetPortGroups, WRITES, ALL,
        [op::MAINTENANCE_OUT, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    row!(op::READ_12, None, "READ(12)", 12, Read, Read, READS, BLOCK,
        [op::READ_12, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::WRITE_12, None, "WRITE(12)", 12, Write, Write, WRITES, DISK,
        [op::WRITE_12, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::WRITE_AND_VERIFY_12, None, "WRITE AND VERIFY(12)", 12, Write, WriteAndVerify, WRITES, DISK,
        [op::WRITE_AND_VERIFY_12, 0xf2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::VERIFY_12, None, "VERIFY(12)", 12, Write, Verify, READS, DISK,
        [op::VERIFY_12, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, CTL]),
    row!(op::READ_DEFECT_DATA_12, None, "READ DEFECT DATA(12)", 12, Read, ReadDefectData, READS, DISK,
        [op::READ_DEFECT_DATA_12, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, CTL]),
    // MMC-6: the CD/DVD model's own commands (crate::mmc).
    row!(op::READ_TOC, None, "READ TOC/PMA/ATIP", 10, Read, ReadToc, READS, CDROM,
        [op::READ_TOC, 0x02, 0x0f, 0, 0, 0, 0xff, 0xff, 0xff, 0xc0 | CTL]),
    row!(op::GET_CONFIGURATION, None, "GET CONFIGURATION", 10, Read, GetConfiguration, ALLOWED, CDROM,
        [op::GET_CONFIGURATION, 0x03, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::GET_EVENT_STATUS_NOTIFICATION, None, "GET EVENT STATUS NOTIFICATION", 10, Read, GetEventStatus, ALLOWED, CDROM,
        [op::GET_EVENT_STATUS_NOTIFICATION, 0x01, 0, 0, 0xff, 0, 0, 0xff, 0xff, CTL]),
    row!(op::READ_DISC_INFORMATION, None, "READ DISC INFORMATION", 10, Read, ReadDiscInformation, READS, CDROM,
        [op::READ_DISC_INFORMATION, 0x07, 0, 0, 0, 0, 0, 0xff, 0xff, CTL]),
    row!(op::READ_TRACK_INFORMATION, None, "READ TRACK INFORMATION", 10, Read, ReadTrackInformation, READS, CDROM,
        [op::READ_TRACK_INFORMATION, 0x07, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, CTL]),
    row!(op::MECHANISM_STATUS, None, "MECHANISM STATUS", 12, Read, MechanismStatus, ALLOWED, CDROM,
        [op::MECHANISM_STATUS, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, CTL]),
];

/// For each opcode, the index of its first row plus one (0 = none).
fn index() -> &'static [u8; 256] {
    static INDEX: OnceLock<[u8; 256]> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut idx = [0u8; 256];
        for (i, row) in COMMANDS.iter().enumerate().rev() {
            idx[usize::from(row.opcode)] = u8::try_from(i + 1).unwrap_or(0);
        }
        idx
    })
}

/// Find the disk model's row for an opcode and (where the opcode has them)
/// a service action, without looking at a CDB.
#[must_use]
pub fn find(opcode: u8, service_action: Option<u16>) -> Option<&'static CommandDesc> {
    find_for(DeviceType::Disk, opcode, service_action)
}

/// [`find`] for the device model `device`.
#[must_use]
pub fn find_for(
    device: DeviceType,
    opcode: u8,
    service_action: Option<u16>,
) -> Option<&'static CommandDesc> {
    of_opcode(opcode)
        .filter(|row| row.devices.contains(device))
        .find(|row| row.service_action.is_none() || row.service_action == service_action)
}

/// Every model's rows for `opcode` (adjacent in the table, found by the
/// index).
fn of_opcode(opcode: u8) -> impl Iterator<Item = &'static CommandDesc> {
    let first = usize::from(index()[usize::from(opcode)]).checked_sub(1);
    first
        .map_or(&[][..], |f| &COMMANDS[f..])
        .iter()
        .take_while(move |row| row.opcode == opcode)
}

/// The rows of device model `device`, in table order.
pub fn rows(device: DeviceType) -> impl Iterator<Item = &'static CommandDesc> {
    COMMANDS.iter().filter(move |r| r.devices.contains(device))
}

/// Whether any of `device`'s rows for `opcode` has a service action.
#[must_use]
pub fn has_service_actions(device: DeviceType, opcode: u8) -> bool {
    of_opcode(opcode).any(|r| r.devices.contains(device) && r.service_action.is_some())
}

/// Find the disk model's row for `cdb`.
///
/// # Errors
///
/// INVALID COMMAND OPERATION CODE for an empty CDB or an opcode not in the
/// table; INVALID FIELD IN CDB pointing at the SERVICE ACTION field for a
/// service action not in the table (SPC-4 §4.2.5.1).
pub fn lookup(cdb: &[u8]) -> Result<&'static CommandDesc, Sense> {
    lookup_for(DeviceType::Disk, cdb)
}

/// [`lookup`] for the device model `device`: a command another model
/// implements is an INVALID COMMAND OPERATION CODE here.
///
/// # Errors
///
/// As [`lookup`].
pub fn lookup_for(device: DeviceType, cdb: &[u8]) -> Result<&'static CommandDesc, Sense> {
    let &opcode = cdb.first().ok_or_else(crate::cdb::invalid_opcode)?;
    // Byte 1 bits 4-0 hold a service action for the opcodes whose rows
    // have one (in any model: the CDB layout is the opcode's).
    if of_opcode(opcode).any(|r| r.service_action.is_some()) {
        let Some(&b1) = cdb.get(1) else {
            return Err(Sense::invalid_cdb_field(1, Some(4)));
        };
        if !of_opcode(opcode).any(|r| r.devices.contains(device)) {
            return Err(crate::cdb::invalid_opcode());
        }
        return find_for(device, opcode, Some(u16::from(b1 & 0x1f)))
            .ok_or_else(|| Sense::invalid_cdb_field(1, Some(4)));
    }
    find_for(device, opcode, None).ok_or_else(crate::cdb::invalid_opcode)
}

/// The data direction of `cdb` on device model `device`, if the model
/// implements it (one opcode can differ between models: 34h is PRE-FETCH
/// on a disk and READ POSITION on a tape).
#[must_use]
pub fn direction_of(device: DeviceType, cdb: &[u8]) -> Option<DataDirection> {
    lookup_for(device, cdb).ok().map(|row| row.direction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_grouped_by_opcode_and_unique() {
        for (i, a) in COMMANDS.iter().enumerate() {
            for b in &COMMANDS[i + 1..] {
                let shared = DeviceType::ALL
                    .into_iter()
                    .any(|d| a.devices.contains(d) && b.devices.contains(d));
                assert!(
                    a.opcode != b.opcode || a.service_action != b.service_action || !shared,
                    "duplicate row {}",
                    a.name
                );
                // The block models share a direction per opcode.
                let block = |r: &CommandDesc| !r.devices.contains(DeviceType::Tape);
                if a.opcode == b.opcode
                    && a.service_action == b.service_action
                    && block(a)
                    && block(b)
                {
                    assert_eq!(a.direction, b.direction, "{}", a.name);
                }
            }
            assert_eq!(a.usage[0], a.opcode, "{}", a.name);
            assert!(matches!(a.cdb_len, 6 | 10 | 12 | 16), "{}", a.name);
            assert!(
                a.usage[usize::from(a.cdb_len)..].iter().all(|&b| b == 0),
                "{}",
                a.name
            );
        }
        // Rows of one opcode must be adjacent for `find`.
        let mut seen = std::collections::HashSet::new();
        let mut last = None;
        for row in COMMANDS {
            if last != Some(row.opcode) {
                assert!(seen.insert(row.opcode), "{:#x} split", row.opcode);
            }
            last = Some(row.opcode);
        }
    }

    #[test]
    fn rejects_unknown_opcodes_and_service_actions() {
        use crate::sense::Asc;
        assert_eq!(
            lookup(&[0xff]).unwrap_err().asc,
            Asc::INVALID_COMMAND_OPERATION_CODE
        );
        assert_eq!(
            lookup(&[]).unwrap_err().asc,
            Asc::INVALID_COMMAND_OPERATION_CODE
        );
        let e = lookup(&[op::SERVICE_ACTION_IN_16, 0x1f]).unwrap_err();
        assert_eq!(e.asc, Asc::INVALID_FIELD_IN_CDB);
        assert_eq!(e.field.unwrap().byte, 1);
        assert_eq!(
            lookup(&[op::SERVICE_ACTION_IN_16, 0x10]).unwrap().name,
            "READ CAPACITY(16)"
        );
    }
}
