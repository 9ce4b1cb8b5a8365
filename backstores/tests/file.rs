//! Tests of the file backstore through the `Backstore` trait, on regular
#![allow(clippy::cast_possible_truncation)]
//! files (and a tmpfs and a loop device where this machine permits).

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use futures::executor::block_on;
use proptest::prelude::*;
use tgtkit_backstores::file::{FileBackstore, FileOptions, IoEngine};
use tgtkit_backstores::ConfigError;
use tgtkit_scsi_core::backstore::{
    AllocationState, Backstore, Capabilities, Extent, IoError, WriteFlags,
};
use tgtkit_scsi_core::buffer::DataBuffer;

/// The engines to run each test with: the thread pool, and io_uring when
/// the feature is on and the kernel lets us set up a ring.
fn engines() -> Vec<IoEngine> {
    #[allow(unused_mut)]
    let mut list = vec![IoEngine::ThreadPool];
    #[cfg(feature = "io-uring")]
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.img");
        std::fs::File::create(&path).unwrap().set_len(4096).unwrap();
        let b = FileOptions::new()
            .engine(IoEngine::IoUring)
            .open(&path)
            .unwrap();
        // Ask the kernel directly, so a bug in our set-up cannot pass for
        // a kernel without io_uring.
        match io_uring::IoUring::new(8) {
            Ok(_) => {
                assert_eq!(
                    b.engine(),
                    IoEngine::IoUring,
                    "the kernel has io_uring but the backstore fell back"
                );
                list.push(IoEngine::IoUring);
            }
            Err(err) => {
                assert_eq!(b.engine(), IoEngine::ThreadPool);
                eprintln!("SKIP io_uring engine: io_uring_setup refused by this kernel: {err}");
            }
        }
    }
    list
}

fn new_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    path
}

fn file_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut out = vec![0; len];
    f.read_exact(&mut out).unwrap();
    out
}

#[test]
fn accepts_round_trips_over_scattered_buffers() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 1 << 20);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        block_on(async {
            for (i, cuts) in [
                vec![1],
                vec![511, 3, 4000],
                vec![4095, 2],
                vec![],
                vec![1; 100],
            ]
            .iter()
            .enumerate()
            {
                let off = 4096 * 5 - 512 * (i as u64 + 1);
                let data = pattern(i as u64, 8192 + 512);
                write_bytes(&b, off, &data, cuts, i % 2 == 1).await;
                assert_eq!(
                    read_bytes(&b, off, data.len(), &[7, 1000, 3]).await,
                    data,
                    "{engine:?}"
                );
                // What the file holds, through another descriptor.
                assert_eq!(file_bytes(&path, off, data.len()), data);
            }
        });
    }
}

#[test]
fn accepts_more_segments_than_one_syscall_takes() {
    // 300 one-block segments: more than the 64 iovecs passed per call.
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 1 << 20);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        let data = pattern(42, 300 * 512);
        block_on(async {
            write_bytes(&b, 512, &data, &[512; 300], false).await;
            assert_eq!(read_bytes(&b, 512, data.len(), &[512; 300]).await, data);
        });
    }
}

#[test]
fn accepts_eof_of_a_shrunk_file_as_zeroes() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 64 * 1024);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        block_on(write_bytes(&b, 0, &[7; 64 * 1024], &[], false));
        // Someone else truncates the file: reads past its end give zeroes.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10_000)
            .unwrap();
        let got = block_on(read_bytes(&b, 8192, 8192, &[100, 3000]));
        assert!(got[..10_000 - 8192].iter().all(|&x| x == 7));
        assert!(got[10_000 - 8192..].iter().all(|&x| x == 0), "{engine:?}");
        // Size refresh: rounded down to the logical block size.
        assert_eq!(b.refresh_size().unwrap(), 9728);
        assert_eq!(b.geometry().size, 9728);
    }
}

#[test]
fn accepts_resize_of_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "a.img", 1 << 20);
    let b = FileBackstore::open(&path).unwrap();
    b.resize(2 << 20).unwrap();
    assert_eq!(b.geometry().size, 2 << 20);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 << 20);
    assert!(matches!(b.resize(1000), Err(ConfigError::Size { .. })));
    block_on(b.write(
        (2 << 20) - 512,
        DataBuffer::zeroed(512),
        WriteFlags::empty(),
    ))
    .unwrap();
    assert!(matches!(
        block_on(b.write(2 << 20, DataBuffer::zeroed(512), WriteFlags::empty())),
        Err(IoError::OutOfRange)
    ));
}

