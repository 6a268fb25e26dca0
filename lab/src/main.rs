//! Kernel-layer tests, run as root against the real `nono` binary.
//!
//! `cargo xtask vm-test` runs this inside VMs booting Debian kernels (where BPF LSM programs
//! load); `nono-lab-tests --host` runs the tests that need no LSM (cgroup socket programs)
//! natively. Each test asserts the errno and that the target is unchanged, and the binary writes
//! one `PASS name`, `FAIL name: reason` or `SKIP name: reason` line per test to `--results`.

mod harness;
mod probe;
mod tests;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("probe") {
        std::process::exit(probe::main(&args[1..]));
    }
    std::process::exit(harness::main());
}
