//! Test doubles: an in-memory backstore and an in-process initiator.
//!
//! Enabled by the `test-utils` feature (and in this crate's own tests).
//! [`MemBackstore`] is a plain `Vec`-backed disk with every capability, so
//! device-model tests can exercise discard, allocation status and write
//! cache control; [`Initiator`] drives a [`Target`] the way a transport
//! would, one nexus at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::backstore::{
    AllocationState, AtomicLimits, Backstore, Capabilities, Extent, Geometry, IoError, IoResult,
    WriteFlags,
};
use crate::buffer::DataBuffer;
use crate::engine::{Command, NexusId, NexusInfo, RawCdb, Response, Target, TaskAttribute};
use crate::lun::Lun;
use crate::sense::Sense;
use crate::status::Status;

/// A `Vec`-backed backstore that tracks which blocks are mapped.
pub struct MemBackstore {
    data: Mutex<Vec<u8>>,
    mapped: Mutex<Vec<bool>>,
    block_size: u32,
    physical_block_size: u32,
    size: AtomicU64,
    read_only: bool,
    write_cache: AtomicBool,
    caps: Capabilities,
    /// Number of `flush` calls so far.
    pub flushes: AtomicU64,
    /// Number of writes that arrived with FUA.
    pub fua_writes: AtomicU64,
    fail_reads: AtomicBool,
    atomic: Option<AtomicLimits>,
}

impl std::fmt::Debug for MemBackstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemBackstore")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl MemBackstore {
    /// A disk of `blocks` blocks of `block_size` bytes with every capability.
    #[must_use]
    pub fn new(blocks: u64, block_size: u32) -> Self {
        Self::with_capabilities(blocks, block_size, Capabilities::all())
    }

    /// A disk with only `caps`.
    #[must_use]
    pub fn with_capabilities(blocks: u64, block_size: u32, caps: Capabilities) -> Self {
        let size = blocks * u64::from(block_size);
        Self {
            data: Mutex::new(vec![0; usize::try_from(size).unwrap_or(0)]),
            mapped: Mutex::new(vec![false; usize::try_from(blocks).unwrap_or(0)]),
            block_size,
            physical_block_size: block_size,
            size: AtomicU64::new(size),
            read_only: false,
            write_cache: AtomicBool::new(caps.contains(Capabilities::WRITE_CACHE)),
            caps,
            flushes: AtomicU64::new(0),
            fua_writes: AtomicU64::new(0),
            fail_reads: AtomicBool::new(false),
            atomic: None,
        }
    }

    /// The same disk, read-only.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The same disk with a larger physical block.
    #[must_use]
    pub fn physical_block_size(mut self, bytes: u32) -> Self {
        self.physical_block_size = bytes;
        self
    }

    /// The same disk with atomic writes of these limits (one lock over the
    /// whole disk makes every write atomic; none by default).
    #[must_use]
    pub fn atomic(mut self, limits: AtomicLimits) -> Self {
        self.atomic = Some(limits);
        self
    }

    /// Make every later read fail with an I/O error (or stop failing).
    pub fn fail_reads(&self, fail: bool) {
        self.fail_reads.store(fail, Ordering::Relaxed);
    }

    /// Grow or shrink the disk to `blocks` blocks.
    pub fn resize(&self, blocks: u64) {
        let size = blocks * u64::from(self.block_size);
        lock(&self.data).resize(usize::try_from(size).unwrap_or(0), 0);
        lock(&self.mapped).resize(usize::try_from(blocks).unwrap_or(0), false);
        self.size.store(size, Ordering::Release);
    }

    /// A copy of the bytes at `offset`.
    #[must_use]
    pub fn contents(&self, offset: u64, len: usize) -> Vec<u8> {
        let data = lock(&self.data);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        data[start..(start + len).min(data.len())].to_vec()
    }

    fn range(&self, offset: u64, len: u64) -> IoResult<(usize, usize)> {
        let end = offset.checked_add(len).ok_or(IoError::OutOfRange)?;
        if end > self.size.load(Ordering::Acquire) {
            return Err(IoError::OutOfRange);
        }
        Ok((
            usize::try_from(offset).map_err(|_| IoError::OutOfRange)?,
            usize::try_from(end).map_err(|_| IoError::OutOfRange)?,
        ))
    }

    fn mark(&self, start: usize, end: usize, mapped: bool) {
        let bs = self.block_size as usize;
        let mut m = lock(&self.mapped);
        for b in start / bs..end.div_ceil(bs) {
            if let Some(slot) = m.get_mut(b) {
                *slot = mapped;
            }
        }
    }
}

impl MemBackstore {
    /// `read` and `read_nowait`: everything is in memory.
    fn read_now(&self, offset: u64, buf: &DataBuffer) -> IoResult<()> {
        if self.fail_reads.load(Ordering::Relaxed) {
            return Err(IoError::Read(std::io::Error::other(
                "injected read failure",
            )));
        }
        let (start, end) = self.range(offset, buf.len() as u64)?;
        let data = lock(&self.data);
        buf.write_at(0, &data[start..end]);
        Ok(())
    }

