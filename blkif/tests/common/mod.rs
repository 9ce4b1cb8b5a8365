//! A frontend simulator: a `FrontRing` and a plain-memory grant table on one
//! side, the backend processor on its own thread on the other.
#![allow(dead_code, clippy::cast_possible_truncation)]

pub mod cbuild;
pub mod shm;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tgtkit_blkif::backend::BackendStats;
use tgtkit_blkif::request::{RwKind, Segment, SegmentList};
use tgtkit_blkif::testing::{LocalEvent, MemoryGrants};
use tgtkit_blkif::{Abi, BackendConfig, BlkifBackend, Request, Response, Shutdown};
use tgtkit_scsi_core::backstore::Backstore;
use tgtkit_xen_ring::{FrontRing, RingMemory};

/// What the backend thread returns: its result, counters and cached grants.
pub type Outcome = (Result<(), Shutdown>, BackendStats, usize);

pub struct Sim {
    pub abi: Abi,
    pub front: FrontRing,
    pub ring: RingMemory,
    pub grants: Arc<MemoryGrants>,
    pub ev: LocalEvent,
    backend: Option<JoinHandle<Outcome>>,
}

pub fn start(config: BackendConfig, grant_pages: usize, backstore: Arc<dyn Backstore>) -> Sim {
    start_with(
        config,
        Arc::new(MemoryGrants::new(grant_pages)),
        backstore,
        1,
        |b| b,
    )
}

pub fn start_with(
    config: BackendConfig,
    grants: Arc<MemoryGrants>,
    backstore: Arc<dyn Backstore>,
    ring_pages: usize,
    wrap: impl FnOnce(BlkifBackend<MemoryGrants>) -> BlkifBackend<MemoryGrants>,
) -> Sim {
    let ring = RingMemory::anonymous(ring_pages).unwrap();
    let front = FrontRing::init(ring.clone(), config.abi.entry_size()).unwrap();
    let backend =
        wrap(BlkifBackend::new(ring.clone(), config, Arc::clone(&grants), backstore).unwrap());
    spawn(config, ring, front, grants, backend)
}

/// A backend started on a ring that `front` already drives (a restarted
/// backend process: the ring, its requests and the grants outlive it).
pub fn resume(
    config: BackendConfig,
    ring: RingMemory,
    front: FrontRing,
    grants: Arc<MemoryGrants>,
    backstore: Arc<dyn Backstore>,
) -> Sim {
    let backend = BlkifBackend::new(ring.clone(), config, Arc::clone(&grants), backstore).unwrap();
    spawn(config, ring, front, grants, backend)
}

fn spawn(
    config: BackendConfig,
    ring: RingMemory,
    front: FrontRing,
    grants: Arc<MemoryGrants>,
    backend: BlkifBackend<MemoryGrants>,
) -> Sim {
    let ev = LocalEvent::new();
    let ev2 = ev.clone();
    let handle = std::thread::spawn(move || {
        let mut backend = backend;
        let r = futures::executor::block_on(backend.run(&ev2));
        (r, backend.stats(), backend.persistent_grants())
    });
    let sim = Sim {
        abi: config.abi,
        front,
        ring,
        grants,
        ev,
        backend: Some(handle),
    };
    sim.ev.to_back.ring();
    sim
}

pub fn seg(gref: u32, first: u8, last: u8) -> Segment {
    Segment {
        gref,
        first_sect: first,
        last_sect: last,
    }
}

pub fn rw(kind: RwKind, id: u64, sector: u64, segs: &[Segment]) -> Request {
    Request::ReadWrite {
        kind,
        id,
        handle: 0,
        sector,
        segments: SegmentList::new(segs).unwrap(),
        extra: false,
    }
}

impl Sim {
    /// Push encoded requests and kick the backend if ring.h says so.
    pub fn submit(&mut self, reqs: &[Request]) {
        for r in reqs {
            let mut slot = [0u8; 112];
            r.encode(self.abi, &mut slot);
            self.front
                .push_request(&slot[..self.abi.entry_size()])
                .unwrap();
        }
        self.publish();
    }

    /// Push raw slots (hostile frontends).
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

    /// Collect `n` responses (raw slots), failing after 10 s.
    pub fn raw_responses(&mut self, n: usize) -> Vec<[u8; 16]> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n {
            let mut buf = [0u8; 16];
            if self
                .front
                .next_response(&mut buf[..self.abi.response_size()])
                .unwrap()
            {
                out.push(buf);
                continue;
            }
            if self.front.final_check_for_responses().unwrap() {
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for responses ({} of {n})",
                out.len()
            );
            self.ev.to_front.wait_timeout(Duration::from_millis(20));
        }
        out
    }

    pub fn responses(&mut self, n: usize) -> Vec<Response> {
        let abi = self.abi;
        self.raw_responses(n)
            .iter()
            .map(|b| Response::decode(abi, b).unwrap())
            .collect()
    }

    /// One request, one response.
    pub fn roundtrip(&mut self, req: Request) -> Response {
        self.submit(&[req]);
        let r = self.responses(1)[0];
        assert_eq!(r.id, req.id());
        r
    }

    /// Close the event channel and join the backend thread (10 s limit).
    pub fn stop(&mut self) -> Outcome {
        self.ev.to_back.close();
        self.join()
    }

    /// Join a backend that stops on its own (ring corruption), 10 s limit.
    pub fn join(&mut self) -> Outcome {
        let h = self.backend.take().expect("backend running");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !h.is_finished() {
            assert!(Instant::now() < deadline, "backend did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        h.join().expect("backend thread panicked")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.ev.to_back.close();
    }
}

/// A pattern for sector `s` of a test disk.
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
