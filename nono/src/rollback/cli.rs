//! `nono rollback list|show|restore|prune`.
//!
//! Privilege: none (run as root, restore also restores owners). Every name printed comes
//! from the agent's tree and is escaped (see [`super::names`]).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde_json::json;
use similar::{ChangeTag, TextDiff};

use super::changes::{Change, Op, State};
use super::manifest::Kind;
use super::names::{self, shown, shown_line};
use super::restore::{Action, Restorer};
use super::session::{self, utc};
use super::store::{self, Lock, Store};
use crate::exit::{CmdResult, Exit};

/// `nono rollback --help`.
pub const EXAMPLES: &str = "Examples:
  nono run --rollback --allow ~/projects/app -- claude
  nono rollback list
  nono rollback show 20261130-1834 --diff     # a unique prefix of the id is enough
  nono rollback restore 20261130-1834 --dry-run
  nono rollback restore 20261130-1834
  nono rollback prune

The store is $XDG_STATE_HOME/nono/rollback (default ~/.local/state/nono/rollback),
which the sandbox can neither read nor write.";

/// Default for `prune --keep`.
pub const DEFAULT_KEEP: usize = 20;
/// Default for `prune --older-than` (days).
pub const DEFAULT_MAX_AGE_DAYS: u64 = 30;
/// Files larger than this are summarised by `show --diff`, not diffed.
const MAX_DIFF_BYTES: u64 = 1 << 20;

