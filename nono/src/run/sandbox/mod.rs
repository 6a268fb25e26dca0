//! The unprivileged sandbox: a Landlock ruleset plus seccomp filters, applied by the child of
//! `nono run` to itself between `clone` and `execve`.
//!
//! Privilege: none; runs the same as root or as any user (root keeps its capabilities inside,
//! but Landlock and seccomp apply to root too). Kernel assumptions: Landlock ABI >= 1 (the
//! caller refuses without it) and seccomp filters.
//!
//! Module boundaries: [`probe`] asks the kernel what it offers; [`landlock`] and [`seccomp`]
//! turn a plan into kernel objects in the parent; [`spawn`] is the only code that runs between
//! `clone` and `execve`, with [`netns::enter`] as its step for the proxy mode's network
//! namespace; [`supervise`] is the parent until the command ends.

pub mod landlock;
pub mod netns;
pub mod probe;
pub mod seccomp;
pub mod spawn;
pub mod supervise;

use std::os::fd::{AsFd, BorrowedFd};

use nono_policy::backend::landlock::LandlockPlan;
use nono_policy::ir::AuditLevel;

/// Everything the child needs, prepared before `clone`.
#[derive(Debug)]
pub struct Sandbox {
    pub ruleset: landlock::Ruleset,
    pub filters: seccomp::Filters,
    /// With the kernel layer: the run's sandbox cgroup's directory, the cgroup the child is
    /// born in or writes itself into before it confines itself (see [`spawn`]).
    pub cgroup: Option<std::os::fd::OwnedFd>,
    /// In the proxy mode of domain rules: the command's own network namespace.
    pub netns: Option<netns::Setup>,
    /// With an audit trail: the gate the child waits at until the session row is committed
    /// (`audit::session::RunAudit::take_row_gate`).
    pub row_gate: Option<std::os::fd::OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Landlock(#[from] landlock::LandlockError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("{0}")]
    Thread(String),
}

impl Sandbox {
    pub fn prepare(
        plan: &LandlockPlan,
        kernel_abi: u8,
        audit: AuditLevel,
    ) -> Result<Sandbox, SetupError> {
        Sandbox::complete(landlock::build_paths(plan, kernel_abi, audit)?, plan)
    }

