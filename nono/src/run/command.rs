//! `nono run`: compile, check on this machine, refuse or confine, run, pass the status on.
//!
//! Privilege: none (see [`super::sandbox`]); as root the eBPF kernel layer is added (see
//! [`super::kernel_layer`]). Fail closed: the plan is computed for the Landlock ABI this kernel
//! reports and the parts of the kernel layer that loaded; any gap they leave, any deny that a grant would expose on
//! this machine, or a missing seccomp refuses the run (exit 125) with each rule, the feature and
//! the kernel needed, unless `--best-effort`, which runs and lists what is not enforced. No
//! Landlock at all refuses even with `--best-effort`: there would be no sandbox.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nono_policy::backend::landlock::{plan_with_coverage, FsRights, KernelCoverage, LandlockPlan};
use nono_policy::backend::{linux_release_for_abi, Target};
use nono_policy::ir::{NetPolicy, Policy, RuleId};
use nono_policy::path::PathVars;

use super::concrete::{self, Conflict, RuleRef};
use super::kernel_layer::{self, KernelRun};
use super::layer::Flags;
use super::sandbox::landlock::AddedRule;
use super::sandbox::probe::{abi_features, KernelFeatures};
use super::sandbox::spawn::{Launch, Step};
use super::sandbox::{self, RunError, Sandbox};
use super::RunArgs;
use crate::exit::{self, CmdResult, Exit};

fn refused(message: impl Into<String>) -> Exit {
    Exit::new(exit::RUN_REFUSED, message)
}

/// One reason the sandbox would not enforce the policy as written.
#[derive(Debug, Clone)]
/// A rule this kernel cannot enforce, as `nono run` lists it.
struct Problem {
    text: String,
    /// Problems that share their explanation are listed under it once, each by its rule
    /// (`--allow ~` puts some twenty credential denies inside one grant). Alone, a problem is
    /// shown as `text`.
    shared: Option<Shared>,
    /// `--best-effort` may run without it. Not so for nono's own state (the implicit denies on
    /// the audit trail, the rollback store and nono's configuration): a run may do without a
    /// profile's rule, never with the record of what it did open to the command.
    waivable: bool,
}

/// An explanation several problems may share, and this problem's line under it.
#[derive(Debug, Clone)]
struct Shared {
    why: String,
    rule: String,
}

impl Problem {
    fn new(text: String) -> Problem {
        Problem {
            text,
            shared: None,
            waivable: true,
        }
    }
}

/// Whether `id` is one of nono's implicit denies on its own state (`concrete::expand`).
fn protects_nono_state(policy: &Policy, id: RuleId) -> bool {
    policy
        .provenance
        .origin(id)
        .is_some_and(|o| &*o.source == concrete::IMPLICIT_SOURCE)
}

fn problems(
    policy: &Policy,
    plan: &LandlockPlan,
    conflicts: &[Conflict],
    kernel: &KernelFeatures,
    coverage: &KernelCoverage,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for g in &plan.gaps {
        let rule = g.rule.map(|id| RuleRef::of(policy, id));
        let (named, item) = match &rule {
            Some(r) => (
                r.to_string(),
                format!(
                    "{} `{}`{}",
                    r.id,
                    g.rule_text,
                    r.origin
                        .as_ref()
                        .map_or(String::new(), |o| format!(" ({o})"))
                ),
            ),
            None => (
                "the default deny".to_string(),
                format!("the default deny: `{}`", g.rule_text),
            ),
        };
        let need = format!("need {} ({}); {}", g.feature, g.needs, g.reason);
        out.push(Problem {
            text: format!(
                "{named}: `{}` needs {} ({}); {}",
                g.rule_text, g.feature, g.needs, g.reason
            ),
            shared: Some(Shared {
                why: need,
                rule: item,
            }),
            waivable: !g.rule.is_some_and(|id| protects_nono_state(policy, id)),
        });
    }
    for c in conflicts {
        // BPF LSM enforces the deny by inode wherever the grant reaches it (the symlinked grant
        // included); a deny it then can't bind is a problem of its own (see kernel_layer).
        if coverage.files {
            continue;
        }
        // The back-end already reported this pair (symbolically, deny inside grant).
        if plan
            .gaps
            .iter()
            .any(|g| g.rule == Some(c.deny.id) && g.related.contains(&c.grant.id))
        {
            continue;
        }
        if landlock_splits(plan, c) {
            continue;
        }
        out.push(Problem {
            text: format!(
                "{c}: Landlock can only grant, so the grant would expose what the deny protects \
                 (grant narrower paths, or drop the grant)"
            ),
            shared: Some(Shared {
                why: "are denies their grants would expose: Landlock can only grant (grant \
                      narrower paths, or drop the grants)"
                    .to_string(),
                rule: c.to_string(),
            }),
            waivable: !protects_nono_state(policy, c.deny.id),
        });
    }
    if !kernel.seccomp_errno {
        out.push(Problem::new(
            "seccomp filters are unavailable: non-TCP sockets, io_uring, ptrace, TIOCSTI, \
             mount and module loading would not be blocked (needs CONFIG_SECCOMP_FILTER)"
                .into(),
        ));
    }
    out
}

