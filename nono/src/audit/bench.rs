//! `nono audit bench` (hidden; `cargo xtask bench audit` runs it on a release build): the
//! auditor's ingestion rate, a lossless 1,000,000-event burst with the process's peak memory,
//! and the time `nono audit show` takes to print its first screen of that session.
//!
//! Privilege: none (resetting the peak-RSS counter writes `/proc/self/clear_refs`, which
//! every process may do for itself).
//!
//! The event source is the real decoding path: 80-byte `nono_common::Event` records, as the
//! BPF programs write them to the ring buffer, decoded by `KernelEvent::decode`, converted by
//! `AuditEvent::from_kernel` and sent in ring-drain-sized batches with the async `send` a
//! ring-buffer reader uses. Only the kernel is absent (this machine has no BPF LSM).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::event::{AuditEvent, ClockOffset};
use super::ingest::Auditor;
use super::query;
use super::store::{new_session_id, NewSession, Store};
use crate::exit::{CmdResult, Exit};
use crate::kernel::events::KernelEvent;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A directory for the benchmark's stores (it gets a fresh `nono/audit.db`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Events in the burst.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// Ring-buffer reads return what accumulated since the last wake-up; this is a typical size.
const DRAIN: usize = 256;

fn raw_record(i: u64) -> [u8; std::mem::size_of::<nono_common::Event>()] {
    let net = i % 4 == 3;
    let e = nono_common::Event {
        time_ns: 1_000_000 + i,
        sandbox_id: 1,
        tgid: 4242,
        pid: 4242,
        uid: 1000,
        rule_id: (i % 40) as u32,
        hook: if net {
            nono_common::Hook::Connect4 as u16
        } else {
            nono_common::Hook::FileOpen as u16
        },
        decision: i.is_multiple_of(10) as u8,
        access: if net { libc::IPPROTO_TCP as u8 } else { 1 },
        dev: (8 << 20) | 1,
        port: if net { 443 } else { 0 },
        family: if net { libc::AF_INET as u16 } else { 0 },
        ino: 1_000 + i,
        addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        comm: *b"agent\0\0\0\0\0\0\0\0\0\0\0",
    };
    // SAFETY: Event is plain old data without padding (asserted in nono-common).
    unsafe { std::mem::transmute(e) }
}

fn session(store: &mut Store) -> Result<super::store::Cursor, Exit> {
    store
        .begin_session(&NewSession {
            id: new_session_id().map_err(|e| Exit::failure(e.to_string()))?,
            started_ns: super::time::now_ns(),
            uid: 0,
            user: "bench".into(),
            argv: vec!["bench".into()],
            cwd: b"/".to_vec(),
            profile: "bench".into(),
            policy_digest: "sha256:bench".into(),
            layers: serde_json::json!([]),
            nono_pid: std::process::id(),
        })
        .map_err(|e| Exit::failure(e.to_string()))
}

/// User + system CPU seconds of this process so far.
fn process_cpu() -> f64 {
    // SAFETY: getrusage fills one rusage struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Resets the peak-RSS counter (VmHWM) so the next reading covers only what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Burst {
    secs: f64,
    /// CPU seconds of the writer thread, and of the whole process (source included).
    writer_cpu: f64,
    process_cpu: f64,
    stored: i64,
    dropped: u64,
    peak_rss_kib: u64,
    sid: i64,
}

