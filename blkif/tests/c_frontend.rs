//! A C frontend written with the real io/ring.h macros (another process)
//! against our backend processor over a ram backstore, on shared memory.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cbuild;
use common::shm::SharedFile;
use tgtkit_blkif::testing::{MemoryGrants, PollingEvent};
use tgtkit_blkif::{Abi, BackendConfig, BlkifBackend};
use tgtkit_scsi_core::test_utils::MemBackstore;
use tgtkit_xen_ring::RingMemory;

const NSLOT: usize = 16;
const PAGES_PER_SLOT: usize = 66;
const MAGIC: u32 = 0x5845_4e21;

fn run_frontend(flags: &[&str], exe_name: &str, abi: Abi, ring_pages: usize, nreq: u64, seed: u64) {
    if cbuild::skipped() {
        return;
    }
    let exe = cbuild::compile("tests/c/blkif_frontend.c", exe_name, flags);
    let grant_pages = NSLOT * PAGES_PER_SLOT;
    let shm = Arc::new(SharedFile::new(exe_name, ring_pages + grant_pages + 1));
    let disk_sectors: u64 = 8192;
    let disk = Arc::new(MemBackstore::new(disk_sectors, 512));
    let mut child = Command::new(&exe)
        .arg(&shm.path)
        .args([
            ring_pages.to_string(),
            grant_pages.to_string(),
            disk_sectors.to_string(),
            nreq.to_string(),
            seed.to_string(),
            "64".into(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ctl = (ring_pages + grant_pages) * 4096;
    let deadline = Instant::now() + Duration::from_secs(20);
    while shm.load_u32(ctl) != MAGIC {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("frontend exited before initialising the ring: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "frontend never initialised the ring"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: the first `ring_pages` pages of the mapping, kept alive by `shm`.
    let ring = unsafe { RingMemory::from_raw(shm.base, ring_pages * 4096, shm.clone()) }.unwrap();
    // SAFETY: the grant pages follow the ring inside the same mapping.
    let grants = Arc::new(unsafe {
        MemoryGrants::from_raw(shm.base.add(ring_pages * 4096), grant_pages, shm.clone())
    });
    let config = BackendConfig {
        abi,
        max_indirect_segments: 64,
        discard_secure: true,
        ..BackendConfig::default()
    };
    let ev = Arc::new(PollingEvent::default());
    let ev2 = Arc::clone(&ev);
    let mut backend = BlkifBackend::new(ring, config, Arc::clone(&grants), disk.clone()).unwrap();
    let back = std::thread::spawn(move || {
        let r = futures::executor::block_on(backend.run(&*ev2));
        (r, backend.stats())
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("C frontend timed out");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    ev.stop();
    let (r, stats) = back.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "C frontend failed: {status}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.unwrap();
    let done: u64 = stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(done, nreq, "{stdout}");
    eprintln!(
        "{exe_name}: {stdout} backend ok {} failed {}",
        stats.ok, stats.failed
    );
    assert!(
        stats.failed > 0 && stats.ok > nreq / 2,
        "mix of good and bad requests: {stats:?}"
    );
    assert_eq!(grants.mapped_pages(), 0, "no mapping left behind");
}

#[test]
fn accepts_real_ring_h_frontend_x86_64_two_page_ring() {
    run_frontend(
        &[],
        "blkif_frontend_64",
        Abi::X86_64,
        2,
        20_000,
        0x1234_5678,
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn accepts_real_ring_h_frontend_x86_32() {
    // -m32 builds the real header for i386 (gcc-multilib, scripts/deps-xen.sh).
    run_frontend(
        &["-m32"],
        "blkif_frontend_32",
        Abi::X86_32,
        1,
        10_000,
        0xdead_beef,
    );
}
