//! Hidden subcommands for the VM lab and the kernel tests (`nono run` is what uses the layer):
//! - `nono kernel-status` loads the layer (which sweeps stale sandboxes) and prints its state:
//!   which parts are active, entry counts in total and per sandbox, the drop counters (all
//!   slots), the number of event slots and how many are claimed, and each program's run time
//!   and count (with `kernel.bpf_stats_enabled=1`);
//! - `nono kernel-cache on|off` switches the file hooks' directory verdict cache (benchmark);
//! - `nono kernel-bench-noop -- CMD..` runs CMD with reference LSM programs attached to
//!   `file_open` (a no-op, the baseline of the overhead benchmark, and the floors of its paths),
//!   and prints their and nono's program statistics over the same windows.
//!
//! Privileges: root.

use std::ffi::OsString;

use anyhow::{Context, Result};

use super::KernelLayer;
use crate::exit::{CmdResult, Exit};

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
    println!(
        "exec_report={}",
        if layer.exec.is_active() {
            "active"
        } else {
            "off"
        }
    );
    println!("sandboxes={}", count(maps.sandboxes.keys().count()));
    println!("fs_entries={}", count(maps.fs_deny.keys().count()));
    println!(
        "fs_watches={}",
        count(
            maps.fs_watch.keys().count()
                + maps.fs_watch_next.keys().count()
                + (0..nono_common::MAX_WATCHERS)
                    .filter(|s| maps.watchers.get(s, 0).is_ok_and(|id| id != 0))
                    .count()
        )
    );
    println!(
        "net_entries={}",
        count(maps.net_v4.keys().count() + maps.net_v6.keys().count())
    );
    println!("dropped={}", layer.dropped_events().unwrap_or(0));
    // Event slots: how many there are, and which registry files (live or not yet swept) hold.
    let claimed = super::sandbox::claimed_slots();
    println!("event_slots={}", nono_common::EVENT_SLOTS);
    println!("slots_claimed={}", claimed.len());
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
    // Per-program statistics (with kernel.bpf_stats_enabled=1), for the overhead benchmarks
    // (the lab's LSM one, `cargo xtask bench connect`).
    // And the instructions the verifier processed for each (1,000,000 is the kernel's limit):
    // the headroom a change to the programs has left on this kernel (5.16+). One pass over the
    // loaded programs for both; the largest count where several objects are loaded.
    let mut stats = ProgramStats::new();
    let mut verified = std::collections::BTreeMap::new();
    for (name, info) in our_programs() {
        if let Some(count) = info.verified_instruction_count() {
            let largest = verified.entry(name.clone()).or_insert(0);
            *largest = count.max(*largest);
        }
        stats.insert(name, run_stats(&info));
    }
    for (name, (run_ns, runs)) in stats {
        println!("prog.{name}={run_ns} {runs}");
    }
    for (name, count) in verified {
        println!("verified.{name}={count}");
    }
    println!("{}", layer.describe());
    Ok(0)
}

/// nono's loaded programs, by name (the kernel keeps the first 15 bytes: `inode_permissio`).
fn our_programs() -> impl Iterator<Item = (String, aya::programs::ProgramInfo)> {
    aya::programs::loaded_programs()
        .flatten()
        .filter_map(|info| {
            let name = info.name_as_str()?.to_string();
            let ours = super::LSM_HOOKS.iter().any(|h| h.starts_with(&name))
                || super::SOCK_PROGRAMS.iter().any(|(p, _)| *p == name)
                || nono_common::names::EXEC_TRACEPOINT.starts_with(&name);
            ours.then_some((name, info))
        })
}

/// A program's cumulative (run time in ns, run count). Counted only while
/// `kernel.bpf_stats_enabled` is 1.
fn run_stats(info: &aya::programs::ProgramInfo) -> (u128, u64) {
    (info.run_time().as_nanos(), info.run_count())
}

/// [`run_stats`] of each of nono's programs, by program name.
fn program_stats() -> ProgramStats {
    our_programs()
        .map(|(name, info)| (name, run_stats(&info)))
        .collect()
}

#[derive(Debug, clap::Args)]
pub struct KernelCacheArgs {
    /// `on` or `off`.
    #[arg(value_parser = ["on", "off"])]
    state: String,
}

