//! BPF LSM file hooks: the policy's filesystem denies, enforced under Landlock.
//!
//! How a rule binds (the userspace loader documents the same in `nono::kernel::fs`):
//! - A deny is keyed by the (device, inode) of the object the rule names, per sandbox.
//! - Each hook walks from the object's dentry up its `d_parent` chain to the filesystem root
//!   (at most `MAX_PATH_DEPTH` steps) and denies if any step is a denied (dev, ino) whose rule
//!   covers the requested access. So a deny on a directory covers files created in it later,
//!   renames inside it, every hard link of a denied file (same inode), and bind mounts of any of
//!   it (same device and inode, whatever the mount).
//! - Moving or linking anything *out* of a denied subtree would take it out of the walk, so
//!   `path_rename` and `path_link` deny any source a deny rule covers, whatever access it denies.
//! - The walk does not cross mount points: a filesystem mounted *below* a denied directory is not
//!   covered by it (its root's `d_parent` is itself).
//! - A rule whose object does not exist yet is bound when the object appears, by the name-watch
//!   hooks in `watch`; the create, rename, link, unlink and rmdir hooks here refuse the
//!   sandbox's own operations on a watched name (`enforce_name`).
//!
//! What a sandboxed check costs: a filesystem the sandbox has no rule on ends after a few
//! compares with its listed rule devices (`NONO_RULE_DEVICES`; a device marker lookup when the
//! list is incomplete); otherwise the object's own entry, then the directory verdict cache
//! (`cache`) on its directory, and only past the cache the device marker and the rest of the
//! walk (see [`check_dentry`]).
//!
//! Kernel memory is read with direct loads ([`load`]) through the BTF-typed pointers the hooks
//! receive, at the constant offsets of `NONO_OFFSETS`: no helper call per field. The verifier
//! checks each against the running kernel's BTF at load, and runs it as a `BPF_PROBE_MEM` load
//! (a fault reads zero). The name-watch and unix-socket code keeps `bpf_probe_read_kernel`
//! ([`read_at`]) where the pointer's BTF type is not the struct read (see `ipc`).

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::{lsm, map},
    maps::Array,
    programs::LsmContext,
};
use nono_common::{
    access, event_slot, FsDeny, Hook, InodeKey, RuleDevices, SandboxInfo, EVENT_SLOTS,
    LISTED_RULE_DEVICES, MAX_PATH_DEPTH, NO_VERDICT_RULE, OFFSET_MASK, SANDBOX_AUDIT_ALL,
    SANDBOX_EXEC_ALLOWLIST,
};

use crate::{
    cache, current_sandbox,
    events::emit_exec,
    exec, kernel_offset, path,
    verdict::{conclude, conclude_with_path, Verdict, EPERM},
    watch, NONO_CONFIG, NONO_FS_DENY,
};

// fmode_t bits (include/linux/fs.h), stable since long before 6.1.
const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
const FMODE_EXEC: u32 = 0x20;

/// `RENAME_EXCHANGE` swaps the two names: both sides then move.
const RENAME_EXCHANGE: u32 = 1 << 1;

/// The `T` at `base + offset`, loaded directly. `base` must be a pointer the verifier knows by
/// BTF type (a hook argument, or a pointer field loaded from one) and `offset` a
/// [`kernel_offset!`] (a constant to the verifier), else the program is refused at load: the
/// verifier accepts the load only if the kernel's BTF has a field of `T`'s size there. It runs
/// as `BPF_PROBE_MEM`: a fault (a NULL or stale pointer) reads as zero. Volatile, so the
/// compiler never moves it above the null checks that guard it.
#[inline(always)]
pub(crate) unsafe fn load<T>(base: *const u8, offset: u32) -> T {
    core::ptr::read_volatile(base.add(offset as usize) as *const T)
}

/// Reads a `T` at `base + offset` with `bpf_probe_read_kernel`, for pointers whose BTF type is
/// not the struct being read. The mask bounds the offset for the pointer arithmetic.
#[inline(always)]
pub(crate) unsafe fn read_at<T>(base: *const u8, offset: u32) -> Result<T, i64> {
    bpf_probe_read_kernel(base.add((offset & OFFSET_MASK) as usize) as *const T)
}

/// Per event slot, the filesystems its sandbox has rules on (see [`RuleDevices`]).
#[map]
static NONO_RULE_DEVICES: Array<RuleDevices> = Array::pinned(EVENT_SLOTS, 0);

