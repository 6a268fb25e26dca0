//! The audit trail end to end: real `nono run`s on this kernel (Landlock only), read back
//! with `nono audit`, tampered with through raw SQL, and attacked from inside the sandbox.

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use nono_e2e::{
    as_root_and_nobody, run, spawn, wait_with_timeout, PtyChild, User, Watch, World, PYTHON,
};
use serde_json::{json, Value};

as_root_and_nobody!(
    landlock_only_run_records_session_exec_and_exit,
    sandbox_cannot_read_or_write_the_store,
    best_effort_never_opens_the_store,
    hostile_names_are_escaped_in_show,
    tampering_is_detected_by_verify,
    concurrent_runs_share_the_store,
    kill_9_leaves_a_consistent_store_and_an_incomplete_session,
    the_command_starts_only_after_its_session_row,
    an_unusable_store_never_holds_the_command_back,
    rollback_change_summary_is_recorded_in_the_session,
);

/// The tests of this file run one at a time: one of them turns kernel audit on, and Landlock
/// then logs denials that the others would see in their sessions.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn db(w: &World) -> PathBuf {
    w.home.join(".local/state/nono/audit.db")
}

/// `nono audit ARGS` as the test's user; asserts it exits `code`.
fn audit(w: &World, args: &[&str], code: i32) -> String {
    let mut a = vec!["audit"];
    a.extend_from_slice(args);
    let out = run(&mut w.nono(&a));
    assert_eq!(out.code(), Some(code), "nono {a:?}\n{}", out.describe());
    out.stdout
}

