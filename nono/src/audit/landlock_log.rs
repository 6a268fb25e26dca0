//! Landlock's own denial records (Landlock ABI 7, Linux 6.15+), read from the kernel audit
//! subsystem and attributed to the session, so Landlock-only runs record what was denied.
//!
//! Privilege and kernel assumptions — all of them are needed, and nono changes none:
//! - `CONFIG_AUDIT=y` and audit *enabled* (`auditd` running, `auditctl -e 1`, or `audit=1` on
//!   the kernel command line): with audit disabled Landlock writes no record at all;
//! - `CAP_AUDIT_READ` in the initial user namespace, to join the netlink multicast group
//!   `AUDIT_NLGRP_READLOG` that receives a copy of every record (root has it; an
//!   unprivileged user, or root inside a container's user namespace, does not);
//! - Landlock ABI 7, and a ruleset restricted with `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`
//!   (nono sets it unless the profile says `audit off`), so denials after `execve` are logged.
//!
//! - `CAP_AUDIT_WRITE`, optionally, for the end marker that tells the reader every record of
//!   the command has arrived ([`LandlockLog::stop`]); without it the reader waits a fixed
//!   grace period, which a loaded machine can outlast.
//!
//! When one of the required ones is missing the reader is not started and `nono run -v` says
//! which. nono does not enable audit itself: that is a host-wide setting with a cost for every
//! process.
//!
//! Attribution: Landlock names the denying domain by a 64-bit id in each `AUDIT_LANDLOCK_ACCESS`
//! record, and logs the domain's creator (`AUDIT_LANDLOCK_DOMAIN status=allocated pid=N`) with
//! its first denial. nono's child creates the session's domain, so a domain whose creator is the
//! child's pid is this session's, and so are its later denials, whichever descendant caused
//! them. Domains the command nests inside its own (its own Landlock use) are not attributed.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event::{AuditEvent, What};
use super::ingest::AuditSender;
use crate::run::why::{FsRuleIndex, Op};

const NETLINK_AUDIT: i32 = 9;
const AUDIT_NLGRP_READLOG: u32 = 1;
const AUDIT_SYSCALL: u16 = 1300;
const AUDIT_EOE: u16 = 1320;
pub const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
pub const AUDIT_LANDLOCK_DOMAIN: u16 = 1424;

/// One audit record: `audit(SECONDS.MILLIS:SERIAL): key=value ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u16,
    pub time_ns: i64,
    pub serial: u64,
    pub body: String,
}

impl Record {
    pub fn parse(kind: u16, text: &str) -> Option<Record> {
        let rest = text.strip_prefix("audit(")?;
        let (stamp, body) = rest.split_once("): ")?;
        let (time, serial) = stamp.split_once(':')?;
        let (secs, millis) = time.split_once('.')?;
        let time_ns =
            secs.parse::<i64>().ok()? * 1_000_000_000 + millis.parse::<i64>().ok()? * 1_000_000;
        Some(Record {
            kind,
            time_ns,
            serial: serial.parse().ok()?,
            body: body.trim_end_matches('\0').to_string(),
        })
    }

    /// The value of `key=`: a quoted string, or audit's hex encoding of an untrusted string
    /// (used when it has spaces, quotes or control characters), as raw bytes.
    pub fn field(&self, key: &str) -> Option<Vec<u8>> {
        let mut at = 0;
        while let Some(i) = self.body[at..].find(key) {
            let start = at + i;
            at = start + key.len();
            let boundary = start == 0 || self.body.as_bytes()[start - 1] == b' ';
            if !boundary || !self.body[at..].starts_with('=') {
                continue;
            }
            let v = &self.body[at + 1..];
            if let Some(q) = v.strip_prefix('"') {
                return Some(q.as_bytes()[..q.find('"').unwrap_or(q.len())].to_vec());
            }
            let word = &v[..v.find(' ').unwrap_or(v.len())];
            if key == "path" || key == "exe" || key == "comm" {
                if let Ok(b) = hex::decode(word) {
                    return Some(b);
                }
            }
            return Some(word.as_bytes().to_vec());
        }
        None
    }

    fn text(&self, key: &str) -> Option<String> {
        self.field(key)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

/// Names the rule behind a Landlock denial. Landlock reports the path it refused and the
/// access (its blockers), not a rule: a refusal that a deny rule covers is that rule's (the most
/// specific one, decided as `nono why` decides: [`FsRuleIndex`]); any other is the default deny
/// ("not granted"), which has no rule id.
pub struct DenyRules {
    index: FsRuleIndex,
    source: Box<dyn Fn(u32) -> Option<String> + Send>,
}

impl std::fmt::Debug for DenyRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DenyRules")
    }
}