/// Whether `sandbox_id` has file rules on `dev`, from its listed devices: `Some(false)` only
/// when its entry is its own and complete; `None` (unknown: look the marker up) otherwise.
#[inline(always)]
fn rules_on_device(sandbox_id: u32, dev: u32) -> Option<bool> {
    let listed = NONO_RULE_DEVICES.get(event_slot(sandbox_id))?;
    if listed.sandbox_id != sandbox_id || listed.count > LISTED_RULE_DEVICES as u32 {
        return None;
    }
    for (index, listed_dev) in listed.devs.iter().enumerate() {
        if (index as u32) < listed.count && *listed_dev == dev {
            return Some(true);
        }
    }
    Some(false)
}

/// The device marker of `key`'s sandbox and device: `None` when the sandbox has no rule on this
/// filesystem (nothing to walk), a deny when a name watch failed to bind an object here
/// ([`access::POISONED`]: fail closed), else the walk goes on.
#[inline(always)]
fn device_marker(key: &InodeKey) -> Option<Result<(), Verdict>> {
    let marker: FsDeny = *unsafe { NONO_FS_DENY.get(key) }?;
    if marker.access & access::POISONED != 0 {
        return Some(Err(Verdict::Deny {
            rule_id: NO_VERDICT_RULE,
            dev: key.dev,
            ino: 0,
        }));
    }
    Some(Ok(()))
}

/// The device of the filesystem `dentry` is on; `Err` (deny) if the dentry has no superblock,
/// which a live one always has.
#[inline(always)]
pub(crate) unsafe fn dentry_dev(dentry: *const u8) -> Result<u32, i64> {
    let super_block: *const u8 = load(dentry, kernel_offset!(dentry_sb));
    if super_block.is_null() {
        return Err(0);
    }
    Ok(load(super_block, kernel_offset!(sb_dev)))
}

/// Is `want` access to the object behind `dentry` (or anything above it) denied to `sandbox_id`?
///
/// The object's own entry comes first (a file may have other names, so no cache answers for
/// it), then the directory verdict cache on its directory. The device marker is looked up only
/// past the cache: a clean entry proves the marker was there and not poisoned when the entry was
/// made, and poisoning bumps the rule generation, which voids every entry. Depth 0 and the
/// cache are peeled off the walk, so the loop carries no more state than the walk itself (the
/// verifier explores it once per step).
#[inline(always)]
unsafe fn check_dentry(sandbox_id: u32, dentry: *const u8, want: u32) -> Result<Verdict, i64> {
    let dev = dentry_dev(dentry)?;
    let no_rule_here = Verdict::Allow {
        rule_id: 0,
        dev,
        ino: 0,
    };
    // No rule of this sandbox lives on this filesystem: nothing to walk (procfs, sysfs, ...).
    if rules_on_device(sandbox_id, dev) == Some(false) {
        return Ok(no_rule_here);
    }
    let mut key = InodeKey {
        sandbox_id,
        dev,
        ino: 0,
    };
    // No deny of any kind on the way so far: the object's directory may be cached as clean.
    let mut clean = true;
    let mut object_ino = 0u64;
    // A negative dentry (a name about to be created) has no inode; its parents decide.
    let inode: *const u8 = load(dentry, kernel_offset!(dentry_inode));
    if !inode.is_null() {
        object_ino = load(inode, kernel_offset!(inode_ino));
        key.ino = object_ino;
        match rule_verdict(&key, want) {
            Some(Err(denied)) => return Ok(denied),
            Some(Ok(())) => clean = false,
            None => {}
        }
    }
    let parent: *const u8 = load(dentry, kernel_offset!(dentry_parent));
    let object_is_root = parent == dentry || parent.is_null();
    let snap = cache::snapshot();
    let mut dir_ino = 0u64;
    let mut dir_generation = 0u32;
    // The object's directory: if it and everything above were clean, stop here.
    if !object_is_root && snap.usable {
        let dir: *const u8 = load(parent, kernel_offset!(dentry_inode));
        if !dir.is_null() {
            key.ino = load(dir, kernel_offset!(inode_ino));
            dir_generation = load(dir, kernel_offset!(inode_generation));
            if cache::clean(&key, &snap, dir_generation) {
                return Ok(Verdict::Allow {
                    rule_id: 0,
                    dev,
                    ino: object_ino,
                });
            }
            dir_ino = key.ino;
        }
    }
    let marker = InodeKey {
        sandbox_id,
        dev,
        ino: 0,
    };
    match device_marker(&marker) {
        None => return Ok(no_rule_here),
        Some(Err(poisoned)) => return Ok(poisoned),
        Some(Ok(())) => {}
    }
    let allowed = Verdict::Allow {
        rule_id: 0,
        dev,
        ino: object_ino,
    };
    if object_is_root {
        return Ok(allowed);
    }
    // The walk from the directory up; the object was depth 0.
    let mut current = parent;
    for _ in 1..MAX_PATH_DEPTH {
        let inode: *const u8 = load(current, kernel_offset!(dentry_inode));
        if !inode.is_null() {
            key.ino = load(inode, kernel_offset!(inode_ino));
            match rule_verdict(&key, want) {
                Some(Err(denied)) => return Ok(denied),
                Some(Ok(())) => clean = false,
                None => {}
            }
        }
        let parent: *const u8 = load(current, kernel_offset!(dentry_parent));
        if parent == current || parent.is_null() {
            if clean && dir_ino != 0 {
                key.ino = dir_ino;
                cache::store(&key, &snap, dir_generation);
            }
            return Ok(allowed);
        }
        current = parent;
    }
    Ok(Verdict::Deny {
        rule_id: NO_VERDICT_RULE,
        dev,
        ino: object_ino,
    })
}

