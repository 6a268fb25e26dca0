//! The profile *document*: what a profile file says, before `extends`, groups and validation.
//!
//! All three front-ends produce a [`ProfileDoc`]: JSON and YAML through serde (this type is
//! their schema, published by `nono profile schema`), and the policy language through its pest
//! parser. Values are kept as written (strings) so that validation in [`crate::resolve`] reports
//! every error against the place it was written, whatever the front-end.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diag::Loc;
use crate::ir::AuditLevel;
use crate::net::{PortSpec, Protocol};

/// A value with the place it was written. Serialises as the bare value; front-ends fill `loc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub loc: Option<Loc>,
}

impl<T> Located<T> {
    pub fn new(value: T, loc: Option<Loc>) -> Self {
        Located { value, loc }
    }
    pub fn bare(value: T) -> Self {
        Located { value, loc: None }
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Located::bare)
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A nono profile. Every section is optional; an empty profile denies everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileDoc {
    /// The JSON Schema this document follows (ignored by nono, used by editors).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The profile's name, as `--profile` takes it. Defaults to the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Parent profiles, merged left to right; this profile's own settings win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<Located<String>>,
    /// Groups (built-in or defined in `groups`) whose rules this profile includes.
    #[serde(rename = "use", default, skip_serializing_if = "Vec::is_empty")]
    pub use_groups: Vec<Located<String>>,
    /// Reusable groups of rules defined by this profile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupDoc>,
    #[serde(default, skip_serializing_if = "FsDoc::is_empty")]
    pub filesystem: FsDoc,
    #[serde(default, skip_serializing_if = "ExecDoc::is_empty")]
    pub exec: ExecDoc,
    #[serde(default, skip_serializing_if = "NetDoc::is_empty")]
    pub network: NetDoc,
    #[serde(default, skip_serializing_if = "IpcDoc::is_empty")]
    pub ipc: IpcDoc,
    #[serde(default, skip_serializing_if = "EnvDoc::is_empty")]
    pub env: EnvDoc,
    #[serde(default, skip_serializing_if = "AuditDoc::is_empty")]
    pub audit: AuditDoc,
    #[serde(default, skip_serializing_if = "RollbackDoc::is_empty")]
    pub rollback: RollbackDoc,
    #[serde(default, skip_serializing_if = "OverridesDoc::is_empty")]
    pub overrides: OverridesDoc,
}

/// A named, reusable set of rules (for example `credentials`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "FsDoc::is_empty")]
    pub filesystem: FsDoc,
    #[serde(default, skip_serializing_if = "ExecDoc::is_empty")]
    pub exec: ExecDoc,
    #[serde(default, skip_serializing_if = "NetDoc::is_empty")]
    pub network: NetDoc,
    #[serde(default, skip_serializing_if = "EnvDoc::is_empty")]
    pub env: EnvDoc,
    /// Where the group was defined; filled by front-ends.
    #[serde(skip)]
    #[schemars(skip)]
    pub loc: Option<Loc>,
}

/// Filesystem rules. Paths start with `/`, `~/` or a variable (`$HOME`, `$WORKDIR`, `$TMPDIR`,
/// `$XDG_CONFIG_HOME`, `$XDG_DATA_HOME`, `$XDG_STATE_HOME`, `$XDG_CACHE_HOME`,
/// `$XDG_RUNTIME_DIR`); a trailing `/**` covers the whole subtree. Denies win over grants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsDoc {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<Located<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<Located<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readwrite: Vec<Located<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<Located<String>>,
    /// Denied for every access, even inside a granted directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Located<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_read: Vec<Located<String>>,
    /// Made read-only even inside a writable grant (for example `$WORKDIR/.git/hooks/**`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_write: Vec<Located<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_exec: Vec<Located<String>>,
}

