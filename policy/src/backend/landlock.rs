//! The Landlock back-end: the unprivileged Linux plan (a Landlock ruleset plus the seccomp
//! filter that covers what Landlock cannot express).
//!
//! # Mapping
//!
//! The ruleset handles every filesystem right the target ABI knows ([`FsRights::for_abi`]), so
//! whatever is not granted is denied. Grants map to rights as follows (rights above the ABI are
//! masked off, never requested):
//!
//! | grant  | Landlock rights |
//! |--------|-----------------|
//! | read   | `read_file read_dir` |
//! | write  | `write_file remove_file remove_dir make_reg make_dir make_sym make_fifo make_sock`, `refer` (ABI 2), `truncate` (ABI 3), `ioctl_dev` (ABI 5, only under `/dev`) |
//! | exec   | `execute read_file read_dir` (an interpreter must read the script it runs) |
//!
//! `make_char` and `make_block` are never granted: a device node made inside the sandbox would
//! reach any device. Rules on the same path are merged into one [`PathRule`] carrying every rule
//! id; the plan is sorted by path text and does not depend on rule order.
//!
//! **Directory-only rights.** A rule keeps `read_dir`, `make_*`, `remove_*` and `refer` whatever
//! the path names: only the runtime knows whether the path is a directory on this machine, and it
//! masks a rule on a non-directory with [`FsRights::directory_only`] (Landlock rejects those
//! rights on a file with `EINVAL`).
//!
//! **Exact scope.** Landlock path-beneath rules always cover the content of a directory, so an
//! exact grant on a directory grants its content too. The plan treats every grant as a subtree
//! for containment, and lists exact grants in [`LandlockPlan::notes`].
//!
//! **Denies.** Landlock can only add access. A deny is enforced by Landlock's default deny when
//! no grant above it carries the rights it takes away; a grant *inside* a deny loses the denied
//! rights (denies win), so that case is exact. A deny *inside* a grant with intersecting rights
//! (`deny $HOME/.ssh/**` under `readwrite $HOME/**`) cannot be expressed: without the eBPF kernel
//! layer it is a [`Gap`]; with it, the kernel layer's deny map enforces it and the gap is
//! recorded in [`LandlockPlan::covered_by_kernel_layer`] instead (the runtime needs it should
//! the kernel layer fail to load). Containment is symbolic (see `containment`): the runtime plans the expanded
//! policy again so overlaps that only exist on one machine are found too.
//!
//! **exec.** `exec deny` is a deny of `execute`. `exec only` intersects the exec grants with the
//! listed paths: a grant inside a listed path keeps `execute`, a grant that only contains listed
//! paths loses it and each listed path inside it gets its own `execute` rule. The paths are
//! always representable, but Landlock checks `execute` at `execve` only: the dynamic loader,
//! which every dynamic binary needs executable, maps any readable binary when run as a program.
//! So without the kernel layer's mapping hooks `exec only` has one gap (allows more), and
//! seccomp keeps executable memfds (no path at all) from being made.
//!
//! **Network** (ABI 4 adds TCP bind/connect port rules; Landlock cannot see addresses, UDP or
//! domains). With `net allow all` nothing is handled. Otherwise:
//! - TCP rules with at most [`MAX_PORTS_PER_RULE`] ports become one port rule per port. A port
//!   rule opens the port to every address, so a CIDR other than `0.0.0.0/0` plus `::/0`, or a
//!   domain, is a gap (`allows_more`) without the kernel layer: the nearest Landlock rule stays
//!   bounded by port, so it is taken and reported.
//! - Wider rules (or "every port") cannot be listed: with the kernel layer Landlock stops
//!   handling that direction (connect or bind) and the eBPF cgroup programs decide; without it
//!   the rule is not granted (`allows_less`) — unless the policy allows every TCP port to both
//!   `0.0.0.0/0` and `::/0`, which is exactly "connect is not handled".
//! - UDP: seccomp can only allow or deny UDP as a whole, so UDP rules need the kernel layer;
//!   without it UDP stays blocked (`allows_less`) rather than opening every UDP port everywhere.
//! - Below ABI 4, TCP rules need the kernel layer; without it every inet socket is refused by
//!   seccomp (`allows_less`). With no TCP rules that is exactly the policy, so no gap.
//!
//! **Scopes** (ABI 6): signal and abstract-unix-socket scoping. The kernel layer does not cover
//! them yet, so below ABI 6 a requested scope is a gap even with the kernel layer.
//!
//! **ABI losses, in short:** ABI 1 refuses every cross-directory rename/link (no `refer`);
//! below 3 truncate(2) is unrestricted (a gap for the default deny); below 4 no TCP rules;
//! below 5 ioctl on granted devices is unrestricted (seccomp still blocks `TIOCSTI`); below 6 no
//! scopes; ABI 7 only adds audit logging, which this plan does not use.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ir::{Access, CidrRule, DomainRule, Effect, NetMode, Policy, RuleId};
use crate::net::{IpNet, PortSet, Protocol};
use crate::path::{compare_components, PolicyPath, Scope};

use super::containment::{covers, PathTrie};
use super::{linux_release_for_abi, Target};

/// Landlock filesystem rights, with the kernel's own bit positions (`LANDLOCK_ACCESS_FS_*`), so
/// the runtime hands the bits to the kernel unchanged.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FsRights(u64);

impl FsRights {
    pub const EXECUTE: FsRights = FsRights(1 << 0);
    pub const WRITE_FILE: FsRights = FsRights(1 << 1);
    pub const READ_FILE: FsRights = FsRights(1 << 2);
    pub const READ_DIR: FsRights = FsRights(1 << 3);
    pub const REMOVE_DIR: FsRights = FsRights(1 << 4);
    pub const REMOVE_FILE: FsRights = FsRights(1 << 5);
    pub const MAKE_CHAR: FsRights = FsRights(1 << 6);
    pub const MAKE_DIR: FsRights = FsRights(1 << 7);
    pub const MAKE_REG: FsRights = FsRights(1 << 8);
    pub const MAKE_SOCK: FsRights = FsRights(1 << 9);
    pub const MAKE_FIFO: FsRights = FsRights(1 << 10);
    pub const MAKE_BLOCK: FsRights = FsRights(1 << 11);
    pub const MAKE_SYM: FsRights = FsRights(1 << 12);
    /// ABI 2.
    pub const REFER: FsRights = FsRights(1 << 13);
    /// ABI 3.
    pub const TRUNCATE: FsRights = FsRights(1 << 14);
    /// ABI 5.
    pub const IOCTL_DEV: FsRights = FsRights(1 << 15);

