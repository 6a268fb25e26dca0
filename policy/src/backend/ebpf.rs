//! The eBPF back-end: the entries nono's kernel layer (BPF LSM + cgroup socket programs) loads
//! when nono runs as root. Each list below is one BPF map; the loader copies entries across
//! without deciding anything.
//!
//! # What the kernel layer enforces
//!
//! **Denies only, for the filesystem.** Landlock enforces grants and the default deny; the
//! kernel layer adds what Landlock cannot say: denies, wherever they lie (a deny inside a grant
//! is the reason it exists). So the plan has no filesystem grant entries. Every deny also pins
//! its object: `rename` and `link` are denied with it, because moving a denied file out from
//! under its rule, or hard-linking it elsewhere, would otherwise escape the rule.
//!
//! **exec.** `exec deny` entries and, when the profile has `exec only`, the allowlist
//! (checked in `bprm_check_security`; denies win).
//!
//! **Network** (only when the profile does not say `net allow all`): an allowlist in two LPM
//! tries (IPv4, IPv6), keyed by prefix length and address bytes. Longest-prefix match returns
//! one entry, so the plan *folds* each entry's ancestors' port grants into it: the entry found
//! is complete. Implicit denies for link-local (`169.254.0.0/16`, `fe80::/10`) and cloud
//! metadata addresses are inserted as entries without ports, which also stop folding; a profile
//! lifts one only by naming exactly that network (a rule on `0.0.0.0/0` does not). The connect6
//! program must look IPv4-mapped addresses (`::ffff:a.b.c.d`) up in the IPv4 trie.
//! Domains cannot be keyed until they are resolved: the runtime resolves each
//! [`DomainEntry`] and inserts the addresses with its ports and rule id.
//!
//! **Scopes** are carried for completeness; the kernel layer does not enforce signal or
//! abstract-unix scoping yet (Landlock ABI 6 does).
//!
//! Paths stay symbolic; the loader expands them for the run and resolves them to objects.
//! [`EbpfPlan::rule_table`] maps the rule id in every kernel event back to the profile line.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::ir::{Access, Effect, NetMode, Origin, Policy, RuleId};
use crate::net::{DomainPattern, IpNet, PortSet, Protocol};
use crate::path::PolicyPath;

use super::Target;

/// Filesystem operations a deny entry refuses, as the BPF programs' bit mask.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FsOps(u16);

impl FsOps {
    /// Open for reading, list a directory.
    pub const READ: FsOps = FsOps(1 << 0);
    /// Open for writing.
    pub const WRITE: FsOps = FsOps(1 << 1);
    /// execve(2), mmap(PROT_EXEC).
    pub const EXEC: FsOps = FsOps(1 << 2);
    /// Create any object inside a denied directory.
    pub const CREATE: FsOps = FsOps(1 << 3);
    pub const UNLINK: FsOps = FsOps(1 << 4);
    /// Rename the object, or rename something onto it.
    pub const RENAME: FsOps = FsOps(1 << 5);
    /// Hard-link the object.
    pub const LINK: FsOps = FsOps(1 << 6);
    pub const TRUNCATE: FsOps = FsOps(1 << 7);
    pub const CHMOD: FsOps = FsOps(1 << 8);
    /// chown, utimes, xattrs.
    pub const SETATTR: FsOps = FsOps(1 << 9);

    pub const NAMES: [(FsOps, &'static str); 10] = [
        (FsOps::READ, "read"),
        (FsOps::WRITE, "write"),
        (FsOps::EXEC, "exec"),
        (FsOps::CREATE, "create"),
        (FsOps::UNLINK, "unlink"),
        (FsOps::RENAME, "rename"),
        (FsOps::LINK, "link"),
        (FsOps::TRUNCATE, "truncate"),
        (FsOps::CHMOD, "chmod"),
        (FsOps::SETATTR, "setattr"),
    ];

    /// Every deny carries these: the denied object stays where its rule can see it.
    pub const PIN: FsOps = FsOps::RENAME.union(FsOps::LINK);

    pub const fn empty() -> FsOps {
        FsOps(0)
    }
    pub const fn bits(self) -> u16 {
        self.0
    }
    pub const fn union(self, o: FsOps) -> FsOps {
        FsOps(self.0 | o.0)
    }
    pub const fn contains(self, o: FsOps) -> bool {
        self.0 & o.0 == o.0
    }

    /// The operations a deny of `access` refuses.
    pub fn denied_by(access: Access) -> FsOps {
        let mut ops = FsOps::PIN;
        if access.contains(Access::READ) {
            ops = ops.union(FsOps::READ);
        }
        if access.contains(Access::WRITE) {
            ops = ops
                .union(FsOps::WRITE)
                .union(FsOps::CREATE)
                .union(FsOps::UNLINK)
                .union(FsOps::TRUNCATE)
                .union(FsOps::CHMOD)
                .union(FsOps::SETATTR);
        }
        if access.contains(Access::EXEC) {
            ops = ops.union(FsOps::EXEC);
        }
        ops
    }

    pub fn names(self) -> Vec<&'static str> {
        FsOps::NAMES
            .iter()
            .filter(|(o, _)| self.contains(*o))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl fmt::Debug for FsOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FsOps({})", self.names().join("|"))
    }
}

