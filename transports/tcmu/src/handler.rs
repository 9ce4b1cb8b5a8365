//! Handlers: the backstore behind a device, chosen by its cfgstring.
//!
//! As in tcmu-runner, the `dev_config` string is `<subtype>/<argument>`:
//! `file//var/lib/disk.img` is subtype `file` with argument
//! `/var/lib/disk.img`. [`Handlers`] maps subtypes to functions that open a
//! backstore; a device whose subtype has no handler is refused with
//! [`HandlerError::UnknownSubtype`].
//!
//! The backstore is wrapped in a [`SizedBackstore`] whose size is the
//! device's `dev_size`: a `RECONFIG_DEVICE` size change updates it, the
//! engine sees a new geometry before the next command and raises CAPACITY
//! DATA HAS CHANGED.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tgtkit_scsi_core::backstore::{
    Backstore, Capabilities, Extent, Geometry, IoError, IoResult, WriteFlags,
};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::device::DeviceType;
use tgtkit_scsi_core::pr::{FilePrStore, PrStore};

/// What a handler gets to open a device's backstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The HBA index (the N of `core/user_N`).
    pub hba: u32,
    /// The device's name (directory under `core/user_N`).
    pub dev: String,
    /// The handler subtype (`file`, `ram`, ...).
    pub subtype: String,
    /// The rest of the cfgstring (a path, a size, ...).
    pub argument: String,
    /// `dev_size` in bytes (0 if unknown).
    pub size: u64,
    /// `hw_block_size` in bytes.
    pub block_size: u32,
    /// `emulate_write_cache`.
    pub write_cache: bool,
}

/// Why a device cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// No handler is registered for the cfgstring's subtype.
    #[error("no handler for subtype {subtype:?} (known: {known})")]
    UnknownSubtype {
        /// The subtype asked for.
        subtype: String,
        /// The registered subtypes, comma-separated.
        known: String,
    },
    /// The argument is not valid for the handler.
    #[error("bad argument {0:?} for this handler")]
    BadArgument(String),
    /// Opening the backstore failed.
    #[error("opening the backstore failed: {0}")]
    Open(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl HandlerError {
    /// The negative errno a `_DONE` reply carries for this error.
    #[must_use]
    pub fn errno(&self) -> i32 {
        match self {
            HandlerError::UnknownSubtype { .. } => -libc::ENOENT,
            HandlerError::BadArgument(_) => -libc::EINVAL,
            HandlerError::Open(_) => -libc::EIO,
        }
    }
}

/// Grows (or shrinks) a handler's medium to a new `dev_size`.
pub type ResizeFn = Box<dyn Fn(u64) -> Result<(), HandlerError> + Send + Sync>;

/// What a handler opened.
pub struct Opened {
    /// The backstore.
    pub backstore: Arc<dyn Backstore>,
    /// How to follow a `dev_size` change, when the medium must change with
    /// it (a file grown with ftruncate); `None` if only the reported size
    /// changes.
    pub resize: Option<ResizeFn>,
}

impl Opened {
    /// A backstore that needs no resizing.
    #[must_use]
    pub fn fixed(backstore: Arc<dyn Backstore>) -> Self {
        Self {
            backstore,
            resize: None,
        }
    }
}

/// Opens a backstore for a device.
pub type OpenFn = Box<dyn Fn(&DeviceSpec) -> Result<Opened, HandlerError> + Send + Sync>;

/// The registered handlers, by subtype.
#[derive(Default)]
pub struct Handlers {
    map: BTreeMap<String, (OpenFn, DeviceType)>,
    pr_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("subtypes", &self.map.keys().collect::<Vec<_>>())
            .field("pr_dir", &self.pr_dir)
            .finish()
    }
}

impl Handlers {
    /// No handlers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Register (or replace) the handler for `subtype`, serving disks.
    pub fn register(&mut self, subtype: &str, open: OpenFn) -> &mut Self {
        self.register_as(subtype, DeviceType::Disk, open)
    }

