//! The eBPF kernel layer in `nono run`: probe and load it part by part, plan Landlock around
//! what it covers, create the run's kernel sandbox (cgroup + map entries), print its events with
//! `-v`, and clean up.
//!
//! Privilege: the layer needs root (or CAP_BPF + CAP_SYS_ADMIN); without it, or without the
//! eBPF object built in, BTF or cgroup v2, the run continues on Landlock and seccomp alone and
//! says so in one line. Kernel assumptions: each part is probed on its own. BPF LSM (file denies,
//! including a deny inside a writable grant) needs `CONFIG_BPF_LSM` and `bpf` in `lsm=`; the
//! network part (cgroup `connect4/6`, `sendmsg4/6`, `bind4/6`: addresses, ports, UDP) needs only
//! cgroup v2 and BPF. A kernel that refuses LSM programs (the CI host) still gets the network
//! part, and file denies Landlock can't express still refuse the run (fail closed) unless
//! `--best-effort`. The exec report (a `sched_process_exec` BTF tracepoint, 5.5+) enforces
//! nothing: under `audit all` it records each exec inside the sandbox with its binary and argv,
//! and a run under `audit all` without it says that execs are recorded without them.
//!
//! What the kernel layer covers is decided per part ([`KernelCoverage`]): the Landlock plan is
//! computed with it, so a gap the active parts close is no longer a problem, and a gap only an
//! inactive part could close still is. A covered rule the layer then can't bind becomes a
//! problem again: rules bind by device and inode, and a deny whose path does not exist yet is
//! bound by a name watch (`crate::kernel::watch`), so what remains is what can't be watched
//! (a missing name of 64 bytes or more, no free watcher slot, ...).
//!
//! Lifecycle: the child is born in the sandbox cgroup (`clone3(CLONE_INTO_CGROUP)`), or writes
//! itself into it before it confines itself (`spawn`, step 3a); the sandbox's cgroup and map
//! entries are removed when the run ends, and a run killed with `kill -9` leaves a registry
//! entry the next start's load sweeps (see `crate::kernel::sandbox`).

use std::collections::{BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

use nono_policy::backend::landlock::{KernelCoverage, LandlockPlan};
use nono_policy::ir::{Policy, RuleId};

use super::concrete::{Conflict, RuleRef};
use crate::audit::event::{AuditEvent, ClockOffset, What};
use crate::audit::ingest::AuditSender;
use crate::egress::kernel_sink::AnsweredNames;
use crate::kernel::{self, EventPrinter, KernelLayer, SandboxOptions};

/// The kernel layer as this run found it.
pub struct KernelRun {
    layer: Option<KernelLayer>,
    /// Why the layer is off altogether (when `layer` is `None`).
    off: Option<String>,
    pub coverage: KernelCoverage,
}

/// Are `-v` messages (and so kernel events) shown?
pub fn verbose() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::level_filters::LevelFilter::INFO
}

/// The first clause of a load error: enough for one line, the rest is in `-v`.
fn short(reason: &str) -> &str {
    reason.split(": ").next().unwrap_or(reason)
}

impl KernelRun {
    /// Probe, then load (or reuse the pinned) programs. Never fails: what can't load is off.
    pub fn start() -> KernelRun {
        let off = |why: String| KernelRun {
            layer: None,
            off: Some(why),
            coverage: KernelCoverage::NONE,
        };
        if let Some(blocker) =
            KernelLayer::quick_blocker().or_else(|| KernelLayer::probe().blocker())
        {
            return off(blocker);
        }
        match KernelLayer::load() {
            Ok(layer) => {
                let coverage = KernelCoverage {
                    files: layer.lsm.is_active(),
                    exec: layer.lsm.is_active(),
                    unix_sockets: layer.lsm.is_active(),
                    listen: layer.lsm.is_active(),
                    net: layer.net.is_active(),
                    // With the network programs, `nono run` serves the domain rules itself:
                    // resolver, port-53 redirect, answered addresses in the maps
                    // (`crate::egress::kernel_sink`).
                    domains: layer.net.is_active(),
                    // Both layers hold a deny beneath a read-only grant: the split covers deny
                    // paths that don't exist yet by path, as the name watches do by inode.
                    keep_splits: true,
                };
                KernelRun {
                    layer: Some(layer),
                    off: None,
                    coverage,
                }
            }
            Err(e) => off(format!("{e:#}")),
        }
    }

    /// The one line every run prints when a part of the layer is off (`None` when all is on).
    pub fn notice(&self) -> Option<String> {
        if let Some(why) = &self.off {
            return Some(format!(
                "nono: kernel layer off: {}; running on Landlock and seccomp only",
                short(why)
            ));
        }
        let layer = self.layer.as_ref()?;
        match (&layer.lsm, &layer.net) {
            (kernel::Part::Active, kernel::Part::Active) => None,
            (kernel::Part::Unavailable(why), kernel::Part::Active) => Some(format!(
                "nono: kernel layer: network rules enforced by cgroup programs; BPF LSM off ({}): \
                 file rules rely on Landlock",
                short(why)
            )),
            (kernel::Part::Active, kernel::Part::Unavailable(why)) => Some(format!(
                "nono: kernel layer: file rules enforced by BPF LSM; cgroup socket programs off \
                 ({}): network rules rely on Landlock and seccomp",
                short(why)
            )),
            (kernel::Part::Unavailable(_), kernel::Part::Unavailable(_)) => None,
        }
    }

