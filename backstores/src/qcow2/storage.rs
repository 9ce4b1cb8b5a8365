//! imago's `Storage` on our own file I/O.
//!
//! [`ImageFile`] is a regular file (pread/pwrite/fdatasync/fallocate through
//! rustix) or, for tests and the fuzzer, a capped in-memory byte vector.
//!
//! Its async methods do their syscalls inline: they are only ever polled
//! from [`BlockingPool`](crate::pool::BlockingPool) workers, which drive
//! imago's futures to completion with `futures::executor::block_on` (see
//! the parent module). So the syscalls run on pool threads, never on the
//! embedder's executor, and imago needs no runtime: its async code only
//! uses `tokio::sync` locks and channels, which work under any executor.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use imago::io_buffers::{IoVector, IoVectorMut};
use imago::storage::drivers::CommonStorageHelper;
use imago::storage::PreallocateMode;
use imago::{Storage, StorageCreateOptions, StorageOpenOptions};
use rustix::fs::{FallocateFlags, Mode, OFlags};

use super::refguard::{RawFile, RefcountGuard};

/// Alignment we ask of offsets, lengths and buffers with `O_DIRECT`.
const DIRECT_ALIGN: usize = 4096;

/// Where the bytes live.
enum Backend {
    /// A file descriptor.
    Fd(OwnedFd),
    /// Memory, never grown past `cap` bytes.
    Mem { data: RwLock<Vec<u8>>, cap: u64 },
}

/// A storage object for imago: a file on our own syscalls, or memory.
pub struct ImageFile {
    backend: Backend,
    path: Option<PathBuf>,
    writable: bool,
    direct: bool,
    helper: CommonStorageHelper,
    /// Gives clusters a refcount before imago's pointers name them, for a
    /// writable qcow2 image (see [`super::refguard`]); `None` for
    /// read-only layers and raw files.
    guard: Option<RefcountGuard>,
}

impl fmt::Debug for ImageFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageFile")
            .field("path", &self.path)
            .field("writable", &self.writable)
            .field("direct", &self.direct)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ImageFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}", p.display()),
            None => f.write_str("<memory>"),
        }
    }
}

impl ImageFile {
    /// Open `path` (blocking: call on a pool thread).
    pub(crate) fn open_path(path: &Path, writable: bool, direct: bool) -> io::Result<Self> {
        let mut flags = if writable {
            OFlags::RDWR
        } else {
            OFlags::RDONLY
        };
        flags |= OFlags::CLOEXEC;
        if direct {
            flags |= OFlags::DIRECT;
        }
        let fd = rustix::fs::open(path, flags, Mode::empty())?;
        Ok(Self {
            backend: Backend::Fd(fd),
            path: Some(path.to_owned()),
            writable,
            direct,
            helper: CommonStorageHelper::default(),
            guard: None,
        })
    }

    /// Create (or truncate) `path` for a new image (blocking).
    pub(crate) fn create_path(path: &Path, overwrite: bool) -> io::Result<Self> {
        let mut flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC;
        if overwrite {
            flags |= OFlags::TRUNC;
        } else {
            flags |= OFlags::EXCL;
        }
        let fd = rustix::fs::open(path, flags, Mode::from_bits_truncate(0o644))?;
        Ok(Self {
            backend: Backend::Fd(fd),
            path: Some(path.to_owned()),
            writable: true,
            direct: false,
            helper: CommonStorageHelper::default(),
            guard: None,
        })
    }

    /// An in-memory image holding `data`, never grown past `cap` bytes.
    pub(crate) fn memory(data: Vec<u8>, cap: u64, writable: bool) -> Self {
        Self {
            backend: Backend::Mem {
                data: RwLock::new(data),
                cap,
            },
            path: None,
            writable,
            direct: false,
            helper: CommonStorageHelper::default(),
            guard: None,
        }
    }

    /// Guard this file's metadata pointer writes (see [`super::refguard`]),
    /// starting from `header` (the image's first bytes, as on disk) and its
    /// refcount table.
    pub(crate) fn guard_refcounts(&mut self, header: &[u8], reftable: &[u8]) {
        self.guard = Some(RefcountGuard::new(header, reftable));
    }