    pub const NAMES: [(FsRights, &'static str); 16] = [
        (FsRights::EXECUTE, "execute"),
        (FsRights::WRITE_FILE, "write_file"),
        (FsRights::READ_FILE, "read_file"),
        (FsRights::READ_DIR, "read_dir"),
        (FsRights::REMOVE_DIR, "remove_dir"),
        (FsRights::REMOVE_FILE, "remove_file"),
        (FsRights::MAKE_CHAR, "make_char"),
        (FsRights::MAKE_DIR, "make_dir"),
        (FsRights::MAKE_REG, "make_reg"),
        (FsRights::MAKE_SOCK, "make_sock"),
        (FsRights::MAKE_FIFO, "make_fifo"),
        (FsRights::MAKE_BLOCK, "make_block"),
        (FsRights::MAKE_SYM, "make_sym"),
        (FsRights::REFER, "refer"),
        (FsRights::TRUNCATE, "truncate"),
        (FsRights::IOCTL_DEV, "ioctl_dev"),
    ];

    /// Every right that creates, changes, moves or removes files (write grants give all but
    /// `make_char`/`make_block`): what makes a grant writable, for rollback and write denies.
    pub const CHANGES_FILES: FsRights = WRITE_GRANT
        .union(FsRights::MAKE_CHAR)
        .union(FsRights::MAKE_BLOCK);

    pub const fn empty() -> FsRights {
        FsRights(0)
    }
    pub const fn bits(self) -> u64 {
        self.0
    }
    pub const fn from_bits_truncate(bits: u64) -> FsRights {
        FsRights(bits & 0xffff)
    }
    pub const fn union(self, o: FsRights) -> FsRights {
        FsRights(self.0 | o.0)
    }
    pub const fn intersection(self, o: FsRights) -> FsRights {
        FsRights(self.0 & o.0)
    }
    pub const fn difference(self, o: FsRights) -> FsRights {
        FsRights(self.0 & !o.0)
    }
    pub const fn contains(self, o: FsRights) -> bool {
        self.0 & o.0 == o.0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn intersects(self, o: FsRights) -> bool {
        self.0 & o.0 != 0
    }

    /// Every filesystem right a kernel with this Landlock ABI can handle.
    pub fn for_abi(abi: u8) -> FsRights {
        match abi {
            0 => FsRights(0),
            1 => FsRights((1 << 13) - 1),
            2 => FsRights((1 << 14) - 1),
            3 | 4 => FsRights((1 << 15) - 1),
            _ => FsRights((1 << 16) - 1),
        }
    }

    /// The rights that only apply to directories; Landlock refuses them on a file rule.
    pub fn directory_only() -> FsRights {
        FsRights::READ_DIR
            .union(FsRights::REMOVE_DIR)
            .union(FsRights::REMOVE_FILE)
            .union(FsRights::MAKE_CHAR)
            .union(FsRights::MAKE_DIR)
            .union(FsRights::MAKE_REG)
            .union(FsRights::MAKE_SOCK)
            .union(FsRights::MAKE_FIFO)
            .union(FsRights::MAKE_BLOCK)
            .union(FsRights::MAKE_SYM)
            .union(FsRights::REFER)
    }

    /// [`Self::names`] joined by `separator`, written onto `out`.
    pub(crate) fn push_names(self, out: &mut String, separator: &str) {
        for (n, name) in FsRights::NAMES
            .iter()
            .filter(|(r, _)| self.contains(*r))
            .map(|(_, n)| *n)
            .enumerate()
        {
            if n > 0 {
                out.push_str(separator);
            }
            out.push_str(name);
        }
    }

    pub fn names(self) -> Vec<&'static str> {
        // Sized once: one bit per named right (a filtered iterator would start small and grow).
        let mut names = Vec::with_capacity(self.0.count_ones() as usize);
        names.extend(
            FsRights::NAMES
                .iter()
                .filter(|(r, _)| self.contains(*r))
                .map(|(_, n)| *n),
        );
        names
    }
}

impl fmt::Debug for FsRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FsRights({})", self.names().join("|"))
    }
}

impl Serialize for FsRights {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FsRights {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut r = FsRights::empty();
        for n in names {
            let (bit, _) = FsRights::NAMES
                .iter()
                .find(|(_, name)| *name == n)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown Landlock right `{n}`")))?;
            r = r.union(*bit);
        }
        Ok(r)
    }
}

/// One `landlock_add_rule(LANDLOCK_RULE_PATH_BENEATH)` call, or, when it has carve-outs, the
/// set of calls that give the same rights to everything beneath `path` except the carve-outs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    pub path: PolicyPath,
    pub rights: FsRights,
    /// The IR rules this Landlock rule enforces.
    pub rules: Vec<RuleId>,
    /// Denies inside this (read/exec-only) grant. Landlock cannot take a right back beneath a
    /// rule, so the runtime splits the grant instead: each directory on the way from `path` to
    /// a carve-out keeps only the rights no carve-out removes, and every other entry of those
    /// directories gets its own rule with the full rights. What that costs: those directories
    /// cannot be listed, and entries that other processes create in them during the run get no
    /// rights. Only read/exec grants are split, because a writable grant would lose the right
    /// to create entries in each of those directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carve_outs: Vec<CarveOut>,
}

/// A deny carved out of a [`PathRule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarveOut {
    pub path: PolicyPath,
    /// The rights the deny removes beneath `path` (a subset of the grant's).
    pub rights: FsRights,
    pub rule: RuleId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetRight {
    BindTcp,
    ConnectTcp,
}

/// One `landlock_add_rule(LANDLOCK_RULE_NET_PORT)` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    pub port: u16,
    pub rights: Vec<NetRight>,
    pub rules: Vec<RuleId>,
}

/// What the seccomp filter must block because Landlock cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompPlan {
    /// Block `socket(AF_INET/AF_INET6, SOCK_DGRAM)` (UDP) and `SOCK_RAW`.
    pub deny_udp_and_raw: bool,
    /// Block every `AF_INET`/`AF_INET6` socket: used when no TCP is allowed and Landlock's own
    /// TCP control (ABI 4) is missing.
    pub deny_inet: bool,
    /// Block `AF_PACKET`, `AF_NETLINK` (except route queries), `AF_VSOCK` and other families.
    pub deny_other_families: bool,
    /// Always: `io_uring_setup`, `ptrace`, `process_vm_readv/writev`, ioctl `TIOCSTI`, `bpf`,
    /// module loading, `kexec`, mount-family calls, `chown` and setting setuid/setgid bits.
    pub deny_escape_syscalls: bool,
    /// Block `socket(AF_UNIX)` (`socketpair` stays): Landlock cannot filter `connect(2)` to path
    /// unix sockets, so without the kernel layer the family is closed rather than left open to
    /// `docker.sock` or an agent socket.
    #[serde(default)]
    pub deny_unix_sockets: bool,
    /// When `deny_udp_and_raw` is lifted for the kernel layer: every `AF_INET`/`AF_INET6`
    /// socket but TCP and UDP stays blocked (ICMP echo, SCTP, UDP-Lite, raw...), because the
    /// cgroup socket programs see TCP connects and UDP sends only.
    #[serde(default)]
    pub inet_tcp_udp_only: bool,
    /// Block `sendto`/`sendmsg`/`sendmmsg` with `MSG_FASTOPEN`: a TCP Fast Open send connects
    /// without `connect(2)`, so Landlock's TCP connect rules never see it (measured on Linux
    /// 6.18: it reaches any port). Set whenever the network is restricted; programs then use
    /// `connect(2)` (or `TCP_FASTOPEN_CONNECT`, which goes through it).
    #[serde(default)]
    pub deny_tcp_fastopen: bool,
    /// Block `listen(2)`: on a TCP socket never bound, `listen` binds an ephemeral port itself,
    /// without the bind hook Landlock checks, and serves on every address (measured on Linux
    /// 6.18). Set when the network is restricted, the profile allows no TCP listen, and
    /// `socket(AF_UNIX)` is closed too (unix servers need `listen`); otherwise the kernel
    /// layer's `socket_listen` program refuses unbound listens (see `KernelCoverage::listen`).
    #[serde(default)]
    pub deny_listen: bool,
    /// Block `memfd_create` unless it asks for `MFD_NOEXEC_SEAL`: a memfd lives on an internal
    /// mount outside every path, so Landlock never checks `execute` on it, and `execve` of
    /// `/proc/self/fd/N` would run a binary `exec only` does not list (measured on Linux 6.18).
    /// Set with `exec only` when the kernel layer's exec hook does not cover it.
    #[serde(default)]
    pub deny_exec_memfd: bool,
}

