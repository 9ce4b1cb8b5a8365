//! The vscsiif backend against a simulated frontend, through the engine.
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tgtkit_scsi_core::backstore::{Backstore, Capabilities, Geometry, IoResult, WriteFlags};
use tgtkit_scsi_core::buffer::DataBuffer;

use common::{cdb, pattern, seg, start};
use tgtkit_vscsiif::request::{
    encode_granted_segments, result_host, result_status, DataSegments, SegmentList,
    RSLT_RESET_FAILED, RSLT_RESET_SUCCESS,
};
use tgtkit_vscsiif::{Action, DataDirection, HostByte, Request, VscsiConfig};

fn sense_key(sense: &[u8]) -> u8 {
    let key = if sense[0] & 0x7f >= 0x72 {
        sense[1]
    } else {
        sense[2]
    };
    key & 0x0f
}

#[test]
fn accepts_inquiry_and_read_capacity() {
    let mut sim = start(VscsiConfig::default(), 16);
    // INQUIRY with a 255-byte allocation length (SPC-4 §6.6) in a buffer
    // starting mid-page: the residual is what the device did not fill.
    let r = sim.roundtrip(cdb(
        1,
        &[0x12, 0, 0, 0, 255, 0],
        DataDirection::FromDevice,
        &[seg(0, 100, 255)],
    ));
    assert_eq!(
        (result_host(r.rslt), result_status(r.rslt)),
        (HostByte::OK, 0)
    );
    let mut inq = [0u8; 36];
    sim.grants.read(0, 100, &mut inq);
    assert_eq!(inq[0] & 0x1f, 0);
    let additional = usize::from(inq[4]) + 5;
    assert_eq!(r.residual as usize, 255 - additional.min(255));
    sim.clear_unit_attention();
    // READ CAPACITY(10) (SBC-4 §5.20): 2048 blocks of 512.
    let r = sim.roundtrip(cdb(
        2,
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        DataDirection::FromDevice,
        &[seg(1, 0, 8)],
    ));
    assert_eq!(r.rslt, 0);
    let mut cap = [0u8; 8];
    sim.grants.read(1, 0, &mut cap);
    assert_eq!(cap, [0, 0, 0x07, 0xff, 0, 0, 2, 0]);
    let (res, stats) = sim.stop();
    res.unwrap();
    assert!(stats.ok >= 3);
    assert_eq!(sim.grants.mapped_pages(), 0);
}

#[test]
fn accepts_write_and_read_over_scattered_segments() {
    let mut sim = start(VscsiConfig::default(), 16);
    sim.clear_unit_attention();
    let data = pattern(8 * 512, 4);
    // 4 KiB in three pieces: 1000 bytes at 96 of page 2, 3000 at 0 of page 3, 96 at 4000 of page 4.
    sim.grants.write(2, 96, &data[..1000]);
    sim.grants.write(3, 0, &data[1000..4000]);
    sim.grants.write(4, 4000, &data[4000..4096]);
    let segs = [seg(2, 96, 1000), seg(3, 0, 3000), seg(4, 4000, 96)];
    // WRITE(10) LBA 10, 8 blocks.
    let r = sim.roundtrip(cdb(
        3,
        &[0x2a, 0, 0, 0, 0, 10, 0, 0, 8, 0],
        DataDirection::ToDevice,
        &segs,
    ));
    assert_eq!(r.rslt, 0, "sense {:?}", r.sense_bytes());
    assert_eq!(sim.disk.contents(10 * 512, 4096), data[..4096]);
    // READ(10) back into other pages.
    let rsegs = [seg(5, 0, 2048), seg(6, 2048, 2048)];
    let r = sim.roundtrip(cdb(
        4,
        &[0x28, 0, 0, 0, 0, 10, 0, 0, 8, 0],
        DataDirection::FromDevice,
        &rsegs,
    ));
    assert_eq!((r.rslt, r.residual), (0, 0));
    let mut a = vec![0u8; 2048];
    let mut b = vec![0u8; 2048];
    sim.grants.read(5, 0, &mut a);
    sim.grants.read(6, 2048, &mut b);
    a.extend_from_slice(&b);
    assert_eq!(a, data[..4096]);
}

