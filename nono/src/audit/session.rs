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
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nono_policy::backend::Target;
use nono_policy::ir::Policy;
use serde::Serialize;
use sha2::{Digest, Sha256};

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
    pub id: String,
}

/// The digest `nono policy compile` and `nono run --dry-run` print for this policy and target
/// (`sha256:` over the artifact's canonical inputs), without building every back-end's plan.
pub fn policy_digest(policy: &Policy, target: Target) -> String {
    #[derive(Serialize)]
    struct Digested<'a> {
        format: &'a str,
        format_version: u32,
        compiler: &'a str,
        target: &'a Target,
        policy: &'a Policy,
    }
    let compiler = nono_policy::artifact::compiler_id();
    let json = serde_json::to_vec(&Digested {
        format: nono_policy::artifact::FORMAT,
        format_version: nono_policy::artifact::FORMAT_VERSION,
        compiler: &compiler,
        target: &target,
        policy,
    })
    .expect("policies serialise");
    format!("sha256:{}", hex::encode(Sha256::digest(json)))
}

/// Where each rule of `policy` was first written (`profile.nono:12:3`), for
/// [`AuditEvent::from_kernel`]'s `rule_source`: the kernel reports rule ids only.
pub fn rule_sources(policy: &Policy) -> impl Fn(u32) -> Option<String> + Send + 'static {
    let map: std::collections::HashMap<u32, String> = policy
        .provenance
        .rules
        .keys()
        .filter_map(|id| Some((id.0, policy.provenance.origin(*id)?.to_string())))
        .collect();
    move |id| map.get(&id).cloned()
}

/// The name of `uid` from the password database, or the number.
pub fn user_name(uid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data filled by getpwuid_r, whose strings point into `buf`,
    // which outlives their use below.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut out = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        if rc == 0 && !out.is_null() && !pw.pw_name.is_null() {
            return std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    uid.to_string()
}

/// Opens the store and records the session's start. The auditor prunes sessions past the
/// default retention in the background (a few per run, see [`query::AUTO_PRUNE_LIMIT`]).
pub fn begin(db: &Path, info: RunInfo<'_>) -> Result<RunAudit, AuditError> {
    let child_pid = info.child_pid;
    let mut store = Store::open(db)?;
    let id = new_session_id().map_err(|e| AuditError::Other(format!("session id: {e}")))?;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let cursor = store.begin_session(&NewSession {
        id: id.clone(),
        started_ns: time::now_ns(),
        uid,
        user: user_name(uid),
        argv: redact::argv(info.argv),
        cwd: info.cwd.as_os_str().as_bytes().to_vec(),
        profile: info.profile.to_string(),
        policy_digest: policy_digest(info.policy, info.target),
        layers: info.layers,
        nono_pid: std::process::id(),
    })?;
    let sid = cursor.sid;
    let auditor = Auditor::start_with(store, cursor, move |store| {
        let cutoff = time::now_ns() - query::DEFAULT_RETENTION_NS;
        if let Err(e) = query::prune(store, cutoff, Some(query::AUTO_PRUNE_LIMIT), Some(sid)) {
            tracing::warn!("audit: pruning sessions older than the retention failed: {e}");
        }
    })
    .map_err(|e| AuditError::Other(format!("cannot start the audit writer: {e}")))?;
    let landlock_log = match super::landlock_log::LandlockLog::start(auditor.sender(), child_pid) {
        Ok(l) => Some(l),
        Err(why) => {
            tracing::info!("audit: not reading Landlock's denial records: {why}");
            None
        }
    };
    Ok(RunAudit {
        auditor,
        landlock_log,
        child_pid,
        id,
    })
}

impl RunAudit {
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
            },
        };
        if self.sender().blocking_send(vec![event]).is_err() {
            tracing::warn!("audit: the writer stopped; the exec was not recorded");
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

/// The `nono run` hook: starts recording unless the profile says `audit off`. A store that
/// cannot be opened is reported on stderr and the run goes on without a trail (see the module
/// documentation).
pub fn begin_run(info: RunInfo<'_>) -> Option<RunAudit> {
    if info.policy.audit.level == nono_policy::ir::AuditLevel::Off {
        return None;
    }
    let started = match super::default_db_path(info.cwd)
        .and_then(|db| begin(&db, info).map_err(|e| e.to_string()))
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nono: warning: audit: {e}; running without an audit trail");
            return None;
        }
    };
    tracing::info!("audit: session {}", started.id);
    Some(started)
}

impl RunAudit {
    /// The `nono run` hook after the command: its exec (with `exec_errno` if `execve`
    /// failed) at `started_ns`, and the status nono exits with. Failures are warnings.
    pub fn end_run(
        self,
        started_ns: i64,
        binary: &Path,
        argv: &[OsString],
        exec_errno: Option<i32>,
        exit_code: i32,
    ) {
        self.exec(started_ns, binary, argv, exec_errno);
        let id = self.id.clone();
        match self.finish(Some(exit_code)) {
            Ok(s) => tracing::info!(
                "audit: session {id}: {} events, {} violations, {} dropped",
                s.events,
                s.violations,
                s.dropped_kernel + s.dropped_user
            ),
            Err(e) => eprintln!(
                "nono: warning: audit: session {id} could not be completed: {e}; it is shown as incomplete"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