/// Which way a target falls short of a rule. A reviewer needs to know whether the sandbox ends up
/// looser or stricter than the profile says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapDirection {
    /// A restriction does not hold: the sandbox allows more than the profile (a deny inside a
    /// grant, a port open to every address where the profile named one network).
    AllowsMore,
    /// A grant cannot be given: the sandbox allows less than the profile (UDP stays blocked,
    /// a port range too wide to list).
    AllowsLess,
}

/// A rule (or part of one) that this target cannot enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The rule that falls short; `None` for the implicit default (e.g. "everything not granted
    /// is denied" cannot hold for truncate(2) below ABI 3).
    pub rule: Option<RuleId>,
    /// Other rules involved, e.g. the grants a deny lies inside. Sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RuleId>,
    /// The rule as the profile wrote it, e.g. `deny $HOME/.ssh/** (inside readwrite $HOME/**)`.
    pub rule_text: String,
    /// The kernel feature that would enforce it, e.g. `Landlock ABI 4 (Linux 6.7)`.
    pub feature: String,
    /// What it needs, e.g. `Linux 6.7` or `the eBPF kernel layer (run nono as root)`.
    pub needs: String,
    /// Why this target falls short, and what happens instead.
    pub reason: String,
    pub direction: GapDirection,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// The ABI the plan targets; rights above it are never requested.
    pub abi: u8,
    pub handled_fs: FsRights,
    /// TCP rights the ruleset handles (empty below ABI 4, or when the network is unrestricted).
    pub handled_net: Vec<NetRight>,
    pub scope_signals: bool,
    pub scope_abstract_unix: bool,
    pub path_rules: Vec<PathRule>,
    pub port_rules: Vec<PortRule>,
    pub seccomp: SeccompPlan,
    /// Rules the Landlock + seccomp layer cannot enforce on this target. The runtime refuses to
    /// start when this is non-empty, unless `--best-effort` (or the kernel layer covers them).
    pub gaps: Vec<Gap>,
    /// What would be a gap without the eBPF kernel layer, and which the kernel layer closes on
    /// this target. Should the kernel layer fail to load at run time, these become gaps.
    pub covered_by_kernel_layer: Vec<Gap>,
    /// Known limitations that are not a rule this target fails to enforce (path unix sockets,
    /// exact grants on directories...). Shown to reviewers; never block a run.
    pub notes: Vec<String>,
}

/// The most ports one rule may turn into Landlock port rules (one `landlock_add_rule` each).
/// Wider rules are left to the kernel layer, or not granted.
pub const MAX_PORTS_PER_RULE: u32 = 1024;

/// What a read grant gives.
const READ_GRANT: FsRights = FsRights::READ_FILE.union(FsRights::READ_DIR);
/// What a write grant gives before the ABI mask and the `/dev` rule for `ioctl_dev`. Never
/// `make_char`/`make_block`.
const WRITE_GRANT: FsRights = FsRights::WRITE_FILE
    .union(FsRights::REMOVE_FILE)
    .union(FsRights::REMOVE_DIR)
    .union(FsRights::MAKE_REG)
    .union(FsRights::MAKE_DIR)
    .union(FsRights::MAKE_SYM)
    .union(FsRights::MAKE_FIFO)
    .union(FsRights::MAKE_SOCK)
    .union(FsRights::REFER)
    .union(FsRights::TRUNCATE);
/// What an exec grant gives: running, and reading (scripts, `ld.so` mapping libraries).
const EXEC_GRANT: FsRights = FsRights::EXECUTE.union(READ_GRANT);
/// What a write deny takes away: every right that changes the file system, including the ones
/// never granted, so a deny can never be read as leaving a modifying right behind.
const WRITE_DENIED: FsRights = FsRights::CHANGES_FILES.union(FsRights::IOCTL_DEV);

pub(crate) const KERNEL_LAYER: &str = "the eBPF kernel layer (run nono as root)";
const FEATURE_DENY_INSIDE: &str = "deny inside an allowed tree";

/// The Landlock rights a grant of `access` on `path` asks for, before the ABI mask.
pub fn granted_rights(access: Access, path: &PolicyPath) -> FsRights {
    let mut rights = FsRights::empty();
    if access.contains(Access::READ) {
        rights = rights.union(READ_GRANT);
    }
    if access.contains(Access::WRITE) {
        rights = rights.union(WRITE_GRANT);
        if is_under_dev(path) {
            rights = rights.union(FsRights::IOCTL_DEV);
        }
    }
    if access.contains(Access::EXEC) {
        rights = rights.union(EXEC_GRANT);
    }
    rights
}

/// The Landlock rights a deny of `access` takes away.
pub fn denied_rights(access: Access) -> FsRights {
    let mut rights = FsRights::empty();
    if access.contains(Access::READ) {
        rights = rights.union(READ_GRANT);
    }
    if access.contains(Access::WRITE) {
        rights = rights.union(WRITE_DENIED);
    }
    if access.contains(Access::EXEC) {
        rights = rights.union(FsRights::EXECUTE);
    }
    rights
}

fn is_under_dev(path: &PolicyPath) -> bool {
    path.root().is_none() && path.first_component() == Some("dev")
}

/// Compile the Landlock plan. Pure and deterministic: the same policy and target always give
/// the same plan, whatever order the policy's rules are in.
pub fn plan(policy: &Policy, target: &Target) -> LandlockPlan {
    plan_with_texts(policy, target, &policy.rule_summaries())
}

