//! The TCMU ABI of `linux/target_core_user.h`, mailbox version 2.
//!
//! The shared area a TCMU device maps through UIO holds, in order: the
//! mailbox ([`RawMailbox`]), the command ring (`cmdr_off .. cmdr_off +
//! cmdr_size`) and the data area (everything after the ring). Ring entries
//! start with a [`RawEntryHdr`]; a command entry continues with
//! [`RawCmdReq`] and its iovec array ([`RawIovec`]), and is answered in
//! place with [`RawCmdRsp`]; a task-management notification is a
//! [`RawTmrEntry`] followed by `cmd_cnt` 16-bit command ids.
//!
//! The structs are `#[repr(C)]` zerocopy types whose fields all have
//! alignment 1, so their layout is exactly the packed layout of the C
//! header; the tests below compare every size and offset with the values a
//! C compiler computes from the real header (`csrc/layout.c`, built by
//! `build.rs`).
//!
//! TCMU fields are in the host's byte order (the kernel and the handler
//! share one CPU), so the fields use zerocopy's native-endian types.
//!
//! Panic contract: nothing in this module panics on any input.

use std::fmt;

use bitflags::bitflags;
use zerocopy::byteorder::native_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `TCMU_MAILBOX_VERSION`: the mailbox layout this crate speaks.
pub const MAILBOX_VERSION: u16 = 2;
/// `TCMU_SENSE_BUFFERSIZE`: bytes of sense data in a response.
pub const SENSE_BUFFER_SIZE: usize = 96;
/// `TCMU_OP_MASK`: the low bits of `len_op` that hold the opcode.
pub const OP_MASK: u32 = 0x7;
/// `TCMU_OP_ALIGN_SIZE`: every entry length is a multiple of this.
pub const OP_ALIGN: u32 = 8;
/// Offset of `cmd_head` in the mailbox (written by the kernel).
pub const MAILBOX_CMD_HEAD: usize = 12;
/// Offset of `cmd_tail` in the mailbox (written by userspace; on its own
/// 64-byte cache line).
pub const MAILBOX_CMD_TAIL: usize = 64;

/// The mailbox at offset 0 of the shared area (`struct tcmu_mailbox`).
///
/// `cmd_head` and `cmd_tail` are read and written with atomics at
/// [`MAILBOX_CMD_HEAD`] and [`MAILBOX_CMD_TAIL`]; this struct is only used
/// to copy the mailbox out once when a device is attached.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawMailbox {
    version: U16,
    flags: U16,
    cmdr_off: U32,
    cmdr_size: U32,
    cmd_head: U32,
    _pad: [u8; 48],
    cmd_tail: U32,
    _pad_end: [u8; 60],
}

impl RawMailbox {
    /// A mailbox as the kernel initialises it (for the simulated kernel).
    #[must_use]
    pub fn new(flags: MailboxFlags, cmdr_off: u32, cmdr_size: u32) -> Self {
        Self {
            version: U16::new(MAILBOX_VERSION),
            flags: U16::new(flags.bits()),
            cmdr_off: U32::new(cmdr_off),
            cmdr_size: U32::new(cmdr_size),
            cmd_head: U32::new(0),
            _pad: [0; 48],
            cmd_tail: U32::new(0),
            _pad_end: [0; 60],
        }
    }
    /// Mailbox layout version (2 for this ABI).
    #[must_use]
    pub fn version(&self) -> u16 {
        self.version.get()
    }
    /// Capabilities the kernel offers (unknown bits kept).
    #[must_use]
    pub fn flags(&self) -> MailboxFlags {
        MailboxFlags::from_bits_retain(self.flags.get())
    }
    /// Offset of the command ring from the start of the mapping.
    #[must_use]
    pub fn cmdr_off(&self) -> u32 {
        self.cmdr_off.get()
    }
    /// Size of the command ring in bytes.
    #[must_use]
    pub fn cmdr_size(&self) -> u32 {
        self.cmdr_size.get()
    }
    /// The kernel's producer index at the time of the copy.
    #[must_use]
    pub fn cmd_head(&self) -> u32 {
        self.cmd_head.get()
    }
    /// The consumer index at the time of the copy.
    #[must_use]
    pub fn cmd_tail(&self) -> u32 {
        self.cmd_tail.get()
    }
}

