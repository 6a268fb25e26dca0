//! One run's sandbox in the kernel layer: its cgroup, its map entries, and their cleanup.
//!
//! Identity: the sandbox's cgroup id maps to its sandbox id in `NONO_SANDBOXES`; every program
//! decides by the current task's cgroup id. Tasks outside every sandbox leave before that
//! lookup, on the registered-cgroup filter (`nono_common::CGROUP_FILTER_WORDS`): the cgroup's
//! bit is set before the cgroup is registered, and the filter is recomputed from the map (with
//! the active count) after every change, under the load lock. The agent stays in its cgroup:
//! the sandbox carries a deny of every write to the cgroup2 filesystem
//! ([`nono_common::CGROUPFS_RULE`]), so it can neither write another `cgroup.procs` nor create
//! child cgroups; the network programs deny a task in an unregistered cgroup below the sandbox
//! (fail closed).
//!
//! File rules bind by (device, inode), resolved when the sandbox is created; see
//! `nono-ebpf/src/fs.rs` for what that covers (later files, renames inside, hard links, bind
//! mounts) and how renames and links out of a denied subtree are refused. A deny whose path does
//! not exist yet is bound by a name watch instead (see [`super::watch`]): the object is bound the
//! moment it appears, whoever creates it. What can't be watched either (a name too long, no
//! free watcher slot) is listed in [`Sandbox::unbound`].
//! Known limits of inode binding: btrfs subvolumes and overlayfs report a `st_dev` that can
//! differ from the superblock's device the programs see.
//!
//! Events: each live sandbox has an event slot of its own, `nono_common::event_slot(id)` (the
//! low bits of its id), which selects the ring buffer and the drop counter the programs write
//! for it. The registry file below is the claim: a new sandbox gets an id whose slot no
//! registry file holds, under the load lock, and its slot's drop counter is zeroed before its
//! cgroup is registered. A slot whose owner died is reclaimed with the rest of its registration.
//! When all `nono_common::EVENT_SLOTS` slots are held by running sandboxes, creating another one
//! fails (the run is refused, naming the limit): sharing a ring would hand one session's events
//! to another's reader.
//!
//! Cleanup: a registry file `/run/nono/sandboxes/<id>` names the owner (pid and start time) and
//! cgroup. Dropping a [`Sandbox`] kills what is left in its cgroup, removes the cgroup, its map
//! entries and the registry file. The next [`super::KernelLayer::load`] does the same for every
//! sandbox whose owner is gone (`kill -9` of nono), and removes map entries of sandboxes that
//! have no live registry file.
//!
//! Privileges: root (cgroup creation, map writes, program attachment).

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nono_common::{
    access, event_slot, FsDeny, InodeKey, SandboxInfo, CGROUPFS_RULE, EVENT_SLOTS,
    SANDBOX_AUDIT_ALL, SANDBOX_EXEC_ALLOWLIST, SANDBOX_HAS_WATCHES,
};
use nono_policy::ir::{Effect, Policy};
use nono_policy::path::PathVars;

use super::cgroup;
use super::events::EventStream;
use super::maps::Maps;
use super::net::NetEntries;
use super::watch::{self, Resolved, WatchPlan};
use super::{pinned_sock_program, KernelLayer, RUN_DIR, SOCK_PROGRAMS};

#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Report allowed accesses too (the profile's `audit all`).
    pub audit_all: bool,
}

impl SandboxOptions {
    /// The options a policy asks for.
    pub fn from_policy(policy: &Policy) -> SandboxOptions {
        SandboxOptions {
            audit_all: policy.audit.level == nono_policy::ir::AuditLevel::All,
        }
    }
}

/// A rule the kernel layer could not bind, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbound {
    /// The policy rule (`RuleId.0`); `None` for a whole class of rules.
    pub rule: Option<u32>,
    pub reason: String,
    /// Leaving the rule unbound allows less, never more (an allowlist entry that can't be
    /// bound allows nothing): no reason to refuse the run.
    pub fails_closed: bool,
}

