//! The kernel layer: nono's eBPF programs (BPF LSM file hooks, cgroup socket-address hooks),
//! enforced under Landlock when nono has the privileges to load them.
//!
//! Privileges: loading and pinning programs, creating cgroups and registering sandboxes need
//! root, or CAP_BPF + CAP_SYS_ADMIN (+ CAP_NET_ADMIN for the cgroup socket programs).
//!
//! Lifecycle:
//! - The programs are loaded once per eBPF object and pinned under `/sys/fs/bpf/nono/<hash>/`
//!   (maps by name, LSM links, cgroup programs), shared by every sandbox. Later runs reuse the
//!   pins, so each run only adds and removes its own map entries.
//! - Each part is probed and loaded on its own: a kernel that refuses BPF LSM programs (as the
//!   CI host does) still gets the network part. The exec report (the `sched_process_exec`
//!   BTF tracepoint, [`EXEC_TRACEPOINT_PIN`]) is a part of its own too: it enforces nothing, and
//!   without it an exec is reported only by the LSM exec check, by inode, with no argv.
//! - Each run gets a cgroup v2 of its own, below nono's cgroup; its child is born in it or
//!   enters it before exec ([`Sandbox::cgroup_dir`]). Every program decides by the task's
//!   cgroup id.
//! - A run removes its entries and cgroup on drop; the next start removes what a crashed run
//!   left (see [`sandbox`]).
//!
//! Use from `nono run` (`crate::run::kernel_layer` does exactly this):
//! 1. `KernelLayer::probe()` for the one-line "why not" ([`Availability::blocker`]), then
//!    `KernelLayer::load()`; `layer.describe()` is the `-v` line saying which parts are active.
//! 2. `layer.create_sandbox(&policy.expand(&vars)?, &SandboxOptions::from_policy(&policy))`.
//!    `sandbox.unbound` lists rules the layer could not bind (a deny on a path that does not
//!    exist, domain rules, file denies without BPF LSM): refuse or warn per `--best-effort`.
//! 3. Open `sandbox.cgroup_dir()` and start the child in it with `clone3(CLONE_INTO_CGROUP)`;
//!    or, in the child, before dropping capabilities, Landlock and seccomp (Landlock would
//!    forbid the write), write `0` to the directory's `cgroup.procs`. The command never runs
//!    outside the cgroup.
//! 4. `EventPrinter::spawn(sandbox.events()?, ...)` for `-v`, stopped after the child exits;
//!    then `sandbox.dropped_events()` is this run's count of events lost to a full ring.
//! 5. Drop the sandbox (or call `cleanup`) after the child exits.
//!
//! On a kernel without BPF LSM (the CI host), the seccomp filter should refuse `clone3` with
//! ENOSYS: `clone3(CLONE_INTO_CGROUP)` would otherwise start a child outside the sandbox
//! cgroup, beyond the network programs (with BPF LSM, `inode_permission` denies it).

pub mod cgroup;
pub mod cli;
pub mod events;
mod maps;
pub mod net;
pub mod offsets;
pub mod sandbox;
mod watch;

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aya::maps::{Array, MapData};
use aya::programs::{BtfTracePoint, CgroupSockAddr, Lsm};
use aya::{Btf, EbpfLoader};
use nono_common::{names, LayerConfig};

pub use events::{EventPrinter, EventStream, KernelEvent};
pub use maps::Maps;
pub use sandbox::{Sandbox, SandboxOptions};

/// The eBPF object built by `cargo xtask ebpf`, embedded by `build.rs` when it exists.
#[cfg(nono_ebpf)]
pub static EBPF_OBJECT: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(
    env!("OUT_DIR"),
    "/nono.bpf.o"
)));
#[cfg(not(nono_ebpf))]
pub static EBPF_OBJECT: Option<&[u8]> = None;

/// Where every version of nono pins its programs and maps.
pub const PIN_ROOT: &str = "/sys/fs/bpf/nono";
/// nono's runtime state: the load lock and one registry file per live sandbox.
pub const RUN_DIR: &str = "/run/nono";