    /// Register (or replace) the handler for `subtype`, whose devices are
    /// served as `device` (a CD/DVD device for an ISO image, say).
    pub fn register_as(&mut self, subtype: &str, device: DeviceType, open: OpenFn) -> &mut Self {
        self.map.insert(subtype.to_owned(), (open, device));
        self
    }

    /// The device model `subtype`'s devices are served as (a disk for an
    /// unknown subtype, which [`open`](Self::open) refuses anyway).
    #[must_use]
    pub fn device_type(&self, subtype: &str) -> DeviceType {
        self.map.get(subtype).map_or(DeviceType::Disk, |(_, d)| *d)
    }

    /// Keep each device's persistent reservations (when an initiator sets
    /// APTPL, SPC-4 §5.13.5) in `dir`, one file per device named
    /// `user_<hba>-<dev>.pr`, written atomically by
    /// [`FilePrStore`]. Reservations saved there are restored when the
    /// device is served again, after a restart of the handler or of the
    /// machine. Without it, APTPL is refused (PTPL_C is zero).
    ///
    /// The kernel passes PERSISTENT RESERVE commands to the handler only
    /// when the device's `attrib/pgr_support` is 0 (PR passthrough; the
    /// VM test sets it).
    pub fn persist_reservations_in(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.pr_dir = Some(dir.into());
        self
    }

    /// Where `spec`'s persistent reservations are kept, if
    /// [`persist_reservations_in`](Self::persist_reservations_in) was set.
    #[must_use]
    pub fn pr_store(&self, spec: &DeviceSpec) -> Option<Arc<dyn PrStore>> {
        let dir = self.pr_dir.as_ref()?;
        let file = format!("user_{}-{}.pr", spec.hba, spec.dev);
        Some(Arc::new(FilePrStore::new(dir.join(file))))
    }

    /// The registered subtypes.
    pub fn subtypes(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Open the backstore for `spec`, wrapped to follow `dev_size`.
    ///
    /// # Errors
    ///
    /// [`HandlerError::UnknownSubtype`] if no handler matches; the handler's
    /// own errors otherwise.
    pub fn open(&self, spec: &DeviceSpec) -> Result<Arc<SizedBackstore>, HandlerError> {
        let (open, _) =
            self.map
                .get(&spec.subtype)
                .ok_or_else(|| HandlerError::UnknownSubtype {
                    subtype: spec.subtype.clone(),
                    known: self.subtypes().collect::<Vec<_>>().join(","),
                })?;
        let opened = open(spec)?;
        let mut sized = SizedBackstore::new(opened.backstore, spec.size, spec.write_cache);
        sized.resize = opened.resize;
        Ok(Arc::new(sized))
    }
}

/// The standard handlers: `file/<path>` (a regular file, created and grown
/// to `dev_size` when smaller, or a block device), `ram/<size>` (a sparse
/// ram disk of `<size>`, or of `dev_size` when empty), `cdrom/<path>` (an
/// ISO image, read-only, served as a CD/DVD device of 2048-byte blocks;
/// the device's `hw_block_size` must be 2048), `tape/<path>` (a tape image,
/// created and grown to `dev_size` as a blank tape when smaller, served as
/// a sequential-access device; see `tgtkit_scsi_core::ssc`) and, with the
/// `qcow2`
/// feature, `qcow/<path>` (a qcow2 image, as tcmu-runner names it).
#[cfg(feature = "backstores")]
#[must_use]
pub fn standard() -> Handlers {
    let mut h = Handlers::new();
    h.register("file", Box::new(open_file));
    h.register("ram", Box::new(open_ram));
    h.register_as("cdrom", DeviceType::Cdrom, Box::new(open_cdrom));
    h.register_as("tape", DeviceType::Tape, Box::new(open_tape));
    #[cfg(feature = "qcow2")]
    h.register("qcow", Box::new(open_qcow2));
    h
}

#[cfg(feature = "qcow2")]
fn open_qcow2(spec: &DeviceSpec) -> Result<Opened, HandlerError> {
    use tgtkit_backstores::qcow2::{Qcow2Backstore, Qcow2Options};
    let path = std::path::Path::new(&spec.argument);
    if !path.is_absolute() {
        return Err(HandlerError::BadArgument(spec.argument.clone()));
    }
    let options = Qcow2Options {
        logical_block_size: spec.block_size,
        ..Qcow2Options::default()
    };
    // The image's I/O runs on the backstore's own pool; waiting here only
    // parks this device-setup thread.
    let image = futures::executor::block_on(Qcow2Backstore::open(path, options))
        .map_err(|e| HandlerError::Open(Box::new(e)))?;
    Ok(Opened::fixed(Arc::new(image)))
}

#[cfg(feature = "backstores")]
fn open_file(spec: &DeviceSpec) -> Result<Opened, HandlerError> {
    use tgtkit_backstores::file::FileOptions;
    let path = std::path::Path::new(&spec.argument);
    if !path.is_absolute() {
        return Err(HandlerError::BadArgument(spec.argument.clone()));
    }
    let open_err = |e: std::io::Error| HandlerError::Open(Box::new(e));
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(open_err)?;
    }
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if meta.is_file() && meta.len() < spec.size {
        tracing::info!(path = %path.display(), from = meta.len(), to = spec.size, "growing backing file to dev_size");
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(spec.size))
            .map_err(open_err)?;
    }
    let file = FileOptions::new()
        .logical_block_size(spec.block_size)
        .write_cache(spec.write_cache)
        .open(path)
        .map_err(|e| HandlerError::Open(Box::new(e)))?;
    let regular = !file.is_block_device();
    let file = Arc::new(file);
    let resize: Option<ResizeFn> = regular.then(|| {
        let file = Arc::clone(&file);
        Box::new(move |size: u64| {
            if size > file.geometry().size {
                file.resize(size)
                    .map_err(|e| HandlerError::Open(Box::new(e)))?;
            }
            Ok(())
        }) as ResizeFn
    });
    Ok(Opened {
        backstore: file,
        resize,
    })
}

