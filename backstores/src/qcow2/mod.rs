//! qcow2 images, with backing chains, on [imago](https://docs.rs/imago).
//!
//! [`Qcow2Backstore`] opens a qcow2 image (version 2 or 3) read-write, and
//! its backing chain (qcow2 on qcow2 on raw, any depth up to
//! [`Qcow2Options::max_chain_depth`]) read-only below the top. It reads and
//! writes, flushes, discards (clusters are freed or become zero clusters,
//! so discarded ranges read back as zeroes), writes zeroes (zero clusters
//! on version 3 images), reports allocation status for GET LBA STATUS, and
//! reads compressed clusters. [`Qcow2Backstore::create`] makes new images.
//!
//! Refused with [`Qcow2Error::Unsupported`] at open: encrypted images
//! (imago 0.2 would not notice), writing images with internal snapshots,
//! dirty (lazy-refcount) or corrupt images, external data files, zstd
//! compression, extended L2 entries and unknown incompatible features.
//! imago never writes compressed clusters (a write to one allocates a
//! normal cluster), so there is nothing to refuse there.
//!
//! # Crash consistency
//!
//! A kill at any instant leaves an image `qemu-img check` finds clean (at
//! worst with leaked clusters) in which every write acknowledged before a
//! completed flush reads back. imago 0.2.6 alone does not give that (it
//! writes some metadata pointers before the refcounts they need); the
//! storage layer under it restores the order QEMU keeps, so the crates.io
//! imago is used unpatched. The `refguard` module explains how, and
//! `tests/qcow2_crash.rs` is the proof.
//!
//! # Threads and runtimes
//!
//! imago's async API needs no runtime: it uses `tokio::sync` locks and
//! channels only (imago is built with `default-features = false,
//! features = ["async"]`, which enables tokio's `sync` feature alone). Its
//! futures are not `Send`, so every request runs on a worker of the
//! backstore's [`BlockingPool`]: the worker drives imago's future to
//! completion with `futures::executor::block_on`, and the storage under
//! imago ([`storage::ImageFile`]) does its `pread`/`pwrite`/`fdatasync`/
//! `fallocate` inline on that worker. The caller's executor only awaits a
//! oneshot channel, so no blocking syscall runs on it, and requests run
//! concurrently up to the pool's thread count.
//!
//! # Memory
//!
//! Transport buffers may be memory another party writes, which imago would
//! only see as `&[u8]`/`&mut [u8]`. Data therefore moves through bounce
//! buffers owned by the backstore, copied to and from the
//! [`DataBuffer`] with volatile copies; the bounce buffers are recycled,
//! so the hot path allocates nothing.
//!
//! # Dropping
//!
//! Call [`Backstore::flush`] before dropping a writable backstore: imago
//! keeps metadata in write-back caches. `Drop` flushes as a last resort on
//! the pool, blocking the dropping thread until it is done (do not drop
//! the backstore from a worker of its own one-thread pool).

mod header;
mod refguard;
pub mod storage;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use imago::io_buffers::IoBuffer;
use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{
    DenyImplicitOpenGate, FormatAccess, FormatCreateBuilder, FormatDriverBuilder, Mapping,
    StorageOpenOptions,
};
use tgtkit_scsi_core::backstore::{
    AllocationState, Backstore, Capabilities, Extent, Geometry, IoError, IoResult, WriteFlags,
};
use tgtkit_scsi_core::buffer::DataBuffer;

use crate::pool::BlockingPool;
use storage::ImageFile;

/// Largest piece of a request handed to imago at once (and bounce buffer size).
const CHUNK: usize = 256 << 10;
/// Spare bounce buffers kept for reuse.
const MAX_SPARE_BUFFERS: usize = 32;

/// An error opening or creating a qcow2 image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Qcow2Error {
    /// The file could not be read or written.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The file is not a valid qcow2 image.
    #[error("invalid qcow2 image: {0}")]
    Invalid(String),
    /// The image uses something this backstore does not support.
    #[error("unsupported qcow2 image: {0}")]
    Unsupported(String),
    /// The backing chain is longer than [`Qcow2Options::max_chain_depth`]
    /// (or loops back on itself).
    #[error("backing chain deeper than {0} images")]
    ChainTooDeep(usize),
    /// The caller's options are invalid.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The blocking pool is gone.
    #[error("blocking pool is gone")]
    PoolGone,
}