fn sessions(w: &World) -> Vec<Value> {
    serde_json::from_str::<Value>(&audit(w, &["list", "--json"], 0))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn show_json(w: &World, id: &str) -> Value {
    serde_json::from_str(&audit(w, &["show", id, "--json"], 0)).expect("show --json is JSON")
}

fn landlock_only_run_records_session_exec_and_exit(user: User) {
    let _serial = serial();
    let w = World::new(user);
    let out = run(&mut w.sandbox(
        &[] as &[&str],
        &["/bin/sh", "-c", "exit 7", "sh", "--token", "s3cret"],
    ));
    assert_eq!(out.code(), Some(7), "{}", out.describe());
    let list = sessions(&w);
    assert_eq!(list.len(), 1, "{list:?}");
    let s = &list[0];
    assert_eq!(s["complete"], true);
    assert_eq!(s["exit_code"], 7);
    assert_eq!(s["uid"], user.uid());
    assert_eq!(s["profile"], "default");
    assert_eq!(s["cwd"], w.work.display().to_string());
    assert_eq!(
        s["argv"],
        json!(["/bin/sh", "-c", "exit 7", "sh", "--token", "[REDACTED]"])
    );
    assert!(s["policy_digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(s["layers"][0]["name"], "landlock");
    // The digest is the one `nono run --dry-run` reports for the same run.
    let dry = run(&mut w.sandbox(&["--dry-run"], &["/bin/true"]));
    assert!(
        dry.stdout.contains(s["policy_digest"].as_str().unwrap()),
        "{}",
        dry.describe()
    );
    let id = s["id"].as_str().unwrap();
    let doc = show_json(&w, &id[..10]);
    assert_eq!(doc["schema"], "nono.audit.session/1");
    let events = doc["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["kind"], "exec");
    assert_eq!(events[0]["object"], "/bin/sh");
    assert_eq!(events[0]["denied"], false);
    assert_eq!(events[1]["kind"], "end");
    assert_eq!(events[1]["detail"]["exit_code"], 7);
    assert!(!audit(&w, &["show", id], 0).contains("s3cret"));
    audit(&w, &["verify", id], 0);

    // A denied exec (a binary outside every exec grant) is recorded as a violation.
    let tool = w.outside.join("tool");
    w.write(&tool, std::fs::read("/bin/true").unwrap());
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run(&mut w.sandbox(&[] as &[&str], &[&tool]));
    assert_eq!(out.code(), Some(126), "{}", out.describe());
    let list = sessions(&w);
    assert_eq!(list[0]["violations"], 1, "{list:?}");
    assert_eq!(list[0]["exit_code"], 126);
    let only =
        serde_json::from_str::<Value>(&audit(&w, &["list", "--violations-only", "--json"], 0))
            .unwrap();
    assert_eq!(only.as_array().unwrap().len(), 1);
    let doc = show_json(&w, list[0]["id"].as_str().unwrap());
    assert_eq!(doc["events"][0]["denied"], true);
    assert_eq!(doc["events"][0]["detail"]["errno"], libc::EACCES);
    let ecs = audit(&w, &["export", "--format", "jsonl"], 0);
    let lines: Vec<Value> = ecs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().any(|l| l["event"]["outcome"] == "failure"
        && l["process"]["executable"] == tool.display().to_string()));
    // ECS field names a SIEM maps without configuration.
    for l in &lines {
        assert!(
            l["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{l}"
        );
        assert_eq!(l["event"]["dataset"], "nono.audit", "{l}");
        assert!(l["event"]["category"].is_array(), "{l}");
        assert!(l["nono"]["session"]["id"].is_string(), "{l}");
    }
    // The time window: everything is from the last hour, nothing from before it or the future.
    let count = |args: &[&str]| audit(&w, args, 0).lines().count();
    assert_eq!(count(&["export", "--since", "1h"]), 4);
    assert_eq!(count(&["export", "--until", "1h"]), 0);
    assert_eq!(count(&["export", "--since", "2099-01-01"]), 0);
    // One session by a prefix of its id (the unit tests cover an ambiguous prefix: random ids
    // need not share one here); a malformed id is a clear error.
    let first = sessions(&w)[1]["id"].as_str().unwrap().to_string();
    assert_eq!(count(&["export", &first[..12]]), 2);
    let out = run(&mut w.nono(["audit", "show", "not-an-id"]));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("hexadecimal"), "{}", out.describe());
}

/// The store is under the implicit deny of `$XDG_STATE_HOME/nono`: even with a read grant on
/// all of `$HOME`, the command can neither read, write, rename nor delete it, nor find an open
/// descriptor to it.
fn sandbox_cannot_read_or_write_the_store(user: User) {
    let _serial = serial();
    let w = World::new(user);
    let first = run(&mut w.sandbox(&[] as &[&str], &["/bin/true"]));
    assert_eq!(first.code(), Some(0), "{}", first.describe());
    let db = db(&w);
    assert!(db.is_file());
    let before = sessions(&w);
    let canary = w.write(&db.with_file_name("canary"), "nono state\n");
    let watch = Watch::new(std::slice::from_ref(&canary));
    let home = w.home.display().to_string();
    let out = w.probe_with(
        &["--read", &home],
        &json!({"db": db, "dir": db.parent().unwrap(), "canary": canary}),
        r#"
attempt("read_db", lambda: read(P["db"]))
attempt("append_db", lambda: append(P["db"]))
attempt("open_wal", lambda: os.open(P["db"] + "-wal", os.O_RDWR | os.O_CREAT, 0o600))
attempt("unlink_db", lambda: os.unlink(P["db"]))
attempt("rename_db", lambda: os.rename(P["db"], P["home"] + "/stolen.db"))
attempt("list_dir", lambda: os.listdir(P["dir"]))
attempt("read_canary", lambda: read(P["canary"]))
fds = []
for f in os.listdir("/proc/self/fd"):
    try:
        fds.append(os.readlink("/proc/self/fd/" + f))
    except OSError:
        pass  # the directory's own descriptor, closed by now
show("db_fds", sum(1 for f in fds if "audit.db" in f))
"#,
    );
    out.expect("read_db", "EACCES")
        .expect("append_db", "EACCES")
        .expect("open_wal", "EACCES")
        .expect_one_of("unlink_db", &["EACCES", "EROFS"])
        .expect_one_of("rename_db", &["EACCES", "EXDEV"])
        .expect("list_dir", "EACCES")
        .expect("read_canary", "EACCES")
        .expect("db_fds", "0");
    watch.assert_unchanged();
    // The earlier session is intact, and the probe's own run was recorded beside it.
    let after = sessions(&w);
    assert_eq!(after.len(), 2);
    assert_eq!(after[1], before[0]);
    audit(&w, &["verify", before[0]["id"].as_str().unwrap()], 0);
}

/// A write grant on `$HOME` covers `~/.local/state/nono`, and Landlock cannot carve the implicit
/// deny out of it. `--best-effort` runs without profile rules this kernel can't enforce, but
/// not without that one: the old binary ran the command with the audit database writable.
fn best_effort_never_opens_the_store(user: User) {
    let _serial = serial();
    let w = World::new(user);
    let first = run(&mut w.sandbox(&[] as &[&str], &["/bin/true"]));
    assert_eq!(first.code(), Some(0), "{}", first.describe());
    let db = db(&w);
    let canary = w.write(&db.with_file_name("canary"), "nono state\n");
    let watch = Watch::new(&[&db, &canary]);
    let home = w.home.display().to_string();
    let ran = w.work.join("ran");
    let out = w.probe_with(
        &["--write", &home, "--best-effort"],
        &json!({"db": db, "canary": canary, "ran": ran}),
        r#"
open(P["ran"], "w").close()
attempt("append_db", lambda: append(P["db"]))
attempt("append_canary", lambda: append(P["canary"]))
"#,
    );
    assert_eq!(out.code(), Some(125), "{}", out.describe());
    assert!(
        out.stderr.contains("even with --best-effort") && out.stderr.contains("builtin:nono-state"),
        "{}",
        out.describe()
    );
    assert!(!ran.exists(), "the command ran");
    watch.assert_unchanged();
    // --dry-run says so before anything runs.
    let dry = run(&mut w.sandbox(&["--write", &home, "--dry-run"], &["/bin/true"]));
    assert!(
        dry.stdout.contains("even with --best-effort"),
        "{}",
        dry.describe()
    );
}

/// A binary whose name holds a newline, ANSI escapes, a bidi override and invalid UTF-8:
/// `show` prints it escaped on one line, `--json` keeps the exact bytes in `object_hex`.
fn hostile_names_are_escaped_in_show(user: User) {
    let _serial = serial();
    let w = World::new(user);
    let name: &[u8] = b"evil\n\x1b[31mred\x1b]0;title\x07\xe2\x80\xae\xff.sh";
    let path = w.outside.join(std::ffi::OsStr::from_bytes(name));
    w.write(&path, "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Outside every exec grant: the exec is denied, and that is what gets recorded.
    let out = run(&mut w.sandbox(&[] as &[&str], &[&path]));
    assert_eq!(out.code(), Some(126), "{}", out.describe());
    let id = sessions(&w)[0]["id"].as_str().unwrap().to_string();
    let text = audit(&w, &["show", &id], 0);
    assert!(!text.contains('\x1b'), "raw escape in:\n{text}");
    assert!(!text.contains('\x07'), "raw BEL in:\n{text}");
    assert!(!text.contains('\u{202e}'), "raw bidi override in:\n{text}");
    let exec_line = text
        .lines()
        .find(|l| l.contains(" exec "))
        .unwrap_or_else(|| panic!("no exec line in:\n{text}"));
    assert!(
        exec_line.contains(r"evil\n\u{1b}[31mred\u{1b}]0;title\u{7}\u{202e}\xff.sh"),
        "{exec_line}"
    );
    assert!(exec_line.contains("DENY"), "{exec_line}");
    // On a terminal the violation is highlighted, and the name is still escaped.
    let mut pty = PtyChild::spawn(w.nono(["audit", "show", &id]));
    pty.expect("\x1b[1;31mDENY \x1b[0m", Duration::from_secs(30));
    let (status, screen) = pty.wait(Duration::from_secs(30));
    assert!(status.success(), "{screen}");
    assert!(screen.contains(r"evil\n\u{1b}[31mred"), "{screen}");
    assert!(
        !screen.contains("\x1b[31mred"),
        "a raw escape from the file name: {screen}"
    );
    let doc = show_json(&w, &id);
    let hex_name = doc["events"][0]["object_hex"].as_str().unwrap();
    assert!(hex_name.ends_with(&hex_encode(name)), "{hex_name}");
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn tampering_is_detected_by_verify(user: User) {
    let _serial = serial();
    let w = World::new(user);
    for code in [0, 1] {
        let out = run(&mut w.sandbox(&[] as &[&str], &["/bin/sh", "-c", &format!("exit {code}")]));
        assert_eq!(out.code(), Some(code), "{}", out.describe());
    }
    let list = sessions(&w);
    let (a, b) = (
        list[0]["id"].as_str().unwrap(),
        list[1]["id"].as_str().unwrap(),
    );
    audit(&w, &["verify", a], 0);
    let c = rusqlite::Connection::open(db(&w)).unwrap();
    // Make a failed run look successful, consistently in the session row and its end event.
    c.execute(
        "UPDATE events SET detail = replace(detail, '\"exit_code\":1', '\"exit_code\":0')
         WHERE kind = 'end' AND sid = (SELECT sid FROM sessions WHERE id = ?1)",
        [a],
    )
    .unwrap();
    c.execute("UPDATE sessions SET exit_code = 0 WHERE id = ?1", [a])
        .unwrap();
    let out = audit(&w, &["verify", a, "--json"], 4);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["intact"], false, "{v}");
    assert!(
        v["problems"][0].as_str().unwrap().starts_with("event 2:"),
        "{v}"
    );
    // Dropping the exec event of the other session.
    c.execute(
        "DELETE FROM events WHERE seq = 1 AND sid = (SELECT sid FROM sessions WHERE id = ?1)",
        [b],
    )
    .unwrap();
    let text = audit(&w, &["verify", b], 4);
    assert!(text.contains("event(s) 1..1 are missing"), "{text}");
}

fn concurrent_runs_share_the_store(user: User) {
    let _serial = serial();
    let w = World::new(user);
    let children: Vec<_> = (0..6)
        .map(|i| {
            let mut cmd = w.sandbox(&[] as &[&str], &["/bin/sh", "-c", &format!("exit {i}")]);
            spawn(&mut cmd)
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = wait_with_timeout(c, Duration::from_secs(60));
        assert_eq!(out.code(), Some(i as i32), "{}", out.describe());
        assert!(!out.stderr.contains("audit"), "{}", out.describe());
    }
    let list = sessions(&w);
    assert_eq!(list.len(), 6);
    let mut codes: Vec<i64> = list
        .iter()
        .map(|s| s["exit_code"].as_i64().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
    for s in &list {
        assert_eq!(s["complete"], true);
        audit(&w, &["verify", s["id"].as_str().unwrap()], 0);
    }
}

fn kill_9_leaves_a_consistent_store_and_an_incomplete_session(user: User) {
    let _serial = serial();
    let w = World::new(user);
    let mut cmd = w.sandbox(
        &[] as &[&str],
        &[
            PYTHON,
            "-c",
            "import time; print('ready', flush=True); time.sleep(60)",
        ],
    );
    let mut child = spawn(&mut cmd);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // While nono runs, its session is `running`, and no prune deletes it, however old.
    let live = sessions(&w);
    assert_eq!(live[0]["running"], true, "{live:#?}");
    assert!(audit(&w, &["list"], 0).contains("running"));
    let live_id = live[0]["id"].as_str().unwrap().to_string();
    assert!(audit(&w, &["show", &live_id], 0).contains("RUNNING"));
    assert!(audit(&w, &["prune", "--older-than", "0s"], 0).contains("pruned 0 session(s)"));
    assert_eq!(sessions(&w).len(), 1);
    // SAFETY: kill(2) on the nono process this test spawned (setpriv execs into nono).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let _ = child.wait();
    let list = sessions(&w);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["complete"], false);
    assert_eq!(list[0]["running"], false);
    assert_eq!(list[0]["exit_code"], Value::Null);
    let id = list[0]["id"].as_str().unwrap();
    assert!(audit(&w, &["list"], 0).contains("incomplete"));
    assert!(audit(&w, &["show", id], 0).contains("INCOMPLETE"));
    // The chain of what was committed holds; verify says incomplete (3), not tampered (4).
    audit(&w, &["verify", id], 3);
    let c = rusqlite::Connection::open(db(&w)).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // The store is still usable: the next run is recorded after it.
    let out = run(&mut w.sandbox(&[] as &[&str], &["/bin/true"]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(sessions(&w).len(), 2);
}

/// The command is exec'd only once its session row is committed, so no `kill -9` of nono can
/// leave a command that ran without a session: while another process holds the store's write
/// lock, the command waits (its marker does not appear and no row exists), and it runs, after
/// its row, once the lock goes.
fn the_command_starts_only_after_its_session_row(user: User) {
    let _serial = serial();
    let w = World::new(user);
    // The first run creates the store.
    let out = run(&mut w.sandbox(&[] as &[&str], &["/bin/true"]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    // The lock is taken as the test's user, so no file of the store changes owner.
    let mut locker = user.command(PYTHON);
    locker
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n\
             c.execute('ROLLBACK')",
        ])
        .arg(db(&w))
        .stdin(std::process::Stdio::piped());
    let mut locker = spawn(&mut locker);
    let mut lines = BufReader::new(locker.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "locked");
    let marker = w.work.join("ran");
    let nono = spawn(&mut w.sandbox(
        &[] as &[&str],
        &["/bin/sh", "-c", &format!("echo > '{}'", marker.display())],
    ));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists(), "the command ran before its session row");
    // Unlocking the store lets the row, and then the command, through.
    drop(locker.stdin.take());
    assert!(locker.wait().unwrap().success());
    let out = wait_with_timeout(nono, Duration::from_secs(30));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(marker.exists());
    let list = sessions(&w);
    assert_eq!(list.len(), 2, "{list:#?}");
    assert_eq!(list[0]["complete"], true);
    assert_eq!(list[0]["exit_code"], 0);
}

/// A store nono cannot open is a warning, never a reason not to run: the command still starts
/// (the writer that failed opens the gate the command waits at) and its status passes through.
fn an_unusable_store_never_holds_the_command_back(user: User) {
    let _serial = serial();
    let w = World::new(user);
    // A directory where the database file would be.
    std::fs::create_dir_all(db(&w)).unwrap();
    w.hand_over(&w.home.join(".local"));
    let marker = w.work.join("ran");
    let out = wait_with_timeout(
        spawn(&mut w.sandbox(
            &[] as &[&str],
            &[
                "/bin/sh",
                "-c",
                &format!("echo > '{}'; exit 3", marker.display()),
            ],
        )),
        Duration::from_secs(30),
    );
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    assert!(marker.exists());
    assert!(
        out.stderr.contains("nono: warning: audit:"),
        "{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Landlock's own denial records (root only: reading them needs CAP_AUDIT_READ)

const NETLINK_AUDIT: i32 = 9;
const AUDIT_GET: u16 = 1000;
const AUDIT_SET: u16 = 1001;

/// One request to the kernel audit subsystem; returns the reply's payload.
fn audit_request(kind: u16, payload: &[u8]) -> Vec<u8> {
    // SAFETY: plain socket calls on an fd this function owns and closes.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_AUDIT,
        );
        assert!(
            fd >= 0,
            "NETLINK_AUDIT: {}",
            std::io::Error::last_os_error()
        );
        let mut msg = Vec::new();
        msg.extend_from_slice(&(16 + payload.len() as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&[0u8; 8]);
        msg.extend_from_slice(payload);
        let mut to: libc::sockaddr_nl = std::mem::zeroed();
        to.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&to as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        assert!(
            sent > 0,
            "audit request: {}",
            std::io::Error::last_os_error()
        );
        let mut buf = vec![0u8; 4096];
        let n = if kind == AUDIT_GET {
            libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)
        } else {
            0
        };
        libc::close(fd);
        buf.truncate(n.max(0) as usize);
        buf.split_off(16.min(buf.len()))
    }
}

fn audit_enabled() -> u32 {
    let status = audit_request(AUDIT_GET, &[]);
    u32::from_ne_bytes(status[4..8].try_into().unwrap())
}

fn set_audit_enabled(on: u32) {
    // struct audit_status: mask (AUDIT_STATUS_ENABLED = 1), enabled, then 8 more u32.
    let mut st = vec![0u8; 40];
    st[0..4].copy_from_slice(&1u32.to_ne_bytes());
    st[4..8].copy_from_slice(&on.to_ne_bytes());
    audit_request(AUDIT_SET, &st);
}

/// Restores the host's audit setting however the test ends.
struct AuditOn(u32);

impl AuditOn {
    fn new() -> AuditOn {
        let before = audit_enabled();
        set_audit_enabled(1);
        AuditOn(before)
    }
}

impl Drop for AuditOn {
    fn drop(&mut self) {
        set_audit_enabled(self.0);
    }
}

/// With kernel audit on and nono able to read it (root), Landlock's own denial records are
/// attributed to the session: the denied read of the planted key and the denied write, by
/// the shell's child process, appear with their paths; the files are unchanged.
#[test]
fn landlock_denials_are_attributed_when_kernel_audit_is_on() {
    let _serial = serial();
    let w = World::new(User::Root);
    let watch = Watch::new(&[w.key(), w.secret()]);
    let out = {
        let _on = AuditOn::new();
        run(&mut w.sandbox(
            &[] as &[&str],
            &[
                "/bin/sh",
                "-c",
                r#"cat "$1"; echo x >> "$2"; exit 0"#,
                "sh",
                &w.key().display().to_string(),
                &w.secret().display().to_string(),
            ],
        ))
    };
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    watch.assert_unchanged();
    let s = sessions(&w)[0].clone();
    assert_eq!(s["violations"], 2, "{s}");
    let doc = show_json(&w, s["id"].as_str().unwrap());
    let denials: Vec<&Value> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["denied"] == true)
        .collect();
    assert_eq!(denials.len(), 2, "{doc}");
    let key = w.key().display().to_string();
    let secret = w.secret().display().to_string();
    // The key lies under the credentials group's deny on ~/.ssh: that rule is named. The
    // other project's secret is merely not granted: the default deny, no rule.
    assert!(
        denials.iter().any(|e| e["object"] == key.as_str()
            && e["op"] == "fs.read_file"
            && e["process"] == "cat"
            && e["rule_id"].is_u64()
            && e["rule_source"]
                .as_str()
                .is_some_and(|s| s.starts_with("builtin:groups/credentials:"))),
        "{doc}"
    );
    assert!(
        denials.iter().any(|e| e["object"] == secret.as_str()
            && e["op"] == "fs.write_file"
            && e["process"] == "sh"
            && e["rule_id"].is_null()),
        "{doc}"
    );
    audit(&w, &["verify", s["id"].as_str().unwrap()], 0);
}

/// A `--rollback` run records what the command changed in its audit session, so even a
/// Landlock-only session says which files were touched, and points at the rollback session.
fn rollback_change_summary_is_recorded_in_the_session(user: User) {
    let _serial = serial();
    let w = World::new(user);
    w.write(&w.work.join("kept.txt"), "before\n");
    w.write(&w.work.join("gone.txt"), "bye\n");
    let out = run(&mut w.sandbox(
        &["--rollback"],
        &[
            "/bin/sh",
            "-c",
            "echo after > kept.txt && rm gone.txt && echo new > made.txt",
        ],
    ));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let list = sessions(&w);
    let id = list[0]["id"].as_str().unwrap();
    let doc = show_json(&w, id);
    let events = doc["events"].as_array().unwrap();
    let summary = events
        .iter()
        .find(|e| e["kind"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback event: {events:?}"));
    assert_eq!(summary["detail"]["created"], 1, "{summary}");
    assert_eq!(summary["detail"]["modified"], 1, "{summary}");
    assert_eq!(summary["detail"]["deleted"], 1, "{summary}");
    assert_eq!(summary["denied"], false);
    // The object is the rollback session, which `nono rollback show` knows.
    let rid = summary["object"].as_str().unwrap();
    let shown = run(&mut w.nono(["rollback", "show", rid, "--json"]));
    assert_eq!(shown.code(), Some(0), "{}", shown.describe());
    assert!(audit(&w, &["show", id], 0).contains("1 created, 1 modified, 1 deleted"));
    audit(&w, &["verify", id], 0);
}