/// The LSM hooks the file part attaches, each to the program of the same name.
pub const LSM_HOOKS: &[&str] = &[
    "file_open",
    "path_unlink",
    "path_rmdir",
    "path_mknod",
    "path_mkdir",
    "path_symlink",
    "path_link",
    "path_rename",
    "path_truncate",
    "path_chmod",
    "path_chown",
    "inode_permission",
    "bprm_check_security",
    // Code mapped without execve (the dynamic loader run as a program): the exec rules again.
    "mmap_file",
    "file_mprotect",
    // inotify and fanotify marks: a watch reports the names and events of what it watches.
    "path_notify",
    "task_kill",
    "ptrace_access_check",
    "bpf",
    "kernel_read_file",
    "kernel_load_data",
    "kernel_module_request",
    "unix_stream_connect",
    "unix_may_send",
    // Listening needs a bound port (nono-ebpf/src/net.rs).
    "socket_listen",
    // Name watches (nono-ebpf/src/watch.rs): bind objects that appear under a watched name.
    "d_instantiate",
    "inode_rename",
    "inode_link",
];

/// The pin of the exec report's link (the `sched_process_exec` BTF tracepoint program,
/// `nono-ebpf/src/exec.rs`), in the pin directory.
pub const EXEC_TRACEPOINT_PIN: &str = "tp_sched_process_exec";

/// The cgroup socket-address programs of the network part and their attach types.
pub const SOCK_PROGRAMS: &[(&str, u32)] = &[
    // The u32 is the kernel's `enum bpf_attach_type` value, for BPF_PROG_ATTACH.
    ("connect4", 10),
    ("connect6", 11),
    ("sendmsg4", 14),
    ("sendmsg6", 15),
    ("bind4", 8),
    ("bind6", 9),
    // The DNS redirect's reply half (nono-ebpf/src/dns.rs); it never denies.
    ("recvmsg4", 19),
    ("recvmsg6", 20),
];

/// What the kernel layer can do here, part by part, without loading anything.
#[derive(Debug, Clone)]
pub struct Availability {
    /// The eBPF object is compiled into this binary.
    pub built_in: bool,
    /// Effective uid 0 (capabilities alone are not probed yet).
    pub privileged: bool,
    pub btf: bool,
    /// `bpf` is in the active LSM list (needs securityfs mounted to tell; `None` if unknown).
    pub bpf_lsm_listed: Option<bool>,
    pub cgroup2: Option<PathBuf>,
}

impl Availability {
    /// Why the kernel layer can't be used at all, if it can't.
    pub fn blocker(&self) -> Option<String> {
        if let Some(b) = unprobed_blocker(self.built_in, self.privileged) {
            Some(b)
        } else if !self.btf {
            Some(format!("the kernel has no BTF ({})", offsets::VMLINUX_BTF))
        } else if self.cgroup2.is_none() {
            Some("no cgroup v2 hierarchy is mounted".into())
        } else {
            None
        }
    }
}

/// The blockers known without reading anything: not built in, not privileged.
fn unprobed_blocker(built_in: bool, privileged: bool) -> Option<String> {
    if !built_in {
        Some("this nono was built without the kernel layer (`cargo xtask ebpf`)".into())
    } else if !privileged {
        Some("nono is not root (the kernel layer needs root, or CAP_BPF + CAP_SYS_ADMIN)".into())
    } else {
        None
    }
}

/// The state of one part of the layer after [`KernelLayer::load`].
#[derive(Debug, Clone)]
pub enum Part {
    Active,
    Unavailable(String),
}

impl Part {
    pub fn is_active(&self) -> bool {
        matches!(self, Part::Active)
    }
}

/// The loaded kernel layer: pinned programs and maps shared by all sandboxes.
pub struct KernelLayer {
    pin_dir: PathBuf,
    pub lsm: Part,
    pub net: Part,
    /// The exec report: binary and argv of each exec under `audit all`.
    pub exec: Part,
    cgroup2: PathBuf,
    maps: Maps,
}

impl std::fmt::Debug for KernelLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelLayer")
            .field("pin_dir", &self.pin_dir)
            .field("lsm", &self.lsm)
            .field("net", &self.net)
            .field("exec", &self.exec)
            .finish()
    }
}

/// An exclusive lock on the load and sweep steps, held by one nono at a time.
pub(crate) struct LoadLock {
    _locked: fs::File,
}