impl std::fmt::Display for Unbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rule {
            Some(id) => write!(f, "r{id}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// A file rule as bound in the kernel.
#[derive(Debug, Clone)]
pub struct BoundFsRule {
    pub rule_id: u32,
    pub path: PathBuf,
    /// Kernel `dev_t` encoding.
    pub dev: u32,
    pub ino: u64,
    pub access: u32,
}

pub struct Sandbox {
    id: u32,
    cgroup_dir: PathBuf,
    cgroup_id: u64,
    maps: Maps,
    registry: PathBuf,
    pub fs_rules: Vec<BoundFsRule>,
    /// Rules the kernel layer could not bind, with the reason (for `-v` and `--dry-run`).
    pub unbound: Vec<Unbound>,
    pub net_enforced: bool,
    /// The sandbox holds name watches (a watcher slot and entries in the watch maps).
    has_watches: bool,
    cleaned: bool,
}

/// The kernel's `dev_t` (`MAJOR << 20 | MINOR`) of a userspace `st_dev`.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | (minor & 0xfffff)
}

fn registry_dir() -> PathBuf {
    Path::new(RUN_DIR).join("sandboxes")
}

/// Field 22 of /proc/PID/stat, so a recycled pid is not taken for the owner.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

struct Registration {
    owner: u32,
    start: u64,
    cgroup: PathBuf,
}

fn read_registration(path: &Path) -> Option<Registration> {
    let text = fs::read_to_string(path).ok()?;
    let mut owner = None;
    let mut start = None;
    let mut cgroup = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("owner", v)) => owner = v.parse().ok(),
            Some(("start", v)) => start = v.parse().ok(),
            Some(("cgroup", v)) => cgroup = Some(PathBuf::from(v)),
            _ => {}
        }
    }
    Some(Registration {
        owner: owner?,
        start: start?,
        cgroup: cgroup?,
    })
}

fn owner_alive(r: &Registration) -> bool {
    process_start_time(r.owner) == Some(r.start)
}

fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    // SAFETY: getrandom(2) into a buffer of the given length.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 4 {
        u32::from_ne_bytes(buf)
    } else {
        // No entropy source: pid and time still make a collision unlikely, and it is checked.
        std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0))
    }
}

/// The event slots the registry files claim: live sandboxes, and dead ones not swept yet (whose
/// processes may still be running and writing events).
pub(crate) fn claimed_slots() -> HashSet<u32> {
    fs::read_dir(registry_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(event_slot)
        .collect()
}

/// A new sandbox id: non-zero, not in `in_use`, and in the lowest event slot not `claimed`.
/// `None` when every slot is claimed. The bits above the slot come from `random`.
fn pick_id(
    claimed: &HashSet<u32>,
    in_use: &HashSet<u32>,
    mut random: impl FnMut() -> u32,
) -> Option<u32> {
    let slot = (0..EVENT_SLOTS).find(|s| !claimed.contains(s))?;
    loop {
        let candidate = (random() & !(EVENT_SLOTS - 1)) | slot;
        if candidate != 0 && !in_use.contains(&candidate) {
            return Some(candidate);
        }
    }
}

/// Remove every map entry of the sandboxes in `ids`.
fn remove_entries(maps: &mut Maps, ids: &HashSet<u32>) {
    let stale_cgroups: Vec<u64> = maps
        .sandboxes
        .iter()
        .filter_map(|r| r.ok())
        .filter(|(_, info)| ids.contains(&info.sandbox_id))
        .map(|(cg, _)| cg)
        .collect();
    for cg in stale_cgroups {
        let _ = maps.sandboxes.remove(&cg);
    }
    let fs_keys: Vec<InodeKey> = maps
        .fs_deny
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| ids.contains(&k.sandbox_id))
        .collect();
    for k in fs_keys {
        let _ = maps.fs_deny.remove(&k);
    }
    let v4: Vec<_> = maps
        .net_v4
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| ids.contains(&k.data().sandbox_id))
        .collect();
    for k in v4 {
        let _ = maps.net_v4.remove(&k);
    }
    let v6: Vec<_> = maps
        .net_v6
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| ids.contains(&k.data().sandbox_id))
        .collect();
    for k in v6 {
        let _ = maps.net_v6.remove(&k);
    }
    // Watches go after the slot: the programs stop looking before the entries vanish.
    watch::release_slots(maps, ids);
    let watches: Vec<_> = maps
        .fs_watch
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| ids.contains(&k.sandbox_id))
        .collect();
    for k in watches {
        let _ = maps.fs_watch.remove(&k);
    }
    let templates: Vec<_> = maps
        .fs_watch_next
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| ids.contains(&k.sandbox_id))
        .collect();
    for k in templates {
        let _ = maps.fs_watch_next.remove(&k);
    }
    remove_cache_entries(maps, ids);
}

