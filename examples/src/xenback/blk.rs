//! The blkif kind: one disk per device directory, served as Linux's
//! xen-blkback negotiates it (multi-page rings, multi-queue, indirect
//! descriptors, persistent grants, flush, barrier, discard, the extra SCSI
//! request through the engine), on the raw file, qcow2 or ram backstore
//! named by the `params` node.

use std::sync::Arc;

use tgtkit_blkif::engine::EnginePassThrough;
use tgtkit_blkif::{Abi, BackendConfig, BlkifBackend};
use tgtkit_scsi_core::backstore::{Backstore, Capabilities};
use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, Target, TargetConfig};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_xen::gntdev::GntdevGrants;
use tgtkit_xen_ring::MAX_RING_PAGES;
use tracing::info;

use super::{Ctx, DevKey, Kind, Paths, Ring};
use crate::lunspec::{parse_size, LunKind, LunSpec};

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

/// The blkif kind. Files are read and written on the backstores' thread
/// pool: with io_uring, I/O into grant mappings failed (EIO) under a PV
/// dom0 in the Xen VM test.
#[derive(Debug, Default)]
pub struct Blkif;

/// One disk.
pub struct Disk {
    backstore: Arc<dyn Backstore>,
    read_only: bool,
    /// The SCSI pass-through (`feature-extra-request`): one engine logical
    /// unit over the same backstore.
    passthrough: Arc<EnginePassThrough>,
}

/// What the `params` node names (libxl qdisk writes `aio:PATH` for
/// `format=raw`, `qcow2:PATH` for `format=qcow2`).
///
/// # Errors
///
/// An empty or unsupported `params`.
pub fn parse_params(params: &str, read_only: bool) -> Result<LunSpec, String> {
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
        ..LunSpec::ram(0)
    })
}

impl Kind for Blkif {
    type Device = Disk;
    const NAME: &'static str = "xen-blkback";

