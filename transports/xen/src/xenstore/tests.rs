//! The client against the in-memory xenstored.

use std::sync::Arc;
use std::time::Duration;

use super::fake::FakeXenstored;
use super::wire::MsgType;
use super::{XsErrno, XsError};

const T: Duration = Duration::from_secs(5);

#[test]
fn accepts_read_write_directory_rm() {
    let (d, xs, _ev) = FakeXenstored::start();
    xs.write("/local/domain/0/backend/qdisk/0/51712/state", b"1")
        .unwrap();
    xs.write("/local/domain/0/backend/qdisk/0/51728/state", b"1")
        .unwrap();
    assert_eq!(
        xs.read_string("/local/domain/0/backend/qdisk/0/51712/state")
            .unwrap(),
        "1"
    );
    let mut devs = xs.directory("/local/domain/0/backend/qdisk/0").unwrap();
    devs.sort();
    assert_eq!(devs, ["51712", "51728"]);
    xs.rm("/local/domain/0/backend/qdisk/0/51712").unwrap();
    assert!(xs
        .read("/local/domain/0/backend/qdisk/0/51712/state")
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        d.read("/local/domain/0/backend/qdisk/0/51728/state")
            .as_deref(),
        Some("1")
    );
    assert_eq!(xs.domain_path(0).unwrap(), "/local/domain/0");
    xs.mkdir("/a/b").unwrap();
    assert_eq!(xs.get_perms("/a/b").unwrap(), ["n0"]);
    xs.set_perms("/a/b", &["n0", "r5"]).unwrap();
}

#[test]
fn reports_daemon_errors_by_errno() {
    let (_d, xs, _ev) = FakeXenstored::start();
    match xs.read("/nope") {
        Err(XsError::Daemon(XsErrno::NoEnt)) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        xs.unwatch("/x", "t"),
        Err(XsError::Daemon(XsErrno::NoEnt))
    ));
}

#[test]
fn watch_events_are_demultiplexed_from_replies() {
    let (d, xs, ev) = FakeXenstored::start();
    xs.watch("/be", "tok").unwrap();
    let first = ev.recv_timeout(T).unwrap();
    assert_eq!((first.path.as_str(), first.token.as_str()), ("/be", "tok"));
    // The fake sends the event before the write's reply.
    xs.write("/be/1/state", b"2").unwrap();
    let e = ev.recv_timeout(T).unwrap();
    assert_eq!(e.path, "/be/1/state");
    d.rm("/be/1");
    assert_eq!(ev.recv_timeout(T).unwrap().path, "/be/1");
    xs.unwatch("/be", "tok").unwrap();
    xs.write("/be/2", b"x").unwrap();
    assert!(ev.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn concurrent_requests_each_get_their_own_reply() {
    let (_d, xs, _ev) = FakeXenstored::start();
    let xs = Arc::new(xs);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let xs = Arc::clone(&xs);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let p = format!("/t{t}/k{i}");
                    xs.write(&p, format!("{t}-{i}").as_bytes()).unwrap();
                    assert_eq!(xs.read_string(&p).unwrap(), format!("{t}-{i}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn transactions_retry_on_eagain_and_abort_on_drop() {
    let (d, xs, _ev) = FakeXenstored::start();
    d.conflict_next(2);
    let mut runs = 0;
    xs.in_transaction(|t| {
        runs += 1;
        t.write("/x/state", b"4")?;
        t.write("/x/sectors", b"2048")
    })
    .unwrap();
    assert_eq!(runs, 3);
    assert_eq!(d.read("/x/sectors").as_deref(), Some("2048"));
    {
        let t = xs.transaction().unwrap();
        assert!(t.id() > 0);
    }
    let log = d.requests();
    assert_eq!(log.last(), Some(&MsgType::TRANSACTION_END));
}

#[test]
fn a_closed_connection_fails_requests_instead_of_hanging() {
    let (d, xs, ev) = FakeXenstored::start();
    d.close();
    assert!(ev.recv_timeout(T).is_err());
    assert!(matches!(
        xs.read("/a"),
        Err(XsError::Closed | XsError::Io(_))
    ));
}

#[test]
fn an_oversized_header_from_the_daemon_closes_the_client() {
    let (d, xs, _ev) = FakeXenstored::start();
    let mut h = Vec::new();
    for v in [2u32, 1, 0, 1_000_000] {
        h.extend_from_slice(&v.to_ne_bytes());
    }
    d.send_raw(&h);
    std::thread::sleep(Duration::from_millis(50));
    assert!(matches!(xs.read("/a"), Err(XsError::Closed)));
}