impl Serialize for FsOps {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FsOps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut ops = FsOps::empty();
        for n in Vec::<String>::deserialize(d)? {
            let (bit, _) = FsOps::NAMES
                .iter()
                .find(|(_, name)| *name == n)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown fs op `{n}`")))?;
            ops = ops.union(*bit);
        }
        Ok(ops)
    }
}

/// One entry of the filesystem deny map. The path's scope (`/**` or not) says whether the
/// programs match the object alone or everything beneath it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsDenyEntry {
    pub path: PolicyPath,
    pub ops: FsOps,
    /// The rule kernel events name. Should two deny rules share a path, their ops are merged
    /// and the lower id is kept.
    pub rule: RuleId,
}

/// One entry of the exec deny map or of the exec allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecEntry {
    pub path: PolicyPath,
    pub rule: RuleId,
}

/// An allowed inclusive port range and the rule that allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortGrant {
    pub first: u16,
    pub last: u16,
    pub rule: RuleId,
}

/// Why the plan denies a network the profile did not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImplicitDeny {
    LinkLocal,
    CloudMetadata,
}

/// An LPM trie key (`struct bpf_lpm_trie_key` layout: prefix length, then address bytes in
/// network order). Serialised as CIDR text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LpmKey<const N: usize> {
    pub prefix_len: u8,
    pub addr: [u8; N],
}

pub type LpmKeyV4 = LpmKey<4>;
pub type LpmKeyV6 = LpmKey<16>;

impl<const N: usize> LpmKey<N> {
    fn to_net(self) -> IpNet {
        let addr: std::net::IpAddr = if N == 4 {
            Ipv4Addr::from(<[u8; 4]>::try_from(&self.addr[..]).expect("N == 4")).into()
        } else {
            Ipv6Addr::from(<[u8; 16]>::try_from(&self.addr[..]).expect("N == 16")).into()
        };
        IpNet::new(addr, self.prefix_len).expect("prefix checked on construction")
    }

    fn from_net(net: IpNet) -> Option<Self> {
        let bytes: Vec<u8> = match net.addr() {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        Some(LpmKey {
            prefix_len: net.prefix_len(),
            addr: bytes.try_into().ok()?,
        })
    }
}

impl<const N: usize> fmt::Debug for LpmKey<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LpmKey({})", self.to_net())
    }
}

impl<const N: usize> Serialize for LpmKey<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.to_net())
    }
}

impl<'de, const N: usize> Deserialize<'de> for LpmKey<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let net: IpNet = text.parse().map_err(serde::de::Error::custom)?;
        if net.trunc() != net {
            return Err(serde::de::Error::custom(format!(
                "`{text}` has host bits set"
            )));
        }
        LpmKey::from_net(net)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is the wrong family")))
    }
}

/// One LPM trie entry. `tcp` and `udp` already include the grants of every enclosing entry up
/// to the nearest implicit deny, so the longest match is the whole answer. No ports: denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetEntry<const N: usize> {
    pub key: LpmKey<N>,
    pub tcp: Vec<PortGrant>,
    pub udp: Vec<PortGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implicit_deny: Option<ImplicitDeny>,
}

/// A port range the sandbox may bind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenEntry {
    pub protocol: Protocol,
    pub first: u16,
    pub last: u16,
    pub rule: RuleId,
}

/// A domain resolved at run time: the runtime inserts each address it resolves into the trie
/// of its family with these ports and this rule. It must not insert an address inside an
/// implicit deny (a name resolving to `169.254.169.254` is a rebinding attempt, not a grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEntry {
    pub domain: DomainPattern,
    pub ports: PortSet,
    pub rule: RuleId,
}

/// The network maps. Absent when the profile says `net allow all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetMaps {
    /// Sorted by address, then prefix length.
    pub v4: Vec<NetEntry<4>>,
    pub v6: Vec<NetEntry<16>>,
    pub listen: Vec<ListenEntry>,
    pub runtime_resolved_domains: Vec<DomainEntry>,
}

/// A path unix socket the sandbox may connect to (`unix_stream_connect` / `unix_may_send`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixSocketEntry {
    pub path: PolicyPath,
    pub rule: RuleId,
}

