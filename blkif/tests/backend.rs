//! The backend processor against a simulated frontend.
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{pattern, rw, seg, start, start_with};
use tgtkit_blkif::engine::EnginePassThrough;
use tgtkit_blkif::request::{encode_indirect_segments, RwKind};
use tgtkit_blkif::testing::MemoryGrants;
use tgtkit_blkif::wire::RawExtraRequest;
use tgtkit_blkif::{Abi, BackendConfig, BlkifBackend, Operation, Request, Response, Status};
use tgtkit_scsi_core::backstore::{Backstore, Capabilities, Geometry, IoResult, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, Target, TargetConfig};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::test_utils::MemBackstore;
use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

fn ram(blocks: u64, bs: u32) -> Arc<MemBackstore> {
    Arc::new(MemBackstore::new(blocks, bs))
}

fn cfg(abi: Abi) -> BackendConfig {
    BackendConfig {
        abi,
        ..BackendConfig::default()
    }
}

fn write_read_round_trip(abi: Abi) {
    let disk = ram(2048, 512);
    let mut sim = start(cfg(abi), 32, disk.clone());
    let data = pattern(3 * 4096, 1);
    for p in 0..3u32 {
        sim.grants
            .write(p, 0, &data[p as usize * 4096..(p as usize + 1) * 4096]);
    }
    // io/blkif.h: each segment names a page and sectors first..=last of it.
    let w = rw(
        RwKind::Write,
        7,
        100,
        &[seg(0, 0, 7), seg(1, 0, 7), seg(2, 0, 7)],
    );
    assert_eq!(sim.roundtrip(w).status, Status::OKAY);
    assert_eq!(disk.contents(100 * 512, 3 * 4096), data);
    let r = rw(
        RwKind::Read,
        8,
        100,
        &[seg(10, 0, 7), seg(11, 0, 7), seg(12, 0, 7)],
    );
    let resp = sim.roundtrip(r);
    assert_eq!(
        (resp.status, resp.operation),
        (Status::OKAY, Operation::READ)
    );
    let mut back = vec![0u8; 3 * 4096];
    for p in 0..3u32 {
        sim.grants.read(
            10 + p,
            0,
            &mut back[p as usize * 4096..(p as usize + 1) * 4096],
        );
    }
    assert_eq!(back, data);
    let (res, stats, _) = sim.stop();
    res.unwrap();
    assert_eq!(stats.ok, 2);
    assert_eq!(sim.grants.mapped_pages(), 0, "every mapping was unmapped");
}

#[test]
fn accepts_write_read_round_trip_x86_64() {
    write_read_round_trip(Abi::X86_64);
}

#[test]
fn accepts_write_read_round_trip_x86_32() {
    write_read_round_trip(Abi::X86_32);
}

#[test]
fn accepts_partial_page_segments() {
    let disk = ram(64, 512);
    let mut sim = start(cfg(Abi::native()), 8, disk.clone());
    let data = pattern(4096, 2);
    sim.grants.write(0, 0, &data);
    // Sectors 3..=5 of page 0 (bytes 1536..3072) to disk sector 9.
    assert_eq!(
        sim.roundtrip(rw(RwKind::Write, 1, 9, &[seg(0, 3, 5)]))
            .status,
        Status::OKAY
    );
    assert_eq!(disk.contents(9 * 512, 3 * 512), data[1536..3072]);
    // Read them back into sectors 1..=3 of page 1; the rest stays untouched.
    sim.grants.write(1, 0, &[0xAA; 4096]);
    assert_eq!(
        sim.roundtrip(rw(RwKind::Read, 2, 9, &[seg(1, 1, 3)]))
            .status,
        Status::OKAY
    );
    let mut page = [0u8; 4096];
    sim.grants.read(1, 0, &mut page);
    assert_eq!(page[512..2048], data[1536..3072]);
    assert!(page[..512].iter().chain(&page[2048..]).all(|&b| b == 0xAA));
}

