//! The `#[repr(C)]` types nono's eBPF programs (`nono-ebpf`) and their userspace loader
//! (`nono::kernel`) share: map keys and values, the event record, and constants.
//!
//! Both halves compile this crate: the kernel half for `bpfel-unknown-none` (`no_std`, no
//! features), the userspace half with the `user` feature, which adds the `aya::Pod` impls the
//! loader needs to put these types in maps. Every type has an explicit layout without implicit
//! padding, so the two compilers agree on it byte for byte.
#![no_std]

/// Names of the maps and programs, so the loader never spells them differently from the
/// `#[map]`/`#[lsm]` items in `nono-ebpf`.
pub mod names {
    pub const SANDBOXES: &str = "NONO_SANDBOXES";
    pub const FS_DENY: &str = "NONO_FS_DENY";
    pub const NET_RULES_V4: &str = "NONO_NET_V4";
    pub const NET_RULES_V6: &str = "NONO_NET_V6";
    pub const CONFIG: &str = "NONO_CONFIG";
    /// The programs' read-only global holding the [`super::KernelOffsets`], set before load.
    pub const OFFSETS: &str = "NONO_OFFSETS";
    pub const ACTIVE: &str = "NONO_ACTIVE";
    pub const CGROUP_FILTER: &str = "NONO_CGROUP_FILTER";
    /// Per event slot, the filesystems its sandbox has file rules on (see
    /// [`super::RuleDevices`]).
    pub const RULE_DEVICES: &str = "NONO_RULE_DEVICES";
    /// The event ring buffers, one per event slot (see [`super::EVENT_SLOTS`]), indexed by
    /// slot.
    pub const EVENT_RINGS: [&str; super::EVENT_SLOTS as usize] = [
        "NONO_EVENTS_0",
        "NONO_EVENTS_1",
        "NONO_EVENTS_2",
        "NONO_EVENTS_3",
        "NONO_EVENTS_4",
        "NONO_EVENTS_5",
        "NONO_EVENTS_6",
        "NONO_EVENTS_7",
        "NONO_EVENTS_8",
        "NONO_EVENTS_9",
        "NONO_EVENTS_10",
        "NONO_EVENTS_11",
        "NONO_EVENTS_12",
        "NONO_EVENTS_13",
        "NONO_EVENTS_14",
        "NONO_EVENTS_15",
    ];
    /// Per CPU, per event slot: events that did not fit in that slot's ring buffer.
    pub const DROPPED: &str = "NONO_DROPPED";
    pub const DNS_REDIRECT: &str = "NONO_DNS";
    pub const DNS_ORIGINAL: &str = "NONO_DNS_ORIG";
    pub const FS_WATCH: &str = "NONO_FS_WATCH";
    pub const FS_WATCH_NEXT: &str = "NONO_FS_WATCH_NEXT";
    pub const FS_WATCHERS: &str = "NONO_FS_WATCHERS";
    pub const FS_CACHE: &str = "NONO_FS_CACHE";
    pub const FS_GEN: &str = "NONO_FS_GEN";
    /// The BTF tracepoint program reporting a sandboxed task's completed exec (binary and
    /// argv, see [`super::ExecRecord`]); named after the tracepoint it attaches to.
    pub const EXEC_TRACEPOINT: &str = "sched_process_exec";
}

/// How many sandboxes can run at once, each with an event stream of its own: the programs
/// write a sandbox's events to ring buffer [`event_slot`]`(sandbox_id)` and count what does not
/// fit in entry `event_slot(sandbox_id)` of the drop counter, so no reader ever sees (or takes
/// away) another sandbox's events. aya 0.13 has no map-of-maps, hence a fixed pool.
pub const EVENT_SLOTS: u32 = 16;

/// Bytes of each event ring buffer (a power of two, at least a page). 1 MiB, the size of the
/// single ring all sandboxes shared before, so no session buffers less than it did: about
/// 11,900 events (80 bytes plus an 8-byte header each). The 16 rings take 16 MiB of kernel
/// memory, allocated once when the programs are loaded.
pub const EVENT_RING_BYTES: u32 = 1 << 20;

/// The event slot of a sandbox: the low bits of its id. The loader picks each new sandbox's id
/// so that its slot is claimed by no other live sandbox; the id keys every other map, so the
/// programs need nothing beyond the id they already have to find the ring.
#[inline(always)]
pub const fn event_slot(sandbox_id: u32) -> u32 {
    sandbox_id & (EVENT_SLOTS - 1)
}

/// The destination port the DNS redirect rewrites (UDP and TCP).
pub const DNS_PORT: u16 = 53;

