//! Back-ends: pure, deterministic functions of a [`Policy`] and a [`Target`].

mod containment;
pub mod ebpf;
pub mod landlock;
pub mod seatbelt;

use serde::{Deserialize, Serialize};

/// What the policy will run on. Compilation never probes the machine: the caller says what the
/// kernel offers (the runtime probes it; `nono policy compile --target-abi N` lets a reviewer
/// ask "what would this lose on ABI N?").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Landlock ABI version; 0 means no Landlock at all.
    pub landlock_abi: u8,
    /// Whether nono's eBPF kernel layer (BPF LSM + cgroup socket programs) can be loaded.
    pub kernel_layer: bool,
}

impl Target {
    /// The newest Landlock ABI this compiler knows.
    pub const LATEST_ABI: u8 = 7;

    pub fn landlock_only(abi: u8) -> Target {
        Target {
            landlock_abi: abi,
            kernel_layer: false,
        }
    }
}

/// The oldest Linux release that provides a Landlock ABI, for error messages.
pub fn linux_release_for_abi(abi: u8) -> &'static str {
    match abi {
        0 | 1 => "5.13",
        2 => "5.19",
        3 => "6.2",
        4 => "6.7",
        5 => "6.10",
        6 => "6.12",
        _ => "6.15",
    }
}
