//! `bench_run`: what `nono run` costs over running the command directly, next to bubblewrap.
//!
//! The variants are timed interleaved (each round runs every variant once, in a rotating
//! order, so drift in machine load hits them alike): `/bin/true`, `nono run --profile default
//! -- /bin/true`, and `bwrap --ro-bind / / /bin/true` when bubblewrap is installed. As root,
//! `nono run` loads the kernel layer (cgroup, maps, ring-buffer reader), which is not the
//! unprivileged start-up the target is about: then the target variant is `nono run` as
//! `nobody` (through `setpriv`, compared with `setpriv ... /bin/true`), and the root run is
//! reported beside it as the kernel layer's cost, and the same unprivileged run with the audit
//! trail off (a profile extending `default`) beside it as the audit session's cost. Each run is
//! reaped with `wait4`, whose rusage gives the peak RSS of nono's parent process (the maximum
//! over nono and the children it reaped, and `/bin/true` is far smaller than nono).
//! Beside them, the floor (`bench_floor`): the kernel work of the same sandbox, replayed by a
//! minimal C launcher, so the report shows what any launcher pays for the profile and what is
//! nono's own.
//! Targets: nono adds at most 1.5 ms (median) over `/bin/true`; nono's peak RSS < 10 MiB, as
//! `nobody` and, with the kernel layer, as root.

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const TARGET_OVERHEAD: Duration = Duration::from_micros(1500);
const TARGET_RSS_KIB: i64 = 10 * 1024;
const WARMUP: usize = 3;

struct Variant {
    name: &'static str,
    argv: Vec<String>,
    times: Vec<Duration>,
    max_rss_kib: i64,
    /// The variant this one's added time is measured against.
    baseline: usize,
}

/// Runs `argv` as `nobody`, with every group dropped.
fn as_nobody(argv: &[&str]) -> Vec<String> {
    [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ]
    .iter()
    .chain(argv)
    .map(|s| s.to_string())
    .collect()
}

/// Run once (in `dirs`); the wall time from spawn to reap, the exit status, and the peak RSS in KiB.
/// `$HOME` and the working directory of every run.
struct Dirs {
    home: std::path::PathBuf,
    work: std::path::PathBuf,
}

