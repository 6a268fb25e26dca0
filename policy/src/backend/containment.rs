//! Symbolic path containment shared by the back-ends.
//!
//! Paths stay symbolic at compile time, so "is this deny inside that grant?" is answered on
//! spellings, not on inodes. Two rules make the answer conservative enough to be useful:
//!
//! - A variable with a default is also compared under that default: `$XDG_CONFIG_HOME/gh` is
//!   compared as `$HOME/.config/gh` too, and `$TMPDIR/x` as `/tmp/x`. A deny under
//!   `$XDG_CONFIG_HOME` is therefore seen inside a grant on `$HOME/**`.
//! - `/` contains every path, whatever variable it starts with.
//!
//! Overlaps that only exist on one machine (`$WORKDIR` set to `$HOME`, a grant on `/home/**`
//! that holds `$HOME`) cannot be seen symbolically: the runtime plans the *expanded* policy
//! ([`crate::ir::Policy::expand`]), where every path is absolute, and that plan is the one that
//! decides whether to start.
//!
//! Lookups go through a map from each stored path's text (its components after the root
//! variable) to the items stored there, and look up every prefix of the queried path at a
//! component boundary: finding every rule at or above a path costs its depth, not the number
//! of rules (the 5,000-rule bench depends on this), and storing a path costs one map entry, not
//! one per component. Prefixes are slices of the path's one text, so lookups allocate nothing
//! (but for the `$XDG_*`/`$TMPDIR` default spellings, which are built once per path). The maps
//! keep std's SipHash with a per-process key: their keys are profile paths, which whoever
//! writes the profile controls.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::path::{PathVar, PolicyPath, Scope};

/// One spelling of a path: its root variable (`None` for `/`), and the text of its components
/// after that root, each with a leading `/` (`/.config/gh` for `$XDG_CONFIG_HOME/gh` spelt
/// under `$HOME`). Borrowed from the path for its own spelling.
#[derive(Clone)]
pub(crate) struct Spelling<'a> {
    pub root: Option<PathVar>,
    pub rest: Cow<'a, str>,
}

/// The defaults variables stand for when unset, as spelled under another root.
fn default_spelling(var: PathVar) -> Option<(Option<PathVar>, &'static str)> {
    Some(match var {
        PathVar::Tmpdir => (None, "/tmp"),
        PathVar::XdgConfigHome => (Some(PathVar::Home), "/.config"),
        PathVar::XdgDataHome => (Some(PathVar::Home), "/.local/share"),
        PathVar::XdgStateHome => (Some(PathVar::Home), "/.local/state"),
        PathVar::XdgCacheHome => (Some(PathVar::Home), "/.cache"),
        PathVar::Home | PathVar::Workdir | PathVar::XdgRuntimeDir => return None,
    })
}

/// Every spelling a path is compared under: itself, then its default spelling if its variable
/// has one.
pub(crate) fn spellings(path: &PolicyPath) -> impl Iterator<Item = Spelling<'_>> {
    let own = Spelling {
        root: path.root(),
        rest: Cow::Borrowed(path.rest()),
    };
    let default = path
        .root()
        .and_then(default_spelling)
        .map(|(root, prefix)| Spelling {
            root,
            rest: Cow::Owned(format!("{prefix}{}", path.rest())),
        });
    std::iter::once(own).chain(default)
}

/// Does a rule on `outer` apply to the object `inner` names, under the policy's own scope
/// semantics? `same_object` says whether the two spellings matched component for component.
/// An exact `outer` covers only itself, and only an exact `inner` (an exact rule on a directory
/// says nothing about its content); a subtree `outer` covers everything at or below it.
pub(crate) fn covers(outer: Scope, inner: Scope, same_object: bool) -> bool {
    match outer {
        Scope::Subtree => true,
        Scope::Exact => same_object && inner == Scope::Exact,
    }
}

/// How many roots a path can have: `/` and each variable.
const ROOTS: usize = 1 + PathVar::ALL.len();

