//! [`AuditEvent`]: one thing a sandboxed session did, as an event source reports it, and
//! [`Row`]: the same event as stored (and hashed).
//!
//! Privilege: none; no kernel calls except reading the clocks.
//!
//! Sources: the run flow (the exec of the command, its exit), the kernel layer's ring-buffer
//! reader ([`AuditEvent::from_kernel`]), and Landlock's own denial records where readable.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::json;

use crate::kernel::events::KernelDev;

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// One event, in the form a source hands to the auditor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Wall clock, nanoseconds since the Unix epoch (see [`ClockOffset`] for kernel times).
    pub time_ns: i64,
    /// The process (thread group) that acted; 0 when unknown.
    pub pid: u32,
    /// Its `comm`, as the kernel reported it; empty when unknown.
    pub process: String,
    /// The access was refused (a violation).
    pub denied: bool,
    /// The policy rule that decided (`RuleId.0`), `None` for the default decision.
    pub rule_id: Option<u32>,
    /// Where that rule was written (`profile.nono:12:3`), when known.
    pub rule_source: Option<String>,
    pub what: What,
}

/// What was accessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A file access. `op` is `read`, `write`, `exec` or a `,`-joined mix; `path` holds the raw
    /// bytes (file names need not be UTF-8) and is empty when the source only knows the inode.
    File {
        op: String,
        path: Vec<u8>,
        /// Kernel `dev_t` (`MAJOR << 20 | MINOR`) and inode, when the source has them.
        inode: Option<(u32, u64)>,
        /// The LSM hook that decided (kernel layer), e.g. `file_open`.
        hook: Option<String>,
        /// `path` is not the whole path: the kernel's walk from the file up stopped short of
        /// the root (too deep or too long), so it holds the names nearest the file, without a
        /// leading `/`.
        path_truncated: bool,
    },
    /// An outbound connection attempt (`op` = `connect`, `sendmsg`, `bind` from the kernel
    /// layer; `proxy` for a request to nono's proxy).
    Net {
        op: String,
        /// `None` when no address was involved: the proxy refused a name before resolving it.
        addr: Option<IpAddr>,
        port: u16,
        /// `tcp`, `udp` or the IP protocol number.
        protocol: String,
        /// The name nono's resolver last answered with this address (kernel mode), or the
        /// name the client asked the proxy for.
        name: Option<String>,
    },
    /// A program was executed, or refused. `argv` is already redacted (see
    /// [`super::redact`]); `errno` is set when nono's own `execve` of the command failed. From
    /// the kernel layer (an exec inside the sandbox: completed ones under `audit all`, denied
    /// ones always), `binary` is the name given to `execve`; `argv_truncated` says the command
    /// line was longer than the kernel's record holds or unreadable (only whole arguments are
    /// kept) and `binary_truncated` the same of the name. A denial by the kernel's exec check
    /// has its `hook` (`bprm_check_security`) and the `inode` its rule matched, as a file
    /// event does.
    Exec {
        binary: Vec<u8>,
        argv: Vec<String>,
        errno: Option<i32>,
        argv_truncated: bool,
        binary_truncated: bool,
        hook: Option<String>,
        inode: Option<(u32, u64)>,
    },
    /// A denial record from Landlock's audit log (ABI 7), kept verbatim.
    Landlock { record: String },
    /// What the command changed in the files rollback snapshotted: the rollback session and
    /// its change counts (`created`, `modified`, `deleted`, `renamed`, `mode_changed`).
    Rollback {
        session: String,
        changes: serde_json::Value,
    },
    /// A kernel-layer isolation decision (signal, ptrace, bpf, module or kexec loading):
    /// `op` is the LSM hook, `target` the object it names (`cgroup:<id>` of a signal or ptrace
    /// target, `load:<id>` of a kernel read-file/load-data id).
    Isolation { op: String, target: String },
}

