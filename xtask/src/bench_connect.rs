//! `bench_connect`: what the kernel layer's network rules add to a TCP connect, measured side
//! by side in one run (issue 7's target: under 20 µs added per connect on the host).
//!
//! Three copies of one helper ([`connect_loop`], this binary re-run as `xtask connect-loop`)
//! connect to the same loopback listener, each timing only `connect(2)` (socket creation and
//! close are outside the timed span, and nono's start-up is long over when the first batch is
//! asked for):
//! - **none:** a plain child process, outside any sandbox;
//! - **cidr:** inside `nono run` as root with the kernel layer's network part, the address and
//!   port allowed by a CIDR rule (`127.0.0.2/32 tcp port P`): the `connect4` program's sandbox
//!   lookup and LPM-trie lookup, next to Landlock's port check;
//! - **domain:** inside `nono run` with a domain rule only: the address was put in the map by
//!   nono's resolver (the bench asks it once before timing, TTL 1 h), so the same programs
//!   find a resolver-made entry, and the port-53 redirect check runs first.
//!
//! Wall-clock medians on a loaded 2-core machine move by more than the programs cost, so the
//! bench also reads the kernel's own account of the `connect4` program
//! (`kernel.bpf_stats_enabled`, run_time_ns / run_cnt from `nono kernel-status`, summed over
//! every loaded `connect4`) around each sandboxed batch: a batch whose run count is not exactly
//! its connects (another sandbox connected meanwhile) is left out of that figure.
//!
//! Variants are interleaved batch by batch, so machine load hits them alike. Each connect
//! closes with `SO_LINGER 0` (a reset), so no TIME_WAIT piles up and ephemeral ports never run
//! out. Everything stays on loopback; the DNS upstream is the tests' `Zone` on 127.0.0.1, never
//! the machine's resolver.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hickory_proto::rr::RecordType;
use nono_e2e::egress_support::{addresses, query_udp, Zone};

const TARGET_ADDED: Duration = Duration::from_micros(20);
const BATCH: usize = 200;

/// `xtask connect-loop IP:PORT`: for each line `N` on stdin, N times socket + timed connect +
/// reset-close; prints the N connect times in ns on one line (`ERR errno` on a failure).
pub fn connect_loop(target: &str) -> Result<()> {
    let target: SocketAddrV4 = target.parse().context("connect-loop IP:PORT")?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: target.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(target.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let n: usize = line?.trim().parse().context("a count per line")?;
        let mut times = Vec::with_capacity(n);
        let mut failed = None;
        for _ in 0..n {
            // SAFETY: plain syscalls on a descriptor this loop owns; the pointers are to
            // locals that outlive the calls, with their exact sizes.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    failed = Some(std::io::Error::last_os_error());
                    break;
                }
                let start = Instant::now();
                let rc = libc::connect(
                    fd,
                    &addr as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                let took = start.elapsed();
                let err = std::io::Error::last_os_error();
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    &linger as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
                libc::close(fd);
                if rc != 0 {
                    failed = Some(err);
                    break;
                }
                times.push(took.as_nanos().to_string());
            }
        }
        let mut out = stdout.lock();
        match failed {
            Some(e) => writeln!(out, "ERR {e}")?,
            None => writeln!(out, "{}", times.join(" "))?,
        }
        out.flush()?;
    }
    Ok(())
}

/// One running helper: asked for batches over its stdin.
struct Helper {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    times: Vec<Duration>,
    /// `connect4` program time and runs over this helper's clean batches.
    prog_ns: u64,
    prog_runs: u64,
}

impl Helper {
    fn batch(&mut self, n: usize, keep: bool) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin")?;
        writeln!(stdin, "{n}")?;
        stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the {} helper ended", self.name);
        }
        if let Some(err) = line.strip_prefix("ERR ") {
            bail!("{}: connect failed: {}", self.name, err.trim());
        }
        if keep {
            for t in line.split_whitespace() {
                self.times.push(Duration::from_nanos(t.parse()?));
            }
        }
        Ok(())
    }
}

