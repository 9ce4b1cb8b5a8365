//! tcmu-handler: serve LIO user-backstore (TCMU) devices with the tgtkit engine.
//!
//! Serves every `core/user_N/<dev>` device whose `dev_config` names a known
//! handler (`file/<path>`, `ram/<size>`, `qcow/<path>`): the ones that exist at start-up
//! (found in /sys/class/uio) and the ones the kernel announces later on the
//! TCM-USER generic netlink family, answering each event with its `_DONE`
//! reply. Size and write-cache changes are applied on the fly; a new
//! `dev_config` re-opens the device. SIGINT or SIGTERM stop it cleanly:
//! running commands are answered, then reply support is withdrawn.
//!
//! ```text
//! tcmu-handler [--no-netlink] [--pr-dir DIR]
//! RUST_LOG=tgtkit_tcmu=debug tcmu-handler
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use tgtkit_scsi_core::engine::TargetConfig;
use tgtkit_tcmu::device::{Device, DeviceError, Paths, Stats, Stopper};
use tgtkit_tcmu::handler::{self, HandlerError, Handlers, SizedBackstore};
use tgtkit_tcmu::netlink::{Event, Netlink, Reconfig};
use tgtkit_tcmu::uio::{self, UioInfo};
use tokio::sync::mpsc;

struct Running {
    info: UioInfo,
    backstore: Arc<SizedBackstore>,
    stats: Arc<Stats>,
    stopper: Stopper,
    thread: std::thread::JoinHandle<Result<(), DeviceError>>,
}

struct Handler {
    handlers: Handlers,
    paths: Paths,
    config: TargetConfig,
    devices: HashMap<String, Running>,
}

impl Handler {
    fn key(info: &UioInfo) -> String {
        format!("{}/{}", info.name.hba, info.name.dev)
    }

    fn start(&mut self, info: UioInfo) -> Result<(), HandlerError> {
        let key = Self::key(&info);
        if self.devices.contains_key(&key) {
            tracing::debug!(%key, "already serving");
            return Ok(());
        }
        let device = match Device::open(info.clone(), &self.handlers, &self.paths, &self.config) {
            Ok(d) => d,
            Err(tgtkit_tcmu::device::DeviceError::Handler(e)) => return Err(e),
            Err(e) => return Err(HandlerError::Open(Box::new(e))),
        };
        let backstore = Arc::clone(device.backstore());
        let stats = device.stats();
        // One thread per device, asleep in poll(2) on its UIO fd: a kernel
        // signal reaches the ring without a hop through the async runtime.
        let stopper = Stopper::new().map_err(|e| HandlerError::Open(Box::new(e)))?;
        let thread = device
            .spawn(stopper.clone())
            .map_err(|e| HandlerError::Open(Box::new(e)))?;
        self.devices.insert(
            key,
            Running {
                info,
                backstore,
                stats,
                stopper,
                thread,
            },
        );
        Ok(())
    }

    async fn stop(&mut self, key: &str) -> Option<UioInfo> {
        let running = self.devices.remove(key)?;
        running.stopper.stop();
        let thread = running.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(Ok(()))) => tracing::info!(dev = %key, "device stopped"),
            Ok(Ok(Err(e))) => tracing::error!(dev = %key, %e, "device failed"),
            _ => tracing::error!(dev = %key, "device thread panicked"),
        }
        let s = &running.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            dev = %key,
            commands = load(&s.commands),
            malformed = load(&s.malformed),
            tmrs = load(&s.tmrs),
            kicks = load(&s.kicks),
            "device released"
        );
        Some(running.info)
    }

    /// Apply one netlink event; the status goes into the `_DONE` reply.
    async fn event(&mut self, event: &Event) -> i32 {
        let dev = event.device();
        let Some(name) = uio::UioName::parse(&dev.name) else {
            tracing::warn!(name = %dev.name, "event for a device that is not TCMU's");
            return -libc_einval();
        };
        let key = format!("{}/{}", name.hba, name.dev);
        match event {
            Event::Added(_) => match uio::info(&self.paths.sysfs_uio, dev.minor) {
                Ok(info) => match self.start(info) {
                    Ok(()) => 0,
                    Err(e) => {
                        tracing::error!(dev = %key, %e, "refusing device");
                        e.errno()
                    }
                },
                Err(e) => {
                    tracing::error!(dev = %key, %e, "new device not found in sysfs");
                    -libc_einval()
                }
            },
            Event::Removed(_) => {
                self.stop(&key).await;
                0
            }
            Event::Reconfig(_, change) => self.reconfig(&key, change).await,
        }
    }

    async fn reconfig(&mut self, key: &str, change: &Reconfig) -> i32 {
        let Some(running) = self.devices.get(key) else {
            tracing::warn!(dev = %key, ?change, "reconfiguration of a device not served");
            return -libc_einval();
        };
        match change {
            Reconfig::Size(size) => match running.backstore.set_size(*size) {
                Ok(()) => {
                    tracing::info!(dev = %key, size, "device size changed");
                    0
                }
                Err(e) => {
                    tracing::error!(dev = %key, %e, "cannot resize");
                    e.errno()
                }
            },
            Reconfig::WriteCache(on) => match running.backstore.apply_write_cache(*on) {
                Ok(()) => {
                    tracing::info!(dev = %key, write_cache = on, "write cache changed");
                    0
                }
                Err(e) => {
                    tracing::error!(dev = %key, %e, "cannot change the write cache");
                    -libc_einval()
                }
            },
            Reconfig::DevConfig(cfg) => {
                let Some(mut info) = self.stop(key).await else {
                    return -libc_einval();
                };
                let old = info.clone();
                info.name.cfgstring = cfg.clone();
                info.raw_name = format!("tcm-user/{}/{}/{}", info.name.hba, info.name.dev, cfg);
                match self.start(info) {
                    Ok(()) => {
                        tracing::info!(dev = %key, cfg = %cfg, "device re-opened with a new dev_config");
                        0
                    }
                    Err(e) => {
                        tracing::error!(dev = %key, %e, "new dev_config refused; keeping the old one");
                        let _ = self.start(old);
                        e.errno()
                    }
                }
            }
        }
    }
}

