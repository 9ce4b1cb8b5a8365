//! The `Backstore` trait: the byte-addressed async storage under a logical unit.
//!
//! A backstore moves data between its medium and the transport's
//! [`DataBuffer`]s, at byte offsets. It knows nothing of SCSI: the device
//! model turns LBAs into offsets and backstore errors into sense data
//! ([`IoError::sense`]).
//!
//! Implementations live in the `tgtkit-backstores` crate (ram, file, qcow2);
//! embedders may write their own. Methods are `async` through `async-trait`
//! and must not block the calling executor: blocking syscalls belong on a
//! thread pool the backstore owns.
//!
//! A backstore reports a size change by returning the new size from
//! [`Backstore::geometry`]: the engine compares it before each command and
//! raises CAPACITY DATA HAS CHANGED on every nexus when it differs.
//!
//! # The synchronous fast path
//!
//! Every call to an `async-trait` method allocates its future on the heap.
//! For a backstore whose data is at hand (memory, a cache hit) that box,
//! and the suspension machinery around it, cost more than the I/O itself.
//! Such a backstore also implements [`Backstore::read_nowait`] and
//! [`Backstore::write_nowait`]: the device model calls them first and
//! awaits [`Backstore::read`]/[`Backstore::write`] only when they return
//! `None` ("this would have to wait"). It is the same contract as
//! `preadv2(RWF_NOWAIT)`: complete now, or do nothing and say so. Both
//! default to `None`, so a backstore without a fast path needs no code,
//! and the result of a request never depends on which path served it.
//!
//! ```
//! use tgtkit_scsi_core::backstore::*;
//! use tgtkit_scsi_core::buffer::DataBuffer;
//!
//! /// A medium that reads as zeroes and discards writes, all inline.
//! struct Null;
//!
//! impl Null {
//!     fn check(&self, offset: u64, buf: &DataBuffer) -> IoResult<()> {
//!         match offset.checked_add(buf.len() as u64) {
//!             Some(end) if end <= 1 << 20 => Ok(()),
//!             _ => Err(IoError::OutOfRange),
//!         }
//!     }
//! }
//!
//! #[async_trait::async_trait]
//! impl Backstore for Null {
//!     fn geometry(&self) -> Geometry { Geometry::new(1 << 20, 512) }
//!     fn capabilities(&self) -> Capabilities { Capabilities::empty() }
//!     async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
//!         self.check(offset, &buf)?;
//!         buf.fill(0, buf.len(), 0);
//!         Ok(())
//!     }
//!     async fn write(&self, offset: u64, buf: DataBuffer, _: WriteFlags) -> IoResult<()> {
//!         self.check(offset, &buf)
//!     }
//!     async fn flush(&self) -> IoResult<()> { Ok(()) }
//!     // The fast path: the same work, without a future.
//!     fn read_nowait(&self, offset: u64, buf: &DataBuffer) -> Option<IoResult<()>> {
//!         Some(self.check(offset, buf).map(|()| { buf.fill(0, buf.len(), 0); }))
//!     }
//!     fn write_nowait(&self, offset: u64, buf: &DataBuffer, _: WriteFlags) -> Option<IoResult<()>> {
//!         Some(self.check(offset, buf))
//!     }
//! }
//! ```

use std::io;

use async_trait::async_trait;
use bitflags::bitflags;

use crate::buffer::DataBuffer;
use crate::sense::{Asc, Sense, SenseKey};

/// Size and shape of a backstore's medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Size of the medium in bytes (a multiple of `logical_block_size`).
    pub size: u64,
    /// Logical block size in bytes (512, 4096, ...).
    pub logical_block_size: u32,
    /// Physical block size in bytes: a power-of-two multiple of the logical
    /// block size.
    pub physical_block_size: u32,
    /// The medium refuses writes.
    pub read_only: bool,
    /// The medium is rotational (INQUIRY VPD B1h reports 1 rpm otherwise).
    pub rotational: bool,
}

impl Geometry {
    /// A geometry of `size` bytes with the given logical block size, a
    /// physical block of the same size, writable and non-rotational.
    #[must_use]
    pub fn new(size: u64, logical_block_size: u32) -> Self {
        Self {
            size,
            logical_block_size,
            physical_block_size: logical_block_size,
            read_only: false,
            rotational: false,
        }
    }

    /// Number of logical blocks.
    #[must_use]
    pub fn blocks(&self) -> u64 {
        if self.logical_block_size == 0 {
            0
        } else {
            self.size / u64::from(self.logical_block_size)
        }
    }
}

