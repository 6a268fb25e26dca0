//! Taking a snapshot of a root: walk, check the limits, hash what changed, store it.
//!
//! Privilege: none; reads what the user can read. Kernel assumptions: `lstat` semantics
//! (symlinks are recorded, never followed), `O_NOFOLLOW`; after the run, those of
//! [`super::access`].
//!
//! - The walk never follows symlinks and stays on the root's filesystem: a mount point inside
//!   a root is recorded as skipped (restore leaves it alone), as `cp -ax` would.
//! - Entries whose *name* is in the exclusion list (`target`, `node_modules`… see
//!   `DEFAULT_ROLLBACK_EXCLUDES` in the policy crate) are neither recorded nor touched by
//!   restore. `.git` is kept on purpose: `git reset --hard` or a rewritten index is exactly
//!   what rollback is for, and its objects deduplicate across sessions.
//! - With `gitignore`, `.gitignore` files inside the root are honoured; what they ignore is
//!   recorded as skipped.
//! - Limits ([`Limits`]) are checked during the walk, before anything is hashed, so a tree too
//!   large is reported before the command starts — never silently cut.
//! - A regular file whose (device, inode, size, mtime, ctime) equal the previous snapshot of
//!   the same path reuses its hash without being read; the others are hashed and stored in
//!   parallel (rayon).
//! - Before the run ([`Phase::Before`]), a file or directory nono cannot read could not be
//!   restored, so the snapshot fails and the run does not start. After the run
//!   ([`Phase::After`]) the command has already run and its change record must not be lost
//!   to one entry: a file or directory of the user's own that the command made unreadable
//!   (`chmod 000`) is read by loosening its owner bits for the moment (see
//!   [`super::access`]; its mode is put back), and what still cannot be read is recorded with
//!   the reason instead of its content ([`Entry::unsaved`]).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::IsTerminal;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustix::fs::{FileType, OFlags};

use super::access::{Loosened, Pinned};
use super::manifest::{EncPath, Entry, Kind, RootManifest};
use super::names::shown;
use super::store::Store;

/// Default for `NONO_ROLLBACK_MAX_FILES`: entries (files, directories, links) per run.
pub const DEFAULT_MAX_FILES: u64 = 250_000;
/// Default for `NONO_ROLLBACK_MAX_BYTES`: total size of the regular files per run (8 GiB).
pub const DEFAULT_MAX_BYTES: u64 = 8 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_files: u64,
    pub max_bytes: u64,
}

impl Limits {
    /// The limits from `NONO_ROLLBACK_MAX_FILES` / `NONO_ROLLBACK_MAX_BYTES` (bytes, or with a
    /// `K`/`M`/`G` suffix), else the defaults.
    pub fn from_env() -> Result<Limits, String> {
        let get = |name: &str, default: u64| -> Result<u64, String> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(v) => parse_size(&v).ok_or_else(|| {
                    format!("{name}=`{v}`: expected a number, optionally with K, M or G")
                }),
            }
        };
        Ok(Limits {
            max_files: get("NONO_ROLLBACK_MAX_FILES", DEFAULT_MAX_FILES)?,
            max_bytes: get("NONO_ROLLBACK_MAX_BYTES", DEFAULT_MAX_BYTES)?,
        })
    }
}

pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1u64 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Which side of the command's run a snapshot is taken on (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    /// Before the command starts: what cannot be read makes the snapshot fail.
    #[default]
    Before,
    /// After the command exits: regain access to the user's own entries, else record the
    /// entry as not saved; never lose the record.
    After,
}

#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    pub exclude: super::names::Exclusions,
    pub gitignore: bool,
    /// Relative paths not to walk (the skipped list of an earlier walk of the same root).
    pub skip: HashSet<PathBuf>,
    pub phase: Phase,
}

