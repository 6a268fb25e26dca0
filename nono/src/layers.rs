//! Which enforcement layers this nono binary was built with, for `nono --version`.

/// `nono --version`: the version and the layers built in. The kernel layer needs the eBPF
/// object, which a plain `cargo build` without the eBPF toolchain does not produce.
#[cfg(nono_ebpf)]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (layers: landlock, seccomp, kernel [bpf-lsm, cgroup-sock])"
);
#[cfg(not(nono_ebpf))]
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (layers: landlock, seccomp; kernel layer not built in: run `cargo xtask ebpf`)"
);
