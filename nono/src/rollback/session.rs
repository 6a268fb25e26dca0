//! A rollback session: the snapshot before `nono run` starts its command, and the changes
//! recorded after it exits.
//!
//! Privilege: none. Kernel assumptions: none beyond [`super::store`] and [`super::snapshot`].
//!
//! What is snapshotted: every path the expanded Landlock plan makes writable (any of
//! write-file, truncate, remove, make-*, refer), canonicalised, nested grants merged. Left
//! out, and listed in `session.json` with the reason:
//! - `/dev`, `/proc`, `/sys`, `/run`: devices and kernel state, not files to roll back;
//! - scratch space: a grant on `/tmp`, `/var/tmp`, `/dev/shm`, `$TMPDIR` or `$XDG_RUNTIME_DIR`
//!   itself (shared with other programs, and temporary by definition); a grant on a directory
//!   below one of them (a project under `/tmp`) is snapshotted;
//! - a grant whose path does not exist (Landlock skips it too), or that is neither a regular
//!   file nor a directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nono_policy::backend::landlock::{FsRights, LandlockPlan};
use nono_policy::ir::Policy;
use nono_policy::path::{PathVar, PathVars};
use serde::{Deserialize, Serialize};

use super::changes::{self, Change, Op};
use super::manifest::{EncPath, Manifest, Options, RootManifest};
use super::names::shown;
use super::snapshot::{self, Limits, Phase, SnapshotError, Stats, WalkOptions};
use super::store::{self, Lock, Store};

/// `nono run --rollback[=MODE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Snapshot; refuse to run if the writable tree exceeds the limits.
    On,
    /// Snapshot if the tree fits the limits; otherwise run WITHOUT rollback, saying so.
    Optional,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRoot {
    pub path: EncPath,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: u64,
    pub modified: u64,
    pub deleted: u64,
    pub renamed: u64,
    pub mode_changed: u64,
}

impl Counts {
    pub fn of(changes: &[Change]) -> Counts {
        let mut c = Counts::default();
        for ch in changes {
            match ch.op {
                Op::Created => c.created += 1,
                Op::Modified => c.modified += 1,
                Op::Deleted => c.deleted += 1,
                Op::Renamed => c.renamed += 1,
                Op::ModeChanged => c.mode_changed += 1,
            }
        }
        c
    }
    pub fn total(&self) -> u64 {
        self.created + self.modified + self.deleted + self.renamed + self.mode_changed
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} created, {} modified, {} deleted, {} renamed, {} mode changed",
            self.created, self.modified, self.deleted, self.renamed, self.mode_changed
        )
    }
}

/// `sessions/<id>/session.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    /// Unix seconds.
    pub started: u64,
    #[serde(default)]
    pub ended: Option<u64>,
    pub command: Vec<String>,
    pub profile: String,
    pub workdir: EncPath,
    pub roots: Vec<EncPath>,
    #[serde(default)]
    pub skipped_roots: Vec<SkippedRoot>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The snapshot: entries and bytes covered, files hashed this time.
    pub snapshot: Stats,
    /// Objects (and their bytes) this session added to the store.
    pub new_objects: u64,
    pub new_bytes: u64,
    #[serde(default)]
    pub changes: Option<Counts>,
}

/// `last/<key>`: the manifest that last described a root.
#[derive(Debug, Serialize, Deserialize)]
struct Last {
    session: String,
    manifest: String,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of unix seconds.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A new session id: `YYYYMMDD-HHMMSS-uuuuuu` (UTC, then microseconds), so that ids sort
/// in the order the sessions started; [`create_session_dir`] makes it unique.
fn new_id(t: std::time::Duration) -> String {
    let stamp: String = utc(t.as_secs())
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == ' ')
        .collect::<String>()
        .replace(' ', "-");
    format!("{stamp}-{:06}", t.subsec_micros())
}

