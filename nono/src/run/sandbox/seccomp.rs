//! The seccomp filter: what Landlock cannot express, built with `seccompiler`.
//!
//! Privilege: none. Loading a filter needs `no_new_privs`, which the child sets first.
//! Kernel assumptions: seccomp filters with `SECCOMP_RET_ERRNO` (Linux 3.5; probed). The
//! programs are compiled here, in the parent; the child only calls `seccomp(2)` with them.
//!
//! Errno policy: every denied call returns **EPERM**, socket families included (EACCES would
//! read as a file permission problem; EPERM is what "the policy forbids this operation" means
//! for sockets, and one errno keeps tests and agents' error handling simple). The one exception
//! is `clone3`, which returns **ENOSYS**: its flags live in a struct seccomp cannot read, and
//! ENOSYS makes libc fall back to `clone`, whose flags the filter does check. Because one
//! `seccompiler` filter has one match action, that exception is a second, tiny filter.
//!
//! What is denied (each only if the plan asks; the back-end always asks for the escape set):
//! - sockets: `AF_INET`/`AF_INET6` entirely (`deny_inet`), or everything but TCP on them
//!   (`deny_udp_and_raw`: datagram, raw, seqpacket... and stream sockets whose protocol is not
//!   TCP, e.g. SCTP or MPTCP, which Landlock's TCP rules would not see), and every family but
//!   `AF_UNIX`/`AF_INET`/`AF_INET6` (`deny_other_families`: packet, netlink, vsock, ...). When
//!   the kernel layer checks UDP destinations, only TCP and UDP stay open (`inet_tcp_udp_only`).
//!   The
//!   same rules apply to `socketpair`. All of netlink is denied: glibc copes without route
//!   queries, and as root a netlink socket could reconfigure the host's network.
//! - escapes: io_uring, ptrace, process_vm_readv/writev, ioctl TIOCSTI and TIOCLINUX (terminal
//!   injection), bpf, module loading, kexec, the mount family (mount, umount2, pivot_root,
//!   move_mount, open_tree(_attr), fsopen/fsmount/fsconfig/fspick, mount_setattr), chroot,
//!   setns, open_by_handle_at, user namespaces (`unshare`/`clone` with `CLONE_NEWUSER`), and
//!   the kernel keyring (keyctl, add_key, request_key).
//! - ownership: the chown family, and chmod/fchmod/fchmodat(2), open/openat/creat with `O_CREAT`
//!   and mknod(at) whose mode carries a setuid or setgid bit (Landlock mediates neither);
//!   `openat2` returns ENOSYS like `clone3`, since its mode sits in a struct.
//! - TCP Fast Open: `sendto`, `sendmsg` and `sendmmsg` with `MSG_FASTOPEN` (`deny_tcp_fastopen`,
//!   whenever the network is restricted). A Fast Open send connects inside the send call, and
//!   Landlock checks TCP connects only in `connect(2)`: on Linux 6.18 such a send reached a
//!   loopback port no rule allowed. The kernel layer's `connect4/6` programs do see it.
//! - `listen` when the plan says so (`deny_listen`: no TCP listen rule and no unix sockets). A
//!   listen on a TCP socket never bound binds an ephemeral port without the bind hook Landlock
//!   checks: on Linux 6.18 such a socket served on 0.0.0.0 under a ruleset that denied every
//!   bind.
//! - `memfd_create` without `MFD_NOEXEC_SEAL` under `exec only` without the kernel layer's exec
//!   hook (`deny_exec_memfd`): a memfd is outside every path, Landlock never checks `execute`
//!   on it, and on Linux 6.18 `execve("/proc/self/fd/N")` of one ran a binary the allowlist did
//!   not list. Before Linux 6.3 the flag does not exist (EINVAL): no memfd at all then.
//! - `prlimit64` setting another process's limits (pid != 0, new limits given): the kernel
//!   checks only the uid, so the command could shrink nono's own limits and break its audit and
//!   rollback writes (on Linux 6.18 it set nono's RLIMIT_NOFILE to 3 mid-run).
//! - `socket(AF_UNIX)` when the plan closes the family (`deny_unix_sockets`: Landlock cannot
//!   filter `connect(2)` by socket path); `socketpair(AF_UNIX)` stays allowed.
//!
//! Architecture: the filter checks `AUDIT_ARCH` and kills the process on a mismatch, so 32-bit
//! (`int 0x80`) syscalls cannot bypass it. On x86_64 kernels that run x32 calls (probed: see
//! [`x32_syscalls_work`]), the x32 numbers of every call the filter names are denied
//! outright, whatever their arguments (see [`with_x32_aliases`]).

use std::collections::BTreeMap;

use nono_policy::backend::landlock::SeccompPlan;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// Not yet in `libc`: `open_tree_attr` (Linux 6.15), same number on every architecture.
const SYS_OPEN_TREE_ATTR: i64 = 467;
/// `fchmodat2` (Linux 6.6), same number on every architecture.
const SYS_FCHMODAT2: i64 = 452;
const IPPROTO_TCP: u64 = 6;
const IPPROTO_UDP: u64 = 17;
const SOCK_TYPE_MASK: u64 = 0xf;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: unsupported architecture `{0}`")]
    Arch(String),
    #[error("seccomp: cannot build the filter: {0}")]
    Build(#[from] seccompiler::BackendError),
}

