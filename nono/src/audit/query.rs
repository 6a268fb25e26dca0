//! Reading the store: sessions, a session's events (streamed in sequence order, never loaded
//! whole), chain verification, and pruning.
//!
//! Privilege: none. Kernel assumptions: none (SQLite reads in WAL mode).

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};

use super::chain::{self, Hash, Header};
use super::event::Row;
use super::store::Store;
use super::time::{self, NS_PER_SEC};
use super::AuditError;

/// Sessions older than this are pruned: in the background by `nono run` (a few per run) and
/// by `nono audit prune` without `--older-than`.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;
pub const DEFAULT_RETENTION_NS: i64 = DEFAULT_RETENTION_DAYS * 86_400 * NS_PER_SEC;
/// How many expired sessions one `nono run` prunes, so a run never waits long for it.
pub const AUTO_PRUNE_LIMIT: usize = 16;

/// One session as stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub sid: i64,
    pub id: String,
    pub started_ns: i64,
    pub ended_ns: Option<i64>,
    pub uid: i64,
    pub user: String,
    /// The stored JSON text (hashed as such) and its parsed form.
    pub argv_json: String,
    pub argv: Vec<String>,
    pub command: String,
    pub cwd: Vec<u8>,
    pub profile: String,
    pub policy_digest: String,
    pub layers_json: String,
    pub nono_pid: i64,
    pub exit_code: Option<i64>,
    pub event_count: i64,
    pub violation_count: i64,
    pub dropped_kernel: i64,
    pub dropped_user: i64,
    pub head: Vec<u8>,
    pub complete: bool,
}

const SESSION_COLUMNS: &str = "sid, id, started_ns, ended_ns, uid, user, argv, command, cwd, \
    profile, policy_digest, layers, nono_pid, exit_code, event_count, violation_count, \
    dropped_kernel, dropped_user, head, complete";

fn session_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let argv_json: String = r.get(6)?;
    Ok(Session {
        sid: r.get(0)?,
        id: r.get(1)?,
        started_ns: r.get(2)?,
        ended_ns: r.get(3)?,
        uid: r.get(4)?,
        user: r.get(5)?,
        argv: serde_json::from_str(&argv_json).unwrap_or_default(),
        argv_json,
        command: r.get(7)?,
        cwd: r.get(8)?,
        profile: r.get(9)?,
        policy_digest: r.get(10)?,
        layers_json: r.get(11)?,
        nono_pid: r.get(12)?,
        exit_code: r.get(13)?,
        event_count: r.get(14)?,
        violation_count: r.get(15)?,
        dropped_kernel: r.get(16)?,
        dropped_user: r.get(17)?,
        head: r.get(18)?,
        complete: r.get(19)?,
    })
}

/// Text that may not be UTF-8, for JSON: the lossy string, plus the exact bytes in hex when
/// they are not valid UTF-8.
fn bytes_json(map: &mut serde_json::Map<String, Value>, key: &str, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => {
            map.insert(key.into(), json!(s));
        }
        Err(_) => {
            map.insert(key.into(), json!(String::from_utf8_lossy(b)));
            map.insert(format!("{key}_hex"), json!(hex::encode(b)));
        }
    }
}

impl Session {
    pub fn layers(&self) -> Value {
        serde_json::from_str(&self.layers_json).unwrap_or(Value::Null)
    }

    /// `complete`; `running` (the nono that records it is still alive); or `incomplete`
    /// (nono ended without finishing it: killed).
    pub fn status(&self) -> &'static str {
        if self.complete {
            "complete"
        } else if self.running() {
            "running"
        } else {
            "incomplete"
        }
    }

    /// The session is not complete and the nono process that began it is still alive.
    pub fn running(&self) -> bool {
        !self.complete && nono_alive(self.nono_pid, self.started_ns)
    }

    /// The session object of the JSON schema (README "Audit trail").
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("started_at".into(), json!(time::rfc3339(self.started_ns)));
        m.insert("ended_at".into(), json!(self.ended_ns.map(time::rfc3339)));
        m.insert("complete".into(), json!(self.complete));
        m.insert("running".into(), json!(self.running()));
        m.insert("user".into(), json!(self.user));
        m.insert("uid".into(), json!(self.uid));
        m.insert("argv".into(), json!(self.argv));
        bytes_json(&mut m, "cwd", &self.cwd);
        m.insert("profile".into(), json!(self.profile));
        m.insert("policy_digest".into(), json!(self.policy_digest));
        m.insert("layers".into(), self.layers());
        m.insert("nono_pid".into(), json!(self.nono_pid));
        m.insert("exit_code".into(), json!(self.exit_code));
        m.insert("events".into(), json!(self.event_count));
        m.insert("violations".into(), json!(self.violation_count));
        m.insert(
            "dropped".into(),
            json!({"kernel": self.dropped_kernel, "userspace": self.dropped_user}),
        );
        m.insert("head".into(), json!(hex::encode(&self.head)));
        Value::Object(m)
    }
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: i64,
    pub row: Row,
    pub hash: Vec<u8>,
}

