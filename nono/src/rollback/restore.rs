//! Returning a root to its snapshot.
//!
//! Privilege: none for the user's own files; run as root, nono also restores owners.
//! Kernel assumptions: `openat(O_NOFOLLOW|O_DIRECTORY)`, `renameat`, `unlinkat`,
//! `fstatat(AT_SYMLINK_NOFOLLOW)`, and for a directory the agent locked its owner out of,
//! `O_PATH` and procfs (see [`super::access`]) — every operation is relative to a directory
//! fd that was opened without following a symlink, so nothing the agent planted is ever
//! followed:
//! - a directory replaced by a symlink (to `~`, `/etc`…) is seen as a symlink, removed and
//!   recreated as a directory; restore never descends through it;
//! - a file replaced by a symlink (to `~/.bashrc`) is restored by writing a temporary file in
//!   the same directory and renaming it over the link, which replaces the link itself: the
//!   link's target is never opened.
//!
//! Each file is restored atomically (temporary file `.nono-restore.<pid>.<n>` created with
//! `O_EXCL|O_NOFOLLOW`, content checked against its SHA-256 while copied, owner, mode and
//! mtime set on the fd, then `renameat` over the name). Restore is idempotent: it compares
//! what is there with the snapshot and changes only what differs, so a restore interrupted at
//! any point (even `kill -9`) is completed by running it again; leftover temporary files are
//! not in the snapshot and are removed like anything else the session created. There is no
//! journal to get out of step with the tree.
//!
//! setuid/setgid: a bit is set only if the snapshot had it, and only when the restored file
//! has the snapshot's owner (or group): run unprivileged, a restored file belongs to the user
//! running nono, so a setuid bit recorded for someone else's file is dropped, not granted to
//! the restorer.
//!
//! Modes the agent took away: a directory the restore must enter, list, empty or write in is
//! given its owner's read, write and search bits for the moment, and the snapshot's mode once
//! its entries are done (a directory the session created is simply removed). When a plain
//! open is refused (`chmod 000`), access is regained as [`super::access`] describes: the
//! directory is opened `O_PATH|O_NOFOLLOW` relative to its parent's fd, checked to be a
//! directory owned by the user running nono, and chmod'ed and reopened through
//! `/proc/self/fd`, so a symlink is never followed. `--dry-run` changes no mode: it reports a
//! directory it could only see into that way, without comparing what is inside.
//!
//! Failures are per entry: each is recorded, the rest of the tree is still restored, and the
//! command reports every failure and exits non-zero; running it again retries only what
//! still differs.
//!
//! Left alone: names in the exclusion list and paths the snapshot skipped (`.gitignore`d,
//! other filesystems). Special files (FIFOs, sockets, devices) are never created.

// `struct stat` field types differ between architectures; the casts are no-ops only on some.
#![allow(clippy::unnecessary_cast)]

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use sha2::{Digest, Sha256};

use super::access::Pinned;
use super::manifest::{Entry, Kind, Options, RootManifest};
use super::names::shown;
use super::store::Store;

/// One thing restore did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Action {
    pub what: &'static str,
    #[serde(with = "super::names::serde_path")]
    pub path: PathBuf,
}

type Res<T> = Result<T, String>;

fn errno(what: &str, path: &Path, e: rustix::io::Errno) -> String {
    format!("{what} {}: {}", shown(path), std::io::Error::from(e))
}

fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> Option<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()
}

fn kind_of(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode as _)
}

fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Open a directory by absolute path, refusing a symlink at any component.
pub fn open_dir_nofollow(path: &Path) -> Res<OwnedFd> {
    let mut fd = rustix::fs::openat(
        rustix::fs::CWD,
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno("cannot open", Path::new("/"), e))?;
    let mut sofar = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir => continue,
            Component::Normal(n) => {
                sofar.push(n);
                fd = rustix::fs::openat(
                    &fd,
                    n,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| {
                    errno(
                        "refusing to restore: cannot open (without following symlinks) the directory",
                        &sofar,
                        e,
                    )
                })?;
            }
            _ => {
                return Err(format!(
                    "restore: `{}` is not a canonical path",
                    shown(path)
                ))
            }
        }
    }
    Ok(fd)
}

