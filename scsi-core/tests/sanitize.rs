//! SANITIZE: OVERWRITE and BLOCK ERASE over the whole medium, every
//! parameter and CDB check libiscsi's Sanitize family makes, NOT READY,
//! SANITIZE IN PROGRESS while one runs, and sanitize failure mode after one
//! fails (left by a successful SANITIZE, or by EXIT FAILURE MODE with AUSE).
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::future::Future;

use async_trait::async_trait;
use common::{assert_good, assert_invalid_field, assert_sense, read16, write16};
use futures::task::noop_waker_ref;
use tgtkit_scsi_core::backstore::{
    Backstore, Capabilities, Extent, Geometry, IoError, IoResult, WriteFlags,
};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{LuConfig, Target, TargetConfig, TaskAttribute};
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore, Outcome};

const BLOCKS: u64 = 512;
const BS: usize = 512;

/// A thin ram disk whose writes can be made to fail or to wait.
struct Flaky {
    inner: MemBackstore,
    fail: AtomicBool,
    hold: AtomicBool,
}

#[async_trait]
impl Backstore for Flaky {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        self.inner.read(offset, buf).await
    }
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        if self.fail.load(Ordering::Acquire) {
            return Err(IoError::NoSpace);
        }
        if self.hold.load(Ordering::Acquire) {
            futures::future::pending::<()>().await;
        }
        self.inner.write(offset, buf, flags).await
    }
    async fn flush(&self) -> IoResult<()> {
        self.inner.flush().await
    }
    async fn discard(&self, offset: u64, len: u64) -> IoResult<()> {
        self.inner.discard(offset, len).await
    }
    async fn allocation(&self, offset: u64, len: u64) -> IoResult<Extent> {
        self.inner.allocation(offset, len).await
    }
}

fn disk() -> (Arc<Target>, Arc<Flaky>, Initiator) {
    let target = Target::new(TargetConfig::default());
    let store = Arc::new(Flaky {
        inner: MemBackstore::with_capabilities(
            BLOCKS,
            BS as u32,
            Capabilities::DISCARD | Capabilities::DISCARD_ZEROES,
        ),
        fail: AtomicBool::new(false),
        hold: AtomicBool::new(false),
    });
    target.add_lun(0, LuConfig::new(store.clone())).unwrap();
    let init = Initiator::new(&target, "iqn.2026-11.test:a");
    init.clear_unit_attentions();
    (target, store, init)
}

