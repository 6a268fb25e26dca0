//! `bench_rollback`: snapshot and restore speed of `nono run --rollback`, next to `cp -a`.
//!
//! A generated tree of 10,000 files (100 directories x 100 files of ~21 KB of distinct
//! pseudo-random bytes, 200 MiB in all) lives under `target/bench-rollback` (not `/tmp`:
//! rollback skips scratch space). Each round, with a fresh store:
//! 1. first snapshot: `nono run --rollback --allow TREE -- /bin/true` (walk, hash and store
//!    every file, `syncfs`, run, record changes);
//! 2. unchanged re-snapshot: the same command again (metadata fast path, nothing read);
//! 3. restore: 1,000 files are rewritten behind nono's back, then `nono rollback restore`
//!    of the second session is timed;
//! 4. baselines in the same round: `nono run --allow TREE -- /bin/true` without rollback,
//!    `cp -a TREE`, and `cp -a` followed by `sync -f` (nono's snapshot ends with a syncfs).
//!
//! Before each write-heavy step (first snapshot, each `cp -a`), an untimed `sync` writes back
//! what the earlier steps left dirty, so no step pays for another's writeback.
//!
//! Nothing is deleted until every round is done: each round has its own store and its own
//! copies. On ext4 without a journal (this CI machine's root file system), the inode allocator
//! skips every inode freed in the last 60 s (`recently_deleted()` in `fs/ext4/ialloc.c`, a
//! buffer-cache lookup per skipped inode), so creating 10,000 files right after deleting tens
//! of thousands costs seconds in the allocator alone: `cp -a` of the tree went from 0.45 s to
//! 2.5 to 7.5 s, and the first snapshot from 0.64 s to 4.1 s, once earlier rounds' stores and
//! copies were removed between rounds. That measured the allocator, not nono. So everything is
//! removed at the end, and a run that starts less than a minute after the last one's removal
//! (or finds an interrupted run's files) waits the allocator's window out first.
//!
//! The page cache is warm for every variant (the tree was just written or read), so the
//! figures compare CPU and write cost, not cold reads. Targets (issue 6): first snapshot
//! < 2 s, unchanged re-snapshot < 300 ms, restore of 1,000 files < 1 s, on 2 cores.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 100;
const FILE_SIZE: usize = 200 * 1024 * 1024 / (DIRS * FILES_PER_DIR);
const CHANGED: usize = 1000;