#[cfg(feature = "backstores")]
fn open_cdrom(spec: &DeviceSpec) -> Result<Opened, HandlerError> {
    use tgtkit_backstores::file::FileOptions;
    let path = std::path::Path::new(&spec.argument);
    if !path.is_absolute() || spec.block_size != 2048 {
        // The kernel sizes the device in hw_block_size blocks: it must be
        // the CD/DVD block of 2048 bytes.
        return Err(HandlerError::BadArgument(format!(
            "{} (hw_block_size {}; a cdrom needs an absolute path and 2048)",
            spec.argument, spec.block_size
        )));
    }
    let image = FileOptions::new()
        .read_only(true)
        .logical_block_size(2048)
        .open(path)
        .map_err(|e| HandlerError::Open(Box::new(e)))?;
    if spec.size > image.geometry().size {
        // A disc cannot grow: reads past the image would fail.
        return Err(HandlerError::BadArgument(format!(
            "{}: dev_size {} is larger than the image",
            spec.argument, spec.size
        )));
    }
    Ok(Opened::fixed(Arc::new(image)))
}

/// A tape image: the file as `file/` opens it (a missing or smaller file
/// grows to `dev_size`, zeroes being a blank tape), its size fixed: a
/// cartridge does not grow.
#[cfg(feature = "backstores")]
fn open_tape(spec: &DeviceSpec) -> Result<Opened, HandlerError> {
    Ok(Opened::fixed(open_file(spec)?.backstore))
}

#[cfg(feature = "backstores")]
fn open_ram(spec: &DeviceSpec) -> Result<Opened, HandlerError> {
    use tgtkit_backstores::ram::RamOptions;
    let size = if spec.argument.is_empty() {
        spec.size
    } else {
        parse_size(&spec.argument)
            .ok_or_else(|| HandlerError::BadArgument(spec.argument.clone()))?
    };
    let ram = RamOptions::new()
        .logical_block_size(spec.block_size)
        .write_cache(spec.write_cache)
        .build(size)
        .map_err(|e| HandlerError::Open(Box::new(e)))?;
    Ok(Opened::fixed(Arc::new(ram)))
}