impl DenyRules {
    /// From the run's policy (paths already expanded for this machine). Resolves every rule's
    /// path: build it off the run's critical path.
    pub fn from_policy(
        policy: &nono_policy::ir::Policy,
        source: impl Fn(u32) -> Option<String> + Send + 'static,
    ) -> DenyRules {
        DenyRules {
            index: FsRuleIndex::new(policy),
            source: Box::new(source),
        }
    }

    /// The deny rule behind a refusal of `path` (as Landlock reports it: resolved) for the
    /// access `blockers` names, if any.
    fn rule_for(&self, path: &[u8], blockers: &str) -> Option<(u32, Option<String>)> {
        use std::os::unix::ffi::OsStrExt;
        let op = if blockers.contains("execute") {
            Op::Exec
        } else if blockers.starts_with("fs.read") {
            Op::Read
        } else {
            Op::Write
        };
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
        let id = self.index.deny_for(path, op)?.0;
        Some((id, (self.source)(id)))
    }
}

/// Follows the records of one session: which domains are its, and which denials to keep.
#[derive(Debug, Default)]
pub struct Attributor {
    child: i64,
    domains: HashSet<String>,
    /// The records of the audit event being read (one serial number).
    current: Vec<Record>,
    denies: Option<DenyRules>,
}

impl Attributor {
    pub fn new(child_pid: i64) -> Attributor {
        Attributor {
            child: child_pid,
            ..Attributor::default()
        }
    }

    /// Name the deny rule behind each file denial (see [`DenyRules`]).
    pub fn with_denies(mut self, denies: DenyRules) -> Attributor {
        self.denies = Some(denies);
        self
    }

    pub fn set_child(&mut self, pid: i64) {
        self.child = pid;
    }

    /// Takes the next record; returns the session's denials of the events it completes.
    pub fn push(&mut self, r: Record) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        if self.current.first().is_some_and(|c| c.serial != r.serial) {
            out = self.flush();
        }
        if r.kind == AUDIT_EOE {
            out.extend(self.flush());
        } else {
            self.current.push(r);
        }
        out
    }

    /// Ends the event being read.
    pub fn flush(&mut self) -> Vec<AuditEvent> {
        let records = std::mem::take(&mut self.current);
        // A domain's allocation is logged with its first denial, after the access record.
        for r in &records {
            if r.kind == AUDIT_LANDLOCK_DOMAIN
                && r.text("status").as_deref() == Some("allocated")
                && r.text("pid").and_then(|p| p.parse::<i64>().ok()) == Some(self.child)
            {
                if let Some(d) = r.text("domain") {
                    self.domains.insert(d);
                }
            }
        }
        let syscall = records.iter().find(|r| r.kind == AUDIT_SYSCALL);
        let pid = syscall
            .and_then(|s| s.text("pid"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let process = syscall.and_then(|s| s.text("comm")).unwrap_or_default();
        records
            .iter()
            .filter(|r| r.kind == AUDIT_LANDLOCK_ACCESS)
            .filter(|r| r.text("domain").is_some_and(|d| self.domains.contains(&d)))
            .map(|r| {
                let blockers = r.text("blockers").unwrap_or_default();
                let what = match r.field("path") {
                    Some(path) if blockers.starts_with("fs.") => What::File {
                        op: blockers.clone(),
                        path,
                        inode: None,
                        hook: Some("landlock".into()),
                        path_truncated: false,
                    },
                    _ => What::Landlock {
                        record: r.body.clone(),
                    },
                };
                let rule = match (&what, &self.denies) {
                    (What::File { path, .. }, Some(d)) => d.rule_for(path, &blockers),
                    _ => None,
                };
                let (rule_id, rule_source) = match rule {
                    Some((id, source)) => (Some(id), source),
                    None => (None, None),
                };
                AuditEvent {
                    time_ns: r.time_ns,
                    pid,
                    process: process.clone(),
                    denied: true,
                    rule_id,
                    rule_source,
                    what,
                }
            })
            .collect()
    }
}

/// The reader thread of one session.
pub struct LandlockLog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why the reader cannot run here, for `nono run -v` and the README.
pub fn open_socket() -> Result<OwnedFd, String> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        return Err(format!(
            "no NETLINK_AUDIT socket ({}): the kernel lacks CONFIG_AUDIT",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = AUDIT_NLGRP_READLOG;
    // SAFETY: binding a valid sockaddr_nl of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot join the audit log multicast group ({}): needs CAP_AUDIT_READ in the initial \
             user namespace",
            std::io::Error::last_os_error()
        ));
    }
    // Room for bursts of denials (root may exceed rmem_max); failure only risks ENOBUFS.
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt with an int option value.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    Ok(fd)
}