/// Value of the DNS redirect map (sandbox id -> nono's resolver for that sandbox): connects
/// and UDP sends of the sandbox to port 53 go here instead. IPv4 destinations and IPv4-mapped
/// IPv6 ones (a dual-stack socket asking an IPv4 server) go to `addr:port`; native IPv6 ones to
/// `addr6:port6`, or are left to the rules (denied) when `port6` is 0 (no IPv6 loopback).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsRedirect {
    /// Network byte order.
    pub addr: [u8; 4],
    /// Host byte order.
    pub port: u16,
    pub _pad: u16,
    /// Network byte order.
    pub addr6: [u8; 16],
    /// Host byte order; 0: no IPv6 resolver.
    pub port6: u16,
    pub _pad6: u16,
}

/// Value of the original-destination map (socket cookie -> where the program meant to send),
/// so a reply from the resolver is shown to come from the server it asked.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsOriginal {
    /// Network byte order; an IPv4 socket's address is in the first 4 bytes.
    pub addr: [u8; 16],
    /// Network byte order, as in `bpf_sock_addr.user_port`.
    pub port: u16,
    pub _pad: u16,
}

/// How many `d_parent` steps the file hooks walk looking for a denied ancestor. A deny on a
/// directory covers everything at most this deep below its filesystem's root; a sandboxed access
/// to anything deeper on a filesystem that carries rules is denied with [`NO_VERDICT_RULE`]
/// (fail closed), never allowed unchecked.
pub const MAX_PATH_DEPTH: u32 = 64;

/// Rule id reported when a program could not reach a verdict and denied: the object lies deeper
/// than [`MAX_PATH_DEPTH`], kernel memory could not be read, or the offsets were not loaded.
/// Not a policy rule.
pub const NO_VERDICT_RULE: u32 = u32::MAX;
/// Rule id of the deny the loader adds to every sandbox for writes to the cgroup2 filesystem,
/// so the agent can neither leave its cgroup nor create or configure cgroups.
pub const CGROUPFS_RULE: u32 = u32::MAX - 1;
/// Rule id used in network events when no rule matched (the default deny).
pub const NET_DEFAULT_RULE: u32 = 0;
/// Rule id of the kernel layer's built-in process rules, in every sandbox: no signal or ptrace
/// access to a task outside the sandbox, no BPF, no kernel module or kexec loading.
pub const ISOLATION_RULE: u32 = u32::MAX - 2;

/// Access bits of a deny rule; they mirror `nono_policy::ir::Access` (read 1, write 2, exec 4).
pub mod access {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXEC: u32 = 4;
    pub const ALL: u32 = READ | WRITE | EXEC;
    /// Not a deny: marks an entry of the `exec only` allowlist in the file map. Only the exec
    /// check reads it; the file hooks test their wanted bits, which never include it.
    pub const EXEC_ALLOW: u32 = 8;
    /// An `exec deny` entry: checked by the exec check only, so reading the binary stays
    /// allowed (a file deny of exec, [`EXEC`], is also checked by `file_open`).
    pub const EXEC_DENY: u32 = 16;
    /// Not a deny: a path unix socket the profile lets the sandbox connect to (`ipc
    /// unix-socket`), on the socket file or a directory above it. Only the unix hooks read it.
    pub const UNIX_ALLOW: u32 = 32;
    /// Not a deny of access: a directory above a deny's object, or above a watched name, on
    /// the same filesystem. It keeps its name: renamed (or replaced, or exchanged), it would
    /// leave the old name free for a new directory that none of the rules below it bind. Only
    /// `path_rename` reads it, on the exact object; the walks' wanted bits never include it.
    pub const KEEP_NAME: u32 = 64;
    /// Only on a device marker (`ino = 0`): the programs failed to bind an object that
    /// appeared under a watched name on this device (the deny map was full), so every access of
    /// this sandbox on this device is denied ([`super::NO_VERDICT_RULE`]): fail closed.
    pub const POISONED: u32 = 1 << 31;
}

/// Words of the registered-cgroup filter, a bitmap of [`CGROUP_FILTER_WORDS`] x 64 bits (entry
/// `i` of the `NONO_CGROUP_FILTER` array map is word `i`). The bit of every cgroup id in the
/// sandbox map is set (the loader sets it before it registers the cgroup and recomputes the
/// words from the map after every change); so a clear bit proves the id is not registered, and
/// the programs answer "outside every sandbox" with one array load instead of a hash lookup.
/// A bit set for nothing (two ids sharing it, a recount still to come) only costs the lookup.
pub const CGROUP_FILTER_WORDS: u32 = 64;

