//! Reference programs for the overhead benchmark; never attached in production. `nono
//! kernel-bench-noop` attaches all three to `file_open` beside nono's programs, so every open
//! in a measured window runs each of them, and the lab divides each program's run time per run
//! by the no-op's from the same window.
//!
//! The no-op is the baseline: what any BPF LSM program costs. The other two are floors,
//! the least work the kernel layer's design requires before anything nono adds to it:
//! - every program decides by the current task's cgroup, so none can cost less for a task
//!   outside every sandbox than [`bench_cgroup_id`] does;
//! - a file check inside a sandbox must find the sandbox (a cgroup can be below the sandbox's
//!   own, so its id is not the sandbox's) and the rule on the file's own inode (a hard link
//!   reaches a file through directories that carry no rule), so none can cost less than
//!   [`bench_inode_rule`] does, before it considers the directories above the file.

use aya_ebpf::{helpers::bpf_get_current_cgroup_id, macros::lsm, programs::LsmContext};
use nono_common::{access, InodeKey};

use crate::{
    fs::{dentry_dev, load, rule_verdict},
    kernel_offset, NONO_SANDBOXES,
};

/// The baseline: allows, and does nothing else.
#[lsm(hook = "file_open")]
pub fn bench_noop(_ctx: LsmContext) -> i32 {
    0
}

/// The current task's cgroup id, then allow. The helper call is opaque to the compiler, so it
/// stays although its result is unused.
#[lsm(hook = "file_open")]
pub fn bench_cgroup_id(_ctx: LsmContext) -> i32 {
    let _ = unsafe { bpf_get_current_cgroup_id() };
    0
}

/// The cgroup id, its sandbox (a hash lookup), and the rule on the opened file's inode
/// (another), then allow. The lookups are opaque calls too, so both stay.
#[lsm(hook = "file_open")]
pub fn bench_inode_rule(ctx: LsmContext) -> i32 {
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let Some(sandbox) = (unsafe { NONO_SANDBOXES.get(&cgroup_id) }) else {
        return 0;
    };
    let file: *const u8 = unsafe { ctx.arg(0) };
    let dentry: *const u8 = unsafe { load(file, kernel_offset!(file_dentry)) };
    if dentry.is_null() {
        return 0;
    }
    let Ok(dev) = (unsafe { dentry_dev(dentry) }) else {
        return 0;
    };
    let inode: *const u8 = unsafe { load(dentry, kernel_offset!(dentry_inode)) };
    if inode.is_null() {
        return 0;
    }
    let key = InodeKey {
        sandbox_id: sandbox.sandbox_id,
        dev,
        ino: unsafe { load(inode, kernel_offset!(inode_ino)) },
    };
    let _ = rule_verdict(&key, access::READ);
    0
}
