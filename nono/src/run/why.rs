//! `nono why`: which rule decides an access, and where it was written.
//!
//! Pure over an expanded policy (see [`super::concrete::expand`]), apart from canonicalising
//! paths: rules bind to objects, so both the asked path and every rule's path are resolved
//! through symlinks before they are compared. The decision follows enforcement: a deny that
//! covers the path wins (the most specific deny names the rule), then the most specific grant,
//! else the default deny. A rule on a directory covers its contents, as Landlock applies it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nono_policy::ir::{Access, Effect, NetMode, Policy, RuleId};
use nono_policy::path::{PathVars, PolicyPath, Scope};
use serde::Serialize;

use super::concrete::{canonical_lenient, RuleRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Exec,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "read" => Some(Op::Read),
            "write" => Some(Op::Write),
            "exec" => Some(Op::Exec),
            _ => None,
        }
    }
    fn access(self) -> Access {
        match self {
            Op::Read => Access::READ,
            Op::Write => Access::WRITE,
            Op::Exec => Access::EXEC,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Exec => "exec",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub subject: String,
    pub op: String,
    pub decision: Verdict,
    /// The deciding rule; `None` for the default deny or an unrestricted network.
    pub rule: Option<RuleRef>,
    pub reason: String,
    /// Other rules that match but do not decide.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_matching: Vec<RuleRef>,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = match self.decision {
            Verdict::Allow => "ALLOW",
            Verdict::Deny => "DENY",
        };
        writeln!(f, "{} {}: {verdict}", self.op, self.subject)?;
        match &self.rule {
            Some(r) => writeln!(f, "  rule: {r}")?,
            None => writeln!(f, "  rule: none")?,
        }
        writeln!(f, "  why:  {}", self.reason)?;
        for r in &self.also_matching {
            writeln!(f, "  also matches: {r}")?;
        }
        Ok(())
    }
}

struct Candidate {
    id: RuleId,
    depth: usize,
}

/// Does a rule on `rule_path` cover `target` (both canonical)?
fn covers(rule_path: &Path, scope: Scope, target: &Path) -> bool {
    if target == rule_path {
        return true;
    }
    target.starts_with(rule_path) && (scope == Scope::Subtree || rule_path.is_dir())
}

/// The policy's file rules with their paths resolved once (canonical, and whether each is a
/// directory): deciding many paths, as the audit trail does for Landlock's denials, then costs
/// no filesystem lookup per rule.
pub(crate) struct FsRuleIndex {
    rules: Vec<IndexedRule>,
}

struct IndexedRule {
    id: RuleId,
    effect: Effect,
    access: Access,
    path: PathBuf,
    scope: Scope,
    is_dir: bool,
}

impl FsRuleIndex {
    pub(crate) fn new(policy: &Policy) -> FsRuleIndex {
        let rules = policy
            .fs
            .iter()
            .filter_map(|r| {
                let path = rule_target(&r.path)?;
                Some(IndexedRule {
                    id: r.id,
                    effect: r.effect,
                    access: r.access,
                    is_dir: path.is_dir(),
                    path,
                    scope: r.path.scope(),
                })
            })
            .collect();
        FsRuleIndex { rules }
    }

    /// The denies and the grants covering `target` (canonical) for `op`.
    fn candidates(&self, target: &Path, op: Op) -> (Vec<Candidate>, Vec<Candidate>) {
        let mut denies = Vec::new();
        let mut grants = Vec::new();
        for r in &self.rules {
            let covered = target == r.path
                || (target.starts_with(&r.path) && (r.scope == Scope::Subtree || r.is_dir));
            if !r.access.contains(op.access()) || !covered {
                continue;
            }
            let c = Candidate {
                id: r.id,
                depth: r.path.components().count(),
            };
            match r.effect {
                Effect::Deny => denies.push(c),
                Effect::Allow => grants.push(c),
            }
        }
        (denies, grants)
    }

    /// The most specific deny covering `target` (canonical) for `op`, if any.
    pub(crate) fn deny_for(&self, target: &Path, op: Op) -> Option<RuleId> {
        most_specific(self.candidates(target, op).0).0
    }
}

fn rule_target(p: &PolicyPath) -> Option<PathBuf> {
    let concrete = p.expand(&PathVars::new()).ok()?;
    p.root().is_none().then(|| canonical_lenient(&concrete))
}

fn most_specific(mut c: Vec<Candidate>) -> (Option<RuleId>, Vec<RuleId>) {
    c.sort_by(|a, b| b.depth.cmp(&a.depth).then(a.id.cmp(&b.id)));
    let mut ids = c.into_iter().map(|c| c.id);
    let first = ids.next();
    (first, ids.collect())
}

