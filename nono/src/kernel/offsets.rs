//! Kernel struct offsets, read from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! aya emits no CO-RE relocations, so a field offset compiled into a program would be right for
//! one kernel only (`file.f_inode` is at 32 on 6.1 and 6.18 but 40 on 6.12). The loader reads
//! every offset the programs use here and sets them as the programs' read-only global
//! `NONO_OFFSETS` before loading them: constants to the verifier, which then checks each field
//! access against this same BTF (see `nono-ebpf/src/fs.rs`).
//!
//! Privileges: none (the BTF file is world-readable).

use anyhow::{bail, Context, Result};
use btf_rs::{Btf, Type};
use nono_common::{KernelOffsets, OFFSET_MASK, TASK_OFFSET_MASK};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The members of the struct `name`, from the first struct of that name with members (the
/// kernel's BTF can also hold forward declarations).
fn find_struct(btf: &Btf, name: &str) -> Result<btf_rs::Struct> {
    let types = btf
        .resolve_types_by_name(name)
        .with_context(|| format!("struct {name} is not in the kernel's BTF"))?;
    types
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })
        .with_context(|| format!("struct {name} has no definition in the kernel's BTF"))
}

/// Byte offset of `field` in `strukt`, looking inside anonymous structs and unions (fields move
/// into those between kernel versions).
fn field_offset_in(btf: &Btf, strukt: &btf_rs::Struct, field: &str) -> Result<Option<u32>> {
    for member in &strukt.members {
        let name = btf.resolve_name(member).unwrap_or_default();
        if name == field {
            if member.bitfield_size().is_some_and(|size| size != 0) {
                bail!("field {field} is a bitfield");
            }
            return Ok(Some(member.bit_offset() / 8));
        }
        if name.is_empty() {
            let inner = btf.resolve_chained_type(member)?;
            if let Type::Struct(s) | Type::Union(s) = inner {
                if let Some(off) = field_offset_in(btf, &s, field)? {
                    return Ok(Some(member.bit_offset() / 8 + off));
                }
            }
        }
    }
    Ok(None)
}

fn field_offset(btf: &Btf, strukt: &str, field: &str) -> Result<u32> {
    field_offset_below(btf, strukt, field, OFFSET_MASK)
}

/// An offset the programs mask with `mask` (larger for `task_struct`).
fn field_offset_below(btf: &Btf, strukt: &str, field: &str, mask: u32) -> Result<u32> {
    let s = find_struct(btf, strukt)?;
    let offset = field_offset_in(btf, &s, field)?
        .with_context(|| format!("struct {strukt} has no field {field} in the kernel's BTF"))?;
    if offset > mask {
        bail!("struct {strukt}.{field} is at offset {offset}, beyond what the programs accept");
    }
    Ok(offset)
}

