//! Serving one TCMU device with the engine.
//!
//! [`RingServer`] is the runtime-agnostic core: it reads requests off a
//! [`Ring`], runs each command on the engine with a [`DataBuffer`](tgtkit_scsi_core::buffer::DataBuffer) over its
//! iovecs in the data area (no copy), writes the answers back, and says
//! when the kernel must be kicked (once per batch of completions). Task
//! management notifications become engine task-management calls. It is
//! driven by [`RingServer::run`], given a stream of kernel signals and a
//! kick function, so tests drive it against the simulated kernel.
//!
//! [`Device`] is the real thing: a UIO device found in sysfs, its handler's
//! backstore, an engine [`Target`] with that backstore as LUN 0, and a
//! thread that waits on the UIO fd.
//!
//! LIO stays the SCSI target the initiator talks to: it emulates REPORT
//! LUNS, persistent reservations and ALUA itself and passes every other
//! CDB to the ring, so the engine sees one I_T nexus and LUN 0.

use std::any::Any;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use futures::FutureExt;
use tgtkit_scsi_core::engine::{
    Command, DataDirection, LuConfig, NexusId, NexusInfo, RawCdb, Response, Target, TargetConfig,
    TaskAttribute, TmFunction,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, Sense, SenseKey};
use tgtkit_scsi_core::status::Status;

use crate::abi::{MailboxFlags, TmrType};
use crate::handler::{DeviceSpec, HandlerError, Handlers, SizedBackstore};
use crate::mem::SharedMemory;
use crate::ring::{CmdRequest, CompleteError, Completion, Request, Ring, RingError};
use crate::uio::{UioDevice, UioInfo};

