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
/// `/etc`), and each `canonicalize` costs a `readlink` per component, so a start-up that
/// checks dozens of rules asks the kernel once per distinct path instead.
#[derive(Debug, Default)]
pub struct Canonical {
    known: HashMap<PathBuf, Option<PathBuf>>,
}

impl Canonical {
    /// `std::fs::canonicalize`, remembered; `None` when the path does not resolve.
    pub fn existing(&mut self, path: &Path) -> Option<PathBuf> {
        if let Some(known) = self.known.get(path) {
            return known.clone();
        }
        let resolved = std::fs::canonicalize(path).ok();
        self.known.insert(path.to_path_buf(), resolved.clone());
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

fn is_below(path: &Path, base: &Path) -> bool {
    path.starts_with(base) && path.components().all(|c| c != Component::ParentDir)
}

/// Every (deny, grant) pair of an expanded policy whose canonical paths overlap with a common
/// access. A grant whose path does not exist is skipped at run time and cannot conflict. Deny
/// rules of `exec.deny` count as exec denies.
pub fn conflicts(policy: &Policy) -> Vec<Conflict> {
    let mut canonical = Canonical::default();
    let mut denies: Vec<(RuleId, Access, PathBuf)> = Vec::new();
    for r in policy.fs.iter().filter(|r| r.effect == Effect::Deny) {
        if let Some(p) = concrete(&r.path) {
            denies.push((r.id, r.access, canonical.lenient(&p)));
        }
    }
    for r in &policy.exec.deny {
        if let Some(p) = concrete(&r.path) {
            denies.push((r.id, Access::EXEC, canonical.lenient(&p)));
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
        for (did, daccess, dc) in &denies {
            if !g.access.intersects(*daccess) {
                continue;
            }
            let deny_below = if g_is_dir {
                is_below(dc, &gc)
            } else {
                dc == &gc
            };
            let grant_below = !deny_below && is_below(&gc, dc);
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
            e.provenance.origin(RuleId(2)).unwrap().source,
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
