//! Requests per second through a blkif ring: a frontend thread (our
//! `FrontRing` over plain memory) and the backend processor on its own
//! thread, kicking each other through simulated event channels.
//!
//! * `blkif_ring/null_read_4k`: 4 KiB READs on a backstore that does nothing,
//!   so the figure is the ring, decode, grant-map and response overhead;
//! * `blkif_ring/ram_read_4k`: 4 KiB READs from a ram backstore (one 4 KiB
//!   copy into the granted page per request).
//!
//! `cargo bench -p tgtkit-benches --bench blkif_ring` prints requests/s
//! (criterion's "thrpt" in elements/s) for each.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, Criterion, Throughput};
use tgtkit_backstores::ram::RamBackstore;
use tgtkit_blkif::request::{RwKind, Segment, SegmentList};
use tgtkit_blkif::{Abi, BackendConfig, BlkifBackend, Request};
use tgtkit_scsi_core::backstore::{Backstore, Capabilities, Geometry, IoResult, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_xen_ring::testing::{LocalEvent, MemoryGrants};
use tgtkit_xen_ring::{FrontRing, RingMemory};

/// A backstore that completes every request at once without touching data.
struct Null;

#[async_trait]
impl Backstore for Null {
    fn geometry(&self) -> Geometry {
        Geometry::new(1 << 30, 512)
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::empty()
    }
    async fn read(&self, _offset: u64, _buf: DataBuffer) -> IoResult<()> {
        Ok(())
    }
    async fn write(&self, _offset: u64, _buf: DataBuffer, _flags: WriteFlags) -> IoResult<()> {
        Ok(())
    }
    async fn flush(&self) -> IoResult<()> {
        Ok(())
    }
}

struct Pair {
    front: FrontRing,
    ev: LocalEvent,
    backend: Option<JoinHandle<()>>,
    next_id: u64,
}

const SLOTS: u32 = 32;
const DISK_PAGES: u64 = 4096; // 16 MiB

impl Pair {
    fn new(backstore: Arc<dyn Backstore>) -> Self {
        let ring = RingMemory::anonymous(1).expect("ring");
        let front = FrontRing::init(ring.clone(), Abi::native().entry_size()).expect("front");
        let grants = Arc::new(MemoryGrants::new(SLOTS as usize));
        let mut backend =
            BlkifBackend::new(ring, BackendConfig::default(), grants, backstore).expect("backend");
        let ev = LocalEvent::new();
        let ev2 = ev.clone();
        let h = std::thread::spawn(move || {
            let _ = futures::executor::block_on(backend.run(&ev2));
        });
        Self {
            front,
            ev,
            backend: Some(h),
            next_id: 0,
        }
    }

    /// Run `n` 4 KiB READs with the ring kept full; returns the elapsed time.
    fn drive(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        let (mut sent, mut done) = (0u64, 0u64);
        let mut slot = [0u8; 112];
        let mut rsp = [0u8; 16];
        while done < n {
            while sent < n && self.front.free_requests() > 0 {
                let id = self.next_id;
                self.next_id += 1;
                let gref = self.front.req_prod_pvt() % SLOTS;
                let segs = [Segment {
                    gref,
                    first_sect: 0,
                    last_sect: 7,
                }];
                Request::ReadWrite {
                    kind: RwKind::Read,
                    id,
                    handle: 0,
                    sector: (id % DISK_PAGES) * 8,
                    segments: SegmentList::new(&segs).expect("segments"),
                    extra: false,
                }
                .encode(Abi::native(), &mut slot);
                self.front.push_request(&slot).expect("push");
                sent += 1;
            }
            if self.front.push_requests_and_check_notify() {
                self.ev.to_back.ring();
            }
            let mut got = false;
            while self.front.next_response(&mut rsp).expect("response") {
                assert_eq!(i16::from_le_bytes([rsp[10], rsp[11]]), 0, "read failed");
                done += 1;
                got = true;
            }
            if !got && !self.front.final_check_for_responses().expect("ring") {
                self.ev.to_front.wait_timeout(Duration::from_millis(5));
            }
        }
        start.elapsed()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.ev.to_back.close();
        if let Some(h) = self.backend.take() {
            let _ = h.join();
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("blkif_ring");
    g.throughput(Throughput::Elements(1));
    let mut null = Pair::new(Arc::new(Null));
    g.bench_function("null_read_4k", |b| b.iter_custom(|iters| null.drive(iters)));
    let ram = RamBackstore::new(DISK_PAGES * 4096).expect("ram backstore");
    let mut ram = Pair::new(Arc::new(ram));
    g.bench_function("ram_read_4k", |b| b.iter_custom(|iters| ram.drive(iters)));
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