/// The back-end split this (read/exec-only) grant around the deny; the ruleset is built from the
/// canonical paths, so the split holds wherever the deny really lies.
fn landlock_splits(plan: &LandlockPlan, c: &Conflict) -> bool {
    !c.grant_inside_deny
        && plan.path_rules.iter().any(|r| {
            r.rules.contains(&c.grant.id) && r.carve_outs.iter().any(|x| x.rule == c.deny.id)
        })
}

fn kernel_summary(kernel: &KernelFeatures, plan_abi: u8) -> String {
    let mut s = format!("Kernel: Linux {}\n", kernel.release);
    if kernel.landlock_abi == 0 {
        s.push_str("  Landlock: not available (nono run refuses to start)\n");
    } else {
        let _ = writeln!(
            s,
            "  Landlock ABI {} (plan uses ABI {plan_abi}): {}",
            kernel.landlock_abi,
            abi_features(plan_abi).join(", ")
        );
    }
    let _ = writeln!(
        s,
        "  seccomp filters: {}",
        if kernel.seccomp_errno {
            "available"
        } else {
            "not available"
        }
    );
    s
}

fn render_plan(policy: &Policy, plan: &LandlockPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Policy: {}", policy.meta.name);
    if !policy.meta.extends.is_empty() {
        let _ = writeln!(s, "  extends: {}", policy.meta.extends.join(", "));
    }
    let _ = writeln!(
        s,
        "Filesystem (Landlock path rules; everything else denied):"
    );
    for r in &plan.path_rules {
        let path = concrete_text(&r.path);
        let state = match std::fs::metadata(&path) {
            Ok(_) => "",
            Err(_) => "  [missing: skipped at run time]",
        };
        let rules = r
            .rules
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let _ = writeln!(
            s,
            "  {path}  {}  [{rules}]{state}",
            r.rights.names().join("|")
        );
    }
    let _ = writeln!(s, "Network:");
    if plan.handled_net.is_empty() {
        let _ = writeln!(s, "  TCP: not restricted by Landlock");
    } else {
        let ports: Vec<String> = plan
            .port_rules
            .iter()
            .map(|p| format!("{} {:?}", p.port, p.rights))
            .collect();
        let _ = writeln!(
            s,
            "  TCP ports allowed: {}",
            if ports.is_empty() {
                "none".into()
            } else {
                ports.join(", ")
            }
        );
    }
    let _ = writeln!(
        s,
        "Scopes: signals {}, abstract unix sockets {}",
        if plan.scope_signals {
            "scoped"
        } else {
            "not scoped"
        },
        if plan.scope_abstract_unix {
            "scoped"
        } else {
            "not scoped"
        }
    );
    let _ = writeln!(s, "seccomp (EPERM):");
    match sandbox::seccomp::build(&plan.seccomp) {
        Ok(f) if f.summary.is_empty() => {
            let _ = writeln!(s, "  nothing");
        }
        Ok(f) => {
            for line in f.summary {
                let _ = writeln!(s, "  {line}");
            }
        }
        Err(e) => {
            let _ = writeln!(s, "  {e}");
        }
    }
    s
}

fn concrete_text(p: &nono_policy::path::PolicyPath) -> String {
    p.expand(&PathVars::new())
        .map(|b| b.display().to_string())
        .unwrap_or_else(|_| p.to_string())
}