    /// Read up to `buf.len()` bytes at `offset`; returns how many (blocking).
    ///
    /// With `O_DIRECT`, unaligned requests go through an aligned buffer.
    pub(crate) fn pread_some(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let align = DIRECT_ALIGN as u64;
        let aligned = offset % align == 0
            && buf.len() as u64 % align == 0
            && buf.as_ptr() as usize % DIRECT_ALIGN == 0;
        if !self.direct || aligned {
            return self.pread_raw(buf, offset);
        }
        let start = offset / align * align;
        let end = (offset + buf.len() as u64).div_ceil(align) * align;
        let mut bounce = imago::io_buffers::IoBuffer::new(to_usize(end - start)?, DIRECT_ALIGN)?;
        let got = self.pread_raw(bounce.as_mut().into_slice(), start)?;
        let skip = to_usize(offset - start)?;
        let n = got.saturating_sub(skip).min(buf.len());
        buf[..n].copy_from_slice(&bounce.as_ref().into_slice()[skip..skip + n]);
        Ok(n)
    }

    fn pread_raw(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = match &self.backend {
                Backend::Fd(fd) => {
                    match rustix::io::pread(fd.as_fd(), &mut buf[done..], offset + done as u64) {
                        Ok(n) => n,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Backend::Mem { data, .. } => {
                    let data = data.read().map_err(|_| io::Error::other("poisoned"))?;
                    mem_read(&data, &mut buf[done..], offset + done as u64)
                }
            };
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "storage opened read-only",
            ))
        }
    }

    fn fd_size(fd: &OwnedFd) -> io::Result<u64> {
        let st = rustix::fs::fstat(fd)?;
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Make `[offset, offset+len)` read as zeroes, allocated (extends the file).
    fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range overflow"))?;
        match &self.backend {
            Backend::Fd(fd) => {
                match rustix::fs::fallocate(fd, FallocateFlags::ZERO_RANGE, offset, len) {
                    Ok(()) => Ok(()),
                    Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL) => {
                        self.write_zero_bytes(offset, len)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Backend::Mem { data, cap } => {
                let mut data = data.write().map_err(|_| io::Error::other("poisoned"))?;
                mem_grow(&mut data, end, *cap)?;
                let (s, e) = (to_usize(offset)?, to_usize(end)?);
                data[s..e].fill(0);
                Ok(())
            }
        }
    }

    fn write_zero_bytes(&self, mut offset: u64, len: u64) -> io::Result<()> {
        let zero = vec![0u8; DIRECT_ALIGN.max(64 << 10)];
        let end = offset + len;
        while offset < end {
            let n = usize::try_from(end - offset).map_or(zero.len(), |r| r.min(zero.len()));
            self.pwrite_all(&[IoSlice::new(&zero[..n])], offset)?;
            offset += n as u64;
        }
        Ok(())
    }

    fn pwrite_all(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        match &self.backend {
            Backend::Fd(fd) => {
                let mut off = offset;
                for b in bufs {
                    let mut done = 0;
                    while done < b.len() {
                        match rustix::io::pwrite(fd.as_fd(), &b[done..], off) {
                            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                            Ok(n) => {
                                done += n;
                                off += n as u64;
                            }
                            Err(rustix::io::Errno::INTR) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Ok(())
            }
            Backend::Mem { data, cap } => {
                let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
                let end = offset
                    .checked_add(total)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "overflow"))?;
                let mut data = data.write().map_err(|_| io::Error::other("poisoned"))?;
                mem_grow(&mut data, end, *cap)?;
                let mut at = to_usize(offset)?;
                for b in bufs {
                    data[at..at + b.len()].copy_from_slice(b);
                    at += b.len();
                }
                Ok(())
            }
        }
    }
}

impl RawFile for ImageFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let n = self.pread_some(buf, offset)?;
        buf[n..].fill(0);
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.pwrite_all(&[IoSlice::new(data)], offset)
    }
}

fn to_usize(v: u64) -> io::Result<usize> {
    usize::try_from(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

fn mem_read(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let Ok(off) = usize::try_from(offset) else {
        return 0;
    };
    if off >= data.len() {
        return 0;
    }
    let n = buf.len().min(data.len() - off);
    buf[..n].copy_from_slice(&data[off..off + n]);
    n
}

fn mem_grow(data: &mut Vec<u8>, end: u64, cap: u64) -> io::Result<()> {
    if end > cap {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "in-memory image would exceed its cap",
        ));
    }
    let end = to_usize(end)?;
    if data.len() < end {
        data.resize(end, 0);
    }
    Ok(())
}

impl Storage for ImageFile {
    async fn open(opts: StorageOpenOptions) -> io::Result<Self> {
        let path = opts
            .get_filename()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no filename"))?
            .to_owned();
        Self::open_path(&path, opts.get_writable(), opts.get_direct())
    }

