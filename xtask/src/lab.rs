//! `cargo xtask vm-test`: boot Debian kernels under QEMU and run the kernel-layer tests inside.
//!
//! The host kernel refuses BPF LSM programs, so the LSM half of the kernel layer is proven in
//! virtual machines booting Debian's distribution kernels (6.12 and 6.1 by default: two struct
//! layouts, which proves offsets are read from BTF at run time). Each VM:
//! - boots the package's `vmlinuz` with a busybox initramfs that loads the virtio/9p modules;
//! - mounts the host root read-only over 9p, plus a writable results share;
//! - mounts proc, sys, dev, securityfs, bpffs, cgroup2 and a tmpfs scratch (`$TMPDIR`);
//! - runs `nono-lab-tests` as root against the real `nono` binary, which writes one
//!   `PASS name` / `FAIL name: reason` / `SKIP name: reason` line per test to the results share;
//! - powers off.
//!
//! The host side prints the results and fails when a test fails, when no result came back, or
//! when the VM did not finish in time. Kernels, modules and the initramfs are cached under
//! `target/lab/`. QEMU runs with TCG: `/dev/kvm` exists on these machines but guests crashed
//! under it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::ebpf::{apt_install, run, workspace_root};

/// Host packages the lab needs.
const LAB_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod"];

/// The kernels booted when none are named.
pub const DEFAULT_KERNELS: &[&str] = &["6.12", "6.1"];

/// Boot plus tests. A healthy run takes 4 to 8 minutes per kernel under TCG on two cores that
/// other builds share: 6.12 about 220 s, 6.1 about 460 s, of which some 200 s go to its
/// verifier's first load of the programs (path_link and path_rename alone take 1.5 million
/// instructions there); the slot-pool test starts 17 sandboxes. A hang takes longer.
const VM_TIMEOUT: Duration = Duration::from_secs(720);

/// Modules (with their dependencies) needed to reach the host root; built in on some kernels.
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];

/// The apt-cache pattern and description of each kernel series the lab knows.
fn package_pattern(series: &str) -> Result<&'static str> {
    Ok(match series {
        "6.12" => r"^linux-image-6\.12\.[0-9.]+\+deb12-amd64$",
        "6.1" => r"^linux-image-6\.1\.0-[0-9]+-amd64$",
        other => bail!("unknown lab kernel `{other}`: the lab knows 6.12 and 6.1"),
    })
}

/// Compare Debian package names by their numeric runs, so `6.1.0-50` sorts after `6.1.0-9`.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

fn newest_package(series: &str) -> Result<String> {
    let pattern = package_pattern(series)?;
    let search = || -> Result<Vec<String>> {
        let out = Command::new("apt-cache")
            .args(["search", "--names-only", pattern])
            .output()
            .context("running apt-cache")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect())
    };
    let mut names = search()?;
    if names.is_empty() {
        // A fresh machine has empty package lists until the first update.
        run(Command::new("apt-get").args(["update", "-q"]))?;
        names = search()?;
    }
    names.sort_by_key(|n| version_key(n));
    names
        .pop()
        .with_context(|| format!("no Debian package matches {pattern}"))
}

