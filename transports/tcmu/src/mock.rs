//! A simulated kernel side of the TCMU ring, over plain memory.
//!
//! [`MockKernel`] lays out the mailbox, ring and data area as
//! `target_core_user.c` does (mailbox of 128 bytes, ring after it, data
//! area of fixed-size blocks after the ring), queues commands the way
//! `queue_cmd_ring` does (PAD to the end of the ring when an entry does not
//! fit, iovecs over merged data blocks, the CDB after the iovec array), and
//! reaps answers the way `tcmu_handle_completions` does. Tests drive a
//! [`Ring`](crate::ring::Ring) against it.

#![allow(clippy::cast_possible_truncation)] // the simulated ring's sizes are small by construction

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use zerocopy::{FromBytes, IntoBytes};

use crate::abi::{
    MailboxFlags, Opcode, RawCmdReq, RawCmdRsp, RawEntryHdr, RawIovec, RawMailbox, RawTmrEntry,
    TmrType, UserFlags, MAILBOX_CMD_HEAD, MAILBOX_CMD_TAIL, SENSE_BUFFER_SIZE,
};
use crate::mem::SharedMemory;
use crate::ring::{scsi_command_size, CMD_ENTRY_SIZE};

/// Offset of the ring in the simulated mapping (`sizeof(struct tcmu_mailbox)`).
pub const CMDR_OFF: usize = 128;

/// An answer as the kernel reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockCompletion {
    /// The command it answers.
    pub cmd_id: u16,
    /// SCSI status byte.
    pub status: u8,
    /// Sense buffer.
    pub sense: Vec<u8>,
    /// Userspace flags of the entry.
    pub flags: UserFlags,
    /// `read_len` when `READ_LEN` is set.
    pub read_len: Option<u32>,
    /// The data-in bytes the kernel gathers (cut to `read_len`).
    pub data_in: Vec<u8>,
}

/// Why the simulated kernel refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    /// No room on the ring or in the data area (the kernel would queue it).
    #[error("ring or data area full")]
    Full,
    /// Userspace broke the ring protocol (the kernel would mark the device broken).
    #[error("ring is broken: {0}")]
    Broken(String),
}

struct MockCmd {
    blocks: Vec<usize>,
    data_len: usize,
    data_in: bool,
}

/// The simulated kernel.
pub struct MockKernel {
    mem: Arc<SharedMemory>,
    cmdr_size: u32,
    data_off: usize,
    blk_size: usize,
    used: Vec<bool>,
    head: u32,
    last_cleaned: u32,
    next_id: u16,
    cmds: HashMap<u16, MockCmd>,
    kept: HashMap<u16, MockCmd>,
}

impl MockKernel {
    /// A device with a ring of `cmdr_size` bytes and `blocks` data blocks
    /// of `blk_size` bytes, offering `caps`.
    #[must_use]
    pub fn new(caps: MailboxFlags, cmdr_size: u32, blocks: usize, blk_size: usize) -> Self {
        let data_off = CMDR_OFF + cmdr_size as usize;
        let mem = Arc::new(SharedMemory::anonymous(data_off + blocks * blk_size));
        let mb = RawMailbox::new(caps, CMDR_OFF as u32, cmdr_size);
        mem.write(0, mb.as_bytes()).expect("mailbox fits");
        Self {
            mem,
            cmdr_size,
            data_off,
            blk_size,
            used: vec![false; blocks],
            head: 0,
            last_cleaned: 0,
            next_id: 1,
            cmds: HashMap::new(),
            kept: HashMap::new(),
        }
    }

    /// The shared mapping (give it to [`Ring::attach`](crate::ring::Ring::attach)).
    #[must_use]
    pub fn memory(&self) -> Arc<SharedMemory> {
        Arc::clone(&self.mem)
    }

    /// Ring offset where the next entry will be written.
    #[must_use]
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Start of the data area.
    #[must_use]
    pub fn data_off(&self) -> usize {
        self.data_off
    }

    /// Commands queued and not reaped.
    #[must_use]
    pub fn inflight(&self) -> usize {
        self.cmds.len()
    }

    /// Move head and tail (before the handler attaches) to test wrap-around.
    pub fn set_position(&mut self, at: u32) {
        self.head = at;
        self.last_cleaned = at;
        self.publish_head();
        self.mem
            .store_u32(MAILBOX_CMD_TAIL, at, Ordering::Release)
            .expect("mailbox");
    }

    fn publish_head(&self) {
        self.mem
            .store_u32(MAILBOX_CMD_HEAD, self.head, Ordering::Release)
            .expect("mailbox");
    }

    fn space_free(&self) -> u32 {
        let tail = self
            .mem
            .load_u32(MAILBOX_CMD_TAIL, Ordering::Acquire)
            .unwrap_or(0);
        let used = (self.head + self.cmdr_size - tail) % self.cmdr_size;
        self.cmdr_size - used - 1
    }

