//! The Landlock ruleset, built in the parent from a [`LandlockPlan`].
//!
//! Privilege: none. Landlock is unprivileged by design; building a ruleset needs only the
//! ability to open (with `O_PATH`) the paths it names.
//! Kernel assumptions: Landlock ABI >= 1 (Linux 5.13). Every feature above ABI 1 is used only
//! when the plan asks for it, and the plan is computed for the ABI this kernel reports, so a
//! request above the kernel's ABI is a bug and is refused here rather than dropped.
//!
//! Raw syscalls rather than the `landlock` crate: the crate (0.4.8, which does know ABI 7 and
//! the audit flags) couples building a ruleset with restricting the *calling* thread and
//! degrades to best effort by default. nono needs the opposite split: the ruleset fd is
//! prepared in the parent before `fork`, and the child calls only `landlock_restrict_self`
//! (async-signal-safe). The back-end's plan is the single source of truth on what is enforced;
//! nothing is silently downgraded here.
//!
//! Paths are resolved at run time, in the parent: each rule's path is opened with
//! `O_PATH | O_CLOEXEC`, which follows symlinks, so a rule binds to the object the path names
//! now (a grant on `~/proj` where `proj -> /data/p` grants `/data/p`). A grant whose path does
//! not exist is skipped and reported; rights that only mean something for directories are
//! masked off for files (the kernel rejects them there).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nono_policy::backend::landlock::{FsRights, LandlockPlan, NetRight, PathRule, PortRule};
use nono_policy::ir::{AuditLevel, RuleId};
use nono_policy::path::PathVars;

use crate::run::concrete::{path_eq, path_starts_with};

/// The kernel ABI (`include/uapi/linux/landlock.h`).
pub mod uapi {
    pub const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;
    pub const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;
    pub const LANDLOCK_RULE_NET_PORT: u32 = 2;
    pub const LANDLOCK_ACCESS_NET_BIND_TCP: u64 = 1 << 0;
    pub const LANDLOCK_ACCESS_NET_CONNECT_TCP: u64 = 1 << 1;
    pub const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    pub const LANDLOCK_SCOPE_SIGNAL: u64 = 1 << 1;
    pub const LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF: u32 = 1 << 0;
    pub const LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON: u32 = 1 << 1;
    pub const LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF: u32 = 1 << 2;

    #[repr(C)]
    #[derive(Debug, Default)]
    pub struct RulesetAttr {
        pub handled_access_fs: u64,
        /// ABI 4.
        pub handled_access_net: u64,
        /// ABI 6.
        pub scoped: u64,
    }

    #[repr(C, packed)]
    pub struct PathBeneathAttr {
        pub allowed_access: u64,
        pub parent_fd: i32,
    }

    #[repr(C)]
    pub struct NetPortAttr {
        pub allowed_access: u64,
        pub port: u64,
    }

    /// How many bytes of [`RulesetAttr`] an ABI knows: older kernels reject a larger struct
    /// unless the extra bytes are zero, and we never set fields they do not know anyway.
    pub fn ruleset_attr_size(abi: u8) -> usize {
        match abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => 24,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("the plan targets Landlock ABI {plan}, but this kernel offers ABI {kernel}")]
    AbiMismatch { plan: u8, kernel: u8 },
    #[error(
        "the plan asks for {what}, which Landlock ABI {abi} does not provide (needs ABI {needs})"
    )]
    Unsupported {
        what: &'static str,
        abi: u8,
        needs: u8,
    },
    #[error(
        "Landlock rule for `{path}` ({rules}) grants {rights}, which the ruleset does not handle"
    )]
    Unhandled {
        path: String,
        rules: String,
        rights: String,
    },
    #[error("Landlock rule path `{0}` still contains a variable; the policy was not expanded")]
    Unexpanded(String),
    #[error("landlock_create_ruleset failed: {0}")]
    Create(io::Error),
    #[error("landlock_add_rule for `{path}` ({rules}) failed: {source}")]
    AddPathRule {
        path: PathBuf,
        rules: String,
        source: io::Error,
    },
    #[error("landlock_add_rule for TCP port {port} ({rules}) failed: {source}")]
    AddPortRule {
        port: u16,
        rules: String,
        source: io::Error,
    },
}

/// A grant that was not added to the ruleset, and why; reported with `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    pub path: PathBuf,
    pub rules: Vec<RuleId>,
    pub reason: String,
}

