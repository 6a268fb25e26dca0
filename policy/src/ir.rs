//! The one intermediate representation every front-end produces and every back-end consumes.
//!
//! The IR is *resolved* (no `extends`, no groups), *validated* (every path, domain, CIDR and port
//! has passed its checks) and *canonical* (rules are merged and sorted, and rule ids are assigned
//! in that order). Two profiles that mean the same thing therefore produce `==` IRs whatever
//! front-end they were written in; where each rule came from lives beside the rules in
//! [`Provenance`], which equality of the semantic part ignores (see [`Policy::semantics_eq`]).
//!
//! Paths stay symbolic (`$HOME/.ssh`): a compiled policy is distributed to many machines, so
//! variables are expanded only at run time, by [`Policy::expand`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::net::{DomainPattern, IpNet, PortSet, Protocol};
use crate::path::PolicyPath;

/// The identifier of one rule of a compiled policy. Ids are dense, start at 1 and follow the
/// canonical order of the rules, so a given IR always numbers its rules the same way. Id 0 is
/// reserved for "no rule" (the default decision) in kernel events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(pub u32);

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Where a rule was written: a file (or built-in profile) and a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// `builtin:NAME` for embedded profiles and groups, otherwise the path as the user gave it.
    /// Shared by every rule of the same file (and by the plans that copy origins), so a
    /// policy holds each source name once however many rules it has. Serialised as a string.
    #[serde(with = "shared_str")]
    pub source: Arc<str>,
    pub line: u32,
    pub column: u32,
}

/// Serde for `Arc<str>` as a plain string (serde's own impl needs its `rc` feature, which
/// would make every `Arc` in the workspace serialisable, identity lost without notice).
mod shared_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Arc<str>, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // Rules built in memory (command-line flags) have no line to point at.
            f.write_str(&self.source)
        } else {
            write!(f, "{}:{}:{}", self.source, self.line, self.column)
        }
    }
}

/// A resolved, validated, canonical policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub meta: Meta,
    pub fs: Vec<FsRule>,
    pub exec: ExecPolicy,
    pub net: NetPolicy,
    pub ipc: IpcPolicy,
    pub env: EnvPolicy,
    pub audit: AuditPolicy,
    pub rollback: RollbackPolicy,
    /// Settings that loosen the compiler's own safety checks; recorded so a reviewer sees them.
    pub overrides: Overrides,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The profiles this one was built from, in resolution order (parents first). Informational.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<String>,
}

/// Where each rule came from, and every other source that contributed to the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Every place that wrote the rule; merged duplicates keep all of them, in source order.
    pub rules: BTreeMap<RuleId, Vec<Origin>>,
}

impl Provenance {
    /// The first place a rule was written, for error messages and kernel event attribution.
    pub fn origin(&self, id: RuleId) -> Option<&Origin> {
        self.rules.get(&id).and_then(|o| o.first())
    }
}

// ---------------------------------------------------------------------------------------------
// Filesystem

/// Filesystem access kinds. A set of them is an [`Access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessKind {
    Read,
    Write,
    Exec,
}

/// A non-empty set of [`AccessKind`]s. Kept as a tiny bit set so merging is an OR.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access(u8);