/// The compiled programs, in the order they are loaded.
#[derive(Debug, Clone)]
pub struct Filters {
    pub programs: Vec<BpfProgram>,
    /// One line per denied class, for `--dry-run`.
    pub summary: Vec<String>,
}

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, SeccompError> {
    Ok(SeccompCondition::new(arg, len, op, value)?)
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    Ok(SeccompRule::new(conds)?)
}

/// The conditions on `socket(domain, type, protocol)` that the plan denies. Rules are OR-ed,
/// the conditions inside one rule AND-ed.
fn socket_rules(plan: &SeccompPlan) -> Result<Vec<SeccompRule>, SeccompError> {
    let inet = [libc::AF_INET as u64, libc::AF_INET6 as u64];
    let mut rules = Vec::new();
    if plan.deny_inet {
        for fam in inet {
            rules.push(rule(vec![cond(0, Len::Dword, Op::Eq, fam)?])?);
        }
    } else if plan.deny_udp_and_raw {
        for fam in inet {
            // Every socket type but SOCK_STREAM (flags such as SOCK_CLOEXEC masked off)...
            for (mask, value) in not_stream_type() {
                rules.push(rule(vec![
                    cond(0, Len::Dword, Op::Eq, fam)?,
                    cond(1, Len::Dword, Op::MaskedEq(mask), value)?,
                ])?);
            }
            // ...and stream sockets that are not TCP (SCTP, MPTCP).
            rules.push(rule(vec![
                cond(0, Len::Dword, Op::Eq, fam)?,
                cond(
                    1,
                    Len::Dword,
                    Op::MaskedEq(SOCK_TYPE_MASK),
                    libc::SOCK_STREAM as u64,
                )?,
                cond(2, Len::Dword, Op::Ne, 0)?,
                cond(2, Len::Dword, Op::Ne, IPPROTO_TCP)?,
            ])?);
        }
    }
    if plan.inet_tcp_udp_only && !plan.deny_inet && !plan.deny_udp_and_raw {
        for fam in inet {
            // Every socket type but SOCK_STREAM and SOCK_DGRAM...
            for (mask, value) in neither_stream_nor_dgram_type() {
                rules.push(rule(vec![
                    cond(0, Len::Dword, Op::Eq, fam)?,
                    cond(1, Len::Dword, Op::MaskedEq(mask), value)?,
                ])?);
            }
            // ...and stream sockets that are not TCP, datagram sockets that are not UDP
            // (ICMP echo "ping" sockets, UDP-Lite): the socket programs would not see them.
            for (ty, proto) in [
                (libc::SOCK_STREAM, IPPROTO_TCP),
                (libc::SOCK_DGRAM, IPPROTO_UDP),
            ] {
                rules.push(rule(vec![
                    cond(0, Len::Dword, Op::Eq, fam)?,
                    cond(1, Len::Dword, Op::MaskedEq(SOCK_TYPE_MASK), ty as u64)?,
                    cond(2, Len::Dword, Op::Ne, 0)?,
                    cond(2, Len::Dword, Op::Ne, proto)?,
                ])?);
            }
        }
    }
    if plan.deny_other_families {
        rules.push(rule(vec![
            cond(0, Len::Dword, Op::Ne, libc::AF_UNIX as u64)?,
            cond(0, Len::Dword, Op::Ne, libc::AF_INET as u64)?,
            cond(0, Len::Dword, Op::Ne, libc::AF_INET6 as u64)?,
        ])?);
    }
    Ok(rules)
}

/// Single-bit tests `(type & mask) == value` whose union is exactly "the type field
/// (`type & SOCK_TYPE_MASK`) is not `SOCK_STREAM`". `SOCK_STREAM` is 1: any other value of the
/// 4-bit field either has bit 0 clear or has one of bits 1-3 set. Four rules instead of one per
/// other type (15): every rule costs instructions the kernel converts, JIT-compiles and, for the
/// socket calls, runs, in every sandbox.
fn not_stream_type() -> [(u64, u64); 4] {
    const _: () = assert!(libc::SOCK_STREAM == 1 && SOCK_TYPE_MASK == 0xf);
    [(0x1, 0), (0x2, 0x2), (0x4, 0x4), (0x8, 0x8)]
}

/// As [`not_stream_type`], for "neither `SOCK_STREAM` (1) nor `SOCK_DGRAM` (2)": bits 2-3
/// set (4..=15), or the low two bits both clear (0) or both set (3).
fn neither_stream_nor_dgram_type() -> [(u64, u64); 4] {
    const _: () = assert!(libc::SOCK_STREAM == 1 && libc::SOCK_DGRAM == 2);
    [(0x3, 0), (0x3, 0x3), (0x4, 0x4), (0x8, 0x8)]
}