fn sanitize_cdb(sa: u8, ause: bool, len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x48;
    c[1] = sa | if ause { 0x20 } else { 0 };
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

fn overwrite_params(count: u8, pattern: &[u8]) -> Vec<u8> {
    let mut p = vec![count, 0];
    p.extend_from_slice(&(pattern.len() as u16).to_be_bytes());
    p.extend_from_slice(pattern);
    p
}

fn overwrite(i: &Initiator, p: &[u8]) -> Outcome {
    i.send(&sanitize_cdb(0x01, false, p.len() as u16), p)
}

fn fill(i: &Initiator, byte: u8) {
    assert_good(&i.send(
        &write16(0, BLOCKS as u32),
        &vec![byte; BLOCKS as usize * BS],
    ));
}

fn contents(i: &Initiator) -> Vec<u8> {
    let o = i.run(&read16(0, BLOCKS as u32), BLOCKS as usize * BS);
    assert_good(&o);
    o.data
}

#[test]
fn overwrites_every_block_with_the_pattern() {
    let (_t, _s, a) = disk();
    fill(&a, b'a');
    assert_good(&overwrite(&a, &overwrite_params(1, &[0xaa; BS])));
    assert!(contents(&a).iter().all(|&b| b == 0xaa));
    // A 4-byte pattern repeats through each block.
    assert_good(&overwrite(&a, &overwrite_params(1, &[1, 2, 3, 4])));
    let d = contents(&a);
    assert!(d.chunks(4).all(|c| c == [1, 2, 3, 4]));
    // INVERT with two passes: the last pass is inverted.
    let mut p = overwrite_params(2, &[0x0f]);
    p[0] |= 0x80;
    assert_good(&overwrite(&a, &p));
    assert!(contents(&a).iter().all(|&b| b == 0xf0));
}

#[test]
fn refuses_bad_overwrite_parameters_as_libiscsi_expects() {
    let (_t, _s, a) = disk();
    let p = overwrite_params(1, &[0xaa; BS]);
    for len in [0u16, 1, 4, BS as u16 + 5] {
        let mut buf = p.clone();
        buf.resize(usize::from(len), 0);
        assert_invalid_field(&a.send(&sanitize_cdb(1, false, len), &buf), 7, None);
    }
    let field = |o: &Outcome| {
        let s = assert_sense(
            o,
            SenseKey::ILLEGAL_REQUEST,
            Asc::INVALID_FIELD_IN_PARAMETER_LIST,
        );
        s.field.unwrap().byte
    };
    assert_eq!(field(&overwrite(&a, &overwrite_params(0, &[0xaa; BS]))), 0);
    let mut zero_len = overwrite_params(1, &[0xaa; BS]);
    zero_len[2..4].fill(0);
    assert_eq!(field(&overwrite(&a, &zero_len)), 2);
    let mut long = overwrite_params(1, &[0xaa; BS]);
    long[2..4].copy_from_slice(&(BS as u16 + 4).to_be_bytes());
    assert_eq!(field(&overwrite(&a, &long)), 2);
    // BLOCK ERASE and EXIT FAILURE MODE take no parameter list.
    for sa in [0x02, 0x1f] {
        assert_invalid_field(&a.send(&sanitize_cdb(sa, false, 8), &[0; 8]), 7, None);
    }
    // CRYPTO ERASE is not implemented; IMMED is refused.
    assert_invalid_field(&a.send(&sanitize_cdb(0x03, false, 0), &[]), 1, Some(4));
    let mut c = sanitize_cdb(0x02, false, 0);
    c[1] |= 0x80;
    assert_invalid_field(&a.send(&c, &[]), 1, Some(7));
    // Reserved bits and bytes of the CDB.
    let mut c = sanitize_cdb(0x02, false, 0);
    c[1] |= 0x40;
    assert_invalid_field(&a.send(&c, &[]), 1, Some(6));
    for at in 2..7 {
        let mut c = sanitize_cdb(0x02, false, 0);
        c[at] = 1;
        assert_invalid_field(&a.send(&c, &[]), at as u16, None);
    }
}

#[test]
fn block_erase_deallocates_every_block() {
    let (_t, _s, a) = disk();
    fill(&a, b'a');
    assert_good(&a.send(&sanitize_cdb(0x02, false, 0), &[]));
    assert!(contents(&a).iter().all(|&b| b == 0));
    // GET LBA STATUS: one deallocated extent over the whole medium.
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x12;
    c[13] = 64;
    let o = a.run(&c, 64);
    assert_good(&o);
    assert_eq!(&o.data[8..16], &0u64.to_be_bytes());
    assert_eq!(
        u32::from_be_bytes(o.data[16..20].try_into().unwrap()),
        BLOCKS as u32
    );
    assert_eq!(o.data[20] & 0x0f, 1, "deallocated");
    // VPD B1h: WABEREQ 01b.
    let vpd = a.run(&[0x12, 1, 0xb1, 0, 64, 0], 64);
    assert_eq!(vpd.data[7] >> 6, 1);
}

#[test]
fn honours_write_protection_and_reservations() {
    let (t, _s, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    assert_good(&b.run(&[0x16, 0, 0, 0, 0, 0], 0)); // RESERVE(6)
    let o = a.send(&sanitize_cdb(0x02, false, 0), &[]);
    assert_eq!(o.status(), Status::RESERVATION_CONFLICT);
    assert_good(&b.run(&[0x17, 0, 0, 0, 0, 0], 0)); // RELEASE(6)

    let target = Target::new(TargetConfig::default());
    target
        .add_lun(
            0,
            LuConfig::new(Arc::new(MemBackstore::with_capabilities(
                BLOCKS,
                BS as u32,
                Capabilities::DISCARD,
            )))
            .read_only(true),
        )
        .unwrap();
    let r = Initiator::new(&target, "iqn.2026-11.test:a");
    r.clear_unit_attentions();
    let o = r.send(&sanitize_cdb(0x02, false, 0), &[]);
    assert_sense(&o, SenseKey::DATA_PROTECT, Asc::WRITE_PROTECTED);
}

#[test]
fn answers_sanitize_in_progress_while_one_runs() {
    let (t, store, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    store.hold.store(true, Ordering::Release);
    let p = overwrite_params(1, &[0x55; BS]);
    let cmd = a.command(
        &sanitize_cdb(0x01, true, p.len() as u16),
        DataBuffer::from_vec(p),
        TaskAttribute::Simple,
    );
    let mut fut = Box::pin(t.execute(cmd));
    let mut cx = std::task::Context::from_waker(noop_waker_ref());
    assert!(
        fut.as_mut().poll(&mut cx).is_pending(),
        "the overwrite waits on its write"
    );
    for i in [&a, &b] {
        for cdb in [&[0u8; 6][..], &read16(0, 1), &[0x1b, 0, 0, 0, 1, 0]] {
            let o = i.run(cdb, 512);
            assert_sense(&o, SenseKey::NOT_READY, Asc::SANITIZE_IN_PROGRESS);
        }
        assert_good(&i.run(&[0x12, 0, 0, 0, 36, 0], 36));
        let o = i.run(&[0x03, 0, 0, 0, 18, 0], 18);
        assert_good(&o);
        assert_eq!((o.data[2], o.data[12], o.data[13]), (0x02, 0x04, 0x1b));
    }
    // The command is aborted part-way (the transport dropped it): the
    // unit is in sanitize failure mode, and AUSE was set.
    drop(fut);
    store.hold.store(false, Ordering::Release);
    let o = a.run(&read16(0, 1), 512);
    assert_sense(&o, SenseKey::MEDIUM_ERROR, Asc::SANITIZE_COMMAND_FAILED);
    assert_good(&a.send(&sanitize_cdb(0x1f, false, 0), &[]));
    assert_good(&a.run(&read16(0, 1), 512));
}

#[test]
fn leaves_failure_mode_by_a_sanitize_that_completes() {
    let (_t, store, a) = disk();
    store.fail.store(true, Ordering::Release);
    let o = overwrite(&a, &overwrite_params(1, &[0x55; BS]));
    assert_eq!(o.status(), Status::CHECK_CONDITION);
    store.fail.store(false, Ordering::Release);
    let o = a.run(&read16(0, 1), 512);
    assert_sense(&o, SenseKey::MEDIUM_ERROR, Asc::SANITIZE_COMMAND_FAILED);
    // AUSE was clear: EXIT FAILURE MODE is refused.
    assert_invalid_field(&a.send(&sanitize_cdb(0x1f, false, 0), &[]), 1, Some(4));
    assert_good(&a.send(&sanitize_cdb(0x02, false, 0), &[]));
    assert_good(&a.run(&read16(0, 1), 512));
}