    fn open(&mut self, ctx: &Ctx, key: &DevKey, paths: &Paths) -> Result<Disk, String> {
        let be = &paths.be;
        let params = ctx.read(&format!("{be}/params"))?.ok_or("no params node")?;
        let read_only = ctx
            .read(&format!("{be}/mode"))?
            .is_some_and(|m| m.trim() == "r");
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
            initiator_port: format!("xen-blkfront-{}-{}", paths.fe_dom, key.dev),
            target_port: "tgtkit-xen-blkback".into(),
            relative_port: 1,
            transport_id: Vec::new(),
        });
        let lun = Lun::from_index(0).ok_or("no LUN 0")?;
        Ok(Disk {
            passthrough: Arc::new(EnginePassThrough::new(target, nexus, lun)),
            backstore,
            read_only,
        })
    }

    fn advertise(&self, ctx: &Ctx, _disk: &Disk, paths: &Paths) -> Result<(), String> {
        ctx.write_all(
            &paths.be,
            &[
                (
                    "feature-max-indirect-segments",
                    MAX_INDIRECT_SEGMENTS.to_string(),
                ),
                ("multi-queue-max-queues", MAX_QUEUES.to_string()),
                ("max-ring-page-order", MAX_RING_PAGE_ORDER.to_string()),
                ("feature-persistent", "1".into()),
                ("feature-extra-request", "1".into()),
            ],
        )
    }

    fn connect(
        &mut self,
        ctx: &Ctx,
        key: &DevKey,
        d: &mut Disk,
        paths: &Paths,
    ) -> Result<Vec<Ring>, String> {
        let gntdev = ctx.gntdev.clone().ok_or("no /dev/xen/gntdev")?;
        let fe = &paths.fe;
        let queues = ctx
            .num(&format!("{fe}/multi-queue-num-queues"))?
            .unwrap_or(1);
        if queues == 0 || queues > MAX_QUEUES {
            return Err(format!(
                "multi-queue-num-queues {queues} out of 1..={MAX_QUEUES}"
            ));
        }
        let order = ctx.num(&format!("{fe}/ring-page-order"))?.unwrap_or(0);
        if order > MAX_RING_PAGE_ORDER {
            return Err(format!("ring-page-order {order} > {MAX_RING_PAGE_ORDER}"));
        }
        let pages = 1usize << order;
        debug_assert!(pages <= MAX_RING_PAGES);
        let abi = Abi::from_protocol(
            ctx.read(&format!("{fe}/protocol"))?
                .as_deref()
                .map(str::trim),
        )
        .map_err(|e| e.to_string())?;
        let persistent = ctx
            .read(&format!("{fe}/feature-persistent"))?
            .is_some_and(|v| v.trim() == "1");
        let config = BackendConfig {
            abi,
            max_indirect_segments: MAX_INDIRECT_SEGMENTS,
            persistent_grants: if persistent { PERSISTENT_GRANTS } else { 0 },
            read_only: d.read_only,
            // Advertised in InitWait; a frontend opts in per request.
            extra_request: true,
            ..BackendConfig::default()
        };
        let grants = Arc::new(GntdevGrants::new(gntdev, paths.fe_dom));
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
                let r = match ctx.num(&k)? {
                    Some(r) => r,
                    None if order == 0 => ctx
                        .num(&format!("{dir}/ring-ref0"))?
                        .ok_or(format!("no {k}"))?,
                    None => return Err(format!("no {k}")),
                };
                refs.push(r);
            }
            let port = ctx
                .num(&format!("{dir}/event-channel"))?
                .ok_or(format!("no {dir}/event-channel"))?;
            let mem = ctx.map_ring(paths.fe_dom, &refs)?;
            let mut backend =
                BlkifBackend::new(mem, config, Arc::clone(&grants), Arc::clone(&d.backstore))
                    .map_err(|e| e.to_string())?
                    .with_passthrough(Arc::clone(&d.passthrough) as _);
            let channel = ctx.bind(paths.fe_dom, port)?;
            info!(device = %key, queue = q, ?refs, remote_port = port, local_port = channel.port(), ?abi, persistent, "ring connected");
            let (ch, k) = (Arc::clone(&channel), key.clone());
            rings.push(ctx.spawn_ring(key, channel, async move {
                let ok = backend.run(&*ch).await.is_ok();
                let stats = backend.stats();
                info!(device = %k, ok = stats.ok, failed = stats.failed, "ring stopped");
                ok
            }));
        }
        let geo = d.backstore.geometry();
        let caps = d.backstore.capabilities();
        let discard = caps.contains(Capabilities::DISCARD) && !d.read_only;
        let info = if d.read_only || geo.read_only {
            VDISK_READONLY
        } else {
            0
        };
        let physical = geo.physical_block_size.max(geo.logical_block_size);
        let written = ctx.write_all(
            &paths.be,
            &[
                ("feature-flush-cache", "1".to_string()),
                ("feature-barrier", "1".into()),
                ("feature-discard", u8::from(discard).to_string()),
                ("discard-granularity", physical.to_string()),
                ("discard-alignment", "0".into()),
                ("discard-secure", "0".into()),
                ("feature-persistent", u8::from(persistent).to_string()),
                ("sectors", (geo.size / 512).to_string()),
                ("info", info.to_string()),
                ("sector-size", geo.logical_block_size.to_string()),
                ("physical-sector-size", physical.to_string()),
            ],
        );
        if let Err(e) = written {
            for r in rings {
                r.channel.close();
            }
            return Err(e);
        }
        Ok(rings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenback::testing::{daemon, Harness};
    use crate::xenback::Msg;

    const BE: &str = "/local/domain/0/backend/qdisk/0";
    const FE: &str = "/local/domain/0/device/vbd";

    fn add_disk(h: &Harness<Blkif>, dev: &str, params: &str) {
        let (be, fe) = (format!("{BE}/{dev}"), format!("{FE}/{dev}"));
        h.fake.write(&format!("{fe}/state"), "1");
        h.fake.write(&format!("{fe}/backend"), &be);
        for (k, v) in [
            ("frontend-id", "0"),
            ("params", params),
            ("mode", "w"),
            ("online", "1"),
            ("state", "1"),
        ] {
            h.fake.write(&format!("{be}/{k}"), v);
        }
        h.fake.write(&format!("{be}/frontend"), &fe);
    }

    #[test]
    fn advertises_then_a_bad_disk_does_not_stop_a_good_one() {
        let mut h = daemon(Blkif, "qdisk", Vec::new());
        add_disk(&h, "51712", "ram:1M");
        add_disk(&h, "51728", "vhd:/nope.vhd");
        h.pump();
        let be = format!("{BE}/51712");
        assert_eq!(h.fake.read(&format!("{be}/state")).as_deref(), Some("2"));
        for k in [
            "feature-max-indirect-segments",
            "multi-queue-max-queues",
            "max-ring-page-order",
            "feature-persistent",
            "feature-extra-request",
        ] {
            assert!(h.fake.read(&format!("{be}/{k}")).is_some(), "{k}");
        }
        // The unsupported format is refused and reported, and left alone.
        assert!(h
            .fake
            .read(&format!("{BE}/51728/hotplug-error"))
            .unwrap()
            .contains("vhd"));
        assert_eq!(
            h.fake.read(&format!("{BE}/51728/state")).as_deref(),
            Some("1")
        );
        assert_eq!(h.d.len(), 1);

        // Without gntdev the ring cannot be mapped: Closing, error node.
        h.fake.write(&format!("{FE}/51712/ring-ref"), "8");
        h.fake.write(&format!("{FE}/51712/event-channel"), "16");
        h.fake.write(&format!("{FE}/51712/state"), "3");
        h.pump();
        assert_eq!(h.fake.read(&format!("{be}/state")).as_deref(), Some("5"));
        assert!(h.fake.read(&format!("{be}/error")).is_some());

        // The frontend closes, then its directory goes: Closed, removed.
        h.fake.write(&format!("{FE}/51712/state"), "6");
        h.pump();
        assert_eq!(h.fake.read(&format!("{be}/state")).as_deref(), Some("6"));
        assert_eq!(h.d.len(), 1);
        h.fake.rm(&format!("{FE}/51712"));
        h.pump();
        assert!(h.d.is_empty());
    }

    #[test]
    fn detach_offline_then_removed_and_shutdown_closes_the_rest() {
        let mut h = daemon(Blkif, "qdisk", Vec::new());
        add_disk(&h, "51712", "ram:1M");
        add_disk(&h, "51728", "ram:2M");
        h.pump();
        assert_eq!(h.d.len(), 2);
        // libxl's detach: online=0, backend state=5; the frontend closes.
        h.fake.write(&format!("{BE}/51712/online"), "0");
        h.fake.write(&format!("{BE}/51712/state"), "5");
        h.fake.write(&format!("{FE}/51712/state"), "5");
        h.fake.write(&format!("{FE}/51712/state"), "6");
        h.pump();
        assert_eq!(
            h.fake.read(&format!("{BE}/51712/state")).as_deref(),
            Some("6")
        );
        assert_eq!(h.d.len(), 1);
        // The toolstack removes the directories: nothing is re-created.
        h.fake.rm(&format!("{BE}/51712"));
        h.fake.rm(&format!("{FE}/51712"));
        h.pump();
        assert_eq!(h.d.len(), 1);
        assert!(!h.d.handle(Msg::Signal));
        h.d.shutdown();
        assert_eq!(
            h.fake.read(&format!("{BE}/51728/state")).as_deref(),
            Some("6")
        );
        assert!(h.d.is_empty());
    }

    #[test]
    fn domid_filter_skips_other_domains() {
        let mut h = daemon(Blkif, "qdisk", vec![7]);
        add_disk(&h, "51712", "ram:1M");
        h.pump();
        assert!(h.d.is_empty());
        assert_eq!(
            h.fake.read(&format!("{BE}/51712/state")).as_deref(),
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