/// Whether the object of `dentry` is a directory that keeps its name (`access::KEEP_NAME`):
/// exactly this object, not what lies below it. A negative dentry (no object) keeps nothing.
#[inline(always)]
unsafe fn kept_name(sandbox_id: u32, dentry: *const u8) -> Result<Verdict, i64> {
    if dentry.is_null() {
        return Ok(Verdict::AllowQuiet);
    }
    let inode: *const u8 = load(dentry, kernel_offset!(dentry_inode));
    if inode.is_null() {
        return Ok(Verdict::AllowQuiet);
    }
    let key = InodeKey {
        sandbox_id,
        dev: dentry_dev(dentry)?,
        ino: load(inode, kernel_offset!(inode_ino)),
    };
    match NONO_FS_DENY.get(&key) {
        Some(rule) if rule.access & access::KEEP_NAME != 0 => Ok(Verdict::Deny {
            rule_id: rule.rule_id,
            dev: key.dev,
            ino: key.ino,
        }),
        _ => Ok(Verdict::AllowQuiet),
    }
}

/// The entry of `key`, if any: a deny when its rule covers `want`, else `Ok` when it is a rule
/// a cached "clean" must not hide (any deny, `exec deny` too: a rename source check,
/// `MOVE_WANT`, must still find it).
#[inline(always)]
pub(crate) fn rule_verdict(key: &InodeKey, want: u32) -> Option<Result<(), Verdict>> {
    let rule: FsDeny = *unsafe { NONO_FS_DENY.get(key) }?;
    if rule.access & want != 0 {
        return Some(Err(Verdict::Deny {
            rule_id: rule.rule_id,
            dev: key.dev,
            ino: key.ino,
        }));
    }
    if rule.access & (access::ALL | access::EXEC_DENY) != 0 {
        return Some(Ok(()));
    }
    None
}

/// Decide one access, report it, and return the LSM verdict (0 or -EPERM). `dentry` is a
/// BTF-typed `struct dentry *` (see [`load`]); a null one is denied. `at` is the BTF-typed
/// `struct path *` the hook got for it (the object's own, or its directory's: the same mount):
/// under `audit all` the report carries the object's path, walked from that mount and the
/// dentry (see `path`), whether allowed or denied, as `file_open`'s does.
#[inline(always)]
fn enforce(sandbox: &SandboxInfo, hook: Hook, at: *const u8, dentry: *const u8, want: u32) -> i32 {
    let verdict = if dentry.is_null() {
        Err(0)
    } else {
        unsafe { check_dentry(sandbox.sandbox_id, dentry, want) }
    };
    if sandbox.flags & SANDBOX_AUDIT_ALL != 0 && !at.is_null() {
        conclude_with_path(sandbox, hook, want, verdict, |s| unsafe {
            path::fill_at(s, at, dentry)
        })
    } else {
        conclude(sandbox, hook, want, verdict)
    }
}