#[derive(Debug)]
pub enum SnapshotError {
    TooLarge {
        root: PathBuf,
        files: u64,
        bytes: u64,
        limits: Limits,
    },
    Io(String),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::TooLarge {
                root,
                files,
                bytes,
                limits,
            } => write!(
                f,
                "the writable tree {} is too large to snapshot: more than {} ({} entries, \
                 {} MiB seen before stopping; limits {} entries, {} MiB, set with \
                 NONO_ROLLBACK_MAX_FILES / NONO_ROLLBACK_MAX_BYTES, or exclude build output \
                 with `rollback exclude NAME` in the profile)",
                shown(root),
                if *files > limits.max_files {
                    "the entry limit"
                } else {
                    "the size limit"
                },
                files,
                bytes >> 20,
                limits.max_files,
                limits.max_bytes >> 20
            ),
            SnapshotError::Io(m) => f.write_str(m),
        }
    }
}

/// The result of walking a root: entries with metadata, not yet hashed.
#[derive(Debug, Default)]
pub struct Walked {
    pub entries: Vec<Entry>,
    pub skipped: Vec<PathBuf>,
    pub bytes: u64,
    pub phase: Phase,
    /// Directories made readable for the walk; they stay so until their files are read by
    /// [`store_files`], and get their mode back when this is dropped.
    pub loosened: Vec<Loosened>,
}

/// Does the user running nono own `m` but lack the owner permission `bits` on it? Only then
/// is regaining access both needed and nono's to do (root reads and searches everything).
fn owner_lacks(m: &fs::Metadata, bits: u32) -> bool {
    let euid = rustix::process::geteuid().as_raw();
    euid != 0 && m.uid() == euid && m.mode() & bits != bits
}

/// After the run: open a regular file of the user's own that the command made unreadable, by
/// giving its owner read permission just long enough to open it.
fn open_regained(path: &Path) -> std::io::Result<File> {
    let p = Pinned::path(path, FileType::RegularFile)?;
    p.chmod(p.mode() | 0o400)?;
    let fd = p.reopen(OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY);
    let put_back = p.chmod(p.mode());
    let fd = fd?;
    put_back?;
    Ok(File::from(fd))
}

fn entry_of(rel: PathBuf, m: &fs::Metadata) -> Entry {
    let ft = m.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Special
    };
    Entry {
        path: rel,
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if kind == Kind::File { m.size() } else { 0 },
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        ctime: m.ctime(),
        ctime_nsec: m.ctime_nsec(),
        dev: m.dev(),
        ino: m.ino(),
        hash: None,
        target: None,
        unsaved: None,
    }
}

struct Walker<'a> {
    root: &'a Path,
    dev: u64,
    opts: &'a WalkOptions,
    limits: Option<Limits>,
    out: Walked,
    ignores: Vec<ignore::gitignore::Gitignore>,
}

