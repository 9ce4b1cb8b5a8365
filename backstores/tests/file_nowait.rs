//! The file backstore's inline fast path (`read_nowait`/`write_nowait`,
//! `preadv2`/`pwritev2` with `RWF_NOWAIT`) against its engines.
//!
//! Whether the kernel takes `RWF_NOWAIT` depends on the file system, so
//! each test first asks the kernel itself, on a descriptor of its own (the
//! oracle), and then holds the backstore to that answer: `Some` with the
//! engine's data where the kernel completes the call, `None` with nothing
//! done where it refuses. Files live under `CARGO_TARGET_TMPDIR`, on the
//! file system of the build (ext4 here, where reads from the page cache go
//! inline and buffered writes are refused).
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use common::*;
use futures::executor::block_on;
use tgtkit_backstores::file::{FileBackstore, FileOptions, IoEngine};
use tgtkit_scsi_core::backstore::{Backstore, IoError, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

fn engines() -> Vec<IoEngine> {
    #[allow(unused_mut)]
    let mut list = vec![IoEngine::ThreadPool];
    #[cfg(feature = "io-uring")]
    list.push(IoEngine::IoUring);
    list
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn new_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// What the kernel answers to one `RWF_NOWAIT` call of `len` bytes at
/// `offset` on a fresh descriptor of `path`: the bytes moved, or the error.
/// A write stores what the file already holds, so it changes nothing.
fn oracle(path: &Path, offset: u64, len: usize, write: bool) -> io::Result<usize> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut data = vec![0u8; len];
    let iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: len,
    };
    let fd = file.as_raw_fd();
    let off = offset as libc::off_t;
    // SAFETY: one iovec naming a live local vector.
    let r = unsafe {
        if write {
            if libc::pread(fd, data.as_mut_ptr().cast(), len, off) != len as isize {
                return Err(io::Error::other("short plain read"));
            }
            libc::pwritev2(fd, &iov, 1, off, libc::RWF_NOWAIT)
        } else {
            libc::preadv2(fd, &iov, 1, off, libc::RWF_NOWAIT)
        }
    };
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

fn refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS)
    )
}

/// Fill `len` bytes at `offset` with a pattern through the engine (so the
/// pages are cached) and return it.
fn seed(b: &FileBackstore, offset: u64, len: usize, seed: u64) -> Vec<u8> {
    let data = pattern(seed, len);
    block_on(write_bytes(b, offset, &data, &[], false));
    data
}

fn garbage(len: usize, cuts: &[usize]) -> DataBuffer {
    let buf = scattered(len, cuts, true);
    buf.fill(0, len, 0xee);
    buf
}

#[test]
fn accepts_nowait_reads_of_cached_data_identical_to_the_engine() {
    for engine in engines() {
        let dir = tempdir();
        let path = new_file(dir.path(), "a.img", 1 << 20);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        let data = seed(&b, 4096, 300 * 512, 1);
        let kernel = oracle(&path, 4096, 4096, false);
        // One segment, odd cuts, and 300 segments (several RWF_NOWAIT calls).
        for cuts in [vec![], vec![511, 3, 4000], vec![512; 300]] {
            let buf = garbage(data.len(), &cuts);
            let got = b.read_nowait(4096, &buf);
            match &kernel {
                Ok(n) => {
                    assert_eq!(*n, 4096);
                    assert!(matches!(got, Some(Ok(()))), "{engine:?} {cuts:?}: {got:?}");
                    assert_eq!(buf.to_vec(), data, "{engine:?} {cuts:?}");
                    // The engine reads the same.
                    let slow = block_on(read_bytes(&b, 4096, data.len(), &cuts));
                    assert_eq!(slow, buf.to_vec());
                }
                Err(err) if refused(err) => {
                    eprintln!("NOTE RWF_NOWAIT reads refused here: {err}");
                    assert!(got.is_none(), "{got:?}");
                    assert!(buf.to_vec().iter().all(|&x| x == 0xee), "nothing done");
                }
                Err(err) => panic!("the kernel fails a cached RWF_NOWAIT read: {err}"),
            }
        }
        // Half cached, half not: the first RWF_NOWAIT call moves the cached
        // half only, a short transfer, so the fast path declines and the
        // engine reads it all; then it is cached and goes inline.
        if kernel.is_ok() {
            let fresh = new_file(dir.path(), "b.img", 1 << 20);
            std::fs::write(&fresh, pattern(2, 1 << 20)).unwrap();
            let b = FileOptions::new().engine(engine).open(&fresh).unwrap();
            drop_cache(&fresh, 0, 0);
            let first = block_on(read_bytes(&b, 0, 4096, &[]));
            // The engine's read ahead cached more than asked: evict that.
            drop_cache(&fresh, 4096, 4096);
            let buf = garbage(8192, &[]);
            let got = b.read_nowait(0, &buf);
            assert!(got.is_none(), "{engine:?}: {got:?}");
            let slow = block_on(read_bytes(&b, 0, 8192, &[100]));
            assert_eq!(slow[..4096], first);
            assert_eq!(slow, pattern(2, 1 << 20)[..8192]);
            // Declining for want of the cache is no refusal.
            let buf = garbage(8192, &[]);
            assert!(matches!(b.read_nowait(0, &buf), Some(Ok(()))));
            assert_eq!(buf.to_vec(), slow);
        }
    }
}