    async fn create_open(opts: StorageCreateOptions) -> io::Result<Self> {
        let overwrite = opts.get_overwrite();
        let size = opts.get_size();
        let path = opts
            .get_filename()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no filename"))?
            .to_owned();
        let file = Self::create_path(&path, overwrite)?;
        if let Backend::Fd(fd) = &file.backend {
            rustix::fs::ftruncate(fd, size)?;
        }
        Ok(file)
    }

    fn mem_align(&self) -> usize {
        if self.direct {
            DIRECT_ALIGN
        } else {
            1
        }
    }

    fn req_align(&self) -> usize {
        if self.direct {
            DIRECT_ALIGN
        } else {
            1
        }
    }

    fn size(&self) -> io::Result<u64> {
        match &self.backend {
            Backend::Fd(fd) => Self::fd_size(fd),
            Backend::Mem { data, .. } => {
                Ok(data.read().map_err(|_| io::Error::other("poisoned"))?.len() as u64)
            }
        }
    }

    fn resolve_relative_path<P: AsRef<Path>>(&self, relative: P) -> io::Result<PathBuf> {
        let relative = relative.as_ref();
        if relative.is_absolute() {
            return Ok(relative.to_owned());
        }
        let base = self
            .path
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "in-memory image"))?;
        let dir = base.parent().unwrap_or(Path::new("."));
        Ok(dir.join(relative))
    }

    fn get_filename(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    async unsafe fn pure_readv(&self, bufv: IoVectorMut<'_>, offset: u64) -> io::Result<()> {
        let mut slices: Vec<IoSliceMut<'_>> = bufv.into_inner();
        let mut off = offset;
        for s in slices.iter_mut() {
            let n = self.pread_some(s, off)?;
            // Reads past the end of the file return zeroes (Storage contract).
            s[n..].fill(0);
            off += s.len() as u64;
        }
        Ok(())
    }

    async unsafe fn pure_writev(&self, bufv: IoVector<'_>, offset: u64) -> io::Result<()> {
        let slices: Vec<IoSlice<'_>> = bufv.into_inner();
        if let Some(guard) = &self.guard {
            let len = slices.iter().map(|s| s.len() as u64).sum();
            if guard.watches(offset, len) {
                let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                for s in &slices {
                    data.extend_from_slice(s);
                }
                guard.before_write(offset, &data, self)?;
            }
        }
        self.pwrite_all(&slices, offset)
    }

    async unsafe fn pure_write_zeroes(&self, offset: u64, length: u64) -> io::Result<()> {
        self.zero_range(offset, length)
    }

    async unsafe fn pure_write_allocated_zeroes(&self, offset: u64, length: u64) -> io::Result<()> {
        self.zero_range(offset, length)
    }

    async unsafe fn pure_discard(&self, offset: u64, length: u64) -> io::Result<()> {
        self.check_writable()?;
        if let Backend::Fd(fd) = &self.backend {
            let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
            // Discard is advisory: a filesystem without hole punching keeps the data.
            match rustix::fs::fallocate(fd, flags, offset, length) {
                Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn flush(&self) -> io::Result<()> {
        // No buffers of our own: every write went to the kernel already.
        Ok(())
    }

    async fn sync(&self) -> io::Result<()> {
        match &self.backend {
            Backend::Fd(fd) if self.writable => Ok(rustix::fs::fdatasync(fd)?),
            _ => Ok(()),
        }
    }

    async unsafe fn invalidate_cache(&self) -> io::Result<()> {
        Ok(())
    }

    fn get_storage_helper(&self) -> &CommonStorageHelper {
        &self.helper
    }

    async fn resize(&self, new_size: u64, prealloc_mode: PreallocateMode) -> io::Result<()> {
        self.check_writable()?;
        match &self.backend {
            Backend::Fd(fd) => {
                let old = Self::fd_size(fd)?;
                rustix::fs::ftruncate(fd, new_size)?;
                if new_size > old {
                    match prealloc_mode {
                        PreallocateMode::None | PreallocateMode::Zero => {}
                        PreallocateMode::Allocate => {
                            rustix::fs::fallocate(
                                fd,
                                FallocateFlags::KEEP_SIZE,
                                old,
                                new_size - old,
                            )?;
                        }
                        _ => self.write_zero_bytes(old, new_size - old)?,
                    }
                }
                Ok(())
            }
            Backend::Mem { data, cap } => {
                if new_size > *cap {
                    return Err(io::ErrorKind::StorageFull.into());
                }
                let mut data = data.write().map_err(|_| io::Error::other("poisoned"))?;
                data.resize(to_usize(new_size)?, 0);
                Ok(())
            }
        }
    }
}
