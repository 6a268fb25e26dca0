//! The policy as it applies on this machine, for this run: variables expanded, nono's own state
//! denied, and deny-inside-grant checked on canonical paths.
//!
//! The back-end finds denies inside grants symbolically (`$HOME/.ssh` under `$HOME/**`). Only
//! here, with the variables' values and the filesystem at hand, can nono see the rest: a deny
//! under `$XDG_CONFIG_HOME` inside a grant on `$HOME`, or a grant whose path is a symlink into a
//! denied directory. Landlock can only grant, so every such overlap would expose what the deny
//! protects; each is reported with both rules and their origins, and `nono run` refuses.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use nono_policy::ir::{Access, Effect, FsRule, Origin, Policy, RuleId};
use nono_policy::path::{PathVar, PathVars, PolicyPath};

/// Where nono's implicit rules come from, in provenance.
pub const IMPLICIT_SOURCE: &str = "builtin:nono-state";

/// Expand the policy for this run and add the implicit denies on nono's own state
/// (`$XDG_STATE_HOME/nono`: audit database and rollback store; `$XDG_CONFIG_HOME/nono`:
/// configuration and profiles). The implicit rules get the next free ids.
pub fn expand(policy: &Policy, vars: &PathVars) -> Result<Policy, String> {
    let mut p = policy.expand(vars)?;
    let mut next = max_rule_id(&p) + 1;
    for (i, var) in [PathVar::XdgStateHome, PathVar::XdgConfigHome]
        .into_iter()
        .enumerate()
    {
        let Some(base) = vars.get(var) else { continue };
        let Some(text) = base.join("nono").to_str().map(|s| format!("{s}/**")) else {
            continue;
        };
        let path = PolicyPath::parse(&text).map_err(|e| format!("${}: {e}", var.name()))?;
        let id = RuleId(next);
        next += 1;
        p.fs.push(FsRule {
            id,
            path,
            effect: Effect::Deny,
            access: Access::ALL,
        });
        p.provenance.rules.insert(
            id,
            vec![Origin {
                source: IMPLICIT_SOURCE.into(),
                line: 1,
                column: i as u32 + 1,
            }],
        );
    }
    Ok(p)
}

fn max_rule_id(p: &Policy) -> u32 {
    p.provenance
        .rules
        .keys()
        .map(|id| id.0)
        .fold(p.max_rule_id(), u32::max)
}

/// Canonical paths already looked up in one pass. Rule paths share long prefixes (`$HOME`,
/// `/etc`), and `std::fs::canonicalize` (glibc `realpath`) costs a `readlink` per component of
/// every path it is given, so resolution is done here one component at a time with every
/// resolved prefix remembered: a start-up that checks dozens of rules asks the kernel once per
/// distinct path prefix (one `readlink`) instead of once per component per path.
///
/// The result is `realpath`'s: each component is looked up in its canonical parent, a symlink is
/// replaced by its target (resolved the same way, relative targets against the link's
/// directory), `.` is dropped and `..` goes to the canonical parent's parent; a component that
/// does not exist, a non-directory in the middle, a lookup this user may not make, or more than
/// 40 symlinks ([`MAX_SYMLINKS`], Linux's ELOOP limit) make the path unresolvable.
#[derive(Debug, Default)]
pub struct Canonical {
    /// Keyed by the path's bytes: hashing a `Path` walks its components.
    known: HashMap<std::ffi::OsString, Option<PathBuf>>,
}

/// Symlinks followed while resolving one path before giving up, as the kernel does (ELOOP).
const MAX_SYMLINKS: u32 = 40;

