//! BPF LSM process isolation: what a sandboxed task may do to tasks outside its sandbox and to
//! the kernel itself. These are built-in rules of every sandbox ([`ISOLATION_RULE`]), not
//! profile rules.
//!
//! - `task_kill`: no signal (signal 0 included) to a task outside the sandbox. Signals the
//!   kernel sends itself (SIGCHLD to the parent, the parent-death signal) do not pass this
//!   hook. Landlock ABI 6 scopes signals too; this covers older kernels and profiles that
//!   unscope them.
//! - `ptrace_access_check`: no ptrace access (attach, and the reads behind
//!   `/proc/PID/{mem,environ,maps,fd}`) to a task outside the sandbox.
//! - `bpf`: no bpf(2) at all from inside (seccomp refuses the syscall first; this holds where
//!   seccomp is unavailable).
//! - `kernel_read_file` / `kernel_load_data` (module and kexec images) and
//!   `kernel_module_request` (module auto-loading by name): nothing from inside.
//!
//! - `unix_stream_connect` / `unix_may_send`: a unix socket (path or abstract) may be reached
//!   when a task of this sandbox created it, or when it is a path socket the profile lists
//!   (`ipc unix-socket`, bound by the socket file's inode or a directory above it); anything
//!   else (docker.sock, an ssh agent, an outside abstract socket) is denied with the default
//!   rule. `socketpair` pairs pass no hook.
//!
//! "Outside the sandbox" is decided by the target's cgroup v2 id (task -> css_set -> dfl_cgrp
//! -> kernfs_node id, offsets from BTF) looked up in the sandbox map: a task in any cgroup
//! registered to the same sandbox is inside; anything else is outside. An unreadable target is
//! outside (fail closed).
//!
//! These hooks read kernel memory with `bpf_probe_read_kernel` (`fs::read_at`), not the direct
//! loads of the file hooks: `unix_stream_connect` hands a `struct sock *` that is a `unix_sock`,
//! beyond what the verifier lets a direct load through a `struct sock *` reach, and none of
//! these hooks is on a hot path.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::lsm, programs::LsmContext};
use nono_common::{
    access, FsDeny, Hook, InodeKey, SandboxInfo, ISOLATION_RULE, MAX_PATH_DEPTH, TASK_OFFSET_MASK,
};

use crate::{
    current_sandbox,
    fs::read_at,
    kernel_offset,
    verdict::{conclude, Verdict},
    NONO_FS_DENY, NONO_SANDBOXES,
};

/// The cgroup v2 id of `task` (what `bpf_get_current_cgroup_id` would return in it). Deny
/// events carry it in their `ino` field.
#[inline(always)]
unsafe fn task_cgroup_id(task: *const u8) -> Result<u64, i64> {
    let cset: *const u8 = bpf_probe_read_kernel(
        task.add((kernel_offset!(task_cgroups) & TASK_OFFSET_MASK) as usize) as *const *const u8,
    )?;
    let cgroup: *const u8 = read_at(cset, kernel_offset!(css_set_dfl_cgrp))?;
    let kn: *const u8 = read_at(cgroup, kernel_offset!(cgroup_kn))?;
    read_at(kn, kernel_offset!(kernfs_node_id))
}

/// Allow `task` if it is in the current task's sandbox; otherwise report and deny.
#[inline(always)]
fn inside_only(sandbox: &SandboxInfo, hook: Hook, task: *const u8) -> i32 {
    let target = unsafe { task_cgroup_id(task) };
    if let Ok(cgroup_id) = target {
        // SAFETY: copied out at once.
        if let Some(info) = unsafe { NONO_SANDBOXES.get(&cgroup_id) } {
            if info.sandbox_id == sandbox.sandbox_id {
                return 0;
            }
        }
    }
    deny(sandbox, hook, target.unwrap_or(0))
}

#[inline(always)]
fn deny(sandbox: &SandboxInfo, hook: Hook, object: u64) -> i32 {
    conclude(
        sandbox,
        hook,
        0,
        Ok(Verdict::Deny {
            rule_id: ISOLATION_RULE,
            dev: 0,
            ino: object,
        }),
    )
}

#[lsm(hook = "task_kill")]
pub fn task_kill(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    inside_only(&sandbox, Hook::TaskKill, unsafe { ctx.arg(0) })
}

#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    inside_only(&sandbox, Hook::PtraceAccessCheck, unsafe { ctx.arg(0) })
}

#[lsm(hook = "bpf")]
pub fn bpf(_ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    deny(&sandbox, Hook::Bpf, 0)
}

// `enum kernel_read_file_id` / `kernel_load_data_id` (include/linux/kernel_read_file.h): the
// same list for both, stable since 5.10.
const ID_MODULE: u32 = 2;
const ID_KEXEC_IMAGE: u32 = 3;
const ID_KEXEC_INITRAMFS: u32 = 4;

