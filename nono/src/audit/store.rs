//! The SQLite store: opening (WAL, busy timeout, migrations), sessions, batched appends.
//!
//! Privilege: none (the user's own files). Kernel assumptions: shared-memory maps and POSIX
//! advisory locks on the store's file system (WAL mode; not NFS).
//!
//! Concurrency: every `nono run` has its own connection. WAL lets readers (`nono audit`) run
//! beside writers; writers take the write lock with `BEGIN IMMEDIATE` (no lock upgrades, so
//! no deadlock between two writers) and wait for each other up to [`BUSY_TIMEOUT`]. Each
//! session's events are written by the one process that owns the session, so sequence
//! numbers never collide.
//!
//! Crash safety: a batch of events and the session's counters and chain head are committed in
//! one transaction, so after a `kill -9` the store holds a prefix of the session that
//! verifies, and the session stays `complete = 0`. `synchronous = NORMAL` in WAL mode
//! survives the death of the process; the last transactions before a power loss may be lost.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use super::chain::{self, Hash, Header};
use super::event::Row;
use super::schema;
use super::AuditError;

/// How long a writer waits for another writer's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The WAL size past which a finishing writer checkpoints (see [`Store::tidy`]).
pub const WAL_KEEP: u64 = 256 * 1024;

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// A session being written: where its chain is.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub sid: i64,
    pub id: String,
    pub head: Hash,
    /// The last sequence number written (0 before the first event).
    pub seq: i64,
    pub violations: i64,
}

/// What a session is started with.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub started_ns: i64,
    pub uid: u32,
    pub user: String,
    /// Already redacted.
    pub argv: Vec<String>,
    pub cwd: Vec<u8>,
    pub profile: String,
    pub policy_digest: String,
    /// `[{"name": "landlock", "features": [...]}, ...]`
    pub layers: serde_json::Value,
    pub nono_pid: u32,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub time_ns: i64,
    /// The status `nono run` passed on (128+N for signal N); `None` if the command never ran.
    pub exit_code: Option<i32>,
    pub dropped_kernel: u64,
    pub dropped_user: u64,
}

/// A fresh random session id: 128 bits from the kernel's CSPRNG, as 32 hex digits.
pub fn new_session_id() -> std::io::Result<String> {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most the given length into the buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(hex::encode(buf))
}

