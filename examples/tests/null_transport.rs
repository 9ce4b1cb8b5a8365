//! `null-transport` run as a program: its own `--client`, and the
//! initiator side of `tgtkit_examples::null_proto` against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tgtkit_examples::null_proto::{Client, MAX_FRAME};
use tgtkit_scsi_core::status::Status;

const BIN: &str = env!("CARGO_BIN_EXE_null-transport");

/// The server, killed (and its socket removed) when dropped.
struct Server(Child, PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

fn socket(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tgtkit-null-{name}-{}.sock", std::process::id()))
}

/// Start the server on `sock` and wait for its "listening" line.
fn start(sock: &Path, args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn null-transport");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("null-transport: listening on {}", sock.display())
    );
    Server(child, sock.to_owned())
}

fn connect(sock: &Path) -> Client<UnixStream> {
    Client::new(UnixStream::connect(sock).expect("connect"))
}

#[test]
fn client_mode_writes_and_reads_back() {
    let sock = socket("client");
    let _server = start(&sock, &["--lun", "ram:16M"]);
    let out = Command::new(BIN)
        .args(["--client", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("inquiry: vendor=TGTKIT product=VIRTUAL-DISK"),
        "{stdout}"
    );
    assert!(
        stdout.contains("capacity: blocks=32768 block_size=512"),
        "{stdout}"
    );
    assert!(
        stdout.contains("write+read: 4096 bytes at lba 32760 verified"),
        "{stdout}"
    );
}

#[test]
fn engine_answers_errors_with_sense() {
    let sock = socket("sense");
    let _server = start(&sock, &["--lun", "ram:1M"]);
    let mut c = connect(&sock);
    // A new nexus: UNIT ATTENTION, POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    let first = c.command(0, &[0; 6], 0, &[]).unwrap();
    assert_eq!(first.status, Status::CHECK_CONDITION);
    assert_eq!(first.sense_code().map(|s| (s.0, s.1)), Some((0x6, 0x29)));
    c.wait_ready(0).unwrap();
    // An opcode the engine does not implement.
    let r = c.command(0, &[0xc7, 0, 0, 0, 0, 0], 0, &[]).unwrap();
    assert_eq!(r.sense_code(), Some((0x5, 0x20, 0x00)));
    // READ (10) of block 2048 on a 2048-block disk.
    let r = c
        .command(0, &[0x28, 0, 0, 0, 8, 0, 0, 0, 1, 0], 512, &[])
        .unwrap();
    assert_eq!(r.sense_code(), Some((0x5, 0x21, 0x00)));
    // A LUN that does not exist: LOGICAL UNIT NOT SUPPORTED.
    let r = c.command(7, &[0; 6], 0, &[]).unwrap();
    assert_eq!(r.sense_code(), Some((0x5, 0x25, 0x00)));
    // REPORT LUNS lists the one LUN.
    let r = c
        .command(0, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], 64, &[])
        .unwrap();
    assert_eq!(r.status, Status::GOOD);
    assert_eq!(
        &r.data[..4],
        &8u32.to_be_bytes(),
        "one LUN, 8 bytes of list"
    );
}

#[test]
fn each_connection_is_its_own_nexus() {
    let sock = socket("nexus");
    let _server = start(&sock, &["--lun", "ram:1M"]);
    let mut a = connect(&sock);
    let mut b = connect(&sock);
    a.wait_ready(0).unwrap();
    b.wait_ready(0).unwrap();
    // RESERVE (6) from A: B, another I_T nexus, is now in conflict.
    assert_eq!(
        a.command(0, &[0x16, 0, 0, 0, 0, 0], 0, &[]).unwrap().status,
        Status::GOOD
    );
    assert_eq!(
        b.command(0, &[0; 6], 0, &[]).unwrap().status,
        Status::RESERVATION_CONFLICT
    );
    assert_eq!(a.command(0, &[0; 6], 0, &[]).unwrap().status, Status::GOOD);
    // A hangs up: I_T nexus loss releases its reservation.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = b.command(0, &[0; 6], 0, &[]).unwrap().status;
        if status == Status::GOOD {
            break;
        }
        assert_eq!(status, Status::RESERVATION_CONFLICT);
        assert!(Instant::now() < deadline, "reservation outlived its nexus");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rejects_oversized_frame_and_keeps_serving() {
    let sock = socket("frame");
    let _server = start(&sock, &["--lun", "ram:1M"]);
    let mut raw = UnixStream::connect(&sock).unwrap();
    let too_long = u32::try_from(MAX_FRAME + 1).unwrap();
    raw.write_all(&too_long.to_be_bytes()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    // The server closes the connection without answering.
    assert_eq!(raw.read_to_end(&mut rest).unwrap(), 0);
    // A READ (10) asking for data-in and sending data-out at once: refused too.
    let mut raw = UnixStream::connect(&sock).unwrap();
    let mut frame = vec![0, 0, 0, 18, 0, 10, 0, 0, 2, 0];
    frame.extend_from_slice(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    frame.extend_from_slice(&[0xaa, 0xbb]);
    raw.write_all(&frame).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(raw.read_to_end(&mut rest).unwrap(), 0);
    // Other connections are unaffected.
    connect(&sock).wait_ready(0).unwrap();
}