/// Read every offset the programs need from the running kernel.
pub fn read_kernel_offsets() -> Result<KernelOffsets> {
    let btf = Btf::from_file(VMLINUX_BTF).with_context(|| {
        format!("reading kernel BTF from {VMLINUX_BTF} (CONFIG_DEBUG_INFO_BTF)")
    })?;
    let path_dentry = field_offset(&btf, "path", "dentry")?;
    Ok(KernelOffsets {
        file_dentry: field_offset(&btf, "file", "f_path")? + path_dentry,
        file_mode: field_offset(&btf, "file", "f_mode")?,
        path_dentry,
        dentry_parent: field_offset(&btf, "dentry", "d_parent")?,
        dentry_inode: field_offset(&btf, "dentry", "d_inode")?,
        dentry_sb: field_offset(&btf, "dentry", "d_sb")?,
        inode_ino: field_offset(&btf, "inode", "i_ino")?,
        sb_dev: field_offset(&btf, "super_block", "s_dev")?,
        inode_sb: field_offset(&btf, "inode", "i_sb")?,
        binprm_file: field_offset(&btf, "linux_binprm", "file")?,
        task_cgroups: field_offset_below(&btf, "task_struct", "cgroups", TASK_OFFSET_MASK)?,
        css_set_dfl_cgrp: field_offset(&btf, "css_set", "dfl_cgrp")?,
        cgroup_kn: field_offset(&btf, "cgroup", "kn")?,
        kernfs_node_id: field_offset(&btf, "kernfs_node", "id")?,
        sock_cgroup: field_offset(&btf, "sock", "sk_cgrp_data")?
            + field_offset(&btf, "sock_cgroup_data", "cgroup")?,
        unix_sock_dentry: field_offset(&btf, "unix_sock", "path")? + path_dentry,
        socket_sk: field_offset(&btf, "socket", "sk")?,
        dentry_name_len: field_offset(&btf, "dentry", "d_name")?
            + field_offset(&btf, "qstr", "len")?,
        dentry_name: field_offset(&btf, "dentry", "d_name")? + field_offset(&btf, "qstr", "name")?,
        inode_generation: field_offset(&btf, "inode", "i_generation")?,
        sock_family: field_offset(&btf, "sock", "__sk_common")?
            + field_offset(&btf, "sock_common", "skc_family")?,
        sock_num: field_offset(&btf, "sock", "__sk_common")?
            + field_offset(&btf, "sock_common", "skc_num")?,
        vma_file: field_offset(&btf, "vm_area_struct", "vm_file")?,
        binprm_filename: field_offset(&btf, "linux_binprm", "filename")?,
        task_mm: field_offset_below(&btf, "task_struct", "mm", TASK_OFFSET_MASK)?,
        mm_arg_start: field_offset(&btf, "mm_struct", "arg_start")?,
        mm_arg_end: field_offset(&btf, "mm_struct", "arg_end")?,
        file_mnt: field_offset(&btf, "file", "f_path")? + field_offset(&btf, "path", "mnt")?,
        // `struct mount` is private to fs/ (fs/mount.h) but in the kernel's BTF all the same.
        mount_mnt: field_offset(&btf, "mount", "mnt")?,
        mount_parent: field_offset(&btf, "mount", "mnt_parent")?,
        mount_mountpoint: field_offset(&btf, "mount", "mnt_mountpoint")?,
        vfsmount_root: field_offset(&btf, "vfsmount", "mnt_root")?,
        task_fs: field_offset_below(&btf, "task_struct", "fs", TASK_OFFSET_MASK)?,
        fs_root_mnt: field_offset(&btf, "fs_struct", "root")? + field_offset(&btf, "path", "mnt")?,
        fs_root_dentry: field_offset(&btf, "fs_struct", "root")? + path_dentry,
        path_mnt: field_offset(&btf, "path", "mnt")?,
        // The exec check reads a denied exec's argv through the syscall's saved registers.
        // Only x86_64's are known (the syscall numbers are its own, in `nono-ebpf/src/exec.rs`):
        // elsewhere these stay 0 and the record says the arguments were unreadable, rather than
        // the layer failing to load.
        regs_syscall_nr: syscall_reg(&btf, "orig_ax"),
        regs_execve_argv: syscall_reg(&btf, "si"),
        regs_execveat_argv: syscall_reg(&btf, "dx"),
    })
}

/// The offset of an x86_64 `struct pt_regs` register, or 0 (unknown) on other architectures
/// or if the kernel's BTF lacks it.
fn syscall_reg(btf: &Btf, reg: &str) -> u32 {
    if !cfg!(target_arch = "x86_64") {
        return 0;
    }
    field_offset(btf, "pt_regs", reg).unwrap_or(0)
}

/// Where the directory verdict cache (`nono-ebpf/src/cache.rs`) reads `rename_lock`'s sequence
/// count, or `None` (the cache stays off): the symbol's address from `/proc/kallsyms` (listed
/// with `CONFIG_KALLSYMS_ALL`; root sees real addresses), and the BTF saying the count is the
/// first word of it (`seqlock_t` starts with a `seqcount_spinlock_t`, whose `seqcount_t`
/// starts with `sequence`).
pub fn rename_seq_address() -> Option<u64> {
    let btf = Btf::from_file(VMLINUX_BTF).ok()?;
    if field_offset(&btf, "seqcount", "sequence").ok()? != 0
        || field_offset(&btf, "seqcount_spinlock", "seqcount").ok()? != 0
    {
        return None;
    }
    let symbols = std::fs::read_to_string("/proc/kallsyms").ok()?;
    symbols.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let address = words.next()?;
        let _kind = words.next()?;
        (words.next()? == "rename_lock" && words.next().is_none())
            .then(|| u64::from_str_radix(address, 16).ok())
            .flatten()
            .filter(|&a| a != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_kernels_offsets() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            return; // no BTF on this machine: nothing to read
        }
        let o = read_kernel_offsets().expect("offsets");
        // `struct path` is { vfsmount *mnt; dentry *dentry; } on every kernel nono supports.
        assert_eq!(o.path_dentry, 8);
        assert!(o.file_dentry > 0 && o.dentry_parent > 0 && o.dentry_inode > 0);
        // `struct qstr` is { union { { u32 hash; u32 len; }; u64 hash_len; }; name; } on
        // little-endian: the name pointer follows the length.
        assert_eq!(o.dentry_name, o.dentry_name_len + 4);
        // `arg_end` follows `arg_start` (both `unsigned long`).
        assert_eq!(o.mm_arg_end, o.mm_arg_start + 8);
    }
}
