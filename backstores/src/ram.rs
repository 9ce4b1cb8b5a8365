//! A sparse, concurrent in-memory backstore.
//!
//! The medium is cut into chunks (64 KiB by default) that are allocated on
//! first write and kept in a sharded map, so a 1 TiB ram disk costs only
//! what has been written to it. Reads of never-written chunks return zeroes
//! without allocating.
//!
//! Each shard is one reader-writer lock over its part of the map *and* the
//! bytes of its chunks; chunk `i` lives in shard `i % 256`, so consecutive
//! chunks (and unrelated requests) land in different shards. A request is
//! cut at chunk boundaries and each piece takes its shard's lock once:
//! shared to read, exclusive to write. A 4 KiB read is therefore one lock
//! round trip, one hash lookup and one copy, done inline
//! ([`Backstore::read_nowait`]) without a future. Writers of one shard
//! exclude its readers only while they copy one piece (at most a chunk).
//!
//! Discard (and write-zeroes with `may_unmap`) frees whole chunks and zeroes
//! the partial ones at the edges, so deallocated ranges read back as zeroes
//! ([`Capabilities::DISCARD_ZEROES`]) and [`Backstore::allocation`] reports
//! the chunks actually held. Copies go through
//! [`DataBuffer::read_at`]/[`DataBuffer::write_at`] (volatile), straight
//! between the chunk and the transport's memory.
//!
//! ```
//! use std::sync::Arc;
//! use futures::executor::block_on;
//! use tgtkit_backstores::ram::{RamBackstore, RamOptions};
//! use tgtkit_scsi_core::backstore::{Backstore, WriteFlags};
//! use tgtkit_scsi_core::buffer::DataBuffer;
//!
//! // 1 GiB of 4 KiB blocks; nothing is allocated yet.
//! let ram = RamOptions::new().logical_block_size(4096).build(1 << 30).unwrap();
//! assert_eq!(ram.allocated_bytes(), 0);
//! let disk: Arc<dyn Backstore> = Arc::new(ram);
//!
//! block_on(async {
//!     disk.write(8192, DataBuffer::from_vec(vec![0xab; 4096]), WriteFlags::FUA).await.unwrap();
//!     let out = DataBuffer::zeroed(4096);
//!     disk.read(8192, out.clone()).await.unwrap();
//!     assert_eq!(out.to_vec(), vec![0xab; 4096]);
//! });
//! assert_eq!(disk.geometry().blocks(), (1 << 30) / 4096);
//! ```

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use tgtkit_scsi_core::backstore::{
    AllocationState, AtomicLimits, Backstore, Capabilities, Extent, Geometry, IoError, IoResult,
    WriteFlags,
};
use tgtkit_scsi_core::buffer::DataBuffer;

use crate::error::{check_geometry, check_range, ConfigError};
use crate::ATOMIC_MAX_BYTES;

/// Number of map shards; a power of two.
const SHARDS: usize = 256;
/// Default chunk size.
const DEFAULT_CHUNK: usize = 64 * 1024;
/// Largest chunk size accepted.
const MAX_CHUNK: usize = 16 << 20;
/// Most chunks [`Backstore::allocation`] inspects one by one for a run.
const MAX_WALK: u64 = 1 << 16;

/// A multiplicative hasher for chunk indices (fast, and shards already
/// spread the keys).
#[derive(Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Chunk index to chunk bytes; the shard's lock guards both.
type ChunkMap = HashMap<u64, Box<[u8]>, BuildHasherDefault<IndexHasher>>;

/// One shard, alone on its cache line so that locking one shard does not
/// bounce its neighbours' lines between cores.
#[repr(align(64))]
#[derive(Default)]
struct Shard(RwLock<ChunkMap>);

impl Shard {
    fn read(&self) -> RwLockReadGuard<'_, ChunkMap> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write(&self) -> RwLockWriteGuard<'_, ChunkMap> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Options for a [`RamBackstore`].
#[derive(Debug, Clone)]
pub struct RamOptions {
    logical_block_size: u32,
    physical_block_size: Option<u32>,
    read_only: bool,
    write_cache: bool,
    chunk_size: usize,
    memory_limit: Option<u64>,
}

impl Default for RamOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RamOptions {
    /// Defaults: 512-byte logical and physical blocks, writable, write
    /// cache reported off, 64 KiB chunks, no memory limit beyond the size.
    #[must_use]
    pub fn new() -> Self {
        Self {
            logical_block_size: 512,
            physical_block_size: None,
            read_only: false,
            write_cache: false,
            chunk_size: DEFAULT_CHUNK,
            memory_limit: None,
        }
    }