fn noise(buf: &mut [u8], seed: u64) {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn file_path(tree: &Path, i: usize) -> PathBuf {
    tree.join(format!("d{:03}", i / FILES_PER_DIR))
        .join(format!("f{i:05}.bin"))
}

fn generate(tree: &Path) -> Result<()> {
    let mut buf = vec![0u8; FILE_SIZE];
    for i in 0..DIRS * FILES_PER_DIR {
        let p = file_path(tree, i);
        if i % FILES_PER_DIR == 0 {
            fs::create_dir_all(p.parent().unwrap())?;
        }
        noise(&mut buf, i as u64 + 1);
        fs::write(&p, &buf).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}

fn timed(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let t = start.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(t)
}

/// A `{:?}` Duration (`12.5ms`, `1.2s`, `830µs`) following `label ` in nono's `-v` log.
fn logged(stderr: &str, label: &str) -> Option<Duration> {
    let rest = &stderr[stderr.find(&format!("{label} "))? + label.len() + 1..];
    let end = rest.find([',', ')'])?;
    let text = &rest[..end];
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1e3,
        "µs" | "us" => n / 1e6,
        "ns" => n / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Like [`timed`], for `nono -v run --rollback`: also the snapshot's phases from its log.
fn timed_phases(cmd: &mut Command) -> Result<(Duration, [Duration; 3])> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let t = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {err}", out.status);
    }
    let phase = |l: &str| logged(&err, l).with_context(|| format!("no `{l}` in: {err}"));
    Ok((t, [phase("walk")?, phase("hash+store")?, phase("syncfs")?]))
}

/// Writes back every dirty page before a write-heavy measurement (untimed), so it does not
/// pay for the previous one's writeback: the first snapshot and `cp -a` each write the whole
/// tree, and on this machine's disk the earlier rounds' data otherwise throttles the later.
fn settle() -> Result<()> {
    let status = Command::new("sync").status()?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn latest_session(nono: &Path, state: &Path) -> Result<String> {
    let out = Command::new(nono)
        .args(["rollback", "list", "--json"])
        .env("XDG_STATE_HOME", state)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The first "id" of the newest-first list.
    let id = text
        .split("\"id\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("no session listed")?;
    Ok(id.to_string())
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// How long ext4 without a journal keeps freed inodes from being reused (`RECENTCY_MIN`, in
/// seconds, in `fs/ext4/ialloc.c`), plus a margin.
const EXT4_RECENTLY_DELETED: Duration = Duration::from_secs(62);

/// Where the time the last run removed its files is kept, next to `base`.
fn removal_marker(base: &Path) -> PathBuf {
    base.with_extension("removed")
}

/// Remove everything under `base` and note when, so the next run can wait for the inodes. The
/// `sync` writes the freed inodes' table blocks back: while they are dirty the allocator's
/// window is 6 minutes instead of 1.
fn remove_all(base: &Path) -> Result<()> {
    fs::remove_dir_all(base).with_context(|| format!("cannot remove {}", base.display()))?;
    settle()?;
    fs::write(removal_marker(base), b"")?;
    Ok(())
}

/// Wait until the inodes a previous run freed may be reused (see the module comment).
fn wait_for_freed_inodes(base: &Path) -> Result<()> {
    if base.exists() {
        remove_all(base)?;
    }
    let since = fs::metadata(removal_marker(base))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    if let Some(left) = since.and_then(|s| EXT4_RECENTLY_DELETED.checked_sub(s)) {
        eprintln!(
            "waiting {} s: inodes the last run freed are not reused sooner (see the module comment)",
            left.as_secs() + 1
        );
        std::thread::sleep(left);
    }
    Ok(())
}

pub fn bench_rollback(nono: &Path, base: &Path, rounds: usize) -> Result<String> {
    wait_for_freed_inodes(base)?;
    fs::create_dir_all(base)?;
    let tree = base.join("tree");
    generate(&tree)?;
    let run_args = |rollback: bool, state: &Path| {
        let mut c = Command::new(nono);
        c.args(["-v", "run"]);
        if rollback {
            c.arg("--rollback");
        }
        c.arg("--allow")
            .arg(&tree)
            .arg("--workdir")
            .arg(&tree)
            .args(["--", "/bin/true"])
            .env("XDG_STATE_HOME", state);
        c
    };
    let (mut first, mut again, mut restore, mut plain, mut cp, mut cp_sync) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut first_phases, mut again_phases): (Vec<[Duration; 3]>, Vec<[Duration; 3]>) =
        (vec![], vec![]);
    let mut buf = vec![0u8; FILE_SIZE];
    for round in 0..rounds {
        let state = base.join(format!("state{round}"));
        fs::create_dir_all(&state)?;
        plain.push(timed(&mut run_args(false, &state))?);
        settle()?;
        let (t, p) = timed_phases(&mut run_args(true, &state))?;
        first.push(t);
        first_phases.push(p);
        let (t, p) = timed_phases(&mut run_args(true, &state))?;
        again.push(t);
        again_phases.push(p);
        let id = latest_session(nono, &state)?;
        for k in 0..CHANGED {
            let i = k * (DIRS * FILES_PER_DIR / CHANGED);
            noise(&mut buf, 1_000_000 + (round * CHANGED + k) as u64);
            fs::write(file_path(&tree, i), &buf)?;
        }
        restore.push(timed(
            Command::new(nono)
                .args(["rollback", "restore", &id])
                .env("XDG_STATE_HOME", &state),
        )?);
        // The restore must have undone the changes: the next unchanged check would differ.
        let check = Command::new(nono)
            .args(["rollback", "restore", &id, "--dry-run"])
            .env("XDG_STATE_HOME", &state)
            .output()?;
        if !String::from_utf8_lossy(&check.stdout).contains(" 0 path(s)") {
            bail!(
                "restore left differences:\n{}",
                String::from_utf8_lossy(&check.stdout)
            );
        }
        settle()?;
        let dest = base.join(format!("copy{round}"));
        cp.push(timed(Command::new("cp").arg("-a").arg(&tree).arg(&dest))?);
        settle()?;
        let dest = base.join(format!("copy{round}-sync"));
        let start = Instant::now();
        timed(Command::new("cp").arg("-a").arg(&tree).arg(&dest))?;
        timed(Command::new("sync").arg("-f").arg(&dest))?;
        cp_sync.push(start.elapsed());
        let ph = |p: [Duration; 3]| {
            format!(
                "(walk {} hash+store {} syncfs {})",
                secs(p[0]),
                secs(p[1]),
                secs(p[2])
            )
        };
        eprintln!(
            "round {}: plain {} first {} {} again {} {} restore {} cp -a {} cp -a+sync {}",
            round + 1,
            secs(plain[round]),
            secs(first[round]),
            ph(first_phases[round]),
            secs(again[round]),
            ph(again_phases[round]),
            secs(restore[round]),
            secs(cp[round]),
            secs(cp_sync[round])
        );
    }
    let phase_medians = |v: &[[Duration; 3]]| -> [Duration; 3] {
        [0, 1, 2].map(|i| median(&mut v.iter().map(|p| p[i]).collect::<Vec<_>>()))
    };
    let (fp, ap) = (phase_medians(&first_phases), phase_medians(&again_phases));
    let (first, again, restore, plain, cp, cp_sync) = (
        median(&mut first),
        median(&mut again),
        median(&mut restore),
        median(&mut plain),
        median(&mut cp),
        median(&mut cp_sync),
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let verdict = |d: Duration, target: Duration| {
        if d <= target {
            format!("meets < {}", secs(target))
        } else {
            format!("MISSES < {}", secs(target))
        }
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rollback benchmark: {} files, {} MiB, {} rounds, medians (whole commands, wall time)",
        DIRS * FILES_PER_DIR,
        (DIRS * FILES_PER_DIR * FILE_SIZE) >> 20,
        rounds
    );
    let _ = writeln!(s, "  nono run -- /bin/true (no rollback)   {}", secs(plain));
    let _ = writeln!(
        s,
        "  first snapshot run                    {}  ({}; {:.2}x cp -a, {:.2}x cp -a + sync)",
        secs(first),
        verdict(first, Duration::from_secs(2)),
        ratio(first, cp),
        ratio(first, cp_sync)
    );
    let _ = writeln!(
        s,
        "    of which (nono -v): walk {}, hash+store {}, syncfs {}",
        secs(fp[0]),
        secs(fp[1]),
        secs(fp[2])
    );
    let _ = writeln!(
        s,
        "  unchanged re-snapshot run             {}  ({}; {:.2}x cp -a)",
        secs(again),
        verdict(again, Duration::from_millis(300)),
        ratio(again, cp)
    );
    let _ = writeln!(
        s,
        "    of which (nono -v): walk {}, hash+store {}, syncfs {}",
        secs(ap[0]),
        secs(ap[1]),
        secs(ap[2])
    );
    let _ = writeln!(
        s,
        "  restore of {CHANGED} changed files          {}  ({}; {:.2}x cp -a of the whole tree)",
        secs(restore),
        verdict(restore, Duration::from_secs(1)),
        ratio(restore, cp)
    );
    let _ = writeln!(s, "  cp -a of the tree                     {}", secs(cp));
    let _ = writeln!(
        s,
        "  cp -a + sync -f                       {}",
        secs(cp_sync)
    );
    remove_all(base)?;
    Ok(s)
}