/// The filter word and bit of a cgroup id: its low 12 bits. Cgroup ids are kernfs inode
/// numbers, handed out in sequence, so the few registered ids rarely share a bit with the
/// cgroup of a task outside.
#[inline(always)]
pub const fn cgroup_filter_bit(cgroup_id: u64) -> (u32, u64) {
    (
        (cgroup_id >> 6) as u32 & (CGROUP_FILTER_WORDS - 1),
        1 << (cgroup_id & 63),
    )
}

/// Value of the sandbox map, keyed by cgroup v2 id (`u64`, the cgroup directory's inode).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SandboxInfo {
    /// Non-zero, unique among live sandboxes; keys every rule map.
    pub sandbox_id: u32,
    /// `SANDBOX_*` flags.
    pub flags: u32,
}

/// The sandbox has name watches ([`NameKey`]): its create, rename and link hooks look the new
/// name up.
pub const SANDBOX_HAS_WATCHES: u32 = 4;

/// Longest name (one path component, in bytes) a name watch can hold; the key holds it
/// NUL-padded, so it can be at most `WATCH_NAME_LEN - 1` bytes long. Longer components can't be
/// watched and their rules stay unbound (reported; the run refuses as before).
pub const WATCH_NAME_LEN: usize = 64;

/// How many sandboxes can hold name watches at once: the slots of [`names::FS_WATCHERS`], which
/// the creation hooks scan. A sandbox that finds no free slot leaves its rules on missing paths
/// unbound (reported).
pub const MAX_WATCHERS: u32 = 16;

/// Key of the name-watch map: a directory entry that does not exist yet (or may be replaced)
/// and is named by a deny rule of one sandbox, as (device, inode of the directory it would
/// appear in, its name). When an entry of that name appears in that directory -- created,
/// renamed or linked there, by any process -- the programs bind the new object at once, before
/// the new name is visible (see `nono-ebpf/src/watch.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub sandbox_id: u32,
    /// Kernel `dev_t` of the directory.
    pub dev: u32,
    pub parent_ino: u64,
    /// The name's bytes, NUL-padded.
    pub name: [u8; WATCH_NAME_LEN],
}

/// Value of the name-watch map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameWatch {
    /// The rule reported, and its `access::*` bits, for what gets bound under this name.
    pub rule_id: u32,
    pub access: u32,
    /// 0: the name is a rule's object; bind what appears with `access`. Otherwise the name is a
    /// missing directory above rules' objects, and this is the index of the first component
    /// below it in the template map (under this sandbox); its siblings follow by
    /// [`NameTemplate::sibling`]. When the directory is created, each of them is watched in it.
    pub child: u32,
    pub _pad: u32,
}

/// How many components below one missing directory the programs watch when it is created (the
/// siblings a template chain may have). More rules under one missing directory stay unbound.
pub const MAX_WATCH_SIBLINGS: u32 = 8;

/// Key of the template map: (sandbox, index) of one missing component below a watched one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub sandbox_id: u32,
    pub index: u32,
}

/// Value of the template map: one missing component, the watch it becomes when its parent
/// directory appears, and the next component under the same parent (0: none).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameTemplate {
    pub rule_id: u32,
    pub access: u32,
    pub child: u32,
    pub sibling: u32,
    pub name: [u8; WATCH_NAME_LEN],
}

/// Report allowed accesses too, not only denies (the profile's `audit all`).
pub const SANDBOX_AUDIT_ALL: u32 = 1;
/// The profile has an exec allowlist (`exec only`): `bprm_check_security` lets a binary run only
/// if it, or a directory above it, carries an [`access::EXEC_ALLOW`] entry.
pub const SANDBOX_EXEC_ALLOWLIST: u32 = 2;

/// Key of the file deny map: one object (or subtree root) denied to one sandbox.
///
/// `dev` is the kernel's internal `dev_t` (`super_block.s_dev`, `MAJOR << 20 | MINOR`), which is
/// *not* the `st_dev` encoding userspace sees; the loader converts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub sandbox_id: u32,
    pub dev: u32,
    pub ino: u64,
}

/// How many filesystems with file rules one sandbox can list in its [`RuleDevices`].
pub const LISTED_RULE_DEVICES: usize = 6;

/// `RuleDevices::count` of a sandbox with rules on more filesystems than the list holds: the
/// file hooks then look the device marker up, as for a sandbox without an entry.
pub const RULE_DEVICES_UNLISTED: u32 = u32::MAX;

/// Entry `event_slot(sandbox_id)` of the rule-device array: the filesystems on which the sandbox
/// has a device marker (an [`InodeKey`] with `ino = 0`), so the file hooks tell "no rule of this
/// sandbox on this filesystem" (`/proc`, `/dev`, ...) from a few compares instead of a marker
/// lookup. The loader writes it before it registers the sandbox's cgroup and never changes it
/// while the sandbox runs (only the loader adds markers, all before registration). An entry
/// whose `sandbox_id` is not the sandbox's (a previous holder of the slot) says nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleDevices {
    pub sandbox_id: u32,
    /// How many of `devs` are filled, or [`RULE_DEVICES_UNLISTED`].
    pub count: u32,
    /// Kernel `dev_t`s.
    pub devs: [u32; LISTED_RULE_DEVICES],
}

