//! Images we create, as qemu-img sees them.
#![cfg(feature = "qcow2")]

mod qcow2_common;

use qcow2_common::*;
use tgtkit_backstores::qcow2::{BackingFormat, CreateOptions, Qcow2Backstore, Qcow2Error};
use tgtkit_scsi_core::backstore::{Backstore, IoError, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_created_image_in_qemu_img_info() {
    let dir = TempDir::new("create");
    let base = dir.path("base.raw");
    std::fs::write(&base, pseudo_random(4, 1 << 20)).unwrap();
    let img = dir.path("new.qcow2");
    Qcow2Backstore::create(
        &img,
        CreateOptions {
            cluster_size: 4096,
            backing: Some(("base.raw".into(), BackingFormat::Raw)),
            ..CreateOptions::new((3 << 20) + 100)
        },
        None,
    )
    .await
    .unwrap();
    let info = qemu_img(&["info", "--output=json", img.to_str().unwrap()]);
    let compact: String = info.split_whitespace().collect();
    // Size rounded up to 512 bytes, as qemu-img create does.
    assert!(compact.contains("\"virtual-size\":3146240"), "{info}");
    assert!(compact.contains("\"cluster-size\":4096"), "{info}");
    assert!(
        compact.contains("\"backing-filename\":\"base.raw\""),
        "{info}"
    );
    assert!(
        compact.contains("\"backing-filename-format\":\"raw\""),
        "{info}"
    );
    assert!(compact.contains("\"compat\":\"1.1\""), "{info}");
    assert_eq!(qemu_check(&img).0, 0);
    // It reads through to the backing file, zeroes past its end.
    let bs = open(&img, false).await;
    let mut expect = std::fs::read(&base).unwrap();
    expect.resize(3146240, 0);
    assert_eq!(read_all(&bs).await, expect);
    // Reads and writes past the end are refused (SBC-4 LBA OUT OF RANGE).
    let size = bs.geometry().size;
    assert!(matches!(
        bs.read(size, DataBuffer::zeroed(512)).await,
        Err(IoError::OutOfRange)
    ));
    assert!(matches!(
        bs.write(size - 256, DataBuffer::zeroed(512), WriteFlags::empty())
            .await,
        Err(IoError::OutOfRange)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_bad_create_options() {
    let dir = TempDir::new("create-bad");
    let img = dir.path("x.qcow2");
    for cs in [256u32, 3000, 4 << 20] {
        let r = Qcow2Backstore::create(
            &img,
            CreateOptions {
                cluster_size: cs,
                ..CreateOptions::new(1 << 20)
            },
            None,
        )
        .await;
        assert!(
            matches!(r, Err(Qcow2Error::InvalidOption(_))),
            "cluster size {cs}: {r:?}"
        );
    }
    Qcow2Backstore::create(&img, CreateOptions::new(1 << 20), None)
        .await
        .unwrap();
    // An existing file is kept unless `overwrite`.
    let r = Qcow2Backstore::create(&img, CreateOptions::new(1 << 20), None).await;
    assert!(matches!(r, Err(Qcow2Error::Io(_))), "{r:?}");
    Qcow2Backstore::create(
        &img,
        CreateOptions {
            overwrite: true,
            ..CreateOptions::new(2 << 20)
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(open(&img, true).await.geometry().size, 2 << 20);
}
