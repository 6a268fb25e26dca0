//! The content-addressed store under `$XDG_STATE_HOME/nono/rollback`.
//!
//! Privilege: none; the store belongs to the user running nono (directories 0700, objects
//! 0400). Kernel assumptions: POSIX rename atomicity within a directory, `syncfs(2)`
//! (Linux 2.6.39), `flock(2)`.
//!
//! Layout:
//! - `objects/ab/cdef…`: file contents, named by their SHA-256 (first two hex digits shard
//!   the directory). Identical content is stored once, across files and sessions.
//! - `tmp/`: objects being written; each is written to a fresh temporary file and renamed
//!   into `objects/` only once complete, so an object that exists is always whole.
//! - `sessions/<id>/`: `session.json` (what ran, when, the roots), `before.json` (the
//!   snapshot), `after.json` and `changes.json` (what the session changed).
//! - `last/<sha256 of root path>`: which manifest last described a root, for the metadata
//!   fast path of the next snapshot.
//! - `lock`: `flock` — snapshots and restores take it shared, `prune` exclusive, so pruning
//!   never deletes an object a running snapshot is about to reference.
//!
//! Durability (fsync policy): objects are not fsynced one by one — on a 10,000-file tree that
//! would cost seconds. Instead the whole store filesystem is flushed with one `syncfs` after a
//! snapshot's objects are written and before its manifest is published and the command starts,
//! so a manifest never refers to an object that a crash could lose. The snapshot manifest and
//! `session.json` are written to a temporary file, fsynced, renamed, and the directory
//! fsynced. What is written after the run (`after.json`, `changes.json`, the updated
//! `session.json`) and the `last/` fast-path pointers are renamed into place atomically but
//! not fsynced: a restore needs none of them, and a lost pointer only costs a rehash.
//!
//! The whole store lies under `$XDG_STATE_HOME/nono`, which every `nono run` denies
//! implicitly (see `run/concrete.rs`): the sandbox can neither read nor write it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Files up to this size are read whole, hashed, and written only if the object is missing;
/// larger ones are streamed into a temporary object while being hashed (one read either way).
const SMALL_FILE: u64 = 4 << 20;

pub type Hash = String;

#[derive(Debug)]
pub struct Store {
    pub root: PathBuf,
    /// Objects this process added (for the dedup figures in `session.json`).
    pub new_objects: AtomicU64,
    pub new_bytes: AtomicU64,
    _lock: File,
}

/// Where the store lives: `$XDG_STATE_HOME/nono/rollback`, `$XDG_STATE_HOME` defaulting to
/// `~/.local/state` (the same rule `nono run` uses for its implicit deny).
pub fn default_root() -> Result<PathBuf, String> {
    let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(s) if Path::new(&s).is_absolute() => PathBuf::from(s),
        _ => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or("neither $XDG_STATE_HOME nor $HOME is set")?;
            PathBuf::from(home).join(".local/state")
        }
    };
    Ok(state.join("nono/rollback"))
}

fn io_err(what: &str, path: &Path, e: io::Error) -> String {
    format!("rollback store: {what} {}: {e}", path.display())
}