fn run_once(argv: &[String], dirs: &Dirs) -> anyhow::Result<(Duration, i32, i64)> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("HOME", &dirs.home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(&dirs.work);
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", argv[0]))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped (std's Child is not waited on).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    Ok((elapsed, status, usage.ru_maxrss))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn installed(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

pub fn bench_run(nono: &Path, runs: usize) -> anyhow::Result<String> {
    let runs = runs.max(1);
    let nono_s = nono.display().to_string();
    let nono_true = [
        nono_s.as_str(),
        "run",
        "--profile",
        "default",
        "--",
        "/bin/true",
    ];
    let variant = |name, argv: Vec<String>, baseline| Variant {
        name,
        argv,
        times: vec![],
        max_rss_kib: 0,
        baseline,
    };
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    // A home and a working directory every variant (and `nobody`) can use: nono's audit store
    // goes to $HOME/.local/state, and the default profile grants the working directory. Not
    // under /tmp, which the default profile grants writable (the credential denies under
    // $HOME would lie inside that grant), and not one inside the other, for the same reason.
    let base = nono
        .parent()
        .and_then(Path::parent)
        .context("nono's target directory")?
        .join("bench-run");
    let dirs = Dirs {
        home: base.join("home"),
        work: base.join("work"),
    };
    for d in [&base, &dirs.home, &dirs.work] {
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    }

    // The default profile with the audit trail off, to show what the session costs a run.
    let audit_off = base.join("audit-off.nono");
    std::fs::write(
        &audit_off,
        "profile audit-off\nextends default\naudit off\n",
    )?;
    let audit_off = audit_off.display().to_string();
    let nono_true_audit_off = [
        nono_s.as_str(),
        "run",
        "--profile",
        audit_off.as_str(),
        "--",
        "/bin/true",
    ];
    let mut variants = vec![variant("/bin/true", vec!["/bin/true".into()], 0)];
    // The variant the target applies to.
    let target;
    // The root run, whose parent (reading the kernel layer's events) must stay under the RSS
    // target too.
    let mut root_run = None;
    // As root, the target runs as `nobody`; the floor must run as the same user.
    let target_as_nobody = root && installed("setpriv");
    if target_as_nobody {
        variants.push(variant(
            "/bin/true as nobody (setpriv)",
            as_nobody(&["/bin/true"]),
            0,
        ));
        target = variants.len();
        variants.push(variant(
            "nono run ... as nobody (Landlock+seccomp)",
            as_nobody(&nono_true),
            1,
        ));
        variants.push(variant(
            "  the same with `audit off`",
            as_nobody(&nono_true_audit_off),
            1,
        ));
        root_run = Some(variants.len());
        variants.push(variant(
            "nono run ... as root (+ kernel layer)",
            nono_true.map(String::from).to_vec(),
            0,
        ));
    } else {
        target = variants.len();
        variants.push(variant(
            "nono run --profile default -- /bin/true",
            nono_true.map(String::from).to_vec(),
            0,
        ));
    }
    let mut notes = Vec::new();
    let mut floor = None;
    // The floor: the same kernel work from a minimal launcher (`bench_floor`), traced from
    // the target variant's own run and compared with the same baseline.
    if installed("strace") {
        let traced = &variants[target];
        let (argv, baseline) = (traced.argv.clone(), traced.baseline);
        let launcher_argv = |launcher: &Path| {
            let launcher = launcher.display().to_string();
            if target_as_nobody {
                as_nobody(&[launcher.as_str(), "/bin/true"])
            } else {
                vec![launcher, "/bin/true".into()]
            }
        };
        let (launcher, plan) = crate::bench_floor::build(
            &argv,
            &[("HOME", &dirs.home)],
            &dirs.work,
            &base.join("floor"),
        )
        .context("building the floor launcher")?;
        notes.push(format!(
            "floor: {} Landlock path rules and {} seccomp programs ({} instructions), replayed from a traced run",
            plan.rules.len(),
            plan.programs.len(),
            plan.programs.iter().map(|(_, p)| p.len()).sum::<usize>()
        ));
        floor = Some(variants.len());
        variants.push(variant(
            "  floor: the same kernel work, C launcher",
            launcher_argv(&launcher),
            baseline,
        ));
    } else {
        notes.push("floor skipped: strace is not installed (`apt-get install -y strace`)".into());
    }
    if installed("bwrap") {
        variants.push(variant(
            "bwrap --ro-bind / / /bin/true",
            ["bwrap", "--ro-bind", "/", "/", "/bin/true"]
                .map(String::from)
                .to_vec(),
            0,
        ));
    } else {
        notes.push("bwrap skipped: not installed (`apt-get install -y bubblewrap`)".to_string());
    }
    // Every variant must succeed before it is worth timing; nono's refusal is shown verbatim.
    for v in &variants {
        let out = Command::new(&v.argv[0])
            .args(&v.argv[1..])
            .env("HOME", &dirs.home)
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .current_dir(&dirs.work)
            .output()
            .with_context(|| format!("cannot start {}", v.argv[0]))?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                v.argv.join(" "),
                out.status.code().map_or_else(
                    || format!("signal {:?}", out.status.signal()),
                    |c| format!("exit {c}")
                ),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    for round in 0..WARMUP + runs {
        let n = variants.len();
        for k in 0..n {
            let v = &mut variants[(round + k) % n];
            let (t, status, rss) = run_once(&v.argv, &dirs)?;
            if status != 0 {
                bail!(
                    "`{}` failed during the benchmark (status {status:#x})",
                    v.name
                );
            }
            if round >= WARMUP {
                v.times.push(t);
                v.max_rss_kib = v.max_rss_kib.max(rss);
            }
        }
    }

    let median_of = |v: &Variant| {
        let mut t = v.times.clone();
        t.sort();
        percentile(&t, 0.5)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench_run: {runs} interleaved runs per variant (+{WARMUP} warm-up)"
    );
    let _ = writeln!(
        out,
        "{:<42} {:>10} {:>10} {:>8} {:>12} {:>10}",
        "variant", "median ms", "p90 ms", "ratio", "+median ms", "peak RSS"
    );
    let mut nono_overhead = Duration::ZERO;
    let mut nono_rss = 0;
    for (i, v) in variants.iter().enumerate() {
        let mut t = v.times.clone();
        t.sort();
        let (med, p90) = (percentile(&t, 0.5), percentile(&t, 0.9));
        let base = median_of(&variants[v.baseline]);
        let ratio = if base.is_zero() {
            f64::NAN
        } else {
            med.as_secs_f64() / base.as_secs_f64()
        };
        let delta = med.saturating_sub(base);
        if i == target {
            nono_overhead = delta;
            nono_rss = v.max_rss_kib;
        }
        let _ = writeln!(
            out,
            "{:<42} {:>10.3} {:>10.3} {:>7.2}x {:>12.3} {:>7.1} MiB",
            v.name,
            ms(med),
            ms(p90),
            ratio,
            ms(delta),
            v.max_rss_kib as f64 / 1024.0
        );
    }
    if let Some(f) = floor {
        let floor_med = median_of(&variants[f]);
        let floor_overhead = floor_med.saturating_sub(median_of(&variants[variants[f].baseline]));
        let _ = writeln!(
            out,
            "floor: the profile's kernel work alone adds {:.3} ms{}; nono's own share is {:.3} ms",
            ms(floor_overhead),
            if floor_overhead > TARGET_OVERHEAD {
                " (above the target: no launcher meets it here)"
            } else {
                ""
            },
            ms(median_of(&variants[target]).saturating_sub(floor_med))
        );
    }
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    let _ = writeln!(
        out,
        "target: nono adds <= {:.1} ms median: {:.3} ms ({})",
        ms(TARGET_OVERHEAD),
        ms(nono_overhead),
        verdict(nono_overhead <= TARGET_OVERHEAD)
    );
    let _ = writeln!(
        out,
        "target: nono parent peak RSS < {} MiB: {:.1} MiB ({})",
        TARGET_RSS_KIB / 1024,
        nono_rss as f64 / 1024.0,
        verdict(nono_rss < TARGET_RSS_KIB)
    );
    if let Some(root_run) = root_run {
        let rss = variants[root_run].max_rss_kib;
        let _ = writeln!(
            out,
            "target: nono parent peak RSS < {} MiB, as root with the kernel layer: {:.1} MiB ({})",
            TARGET_RSS_KIB / 1024,
            rss as f64 / 1024.0,
            verdict(rss < TARGET_RSS_KIB)
        );
    }
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let t: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&t, 0.5), Duration::from_millis(6));
        assert_eq!(percentile(&t, 0.9), Duration::from_millis(9));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
