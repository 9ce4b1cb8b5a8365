//! A vscsiif frontend simulator and an engine with one ram disk.
#![allow(dead_code, clippy::cast_possible_truncation)]

// The C build and shared-memory helpers are blkif's: one copy serves both.
#[path = "../../../blkif/tests/common/cbuild.rs"]
pub mod cbuild;
#[path = "../../../blkif/tests/common/shm.rs"]
pub mod shm;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tgtkit_scsi_core::backstore::Backstore;
use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, Target, TargetConfig};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::test_utils::MemBackstore;
use tgtkit_vscsiif::backend::{Shutdown, VscsiStats};
use tgtkit_vscsiif::request::{DataSegments, Segment, SegmentList};
use tgtkit_vscsiif::{
    DataDirection, DeviceMap, DeviceTarget, Request, Response, VirtualDevice, VscsiBackend,
    VscsiConfig,
};
use tgtkit_xen_ring::testing::{LocalEvent, MemoryGrants};
use tgtkit_xen_ring::{FrontRing, RingMemory};

pub type Outcome = (Result<(), Shutdown>, VscsiStats);

pub struct Sim {
    pub front: FrontRing,
    pub ring: RingMemory,
    pub grants: Arc<MemoryGrants>,
    pub ev: LocalEvent,
    pub disk: Arc<MemBackstore>,
    pub target: Arc<Target>,
    /// The running backend's device map (hot-plug).
    pub devices: DeviceMap,
    backend: Option<JoinHandle<Outcome>>,
}

/// An engine target with one 1 MiB ram LUN, mapped as vdev 0:0:1:0.
pub fn engine(blocks: u64) -> (Arc<Target>, DeviceTarget, Arc<MemBackstore>) {
    let disk = Arc::new(MemBackstore::new(blocks, 512));
    let (target, dev) = engine_on(disk.clone());
    (target, dev, disk)
}

/// An engine target with `backstore` as LUN 0, on one nexus.
pub fn engine_on(backstore: Arc<dyn Backstore>) -> (Arc<Target>, DeviceTarget) {
    let target = Target::new(TargetConfig::default());
    target.add_lun(0, LuConfig::new(backstore)).unwrap();
    let nexus = target.add_nexus(NexusInfo {
        initiator_port: "xen-vscsi-front:1:0".into(),
        target_port: "tgtkit-scsiback:0".into(),
        relative_port: 1,
        transport_id: Vec::new(),
    });
    let dev = DeviceTarget {
        target: Arc::clone(&target),
        nexus,
        lun: Lun::from_index(0).unwrap(),
    };
    (target, dev)
}

pub fn start(config: VscsiConfig, grant_pages: usize) -> Sim {
    let disk = Arc::new(MemBackstore::new(2048, 512));
    start_on(config, grant_pages, disk.clone(), disk)
}

/// A simulator whose device runs on `backstore` (`disk` is what tests inspect).
pub fn start_on(
    config: VscsiConfig,
    grant_pages: usize,
    backstore: Arc<dyn Backstore>,
    disk: Arc<MemBackstore>,
) -> Sim {
    let (target, dev) = engine_on(backstore);
    let ring = RingMemory::anonymous(1).unwrap();
    let front = FrontRing::init(ring.clone(), 252).unwrap();
    let grants = Arc::new(MemoryGrants::new(grant_pages));
    let mut backend = VscsiBackend::new(ring.clone(), config, Arc::clone(&grants)).unwrap();
    backend
        .add_device("0:0:1:0".parse::<VirtualDevice>().unwrap(), dev)
        .unwrap();
    let devices = backend.devices();
    let ev = LocalEvent::new();
    let ev2 = ev.clone();
    let h = std::thread::spawn(move || {
        let r = futures::executor::block_on(backend.run(&ev2));
        (r, backend.stats())
    });
    Sim {
        front,
        ring,
        grants,
        ev,
        disk,
        target,
        devices,
        backend: Some(h),
    }
}

pub fn cdb(rqid: u16, bytes: &[u8], direction: DataDirection, segs: &[Segment]) -> Request {
    let mut c = [0u8; 16];
    c[..bytes.len()].copy_from_slice(bytes);
    Request::Cdb {
        rqid,
        addr: (0, 1, 0),
        cdb: c,
        cmd_len: bytes.len() as u8,
        direction,
        segments: DataSegments::Direct(SegmentList::new(segs).unwrap()),
    }
}

pub fn seg(gref: u32, offset: u16, length: u16) -> Segment {
    Segment {
        gref,
        offset,
        length,
    }
}

impl Sim {
    pub fn submit(&mut self, reqs: &[Request]) {
        for r in reqs {
            let mut slot = [0u8; 252];
            r.encode(&mut slot);
            self.front.push_request(&slot).unwrap();
        }
        self.publish();
    }

    pub fn submit_raw(&mut self, slots: &[&[u8]]) {
        for s in slots {
            self.front.push_request(s).unwrap();
        }
        self.publish();
    }

    pub fn publish(&mut self) {
        if self.front.push_requests_and_check_notify() {
            self.ev.to_back.ring();
        }
    }

    /// A response if one is published now (no waiting).
    pub fn try_response(&mut self) -> Option<Response> {
        let mut b = [0u8; 252];
        self.front
            .next_response(&mut b)
            .unwrap()
            .then(|| Response::decode(&b).unwrap())
    }

    pub fn responses(&mut self, n: usize) -> Vec<Response> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n {
            let mut b = [0u8; 252];
            if self.front.next_response(&mut b).unwrap() {
                out.push(Response::decode(&b).unwrap());
                continue;
            }
            if self.front.final_check_for_responses().unwrap() {
                continue;
            }
            assert!(Instant::now() < deadline, "timed out waiting for responses");
            self.ev.to_front.wait_timeout(Duration::from_millis(20));
        }
        out
    }

    pub fn roundtrip(&mut self, req: Request) -> Response {
        self.submit(&[req]);
        let r = self.responses(1)[0];
        assert_eq!(r.rqid, req.rqid());
        r
    }

    /// Run TEST UNIT READY until GOOD, consuming the power-on unit attention.
    pub fn clear_unit_attention(&mut self) {
        for i in 0..4 {
            let r = self.roundtrip(cdb(900 + i, &[0; 6], DataDirection::None, &[]));
            if r.rslt == 0 {
                return;
            }
        }
        panic!("unit attention does not clear");
    }

    pub fn stop(&mut self) -> Outcome {
        self.ev.to_back.close();
        self.join()
    }

    pub fn join(&mut self) -> Outcome {
        let h = self.backend.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !h.is_finished() {
            assert!(Instant::now() < deadline, "backend did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        h.join().expect("backend panicked")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.ev.to_back.close();
    }
}

pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
