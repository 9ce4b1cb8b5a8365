//! A C vscsiif frontend written with the real io/ring.h macros (another
//! process) against our backend and the engine over a ram disk, on shared
//! memory: TEST UNIT READY, INQUIRY, READ CAPACITY(10), then thousands of
//! WRITE(10)/READ(10) over scattered segments, verified against a shadow.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cbuild;
use common::shm::SharedFile;
use tgtkit_vscsiif::{VirtualDevice, VscsiBackend, VscsiConfig};
use tgtkit_xen_ring::testing::{MemoryGrants, PollingEvent};
use tgtkit_xen_ring::RingMemory;

const MAGIC: u32 = 0x5845_4e21;

fn run(flags: &[&str], name: &str, nreq: u64, seed: u64) {
    if cbuild::skipped() {
        return;
    }
    let exe = cbuild::compile("tests/c/vscsiif_frontend.c", name, flags);
    let grant_pages = 8 * 24;
    let blocks = 4096u64;
    let shm = Arc::new(SharedFile::new(name, 1 + grant_pages + 1));
    let (_target, dev, _disk) = common::engine(blocks);
    let mut child = Command::new(&exe)
        .arg(&shm.path)
        .args([
            grant_pages.to_string(),
            blocks.to_string(),
            nreq.to_string(),
            seed.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ctl = (1 + grant_pages) * 4096;
    let deadline = Instant::now() + Duration::from_secs(20);
    while shm.load_u32(ctl) != MAGIC {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("frontend exited early: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "frontend never initialised the ring"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: page 0 of the mapping, kept alive by `shm`.
    let ring = unsafe { RingMemory::from_raw(shm.base, 4096, shm.clone()) }.unwrap();
    // SAFETY: the grant pages follow the ring page inside the mapping.
    let grants =
        Arc::new(unsafe { MemoryGrants::from_raw(shm.base.add(4096), grant_pages, shm.clone()) });
    let mut backend = VscsiBackend::new(ring, VscsiConfig::default(), Arc::clone(&grants)).unwrap();
    backend
        .add_device("0:0:1:0".parse::<VirtualDevice>().unwrap(), dev)
        .unwrap();
    let ev = Arc::new(PollingEvent::default());
    let ev2 = Arc::clone(&ev);
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
    assert!(stdout.contains(&format!("ok {nreq} ")), "{stdout}");
    eprintln!("{name}: {stdout} backend {stats:?}");
    assert!(stats.ok >= nreq + 2);
    assert_eq!(grants.mapped_pages(), 0);
}

#[test]
fn accepts_real_ring_h_vscsiif_frontend_x86_64() {
    run(&[], "vscsiif_frontend_64", 10_000, 0x5eed);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn accepts_real_ring_h_vscsiif_frontend_x86_32() {
    run(&["-m32"], "vscsiif_frontend_32", 5_000, 0xfeed);
}
