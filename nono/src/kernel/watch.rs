//! Name watches, the userspace half: binding deny rules whose object does not exist yet.
//!
//! A deny binds by (device, inode), so a deny on `~/.aws/credentials` has nothing to bind while
//! the user has no such file, which is the common case. Instead of refusing, the loader watches
//! the name: the rule's path is resolved the way the kernel would (symlinks followed) down to
//! the nearest existing directory, and the first missing name there becomes an entry of the
//! name-watch map; the missing names below it become templates the programs follow as the
//! directories appear (`nono-ebpf/src/watch.rs` says what the kernel side does, for every
//! process, before the new name is usable). The last name of every rule whose object exists
//! is watched too, so an object *replaced* under that name (saved by rename) is bound as well.
//!
//! No race: the watch is in place (and `NONO_ACTIVE` raised, and this sandbox in a watcher slot)
//! before the path is resolved again; whatever appeared before that second look is bound here
//! by inode, whatever appears after it is bound by the programs. The look is repeated while a
//! deeper directory keeps appearing, watching the new nearest directory each time.
//!
//! Limits (rules beyond them stay unbound, and the run refuses or warns as before):
//! - a missing name of [`WATCH_NAME_LEN`] bytes or more, or a missing part with `..` in it
//!   (after symlinks): no kernel-side compare can follow it;
//! - [`MAX_WATCH_SIBLINGS`] rules' components below one missing directory;
//! - [`MAX_WATCHERS`] sandboxes with watches at once on the machine.
//!
//! Not followed: an existing directory *above* a rule's object replaced during the run (moved
//! away and another made in its place) by a process outside the sandbox; the watch stays on the
//! directory it was set on, wherever that goes.
//!
//! Privileges: root (map writes).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use nono_common::{
    NameKey, NameTemplate, NameWatch, TemplateKey, MAX_WATCHERS, MAX_WATCH_SIBLINGS, WATCH_NAME_LEN,
};

use super::maps::Maps;
use super::sandbox::kernel_dev;

/// Symlinks followed while resolving one rule path (Linux's ELOOP limit).
const MAX_SYMLINKS: u32 = 40;

/// A rule path as the kernel would resolve it now.
#[derive(Debug)]
pub(crate) enum Resolved {
    /// The object exists: its canonical path (symlinks followed).
    Exists(PathBuf),
    /// `dir` (canonical, an existing directory) is the deepest existing directory on the way;
    /// `names` are the components missing below it, in order, none of them `.` or `..`.
    Missing { dir: PathBuf, names: Vec<OsString> },
}

/// Resolve `path` component by component, following symlinks like the kernel's lookup.
pub(crate) fn resolve(path: &Path) -> Result<Resolved, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not absolute", path.display()));
    }
    let mut pending: Vec<OsString> = Vec::new(); // components still to walk, reversed
    let push = |pending: &mut Vec<OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => pending.push(n.to_os_string()),
                Component::ParentDir => pending.push(OsString::from("..")),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
    };
    push(&mut pending, path);
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let candidate = cur.join(&name);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(format!(
                        "{}: too many levels of symbolic links",
                        path.display()
                    ));
                }
                let target = fs::read_link(&candidate)
                    .map_err(|e| format!("reading the link {}: {e}", candidate.display()))?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                push(&mut pending, &target);
            }
            Ok(meta) => {
                if !pending.is_empty() && !meta.is_dir() {
                    return Err(format!("{} is not a directory", candidate.display()));
                }
                cur = candidate;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let mut names = vec![name];
                while let Some(n) = pending.pop() {
                    if n == ".." {
                        return Err(format!(
                            "{}: `..` below the missing {} can't be watched",
                            path.display(),
                            candidate.display()
                        ));
                    }
                    names.push(n);
                }
                return Ok(Resolved::Missing { dir: cur, names });
            }
            Err(e) => return Err(format!("looking up {}: {e}", candidate.display())),
        }
    }
    Ok(Resolved::Exists(cur))
}

/// A name as a watch key holds it; `None` when it is too long (or empty).
pub(crate) fn watch_name(name: &std::ffi::OsStr) -> Option<[u8; WATCH_NAME_LEN]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= WATCH_NAME_LEN {
        return None;
    }
    let mut out = [0u8; WATCH_NAME_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}

/// One watched component: a rule's object (`object`) or a missing directory above objects.
#[derive(Debug)]
struct Node {
    name: [u8; WATCH_NAME_LEN],
    rule_id: u32,
    /// The rule's access for an object; the union of what lies below for a directory (what a
    /// whole directory moved into its place is denied).
    access: u32,
    object: bool,
    children: Vec<usize>,
}

