//! The tests. Each runs the real `nono run -v` with this binary's `probe` inside, and asserts
//! the errno of every operation and that denied targets are unchanged.
//!
//! A test states its rules as flags (`--deny PATH`, `--deny-write PATH`, `--allow-net
//! PROTO:CIDR[@PORTS]`, `--listen PROTO:PORTS`, `--audit-all`, `--grant-cgroupfs`, `--netns
//! NAME`, `--exec-deny PATH`, `--exec-only PATH`, `--domain RULE`), which [`lab_profile`] turns
//! into a profile file (`--dns-upstream ADDR` and `--allow-resolved CIDR` go to `nono run`
//! itself): read and exec on `/`, read-write and exec on the test's scratch directory, and the
//! rules. So every deny lies inside a grant Landlock can't
//! split (the scratch directory is writable): the kernel layer is what enforces it, and its
//! denial is EPERM where Landlock's would be EACCES.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{Ctx, Needs, Test};

const OK: &str = "ok";
const EPERM: &str = "errno 1";

macro_rules! tests {
    ($($name:ident: $needs:ident),* $(,)?) => {
        pub const ALL: &[Test] = &[$(Test { name: stringify!($name), needs: Needs::$needs, run: $name }),*];
    };
}

tests! {
    bpf_lsm_listed: Lsm,
    nono_has_kernel_layer: CgroupSock,
    programs_within_verifier_budget: Lsm,
    deny_inside_grant: Lsm,
    watches_on_denied_paths_refused: Lsm,
    nono_state_is_denied_under_a_write_grant: Lsm,
    file_created_later_in_denied_dir: Lsm,
    rename_and_link_out_of_denied_dir: Lsm,
    directory_above_a_deny_keeps_its_name: Lsm,
    preexisting_hard_link_is_denied: Lsm,
    bind_mount_alias_is_denied: Lsm,
    deny_write_blocks_every_write_op: Lsm,
    exec_of_denied_binary: Lsm,
    exec_deny_list_by_inode: Lsm,
    exec_allowlist: Lsm,
    signals_and_ptrace_stay_inside: Lsm,
    bpf_and_module_loading_denied: Lsm,
    unix_sockets_outside_denied: Lsm,
    cgroupfs_writes_are_denied: Lsm,
    outside_process_unaffected: Lsm,
    events_carry_rule_id_and_drop_counter: Lsm,
    exec_events_carry_binary_and_argv: Lsm,
    denied_execs_carry_binary_and_argv: Lsm,
    file_events_carry_opened_paths: Lsm,
    path_hook_events_carry_paths: Lsm,
    concurrent_sessions_get_their_own_events: CgroupSock,
    event_slots_full_refuses_and_kill9_frees_a_slot: OwnMachine,
    missing_paths_bound_when_created: Lsm,
    missing_paths_bound_when_moved_into_place: Lsm,
    deeper_missing_paths_are_chained: Lsm,
    denied_file_replaced_by_rename_stays_denied: Lsm,
    unwatchable_missing_path_still_refuses: Lsm,
    cached_directory_moved_under_denied_tree_is_denied: Lsm,
    cleanup_after_exit: CgroupSock,
    cleanup_after_kill9: CgroupSock,
    net_connect_denied_by_default: CgroupSock,
    net_allowed_cidr_and_port: CgroupSock,
    net_udp_sendto: CgroupSock,
    net_bind_needs_listen_rule: CgroupSock,
    net_listen_needs_a_bound_port: Lsm,
    net_metadata_address_denied: CgroupSock,
    net_dns_redirect_v4_and_v6: CgroupSock,
    net_egress_by_domain_until_ttl: CgroupSock,
    bench_lsm_overhead: Lsm,
    bench_event_burst: CgroupSock,
}

// ---------------------------------------------------------------------------------------------
// Helpers

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: exit_code(&out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The result of each probe operation, in order.
    fn results(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(_, r)| r.to_string()))
            .collect()
    }

    fn expect(&self, expected: &[&str]) -> Result<(), String> {
        let got = self.results();
        if got.len() != expected.len() || got.iter().zip(expected).any(|(g, e)| g != e) {
            return Err(format!(
                "expected {expected:?}, got {got:?} (exit {}); stderr: {}",
                self.code,
                self.stderr.trim()
            ));
        }
        Ok(())
    }
}

/// The Landlock ABI of the running kernel (0 without Landlock).
fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: the documented version query: no ruleset, size 0, the version flag.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// A policy word: paths and CIDRs are quoted so that no character needs thought.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A rule on `path`: its subtree when it is a directory.
fn subtree(path: &str) -> String {
    if Path::new(path).is_dir() {
        quoted(&format!("{}/**", path.trim_end_matches('/')))
    } else {
        quoted(path)
    }
}

/// The profile for a test's flags (see the module comment), and the network namespace to run
/// nono in, if any. Returns the profile's lines too, for tests that check source lines.
fn lab_profile(
    ctx: &Ctx,
    flags: &[String],
) -> Result<(PathBuf, Vec<String>, Option<String>), String> {
    let mut lines = vec![
        "profile lab".to_string(),
        "read /**".to_string(),
        "exec /**".to_string(),
        format!("readwrite {}", subtree(&s(&ctx.scratch))),
        // Executable too, like a workspace with build outputs: an exec deny in it lies inside
        // a writable exec grant, which Landlock can't split, so the kernel layer decides.
        format!("exec {}", subtree(&s(&ctx.scratch))),
    ];
    let mut netns = None;
    let mut restricted_net = true;
    let mut it = flags.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--deny" => lines.push(format!("deny {}", subtree(&value()?))),
            "--deny-write" => lines.push(format!("deny write {}", subtree(&value()?))),
            // A directory rule on a path that need not exist (`deny PATH/**`).
            "--deny-tree" => lines.push(format!(
                "deny {}",
                quoted(&format!("{}/**", value()?.trim_end_matches('/')))
            )),
            "--exec-deny" => lines.push(format!("exec deny {}", subtree(&value()?))),
            "--exec-only" => lines.push(format!("exec only {}", subtree(&value()?))),
            "--allow-net" => {
                let v = value()?;
                let (proto, rest) = v.split_once(':').ok_or(format!("bad --allow-net {v}"))?;
                let (cidr, ports) = rest.split_once('@').unwrap_or((rest, ""));
                let mut line = format!("net allow cidr {} {proto}", quoted(cidr));
                if !ports.is_empty() {
                    line.push_str(&format!(" port {ports}"));
                }
                lines.push(line);
            }
            "--listen" => {
                let v = value()?;
                let (proto, ports) = v.split_once(':').ok_or(format!("bad --listen {v}"))?;
                lines.push(format!("net listen {proto} port {ports}"));
            }
            "--net-unrestricted" => restricted_net = false,
            "--unscope-signals" => lines.push("ipc signals unscoped".into()),
            "--unix-socket" => lines.push(format!("ipc unix-socket {}", quoted(&value()?))),
            "--audit-all" => lines.push("audit all".into()),
            "--grant-cgroupfs" => {
                let mount = sandbox_cgroups_mount().ok_or("no cgroup2 mount")?;
                lines.push(format!("readwrite {}", subtree(&s(&mount))));
            }
            "--netns" => netns = Some(value()?),
            "--domain" => lines.push(format!("net allow domain {}", value()?)),
            // `nono run` arguments, not profile lines: [`command`] passes them on.
            "--dns-upstream" | "--allow-resolved" => {
                value()?;
            }
            other => return Err(format!("unknown lab flag {other}")),
        }
    }
    if !restricted_net {
        lines.push("net allow all".into());
    }
    let path = ctx.scratch.with_extension("nono");
    fs::write(&path, lines.join("\n") + "\n")
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok((path, lines, netns))
}

fn command(ctx: &Ctx, flags: &[String], ops: &[&[&str]]) -> Command {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("nono-lab-tests"));
    let (profile, _, netns) = match lab_profile(ctx, flags) {
        Ok(p) => p,
        // An unusable profile path makes nono fail with a message naming it.
        Err(e) => (
            PathBuf::from(format!("/nonexistent/lab-profile-error: {e}")),
            Vec::new(),
            None,
        ),
    };
    let mut cmd = match netns {
        // nsenter changes only the network namespace: nono still sees the cgroup and BPF
        // filesystems, and the sandbox never needs setns (which seccomp denies).
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}"))
                .arg("--")
                .arg(&ctx.nono);
            c
        }
        None => Command::new(&ctx.nono),
    };
    cmd.args(["run", "-v", "--profile"]).arg(profile);
    for pair in flags.windows(2) {
        if pair[0] == "--dns-upstream" || pair[0] == "--allow-resolved" {
            cmd.args(pair);
        }
    }
    if landlock_abi() < 3 {
        // Landlock below ABI 3 (Linux 6.1 has 2) can't handle truncate(2) nor scope signals
        // and abstract sockets, which refuses every run; the tests assert each operation's
        // errno, so nothing they check is lost.
        cmd.arg("--best-effort");
    }
    cmd.arg("--").arg(me).arg("probe");
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            cmd.arg("--");
        }
        cmd.args(*op);
    }
    cmd
}

/// The exit code, or minus 100 plus the signal that killed the process (-109: SIGKILL).
fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -100 - status.signal().unwrap_or(0))
}

fn sandboxed(ctx: &Ctx, flags: &[String], ops: &[&[&str]]) -> Result<Run, String> {
    run_to_end(ctx, &mut command(ctx, flags, ops))
}

/// [`sandboxed`], with the run's audit store under `state`.
fn sandboxed_with_store(
    ctx: &Ctx,
    flags: &[String],
    ops: &[&[&str]],
    state: &Path,
) -> Result<Run, String> {
    run_to_end(ctx, command(ctx, flags, ops).env("XDG_STATE_HOME", state))
}

fn run_to_end(ctx: &Ctx, nono: &mut Command) -> Result<Run, String> {
    nono.output()
        .map(Run::from)
        .map_err(|e| format!("running {}: {e}", ctx.nono.display()))
}

fn spawn_sandboxed(ctx: &Ctx, flags: &[String], ops: &[&[&str]]) -> Result<Child, String> {
    command(ctx, flags, ops)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning nono: {e}"))
}

fn finish(child: Child) -> Result<Run, String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    Ok(Run::from(out))
}

fn flag(name: &str, value: impl AsRef<Path>) -> [String; 2] {
    [name.to_string(), value.as_ref().display().to_string()]
}

/// `--exec-only` for the probe itself, the scratch directory's `bin` and the library
/// directories: the dynamic loader is opened for execution too (Landlock checks it; the exec
/// hook does not run for it).
fn exec_only_probe_and_scratch_bin_in(scratch: &Path) -> Result<Vec<String>, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut flags = flag("--exec-only", &me).to_vec();
    flags.extend(flag("--exec-only", scratch.join("bin")));
    for dir in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        if Path::new(dir).is_dir() {
            flags.extend(flag("--exec-only", dir));
        }
    }
    Ok(flags)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn unchanged(path: &Path, text: &str) -> Result<(), String> {
    match fs::read_to_string(path) {
        Ok(t) if t == text => Ok(()),
        Ok(t) => Err(format!("{} changed to {t:?}", path.display())),
        Err(e) => Err(format!("{} is gone or unreadable: {e}", path.display())),
    }
}

fn absent(path: &Path) -> Result<(), String> {
    if path.symlink_metadata().is_ok() {
        Err(format!(
            "{} exists but the operation was denied",
            path.display()
        ))
    } else {
        Ok(())
    }
}

fn status_of(ctx: &Ctx) -> Result<String, String> {
    let out = Command::new(&ctx.nono)
        .arg("kernel-status")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "nono kernel-status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn status_value(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim().parse().ok())
}

/// Sandbox cgroups (`nono-*`) under the cgroup2 mount, found by walking it.
fn sandbox_cgroups() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount = info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    });
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = mount.into_iter().collect();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().starts_with("nono-") {
                    out.push(e.path());
                }
                stack.push(e.path());
            }
        }
    }
    out
}