/// Format of a backing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackingFormat {
    /// A qcow2 image.
    Qcow2,
    /// A raw image.
    Raw,
}

impl BackingFormat {
    fn name(self) -> &'static str {
        match self {
            BackingFormat::Qcow2 => "qcow2",
            BackingFormat::Raw => "raw",
        }
    }
}

/// How to open an image.
#[derive(Debug, Clone)]
pub struct Qcow2Options {
    /// Open the top image read-only.
    pub read_only: bool,
    /// Bypass the host page cache (`O_DIRECT`, QEMU's `cache=none`).
    pub direct: bool,
    /// Logical block size reported in the geometry (512 or 4096).
    pub logical_block_size: u32,
    /// Longest backing chain accepted, top image included.
    pub max_chain_depth: usize,
    /// Worker threads of the backstore's own pool (ignored with `pool`).
    pub io_threads: usize,
    /// Run on this pool instead of starting one.
    pub pool: Option<BlockingPool>,
}

impl Default for Qcow2Options {
    fn default() -> Self {
        Self {
            read_only: false,
            direct: false,
            logical_block_size: 512,
            max_chain_depth: 16,
            io_threads: 16,
            pool: None,
        }
    }
}

/// How to create an image.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Virtual size in bytes (rounded up to 512).
    pub size: u64,
    /// Cluster size: a power of two from 512 B to 2 MiB.
    pub cluster_size: u32,
    /// Backing file name as written into the header (relative names are
    /// resolved against the new image's directory), and its format.
    pub backing: Option<(String, BackingFormat)>,
    /// Replace an existing file.
    pub overwrite: bool,
}

impl CreateOptions {
    /// A new image of `size` bytes with 64 KiB clusters and no backing file.
    #[must_use]
    pub fn new(size: u64) -> Self {
        Self {
            size,
            cluster_size: 65536,
            backing: None,
            overwrite: false,
        }
    }
}

/// The open image and what requests share.
struct Inner {
    image: FormatAccess<ImageFile>,
    /// Reads, writes and zero-writes take it shared; discards (which may
    /// free clusters other requests are using) take it exclusively.
    unmap: RwLock<()>,
    spare: Mutex<Vec<IoBuffer>>,
    mem_align: usize,
    writable: bool,
    /// Zero clusters exist (qcow2 version 3); version 2 images can
    /// neither discard nor mark clusters zero in imago.
    zero_clusters: bool,
}

/// A qcow2 image (with its backing chain) as a [`Backstore`].
pub struct Qcow2Backstore {
    inner: Arc<Inner>,
    pool: BlockingPool,
    geometry: Geometry,
}

impl std::fmt::Debug for Qcow2Backstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2Backstore")
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

fn pool_of(opts: &Qcow2Options) -> BlockingPool {
    opts.pool
        .clone()
        .unwrap_or_else(|| BlockingPool::new("qcow2", opts.io_threads.max(1)))
}

impl Qcow2Backstore {
    /// Open the qcow2 image at `path` and its backing chain.
    ///
    /// # Errors
    ///
    /// [`Qcow2Error`] if any image of the chain cannot be opened, is not
    /// valid, or uses an unsupported feature.
    pub async fn open(path: impl AsRef<Path>, opts: Qcow2Options) -> Result<Self, Qcow2Error> {
        let path = path.as_ref().to_owned();
        let pool = pool_of(&opts);
        let o = opts.clone();
        let image = pool
            .run(move || futures::executor::block_on(open_chain(path, o)))
            .await
            .map_err(|_| Qcow2Error::PoolGone)??;
        Self::from_image(image, pool, &opts)
    }