bitflags! {
    /// `TCMU_MAILBOX_FLAG_CAP_*`: what the kernel's ring supports.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct MailboxFlags: u16 {
        /// Completions may be written out of order (`CAP_OOOC`).
        const CAP_OOOC = 1 << 0;
        /// The response's `read_len` is honoured (`CAP_READ_LEN`).
        const CAP_READ_LEN = 1 << 1;
        /// Task-management notifications arrive as TMR entries (`CAP_TMR`).
        const CAP_TMR = 1 << 2;
        /// A completion may keep its data buffer (`CAP_KEEP_BUF`).
        const CAP_KEEP_BUF = 1 << 3;
    }
}

bitflags! {
    /// `TCMU_UFLAG_*`: flags userspace sets in a completed entry's header.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct UserFlags: u8 {
        /// The handler does not know the opcode; the kernel answers CHECK
        /// CONDITION itself.
        const UNKNOWN_OP = 0x1;
        /// `rsp.read_len` is valid.
        const READ_LEN = 0x2;
        /// Keep the data buffer after completion, until freed through the
        /// device's `action/free_kept_buf` attribute.
        const KEEP_BUF = 0x4;
    }
}

/// Entry opcode (`enum tcmu_opcode`), the low 3 bits of `len_op`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl Opcode {
    /// Padding up to the end of the ring.
    pub const PAD: Self = Self(0);
    /// A SCSI command.
    pub const CMD: Self = Self(1);
    /// A task-management notification.
    pub const TMR: Self = Self(2);
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::PAD => f.write_str("PAD"),
            Self::CMD => f.write_str("CMD"),
            Self::TMR => f.write_str("TMR"),
            Self(other) => write!(f, "Opcode({other:#x})"),
        }
    }
}

/// Task-management function of a TMR entry (`TCMU_TMR_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TmrType(pub u8);

impl TmrType {
    /// Unknown function.
    pub const UNKNOWN: Self = Self(0);
    /// ABORT TASK.
    pub const ABORT_TASK: Self = Self(1);
    /// ABORT TASK SET.
    pub const ABORT_TASK_SET: Self = Self(2);
    /// CLEAR ACA.
    pub const CLEAR_ACA: Self = Self(3);
    /// CLEAR TASK SET.
    pub const CLEAR_TASK_SET: Self = Self(4);
    /// LOGICAL UNIT RESET.
    pub const LUN_RESET: Self = Self(5);
    /// Target warm reset.
    pub const TARGET_WARM_RESET: Self = Self(6);
    /// Target cold reset.
    pub const TARGET_COLD_RESET: Self = Self(7);
    /// Pseudo LUN reset caused by a PERSISTENT RESERVE OUT (preempt and abort).
    pub const LUN_RESET_PRO: Self = Self(128);
}

impl fmt::Debug for TmrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::UNKNOWN => "UNKNOWN",
            Self::ABORT_TASK => "ABORT_TASK",
            Self::ABORT_TASK_SET => "ABORT_TASK_SET",
            Self::CLEAR_ACA => "CLEAR_ACA",
            Self::CLEAR_TASK_SET => "CLEAR_TASK_SET",
            Self::LUN_RESET => "LUN_RESET",
            Self::TARGET_WARM_RESET => "TARGET_WARM_RESET",
            Self::TARGET_COLD_RESET => "TARGET_COLD_RESET",
            Self::LUN_RESET_PRO => "LUN_RESET_PRO",
            Self(other) => return write!(f, "TmrType({other:#x})"),
        };
        f.write_str(name)
    }
}

/// Header of every ring entry (`struct tcmu_cmd_entry_hdr`).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawEntryHdr {
    len_op: U32,
    cmd_id: U16,
    kflags: u8,
    uflags: u8,
}

impl RawEntryHdr {
    /// A header for an entry of `len` bytes (a multiple of 8) and opcode `op`.
    #[must_use]
    pub fn new(op: Opcode, len: u32, cmd_id: u16) -> Self {
        Self {
            len_op: U32::new((len & !OP_MASK) | (u32::from(op.0) & OP_MASK)),
            cmd_id: U16::new(cmd_id),
            kflags: 0,
            uflags: 0,
        }
    }
    /// `tcmu_hdr_get_op`.
    #[must_use]
    pub fn op(&self) -> Opcode {
        // The mask keeps the value below 8.
        Opcode((self.len_op.get() & OP_MASK) as u8)
    }
    /// `tcmu_hdr_get_len`: entry length in bytes.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.len_op.get() & !OP_MASK
    }
    /// Whether the entry length is zero.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Command id (CMD entries).
    #[must_use]
    pub fn cmd_id(&self) -> u16 {
        self.cmd_id.get()
    }
    /// Flags set by the kernel.
    #[must_use]
    pub fn kflags(&self) -> u8 {
        self.kflags
    }
    /// Flags set by userspace.
    #[must_use]
    pub fn uflags(&self) -> UserFlags {
        UserFlags::from_bits_retain(self.uflags)
    }
}