/// Value of the file deny map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsDeny {
    /// The policy rule (`RuleId`), reported in events.
    pub rule_id: u32,
    /// `access::*` bits this rule denies.
    pub access: u32,
}

/// Key of the network rule LPM tries (one per address family). The first 64 bits after the
/// prefix length are always matched in full (sandbox id, protocol, port), so a lookup only
/// finds rules of its own sandbox, protocol and port; the address is the prefix-matched tail.
///
/// The programs look up the exact destination port first, then `port = 0`, whose value carries a
/// port range (wide ranges and "any port"); short ranges are expanded into exact entries. See
/// `nono::kernel::net`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetKey<const N: usize> {
    pub sandbox_id: u32,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub protocol: u16,
    /// Host byte order; 0 means any port.
    pub port: u16,
    /// Network byte order, as in `sockaddr_in{,6}`.
    pub addr: [u8; N],
}

pub type NetKeyV4 = NetKey<4>;
pub type NetKeyV6 = NetKey<16>;

/// Bits of the LPM key that precede the address and are always matched exactly.
pub const NET_KEY_FIXED_BITS: u32 = 64;

/// Value of the network rule tries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetAllow {
    pub rule_id: u32,
    /// For entries keyed with `port = 0`: the inclusive port range the rule allows (`0..=65535`
    /// for any port). Exact-port entries repeat their port here.
    pub port_lo: u16,
    pub port_hi: u16,
    /// `NET_*` direction bits this rule allows.
    pub direction: u32,
    pub _pad: u32,
    /// Monotonic ns after which the entry no longer counts; 0 means never. Lets the domain
    /// resolver insert addresses with the DNS TTL without a sweeper racing the programs.
    pub expires_ns: u64,
}

pub const NET_CONNECT: u32 = 1;
pub const NET_BIND: u32 = 2;

/// Kernel struct field offsets, read from the running kernel's BTF by the loader (aya has no
/// CO-RE) and set as the programs' read-only global `NONO_OFFSETS` before they are loaded
/// (`EbpfLoader::set_global`). The verifier reads a frozen read-only map as constants, so
/// `ptr + offset` on a BTF-typed pointer has a known offset and the field is loaded directly
/// (a `BPF_PROBE_MEM` load the verifier checks against the running kernel's BTF), with no helper
/// call. The programs are loaded once per boot, so constants fixed at load are always right.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `file.f_path` + `path.dentry`.
    pub file_dentry: u32,
    /// `file.f_mode` (a `fmode_t`, 32 bits).
    pub file_mode: u32,
    /// `path.dentry`.
    pub path_dentry: u32,
    /// `dentry.d_parent`.
    pub dentry_parent: u32,
    /// `dentry.d_inode`.
    pub dentry_inode: u32,
    /// `dentry.d_sb`.
    pub dentry_sb: u32,
    /// `inode.i_ino`.
    pub inode_ino: u32,
    /// `super_block.s_dev`.
    pub sb_dev: u32,
    /// `inode.i_sb`.
    pub inode_sb: u32,
    /// `linux_binprm.file`.
    pub binprm_file: u32,
    /// `task_struct.cgroups` (a `css_set *`), at most [`TASK_OFFSET_MASK`].
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp` (the task's cgroup v2).
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn`.
    pub cgroup_kn: u32,
    /// `kernfs_node.id`: the cgroup id `bpf_get_current_cgroup_id` returns.
    pub kernfs_node_id: u32,
    /// `sock.sk_cgrp_data` + `sock_cgroup_data.cgroup`: the cgroup of the task that created
    /// the socket.
    pub sock_cgroup: u32,
    /// `unix_sock.path` + `path.dentry`: the socket file of a bound path unix socket.
    pub unix_sock_dentry: u32,
    /// `socket.sk`.
    pub socket_sk: u32,
    /// `dentry.d_name` + `qstr.len`: the length of a dentry's name.
    pub dentry_name_len: u32,
    /// `dentry.d_name` + `qstr.name`: the pointer to a dentry's NUL-terminated name.
    pub dentry_name: u32,
    /// `inode.i_generation`: tells a reused inode number from the directory a cache entry was
    /// made for.
    pub inode_generation: u32,
    /// `sock.__sk_common` + `sock_common.skc_family`: the socket's address family.
    pub sock_family: u32,
    /// `sock.__sk_common` + `sock_common.skc_num`: the bound local port (host order), 0 while
    /// an inet socket is unbound.
    pub sock_num: u32,
    /// `vm_area_struct.vm_file`: the file a mapping maps, null for anonymous memory.
    pub vma_file: u32,
    /// `linux_binprm.filename`: the name `execve` was given (a `const char *`).
    pub binprm_filename: u32,
    /// `task_struct.mm`, at most [`TASK_OFFSET_MASK`].
    pub task_mm: u32,
    /// `mm_struct.arg_start` and `mm_struct.arg_end`: the NUL-separated argument strings on
    /// the new program's stack (user memory).
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `file.f_path` + `path.mnt`: the `struct vfsmount *` a file was opened through.
    pub file_mnt: u32,
    /// `mount.mnt`: where the `struct vfsmount` lies inside its `struct mount` (container_of).
    pub mount_mnt: u32,
    /// `mount.mnt_parent`: the mount this one is mounted on (itself at the root).
    pub mount_parent: u32,
    /// `mount.mnt_mountpoint`: the dentry this mount covers, in its parent mount.
    pub mount_mountpoint: u32,
    /// `vfsmount.mnt_root`: the root dentry of the mount (not the filesystem's, for a bind
    /// mount of a subdirectory).
    pub vfsmount_root: u32,
    /// `task_struct.fs`, at most [`TASK_OFFSET_MASK`].
    pub task_fs: u32,
    /// `fs_struct.root` + `path.mnt` and + `path.dentry`: the task's root directory (its
    /// `chroot`), where the path walk stops.
    pub fs_root_mnt: u32,
    pub fs_root_dentry: u32,
    /// `path.mnt`: the mount of a `struct path` a hook receives (`path_unlink`'s directory).
    pub path_mnt: u32,
    /// `pt_regs.orig_ax`, `.si` and `.dx` (x86_64): the syscall number and the registers of
    /// `execve`'s and `execveat`'s argv pointers, saved at syscall entry. 0 (unknown) on
    /// other architectures: a denied exec's record then has no arguments.
    pub regs_syscall_nr: u32,
    pub regs_execve_argv: u32,
    pub regs_execveat_argv: u32,
}