impl Event {
    /// The event object of the JSON schema (README "Audit trail").
    pub fn to_json(&self) -> Value {
        let r = &self.row;
        let mut m = serde_json::Map::new();
        m.insert("seq".into(), json!(self.seq));
        m.insert("time".into(), json!(time::rfc3339(r.time_ns)));
        m.insert("time_ns".into(), json!(r.time_ns));
        m.insert("kind".into(), json!(r.kind));
        m.insert("op".into(), json!(r.op));
        m.insert("denied".into(), json!(r.denied));
        m.insert("pid".into(), json!(r.pid));
        m.insert("process".into(), json!(r.process));
        m.insert("rule_id".into(), json!(r.rule_id));
        m.insert("rule_source".into(), json!(r.rule_source));
        bytes_json(&mut m, "object", &r.object);
        m.insert("detail".into(), self.detail());
        m.insert("hash".into(), json!(hex::encode(&self.hash)));
        Value::Object(m)
    }

    pub fn detail(&self) -> Value {
        self.row
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| json!({}))
    }
}

const EVENT_COLUMNS: &str =
    "seq, time_ns, kind, op, denied, pid, process, rule_id, rule_source, object, detail, hash";

fn event_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: r.get(0)?,
        row: Row {
            time_ns: r.get(1)?,
            kind: r.get(2)?,
            op: r.get(3)?,
            denied: r.get(4)?,
            pid: r.get(5)?,
            process: r.get(6)?,
            rule_id: r.get(7)?,
            rule_source: r.get(8)?,
            object: r.get(9)?,
            detail: r.get(10)?,
        },
        hash: r.get(11)?,
    })
}

/// Which sessions `nono audit list` shows.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
    /// A substring of the (redacted) command line.
    pub command: Option<String>,
    pub profile: Option<String>,
    pub violations_only: bool,
}

/// Sessions matching `f`, newest first.
pub fn list(store: &Store, f: &Filter) -> Result<Vec<Session>, AuditError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE (?1 IS NULL OR started_ns >= ?1) AND (?2 IS NULL OR started_ns < ?2)
           AND (?3 IS NULL OR instr(command, ?3) > 0) AND (?4 IS NULL OR profile = ?4)
           AND (?5 = 0 OR violation_count > 0)
         ORDER BY started_ns DESC, sid DESC"
    );
    let run = || -> rusqlite::Result<Vec<Session>> {
        let mut stmt = store.conn().prepare(&sql)?;
        let rows = stmt.query_map(
            params![
                f.since_ns,
                f.until_ns,
                f.command,
                f.profile,
                f.violations_only
            ],
            session_from,
        )?;
        rows.collect()
    };
    run().map_err(|e| store.sql_err(e))
}

/// The session whose id is `prefix` or starts with it; an error names the candidates when
/// the prefix is ambiguous.
pub fn resolve(store: &Store, prefix: &str) -> Result<Session, AuditError> {
    let p = prefix.trim().to_ascii_lowercase();
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AuditError::Other(format!(
            "`{}`: a session id is hexadecimal (see `nono audit list`)",
            crate::cli::escape_for_terminal(prefix)
        )));
    }
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE substr(id, 1, ?2) = ?1 ORDER BY id LIMIT 6"
    );
    let found: Vec<Session> = (|| -> rusqlite::Result<Vec<Session>> {
        let mut stmt = store.conn().prepare(&sql)?;
        let rows = stmt.query_map(params![p, p.len() as i64], session_from)?;
        rows.collect()
    })()
    .map_err(|e| store.sql_err(e))?;
    match found.len() {
        0 => Err(AuditError::Other(format!(
            "no session {p} in {} (see `nono audit list`)",
            store.path().display()
        ))),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(AuditError::Other(format!(
            "session id prefix {p} is ambiguous: {}{}; give more digits",
            found
                .iter()
                .take(5)
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if found.len() > 5 { ", ..." } else { "" }
        ))),
    }
}

