//! 4 KiB random reads and writes on the ram and file backstores, at queue
//! depth 1 and 32. Throughput is in I/Os per second (criterion's elem/s).
//!
//! `cargo bench -p tgtkit-benches --bench backstores [--features io-uring]`
//! (`-- file-hot` for the file backstore's inline reads against its engines)

#![allow(clippy::cast_possible_truncation)] // 64-bit targets only

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::executor::block_on;
use tgtkit_backstores::file::{FileOptions, IoEngine};
use tgtkit_backstores::ram::RamBackstore;
use tgtkit_scsi_core::backstore::{Backstore, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

const BLOCK: usize = 4096;
/// The working set: 64 MiB (fits the page cache, so the file figures
/// measure the I/O path, not the disk).
const SPAN: u64 = 64 << 20;

struct Rng(u64);

impl Rng {
    fn offset(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % (SPAN / BLOCK as u64)) * BLOCK as u64
    }
}

fn fill(b: &dyn Backstore) {
    let chunk = DataBuffer::from_vec(vec![0x5a; 1 << 20]);
    for i in 0..SPAN >> 20 {
        block_on(b.write(i << 20, chunk.clone(), WriteFlags::empty())).unwrap();
    }
}

fn bench_one(c: &mut Criterion, name: &str, b: &Arc<dyn Backstore>) {
    fill(&**b);
    let bufs: Vec<DataBuffer> = (0..32)
        .map(|_| DataBuffer::from_vec(vec![1; BLOCK]))
        .collect();
    let mut group = c.benchmark_group(format!("backstore/{name}"));
    for qd in [1usize, 32] {
        group.throughput(Throughput::Elements(qd as u64));
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        group.bench_function(format!("randread-4k-qd{qd}"), |bench| {
            bench.iter(|| {
                let ops = bufs[..qd]
                    .iter()
                    .map(|buf| b.read(rng.offset(), buf.clone()));
                for r in block_on(futures::future::join_all(ops)) {
                    r.unwrap();
                }
            });
        });
        group.bench_function(format!("randwrite-4k-qd{qd}"), |bench| {
            bench.iter(|| {
                let ops = bufs[..qd]
                    .iter()
                    .map(|buf| b.write(rng.offset(), buf.clone(), WriteFlags::empty()));
                for r in block_on(futures::future::join_all(ops)) {
                    r.unwrap();
                }
            });
        });
    }
    group.finish();
}

/// The floor: a volatile 4 KiB copy from a random offset of a 64 MiB
/// array into a `DataBuffer`, as the ram backstore's read does.
fn baseline(c: &mut Criterion) {
    let src = vec![0x5au8; SPAN as usize];
    let buf = DataBuffer::from_vec(vec![1; BLOCK]);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut group = c.benchmark_group("backstore/baseline");
    group.throughput(Throughput::Elements(1));
    group.bench_function("memcpy-4k", |bench| {
        bench.iter(|| {
            let at = rng.offset() as usize;
            buf.write_at(0, &src[at..at + BLOCK])
        });
    });
    group.finish();
}

/// One hot 4 KiB block read again and again from the ram backstore,
/// beside a plain memcpy of 4 KiB: the backstore's own overhead, with the
/// memory traffic of random offsets taken out.
fn hot(c: &mut Criterion) {
    let ram = RamBackstore::new(1 << 20).unwrap();
    block_on(ram.write(0, DataBuffer::from_vec(vec![7; BLOCK]), WriteFlags::empty())).unwrap();
    let buf = DataBuffer::from_vec(vec![1; BLOCK]);
    let src = vec![7u8; BLOCK];
    let mut dst = vec![0u8; BLOCK];
    let mut group = c.benchmark_group("backstore/hot");
    group.throughput(Throughput::Elements(1));
    group.bench_function("memcpy-4k", |bench| {
        bench.iter(|| {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&dst);
        });
    });
    group.bench_function("ram-read-4k", |bench| {
        bench.iter(|| block_on(ram.read(0, buf.clone())).unwrap());
    });
    // The synchronous fast path the engine takes: no future, no clone.
    group.bench_function("ram-read-nowait-4k", |bench| {
        bench.iter(|| ram.read_nowait(0, &buf).unwrap().unwrap());
    });
    group.bench_function("ram-write-nowait-4k", |bench| {
        bench.iter(|| {
            ram.write_nowait(0, &buf, WriteFlags::empty())
                .unwrap()
                .unwrap();
        });
    });
    group.finish();
}

/// 4 KiB reads of page-cached data from the file backstore: the engines'
/// async `read` (a hop to a pool worker or the ring thread and a wake
/// back) against the inline `read_nowait` (`preadv2(RWF_NOWAIT)` on the
/// caller's thread), at the same random offsets. The nowait figure falls
/// back to the engine when the fast path declines, as the device model
/// does, so it is what a command pays.
fn file_hot(c: &mut Criterion, path: &std::path::Path) {
    let pool = FileOptions::new().threads(4).open(path).unwrap();
    fill(&pool);
    let buf = DataBuffer::from_vec(vec![1; BLOCK]);
    let mut group = c.benchmark_group("backstore/file-hot");
    group.throughput(Throughput::Elements(1));
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut declined = 0u64;
    group.bench_function("read-nowait-4k", |bench| {
        bench.iter(|| {
            let at = rng.offset();
            match pool.read_nowait(at, &buf) {
                Some(r) => r.unwrap(),
                None => {
                    declined += 1;
                    block_on(pool.read(at, buf.clone())).unwrap();
                }
            }
        });
    });
    if declined > 0 {
        eprintln!("file-hot: the fast path declined {declined} reads (not in the page cache, or RWF_NOWAIT refused)");
    }
    group.bench_function("pool-read-4k", |bench| {
        bench.iter(|| block_on(pool.read(rng.offset(), buf.clone())).unwrap());
    });
    drop(pool);
    #[cfg(feature = "io-uring")]
    {
        let uring = FileOptions::new()
            .engine(IoEngine::IoUring)
            .open(path)
            .unwrap();
        if uring.engine() == IoEngine::IoUring {
            group.bench_function("uring-read-4k", |bench| {
                bench.iter(|| block_on(uring.read(rng.offset(), buf.clone())).unwrap());
            });
        }
    }
    group.finish();
}

fn backstores(c: &mut Criterion) {
    hot(c);
    baseline(c);
    let ram: Arc<dyn Backstore> = Arc::new(RamBackstore::new(1 << 30).unwrap());
    bench_one(c, "ram", &ram);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.img");
    std::fs::File::create(&path).unwrap().set_len(SPAN).unwrap();
    file_hot(c, &path);
    let file: Arc<dyn Backstore> = Arc::new(FileOptions::new().threads(4).open(&path).unwrap());
    bench_one(c, "file-pool", &file);
    drop(file);

    #[cfg(feature = "io-uring")]
    {
        let uring = FileOptions::new()
            .engine(IoEngine::IoUring)
            .open(&path)
            .unwrap();
        if uring.engine() == IoEngine::IoUring {
            let uring: Arc<dyn Backstore> = Arc::new(uring);
            bench_one(c, "file-uring", &uring);
        } else {
            eprintln!("io_uring unavailable: skipping the file-uring figures");
        }
    }
    let _ = IoEngine::ThreadPool;
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = backstores
}
criterion_main!(benches);