/// No sandbox left: no registered cgroup, no rule entry, no cgroup directory, no event slot
/// claimed.
fn nothing_left(ctx: &Ctx) -> Result<(), String> {
    let status = status_of(ctx)?;
    for key in ["sandboxes", "fs_entries", "fs_watches", "net_entries"] {
        if status_value(&status, key) != Some(0) {
            return Err(format!("{key} left behind: {status}"));
        }
    }
    let left = sandbox_cgroups();
    if !left.is_empty() {
        return Err(format!("sandbox cgroups left behind: {left:?}"));
    }
    // kernel-status loaded the layer, which swept: a claim left now is a leak. Not on the host,
    // where every nono running on the machine claims slots from the same registry.
    if ctx.kernel != "host" && status_value(&status, "slots_claimed") != Some(0) {
        return Err(format!("event slot claims left behind: {status}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Smoke

/// The lab kernel must run the BPF LSM, or nothing below proves anything.
fn bpf_lsm_listed(ctx: &Ctx) -> Result<(), String> {
    let lsms = fs::read_to_string("/sys/kernel/security/lsm")
        .map_err(|e| format!("reading /sys/kernel/security/lsm: {e}"))?;
    if lsms.split(',').any(|l| l.trim() == "bpf") {
        Ok(())
    } else {
        Err(format!(
            "bpf is not in the active LSM list `{lsms}` on {}",
            ctx.kernel
        ))
    }
}

/// The verifier's limit on instructions processed per program (`BPF_COMPLEXITY_LIMIT_INSNS`).
const VERIFIER_LIMIT: u64 = 1_000_000;

/// Every program nono loads on this kernel was accepted, none past 90% of the verifier's limit.
/// A program near the limit is one small change away from refusal on this kernel, which turns
/// the whole LSM half off (fail closed, but off): this fails first, and the report shows each
/// program's headroom per kernel.
fn programs_within_verifier_budget(ctx: &Ctx) -> Result<(), String> {
    let status = status_of(ctx)?;
    if !status.lines().any(|l| l == "lsm=active") {
        return Err(format!("the LSM half is not active: {status}"));
    }
    let mut counts: Vec<(String, u64)> = status
        .lines()
        .filter_map(|l| l.strip_prefix("verified."))
        .filter_map(|l| l.split_once('='))
        .filter_map(|(name, n)| Some((name.to_string(), n.trim().parse().ok()?)))
        .collect();
    // Every program with statistics has a count (both lists come from the loaded programs).
    let programs = status.lines().filter(|l| l.starts_with("prog.")).count();
    if counts.is_empty() || counts.len() != programs {
        return Err(format!(
            "{} verified counts for {programs} programs: {status}",
            counts.len()
        ));
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let top: Vec<String> = counts
        .iter()
        .take(5)
        .map(|(name, n)| {
            format!(
                "{name} {n} ({:.1}%)",
                *n as f64 * 100.0 / VERIFIER_LIMIT as f64
            )
        })
        .collect();
    crate::harness::info(format!(
        "verifier {}: instructions processed, largest of {} programs: {}",
        ctx.kernel,
        counts.len(),
        top.join(", ")
    ));
    let over: Vec<&(String, u64)> = counts
        .iter()
        .filter(|(_, n)| *n > VERIFIER_LIMIT * 9 / 10)
        .collect();
    if !over.is_empty() {
        return Err(format!(
            "past 90% of the verifier's limit of {VERIFIER_LIMIT} on {}: {over:?}",
            ctx.kernel
        ));
    }
    Ok(())
}

/// The binary under test was built with the eBPF object embedded.
fn nono_has_kernel_layer(ctx: &Ctx) -> Result<(), String> {
    let out = Command::new(&ctx.nono)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {}: {e}", ctx.nono.display()))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if version.contains("kernel [") {
        Ok(())
    } else {
        Err(format!("nono --version says `{}`", version.trim()))
    }
}

// ---------------------------------------------------------------------------------------------
// Files (BPF LSM)

/// A deny inside an otherwise accessible tree: `.ssh` is denied, the rest of home works.
fn deny_inside_grant(ctx: &Ctx) -> Result<(), String> {
    let home = ctx.scratch.join("home");
    let key = home.join(".ssh/id_rsa");
    let notes = home.join("notes.txt");
    write(&key, "PRIVATE KEY")?;
    write(&notes, "notes")?;
    let run = sandboxed(
        ctx,
        &flag("--deny", home.join(".ssh")),
        &[
            &["read", &s(&key)],
            &["append", &s(&key)],
            &["read", &s(&notes)],
            &["append", &s(&notes)],
        ],
    )?;
    run.expect(&[EPERM, EPERM, OK, OK])?;
    unchanged(&key, "PRIVATE KEY")?;
    unchanged(&notes, "notesx")
}

/// An inotify watch or fanotify mark on a denied directory or file would report the names of
/// what is created there and when its files are read, without opening anything: `path_notify`
/// refuses it, while watches on the rest of the tree work.
fn watches_on_denied_paths_refused(ctx: &Ctx) -> Result<(), String> {
    let home = ctx.scratch.join("home");
    let ssh = home.join(".ssh");
    let key = ssh.join("id_rsa");
    write(&key, "PRIVATE KEY")?;
    let run = sandboxed(
        ctx,
        &flag("--deny", &ssh),
        &[
            &["inotify-watch", &s(&ssh)],
            &["inotify-watch", &s(&key)],
            &["fanotify-watch", &s(&ssh)],
            &["inotify-watch", &s(&home)],
            &["fanotify-watch", &s(&home)],
        ],
    )?;
    run.expect(&[EPERM, EPERM, EPERM, OK, OK])?;
    // The deny on the key, below the denied directory, names that directory: the object its
    // rule is bound to.
    let named = format!("path={}", s(&ssh));
    if !run
        .stderr
        .lines()
        .any(|l| l.contains("deny path_notify") && l.contains(&named))
    {
        return Err(format!(
            "no path_notify deny naming {} in -v output: {}",
            ssh.display(),
            run.stderr.trim()
        ));
    }
    unchanged(&key, "PRIVATE KEY")
}

/// nono's own state inside a writable grant: the lab profile grants the scratch directory
/// read-write, and `XDG_STATE_HOME` lies in it, so Landlock cannot keep the implicit deny on
/// `$XDG_STATE_HOME/nono`; the kernel layer does. The command gets EPERM on the audit
/// database and on a new file beside it, and the session it was recorded in verifies.
fn nono_state_is_denied_under_a_write_grant(ctx: &Ctx) -> Result<(), String> {
    let state = ctx.scratch.join("state");
    fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let db = state.join("nono/audit.db");
    let planted = state.join("nono/planted");
    let run = sandboxed_with_store(
        ctx,
        &[],
        &[
            &["read", &s(&db)],
            &["append", &s(&db)],
            &["create", &s(&planted)],
        ],
        &state,
    )?;
    run.expect(&[EPERM, EPERM, EPERM])?;
    absent(&planted)?;
    let id = latest_session(ctx, &state)?;
    let verified = audit_json(ctx, &state, &["verify", &id])?;
    if verified["intact"] != true || verified["complete"] != true {
        return Err(format!("the session does not verify: {verified}"));
    }
    Ok(())
}

/// Files created in a denied directory after the sandbox started are denied too, whoever
/// created them; creating one from inside is denied and leaves nothing.
fn file_created_later_in_denied_dir(ctx: &Ctx) -> Result<(), String> {
    let secret = ctx.scratch.join("secret");
    fs::create_dir_all(&secret).map_err(|e| e.to_string())?;
    let later = secret.join("later.txt");
    let inside = secret.join("inside.txt");
    let child = spawn_sandboxed(
        ctx,
        &flag("--deny", &secret),
        &[
            &["wait", &s(&later)],
            &["read", &s(&later)],
            &["create", &s(&inside)],
            &["mkdir", &s(&secret.join("d"))],
        ],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    write(&later, "made after start")?;
    let run = finish(child)?;
    run.expect(&[OK, EPERM, EPERM, EPERM])?;
    absent(&inside)?;
    absent(&secret.join("d"))
}

/// Moving or linking a denied file out of its denied directory is denied (it would leave the
/// subtree the rule covers), and the file stays where it was.
fn rename_and_link_out_of_denied_dir(ctx: &Ctx) -> Result<(), String> {
    let secret = ctx.scratch.join("secret");
    let work = ctx.scratch.join("work");
    let file = secret.join("a.txt");
    write(&file, "A")?;
    fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let moved = work.join("a.txt");
    let linked = work.join("a-link.txt");
    let run = sandboxed(
        ctx,
        &flag("--deny", &secret),
        &[
            &["rename", &s(&file), &s(&moved)],
            &["link", &s(&file), &s(&linked)],
            &["read", &s(&moved)],
        ],
    )?;
    run.expect(&[EPERM, EPERM, "errno 2"])?;
    unchanged(&file, "A")?;
    absent(&moved)?;
    absent(&linked)
}

/// A directory above a deny keeps its name. Moved away, exchanged or with an ancestor moved,
/// `.git` would take the denied hooks (bound by inode) with it and leave `.git/hooks` free for
/// a new directory no rule binds: a `pre-commit` there runs on the user's next commit, outside
/// any sandbox. A directory beside it still moves.
fn directory_above_a_deny_keeps_its_name(ctx: &Ctx) -> Result<(), String> {
    let repo = ctx.scratch.join("repo");
    let git = repo.join(".git");
    let hooks = git.join("hooks");
    write(&hooks.join("pre-commit"), "#!/bin/sh\ntrue\n")?;
    write(&repo.join("src/main.rs"), "fn main() {}")?;
    let other = repo.join("other");
    fs::create_dir_all(&other).map_err(|e| e.to_string())?;
    let run = sandboxed(
        ctx,
        &flag("--deny-tree", &hooks),
        &[
            &["rename", &s(&git), &s(&repo.join(".git-moved"))],
            &["rename", &s(&repo), &s(&ctx.scratch.join("repo-moved"))],
            &["exchange", &s(&other), &s(&git)],
            &["exchange", &s(&git), &s(&other)],
            &["rename", &s(&repo.join("src")), &s(&repo.join("src-moved"))],
        ],
    )?;
    run.expect(&[EPERM, EPERM, EPERM, EPERM, OK])?;
    unchanged(&hooks.join("pre-commit"), "#!/bin/sh\ntrue\n")?;
    absent(&repo.join(".git-moved"))?;
    absent(&ctx.scratch.join("repo-moved"))?;
    unchanged(&repo.join("src-moved/main.rs"), "fn main() {}")
}

/// A hard link made outside the denied directory before the run reaches the same inode: denied.
fn preexisting_hard_link_is_denied(ctx: &Ctx) -> Result<(), String> {
    let secret = ctx.scratch.join("secret");
    let file = secret.join("c.txt");
    write(&file, "C")?;
    let alias = ctx.scratch.join("work/c-alias.txt");
    fs::create_dir_all(ctx.scratch.join("work")).map_err(|e| e.to_string())?;
    fs::hard_link(&file, &alias).map_err(|e| format!("hard link: {e}"))?;
    // A rule on the file itself (exact) is bound by inode too.
    let single = ctx.scratch.join("single.txt");
    write(&single, "S")?;
    let single_alias = ctx.scratch.join("work/single-alias.txt");
    fs::hard_link(&single, &single_alias).map_err(|e| format!("hard link: {e}"))?;
    let mut flags = flag("--deny", &secret).to_vec();
    flags.extend(flag("--deny", &single));
    let run = sandboxed(
        ctx,
        &flags,
        &[
            &["read", &s(&alias)],
            &["append", &s(&alias)],
            &["read", &s(&single_alias)],
        ],
    )?;
    run.expect(&[EPERM, EPERM, EPERM])?;
    unchanged(&file, "C")
}

/// A bind mount of the denied directory is the same dentries and inodes: denied.
fn bind_mount_alias_is_denied(ctx: &Ctx) -> Result<(), String> {
    let secret = ctx.scratch.join("secret");
    let file = secret.join("d.txt");
    write(&file, "D")?;
    let mnt = ctx.scratch.join("mnt");
    fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    let ok = Command::new("mount")
        .args(["--bind"])
        .arg(&secret)
        .arg(&mnt)
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if !ok {
        return Err("mount --bind failed".into());
    }
    let result = (|| {
        let run = sandboxed(
            ctx,
            &flag("--deny", &secret),
            &[
                &["read", &s(&mnt.join("d.txt"))],
                &["append", &s(&mnt.join("d.txt"))],
            ],
        )?;
        run.expect(&[EPERM, EPERM])?;
        unchanged(&file, "D")
    })();
    let _ = Command::new("umount").arg(&mnt).status();
    result
}

/// `deny write` keeps reads working and blocks every kind of write, target unchanged.
fn deny_write_blocks_every_write_op(ctx: &Ctx) -> Result<(), String> {
    let ro = ctx.scratch.join("ro");
    let file = ro.join("f.txt");
    write(&file, "RO")?;
    let run = sandboxed(
        ctx,
        &flag("--deny-write", &ro),
        &[
            &["read", &s(&file)],
            &["append", &s(&file)],
            &["truncate", &s(&file)],
            &["chmod", &s(&file)],
            &["unlink", &s(&file)],
            &["create", &s(&ro.join("new"))],
            &["mkdir", &s(&ro.join("dir"))],
            &["symlink", "/etc/passwd", &s(&ro.join("sym"))],
            &["rename", &s(&file), &s(&ro.join("g.txt"))],
        ],
    )?;
    run.expect(&[OK, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM])?;
    unchanged(&file, "RO")?;
    let mode = fs::metadata(&file)
        .map_err(|e| e.to_string())?
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    if mode.mode() & 0o777 == 0o600 {
        return Err("chmod went through".into());
    }
    absent(&ro.join("new"))?;
    absent(&ro.join("dir"))?;
    absent(&ro.join("sym"))
}

/// A denied binary can't be executed (execve opens it with FMODE_EXEC, which `file_open`
/// sees), nor read, so it can't be copied from inside either. A copy made outside before the
/// run is another inode and runs: file rules bind objects, not contents (a deny on the
/// directory would cover copies placed in it).
fn exec_of_denied_binary(ctx: &Ctx) -> Result<(), String> {
    let tool = ctx.scratch.join("bin/tool");
    let copy = ctx.scratch.join("other/tool-copy");
    let inside_copy = ctx.scratch.join("other/inside-copy");
    for p in [&tool, &copy] {
        fs::create_dir_all(p.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
        fs::copy("/bin/true", p).map_err(|e| format!("copying /bin/true: {e}"))?;
    }
    let run = sandboxed(
        ctx,
        &flag("--deny", &tool),
        &[
            &["exec", &s(&tool)],
            &["read", &s(&tool)],
            &["link", &s(&tool), &s(&inside_copy)],
            &["exec", &s(&copy)],
        ],
    )?;
    run.expect(&[EPERM, EPERM, EPERM, OK])?;
    absent(&inside_copy)
}

/// `exec deny` binds the binary's (device, inode) and is checked in `bprm_check_security`,
/// which the kernel also runs for a `#!` script's interpreter. What it means, honestly:
/// - the binary can't run, under any name that reaches the same inode, and scripts naming it as
///   their interpreter can't either (EPERM);
/// - reading it still works (an exec deny is not a read deny), and new names for it are refused
///   (a link or rename could take it out of a denied directory);
/// - a copy is another inode: one made before the run, or by the agent inside it (it can read
///   the binary), runs. The deny list names objects, not contents; `exec only` (next test)
///   is what keeps unlisted binaries from running.
fn exec_deny_list_by_inode(ctx: &Ctx) -> Result<(), String> {
    let tool = ctx.scratch.join("bin/tool");
    let before = ctx.scratch.join("other/copy-before");
    let inside = ctx.scratch.join("other/copy-inside");
    let link = ctx.scratch.join("other/tool-link");
    let script = ctx.scratch.join("other/script");
    for p in [&tool, &before] {
        fs::create_dir_all(p.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
        fs::copy("/bin/true", p).map_err(|e| format!("copying /bin/true: {e}"))?;
    }
    write(&script, &format!("#!{}\n", s(&tool)))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let run = sandboxed(
        ctx,
        &flag("--exec-deny", &tool),
        &[
            &["exec", &s(&tool)],
            &["exec", &s(&script)],
            &["read", &s(&tool)],
            &["link", &s(&tool), &s(&link)],
            &["exec", &s(&before)],
            &["copy", &s(&tool), &s(&inside)],
            &["exec", &s(&inside)],
        ],
    )?;
    run.expect(&[EPERM, EPERM, OK, EPERM, OK, OK, OK])?;
    absent(&link)?;
    let event = run
        .stderr
        .lines()
        .find(|l| l.contains("deny bprm_check_security"))
        .ok_or_else(|| format!("no bprm_check_security event: {}", run.stderr))?;
    if !event.contains(&format!("exec deny {}", s(&tool))) {
        return Err(format!("the event does not name the rule: {event}"));
    }
    Ok(())
}

/// `exec only`: listed binaries run (the exec check finds their allowlist entry, by inode and
/// directory), a copy outside the list does not. Landlock enforces the same list by path and
/// decides first (EACCES); the kernel layer's allowlist is the second, inode-bound layer, and
/// this test shows it lets the listed binaries through.
fn exec_allowlist(ctx: &Ctx) -> Result<(), String> {
    let tool = ctx.scratch.join("bin/tool");
    let copy = ctx.scratch.join("other/copy");
    fs::create_dir_all(tool.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    fs::create_dir_all(copy.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    fs::copy("/bin/true", &tool).map_err(|e| format!("copying /bin/true: {e}"))?;
    let mut flags = exec_only_probe_and_scratch_bin_in(&ctx.scratch)?;
    flags.push("--audit-all".into());
    let run = sandboxed(
        ctx,
        &flags,
        &[
            &["exec", &s(&tool)],
            &["copy", &s(&tool), &s(&copy)],
            &["exec", &s(&copy)],
            // No path for Landlock to check: the exec hook refuses it by inode.
            &["exec-memfd", &s(&tool)],
            // Code mapped without execve, as the dynamic loader run as a program
            // (`ld.so ./copy`) maps it: the listed tool may be mapped executable, the copy
            // neither directly (`mmap_file`) nor by mprotect later (`file_mprotect`).
            &["map-exec", &s(&tool)],
            &["map-exec", &s(&copy)],
            &["map-then-protect", &s(&copy)],
        ],
    )?;
    let got = run.results();
    // The copy's exec (index 2): Landlock's EACCES (it answers first) or the exec hook's EPERM.
    let want = |i: usize| match i {
        0 | 1 | 4 => got[i] == OK,
        2 => got[i] == EPERM || got[i] == "errno 13",
        _ => got[i] == EPERM,
    };
    if got.len() != 7 || !(0..7).all(want) {
        return Err(format!(
            "expected [ok, ok, EPERM|EACCES, EPERM, ok, EPERM, EPERM], got {got:?} (exit {}); \
             stderr: {}",
            run.code, run.stderr
        ));
    }
    for hook in ["deny mmap_file", "deny file_mprotect"] {
        if !run.stderr.contains(hook) {
            return Err(format!("no `{hook}` event: {}", run.stderr));
        }
    }
    // The allowed exec passed the kernel's allowlist check (audit all reports it).
    if !run
        .stderr
        .lines()
        .any(|l| l.contains("allow bprm_check_security") && l.contains("comm=nono-lab-tests"))
    {
        return Err(format!(
            "no allowed bprm_check_security event: {}",
            run.stderr
        ));
    }
    Ok(())
}

/// A task outside the sandbox can't be signalled (signal 0 included) or ptrace-accessed (here:
/// `/proc/PID/environ`, which needs ptrace read access) from inside; a task inside can.
/// - Signals: the profile unscopes them, so Landlock's scoping (ABI 6) does not decide first:
///   the denial (EPERM, `task_kill` event) is the kernel layer's on both kernels.
/// - ptrace: Landlock already confines ptrace to the task's own domain (every ABI) and, as an
///   earlier LSM, answers first; the kernel layer's `ptrace_access_check` is the layer below
///   it. The outside target runs without capabilities (an empty bounding set), so the denial
///   is not merely the capability check's.
fn signals_and_ptrace_stay_inside(ctx: &Ctx) -> Result<(), String> {
    let mut target = Command::new("setpriv")
        .args([
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--",
            "/bin/sleep",
            "30",
        ])
        .spawn()
        .map_err(|e| format!("starting the outside target: {e}"))?;
    let pid = target.id().to_string();
    let environ = format!("/proc/{pid}/environ");
    let result = (|| {
        // The target has exec'd sleep without capabilities before the probe runs.
        std::thread::sleep(Duration::from_millis(300));
        let run = sandboxed(
            ctx,
            &["--unscope-signals".into()],
            &[
                &["kill", &pid, "0"],
                &["kill", &pid, "15"],
                &["read", &environ],
                &["read", "/proc/self/environ"],
                &["kill-own-child"],
            ],
        )?;
        run.expect(&[EPERM, EPERM, "errno 13", OK, OK])?;
        for hook in ["deny task_kill"] {
            if !run
                .stderr
                .lines()
                .any(|l| l.contains(hook) && l.contains("rule=isolation"))
            {
                return Err(format!("no `{hook}` event: {}", run.stderr));
            }
        }
        // The target is unchanged: still running.
        match target.try_wait() {
            Ok(None) => Ok(()),
            other => Err(format!("the outside target is gone: {other:?}")),
        }
    })();
    let _ = target.kill();
    let _ = target.wait();
    result
}

/// Unix sockets created outside the sandbox can't be reached unless the profile lists them
/// (`ipc unix-socket`): a path stream socket (docker.sock, an ssh agent) and a datagram socket
/// get EPERM and see nothing, a listed socket works, and a socket the sandbox creates itself
/// works. An outside abstract socket gets EPERM too (Landlock's abstract scoping answers first
/// from ABI 6; on 6.1 the kernel layer does).
fn unix_sockets_outside_denied(ctx: &Ctx) -> Result<(), String> {
    use std::os::unix::net::{UnixDatagram, UnixListener};
    let outside = ctx.scratch.join("outside.sock");
    let listed = ctx.scratch.join("listed.sock");
    let dgram = ctx.scratch.join("outside.dgram");
    let inner = ctx.scratch.join("inner.sock");
    let outside_l = UnixListener::bind(&outside).map_err(|e| e.to_string())?;
    let listed_l = UnixListener::bind(&listed).map_err(|e| e.to_string())?;
    let dgram_s = UnixDatagram::bind(&dgram).map_err(|e| e.to_string())?;
    let name = format!("nono-lab-{}", std::process::id());
    let abstract_l = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| e.to_string())?;
        UnixListener::bind_addr(&addr).map_err(|e| e.to_string())?
    };
    for l in [&outside_l, &listed_l, &abstract_l] {
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    dgram_s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let run = sandboxed(
        ctx,
        &flag("--unix-socket", &listed),
        &[
            &["unix-connect", &s(&outside)],
            &["unix-connect", &s(&listed)],
            &["unix-self", &s(&inner)],
            &["unix-dgram", &s(&dgram)],
            &["unix-connect-abstract", &name],
        ],
    )?;
    run.expect(&[EPERM, OK, OK, EPERM, EPERM])?;
    if outside_l.accept().is_ok() || abstract_l.accept().is_ok() {
        return Err("an outside listener accepted a denied connection".into());
    }
    if listed_l.accept().is_err() {
        return Err("the listed socket never saw the allowed connection".into());
    }
    let mut buf = [0u8; 8];
    if dgram_s.recv(&mut buf).is_ok() {
        return Err("the outside datagram socket received the denied datagram".into());
    }
    for hook in ["deny unix_stream_connect", "deny unix_may_send"] {
        if !run.stderr.contains(hook) {
            return Err(format!("no `{hook}` event: {}", run.stderr));
        }
    }
    Ok(())
}

/// No BPF and no kernel module loading from inside. nono's seccomp filter refuses `bpf` and
/// `finit_module` first, so this shows what the sandbox as a whole does; the kernel layer's
/// `bpf`, `kernel_read_file`, `kernel_load_data` and `kernel_module_request` hooks are the
/// layer below, for where seccomp is not available.
fn bpf_and_module_loading_denied(ctx: &Ctx) -> Result<(), String> {
    let module = ctx.scratch.join("not-a-module.ko");
    write(&module, "not a module")?;
    let run = sandboxed(ctx, &[], &[&["bpf"], &["finit-module", &s(&module)]])?;
    run.expect(&[EPERM, EPERM])
}

/// The agent can't leave its cgroup or create cgroups: cgroupfs is read-only inside even when
/// the profile grants it writable to Landlock (so this is the kernel layer's denial, EPERM).
fn cgroupfs_writes_are_denied(ctx: &Ctx) -> Result<(), String> {
    let info = fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let own = info
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .to_string();
    let mount = sandbox_cgroups_mount().ok_or("no cgroup2 mount")?;
    let own_procs = mount.join(own.trim_start_matches('/')).join("cgroup.procs");
    let run = sandboxed(
        ctx,
        &["--grant-cgroupfs".into()],
        &[
            &["cgjoin", &s(&own_procs)],
            &["mkdir", &s(&mount.join("nono-escape"))],
        ],
    )?;
    run.expect(&[EPERM, EPERM])?;
    absent(&mount.join("nono-escape"))
}

fn sandbox_cgroups_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// While a sandbox denies a file, a process outside it reads the file normally.
fn outside_process_unaffected(ctx: &Ctx) -> Result<(), String> {
    let secret = ctx.scratch.join("secret");
    let file = secret.join("e.txt");
    let go = ctx.scratch.join("go");
    write(&file, "E")?;
    let child = spawn_sandboxed(
        ctx,
        &flag("--deny", &secret),
        &[&["wait", &s(&go)], &["read", &s(&file)]],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let outside = fs::read_to_string(&file).map_err(|e| format!("outside read denied: {e}"))?;
    write(&go, "")?;
    let run = finish(child)?;
    run.expect(&[OK, EPERM])?;
    if outside != "E" {
        return Err(format!("outside read returned {outside:?}"));
    }
    Ok(())
}

/// Denials are reported with the rule that decided, and the drop counter is readable.
fn events_carry_rule_id_and_drop_counter(ctx: &Ctx) -> Result<(), String> {
    let a = ctx.scratch.join("a.txt");
    let b = ctx.scratch.join("b.txt");
    write(&a, "a")?;
    write(&b, "b")?;
    let mut flags = flag("--deny", &a).to_vec();
    flags.extend(flag("--deny", &b));
    let (profile, lines, _) = lab_profile(ctx, &flags)?;
    let line = lines
        .iter()
        .position(|l| l.contains(&s(&b)))
        .ok_or("the profile has no rule for b")?
        + 1;
    // The session goes to an audit store of this test's own (outside every grant).
    let state = ctx.scratch.with_extension("state");
    let run = sandboxed_with_store(ctx, &flags, &[&["read", &s(&b)]], &state)?;
    run.expect(&[EPERM])?;
    let ino = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&b).map_err(|e| e.to_string())?.ino()
    };
    let event = run
        .stderr
        .lines()
        .find(|l| l.contains("deny file_open"))
        .ok_or_else(|| format!("no deny event; stderr: {}", run.stderr))?;
    // The rule id maps back to the profile's source line.
    let origin = format!("({}:{line}:", profile.display());
    if !event.contains(&format!("deny {}", s(&b)))
        || !event.contains(&origin)
        || event.contains("rule=default")
        || !event.contains(&format!("ino={ino}"))
        || !event.contains("comm=nono-lab-tests")
    {
        return Err(format!("wrong event: {event}"));
    }
    let dropped = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("nono: kernel: dropped events: "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    if dropped.is_none() {
        return Err(format!("no drop counter; stderr: {}", run.stderr));
    }
    if !event.contains(&format!("path={}", s(&b))) {
        return Err(format!("the event does not name the denied path: {event}"));
    }
    audit_has_the_deny(ctx, &state, &profile, line, ino, &b)
}

/// Under `audit all`, an exec inside the sandbox reaches the audit trail from the kernel layer
/// (the `sched_process_exec` tracepoint) with the binary it ran and its arguments, redacted by
/// the documented rule, and the `-v` line shows them redacted too.
fn exec_events_carry_binary_and_argv(ctx: &Ctx) -> Result<(), String> {
    let flags = vec!["--audit-all".to_string()];
    let state = ctx.scratch.with_extension("state");
    let binary = "/bin/true";
    let secret = "s3cret-lab-value";
    let assignment_secret = "abc-lab-token";
    let assignment = format!("GITHUB_TOKEN={assignment_secret}");
    let run = sandboxed_with_store(
        ctx,
        &flags,
        &[&["exec", binary, "--token", secret, &assignment, "plain"]],
        &state,
    )?;
    run.expect(&[OK])?;
    let want = [
        binary,
        "--token",
        "[REDACTED]",
        "GITHUB_TOKEN=[REDACTED]",
        "plain",
    ];
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("allow exec") && l.contains(&format!("binary={binary} ")))
        .ok_or_else(|| format!("no exec event line; stderr: {}", run.stderr))?;
    if !line.contains(&format!("argv=[{}]", want.join(", "))) || !line.contains("comm=true") {
        return Err(format!("wrong exec event line: {line}"));
    }
    let id = latest_session(ctx, &state)?;
    let doc = audit_json(ctx, &state, &["show", &id])?;
    let shown = doc.to_string();
    if shown.contains(secret) || shown.contains(assignment_secret) {
        return Err(format!("a secret reached the audit trail: {shown}"));
    }
    if run.stderr.contains(secret) || run.stderr.contains(assignment_secret) {
        return Err(format!("a secret reached the -v output: {}", run.stderr));
    }
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    let found = events.iter().any(|e| {
        e["kind"] == "exec"
            && e["denied"] == false
            && e["object"].as_str() == Some(binary)
            && e["process"] == "true"
            && e["pid"].as_u64().is_some_and(|p| p != 0)
            && e["detail"]["argv"].as_array().is_some_and(|a| {
                a.iter()
                    .map(|v| v.as_str())
                    .eq(want.iter().map(|w| Some(*w)))
            })
    });
    if !found {
        return Err(format!(
            "the audit session has no kernel exec event of {binary} with argv {want:?}: {shown}"
        ));
    }
    Ok(())
}

/// Under `audit all`, every `file_open` event names the path the file was opened by, walked in
/// the kernel: a file several directories down the scratch directory (a tmpfs on the 9p root),
/// one on another mount (`/proc`), the same file through a bind mount of a directory above it
/// (the bind mount's path, not the original's), and a denied file below a denied directory
/// (the file, more specific than the rule's directory).
fn file_events_carry_opened_paths(ctx: &Ctx) -> Result<(), String> {
    let scratch = fs::canonicalize(&ctx.scratch).map_err(|e| e.to_string())?;
    let deep = scratch.join("a/b/c/d/deep file.txt");
    write(&deep, "D")?;
    let secret = scratch.join("secret/inner/key.txt");
    write(&secret, "S")?;
    let bind = scratch.join("bound");
    fs::create_dir_all(&bind).map_err(|e| e.to_string())?;
    let ok = Command::new("mount")
        .args(["--bind"])
        .arg(scratch.join("a/b"))
        .arg(&bind)
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if !ok {
        return Err("mount --bind failed".into());
    }
    let through_bind = bind.join("c/d/deep file.txt");
    let other_mount = "/proc/version";
    // Deeper than the walk's 32 steps: reported cut, the names nearest the file kept.
    let mut too_deep = scratch.join("t");
    for i in 0..40 {
        too_deep.push(format!("x{i}"));
    }
    let too_deep = too_deep.join("f.txt");
    write(&too_deep, "T")?;
    let state = ctx.scratch.with_extension("state");
    let result = (|| {
        let mut flags = vec!["--audit-all".to_string()];
        flags.extend(flag("--deny", scratch.join("secret")));
        let run = sandboxed_with_store(
            ctx,
            &flags,
            &[
                &["read", &s(&deep)],
                &["read", other_mount],
                &["read", &s(&through_bind)],
                &["read", &s(&secret)],
                &["read", &s(&too_deep)],
            ],
            &state,
        )?;
        run.expect(&[OK, OK, OK, EPERM, OK])?;
        let id = latest_session(ctx, &state)?;
        let doc = audit_json(ctx, &state, &["show", &id])?;
        let events = doc["events"].as_array().cloned().unwrap_or_default();
        let has = |path: &str, denied: bool| {
            events.iter().any(|e| {
                e["kind"] == "file"
                    && e["denied"] == denied
                    && e["object"].as_str() == Some(path)
                    && e["detail"]["hook"] == "file_open"
            })
        };
        for (path, denied) in [
            (s(&deep), false),
            (other_mount.to_string(), false),
            (s(&through_bind), false),
            (s(&secret), true),
        ] {
            if !has(&path, denied) {
                let files: Vec<String> = events
                    .iter()
                    .filter(|e| e["kind"] == "file")
                    .map(|e| e.to_string())
                    .collect();
                return Err(format!(
                    "no {} file_open event with object {path:?}; file events: {files:?}; \
                     stderr: {}",
                    if denied { "denied" } else { "allowed" },
                    run.stderr
                ));
            }
        }
        let cut = events.iter().any(|e| {
            e["kind"] == "file"
                && e["detail"]["path_truncated"] == true
                && e["object"]
                    .as_str()
                    .is_some_and(|o| !o.starts_with('/') && o.ends_with("/x39/f.txt"))
        });
        if !cut {
            return Err(format!(
                "no file event with a cut path for {}: {events:?}",
                too_deep.display()
            ));
        }
        if !run.stderr.contains(&format!("path={}", s(&deep))) {
            return Err(format!(
                "-v shows no path= of {}: {}",
                deep.display(),
                run.stderr
            ));
        }
        Ok(())
    })();
    let _ = Command::new("umount").arg(&bind).status();
    result
}

/// `nono run -v` with `flags` and `ops`, its audit session going to a store of its own under
/// `state`: the run and the session's events (`nono audit show --json`), and the whole
/// document as text (to look for what must not be there).
fn run_with_store(
    ctx: &Ctx,
    flags: &[String],
    ops: &[&[&str]],
    state: &Path,
) -> Result<(Run, Vec<serde_json::Value>, String), String> {
    let run = sandboxed_with_store(ctx, flags, ops, state)?;
    let id = latest_session(ctx, state).map_err(|e| format!("{e}; stderr: {}", run.stderr))?;
    let doc = audit_json(ctx, state, &["show", &id])?;
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    Ok((run, events, doc.to_string()))
}

/// The stored argv of an exec event, if it has one.
fn stored_argv(e: &serde_json::Value) -> Option<Vec<String>> {
    e["detail"]["argv"].as_array().map(|a| {
        a.iter()
            .map(|v| v.as_str().unwrap_or("<not a string>").to_string())
            .collect()
    })
}

/// Every exec the kernel's exec check refuses reaches the audit trail, without `audit all`
/// (denies are always reported), as one denied `exec` event: the name it was executed by, its
/// arguments exactly (read through the pointers the task passed to `execve`; redacted like the
/// command line), the hook, and the rule. Three refusals: a binary under `exec deny`, a script
/// whose interpreter is under `exec deny` (the script's name and arguments, the interpreter's
/// rule), and an `exec only` refusal of a binary with no path (a memfd through
/// `/proc/self/fd`, which Landlock never checks; the default rule, so no rule id).
fn denied_execs_carry_binary_and_argv(ctx: &Ctx) -> Result<(), String> {
    let tool = ctx.scratch.join("bin/tool");
    let script = ctx.scratch.join("other/script");
    fs::create_dir_all(tool.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    fs::copy("/bin/true", &tool).map_err(|e| format!("copying /bin/true: {e}"))?;
    write(&script, &format!("#!{}\n", s(&tool)))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let secret = "s3cret-lab-value";
    let denied_exec = |e: &serde_json::Value| {
        e["kind"] == "exec"
            && e["denied"] == true
            && e["detail"]["hook"] == "bprm_check_security"
            && e["pid"].as_u64().is_some_and(|p| p != 0)
    };

    // `exec deny`: the binary itself, and a script naming it as its interpreter.
    let flags = flag("--exec-deny", &tool).to_vec();
    let (profile, lines, _) = lab_profile(ctx, &flags)?;
    let line = lines
        .iter()
        .position(|l| l.starts_with("exec deny"))
        .ok_or("the profile has no exec deny rule")?
        + 1;
    let origin = format!("{}:{line}:", profile.display());
    let state = ctx.scratch.with_extension("state");
    let (run, events, shown) = run_with_store(
        ctx,
        &flags,
        &[
            &[
                "exec",
                &s(&tool),
                "alpha",
                "--token",
                secret,
                "two words",
                "",
            ],
            &["exec", &s(&script), "--flag"],
        ],
        &state,
    )?;
    run.expect(&[EPERM, EPERM])?;
    for (binary, argv) in [
        (
            s(&tool),
            vec![
                s(&tool),
                "alpha".into(),
                "--token".into(),
                "[REDACTED]".into(),
                "two words".into(),
                String::new(),
            ],
        ),
        (s(&script), vec![s(&script), "--flag".into()]),
    ] {
        let found = events.iter().any(|e| {
            denied_exec(e)
                && e["object"].as_str() == Some(binary.as_str())
                && stored_argv(e).as_ref() == Some(&argv)
                && e["detail"]["argv_truncated"].is_null()
                && e["rule_id"].as_u64().is_some()
                && e["rule_source"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(&origin))
        });
        if !found {
            return Err(format!(
                "no denied exec of {binary} with argv {argv:?} and the rule from {origin}: \
                 {shown}; stderr: {}",
                run.stderr
            ));
        }
    }
    // One event per refusal: the exec record is the deny's report, not a second one.
    let denials = events.iter().filter(|e| e["denied"] == true).count();
    if denials != 2 {
        return Err(format!("expected 2 denied events, got {denials}: {shown}"));
    }
    if shown.contains(secret) || run.stderr.contains(secret) {
        return Err(format!(
            "a secret reached the audit trail or -v: {shown}; {}",
            run.stderr
        ));
    }
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("deny bprm_check_security") && l.contains("--token, [REDACTED]"))
        .ok_or_else(|| format!("no -v line of the denied exec with argv: {}", run.stderr))?;
    if !line.contains(&format!("binary={} ", s(&tool)))
        || !line.contains(&format!("path={}", s(&tool)))
    {
        return Err(format!("wrong -v line of the denied exec: {line}"));
    }

    // `exec only`: a memfd is on no list.
    let flags = exec_only_probe_and_scratch_bin_in(&ctx.scratch)?;
    let state = ctx.scratch.with_extension("state-only");
    let (run, events, shown) = run_with_store(
        ctx,
        &flags,
        &[&["exec-memfd", &s(&tool), "one", "--password", secret]],
        &state,
    )?;
    run.expect(&[EPERM])?;
    let found = events.iter().any(|e| {
        let Some(binary) = e["object"]
            .as_str()
            .filter(|b| b.starts_with("/proc/self/fd/"))
        else {
            return false;
        };
        denied_exec(e)
            && e["rule_id"].is_null()
            && stored_argv(e)
                == Some(vec![
                    binary.to_string(),
                    "one".into(),
                    "--password".into(),
                    "[REDACTED]".into(),
                ])
    });
    if !found {
        return Err(format!(
            "no denied exec of /proc/self/fd/N with its argv and the default rule: {shown}; \
             stderr: {}",
            run.stderr
        ));
    }
    if shown.contains(secret) {
        return Err(format!("a secret reached the audit trail: {shown}"));
    }
    Ok(())
}

/// Under `audit all`, the path hooks' events carry the path they act on, walked in the kernel
/// as `file_open`'s are: an unlink, mkdir, rmdir, symlink, chmod and truncate of files under
/// the scratch grant, a rename (the old and the new name, each its own event) and a hard link
/// (the source and the new name); and a denied unlink below a `deny write` directory names
/// the file, more specific than the rule's directory.
fn path_hook_events_carry_paths(ctx: &Ctx) -> Result<(), String> {
    let scratch = fs::canonicalize(&ctx.scratch).map_err(|e| e.to_string())?;
    let d = scratch.join("work/sub");
    let victim = d.join("victim.txt");
    let old = d.join("old.txt");
    let new = d.join("new name.txt");
    let mode = d.join("mode.txt");
    let trunc = d.join("trunc.txt");
    let made = d.join("made");
    let empty = d.join("empty");
    let sym = d.join("sym");
    let hard = d.join("hard");
    let ro = scratch.join("ro");
    let kept = ro.join("keep.txt");
    for f in [&victim, &old, &mode, &trunc, &kept] {
        write(f, "x")?;
    }
    fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
    let mut flags = vec!["--audit-all".to_string()];
    flags.extend(flag("--deny-write", &ro));
    let state = ctx.scratch.with_extension("state");
    let (run, events, _) = run_with_store(
        ctx,
        &flags,
        &[
            &["unlink", &s(&victim)],
            &["mkdir", &s(&made)],
            &["rmdir", &s(&empty)],
            &["rename", &s(&old), &s(&new)],
            &["chmod", &s(&mode)],
            &["truncate", &s(&trunc)],
            &["symlink", "target", &s(&sym)],
            &["link", &s(&mode), &s(&hard)],
            &["unlink", &s(&kept)],
        ],
        &state,
    )?;
    run.expect(&[OK, OK, OK, OK, OK, OK, OK, OK, EPERM])?;
    unchanged(&kept, "x")?;
    let has = |hook: &str, path: &Path, denied: bool| {
        events.iter().any(|e| {
            e["kind"] == "file"
                && e["denied"] == denied
                && e["detail"]["hook"] == hook
                && e["object"].as_str() == Some(s(path).as_str())
                && e["detail"]["path_truncated"].is_null()
        })
    };
    for (hook, path, denied) in [
        ("path_unlink", &victim, false),
        ("path_mkdir", &made, false),
        ("path_rmdir", &empty, false),
        ("path_rename", &old, false),
        ("path_rename", &new, false),
        ("path_chmod", &mode, false),
        ("path_truncate", &trunc, false),
        ("path_symlink", &sym, false),
        ("path_link", &mode, false),
        ("path_link", &hard, false),
        ("path_unlink", &kept, true),
    ] {
        if !has(hook, path, denied) {
            let files: Vec<String> = events
                .iter()
                .filter(|e| e["kind"] == "file" && e["detail"]["hook"] != "file_open")
                .map(|e| e.to_string())
                .collect();
            return Err(format!(
                "no {} {hook} event with object {}; path-hook events: {files:?}; stderr: {}",
                if denied { "denied" } else { "allowed" },
                path.display(),
                run.stderr
            ));
        }
    }
    Ok(())
}

/// The run's audit session (`nono audit show --json`) holds the kernel's deny with the rule's
/// source line and the file's inode, and its hash chain verifies.
fn audit_has_the_deny(
    ctx: &Ctx,
    state: &Path,
    profile: &Path,
    line: usize,
    ino: u64,
    path: &Path,
) -> Result<(), String> {
    let audit = |args: &[&str]| -> Result<(i32, String), String> {
        let out = Command::new(&ctx.nono)
            .arg("audit")
            .args(args)
            .env("XDG_STATE_HOME", state)
            .output()
            .map_err(|e| format!("nono audit: {e}"))?;
        Ok((
            exit_code(&out.status),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    let (_, list) = audit(&["list", "--json"])?;
    let list: serde_json::Value =
        serde_json::from_str(&list).map_err(|e| format!("audit list --json: {e}: {list}"))?;
    let id = list[0]["id"]
        .as_str()
        .ok_or_else(|| format!("no audit session: {list}"))?
        .to_string();
    let (_, shown) = audit(&["show", &id, "--json"])?;
    let doc: serde_json::Value =
        serde_json::from_str(&shown).map_err(|e| format!("audit show --json: {e}: {shown}"))?;
    let origin = format!("{}:{line}:", profile.display());
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    let found = events.iter().any(|e| {
        e["kind"] == "file"
            && e["denied"] == true
            && e["rule_id"].as_u64().is_some()
            && e["rule_source"]
                .as_str()
                .is_some_and(|s| s.starts_with(&origin))
            && e["detail"]["ino"].as_u64() == Some(ino)
            && e["detail"]["hook"] == "file_open"
            && e["object"].as_str() == Some(&s(path))
    });
    if !found {
        return Err(format!(
            "the audit session has no file_open deny of {} from {origin} on inode {ino}: {shown}",
            path.display()
        ));
    }
    match audit(&["verify", &id])? {
        (0, _) => Ok(()),
        (code, out) => Err(format!("nono audit verify exited {code}: {out}")),
    }
}

/// The id of the newest session in the store under `state`.
fn latest_session(ctx: &Ctx, state: &Path) -> Result<String, String> {
    let list = audit_json(ctx, state, &["list"])?;
    list[0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no audit session: {list}"))
}

/// `nono audit ARGS --json` against the store under `state`, parsed.
fn audit_json(ctx: &Ctx, state: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(&ctx.nono)
        .arg("audit")
        .args(args)
        .arg("--json")
        .env("XDG_STATE_HOME", state)
        .output()
        .map_err(|e| format!("nono audit: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "nono audit {args:?} --json: {e}: {text}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// One of the two sessions of [`concurrent_sessions_get_their_own_events`].
struct Session {
    /// A context of its own: each run's profile is written next to its scratch directory.
    ctx: Ctx,
    /// The UDP port its denied sends go to (a socket the test holds, so nothing else has it).
    sock: UdpSocket,
    port: u16,
    /// Its denied file (used where BPF LSM runs) and that file's inode.
    file: PathBuf,
    ino: u64,
    /// Its own audit store.
    state: PathBuf,
}

impl Session {
    fn new(ctx: &Ctx, name: &str) -> Result<Session, String> {
        let ctx = Ctx {
            nono: ctx.nono.clone(),
            scratch: ctx.scratch.join(name),
            kernel: ctx.kernel.clone(),
        };
        fs::create_dir_all(&ctx.scratch).map_err(|e| e.to_string())?;
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let port = sock.local_addr().map_err(|e| e.to_string())?.port();
        let file = ctx.scratch.join(format!("{name}.txt"));
        write(&file, name)?;
        let ino = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(&file).map_err(|e| e.to_string())?.ino()
        };
        // Outside the scratch grant: nono's store must lie outside every grant.
        let state = ctx.scratch.with_extension(format!("{name}.state"));
        Ok(Session {
            ctx,
            sock,
            port,
            file,
            ino,
            state,
        })
    }

    /// How many of the `-v` lines are denied sends to this session's port, and denied opens of
    /// its file.
    fn printed(&self, stderr: &str) -> (usize, usize) {
        let port = format!(" port={} proto=", self.port);
        let ino = format!(" ino={} access=", self.ino);
        let sends = stderr
            .lines()
            .filter(|l| l.contains("kernel: deny sendmsg4 ") && l.contains(&port))
            .count();
        let opens = stderr
            .lines()
            .filter(|l| l.contains("kernel: deny file_open ") && l.contains(&ino))
            .count();
        (sends, opens)
    }

    /// The same counts in an audit session's events.
    fn stored(&self, events: &[serde_json::Value]) -> (usize, usize) {
        let sends = events
            .iter()
            .filter(|e| {
                e["kind"] == "net"
                    && e["denied"] == true
                    && e["detail"]["port"].as_u64() == Some(u64::from(self.port))
            })
            .count();
        let opens = events
            .iter()
            .filter(|e| {
                e["kind"] == "file"
                    && e["denied"] == true
                    && e["detail"]["hook"] == "file_open"
                    && e["detail"]["ino"].as_u64() == Some(self.ino)
            })
            .count();
        (sends, opens)
    }
}

/// Two sandboxes run at the same time, each making `N` denied UDP sends to a port of its own
/// (and, where BPF LSM runs, `N` denied opens of a file of its own). Each session's `-v` output
/// and its audit session hold all of its own events and none of the other's, with no drop:
/// every sandbox reads a ring buffer of its own. (With one shared ring, each reader consumed and
/// discarded the other's events, so both came up short.)
fn concurrent_sessions_get_their_own_events(ctx: &Ctx) -> Result<(), String> {
    const N: usize = 40;
    let lsm = ctx.kernel != "host";
    let go = ctx.scratch.join("go");
    let sessions = [Session::new(ctx, "a")?, Session::new(ctx, "b")?];
    let mut children = Vec::new();
    for me in &sessions {
        // UDP is allowed to another address on the same port: the socket is created, and the
        // cgroup sendmsg4 program denies 127.0.0.1 (rule=default, EPERM). Nothing is sent.
        let mut flags = vec![
            "--allow-net".into(),
            format!("udp:127.0.0.2/32@{}", me.port),
        ];
        if lsm {
            flags.extend(flag("--deny", &me.file));
        }
        let target = format!("127.0.0.1:{}", me.port);
        let file = s(&me.file);
        let go = s(&go);
        let mut ops: Vec<&[&str]> = Vec::new();
        let wait = ["wait", go.as_str(), "180"];
        let send = ["sendto", target.as_str()];
        let read = ["read", file.as_str()];
        ops.push(&wait);
        ops.extend(std::iter::repeat_n(&send[..], N));
        if lsm {
            ops.extend(std::iter::repeat_n(&read[..], N));
        }
        let child = command(&me.ctx, &flags, &ops)
            .env("XDG_STATE_HOME", &me.state)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning nono: {e}"))?;
        children.push(child);
    }
    // Both sandboxes exist (and both readers are draining their rings) before either starts.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sandbox_cgroups().len() < 2 {
        if Instant::now() > deadline {
            for c in &mut children {
                let _ = c.kill();
            }
            return Err("the two sandbox cgroups never existed at once".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    write(&go, "")?;
    let runs: Vec<Run> = children.into_iter().map(finish).collect::<Result<_, _>>()?;
    let mut expected = vec![OK];
    expected.extend(std::iter::repeat_n(EPERM, if lsm { 2 * N } else { N }));
    let want_opens = if lsm { N } else { 0 };
    for (i, (me, run)) in sessions.iter().zip(&runs).enumerate() {
        let other = &sessions[1 - i];
        let name = ["a", "b"][i];
        run.expect(&expected)?;
        let mut buf = [0u8; 64];
        if me.sock.recv(&mut buf).is_ok() {
            return Err(format!("session {name}: a denied datagram arrived"));
        }
        let own = me.printed(&run.stderr);
        let foreign = other.printed(&run.stderr);
        if own != (N, want_opens) || foreign != (0, 0) {
            return Err(format!(
                "session {name} printed (sends, opens) {own:?} of its own (want {:?}) and \
                 {foreign:?} of the other's (want (0, 0)); stderr: {}",
                (N, want_opens),
                run.stderr
            ));
        }
        let dropped = run
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("nono: kernel: dropped events: "))
            .map(str::trim);
        if dropped != Some("0") {
            return Err(format!(
                "session {name}: dropped events {dropped:?}, want 0"
            ));
        }
        let list = audit_json(ctx, &me.state, &["list"])?;
        let ids: Vec<&str> = list
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["id"].as_str()).collect())
            .unwrap_or_default();
        let [id] = ids[..] else {
            return Err(format!(
                "session {name}: want one audit session, got {list}"
            ));
        };
        let doc = audit_json(ctx, &me.state, &["show", id])?;
        let events = doc["events"].as_array().cloned().unwrap_or_default();
        let own = me.stored(&events);
        let foreign = other.stored(&events);
        if own != (N, want_opens) || foreign != (0, 0) {
            return Err(format!(
                "session {name} stored (sends, opens) {own:?} of its own (want {:?}) and \
                 {foreign:?} of the other's (want (0, 0))",
                (N, want_opens)
            ));
        }
        let dropped = &doc["session"]["dropped"];
        if dropped["kernel"].as_u64() != Some(0) || dropped["userspace"].as_u64() != Some(0) {
            return Err(format!(
                "session {name}: stored drop counts {}, want 0",
                dropped
            ));
        }
    }
    nothing_left(ctx)
}

/// The registry files that claim event slots (`/run/nono/sandboxes/<id>`).
fn claimed_slots() -> usize {
    fs::read_dir("/run/nono/sandboxes")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Every event slot held by a running sandbox: the next run is refused, naming the limit (it
/// would otherwise share a ring). `kill -9` of one holder's nono frees its slot for the next run
/// (reclaimed with the rest of the dead run's registration), and the other holders are unharmed.
fn event_slots_full_refuses_and_kill9_frees_a_slot(ctx: &Ctx) -> Result<(), String> {
    let status = status_of(ctx)?;
    let slots = status_value(&status, "event_slots")
        .ok_or_else(|| format!("kernel-status reports no event_slots: {status}"))?
        as usize;
    nothing_left(ctx)?;
    let go = ctx.scratch.join("go");
    let go_s = s(&go);
    let mut holders = Vec::new();
    let stop = |holders: &mut Vec<Child>| {
        let _ = fs::write(&go, "");
        for h in holders.iter_mut() {
            let _ = h.wait();
        }
    };
    for _ in 0..slots {
        let child = command(ctx, &[], &[&["wait", &go_s, "300"]])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning nono: {e}"))?;
        holders.push(child);
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    while sandbox_cgroups().len() < slots || claimed_slots() < slots {
        if Instant::now() > deadline {
            stop(&mut holders);
            return Err(format!(
                "{} of {slots} sandboxes came up",
                sandbox_cgroups().len()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = sandboxed(ctx, &[], &[&["sleep", "0"]])?;
    let limit = format!("all {slots} event slots");
    if refused.code == 0 || !refused.results().is_empty() || !refused.stderr.contains(&limit) {
        stop(&mut holders);
        return Err(format!(
            "a run beyond {slots} sandboxes was not refused naming the limit: exit {}, stdout {:?}, \
             stderr {}",
            refused.code, refused.stdout, refused.stderr
        ));
    }
    // kill -9 one holder's nono: its registration (and slot) is left behind...
    let mut victim = holders.remove(0);
    let killed = victim.kill();
    let _ = victim.wait();
    if let Err(e) = killed {
        stop(&mut holders);
        return Err(format!("kill -9 of nono: {e}"));
    }
    if claimed_slots() != slots {
        stop(&mut holders);
        return Err("the killed run's slot claim vanished by itself: nothing was tested".into());
    }
    // ... and the next run reclaims it.
    let next = sandboxed(ctx, &[], &[&["sleep", "0"]])?;
    stop(&mut holders);
    next.expect(&[OK])
        .map_err(|e| format!("the run after kill -9 did not get the freed slot: {e}"))?;
    for h in holders {
        finish(h)?.expect(&[OK])?;
    }
    nothing_left(ctx)
}

// ---------------------------------------------------------------------------------------------
// Denies on paths that do not exist yet (name watches, nono-ebpf/src/watch.rs)

/// The run started with every rule bound: no "not bound" line, no refusal.
fn all_bound(run: &Run) -> Result<(), String> {
    if run.stderr.contains("not bound") || run.stderr.contains("can't watch") {
        return Err(format!("a rule was left unbound: {}", run.stderr.trim()));
    }
    Ok(())
}

/// Waits (outside the sandbox) for the probe to reach a step: it creates `path`. Gives up when
/// nono exits first (a refusal) or after 30 s.
fn wait_for(path: &Path, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if Instant::now() > deadline || child.try_wait().map_or(true, |s| s.is_some()) {
            return Err(format!("the probe never created {}", path.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A deny on a missing file (`~/.git-credentials`) and on a missing directory (`~/.aws/**`)
/// inside a writable home: the run starts (nothing to refuse), and
/// (a) the agent can't create either (EPERM, nothing left behind): creating a watched object
///     from inside is refused outright;
/// (b) when a process outside the sandbox creates them during the run, the agent's reads and
///     writes of them are denied (EPERM), and the files keep their content;
/// and the rest of home stays writable.
fn missing_paths_bound_when_created(ctx: &Ctx) -> Result<(), String> {
    let home = ctx.scratch.join("home");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let creds = home.join(".git-credentials");
    let aws = home.join(".aws");
    let aws_creds = aws.join("credentials");
    let stage = ctx.scratch.join("stage1");
    let go = ctx.scratch.join("go");
    let mut flags = flag("--deny", &creds).to_vec();
    flags.extend(flag("--deny-tree", &aws));
    let mut child = spawn_sandboxed(
        ctx,
        &flags,
        &[
            &["create", &s(&creds)],
            &["mkdir", &s(&aws)],
            &["create", &s(&home.join("notes.txt"))],
            &["create", &s(&stage)],
            &["wait", &s(&go)],
            &["read", &s(&creds)],
            &["append", &s(&creds)],
            &["read", &s(&aws_creds)],
            &["create", &s(&aws.join("planted"))],
            &["unlink", &s(&aws_creds)],
        ],
    )?;
    let staged = wait_for(&stage, &mut child);
    if staged.is_ok() {
        // Created outside the sandbox, while it runs.
        absent(&creds)?;
        absent(&aws)?;
        write(&creds, "https://user:token@forge")?;
        write(&aws_creds, "[default]\nkey=secret\n")?;
    }
    write(&go, "")?;
    let run = finish(child)?;
    staged.map_err(|e| format!("{e} (exit {}); stderr: {}", run.code, run.stderr.trim()))?;
    run.expect(&[EPERM, EPERM, OK, OK, OK, EPERM, EPERM, EPERM, EPERM, EPERM])?;
    all_bound(&run)?;
    absent(&aws.join("planted"))?;
    unchanged(&creds, "https://user:token@forge")?;
    unchanged(&aws_creds, "[default]\nkey=secret\n")
}

/// (c) Objects moved into a missing path's place from outside during the run: a file renamed to
/// `~/.npmrc`, a directory renamed to `~/.aws`, a file hard-linked as `~/.pypirc`. The agent's
/// reads are denied and the files unchanged. The agent itself can't rename or link anything
/// into a watched name (EPERM, the source stays where it was).
fn missing_paths_bound_when_moved_into_place(ctx: &Ctx) -> Result<(), String> {
    let home = ctx.scratch.join("home");
    let outside = ctx.scratch.join("outside");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
    let npmrc = home.join(".npmrc");
    let pypirc = home.join(".pypirc");
    let aws = home.join(".aws");
    let vault = home.join(".vault-token");
    let mine = home.join("mine.txt");
    write(&mine, "mine")?;
    let stage = ctx.scratch.join("stage1");
    let go = ctx.scratch.join("go");
    let mut flags = flag("--deny", &npmrc).to_vec();
    flags.extend(flag("--deny", &pypirc));
    flags.extend(flag("--deny", &vault));
    flags.extend(flag("--deny-tree", &aws));
    let mut child = spawn_sandboxed(
        ctx,
        &flags,
        &[
            &["rename", &s(&mine), &s(&vault)],
            &["link", &s(&mine), &s(&vault)],
            &["create", &s(&stage)],
            &["wait", &s(&go)],
            &["read", &s(&npmrc)],
            &["read", &s(&aws.join("credentials"))],
            &["read", &s(&pypirc)],
            &["append", &s(&pypirc)],
        ],
    )?;
    let staged = wait_for(&stage, &mut child).and_then(|()| {
        write(&outside.join("npmrc"), "//registry/:_authToken=npm")?;
        write(&outside.join("aws/credentials"), "aws-secret")?;
        write(&outside.join("pypi"), "pypi-secret")?;
        let mv = |from: &Path, to: &Path| {
            fs::rename(from, to).map_err(|e| format!("rename to {}: {e}", to.display()))
        };
        mv(&outside.join("npmrc"), &npmrc)?;
        mv(&outside.join("aws"), &aws)?;
        fs::hard_link(outside.join("pypi"), &pypirc).map_err(|e| format!("link: {e}"))
    });
    write(&go, "")?;
    let run = finish(child)?;
    staged.map_err(|e| format!("{e} (exit {}); stderr: {}", run.code, run.stderr.trim()))?;
    run.expect(&[EPERM, EPERM, OK, OK, EPERM, EPERM, EPERM, EPERM])?;
    all_bound(&run)?;
    unchanged(&mine, "mine")?;
    absent(&vault)?;
    unchanged(&npmrc, "//registry/:_authToken=npm")?;
    unchanged(&aws.join("credentials"), "aws-secret")?;
    unchanged(&pypirc, "pypi-secret")
}

/// (d) Denies below a missing directory (`~/.config/gcloud/**`, `~/.config/gh/**` with no
/// `~/.config`): the agent may create `~/.config` and use it, but not `gcloud` in it, nor move
/// or remove `~/.config` again; `gh` made by a process outside is denied to the agent. A whole directory moved from outside
/// into a missing directory's place (`~/.cfg`, above a deny on `~/.cfg/tool`) may already hold
/// the protected path, which no program can look up: the whole of it is denied (fail closed).
fn deeper_missing_paths_are_chained(ctx: &Ctx) -> Result<(), String> {
    let home = ctx.scratch.join("home");
    let outside = ctx.scratch.join("outside");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let config = home.join(".config");
    let gcloud = config.join("gcloud");
    let gh = config.join("gh");
    let cfg = home.join(".cfg");
    let stage = ctx.scratch.join("stage1");
    let go = ctx.scratch.join("go");
    let mut flags = flag("--deny-tree", &gcloud).to_vec();
    flags.extend(flag("--deny-tree", &gh));
    flags.extend(flag("--deny-tree", cfg.join("tool")));
    let mut child = spawn_sandboxed(
        ctx,
        &flags,
        &[
            &["mkdir", &s(&config)],
            &["mkdir", &s(&gcloud)],
            &["mkdir", &s(&config.join("other"))],
            &["create", &s(&config.join("other/settings"))],
            // The directory the chain follows can't be moved away or removed from inside
            // (else the agent could make the programs watch again and again).
            &["rename", &s(&config), &s(&home.join("moved"))],
            &["rmdir", &s(&config)],
            &["create", &s(&stage)],
            &["wait", &s(&go)],
            &["read", &s(&gh.join("hosts.yml"))],
            &["read", &s(&cfg.join("tool/secret"))],
            &["read", &s(&cfg.join("unrelated.txt"))],
        ],
    )?;
    let staged = wait_for(&stage, &mut child).and_then(|()| {
        write(&gh.join("hosts.yml"), "oauth_token: gho")?;
        write(&outside.join("cfg/tool/secret"), "tool-secret")?;
        write(&outside.join("cfg/unrelated.txt"), "plain")?;
        fs::rename(outside.join("cfg"), &cfg).map_err(|e| format!("rename: {e}"))
    });
    write(&go, "")?;
    let run = finish(child)?;
    staged.map_err(|e| format!("{e} (exit {}); stderr: {}", run.code, run.stderr.trim()))?;
    run.expect(&[OK, EPERM, OK, OK, EPERM, EPERM, OK, OK, EPERM, EPERM, EPERM])?;
    all_bound(&run)?;
    absent(&gcloud)?;
    unchanged(&gh.join("hosts.yml"), "oauth_token: gho")?;
    unchanged(&cfg.join("tool/secret"), "tool-secret")
}

/// A denied file that exists is replaced during the run by rename, as git's credential store
/// and editors save: the new file under the name is denied too, not only the old inode.
fn denied_file_replaced_by_rename_stays_denied(ctx: &Ctx) -> Result<(), String> {
    let creds = ctx.scratch.join("home/.git-credentials");
    write(&creds, "old")?;
    let stage = ctx.scratch.join("stage1");
    let go = ctx.scratch.join("go");
    let mut child = spawn_sandboxed(
        ctx,
        &flag("--deny", &creds),
        &[
            &["create", &s(&stage)],
            &["wait", &s(&go)],
            &["read", &s(&creds)],
        ],
    )?;
    let staged = wait_for(&stage, &mut child).and_then(|()| {
        let tmp = ctx.scratch.join("home/.git-credentials.lock");
        write(&tmp, "new")?;
        fs::rename(&tmp, &creds).map_err(|e| format!("rename: {e}"))
    });
    write(&go, "")?;
    let run = finish(child)?;
    staged.map_err(|e| format!("{e} (exit {}); stderr: {}", run.code, run.stderr.trim()))?;
    run.expect(&[OK, OK, EPERM])?;
    unchanged(&creds, "new")
}

/// What can't be watched still refuses the run (exit 125, naming the path): here a missing
/// name longer than a watch holds. With `--best-effort` (which the lab passes on 6.1, for
/// Landlock's sake) nono runs and names it in its warning instead.
fn unwatchable_missing_path_still_refuses(ctx: &Ctx) -> Result<(), String> {
    let long = ctx.scratch.join(format!("home/{}", "n".repeat(80)));
    fs::create_dir_all(ctx.scratch.join("home")).map_err(|e| e.to_string())?;
    let marker = ctx.scratch.join("ran");
    let run = sandboxed(ctx, &flag("--deny", &long), &[&["create", &s(&marker)]])?;
    if !run.stderr.contains("can't watch for it") || !run.stderr.contains(&s(&long)) {
        return Err(format!("no reason naming the path: {}", run.stderr.trim()));
    }
    if landlock_abi() >= 3 {
        if run.code != 125 {
            return Err(format!(
                "exit {} instead of 125: {}",
                run.code,
                run.stderr.trim()
            ));
        }
        absent(&marker)?;
    }
    Ok(())
}

/// Switch the directory verdict cache; Err unless it took the state asked for.
fn set_cache(ctx: &Ctx, on: bool) -> Result<(), String> {
    let state = if on { "on" } else { "off" };
    let out = Command::new(&ctx.nono)
        .args(["kernel-cache", state])
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&out.stdout);
    if said.trim() != format!("cache={state}") {
        return Err(format!(
            "nono kernel-cache {state} said {:?} {}",
            said.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The directory verdict cache (nono-ebpf/src/cache.rs) never keeps a stale "clean": the agent
/// reads files below `work/a/b` and `work/x/y` (so `b` and `y` are cached as clean, the second
/// read of each a cache hit), then a process outside moves `work/a` under the denied `secret/`
/// and `work/x` into the place of the missing, denied `home/.aws`. The agent's next reads
/// through the new names are denied (EPERM), its reads through the old names find nothing.
fn cached_directory_moved_under_denied_tree_is_denied(ctx: &Ctx) -> Result<(), String> {
    set_cache(ctx, true)?;
    let secret = ctx.scratch.join("secret");
    let work = ctx.scratch.join("work");
    let aws = ctx.scratch.join("home/.aws");
    fs::create_dir_all(&secret).map_err(|e| e.to_string())?;
    fs::create_dir_all(ctx.scratch.join("home")).map_err(|e| e.to_string())?;
    let ab = work.join("a/b/f.txt");
    let xy = work.join("x/y/g.txt");
    write(&ab, "AB")?;
    write(&xy, "XY")?;
    let stage = ctx.scratch.join("stage1");
    let go = ctx.scratch.join("go");
    let mut flags = flag("--deny", &secret).to_vec();
    flags.extend(flag("--deny-tree", &aws));
    let mut child = spawn_sandboxed(
        ctx,
        &flags,
        &[
            &["read", &s(&ab)],
            &["read", &s(&ab)],
            &["read", &s(&xy)],
            &["read", &s(&xy)],
            &["create", &s(&stage)],
            &["wait", &s(&go)],
            &["read", &s(&secret.join("a/b/f.txt"))],
            &["read", &s(&aws.join("y/g.txt"))],
            &["append", &s(&aws.join("y/g.txt"))],
            &["read", &s(&ab)],
        ],
    )?;
    let staged = wait_for(&stage, &mut child).and_then(|()| {
        fs::rename(work.join("a"), secret.join("a")).map_err(|e| format!("rename a: {e}"))?;
        fs::rename(work.join("x"), &aws).map_err(|e| format!("rename x: {e}"))
    });
    write(&go, "")?;
    let run = finish(child)?;
    staged.map_err(|e| format!("{e} (exit {}); stderr: {}", run.code, run.stderr.trim()))?;
    run.expect(&[OK, OK, OK, OK, OK, OK, EPERM, EPERM, EPERM, "errno 2"])?;
    unchanged(&secret.join("a/b/f.txt"), "AB")?;
    unchanged(&aws.join("y/g.txt"), "XY")
}

// ---------------------------------------------------------------------------------------------
// Lifecycle (both parts)

/// Rules that leave entries in the maps: a network rule (both kernels and the host) and, where
/// BPF LSM runs, a file deny.
fn cleanup_flags(ctx: &Ctx, file: &Path) -> Vec<String> {
    let mut flags = vec!["--allow-net".to_string(), "tcp:127.0.0.2/32@9".to_string()];
    if ctx.kernel != "host" {
        flags.extend(flag("--deny", file));
    }
    flags
}

fn cleanup_after_exit(ctx: &Ctx) -> Result<(), String> {
    let f = ctx.scratch.join("f.txt");
    write(&f, "f")?;
    let run = sandboxed(ctx, &cleanup_flags(ctx, &f), &[&["sleep", "0"]])?;
    run.expect(&[OK])?;
    nothing_left(ctx)
}

/// `kill -9` of nono: the sandboxed process dies with it (parent-death signal), and the next
/// start removes the cgroup and every map entry the dead run left.
fn cleanup_after_kill9(ctx: &Ctx) -> Result<(), String> {
    let f = ctx.scratch.join("f.txt");
    write(&f, "f")?;
    let mut child = spawn_sandboxed(ctx, &cleanup_flags(ctx, &f), &[&["sleep", "30"]])?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while sandbox_cgroups().is_empty() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("the sandbox cgroup never appeared".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give the probe time to enter the cgroup, then kill nono itself.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().map_err(|e| e.to_string())?;
    let _ = child.wait();
    if sandbox_cgroups().is_empty() {
        return Err("nothing was left to clean: the test proves nothing".into());
    }
    // The next `nono run` reaps what the killed one left.
    sandboxed(ctx, &[], &[&["sleep", "0"]])?.expect(&[OK])?;
    nothing_left(ctx)
}

// ---------------------------------------------------------------------------------------------
// Network (cgroup socket programs; loopback and a private network namespace only)

/// A TCP listener on loopback that counts accepted connections.
fn loopback_listener() -> Result<(u16, Arc<AtomicUsize>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    Ok((port, count))
}

/// An address no rule names is denied by the cgroup program (EPERM, default rule), on a port a
/// rule allows elsewhere: Landlock (ports only) lets it through, so the denial is the kernel
/// layer's on every kernel.
fn net_connect_denied_by_default(ctx: &Ctx) -> Result<(), String> {
    let (port, seen) = loopback_listener()?;
    let target = format!("127.0.0.1:{port}");
    let run = sandboxed(
        ctx,
        &["--allow-net".into(), format!("tcp:127.0.0.2/32@{port}")],
        &[&["connect", &target]],
    )?;
    run.expect(&[EPERM])?;
    std::thread::sleep(Duration::from_millis(100));
    if seen.load(Ordering::SeqCst) != 0 {
        return Err("the listener saw a connection".into());
    }
    if !run.stderr.contains("deny connect4 rule=default") {
        return Err(format!("no deny event: {}", run.stderr));
    }
    Ok(())
}

fn net_allowed_cidr_and_port(ctx: &Ctx) -> Result<(), String> {
    let (port, seen) = loopback_listener()?;
    let (other, other_seen) = loopback_listener()?;
    let allow = format!("tcp:127.0.0.0/8@{port}");
    let run = sandboxed(
        ctx,
        &["--allow-net".into(), allow],
        &[
            &["connect", &format!("127.0.0.1:{port}")],
            &["connect", &format!("127.0.0.1:{other}")],
        ],
    )?;
    // Another port: Landlock's EACCES on kernels where it filters TCP ports (ABI >= 4), the
    // cgroup program's EPERM below that (6.1).
    let other_port = run.results().get(1).cloned().unwrap_or_default();
    run.expect(&[OK, other_port.as_str()])?;
    if other_port != EPERM && other_port != "errno 13" {
        return Err(format!("the other port was not denied: {other_port}"));
    }
    std::thread::sleep(Duration::from_millis(100));
    if seen.load(Ordering::SeqCst) != 1 || other_seen.load(Ordering::SeqCst) != 0 {
        return Err("listeners saw the wrong connections".into());
    }
    Ok(())
}

fn net_udp_sendto(ctx: &Ctx) -> Result<(), String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .map_err(|e| e.to_string())?;
    let port = sock.local_addr().map_err(|e| e.to_string())?.port();
    let target = format!("127.0.0.1:{port}");
    // UDP is allowed to another port only: the socket is created (seccomp lets UDP through
    // when a UDP rule exists), and the cgroup sendmsg4 program denies this destination.
    let other = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let other_port = other.local_addr().map_err(|e| e.to_string())?.port();
    let denied = sandboxed(
        ctx,
        &["--allow-net".into(), format!("udp:127.0.0.1@{other_port}")],
        &[&["sendto", &target]],
    )?;
    denied.expect(&[EPERM])?;
    let mut buf = [0u8; 64];
    if sock.recv(&mut buf).is_ok() {
        return Err("a denied datagram arrived".into());
    }
    let allowed = sandboxed(
        ctx,
        &["--allow-net".into(), format!("udp:127.0.0.1@{port}")],
        &[&["sendto", &target]],
    )?;
    allowed.expect(&[OK])?;
    sock.recv(&mut buf)
        .map_err(|e| format!("the allowed datagram did not arrive: {e}"))?;
    Ok(())
}

/// A listen rule wider than Landlock can list (`20000-29999`) leaves bind to the cgroup
/// program: a port inside it binds, a port outside it (an ephemeral one) gets EPERM.
fn net_bind_needs_listen_rule(ctx: &Ctx) -> Result<(), String> {
    let free = |range: std::ops::Range<u16>| -> Result<u16, String> {
        range
            .into_iter()
            .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .ok_or("no free port".to_string())
    };
    let inside = free(20000..30000)?;
    let outside = {
        let probe = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        probe.local_addr().map_err(|e| e.to_string())?.port()
    };
    if (20000..30000).contains(&outside) {
        return Err(format!(
            "the ephemeral port {outside} is inside the test range"
        ));
    }
    let listen = ["--listen".to_string(), "tcp:20000-29999".to_string()];
    let run = sandboxed(
        ctx,
        &listen,
        &[
            &["bind", &format!("127.0.0.1:{outside}")],
            &["bind", &format!("127.0.0.1:{inside}")],
        ],
    )?;
    run.expect(&[EPERM, OK])?;
    if !run.stderr.contains("deny bind4") {
        return Err(format!("no bind4 deny event: {}", run.stderr));
    }
    Ok(())
}

/// `listen(2)` on a socket never bound would take an ephemeral port that neither the `bind4`
/// program nor Landlock checks: the `socket_listen` program refuses it, with or without listen
/// rules, while a bound listener on a port a rule allows still works. (Without any TCP rule on
/// 6.1, Landlock ABI 2, seccomp refuses the inet socket itself: EPERM before `listen`.)
fn net_listen_needs_a_bound_port(ctx: &Ctx) -> Result<(), String> {
    let free = (20000..30000)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .ok_or("no free port")?;
    sandboxed(ctx, &[], &[&["listen-unbound"]])?.expect(&[EPERM])?;
    let listen = ["--listen".to_string(), "tcp:20000-29999".to_string()];
    let ruled = sandboxed(
        ctx,
        &listen,
        &[&["listen-unbound"], &["bind", &format!("127.0.0.1:{free}")]],
    )?;
    ruled.expect(&[EPERM, OK])?;
    if !ruled.stderr.contains("deny socket_listen") {
        return Err(format!("no socket_listen deny event: {}", ruled.stderr));
    }
    Ok(())
}

/// Deletes the namespace however the test ends.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The metadata address, assigned by the test to the loopback of a network namespace
/// of its own (nothing is ever sent to it from the host's namespace): a broad rule does not
/// reach it; a rule naming it does.
fn net_metadata_address_denied(ctx: &Ctx) -> Result<(), String> {
    let name = format!("nono-lab-{}", std::process::id());
    ip(&["netns", "add", &name])?;
    let ns = Netns(name.clone());
    // The namespace's own loopback carries the address: no dummy/veth module needed, and
    // nothing can route out of a fresh namespace.
    ip(&[
        "-n",
        &ns.0,
        "addr",
        "add",
        "169.254.169.254/32",
        "dev",
        "lo",
    ])?;
    ip(&["-n", &ns.0, "link", "set", "lo", "up"])?;
    // The listener lives in the namespace: a thread that entered it.
    let (tx, rx) = std::sync::mpsc::channel();
    let ns_path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let entered = (|| -> Result<TcpListener, String> {
            let f = fs::File::open(&ns_path).map_err(|e| e.to_string())?;
            use std::os::fd::AsRawFd;
            // SAFETY: setns(2) on this thread only.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
            TcpListener::bind("169.254.169.254:8080").map_err(|e| e.to_string())
        })();
        match entered {
            Ok(listener) => {
                let _ = tx.send(Ok(()));
                let mut accepted = 0usize;
                listener.set_nonblocking(false).ok();
                for mut c in listener.incoming().flatten() {
                    accepted += 1;
                    let mut b = [0u8; 1];
                    let _ = c.read(&mut b);
                    let _ = tx.send(Err(format!("accepted {accepted}")));
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("namespace listener: {e}"))?;
    let meta = "169.254.169.254:8080";
    let broad = sandboxed(
        ctx,
        &[
            "--netns".into(),
            name.clone(),
            "--allow-net".into(),
            "tcp:0.0.0.0/0@8080".into(),
        ],
        &[&["connect", meta]],
    )?;
    broad.expect(&[EPERM])?;
    if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
        return Err("the metadata listener saw the denied connection".into());
    }
    let explicit = sandboxed(
        ctx,
        &[
            "--netns".into(),
            name.clone(),
            "--allow-net".into(),
            "tcp:169.254.169.254/32@8080".into(),
        ],
        &[&["connect", meta]],
    )?;
    explicit.expect(&[OK])?;
    drop(ns);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Benchmark: what every process pays for the LSM programs

/// One benchmark window: ns per run of the no-op and of nono's programs, all over the same
/// events, as `nono kernel-bench-noop` measured them.
struct Window {
    noop: f64,
    /// How many times the no-op ran in the window.
    noop_runs: f64,
    /// Program name (as the kernel truncates it) -> ns per run; only programs that ran.
    ours: std::collections::HashMap<String, f64>,
}

/// `nono kernel-bench-noop` prints a window every this many milliseconds.
const BENCH_SAMPLE_MS: &str = "20";

/// Windows in which the no-op ran fewer times than this are left out (the first and last of a
/// command, mostly): a single stall of the host would outweigh them.
const BENCH_MIN_RUNS: f64 = 50.0;

/// Run `command` (this binary's probe) under `nono kernel-bench-noop` and read its windows.
fn bench_windows(ctx: &Ctx, command: &[&str]) -> Result<Vec<Window>, String> {
    let out = Command::new(&ctx.nono)
        .args(["kernel-bench-noop", "--sample-ms", BENCH_SAMPLE_MS, "--"])
        .args(command)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.contains(": errno") {
        return Err(format!(
            "kernel-bench-noop -- {command:?} failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut windows: Vec<Window> = Vec::new();
    for line in stdout.lines() {
        if line == "window" {
            windows.push(Window {
                noop: 0.0,
                noop_runs: 0.0,
                ours: Default::default(),
            });
            continue;
        }
        let (Some(window), Some((name, rest))) = (
            windows.last_mut(),
            line.strip_prefix("prog.").and_then(|l| l.split_once('=')),
        ) else {
            continue;
        };
        let Some((Ok(ns), Ok(runs))) = rest
            .split_once(' ')
            .map(|(ns, runs)| (ns.parse::<f64>(), runs.parse::<f64>()))
        else {
            continue;
        };
        if runs == 0.0 {
            continue;
        }
        if name == "bench_noop" {
            window.noop = ns / runs;
            window.noop_runs = runs;
        } else {
            window.ours.insert(name.to_string(), ns / runs);
        }
    }
    windows.retain(|w| w.noop_runs >= BENCH_MIN_RUNS);
    if windows.is_empty() {
        return Err(format!(
            "no window with {BENCH_MIN_RUNS} no-op runs: {stdout}"
        ));
    }
    Ok(windows)
}

/// How many times the overhead benchmark measures each case.
const BENCH_ROUNDS: usize = 5;

/// Opens per measured command.
const BENCH_OPENS: &str = "6000";

/// The figures of one case over all its windows: the no-op's ns per run and each program's
/// ratio to it, one per window.
#[derive(Default)]
struct Case {
    noop: Vec<f64>,
    ratios: std::collections::HashMap<&'static str, Vec<f64>>,
}

impl Case {
    fn add(&mut self, windows: &[Window], progs: &[&'static str]) {
        for window in windows {
            self.noop.push(window.noop);
            // A 20 ms window may hold no run of one program (the loop had not reached it yet,
            // or had ended): no ratio there. A program that never ran is reported as NaN.
            for prog in progs {
                if let Some(ns) = window.ours.get(*prog) {
                    self.ratios.entry(prog).or_default().push(ns / window.noop);
                }
            }
        }
    }

    /// "median ratio (quartiles)" of `prog`.
    fn show(&self, prog: &str) -> String {
        show_over(&[self], prog)
    }
}

/// "median ratio (quartiles)" of `prog` over the windows of all `cases`.
fn show_over(cases: &[&Case], prog: &str) -> String {
    let ratios = cases
        .iter()
        .flat_map(|case| case.ratios.get(prog).into_iter().flatten().copied())
        .collect();
    let [low, mid, high] = quartiles(ratios);
    format!("{mid:.2}x ({low:.2}-{high:.2})")
}

/// First quartile, median and third quartile (nearest rank).
fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return [f64::NAN; 3];
    }
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}

/// What every process pays for nono's `file_open` and `inode_permission` programs, as multiples
/// of a no-op LSM program's cost (absolute VM times mean nothing): outside every sandbox with
/// none live, outside with one live, and inside one (a deny on the same filesystem, so the walk
/// runs) with the directory verdict cache off and on.
///
/// Every ratio comes from one window in which the no-op and nono's programs ran on the same
/// opens (`nono kernel-bench-noop`, see `nono::kernel::cli`): TCG timing on a shared host drifts
/// by several times between windows, so a ratio of two windows measures the drift. Windows are
/// [`BENCH_SAMPLE_MS`] long, so a stall of the host (which lands in whichever program runs
/// then, and can outweigh a thousand runs) spoils few of them, and the median sets those aside.
/// The inside windows hold only the sandboxed loop: the sandbox waits for a go file before it
/// opens and reports done after, and the measured command gives the go and waits for the done;
/// the sandbox's start and exit lie outside it. Each case is measured in each of
/// [`BENCH_ROUNDS`] rounds; reported: the median ratio over all its windows, with the
/// quartiles. Beside nono's programs, in the same windows, each path's floor: the reference
/// programs of `nono-ebpf/src/bench.rs` that do only what the design requires (the cgroup id
/// outside; the cgroup id, the sandbox and the file's own rule inside). Targets from the issue:
/// outside <= 1.5x the no-op, inside <= 5x; reported, not asserted, because TCG timing is noisy.
fn bench_lsm_overhead(ctx: &Ctx) -> Result<(), String> {
    fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")
        .map_err(|e| format!("enabling bpf stats: {e}"))?;
    if !sandbox_cgroups().is_empty() {
        return Err("a sandbox is still live: the no-sandbox case can't be measured".into());
    }
    let target = ctx.scratch.join("dir/a/b/target.txt");
    let denied = ctx.scratch.join("denied.txt");
    write(&target, "t")?;
    write(&denied, "d")?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = s(&me);
    let target = s(&target);
    let openloop = [me.as_str(), "probe", "openloop", &target, BENCH_OPENS];
    // Beside nono's programs, the floor of each path (`nono-ebpf/src/bench.rs`).
    const PROGS: [&str; 3] = ["file_open", "inode_permissio", "bench_cgroup_id"];
    const INSIDE_PROGS: [&str; 2] = ["file_open", "bench_inode_rule"];
    let (mut idle, mut outside) = (Case::default(), Case::default());
    let (mut cached, mut uncached) = (Case::default(), Case::default());
    for round in 0..BENCH_ROUNDS {
        // With no sandbox anywhere, the programs leave on the active count alone.
        idle.add(&bench_windows(ctx, &openloop)?, &PROGS);
        // A sandbox that runs the loop twice, each time between a go and a done file.
        let gate = |name: &str| s(&ctx.scratch.join(format!("{name}-{round}")));
        let [go1, done1, go2, done2, release] =
            ["go1", "done1", "go2", "done2", "release"].map(gate);
        let live = spawn_sandboxed(
            ctx,
            &flag("--deny", &denied),
            &[
                &["wait", &go1, "600"],
                &["openloop", &target, BENCH_OPENS],
                &["create", &done1],
                &["wait", &go2, "600"],
                &["openloop", &target, BENCH_OPENS],
                &["create", &done2],
                &["wait", &release, "600"],
            ],
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while sandbox_cgroups().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // With a live sandbox, processes outside pay the cgroup filter.
        let measured = (|| -> Result<(), String> {
            outside.add(&bench_windows(ctx, &openloop)?, &PROGS);
            // Alternate which cache state goes first, so neither always follows the other.
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for (cache, (go, done)) in order.into_iter().zip([(&go1, &done1), (&go2, &done2)]) {
                set_cache(ctx, cache)?;
                let windows = bench_windows(
                    ctx,
                    &[&me, "probe", "create", go, "--", "wait", done, "600"],
                )?;
                let case = if cache { &mut cached } else { &mut uncached };
                case.add(&windows, &INSIDE_PROGS);
            }
            Ok(())
        })();
        // Every gate, so the sandbox exits even when a measurement failed before its go.
        for gate in [&go1, &go2, &release] {
            write(Path::new(gate), "")?;
        }
        let run = finish(live)?;
        measured?;
        run.expect(&[OK; 7])?;
    }
    // A program that never ran (the layer refused at load, say) leaves nothing to compare: a
    // failure, not a line of NaNs.
    let cases: [(&str, &Case, &[&str]); 4] = [
        ("no sandbox live", &idle, &PROGS),
        ("outside, sandbox live", &outside, &PROGS),
        ("inside, cache on", &cached, &INSIDE_PROGS),
        ("inside, cache off", &uncached, &INSIDE_PROGS),
    ];
    for (name, case, progs) in cases {
        for prog in progs {
            if case.ratios.get(prog).is_none_or(|r| r.is_empty()) {
                return Err(format!(
                    "{name}: nono's {prog} program ran in no measured window (is the BPF LSM layer loaded?)"
                ));
            }
        }
    }
    let noop = |case: &Case| {
        let [_, mid, _] = quartiles(case.noop.clone());
        format!("no-op {mid:.0} ns/run, {} windows", case.noop.len())
    };
    crate::harness::info(format!(
        "bench {}: x the no-op on the same opens, median of {BENCH_SAMPLE_MS} ms windows (quartiles); no sandbox live: file_open {}, inode_permission {}; floor, the cgroup id alone: {} ({})",
        ctx.kernel,
        idle.show("file_open"),
        idle.show("inode_permissio"),
        idle.show("bench_cgroup_id"),
        noop(&idle),
    ));
    crate::harness::info(format!(
        "bench {}: sandbox live, outside it: file_open {}, inode_permission {}; floor, the cgroup id alone: {} ({})",
        ctx.kernel,
        outside.show("file_open"),
        outside.show("inode_permissio"),
        outside.show("bench_cgroup_id"),
        noop(&outside),
    ));
    crate::harness::info(format!(
        "bench {}: inside: file_open cache on {} ({}), cache off {} ({}); floor, the cgroup id, the sandbox and the file's own rule: {}",
        ctx.kernel,
        cached.show("file_open"),
        noop(&cached),
        uncached.show("file_open"),
        noop(&uncached),
        show_over(&[&cached, &uncached], "bench_inode_rule"),
    ));
    Ok(())
}

/// The names a test upstream was asked.
type Asked = Arc<std::sync::Mutex<Vec<String>>>;

/// A test upstream on 127.0.0.1: answers every A query with 127.0.0.2, TTL `ttl` seconds, and
/// records the names.
fn dns_upstream(ttl: u32) -> Result<(u16, Asked), String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = sock.local_addr().map_err(|e| e.to_string())?.port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            // The question: labels from byte 12 to the root label, then type and class.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < n && buf[i] != 0 {
                let l = buf[i] as usize;
                labels.push(String::from_utf8_lossy(&buf[i + 1..(i + 1 + l).min(n)]).into_owned());
                i += 1 + l;
            }
            let end = i + 5;
            if end > n {
                continue;
            }
            s2.lock().unwrap().push(labels.join("."));
            let mut r = buf[..end].to_vec();
            r[2] |= 0x80; // a response
            r[3] = 0x80; // recursion available, NOERROR
            r[6..8].copy_from_slice(&1u16.to_be_bytes()); // one answer
            r[8..12].copy_from_slice(&[0; 4]);
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // the question's name, A, IN
            r.extend_from_slice(&ttl.to_be_bytes());
            r.extend_from_slice(&[0, 4, 127, 0, 0, 2]);
            let _ = sock.send_to(&r, from);
        }
    });
    Ok((port, seen))
}

/// The DNS redirect on this kernel: UDP queries to port 53 of any server, IPv4, IPv6 (`::1`,
/// where nothing listens on 53) and IPv4-mapped, reach nono's resolver and the answer appears to
/// come from the server asked; a name no rule allows is refused and never reaches the upstream.
fn net_dns_redirect_v4_and_v6(ctx: &Ctx) -> Result<(), String> {
    let (port, seen) = dns_upstream(60)?;
    let has_v6 = UdpSocket::bind("[::1]:0").is_ok();
    let mut ops: Vec<Vec<String>> = vec![
        vec!["dnsq".into(), "127.0.0.9:53".into(), "a.lab.test".into()],
        vec![
            "dnsq".into(),
            "[::ffff:127.0.0.9]:53".into(),
            "a.lab.test".into(),
        ],
        vec!["dnsq".into(), "127.0.0.9:53".into(), "b.lab.test".into()],
    ];
    if has_v6 {
        ops.push(vec!["dnsq".into(), "[::1]:53".into(), "a.lab.test".into()]);
        ops.push(vec!["dnsq".into(), "[::1]:53".into(), "b.lab.test".into()]);
    }
    let ops_ref: Vec<Vec<&str>> = ops
        .iter()
        .map(|o| o.iter().map(String::as_str).collect())
        .collect();
    let ops_slices: Vec<&[&str]> = ops_ref.iter().map(Vec::as_slice).collect();
    // The upstream through the environment (`nono run` reads NONO_DNS_UPSTREAM), never the
    // VM's resolv.conf. Its 127.0.0.2 answers are stripped by nono (a special range): the
    // queries still get NOERROR, which is all this test reads.
    let run = run_to_end(
        ctx,
        command(ctx, &["--domain".into(), "a.lab.test".into()], &ops_slices)
            .env("NONO_DNS_UPSTREAM", format!("127.0.0.1:{port}")),
    )?;
    // REFUSED is rcode 5: errno -15 from the probe.
    let mut expected = vec![OK, OK, "errno -15"];
    if has_v6 {
        expected.extend([OK, "errno -15"]);
    }
    run.expect(&expected)?;
    let names = seen.lock().unwrap().clone();
    if !names.iter().any(|n| n == "a.lab.test") {
        return Err(format!(
            "the allowed name never reached the upstream: {names:?}"
        ));
    }
    if names.iter().any(|n| n.starts_with('b')) {
        return Err(format!("a refused name reached the upstream: {names:?}"));
    }
    if !has_v6 {
        crate::harness::info(format!(
            "{}: no ::1 in this VM, IPv6 native case skipped",
            ctx.kernel
        ));
    }
    Ok(())
}

/// Egress by domain on this kernel, end to end through the port-53 redirect: nothing is open
/// before an answer; the allowed name (on its rule's port) resolves through a query to
/// 127.0.0.9:53, answered with 127.0.0.2 (loopback, opened by `--allow-resolved
/// 127.0.0.0/8`), and then connects; a name no rule allows is REFUSED, never reaches the
/// upstream, and its address (connected to directly) stays EPERM; once the answer's 2 s TTL
/// is over the old address is EPERM again. `--dns-upstream` names the test's upstream, never
/// the VM's resolver; every packet stays on loopback.
fn net_egress_by_domain_until_ttl(ctx: &Ctx) -> Result<(), String> {
    let (upstream, seen) = dns_upstream(2)?;
    let allowed = TcpListener::bind("127.0.0.2:0").map_err(|e| e.to_string())?;
    allowed.set_nonblocking(true).map_err(|e| e.to_string())?;
    let port = allowed.local_addr().map_err(|e| e.to_string())?.port();
    let refused = TcpListener::bind(("127.0.0.3", port)).map_err(|e| e.to_string())?;
    refused.set_nonblocking(true).map_err(|e| e.to_string())?;
    let a = format!("127.0.0.2:{port}");
    let b = format!("127.0.0.3:{port}");
    let flags = [
        "--domain".to_string(),
        format!("a.lab.test port {port}"),
        "--dns-upstream".into(),
        format!("127.0.0.1:{upstream}"),
        "--allow-resolved".into(),
        "127.0.0.0/8".into(),
    ];
    let run = sandboxed(
        ctx,
        &flags,
        &[
            &["connect", &a],
            &["dnsq", "127.0.0.9:53", "a.lab.test", "127.0.0.2"],
            &["connect", &a],
            &["dnsq", "127.0.0.9:53", "b.lab.test"],
            &["connect", &b],
            &["sleep", "4"],
            &["connect", &a],
        ],
    )?;
    // REFUSED is rcode 5: errno -15 from the probe.
    run.expect(&[EPERM, OK, OK, "errno -15", EPERM, OK, EPERM])?;
    if !run.stderr.contains("egress: kernel mode") {
        return Err(format!(
            "nono did not run in kernel mode: {}",
            run.stderr.trim()
        ));
    }
    let accepted = |l: &TcpListener| {
        let mut n = 0;
        while l.accept().is_ok() {
            n += 1;
        }
        n
    };
    let (to_a, to_b) = (accepted(&allowed), accepted(&refused));
    if (to_a, to_b) != (1, 0) {
        return Err(format!(
            "expected one connection to {a} and none to {b}, got {to_a} and {to_b}"
        ));
    }
    let names = seen.lock().unwrap().clone();
    if names.iter().any(|n| n.starts_with('b')) {
        return Err(format!("a refused name reached the upstream: {names:?}"));
    }
    if !names.iter().any(|n| n == "a.lab.test") {
        return Err(format!(
            "the allowed name never reached the upstream: {names:?}"
        ));
    }
    Ok(())
}

/// A burst through the real event path: one sandbox makes `BURST` UDP sends that the cgroup
/// `sendmsg4` program denies, each one deny event into the sandbox's own 1 MiB ring (about
/// 11,900 events), read by `nono run` and stored with `send().await`. Reported: how many reached
/// the audit store, and the kernel's and the reader's drop counts for the session. Asserted:
/// nothing is lost uncounted (every denial is stored or counted as a kernel drop, and the reader
/// drops none). Rates are not asserted; runs natively on the host too, where they mean something.
fn bench_event_burst(ctx: &Ctx) -> Result<(), String> {
    const BURST: u64 = 20_000;
    // The denied destination: a socket this test holds, so nothing else listens there.
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let port = sock.local_addr().map_err(|e| e.to_string())?.port();
    let state = ctx.scratch.with_extension("state");
    let started = Instant::now();
    let out = command(
        ctx,
        &["--allow-net".into(), format!("udp:127.0.0.2/32@{port}")],
        &[&["sendloop", &format!("127.0.0.1:{port}"), &BURST.to_string()]],
    )
    .env("XDG_STATE_HOME", &state)
    .output()
    .map_err(|e| format!("running {}: {e}", ctx.nono.display()))?;
    let elapsed = started.elapsed();
    let run = Run::from(out);
    // `ok`: every send was refused with EPERM, so the kernel made exactly BURST denials.
    run.expect(&[OK])?;
    let mut buf = [0u8; 64];
    if sock.recv(&mut buf).is_ok() {
        return Err("a denied datagram arrived".into());
    }
    let id = latest_session(ctx, &state)?;
    let doc = audit_json(ctx, &state, &["show", &id])?;
    let stored = doc["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| {
                    e["kind"] == "net"
                        && e["denied"] == true
                        && e["detail"]["port"].as_u64() == Some(u64::from(port))
                })
                .count() as u64
        })
        .unwrap_or(0);
    let kernel = doc["session"]["dropped"]["kernel"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let user = doc["session"]["dropped"]["userspace"]
        .as_u64()
        .unwrap_or(u64::MAX);
    crate::harness::info(format!(
        "event burst {}: {BURST} denied sends in {:.1} s: {stored} stored, {kernel} dropped by \
         the kernel (ring full), {user} dropped by the reader",
        ctx.kernel,
        elapsed.as_secs_f64()
    ));
    if user != 0 {
        return Err(format!("the reader dropped {user} events"));
    }
    // The kernel's count covers every event of the session, so it bounds the burst's losses.
    if stored > BURST || stored + kernel < BURST {
        return Err(format!(
            "{BURST} denials: {stored} stored and {kernel} counted as dropped: events went missing"
        ));
    }
    Ok(())
}