/// Download and unpack a kernel package once; returns the unpacked root.
fn fetch_kernel(lab: &Path, package: &str) -> Result<PathBuf> {
    let root = lab.join(package).join("root");
    if root.join("boot").is_dir() {
        return Ok(root);
    }
    let debs = lab.join("debs");
    fs::create_dir_all(&debs)?;
    run(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(&debs))
    .with_context(|| format!("downloading {package}"))?;
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get download left no .deb for {package}"))?;
    let partial = lab.join(package).join("root.partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    fs::rename(&partial, &root)?;
    Ok(root)
}

fn only_entry(dir: &Path, prefix: &str) -> Result<PathBuf> {
    fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}

/// The init script: mount everything, run the tests in a chroot of the host root, power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "lab: insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host || echo "lab: no host root"
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t securityfs securityfs /host/sys/kernel/security; mount -t bpf bpf /host/sys/fs/bpf
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
mount -t tmpfs tmp /host/run; mkdir -p /host/run/tmp /host/run/lab
mount -t cgroup2 none /host/sys/fs/cgroup
mount -t 9p -o trans=virtio,version=9p2000.L results /host/run/lab
chroot /host /bin/sh -c 'export TMPDIR=/run/tmp PATH=/usr/sbin:/usr/bin:/sbin:/bin; cd "$(cat /run/lab/cwd)" && sh /run/lab/cmd > /run/lab/out 2>&1; echo $? > /run/lab/status'
sync
echo o > /proc/sysrq-trigger; sleep 5
"#;

fn build_initramfs(lab: &Path, package: &str, root: &Path) -> Result<PathBuf> {
    let init_dir = lab.join(package).join("initrd");
    let _ = fs::remove_dir_all(&init_dir);
    for d in ["bin", "dev", "proc", "sys", "host", "mods"] {
        fs::create_dir_all(init_dir.join(d))?;
    }
    fs::copy("/bin/busybox", init_dir.join("bin/busybox")).context("copying busybox")?;
    let modules = root.join("lib/modules");
    let kver = only_entry(&modules, "")?
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .context("kernel version")?;
    if !modules.join(&kver).join("modules.dep").is_file() {
        run(Command::new("depmod").arg("-b").arg(root).arg(&kver))?;
    }
    let mut order: Vec<String> = Vec::new();
    for module in BOOT_MODULES {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(root)
            .args(["-S", &kver, "--show-depends", module])
            .output()
            .context("running modprobe --show-depends")?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("insmod") {
                continue; // "builtin X": nothing to load
            }
            let Some(file) = words.next() else { continue };
            let file = Path::new(file);
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .context("module file name")?;
            let name = name.strip_suffix(".xz").unwrap_or(name).to_string();
            if order.contains(&name) {
                continue;
            }
            let dest = init_dir.join("mods").join(&name);
            if file.extension().is_some_and(|e| e == "xz") {
                let out = fs::File::create(&dest)?;
                let status = Command::new("xz")
                    .arg("-dc")
                    .arg(file)
                    .stdout(out)
                    .status()?;
                if !status.success() {
                    bail!("decompressing {}", file.display());
                }
            } else {
                fs::copy(file, &dest)?;
            }
            order.push(name);
        }
    }
    fs::write(init_dir.join("mods/order"), order.join("\n") + "\n")?;
    let init = init_dir.join("init");
    fs::write(&init, INIT)?;
    run(Command::new("chmod").arg("+x").arg(&init))?;
    let image = lab.join(package).join("initrd.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > \"$0\"")
        .arg(&image)
        .current_dir(&init_dir)
        .status()?;
    if !status.success() {
        bail!("packing the initramfs");
    }
    Ok(image)
}

/// One VM run's outcome.
struct VmOutcome {
    results: Vec<String>,
    output: String,
    status: Option<i32>,
    timed_out: bool,
    /// The guest reached the test command (its output file exists): anything that went wrong
    /// after that is the tests' business, never retried.
    started: bool,
}

/// Boots per kernel when the guest dies before the test command starts. TCG guests on these
/// machines occasionally oops during early boot (an `int3` in a static-key patch site, seen on
/// 6.12 about once in tens of boots), before any nono code runs.
const BOOT_ATTEMPTS: u32 = 3;

fn boot(lab: &Path, package: &str, root: &Path, command: &str) -> Result<VmOutcome> {
    let vmlinuz = only_entry(&root.join("boot"), "vmlinuz-")?;
    let initrd = build_initramfs(lab, package, root)?;
    let share = lab.join(package).join("results");
    let _ = fs::remove_dir_all(&share);
    fs::create_dir_all(&share)?;
    fs::write(share.join("cmd"), command)?;
    fs::write(
        share.join("cwd"),
        workspace_root().to_string_lossy().as_bytes(),
    )?;
    let console = fs::File::create(lab.join(package).join("console.log"))?;
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2"])
        .args(["-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .arg("-virtfs")
        .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=results,security_model=none",
            share.display()
        ))
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let deadline = Instant::now() + VM_TIMEOUT;
    let mut timed_out = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let read = |name: &str| fs::read_to_string(share.join(name)).unwrap_or_default();
    Ok(VmOutcome {
        results: read("results").lines().map(str::to_string).collect(),
        output: read("out"),
        status: read("status").trim().parse().ok(),
        timed_out,
        started: share.join("out").exists(),
    })
}

