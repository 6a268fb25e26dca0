//! `nono audit list|show|verify|export|prune`: reading the audit trail.
//!
//! Privilege: none; reads (and for `prune`, deletes from) the invoking user's
//! `$XDG_STATE_HOME/nono/audit.db`. Everything that came from a sandboxed process (file names,
//! argv, process names) is escaped before it reaches a terminal.

use std::io::{self, IsTerminal, Write};

use serde_json::{json, Value};

use crate::audit::query::{self, Event, Filter, Range, Session};
use crate::audit::store::Store;
use crate::audit::{time, AuditError};
use crate::cli::escape_bytes_for_terminal as esc_b;
use crate::exit::{CmdResult, Exit};

/// `nono audit verify`: the chain holds but the session never ended (nono is still running or
/// was killed), so events after the last committed batch may be missing.
pub const VERIFY_INCOMPLETE: i32 = 3;
/// `nono audit verify`: tampering or corruption detected.
pub const VERIFY_TAMPERED: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line (ECS-style field names), for log pipelines.
    Jsonl,
    /// The same objects as one JSON array.
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// One line per recorded session, newest first, with its violation count.
    #[command(after_help = "Examples:
  nono audit list
  nono audit list --since 2d --violations-only
  nono audit list --command npm --profile node-dev --json

Times: a duration ago (30m, 12h, 2d, 1w), a date (2026-11-30) or a UTC time
(2026-11-30T18:00:00Z).")]
    List {
        /// Only sessions started at or after this time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only sessions started before this time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only sessions whose (redacted) command line contains TEXT.
        #[arg(long, value_name = "TEXT")]
        command: Option<String>,
        /// Only sessions run with this profile.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Only sessions with at least one denied access.
        #[arg(long)]
        violations_only: bool,
        /// A JSON array of session objects (schema in README "Audit trail").
        #[arg(long)]
        json: bool,
    },
    /// The timeline of one session; violations are highlighted on a terminal.
    #[command(after_help = "Examples:
  nono audit show 3f2a9c
  nono audit show 3f2a9c --violations
  nono audit show 3f2a9c --after 5000 --limit 100
  nono audit show 3f2a9c --json | jq '.events[] | select(.denied)'

ID may be any unique prefix of a session id. Events are read from the store as they are
printed, so the first screen of a huge session appears at once.")]
    Show {
        /// Session id or a unique prefix of it.
        id: String,
        /// Only denied accesses.
        #[arg(long)]
        violations: bool,
        /// Start after this sequence number.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        after: i64,
        /// At most N events.
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
        /// The session and its events as JSON (schema in README "Audit trail").
        #[arg(long)]
        json: bool,
    },
    /// Check a session's hash chain: detects edited, dropped or reordered events.
    #[command(after_help = "Examples:
  nono audit verify 3f2a9c
  nono audit verify 3f2a9c --json

Exit codes: 0 the chain holds and the session is complete; 1 error (no such session,
unreadable store); 3 the chain holds but the session is incomplete (nono still running or
killed); 4 tampering or corruption detected. The chain catches edits that do not recompute
it; keep the printed head elsewhere to pin a session against a full rewrite.")]
    Verify {
        /// Session id or a unique prefix of it.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stream events in a SIEM-friendly shape (ECS-style field names).
    #[command(after_help = "Examples:
  nono audit export 3f2a9c
  nono audit export --since 1d --format jsonl >> /var/log/nono/events.jsonl
  nono audit export 3f2a9c --format json > session.json

Without ID, exports the events of every session in the time range.")]
    Export {
        /// Session id or a unique prefix; all sessions when omitted.
        id: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only events at or after this time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only events before this time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Delete sessions older than a duration (default: the 90-day retention).
    #[command(after_help = "Examples:
  nono audit prune
  nono audit prune --older-than 30d

Each `nono run` also prunes, in the background, up to 16 sessions older than the default
retention of 90 days.")]
    Prune {
        /// Delete sessions started longer ago than this (30d, 12h, 2w).
        #[arg(long, value_name = "DURATION", default_value = "90d")]
        older_than: String,
    },
    /// Benchmark ingestion, a 1,000,000-event burst and `show` (`cargo xtask bench audit`).
    #[command(hide = true)]
    Bench(crate::audit::bench::BenchArgs),
}

/// Text from the store (it may have come from inside the sandbox) made safe for a terminal.
fn esc(s: &str) -> String {
    esc_b(s.as_bytes())
}

fn fail(e: AuditError) -> Exit {
    Exit::failure(format!("nono audit: {e}"))
}

fn db_path() -> Result<std::path::PathBuf, Exit> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    crate::audit::default_db_path(&cwd).map_err(|e| Exit::failure(format!("nono audit: {e}")))
}