/// Write the file's dirty pages out and drop the clean ones of
/// `[offset, offset + len)` (`len` 0: to the end) from the page cache.
fn drop_cache(path: &Path, offset: i64, len: i64) {
    let f = File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: plain integers on a live descriptor.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
}

#[test]
fn accepts_nowait_writes_identical_to_the_engine_or_declines_untouched() {
    for engine in engines() {
        let dir = tempdir();
        let path = new_file(dir.path(), "a.img", 1 << 20);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        let old = seed(&b, 8192, 8192, 3);
        let kernel = oracle(&path, 8192, 8192, true);
        for (i, cuts) in [vec![], vec![100, 4000, 1], vec![512; 16]]
            .into_iter()
            .enumerate()
        {
            let new = pattern(10 + i as u64, 8192);
            let buf = scattered(new.len(), &cuts, true);
            buf.write_at(0, &new);
            let got = b.write_nowait(8192, &buf, WriteFlags::empty());
            let now = block_on(read_bytes(&b, 8192, 8192, &[]));
            match &kernel {
                Ok(_) => {
                    assert!(matches!(got, Some(Ok(()))), "{engine:?}: {got:?}");
                    assert_eq!(now, new);
                }
                Err(err) if refused(err) => {
                    eprintln!("NOTE RWF_NOWAIT buffered writes refused here: {err}");
                    assert!(got.is_none(), "{got:?}");
                    assert_eq!(now, old, "nothing done");
                    // The engine writes it.
                    block_on(b.write(8192, buf.clone(), WriteFlags::empty())).unwrap();
                    assert_eq!(block_on(read_bytes(&b, 8192, 8192, &[7])), new);
                    block_on(write_bytes(&b, 8192, &old, &[], false));
                }
                // A dirty page may make the kernel say "would block".
                Err(err) if err.raw_os_error() == Some(libc::EAGAIN) => {
                    assert!(got.is_none() || matches!(got, Some(Ok(()))), "{got:?}");
                }
                Err(err) => panic!("the kernel fails an RWF_NOWAIT write: {err}"),
            }
        }
        // Reads go inline whatever the writes do.
        if oracle(&path, 8192, 4096, false).is_ok() {
            let want = block_on(read_bytes(&b, 8192, 8192, &[]));
            let buf = garbage(8192, &[3]);
            assert!(matches!(b.read_nowait(8192, &buf), Some(Ok(()))));
            assert_eq!(buf.to_vec(), want);
        }
    }
}

#[test]
fn rejects_nowait_writes_needing_durability() {
    // FUA, or the write cache off, needs the data durable: not inline.
    let dir = tempdir();
    let path = new_file(dir.path(), "a.img", 1 << 20);
    let b = FileBackstore::open(&path).unwrap();
    let old = seed(&b, 0, 4096, 4);
    let buf = DataBuffer::from_vec(vec![9; 4096]);
    assert!(b.write_nowait(0, &buf, WriteFlags::FUA).is_none());
    b.set_write_cache(false).unwrap();
    assert!(b.write_nowait(0, &buf, WriteFlags::empty()).is_none());
    assert_eq!(block_on(read_bytes(&b, 0, 4096, &[])), old, "nothing done");
    // An empty durable write is a flush: the engine's business too.
    assert!(b
        .write_nowait(0, &DataBuffer::empty(), WriteFlags::empty())
        .is_none());
    b.set_write_cache(true).unwrap();
    assert!(matches!(
        b.write_nowait(0, &DataBuffer::empty(), WriteFlags::empty()),
        Some(Ok(()))
    ));
}