#[test]
fn accepts_sg_grant_indirect_segments() {
    let mut sim = start(
        VscsiConfig {
            sg_grant: 128,
            ..VscsiConfig::default()
        },
        200,
    );
    sim.clear_unit_attention();
    // 100 data segments of 512 bytes (one per page) listed in two SG pages.
    let data = pattern(100 * 512, 8);
    let segs: Vec<_> = (0..100u32)
        .map(|i| seg(10 + i, (i % 8) as u16 * 512, 512))
        .collect();
    for (i, s) in segs.iter().enumerate() {
        sim.grants
            .write(s.gref, usize::from(s.offset), &data[i * 512..(i + 1) * 512]);
    }
    let list = encode_granted_segments(&segs);
    sim.grants.write(0, 0, &list[..60 * 8]);
    sim.grants.write(1, 800, &list[60 * 8..]);
    let mut c = [0u8; 16];
    c[..10].copy_from_slice(&[0x2a, 0, 0, 0, 1, 0, 0, 0, 100, 0]); // WRITE(10) LBA 256, 100 blocks
    let req = Request::Cdb {
        rqid: 7,
        addr: (0, 1, 0),
        cdb: c,
        cmd_len: 10,
        direction: tgtkit_vscsiif::DataDirection::ToDevice,
        segments: DataSegments::Granted(
            SegmentList::new(&[seg(0, 0, 480), seg(1, 800, 320)]).unwrap(),
        ),
    };
    let r = sim.roundtrip(req);
    assert_eq!(r.rslt, 0, "sense {:?}", r.sense_bytes());
    assert_eq!(sim.disk.contents(256 * 512, data.len()), data);
}

#[test]
fn rejects_unmapped_device_with_no_connect() {
    let mut sim = start(VscsiConfig::default(), 4);
    let mut req = cdb(
        5,
        &[0x12, 0, 0, 0, 36, 0],
        DataDirection::FromDevice,
        &[seg(0, 0, 36)],
    );
    if let Request::Cdb { addr, .. } = &mut req {
        *addr = (0, 2, 0);
    }
    let r = sim.roundtrip(req);
    // Linux scsiback answers an unknown v2p translation with DID_NO_CONNECT.
    assert_eq!(result_host(r.rslt), HostByte::NO_CONNECT);
}

#[test]
fn accepts_devices_hot_plugged_while_the_ring_runs() {
    use tgtkit_scsi_core::engine::LuConfig;
    use tgtkit_scsi_core::lun::Lun;
    use tgtkit_scsi_core::test_utils::MemBackstore;
    use tgtkit_vscsiif::DeviceTarget;

    let mut sim = start(VscsiConfig::default(), 4);
    sim.clear_unit_attention();
    let inquiry = |rqid, addr| {
        let mut req = cdb(
            rqid,
            &[0x12, 0, 0, 0, 36, 0],
            DataDirection::FromDevice,
            &[seg(0, 0, 36)],
        );
        if let Request::Cdb { addr: a, .. } = &mut req {
            *a = addr;
        }
        req
    };
    assert_eq!(
        result_host(sim.roundtrip(inquiry(1, (0, 2, 0))).rslt),
        HostByte::NO_CONNECT
    );
    // The toolstack adds dev-1 (0:0:2:0) as a second engine LUN.
    let nexus = sim.target.add_nexus(tgtkit_scsi_core::engine::NexusInfo {
        initiator_port: "xen-vscsi-front:1:0".into(),
        target_port: "tgtkit-scsiback:0".into(),
        relative_port: 1,
        transport_id: Vec::new(),
    });
    sim.target
        .add_lun(1, LuConfig::new(Arc::new(MemBackstore::new(64, 512))))
        .unwrap();
    let dev = DeviceTarget {
        target: Arc::clone(&sim.target),
        nexus,
        lun: Lun::from_index(1).unwrap(),
    };
    sim.devices
        .add("0:0:2:0".parse().unwrap(), dev.clone())
        .unwrap();
    assert!(sim
        .devices
        .add("0:0:2:0".parse().unwrap(), dev.clone())
        .is_err());
    assert!(sim.devices.add("1:0:2:0".parse().unwrap(), dev).is_err());
    let r = sim.roundtrip(inquiry(2, (0, 2, 0)));
    assert_eq!(
        (result_host(r.rslt), result_status(r.rslt)),
        (HostByte::OK, 0)
    );
    // The LUN that was there learns of it: REPORTED LUNS DATA HAS CHANGED.
    let r = sim.roundtrip(cdb(3, &[0; 6], DataDirection::None, &[]));
    assert_eq!(result_status(r.rslt), 2);
    let sense = r.sense_bytes();
    assert_eq!(sense_key(sense), 6);
    assert_eq!((sense[12], sense[13]), (0x3f, 0x0e));
    // Hot-unplug: the address answers NO_CONNECT again.
    assert!(sim.devices.remove("0:0:2:0".parse().unwrap()));
    assert!(!sim.devices.remove("0:0:2:0".parse().unwrap()));
    assert_eq!(
        result_host(sim.roundtrip(inquiry(4, (0, 2, 0))).rslt),
        HostByte::NO_CONNECT
    );
    assert_eq!(sim.devices.len(), 1);
    sim.stop().0.unwrap();
}

#[test]
fn accepts_check_condition_with_sense() {
    let mut sim = start(VscsiConfig::default(), 4);
    sim.clear_unit_attention();
    // READ(10) past the end: CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE.
    let r = sim.roundtrip(cdb(
        6,
        &[0x28, 0, 0, 0, 0x08, 0, 0, 0, 1, 0],
        DataDirection::FromDevice,
        &[seg(0, 0, 512)],
    ));
    assert_eq!(
        (result_host(r.rslt), result_status(r.rslt)),
        (HostByte::OK, 2)
    );
    assert!(r.sense_len > 0 && r.sense_len <= 96);
    assert_eq!(sense_key(r.sense_bytes()), 5);
}