    /// Write an entry of `bytes.len()` bytes (padding first if it does not
    /// fit before the end of the ring); returns its ring offset.
    fn place(&mut self, len: u32) -> Result<u32, MockError> {
        let to_end = self.cmdr_size - self.head;
        let need = if to_end < len { len + to_end } else { len };
        if self.space_free() < need {
            return Err(MockError::Full);
        }
        if to_end < len {
            let pad = RawEntryHdr::new(Opcode::PAD, to_end, 0);
            self.mem
                .write(CMDR_OFF + self.head as usize, pad.as_bytes())
                .expect("ring");
            self.head = 0;
            self.publish_head();
        }
        Ok(self.head)
    }

    /// Queue an arbitrary entry (for malformed-entry tests); the entry's
    /// bytes are written as given, and a CMD entry's id is registered as
    /// outstanding (with no data). Returns its ring offset.
    ///
    /// # Errors
    ///
    /// [`MockError::Full`] if the ring has no room.
    pub fn queue_raw(&mut self, bytes: &[u8]) -> Result<u32, MockError> {
        let len = u32::try_from(bytes.len()).map_err(|_| MockError::Full)?;
        let at = self.place(len)?;
        self.mem.write(CMDR_OFF + at as usize, bytes).expect("ring");
        if let Some(hdr) = bytes
            .get(..8)
            .and_then(|b| RawEntryHdr::read_from_bytes(b).ok())
        {
            if hdr.op() == Opcode::CMD {
                let none = MockCmd {
                    blocks: Vec::new(),
                    data_len: 0,
                    data_in: false,
                };
                self.cmds.insert(hdr.cmd_id(), none);
            }
        }
        self.head = (at + len) % self.cmdr_size;
        self.publish_head();
        Ok(at)
    }

    fn alloc_blocks(&mut self, len: usize) -> Result<Vec<usize>, MockError> {
        let n = len.div_ceil(self.blk_size);
        let free: Vec<usize> = (0..self.used.len())
            .filter(|&i| !self.used[i])
            .take(n)
            .collect();
        if free.len() < n {
            return Err(MockError::Full);
        }
        for &b in &free {
            self.used[b] = true;
        }
        Ok(free)
    }

    fn iovecs(&self, blocks: &[usize], len: usize) -> Vec<RawIovec> {
        let mut out: Vec<RawIovec> = Vec::new();
        let mut left = len;
        let mut prev: Option<usize> = None;
        for &b in blocks {
            let take = left.min(self.blk_size);
            let base = (self.data_off + b * self.blk_size) as u64;
            match (out.last_mut(), prev) {
                (Some(last), Some(p)) if p + 1 == b => {
                    *last = RawIovec::new(last.base(), last.len() + take as u64);
                }
                _ => out.push(RawIovec::new(base, take as u64)),
            }
            prev = Some(b);
            left -= take;
        }
        out
    }

    /// Queue a SCSI command: `data_out` is copied into the data area;
    /// `data_in_len` bytes are reserved for the answer. Returns the cmd_id.
    ///
    /// # Errors
    ///
    /// [`MockError::Full`] if the ring or the data area has no room.
    pub fn queue_cmd(
        &mut self,
        cdb: &[u8],
        data_out: &[u8],
        data_in_len: usize,
    ) -> Result<u16, MockError> {
        let data_len = data_out.len().max(data_in_len);
        let blocks = self.alloc_blocks(data_len)?;
        let iovs = self.iovecs(&blocks, data_len);
        let base =
            (std::mem::size_of::<RawCmdReq>() + iovs.len() * 16).max(CMD_ENTRY_SIZE as usize);
        let cdb_len = scsi_command_size(cdb).min(cdb.len());
        let len = (base + cdb_len.div_ceil(8) * 8) as u32;
        let at = match self.place(len) {
            Ok(at) => at,
            Err(e) => {
                for b in blocks {
                    self.used[b] = false;
                }
                return Err(e);
            }
        };
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let entry_off = CMDR_OFF + at as usize;
        self.mem
            .write(entry_off, &vec![0u8; len as usize])
            .expect("ring");
        let cdb_off = (entry_off + base) as u64;
        let req = RawCmdReq::new(
            RawEntryHdr::new(Opcode::CMD, len, id),
            iovs.len() as u32,
            0,
            cdb_off,
        );
        self.mem.write(entry_off, req.as_bytes()).expect("ring");
        for (i, iov) in iovs.iter().enumerate() {
            self.mem
                .write(
                    entry_off + std::mem::size_of::<RawCmdReq>() + i * 16,
                    iov.as_bytes(),
                )
                .expect("ring");
        }
        self.mem
            .write(cdb_off as usize, &cdb[..cdb_len])
            .expect("ring");
        // scatter_data_area: data-out into the blocks.
        let mut done = 0;
        for iov in &iovs {
            let n = (iov.len() as usize).min(data_out.len().saturating_sub(done));
            if n > 0 {
                self.mem
                    .write(iov.base() as usize, &data_out[done..done + n])
                    .expect("data");
            }
            done += n;
        }
        self.cmds.insert(
            id,
            MockCmd {
                blocks,
                data_len,
                data_in: data_in_len > 0,
            },
        );
        self.head = (at + len) % self.cmdr_size;
        self.publish_head();
        Ok(id)
    }