/// Forget the directory verdicts cached for the sandboxes in `ids` (at removal, and for a new
/// sandbox before its rules go in: an id may be reused, and its old "clean" verdicts knew
/// nothing of the new rules).
fn remove_cache_entries(maps: &mut Maps, ids: &HashSet<u32>) {
    let cached: Vec<InodeKey> = maps
        .fs_cache
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| ids.contains(&k.sandbox_id))
        .collect();
    for k in cached {
        let _ = maps.fs_cache.remove(&k);
    }
}

/// Every sandbox id present in any map.
fn ids_in_maps(maps: &Maps) -> HashSet<u32> {
    let mut ids: HashSet<u32> = maps
        .sandboxes
        .iter()
        .filter_map(|r| r.ok())
        .map(|(_, i)| i.sandbox_id)
        .collect();
    ids.extend(
        maps.fs_deny
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| k.sandbox_id),
    );
    ids.extend(
        maps.net_v4
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| k.data().sandbox_id),
    );
    ids.extend(
        maps.net_v6
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| k.data().sandbox_id),
    );
    ids.extend(
        maps.fs_watch
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| k.sandbox_id),
    );
    ids.extend(
        maps.fs_watch_next
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| k.sandbox_id),
    );
    ids.extend(
        (0..nono_common::MAX_WATCHERS)
            .filter_map(|slot| maps.watchers.get(&slot, 0).ok())
            .filter(|&id| id != 0),
    );
    ids
}