    /// Open an image held in memory (tests, fuzzing). A backing file named
    /// in the header is refused. Writes may grow the image to `cap` bytes.
    ///
    /// # Errors
    ///
    /// As [`Qcow2Backstore::open`].
    pub async fn open_in_memory(
        data: Vec<u8>,
        cap: u64,
        opts: Qcow2Options,
    ) -> Result<Self, Qcow2Error> {
        let pool = pool_of(&opts);
        let writable = !opts.read_only;
        let image = pool
            .run(move || {
                futures::executor::block_on(async move {
                    let file = ImageFile::memory(data, cap, writable);
                    let (q, backing, version) = open_qcow2_layer(file, writable, false).await?;
                    if backing.is_some() {
                        return Err(Qcow2Error::Unsupported(
                            "backing file of an in-memory image".into(),
                        ));
                    }
                    Ok((FormatAccess::new(q), version))
                })
            })
            .await
            .map_err(|_| Qcow2Error::PoolGone)??;
        Self::from_image(image, pool, &opts)
    }

    /// Create a new qcow2 image at `path` (version 3, 16-bit refcounts).
    ///
    /// Does not open it: call [`Qcow2Backstore::open`] afterwards.
    ///
    /// # Errors
    ///
    /// [`Qcow2Error::InvalidOption`] for a bad size or cluster size,
    /// [`Qcow2Error::Io`] if the file exists (without `overwrite`) or
    /// cannot be written.
    pub async fn create(
        path: impl AsRef<Path>,
        create: CreateOptions,
        pool: Option<BlockingPool>,
    ) -> Result<(), Qcow2Error> {
        let cs = create.cluster_size;
        if !cs.is_power_of_two() || !(512..=(2 << 20)).contains(&cs) {
            return Err(Qcow2Error::InvalidOption(format!(
                "cluster size {cs} is not a power of two from 512 to 2 MiB"
            )));
        }
        let size = create
            .size
            .checked_next_multiple_of(512)
            .filter(|s| *s <= 1 << 56)
            .ok_or_else(|| Qcow2Error::InvalidOption(format!("size {}", create.size)))?;
        let path = path.as_ref().to_owned();
        let pool = pool.unwrap_or_else(|| BlockingPool::new("qcow2-create", 1));
        pool.run(move || {
            futures::executor::block_on(async move {
                let file = ImageFile::create_path(&path, create.overwrite)?;
                let mut builder = Qcow2::<ImageFile>::create_builder(file)
                    .size(size)
                    .cluster_size(cs as usize);
                if let Some((name, fmt)) = create.backing {
                    builder = builder.backing(name, fmt.name().to_owned());
                }
                builder.create().await?;
                let file = ImageFile::open_path(&path, true, false)?;
                imago::Storage::sync(&file).await?;
                Ok(())
            })
        })
        .await
        .map_err(|_| Qcow2Error::PoolGone)?
    }

    fn from_image(
        (image, version): (FormatAccess<ImageFile>, u32),
        pool: BlockingPool,
        opts: &Qcow2Options,
    ) -> Result<Self, Qcow2Error> {
        let lbs = opts.logical_block_size;
        if !lbs.is_power_of_two() || !(512..=65536).contains(&lbs) {
            return Err(Qcow2Error::InvalidOption(format!(
                "logical block size {lbs}"
            )));
        }
        let size = image.size() / u64::from(lbs) * u64::from(lbs);
        let writable = !opts.read_only;
        let mut geometry = Geometry::new(size, lbs);
        geometry.read_only = !writable;
        let mem_align = image.mem_align().max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                image,
                unmap: RwLock::new(()),
                spare: Mutex::new(Vec::new()),
                mem_align,
                writable,
                zero_clusters: version >= 3,
            }),
            pool,
            geometry,
        })
    }

    fn check_range(&self, offset: u64, len: u64) -> IoResult<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.geometry.size => Ok(()),
            _ => Err(IoError::OutOfRange),
        }
    }

    fn check_writable(&self) -> IoResult<()> {
        if self.inner.writable {
            Ok(())
        } else {
            Err(IoError::ReadOnly)
        }
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> R + Send + 'static,
    ) -> Result<R, io::Error> {
        let inner = Arc::clone(&self.inner);
        self.pool
            .run(move || f(&inner))
            .await
            .map_err(|_| io::Error::other("qcow2 blocking pool is gone"))
    }
}