/// `CAP_AUDIT_READ` (`linux/capability.h`).
const CAP_AUDIT_READ: u32 = 37;

/// Whether the calling thread has capability `cap` in its effective set.
fn effective_capability(cap: u32) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two `Data` for version 3, into the array given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    rc == 0 && data[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0
}

/// Whether audit is enabled (`AUDIT_GET`, needs CAP_AUDIT_CONTROL); `None` if it cannot be
/// asked.
pub fn audit_enabled() -> Option<bool> {
    // SAFETY: as in open_socket.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: owned from here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    send_request(&fd, AUDIT_GET, b"").ok()?;
    // SAFETY: setsockopt with a timeval; recv into a buffer of its length.
    unsafe {
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let mut buf = [0u8; 512];
        let n = libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0);
        // The reply is `struct audit_status`: mask, then enabled (u32 each).
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if n < 24 || kind != AUDIT_GET {
            return None;
        }
        Some(u32::from_ne_bytes([buf[20], buf[21], buf[22], buf[23]]) != 0)
    }
}

impl LandlockLog {
    /// Starts reading, if this host lets nono; otherwise says why not. `child` is filled in
    /// with the command's pid once it is spawned.
    pub fn start(
        sender: AuditSender,
        child: &'static AtomicI32,
        policy: &nono_policy::ir::Policy,
    ) -> Result<LandlockLog, String> {
        // Without the capability the bind below fails anyway; knowing it from one `capget`
        // saves every unprivileged run two netlink sockets and a round trip to the kernel's
        // audit subsystem on its way to the command. (With it in a user namespace only, the
        // bind still fails, and says so.)
        if !effective_capability(CAP_AUDIT_READ) {
            return Err("reading the audit log needs CAP_AUDIT_READ".into());
        }
        if audit_enabled() == Some(false) {
            return Err(
                "kernel audit is disabled (no auditd, audit=0): Landlock logs nothing".into(),
            );
        }
        let fd = open_socket()?;
        // The rules are resolved on the reader's thread, not before the command starts.
        let policy = policy.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        // No signals on this thread: `nono run` takes them on the main one (see `ingest`).
        let _blocked = super::ingest::AllSignalsBlocked::new();
        let thread = std::thread::Builder::new()
            .name("nono-landlock-log".into())
            .spawn(move || {
                let source = super::session::rule_sources(&policy);
                let denies = DenyRules::from_policy(&policy, source);
                read_loop(fd, sender, child, stop2, denies)
            })
            .map_err(|e| e.to_string())?;
        Ok(LandlockLog {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops once every record the command caused has been read. kauditd sends records
    /// asynchronously, after the syscall that caused them, from one FIFO queue: the reader
    /// writes a marker record of its own into that queue ([`send_marker`]) after the command
    /// ended, and stops when the marker comes back, so no record of the command is still on
    /// its way. Without the right to write one (CAP_AUDIT_WRITE), or if the marker does not
    /// come back within [`MARKER_WAIT`], it stops after [`GRACE`].
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long to keep reading after the command ended when no marker could be sent.
const GRACE: Duration = Duration::from_millis(150);
/// The longest wait for the marker (kauditd delayed by a loaded machine, or the backlog full).
const MARKER_WAIT: Duration = Duration::from_secs(2);
/// `AUDIT_TRUSTED_APP`: a user-space message of free text.
const AUDIT_TRUSTED_APP: u16 = 1121;
const AUDIT_GET: u16 = 1000;
const NLMSG_ERROR: u16 = 2;

/// Writes a `AUDIT_TRUSTED_APP` record with `text` into the kernel's audit queue (it also
/// lands in the host's audit log, if auditd runs: one line per `nono run` that read Landlock's
/// records). Needs CAP_AUDIT_WRITE.
fn send_marker(fd: &OwnedFd, text: &str) -> std::io::Result<()> {
    // With its NUL: the kernel writes one over the payload's last byte.
    let mut payload = Vec::with_capacity(text.len() + 1);
    payload.extend_from_slice(text.as_bytes());
    payload.push(0);
    send_request(fd, AUDIT_TRUSTED_APP, &payload)
}

/// Sends one netlink request of type `kind` with `payload` to the kernel's audit subsystem.
fn send_request(fd: &OwnedFd, kind: u16, payload: &[u8]) -> std::io::Result<()> {
    let len = 16 + payload.len();
    let mut msg = vec![0u8; (len + 3) & !3];
    msg[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&kind.to_ne_bytes());
    msg[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg[16..len].copy_from_slice(payload);
    // SAFETY: sockaddr_nl zeroed is the kernel; sendto from a buffer of the given size.
    let rc = unsafe {
        let mut to: libc::sockaddr_nl = std::mem::zeroed();
        to.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            len,
            0,
            (&to as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn read_loop(
    fd: OwnedFd,
    sender: AuditSender,
    child: &AtomicI32,
    stop: Arc<AtomicBool>,
    denies: DenyRules,
) {
    let mut attr = Attributor::new(0).with_denies(denies);
    let mut buf = vec![0u8; 64 * 1024];
    let mut stop_at: Option<Instant> = None;
    // Unique to this reader: the pid and the command's pid.
    let mut marker: Option<String> = None;
    loop {
        if stop_at.is_none() && stop.load(Ordering::Acquire) {
            let text = format!(
                "nono: end of session records, nono_pid={} child_pid={}",
                std::process::id(),
                child.load(Ordering::Acquire)
            );
            match send_marker(&fd, &text) {
                Ok(()) => {
                    marker = Some(text);
                    stop_at = Some(Instant::now() + MARKER_WAIT);
                }
                Err(e) => {
                    tracing::debug!("audit: no end marker ({e}); reading {GRACE:?} more");
                    stop_at = Some(Instant::now() + GRACE);
                }
            }
        }
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            if marker.is_some() {
                tracing::warn!(
                    "audit: the kernel's audit queue did not deliver nono's end marker within \
                     {MARKER_WAIT:?}; Landlock records after that are not in the session"
                );
            }
            break;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        // SAFETY: recv into a buffer of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                tracing::warn!("audit: Landlock records were lost (netlink receive buffer full)");
            }
            continue;
        }
        attr.set_child(child.load(Ordering::Acquire) as i64);
        let mut events = Vec::new();
        let mut marker_seen = false;
        let mut off = 0;
        let n = n as usize;
        // A datagram may carry several netlink messages.
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if len < 16 || off + len > n {
                break;
            }
            let text = String::from_utf8_lossy(&buf[off + 16..off + len]);
            if kind == AUDIT_TRUSTED_APP
                && marker.as_ref().is_some_and(|m| text.contains(m.as_str()))
            {
                marker_seen = true;
            }
            // The kernel refused the marker (no CAP_AUDIT_WRITE, or a filter): fall back to
            // the grace period rather than wait for a record that will not come.
            if kind == NLMSG_ERROR && len >= 20 && marker.is_some() {
                let errno =
                    i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4 bytes"));
                if errno != 0 {
                    tracing::debug!(
                        "audit: the end marker was refused ({}); reading {GRACE:?} more",
                        std::io::Error::from_raw_os_error(-errno)
                    );
                    marker = None;
                    stop_at = Some(Instant::now() + GRACE);
                }
            }
            if let Some(r) = Record::parse(kind, &text) {
                events.extend(attr.push(r));
            }
            off += (len + 3) & !3;
        }
        if !events.is_empty() {
            sender.try_send(events);
        }
        if marker_seen {
            break;
        }
    }
    let rest = attr.flush();
    if !rest.is_empty() {
        sender.try_send(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capability check agrees with the kernel's view of this process: the effective set in
    /// /proc/self/status (CapEff, hex).
    #[test]
    fn effective_capability_reads_the_effective_set() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        for cap in [0, 21, CAP_AUDIT_READ, 40] {
            assert_eq!(
                effective_capability(cap),
                eff & (1 << cap) != 0,
                "capability {cap}"
            );
        }
    }

    /// Records as this kernel (6.18, Landlock ABI 7) wrote them for `cat /root/.bashrc` under
    /// nono, with audit enabled: access, domain allocation, syscall, proctitle, end of event.
    const EVENT: &[(u16, &str)] = &[
        (1423, "audit(1796064197.927:3): domain=1c020e695 blockers=fs.read_file path=\"/root/.bashrc\" dev=\"vda\" ino=1235"),
        (1424, "audit(1796064197.927:3): domain=1c020e695 status=allocated mode=enforcing pid=24167 uid=0 exe=\"/work/wt-audit/target/debug/nono\" comm=\"nono\""),
        (1300, "audit(1796064197.927:3): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=7ffd39b79ae4 a2=0 a3=0 items=0 ppid=24165 pid=24167 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"cat\" exe=\"/usr/bin/cat\" key=(null)"),
        (1327, "audit(1796064197.927:3): proctitle=2F62696E2F636174002F726F6F742F2E626173687263"),
        (1320, "audit(1796064197.927:3): "),
    ];

    fn feed(a: &mut Attributor, events: &[(u16, &str)]) -> Vec<AuditEvent> {
        events
            .iter()
            .flat_map(|(k, t)| a.push(Record::parse(*k, t).unwrap()))
            .collect()
    }

    #[test]
    fn a_denial_under_a_deny_rule_names_that_rule() {
        use nono_policy::source::{Format, MemorySource, SourceFile};
        let policy = nono_policy::resolve::compile(
            &SourceFile {
                name: "p.nono".into(),
                text: "profile p\nread /root/**\ndeny /root/.bashrc\ndeny /root/.ssh/**\n\
                       deny write /root/notes\n"
                    .into(),
                format: Format::Lang,
            },
            &MemorySource::default(),
        )
        .expect("the test policy compiles");
        let source = super::super::session::rule_sources(&policy);
        let id_of = |text: &str| {
            policy
                .fs
                .iter()
                .find(|r| r.path.to_string() == text)
                .map(|r| r.id.0)
                .unwrap()
        };
        let denies = DenyRules::from_policy(&policy, source);
        assert_eq!(
            denies
                .rule_for(b"/root/.ssh/id_rsa", "fs.read_file")
                .map(|r| r.0),
            Some(id_of("/root/.ssh/**"))
        );
        // A deny of writing does not decide a refused read; nothing else denies: the default.
        assert_eq!(denies.rule_for(b"/root/notes", "fs.read_file"), None);
        assert_eq!(
            denies
                .rule_for(b"/root/notes", "fs.write_file")
                .map(|r| r.0),
            Some(id_of("/root/notes"))
        );
        assert_eq!(denies.rule_for(b"/etc/shadow", "fs.read_file"), None);
        // Through the attributor: the record of `cat /root/.bashrc`.
        let bashrc = id_of("/root/.bashrc");
        let got = feed(
            &mut Attributor::new(24167).with_denies(DenyRules::from_policy(&policy, |id| {
                Some(format!("p.nono:{id}"))
            })),
            EVENT,
        );
        assert_eq!(got[0].rule_id, Some(bashrc));
        assert_eq!(got[0].rule_source, Some(format!("p.nono:{bashrc}")));
        let none = feed(&mut Attributor::new(24167), EVENT);
        assert_eq!(none[0].rule_id, None);
    }

    #[test]
    fn denials_of_the_childs_domain_are_attributed() {
        let mut a = Attributor::new(24167);
        let got = feed(&mut a, EVENT);
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert!(e.denied);
        assert_eq!(e.pid, 24167);
        assert_eq!(e.process, "cat");
        assert_eq!(e.time_ns, 1_796_064_197_927_000_000);
        match &e.what {
            What::File { op, path, .. } => {
                assert_eq!(op, "fs.read_file");
                assert_eq!(path, b"/root/.bashrc");
            }
            w => panic!("{w:?}"),
        }
        // Later denials of the same domain carry no allocation record, and still count.
        let later = [
            (1423, "audit(1796064198.000:9): domain=1c020e695 blockers=fs.write_file path=2F746D702F6120622E747874 dev=\"vda\" ino=7"),
            (1320, "audit(1796064198.000:9): "),
        ];
        let got = feed(&mut a, &later);
        assert_eq!(got.len(), 1);
        match &got[0].what {
            What::File { path, .. } => assert_eq!(path, b"/tmp/a b.txt", "hex-encoded path"),
            w => panic!("{w:?}"),
        }
    }

    #[test]
    fn other_sessions_domains_are_ignored() {
        let mut a = Attributor::new(1);
        assert!(feed(&mut a, EVENT).is_empty());
    }

    #[test]
    fn fields_need_a_word_boundary() {
        let r = Record::parse(1424, "audit(1.500:2): ppid=9 pid=10 comm=\"x\"").unwrap();
        assert_eq!(r.text("pid").as_deref(), Some("10"));
        assert_eq!(r.time_ns, 1_500_000_000);
    }
}