/// An event as stored: these columns, in this order, are what the hash chain covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub time_ns: i64,
    /// `file`, `net`, `exec`, `landlock`, `rollback`, `end`.
    pub kind: String,
    pub op: String,
    pub denied: bool,
    pub pid: i64,
    pub process: String,
    pub rule_id: Option<i64>,
    pub rule_source: Option<String>,
    /// The path, the address (`ip:port`) or the binary, as raw bytes.
    pub object: Vec<u8>,
    /// Everything else, as a compact JSON object (kept as stored text, hashed as bytes).
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn into_row(self) -> Row {
        let (kind, op, object, detail) = match self.what {
            What::File {
                op,
                path,
                inode,
                hook,
                path_truncated,
            } => {
                // Written by hand, keys in sorted order as serde_json's map would put them:
                // this runs for every kernel event and a map costs several allocations.
                let mut d = String::new();
                if let Some((dev, _)) = inode {
                    let _ = write!(d, "\"dev\":\"{}\"", KernelDev(dev));
                }
                if let Some(h) = hook {
                    if !d.is_empty() {
                        d.push(',');
                    }
                    d.push_str("\"hook\":");
                    d.push_str(&json_string(&h));
                }
                if let Some((_, ino)) = inode {
                    let _ = write!(d, ",\"ino\":{ino}");
                }
                if path_truncated {
                    if !d.is_empty() {
                        d.push(',');
                    }
                    d.push_str("\"path_truncated\":true");
                }
                (
                    "file",
                    op,
                    path,
                    (!d.is_empty()).then(|| format!("{{{d}}}")),
                )
            }
            What::Net {
                op,
                addr,
                port,
                protocol,
                name,
            } => {
                // The name a refused request asked for stands in for the address it never got;
                // stored as the client sent it (the object column holds raw bytes).
                let object = match (addr, &name) {
                    (Some(IpAddr::V4(a)), _) => format!("{a}:{port}"),
                    (Some(IpAddr::V6(a)), _) => format!("[{a}]:{port}"),
                    (None, Some(n)) => format!("{n}:{port}"),
                    (None, None) => format!("?:{port}"),
                };
                let mut d = String::from("{");
                if let Some(a) = addr {
                    let _ = write!(d, "\"addr\":\"{a}\",");
                }
                if let Some(n) = name {
                    let _ = write!(d, "\"name\":{},", json_string(&n));
                }
                let _ = write!(
                    d,
                    "\"port\":{port},\"protocol\":{}}}",
                    json_string(&protocol)
                );
                ("net", op, object.into_bytes(), Some(d))
            }
            What::Exec {
                binary,
                argv,
                errno,
                argv_truncated,
                binary_truncated,
                hook,
                inode,
            } => {
                let mut d = serde_json::Map::new();
                d.insert("argv".into(), json!(argv));
                if argv_truncated {
                    d.insert("argv_truncated".into(), json!(true));
                }
                if binary_truncated {
                    d.insert("binary_truncated".into(), json!(true));
                }
                if let Some(h) = hook {
                    d.insert("hook".into(), json!(h));
                }
                if let Some((dev, ino)) = inode {
                    d.insert("dev".into(), json!(KernelDev(dev).to_string()));
                    d.insert("ino".into(), json!(ino));
                }
                if let Some(e) = errno {
                    d.insert("errno".into(), json!(e));
                    d.insert(
                        "error".into(),
                        json!(std::io::Error::from_raw_os_error(e).to_string()),
                    );
                }
                (
                    "exec",
                    "exec".to_string(),
                    binary,
                    Some(json!(d).to_string()),
                )
            }
            What::Landlock { record } => (
                "landlock",
                "deny".to_string(),
                Vec::new(),
                Some(json!({ "record": record }).to_string()),
            ),
            What::Rollback { session, changes } => (
                "rollback",
                "changes".to_string(),
                session.into_bytes(),
                Some(changes.to_string()),
            ),
            What::Isolation { op, target } => ("isolation", op, target.into_bytes(), None),
        };
        Row {
            time_ns: self.time_ns,
            kind: kind.to_string(),
            op,
            denied: self.denied,
            pid: self.pid as i64,
            process: self.process,
            rule_id: self.rule_id.map(i64::from),
            rule_source: self.rule_source,
            object,
            detail,
        }
    }
}

/// Converts `CLOCK_MONOTONIC` times (kernel records) to wall-clock times, with the offset
/// between the two clocks read once: a later change of the wall clock does not reorder a
/// session's events.
#[derive(Debug, Clone, Copy)]
pub struct ClockOffset(i64);

impl ClockOffset {
    pub fn now() -> ClockOffset {
        ClockOffset(super::time::now_ns() - super::time::monotonic_ns())
    }
    pub fn wall(self, monotonic_ns: u64) -> i64 {
        self.0.saturating_add(monotonic_ns as i64)
    }
}