impl KernelOffsets {
    /// What the eBPF object carries until the loader sets the real offsets.
    pub const UNSET: KernelOffsets = KernelOffsets {
        file_dentry: 0,
        file_mode: 0,
        path_dentry: 0,
        dentry_parent: 0,
        dentry_inode: 0,
        dentry_sb: 0,
        inode_ino: 0,
        sb_dev: 0,
        inode_sb: 0,
        binprm_file: 0,
        task_cgroups: 0,
        css_set_dfl_cgrp: 0,
        cgroup_kn: 0,
        kernfs_node_id: 0,
        sock_cgroup: 0,
        unix_sock_dentry: 0,
        socket_sk: 0,
        dentry_name_len: 0,
        dentry_name: 0,
        inode_generation: 0,
        sock_family: 0,
        sock_num: 0,
        vma_file: 0,
        binprm_filename: 0,
        task_mm: 0,
        mm_arg_start: 0,
        mm_arg_end: 0,
        file_mnt: 0,
        mount_mnt: 0,
        mount_parent: 0,
        mount_mountpoint: 0,
        vfsmount_root: 0,
        task_fs: 0,
        fs_root_mnt: 0,
        fs_root_dentry: 0,
        path_mnt: 0,
        regs_syscall_nr: 0,
        regs_execve_argv: 0,
        regs_execveat_argv: 0,
    };
}

/// The entry of the config array map: what the loader learns per boot besides the offsets, and
/// the one switch that changes at run time. Plain values, read with a map load (no helper).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerConfig {
    /// Kernel `dev_t` of the cgroup2 filesystem (per boot, not per kernel build): sandboxed
    /// tasks may not write anything there. 0 until the loader has written this entry.
    pub cgroup2_dev: u32,
    /// Non-zero: the file hooks may use the directory verdict cache (see [`FsCache`]). The
    /// loader sets it when it found `rename_seq`; `nono kernel-cache off` clears it (benchmark).
    pub cache_enabled: u32,
    /// Kernel address of `rename_lock`'s sequence count (from `/proc/kallsyms`), which every
    /// change of any dentry's parent (rename, exchange, alias splice) bumps; 0: unknown, and
    /// the cache stays off.
    pub rename_seq: u64,
}

