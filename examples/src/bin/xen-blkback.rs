//! A userspace Xen block backend (blkback) on tgtkit.
//!
//! Watches `backend/<type>` under this domain's xenstore path for every
//! `--backend-type` (default `qdisk`), and serves each device that appears
//! there (`<type>/<frontend domid>/<devid>`), several disks and domains at
//! once: negotiation as Linux's xen-blkback does it, rings mapped with
//! gntdev, kicks on evtchn, requests run by `tgtkit_blkif::BlkifBackend`
//! on a raw file, qcow2 or ram backstore named by the `params` node.
//! One device's fault only closes that device.
//!
//! Runs until SIGINT or SIGTERM, then closes its devices (state 6) and
//! exits 0. Logs to stderr (`RUST_LOG`).

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::Arc;

use clap::Parser;
use tgtkit_blkif::engine::EnginePassThrough;
use tgtkit_blkif::{Abi, BackendConfig, BlkifBackend};
use tgtkit_examples::lunspec::{parse_size, LunKind, LunSpec};
use tgtkit_scsi_core::backstore::{Backstore, Capabilities};
use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, Target, TargetConfig};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_xen::evtchn::InterdomainChannel;
use tgtkit_xen::gntdev::{Gntdev, GntdevGrants};
use tgtkit_xen::xenbus::{Action, Backend, XenbusState};
use tgtkit_xen::xenstore::{WatchEvent, Xenstore, XsError};
use tgtkit_xen_ring::{RingMemory, MAX_RING_PAGES};
use tracing::{error, info, warn};

/// Most queues (rings) one device offers (`multi-queue-max-queues`).
const MAX_QUEUES: u32 = 4;
/// `max-ring-page-order`: rings of up to 16 pages.
const MAX_RING_PAGE_ORDER: u32 = 4;
/// `feature-max-indirect-segments`, as Linux's blkback.
const MAX_INDIRECT_SEGMENTS: u16 = 256;
/// Persistent grants kept mapped per ring (Linux's `max_pgrants`).
const PERSISTENT_GRANTS: usize = 1056;
/// `VDISK_READONLY` in the `info` node.
const VDISK_READONLY: u32 = 4;

#[derive(Parser, Debug)]
#[command(
    about = "Userspace Xen blkback: serves backend/<type>/<domid>/<devid> devices with tgtkit"
)]
struct Args {
    /// Backend type to serve (the directory under `backend/`); repeatable.
    #[arg(long = "backend-type", value_name = "TYPE")]
    backend_types: Vec<String>,
    /// Serve only frontends of this domain; repeatable (default: all).
    #[arg(long = "domid", value_name = "N")]
    domids: Vec<u32>,
}

/// `<type>/<domid>/<devid>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DevKey {
    ty: String,
    dom: u32,
    dev: String,
}

impl std::fmt::Display for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.ty, self.dom, self.dev)
    }
}

enum Msg {
    Watch(WatchEvent),
    RingStopped(DevKey),
    Signal,
}

struct Ring {
    channel: Arc<InterdomainChannel>,
    task: tokio::task::JoinHandle<bool>,
}

struct Device {
    key: DevKey,
    be: String,
    fe: String,
    fe_dom: u32,
    backstore: Arc<dyn Backstore>,
    read_only: bool,
    /// The SCSI pass-through (`feature-extra-request`): one engine logical
    /// unit over the same backstore.
    passthrough: Arc<EnginePassThrough>,
    machine: Backend,
    rings: Vec<Ring>,
}

