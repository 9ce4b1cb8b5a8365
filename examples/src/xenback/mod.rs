//! The xenstore side of a userspace Xen backend daemon, shared by
//! `xen-blkback` and `xen-scsiback`.
//!
//! A [`Daemon`] watches `backend/<type>` under this domain's home for every
//! backend type it serves and runs one [`Backend`] state machine per
//! device directory (`<type>/<frontend domid>/<devid>`): it answers the
//! frontend's moves, maps rings through gntdev, binds event channels and
//! runs each ring on a tokio runtime. What a device *is* (a disk over a
//! backstore, a vhost of SCSI LUNs) is the [`Kind`]'s business: opening
//! the device, the feature keys, connecting its rings, LUN hot-plug. One
//! device's fault only closes that device.
//!
//! The kinds: [`blk`] (blkif disks) and [`scsi`] (vscsiif vhosts).

pub mod blk;
pub mod scsi;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;

use tgtkit_xen::evtchn::InterdomainChannel;
use tgtkit_xen::gntdev::Gntdev;
use tgtkit_xen::xenbus::{Action, Backend, XenbusState};
use tgtkit_xen::xenstore::{WatchEvent, Xenstore, XsError};
use tgtkit_xen_ring::RingMemory;
use tracing::{error, info, warn};

/// `<type>/<domid>/<devid>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DevKey {
    /// Backend type (`qdisk`, `vbd3`, `vscsi`).
    pub ty: String,
    /// Frontend domain.
    pub dom: u32,
    /// Device id.
    pub dev: String,
}

impl std::fmt::Display for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.ty, self.dom, self.dev)
    }
}

/// What the daemon's loop takes in.
#[derive(Debug)]
pub enum Msg {
    /// A xenstore watch fired.
    Watch(WatchEvent),
    /// A ring of this device stopped on its own.
    RingStopped(DevKey),
    /// SIGINT or SIGTERM.
    Signal,
}

/// One running ring: its event channel and the task serving it.
#[derive(Debug)]
pub struct Ring {
    /// The bound channel (closing it stops the task).
    pub channel: Arc<InterdomainChannel>,
    /// The task; `true` if it ended cleanly.
    pub task: tokio::task::JoinHandle<bool>,
}

/// Where a device lives in xenstore.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The backend directory.
    pub be: String,
    /// The frontend directory (the backend's `frontend` node).
    pub fe: String,
    /// The frontend's domain (`frontend-id`).
    pub fe_dom: u32,
}

/// What a [`Kind`] needs of the daemon.
pub struct Ctx {
    /// The xenstore connection.
    pub xs: Arc<Xenstore>,
    /// `/dev/xen/gntdev`, if it opened.
    pub gntdev: Option<Arc<Gntdev>>,
    rt: tokio::runtime::Handle,
    tx: mpsc::Sender<Msg>,
}

impl Ctx {
    /// The context: rings run on `rt` and report to `tx`.
    #[must_use]
    pub fn new(
        xs: Arc<Xenstore>,
        gntdev: Option<Arc<Gntdev>>,
        rt: tokio::runtime::Handle,
        tx: mpsc::Sender<Msg>,
    ) -> Self {
        Self { xs, gntdev, rt, tx }
    }
}