    /// The line a run under `audit all` prints when the exec report is off though the layer is
    /// on: execs inside the sandbox then reach the audit trail only as the exec check's file
    /// events (an inode, no binary path, no argv).
    pub fn audit_all_notice(&self) -> Option<String> {
        let layer = self.layer.as_ref()?;
        match &layer.exec {
            kernel::Part::Active => None,
            kernel::Part::Unavailable(why) => Some(format!(
                "nono: warning: kernel layer: exec report off ({}): execs inside the sandbox are \
                 recorded without binary path and argv",
                short(why)
            )),
        }
    }

    /// Which parts are active, for `-v` and `--dry-run`.
    pub fn describe(&self) -> String {
        match (&self.layer, &self.off) {
            (Some(layer), _) => layer.describe(),
            (None, Some(why)) => format!("kernel layer: off ({why})"),
            (None, None) => "kernel layer: off".into(),
        }
    }

    /// Create this run's kernel sandbox. Returns it (if the layer is on) and the problems it
    /// adds: rules the plan counted on the layer for that it could not bind.
    pub fn create(
        &self,
        policy: &Policy,
        covered: &BTreeSet<RuleId>,
    ) -> Result<(Option<KernelSandbox>, Vec<String>), String> {
        let Some(layer) = &self.layer else {
            return Ok((None, Vec::new()));
        };
        let sandbox = layer
            .create_sandbox(policy, &SandboxOptions::from_policy(policy))
            .map_err(|e| format!("creating the kernel-layer sandbox: {e:#}"))?;
        let mut problems = Vec::new();
        for u in &sandbox.unbound {
            tracing::info!("kernel layer: not bound: {u}");
            if let (Some(id), false) = (u.rule.map(RuleId), u.fails_closed) {
                if covered.contains(&id) {
                    problems.push(format!(
                        "{}: {}; Landlock can't enforce it either",
                        RuleRef::of(policy, id),
                        u.reason
                    ));
                }
            }
        }
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(sandbox.cgroup_dir())
            .map_err(|e| format!("opening {}: {e}", sandbox.cgroup_dir().display()))?;
        tracing::info!(
            "kernel layer: sandbox {} in cgroup {}",
            sandbox.id(),
            sandbox.cgroup_dir().display()
        );
        Ok((
            Some(KernelSandbox {
                sandbox,
                cgroup: Some(dir.into()),
                printer: None,
                rules: rule_names(policy),
                audit: None,
            }),
            problems,
        ))
    }

    /// The loaded layer (`None` when it is off).
    pub fn layer(&self) -> Option<&KernelLayer> {
        self.layer.as_ref()
    }
}

/// `r3` -> "r3 `deny ~/.ssh/**` (profile:12:1)", for event lines.
fn rule_names(policy: &Policy) -> HashMap<u32, String> {
    policy
        .rule_summaries()
        .into_iter()
        .map(|(id, _)| (id.0, RuleRef::of(policy, id).to_string()))
        .collect()
}

/// The rules a plan (and the conflicts on this machine Landlock can't split) count on the
/// kernel layer for.
pub fn covered_rules(
    plan: &LandlockPlan,
    conflicts: &[&Conflict],
    coverage: &KernelCoverage,
) -> BTreeSet<RuleId> {
    let mut ids: BTreeSet<RuleId> = plan
        .covered_by_kernel_layer
        .iter()
        .filter_map(|g| g.rule)
        .collect();
    if coverage.files {
        ids.extend(conflicts.iter().map(|c| c.deny.id));
    }
    ids
}

/// One run's kernel sandbox while the command runs.
pub struct KernelSandbox {
    sandbox: kernel::Sandbox,
    cgroup: Option<OwnedFd>,
    printer: Option<EventPrinter>,
    rules: HashMap<u32, String>,
    audit: Option<AuditSender>,
}

impl KernelSandbox {
    /// The sandbox id its map entries are keyed by.
    pub fn id(&self) -> u32 {
        self.sandbox.id()
    }

    /// The directory of the sandbox cgroup the child enters (taken once).
    pub fn take_cgroup(&mut self) -> Option<OwnedFd> {
        self.cgroup.take()
    }