    /// Logical block size in bytes (a power of two, 512..=65536).
    #[must_use]
    pub fn logical_block_size(mut self, bytes: u32) -> Self {
        self.logical_block_size = bytes;
        self
    }

    /// Physical block size in bytes (a power-of-two multiple of the logical
    /// block size; defaults to the logical block size).
    #[must_use]
    pub fn physical_block_size(mut self, bytes: u32) -> Self {
        self.physical_block_size = Some(bytes);
        self
    }

    /// Refuse writes, discards and write-zeroes with [`IoError::ReadOnly`].
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Initial state of the (emulated) write cache flag, which
    /// MODE SELECT can toggle. Data is never lost either way.
    #[must_use]
    pub fn write_cache(mut self, enabled: bool) -> Self {
        self.write_cache = enabled;
        self
    }

    /// Allocation granularity in bytes (a power of two between the logical
    /// block size and 16 MiB; default 64 KiB).
    #[must_use]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Cap the memory held by chunks: a write that needs a chunk beyond the
    /// cap fails with [`IoError::NoSpace`] (a thin pool running dry).
    #[must_use]
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Build a backstore of `size` bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a bad block size, chunk size, or a size that is
    /// not a multiple of the logical block size.
    pub fn build(&self, size: u64) -> Result<RamBackstore, ConfigError> {
        let logical = self.logical_block_size;
        let physical = self.physical_block_size.unwrap_or(logical);
        check_geometry(size, logical, physical)?;
        let chunk = self.chunk_size;
        if !chunk.is_power_of_two() || chunk < logical as usize || chunk > MAX_CHUNK {
            return Err(ConfigError::ChunkSize(chunk));
        }
        let chunk_u64 = chunk as u64;
        let limit_chunks = self.memory_limit.map_or(u64::MAX, |b| b / chunk_u64);
        Ok(RamBackstore {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            size: AtomicU64::new(size),
            logical,
            physical,
            read_only: AtomicBool::new(self.read_only),
            write_cache: AtomicBool::new(self.write_cache),
            chunk_shift: chunk.trailing_zeros(),
            allocated: AtomicU64::new(0),
            limit_chunks,
            resize_lock: Mutex::new(()),
        })
    }
}

/// A sparse in-memory backstore; see the [module documentation](self).
pub struct RamBackstore {
    shards: Box<[Shard]>,
    size: AtomicU64,
    logical: u32,
    physical: u32,
    read_only: AtomicBool,
    write_cache: AtomicBool,
    chunk_shift: u32,
    /// Chunks currently held.
    allocated: AtomicU64,
    limit_chunks: u64,
    /// Serialises [`RamBackstore::resize`] calls (never taken on the data path).
    resize_lock: Mutex<()>,
}

impl std::fmt::Debug for RamBackstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RamBackstore")
            .field("geometry", &self.geometry())
            .field("allocated_bytes", &self.allocated_bytes())
            .finish_non_exhaustive()
    }
}

/// One piece of a request that falls inside a single chunk.
#[derive(Debug, Clone, Copy)]
struct Piece {
    index: u64,
    /// Offset inside the chunk.
    within: usize,
    len: usize,
    /// Offset of the piece inside the request.
    at: usize,
}

impl RamBackstore {
    /// A writable ram backstore of `size` bytes with 512-byte blocks.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Size`] if `size` is not a multiple of 512.
    pub fn new(size: u64) -> Result<Self, ConfigError> {
        RamOptions::new().build(size)
    }