/// Value of the directory verdict cache, keyed by the [`InodeKey`] of a directory: when the
/// entry was made, neither that directory nor any directory above it carried a file rule of the
/// sandbox. It counts only while all three still hold: the rule generation (bumped whenever the
/// programs add a rule), the `rename_lock` sequence (any rename anywhere moves it), and the
/// directory's `i_generation` (a reused inode number has another). Only "nothing above" is
/// cached, never a deny, and only for directories (a file may have other names).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsCache {
    pub rule_gen: u64,
    pub rename_seq: u32,
    pub i_generation: u32,
}

/// `task_struct` is larger than the other structs: its offsets may go up to this.
pub const TASK_OFFSET_MASK: u32 = 0x7fff;

/// Every other kernel offset is below this. The programs mask the offsets they pass to
/// `bpf_probe_read_kernel` with it (harmless on constants), and the loader refuses a kernel
/// whose struct layout puts a field beyond it.
pub const OFFSET_MASK: u32 = 0xfff;

/// Which hook produced an event.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    FileOpen = 1,
    PathUnlink = 2,
    PathRmdir = 3,
    PathRename = 4,
    PathLink = 5,
    PathTruncate = 6,
    PathChmod = 7,
    PathChown = 8,
    PathMknod = 9,
    PathMkdir = 10,
    PathSymlink = 11,
    InodePermission = 12,
    BprmCheck = 13,
    TaskKill = 14,
    PtraceAccessCheck = 15,
    Bpf = 16,
    KernelReadFile = 17,
    KernelLoadData = 18,
    KernelModuleRequest = 19,
    UnixStreamConnect = 30,
    UnixMaySend = 31,
    DInstantiate = 32,
    InodeRename = 33,
    InodeLink = 34,
    SocketListen = 35,
    MmapFile = 36,
    FileMprotect = 37,
    PathNotify = 38,
    Connect4 = 20,
    Connect6 = 21,
    Sendmsg4 = 22,
    Sendmsg6 = 23,
    Bind4 = 24,
    Bind6 = 25,
}

