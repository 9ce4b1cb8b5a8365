//! Typed CDBs: decoding and encoding for every command the engine knows.
//!
//! [`Cdb::decode`] turns the bytes of a command descriptor block into a
//! [`Cdb`] value, or into the [`Sense`] the device server must return
//! (ILLEGAL REQUEST with INVALID COMMAND OPERATION CODE, or INVALID FIELD IN
//! CDB with a field pointer). [`Cdb::encode`] is the inverse, for tests,
//! fuzzers and embedders writing initiators; `decode(encode(x)) == x` for
//! every value (a property test checks this).
//!
//! Decoding never panics and never reads past the slice: the CDB length is
//! checked against the command table before any field is read.
//!
//! Field layouts cite SBC-4 (`sbc`) and SPC-4/5 (`spc`) section numbers.

use crate::sense::{Asc, Sense};
use crate::table::{self, Handler};

/// The size of a CDB form of READ, WRITE, VERIFY, etc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdbSize {
    /// 6-byte CDB.
    Six,
    /// 10-byte CDB.
    Ten,
    /// 12-byte CDB.
    Twelve,
    /// 16-byte CDB.
    Sixteen,
}

/// The fields shared by READ, WRITE, WRITE AND VERIFY and VERIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rw {
    /// Which CDB form.
    pub size: CdbSize,
    /// Logical block address.
    pub lba: u64,
    /// Transfer length (or verification length) in logical blocks. In the
    /// 6-byte form a wire value of 0 means 256 blocks and is decoded as 256.
    pub blocks: u32,
    /// RDPROTECT / WRPROTECT / VRPROTECT (3 bits).
    pub protect: u8,
    /// Disable page out.
    pub dpo: bool,
    /// Force unit access.
    pub fua: bool,
    /// BYTCHK (2 bits; VERIFY and WRITE AND VERIFY only).
    pub bytchk: u8,
    /// Group number (5 or 6 bits).
    pub group: u8,
}

/// The fields of SYNCHRONIZE CACHE and PRE-FETCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheRange {
    /// 10- or 16-byte form.
    pub size: CdbSize,
    /// First logical block.
    pub lba: u64,
    /// Number of blocks (0 = to the end of the medium).
    pub blocks: u32,
    /// Return status before the operation completes.
    pub immed: bool,
    /// Group number.
    pub group: u8,
}

/// The fields of WRITE SAME (10/16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteSame {
    /// 10- or 16-byte form.
    pub size: CdbSize,
    /// First logical block.
    pub lba: u64,
    /// Number of blocks (0 = to the end of the medium, if allowed by the
    /// block limits VPD page).
    pub blocks: u32,
    /// WRPROTECT.
    pub wrprotect: u8,
    /// ANCHOR.
    pub anchor: bool,
    /// UNMAP.
    pub unmap: bool,
    /// NDOB: no data-out buffer (16-byte form only).
    pub ndob: bool,
    /// Group number.
    pub group: u8,
}

/// The fields of WRITE ATOMIC (16) (SBC-4, opcode 9Ch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteAtomic {
    /// First logical block.
    pub lba: u64,
    /// ATOMIC BOUNDARY (0 = the whole transfer is one atomic write).
    pub boundary: u16,
    /// Transfer length in logical blocks.
    pub blocks: u16,
    /// WRPROTECT.
    pub wrprotect: u8,
    /// Disable page out.
    pub dpo: bool,
    /// Force unit access.
    pub fua: bool,
    /// Group number.
    pub group: u8,
}