/// Which events of a session to stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    /// Events after this sequence number.
    pub after_seq: i64,
    pub limit: Option<i64>,
    pub denied_only: bool,
    pub since_ns: Option<i64>,
    pub until_ns: Option<i64>,
}

/// Calls `f` on each event of session `sid` in sequence order, reading them from SQLite as it
/// goes (a walk of the primary key: the first screen of a million-event session costs the
/// same as that of a small one). `f` returns `false` to stop (e.g. a closed pipe).
pub fn for_each_event(
    store: &Store,
    sid: i64,
    range: Range,
    mut f: impl FnMut(&Event) -> bool,
) -> Result<(), AuditError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE sid = ?1 AND seq > ?2
           AND (?3 = 0 OR denied = 1) AND (?4 IS NULL OR time_ns >= ?4)
           AND (?5 IS NULL OR time_ns < ?5)
         ORDER BY seq LIMIT ?6"
    );
    (|| -> rusqlite::Result<()> {
        let mut stmt = store.conn().prepare(&sql)?;
        let mut rows = stmt.query(params![
            sid,
            range.after_seq,
            range.denied_only,
            range.since_ns,
            range.until_ns,
            range.limit.unwrap_or(-1)
        ])?;
        while let Some(r) = rows.next()? {
            if !f(&event_from(r)?) {
                break;
            }
        }
        Ok(())
    })()
    .map_err(|e| store.sql_err(e))
}

/// The outcome of `nono audit verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events checked.
    pub events: i64,
    /// The recomputed head of the chain.
    pub head: Hash,
    /// Each inconsistency found, in order; empty when the chain holds.
    pub problems: Vec<String>,
    pub complete: bool,
}

/// Recomputes the session's chain from its stored columns and compares it with every stored
/// hash, the sequence numbers, and the session's recorded count and head.
pub fn verify(store: &Store, s: &Session) -> Result<Verification, AuditError> {
    let mut problems = Vec::new();
    let genesis = chain::genesis(&Header {
        id: &s.id,
        started_ns: s.started_ns,
        uid: s.uid,
        user: &s.user,
        argv: &s.argv_json,
        cwd: &s.cwd,
        profile: &s.profile,
        policy_digest: &s.policy_digest,
        layers: &s.layers_json,
    });
    if s.command != s.argv.join(" ") {
        problems.push("the session's command text does not match its argv".to_string());
    }
    let mut prev = genesis;
    let mut expected_seq = 1;
    let mut checked = 0;
    let mut last: Option<Event> = None;
    for_each_event(store, s.sid, Range::default(), |e| {
        if e.seq != expected_seq {
            if e.seq > expected_seq {
                problems.push(format!(
                    "event(s) {expected_seq}..{} are missing (dropped)",
                    e.seq - 1
                ));
            } else {
                problems.push(format!("event {} is out of sequence", e.seq));
            }
        }
        let h = chain::link(&prev, e.seq, &e.row);
        if h[..] != e.hash[..] {
            problems.push(format!(
                "event {}: its content or position does not match its hash (edited, moved, or an earlier event changed)",
                e.seq
            ));
        }
        // Go on along the stored chain, so one edit is reported once and not at every
        // later event.
        prev = e.hash.as_slice().try_into().unwrap_or(h);
        expected_seq = e.seq + 1;
        checked += 1;
        last = Some(e.clone());
        true
    })?;
    if checked != s.event_count || expected_seq - 1 != s.event_count {
        problems.push(format!(
            "the session records {} events, the store holds {checked} (last seq {})",
            s.event_count,
            expected_seq - 1
        ));
    }
    if prev[..] != s.head[..] {
        problems.push(
            "the chain's last hash differs from the session's recorded head (events dropped or appended)"
                .to_string(),
        );
    }
    let violations: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM events WHERE sid = ?1 AND denied = 1",
            [s.sid],
            |r| r.get(0),
        )
        .map_err(|e| store.sql_err(e))?;
    if violations != s.violation_count {
        problems.push(format!(
            "the session records {} violations, its events hold {violations}",
            s.violation_count
        ));
    }
    if s.complete {
        match &last {
            Some(e) if e.row.kind == "end" => {
                let d = e.detail();
                if d.get("exit_code").and_then(Value::as_i64) != s.exit_code
                    || d.get("dropped_kernel").and_then(Value::as_i64) != Some(s.dropped_kernel)
                    || d.get("dropped_userspace").and_then(Value::as_i64) != Some(s.dropped_user)
                {
                    problems.push(
                        "the session's exit status or drop counts differ from its end event"
                            .to_string(),
                    );
                }
            }
            _ => problems.push("the session is marked complete but has no end event".to_string()),
        }
    }
    Ok(Verification {
        events: checked,
        head: prev,
        problems,
        complete: s.complete,
    })
}