bitflags! {
    /// What a backstore can do beyond reading and writing.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Capabilities: u32 {
        /// `discard` deallocates (thin provisioning: UNMAP, WRITE SAME with UNMAP).
        const DISCARD = 1 << 0;
        /// Deallocated ranges read back as zeroes (LBPRZ).
        const DISCARD_ZEROES = 1 << 1;
        /// `write_zeroes` is cheaper than writing a buffer of zeroes.
        const WRITE_ZEROES = 1 << 2;
        /// `allocation` reports real mapped/deallocated extents.
        const ALLOCATION_STATUS = 1 << 3;
        /// The medium has a volatile write cache that `flush` empties.
        const WRITE_CACHE = 1 << 4;
        /// The write cache can be switched on and off (`set_write_cache`).
        const WRITE_CACHE_TOGGLE = 1 << 5;
        /// `write` honours `WriteFlags::FUA` natively (otherwise the device
        /// model flushes after the write).
        const FUA = 1 << 6;
    }
}

bitflags! {
    /// Per-write options.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct WriteFlags: u32 {
        /// Force unit access: the data is durable when the write completes.
        const FUA = 1 << 0;
    }
}

/// Allocation state of an extent, as GET LBA STATUS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationState {
    /// Mapped (allocated) on the medium.
    Mapped,
    /// Deallocated (a hole).
    Deallocated,
    /// Anchored: deallocated, with resources reserved.
    Anchored,
}

/// An extent returned by [`Backstore::allocation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Byte length of the extent starting at the queried offset (non-zero).
    pub len: u64,
    /// Its allocation state.
    pub state: AllocationState,
}

/// An error from a backstore operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// A read failed on the medium.
    #[error("read failed: {0}")]
    Read(#[source] io::Error),
    /// A write (or flush, discard, write-zeroes) failed on the medium.
    #[error("write failed: {0}")]
    Write(#[source] io::Error),
    /// The medium is out of space (ENOSPC or a thin pool exhausted).
    #[error("no space left on the medium")]
    NoSpace,
    /// The request reaches past the end of the medium.
    #[error("request past the end of the medium")]
    OutOfRange,
    /// The medium is read-only.
    #[error("medium is read-only")]
    ReadOnly,
    /// The backstore does not implement this operation.
    #[error("operation not supported by this backstore")]
    Unsupported,
}

impl IoError {
    /// Classify an `io::Error` from a write path (ENOSPC becomes `NoSpace`).
    #[must_use]
    pub fn from_write(err: io::Error) -> Self {
        if err.raw_os_error() == Some(28) || err.kind() == io::ErrorKind::StorageFull {
            IoError::NoSpace
        } else {
            IoError::Write(err)
        }
    }

    /// The sense data SBC-4 prescribes for this error.
    #[must_use]
    pub fn sense(&self) -> Sense {
        match self {
            IoError::Read(_) => Sense::new(SenseKey::MEDIUM_ERROR, Asc::UNRECOVERED_READ_ERROR),
            IoError::Write(_) => Sense::new(SenseKey::MEDIUM_ERROR, Asc::WRITE_ERROR),
            IoError::NoSpace => Sense::new(
                SenseKey::DATA_PROTECT,
                Asc::SPACE_ALLOCATION_FAILED_WRITE_PROTECT,
            ),
            IoError::OutOfRange => Sense::new(SenseKey::ILLEGAL_REQUEST, Asc::LBA_OUT_OF_RANGE),
            IoError::ReadOnly => Sense::new(SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED),
            IoError::Unsupported => Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::INVALID_COMMAND_OPERATION_CODE,
            ),
        }
    }
}

/// Result of a backstore operation.
pub type IoResult<T> = Result<T, IoError>;

/// What a backstore promises about atomic writes (SBC-4 §4.29, WRITE
/// ATOMIC (16)); all values in bytes.
///
/// The engine itself makes a WRITE ATOMIC indivisible against every other
/// command of the logical unit: it holds the unit's write gate exclusively
/// (ordinary writes, WRITE SAME, UNMAP and COMPARE AND WRITE hold it shared
/// or exclusive too), and reads that overlap an atomic write in time are
/// done again under the gate, so no command of this target sees part of
/// one. What a backstore adds by returning limits is that its
/// [`write_atomic`](Backstore::write_atomic) either changes the whole range
/// or, when it returns an error, none of it as far as it can check before
/// writing. Atomicity across a crash or power loss is only what
/// [`crash_atomic`](Self::crash_atomic) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AtomicLimits {
    /// Largest atomic write (MAXIMUM ATOMIC TRANSFER LENGTH).
    pub max_bytes: u64,
    /// An atomic write starts on a multiple of this (ATOMIC ALIGNMENT;
    /// a multiple of the logical block size, or 0 for any block).
    pub alignment: u64,
    /// An atomic write's length is a multiple of this (ATOMIC TRANSFER
    /// LENGTH GRANULARITY; a multiple of the logical block size, or 0).
    pub granularity: u64,
    /// The write is all-or-nothing across a crash of this process or of the
    /// host, not only against other commands.
    pub crash_atomic: bool,
}