fn root_index(root: Option<PathVar>) -> usize {
    match root {
        None => 0,
        Some(v) => {
            1 + PathVar::ALL
                .iter()
                .position(|x| *x == v)
                .expect("every variable is in ALL")
        }
    }
}

/// The bit of [`PathTrie::depths`] for a key of `depth` components.
fn depth_bit(depth: usize) -> u64 {
    1 << depth.min(63)
}

/// Items keyed by path, found by "at or above this path". One map per root from a spelling's
/// component text to the first of its items; the items of one key are chained through `items`,
/// so storing an item allocates nothing once the vectors are sized.
#[derive(Debug)]
pub(crate) struct PathTrie<'a, T> {
    keys: [HashMap<Cow<'a, str>, usize>; ROOTS],
    /// Per root, bit `d` set when some key has `d` components (bit 63: 63 or more), so that
    /// a query looks up only the prefixes of a depth some stored path has.
    depths: [u64; ROOTS],
    /// Each item, and the index of the next item under the same key.
    items: Vec<(T, Option<usize>)>,
}

impl<'a, T: Copy> PathTrie<'a, T> {
    /// An index sized for `paths` (two spellings at most each).
    pub(crate) fn for_paths<'p>(paths: impl Iterator<Item = &'p PolicyPath>) -> Self {
        // Sized up front, so that building does not grow (and rehash) the maps step by step.
        let mut per_root = [0usize; ROOTS];
        for path in paths {
            per_root[root_index(path.root())] += 1;
            if let Some((root, _)) = path.root().and_then(default_spelling) {
                per_root[root_index(root)] += 1;
            }
        }
        PathTrie {
            keys: per_root.map(HashMap::with_capacity),
            depths: [0; ROOTS],
            items: Vec::with_capacity(per_root.iter().sum()),
        }
    }

    /// Store `item` under every spelling of `path`.
    pub(crate) fn insert(&mut self, path: &'a PolicyPath, item: T) {
        for spelling in spellings(path) {
            let index = self.items.len();
            let root = root_index(spelling.root);
            self.depths[root] |= depth_bit(spelling.rest.bytes().filter(|b| *b == b'/').count());
            let map = &mut self.keys[root];
            let next = map.insert(spelling.rest, index);
            self.items.push((item, next));
        }
    }

    /// Every item stored under exactly this key.
    fn under(&self, root: Option<PathVar>, key: &str, mut found: impl FnMut(T)) {
        let mut at = self.keys[root_index(root)].get(key).copied();
        while let Some(i) = at {
            let (item, next) = self.items[i];
            found(item);
            at = next;
        }
    }

    /// Call `found(item, same_object)` for every item stored at or above any spelling of `path`,
    /// `/` included. An item can be reported more than once (once per matching spelling).
    pub(crate) fn at_or_above(&self, path: &PolicyPath, mut found: impl FnMut(T, bool)) {
        for spelling in spellings(path) {
            if spelling.root.is_some() {
                // `/` holds every variable's value.
                self.under(None, "", |i| found(i, false));
            }
            let depths = self.depths[root_index(spelling.root)];
            if depths == 0 {
                continue;
            }
            let rest: &str = &spelling.rest;
            // Each prefix that ends at a component boundary: the root itself, then one more
            // component at a time.
            let ends = rest
                .bytes()
                .enumerate()
                .skip(1)
                .filter(|(_, b)| *b == b'/')
                .map(|(i, _)| i)
                .chain((!rest.is_empty()).then_some(rest.len()));
            if depths & depth_bit(0) != 0 {
                self.under(spelling.root, "", |i| found(i, rest.is_empty()));
            }
            for (depth, end) in (1..).zip(ends) {
                if depths & depth_bit(depth) != 0 {
                    self.under(spelling.root, &rest[..end], |i| found(i, end == rest.len()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PolicyPath {
        PolicyPath::parse(s).unwrap()
    }

    fn above(trie: &PathTrie<u32>, path: &str) -> Vec<(u32, bool)> {
        let mut v = Vec::new();
        trie.at_or_above(&p(path), |i, same| v.push((i, same)));
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn finds_ancestors_across_spellings() {
        let paths = [
            p("$HOME/**"),
            p("/**"),
            p("$XDG_CONFIG_HOME/gh"),
            p("/tmp/**"),
        ];
        let mut t = PathTrie::for_paths(paths.iter());
        for (i, path) in paths.iter().enumerate() {
            t.insert(path, i as u32 + 1);
        }
        assert_eq!(
            above(&t, "$XDG_CONFIG_HOME/gh"),
            vec![(1, false), (2, false), (3, true)]
        );
        assert_eq!(
            above(&t, "$HOME/.config/gh/hosts.yml"),
            vec![(1, false), (2, false), (3, false)]
        );
        assert_eq!(above(&t, "$TMPDIR/x"), vec![(2, false), (4, false)]);
        assert_eq!(above(&t, "/"), vec![(2, true)]);
        assert_eq!(above(&t, "$WORKDIR/x"), vec![(2, false)]);
    }

    /// The index against the definition it stands for: an item is found for a query when one
    /// of its path's spellings is a component-wise prefix of one of the query's spellings (or
    /// it is on `/` and the query starts with a variable), `same_object` when they are equal.
    #[test]
    fn index_agrees_with_component_prefixes() {
        let roots = ["", "$HOME", "$XDG_CONFIG_HOME", "$TMPDIR", "$WORKDIR"];
        // Deep enough to share the last depth bit: 70 and 71 components.
        let deep = "/d".repeat(70);
        let deeper = format!("{deep}/e");
        let bodies = [
            "",
            "/a",
            "/a/b",
            "/a-b",
            "/ab",
            "/.config",
            "/.config/a",
            "/tmp/a",
            "/a/b/c",
            &deep,
            &deeper,
        ];
        let mut paths = Vec::new();
        for root in roots {
            for body in bodies {
                for suffix in ["", "/**"] {
                    let text = match (root, body, suffix) {
                        ("", "", "") => "/".to_string(),
                        _ => format!("{root}{body}{suffix}"),
                    };
                    paths.push(p(&text));
                }
            }
        }
        let spelt = |path: &PolicyPath| -> Vec<(Option<PathVar>, Vec<String>)> {
            spellings(path)
                .map(|s| {
                    let comps = s.rest.split('/').skip(1).map(str::to_string).collect();
                    (s.root, comps)
                })
                .collect()
        };
        let mut index = PathTrie::for_paths(paths.iter());
        for (i, path) in paths.iter().enumerate() {
            index.insert(path, i);
        }
        for query in &paths {
            let mut got: Vec<(usize, bool)> = Vec::new();
            index.at_or_above(query, |i, same| got.push((i, same)));
            got.sort();
            got.dedup();
            let mut want: Vec<(usize, bool)> = Vec::new();
            for (i, stored) in paths.iter().enumerate() {
                for (qroot, q) in spelt(query) {
                    if qroot.is_some() && stored.root().is_none() && stored.depth() == 0 {
                        want.push((i, false));
                    }
                    for (sroot, s) in spelt(stored) {
                        if sroot == qroot && q.starts_with(&s) {
                            want.push((i, q.len() == s.len()));
                        }
                    }
                }
            }
            want.sort();
            want.dedup();
            assert_eq!(got, want, "at or above {query}");
        }
    }

    #[test]
    fn scope_rules() {
        assert!(covers(Scope::Subtree, Scope::Subtree, true));
        assert!(covers(Scope::Subtree, Scope::Exact, false));
        assert!(covers(Scope::Exact, Scope::Exact, true));
        assert!(!covers(Scope::Exact, Scope::Subtree, true));
        assert!(!covers(Scope::Exact, Scope::Exact, false));
    }
}