    /// Queue a TMR notification naming `cmd_ids`.
    ///
    /// # Errors
    ///
    /// [`MockError::Full`] if the ring has no room.
    pub fn queue_tmr(&mut self, tmr_type: TmrType, cmd_ids: &[u16]) -> Result<u32, MockError> {
        let raw_len = std::mem::size_of::<RawTmrEntry>() + cmd_ids.len() * 2;
        let len = raw_len.div_ceil(8) * 8;
        let mut bytes = vec![0u8; len];
        let tmr = RawTmrEntry::new(
            RawEntryHdr::new(Opcode::TMR, len as u32, 0),
            tmr_type,
            cmd_ids.len() as u32,
        );
        bytes[..32].copy_from_slice(tmr.as_bytes());
        for (i, id) in cmd_ids.iter().enumerate() {
            bytes[32 + 2 * i..34 + 2 * i].copy_from_slice(&id.to_ne_bytes());
        }
        self.queue_raw(&bytes)
    }

    /// Read answers up to `cmd_tail`, as `tcmu_handle_completions` does.
    ///
    /// # Errors
    ///
    /// [`MockError::Broken`] when an answer names no outstanding command.
    pub fn reap(&mut self) -> Result<Vec<MockCompletion>, MockError> {
        let tail = self
            .mem
            .load_u32(MAILBOX_CMD_TAIL, Ordering::Acquire)
            .map_err(|e| MockError::Broken(e.to_string()))?;
        let mut out = Vec::new();
        while self.last_cleaned != tail {
            let off = CMDR_OFF + self.last_cleaned as usize;
            let mut raw = [0u8; CMD_ENTRY_SIZE as usize];
            let avail = (self.cmdr_size - self.last_cleaned) as usize;
            self.mem
                .read(off, &mut raw[..avail.min(CMD_ENTRY_SIZE as usize)])
                .map_err(|e| MockError::Broken(e.to_string()))?;
            let hdr = RawEntryHdr::read_from_bytes(&raw[..8]).expect("8 bytes");
            let len = hdr.len();
            if len == 0 {
                return Err(MockError::Broken("zero-length entry".into()));
            }
            if hdr.op() == Opcode::CMD {
                let rsp = RawCmdRsp::read_from_bytes(&raw).expect("112 bytes");
                out.push(self.finish(&rsp)?);
            }
            self.last_cleaned = (self.last_cleaned + len) % self.cmdr_size;
        }
        Ok(out)
    }

    fn finish(&mut self, rsp: &RawCmdRsp) -> Result<MockCompletion, MockError> {
        let hdr = rsp.hdr();
        let id = hdr.cmd_id();
        let flags = hdr.uflags();
        let keep = flags.contains(UserFlags::KEEP_BUF);
        let cmd = self
            .cmds
            .remove(&id)
            .ok_or_else(|| MockError::Broken(format!("cmd_id {id} not found")))?;
        let read_len = flags
            .contains(UserFlags::READ_LEN)
            .then(|| rsp.read_len())
            .filter(|&l| l != 0);
        let mut data_in = Vec::new();
        if cmd.data_in && !flags.contains(UserFlags::UNKNOWN_OP) {
            let want = read_len.map_or(cmd.data_len, |l| (l as usize).min(cmd.data_len));
            if rsp.scsi_status() == 0 || read_len.is_some() {
                let iovs = self.iovecs(&cmd.blocks, cmd.data_len);
                let mut left = want;
                for iov in iovs {
                    let n = (iov.len() as usize).min(left);
                    let mut buf = vec![0u8; n];
                    self.mem.read(iov.base() as usize, &mut buf).expect("data");
                    data_in.extend_from_slice(&buf);
                    left -= n;
                }
            }
        }
        let done = MockCompletion {
            cmd_id: id,
            status: rsp.scsi_status(),
            sense: rsp.sense_buffer()[..SENSE_BUFFER_SIZE].to_vec(),
            flags,
            read_len,
            data_in,
        };
        if keep {
            self.kept.insert(id, cmd);
        } else {
            for b in cmd.blocks {
                self.used[b] = false;
            }
        }
        Ok(done)
    }

    /// `action/free_kept_buf`: release a buffer kept with `KEEP_BUF`.
    ///
    /// # Errors
    ///
    /// [`MockError::Broken`] if no buffer is kept for `cmd_id`.
    pub fn free_kept_buf(&mut self, cmd_id: u16) -> Result<(), MockError> {
        let cmd = self
            .kept
            .remove(&cmd_id)
            .ok_or_else(|| MockError::Broken(format!("cmd_id {cmd_id} was not kept")))?;
        for b in cmd.blocks {
            self.used[b] = false;
        }
        Ok(())
    }
}