/// What the `params` node names (libxl qdisk writes `aio:PATH` for
/// `format=raw`, `qcow2:PATH` for `format=qcow2`).
fn parse_params(params: &str, read_only: bool) -> Result<LunSpec, String> {
    let params = params.trim_end_matches('\0').trim();
    let kind = match params.split_once(':') {
        Some(("aio" | "raw" | "file", p)) if !p.is_empty() => LunKind::File(p.into()),
        Some(("qcow2", p)) if !p.is_empty() => LunKind::Qcow2(p.into()),
        Some(("ram", size)) => LunKind::Ram(parse_size(size).map_err(|e| e.to_string())?),
        Some((other, _)) if !other.contains('/') => {
            return Err(format!("unsupported params format {other:?}"))
        }
        _ if !params.is_empty() => LunKind::File(params.into()),
        _ => return Err("empty params".into()),
    };
    Ok(LunSpec {
        kind,
        read_only,
        physical_block_size: None,
    })
}

struct Daemon {
    xs: Arc<Xenstore>,
    base: String,
    types: Vec<String>,
    domids: Vec<u32>,
    gntdev: Option<Arc<Gntdev>>,
    rt: tokio::runtime::Runtime,
    tx: mpsc::Sender<Msg>,
    devices: HashMap<DevKey, Device>,
    /// Devices not (or no longer) served while their directory stays.
    ignored: HashSet<DevKey>,
}