/// Whether process `pid` is alive and is the one that began a session at `started_ns`: it
/// exists (`kill(pid, 0)` succeeds, or fails with EPERM for another user's process) and it
/// started no later than the session did, so a pid reused since is not taken for it.
/// `/proc/PID/stat`'s start time counts clock ticks from boot (`btime` in `/proc/stat`, whole
/// seconds): a second of slack covers both roundings.
pub fn nono_alive(pid: i64, started_ns: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    let start_ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The fields after the command name, which may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split(' ').nth(19)?.parse::<i64>().ok()
        });
    // The boot time does not change: `audit list` asks for every incomplete session, read once.
    static BOOT_S: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    let boot_s = *BOOT_S.get_or_init(|| {
        std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
    });
    // SAFETY: sysconf has no preconditions.
    let hz = i64::from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as i32).max(1);
    match (start_ticks, boot_s) {
        (Some(ticks), Some(boot)) => {
            let started_process_ns = boot * 1_000_000_000 + ticks * (1_000_000_000 / hz);
            started_process_ns <= started_ns + 1_000_000_000
        }
        // No /proc to ask: the pid exists, which is all that is known.
        _ => true,
    }
}

/// Deletes sessions started before `cutoff_ns` (oldest first, at most `limit`, never
/// `keep_sid`, never a session whose nono is still running: its rows are being written),
/// each with its events in one transaction. Returns (sessions, events) deleted.
pub fn prune(
    store: &mut Store,
    cutoff_ns: i64,
    limit: Option<usize>,
    keep_sid: Option<i64>,
) -> Result<(u64, u64), AuditError> {
    let candidates: Vec<(i64, i64, i64, bool)> = (|| -> rusqlite::Result<Vec<_>> {
        let mut stmt = store.conn().prepare(
            "SELECT sid, nono_pid, started_ns, complete FROM sessions
             WHERE started_ns < ?1 AND sid IS NOT ?2 ORDER BY started_ns",
        )?;
        let rows = stmt.query_map(params![cutoff_ns, keep_sid], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        rows.collect()
    })()
    .map_err(|e| store.sql_err(e))?;
    let victims: Vec<i64> = candidates
        .into_iter()
        .filter(|(_, pid, started, complete)| *complete || !nono_alive(*pid, *started))
        .map(|(sid, ..)| sid)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let (mut sessions, mut events) = (0, 0);
    for sid in victims {
        let r = (|| -> rusqlite::Result<usize> {
            let tx = store
                .conn_mut()
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("DELETE FROM events WHERE sid = ?1", [sid])?;
            tx.execute("DELETE FROM sessions WHERE sid = ?1", [sid])?;
            tx.commit()?;
            Ok(n)
        })();
        let n = r.map_err(|e| store.sql_err(e))?;
        sessions += 1;
        events += n as u64;
    }
    Ok((sessions, events))
}

/// The session with this exact row id, if any (tests and benchmarks).
pub fn by_sid(store: &Store, sid: i64) -> Result<Option<Session>, AuditError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE sid = ?1");
    store
        .conn()
        .query_row(&sql, [sid], session_from)
        .optional()
        .map_err(|e| store.sql_err(e))
}
