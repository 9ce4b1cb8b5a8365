//! The target session state machine: login, credits, tags, task
//! management, logout.

use tgtkit_scsi_core::engine::{TmFunction, TmfResponse};
use tgtkit_srp::cmd::{Command, TaskAttr};
use tgtkit_srp::desc::{DataDesc, DirectBuf};
use tgtkit_srp::iu::Iu;
use tgtkit_srp::login::{RejectReason, LOGIN_REQ_LEN};
use tgtkit_srp::logout::OP_I_LOGOUT;
use tgtkit_srp::rsp::Residual;
use tgtkit_srp::session::{
    Event, ExistingChannels, MultiChannel, Session, SessionConfig, SessionError, State,
};
use tgtkit_srp::tsk_mgmt::{TaskFunction, TskMgmt};
use zerocopy::IntoBytes;

fn login_req(it_len: u32, buf_fmt: u16, flags: u8) -> Vec<u8> {
    let mut b = vec![0u8; LOGIN_REQ_LEN];
    b[8..16].copy_from_slice(&[7; 8]);
    b[16..20].copy_from_slice(&it_len.to_be_bytes());
    b[24..26].copy_from_slice(&buf_fmt.to_be_bytes());
    b[26] = flags;
    b[32] = 0xaa; // initiator port id
    b
}

fn config(credits: u32) -> SessionConfig {
    SessionConfig {
        credits,
        ..SessionConfig::default()
    }
}

fn logged_in(credits: u32) -> Session {
    let mut s = Session::new(config(credits));
    s.handle_iu(&login_req(1024, 6, 1)).unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::Login {
            multichannel: MultiChannel::Multi,
            ..
        })
    ));
    assert_eq!(s.state(), State::LoginPending);
    assert!(
        s.poll_transmit().is_none(),
        "nothing before the embedder decides"
    );
    assert_eq!(s.handle_iu(&read(1)), Err(SessionError::NotLoggedIn(0x02)));
    s.accept_login(ExistingChannels::Maintained).unwrap();
    assert_eq!(
        s.accept_login(ExistingChannels::None),
        Err(SessionError::NoLoginPending)
    );
    match Iu::decode(&s.poll_transmit().unwrap(), 4096).unwrap() {
        Iu::LoginRsp(r) => {
            assert_eq!(r.rsp_flags, 2);
            assert_eq!(r.tag, [7; 8]);
            assert_eq!(r.req_lim_delta.get(), credits);
            assert_eq!(r.max_it_iu_len.get(), 1024);
        }
        other => panic!("{other:?}"),
    }
    s
}

fn read(tag: u8) -> Vec<u8> {
    let mut cdb = vec![0u8; 16];
    cdb[0] = 0x28;
    cdb[8] = 1;
    Command {
        sol_not: 0,
        tag: [tag; 8],
        lun: [0; 8],
        task_attr: TaskAttr::Simple,
        cdb,
        data_out: DataDesc::None,
        data_in: DataDesc::Direct(DirectBuf::new(0, 0, 512)),
    }
    .encode()
}