    /// Read the sandbox's kernel decisions as they arrive: with `-v` print them; with an audit
    /// session, store them (rule id and source; for network events, the name nono's resolver
    /// answered for the address, if any). Storing waits for room in the auditor's channel (the
    /// ring buffer holds events meanwhile; the kernel counts what it can't hold).
    pub fn start_events(
        &mut self,
        audit: Option<AuditSender>,
        rule_source: impl Fn(u32) -> Option<String> + Send + 'static,
        names: Option<AnsweredNames>,
    ) {
        let verbose = verbose();
        if !verbose && audit.is_none() {
            return;
        }
        let stream = match self.sandbox.events() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("kernel layer: can't read events: {e:#}");
                return;
            }
        };
        self.audit = audit.clone();
        let rules = self.rules.clone();
        // A file deny names the object its rule is bound to: the file itself, or the denied
        // directory it lies below. nono bound those objects, so it knows their paths.
        let bound: HashMap<(u32, u64), std::path::PathBuf> = self
            .sandbox
            .fs_rules
            .iter()
            .map(|r| ((r.dev, r.ino), r.path.clone()))
            .collect();
        let clock = ClockOffset::now();
        let printer = EventPrinter::spawn(stream, move |events| {
            let mut stored = Vec::with_capacity(if audit.is_some() { events.len() } else { 0 });
            for event in &events {
                let name = match (&event.object, &names) {
                    (kernel::events::EventObject::Net { addr, .. }, Some(n)) => n.get(*addr),
                    _ => None,
                };
                // A file event's path: the one the file was opened by or the path hook acted
                // on, when the kernel recorded it whole (under `audit all`); else, for a deny, the path
                // nono bound the matched rule's object by (the file itself, or the denied
                // directory it lies below); else what the kernel's walk got (cut).
                let path: Option<(&[u8], bool)> = match &event.object {
                    kernel::events::EventObject::File {
                        dev,
                        ino,
                        path: opened,
                        path_cut,
                        ..
                    } => {
                        use std::os::unix::ffi::OsStrExt;
                        let protected = bound
                            .get(&(*dev, *ino))
                            .filter(|_| event.denied)
                            .map(|p| p.as_os_str().as_bytes());
                        match (opened.as_deref(), protected) {
                            (Some(p), _) if !path_cut => Some((p, false)),
                            (_, Some(b)) => Some((b, false)),
                            (Some(p), None) => Some((p, true)),
                            (None, None) => None,
                        }
                    }
                    // A denied exec names what ran in its record; `path=` is the object its
                    // rule bound, as for a file deny (the -v line only: the store has the
                    // rule's source line).
                    kernel::events::EventObject::Exec { dev, ino, .. } if event.denied => {
                        use std::os::unix::ffi::OsStrExt;
                        bound
                            .get(&(*dev, *ino))
                            .map(|p| (p.as_os_str().as_bytes(), false))
                    }
                    _ => None,
                };
                if verbose {
                    let rule = rules
                        .get(&event.rule_id)
                        .map(|r| format!(" [{r}]"))
                        .unwrap_or_default();
                    let asked = name
                        .as_ref()
                        .map(|n| format!(" name={}", n.escape_debug()))
                        .unwrap_or_default();
                    let path = path
                        .map(|(p, cut)| {
                            format!(
                                " path={}{}",
                                crate::cli::escape_bytes_for_terminal(p),
                                if cut { " (path cut)" } else { "" }
                            )
                        })
                        .unwrap_or_default();
                    eprintln!("nono: {event}{path}{asked}{rule}");
                }
                if audit.is_some() {
                    let mut ev = AuditEvent::from_kernel(event, clock, &rule_source);
                    match &mut ev.what {
                        What::Net { name: n, .. } => *n = name,
                        What::File {
                            path: stored_path,
                            path_truncated,
                            ..
                        } => {
                            if let Some((p, cut)) = path {
                                *stored_path = p.to_vec();
                                *path_truncated = cut;
                            }
                        }
                        _ => {}
                    }
                    stored.push(ev);
                }
            }
            // One message per drain, and the reader waits for room: while the auditor catches
            // up, the sandbox's ring holds what arrives, and the kernel counts (per sandbox)
            // what it can't. Sent one at a time without waiting, a burst overflowed the channel.
            let tx = audit.clone();
            async move {
                if let Some(tx) = tx {
                    if tx.send(stored).await.is_err() {
                        tracing::warn!("audit: the auditor stopped; kernel events not stored");
                    }
                }
            }
        });
        match printer {
            Ok(p) => self.printer = Some(p),
            Err(e) => tracing::warn!("kernel layer: can't read events: {e:#}"),
        }
    }

    /// After the command ended: print what is left, the drop counter, and remove the sandbox.
    pub fn finish(mut self, _run: &KernelRun) {
        if let Some(p) = self.printer.take() {
            p.stop();
            // The sandbox's own event slot: exactly this session's losses.
            match self.sandbox.dropped_events() {
                Ok(dropped) => {
                    if verbose() {
                        eprintln!("nono: kernel: dropped events: {dropped}");
                    }
                    if let Some(tx) = &self.audit {
                        tx.set_kernel_drops(dropped);
                    }
                }
                Err(e) => tracing::warn!("kernel layer: {e:#}"),
            }
        }
        if let Err(e) = self.sandbox.cleanup() {
            eprintln!(
                "nono: warning: removing kernel sandbox {}: {e:#} (the next run retries)",
                self.sandbox.id()
            );
        }
    }
}
