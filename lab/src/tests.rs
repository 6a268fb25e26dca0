//! The tests. Each asserts errno and an unchanged target where it denies something.

use std::process::Command;

use crate::harness::{Ctx, Needs, Test};

pub const ALL: &[Test] = &[
    Test {
        name: "bpf_lsm_listed",
        needs: Needs::Lsm,
        run: bpf_lsm_listed,
    },
    Test {
        name: "nono_has_kernel_layer",
        needs: Needs::CgroupSock,
        run: nono_has_kernel_layer,
    },
];

/// The lab kernel must run the BPF LSM, or nothing below proves anything.
fn bpf_lsm_listed(_ctx: &Ctx) -> Result<(), String> {
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm")
        .map_err(|e| format!("reading /sys/kernel/security/lsm: {e}"))?;
    if lsms.split(',').any(|l| l.trim() == "bpf") {
        Ok(())
    } else {
        Err(format!("bpf is not in the active LSM list `{lsms}`"))
    }
}

/// The binary under test was built with the eBPF object embedded.
fn nono_has_kernel_layer(ctx: &Ctx) -> Result<(), String> {
    let out = Command::new(&ctx.nono)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {}: {e}", ctx.nono.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if version.contains("kernel [") {
        Ok(())
    } else {
        Err(format!("nono --version says `{}`", version.trim()))
    }
}
