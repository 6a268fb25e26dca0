//! The path of the file a decision is about, for the report of a file hook under `audit all`
//! (a [`nono_common::PathRecord`]): the name `file_open` opened, and the name each path hook
//! (`path_unlink`, `path_mkdir`, `path_rename`'s old and new names, `path_truncate`,
//! `path_chmod`, ...) acts on. The decision itself never looks at names: rules bind inodes
//! (see `fs`). This only says, in the audit trail, which name the sandbox used.
//!
//! A path hook gets the object's dentry and a `struct path` with the mount it is reached
//! through: the object's own (`path_truncate`), or its directory's (`path_unlink(dir,
//! dentry)`; a link or rename never crosses mounts, so one directory's mount serves both
//! names). A name being created is a negative dentry whose `d_name` and `d_parent` are already
//! set, so the walk is the same.
//!
//! The walk is the kernel's own `d_path` done by hand, and best effort: from the file's dentry
//! up its `d_parent` chain, writing each `d_name`, to the root dentry of the mount the file was
//! opened through (`vfsmount.mnt_root`, a subdirectory for a bind mount); then on from the
//! dentry that mount covers (`mount.mnt_mountpoint`) in its parent mount (`mount.mnt_parent`),
//! until the task's root directory (`current->fs->root`: its `chroot`, as `d_path` and
//! `/proc/PID/fd` show paths) or, failing that, a mount that is its own parent (the root of
//! the mount namespace). A concurrent rename
//! can give a name that was never whole; a name that can't be read, or a path deeper or longer
//! than the record holds, stops the walk and flags the record as cut.
//!
//! Kernel assumptions: `struct mount` embeds the `struct vfsmount` a `path.mnt` (a file's
//! `f_path.mnt`) points to (so `container_of` with the BTF offset of `mount.mnt` finds it), the same in 6.1
//! and 6.12; the offsets come from the running kernel's BTF. Every field is read with
//! `bpf_probe_read_kernel` (the pointers are plain numbers to the verifier after
//! `container_of`), names with `bpf_probe_read_kernel_str`. Only runs for a sandbox with `audit
//! all`; needs nothing beyond what loading the LSM programs needs (CAP_BPF + CAP_PERFMON).

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel, gen};
use nono_common::{
    FILE_PATH_CUT, FILE_PATH_LEN, FILE_PATH_NAME_READ, FILE_PATH_STEPS, TASK_OFFSET_MASK,
};

use crate::{events::PathScratch, fs::read_at, kernel_offset};

/// The pointer at `addr + offset` (kernel memory), as a number.
#[inline(always)]
unsafe fn read_ptr(addr: u64, offset: u32) -> Result<u64, i64> {
    read_at::<u64>(addr as *const u8, offset)
}

/// The current task's root directory: its `fs_struct.root` (vfsmount, dentry).
#[inline(always)]
unsafe fn task_root() -> (u64, u64) {
    let task = bpf_get_current_task();
    let fs = bpf_probe_read_kernel(
        (task + (kernel_offset!(task_fs) & TASK_OFFSET_MASK) as u64) as *const u64,
    )
    .unwrap_or(0);
    if fs == 0 {
        return (0, 0);
    }
    (
        read_ptr(fs, kernel_offset!(fs_root_mnt)).unwrap_or(0),
        read_ptr(fs, kernel_offset!(fs_root_dentry)).unwrap_or(0),
    )
}

/// The flags of a walk that reached the root having written `pos` bytes: cut if the last
/// name ran past the record's end.
#[inline(always)]
fn whole(pos: u32) -> u32 {
    if pos > FILE_PATH_LEN as u32 {
        FILE_PATH_CUT
    } else {
        0
    }
}

/// Fill `s.record`'s path (leaf first, each name NUL-terminated), its length and flags, for
/// `file`, a BTF-typed `struct file *`.
#[inline(always)]
pub(crate) unsafe fn fill(s: &mut PathScratch, file: *const u8) {
    if file.is_null() {
        s.record.flags = FILE_PATH_CUT;
        s.record.path_len = 0;
        return;
    }
    let file = file as u64;
    let vfsmnt = read_ptr(file, kernel_offset!(file_mnt)).unwrap_or(0);
    let dentry = read_ptr(file, kernel_offset!(file_dentry)).unwrap_or(0);
    fill_from(s, vfsmnt, dentry);
}