#[test]
fn accepts_indirect_requests_over_several_pages() {
    let disk = ram(16384, 512);
    let config = BackendConfig {
        max_indirect_segments: 1024,
        ..cfg(Abi::native())
    };
    let mut sim = start(config, 1100, disk.clone());
    // 600 one-sector segments: two indirect pages (512 per page).
    let n = 600u16;
    let segs: Vec<_> = (0..u32::from(n))
        .map(|i| seg(10 + i, (i % 8) as u8, (i % 8) as u8))
        .collect();
    let ind = encode_indirect_segments(&segs);
    sim.grants.write(0, 0, &ind[..4096]);
    sim.grants.write(1, 0, &ind[4096..]);
    let data = pattern(usize::from(n) * 512, 3);
    for (i, s) in segs.iter().enumerate() {
        sim.grants
            .write(s.gref, s.byte_offset(), &data[i * 512..(i + 1) * 512]);
    }
    let req = Request::Indirect {
        kind: RwKind::Write,
        id: 99,
        handle: 0,
        sector: 2048,
        nr_segments: n,
        indirect_grefs: [0, 1, 0, 0, 0, 0, 0, 0],
    };
    let r = sim.roundtrip(req);
    // The response echoes indirect_op, as Linux blkback does.
    assert_eq!((r.status, r.operation), (Status::OKAY, Operation::WRITE));
    assert_eq!(disk.contents(2048 * 512, data.len()), data);
    // Read back through an indirect read into other pages.
    let rsegs: Vec<_> = (0..u32::from(n)).map(|i| seg(10 + i, 0, 0)).collect();
    let rind = encode_indirect_segments(&rsegs);
    sim.grants.write(2, 0, &rind[..4096]);
    sim.grants.write(3, 0, &rind[4096..]);
    let req = Request::Indirect {
        kind: RwKind::Read,
        id: 100,
        handle: 0,
        sector: 2048,
        nr_segments: n,
        indirect_grefs: [2, 3, 0, 0, 0, 0, 0, 0],
    };
    assert_eq!(sim.roundtrip(req).status, Status::OKAY);
    for (i, s) in rsegs.iter().enumerate() {
        let mut b = [0u8; 512];
        sim.grants.read(s.gref, 0, &mut b);
        assert_eq!(b[..], data[i * 512..(i + 1) * 512], "segment {i}");
    }
}

#[test]
fn accepts_discard_and_secure_discard() {
    let disk = ram(256, 512);
    let config = BackendConfig {
        discard_secure: true,
        ..cfg(Abi::X86_32)
    };
    let mut sim = start(config, 8, disk.clone());
    sim.grants.write(0, 0, &[0x5A; 4096]);
    assert_eq!(
        sim.roundtrip(rw(RwKind::Write, 1, 16, &[seg(0, 0, 7)]))
            .status,
        Status::OKAY
    );
    let d = Request::Discard {
        id: 2,
        handle: 0,
        sector: 16,
        nr_sectors: 4,
        secure: false,
    };
    let r = sim.roundtrip(d);
    assert_eq!((r.status, r.operation), (Status::OKAY, Operation::DISCARD));
    assert_eq!(disk.contents(16 * 512, 2048), vec![0; 2048]);
    assert_eq!(disk.contents(20 * 512, 2048), vec![0x5A; 2048]);
    let d = Request::Discard {
        id: 3,
        handle: 0,
        sector: 20,
        nr_sectors: 4,
        secure: true,
    };
    assert_eq!(sim.roundtrip(d).status, Status::OKAY);
    assert_eq!(disk.contents(20 * 512, 2048), vec![0; 2048]);
}

#[test]
fn rejects_discard_without_backstore_support() {
    let disk = Arc::new(MemBackstore::with_capabilities(
        64,
        512,
        Capabilities::empty(),
    ));
    let mut sim = start(cfg(Abi::native()), 4, disk);
    let d = Request::Discard {
        id: 5,
        handle: 0,
        sector: 0,
        nr_sectors: 8,
        secure: false,
    };
    assert_eq!(sim.roundtrip(d).status, Status::EOPNOTSUPP);
}

