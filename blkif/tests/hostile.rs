//! A hostile frontend: every fault ends in an error response or an orderly
//! shutdown with a logged reason; never a panic, a hang, or an access
//! outside the granted pages; other rings keep working.
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{rw, seg, start, start_with, Sim};
use proptest::prelude::*;
use tgtkit_blkif::request::RwKind;
use tgtkit_blkif::testing::MemoryGrants;
use tgtkit_blkif::wire::RawExtraRequest;
use tgtkit_blkif::{Abi, BackendConfig, Request, Shutdown, Status};
use tgtkit_scsi_core::test_utils::MemBackstore;
use tgtkit_xen_ring::{sring, RingError};
use vm_memory::Bytes;
use zerocopy::little_endian::{U16, U32};
use zerocopy::IntoBytes;

fn disk() -> Arc<MemBackstore> {
    Arc::new(MemBackstore::new(1024, 512))
}

fn native() -> BackendConfig {
    BackendConfig::default()
}

fn poke(sim: &Sim, off: usize, v: u32) {
    sim.ring
        .as_volatile_slice()
        .store(v, off, Ordering::SeqCst)
        .unwrap();
}

/// A slot with the given bytes patched over a valid read request.
fn slot_with(patch: &[(usize, &[u8])]) -> [u8; 112] {
    let mut slot = [0u8; 112];
    rw(RwKind::Read, 0x77, 0, &[seg(0, 0, 7)]).encode(Abi::X86_64, &mut slot);
    for (at, bytes) in patch {
        slot[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
    slot
}

fn expect_error(sim: &mut Sim, slot: &[u8], want: Status) {
    sim.submit_raw(&[slot]);
    let r = sim.responses(1)[0];
    assert_eq!((r.id, r.status), (0x77, want), "slot {:?}", &slot[..32]);
}

#[test]
fn rejects_request_index_jump_and_keeps_other_rings_working() {
    let d = disk();
    let mut bad = start(native(), 4, d.clone());
    let mut good = start(native(), 4, d.clone());
    // ring.h RING_REQUEST_PROD_OVERFLOW: req_prod 33 ahead on a 32-slot ring.
    poke(&bad, sring::REQ_PROD, 33);
    bad.ev.to_back.ring();
    let (res, _, _) = bad.join();
    assert!(matches!(
        res,
        Err(Shutdown::Ring(RingError::RequestProducerOverflow {
            prod: 33,
            ..
        }))
    ));
    // The other ring on the same disk is unaffected.
    assert_eq!(
        good.roundtrip(rw(RwKind::Read, 0x77, 0, &[seg(0, 0, 7)]))
            .status,
        Status::OKAY
    );
    good.stop().0.unwrap();
}

#[test]
fn rejects_request_index_rewind() {
    let mut sim = start(native(), 4, disk());
    for i in 0..3 {
        assert_eq!(
            sim.roundtrip(rw(RwKind::Read, 0x77, i, &[seg(0, 0, 7)]))
                .status,
            Status::OKAY
        );
    }
    poke(&sim, sring::REQ_PROD, 1);
    sim.ev.to_back.ring();
    let (res, stats, _) = sim.join();
    assert_eq!(
        res,
        Err(Shutdown::Ring(RingError::RequestProducerRewound {
            prod: 1,
            cons: 3
        }))
    );
    assert_eq!(stats.ok, 3);
}

#[test]
fn rejects_index_jump_with_requests_in_flight_after_answering_them() {
    let mut sim = start(native(), 4, disk());
    sim.submit(&[rw(RwKind::Read, 0x77, 0, &[seg(0, 0, 7)])]);
    poke(&sim, sring::REQ_PROD, 0x8000_0000);
    sim.ev.to_back.ring();
    let (res, _, _) = sim.join();
    assert!(res.is_err());
    assert_eq!(
        sim.grants.mapped_pages(),
        0,
        "in-flight mappings released at shutdown"
    );
}

#[test]
fn rejects_too_many_segments() {
    let mut sim = start(native(), 4, disk());
    // nr_segments 12 > BLKIF_MAX_SEGMENTS_PER_REQUEST (io/blkif.h).
    expect_error(&mut sim, &slot_with(&[(1, &[12])]), Status::ERROR);
    expect_error(&mut sim, &slot_with(&[(1, &[255])]), Status::ERROR);
    // A read with no segments (Linux blkback: nseg == 0 is an error).
    expect_error(&mut sim, &slot_with(&[(1, &[0])]), Status::ERROR);
}

#[test]
fn rejects_bad_sector_ranges_in_segments() {
    let mut sim = start(native(), 4, disk());
    // seg[0] at 24: gref 0..4, first_sect at 28, last_sect at 29.
    expect_error(&mut sim, &slot_with(&[(28, &[5, 2])]), Status::ERROR); // first > last
    expect_error(&mut sim, &slot_with(&[(28, &[0, 8])]), Status::ERROR); // past the page
    expect_error(&mut sim, &slot_with(&[(28, &[9, 255])]), Status::ERROR);
    let (_, stats, _) = sim.stop();
    assert_eq!(stats.last_error, Some("bad segment"));
    assert_eq!(
        sim.grants.maps(),
        0,
        "nothing mapped for a malformed request"
    );
}

#[test]
fn rejects_sectors_past_the_end() {
    let mut sim = start(native(), 4, disk());
    // 1024 sectors: 1020 + 8 reaches past the end.
    expect_error(
        &mut sim,
        &slot_with(&[(16, &1020u64.to_le_bytes())]),
        Status::ERROR,
    );
    expect_error(
        &mut sim,
        &slot_with(&[(16, &u64::MAX.to_le_bytes())]),
        Status::ERROR,
    );
    let d = Request::Discard {
        id: 0x77,
        handle: 0,
        sector: 1,
        nr_sectors: u64::MAX,
        secure: false,
    };
    assert_eq!(sim.roundtrip(d).status, Status::ERROR);
    // A flush without data ignores its sector number, whatever it is.
    assert_eq!(
        sim.roundtrip(rw(RwKind::Flush, 0x77, u64::MAX, &[])).status,
        Status::OKAY
    );
    let (_, stats, _) = sim.stop();
    assert_eq!(stats.last_error, Some("out of range"));
}

#[test]
fn rejects_indirect_segment_counts_past_the_limit() {
    let config = BackendConfig {
        max_indirect_segments: 32,
        ..native()
    };
    let mut sim = start(config, 16, disk());
    let ind = |n: u16, op: u8| {
        let mut s = [0u8; 112];
        Request::Indirect {
            kind: RwKind::Read,
            id: 0x77,
            handle: 0,
            sector: 0,
            nr_segments: n,
            indirect_grefs: [1; 8],
        }
        .encode(Abi::X86_64, &mut s);
        s[1] = op;
        s
    };
    expect_error(&mut sim, &ind(33, 0), Status::ERROR); // past the advertised 32
    expect_error(&mut sim, &ind(4097, 0), Status::ERROR); // past 8 pages of 512
    expect_error(&mut sim, &ind(u16::MAX, 0), Status::ERROR);
    expect_error(&mut sim, &ind(0, 0), Status::ERROR);
    expect_error(&mut sim, &ind(4, 3), Status::ERROR); // indirect_op FLUSH
    expect_error(&mut sim, &ind(4, 6), Status::ERROR); // indirect_op INDIRECT
                                                       // Segments inside the indirect page are validated too.
    sim.grants.write(1, 0, &[0, 0, 0, 0, 6, 1, 0, 0]); // gref 0, first 6 > last 1
    expect_error(&mut sim, &ind(1, 0), Status::ERROR);
    // Indirect not advertised at all.
    let mut sim = start(
        BackendConfig {
            max_indirect_segments: 0,
            ..native()
        },
        4,
        disk(),
    );
    expect_error(&mut sim, &ind(1, 0), Status::ERROR);
}

#[test]
fn rejects_unknown_operations() {
    let mut sim = start(native(), 4, disk());
    for op in [4u8, 7, 8, 0x40, 0x7f, 0x80, 0x85, 0xff] {
        expect_error(&mut sim, &slot_with(&[(0, &[op])]), Status::ERROR);
    }
    let (_, stats, _) = sim.stop();
    assert_eq!(stats.failed, 8);
}

#[test]
fn rejects_grant_refs_the_grant_layer_refuses() {
    let mut sim = start(
        BackendConfig {
            max_indirect_segments: 32,
            ..native()
        },
        8,
        disk(),
    );
    sim.grants.refuse(3);
    sim.grants.grant_read_only(4);
    // A refused data page, a reference outside the table, a read-only page
    // for a read (the backend must write into it).
    expect_error(
        &mut sim,
        &rw_slot(RwKind::Read, &[seg(0, 0, 7), seg(3, 0, 7)]),
        Status::ERROR,
    );
    expect_error(
        &mut sim,
        &rw_slot(RwKind::Write, &[seg(u32::MAX, 0, 7)]),
        Status::ERROR,
    );
    expect_error(
        &mut sim,
        &rw_slot(RwKind::Read, &[seg(4, 0, 7)]),
        Status::ERROR,
    );
    // Read-only is fine for a write.
    assert_eq!(
        sim.roundtrip(rw(RwKind::Write, 0x77, 0, &[seg(4, 0, 7)]))
            .status,
        Status::OKAY
    );
    // A refused indirect page.
    let mut s = [0u8; 112];
    Request::Indirect {
        kind: RwKind::Read,
        id: 0x77,
        handle: 0,
        sector: 0,
        nr_segments: 1,
        indirect_grefs: [3; 8],
    }
    .encode(Abi::X86_64, &mut s);
    expect_error(&mut sim, &s, Status::ERROR);
    let (_, stats, _) = sim.stop();
    assert_eq!(stats.last_error, Some("grant refused"));
    assert_eq!(sim.grants.mapped_pages(), 0, "partial maps are not leaked");
}

fn rw_slot(kind: RwKind, segs: &[tgtkit_blkif::request::Segment]) -> [u8; 112] {
    let mut s = [0u8; 112];
    rw(kind, 0x77, 0, segs).encode(Abi::X86_64, &mut s);
    s
}

#[test]
fn rejects_extra_requests_with_lengths_past_their_buffers() {
    let config = BackendConfig {
        extra_request: true,
        ..native()
    };
    struct Echo;
    impl tgtkit_blkif::passthrough::ScsiPassThrough for Echo {
        fn execute(
            &self,
            _cdb: &[u8],
            data: tgtkit_scsi_core::buffer::DataBuffer,
            _dir: tgtkit_blkif::passthrough::DataDirection,
        ) -> futures::future::BoxFuture<'static, tgtkit_blkif::passthrough::PassThroughResult>
        {
            // A device returning oversized sense: capped at 252 bytes.
            let len = data.len() as u32;
            Box::pin(async move {
                tgtkit_blkif::passthrough::PassThroughResult {
                    status: 2,
                    sense: vec![0x70; 1000],
                    residual: len,
                }
            })
        }
    }
    let mut sim = start_with(config, Arc::new(MemoryGrants::new(8)), disk(), 1, |b| {
        b.with_passthrough(Arc::new(Echo))
    });
    let send = |sim: &mut Sim, ex: RawExtraRequest, segs: &[tgtkit_blkif::request::Segment]| {
        let mut s = rw_slot(RwKind::Read, segs);
        s[0] |= 0x80;
        let mut e = [0u8; 112];
        e[..20].copy_from_slice(ex.as_bytes());
        sim.submit_raw(&[&s, &e]);
        let rs = sim.raw_responses(2);
        (
            tgtkit_blkif::Response::decode(Abi::X86_64, &rs[0])
                .unwrap()
                .status,
            rs[1],
        )
    };
    let good = RawExtraRequest {
        extra_type: 1,
        flags: 0,
        cmd_len: U16::new(6),
        cmd_gref: U32::new(5),
        nr_segments: U16::new(1),
        last_seg_len: U16::new(512),
        sense_gref: U32::new(6),
        data_dir: 2,
        _reserved: [0; 3],
    };
    let one = [seg(0, 0, 0)];
    let (st, ex) = send(&mut sim, good, &one);
    assert_eq!(st, Status::OKAY);
    assert_eq!(
        u16::from_le_bytes([ex[2], ex[3]]),
        252,
        "sense capped at 252 bytes"
    );
    for bad in [
        RawExtraRequest {
            cmd_len: U16::new(0),
            ..good
        },
        RawExtraRequest {
            cmd_len: U16::new(33),
            ..good
        },
        RawExtraRequest {
            last_seg_len: U16::new(513),
            ..good
        }, // past the segment's one sector
        RawExtraRequest {
            last_seg_len: U16::new(0),
            ..good
        },
        RawExtraRequest {
            nr_segments: U16::new(2),
            ..good
        },
        RawExtraRequest {
            extra_type: 9,
            ..good
        },
        RawExtraRequest {
            data_dir: 7,
            ..good
        },
        RawExtraRequest {
            cmd_gref: U32::new(1 << 20),
            ..good
        },
    ] {
        let (st, _) = send(&mut sim, bad, &one);
        assert_eq!(st, Status::ERROR, "{bad:?}");
    }
    // A refused sense page: the command ran but its sense could not be
    // delivered, so the request fails.
    sim.grants.refuse(6);
    let (st, _) = send(&mut sim, good, &one);
    assert_eq!(st, Status::ERROR);
    assert_eq!(sim.grants.mapped_pages(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Arbitrary slot contents and producer indices: the backend answers
    /// every slot it consumes or shuts down, and never panics or hangs.
    #[test]
    fn accepts_garbage_without_panic_or_hang(
        slots in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 112), 1..32),
        jump in proptest::option::of(any::<u32>()),
    ) {
        let config = BackendConfig { max_indirect_segments: 64, extra_request: true, persistent_grants: 2, ..native() };
        let mut sim = start(config, 16, disk());
        let n = slots.len();
        for s in &slots {
            sim.front.push_request(s).unwrap();
        }
        sim.publish();
        if let Some(j) = jump {
            poke(&sim, sring::REQ_PROD, j);
            sim.ev.to_back.ring();
        }
        // Give the backend time to consume, then stop it; it must stop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = 0;
        if jump.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        while jump.is_none() && std::time::Instant::now() < deadline && got < n {
            let mut b = [0u8; 16];
            if sim.front.next_response(&mut b).unwrap_or(false) { got += 1 } else { std::thread::sleep(std::time::Duration::from_millis(1)) }
        }
        let (res, _, _) = sim.stop();
        if jump.is_none() {
            prop_assert!(res.is_ok());
            prop_assert_eq!(got, n);
        }
        prop_assert_eq!(sim.grants.mapped_pages(), 0);
    }
}