#[test]
fn accepts_discard_zeroes_and_allocation_status() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 1 << 20);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        let caps = b.capabilities();
        // ext4 and tmpfs punch holes and know SEEK_DATA.
        assert!(
            caps.contains(
                Capabilities::DISCARD
                    | Capabilities::DISCARD_ZEROES
                    | Capabilities::ALLOCATION_STATUS
            ),
            "{caps:?}"
        );
        block_on(async {
            assert_eq!(
                b.allocation(0, 1 << 20).await.unwrap(),
                Extent {
                    len: 1 << 20,
                    state: AllocationState::Deallocated
                }
            );
            write_bytes(&b, 64 * 1024, &[1; 128 * 1024], &[], false).await;
            assert_eq!(
                b.allocation(0, 1 << 20).await.unwrap(),
                Extent {
                    len: 64 * 1024,
                    state: AllocationState::Deallocated
                }
            );
            assert_eq!(
                b.allocation(64 * 1024, 1 << 20).await.unwrap(),
                Extent {
                    len: 128 * 1024,
                    state: AllocationState::Mapped
                }
            );
            b.discard(64 * 1024, 64 * 1024).await.unwrap();
            assert_eq!(
                b.allocation(0, 1 << 20).await.unwrap(),
                Extent {
                    len: 128 * 1024,
                    state: AllocationState::Deallocated
                }
            );
            let got = read_bytes(&b, 64 * 1024, 128 * 1024, &[]).await;
            assert!(got[..64 * 1024].iter().all(|&x| x == 0));
            assert!(got[64 * 1024..].iter().all(|&x| x == 1));
            // write-zeroes with may-unmap deallocates; without, the data is
            // zero and stays allocated (or at least reads as zeroes).
            b.write_zeroes(128 * 1024, 32 * 1024, true).await.unwrap();
            assert_eq!(
                b.allocation(128 * 1024, 32 * 1024).await.unwrap().state,
                AllocationState::Deallocated
            );
            b.write_zeroes(160 * 1024, 4096, false).await.unwrap();
            let got = read_bytes(&b, 128 * 1024, 64 * 1024, &[]).await;
            assert!(got[..36 * 1024].iter().all(|&x| x == 0));
            assert!(got[36 * 1024..].iter().all(|&x| x == 1));
            assert_eq!(file_bytes(&path, 160 * 1024, 4096), vec![0; 4096]);
        });
    }
}

#[test]
fn rejects_writes_when_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "a.img", 1 << 20);
    let b = FileOptions::new().read_only(true).open(&path).unwrap();
    assert!(!b.capabilities().contains(Capabilities::DISCARD));
    block_on(check_read_only(&b));
}

#[test]
fn rejects_what_is_not_a_file_or_device() {
    let dir = tempfile::tempdir().unwrap();
    let r = FileOptions::new().read_only(true).open(dir.path());
    assert!(
        matches!(
            r,
            Err(ConfigError::UnsupportedFileType(_)) | Err(ConfigError::Io { .. })
        ),
        "{r:?}"
    );
    let r = FileBackstore::open(dir.path().join("missing"));
    assert!(matches!(r, Err(ConfigError::Io { .. })), "{r:?}");
    let path = new_file(dir.path(), "a.img", 4096);
    let r = FileOptions::new().logical_block_size(1000).open(&path);
    assert!(
        matches!(r, Err(ConfigError::LogicalBlockSize(1000))),
        "{r:?}"
    );
}

#[test]
fn accepts_fua_and_write_cache_off() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 1 << 20);
        let b = FileOptions::new()
            .engine(engine)
            .write_cache(false)
            .open(&path)
            .unwrap();
        assert!(!b.write_cache());
        assert!(!b.capabilities().contains(Capabilities::WRITE_CACHE));
        block_on(async {
            write_bytes(&b, 0, &[4; 4096], &[100], false).await;
            write_bytes(&b, 4096, &[5; 4096], &[100], true).await;
            b.set_write_cache(true).unwrap();
            write_bytes(&b, 8192, &[6; 4096], &[100], true).await;
            b.flush().await.unwrap();
        });
        assert_eq!(file_bytes(&path, 0, 4096), vec![4; 4096]);
        assert_eq!(file_bytes(&path, 4096, 4096), vec![5; 4096]);
        assert_eq!(file_bytes(&path, 8192, 4096), vec![6; 4096]);
    }
}