/// Ids of sandboxes with a registry file (live, or being created under the load lock).
fn registered_ids() -> HashSet<u32> {
    fs::read_dir(registry_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// Clean up after runs whose nono is gone. Called with the load lock held.
pub(crate) fn sweep_stale(maps: &mut Maps) {
    let mut live = HashSet::new();
    if let Ok(entries) = fs::read_dir(registry_dir()) {
        for entry in entries.flatten() {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            match read_registration(&entry.path()) {
                Some(r) if owner_alive(&r) => {
                    live.insert(id);
                }
                other => {
                    if let Some(r) = other {
                        if let Err(e) = cgroup::kill_and_remove(&r.cgroup) {
                            tracing::warn!("removing the cgroup of stale sandbox {id}: {e:#}");
                            continue; // keep the record so a later start retries
                        }
                    }
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    let stale: HashSet<u32> = ids_in_maps(maps).difference(&live).copied().collect();
    // Stale sandboxes gone: the whole filter is rewritten (their cgroup ids are not at hand).
    // Otherwise the count is checked, and the filter repaired only if a cleanup that could not
    // take the lock left the count off.
    let published = if stale.is_empty() {
        maps.publish_count()
    } else {
        tracing::info!(
            "kernel layer: removing entries of {} stale sandbox(es)",
            stale.len()
        );
        remove_entries(maps, &stale);
        maps.publish_active()
    };
    if let Err(e) = published {
        tracing::warn!("kernel layer: {e:#}");
    }
}

/// The marker that tells the programs this filesystem carries rules of the sandbox.
fn insert_marker(maps: &mut Maps, sandbox_id: u32, dev: u32) -> Result<()> {
    maps.fs_deny
        .insert(
            InodeKey {
                sandbox_id,
                dev,
                ino: 0,
            },
            FsDeny {
                rule_id: 0,
                access: 0,
            },
            0,
        )
        .context("inserting a device marker")
}

/// How many entries of a denied directory are inspected for hard-linked files. Credential
/// directories are small; a huge denied tree is bound by its directory only, and that is
/// reported in the log.
const MAX_SCANNED_ENTRIES: usize = 10_000;

/// Regular files below `dir` (same filesystem, symlinks not followed) with more than one link.
fn multiply_linked_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(root) = fs::symlink_metadata(dir) else {
        return out;
    };
    if !root.is_dir() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_SCANNED_ENTRIES {
                tracing::warn!(
                    "kernel layer: {} has over {MAX_SCANNED_ENTRIES} entries; hard links made into it before the run are not all bound",
                    dir.display()
                );
                return out;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.dev() != root.dev() {
                continue;
            }
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() && meta.nlink() > 1 {
                out.push(e.path());
            }
        }
    }
    out
}

impl Sandbox {
    pub(crate) fn create(
        layer: &KernelLayer,
        policy: &Policy,
        options: &SandboxOptions,
    ) -> Result<Sandbox> {
        let mut maps = layer.maps().reopen()?;
        fs::create_dir_all(registry_dir()).context("creating the sandbox registry")?;
        let in_use = ids_in_maps(&maps);
        // The registry file written below claims the slot; the load lock is held.
        let id = match pick_id(&claimed_slots(), &in_use, random_u32) {
            Some(id) => id,
            None => {
                // A run may have died since this nono's load swept: reclaim its slot.
                sweep_stale(&mut maps);
                let in_use = ids_in_maps(&maps);
                pick_id(&claimed_slots(), &in_use, random_u32).with_context(|| {
                    format!(
                        "all {EVENT_SLOTS} event slots of the kernel layer are held by running \
                         sandboxes (see {}): at most {EVENT_SLOTS} kernel-layer sandboxes run at \
                         once, each with an event stream of its own; wait for one to end",
                        registry_dir().display()
                    )
                })?
            }
        };
        let own = cgroup::own_cgroup(layer.cgroup2_mount())?;
        let cgroup_dir = own.join(format!("nono-{id}"));
        let registry = registry_dir().join(id.to_string());
        let owner = std::process::id();
        let start = process_start_time(owner).context("reading nono's own start time")?;
        // The record comes first: from here on, a crash leaves something the sweep can find.
        fs::write(
            &registry,
            format!(
                "owner={owner}\nstart={start}\ncgroup={}\n",
                cgroup_dir.display()
            ),
        )
        .with_context(|| format!("writing {}", registry.display()))?;
        let mut sandbox = Sandbox {
            id,
            cgroup_dir: cgroup_dir.clone(),
            cgroup_id: 0,
            maps,
            registry,
            fs_rules: Vec::new(),
            unbound: Vec::new(),
            net_enforced: false,
            has_watches: false,
            cleaned: false,
        };
        fs::create_dir(&cgroup_dir).with_context(|| {
            format!(
                "creating the sandbox cgroup {} (nono's cgroup must be writable)",
                cgroup_dir.display()
            )
        })?;
        sandbox.cgroup_id = cgroup::cgroup_id(&cgroup_dir)?;
        // The count is this session's: what the slot's previous owner dropped is not.
        sandbox.maps.reset_dropped(event_slot(id))?;
        // The count goes up before any rule is written: the name-watch programs act only while
        // it is non-zero, and a watch must act from the moment it is written. A count too high
        // costs time, never enforcement; the sweep and the cleanup recount.
        let registered = sandbox.maps.sandboxes.keys().count() as u32;
        sandbox.maps.set_active(registered + 1)?;
        remove_cache_entries(&mut sandbox.maps, &HashSet::from([id]));

        if layer.lsm.is_active() {
            let binding = bind_fs_rules(&mut sandbox.maps, id, policy, layer.cgroup2_mount())?;
            sandbox.maps.set_rule_devices(id, &binding.devices)?;
            sandbox.fs_rules = binding.bound;
            sandbox.unbound = binding.unbound;
            sandbox.has_watches = binding.has_watches;
        } else if policy.fs.iter().any(|r| r.effect == Effect::Deny)
            || !policy.exec.deny.is_empty()
            || policy.exec.allow_only.is_some()
        {
            sandbox.unbound.push(Unbound {
                rule: None,
                reason: "file and exec denies: BPF LSM is not available on this kernel".into(),
                fails_closed: false,
            });
        }
        if layer.net.is_active() && NetEntries::enforced(policy) {
            let entries = NetEntries::from_policy(policy)?;
            let (v4, v6) = entries.keyed(id);
            for (key, value) in v4 {
                sandbox
                    .maps
                    .net_v4
                    .insert(&key, value, 0)
                    .context("inserting an IPv4 network rule")?;
            }
            for (key, value) in v6 {
                sandbox
                    .maps
                    .net_v6
                    .insert(&key, value, 0)
                    .context("inserting an IPv6 network rule")?;
            }
            for (name, kernel_type) in SOCK_PROGRAMS {
                let program = pinned_sock_program(layer.pin_dir(), name)?;
                cgroup::attach_program(&cgroup_dir, &program, *kernel_type)
                    .with_context(|| format!("attaching cgroup/{name} to the sandbox"))?;
            }
            // Domain rules have no entries here: `nono run` starts the resolver that adds the
            // addresses it answers (`crate::egress::kernel_sink`); until then they reach nothing.
            sandbox.net_enforced = true;
        }
        // Registering the cgroup is the last step: enforcement starts with every rule in place.
        // The count went up first and the filter bit goes up now, so the programs never skip a
        // registered cgroup.
        sandbox.maps.admit_to_cgroup_filter(sandbox.cgroup_id)?;
        let mut flags = Sandbox::flags(policy, options, layer.lsm.is_active());
        if sandbox.has_watches {
            flags |= SANDBOX_HAS_WATCHES;
        }
        sandbox
            .maps
            .sandboxes
            .insert(
                sandbox.cgroup_id,
                SandboxInfo {
                    sandbox_id: id,
                    flags,
                },
                0,
            )
            .context("registering the sandbox cgroup")?;
        sandbox.maps.publish_count()?;
        Ok(sandbox)
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The sandbox flags a policy asks for, given which parts are active.
    fn flags(policy: &Policy, options: &SandboxOptions, lsm: bool) -> u32 {
        let mut flags = 0;
        if options.audit_all {
            flags |= SANDBOX_AUDIT_ALL;
        }
        if lsm && policy.exec.allow_only.is_some() {
            flags |= SANDBOX_EXEC_ALLOWLIST;
        }
        flags
    }

    pub fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }

    pub fn cgroup_dir(&self) -> &Path {
        &self.cgroup_dir
    }

    /// The event slot this sandbox holds: its ring buffer and drop counter.
    pub fn event_slot(&self) -> u32 {
        event_slot(self.id)
    }

    /// This sandbox's kernel decisions, from its own ring buffer.
    pub fn events(&self) -> Result<EventStream> {
        Ok(EventStream::new(
            self.maps.event_ring(self.event_slot())?,
            self.id,
        ))
    }

    /// Events the programs could not write to this sandbox's ring buffer (it was full), all
    /// CPUs, since the sandbox was created.
    pub fn dropped_events(&self) -> Result<u64> {
        self.maps.dropped_events(self.event_slot())
    }

    /// Kill what is left in the cgroup, remove it and every entry of this sandbox.
    pub fn cleanup(&mut self) -> Result<()> {
        if self.cleaned {
            return Ok(());
        }
        let removed = cgroup::kill_and_remove(&self.cgroup_dir);
        let lock = super::LoadLock::try_take();
        remove_entries(&mut self.maps, &HashSet::from([self.id]));
        if lock.is_ok() {
            // Without the lock a concurrent registration could be miscounted; leave the count
            // high (costs time, never enforcement) and let the next start recount.
            let _ = self.maps.publish_removal(self.cgroup_id);
        }
        drop(lock);
        if removed.is_ok() {
            let _ = fs::remove_file(&self.registry);
        }
        self.cleaned = true;
        removed
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            tracing::warn!("kernel layer: cleaning up sandbox {}: {e:#}", self.id);
        }
    }
}

/// What binding a sandbox's file rules left in the maps.
struct FsBinding {
    /// The devices that got a marker.
    devices: HashSet<u32>,
    bound: Vec<BoundFsRule>,
    /// Rules that could not be bound, with the reason.
    unbound: Vec<Unbound>,
    /// A name-watch slot was claimed and watches written.
    has_watches: bool,
}

/// Bind the file rules of sandbox `sandbox_id`.
fn bind_fs_rules(
    maps: &mut Maps,
    sandbox_id: u32,
    policy: &Policy,
    cgroup2: &Path,
) -> Result<FsBinding> {
    let vars = PathVars::new();
    let mut has_watches = false;
    let mut devices = HashSet::new();
    let mut watch_devices = Vec::new();
    let mut bound = Vec::new();
    let mut bind = |maps: &mut Maps, rule_id: u32, path: &Path, access: u32| -> Result<bool> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => bail!(
                "rule r{rule_id}: can't resolve {} for the kernel layer: {e}",
                path.display()
            ),
        };
        let dev = kernel_dev(meta.dev());
        let key = InodeKey {
            sandbox_id,
            dev,
            ino: meta.ino(),
        };
        // Two rules on one object: deny the union, report the first rule.
        let value = match maps.fs_deny.get(&key, 0) {
            Ok(existing) => FsDeny {
                rule_id: existing.rule_id,
                access: existing.access | access,
            },
            Err(_) => FsDeny { rule_id, access },
        };
        maps.fs_deny.insert(key, value, 0).with_context(|| {
            format!("rule r{rule_id}: inserting the deny of {}", path.display())
        })?;
        if devices.insert(dev) {
            insert_marker(maps, sandbox_id, dev)?;
        }
        bound.push(BoundFsRule {
            rule_id,
            path: path.to_path_buf(),
            dev,
            ino: meta.ino(),
            access,
        });
        Ok(true)
    };
    let mut unbound = Vec::new();
    let mut plan = WatchPlan::default();
    // The directories that keep their names start at these, each with its rule.
    let mut kept_names: Vec<(u32, PathBuf)> = Vec::new();
    // File denies, and `exec deny` entries, which only `bprm_check_security` reads (an exec
    // deny takes away running the binary, not reading it).
    let denies = policy
        .fs
        .iter()
        .filter(|r| r.effect == Effect::Deny)
        .map(|r| (r.id, &r.path, u32::from(r.access.bits())))
        .chain(
            policy
                .exec
                .deny
                .iter()
                .map(|r| (r.id, &r.path, access::EXEC_DENY)),
        );
    for (id, rule_path, access) in denies {
        let path = rule_path
            .expand(&vars)
            .map_err(|e| anyhow::anyhow!("rule {}: {e} (expand the policy first)", id))?;
        let not_watched = |why: String| Unbound {
            rule: Some(id.0),
            reason: format!(
                "{} does not exist, and the kernel layer can't watch for it: {why}",
                path.display()
            ),
            fails_closed: false,
        };
        match watch::resolve(&path) {
            Ok(Resolved::Exists(canonical)) => {
                if !bind(maps, id.0, &path, access)? {
                    unbound.push(not_watched("it vanished while nono bound it".into()));
                    continue;
                }
                // A replacement under the same name (saved by rename) is bound too.
                plan.add_existing(id.0, &canonical, access);
                if let Some(parent) = canonical.parent() {
                    kept_names.push((id.0, parent.to_path_buf()));
                }
                // A hard link made before the sandbox started, outside the denied
                // directory, would reach a file without passing the directory: bind such
                // files by their own inode.
                for linked in multiply_linked_files(&path) {
                    bind(maps, id.0, &linked, access)?;
                }
            }
            Ok(Resolved::Missing { dir, names }) => {
                match plan.add_missing(id.0, &path, &dir, &names, access) {
                    Ok(()) => kept_names.push((id.0, dir.clone())),
                    Err(why) => unbound.push(not_watched(why)),
                }
            }
            Err(why) => unbound.push(Unbound {
                rule: Some(id.0),
                reason: format!(
                    "can't resolve {} for the kernel layer: {why}",
                    path.display()
                ),
                fails_closed: false,
            }),
        }
    }
    if !plan.is_empty() {
        match watch::claim_slot(maps, sandbox_id, &registered_ids())? {
            None => {
                for (rule, path) in plan.missing_rules() {
                    unbound.push(Unbound {
                            rule: Some(rule),
                            reason: format!(
                                "{} does not exist, and all {} name-watch slots of the kernel layer are taken by other sandboxes",
                                path.display(),
                                nono_common::MAX_WATCHERS
                            ),
                            fails_closed: false,
                        });
                }
            }
            Some(_) => {
                has_watches = true;
                // The programs bind new objects only on devices the sandbox has a marker
                // for (the walk skips the others).
                // (Written before any watch exists, so no program has poisoned one yet.)
                for dev in plan.devices() {
                    insert_marker(maps, sandbox_id, dev)?;
                    watch_devices.push(dev);
                }
                plan.write(maps, sandbox_id)?;
                let (appeared, failed) = plan.settle(maps, sandbox_id);
                for (rule, path, access) in appeared {
                    bind(maps, rule, &path, access)?;
                }
                for (rule, why) in failed {
                    unbound.push(Unbound {
                        rule: Some(rule),
                        reason: format!("the kernel layer can't watch for it: {why}"),
                        fails_closed: false,
                    });
                }
            }
        }
    }
    // Allow entries the kernel checks require on the object or above it: the `exec only`
    // allowlist, and the path unix sockets the sandbox may connect to (`ipc unix-socket`; every
    // other unix socket created outside the sandbox is denied). A listed path that does not
    // exist allows nothing (fail closed); it is reported.
    let exec_only = policy.exec.allow_only.iter().flatten();
    let exec_only = exec_only.map(|r| {
        (
            r.id,
            &r.path,
            access::EXEC_ALLOW,
            "nothing there may be executed",
        )
    });
    let sockets = policy.ipc.unix_sockets.iter();
    let sockets = sockets.map(|r| {
        (
            r.id,
            &r.path,
            access::UNIX_ALLOW,
            "connecting to a socket there is denied",
        )
    });
    let allows = exec_only.chain(sockets);
    for (id, pattern, allow, consequence) in allows {
        let path = pattern
            .expand(&vars)
            .map_err(|e| anyhow::anyhow!("rule {id}: {e} (expand the policy first)"))?;
        if !bind(maps, id.0, &path, allow)? {
            unbound.push(Unbound {
                rule: Some(id.0),
                reason: format!("{} does not exist, so {consequence}", path.display()),
                fails_closed: true,
            });
        }
    }
    // No write anywhere in cgroupfs: the agent can't leave its cgroup or make new ones.
    bind(maps, CGROUPFS_RULE, cgroup2, access::WRITE)?;
    // Last, so that an entry the rules above share keeps their rule id.
    keep_names(maps, sandbox_id, &kept_names)?;
    devices.extend(watch_devices);
    Ok(FsBinding {
        devices,
        bound,
        unbound,
        has_watches,
    })
}

/// Mark the directories from each of `starts` up to its filesystem's root `access::KEEP_NAME`
/// (`path_rename` refuses to move or replace them). A deny binds an object by inode and a
/// missing path is watched from its deepest existing directory, so both follow a renamed
/// ancestor: the old name would be free for a new directory that nothing binds, where a
/// `deny .git/hooks/**` in a writable project would no longer stop a new `.git/hooks/pre-commit`.
/// An entry already there keeps its rule id and gains the bit.
fn keep_names(maps: &mut Maps, sandbox_id: u32, starts: &[(u32, PathBuf)]) -> Result<()> {
    for (rule_id, start) in starts {
        let mut start_dev = None;
        let mut at = Some(start.as_path());
        while let Some(dir) = at {
            let Ok(meta) = fs::metadata(dir) else { break };
            // A mount point is busy (EBUSY) for rename; nothing above it needs the mark.
            if *start_dev.get_or_insert(meta.dev()) != meta.dev() {
                break;
            }
            let key = InodeKey {
                sandbox_id,
                dev: kernel_dev(meta.dev()),
                ino: meta.ino(),
            };
            let value = match maps.fs_deny.get(&key, 0) {
                // Marked from an earlier start: so is everything above it.
                Ok(existing) if existing.access & access::KEEP_NAME != 0 => break,
                Ok(existing) => FsDeny {
                    rule_id: existing.rule_id,
                    access: existing.access | access::KEEP_NAME,
                },
                Err(_) => FsDeny {
                    rule_id: *rule_id,
                    access: access::KEEP_NAME,
                },
            };
            maps.fs_deny.insert(key, value, 0).with_context(|| {
                format!(
                    "rule r{rule_id}: marking {} as a directory that keeps its name",
                    dir.display()
                )
            })?;
            at = dir.parent();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_takes_the_lowest_free_slot() {
        let claimed = HashSet::from([0, 1, 3]);
        let id = pick_id(&claimed, &HashSet::new(), || 0xdead_beef).unwrap();
        assert_eq!(event_slot(id), 2);
        assert_eq!(id & !(EVENT_SLOTS - 1), 0xdead_beef & !(EVENT_SLOTS - 1));
    }

    #[test]
    fn ids_are_never_zero_nor_in_use() {
        // Slot 0 with random upper bits 0 would be id 0 (no sandbox); an id still in the maps
        // is skipped too.
        let mut draws = [0u32, 0x10, 0x20].into_iter();
        let in_use = HashSet::from([0x10]);
        let id = pick_id(&HashSet::new(), &in_use, || draws.next().unwrap()).unwrap();
        assert_eq!(id, 0x20);
    }

    #[test]
    fn every_slot_claimed_gives_no_id() {
        let claimed: HashSet<u32> = (0..EVENT_SLOTS).collect();
        assert_eq!(pick_id(&claimed, &HashSet::new(), || 7), None);
    }

    #[test]
    fn distinct_slots_for_concurrent_claims() {
        // Each claim is a registry file named by the id: the next pick sees it.
        let mut claimed = HashSet::new();
        let mut ids = HashSet::new();
        let mut n = 0u32;
        for _ in 0..EVENT_SLOTS {
            let id = pick_id(&claimed, &ids, || {
                n = n.wrapping_add(0x9e37_79b9);
                n
            })
            .unwrap();
            assert!(
                claimed.insert(event_slot(id)),
                "slot of {id:#x} given twice"
            );
            ids.insert(id);
        }
        assert_eq!(pick_id(&claimed, &ids, || 1 << 8), None);
    }
}