    /// Bytes currently held by allocated chunks.
    #[must_use]
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed) << self.chunk_shift
    }

    /// The allocation granularity in bytes.
    #[must_use]
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_shift
    }

    /// Make the medium read-only (or writable again).
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::Release);
    }

    /// Change the size of the medium. [`Backstore::geometry`] reports the
    /// new size at once, which the engine turns into CAPACITY DATA HAS
    /// CHANGED. Shrinking frees the chunks past the new end; growing exposes
    /// zeroes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Size`] if `size` is not a multiple of the logical
    /// block size.
    pub fn resize(&self, size: u64) -> Result<(), ConfigError> {
        if size % u64::from(self.logical) != 0 {
            return Err(ConfigError::Size {
                size,
                block: self.logical,
            });
        }
        let _guard = self
            .resize_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.size.load(Ordering::Acquire);
        let round_up = |n: u64| {
            let mask = (1u64 << self.chunk_shift) - 1;
            n.checked_add(mask).map_or(!mask, |v| v & !mask)
        };
        if size < old {
            self.size.store(size, Ordering::Release);
            // Writes that checked against the old size may still land past
            // the new end; growing purges that range again before exposing it.
            self.purge(size, round_up(old));
        } else if size > old {
            self.purge(old, round_up(size));
            self.size.store(size, Ordering::Release);
        }
        Ok(())
    }

    fn shard(&self, index: u64) -> &Shard {
        // The mask keeps the value below SHARDS, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let i = (index as usize) & (SHARDS - 1);
        &self.shards[i]
    }

    fn is_allocated(&self, index: u64) -> bool {
        self.shard(index).read().contains_key(&index)
    }

    /// Run `f` on chunk `index` under its shard's exclusive lock,
    /// allocating the chunk (zeroed) first if it does not exist.
    fn with_chunk_mut(&self, index: u64, f: impl FnOnce(&mut [u8])) -> IoResult<()> {
        let shard = self.shard(index);
        {
            let mut map = shard.write();
            if let Some(chunk) = map.get_mut(&index) {
                f(chunk);
                return Ok(());
            }
        }
        // Reserve before allocating so the cap holds under races, and
        // allocate outside the lock: zeroing a chunk takes a while.
        let prev = self.allocated.fetch_add(1, Ordering::Relaxed);
        if prev >= self.limit_chunks {
            self.allocated.fetch_sub(1, Ordering::Relaxed);
            return Err(IoError::NoSpace);
        }
        let fresh = vec![0u8; self.chunk_size()].into_boxed_slice();
        let mut map = shard.write();
        let chunk = match map.entry(index) {
            Entry::Occupied(o) => {
                // Another writer allocated it meanwhile.
                self.allocated.fetch_sub(1, Ordering::Relaxed);
                o.into_mut()
            }
            Entry::Vacant(v) => v.insert(fresh),
        };
        f(chunk);
        Ok(())
    }

    fn remove(&self, index: u64) {
        let removed = self.shard(index).write().remove(&index);
        if removed.is_some() {
            self.allocated.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Split `[offset, offset + len)` into per-chunk pieces.
    fn pieces(&self, offset: u64, len: u64) -> impl Iterator<Item = Piece> {
        let shift = self.chunk_shift;
        let chunk = 1u64 << shift;
        let end = offset.saturating_add(len);
        let mut pos = offset;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let index = pos >> shift;
            let within = pos & (chunk - 1);
            let n = (chunk - within).min(end - pos);
            // Chunks are at most 16 MiB and requests are bounded by the
            // buffer length (a usize) or checked before, so these fit.
            #[allow(clippy::cast_possible_truncation)]
            let piece = Piece {
                index,
                within: within as usize,
                len: n as usize,
                at: (pos - offset) as usize,
            };
            pos += n;
            Some(piece)
        })
    }

    /// Deallocate whole chunks and zero partial ones in `[from, to)`,
    /// without bounds or read-only checks.
    fn purge(&self, from: u64, to: u64) {
        if to <= from {
            return;
        }
        let chunk = self.chunk_size();
        let span = to - from;
        // Walking a huge range chunk by chunk is slow; past a point, visit
        // only the chunks that exist.
        if (span >> self.chunk_shift)
            > self.allocated.load(Ordering::Relaxed).saturating_mul(4) + 64
        {
            for shard in &*self.shards {
                let mut map = shard.write();
                let mut dropped = 0u64;
                map.retain(|&index, bytes| {
                    let start = index << self.chunk_shift;
                    let end = start + chunk as u64;
                    if end <= from || start >= to {
                        return true;
                    }
                    if start >= from && end <= to {
                        dropped += 1;
                        return false;
                    }
                    let lo = from.max(start) - start;
                    let hi = to.min(end) - start;
                    #[allow(clippy::cast_possible_truncation)]
                    bytes[lo as usize..hi as usize].fill(0);
                    true
                });
                self.allocated.fetch_sub(dropped, Ordering::Relaxed);
            }
            return;
        }
        for p in self.pieces(from, span) {
            if p.len == chunk {
                self.remove(p.index);
            } else if let Some(bytes) = self.shard(p.index).write().get_mut(&p.index) {
                bytes[p.within..p.within + p.len].fill(0);
            }
        }
    }

    fn check_write(&self, offset: u64, len: u64) -> IoResult<()> {
        if self.read_only.load(Ordering::Acquire) {
            return Err(IoError::ReadOnly);
        }
        check_range(offset, len, self.size.load(Ordering::Acquire))
    }

    /// The smallest allocated chunk index `>= from`, if any (scans every shard).
    fn next_allocated(&self, from: u64) -> Option<u64> {
        self.shards
            .iter()
            .filter_map(|s| s.read().keys().copied().filter(|&k| k >= from).min())
            .min()
    }

    /// The whole read, done in place: one shared shard lock per piece.
    fn read_now(&self, offset: u64, buf: &DataBuffer) -> IoResult<()> {
        let len = buf.len() as u64;
        check_range(offset, len, self.size.load(Ordering::Acquire))?;
        for p in self.pieces(offset, len) {
            let map = self.shard(p.index).read();
            if let Some(bytes) = map.get(&p.index) {
                buf.write_at(p.at, &bytes[p.within..p.within + p.len]);
            } else {
                drop(map);
                buf.fill(p.at, p.len, 0);
            }
        }
        Ok(())
    }

    /// The whole write, done in place: one exclusive shard lock per piece.
    fn write_now(&self, offset: u64, buf: &DataBuffer) -> IoResult<()> {
        let len = buf.len() as u64;
        self.check_write(offset, len)?;
        for p in self.pieces(offset, len) {
            self.with_chunk_mut(p.index, |bytes| {
                buf.read_at(p.at, &mut bytes[p.within..p.within + p.len]);
            })?;
        }
        Ok(())
    }
}