/// Enforce on a `const struct path *` argument; a path without a dentry is denied (fail
/// closed, in `enforce`).
#[inline(always)]
fn enforce_path(sandbox: &SandboxInfo, hook: Hook, path: *const u8, want: u32) -> i32 {
    let dentry = if path.is_null() {
        core::ptr::null()
    } else {
        unsafe { load(path, kernel_offset!(path_dentry)) }
    };
    enforce(sandbox, hook, path, dentry, want)
}

/// What the sandbox is about to do with a name in a directory (see `watch`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameOp {
    /// `mkdir`: allowed for a missing directory above a rule's object (the chain follows it).
    MakeDir,
    /// Any other create: a file, node or symlink under a watched name holds nothing the chain
    /// could follow, so it is refused for every watched name.
    Create,
    /// A rename or link to the name, or a rename, unlink or rmdir of it: refused for every
    /// watched name. An existing directory moved in may hold anything, and removing a watched
    /// entry the sandbox made would let it make the programs watch again and again.
    Other,
}

/// Refuse `op` on the name of `dentry` if the sandbox watches that name. The event's inode is
/// the directory the name is in.
#[inline(always)]
fn enforce_name(sandbox: &SandboxInfo, hook: Hook, dentry: *const u8, op: NameOp) -> i32 {
    if sandbox.flags & nono_common::SANDBOX_HAS_WATCHES == 0 {
        return 0;
    }
    let verdict = if dentry.is_null() {
        Err(0)
    } else {
        unsafe { watch::own_watch(sandbox, dentry) }.map(|found| match found {
            Some((key, w)) if w.child == 0 || op != NameOp::MakeDir => Verdict::Deny {
                rule_id: w.rule_id,
                dev: key.dev,
                ino: key.parent_ino,
            },
            _ => Verdict::AllowQuiet,
        })
    };
    conclude(sandbox, hook, access::WRITE, verdict)
}

/// The walk above a name about to be created or removed in the directory `dir` (a `struct
/// path *`), then the name itself.
#[inline(always)]
fn enforce_entry(
    sandbox: &SandboxInfo,
    hook: Hook,
    dir: *const u8,
    dentry: *const u8,
    op: NameOp,
) -> i32 {
    let parents = enforce(sandbox, hook, dir, dentry, access::WRITE);
    if parents != 0 {
        return parents;
    }
    enforce_name(sandbox, hook, dentry, op)
}

#[lsm(hook = "file_open")]
pub fn file_open(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let file: *const u8 = unsafe { ctx.arg(0) };
    let dentry: *const u8 = unsafe { load(file, kernel_offset!(file_dentry)) };
    let mode: u32 = unsafe { load(file, kernel_offset!(file_mode)) };
    let mut want = 0;
    if mode & FMODE_READ != 0 {
        want |= access::READ;
    }
    if mode & FMODE_WRITE != 0 {
        want |= access::WRITE;
    }
    if mode & FMODE_EXEC != 0 {
        want |= access::EXEC;
    }
    if want == 0 {
        // Opens for neither read nor write (open mode 3, ioctl only) still reach the object.
        want = access::READ;
    }
    if sandbox.flags & SANDBOX_AUDIT_ALL == 0 {
        return enforce(&sandbox, Hook::FileOpen, core::ptr::null(), dentry, want);
    }
    // Under `audit all`, the report names the file by the path it was opened by.
    let verdict = if dentry.is_null() {
        Err(0)
    } else {
        unsafe { check_dentry(sandbox.sandbox_id, dentry, want) }
    };
    conclude_with_path(&sandbox, Hook::FileOpen, want, verdict, |s| unsafe {
        path::fill(s, file)
    })
}

/// An inotify watch or fanotify mark on a path reports the names of entries created, moved and
/// deleted under it and when files there are read or written: metadata of the object, so it
/// needs the read access a deny takes away. No VFS hook would see those reports, and Landlock
/// has no hook here at all.
#[lsm(hook = "path_notify")]
pub fn path_notify(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_path(
        &sandbox,
        Hook::PathNotify,
        unsafe { ctx.arg(0) },
        access::READ,
    )
}

#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_entry(
        &sandbox,
        Hook::PathUnlink,
        unsafe { ctx.arg(0) },
        unsafe { ctx.arg(1) },
        NameOp::Other,
    )
}

#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_entry(
        &sandbox,
        Hook::PathRmdir,
        unsafe { ctx.arg(0) },
        unsafe { ctx.arg(1) },
        NameOp::Other,
    )
}