impl Store {
    /// Opens (creating it, its directory and its schema if needed) the store at `path`. The
    /// directory is made `0700` and the file `0600`: other users may not read the trail.
    pub fn open(path: &Path) -> Result<Store, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.is_dir() {
                if let Some(up) = dir.parent() {
                    std::fs::create_dir_all(up).map_err(io)?;
                }
                match DirBuilder::new().mode(0o700).create(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(e)),
                }
            }
        }
        // Create the file with the mode SQLite will copy to its -wal and -shm files.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Opens an existing store, or `None` if there is none yet (nothing recorded).
    pub fn open_existing(path: &Path) -> Result<Option<Store>, AuditError> {
        if !path.exists() {
            return Ok(None);
        }
        Self::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map(Some)
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<Store, AuditError> {
        let sql = |source| AuditError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            path,
            flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(sql)?;
        // The busy timeout first: switching to WAL itself takes a lock another process may hold.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        let mode = switch_to_wal(&conn).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(AuditError::Other(format!(
                "audit store {}: cannot use write-ahead logging (journal mode `{mode}`); is it on a network file system?",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // No checkpoint when the last connection closes: that checkpoint costs two fsyncs at
        // the end of every `nono run` (about 10 ms on this machine's loaded disk). A finishing
        // writer checkpoints and empties the WAL once it has grown past WAL_KEEP
        // ([`Store::tidy`]), so the WAL a later open must read stays small; inside a long
        // session SQLite checkpoints every 1,000 pages, and the WAL file is then truncated
        // back to 8 MiB.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(sql)?;
        conn.pragma_update(None, "journal_size_limit", 8 * 1024 * 1024)
            .map_err(sql)?;
        match schema::migrate(&mut conn).map_err(sql)? {
            Ok(()) => {}
            Err(found) => {
                return Err(AuditError::TooNew {
                    path: path.to_path_buf(),
                    found,
                    known: schema::VERSION,
                })
            }
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Checkpoints the WAL into the database and empties it if it has grown past
    /// [`WAL_KEEP`]. It never waits: with a reader in progress (a `nono audit show`) it gives
    /// up, and a later run does it. (A checkpoint that leaves the WAL in place does not
    /// help: the next process to open the store recovers the WAL and treats every frame as
    /// new again.)
    pub fn tidy(&self) -> Result<(), AuditError> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size <= WAL_KEEP {
            return Ok(());
        }
        let sql = |e| self.sql_err(e);
        self.conn.busy_timeout(Duration::ZERO).map_err(sql)?;
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        r.map_err(sql)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn sql_err(&self, source: rusqlite::Error) -> AuditError {
        AuditError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records the start of a session (`complete = 0` until [`Store::end_session`]).
    pub fn begin_session(&mut self, s: &NewSession) -> Result<Cursor, AuditError> {
        let argv = serde_json::to_string(&s.argv).expect("strings serialise");
        let layers = s.layers.to_string();
        let head = chain::genesis(&Header {
            id: &s.id,
            started_ns: s.started_ns,
            uid: s.uid as i64,
            user: &s.user,
            argv: &argv,
            cwd: &s.cwd,
            profile: &s.profile,
            policy_digest: &s.policy_digest,
            layers: &layers,
        });
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self_err(&self.path, e))?;
        tx.execute(
            "INSERT INTO sessions (id, started_ns, uid, user, argv, command, cwd, profile,
                policy_digest, layers, nono_pid, head)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                s.id,
                s.started_ns,
                s.uid,
                s.user,
                argv,
                s.argv.join(" "),
                s.cwd,
                s.profile,
                s.policy_digest,
                layers,
                s.nono_pid,
                &head[..],
            ],
        )
        .map_err(|e| self_err(&self.path, e))?;
        let sid = tx.last_insert_rowid();
        tx.commit().map_err(|e| self_err(&self.path, e))?;
        Ok(Cursor {
            sid,
            id: s.id.clone(),
            head,
            seq: 0,
            violations: 0,
        })
    }

    /// Appends `rows` to the session's chain and updates its counters, in one transaction.
    /// The cursor only moves if the transaction commits.
    pub fn append(
        &mut self,
        c: &mut Cursor,
        rows: &[Row],
        dropped_kernel: u64,
        dropped_user: u64,
    ) -> Result<(), AuditError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self_err(&path, e))?;
        let (head, seq, violations) = insert_rows(&tx, c, rows).map_err(|e| self_err(&path, e))?;
        tx.execute(
            "UPDATE sessions SET head = ?2, event_count = ?3, violation_count = ?4,
                dropped_kernel = ?5, dropped_user = ?6 WHERE sid = ?1",
            params![
                c.sid,
                &head[..],
                seq,
                violations,
                dropped_kernel as i64,
                dropped_user as i64
            ],
        )
        .map_err(|e| self_err(&path, e))?;
        tx.commit().map_err(|e| self_err(&path, e))?;
        c.head = head;
        c.seq = seq;
        c.violations = violations;
        Ok(())
    }

    /// Appends `rows`, then the final `end` event, and marks the session complete, in one
    /// transaction: the last events of a run (its exec, for one) cost no commit of their own
    /// between the command's exit and nono's.
    pub fn end_session(
        &mut self,
        c: &mut Cursor,
        rows: &[Row],
        end: &End,
    ) -> Result<(), AuditError> {
        let mut all = Vec::with_capacity(rows.len() + 1);
        all.extend_from_slice(rows);
        all.push(end_row(end));
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self_err(&path, e))?;
        let (head, seq, violations) = insert_rows(&tx, c, &all).map_err(|e| self_err(&path, e))?;
        tx.execute(
            "UPDATE sessions SET head = ?2, event_count = ?3, violation_count = ?4,
                dropped_kernel = ?5, dropped_user = ?6, ended_ns = ?7, exit_code = ?8,
                complete = 1 WHERE sid = ?1",
            params![
                c.sid,
                &head[..],
                seq,
                violations,
                end.dropped_kernel as i64,
                end.dropped_user as i64,
                end.time_ns,
                end.exit_code,
            ],
        )
        .map_err(|e| self_err(&path, e))?;
        tx.commit().map_err(|e| self_err(&path, e))?;
        c.head = head;
        c.seq = seq;
        c.violations = violations;
        Ok(())
    }
}

fn self_err(path: &Path, source: rusqlite::Error) -> AuditError {
    AuditError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// The session's last event: how it ended, hashed like every other event.
pub fn end_row(end: &End) -> Row {
    let mut d = serde_json::Map::new();
    if let Some(code) = end.exit_code {
        d.insert("exit_code".into(), code.into());
    }
    d.insert("dropped_kernel".into(), end.dropped_kernel.into());
    d.insert("dropped_userspace".into(), end.dropped_user.into());
    Row {
        time_ns: end.time_ns,
        kind: "end".into(),
        op: "exit".into(),
        denied: false,
        pid: 0,
        process: String::new(),
        rule_id: None,
        rule_source: None,
        object: Vec::new(),
        detail: Some(serde_json::Value::Object(d).to_string()),
    }
}

fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    c: &Cursor,
    rows: &[Row],
) -> rusqlite::Result<(Hash, i64, i64)> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (sid, seq, time_ns, kind, op, denied, pid, process, rule_id,
            rule_source, object, detail, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let (mut head, mut seq, mut violations) = (c.head, c.seq, c.violations);
    for r in rows {
        seq += 1;
        head = chain::link(&head, seq, r);
        violations += r.denied as i64;
        stmt.execute(params![
            c.sid,
            seq,
            r.time_ns,
            r.kind,
            r.op,
            r.denied,
            r.pid,
            r.process,
            r.rule_id,
            r.rule_source,
            r.object,
            r.detail,
            &head[..],
        ])?;
    }
    Ok((head, seq, violations))
}

/// `PRAGMA journal_mode=WAL`, retried while another process holds the lock. On a store that is
/// not yet in WAL mode the switch upgrades a shared lock to an exclusive one, and SQLite returns
/// SQLITE_BUSY at once instead of calling the busy handler (waiting could deadlock): several
/// `nono run`s creating a new store together saw "database is locked". Retried for as long as
/// the busy timeout would have waited.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}