/// Open a qcow2 layer from `file`; returns it with the backing file name
/// and format its header names (not opened).
async fn open_qcow2_layer(
    mut file: ImageFile,
    writable: bool,
    direct: bool,
) -> Result<(Qcow2<ImageFile>, Option<(String, Option<String>)>, u32), Qcow2Error> {
    let mut head = [0u8; 112];
    let n = file.pread_some(&mut head, 0)?;
    let info = header::check_header(&head[..n], writable)?;
    if info.version >= 3 {
        // The first cluster holds the extensions: at most 2 MiB.
        let mut first = vec![0u8; usize::try_from(info.cluster_size).unwrap_or(0)];
        let got = file.pread_some(&mut first, 0)?;
        first.truncate(got);
        header::check_extensions(&info, &first)?;
    }
    if writable {
        // At most 8 MiB (checked by `check_header`).
        let len = usize::try_from(u64::from(info.reftable_clusters) * info.cluster_size)
            .map_err(|_| Qcow2Error::Invalid("refcount table too large".into()))?;
        let mut reftable = vec![0u8; len];
        let got = file.pread_some(&mut reftable, info.reftable_offset)?;
        reftable.truncate(got);
        let file_len = imago::Storage::size(&file)?;
        header::check_refcount_coverage(&info, &reftable, file_len)?;
        file.guard_refcounts(&head[..n], &reftable);
    }
    let q = Qcow2::<ImageFile>::builder(file)
        .write(writable)
        .backing(None)
        .data_file(None)
        .storage_open_options(StorageOpenOptions::new().direct(direct))
        .open(DenyImplicitOpenGate::default())
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => Qcow2Error::Invalid(e.to_string()),
            io::ErrorKind::Unsupported => Qcow2Error::Unsupported(e.to_string()),
            _ => Qcow2Error::Io(e),
        })?;
    let backing = q
        .implicit_backing_file()
        .map(|name| (name.clone(), q.implicit_backing_format().cloned()));
    Ok((q, backing, info.version))
}

/// Open the top image and its backing chain (runs on a pool worker).
async fn open_chain(
    path: PathBuf,
    opts: Qcow2Options,
) -> Result<(FormatAccess<ImageFile>, u32), Qcow2Error> {
    let writable = !opts.read_only;
    let top = ImageFile::open_path(&path, writable, opts.direct)?;
    let mut head = [0u8; 4];
    let n = top.pread_some(&mut head, 0)?;
    if !header::has_qcow_magic(&head[..n]) {
        return Err(Qcow2Error::Invalid(format!(
            "{} is not a qcow2 image",
            path.display()
        )));
    }
    // Open top-down, remembering each layer's backing reference, then
    // attach bottom-up (a layer's backing must be complete when wrapped).
    let mut layers: Vec<Qcow2<ImageFile>> = Vec::new();
    let mut bottom_raw: Option<FormatAccess<ImageFile>> = None;
    let mut top_version = 0;
    let mut next = Some((top, writable, path));
    while let Some((file, w, here)) = next.take() {
        if layers.len() >= opts.max_chain_depth {
            return Err(Qcow2Error::ChainTooDeep(opts.max_chain_depth));
        }
        let (q, backing, version) = open_qcow2_layer(file, w, opts.direct).await?;
        if layers.is_empty() {
            top_version = version;
        }
        layers.push(q);
        let Some((name, format)) = backing else { break };
        let resolved = resolve(&here, &name);
        let file = ImageFile::open_path(&resolved, false, opts.direct).map_err(|e| {
            Qcow2Error::Io(io::Error::new(
                e.kind(),
                format!("backing file {}: {e}", resolved.display()),
            ))
        })?;
        let is_qcow2 = match format.as_deref() {
            Some("qcow2") => true,
            Some("raw") | Some("file") => false,
            Some(other) => {
                return Err(Qcow2Error::Unsupported(format!(
                    "backing format {other:?} of {}",
                    resolved.display()
                )))
            }
            None => {
                let mut magic = [0u8; 4];
                let n = file.pread_some(&mut magic, 0)?;
                header::has_qcow_magic(&magic[..n])
            }
        };
        if is_qcow2 {
            next = Some((file, false, resolved));
        } else {
            if layers.len() >= opts.max_chain_depth {
                return Err(Qcow2Error::ChainTooDeep(opts.max_chain_depth));
            }
            let raw = Raw::builder(file)
                .write(false)
                .open(DenyImplicitOpenGate::default())
                .await?;
            bottom_raw = Some(FormatAccess::new(raw));
        }
    }
    let mut below = bottom_raw;
    while let Some(mut q) = layers.pop() {
        q.set_backing(below.take());
        below = Some(FormatAccess::new(q));
    }
    let image = below.ok_or_else(|| Qcow2Error::Invalid("empty chain".into()))?;
    Ok((image, top_version))
}

