//! Kill a process at random moments while it rewrites APTPL state through
//! [`FilePrStore`]: whatever instant the kill lands, the state read back is
//! one the writer saved (the last one it reported, or the one it was
//! writing), never a mix, never empty, never an error.
//!
//! The child is this test binary itself, running the ignored test
//! `child_rewrites_state_forever` with `TGTKIT_PR_KILL_CHILD` set.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use tgtkit_scsi_core::pr::{
    FilePrStore, ItNexusIdentity, PrState, PrStore, PrType, Registration, Reservation, TransportId,
};

const RUNS: u64 = 40;

/// The state the writer saves as its `n`th version.
fn version(n: u64) -> PrState {
    let who =
        |i: u64| TransportId::from_iscsi_port_name(&format!("iqn.2026-11.test:n{i},i,0x{i:012x}"));
    let count = n % 9 + 1;
    PrState {
        generation: 0,
        registrations: (0..count)
            .map(|i| Registration {
                key: n * 1000 + i,
                initiator: who(i),
                relative_port: 1,
                all_tg_pt: i % 2 == 1,
            })
            .collect(),
        reservation: (n % 3 != 0).then(|| Reservation {
            pr_type: PrType::WRITE_EXCLUSIVE_RO,
            holder: ItNexusIdentity {
                initiator: who(0),
                relative_port: 1,
            },
        }),
        aptpl: true,
    }
}

#[test]
#[ignore = "child process of survives_kill_at_random_moments"]
fn child_rewrites_state_forever() {
    let path = std::env::var_os("TGTKIT_PR_KILL_CHILD").expect("run by the parent test");
    let store = FilePrStore::new(path);
    let mut out = std::io::stdout().lock();
    for n in 1.. {
        store.save(&version(n)).unwrap();
        use std::io::Write;
        writeln!(out, "saved {n}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn survives_kill_at_random_moments() {
    let exe = std::env::current_exe().unwrap();
    let base = std::env::temp_dir().join(format!("tgtkit-pr-kill-{}", std::process::id()));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut max_seen = 0;
    for run in 0..RUNS {
        let dir = base.join(run.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lun0.pr");
        let store = FilePrStore::new(&path);
        store.save(&version(0)).unwrap();
        let mut child = Command::new(&exe)
            .args([
                "child_rewrites_state_forever",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TGTKIT_PR_KILL_CHILD", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(Duration::from_micros(5_000 + (seed >> 33) % 60_000));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut text = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let reported = text
            .lines()
            .filter_map(|l| {
                // libtest's "test ... " prefix may share the first line.
                let at = l.find("saved ")?;
                l[at + 6..].trim().parse::<u64>().ok()
            })
            .max()
            .unwrap_or(0);
        let state = store
            .load()
            .unwrap_or_else(|e| panic!("run {run}: state unreadable after kill: {e}"))
            .unwrap_or_else(|| panic!("run {run}: state vanished"));
        let n = state
            .registrations
            .first()
            .map_or(u64::MAX, |r| r.key / 1000);
        assert_eq!(state, version(n), "run {run}: not a saved version");
        assert!(
            n == reported || n == reported + 1,
            "run {run}: read version {n}, writer had reported {reported}"
        );
        max_seen = max_seen.max(reported);
    }
    std::fs::remove_dir_all(&base).unwrap();
    // The kills must land while the writer is busy, or this proves nothing.
    assert!(
        max_seen > 0,
        "the writer never saved anything before a kill"
    );
}