impl Walker<'_> {
    fn over(&self) -> bool {
        self.limits.is_some_and(|l| {
            self.out.entries.len() as u64 > l.max_files || self.out.bytes > l.max_bytes
        })
    }

    fn too_large(&self) -> SnapshotError {
        SnapshotError::TooLarge {
            root: self.root.to_path_buf(),
            files: self.out.entries.len() as u64,
            bytes: self.out.bytes,
            limits: self.limits.unwrap_or(Limits {
                max_files: 0,
                max_bytes: 0,
            }),
        }
    }

    fn ignored(&self, abs: &Path, is_dir: bool) -> bool {
        for g in self.ignores.iter().rev() {
            match g.matched(abs, is_dir) {
                ignore::Match::Ignore(_) => return true,
                ignore::Match::Whitelist(_) => return false,
                ignore::Match::None => {}
            }
        }
        false
    }

    /// Walk the directory whose entry is `self.out.entries[at]`.
    fn dir(&mut self, abs: &Path, rel: &Path, at: usize) -> Result<(), SnapshotError> {
        let after = self.opts.phase == Phase::After;
        if after {
            let m = fs::symlink_metadata(abs)
                .map_err(|e| SnapshotError::Io(format!("cannot stat {}: {e}", shown(abs))))?;
            if owner_lacks(&m, 0o500) {
                match Pinned::path(abs, FileType::Directory).and_then(|p| Loosened::new(p, 0o500)) {
                    Ok(l) => self.out.loosened.push(l),
                    Err(e) => {
                        self.out.entries[at].unsaved =
                            Some(format!("cannot regain access to list it: {e}"));
                        return Ok(());
                    }
                }
            }
        }
        let listed = fs::read_dir(abs).and_then(|rd| rd.collect::<Result<Vec<_>, _>>());
        let mut children: Vec<fs::DirEntry> = match listed {
            Ok(c) => c,
            Err(e) if after => {
                self.out.entries[at].unsaved = Some(format!("cannot list it: {e}"));
                return Ok(());
            }
            Err(e) => {
                return Err(SnapshotError::Io(format!(
                    "cannot list {}: {e}",
                    shown(abs)
                )))
            }
        };
        children.sort_by_key(|e| e.file_name());
        let pushed = if self.opts.gitignore {
            let gi = abs.join(".gitignore");
            if gi.is_file() {
                let mut b = ignore::gitignore::GitignoreBuilder::new(abs);
                if let Some(e) = b.add(&gi) {
                    tracing::warn!("rollback: {}: {e}", shown(&gi));
                }
                match b.build() {
                    Ok(g) => {
                        self.ignores.push(g);
                        true
                    }
                    Err(e) => {
                        tracing::warn!("rollback: {}: {e}", shown(&gi));
                        false
                    }
                }
            } else {
                false
            }
        } else {
            false
        };
        for c in children {
            let name = c.file_name();
            if self.opts.exclude.matches(&name) {
                continue;
            }
            let crel = rel.join(&name);
            if self.opts.skip.contains(&crel) {
                continue;
            }
            let cabs = abs.join(&name);
            // DirEntry::metadata is fstatat(AT_SYMLINK_NOFOLLOW).
            let m = c
                .metadata()
                .map_err(|e| SnapshotError::Io(format!("cannot stat {}: {e}", shown(&cabs))))?;
            if m.dev() != self.dev {
                // Said without -v before the run: restore will not cover what is mounted there.
                if self.opts.phase == Phase::Before {
                    tracing::warn!(
                        "rollback: {} is another filesystem: not snapshotted, and restore \
                         leaves it alone",
                        shown(&cabs)
                    );
                }
                self.out.skipped.push(crel);
                continue;
            }
            if self.opts.gitignore && self.ignored(&cabs, m.is_dir()) {
                self.out.skipped.push(crel);
                continue;
            }
            let mut e = entry_of(crel.clone(), &m);
            if e.kind == Kind::Symlink {
                e.target = Some(fs::read_link(&cabs).map_err(|er| {
                    SnapshotError::Io(format!("cannot read link {}: {er}", shown(&cabs)))
                })?);
            }
            self.out.bytes += e.size;
            let is_dir = e.kind == Kind::Dir;
            self.out.entries.push(e);
            if self.over() {
                return Err(self.too_large());
            }
            if is_dir {
                self.dir(&cabs, &crel, self.out.entries.len() - 1)?;
            }
        }
        if pushed {
            self.ignores.pop();
        }
        Ok(())
    }
}

/// Walk a root (a directory or a single file), without hashing.
pub fn walk(
    root: &Path,
    opts: &WalkOptions,
    limits: Option<Limits>,
) -> Result<Walked, SnapshotError> {
    let m = fs::symlink_metadata(root)
        .map_err(|e| SnapshotError::Io(format!("cannot stat {}: {e}", shown(root))))?;
    let mut w = Walker {
        root,
        dev: m.dev(),
        opts,
        limits,
        out: Walked {
            phase: opts.phase,
            ..Walked::default()
        },
        ignores: Vec::new(),
    };
    let mut e = entry_of(PathBuf::new(), &m);
    if e.kind == Kind::Symlink {
        e.target = fs::read_link(root).ok();
    }
    w.out.bytes += e.size;
    let is_dir = e.kind == Kind::Dir;
    w.out.entries.push(e);
    if is_dir {
        w.dir(root, Path::new(""), 0)?;
    }
    Ok(w.out)
}