#[cfg(target_os = "linux")]
impl AuditEvent {
    /// A kernel-layer decision as an audit event. The ring buffer carries the inode, not the
    /// path, of a file object; `rule_source` maps a rule id to where it was written.
    pub fn from_kernel(
        ev: &crate::kernel::events::KernelEvent,
        clock: ClockOffset,
        rule_source: impl Fn(u32) -> Option<String>,
    ) -> AuditEvent {
        use crate::kernel::events::EventObject;
        use nono_common::access;
        let hook = ev.hook.map(|h| h.name().to_string());
        let what = match &ev.object {
            EventObject::File {
                dev,
                ino,
                access,
                path,
                path_cut,
            } => {
                let bits = u32::from(*access);
                let op: Vec<&str> = [
                    (access::READ, "read"),
                    (access::WRITE, "write"),
                    (access::EXEC, "exec"),
                ]
                .iter()
                .filter(|(b, _)| bits & b != 0)
                .map(|(_, n)| *n)
                .collect();
                What::File {
                    op: if op.is_empty() {
                        "access".into()
                    } else {
                        op.join(",")
                    },
                    path: path.clone().unwrap_or_default(),
                    inode: Some((*dev, *ino)),
                    hook: hook.clone(),
                    path_truncated: *path_cut && path.is_some(),
                }
            }
            EventObject::Net {
                addr,
                port,
                protocol,
            } => What::Net {
                op: match hook.as_deref() {
                    Some(h) if h.starts_with("sendmsg") => "sendmsg",
                    Some(h) if h.starts_with("bind") => "bind",
                    _ => "connect",
                }
                .to_string(),
                addr: Some(*addr),
                port: *port,
                protocol: match i32::from(*protocol) {
                    libc::IPPROTO_TCP => "tcp".to_string(),
                    libc::IPPROTO_UDP => "udp".to_string(),
                    p => p.to_string(),
                },
                name: None,
            },
            EventObject::Task { cgroup_id } => What::Isolation {
                op: hook.clone().unwrap_or_else(|| "task".into()),
                target: format!("cgroup:{cgroup_id}"),
            },
            EventObject::Kernel { id } => What::Isolation {
                op: hook.clone().unwrap_or_else(|| "kernel".into()),
                target: format!("load:{id}"),
            },
            EventObject::Exec {
                binary,
                argv,
                argv_truncated,
                binary_truncated,
                dev,
                ino,
            } => {
                use std::os::unix::ffi::OsStringExt;
                let args: Vec<std::ffi::OsString> = argv
                    .iter()
                    .map(|a| std::ffi::OsString::from_vec(a.clone()))
                    .collect();
                What::Exec {
                    binary: binary.clone(),
                    argv: super::redact::argv(&args),
                    errno: None,
                    argv_truncated: *argv_truncated,
                    binary_truncated: *binary_truncated,
                    hook: ev.denied.then(|| hook.clone()).flatten(),
                    inode: ev.denied.then_some((*dev, *ino)),
                }
            }
        };
        // Rule 0 is the default decision; the sentinel ids (no verdict, cgroupfs) are kept as
        // numbers so the record says exactly what the kernel said.
        let rule_id = (ev.rule_id != 0).then_some(ev.rule_id);
        AuditEvent {
            time_ns: clock.wall(ev.time_ns),
            pid: ev.tgid,
            process: ev.comm.clone(),
            denied: ev.denied,
            rule_id,
            rule_source: rule_id.and_then(&rule_source),
            what,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::events::{EventObject, KernelEvent};

    /// A kernel record of process 42 in sandbox 3 at monotonic time 10.
    fn kernel_event(
        comm: &str,
        hook: Option<nono_common::Hook>,
        denied: bool,
        rule_id: u32,
        object: EventObject,
    ) -> KernelEvent {
        KernelEvent {
            time_ns: 10,
            sandbox_id: 3,
            tgid: 42,
            pid: 42,
            uid: 1000,
            comm: comm.into(),
            hook,
            denied,
            rule_id,
            object,
        }
    }

    #[test]
    fn kernel_records_convert_with_rule_and_wall_clock() {
        let ev = KernelEvent {
            time_ns: 1_000,
            pid: 43,
            ..kernel_event(
                "cat",
                Some(nono_common::Hook::FileOpen),
                true,
                7,
                EventObject::File {
                    dev: (8 << 20) | 1,
                    ino: 99,
                    access: (nono_common::access::READ | nono_common::access::WRITE) as u8,
                    path: None,
                    path_cut: false,
                },
            )
        };
        let a =
            AuditEvent::from_kernel(&ev, ClockOffset(5_000), |id| Some(format!("p.nono:{id}:1")));
        assert_eq!(a.time_ns, 6_000);
        assert_eq!(a.pid, 42);
        assert_eq!(a.rule_source.as_deref(), Some("p.nono:7:1"));
        let row = a.into_row();
        assert_eq!((row.kind.as_str(), row.op.as_str()), ("file", "read,write"));
        assert!(row.denied);
        assert_eq!(
            row.detail.as_deref(),
            Some(r#"{"dev":"8:1","hook":"file_open","ino":99}"#)
        );
    }

    #[test]
    fn kernel_exec_records_convert_redacted() {
        let ev = kernel_event(
            "gh",
            None,
            false,
            0,
            EventObject::Exec {
                binary: b"/usr/bin/gh".to_vec(),
                argv: vec![b"gh".to_vec(), b"--token".to_vec(), b"ghp_x".to_vec()],
                argv_truncated: true,
                binary_truncated: false,
                dev: 0,
                ino: 0,
            },
        );
        let row = AuditEvent::from_kernel(&ev, ClockOffset(0), |_| None).into_row();
        assert_eq!((row.kind.as_str(), row.op.as_str()), ("exec", "exec"));
        assert_eq!(row.object, b"/usr/bin/gh");
        assert_eq!(
            (row.pid, row.process.as_str(), row.denied),
            (42, "gh", false)
        );
        assert_eq!(row.rule_id, None);
        assert_eq!(
            row.detail.as_deref(),
            Some(r#"{"argv":["gh","--token","[REDACTED]"],"argv_truncated":true}"#)
        );
    }

    #[test]
    fn kernel_exec_denials_convert_with_rule_hook_and_inode() {
        let ev = kernel_event(
            "sh",
            Some(nono_common::Hook::BprmCheck),
            true,
            5,
            EventObject::Exec {
                binary: b"/opt/\xffbin/tool".to_vec(),
                argv: vec![b"tool".to_vec(), b"--api-key=abc".to_vec(), b"x".to_vec()],
                argv_truncated: false,
                binary_truncated: false,
                dev: (8 << 20) | 2,
                ino: 99,
            },
        );
        let row = AuditEvent::from_kernel(&ev, ClockOffset(0), |id| Some(format!("p.nono:{id}:1")))
            .into_row();
        assert_eq!((row.kind.as_str(), row.op.as_str()), ("exec", "exec"));
        assert!(row.denied);
        assert_eq!(row.rule_id, Some(5));
        assert_eq!(row.rule_source.as_deref(), Some("p.nono:5:1"));
        // Raw bytes in the object column, as a file path is.
        assert_eq!(row.object, b"/opt/\xffbin/tool");
        assert_eq!(
            row.detail.as_deref(),
            Some(
                r#"{"argv":["tool","--api-key=[REDACTED]","x"],"dev":"8:2","hook":"bprm_check_security","ino":99}"#
            )
        );
    }

    #[test]
    fn net_and_exec_rows() {
        let net = AuditEvent {
            time_ns: 1,
            pid: 1,
            process: "curl".into(),
            denied: true,
            rule_id: None,
            rule_source: None,
            what: What::Net {
                op: "connect".into(),
                addr: Some("::1".parse().unwrap()),
                port: 443,
                protocol: "tcp".into(),
                name: None,
            },
        }
        .into_row();
        assert_eq!(net.object, b"[::1]:443");
        assert_eq!(
            net.detail.as_deref(),
            Some(r#"{"addr":"::1","port":443,"protocol":"tcp"}"#)
        );
        // A name the proxy refused before resolving it: no address, the name in its place.
        let refused = AuditEvent {
            time_ns: 1,
            pid: 0,
            process: String::new(),
            denied: true,
            rule_id: None,
            rule_source: None,
            what: What::Net {
                op: "proxy".into(),
                addr: None,
                port: 443,
                protocol: "tcp".into(),
                name: Some("exfil.example.com".into()),
            },
        }
        .into_row();
        assert_eq!(refused.object, b"exfil.example.com:443");
        assert_eq!(
            refused.detail.as_deref(),
            Some(r#"{"name":"exfil.example.com","port":443,"protocol":"tcp"}"#)
        );
        let parsed: serde_json::Value =
            serde_json::from_str(refused.detail.as_deref().unwrap()).unwrap();
        assert_eq!(parsed["port"], 443);
        let exec = AuditEvent {
            what: What::Exec {
                binary: b"/bin/true".to_vec(),
                argv: vec!["true".into()],
                errno: Some(libc::EACCES),
                argv_truncated: false,
                binary_truncated: false,
                hook: None,
                inode: None,
            },
            ..AuditEvent {
                time_ns: 1,
                pid: 1,
                process: String::new(),
                denied: true,
                rule_id: None,
                rule_source: None,
                what: What::Landlock {
                    record: String::new(),
                },
            }
        }
        .into_row();
        assert!(exec.detail.unwrap().contains("\"errno\":13"));
    }
}
