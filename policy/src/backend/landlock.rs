//! The Landlock back-end: the unprivileged Linux plan (a Landlock ruleset plus the seccomp
//! filter that covers what Landlock cannot express).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ir::{Policy, RuleId};
use crate::path::PolicyPath;

use super::Target;

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

    pub fn names(self) -> Vec<&'static str> {
        FsRights::NAMES
            .iter()
            .filter(|(r, _)| self.contains(*r))
            .map(|(_, n)| *n)
            .collect()
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

/// One `landlock_add_rule(LANDLOCK_RULE_PATH_BENEATH)` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    pub path: PolicyPath,
    pub rights: FsRights,
    /// The IR rules this Landlock rule enforces.
    pub rules: Vec<RuleId>,
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
    /// module loading, `kexec`, mount-family calls.
    pub deny_escape_syscalls: bool,
}

/// A rule (or part of one) that this target cannot enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub rule: Option<RuleId>,
    /// The rule as the profile wrote it, e.g. `deny $HOME/.ssh/**`.
    pub rule_text: String,
    /// The kernel feature that would enforce it, e.g. `Landlock ABI 4 (TCP port rules)`.
    pub feature: String,
    /// What it needs, e.g. `Linux 6.7` or `the eBPF kernel layer (root)`.
    pub needs: String,
    /// Why this target falls short.
    pub reason: String,
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
}

/// Compile the Landlock plan.
pub fn plan(_policy: &Policy, _target: &Target) -> LandlockPlan {
    todo!("landlock back-end")
}
