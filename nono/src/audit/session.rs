//! Recording one `nono run`: the session row, the exec of the command, how it ended.
//!
//! Privilege: none. Runs in the `nono run` process, outside the sandbox; the store is under
//! the implicit deny on `$XDG_STATE_HOME/nono`, and SQLite opens its files close-on-exec (the
//! child also closes every inherited descriptor before `execve`), so the command never holds
//! a descriptor to it.
//!
//! Failure policy: auditing is a record, not a protection. If the store cannot be opened or
//! written, `nono run` warns (naming the file and the error) and the command runs or goes on
//! running without a trail; a profile with `audit off` records nothing. (A profile cannot yet
//! demand a trail; when it can, that setting will refuse the run instead.)

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nono_policy::backend::Target;
use nono_policy::ir::Policy;

use super::event::{AuditEvent, What};
use super::ingest::{AuditSender, Auditor, Summary};
use super::store::{new_session_id, NewSession, Store};
use super::{query, redact, time, AuditError};

/// What `nono run` knows about the session when the command is about to start.
pub struct RunInfo<'a> {
    pub argv: &'a [OsString],
    pub cwd: &'a Path,
    pub profile: &'a str,
    pub policy: &'a Policy,
    pub target: Target,
    /// `[{"name": ..., "features": [...]}, ...]` for each enforcing layer.
    pub layers: serde_json::Value,
    /// Where the run flow publishes the command's pid (Landlock record attribution).
    pub child_pid: &'static std::sync::atomic::AtomicI32,
}

pub struct RunAudit {
    auditor: Auditor,
    landlock_log: Option<super::landlock_log::LandlockLog>,
    child_pid: &'static std::sync::atomic::AtomicI32,
    /// The command's exec is in the trail ([`RunAudit::executed`]).
    exec_recorded: std::cell::Cell<bool>,
    /// Until [`RunAudit::take_row_gate`].
    row_gate: Option<OwnedFd>,
    pub id: String,
}

/// The digest `nono policy compile` and `nono run --dry-run` print for this policy and target,
/// without building every back-end's plan.
pub fn policy_digest(policy: &Policy, target: Target) -> String {
    nono_policy::artifact::policy_digest(policy, target)
}

/// Where each rule of `policy` was first written (`profile.nono:12:3`), for
/// [`AuditEvent::from_kernel`]'s `rule_source`: the kernel reports rule ids only.
pub fn rule_sources(policy: &Policy) -> impl Fn(u32) -> Option<String> + Send + Sync + 'static {
    let map: std::collections::HashMap<u32, String> = policy
        .provenance
        .rules
        .keys()
        .filter_map(|id| Some((id.0, policy.provenance.origin(*id)?.to_string())))
        .collect();
    move |id| map.get(&id).cloned()
}

/// The name of `uid`: from `/etc/passwd`, else (in a dynamically linked nono) from the rest of
/// the password database through NSS, else the number.
///
/// `/etc/passwd` first, read directly: the `files` source is the first one in practically every
/// `nsswitch.conf`, and glibc's `getpwuid_r` would first parse `nsswitch.conf` and may `dlopen`
/// an NSS module (`libnss_systemd`), work the audit thread does while the child is waiting for
/// its session row. A statically linked nono (the release build) never calls into NSS: glibc
/// would `dlopen` modules of the system's glibc, which need not match the one linked in. Users
/// known only to NSS (LDAP, sssd, systemd-homed) are then recorded by uid, which is what the
/// trail's `uid` field holds anyway.
pub fn user_name(uid: u32) -> String {
    if let Some(name) = std::fs::read("/etc/passwd")
        .ok()
        .and_then(|text| passwd_name(&text, uid))
    {
        return name;
    }
    if !cfg!(target_feature = "crt-static") {
        if let Some(name) = nss_user_name(uid) {
            return name;
        }
    }
    uid.to_string()
}