/// Byte-addressed async storage under a logical unit.
///
/// All offsets and lengths are in bytes; the device model only issues
/// requests aligned to the logical block size and inside `geometry().size`.
/// Buffers are the transport's own memory: read into them and write from
/// them in place (see [`DataBuffer`]).
#[async_trait]
pub trait Backstore: Send + Sync + 'static {
    /// Current geometry. Cheap: called before every command.
    fn geometry(&self) -> Geometry;

    /// What this backstore can do.
    fn capabilities(&self) -> Capabilities;

    /// Read `buf.len()` bytes at `offset` into `buf`.
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()>;

    /// Write `buf` at `offset`. With [`WriteFlags::FUA`] the data must be
    /// durable when this returns.
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()>;

    /// Make every completed write durable.
    async fn flush(&self) -> IoResult<()>;

    /// Read `buf.len()` bytes at `offset` into `buf` without suspending, if
    /// this backstore can: the synchronous fast path of
    /// [`read`](Backstore::read) (see the [module documentation](self)).
    ///
    /// Returns `Some(result)` when the read was done here, with exactly the
    /// result and effect [`read`](Backstore::read) would have had, or `None`
    /// when it would have to wait (I/O to issue, a lock held for long, a
    /// cache miss); `None` means nothing was done, and the caller then
    /// awaits [`read`](Backstore::read) with the same arguments.
    ///
    /// It runs on the caller's executor thread, so it must not block: no
    /// syscall that can sleep on the medium, no lock that may be held
    /// across I/O. Short, uncontended locks and memory copies are what it is
    /// for. The buffer is borrowed because the data has moved by the time
    /// this returns. The default returns `None`.
    ///
    /// A backstore that wraps another and changes what `read` does (a
    /// size limit, a fault injector) must apply the same change here or
    /// leave the default.
    fn read_nowait(&self, offset: u64, buf: &DataBuffer) -> Option<IoResult<()>> {
        let _ = (offset, buf);
        None
    }

    /// Write `buf` at `offset` without suspending, if this backstore can:
    /// the synchronous fast path of [`write`](Backstore::write), under the
    /// same contract as [`read_nowait`](Backstore::read_nowait). With
    /// [`WriteFlags::FUA`] it returns `Some` only if the data is durable.
    /// The default returns `None`.
    fn write_nowait(
        &self,
        offset: u64,
        buf: &DataBuffer,
        flags: WriteFlags,
    ) -> Option<IoResult<()>> {
        let _ = (offset, buf, flags);
        None
    }

    /// The atomic writes this backstore supports, or `None` (the default):
    /// WRITE ATOMIC (16) is then INVALID COMMAND OPERATION CODE and the
    /// Block Limits VPD page's atomic fields are zero.
    fn atomic_limits(&self) -> Option<AtomicLimits> {
        None
    }

    /// Write `buf` at `offset` as one atomic write (see [`AtomicLimits`]):
    /// only called within [`atomic_limits`](Backstore::atomic_limits), while
    /// the engine keeps every other command of the unit off the medium.
    /// The default is [`write`](Backstore::write); a backstore overrides it
    /// to refuse what it can before touching the range.
    async fn write_atomic(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.write(offset, buf, flags).await
    }

    /// Deallocate `len` bytes at `offset`. Only called with
    /// [`Capabilities::DISCARD`]. What the range reads back afterwards is
    /// zeroes if [`Capabilities::DISCARD_ZEROES`], otherwise unspecified.
    async fn discard(&self, offset: u64, len: u64) -> IoResult<()> {
        let _ = (offset, len);
        Err(IoError::Unsupported)
    }

    /// Make `len` bytes at `offset` read back as zeroes; with `may_unmap`
    /// the backstore may deallocate them.
    ///
    /// The default writes a zero buffer in chunks.
    async fn write_zeroes(&self, offset: u64, len: u64, may_unmap: bool) -> IoResult<()> {
        let _ = may_unmap;
        const CHUNK: u64 = 1 << 20;
        let zero = DataBuffer::zeroed(usize::try_from(len.min(CHUNK)).unwrap_or(1 << 20));
        let mut at = 0u64;
        while at < len {
            let n = (len - at).min(CHUNK);
            let piece = zero.truncated(usize::try_from(n).unwrap_or(zero.len()));
            self.write(offset + at, piece, WriteFlags::empty()).await?;
            at += n;
        }
        Ok(())
    }

    /// Allocation state of the extent starting at `offset`, looking no
    /// further than `len` bytes. The default reports everything mapped.
    async fn allocation(&self, offset: u64, len: u64) -> IoResult<Extent> {
        let _ = offset;
        Ok(Extent {
            len,
            state: AllocationState::Mapped,
        })
    }

    /// Whether the volatile write cache is enabled (MODE SENSE page 08h WCE).
    fn write_cache(&self) -> bool {
        self.capabilities().contains(Capabilities::WRITE_CACHE)
    }

    /// Enable or disable the volatile write cache (MODE SELECT page 08h).
    ///
    /// # Errors
    ///
    /// [`IoError::Unsupported`] unless [`Capabilities::WRITE_CACHE_TOGGLE`].
    fn set_write_cache(&self, enabled: bool) -> IoResult<()> {
        let _ = enabled;
        Err(IoError::Unsupported)
    }
}