/// Open a file for snapshotting without following a symlink or blocking on a FIFO.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Progress on stderr while hashing, when stderr is a terminal and the work is long.
struct Progress {
    done_files: Arc<AtomicU64>,
    done_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(files: u64, bytes: u64) -> Progress {
        let done_files = Arc::new(AtomicU64::new(0));
        let done_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread =
            (std::io::stderr().is_terminal() && (files > 2000 || bytes > 64 << 20)).then(|| {
                let (f, b, s) = (done_files.clone(), done_bytes.clone(), stop.clone());
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let mut shown_once = false;
                    while !s.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        if started.elapsed() < Duration::from_millis(500) {
                            continue;
                        }
                        shown_once = true;
                        eprint!(
                            "\r\x1b[Knono: rollback snapshot: {}/{files} files, {}/{} MiB",
                            f.load(Ordering::Relaxed),
                            b.load(Ordering::Relaxed) >> 20,
                            bytes >> 20
                        );
                    }
                    if shown_once {
                        eprint!("\r\x1b[K");
                    }
                })
            });
        Progress {
            done_files,
            done_bytes,
            stop,
            thread,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Figures of one snapshot.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
    /// Files read and hashed (the others matched the previous snapshot's metadata).
    pub hashed_files: u64,
    pub hashed_bytes: u64,
}