/// (kernel dev, directory inode, name) of a watch entry.
type RootKey = (u32, u64, [u8; WATCH_NAME_LEN]);

/// A missing rule, for the second look.
#[derive(Debug)]
struct MissingRule {
    rule_id: u32,
    access: u32,
    path: PathBuf,
    /// The nearest existing directory last seen, and the node of each missing name below it.
    dir: PathBuf,
    nodes: Vec<usize>,
}

/// The watches of one sandbox, built before any of them is written.
#[derive(Debug, Default)]
pub(crate) struct WatchPlan {
    nodes: Vec<Node>,
    roots: BTreeMap<RootKey, usize>,
    missing: Vec<MissingRule>,
}

fn dir_key(dir: &Path) -> Result<(u32, u64), String> {
    let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((kernel_dev(meta.dev()), meta.ino()))
}

impl WatchPlan {
    pub(crate) fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// (rule, path) of every rule whose object is missing.
    pub(crate) fn missing_rules(&self) -> Vec<(u32, PathBuf)> {
        self.missing
            .iter()
            .map(|m| (m.rule_id, m.path.clone()))
            .collect()
    }

    /// The devices the watches are on.
    pub(crate) fn devices(&self) -> std::collections::BTreeSet<u32> {
        self.roots.keys().map(|k| k.0).collect()
    }

