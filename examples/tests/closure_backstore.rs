//! `closure-backstore` run as a program: its in-process checks, and its
//! synthetic disk served over the null transport.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use tgtkit_examples::null_proto::Client;
use tgtkit_scsi_core::status::Status;

const BIN: &str = env!("CARGO_BIN_EXE_closure-backstore");

/// The served child, killed when dropped (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn in_process_checks_pass() {
    let out = Command::new(BIN).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "first command: status CHECK_CONDITION (unit attention)",
        "read lba 5: pattern ok",
        "write+read lba 5: ok",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in {stdout}"
        );
    }
    assert!(
        stdout.contains("read past the end: CHECK_CONDITION"),
        "{stdout}"
    );
}

#[test]
fn served_disk_reads_from_the_closure() {
    let sock = std::env::temp_dir().join(format!("tgtkit-closure-{}.sock", std::process::id()));
    let mut child = Killed(
        Command::new(BIN)
            .args(["--blocks", "64", "--serve"])
            .arg(&sock)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("closure-backstore: listening on"),
        "{line}"
    );
    let mut c = Client::new(UnixStream::connect(&sock).unwrap());
    c.wait_ready(0).unwrap();
    let cap = c
        .command(0, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8, &[])
        .unwrap();
    assert_eq!(&cap.data[..8], &[0, 0, 0, 63, 0, 0, 2, 0]);
    // READ (10) of blocks 3 and 4: each byte is its block number.
    let read = |c: &mut Client<UnixStream>| {
        let r = c
            .command(0, &[0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0], 1024, &[])
            .unwrap();
        assert_eq!(r.status, Status::GOOD);
        r.data
    };
    let data = read(&mut c);
    assert!(data[..512].iter().all(|&b| b == 3) && data[512..].iter().all(|&b| b == 4));
    // WRITE (10) block 4 goes to the write closure's map; block 3 is untouched.
    let w = c
        .command(0, &[0x2a, 0, 0, 0, 0, 4, 0, 0, 1, 0], 0, &[0x5a; 512])
        .unwrap();
    assert_eq!(w.status, Status::GOOD);
    let data = read(&mut c);
    assert!(data[..512].iter().all(|&b| b == 3) && data[512..].iter().all(|&b| b == 0x5a));
    drop(child);
    let _ = std::fs::remove_file(&sock);
}