/// A command entry's request part: the header, then `req` of the union up
/// to (not including) the iovec array.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawCmdReq {
    hdr: RawEntryHdr,
    iov_cnt: U32,
    iov_bidi_cnt: U32,
    iov_dif_cnt: U32,
    // The union member `req` is not packed: `cdb_off` is 8-byte aligned.
    _align: U32,
    cdb_off: U64,
    _pad1: U64,
    _pad2: U64,
}

impl RawCmdReq {
    /// A request part (for the simulated kernel).
    #[must_use]
    pub fn new(hdr: RawEntryHdr, iov_cnt: u32, iov_bidi_cnt: u32, cdb_off: u64) -> Self {
        Self {
            hdr,
            iov_cnt: U32::new(iov_cnt),
            iov_bidi_cnt: U32::new(iov_bidi_cnt),
            iov_dif_cnt: U32::new(0),
            _align: U32::new(0),
            cdb_off: U64::new(cdb_off),
            _pad1: U64::new(0),
            _pad2: U64::new(0),
        }
    }
    /// The entry header.
    #[must_use]
    pub fn hdr(&self) -> RawEntryHdr {
        self.hdr
    }
    /// Number of data iovecs.
    #[must_use]
    pub fn iov_cnt(&self) -> u32 {
        self.iov_cnt.get()
    }
    /// Number of bidirectional (data-in of a BIDI command) iovecs after them.
    #[must_use]
    pub fn iov_bidi_cnt(&self) -> u32 {
        self.iov_bidi_cnt.get()
    }
    /// Number of protection-information iovecs (never set by Linux).
    #[must_use]
    pub fn iov_dif_cnt(&self) -> u32 {
        self.iov_dif_cnt.get()
    }
    /// Offset of the CDB from the start of the mapping.
    #[must_use]
    pub fn cdb_off(&self) -> u64 {
        self.cdb_off.get()
    }
}

/// `struct iovec` as TCMU uses it: `iov_base` is an offset from the start
/// of the mapping, not a pointer.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct RawIovec {
    base: U64,
    len: U64,
}

impl RawIovec {
    /// An iovec of `len` bytes at mapping offset `base`.
    #[must_use]
    pub fn new(base: u64, len: u64) -> Self {
        Self {
            base: U64::new(base),
            len: U64::new(len),
        }
    }
    /// Offset from the start of the mapping.
    #[must_use]
    pub fn base(&self) -> u64 {
        self.base.get()
    }
    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len.get()
    }
    /// Whether the iovec is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A command entry's response part: the header, then `rsp` of the union.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawCmdRsp {
    hdr: RawEntryHdr,
    scsi_status: u8,
    _pad1: u8,
    _pad2: U16,
    read_len: U32,
    sense_buffer: [u8; SENSE_BUFFER_SIZE],
}

impl RawCmdRsp {
    /// The header (as userspace rewrote it: `cmd_id` and `uflags`).
    #[must_use]
    pub fn hdr(&self) -> RawEntryHdr {
        self.hdr
    }
    /// SCSI status byte.
    #[must_use]
    pub fn scsi_status(&self) -> u8 {
        self.scsi_status
    }
    /// Bytes of data-in actually transferred, when `UserFlags::READ_LEN`.
    #[must_use]
    pub fn read_len(&self) -> u32 {
        self.read_len.get()
    }
    /// Sense data (meaningful with CHECK CONDITION).
    #[must_use]
    pub fn sense_buffer(&self) -> &[u8; SENSE_BUFFER_SIZE] {
        &self.sense_buffer
    }
}

/// Byte offsets inside a command entry that userspace writes on completion.
pub(crate) mod rsp_off {
    /// `hdr.cmd_id`.
    pub const CMD_ID: usize = 4;
    /// `hdr.uflags`.
    pub const UFLAGS: usize = 7;
    /// `rsp.scsi_status` up to the end of `rsp.sense_buffer`.
    pub const BODY: usize = 8;
}

/// A task-management notification (`struct tcmu_tmr_entry`), without its
/// trailing `cmd_ids` array.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawTmrEntry {
    hdr: RawEntryHdr,
    tmr_type: u8,
    _pad1: u8,
    _pad2: U16,
    cmd_cnt: U32,
    _pad3: U64,
    _pad4: U64,
}

