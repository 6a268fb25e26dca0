//! Kernel-layer tests, run as root against the real `nono` binary.
//!
//! `cargo xtask vm-test` runs this inside VMs booting Debian kernels (where BPF LSM programs
//! load); `nono-lab-tests --host` runs the tests that need no LSM (cgroup socket programs)
//! natively. Each test asserts the errno and that the target is unchanged, and the binary writes
//! one `PASS name`, `FAIL name: reason` or `SKIP name: reason` line per test to `--results`.

mod harness;
mod tests;

fn main() {
    std::process::exit(harness::main());
}
