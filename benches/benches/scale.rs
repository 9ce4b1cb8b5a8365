//! Does the engine stay flat as a target grows? 64 logical units, each
//! seen by 16 nexuses, every nexus registered with a persistent
//! reservation key on every unit and a Write Exclusive – Registrants Only
//! reservation held on each, against one unit and one nexus with none.
//!
//! `cargo bench -p tgtkit-benches --bench scale` runs the two criterion
//! benches, then prints the headline figures (issue 13, goal 4):
//!
//! * per-command cost of a 4 KiB READ(16) rotating over all 1,024 I_T_L
//!   nexuses against the single-unit figure, as medians of alternating
//!   rounds and their `ratio=` (goal: at most 1.2x);
//! * allocations per warm READ at that scale (kept at zero);
//! * the engine's heap per idle logical unit, per nexus on 64 units and
//!   per registration (goal: at most 64 KiB per idle unit), counted by a
//!   global allocator that tracks live bytes. The backstore's own memory
//!   (the ram disk) is allocated before counting starts and is not part
//!   of the figure.
//!
//! The per-session memory of the iSCSI target is measured on the real
//! binary by `scripts/bench-scale.sh`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use tgtkit_backstores::ram::RamBackstore;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    Command, LuConfig, NexusId, NexusInfo, RawCdb, Target, TargetConfig, TaskAttribute,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;

/// The system allocator, counting live bytes and allocations.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator; only adds relaxed
// counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LUNS: u16 = 64;
const NEXUSES: u32 = 16;
/// The distinct 4 KiB blocks a round reads, at least: as many as the
/// scaled target has units.
const BLOCKS: usize = LUNS as usize;
/// A 16-byte READ or WRITE of 8 blocks (4 KiB) at LBA 0: byte 0, the
/// opcode, is set per command.
const RW16: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0];
const READ16: u8 = 0x88;
const WRITE16: u8 = 0x8a;
/// PERSISTENT RESERVE OUT with a 24-byte parameter list.
const PROUT: [u8; 10] = [0x5f, 0, 0, 0, 0, 0, 0, 0, 24, 0];
/// Write Exclusive – Registrants Only.
const WERO: u8 = 5;

fn command(nexus: NexusId, lun: u16, cdb: &[u8], data: DataBuffer) -> Command {
    Command {
        nexus,
        lun: Lun::from_index(lun).expect("lun"),
        tag: 0,
        attribute: TaskAttribute::Simple,
        cdb: RawCdb::new(cdb).expect("cdb"),
        data,
    }
}

fn run(target: &Target, cmd: Command) -> Status {
    futures::executor::block_on(target.execute(cmd)).status
}

fn prout(target: &Target, nexus: NexusId, lun: u16, sa: u8, ty: u8, key: u64, sa_key: u64) {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    let mut cdb = PROUT;
    cdb[1] = sa;
    cdb[2] = ty;
    let status = run(target, command(nexus, lun, &cdb, DataBuffer::from_vec(p)));
    assert_eq!(status, Status::GOOD, "PROUT sa {sa} on LUN {lun}");
}

fn nexus_info(i: u32) -> NexusInfo {
    NexusInfo {
        initiator_port: format!("iqn.2026-12.dev.tgtkit:scale-{i:02},i,0x23d0000000{i:02x}"),
        target_port: "iqn.2026-12.dev.tgtkit:scale,t,0x0001".into(),
        relative_port: 1,
        transport_id: Vec::new(),
    }
}

/// What building the scaled target cost on the heap, in bytes.
#[derive(Default)]
struct Footprint {
    per_lu: f64,
    per_nexus: f64,
    per_registration: f64,
}

/// A target of `luns` units seen by `nexuses` nexuses, each with its
/// power-on unit attention consumed and, with `pr`, a key registered by
/// every nexus and a WERO reservation held by the first. Returns every
/// I_T_L nexus and the heap figures.
fn build(luns: u16, nexuses: u32, pr: bool) -> (Arc<Target>, Vec<(u16, NexusId)>, Footprint) {
    let target = Target::new(TargetConfig::default());
    let disks: Vec<_> = (0..luns)
        .map(|_| Arc::new(RamBackstore::new(1 << 20).expect("ram backstore")))
        .collect();
    let live = || LIVE.load(Ordering::Relaxed) as f64;
    let mut foot = Footprint::default();

    let before = live();
    for (i, disk) in (0..luns).zip(disks) {
        target
            .add_lun(i, LuConfig::new(disk))
            .expect("add logical unit");
    }
    foot.per_lu = (live() - before) / f64::from(luns);

    let before = live();
    let ids: Vec<NexusId> = (0..nexuses)
        .map(|i| target.add_nexus(nexus_info(i)))
        .collect();
    // A nexus costs the engine something on each unit only once it is
    // used there: its unit attention entry, task set slot and so on.
    for &n in &ids {
        for lun in 0..luns {
            let status = run(&target, command(n, lun, &[0; 6], DataBuffer::empty()));
            assert_eq!(status, Status::CHECK_CONDITION, "power-on unit attention");
        }
    }
    foot.per_nexus = (live() - before) / f64::from(nexuses);

    if pr {
        let before = live();
        for lun in 0..luns {
            for (k, &n) in ids.iter().enumerate() {
                prout(&target, n, lun, 0, 0, 0, 0x1000 + k as u64);
            }
            prout(&target, ids[0], lun, 1, WERO, 0x1000, 0);
        }
        foot.per_registration = (live() - before) / (f64::from(luns) * f64::from(nexuses));
    }

    (target, pairs_of(luns, &ids), foot)
}

