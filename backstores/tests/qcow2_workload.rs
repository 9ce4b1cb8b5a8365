//! Random workloads (proptest, against an in-memory model) on images we
//! write: `qemu-img check` finds no errors and no leaks, and `qemu-img
//! compare` finds the image equal to the model's raw image.
//!
//! Runs on `futures::executor::block_on`: the backstore needs no runtime.
#![allow(clippy::cast_possible_truncation)] // test tooling: small units, block and generation numbers
#![cfg(feature = "qcow2")]

mod qcow2_common;

use futures::executor::block_on;
use proptest::prelude::*;
use qcow2_common::*;
use tgtkit_backstores::qcow2::{BackingFormat, CreateOptions, Qcow2Backstore, Qcow2Options};
use tgtkit_scsi_core::backstore::{Backstore, Capabilities, IoError, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

const SIZE: u64 = 2 << 20;
const BLOCK: u64 = 512;

#[derive(Debug, Clone)]
enum Op {
    Write {
        block: u64,
        blocks: u64,
        seed: u64,
        fua: bool,
    },
    Read {
        block: u64,
        blocks: u64,
    },
    Discard {
        block: u64,
        blocks: u64,
    },
    Zero {
        block: u64,
        blocks: u64,
        unmap: bool,
    },
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let blocks = SIZE / BLOCK;
    let range = (0..blocks).prop_flat_map(move |b| (Just(b), 1..=(blocks - b).min(400)));
    prop_oneof![
        6 => (range.clone(), any::<u64>(), any::<bool>())
            .prop_map(|((block, blocks), seed, fua)| Op::Write { block, blocks, seed, fua }),
        3 => range.clone().prop_map(|(block, blocks)| Op::Read { block, blocks }),
        2 => range.clone().prop_map(|(block, blocks)| Op::Discard { block, blocks }),
        2 => (range, any::<bool>()).prop_map(|((block, blocks), unmap)| Op::Zero { block, blocks, unmap }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Base {
    /// Our own `create`, no backing file.
    Ours,
    /// `qemu-img create -o compat=0.10` (no zero clusters).
    QemuV2,
    /// Our `create` over a qcow2 backing file that qemu-io filled.
    OursWithBacking,
}

fn setup(dir: &TempDir, base: Base, cluster_size: u32) -> (std::path::PathBuf, Vec<u8>) {
    let img = dir.path("w.qcow2");
    let mut model = vec![0u8; SIZE as usize];
    match base {
        Base::Ours => block_on(Qcow2Backstore::create(
            &img,
            CreateOptions {
                cluster_size,
                ..CreateOptions::new(SIZE)
            },
            None,
        ))
        .unwrap(),
        Base::QemuV2 => {
            qemu_img(&[
                "create",
                "-f",
                "qcow2",
                "-o",
                &format!("compat=0.10,cluster_size={cluster_size}"),
                img.to_str().unwrap(),
                &SIZE.to_string(),
            ]);
        }
        Base::OursWithBacking => {
            let back = dir.path("back.qcow2");
            qemu_img(&[
                "create",
                "-f",
                "qcow2",
                back.to_str().unwrap(),
                &SIZE.to_string(),
            ]);
            qemu_io("qcow2", &back, "write -P 0x6b 0 1572864");
            model[..1_572_864].fill(0x6b);
            block_on(Qcow2Backstore::create(
                &img,
                CreateOptions {
                    cluster_size,
                    backing: Some(("back.qcow2".into(), BackingFormat::Qcow2)),
                    ..CreateOptions::new(SIZE)
                },
                None,
            ))
            .unwrap();
        }
    }
    (img, model)
}

fn open_rw(img: &std::path::Path) -> Qcow2Backstore {
    block_on(Qcow2Backstore::open(
        img,
        Qcow2Options {
            io_threads: 2,
            ..Default::default()
        },
    ))
    .unwrap()
}

fn run_workload(base: Base, cluster_size: u32, ops: &[Op]) {
    let dir = TempDir::new("workload");
    let (img, mut model) = setup(&dir, base, cluster_size);
    let mut bs = open_rw(&img);
    for op in ops {
        match *op {
            Op::Write {
                block,
                blocks,
                seed,
                fua,
            } => {
                let (off, len) = ((block * BLOCK) as usize, (blocks * BLOCK) as usize);
                let data = pseudo_random(seed, len);
                let flags = if fua {
                    WriteFlags::FUA
                } else {
                    WriteFlags::empty()
                };
                block_on(bs.write(off as u64, DataBuffer::from_vec(data.clone()), flags)).unwrap();
                model[off..off + len].copy_from_slice(&data);
            }
            Op::Read { block, blocks } => {
                let (off, len) = ((block * BLOCK) as usize, (blocks * BLOCK) as usize);
                let buf = DataBuffer::zeroed(len);
                block_on(bs.read(off as u64, buf.clone())).unwrap();
                assert!(
                    buf.to_vec() == model[off..off + len],
                    "read {op:?} differs from model"
                );
            }
            Op::Discard { block, blocks } => {
                let (off, len) = ((block * BLOCK) as usize, (blocks * BLOCK) as usize);
                if bs.capabilities().contains(Capabilities::DISCARD) {
                    block_on(bs.discard(off as u64, len as u64)).unwrap();
                    // DISCARD_ZEROES: discarded ranges read back as zeroes.
                    assert!(bs.capabilities().contains(Capabilities::DISCARD_ZEROES));
                    model[off..off + len].fill(0);
                } else {
                    // Version 2 images cannot discard; refused, nothing changes.
                    assert!(matches!(
                        block_on(bs.discard(off as u64, len as u64)),
                        Err(IoError::Unsupported)
                    ));
                }
            }
            Op::Zero {
                block,
                blocks,
                unmap,
            } => {
                let (off, len) = ((block * BLOCK) as usize, (blocks * BLOCK) as usize);
                block_on(bs.write_zeroes(off as u64, len as u64, unmap)).unwrap();
                model[off..off + len].fill(0);
            }
            Op::Flush => block_on(bs.flush()).unwrap(),
            Op::Reopen => {
                block_on(bs.flush()).unwrap();
                drop(bs);
                bs = open_rw(&img);
            }
        }
    }
    block_on(bs.flush()).unwrap();
    drop(bs);

    let (code, out) = qemu_check(&img);
    assert!(
        code == 0 && out.contains("No errors were found") && !out.contains("leaked"),
        "qemu-img check after {ops:?}: {out}"
    );
    let raw = dir.path("model.raw");
    std::fs::write(&raw, &model).unwrap();
    let cmp = run(
        "qemu-img",
        &[
            "compare",
            "-f",
            "qcow2",
            "-F",
            "raw",
            img.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    assert!(
        cmp.status.success(),
        "qemu-img compare after {ops:?}: {}",
        String::from_utf8_lossy(&cmp.stdout)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepts_random_workload_on_new_image(
        cs in prop_oneof![Just(512u32), Just(4096), Just(65536)],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        run_workload(Base::Ours, cs, &ops);
    }

    #[test]
    fn accepts_random_workload_on_qemu_v2_image(
        cs in prop_oneof![Just(1024u32), Just(65536)],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        run_workload(Base::QemuV2, cs, &ops);
    }

    #[test]
    fn accepts_random_workload_over_backing_file(
        cs in prop_oneof![Just(4096u32), Just(65536)],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        run_workload(Base::OursWithBacking, cs, &ops);
    }
}

#[test]
fn accepts_concurrent_writers() {
    // 32 requests in flight at once over 8 workers, then qemu-img's verdict.
    let dir = TempDir::new("concurrent");
    let (img, mut model) = setup(&dir, Base::Ours, 4096);
    let bs = block_on(Qcow2Backstore::open(
        &img,
        Qcow2Options {
            io_threads: 8,
            ..Default::default()
        },
    ))
    .unwrap();
    let mut futs = Vec::new();
    for i in 0..256u64 {
        let off = (i * 7919 % 4000) * BLOCK;
        let data = pseudo_random(i, 4096);
        let end = (off as usize + 4096).min(SIZE as usize);
        model[off as usize..end].copy_from_slice(&data[..end - off as usize]);
        futs.push((
            off,
            DataBuffer::from_vec(data[..end - off as usize].to_vec()),
        ));
    }
    // Overlapping writes must be ordered for the model: issue in waves of
    // non-overlapping requests.
    let mut done = 0;
    while done < futs.len() {
        let mut wave: Vec<(u64, DataBuffer)> = Vec::new();
        while done < futs.len() && wave.len() < 32 {
            let (off, buf) = &futs[done];
            if wave
                .iter()
                .any(|(o, b)| *off < o + b.len() as u64 && *o < off + buf.len() as u64)
            {
                break;
            }
            wave.push((*off, buf.clone()));
            done += 1;
        }
        block_on(futures::future::try_join_all(
            wave.into_iter()
                .map(|(o, b)| bs.write(o, b, WriteFlags::empty())),
        ))
        .unwrap();
    }
    block_on(bs.flush()).unwrap();
    drop(bs);
    let (code, out) = qemu_check(&img);
    assert_eq!(code, 0, "{out}");
    let raw = dir.path("model.raw");
    std::fs::write(&raw, &model).unwrap();
    let cmp = run(
        "qemu-img",
        &[
            "compare",
            "-f",
            "qcow2",
            "-F",
            "raw",
            img.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    assert!(
        cmp.status.success(),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
}