/// The same for `dentry` (a BTF-typed `struct dentry *`: the object of a path hook, or the
/// name it creates, negative until then) reached through the mount of `at` (a BTF-typed
/// `struct path *`: the object's own or its directory's).
#[inline(always)]
pub(crate) unsafe fn fill_at(s: &mut PathScratch, at: *const u8, dentry: *const u8) {
    let vfsmnt = if at.is_null() {
        0
    } else {
        read_ptr(at as u64, kernel_offset!(path_mnt)).unwrap_or(0)
    };
    // Read as a number, like every pointer the walk follows: compared and offset only.
    let mut dentry_addr = 0u64;
    if !dentry.is_null() {
        let slot = dentry;
        dentry_addr = bpf_probe_read_kernel(&slot as *const *const u8 as *const u64).unwrap_or(0);
    }
    fill_from(s, vfsmnt, dentry_addr);
}

#[inline(always)]
unsafe fn fill_from(s: &mut PathScratch, vfsmnt: u64, dentry: u64) {
    s.record.flags = FILE_PATH_CUT;
    s.record.path_len = 0;
    if vfsmnt == 0 || dentry == 0 {
        return;
    }
    let Ok(pos) = walk(s, vfsmnt, dentry) else {
        s.record.flags = FILE_PATH_CUT;
        return;
    };
    s.record.path_len = pos;
}

/// The walk; returns how many bytes of the path it wrote and clears the cut flag if it reached
/// the root.
#[inline(always)]
unsafe fn walk(s: &mut PathScratch, vfsmnt: u64, mut dentry: u64) -> Result<u32, i64> {
    // container_of(vfsmnt, struct mount, mnt)
    let mut mount = vfsmnt - kernel_offset!(mount_mnt) as u64;
    let mut mnt_root = read_ptr(vfsmnt, kernel_offset!(vfsmount_root))?;
    // The task's root: (0, 0), matching nothing, if it can't be read.
    let (root_mnt, root_dentry) = task_root();
    let mut pos: u32 = 0;
    for _ in 0..FILE_PATH_STEPS {
        if dentry == root_dentry && mount + kernel_offset!(mount_mnt) as u64 == root_mnt {
            s.record.flags = whole(pos);
            return Ok(pos);
        }
        if dentry == mnt_root {
            let parent = read_ptr(mount, kernel_offset!(mount_parent))?;
            if parent == mount || parent == 0 {
                // The root of the mount namespace: the path is whole, if it fit.
                s.record.flags = whole(pos);
                return Ok(pos);
            }
            dentry = read_ptr(mount, kernel_offset!(mount_mountpoint))?;
            mount = parent;
            mnt_root = read_ptr(
                mount + kernel_offset!(mount_mnt) as u64,
                kernel_offset!(vfsmount_root),
            )?;
            continue;
        }
        let parent = read_ptr(dentry, kernel_offset!(dentry_parent))?;
        if parent == dentry || parent == 0 {
            // A filesystem root that is not its mount's root: a mount no longer attached
            // (lazily unmounted) or an internal one. What was written is all there is.
            s.record.flags = whole(pos);
            return Ok(pos);
        }
        if pos >= FILE_PATH_LEN as u32 {
            return Ok(pos);
        }
        let name = read_ptr(dentry, kernel_offset!(dentry_name))?;
        // Masked for the verifier (a no-op: `pos` is below FILE_PATH_LEN here); the slack
        // after the path holds a name that runs past its end. Read back volatile so that the
        // compiler, which knows the no-op, keeps the mask: the verifier does not carry the
        // comparison above over to the copy of `pos` it would use instead.
        let at = (core::ptr::read_volatile(&pos) & (FILE_PATH_LEN as u32 - 1)) as usize;
        let copied = gen::bpf_probe_read_kernel_str(
            s.record.path.as_mut_ptr().add(at) as *mut c_void,
            FILE_PATH_NAME_READ as u32,
            name as *const c_void,
        );
        if copied <= 0 {
            return Ok(pos);
        }
        pos += copied as u32 & (2 * FILE_PATH_NAME_READ as u32 - 1);
        dentry = parent;
    }
    Ok(pos)
}
