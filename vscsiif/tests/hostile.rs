//! A hostile vscsiif frontend: error responses or an orderly shutdown,
//! never a panic, a hang or an access outside the granted pages.

mod common;

use std::sync::atomic::Ordering;

use common::{cdb, seg, start, Sim};
use proptest::prelude::*;
use tgtkit_vscsiif::request::{result_host, DataSegments, SegmentList};
use tgtkit_vscsiif::{DataDirection, HostByte, Request, VscsiConfig};
use tgtkit_xen_ring::{sring, RingError};
use vm_memory::Bytes;

fn slot(req: &Request) -> [u8; 252] {
    let mut s = [0u8; 252];
    req.encode(&mut s);
    s
}

fn expect(sim: &mut Sim, s: &[u8], host: HostByte) {
    sim.submit_raw(&[s]);
    let r = sim.responses(1)[0];
    assert_eq!(result_host(r.rslt), host, "slot {:?}", &s[..40]);
}

fn inquiry() -> Request {
    cdb(
        1,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        &[seg(0, 0, 36)],
    )
}

#[test]
fn rejects_bad_cdb_lengths_and_directions() {
    let mut sim = start(VscsiConfig::default(), 4);
    let mut s = slot(&inquiry());
    s[3] = 0; // cmd_len 0
    expect(&mut sim, &s, HostByte::ERROR);
    s[3] = 17; // past VSCSIIF_MAX_COMMAND_SIZE
    expect(&mut sim, &s, HostByte::ERROR);
    let mut s = slot(&inquiry());
    s[30] = 9; // sc_data_direction
    expect(&mut sim, &s, HostByte::ERROR);
    s[30] = 3; // DMA_NONE with a segment
    expect(&mut sim, &s, HostByte::ERROR);
}

#[test]
fn rejects_segment_counts_and_ranges() {
    let mut sim = start(
        VscsiConfig {
            sg_grant: 64,
            ..VscsiConfig::default()
        },
        8,
    );
    let mut s = slot(&inquiry());
    s[31] = 27; // nr_segments past VSCSIIF_SG_TABLESIZE
    expect(&mut sim, &s, HostByte::ERROR);
    s[31] = 0x80 | 27;
    expect(&mut sim, &s, HostByte::ERROR);
    // offset + length past the page (Linux scsiback's check).
    let s = slot(&cdb(
        1,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        &[seg(0, 4090, 36)],
    ));
    expect(&mut sim, &s, HostByte::ERROR);
    let s = slot(&cdb(
        1,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        &[seg(0, 0xffff, 0xffff)],
    ));
    expect(&mut sim, &s, HostByte::ERROR);
    // SG pages: length not a multiple of the 8-byte descriptor, or more
    // descriptors than feature-sg-grant allows.
    let granted = |segs: &[tgtkit_vscsiif::request::Segment]| -> [u8; 252] {
        let mut c = [0u8; 16];
        c[..6].copy_from_slice(&[0x12, 0, 0, 0, 36, 0]);
        slot(&Request::Cdb {
            rqid: 1,
            addr: (0, 1, 0),
            cdb: c,
            cmd_len: 6,
            direction: DataDirection::FromDevice,
            segments: DataSegments::Granted(SegmentList::new(segs).unwrap()),
        })
    };
    expect(&mut sim, &granted(&[seg(1, 0, 12)]), HostByte::ERROR);
    expect(
        &mut sim,
        &granted(&[seg(1, 0, 4096), seg(2, 0, 4096)]),
        HostByte::ERROR,
    );
    // Descriptors inside an SG page are validated too.
    sim.grants.write(1, 0, &[0, 0, 0, 0, 0xf0, 0x0f, 0x20, 0]); // offset 4080 len 32
    expect(&mut sim, &granted(&[seg(1, 0, 8)]), HostByte::ERROR);
    assert_eq!(sim.grants.mapped_pages(), 0);
}

#[test]
fn rejects_sg_grant_when_not_advertised() {
    let mut sim = start(
        VscsiConfig {
            sg_grant: 0,
            ..VscsiConfig::default()
        },
        4,
    );
    let mut s = slot(&inquiry());
    s[31] = 0x81;
    expect(&mut sim, &s, HostByte::ERROR);
}

#[test]
fn rejects_refused_grants_and_unknown_actions() {
    let mut sim = start(VscsiConfig::default(), 4);
    sim.grants.refuse(2);
    let s = slot(&cdb(
        1,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        &[seg(2, 0, 36)],
    ));
    expect(&mut sim, &s, HostByte::ERROR);
    let s = slot(&cdb(
        1,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        &[seg(1 << 30, 0, 36)],
    ));
    expect(&mut sim, &s, HostByte::ERROR);
    for act in [0u8, 4, 5, 0xff] {
        let mut s = slot(&inquiry());
        s[2] = act;
        expect(&mut sim, &s, HostByte::ERROR);
    }
    assert_eq!(sim.grants.mapped_pages(), 0);
}

#[test]
fn rejects_index_jump_with_orderly_shutdown() {
    let mut sim = start(VscsiConfig::default(), 4);
    sim.ring
        .as_volatile_slice()
        .store(17u32, sring::REQ_PROD, Ordering::SeqCst)
        .unwrap();
    sim.ev.to_back.ring();
    let (res, _) = sim.join();
    assert!(matches!(
        res,
        Err(tgtkit_vscsiif::backend::Shutdown::Ring(
            RingError::RequestProducerOverflow { size: 16, .. }
        ))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn accepts_garbage_without_panic_or_hang(
        slots in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 252), 1..16),
        steer in any::<bool>(),
    ) {
        let mut sim = start(VscsiConfig::default(), 8);
        let n = slots.len();
        for mut s in slots {
            if steer {
                // Aim at the mapped device so the engine sees random CDBs.
                s[2] = 1; s[22..28].copy_from_slice(&[0, 0, 1, 0, 0, 0]);
            }
            sim.front.push_request(&s).unwrap();
        }
        sim.publish();
        let rs = sim.responses(n);
        prop_assert_eq!(rs.len(), n);
        let (res, _) = sim.stop();
        prop_assert!(res.is_ok());
        prop_assert_eq!(sim.grants.mapped_pages(), 0);
    }
}
