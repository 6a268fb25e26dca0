//! The kernel layer: nono's eBPF programs (BPF LSM file hooks, cgroup socket-address hooks)
//! loaded under Landlock when nono has the privileges.
//!
//! Privileges: loading and pinning the programs, creating cgroups and registering sandboxes
//! need root, or CAP_BPF + CAP_SYS_ADMIN (+ CAP_NET_ADMIN for the cgroup socket programs).

/// The eBPF object built by `cargo xtask ebpf`, embedded by `build.rs` when it exists.
#[cfg(nono_ebpf)]
pub static EBPF_OBJECT: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(
    env!("OUT_DIR"),
    "/nono.bpf.o"
)));
#[cfg(not(nono_ebpf))]
pub static EBPF_OBJECT: Option<&[u8]> = None;
