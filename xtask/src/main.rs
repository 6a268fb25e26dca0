//! `cargo xtask`: set-up, the main-job demo, every test, and benchmarks.
//!
//! Every command installs what it needs first, idempotently: a package already present is not
//! reinstalled, and `apt-get update` runs only when something is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod bench_connect;
mod bench_egress;
mod bench_floor;
mod bench_rollback;
mod bench_run;
mod demo;
mod ebpf;
mod lab;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup   install the system packages and tools the build and tests need
  demo    build nono and run the main job on the built-in default profile
  release build the release binary (static-pie on glibc Linux; what the benchmarks measure),
          check that it runs a confined command, print its path
  test    every test: fmt, clippy, unit, end-to-end (root and unprivileged), fuzz smoke,
          and the kernel-layer lab on Debian's 6.12 and 6.1 kernels under QEMU
  bench [compile|run|audit|egress|connect|rollback]  benchmarks: policy compile (criterion)
                             and `nono run` start-up next to /bin/true, bwrap and the
                             floor (a C launcher replaying nono's traced kernel work; both by
                             default); each on its own: the audit trail (ingestion rate,
                             1M-event burst, `audit show`), egress (DNS through nono's
                             resolver, proxied connections, then connect), connect (TCP
                             connect under the kernel rules next to none; root), rollback
                             (snapshot/restore next to cp -a)
  fuzz    run the fuzz targets for longer (FUZZ_SECONDS, default 60 each)
  ebpf [--setup] [--debug]   build the eBPF object nono embeds (--setup installs the toolchain)
  vm-test [6.12] [6.1]       only the kernel-layer lab (both kernels by default;
                             NONO_LAB_FILTER=SUBSTRING runs only the tests naming it)";