#[async_trait]
impl Backstore for RamBackstore {
    fn geometry(&self) -> Geometry {
        Geometry {
            size: self.size.load(Ordering::Acquire),
            logical_block_size: self.logical,
            physical_block_size: self.physical,
            read_only: self.read_only.load(Ordering::Acquire),
            rotational: false,
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::DISCARD
            | Capabilities::DISCARD_ZEROES
            | Capabilities::WRITE_ZEROES
            | Capabilities::ALLOCATION_STATUS
            | Capabilities::WRITE_CACHE_TOGGLE
            | Capabilities::FUA;
        if self.write_cache.load(Ordering::Relaxed) {
            caps |= Capabilities::WRITE_CACHE;
        }
        caps
    }

    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        self.read_now(offset, &buf)
    }

    fn read_nowait(&self, offset: u64, buf: &DataBuffer) -> Option<IoResult<()>> {
        Some(self.read_now(offset, buf))
    }

    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        // Memory is as durable as this medium gets: FUA needs nothing more.
        let _ = flags;
        self.write_now(offset, &buf)
    }

    fn write_nowait(
        &self,
        offset: u64,
        buf: &DataBuffer,
        flags: WriteFlags,
    ) -> Option<IoResult<()>> {
        let _ = flags;
        Some(self.write_now(offset, buf))
    }

    /// Up to [`ATOMIC_MAX_BYTES`], any block: the engine serialises the
    /// write against every other command, and [`write_atomic`] allocates
    /// every chunk before copying a byte, so the memory limit refuses it
    /// whole. Memory does not survive a crash, so there is nothing to tear.
    ///
    /// [`write_atomic`]: Backstore::write_atomic
    fn atomic_limits(&self) -> Option<AtomicLimits> {
        Some(AtomicLimits {
            max_bytes: ATOMIC_MAX_BYTES,
            alignment: 0,
            granularity: 0,
            crash_atomic: true,
        })
    }

    async fn write_atomic(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        let _ = flags;
        let len = buf.len() as u64;
        self.check_write(offset, len)?;
        // Allocate first: a zeroed chunk reads as the hole it replaces, so
        // running out of memory here leaves the range as it was.
        for p in self.pieces(offset, len) {
            self.with_chunk_mut(p.index, |_| {})?;
        }
        self.write_now(offset, &buf)
    }

    async fn flush(&self) -> IoResult<()> {
        Ok(())
    }

    async fn discard(&self, offset: u64, len: u64) -> IoResult<()> {
        self.check_write(offset, len)?;
        self.purge(offset, offset + len);
        Ok(())
    }

    async fn write_zeroes(&self, offset: u64, len: u64, may_unmap: bool) -> IoResult<()> {
        self.check_write(offset, len)?;
        if may_unmap {
            self.purge(offset, offset + len);
            return Ok(());
        }
        // Without may_unmap the range must end up mapped (SBC-4 5.50: WRITE
        // SAME without UNMAP maps the LBAs).
        for p in self.pieces(offset, len) {
            self.with_chunk_mut(p.index, |bytes| {
                bytes[p.within..p.within + p.len].fill(0);
            })?;
        }
        Ok(())
    }

    async fn allocation(&self, offset: u64, len: u64) -> IoResult<Extent> {
        let size = self.size.load(Ordering::Acquire);
        if offset >= size {
            return Err(IoError::OutOfRange);
        }
        let len = len.min(size - offset);
        if len == 0 {
            return Err(IoError::OutOfRange);
        }
        let end = offset + len;
        let shift = self.chunk_shift;
        let first = offset >> shift;
        let mapped = self.is_allocated(first);
        let mut index = first + 1;
        let mut walked = 0u64;
        while (index << shift) < end && walked < MAX_WALK {
            if self.is_allocated(index) != mapped {
                break;
            }
            index += 1;
            walked += 1;
        }
        let mut run_end = (index << shift).min(end);
        if !mapped && walked == MAX_WALK && run_end < end {
            // A long hole: find where it ends without walking it.
            run_end = self
                .next_allocated(index)
                .map_or(end, |next| (next << shift).min(end));
        }
        let state = if mapped {
            AllocationState::Mapped
        } else {
            AllocationState::Deallocated
        };
        Ok(Extent {
            len: run_end - offset,
            state,
        })
    }

    fn write_cache(&self) -> bool {
        self.write_cache.load(Ordering::Relaxed)
    }

    fn set_write_cache(&self, enabled: bool) -> IoResult<()> {
        self.write_cache.store(enabled, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::sync::Arc;

    #[test]
    fn accepts_sparse_writes_and_reads_zeroes_elsewhere() {
        let ram = RamBackstore::new(1 << 30).unwrap();
        block_on(async {
            let buf = DataBuffer::from_vec(vec![7; 1024]);
            ram.write(65536 - 512, buf, WriteFlags::empty())
                .await
                .unwrap();
            // Two chunks touched, nothing else allocated.
            assert_eq!(ram.allocated_bytes(), 2 * 65536);
            let out = DataBuffer::from_vec(vec![0xff; 2048]);
            ram.read(65536 - 1024, out.clone()).await.unwrap();
            let v = out.to_vec();
            assert!(v[..512].iter().all(|&b| b == 0));
            assert!(v[512..1536].iter().all(|&b| b == 7));
            assert!(v[1536..].iter().all(|&b| b == 0));
        });
    }

    #[test]
    fn rejects_bad_geometry() {
        assert!(matches!(
            RamBackstore::new(1000),
            Err(ConfigError::Size { .. })
        ));
        assert!(matches!(
            RamOptions::new().logical_block_size(1000).build(4096),
            Err(ConfigError::LogicalBlockSize(1000))
        ));
        assert!(matches!(
            RamOptions::new()
                .logical_block_size(4096)
                .physical_block_size(512)
                .build(4096),
            Err(ConfigError::PhysicalBlockSize { .. })
        ));
        assert!(matches!(
            RamOptions::new().chunk_size(256).build(4096),
            Err(ConfigError::ChunkSize(256))
        ));
    }

    #[test]
    fn rejects_requests_past_the_end() {
        let ram = RamBackstore::new(8192).unwrap();
        block_on(async {
            let r = ram.read(8192 - 512, DataBuffer::zeroed(1024)).await;
            assert!(matches!(r, Err(IoError::OutOfRange)));
            let r = ram
                .write(u64::MAX - 10, DataBuffer::zeroed(512), WriteFlags::empty())
                .await;
            assert!(matches!(r, Err(IoError::OutOfRange)));
            assert!(matches!(
                ram.discard(4096, 8192).await,
                Err(IoError::OutOfRange)
            ));
            assert!(matches!(
                ram.allocation(8192, 512).await,
                Err(IoError::OutOfRange)
            ));
        });
    }

    #[test]
    fn accepts_long_hole_queries() {
        // 1 PiB, one chunk written far out: the hole before it is found
        // without walking every chunk.
        let ram = RamOptions::new().build(1 << 50).unwrap();
        block_on(async {
            let at = 1u64 << 45;
            ram.write(at, DataBuffer::zeroed(512), WriteFlags::empty())
                .await
                .unwrap();
            let e = ram.allocation(0, 1 << 50).await.unwrap();
            assert_eq!(
                e,
                Extent {
                    len: at,
                    state: AllocationState::Deallocated
                }
            );
            let e = ram.allocation(at, 1 << 50).await.unwrap();
            assert_eq!(
                e,
                Extent {
                    len: 65536,
                    state: AllocationState::Mapped
                }
            );
            ram.discard(0, 1 << 50).await.unwrap();
            assert_eq!(ram.allocated_bytes(), 0);
        });
    }

    #[test]
    fn accepts_inline_requests_with_the_async_results() {
        let ram = RamOptions::new()
            .memory_limit(2 * 65536)
            .build(1 << 20)
            .unwrap();
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        // Across a chunk boundary, inline.
        let at = 65536 - 1024;
        let w = ram.write_nowait(at, &DataBuffer::from_vec(data.clone()), WriteFlags::FUA);
        assert!(matches!(w, Some(Ok(()))));
        let inline = DataBuffer::zeroed(8192);
        assert!(matches!(ram.read_nowait(at - 2048, &inline), Some(Ok(()))));
        let awaited = DataBuffer::zeroed(8192);
        block_on(ram.read(at - 2048, awaited.clone())).unwrap();
        assert_eq!(inline.to_vec(), awaited.to_vec());
        assert_eq!(&inline.to_vec()[2048..2048 + 4096], &data[..]);
        // The same refusals as the async methods.
        let past = ram.read_nowait(1 << 20, &DataBuffer::zeroed(512));
        assert!(matches!(past, Some(Err(IoError::OutOfRange))));
        let third = ram.write_nowait(4 << 16, &DataBuffer::zeroed(512), WriteFlags::empty());
        assert!(matches!(third, Some(Err(IoError::NoSpace))));
        ram.set_read_only(true);
        let ro = ram.write_nowait(0, &DataBuffer::zeroed(512), WriteFlags::empty());
        assert!(matches!(ro, Some(Err(IoError::ReadOnly))));
    }

    #[test]
    fn rejects_torn_reads_under_concurrent_writes_in_one_shard() {
        // Chunks 0 and SHARDS share a shard; a reader of either must see each
        // write whole (each piece is copied under the shard's lock).
        let ram = Arc::new(RamBackstore::new(1 << 26).unwrap());
        let far = (SHARDS as u64) << 16;
        let writer = {
            let ram = Arc::clone(&ram);
            std::thread::spawn(move || {
                for i in 0..2000u32 {
                    let byte = if i % 2 == 0 { 0xaa } else { 0x55 };
                    for at in [0, far] {
                        let buf = DataBuffer::from_vec(vec![byte; 4096]);
                        ram.write_nowait(at, &buf, WriteFlags::empty())
                            .unwrap()
                            .unwrap();
                    }
                }
            })
        };
        let out = DataBuffer::zeroed(4096);
        for i in 0..2000u64 {
            let at = if i % 2 == 0 { 0 } else { far };
            ram.read_nowait(at, &out).unwrap().unwrap();
            let v = out.to_vec();
            assert!(v.iter().all(|&b| b == v[0]), "torn read at {at}");
        }
        writer.join().unwrap();
    }
}
