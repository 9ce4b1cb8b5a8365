//! Crash safety: a child process writing with flushes is killed with
//! SIGKILL at random moments, many times. After each kill `qemu-img check`
//! finds no corruption (leaked clusters are allowed, as QEMU allows them)
//! and every write acknowledged before a completed flush reads back.
#![allow(clippy::cast_possible_truncation)] // test tooling: small units, block and generation numbers
#![cfg(feature = "qcow2")]

mod qcow2_common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use qcow2_common::*;
use tgtkit_backstores::qcow2::{CreateOptions, Qcow2Backstore};

const SIZE: u64 = 8 << 20;
const UNIT: usize = 4096;
const SECTOR: usize = 512;

/// What a 512-byte sector holds: zeroes or the child's pattern of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Zero,
    Gen(u32),
}

fn decode(sector: &[u8], unit: usize) -> Option<Value> {
    if sector.iter().all(|&b| b == 0) {
        return Some(Value::Zero);
    }
    let u = u32::from_le_bytes(sector[0..4].try_into().unwrap());
    let g = u32::from_le_bytes(sector[4..8].try_into().unwrap());
    let exact = u as usize == unit && sector.chunks(8).all(|c| c == &sector[0..8]);
    exact.then_some(Value::Gen(g))
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One kill cycle; returns (flushes, requests) the child logged.
fn one_run(
    image: &std::path::Path,
    baseline: &mut [Value],
    next_gen: &mut u64,
    rng: &mut Rng,
) -> (usize, usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qcow2-crash-child"))
        .arg(image)
        .arg(rng.below(u64::MAX).to_string())
        .arg(next_gen.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crash child");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        })
    };
    let start = Instant::now();
    while !lines.lock().unwrap().iter().any(|l| l == "READY") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "child never became ready"
        );
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("child exited early: {status}: {err}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(5 + rng.below(250)));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    if status.signal() != Some(9) {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("child died on its own: {status}: {err}");
    }
    reader.join().unwrap();
    let lines = std::mem::take(&mut *lines.lock().unwrap());

    // Replay the log: `flushed` is the state at the last completed flush,
    // `pending` what was issued after it (may or may not have landed).
    let units = baseline.len() / (UNIT / SECTOR);
    let mut flushed: Vec<Option<Value>> = vec![None; units];
    let mut since: Vec<(usize, Value)> = Vec::new();
    let (mut flushes, mut requests) = (0, 0);
    for line in &lines {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["READY"] => {}
            ["F"] => {
                flushes += 1;
                for (u, v) in since.drain(..) {
                    flushed[u] = Some(v);
                }
            }
            [kind @ ("W" | "Z"), unit, gen] => {
                requests += 1;
                let unit: usize = unit.parse().unwrap();
                let gen: u64 = gen.parse().unwrap();
                *next_gen = (*next_gen).max(gen + 1);
                let v = if *kind == "W" {
                    Value::Gen(gen as u32)
                } else {
                    Value::Zero
                };
                since.push((unit, v));
            }
            _ => panic!("bad child line {line:?}"),
        }
    }

    // qemu-img check: no corruption; leaks (exit code 3) are allowed.
    let (code, out) = qemu_check(image);
    assert!(
        code == 0 || code == 3,
        "qemu-img check found corruption (exit {code}): {out}"
    );
    assert!(!out.contains("ERROR"), "{out}");

    // Every sector holds its flushed value, or one written after the flush.
    let dir = TempDir::new("crash-read");
    let data = qemu_raw(&dir, image);
    assert_eq!(data.len() as u64, SIZE);
    for (unit, flushed_value) in flushed.iter().enumerate() {
        let mut allowed: Vec<Value> = Vec::new();
        for (u, v) in &since {
            if *u == unit {
                allowed.push(*v);
            }
        }
        for s in 0..UNIT / SECTOR {
            let idx = unit * (UNIT / SECTOR) + s;
            let at = idx * SECTOR;
            let got = decode(&data[at..at + SECTOR], unit)
                .unwrap_or_else(|| panic!("unit {unit} sector {s}: garbage after kill"));
            let base = flushed_value.unwrap_or(baseline[idx]);
            assert!(
                got == base || allowed.contains(&got),
                "unit {unit} sector {s}: read {got:?}, flushed {base:?}, later {allowed:?}"
            );
            baseline[idx] = got;
        }
    }
    (flushes, requests)
}

fn crash_series(cluster_size: u32, runs: usize, seed: u64) {
    let dir = TempDir::new("crash");
    let image = dir.path("c.qcow2");
    block_on(Qcow2Backstore::create(
        &image,
        CreateOptions {
            cluster_size,
            ..CreateOptions::new(SIZE)
        },
        None,
    ))
    .unwrap();
    let mut baseline = vec![Value::Zero; SIZE as usize / SECTOR];
    let mut next_gen = 1u64;
    let mut rng = Rng(seed);
    let (mut flushes, mut requests) = (0, 0);
    for _ in 0..runs {
        let (f, r) = one_run(&image, &mut baseline, &mut next_gen, &mut rng);
        flushes += f;
        requests += r;
    }
    // The runs did real work (not a test that cannot fail by doing nothing).
    assert!(flushes > runs, "only {flushes} flushes in {runs} runs");
    assert!(
        requests > 10 * runs,
        "only {requests} requests in {runs} runs"
    );
}

#[test]
fn accepts_sigkill_at_random_moments_4k_clusters() {
    crash_series(4096, 20, 0x1234_5678_9abc_def1);
}

#[test]
fn accepts_sigkill_at_random_moments_64k_clusters() {
    crash_series(65536, 20, 0x0fed_cba9_8765_4321);
}

#[test]
fn accepts_sigkill_at_random_moments_512b_clusters() {
    // 512-byte clusters: an L2 table covers only 32 KiB, so new L2 tables
    // (and L1 entry updates) happen all the time.
    crash_series(512, 20, 0x5555_aaaa_3333_cccc);
}