#[test]
fn accepts_direct_io_with_and_without_bounce() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 1 << 20);
        let b = match FileOptions::new()
            .engine(engine)
            .direct(true)
            .logical_block_size(4096)
            .open(&path)
        {
            Ok(b) => b,
            Err(err) => {
                eprintln!("SKIP direct I/O: this file system refuses O_DIRECT: {err}");
                return;
            }
        };
        block_on(async {
            // Aligned segments go straight to the device.
            let data = pattern(9, 3 * 4096);
            let buf = aligned(data.len(), 8192);
            buf.write_at(0, &data);
            b.write(4096, buf, WriteFlags::FUA).await.unwrap();
            let out = aligned(data.len(), 4096);
            b.read(4096, out.clone()).await.unwrap();
            assert_eq!(out.to_vec(), data);
            // Misaligned segments take the bounce buffer.
            let data2 = pattern(10, 2 * 4096);
            write_bytes(&b, 16384, &data2, &[1, 4095, 3], false).await;
            assert_eq!(read_bytes(&b, 16384, data2.len(), &[17, 5000]).await, data2);
        });
        assert_eq!(file_bytes(&path, 4096, 3 * 4096), pattern(9, 3 * 4096));
        assert_eq!(file_bytes(&path, 16384, 2 * 4096), pattern(10, 2 * 4096));
    }
}

#[test]
fn accepts_many_commands_in_flight() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 8 << 20);
        let b: Arc<dyn Backstore> = Arc::new(
            FileOptions::new()
                .engine(engine)
                .threads(4)
                .open(&path)
                .unwrap(),
        );
        block_on(check_concurrency(b, 256, 8192 + 512));
    }
}

/// Mount a 1 MiB tmpfs at `dir`; `Err` says why it could not.
fn mount_small_tmpfs(dir: &Path) -> Result<(), std::io::Error> {
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: all pointers are NUL-terminated strings alive for the call.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=1m".as_ptr().cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn umount(dir: &Path) {
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path alive for the call.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
}

#[test]
fn rejects_writes_on_a_full_file_system_as_no_space() {
    let dir = tempfile::tempdir().unwrap();
    match mount_small_tmpfs(dir.path()) {
        Ok(()) => {}
        // Skip only for want of the privilege; any other failure is a fault.
        Err(why) if matches!(why.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            eprintln!("SKIP ENOSPC test: mounting a tmpfs is not permitted here: {why}");
            return;
        }
        Err(why) => panic!("mounting a 1 MiB tmpfs failed: {why}"),
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            umount(self.0);
        }
    }
    let _guard = Unmount(dir.path());
    for engine in engines() {
        // A sparse 8 MiB file on a 1 MiB file system.
        let path = new_file(dir.path(), "big.img", 8 << 20);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        let r = block_on(async {
            for i in 0..16u64 {
                b.write(
                    i * 512 * 1024,
                    DataBuffer::from_vec(vec![1; 512 * 1024]),
                    WriteFlags::empty(),
                )
                .await?;
            }
            Ok(())
        });
        // SBC-4: SPACE ALLOCATION FAILED WRITE PROTECT.
        assert!(matches!(r, Err(IoError::NoSpace)), "{engine:?}: {r:?}");
        drop(b);
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn accepts_a_block_device() {
    let dir = tempfile::tempdir().unwrap();
    let img = new_file(dir.path(), "loop.img", 4 << 20);
    let out = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&img)
        .output();
    let dev = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            eprintln!(
                "SKIP block device test: losetup failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(err) => {
            eprintln!("SKIP block device test: no losetup: {err}");
            return;
        }
    };
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .arg("-d")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Detach(dev.clone());
    for engine in engines() {
        let b = FileOptions::new().engine(engine).open(&dev).unwrap();
        assert!(b.is_block_device());
        assert_eq!(b.geometry().size, 4 << 20);
        assert!(!b.capabilities().contains(Capabilities::ALLOCATION_STATUS));
        block_on(async {
            let data = pattern(3, 8192);
            write_bytes(&b, 4096, &data, &[100, 1], true).await;
            assert_eq!(read_bytes(&b, 4096, 8192, &[3]).await, data);
            b.write_zeroes(4096, 4096, false).await.unwrap();
            let got = read_bytes(&b, 4096, 8192, &[]).await;
            assert!(got[..4096].iter().all(|&x| x == 0));
            assert_eq!(got[4096..], data[4096..]);
            // Offered only when sysfs says the device discards; then it works.
            if b.capabilities().contains(Capabilities::DISCARD) {
                b.discard(0, 65536).await.expect("discard on a loop device");
            }
            assert!(!b.capabilities().contains(Capabilities::DISCARD_ZEROES));
            assert_eq!(
                b.allocation(0, 4096).await.unwrap(),
                Extent {
                    len: 4096,
                    state: AllocationState::Mapped
                }
            );
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn accepts_random_op_sequences_like_the_model(ops in proptest::collection::vec(op_strategy(64), 1..30)) {
        for engine in engines() {
            let dir = tempfile::tempdir().unwrap();
            let path = new_file(dir.path(), "a.img", 64 * 4096);
            let b = FileOptions::new().engine(engine).logical_block_size(4096).open(&path).unwrap();
            let mut model = Model::new(64 * 4096);
            block_on(run_ops(&b, &mut model, &ops));
        }
    }
}

/// The io_uring engine and the thread pool must leave identical files after
/// the same operations, buffered (writes on the pool, reads on the ring)
/// and with `O_DIRECT` (everything on the ring) where the file system
/// allows it. Fails (does not skip) when the ring runs and the results
/// differ.
#[cfg(feature = "io-uring")]
#[test]
fn accepts_io_uring_results_identical_to_the_pool() {
    use proptest::strategy::ValueTree;
    if !engines().contains(&IoEngine::IoUring) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = proptest::test_runner::Config {
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    };
    let rng = proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    );
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(config, rng);
    let strategy = proptest::collection::vec(op_strategy(256), 50..100);
    for round in 0..16 {
        let direct = round % 2 == 1;
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut results = Vec::new();
        for engine in [IoEngine::ThreadPool, IoEngine::IoUring] {
            let path = new_file(dir.path(), &format!("{round}-{engine:?}.img"), 256 * 512);
            let opened = FileOptions::new().engine(engine).direct(direct).open(&path);
            let b = match opened {
                Ok(b) => b,
                Err(err) if direct => {
                    eprintln!("SKIP direct round {round}: O_DIRECT refused here: {err}");
                    break;
                }
                Err(err) => panic!("open: {err}"),
            };
            assert_eq!(b.engine(), engine);
            let mut model = Model::new(256 * 512);
            block_on(run_ops(&b, &mut model, &ops));
            drop(b);
            results.push(std::fs::read(&path).unwrap());
        }
        assert!(
            results.len() < 2 || results[0] == results[1],
            "io_uring and pool results differ in round {round} (direct: {direct})"
        );
    }
}

#[test]
fn accepts_a_file_written_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "a.img", 8192);
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&pattern(1, 8192)).unwrap();
    f.sync_all().unwrap();
    let b = FileOptions::new().read_only(true).open(&path).unwrap();
    assert_eq!(
        block_on(read_bytes(&b, 0, 8192, &[1, 2, 3])),
        pattern(1, 8192)
    );
}

