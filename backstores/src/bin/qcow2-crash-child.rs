//! Crash-test child for the qcow2 backstore (used by `tests/qcow2_crash.rs`).
//!
//! `qcow2-crash-child IMAGE SEED` opens IMAGE read-write and writes, zeroes
//! and flushes forever until it is killed. On stdout it logs, before each
//! request is issued, what it is about to do (`W unit gen` for a 4 KiB unit
//! filled with the pattern of `(unit, gen)`, `Z unit gen` for a unit made
//! zero), and after each completed flush `F`. Every request logged before an
//! `F` had completed before that flush began.
#![allow(clippy::cast_possible_truncation)] // test tooling: small units, block and generation numbers

use std::io::Write;

use futures::executor::block_on;
use tgtkit_backstores::qcow2::{Qcow2Backstore, Qcow2Options};
use tgtkit_scsi_core::backstore::{Backstore, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

/// Bytes per logged unit.
const UNIT: u64 = 4096;

fn pattern(unit: u64, gen: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(UNIT as usize);
    while v.len() < UNIT as usize {
        v.extend_from_slice(&(unit as u32).to_le_bytes());
        v.extend_from_slice(&(gen as u32).to_le_bytes());
    }
    v
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: qcow2-crash-child IMAGE SEED FIRST_GEN");
        std::process::exit(2);
    }
    let seed: u64 = args[2].parse().expect("seed");
    let mut gen: u64 = args[3].parse().expect("first generation");
    let mut rng = Rng(seed | 1);
    let bs = block_on(Qcow2Backstore::open(
        &args[1],
        Qcow2Options {
            io_threads: 4,
            ..Qcow2Options::default()
        },
    ))
    .expect("open");
    let units = bs.geometry().size / UNIT;
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY")
        .and_then(|()| out.flush())
        .expect("stdout");
    loop {
        // A batch of concurrent requests on distinct units.
        let n = 1 + rng.below(8);
        let mut log = String::new();
        let mut reqs: Vec<(u64, Option<Vec<u8>>)> = Vec::new();
        for _ in 0..n {
            let unit = rng.below(units);
            if reqs.iter().any(|(u, _)| *u == unit) {
                continue;
            }
            gen += 1;
            if rng.below(6) == 0 {
                log.push_str(&format!("Z {unit} {gen}\n"));
                reqs.push((unit, None));
            } else {
                log.push_str(&format!("W {unit} {gen}\n"));
                reqs.push((unit, Some(pattern(unit, gen))));
            }
        }
        out.write_all(log.as_bytes())
            .and_then(|()| out.flush())
            .expect("stdout");
        let futs = reqs.into_iter().map(|(unit, data)| {
            let bs = &bs;
            async move {
                match data {
                    Some(d) => {
                        bs.write(unit * UNIT, DataBuffer::from_vec(d), WriteFlags::empty())
                            .await
                    }
                    None => bs.write_zeroes(unit * UNIT, UNIT, unit % 2 == 0).await,
                }
            }
        });
        for r in block_on(futures::future::join_all(futs)) {
            r.expect("request");
        }
        if rng.below(3) == 0 {
            block_on(bs.flush()).expect("flush");
            writeln!(out, "F")
                .and_then(|()| out.flush())
                .expect("stdout");
        }
    }
}