/// Create the directory of a new session, moving the id forward a microsecond at a time if
/// another nono took it (`mkdir` is the atomic test).
fn create_session_dir(store: &Store) -> Result<(String, PathBuf), String> {
    let mut t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    for _ in 0..1000 {
        let id = new_id(t);
        let dir = store.sessions_dir().join(&id);
        match std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
        {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                t += std::time::Duration::from_micros(1);
            }
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err("cannot find a free session id".into())
}

/// The roots to snapshot for an expanded plan, and the writable grants left out (see the
/// module doc).
pub fn writable_roots(plan: &LandlockPlan, vars: &PathVars) -> (Vec<PathBuf>, Vec<SkippedRoot>) {
    let mut scratch: Vec<PathBuf> = ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for v in [PathVar::Tmpdir, PathVar::XdgRuntimeDir] {
        if let Some(p) = vars.get(v) {
            scratch.push(std::fs::canonicalize(&p).unwrap_or(p));
        }
    }
    let system = ["/dev", "/proc", "/sys", "/run"];
    let mut roots = Vec::new();
    let mut skipped = Vec::new();
    let mut skip = |p: PathBuf, why: &str| {
        skipped.push(SkippedRoot {
            path: EncPath(p),
            reason: why.to_string(),
        })
    };
    for r in &plan.path_rules {
        if !r.rights.intersects(FsRights::CHANGES_FILES) {
            continue;
        }
        let Ok(p) = r.path.expand(&PathVars::new()) else {
            continue;
        };
        let Ok(c) = std::fs::canonicalize(&p) else {
            skip(p, "does not exist");
            continue;
        };
        if system.iter().any(|s| c.starts_with(s)) {
            skip(c, "device or kernel filesystem");
        } else if scratch.contains(&c) {
            // The scratch directory itself (a profile's `$TMPDIR` grant), not a project that
            // happens to live below it: `--allow /tmp/proj` is snapshotted like any other.
            skip(c, "temporary scratch space");
        } else {
            match std::fs::symlink_metadata(&c) {
                Ok(m) if m.is_dir() || m.is_file() => roots.push(c),
                _ => skip(c, "not a regular file or directory"),
            }
        }
    }
    roots.sort();
    roots.dedup();
    let mut merged: Vec<PathBuf> = Vec::new();
    for r in roots {
        if !merged.iter().any(|m| r.starts_with(m)) {
            merged.push(r);
        }
    }
    (merged, skipped)
}

/// A session between its snapshot and the command's exit.
pub struct Session {
    store: Store,
    dir: PathBuf,
    info: SessionInfo,
    before: Manifest,
}

fn walk_options(o: &Options, skip: &[EncPath], gitignore: bool, phase: Phase) -> WalkOptions {
    WalkOptions {
        exclude: super::names::Exclusions::new(&o.exclude),
        gitignore,
        skip: skip.iter().map(|p| p.0.clone()).collect(),
        phase,
    }
}

fn previous(store: &Store, root: &Path) -> Option<RootManifest> {
    let last: Last = store::read_json(&store.last_path(root)).ok()?;
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !plain(&last.session) || !plain(&last.manifest) {
        return None;
    }
    let m: Manifest = store::read_json(
        &store
            .sessions_dir()
            .join(&last.session)
            .join(format!("{}.json", last.manifest)),
    )
    .ok()?;
    m.roots.into_iter().find(|r| r.root == root)
}

fn set_last(store: &Store, root: &Path, session: &str, manifest: &str) {
    let _ = store::write_json_fast(
        &store.last_path(root),
        &Last {
            session: session.into(),
            manifest: manifest.into(),
        },
    );
}

pub struct BeginArgs<'a> {
    pub mode: Option<Mode>,
    pub policy: &'a Policy,
    pub plan: &'a LandlockPlan,
    pub vars: &'a PathVars,
    pub command: &'a [OsString],
    pub workdir: &'a Path,
}