    /// `write` and `write_nowait`.
    fn write_now(&self, offset: u64, buf: &DataBuffer, flags: WriteFlags) -> IoResult<()> {
        if self.read_only {
            return Err(IoError::ReadOnly);
        }
        let (start, end) = self.range(offset, buf.len() as u64)?;
        buf.read_at(0, &mut lock(&self.data)[start..end]);
        self.mark(start, end, true);
        if flags.contains(WriteFlags::FUA) {
            self.fua_writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl Backstore for MemBackstore {
    fn geometry(&self) -> Geometry {
        Geometry {
            size: self.size.load(Ordering::Acquire),
            logical_block_size: self.block_size,
            physical_block_size: self.physical_block_size,
            read_only: self.read_only,
            rotational: false,
        }
    }

    fn atomic_limits(&self) -> Option<AtomicLimits> {
        self.atomic
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        self.read_now(offset, &buf)
    }

    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.write_now(offset, &buf, flags)
    }

    fn read_nowait(&self, offset: u64, buf: &DataBuffer) -> Option<IoResult<()>> {
        Some(self.read_now(offset, buf))
    }

    fn write_nowait(
        &self,
        offset: u64,
        buf: &DataBuffer,
        flags: WriteFlags,
    ) -> Option<IoResult<()>> {
        Some(self.write_now(offset, buf, flags))
    }

    async fn flush(&self) -> IoResult<()> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn discard(&self, offset: u64, len: u64) -> IoResult<()> {
        let (start, end) = self.range(offset, len)?;
        lock(&self.data)[start..end].fill(0);
        self.mark(start, end, false);
        Ok(())
    }

    async fn write_zeroes(&self, offset: u64, len: u64, may_unmap: bool) -> IoResult<()> {
        let (start, end) = self.range(offset, len)?;
        lock(&self.data)[start..end].fill(0);
        self.mark(start, end, !may_unmap);
        Ok(())
    }

    async fn allocation(&self, offset: u64, len: u64) -> IoResult<Extent> {
        let (start, end) = self.range(offset, len)?;
        let bs = self.block_size as usize;
        let m = lock(&self.mapped);
        let first = start / bs;
        let state = m.get(first).copied().unwrap_or(false);
        let run = m[first..end.div_ceil(bs).min(m.len())]
            .iter()
            .take_while(|&&b| b == state)
            .count()
            .max(1);
        Ok(Extent {
            len: (run * bs) as u64,
            state: if state {
                AllocationState::Mapped
            } else {
                AllocationState::Deallocated
            },
        })
    }

    fn write_cache(&self) -> bool {
        self.write_cache.load(Ordering::Relaxed)
    }

    fn set_write_cache(&self, enabled: bool) -> IoResult<()> {
        if !self.caps.contains(Capabilities::WRITE_CACHE_TOGGLE) {
            return Err(IoError::Unsupported);
        }
        self.write_cache.store(enabled, Ordering::Relaxed);
        Ok(())
    }
}

/// An in-process initiator on one I_T nexus, for tests.
#[derive(Debug, Clone)]
pub struct Initiator {
    /// The target it talks to.
    pub target: Arc<Target>,
    /// Its nexus.
    pub nexus: NexusId,
    /// The LUN it addresses.
    pub lun: Lun,
    next_tag: Arc<AtomicU64>,
}

/// A finished command: the response and the data-in bytes.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The engine's response.
    pub response: Response,
    /// The data-in bytes (`response.data_len` of them).
    pub data: Vec<u8>,
}

impl Outcome {
    /// The status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.response.status
    }

    /// The decoded sense data.
    #[must_use]
    pub fn sense(&self) -> Option<Sense> {
        self.response.sense_data()
    }
}

impl Initiator {
    /// Register a nexus named `name` on `target`, addressing LUN 0.
    #[must_use]
    pub fn new(target: &Arc<Target>, name: &str) -> Self {
        let nexus = target.add_nexus(NexusInfo {
            initiator_port: format!("{name},i,0x000000000001"),
            target_port: format!("{},t,0x0001", target.config().name),
            relative_port: 1,
            transport_id: Vec::new(),
        });
        Self {
            target: Arc::clone(target),
            nexus,
            lun: Lun::from_index(0).unwrap_or_default(),
            next_tag: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The same initiator, addressing `lun`.
    #[must_use]
    pub fn with_lun(mut self, lun: Lun) -> Self {
        self.lun = lun;
        self
    }

    /// A command with a buffer of `data`.
    #[must_use]
    pub fn command(&self, cdb: &[u8], data: DataBuffer, attribute: TaskAttribute) -> Command {
        Command {
            nexus: self.nexus,
            lun: self.lun,
            tag: self.next_tag.fetch_add(1, Ordering::Relaxed),
            attribute,
            cdb: RawCdb::new(cdb).unwrap_or_default(),
            data,
        }
    }

    /// Run `cdb` with a data-in buffer of `len` bytes.
    pub async fn data_in(&self, cdb: &[u8], len: usize) -> Outcome {
        let buf = DataBuffer::zeroed(len);
        let response = self
            .target
            .execute(self.command(cdb, buf.clone(), TaskAttribute::Simple))
            .await;
        let mut data = buf.to_vec();
        data.truncate(response.data_len);
        Outcome { response, data }
    }

    /// Run `cdb` with `data` as the data-out buffer.
    pub async fn data_out(&self, cdb: &[u8], data: &[u8]) -> Outcome {
        let buf = DataBuffer::from_vec(data.to_vec());
        let response = self
            .target
            .execute(self.command(cdb, buf, TaskAttribute::Simple))
            .await;
        Outcome {
            response,
            data: Vec::new(),
        }
    }

    /// Blocking form of [`Initiator::data_in`].
    #[must_use]
    pub fn run(&self, cdb: &[u8], len: usize) -> Outcome {
        futures::executor::block_on(self.data_in(cdb, len))
    }

    /// Blocking form of [`Initiator::data_out`].
    #[must_use]
    pub fn send(&self, cdb: &[u8], data: &[u8]) -> Outcome {
        futures::executor::block_on(self.data_out(cdb, data))
    }

    /// Consume pending unit attentions (TEST UNIT READY until GOOD).
    pub fn clear_unit_attentions(&self) {
        for _ in 0..32 {
            if self.run(&[0; 6], 0).status() == Status::GOOD {
                return;
            }
        }
    }
}