impl RawTmrEntry {
    /// A TMR entry (for the simulated kernel).
    #[must_use]
    pub fn new(hdr: RawEntryHdr, tmr_type: TmrType, cmd_cnt: u32) -> Self {
        Self {
            hdr,
            tmr_type: tmr_type.0,
            cmd_cnt: U32::new(cmd_cnt),
            ..Self::default()
        }
    }
    /// The entry header.
    #[must_use]
    pub fn hdr(&self) -> RawEntryHdr {
        self.hdr
    }
    /// The task-management function.
    #[must_use]
    pub fn tmr_type(&self) -> TmrType {
        TmrType(self.tmr_type)
    }
    /// Number of affected command ids that follow.
    #[must_use]
    pub fn cmd_cnt(&self) -> u32 {
        self.cmd_cnt.get()
    }
}

/// Generic netlink commands of the "TCM-USER" family (`enum tcmu_genl_cmd`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct GenlCmd(pub u8);

impl GenlCmd {
    /// A device was enabled.
    pub const ADDED_DEVICE: Self = Self(1);
    /// A device is being removed.
    pub const REMOVED_DEVICE: Self = Self(2);
    /// A device's size, write cache or dev_config changed.
    pub const RECONFIG_DEVICE: Self = Self(3);
    /// Reply to `ADDED_DEVICE`.
    pub const ADDED_DEVICE_DONE: Self = Self(4);
    /// Reply to `REMOVED_DEVICE`.
    pub const REMOVED_DEVICE_DONE: Self = Self(5);
    /// Reply to `RECONFIG_DEVICE`.
    pub const RECONFIG_DEVICE_DONE: Self = Self(6);
    /// Tell the kernel which features the handler supports.
    pub const SET_FEATURES: Self = Self(7);
}

/// Generic netlink attributes of the "TCM-USER" family (`enum tcmu_genl_attr`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct GenlAttr(pub u16);

impl GenlAttr {
    /// The UIO name `tcm-user/<hba>/<dev>/<cfgstring>` (string).
    pub const DEVICE: Self = Self(1);
    /// The UIO minor (`/dev/uio<minor>`, u32).
    pub const MINOR: Self = Self(2);
    /// Padding for 64-bit attributes.
    pub const PAD: Self = Self(3);
    /// A new dev_config string (string).
    pub const DEV_CFG: Self = Self(4);
    /// A new device size in bytes (u64).
    pub const DEV_SIZE: Self = Self(5);
    /// A new write-cache setting (u8).
    pub const WRITECACHE: Self = Self(6);
    /// Status of a `_DONE` reply (s32, 0 or a negative errno).
    pub const CMD_STATUS: Self = Self(7);
    /// The LIO device index (u32).
    pub const DEVICE_ID: Self = Self(8);
    /// Whether the handler replies with `_DONE` commands (u8).
    pub const SUPP_KERN_CMD_REPLY: Self = Self(9);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    extern "C" {
        static tgtkit_tcmu_layout: [u64; 66];
        static tgtkit_tcmu_layout_len: u64;
    }

    /// The values the C compiler computed from the real header.
    fn header() -> [u64; 66] {
        // SAFETY: both symbols are plain constant arrays defined in
        // csrc/layout.c; the length is checked against the C count below.
        let (layout, len) = unsafe { (tgtkit_tcmu_layout, tgtkit_tcmu_layout_len) };
        assert_eq!(len, 66, "csrc/layout.c and this test disagree on the table");
        layout
    }

    fn u(v: usize) -> u64 {
        v as u64
    }

