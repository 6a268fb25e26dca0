//! nono's kernel-side programs: BPF LSM file, exec and process-isolation hooks, cgroup
//! socket-address hooks, and the `sched_process_exec` tracepoint that reports execs (`exec`).
//!
//! Every program starts with the same fast path, [`current_sandbox`]: a task outside every
//! sandbox gets "allow" after an array load (no sandbox live), or after its cgroup id and one
//! more array load (the registered-cgroup filter); only a task whose cgroup's filter bit is set
//! pays the sandbox map lookup. The userspace half (`nono::kernel`) sets the kernel offsets
//! before loading the programs, registers each sandbox's cgroup, fills the rule maps, and
//! drains its sandbox's event ring buffer (see `events`). Types shared with it live in
//! `nono-common`.
//!
//! Kernel assumptions: BPF LSM (`CONFIG_BPF_LSM`, `bpf` in `lsm=`), BTF, and a verifier that
//! reads frozen read-only maps as constants and allows constant-offset loads through BTF-typed
//! pointers (both since 5.x; the lab runs 6.1 and 6.12). Loading needs CAP_BPF + CAP_PERFMON
//! (direct kernel loads, pointer comparisons) and CAP_SYS_ADMIN for LSM attachment: root.
#![no_std]
#![no_main]
// `atomic_xadd` for the rule generation (cache.rs): the BPF target offers no `fetch_add`.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod bench;
mod cache;
mod dns;
mod events;
mod exec;
mod fs;
mod ipc;
mod net;
mod path;
mod verdict;
mod watch;

use aya_ebpf::{
    helpers::bpf_get_current_cgroup_id,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap},
};
use nono_common::{
    cgroup_filter_bit, DnsOriginal, DnsRedirect, FsDeny, InodeKey, KernelOffsets, LayerConfig,
    NetAllow, NetKeyV4, NetKeyV6, SandboxInfo, CGROUP_FILTER_WORDS,
};

/// cgroup v2 id -> sandbox. The sandbox's own cgroup and every cgroup below it.
#[map]
static NONO_SANDBOXES: HashMap<u64, SandboxInfo> = HashMap::pinned(4096, 0);

/// (sandbox, dev, ino) -> the deny rule on that object; a directory's entry covers its subtree.
/// A marker entry with `ino = 0` says the sandbox has rules on that device at all.
#[map]
static NONO_FS_DENY: HashMap<InodeKey, FsDeny> = HashMap::pinned(65536, 0);

/// Network allow rules, longest-prefix matched on the address after an exact
/// (sandbox, protocol, port) part. See `nono_common::NetKey`.
#[map]
static NONO_NET_V4: LpmTrie<NetKeyV4, NetAllow> = LpmTrie::pinned(65536, 1);
#[map]
static NONO_NET_V6: LpmTrie<NetKeyV6, NetAllow> = LpmTrie::pinned(65536, 1);

/// Sandbox id -> nono's resolver for it: where the sandbox's port-53 traffic goes (see `dns`).
#[map]
static NONO_DNS: HashMap<u32, DnsRedirect> = HashMap::pinned(4096, 0);

/// Socket cookie -> the DNS server a redirected socket meant to reach (see `dns`).
#[map]
static NONO_DNS_ORIG: LruHashMap<u64, DnsOriginal> = LruHashMap::pinned(65536, 0);

/// Entry 0: what the loader learns per boot and the cache switch (see [`LayerConfig`]).
#[map]
static NONO_CONFIG: Array<LayerConfig> = Array::pinned(1, 0);

/// The running kernel's struct offsets, from its BTF: the loader sets them in the object's
/// `.rodata` before loading it (`EbpfLoader::set_global`). aya creates `.rodata` as a frozen map
/// the programs can't write, so the verifier reads each offset as a constant: a field access is
/// `ptr + constant`, which it checks against the kernel's BTF and turns into a direct load.
/// Read it only through [`kernel_offset!`].
#[no_mangle]
static NONO_OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// One field of [`NONO_OFFSETS`], loaded from the map (see [`offset_at`]).
macro_rules! kernel_offset {
    ($field:ident) => {
        $crate::offset_at(core::ptr::addr_of!($crate::NONO_OFFSETS.$field))
    };
}
pub(crate) use kernel_offset;

/// A volatile read: the compiler would otherwise fold in the zeros the object file carries.
#[inline(always)]
pub(crate) fn offset_at(field: *const u32) -> u32 {
    // SAFETY: `field` points into `NONO_OFFSETS`, an initialised static of `u32`s.
    unsafe { core::ptr::read_volatile(field) }
}

/// Entry 0: how many cgroups are registered in `NONO_SANDBOXES`. Zero lets every program
/// return before the cgroup lookup: once loaded, the programs stay attached until reboot, and a
/// machine where no sandbox runs should not pay for them. The loader raises it before it
/// registers a cgroup and recounts after every change, under its lock.
#[map]
static NONO_ACTIVE: Array<u32> = Array::pinned(1, 0);

/// A bitmap with the bit of every cgroup id in `NONO_SANDBOXES` set (see
/// [`nono_common::CGROUP_FILTER_WORDS`] for how the loader keeps it so).
#[map]
static NONO_CGROUP_FILTER: Array<u64> = Array::pinned(CGROUP_FILTER_WORDS, 0);

/// The sandbox the current task belongs to, if any: the fast path of every program.
///
/// Sound with any cgroup layout: a clear filter bit proves the cgroup is not in the sandbox
/// map, the same answer the map lookup would give (an unregistered cgroup below a sandbox is
/// outside for the LSM hooks either way; the agent can't create one, see `nono::kernel::sandbox`).
/// Sandbox cgroups live below whichever cgroup each nono runs in, so no single ancestor
/// (`bpf_get_current_ancestor_cgroup_id`) could tell them apart from the rest.
#[inline(always)]
fn current_sandbox() -> Option<SandboxInfo> {
    // An array lookup is inlined by the verifier: a plain load.
    if let Some(active) = NONO_ACTIVE.get(0) {
        if *active == 0 {
            return None;
        }
    }
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let (word, bit) = cgroup_filter_bit(cgroup_id);
    if let Some(registered) = NONO_CGROUP_FILTER.get(word) {
        if *registered & bit == 0 {
            return None;
        }
    }
    // SAFETY: the value is copied out before any other map operation can change it.
    unsafe { NONO_SANDBOXES.get(&cgroup_id) }.copied()
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the verifier rejects programs that could panic.
    loop {}
}

/// LSM programs and `bpf_probe_read_kernel` require a GPL-compatible license.
#[link_section = "license"]
#[used]
pub static LICENSE: [u8; 4] = *b"GPL\0";
