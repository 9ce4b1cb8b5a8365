//! `iscsi-target`: serve tgtkit logical units over iSCSI.
//!
//! With no arguments it serves a 1 GiB sparse ram disk as LUN 0 of
//! `iqn.2026-11.dev.tgtkit:disk0` on 127.0.0.1:3260 and prints the URL to
//! connect to. Logs go through `tracing`; quiet by default, `RUST_LOG=info`
//! (or `debug`) for more.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::compat::TokioAsyncReadCompatExt;

use tgtkit_examples::lunspec::{Credentials, LunSpec};
use tgtkit_iscsi::chap::ChapCredentials;
use tgtkit_iscsi::{
    Acl, AuthConfig, IscsiServer, Portal, PortalConfig, PortalGroup, Sleeper, TargetNode,
};
use tgtkit_scsi_core::alua::{AccessState, AluaPolicy};
use tgtkit_scsi_core::backstore::Backstore;
use tgtkit_scsi_core::engine::{Target, TargetConfig};
use tgtkit_scsi_core::pr::FilePrStore;

/// The IQN served when `--iqn` is not given.
const DEFAULT_IQN: &str = "iqn.2026-11.dev.tgtkit:disk0";

/// Serve tgtkit logical units over iSCSI (RFC 7143).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on, ADDR:PORT (repeatable).
    #[arg(long = "portal", value_name = "ADDR:PORT")]
    portals: Vec<String>,
    /// Target name.
    #[arg(long, default_value = DEFAULT_IQN)]
    iqn: String,
    /// A logical unit, in LUN order from 0: ram:SIZE, file:PATH or
    /// qcow2:PATH, with ",ro" for read-only, ",removable" for a removable
    /// medium, ",pbs=BYTES" for the physical block size (repeatable).
    /// Default: ram:1G.
    #[arg(long = "lun", value_name = "SPEC")]
    luns: Vec<LunSpec>,
    /// Require one-way CHAP with these credentials.
    #[arg(long, value_name = "USER:SECRET")]
    chap: Option<Credentials>,
    /// Answer the initiator's CHAP challenge with these credentials (mutual CHAP).
    #[arg(long, value_name = "USER:SECRET", requires = "chap")]
    mutual_chap: Option<Credentials>,
    /// Allow only this initiator name (repeatable; default: everyone).
    #[arg(long = "allow", value_name = "IQN")]
    allow: Vec<String>,
    /// File I/O engine: "io-uring" (falls back to the thread pool where the
    /// kernel has no io_uring) or "threads" (a blocking thread pool).
    #[arg(long, default_value = "io-uring", value_parser = ["threads", "io-uring"])]
    io_engine: String,
    /// Runtime worker threads (0: one per CPU; 1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    worker_threads: usize,
    /// Commands a session may have in flight.
    #[arg(long, default_value_t = 128)]
    queue_depth: u32,
    /// A portal in a portal group of its own, ADDR:PORT=STATE with STATE
    /// one of active, nonoptimized, standby, unavailable (repeatable): each
    /// is target portal group 2, 3, ... and the ALUA target port group of
    /// the same ID, in that access state (the --portal addresses are group
    /// 1, active/optimized).
    #[arg(long = "alua-portal", value_name = "ADDR:PORT=STATE")]
    alua_portals: Vec<String>,
    /// Let initiators change the groups' access states with SET TARGET
    /// PORT GROUPS (explicit ALUA; every request is granted).
    #[arg(long)]
    alua_explicit: bool,
    /// Keep persistent reservations set with APTPL in this directory, one
    /// file per LUN (`<iqn>-lun<N>.pr`), restored at the next start.
    /// Without it, APTPL is refused.
    #[arg(long, value_name = "DIR")]
    pr_dir: Option<std::path::PathBuf>,
}

struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(
        &self,
        d: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

fn main() -> std::process::ExitCode {
    tgtkit_examples::logging::init("warn");
    let args = Args::parse();
    let rt = if args.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if args.worker_threads > 1 {
            b.worker_threads(args.worker_threads);
        }
        b.enable_all().build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("iscsi-target: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iscsi-target: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<(), String> {
    let mut signals = Signals::install();
    if args.portals.is_empty() {
        args.portals.push("127.0.0.1:3260".into());
    }
    if args.luns.is_empty() {
        args.luns.push(LunSpec::ram(1 << 30));
    }
    let target = Target::new(TargetConfig {
        name: args.iqn.clone(),
        ..TargetConfig::default()
    });
    if let Some(dir) = &args.pr_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut backstores: Vec<Arc<dyn Backstore>> = Vec::new();
    for (i, spec) in args.luns.iter().enumerate() {
        let b = spec.open(args.io_engine == "io-uring")?;
        let index = u16::try_from(i).map_err(|_| "too many LUNs".to_string())?;
        let mut lu = spec.lu_config(Arc::clone(&b));
        if let Some(dir) = &args.pr_dir {
            let file = dir.join(format!("{}-lun{i}.pr", args.iqn));
            lu = lu.persist_reservations(Arc::new(FilePrStore::new(file)));
        }
        target
            .add_lun(index, lu)
            .map_err(|e| format!("LUN {i} ({spec}): {e}"))?;
        backstores.push(b);
    }
    let creds = |c: &Credentials| ChapCredentials::new(c.user.clone(), c.secret.as_bytes());
    let mut node = TargetNode::new(args.iqn.clone());
    node.alias = Some("tgtkit".into());
    node.auth = AuthConfig {
        chap: args.chap.as_ref().map(creds),
        mutual_chap: args.mutual_chap.as_ref().map(creds),
    };
    node.acl = Acl {
        allowed_initiators: args.allow.clone(),
        ..Acl::default()
    };
    // Portal group 1: --portal; then one group per --alua-portal.
    let mut groups: Vec<(u16, Vec<String>)> = vec![(1, args.portals.clone())];
    for (i, spec) in args.alua_portals.iter().enumerate() {
        let (addr, state) = spec
            .rsplit_once('=')
            .ok_or_else(|| format!("--alua-portal {spec}: expected ADDR:PORT=STATE"))?;
        let state = match state {
            "active" => AccessState::ActiveOptimized,
            "nonoptimized" => AccessState::ActiveNonOptimized,
            "standby" => AccessState::Standby,
            "unavailable" => AccessState::Unavailable,
            _ => return Err(format!("--alua-portal {spec}: unknown state {state:?}")),
        };
        let tpgt = u16::try_from(i + 2).map_err(|_| "too many portal groups".to_string())?;
        target
            .add_port_group(tpgt, &[tpgt], state)
            .map_err(|e| e.to_string())?;
        groups.push((tpgt, vec![addr.to_string()]));
    }
    if args.alua_explicit {
        target.set_alua_policy(Arc::new(GrantAll));
    }
    // Listen on every portal first: each group's SendTargets answer lists
    // the others' addresses too.
    let mut bound = Vec::new();
    for (tpgt, portals) in groups {
        let mut listeners = Vec::new();
        let mut addresses = Vec::new();
        for p in &portals {
            let l = TcpListener::bind(p)
                .await
                .map_err(|e| format!("cannot listen on {p}: {e}"))?;
            let local = l.local_addr().map_err(|e| e.to_string())?;
            addresses.push(local.to_string());
            listeners.push(l);
        }
        bound.push((tpgt, addresses, listeners));
    }
    let all: Vec<Portal> = bound
        .iter()
        .flat_map(|(tpgt, addresses, _)| {
            addresses.iter().map(|a| Portal {
                tpgt: *tpgt,
                address: a.clone(),
            })
        })
        .collect();
    let mut servers = Vec::new();
    for (tpgt, addresses, listeners) in bound {
        let mut group = PortalGroup {
            tpgt,
            addresses: addresses.clone(),
            ..PortalGroup::default()
        };
        group.limits.queue_depth = args.queue_depth.max(1);
        let server = IscsiServer::new(
            PortalConfig {
                group,
                nodes: vec![node.clone()],
                other_portals: all.iter().filter(|p| p.tpgt != tpgt).cloned().collect(),
            },
            vec![Arc::clone(&target)],
            Some(Arc::new(TokioSleeper)),
        )
        .map_err(|e| e.to_string())?;
        for a in &addresses {
            for i in 0..args.luns.len() {
                println!("iscsi://{a}/{}/{i}", args.iqn);
            }
        }
        for l in listeners {
            accept(l, Arc::clone(&server));
        }
        servers.push(server);
    }

    signals.wait().await;
    tracing::info!("shutting down");
    for server in &servers {
        server.shutdown();
    }
    for _ in 0..100 {
        if servers.iter().all(|s| s.connection_count() == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, b) in backstores.iter().enumerate() {
        if let Err(e) = b.flush().await {
            eprintln!("iscsi-target: flushing LUN {i}: {e}");
        }
    }
    Ok(())
}

/// The explicit-ALUA policy of `--alua-explicit`: every request granted.
struct GrantAll;

impl AluaPolicy for GrantAll {
    fn allow(&self, group: u16, state: AccessState) -> bool {
        tracing::info!(group, ?state, "SET TARGET PORT GROUPS");
        true
    }
}

/// Accept connections on `l` for `server`, each on a task of its own.
fn accept(l: TcpListener, server: Arc<IscsiServer>) {
    tokio::spawn(async move {
        loop {
            let (sock, peer) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                tracing::info!(%peer, "connection");
                if let Err(e) = server.serve_connection(sock.compat()).await {
                    tracing::info!(%peer, "connection ended: {e}");
                }
            });
        }
    });
}

/// SIGINT and SIGTERM, registered before anything else starts so an early
/// signal still shuts down cleanly.
struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn wait(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.int) => {}
            () = recv(&mut self.term) => {}
        }
    }
}