impl Access {
    pub const READ: Access = Access(1);
    pub const WRITE: Access = Access(2);
    pub const EXEC: Access = Access(4);
    pub const READ_WRITE: Access = Access(3);
    pub const ALL: Access = Access(7);

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }
    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }
    pub fn bits(self) -> u8 {
        self.0
    }
    pub fn from_bits(bits: u8) -> Option<Access> {
        (bits != 0 && bits & !7 == 0).then_some(Access(bits))
    }
    pub fn kinds(self) -> impl Iterator<Item = AccessKind> {
        [
            (1, AccessKind::Read),
            (2, AccessKind::Write),
            (4, AccessKind::Exec),
        ]
        .into_iter()
        .filter(move |(b, _)| self.0 & b != 0)
        .map(|(_, k)| k)
    }
    /// The keyword the policy language uses: `read`, `write`, `readwrite`, `exec`, or a
    /// `+`-joined list for other combinations (`read+exec`).
    pub fn keyword(self) -> String {
        self.keyword_cow().into_owned()
    }

    /// [`Self::keyword`], without allocating for the common single keywords.
    pub(crate) fn keyword_cow(self) -> std::borrow::Cow<'static, str> {
        match self.0 {
            1 => "read".into(),
            2 => "write".into(),
            3 => "readwrite".into(),
            4 => "exec".into(),
            7 => "all".into(),
            _ => self
                .kinds()
                .map(|k| match k {
                    AccessKind::Read => "read",
                    AccessKind::Write => "write",
                    AccessKind::Exec => "exec",
                })
                .collect::<Vec<_>>()
                .join("+")
                .into(),
        }
    }
    pub fn parse_keyword(s: &str) -> Option<Access> {
        let mut bits = 0u8;
        for part in s.split('+') {
            bits |= match part {
                "read" => 1,
                "write" => 2,
                "readwrite" => 3,
                "exec" => 4,
                "all" => 7,
                _ => return None,
            };
        }
        Access::from_bits(bits)
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Access({})", self.keyword())
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.keyword_cow())
    }
}

impl Serialize for Access {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.keyword_cow())
    }
}

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Access::parse_keyword(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown access `{s}`")))
    }
}

/// Whether a rule grants or denies. Denies always win over grants, whatever their order or
/// nesting: a deny on `$HOME/.ssh` holds under a grant on `$HOME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsRule {
    pub id: RuleId,
    pub path: PolicyPath,
    pub effect: Effect,
    pub access: Access,
}