/// Every (unit, nexus) pair of a target.
fn pairs_of(luns: u16, ids: &[NexusId]) -> Vec<(u16, NexusId)> {
    (0..luns)
        .flat_map(|lun| ids.iter().map(move |&n| (lun, n)))
        .collect()
}

/// One 4 KiB command of opcode `op` (READ(16) or WRITE(16)) per pair,
/// each on a different block: on a single unit they step over [`BLOCKS`]
/// blocks, so both targets touch as much data and the ratio is the
/// engine's state, not the data's cache footprint. Each runs once here.
fn commands(target: &Target, pairs: &[(u16, NexusId)], op: u8) -> Vec<Command> {
    let data = DataBuffer::zeroed(4096);
    let cmds: Vec<Command> = (0..BLOCKS.max(pairs.len()))
        .map(|i| {
            let (lun, n) = pairs[i % pairs.len()];
            let mut cdb = RW16;
            cdb[0] = op;
            cdb[2..10].copy_from_slice(&(8 * (i / pairs.len()) as u64).to_be_bytes());
            command(n, lun, &cdb, data.clone())
        })
        .collect();
    for cmd in &cmds {
        assert_eq!(run(target, cmd.clone()), Status::GOOD, "warm-up");
    }
    cmds
}

/// `n` commands of `cmds`, in turn: nanoseconds per command.
fn round(target: &Target, cmds: &[Command], n: usize) -> f64 {
    let t = Instant::now();
    for cmd in cmds.iter().cycle().take(n) {
        black_box(futures::executor::block_on(target.execute(cmd.clone())));
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn benches(c: &mut Criterion) {
    let (one, one_pairs, _) = build(1, 1, false);
    let (many, many_pairs, _) = build(LUNS, NEXUSES, true);
    for (name, op) in [("read16", READ16), ("write16", WRITE16)] {
        let cmds = commands(&one, &one_pairs, op);
        let mut next = cmds.iter().cycle();
        c.bench_function(&format!("scale_{name}_4k_1lun_1nexus"), |b| {
            b.iter(|| {
                let cmd = next.next().expect("cycle").clone();
                black_box(futures::executor::block_on(one.execute(cmd)))
            });
        });
        let cmds = commands(&many, &many_pairs, op);
        let mut next = cmds.iter().cycle();
        c.bench_function(&format!("scale_{name}_4k_64luns_16nexuses_wero"), |b| {
            b.iter(|| {
                let cmd = next.next().expect("cycle").clone();
                black_box(futures::executor::block_on(many.execute(cmd)))
            });
        });
    }
}

/// The headline figures, from alternating rounds.
fn figures() {
    let (one, one_pairs, _) = build(1, 1, false);
    let (many, many_pairs, foot) = build(LUNS, NEXUSES, true);
    for (name, op) in [("READ(16)", READ16), ("WRITE(16)", WRITE16)] {
        let (one_cmds, many_cmds) = (
            commands(&one, &one_pairs, op),
            commands(&many, &many_pairs, op),
        );
        let n = many_cmds.len() * 4;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..51 {
            a.push(round(&one, &one_cmds, n));
            b.push(round(&many, &many_cmds, n));
        }
        let (single, scaled) = (median(a), median(b));
        let allocs = ALLOCS.load(Ordering::Relaxed);
        round(&many, &many_cmds, n);
        let per_cmd = (ALLOCS.load(Ordering::Relaxed) - allocs) as f64 / n as f64;
        println!(
            "{name} 4 KiB: 1 unit x 1 nexus median {single:.0} ns; {LUNS} units x {NEXUSES} nexuses, all registered, WERO held: median {scaled:.0} ns, {per_cmd:.2} allocations per command"
        );
        println!(
            "scale: {name} per-command cost {LUNS}x{NEXUSES} vs 1x1 ratio={:.2} (goal <= 1.2)",
            scaled / single
        );
    }
    println!(
        "memory: {:.1} KiB per idle logical unit (goal <= 64 KiB), {:.1} KiB per nexus on {LUNS} units, {:.0} bytes per registration",
        foot.per_lu / 1024.0,
        foot.per_nexus / 1024.0,
        foot.per_registration
    );
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}

fn main() {
    // `--figures`: the side-by-side figures only, without criterion.
    if std::env::args().any(|a| a == "--figures") {
        figures();
        return;
    }
    group();
    figures();
    Criterion::default().configure_from_args().final_summary();
}