impl Hook {
    pub fn from_u16(v: u16) -> Option<Hook> {
        use Hook::*;
        Some(match v {
            1 => FileOpen,
            2 => PathUnlink,
            3 => PathRmdir,
            4 => PathRename,
            5 => PathLink,
            6 => PathTruncate,
            7 => PathChmod,
            8 => PathChown,
            9 => PathMknod,
            10 => PathMkdir,
            11 => PathSymlink,
            12 => InodePermission,
            13 => BprmCheck,
            14 => TaskKill,
            15 => PtraceAccessCheck,
            16 => Bpf,
            17 => KernelReadFile,
            18 => KernelLoadData,
            19 => KernelModuleRequest,
            30 => UnixStreamConnect,
            31 => UnixMaySend,
            32 => DInstantiate,
            33 => InodeRename,
            34 => InodeLink,
            35 => SocketListen,
            36 => MmapFile,
            37 => FileMprotect,
            38 => PathNotify,
            20 => Connect4,
            21 => Connect6,
            22 => Sendmsg4,
            23 => Sendmsg6,
            24 => Bind4,
            25 => Bind6,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Hook::*;
        match self {
            FileOpen => "file_open",
            PathUnlink => "path_unlink",
            PathRmdir => "path_rmdir",
            PathRename => "path_rename",
            PathLink => "path_link",
            PathTruncate => "path_truncate",
            PathChmod => "path_chmod",
            PathChown => "path_chown",
            PathMknod => "path_mknod",
            PathMkdir => "path_mkdir",
            PathSymlink => "path_symlink",
            InodePermission => "inode_permission",
            BprmCheck => "bprm_check_security",
            TaskKill => "task_kill",
            PtraceAccessCheck => "ptrace_access_check",
            Bpf => "bpf",
            KernelReadFile => "kernel_read_file",
            KernelLoadData => "kernel_load_data",
            KernelModuleRequest => "kernel_module_request",
            UnixStreamConnect => "unix_stream_connect",
            UnixMaySend => "unix_may_send",
            DInstantiate => "d_instantiate",
            InodeRename => "inode_rename",
            InodeLink => "inode_link",
            SocketListen => "socket_listen",
            MmapFile => "mmap_file",
            FileMprotect => "file_mprotect",
            PathNotify => "path_notify",
            Connect4 => "connect4",
            Connect6 => "connect6",
            Sendmsg4 => "sendmsg4",
            Sendmsg6 => "sendmsg6",
            Bind4 => "bind4",
            Bind6 => "bind6",
        }
    }
}

pub const DECISION_ALLOW: u8 = 0;
pub const DECISION_DENY: u8 = 1;

/// One kernel decision, as written to its sandbox's ring buffer. Fixed size: the programs
/// reserve exactly this much, and a failed reservation bumps the sandbox's per-CPU drop counter
/// instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns`: CLOCK_MONOTONIC.
    pub time_ns: u64,
    pub sandbox_id: u32,
    /// Thread group id (the userspace pid).
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    pub uid: u32,
    pub rule_id: u32,
    /// A [`Hook`] value.
    pub hook: u16,
    /// `DECISION_*`.
    pub decision: u8,
    /// `access::*` bits requested (file hooks) or the IP protocol (network hooks).
    pub access: u8,
    /// File hooks: the object that matched (the rule's inode for subtree denies), else the
    /// object itself. Kernel `dev_t` encoding.
    pub dev: u32,
    /// Network hooks: the destination port, host byte order.
    pub port: u16,
    /// Network hooks: AF_INET or AF_INET6.
    pub family: u16,
    pub ino: u64,
    /// Network hooks: the destination address, network byte order (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    pub comm: [u8; 16],
}

/// Bytes of an [`ExecRecord`]'s file name: longer names are cut (and flagged).
pub const EXEC_FILENAME_LEN: usize = 256;
/// Bytes of an [`ExecRecord`]'s argument strings: longer command lines are cut (and flagged).
/// A power of two: the program masks the length it reads with `EXEC_ARGV_LEN - 1`.
pub const EXEC_ARGV_LEN: usize = 512;

/// [`ExecRecord::flags`]: the file name did not fit in `filename` (cut at its last byte).
pub const EXEC_FILENAME_CUT: u32 = 1;
/// [`ExecRecord::flags`]: the arguments did not fit in `argv`; the last one read is incomplete.
pub const EXEC_ARGV_CUT: u32 = 2;
/// [`ExecRecord::flags`]: the arguments could not be read at all (`argv_len` is 0).
pub const EXEC_ARGV_UNREADABLE: u32 = 4;
/// [`ExecRecord::flags`]: the exec check (`bprm_check_security`) refused this exec; the
/// record is the deny's report, with `rule_id`, `dev` and `ino` as in an [`Event`].
pub const EXEC_DENIED: u32 = 8;
/// How many argument pointers a denied exec's record follows (a longer argv is cut, and
/// flagged): bounds the program's loop, one step per argument.
pub const EXEC_DENIED_ARGS: u32 = 64;

/// An exec of a sandboxed task, as written to its sandbox's ring buffer next to the
/// [`Event`]s: the reader tells the records apart by their length (each kind has a size or
/// range of its own, asserted below). Two writers:
/// - the `sched_process_exec` tracepoint program, under `audit all`, after the exec succeeded:
///   `argv` is what the new program got (from its stack), `rule_id`, `dev` and `ino` are 0;
/// - the exec check (`bprm_check_security`), for every exec it denies, in place of the plain
///   [`Event`] ([`EXEC_DENIED`]): `argv` is read through the pointers the task passed to
///   `execve`/`execveat`, each string whole or not at all, and the decision's rule and
///   object are those the `Event` would have carried.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    /// `bpf_ktime_get_ns`: CLOCK_MONOTONIC.
    pub time_ns: u64,
    pub sandbox_id: u32,
    pub tgid: u32,
    pub pid: u32,
    pub uid: u32,
    /// `EXEC_*` flags.
    pub flags: u32,
    /// Bytes of `argv` filled.
    pub argv_len: u32,
    /// The new program's `comm` (the binary's base name); for a denied exec, the task's that
    /// tried it.
    pub comm: [u8; 16],
    /// A denied exec's rule (0: the default, not on the `exec only` list) and the object that
    /// matched it (kernel `dev_t` and inode); all 0 for a completed exec.
    pub rule_id: u32,
    pub dev: u32,
    pub ino: u64,
    /// The name the program was executed by, as passed to `execve` (relative if it was),
    /// NUL-terminated.
    pub filename: [u8; EXEC_FILENAME_LEN],
    /// The argument strings, each NUL-terminated, as on the new program's stack.
    pub argv: [u8; EXEC_ARGV_LEN],
}

/// Bytes of a [`PathRecord`]'s path: components past it are left out (and flagged). A power
/// of two: the program masks its write position with `FILE_PATH_LEN - 1`.
pub const FILE_PATH_LEN: usize = 512;
/// How many steps the path walk takes (one per name, one per mount crossed): a deeper path is
/// cut (and flagged).
pub const FILE_PATH_STEPS: u32 = 32;
/// Bytes read per name (NUL included): `NAME_MAX` + 1. A longer name (no Linux filesystem
/// allows one) is cut.
pub const FILE_PATH_NAME_READ: usize = 256;

/// [`PathRecord::flags`]: the walk stopped before the root (too deep, too long, or a name
/// that could not be read): `path` holds the components nearest the file only.
pub const FILE_PATH_CUT: u32 = 1;