/// Which parts of the eBPF kernel layer enforce on this machine. The runtime probes each part on
/// its own (a kernel may refuse BPF LSM programs and still accept cgroup socket programs), so a
/// gap is only "covered" when the part that closes it is active. [`Target::kernel_layer`] means
/// every part the kernel layer has today ([`KernelCoverage::full`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCoverage {
    /// BPF LSM file hooks: filesystem denies, including a deny inside a writable grant.
    pub files: bool,
    /// BPF LSM exec check: `exec deny` (and the exec allowlist).
    pub exec: bool,
    /// cgroup socket programs: TCP/UDP by address, port and protocol.
    pub net: bool,
    /// Domain allowlist resolved into the network maps: the runtime serves a resolver and
    /// redirects the sandbox's DNS (UDP and TCP port 53) to it, so UDP is left to the programs.
    pub domains: bool,
    /// BPF LSM unix-socket connect filtering by path.
    pub unix_sockets: bool,
    /// BPF LSM `socket_listen`: a listen on an inet socket that was never bound (an ephemeral
    /// port Landlock never sees) is refused, so listening takes an explicit, checked bind.
    pub listen: bool,
    /// Split read/exec-only grants around denies even when the file hooks enforce them. The
    /// runtime asks for it: a split also holds for a deny whose path does not exist yet, which
    /// the file hooks (bound by inode when the run starts) can't cover. Without it the plan
    /// leaves such denies to the kernel layer alone, so directories on the way stay listable.
    pub keep_splits: bool,
}

impl KernelCoverage {
    /// No kernel layer: Landlock and seccomp only.
    pub const NONE: KernelCoverage = KernelCoverage {
        files: false,
        exec: false,
        net: false,
        domains: false,
        unix_sockets: false,
        listen: false,
        keep_splits: false,
    };

    /// What a target with the kernel layer is planned for.
    pub fn full() -> KernelCoverage {
        KernelCoverage {
            files: true,
            exec: true,
            net: true,
            domains: true,
            unix_sockets: true,
            listen: true,
            keep_splits: false,
        }
    }

    fn of(target: &Target) -> KernelCoverage {
        if target.kernel_layer {
            KernelCoverage::full()
        } else {
            KernelCoverage::NONE
        }
    }
}

/// [`plan`] for a machine where only some parts of the kernel layer enforce.
pub fn plan_with_coverage(policy: &Policy, abi: u8, cover: KernelCoverage) -> LandlockPlan {
    plan_inner(policy, abi, cover, &policy.rule_summaries())
}

/// [`plan`], given the policy's [`Policy::rule_summaries`] (computed once for every back-end).
pub(crate) fn plan_with_texts(
    policy: &Policy,
    target: &Target,
    texts: &[(RuleId, String)],
) -> LandlockPlan {
    plan_inner(
        policy,
        target.landlock_abi,
        KernelCoverage::of(target),
        texts,
    )
}

fn plan_inner(
    policy: &Policy,
    abi: u8,
    cover: KernelCoverage,
    texts: &[(RuleId, String)],
) -> LandlockPlan {
    let abi = abi.min(Target::LATEST_ABI);
    let mut planner = Planner {
        policy,
        abi,
        cover,
        handled_fs: FsRights::for_abi(abi),
        texts,
        gaps: Vec::new(),
        covered: Vec::new(),
        notes: Vec::new(),
    };
    let path_rules = planner.filesystem();
    let (handled_net, port_rules, mut seccomp) = planner.network();
    seccomp.deny_unix_sockets = !cover.unix_sockets;
    // A listen on an unbound TCP socket binds an ephemeral port past Landlock's bind check.
    // With no TCP listen rule and no unix socket to serve, `listen` has no allowed use left.
    let tcp_listen_rules = policy
        .net
        .listen
        .iter()
        .any(|r| r.protocol == Protocol::Tcp);
    seccomp.deny_listen = policy.net.mode != NetMode::Unrestricted
        && !cover.listen
        && !tcp_listen_rules
        && seccomp.deny_unix_sockets;
    // `exec only` promises that nothing unlisted runs; an executable memfd has no path to
    // list or refuse. The kernel layer's exec hook judges it by inode (not on the allowlist).
    seccomp.deny_exec_memfd = policy.exec.allow_only.is_some() && !cover.exec;
    // The dynamic loader must be executable for any dynamic binary to start, and run as a
    // program it maps any readable binary without execve: only the kernel layer's mapping
    // hooks (`mmap_file`, `file_mprotect`) hold the allowlist there.
    if let Some(first) = policy
        .exec
        .allow_only
        .as_ref()
        .and_then(|list| list.first())
    {
        planner.kernel_gap(
            cover.exec,
            first.id,
            "exec allowlist for code mapped without execve",
            "the eBPF kernel layer's BPF LSM programs (root)",
            "Landlock checks execute at execve only: the dynamic loader run as a program \
             (`ld.so ./binary`) maps and runs binaries the list does not name"
                .into(),
            GapDirection::AllowsMore,
        );
    }
    let (scope_signals, scope_abstract_unix) = planner.scopes();
    planner.unix_socket_note();
    planner.abi_notes(&path_rules);

    let gaps = sorted_gaps(planner.gaps);
    let covered_by_kernel_layer = sorted_gaps(planner.covered);
    let mut notes = planner.notes;
    notes.sort();
    notes.dedup();
    LandlockPlan {
        abi,
        handled_fs: planner.handled_fs,
        handled_net,
        scope_signals,
        scope_abstract_unix,
        path_rules,
        port_rules,
        seccomp,
        gaps,
        covered_by_kernel_layer,
        notes,
    }
}

/// Rule gaps in id order, then the implicit-default ones.
fn sorted_gaps(mut gaps: Vec<Gap>) -> Vec<Gap> {
    gaps.sort_by(|a, b| {
        (a.rule.is_none(), a.rule, &a.rule_text, &a.feature).cmp(&(
            b.rule.is_none(),
            b.rule,
            &b.rule_text,
            &b.feature,
        ))
    });
    gaps.dedup();
    gaps
}

struct Planner<'p> {
    policy: &'p Policy,
    abi: u8,
    cover: KernelCoverage,
    handled_fs: FsRights,
    /// Every rule's one-line text in id order, for gap and note messages.
    texts: &'p [(RuleId, String)],
    gaps: Vec<Gap>,
    /// Gaps the kernel layer closes (see [`LandlockPlan::covered_by_kernel_layer`]).
    covered: Vec<Gap>,
    notes: Vec<String>,
}

/// A grant on its way to a [`PathRule`]: one IR rule, or one `exec only` path cut out of one.
struct Piece {
    path: PolicyPath,
    rights: FsRights,
    rules: Vec<RuleId>,
}

/// A deny in Landlock terms: a filesystem deny, or an `exec deny` (a deny of `execute`).
struct Deny<'p> {
    id: RuleId,
    path: &'p PolicyPath,
    rights: FsRights,
    /// From `exec deny` (closed by the kernel layer's exec check, not its file hooks).
    exec: bool,
}

impl<'p> Planner<'p> {
    fn text(&self, id: RuleId) -> String {
        let mut out = String::new();
        self.push_text(&mut out, id);
        out
    }

    /// The rules' texts, `, `-separated, written into one string (a note or gap names a few
    /// rules, and there are notes for every carved-out deny).
    fn texts_of(&self, ids: &[RuleId]) -> String {
        let mut out = String::new();
        self.push_texts(&mut out, ids);
        out
    }

