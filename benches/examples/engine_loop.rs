//! A fixed loop of 4 KiB READ(16) commands through the engine on a ram
//! backstore, for instruction-level profiling with
//! `valgrind --tool=callgrind target/release/examples/engine_loop [N]`
//! (instruction counts are stable on a noisy machine, unlike timings).

use std::sync::Arc;

use tgtkit_backstores::RamBackstore;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    Command, LuConfig, NexusInfo, RawCdb, Target, TargetConfig, TaskAttribute,
};
use tgtkit_scsi_core::lun::Lun;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let target = Target::new(TargetConfig::default());
    let ram = RamBackstore::new(64 << 20).expect("ram");
    target
        .add_lun(0, LuConfig::new(Arc::new(ram)))
        .expect("lun");
    let nexus = target.add_nexus(NexusInfo::default());
    let mut cdb = [0u8; 16];
    cdb[0] = 0x8a;
    cdb[9] = 8;
    cdb[13] = 8;
    let mut cmd = Command {
        nexus,
        lun: Lun::from_index(0).expect("lun"),
        tag: 0,
        attribute: TaskAttribute::Simple,
        cdb: RawCdb::new(&[0; 6]).expect("cdb"),
        data: DataBuffer::from_vec(vec![0x5a; 4096]),
    };
    futures::executor::block_on(target.execute(cmd.clone()));
    cmd.cdb = RawCdb::new(&cdb).expect("cdb");
    futures::executor::block_on(target.execute(cmd.clone()));
    cdb[0] = 0x88;
    cmd.cdb = RawCdb::new(&cdb).expect("cdb");
    for _ in 0..n {
        std::hint::black_box(futures::executor::block_on(target.execute(cmd.clone())));
    }
}