/// Take the snapshot, if rollback is on (`--rollback` or `rollback on` in the profile).
/// `Err` is a message for a refusal: nothing has run yet.
pub fn begin(a: BeginArgs<'_>) -> Result<Option<Session>, String> {
    let mode = match (a.mode, a.policy.rollback.enabled) {
        (Some(m), _) => m,
        (None, true) => Mode::On,
        (None, false) => return Ok(None),
    };
    let started_at = Instant::now();
    let limits = Limits::from_env().map_err(|e| format!("nono: rollback: {e}"))?;
    let (roots, skipped_roots) = writable_roots(a.plan, a.vars);
    for s in &skipped_roots {
        tracing::info!(
            "rollback: not snapshotting {} ({})",
            shown(&s.path.0),
            s.reason
        );
    }
    let options = Options {
        exclude: a.policy.rollback.exclude.clone(),
        gitignore: a.policy.rollback.gitignore,
    };
    let store_root = store::default_root().map_err(|e| format!("nono: rollback: {e}"))?;
    let store = Store::open(&store_root, Lock::Shared).map_err(|e| format!("nono: {e}"))?;
    let opts = walk_options(&options, &[], options.gitignore, Phase::Before);

    // Walk everything first: a tree too large is reported before anything is hashed.
    let mut walked = Vec::new();
    let mut used = Limits {
        max_files: 0,
        max_bytes: 0,
    };
    for root in &roots {
        let left = Limits {
            max_files: limits.max_files.saturating_sub(used.max_files),
            max_bytes: limits.max_bytes.saturating_sub(used.max_bytes),
        };
        match snapshot::walk(root, &opts, Some(left)) {
            Ok(w) => {
                used.max_files += w.entries.len() as u64;
                used.max_bytes += w.bytes;
                walked.push((root.clone(), w));
            }
            Err(SnapshotError::TooLarge {
                root, files, bytes, ..
            }) => {
                let e = SnapshotError::TooLarge {
                    root,
                    files: files + used.max_files,
                    bytes: bytes + used.max_bytes,
                    limits,
                };
                return too_large(mode, e.to_string());
            }
            Err(e) => return too_large(mode, e.to_string()),
        }
    }
    let walked_at = Instant::now();
    let mut manifest = Manifest {
        options: options.clone(),
        roots: Vec::new(),
    };
    let mut total = Stats::default();
    for (root, w) in walked {
        let prev = previous(&store, &root);
        let (rm, st) = match snapshot::store_files(&store, &root, w, prev.as_ref(), None) {
            Ok(x) => x,
            Err(e) => return too_large(mode, e.to_string()),
        };
        total.entries += st.entries;
        total.bytes += st.bytes;
        total.hashed_files += st.hashed_files;
        total.hashed_bytes += st.hashed_bytes;
        manifest.roots.push(rm);
    }
    let stored_at = Instant::now();
    store.sync().map_err(|e| format!("nono: {e}"))?;
    let synced_at = Instant::now();
    let (id, dir) = create_session_dir(&store).map_err(|e| format!("nono: rollback: {e}"))?;
    store::write_json(&dir.join("before.json"), &manifest).map_err(|e| format!("nono: {e}"))?;
    let info = SessionInfo {
        id: id.clone(),
        started: now(),
        ended: None,
        command: a
            .command
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect(),
        profile: a.policy.meta.name.clone(),
        workdir: EncPath(a.workdir.to_path_buf()),
        roots: roots.iter().cloned().map(EncPath).collect(),
        skipped_roots,
        exit_code: None,
        snapshot: total,
        new_objects: store.new_objects.load(Ordering::Relaxed),
        new_bytes: store.new_bytes.load(Ordering::Relaxed),
        changes: None,
    };
    store::write_json(&dir.join("session.json"), &info).map_err(|e| format!("nono: {e}"))?;
    for r in &roots {
        set_last(&store, r, &id, "before");
    }
    tracing::info!(
        "rollback: session {id}: {} entries, {} MiB in {} root(s); {} file(s) hashed, {} new \
         object(s), in {:.0?} (walk {:?}, hash+store {:?}, syncfs {:?})",
        total.entries,
        total.bytes >> 20,
        roots.len(),
        total.hashed_files,
        info.new_objects,
        started_at.elapsed(),
        walked_at - started_at,
        stored_at - walked_at,
        synced_at - stored_at
    );
    Ok(Some(Session {
        store,
        dir,
        info,
        before: manifest,
    }))
}

fn too_large(mode: Mode, msg: String) -> Result<Option<Session>, String> {
    match mode {
        Mode::On => Err(format!(
            "nono: refusing to run: rollback cannot snapshot what the command may write: \
             {msg}.\n  Run with --rollback=optional to run WITHOUT rollback when the snapshot \
             cannot be taken."
        )),
        Mode::Optional => {
            eprintln!("nono: warning: running WITHOUT rollback (--rollback=optional): {msg}");
            Ok(None)
        }
    }
}

impl Session {
    /// Record what the command changed. Problems are reported, never turned into the run's
    /// exit status: the command has run, and its status is what the caller needs.
    /// Returns the session id and its change counts when they were recorded (for the audit
    /// trail).
    pub fn finish(mut self, exit_code: Option<i32>) -> Option<(String, Counts)> {
        match self.record(exit_code) {
            Ok((counts, unsaved)) => {
                if unsaved > 0 {
                    eprintln!(
                        "nono: warning: rollback session {}: the content of {unsaved} path(s) \
                         could not be saved after the run (marked \"content not saved\" in \
                         `nono rollback show`); restoring them does not need it.",
                        self.info.id
                    );
                }
                eprintln!(
                    "nono: rollback session {}: {counts}.\n  See `nono rollback show {} --diff`; \
                     undo with `nono rollback restore {}`.",
                    self.info.id, self.info.id, self.info.id
                );
                Some((self.info.id.clone(), counts))
            }
            Err(e) => {
                eprintln!(
                    "nono: rollback session {}: the command has run, but nono could not record \
                     what it changed: {e}\n  The snapshot taken before the run is intact: \
                     `nono rollback restore {}` still works.",
                    self.info.id, self.info.id
                );
                None
            }
        }
    }

