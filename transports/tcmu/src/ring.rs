//! The TCMU command ring: the userspace (consumer) side, with no I/O.
//!
//! ```text
//!   mapping offset 0        cmdr_off             cmdr_off + cmdr_size      len
//!   | mailbox (head, tail) | command ring ...... | data area ............... |
//!                            ^tail    ^next  ^head
//!                            |  ours  | new  |
//! ```
//!
//! The kernel appends entries at `cmd_head` (PAD to skip the end of the
//! ring, CMD for a SCSI command, TMR for a task-management notification)
//! and advances `cmd_head`. [`Ring::poll_request`] reads entries from our
//! position `next` up to `cmd_head`, copying each one out of shared memory
//! before validating it. A command is answered in place: status, sense and
//! `read_len` are written over the entry, and `cmd_tail` is advanced past
//! it; the kernel then reads the answer and frees the entry and its data
//! blocks once it is kicked ([`Ring::complete`] says when a kick is due).
//!
//! Completion order: with `CAP_OOOC` an answer is written into the oldest
//! unanswered CMD slot with that slot's `cmd_id` replaced by the answered
//! command's (as libtcmu does), so `cmd_tail` moves on every completion;
//! otherwise answers wait until every older command is answered.
//!
//! Validation follows `drivers/target/target_core_user.c`: entries are
//! 8-byte aligned, never wrap (a PAD fills the end of the ring), and a CMD
//! entry is at least `sizeof(struct tcmu_cmd_entry)` (112) bytes with its
//! iovec array and CDB inside it. An entry whose header cannot be trusted
//! (length zero, unaligned, past `cmd_head` or the ring's end) desynchronises
//! the ring: [`RingError`], and the device must stop. A CMD entry whose body
//! is wrong (iovecs outside the data area, CDB outside the entry, BIDI or
//! DIF iovecs) is returned as [`Request::Malformed`]: that one command is
//! answered with CHECK CONDITION and the ring goes on.
//!
//! Panic contract: no method panics on any content of the shared memory.

use std::collections::VecDeque;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::sense::{Asc, Sense, SenseFormat, SenseKey};
use tgtkit_scsi_core::status::Status;
use zerocopy::FromBytes;

use crate::abi::{
    rsp_off, MailboxFlags, Opcode, RawCmdReq, RawEntryHdr, RawIovec, RawMailbox, RawTmrEntry,
    TmrType, UserFlags, MAILBOX_CMD_HEAD, MAILBOX_CMD_TAIL, MAILBOX_VERSION, OP_ALIGN,
    SENSE_BUFFER_SIZE,
};
use crate::mem::{OutOfBounds, SharedMemory};

/// `sizeof` the request part of a command entry (48) and of a TMR entry (32).
#[allow(clippy::cast_possible_truncation)] // small constants
const REQ_SIZE: u32 = std::mem::size_of::<RawCmdReq>() as u32;
#[allow(clippy::cast_possible_truncation)] // small constants
const TMR_SIZE: u32 = std::mem::size_of::<RawTmrEntry>() as u32;

/// Size of `struct tcmu_cmd_entry`: the smallest CMD entry, and the room a
/// response needs.
pub const CMD_ENTRY_SIZE: u32 = 112;
/// Largest command ring accepted (Linux uses 8 MiB; this caps what the ring
/// bookkeeping may allocate).
pub const MAX_CMDR_SIZE: u32 = 256 << 20;
/// Largest CDB handed to the engine.
pub const MAX_CDB_LEN: usize = 32;

/// The ring cannot be used (any more): the device must be stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The mailbox version is not 2.
    #[error("mailbox version {0}, expected 2")]
    Version(u16),
    /// The mailbox places the ring outside the mapping or is unaligned.
    #[error("mailbox ring {off:#x}+{size:#x} does not fit a {map:#x}-byte mapping")]
    BadGeometry {
        /// `cmdr_off`.
        off: u32,
        /// `cmdr_size`.
        size: u32,
        /// Mapping size.
        map: usize,
    },
    /// The kernel's `cmd_head` is not inside the ring or not aligned.
    #[error("cmd_head {0:#x} outside the ring or unaligned")]
    BadHead(u32),
    /// The mailbox `cmd_tail` found at attach time is unusable.
    #[error("cmd_tail {0:#x} outside the ring or unaligned")]
    BadTail(u32),
    /// An entry header cannot be trusted, so the next entry cannot be found.
    #[error("entry at ring offset {at:#x}: {reason}")]
    BadEntry {
        /// Ring offset of the entry.
        at: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A shared-memory access fell outside the mapping.
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
}

/// Why one command entry is refused (the command fails, the ring goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The iovec array does not fit in the entry.
    #[error("{count} iovecs do not fit in a {len}-byte entry")]
    IovecsPastEntry {
        /// Total iovec count.
        count: u64,
        /// Entry length.
        len: u32,
    },
    /// An iovec does not lie inside the data area.
    #[error("iovec {index} ({base:#x}+{len:#x}) outside the data area {start:#x}..{end:#x}")]
    IovecOutsideData {
        /// Index of the iovec.
        index: usize,
        /// Its base offset.
        base: u64,
        /// Its length.
        len: u64,
        /// Start of the data area.
        start: usize,
        /// End of the data area.
        end: usize,
    },
    /// The CDB offset does not point inside this entry, past its iovecs.
    #[error("cdb_off {0:#x} outside the entry")]
    CdbOutsideEntry(u64),
    /// The CDB's length (from its opcode) runs past the entry.
    #[error("CDB of {0} bytes runs past the entry")]
    CdbPastEntry(usize),
    /// The CDB is longer than the engine accepts.
    #[error("CDB of {0} bytes is longer than 32")]
    CdbTooLong(usize),
    /// Bidirectional commands are not supported.
    #[error("bidirectional command ({0} data-in iovecs) not supported")]
    Bidi(u32),
    /// Protection-information iovecs are not supported.
    #[error("{0} DIF iovecs not supported")]
    Dif(u32),
}