#[test]
fn rejects_writes_to_read_only_device() {
    let disk = ram(64, 512);
    let config = BackendConfig {
        read_only: true,
        ..cfg(Abi::native())
    };
    let mut sim = start(config, 4, disk);
    assert_eq!(
        sim.roundtrip(rw(RwKind::Write, 1, 0, &[seg(0, 0, 7)]))
            .status,
        Status::ERROR
    );
    assert_eq!(
        sim.roundtrip(rw(RwKind::Read, 2, 0, &[seg(0, 0, 7)]))
            .status,
        Status::OKAY
    );
    let d = Request::Discard {
        id: 3,
        handle: 0,
        sector: 0,
        nr_sectors: 1,
        secure: false,
    };
    assert_eq!(sim.roundtrip(d).status, Status::ERROR);
    // A flush without data is harmless on a read-only disk.
    assert_eq!(
        sim.roundtrip(rw(RwKind::Flush, 4, 0, &[])).status,
        Status::OKAY
    );
    let (_, stats, _) = sim.stop();
    assert_eq!(stats.last_error, Some("read-only"));
}

#[test]
fn rejects_misaligned_requests_on_4k_disk() {
    // 512-byte blkif sectors against a 4096-byte logical block size.
    let disk = ram(64, 4096);
    let mut sim = start(cfg(Abi::native()), 4, disk.clone());
    sim.grants.write(0, 0, &pattern(4096, 9));
    assert_eq!(
        sim.roundtrip(rw(RwKind::Write, 1, 8, &[seg(0, 0, 7)]))
            .status,
        Status::OKAY
    );
    assert_eq!(disk.contents(4096, 4096), pattern(4096, 9));
    assert_eq!(
        sim.roundtrip(rw(RwKind::Write, 2, 1, &[seg(0, 0, 7)]))
            .status,
        Status::ERROR
    );
    assert_eq!(
        sim.roundtrip(rw(RwKind::Read, 3, 8, &[seg(0, 0, 3)]))
            .status,
        Status::ERROR
    );
    // 64 blocks of 4 KiB = 512 sectors; the last page is sectors 504..=511.
    assert_eq!(
        sim.roundtrip(rw(RwKind::Read, 4, 504, &[seg(0, 0, 7)]))
            .status,
        Status::OKAY
    );
    assert_eq!(
        sim.roundtrip(rw(RwKind::Read, 5, 512, &[seg(0, 0, 7)]))
            .status,
        Status::ERROR
    );
}

/// A backstore that records the order of operations and completes each
/// write only after a short delay on another thread.
struct Recorder {
    inner: MemBackstore,
    log: Mutex<Vec<String>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

async fn delay(ms: u64) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        let _ = tx.send(());
    });
    let _ = rx.await;
}

impl Recorder {
    fn log(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
}

#[async_trait]
impl Backstore for Recorder {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities() - Capabilities::FUA
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        let n = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(n, Ordering::SeqCst);
        self.log(format!("read-start {offset}"));
        delay(5).await;
        let r = self.inner.read(offset, buf).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.log(format!("read-end {offset}"));
        r
    }
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.log(format!(
            "write-start {offset} fua={}",
            flags.contains(WriteFlags::FUA)
        ));
        delay(10).await;
        let r = self.inner.write(offset, buf, flags).await;
        self.log(format!("write-end {offset}"));
        r
    }
    async fn flush(&self) -> IoResult<()> {
        self.log("flush".into());
        self.inner.flush().await
    }
}

fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder {
        inner: MemBackstore::new(1024, 512),
        log: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
        max_active: AtomicUsize::new(0),
    })
}

#[test]
fn accepts_several_requests_in_flight() {
    let disk = recorder();
    let mut sim = start(cfg(Abi::native()), 16, disk.clone());
    let reqs: Vec<_> = (0..8u64)
        .map(|i| rw(RwKind::Read, i, i * 8, &[seg(i as u32, 0, 7)]))
        .collect();
    sim.submit(&reqs);
    let resp = sim.responses(8);
    assert!(resp.iter().all(|r| r.status == Status::OKAY));
    assert_eq!(
        disk.max_active.load(Ordering::SeqCst),
        8,
        "all eight reads ran at once"
    );
}

