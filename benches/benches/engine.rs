//! The engine's hot path: CDB decoding, and one 4 KiB READ(16) through the
//! engine on a ram backstore beside a bare 4 KiB memcpy, so the engine's
//! overhead reads as a ratio (goal: at most 1.5x the memcpy).
//!
//! `cargo bench -p tgtkit-benches --bench engine` prints both figures and
//! the ratio of their medians at the end. Timings on a shared machine are
//! noisy; `benches/profile.sh` gives the repeatable figure (callgrind
//! instructions per READ, WRITE and bare memcpy, from
//! `benches/examples/engine_loop.rs`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use tgtkit_benches::median_ns;

use criterion::{criterion_group, Criterion};
use tgtkit_backstores::ram::RamBackstore;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::cdb::Cdb;
use tgtkit_scsi_core::engine::{
    Command, LuConfig, NexusInfo, RawCdb, Target, TargetConfig, TaskAttribute,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;

fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x88;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn setup() -> (Arc<Target>, Command) {
    let target = Target::new(TargetConfig::default());
    let ram = RamBackstore::new(64 << 20).expect("ram backstore");
    target
        .add_lun(0, LuConfig::new(Arc::new(ram)))
        .expect("lun");
    let nexus = target.add_nexus(NexusInfo::default());
    let cmd = Command {
        nexus,
        lun: Lun::from_index(0).expect("lun 0"),
        tag: 0,
        attribute: TaskAttribute::Simple,
        cdb: RawCdb::new(&[0; 6]).expect("cdb"),
        data: DataBuffer::zeroed(4096),
    };
    // Write the block once so the read copies real data, and consume the
    // power-on unit attention.
    futures::executor::block_on(target.execute(cmd.clone()));
    let mut write = cmd.clone();
    write.cdb = RawCdb::new(&{
        let mut c = read16(8, 8);
        c[0] = 0x8a;
        c
    })
    .expect("cdb");
    write.data = DataBuffer::from_vec(vec![0x5a; 4096]);
    assert_eq!(
        futures::executor::block_on(target.execute(write)).status,
        Status::GOOD
    );
    let mut read = cmd;
    read.cdb = RawCdb::new(&read16(8, 8)).expect("cdb");
    (target, read)
}

fn benches(c: &mut Criterion) {
    let read = read16(0x1234, 8);
    c.bench_function("cdb_decode_read16", |b| {
        b.iter(|| Cdb::decode(black_box(&read)));
    });
    let inquiry = [0x12u8, 1, 0x83, 0, 0xff, 0];
    c.bench_function("cdb_decode_inquiry_vpd", |b| {
        b.iter(|| Cdb::decode(black_box(&inquiry)));
    });

    let (target, cmd) = setup();
    c.bench_function("engine_read16_4k_ram", |b| {
        b.iter(|| {
            let r = futures::executor::block_on(target.execute(black_box(cmd.clone())));
            debug_assert_eq!(r.status, Status::GOOD);
            r
        });
    });
    let src = vec![0x5au8; 4096];
    let mut dst = vec![0u8; 4096];
    c.bench_function("memcpy_4k", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        });
    });
}

/// The headline figure: the ratio of medians, measured side by side.
fn ratio() {
    let (target, cmd) = setup();
    let engine = median_ns(
        || {
            black_box(futures::executor::block_on(target.execute(cmd.clone())));
        },
        101,
        2000,
    );
    let src = vec![0x5au8; 4096];
    let mut dst = vec![0u8; 4096];
    let memcpy = median_ns(
        || {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        },
        101,
        20000,
    );
    println!("engine READ(16) 4 KiB on ram: median {engine:.0} ns per command");
    println!("bare memcpy 4 KiB:            median {memcpy:.0} ns");
    println!(
        "ratio engine/memcpy:          {:.2}x (goal <= 1.5x)",
        engine / memcpy
    );
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}

fn main() {
    group();
    ratio();
    Criterion::default().configure_from_args().final_summary();
}