/// Parse a size such as `1073741824`, `512K`, `64M`, `2G` or `1T`.
#[must_use]
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 10),
        (i, 'm' | 'M') => (&s[..i], 20),
        (i, 'g' | 'G') => (&s[..i], 30),
        (i, 't' | 'T') => (&s[..i], 40),
        _ => (s, 0),
    };
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// A backstore whose reported size is the device's `dev_size`.
///
/// I/O beyond the current size is refused with [`IoError::OutOfRange`];
/// everything else is forwarded to the inner backstore.
pub struct SizedBackstore {
    inner: Arc<dyn Backstore>,
    size: AtomicU64,
    write_cache: AtomicBool,
    resize: Option<ResizeFn>,
}

impl std::fmt::Debug for SizedBackstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SizedBackstore")
            .field("size", &self.size.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SizedBackstore {
    /// Wrap `inner`, reporting `size` bytes (0: the inner size).
    #[must_use]
    pub fn new(inner: Arc<dyn Backstore>, size: u64, write_cache: bool) -> Self {
        let size = if size == 0 {
            inner.geometry().size
        } else {
            size
        };
        Self {
            inner,
            size: AtomicU64::new(size),
            write_cache: AtomicBool::new(write_cache),
            resize: None,
        }
    }

    /// Change the reported size (a `RECONFIG_DEVICE` with `DEV_SIZE`),
    /// resizing the medium first when the handler asked for it.
    ///
    /// # Errors
    ///
    /// The handler's error if the medium cannot be resized; the reported
    /// size is then unchanged.
    pub fn set_size(&self, size: u64) -> Result<(), HandlerError> {
        if let Some(resize) = &self.resize {
            resize(size)?;
        }
        self.size.store(size, Ordering::Release);
        Ok(())
    }

    /// Record the kernel's write-cache setting (a `RECONFIG_DEVICE` with
    /// `WRITECACHE`), passing it to the inner backstore when it can toggle.
    ///
    /// # Errors
    ///
    /// The inner backstore's error when it cannot toggle its cache.
    pub fn apply_write_cache(&self, enabled: bool) -> IoResult<()> {
        if self
            .inner
            .capabilities()
            .contains(Capabilities::WRITE_CACHE_TOGGLE)
        {
            self.inner.set_write_cache(enabled)?;
        }
        self.write_cache.store(enabled, Ordering::Release);
        Ok(())
    }

    fn check(&self, offset: u64, len: u64) -> IoResult<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size.load(Ordering::Acquire) => Ok(()),
            _ => Err(IoError::OutOfRange),
        }
    }
}