/// The problems, one per line; those sharing an explanation under it, in first-seen order.
fn list(problems: &[Problem]) -> String {
    // Each group: the shared explanation (none: a problem alone) and its members.
    let mut groups: Vec<(Option<&Shared>, Vec<&Problem>)> = Vec::new();
    for p in problems {
        let same = p.shared.as_ref().and_then(|s| {
            groups
                .iter_mut()
                .find(|(first, _)| first.is_some_and(|f| f.why == s.why))
        });
        match same {
            Some((_, members)) => members.push(p),
            None => groups.push((p.shared.as_ref(), vec![p])),
        }
    }
    let mut lines = Vec::new();
    for (shared, members) in groups {
        match (shared, members.as_slice()) {
            (Some(first), [_, _, ..]) => {
                lines.push(format!("  - {} rules {}:", members.len(), first.why));
                lines.extend(
                    members
                        .iter()
                        .filter_map(|m| m.shared.as_ref())
                        .map(|s| format!("      {}", s.rule)),
                );
            }
            _ => lines.extend(members.iter().map(|m| format!("  - {}", m.text))),
        }
    }
    lines.join("\n")
}

/// Where `execvp` would find the command.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Executable(PathBuf),
    NotExecutable(PathBuf),
    Missing,
}

fn is_executable_file(p: &Path) -> Option<bool> {
    let m = std::fs::metadata(p).ok()?;
    Some(m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_command(cmd: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Found {
    let as_path = Path::new(cmd);
    if cmd.as_encoded_bytes().contains(&b'/') {
        let p = if as_path.is_absolute() {
            as_path.to_path_buf()
        } else {
            cwd.join(as_path)
        };
        return match is_executable_file(&p) {
            Some(true) => Found::Executable(p),
            Some(false) => Found::NotExecutable(p),
            None => Found::Missing,
        };
    }
    let default = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    let mut not_exec = None;
    for dir in std::env::split_paths(path_var.unwrap_or(default)) {
        let dir = if dir.as_os_str().is_empty() {
            cwd.to_path_buf()
        } else {
            dir
        };
        let p = dir.join(cmd);
        match is_executable_file(&p) {
            Some(true) => return Found::Executable(p),
            Some(false) if not_exec.is_none() => not_exec = Some(p),
            _ => {}
        }
    }
    not_exec.map_or(Found::Missing, Found::NotExecutable)
}

/// The environment the command gets: the caller's, filtered by the policy. Names that are not
/// UTF-8 cannot be matched against the policy and are dropped.
fn filtered_env(policy: &Policy) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| match k.to_str() {
            Some(name) => {
                let pass = policy.env.passes(name);
                if !pass {
                    tracing::debug!("environment: {name} not passed");
                }
                pass
            }
            None => false,
        })
        .collect()
}

fn exec_grant<'a>(added: &'a [AddedRule], bin: &Path) -> Option<&'a AddedRule> {
    added.iter().find(|r| {
        r.rights.contains(FsRights::EXECUTE)
            && (r.path == bin || (r.is_dir && bin.starts_with(&r.path)))
    })
}

fn spawn_failure(
    e: super::sandbox::spawn::SpawnError,
    cmd: &str,
    bin: &Path,
    policy: &Policy,
    sandbox: &Sandbox,
) -> Exit {
    let err = e.io();
    if e.step != Step::Exec {
        return refused(format!(
            "nono: sandbox set-up failed before starting {cmd}: {}: {err}",
            e.step.describe()
        ));
    }
    match e.errno {
        libc::ENOENT => Exit::new(
            exit::NOT_FOUND,
            format!(
                "nono: {cmd}: not found ({} exists, so its #! interpreter or dynamic loader is missing)",
                bin.display()
            ),
        ),
        libc::EACCES | libc::EPERM => {
            let canon = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
            let msg = match exec_grant(&sandbox.ruleset.added, &canon) {
                None => {
                    let grants: Vec<String> = sandbox
                        .ruleset
                        .added
                        .iter()
                        .filter(|r| r.rights.contains(FsRights::EXECUTE))
                        .map(|r| r.path.display().to_string())
                        .collect();
                    format!(
                        "nono: {cmd}: permission denied: no exec grant covers {} \
                         (profile `{}` grants exec on: {}).\n  hint: add an exec grant for it \
                         (e.g. `filesystem.exec: [\"{}\"]` in a profile)",
                        canon.display(),
                        policy.meta.name,
                        if grants.is_empty() { "nothing".into() } else { grants.join(", ") },
                        canon.parent().map_or("/".into(), |p| format!("{}/**", p.display()))
                    )
                }
                Some(r) => format!(
                    "nono: {cmd}: permission denied although {} grants exec on {} \
                     (via {}); its #! interpreter or dynamic loader may lack an exec grant",
                    r.rules
                        .first()
                        .map(|id| RuleRef::of(policy, *id).to_string())
                        .unwrap_or_else(|| "a rule".into()),
                    canon.display(),
                    r.path.display()
                ),
            };
            Exit::new(exit::NOT_EXECUTABLE, msg)
        }
        _ => Exit::new(
            exit::NOT_EXECUTABLE,
            format!("nono: {cmd}: cannot execute: {err}"),
        ),
    }
}