/// Read `path`; `None` if it does not exist.
///
/// # Errors
///
/// Any other xenstore error.
pub fn read_opt(xs: &Xenstore, path: &str) -> Result<Option<String>, XsError> {
    match xs.read_string(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Ctx {
    /// Read `path` as text, `None` if absent.
    ///
    /// # Errors
    ///
    /// The xenstore error, as text.
    pub fn read(&self, path: &str) -> Result<Option<String>, String> {
        read_opt(&self.xs, path).map_err(|e| e.to_string())
    }

    /// Read `path` as a decimal number, `None` if absent.
    ///
    /// # Errors
    ///
    /// A xenstore error, or a value that is not a number.
    pub fn num(&self, path: &str) -> Result<Option<u32>, String> {
        self.read(path)?
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{path}: not a number: {v:?}"))
            })
            .transpose()
    }

    /// Write `(key, value)` pairs under `dir` in one transaction.
    ///
    /// # Errors
    ///
    /// The xenstore error, as text.
    pub fn write_all(&self, dir: &str, keys: &[(&str, String)]) -> Result<(), String> {
        self.xs
            .in_transaction(|t| {
                for (k, v) in keys {
                    t.write(&format!("{dir}/{k}"), v.as_bytes())?;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    }

    /// Map the frontend's ring pages `refs` of domain `dom`, writable.
    ///
    /// # Errors
    ///
    /// No gntdev, a refused grant, or a mapping too small for a ring.
    pub fn map_ring(&self, dom: u32, refs: &[u32]) -> Result<RingMemory, String> {
        let gntdev = self.gntdev.as_ref().ok_or("no /dev/xen/gntdev")?;
        let mapped = gntdev
            .map(dom, refs, true)
            .map_err(|e| format!("ring {refs:?}: {e}"))?;
        let (ptr, len) = (mapped.as_ptr(), mapped.len());
        // SAFETY: `ptr..ptr+len` is the ring mapping owned by `mapped`,
        // kept alive by the RingMemory's owner and only touched through
        // its volatile accessors.
        unsafe { RingMemory::from_raw(ptr, len, Arc::new(mapped)) }.map_err(|e| e.to_string())
    }

    /// Bind the frontend's event channel `port` of domain `dom`.
    ///
    /// # Errors
    ///
    /// The evtchn error, as text.
    pub fn bind(&self, dom: u32, port: u32) -> Result<Arc<InterdomainChannel>, String> {
        InterdomainChannel::bind(dom, port)
            .map(Arc::new)
            .map_err(|e| format!("bind port {port}: {e}"))
    }

    /// Run a ring's serving future; the daemon hears when it stops.
    pub fn spawn_ring<F>(&self, key: &DevKey, channel: Arc<InterdomainChannel>, serve: F) -> Ring
    where
        F: Future<Output = bool> + Send + 'static,
    {
        let (tx, k) = (self.tx.clone(), key.clone());
        let task = self.rt.spawn(async move {
            let ok = serve.await;
            let _ = tx.send(Msg::RingStopped(k));
            ok
        });
        Ring { channel, task }
    }
}

/// The protocol-specific part of a backend daemon.
pub trait Kind {
    /// What the kind keeps per device.
    type Device;

    /// The program name, in log lines and the "watching" banner.
    const NAME: &'static str;

    /// Whether the frontend's `Reconfiguring` is LUN hot-plug with the
    /// rings kept up ([`Backend::with_lun_hotplug`]).
    const LUN_HOTPLUG: bool = false;

    /// Open a device whose backend directory appeared (read its nodes,
    /// open its backstores).
    ///
    /// # Errors
    ///
    /// Why the device is not served (written to `hotplug-error`).
    fn open(&mut self, ctx: &Ctx, key: &DevKey, paths: &Paths) -> Result<Self::Device, String>;

    /// The feature keys written before `InitWait`.
    ///
    /// # Errors
    ///
    /// A xenstore failure.
    fn advertise(&self, ctx: &Ctx, dev: &Self::Device, paths: &Paths) -> Result<(), String>;

    /// The frontend is ready: map its rings, start serving, write the
    /// connect keys.
    ///
    /// # Errors
    ///
    /// Why the frontend cannot be served (written to `error`).
    fn connect(
        &mut self,
        ctx: &Ctx,
        key: &DevKey,
        dev: &mut Self::Device,
        paths: &Paths,
    ) -> Result<Vec<Ring>, String>;

    /// LUN hot-plug: apply the entries the toolstack added or closed.
    ///
    /// # Errors
    ///
    /// A xenstore failure.
    fn reconfigure(
        &mut self,
        _ctx: &Ctx,
        _key: &DevKey,
        _dev: &mut Self::Device,
        _paths: &Paths,
    ) -> Result<(), String> {
        Ok(())
    }

    /// The frontend attached what [`Kind::reconfigure`] offered.
    ///
    /// # Errors
    ///
    /// A xenstore failure.
    fn confirm(
        &mut self,
        _ctx: &Ctx,
        _dev: &mut Self::Device,
        _paths: &Paths,
    ) -> Result<(), String> {
        Ok(())
    }

    /// The rings stopped (disconnect, close).
    fn disconnected(&mut self, _ctx: &Ctx, _dev: &mut Self::Device) {}

    /// The device is forgotten.
    fn removed(&mut self, _ctx: &Ctx, _dev: Self::Device) {}
}

struct Device<D> {
    paths: Paths,
    machine: Backend,
    rings: Vec<Ring>,
    inner: D,
}

/// The daemon: the xenstore watch loop over every device of kind `K`.
pub struct Daemon<K: Kind> {
    ctx: Ctx,
    base: String,
    types: Vec<String>,
    domids: Vec<u32>,
    kind: K,
    devices: HashMap<DevKey, Device<K::Device>>,
    /// Devices not (or no longer) served while their directory stays.
    ignored: HashSet<DevKey>,
}

fn fe_token(key: &DevKey) -> String {
    format!("fe:{}:{}:{}", key.ty, key.dom, key.dev)
}

impl<K: Kind> Daemon<K> {
    /// A daemon for `types` under `base` (this domain's home), serving only
    /// `domids` unless empty. Watches nothing yet: see [`Daemon::watch`].
    pub fn new(kind: K, ctx: Ctx, base: String, types: Vec<String>, domids: Vec<u32>) -> Self {
        Self {
            ctx,
            base,
            types,
            domids,
            kind,
            devices: HashMap::new(),
            ignored: HashSet::new(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> &K {
        &self.kind
    }

    /// Number of devices served.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is served.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Watch every backend type's directory.
    ///
    /// # Errors
    ///
    /// A watch that cannot be set.
    pub fn watch(&self) -> Result<(), String> {
        for ty in &self.types {
            let dir = self.backend_dir(ty);
            self.ctx
                .xs
                .watch(&dir, &format!("be:{ty}"))
                .map_err(|e| format!("watch {dir}: {e}"))?;
            let line = format!("{}: watching backend/{ty} ({dir})", K::NAME);
            println!("{line}");
            eprintln!("{line}");
        }
        Ok(())
    }

    /// Handle one event; `false` once the daemon must stop.
    pub fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Watch(ev) => {
                if let Some(ty) = ev.token.strip_prefix("be:") {
                    let ty = ty.to_owned();
                    self.handle_backend_event(&ty, &ev.path);
                } else if let Some(rest) = ev.token.strip_prefix("fe:") {
                    let mut it = rest.splitn(3, ':');
                    if let (Some(ty), Some(dom), Some(dev)) = (it.next(), it.next(), it.next()) {
                        if let Ok(dom) = dom.parse() {
                            self.frontend_changed(&DevKey {
                                ty: ty.into(),
                                dom,
                                dev: dev.into(),
                            });
                        }
                    }
                }
                true
            }
            Msg::RingStopped(key) => {
                self.ring_stopped(&key);
                true
            }
            Msg::Signal => false,
        }
    }

    /// Close every device (state 6).
    pub fn shutdown(&mut self) {
        info!(devices = self.devices.len(), "shutting down");
        let keys: Vec<DevKey> = self.devices.keys().cloned().collect();
        for key in keys {
            if let Some(dev) = self.devices.get_mut(&key) {
                dev.machine.handle_shutdown();
            }
            self.run_actions(&key);
        }
    }

    fn backend_dir(&self, ty: &str) -> String {
        format!("{}/backend/{ty}", self.base)
    }

    fn be_path(&self, key: &DevKey) -> String {
        format!("{}/backend/{}/{}/{}", self.base, key.ty, key.dom, key.dev)
    }

    fn handle_backend_event(&mut self, ty: &str, path: &str) {
        let dir = self.backend_dir(ty);
        let Some(rest) = path.strip_prefix(&dir) else {
            return;
        };
        let parts: Vec<&str> = rest
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match parts.as_slice() {
            [] => {
                for dom in self.ctx.xs.directory(&dir).unwrap_or_default() {
                    self.scan_domain(ty, &dom);
                }
            }
            [dom] => self.scan_domain(ty, dom),
            [dom, dev, tail @ ..] => {
                let Ok(dom) = dom.parse::<u32>() else { return };
                let key = DevKey {
                    ty: ty.into(),
                    dom,
                    dev: (*dev).into(),
                };
                if tail == ["online"] {
                    self.online_changed(&key);
                } else if tail.is_empty()
                    || tail == ["frontend"]
                    || (!self.devices.contains_key(&key) && !self.ignored.contains(&key))
                {
                    self.consider(&key);
                }
            }
        }
    }

    fn scan_domain(&mut self, ty: &str, dom: &str) {
        let Ok(domid) = dom.parse::<u32>() else {
            return;
        };
        let path = format!("{}/{dom}", self.backend_dir(ty));
        for dev in self.ctx.xs.directory(&path).unwrap_or_default() {
            self.consider(&DevKey {
                ty: ty.into(),
                dom: domid,
                dev,
            });
        }
    }

    /// A device directory changed: start serving it, or notice it is gone.
    fn consider(&mut self, key: &DevKey) {
        let be = self.be_path(key);
        let frontend = match read_opt(&self.ctx.xs, &format!("{be}/frontend")) {
            Ok(f) => f,
            Err(e) => {
                warn!(device = %key, error = %e, "xenstore read failed");
                return;
            }
        };
        let Some(fe) = frontend else {
            // The backend directory went away (toolstack cleanup).
            self.ignored.remove(key);
            if let Some(d) = self.devices.get_mut(key) {
                d.machine.handle_frontend_gone();
                self.run_actions(key);
            }
            return;
        };
        if self.devices.contains_key(key) || self.ignored.contains(key) {
            return;
        }
        // As Linux's xenbus: a device exists once its backend `state` node
        // does (a toolstack writing keys one by one writes it last).
        if !matches!(read_opt(&self.ctx.xs, &format!("{be}/state")), Ok(Some(_))) {
            return;
        }
        if !self.domids.is_empty() && !self.domids.contains(&key.dom) {
            self.ignored.insert(key.clone());
            return;
        }
        match self.open_device(key, be.clone(), fe) {
            Ok(dev) => {
                info!(device = %key, frontend = %dev.paths.fe, "serving");
                let fe_state = format!("{}/state", dev.paths.fe);
                self.devices.insert(key.clone(), dev);
                self.run_actions(key);
                if let Err(e) = self.ctx.xs.watch(&fe_state, &fe_token(key)) {
                    error!(device = %key, error = %e, "cannot watch the frontend");
                }
            }
            Err(e) => {
                error!(device = %key, error = %e, "not serving this device");
                let _ = self
                    .ctx
                    .xs
                    .write(&format!("{be}/hotplug-error"), e.as_bytes());
                self.ignored.insert(key.clone());
            }
        }
    }

    fn open_device(
        &mut self,
        key: &DevKey,
        be: String,
        fe: String,
    ) -> Result<Device<K::Device>, String> {
        let state = self
            .ctx
            .read(&format!("{be}/state"))?
            .map(|s| XenbusState::parse(s.as_bytes()));
        if matches!(state, Some(XenbusState::CLOSING | XenbusState::CLOSED)) {
            return Err(format!(
                "backend state is {}",
                state.unwrap_or(XenbusState::UNKNOWN)
            ));
        }
        let fe_dom = match self.ctx.read(&format!("{be}/frontend-id"))? {
            Some(d) => d
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("bad frontend-id {d:?}"))?,
            None => key.dom,
        };
        let paths = Paths { be, fe, fe_dom };
        let inner = self.kind.open(&self.ctx, key, &paths)?;
        let machine = if K::LUN_HOTPLUG {
            Backend::new().with_lun_hotplug()
        } else {
            Backend::new()
        };
        Ok(Device {
            paths,
            machine,
            rings: Vec::new(),
            inner,
        })
    }

    fn online_changed(&mut self, key: &DevKey) {
        let be = self.be_path(key);
        let online = read_opt(&self.ctx.xs, &format!("{be}/online"))
            .ok()
            .flatten();
        if let Some(d) = self.devices.get_mut(key) {
            d.machine
                .handle_online(online.as_deref().map(str::trim) != Some("0"));
            self.run_actions(key);
        }
    }

    fn frontend_changed(&mut self, key: &DevKey) {
        let Some(d) = self.devices.get_mut(key) else {
            return;
        };
        match self.ctx.xs.read(&format!("{}/state", d.paths.fe)) {
            Ok(v) => d.machine.handle_frontend(XenbusState::parse(&v)),
            // No state node yet, in a frontend directory that exists: the
            // toolstack has not written it yet. Gone is the directory gone.
            Err(e)
                if e.is_not_found()
                    && read_opt(&self.ctx.xs, &d.paths.fe).is_ok_and(|v| v.is_some()) => {}
            Err(e) if e.is_not_found() => d.machine.handle_frontend_gone(),
            Err(e) => {
                warn!(device = %key, error = %e, "reading the frontend state failed");
                return;
            }
        }
        self.run_actions(key);
    }

    fn ring_stopped(&mut self, key: &DevKey) {
        let Some(d) = self.devices.get_mut(key) else {
            return;
        };
        if d.rings.iter().any(|r| r.task.is_finished()) {
            d.machine.handle_ring_failed();
            self.run_actions(key);
        }
    }

    fn run_actions(&mut self, key: &DevKey) {
        loop {
            let Some(d) = self.devices.get_mut(key) else {
                return;
            };
            let Some(action) = d.machine.poll_action() else {
                return;
            };
            let (ctx, kind) = (&self.ctx, &mut self.kind);
            let be = &d.paths.be;
            let result: Result<(), String> = match action {
                Action::Advertise => kind.advertise(ctx, &d.inner, &d.paths),
                Action::SwitchState(s) => {
                    info!(device = %key, state = %s, "backend state");
                    ctx.xs
                        .write(&format!("{be}/state"), s.to_value().as_bytes())
                        .map_err(|e| e.to_string())
                }
                Action::Connect => {
                    let r = kind.connect(ctx, key, &mut d.inner, &d.paths);
                    match r {
                        Ok(rings) => {
                            d.rings = rings;
                            d.machine.handle_connected(true);
                        }
                        Err(e) => {
                            error!(device = %key, error = %e, "connect failed");
                            let _ = ctx.xs.write(&format!("{be}/error"), e.as_bytes());
                            d.machine.handle_connected(false);
                        }
                    }
                    Ok(())
                }
                Action::Reconfigure => kind.reconfigure(ctx, key, &mut d.inner, &d.paths),
                Action::ConfirmDevices => kind.confirm(ctx, &mut d.inner, &d.paths),
                Action::Disconnect => {
                    for r in std::mem::take(&mut d.rings) {
                        r.channel.close();
                        let _ = ctx.rt.block_on(r.task);
                    }
                    kind.disconnected(ctx, &mut d.inner);
                    info!(device = %key, "disconnected");
                    Ok(())
                }
                Action::Remove => {
                    if let Some(d) = self.devices.remove(key) {
                        let _ = self
                            .ctx
                            .xs
                            .unwatch(&format!("{}/state", d.paths.fe), &fe_token(key));
                        self.kind.removed(&self.ctx, d.inner);
                        info!(device = %key, "device removed");
                    }
                    self.ignored.insert(key.clone());
                    Ok(())
                }
            };
            if let Err(e) = result {
                warn!(device = %key, error = %e, "xenstore update failed");
            }
        }
    }
}

/// The flags both Xen backend binaries take (`#[command(flatten)]`).
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Backend type to serve (the directory under `backend/`); repeatable.
    #[arg(long = "backend-type", value_name = "TYPE")]
    pub backend_types: Vec<String>,
    /// Serve only frontends of this domain; repeatable (default: all).
    #[arg(long = "domid", value_name = "N")]
    pub domids: Vec<u32>,
}

/// A backend binary's `main`: logging, then [`serve`] with `args` (backend
/// type `default_type` when none is given) until a signal; exit status 1
/// with the error on stderr if it cannot start.
pub fn main<K: Kind>(kind: K, mut args: DaemonArgs, default_type: &str) -> std::process::ExitCode {
    crate::logging::init("info");
    if args.backend_types.is_empty() {
        args.backend_types.push(default_type.into());
    }
    match serve(kind, args.backend_types, args.domids) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", K::NAME);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Run a daemon of `kind` on `/dev/xen/xenbus` until SIGINT or SIGTERM,
/// then close its devices (state 6).
///
/// # Errors
///
/// No xenstore, no runtime, or a watch that cannot be set.
pub fn serve<K: Kind>(kind: K, types: Vec<String>, domids: Vec<u32>) -> Result<(), String> {
    // Two workers even in a one-vCPU dom0: with one, randwrite through
    // blkfront measured 0.28x-0.38x the kernel's blkback, against
    // 0.43x-0.62x with two (the file pool's completions and the ring loop
    // no longer wait for each other).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (xs, events) = Xenstore::open().map_err(|e| e.to_string())?;
    let xs = Arc::new(xs);
    // Relative paths are relative to our own domain's home.
    let own = read_opt(&xs, "domid")
        .ok()
        .flatten()
        .and_then(|d| d.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let base = xs
        .domain_path(own)
        .unwrap_or_else(|_| format!("/local/domain/{own}"));
    let gntdev = match Gntdev::open() {
        Ok(g) => {
            let _ = g.set_max_grants(8192);
            Some(Arc::new(g))
        }
        Err(e) => {
            error!(error = %e, "cannot open /dev/xen/gntdev: devices will fail to connect");
            None
        }
    };
    let (tx, rx) = mpsc::channel();
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for ev in events {
                if tx.send(Msg::Watch(ev)).is_err() {
                    break;
                }
            }
        });
    }
    {
        let tx = tx.clone();
        rt.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                error!("cannot install signal handlers");
                return;
            };
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
            let _ = tx.send(Msg::Signal);
        });
    }
    let ctx = Ctx::new(xs, gntdev, rt.handle().clone(), tx);
    let mut d = Daemon::new(kind, ctx, base, types, domids);
    d.watch()?;
    for msg in rx {
        if !d.handle(msg) {
            break;
        }
    }
    d.shutdown();
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! A daemon on the fake xenstored, without gntdev (connects fail).
    use super::*;
    use std::time::Duration;
    use tgtkit_xen::xenstore::fake::FakeXenstored;

    /// The daemon, its fake store, its watch events, and the runtime.
    pub struct Harness<K: Kind> {
        /// The fake xenstored.
        pub fake: FakeXenstored,
        /// The daemon under test.
        pub d: Daemon<K>,
        /// The daemon's watch events, fed by [`Harness::pump`].
        pub events: mpsc::Receiver<WatchEvent>,
        _rt: tokio::runtime::Runtime,
    }

    /// A daemon of `kind` serving backend type `ty`, without gntdev.
    ///
    /// # Panics
    ///
    /// If the fake store or the runtime cannot start.
    pub fn daemon<K: Kind>(kind: K, ty: &str, domids: Vec<u32>) -> Harness<K> {
        let (fake, xs, events) = FakeXenstored::start();
        let (tx, _rx) = mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ctx = Ctx::new(Arc::new(xs), None, rt.handle().clone(), tx);
        let d = Daemon::new(kind, ctx, "/local/domain/0".into(), vec![ty.into()], domids);
        d.watch().unwrap();
        Harness {
            fake,
            d,
            events,
            _rt: rt,
        }
    }

    impl<K: Kind> Harness<K> {
        /// Feed the daemon every watch event until none comes for 100 ms.
        ///
        /// # Panics
        ///
        /// If the daemon asks to stop.
        pub fn pump(&mut self) {
            while let Ok(ev) = self.events.recv_timeout(Duration::from_millis(100)) {
                assert!(self.d.handle(Msg::Watch(ev)));
            }
        }
    }
}
