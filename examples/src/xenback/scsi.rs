//! The vscsiif kind: one vhost per device directory
//! (`backend/vscsi/<domid>/<devid>`), its LUNs listed under `vscsi-devs`.
//!
//! Each `vscsi-devs/dev-N` names a physical device `p-dev` and the address
//! the frontend sees, `v-dev` = "host:channel:target:lun". Linux's
//! scsiback takes p-dev as `<LIO target port>:<LUN>`; here p-dev is a
//! tgtkit LUN spec (`file:PATH`, `qcow2:PATH`, `ram:SIZE`, with `,ro`).
//! Every vhost of the daemon is an I_T nexus on one engine target, and one
//! p-dev is one logical unit however many vhosts name it: two frontends
//! naming the same p-dev share its persistent reservations, as two
//! initiators of one SAN LUN do. The host number of a v-dev is ignored, as
//! Linux's scsiback ignores it (requests carry no host).
//!
//! The dev-N states follow Linux's scsiback: at connect and on each
//! hot-plug round (the frontend in `Reconfiguring`) an entry in
//! `Initialising` is added and goes `Initialised` (or `Closed` if it cannot
//! be), one in `Closing` is removed and goes `Closed`; when the frontend is
//! `Connected` again, `Initialised` entries go `Connected`. A LUN added to
//! the target raises REPORTED LUNS DATA HAS CHANGED on the others.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use tgtkit_scsi_core::engine::{NexusId, NexusInfo, Target, TargetConfig};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_vscsiif::{DeviceMap, DeviceTarget, VirtualDevice, VscsiBackend, VscsiConfig};
use tgtkit_xen::gntdev::GntdevGrants;
use tgtkit_xen::xenbus::XenbusState;
use tracing::{info, warn};

use super::{Ctx, DevKey, Kind, Paths, Ring};
use crate::lunspec::LunSpec;

/// `feature-sg-grant`: as Linux's scsiback (`SG_ALL`).
const SG_GRANT: u16 = 128;

/// One logical unit of the target and how many vhost entries map it.
#[derive(Debug)]
struct Shared {
    index: u16,
    users: usize,
}

/// The vscsiif kind: the daemon's one engine target and its LUNs.
pub struct Vscsi {
    target: Arc<Target>,
    luns: HashMap<String, Shared>,
}

impl Default for Vscsi {
    fn default() -> Self {
        Self::new()
    }
}

impl Vscsi {
    /// A kind with an empty target. Files go on the backstores' thread
    /// pool (see [`Blkif`](super::blk::Blkif) for why not io_uring).
    #[must_use]
    pub fn new() -> Self {
        Self {
            target: Target::new(TargetConfig::default()),
            luns: HashMap::new(),
        }
    }

    /// The engine target (every vhost's nexus, every p-dev's LUN).
    #[must_use]
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// The logical unit of `pdev`, opened on first use.
    fn acquire(&mut self, pdev: &str) -> Result<u16, String> {
        if let Some(s) = self.luns.get_mut(pdev) {
            s.users += 1;
            return Ok(s.index);
        }
        let spec = LunSpec::from_str(pdev).map_err(|e| e.to_string())?;
        let used = self.target.lun_indexes();
        let index = (0..=u16::MAX)
            .find(|i| !used.contains(i) && Lun::from_index(*i).is_some())
            .ok_or("no free LUN")?;
        let backstore = spec.open(false)?;
        self.target
            .add_lun(index, spec.lu_config(backstore))
            .map_err(|e| e.to_string())?;
        info!(p_dev = pdev, lun = index, "logical unit opened");
        self.luns
            .insert(pdev.to_owned(), Shared { index, users: 1 });
        Ok(index)
    }

    fn release(&mut self, pdev: &str) {
        let Some(s) = self.luns.get_mut(pdev) else {
            return;
        };
        s.users -= 1;
        if s.users == 0 {
            let index = s.index;
            self.luns.remove(pdev);
            self.target.remove_lun(index);
            info!(p_dev = pdev, lun = index, "logical unit closed");
        }
    }