#[test]
fn accepts_barrier_and_flush_ordering() {
    let disk = recorder();
    let mut sim = start(cfg(Abi::native()), 16, disk.clone());
    sim.grants.write(0, 0, &[1; 4096]);
    // Two writes, then a barrier with data, then a write, then a flush, then a read.
    sim.submit(&[
        rw(RwKind::Write, 1, 0, &[seg(0, 0, 7)]),
        rw(RwKind::Write, 2, 8, &[seg(0, 0, 7)]),
        rw(RwKind::WriteBarrier, 3, 16, &[seg(0, 0, 7)]),
        rw(RwKind::Write, 4, 24, &[seg(0, 0, 7)]),
        rw(RwKind::Flush, 5, 0, &[]),
        rw(RwKind::Read, 6, 0, &[seg(1, 0, 7)]),
    ]);
    let resp = sim.responses(6);
    assert!(resp.iter().all(|r| r.status == Status::OKAY), "{resp:?}");
    let log = disk.log.lock().unwrap().clone();
    let pos = |s: &str| {
        log.iter()
            .position(|l| l == s)
            .unwrap_or_else(|| panic!("{s} missing in {log:?}"))
    };
    // The barrier's flush comes after both earlier writes completed, its
    // data is written with FUA and followed by a flush (no native FUA), and
    // the later write starts only after the barrier completed.
    let first_flush = pos("flush");
    assert!(
        pos("write-end 0") < first_flush && pos("write-end 4096") < first_flush,
        "{log:?}"
    );
    assert!(first_flush < pos("write-start 8192 fua=true"));
    assert!(
        pos("write-end 8192") < pos("write-start 12288 fua=false"),
        "{log:?}"
    );
    // The flush waits for the write before it; the read waits for the flush.
    let last_flush = log.iter().rposition(|l| l == "flush").unwrap();
    assert!(
        pos("write-end 12288") < last_flush && last_flush < pos("read-start 0"),
        "{log:?}"
    );
    // Responses in completion order: the barrier (id 3) after ids 1 and 2.
    let order: Vec<u64> = resp.iter().map(|r| r.id).collect();
    let at = |id| order.iter().position(|&x| x == id).unwrap();
    assert!(at(1) < at(3) && at(2) < at(3) && at(3) < at(4) && at(4) < at(5) && at(5) < at(6));
}

#[test]
fn accepts_persistent_grants_bounded_cache() {
    let disk = ram(1024, 512);
    let config = BackendConfig {
        persistent_grants: 4,
        ..cfg(Abi::native())
    };
    let mut sim = start(config, 16, disk.clone());
    // The frontend reuses grants 0..4 for every request.
    for round in 0..20u64 {
        let g = (round % 4) as u32;
        sim.grants.write(g, 0, &pattern(4096, round));
        assert_eq!(
            sim.roundtrip(rw(RwKind::Write, round, round * 8, &[seg(g, 0, 7)]))
                .status,
            Status::OKAY
        );
        assert_eq!(disk.contents(round * 4096, 4096), pattern(4096, round));
    }
    assert_eq!(sim.grants.maps(), 4, "each persistent grant mapped once");
    // Past the capacity, pages are mapped per request and unmapped after.
    assert_eq!(
        sim.roundtrip(rw(RwKind::Read, 100, 0, &[seg(9, 0, 7), seg(10, 0, 7)]))
            .status,
        Status::OKAY
    );
    assert_eq!(sim.grants.maps(), 5);
    assert_eq!(sim.grants.mapped_pages(), 4);
    let (res, _, cached) = sim.stop();
    res.unwrap();
    assert_eq!(cached, 0);
    assert_eq!(
        sim.grants.mapped_pages(),
        0,
        "persistent grants unmapped at disconnect"
    );
}