/// One path rule as it was added: the object it bound to, and the rights after masking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedRule {
    pub path: PathBuf,
    pub rights: FsRights,
    pub is_dir: bool,
    pub rules: Vec<RuleId>,
}

/// A ruleset ready to be enforced with `landlock_restrict_self(fd, flags)`.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
    /// The network rights the ruleset handles (`handled_access_net`): port rules may grant no
    /// other.
    handled_net: u64,
    restrict_flags: u32,
    pub added: Vec<AddedRule>,
    pub skipped: Vec<SkippedRule>,
    /// The `O_PATH` descriptors the rules were added from. The kernel holds its own reference
    /// to each rule's inode once the rule is added, so these only wait to be closed: closing
    /// one costs about a microsecond (the deferred `fput`), and a split `/etc` has 140 of
    /// them, so they are closed once the command runs ([`Ruleset::close_rule_objects`])
    /// rather than on the way to its `clone`. Close-on-exec: the command never sees them.
    rule_objects: std::cell::RefCell<Vec<OwnedFd>>,
}

impl Ruleset {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn restrict_flags(&self) -> u32 {
        self.restrict_flags
    }
    /// Add TCP port rules (the plan's, with whatever the egress mode added to them).
    pub fn add_port_rules(&mut self, rules: &[PortRule]) -> Result<(), LandlockError> {
        for p in rules {
            let bits = net_bits(&p.rights);
            if bits & !self.handled_net != 0 {
                return Err(LandlockError::Unhandled {
                    path: format!("TCP port {}", p.port),
                    rules: rule_list(&p.rules),
                    rights: format!("{:?}", p.rights),
                });
            }
            let attr = uapi::NetPortAttr {
                allowed_access: bits,
                port: u64::from(p.port),
            };
            if let Err(source) = add_rule(&self.fd, uapi::LANDLOCK_RULE_NET_PORT, &attr) {
                return Err(LandlockError::AddPortRule {
                    port: p.port,
                    rules: rule_list(&p.rules),
                    source,
                });
            }
        }
        Ok(())
    }
    /// Close the descriptors the rules were added from (see [`Ruleset::rule_objects`]); the
    /// ruleset itself is unchanged.
    pub fn close_rule_objects(&self) {
        drop(self.rule_objects.take());
    }
}

fn rule_list(ids: &[RuleId]) -> String {
    if ids.is_empty() {
        return "implicit".into();
    }
    ids.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn net_bits(rights: &[NetRight]) -> u64 {
    rights.iter().fold(0, |acc, r| {
        acc | match r {
            NetRight::BindTcp => uapi::LANDLOCK_ACCESS_NET_BIND_TCP,
            NetRight::ConnectTcp => uapi::LANDLOCK_ACCESS_NET_CONNECT_TCP,
        }
    })
}

/// The flags for `landlock_restrict_self`: on ABI 7, log the sandboxed program's denials
/// (they happen after `execve`, which the kernel does not log by default) unless auditing is
/// off, in which case nested domains the program creates are not logged either.
pub fn restrict_flags(abi: u8, audit: AuditLevel) -> u32 {
    if abi < 7 {
        return 0;
    }
    match audit {
        AuditLevel::Off => {
            uapi::LANDLOCK_RESTRICT_SELF_LOG_SAME_EXEC_OFF
                | uapi::LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF
        }
        AuditLevel::Denied | AuditLevel::All => uapi::LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON,
    }
}

/// The concrete path of a rule of an expanded plan.
pub fn concrete_path(rule: &PathRule) -> Result<PathBuf, LandlockError> {
    if rule.path.root().is_some() {
        return Err(LandlockError::Unexpanded(rule.path.to_string()));
    }
    rule.path
        .expand(&PathVars::new())
        .map_err(|_| LandlockError::Unexpanded(rule.path.to_string()))
}

/// Open a rule's path for `landlock_add_rule`: follows symlinks, never reads or writes.
pub fn open_path(path: &Path) -> io::Result<(OwnedFd, bool)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string; the returned fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: stat is plain data, filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is a live descriptor and `st` is writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fd, st.st_mode & libc::S_IFMT == libc::S_IFDIR))
}

/// The rights a rule keeps on an object: directory-only rights are dropped for anything that is
/// not a directory.
pub fn rights_for_object(rights: FsRights, is_dir: bool) -> FsRights {
    if is_dir {
        rights
    } else {
        rights.difference(FsRights::directory_only())
    }
}