/// The scoping the profile asks for. Not enforced by the kernel layer yet (see module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeFlags {
    pub signals: bool,
    pub abstract_unix: bool,
}

/// Maps the rule id in a kernel event to what the profile said and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTableEntry {
    pub id: RuleId,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EbpfPlan {
    /// Sorted by path text.
    pub fs_denies: Vec<FsDenyEntry>,
    pub exec_denies: Vec<ExecEntry>,
    /// `Some` when the profile restricts exec to a list (which may be empty: nothing runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_allow_only: Option<Vec<ExecEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetMaps>,
    pub unix_socket_grants: Vec<UnixSocketEntry>,
    pub scopes: ScopeFlags,
    /// Every rule, in id order.
    pub rule_table: Vec<RuleTableEntry>,
}

/// Networks denied unless a profile names exactly that network.
const IMPLICIT_DENIES: [(&str, ImplicitDeny); 6] = [
    ("169.254.0.0/16", ImplicitDeny::LinkLocal),
    ("169.254.169.254/32", ImplicitDeny::CloudMetadata),
    // Alibaba Cloud's metadata service.
    ("100.100.100.200/32", ImplicitDeny::CloudMetadata),
    ("fe80::/10", ImplicitDeny::LinkLocal),
    // AWS IMDS over IPv6.
    ("fd00:ec2::254/128", ImplicitDeny::CloudMetadata),
    // GCP metadata over IPv6.
    ("fd20:ce::254/128", ImplicitDeny::CloudMetadata),
];

/// Compile the kernel layer's maps. They do not depend on the Landlock ABI: the kernel layer
/// carries every deny whatever Landlock can do, so events name the rule either way. `target`
/// keeps the back-ends' signatures uniform.
pub fn plan(policy: &Policy, target: &Target) -> EbpfPlan {
    plan_with_texts(policy, target, policy.rule_summaries())
}

/// [`plan`], given the policy's [`Policy::rule_summaries`] (computed once for every back-end).
pub(crate) fn plan_with_texts(
    policy: &Policy,
    _target: &Target,
    texts: Vec<(RuleId, String)>,
) -> EbpfPlan {
    EbpfPlan {
        fs_denies: fs_denies(policy),
        exec_denies: sorted_exec(&policy.exec.deny),
        exec_allow_only: policy.exec.allow_only.as_deref().map(sorted_exec),
        net: (policy.net.mode == NetMode::Blocked).then(|| net_maps(policy)),
        unix_socket_grants: {
            let mut v: Vec<UnixSocketEntry> = policy
                .ipc
                .unix_sockets
                .iter()
                .map(|r| UnixSocketEntry {
                    path: r.path.clone(),
                    rule: r.id,
                })
                .collect();
            v.sort_by(|a, b| (a.path.as_str(), a.rule).cmp(&(b.path.as_str(), b.rule)));
            v
        },
        scopes: ScopeFlags {
            signals: policy.ipc.scope_signals,
            abstract_unix: policy.ipc.scope_abstract_unix,
        },
        rule_table: rule_table(policy, texts),
    }
}

/// Each rule's text with its first origin. `texts` is in id order, as
/// [`Policy::rule_summaries`] gives it, and so is the provenance map: the two are walked side
/// by side rather than the map searched once per rule.
fn rule_table(policy: &Policy, texts: Vec<(RuleId, String)>) -> Vec<RuleTableEntry> {
    let mut provenance = policy.provenance.rules.iter().peekable();
    texts
        .into_iter()
        .map(|(id, text)| {
            while provenance.next_if(|(pid, _)| **pid < id).is_some() {}
            let origin = provenance
                .peek()
                .filter(|(pid, _)| **pid == id)
                .and_then(|(_, origins)| origins.first())
                .cloned();
            RuleTableEntry { id, text, origin }
        })
        .collect()
}

fn fs_denies(policy: &Policy) -> Vec<FsDenyEntry> {
    let mut by_path: BTreeMap<&str, FsDenyEntry> = BTreeMap::new();
    for r in policy.fs.iter().filter(|r| r.effect == Effect::Deny) {
        let ops = FsOps::denied_by(r.access);
        by_path
            .entry(r.path.as_str())
            .and_modify(|e| {
                e.ops = e.ops.union(ops);
                e.rule = e.rule.min(r.id);
            })
            .or_insert_with(|| FsDenyEntry {
                path: r.path.clone(),
                ops,
                rule: r.id,
            });
    }
    by_path.into_values().collect()
}