fn read_opt(xs: &Xenstore, path: &str) -> Result<Option<String>, XsError> {
    match xs.read_string(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl Daemon {
    /// Handle one event; `false` once the daemon must stop.
    fn handle(&mut self, msg: Msg) -> bool {
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
    fn shutdown(&mut self) {
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
                for dom in self.xs.directory(&dir).unwrap_or_default() {
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
        for dev in self.xs.directory(&path).unwrap_or_default() {
            self.consider(&DevKey {
                ty: ty.into(),
                dom: domid,
                dev,
            });
        }
    }

    fn be_path(&self, key: &DevKey) -> String {
        format!("{}/backend/{}/{}/{}", self.base, key.ty, key.dom, key.dev)
    }

    /// A device directory changed: start serving it, or notice it is gone.
    fn consider(&mut self, key: &DevKey) {
        let be = self.be_path(key);
        let frontend = match read_opt(&self.xs, &format!("{be}/frontend")) {
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
        if !self.domids.is_empty() && !self.domids.contains(&key.dom) {
            self.ignored.insert(key.clone());
            return;
        }
        match self.open_device(key, &be, fe) {
            Ok(dev) => {
                info!(device = %key, frontend = %dev.fe, "serving");
                let token = format!("fe:{}:{}:{}", key.ty, key.dom, key.dev);
                let fe_state = format!("{}/state", dev.fe);
                self.devices.insert(key.clone(), dev);
                self.run_actions(key);
                if let Err(e) = self.xs.watch(&fe_state, &token) {
                    error!(device = %key, error = %e, "cannot watch the frontend");
                }
            }
            Err(e) => {
                error!(device = %key, error = %e, "not serving this device");
                let _ = self.xs.write(&format!("{be}/hotplug-error"), e.as_bytes());
                self.ignored.insert(key.clone());
            }
        }
    }

    fn open_device(&self, key: &DevKey, be: &str, fe: String) -> Result<Device, String> {
        let rd = |k: &str| read_opt(&self.xs, &format!("{be}/{k}")).map_err(|e| e.to_string());
        let state = rd("state")?.map(|s| XenbusState::parse(s.as_bytes()));
        if matches!(state, Some(XenbusState::CLOSING | XenbusState::CLOSED)) {
            return Err(format!(
                "backend state is {}",
                state.unwrap_or(XenbusState::UNKNOWN)
            ));
        }
        let fe_dom = match rd("frontend-id")? {
            Some(d) => d
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("bad frontend-id {d:?}"))?,
            None => key.dom,
        };
        let params = rd("params")?.ok_or("no params node")?;
        let read_only = rd("mode")?.is_some_and(|m| m.trim() == "r");
        let spec = parse_params(&params, read_only)?;
        let backstore = spec.open(false)?;
        let target = Target::new(TargetConfig::default());
        target
            .add_lun(
                0,
                LuConfig::new(Arc::clone(&backstore)).read_only(read_only),
            )
            .map_err(|e| e.to_string())?;
        let nexus = target.add_nexus(NexusInfo {
            initiator_port: format!("xen-blkfront-{fe_dom}-{}", key.dev),
            target_port: "tgtkit-xen-blkback".into(),
            relative_port: 1,
            transport_id: Vec::new(),
        });
        let lun = Lun::from_index(0).ok_or("no LUN 0")?;
        let passthrough = Arc::new(EnginePassThrough::new(target, nexus, lun));
        Ok(Device {
            passthrough,
            key: key.clone(),
            be: be.to_owned(),
            fe,
            fe_dom,
            backstore,
            read_only,
            machine: Backend::new(),
            rings: Vec::new(),
        })
    }

    fn online_changed(&mut self, key: &DevKey) {
        let be = self.be_path(key);
        let online = read_opt(&self.xs, &format!("{be}/online")).ok().flatten();
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
        match self.xs.read(&format!("{}/state", d.fe)) {
            Ok(v) => d.machine.handle_frontend(XenbusState::parse(&v)),
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
            let be = d.be.clone();
            let result: Result<(), String> = match action {
                Action::Advertise => self.advertise(&be),
                Action::SwitchState(s) => {
                    info!(device = %key, state = %s, "backend state");
                    self.xs
                        .write(&format!("{be}/state"), s.to_value().as_bytes())
                        .map_err(|e| e.to_string())
                }
                Action::Connect => {
                    let r = self.connect(key);
                    if let Err(e) = &r {
                        error!(device = %key, error = %e, "connect failed");
                        let _ = self.xs.write(&format!("{be}/error"), e.as_bytes());
                    }
                    if let Some(d) = self.devices.get_mut(key) {
                        d.machine.handle_connected(r.is_ok());
                    }
                    Ok(())
                }
                Action::Disconnect => {
                    self.disconnect(key);
                    Ok(())
                }
                Action::Remove => {
                    if let Some(d) = self.devices.remove(key) {
                        let token = format!("fe:{}:{}:{}", key.ty, key.dom, key.dev);
                        let _ = self.xs.unwatch(&format!("{}/state", d.fe), &token);
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

    fn advertise(&self, be: &str) -> Result<(), String> {
        self.xs
            .in_transaction(|t| {
                for (k, v) in [
                    (
                        "feature-max-indirect-segments",
                        MAX_INDIRECT_SEGMENTS.to_string(),
                    ),
                    ("multi-queue-max-queues", MAX_QUEUES.to_string()),
                    ("max-ring-page-order", MAX_RING_PAGE_ORDER.to_string()),
                    ("feature-persistent", "1".into()),
                    ("feature-extra-request", "1".into()),
                ] {
                    t.write(&format!("{be}/{k}"), v.as_bytes())?;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    }

    fn connect(&mut self, key: &DevKey) -> Result<(), String> {
        let gntdev = self.gntdev.clone().ok_or("no /dev/xen/gntdev")?;
        let Some(d) = self.devices.get(key) else {
            return Ok(());
        };
        let xs = &self.xs;
        let fe = d.fe.clone();
        let rd = |p: &str| read_opt(xs, p).map_err(|e| e.to_string());
        let num = |p: &str| -> Result<Option<u32>, String> {
            rd(p)?
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("{p}: not a number: {v:?}"))
                })
                .transpose()
        };
        let queues = num(&format!("{fe}/multi-queue-num-queues"))?.unwrap_or(1);
        if queues == 0 || queues > MAX_QUEUES {
            return Err(format!(
                "multi-queue-num-queues {queues} out of 1..={MAX_QUEUES}"
            ));
        }
        let order = num(&format!("{fe}/ring-page-order"))?.unwrap_or(0);
        if order > MAX_RING_PAGE_ORDER {
            return Err(format!("ring-page-order {order} > {MAX_RING_PAGE_ORDER}"));
        }
        let pages = 1usize << order;
        debug_assert!(pages <= MAX_RING_PAGES);
        let abi = Abi::from_protocol(rd(&format!("{fe}/protocol"))?.as_deref().map(str::trim))
            .map_err(|e| e.to_string())?;
        let persistent = rd(&format!("{fe}/feature-persistent"))?.is_some_and(|v| v.trim() == "1");
        let config = BackendConfig {
            abi,
            max_indirect_segments: MAX_INDIRECT_SEGMENTS,
            persistent_grants: if persistent { PERSISTENT_GRANTS } else { 0 },
            read_only: d.read_only,
            // Advertised in InitWait; a frontend opts in per request.
            extra_request: true,
            ..BackendConfig::default()
        };
        let grants = Arc::new(GntdevGrants::new(Arc::clone(&gntdev), d.fe_dom));
        let mut rings = Vec::new();
        for q in 0..queues {
            let dir = if queues == 1 {
                fe.clone()
            } else {
                format!("{fe}/queue-{q}")
            };
            let mut refs = Vec::with_capacity(pages);
            for i in 0..pages {
                let k = if order == 0 {
                    format!("{dir}/ring-ref")
                } else {
                    format!("{dir}/ring-ref{i}")
                };
                let r = match num(&k)? {
                    Some(r) => r,
                    None if order == 0 => {
                        num(&format!("{dir}/ring-ref0"))?.ok_or(format!("no {k}"))?
                    }
                    None => return Err(format!("no {k}")),
                };
                refs.push(r);
            }
            let port =
                num(&format!("{dir}/event-channel"))?.ok_or(format!("no {dir}/event-channel"))?;
            let mapped = gntdev
                .map(d.fe_dom, &refs, true)
                .map_err(|e| format!("ring {refs:?}: {e}"))?;
            let (ptr, len) = (mapped.as_ptr(), mapped.len());
            // SAFETY: `ptr..ptr+len` is the ring mapping owned by `mapped`,
            // kept alive by the RingMemory's owner and only touched through
            // its volatile accessors.
            let mem = unsafe { RingMemory::from_raw(ptr, len, Arc::new(mapped)) }
                .map_err(|e| e.to_string())?;
            let mut backend =
                BlkifBackend::new(mem, config, Arc::clone(&grants), Arc::clone(&d.backstore))
                    .map_err(|e| e.to_string())?
                    .with_passthrough(Arc::clone(&d.passthrough) as _);
            let channel = Arc::new(
                InterdomainChannel::bind(d.fe_dom, port)
                    .map_err(|e| format!("bind port {port}: {e}"))?,
            );
            info!(device = %key, queue = q, ?refs, remote_port = port, local_port = channel.port(), ?abi, persistent, "ring connected");
            let (ch, tx, k) = (Arc::clone(&channel), self.tx.clone(), key.clone());
            let task = self.rt.spawn(async move {
                let ok = backend.run(&*ch).await.is_ok();
                let stats = backend.stats();
                info!(device = %k, ok = stats.ok, failed = stats.failed, "ring stopped");
                let _ = tx.send(Msg::RingStopped(k));
                ok
            });
            rings.push(Ring { channel, task });
        }
        let geo = d.backstore.geometry();
        let caps = d.backstore.capabilities();
        let discard = caps.contains(Capabilities::DISCARD) && !d.read_only;
        let info = if d.read_only || geo.read_only {
            VDISK_READONLY
        } else {
            0
        };
        let be = d.be.clone();
        let keys = [
            ("feature-flush-cache", "1".to_string()),
            ("feature-barrier", "1".into()),
            ("feature-discard", u8::from(discard).to_string()),
            (
                "discard-granularity",
                geo.physical_block_size
                    .max(geo.logical_block_size)
                    .to_string(),
            ),
            ("discard-alignment", "0".into()),
            ("discard-secure", "0".into()),
            ("feature-persistent", u8::from(persistent).to_string()),
            ("sectors", (geo.size / 512).to_string()),
            ("info", info.to_string()),
            ("sector-size", geo.logical_block_size.to_string()),
            (
                "physical-sector-size",
                geo.physical_block_size
                    .max(geo.logical_block_size)
                    .to_string(),
            ),
        ];
        if let Some(d) = self.devices.get_mut(key) {
            d.rings = rings;
        }
        self.xs
            .in_transaction(|t| {
                for (k, v) in &keys {
                    t.write(&format!("{be}/{k}"), v.as_bytes())?;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    }

    /// Stop the rings: each drains its requests in flight, then the
    /// channel is unbound and the ring unmapped.
    fn disconnect(&mut self, key: &DevKey) {
        let Some(d) = self.devices.get_mut(key) else {
            return;
        };
        for r in std::mem::take(&mut d.rings) {
            r.channel.close();
            let _ = self.rt.block_on(r.task);
        }
        info!(device = %d.key, "disconnected");
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xen-blkback: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(mut args: Args) -> Result<(), String> {
    if args.backend_types.is_empty() {
        args.backend_types.push("qdisk".into());
    }
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
    let mut d = Daemon {
        xs: Arc::clone(&xs),
        base,
        types: args.backend_types.clone(),
        domids: args.domids.clone(),
        gntdev,
        rt,
        tx,
        devices: HashMap::new(),
        ignored: HashSet::new(),
    };
    for ty in &d.types {
        let dir = d.backend_dir(ty);
        xs.watch(&dir, &format!("be:{ty}"))
            .map_err(|e| format!("watch {dir}: {e}"))?;
        let line = format!("xen-blkback: watching backend/{ty} ({dir})");
        println!("{line}");
        eprintln!("{line}");
    }
    for msg in rx {
        if !d.handle(msg) {
            break;
        }
    }
    d.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tgtkit_xen::xenstore::fake::FakeXenstored;

    const BE: &str = "/local/domain/0/backend/qdisk/0";
    const FE: &str = "/local/domain/0/device/vbd";

    /// A daemon on the fake xenstored, without gntdev (connects fail).
    fn daemon() -> (FakeXenstored, Daemon, mpsc::Receiver<WatchEvent>) {
        let (fake, xs, events) = FakeXenstored::start();
        let (tx, _rx) = mpsc::channel();
        let d = Daemon {
            xs: Arc::new(xs),
            base: "/local/domain/0".into(),
            types: vec!["qdisk".into()],
            domids: Vec::new(),
            gntdev: None,
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            tx,
            devices: HashMap::new(),
            ignored: HashSet::new(),
        };
        d.xs.watch(&d.backend_dir("qdisk"), "be:qdisk").unwrap();
        (fake, d, events)
    }

    fn pump(d: &mut Daemon, events: &mpsc::Receiver<WatchEvent>) {
        while let Ok(ev) = events.recv_timeout(Duration::from_millis(100)) {
            assert!(d.handle(Msg::Watch(ev)));
        }
    }

    fn add_disk(fake: &FakeXenstored, dev: &str, params: &str) {
        let (be, fe) = (format!("{BE}/{dev}"), format!("{FE}/{dev}"));
        fake.write(&format!("{fe}/state"), "1");
        fake.write(&format!("{fe}/backend"), &be);
        for (k, v) in [
            ("frontend-id", "0"),
            ("params", params),
            ("mode", "w"),
            ("online", "1"),
            ("state", "1"),
        ] {
            fake.write(&format!("{be}/{k}"), v);
        }
        fake.write(&format!("{be}/frontend"), &fe);
    }

    #[test]
    fn advertises_then_a_bad_disk_does_not_stop_a_good_one() {
        let (fake, mut d, events) = daemon();
        add_disk(&fake, "51712", "ram:1M");
        add_disk(&fake, "51728", "vhd:/nope.vhd");
        pump(&mut d, &events);
        let be = format!("{BE}/51712");
        assert_eq!(fake.read(&format!("{be}/state")).as_deref(), Some("2"));
        for k in [
            "feature-max-indirect-segments",
            "multi-queue-max-queues",
            "max-ring-page-order",
            "feature-persistent",
            "feature-extra-request",
        ] {
            assert!(fake.read(&format!("{be}/{k}")).is_some(), "{k}");
        }
        // The unsupported format is refused and reported, and left alone.
        assert!(fake
            .read(&format!("{BE}/51728/hotplug-error"))
            .unwrap()
            .contains("vhd"));
        assert_eq!(
            fake.read(&format!("{BE}/51728/state")).as_deref(),
            Some("1")
        );
        assert_eq!(d.devices.len(), 1);

        // Without gntdev the ring cannot be mapped: Closing, error node.
        fake.write(&format!("{FE}/51712/ring-ref"), "8");
        fake.write(&format!("{FE}/51712/event-channel"), "16");
        fake.write(&format!("{FE}/51712/state"), "3");
        pump(&mut d, &events);
        assert_eq!(fake.read(&format!("{be}/state")).as_deref(), Some("5"));
        assert!(fake.read(&format!("{be}/error")).is_some());

        // The frontend closes, then its directory goes: Closed, removed.
        fake.write(&format!("{FE}/51712/state"), "6");
        pump(&mut d, &events);
        assert_eq!(fake.read(&format!("{be}/state")).as_deref(), Some("6"));
        assert_eq!(d.devices.len(), 1);
        fake.rm(&format!("{FE}/51712"));
        pump(&mut d, &events);
        assert!(d.devices.is_empty());
    }

    #[test]
    fn detach_offline_then_removed_and_shutdown_closes_the_rest() {
        let (fake, mut d, events) = daemon();
        add_disk(&fake, "51712", "ram:1M");
        add_disk(&fake, "51728", "ram:2M");
        pump(&mut d, &events);
        assert_eq!(d.devices.len(), 2);
        // libxl's detach: online=0, backend state=5; the frontend closes.
        fake.write(&format!("{BE}/51712/online"), "0");
        fake.write(&format!("{BE}/51712/state"), "5");
        fake.write(&format!("{FE}/51712/state"), "5");
        fake.write(&format!("{FE}/51712/state"), "6");
        pump(&mut d, &events);
        assert_eq!(
            fake.read(&format!("{BE}/51712/state")).as_deref(),
            Some("6")
        );
        assert_eq!(d.devices.len(), 1);
        // The toolstack removes the directories: nothing is re-created.
        fake.rm(&format!("{BE}/51712"));
        fake.rm(&format!("{FE}/51712"));
        pump(&mut d, &events);
        assert_eq!(d.devices.len(), 1);
        assert!(!d.handle(Msg::Signal));
        d.shutdown();
        assert_eq!(
            fake.read(&format!("{BE}/51728/state")).as_deref(),
            Some("6")
        );
        assert!(d.devices.is_empty());
    }

    #[test]
    fn domid_filter_skips_other_domains() {
        let (fake, mut d, events) = daemon();
        d.domids = vec![7];
        add_disk(&fake, "51712", "ram:1M");
        pump(&mut d, &events);
        assert!(d.devices.is_empty());
        assert_eq!(
            fake.read(&format!("{BE}/51712/state")).as_deref(),
            Some("1")
        );
    }

    #[test]
    fn params_formats() {
        let k = |p: &str| parse_params(p, false).map(|s| s.kind);
        assert_eq!(k("aio:/tmp/d.img"), Ok(LunKind::File("/tmp/d.img".into())));
        assert_eq!(k("raw:/tmp/d.img"), Ok(LunKind::File("/tmp/d.img".into())));
        assert_eq!(k("/dev/loop0"), Ok(LunKind::File("/dev/loop0".into())));
        assert_eq!(k("qcow2:/i.qcow2"), Ok(LunKind::Qcow2("/i.qcow2".into())));
        assert_eq!(k("ram:64M"), Ok(LunKind::Ram(64 << 20)));
        assert!(k("vhd:/x.vhd").is_err());
        assert!(k("").is_err());
        assert!(k("ram:zero").is_err());
        assert!(parse_params("aio:/a", true).unwrap().read_only);
    }
}
