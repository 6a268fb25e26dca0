//! The audit trail: what each `nono run` session did, kept in SQLite for later review.
//!
//! Privilege: none. The store lives in the invoking user's `$XDG_STATE_HOME/nono/audit.db`
//! (default `~/.local/state/nono/audit.db`), which every `nono run` denies to the sandboxed
//! command through the implicit `builtin:nono-state` rule (see `run::concrete`). Kernel
//! assumptions: none for the store itself; SQLite's WAL mode needs a file system with shared
//! memory maps (not NFS).
//!
//! - [`event`]: [`AuditEvent`], what an event source (the kernel layer's ring-buffer reader,
//!   the run flow) hands to the auditor, and its conversion from a kernel record;
//! - [`store`] and [`schema`]: the database, its migrations, batched appends;
//! - [`chain`]: the per-session SHA-256 hash chain and its canonical encoding;
//! - [`ingest`]: the auditor, a tokio task fed over a bounded channel;
//! - [`session`]: recording one `nono run`;
//! - [`query`]: list, show, verify, export, prune;
//! - [`landlock_log`]: Landlock's own denial records from the kernel audit log;
//! - [`redact`]: the argv redaction rule; [`time`]: timestamps;
//! - [`bench`]: `nono audit bench`, run by `cargo xtask bench audit`.
//!
//! Feeding the kernel layer's decisions (the ring-buffer reader, a tokio task): take
//! `RunAudit::sender()` from [`session::PendingRun::begin`], a [`event::ClockOffset::now()`] and
//! [`session::rule_sources`]`(&policy)` once, then for each drained batch
//! `sender.send(batch.iter().map(|k| AuditEvent::from_kernel(k, clock, &sources)).collect()).await`
//! (waits for room rather than dropping), and report the kernel's drop counter with
//! `sender.set_kernel_drops(n)`. Stop the reader before `RunAudit::end_run`.

pub mod bench;
pub mod chain;
pub mod event;
pub mod ingest;
pub mod landlock_log;
pub mod query;
pub mod redact;
pub mod schema;
pub mod session;
pub mod store;
pub mod time;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use event::{AuditEvent, What};
pub use ingest::{AuditSender, Auditor};

/// The database file name under `$XDG_STATE_HOME/nono`.
pub const DB_NAME: &str = "audit.db";

/// Where the store is for this user: `$XDG_STATE_HOME/nono/audit.db`, resolved exactly as the
/// implicit deny resolves `$XDG_STATE_HOME` (an absolute `$XDG_STATE_HOME`, else
/// `$HOME/.local/state`), so the file nono writes is the file the sandbox cannot reach.
pub fn default_db_path(cwd: &Path) -> Result<PathBuf, String> {
    let vars = nono_policy::path::PathVars::from_env(|k| std::env::var(k).ok(), cwd);
    vars.get(nono_policy::path::PathVar::XdgStateHome)
        .map(|base| base.join("nono").join(DB_NAME))
        .ok_or_else(|| {
            "cannot locate the audit store: neither $XDG_STATE_HOME nor $HOME is set".to_string()
        })
}

/// Errors of the audit store. They name the database file, so a user can find it.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("audit store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit store {path}: schema version {found} is newer than this nono understands ({known}); upgrade nono")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Other(String),
}
