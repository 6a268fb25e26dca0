//! Regaining access to the user's own files and directories whose owner permissions the
//! sandboxed command took away (`chmod 000 src`), so that recording the changes and restoring
//! them do not stop there.
//!
//! Privilege: none, and none is needed: the owner of an entry may always change its mode, and
//! nono changes only entries owned by its effective user. Root never needs this (it reads and
//! searches everything), so these helpers are used only when a plain open was refused.
//! Kernel assumptions: `openat(O_PATH|O_NOFOLLOW)`, which needs no permission on the entry
//! itself (only search on its directory) and opens a symlink as the link, never its target;
//! and procfs: `/proc/self/fd/N` names the inode that fd N holds, so `chmod` and `open`
//! through it act on the entry that was opened and checked, not on whatever its name points
//! to by then. `/proc/self/fd` is checked to be procfs.
//!
//! A symlink is never regained (nor followed): it is refused. Only the owner's bits are
//! loosened, and the caller sets the recorded mode again once done.

// `struct stat` field types differ between architectures; the casts are no-ops only on some.
#![allow(clippy::unnecessary_cast)]

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// `/proc/self/fd`, opened once and checked to be procfs: something mounted over `/proc`
/// must not be able to redirect a chmod.
fn proc_self_fd() -> io::Result<BorrowedFd<'static>> {
    static FD: OnceLock<Result<OwnedFd, String>> = OnceLock::new();
    let r = FD.get_or_init(|| {
        let fd = rustix::fs::openat(
            rustix::fs::CWD,
            "/proc/self/fd",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open /proc/self/fd: {}", io::Error::from(e)))?;
        match rustix::fs::fstatfs(&fd) {
            Ok(s) if s.f_type == rustix::fs::PROC_SUPER_MAGIC => Ok(fd),
            Ok(_) => Err("/proc/self/fd is not procfs".into()),
            Err(e) => Err(format!("cannot check /proc: {}", io::Error::from(e))),
        }
    });
    match r {
        Ok(fd) => Ok(fd.as_fd()),
        Err(m) => Err(io::Error::other(m.clone())),
    }
}

/// An entry opened `O_PATH` without following a symlink, checked to be of the expected type
/// and owned by the user running nono.
#[derive(Debug)]
pub struct Pinned {
    fd: OwnedFd,
    pub st: Stat,
}

impl Pinned {
    /// `name` in `dir`.
    pub fn at(dir: BorrowedFd<'_>, name: &OsStr, kind: FileType) -> io::Result<Pinned> {
        let mut flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if kind == FileType::Directory {
            flags |= OFlags::DIRECTORY;
        }
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        let found = FileType::from_raw_mode(st.st_mode as _);
        if found != kind {
            return Err(io::Error::other(format!(
                "it is a {found:?}, not a {kind:?}; left alone"
            )));
        }
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "it belongs to uid {}, not to uid {euid} running nono, so its mode is not \
                     nono's to change",
                    st.st_uid
                ),
            ));
        }
        Ok(Pinned { fd, st })
    }

    /// An absolute path, opened without following a symlink at any component.
    pub fn path(path: &Path, kind: FileType) -> io::Result<Pinned> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::other("no parent directory"));
        };
        let dir = super::restore::open_dir_nofollow(parent).map_err(io::Error::other)?;
        Pinned::at(dir.as_fd(), name, kind)
    }

    /// The permission bits found when it was pinned.
    pub fn mode(&self) -> u32 {
        self.st.st_mode as u32 & 0o7777
    }

    fn proc_name(&self) -> String {
        self.fd.as_raw_fd().to_string()
    }

    /// Set the permission bits of the pinned inode.
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        rustix::fs::chmodat(
            proc_self_fd()?,
            self.proc_name(),
            Mode::from_raw_mode(mode as _),
            AtFlags::empty(),
        )?;
        Ok(())
    }

    /// Open the pinned inode itself (once [`Pinned::chmod`] gave its owner access).
    pub fn reopen(&self, flags: OFlags) -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat(
            proc_self_fd()?,
            self.proc_name(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }
}

/// A directory whose owner bits were loosened so that it can be read; its mode is put back
/// when this is dropped.
#[derive(Debug)]
pub struct Loosened(Pinned);

impl Loosened {
    /// Give the owner at least `bits` (owner bits, e.g. `0o500`) on `p`.
    pub fn new(p: Pinned, bits: u32) -> io::Result<Loosened> {
        p.chmod(p.mode() | bits)?;
        Ok(Loosened(p))
    }
}

impl Drop for Loosened {
    fn drop(&mut self) {
        if let Err(e) = self.0.chmod(self.0.mode()) {
            tracing::warn!("rollback: cannot put back the mode of a directory: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn symlinks_and_wrong_types_are_refused_own_entries_regained() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let m = |n: &str| std::fs::symlink_metadata(base.join(n)).unwrap().mode() & 0o7777;
        std::fs::create_dir(base.join("dir")).unwrap();
        std::fs::write(base.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("dir"), base.join("link")).unwrap();
        std::os::unix::fs::symlink(base.join("file"), base.join("flink")).unwrap();
        assert!(Pinned::path(&base.join("link"), FileType::Directory).is_err());
        assert!(Pinned::path(&base.join("flink"), FileType::RegularFile).is_err());
        assert!(Pinned::path(&base.join("file"), FileType::Directory).is_err());

        let p = Pinned::path(&base.join("file"), FileType::RegularFile).unwrap();
        p.chmod(0o000).unwrap();
        assert_eq!(m("file"), 0);
        p.chmod(0o400).unwrap();
        let fd = p.reopen(OFlags::RDONLY).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).unwrap();
        assert_eq!(s, "x");

        std::fs::set_permissions(base.join("dir"), PermissionsExt::from_mode(0o000)).unwrap();
        let dir = Pinned::path(&base.join("dir"), FileType::Directory).unwrap();
        let loosened = Loosened::new(dir, 0o500).unwrap();
        assert_eq!(m("dir"), 0o500);
        drop(loosened);
        assert_eq!(m("dir"), 0);
        std::fs::set_permissions(base.join("dir"), PermissionsExt::from_mode(0o755)).unwrap();
    }
}