    fn node(&mut self, name: [u8; WATCH_NAME_LEN], rule_id: u32) -> usize {
        self.nodes.push(Node {
            name,
            rule_id,
            access: 0,
            object: false,
            children: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn root(&mut self, key: RootKey, rule_id: u32) -> usize {
        if let Some(&n) = self.roots.get(&key) {
            return n;
        }
        let n = self.node(key.2, rule_id);
        self.roots.insert(key, n);
        n
    }

    /// Watch the last name of an object that exists (`canonical`), so a replacement is bound.
    /// Best effort: a name that can't be watched leaves the object bound by inode only.
    pub(crate) fn add_existing(&mut self, rule_id: u32, canonical: &Path, access: u32) {
        let (Some(parent), Some(name)) = (canonical.parent(), canonical.file_name()) else {
            return;
        };
        let (Some(name), Ok((dev, ino))) = (watch_name(name), dir_key(parent)) else {
            return;
        };
        let n = self.root((dev, ino, name), rule_id);
        let node = &mut self.nodes[n];
        node.object = true;
        node.access |= access;
    }

    /// Watch a rule's missing object below `dir`. Err: why it can't be watched.
    pub(crate) fn add_missing(
        &mut self,
        rule_id: u32,
        path: &Path,
        dir: &Path,
        names: &[OsString],
        access: u32,
    ) -> Result<(), String> {
        let mut encoded = Vec::new();
        for n in names {
            encoded.push(watch_name(n).ok_or_else(|| {
                format!(
                    "the missing name {:?} is longer than the {} bytes a name watch holds",
                    n,
                    WATCH_NAME_LEN - 1
                )
            })?);
        }
        let (dev, ino) = dir_key(dir)?;
        // Check the sibling limit before changing anything.
        {
            let mut at = self.roots.get(&(dev, ino, encoded[0])).copied();
            for name in &encoded[1..] {
                let Some(n) = at else { break };
                if self.nodes[n].object {
                    break;
                }
                let child = self.nodes[n]
                    .children
                    .iter()
                    .copied()
                    .find(|&c| self.nodes[c].name == *name);
                if child.is_none() && self.nodes[n].children.len() >= MAX_WATCH_SIBLINGS as usize {
                    return Err(format!(
                        "more than {MAX_WATCH_SIBLINGS} rules' paths pass through one missing directory"
                    ));
                }
                at = child;
            }
        }
        let mut chain = Vec::with_capacity(encoded.len());
        let mut n = self.root((dev, ino, encoded[0]), rule_id);
        chain.push(n);
        for name in &encoded[1..] {
            let existing = self.nodes[n]
                .children
                .iter()
                .copied()
                .find(|&c| self.nodes[c].name == *name);
            let c = match existing {
                Some(c) => c,
                None => {
                    let c = self.node(*name, rule_id);
                    self.nodes[n].children.push(c);
                    c
                }
            };
            n = c;
            chain.push(n);
        }
        for &c in &chain {
            self.nodes[c].access |= access;
        }
        let last = *chain.last().expect("at least one name");
        if !self.nodes[last].object {
            self.nodes[last].object = true;
            self.nodes[last].rule_id = rule_id;
        }
        self.missing.push(MissingRule {
            rule_id,
            access,
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            nodes: chain,
        });
        Ok(())
    }

    /// The template index of node `n` (per sandbox; 0 means none).
    fn index(n: usize) -> u32 {
        n as u32 + 1
    }

    fn watch_of(&self, n: usize) -> NameWatch {
        let node = &self.nodes[n];
        NameWatch {
            rule_id: node.rule_id,
            access: node.access,
            // An object is denied whole: what lies below it needs no watch.
            child: if node.object {
                0
            } else {
                node.children.first().map_or(0, |&c| Self::index(c))
            },
            _pad: 0,
        }
    }

    /// Write the templates, then the watches. The sandbox must already hold a watcher slot and
    /// `NONO_ACTIVE` must be raised, so the programs act on every entry from the moment it is
    /// written.
    pub(crate) fn write(&self, maps: &mut Maps, sandbox_id: u32) -> Result<()> {
        for (n, node) in self.nodes.iter().enumerate() {
            if self.roots.values().any(|&r| r == n) {
                continue;
            }
            let parent_children = self
                .nodes
                .iter()
                .find(|p| p.children.contains(&n))
                .map(|p| &p.children);
            let sibling = parent_children
                .and_then(|cs| {
                    let at = cs.iter().position(|&c| c == n)?;
                    cs.get(at + 1).map(|&s| Self::index(s))
                })
                .unwrap_or(0);
            let watch = self.watch_of(n);
            maps.fs_watch_next
                .insert(
                    TemplateKey {
                        sandbox_id,
                        index: Self::index(n),
                    },
                    NameTemplate {
                        rule_id: watch.rule_id,
                        access: watch.access,
                        child: watch.child,
                        sibling,
                        name: node.name,
                    },
                    0,
                )
                .context("inserting a name-watch template")?;
        }
        for (&(dev, parent_ino, name), &n) in &self.roots {
            maps.fs_watch
                .insert(
                    NameKey {
                        sandbox_id,
                        dev,
                        parent_ino,
                        name,
                    },
                    self.watch_of(n),
                    0,
                )
                .context("inserting a name watch")?;
        }
        Ok(())
    }

    /// The second look, after [`WatchPlan::write`]: a missing object that appeared meanwhile is
    /// returned for binding by inode; a deeper directory that appeared gets the watch of the
    /// next missing name. Returns (rule, path, access) of objects to bind now, and the rules
    /// that could not be settled (with the reason).
    #[allow(clippy::type_complexity)]
    pub(crate) fn settle(
        &mut self,
        maps: &mut Maps,
        sandbox_id: u32,
    ) -> (Vec<(u32, PathBuf, u32)>, Vec<(u32, String)>) {
        let mut appeared = Vec::new();
        let mut failed = Vec::new();
        let mut missing = std::mem::take(&mut self.missing);
        for rule in &mut missing {
            // Each round either ends or finds a deeper directory; the path has a bounded depth.
            for _round in 0..64 {
                match resolve(&rule.path) {
                    Ok(Resolved::Exists(_)) => {
                        appeared.push((rule.rule_id, rule.path.clone(), rule.access));
                        break;
                    }
                    Ok(Resolved::Missing { dir, names }) => {
                        // Still the same nearest directory (or a shallower one: see the module
                        // doc): the watch written covers it.
                        if names.len() >= rule.nodes.len() || dir == rule.dir {
                            break;
                        }
                        let skip = rule.nodes.len() - names.len();
                        let n = rule.nodes[skip];
                        let watched = dir_key(&dir).and_then(|(dev, ino)| {
                            maps.fs_watch
                                .insert(
                                    NameKey {
                                        sandbox_id,
                                        dev,
                                        parent_ino: ino,
                                        name: self.nodes[n].name,
                                    },
                                    self.watch_of(n),
                                    0,
                                )
                                .map_err(|e| format!("inserting a name watch: {e}"))
                        });
                        if let Err(e) = watched {
                            failed.push((rule.rule_id, e));
                            break;
                        }
                        rule.nodes.drain(..skip);
                        rule.dir = dir;
                    }
                    Err(e) => {
                        failed.push((rule.rule_id, e));
                        break;
                    }
                }
            }
        }
        self.missing = missing;
        (appeared, failed)
    }
}

/// Take a free watcher slot for `sandbox_id` (callers hold the load lock). A slot whose
/// sandbox is not in `live` is stale and reused. `None`: all [`MAX_WATCHERS`] are taken.
pub(crate) fn claim_slot(
    maps: &mut Maps,
    sandbox_id: u32,
    live: &std::collections::HashSet<u32>,
) -> Result<Option<u32>> {
    for slot in 0..MAX_WATCHERS {
        let id = maps.watchers.get(&slot, 0).unwrap_or(0);
        if id == 0 || !live.contains(&id) {
            maps.watchers
                .set(slot, sandbox_id, 0)
                .context("writing a watcher slot")?;
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// Free every watcher slot of the sandboxes in `ids`.
pub(crate) fn release_slots(maps: &mut Maps, ids: &std::collections::HashSet<u32>) {
    for slot in 0..MAX_WATCHERS {
        if let Ok(id) = maps.watchers.get(&slot, 0) {
            if id != 0 && ids.contains(&id) {
                let _ = maps.watchers.set(slot, 0, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_existing_missing_and_symlinked_paths() {
        let root = tempfile::tempdir().unwrap();
        let r = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(r.join("home/.config")).unwrap();
        fs::write(r.join("home/file"), "x").unwrap();
        std::os::unix::fs::symlink(r.join("home/.config"), r.join("home/cfg")).unwrap();
        std::os::unix::fs::symlink("../missing-target", r.join("home/dangling")).unwrap();
        match resolve(&r.join("home/file")).unwrap() {
            Resolved::Exists(p) => assert_eq!(p, r.join("home/file")),
            other => panic!("{other:?}"),
        }
        match resolve(&r.join("home/cfg/gcloud/creds")).unwrap() {
            Resolved::Missing { dir, names } => {
                assert_eq!(dir, r.join("home/.config"));
                assert_eq!(
                    names,
                    vec![OsString::from("gcloud"), OsString::from("creds")]
                );
            }
            other => panic!("{other:?}"),
        }
        // A dangling link: the object would appear where the link points.
        match resolve(&r.join("home/dangling")).unwrap() {
            Resolved::Missing { dir, names } => {
                assert_eq!(dir, r.clone());
                assert_eq!(names, vec![OsString::from("missing-target")]);
            }
            other => panic!("{other:?}"),
        }
        assert!(resolve(&r.join("home/file/below")).is_err());
        assert!(resolve(&r.join("home/nothing/../x")).is_err());
    }

    #[test]
    fn watch_names_are_bounded() {
        assert!(watch_name(std::ffi::OsStr::new("credentials")).is_some());
        assert!(watch_name(std::ffi::OsStr::new(&"a".repeat(WATCH_NAME_LEN - 1))).is_some());
        assert!(watch_name(std::ffi::OsStr::new(&"a".repeat(WATCH_NAME_LEN))).is_none());
        assert!(watch_name(std::ffi::OsStr::new("")).is_none());
    }

    #[test]
    fn plan_shares_missing_directories_and_links_siblings() {
        let root = tempfile::tempdir().unwrap();
        let home = fs::canonicalize(root.path()).unwrap();
        let mut plan = WatchPlan::default();
        let names = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        plan.add_missing(
            1,
            &home.join(".config/gcloud"),
            &home,
            &names(&[".config", "gcloud"]),
            7,
        )
        .unwrap();
        plan.add_missing(
            2,
            &home.join(".config/gh"),
            &home,
            &names(&[".config", "gh"]),
            1,
        )
        .unwrap();
        assert_eq!(plan.roots.len(), 1);
        let root = *plan.roots.values().next().unwrap();
        let w = plan.watch_of(root);
        assert_eq!(w.access, 7);
        assert_eq!(w.child, WatchPlan::index(plan.nodes[root].children[0]));
        assert_eq!(plan.nodes[root].children.len(), 2);
        let gh = plan.nodes[root].children[1];
        assert!(plan.nodes[gh].object);
        assert_eq!(plan.watch_of(gh).rule_id, 2);
        assert_eq!(plan.watch_of(gh).child, 0);
        for i in 0..(MAX_WATCH_SIBLINGS - 2) {
            let n = format!("n{i}");
            plan.add_missing(
                10 + i,
                &home.join(".config").join(&n),
                &home,
                &names(&[".config", &n]),
                1,
            )
            .unwrap();
        }
        assert!(plan
            .add_missing(
                99,
                &home.join(".config/one-too-many"),
                &home,
                &names(&[".config", "one-too-many"]),
                1
            )
            .is_err());
    }
}