    /// The sandbox for `plan` from a ruleset holding its path rules: its port rules added, its
    /// seccomp filters compiled.
    fn complete(
        mut ruleset: landlock::Ruleset,
        plan: &LandlockPlan,
    ) -> Result<Sandbox, SetupError> {
        ruleset.add_port_rules(&plan.port_rules)?;
        Ok(Sandbox {
            ruleset,
            filters: seccomp::build(&plan.seccomp)?,
            cgroup: None,
            netns: None,
            row_gate: None,
        })
    }
}

/// A [`Sandbox`] whose Landlock path rules are being built on a thread of their own.
///
/// The path rules are most of a sandbox's set-up (about 0.6 ms for the default profile's
/// 150 rules, each an `open` and a `landlock_add_rule`), and they depend on the plan alone:
/// `nono run` starts them as soon as the plan exists and checks the policy against this
/// machine meanwhile (denies against grants on canonical paths, the kernel layer, the
/// command). Only port rules may change in between (the egress modes add theirs); a plan whose
/// filesystem part changed is built again rather than enforced from the stale start.
pub struct Preparing {
    started: LandlockPlan,
    kernel_abi: u8,
    audit: AuditLevel,
    paths: std::thread::JoinHandle<Result<landlock::Ruleset, landlock::LandlockError>>,
}

/// Whether two plans are the same but for their port rules. Every other field counts, the
/// ones the ruleset does not read too: a field added to the plan later is compared rather than
/// silently ignored (at worst the path rules are built twice).
fn same_but_ports(a: &LandlockPlan, b: &LandlockPlan) -> bool {
    let without_ports = |p: &LandlockPlan| LandlockPlan {
        port_rules: Vec::new(),
        ..p.clone()
    };
    without_ports(a) == without_ports(b)
}

impl Sandbox {
    /// Start building `plan`'s path rules (see [`Preparing`]).
    pub fn start_preparing(
        plan: &LandlockPlan,
        kernel_abi: u8,
        audit: AuditLevel,
    ) -> std::io::Result<Preparing> {
        let started = plan.clone();
        let for_thread = plan.clone();
        let paths = std::thread::Builder::new()
            .name("nono-landlock".into())
            .spawn(move || landlock::build_paths(&for_thread, kernel_abi, audit))?;
        Ok(Preparing {
            started,
            kernel_abi,
            audit,
            paths,
        })
    }
}

impl Preparing {
    /// The sandbox for `plan`: the path rules built meanwhile, `plan`'s port rules, its
    /// seccomp filters.
    pub fn finish(self, plan: &LandlockPlan) -> Result<Sandbox, SetupError> {
        let built = self.paths.join().map_err(|_| {
            SetupError::Thread("the thread building the Landlock ruleset panicked".into())
        })?;
        let ruleset = if same_but_ports(&self.started, plan) {
            built?
        } else {
            debug_assert!(
                false,
                "the plan's filesystem part changed after it was started"
            );
            landlock::build_paths(plan, self.kernel_abi, self.audit)?
        };
        Sandbox::complete(ruleset, plan)
    }
}

#[derive(Debug)]
pub enum RunError {
    /// Set-up before the command started (signals, subreaper).
    Setup(std::io::Error),
    Spawn(spawn::SpawnError),
    Supervise(std::io::Error),
}

/// The pid of the command `run` started last (0 before): the audit trail attributes
/// Landlock's denial records by the pid that created the domain (see `audit::landlock_log`).
pub static CHILD_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Start the command confined by `sandbox`, forward signals until it ends, clean up survivors.
/// `on_exec` runs once the command has been executed (`spawn` returns only after the child's
/// `execve` succeeded), while it runs; it gets the proxy's listener from inside the command's
/// network namespace when the sandbox has one.
pub fn run(
    sandbox: &Sandbox,
    launch: &spawn::Launch,
    on_exec: impl FnOnce(Option<std::net::TcpListener>),
) -> Result<supervise::Ended, RunError> {
    supervise::become_subreaper().map_err(RunError::Setup)?;
    let blocked = supervise::BlockedSignals::block().map_err(RunError::Setup)?;
    let channel = match &sandbox.netns {
        Some(_) => Some(netns::channel().map_err(RunError::Setup)?),
        None => None,
    };
    // SAFETY: the ruleset owns the fd and outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(sandbox.ruleset.raw_fd()) };
    let conf = spawn::Confinement {
        landlock: Some((fd, sandbox.ruleset.restrict_flags())),
        seccomp: &sandbox.filters.programs,
        // The proxy mode's set-up (its listener's bind) runs before the child enters the
        // cgroup, outside the sandbox's socket programs, so that child writes itself in.
        cgroup: sandbox.cgroup.as_ref().map(|dir| spawn::CgroupEntry {
            dir: dir.as_fd(),
            at_clone: sandbox.netns.is_none(),
        }),
        netns: sandbox
            .netns
            .as_ref()
            .zip(channel.as_ref())
            .map(|(setup, (_, child_end))| (setup, child_end.as_fd())),
        row_gate: sandbox.row_gate.as_ref().map(|fd| fd.as_fd()),
    };
    let child = spawn::spawn(launch, &conf, &blocked.previous).map_err(RunError::Spawn)?;
    CHILD_PID.store(child, std::sync::atomic::Ordering::Release);
    let listener = match channel {
        Some((nono_end, child_end)) => {
            // The child has exec'd: its copy of its end is closed, so with ours closed too a
            // missing listener reads as EOF, never as a wait.
            drop(child_end);
            match netns::receive_listener(&nono_end) {
                Ok(l) => Some(l),
                Err(e) => {
                    // Without the listener the command could reach nothing; it must not run
                    // half set up.
                    // SAFETY: signalling and reaping our own child.
                    unsafe {
                        libc::kill(child, libc::SIGKILL);
                        libc::waitpid(child, std::ptr::null_mut(), 0);
                    }
                    return Err(RunError::Setup(e));
                }
            }
        }
        None => None,
    };
    on_exec(listener);
    // Off the way to `clone`, onto the command's run time (see `Ruleset::rule_objects`).
    sandbox.ruleset.close_rule_objects();
    let ended = supervise::supervise(&blocked, child).map_err(RunError::Supervise)?;
    match supervise::kill_survivors(child) {
        Ok(0) => {}
        Ok(n) => tracing::info!("killed {n} process(es) the command left running"),
        Err(e) => tracing::warn!(
            "could not look for processes the command left running ({e}); any survivor stays confined"
        ),
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    //! The whole sandbox against hand-built plans, on this kernel. Skipped without Landlock.
    use super::*;
    use nono_policy::backend::landlock::{FsRights, PathRule, SeccompPlan};
    use nono_policy::ir::RuleId;
    use nono_policy::path::PolicyPath;
    use std::path::Path;

    fn read_exec() -> FsRights {
        FsRights::READ_FILE
            .union(FsRights::READ_DIR)
            .union(FsRights::EXECUTE)
    }

    fn plan(abi: u8, rules: Vec<(String, FsRights)>) -> LandlockPlan {
        LandlockPlan {
            abi,
            handled_fs: FsRights::for_abi(abi),
            handled_net: vec![],
            scope_signals: abi >= 6,
            scope_abstract_unix: abi >= 6,
            path_rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (p, r))| PathRule {
                    carve_outs: vec![],
                    path: PolicyPath::parse(&p).unwrap(),
                    rights: r,
                    rules: vec![RuleId(i as u32 + 1)],
                })
                .collect(),
            port_rules: vec![],
            seccomp: SeccompPlan {
                deny_udp_and_raw: true,
                deny_inet: false,
                deny_other_families: true,
                deny_escape_syscalls: true,
                deny_unix_sockets: true,
                inet_tcp_udp_only: false,
                deny_tcp_fastopen: true,
                deny_listen: true,
                deny_exec_memfd: false,
            },
            gaps: vec![],
            covered_by_kernel_layer: vec![],
            notes: vec![],
        }
    }

