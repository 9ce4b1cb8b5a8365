//! The engine: task attributes, cancellation, task management, nexus loss.
#![allow(clippy::cast_possible_truncation)] // tests build CDB fields by hand

mod common;
mod gated;

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use common::*;
use futures::task::SpawnExt;
use gated::{poll_once, Gated};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    LuConfig, Target, TargetConfig, TaskAttribute, TmFunction, TmfResponse,
};
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore};

fn gated() -> (Arc<Target>, Arc<Gated>, Initiator) {
    let target = Target::new(TargetConfig::default());
    let store = Arc::new(Gated::new(MemBackstore::new(BLOCKS, BS)));
    target.add_lun(0, LuConfig::new(store.clone())).unwrap();
    let init = Initiator::new(&target, "iqn.2026-11.test:a");
    init.clear_unit_attentions();
    (target, store, init)
}

#[test]
fn ordered_task_waits_for_older_tasks() {
    let (t, store, init) = gated();
    let read = init.command(
        &read16(0, 1),
        DataBuffer::zeroed(512),
        TaskAttribute::Simple,
    );
    let tur = init.command(&[0; 6], DataBuffer::empty(), TaskAttribute::Ordered);
    let hoq = init.command(&[0; 6], DataBuffer::empty(), TaskAttribute::HeadOfQueue);
    let mut read = pin!(t.execute(read));
    let mut tur = pin!(t.execute(tur));
    assert!(poll_once(read.as_mut()).is_pending());
    assert!(
        poll_once(tur.as_mut()).is_pending(),
        "ORDERED must wait for the READ"
    );
    // HEAD OF QUEUE overtakes both.
    let mut hoq = pin!(t.execute(hoq));
    match poll_once(hoq.as_mut()) {
        Poll::Ready(r) => assert_eq!(r.status, Status::GOOD),
        Poll::Pending => panic!("HEAD OF QUEUE must run at once"),
    }
    store.open();
    assert_eq!(futures::executor::block_on(read).status, Status::GOOD);
    assert_eq!(futures::executor::block_on(tur).status, Status::GOOD);
}

#[test]
fn aborts_a_task_and_reports_nothing_for_it() {
    let (t, _store, init) = gated();
    let cmd = init.command(
        &read16(0, 1),
        DataBuffer::zeroed(512),
        TaskAttribute::Simple,
    );
    let tag = cmd.tag;
    let mut fut = pin!(t.execute(cmd));
    assert!(poll_once(fut.as_mut()).is_pending());
    let lun = init.lun;
    let r = futures::executor::block_on(t.task_management(
        init.nexus,
        lun,
        TmFunction::QueryTask { tag },
    ));
    assert_eq!(r, TmfResponse::Succeeded);
    let r = futures::executor::block_on(t.task_management(
        init.nexus,
        lun,
        TmFunction::AbortTask { tag },
    ));
    assert_eq!(r, TmfResponse::Complete);
    let resp = futures::executor::block_on(fut);
    assert!(resp.aborted);
    assert_eq!(resp.status, Status::TASK_ABORTED);
    let r = futures::executor::block_on(t.task_management(
        init.nexus,
        lun,
        TmFunction::AbortTask { tag },
    ));
    assert_eq!(r, TmfResponse::TaskNotFound);
}

#[test]
fn clear_task_set_tells_other_initiators() {
    let (t, _store, a) = gated();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    let cmd = b.command(
        &read16(0, 1),
        DataBuffer::zeroed(512),
        TaskAttribute::Simple,
    );
    let mut fut = pin!(t.execute(cmd));
    assert!(poll_once(fut.as_mut()).is_pending());
    let r =
        futures::executor::block_on(t.task_management(a.nexus, a.lun, TmFunction::ClearTaskSet));
    assert_eq!(r, TmfResponse::Complete);
    assert!(futures::executor::block_on(fut).aborted);
    assert_sense(
        &b.run(&[0; 6], 0),
        SenseKey::UNIT_ATTENTION,
        Asc::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR,
    );
}

#[test]
fn logical_unit_reset_raises_unit_attention_everywhere() {
    let (t, _s, a) = disk();
    let b = Initiator::new(&t, "iqn.2026-11.test:b");
    b.clear_unit_attentions();
    let r = futures::executor::block_on(t.task_management(
        a.nexus,
        a.lun,
        TmFunction::LogicalUnitReset,
    ));
    assert_eq!(r, TmfResponse::Complete);
    for i in [&a, &b] {
        assert_sense(
            &i.run(&[0; 6], 0),
            SenseKey::UNIT_ATTENTION,
            Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED,
        );
        assert_good(&i.run(&[0; 6], 0));
    }
    let r =
        futures::executor::block_on(t.task_management(a.nexus, a.lun, TmFunction::QueryAsyncEvent));
    assert_eq!(r, TmfResponse::Complete);
    let bad = tgtkit_scsi_core::lun::Lun::from_index(7).unwrap();
    let r =
        futures::executor::block_on(t.task_management(a.nexus, bad, TmFunction::LogicalUnitReset));
    assert_eq!(r, TmfResponse::IncorrectLun);
}

#[test]
fn nexus_loss_aborts_its_tasks() {
    let (t, _store, a) = gated();
    let cmd = a.command(
        &read16(0, 1),
        DataBuffer::zeroed(512),
        TaskAttribute::Simple,
    );
    let mut fut = pin!(t.execute(cmd));
    assert!(poll_once(fut.as_mut()).is_pending());
    t.remove_nexus(a.nexus);
    assert!(futures::executor::block_on(fut).aborted);
}

#[test]
fn rejects_overlapped_tags() {
    let (t, _store, a) = gated();
    let first = a.command(
        &read16(0, 1),
        DataBuffer::zeroed(512),
        TaskAttribute::Simple,
    );
    let mut second = a.command(&[0; 6], DataBuffer::empty(), TaskAttribute::Simple);
    second.tag = first.tag;
    let mut fut = pin!(t.execute(first));
    assert!(poll_once(fut.as_mut()).is_pending());
    let r = futures::executor::block_on(t.execute(second));
    assert_eq!(r.status, Status::CHECK_CONDITION);
    assert_eq!(
        r.sense_data().unwrap().asc,
        Asc::OVERLAPPED_COMMANDS_ATTEMPTED
    );
}

#[test]
fn runs_many_commands_concurrently_from_many_nexuses() {
    let (t, store, _a) = disk();
    let pool = futures::executor::ThreadPool::builder()
        .pool_size(4)
        .create()
        .unwrap();
    let inits: Vec<Initiator> = (0..4)
        .map(|i| {
            let init = Initiator::new(&t, &format!("iqn.2026-11.test:n{i}"));
            init.clear_unit_attentions();
            init
        })
        .collect();
    let mut handles = Vec::new();
    for (i, init) in inits.into_iter().enumerate() {
        handles.push(
            pool.spawn_with_handle(async move {
                for k in 0..50u64 {
                    let lba = (i as u64) * 100 + k;
                    let data = pattern(512, (i as u8) ^ (k as u8));
                    let w = init.data_out(&write16(lba, 1), &data).await;
                    assert_eq!(w.status(), Status::GOOD);
                    let r = init.data_in(&read16(lba, 1), 512).await;
                    assert_eq!(r.data, data);
                }
            })
            .unwrap(),
        );
    }
    futures::executor::block_on(futures::future::join_all(handles));
    assert_eq!(store.contents(0, 512), pattern(512, 0));
}