fn rsp(s: &mut Session) -> tgtkit_srp::rsp::Response {
    match Iu::decode(&s.poll_transmit().expect("an IU"), 4096).unwrap() {
        Iu::Rsp(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_logins_it_cannot_serve() {
    let mut s = Session::new(config(4));
    s.handle_iu(&login_req(1 << 20, 6, 0)).unwrap();
    match Iu::decode(&s.poll_transmit().unwrap(), 4096).unwrap() {
        Iu::LoginRej(r) => assert_eq!(r.reject_reason(), RejectReason::REQ_IT_IU_LENGTH_TOO_LARGE),
        other => panic!("{other:?}"),
    }
    s.handle_iu(&login_req(1024, 1 << 8, 0)).unwrap();
    match Iu::decode(&s.poll_transmit().unwrap(), 4096).unwrap() {
        Iu::LoginRej(r) => {
            assert_eq!(
                r.reject_reason(),
                RejectReason::UNSUPPORTED_DESCRIPTOR_FORMAT
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.state(), State::AwaitingLogin);
    assert!(s.poll_event().is_none());
    // The embedder refuses one (a channel limit): LOGIN_REJ, still waiting.
    s.handle_iu(&login_req(1024, 6, 0)).unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::Login {
            multichannel: MultiChannel::Single,
            ..
        })
    ));
    s.reject_login(RejectReason::CHANNEL_LIMIT_REACHED).unwrap();
    match Iu::decode(&s.poll_transmit().unwrap(), 4096).unwrap() {
        Iu::LoginRej(r) => assert_eq!(r.reject_reason(), RejectReason::CHANNEL_LIMIT_REACHED),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.state(), State::AwaitingLogin);
    // Nothing but a login before login.
    assert_eq!(s.handle_iu(&read(1)), Err(SessionError::NotLoggedIn(0x02)));
    assert!(matches!(
        s.handle_iu(&[0x02; 3]),
        Err(SessionError::Decode(_))
    ));
}

#[test]
fn spends_and_returns_credits_and_refuses_past_the_limit() {
    let mut s = logged_in(2);
    s.handle_iu(&read(1)).unwrap();
    s.handle_iu(&read(2)).unwrap();
    assert_eq!(s.credits(), 0);
    assert!(matches!(s.poll_event(), Some(Event::Command(c)) if c.tag == [1; 8]));
    assert!(matches!(s.poll_event(), Some(Event::Command(c)) if c.tag == [2; 8]));
    // A third request has no credit: BUSY, no credit back.
    s.handle_iu(&read(3)).unwrap();
    let r = rsp(&mut s);
    assert_eq!((r.tag, r.status, r.req_lim_delta), ([3; 8], 0x08, 0));
    assert!(s.poll_event().is_none());
    // Answering returns the credit, with residual and sense.
    s.respond(
        [1; 8],
        2,
        Some(&[0x70, 0, 5]),
        Residual::None,
        Residual::Under(512),
    )
    .unwrap();
    let r = rsp(&mut s);
    assert_eq!((r.tag, r.status, r.req_lim_delta), ([1; 8], 2, 1));
    assert_eq!(r.data_in, Residual::Under(512));
    assert_eq!(r.sense.as_deref(), Some(&[0x70u8, 0, 5][..]));
    assert_eq!(s.credits(), 1);
    assert_eq!(
        s.respond([1; 8], 0, None, Residual::None, Residual::None),
        Err(SessionError::UnknownTag([1; 8]))
    );
    // Credits granted outside a response.
    s.grant_credits(3);
    assert!(matches!(
        Iu::decode(&s.poll_transmit().unwrap(), 64).unwrap(),
        Iu::CredReq(c) if c.req_lim_delta.get() == 3
    ));
    assert_eq!(s.credits(), 4);
}

#[test]
fn refuses_a_tag_already_in_flight() {
    let mut s = logged_in(8);
    s.handle_iu(&read(5)).unwrap();
    s.handle_iu(&read(5)).unwrap();
    let r = rsp(&mut s);
    assert_eq!((r.tag, r.status, r.req_lim_delta), ([5; 8], 2, 1));
    let sense = r.sense.unwrap();
    assert_eq!((sense[2] & 0xf, sense[12], sense[13]), (5, 0x4e, 0));
    assert_eq!(s.in_flight(), 1);
    assert_eq!(s.credits(), 7);
}

#[test]
fn task_management_maps_to_the_engine_and_answers_codes() {
    let mut s = logged_in(4);
    let t = TskMgmt::new([9; 8], [0; 8], TaskFunction::ABORT_TASK, 5u64.to_be_bytes());
    s.handle_iu(t.as_bytes()).unwrap();
    let Some(Event::TaskManagement {
        tag,
        function,
        task_tag,
        ..
    }) = s.poll_event()
    else {
        panic!("no TMF event");
    };
    assert_eq!(
        function.to_engine(task_tag),
        Some(TmFunction::AbortTask { tag: 5 })
    );
    assert_eq!(
        TaskFunction::LUN_RESET.to_engine([0; 8]),
        Some(TmFunction::LogicalUnitReset)
    );
    assert_eq!(TaskFunction(0x80).to_engine([0; 8]), None);
    s.respond_tmf(tag, TmfResponse::NotSupported).unwrap();
    let r = rsp(&mut s);
    assert_eq!(r.response_data.as_deref(), Some(&[0u8, 0, 0, 4][..]));
    assert_eq!(r.req_lim_delta, 1);
}

#[test]
fn logs_out_both_ways() {
    let mut s = logged_in(4);
    s.handle_iu(&read(1)).unwrap();
    let mut lo = vec![0u8; 16];
    lo[0] = OP_I_LOGOUT;
    s.handle_iu(&lo).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Command(_))));
    assert_eq!(s.poll_event(), Some(Event::Logout));
    assert_eq!(s.state(), State::LoggedOut);
    assert_eq!(s.handle_iu(&read(2)), Err(SessionError::LoggedOut));
    assert_eq!(
        s.respond([1; 8], 0, None, Residual::None, Residual::None),
        Err(SessionError::LoggedOut)
    );
    let mut s = logged_in(4);
    s.logout(2);
    assert!(
        matches!(Iu::decode(&s.poll_transmit().unwrap(), 64).unwrap(), Iu::TLogout(t) if t.reason.get() == 2)
    );
    assert_eq!(s.state(), State::LoggedOut);
}

#[test]
fn refuses_ius_a_target_never_receives_and_oversized_ones() {
    let mut s = logged_in(4);
    let r = tgtkit_srp::rsp::Response::scsi([0; 8], 1, 0, None).encode();
    assert_eq!(s.handle_iu(&r), Err(SessionError::Unexpected(0xc1)));
    let mut big = read(1);
    big.resize(2048, 0);
    assert!(matches!(
        s.handle_iu(&big),
        Err(SessionError::Decode(
            tgtkit_srp::DecodeError::TooLong { .. }
        ))
    ));
    assert_eq!(s.credits(), 4);
}