    /// Run `sh -c script` confined, in a forked helper so that subreaper and signal mask
    /// changes do not leak into the test harness.
    fn confined(plan: &LandlockPlan, script: &str) -> i32 {
        let abi = probe::landlock_abi();
        let sandbox = Sandbox::prepare(plan, abi, AuditLevel::Off).unwrap();
        let launch = spawn::Launch::new(
            Path::new("/bin/sh"),
            &["sh".into(), "-c".into(), script.into()],
            &[("PATH".into(), "/usr/bin:/bin".into())],
            Path::new("/"),
        )
        .unwrap();
        // SAFETY: the helper only runs `run` and _exits; the harness' other threads are not
        // touched (the helper is single-threaded after fork, and only makes syscalls and the
        // allocations `run` needs, which is acceptable in a test).
        let helper = unsafe { libc::fork() };
        if helper == 0 {
            let code = match run(&sandbox, &launch, |_| {}) {
                Ok(e) => e.exit_code(),
                Err(_) => 125,
            };
            // SAFETY: leave the helper without running the harness' atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: our helper.
        unsafe { libc::waitpid(helper, &mut status, 0) };
        libc::WEXITSTATUS(status)
    }

    fn base(abi: u8, extra: Vec<(String, FsRights)>) -> LandlockPlan {
        let mut rules: Vec<(String, FsRights)> =
            ["/usr", "/bin", "/lib", "/lib64", "/etc", "/proc", "/dev"]
                .iter()
                .map(|p| (p.to_string(), read_exec()))
                .collect();
        rules.push(("/dev/null".into(), FsRights::WRITE_FILE));
        rules.extend(extra);
        plan(abi, rules)
    }

    #[test]
    fn landlock_and_seccomp_confine_the_command() {
        let abi = probe::landlock_abi().min(7);
        if abi == 0 {
            eprintln!("no Landlock here; skipping");
            return;
        }
        let granted = tempfile::tempdir().unwrap();
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("id_rsa"), "KEY").unwrap();
        let g = granted.path().display().to_string();
        let s = secret.path().display().to_string();
        let rw = FsRights::for_abi(abi).difference(FsRights::EXECUTE);
        let p = base(abi, vec![(g.clone(), rw)]);

        assert_eq!(
            confined(
                &p,
                &format!("echo hi > {g}/out && test \"$(cat {g}/out)\" = hi")
            ),
            0
        );
        assert_ne!(
            confined(&p, &format!("cat {s}/id_rsa")),
            0,
            "read outside every grant"
        );
        assert_ne!(
            confined(&p, &format!("echo x > {s}/new")),
            0,
            "write outside every grant"
        );
        assert_ne!(
            confined(&p, &format!("ln -s {s}/id_rsa {g}/l && cat {g}/l")),
            0,
            "symlink out"
        );
        assert!(!secret.path().join("new").exists());
        // Read-only grants stay read-only.
        assert_ne!(confined(&p, "echo x >> /etc/hostname"), 0);
        // seccomp: UDP and netlink refused; TCP socket creation allowed.
        if Path::new("/usr/bin/python3").exists() {
            let py = |code: &str| format!("python3 -c '{code}'");
            assert_eq!(confined(&p, &py("import socket; socket.socket()")), 0);
            assert_ne!(
                confined(
                    &p,
                    &py("import socket; socket.socket(type=socket.SOCK_DGRAM)")
                ),
                0
            );
            assert_ne!(
                confined(
                    &p,
                    &py("import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)")
                ),
                0
            );
            assert_eq!(
                confined(&p, &py("import socket,errno\ntry: socket.socket(type=socket.SOCK_DGRAM)\nexcept OSError as e: raise SystemExit(0 if e.errno==errno.EPERM else 9)\nraise SystemExit(8)")),
                0,
                "EPERM, as documented"
            );
        }
    }