/// Decide a filesystem access on an expanded policy.
pub fn decide_path(policy: &Policy, path: &Path, op: Op) -> Decision {
    let target = canonical_lenient(path);
    let subject = if target == path {
        path.display().to_string()
    } else {
        format!("{} (resolves to {})", path.display(), target.display())
    };
    let refs = |ids: Vec<RuleId>| ids.into_iter().map(|i| RuleRef::of(policy, i)).collect();
    let (mut denies, grants) = FsRuleIndex::new(policy).candidates(&target, op);
    if op == Op::Exec {
        for r in &policy.exec.deny {
            let Some(rp) = rule_target(&r.path) else {
                continue;
            };
            if covers(&rp, r.path.scope(), &target) {
                denies.push(Candidate {
                    id: r.id,
                    depth: rp.components().count(),
                });
            }
        }
    }
    let decision = |verdict, rule: Option<RuleId>, reason: String, also: Vec<RuleId>| Decision {
        subject: subject.clone(),
        op: op.name().into(),
        decision: verdict,
        rule: rule.map(|r| RuleRef::of(policy, r)),
        reason,
        also_matching: refs(also),
    };
    if !denies.is_empty() {
        let (rule, mut also) = most_specific(denies);
        also.extend(most_specific(grants).0);
        return decision(
            Verdict::Deny,
            rule,
            "a deny covers this path, and denies win over grants".into(),
            also,
        );
    }
    if op == Op::Exec {
        if let Some(only) = &policy.exec.allow_only {
            let listed = only.iter().any(|r| {
                rule_target(&r.path).is_some_and(|rp| covers(&rp, r.path.scope(), &target))
            });
            if !listed {
                return decision(
                    Verdict::Deny,
                    None,
                    "the policy sets `exec allow-only`, and no entry of it covers this path".into(),
                    vec![],
                );
            }
        }
    }
    if grants.is_empty() {
        return decision(
            Verdict::Deny,
            None,
            format!("no rule grants {} here (default deny)", op.name()),
            vec![],
        );
    }
    let (rule, also) = most_specific(grants);
    decision(
        Verdict::Allow,
        rule,
        "the most specific grant covering this path".into(),
        also,
    )
}

