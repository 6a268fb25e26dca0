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

use crate::path::{PathVar, PolicyPath, Scope};

/// One spelling of a path: its root variable (`None` for `/`) and its components.
pub(crate) type Spelling = (Option<PathVar>, Vec<String>);

/// Every spelling a path is compared under: itself, then its default spelling if its variable
/// has one.
pub(crate) fn spellings(path: &PolicyPath) -> Vec<Spelling> {
    let own = (path.root(), path.components().to_vec());
    let default = match path.root() {
        Some(PathVar::Tmpdir) => Some((None, vec!["tmp".to_string()])),
        Some(var) => var.home_default().map(|rel| {
            (
                Some(PathVar::Home),
                rel.split('/').map(str::to_string).collect(),
            )
        }),
        None => None,
    };
    match default {
        Some((root, mut prefix)) => {
            prefix.extend(path.components().iter().cloned());
            vec![own, (root, prefix)]
        }
        None => vec![own],
    }
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

#[derive(Debug)]
struct Node<T> {
    items: Vec<T>,
    children: HashMap<String, Node<T>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            items: Vec::new(),
            children: HashMap::new(),
        }
    }
}

/// Items keyed by path, found by "at or above this path".
#[derive(Debug)]
pub(crate) struct PathTrie<T> {
    roots: HashMap<Option<PathVar>, Node<T>>,
}

impl<T: Copy> PathTrie<T> {
    pub(crate) fn new() -> Self {
        PathTrie {
            roots: HashMap::new(),
        }
    }

    /// Store `item` under every spelling of `path`.
    pub(crate) fn insert(&mut self, path: &PolicyPath, item: T) {
        for (root, components) in spellings(path) {
            let mut node = self.roots.entry(root).or_default();
            for c in components {
                node = node.children.entry(c).or_default();
            }
            node.items.push(item);
        }
    }

    /// Call `found(item, same_object)` for every item stored at or above any spelling of `path`,
    /// `/` included. An item can be reported more than once (once per matching spelling).
    pub(crate) fn at_or_above(&self, path: &PolicyPath, mut found: impl FnMut(T, bool)) {
        for (root, components) in spellings(path) {
            if root.is_some() {
                // `/` holds every variable's value.
                if let Some(slash) = self.roots.get(&None) {
                    slash.items.iter().for_each(|i| found(*i, false));
                }
            }
            let Some(mut node) = self.roots.get(&root) else {
                continue;
            };
            node.items
                .iter()
                .for_each(|i| found(*i, components.is_empty()));
            for (depth, c) in components.iter().enumerate() {
                match node.children.get(c) {
                    Some(child) => node = child,
                    None => break,
                }
                let same = depth + 1 == components.len();
                node.items.iter().for_each(|i| found(*i, same));
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
        let mut t = PathTrie::new();
        t.insert(&p("$HOME/**"), 1);
        t.insert(&p("/**"), 2);
        t.insert(&p("$XDG_CONFIG_HOME/gh"), 3);
        t.insert(&p("/tmp/**"), 4);
        assert_eq!(
            above(&t, "$XDG_CONFIG_HOME/gh"),
            vec![(1, false), (2, false), (3, true)]
        );
        assert_eq!(
            above(&t, "$HOME/.config/gh/hosts.yml"),
            vec![(1, false), (3, false)]
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
