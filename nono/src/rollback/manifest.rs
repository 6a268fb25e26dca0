//! What a snapshot records: per root, every entry's type, mode, owner, size, times, symlink
//! target and object hash, plus device/inode/ctime for the metadata fast path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::names;
use super::store::Hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFO, socket or device: recorded so restore leaves it alone, never copied.
    Special,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Special => "special file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the root; empty for the root itself.
    #[serde(with = "names::serde_path")]
    pub path: PathBuf,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub dev: u64,
    pub ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
    #[serde(
        default,
        with = "names::serde_opt_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<PathBuf>,
    /// Recorded after the run only: why the content (a file's bytes, a directory's listing)
    /// could not be read. `hash` is then absent; restore never needs it, as it restores from
    /// the snapshot taken before the run.
    #[serde(
        rename = "content_not_saved",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unsaved: Option<String>,
}

impl Entry {
    /// Same inode, same size, same mtime and ctime: the content is the one hashed before.
    /// ctime cannot be set from user space, so a writer that restores mtime is still seen.
    pub fn same_metadata(&self, o: &Entry) -> bool {
        self.kind == o.kind
            && self.dev == o.dev
            && self.ino == o.ino
            && self.size == o.size
            && self.mtime == o.mtime
            && self.mtime_nsec == o.mtime_nsec
            && self.ctime == o.ctime
            && self.ctime_nsec == o.ctime_nsec
    }
}

/// A path stored in its lossless text form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EncPath(#[serde(with = "names::serde_path")] pub PathBuf);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootManifest {
    /// The canonical absolute path of the root (a writable grant).
    #[serde(with = "names::serde_path")]
    pub root: PathBuf,
    /// Sorted by path components, so a directory comes before its entries.
    pub entries: Vec<Entry>,
    /// Paths inside the root left out on purpose (ignored by `.gitignore`, other filesystems).
    /// Restore leaves them alone. Names in [`Options::exclude`] are left out too.
    #[serde(default)]
    pub skipped: Vec<EncPath>,
}

impl RootManifest {
    pub fn by_path(&self) -> HashMap<&Path, &Entry> {
        self.entries.iter().map(|e| (e.path.as_path(), e)).collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Entry names never snapshotted nor touched by restore.
    pub exclude: Vec<String>,
    /// `.gitignore` files inside a root were honoured.
    pub gitignore: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub options: Options,
    pub roots: Vec<RootManifest>,
}
