//! The store, the auditor and verification against a real SQLite file (no mocks).

use std::net::IpAddr;
use std::path::Path;

use super::event::{AuditEvent, What};
use super::ingest::Auditor;
use super::query::{self, Range};
use super::store::{new_session_id, NewSession, Store};

fn new_session(store: &mut Store, argv: &[&str]) -> super::store::Cursor {
    store
        .begin_session(&NewSession {
            id: new_session_id().unwrap(),
            started_ns: super::time::now_ns(),
            uid: 1000,
            user: "alice".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: b"/home/alice/p".to_vec(),
            profile: "default".into(),
            policy_digest: "sha256:00".into(),
            layers: serde_json::json!([{"name": "landlock", "features": []}]),
            nono_pid: 1,
        })
        .unwrap()
}

fn file_event(i: u64, denied: bool) -> AuditEvent {
    AuditEvent {
        time_ns: 1_000 + i as i64,
        pid: 42,
        process: "cat".into(),
        denied,
        rule_id: Some(3),
        rule_source: Some("p.nono:3:1".into()),
        what: What::File {
            op: "read".into(),
            path: format!("/work/f{i}").into_bytes(),
            inode: None,
            hook: None,
            path_truncated: false,
        },
    }
}

/// A complete session of `n` events written through the auditor; returns its sid.
fn recorded(path: &Path, n: u64) -> i64 {
    let mut store = Store::open(path).unwrap();
    let cursor = new_session(&mut store, &["cat", "x"]);
    let sid = cursor.sid;
    let auditor = Auditor::start(store, cursor).unwrap();
    let tx = auditor.sender();
    let events: Vec<AuditEvent> = (0..n).map(|i| file_event(i, i % 3 == 0)).collect();
    tx.blocking_send(events).unwrap();
    let summary = auditor.finish(9_999, Some(0)).unwrap();
    assert_eq!(summary.events as u64, n + 1, "n events and the end event");
    sid
}

fn verify(path: &Path, sid: i64) -> query::Verification {
    let store = Store::open(path).unwrap();
    let s = query::by_sid(&store, sid).unwrap().unwrap();
    query::verify(&store, &s).unwrap()
}

fn sql(path: &Path, statement: &str) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(statement).unwrap();
}

#[test]
fn an_untouched_session_verifies_and_counts_violations() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("nono/audit.db");
    let sid = recorded(&db, 100);
    let v = verify(&db, sid);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.complete);
    assert_eq!(v.events, 101);
    let store = Store::open(&db).unwrap();
    let s = query::by_sid(&store, sid).unwrap().unwrap();
    assert_eq!(s.violation_count, 34);
    assert_eq!(s.exit_code, Some(0));
    // Files nono creates are private to the user.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(db.parent().unwrap()), 0o700);
}

#[test]
fn verify_detects_an_edited_event() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let sid = recorded(&db, 20);
    // Turn a denial into an allow, keeping the counters consistent by hand.
    sql(
        &db,
        &format!(
            "UPDATE events SET denied = 0 WHERE sid = {sid} AND seq = 4;
             UPDATE sessions SET violation_count = violation_count - 1 WHERE sid = {sid};"
        ),
    );
    let v = verify(&db, sid);
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert!(v.problems[0].starts_with("event 4:"), "{:?}", v.problems);
    // An edited path is caught the same way.
    sql(
        &db,
        &format!(
            "UPDATE events SET object = CAST('/etc/x' AS BLOB) WHERE sid = {sid} AND seq = 9;"
        ),
    );
    let v = verify(&db, sid);
    assert!(
        v.problems.iter().any(|p| p.starts_with("event 9:")),
        "{:?}",
        v.problems
    );
}