    #[test]
    fn survivors_are_killed_when_the_command_exits() {
        let abi = probe::landlock_abi().min(7);
        if abi == 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let rw = FsRights::for_abi(abi).difference(FsRights::EXECUTE);
        let p = base(abi, vec![(d.clone(), rw)]);
        // A double-forked, setsid'd survivor writes its pid, then would touch a file later.
        let script = format!(
            "setsid sh -c 'echo $$ > {d}/pid; sleep 2; touch {d}/late' </dev/null >/dev/null 2>&1 & \
             while ! test -s {d}/pid; do sleep 0.05; done; exit 0"
        );
        assert_eq!(confined(&p, &script), 0);
        std::thread::sleep(std::time::Duration::from_millis(2500));
        assert!(!dir.path().join("late").exists(), "survivor kept running");
    }

    /// A sandbox prepared on the side (`Preparing`) is the one `Sandbox::prepare` builds, port
    /// rules added meanwhile included; a plan whose paths changed is built again, never taken
    /// from the stale start (and a debug build says so).
    #[test]
    fn prepared_on_the_side_matches_prepared_at_once() {
        let abi = probe::landlock_abi().min(7);
        if abi < 4 {
            eprintln!("no Landlock ABI 4 here; skipping");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let mut p = base(abi, vec![(d.clone(), read_exec())]);
        p.handled_net = vec![nono_policy::backend::landlock::NetRight::ConnectTcp];
        let preparing = Sandbox::start_preparing(&p, abi, AuditLevel::Off).unwrap();
        // What an egress mode does meanwhile.
        p.port_rules.push(nono_policy::backend::landlock::PortRule {
            port: 8080,
            rights: vec![nono_policy::backend::landlock::NetRight::ConnectTcp],
            rules: vec![RuleId(99)],
        });
        let side = preparing.finish(&p).unwrap();
        let at_once = Sandbox::prepare(&p, abi, AuditLevel::Off).unwrap();
        assert_eq!(side.ruleset.added, at_once.ruleset.added);
        assert_eq!(side.ruleset.skipped, at_once.ruleset.skipped);
        assert!(side.ruleset.added.iter().any(|r| r.path == dir.path()));

        let mut moved = p.clone();
        let preparing = Sandbox::start_preparing(&p, abi, AuditLevel::Off).unwrap();
        moved.path_rules.pop();
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            preparing.finish(&moved).map(|s| s.ruleset.added)
        }));
        if cfg!(debug_assertions) {
            assert!(finished.is_err(), "a changed plan went unnoticed");
        } else {
            assert_eq!(
                finished.unwrap().unwrap(),
                Sandbox::prepare(&moved, abi, AuditLevel::Off)
                    .unwrap()
                    .ruleset
                    .added
            );
        }
    }
}