// ---------------------------------------------------------------------------------------------
// Exec

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRule {
    pub id: RuleId,
    pub path: PolicyPath,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecPolicy {
    /// Binaries (or subtrees of binaries) that may never be executed.
    pub deny: Vec<ExecRule>,
    /// When set, only these may be executed (denies still win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_only: Option<Vec<ExecRule>>,
}

// ---------------------------------------------------------------------------------------------
// Network

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRule {
    pub id: RuleId,
    pub domain: DomainPattern,
    /// Defaults to 80 and 443 when the profile names no ports.
    pub ports: PortSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrRule {
    pub id: RuleId,
    pub net: IpNet,
    pub protocol: Protocol,
    /// Empty means every port.
    pub ports: PortSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenRule {
    pub id: RuleId,
    pub protocol: Protocol,
    pub ports: PortSet,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// Nothing but the listed domains, CIDRs and listen ports.
    #[default]
    Blocked,
    /// Outbound network is not restricted at all (`net allow all`).
    Unrestricted,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPolicy {
    pub mode: NetMode,
    pub domains: Vec<DomainRule>,
    pub cidrs: Vec<CidrRule>,
    pub listen: Vec<ListenRule>,
}

// ---------------------------------------------------------------------------------------------
// IPC

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixSocketRule {
    pub id: RuleId,
    pub path: PolicyPath,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpcPolicy {
    /// Signals may only be sent to processes inside the sandbox.
    pub scope_signals: bool,
    /// Abstract unix sockets may only be reached inside the sandbox.
    pub scope_abstract_unix: bool,
    /// Path unix sockets the sandbox may connect to (`docker.sock`, an agent socket...).
    pub unix_sockets: Vec<UnixSocketRule>,
}

impl Default for IpcPolicy {
    fn default() -> Self {
        IpcPolicy {
            scope_signals: true,
            scope_abstract_unix: true,
            unix_sockets: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Environment

/// Variables that change what a program loads or runs before its own code does. They are
/// stripped unless a profile passes them by exact name.
pub const DANGEROUS_ENV: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_DEBUG_OUTPUT",
    "LD_PROFILE",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "BASH_ENV",
    "ENV",
    "PROMPT_COMMAND",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "DYLD_INSERT_LIBRARIES",
    "DYLD_LIBRARY_PATH",
    "DYLD_FRAMEWORK_PATH",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvMode {
    /// Pass the caller's environment, less stripped variables.
    #[default]
    Inherit,
    /// Pass only the variables listed in `pass`.
    Clean,
}

/// Environment filtering. Precedence, highest first: `strip` (the profile's), then `pass`, then
/// the built-in [`DANGEROUS_ENV`] list, then `mode`. Patterns are exact names or a prefix ending
/// in `*` (`AWS_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvPolicy {
    pub mode: EnvMode,
    pub pass: Vec<String>,
    pub strip: Vec<String>,
}

/// Does an environment pattern (`NAME` or `PREFIX*`) match a variable name?
pub fn env_pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl EnvPolicy {
    /// Whether a variable of the caller's environment reaches the sandboxed program.
    pub fn passes(&self, name: &str) -> bool {
        if self.strip.iter().any(|p| env_pattern_matches(p, name)) {
            return false;
        }
        if self.pass.iter().any(|p| env_pattern_matches(p, name)) {
            // A dangerous variable needs its exact name: `LD_*` must not smuggle LD_PRELOAD in.
            let dangerous = DANGEROUS_ENV.contains(&name);
            return !dangerous || self.pass.iter().any(|p| p == name);
        }
        if DANGEROUS_ENV.contains(&name) {
            return false;
        }
        self.mode == EnvMode::Inherit
    }
}

// ---------------------------------------------------------------------------------------------
// Audit, rollback, overrides

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AuditLevel {
    Off,
    /// Record denials (and the session itself).
    #[default]
    Denied,
    /// Record every decision, allows included.
    All,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPolicy {
    pub level: AuditLevel,
}

/// Build output and caches that a rollback snapshot skips unless a profile says otherwise.
pub const DEFAULT_ROLLBACK_EXCLUDES: &[&str] = &[
    "target",
    "node_modules",
    ".venv",
    "__pycache__",
    ".tox",
    ".gradle",
    "build",
    "dist",
    ".cache",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackPolicy {
    pub enabled: bool,
    /// Directory or file names (not paths) skipped by snapshots.
    pub exclude: Vec<String>,
    /// Honour `.gitignore` files when snapshotting.
    pub gitignore: bool,
}

impl Default for RollbackPolicy {
    fn default() -> Self {
        RollbackPolicy {
            enabled: false,
            exclude: DEFAULT_ROLLBACK_EXCLUDES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            gitignore: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// Permit granting write on `/` or `$HOME` as a whole.
    pub allow_broad_write: bool,
}

// ---------------------------------------------------------------------------------------------

impl Policy {
    /// Equality of everything that decides access, ignoring where the rules were written.
    pub fn semantics_eq(&self, other: &Policy) -> bool {
        let strip = |p: &Policy| Policy {
            provenance: Provenance::default(),
            ..p.clone()
        };
        strip(self) == strip(other)
    }

    /// The policy with every path variable replaced by its value for one run, so that paths can
    /// be compared as the kernel will see them (a deny under `$XDG_CONFIG_HOME` inside a grant on
    /// `$HOME` is only visible once both are expanded). Rule ids and provenance are kept.
    pub fn expand(&self, vars: &crate::path::PathVars) -> Result<Policy, String> {
        let mut p = self.clone();
        for r in &mut p.fs {
            r.path = r.path.expanded(vars)?;
        }
        for r in p
            .exec
            .deny
            .iter_mut()
            .chain(p.exec.allow_only.iter_mut().flatten())
        {
            r.path = r.path.expanded(vars)?;
        }
        for r in &mut p.ipc.unix_sockets {
            r.path = r.path.expanded(vars)?;
        }
        Ok(p)
    }

    /// Every rule id in the policy with a one-line description, in id order.
    pub fn rule_summaries(&self) -> Vec<(RuleId, String)> {
        let mut out = Vec::with_capacity(
            self.fs.len()
                + self.exec.deny.len()
                + self.exec.allow_only.as_ref().map_or(0, Vec::len)
                + self.net.domains.len()
                + self.net.cidrs.len()
                + self.net.listen.len()
                + self.ipc.unix_sockets.len(),
        );
        self.visit_rules(|id, write| {
            // Each text is written straight into its own string: no intermediate `format!`s.
            let mut s = String::with_capacity(48);
            write(&mut s);
            out.push((id, s));
        });
        // Stable: should two rules share an id, the first visited comes first.
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// The one-line description of one rule, as in [`Policy::rule_summaries`], without
    /// describing every other rule: messages that name a few rules of a large policy stay cheap.
    pub fn rule_summary(&self, id: RuleId) -> Option<String> {
        let mut found = None;
        self.visit_rules(|rid, write| {
            if rid == id && found.is_none() {
                let mut s = String::with_capacity(48);
                write(&mut s);
                found = Some(s);
            }
        });
        found
    }

    /// The largest rule id in the policy (0 when it has no rules).
    pub fn max_rule_id(&self) -> u32 {
        let mut max = 0;
        self.visit_rules(|id, _| max = max.max(id.0));
        max
    }

    /// Every rule, in a fixed order (filesystem, exec deny, exec only, domains, CIDRs, listen,
    /// unix sockets), with a writer of its one-line text; the text is only made if asked for.
    fn visit_rules(&self, mut f: impl FnMut(RuleId, &dyn Fn(&mut String))) {
        for r in &self.fs {
            f(r.id, &|s| r.write_summary(s));
        }
        for r in &self.exec.deny {
            f(r.id, &|s| r.write_summary(ExecList::Deny, s));
        }
        for r in self.exec.allow_only.iter().flatten() {
            f(r.id, &|s| r.write_summary(ExecList::Only, s));
        }
        for r in &self.net.domains {
            f(r.id, &|s| r.write_summary(s));
        }
        for r in &self.net.cidrs {
            f(r.id, &|s| r.write_summary(s));
        }
        for r in &self.net.listen {
            f(r.id, &|s| r.write_summary(s));
        }
        for r in &self.ipc.unix_sockets {
            f(r.id, &|s| r.write_summary(s));
        }
    }
}

// Each rule's one-line text (see [`Policy::rule_summaries`]), written onto a string a back-end
// is building, so one that names every rule (Seatbelt's comments) need not copy each text
// out of a list of them. Written piece by piece rather than through `fmt`: this runs for every
// rule, on both threads of a large compile.

/// Which exec list an [`ExecRule`] is on: its text says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecList {
    Deny,
    Only,
}

impl FsRule {
    pub(crate) fn write_summary(&self, s: &mut String) {
        match self.effect {
            Effect::Allow => s.push_str(&self.access.keyword_cow()),
            Effect::Deny if self.access == Access::ALL => s.push_str("deny"),
            Effect::Deny => {
                s.push_str("deny ");
                s.push_str(&self.access.keyword_cow());
            }
        }
        s.push(' ');
        s.push_str(self.path.as_str());
    }
}

impl ExecRule {
    pub(crate) fn write_summary(&self, list: ExecList, s: &mut String) {
        s.push_str(match list {
            ExecList::Deny => "exec deny ",
            ExecList::Only => "exec only ",
        });
        s.push_str(self.path.as_str());
    }
}

impl DomainRule {
    pub(crate) fn write_summary(&self, s: &mut String) {
        s.push_str("net allow domain ");
        self.domain.push_text(s);
        s.push_str(" port ");
        self.ports.push_text(s);
    }
}

impl CidrRule {
    pub(crate) fn write_summary(&self, s: &mut String) {
        s.push_str("net allow cidr ");
        crate::net::push_net(s, &self.net);
        s.push(' ');
        s.push_str(self.protocol.keyword());
        if !self.ports.is_empty() {
            s.push_str(" port ");
            self.ports.push_text(s);
        }
    }
}

impl ListenRule {
    pub(crate) fn write_summary(&self, s: &mut String) {
        s.push_str("net listen ");
        s.push_str(self.protocol.keyword());
        s.push(' ');
        self.ports.push_text(s);
    }
}

impl UnixSocketRule {
    pub(crate) fn write_summary(&self, s: &mut String) {
        s.push_str("ipc unix-socket ");
        s.push_str(self.path.as_str());
    }
}