/// `nono kernel-cache on|off`: switch the file hooks' directory verdict cache (for the overhead
/// benchmark, which measures both in one boot). Prints the state that took effect: `on` needs
/// `rename_lock` in `/proc/kallsyms`.
pub fn kernel_cache(args: KernelCacheArgs) -> CmdResult {
    let layer = KernelLayer::load().map_err(|e| Exit::failure(format!("nono: {e:#}")))?;
    let on = layer
        .maps()
        .set_cache(args.state == "on")
        .map_err(|e| Exit::failure(format!("nono: {e:#}")))?;
    println!("cache={}", if on { "on" } else { "off" });
    Ok(0)
}

#[derive(Debug, clap::Args)]
pub struct KernelBenchNoopArgs {
    /// Print a window every this many milliseconds while CMD runs (0: one window, CMD's whole
    /// run).
    #[arg(long, default_value_t = 0)]
    sample_ms: u64,
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// The reference programs `kernel-bench-noop` attaches to `file_open` beside nono's: the no-op
/// (what any BPF LSM program costs) and the floors of the outside and the sandboxed paths
/// (`nono-ebpf/src/bench.rs`).
const BENCH_REFERENCES: [&str; 3] = ["bench_noop", "bench_cgroup_id", "bench_inode_rule"];

/// Attach the reference programs to `file_open` ([`BENCH_REFERENCES`]), run CMD, detach. Prints
/// windows: a `window` line, then the run time and count of each reference and of each of
/// nono's programs over that window (from just before CMD starts to just after it exits, or one
/// `--sample-ms` period of it). Every open in a window ran the references and nono's
/// `file_open`, so their ratio compares them on the same opens at the same moment: TCG timing
/// drifts by several times between windows, and a stall of the host lands in whichever program
/// runs then, so short windows let the benchmark set the stalled ones aside. The baseline of the
/// overhead benchmark. Reading the statistics opens no file, so the reads add no runs to any
/// window.
pub fn kernel_bench_noop(args: KernelBenchNoopArgs) -> CmdResult {
    let inner = || -> Result<i32> {
        let layer = KernelLayer::load()?;
        let object = super::EBPF_OBJECT.context("kernel layer not built in")?;
        // The floors read kernel structs as nono's programs do, at this kernel's offsets.
        let offsets = super::offsets::read_kernel_offsets()?;
        let mut ebpf = aya::EbpfLoader::new()
            .set_global(nono_common::names::OFFSETS, &offsets, true)
            .map_pin_path(layer.pin_dir().join("maps"))
            .load(object)?;
        let btf = aya::Btf::from_sys_fs()?;
        for name in BENCH_REFERENCES {
            let program: &mut aya::programs::Lsm = ebpf
                .program_mut(name)
                .with_context(|| format!("no {name} program"))?
                .try_into()?;
            program.load("file_open", &btf)?;
            program.attach()?;
        }
        // The references are read through their own handles: a concurrent benchmark's programs
        // of the same names are not this window's.
        let snapshot = |ebpf: &aya::Ebpf| -> Result<ProgramStats> {
            let mut stats = program_stats();
            for name in BENCH_REFERENCES {
                let program: &aya::programs::Lsm = ebpf
                    .program(name)
                    .with_context(|| format!("no {name} program"))?
                    .try_into()?;
                let info = program.info()?;
                stats.insert(name.into(), (info.run_time().as_nanos(), info.run_count()));
            }
            Ok(stats)
        };
        let mut before = snapshot(&ebpf)?;
        let mut child = std::process::Command::new(&args.command[0])
            .args(&args.command[1..])
            .spawn()?;
        let status = loop {
            let exited = if args.sample_ms == 0 {
                Some(child.wait()?)
            } else {
                std::thread::sleep(std::time::Duration::from_millis(args.sample_ms));
                child.try_wait()?
            };
            let after = snapshot(&ebpf)?;
            print_window(&before, &after);
            if let Some(status) = exited {
                break status;
            }
            before = after;
        };
        Ok(status.code().unwrap_or(1))
    };
    inner().map_err(|e| Exit::failure(format!("nono: {e:#}")))
}

/// (run time in ns, run count) by program name.
type ProgramStats = std::collections::BTreeMap<String, (u128, u64)>;

/// One window: each program's runs between two snapshots.
fn print_window(before: &ProgramStats, after: &ProgramStats) {
    println!("window");
    for (name, (run_ns, runs)) in after {
        let (ns_before, runs_before) = before.get(name).copied().unwrap_or_default();
        println!(
            "prog.{name}={} {}",
            run_ns.saturating_sub(ns_before),
            runs.saturating_sub(runs_before)
        );
    }
}