impl LoadLock {
    pub(crate) fn take() -> Result<LoadLock> {
        Self::lock(libc::LOCK_EX)
    }

    /// The lock if it can be had within about half a second. Cleanup uses this: it may run
    /// while this very process holds the lock (a failed creation), where waiting would hang.
    pub(crate) fn try_take() -> Result<LoadLock> {
        let mut last = None;
        for _ in 0..50 {
            match Self::lock(libc::LOCK_EX | libc::LOCK_NB) {
                Ok(lock) => return Ok(lock),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("the kernel-layer lock is busy")))
    }

    fn lock(operation: libc::c_int) -> Result<LoadLock> {
        fs::create_dir_all(RUN_DIR).with_context(|| format!("creating {RUN_DIR}"))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(Path::new(RUN_DIR).join("kernel.lock"))
            .context("opening the kernel-layer lock")?;
        // SAFETY: flock(2) on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } != 0 {
            bail!(
                "locking {RUN_DIR}/kernel.lock: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(LoadLock { _locked: file })
    }
}

/// FNV-1a: a stable name for one build of the eBPF object, so two nono versions never share
/// (and misread) each other's maps.
fn object_hash(object: &[u8]) -> u64 {
    object.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl KernelLayer {
    /// Why the layer can't be used, from the checks that read nothing. An unprivileged
    /// `nono run`, the common case, stops here instead of reading securityfs, sysfs and
    /// mountinfo on its start-up path.
    pub fn quick_blocker() -> Option<String> {
        // SAFETY: geteuid cannot fail.
        unprobed_blocker(EBPF_OBJECT.is_some(), unsafe { libc::geteuid() } == 0)
    }

    /// Cheap checks, nothing loaded.
    pub fn probe() -> Availability {
        let bpf_lsm_listed = fs::read_to_string("/sys/kernel/security/lsm")
            .ok()
            .map(|l| l.split(',').any(|x| x.trim() == "bpf"));
        Availability {
            built_in: EBPF_OBJECT.is_some(),
            // SAFETY: geteuid cannot fail.
            privileged: unsafe { libc::geteuid() } == 0,
            btf: Path::new(offsets::VMLINUX_BTF).exists(),
            bpf_lsm_listed,
            cgroup2: cgroup::cgroup2_mount().ok(),
        }
    }

    /// Load (or reuse) the pinned programs and maps. Fails only when no part can work; a part
    /// the kernel refuses is reported in [`KernelLayer::lsm`] / [`KernelLayer::net`].
    pub fn load() -> Result<KernelLayer> {
        let availability = Self::probe();
        if let Some(blocker) = availability.blocker() {
            bail!("kernel layer unavailable: {blocker}");
        }
        let object = EBPF_OBJECT.context("kernel layer not built in")?;
        let cgroup2 = availability
            .cgroup2
            .clone()
            .context("no cgroup v2 hierarchy")?;
        let _lock = LoadLock::take()?;
        ensure_bpffs()?;
        let pin_dir = Path::new(PIN_ROOT).join(format!("{:016x}", object_hash(object)));
        let maps_dir = pin_dir.join("maps");
        fs::create_dir_all(&maps_dir).with_context(|| {
            format!(
                "creating {} (is the BPF filesystem mounted at /sys/fs/bpf?)",
                maps_dir.display()
            )
        })?;
        let (lsm, net, exec) = match reuse_pins(&pin_dir) {
            Some(parts) => parts,
            None => load_object(
                object,
                &pin_dir,
                &maps_dir,
                availability.bpf_lsm_listed,
                &cgroup2,
            )?,
        };
        if let (Part::Unavailable(a), Part::Unavailable(b)) = (&lsm, &net) {
            bail!("kernel layer unavailable: BPF LSM: {a}; cgroup socket programs: {b}");
        }
        remove_unused_versions(&pin_dir);
        let mut maps = Maps::open(&maps_dir)?;
        sandbox::sweep_stale(&mut maps);
        Ok(KernelLayer {
            pin_dir,
            lsm,
            net,
            exec,
            cgroup2,
            maps,
        })
    }

    /// One line for `nono run -v`: which parts enforce.
    pub fn describe(&self) -> String {
        let part = |name: &str, p: &Part| match p {
            Part::Active => format!("{name}: active"),
            Part::Unavailable(why) => format!("{name}: off ({why})"),
        };
        format!(
            "kernel layer: {}; {}; {}",
            part("bpf-lsm files", &self.lsm),
            part("cgroup-sock network", &self.net),
            part("exec report", &self.exec)
        )
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    pub fn cgroup2_mount(&self) -> &Path {
        &self.cgroup2
    }

    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// Events the programs could not write because a ring buffer was full, all CPUs, summed
    /// over the event slots (each counts since its current or last sandbox claimed it; a run's
    /// own count is [`Sandbox::dropped_events`]).
    pub fn dropped_events(&self) -> Result<u64> {
        self.maps.dropped_events_all()
    }

    /// Create a sandbox for one run from the policy after `Policy::expand` (concrete paths).
    pub fn create_sandbox(
        &self,
        policy: &nono_policy::ir::Policy,
        options: &SandboxOptions,
    ) -> Result<Sandbox> {
        let _lock = LoadLock::take()?;
        // Another build of nono may have unpinned ours (unused pins are removed at load) between
        // our load and now: then the programs may be detached, and a sandbox would enforce
        // nothing. Check under the lock, which that removal also holds.
        match reuse_pins(&self.pin_dir) {
            Some((lsm, net, exec))
                if lsm.is_active() == self.lsm.is_active()
                    && net.is_active() == self.net.is_active()
                    && exec.is_active() == self.exec.is_active() => {}
            _ => bail!(
                "the kernel layer's pins under {} changed since it was loaded; run nono again",
                self.pin_dir.display()
            ),
        }
        Sandbox::create(self, policy, options)
    }
}

/// The state of an earlier, complete load of this object, if there was one: every program
/// pinned (or its part marked refused) and the config written. Reusing it costs no BTF
/// parsing and no verification, which matters for every `nono run`.
fn reuse_pins(pin_dir: &Path) -> Option<(Part, Part, Part)> {
    if !pin_dir.join(LOADED_MARKER).exists() {
        return None;
    }
    let lsm = if LSM_HOOKS
        .iter()
        .all(|h| pin_dir.join(format!("lsm_{h}")).exists())
    {
        Part::Active
    } else if pin_dir.join(LSM_REFUSED_MARKER).exists() {
        Part::Unavailable(format!(
            "the kernel refused BPF LSM programs when nono first loaded them (remove {} to retry)",
            pin_dir.display()
        ))
    } else {
        return None;
    };
    let net = if SOCK_PROGRAMS
        .iter()
        .all(|(n, _)| sock_program_pin(pin_dir, n).exists())
    {
        Part::Active
    } else if pin_dir.join(NET_REFUSED_MARKER).exists() {
        Part::Unavailable(format!(
            "the kernel refused cgroup socket programs when nono first loaded them (remove {} to retry)",
            pin_dir.display()
        ))
    } else {
        return None;
    };
    let exec = if pin_dir.join(EXEC_TRACEPOINT_PIN).exists() {
        Part::Active
    } else if pin_dir.join(EXEC_REFUSED_MARKER).exists() {
        Part::Unavailable(format!(
            "the kernel refused the sched_process_exec tracepoint program when nono first loaded \
             it (remove {} to retry)",
            pin_dir.display()
        ))
    } else {
        return None;
    };
    Some((lsm, net, exec))
}

/// Unpin the programs and maps of other builds of nono that no sandbox uses any more: pinned
/// programs stay attached until reboot otherwise, and every process would keep paying for
/// them. A build whose sandbox map still has entries is left alone (its sandboxes still run).
fn remove_unused_versions(current: &Path) {
    let Ok(entries) = fs::read_dir(PIN_ROOT) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if dir == current {
            continue;
        }
        let sandboxes = dir.join("maps").join(names::SANDBOXES);
        let in_use = MapData::from_pin(&sandboxes)
            .ok()
            .and_then(|data| {
                aya::maps::HashMap::<_, u64, nono_common::SandboxInfo>::try_from(
                    aya::maps::Map::HashMap(data),
                )
                .ok()
            })
            .is_some_and(|map| map.keys().next().is_some());
        if !in_use {
            match fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!("kernel layer: removed unused pins {}", dir.display()),
                Err(e) => tracing::warn!("kernel layer: removing {}: {e}", dir.display()),
            }
        }
    }
}

/// Markers in the pin directory (empty directories: bpffs holds no regular files). The kernel's
/// answer does not change until reboot, which empties bpffs anyway.
const LOADED_MARKER: &str = "loaded";
const LSM_REFUSED_MARKER: &str = "lsm-refused";
const NET_REFUSED_MARKER: &str = "net-refused";
const EXEC_REFUSED_MARKER: &str = "exec-refused";

/// First load of this object on this boot: offsets, maps, config, programs, pins, markers.
fn load_object(
    object: &[u8],
    pin_dir: &Path,
    maps_dir: &Path,
    lsm_listed: Option<bool>,
    cgroup2: &Path,
) -> Result<(Part, Part, Part)> {
    // The offsets become constants of the programs (`NONO_OFFSETS` in `.rodata`, frozen before
    // any program is verified), so they are read before the object is loaded. Maps are
    // declared `pinned`: the loader reuses the pins of an earlier run, or creates and pins them.
    let offsets = offsets::read_kernel_offsets()?;
    let mut ebpf = EbpfLoader::new()
        .set_global(names::OFFSETS, &offsets, true)
        .map_pin_path(maps_dir)
        .load(object)
        .context("loading nono's eBPF object (maps)")?;
    let mut layer_config = LayerConfig::default();
    if let Some(address) = offsets::rename_seq_address() {
        layer_config.rename_seq = address;
        layer_config.cache_enabled = 1;
    } else {
        tracing::info!(
            "kernel layer: no rename_lock in /proc/kallsyms: the directory verdict cache stays off"
        );
    }
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(cgroup2).with_context(|| format!("stat {}", cgroup2.display()))?;
        layer_config.cgroup2_dev = sandbox::kernel_dev(meta.dev());
    }
    let mut config: Array<&mut MapData, LayerConfig> = Array::try_from(
        ebpf.map_mut(names::CONFIG)
            .context("the eBPF object has no config map")?,
    )?;
    config
        .set(0, layer_config, 0)
        .context("writing the config map")?;
    let mark = |name: &str| {
        let _ = fs::create_dir(pin_dir.join(name));
    };
    let lsm = match load_lsm(&mut ebpf, pin_dir, lsm_listed) {
        Ok(()) => Part::Active,
        Err(e) => {
            mark(LSM_REFUSED_MARKER);
            Part::Unavailable(format!("{e:#}"))
        }
    };
    let net = match load_sock_programs(&mut ebpf, pin_dir) {
        Ok(()) => Part::Active,
        Err(e) => {
            mark(NET_REFUSED_MARKER);
            Part::Unavailable(format!("{e:#}"))
        }
    };
    let exec = match load_exec_tracepoint(&mut ebpf, pin_dir) {
        Ok(()) => Part::Active,
        Err(e) => {
            mark(EXEC_REFUSED_MARKER);
            Part::Unavailable(format!("{e:#}"))
        }
    };
    mark(LOADED_MARKER);
    Ok((lsm, net, exec))
}