#[test]
fn accepts_multi_queue_rings_sharing_a_disk() {
    let disk = ram(4096, 512);
    let grants = Arc::new(MemoryGrants::new(64));
    let mut sims: Vec<_> = (0..4)
        .map(|_| {
            start_with(
                cfg(Abi::native()),
                Arc::clone(&grants),
                disk.clone(),
                2,
                |b| b,
            )
        })
        .collect();
    assert_eq!(sims[0].front.size(), 64, "two-page rings");
    let threads: Vec<_> = sims
        .drain(..)
        .enumerate()
        .map(|(q, mut sim)| {
            std::thread::spawn(move || {
                let g = q as u32 * 8;
                for i in 0..200u64 {
                    let sector = (q as u64 * 1000) + (i % 100) * 8;
                    sim.grants.write(g, 0, &pattern(4096, i + q as u64 * 1000));
                    assert_eq!(
                        sim.roundtrip(rw(RwKind::Write, i, sector, &[seg(g, 0, 7)]))
                            .status,
                        Status::OKAY
                    );
                    assert_eq!(
                        sim.roundtrip(rw(RwKind::Read, i, sector, &[seg(g + 1, 0, 7)]))
                            .status,
                        Status::OKAY
                    );
                    let mut b = vec![0u8; 4096];
                    sim.grants.read(g + 1, 0, &mut b);
                    assert_eq!(b, pattern(4096, i + q as u64 * 1000));
                }
                sim.stop().0.unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn engine_disk() -> (Arc<Target>, EnginePassThrough, Arc<MemBackstore>) {
    let disk = ram(2048, 512);
    let target = Target::new(TargetConfig::default());
    target.add_lun(0, LuConfig::new(disk.clone())).unwrap();
    let nexus = target.add_nexus(NexusInfo {
        initiator_port: "blkif-frontend-1".into(),
        target_port: "tgtkit-blkback".into(),
        relative_port: 1,
        transport_id: Vec::new(),
    });
    let pt = EnginePassThrough::new(Arc::clone(&target), nexus, Lun::from_index(0).unwrap());
    (target, pt, disk)
}

struct Scsi {
    cdb: Vec<u8>,
    dir: u8,
    len: usize,
}

/// Send one extra request: data in page 10, CDB in page 20, sense in 21.
fn extra_roundtrip(sim: &mut common::Sim, id: u64, s: &Scsi) -> (Status, u8, Vec<u8>, u32) {
    sim.grants.write(20, 0, &s.cdb);
    let segs = if s.len > 0 {
        vec![seg(10, 0, 7)]
    } else {
        vec![]
    };
    let op = if s.dir == 1 {
        RwKind::Write
    } else {
        RwKind::Read
    };
    let req = Request::ReadWrite {
        kind: op,
        id,
        handle: 0,
        sector: 0,
        segments: tgtkit_blkif::request::SegmentList::new(&segs).unwrap(),
        extra: true,
    };
    let mut slot = [0u8; 112];
    req.encode(sim.abi, &mut slot);
    let extra = RawExtraRequest {
        extra_type: 1,
        flags: 0,
        cmd_len: U16::new(s.cdb.len() as u16),
        cmd_gref: U32::new(20),
        nr_segments: U16::new(segs.len() as u16),
        last_seg_len: U16::new(s.len as u16),
        sense_gref: U32::new(21),
        data_dir: s.dir,
        _reserved: [0; 3],
    };
    let mut ex = [0u8; 112];
    ex[..20].copy_from_slice(extra.as_bytes());
    let n = sim.abi.entry_size();
    sim.submit_raw(&[&slot[..n], &ex[..n]]);
    let rs = sim.raw_responses(2);
    let main = tgtkit_blkif::Response::decode(sim.abi, &rs[0]).unwrap();
    assert_eq!(main.id, id);
    assert_eq!(main.operation.0, op as u8 | 0x80);
    assert_eq!(rs[1][0], 1, "extra response type");
    let sense_len = usize::from(u16::from_le_bytes([rs[1][2], rs[1][3]]));
    let mut sense = vec![0u8; sense_len];
    sim.grants.read(21, 0, &mut sense);
    (
        main.status,
        rs[1][1],
        sense,
        u32::from_le_bytes(rs[1][4..8].try_into().unwrap()),
    )
}

#[test]
fn accepts_extra_request_scsi_pass_through() {
    let (_target, pt, disk) = engine_disk();
    let config = BackendConfig {
        extra_request: true,
        ..cfg(Abi::X86_32)
    };
    let pt = Arc::new(pt);
    let mut sim = start_with(
        config,
        Arc::new(MemoryGrants::new(32)),
        disk.clone(),
        1,
        move |b| b.with_passthrough(pt),
    );
    // INQUIRY, allocation length 96 (SPC-4 §6.6).
    let (st, scsi, _, resid) = extra_roundtrip(
        &mut sim,
        1,
        &Scsi {
            cdb: vec![0x12, 0, 0, 0, 96, 0],
            dir: 2,
            len: 96,
        },
    );
    assert_eq!((st, scsi), (Status::OKAY, 0));
    let mut inq = [0u8; 96];
    sim.grants.read(10, 0, &mut inq);
    assert_eq!(inq[0] & 0x1f, 0, "direct-access block device");
    assert!(resid <= 96);
    // Clear the power-on unit attention with TEST UNIT READY.
    for _ in 0..3 {
        let (_, scsi, _, _) = extra_roundtrip(
            &mut sim,
            2,
            &Scsi {
                cdb: vec![0; 6],
                dir: 0,
                len: 0,
            },
        );
        if scsi == 0 {
            break;
        }
    }
    // READ CAPACITY(10): last LBA 2047, block 512 (SBC-4 §5.20).
    let (_, scsi, _, _) = extra_roundtrip(
        &mut sim,
        3,
        &Scsi {
            cdb: vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dir: 2,
            len: 8,
        },
    );
    assert_eq!(scsi, 0);
    let mut cap = [0u8; 8];
    sim.grants.read(10, 0, &mut cap);
    assert_eq!(cap, [0, 0, 0x07, 0xff, 0, 0, 2, 0]);
    // WRITE(10) one block at LBA 5 through the pass-through.
    sim.grants.write(10, 0, &[0xC3; 512]);
    let (_, scsi, _, _) = extra_roundtrip(
        &mut sim,
        4,
        &Scsi {
            cdb: vec![0x2a, 0, 0, 0, 0, 5, 0, 0, 1, 0],
            dir: 1,
            len: 512,
        },
    );
    assert_eq!(scsi, 0);
    assert_eq!(disk.contents(5 * 512, 512), vec![0xC3; 512]);
    // An unknown opcode: CHECK CONDITION, ILLEGAL REQUEST sense in the sense page.
    let (st, scsi, sense, _) = extra_roundtrip(
        &mut sim,
        5,
        &Scsi {
            cdb: vec![0xff, 0, 0, 0, 0, 0],
            dir: 0,
            len: 0,
        },
    );
    assert_eq!((st, scsi), (Status::OKAY, 2));
    assert!(sense.len() >= 8, "sense returned");
    let key = if sense[0] & 0x7f >= 0x72 {
        sense[1]
    } else {
        sense[2]
    } & 0x0f;
    assert_eq!(key, 5, "ILLEGAL REQUEST");
}

#[test]
fn rejects_extra_request_without_negotiation_or_passthrough() {
    let disk = ram(64, 512);
    let mut sim = start(cfg(Abi::native()), 32, disk.clone());
    let mut slot = [0u8; 112];
    rw(RwKind::Read, 1, 0, &[seg(0, 0, 7)]).encode(sim.abi, &mut slot);
    slot[0] |= 0x80;
    sim.submit_raw(&[&slot]);
    assert_eq!(sim.responses(1)[0].status, Status::ERROR);
    sim.stop().0.unwrap();
    // Negotiated, but no SCSI unit attached: EOPNOTSUPP, and the extra slot
    // is answered too.
    let config = BackendConfig {
        extra_request: true,
        ..cfg(Abi::native())
    };
    let mut sim = start(config, 32, disk);
    let (st, _, _, _) = extra_roundtrip(
        &mut sim,
        9,
        &Scsi {
            cdb: vec![0x12, 0, 0, 0, 36, 0],
            dir: 2,
            len: 36,
        },
    );
    assert_eq!(st, Status::EOPNOTSUPP);
}

/// A backstore whose reads at offset 0 wait until the test opens the gate;
/// it counts the other reads it has finished.
struct Gate {
    inner: MemBackstore,
    open: Arc<(Mutex<bool>, std::sync::Condvar)>,
    other_reads: AtomicUsize,
}

#[async_trait]
impl Backstore for Gate {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        if offset == 0 {
            let gate = Arc::clone(&self.open);
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let (m, cv) = &*gate;
                let mut g = m.lock().unwrap();
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while !*g && std::time::Instant::now() < deadline {
                    g = cv.wait_timeout(g, Duration::from_millis(10)).unwrap().0;
                }
                let _ = tx.send(());
            });
            let _ = rx.await;
            return self.inner.read(offset, buf).await;
        }
        let r = self.inner.read(offset, buf).await;
        self.other_reads.fetch_add(1, Ordering::SeqCst);
        r
    }
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.inner.write(offset, buf, flags).await
    }
    async fn flush(&self) -> IoResult<()> {
        self.inner.flush().await
    }
}

#[test]
fn accepts_new_requests_while_io_is_in_flight() {
    let open = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let disk = Arc::new(Gate {
        inner: MemBackstore::new(64, 512),
        open: Arc::clone(&open),
        other_reads: AtomicUsize::new(0),
    });
    let mut sim = start(
        cfg(Abi::native()),
        4,
        Arc::clone(&disk) as Arc<dyn Backstore>,
    );
    sim.submit(&[rw(RwKind::Read, 1, 0, &[seg(0, 0, 7)])]);
    std::thread::sleep(Duration::from_millis(50));
    // The frontend kicks only if req_event asks for it (ring.h); the
    // backend must have re-armed it while request 1 is still blocked.
    sim.submit(&[rw(RwKind::Read, 2, 8, &[seg(1, 0, 7)])]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while disk.other_reads.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "second request not served while the first is in flight"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Its response waits for the first one's: responses go out in request
    // order, so a restarted backend can resume the ring.
    std::thread::sleep(Duration::from_millis(20));
    let mut slot = [0u8; 16];
    assert!(!sim
        .front
        .next_response(&mut slot[..Abi::native().response_size()])
        .unwrap());
    *open.0.lock().unwrap() = true;
    open.1.notify_all();
    let ids: Vec<u64> = sim.responses(2).iter().map(|r| r.id).collect();
    assert_eq!(ids, [1, 2]);
}

/// Writes never complete (a backend process killed with them in flight);
/// reads are served.
struct Stuck(MemBackstore);

#[async_trait]
impl Backstore for Stuck {
    fn geometry(&self) -> Geometry {
        self.0.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        self.0.read(offset, buf).await
    }
    async fn write(&self, _: u64, _: DataBuffer, _: WriteFlags) -> IoResult<()> {
        futures::future::pending().await
    }
    async fn flush(&self) -> IoResult<()> {
        self.0.flush().await
    }
}

/// A backstore whose reads only complete on the synchronous fast path (its
/// read future never finishes); writes go the usual way.
struct FastOnly(MemBackstore);

#[async_trait]
impl Backstore for FastOnly {
    fn geometry(&self) -> Geometry {
        self.0.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn read(&self, _: u64, _: DataBuffer) -> IoResult<()> {
        futures::future::pending().await
    }
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.0.write(offset, buf, flags).await
    }
    async fn flush(&self) -> IoResult<()> {
        self.0.flush().await
    }
    fn read_nowait(&self, offset: u64, buf: &DataBuffer) -> Option<IoResult<()>> {
        self.0.read_nowait(offset, buf)
    }
}

/// Reads take the backstore's synchronous fast path when it offers one.
#[test]
fn accepts_reads_on_the_backstore_fast_path() {
    let config = cfg(Abi::native());
    let disk = Arc::new(FastOnly(MemBackstore::new(64, 512)));
    let mut sim = common::start(config, 4, disk as Arc<dyn Backstore>);
    sim.grants.write(0, 0, &pattern(4096, 3));
    let r = sim.roundtrip(rw(RwKind::Write, 1, 8, &[seg(0, 0, 7)]));
    assert_eq!(r.status, Status::OKAY);
    let r = sim.roundtrip(rw(RwKind::Read, 2, 8, &[seg(1, 0, 7)]));
    assert_eq!(r.status, Status::OKAY);
    let mut page = vec![0u8; 4096];
    sim.grants.read(1, 0, &mut page);
    assert_eq!(page, pattern(4096, 3));
    assert!(sim.stop().0.is_ok());
}

/// A backend killed after publishing a response but before kicking: the
/// frontend was never told, and its `rsp_event` still asks for a kick at
/// that response. The restarted backend kicks once on its own.
#[test]
fn accepts_restart_after_a_published_response_the_frontend_was_never_told_of() {
    let config = cfg(Abi::native());
    let grants = Arc::new(MemoryGrants::new(4));
    let ring = tgtkit_xen_ring::RingMemory::anonymous(1).unwrap();
    let mut front =
        tgtkit_xen_ring::FrontRing::init(ring.clone(), config.abi.entry_size()).unwrap();
    let mut slot = [0u8; 112];
    rw(RwKind::Read, 1, 0, &[seg(0, 0, 7)]).encode(config.abi, &mut slot);
    front
        .push_request(&slot[..config.abi.entry_size()])
        .unwrap();
    let _kick = front.push_requests_and_check_notify();
    {
        let disk = Arc::new(MemBackstore::new(64, 512));
        let mut first = BlkifBackend::new(ring.clone(), config, Arc::clone(&grants), disk).unwrap();
        first.poll_ring().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while first.in_flight() > 0 {
            // Published; the kick it asks for dies with the process.
            let _owed = first.complete_ready();
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let sim = common::resume(
        config,
        ring,
        front,
        Arc::clone(&grants),
        ram(64, 512) as Arc<dyn Backstore>,
    );
    // No request is pending: only the unasked kick can wake the frontend.
    assert!(
        sim.ev.to_front.wait_timeout(Duration::from_secs(5)),
        "the restarted backend never kicked the frontend"
    );
    let mut sim = sim;
    let rs = sim.responses(1);
    assert_eq!((rs[0].id, rs[0].status), (1, Status::OKAY));
    assert!(sim.stop().0.is_ok());
}

#[test]
fn accepts_restart_on_a_ring_a_killed_backend_served() {
    let config = cfg(Abi::native());
    let grants = Arc::new(MemoryGrants::new(4));
    let disk = ram(64, 512);
    let ring = tgtkit_xen_ring::RingMemory::anonymous(1).unwrap();
    let mut front =
        tgtkit_xen_ring::FrontRing::init(ring.clone(), config.abi.entry_size()).unwrap();
    grants.write(1, 0, &pattern(4096, 7));
    // Read 1 is answered; write 2 reaches the disk but never completes;
    // read 3 completes behind it. Then the backend process dies.
    for req in [
        rw(RwKind::Read, 1, 0, &[seg(0, 0, 7)]),
        rw(RwKind::Write, 2, 8, &[seg(1, 0, 7)]),
        rw(RwKind::Read, 3, 16, &[seg(2, 0, 7)]),
    ] {
        let mut slot = [0u8; 112];
        req.encode(config.abi, &mut slot);
        front
            .push_request(&slot[..config.abi.entry_size()])
            .unwrap();
    }
    let _kick = front.push_requests_and_check_notify();
    {
        let stuck = Arc::new(Stuck(MemBackstore::new(64, 512)));
        let mut first =
            BlkifBackend::new(ring.clone(), config, Arc::clone(&grants), stuck).unwrap();
        first.poll_ring().unwrap();
        first.complete_ready();
        assert_eq!(first.in_flight(), 1);
    }
    let mut slot = [0u8; 16];
    let mut answered = Vec::new();
    while front
        .next_response(&mut slot[..config.abi.response_size()])
        .unwrap()
    {
        answered.push(Response::decode(config.abi, &slot).unwrap().id);
    }
    assert_eq!(
        answered,
        [1],
        "only the read before the stuck write is answered"
    );
    // The restarted backend serves what the first never answered, once.
    let mut sim = common::resume(
        config,
        ring,
        front,
        Arc::clone(&grants),
        Arc::clone(&disk) as Arc<dyn Backstore>,
    );
    let rs = sim.responses(2);
    assert_eq!(
        rs.iter().map(|r| (r.id, r.status)).collect::<Vec<_>>(),
        [(2, Status::OKAY), (3, Status::OKAY)]
    );
    assert_eq!(disk.contents(8 * 512, 4096), pattern(4096, 7));
    let r = sim.roundtrip(rw(RwKind::Read, 4, 8, &[seg(3, 0, 7)]));
    assert_eq!(r.status, Status::OKAY);
    let mut page = vec![0u8; 4096];
    sim.grants.read(3, 0, &mut page);
    assert_eq!(page, pattern(4096, 7));
    let (result, stats, _) = sim.stop();
    assert!(result.is_ok());
    assert_eq!(stats.ok, 3);
}