impl FsDoc {
    pub fn is_empty(&self) -> bool {
        self.read.is_empty()
            && self.write.is_empty()
            && self.readwrite.is_empty()
            && self.exec.is_empty()
            && self.deny.is_empty()
            && self.deny_read.is_empty()
            && self.deny_write.is_empty()
            && self.deny_exec.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecDoc {
    /// Executables (or `/**` subtrees of them) that may never run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Located<String>>,
    /// If present, only these may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_only: Option<Vec<Located<String>>>,
}

impl ExecDoc {
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow_only.is_none()
    }
}

/// Outbound network is blocked unless listed here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetDoc {
    /// Leave outbound network unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_all: Option<bool>,
    /// Domains the sandbox may reach; `*.example.com` matches subdomains only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<Located<DomainEntry>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<Located<CidrEntry>>,
    /// Ports the sandbox may listen on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<Located<ListenEntry>>,
}

impl NetDoc {
    pub fn is_empty(&self) -> bool {
        self.allow_all.is_none()
            && self.domains.is_empty()
            && self.cidrs.is_empty()
            && self.listen.is_empty()
    }
}

/// A domain, alone (ports 80 and 443) or with its ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DomainEntry {
    Name(String),
    WithPorts {
        domain: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ports: Vec<PortSpec>,
    },
}

impl DomainEntry {
    pub fn domain(&self) -> &str {
        match self {
            DomainEntry::Name(d) | DomainEntry::WithPorts { domain: d, .. } => d,
        }
    }
    pub fn ports(&self) -> &[PortSpec] {
        match self {
            DomainEntry::Name(_) => &[],
            DomainEntry::WithPorts { ports, .. } => ports,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CidrEntry {
    /// `10.0.0.0/8`, `fd00::/8`, or a single address.
    pub cidr: String,
    pub protocol: Protocol,
    /// Ports (numbers or `"first-last"`); empty means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenEntry {
    pub protocol: Protocol,
    pub ports: Vec<PortSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpcDoc {
    /// Signals only reach processes inside the sandbox (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_signals: Option<bool>,
    /// Abstract unix sockets only reach the sandbox's own (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_abstract_unix: Option<bool>,
    /// Path unix sockets the sandbox may connect to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unix_sockets: Vec<Located<String>>,
}

impl IpcDoc {
    pub fn is_empty(&self) -> bool {
        self.scope_signals.is_none()
            && self.scope_abstract_unix.is_none()
            && self.unix_sockets.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnvModeDoc {
    Inherit,
    Clean,
}

/// Environment variables: names, or prefixes ending in `*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvDoc {
    /// `inherit` (default) passes the caller's environment less stripped variables; `clean`
    /// passes only `pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EnvModeDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass: Vec<Located<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip: Vec<Located<String>>,
}

impl EnvDoc {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.pass.is_empty() && self.strip.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditDoc {
    /// `off`, `denied` (default) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<AuditLevel>,
}

impl AuditDoc {
    pub fn is_empty(&self) -> bool {
        self.level.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// File or directory names skipped by snapshots, added to the defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Located<String>>,
    /// Names taken off the exclusions so far (the defaults and what parents excluded): a
    /// source directory called `build` or `dist` is then snapshotted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<Located<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitignore: Option<bool>,
}

impl RollbackDoc {
    pub fn is_empty(&self) -> bool {
        self.enabled.is_none()
            && self.exclude.is_empty()
            && self.include.is_empty()
            && self.gitignore.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverridesDoc {
    /// Allow write grants on `/` or `$HOME` as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_broad_write: Option<bool>,
}

impl OverridesDoc {
    pub fn is_empty(&self) -> bool {
        self.allow_broad_write.is_none()
    }
}

/// The published JSON Schema of [`ProfileDoc`].
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(ProfileDoc);
    let mut v = serde_json::to_value(schema).expect("schema serialises");
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://nono.dev/schema/profile-v1.json".into(),
        );
        obj.insert("title".into(), "nono profile".into());
    }
    v
}