/// Debian packages: what the tests and the demo use.
const APT_PACKAGES: &[&str] = &[
    "bubblewrap", // the bench's baseline
    "curl",       // an end-to-end case: curl --noproxy '*'
    "python3",    // end-to-end probes report exact errnos
    "tmux",       // interactive (pty) test
    "util-linux", // setpriv: the unprivileged runs
    "iproute2",
    "procps",
    "strace", // the bench's floor, and the check that a run loads no BPF object
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("demo") => demo_cmd(),
        Some("release") => release(),
        Some("test") => test(),
        Some("bench") => bench(args.get(1).map(String::as_str)),
        // The connect benchmark's helper, run inside the sandboxes it measures.
        Some("connect-loop") => bench_connect::connect_loop(args.get(1).map_or("", String::as_str)),
        Some("fuzz") => fuzz(
            std::env::var("FUZZ_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(60),
            FuzzBuild::Optimised,
        ),
        Some("ebpf") => {
            if args.iter().any(|a| a == "--setup") {
                ebpf::setup_toolchain()?;
            }
            let object = ebpf::build_ebpf(!args.iter().any(|a| a == "--debug"))?;
            println!("{}", object.display());
            Ok(())
        }
        Some("vm-test") => {
            let kernels: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            lab::vm_test(&kernels)
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().to_string())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = if nix_is_root() { vec![] } else { vec!["sudo"] };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.clone();
        all.push("apt-get");
        all.extend_from_slice(args);
        let mut c = Command::new(all[0]);
        c.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update", "-q"]))?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing);
    run(&mut apt(&args))
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn setup() -> Result<()> {
    apt_install(APT_PACKAGES)?;
    // The pinned toolchain (rust-toolchain.toml) brings clippy and rustfmt with it.
    if !have("rustup", &["run", "nightly", "rustc", "--version"]) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !have("cargo", &["+nightly", "fuzz", "--version"]) {
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

fn build_nono() -> Result<PathBuf> {
    run(cargo().args(["build", "--package", "nono"]))?;
    Ok(root().join("target/debug/nono"))
}

fn demo_cmd() -> Result<()> {
    apt_install(&["python3"])?;
    let nono = build_nono()?;
    println!("\n== nono policy compile default  (what each rule of the built-in default profile becomes in the kernel)\n");
    run(Command::new(&nono).args(["policy", "compile", "default"]))?;
    println!("\n== nono run: the main job, on the built-in default profile\n");
    demo::demo(&nono)
}

fn test() -> Result<()> {
    setup()?;
    // The kernel layer: its toolchain, then its object, which the nono build below embeds.
    ebpf::setup_toolchain()?;
    ebpf::build_ebpf(true)?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    build_nono()?;
    run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    fuzz(10, FuzzBuild::Quick)?;
    // BPF LSM programs cannot load on the CI host's kernel: they are tested in VMs booting
    // Debian's 6.12 and 6.1 kernels, which also proves the offsets are read at run time.
    lab::vm_test(&[])?;
    println!("xtask: every test passed");
    Ok(())
}

/// How the fuzz targets are built: `Quick` (unoptimised) for the test command's smoke run, where
/// building dominates; `Optimised` for long runs, where executions per second do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FuzzBuild {
    Quick,
    Optimised,
}

fn fuzz(seconds: u32, build: FuzzBuild) -> Result<()> {
    for target in ["lang", "json"] {
        // `+nightly` is understood by rustup's `cargo` proxy, not by the toolchain's own cargo
        // that $CARGO names when xtask runs under `cargo run`.
        let mut c = Command::new("cargo");
        c.current_dir(root().join("fuzz"))
            .env_remove("RUSTUP_TOOLCHAIN")
            .args([
                "+nightly",
                "fuzz",
                "run",
                if build == FuzzBuild::Quick {
                    "--dev"
                } else {
                    "--release"
                },
                target,
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
            ]);
        run(&mut c)?;
    }
    Ok(())
}

/// `cargo xtask bench [compile|run|audit|egress|connect|rollback]`: compile and run by default.
fn bench(which: Option<&str>) -> Result<()> {
    if which == Some("audit") {
        let nono = build_release_nono()?;
        let dir = root().join("target/bench-audit");
        std::fs::create_dir_all(&dir)?;
        run(Command::new(nono)
            .args(["audit", "bench", "--dir"])
            .arg(&dir))?;
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    if which == Some("egress") {
        let nono = build_release_nono()?;
        println!("{}", bench_egress::bench_egress(&nono, 2000)?);
        println!("{}", bench_connect::bench_connect(&nono, 100)?);
        return Ok(());
    }
    if which == Some("connect") {
        let nono = build_release_nono()?;
        println!("{}", bench_connect::bench_connect(&nono, 100)?);
        return Ok(());
    }
    if which == Some("rollback") {
        let nono = build_release_nono()?;
        let base = root().join("target/bench-rollback");
        let rounds = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5);
        println!("{}", bench_rollback::bench_rollback(&nono, &base, rounds)?);
        return Ok(());
    }
    apt_install(&["bubblewrap"])?;
    if which != Some("run") {
        run(cargo().args(["bench", "--package", "nono-policy", "--bench", "compile"]))?;
    }
    if which == Some("compile") {
        return Ok(());
    }
    let nono = build_release_nono()?;
    let report = bench_run::bench_run(&nono, 300)?;
    println!("{report}");
    Ok(())
}

/// The release binary, which the benchmarks measure. On glibc Linux it is static-pie: no
/// dynamic loader resolving symbols of three libraries, and no `libgcc_s` constructor (its
/// `__cpu_indicator_init` executes `cpuid`, which traps to the hypervisor in a VM, at several
/// microseconds each). That took `nono --version` from 0.68 ms to 0.37 ms over `/bin/true` on
/// the 2-core development VM, and every `nono run` starts the same way. Built for the host
/// triple named explicitly, so that `crt-static` reaches the target crates only: build scripts
/// and proc-macros stay dynamic (glibc targets cannot link a proc-macro statically).
fn build_release_nono() -> Result<PathBuf> {
    let host = host_triple()?;
    if !host.ends_with("-linux-gnu") {
        run(cargo().args(["build", "--release", "--package", "nono"]))?;
        return Ok(root().join("target/release/nono"));
    }
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !flags.is_empty() {
        flags.push(' ');
    }
    flags.push_str("-C target-feature=+crt-static");
    run(cargo().env("RUSTFLAGS", flags).args([
        "build",
        "--release",
        "--package",
        "nono",
        "--target",
        &host,
    ]))?;
    Ok(root().join("target").join(&host).join("release/nono"))
}

/// The triple rustc builds for by default (`rustc -vV`'s `host:` line).
fn host_triple() -> Result<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host triple")
}

/// `cargo xtask release`: build the release binary, check that it starts and confines (a read
/// of a planted `~/.ssh/id_rsa` is refused with EACCES), print its path.
fn release() -> Result<()> {
    let nono = build_release_nono()?;
    run(Command::new(&nono).arg("--version"))?;
    let check = root().join("target/release-check");
    let _ = std::fs::remove_dir_all(&check);
    let (home, work, tmp) = (check.join("home"), check.join("work"), check.join("tmp"));
    std::fs::create_dir_all(home.join(".ssh"))?;
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&tmp)?;
    let key = home.join(".ssh/id_rsa");
    std::fs::write(&key, "planted\n")?;
    let out = Command::new(&nono)
        .args(["run", "--profile", "default", "--", "/bin/cat"])
        .arg(&key)
        .env("HOME", &home)
        // Its own, so the profile's `$TMPDIR` grant cannot cover the fake home when the
        // checkout lives under /tmp.
        .env("TMPDIR", &tmp)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .current_dir(&work)
        .output()
        .with_context(|| format!("cannot run {}", nono.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&check);
    if out.status.code() != Some(1)
        || !stderr.contains("Permission denied")
        || !out.stdout.is_empty()
    {
        bail!(
            "{} run did not refuse the planted key: {}, stdout {:?}, stderr {stderr}",
            nono.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    println!("{}", nono.display());
    Ok(())
}