fn list(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

fn mode_of(st: &Stat) -> u32 {
    st.st_mode as u32 & 0o7777
}

/// Open the directory `name` in `dir` to work inside it, with its owner's read, write and
/// search bits added; returns it with the mode found. A directory its owner may not open
/// (`chmod 000`) is regained through [`Pinned`], which refuses a symlink and anyone else's
/// directory.
fn open_dir_for_work(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Res<(OwnedFd, u32)> {
    match open_dir(dir, name) {
        Ok(fd) => {
            let found = rustix::fs::fstat(&fd)
                .map(|st| mode_of(&st))
                .map_err(|e| errno("cannot stat", path, e))?;
            if found & 0o700 != 0o700 {
                // Someone else's directory cannot be changed; working inside it will say so.
                let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode((found | 0o700) as _));
            }
            Ok((fd, found))
        }
        Err(rustix::io::Errno::ACCESS) => {
            let regain = || -> std::io::Result<(OwnedFd, u32)> {
                let p = Pinned::at(dir, name, FileType::Directory)?;
                p.chmod(p.mode() | 0o700)?;
                Ok((p.reopen(OFlags::RDONLY | OFlags::DIRECTORY)?, p.mode()))
            };
            regain().map_err(|e| {
                format!(
                    "cannot open {}: permission denied, and cannot regain access: {e}",
                    shown(path)
                )
            })
        }
        Err(e) => Err(errno("cannot open", path, e)),
    }
}

/// Remove `name` in `dir` and, for a directory, everything below it; never follows a link.
/// A failure is added to `errors` and the rest is still removed; returns whether `name` is
/// gone.
fn remove_any(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, errors: &mut Vec<String>) -> bool {
    let Some(st) = stat_at(dir, name) else {
        return true;
    };
    let r = if kind_of(&st) == FileType::Directory {
        // A directory the agent made unreadable or read-only must still be emptied.
        let sub = match open_dir_for_work(dir, name, path) {
            Ok((sub, _)) => sub,
            Err(m) => {
                errors.push(m);
                return false;
            }
        };
        let names = match list(sub.as_fd()) {
            Ok(n) => n,
            Err(e) => {
                errors.push(errno("cannot list", path, e));
                return false;
            }
        };
        let failed_before = errors.len();
        for n in names {
            remove_any(sub.as_fd(), &n, &path.join(&n), errors);
        }
        if errors.len() > failed_before {
            // Not empty: each failure below is reported; "not empty" would add nothing.
            return false;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
    };
    match r {
        Ok(()) => true,
        Err(e) => {
            errors.push(errno("cannot remove", path, e));
            false
        }
    }
}

pub struct Restorer<'a> {
    store: &'a Store,
    rm: &'a RootManifest,
    children: HashMap<&'a Path, Vec<&'a Entry>>,
    exclude: super::names::Exclusions,
    skipped: HashSet<&'a Path>,
    /// Restore only this path (relative to the root) and what is below it.
    only: Option<PathBuf>,
    dry_run: bool,
    euid: u32,
    egid: u32,
    pub actions: Vec<Action>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Restore this entry and everything below it.
    All,
    /// On the way to `only`: make sure it is a directory, restore only the next component.
    Towards,
    Outside,
}

impl<'a> Restorer<'a> {
    pub fn new(
        store: &'a Store,
        rm: &'a RootManifest,
        options: &Options,
        only: Option<PathBuf>,
        dry_run: bool,
    ) -> Restorer<'a> {
        let mut children: HashMap<&Path, Vec<&Entry>> = HashMap::new();
        for e in &rm.entries {
            if let Some(parent) = e.path.parent() {
                children.entry(parent).or_default().push(e);
            }
        }
        Restorer {
            store,
            rm,
            children,
            exclude: super::names::Exclusions::new(&options.exclude),
            skipped: rm.skipped.iter().map(|p| p.0.as_path()).collect(),
            only,
            dry_run,
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
            actions: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn abs(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.rm.root.clone()
        } else {
            self.rm.root.join(rel)
        }
    }

    fn act(&mut self, what: &'static str, rel: &Path) {
        let path = self.abs(rel);
        self.actions.push(Action { what, path });
    }

    fn scope(&self, rel: &Path) -> Scope {
        match &self.only {
            None => Scope::All,
            Some(o) if rel.starts_with(o) => Scope::All,
            Some(o) if o.starts_with(rel) => Scope::Towards,
            Some(_) => Scope::Outside,
        }
    }

    fn is_root(&self) -> bool {
        self.euid == 0
    }

    /// The mode to give a restored entry: the snapshot's, less setuid/setgid that would not
    /// belong to the snapshot's owner/group (see the module doc).
    pub fn safe_mode(&self, e: &Entry) -> u32 {
        let mut m = e.mode & 0o7777;
        if !self.is_root() {
            if e.uid != self.euid {
                m &= !0o4000;
            }
            if e.gid != self.egid {
                m &= !0o2000;
            }
        }
        m
    }

    /// Restore the whole root (or `only` within it).
    pub fn run(&mut self) -> Res<()> {
        let root = self.rm.root.clone();
        let (Some(parent), Some(name)) = (root.parent(), root.file_name()) else {
            return Err(format!("restore: root {} has no parent", shown(&root)));
        };
        let Some(top) = self
            .rm
            .entries
            .first()
            .filter(|e| e.path.as_os_str().is_empty())
        else {
            return Err("restore: the manifest has no root entry".into());
        };
        let pfd = open_dir_nofollow(parent)?;
        self.entry(Some(pfd.as_fd()), name, top);
        Ok(())
    }

    fn entry(&mut self, dir: Option<BorrowedFd<'_>>, name: &OsStr, e: &'a Entry) {
        let scope = self.scope(&e.path);
        if scope == Scope::Outside {
            return;
        }
        let r = match e.kind {
            Kind::Dir => self.dir(dir, name, e, scope),
            Kind::File if scope == Scope::All => self.file(dir, name, e),
            Kind::Symlink if scope == Scope::All => self.symlink(dir, name, e),
            Kind::Special if scope == Scope::All => {
                if dir.and_then(|d| stat_at(d, name)).is_none() {
                    self.errors.push(format!(
                        "{}: a special file (FIFO, socket or device) was deleted; nono does \
                         not recreate those",
                        shown(&self.abs(&e.path))
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(m) = r {
            self.errors.push(m);
        }
    }

    fn dir(
        &mut self,
        dir: Option<BorrowedFd<'_>>,
        name: &OsStr,
        e: &'a Entry,
        scope: Scope,
    ) -> Res<()> {
        let path = self.abs(&e.path);
        let cur = dir.and_then(|d| stat_at(d, name));
        // The directory, and its mode as found (before any change below); `None` when it had
        // to be created.
        let opened: Option<(OwnedFd, Option<u32>)> = match (dir, &cur) {
            (Some(d), Some(st)) if kind_of(st) == FileType::Directory && self.dry_run => {
                let opened = open_dir(d, name);
                let owner_locked_out =
                    !self.is_root() && st.st_uid == self.euid && mode_of(st) & 0o500 != 0o500;
                match opened {
                    Ok(fd) if !owner_locked_out => Some((fd, Some(mode_of(st)))),
                    Ok(_) | Err(rustix::io::Errno::ACCESS) => {
                        // Seeing inside takes a mode change, which a dry run does not make.
                        self.act("regain access to look inside", &e.path);
                        if scope == Scope::All && mode_of(st) != self.safe_mode(e) {
                            self.act("restore mode", &e.path);
                        }
                        return Ok(());
                    }
                    Err(er) => return Err(errno("cannot open", &path, er)),
                }
            }
            (Some(d), Some(st)) if kind_of(st) == FileType::Directory => {
                let (fd, found) = open_dir_for_work(d, name, &path)?;
                Some((fd, Some(found)))
            }
            _ => {
                if cur.is_some() {
                    self.act("remove what replaced a directory", &e.path);
                } else {
                    self.act("recreate directory", &e.path);
                }
                match dir {
                    Some(d) if !self.dry_run => {
                        if cur.is_some() && !remove_any(d, name, &path, &mut self.errors) {
                            return Err(format!(
                                "{}: directory not restored: what replaced it could not be \
                                 removed",
                                shown(&path)
                            ));
                        }
                        rustix::fs::mkdirat(d, name, Mode::from_raw_mode(0o700))
                            .map_err(|er| errno("cannot create", &path, er))?;
                        Some((
                            open_dir(d, name).map_err(|er| errno("cannot open", &path, er))?,
                            None,
                        ))
                    }
                    _ => None,
                }
            }
        };
        let found_mode = opened.as_ref().and_then(|(_, m)| *m);
        let sub = opened.map(|(fd, _)| fd);
        let want: Vec<&'a Entry> = self
            .children
            .get(e.path.as_path())
            .cloned()
            .unwrap_or_default();
        let next = match (&self.only, scope) {
            (Some(o), Scope::Towards) => o
                .strip_prefix(&e.path)
                .ok()
                .and_then(|r| r.components().next())
                .map(|c| c.as_os_str().to_os_string()),
            _ => None,
        };
        if let Some(sub) = &sub {
            // Whatever is here and not in the snapshot was created by the session.
            let names = list(sub.as_fd()).unwrap_or_else(|er| {
                self.errors.push(errno("cannot list", &path, er));
                Vec::new()
            });
            for n in names {
                if scope == Scope::Towards && next.as_deref() != Some(n.as_os_str()) {
                    continue;
                }
                let rel = e.path.join(&n);
                if self.exclude.matches(&n)
                    || self.skipped.contains(rel.as_path())
                    || want
                        .iter()
                        .any(|w| w.path.file_name() == Some(n.as_os_str()))
                {
                    continue;
                }
                self.act("delete", &rel);
                if !self.dry_run {
                    let abs = self.abs(&rel);
                    remove_any(sub.as_fd(), &n, &abs, &mut self.errors);
                }
            }
        }
        for c in want {
            let Some(cname) = c.path.file_name() else {
                continue;
            };
            self.entry(sub.as_ref().map(|s| s.as_fd()), cname, c);
        }
        match (&sub, scope, found_mode) {
            (Some(sub), Scope::All, _) => self.fix_dir_metadata(sub.as_fd(), e, found_mode)?,
            // Only passed through: it keeps the mode it had, loosened or not.
            (Some(sub), _, Some(m)) if !self.dry_run && m & 0o700 != 0o700 => {
                rustix::fs::fchmod(sub, Mode::from_raw_mode(m as _))
                    .map_err(|er| errno("cannot put back the mode of", &path, er))?
            }
            _ => {}
        }
        Ok(())
    }

    fn fix_dir_metadata(
        &mut self,
        fd: BorrowedFd<'_>,
        e: &Entry,
        found_mode: Option<u32>,
    ) -> Res<()> {
        let path = self.abs(&e.path);
        let st = rustix::fs::fstat(fd).map_err(|er| errno("cannot stat", &path, er))?;
        let mode = self.safe_mode(e);
        let owner_differs = self.is_root() && (st.st_uid != e.uid || st.st_gid != e.gid);
        if owner_differs {
            self.act("restore owner", &e.path);
            if !self.dry_run {
                rustix::fs::fchown(
                    fd,
                    Some(rustix::fs::Uid::from_raw(e.uid)),
                    Some(rustix::fs::Gid::from_raw(e.gid)),
                )
                .map_err(|er| errno("cannot chown", &path, er))?;
            }
        }
        if owner_differs || (st.st_mode as u32 & 0o7777) != mode {
            if found_mode.unwrap_or(st.st_mode as u32 & 0o7777) != mode {
                self.act("restore mode", &e.path);
            }
            if !self.dry_run {
                rustix::fs::fchmod(fd, Mode::from_raw_mode(mode as _))
                    .map_err(|er| errno("cannot chmod", &path, er))?;
            }
        }
        if !self.dry_run
            && (st.st_mtime as i64 != e.mtime || st.st_mtime_nsec as i64 != e.mtime_nsec)
        {
            set_mtime(fd, e).map_err(|er| errno("cannot set the times of", &path, er))?;
        }
        Ok(())
    }

    /// Is the regular file at `name` already what the snapshot recorded?
    fn file_matches(&self, d: BorrowedFd<'_>, name: &OsStr, st: &Stat, e: &Entry) -> bool {
        if kind_of(st) != FileType::RegularFile
            || st.st_size as u64 != e.size
            || (st.st_mode as u32 & 0o7777) != self.safe_mode(e)
            || (self.is_root() && (st.st_uid != e.uid || st.st_gid != e.gid))
            || st.st_mtime as i64 != e.mtime
            || st.st_mtime_nsec as i64 != e.mtime_nsec
        {
            return false;
        }
        if st.st_dev as u64 == e.dev
            && st.st_ino as u64 == e.ino
            && st.st_ctime as i64 == e.ctime
            && st.st_ctime_nsec as i64 == e.ctime_nsec
        {
            return true;
        }
        let Ok(fd) = rustix::fs::openat(
            d,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return false;
        };
        let mut f = std::fs::File::from(fd);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(_) => return false,
            }
        }
        e.hash.as_deref() == Some(hex::encode(h.finalize()).as_str())
    }

    fn tmp_name() -> OsString {
        static N: AtomicU64 = AtomicU64::new(0);
        OsString::from(format!(
            ".nono-restore.{}.{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn file(&mut self, dir: Option<BorrowedFd<'_>>, name: &OsStr, e: &Entry) -> Res<()> {
        let path = self.abs(&e.path);
        let Some(d) = dir else {
            self.act("recreate file", &e.path);
            return Ok(());
        };
        let cur = stat_at(d, name);
        if let Some(st) = &cur {
            if self.file_matches(d, name, st, e) {
                return Ok(());
            }
        }
        self.act(
            if cur.is_some() {
                "restore file"
            } else {
                "recreate file"
            },
            &e.path,
        );
        if self.dry_run {
            return Ok(());
        }
        let hash = e
            .hash
            .as_deref()
            .ok_or_else(|| format!("{}: the snapshot has no content for it", shown(&path)))?;
        let mut src = self.store.open_object(hash)?;
        let tmp = Self::tmp_name();
        let fd = rustix::fs::openat(
            d,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|er| errno("cannot create a temporary file next to", &path, er))?;
        let mut out = std::fs::File::from(fd);
        let written = (|| -> Res<()> {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = src
                    .read(&mut buf)
                    .map_err(|er| format!("cannot read object {hash}: {er}"))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|er| format!("cannot write next to {}: {er}", shown(&path)))?;
            }
            if hex::encode(h.finalize()) != hash {
                return Err(format!(
                    "{}: stored object {hash} is corrupt; not restored",
                    shown(&path)
                ));
            }
            if self.is_root() {
                rustix::fs::fchown(
                    &out,
                    Some(rustix::fs::Uid::from_raw(e.uid)),
                    Some(rustix::fs::Gid::from_raw(e.gid)),
                )
                .map_err(|er| errno("cannot chown", &path, er))?;
            }
            // After chown, which clears setuid/setgid.
            rustix::fs::fchmod(&out, Mode::from_raw_mode(self.safe_mode(e) as _))
                .map_err(|er| errno("cannot chmod", &path, er))?;
            set_mtime(out.as_fd(), e).map_err(|er| errno("cannot set the times of", &path, er))
        })();
        drop(out);
        if let Err(m) = written {
            let _ = rustix::fs::unlinkat(d, &tmp, AtFlags::empty());
            return Err(m);
        }
        self.replace(d, &tmp, name, cur.as_ref(), &path)
    }

    /// Rename `tmp` over `name`; a directory in the way is removed first (rename cannot
    /// replace a directory with a file). A symlink in the way is replaced, not followed.
    fn replace(
        &mut self,
        d: BorrowedFd<'_>,
        tmp: &OsStr,
        name: &OsStr,
        cur: Option<&Stat>,
        path: &Path,
    ) -> Res<()> {
        if cur.is_some_and(|st| kind_of(st) == FileType::Directory)
            && !remove_any(d, name, path, &mut self.errors)
        {
            let _ = rustix::fs::unlinkat(d, tmp, AtFlags::empty());
            return Err(format!(
                "{}: not restored: the directory that replaced it could not be removed",
                shown(path)
            ));
        }
        rustix::fs::renameat(d, tmp, d, name).map_err(|er| {
            let _ = rustix::fs::unlinkat(d, tmp, AtFlags::empty());
            errno("cannot rename into place", path, er)
        })
    }

    fn symlink(&mut self, dir: Option<BorrowedFd<'_>>, name: &OsStr, e: &Entry) -> Res<()> {
        let path = self.abs(&e.path);
        let target = e
            .target
            .as_deref()
            .ok_or_else(|| format!("{}: the snapshot has no link target", shown(&path)))?;
        let Some(d) = dir else {
            self.act("recreate symlink", &e.path);
            return Ok(());
        };
        let cur = stat_at(d, name);
        if cur
            .as_ref()
            .is_some_and(|st| kind_of(st) == FileType::Symlink)
        {
            if let Ok(t) = rustix::fs::readlinkat(d, name, Vec::new()) {
                if t.as_bytes() == target.as_os_str().as_bytes() {
                    return Ok(());
                }
            }
        }
        self.act(
            if cur.is_some() {
                "restore symlink"
            } else {
                "recreate symlink"
            },
            &e.path,
        );
        if self.dry_run {
            return Ok(());
        }
        let tmp = Self::tmp_name();
        rustix::fs::symlinkat(target, d, &tmp)
            .map_err(|er| errno("cannot create a symlink next to", &path, er))?;
        if self.is_root() {
            let _ = rustix::fs::chownat(
                d,
                &tmp,
                Some(rustix::fs::Uid::from_raw(e.uid)),
                Some(rustix::fs::Gid::from_raw(e.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            );
        }
        self.replace(d, &tmp, name, cur.as_ref(), &path)
    }
}

fn set_mtime(fd: BorrowedFd<'_>, e: &Entry) -> rustix::io::Result<()> {
    let t = Timespec {
        tv_sec: e.mtime,
        tv_nsec: e.mtime_nsec as _,
    };
    rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: t,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollback::snapshot::{store_files, walk, WalkOptions};
    use crate::rollback::store::Lock;

    fn entry(mode: u32, uid: u32, gid: u32) -> Entry {
        Entry {
            path: "f".into(),
            kind: Kind::File,
            mode,
            uid,
            gid,
            size: 0,
            mtime: 0,
            mtime_nsec: 0,
            ctime: 0,
            ctime_nsec: 0,
            dev: 0,
            ino: 0,
            hash: None,
            target: None,
            unsaved: None,
        }
    }

    #[test]
    fn setuid_and_setgid_only_for_their_owner() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path(), Lock::Shared).unwrap();
        let rm = RootManifest {
            root: "/nowhere".into(),
            entries: vec![],
            skipped: vec![],
        };
        let mut r = Restorer::new(&store, &rm, &Options::default(), None, true);
        r.euid = 1000;
        r.egid = 1000;
        // Someone else's setuid/setgid file restored by user 1000: the bits are dropped.
        assert_eq!(r.safe_mode(&entry(0o6755, 0, 0)), 0o755);
        // The user's own: kept, as they were in the snapshot.
        assert_eq!(r.safe_mode(&entry(0o6755, 1000, 1000)), 0o6755);
        assert_eq!(r.safe_mode(&entry(0o2775, 1000, 50)), 0o775);
        // Root restores the owner first, so the recorded bits belong to the recorded owner.
        r.euid = 0;
        assert_eq!(r.safe_mode(&entry(0o4755, 1000, 1000)), 0o4755);
        // Never more than the snapshot had.
        assert_eq!(r.safe_mode(&entry(0o644, 0, 0)), 0o644);
    }

    #[test]
    fn a_file_swapped_for_a_symlink_is_restored_without_writing_the_target() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let tree = base.join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("config"), "mine\n").unwrap();
        std::fs::write(tree.join("sub/x"), "x\n").unwrap();
        let victim = base.join("bashrc");
        std::fs::write(&victim, "victim\n").unwrap();
        let outside = base.join("outside");
        std::fs::create_dir(&outside).unwrap();
        let store = Store::open(&base.join("store"), Lock::Shared).unwrap();
        let w = walk(&tree, &WalkOptions::default(), None).unwrap();
        let (rm, _) = store_files(&store, &tree, w, None, None).unwrap();

        std::fs::remove_file(tree.join("config")).unwrap();
        std::os::unix::fs::symlink(&victim, tree.join("config")).unwrap();
        std::fs::remove_dir_all(tree.join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("sub")).unwrap();

        let mut r = Restorer::new(&store, &rm, &Options::default(), None, false);
        r.run().unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim\n");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        let m = std::fs::symlink_metadata(tree.join("config")).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(std::fs::read(tree.join("config")).unwrap(), b"mine\n");
        assert!(std::fs::symlink_metadata(tree.join("sub"))
            .unwrap()
            .is_dir());
        assert_eq!(std::fs::read(tree.join("sub/x")).unwrap(), b"x\n");

        let mut again = Restorer::new(&store, &rm, &Options::default(), None, false);
        again.run().unwrap();
        assert!(again.actions.is_empty(), "{:?}", again.actions);
    }
}
