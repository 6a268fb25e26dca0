//! The store's schema and its migrations.
//!
//! Privilege: none; SQL only.
//!
//! `PRAGMA user_version` is the number of migrations applied. Each migration runs in the same
//! `BEGIN IMMEDIATE` transaction as the version bump, after re-reading the version inside it,
//! so two `nono run`s opening a new store at once apply it exactly once. A store from a newer
//! nono (a higher version) is refused rather than guessed at.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only: never edit one.
pub const MIGRATIONS: &[&str] = &[
    // 1: sessions and their hash-chained events.
    "
    CREATE TABLE sessions (
        sid             INTEGER PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        started_ns      INTEGER NOT NULL,
        ended_ns        INTEGER,
        uid             INTEGER NOT NULL,
        user            TEXT NOT NULL,
        argv            TEXT NOT NULL,
        command         TEXT NOT NULL,
        cwd             BLOB NOT NULL,
        profile         TEXT NOT NULL,
        policy_digest   TEXT NOT NULL,
        layers          TEXT NOT NULL,
        nono_pid        INTEGER NOT NULL,
        exit_code       INTEGER,
        event_count     INTEGER NOT NULL DEFAULT 0,
        violation_count INTEGER NOT NULL DEFAULT 0,
        dropped_kernel  INTEGER NOT NULL DEFAULT 0,
        dropped_user    INTEGER NOT NULL DEFAULT 0,
        head            BLOB NOT NULL,
        complete        INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_by_start ON sessions(started_ns);
    CREATE TABLE events (
        sid         INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        time_ns     INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        op          TEXT NOT NULL,
        denied      INTEGER NOT NULL,
        pid         INTEGER NOT NULL,
        process     TEXT NOT NULL,
        rule_id     INTEGER,
        rule_source TEXT,
        object      BLOB NOT NULL,
        detail      TEXT,
        hash        BLOB NOT NULL,
        PRIMARY KEY (sid, seq)
    ) WITHOUT ROWID;
    ",
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`VERSION`]. Returns the version found, for errors.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<(), i64>> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == VERSION {
        return Ok(Ok(()));
    }
    if current > VERSION {
        return Ok(Err(current));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated between the read above and taking the lock.
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Ok(Err(current));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_stores() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c).unwrap(), Ok(()));
        assert_eq!(migrate(&mut c).unwrap(), Ok(()));
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
        c.pragma_update(None, "user_version", VERSION + 1).unwrap();
        assert_eq!(migrate(&mut c).unwrap(), Err(VERSION + 1));
    }
}