/// `readlink(2)`: `Ok(Some(target))` for a symlink, `Ok(None)` for anything else that exists.
fn read_link(path: &Path) -> std::io::Result<Option<PathBuf>> {
    match std::fs::read_link(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Canonical {
    /// `std::fs::canonicalize`, remembered; `None` when the path does not resolve.
    pub fn existing(&mut self, path: &Path) -> Option<PathBuf> {
        if !path.is_absolute() {
            return std::fs::canonicalize(path).ok();
        }
        let mut links = 0;
        self.resolve(path, &mut links)
    }

    fn resolve(&mut self, path: &Path, links: &mut u32) -> Option<PathBuf> {
        if let Some(known) = self.known.get(path.as_os_str()) {
            return known.clone();
        }
        let resolved = match (path.parent(), path.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                let parent = self.resolve(parent, links)?;
                let candidate = parent.join(name);
                match read_link(&candidate) {
                    Ok(None) => Some(candidate),
                    Ok(Some(target)) => {
                        *links += 1;
                        if *links > MAX_SYMLINKS {
                            return None;
                        }
                        // An absolute target replaces the parent; `join` does exactly that.
                        // A failure may come from the link budget of this lookup only: it is
                        // not remembered (`?` returns before the insert below).
                        Some(self.resolve(&parent.join(target), links)?)
                    }
                    Err(_) => None,
                }
            }
            (Some(parent), Some(Component::CurDir)) => self.resolve(parent, links),
            (Some(parent), Some(Component::ParentDir)) => {
                let parent = self.resolve(parent, links)?;
                // `dir/..` needs `dir` to be a directory, as in the kernel's lookup.
                if !parent.is_dir() {
                    return None;
                }
                Some(
                    parent
                        .parent()
                        .map_or_else(|| parent.clone(), Path::to_path_buf),
                )
            }
            // The root (or a prefix, on other systems) resolves to itself.
            _ => Some(path.components().collect()),
        };
        self.known
            .insert(path.as_os_str().to_os_string(), resolved.clone());
        resolved
    }

    /// The canonical form of a path that may not exist yet: the deepest existing ancestor is
    /// canonicalised and the rest appended, so a deny on a file that does not exist yet still
    /// lands where it would be created.
    pub fn lenient(&mut self, path: &Path) -> PathBuf {
        if let Some(c) = self.existing(path) {
            return c;
        }
        let mut rest = Vec::new();
        let mut cur = path.to_path_buf();
        while let Some(parent) = cur.parent().map(Path::to_path_buf) {
            if let Some(name) = cur.file_name() {
                rest.push(name.to_os_string());
            }
            if let Some(mut c) = self.existing(&parent) {
                for n in rest.iter().rev() {
                    c.push(n);
                }
                return c;
            }
            cur = parent;
        }
        path.to_path_buf()
    }
}

/// [`Canonical::lenient`] for a single path.
pub fn canonical_lenient(path: &Path) -> PathBuf {
    Canonical::default().lenient(path)
}

/// A rule with its description and origin, for messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleRef {
    pub id: RuleId,
    pub text: String,
    pub origin: Option<String>,
}

