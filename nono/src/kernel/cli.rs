//! Hidden subcommands that drive the kernel layer directly, for the VM lab and the native
//! network tests until `nono run` integrates it:
//! - `nono kernel-run [--deny PATH].. [--deny-write PATH].. [--allow-net PROTO:CIDR[@PORTS]]..
//!   [--listen PROTO:PORTS].. [--audit-all] -- CMD..` runs CMD in a kernel-layer sandbox built
//!   from an IR policy, exactly as `nono run` will (cgroup entered before exec), prints the
//!   sandbox's events to stderr and exits with CMD's status;
//! - `nono kernel-status` loads the layer (which sweeps stale sandboxes) and prints its state.
//!
//! Privileges: root.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nono_policy::ir::{
    Access, AuditPolicy, CidrRule, Effect, EnvPolicy, ExecPolicy, FsRule, IpcPolicy, ListenRule,
    Meta, NetMode, NetPolicy, Overrides, Policy, Provenance, RollbackPolicy, RuleId,
};
use nono_policy::net::{parse_cidr, PortSet, Protocol};
use nono_policy::path::PolicyPath;

use super::{KernelLayer, SandboxOptions};
use crate::exit::{CmdResult, Exit, RUN_REFUSED};

#[derive(Debug, clap::Args)]
pub struct KernelRunArgs {
    /// Deny every access to PATH (and below it).
    #[arg(long, value_name = "PATH")]
    deny: Vec<PathBuf>,
    /// Deny writes to PATH (and below it).
    #[arg(long, value_name = "PATH")]
    deny_write: Vec<PathBuf>,
    /// Allow connect/sendmsg to a CIDR: `tcp:127.0.0.1/32@8080`, `udp:10.0.0.0/8`, `tcp:::1/128@80,443`.
    #[arg(long, value_name = "PROTO:CIDR[@PORTS]")]
    allow_net: Vec<String>,
    /// Allow bind on ports: `tcp:8080`.
    #[arg(long, value_name = "PROTO:PORTS")]
    listen: Vec<String>,
    /// Do not attach the network programs (`net allow all`).
    #[arg(long)]
    net_unrestricted: bool,
    /// Report allowed accesses too.
    #[arg(long)]
    audit_all: bool,
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn protocol(text: &str) -> Result<Protocol> {
    Protocol::parse(text).with_context(|| format!("unknown protocol `{text}` (tcp or udp)"))
}

fn ports(text: &str) -> Result<PortSet> {
    let ranges = text
        .split(',')
        .map(|r| PortSet::parse_range(r).map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(PortSet::new(ranges))
}

/// The IR policy the flags describe, rule ids in flag order.
fn policy_from_args(args: &KernelRunArgs) -> Result<Policy> {
    let mut next_id = 0u32;
    let mut id = || {
        next_id += 1;
        RuleId(next_id)
    };
    let mut fs = Vec::new();
    for (paths, access) in [(&args.deny, Access::ALL), (&args.deny_write, Access::WRITE)] {
        for p in paths {
            let text = p.to_str().context("paths must be UTF-8")?;
            fs.push(FsRule {
                id: id(),
                path: PolicyPath::parse(text).map_err(|e| anyhow::anyhow!("{text}: {e}"))?,
                effect: Effect::Deny,
                access,
            });
        }
    }
    let mut cidrs = Vec::new();
    for spec in &args.allow_net {
        let (proto, rest) = spec
            .split_once(':')
            .with_context(|| format!("`{spec}`: expected PROTO:CIDR[@PORTS]"))?;
        let proto = protocol(proto)?;
        let (net_text, port_text) = rest.split_once('@').unwrap_or((rest, ""));
        cidrs.push(CidrRule {
            id: id(),
            net: parse_cidr(net_text).map_err(|e| anyhow::anyhow!("{spec}: {e}"))?,
            protocol: proto,
            ports: if port_text.is_empty() {
                PortSet::default()
            } else {
                ports(port_text)?
            },
        });
    }
    let mut listen = Vec::new();
    for spec in &args.listen {
        let (proto, port_text) = spec
            .split_once(':')
            .with_context(|| format!("`{spec}`: expected PROTO:PORTS"))?;
        listen.push(ListenRule {
            id: id(),
            protocol: protocol(proto)?,
            ports: ports(port_text)?,
        });
    }
    Ok(Policy {
        meta: Meta {
            name: "kernel-run".into(),
            ..Meta::default()
        },
        fs,
        exec: ExecPolicy::default(),
        net: NetPolicy {
            mode: if args.net_unrestricted {
                NetMode::Unrestricted
            } else {
                NetMode::Blocked
            },
            domains: Vec::new(),
            cidrs,
            listen,
        },
        ipc: IpcPolicy::default(),
        env: EnvPolicy::default(),
        audit: AuditPolicy::default(),
        rollback: RollbackPolicy::default(),
        overrides: Overrides::default(),
        provenance: Provenance::default(),
    })
}

fn kernel_run_inner(args: KernelRunArgs) -> Result<i32> {
    let policy = policy_from_args(&args)?;
    let layer = KernelLayer::load()?;
    eprintln!("nono: {}", layer.describe());
    let mut sandbox = layer.create_sandbox(
        &policy,
        &SandboxOptions {
            audit_all: args.audit_all,
        },
    )?;
    for gap in &sandbox.unbound {
        eprintln!("nono: kernel: not enforced: {gap}");
    }
    eprintln!(
        "nono: kernel: sandbox {} cgroup {}",
        sandbox.id(),
        sandbox.cgroup_dir().display()
    );
    // Events print live, as `nono run -v` will print them.
    let printer = super::events::EventPrinter::spawn(sandbox.events()?, |event| {
        let _ = writeln!(std::io::stderr(), "nono: {event}");
    })?;
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(sandbox.cgroup_procs_path())
        .with_context(|| format!("opening {}", sandbox.cgroup_procs_path().display()))?;
    let procs_fd = procs.as_raw_fd();
    let mut command = std::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    // SAFETY: only async-signal-safe calls (prctl, write) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // The sandbox does not outlive nono, even after `kill -9`.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Enter the sandbox cgroup before exec: the program never runs outside it.
            if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = command
        .status()
        .with_context(|| format!("running {:?}", args.command[0]))?;
    drop(procs);
    printer.stop();
    let _ = writeln!(
        std::io::stderr(),
        "nono: kernel: dropped events: {}",
        layer.dropped_events().unwrap_or(0)
    );
    sandbox.cleanup()?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

pub fn kernel_run(args: KernelRunArgs) -> CmdResult {
    kernel_run_inner(args).map_err(|e| Exit::new(RUN_REFUSED, format!("nono: {e:#}")))
}

pub fn kernel_status() -> CmdResult {
    let layer = KernelLayer::load().map_err(|e| Exit::failure(format!("nono: {e:#}")))?;
    let maps = layer.maps();
    let count = |n: usize| n.to_string();
    println!("pin_dir={}", layer.pin_dir().display());
    println!(
        "lsm={}",
        if layer.lsm.is_active() {
            "active"
        } else {
            "off"
        }
    );
    println!(
        "net={}",
        if layer.net.is_active() {
            "active"
        } else {
            "off"
        }
    );
    println!("sandboxes={}", count(maps.sandboxes.keys().count()));
    println!("fs_entries={}", count(maps.fs_deny.keys().count()));
    println!(
        "net_entries={}",
        count(maps.net_v4.keys().count() + maps.net_v6.keys().count())
    );
    println!("dropped={}", layer.dropped_events().unwrap_or(0));
    // Per sandbox: registered cgroups, file and network entries (tests check one run's own).
    let mut per: std::collections::BTreeMap<u32, [usize; 3]> = Default::default();
    for (_, info) in maps.sandboxes.iter().flatten() {
        per.entry(info.sandbox_id).or_default()[0] += 1;
    }
    for k in maps.fs_deny.keys().flatten() {
        per.entry(k.sandbox_id).or_default()[1] += 1;
    }
    for k in maps.net_v4.keys().flatten() {
        per.entry(k.data().sandbox_id).or_default()[2] += 1;
    }
    for k in maps.net_v6.keys().flatten() {
        per.entry(k.data().sandbox_id).or_default()[2] += 1;
    }
    for (id, [cgroups, fs, net]) in per {
        println!("sandbox.{id}=cgroups:{cgroups} fs:{fs} net:{net}");
    }
    // Per-program statistics (with kernel.bpf_stats_enabled=1), for the overhead benchmark.
    for info in aya::programs::loaded_programs().flatten() {
        if let Some(name) = info.name_as_str() {
            if super::LSM_HOOKS.iter().any(|h| h.starts_with(name)) || name == "bench_noop" {
                println!(
                    "prog.{name}={} {}",
                    info.run_time().as_nanos(),
                    info.run_count()
                );
            }
        }
    }
    println!("{}", layer.describe());
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct KernelBenchNoopArgs {
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Attach the no-op LSM program to `file_open`, run CMD outside any sandbox, print the no-op's
/// run time and count, detach. The baseline of the overhead benchmark.
pub fn kernel_bench_noop(args: KernelBenchNoopArgs) -> CmdResult {
    let inner = || -> Result<i32> {
        let layer = KernelLayer::load()?;
        let object = super::EBPF_OBJECT.context("kernel layer not built in")?;
        let mut ebpf = aya::EbpfLoader::new()
            .map_pin_path(layer.pin_dir().join("maps"))
            .load(object)?;
        let btf = aya::Btf::from_sys_fs()?;
        let program: &mut aya::programs::Lsm = ebpf
            .program_mut("bench_noop")
            .context("no bench_noop program")?
            .try_into()?;
        program.load("file_open", &btf)?;
        program.attach()?;
        let status = std::process::Command::new(&args.command[0])
            .args(&args.command[1..])
            .status()?;
        let info = program.info()?;
        println!(
            "prog.bench_noop={} {}",
            info.run_time().as_nanos(),
            info.run_count()
        );
        Ok(status.code().unwrap_or(1))
    };
    inner().map_err(|e| Exit::failure(format!("nono: {e:#}")))
}