/// `socket(AF_UNIX)` when the plan closes the family. Not applied to `socketpair`: a pair is
/// anonymous and connects only to itself, and pipes between processes rely on it.
fn unix_socket_rule(plan: &SeccompPlan) -> Result<Option<SeccompRule>, SeccompError> {
    if !plan.deny_unix_sockets {
        return Ok(None);
    }
    Ok(Some(rule(vec![cond(
        0,
        Len::Dword,
        Op::Eq,
        libc::AF_UNIX as u64,
    )?])?))
}

const SETID_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];

/// Rules matching a `mode` argument (at `arg`) that carries a setuid or setgid bit, plus any
/// extra conditions (e.g. `O_CREAT` in the flags).
fn setid_mode_rules(arg: u8, extra: &[(u8, u64)]) -> Result<Vec<SeccompRule>, SeccompError> {
    SETID_BITS
        .iter()
        .map(|bit| {
            let mut conds = vec![cond(arg, Len::Dword, Op::MaskedEq(*bit), *bit)?];
            for (a, flag) in extra {
                conds.push(cond(*a, Len::Dword, Op::MaskedEq(*flag), *flag)?);
            }
            rule(conds)
        })
        .collect()
}

/// Calls that change ownership, and calls that would set a setuid/setgid bit. Landlock does not
/// mediate either: without this, a command run by root could leave a setuid-root binary behind
/// in the project, or hand a file to another user.
fn ownership_rules(rules: &mut Rules) -> Result<(), SeccompError> {
    for nr in [libc::SYS_fchown, libc::SYS_fchownat] {
        rules.insert(nr, vec![]);
    }
    #[cfg(target_arch = "x86_64")]
    {
        rules.insert(libc::SYS_chown, vec![]);
        rules.insert(libc::SYS_lchown, vec![]);
        rules.insert(libc::SYS_chmod, setid_mode_rules(1, &[])?);
        rules.insert(libc::SYS_creat, setid_mode_rules(1, &[])?);
        let creat = libc::O_CREAT as u64;
        rules.insert(libc::SYS_open, setid_mode_rules(2, &[(1, creat)])?);
        rules.insert(libc::SYS_mknod, setid_mode_rules(1, &[])?);
    }
    rules.insert(libc::SYS_fchmod, setid_mode_rules(1, &[])?);
    rules.insert(libc::SYS_fchmodat, setid_mode_rules(2, &[])?);
    rules.insert(SYS_FCHMODAT2, setid_mode_rules(2, &[])?);
    let creat = libc::O_CREAT as u64;
    rules.insert(libc::SYS_openat, setid_mode_rules(3, &[(2, creat)])?);
    rules.insert(libc::SYS_mknodat, setid_mode_rules(2, &[])?);
    Ok(())
}

/// Syscalls denied whatever their arguments.
const ESCAPE_SYSCALLS: &[(i64, &str)] = &[
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_io_uring_register, "io_uring_register"),
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_process_vm_readv, "process_vm_readv"),
    (libc::SYS_process_vm_writev, "process_vm_writev"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_init_module, "init_module"),
    (libc::SYS_finit_module, "finit_module"),
    (libc::SYS_delete_module, "delete_module"),
    (libc::SYS_kexec_load, "kexec_load"),
    (libc::SYS_kexec_file_load, "kexec_file_load"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_umount2, "umount2"),
    (libc::SYS_pivot_root, "pivot_root"),
    (libc::SYS_move_mount, "move_mount"),
    (libc::SYS_open_tree, "open_tree"),
    (SYS_OPEN_TREE_ATTR, "open_tree_attr"),
    (libc::SYS_fsopen, "fsopen"),
    (libc::SYS_fsmount, "fsmount"),
    (libc::SYS_fsconfig, "fsconfig"),
    (libc::SYS_fspick, "fspick"),
    (libc::SYS_mount_setattr, "mount_setattr"),
    (libc::SYS_chroot, "chroot"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_open_by_handle_at, "open_by_handle_at"),
    (libc::SYS_keyctl, "keyctl"),
    (libc::SYS_add_key, "add_key"),
    (libc::SYS_request_key, "request_key"),
];

/// x32 system calls whose numbers differ from the x86_64 ones (`arch/x86/entry/syscalls`).
#[cfg(target_arch = "x86_64")]
const X32_RENUMBERED: &[(i64, i64)] = &[
    (libc::SYS_ioctl, 514),
    (libc::SYS_ptrace, 521),
    (libc::SYS_kexec_load, 528),
    (libc::SYS_process_vm_readv, 539),
    (libc::SYS_process_vm_writev, 540),
];