    /// Map entry `ent` of `vhost`; `Err` if it cannot be.
    fn add(
        &mut self,
        vhost: &mut Vhost,
        ent: &str,
        pdev: &str,
        vdev: VirtualDevice,
    ) -> Result<(), String> {
        let devices = vhost.devices.clone().ok_or("not connected")?;
        if vhost.mapped.contains_key(ent) {
            return Err(format!("{ent} is already mapped"));
        }
        let vdev = VirtualDevice {
            host: devices.host(),
            ..vdev
        };
        let index = self.acquire(pdev)?;
        let dev = DeviceTarget {
            target: Arc::clone(&self.target),
            nexus: vhost.nexus,
            lun: Lun::from_index(index).ok_or("bad LUN")?,
        };
        if let Err(e) = devices.add(vdev, dev) {
            self.release(pdev);
            return Err(e.to_string());
        }
        vhost.mapped.insert(ent.to_owned(), (vdev, pdev.to_owned()));
        Ok(())
    }

    fn del(&mut self, vhost: &mut Vhost, ent: &str) -> bool {
        let Some((vdev, pdev)) = vhost.mapped.remove(ent) else {
            return false;
        };
        if let Some(d) = &vhost.devices {
            d.remove(vdev);
        }
        self.release(&pdev);
        true
    }