/// Build what runs inside: nono with the eBPF object, and the lab test binary.
fn build_test_binaries() -> Result<(PathBuf, PathBuf)> {
    crate::ebpf::build_ebpf(true)?;
    let root = workspace_root();
    run(Command::new("cargo")
        .args(["build", "-p", "nono", "-p", "nono-lab-tests"])
        .current_dir(&root))?;
    let target = root.join("target/debug");
    Ok((target.join("nono"), target.join("nono-lab-tests")))
}

/// Boot each kernel series (`6.12`, `6.1`; none means both) and run the kernel-layer tests.
pub fn vm_test(kernels: &[&str]) -> Result<()> {
    let kernels = if kernels.is_empty() {
        DEFAULT_KERNELS
    } else {
        kernels
    };
    apt_install(LAB_PACKAGES)?;
    let (nono, tests) = build_test_binaries()?;
    let lab = workspace_root().join("target/lab");
    fs::create_dir_all(&lab)?;
    let mut failed = Vec::new();
    for series in kernels {
        let package = newest_package(series)?;
        let root = fetch_kernel(&lab, &package)?;
        let mut command = format!(
            "{} --nono {} --results /run/lab/results --kernel {series}",
            tests.display(),
            nono.display()
        );
        // `NONO_LAB_FILTER=a,b` runs only the lab tests whose name contains one of the
        // substrings (for iterating on one area; the full run is what counts).
        if let Ok(filter) = std::env::var("NONO_LAB_FILTER") {
            if !filter.is_empty() {
                if !filter
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ',')
                {
                    bail!("NONO_LAB_FILTER must be part of a test name: {filter:?}");
                }
                command.push_str(&format!(" --filter {filter}"));
            }
        }
        command.push('\n');
        let started = Instant::now();
        eprintln!("vm-test: booting {package}");
        let mut outcome = boot(&lab, &package, &root, &command)?;
        for attempt in 2..=BOOT_ATTEMPTS {
            if outcome.started {
                break;
            }
            let console =
                fs::read_to_string(lab.join(&package).join("console.log")).unwrap_or_default();
            let tail: Vec<&str> = console.lines().rev().take(12).collect();
            eprintln!(
                "vm-test: {package} died before the tests started; booting again ({attempt}/{BOOT_ATTEMPTS}). Console tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            outcome = boot(&lab, &package, &root, &command)?;
        }
        let elapsed = started.elapsed().as_secs_f32();
        println!("== {package} ({elapsed:.0} s)");
        for line in &outcome.results {
            println!("  {line}");
        }
        let failures = outcome
            .results
            .iter()
            .filter(|l| l.starts_with("FAIL"))
            .count();
        let passes = outcome
            .results
            .iter()
            .filter(|l| l.starts_with("PASS"))
            .count();
        let problem = if outcome.timed_out {
            Some(format!("timed out after {} s", VM_TIMEOUT.as_secs()))
        } else if outcome.results.is_empty() {
            Some("no results came back (boot failure or crash)".to_string())
        } else if failures > 0 {
            Some(format!("{failures} test(s) failed"))
        } else if outcome.status != Some(0) {
            Some(format!("the test binary exited with {:?}", outcome.status))
        } else {
            None
        };
        println!("  {passes} passed, {failures} failed");
        if let Some(problem) = problem {
            let console = lab.join(&package).join("console.log");
            eprintln!(
                "vm-test: {package}: {problem}\n--- test output ---\n{}--- console: {} ---",
                outcome.output,
                console.display()
            );
            failed.push(format!("{package}: {problem}"));
        }
    }
    if !failed.is_empty() {
        bail!("vm-test failed: {}", failed.join("; "));
    }
    Ok(())
}
