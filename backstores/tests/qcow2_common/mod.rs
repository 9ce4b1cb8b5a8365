//! Helpers shared by the qcow2 peer tests: qemu-img, temp dirs, data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use tgtkit_backstores::qcow2::{Qcow2Backstore, Qcow2Options};
use tgtkit_scsi_core::backstore::Backstore;
use tgtkit_scsi_core::buffer::DataBuffer;

/// Run a qemu tool; fails the test (never skips) if it is missing.
pub fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} is required for this test (apt-get install qemu-utils): {e}")
    })
}

/// Run qemu-img and require success.
pub fn qemu_img(args: &[&str]) -> String {
    let out = run("qemu-img", args);
    assert!(
        out.status.success(),
        "qemu-img {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run qemu-io on an image and require success.
pub fn qemu_io(fmt: &str, image: &Path, cmd: &str) {
    let out = run("qemu-io", &["-f", fmt, "-c", cmd, image.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("failed"),
        "qemu-io {cmd} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "tgtkit-qcow2-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Open with default options (read-write unless `read_only`).
pub async fn open(path: &Path, read_only: bool) -> Qcow2Backstore {
    Qcow2Backstore::open(
        path,
        Qcow2Options {
            read_only,
            io_threads: 4,
            ..Qcow2Options::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Read the whole virtual disk through the backstore.
pub async fn read_all(bs: &Qcow2Backstore) -> Vec<u8> {
    let size = usize::try_from(bs.geometry().size).unwrap();
    let mut out = vec![0u8; size];
    let chunk = 1 << 20;
    let mut at = 0;
    while at < size {
        let n = (size - at).min(chunk);
        let buf = DataBuffer::zeroed(n);
        bs.read(at as u64, buf.clone()).await.unwrap();
        buf.read_at(0, &mut out[at..at + n]);
        at += n;
    }
    out
}

/// `qemu-img convert -O raw` of an image, read back.
pub fn qemu_raw(dir: &TempDir, image: &Path) -> Vec<u8> {
    let raw = dir.path("qemu-converted.raw");
    qemu_img(&[
        "convert",
        "-O",
        "raw",
        image.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    let data = std::fs::read(&raw).unwrap();
    std::fs::remove_file(&raw).unwrap();
    data
}

/// `qemu-img check` output and exit code (0 clean, 2 corrupt, 3 leaks).
pub fn qemu_check(image: &Path) -> (i32, String) {
    let out = run(
        "qemu-img",
        &["check", "-f", "qcow2", image.to_str().unwrap()],
    );
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A raw file with data, zero runs and holes, for conversion by qemu-img.
pub fn make_raw_source(path: &Path, size: usize, seed: u64) -> Vec<u8> {
    let mut data = pseudo_random(seed, size);
    // Zero every third 64 KiB stretch, and a 3 KiB run at an odd place.
    for (i, chunk) in data.chunks_mut(64 << 10).enumerate() {
        if i % 3 == 1 {
            chunk.fill(0);
        }
    }
    let odd = 5 * 4096 + 512;
    data[odd..odd + 3072].fill(0);
    // Compressible text in the fifth stretch.
    let start = 4 * (64 << 10);
    if start + 4096 <= size {
        for (i, b) in data[start..start + (64 << 10).min(size - start)]
            .iter_mut()
            .enumerate()
        {
            *b = b"tgtkit qcow2 "[i % 13];
        }
    }
    std::fs::write(path, &data).unwrap();
    data
}