/// Whether this kernel runs x32 system calls at all. Debian's kernels are built with
/// `CONFIG_X86_X32_ABI` but leave it off unless booted with `syscall.x32=y`; other kernels
/// lack it. Where x32 calls fail with ENOSYS there is no alias to close, and leaving them out
/// halves the filter. The setting cannot change after boot. Any answer but ENOSYS (the pid,
/// or EPERM from a filter nono itself runs under) counts as "x32 works".
pub fn x32_syscalls_work() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: getpid takes no arguments and has no side effects, in either ABI.
        let r = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
        !(r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Add the x32 alias of every call the filter names, denied whatever its arguments, when the
/// kernel runs x32 calls (no-op on other architectures). x32 is a separate user-space ABI
/// that agents and their tools do not use; its aliases only matter as a way around the
/// argument checks, and denying them outright keeps the filter small: the child converts
/// and JIT-compiles it on every start.
fn with_x32_aliases(rules: Rules, x32: bool) -> Rules {
    #[cfg(target_arch = "x86_64")]
    {
        if !x32 {
            return rules;
        }
        const X32_BIT: i64 = 0x4000_0000;
        let mut out = rules.clone();
        for nr in rules.keys() {
            let x32 = X32_RENUMBERED
                .iter()
                .find(|(n, _)| n == nr)
                .map_or(*nr, |(_, x)| *x);
            out.insert(x32 | X32_BIT, vec![]);
        }
        out
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = x32;
        rules
    }
}

/// The rule map of the EPERM filter.
pub fn eperm_rules(plan: &SeccompPlan, x32: bool) -> Result<(Rules, Vec<String>), SeccompError> {
    let mut rules = Rules::new();
    let mut summary = Vec::new();
    let sock = socket_rules(plan)?;
    let unix = unix_socket_rule(plan)?;
    if let Some(r) = &unix {
        let mut with_unix = sock.clone();
        with_unix.push(r.clone());
        rules.insert(libc::SYS_socket, with_unix);
        summary.push("sockets: AF_UNIX socket() (path and abstract; socketpair allowed)".into());
    }
    if !sock.is_empty() {
        rules
            .entry(libc::SYS_socket)
            .or_insert_with(|| sock.clone());
        // Only AF_UNIX (and AF_TIPC, one of the "other families") make socket pairs: inet's
        // socketpair is always EOPNOTSUPP. With the other families closed, one condition says
        // everything the socket rules would, in a tenth of the instructions.
        let pair = if plan.deny_other_families {
            vec![rule(vec![cond(
                0,
                Len::Dword,
                Op::Ne,
                libc::AF_UNIX as u64,
            )?])?]
        } else {
            sock
        };
        rules.insert(libc::SYS_socketpair, pair);
        if plan.deny_inet {
            summary.push("sockets: every AF_INET/AF_INET6 socket".to_string());
        } else if plan.deny_udp_and_raw {
            summary.push("sockets: AF_INET/AF_INET6 other than TCP (UDP, raw, SCTP...)".into());
        } else if plan.inet_tcp_udp_only {
            summary.push(
                "sockets: AF_INET/AF_INET6 other than TCP and UDP (ICMP echo, raw, SCTP...)".into(),
            );
        }
        if plan.deny_other_families {
            summary.push(
                "sockets: every family but AF_UNIX, AF_INET, AF_INET6 (packet, netlink, vsock...)"
                    .into(),
            );
        }
    }
    if plan.deny_tcp_fastopen && !plan.deny_inet {
        // The flags argument's position: sendto(fd, buf, len, flags, ...),
        // sendmsg(fd, msg, flags), sendmmsg(fd, vec, vlen, flags).
        for (nr, flags_arg) in [
            (libc::SYS_sendto, 3),
            (libc::SYS_sendmsg, 2),
            (libc::SYS_sendmmsg, 3),
        ] {
            let fastopen = libc::MSG_FASTOPEN as u64;
            rules.insert(
                nr,
                vec![rule(vec![cond(
                    flags_arg,
                    Len::Dword,
                    Op::MaskedEq(fastopen),
                    fastopen,
                )?])?],
            );
        }
        summary.push("sockets: sendto/sendmsg/sendmmsg with MSG_FASTOPEN (TCP Fast Open)".into());
    }
    if plan.deny_exec_memfd {
        // memfd_create(name, flags): refused unless the memfd is sealed non-executable.
        let seal = libc::MFD_NOEXEC_SEAL as u64;
        rules.insert(
            libc::SYS_memfd_create,
            vec![rule(vec![cond(1, Len::Dword, Op::MaskedEq(seal), 0)?])?],
        );
        summary.push("exec: memfd_create without MFD_NOEXEC_SEAL (exec only)".into());
    }
    if plan.deny_listen {
        rules.insert(libc::SYS_listen, vec![]);
        summary.push("sockets: listen (no TCP listen rule; unbound listens skip Landlock)".into());
    }
    if plan.deny_escape_syscalls {
        for (nr, _) in ESCAPE_SYSCALLS {
            rules.insert(*nr, vec![]);
        }
        let tty = [ioctl_request(libc::TIOCSTI), ioctl_request(libc::TIOCLINUX)]
            .into_iter()
            // The kernel truncates the request to 32 bits: compare the low word only, so high
            // bits set by the caller cannot dodge the rule.
            .map(|req| rule(vec![cond(1, Len::Dword, Op::Eq, req)?]))
            .collect::<Result<Vec<_>, SeccompError>>()?;
        rules.insert(libc::SYS_ioctl, tty);
        let newuser = || -> Result<Vec<SeccompRule>, SeccompError> {
            let flag = libc::CLONE_NEWUSER as u64;
            Ok(vec![rule(vec![cond(
                0,
                Len::Qword,
                Op::MaskedEq(flag),
                flag,
            )?])?])
        };
        rules.insert(libc::SYS_unshare, newuser()?);
        rules.insert(libc::SYS_clone, newuser()?);
        // prlimit64(pid, resource, new, old) setting another process's limits: only the uid is
        // checked (no LSM in the way but `task_prlimit`, which Landlock leaves alone), so the
        // command could lower nono's own limits (RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CPU) and
        // break its audit and rollback writes, or any process of the user's. pid 0 (itself,
        // what setrlimit(2) uses) and reads (new = NULL) stay allowed.
        rules.insert(
            libc::SYS_prlimit64,
            vec![rule(vec![
                cond(0, Len::Dword, Op::Ne, 0)?,
                cond(2, Len::Qword, Op::Ne, 0)?,
            ])?],
        );
        ownership_rules(&mut rules)?;
        summary
            .push("ownership: chown family; chmod/open/mknod setting setuid or setgid bits".into());
        summary.push(format!(
            "syscalls: {}",
            ESCAPE_SYSCALLS
                .iter()
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        summary.push("ioctl: TIOCSTI, TIOCLINUX (terminal injection)".into());
        summary.push("user namespaces: unshare/clone with CLONE_NEWUSER; clone3 -> ENOSYS".into());
        summary.push("prlimit64 setting another process's limits".into());
    }
    Ok((with_x32_aliases(rules, x32), summary))
}

/// `libc::Ioctl` is `c_ulong` on glibc and `c_int` on musl.
#[allow(clippy::unnecessary_cast)]
fn ioctl_request(r: libc::Ioctl) -> u64 {
    r as u64
}

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH.into()))
}