/// Resolve a backing file name against the directory of the image naming it.
fn resolve(image: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_owned()
    } else {
        image.parent().unwrap_or(Path::new(".")).join(p)
    }
}

impl Inner {
    fn take_buffer(&self) -> io::Result<IoBuffer> {
        if let Some(b) = self.spare.lock().ok().and_then(|mut s| s.pop()) {
            return Ok(b);
        }
        IoBuffer::new(CHUNK, self.mem_align)
    }

    fn give_buffer(&self, b: IoBuffer) {
        if let Ok(mut s) = self.spare.lock() {
            if s.len() < MAX_SPARE_BUFFERS {
                s.push(b);
            }
        }
    }

    fn read(&self, offset: u64, buf: &DataBuffer) -> io::Result<()> {
        let _shared = self
            .unmap
            .read()
            .map_err(|_| io::Error::other("poisoned"))?;
        let mut bounce = self.take_buffer()?;
        let r = futures::executor::block_on(async {
            let mut pos = 0usize;
            while pos < buf.len() {
                let n = (buf.len() - pos).min(CHUNK);
                self.image
                    .read(bounce.as_mut_range(0..n), offset + pos as u64)
                    .await?;
                buf.write_at(pos, &bounce.as_ref().into_slice()[..n]);
                pos += n;
            }
            Ok(())
        });
        self.give_buffer(bounce);
        r
    }

    fn write(&self, offset: u64, buf: &DataBuffer, fua: bool) -> io::Result<()> {
        {
            let _shared = self
                .unmap
                .read()
                .map_err(|_| io::Error::other("poisoned"))?;
            let mut bounce = self.take_buffer()?;
            let r = futures::executor::block_on(async {
                let mut pos = 0usize;
                while pos < buf.len() {
                    let n = (buf.len() - pos).min(CHUNK);
                    buf.read_at(pos, &mut bounce.as_mut().into_slice()[..n]);
                    self.image
                        .write(bounce.as_ref_range(0..n), offset + pos as u64)
                        .await?;
                    pos += n;
                }
                Ok::<(), io::Error>(())
            });
            self.give_buffer(bounce);
            r?;
        }
        if fua {
            self.flush()?;
        }
        Ok(())
    }

    /// Write zero data (version 2 images, which have no zero clusters).
    fn write_zero_data(&self, offset: u64, len: u64) -> io::Result<()> {
        let _shared = self
            .unmap
            .read()
            .map_err(|_| io::Error::other("poisoned"))?;
        let mut bounce = self.take_buffer()?;
        bounce.as_mut().into_slice().fill(0);
        let r = futures::executor::block_on(async {
            let mut pos = 0u64;
            while pos < len {
                let n = usize::try_from(len - pos).map_or(CHUNK, |r| r.min(CHUNK));
                self.image
                    .write(bounce.as_ref_range(0..n), offset + pos)
                    .await?;
                pos += n as u64;
            }
            Ok(())
        });
        self.give_buffer(bounce);
        r
    }

    fn flush(&self) -> io::Result<()> {
        if !self.writable {
            return Ok(());
        }
        futures::executor::block_on(async {
            self.image.flush().await?;
            self.image.sync().await
        })
    }

    fn zero(&self, offset: u64, len: u64, unmap: bool) -> io::Result<()> {
        if !self.zero_clusters {
            return self.write_zero_data(offset, len);
        }
        if unmap {
            let _excl = self
                .unmap
                .write()
                .map_err(|_| io::Error::other("poisoned"))?;
            // SAFETY: (imago's contract, not memory safety) discarding may
            // invalidate data mappings other requests hold; every other
            // request holds `unmap` shared while it runs, and we hold it
            // exclusively, so none is in flight.
            futures::executor::block_on(unsafe { self.image.discard_to_zero_unsafe(offset, len) })
        } else {
            let _shared = self
                .unmap
                .read()
                .map_err(|_| io::Error::other("poisoned"))?;
            futures::executor::block_on(self.image.write_zeroes(offset, len))
        }
    }