    /// [`Self::texts_of`], written onto `out`.
    fn push_texts(&self, out: &mut String, ids: &[RuleId]) {
        for (n, id) in ids.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            self.push_text(out, *id);
        }
    }

    /// A rule's one-line text, or its id for a rule without one.
    fn push_text(&self, out: &mut String, id: RuleId) {
        use std::fmt::Write as _;
        match self.texts.binary_search_by_key(&id, |(id, _)| *id) {
            Ok(i) => out.push_str(&self.texts[i].1),
            Err(_) => {
                let _ = write!(out, "{id}");
            }
        }
    }

    /// Record a gap the kernel layer closes when the part that closes it is active.
    fn push_kernel_gap(&mut self, covered: bool, gap: Gap) {
        if covered {
            self.covered.push(gap);
        } else {
            self.gaps.push(gap);
        }
    }

    /// A gap on a rule, closed by the kernel layer when the target has it.
    fn kernel_gap(
        &mut self,
        covered: bool,
        rule: RuleId,
        feature: &str,
        needs: &str,
        reason: String,
        direction: GapDirection,
    ) {
        let gap = self.make_gap(Some(rule), feature, needs, reason, direction);
        self.push_kernel_gap(covered, gap);
    }

    /// A gap on a rule that no layer closes on this target.
    fn gap(
        &mut self,
        rule: Option<RuleId>,
        feature: &str,
        needs: &str,
        reason: String,
        direction: GapDirection,
    ) {
        let gap = self.make_gap(rule, feature, needs, reason, direction);
        self.gaps.push(gap);
    }

    fn make_gap(
        &self,
        rule: Option<RuleId>,
        feature: &str,
        needs: &str,
        reason: String,
        direction: GapDirection,
    ) -> Gap {
        let rule_text = match rule {
            Some(id) => self.text(id),
            None => String::new(),
        };
        Gap {
            rule,
            related: Vec::new(),
            rule_text,
            feature: feature.to_string(),
            needs: needs.to_string(),
            reason,
            direction,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Filesystem

    fn filesystem(&mut self) -> Vec<PathRule> {
        let policy = self.policy;
        let denies: Vec<Deny<'p>> = policy
            .fs
            .iter()
            .filter(|r| r.effect == Effect::Deny)
            .map(|r| Deny {
                id: r.id,
                path: &r.path,
                rights: denied_rights(r.access),
                exec: false,
            })
            .chain(policy.exec.deny.iter().map(|r| Deny {
                id: r.id,
                path: &r.path,
                rights: FsRights::EXECUTE,
                exec: true,
            }))
            .collect();

        if self.abi == 0 {
            self.no_landlock_gaps();
            return Vec::new();
        }
        if self.abi < 3 {
            self.gaps.push(Gap {
                rule: None,
                related: Vec::new(),
                rule_text: "default deny: truncate".into(),
                feature: "Landlock ABI 3 (Linux 6.2)".into(),
                needs: "Linux 6.2".into(),
                reason: format!(
                    "Landlock ABI {} does not handle truncation: truncate(2) succeeds on any file \
                     the sandbox can name and open(O_RDONLY|O_TRUNC) on any file it may read, \
                     denied files included",
                    self.abi
                ),
                direction: GapDirection::AllowsMore,
            });
        }

        let mut pieces: Vec<Piece> = policy
            .fs
            .iter()
            .filter(|r| r.effect == Effect::Allow)
            .map(|r| Piece {
                path: r.path.clone(),
                rights: granted_rights(r.access, &r.path).intersection(self.handled_fs),
                rules: vec![r.id],
            })
            .collect();
        if let Some(only) = &policy.exec.allow_only {
            restrict_exec(&mut pieces, only);
        }
        self.apply_denies(&mut pieces, &denies);
        let mut rules = merge_pieces(pieces);
        self.denies_inside_grants(&mut rules, &denies);

        let exact: Vec<RuleId> = policy
            .fs
            .iter()
            .filter(|r| r.effect == Effect::Allow && r.path.scope() == Scope::Exact)
            .map(|r| r.id)
            .collect();
        if !exact.is_empty() {
            self.notes.push(format!(
                "exact-path grants ({}) also cover the content when the path is a directory: \
                 Landlock rules apply beneath the object they name",
                join_ids(&exact)
            ));
        }
        rules
    }

    /// Denies win: a grant a deny covers loses the denied rights. A grant left with nothing is
    /// dropped, and a reviewer is told why it has no Landlock rule.
    fn apply_denies(&mut self, pieces: &mut Vec<Piece>, denies: &[Deny<'_>]) {
        let mut trie = PathTrie::for_paths(denies.iter().map(|d| d.path));
        for (i, d) in denies.iter().enumerate() {
            trie.insert(d.path, i);
        }
        for piece in pieces.iter_mut() {
            let mut removed = FsRights::empty();
            let mut by = Vec::new();
            trie.at_or_above(&piece.path, |i, same_object| {
                let d = &denies[i];
                if covers(d.path.scope(), piece.path.scope(), same_object)
                    && d.rights.intersects(piece.rights)
                {
                    removed = removed.union(d.rights);
                    by.push(d.id);
                }
            });
            piece.rights = piece.rights.difference(removed);
            if piece.rights.is_empty() {
                by.sort();
                by.dedup();
                self.notes.push(format!(
                    "{} grants nothing: {} covers it, and denies win",
                    self.texts_of(&piece.rules),
                    self.texts_of(&by)
                ));
            }
        }
        pieces.retain(|p| !p.rights.is_empty());
    }

    /// A deny beneath a Landlock rule that carries a right it takes away cannot be expressed as
    /// one rule. Beneath read/exec-only grants the runtime splits the grant around the deny (see
    /// [`PathRule::carve_outs`]); beneath a writable grant that would cost the right to create
    /// entries in every directory on the way, so it is a gap unless the kernel layer enforces
    /// the deny.
    fn denies_inside_grants(&mut self, rules: &mut [PathRule], denies: &[Deny<'_>]) {
        let mut trie = PathTrie::for_paths(rules.iter().map(|r| &r.path));
        for (i, r) in rules.iter().enumerate() {
            trie.insert(&r.path, i);
        }
        let mut carves: Vec<(usize, CarveOut)> = Vec::new();
        for d in denies {
            let mut inside = Vec::new();
            // A rule on the deny's own object cannot be split around it.
            let mut on_the_object = false;
            trie.at_or_above(d.path, |i, same_object| {
                if rules[i].rights.intersects(d.rights) {
                    inside.push(i);
                    on_the_object |= same_object;
                }
            });
            if inside.is_empty() {
                continue;
            }
            inside.sort();
            inside.dedup();
            let mut related: Vec<RuleId> = inside
                .iter()
                .flat_map(|i| rules[*i].rules.iter().copied())
                .collect();
            related.sort();
            related.dedup();
            let exposed = inside
                .iter()
                .fold(FsRights::empty(), |acc, i| acc.union(rules[*i].rights))
                .intersection(d.rights);
            let writable = inside
                .iter()
                .any(|i| rules[*i].rights.intersects(WRITE_DENIED));
            let covered = if d.exec {
                self.cover.exec
            } else {
                self.cover.files
            };
            if !writable && !on_the_object && (!covered || self.cover.keep_splits) {
                for &i in &inside {
                    let removed = rules[i].rights.intersection(d.rights);
                    carves.push((
                        i,
                        CarveOut {
                            path: d.path.clone(),
                            rights: removed,
                            rule: d.id,
                        },
                    ));
                }
                self.notes.push(format!(
                    "{} is carved out of {}: the grant is split around it, so the directories on \
                     the way cannot be listed",
                    self.text(d.id),
                    self.texts_of(&related)
                ));
                continue;
            }
            // Each text written into one string: a large policy has a gap per such deny.
            let mut rule_text = String::new();
            self.push_text(&mut rule_text, d.id);
            rule_text.push_str(" (inside ");
            self.push_texts(&mut rule_text, &related);
            rule_text.push(')');
            let mut reason =
                String::from("Landlock can only grant: the enclosing writable grant gives ");
            exposed.push_names(&mut reason, "|");
            reason.push_str(
                " beneath it, and splitting it would take away creating entries on the way",
            );
            self.push_kernel_gap(
                covered,
                Gap {
                    rule: Some(d.id),
                    rule_text,
                    related,
                    feature: FEATURE_DENY_INSIDE.into(),
                    needs: KERNEL_LAYER.into(),
                    reason,
                    direction: GapDirection::AllowsMore,
                },
            );
        }
        drop(trie);
        for (i, carve) in carves {
            rules[i].carve_outs.push(carve);
        }
        for r in rules.iter_mut() {
            r.carve_outs
                .sort_by(|a, b| (a.path.as_str(), a.rule).cmp(&(b.path.as_str(), b.rule)));
            r.carve_outs.dedup();
        }
    }

    /// Without Landlock nothing is denied by default: every grant stops meaning "only this",
    /// and denies hold only if the kernel layer enforces them.
    fn no_landlock_gaps(&mut self) {
        let feature = format!("Landlock (Linux {})", linux_release_for_abi(1));
        let needs = format!(
            "Linux {} with Landlock enabled (lsm=landlock)",
            linux_release_for_abi(1)
        );
        let policy = self.policy;
        for r in policy.fs.iter().filter(|r| r.effect == Effect::Allow) {
            self.gap(
                Some(r.id),
                &feature,
                &needs,
                "without Landlock nothing outside this grant is denied".into(),
                GapDirection::AllowsMore,
            );
        }
        let deny_ids: Vec<(RuleId, bool)> = policy
            .fs
            .iter()
            .filter(|r| r.effect == Effect::Deny)
            .map(|r| (r.id, self.cover.files))
            .chain(policy.exec.deny.iter().map(|r| (r.id, self.cover.exec)))
            .chain(
                policy
                    .exec
                    .allow_only
                    .iter()
                    .flatten()
                    .map(|r| (r.id, self.cover.exec)),
            )
            .collect();
        let needs = format!("{needs}, or {KERNEL_LAYER}");
        for (id, covered) in deny_ids {
            self.kernel_gap(
                covered,
                id,
                &feature,
                &needs,
                "without Landlock or the kernel layer nothing enforces this rule".into(),
                GapDirection::AllowsMore,
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // Network

    fn network(&mut self) -> (Vec<NetRight>, Vec<PortRule>, SeccompPlan) {
        let net = &self.policy.net;
        let mut seccomp = SeccompPlan {
            deny_other_families: true,
            deny_escape_syscalls: true,
            ..SeccompPlan::default()
        };
        if net.mode == NetMode::Unrestricted {
            let mut redundant: Vec<RuleId> = net.domains.iter().map(|r| r.id).collect();
            redundant.extend(net.cidrs.iter().map(|r| r.id));
            redundant.extend(net.listen.iter().map(|r| r.id));
            if !redundant.is_empty() {
                redundant.sort();
                self.notes.push(format!(
                    "`net allow all` leaves the network unrestricted, bind included: {} change \
                     nothing",
                    join_ids(&redundant)
                ));
            }
            return (Vec::new(), Vec::new(), seccomp);
        }

        let connects: Vec<Connect<'_>> = net
            .cidrs
            .iter()
            .filter(|r| r.protocol == Protocol::Tcp)
            .map(Connect::Cidr)
            .chain(net.domains.iter().map(Connect::Domain))
            .collect();
        let tcp_listens: Vec<_> = net
            .listen
            .iter()
            .filter(|r| r.protocol == Protocol::Tcp)
            .collect();
        let mut udp_rules: Vec<RuleId> = net
            .cidrs
            .iter()
            .filter(|r| r.protocol == Protocol::Udp)
            .map(|r| r.id)
            .chain(
                net.listen
                    .iter()
                    .filter(|r| r.protocol == Protocol::Udp)
                    .map(|r| r.id),
            )
            .collect();
        udp_rules.sort();
        let has_tcp = !connects.is_empty() || !tcp_listens.is_empty();
        let has_udp = !udp_rules.is_empty();
        let k = self.cover.net;

        // Domain rules resolved by the kernel layer: the sandbox's DNS queries (UDP to port 53)
        // are redirected by the socket programs to nono's resolver, so seccomp must let UDP
        // through; the programs deny every other UDP destination no rule names.
        let dns_via_kernel = k && self.cover.domains && !net.domains.is_empty();
        seccomp.deny_udp_and_raw = !(k && (has_udp || dns_via_kernel));
        seccomp.inet_tcp_udp_only = !seccomp.deny_udp_and_raw;
        // Landlock checks TCP connects in `connect(2)` only; a Fast Open send connects from
        // `sendto`/`sendmsg`. (The kernel layer's `connect4/6` programs do see it.)
        seccomp.deny_tcp_fastopen = true;
        if has_udp {
            for id in &udp_rules {
                self.kernel_gap(
                    k,
                    *id,
                    "UDP filtering by address and port",
                    KERNEL_LAYER,
                    "seccomp can only allow or deny UDP as a whole; UDP stays blocked".into(),
                    GapDirection::AllowsLess,
                );
            }
        }

        if self.abi < 4 {
            seccomp.deny_inet = !(k && (has_tcp || has_udp));
            if has_tcp {
                let mut ids: Vec<RuleId> = connects.iter().map(|c| c.id()).collect();
                ids.extend(tcp_listens.iter().map(|r| r.id));
                for id in ids {
                    self.kernel_gap(
                        k,
                        id,
                        &format!("Landlock ABI 4 (Linux {})", linux_release_for_abi(4)),
                        &format!("Linux {}, or {KERNEL_LAYER}", linux_release_for_abi(4)),
                        format!(
                            "Landlock ABI {} cannot filter TCP; seccomp refuses every inet socket",
                            self.abi
                        ),
                        GapDirection::AllowsLess,
                    );
                }
            }
            return (Vec::new(), Vec::new(), seccomp);
        }

        // Each port's rights and rules, sorted and deduplicated once all are in: the lists
        // become the port rules' own, where sets would be built per port and then copied.
        let mut ports: BTreeMap<u16, (Vec<NetRight>, Vec<RuleId>)> = BTreeMap::new();
        let mut allow = |range_set: &PortSet, right: NetRight, id: RuleId| {
            for r in range_set.ranges() {
                for port in r.first..=r.last {
                    let entry = ports.entry(port).or_default();
                    if !entry.0.contains(&right) {
                        entry.0.push(right);
                    }
                    entry.1.push(id);
                }
            }
        };

        // Every TCP port to both address families: exactly "connect is not handled".
        let open_everywhere = [false, true].iter().all(|v6| {
            connects.iter().any(|c| match c {
                Connect::Cidr(r) => {
                    r.net.prefix_len() == 0
                        && matches!(r.net, IpNet::V6(_)) == *v6
                        && r.ports.count() == 65535
                }
                Connect::Domain(_) => false,
            })
        });
        let mut connect_to_kernel: Vec<RuleId> = Vec::new();
        for c in &connects {
            let count = c.ports().count();
            if count > MAX_PORTS_PER_RULE {
                if !open_everywhere {
                    self.too_wide_gap(c.id(), c.ports());
                }
                if k {
                    connect_to_kernel.push(c.id());
                }
                continue;
            }
            allow(c.ports(), NetRight::ConnectTcp, c.id());
            match c {
                // The network programs deny every address no rule names, and nothing resolves
                // domains into their maps yet: with them the domain is unreachable, not open.
                Connect::Domain(r) if k && !self.cover.domains => self.gap(
                    Some(r.id),
                    "domain allowlist",
                    "nono's resolver feeding the kernel maps (`nono run` starts it)",
                    "the kernel layer's network programs deny every address no CIDR rule \
                     names and do not resolve domains yet: connections to it are denied"
                        .into(),
                    GapDirection::AllowsLess,
                ),
                Connect::Domain(r) => self.kernel_gap(
                    self.cover.domains,
                    r.id,
                    "domain allowlist",
                    "the eBPF kernel layer's network programs (root) or nono's local proxy (Landlock ABI 4)",
                    port_reason(
                        "Landlock filters TCP by port only: port ",
                        &r.ports,
                        " is open to every address",
                    ),
                    GapDirection::AllowsMore,
                ),
                Connect::Cidr(r) if r.net.prefix_len() != 0 => self.kernel_gap(
                    k,
                    r.id,
                    "TCP address filtering",
                    KERNEL_LAYER,
                    port_reason(
                        "address restriction needs the eBPF kernel layer; Landlock filters TCP \
                         by port only: port ",
                        &r.ports,
                        " is open to every address",
                    ),
                    GapDirection::AllowsMore,
                ),
                Connect::Cidr(r) if !other_family_covers(r, &net.cidrs) => self.kernel_gap(
                    k,
                    r.id,
                    "TCP address filtering",
                    KERNEL_LAYER,
                    format!(
                        "Landlock port rules apply to IPv4 and IPv6 alike: port {} is open to \
                         both families",
                        r.ports
                    ),
                    GapDirection::AllowsMore,
                ),
                Connect::Cidr(_) => {}
            }
        }

        let mut bind_to_kernel: Vec<RuleId> = Vec::new();
        for r in &tcp_listens {
            if r.ports.count() > MAX_PORTS_PER_RULE {
                self.too_wide_gap(r.id, &r.ports);
                if k {
                    bind_to_kernel.push(r.id);
                }
                continue;
            }
            allow(&r.ports, NetRight::BindTcp, r.id);
            self.kernel_gap(
                self.cover.listen,
                r.id,
                "listen(2) on an unbound TCP socket",
                "the eBPF kernel layer's BPF LSM programs (root)",
                "Landlock checks bind(2) only: a listen on a socket never bound serves on an \
                 ephemeral port of any number"
                    .into(),
                GapDirection::AllowsMore,
            );
        }

        let mut handled = vec![NetRight::BindTcp, NetRight::ConnectTcp];
        let mut drop_right = |right: NetRight| {
            handled.retain(|h| *h != right);
            for entry in ports.values_mut() {
                entry.0.retain(|r| *r != right);
            }
        };
        if !connect_to_kernel.is_empty() {
            drop_right(NetRight::ConnectTcp);
            self.notes.push(format!(
                "TCP connect is left to the eBPF kernel layer: {} cover more than {} ports",
                join_ids(&connect_to_kernel),
                MAX_PORTS_PER_RULE
            ));
        } else if open_everywhere && !k {
            drop_right(NetRight::ConnectTcp);
        }
        if !bind_to_kernel.is_empty() {
            drop_right(NetRight::BindTcp);
            self.notes.push(format!(
                "TCP bind is left to the eBPF kernel layer: {} cover more than {} ports",
                join_ids(&bind_to_kernel),
                MAX_PORTS_PER_RULE
            ));
        }
        let port_rules: Vec<PortRule> = ports
            .into_iter()
            .filter(|(_, (rights, _))| !rights.is_empty())
            .map(|(port, (mut rights, mut rules))| {
                rights.sort();
                rules.sort();
                rules.dedup();
                PortRule {
                    port,
                    rights,
                    rules,
                }
            })
            .collect();

        let connect_open = !handled.contains(&NetRight::ConnectTcp)
            || port_rules
                .iter()
                .any(|p| p.rights.contains(&NetRight::ConnectTcp));
        if connect_open && !k {
            let port_80 = !handled.contains(&NetRight::ConnectTcp)
                || port_rules
                    .iter()
                    .any(|p| p.port == 80 && p.rights.contains(&NetRight::ConnectTcp));
            self.notes.push(format!(
                "without the kernel layer, link-local and cloud-metadata addresses \
                 (169.254.169.254) are reachable on every allowed TCP port{}",
                if port_80 {
                    ", port 80 (the metadata service) included"
                } else {
                    ""
                }
            ));
        }
        (handled, port_rules, seccomp)
    }

    fn too_wide_gap(&mut self, id: RuleId, ports: &PortSet) {
        self.kernel_gap(
            self.cover.net,
            id,
            "port range too wide for Landlock rules",
            KERNEL_LAYER,
            format!(
                "Landlock needs one rule per port and this rule covers {} ports (at most {} \
                 are listed); the rule is not granted",
                ports.count(),
                MAX_PORTS_PER_RULE
            ),
            GapDirection::AllowsLess,
        );
    }

    // -----------------------------------------------------------------------------------------
    // IPC and ABI notes

    fn scopes(&mut self) -> (bool, bool) {
        let ipc = &self.policy.ipc;
        if self.abi >= 6 {
            return (ipc.scope_signals, ipc.scope_abstract_unix);
        }
        let requested = [
            (ipc.scope_signals, "ipc scope signals", "signals"),
            (
                ipc.scope_abstract_unix,
                "ipc scope abstract-unix",
                "abstract unix sockets",
            ),
        ];
        for (on, text, what) in requested {
            if on {
                self.gaps.push(Gap {
                    rule: None,
                    related: Vec::new(),
                    rule_text: text.into(),
                    feature: format!("Landlock ABI 6 (Linux {})", linux_release_for_abi(6)),
                    needs: format!("Linux {}", linux_release_for_abi(6)),
                    reason: format!(
                        "{what} can reach processes outside the sandbox; the eBPF kernel layer \
                         does not cover {what} yet"
                    ),
                    direction: GapDirection::AllowsMore,
                });
            }
        }
        (false, false)
    }

    /// Landlock cannot filter `connect(2)` by socket path, so without the kernel layer the
    /// seccomp filter closes `socket(AF_UNIX)`: a granted path socket cannot be reached.
    fn unix_socket_note(&mut self) {
        let policy = self.policy;
        for r in &policy.ipc.unix_sockets {
            self.push_kernel_gap(
                self.cover.unix_sockets,
                Gap {
                    rule: Some(r.id),
                    related: Vec::new(),
                    rule_text: self.text(r.id),
                    feature: "path unix socket filtering".into(),
                    needs: KERNEL_LAYER.into(),
                    reason:
                        "Landlock cannot filter connect(2) by socket path, so the AF_UNIX socket \
                         family stays closed (socketpair still works) and this socket cannot be \
                         reached"
                            .into(),
                    direction: GapDirection::AllowsLess,
                },
            );
        }
        if !self.cover.files {
            self.notes.push(
                "chmod(2) of permission bits is not mediated by Landlock: a file the user owns \
                 can change mode, which widens nothing inside the sandbox; chown and \
                 setuid/setgid bits are denied by seccomp, and the kernel layer denies the rest"
                    .into(),
            );
        }
        if self.cover.unix_sockets {
            return;
        }
        self.notes.push(
            "AF_UNIX sockets are closed by seccomp (socketpair still works): Landlock cannot \
             restrict connect(2) to path unix sockets such as docker.sock or an ssh-agent"
                .into(),
        );
    }

    fn abi_notes(&mut self, rules: &[PathRule]) {
        if self.abi == 1 {
            self.notes.push(
                "Landlock ABI 1 refuses every rename or link across directories (no `refer` \
                 right), even inside write grants"
                    .into(),
            );
        }
        if (1..5).contains(&self.abi) && rules.iter().any(|r| is_under_dev(&r.path)) {
            self.notes.push(format!(
                "Landlock ABI {} does not filter ioctl(2) on granted devices (ABI 5, Linux {})",
                self.abi,
                linux_release_for_abi(5)
            ));
        }
    }
}

/// A TCP connect rule: a CIDR or a domain (domains are TCP).
enum Connect<'p> {
    Cidr(&'p CidrRule),
    Domain(&'p DomainRule),
}

impl Connect<'_> {
    fn id(&self) -> RuleId {
        match self {
            Connect::Cidr(r) => r.id,
            Connect::Domain(r) => r.id,
        }
    }
    fn ports(&self) -> &PortSet {
        match self {
            Connect::Cidr(r) => &r.ports,
            Connect::Domain(r) => &r.ports,
        }
    }
}

/// For a `/0` TCP rule: does a `/0` rule of the other family allow at least its ports? Landlock
/// cannot tell the families apart, so only then is the port rule exact.
fn other_family_covers(rule: &CidrRule, all: &[CidrRule]) -> bool {
    let v6 = matches!(rule.net, IpNet::V6(_));
    all.iter().any(|o| {
        o.protocol == Protocol::Tcp
            && o.net.prefix_len() == 0
            && matches!(o.net, IpNet::V6(_)) != v6
            && port_set_covers(&o.ports, &rule.ports)
    })
}

/// Does `outer` contain every port of `inner`? (Empty means every port.)
pub(crate) fn port_set_covers(outer: &PortSet, inner: &PortSet) -> bool {
    if outer.is_empty() {
        return true;
    }
    if inner.is_empty() {
        return false;
    }
    // Both are merged, so each inner range must fit in one outer range.
    inner.ranges().iter().all(|i| {
        outer
            .ranges()
            .iter()
            .any(|o| o.first <= i.first && i.last <= o.last)
    })
}

/// `exec only`: keep `execute` on grants inside a listed path; take it off grants that are not,
/// and give it back on the listed paths inside them.
fn restrict_exec(pieces: &mut Vec<Piece>, only: &[crate::ir::ExecRule]) {
    let mut listed = PathTrie::for_paths(only.iter().map(|a| &a.path));
    for (i, a) in only.iter().enumerate() {
        listed.insert(&a.path, i);
    }
    let mut outside = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        if !piece.rights.contains(FsRights::EXECUTE) {
            continue;
        }
        let mut inside = false;
        listed.at_or_above(&piece.path, |a, same_object| {
            inside |= covers(only[a].path.scope(), piece.path.scope(), same_object);
        });
        if !inside {
            outside.push(i);
        }
    }
    let mut outside_trie = PathTrie::for_paths(outside.iter().map(|&i| &pieces[i].path));
    for &i in &outside {
        outside_trie.insert(&pieces[i].path, i);
    }
    let mut cut_out = Vec::new();
    for a in only {
        let mut rules = Vec::new();
        outside_trie.at_or_above(&a.path, |i, _| {
            rules.extend(pieces[i].rules.iter().copied())
        });
        if !rules.is_empty() {
            rules.push(a.id);
            rules.sort();
            rules.dedup();
            cut_out.push(Piece {
                path: a.path.clone(),
                rights: FsRights::EXECUTE,
                rules,
            });
        }
    }
    for i in outside {
        pieces[i].rights = pieces[i].rights.difference(FsRights::EXECUTE);
    }
    pieces.extend(cut_out);
}

/// One [`PathRule`] per object: rules on the same path merge (a subtree spelling wins, since
/// Landlock applies both beneath the object anyway). Sorted by path text.
fn merge_pieces(mut pieces: Vec<Piece>) -> Vec<PathRule> {
    pieces.sort_by(|a, b| {
        a.path
            .root()
            .cmp(&b.path.root())
            .then_with(|| compare_components(a.path.rest(), b.path.rest()))
    });
    let mut rules: Vec<PathRule> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match rules.last_mut() {
            Some(last)
                if last.path.root() == piece.path.root()
                    && last.path.rest() == piece.path.rest() =>
            {
                last.rights = last.rights.union(piece.rights);
                if piece.path.scope() == Scope::Subtree {
                    last.path = piece.path;
                }
                last.rules.extend(piece.rules);
            }
            _ => rules.push(PathRule {
                path: piece.path,
                rights: piece.rights,
                rules: piece.rules,
                carve_outs: Vec::new(),
            }),
        }
    }
    rules.retain(|r| !r.rights.is_empty());
    for r in &mut rules {
        r.rules.sort();
        r.rules.dedup();
    }
    rules.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    rules
}

/// A gap's reason naming a rule's ports, written without `fmt`: a large policy has a gap per
/// domain and per CIDR rule.
fn port_reason(before: &str, ports: &PortSet, after: &str) -> String {
    let mut reason = String::with_capacity(before.len() + 16 + after.len());
    reason.push_str(before);
    ports.push_text(&mut reason);
    reason.push_str(after);
    reason
}

/// `r1, r4`: sorted, so messages do not depend on rule order.
fn join_ids(ids: &[RuleId]) -> String {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    ids.iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
