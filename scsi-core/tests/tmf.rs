//! Every task management function (SAM-5 §7), with the TAS bit of the
//! control mode page (SPC-4 §7.5.8) honoured, and REPORT SUPPORTED TASK
//! MANAGEMENT FUNCTIONS checked against what the engine does.
#![allow(clippy::cast_possible_truncation)]

mod gated;
mod pr_util;

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use futures::executor::block_on;
use gated::{poll_once, Gated};
use pr_util::*;
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{
    LuConfig, Response, Target, TargetConfig, TaskAttribute, TmFunction, TmfResponse,
};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;
use tgtkit_scsi_core::test_utils::{Initiator, MemBackstore};

fn gated(luns: u16) -> (Arc<Target>, Arc<Gated>) {
    let target = Target::new(TargetConfig::default());
    let store = Arc::new(Gated::new(MemBackstore::new(64, 512)));
    for lun in 0..luns {
        target.add_lun(lun, LuConfig::new(store.clone())).unwrap();
    }
    (target, store)
}

/// A pending READ(10) of one block: its tag and its buffer.
fn read_cmd(i: &Initiator) -> (tgtkit_scsi_core::engine::Command, DataBuffer) {
    let buf = DataBuffer::zeroed(512);
    let cmd = i.command(
        &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        buf.clone(),
        TaskAttribute::Simple,
    );
    (cmd, buf)
}

fn tmf(t: &Target, i: &Initiator, f: TmFunction) -> TmfResponse {
    block_on(t.task_management(i.nexus, i.lun, f))
}

#[track_caller]
fn ua(i: &Initiator, asc: Asc) {
    let o = i.run(&[0; 6], 0);
    assert_eq!(o.status(), Status::CHECK_CONDITION, "{:?}", o.response);
    let s = o.sense().unwrap();
    assert_eq!((s.key, s.asc), (SenseKey::UNIT_ATTENTION, asc));
}

#[track_caller]
fn no_ua(i: &Initiator) {
    assert_eq!(i.run(&[0; 6], 0).status(), Status::GOOD);
}

#[track_caller]
fn silent(r: Poll<Response>) {
    match r {
        Poll::Ready(r) => {
            assert!(r.aborted, "{r:?}");
            assert_eq!(r.data_len, 0);
        }
        Poll::Pending => panic!("aborted task still pending"),
    }
}

#[track_caller]
fn task_aborted_status(r: Poll<Response>) {
    match r {
        Poll::Ready(r) => {
            // SPC-4 §7.5.8: TAS set, so the transport must send the status.
            assert!(!r.aborted, "{r:?}");
            assert_eq!(r.status, Status::TASK_ABORTED);
            assert_eq!(r.data_len, 0);
        }
        Poll::Pending => panic!("aborted task still pending"),
    }
}

#[test]
fn accepts_abort_task_for_one_task_only() {
    let (t, store) = gated(1);
    let a = init(&t, "iqn.2026-11.test:a");
    let (c1, b1) = read_cmd(&a);
    let (c2, _) = read_cmd(&a);
    let tag1 = c1.tag;
    let mut f1 = pin!(t.execute(c1));
    let mut f2 = pin!(t.execute(c2));
    assert!(poll_once(f1.as_mut()).is_pending());
    assert!(poll_once(f2.as_mut()).is_pending());
    assert_eq!(
        tmf(&t, &a, TmFunction::AbortTask { tag: tag1 }),
        TmfResponse::Complete
    );
    // Nothing is sent for it after the TMF response, even once the I/O
    // could finish (SAM-5 §7.2).
    store.open();
    silent(poll_once(f1.as_mut()));
    assert_eq!(b1.to_vec(), vec![0u8; 512]);
    assert_eq!(block_on(f2).status, Status::GOOD);
    assert_eq!(
        tmf(&t, &a, TmFunction::AbortTask { tag: tag1 }),
        TmfResponse::TaskNotFound
    );
}