#[test]
fn rejects_nowait_on_direct_io() {
    let dir = tempdir();
    let path = new_file(dir.path(), "a.img", 1 << 20);
    for engine in engines() {
        let b = match FileOptions::new().engine(engine).direct(true).open(&path) {
            Ok(b) => b,
            Err(err) => {
                eprintln!("SKIP direct I/O refused by this file system: {err}");
                return;
            }
        };
        let data = pattern(5, 8192);
        let buf = aligned(8192, 4096);
        buf.write_at(0, &data);
        block_on(b.write(0, buf.clone(), WriteFlags::empty())).unwrap();
        // Even data the page cache might hold: a direct read reaches the disk.
        let out = aligned(8192, 4096);
        assert!(b.read_nowait(0, &out).is_none(), "{engine:?}");
        assert!(b.write_nowait(0, &out, WriteFlags::empty()).is_none());
        block_on(b.read(0, out.clone())).unwrap();
        assert_eq!(out.to_vec(), data, "the zeroes were not written");
    }
}

#[test]
fn accepts_nowait_reads_past_eof_as_zeroes_like_the_engine() {
    for engine in engines() {
        let dir = tempdir();
        let path = new_file(dir.path(), "a.img", 64 * 1024);
        let b = FileOptions::new().engine(engine).open(&path).unwrap();
        seed(&b, 0, 64 * 1024, 6);
        // Someone else truncates the file under the backstore.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10_000)
            .unwrap();
        let supported = oracle(&path, 0, 512, false).is_ok();
        for (offset, len) in [(32768, 8192), (8192, 8192), (9728, 512)] {
            let slow = block_on(read_bytes(&b, offset, len, &[]));
            let buf = garbage(len, &[100]);
            match b.read_nowait(offset, &buf) {
                Some(Ok(())) => assert_eq!(buf.to_vec(), slow, "{engine:?} {offset}"),
                // Spanning the end is a short transfer: the engine's.
                None if !supported || offset < 10_000 => {}
                other => panic!("{engine:?} {offset}+{len}: {other:?}"),
            }
        }
        if supported {
            // Wholly past the end: zeroes, inline.
            let buf = garbage(8192, &[100]);
            assert!(matches!(b.read_nowait(32768, &buf), Some(Ok(()))));
            assert!(buf.to_vec().iter().all(|&x| x == 0));
        }
    }
}

#[test]
fn rejects_out_of_range_and_read_only_inline_as_the_engine_does() {
    let dir = tempdir();
    let path = new_file(dir.path(), "a.img", 65536);
    let b = FileBackstore::open(&path).unwrap();
    let buf = DataBuffer::zeroed(4096);
    for offset in [65536 - 512, 65536, u64::MAX - 511] {
        let fast = b.read_nowait(offset, &buf);
        let slow = block_on(b.read(offset, buf.clone()));
        assert!(matches!(fast, Some(Err(IoError::OutOfRange))), "{fast:?}");
        assert!(matches!(slow, Err(IoError::OutOfRange)), "{slow:?}");
        let fast = b.write_nowait(offset, &buf, WriteFlags::empty());
        assert!(matches!(fast, Some(Err(IoError::OutOfRange))), "{fast:?}");
    }
    assert!(matches!(
        b.read_nowait(4096, &DataBuffer::empty()),
        Some(Ok(()))
    ));
    let ro = FileOptions::new().read_only(true).open(&path).unwrap();
    let fast = ro.write_nowait(0, &buf, WriteFlags::empty());
    assert!(matches!(fast, Some(Err(IoError::ReadOnly))), "{fast:?}");
    assert!(matches!(
        block_on(ro.write(0, buf.clone(), WriteFlags::empty())),
        Err(IoError::ReadOnly)
    ));
}