/// Why a device cannot be served (any more).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The ring is unusable.
    #[error("ring: {0}")]
    Ring(#[from] RingError),
    /// Answering a command failed (a bug in this crate if it happens).
    #[error("completion: {0}")]
    Complete(#[from] CompleteError),
    /// The handler refused the device.
    #[error("handler: {0}")]
    Handler(#[from] HandlerError),
    /// The engine refused the logical unit.
    #[error("engine: {0}")]
    Engine(#[from] tgtkit_scsi_core::engine::ConfigError),
    /// A UIO or configfs operation failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// Releases data buffers kept with `KEEP_BUF` (writes the command id to the
/// device's `action/free_kept_buf`).
pub type KeptBufRelease = Arc<dyn Fn(u16) + Send + Sync>;

/// The owner of one command's data buffer: keeps the mapping alive and,
/// when the buffer had to outlive the command's answer (`KEEP_BUF`), frees
/// it in the kernel once the last handle is gone.
struct CmdMemory {
    _mem: Arc<SharedMemory>,
    release: Mutex<Option<(u16, KeptBufRelease)>>,
}

impl Drop for CmdMemory {
    fn drop(&mut self) {
        let taken = self
            .release
            .get_mut()
            .map(Option::take)
            .unwrap_or_else(|e| e.into_inner().take());
        if let Some((cmd_id, release)) = taken {
            release(cmd_id);
        }
    }
}

struct Done {
    cmd_id: u16,
    completion: Completion,
    memory: Option<Arc<CmdMemory>>,
}

/// Counters of one device.
#[derive(Debug, Default)]
pub struct Stats {
    /// Commands answered.
    pub commands: AtomicU64,
    /// Command entries refused as malformed.
    pub malformed: AtomicU64,
    /// TMR notifications handled.
    pub tmrs: AtomicU64,
    /// Kicks sent to the kernel.
    pub kicks: AtomicU64,
    /// Answers given with `KEEP_BUF`.
    pub kept_buffers: AtomicU64,
}

/// The engine side of one ring.
pub struct RingServer {
    ring: Ring,
    target: Arc<Target>,
    nexus: NexusId,
    lun: Lun,
    /// The LU's device model, learnt at the first command (it decides a
    /// command's data direction).
    device: Option<tgtkit_scsi_core::device::DeviceType>,
    inflight: FuturesUnordered<BoxFuture<'static, Done>>,
    tmfs: FuturesUnordered<BoxFuture<'static, ()>>,
    release: Option<KeptBufRelease>,
    stats: Arc<Stats>,
    started: bool,
}

impl std::fmt::Debug for RingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingServer")
            .field("ring", &self.ring)
            .field("inflight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

fn completion_of(resp: &Response, data_in: bool, buf_len: usize) -> Completion {
    let c = Completion::with_sense_bytes(resp.status, resp.sense_bytes());
    let short = resp.status == Status::GOOD && resp.data_len < buf_len;
    // A tape READ that met a filemark or a shorter block returns its data
    // with CHECK CONDITION.
    let with_check = resp.status == Status::CHECK_CONDITION;
    if data_in && resp.data_len > 0 && (short || with_check) {
        // target_core_user.c: read_len shortens the data-in and LIO reports
        // the residual underflow to the initiator; with CHECK CONDITION it
        // makes LIO send the data with the sense (SCF_TREAT_READ_AS_NORMAL).
        c.with_read_len(u32::try_from(resp.data_len).unwrap_or(u32::MAX))
    } else {
        c
    }
}

impl RingServer {
    /// Serve `ring` with LUN 0 of `target` over `nexus`. `release` frees
    /// kept buffers (without it `KEEP_BUF` is never used).
    #[must_use]
    pub fn new(
        ring: Ring,
        target: Arc<Target>,
        nexus: NexusId,
        release: Option<KeptBufRelease>,
    ) -> Self {
        Self {
            ring,
            target,
            nexus,
            lun: Lun::from_index(0).unwrap_or_else(|| Lun::from_u64(0)),
            device: None,
            inflight: FuturesUnordered::new(),
            tmfs: FuturesUnordered::new(),
            release,
            stats: Arc::new(Stats::default()),
            started: false,
        }
    }

    /// The device's counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The ring.
    #[must_use]
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Commands running on the engine.
    #[must_use]
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    fn start_command(&mut self, req: &CmdRequest) -> Result<bool, DeviceError> {
        let cmd_id = req.cmd_id;
        let Ok(cdb) = RawCdb::new(req.cdb()) else {
            let sense = Sense::new(
                SenseKey::ILLEGAL_REQUEST,
                Asc::INVALID_COMMAND_OPERATION_CODE,
            );
            return self.answer(cmd_id, &Completion::failed(&sense));
        };
        let memory = Arc::new(CmdMemory {
            _mem: Arc::clone(self.ring.memory()),
            release: Mutex::new(None),
        });
        let owner: Arc<dyn Any + Send + Sync> = memory.clone();
        let data = self.ring.data_buffer(req, owner).map_err(RingError::from)?;
        let buf_len = data.len();
        let target = Arc::clone(&self.target);
        let command = Command {
            nexus: self.nexus,
            lun: self.lun,
            tag: u64::from(cmd_id),
            attribute: TaskAttribute::Simple,
            cdb,
            data,
        };
        let lun = self.lun;
        let device = *self
            .device
            .get_or_insert_with(|| target.device_type(&lun).unwrap_or_default());
        let data_in = DataDirection::of_device(device, req.cdb()) == Some(DataDirection::Read);
        self.inflight.push(
            async move {
                let resp = target.execute(command).await;
                Done {
                    cmd_id,
                    completion: completion_of(&resp, data_in, buf_len),
                    memory: Some(memory),
                }
            }
            .boxed(),
        );
        Ok(false)
    }

    fn start_tmr(&mut self, tmr_type: TmrType, cmd_ids: &[u16]) {
        self.stats.tmrs.fetch_add(1, Ordering::Relaxed);
        tracing::info!(?tmr_type, ?cmd_ids, "task management notification");
        let functions: Vec<TmFunction> = if tmr_type == TmrType::CLEAR_ACA {
            vec![TmFunction::ClearAca]
        } else {
            // LIO performed the function (and raised its unit attentions);
            // the ids are the commands on the ring it aborts: abort each in
            // the engine so its answer comes back at once.
            cmd_ids
                .iter()
                .map(|&id| TmFunction::AbortTask { tag: u64::from(id) })
                .collect()
        };
        for f in functions {
            let target = Arc::clone(&self.target);
            let (nexus, lun) = (self.nexus, self.lun);
            self.tmfs.push(
                async move {
                    let r = target.task_management(nexus, lun, f).await;
                    tracing::debug!(?f, ?r, "engine task management");
                }
                .boxed(),
            );
        }
    }

    fn answer(&mut self, cmd_id: u16, c: &Completion) -> Result<bool, DeviceError> {
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        Ok(self.ring.complete(cmd_id, c)?)
    }

    /// Read every new request off the ring and start it. Returns whether
    /// answers were written (malformed entries are answered at once).
    ///
    /// # Errors
    ///
    /// [`DeviceError::Ring`] when the ring is desynchronised.
    pub fn fetch(&mut self) -> Result<bool, DeviceError> {
        let mut answered = false;
        while let Some(req) = self.ring.poll_request()? {
            match req {
                Request::Cmd(cmd) => answered |= self.start_command(&cmd)?,
                Request::Tmr(t) => self.start_tmr(t.tmr_type, &t.cmd_ids),
                Request::Malformed { cmd_id, error } => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(cmd_id, %error, "failing a malformed command entry");
                    answered |= self.answer(cmd_id, &Completion::failed(&error.sense()))?;
                }
            }
        }
        Ok(answered)
    }

    fn finish(&mut self, done: Done) -> Result<bool, DeviceError> {
        let mut completion = done.completion;
        if let Some(memory) = done.memory {
            if Arc::strong_count(&memory) > 1 {
                // The engine answered but someone (a backstore worker of an
                // aborted command) still holds the buffer: keep the data
                // blocks until the last handle drops.
                match &self.release {
                    Some(release)
                        if self
                            .ring
                            .capabilities()
                            .contains(MailboxFlags::CAP_KEEP_BUF) =>
                    {
                        completion = completion.keep_buf();
                        self.stats.kept_buffers.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut slot) = memory.release.lock() {
                            *slot = Some((done.cmd_id, Arc::clone(release)));
                        }
                    }
                    _ => tracing::warn!(
                        cmd_id = done.cmd_id,
                        "data buffer still referenced at completion and KEEP_BUF unavailable"
                    ),
                }
            }
        }
        self.answer(done.cmd_id, &completion)
    }

    /// Drive the ring: fetch on every kernel signal, run commands, answer
    /// them, and call `kick` once after each batch of answers. Returns when
    /// `signals` ends or `stop` resolves, after the running commands are
    /// answered.
    ///
    /// # Errors
    ///
    /// [`DeviceError`] when the ring breaks or a kick fails.
    pub async fn run<S, K, F>(
        &mut self,
        mut signals: S,
        kick: K,
        stop: F,
    ) -> Result<(), DeviceError>
    where
        S: Stream<Item = ()> + Unpin,
        K: Fn() -> io::Result<()>,
        F: Future<Output = ()>,
    {
        let mut stop = std::pin::pin!(stop.fuse());
        let mut stopping = false;
        futures::future::poll_fn(|cx| {
            if !stopping && stop.as_mut().poll(cx).is_ready() {
                stopping = true;
            }
            self.poll_once(cx, &mut signals, &kick, stopping)
        })
        .await
    }

    fn poll_once<S>(
        &mut self,
        cx: &mut Context<'_>,
        signals: &mut S,
        kick: &dyn Fn() -> io::Result<()>,
        stopping: bool,
    ) -> Poll<Result<(), DeviceError>>
    where
        S: Stream<Item = ()> + Unpin,
    {
        let mut ended = stopping;
        let mut signalled = false;
        while !ended {
            match Pin::new(&mut *signals).poll_next(cx) {
                Poll::Ready(Some(())) => signalled = true,
                Poll::Ready(None) => ended = true,
                Poll::Pending => break,
            }
        }
        if signalled && ended && !stopping {
            // The last signal before the stream ended still gets its fetch.
            if let Poll::Ready(r) = self.step(cx, true, kick, false) {
                return Poll::Ready(r);
            }
            signalled = false;
        }
        self.step(cx, signalled, kick, ended)
    }

    /// One round of work: with `signalled` (the kernel signalled the UIO
    /// device, or this is the first round) read new requests; answer the
    /// commands the engine finished; kick once if anything was answered.
    /// With `stopping` no new request is read, and the round returns
    /// `Ready` once no command is running. `cx`'s waker is woken when a
    /// running command finishes.
    ///
    /// # Errors
    ///
    /// [`DeviceError`] when the ring breaks or a kick fails.
    pub fn step(
        &mut self,
        cx: &mut Context<'_>,
        signalled: bool,
        kick: &dyn Fn() -> io::Result<()>,
        stopping: bool,
    ) -> Poll<Result<(), DeviceError>> {
        let fetch = signalled || !self.started;
        self.started = true;
        let mut kick_due = false;
        if fetch && !stopping {
            kick_due |= self.fetch()?;
        }
        while let Poll::Ready(Some(done)) = self.inflight.poll_next_unpin(cx) {
            kick_due |= self.finish(done)?;
        }
        while let Poll::Ready(Some(())) = self.tmfs.poll_next_unpin(cx) {}
        if kick_due {
            self.stats.kicks.fetch_add(1, Ordering::Relaxed);
            kick()?;
        }
        if stopping && self.inflight.is_empty() {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

/// An eventfd that wakes a device thread (as a task waker and as a stop
/// signal).
struct EventFd(std::os::fd::OwnedFd);

impl EventFd {
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Self(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    fn signal(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to an eventfd we own; a
        // full counter (EAGAIN) already means "signalled".
        unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&self.0),
                one.as_ptr().cast(),
                8,
            );
        }
    }

    fn drain(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads 8 bytes into a live buffer from an eventfd we own
        // (non-blocking: EAGAIN when not signalled).
        unsafe {
            libc::read(
                std::os::fd::AsRawFd::as_raw_fd(&self.0),
                buf.as_mut_ptr().cast(),
                8,
            );
        }
    }
}

impl std::task::Wake for EventFd {
    fn wake(self: Arc<Self>) {
        self.signal();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.signal();
    }
}

/// Stops a device served with [`Device::serve_blocking`] or
/// [`Device::spawn`]: running commands are answered first.
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    wake: Arc<EventFd>,
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("stopped", &self.flag.load(Ordering::Relaxed))
            .finish()
    }
}

impl Stopper {
    /// A stopper not yet triggered.
    ///
    /// # Errors
    ///
    /// If no eventfd can be created.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            flag: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(EventFd::new()?),
        })
    }

    /// Ask the device to stop.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        self.wake.signal();
    }

    fn stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// Where a [`Device`] finds the kernel's files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `/sys/class/uio`.
    pub sysfs_uio: PathBuf,
    /// `/dev`.
    pub dev: PathBuf,
    /// The configfs mount (`/sys/kernel/config`).
    pub configfs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            sysfs_uio: PathBuf::from("/sys/class/uio"),
            dev: PathBuf::from("/dev"),
            configfs: PathBuf::from("/sys/kernel/config"),
        }
    }
}