#[test]
fn accepts_abort_task_set_for_own_tasks_only() {
    let (t, store) = gated(1);
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    let (ca, _) = read_cmd(&a);
    let (cb, _) = read_cmd(&b);
    let mut fa = pin!(t.execute(ca));
    let mut fb = pin!(t.execute(cb));
    assert!(poll_once(fa.as_mut()).is_pending());
    assert!(poll_once(fb.as_mut()).is_pending());
    assert_eq!(tmf(&t, &a, TmFunction::AbortTaskSet), TmfResponse::Complete);
    silent(poll_once(fa.as_mut()));
    store.open();
    assert_eq!(block_on(fb).status, Status::GOOD);
    no_ua(&b);
}

#[test]
fn accepts_clear_task_set_with_tas_clear_and_set() {
    for tas in [false, true] {
        let (t, store) = gated(1);
        let a = init(&t, "iqn.2026-11.test:a");
        let b = init(&t, "iqn.2026-11.test:b");
        let c = init(&t, "iqn.2026-11.test:c");
        set_tas(&a, tas);
        b.clear_unit_attentions();
        c.clear_unit_attentions();
        let (ca, _) = read_cmd(&a);
        let (cb, _) = read_cmd(&b);
        let mut fa = pin!(t.execute(ca));
        let mut fb = pin!(t.execute(cb));
        assert!(poll_once(fa.as_mut()).is_pending());
        assert!(poll_once(fb.as_mut()).is_pending());
        assert_eq!(tmf(&t, &a, TmFunction::ClearTaskSet), TmfResponse::Complete);
        store.open();
        silent(poll_once(fa.as_mut()));
        if tas {
            task_aborted_status(poll_once(fb.as_mut()));
            no_ua(&b);
        } else {
            silent(poll_once(fb.as_mut()));
            // SAM-5 §5.6: told by a unit attention instead.
            ua(&b, Asc::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR);
        }
        no_ua(&c); // had no task: not told
        no_ua(&a);
    }
}