    /// One pass over `vscsi-devs`: add `Initialising` entries (and, on a
    /// reconnect, `Connected` ones), remove `Closing` ones; or, with
    /// `confirm`, move `Initialised` entries to `Connected`.
    fn scan(
        &mut self,
        ctx: &Ctx,
        vhost: &mut Vhost,
        paths: &Paths,
        confirm: bool,
    ) -> Result<(), String> {
        let dir = format!("{}/vscsi-devs", paths.be);
        let ents = match ctx.xs.directory(&dir) {
            Ok(e) => e,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        for ent in ents {
            let node = |k: &str| format!("{dir}/{ent}/{k}");
            let Some(state) = ctx.read(&node("state"))? else {
                continue;
            };
            let state = XenbusState::parse(state.as_bytes());
            let set = |s: XenbusState| {
                ctx.xs
                    .write(&node("state"), s.to_value().as_bytes())
                    .map_err(|e| e.to_string())
            };
            if confirm {
                if state == XenbusState::INITIALISED && vhost.mapped.contains_key(&ent) {
                    set(XenbusState::CONNECTED)?;
                }
                continue;
            }
            match state {
                XenbusState::INITIALISING | XenbusState::CONNECTED => {
                    let pdev = ctx.read(&node("p-dev"))?;
                    let vdev = ctx.read(&node("v-dev"))?;
                    let parsed = match (pdev, vdev) {
                        (Some(p), Some(v)) => VirtualDevice::from_str(v.trim())
                            .map(|v| (p.trim().to_owned(), v))
                            .map_err(|e| e.to_string()),
                        _ => Err("no p-dev or v-dev".to_owned()),
                    };
                    let added = parsed.and_then(|(p, v)| {
                        if state == XenbusState::CONNECTED && vhost.mapped.contains_key(&ent) {
                            return Ok(false); // served already
                        }
                        self.add(vhost, &ent, &p, v).map(|()| true)
                    });
                    match added {
                        Ok(true) => {
                            info!(entry = %ent, "device added");
                            if state == XenbusState::INITIALISING {
                                set(XenbusState::INITIALISED)?;
                            }
                        }
                        Ok(false) => {}
                        Err(e) => {
                            warn!(entry = %ent, error = %e, "device not added");
                            if state == XenbusState::INITIALISING {
                                set(XenbusState::CLOSED)?;
                            }
                        }
                    }
                }
                XenbusState::CLOSING => {
                    self.del(vhost, &ent);
                    info!(entry = %ent, "device removed");
                    set(XenbusState::CLOSED)?;
                }
                // The frontend may close the entry itself first.
                XenbusState::CLOSED if self.del(vhost, &ent) => {
                    info!(entry = %ent, "device removed");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// One vhost: its nexus, and while connected its device map.
pub struct Vhost {
    nexus: NexusId,
    devices: Option<DeviceMap>,
    /// dev-N → (address, p-dev).
    mapped: HashMap<String, (VirtualDevice, String)>,
}

/// A SAS TransportID (SPC-4 §7.6.4.5) naming vhost `dev` of domain `dom`.
fn transport_id(dom: u32, dev: &str) -> Vec<u8> {
    let dev: u64 = dev.parse().unwrap_or(0);
    let address = 0x5000_0000_0000_0000 | (u64::from(dom) << 20) | (dev & 0xf_ffff);
    let mut id = vec![0u8; 24];
    id[0] = 0x06; // format 00b, protocol identifier 6 (SAS)
    id[4..12].copy_from_slice(&address.to_be_bytes());
    id
}

impl Kind for Vscsi {
    type Device = Vhost;
    const NAME: &'static str = "xen-scsiback";
    const LUN_HOTPLUG: bool = true;

    fn open(&mut self, _ctx: &Ctx, key: &DevKey, paths: &Paths) -> Result<Vhost, String> {
        let nexus = self.target.add_nexus(NexusInfo {
            initiator_port: format!("xen-scsifront-{}-{}", paths.fe_dom, key.dev),
            target_port: "tgtkit-xen-scsiback".into(),
            relative_port: 1,
            transport_id: transport_id(paths.fe_dom, &key.dev),
        });
        Ok(Vhost {
            nexus,
            devices: None,
            mapped: HashMap::new(),
        })
    }

    fn advertise(&self, ctx: &Ctx, _v: &Vhost, paths: &Paths) -> Result<(), String> {
        ctx.write_all(&paths.be, &[("feature-sg-grant", SG_GRANT.to_string())])
    }

    fn connect(
        &mut self,
        ctx: &Ctx,
        key: &DevKey,
        v: &mut Vhost,
        paths: &Paths,
    ) -> Result<Vec<Ring>, String> {
        let gntdev = ctx.gntdev.clone().ok_or("no /dev/xen/gntdev")?;
        let fe = &paths.fe;
        let gref = ctx.num(&format!("{fe}/ring-ref"))?.ok_or("no ring-ref")?;
        let port = ctx
            .num(&format!("{fe}/event-channel"))?
            .ok_or("no event-channel")?;
        let mem = ctx.map_ring(paths.fe_dom, &[gref])?;
        let grants = Arc::new(GntdevGrants::new(gntdev, paths.fe_dom));
        let config = VscsiConfig {
            host: 0,
            sg_grant: SG_GRANT,
            max_in_flight: 0,
        };
        let mut backend = VscsiBackend::new(mem, config, grants).map_err(|e| e.to_string())?;
        v.devices = Some(backend.devices());
        let channel = ctx.bind(paths.fe_dom, port)?;
        if let Err(e) = self.scan(ctx, v, paths, false) {
            self.disconnected(ctx, v);
            return Err(e);
        }
        info!(device = %key, gref, remote_port = port, local_port = channel.port(), luns = v.mapped.len(), "ring connected");
        let (ch, k) = (Arc::clone(&channel), key.clone());
        Ok(vec![ctx.spawn_ring(key, channel, async move {
            let ok = backend.run(&*ch).await.is_ok();
            let stats = backend.stats();
            info!(device = %k, ok = stats.ok, failed = stats.failed, "ring stopped");
            ok
        })])
    }

    fn reconfigure(
        &mut self,
        ctx: &Ctx,
        _key: &DevKey,
        v: &mut Vhost,
        paths: &Paths,
    ) -> Result<(), String> {
        self.scan(ctx, v, paths, false)
    }

    fn confirm(&mut self, ctx: &Ctx, v: &mut Vhost, paths: &Paths) -> Result<(), String> {
        self.scan(ctx, v, paths, true)
    }

    fn disconnected(&mut self, _ctx: &Ctx, v: &mut Vhost) {
        let ents: Vec<String> = v.mapped.keys().cloned().collect();
        for ent in ents {
            self.del(v, &ent);
        }
        v.devices = None;
    }

    fn removed(&mut self, ctx: &Ctx, mut v: Vhost) {
        self.disconnected(ctx, &mut v);
        self.target.remove_nexus(v.nexus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenback::testing::{daemon, Harness};

    const BE: &str = "/local/domain/0/backend/vscsi/0";
    const FE: &str = "/local/domain/0/device/vscsi";

    fn add_vhost(h: &Harness<Vscsi>, dev: &str, devs: &[(&str, &str, &str)]) {
        let (be, fe) = (format!("{BE}/{dev}"), format!("{FE}/{dev}"));
        h.fake.write(&format!("{fe}/backend"), &be);
        h.fake.write(&format!("{fe}/backend-id"), "0");
        for (ent, p, v) in devs {
            h.fake.write(&format!("{be}/vscsi-devs/{ent}/p-dev"), p);
            h.fake.write(&format!("{be}/vscsi-devs/{ent}/v-dev"), v);
            h.fake.write(&format!("{be}/vscsi-devs/{ent}/state"), "1");
        }
        for (k, v) in [("frontend-id", "0"), ("online", "1"), ("feature-host", "0")] {
            h.fake.write(&format!("{be}/{k}"), v);
        }
        h.fake.write(&format!("{fe}/state"), "1");
        h.fake.write(&format!("{be}/state"), "1");
        h.fake.write(&format!("{be}/frontend"), &fe);
    }

    /// Keys written one by one, the frontend's state after the backend's
    /// `frontend` node and the backend's `state` last (as a person at a
    /// shell does): nothing is served before the backend state exists, and
    /// a frontend without a state node yet is not gone.
    #[test]
    fn waits_for_the_backend_state_and_the_frontend_state() {
        let mut h = daemon(Vscsi::new(), "vscsi", Vec::new());
        let (be, fe) = (format!("{BE}/1"), format!("{FE}/1"));
        h.fake.write(&format!("{fe}/backend"), &be);
        h.fake.write(&format!("{be}/frontend"), &fe);
        h.fake.write(&format!("{be}/frontend-id"), "0");
        h.pump();
        assert!(h.d.is_empty());
        assert_eq!(h.fake.read(&format!("{be}/state")), None);
        h.fake.write(&format!("{be}/state"), "1");
        h.pump();
        assert_eq!(h.d.len(), 1);
        assert_eq!(h.fake.read(&format!("{be}/state")).as_deref(), Some("2"));
        h.fake.write(&format!("{fe}/state"), "1");
        h.pump();
        assert_eq!(h.d.len(), 1);
        assert_eq!(h.fake.read(&format!("{be}/state")).as_deref(), Some("2"));
    }

    #[test]
    fn advertises_sg_grant_and_a_ring_it_cannot_map_closes() {
        let mut h = daemon(Vscsi::new(), "vscsi", Vec::new());
        add_vhost(&h, "0", &[("dev-0", "ram:1M", "0:0:0:0")]);
        h.pump();
        let be = format!("{BE}/0");
        assert_eq!(h.fake.read(&format!("{be}/state")).as_deref(), Some("2"));
        assert_eq!(
            h.fake.read(&format!("{be}/feature-sg-grant")).as_deref(),
            Some("128")
        );
        // Without gntdev the ring cannot be mapped: Closing, error node,
        // and no LUN was opened.
        h.fake.write(&format!("{FE}/0/ring-ref"), "8");
        h.fake.write(&format!("{FE}/0/event-channel"), "16");
        h.fake.write(&format!("{FE}/0/state"), "3");
        h.pump();
        assert_eq!(h.fake.read(&format!("{be}/state")).as_deref(), Some("5"));
        assert!(h.fake.read(&format!("{be}/error")).is_some());
        assert!(h.d.kind().target().lun_indexes().is_empty());
        h.fake.write(&format!("{FE}/0/state"), "6");
        h.fake.rm(&format!("{FE}/0"));
        h.pump();
        assert!(h.d.is_empty());
    }

    /// The hot-plug bookkeeping on a vhost that is "connected" to a device
    /// map without a ring (the scan is what the daemon runs).
    #[test]
    fn entries_are_added_shared_and_removed_by_state() {
        let h = daemon(Vscsi::new(), "vscsi", Vec::new());
        let ctx = &h.d.ctx;
        let mut kind = Vscsi::new();
        let paths = |dev: &str| Paths {
            be: format!("{BE}/{dev}"),
            fe: format!("{FE}/{dev}"),
            fe_dom: 0,
        };
        let key = |dev: &str| DevKey {
            ty: "vscsi".into(),
            dom: 0,
            dev: dev.into(),
        };
        add_vhost(
            &h,
            "0",
            &[
                ("dev-0", "ram:1M", "0:0:0:0"),
                ("dev-1", "ram:2M", "0:0:1:0"),
                ("dev-2", "vhd:/x", "0:0:2:0"),
                ("dev-3", "ram:1M", "bogus"),
            ],
        );
        add_vhost(&h, "1", &[("dev-0", "ram:1M", "1:0:0:0")]);
        let mut v0 = kind.open(ctx, &key("0"), &paths("0")).unwrap();
        let mut v1 = kind.open(ctx, &key("1"), &paths("1")).unwrap();
        v0.devices = Some(DeviceMap::new(0));
        v1.devices = Some(DeviceMap::new(0));
        kind.scan(ctx, &mut v0, &paths("0"), false).unwrap();
        let st = |dev: &str, ent: &str| {
            h.fake
                .read(&format!("{BE}/{dev}/vscsi-devs/{ent}/state"))
                .unwrap()
        };
        assert_eq!(
            [
                st("0", "dev-0"),
                st("0", "dev-1"),
                st("0", "dev-2"),
                st("0", "dev-3")
            ],
            ["3", "3", "6", "6"]
        );
        assert_eq!(v0.devices.as_ref().unwrap().len(), 2);
        // The second vhost names the same p-dev: the same logical unit.
        kind.scan(ctx, &mut v1, &paths("1"), false).unwrap();
        assert_eq!(st("1", "dev-0"), "3");
        assert_eq!(kind.target().lun_indexes(), [0, 1]);
        // The frontend is Connected: Initialised entries go Connected.
        kind.scan(ctx, &mut v0, &paths("0"), true).unwrap();
        assert_eq!([st("0", "dev-0"), st("0", "dev-2")], ["4", "6"]);
        // Hot-unplug dev-1, hot-plug dev-4; a Connected entry is kept.
        h.fake.write(&format!("{BE}/0/vscsi-devs/dev-1/state"), "5");
        h.fake
            .write(&format!("{BE}/0/vscsi-devs/dev-4/p-dev"), "ram:4M");
        h.fake
            .write(&format!("{BE}/0/vscsi-devs/dev-4/v-dev"), "0:0:4:0");
        h.fake.write(&format!("{BE}/0/vscsi-devs/dev-4/state"), "1");
        kind.scan(ctx, &mut v0, &paths("0"), false).unwrap();
        assert_eq!([st("0", "dev-1"), st("0", "dev-4")], ["6", "3"]);
        assert_eq!(kind.target().lun_indexes(), [0, 1]);
        assert_eq!(v0.devices.as_ref().unwrap().len(), 2);
        // The same address twice is refused.
        h.fake
            .write(&format!("{BE}/0/vscsi-devs/dev-5/p-dev"), "ram:4M");
        h.fake
            .write(&format!("{BE}/0/vscsi-devs/dev-5/v-dev"), "0:0:4:0");
        h.fake.write(&format!("{BE}/0/vscsi-devs/dev-5/state"), "1");
        kind.scan(ctx, &mut v0, &paths("0"), false).unwrap();
        assert_eq!(st("0", "dev-5"), "6");
        // Closing the vhosts releases every LUN.
        kind.removed(ctx, v0);
        assert_eq!(kind.target().lun_indexes(), [0]);
        kind.removed(ctx, v1);
        assert!(kind.target().lun_indexes().is_empty());
    }

    #[test]
    fn sas_transport_ids_differ_per_vhost() {
        let a = transport_id(0, "0");
        let b = transport_id(0, "1");
        let c = transport_id(3, "0");
        assert_eq!(a.len(), 24);
        assert_eq!(a[0], 6);
        assert!(a != b && a != c && b != c);
    }
}
