//! `cargo xtask ebpf`: install the eBPF toolchain (idempotently) and build `nono-ebpf`.
//!
//! The recipe is the one recorded in `shared/kernel-lab.md`: nightly with `rust-src`, LLVM 22
//! from Debian, and bpf-linker built against it (its default feature wants LLVM 23, which Debian
//! does not ship). Each step runs only when its result is missing, so a warm machine pays a few
//! `dpkg`/`rustup` queries and nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages bpf-linker links against.
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `build_ebpf` leaves the object, and where `nono/build.rs` looks for it.
pub fn ebpf_object_path(release: bool) -> PathBuf {
    workspace_root()
        .join("nono-ebpf/target/bpfel-unknown-none")
        .join(if release { "release" } else { "debug" })
        .join("nono")
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Debian packages from `wanted` that are not installed.
pub(crate) fn missing_packages(wanted: &[&str]) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .map(|p| p.to_string())
        .collect()
}

/// Install Debian packages that are missing; `apt-get update` runs only when something is.
pub(crate) fn apt_install(wanted: &[&str]) -> Result<()> {
    let missing = missing_packages(wanted);
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("installing the packages the eBPF toolchain or VM lab needs (run as root)")
}

fn bpf_linker_installed() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Install everything `build_ebpf` needs. Safe to run again: it skips what is there.
pub fn setup_toolchain() -> Result<()> {
    apt_install(LLVM_PACKAGES)?;
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
        .context("adding rust-src to the nightly toolchain (build-std needs it)")?;
    if !bpf_linker_installed() {
        eprintln!("xtask: building bpf-linker against LLVM 22 (a few minutes)");
        let path = format!(
            "{LLVM_PREFIX}/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        // `+stable`: the repository pins its own toolchain; bpf-linker just needs a recent one.
        run(Command::new("cargo")
            .args(["+stable", "install", "bpf-linker", "--no-default-features"])
            .args(["--features", "llvm-22"])
            .env("PATH", path)
            .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX))
        .context("installing bpf-linker")?;
    }
    Ok(())
}

/// Build the eBPF object and return its path. `nono`'s build script embeds it from there.
pub fn build_ebpf(release: bool) -> Result<PathBuf> {
    let dir = workspace_root().join("nono-ebpf");
    let mut cmd = Command::new("cargo");
    // The crate's rust-toolchain.toml selects nightly; its .cargo/config.toml the BPF target
    // and build-std. Clear what the outer cargo (stable, host target) exported to us.
    cmd.current_dir(&dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .arg("build");
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd).context("building nono-ebpf (run `cargo xtask ebpf --setup` once first)")?;
    let object = ebpf_object_path(release);
    if !object.is_file() {
        bail!("nono-ebpf built, but {} is missing", object.display());
    }
    Ok(object)
}