/// A file decision under `audit all` (`file_open`, or a path hook such as `path_unlink`): the
/// [`Event`] (as it would be written alone) followed by the path the file was opened by or the
/// hook acts on, built in the kernel from the dentry's names up to its mount's
/// root and on through the mounts below it to the root mount. Variable length: only the
/// header and `path_len` bytes of `path` are written, so the reader tells it apart from an
/// [`Event`] (80 bytes) and an [`ExecRecord`] (832) by a length between
/// [`PATH_RECORD_HEADER`] and `PATH_RECORD_HEADER + FILE_PATH_LEN` (asserted below).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathRecord {
    pub event: Event,
    /// `FILE_PATH_*` flags.
    pub flags: u32,
    /// Bytes of `path` filled.
    pub path_len: u32,
    /// The names from the file up (leaf first, root last), each NUL-terminated: the reader
    /// reverses them. A name the record cuts has no NUL and is left out by the reader.
    pub path: [u8; FILE_PATH_LEN],
}

/// Bytes of a [`PathRecord`] before its path.
pub const PATH_RECORD_HEADER: usize = core::mem::size_of::<Event>() + 8;

#[cfg(feature = "user")]
mod user {
    // SAFETY (all impls): `#[repr(C)]`, only integer fields, no padding bytes (checked by the
    // size assertions below), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::SandboxInfo {}
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::FsDeny {}
    unsafe impl<const N: usize> aya::Pod for super::NetKey<N> {}
    unsafe impl aya::Pod for super::NetAllow {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::LayerConfig {}
    unsafe impl aya::Pod for super::RuleDevices {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::ExecRecord {}
    unsafe impl aya::Pod for super::PathRecord {}
    unsafe impl aya::Pod for super::DnsRedirect {}
    unsafe impl aya::Pod for super::DnsOriginal {}
    unsafe impl aya::Pod for super::NameKey {}
    unsafe impl aya::Pod for super::FsCache {}
    unsafe impl aya::Pod for super::NameWatch {}
    unsafe impl aya::Pod for super::TemplateKey {}
    unsafe impl aya::Pod for super::NameTemplate {}
}

// Layouts are part of the kernel/userspace contract: a silent change of size breaks it.
const _: () = {
    assert!(core::mem::size_of::<SandboxInfo>() == 8);
    assert!(core::mem::size_of::<InodeKey>() == 16);
    assert!(core::mem::size_of::<FsDeny>() == 8);
    assert!(core::mem::size_of::<NetKeyV4>() == 12);
    assert!(core::mem::size_of::<NetKeyV6>() == 24);
    assert!(core::mem::size_of::<NetAllow>() == 24);
    assert!(core::mem::size_of::<KernelOffsets>() == 156);
    assert!(core::mem::size_of::<LayerConfig>() == 16);
    assert!(core::mem::size_of::<RuleDevices>() == 8 + 4 * LISTED_RULE_DEVICES);
    assert!(core::mem::size_of::<FsCache>() == 16);
    assert!(core::mem::size_of::<NameKey>() == 16 + WATCH_NAME_LEN);
    assert!(core::mem::size_of::<NameWatch>() == 16);
    assert!(core::mem::size_of::<TemplateKey>() == 8);
    assert!(core::mem::size_of::<NameTemplate>() == 16 + WATCH_NAME_LEN);
    assert!(core::mem::size_of::<Event>() == 80);
    assert!(core::mem::size_of::<ExecRecord>() == 64 + EXEC_FILENAME_LEN + EXEC_ARGV_LEN);
    // The reader tells the records apart by their length.
    assert!(core::mem::size_of::<ExecRecord>() != core::mem::size_of::<Event>());
    assert!(core::mem::size_of::<PathRecord>() == PATH_RECORD_HEADER + FILE_PATH_LEN);
    // A path record's length (header plus 0..=FILE_PATH_LEN bytes) is neither of the others.
    assert!(PATH_RECORD_HEADER > core::mem::size_of::<Event>());
    assert!(core::mem::size_of::<PathRecord>() < core::mem::size_of::<ExecRecord>());
    assert!(FILE_PATH_LEN.is_power_of_two());
    assert!(core::mem::size_of::<DnsRedirect>() == 28);
    assert!(core::mem::size_of::<DnsOriginal>() == 20);
    // `event_slot` masks with `EVENT_SLOTS - 1`.
    assert!(EVENT_SLOTS.is_power_of_two());
    // `cgroup_filter_bit` masks with `CGROUP_FILTER_WORDS - 1`.
    assert!(CGROUP_FILTER_WORDS.is_power_of_two());
    assert!(EVENT_RING_BYTES.is_power_of_two() && EVENT_RING_BYTES >= 4096);
};