pub fn run(args: RunArgs) -> CmdResult {
    if args.block_net && !args.allow_domain.is_empty() {
        return Err(Exit::usage(
            "nono: --block-net and --allow-domain contradict each other; use one",
        ));
    }
    let allow_resolved =
        crate::egress::fallback::parse_cidrs(&args.allow_resolved).map_err(Exit::usage)?;
    let cwd = std::env::current_dir()
        .map_err(|e| refused(format!("nono: cannot read the current directory: {e}")))?;
    let workdir = match &args.workdir {
        None => cwd.clone(),
        Some(w) => std::fs::canonicalize(cwd.join(w))
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| refused(format!("nono: --workdir {}: not a directory", w.display())))?,
    };
    let flags = Flags {
        profile: args.profile.clone(),
        allow: args.allow.clone(),
        read: args.read.clone(),
        write: args.write.clone(),
        allow_domain: args.allow_domain.clone(),
    };
    // The audit writer opens its store while the sandbox is worked out (`PendingRun`).
    let prepared_audit = (!args.dry_run).then(|| crate::audit::session::prepare_run(&workdir));
    let mut policy = super::load::compile(&flags, &cwd).map_err(refused)?;
    // The layer is named "command line"; messages should name the profile the user chose.
    policy.meta.name = args.profile.clone();
    if args.block_net {
        policy.net = NetPolicy::default();
    }
    let vars = PathVars::from_env(|k| std::env::var(k).ok(), &workdir);
    let policy = concrete::expand(&policy, &vars)
        .map_err(|e| refused(format!("nono: cannot expand the policy's paths: {e}")))?;

    let pending_audit = prepared_audit.and_then(|p| crate::audit::session::keep_for(&policy, p));

    let kernel = KernelFeatures::probe();
    let klayer = KernelRun::start();
    let target = Target {
        landlock_abi: kernel.landlock_abi.min(Target::LATEST_ABI),
        kernel_layer: klayer.coverage.files && klayer.coverage.net,
    };
    // Domain rules: enforced in the kernel when its network programs are active (resolver +
    // DNS redirect + answered addresses in the maps), else by nono's local proxy when Landlock
    // can confine TCP to it (`crate::egress::mode`). The proxy's rules are not Landlock's.
    let proxy_mode =
        crate::egress::mode::proxy_applies(&policy, target.landlock_abi, klayer.coverage.net);
    let mut plan = if proxy_mode {
        plan_with_coverage(
            &crate::egress::fallback::plan_policy(&policy),
            target.landlock_abi,
            klayer.coverage,
        )
    } else {
        plan_with_coverage(&policy, target.landlock_abi, klayer.coverage)
    };
    // The path rules are built while the policy is checked against this machine below.
    let preparing = (!args.dry_run && kernel.landlock_abi > 0)
        .then(|| Sandbox::start_preparing(&plan, kernel.landlock_abi, policy.audit.level))
        .transpose()
        .map_err(|e| refused(format!("nono: cannot set up the sandbox: {e}")))?;
    let conflicts = concrete::conflicts(&policy);
    let mut problems = problems(&policy, &plan, &conflicts, &kernel, &klayer.coverage);
    // The proxy mode's network namespace: without it the proxy's port number would be open to
    // every address (`sandbox::netns`).
    let netns = if proxy_mode {
        // SAFETY: geteuid has no preconditions.
        match sandbox::netns::availability(unsafe { libc::geteuid() }) {
            Ok(()) => Some(sandbox::netns::Setup::for_caller(
                sandbox::netns::PROXY_PORT,
            )),
            Err(why) => {
                problems.push(Problem::new(format!(
                    "the domain rules (nono's proxy): the command needs a network namespace of \
                     its own, so that the proxy is all its TCP port rule reaches ({why}); \
                     without one the proxy's port number is open on every address"
                )));
                None
            }
        }
    } else {
        None
    };

    if args.dry_run {
        let compiled = nono_policy::artifact::CompiledPolicy::build(&policy, target);
        print!("{}", nono_policy::report::render_text(&compiled));
        println!();
        println!("On this machine (paths expanded for this run):");
        print!("{}", render_plan(&policy, &plan));
        if let Some(line) = crate::egress::mode::dry_run_line(
            &policy,
            target.landlock_abi,
            klayer.coverage.net,
            args.strict_domains,
        ) {
            println!("{line}");
        }
        println!();
        print!("{}", kernel_summary(&kernel, plan.abi));
        println!("  {}", klayer.describe());
        if kernel.landlock_abi == 0 {
            println!("Would refuse: no Landlock on this kernel.");
        } else if problems.is_empty() {
            println!("Would run: every rule is enforced on this kernel.");
        } else if problems.iter().any(|p| !p.waivable) {
            println!(
                "Would refuse (exit 125), even with --best-effort, since nono's own state would \
                 be reachable; not enforced here:\n{}",
                list(&problems)
            );
        } else {
            println!(
                "Would refuse (exit 125) unless --best-effort; not enforced here:\n{}",
                list(&problems)
            );
        }
        return Ok(0);
    }

    if kernel.landlock_abi == 0 {
        return Err(refused(format!(
            "nono: refusing to run: this kernel (Linux {}) has no Landlock, so nothing could be \
             confined.\n  Landlock needs Linux {} or later with CONFIG_SECURITY_LANDLOCK=y and \
             `landlock` in the lsm= boot parameter.",
            kernel.release,
            linux_release_for_abi(1)
        )));
    }
    if let Some(notice) = klayer.notice() {
        eprintln!("{notice}");
    }
    if policy.audit.level == nono_policy::ir::AuditLevel::All {
        if let Some(notice) = klayer.audit_all_notice() {
            eprintln!("{notice}");
        }
    }
    tracing::info!("{}", klayer.describe());
    let unsplit: Vec<&Conflict> = conflicts
        .iter()
        .filter(|c| !landlock_splits(&plan, c))
        .collect();
    let covered = kernel_layer::covered_rules(&plan, &unsplit, &klayer.coverage);
    let (mut ksandbox, unbound) = klayer
        .create(&policy, &covered)
        .map_err(|e| refused(format!("nono: cannot set up the kernel layer: {e}")))?;
    problems.extend(unbound.into_iter().map(Problem::new));
    let fixed: Vec<Problem> = problems
        .iter()
        .filter(|p| !p.waivable)
        .map(|p| Problem::new(p.text.clone()))
        .collect();
    if args.best_effort && !fixed.is_empty() {
        return Err(refused(format!(
            "nono: refusing to run, even with --best-effort: nono's own state (audit trail, \
             rollback store, configuration) would be reachable from the sandbox on this kernel \
             (Linux {}, Landlock ABI {}):\n{}\n  Grant narrower paths that leave it out, set \
             XDG_STATE_HOME and XDG_CONFIG_HOME outside the grants, or run as root with the \
             kernel layer.",
            kernel.release,
            kernel.landlock_abi,
            list(&fixed)
        )));
    }
    if !problems.is_empty() {
        if !args.best_effort {
            return Err(refused(format!(
                "nono: refusing to run: {} rule(s) cannot be enforced on this kernel \
                 (Linux {}, Landlock ABI {}):\n{}\n  Run with --best-effort to run anyway \
                 without them, or --dry-run to see the whole plan.",
                problems.len(),
                kernel.release,
                kernel.landlock_abi,
                list(&problems)
            )));
        }
        eprintln!(
            "nono: warning: --best-effort: running WITHOUT these protections (Linux {}, \
             Landlock ABI {}):\n{}",
            kernel.release,
            kernel.landlock_abi,
            list(&problems)
        );
    }

    let mut env = filtered_env(&policy);
    let cmd = &args.command[0];
    let shown = cmd.to_string_lossy().into_owned();
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let bin = match find_command(cmd, path_var, &cwd) {
        Found::Executable(p) => p,
        Found::NotExecutable(p) => {
            return Err(Exit::new(
                exit::NOT_EXECUTABLE,
                format!(
                    "nono: {shown}: permission denied ({} is not executable)",
                    p.display()
                ),
            ))
        }
        Found::Missing => {
            return Err(Exit::new(
                exit::NOT_FOUND,
                format!("nono: {shown}: command not found"),
            ))
        }
    };

    let kernel_target = match (klayer.layer(), &ksandbox) {
        (Some(layer), Some(k)) if klayer.coverage.net => Some(crate::egress::mode::KernelTarget {
            layer,
            sandbox_id: k.id(),
        }),
        _ => None,
    };
    let egress = crate::egress::mode::Egress::start(
        &policy,
        target.landlock_abi,
        kernel_target,
        &args.dns_upstream,
        &allow_resolved,
        args.strict_domains,
        netns.as_ref().map(|n| n.port()),
    )
    .map_err(|e| {
        refused(format!(
            "nono: cannot start egress for the domain rules: {e:#}"
        ))
    })?;
    if let Some(e) = &egress {
        e.apply(&mut plan, &mut env);
        eprintln!("{}", e.describe());
        // Servers the profile lets the command run listen in its own network namespace.
        let listen_ports: Vec<String> = plan
            .port_rules
            .iter()
            .filter(|r| {
                r.rights
                    .contains(&nono_policy::backend::landlock::NetRight::BindTcp)
            })
            .map(|r| r.port.to_string())
            .collect();
        if netns.is_some() && !listen_ports.is_empty() {
            eprintln!(
                "nono: egress: servers the command starts (TCP port {}) listen in its own \
                 network namespace: reachable from inside the sandbox only",
                listen_ports.join(", ")
            );
        }
    }
    let mut sandbox = match preparing {
        Some(p) => p.finish(&plan),
        None => Sandbox::prepare(&plan, kernel.landlock_abi, policy.audit.level),
    }
    .map_err(|e| refused(format!("nono: cannot set up the sandbox: {e}")))?;
    if let Some(k) = ksandbox.as_mut() {
        sandbox.cgroup = k.take_cgroup();
    }
    sandbox.netns = netns;
    for s in &sandbox.ruleset.skipped {
        let rules: Vec<String> = s
            .rules
            .iter()
            .map(|id| RuleRef::of(&policy, *id).to_string())
            .collect();
        tracing::info!(
            "grant skipped: {} {} ({})",
            s.path.display(),
            s.reason,
            rules.join("; ")
        );
    }
    let launch = Launch::new(&bin, &args.command, &env, &workdir)
        .map_err(|e| Exit::new(exit::NOT_EXECUTABLE, format!("nono: {shown}: {e}")))?;
    let rollback = crate::rollback::begin(crate::rollback::BeginArgs {
        mode: args.rollback,
        policy: &policy,
        plan: &plan,
        vars: &vars,
        command: &args.command,
        workdir: &workdir,
    })
    .map_err(refused)?;
    // The audit trail (src/audit): the session, the exec, the exit status. Never fatal.
    let mut audit = pending_audit.map(|p| {
        p.begin(crate::audit::session::RunInfo {
            argv: &args.command,
            cwd: &workdir,
            profile: &args.profile,
            policy: &policy,
            target,
            layers: audit_layers(&plan, &kernel, &klayer, egress.as_ref()),
            child_pid: &sandbox::CHILD_PID,
        })
    });
    sandbox.row_gate = audit.as_mut().and_then(|a| a.take_row_gate());
    // The proxy's decisions go to the audit trail too (it reports refusals on stderr itself).
    if let (Some(e), Some(a)) = (&egress, &audit) {
        e.attach_audit(crate::egress::DecisionSink {
            sender: a.sender(),
            rule_source: Box::new(crate::audit::session::rule_sources(&policy)),
            allows: policy.audit.level == nono_policy::ir::AuditLevel::All,
        });
    }
    // Kernel decisions go to `-v` and the audit trail from before the command starts.
    if let Some(k) = ksandbox.as_mut() {
        k.start_events(
            audit.as_ref().map(|a| a.sender()),
            crate::audit::session::rule_sources(&policy),
            egress.as_ref().and_then(|e| e.answered_names()),
        );
    }
    let started_ns = crate::audit::time::now_ns();
    let result = sandbox::run(&sandbox, &launch, |proxy_listener| {
        if let (Some(l), Some(e)) = (proxy_listener, &egress) {
            e.serve_listener(l);
        }
        if let Some(a) = &audit {
            a.executed(started_ns, &bin, &args.command);
        }
    });
    // The redirect goes before the sandbox's entries, so no late answer re-adds one.
    drop(egress);
    if let Some(k) = ksandbox {
        k.finish(&klayer);
    }
    let exec_errno = match &result {
        Err(RunError::Spawn(e)) if e.step == Step::Exec => Some(e.errno),
        _ => None,
    };
    let outcome = match result {
        Ok(ended) => Ok(ended.exit_code()),
        Err(RunError::Spawn(e)) => Err(spawn_failure(e, &shown, &bin, &policy, &sandbox)),
        Err(RunError::Setup(e)) => Err(refused(format!("nono: cannot start {shown}: {e}"))),
        Err(RunError::Supervise(e)) => {
            Err(Exit::failure(format!("nono: lost track of {shown}: {e}")))
        }
    };
    let changes = rollback.and_then(|r| r.finish(outcome.as_ref().ok().copied()));
    if let Some(audit) = audit {
        if let Some((id, counts)) = changes {
            audit.rollback(&id, serde_json::to_value(counts).unwrap_or_default());
        }
        let code = match &outcome {
            Ok(c) => *c,
            Err(e) => e.code,
        };
        audit.end_run(started_ns, &bin, &args.command, exec_errno, code);
    }
    outcome
}