#[test]
fn verify_detects_dropped_events_in_the_middle_and_at_the_end() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let sid = recorded(&db, 20);
    sql(
        &db,
        &format!("DELETE FROM events WHERE sid = {sid} AND seq = 7;"),
    );
    let v = verify(&db, sid);
    assert!(
        v.problems
            .iter()
            .any(|p| p.contains("event(s) 7..7 are missing")),
        "{:?}",
        v.problems
    );
    let db2 = d.path().join("audit2.db");
    let sid = recorded(&db2, 20);
    // Drop the tail (the end event too): only the recorded head and count can tell.
    sql(
        &db2,
        &format!("DELETE FROM events WHERE sid = {sid} AND seq >= 19;"),
    );
    let v = verify(&db2, sid);
    assert!(
        v.problems.iter().any(|p| p.contains("records 21 events")),
        "{:?}",
        v.problems
    );
    assert!(
        v.problems.iter().any(|p| p.contains("head")),
        "{:?}",
        v.problems
    );
}

#[test]
fn verify_detects_reordered_events() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let sid = recorded(&db, 20);
    // Swap events 5 and 6 (with their stored hashes): both positions fail.
    sql(
        &db,
        &format!(
            "UPDATE events SET seq = -1 WHERE sid = {sid} AND seq = 5;
             UPDATE events SET seq = 5 WHERE sid = {sid} AND seq = 6;
             UPDATE events SET seq = 6 WHERE sid = {sid} AND seq = -1;"
        ),
    );
    let v = verify(&db, sid);
    assert!(
        v.problems.iter().any(|p| p.starts_with("event 5:")),
        "{:?}",
        v.problems
    );
    assert!(
        v.problems.iter().any(|p| p.starts_with("event 6:")),
        "{:?}",
        v.problems
    );
}

#[test]
fn verify_detects_an_edited_session_header() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let sid = recorded(&db, 3);
    sql(
        &db,
        &format!("UPDATE sessions SET profile = 'permissive' WHERE sid = {sid};"),
    );
    let v = verify(&db, sid);
    assert!(
        v.problems.iter().any(|p| p.starts_with("event 1:")),
        "{:?}",
        v.problems
    );
}

#[test]
fn a_session_whose_writer_vanished_stays_incomplete_but_verifies() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let mut store = Store::open(&db).unwrap();
    let mut cursor = new_session(&mut store, &["sleep", "100"]);
    let rows: Vec<_> = (0..10).map(|i| file_event(i, false).into_row()).collect();
    store.append(&mut cursor, &rows, 0, 0).unwrap();
    drop(store); // as after a kill -9: no end event
    let v = verify(&db, cursor.sid);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(!v.complete);
    assert_eq!(v.events, 10);
}

#[test]
fn several_writers_share_one_store() {
    // Each thread has its own connection, as each `nono run` process does; SQLite's locking
    // is per connection, so this is the same contention as between processes.
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let sids: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| recorded(&db, 5_000))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for sid in sids {
        let v = verify(&db, sid);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.events, 5_001);
    }
}

#[test]
fn try_send_counts_what_it_cannot_queue_and_send_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let mut store = Store::open(&db).unwrap();
    let cursor = new_session(&mut store, &["x"]);
    let sid = cursor.sid;
    // Hold the write lock from another connection so the writer stalls and the channel fills.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let auditor = Auditor::start(store, cursor).unwrap();
    let tx = auditor.sender();
    let total = 200 * super::ingest::MAX_BATCH;
    let mut dropped = 0;
    for i in 0..200 {
        let batch: Vec<_> = (0..super::ingest::MAX_BATCH as u64)
            .map(|j| file_event(i * 10_000 + j, false))
            .collect();
        dropped += tx.try_send(batch);
    }
    assert!(dropped > 0, "a stalled writer must make try_send drop");
    assert_eq!(tx.dropped(), dropped as u64);
    blocker.execute_batch("COMMIT;").unwrap();
    tx.set_kernel_drops(7);
    let summary = auditor.finish(1, Some(0)).unwrap();
    assert_eq!(summary.events as usize, total - dropped + 1);
    let store = Store::open(&db).unwrap();
    let s = query::by_sid(&store, sid).unwrap().unwrap();
    assert_eq!(s.dropped_user as usize, dropped);
    assert_eq!(s.dropped_kernel, 7);
    assert!(query::verify(&store, &s).unwrap().problems.is_empty());
}