/// The name of the first `/etc/passwd` entry (`name:password:uid:...`) whose uid is `uid`.
fn passwd_name(text: &[u8], uid: u32) -> Option<String> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let mut fields = line.split(|b| *b == b':');
        let name = fields.next()?;
        let entry_uid = fields.nth(1)?;
        (!name.is_empty() && std::str::from_utf8(entry_uid).ok()?.parse::<u32>().ok()? == uid)
            .then(|| String::from_utf8_lossy(name).into_owned())
    })
}

fn nss_user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data filled by getpwuid_r, whose strings point into `buf`,
    // which outlives their use below.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        (rc == 0 && !out.is_null() && !pw.pw_name.is_null()).then(|| {
            std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// The audit writer of a run that has not started yet: its thread opens the store, reads the
/// password database and prunes old sessions while `nono run` works out the sandbox, then
/// waits for the session row ([`PendingRun::begin`]). SQLite's open, its schema check and
/// the prune cost more than building the sandbox; started here they are off the run's
/// critical path, where they added about 2 ms to every `nono run`.
///
/// Dropped without `begin` (the run was refused), the thread stops without writing a
/// session; a prune it had started either commits or rolls back, as SQLite guarantees.
pub struct PendingRun {
    session: std::sync::mpsc::SyncSender<NewSession>,
    /// Opens once the session row is committed (or the writer gave up).
    row_gate: OwnedFd,
    auditor: Auditor,
    id: String,
}

/// The writer's end of the row gate (see [`RunAudit::take_row_gate`]): dropping it writes the
/// one byte that opens the gate, whether the row was committed, the writer failed or it
/// panicked, because the trail is a record, never a reason not to run. Only nono's own death
/// leaves the gate shut, and the command dies with nono then anyway (`PR_SET_PDEATHSIG`).
struct RowGateOpener(OwnedFd);

impl Drop for RowGateOpener {
    fn drop(&mut self) {
        // One byte into an empty pipe never blocks; the reader's end outlives this one.
        let _ = rustix::io::write(&self.0, b"1");
    }
}

/// Starts the auditor for a run whose session row comes later (see [`PendingRun`]).
pub fn prepare(db: &Path) -> Result<PendingRun, AuditError> {
    let id = new_session_id().map_err(|e| AuditError::Other(format!("session id: {e}")))?;
    let (session, sessions) = std::sync::mpsc::sync_channel::<NewSession>(1);
    let (row_gate, opener) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| AuditError::Other(format!("cannot create the session row's gate: {e}")))?;
    let opener = RowGateOpener(opener);
    let db = db.to_path_buf();
    let open = move || {
        let mut store = Store::open(&db)?;
        // SAFETY: getuid cannot fail.
        let user = user_name(unsafe { libc::getuid() });
        let mut session = sessions
            .recv()
            .map_err(|_| AuditError::Other("the run was not started".into()))?;
        session.user = user;
        let cursor = store.begin_session(&session)?;
        drop(opener);
        // A few sessions past the retention go per run (see [`query::AUTO_PRUNE_LIMIT`]),
        // while the command runs: the command waits for this run's row, not for the prune,
        // and the prune's cutoff keeps this run's row out of it.
        let cutoff = time::now_ns() - query::DEFAULT_RETENTION_NS;
        let limit = Some(query::AUTO_PRUNE_LIMIT);
        if let Err(e) = query::prune(&mut store, cutoff, limit, Some(cursor.sid)) {
            tracing::warn!("audit: pruning sessions older than the retention failed: {e}");
        }
        Ok((store, cursor))
    };
    let auditor = Auditor::start_opening(open, |_| {})
        .map_err(|e| AuditError::Other(format!("cannot start the audit writer: {e}")))?;
    Ok(PendingRun {
        session,
        row_gate,
        auditor,
        id,
    })
}