/// The enforcing layers of the run, as the audit trail records them.
fn audit_layers(
    plan: &LandlockPlan,
    kernel: &KernelFeatures,
    klayer: &KernelRun,
    egress: Option<&crate::egress::mode::Egress>,
) -> serde_json::Value {
    let mut layers = vec![serde_json::json!({
        "name": "landlock",
        "abi": plan.abi,
        "features": abi_features(plan.abi),
    })];
    if kernel.seccomp_errno {
        layers.push(serde_json::json!({"name": "seccomp", "features": ["errno filters"]}));
    }
    let c = &klayer.coverage;
    if c.files || c.net {
        let parts: Vec<&str> = [(c.files, "bpf-lsm"), (c.net, "cgroup-sock")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        layers.push(serde_json::json!({"name": "ebpf", "features": parts}));
    }
    if let Some(e) = egress {
        layers.push(serde_json::json!({"name": "egress", "features": [e.name()]}));
    }
    serde_json::Value::Array(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_sharing_an_explanation_are_listed_under_it_once() {
        let shared = |text: &str, why: &str, rule: &str| Problem {
            text: text.into(),
            shared: Some(Shared {
                why: why.into(),
                rule: rule.into(),
            }),
            waivable: true,
        };
        let problems = [
            shared("r1 a: needs X", "need X", "r1 a"),
            Problem::new("seccomp is missing".into()),
            shared("r2 b: needs Y", "need Y", "r2 b"),
            shared("r3 c: needs X", "need X", "r3 c"),
        ];
        assert_eq!(
            list(&problems),
            "  - 2 rules need X:\n      r1 a\n      r3 c\n  - seccomp is missing\n  - r2 b: needs Y"
        );
        assert_eq!(list(&problems[..1]), "  - r1 a: needs X");
    }

    #[test]
    fn finds_commands_like_execvp() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = d.path().as_os_str();
        assert_eq!(
            find_command(OsStr::new("tool"), Some(path), Path::new("/")),
            Found::NotExecutable(bin.clone())
        );
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_command(OsStr::new("tool"), Some(path), Path::new("/")),
            Found::Executable(bin.clone())
        );
        assert_eq!(
            find_command(OsStr::new("./tool"), None, d.path()),
            Found::Executable(d.path().join("./tool"))
        );
        assert_eq!(
            find_command(OsStr::new("no-such-tool-nono"), Some(path), Path::new("/")),
            Found::Missing
        );
    }

    #[test]
    fn exec_grants_cover_subtrees_of_directories_only() {
        let r = |p: &str, dir| AddedRule {
            path: p.into(),
            rights: FsRights::EXECUTE,
            is_dir: dir,
            rules: vec![],
        };
        let added = vec![r("/usr/bin", true), r("/opt/tool", false)];
        assert!(exec_grant(&added, Path::new("/usr/bin/git")).is_some());
        assert!(exec_grant(&added, Path::new("/opt/tool")).is_some());
        assert!(exec_grant(&added, Path::new("/opt/tool2")).is_none());
        assert!(exec_grant(&added, Path::new("/usr/lib/x")).is_none());
    }
}
