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
//! Lookups walk a trie of path components, so finding every rule at or above a path costs its
//! depth, not the number of rules (the 5,000-rule bench depends on this).

use std::collections::HashMap;

use crate::path::{Components, PathVar, PolicyPath, Scope};

/// One spelling of a path, borrowed: its root variable (`None` for `/`), then a fixed prefix
/// (the default a variable stands for), then the path's own components.
#[derive(Clone)]
pub(crate) struct Spelling<'a> {
    pub root: Option<PathVar>,
    prefix: &'static [&'static str],
    rest: Components<'a>,
}

impl<'a> Spelling<'a> {
    pub fn len(&self) -> usize {
        self.prefix.len() + self.rest.len()
    }
    pub fn components(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.prefix.iter().copied().chain(self.rest.clone())
    }
}

/// The defaults variables stand for when unset, as spelled under another root.
fn default_spelling(var: PathVar) -> Option<(Option<PathVar>, &'static [&'static str])> {
    Some(match var {
        PathVar::Tmpdir => (None, &["tmp"]),
        PathVar::XdgConfigHome => (Some(PathVar::Home), &[".config"]),
        PathVar::XdgDataHome => (Some(PathVar::Home), &[".local", "share"]),
        PathVar::XdgStateHome => (Some(PathVar::Home), &[".local", "state"]),
        PathVar::XdgCacheHome => (Some(PathVar::Home), &[".cache"]),
        PathVar::Home | PathVar::Workdir | PathVar::XdgRuntimeDir => return None,
    })
}

/// Every spelling a path is compared under: itself, then its default spelling if its variable
/// has one.
pub(crate) fn spellings(path: &PolicyPath) -> impl Iterator<Item = Spelling<'_>> {
    let own = Spelling {
        root: path.root(),
        prefix: &[],
        rest: path.components(),
    };
    let default = path
        .root()
        .and_then(default_spelling)
        .map(|(root, prefix)| Spelling {
            root,
            prefix,
            rest: path.components(),
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

/// Items keyed by path, found by "at or above this path". Nodes live in one vector and edges
/// in one map keyed by (parent node, component), borrowing the components from the policy, so
/// building the trie allocates per node, not per component string.
#[derive(Debug)]
pub(crate) struct PathTrie<'a, T> {
    /// Node ids of each root's `/`.
    roots: HashMap<Option<PathVar>, usize>,
    edges: HashMap<(usize, &'a str), usize>,
    items: Vec<Vec<T>>,
}

impl<'a, T: Copy> PathTrie<'a, T> {
    /// A trie sized for `paths`, so that building it does not grow (and rehash) its edge map
    /// step by step: an edge per component, plus a few for the `$XDG_*` default spellings.
    pub(crate) fn for_paths<'p>(paths: impl Iterator<Item = &'p PolicyPath>) -> Self {
        let edges: usize = paths.map(|p| p.depth() + 2).sum();
        PathTrie {
            roots: HashMap::with_capacity(4),
            edges: HashMap::with_capacity(edges),
            items: Vec::with_capacity(edges + 4),
        }
    }

    fn new_node(&mut self) -> usize {
        self.items.push(Vec::new());
        self.items.len() - 1
    }

    /// Store `item` under every spelling of `path`.
    pub(crate) fn insert(&mut self, path: &'a PolicyPath, item: T) {
        for spelling in spellings(path) {
            let mut node = match self.roots.get(&spelling.root) {
                Some(n) => *n,
                None => {
                    let n = self.new_node();
                    self.roots.insert(spelling.root, n);
                    n
                }
            };
            for c in spelling.components() {
                node = match self.edges.get(&(node, c)) {
                    Some(n) => *n,
                    None => {
                        let n = self.new_node();
                        self.edges.insert((node, c), n);
                        n
                    }
                };
            }
            self.items[node].push(item);
        }
    }

    /// Call `found(item, same_object)` for every item stored at or above any spelling of `path`,
    /// `/` included. An item can be reported more than once (once per matching spelling).
    pub(crate) fn at_or_above(&self, path: &PolicyPath, mut found: impl FnMut(T, bool)) {
        for spelling in spellings(path) {
            if spelling.root.is_some() {
                // `/` holds every variable's value.
                if let Some(slash) = self.roots.get(&None) {
                    self.items[*slash].iter().for_each(|i| found(*i, false));
                }
            }
            let Some(&root) = self.roots.get(&spelling.root) else {
                continue;
            };
            let len = spelling.len();
            self.items[root].iter().for_each(|i| found(*i, len == 0));
            let mut node = root;
            for (depth, c) in spelling.components().enumerate() {
                match self.edges.get(&(node, c)) {
                    Some(child) => node = *child,
                    None => break,
                }
                let same = depth + 1 == len;
                self.items[node].iter().for_each(|i| found(*i, same));
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

    #[test]
    fn scope_rules() {
        assert!(covers(Scope::Subtree, Scope::Subtree, true));
        assert!(covers(Scope::Subtree, Scope::Exact, false));
        assert!(covers(Scope::Exact, Scope::Exact, true));
        assert!(!covers(Scope::Exact, Scope::Subtree, true));
        assert!(!covers(Scope::Exact, Scope::Exact, false));
    }
}