#[test]
fn async_send_waits_for_room_and_keeps_everything() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let mut store = Store::open(&db).unwrap();
    let cursor = new_session(&mut store, &["x"]);
    let sid = cursor.sid;
    let auditor = Auditor::start(store, cursor).unwrap();
    let tx = auditor.sender();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..100u64 {
            let batch: Vec<_> = (0..1000)
                .map(|j| file_event(i * 1000 + j, j == 0))
                .collect();
            tx.send(batch).await.unwrap();
        }
    });
    let summary = auditor.finish(1, Some(0)).unwrap();
    assert_eq!(summary.events, 100_001);
    assert_eq!(summary.dropped_user, 0);
    let store = Store::open(&db).unwrap();
    let mut seen = 0;
    query::for_each_event(
        &store,
        sid,
        Range {
            limit: Some(5),
            ..Range::default()
        },
        |e| {
            seen += 1;
            assert_eq!(e.seq, seen);
            true
        },
    )
    .unwrap();
    assert_eq!(seen, 5);
}

#[test]
fn net_events_round_trip_through_the_store() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let mut store = Store::open(&db).unwrap();
    let mut cursor = new_session(&mut store, &["curl"]);
    let ev = AuditEvent {
        time_ns: 5,
        pid: 7,
        process: "curl".into(),
        denied: true,
        rule_id: None,
        rule_source: None,
        what: What::Net {
            op: "connect".into(),
            addr: Some("127.0.0.1".parse::<IpAddr>().unwrap()),
            port: 8080,
            protocol: "tcp".into(),
            name: None,
        },
    };
    store.append(&mut cursor, &[ev.into_row()], 0, 0).unwrap();
    let mut got = Vec::new();
    query::for_each_event(&store, cursor.sid, Range::default(), |e| {
        got.push(e.to_json());
        true
    })
    .unwrap();
    assert_eq!(got[0]["object"], "127.0.0.1:8080");
    assert_eq!(got[0]["detail"]["port"], 8080);
    assert_eq!(got[0]["denied"], true);
}

#[test]
fn prune_removes_old_sessions_with_their_events_only() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let old = recorded(&db, 10);
    let new = recorded(&db, 10);
    sql(
        &db,
        &format!("UPDATE sessions SET started_ns = 0 WHERE sid = {old};"),
    );
    let mut store = Store::open(&db).unwrap();
    let cutoff = super::time::now_ns() - 86_400 * super::time::NS_PER_SEC;
    assert_eq!(
        query::prune(&mut store, cutoff, None, None).unwrap(),
        (1, 11)
    );
    assert!(query::by_sid(&store, old).unwrap().is_none());
    assert!(query::by_sid(&store, new).unwrap().is_some());
    let left: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 11);
}

#[test]
fn ids_resolve_by_unique_prefix() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let sid = recorded(&db, 1);
    let store = Store::open(&db).unwrap();
    let s = query::by_sid(&store, sid).unwrap().unwrap();
    assert_eq!(query::resolve(&store, &s.id[..8]).unwrap().sid, sid);
    assert_eq!(
        query::resolve(&store, &s.id.to_uppercase()).unwrap().sid,
        sid
    );
    assert!(query::resolve(&store, "zz").is_err());
    assert!(query::resolve(&store, "%").is_err());
}

#[test]
fn list_filters_and_orders_newest_first() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let a = recorded(&db, 3); // violations: events 0 -> 1 violation
    let b = recorded(&db, 0); // no events, no violations
    sql(
        &db,
        &format!(
            "UPDATE sessions SET started_ns = 1000, profile = 'node-dev' WHERE sid = {a};
             UPDATE sessions SET started_ns = 2000 WHERE sid = {b};"
        ),
    );
    let store = Store::open(&db).unwrap();
    let ids = |f: &query::Filter| -> Vec<i64> {
        query::list(&store, f)
            .unwrap()
            .iter()
            .map(|s| s.sid)
            .collect()
    };
    assert_eq!(ids(&query::Filter::default()), [b, a], "newest first");
    let only = |f: query::Filter| ids(&f);
    assert_eq!(
        only(query::Filter {
            violations_only: true,
            ..Default::default()
        }),
        [a]
    );
    assert_eq!(
        only(query::Filter {
            profile: Some("node-dev".into()),
            ..Default::default()
        }),
        [a]
    );
    assert_eq!(
        only(query::Filter {
            since_ns: Some(1500),
            ..Default::default()
        }),
        [b]
    );
    assert_eq!(
        only(query::Filter {
            until_ns: Some(1500),
            ..Default::default()
        }),
        [a]
    );
    assert_eq!(
        only(query::Filter {
            command: Some("cat x".into()),
            ..Default::default()
        }),
        [b, a]
    );
    assert!(only(query::Filter {
        command: Some("npm".into()),
        ..Default::default()
    })
    .is_empty());
}