#[inline(always)]
fn loads_code(id: u32) -> bool {
    id == ID_MODULE || id == ID_KEXEC_IMAGE || id == ID_KEXEC_INITRAMFS
}

#[lsm(hook = "kernel_read_file")]
pub fn kernel_read_file(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let id: u32 = unsafe { ctx.arg(1) };
    if !loads_code(id) {
        return 0;
    }
    deny(&sandbox, Hook::KernelReadFile, u64::from(id))
}

#[lsm(hook = "kernel_load_data")]
pub fn kernel_load_data(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let id: u32 = unsafe { ctx.arg(0) };
    if !loads_code(id) {
        return 0;
    }
    deny(&sandbox, Hook::KernelLoadData, u64::from(id))
}

#[lsm(hook = "kernel_module_request")]
pub fn kernel_module_request(_ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    deny(&sandbox, Hook::KernelModuleRequest, 0)
}

/// The cgroup v2 id of the task that created socket `sk`.
#[inline(always)]
unsafe fn sock_cgroup_id(sk: *const u8) -> Result<u64, i64> {
    let cgroup: *const u8 = read_at(sk, kernel_offset!(sock_cgroup))?;
    let kn: *const u8 = read_at(cgroup, kernel_offset!(cgroup_kn))?;
    read_at(kn, kernel_offset!(kernfs_node_id))
}

/// May the current sandbox reach the unix socket `other` (the peer's `struct sock`)?
/// - created inside this sandbox: allowed, not reported;
/// - a path socket the profile lists (`ipc unix-socket`): allowed by that rule (the socket's
///   inode in the event);
/// - anything else, an outside path socket (docker.sock, an ssh agent) or an outside abstract
///   socket: denied by the default rule.
#[inline(always)]
unsafe fn check_unix_peer(sandbox: &SandboxInfo, other: *const u8) -> Result<Verdict, i64> {
    if let Ok(cgroup_id) = sock_cgroup_id(other) {
        if let Some(info) = NONO_SANDBOXES.get(&cgroup_id) {
            if info.sandbox_id == sandbox.sandbox_id {
                return Ok(Verdict::AllowQuiet);
            }
        }
    }
    let dentry: *const u8 = read_at(other, kernel_offset!(unix_sock_dentry))?;
    if dentry.is_null() {
        // Abstract (or unbound): no file to be listed.
        return Ok(Verdict::Deny {
            rule_id: 0,
            dev: 0,
            ino: 0,
        });
    }
    let super_block: *const u8 = read_at(dentry, kernel_offset!(dentry_sb))?;
    let dev: u32 = read_at(super_block, kernel_offset!(sb_dev))?;
    let mut key = InodeKey {
        sandbox_id: sandbox.sandbox_id,
        dev,
        ino: 0,
    };
    let mut current = dentry;
    let mut object_ino = 0u64;
    for depth in 0..MAX_PATH_DEPTH {
        let inode: *const u8 = read_at(current, kernel_offset!(dentry_inode))?;
        if !inode.is_null() {
            key.ino = read_at(inode, kernel_offset!(inode_ino))?;
            if depth == 0 {
                object_ino = key.ino;
            }
            if let Some(rule) = NONO_FS_DENY.get(&key) {
                let rule: FsDeny = *rule;
                if rule.access & access::UNIX_ALLOW != 0 {
                    return Ok(Verdict::Allow {
                        rule_id: rule.rule_id,
                        dev,
                        ino: object_ino,
                    });
                }
            }
        }
        let parent: *const u8 = read_at(current, kernel_offset!(dentry_parent))?;
        if parent == current || parent.is_null() {
            break;
        }
        current = parent;
    }
    Ok(Verdict::Deny {
        rule_id: 0,
        dev,
        ino: object_ino,
    })
}

/// Decide a unix connect or send to `other`: inside the sandbox and listed sockets pass,
/// everything else is denied with the default rule (the socket's inode in the event).
#[inline(always)]
fn unix_peer(sandbox: &SandboxInfo, hook: Hook, other: *const u8) -> i32 {
    let verdict = if other.is_null() {
        Err(0)
    } else {
        unsafe { check_unix_peer(sandbox, other) }
    };
    conclude(sandbox, hook, 0, verdict)
}

/// `connect(2)` of a stream or seqpacket unix socket; `other` is the listener.
#[lsm(hook = "unix_stream_connect")]
pub fn unix_stream_connect(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    unix_peer(&sandbox, Hook::UnixStreamConnect, unsafe { ctx.arg(1) })
}

/// A datagram to a unix socket (connect or sendmsg); `other` is the receiver's `struct socket`.
#[lsm(hook = "unix_may_send")]
pub fn unix_may_send(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let other: *const u8 = unsafe { ctx.arg(1) };
    let sk = unsafe {
        read_at::<*const u8>(other, kernel_offset!(socket_sk)).unwrap_or(core::ptr::null())
    };
    // A null `sk` is denied (fail closed) in `unix_peer`.
    unix_peer(&sandbox, Hook::UnixMaySend, sk)
}