impl EntryError {
    /// The sense data the command is failed with.
    #[must_use]
    pub fn sense(&self) -> Sense {
        match self {
            // The kernel built a command we cannot run: a target failure.
            EntryError::IovecsPastEntry { .. }
            | EntryError::IovecOutsideData { .. }
            | EntryError::CdbOutsideEntry(_)
            | EntryError::CdbPastEntry(_) => {
                Sense::new(SenseKey::HARDWARE_ERROR, Asc::INTERNAL_TARGET_FAILURE)
            }
            // Valid commands this handler does not implement.
            EntryError::CdbTooLong(_) | EntryError::Bidi(_) | EntryError::Dif(_) => Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::INVALID_COMMAND_OPERATION_CODE,
            ),
        }
    }
}

/// A caller mistake in answering a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompleteError {
    /// No command with this id is waiting for an answer.
    #[error("command {0} is not outstanding")]
    NotOutstanding(u16),
    /// `KEEP_BUF` was asked for but the kernel does not offer it.
    #[error("KEEP_BUF requested but not offered by the kernel")]
    KeepBufNotOffered,
    /// The shared memory could not be written.
    #[error(transparent)]
    OutOfBounds(#[from] OutOfBounds),
}

/// One iovec of a command, validated to lie inside the data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSegment {
    /// Offset from the start of the mapping.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

/// A SCSI command copied out of the ring and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdRequest {
    /// The kernel's command id (answered with it).
    pub cmd_id: u16,
    cdb: [u8; MAX_CDB_LEN],
    cdb_len: u8,
    /// Data segments in order (data-out holds the initiator's data; data-in
    /// is where the answer goes).
    pub segments: Vec<DataSegment>,
}

impl CmdRequest {
    /// The CDB bytes.
    #[must_use]
    pub fn cdb(&self) -> &[u8] {
        &self.cdb[..usize::from(self.cdb_len)]
    }

    /// Total data length (the expected data transfer length).
    #[must_use]
    pub fn data_len(&self) -> usize {
        self.segments.iter().map(|s| s.len).sum()
    }
}

/// A task-management notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmrRequest {
    /// The function the initiator (or LIO) performed.
    pub tmr_type: TmrType,
    /// Commands on the ring that it aborted (ids of outstanding commands).
    pub cmd_ids: Vec<u16>,
}

/// What [`Ring::poll_request`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A command to run.
    Cmd(CmdRequest),
    /// A task-management notification (nothing to answer on the ring).
    Tmr(TmrRequest),
    /// A command entry that cannot be run: answer it with
    /// [`Completion::failed`] of `error.sense()`.
    Malformed {
        /// Its id.
        cmd_id: u16,
        /// Why.
        error: EntryError,
    },
}

