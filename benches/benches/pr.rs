//! What persistent reservations cost: a 4 KiB READ(16) through the engine
//! with no reservation, as the holder of a Write Exclusive reservation, and
//! as a registered non-holder under Write Exclusive – Registrants Only (the
//! conflict check on the hot path), plus PERSISTENT RESERVE OUT REGISTER
//! and READ KEYS with 64 registrations.
//!
//! `cargo bench -p tgtkit-benches --bench pr` prints the medians side by
//! side at the end.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use tgtkit_benches::median_ns;

use criterion::{criterion_group, Criterion};
use tgtkit_backstores::ram::RamBackstore;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    Command, LuConfig, NexusId, NexusInfo, RawCdb, Target, TargetConfig, TaskAttribute,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;

fn run(target: &Target, nexus: NexusId, cdb: &[u8], data: DataBuffer) -> Status {
    futures::executor::block_on(target.execute(Command {
        nexus,
        lun: Lun::from_index(0).expect("lun 0"),
        tag: 0,
        attribute: TaskAttribute::Simple,
        cdb: RawCdb::new(cdb).expect("cdb"),
        data,
    }))
    .status
}

fn prout(target: &Target, nexus: NexusId, sa: u8, ty: u8, key: u64, sa_key: u64) -> Status {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    let cdb = [0x5f, sa, ty, 0, 0, 0, 0, 0, 24, 0];
    run(target, nexus, &cdb, DataBuffer::from_vec(p))
}

const READ16: [u8; 16] = [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0];

/// A target, a holder nexus and a registered non-holder nexus, with
/// reservation type `ty` (0: none) held by the holder.
fn setup(ty: u8) -> (Arc<Target>, NexusId, NexusId) {
    let target = Target::new(TargetConfig::default());
    let ram = RamBackstore::new(64 << 20).expect("ram backstore");
    target
        .add_lun(0, LuConfig::new(Arc::new(ram)))
        .expect("lun");
    let nexus = |i: u32| {
        target.add_nexus(NexusInfo {
            initiator_port: format!("iqn.2026-11.bench:n{i},i,0x00000000000{i}"),
            target_port: "t".into(),
            relative_port: 1,
            transport_id: Vec::new(),
        })
    };
    let (a, b) = (nexus(1), nexus(2));
    for n in [a, b] {
        run(&target, n, &[0; 6], DataBuffer::empty()); // power-on UA
    }
    if ty != 0 {
        assert_eq!(prout(&target, a, 0, 0, 0, 1), Status::GOOD);
        assert_eq!(prout(&target, b, 0, 0, 0, 2), Status::GOOD);
        assert_eq!(prout(&target, a, 1, ty, 1, 0), Status::GOOD);
    }
    (target, a, b)
}

fn benches(c: &mut Criterion) {
    let buf = DataBuffer::zeroed(4096);
    for (name, ty, from_b) in [
        ("read16_4k_no_reservation", 0u8, false),
        ("read16_4k_we_holder", 1, false),
        ("read16_4k_wero_registrant", 5, true),
    ] {
        let (target, a, b) = setup(ty);
        let who = if from_b { b } else { a };
        c.bench_function(name, |bench| {
            bench.iter(|| {
                let s = run(&target, who, black_box(&READ16), buf.clone());
                debug_assert_eq!(s, Status::GOOD);
                s
            });
        });
    }
    let (target, a, _) = setup(0);
    c.bench_function("prout_register_unregister", |bench| {
        bench.iter(|| {
            prout(&target, a, 0, 0, 0, 7);
            prout(&target, a, 0, 0, 7, 0)
        });
    });
    let (target, a, _) = setup(0);
    for i in 0..64u32 {
        let n = target.add_nexus(NexusInfo {
            initiator_port: format!("iqn.2026-11.bench:many{i},i,0x{i:012x}"),
            target_port: "t".into(),
            relative_port: 1,
            transport_id: Vec::new(),
        });
        run(&target, n, &[0; 6], DataBuffer::empty());
        prout(&target, n, 0, 0, 0, u64::from(i) + 100);
    }
    let keys = DataBuffer::zeroed(1024);
    c.bench_function("prin_read_keys_64", |bench| {
        bench.iter(|| run(&target, a, &[0x5e, 0, 0, 0, 0, 0, 0, 4, 0, 0], keys.clone()));
    });
}

fn summary() {
    let buf = DataBuffer::zeroed(4096);
    let mut figures = Vec::new();
    for (name, ty, from_b) in [
        ("no reservation           ", 0u8, false),
        ("Write Exclusive holder   ", 1, false),
        ("WE-RO registered non-holder", 5, true),
    ] {
        let (target, a, b) = setup(ty);
        let who = if from_b { b } else { a };
        let ns = median_ns(
            || {
                black_box(run(&target, who, &READ16, buf.clone()));
            },
            101,
            2000,
        );
        figures.push(ns);
        println!("READ(16) 4 KiB, {name}: median {ns:.0} ns");
    }
    println!(
        "reservation check overhead: holder {:+.0} ns, registrant {:+.0} ns",
        figures[1] - figures[0],
        figures[2] - figures[0]
    );
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = benches
}

fn main() {
    group();
    summary();
    Criterion::default().configure_from_args().final_summary();
}