#[lsm(hook = "path_mknod")]
pub fn path_mknod(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    // Also the hook for `open(O_CREAT)` of a new file: the new, negative dentry's parents decide.
    enforce_entry(
        &sandbox,
        Hook::PathMknod,
        unsafe { ctx.arg(0) },
        unsafe { ctx.arg(1) },
        NameOp::Create,
    )
}

#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_entry(
        &sandbox,
        Hook::PathMkdir,
        unsafe { ctx.arg(0) },
        unsafe { ctx.arg(1) },
        NameOp::MakeDir,
    )
}

#[lsm(hook = "path_symlink")]
pub fn path_symlink(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_entry(
        &sandbox,
        Hook::PathSymlink,
        unsafe { ctx.arg(0) },
        unsafe { ctx.arg(1) },
        NameOp::Create,
    )
}

/// What a rename or link source is checked for: any deny, `exec deny` included, since a new
/// name outside a denied directory would take the object out of the walk.
const MOVE_WANT: u32 = access::ALL | access::EXEC_DENY;

#[lsm(hook = "path_link")]
pub fn path_link(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    // Arguments: (old_dentry, new_dir, new_dentry). A link never crosses mounts (EXDEV before
    // this hook), so the old name is reached through `new_dir`'s mount too.
    let dir: *const u8 = unsafe { ctx.arg(1) };
    // A new name for a covered file outside its denied subtree would escape the walk.
    let source = enforce(
        &sandbox,
        Hook::PathLink,
        dir,
        unsafe { ctx.arg(0) },
        MOVE_WANT,
    );
    if source != 0 {
        return source;
    }
    let target = enforce(
        &sandbox,
        Hook::PathLink,
        dir,
        unsafe { ctx.arg(2) },
        access::WRITE,
    );
    if target != 0 {
        return target;
    }
    enforce_name(
        &sandbox,
        Hook::PathLink,
        unsafe { ctx.arg(2) },
        NameOp::Other,
    )
}

#[lsm(hook = "path_rename")]
pub fn path_rename(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    // Arguments: (old_dir, old_dentry, new_dir, new_dentry, flags). Under `audit all` each
    // side's report carries its path: the old name, then the new one.
    // A directory above a rule keeps its name, as the source and as the replaced target.
    let kept = unsafe {
        kept_name(sandbox.sandbox_id, ctx.arg(1)).and_then(|v| match v {
            Verdict::AllowQuiet => kept_name(sandbox.sandbox_id, ctx.arg(3)),
            deny => Ok(deny),
        })
    };
    let kept = conclude(&sandbox, Hook::PathRename, access::WRITE, kept);
    if kept != 0 {
        return kept;
    }
    // Moving a covered object anywhere (out of its subtree above all) is denied.
    let source = enforce(
        &sandbox,
        Hook::PathRename,
        unsafe { ctx.arg(0) },
        unsafe { ctx.arg(1) },
        MOVE_WANT,
    );
    if source != 0 {
        return source;
    }
    let flags: u32 = unsafe { ctx.arg(4) };
    let target_want = if flags & RENAME_EXCHANGE != 0 {
        access::ALL
    } else {
        access::WRITE
    };
    let target = enforce(
        &sandbox,
        Hook::PathRename,
        unsafe { ctx.arg(2) },
        unsafe { ctx.arg(3) },
        target_want,
    );
    if target != 0 {
        return target;
    }
    // Neither name may be a watched one: the target gets a new object, the source loses its
    // (with RENAME_EXCHANGE, both).
    let new_name = enforce_name(
        &sandbox,
        Hook::PathRename,
        unsafe { ctx.arg(3) },
        NameOp::Other,
    );
    if new_name != 0 {
        return new_name;
    }
    enforce_name(
        &sandbox,
        Hook::PathRename,
        unsafe { ctx.arg(1) },
        NameOp::Other,
    )
}

#[lsm(hook = "path_truncate")]
pub fn path_truncate(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_path(
        &sandbox,
        Hook::PathTruncate,
        unsafe { ctx.arg(0) },
        access::WRITE,
    )
}

#[lsm(hook = "path_chmod")]
pub fn path_chmod(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_path(
        &sandbox,
        Hook::PathChmod,
        unsafe { ctx.arg(0) },
        access::WRITE,
    )
}

#[lsm(hook = "path_chown")]
pub fn path_chown(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    enforce_path(
        &sandbox,
        Hook::PathChown,
        unsafe { ctx.arg(0) },
        access::WRITE,
    )
}

