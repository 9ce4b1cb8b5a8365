//! A fixed loop of 4 KiB commands through the engine on a ram backstore,
//! for instruction-level profiling with
//! `valgrind --tool=callgrind target/release/examples/engine_loop [N] [MODE]`
//! (instruction counts are stable on a noisy machine, unlike timings).
//!
//! MODE is `read` (READ(16), the default), `write` (WRITE(16)) or `memcpy`
//! (a bare 4 KiB copy, the baseline the engine is measured against). Run
//! it with two values of N and divide the difference in instructions by
//! the difference in N to get the cost of one command, without the set-up.

use std::sync::Arc;

use tgtkit_backstores::RamBackstore;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    Command, LuConfig, NexusInfo, RawCdb, Target, TargetConfig, TaskAttribute,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let mode = args.next().unwrap_or_else(|| "read".into());
    if mode == "memcpy" {
        let src = vec![0x5au8; 4096];
        let mut dst = vec![0u8; 4096];
        for _ in 0..n {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        return;
    }
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
    // Consume the power-on unit attention, then write the block once.
    futures::executor::block_on(target.execute(cmd.clone()));
    cmd.cdb = RawCdb::new(&cdb).expect("cdb");
    let r = futures::executor::block_on(target.execute(cmd.clone()));
    assert_eq!(r.status, Status::GOOD);
    if mode != "write" {
        cdb[0] = 0x88;
        cmd.cdb = RawCdb::new(&cdb).expect("cdb");
    }
    if std::env::var_os("SIZES").is_some() {
        let size = std::mem::size_of_val(&target.execute(cmd.clone()));
        eprintln!("execute future: {size} bytes");
    }
    for _ in 0..n {
        std::hint::black_box(futures::executor::block_on(target.execute(cmd.clone())));
    }
}
