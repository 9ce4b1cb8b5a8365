//! Benchmark the qcow2 backstore with the access pattern of `qemu-img bench`.
//!
//! ```text
//! qcow2-bench IMAGE [-c COUNT] [-d DEPTH] [-s SIZE] [-S STEP] [-t none|writeback]
//!                   [-w] [--threads N]
//! ```
//!
//! Like `qemu-img bench`: COUNT requests of SIZE bytes, DEPTH in flight,
//! the first at offset 0 and each next one STEP bytes further, modulo the
//! image size (QEMU 10.0's rule). `-t none` opens the image with O_DIRECT.
//! Prints the elapsed time and the IOPS. Runs on `futures`' executor: the
//! backstore needs no runtime.
#![allow(clippy::cast_possible_truncation)] // test tooling: small units, block and generation numbers

use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use tgtkit_backstores::qcow2::{Qcow2Backstore, Qcow2Options};
use tgtkit_scsi_core::backstore::{Backstore, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

struct Args {
    image: String,
    count: u64,
    depth: usize,
    size: usize,
    step: Option<u64>,
    direct: bool,
    write: bool,
    threads: usize,
}

fn parse() -> Args {
    let mut a = Args {
        image: String::new(),
        count: 75_000,
        depth: 64,
        size: 4096,
        step: None,
        direct: false,
        write: false,
        threads: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "-c" => a.count = val().parse().expect("count"),
            "-d" => a.depth = val().parse().expect("depth"),
            "-s" => a.size = val().parse().expect("size"),
            "-S" => a.step = Some(val().parse().expect("step")),
            "-t" => {
                a.direct = match val().as_str() {
                    "none" => true,
                    "writeback" => false,
                    other => panic!("cache mode {other}: none or writeback"),
                }
            }
            "-w" => a.write = true,
            "--threads" => a.threads = val().parse().expect("threads"),
            _ if a.image.is_empty() && !arg.starts_with('-') => a.image = arg,
            _ => panic!("unknown argument {arg}"),
        }
    }
    assert!(!a.image.is_empty(), "usage: qcow2-bench IMAGE [-c N] [-d N] [-s N] [-S N] [-t none|writeback] [-w] [--threads N]");
    a
}

fn main() {
    let a = parse();
    futures::executor::block_on(async {
        let bs = Qcow2Backstore::open(
            &a.image,
            Qcow2Options {
                direct: a.direct,
                io_threads: a.threads,
                ..Qcow2Options::default()
            },
        )
        .await
        .expect("open image");
        let image_size = bs.geometry().size;
        let step = a.step.unwrap_or(a.size as u64);
        // Buffers reused round-robin, one per request in flight.
        let bufs: Vec<DataBuffer> = (0..a.depth)
            .map(|i| DataBuffer::from_vec(vec![(i as u8) | 1; a.size]))
            .collect();
        println!(
            "Sending {} {} requests, {} bytes each, {} in parallel (starting at offset 0, step size {step})",
            a.count,
            if a.write { "write" } else { "read" },
            a.size,
            a.depth
        );
        let start = Instant::now();
        let mut offset = 0u64;
        let mut issued = 0u64;
        let mut in_flight = FuturesUnordered::new();
        let issue = |slot: usize, off: u64| {
            let buf = bufs[slot].clone();
            let bs = &bs;
            let write = a.write;
            async move {
                let r = if write {
                    bs.write(off, buf, WriteFlags::empty()).await
                } else {
                    bs.read(off, buf).await
                };
                r.map(|()| slot)
            }
        };
        while issued < a.count && in_flight.len() < a.depth {
            in_flight.push(issue(in_flight.len(), offset));
            issued += 1;
            offset = (offset + step) % image_size;
        }
        while let Some(done) = in_flight.next().await {
            let slot = done.expect("request failed");
            if issued < a.count {
                in_flight.push(issue(slot, offset));
                issued += 1;
                offset = (offset + step) % image_size;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("Run completed in {secs:.3} seconds.");
        println!("IOPS: {:.0}", a.count as f64 / secs);
        if a.write {
            bs.flush().await.expect("flush");
        }
    });
}