    #[test]
    fn accepts_layouts_matching_the_kernel_header() {
        let h = header();
        let ours = [
            u(size_of::<RawMailbox>()),
            u(offset_of!(RawMailbox, version)),
            u(offset_of!(RawMailbox, flags)),
            u(offset_of!(RawMailbox, cmdr_off)),
            u(offset_of!(RawMailbox, cmdr_size)),
            u(offset_of!(RawMailbox, cmd_head)),
            u(offset_of!(RawMailbox, cmd_tail)),
            u(size_of::<RawEntryHdr>()),
            u(offset_of!(RawEntryHdr, len_op)),
            u(offset_of!(RawEntryHdr, cmd_id)),
            u(offset_of!(RawEntryHdr, kflags)),
            u(offset_of!(RawEntryHdr, uflags)),
            u(size_of::<RawCmdRsp>()),
            u(offset_of!(RawCmdReq, iov_cnt)),
            u(offset_of!(RawCmdReq, iov_bidi_cnt)),
            u(offset_of!(RawCmdReq, iov_dif_cnt)),
            u(offset_of!(RawCmdReq, cdb_off)),
            u(size_of::<RawCmdReq>()),
            u(offset_of!(RawCmdRsp, scsi_status)),
            u(offset_of!(RawCmdRsp, read_len)),
            u(offset_of!(RawCmdRsp, sense_buffer)),
            u(SENSE_BUFFER_SIZE),
            u(size_of::<RawIovec>()),
            u(offset_of!(RawIovec, base)),
            u(offset_of!(RawIovec, len)),
            u(size_of::<RawTmrEntry>()),
            u(offset_of!(RawTmrEntry, tmr_type)),
            u(offset_of!(RawTmrEntry, cmd_cnt)),
            u(size_of::<RawTmrEntry>()),
        ];
        assert_eq!(ours[..], h[..ours.len()]);
        assert_eq!(MAILBOX_CMD_HEAD as u64, h[5]);
        assert_eq!(MAILBOX_CMD_TAIL as u64, h[6]);
        assert_eq!(rsp_off::BODY as u64, h[18]);
        assert_eq!(rsp_off::CMD_ID as u64, h[9]);
        assert_eq!(rsp_off::UFLAGS as u64, h[11]);
    }

    #[test]
    fn accepts_constants_matching_the_kernel_header() {
        let h = header();
        let ours: [u64; 37] = [
            u64::from(MAILBOX_VERSION),
            u64::from(MailboxFlags::CAP_OOOC.bits()),
            u64::from(MailboxFlags::CAP_READ_LEN.bits()),
            u64::from(MailboxFlags::CAP_TMR.bits()),
            u64::from(MailboxFlags::CAP_KEEP_BUF.bits()),
            u64::from(UserFlags::UNKNOWN_OP.bits()),
            u64::from(UserFlags::READ_LEN.bits()),
            u64::from(UserFlags::KEEP_BUF.bits()),
            u64::from(Opcode::PAD.0),
            u64::from(Opcode::CMD.0),
            u64::from(Opcode::TMR.0),
            u64::from(OP_MASK),
            u64::from(OP_ALIGN),
            u64::from(TmrType::ABORT_TASK.0),
            u64::from(TmrType::ABORT_TASK_SET.0),
            u64::from(TmrType::CLEAR_ACA.0),
            u64::from(TmrType::CLEAR_TASK_SET.0),
            u64::from(TmrType::LUN_RESET.0),
            u64::from(TmrType::TARGET_WARM_RESET.0),
            u64::from(TmrType::TARGET_COLD_RESET.0),
            u64::from(TmrType::LUN_RESET_PRO.0),
            u64::from(GenlCmd::ADDED_DEVICE.0),
            u64::from(GenlCmd::REMOVED_DEVICE.0),
            u64::from(GenlCmd::RECONFIG_DEVICE.0),
            u64::from(GenlCmd::ADDED_DEVICE_DONE.0),
            u64::from(GenlCmd::REMOVED_DEVICE_DONE.0),
            u64::from(GenlCmd::RECONFIG_DEVICE_DONE.0),
            u64::from(GenlCmd::SET_FEATURES.0),
            u64::from(GenlAttr::DEVICE.0),
            u64::from(GenlAttr::MINOR.0),
            u64::from(GenlAttr::PAD.0),
            u64::from(GenlAttr::DEV_CFG.0),
            u64::from(GenlAttr::DEV_SIZE.0),
            u64::from(GenlAttr::WRITECACHE.0),
            u64::from(GenlAttr::CMD_STATUS.0),
            u64::from(GenlAttr::DEVICE_ID.0),
            u64::from(GenlAttr::SUPP_KERN_CMD_REPLY.0),
        ];
        assert_eq!(ours[..], h[29..66]);
    }

    #[test]
    fn accepts_len_op_packing_like_the_header_macros() {
        // tcmu_hdr_set_len / tcmu_hdr_set_op: length in the high bits, op in the low 3.
        let hdr = RawEntryHdr::new(Opcode::CMD, 0x1238, 7);
        assert_eq!(hdr.op(), Opcode::CMD);
        assert_eq!(hdr.len(), 0x1238);
        assert_eq!(hdr.cmd_id(), 7);
        assert_eq!(hdr.as_bytes()[0], 0x39);
    }
}