/// Opens the store, or says there is nothing recorded yet.
fn open() -> Result<Option<Store>, Exit> {
    let path = db_path()?;
    let store = Store::open_existing(&path).map_err(fail)?;
    if store.is_none() {
        eprintln!(
            "nono audit: no sessions recorded yet ({} does not exist)",
            path.display()
        );
    }
    Ok(store)
}

fn open_required() -> Result<Store, Exit> {
    open()?.ok_or_else(|| Exit::failure("nono audit: nothing to read"))
}

fn parse_time(t: &Option<String>, flag: &str) -> Result<Option<i64>, Exit> {
    t.as_deref()
        .map(|t| time::parse_time(t, time::now_ns()))
        .transpose()
        .map_err(|e| Exit::usage(format!("nono audit: {flag} {e}")))
}

/// Output that stops quietly when the reader goes away (`| head`).
struct Out {
    w: io::BufWriter<io::StdoutLock<'static>>,
    closed: bool,
}

impl Out {
    fn new() -> Out {
        Out {
            w: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            closed: false,
        }
    }
    fn line(&mut self, s: &str) -> bool {
        if !self.closed && writeln!(self.w, "{s}").is_err() {
            self.closed = true;
        }
        !self.closed
    }
    fn raw(&mut self, s: &str) -> bool {
        if !self.closed && self.w.write_all(s.as_bytes()).is_err() {
            self.closed = true;
        }
        !self.closed
    }
    fn flush(&mut self) {
        if !self.closed && self.w.flush().is_err() {
            self.closed = true;
        }
    }
}