impl RuleRef {
    pub fn of(policy: &Policy, id: RuleId) -> RuleRef {
        let text = policy.rule_summary(id).unwrap_or_else(|| id.to_string());
        RuleRef {
            id,
            text,
            origin: policy.provenance.origin(id).map(|o| o.to_string()),
        }
    }
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`", self.id, self.text)?;
        if let Some(o) = &self.origin {
            write!(f, " ({o})")?;
        }
        Ok(())
    }
}

/// A deny that a grant would expose on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub deny: RuleRef,
    pub grant: RuleRef,
    pub deny_path: PathBuf,
    pub grant_path: PathBuf,
    /// The grant's path resolves to somewhere inside the deny (a symlink), rather than the
    /// deny lying below the grant.
    pub grant_inside_deny: bool,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Show where a rule resolved to only when its text does not already say it.
        let at = |r: &RuleRef, p: &Path| {
            let shown = p.display().to_string();
            if r.text.contains(&shown) {
                String::new()
            } else {
                format!(" [resolves to {shown}]")
            }
        };
        if self.grant_inside_deny {
            write!(
                f,
                "grant {}{} lies inside deny {}{}",
                self.grant,
                at(&self.grant, &self.grant_path),
                self.deny,
                at(&self.deny, &self.deny_path)
            )
        } else {
            write!(
                f,
                "deny {}{} lies inside grant {}{}",
                self.deny,
                at(&self.deny, &self.deny_path),
                self.grant,
                at(&self.grant, &self.grant_path)
            )
        }
    }
}

fn concrete(p: &PolicyPath) -> Option<PathBuf> {
    p.root()
        .is_none()
        .then(|| p.expand(&PathVars::new()).ok())?
}

#[cfg(test)]
fn is_below(path: &Path, base: &Path) -> bool {
    is_below_flagged(path, is_normal(path), base, is_normal(base))
}

/// [`is_below`] with each path's [`is_normal`] already known (a loop over pairs computes it
/// once per path, not once per pair).
fn is_below_flagged(path: &Path, path_normal: bool, base: &Path, base_normal: bool) -> bool {
    if path_normal && base_normal {
        return bytes_below(path, base);
    }
    path.starts_with(base) && path.components().all(|c| c != Component::ParentDir)
}

/// Path equality, as bytes when both are in normal form (`Path`'s `==` compares components).
fn same_path(a: &Path, a_normal: bool, b: &Path, b_normal: bool) -> bool {
    if a_normal && b_normal {
        return a.as_os_str() == b.as_os_str();
    }
    a == b
}

fn is_normal(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    is_normal_form(p.as_os_str().as_bytes())
}

/// `a == b` for paths, as bytes when both are in normal form.
pub fn path_eq(a: &Path, b: &Path) -> bool {
    same_path(a, is_normal(a), b, is_normal(b))
}

/// For absolute paths in normal form: `base` is a leading run of `path`'s components.
fn bytes_below(path: &Path, base: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (p, b) = (path.as_os_str().as_bytes(), base.as_os_str().as_bytes());
    p.starts_with(b) && (p.len() == b.len() || b == b"/" || p[b.len()] == b'/')
}

/// [`Path::starts_with`], comparing bytes when both paths are in normal form (what
/// [`Canonical`] returns, and what joining plain names onto it gives).
pub fn path_starts_with(path: &Path, base: &Path) -> bool {
    normal_starts_with(path, base).unwrap_or_else(|| path.starts_with(base))
}

/// For absolute paths in normal form, "`base` is a leading run of `path`'s components" is a
/// byte prefix that ends at a separator (and such a path has no `..`); `None` for other paths.
fn normal_starts_with(path: &Path, base: &Path) -> Option<bool> {
    (is_normal(path) && is_normal(base)).then(|| bytes_below(path, base))
}

/// An absolute path with no empty, `.` or `..` component and no trailing separator (`/` itself
/// included): its bytes and its components say the same thing.
fn is_normal_form(p: &[u8]) -> bool {
    if p == b"/" {
        return true;
    }
    p.first() == Some(&b'/')
        && p[1..]
            .split(|c| *c == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Every (deny, grant) pair of an expanded policy whose canonical paths overlap with a common
/// access. A grant whose path does not exist is skipped at run time and cannot conflict. Deny
/// rules of `exec.deny` count as exec denies.
pub fn conflicts(policy: &Policy) -> Vec<Conflict> {
    let mut canonical = Canonical::default();
    // Each deny's canonical path, and whether it is in normal form.
    let mut denies: Vec<(RuleId, Access, PathBuf, bool)> = Vec::new();
    let mut deny = |id, access, p: &Path| {
        let c = canonical.lenient(p);
        let normal = is_normal(&c);
        denies.push((id, access, c, normal));
    };
    for r in policy.fs.iter().filter(|r| r.effect == Effect::Deny) {
        if let Some(p) = concrete(&r.path) {
            deny(r.id, r.access, &p);
        }
    }
    for r in &policy.exec.deny {
        if let Some(p) = concrete(&r.path) {
            deny(r.id, Access::EXEC, &p);
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for g in policy.fs.iter().filter(|r| r.effect == Effect::Allow) {
        let Some(gp) = concrete(&g.path) else {
            continue;
        };
        let Some(gc) = canonical.existing(&gp) else {
            continue;
        };
        // Landlock applies a rule on a directory to everything below it, whatever the scope.
        let g_is_dir = gc.is_dir();
        let g_normal = is_normal(&gc);
        for (did, daccess, dc, d_normal) in &denies {
            if !g.access.intersects(*daccess) {
                continue;
            }
            let deny_below = if g_is_dir {
                is_below_flagged(dc, *d_normal, &gc, g_normal)
            } else {
                same_path(dc, *d_normal, &gc, g_normal)
            };
            let grant_below = !deny_below && is_below_flagged(&gc, g_normal, dc, *d_normal);
            if (deny_below || grant_below) && seen.insert((*did, g.id), ()).is_none() {
                out.push(Conflict {
                    deny: RuleRef::of(policy, *did),
                    grant: RuleRef::of(policy, g.id),
                    deny_path: dc.clone(),
                    grant_path: gc.clone(),
                    grant_inside_deny: grant_below,
                });
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nono_policy::ir::*;

    pub fn policy(fs: Vec<(&str, Effect, Access)>) -> Policy {
        let mut provenance = Provenance::default();
        let fs = fs
            .into_iter()
            .enumerate()
            .map(|(i, (p, effect, access))| {
                let id = RuleId(i as u32 + 1);
                provenance.rules.insert(
                    id,
                    vec![Origin {
                        source: "test.nono".into(),
                        line: i as u32 + 1,
                        column: 1,
                    }],
                );
                FsRule {
                    id,
                    path: PolicyPath::parse(p).unwrap(),
                    effect,
                    access,
                }
            })
            .collect();
        Policy {
            meta: Meta::default(),
            fs,
            exec: ExecPolicy::default(),
            net: NetPolicy::default(),
            ipc: IpcPolicy::default(),
            env: EnvPolicy::default(),
            audit: AuditPolicy::default(),
            rollback: RollbackPolicy::default(),
            overrides: Overrides::default(),
            provenance,
        }
    }

    fn vars(home: &Path) -> PathVars {
        let mut v = PathVars::new();
        v.set(PathVar::Home, home).set(PathVar::Workdir, home);
        v
    }

    #[test]
    fn implicit_state_denies_catch_a_broad_grant() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        let p = policy(vec![("$HOME/**", Effect::Allow, Access::READ_WRITE)]);
        let e = expand(&p, &vars(&h)).unwrap();
        assert_eq!(e.fs.len(), 3);
        assert_eq!(
            &*e.provenance.origin(RuleId(2)).unwrap().source,
            IMPLICIT_SOURCE
        );
        let c = conflicts(&e);
        assert_eq!(c.len(), 2, "{c:?}");
        let msg = c[0].to_string();
        assert!(
            msg.contains(".local/state/nono") && msg.contains("test.nono:1:1"),
            "{msg}"
        );
    }

    #[test]
    fn deny_inside_grant_names_both_rules() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        std::fs::create_dir(h.join(".ssh")).unwrap();
        let p = policy(vec![
            ("$HOME/**", Effect::Allow, Access::READ_WRITE),
            ("$HOME/.ssh/**", Effect::Deny, Access::ALL),
            ("$HOME/.git/hooks/**", Effect::Deny, Access::WRITE),
        ]);
        let e = expand(&p, &vars(&h)).unwrap();
        let c = conflicts(&e);
        let ids: Vec<_> = c.iter().map(|c| (c.deny.id, c.grant.id)).collect();
        assert!(ids.contains(&(RuleId(2), RuleId(1))), "{ids:?}");
        // A deny on a path that does not exist yet still conflicts.
        assert!(ids.contains(&(RuleId(3), RuleId(1))), "{ids:?}");
        let m = c[0].to_string();
        assert!(
            m.contains("r2") && m.contains("r1") && m.contains("test.nono:2:1"),
            "{m}"
        );
    }

    #[test]
    fn canonical_resolves_like_realpath() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(root.path()).unwrap();
        std::fs::create_dir_all(r.join("a/b/c")).unwrap();
        std::fs::write(r.join("a/b/file"), "x").unwrap();
        symlink("b", r.join("a/rel")).unwrap();
        symlink(r.join("a/b/c"), r.join("abs")).unwrap();
        symlink("../a/rel/c", r.join("a/up")).unwrap();
        symlink("abs", r.join("chain")).unwrap();
        symlink("missing", r.join("dangling")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        symlink("file", r.join("a/b/filelink")).unwrap();
        let cases = [
            "",
            "a",
            "a/b/c",
            "a/rel",
            "a/rel/c",
            "a/rel/file",
            "abs",
            "abs/..",
            "a/up",
            "a/up/../../b/file",
            "chain",
            "chain/../c",
            "dangling",
            "loop1",
            "loop1/x",
            "a/b/file",
            "a/b/file/x",
            "a/b/file/..",
            "a/b/filelink",
            "a/./b/./c",
            "a/b/../../a/b",
            "a/missing",
            "a/missing/..",
        ];
        let mut canonical = Canonical::default();
        for c in cases {
            let p = r.join(c);
            let want = std::fs::canonicalize(&p).ok();
            // Twice: the second answer comes from what the first remembered.
            assert_eq!(canonical.existing(&p), want, "{c}");
            assert_eq!(canonical.existing(&p), want, "{c} (remembered)");
        }
        assert_eq!(canonical.existing(Path::new("/")), Some(PathBuf::from("/")));
    }

    #[test]
    fn is_below_compares_components() {
        let yes = [
            ("/a/b", "/a"),
            ("/a", "/a"),
            ("/a", "/"),
            ("/", "/"),
            ("/a//b", "/a/b"),
            ("/a/./b/", "/a/b"),
        ];
        let no = [
            ("/ab", "/a"),
            ("/a", "/a/b"),
            ("/b", "/a"),
            ("/a/../b", "/a"),
            ("/a/b/..", "/a/b"),
        ];
        for (p, b) in yes {
            assert!(is_below(Path::new(p), Path::new(b)), "{p} below {b}");
        }
        for (p, b) in no {
            assert!(!is_below(Path::new(p), Path::new(b)), "{p} not below {b}");
        }
        for (p, b) in yes.iter().chain(&no).copied() {
            let (p, b) = (Path::new(p), Path::new(b));
            assert_eq!(path_starts_with(p, b), p.starts_with(b), "{p:?} {b:?}");
            assert_eq!(path_eq(p, b), p == b, "{p:?} {b:?}");
        }
    }

    #[test]
    fn grant_through_a_symlink_into_a_deny() {
        let root = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(root.path()).unwrap();
        std::fs::create_dir_all(r.join("secret/keys")).unwrap();
        std::os::unix::fs::symlink(r.join("secret/keys"), r.join("innocent")).unwrap();
        let p = policy(vec![
            (
                &format!("{}/innocent/**", r.display()),
                Effect::Allow,
                Access::READ,
            ),
            (
                &format!("{}/secret/**", r.display()),
                Effect::Deny,
                Access::READ,
            ),
        ]);
        let c = conflicts(&p);
        assert_eq!(c.len(), 1);
        assert!(c[0].grant_inside_deny);
    }

    #[test]
    fn disjoint_access_or_paths_do_not_conflict() {
        let root = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(root.path()).unwrap();
        std::fs::create_dir_all(r.join("a")).unwrap();
        let p = policy(vec![
            (
                &format!("{}/a/**", r.display()),
                Effect::Allow,
                Access::READ,
            ),
            (
                &format!("{}/a/hooks/**", r.display()),
                Effect::Deny,
                Access::WRITE,
            ),
            (&format!("{}/ab/**", r.display()), Effect::Deny, Access::ALL),
            ("/nonexistent/nono/**", Effect::Allow, Access::ALL),
        ]);
        assert!(conflicts(&p).is_empty(), "{:?}", conflicts(&p));
    }
}