impl PendingRun {
    /// Records the session's start (the row is written before any event: events wait in the
    /// channel) and starts reading Landlock's denial records where nono may.
    pub fn begin(self, info: RunInfo<'_>) -> RunAudit {
        let PendingRun {
            session,
            row_gate,
            auditor,
            id,
        } = self;
        let row = NewSession {
            id: id.clone(),
            started_ns: time::now_ns(),
            // SAFETY: getuid cannot fail.
            uid: unsafe { libc::getuid() },
            user: String::new(),
            argv: redact::argv(info.argv),
            cwd: info.cwd.as_os_str().as_bytes().to_vec(),
            profile: info.profile.to_string(),
            policy_digest: policy_digest(info.policy, info.target),
            layers: info.layers,
            nono_pid: std::process::id(),
        };
        // A writer that already failed (the store cannot be opened) has dropped the receiver;
        // `finish` reports its error.
        // A writer that already failed has opened the gate, and `finish` reports its error.
        let _ = session.send(row);
        let landlock_log = match super::landlock_log::LandlockLog::start(
            auditor.sender(),
            info.child_pid,
            info.policy,
        ) {
            Ok(l) => Some(l),
            Err(why) => {
                tracing::info!("audit: not reading Landlock's denial records: {why}");
                None
            }
        };
        RunAudit {
            auditor,
            landlock_log,
            child_pid: info.child_pid,
            exec_recorded: std::cell::Cell::new(false),
            row_gate: Some(row_gate),
            id,
        }
    }
}

impl RunAudit {
    /// The reader's end of a close-on-exec pipe that yields one byte once the session row is
    /// committed (or the writer gave up). The command's child reads it just before `execve`
    /// (`sandbox::spawn`): the command never runs before its session exists, so a `kill -9` of
    /// nono at any moment after leaves an incomplete session, never none, and the one small
    /// transaction overlaps the child's own set-up instead of delaying its `clone`.
    pub fn take_row_gate(&mut self) -> Option<OwnedFd> {
        self.row_gate.take()
    }

    /// For event sources (the kernel layer's ring-buffer reader).
    pub fn sender(&self) -> AuditSender {
        self.auditor.sender()
    }

    /// Records the exec of the command: `errno` when `execve` failed (a Landlock denial is
    /// EACCES).
    pub fn exec(&self, time_ns: i64, binary: &Path, argv: &[OsString], errno: Option<i32>) {
        let denied = matches!(errno, Some(libc::EACCES | libc::EPERM));
        // The command's pid, once it was spawned (0 if it never was).
        let pid = self
            .child_pid
            .load(std::sync::atomic::Ordering::Acquire)
            .max(0) as u32;
        let event = AuditEvent {
            time_ns,
            pid,
            process: String::new(),
            denied,
            rule_id: None,
            rule_source: None,
            what: What::Exec {
                binary: binary.as_os_str().as_bytes().to_vec(),
                argv: redact::argv(argv),
                errno,
                argv_truncated: false,
                binary_truncated: false,
                hook: None,
                inode: None,
            },
        };
        if self.sender().blocking_send(vec![event]).is_err() {
            tracing::warn!("audit: the writer stopped; the exec was not recorded");
        }
    }

    /// Records the change summary of the run's rollback session (`nono rollback show ID`),
    /// so a Landlock-only session still says what the command changed.
    pub fn rollback(&self, session: &str, changes: serde_json::Value) {
        let event = AuditEvent {
            time_ns: time::now_ns(),
            pid: 0,
            process: String::new(),
            denied: false,
            rule_id: None,
            rule_source: None,
            what: What::Rollback {
                session: session.to_string(),
                changes,
            },
        };
        if self.sender().blocking_send(vec![event]).is_err() {
            tracing::warn!("audit: the writer stopped; the rollback summary was not recorded");
        }
    }

    /// Ends the session with the status `nono run` passes on (`None`: the command never ran).
    pub fn finish(self, exit_code: Option<i32>) -> Result<Summary, AuditError> {
        if let Some(l) = self.landlock_log {
            l.stop();
        }
        self.auditor.finish(time::now_ns(), exit_code)
    }
}