/// The answer to one command.
#[derive(Clone, PartialEq, Eq)]
pub struct Completion {
    status: Status,
    sense: [u8; SENSE_BUFFER_SIZE],
    read_len: Option<u32>,
    flags: UserFlags,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("status", &self.status)
            .field("read_len", &self.read_len)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl Completion {
    /// A status with no sense data.
    #[must_use]
    pub fn status(status: Status) -> Self {
        Self {
            status,
            sense: [0; SENSE_BUFFER_SIZE],
            read_len: None,
            flags: UserFlags::empty(),
        }
    }

    /// GOOD.
    #[must_use]
    pub fn good() -> Self {
        Self::status(Status::GOOD)
    }

    /// A status with encoded sense bytes (cut to 96 bytes).
    #[must_use]
    pub fn with_sense_bytes(status: Status, sense: &[u8]) -> Self {
        let mut c = Self::status(status);
        let n = sense.len().min(SENSE_BUFFER_SIZE);
        c.sense[..n].copy_from_slice(&sense[..n]);
        c
    }

    /// CHECK CONDITION with `sense` in fixed format.
    #[must_use]
    pub fn failed(sense: &Sense) -> Self {
        let mut c = Self::status(Status::CHECK_CONDITION);
        sense.encode(SenseFormat::Fixed, &mut c.sense);
        c
    }

    /// Tell the kernel the handler does not know this opcode
    /// (`TCMU_UFLAG_UNKNOWN_OP`): the kernel fails it with CHECK CONDITION.
    #[must_use]
    pub fn unknown_op() -> Self {
        let mut c = Self::status(Status::CHECK_CONDITION);
        c.flags |= UserFlags::UNKNOWN_OP;
        c
    }

    /// Report that only `len` bytes of data-in were transferred
    /// (`TCMU_UFLAG_READ_LEN`); dropped when the kernel lacks `CAP_READ_LEN`.
    #[must_use]
    pub fn with_read_len(mut self, len: u32) -> Self {
        self.read_len = Some(len);
        self
    }

    /// Keep the data buffer after completion (`TCMU_UFLAG_KEEP_BUF`); the
    /// caller frees it later through `action/free_kept_buf`.
    #[must_use]
    pub fn keep_buf(mut self) -> Self {
        self.flags |= UserFlags::KEEP_BUF;
        self
    }

    /// The SCSI status.
    #[must_use]
    pub fn scsi_status(&self) -> Status {
        self.status
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    /// PAD or TMR: nothing to answer, the tail just moves past it.
    Skip,
    /// A command; `done` once answered (in-order mode only).
    Cmd { cmd_id: u16, answered: bool },
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    off: u32,
    len: u32,
    kind: SlotKind,
}

/// The userspace side of one device's command ring.
pub struct Ring {
    mem: Arc<SharedMemory>,
    caps: MailboxFlags,
    ooo: bool,
    cmdr_off: usize,
    cmdr_size: u32,
    data_start: usize,
    /// Our read position (ring offset of the next unread entry).
    next: u32,
    /// Our `cmd_tail` (ring offset).
    tail: u32,
    /// Entries read but not yet passed by the tail, oldest first.
    slots: VecDeque<Slot>,
    /// Answers waiting for their slot (in-order mode).
    pending: Vec<(u16, Completion)>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("caps", &self.caps)
            .field("ooo", &self.ooo)
            .field("cmdr_size", &self.cmdr_size)
            .field("next", &self.next)
            .field("tail", &self.tail)
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Ring {
    /// Attach to the mailbox at the start of `mem`, resuming at its
    /// `cmd_tail` (commands between tail and head are read again).
    ///
    /// # Errors
    ///
    /// [`RingError`] if the mailbox is not version 2 or its ring does not
    /// fit the mapping.
    pub fn attach(mem: Arc<SharedMemory>) -> Result<Self, RingError> {
        let mut raw = [0u8; std::mem::size_of::<RawMailbox>()];
        mem.read(0, &mut raw)?;
        let mb = RawMailbox::read_from_bytes(&raw).map_err(|_| RingError::Version(0))?;
        if mb.version() != MAILBOX_VERSION {
            return Err(RingError::Version(mb.version()));
        }
        let (off, size) = (mb.cmdr_off(), mb.cmdr_size());
        let bad = RingError::BadGeometry {
            off,
            size,
            map: mem.len(),
        };
        let end = usize::try_from(off)
            .ok()
            .and_then(|o| o.checked_add(usize::try_from(size).ok()?));
        let fits = matches!(end, Some(e) if e <= mem.len());
        if !fits
            || size == 0
            || size > MAX_CMDR_SIZE
            || size % OP_ALIGN != 0
            || off % OP_ALIGN != 0
            || (off as usize) < std::mem::size_of::<RawMailbox>()
        {
            return Err(bad);
        }
        let tail = mem.load_u32(MAILBOX_CMD_TAIL, Ordering::Acquire)?;
        if tail >= size || tail % OP_ALIGN != 0 {
            return Err(RingError::BadTail(tail));
        }
        let caps = mb.flags();
        Ok(Self {
            caps,
            ooo: caps.contains(MailboxFlags::CAP_OOOC),
            cmdr_off: off as usize,
            cmdr_size: size,
            data_start: end.unwrap_or(0),
            next: tail,
            tail,
            slots: VecDeque::new(),
            pending: Vec::new(),
            mem,
        })
    }

    /// Answer commands strictly in ring order even when the kernel offers
    /// out-of-order completion.
    pub fn force_in_order(&mut self) {
        self.ooo = false;
    }

    /// The capabilities the kernel offers.
    #[must_use]
    pub fn capabilities(&self) -> MailboxFlags {
        self.caps
    }

    /// Whether answers may be given out of order.
    #[must_use]
    pub fn out_of_order(&self) -> bool {
        self.ooo
    }

    /// The shared mapping.
    #[must_use]
    pub fn memory(&self) -> &Arc<SharedMemory> {
        &self.mem
    }

    /// The data area, as mapping offsets `start..end`.
    #[must_use]
    pub fn data_area(&self) -> std::ops::Range<usize> {
        self.data_start..self.mem.len()
    }

    /// Number of commands read and not answered yet.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                matches!(
                    s.kind,
                    SlotKind::Cmd {
                        answered: false,
                        ..
                    }
                )
            })
            .count()
    }

    /// Whether entries are waiting between our read position and `cmd_head`.
    ///
    /// # Errors
    ///
    /// [`RingError::BadHead`] if the kernel's head is unusable.
    pub fn has_requests(&self) -> Result<bool, RingError> {
        Ok(self.head()? != self.next)
    }

    fn head(&self) -> Result<u32, RingError> {
        // Acquire pairs with the kernel's store of cmd_head after it wrote
        // the entry (UPDATE_HEAD after tcmu_flush_dcache_range): the entry
        // bytes are visible once we see the new head.
        let head = self.mem.load_u32(MAILBOX_CMD_HEAD, Ordering::Acquire)?;
        if head >= self.cmdr_size || head % OP_ALIGN != 0 {
            return Err(RingError::BadHead(head));
        }
        Ok(head)
    }

    fn ring_read(&self, at: u32, out: &mut [u8]) -> Result<(), OutOfBounds> {
        self.mem.read(self.cmdr_off + at as usize, out)
    }

    /// Read the next entry, if the kernel has queued one.
    ///
    /// PAD entries are skipped. Each entry is copied out of the ring before
    /// it is validated.
    ///
    /// # Errors
    ///
    /// [`RingError`] when the ring is desynchronised; stop the device.
    pub fn poll_request(&mut self) -> Result<Option<Request>, RingError> {
        let head = self.head()?;
        loop {
            if self.next == head {
                return Ok(None);
            }
            let at = self.next;
            let mut raw = [0u8; std::mem::size_of::<RawEntryHdr>()];
            self.ring_read(at, &mut raw)?;
            let hdr = RawEntryHdr::read_from_bytes(&raw).map_err(|_| RingError::BadEntry {
                at,
                reason: "short header",
            })?;
            let len = hdr.len();
            let bad = |reason| RingError::BadEntry { at, reason };
            // Bytes the kernel has published from `at` (head may have wrapped).
            let avail = if head > at {
                head - at
            } else {
                self.cmdr_size - at + head
            };
            if len < OP_ALIGN || len % OP_ALIGN != 0 {
                return Err(bad("length zero or not a multiple of 8"));
            }
            if len > avail {
                return Err(bad("length runs past cmd_head"));
            }
            if len > self.cmdr_size - at {
                return Err(bad("entry wraps around the end of the ring"));
            }
            let op = hdr.op();
            if op == Opcode::CMD && len < CMD_ENTRY_SIZE {
                return Err(bad("command entry shorter than struct tcmu_cmd_entry"));
            }
            if op != Opcode::CMD && op != Opcode::PAD && op != Opcode::TMR {
                return Err(bad("unknown opcode"));
            }
            self.next = (at + len) % self.cmdr_size;
            match op {
                Opcode::PAD => {
                    self.slots.push_back(Slot {
                        off: at,
                        len,
                        kind: SlotKind::Skip,
                    });
                }
                Opcode::TMR => {
                    self.slots.push_back(Slot {
                        off: at,
                        len,
                        kind: SlotKind::Skip,
                    });
                    return Ok(Some(self.parse_tmr(at, len)?));
                }
                _ => {
                    self.slots.push_back(Slot {
                        off: at,
                        len,
                        kind: SlotKind::Cmd {
                            cmd_id: hdr.cmd_id(),
                            answered: false,
                        },
                    });
                    return Ok(Some(match self.parse_cmd(at, len)? {
                        Ok(cmd) => Request::Cmd(cmd),
                        Err(error) => Request::Malformed {
                            cmd_id: hdr.cmd_id(),
                            error,
                        },
                    }));
                }
            }
        }
    }

    fn parse_tmr(&self, at: u32, len: u32) -> Result<Request, RingError> {
        let mut raw = [0u8; std::mem::size_of::<RawTmrEntry>()];
        if (len as usize) < raw.len() {
            // Too short to say anything: report an unknown TMR with no ids.
            return Ok(Request::Tmr(TmrRequest {
                tmr_type: TmrType::UNKNOWN,
                cmd_ids: Vec::new(),
            }));
        }
        self.ring_read(at, &mut raw)?;
        let tmr = RawTmrEntry::read_from_bytes(&raw).map_err(|_| RingError::BadEntry {
            at,
            reason: "short TMR entry",
        })?;
        // The id array must lie inside the entry; cap it there.
        let room = (len as usize - raw.len()) / 2;
        let count = (tmr.cmd_cnt() as usize).min(room);
        let mut ids = vec![0u8; count * 2];
        self.ring_read(at + TMR_SIZE, &mut ids)?;
        let cmd_ids = ids
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        Ok(Request::Tmr(TmrRequest {
            tmr_type: tmr.tmr_type(),
            cmd_ids,
        }))
    }

    fn parse_cmd(&self, at: u32, len: u32) -> Result<Result<CmdRequest, EntryError>, RingError> {
        let mut raw = [0u8; std::mem::size_of::<RawCmdReq>()];
        self.ring_read(at, &mut raw)?;
        let req = RawCmdReq::read_from_bytes(&raw).map_err(|_| RingError::BadEntry {
            at,
            reason: "short command entry",
        })?;
        let cmd_id = req.hdr().cmd_id();
        if req.iov_dif_cnt() != 0 {
            return Ok(Err(EntryError::Dif(req.iov_dif_cnt())));
        }
        let count = u64::from(req.iov_cnt()) + u64::from(req.iov_bidi_cnt());
        let iov_bytes = count * std::mem::size_of::<RawIovec>() as u64;
        let iov_end = raw.len() as u64 + iov_bytes;
        if iov_end > u64::from(len) {
            return Ok(Err(EntryError::IovecsPastEntry { count, len }));
        }
        if req.iov_bidi_cnt() != 0 {
            return Ok(Err(EntryError::Bidi(req.iov_bidi_cnt())));
        }
        // CDB: mapping offset, must lie in this entry after the iovecs.
        let entry_start = (self.cmdr_off + at as usize) as u64;
        let entry_end = entry_start + u64::from(len);
        let cdb_off = req.cdb_off();
        if cdb_off < entry_start + iov_end || cdb_off >= entry_end {
            return Ok(Err(EntryError::CdbOutsideEntry(cdb_off)));
        }
        let room = usize::try_from(entry_end - cdb_off).unwrap_or(0);
        let mut cdb = [0u8; MAX_CDB_LEN];
        let peek = room.min(MAX_CDB_LEN);
        self.mem.read(
            usize::try_from(cdb_off).unwrap_or(usize::MAX),
            &mut cdb[..peek],
        )?;
        let cdb_len = scsi_command_size(&cdb[..peek]);
        if cdb_len > MAX_CDB_LEN {
            return Ok(Err(EntryError::CdbTooLong(cdb_len)));
        }
        if cdb_len > room {
            return Ok(Err(EntryError::CdbPastEntry(cdb_len)));
        }
        cdb[cdb_len..].fill(0);
        // Iovecs: copied out, each checked against the data area.
        let n = usize::try_from(count).unwrap_or(0);
        let mut iov_raw = vec![0u8; n * std::mem::size_of::<RawIovec>()];
        self.ring_read(at + REQ_SIZE, &mut iov_raw)?;
        let data = self.data_area();
        let mut segments = Vec::with_capacity(n);
        for (index, chunk) in iov_raw
            .chunks_exact(std::mem::size_of::<RawIovec>())
            .enumerate()
        {
            let Ok(iov) = RawIovec::read_from_bytes(chunk) else {
                continue;
            };
            let outside = EntryError::IovecOutsideData {
                index,
                base: iov.base(),
                len: iov.len(),
                start: data.start,
                end: data.end,
            };
            let (Ok(base), Ok(seg_len)) = (usize::try_from(iov.base()), usize::try_from(iov.len()))
            else {
                return Ok(Err(outside));
            };
            match base.checked_add(seg_len) {
                Some(end) if base >= data.start && end <= data.end => {}
                _ => return Ok(Err(outside)),
            }
            if seg_len > 0 {
                segments.push(DataSegment {
                    offset: base,
                    len: seg_len,
                });
            }
        }
        Ok(Ok(CmdRequest {
            cmd_id,
            cdb,
            // cdb_len <= 32 was checked above.
            cdb_len: u8::try_from(cdb_len).unwrap_or(0),
            segments,
        }))
    }

    /// A [`DataBuffer`] over a command's data segments, in place in the
    /// data area (no copy). `owner` is kept alive by every handle to the
    /// buffer; it must keep the mapping alive (hold the `Arc<SharedMemory>`).
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] if a segment is outside the mapping (cannot happen for
    /// a validated [`CmdRequest`] of this ring).
    pub fn data_buffer(
        &self,
        req: &CmdRequest,
        owner: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Result<DataBuffer, OutOfBounds> {
        let mut segs = Vec::with_capacity(req.segments.len());
        for s in &req.segments {
            segs.push((self.mem.ptr_at(s.offset, s.len)?, s.len));
        }
        // SAFETY: every segment was checked to lie inside the mapping, which
        // `owner` keeps mapped (the caller's contract); the data area is
        // only accessed through DataBuffer's volatile copies and syscalls,
        // and by the kernel.
        Ok(unsafe { DataBuffer::from_raw_segments(&segs, owner) })
    }

    /// Answer command `cmd_id`. Returns whether `cmd_tail` moved (the
    /// kernel should be kicked; kicks may be coalesced over several calls).
    ///
    /// # Errors
    ///
    /// [`CompleteError`] if the command is not outstanding or the answer
    /// asks for a capability the kernel lacks.
    pub fn complete(
        &mut self,
        cmd_id: u16,
        completion: &Completion,
    ) -> Result<bool, CompleteError> {
        if completion.flags.contains(UserFlags::KEEP_BUF)
            && !self.caps.contains(MailboxFlags::CAP_KEEP_BUF)
        {
            return Err(CompleteError::KeepBufNotOffered);
        }
        let pos = self
            .slots
            .iter()
            .position(|s| {
                s.kind
                    == SlotKind::Cmd {
                        cmd_id,
                        answered: false,
                    }
            })
            .ok_or(CompleteError::NotOutstanding(cmd_id))?;
        if self.ooo {
            // The answer goes into the oldest unanswered command slot; that
            // slot's own command (if different) takes over `pos`.
            let front = self
                .slots
                .iter()
                .position(|s| matches!(s.kind, SlotKind::Cmd { .. }))
                .ok_or(CompleteError::NotOutstanding(cmd_id))?;
            if front != pos {
                if let SlotKind::Cmd { cmd_id: other, .. } = self.slots[front].kind {
                    self.slots[pos].kind = SlotKind::Cmd {
                        cmd_id: other,
                        answered: false,
                    };
                }
            }
            let slot = self.slots[front];
            self.write_answer(slot.off, cmd_id, completion)?;
            self.slots[front].kind = SlotKind::Cmd {
                cmd_id,
                answered: true,
            };
        } else {
            self.slots[pos].kind = SlotKind::Cmd {
                cmd_id,
                answered: true,
            };
            self.pending.push((cmd_id, completion.clone()));
        }
        self.advance_tail()
    }

    fn advance_tail(&mut self) -> Result<bool, CompleteError> {
        let mut moved = false;
        while let Some(slot) = self.slots.front().copied() {
            match slot.kind {
                SlotKind::Skip => {}
                SlotKind::Cmd {
                    answered: false, ..
                } => break,
                SlotKind::Cmd {
                    cmd_id,
                    answered: true,
                } => {
                    if !self.ooo {
                        let Some(i) = self.pending.iter().position(|(id, _)| *id == cmd_id) else {
                            break;
                        };
                        let (_, c) = self.pending.swap_remove(i);
                        self.write_answer(slot.off, cmd_id, &c)?;
                    }
                }
            }
            self.slots.pop_front();
            self.tail = (slot.off + slot.len) % self.cmdr_size;
            moved = true;
        }
        if moved {
            // Release: the answers written above are visible to the kernel
            // before it sees the new tail (it reads cmd_tail with READ_ONCE
            // and then the entries).
            self.mem
                .store_u32(MAILBOX_CMD_TAIL, self.tail, Ordering::Release)?;
            // The kick that follows is a write(2) to the UIO fd; keep the
            // tail store ordered before it as the kernel's wmb-less read
            // expects.
            fence(Ordering::SeqCst);
        }
        Ok(moved)
    }

    fn write_answer(&self, off: u32, cmd_id: u16, c: &Completion) -> Result<(), OutOfBounds> {
        let base = self.cmdr_off + off as usize;
        let mut flags = c.flags & (UserFlags::UNKNOWN_OP | UserFlags::KEEP_BUF);
        let mut read_len = 0u32;
        if let Some(len) = c.read_len {
            if self.caps.contains(MailboxFlags::CAP_READ_LEN) {
                flags |= UserFlags::READ_LEN;
                read_len = len;
            }
        }
        // The body of `rsp`: status, padding, read_len, sense.
        let mut body = [0u8; (CMD_ENTRY_SIZE as usize) - rsp_off::BODY];
        body[0] = c.status.0;
        body[4..8].copy_from_slice(&read_len.to_ne_bytes());
        body[8..].copy_from_slice(&c.sense);
        self.mem.write(base + rsp_off::BODY, &body)?;
        self.mem
            .write(base + rsp_off::CMD_ID, &cmd_id.to_ne_bytes())?;
        self.mem.write(base + rsp_off::UFLAGS, &[flags.bits()])?;
        Ok(())
    }
}

/// The length of a CDB from its operation code, as the kernel's
/// `scsi_command_size` computes it (SAM-5 5.2: group codes; variable-length
/// CDBs carry their additional length in byte 7).
#[must_use]
pub fn scsi_command_size(cdb: &[u8]) -> usize {
    const GROUP_LEN: [usize; 8] = [6, 10, 10, 12, 16, 12, 10, 10];
    match cdb.first() {
        None => 0,
        Some(0x7f) => cdb.get(7).map_or(8, |&extra| 8 + usize::from(extra)),
        Some(&op) => GROUP_LEN[usize::from(op >> 5)],
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test patterns wrap on purpose
mod tests {
    use super::*;
    use crate::abi::RawIovec;
    use crate::mock::{MockError, MockKernel, CMDR_OFF};
    use zerocopy::IntoBytes;

    const ALL: MailboxFlags = MailboxFlags::all();
    const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0];
    const WRITE10: [u8; 10] = [0x2a, 0, 0, 0, 0, 8, 0, 0, 1, 0];
    const TUR: [u8; 6] = [0; 6];

    fn pair(caps: MailboxFlags, cmdr: u32) -> (MockKernel, Ring) {
        let k = MockKernel::new(caps, cmdr, 64, 4096);
        let r = Ring::attach(k.memory()).unwrap();
        (k, r)
    }

    fn cmd(r: &mut Ring) -> CmdRequest {
        match r.poll_request().unwrap() {
            Some(Request::Cmd(c)) => c,
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn accepts_commands_answered_in_order_without_ooo() {
        let (mut k, mut r) = pair(ALL - MailboxFlags::CAP_OOOC, 1 << 16);
        let ids: Vec<u16> = (0..3).map(|_| k.queue_cmd(&TUR, &[], 0).unwrap()).collect();
        let got: Vec<u16> = (0..3).map(|_| cmd(&mut r).cmd_id).collect();
        assert_eq!(got, ids);
        assert_eq!(r.poll_request().unwrap(), None);
        // target_core_user.h: without CAP_OOOC, cmd_tail only passes answered entries in order.
        assert!(!r.complete(ids[1], &Completion::good()).unwrap());
        assert!(k.reap().unwrap().is_empty());
        assert!(r
            .complete(ids[0], &Completion::status(Status::BUSY))
            .unwrap());
        let done = k.reap().unwrap();
        assert_eq!(
            done.iter()
                .map(|c| (c.cmd_id, c.status))
                .collect::<Vec<_>>(),
            [(ids[0], 8), (ids[1], 0)]
        );
        assert_eq!(r.outstanding(), 1);
    }

    #[test]
    fn accepts_out_of_order_answers_with_cap_oooc() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let ids: Vec<u16> = (0..3).map(|_| k.queue_cmd(&TUR, &[], 0).unwrap()).collect();
        for _ in 0..3 {
            cmd(&mut r);
        }
        // The answer for the third command goes into the first slot, with its id.
        assert!(r.complete(ids[2], &Completion::good()).unwrap());
        let done = k.reap().unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].cmd_id, ids[2]);
        assert!(r.complete(ids[0], &Completion::good()).unwrap());
        assert!(r.complete(ids[1], &Completion::good()).unwrap());
        let rest: Vec<u16> = k.reap().unwrap().iter().map(|c| c.cmd_id).collect();
        assert_eq!(rest, [ids[0], ids[1]]);
        assert_eq!(k.inflight(), 0);
    }

    #[test]
    fn accepts_pad_and_wraparound() {
        let (mut k, _) = pair(ALL, 4096);
        k.set_position(4096 - 64);
        let mut r = Ring::attach(k.memory()).unwrap();
        let id = k.queue_cmd(&TUR, &[], 0).unwrap();
        // A 120-byte entry does not fit in 64 bytes: PAD, then the entry at 0.
        assert_eq!(k.head(), 120);
        assert_eq!(cmd(&mut r).cmd_id, id);
        assert!(r.complete(id, &Completion::good()).unwrap());
        assert_eq!(k.reap().unwrap()[0].cmd_id, id);
        assert_eq!(
            r.memory()
                .load_u32(MAILBOX_CMD_TAIL, Ordering::Acquire)
                .unwrap(),
            120
        );
    }

    #[test]
    fn accepts_data_in_and_out_in_place_with_read_len() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let payload: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let w = k.queue_cmd(&WRITE10, &payload, 0).unwrap();
        let req = cmd(&mut r);
        assert_eq!(
            (req.cmd_id, req.cdb(), req.data_len()),
            (w, &WRITE10[..], 4096)
        );
        let buf = r.data_buffer(&req, r.memory().clone()).unwrap();
        assert_eq!(buf.to_vec(), payload);
        r.complete(w, &Completion::good()).unwrap();

        let rd = k.queue_cmd(&READ10, &[], 8192).unwrap();
        let req = cmd(&mut r);
        assert_eq!(
            req.segments.len(),
            1,
            "adjacent blocks merge into one iovec"
        );
        let buf = r.data_buffer(&req, r.memory().clone()).unwrap();
        buf.write_at(0, &payload);
        // target_core_user.c tcmu_handle_completion: READ_LEN shortens the data-in.
        r.complete(rd, &Completion::good().with_read_len(4096))
            .unwrap();
        let done = k.reap().unwrap();
        assert_eq!(done[1].read_len, Some(4096));
        assert_eq!(done[1].data_in, payload);
    }

    #[test]
    fn rejects_read_len_without_cap_read_len() {
        let (mut k, mut r) = pair(MailboxFlags::empty(), 1 << 16);
        let rd = k.queue_cmd(&READ10, &[], 4096).unwrap();
        cmd(&mut r);
        r.complete(rd, &Completion::good().with_read_len(512))
            .unwrap();
        let done = k.reap().unwrap();
        assert_eq!(done[0].read_len, None);
        assert_eq!(done[0].data_in.len(), 4096);
    }

    #[test]
    fn accepts_sense_and_unknown_op() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let a = k.queue_cmd(&TUR, &[], 0).unwrap();
        let b = k
            .queue_cmd(&[0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0)
            .unwrap();
        assert_eq!(cmd(&mut r).cdb().len(), 6);
        assert_eq!(cmd(&mut r).cdb().len(), 10, "group 6 opcodes are 10 bytes");
        let sense = Sense::new(SenseKey::NOT_READY, Asc::from_bytes(0x04, 0x00));
        r.complete(a, &Completion::failed(&sense)).unwrap();
        r.complete(b, &Completion::unknown_op()).unwrap();
        let done = k.reap().unwrap();
        assert_eq!(done[0].status, 2);
        assert_eq!(
            (done[0].sense[0], done[0].sense[2], done[0].sense[12]),
            (0x70, 2, 4)
        );
        assert!(done[1].flags.contains(UserFlags::UNKNOWN_OP));
    }

    fn raw_cmd(
        k: &MockKernel,
        at: u32,
        iovs: &[RawIovec],
        iov_cnt: u32,
        cdb_rel: Option<u64>,
        len: u32,
    ) -> Vec<u8> {
        let mut bytes = vec![0u8; len as usize];
        let entry = (CMDR_OFF + at as usize) as u64;
        let base = (48 + 16 * iovs.len()).max(112) as u64;
        let cdb_off = cdb_rel.unwrap_or(entry + base);
        let req = RawCmdReq::new(RawEntryHdr::new(Opcode::CMD, len, 77), iov_cnt, 0, cdb_off);
        bytes[..48].copy_from_slice(req.as_bytes());
        for (i, iov) in iovs.iter().enumerate() {
            bytes[48 + 16 * i..64 + 16 * i].copy_from_slice(iov.as_bytes());
        }
        if cdb_off >= entry && cdb_off < entry + u64::from(len) {
            bytes[(cdb_off - entry) as usize] = 0x00;
        }
        let _ = k;
        bytes
    }

    fn expect_malformed(r: &mut Ring) -> EntryError {
        match r.poll_request().unwrap() {
            Some(Request::Malformed { cmd_id: 77, error }) => error,
            other => panic!("expected a malformed entry, got {other:?}"),
        }
    }

    #[test]
    fn rejects_iovecs_outside_the_data_area_and_goes_on() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let data = k.data_off() as u64;
        // An iovec pointing into the command ring itself, and one past the mapping.
        for iov in [
            RawIovec::new(CMDR_OFF as u64, 512),
            RawIovec::new(data + 63 * 4096, 8192),
        ] {
            let e = raw_cmd(&k, k.head(), &[iov], 1, None, 120);
            k.queue_raw(&e).unwrap();
            let err = expect_malformed(&mut r);
            assert!(
                matches!(err, EntryError::IovecOutsideData { index: 0, .. }),
                "{err}"
            );
            assert_eq!(err.sense().key, SenseKey::HARDWARE_ERROR);
            r.complete(77, &Completion::failed(&err.sense())).unwrap();
            assert_eq!(r.outstanding(), 0);
        }
        let ok = k.queue_cmd(&TUR, &[], 0).unwrap();
        assert_eq!(cmd(&mut r).cmd_id, ok);
    }

    #[test]
    fn rejects_cdb_off_past_the_ring() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let e = raw_cmd(&k, 0, &[], 0, Some((CMDR_OFF as u64) + (1 << 16) + 8), 120);
        k.queue_raw(&e).unwrap();
        assert!(matches!(
            expect_malformed(&mut r),
            EntryError::CdbOutsideEntry(_)
        ));
        // A CDB inside the iovec array is refused as well.
        let e = raw_cmd(&k, 120, &[], 0, Some(CMDR_OFF as u64 + 120 + 8), 120);
        k.queue_raw(&e).unwrap();
        assert!(matches!(
            expect_malformed(&mut r),
            EntryError::CdbOutsideEntry(_)
        ));
    }

    #[test]
    fn rejects_iov_count_not_matching_the_entry_length() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let e = raw_cmd(&k, 0, &[], 40, None, 120);
        k.queue_raw(&e).unwrap();
        assert!(matches!(
            expect_malformed(&mut r),
            EntryError::IovecsPastEntry {
                count: 40,
                len: 120
            }
        ));
    }

    #[test]
    fn rejects_desynchronised_entry_headers() {
        for hdr in [
            RawEntryHdr::new(Opcode::CMD, 0, 1),    // zero length
            RawEntryHdr::new(Opcode::CMD, 64, 1),   // shorter than tcmu_cmd_entry
            RawEntryHdr::new(Opcode(5), 120, 1),    // unknown opcode
            RawEntryHdr::new(Opcode::PAD, 4096, 1), // past cmd_head
        ] {
            let (mut k, mut r) = pair(ALL, 1 << 16);
            let mut bytes = vec![0u8; 120];
            bytes[..8].copy_from_slice(hdr.as_bytes());
            k.queue_raw(&bytes).unwrap();
            assert!(
                matches!(r.poll_request(), Err(RingError::BadEntry { at: 0, .. })),
                "{hdr:?}"
            );
        }
    }

    #[test]
    fn rejects_a_bad_mailbox() {
        let k = MockKernel::new(ALL, 1 << 16, 1, 4096);
        k.memory().write(0, &3u16.to_ne_bytes()).unwrap();
        assert_eq!(Ring::attach(k.memory()).unwrap_err(), RingError::Version(3));
        let k = MockKernel::new(ALL, 1 << 16, 1, 4096);
        k.memory().write(8, &(1u32 << 30).to_ne_bytes()).unwrap();
        assert!(matches!(
            Ring::attach(k.memory()),
            Err(RingError::BadGeometry { .. })
        ));
        let (k, mut r) = pair(ALL, 1 << 16);
        k.memory()
            .store_u32(MAILBOX_CMD_HEAD, 1 << 20, Ordering::Release)
            .unwrap();
        assert_eq!(r.poll_request(), Err(RingError::BadHead(1 << 20)));
    }

    #[test]
    fn accepts_tmr_entries_and_skips_them_on_completion() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let a = k.queue_cmd(&TUR, &[], 0).unwrap();
        k.queue_tmr(TmrType::ABORT_TASK, &[a]).unwrap();
        let b = k.queue_cmd(&TUR, &[], 0).unwrap();
        cmd(&mut r);
        assert_eq!(
            r.poll_request().unwrap(),
            Some(Request::Tmr(TmrRequest {
                tmr_type: TmrType::ABORT_TASK,
                cmd_ids: vec![a]
            }))
        );
        cmd(&mut r);
        r.complete(a, &Completion::status(Status::TASK_ABORTED))
            .unwrap();
        r.complete(b, &Completion::good()).unwrap();
        let ids: Vec<u16> = k.reap().unwrap().iter().map(|c| c.cmd_id).collect();
        assert_eq!(ids, [a, b]);
    }

    #[test]
    fn accepts_keep_buf_only_when_offered() {
        let (mut k, mut r) = pair(ALL, 1 << 16);
        let a = k.queue_cmd(&READ10, &[], 4096).unwrap();
        cmd(&mut r);
        r.complete(a, &Completion::good().keep_buf()).unwrap();
        assert!(k.reap().unwrap()[0].flags.contains(UserFlags::KEEP_BUF));
        k.free_kept_buf(a).unwrap();

        let (mut k, mut r) = pair(ALL - MailboxFlags::CAP_KEEP_BUF, 1 << 16);
        let a = k.queue_cmd(&TUR, &[], 0).unwrap();
        cmd(&mut r);
        assert_eq!(
            r.complete(a, &Completion::good().keep_buf()),
            Err(CompleteError::KeepBufNotOffered)
        );
        assert_eq!(
            r.complete(a + 1, &Completion::good()),
            Err(CompleteError::NotOutstanding(a + 1))
        );
        r.complete(a, &Completion::good()).unwrap();
        assert_eq!(
            r.complete(a, &Completion::good()),
            Err(CompleteError::NotOutstanding(a))
        );
    }

    /// Random interleavings of queueing and answering over a small ring, in
    /// both completion modes: every command is answered exactly once, with
    /// its own data, and the kernel never finds the ring broken.
    #[test]
    fn accepts_random_interleavings_across_wraparound() {
        for ooo in [false, true] {
            let caps = if ooo {
                ALL
            } else {
                ALL - MailboxFlags::CAP_OOOC
            };
            let (mut k, mut r) = pair(caps, 2048);
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut rnd = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut open: Vec<CmdRequest> = Vec::new();
            let mut answered = 0usize;
            let mut queued = 0usize;
            for _ in 0..4000 {
                match rnd() % 3 {
                    0 => match k.queue_cmd(&READ10, &[], 1 + (rnd() % 9000) as usize) {
                        Ok(_) => queued += 1,
                        Err(MockError::Full) => {}
                        Err(e) => panic!("{e}"),
                    },
                    1 => {
                        while let Some(req) = r.poll_request().unwrap() {
                            let Request::Cmd(c) = req else {
                                panic!("unexpected {req:?}")
                            };
                            open.push(c);
                        }
                    }
                    _ => {
                        if !open.is_empty() {
                            let c = open.swap_remove((rnd() as usize) % open.len());
                            let buf = r.data_buffer(&c, r.memory().clone()).unwrap();
                            buf.fill(0, buf.len(), c.cmd_id as u8);
                            r.complete(c.cmd_id, &Completion::good()).unwrap();
                        }
                    }
                }
                for done in k.reap().unwrap() {
                    assert!(
                        done.data_in.iter().all(|&b| b == done.cmd_id as u8),
                        "data of {}",
                        done.cmd_id
                    );
                    answered += 1;
                }
            }
            assert!(
                queued > 100 && answered > 50,
                "ooo={ooo} queued={queued} answered={answered}"
            );
            assert_eq!(answered + k.inflight(), queued);
        }
    }
}
