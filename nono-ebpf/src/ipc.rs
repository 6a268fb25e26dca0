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
//! "Outside the sandbox" is decided by the target's cgroup v2 id (task -> css_set -> dfl_cgrp
//! -> kernfs_node id, offsets from BTF) looked up in the sandbox map: a task in any cgroup
//! registered to the same sandbox is inside; anything else is outside. An unreadable target is
//! outside (fail closed).

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::lsm, programs::LsmContext};
use nono_common::{Hook, KernelOffsets, SandboxInfo, ISOLATION_RULE, TASK_OFFSET_MASK};

use crate::{
    current_sandbox,
    events::{emit, Decision},
    fs::{read_at, EPERM},
    NONO_CONFIG, NONO_SANDBOXES,
};

/// The cgroup v2 id of `task` (what `bpf_get_current_cgroup_id` would return in it). Deny
/// events carry it in their `ino` field.
#[inline(always)]
unsafe fn task_cgroup_id(o: &KernelOffsets, task: *const u8) -> Result<u64, i64> {
    let cset: *const u8 = bpf_probe_read_kernel(
        task.add((o.task_cgroups & TASK_OFFSET_MASK) as usize) as *const *const u8,
    )?;
    let cgroup: *const u8 = read_at(cset, o.css_set_dfl_cgrp)?;
    let kn: *const u8 = read_at(cgroup, o.cgroup_kn)?;
    read_at(kn, o.kernfs_node_id)
}

/// Allow `task` if it is in the current task's sandbox; otherwise report and deny.
#[inline(always)]
fn inside_only(sandbox: &SandboxInfo, hook: Hook, task: *const u8) -> i32 {
    let target = match NONO_CONFIG.get(0) {
        Some(o) if o.ready != 0 && o.task_cgroups != 0 => unsafe { task_cgroup_id(o, task) },
        _ => Err(0),
    };
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
    let mut decision = Decision::file(sandbox.sandbox_id, hook as u16);
    decision.denied = true;
    decision.rule_id = ISOLATION_RULE;
    decision.ino = object;
    emit(&decision);
    -EPERM
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