/// Sends `n` events through the auditor as a ring-buffer reader would; returns when all are
/// committed.
fn burst(db: &Path, n: u64, wait: bool) -> Result<Burst, Exit> {
    let fail = |e: super::AuditError| Exit::failure(e.to_string());
    let mut store = Store::open(db).map_err(fail)?;
    let cursor = session(&mut store)?;
    let sid = cursor.sid;
    reset_peak_rss();
    let cpu0 = process_cpu();
    let start = Instant::now();
    let auditor = Auditor::start(store, cursor).map_err(|e| Exit::failure(e.to_string()))?;
    let tx = auditor.sender();
    let clock = ClockOffset::now();
    let source = |id: u32| Some(format!("bench.nono:{id}:1"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Exit::failure(e.to_string()))?;
    rt.block_on(async {
        let mut i = 0;
        while i < n {
            let batch: Vec<AuditEvent> = (i..(i + DRAIN as u64).min(n))
                .filter_map(|j| KernelEvent::decode(&raw_record(j)))
                .map(|k| AuditEvent::from_kernel(&k, clock, source))
                .collect();
            i += DRAIN as u64;
            if wait {
                if tx.send(batch).await.is_err() {
                    break;
                }
            } else {
                tx.try_send(batch);
            }
        }
    });
    let summary = auditor
        .finish(super::time::now_ns(), Some(0))
        .map_err(fail)?;
    let secs = start.elapsed().as_secs_f64();
    Ok(Burst {
        secs,
        writer_cpu: summary.writer_cpu_ns as f64 / 1e9,
        process_cpu: process_cpu() - cpu0,
        stored: summary.events - 1,
        dropped: summary.dropped_user,
        peak_rss_kib: vm_kib("VmHWM:"),
        sid,
    })
}

/// The same rows appended straight to the store on one thread (no channel, no task): the
/// cost of SQLite and the hash chain alone, as the baseline. Rows are made a transaction's
/// worth at a time, outside the timed part, so memory stays bounded as in the burst.
fn direct(db: &Path, n: u64) -> Result<f64, Exit> {
    let fail = |e: super::AuditError| Exit::failure(e.to_string());
    let mut store = Store::open(db).map_err(fail)?;
    let mut cursor = session(&mut store)?;
    let clock = ClockOffset::now();
    let mut secs = 0.0;
    let step = super::ingest::WRITE_BATCH as u64;
    let mut i = 0;
    while i < n {
        let rows: Vec<_> = (i..(i + step).min(n))
            .filter_map(|j| KernelEvent::decode(&raw_record(j)))
            .map(|k| {
                AuditEvent::from_kernel(&k, clock, |id| Some(format!("bench.nono:{id}:1")))
                    .into_row()
            })
            .collect();
        let start = Instant::now();
        store.append(&mut cursor, &rows, 0, 0).map_err(fail)?;
        secs += start.elapsed().as_secs_f64();
        i += step;
    }
    Ok(secs)
}

/// Time until `nono audit show ID` has printed `lines` lines (a first screen), killed after.
fn first_screen(state: &Path, id: &str, lines: usize) -> Result<f64, Exit> {
    let exe = std::env::current_exe().map_err(|e| Exit::failure(e.to_string()))?;
    let start = Instant::now();
    let mut child = Command::new(exe)
        .args(["audit", "show", id])
        .env("XDG_STATE_HOME", state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Exit::failure(e.to_string()))?;
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    for _ in 0..lines {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
    }
    let t = start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Ok(t)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn main(args: BenchArgs) -> CmdResult {
    let state = args.dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let db = state.join("nono").join(super::DB_NAME);
    let n = args.events;
    let mut rates = Vec::new();
    let mut writer_rates = Vec::new();
    let mut cpu_per_event = Vec::new();
    let mut direct_rates = Vec::new();
    let mut last = None;
    for run in 0..args.runs.max(1) {
        let d = direct(&args.dir.join(format!("direct-{run}.db")), n)?;
        let _ = std::fs::remove_file(args.dir.join(format!("direct-{run}.db")));
        direct_rates.push(n as f64 / d);
        let b = burst(&db, n, true)?;
        if b.stored as u64 != n || b.dropped != 0 {
            return Err(Exit::failure(format!(
                "burst lost events: {} of {n} stored, {} dropped",
                b.stored, b.dropped
            )));
        }
        rates.push(n as f64 / b.secs);
        writer_rates.push(n as f64 / b.writer_cpu);
        cpu_per_event.push(b.process_cpu / n as f64);
        println!(
            "run {run}: burst of {n} events committed in {:.2} s ({:.0} events/s; writer thread \
             {:.2} CPU s, process {:.2} CPU s), stored {}, dropped 0, peak RSS {:.1} MiB; direct \
             appends {:.0} events/s; load average {}",
            b.secs,
            n as f64 / b.secs,
            b.writer_cpu,
            b.process_cpu,
            b.stored,
            b.peak_rss_kib as f64 / 1024.0,
            n as f64 / d,
            load_average()
        );
        last = Some(b);
    }
    let b = last.expect("one run");
    // Never waiting: how much a source that cannot wait would lose at full speed.
    let nowait = burst(&state.join("nono").join("nowait.db"), n, false)?;
    let store = Store::open(&db).map_err(|e| Exit::failure(e.to_string()))?;
    let s = query::by_sid(&store, b.sid)
        .map_err(|e| Exit::failure(e.to_string()))?
        .ok_or_else(|| Exit::failure("the burst session vanished"))?;
    let small = burst(&db, 10, true)?;
    let small_id = query::by_sid(&store, small.sid)
        .map_err(|e| Exit::failure(e.to_string()))?
        .expect("small session")
        .id;
    let screens = 11;
    let mut big_t = Vec::new();
    let mut small_t = Vec::new();
    for _ in 0..screens {
        big_t.push(first_screen(&state, &s.id, 50)?);
        small_t.push(first_screen(&state, &small_id, 12)?);
    }
    let (big, small) = (median(big_t), median(small_t));
    let rate = median(rates);
    let base = median(direct_rates);
    println!();
    println!(
        "audit ingestion ({n} events, median of {} runs):",
        args.runs.max(1)
    );
    println!(
        "  auditor (decode + convert + channel + hash chain + SQLite): {rate:.0} events/s \
         (target >= 200000)"
    );
    println!(
        "  writer thread alone, per CPU second (what one free core sustains): {:.0} events/s; \
         whole pipeline {:.2} us of CPU per event",
        median(writer_rates),
        median(cpu_per_event) * 1e6
    );
    println!(
        "  baseline, direct appends on one thread:                      {base:.0} events/s \
         (auditor/baseline = {:.2})",
        rate / base
    );
    println!(
        "  burst lossless: {} of {n} stored, 0 dropped; peak RSS of the whole process {:.1} MiB \
         (target < 64)",
        s.event_count - 1,
        b.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "  a source that never waits (try_send) at full speed: {} of {n} dropped and counted",
        nowait.dropped
    );
    println!(
        "audit show, first screen (median of {screens}): {:.1} ms on the {}-event session \
         (target < 200), {:.1} ms on a 10-event session (ratio {:.2})",
        big * 1e3,
        s.event_count,
        small * 1e3,
        big / small
    );
    Ok(0)
}