#[test]
fn the_wal_stays_small_across_runs() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("audit.db");
    let wal = d.path().join("audit.db-wal");
    // Many small sessions, each from a fresh connection like a `nono run`.
    for _ in 0..60 {
        recorded(&db, 20);
    }
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(
        size <= super::store::WAL_KEEP + 64 * 1024,
        "the WAL grew to {size} bytes"
    );
    // And everything is still there and intact, read through a fresh connection.
    let store = Store::open(&db).unwrap();
    let all = query::list(&store, &query::Filter::default()).unwrap();
    assert_eq!(all.len(), 60);
    assert!(all
        .iter()
        .all(|s| query::verify(&store, s).unwrap().problems.is_empty()));
}

/// `nono run` opens the store on the writer thread while the command starts: events sent
/// before the session row exists are still written after it, in order, and a store that
/// cannot be opened closes the channel and reports its error at the end instead of hanging.
#[test]
fn store_opened_on_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let open_path = path.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let auditor = Auditor::start_opening(
        move || {
            // The events below are queued before the store is even opened.
            ready_rx.recv().unwrap();
            let mut store = Store::open(&open_path)?;
            let cursor = new_session(&mut store, &["cat"]);
            Ok((store, cursor))
        },
        |_| {},
    )
    .unwrap();
    let tx = auditor.sender();
    assert_eq!(
        tx.try_send((0..10).map(|i| file_event(i, false)).collect()),
        0
    );
    ready_tx.send(()).unwrap();
    let summary = auditor.finish(9_999, Some(0)).unwrap();
    assert_eq!(summary.events, 11, "10 events and the end event");
    let store = Store::open(&path).unwrap();
    let sid: i64 = store
        .conn()
        .query_row("SELECT sid FROM sessions", [], |r| r.get(0))
        .unwrap();
    drop(store);
    let v = verify(&path, sid);
    assert!(v.problems.is_empty() && v.complete, "{:?}", v.problems);
    assert_eq!(v.events, 11);

    // A directory where the database file should be: opening fails on the writer thread.
    let bad = dir.path().join("not-a-db");
    std::fs::create_dir(&bad).unwrap();
    let auditor = Auditor::start_opening(
        move || {
            let mut store = Store::open(&bad)?;
            let cursor = new_session(&mut store, &["cat"]);
            Ok((store, cursor))
        },
        |_| {},
    )
    .unwrap();
    let tx = auditor.sender();
    let err = auditor.finish(1, Some(0)).unwrap_err();
    assert!(err.to_string().contains("not-a-db"), "{err}");
    assert!(tx.blocking_send(vec![file_event(0, false)]).is_err());
}

#[test]
fn a_session_is_running_only_while_the_nono_that_began_it_lives() {
    let me = i64::from(std::process::id());
    let now = super::time::now_ns();
    assert!(
        query::nono_alive(me, now),
        "this process, a session begun now"
    );
    // The same pid, but a session begun a year before this process started: a reused pid.
    assert!(!query::nono_alive(
        me,
        now - 3_600 * 1_000_000_000_i64 * 24 * 365
    ));
    // No such process (pid_max is at most 2^22).
    assert!(!query::nono_alive(i64::from(i32::MAX), now));
    assert!(!query::nono_alive(0, now));
    assert!(!query::nono_alive(-1, now));
}