/// `MAY_WRITE` of `inode_permission`'s mask (include/linux/fs.h).
const MAY_WRITE: u32 = 0x2;

/// Write permission on any cgroup2 inode is refused to sandboxed tasks. `file_open` already
/// denies opening cgroupfs files for writing; this hook also covers what opens nothing, above
/// all `clone3(CLONE_INTO_CGROUP)`, which checks write permission on the target's
/// `cgroup.procs` and would otherwise let the agent start a child outside its cgroup.
/// Everything else (lookups, reads) leaves after the sandbox lookup and a mask test.
#[lsm(hook = "inode_permission")]
pub fn inode_permission(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let mask: u32 = unsafe { ctx.arg(1) };
    if mask & MAY_WRITE == 0 {
        return 0;
    }
    let cgroup2_dev = match NONO_CONFIG.get(0) {
        Some(config) if config.cgroup2_dev != 0 => config.cgroup2_dev,
        _ => return 0,
    };
    let inode: *const u8 = unsafe { ctx.arg(0) };
    let dev = unsafe {
        let sb: *const u8 = load(inode, kernel_offset!(inode_sb));
        if sb.is_null() {
            0
        } else {
            load::<u32>(sb, kernel_offset!(sb_dev))
        }
    };
    if dev != cgroup2_dev {
        return 0;
    }
    conclude(
        &sandbox,
        Hook::InodePermission,
        access::WRITE,
        Ok(Verdict::Deny {
            rule_id: nono_common::CGROUPFS_RULE,
            dev,
            ino: 0,
        }),
    )
}

/// The exec check of `file` (a BTF-typed `struct file *`: the binary `execve` runs, or a file
/// mapped executable): an `exec deny` ([`access::EXEC_DENY`]) or a file deny of exec
/// ([`access::EXEC`]) on it or a directory above it denies; with an allowlist, an
/// [`access::EXEC_ALLOW`] entry on it or above it is required. A deny wins over an allow
/// anywhere on the way.
#[inline(always)]
unsafe fn check_exec_file(sandbox: &SandboxInfo, file: *const u8) -> Result<Verdict, i64> {
    if file.is_null() {
        return Err(0);
    }
    let dentry: *const u8 = load(file, kernel_offset!(file_dentry));
    if dentry.is_null() {
        return Err(0);
    }
    let dev = dentry_dev(dentry)?;
    let allowlist = sandbox.flags & SANDBOX_EXEC_ALLOWLIST != 0;
    let no_rule_here = Verdict::Allow {
        rule_id: 0,
        dev,
        ino: 0,
    };
    // Without an allowlist and with no rule on this filesystem there is nothing to walk: the
    // listed rule devices say so without a lookup (this runs for every executable mapping of
    // a sandboxed task, libraries included), the marker when the list can't.
    if !allowlist && rules_on_device(sandbox.sandbox_id, dev) == Some(false) {
        return Ok(no_rule_here);
    }
    let mut key = InodeKey {
        sandbox_id: sandbox.sandbox_id,
        dev,
        ino: 0,
    };
    match device_marker(&key) {
        None if !allowlist => return Ok(no_rule_here),
        Some(Err(poisoned)) => return Ok(poisoned),
        _ => {}
    }
    let mut current = dentry;
    let mut object_ino = 0u64;
    let mut allowed_by = 0u32;
    let mut allowed = false;
    for depth in 0..MAX_PATH_DEPTH {
        let inode: *const u8 = load(current, kernel_offset!(dentry_inode));
        if !inode.is_null() {
            key.ino = load(inode, kernel_offset!(inode_ino));
            if depth == 0 {
                object_ino = key.ino;
            }
            if let Some(rule) = NONO_FS_DENY.get(&key) {
                let rule: FsDeny = *rule;
                if rule.access & (access::EXEC | access::EXEC_DENY) != 0 {
                    return Ok(Verdict::Deny {
                        rule_id: rule.rule_id,
                        dev,
                        ino: key.ino,
                    });
                }
                if rule.access & access::EXEC_ALLOW != 0 && !allowed {
                    allowed = true;
                    allowed_by = rule.rule_id;
                }
            }
        }
        let parent: *const u8 = load(current, kernel_offset!(dentry_parent));
        if parent == current || parent.is_null() {
            return Ok(if allowlist && !allowed {
                // Not on the allowlist: the default deny.
                Verdict::Deny {
                    rule_id: EXEC_DEFAULT_RULE,
                    dev,
                    ino: object_ino,
                }
            } else {
                Verdict::Allow {
                    rule_id: allowed_by,
                    dev,
                    ino: object_ino,
                }
            });
        }
        current = parent;
    }
    Ok(Verdict::Deny {
        rule_id: NO_VERDICT_RULE,
        dev,
        ino: object_ino,
    })
}

