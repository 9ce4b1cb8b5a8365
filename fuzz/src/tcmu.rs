//! Fuzz bodies for the TCMU transport: the command ring as the kernel could
//! leave it, and TCM-USER netlink events.
//!
//! Input layout of [`tcmu_ring`]:
//!
//! | bytes | meaning |
//! | --- | --- |
//! | 0 | mailbox capability flags (low 4 bits) |
//! | 1 | bit 0: answer in order; bit 1: also decode the tail as a netlink event |
//! | 2..4 | `cmd_tail` / 8 at attach time (little endian, modulo the ring) |
//! | 4..6 | `cmd_head` (little endian, taken as is: may be invalid) |
//! | 6.. | the command ring's bytes (4 KiB ring); with bit 1, what follows the ring is a netlink event: command byte, then `type: u16 LE, len: u8, payload` attributes |

#![allow(clippy::cast_possible_truncation)] // the fuzzed ring's sizes are small constants

use std::sync::atomic::Ordering;

use tgtkit_scsi_core::status::Status;
use tgtkit_tcmu::abi::{MailboxFlags, TmrType, MAILBOX_CMD_HEAD, MAILBOX_CMD_TAIL};
use tgtkit_tcmu::mock::{MockKernel, CMDR_OFF};
use tgtkit_tcmu::netlink::Event;
use tgtkit_tcmu::ring::{Completion, Request, Ring};

/// Size of the fuzzed ring.
pub const RING: usize = 4096;

