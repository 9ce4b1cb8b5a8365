//! Images made by qemu-img read byte-identical to `qemu-img convert -O raw`.
//!
//! Needs qemu-img and qemu-io (Debian qemu-utils): the tests fail, not
//! skip, without them.
#![allow(clippy::cast_possible_truncation)] // test tooling: small units, block and generation numbers
#![cfg(feature = "qcow2")]

mod qcow2_common;

use qcow2_common::*;
use tgtkit_backstores::qcow2::{Qcow2Backstore, Qcow2Error, Qcow2Options};
use tgtkit_scsi_core::backstore::{AllocationState, Backstore, Capabilities, IoError, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

const SIZE: usize = 3 << 20;

fn convert(dir: &TempDir, name: &str, opts: &str, compress: bool) -> std::path::PathBuf {
    let raw = dir.path("source.raw");
    if !raw.exists() {
        make_raw_source(&raw, SIZE, 7);
    }
    let img = dir.path(name);
    let mut args = vec!["convert", "-f", "raw", "-O", "qcow2", "-o", opts];
    if compress {
        args.push("-c");
    }
    args.push(raw.to_str().unwrap());
    args.push(img.to_str().unwrap());
    qemu_img(&args);
    img
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_every_cluster_size_and_compat() {
    let dir = TempDir::new("clusters");
    for compat in ["0.10", "1.1"] {
        for cs in [512u32, 1024, 4096, 65536, 2 << 20] {
            let name = format!("c{cs}-{compat}.qcow2");
            let img = convert(
                &dir,
                &name,
                &format!("cluster_size={cs},compat={compat}"),
                false,
            );
            let expect = qemu_raw(&dir, &img);
            let bs = open(&img, true).await;
            assert_eq!(bs.geometry().size, SIZE as u64);
            let got = read_all(&bs).await;
            assert!(got == expect, "{name}: data differs from qemu-img convert");
            // Unaligned, cluster-straddling reads too.
            for (off, len) in [(511u64, 1usize), (cs as u64 - 3, 4099), (1 << 20, 70_000)] {
                let off = off.min(SIZE as u64 - len as u64);
                let buf = DataBuffer::zeroed(len);
                bs.read(off, buf.clone()).await.unwrap();
                assert_eq!(
                    buf.to_vec(),
                    expect[off as usize..off as usize + len],
                    "{name} @{off}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_lazy_refcounts_image_and_writes_it_cleanly() {
    let dir = TempDir::new("lazy");
    let img = convert(&dir, "lazy.qcow2", "compat=1.1,lazy_refcounts=on", false);
    let mut expect = qemu_raw(&dir, &img);
    let bs = open(&img, false).await;
    assert_eq!(read_all(&bs).await, expect);
    let data = pseudo_random(99, 8192);
    bs.write(
        65536 + 512,
        DataBuffer::from_vec(data.clone()),
        WriteFlags::empty(),
    )
    .await
    .unwrap();
    expect[65536 + 512..65536 + 512 + 8192].copy_from_slice(&data);
    bs.flush().await.unwrap();
    drop(bs);
    let (code, out) = qemu_check(&img);
    assert_eq!(code, 0, "{out}");
    assert_eq!(qemu_raw(&dir, &img), expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_compressed_clusters() {
    let dir = TempDir::new("compressed");
    for cs in [4096u32, 65536] {
        let img = convert(
            &dir,
            &format!("z{cs}.qcow2"),
            &format!("cluster_size={cs}"),
            true,
        );
        let map = qemu_img(&["map", "--output=json", img.to_str().unwrap()]);
        assert!(
            map.contains("\"compressed\": true"),
            "qemu-img made no compressed cluster: {map}"
        );
        let expect = qemu_raw(&dir, &img);
        let bs = open(&img, false).await;
        assert_eq!(read_all(&bs).await, expect, "cluster size {cs}");
        // Writing into a compressed cluster allocates a normal one.
        let patch = pseudo_random(5, 1000);
        bs.write(
            4 * 65536 + 100,
            DataBuffer::from_vec(patch.clone()),
            WriteFlags::FUA,
        )
        .await
        .unwrap();
        drop(bs);
        let mut expect = expect;
        expect[4 * 65536 + 100..4 * 65536 + 1100].copy_from_slice(&patch);
        let (code, out) = qemu_check(&img);
        assert_eq!(code, 0, "{out}");
        assert_eq!(qemu_raw(&dir, &img), expect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_backing_chain_three_deep() {
    let dir = TempDir::new("chain");
    let base = dir.path("base.raw");
    std::fs::write(&base, pseudo_random(1, SIZE)).unwrap();
    let mid1 = dir.path("mid1.qcow2");
    let mid2 = dir.path("mid2.qcow2");
    let top = dir.path("top.qcow2");
    // Relative backing names, resolved against each image's directory.
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096",
        "-b",
        "base.raw",
        "-F",
        "raw",
        mid1.to_str().unwrap(),
    ]);
    qemu_io("qcow2", &mid1, "write -P 0x11 4096 65536");
    qemu_io("qcow2", &mid1, "write -z 200000 8192");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "compat=0.10",
        "-b",
        "mid1.qcow2",
        "-F",
        "qcow2",
        mid2.to_str().unwrap(),
    ]);
    qemu_io("qcow2", &mid2, "write -P 0x22 30000 100000");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        mid2.to_str().unwrap(),
        "-F",
        "qcow2",
        top.to_str().unwrap(),
    ]);
    qemu_io("qcow2", &top, "write -P 0x33 1000000 5000");
    qemu_io("qcow2", &top, "discard 2097152 65536");

    let expect = qemu_raw(&dir, &top);
    let bs = open(&top, false).await;
    assert_eq!(read_all(&bs).await, expect);

    // Writes land in the top image only; partial-cluster writes copy the rest from below.
    let patch = pseudo_random(3, 3000);
    bs.write(
        40_000,
        DataBuffer::from_vec(patch.clone()),
        WriteFlags::empty(),
    )
    .await
    .unwrap();
    bs.flush().await.unwrap();
    drop(bs);
    let mut expect2 = expect.clone();
    expect2[40_000..43_000].copy_from_slice(&patch);
    assert_eq!(qemu_raw(&dir, &top), expect2);
    assert_eq!(qemu_check(&top).0, 0);
    assert_eq!(qemu_check(&mid2).0, 0);
    // The layers below are untouched.
    let below = open(&mid2, true).await;
    assert_eq!(read_all(&below).await, expect_without_top(&dir, &mid2));
}

fn expect_without_top(dir: &TempDir, mid2: &std::path::Path) -> Vec<u8> {
    qemu_raw(dir, mid2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_allocation_status_like_qemu_img_map() {
    let dir = TempDir::new("map");
    let img = dir.path("m.qcow2");
    qemu_img(&["create", "-f", "qcow2", img.to_str().unwrap(), "4M"]);
    qemu_io("qcow2", &img, "write -P 0x5a 65536 131072");
    qemu_io("qcow2", &img, "write -z 1048576 65536");
    let bs = open(&img, true).await;
    assert!(bs.capabilities().contains(Capabilities::ALLOCATION_STATUS));
    let e = bs.allocation(0, 4 << 20).await.unwrap();
    assert_eq!((e.len, e.state), (65536, AllocationState::Deallocated));
    let e = bs.allocation(65536, 4 << 20).await.unwrap();
    assert_eq!((e.len, e.state), (131072, AllocationState::Mapped));
    let e = bs.allocation(1 << 20, 65536).await.unwrap();
    assert_eq!(e.state, AllocationState::Deallocated);
    assert!(matches!(
        bs.allocation(4 << 20, 512).await,
        Err(IoError::OutOfRange)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_encrypted_image() {
    let dir = TempDir::new("luks");
    let img = dir.path("e.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "--object",
        "secret,id=s0,data=hunter2",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
        img.to_str().unwrap(),
        "1M",
    ]);
    for read_only in [true, false] {
        let r = Qcow2Backstore::open(
            &img,
            Qcow2Options {
                read_only,
                ..Default::default()
            },
        )
        .await;
        assert!(
            matches!(r, Err(Qcow2Error::Unsupported(ref m)) if m.contains("LUKS")),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_writing_image_with_internal_snapshot() {
    let dir = TempDir::new("snap");
    let img = dir.path("s.qcow2");
    qemu_img(&["create", "-f", "qcow2", img.to_str().unwrap(), "1M"]);
    qemu_io("qcow2", &img, "write -P 0x44 0 4096");
    qemu_img(&["snapshot", "-c", "s1", img.to_str().unwrap()]);
    qemu_io("qcow2", &img, "write -P 0x55 0 512");
    let r = Qcow2Backstore::open(&img, Qcow2Options::default()).await;
    assert!(
        matches!(r, Err(Qcow2Error::Unsupported(ref m)) if m.contains("snapshot")),
        "{r:?}"
    );
    // Read-only access to the active layer is fine.
    let bs = open(&img, true).await;
    assert_eq!(read_all(&bs).await, qemu_raw(&dir, &img));
    assert!(matches!(
        bs.write(0, DataBuffer::zeroed(512), WriteFlags::empty())
            .await,
        Err(IoError::ReadOnly)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_dirty_corrupt_and_zstd_images() {
    let dir = TempDir::new("bits");
    let img = dir.path("b.qcow2");
    qemu_img(&["create", "-f", "qcow2", img.to_str().unwrap(), "1M"]);
    let clean = std::fs::read(&img).unwrap();
    // qcow2.txt: incompatible features at byte 72; bit 0 dirty, 1 corrupt, 4 extended L2.
    for bit in [0u32, 1, 4, 9] {
        let mut b = clean.clone();
        b[79] |= 1 << (bit % 8);
        if bit >= 8 {
            b[78] |= 1 << (bit - 8);
            b[79] &= !(1 << (bit % 8));
        }
        std::fs::write(&img, &b).unwrap();
        let r = Qcow2Backstore::open(
            &img,
            Qcow2Options {
                read_only: true,
                ..Default::default()
            },
        )
        .await;
        assert!(
            matches!(r, Err(Qcow2Error::Unsupported(_))),
            "bit {bit}: {r:?}"
        );
    }
    let z = dir.path("z.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "compression_type=zstd",
        z.to_str().unwrap(),
        "1M",
    ]);
    let r = Qcow2Backstore::open(&z, Qcow2Options::default()).await;
    assert!(
        matches!(r, Err(Qcow2Error::Unsupported(ref m)) if m.contains("zstd")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_backing_loop_and_non_qcow2() {
    let dir = TempDir::new("loop");
    let a = dir.path("a.qcow2");
    let b = dir.path("b.qcow2");
    qemu_img(&["create", "-f", "qcow2", a.to_str().unwrap(), "1M"]);
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "a.qcow2",
        "-F",
        "qcow2",
        b.to_str().unwrap(),
    ]);
    // Point a at b: a loop qemu-img itself would refuse to create.
    qemu_img(&[
        "rebase",
        "-u",
        "-b",
        "b.qcow2",
        "-F",
        "qcow2",
        a.to_str().unwrap(),
    ]);
    let r = Qcow2Backstore::open(&b, Qcow2Options::default()).await;
    assert!(matches!(r, Err(Qcow2Error::ChainTooDeep(16))), "{r:?}");
    let raw = dir.path("r.raw");
    std::fs::write(&raw, vec![0u8; 4096]).unwrap();
    let r = Qcow2Backstore::open(&raw, Qcow2Options::default()).await;
    assert!(matches!(r, Err(Qcow2Error::Invalid(_))), "{r:?}");
}