/// Hash and store every regular file of a walked root; files whose metadata matches `prev`
/// reuse its hash without being read.
pub fn store_files(
    store: &Store,
    root: &Path,
    walked: Walked,
    prev: Option<&RootManifest>,
    content_budget: Option<u64>,
) -> Result<(RootManifest, Stats), SnapshotError> {
    let mut entries = walked.entries;
    let phase = walked.phase;
    let prev_map: HashMap<&Path, &Entry> = prev.map(|p| p.by_path()).unwrap_or_default();
    let mut todo: Vec<&mut Entry> = Vec::new();
    let mut stats = Stats {
        entries: entries.len() as u64,
        bytes: walked.bytes,
        ..Stats::default()
    };
    for e in entries.iter_mut().filter(|e| e.kind == Kind::File) {
        if let Some(p) = prev_map.get(e.path.as_path()) {
            if let Some(h) = &p.hash {
                if p.same_metadata(e) && store.has(h) {
                    e.hash = Some(h.clone());
                    continue;
                }
            }
        }
        todo.push(e);
    }
    // After the run, content is stored only for `show --diff` (restore needs what was there
    // before, not what the command wrote), so it is capped: a command that writes more than
    // the budget cannot fill the store or hold up nono's exit. Past it, entries are recorded
    // with their metadata and no content (in walk order, each file that still fits stored).
    if let Some(budget) = content_budget {
        let mut used = 0u64;
        todo.retain_mut(|e| {
            // A file that does not fit is skipped; smaller ones after it may still fit.
            if used.saturating_add(e.size) <= budget {
                used += e.size;
                return true;
            }
            e.unsaved = Some(format!(
                "not stored: the command wrote more than the {budget}-byte after-run limit \
                 (NONO_ROLLBACK_MAX_BYTES)"
            ));
            false
        });
    }
    stats.hashed_files = todo.len() as u64;
    stats.hashed_bytes = todo.iter().map(|e| e.size).sum();
    let progress = Progress::start(stats.hashed_files, stats.hashed_bytes);
    todo.par_iter_mut().try_for_each(|e| {
        let abs = if e.path.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(&e.path)
        };
        let opened = match open_nofollow(&abs) {
            Err(er)
                if phase == Phase::After && er.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                open_regained(&abs)
                    .map_err(|again| format!("{er}; cannot regain access to read it: {again}"))
            }
            r => r.map_err(|er| er.to_string()),
        };
        let mut f = match opened {
            Ok(f) => f,
            Err(why) if phase == Phase::After => {
                e.unsaved = Some(format!("cannot read it: {why}"));
                return Ok(());
            }
            Err(why) => {
                return Err(SnapshotError::Io(format!(
                    "cannot read {}: {why} (rollback could not restore it, so the run does not \
                     start)",
                    shown(&abs)
                )))
            }
        };
        let (hash, len) = store
            .put_file(&mut f, e.size)
            .map_err(|m| SnapshotError::Io(format!("{}: {m}", shown(&abs))))?;
        if len != e.size {
            // Changed while being read: keep what was stored, and make sure the next
            // snapshot does not trust this metadata.
            e.size = len;
            e.ctime = 0;
            e.ctime_nsec = -1;
        }
        e.hash = Some(hash);
        progress.done_files.fetch_add(1, Ordering::Relaxed);
        progress.done_bytes.fetch_add(len, Ordering::Relaxed);
        Ok::<(), SnapshotError>(())
    })?;
    drop(progress);
    // Put the modes back, deepest first (each through its own fd, so the order is tidiness).
    for l in walked.loosened.into_iter().rev() {
        drop(l);
    }
    Ok((
        RootManifest {
            root: root.to_path_buf(),
            entries,
            skipped: walked.skipped.into_iter().map(EncPath).collect(),
        },
        stats,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollback::store::Lock;

    #[test]
    fn unchanged_files_are_not_read_again() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/one"), "1").unwrap();
        fs::write(tree.join("a/b/two"), "2").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();
        let store = Store::open(&d.path().join("store"), Lock::Shared).unwrap();
        let opts = WalkOptions::default();
        let w = walk(&tree, &opts, None).unwrap();
        let (m1, s1) = store_files(&store, &tree, w, None, None).unwrap();
        assert_eq!(s1.hashed_files, 2);
        assert_eq!(m1.entries.len(), 6);
        let link = m1.entries.iter().find(|e| e.kind == Kind::Symlink).unwrap();
        assert_eq!(link.target.as_deref(), Some(Path::new("/etc/passwd")));
        let w = walk(&tree, &opts, None).unwrap();
        let (m2, s2) = store_files(&store, &tree, w, Some(&m1), None).unwrap();
        assert_eq!(s2.hashed_files, 0);
        assert_eq!(m1, m2);
        fs::write(tree.join("a/one"), "changed").unwrap();
        let w = walk(&tree, &opts, None).unwrap();
        let (_, s3) = store_files(&store, &tree, w, Some(&m2), None).unwrap();
        assert_eq!(s3.hashed_files, 1);
    }

    #[test]
    fn exclusions_gitignore_and_limits() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        for f in [
            "src/main.rs",
            "target/debug/x",
            "out.log",
            "keep/out.log",
            "sub/n/.keep",
        ] {
            let p = t.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "x").unwrap();
        }
        fs::write(t.join(".gitignore"), "*.log\n!keep/out.log\n").unwrap();
        let mut opts = WalkOptions {
            exclude: super::super::names::Exclusions::new(&["target"]),
            gitignore: true,
            ..Default::default()
        };
        let w = walk(t, &opts, None).unwrap();
        let paths: Vec<_> = w.entries.iter().map(|e| e.path.clone()).collect();
        assert!(paths.contains(&PathBuf::from("src/main.rs")));
        assert!(paths.contains(&PathBuf::from("keep/out.log")));
        assert!(!paths.iter().any(|p| p.starts_with("target")));
        assert!(!paths.contains(&PathBuf::from("out.log")));
        assert_eq!(w.skipped, vec![PathBuf::from("out.log")]);
        opts.gitignore = false;
        let err = walk(
            t,
            &opts,
            Some(Limits {
                max_files: 3,
                max_bytes: 1 << 30,
            }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("entry limit"), "{err}");
        let err = walk(
            t,
            &opts,
            Some(Limits {
                max_files: 100,
                max_bytes: 2,
            }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("size limit"), "{err}");
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("x"), None);
    }
}
