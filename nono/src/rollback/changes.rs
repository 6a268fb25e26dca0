//! What a session changed: the before and after manifests of each root, compared.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::{Entry, Kind, RootManifest};
use super::names;
use super::store::Hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Created,
    Modified,
    Deleted,
    /// Deleted at one path and created at another with the same content.
    Renamed,
    /// Only the permission bits changed.
    ModeChanged,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Created => "created",
            Op::Modified => "modified",
            Op::Deleted => "deleted",
            Op::Renamed => "renamed",
            Op::ModeChanged => "mode changed",
        }
    }
}

/// One side of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
    #[serde(
        default,
        with = "names::serde_opt_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<PathBuf>,
    /// After the run: why the content could not be saved (see [`Entry::unsaved`]).
    #[serde(
        rename = "content_not_saved",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unsaved: Option<String>,
}

impl From<&Entry> for State {
    fn from(e: &Entry) -> State {
        State {
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            hash: e.hash.clone(),
            target: e.target.clone(),
            unsaved: e.unsaved.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub op: Op,
    /// Absolute path (after the change, for a rename).
    #[serde(with = "names::serde_path")]
    pub path: PathBuf,
    /// For a rename: where it was.
    #[serde(
        default,
        with = "names::serde_opt_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<State>,
}

fn abs(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn content_differs(b: &Entry, a: &Entry) -> bool {
    b.kind != a.kind
        || match b.kind {
            Kind::File => b.hash != a.hash,
            Kind::Symlink => b.target != a.target,
            Kind::Dir | Kind::Special => false,
        }
}

/// The changes between two manifests of the same root, sorted by path.
///
/// A file whose content could not be saved after the run counts as modified (it cannot be
/// compared), and a directory that could not be listed as modified itself, with nothing known
/// below it: what was there before is not claimed deleted.
pub fn diff(before: &RootManifest, after: &RootManifest) -> Vec<Change> {
    let root = &before.root;
    let bmap = before.by_path();
    let amap = after.by_path();
    let unlisted: Vec<&Path> = after
        .entries
        .iter()
        .filter(|a| a.kind == Kind::Dir && a.unsaved.is_some())
        .map(|a| a.path.as_path())
        .collect();
    let below_unlisted = |p: &Path| unlisted.iter().any(|u| p != *u && p.starts_with(u));
    let mut out = Vec::new();
    let mut deleted: Vec<&Entry> = Vec::new();
    let mut created: Vec<&Entry> = Vec::new();
    for b in &before.entries {
        match amap.get(b.path.as_path()) {
            None if below_unlisted(&b.path) => {}
            None => deleted.push(b),
            Some(a) if content_differs(b, a) || a.unsaved.is_some() => out.push(Change {
                op: Op::Modified,
                path: abs(root, &b.path),
                from: None,
                before: Some(b.into()),
                after: Some((*a).into()),
            }),
            Some(a) if b.mode != a.mode => out.push(Change {
                op: Op::ModeChanged,
                path: abs(root, &b.path),
                from: None,
                before: Some(b.into()),
                after: Some((*a).into()),
            }),
            Some(_) => {}
        }
    }
    for a in &after.entries {
        if !bmap.contains_key(a.path.as_path()) {
            created.push(a);
        }
    }
    // Renames: a deleted file and a created file with the same content. Each deleted file
    // pairs with at most one created file.
    let mut by_hash: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, d) in deleted.iter().enumerate() {
        if let (Kind::File, Some(h)) = (d.kind, &d.hash) {
            by_hash.entry(h.as_str()).or_default().push(i);
        }
    }
    let mut used = vec![false; deleted.len()];
    for c in created {
        let pair = match (c.kind, &c.hash) {
            (Kind::File, Some(h)) => by_hash.get_mut(h.as_str()).and_then(|v| v.pop()),
            _ => None,
        };
        match pair {
            Some(i) => {
                used[i] = true;
                out.push(Change {
                    op: Op::Renamed,
                    path: abs(root, &c.path),
                    from: Some(abs(root, &deleted[i].path)),
                    before: Some(deleted[i].into()),
                    after: Some(c.into()),
                });
            }
            None => out.push(Change {
                op: Op::Created,
                path: abs(root, &c.path),
                from: None,
                before: None,
                after: Some(c.into()),
            }),
        }
    }
    for (i, d) in deleted.iter().enumerate() {
        if !used[i] {
            out.push(Change {
                op: Op::Deleted,
                path: abs(root, &d.path),
                from: None,
                before: Some((*d).into()),
                after: None,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.op.cmp(&b.op)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: Kind, mode: u32, hash: Option<&str>) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 1,
            mtime: 0,
            mtime_nsec: 0,
            ctime: 0,
            ctime_nsec: 0,
            dev: 1,
            ino: 1,
            hash: hash.map(str::to_string),
            target: None,
            unsaved: None,
        }
    }

    #[test]
    fn each_kind_of_change_is_named() {
        let root = PathBuf::from("/w");
        let before = RootManifest {
            root: root.clone(),
            entries: vec![
                e("", Kind::Dir, 0o755, None),
                e("gone", Kind::File, 0o644, Some("aa")),
                e("edit", Kind::File, 0o644, Some("bb")),
                e("old", Kind::File, 0o644, Some("cc")),
                e("exe", Kind::File, 0o644, Some("dd")),
                e("swap", Kind::File, 0o644, Some("ee")),
            ],
            skipped: vec![],
        };
        let mut swap = e("swap", Kind::Symlink, 0o777, None);
        swap.target = Some("/root/.bashrc".into());
        let after = RootManifest {
            root: root.clone(),
            entries: vec![
                e("", Kind::Dir, 0o755, None),
                e("edit", Kind::File, 0o644, Some("b2")),
                e("new", Kind::File, 0o644, Some("cc")),
                e("exe", Kind::File, 0o755, Some("dd")),
                e("made", Kind::File, 0o600, Some("ff")),
                swap,
            ],
            skipped: vec![],
        };
        let got: Vec<(Op, String)> = diff(&before, &after)
            .into_iter()
            .map(|c| (c.op, c.path.display().to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Op::Modified, "/w/edit".into()),
                (Op::ModeChanged, "/w/exe".into()),
                (Op::Deleted, "/w/gone".into()),
                (Op::Created, "/w/made".into()),
                (Op::Renamed, "/w/new".into()),
                (Op::Modified, "/w/swap".into()),
            ]
        );
    }

    #[test]
    fn what_could_not_be_saved_is_modified_and_hides_nothing_as_deleted() {
        let root = PathBuf::from("/w");
        let before = RootManifest {
            root: root.clone(),
            entries: vec![
                e("", Kind::Dir, 0o755, None),
                e("locked", Kind::Dir, 0o755, None),
                e("locked/inside", Kind::File, 0o644, Some("aa")),
                e("same", Kind::File, 0o644, Some("bb")),
            ],
            skipped: vec![],
        };
        let mut locked = e("locked", Kind::Dir, 0o000, None);
        locked.unsaved = Some("cannot list it".into());
        let mut same = e("same", Kind::File, 0o000, None);
        same.unsaved = Some("cannot read it".into());
        let mut new = e("new", Kind::File, 0o000, None);
        new.unsaved = Some("cannot read it".into());
        let after = RootManifest {
            root: root.clone(),
            entries: vec![e("", Kind::Dir, 0o755, None), locked, same, new],
            skipped: vec![],
        };
        let got: Vec<(Op, String, bool)> = diff(&before, &after)
            .into_iter()
            .map(|c| {
                let marked = c.after.as_ref().is_some_and(|a| a.unsaved.is_some());
                (c.op, c.path.display().to_string(), marked)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Op::Modified, "/w/locked".into(), true),
                (Op::Created, "/w/new".into(), true),
                (Op::Modified, "/w/same".into(), true),
            ]
        );
    }
}