/// A decoded command descriptor block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cdb {
    /// TEST UNIT READY (spc 6.47).
    TestUnitReady,
    /// REQUEST SENSE (spc 6.39).
    RequestSense {
        /// DESC: descriptor-format sense data wanted.
        desc: bool,
        /// Allocation length.
        alloc_len: u8,
    },
    /// INQUIRY (spc 6.6).
    Inquiry {
        /// EVPD: a vital product data page is wanted.
        evpd: bool,
        /// Page code (with EVPD).
        page: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// MODE SENSE (6) and (10) (spc 6.13, 6.14).
    ModeSense {
        /// The 10-byte form.
        long: bool,
        /// DBD: disable block descriptors.
        dbd: bool,
        /// LLBAA: long LBA block descriptors accepted (10-byte form).
        llbaa: bool,
        /// Page control: 0 current, 1 changeable, 2 default, 3 saved.
        pc: u8,
        /// Page code (3Fh = all pages).
        page: u8,
        /// Subpage code (FFh = all subpages).
        subpage: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// MODE SELECT (6) and (10) (spc 6.11, 6.12).
    ModeSelect {
        /// The 10-byte form.
        long: bool,
        /// PF: pages are in the standard format.
        pf: bool,
        /// SP: save pages.
        sp: bool,
        /// Parameter list length.
        param_len: u16,
    },
    /// LOG SENSE (spc 6.8).
    LogSense {
        /// SP: save parameters.
        sp: bool,
        /// Page control (2 bits).
        pc: u8,
        /// Page code.
        page: u8,
        /// Subpage code.
        subpage: u8,
        /// Parameter pointer.
        param_ptr: u16,
        /// Allocation length.
        alloc_len: u16,
    },
    /// REPORT LUNS (spc 6.33).
    ReportLuns {
        /// SELECT REPORT.
        select: u8,
        /// Allocation length.
        alloc_len: u32,
    },
    /// REPORT SUPPORTED OPERATION CODES (spc 6.35).
    ReportSupportedOpcodes {
        /// RCTD: return command timeouts descriptors.
        rctd: bool,
        /// REPORTING OPTIONS (3 bits).
        options: u8,
        /// REQUESTED OPERATION CODE.
        opcode: u8,
        /// REQUESTED SERVICE ACTION.
        service_action: u16,
        /// Allocation length.
        alloc_len: u32,
    },
    /// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (spc 6.36).
    ReportSupportedTmf {
        /// REPD: return extended parameter data.
        repd: bool,
        /// Allocation length.
        alloc_len: u32,
    },
    /// READ CAPACITY (10) (sbc 5.20).
    ReadCapacity10 {
        /// Logical block address (obsolete with PMI clear).
        lba: u32,
        /// PMI (obsolete).
        pmi: bool,
    },
    /// READ CAPACITY (16) (sbc 5.21).
    ReadCapacity16 {
        /// Allocation length.
        alloc_len: u32,
    },
    /// GET LBA STATUS (sbc 5.7).
    GetLbaStatus {
        /// Starting logical block address.
        lba: u64,
        /// Allocation length.
        alloc_len: u32,
    },
    /// READ (6/10/12/16) (sbc 5.12-5.16).
    Read(Rw),
    /// WRITE (6/10/12/16) (sbc 5.40-5.43).
    Write(Rw),
    /// WRITE AND VERIFY (10/12/16) (sbc 5.44-5.46).
    WriteAndVerify(Rw),
    /// ORWRITE (16) (sbc 5.9): OR the data-out buffer into the blocks.
    OrWrite(Rw),
    /// VERIFY (10/12/16) (sbc 5.33-5.35).
    Verify(Rw),
    /// WRITE SAME (10/16) (sbc 5.48, 5.49).
    WriteSame(WriteSame),
    /// WRITE ATOMIC (16) (sbc, opcode 9Ch).
    WriteAtomic(WriteAtomic),
    /// UNMAP (sbc 5.32).
    Unmap {
        /// ANCHOR.
        anchor: bool,
        /// Group number.
        group: u8,
        /// Parameter list length.
        param_len: u16,
    },
    /// COMPARE AND WRITE (sbc 5.2).
    CompareAndWrite {
        /// Logical block address.
        lba: u64,
        /// Number of logical blocks.
        blocks: u8,
        /// WRPROTECT.
        wrprotect: u8,
        /// Disable page out.
        dpo: bool,
        /// Force unit access.
        fua: bool,
        /// Group number.
        group: u8,
    },
    /// SYNCHRONIZE CACHE (10/16) (sbc 5.28, 5.29).
    SynchronizeCache(CacheRange),
    /// PRE-FETCH (10/16) (sbc 5.10, 5.11).
    PreFetch(CacheRange),
    /// START STOP UNIT (sbc 5.27).
    StartStopUnit {
        /// IMMED.
        immed: bool,
        /// POWER CONDITION MODIFIER (4 bits).
        modifier: u8,
        /// POWER CONDITION (4 bits).
        power_condition: u8,
        /// NO_FLUSH.
        no_flush: bool,
        /// LOEJ: load/eject.
        loej: bool,
        /// START.
        start: bool,
    },
    /// FORMAT UNIT (sbc 5.3).
    FormatUnit {
        /// FMTPINFO (2 bits).
        fmtpinfo: u8,
        /// LONGLIST.
        longlist: bool,
        /// FMTDATA: a parameter list follows.
        fmtdata: bool,
        /// CMPLST.
        cmplst: bool,
        /// DEFECT LIST FORMAT (3 bits).
        defect_list_format: u8,
    },
    /// READ DEFECT DATA (10/12) (sbc 5.17, 5.18).
    ReadDefectData {
        /// 10- or 12-byte form.
        size: CdbSize,
        /// REQ_PLIST.
        req_plist: bool,
        /// REQ_GLIST.
        req_glist: bool,
        /// DEFECT LIST FORMAT (3 bits).
        format: u8,
        /// Allocation length.
        alloc_len: u32,
    },
    /// PREVENT ALLOW MEDIUM REMOVAL (spc 6.13).
    PreventAllow {
        /// PREVENT (2 bits).
        prevent: u8,
    },
    /// REPORT TARGET PORT GROUPS (spc 6.36).
    ReportTargetPortGroups {
        /// PARAMETER DATA FORMAT (3 bits: 000b length only, 001b extended).
        format: u8,
        /// Allocation length.
        alloc_len: u32,
    },
    /// SET TARGET PORT GROUPS (spc 6.37).
    SetTargetPortGroups {
        /// Parameter list length.
        param_len: u32,
    },
    /// SANITIZE (sbc 5.30).
    Sanitize {
        /// IMMED.
        immed: bool,
        /// AUSE: allow EXIT FAILURE MODE after a failure.
        ause: bool,
        /// Service action (5 bits; 01h, 02h and 1Fh are in the table).
        service_action: u8,
        /// Parameter list length.
        param_len: u16,
    },
    /// EXTENDED COPY (LID1) (spc 6.4).
    ExtendedCopy {
        /// Parameter list length.
        param_len: u32,
    },
    /// RECEIVE COPY RESULTS (spc 6.18).
    ReceiveCopyResults {
        /// Service action (5 bits; 00h, 03h and 04h are in the table).
        service_action: u8,
        /// LIST IDENTIFIER.
        list_id: u8,
        /// Allocation length.
        alloc_len: u32,
    },
    /// POPULATE TOKEN (sbc 5.10): create a ROD token naming blocks of this
    /// logical unit.
    PopulateToken {
        /// LIST IDENTIFIER.
        list_id: u32,
        /// Parameter list length.
        param_len: u32,
    },
    /// WRITE USING TOKEN (sbc 5.50): write the blocks a ROD token names.
    WriteUsingToken {
        /// LIST IDENTIFIER.
        list_id: u32,
        /// Parameter list length.
        param_len: u32,
    },
    /// RECEIVE ROD TOKEN INFORMATION (spc 6.19): the result of a POPULATE
    /// TOKEN or WRITE USING TOKEN, and the token POPULATE TOKEN made.
    ReceiveRodTokenInformation {
        /// LIST IDENTIFIER.
        list_id: u32,
        /// Allocation length.
        alloc_len: u32,
    },
    /// READ TOC/PMA/ATIP (mmc 6.26).
    ReadToc {
        /// MSF: addresses as minute/second/frame instead of LBA.
        msf: bool,
        /// FORMAT (byte 2 bits 3-0, or the older bits 7-6 of the CONTROL
        /// byte when byte 2 holds 0).
        format: u8,
        /// TRACK/SESSION NUMBER.
        track: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// GET CONFIGURATION (mmc 6.6).
    GetConfiguration {
        /// RT: 00b all features, 01b current ones, 10b the one named.
        rt: u8,
        /// STARTING FEATURE NUMBER.
        start: u16,
        /// Allocation length.
        alloc_len: u16,
    },
    /// GET EVENT STATUS NOTIFICATION (mmc 6.7).
    GetEventStatus {
        /// POLLED (asynchronous operation is not supported).
        polled: bool,
        /// NOTIFICATION CLASS REQUEST bit mask.
        classes: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// READ DISC INFORMATION (mmc 6.22).
    ReadDiscInformation {
        /// DATA TYPE (000b standard disc information).
        data_type: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// READ TRACK INFORMATION (mmc 6.27).
    ReadTrackInformation {
        /// OPEN.
        open: bool,
        /// ADDRESS/NUMBER TYPE: 00b LBA, 01b track, 10b session.
        address_type: u8,
        /// LOGICAL BLOCK ADDRESS/TRACK/SESSION NUMBER.
        address: u32,
        /// Allocation length.
        alloc_len: u16,
    },
    /// MECHANISM STATUS (mmc 6.11).
    MechanismStatus {
        /// Allocation length.
        alloc_len: u16,
    },
    /// REWIND (ssc 7.6).
    Rewind {
        /// IMMED: return status before the medium is positioned.
        immed: bool,
    },
    /// READ BLOCK LIMITS (ssc 7.4).
    ReadBlockLimits,
    /// READ(6) on a sequential-access device (ssc 7.3).
    TapeRead {
        /// SILI: suppress incorrect-length indication.
        sili: bool,
        /// FIXED: `length` counts blocks of the mode block length, not
        /// bytes of one variable-length block.
        fixed: bool,
        /// TRANSFER LENGTH (24 bits).
        length: u32,
    },
    /// WRITE(6) on a sequential-access device (ssc 7.13).
    TapeWrite {
        /// FIXED, as for [`Cdb::TapeRead`].
        fixed: bool,
        /// TRANSFER LENGTH (24 bits).
        length: u32,
    },
    /// WRITE FILEMARKS(6) (ssc 7.14).
    WriteFilemarks {
        /// WSMK: write setmarks (not supported).
        wsmk: bool,
        /// IMMED.
        immed: bool,
        /// FILEMARK COUNT (24 bits).
        count: u32,
    },
    /// SPACE(6) (ssc 7.9).
    Space {
        /// CODE: 0h blocks, 1h filemarks, 3h end of data.
        code: u8,
        /// COUNT, a signed 24-bit value (negative spaces backward).
        count: i32,
    },
    /// ERASE(6) (ssc 7.1).
    Erase {
        /// IMMED.
        immed: bool,
        /// LONG.
        long: bool,
    },
    /// LOAD UNLOAD (ssc 7.2).
    LoadUnload {
        /// IMMED.
        immed: bool,
        /// HOLD (not supported).
        hold: bool,
        /// EOT: position at the end of the medium before unloading.
        eot: bool,
        /// RETEN: retension.
        reten: bool,
        /// LOAD: load (1) or unload (0).
        load: bool,
    },
    /// LOCATE(10) (ssc 7.5).
    Locate {
        /// BT: the address is a device-specific block address.
        bt: bool,
        /// CP: change partition.
        cp: bool,
        /// IMMED.
        immed: bool,
        /// LOGICAL OBJECT IDENTIFIER.
        block: u32,
        /// PARTITION.
        partition: u8,
    },
    /// READ POSITION (ssc 7.7).
    ReadPosition {
        /// SERVICE ACTION (5 bits): 00h/01h short form, 06h long form.
        service_action: u8,
        /// Allocation length (the short form ignores it).
        alloc_len: u16,
    },
    /// PERSISTENT RESERVE IN (spc 6.15).
    PersistentReserveIn {
        /// Service action (5 bits; 00h-03h are in the table).
        service_action: u8,
        /// Allocation length.
        alloc_len: u16,
    },
    /// PERSISTENT RESERVE OUT (spc 6.16).
    PersistentReserveOut {
        /// Service action (5 bits; 00h-08h are in the table).
        service_action: u8,
        /// SCOPE (4 bits; 0h = logical unit).
        scope: u8,
        /// TYPE (4 bits).
        pr_type: u8,
        /// Parameter list length.
        param_len: u32,
    },
    /// RESERVE (6) and (10) (SPC-2 7.21, 7.22).
    Reserve {
        /// The 10-byte form.
        long: bool,
        /// 3RDPTY: third-party reservation (10-byte form).
        third_party: bool,
        /// LONGID (10-byte form).
        long_id: bool,
        /// THIRD-PARTY DEVICE ID (10-byte form).
        third_party_id: u8,
        /// Parameter list length (10-byte form).
        param_len: u16,
    },
    /// RELEASE (6) and (10) (SPC-2 7.17, 7.18).
    Release {
        /// The 10-byte form.
        long: bool,
        /// 3RDPTY: third-party release (10-byte form).
        third_party: bool,
        /// LONGID (10-byte form).
        long_id: bool,
        /// THIRD-PARTY DEVICE ID (10-byte form).
        third_party_id: u8,
        /// Parameter list length (10-byte form).
        param_len: u16,
    },
}

/// The big-endian field readers of every CDB and parameter list parser:
/// `b[at..]` must hold the field (callers check lengths first).
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be24(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, b[at], b[at + 1], b[at + 2]])
}
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}
fn bit(b: u8, n: u8) -> bool {
    b & (1 << n) != 0
}
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
fn put24(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 3].copy_from_slice(&v.to_be_bytes()[1..]);
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
fn flag(v: bool, n: u8) -> u8 {
    u8::from(v) << n
}

/// Opcodes of the commands in the table (SPC-4 annex D).
pub mod opcode {
    #![allow(missing_docs)]
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const FORMAT_UNIT: u8 = 0x04;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0a;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SELECT_6: u8 = 0x15;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const START_STOP_UNIT: u8 = 0x1b;
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const WRITE_AND_VERIFY_10: u8 = 0x2e;
    pub const VERIFY_10: u8 = 0x2f;
    pub const PRE_FETCH_10: u8 = 0x34;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const READ_DEFECT_DATA_10: u8 = 0x37;
    pub const WRITE_SAME_10: u8 = 0x41;
    pub const UNMAP: u8 = 0x42;
    pub const SANITIZE: u8 = 0x48;
    pub const LOG_SENSE: u8 = 0x4d;
    pub const MODE_SELECT_10: u8 = 0x55;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const EXTENDED_COPY: u8 = 0x83;
    pub const RECEIVE_COPY_RESULTS: u8 = 0x84;
    pub const READ_16: u8 = 0x88;
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    pub const WRITE_16: u8 = 0x8a;
    pub const ORWRITE_16: u8 = 0x8b;
    pub const WRITE_AND_VERIFY_16: u8 = 0x8e;
    pub const VERIFY_16: u8 = 0x8f;
    pub const PRE_FETCH_16: u8 = 0x90;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const WRITE_SAME_16: u8 = 0x93;
    pub const WRITE_ATOMIC_16: u8 = 0x9c;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const REPORT_LUNS: u8 = 0xa0;
    pub const MAINTENANCE_IN: u8 = 0xa3;
    pub const MAINTENANCE_OUT: u8 = 0xa4;
    pub const READ_12: u8 = 0xa8;
    pub const WRITE_12: u8 = 0xaa;
    pub const WRITE_AND_VERIFY_12: u8 = 0xae;
    pub const VERIFY_12: u8 = 0xaf;
    pub const READ_DEFECT_DATA_12: u8 = 0xb7;
    pub const RESERVE_6: u8 = 0x16;
    pub const RELEASE_6: u8 = 0x17;
    pub const RESERVE_10: u8 = 0x56;
    pub const RELEASE_10: u8 = 0x57;
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5e;
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5f;
    // MMC-6 (CD/DVD devices).
    pub const READ_TOC: u8 = 0x43;
    pub const GET_CONFIGURATION: u8 = 0x46;
    pub const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4a;
    pub const READ_DISC_INFORMATION: u8 = 0x51;
    pub const READ_TRACK_INFORMATION: u8 = 0x52;
    pub const MECHANISM_STATUS: u8 = 0xbd;
    // SSC-3 (sequential-access devices); several share a disk opcode.
    pub const REWIND: u8 = 0x01;
    pub const READ_BLOCK_LIMITS: u8 = 0x05;
    pub const WRITE_FILEMARKS_6: u8 = 0x10;
    pub const SPACE_6: u8 = 0x11;
    pub const ERASE_6: u8 = 0x19;
    pub const LOAD_UNLOAD: u8 = 0x1b;
    pub const LOCATE_10: u8 = 0x2b;
    pub const READ_POSITION: u8 = 0x34;

    /// PERSISTENT RESERVE IN: READ KEYS.
    pub const SA_PRIN_READ_KEYS: u16 = 0x00;
    /// PERSISTENT RESERVE IN: READ RESERVATION.
    pub const SA_PRIN_READ_RESERVATION: u16 = 0x01;
    /// PERSISTENT RESERVE IN: REPORT CAPABILITIES.
    pub const SA_PRIN_REPORT_CAPABILITIES: u16 = 0x02;
    /// PERSISTENT RESERVE IN: READ FULL STATUS.
    pub const SA_PRIN_READ_FULL_STATUS: u16 = 0x03;
    /// PERSISTENT RESERVE OUT: REGISTER.
    pub const SA_PROUT_REGISTER: u16 = 0x00;
    /// PERSISTENT RESERVE OUT: RESERVE.
    pub const SA_PROUT_RESERVE: u16 = 0x01;
    /// PERSISTENT RESERVE OUT: RELEASE.
    pub const SA_PROUT_RELEASE: u16 = 0x02;
    /// PERSISTENT RESERVE OUT: CLEAR.
    pub const SA_PROUT_CLEAR: u16 = 0x03;
    /// PERSISTENT RESERVE OUT: PREEMPT.
    pub const SA_PROUT_PREEMPT: u16 = 0x04;
    /// PERSISTENT RESERVE OUT: PREEMPT AND ABORT.
    pub const SA_PROUT_PREEMPT_AND_ABORT: u16 = 0x05;
    /// PERSISTENT RESERVE OUT: REGISTER AND IGNORE EXISTING KEY.
    pub const SA_PROUT_REGISTER_AND_IGNORE_EXISTING_KEY: u16 = 0x06;
    /// PERSISTENT RESERVE OUT: REGISTER AND MOVE.
    pub const SA_PROUT_REGISTER_AND_MOVE: u16 = 0x07;
    /// PERSISTENT RESERVE OUT: REPLACE LOST RESERVATION.
    pub const SA_PROUT_REPLACE_LOST_RESERVATION: u16 = 0x08;

    /// SERVICE ACTION IN (16): READ CAPACITY (16).
    pub const SA_READ_CAPACITY_16: u16 = 0x10;
    /// SERVICE ACTION IN (16): GET LBA STATUS.
    pub const SA_GET_LBA_STATUS: u16 = 0x12;
    /// MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES.
    pub const SA_REPORT_SUPPORTED_OPCODES: u16 = 0x0c;
    /// MAINTENANCE IN: REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS.
    pub const SA_REPORT_SUPPORTED_TMF: u16 = 0x0d;
    /// MAINTENANCE IN: REPORT TARGET PORT GROUPS.
    pub const SA_REPORT_TARGET_PORT_GROUPS: u16 = 0x0a;
    /// MAINTENANCE OUT: SET TARGET PORT GROUPS.
    pub const SA_SET_TARGET_PORT_GROUPS: u16 = 0x0a;
    /// SANITIZE: OVERWRITE.
    pub const SA_SANITIZE_OVERWRITE: u16 = 0x01;
    /// SANITIZE: BLOCK ERASE.
    pub const SA_SANITIZE_BLOCK_ERASE: u16 = 0x02;
    /// SANITIZE: EXIT FAILURE MODE.
    pub const SA_SANITIZE_EXIT_FAILURE_MODE: u16 = 0x1f;
    /// EXTENDED COPY: LID1 parameter list.
    pub const SA_EXTENDED_COPY_LID1: u16 = 0x00;
    /// THIRD-PARTY COPY OUT: POPULATE TOKEN.
    pub const SA_POPULATE_TOKEN: u16 = 0x10;
    /// THIRD-PARTY COPY OUT: WRITE USING TOKEN.
    pub const SA_WRITE_USING_TOKEN: u16 = 0x11;
    /// THIRD-PARTY COPY IN: RECEIVE ROD TOKEN INFORMATION.
    pub const SA_RECEIVE_ROD_TOKEN_INFORMATION: u16 = 0x07;
    /// RECEIVE COPY RESULTS: COPY STATUS (LID1).
    pub const SA_RCR_COPY_STATUS: u16 = 0x00;
    /// RECEIVE COPY RESULTS: OPERATING PARAMETERS.
    pub const SA_RCR_OPERATING_PARAMETERS: u16 = 0x03;
    /// RECEIVE COPY RESULTS: FAILED SEGMENT DETAILS (LID1).
    pub const SA_RCR_FAILED_SEGMENT_DETAILS: u16 = 0x04;
}

/// Check the CONTROL byte (the last CDB byte): we support neither NACA
/// (no ACA) nor linked commands, so either bit set is an invalid field
/// (SAM-5 §5.2, SPC-4 table 16).
fn check_control(cdb: &[u8], len: usize) -> Result<(), Sense> {
    let control = cdb[len - 1];
    if bit(control, 2) {
        return Err(Sense::invalid_cdb_field(
            u16::try_from(len - 1).unwrap_or(0),
            Some(2),
        ));
    }
    if bit(control, 0) {
        return Err(Sense::invalid_cdb_field(
            u16::try_from(len - 1).unwrap_or(0),
            Some(0),
        ));
    }
    Ok(())
}

fn rw(size: CdbSize, c: &[u8], with_bytchk: bool) -> Rw {
    let (lba, blocks, group) = match size {
        CdbSize::Six => {
            let lba = u64::from(be24(c, 1) & 0x1f_ffff);
            let blocks = if c[4] == 0 { 256 } else { u32::from(c[4]) };
            (lba, blocks, 0)
        }
        CdbSize::Ten => (u64::from(be32(c, 2)), u32::from(be16(c, 7)), c[6] & 0x3f),
        CdbSize::Twelve => (u64::from(be32(c, 2)), be32(c, 6), c[10] & 0x3f),
        CdbSize::Sixteen => (be64(c, 2), be32(c, 10), c[14] & 0x3f),
    };
    let b1 = if size == CdbSize::Six { 0 } else { c[1] };
    Rw {
        size,
        lba,
        blocks,
        protect: b1 >> 5,
        dpo: bit(b1, 4),
        fua: bit(b1, 3),
        bytchk: if with_bytchk { (b1 >> 1) & 3 } else { 0 },
        group,
    }
}

// Encoding truncates each value to the width of its CDB field.
#[allow(clippy::cast_possible_truncation)]
fn rw_encode(op: u8, r: &Rw, out: &mut [u8]) {
    out[0] = op;
    if r.size == CdbSize::Six {
        put24(out, 1, u32::try_from(r.lba).unwrap_or(0) & 0x1f_ffff);
        out[4] = if r.blocks == 256 { 0 } else { r.blocks as u8 };
        return;
    }
    out[1] = (r.protect << 5) | flag(r.dpo, 4) | flag(r.fua, 3) | ((r.bytchk & 3) << 1);
    match r.size {
        CdbSize::Ten => {
            put32(out, 2, r.lba as u32);
            out[6] = r.group & 0x3f;
            put16(out, 7, r.blocks as u16);
        }
        CdbSize::Twelve => {
            put32(out, 2, r.lba as u32);
            put32(out, 6, r.blocks);
            out[10] = r.group & 0x3f;
        }
        CdbSize::Sixteen => {
            put64(out, 2, r.lba);
            put32(out, 10, r.blocks);
            out[14] = r.group & 0x3f;
        }
        CdbSize::Six => {}
    }
}

fn size_of_len(len: usize) -> CdbSize {
    match len {
        6 => CdbSize::Six,
        10 => CdbSize::Ten,
        12 => CdbSize::Twelve,
        _ => CdbSize::Sixteen,
    }
}

impl Cdb {
    /// Decode `cdb`.
    ///
    /// # Errors
    ///
    /// The sense data the device server returns: INVALID COMMAND OPERATION
    /// CODE for an opcode or service action not in the command table,
    /// INVALID FIELD IN CDB (with a field pointer) for a CDB that is too
    /// short or has an unsupported field value.
    pub fn decode(cdb: &[u8]) -> Result<Self, Sense> {
        Self::decode_row(table::lookup(cdb)?, cdb)
    }

    /// Decode `cdb` as the device model `device` reads it (a disk and a
    /// CD/DVD device implement different commands).
    ///
    /// # Errors
    ///
    /// As [`Cdb::decode`].
    pub fn decode_for(device: crate::device::DeviceType, cdb: &[u8]) -> Result<Self, Sense> {
        Self::decode_row(table::lookup_for(device, cdb)?, cdb)
    }

    /// Decode `cdb` whose table row the caller already looked up.
    ///
    /// # Errors
    ///
    /// As [`Cdb::decode`], less the opcode lookup.
    pub fn decode_row(desc: &table::CommandDesc, cdb: &[u8]) -> Result<Self, Sense> {
        let len = usize::from(desc.cdb_len);
        if cdb.len() < len {
            return Err(Sense::invalid_cdb_field(
                u16::try_from(cdb.len()).unwrap_or(0),
                None,
            ));
        }
        let c = &cdb[..len];
        check_control(c, len)?;
        Ok(match desc.handler {
            Handler::TestUnitReady => Cdb::TestUnitReady,
            Handler::RequestSense => Cdb::RequestSense {
                desc: bit(c[1], 0),
                alloc_len: c[4],
            },
            Handler::Inquiry => Cdb::Inquiry {
                evpd: bit(c[1], 0),
                page: c[2],
                alloc_len: be16(c, 3),
            },
            Handler::ModeSense => {
                let long = len == 10;
                Cdb::ModeSense {
                    long,
                    dbd: bit(c[1], 3),
                    llbaa: long && bit(c[1], 4),
                    pc: c[2] >> 6,
                    page: c[2] & 0x3f,
                    subpage: c[3],
                    alloc_len: if long { be16(c, 7) } else { u16::from(c[4]) },
                }
            }
            Handler::ModeSelect => {
                let long = len == 10;
                Cdb::ModeSelect {
                    long,
                    pf: bit(c[1], 4),
                    sp: bit(c[1], 0),
                    param_len: if long { be16(c, 7) } else { u16::from(c[4]) },
                }
            }
            Handler::LogSense => Cdb::LogSense {
                sp: bit(c[1], 0),
                pc: c[2] >> 6,
                page: c[2] & 0x3f,
                subpage: c[3],
                param_ptr: be16(c, 5),
                alloc_len: be16(c, 7),
            },
            Handler::ReportLuns => Cdb::ReportLuns {
                select: c[2],
                alloc_len: be32(c, 6),
            },
            Handler::ReportSupportedOpcodes => Cdb::ReportSupportedOpcodes {
                rctd: bit(c[2], 7),
                options: c[2] & 7,
                opcode: c[3],
                service_action: be16(c, 4),
                alloc_len: be32(c, 6),
            },
            Handler::ReportSupportedTmf => Cdb::ReportSupportedTmf {
                repd: bit(c[2], 7),
                alloc_len: be32(c, 6),
            },
            Handler::ReadCapacity10 => Cdb::ReadCapacity10 {
                lba: be32(c, 2),
                pmi: bit(c[8], 0),
            },
            Handler::ReadCapacity16 => Cdb::ReadCapacity16 {
                alloc_len: be32(c, 10),
            },
            Handler::GetLbaStatus => Cdb::GetLbaStatus {
                lba: be64(c, 2),
                alloc_len: be32(c, 10),
            },
            Handler::Read => Cdb::Read(rw(size_of_len(len), c, false)),
            Handler::Write => Cdb::Write(rw(size_of_len(len), c, false)),
            Handler::WriteAndVerify => Cdb::WriteAndVerify(rw(size_of_len(len), c, true)),
            Handler::OrWrite => Cdb::OrWrite(rw(size_of_len(len), c, false)),
            Handler::Verify => Cdb::Verify(rw(size_of_len(len), c, true)),
            Handler::WriteSame => {
                let long = len == 16;
                Cdb::WriteSame(WriteSame {
                    size: size_of_len(len),
                    lba: if long {
                        be64(c, 2)
                    } else {
                        u64::from(be32(c, 2))
                    },
                    blocks: if long {
                        be32(c, 10)
                    } else {
                        u32::from(be16(c, 7))
                    },
                    wrprotect: c[1] >> 5,
                    anchor: bit(c[1], 4),
                    unmap: bit(c[1], 3),
                    ndob: long && bit(c[1], 0),
                    group: if long { c[14] & 0x3f } else { c[6] & 0x3f },
                })
            }
            Handler::WriteAtomic => Cdb::WriteAtomic(WriteAtomic {
                lba: be64(c, 2),
                boundary: be16(c, 10),
                blocks: be16(c, 12),
                wrprotect: c[1] >> 5,
                dpo: bit(c[1], 4),
                fua: bit(c[1], 3),
                group: c[14] & 0x3f,
            }),
            Handler::Unmap => Cdb::Unmap {
                anchor: bit(c[1], 0),
                group: c[6] & 0x3f,
                param_len: be16(c, 7),
            },
            Handler::CompareAndWrite => Cdb::CompareAndWrite {
                lba: be64(c, 2),
                blocks: c[13],
                wrprotect: c[1] >> 5,
                dpo: bit(c[1], 4),
                fua: bit(c[1], 3),
                group: c[14] & 0x3f,
            },
            Handler::SynchronizeCache | Handler::PreFetch => {
                let long = len == 16;
                let range = CacheRange {
                    size: size_of_len(len),
                    lba: if long {
                        be64(c, 2)
                    } else {
                        u64::from(be32(c, 2))
                    },
                    blocks: if long {
                        be32(c, 10)
                    } else {
                        u32::from(be16(c, 7))
                    },
                    immed: bit(c[1], 1),
                    group: if long { c[14] & 0x3f } else { c[6] & 0x3f },
                };
                if desc.handler == Handler::PreFetch {
                    Cdb::PreFetch(range)
                } else {
                    Cdb::SynchronizeCache(range)
                }
            }
            Handler::StartStopUnit => Cdb::StartStopUnit {
                immed: bit(c[1], 0),
                modifier: c[3] & 0x0f,
                power_condition: c[4] >> 4,
                no_flush: bit(c[4], 2),
                loej: bit(c[4], 1),
                start: bit(c[4], 0),
            },
            Handler::FormatUnit => Cdb::FormatUnit {
                fmtpinfo: c[1] >> 6,
                longlist: bit(c[1], 5),
                fmtdata: bit(c[1], 4),
                cmplst: bit(c[1], 3),
                defect_list_format: c[1] & 7,
            },
            Handler::ReadDefectData => {
                let long = len == 12;
                let flags = if long { c[1] } else { c[2] };
                Cdb::ReadDefectData {
                    size: size_of_len(len),
                    req_plist: bit(flags, 4),
                    req_glist: bit(flags, 3),
                    format: flags & 7,
                    alloc_len: if long {
                        be32(c, 6)
                    } else {
                        u32::from(be16(c, 7))
                    },
                }
            }
            Handler::PreventAllow => Cdb::PreventAllow {
                prevent: c[4] & 0x03,
            },
            Handler::ReportTargetPortGroups => Cdb::ReportTargetPortGroups {
                format: c[1] >> 5,
                alloc_len: be32(c, 6),
            },
            Handler::SetTargetPortGroups => Cdb::SetTargetPortGroups {
                param_len: be32(c, 6),
            },
            Handler::Sanitize => {
                // Byte 1 bit 6 (ZNR, for zoned devices) and bytes 2-6 are
                // reserved here.
                if c[1] & 0x40 != 0 {
                    return Err(Sense::invalid_cdb_field(1, Some(6)));
                }
                if let Some(at) = (2u16..7).find(|&i| c[usize::from(i)] != 0) {
                    return Err(Sense::invalid_cdb_field(at, None));
                }
                Cdb::Sanitize {
                    immed: bit(c[1], 7),
                    ause: bit(c[1], 5),
                    service_action: c[1] & 0x1f,
                    param_len: be16(c, 7),
                }
            }
            Handler::ExtendedCopy => Cdb::ExtendedCopy {
                param_len: be32(c, 10),
            },
            Handler::ReceiveCopyResults => Cdb::ReceiveCopyResults {
                service_action: c[1] & 0x1f,
                list_id: c[2],
                alloc_len: be32(c, 10),
            },
            Handler::PopulateToken => Cdb::PopulateToken {
                list_id: be32(c, 6),
                param_len: be32(c, 10),
            },
            Handler::WriteUsingToken => Cdb::WriteUsingToken {
                list_id: be32(c, 6),
                param_len: be32(c, 10),
            },
            Handler::ReceiveRodTokenInformation => Cdb::ReceiveRodTokenInformation {
                list_id: be32(c, 2),
                alloc_len: be32(c, 10),
            },
            Handler::ReadToc => Cdb::ReadToc {
                msf: bit(c[1], 1),
                format: match c[2] & 0x0f {
                    0 => c[9] >> 6,
                    f => f,
                },
                track: c[6],
                alloc_len: be16(c, 7),
            },
            Handler::GetConfiguration => Cdb::GetConfiguration {
                rt: c[1] & 0x03,
                start: be16(c, 2),
                alloc_len: be16(c, 7),
            },
            Handler::GetEventStatus => Cdb::GetEventStatus {
                polled: bit(c[1], 0),
                classes: c[4],
                alloc_len: be16(c, 7),
            },
            Handler::ReadDiscInformation => Cdb::ReadDiscInformation {
                data_type: c[1] & 0x07,
                alloc_len: be16(c, 7),
            },
            Handler::ReadTrackInformation => Cdb::ReadTrackInformation {
                open: bit(c[1], 2),
                address_type: c[1] & 0x03,
                address: be32(c, 2),
                alloc_len: be16(c, 7),
            },
            Handler::MechanismStatus => Cdb::MechanismStatus {
                alloc_len: be16(c, 8),
            },
            Handler::Rewind => Cdb::Rewind {
                immed: bit(c[1], 0),
            },
            Handler::ReadBlockLimits => Cdb::ReadBlockLimits,
            Handler::TapeRead => Cdb::TapeRead {
                sili: bit(c[1], 1),
                fixed: bit(c[1], 0),
                length: be24(c, 2),
            },
            Handler::TapeWrite => Cdb::TapeWrite {
                fixed: bit(c[1], 0),
                length: be24(c, 2),
            },
            Handler::WriteFilemarks => Cdb::WriteFilemarks {
                wsmk: bit(c[1], 1),
                immed: bit(c[1], 0),
                count: be24(c, 2),
            },
            Handler::Space => Cdb::Space {
                code: c[1] & 0x0f,
                // Sign-extend the 24-bit two's complement count.
                #[allow(clippy::cast_possible_wrap)]
                count: ((be24(c, 2) << 8) as i32) >> 8,
            },
            Handler::Erase => Cdb::Erase {
                immed: bit(c[1], 1),
                long: bit(c[1], 0),
            },
            Handler::LoadUnload => Cdb::LoadUnload {
                immed: bit(c[1], 0),
                hold: bit(c[4], 3),
                eot: bit(c[4], 2),
                reten: bit(c[4], 1),
                load: bit(c[4], 0),
            },
            Handler::Locate => Cdb::Locate {
                bt: bit(c[1], 2),
                cp: bit(c[1], 1),
                immed: bit(c[1], 0),
                block: be32(c, 3),
                partition: c[8],
            },
            Handler::ReadPosition => Cdb::ReadPosition {
                service_action: c[1] & 0x1f,
                alloc_len: be16(c, 7),
            },
            Handler::PersistentReserveIn => Cdb::PersistentReserveIn {
                service_action: c[1] & 0x1f,
                alloc_len: be16(c, 7),
            },
            Handler::PersistentReserveOut => Cdb::PersistentReserveOut {
                service_action: c[1] & 0x1f,
                scope: c[2] >> 4,
                pr_type: c[2] & 0x0f,
                param_len: be32(c, 5),
            },
            Handler::Reserve | Handler::Release => {
                let long = len == 10;
                let (third_party, long_id, third_party_id, param_len) = if long {
                    (bit(c[1], 4), bit(c[1], 1), c[3], be16(c, 7))
                } else {
                    (false, false, 0, 0)
                };
                if desc.handler == Handler::Reserve {
                    Cdb::Reserve {
                        long,
                        third_party,
                        long_id,
                        third_party_id,
                        param_len,
                    }
                } else {
                    Cdb::Release {
                        long,
                        third_party,
                        long_id,
                        third_party_id,
                        param_len,
                    }
                }
            }
        })
    }

    /// Encode into a CDB of the command's length; returns the bytes (padded
    /// to 32, with the length) as a [`RawCdb`](crate::engine::RawCdb).
    ///
    /// Values wider than their CDB field are truncated to it.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn encode(&self) -> crate::engine::RawCdb {
        use opcode as op;
        let mut b = [0u8; 16];
        let len = match *self {
            Cdb::TestUnitReady => 6,
            Cdb::RequestSense { desc, alloc_len } => {
                b[0] = op::REQUEST_SENSE;
                b[1] = flag(desc, 0);
                b[4] = alloc_len;
                6
            }
            Cdb::Inquiry {
                evpd,
                page,
                alloc_len,
            } => {
                b[0] = op::INQUIRY;
                b[1] = flag(evpd, 0);
                b[2] = page;
                put16(&mut b, 3, alloc_len);
                6
            }
            Cdb::ModeSense {
                long,
                dbd,
                llbaa,
                pc,
                page,
                subpage,
                alloc_len,
            } => {
                b[1] = flag(dbd, 3) | flag(llbaa && long, 4);
                b[2] = (pc << 6) | (page & 0x3f);
                b[3] = subpage;
                if long {
                    b[0] = op::MODE_SENSE_10;
                    put16(&mut b, 7, alloc_len);
                    10
                } else {
                    b[0] = op::MODE_SENSE_6;
                    b[4] = alloc_len as u8;
                    6
                }
            }
            Cdb::ModeSelect {
                long,
                pf,
                sp,
                param_len,
            } => {
                b[1] = flag(pf, 4) | flag(sp, 0);
                if long {
                    b[0] = op::MODE_SELECT_10;
                    put16(&mut b, 7, param_len);
                    10
                } else {
                    b[0] = op::MODE_SELECT_6;
                    b[4] = param_len as u8;
                    6
                }
            }
            Cdb::LogSense {
                sp,
                pc,
                page,
                subpage,
                param_ptr,
                alloc_len,
            } => {
                b[0] = op::LOG_SENSE;
                b[1] = flag(sp, 0);
                b[2] = (pc << 6) | (page & 0x3f);
                b[3] = subpage;
                put16(&mut b, 5, param_ptr);
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::ReportLuns { select, alloc_len } => {
                b[0] = op::REPORT_LUNS;
                b[2] = select;
                put32(&mut b, 6, alloc_len);
                12
            }
            Cdb::ReportSupportedOpcodes {
                rctd,
                options,
                opcode,
                service_action,
                alloc_len,
            } => {
                b[0] = op::MAINTENANCE_IN;
                b[1] = op::SA_REPORT_SUPPORTED_OPCODES as u8;
                b[2] = flag(rctd, 7) | (options & 7);
                b[3] = opcode;
                put16(&mut b, 4, service_action);
                put32(&mut b, 6, alloc_len);
                12
            }
            Cdb::ReportSupportedTmf { repd, alloc_len } => {
                b[0] = op::MAINTENANCE_IN;
                b[1] = op::SA_REPORT_SUPPORTED_TMF as u8;
                b[2] = flag(repd, 7);
                put32(&mut b, 6, alloc_len);
                12
            }
            Cdb::ReadCapacity10 { lba, pmi } => {
                b[0] = op::READ_CAPACITY_10;
                put32(&mut b, 2, lba);
                b[8] = flag(pmi, 0);
                10
            }
            Cdb::ReadCapacity16 { alloc_len } => {
                b[0] = op::SERVICE_ACTION_IN_16;
                b[1] = op::SA_READ_CAPACITY_16 as u8;
                put32(&mut b, 10, alloc_len);
                16
            }
            Cdb::GetLbaStatus { lba, alloc_len } => {
                b[0] = op::SERVICE_ACTION_IN_16;
                b[1] = op::SA_GET_LBA_STATUS as u8;
                put64(&mut b, 2, lba);
                put32(&mut b, 10, alloc_len);
                16
            }
            Cdb::Read(ref r) => {
                let o = match r.size {
                    CdbSize::Six => op::READ_6,
                    CdbSize::Ten => op::READ_10,
                    CdbSize::Twelve => op::READ_12,
                    CdbSize::Sixteen => op::READ_16,
                };
                rw_encode(o, r, &mut b);
                cdb_len(r.size)
            }
            Cdb::Write(ref r) => {
                let o = match r.size {
                    CdbSize::Six => op::WRITE_6,
                    CdbSize::Ten => op::WRITE_10,
                    CdbSize::Twelve => op::WRITE_12,
                    CdbSize::Sixteen => op::WRITE_16,
                };
                rw_encode(o, r, &mut b);
                cdb_len(r.size)
            }
            Cdb::OrWrite(ref r) => {
                rw_encode(op::ORWRITE_16, r, &mut b);
                16
            }
            Cdb::WriteAndVerify(ref r) => {
                let o = match r.size {
                    CdbSize::Twelve => op::WRITE_AND_VERIFY_12,
                    CdbSize::Sixteen => op::WRITE_AND_VERIFY_16,
                    _ => op::WRITE_AND_VERIFY_10,
                };
                rw_encode(o, r, &mut b);
                cdb_len(r.size)
            }
            Cdb::Verify(ref r) => {
                let o = match r.size {
                    CdbSize::Twelve => op::VERIFY_12,
                    CdbSize::Sixteen => op::VERIFY_16,
                    _ => op::VERIFY_10,
                };
                rw_encode(o, r, &mut b);
                cdb_len(r.size)
            }
            Cdb::WriteSame(ref w) => {
                b[1] = (w.wrprotect << 5) | flag(w.anchor, 4) | flag(w.unmap, 3);
                if w.size == CdbSize::Sixteen {
                    b[0] = op::WRITE_SAME_16;
                    b[1] |= flag(w.ndob, 0);
                    put64(&mut b, 2, w.lba);
                    put32(&mut b, 10, w.blocks);
                    b[14] = w.group & 0x3f;
                    16
                } else {
                    b[0] = op::WRITE_SAME_10;
                    put32(&mut b, 2, w.lba as u32);
                    b[6] = w.group & 0x3f;
                    put16(&mut b, 7, w.blocks as u16);
                    10
                }
            }
            Cdb::WriteAtomic(ref w) => {
                b[0] = op::WRITE_ATOMIC_16;
                b[1] = (w.wrprotect << 5) | flag(w.dpo, 4) | flag(w.fua, 3);
                put64(&mut b, 2, w.lba);
                put16(&mut b, 10, w.boundary);
                put16(&mut b, 12, w.blocks);
                b[14] = w.group & 0x3f;
                16
            }
            Cdb::Unmap {
                anchor,
                group,
                param_len,
            } => {
                b[0] = op::UNMAP;
                b[1] = flag(anchor, 0);
                b[6] = group & 0x3f;
                put16(&mut b, 7, param_len);
                10
            }
            Cdb::CompareAndWrite {
                lba,
                blocks,
                wrprotect,
                dpo,
                fua,
                group,
            } => {
                b[0] = op::COMPARE_AND_WRITE;
                b[1] = (wrprotect << 5) | flag(dpo, 4) | flag(fua, 3);
                put64(&mut b, 2, lba);
                b[13] = blocks;
                b[14] = group & 0x3f;
                16
            }
            Cdb::SynchronizeCache(ref r) | Cdb::PreFetch(ref r) => {
                let prefetch = matches!(self, Cdb::PreFetch(_));
                b[1] = flag(r.immed, 1);
                if r.size == CdbSize::Sixteen {
                    b[0] = if prefetch {
                        op::PRE_FETCH_16
                    } else {
                        op::SYNCHRONIZE_CACHE_16
                    };
                    put64(&mut b, 2, r.lba);
                    put32(&mut b, 10, r.blocks);
                    b[14] = r.group & 0x3f;
                    16
                } else {
                    b[0] = if prefetch {
                        op::PRE_FETCH_10
                    } else {
                        op::SYNCHRONIZE_CACHE_10
                    };
                    put32(&mut b, 2, r.lba as u32);
                    b[6] = r.group & 0x3f;
                    put16(&mut b, 7, r.blocks as u16);
                    10
                }
            }
            Cdb::StartStopUnit {
                immed,
                modifier,
                power_condition,
                no_flush,
                loej,
                start,
            } => {
                b[0] = op::START_STOP_UNIT;
                b[1] = flag(immed, 0);
                b[3] = modifier & 0x0f;
                b[4] = (power_condition << 4) | flag(no_flush, 2) | flag(loej, 1) | flag(start, 0);
                6
            }
            Cdb::FormatUnit {
                fmtpinfo,
                longlist,
                fmtdata,
                cmplst,
                defect_list_format,
            } => {
                b[0] = op::FORMAT_UNIT;
                b[1] = (fmtpinfo << 6)
                    | flag(longlist, 5)
                    | flag(fmtdata, 4)
                    | flag(cmplst, 3)
                    | (defect_list_format & 7);
                6
            }
            Cdb::ReadDefectData {
                size,
                req_plist,
                req_glist,
                format,
                alloc_len,
            } => {
                let flags = flag(req_plist, 4) | flag(req_glist, 3) | (format & 7);
                if size == CdbSize::Twelve {
                    b[0] = op::READ_DEFECT_DATA_12;
                    b[1] = flags;
                    put32(&mut b, 6, alloc_len);
                    12
                } else {
                    b[0] = op::READ_DEFECT_DATA_10;
                    b[2] = flags;
                    put16(&mut b, 7, alloc_len as u16);
                    10
                }
            }
            Cdb::PreventAllow { prevent } => {
                b[0] = op::PREVENT_ALLOW_MEDIUM_REMOVAL;
                b[4] = prevent & 0x03;
                6
            }
            Cdb::ReportTargetPortGroups { format, alloc_len } => {
                b[0] = op::MAINTENANCE_IN;
                b[1] = (format << 5) | op::SA_REPORT_TARGET_PORT_GROUPS as u8;
                put32(&mut b, 6, alloc_len);
                12
            }
            Cdb::SetTargetPortGroups { param_len } => {
                b[0] = op::MAINTENANCE_OUT;
                b[1] = op::SA_SET_TARGET_PORT_GROUPS as u8;
                put32(&mut b, 6, param_len);
                12
            }
            Cdb::Sanitize {
                immed,
                ause,
                service_action,
                param_len,
            } => {
                b[0] = op::SANITIZE;
                b[1] = flag(immed, 7) | flag(ause, 5) | (service_action & 0x1f);
                put16(&mut b, 7, param_len);
                10
            }
            Cdb::ExtendedCopy { param_len } => {
                b[0] = op::EXTENDED_COPY;
                put32(&mut b, 10, param_len);
                16
            }
            Cdb::ReceiveCopyResults {
                service_action,
                list_id,
                alloc_len,
            } => {
                b[0] = op::RECEIVE_COPY_RESULTS;
                b[1] = service_action & 0x1f;
                b[2] = list_id;
                put32(&mut b, 10, alloc_len);
                16
            }
            Cdb::PopulateToken { list_id, param_len }
            | Cdb::WriteUsingToken { list_id, param_len } => {
                b[0] = op::EXTENDED_COPY;
                b[1] = if matches!(self, Cdb::PopulateToken { .. }) {
                    op::SA_POPULATE_TOKEN as u8
                } else {
                    op::SA_WRITE_USING_TOKEN as u8
                };
                put32(&mut b, 6, list_id);
                put32(&mut b, 10, param_len);
                16
            }
            Cdb::ReceiveRodTokenInformation { list_id, alloc_len } => {
                b[0] = op::RECEIVE_COPY_RESULTS;
                b[1] = op::SA_RECEIVE_ROD_TOKEN_INFORMATION as u8;
                put32(&mut b, 2, list_id);
                put32(&mut b, 10, alloc_len);
                16
            }
            Cdb::ReadToc {
                msf,
                format,
                track,
                alloc_len,
            } => {
                b[0] = op::READ_TOC;
                b[1] = flag(msf, 1);
                b[2] = format & 0x0f;
                b[6] = track;
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::GetConfiguration {
                rt,
                start,
                alloc_len,
            } => {
                b[0] = op::GET_CONFIGURATION;
                b[1] = rt & 0x03;
                put16(&mut b, 2, start);
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::GetEventStatus {
                polled,
                classes,
                alloc_len,
            } => {
                b[0] = op::GET_EVENT_STATUS_NOTIFICATION;
                b[1] = flag(polled, 0);
                b[4] = classes;
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::ReadDiscInformation {
                data_type,
                alloc_len,
            } => {
                b[0] = op::READ_DISC_INFORMATION;
                b[1] = data_type & 0x07;
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::ReadTrackInformation {
                open,
                address_type,
                address,
                alloc_len,
            } => {
                b[0] = op::READ_TRACK_INFORMATION;
                b[1] = flag(open, 2) | (address_type & 0x03);
                put32(&mut b, 2, address);
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::MechanismStatus { alloc_len } => {
                b[0] = op::MECHANISM_STATUS;
                put16(&mut b, 8, alloc_len);
                12
            }
            Cdb::Rewind { immed } => {
                b[0] = op::REWIND;
                b[1] = flag(immed, 0);
                6
            }
            Cdb::ReadBlockLimits => {
                b[0] = op::READ_BLOCK_LIMITS;
                6
            }
            Cdb::TapeRead {
                sili,
                fixed,
                length,
            } => {
                b[0] = op::READ_6;
                b[1] = flag(sili, 1) | flag(fixed, 0);
                put24(&mut b, 2, length & 0xff_ffff);
                6
            }
            Cdb::TapeWrite { fixed, length } => {
                b[0] = op::WRITE_6;
                b[1] = flag(fixed, 0);
                put24(&mut b, 2, length & 0xff_ffff);
                6
            }
            Cdb::WriteFilemarks { wsmk, immed, count } => {
                b[0] = op::WRITE_FILEMARKS_6;
                b[1] = flag(wsmk, 1) | flag(immed, 0);
                put24(&mut b, 2, count & 0xff_ffff);
                6
            }
            Cdb::Space { code, count } => {
                b[0] = op::SPACE_6;
                b[1] = code & 0x0f;
                #[allow(clippy::cast_sign_loss)]
                put24(&mut b, 2, (count as u32) & 0xff_ffff);
                6
            }
            Cdb::Erase { immed, long } => {
                b[0] = op::ERASE_6;
                b[1] = flag(immed, 1) | flag(long, 0);
                6
            }
            Cdb::LoadUnload {
                immed,
                hold,
                eot,
                reten,
                load,
            } => {
                b[0] = op::LOAD_UNLOAD;
                b[1] = flag(immed, 0);
                b[4] = flag(hold, 3) | flag(eot, 2) | flag(reten, 1) | flag(load, 0);
                6
            }
            Cdb::Locate {
                bt,
                cp,
                immed,
                block,
                partition,
            } => {
                b[0] = op::LOCATE_10;
                b[1] = flag(bt, 2) | flag(cp, 1) | flag(immed, 0);
                put32(&mut b, 3, block);
                b[8] = partition;
                10
            }
            Cdb::ReadPosition {
                service_action,
                alloc_len,
            } => {
                b[0] = op::READ_POSITION;
                b[1] = service_action & 0x1f;
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::PersistentReserveIn {
                service_action,
                alloc_len,
            } => {
                b[0] = op::PERSISTENT_RESERVE_IN;
                b[1] = service_action & 0x1f;
                put16(&mut b, 7, alloc_len);
                10
            }
            Cdb::PersistentReserveOut {
                service_action,
                scope,
                pr_type,
                param_len,
            } => {
                b[0] = op::PERSISTENT_RESERVE_OUT;
                b[1] = service_action & 0x1f;
                b[2] = (scope << 4) | (pr_type & 0x0f);
                put32(&mut b, 5, param_len);
                10
            }
            Cdb::Reserve {
                long,
                third_party,
                long_id,
                third_party_id,
                param_len,
            }
            | Cdb::Release {
                long,
                third_party,
                long_id,
                third_party_id,
                param_len,
            } => {
                let reserve = matches!(self, Cdb::Reserve { .. });
                if long {
                    b[0] = if reserve {
                        op::RESERVE_10
                    } else {
                        op::RELEASE_10
                    };
                    b[1] = flag(third_party, 4) | flag(long_id, 1);
                    b[3] = third_party_id;
                    put16(&mut b, 7, param_len);
                    10
                } else {
                    b[0] = if reserve {
                        op::RESERVE_6
                    } else {
                        op::RELEASE_6
                    };
                    6
                }
            }
        };
        crate::engine::RawCdb::new(&b[..len]).unwrap_or_default()
    }
}

fn cdb_len(size: CdbSize) -> usize {
    match size {
        CdbSize::Six => 6,
        CdbSize::Ten => 10,
        CdbSize::Twelve => 12,
        CdbSize::Sixteen => 16,
    }
}

/// INVALID COMMAND OPERATION CODE, as returned for an unknown opcode.
#[must_use]
pub fn invalid_opcode() -> Sense {
    Sense::illegal(Asc::INVALID_COMMAND_OPERATION_CODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn size(sizes: &'static [CdbSize]) -> impl Strategy<Value = CdbSize> {
        proptest::sample::select(sizes)
    }

    fn rw_strategy(sizes: &'static [CdbSize], bytchk: bool) -> impl Strategy<Value = Rw> {
        (
            size(sizes),
            any::<u64>(),
            any::<u32>(),
            0u8..8,
            any::<bool>(),
            any::<bool>(),
            0u8..4,
            0u8..64,
        )
            .prop_map(
                move |(size, lba, blocks, protect, dpo, fua, b, group)| match size {
                    CdbSize::Six => Rw {
                        size,
                        lba: lba & 0x1f_ffff,
                        blocks: (blocks % 256) + 1,
                        protect: 0,
                        dpo: false,
                        fua: false,
                        bytchk: 0,
                        group: 0,
                    },
                    CdbSize::Ten => Rw {
                        size,
                        lba: lba & 0xffff_ffff,
                        blocks: blocks & 0xffff,
                        protect,
                        dpo,
                        fua,
                        bytchk: if bytchk { b } else { 0 },
                        group,
                    },
                    CdbSize::Twelve => Rw {
                        size,
                        lba: lba & 0xffff_ffff,
                        blocks,
                        protect,
                        dpo,
                        fua,
                        bytchk: if bytchk { b } else { 0 },
                        group,
                    },
                    CdbSize::Sixteen => Rw {
                        size,
                        lba,
                        blocks,
                        protect,
                        dpo,
                        fua,
                        bytchk: if bytchk { b } else { 0 },
                        group,
                    },
                },
            )
    }

    fn range(sizes: &'static [CdbSize]) -> impl Strategy<Value = CacheRange> {
        (
            size(sizes),
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            0u8..64,
        )
            .prop_map(|(size, lba, blocks, immed, group)| {
                let long = size == CdbSize::Sixteen;
                CacheRange {
                    size,
                    lba: if long { lba } else { lba & 0xffff_ffff },
                    blocks: if long { blocks } else { blocks & 0xffff },
                    immed,
                    group,
                }
            })
    }

    const TEN_SIXTEEN: &[CdbSize] = &[CdbSize::Ten, CdbSize::Sixteen];
    const ALL: &[CdbSize] = &[
        CdbSize::Six,
        CdbSize::Ten,
        CdbSize::Twelve,
        CdbSize::Sixteen,
    ];
    const VERIFY: &[CdbSize] = &[CdbSize::Ten, CdbSize::Twelve, CdbSize::Sixteen];

    fn any_cdb() -> impl Strategy<Value = Cdb> {
        prop_oneof![
            Just(Cdb::TestUnitReady),
            (any::<bool>(), any::<u8>())
                .prop_map(|(desc, alloc_len)| Cdb::RequestSense { desc, alloc_len }),
            (any::<bool>(), any::<u8>(), any::<u16>()).prop_map(|(evpd, page, alloc_len)| {
                Cdb::Inquiry {
                    evpd,
                    page,
                    alloc_len,
                }
            }),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                0u8..4,
                0u8..64,
                any::<u8>(),
                any::<u16>()
            )
                .prop_map(|(long, dbd, llbaa, pc, page, subpage, alloc_len)| {
                    Cdb::ModeSense {
                        long,
                        dbd,
                        llbaa: llbaa && long,
                        pc,
                        page,
                        subpage,
                        alloc_len: if long { alloc_len } else { alloc_len & 0xff },
                    }
                }),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<u16>()).prop_map(
                |(long, pf, sp, param_len)| Cdb::ModeSelect {
                    long,
                    pf,
                    sp,
                    param_len: if long { param_len } else { param_len & 0xff },
                }
            ),
            (
                any::<bool>(),
                0u8..4,
                0u8..64,
                any::<u8>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(sp, pc, page, subpage, param_ptr, alloc_len)| {
                    Cdb::LogSense {
                        sp,
                        pc,
                        page,
                        subpage,
                        param_ptr,
                        alloc_len,
                    }
                }),
            (any::<u8>(), any::<u32>())
                .prop_map(|(select, alloc_len)| Cdb::ReportLuns { select, alloc_len }),
            (
                any::<bool>(),
                0u8..8,
                any::<u8>(),
                any::<u16>(),
                any::<u32>()
            )
                .prop_map(|(rctd, options, opcode, service_action, alloc_len)| {
                    Cdb::ReportSupportedOpcodes {
                        rctd,
                        options,
                        opcode,
                        service_action,
                        alloc_len,
                    }
                }),
            (any::<bool>(), any::<u32>())
                .prop_map(|(repd, alloc_len)| Cdb::ReportSupportedTmf { repd, alloc_len }),
            (any::<u32>(), any::<bool>()).prop_map(|(lba, pmi)| Cdb::ReadCapacity10 { lba, pmi }),
            any::<u32>().prop_map(|alloc_len| Cdb::ReadCapacity16 { alloc_len }),
            (any::<u64>(), any::<u32>())
                .prop_map(|(lba, alloc_len)| Cdb::GetLbaStatus { lba, alloc_len }),
            (
                any::<u64>(),
                any::<u16>(),
                any::<u16>(),
                0u8..8,
                any::<bool>(),
                any::<bool>(),
                0u8..64
            )
                .prop_map(|(lba, boundary, blocks, wrprotect, dpo, fua, group)| {
                    Cdb::WriteAtomic(WriteAtomic {
                        lba,
                        boundary,
                        blocks,
                        wrprotect,
                        dpo,
                        fua,
                        group,
                    })
                }),
            rw_strategy(ALL, false).prop_map(Cdb::Read),
            rw_strategy(ALL, false).prop_map(Cdb::Write),
            rw_strategy(VERIFY, true).prop_map(Cdb::WriteAndVerify),
            rw_strategy(&[CdbSize::Sixteen], false).prop_map(Cdb::OrWrite),
            rw_strategy(VERIFY, true).prop_map(Cdb::Verify),
            (
                size(TEN_SIXTEEN),
                any::<u64>(),
                any::<u32>(),
                0u8..8,
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                0u8..64
            )
                .prop_map(
                    |(size, lba, blocks, wrprotect, anchor, unmap, ndob, group)| {
                        let long = size == CdbSize::Sixteen;
                        Cdb::WriteSame(WriteSame {
                            size,
                            lba: if long { lba } else { lba & 0xffff_ffff },
                            blocks: if long { blocks } else { blocks & 0xffff },
                            wrprotect,
                            anchor,
                            unmap,
                            ndob: ndob && long,
                            group,
                        })
                    }
                ),
            (any::<bool>(), 0u8..64, any::<u16>()).prop_map(|(anchor, group, param_len)| {
                Cdb::Unmap {
                    anchor,
                    group,
                    param_len,
                }
            }),
            (
                any::<u64>(),
                any::<u8>(),
                0u8..8,
                any::<bool>(),
                any::<bool>(),
                0u8..64
            )
                .prop_map(|(lba, blocks, wrprotect, dpo, fua, group)| {
                    Cdb::CompareAndWrite {
                        lba,
                        blocks,
                        wrprotect,
                        dpo,
                        fua,
                        group,
                    }
                }),
            range(TEN_SIXTEEN).prop_map(Cdb::SynchronizeCache),
            range(TEN_SIXTEEN).prop_map(Cdb::PreFetch),
            (
                any::<bool>(),
                0u8..16,
                0u8..16,
                any::<bool>(),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(
                    |(immed, modifier, power_condition, no_flush, loej, start)| {
                        Cdb::StartStopUnit {
                            immed,
                            modifier,
                            power_condition,
                            no_flush,
                            loej,
                            start,
                        }
                    }
                ),
            (0u8..4, any::<bool>(), any::<bool>(), any::<bool>(), 0u8..8).prop_map(
                |(fmtpinfo, longlist, fmtdata, cmplst, defect_list_format)| Cdb::FormatUnit {
                    fmtpinfo,
                    longlist,
                    fmtdata,
                    cmplst,
                    defect_list_format
                }
            ),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                0u8..8,
                any::<u32>()
            )
                .prop_map(|(twelve, req_plist, req_glist, format, alloc_len)| {
                    Cdb::ReadDefectData {
                        size: if twelve {
                            CdbSize::Twelve
                        } else {
                            CdbSize::Ten
                        },
                        req_plist,
                        req_glist,
                        format,
                        alloc_len: if twelve {
                            alloc_len
                        } else {
                            alloc_len & 0xffff
                        },
                    }
                }),
            (0u8..4).prop_map(|prevent| Cdb::PreventAllow { prevent }),
            (0u8..8, any::<u32>())
                .prop_map(|(format, alloc_len)| Cdb::ReportTargetPortGroups { format, alloc_len }),
            any::<u32>().prop_map(|param_len| Cdb::SetTargetPortGroups { param_len }),
            (
                any::<bool>(),
                any::<bool>(),
                proptest::sample::select(&[1u8, 2, 0x1f][..]),
                any::<u16>()
            )
                .prop_map(|(immed, ause, service_action, param_len)| Cdb::Sanitize {
                    immed,
                    ause,
                    service_action,
                    param_len,
                }),
            any::<u32>().prop_map(|param_len| Cdb::ExtendedCopy { param_len }),
            (any::<u32>(), any::<u32>())
                .prop_map(|(list_id, param_len)| Cdb::PopulateToken { list_id, param_len }),
            (any::<u32>(), any::<u32>())
                .prop_map(|(list_id, param_len)| Cdb::WriteUsingToken { list_id, param_len }),
            (any::<u32>(), any::<u32>()).prop_map(|(list_id, alloc_len)| {
                Cdb::ReceiveRodTokenInformation { list_id, alloc_len }
            }),
            (
                proptest::sample::select(&[0u8, 3, 4][..]),
                any::<u8>(),
                any::<u32>()
            )
                .prop_map(|(service_action, list_id, alloc_len)| {
                    Cdb::ReceiveCopyResults {
                        service_action,
                        list_id,
                        alloc_len,
                    }
                }),
            (0u8..4, any::<u16>()).prop_map(|(service_action, alloc_len)| {
                Cdb::PersistentReserveIn {
                    service_action,
                    alloc_len,
                }
            }),
            (0u8..9, 0u8..16, 0u8..16, any::<u32>()).prop_map(
                |(service_action, scope, pr_type, param_len)| Cdb::PersistentReserveOut {
                    service_action,
                    scope,
                    pr_type,
                    param_len,
                }
            ),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<u8>(),
                any::<u16>()
            )
                .prop_map(|(reserve, long, third_party, long_id, id, len)| {
                    let (third_party, long_id, third_party_id, param_len) = if long {
                        (third_party, long_id, id, len)
                    } else {
                        (false, false, 0, 0)
                    };
                    if reserve {
                        Cdb::Reserve {
                            long,
                            third_party,
                            long_id,
                            third_party_id,
                            param_len,
                        }
                    } else {
                        Cdb::Release {
                            long,
                            third_party,
                            long_id,
                            third_party_id,
                            param_len,
                        }
                    }
                }),
        ]
    }

    fn any_mmc_cdb() -> impl Strategy<Value = Cdb> {
        prop_oneof![
            (any::<bool>(), 0u8..16, any::<u8>(), any::<u16>()).prop_map(
                |(msf, format, track, alloc_len)| Cdb::ReadToc {
                    msf,
                    format,
                    track,
                    alloc_len,
                }
            ),
            (0u8..4, any::<u16>(), any::<u16>()).prop_map(|(rt, start, alloc_len)| {
                Cdb::GetConfiguration {
                    rt,
                    start,
                    alloc_len,
                }
            }),
            (any::<bool>(), any::<u8>(), any::<u16>()).prop_map(|(polled, classes, alloc_len)| {
                Cdb::GetEventStatus {
                    polled,
                    classes,
                    alloc_len,
                }
            }),
            (0u8..8, any::<u16>()).prop_map(|(data_type, alloc_len)| {
                Cdb::ReadDiscInformation {
                    data_type,
                    alloc_len,
                }
            }),
            (any::<bool>(), 0u8..4, any::<u32>(), any::<u16>()).prop_map(
                |(open, address_type, address, alloc_len)| Cdb::ReadTrackInformation {
                    open,
                    address_type,
                    address,
                    alloc_len,
                }
            ),
            any::<u16>().prop_map(|alloc_len| Cdb::MechanismStatus { alloc_len }),
        ]
    }

    fn any_tape_cdb() -> impl Strategy<Value = Cdb> {
        prop_oneof![
            any::<bool>().prop_map(|immed| Cdb::Rewind { immed }),
            Just(Cdb::ReadBlockLimits),
            (any::<bool>(), any::<bool>(), 0u32..1 << 24).prop_map(|(sili, fixed, length)| {
                Cdb::TapeRead {
                    sili,
                    fixed,
                    length,
                }
            }),
            (any::<bool>(), 0u32..1 << 24)
                .prop_map(|(fixed, length)| Cdb::TapeWrite { fixed, length }),
            (any::<bool>(), any::<bool>(), 0u32..1 << 24)
                .prop_map(|(wsmk, immed, count)| { Cdb::WriteFilemarks { wsmk, immed, count } }),
            (0u8..16, -(1i32 << 23)..1 << 23).prop_map(|(code, count)| Cdb::Space { code, count }),
            (any::<bool>(), any::<bool>()).prop_map(|(immed, long)| Cdb::Erase { immed, long }),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(immed, hold, eot, reten, load)| Cdb::LoadUnload {
                    immed,
                    hold,
                    eot,
                    reten,
                    load,
                }),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<u32>(),
                any::<u8>()
            )
                .prop_map(|(bt, cp, immed, block, partition)| Cdb::Locate {
                    bt,
                    cp,
                    immed,
                    block,
                    partition,
                }),
            (0u8..32, any::<u16>()).prop_map(|(service_action, alloc_len)| {
                Cdb::ReadPosition {
                    service_action,
                    alloc_len,
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_every_tape_command(cdb in any_tape_cdb()) {
            let raw = cdb.encode();
            let device = crate::device::DeviceType::Tape;
            prop_assert_eq!(Cdb::decode_for(device, raw.as_bytes()), Ok(cdb));
        }

        #[test]
        fn round_trips_every_mmc_command(cdb in any_mmc_cdb()) {
            let raw = cdb.encode();
            let device = crate::device::DeviceType::Cdrom;
            prop_assert_eq!(Cdb::decode_for(device, raw.as_bytes()), Ok(cdb));
            // A disk does not implement them.
            prop_assert!(Cdb::decode(raw.as_bytes()).is_err());
        }

        #[test]
        fn round_trips_every_command(cdb in any_cdb()) {
            let raw = cdb.encode();
            prop_assert_eq!(Cdb::decode(raw.as_bytes()), Ok(cdb));
        }

        #[test]
        fn decode_never_panics_and_is_stable(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(cdb) = Cdb::decode(&bytes) {
                prop_assert_eq!(Cdb::decode(cdb.encode().as_bytes()), Ok(cdb));
            }
        }
    }

    #[test]
    fn rejects_short_cdbs_with_a_field_pointer() {
        let e = Cdb::decode(&[0x88, 0, 0]).unwrap_err();
        assert_eq!(e.asc, Asc::INVALID_FIELD_IN_CDB);
        assert_eq!(e.field.map(|f| f.byte), Some(3));
    }

    #[test]
    fn every_table_row_decodes_from_zeroes() {
        for row in table::COMMANDS {
            let mut b = [0u8; 16];
            b[0] = row.opcode;
            if let Some(sa) = row.service_action {
                b[1] = sa.to_be_bytes()[1];
            }
            let device = crate::device::DeviceType::ALL
                .into_iter()
                .find(|&d| row.devices.contains(d))
                .unwrap();
            let cdb = Cdb::decode_for(device, &b[..usize::from(row.cdb_len)])
                .unwrap_or_else(|e| panic!("{}: {e:?}", row.name));
            assert_eq!(&cdb.encode().as_bytes()[..1], &[row.opcode], "{}", row.name);
        }
    }
}