/// Feed a ring image to [`Ring`]: every entry is read, validated and
/// answered; nothing may panic or touch memory outside the mapping.
pub fn tcmu_ring(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let caps = MailboxFlags::from_bits_truncate(u16::from(data[0] & 0xf));
    let kernel = MockKernel::new(caps, RING as u32, 4, 4096);
    let mem = kernel.memory();
    let tail = (u32::from(u16::from_le_bytes([data[2], data[3]])) * 8) % RING as u32;
    let head = u32::from(u16::from_le_bytes([data[4], data[5]]));
    let ring_bytes = &data[6..data.len().min(6 + RING)];
    if mem.write(CMDR_OFF, ring_bytes).is_err()
        || mem
            .store_u32(MAILBOX_CMD_TAIL, tail, Ordering::Release)
            .is_err()
        || mem
            .store_u32(MAILBOX_CMD_HEAD, head, Ordering::Release)
            .is_err()
    {
        return;
    }
    if let Ok(mut ring) = Ring::attach(mem.clone()) {
        if data[1] & 1 != 0 {
            ring.force_in_order();
        }
        let data_area = ring.data_area();
        for round in 0..512u32 {
            match ring.poll_request() {
                Ok(Some(Request::Cmd(cmd))) => {
                    let buf = ring
                        .data_buffer(&cmd, mem.clone())
                        .expect("validated segments lie in the mapping");
                    for s in &cmd.segments {
                        assert!(s.offset >= data_area.start && s.offset + s.len <= data_area.end);
                    }
                    buf.fill(0, buf.len(), 0x5a);
                    let c = if round % 3 == 0 {
                        Completion::good().with_read_len(round)
                    } else {
                        Completion::status(Status::BUSY)
                    };
                    let _ = ring.complete(cmd.cmd_id, &c);
                }
                Ok(Some(Request::Malformed { cmd_id, error })) => {
                    let _ = ring.complete(cmd_id, &Completion::failed(&error.sense()));
                }
                Ok(Some(Request::Tmr(tmr))) => {
                    let _ = tmr.tmr_type == TmrType::ABORT_TASK;
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    if data[1] & 2 != 0 {
        netlink_event(data.get(6 + RING..).unwrap_or(&[]));
    }
}

fn netlink_event(data: &[u8]) {
    let Some((&cmd, mut rest)) = data.split_first() else {
        return;
    };
    let mut attrs = Vec::new();
    while rest.len() >= 3 {
        let ty = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(rest[2]).min(rest.len() - 3);
        attrs.push((ty, &rest[3..3 + len]));
        rest = &rest[3 + len..];
    }
    let _ = Event::parse(cmd, attrs);
}

/// Seed inputs: ring images made by the simulated kernel (commands with
/// data, TMRs, PAD wrap-around), plus a few broken ones and netlink events.
#[must_use]
pub fn seeds() -> Vec<Vec<u8>> {
    let read10 = [0x28u8, 0, 0, 0, 0, 8, 0, 0, 8, 0];
    let write10 = [0x2au8, 0, 0, 0, 0, 8, 0, 0, 2, 0];
    let inquiry = [0x12u8, 0, 0, 0, 96, 0];
    let mut out = Vec::new();
    let image = |k: &MockKernel, caps: u8, flags: u8, tail: u32| {
        let mut v = vec![caps, flags];
        v.extend_from_slice(&((tail / 8) as u16).to_le_bytes());
        v.extend_from_slice(&(k.head() as u16).to_le_bytes());
        let mut ring = vec![0u8; RING];
        k.memory().read(CMDR_OFF, &mut ring).expect("ring");
        v.extend_from_slice(&ring);
        v
    };
    for caps in [0x0u8, 0xf, 0x1, 0x2] {
        for start in [0u32, 1024, RING as u32 - 64] {
            let mut k = MockKernel::new(
                MailboxFlags::from_bits_truncate(u16::from(caps)),
                RING as u32,
                4,
                4096,
            );
            k.set_position(start);
            let _ = k.queue_cmd(&inquiry, &[], 96);
            let _ = k.queue_cmd(&write10, &[0xab; 1024], 0);
            let a = k.queue_cmd(&read10, &[], 4096).unwrap_or(1);
            let _ = k.queue_tmr(TmrType::ABORT_TASK, &[a]);
            let _ = k.queue_cmd(&[0u8; 6], &[], 0);
            out.push(image(&k, caps, 0, start));
            out.push(image(&k, caps, 1, start));
        }
    }
    // Broken images: head past the ring, zero-length entry, iovec into the ring.
    let mut k = MockKernel::new(MailboxFlags::all(), RING as u32, 4, 4096);
    let _ = k.queue_cmd(&read10, &[], 8192);
    let good = image(&k, 0xf, 0, 0);
    let mut bad_head = good.clone();
    bad_head[4..6].copy_from_slice(&0xffffu16.to_le_bytes());
    out.push(bad_head);
    let mut zero_len = good.clone();
    zero_len[6..10].copy_from_slice(&1u32.to_le_bytes());
    out.push(zero_len);
    let mut iov_in_ring = good.clone();
    iov_in_ring[6 + 48..6 + 56].copy_from_slice(&(CMDR_OFF as u64).to_le_bytes());
    out.push(iov_in_ring);
    let mut cdb_far = good;
    cdb_far[6 + 24..6 + 32].copy_from_slice(&u64::MAX.to_le_bytes());
    out.push(cdb_far);
    // Netlink events after an empty ring.
    for (cmd, attrs) in [
        (
            1u8,
            vec![
                (1u16, b"tcm-user/0/dev0/file//tmp/x\0".to_vec()),
                (2, vec![0; 4]),
                (8, vec![1, 0, 0, 0]),
            ],
        ),
        (
            3,
            vec![
                (1, b"tcm-user/0/d/ram/\0".to_vec()),
                (2, vec![1, 0, 0, 0]),
                (8, vec![2, 0, 0, 0]),
                (5, (1u64 << 30).to_le_bytes().to_vec()),
            ],
        ),
        (
            3,
            vec![
                (1, b"tcm-user/1/e/x\0".to_vec()),
                (2, vec![0; 4]),
                (8, vec![3, 0, 0, 0]),
                (6, vec![1]),
            ],
        ),
        (2, vec![(1, vec![0xff, 0xfe]), (2, vec![0; 3])]),
    ] {
        let mut v = vec![0, 2, 0, 0, 0, 0];
        v.extend_from_slice(&[0u8; RING]);
        v.push(cmd);
        for (ty, p) in attrs {
            v.extend_from_slice(&ty.to_le_bytes());
            v.push(p.len() as u8);
            v.extend_from_slice(&p);
        }
        out.push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed corpus is what [`seeds`] makes; `TGTKIT_WRITE_SEEDS=1`
    /// rewrites it.
    #[test]
    fn accepts_the_committed_tcmu_ring_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/tcmu_ring");
        let seeds = seeds();
        assert!(seeds.len() >= 24);
        for (i, s) in seeds.iter().enumerate() {
            let path = dir.join(format!("seed-{i:03}"));
            if std::env::var_os("TGTKIT_WRITE_SEEDS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, s).unwrap();
            }
            assert_eq!(
                &std::fs::read(&path).unwrap(),
                s,
                "{} is stale",
                path.display()
            );
            tcmu_ring(s);
        }
    }

    /// Deterministic mutations of the seeds (bytes flipped in headers,
    /// iovecs and indices) never panic: a cheap stand-in for a fuzzing run
    /// on the stable toolchain.
    #[test]
    fn accepts_mutated_seeds_without_panicking() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds = seeds();
        for i in 0..3000 {
            let mut s = seeds[i % seeds.len()].clone();
            for _ in 0..1 + next() % 8 {
                // Mostly the first entries and the header bytes.
                let at = (next() % (6 + 512).min(s.len() as u64)) as usize;
                s[at] = next() as u8;
            }
            tcmu_ring(&s);
        }
    }
}