/// Check the plan against the kernel's ABI, without touching the kernel.
pub fn check_plan(plan: &LandlockPlan, kernel_abi: u8) -> Result<(), LandlockError> {
    if plan.abi > kernel_abi || plan.abi == 0 {
        return Err(LandlockError::AbiMismatch {
            plan: plan.abi,
            kernel: kernel_abi,
        });
    }
    let abi = plan.abi;
    let supported = FsRights::for_abi(abi);
    if !supported.contains(plan.handled_fs) {
        return Err(LandlockError::Unsupported {
            what: "filesystem rights",
            abi,
            needs: 5,
        });
    }
    if !plan.handled_net.is_empty() && abi < 4 {
        return Err(LandlockError::Unsupported {
            what: "TCP port rules",
            abi,
            needs: 4,
        });
    }
    if (plan.scope_signals || plan.scope_abstract_unix) && abi < 6 {
        return Err(LandlockError::Unsupported {
            what: "signal and abstract unix socket scoping",
            abi,
            needs: 6,
        });
    }
    for r in &plan.path_rules {
        if !plan.handled_fs.contains(r.rights) {
            return Err(LandlockError::Unhandled {
                path: r.path.to_string(),
                rules: rule_list(&r.rules),
                rights: r.rights.difference(plan.handled_fs).names().join("|"),
            });
        }
    }
    let handled_net = net_bits(&plan.handled_net);
    for p in &plan.port_rules {
        let bits = net_bits(&p.rights);
        if bits & !handled_net != 0 {
            return Err(LandlockError::Unhandled {
                path: format!("TCP port {}", p.port),
                rules: rule_list(&p.rules),
                rights: format!("{:?}", p.rights),
            });
        }
    }
    Ok(())
}