fn read_attr(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// A TCMU device opened and ready to serve.
pub struct Device {
    uio: Arc<UioDevice>,
    server: RingServer,
    backstore: Arc<SizedBackstore>,
    target: Arc<Target>,
    configfs_dir: PathBuf,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("uio", &self.uio.info())
            .field("configfs_dir", &self.configfs_dir)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Open the device `info`: read its attributes from configfs, open the
    /// backstore its cfgstring names, build an engine target over it, map
    /// the ring.
    ///
    /// # Errors
    ///
    /// [`DeviceError`] if the handler refuses, the mapping fails or the
    /// mailbox is unusable.
    pub fn open(
        info: UioInfo,
        handlers: &Handlers,
        paths: &Paths,
        config: &TargetConfig,
    ) -> Result<Self, DeviceError> {
        let name = info.name.clone();
        let configfs_dir = name.configfs_dir(&paths.configfs);
        let attrib = configfs_dir.join("attrib");
        let spec = DeviceSpec {
            hba: name.hba,
            dev: name.dev.clone(),
            subtype: name.subtype().to_owned(),
            argument: name.argument().to_owned(),
            size: read_attr(&attrib, "dev_size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            block_size: read_attr(&attrib, "hw_block_size")
                .and_then(|s| s.parse().ok())
                .filter(|&b: &u32| b.is_power_of_two() && b >= 512)
                .unwrap_or(512),
            write_cache: read_attr(&attrib, "emulate_write_cache").is_some_and(|s| s == "1"),
        };
        let backstore = handlers.open(&spec)?;
        let mut config = config.clone();
        config.name = format!("{}:{}", config.name, name.dev);
        let target = Target::new(config);
        let mut lu = LuConfig::new(backstore.clone() as Arc<_>)
            .device_type(handlers.device_type(&spec.subtype));
        if let Some(store) = handlers.pr_store(&spec) {
            lu = lu.persist_reservations(store);
        }
        target.add_lun(0, lu)?;
        let nexus = target.add_nexus(NexusInfo {
            initiator_port: "tcmu".into(),
            target_port: info.raw_name.clone(),
            relative_port: 1,
            transport_id: Vec::new(),
        });
        let uio = Arc::new(UioDevice::open(&paths.dev, info)?);
        let ring = Ring::attach(Arc::clone(uio.memory()))?;
        tracing::info!(
            dev = %name.dev, cfg = %name.cfgstring, size = spec.size, block = spec.block_size,
            caps = ?ring.capabilities(), map = uio.memory().len(), "serving TCMU device"
        );
        let free = configfs_dir.join("action/free_kept_buf");
        let release: KeptBufRelease = Arc::new(move |cmd_id: u16| {
            if let Err(e) = std::fs::write(&free, format!("{cmd_id}\n")) {
                tracing::warn!(cmd_id, %e, "free_kept_buf failed");
            }
        });
        let server = RingServer::new(ring, Arc::clone(&target), nexus, Some(release));
        Ok(Self {
            uio,
            server,
            backstore,
            target,
            configfs_dir,
        })
    }

    /// The backstore (to apply size and write-cache changes).
    #[must_use]
    pub fn backstore(&self) -> &Arc<SizedBackstore> {
        &self.backstore
    }

    /// The engine target serving the device.
    #[must_use]
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// The device's configfs directory.
    #[must_use]
    pub fn configfs_dir(&self) -> &Path {
        &self.configfs_dir
    }

    /// The device's counters.
    #[must_use]
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(self.server.stats())
    }

    /// Serve until `stop` resolves (running commands are answered first).
    /// A thread waits on the UIO fd and wakes the returned future.
    ///
    /// # Errors
    ///
    /// [`DeviceError`] when the ring breaks or the UIO device fails.
    pub async fn serve(mut self, stop: impl Future<Output = ()>) -> Result<(), DeviceError> {
        let (tx, rx) = futures::channel::mpsc::channel::<()>(1);
        let quit = Arc::new(AtomicBool::new(false));
        let waiter = spawn_waiter(Arc::clone(&self.uio), tx, Arc::clone(&quit))?;
        let uio = Arc::clone(&self.uio);
        let result = self.server.run(rx, move || uio.kick(), stop).await;
        quit.store(true, Ordering::Release);
        let _ = waiter.join();
        result
    }
}

impl Device {
    /// Serve on the calling thread until `stopper` is triggered: the thread
    /// sleeps in poll(2) on the UIO fd and an eventfd that the engine's
    /// wake-ups and the stopper write, so a kernel signal reaches the ring
    /// with no thread hop. Running commands are answered before returning.
    ///
    /// # Errors
    ///
    /// [`DeviceError`] when the ring breaks or the UIO device fails.
    pub fn serve_blocking(mut self, stopper: &Stopper) -> Result<(), DeviceError> {
        use std::os::fd::{AsFd, AsRawFd};
        let waker = std::task::Waker::from(Arc::clone(&stopper.wake));
        let mut cx = Context::from_waker(&waker);
        let uio = Arc::clone(&self.uio);
        let kick = move || uio.kick();
        let mut fds = [
            libc::pollfd {
                fd: self.uio.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stopper.wake.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut signalled = true;
        loop {
            let stopping = stopper.stopped();
            if let Poll::Ready(r) = self.server.step(&mut cx, signalled, &kick, stopping) {
                return r;
            }
            for f in &mut fds {
                f.revents = 0;
            }
            // SAFETY: two valid pollfds for descriptors that outlive the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
            signalled = fds[0].revents & libc::POLLIN != 0;
            if signalled {
                self.uio.wait()?;
            }
            if fds[1].revents & libc::POLLIN != 0 {
                stopper.wake.drain();
            }
        }
    }

    /// Serve on a new thread named after the device; stop it with
    /// `stopper` and join the handle for the result.
    ///
    /// # Errors
    ///
    /// If the thread cannot be started.
    pub fn spawn(self, stopper: Stopper) -> io::Result<JoinHandle<Result<(), DeviceError>>> {
        let dev = self.uio.info().name.dev.clone();
        std::thread::Builder::new()
            .name(format!("tcmu-{dev}"))
            .spawn(move || {
                let result = self.serve_blocking(&stopper);
                if let Err(e) = &result {
                    tracing::error!(%dev, %e, "device stopped on an error");
                }
                result
            })
    }
}

fn spawn_waiter(
    uio: Arc<UioDevice>,
    mut tx: futures::channel::mpsc::Sender<()>,
    quit: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("tcmu-uio{}", uio.info().index))
        .spawn(move || {
            while !quit.load(Ordering::Acquire) {
                match uio.wait_timeout(200) {
                    Ok(true) => {
                        // A full channel already holds a wake-up: coalesce.
                        if let Err(e) = tx.try_send(()) {
                            if e.is_disconnected() {
                                return;
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(%e, "waiting on the UIO device failed");
                        return;
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockKernel;
    use std::sync::atomic::AtomicUsize;
    use tgtkit_scsi_core::test_utils::MemBackstore;

    const INQUIRY: [u8; 6] = [0x12, 0, 0, 0, 96, 0];
    const READ_CAPACITY10: [u8; 10] = [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    struct Setup {
        kernel: MockKernel,
        server: RingServer,
        backstore: Arc<MemBackstore>,
    }

    fn setup(caps: MailboxFlags) -> Setup {
        setup_as(caps, tgtkit_scsi_core::device::DeviceType::Disk)
    }

    fn setup_as(caps: MailboxFlags, device: tgtkit_scsi_core::device::DeviceType) -> Setup {
        let kernel = MockKernel::new(caps, 1 << 16, 256, 4096);
        let ring = Ring::attach(kernel.memory()).unwrap();
        let backstore = Arc::new(MemBackstore::new(2048, 512));
        let target = Target::new(TargetConfig::default());
        target
            .add_lun(
                0,
                LuConfig::new(backstore.clone() as Arc<_>).device_type(device),
            )
            .unwrap();
        let nexus = target.add_nexus(NexusInfo {
            initiator_port: "tcmu".into(),
            target_port: "test".into(),
            relative_port: 1,
            transport_id: Vec::new(),
        });
        Setup {
            kernel,
            server: RingServer::new(ring, target, nexus, None),
            backstore,
        }
    }

    /// Run the server until every queued command is answered.
    fn drive(s: &mut Setup) -> usize {
        let kicks = AtomicUsize::new(0);
        let (mut tx, rx) = futures::channel::mpsc::channel::<()>(1);
        let _ = tx.try_send(());
        drop(tx);
        futures::executor::block_on(s.server.run(
            rx,
            || {
                kicks.fetch_add(1, Ordering::Relaxed);
                Ok(())
            },
            futures::future::pending(),
        ))
        .unwrap();
        kicks.into_inner()
    }

    #[test]
    fn returns_a_tape_blocks_data_with_its_check_condition() {
        let tape = tgtkit_scsi_core::device::DeviceType::Tape;
        let mut s = setup_as(MailboxFlags::all(), tape);
        let _ = s.kernel.queue_cmd(&[0; 6], &[], 0).unwrap();
        drive(&mut s);
        s.kernel.reap().unwrap();
        // WRITE(6) of one 100-byte block, REWIND, READ(6) of up to 512.
        let w = s
            .kernel
            .queue_cmd(&[0x0a, 0, 0, 0, 100, 0], &[7; 100], 0)
            .unwrap();
        drive(&mut s);
        assert_eq!(s.kernel.reap().unwrap()[0].cmd_id, w);
        let _ = s.kernel.queue_cmd(&[0x01, 0, 0, 0, 0, 0], &[], 0).unwrap();
        drive(&mut s);
        s.kernel.reap().unwrap();
        let r = s
            .kernel
            .queue_cmd(&[0x08, 0, 0, 2, 0, 0], &[], 512)
            .unwrap();
        // READ POSITION shares PRE-FETCH(10)'s opcode: a data-in command here.
        let p = s
            .kernel
            .queue_cmd(&[0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 20)
            .unwrap();
        drive(&mut s);
        let done = s.kernel.reap().unwrap();
        let read = done.iter().find(|c| c.cmd_id == r).unwrap();
        assert_eq!(read.status, 2);
        assert_eq!(read.sense[2], 0x20, "ILI, NO SENSE");
        assert_eq!(read.read_len, Some(100));
        assert_eq!(read.data_in, [7; 100]);
        let pos = done.iter().find(|c| c.cmd_id == p).unwrap();
        assert_eq!((pos.status, pos.data_in[7]), (0, 1));
    }

    #[test]
    fn accepts_commands_end_to_end_through_the_engine() {
        let mut s = setup(MailboxFlags::all());
        // The first command of a new nexus reports the power-on unit attention.
        let tur = s.kernel.queue_cmd(&[0; 6], &[], 0).unwrap();
        let inq = s.kernel.queue_cmd(&INQUIRY, &[], 96).unwrap();
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let mut write10 = [0x2a, 0, 0, 0, 0, 16, 0, 0, 8, 0];
        let w = s.kernel.queue_cmd(&write10, &data, 0).unwrap();
        let kicks = drive(&mut s);
        assert!(kicks >= 1);
        let done = s.kernel.reap().unwrap();
        let by_id = |id| done.iter().find(|c| c.cmd_id == id).unwrap();
        assert_eq!(by_id(tur).status, 2, "unit attention on the first command");
        assert_eq!(by_id(tur).sense[2] & 0xf, 6);
        let inquiry = by_id(inq);
        assert_eq!(inquiry.status, 0);
        assert_eq!(&inquiry.data_in[8..14], b"TGTKIT");
        // INQUIRY returns fewer bytes than allocated: READ_LEN tells the kernel.
        assert!(inquiry.read_len.is_some_and(|l| (36..96).contains(&l)));
        assert_eq!(by_id(w).status, 0);
        assert_eq!(s.backstore.contents(16 * 512, 4096), data);

        // Read it back through the data area.
        write10[0] = 0x28;
        let r = s.kernel.queue_cmd(&write10, &[], 4096).unwrap();
        let cap = s.kernel.queue_cmd(&READ_CAPACITY10, &[], 8).unwrap();
        drive(&mut s);
        let done = s.kernel.reap().unwrap();
        assert_eq!(done.iter().find(|c| c.cmd_id == r).unwrap().data_in, data);
        let cap = &done.iter().find(|c| c.cmd_id == cap).unwrap().data_in;
        assert_eq!(cap[..], [0, 0, 7, 0xff, 0, 0, 2, 0]);
        assert_eq!(s.server.stats().commands.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn rejects_malformed_entries_with_check_condition_and_goes_on() {
        let mut s = setup(MailboxFlags::all());
        s.kernel.queue_cmd(&[0; 6], &[], 0).unwrap(); // eats the unit attention
        let mut bad = vec![0u8; 120];
        let hdr = crate::abi::RawEntryHdr::new(crate::abi::Opcode::CMD, 120, 99);
        let req = crate::abi::RawCmdReq::new(hdr, 1, 0, 0x10);
        use zerocopy::IntoBytes;
        bad[..48].copy_from_slice(req.as_bytes());
        s.kernel.queue_raw(&bad).unwrap();
        let inq = s.kernel.queue_cmd(&INQUIRY, &[], 96).unwrap();
        drive(&mut s);
        let done = s.kernel.reap().unwrap();
        let bad = done.iter().find(|c| c.cmd_id == 99).unwrap();
        assert_eq!((bad.status, bad.sense[2] & 0xf), (2, 4), "HARDWARE ERROR");
        assert_eq!(done.iter().find(|c| c.cmd_id == inq).unwrap().status, 0);
        assert_eq!(s.server.stats().malformed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn accepts_size_changes_as_capacity_data_has_changed() {
        let kernel = MockKernel::new(MailboxFlags::all(), 1 << 16, 16, 4096);
        let ring = Ring::attach(kernel.memory()).unwrap();
        let mem = Arc::new(MemBackstore::new(4096, 512));
        let sized = Arc::new(SizedBackstore::new(mem, 1 << 20, false));
        let target = Target::new(TargetConfig::default());
        target
            .add_lun(0, LuConfig::new(sized.clone() as Arc<_>))
            .unwrap();
        let nexus = target.add_nexus(NexusInfo {
            initiator_port: "tcmu".into(),
            target_port: "t".into(),
            relative_port: 1,
            transport_id: Vec::new(),
        });
        let mut s = Setup {
            kernel,
            server: RingServer::new(ring, target, nexus, None),
            backstore: Arc::new(MemBackstore::new(1, 512)),
        };
        s.kernel.queue_cmd(&[0; 6], &[], 0).unwrap();
        drive(&mut s);
        s.kernel.reap().unwrap();
        sized.set_size(2 << 20).unwrap();
        let tur = s.kernel.queue_cmd(&[0; 6], &[], 0).unwrap();
        let cap = s.kernel.queue_cmd(&READ_CAPACITY10, &[], 8).unwrap();
        drive(&mut s);
        let done = s.kernel.reap().unwrap();
        let tur = done.iter().find(|c| c.cmd_id == tur).unwrap();
        // SBC-4 §4.7: CAPACITY DATA HAS CHANGED (2Ah/09h) unit attention.
        assert_eq!(
            (tur.status, tur.sense[2] & 0xf, tur.sense[12], tur.sense[13]),
            (2, 6, 0x2a, 0x09)
        );
        let cap = &done.iter().find(|c| c.cmd_id == cap).unwrap().data_in;
        assert_eq!(cap[..4], [0, 0, 0x0f, 0xff]);
    }

    #[test]
    fn accepts_tmr_notifications() {
        let mut s = setup(MailboxFlags::all());
        let a = s.kernel.queue_cmd(&[0; 6], &[], 0).unwrap();
        s.kernel.queue_tmr(TmrType::ABORT_TASK, &[a]).unwrap();
        drive(&mut s);
        assert_eq!(s.kernel.reap().unwrap().len(), 1);
        assert_eq!(s.server.stats().tmrs.load(Ordering::Relaxed), 1);
        assert_eq!(s.kernel.inflight(), 0);
    }
}
