//! Thin wrappers over the Linux system calls the file backstore uses.
//!
//! Vectored calls take a [`DataBuffer`]'s segments as raw `iovec`s (no
//! `&mut [u8]` is ever formed over the transport's memory), and loop over
//! short transfers, `EINTR`, and more segments than one call takes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use tgtkit_scsi_core::buffer::DataBuffer;

/// iovecs passed per call (well under `IOV_MAX`, 1024).
const IOV_BATCH: usize = 64;

/// `_IOR(0x12, 114, size_t)`: the size of a block device in bytes.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
/// `_IO(0x12, 119)`: discard a byte range `[u64; 2]` of a block device.
const BLKDISCARD: libc::c_ulong = 0x1277;
/// `_IO(0x12, 127)`: zero a byte range `[u64; 2]` of a block device.
const BLKZEROOUT: libc::c_ulong = 0x127f;

/// Fill `iov` with the segments of `buf` starting at byte `skip`; returns
/// how many entries were filled.
pub(crate) fn fill_iovecs(buf: &DataBuffer, skip: usize, iov: &mut [libc::iovec]) -> usize {
    let Some(view) = buf.slice(skip, buf.len() - skip.min(buf.len())) else {
        return 0;
    };
    let mut n = 0;
    for seg in view.segments() {
        if n == iov.len() {
            break;
        }
        iov[n] = libc::iovec {
            iov_base: seg.ptr_guard_mut().as_ptr().cast(),
            iov_len: seg.len(),
        };
        n += 1;
    }
    n
}

/// An iovec array for [`fill_iovecs`], all entries empty.
fn empty_iovecs() -> [libc::iovec; IOV_BATCH] {
    [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; IOV_BATCH]
}

/// `offset` as an `off_t` (EINVAL past `i64::MAX`).
fn to_off(offset: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Whether the call should simply be repeated.
fn retry(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// From the file into the buffer.
    Read,
    /// From the buffer into the file.
    Write,
}

/// Move all of `buf` at `offset` with `preadv2`/`pwritev2` and `flags`
/// (`RWF_*`): batches of the buffer's segments, `EINTR` repeated, bytes past
/// the end of a regular file read as zeroes, a write that moves nothing
/// failing with `WriteZero`. With `RWF_NOWAIT`, a call that would block, or
/// that moves fewer bytes than its iovecs hold (part of the range is not in
/// the page cache), fails with `EAGAIN`; what was moved before stays moved.
/// Other errors are returned untouched (`EOPNOTSUPP` for a refused flag
/// among them), for the caller to fall back.
pub(crate) fn transfer_all(
    fd: BorrowedFd<'_>,
    buf: &DataBuffer,
    offset: u64,
    dir: Dir,
    flags: libc::c_int,
) -> io::Result<()> {
    let nowait = flags & libc::RWF_NOWAIT != 0;
    let len = buf.len();
    let mut done = 0usize;
    let mut iov = empty_iovecs();
    while done < len {
        let n = fill_iovecs(buf, done, &mut iov);
        let want: usize = iov[..n].iter().map(|v| v.iov_len).sum();
        let pos = to_off(offset + done as u64)?;
        // n <= IOV_BATCH, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let count = n as libc::c_int;
        let r = match dir {
            // SAFETY: every iovec names memory of a segment of `buf`, which
            // `buf`'s owner keeps valid for the duration of the call; the
            // kernel writes it like a device would (DataBuffer's contract).
            Dir::Read => unsafe { libc::preadv2(fd.as_raw_fd(), iov.as_ptr(), count, pos, flags) },
            // SAFETY: every iovec names memory of a segment of `buf`, valid
            // for reads while `buf`'s owner lives (for the whole call).
            Dir::Write => unsafe {
                libc::pwritev2(fd.as_raw_fd(), iov.as_ptr(), count, pos, flags)
            },
        };
        if r < 0 {
            let err = io::Error::last_os_error();
            if retry(&err) {
                continue;
            }
            return Err(err);
        }
        if r == 0 {
            return match dir {
                Dir::Read => {
                    buf.fill(done, len - done, 0);
                    Ok(())
                }
                Dir::Write if nowait => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
                Dir::Write => Err(io::Error::from(io::ErrorKind::WriteZero)),
            };
        }
        // r > 0 and bounded by the iovec lengths.
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let r = r as usize;
        if nowait && r < want {
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        done += r;
    }
    Ok(())
}

/// Read `buf.len()` bytes at `offset` into `buf`. Bytes past the end of a
/// regular file read as zeroes.
pub(crate) fn preadv_all(fd: BorrowedFd<'_>, buf: &DataBuffer, offset: u64) -> io::Result<()> {
    transfer_all(fd, buf, offset, Dir::Read, 0)
}

/// Write all of `buf` at `offset`; with `dsync` pass `RWF_DSYNC` so each
/// write is durable when it returns. Returns `Err(EOPNOTSUPP)` untouched if
/// the kernel refuses the flag, for the caller to fall back.
pub(crate) fn pwritev_all(
    fd: BorrowedFd<'_>,
    buf: &DataBuffer,
    offset: u64,
    dsync: bool,
) -> io::Result<()> {
    let flags = if dsync { libc::RWF_DSYNC } else { 0 };
    transfer_all(fd, buf, offset, Dir::Write, flags)
}

/// Whether `err` says the kernel or filesystem does not support the call.
pub(crate) fn unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::ENOTTY)
    )
}

/// Size of a block device in bytes.
pub(crate) fn block_device_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points
    // at a live local.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

fn range_ioctl(
    fd: BorrowedFd<'_>,
    request: libc::c_ulong,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let range: [u64; 2] = [offset, len];
    // SAFETY: BLKDISCARD and BLKZEROOUT read two u64s through the pointer,
    // which points at a live local array.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, range.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Discard a byte range of a block device.
pub(crate) fn blk_discard(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    range_ioctl(fd, BLKDISCARD, offset, len)
}

/// Zero a byte range of a block device.
pub(crate) fn blk_zeroout(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    range_ioctl(fd, BLKZEROOUT, offset, len)
}

/// Memory aligned for direct I/O, zero-filled, owned.
pub(crate) struct AlignedMemory {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

// SAFETY: the allocation is owned exclusively and only accessed through a
// DataBuffer made over it (volatile copies and syscalls).
unsafe impl Send for AlignedMemory {}
// SAFETY: as above: no references are handed out.
unsafe impl Sync for AlignedMemory {}

impl Drop for AlignedMemory {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this `layout`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// A zero-filled buffer of `len` bytes aligned to `align`, as a
/// [`DataBuffer`] (for direct I/O bounce buffers and zero writes).
pub(crate) fn aligned_buffer(len: usize, align: usize) -> DataBuffer {
    let Ok(layout) = std::alloc::Layout::from_size_align(len.max(1), align) else {
        return DataBuffer::zeroed(len);
    };
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    let mem = std::sync::Arc::new(AlignedMemory { ptr, layout });
    // SAFETY: `ptr` is valid for `len` bytes for as long as `mem`, the
    // owner, lives; nothing else references it.
    unsafe { DataBuffer::from_raw_segments(&[(ptr, len)], mem) }
}

/// Whether every segment of `buf` starts and ends on `align`.
pub(crate) fn is_aligned(buf: &DataBuffer, align: usize) -> bool {
    buf.segments()
        .all(|seg| (seg.ptr_guard().as_ptr() as usize) % align == 0 && seg.len() % align == 0)
}