/// Decide an outbound TCP connection.
pub fn decide_net(policy: &Policy, host: &str, port: u16) -> Decision {
    let subject = format!("{host} port {port}");
    let mk = |verdict, rule: Option<RuleId>, reason: String| Decision {
        subject: subject.clone(),
        op: "connect".into(),
        decision: verdict,
        rule: rule.map(|r| RuleRef::of(policy, r)),
        reason,
        also_matching: vec![],
    };
    if policy.net.mode == NetMode::Unrestricted {
        return mk(
            Verdict::Allow,
            None,
            "the network is unrestricted (`net allow all`)".into(),
        );
    }
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    if let Ok(ip) = literal {
        let hit = policy.net.cidrs.iter().find(|r| {
            r.protocol == nono_policy::net::Protocol::Tcp
                && r.net.contains(&ip)
                && r.ports.contains(port)
        });
        return match hit {
            Some(r) => mk(Verdict::Allow, Some(r.id), format!("{ip} is in {}", r.net)),
            None => mk(
                Verdict::Deny,
                None,
                "an IP literal is allowed only by a CIDR rule, and none covers it on this port \
                 (domain rules never match addresses)"
                    .into(),
            ),
        };
    }
    let matching: Vec<_> = policy
        .net
        .domains
        .iter()
        .filter(|r| r.domain.matches(host))
        .collect();
    // An exact name is more specific than a wildcard.
    let best = matching
        .iter()
        .filter(|r| r.ports.contains(port))
        .min_by_key(|r| (r.domain.is_wildcard(), r.id));
    match (best, matching.first()) {
        (Some(r), _) => mk(
            Verdict::Allow,
            Some(r.id),
            format!("`{}` matches {host} on port {port}", r.domain),
        ),
        (None, Some(r)) => mk(
            Verdict::Deny,
            Some(r.id),
            format!(
                "`{}` matches {host}, but only on port {}",
                r.domain, r.ports
            ),
        ),
        (None, None) => mk(
            Verdict::Deny,
            None,
            "no domain rule matches (default deny; `*.x` matches subdomains only)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::concrete::tests::policy;
    use nono_policy::ir::{CidrRule, DomainRule, ExecRule, Origin};
    use nono_policy::net::{parse_cidr, DomainPattern, PortSet, Protocol};

    #[test]
    fn denies_win_then_most_specific_grant_then_default() {
        let d = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(r.join("home/.ssh")).unwrap();
        std::fs::create_dir_all(r.join("home/proj")).unwrap();
        let h = r.join("home").display().to_string();
        let p = policy(vec![
            (&format!("{h}/**"), Effect::Allow, Access::READ),
            (&format!("{h}/proj/**"), Effect::Allow, Access::READ_WRITE),
            (&format!("{h}/.ssh/**"), Effect::Deny, Access::ALL),
        ]);
        let key = r.join("home/.ssh/id_rsa");
        let d = decide_path(&p, &key, Op::Read);
        assert_eq!(d.decision, Verdict::Deny);
        assert_eq!(d.rule.as_ref().unwrap().id, RuleId(3));
        assert_eq!(
            d.rule.as_ref().unwrap().origin.as_deref(),
            Some("test.nono:3:1")
        );
        assert_eq!(d.also_matching[0].id, RuleId(1));

        let d = decide_path(&p, &r.join("home/proj/x.rs"), Op::Read);
        assert_eq!(
            (d.decision, d.rule.unwrap().id),
            (Verdict::Allow, RuleId(2))
        );
        let d = decide_path(&p, &r.join("home/notes"), Op::Write);
        assert_eq!((d.decision, d.rule), (Verdict::Deny, None));
        assert!(d.reason.contains("default deny"));
    }

    #[test]
    fn symlinks_are_followed() {
        let d = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(r.join("secret")).unwrap();
        std::fs::create_dir_all(r.join("work")).unwrap();
        std::os::unix::fs::symlink(r.join("secret"), r.join("work/link")).unwrap();
        let p = policy(vec![(
            &format!("{}/work/**", r.display()),
            Effect::Allow,
            Access::READ,
        )]);
        let d = decide_path(&p, &r.join("work/link/key"), Op::Read);
        assert_eq!(d.decision, Verdict::Deny);
        assert!(d.subject.contains("resolves to"));
    }

    #[test]
    fn exec_deny_and_allow_only() {
        let mut p = policy(vec![("/usr/**", Effect::Allow, Access::ALL)]);
        p.exec.deny.push(ExecRule {
            id: RuleId(2),
            path: PolicyPath::parse("/usr/bin/sudo").unwrap(),
        });
        p.provenance.rules.insert(
            RuleId(2),
            vec![Origin {
                source: "p".into(),
                line: 9,
                column: 2,
            }],
        );
        let d = decide_path(&p, Path::new("/usr/bin/sudo"), Op::Exec);
        assert_eq!((d.decision, d.rule.unwrap().id), (Verdict::Deny, RuleId(2)));
        p.exec.allow_only = Some(vec![ExecRule {
            id: RuleId(3),
            path: PolicyPath::parse("/usr/bin/git").unwrap(),
        }]);
        let d = decide_path(&p, Path::new("/usr/lib/x"), Op::Exec);
        assert_eq!(d.decision, Verdict::Deny);
        assert!(d.reason.contains("allow-only"));
    }

    #[test]
    fn network_domains_and_literals() {
        let mut p = policy(vec![]);
        p.net.domains.push(DomainRule {
            id: RuleId(1),
            domain: DomainPattern::parse("*.example.com").unwrap(),
            ports: PortSet::web_default(),
        });
        p.net.cidrs.push(CidrRule {
            id: RuleId(2),
            net: parse_cidr("127.0.0.0/8").unwrap(),
            protocol: Protocol::Tcp,
            ports: PortSet::default(),
        });
        assert_eq!(
            decide_net(&p, "api.example.com", 443).decision,
            Verdict::Allow
        );
        assert_eq!(
            decide_net(&p, "API.Example.com.", 443).decision,
            Verdict::Allow
        );
        assert_eq!(decide_net(&p, "example.com", 443).decision, Verdict::Deny);
        assert_eq!(
            decide_net(&p, "example.com.evil.net", 443).decision,
            Verdict::Deny
        );
        let d = decide_net(&p, "api.example.com", 22);
        assert_eq!((d.decision, d.rule.unwrap().id), (Verdict::Deny, RuleId(1)));
        assert_eq!(decide_net(&p, "127.0.0.1", 8080).decision, Verdict::Allow);
        let d = decide_net(&p, "10.0.0.1", 443);
        assert!(d.reason.contains("CIDR"));
        let j = serde_json::to_value(decide_net(&p, "api.example.com", 443)).unwrap();
        assert_eq!(j["decision"], "allow");
        assert_eq!(j["rule"]["id"], 1);
    }
}