impl Drop for Helper {
    /// End of input ends the helper, and with it `nono run`, which then cleans up its
    /// cgroup and map entries; a kill only if that takes too long.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    name: &'static str,
    mut cmd: Command,
) -> Result<(Helper, BufReader<std::process::ChildStderr>)> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the {name} helper"))?;
    let stdin = child.stdin.take().context("stdin")?;
    let stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let stderr = BufReader::new(child.stderr.take().context("stderr")?);
    Ok((
        Helper {
            name,
            child,
            stdin: Some(stdin),
            stdout,
            times: Vec::new(),
            prog_ns: 0,
            prog_runs: 0,
        },
        stderr,
    ))
}

/// Read nono's stderr until the line starting with `marker` (returned), then drain the rest on
/// a thread so the pipe never fills.
fn wait_for_line(
    name: &str,
    stderr: BufReader<std::process::ChildStderr>,
    marker: &str,
) -> Result<String> {
    let mut lines = stderr.lines();
    let found = loop {
        let Some(line) = lines.next() else {
            bail!("`nono run` for the {name} helper ended before printing `{marker}`");
        };
        let line = line?;
        if line.contains(marker) {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(found)
}

/// (run_time_ns, run_cnt) of every loaded `connect4` program together.
fn connect4_stats(nono: &Path) -> Result<(u64, u64)> {
    let out = Command::new(nono).arg("kernel-status").output()?;
    let mut total = (0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(rest) = line.strip_prefix("prog.connect4=") {
            let (ns, cnt) = rest.split_once(' ').context("prog stats line")?;
            total.0 += ns.parse::<u64>()?;
            total.1 += cnt.parse::<u64>()?;
        }
    }
    Ok(total)
}

/// Turns `kernel.bpf_stats_enabled` on, and back to what it was when dropped.
struct BpfStats(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> Result<BpfStats> {
        let old = std::fs::read_to_string(BPF_STATS)?;
        std::fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(BpfStats(old.trim().to_string()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.0);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn bench_connect(nono: &Path, rounds: usize) -> Result<String> {
    anyhow::ensure!(
        unsafe { libc::geteuid() } == 0,
        "the connect benchmark needs root: the kernel layer's network part is measured"
    );
    // The listener: accepts and drops, so the backlog never fills.
    let listener = TcpListener::bind("127.0.0.2:0").context("listening on 127.0.0.2")?;
    let target = listener.local_addr()?;
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });

    // The helper, copied where the sandboxes may run it.
    let dir = std::env::temp_dir().join(format!("nono-bench-connect-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());
    let helper = dir.join("connect-loop");
    std::fs::copy(std::env::current_exe()?, &helper).context("copying the helper")?;
    let profile = |name: &str, network: serde_json::Value| -> Result<std::path::PathBuf> {
        let path = dir.join(format!("{name}.json"));
        let doc = serde_json::json!({
            "extends": ["default"],
            "filesystem": { "exec": [format!("{}/**", dir.display())] },
            "network": network,
        });
        std::fs::write(&path, serde_json::to_string(&doc)?)?;
        Ok(path)
    };
    let port = target.port();
    let cidr = profile(
        "cidr",
        serde_json::json!({ "cidrs": [{ "cidr": "127.0.0.2/32", "protocol": "tcp", "ports": [port] }] }),
    )?;
    let domain = profile(
        "domain",
        serde_json::json!({ "domains": [{ "domain": "bench.nono.test", "ports": [port] }] }),
    )?;
    let zone = Zone::start();
    zone.set("bench.nono.test", &["127.0.0.2"], 3600);

    let target_arg = target.to_string();
    let mut plain = Command::new(&helper);
    plain.args(["connect-loop", &target_arg]);
    let (none, _) = spawn("none", plain)?;

    let sandboxed = |p: &Path, extra: &[&str]| {
        let mut c = Command::new(nono);
        c.arg("run")
            .arg("-v")
            .arg("--read")
            .arg(&dir)
            .arg("--profile")
            .arg(p)
            .args(extra)
            .arg("--")
            .arg(&helper)
            .args(["connect-loop", &target_arg])
            .current_dir(&dir);
        c
    };
    let (cidr_h, stderr) = spawn("cidr", sandboxed(&cidr, &[]))?;
    wait_for_line("cidr", stderr, "cgroup-sock network: active")?;
    let upstream = zone.addr().to_string();
    let (domain_h, stderr) = spawn(
        "domain",
        sandboxed(
            &domain,
            &[
                "--dns-upstream",
                &upstream,
                "--allow-resolved",
                "127.0.0.0/8",
            ],
        ),
    )?;
    let line = wait_for_line("domain", stderr, "nono: egress: kernel mode: resolver at ")?;
    let resolver: SocketAddr = line
        .split("resolver at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .context("the resolver's address")?
        .parse()?;
    let answer = query_udp(resolver, "bench.nono.test.", RecordType::A);
    anyhow::ensure!(
        addresses(&answer) == vec![std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))],
        "nono's resolver did not answer bench.nono.test with 127.0.0.2: {answer:?}"
    );

    let mut helpers = [none, cidr_h, domain_h];
    let _stats = BpfStats::enable()?;
    let warm = 5;
    let mut dirty = 0;
    for round in 0..rounds + warm {
        // Rotate the order so no variant always follows another.
        for k in 0..helpers.len() {
            let i = (round + k) % helpers.len();
            let keep = round >= warm;
            if i == 0 {
                helpers[i].batch(BATCH, keep)?;
                continue;
            }
            let before = connect4_stats(nono)?;
            helpers[i].batch(BATCH, keep)?;
            let after = connect4_stats(nono)?;
            let runs = after.1.saturating_sub(before.1);
            if !keep {
                continue;
            }
            if runs == BATCH as u64 {
                helpers[i].prog_ns += after.0.saturating_sub(before.0);
                helpers[i].prog_runs += runs;
            } else {
                dirty += 1;
            }
        }
    }

    let mut lines = Vec::new();
    let mut medians = Vec::new();
    let mut p10s = Vec::new();
    for h in &mut helpers {
        h.times.sort();
        let m = percentile(&h.times, 0.5);
        medians.push(m);
        p10s.push(percentile(&h.times, 0.1));
        lines.push(format!(
            "  {:<34} median {:>7.2} µs   p10 {:>7.2} µs   p90 {:>7.2} µs   p99 {:>7.2} µs",
            match h.name {
                "none" => "no sandbox",
                "cidr" => "nono run, CIDR rule",
                _ => "nono run, domain rule (resolved)",
            },
            us(m),
            us(percentile(&h.times, 0.1)),
            us(percentile(&h.times, 0.9)),
            us(percentile(&h.times, 0.99)),
        ));
    }
    // Signed: on a loaded machine a sandboxed median can come out below the baseline.
    let diff = |a: Duration, b: Duration| us(a) - us(b);
    let added = |i: usize| {
        let d = diff(medians[i], medians[0]);
        format!(
            "median {d:+.2} µs (ratio {:.2}x), p10 {:+.2} µs — target < {} µs: {}",
            medians[i].as_secs_f64() / medians[0].as_secs_f64(),
            diff(p10s[i], p10s[0]),
            TARGET_ADDED.as_micros(),
            if d < us(TARGET_ADDED) {
                "met"
            } else {
                "MISSED"
            }
        )
    };
    let prog = |h: &Helper| {
        if h.prog_runs == 0 {
            "no clean batch".to_string()
        } else {
            format!(
                "{:.0} ns per run over {} runs",
                h.prog_ns as f64 / h.prog_runs as f64,
                h.prog_runs
            )
        }
    };
    Ok(format!(
        "connect benchmark ({} connects per variant, {rounds} interleaved rounds of {BATCH}, \
         loopback listener {target}; only connect(2) is timed; bpf stats on)\n{}\n  added per \
         connect, CIDR rule: {}\n  added per connect, domain rule: {}\n  the connect4 program \
         itself (kernel.bpf_stats_enabled): CIDR rule {}, domain rule {}{}",
        rounds * BATCH,
        lines.join("\n"),
        added(1),
        added(2),
        prog(&helpers[1]),
        prog(&helpers[2]),
        if dirty > 0 {
            format!(" ({dirty} batches left out: other sandboxes connected meanwhile)")
        } else {
            String::new()
        },
    ))
}

struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