/// Rule id of an exec denied because it is not on the allowlist (shown as the default rule).
const EXEC_DEFAULT_RULE: u32 = 0;

/// The exec deny list and allowlist, by the (device, inode) of the binary, and of each
/// interpreter: the kernel runs this hook again for a `#!` script's interpreter and for
/// `binfmt_misc` handlers, so denying `/usr/bin/python3` also denies scripts that name it.
/// File rules bind objects, not contents: a copy of a denied binary is another inode (see the
/// README for what that means and how `exec only` closes it).
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let bprm: *const u8 = unsafe { ctx.arg(0) };
    let verdict = unsafe { check_exec_file(&sandbox, load(bprm, kernel_offset!(binprm_file))) };
    // A deny is reported as an exec record, with the name and arguments of what was refused
    // (see `exec`); an allow as the plain event (`audit all`: the tracepoint then reports the
    // completed exec with its arguments). Each arm sets its own values, as in `verdict`.
    let (mut rule_id, mut dev, mut ino) = (NO_VERDICT_RULE, 0u32, 0u64);
    match verdict {
        Ok(Verdict::Deny {
            rule_id: r,
            dev: d,
            ino: i,
        }) => {
            rule_id = r;
            dev = d;
            ino = i;
        }
        Err(_) => {}
        allowed => return conclude(&sandbox, Hook::BprmCheck, access::EXEC, allowed),
    }
    emit_exec(sandbox.sandbox_id, |s| unsafe {
        exec::fill_denied(s, bprm, rule_id, dev, ino)
    });
    -EPERM
}

/// `PROT_EXEC` (include/uapi/asm-generic/mman-common.h).
const PROT_EXEC: u64 = 0x4;

/// Code mapped from a file is judged like an `execve` of it. The dynamic loader run as a
/// program (`ld.so ./binary`, the loader being on every allowlist) maps a binary with
/// `PROT_EXEC` and runs it without `execve`, so `bprm_check_security` never sees it; the kernel's
/// own ELF loader maps through here too, which the exec check already allowed. Anonymous memory
/// (JITs) has no file and passes. Arguments: `(file, reqprot, prot, flags)`; `prot` is what
/// will be mapped (`reqprot` plus `READ_IMPLIES_EXEC`), both are checked.
#[lsm(hook = "mmap_file")]
pub fn mmap_file(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let file: *const u8 = unsafe { ctx.arg(0) };
    let reqprot: u64 = unsafe { ctx.arg(1) };
    let prot: u64 = unsafe { ctx.arg(2) };
    if file.is_null() || (reqprot | prot) & PROT_EXEC == 0 {
        return 0;
    }
    conclude(&sandbox, Hook::MmapFile, access::EXEC, check_mapping(&sandbox, file))
}

/// The same for a file mapping made executable later (`mprotect(PROT_EXEC)` of a mapping first
/// made readable only). Arguments: `(vma, reqprot, prot)`.
#[lsm(hook = "file_mprotect")]
pub fn file_mprotect(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let vma: *const u8 = unsafe { ctx.arg(0) };
    let reqprot: u64 = unsafe { ctx.arg(1) };
    let prot: u64 = unsafe { ctx.arg(2) };
    if vma.is_null() || (reqprot | prot) & PROT_EXEC == 0 {
        return 0;
    }
    let file: *const u8 = unsafe { load(vma, kernel_offset!(vma_file)) };
    if file.is_null() {
        return 0;
    }
    conclude(&sandbox, Hook::FileMprotect, access::EXEC, check_mapping(&sandbox, file))
}

/// [`check_exec_file`] for an executable mapping; allowed ones are not reported even under
/// `audit all`: every exec maps its libraries, and the exec itself is already reported.
#[inline(always)]
fn check_mapping(sandbox: &SandboxInfo, file: *const u8) -> Result<Verdict, i64> {
    match unsafe { check_exec_file(sandbox, file) } {
        Ok(Verdict::Allow { .. }) => Ok(Verdict::AllowQuiet),
        other => other,
    }
}