pub fn main(cmd: AuditCommand) -> CmdResult {
    match cmd {
        AuditCommand::Bench(args) => crate::audit::bench::main(args),
        AuditCommand::List {
            since,
            until,
            command,
            profile,
            violations_only,
            json,
        } => {
            let filter = Filter {
                since_ns: parse_time(&since, "--since")?,
                until_ns: parse_time(&until, "--until")?,
                command,
                profile,
                violations_only,
            };
            let sessions = match open()? {
                Some(store) => query::list(&store, &filter).map_err(fail)?,
                None => Vec::new(),
            };
            let mut out = Out::new();
            if json {
                let all: Vec<Value> = sessions.iter().map(Session::to_json).collect();
                out.line(&serde_json::to_string_pretty(&all).expect("json"));
            } else if sessions.is_empty() {
                eprintln!("nono audit: no matching sessions");
            } else {
                out.line(&format!(
                    "{:<12} {:<19} {:<10} {:>4} {:>9} {:>10}  {:<12} COMMAND",
                    "ID", "STARTED (UTC)", "STATUS", "EXIT", "EVENTS", "VIOLATIONS", "PROFILE"
                ));
                for s in &sessions {
                    out.line(&list_line(s));
                }
            }
            out.flush();
            Ok(0)
        }
        AuditCommand::Show {
            id,
            violations,
            after,
            limit,
            json,
        } => {
            let store = open_required()?;
            let s = query::resolve(&store, &id).map_err(fail)?;
            let range = Range {
                after_seq: after,
                limit,
                denied_only: violations,
                ..Range::default()
            };
            show(&store, &s, range, json)
        }
        AuditCommand::Verify { id, json } => {
            let store = open_required()?;
            let s = query::resolve(&store, &id).map_err(fail)?;
            let v = query::verify(&store, &s).map_err(fail)?;
            let code = if !v.problems.is_empty() {
                VERIFY_TAMPERED
            } else if !v.complete {
                VERIFY_INCOMPLETE
            } else {
                0
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "id": s.id,
                        "intact": v.problems.is_empty(),
                        "complete": v.complete,
                        "events": v.events,
                        "head": hex::encode(v.head),
                        "problems": v.problems,
                    }))
                    .expect("json")
                );
            } else if v.problems.is_empty() {
                println!(
                    "session {}: chain intact, {} events, head {}{}",
                    s.id,
                    v.events,
                    hex::encode(v.head),
                    if v.complete {
                        String::new()
                    } else if s.running() {
                        format!(
                            "\n  incomplete: nono (pid {}) is still recording it",
                            s.nono_pid
                        )
                    } else {
                        "\n  incomplete: nono ended without finishing it (killed); events \
                         after the last committed batch may be missing"
                            .to_string()
                    }
                );
            } else {
                println!(
                    "session {}: TAMPERED OR CORRUPT ({} problem(s)):",
                    s.id,
                    v.problems.len()
                );
                for p in &v.problems {
                    println!("  - {p}");
                }
            }
            Ok(code)
        }
        AuditCommand::Export {
            id,
            format,
            since,
            until,
        } => {
            let since_ns = parse_time(&since, "--since")?;
            let until_ns = parse_time(&until, "--until")?;
            let Some(store) = open()? else {
                if format == ExportFormat::Json {
                    println!("[]");
                }
                return Ok(0);
            };
            let sessions = match id {
                Some(id) => vec![query::resolve(&store, &id).map_err(fail)?],
                None => {
                    // Sessions that may hold events in the range: started before its end.
                    let mut all = query::list(
                        &store,
                        &Filter {
                            until_ns,
                            ..Filter::default()
                        },
                    )
                    .map_err(fail)?;
                    all.retain(|s| match (since_ns, s.ended_ns) {
                        (Some(since), Some(end)) => end >= since,
                        _ => true,
                    });
                    all.reverse(); // oldest first, like a log
                    all
                }
            };
            export(&store, &sessions, format, since_ns, until_ns)
        }
        AuditCommand::Prune { older_than } => {
            let age = time::parse_duration(&older_than)
                .map_err(|e| Exit::usage(format!("nono audit prune: --older-than {e}")))?;
            let Some(mut store) = open()? else {
                return Ok(0);
            };
            let (sessions, events) =
                query::prune(&mut store, time::now_ns() - age, None, None).map_err(fail)?;
            println!("pruned {sessions} session(s), {events} event(s) older than {older_than}");
            Ok(0)
        }
    }
}

fn list_line(s: &Session) -> String {
    let exit = match (s.complete, s.exit_code) {
        (true, Some(c)) => c.to_string(),
        _ => "-".to_string(),
    };
    format!(
        "{:<12} {:<19} {:<10} {:>4} {:>9} {:>10}  {:<12} {}",
        &s.id[..12.min(s.id.len())],
        time::short(s.started_ns),
        s.status(),
        exit,
        s.event_count,
        s.violation_count,
        esc(&s.profile),
        esc(&s.command)
    )
}

/// Red and bold on a terminal that accepts colour (NO_COLOR unset), else plain.
struct Style {
    colour: bool,
}

impl Style {
    fn verdict(&self, denied: bool) -> String {
        match (denied, self.colour) {
            (true, true) => "\x1b[1;31mDENY \x1b[0m".to_string(),
            (true, false) => "DENY ".to_string(),
            (false, _) => "allow".to_string(),
        }
    }
}