fn sorted_exec(rules: &[crate::ir::ExecRule]) -> Vec<ExecEntry> {
    let mut v: Vec<ExecEntry> = rules
        .iter()
        .map(|r| ExecEntry {
            path: r.path.clone(),
            rule: r.id,
        })
        .collect();
    v.sort_by(|a, b| (a.path.as_str(), a.rule).cmp(&(b.path.as_str(), b.rule)));
    v
}

fn net_maps(policy: &Policy) -> NetMaps {
    let net = &policy.net;
    let mut listen: Vec<ListenEntry> = net
        .listen
        .iter()
        .flat_map(|r| {
            r.ports.ranges().iter().map(move |p| ListenEntry {
                protocol: r.protocol,
                first: p.first,
                last: p.last,
                rule: r.id,
            })
        })
        .collect();
    listen.sort_by_key(|e| (e.protocol, e.first, e.last, e.rule));
    let mut domains: Vec<DomainEntry> = net
        .domains
        .iter()
        .map(|r| DomainEntry {
            domain: r.domain.clone(),
            ports: r.ports.clone(),
            rule: r.id,
        })
        .collect();
    domains.sort_by_cached_key(|e| (e.domain.to_string(), e.rule));
    NetMaps {
        v4: lpm_entries::<4>(policy, false),
        v6: lpm_entries::<16>(policy, true),
        listen,
        runtime_resolved_domains: domains,
    }
}

/// A trie entry under construction: its own grants, before folding.
#[derive(Default)]
struct Draft {
    tcp: Vec<PortGrant>,
    udp: Vec<PortGrant>,
    implicit_deny: Option<ImplicitDeny>,
}

fn grants(ports: &PortSet, rule: RuleId) -> Vec<PortGrant> {
    if ports.is_empty() {
        return vec![PortGrant {
            first: 1,
            last: u16::MAX,
            rule,
        }];
    }
    ports
        .ranges()
        .iter()
        .map(|r| PortGrant {
            first: r.first,
            last: r.last,
            rule,
        })
        .collect()
}

fn lpm_entries<const N: usize>(policy: &Policy, v6: bool) -> Vec<NetEntry<N>> {
    let is_family = |net: &IpNet| matches!(net, IpNet::V6(_)) == v6;
    let mut drafts: HashMap<IpNet, Draft> = HashMap::new();
    for r in policy.net.cidrs.iter().filter(|r| is_family(&r.net)) {
        let d = drafts.entry(r.net).or_default();
        match r.protocol {
            Protocol::Tcp => d.tcp.extend(grants(&r.ports, r.id)),
            Protocol::Udp => d.udp.extend(grants(&r.ports, r.id)),
        }
    }
    for (text, why) in IMPLICIT_DENIES {
        let net: IpNet = text.parse().expect("built-in network");
        if is_family(&net) {
            // Naming exactly this network lifts the deny; a wider rule does not.
            drafts.entry(net).or_insert_with(|| Draft {
                implicit_deny: Some(why),
                ..Draft::default()
            });
        }
    }

    // Fold from the shortest prefix down, so each entry's nearest ancestor is already complete.
    let mut nets: Vec<IpNet> = drafts.keys().copied().collect();
    nets.sort_by_key(|n| (n.prefix_len(), *n));
    // Only the prefix lengths some entry has can hold an ancestor: looking those up alone keeps
    // the search at a few lookups per entry instead of one per shorter length.
    let mut lengths: Vec<u8> = nets.iter().map(|n| n.prefix_len()).collect();
    lengths.dedup();
    let mut folded: HashMap<IpNet, Draft> = HashMap::with_capacity(nets.len());
    for net in nets {
        // Each draft is folded once, in `nets` order: taken out of the map, not copied.
        let mut entry = drafts.remove(&net).expect("every net has a draft");
        if entry.implicit_deny.is_none() {
            let shorter = lengths.iter().rev().filter(|&&len| len < net.prefix_len());
            let ancestor = shorter.copied().find_map(|len| {
                let sup = IpNet::new(net.addr(), len).ok()?.trunc();
                folded.get(&sup)
            });
            if let Some(a) = ancestor.filter(|a| a.implicit_deny.is_none()) {
                entry.tcp.extend(a.tcp.iter().copied());
                entry.udp.extend(a.udp.iter().copied());
            }
        }
        for list in [&mut entry.tcp, &mut entry.udp] {
            list.sort();
            list.dedup();
        }
        folded.insert(net, entry);
    }

    let mut out: Vec<NetEntry<N>> = folded
        .into_iter()
        .map(|(net, d)| NetEntry {
            key: LpmKey::from_net(net).expect("family filtered above"),
            tcp: d.tcp,
            udp: d.udp,
            implicit_deny: d.implicit_deny,
        })
        .collect();
    out.sort_by_key(|e| (e.key.addr, e.key.prefix_len));
    out
}