/// EINVAL, for `_DONE` replies (negative errno).
fn libc_einval() -> i32 {
    22
}

/// Serve LIO user-backstore (TCMU) devices with the tgtkit engine.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Serve only the devices that exist at start-up: do not join the
    /// TCM-USER netlink family.
    #[arg(long)]
    no_netlink: bool,
    /// Keep persistent reservations set with APTPL in this directory (one
    /// file per device), restored when a device is served again. Without
    /// it, APTPL is refused. The kernel passes reservations to the handler
    /// only for devices with `attrib/pgr_support` set to 0.
    #[arg(long, value_name = "DIR")]
    pr_dir: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    tgtkit_examples::logging::init("info");
    let args = Args::parse();
    let use_netlink = !args.no_netlink;
    let mut handlers = handler::standard();
    if let Some(dir) = &args.pr_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("tcmu-handler: cannot create {}: {e}", dir.display());
            return std::process::ExitCode::FAILURE;
        }
        handlers.persist_reservations_in(dir);
    }

    let mut handler = Handler {
        handlers,
        paths: Paths::default(),
        config: TargetConfig::default(),
        devices: HashMap::new(),
    };

    // Netlink first, so no device added between discovery and joining the
    // group is missed (a device found twice is served once).
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut netlink: Option<Arc<Netlink>> = None;
    if use_netlink {
        match Netlink::connect(true) {
            Ok((nl, incoming)) => {
                netlink = Some(Arc::new(nl));
                let (std_rx, _thread) = incoming.into_channel();
                std::thread::spawn(move || {
                    while let Ok(ev) = std_rx.recv() {
                        match ev {
                            Ok(ev) => {
                                if events_tx.send(ev).is_err() {
                                    break;
                                }
                            }
                            Err(e) => tracing::warn!(%e, "ignoring a malformed netlink event"),
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(%e, "no netlink: serving the devices present at start-up only");
            }
        }
    }
    match uio::discover(&handler.paths.sysfs_uio) {
        Ok(found) => {
            for info in found {
                let key = Handler::key(&info);
                if let Err(e) = handler.start(info) {
                    tracing::error!(dev = %key, %e, "refusing device");
                }
            }
        }
        Err(e) => tracing::error!(%e, "cannot list /sys/class/uio"),
    }
    tracing::info!(devices = handler.devices.len(), "tcmu-handler running");

    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%e, "cannot catch SIGTERM");
            return std::process::ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            Some(ev) = events.recv() => {
                tracing::info!(?ev, "netlink event");
                let status = handler.event(&ev).await;
                if let Some(nl) = &netlink {
                    if let Err(e) = nl.reply(&ev, status) {
                        tracing::error!(%e, "netlink reply failed");
                    }
                }
            }
        }
    }
    tracing::info!("shutting down");
    let keys: Vec<String> = handler.devices.keys().cloned().collect();
    for key in keys {
        handler.stop(&key).await;
    }
    if let Some(nl) = &netlink {
        if let Err(e) = nl.set_features(false) {
            tracing::warn!(%e, "could not withdraw netlink reply support");
        }
    }
    std::process::ExitCode::SUCCESS
}