#[derive(Debug, clap::Subcommand)]
pub enum RollbackCommand {
    /// List sessions with their change counts and sizes.
    #[command(after_help = "Examples:
  nono rollback list
  nono rollback list --json | jq '.[0].id'")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what a session changed.
    #[command(after_help = "Examples:
  nono rollback show 20261130-1834        # a unique prefix of the id is enough
  nono rollback show 20261130-183456-a1b2c3 --diff
  nono rollback show 20261130-1834 --json")]
    Show {
        /// Session id, or a unique prefix of it.
        id: String,
        /// Unified diffs for text files, a size/hash line for binary ones.
        #[arg(long)]
        diff: bool,
        /// Print JSON (paths: UTF-8 as is; `%` and invalid bytes as %XX).
        #[arg(long, conflicts_with = "diff")]
        json: bool,
    },
    /// Return files to their state before the session.
    #[command(after_help = "Examples:
  nono rollback restore 20261130-1834 --dry-run
  nono rollback restore 20261130-1834
  nono rollback restore 20261130-1834 --path src/main.rs

Restore deletes what the session created, recreates what it deleted (with modes), and
returns modified files to their content. It never follows a symlink the session planted,
never adds a setuid/setgid bit, is idempotent, and an interrupted restore completes when
run again. A directory of yours the session made unreadable (chmod 000) is opened again
and gets its recorded mode back. A path that cannot be restored is reported and the rest
is still restored (exit status 1). Excluded names (target/, node_modules/...) are left
alone.")]
    Restore {
        /// Session id, or a unique prefix of it.
        id: String,
        /// Print what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Restore only this file or directory (and what is below it).
        #[arg(long, value_name = "P")]
        path: Option<PathBuf>,
        /// Print the actions as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete old sessions and the objects only they used.
    #[command(after_help = "Examples:
  nono rollback prune                      # keep the 20 newest sessions, none older than 30 days
  nono rollback prune --keep 5 --older-than 7
  nono rollback prune --dry-run")]
    Prune {
        /// Keep at most N sessions (the newest).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_KEEP)]
        keep: usize,
        /// Delete sessions that started more than DAYS days ago.
        #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_MAX_AGE_DAYS)]
        older_than: u64,
        /// Print what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn fail(m: impl Into<String>) -> Exit {
    Exit::failure(m)
}

fn open(lock: Lock) -> Result<Option<Store>, Exit> {
    let root = store::default_root().map_err(|e| fail(format!("nono rollback: {e}")))?;
    Store::open_existing(&root, lock).map_err(|e| fail(format!("nono rollback: {e}")))
}

fn need(store: Option<Store>) -> Result<Store, Exit> {
    store.ok_or_else(|| {
        fail("nono rollback: no sessions yet (run a command with `nono run --rollback`)")
    })
}

pub fn main(cmd: RollbackCommand) -> CmdResult {
    match cmd {
        RollbackCommand::List { json } => list(json),
        RollbackCommand::Show { id, diff, json } => show(&id, diff, json),
        RollbackCommand::Restore {
            id,
            dry_run,
            path,
            json,
        } => restore(&id, dry_run, path.as_deref(), json),
        RollbackCommand::Prune {
            keep,
            older_than,
            dry_run,
            json,
        } => prune(keep, older_than, dry_run, json),
    }
}

fn mib(b: u64) -> String {
    if b < 1 << 20 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }
}

fn list(json: bool) -> CmdResult {
    let Some(store) = open(Lock::Shared)? else {
        if json {
            println!("[]");
        } else {
            println!("No rollback sessions.");
        }
        return Ok(0);
    };
    let mut rows = Vec::new();
    for id in session::ids(&store).into_iter().rev() {
        let Ok(info) = session::load_info(&store, &id) else {
            continue;
        };
        let counts = session::counts(&store, &info);
        rows.push((info, counts));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(i, c)| {
                json!({
                    "id": i.id, "started": i.started, "ended": i.ended,
                    "command": i.command, "profile": i.profile, "exit_code": i.exit_code,
                    "roots": i.roots, "changes": c,
                    "changed": c.as_ref().map(|c| c.total()),
                    "snapshot_entries": i.snapshot.entries, "snapshot_bytes": i.snapshot.bytes,
                    "new_objects": i.new_objects, "new_bytes": i.new_bytes,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    if rows.is_empty() {
        println!("No rollback sessions.");
        return Ok(0);
    }
    println!(
        "{:<23} {:<19} {:>7} {:>10} {:>10}  command",
        "id", "started (UTC)", "changes", "snapshot", "stored"
    );
    for (i, c) in rows {
        println!(
            "{:<23} {:<19} {:>7} {:>10} {:>10}  {}",
            i.id,
            utc(i.started),
            c.map(|c| c.total().to_string())
                .unwrap_or_else(|| "?".into()),
            mib(i.snapshot.bytes),
            mib(i.new_bytes),
            names::shown_str(&i.command.join(" "))
        );
    }
    Ok(0)
}

fn mode_text(s: &State) -> String {
    format!("{:04o}", s.mode)
}

fn change_line(c: &Change) -> String {
    let kind = c
        .after
        .as_ref()
        .or(c.before.as_ref())
        .map(|s| s.kind)
        .unwrap_or(Kind::File);
    let mut line = format!("{:<13} {}", c.op.name(), shown(&c.path));
    if let Some(from) = &c.from {
        line = format!("{:<13} {} -> {}", c.op.name(), shown(from), shown(&c.path));
    }
    if kind != Kind::File {
        line.push_str(&format!("  ({})", kind.name()));
    }
    if let (Some(b), Some(a)) = (&c.before, &c.after) {
        if b.kind != a.kind {
            line.push_str(&format!("  ({} -> {})", b.kind.name(), a.kind.name()));
        }
        if b.mode != a.mode {
            line.push_str(&format!("  mode {} -> {}", mode_text(b), mode_text(a)));
        }
    }
    if let Some(why) = c.after.as_ref().and_then(|a| a.unsaved.as_deref()) {
        line.push_str(&format!("  (content not saved: {})", names::shown_str(why)));
    }
    line
}

fn show(prefix: &str, diff: bool, json: bool) -> CmdResult {
    let store = need(open(Lock::Shared)?)?;
    let id = session::resolve(&store, prefix).map_err(fail)?;
    let info = session::load_info(&store, &id).map_err(fail)?;
    let changes = session::load_changes(&store, &id).map_err(fail)?;
    // Paths inside the roots the snapshot left out (other filesystems, `.gitignore`d).
    let left_out: Vec<std::path::PathBuf> = session::load_manifest(&store, &id, "before")
        .map(|m| {
            m.roots
                .iter()
                .flat_map(|r| r.skipped.iter().map(|p| r.root.join(&p.0)))
                .collect()
        })
        .unwrap_or_default();
    if json {
        let left: Vec<super::manifest::EncPath> = left_out
            .iter()
            .cloned()
            .map(super::manifest::EncPath)
            .collect();
        let v = json!({
            "id": info.id, "started": info.started, "ended": info.ended,
            "command": info.command, "profile": info.profile, "exit_code": info.exit_code,
            "workdir": info.workdir, "roots": info.roots, "skipped_roots": info.skipped_roots,
            "left_out": left,
            "snapshot": info.snapshot, "new_objects": info.new_objects,
            "new_bytes": info.new_bytes, "counts": session::counts(&store, &info),
            "changes": changes,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    println!("session   {}", info.id);
    println!("command   {}", names::shown_str(&info.command.join(" ")));
    println!("profile   {}", names::shown_str(&info.profile));
    println!(
        "started   {} UTC{}",
        utc(info.started),
        info.ended
            .map(|e| format!(", ended {} UTC", utc(e)))
            .unwrap_or_default()
    );
    if let Some(code) = info.exit_code {
        println!("exit      {code}");
    }
    for r in &info.roots {
        println!("root      {}", shown(&r.0));
    }
    for s in &info.skipped_roots {
        println!("not saved {} ({})", shown(&s.path.0), s.reason);
    }
    const LEFT_OUT_SHOWN: usize = 20;
    for p in left_out.iter().take(LEFT_OUT_SHOWN) {
        println!(
            "left out  {} (another filesystem, or ignored by .gitignore)",
            shown(p)
        );
    }
    if left_out.len() > LEFT_OUT_SHOWN {
        println!(
            "left out  ... and {} more (`--json` lists them all)",
            left_out.len() - LEFT_OUT_SHOWN
        );
    }
    println!(
        "snapshot  {} entries, {}; {} new object(s), {}",
        info.snapshot.entries,
        mib(info.snapshot.bytes),
        info.new_objects,
        mib(info.new_bytes)
    );
    let Some(changes) = changes else {
        println!("\nThe session's changes were not recorded (nono was killed, or is still running); restore still works.");
        return Ok(0);
    };
    println!("changes   {}\n", session::Counts::of(&changes));
    for c in &changes {
        println!("{}", change_line(c));
        if diff {
            print_diff(&store, c);
        }
    }
    Ok(0)
}

fn content(store: &Store, s: Option<&State>) -> Result<Option<Vec<u8>>, String> {
    match s {
        Some(State {
            kind: Kind::File,
            hash: Some(h),
            size,
            ..
        }) if *size <= MAX_DIFF_BYTES => store.read_object(h).map(Some),
        _ => Ok(None),
    }
}

fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

fn hash_line(s: Option<&State>) -> String {
    match s {
        None => "(none)".into(),
        Some(s) => match s.kind {
            Kind::File => format!(
                "{} bytes sha256:{}",
                s.size,
                s.hash.as_deref().unwrap_or("?")
            ),
            Kind::Symlink => format!(
                "symlink -> {}",
                s.target.as_deref().map(shown).unwrap_or_default()
            ),
            k => k.name().to_string(),
        },
    }
}

fn print_diff(store: &Store, c: &Change) {
    if c.op == Op::ModeChanged || c.op == Op::Renamed {
        return;
    }
    if c.after.as_ref().is_some_and(|a| a.unsaved.is_some()) {
        println!("    (nothing to diff: the content after the run could not be saved)");
        return;
    }
    let is_file_or_none = |s: Option<&State>| s.is_none_or(|s| s.kind == Kind::File);
    let (b, a) = (c.before.as_ref(), c.after.as_ref());
    if !(is_file_or_none(b) && is_file_or_none(a)) || (b.is_none() && a.is_none()) {
        println!("    {}\n    {}", hash_line(b), hash_line(a));
        return;
    }
    let (old, new) = match (content(store, b), content(store, a)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            println!("    (cannot diff: {e})");
            return;
        }
    };
    let too_big = (b.is_some() && old.is_none()) || (a.is_some() && new.is_none());
    let old = old.unwrap_or_default();
    let new = new.unwrap_or_default();
    if too_big || !is_text(&old) || !is_text(&new) {
        println!("    binary or large: {} -> {}", hash_line(b), hash_line(a));
        return;
    }
    let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
    let p = shown(&c.path);
    println!(
        "--- {}",
        if b.is_some() {
            format!("a{p}")
        } else {
            "/dev/null".into()
        }
    );
    println!(
        "+++ {}",
        if a.is_some() {
            format!("b{p}")
        } else {
            "/dev/null".into()
        }
    );
    let d = TextDiff::from_lines(old.as_ref(), new.as_ref());
    for hunk in d.unified_diff().context_radius(3).iter_hunks() {
        println!("{}", hunk.header());
        for ch in hunk.iter_changes() {
            let sign = match ch.tag() {
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
                ChangeTag::Equal => ' ',
            };
            let v = ch.value();
            println!("{sign}{}", shown_line(v.strip_suffix('\n').unwrap_or(v)));
            if ch.missing_newline() {
                println!("\\ No newline at end of file");
            }
        }
    }
}

/// `--path P` as a path relative to one of the session's roots.
fn locate(roots: &[PathBuf], p: &Path) -> Result<(PathBuf, PathBuf), String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let mut abs = PathBuf::new();
    for c in cwd.join(p).components() {
        match c {
            Component::RootDir => abs.push("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                abs.pop();
            }
            Component::Normal(n) => abs.push(n),
            Component::Prefix(_) => {}
        }
    }
    let find = |abs: &Path| {
        roots
            .iter()
            .find(|r| abs.starts_with(r))
            .map(|r| (r.clone(), abs.strip_prefix(r).unwrap_or(abs).to_path_buf()))
    };
    if let Some(hit) = find(&abs) {
        return Ok(hit);
    }
    // The path may be spelled through a symlink the user knows (not one inside a root,
    // which would already have matched): resolve its parent.
    if let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) {
        if let Ok(cp) = std::fs::canonicalize(parent) {
            if let Some(hit) = find(&cp.join(name)) {
                return Ok(hit);
            }
        }
    }
    Err(format!(
        "{} is not inside this session's snapshot (roots: {})",
        shown(p),
        roots
            .iter()
            .map(|r| shown(r))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn restore(prefix: &str, dry_run: bool, path: Option<&Path>, json: bool) -> CmdResult {
    let store = need(open(Lock::Shared)?)?;
    let id = session::resolve(&store, prefix).map_err(fail)?;
    let before = session::load_manifest(&store, &id, "before").map_err(fail)?;
    let roots: Vec<PathBuf> = before.roots.iter().map(|r| r.root.clone()).collect();
    let only = path
        .map(|p| locate(&roots, p))
        .transpose()
        .map_err(|e| fail(format!("nono rollback restore: {e}")))?;
    let mut actions: Vec<Action> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for rm in &before.roots {
        let sub = match &only {
            None => None,
            Some((root, rel)) if *root == rm.root => Some(rel.clone()),
            Some(_) => continue,
        };
        let mut r = Restorer::new(&store, rm, &before.options, sub, dry_run);
        if let Err(e) = r.run() {
            r.errors.push(e);
        }
        actions.append(&mut r.actions);
        errors.append(&mut r.errors);
        if !dry_run {
            if let Ok(f) = std::fs::File::open(&rm.root) {
                let _ = rustix::fs::syncfs(&f);
            }
        }
    }
    if json {
        let v = json!({"session": id, "dry_run": dry_run, "actions": actions, "errors": errors});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let verb = if dry_run { "would" } else { "did" };
        for a in &actions {
            println!("{verb} {:<32} {}", a.what, shown(&a.path));
        }
        for e in &errors {
            eprintln!("nono rollback restore: {e}");
        }
        let seen: HashSet<&Path> = actions.iter().map(|a| a.path.as_path()).collect();
        println!(
            "{}: {} path(s) {}",
            id,
            seen.len(),
            match (dry_run, seen.is_empty()) {
                (_, true) => "to change: the files already match the snapshot",
                (true, false) => "would change (dry run: nothing was changed)",
                (false, false) => "restored",
            }
        );
        if !errors.is_empty() {
            eprintln!(
                "nono rollback restore: {} problem(s), each above; everything else was {}. \
                 Restore is idempotent: run it again once they are fixed.",
                errors.len(),
                if dry_run { "checked" } else { "restored" }
            );
        }
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

fn prune(keep: usize, older_than_days: u64, dry_run: bool, json: bool) -> CmdResult {
    let root = store::default_root().map_err(|e| fail(format!("nono rollback: {e}")))?;
    if !root.join("sessions").is_dir() {
        println!("No rollback sessions.");
        return Ok(0);
    }
    let store = Store::try_open_exclusive(&root).map_err(fail)?;
    let ids = session::ids(&store);
    let cutoff = session::now().saturating_sub(older_than_days.saturating_mul(86400));
    let mut drop: Vec<String> = Vec::new();
    let n = ids.len();
    for (i, id) in ids.iter().enumerate() {
        let newest_rank = n - 1 - i; // 0 = newest
        let started = session::load_info(&store, id)
            .map(|s| s.started)
            .unwrap_or(0);
        if newest_rank >= keep || started < cutoff {
            drop.push(id.clone());
        }
    }
    let kept: Vec<&String> = ids.iter().filter(|i| !drop.contains(i)).collect();
    // Mark: every object a kept session refers to.
    let mut live: HashSet<String> = HashSet::new();
    for id in &kept {
        for which in ["before", "after"] {
            match session::load_manifest(&store, id, which) {
                Ok(m) => live.extend(
                    m.roots
                        .iter()
                        .flat_map(|r| r.entries.iter().filter_map(|e| e.hash.clone())),
                ),
                Err(_) if which == "after" => {}
                Err(e) => {
                    return Err(fail(format!(
                        "nono rollback prune: {e}; refusing to delete objects"
                    )))
                }
            }
        }
    }
    let mut dead = Vec::new();
    let mut freed = 0u64;
    for (h, p) in store.all_objects() {
        if !live.contains(&h) {
            freed += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            dead.push(p);
        }
    }
    if !dry_run {
        for id in &drop {
            let _ = std::fs::remove_dir_all(store.sessions_dir().join(id));
        }
        for p in &dead {
            let _ = std::fs::remove_file(p);
        }
        store.forget_sessions(&drop);
    }
    if json {
        let v = json!({"dry_run": dry_run, "sessions_removed": drop, "sessions_kept": kept.len(),
                       "objects_removed": dead.len(), "bytes_freed": freed});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        for id in &drop {
            println!("{verb} session {id}");
        }
        println!(
            "{verb} {} session(s) and {} object(s), {}; {} session(s) kept",
            drop.len(),
            dead.len(),
            mib(freed),
            kept.len()
        );
    }
    Ok(0)
}