pub fn mkdir_private(path: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| io_err("cannot create", path, e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Shared,
    /// Exclusive, or fail with `EWOULDBLOCK` if someone holds the lock.
    TryExclusive,
}

impl Store {
    /// Open (creating if needed) the store at `root`, holding its lock.
    pub fn open(root: &Path, lock: Lock) -> Result<Store, String> {
        for d in ["objects", "tmp", "sessions", "last"] {
            mkdir_private(&root.join(d))?;
        }
        // The 256 shards, made once, so that storing an object is one rename.
        if !root.join("objects/ff").is_dir() {
            for i in 0..=255u8 {
                mkdir_private(&root.join("objects").join(format!("{i:02x}")))?;
            }
        }
        let lock_path = root.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err("cannot open", &lock_path, e))?;
        let op = match lock {
            Lock::Shared => rustix::fs::FlockOperation::LockShared,
            Lock::TryExclusive => rustix::fs::FlockOperation::NonBlockingLockExclusive,
        };
        rustix::fs::flock(&f, op).map_err(|e| io_err("cannot lock", &lock_path, e.into()))?;
        let store = Store {
            root: root.to_path_buf(),
            new_objects: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            _lock: f,
        };
        if lock != Lock::Shared {
            // Nobody else holds the lock: whatever is in tmp/ was left by a killed process.
            store.clean_tmp();
        }
        Ok(store)
    }

    /// Open the store only if it exists (read-only commands must not create it).
    pub fn open_existing(root: &Path, lock: Lock) -> Result<Option<Store>, String> {
        if !root.join("sessions").is_dir() {
            return Ok(None);
        }
        Store::open(root, lock).map(Some)
    }

    fn clean_tmp(&self) {
        if let Ok(rd) = fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    pub fn object_path(&self, hash: &str) -> PathBuf {
        let (a, b) = hash.split_at(2.min(hash.len()));
        self.root.join("objects").join(a).join(b)
    }

    pub fn has(&self, hash: &str) -> bool {
        is_hash(hash) && self.object_path(hash).is_file()
    }

    fn tmp_file(&self) -> Result<(File, PathBuf), String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = self.root.join("tmp");
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = dir.join(format!("{}.{n}", std::process::id()));
            // Objects are read-only; the fd is writable whatever the mode.
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(&p)
            {
                Ok(f) => return Ok((f, p)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("cannot create", &p, e)),
            }
        }
    }

    /// Move a complete temporary object into place (or drop it if the object exists).
    fn publish(&self, tmp: &Path, hash: &str, size: u64) -> Result<(), String> {
        let dest = self.object_path(hash);
        if dest.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        fs::rename(tmp, &dest).map_err(|e| io_err("cannot store object", &dest, e))?;
        self.new_objects.fetch_add(1, Ordering::Relaxed);
        self.new_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// Store bytes; returns their hash.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Hash, String> {
        let hash = hex::encode(Sha256::digest(data));
        if self.has(&hash) {
            return Ok(hash);
        }
        let (mut f, tmp) = self.tmp_file()?;
        f.write_all(data)
            .map_err(|e| io_err("cannot write", &tmp, e))?;
        drop(f);
        self.publish(&tmp, &hash, data.len() as u64)?;
        Ok(hash)
    }

    /// Store the content of an open regular file; returns its hash and the bytes read. The
    /// content stored is exactly the content hashed, whatever happens to the file meanwhile.
    pub fn put_file(&self, file: &mut File, size_hint: u64) -> Result<(Hash, u64), String> {
        if size_hint <= SMALL_FILE {
            let mut data = Vec::with_capacity(size_hint as usize + 1);
            file.read_to_end(&mut data)
                .map_err(|e| format!("rollback snapshot: read failed: {e}"))?;
            let len = data.len() as u64;
            return Ok((self.put_bytes(&data)?, len));
        }
        let (mut out, tmp) = self.tmp_file()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(format!("rollback snapshot: read failed: {e}"));
                }
            };
            hasher.update(&buf[..n]);
            if let Err(e) = out.write_all(&buf[..n]) {
                let _ = fs::remove_file(&tmp);
                return Err(io_err("cannot write", &tmp, e));
            }
            len += n as u64;
        }
        drop(out);
        let hash = hex::encode(hasher.finalize());
        self.publish(&tmp, &hash, len)?;
        Ok((hash, len))
    }

    pub fn open_object(&self, hash: &str) -> Result<File, String> {
        if !is_hash(hash) {
            return Err(format!("rollback store: `{hash}` is not an object name"));
        }
        let p = self.object_path(hash);
        File::open(&p).map_err(|e| io_err("missing object", &p, e))
    }

    /// An object's content, checked against its name.
    pub fn read_object(&self, hash: &str) -> Result<Vec<u8>, String> {
        let mut data = Vec::new();
        self.open_object(hash)?
            .read_to_end(&mut data)
            .map_err(|e| format!("rollback store: cannot read object {hash}: {e}"))?;
        if hex::encode(Sha256::digest(&data)) != hash {
            return Err(format!(
                "rollback store: object {hash} is corrupt (its content does not match its name)"
            ));
        }
        Ok(data)
    }

    /// Flush everything written to the store's filesystem (see the fsync policy above).
    pub fn sync(&self) -> Result<(), String> {
        let f = File::open(&self.root).map_err(|e| io_err("cannot open", &self.root, e))?;
        rustix::fs::syncfs(f.as_fd()).map_err(|e| io_err("syncfs failed on", &self.root, e.into()))
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.root.join("sessions")
    }

    pub fn last_path(&self, root: &Path) -> PathBuf {
        let key = hex::encode(Sha256::digest(crate::rollback::names::bytes(root)));
        self.root.join("last").join(key)
    }

    /// Every object name in the store.
    pub fn all_objects(&self) -> Vec<(Hash, PathBuf)> {
        let mut out = Vec::new();
        let Ok(shards) = fs::read_dir(self.root.join("objects")) else {
            return out;
        };
        for shard in shards.flatten() {
            let prefix = shard.file_name().to_string_lossy().into_owned();
            if let Ok(rd) = fs::read_dir(shard.path()) {
                for e in rd.flatten() {
                    let name = format!("{prefix}{}", e.file_name().to_string_lossy());
                    if is_hash(&name) {
                        out.push((name, e.path()));
                    }
                }
            }
        }
        out
    }

    /// Open with the exclusive lock, failing at once (rather than waiting for hours) while a
    /// `nono run --rollback` holds it.
    pub fn try_open_exclusive(root: &Path) -> Result<Store, String> {
        Store::open(root, Lock::TryExclusive).map_err(|e| {
            if e.contains("EWOULDBLOCK") || e.contains("temporarily unavailable") {
                "nono rollback prune: a `nono run --rollback` or a restore is using the store; \
                 try again when it has finished"
                    .to_string()
            } else {
                e
            }
        })
    }

    /// Drop the fast-path pointers to sessions that no longer exist.
    pub fn forget_sessions(&self, ids: &[String]) {
        let Ok(rd) = fs::read_dir(self.root.join("last")) else {
            return;
        };
        for e in rd.flatten() {
            let gone = fs::read(e.path())
                .ok()
                .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
                .and_then(|v| {
                    v.get("session")
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                })
                .is_none_or(|s| ids.contains(&s));
            if gone {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Write a file atomically and durably: temporary file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    write_atomic_with(path, data, true)
}

/// Write a file atomically (temporary file, rename) and, if `durable`, fsync it and its
/// directory. Only what a restore depends on (the snapshot manifest, the session) needs to
/// survive a crash; caches and the after-run record are rebuilt or only informative.
fn write_atomic_with(path: &Path, data: &[u8], durable: bool) -> Result<(), String> {
    let dir = path.parent().ok_or("write_atomic: no parent")?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("cannot create", &tmp, e))?;
    f.write_all(data)
        .and_then(|_| if durable { f.sync_all() } else { Ok(()) })
        .map_err(|e| io_err("cannot write", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io_err("cannot rename into", path, e))?;
    if durable {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// [`write_json`] without the fsyncs (still atomic): for caches and informative records.
pub fn write_json_fast<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let data = serde_json::to_vec(value).map_err(|e| format!("rollback store: {e}"))?;
    write_atomic_with(path, &data, false)
}

pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let data = serde_json::to_vec(value).map_err(|e| format!("rollback store: {e}"))?;
    write_atomic(path, &data)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let data = fs::read(path).map_err(|e| io_err("cannot read", path, e))?;
    serde_json::from_slice(&data).map_err(|e| format!("rollback store: {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identical_content_is_stored_once() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), Lock::Shared).unwrap();
        let a = s.put_bytes(b"same").unwrap();
        let b = s.put_bytes(b"same").unwrap();
        assert_eq!(a, b);
        assert_eq!(s.new_objects.load(Ordering::Relaxed), 1);
        assert_eq!(
            a,
            "0967115f2813a3541eaef77de9d9d5773f1c0c04314b0bbfe4ff3b3b1c55b5d5"
        );
        assert_eq!(s.read_object(&a).unwrap(), b"same");
        // A large file is streamed and lands under the same name as the bytes would.
        let big: Vec<u8> = (0..(SMALL_FILE as usize + 12345))
            .map(|i| i as u8)
            .collect();
        let p = d.path().join("big");
        fs::write(&p, &big).unwrap();
        let (h, n) = s
            .put_file(&mut File::open(&p).unwrap(), big.len() as u64)
            .unwrap();
        assert_eq!(n, big.len() as u64);
        assert_eq!(h, hex::encode(Sha256::digest(&big)));
        assert_eq!(s.put_bytes(&big).unwrap(), h);
        assert_eq!(s.new_objects.load(Ordering::Relaxed), 2);
        assert!(fs::read_dir(d.path().join("tmp")).unwrap().next().is_none());
    }

    #[test]
    fn a_corrupt_object_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), Lock::Shared).unwrap();
        let h = s.put_bytes(b"content").unwrap();
        let p = s.object_path(&h);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, b"tampered").unwrap();
        assert!(s.read_object(&h).unwrap_err().contains("corrupt"));
        assert!(s.open_object("../../etc/passwd").is_err());
    }
}