#[test]
fn accepts_abort_and_reset_as_task_management() {
    let mut sim = start(VscsiConfig::default(), 4);
    // ABORT of a task that is not running: ABORT TASK answers "not found",
    // reported as RESET_FAILED (as scsiback does for a failed TMR).
    let r = sim.roundtrip(Request::Abort {
        rqid: 8,
        addr: (0, 1, 0),
        ref_rqid: 77,
    });
    assert_eq!((r.act, r.rslt), (Action::ABORT, RSLT_RESET_FAILED));
    // LOGICAL UNIT RESET succeeds, and raises a unit attention (SAM-5 §6.3.3).
    let r = sim.roundtrip(Request::Reset {
        rqid: 9,
        addr: (0, 1, 0),
    });
    assert_eq!((r.act, r.rslt), (Action::RESET, RSLT_RESET_SUCCESS));
    let r = sim.roundtrip(cdb(10, &[0; 6], DataDirection::None, &[]));
    assert_eq!(result_status(r.rslt), 2);
    assert_eq!(
        sense_key(r.sense_bytes()),
        6,
        "UNIT ATTENTION after the reset"
    );
    // A reset of an unmapped device: NO_CONNECT.
    let r = sim.roundtrip(Request::Reset {
        rqid: 11,
        addr: (3, 3, 3),
    });
    assert_eq!(result_host(r.rslt), HostByte::NO_CONNECT);
}

#[test]
fn accepts_virtual_device_strings() {
    let v: tgtkit_vscsiif::VirtualDevice = "1:0:2:3".parse().unwrap();
    assert_eq!((v.host, v.channel, v.id, v.lun), (1, 0, 2, 3));
    assert_eq!(v.to_string(), "1:0:2:3");
    for bad in ["", "1:2:3", "1:2:3:4:5", "a:0:0:0", "0:0:0:70000"] {
        assert!(
            bad.parse::<tgtkit_vscsiif::VirtualDevice>().is_err(),
            "{bad}"
        );
    }
}

/// A backstore whose reads wait until the test opens the gate.
struct Gated {
    inner: tgtkit_scsi_core::test_utils::MemBackstore,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

#[async_trait::async_trait]
impl Backstore for Gated {
    fn geometry(&self) -> Geometry {
        self.inner.geometry()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let gate = Arc::clone(&self.gate);
        std::thread::spawn(move || {
            let (m, cv) = &*gate;
            let mut open = m.lock().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !*open && Instant::now() < deadline {
                open = cv.wait_timeout(open, Duration::from_millis(10)).unwrap().0;
            }
            let _ = tx.send(());
        });
        let _ = rx.await;
        self.inner.read(offset, buf).await
    }
    async fn write(&self, offset: u64, buf: DataBuffer, flags: WriteFlags) -> IoResult<()> {
        self.inner.write(offset, buf, flags).await
    }
    async fn flush(&self) -> IoResult<()> {
        self.inner.flush().await
    }
}

#[test]
fn accepts_abort_of_a_running_command() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let gated = Arc::new(Gated {
        inner: tgtkit_scsi_core::test_utils::MemBackstore::new(2048, 512),
        gate: Arc::clone(&gate),
    });
    let disk = Arc::new(tgtkit_scsi_core::test_utils::MemBackstore::new(1, 512));
    let mut sim = common::start_on(VscsiConfig::default(), 8, gated, disk);
    sim.clear_unit_attention();
    // READ(10) that blocks in the backstore, then ABORT TASK of it.
    sim.submit(&[cdb(
        40,
        &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        DataDirection::FromDevice,
        &[seg(0, 0, 512)],
    )]);
    std::thread::sleep(Duration::from_millis(50));
    sim.submit(&[Request::Abort {
        rqid: 41,
        addr: (0, 1, 0),
        ref_rqid: 40,
    }]);
    // Both are answered while the backstore read is still blocked (the
    // engine drops the aborted command's I/O future), in request order:
    // the aborted command first, then the abort.
    let rs = sim.responses(2);
    // The aborted command still gets its one response (ring accounting):
    // host byte ABORT, or TASK ABORTED status.
    let r = rs[0];
    assert_eq!(r.rqid, 40);
    assert!(
        result_host(r.rslt) == HostByte::ABORT || result_status(r.rslt) == 0x40,
        "rslt {:#x}",
        r.rslt
    );
    assert_eq!(
        (rs[1].rqid, rs[1].act, rs[1].rslt),
        (41, Action::ABORT, RSLT_RESET_SUCCESS)
    );
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    std::thread::sleep(Duration::from_millis(20));
    assert!(sim.try_response().is_none(), "one response per request");
    sim.stop().0.unwrap();
}