/// Mount the BPF filesystem at `/sys/fs/bpf` unless it is there (systemd mounts it; minimal
/// systems and containers often don't).
fn ensure_bpffs() -> Result<()> {
    let info =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mounted = info.lines().any(|l| {
        let Some((left, right)) = l.split_once(" - ") else {
            return false;
        };
        right.split_whitespace().next() == Some("bpf")
            && left.split_whitespace().nth(4) == Some(BPFFS)
    });
    if mounted {
        return Ok(());
    }
    let target = std::ffi::CString::new(BPFFS).context("bpffs path")?;
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "mounting the BPF filesystem at {BPFFS}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

const BPFFS: &str = "/sys/fs/bpf";

/// Load and attach every LSM program, pinning each link; all or nothing.
fn load_lsm(ebpf: &mut aya::Ebpf, pin_dir: &Path, listed: Option<bool>) -> Result<()> {
    if listed == Some(false) {
        bail!("`bpf` is not in the kernel's active LSM list (boot with lsm=...,bpf)");
    }
    let link_pin = |hook: &str| pin_dir.join(format!("lsm_{hook}"));
    if LSM_HOOKS.iter().all(|h| link_pin(h).exists()) {
        return Ok(()); // loaded by an earlier run
    }
    // A partial set (a crash mid-load) is removed and loaded again.
    for hook in LSM_HOOKS {
        let _ = fs::remove_file(link_pin(hook));
    }
    let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
    let result = (|| -> Result<()> {
        for hook in LSM_HOOKS {
            let program: &mut Lsm = ebpf
                .program_mut(hook)
                .with_context(|| format!("the eBPF object has no program {hook}"))?
                .try_into()?;
            program.load(hook, &btf).with_context(|| {
                format!("loading the BPF LSM program for hook {hook} (needs CONFIG_BPF_LSM and `bpf` in lsm=)")
            })?;
            let link_id = program
                .attach()
                .with_context(|| format!("attaching LSM hook {hook}"))?;
            let link: aya::programs::links::FdLink = program.take_link(link_id)?.into();
            link.pin(link_pin(hook))
                .with_context(|| format!("pinning the link of LSM hook {hook}"))?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Never leave half the file hooks enforcing.
        for hook in LSM_HOOKS {
            let _ = fs::remove_file(link_pin(hook));
        }
    }
    result
}

/// Load and attach the exec report (the `sched_process_exec` BTF tracepoint), pinning its link
/// so it stays attached, like the LSM programs, until the pins are removed.
fn load_exec_tracepoint(ebpf: &mut aya::Ebpf, pin_dir: &Path) -> Result<()> {
    let pin = pin_dir.join(EXEC_TRACEPOINT_PIN);
    if pin.exists() {
        return Ok(()); // loaded by an earlier run
    }
    let name = names::EXEC_TRACEPOINT;
    let btf = Btf::from_sys_fs().context("reading kernel BTF")?;
    let program: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program {name}"))?
        .try_into()?;
    program
        .load(name, &btf)
        .with_context(|| format!("loading the BTF tracepoint program {name}"))?;
    let link_id = program
        .attach()
        .with_context(|| format!("attaching the {name} tracepoint"))?;
    let link: aya::programs::links::FdLink = program.take_link(link_id)?.into();
    link.pin(&pin)
        .with_context(|| format!("pinning the link of the {name} tracepoint"))?;
    Ok(())
}

/// Load and pin the cgroup socket programs; each sandbox attaches them to its own cgroup.
fn load_sock_programs(ebpf: &mut aya::Ebpf, pin_dir: &Path) -> Result<()> {
    let prog_pin = |name: &str| sock_program_pin(pin_dir, name);
    if SOCK_PROGRAMS.iter().all(|(n, _)| prog_pin(n).exists()) {
        return Ok(());
    }
    for (name, _) in SOCK_PROGRAMS {
        let _ = fs::remove_file(prog_pin(name));
    }
    let result = (|| -> Result<()> {
        for (name, _) in SOCK_PROGRAMS {
            let program: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .with_context(|| format!("the eBPF object has no program {name}"))?
                .try_into()?;
            program
                .load()
                .with_context(|| format!("loading the cgroup/{name} program"))?;
            program
                .pin(prog_pin(name))
                .with_context(|| format!("pinning the cgroup/{name} program"))?;
        }
        Ok(())
    })();
    if result.is_err() {
        for (name, _) in SOCK_PROGRAMS {
            let _ = fs::remove_file(prog_pin(name));
        }
    }
    result
}

/// The pinned program of a network hook, ready to attach to a sandbox cgroup: its descriptor
/// alone. Not aya's `CgroupSockAddr::from_pin`, which reads the program's info and, the first
/// time in a process, runs aya's kernel feature probes for it (eight BTF loads, five program
/// loads, three maps and a link: about 20 `bpf` calls in every root `nono run`), none of which
/// attaching needs.
pub(crate) fn pinned_sock_program(pin_dir: &Path, name: &str) -> Result<std::os::fd::OwnedFd> {
    cgroup::open_pinned(&sock_program_pin(pin_dir, name))
}

/// Where the socket program `name` (of [`SOCK_PROGRAMS`]) is pinned.
fn sock_program_pin(pin_dir: &Path, name: &str) -> PathBuf {
    pin_dir.join(format!("sock_{name}"))
}