    /// The change counts, and how many entries were recorded without their content.
    fn record(&mut self, exit_code: Option<i32>) -> Result<(Counts, usize), String> {
        let mut after = Manifest {
            options: self.before.options.clone(),
            roots: Vec::new(),
        };
        let mut all = Vec::new();
        // One budget for the content of the whole run's changes (see `store_files`).
        let mut budget = snapshot::Limits::from_env()
            .map(|l| l.max_bytes)
            .unwrap_or(snapshot::DEFAULT_MAX_BYTES);
        for b in &self.before.roots {
            // Same exclusions; .gitignore is not re-evaluated (the session may have edited
            // it): what was skipped then is skipped now, everything else is seen.
            let opts = walk_options(&self.before.options, &b.skipped, false, Phase::After);
            let w = if std::fs::symlink_metadata(&b.root).is_err() {
                // The root itself is gone: everything in it was deleted.
                snapshot::Walked::default()
            } else {
                snapshot::walk(&b.root, &opts, None).map_err(|e| e.to_string())?
            };
            let (mut rm, stats) =
                snapshot::store_files(&self.store, &b.root, w, Some(b), Some(budget))
                    .map_err(|e| e.to_string())?;
            budget = budget.saturating_sub(stats.hashed_bytes);
            rm.skipped = b.skipped.clone();
            all.extend(changes::diff(b, &rm));
            after.roots.push(rm);
        }
        store::write_json_fast(&self.dir.join("after.json"), &after)?;
        store::write_json_fast(&self.dir.join("changes.json"), &all)?;
        for r in &after.roots {
            set_last(&self.store, &r.root, &self.info.id, "after");
        }
        let counts = Counts::of(&all);
        self.info.ended = Some(now());
        self.info.exit_code = exit_code;
        self.info.changes = Some(counts.clone());
        self.info.new_objects = self.store.new_objects.load(Ordering::Relaxed);
        self.info.new_bytes = self.store.new_bytes.load(Ordering::Relaxed);
        store::write_json_fast(&self.dir.join("session.json"), &self.info)?;
        let unsaved = after
            .roots
            .iter()
            .flat_map(|r| &r.entries)
            .filter(|e| e.unsaved.is_some())
            .count();
        Ok((counts, unsaved))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading sessions back

pub fn load_info(store: &Store, id: &str) -> Result<SessionInfo, String> {
    store::read_json(&store.sessions_dir().join(id).join("session.json"))
}

pub fn load_manifest(store: &Store, id: &str, which: &str) -> Result<Manifest, String> {
    store::read_json(&store.sessions_dir().join(id).join(format!("{which}.json")))
}

pub fn load_changes(store: &Store, id: &str) -> Result<Option<Vec<Change>>, String> {
    let p = store.sessions_dir().join(id).join("changes.json");
    if !p.exists() {
        return Ok(None);
    }
    store::read_json(&p).map(Some)
}

/// Every session id, oldest first.
pub fn ids(store: &Store) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(store.sessions_dir())
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("session.json").is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A session id from a unique prefix.
pub fn resolve(store: &Store, prefix: &str) -> Result<String, String> {
    let all = ids(store);
    if all.iter().any(|i| i == prefix) {
        return Ok(prefix.to_string());
    }
    let matches: Vec<&String> = all.iter().filter(|i| i.starts_with(prefix)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "nono rollback: no session `{}` (see `nono rollback list`)",
            super::names::shown_str(prefix)
        )),
        many => Err(format!(
            "nono rollback: `{}` matches {} sessions: {}; give more of the id",
            super::names::shown_str(prefix),
            many.len(),
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Change counts per session, for listings; computed from changes.json when missing.
pub fn counts(store: &Store, info: &SessionInfo) -> Option<Counts> {
    info.changes.clone().or_else(|| {
        load_changes(store, &info.id)
            .ok()
            .flatten()
            .map(|c| Counts::of(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_796_042_096), "2026-11-30 12:34:56");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        let id = new_id(std::time::Duration::new(1_796_042_096, 7_000));
        assert_eq!(id, "20261130-123456-000007");
    }
}