#[async_trait]
impl Backstore for SizedBackstore {
    fn geometry(&self) -> Geometry {
        let mut g = self.inner.geometry();
        let lbs = u64::from(g.logical_block_size.max(1));
        g.size = self.size.load(Ordering::Acquire) / lbs * lbs;
        g
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        self.check(offset, buf.len() as u64)?;
        self.inner.read(offset, buf).await
    }

    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.check(offset, buf.len() as u64)?;
        self.inner.write(offset, buf, flags).await
    }

    // The inner backstore's synchronous fast path, behind the same check.
    fn read_nowait(&self, offset: u64, buf: &DataBuffer) -> Option<IoResult<()>> {
        if let Err(e) = self.check(offset, buf.len() as u64) {
            return Some(Err(e));
        }
        self.inner.read_nowait(offset, buf)
    }

    fn write_nowait(
        &self,
        offset: u64,
        buf: &DataBuffer,
        flags: WriteFlags,
    ) -> Option<IoResult<()>> {
        if let Err(e) = self.check(offset, buf.len() as u64) {
            return Some(Err(e));
        }
        self.inner.write_nowait(offset, buf, flags)
    }

    async fn flush(&self) -> IoResult<()> {
        self.inner.flush().await
    }

    async fn discard(&self, offset: u64, len: u64) -> IoResult<()> {
        self.check(offset, len)?;
        self.inner.discard(offset, len).await
    }

    async fn write_zeroes(&self, offset: u64, len: u64, may_unmap: bool) -> IoResult<()> {
        self.check(offset, len)?;
        self.inner.write_zeroes(offset, len, may_unmap).await
    }

    async fn allocation(&self, offset: u64, len: u64) -> IoResult<Extent> {
        self.inner.allocation(offset, len).await
    }

    fn write_cache(&self) -> bool {
        self.write_cache.load(Ordering::Acquire)
    }

    fn set_write_cache(&self, enabled: bool) -> IoResult<()> {
        self.inner.set_write_cache(enabled)?;
        self.write_cache.store(enabled, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Zero(Geometry);

    #[async_trait]
    impl Backstore for Zero {
        fn geometry(&self) -> Geometry {
            self.0
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::empty()
        }
        async fn read(&self, _offset: u64, buf: DataBuffer) -> IoResult<()> {
            buf.fill(0, buf.len(), 0);
            Ok(())
        }
        async fn write(&self, _offset: u64, _buf: DataBuffer, _flags: WriteFlags) -> IoResult<()> {
            Ok(())
        }
        async fn flush(&self) -> IoResult<()> {
            Ok(())
        }
    }

    fn handlers() -> Handlers {
        let mut h = Handlers::new();
        h.register(
            "zero",
            Box::new(|spec: &DeviceSpec| {
                let size = parse_size(&spec.argument)
                    .ok_or_else(|| HandlerError::BadArgument(spec.argument.clone()))?;
                Ok(Opened::fixed(Arc::new(Zero(Geometry::new(
                    size,
                    spec.block_size,
                )))))
            }),
        );
        h
    }

    #[test]
    fn accepts_pr_dir_with_one_file_per_device() {
        let mut h = handlers();
        assert!(h.pr_store(&spec("zero", "1", 0)).is_none());
        let dir = tempfile::tempdir().unwrap();
        h.persist_reservations_in(dir.path());
        let mut s = spec("zero", "1", 0);
        s.hba = 3;
        let store = h.pr_store(&s).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let state = tgtkit_scsi_core::pr::PrState {
            aptpl: true,
            ..Default::default()
        };
        store.save(&state).unwrap();
        assert!(dir.path().join("user_3-d.pr").is_file());
        // A second handle on the same device sees the saved state; another
        // device does not.
        assert_eq!(h.pr_store(&s).unwrap().load().unwrap(), Some(state));
        assert_eq!(
            h.pr_store(&spec("zero", "1", 0)).unwrap().load().unwrap(),
            None
        );
    }

    fn spec(subtype: &str, argument: &str, size: u64) -> DeviceSpec {
        DeviceSpec {
            hba: 0,
            dev: "d".into(),
            subtype: subtype.into(),
            argument: argument.into(),
            size,
            block_size: 512,
            write_cache: false,
        }
    }

    #[cfg(feature = "backstores")]
    #[test]
    fn accepts_the_standard_file_and_ram_handlers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let h = standard();
        let file = h
            .open(&spec("file", path.to_str().unwrap(), 1 << 20))
            .unwrap();
        // The file is created and grown to dev_size.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        let buf = DataBuffer::from_vec(vec![0xa5; 4096]);
        futures::executor::block_on(file.write(8192, buf, WriteFlags::empty())).unwrap();
        futures::executor::block_on(file.flush()).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap()[8192..8192 + 4096],
            [0xa5; 4096]
        );
        // A larger dev_size grows the file.
        file.set_size(2 << 20).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 << 20);
        assert!(matches!(
            h.open(&spec("file", "relative/path", 0)),
            Err(HandlerError::BadArgument(_))
        ));

        let ram = h.open(&spec("ram", "64M", 0)).unwrap();
        assert_eq!(ram.geometry().size, 64 << 20);
        let ram = h.open(&spec("ram", "", 1 << 20)).unwrap();
        assert_eq!(ram.geometry().size, 1 << 20);
        assert!(matches!(
            h.open(&spec("ram", "much", 0)),
            Err(HandlerError::BadArgument(_))
        ));
    }

    #[cfg(feature = "backstores")]
    #[test]
    fn serves_an_iso_image_as_a_read_only_cdrom() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disc.iso");
        std::fs::write(&path, vec![0x11; 2048 * 10]).unwrap();
        let h = standard();
        assert_eq!(h.device_type("cdrom"), DeviceType::Cdrom);
        assert_eq!(h.device_type("file"), DeviceType::Disk);
        let mut s = spec("cdrom", path.to_str().unwrap(), 0);
        assert!(matches!(h.open(&s), Err(HandlerError::BadArgument(_))));
        s.block_size = 2048;
        let disc = h.open(&s).unwrap();
        let g = disc.geometry();
        assert_eq!((g.size, g.logical_block_size), (2048 * 10, 2048));
        assert!(g.read_only);
        // Never grown to dev_size, never written.
        s.size = 2048 * 11;
        assert!(matches!(h.open(&s), Err(HandlerError::BadArgument(_))));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2048 * 10);
    }

    #[cfg(feature = "backstores")]
    #[test]
    fn creates_a_blank_tape_of_dev_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tape.img");
        let h = standard();
        assert_eq!(h.device_type("tape"), DeviceType::Tape);
        let tape = h
            .open(&spec("tape", path.to_str().unwrap(), 1 << 20))
            .unwrap();
        assert_eq!(tape.geometry().size, 1 << 20);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        assert!(matches!(
            h.open(&spec("tape", "relative.img", 1 << 20)),
            Err(HandlerError::BadArgument(_))
        ));
    }

    #[test]
    fn accepts_sizes_with_suffixes() {
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn rejects_unknown_subtypes_clearly() {
        let err = handlers().open(&spec("qcow", "/x", 0)).unwrap_err();
        assert_eq!(err.errno(), -libc::ENOENT);
        assert_eq!(
            err.to_string(),
            "no handler for subtype \"qcow\" (known: zero)"
        );
        assert!(matches!(
            handlers().open(&spec("zero", "lots", 0)),
            Err(HandlerError::BadArgument(_))
        ));
    }

    #[test]
    fn accepts_size_changes_and_bounds_io() {
        let b = handlers().open(&spec("zero", "1M", 1 << 20)).unwrap();
        assert_eq!(b.geometry().size, 1 << 20);
        let buf = DataBuffer::zeroed(4096);
        futures::executor::block_on(b.read((1 << 20) - 4096, buf.clone())).unwrap();
        assert!(matches!(
            futures::executor::block_on(b.read(1 << 20, buf.clone())),
            Err(IoError::OutOfRange)
        ));
        b.set_size(2 << 20).unwrap();
        assert_eq!(b.geometry().size, 2 << 20);
        futures::executor::block_on(b.read(1 << 20, buf)).unwrap();
        // A size that is not a multiple of the block size is cut down.
        b.set_size(1000).unwrap();
        assert_eq!(b.geometry().size, 512);
    }

    #[test]
    fn rejects_inline_requests_past_the_configured_size() {
        // The fast path keeps the size check; inside it, an inner backstore
        // without a fast path declines and the caller awaits `read`.
        let inner = Arc::new(Zero(Geometry::new(1 << 20, 512)));
        let sized = SizedBackstore::new(inner, 4096, false);
        let buf = DataBuffer::zeroed(512);
        assert!(matches!(
            sized.read_nowait(4096, &buf),
            Some(Err(IoError::OutOfRange))
        ));
        assert!(matches!(
            sized.write_nowait(4096, &buf, WriteFlags::empty()),
            Some(Err(IoError::OutOfRange))
        ));
        assert!(sized.read_nowait(0, &buf).is_none());
        assert!(sized.write_nowait(0, &buf, WriteFlags::empty()).is_none());
    }
}