#[test]
fn accepts_logical_unit_reset() {
    for tas in [false, true] {
        let (t, store) = gated(2);
        let a = init(&t, "iqn.2026-11.test:a");
        let b = init(&t, "iqn.2026-11.test:b");
        let b1 = b.clone().with_lun(Lun::from_index(1).unwrap());
        b1.clear_unit_attentions();
        set_tas(&a, tas);
        b.clear_unit_attentions();
        let (ca, _) = read_cmd(&a);
        let (cb, _) = read_cmd(&b);
        let (cb1, _) = read_cmd(&b1);
        let mut fa = pin!(t.execute(ca));
        let mut fb = pin!(t.execute(cb));
        let mut fb1 = pin!(t.execute(cb1));
        assert!(poll_once(fa.as_mut()).is_pending());
        assert!(poll_once(fb.as_mut()).is_pending());
        assert!(poll_once(fb1.as_mut()).is_pending());
        assert_eq!(
            tmf(&t, &a, TmFunction::LogicalUnitReset),
            TmfResponse::Complete
        );
        silent(poll_once(fa.as_mut()));
        if tas {
            task_aborted_status(poll_once(fb.as_mut()));
        } else {
            silent(poll_once(fb.as_mut()));
        }
        // The other logical unit is untouched.
        store.open();
        assert_eq!(block_on(fb1).status, Status::GOOD);
        no_ua(&b1);
        // SAM-5 §6.3.3: every nexus, the requester too, gets 29/03 and the
        // mode parameters (TAS) return to their defaults.
        ua(&a, Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
        ua(&b, Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
        let o = a.run(&[0x1a, 0, 0x0a, 0, 64, 0], 64);
        assert_eq!(o.data[4 + 8 + 5] & 0x40, 0, "TAS back to default");
    }
}

#[test]
fn accepts_target_reset_on_every_logical_unit() {
    let (t, _store) = gated(2);
    let a = init(&t, "iqn.2026-11.test:a");
    let a1 = a.clone().with_lun(Lun::from_index(1).unwrap());
    a1.clear_unit_attentions();
    let (c0, _) = read_cmd(&a);
    let (c1, _) = read_cmd(&a1);
    let mut f0 = pin!(t.execute(c0));
    let mut f1 = pin!(t.execute(c1));
    assert!(poll_once(f0.as_mut()).is_pending());
    assert!(poll_once(f1.as_mut()).is_pending());
    assert_eq!(tmf(&t, &a, TmFunction::TargetReset), TmfResponse::Complete);
    silent(poll_once(f0.as_mut()));
    silent(poll_once(f1.as_mut()));
    ua(&a, Asc::POWER_ON_RESET);
    ua(&a1, Asc::POWER_ON_RESET);
}

#[test]
fn accepts_i_t_nexus_reset() {
    let (t, store) = gated(2);
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    let a1 = a.clone().with_lun(Lun::from_index(1).unwrap());
    a1.clear_unit_attentions();
    let (ca, _) = read_cmd(&a);
    let (ca1, _) = read_cmd(&a1);
    let (cb, _) = read_cmd(&b);
    let mut fa = pin!(t.execute(ca));
    let mut fa1 = pin!(t.execute(ca1));
    let mut fb = pin!(t.execute(cb));
    assert!(poll_once(fa.as_mut()).is_pending());
    assert!(poll_once(fa1.as_mut()).is_pending());
    assert!(poll_once(fb.as_mut()).is_pending());
    assert_eq!(tmf(&t, &a, TmFunction::ITNexusReset), TmfResponse::Complete);
    silent(poll_once(fa.as_mut()));
    silent(poll_once(fa1.as_mut()));
    store.open();
    assert_eq!(block_on(fb).status, Status::GOOD);
    // SAM-5 §6.3.4: I_T NEXUS LOSS OCCURRED on that nexus only.
    ua(&a, Asc::I_T_NEXUS_LOSS_OCCURRED);
    ua(&a1, Asc::I_T_NEXUS_LOSS_OCCURRED);
    no_ua(&b);
}

#[test]
fn accepts_query_task_query_task_set_and_query_async_event() {
    let (t, store) = gated(1);
    let a = init(&t, "iqn.2026-11.test:a");
    let b = init(&t, "iqn.2026-11.test:b");
    assert_eq!(tmf(&t, &a, TmFunction::QueryTaskSet), TmfResponse::Complete);
    assert_eq!(
        tmf(&t, &a, TmFunction::QueryTask { tag: 99 }),
        TmfResponse::Complete
    );
    let (ca, _) = read_cmd(&a);
    let tag = ca.tag;
    let mut fa = pin!(t.execute(ca));
    assert!(poll_once(fa.as_mut()).is_pending());
    // SAM-5 §7.8, §7.9: FUNCTION SUCCEEDED while the task exists.
    assert_eq!(
        tmf(&t, &a, TmFunction::QueryTask { tag }),
        TmfResponse::Succeeded
    );
    assert_eq!(
        tmf(&t, &a, TmFunction::QueryTaskSet),
        TmfResponse::Succeeded
    );
    assert_eq!(
        tmf(&t, &b, TmFunction::QueryTask { tag }),
        TmfResponse::Complete
    );
    assert_eq!(tmf(&t, &b, TmFunction::QueryTaskSet), TmfResponse::Complete);
    store.open();
    assert_eq!(block_on(fa).status, Status::GOOD);
    assert_eq!(
        tmf(&t, &a, TmFunction::QueryTask { tag }),
        TmfResponse::Complete
    );
    // SAM-5 §7.7: a pending unit attention makes QUERY ASYNCHRONOUS EVENT
    // succeed, without clearing it.
    assert_eq!(
        tmf(&t, &b, TmFunction::QueryAsyncEvent),
        TmfResponse::Complete
    );
    set_tas(&a, true); // MODE PARAMETERS CHANGED for b
    assert_eq!(
        tmf(&t, &b, TmFunction::QueryAsyncEvent),
        TmfResponse::Succeeded
    );
    assert_eq!(
        tmf(&t, &b, TmFunction::QueryAsyncEvent),
        TmfResponse::Succeeded
    );
    ua(&b, Asc::MODE_PARAMETERS_CHANGED);
    assert_eq!(
        tmf(&t, &b, TmFunction::QueryAsyncEvent),
        TmfResponse::Complete
    );
}

#[test]
fn rejects_clear_aca_and_unknown_luns() {
    let (t, _store) = gated(1);
    let a = init(&t, "iqn.2026-11.test:a");
    assert_eq!(tmf(&t, &a, TmFunction::ClearAca), TmfResponse::NotSupported);
    let bad = a.clone().with_lun(Lun::from_index(9).unwrap());
    for f in [
        TmFunction::AbortTask { tag: 1 },
        TmFunction::AbortTaskSet,
        TmFunction::ClearTaskSet,
        TmFunction::LogicalUnitReset,
        TmFunction::QueryTask { tag: 1 },
        TmFunction::QueryTaskSet,
        TmFunction::QueryAsyncEvent,
    ] {
        assert_eq!(tmf(&t, &bad, f), TmfResponse::IncorrectLun, "{f:?}");
    }
}

#[test]
fn aborts_preempted_tasks_with_preempt_and_abort() {
    for tas in [false, true] {
        let (t, store) = gated(1);
        let a = init(&t, "iqn.2026-11.test:a");
        let b = init(&t, "iqn.2026-11.test:b");
        set_tas(&a, tas);
        b.clear_unit_attentions();
        assert_eq!(prout(&a, REGISTER, 0, 0, 1).status(), Status::GOOD);
        assert_eq!(prout(&b, REGISTER, 0, 0, 2).status(), Status::GOOD);
        assert_eq!(prout(&b, RESERVE, WE, 2, 0).status(), Status::GOOD);
        let (ca, _) = read_cmd(&a);
        let (cb, _) = read_cmd(&b);
        let mut fa = pin!(t.execute(ca));
        let mut fb = pin!(t.execute(cb));
        assert!(poll_once(fa.as_mut()).is_pending());
        assert!(poll_once(fb.as_mut()).is_pending());
        let o = prout(&a, PREEMPT_AND_ABORT, EA, 1, 2);
        assert_eq!(o.status(), Status::GOOD, "{:?}", o.sense());
        if tas {
            task_aborted_status(poll_once(fb.as_mut()));
        } else {
            silent(poll_once(fb.as_mut()));
        }
        store.open();
        // The preempting nexus keeps its own tasks (SPC-4 §5.13.11.4.4).
        assert_eq!(block_on(fa).status, Status::GOOD);
        ua(&b, Asc::REGISTRATIONS_PREEMPTED);
        if !tas {
            ua(&b, Asc::COMMANDS_CLEARED_BY_ANOTHER_INITIATOR);
        }
        no_ua(&a);
    }
}

/// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 §6.36) says exactly
/// what `task_management` implements.
#[test]
fn reports_supported_tmfs_truthfully() {
    let (t, _store) = gated(1);
    let a = init(&t, "iqn.2026-11.test:a");
    let o = a.run(&[0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0], 4);
    assert_eq!(o.status(), Status::GOOD);
    let bits = [
        (o.data[0] & 0x80 != 0, TmFunction::AbortTask { tag: 1 }),
        (o.data[0] & 0x40 != 0, TmFunction::AbortTaskSet),
        (o.data[0] & 0x20 != 0, TmFunction::ClearAca),
        (o.data[0] & 0x10 != 0, TmFunction::ClearTaskSet),
        (o.data[0] & 0x08 != 0, TmFunction::LogicalUnitReset),
        (o.data[0] & 0x04 != 0, TmFunction::QueryTask { tag: 1 }),
        (o.data[0] & 0x02 != 0, TmFunction::TargetReset),
        (o.data[1] & 0x04 != 0, TmFunction::QueryAsyncEvent),
        (o.data[1] & 0x02 != 0, TmFunction::QueryTaskSet),
        (o.data[1] & 0x01 != 0, TmFunction::ITNexusReset),
    ];
    for (reported, f) in bits {
        let r = tmf(&t, &a, f);
        assert_eq!(reported, r != TmfResponse::NotSupported, "{f:?}: {r:?}");
        a.clear_unit_attentions();
    }
}