/// Compile the plan's filters for this kernel.
pub fn build(plan: &SeccompPlan) -> Result<Filters, SeccompError> {
    build_for(plan, x32_syscalls_work())
}

/// Compile the plan's filters, with the x32 aliases when `x32` (see [`x32_syscalls_work`]).
pub fn build_for(plan: &SeccompPlan, x32: bool) -> Result<Filters, SeccompError> {
    let arch = arch()?;
    let (rules, summary) = eperm_rules(plan, x32)?;
    let mut programs = Vec::new();
    if !rules.is_empty() {
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch,
        )?;
        programs.push(BpfProgram::try_from(f)?);
    }
    if plan.deny_escape_syscalls {
        // openat2's mode lives in a struct seccomp cannot read; ENOSYS sends callers back to
        // openat, whose mode the EPERM filter checks.
        let clone3: Rules = with_x32_aliases(
            [(libc::SYS_clone3, vec![]), (libc::SYS_openat2, vec![])]
                .into_iter()
                .collect(),
            x32,
        );
        let f = SeccompFilter::new(
            clone3,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        )?;
        programs.push(BpfProgram::try_from(f)?);
    }
    Ok(Filters { programs, summary })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The tests check the filter with the x32 aliases, the larger case, whatever this kernel
    /// runs (`filter_stays_small` checks both).
    fn build(plan: &SeccompPlan) -> Result<Filters, SeccompError> {
        build_for(plan, true)
    }
    use seccompiler::sock_filter;

    /// The slice of `struct seccomp_data` a filter reads.
    pub struct Data {
        pub nr: i64,
        pub arch: u32,
        pub args: [u64; 6],
    }

    /// A classic-BPF interpreter for the instructions seccompiler emits, so tests check what the
    /// filter *does*, not how it is spelt.
    pub fn eval(prog: &[sock_filter], d: &Data) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => d.nr as u32,
                4 => d.arch,
                16..=63 => {
                    let i = ((off - 16) / 8) as usize;
                    let a = d.args[i];
                    if (off - 16).is_multiple_of(8) {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                _ => panic!("load at {off}"),
            }
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = &prog[pc];
            let (class, op) = (i.code & 0x07, i.code & 0xf0);
            match class {
                0x00 => acc = word(i.k),          // BPF_LD|BPF_W|BPF_ABS
                0x04 if op == 0x50 => acc &= i.k, // BPF_ALU|BPF_AND|BPF_K
                0x06 => return i.k,               // BPF_RET|BPF_K
                0x05 => {
                    let taken = match op {
                        0x00 => {
                            pc += i.k as usize + 1;
                            continue;
                        } // BPF_JA
                        0x10 => acc == i.k,
                        0x20 => acc > i.k,
                        0x30 => acc >= i.k,
                        0x40 => acc & i.k != 0,
                        _ => panic!("jump op {op:#x}"),
                    };
                    pc += 1 + if taken { i.jt as usize } else { i.jf as usize };
                    continue;
                }
                _ => panic!("opcode {:#x}", i.code),
            }
            pc += 1;
        }
    }

    pub const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    pub const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    fn run(f: &Filters, nr: i64, args: [u64; 6]) -> u32 {
        let arch = if cfg!(target_arch = "x86_64") {
            0xc000_003e
        } else {
            0xc000_00b7
        };
        let d = Data { nr, arch, args };
        // The kernel applies the most restrictive verdict of all filters.
        f.programs
            .iter()
            .map(|p| eval(p, &d))
            .min_by_key(|v| v & libc::SECCOMP_RET_ACTION_FULL)
            .unwrap()
    }

    pub(crate) fn full() -> SeccompPlan {
        SeccompPlan {
            deny_udp_and_raw: true,
            deny_inet: false,
            deny_other_families: true,
            deny_escape_syscalls: true,
            deny_unix_sockets: true,
            inet_tcp_udp_only: false,
            deny_tcp_fastopen: true,
            deny_listen: true,
            deny_exec_memfd: true,
        }
    }

    const AF_INET: u64 = libc::AF_INET as u64;
    const STREAM: u64 = libc::SOCK_STREAM as u64;
    const DGRAM: u64 = libc::SOCK_DGRAM as u64;

    #[test]
    fn sockets_tcp_only() {
        let f = build(&full()).unwrap();
        let s = libc::SYS_socket;
        assert_eq!(run(&f, s, [AF_INET, STREAM, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            run(
                &f,
                s,
                [AF_INET, STREAM | libc::SOCK_CLOEXEC as u64, 6, 0, 0, 0]
            ),
            ALLOW
        );
        assert_eq!(
            run(&f, s, [libc::AF_INET6 as u64, STREAM, 0, 0, 0, 0]),
            ALLOW
        );
        // Path and abstract unix sockets are closed; anonymous pairs are not (below).
        assert_eq!(run(&f, s, [libc::AF_UNIX as u64, DGRAM, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&f, s, [libc::AF_UNIX as u64, STREAM, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&f, s, [AF_INET, DGRAM, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(
                &f,
                s,
                [AF_INET, DGRAM | libc::SOCK_NONBLOCK as u64, 0, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            run(&f, s, [AF_INET, libc::SOCK_RAW as u64, 1, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&f, s, [AF_INET, STREAM, 132, 0, 0, 0]), EPERM, "SCTP");
        assert_eq!(
            run(
                &f,
                s,
                [libc::AF_PACKET as u64, libc::SOCK_RAW as u64, 0, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            run(
                &f,
                s,
                [libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, 0, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            run(&f, s, [libc::AF_VSOCK as u64, STREAM, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            run(
                &f,
                libc::SYS_socketpair,
                [libc::AF_UNIX as u64, STREAM, 0, 0, 0, 0]
            ),
            ALLOW
        );
    }

    #[test]
    fn every_inet_socket_type_but_tcp_is_denied() {
        let f = build(&full()).unwrap();
        let flags = [
            0,
            libc::SOCK_CLOEXEC,
            libc::SOCK_NONBLOCK,
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        ];
        for nr in [libc::SYS_socket, libc::SYS_socketpair] {
            for nr in [nr, nr | 0x4000_0000] {
                for fam in [libc::AF_INET, libc::AF_INET6] {
                    for ty in 0..=SOCK_TYPE_MASK {
                        for flag in flags {
                            for proto in [0, IPPROTO_TCP, 17, 132, 262] {
                                let args = [fam as u64, ty | flag as u64, proto, 0, 0, 0];
                                let tcp = ty == STREAM && (proto == 0 || proto == IPPROTO_TCP);
                                let x32 = nr & 0x4000_0000 != 0;
                                // Pairs: AF_UNIX only (inet cannot make them anyway).
                                let pair = nr & !0x4000_0000 == libc::SYS_socketpair;
                                let want = if tcp && !x32 && !pair { ALLOW } else { EPERM };
                                assert_eq!(run(&f, nr, args), want, "nr {nr:#x} {args:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// With UDP let through for the kernel layer (its socket programs check every UDP
    /// destination), everything else on inet stays closed: ping sockets, SCTP, UDP-Lite, raw.
    #[test]
    fn kernel_layer_udp_lets_through_tcp_and_udp_only() {
        let f = build(&SeccompPlan {
            deny_udp_and_raw: false,
            inet_tcp_udp_only: true,
            ..full()
        })
        .unwrap();
        for nr in [libc::SYS_socket, libc::SYS_socketpair] {
            for nr in [nr, nr | 0x4000_0000] {
                for fam in [libc::AF_INET, libc::AF_INET6] {
                    for ty in 0..=SOCK_TYPE_MASK {
                        for flag in [0, libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK] {
                            for proto in [0, IPPROTO_TCP, IPPROTO_UDP, 1, 58, 132, 136, 262] {
                                let args = [fam as u64, ty | flag as u64, proto, 0, 0, 0];
                                let tcp = ty == STREAM && (proto == 0 || proto == IPPROTO_TCP);
                                let udp = ty == DGRAM && (proto == 0 || proto == IPPROTO_UDP);
                                let x32 = nr & 0x4000_0000 != 0;
                                let pair = nr & !0x4000_0000 == libc::SYS_socketpair;
                                let want = if (tcp || udp) && !x32 && !pair {
                                    ALLOW
                                } else {
                                    EPERM
                                };
                                assert_eq!(run(&f, nr, args), want, "nr {nr:#x} {args:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn filter_stays_small() {
        // The kernel converts and JIT-compiles every instruction when the child loads the
        // filter, and emulates it per syscall number to build its allow cache: its size is
        // start-up time. (1,789 instructions with one rule per socket type; 1,085 with x32
        // aliases that checked arguments too; the TCP Fast Open, listen, memfd and prlimit rules
        // add about 50.)
        for (x32, most) in [(false, 515), (true, 775)] {
            let f = build_for(&full(), x32).unwrap();
            let len = f.programs[0].len();
            assert!(
                len <= most,
                "EPERM filter (x32 {x32}) has {len} instructions"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn without_x32_the_aliases_are_left_out() {
        let f = build_for(&full(), false).unwrap();
        assert_eq!(run(&f, 0x4000_0000 | libc::SYS_bpf, [0; 6]), ALLOW);
        assert_eq!(run(&f, libc::SYS_bpf, [0; 6]), EPERM);
        // The probe agrees with the kernel: an x32 getpid either runs or is ENOSYS.
        // SAFETY: as in x32_syscalls_work.
        let r = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
        assert_eq!(x32_syscalls_work(), r != -1);
    }

    #[test]
    fn deny_inet_blocks_tcp_too() {
        let f = build(&SeccompPlan {
            deny_inet: true,
            ..full()
        })
        .unwrap();
        assert_eq!(
            run(&f, libc::SYS_socket, [AF_INET, STREAM, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            run(
                &f,
                libc::SYS_socketpair,
                [libc::AF_UNIX as u64, STREAM, 0, 0, 0, 0]
            ),
            ALLOW
        );
        let open_unix = build(&SeccompPlan {
            deny_inet: true,
            deny_unix_sockets: false,
            ..full()
        })
        .unwrap();
        assert_eq!(
            run(
                &open_unix,
                libc::SYS_socket,
                [libc::AF_UNIX as u64, STREAM, 0, 0, 0, 0]
            ),
            ALLOW
        );
    }

    #[test]
    fn ownership_and_setid_bits() {
        let f = build(&full()).unwrap();
        for nr in [
            libc::SYS_chown,
            libc::SYS_fchown,
            libc::SYS_lchown,
            libc::SYS_fchownat,
        ] {
            assert_eq!(run(&f, nr, [0, 0, 0, 0, 0, 0]), EPERM, "{nr}");
        }
        let suid = libc::S_ISUID as u64;
        let sgid = libc::S_ISGID as u64;
        assert_eq!(run(&f, libc::SYS_chmod, [0, 0o755, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            run(&f, libc::SYS_chmod, [0, 0o755 | suid, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&f, libc::SYS_fchmod, [3, 0o2755, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(&f, libc::SYS_fchmodat, [3, 0, 0o644, 0, 0, 0]), ALLOW);
        assert_eq!(
            run(&f, libc::SYS_fchmodat, [3, 0, 0o644 | sgid, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&f, SYS_FCHMODAT2, [3, 0, 0o4700, 0, 0, 0]), EPERM);
        let creat = libc::O_CREAT as u64;
        assert_eq!(run(&f, libc::SYS_openat, [3, 0, creat, 0o644, 0, 0]), ALLOW);
        assert_eq!(
            run(&f, libc::SYS_openat, [3, 0, creat, 0o4755, 0, 0]),
            EPERM
        );
        // Without O_CREAT the mode argument is garbage and must not matter.
        assert_eq!(run(&f, libc::SYS_openat, [3, 0, 0, 0o4755, 0, 0]), ALLOW);
        assert_eq!(run(&f, libc::SYS_open, [0, creat, 0o6755, 0, 0, 0]), EPERM);
        assert_eq!(run(&f, libc::SYS_mknodat, [3, 0, 0o104755, 0, 0, 0]), EPERM);
        assert_eq!(run(&f, libc::SYS_mknodat, [3, 0, 0o10644, 0, 0, 0]), ALLOW);
        assert_eq!(
            run(&f, libc::SYS_openat2, [3, 0, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
    }

    /// A send with `MSG_FASTOPEN` is refused wherever the flag sits among others, in each of
    /// the three send calls; sends without it, and the receive calls, are untouched.
    #[test]
    fn tcp_fast_open_sends_are_denied() {
        let f = build(&full()).unwrap();
        let fastopen = libc::MSG_FASTOPEN as u64;
        let others = (libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT | libc::MSG_MORE) as u64;
        for (nr, flags_arg) in [
            (libc::SYS_sendto, 3),
            (libc::SYS_sendmsg, 2),
            (libc::SYS_sendmmsg, 3),
        ] {
            for (flags, want) in [
                (0, ALLOW),
                (others, ALLOW),
                (fastopen, EPERM),
                (fastopen | others, EPERM),
                // The kernel reads the flags as a 32-bit int: high bits cannot hide it.
                (fastopen | 1 << 40, EPERM),
            ] {
                let mut args = [3, 0, 0, 0, 0, 0];
                args[flags_arg] = flags;
                assert_eq!(run(&f, nr, args), want, "nr {nr} flags {flags:#x}");
            }
        }
        for nr in [libc::SYS_recvfrom, libc::SYS_recvmsg] {
            assert_eq!(run(&f, nr, [3, 0, 0, fastopen, 0, 0]), ALLOW);
        }
    }

    #[test]
    fn executable_memfds_are_denied_when_planned() {
        let f = build(&full()).unwrap();
        let nr = libc::SYS_memfd_create;
        let seal = libc::MFD_NOEXEC_SEAL as u64;
        let cloexec = libc::MFD_CLOEXEC as u64;
        for (flags, want) in [
            (0, EPERM),
            (cloexec, EPERM),
            (libc::MFD_EXEC as u64, EPERM),
            (seal, ALLOW),
            (seal | cloexec, ALLOW),
        ] {
            assert_eq!(
                run(&f, nr, [0, flags, 0, 0, 0, 0]),
                want,
                "flags {flags:#x}"
            );
        }
        let f = build(&SeccompPlan {
            deny_exec_memfd: false,
            ..full()
        })
        .unwrap();
        assert_eq!(run(&f, nr, [0, 0, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn prlimit_of_other_processes_is_denied() {
        let f = build(&full()).unwrap();
        let nr = libc::SYS_prlimit64;
        let limits = 0x7fff_0000_1000u64;
        for (pid, new, want) in [
            (0, limits, ALLOW), // itself: setrlimit(2)
            (0, 0, ALLOW),      // reading its own
            (4242, 0, ALLOW),   // reading another's
            (4242, limits, EPERM),
            (1, limits, EPERM),
        ] {
            let args = [pid, libc::RLIMIT_NOFILE as u64, new, 0, 0, 0];
            assert_eq!(run(&f, nr, args), want, "pid {pid} new {new:#x}");
        }
    }

    #[test]
    fn listen_is_denied_only_when_planned() {
        let f = build(&full()).unwrap();
        assert_eq!(run(&f, libc::SYS_listen, [3, 128, 0, 0, 0, 0]), EPERM);
        let f = build(&SeccompPlan {
            deny_listen: false,
            ..full()
        })
        .unwrap();
        assert_eq!(run(&f, libc::SYS_listen, [3, 128, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn unrestricted_network_leaves_sockets_alone() {
        let f = build(&SeccompPlan {
            deny_escape_syscalls: true,
            ..SeccompPlan::default()
        })
        .unwrap();
        assert_eq!(
            run(&f, libc::SYS_socket, [AF_INET, DGRAM, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            run(
                &f,
                libc::SYS_sendto,
                [3, 0, 0, libc::MSG_FASTOPEN as u64, 0, 0]
            ),
            ALLOW
        );
        assert_eq!(run(&f, libc::SYS_ptrace, [0; 6]), EPERM);
    }

    #[test]
    fn escapes() {
        let f = build(&full()).unwrap();
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_io_uring_setup,
            libc::SYS_bpf,
            libc::SYS_mount,
            libc::SYS_process_vm_readv,
            libc::SYS_keyctl,
            libc::SYS_finit_module,
        ] {
            assert_eq!(run(&f, nr, [0; 6]), EPERM, "syscall {nr}");
        }
        let tiocsti = ioctl_request(libc::TIOCSTI);
        assert_eq!(run(&f, libc::SYS_ioctl, [0, tiocsti, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&f, libc::SYS_ioctl, [0, tiocsti | 1 << 32, 0, 0, 0, 0]),
            EPERM,
            "high bits"
        );
        assert_eq!(
            run(
                &f,
                libc::SYS_ioctl,
                [0, ioctl_request(libc::TIOCGWINSZ), 0, 0, 0, 0]
            ),
            ALLOW
        );
        let newuser = libc::CLONE_NEWUSER as u64;
        assert_eq!(
            run(
                &f,
                libc::SYS_unshare,
                [newuser | libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            run(
                &f,
                libc::SYS_unshare,
                [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]
            ),
            ALLOW
        );
        assert_eq!(
            run(&f, libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(run(&f, libc::SYS_clone, [newuser, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&f, libc::SYS_clone3, [0; 6]),
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(run(&f, libc::SYS_read, [0; 6]), ALLOW);
        assert_eq!(run(&f, libc::SYS_execve, [0; 6]), ALLOW);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_aliases_and_foreign_arch() {
        let f = build(&full()).unwrap();
        assert_eq!(run(&f, 0x4000_0000 | 521, [0; 6]), EPERM, "x32 ptrace");
        // Calls the x86_64 side checks by argument are denied whatever their arguments.
        assert_eq!(run(&f, libc::SYS_openat, [0; 6]), ALLOW, "plain openat");
        assert_eq!(
            run(&f, 0x4000_0000 | libc::SYS_openat, [0; 6]),
            EPERM,
            "x32 plain openat"
        );
        assert_eq!(
            run(&f, 0x4000_0000 | 514, [0; 6]),
            EPERM,
            "x32 ioctl, any request"
        );
        assert_eq!(
            run(&f, 0x4000_0000 | libc::SYS_bpf, [0; 6]),
            EPERM,
            "x32 bpf"
        );
        let d = Data {
            nr: 26,
            arch: 0x4000_0003,
            args: [0; 6],
        }; // i386 ptrace
        assert_eq!(eval(&f.programs[0], &d), libc::SECCOMP_RET_KILL_PROCESS);
    }
}