/// `landlock_add_rule(2)`. `attr` must be the kernel's struct for `rule_type`
/// (`PathBeneathAttr` for `LANDLOCK_RULE_PATH_BENEATH`, `NetPortAttr` for `LANDLOCK_RULE_NET_PORT`).
fn add_rule<T>(ruleset: &OwnedFd, rule_type: u32, attr: &T) -> io::Result<()> {
    // SAFETY: the ruleset fd is live and `attr` points to a live struct of the layout the kernel
    // expects for `rule_type` (callers pass the matching uapi struct).
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            rule_type,
            attr as *const T,
            0u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Open `name` in the directory `dir` for `landlock_add_rule`, without following a symlink
/// (the caller has listed the directory and skips symlinks, so this names the same object a
/// path lookup would, with no lookup from `/` and no `fstat`).
fn open_entry(dir: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<OwnedFd> {
    let c =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `dir` is a live descriptor and `c` a valid NUL-terminated string; the returned
    // fd is owned below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn skip_unopenable(ruleset: &mut Ruleset, path: PathBuf, rules: &[RuleId], e: &io::Error) {
    let reason = if e.raw_os_error() == Some(libc::ENOENT) {
        "does not exist".to_string()
    } else {
        format!("cannot be opened: {e}")
    };
    ruleset.skipped.push(SkippedRule {
        path,
        rules: rules.to_vec(),
        reason,
    });
}

/// Add one path-beneath rule. A path that is missing (or that this user cannot reach) is
/// skipped and reported: it only grants less, never more.
fn add_path_rule(
    ruleset: &mut Ruleset,
    path: PathBuf,
    rights: FsRights,
    rules: &[RuleId],
) -> Result<(), LandlockError> {
    match open_path(&path) {
        Ok((obj, is_dir)) => add_opened(ruleset, path, obj, is_dir, rights, rules),
        Err(e) => {
            skip_unopenable(ruleset, path, rules, &e);
            Ok(())
        }
    }
}

/// Add the rule for an object already opened (`O_PATH`) whose type is known; the ruleset keeps
/// the descriptor until [`Ruleset::close_rule_objects`].
fn add_opened(
    ruleset: &mut Ruleset,
    path: PathBuf,
    obj: OwnedFd,
    is_dir: bool,
    rights: FsRights,
    rules: &[RuleId],
) -> Result<(), LandlockError> {
    let rights = rights_for_object(rights, is_dir);
    if rights.is_empty() {
        ruleset.skipped.push(SkippedRule {
            path,
            rules: rules.to_vec(),
            reason: "is not a directory, and every right granted applies to directories only"
                .into(),
        });
        return Ok(());
    }
    let attr = uapi::PathBeneathAttr {
        allowed_access: rights.bits(),
        parent_fd: obj.as_raw_fd(),
    };
    if let Err(source) = add_rule(&ruleset.fd, uapi::LANDLOCK_RULE_PATH_BENEATH, &attr) {
        return Err(LandlockError::AddPathRule {
            path,
            rules: rule_list(rules),
            source,
        });
    }
    ruleset.added.push(AddedRule {
        path,
        rights,
        is_dir,
        rules: rules.to_vec(),
    });
    ruleset.rule_objects.get_mut().push(obj);
    Ok(())
}

/// Grant `rights` beneath `dir` except beneath the carve-outs (canonical paths, each with the
/// rights it removes). Landlock cannot take a right back beneath a rule, so the grant is split:
/// `dir` keeps what no carve-out below it removes, and each entry of `dir` gets its own rule:
/// the full rights when no carve-out lies at or below it, else the same split one level down.
///
/// Symlinks among the entries get no rule: Landlock checks the object a symlink resolves to,
/// and the unsplit grant would not have covered a target outside `dir` either. Entries created
/// in the split directories after this point get nothing from the grant, and those
/// directories cannot be listed (that would need `read_dir` on them, which reaches the
/// carve-outs); both only ever grant less. So does a directory that cannot be read: it keeps
/// only its own share.
fn add_carved(
    ruleset: &mut Ruleset,
    dir: &Path,
    rights: FsRights,
    carves: &[(PathBuf, FsRights)],
    rules: &[RuleId],
) -> Result<(), LandlockError> {
    // A carve-out on this very object takes its rights away from everything beneath it.
    let rights = carves
        .iter()
        .filter(|(p, _)| path_eq(p, dir))
        .fold(rights, |r, (_, removed)| r.difference(*removed));
    let below: Vec<(PathBuf, FsRights)> = carves
        .iter()
        .filter(|(p, _)| !path_eq(p, dir) && path_starts_with(p, dir))
        .cloned()
        .collect();
    if below.is_empty() {
        if !rights.is_empty() {
            add_path_rule(ruleset, dir.to_path_buf(), rights, rules)?;
        }
        return Ok(());
    }
    let removed_below = below
        .iter()
        .fold(FsRights::empty(), |acc, (_, removed)| acc.union(*removed));
    let own_share = rights.difference(removed_below);
    if !own_share.is_empty() {
        add_path_rule(ruleset, dir.to_path_buf(), own_share, rules)?;
    }
    let listed = std::fs::read_dir(dir).and_then(|entries| Ok((open_path(dir)?.0, entries)));
    let (dir_fd, entries) = match listed {
        Ok(v) => v,
        Err(e) => {
            ruleset.skipped.push(SkippedRule {
                path: dir.to_path_buf(),
                rules: rules.to_vec(),
                reason: format!("cannot be listed to split the grant around its denies: {e}"),
            });
            return Ok(());
        }
    };
    // The type comes from the directory entry (no `stat` on file systems that record it);
    // symlinks, and entries whose type cannot be found, get no rule.
    let mut children: Vec<(std::ffi::OsString, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let t = e.file_type().ok()?;
            (!t.is_symlink()).then(|| (e.file_name(), t.is_dir()))
        })
        .collect();
    // A stable order keeps `-v` output and tests deterministic. Names, not paths: the same
    // order (one shared parent), without comparing `dir`'s components on every step.
    children.sort_unstable();
    // Each carve-out lies beneath exactly one entry of `dir`: the first component below it.
    let entry_of = |carve: &Path| {
        carve
            .strip_prefix(dir)
            .ok()
            .and_then(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_owned())
    };
    let below_by_entry: Vec<(Option<std::ffi::OsString>, &(PathBuf, FsRights))> =
        below.iter().map(|c| (entry_of(&c.0), c)).collect();
    for (name, is_dir) in children {
        let child = dir.join(&name);
        let relevant: Vec<(PathBuf, FsRights)> = below_by_entry
            .iter()
            .filter(|(entry, _)| entry.as_deref() == Some(name.as_os_str()))
            .map(|(_, c)| (*c).clone())
            .collect();
        if !relevant.is_empty() {
            add_carved(ruleset, &child, rights, &relevant, rules)?;
            continue;
        }
        match open_entry(&dir_fd, &name) {
            Ok(obj) => add_opened(ruleset, child, obj, is_dir, rights, rules)?,
            Err(e) => skip_unopenable(ruleset, child, rules, &e),
        }
    }
    Ok(())
}

/// Create the ruleset with the plan's path rules. Runs in the parent, before `clone`. This is
/// the part that takes time (an `open` and a `landlock_add_rule` per path, a directory listing
/// per split grant), which `nono run` builds on a thread of its own
/// (`Sandbox::start_preparing`); [`Ruleset::add_port_rules`] completes it.
pub fn build_paths(
    plan: &LandlockPlan,
    kernel_abi: u8,
    audit: AuditLevel,
) -> Result<Ruleset, LandlockError> {
    check_plan(plan, kernel_abi)?;
    let attr = uapi::RulesetAttr {
        handled_access_fs: plan.handled_fs.bits(),
        handled_access_net: net_bits(&plan.handled_net),
        scoped: if plan.abi >= 6 {
            (if plan.scope_signals {
                uapi::LANDLOCK_SCOPE_SIGNAL
            } else {
                0
            }) | (if plan.scope_abstract_unix {
                uapi::LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
            } else {
                0
            })
        } else {
            0
        },
    };
    // SAFETY: `attr` is a live repr(C) struct and the size never exceeds it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const uapi::RulesetAttr,
            uapi::ruleset_attr_size(plan.abi),
            0u32,
        )
    };
    if fd < 0 {
        return Err(LandlockError::Create(io::Error::last_os_error()));
    }
    // SAFETY: the kernel returned a new O_CLOEXEC descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut ruleset = Ruleset {
        fd,
        handled_net: net_bits(&plan.handled_net),
        restrict_flags: restrict_flags(plan.abi, audit),
        added: Vec::new(),
        skipped: Vec::new(),
        rule_objects: Default::default(),
    };

    let mut canonical = crate::run::concrete::Canonical::default();
    for rule in &plan.path_rules {
        let path = concrete_path(rule)?;
        if rule.carve_outs.is_empty() {
            add_path_rule(&mut ruleset, path, rule.rights, &rule.rules)?;
            continue;
        }
        let Some(root) = canonical.existing(&path) else {
            ruleset.skipped.push(SkippedRule {
                path,
                rules: rule.rules.clone(),
                reason: "does not exist".into(),
            });
            continue;
        };
        let mut carves = Vec::with_capacity(rule.carve_outs.len());
        for c in &rule.carve_outs {
            let p = c
                .path
                .expand(&PathVars::new())
                .map_err(|_| LandlockError::Unexpanded(c.path.to_string()))?;
            carves.push((canonical.lenient(&p), c.rights));
        }
        add_carved(&mut ruleset, &root, rule.rights, &carves, &rule.rules)?;
    }
    Ok(ruleset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nono_policy::backend::landlock::SeccompPlan;
    use nono_policy::path::PolicyPath;

    pub(crate) fn plan(abi: u8, rules: Vec<(&str, FsRights)>) -> LandlockPlan {
        LandlockPlan {
            abi,
            handled_fs: FsRights::for_abi(abi),
            handled_net: vec![],
            scope_signals: false,
            scope_abstract_unix: false,
            path_rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (p, r))| PathRule {
                    carve_outs: vec![],
                    path: PolicyPath::parse(p).unwrap(),
                    rights: r,
                    rules: vec![RuleId(i as u32 + 1)],
                })
                .collect(),
            port_rules: vec![],
            seccomp: SeccompPlan::default(),
            gaps: vec![],
            covered_by_kernel_layer: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn attr_layout_matches_the_kernel() {
        assert_eq!(std::mem::size_of::<uapi::RulesetAttr>(), 24);
        assert_eq!(std::mem::size_of::<uapi::PathBeneathAttr>(), 12);
        assert_eq!(std::mem::size_of::<uapi::NetPortAttr>(), 16);
    }

    #[test]
    fn directory_rights_are_masked_on_files() {
        let all = FsRights::for_abi(7);
        let f = rights_for_object(all, false);
        assert!(f.contains(FsRights::READ_FILE.union(FsRights::WRITE_FILE)));
        assert!(!f.contains(FsRights::READ_DIR));
        assert!(!f.contains(FsRights::MAKE_REG));
        assert_eq!(rights_for_object(all, true), all);
    }

    #[test]
    fn plan_above_kernel_abi_is_refused() {
        let p = plan(6, vec![]);
        assert!(matches!(
            check_plan(&p, 5),
            Err(LandlockError::AbiMismatch { plan: 6, kernel: 5 })
        ));
        let mut p = plan(5, vec![]);
        p.scope_signals = true;
        assert!(matches!(
            check_plan(&p, 7),
            Err(LandlockError::Unsupported { needs: 6, .. })
        ));
    }

    #[test]
    fn unhandled_rights_name_the_rule() {
        let mut p = plan(3, vec![("/tmp", FsRights::IOCTL_DEV)]);
        p.handled_fs = FsRights::for_abi(3);
        let e = check_plan(&p, 7).unwrap_err().to_string();
        assert!(
            e.contains("/tmp") && e.contains("r1") && e.contains("ioctl_dev"),
            "{e}"
        );
    }

    #[test]
    fn audit_flags_only_on_abi7() {
        assert_eq!(restrict_flags(6, AuditLevel::Denied), 0);
        assert_eq!(
            restrict_flags(7, AuditLevel::Denied),
            uapi::LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
        );
        assert_ne!(
            restrict_flags(7, AuditLevel::Off) & uapi::LANDLOCK_RESTRICT_SELF_LOG_SUBDOMAINS_OFF,
            0
        );
    }

    #[test]
    fn builds_a_ruleset_and_skips_missing_grants() {
        let abi = super::super::probe::landlock_abi();
        if abi == 0 {
            eprintln!("no Landlock on this kernel; skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let all = FsRights::for_abi(abi.min(7));
        let p = plan(
            abi.min(7),
            vec![
                (dir.path().to_str().unwrap(), all),
                (file.to_str().unwrap(), all),
                ("/nonexistent/nono/test", all),
            ],
        );
        let rs = build_paths(&p, abi, AuditLevel::Denied).unwrap();
        assert_eq!(rs.added.len(), 2);
        assert!(!rs.added[1].is_dir);
        assert!(!rs.added[1].rights.contains(FsRights::READ_DIR));
        assert_eq!(rs.skipped.len(), 1);
        assert_eq!(rs.skipped[0].reason, "does not exist");
        assert_eq!(rs.skipped[0].rules, vec![RuleId(3)]);
    }

    #[test]
    fn carve_outs_split_a_read_grant_around_its_denies() {
        let abi = super::super::probe::landlock_abi();
        if abi == 0 {
            eprintln!("no Landlock on this kernel; skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["etc/ssl/certs", "etc/ssl/private", "etc/ssh"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "etc/hostname",
            "etc/shadow",
            "etc/ssl/openssl.cnf",
            "etc/ssl/private/k",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/", root.join("etc/escape")).unwrap();
        let etc = root.join("etc");
        let read = FsRights::READ_FILE.union(FsRights::READ_DIR);
        let mut p = plan(abi.min(7), vec![(etc.to_str().unwrap(), read)]);
        for (i, deny) in ["etc/shadow", "etc/ssl/private", "etc/ssh", "etc/not-yet"]
            .iter()
            .enumerate()
        {
            p.path_rules[0]
                .carve_outs
                .push(nono_policy::backend::landlock::CarveOut {
                    path: PolicyPath::parse(root.join(deny).to_str().unwrap()).unwrap(),
                    rights: read,
                    rule: RuleId(10 + i as u32),
                });
        }
        let rs = build_paths(&p, abi, AuditLevel::Denied).unwrap();
        let added: Vec<String> = rs
            .added
            .iter()
            .map(|a| a.path.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        // The directories on the way get nothing of a pure read grant; their other entries get
        // it all; the denied ones and the symlink get no rule.
        assert_eq!(
            added,
            ["etc/hostname", "etc/ssl/certs", "etc/ssl/openssl.cnf"]
        );
        assert!(rs.added.iter().all(|a| a.rules == vec![RuleId(1)]));
        // Entries are opened relative to their directory and typed from the listing: the
        // directory keeps its directory-only rights, files lose them.
        let dirs: Vec<bool> = rs.added.iter().map(|a| a.is_dir).collect();
        assert_eq!(dirs, [false, true, false]);
        assert_eq!(rs.added[1].rights, read);
        assert_eq!(rs.added[0].rights, FsRights::READ_FILE);
    }
}