fn show(store: &Store, s: &Session, range: Range, json: bool) -> CmdResult {
    let mut out = Out::new();
    if json {
        let head = json!({"schema": "nono.audit.session/1", "session": s.to_json()}).to_string();
        // Stream: the document is `{..., "events": [e1,\ne2, ...]}`, written as read.
        out.raw(&head[..head.len() - 1]);
        out.raw(",\"events\":[\n");
        let mut first = true;
        query::for_each_event(store, s.sid, range, |e| {
            let sep = if first { "" } else { ",\n" };
            first = false;
            out.raw(sep) && out.raw(&e.to_json().to_string())
        })
        .map_err(fail)?;
        out.raw("\n]}\n");
        out.flush();
        return Ok(0);
    }
    let style = Style {
        colour: io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let ended = match (s.complete, s.ended_ns, s.exit_code) {
        (true, Some(t), Some(c)) => format!("ended {} UTC, exit {c}", time::short(t)),
        (true, Some(t), None) => format!("ended {} UTC, the command did not start", time::short(t)),
        _ if s.running() => format!("RUNNING: nono (pid {}) is still recording it", s.nono_pid),
        _ => "INCOMPLETE: nono ended without finishing it (killed)".into(),
    };
    let layers = s
        .layers()
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let name = l.get("name").and_then(Value::as_str).unwrap_or("?");
                    let features: Vec<&str> = l
                        .get("features")
                        .and_then(Value::as_array)
                        .map(|f| f.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if features.is_empty() {
                        esc(name)
                    } else {
                        format!("{} ({})", esc(name), esc(&features.join(", ")))
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let header = [
        format!("session {}", s.id),
        format!("  started  {} UTC; {ended}", time::short(s.started_ns)),
        format!(
            "  user     {} (uid {}), nono pid {}",
            esc(&s.user),
            s.uid,
            s.nono_pid
        ),
        format!("  command  {}", esc(&s.command)),
        format!("  cwd      {}", esc_b(&s.cwd)),
        format!(
            "  profile  {} (policy {})",
            esc(&s.profile),
            esc(&s.policy_digest)
        ),
        format!("  layers   {layers}"),
        format!(
            "  events   {}, violations {}, dropped {} (kernel {}, userspace {})",
            s.event_count,
            s.violation_count,
            s.dropped_kernel + s.dropped_user,
            s.dropped_kernel,
            s.dropped_user
        ),
        String::new(),
    ];
    for l in &header {
        out.line(l);
    }
    query::for_each_event(store, s.sid, range, |e| out.line(&event_line(e, &style)))
        .map_err(fail)?;
    out.flush();
    Ok(0)
}

fn event_line(e: &Event, style: &Style) -> String {
    let r = &e.row;
    let t = time::rfc3339(r.time_ns);
    let d = e.detail();
    let object = match r.kind.as_str() {
        "file" if r.object.is_empty() => match (d.get("dev"), d.get("ino")) {
            (Some(dev), Some(ino)) => {
                format!("[inode {}/{}]", esc(dev.as_str().unwrap_or("?")), ino)
            }
            _ => "[unknown path]".into(),
        },
        _ => esc_b(&r.object),
    };
    let extra = match r.kind.as_str() {
        "exec" => {
            let argv: Vec<String> = d
                .get("argv")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(esc).collect())
                .unwrap_or_default();
            let mut x = format!(" argv: {}", argv.join(" "));
            if let Some(err) = d.get("error").and_then(Value::as_str) {
                x.push_str(&format!(" ({})", esc(err)));
            }
            x
        }
        "net" => {
            let mut x = d
                .get("protocol")
                .and_then(Value::as_str)
                .map(|p| format!(" {}", esc(p)))
                .unwrap_or_default();
            // The name, unless the object already is the name (a refused request).
            if let (Some(n), true) = (
                d.get("name").and_then(Value::as_str),
                d.get("addr").is_some(),
            ) {
                x.push_str(&format!(" name {}", esc(n)));
            }
            x
        }
        "end" => format!(
            " exit {}, dropped kernel {} userspace {}",
            d.get("exit_code")
                .map_or("-".to_string(), |c| c.to_string()),
            d.get("dropped_kernel").unwrap_or(&json!(0)),
            d.get("dropped_userspace").unwrap_or(&json!(0))
        ),
        "landlock" => format!(
            " {}",
            esc(d.get("record").and_then(Value::as_str).unwrap_or(""))
        ),
        "rollback" => {
            let n = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
            format!(
                " {} created, {} modified, {} deleted, {} renamed, {} mode changed",
                n("created"),
                n("modified"),
                n("deleted"),
                n("renamed"),
                n("mode_changed")
            )
        }
        _ => String::new(),
    };
    let rule = match (r.rule_id, &r.rule_source) {
        (Some(id), Some(src)) => format!(" rule {id} ({})", esc(src)),
        (Some(id), None) => format!(" rule {id}"),
        _ => String::new(),
    };
    let who = if r.pid != 0 {
        format!(" pid {} {}", r.pid, esc(&r.process))
    } else {
        String::new()
    };
    format!(
        "{:>7} {} {} {:<8} {:<7} {object}{extra}{rule}{who}",
        e.seq,
        &t[11..26],
        style.verdict(r.denied),
        r.kind,
        esc(&r.op)
    )
}

/// An event in ECS-style field names (Elastic Common Schema 8 where a field exists, `nono.*`
/// for the rest).
fn ecs(s: &Session, e: &Event) -> Value {
    let r = &e.row;
    let d = e.detail();
    let (category, kind_type) = match r.kind.as_str() {
        "file" => ("file", "access"),
        "net" => ("network", "connection"),
        "exec" => ("process", "start"),
        "end" => ("process", "end"),
        "rollback" => ("file", "change"),
        _ => ("intrusion_detection", "denied"),
    };
    let mut v = json!({
        "@timestamp": time::rfc3339(r.time_ns),
        "event": {
            "kind": "event",
            "category": [category],
            "type": [if r.denied { "denied" } else { kind_type }],
            "action": r.op,
            "outcome": if r.denied { "failure" } else { "success" },
            "sequence": e.seq,
            "dataset": "nono.audit",
        },
        "user": {"id": s.uid.to_string(), "name": s.user},
        "nono": {
            "session": {"id": s.id, "profile": s.profile, "policy_digest": s.policy_digest},
            "kind": r.kind,
            "hash": hex::encode(&e.hash),
            "detail": d,
        },
    });
    let m = v.as_object_mut().expect("object");
    if r.pid != 0 {
        m.insert("process".into(), json!({"pid": r.pid, "name": r.process}));
    }
    if let Some(id) = r.rule_id {
        m.insert(
            "rule".into(),
            json!({"id": id.to_string(), "ruleset": r.rule_source}),
        );
    }
    let object = String::from_utf8_lossy(&r.object).into_owned();
    match r.kind.as_str() {
        "file" if !r.object.is_empty() => {
            m.insert("file".into(), json!({"path": object}));
        }
        "net" => {
            m.insert(
                "destination".into(),
                json!({"ip": d.get("addr"), "port": d.get("port"), "domain": d.get("name")}),
            );
            m.insert("network".into(), json!({"transport": d.get("protocol")}));
        }
        "exec" => {
            let mut p = json!({"executable": object, "args": d.get("argv")});
            if r.pid != 0 {
                p["pid"] = json!(r.pid);
            }
            m.insert("process".into(), p);
        }
        "end" => {
            m.insert("process".into(), json!({"exit_code": d.get("exit_code")}));
        }
        _ => {}
    }
    v
}

fn export(
    store: &Store,
    sessions: &[Session],
    format: ExportFormat,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
) -> CmdResult {
    let mut out = Out::new();
    let mut first = true;
    if format == ExportFormat::Json {
        out.raw("[\n");
    }
    for s in sessions {
        let range = Range {
            since_ns,
            until_ns,
            ..Range::default()
        };
        query::for_each_event(store, s.sid, range, |e| {
            let text = ecs(s, e).to_string();
            match format {
                ExportFormat::Jsonl => out.line(&text),
                ExportFormat::Json => {
                    let sep = if first { "" } else { ",\n" };
                    first = false;
                    out.raw(sep) && out.raw(&text)
                }
            }
        })
        .map_err(fail)?;
        if out.closed {
            break;
        }
    }
    if format == ExportFormat::Json {
        out.raw("\n]\n");
    }
    out.flush();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{AuditEvent, What};

    /// A kernel exec denial as stored, with a hostile binary name and arguments.
    fn denied_exec() -> Event {
        let row = AuditEvent {
            time_ns: 1_700_000_000_000_000_000,
            pid: 42,
            process: "sh".into(),
            denied: true,
            rule_id: Some(3),
            rule_source: Some("p.nono:6:11".into()),
            what: What::Exec {
                binary: b"/tmp/\x1b[2Jevil\nname\xff".to_vec(),
                argv: vec!["evil".into(), "\x1b]0;title\x07".into(), "two words".into()],
                errno: None,
                argv_truncated: false,
                binary_truncated: false,
                hook: Some("bprm_check_security".into()),
                inode: Some(((8 << 20) | 1, 77)),
            },
        }
        .into_row();
        Event {
            seq: 2,
            row,
            hash: vec![0; 32],
        }
    }

    #[test]
    fn a_denied_exec_line_is_escaped_and_names_its_rule() {
        let line = event_line(&denied_exec(), &Style { colour: false });
        for raw in ['\x1b', '\n', '\x07'] {
            assert!(!line.contains(raw), "{line:?}");
        }
        assert!(line.contains("DENY "), "{line}");
        assert!(line.contains(" exec "), "{line}");
        assert!(line.contains(" rule 3 (p.nono:6:11)"), "{line}");
        assert!(line.contains("two words"), "{line}");
        assert!(line.contains(" pid 42 sh"), "{line}");
    }

    #[test]
    fn a_denied_exec_exports_as_a_denied_process_start() {
        let s = Session {
            sid: 1,
            id: "abc".into(),
            started_ns: 0,
            ended_ns: None,
            uid: 0,
            user: "root".into(),
            argv_json: "[]".into(),
            argv: Vec::new(),
            command: String::new(),
            cwd: Vec::new(),
            profile: "p".into(),
            policy_digest: String::new(),
            layers_json: "[]".into(),
            nono_pid: 1,
            exit_code: None,
            event_count: 1,
            violation_count: 1,
            dropped_kernel: 0,
            dropped_user: 0,
            head: Vec::new(),
            complete: true,
        };
        let v = ecs(&s, &denied_exec());
        assert_eq!(v["event"]["category"], json!(["process"]));
        assert_eq!(v["event"]["type"], json!(["denied"]));
        assert_eq!(v["event"]["outcome"], "failure");
        assert_eq!(v["process"]["pid"], 42);
        assert_eq!(
            v["process"]["args"],
            json!(["evil", "\x1b]0;title\x07", "two words"])
        );
        assert_eq!(
            v["process"]["executable"],
            String::from_utf8_lossy(b"/tmp/\x1b[2Jevil\nname\xff").as_ref()
        );
        assert_eq!(v["rule"]["id"], "3");
        assert_eq!(v["nono"]["detail"]["hook"], "bprm_check_security");
        assert_eq!(v["nono"]["detail"]["ino"], 77);
    }
}