    fn allocation(&self, offset: u64, len: u64) -> io::Result<Extent> {
        let _shared = self
            .unmap
            .read()
            .map_err(|_| io::Error::other("poisoned"))?;
        futures::executor::block_on(async {
            let (mapping, mlen) = self.image.get_mapping(offset, len).await?;
            let state = match mapping {
                Mapping::Raw { .. } | Mapping::Special { .. } => AllocationState::Mapped,
                Mapping::Zero { .. } | Mapping::Eof { .. } => AllocationState::Deallocated,
                _ => AllocationState::Mapped,
            };
            if mlen == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of image"));
            }
            Ok(Extent {
                len: mlen.min(len),
                state,
            })
        })
    }
}

impl Drop for Qcow2Backstore {
    /// A last-resort flush: imago keeps metadata in write-back caches.
    ///
    /// The flush runs on the pool (never `block_on` here: the dropping
    /// thread may itself be inside an executor) and this thread waits for
    /// it on a plain channel.
    fn drop(&mut self) {
        use futures::FutureExt;
        if !self.inner.writable {
            return;
        }
        let inner = Arc::clone(&self.inner);
        let (tx, rx) = std::sync::mpsc::channel();
        // Polling `run` once queues the job; its result comes back on `tx`.
        let queued = self
            .pool
            .run(move || {
                let _ = tx.send(inner.flush());
            })
            .now_or_never();
        debug_assert!(queued.is_none() || queued == Some(Ok(())));
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(%err, "qcow2: flush on drop failed; the image may leak clusters");
            }
            Err(_) => tracing::error!("qcow2: blocking pool gone before the flush on drop"),
        }
    }
}

fn read_err(e: io::Error) -> IoError {
    IoError::Read(e)
}

#[async_trait]
impl Backstore for Qcow2Backstore {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        if !self.inner.writable {
            Capabilities::ALLOCATION_STATUS
        } else if !self.inner.zero_clusters {
            // Version 2: no zero clusters, so no discard and no cheap zeroes.
            Capabilities::ALLOCATION_STATUS | Capabilities::WRITE_CACHE | Capabilities::FUA
        } else {
            Capabilities::DISCARD
                | Capabilities::DISCARD_ZEROES
                | Capabilities::WRITE_ZEROES
                | Capabilities::ALLOCATION_STATUS
                | Capabilities::WRITE_CACHE
                | Capabilities::FUA
        }
    }

    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        self.check_range(offset, buf.len() as u64)?;
        self.run(move |i| i.read(offset, &buf))
            .await
            .and_then(|r| r)
            .map_err(read_err)
    }

    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.check_writable()?;
        self.check_range(offset, buf.len() as u64)?;
        let fua = flags.contains(WriteFlags::FUA);
        self.run(move |i| i.write(offset, &buf, fua))
            .await
            .and_then(|r| r)
            .map_err(IoError::from_write)
    }

    async fn flush(&self) -> IoResult<()> {
        self.run(Inner::flush)
            .await
            .and_then(|r| r)
            .map_err(IoError::from_write)
    }

    async fn discard(&self, offset: u64, len: u64) -> IoResult<()> {
        self.check_writable()?;
        if !self.inner.zero_clusters {
            return Err(IoError::Unsupported);
        }
        self.check_range(offset, len)?;
        self.run(move |i| i.zero(offset, len, true))
            .await
            .and_then(|r| r)
            .map_err(IoError::from_write)
    }

    async fn write_zeroes(&self, offset: u64, len: u64, may_unmap: bool) -> IoResult<()> {
        self.check_writable()?;
        self.check_range(offset, len)?;
        self.run(move |i| i.zero(offset, len, may_unmap))
            .await
            .and_then(|r| r)
            .map_err(IoError::from_write)
    }

    async fn allocation(&self, offset: u64, len: u64) -> IoResult<Extent> {
        // Look no further than the end of the medium.
        if offset >= self.geometry.size || len == 0 {
            return Err(IoError::OutOfRange);
        }
        let len = len.min(self.geometry.size - offset);
        self.run(move |i| i.allocation(offset, len))
            .await
            .and_then(|r| r)
            .map_err(read_err)
    }
}