#[test]
fn accepts_futures_dropped_while_in_flight() {
    // An aborted command's future is dropped while its I/O runs: the
    // buffer stays alive for the worker, later commands still work, and
    // dropping the backstore waits for the I/O instead of hanging.
    use std::task::Context;
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let path = new_file(dir.path(), "a.img", 4 << 20);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for i in 0..64u64 {
            let buf = scattered(65536, &[100, 4000], true);
            buf.fill(0, 65536, i as u8);
            let mut w = b.write(i * 65536, buf, WriteFlags::empty());
            let mut r = b.read(i * 65536, scattered(65536, &[7], true));
            let _ = w.as_mut().poll(&mut cx);
            let _ = r.as_mut().poll(&mut cx);
            drop((w, r));
        }
        block_on(b.flush()).unwrap();
        // Every dropped write ran to completion.
        for i in 0..64u64 {
            let got = block_on(read_bytes(&b, i * 65536, 65536, &[]));
            assert!(got.iter().all(|&x| x == i as u8), "{engine:?} block {i}");
        }
        drop(b);
    }
}

#[test]
fn offers_atomic_writes_aligned_to_the_physical_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_file(dir.path(), "atomic.img", 1 << 20);
    for engine in engines() {
        let plain = FileOptions::new().engine(engine).open(&path).unwrap();
        let l = plain.atomic_limits().expect("file offers atomic writes");
        assert_eq!((l.alignment, l.granularity, l.crash_atomic), (0, 0, false));
        let b = FileOptions::new()
            .engine(engine)
            .physical_block_size(4096)
            .open(&path)
            .unwrap();
        let l = b.atomic_limits().unwrap();
        assert_eq!((l.alignment, l.granularity), (4096, 4096));
        assert_eq!(l.max_bytes, tgtkit_backstores::ATOMIC_MAX_BYTES);
        block_on(async {
            b.write_atomic(
                8192,
                DataBuffer::from_vec(vec![0x3c; 8192]),
                WriteFlags::FUA,
            )
            .await
            .unwrap();
            let back = DataBuffer::zeroed(8192);
            b.read(8192, back.clone()).await.unwrap();
            assert_eq!(back.to_vec(), vec![0x3c; 8192]);
            // Past the end is refused, not written in part.
            let r = b
                .write_atomic(
                    (1 << 20) - 4096,
                    DataBuffer::zeroed(8192),
                    WriteFlags::empty(),
                )
                .await;
            assert!(matches!(r, Err(IoError::OutOfRange)), "{r:?}");
        });
        let ro = FileOptions::new()
            .read_only(true)
            .engine(engine)
            .open(&path)
            .unwrap();
        let r = block_on(ro.write_atomic(0, DataBuffer::zeroed(512), WriteFlags::empty()));
        assert!(matches!(r, Err(IoError::ReadOnly)), "{r:?}");
    }
}