/// The `nono run` hook, first thing: starts the writer (see [`PendingRun`]) before the policy
/// is even compiled, so that opening the store overlaps all of the run's preparation. The
/// caller drops it unused when the profile says `audit off` ([`keep_for`]); until a session is
/// begun the writer writes nothing, beyond creating an empty store.
pub fn prepare_run(cwd: &Path) -> Result<PendingRun, String> {
    super::default_db_path(cwd).and_then(|db| prepare(&db).map_err(|e| e.to_string()))
}

/// The writer [`prepare_run`] started, if `policy` wants a trail. A store that cannot be
/// located or a writer that cannot start is reported on stderr and the run goes on without a
/// trail (see the module documentation); one that cannot be opened is reported when the run
/// ends.
pub fn keep_for(policy: &Policy, prepared: Result<PendingRun, String>) -> Option<PendingRun> {
    if policy.audit.level == nono_policy::ir::AuditLevel::Off {
        return None;
    }
    match prepared {
        Ok(p) => {
            tracing::info!("audit: session {}", p.id);
            Some(p)
        }
        Err(e) => {
            eprintln!("nono: warning: audit: {e}; running without an audit trail");
            None
        }
    }
}

impl RunAudit {
    /// The `nono run` hook once the command was executed: the exec, at `started_ns`, goes
    /// to the writer while the command runs (in the trail's order, before what the command
    /// did), rather than after it, when `nono run` waits for the writer to finish.
    pub fn executed(&self, started_ns: i64, binary: &Path, argv: &[OsString]) {
        self.exec(started_ns, binary, argv, None);
        self.exec_recorded.set(true);
    }

    /// The `nono run` hook after the command: its exec, unless [`RunAudit::executed`] recorded
    /// it (with `exec_errno` if `execve` failed) at `started_ns`, and the status nono exits
    /// with. Failures are warnings.
    pub fn end_run(
        self,
        started_ns: i64,
        binary: &Path,
        argv: &[OsString],
        exec_errno: Option<i32>,
        exit_code: i32,
    ) {
        if !self.exec_recorded.get() {
            self.exec(started_ns, binary, argv, exec_errno);
        }
        let id = self.id.clone();
        match self.finish(Some(exit_code)) {
            Ok(s) => tracing::info!(
                "audit: session {id}: {} events, {} violations, {} dropped",
                s.events,
                s.violations,
                s.dropped_kernel + s.dropped_user
            ),
            Err(e) => eprintln!(
                "nono: warning: audit: session {id}: {e}; its trail is missing or shown as incomplete"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_entries_give_names_by_uid() {
        let text = b"root:x:0:0:root:/root:/bin/bash\n#comment\n\n:x:7:7::/:/bin/sh\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\nbroken:x\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";
        assert_eq!(passwd_name(text, 0).as_deref(), Some("root"));
        // The first entry for a uid wins, as in glibc's `files` source.
        assert_eq!(passwd_name(text, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(text, 65534).as_deref(), Some("nobody"));
        // An entry without a name is no answer; an unknown uid is none.
        assert_eq!(passwd_name(text, 7), None);
        assert_eq!(passwd_name(text, 4242), None);
        assert_eq!(user_name(4_000_000_000), "4000000000");
    }

    #[test]
    fn rule_sources_name_where_rules_are_written() {
        let policy =
            crate::cli::profile::compile(&crate::profiles::Profiles::from_env(), "default")
                .unwrap();
        let lookup = rule_sources(&policy);
        let (id, origins) = policy.provenance.rules.iter().next().unwrap();
        assert_eq!(lookup(id.0), Some(origins[0].to_string()));
        assert!(lookup(id.0).unwrap().contains(':'));
        assert_eq!(lookup(u32::MAX), None);
    }

    #[test]
    fn digest_matches_the_compiled_artifact() {
        let policy =
            crate::cli::profile::compile(&crate::profiles::Profiles::from_env(), "default")
                .unwrap();
        let target = Target {
            landlock_abi: 4,
            kernel_layer: false,
        };
        assert_eq!(
            policy_digest(&policy, target),
            nono_policy::artifact::CompiledPolicy::build(&policy, target).digest
        );
    }
}
