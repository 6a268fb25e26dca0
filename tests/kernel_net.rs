//! The kernel layer's network part in `nono run`, natively on this host (as root): the cgroup
//! socket programs enforce addresses, UDP and the metadata address, which Landlock can't, and
//! each run's cgroup and map entries are removed after exit and after `kill -9` of nono.
//!
//! These tests need root and a kernel that accepts cgroup socket programs (the CI host does,
//! although it refuses BPF LSM programs); they fail rather than skip otherwise, because a
//! skipped test proves nothing. BPF LSM enforcement is tested in the VM lab (`lab/`).
//!
//! Every packet goes to loopback, or to an address the test assigns inside a network namespace
//! it creates: a bug must never turn into real traffic. A denial by the cgroup programs is
//! EPERM; each case is built so that Landlock alone would have allowed it (same port, another
//! address or protocol), so EPERM there is the kernel layer's doing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nono_e2e::{
    assert_no_datagram, assert_no_tcp_connection, nono_bin, run, tcp_listener, udp_listener,
    wait_until, Finished, Netns, User, World,
};

const CONNECT: &str = r#"
def connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    s.sendall(b"hello")
    s.close()
def sendto(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"datagram", (host, port))
    s.close()
"#;

/// One test at a time: the ring buffer is shared by all sandboxes and each run's reader (every
/// run reads it now, for the audit trail) discards the events of other sandboxes, so a run
/// next to another may miss its own deny event (known limit, see `nono/src/kernel/events.rs`).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn port(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

fn assert_got_connection(listener: &TcpListener) {
    let ok = wait_until(Duration::from_secs(5), || listener.accept().is_ok());
    assert!(
        ok,
        "the allowed connection to {} never arrived",
        listener.local_addr().unwrap()
    );
}

/// A profile over `default` with these network CIDR rules.
fn cidr_profile(w: &World, name: &str, cidrs: serde_json::Value) -> String {
    w.profile_file(
        name,
        &serde_json::json!({
            "extends": ["default"],
            "network": { "cidrs": cidrs }
        }),
    )
    .display()
    .to_string()
}

/// A profile over `default` allowing TCP to 127.0.0.2 on `port` only.
fn tcp_rule_profile(w: &World, name: &str, port: u16) -> String {
    cidr_profile(
        w,
        name,
        serde_json::json!([{ "cidr": "127.0.0.2/32", "protocol": "tcp", "ports": [port] }]),
    )
}

/// `nono run -v --profile PROFILE -- /bin/true`, which must succeed with the network part.
fn run_true(w: &World, profile: &str) -> Finished {
    let out = run(&mut w.sandbox(&["-v", "--profile", profile], &["/bin/true"]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_net_part_active(&out);
    out
}

/// The run must have had the network part: `-v` says which parts are active.
fn assert_net_part_active(out: &Finished) {
    assert!(
        out.stderr.contains("cgroup-sock network: active"),
        "the kernel layer's network part did not load (root and cgroup v2 needed)\n{}",
        out.describe()
    );
}

/// `kernel layer: sandbox ID in cgroup PATH`, from `-v`.
fn sandbox_of(stderr: &str) -> Option<(u32, PathBuf)> {
    stderr.lines().find_map(|l| {
        let rest = l.split("kernel layer: sandbox ").nth(1)?;
        let (id, cg) = rest.split_once(" in cgroup ")?;
        Some((id.trim().parse().ok()?, PathBuf::from(cg.trim())))
    })
}

fn kernel_status() -> String {
    let out = Command::new(nono_bin())
        .arg("kernel-status")
        .output()
        .expect("run nono kernel-status");
    assert!(out.status.success(), "nono kernel-status failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of sandbox `id` is left: no cgroup, no registry record, no map entry.
fn assert_nothing_left(id: u32, cgroup: &Path) {
    assert!(
        !cgroup.exists(),
        "the sandbox cgroup {} is left behind",
        cgroup.display()
    );
    let record = Path::new("/run/nono/sandboxes").join(id.to_string());
    assert!(!record.exists(), "{} is left behind", record.display());
    let status = kernel_status();
    assert!(
        !status.contains(&format!("sandbox.{id}=")),
        "map entries of sandbox {id} are left behind:\n{status}"
    );
}

/// Two TCP listeners on one port: on 127.0.0.1 (the address no rule names) and on 127.0.0.2
/// (the one a test's rule allows), so only the address tells them apart.
fn same_port_listeners() -> (TcpListener, TcpListener, u16) {
    let other_addr = tcp_listener();
    let p = port(&other_addr);
    let allowed = TcpListener::bind(("127.0.0.2", p)).expect("bind 127.0.0.2");
    allowed.set_nonblocking(true).unwrap();
    (other_addr, allowed, p)
}

/// A CIDR rule binds the address: `127.0.0.2/32 tcp port P` lets 127.0.0.2:P through and
/// denies 127.0.0.1:P with EPERM, which Landlock (ports only) would have allowed. Without the
/// kernel layer this profile is refused; with its network part it runs without
/// `--best-effort`, and `-v` prints the denial with the default rule. The command is born in
/// the sandbox cgroup (`clone3(CLONE_INTO_CGROUP)`): its `/proc/self/cgroup` is the one `-v`
/// names ([`tcp_rule_probe`]).
#[test]
fn tcp_address_rule_is_enforced_by_the_cgroup_programs() {
    let (out, p) = tcp_rule_probe(None);
    let event = out
        .stderr
        .lines()
        .find(|l| l.contains("deny connect4"))
        .unwrap_or_else(|| panic!("no deny event\n{}", out.describe()));
    assert!(
        event.contains("rule=default")
            && event.contains("addr=127.0.0.1")
            && event.contains(&format!("port={p}")),
        "wrong event: {event}"
    );
    assert!(
        out.stderr.contains("nono: kernel: dropped events: "),
        "no drop counter\n{}",
        out.describe()
    );
}

/// UDP by address and port: the allowed port receives the datagram, another port on the same
/// address gets EPERM and nothing arrives. Landlock can't filter UDP at all: without the kernel
/// layer nono refuses this profile (seccomp could only open every UDP destination).
#[test]
fn udp_rule_is_enforced_by_address_and_port() {
    let _serial = serial();
    let w = World::new(User::Root);
    let allowed = udp_listener();
    let other = udp_listener();
    let a = allowed.local_addr().unwrap().port();
    let o = other.local_addr().unwrap().port();
    let profile = cidr_profile(
        &w,
        "net-udp",
        serde_json::json!([{ "cidr": "127.0.0.1/32", "protocol": "udp", "ports": [a] }]),
    );
    let code = format!(
        r#"{CONNECT}
attempt("allowed", lambda: sendto("127.0.0.1", P["a"]))
attempt("other_port", lambda: sendto("127.0.0.1", P["o"]))
# UDP is open to seccomp now (the programs check each send); nothing else on inet is, since
# the programs would not see it: ICMP echo ("ping") sockets, UDP-Lite, SCTP.
attempt("ping_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
attempt("udplite_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 136))
attempt("sctp_socket", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM, 132))
"#
    );
    let out = w.probe_with(
        &["-v", "--profile", &profile],
        &serde_json::json!({ "a": a, "o": o }),
        &code,
    );
    assert_net_part_active(&out);
    out.expect("allowed", "OK").expect("other_port", "EPERM");
    out.expect("ping_socket", "EPERM")
        .expect("udplite_socket", "EPERM")
        .expect("sctp_socket", "EPERM");
    let mut buf = [0u8; 64];
    let got = wait_until(Duration::from_secs(5), || {
        allowed.recv_from(&mut buf).is_ok()
    });
    assert!(got, "the allowed datagram never arrived");
    assert_no_datagram(&other);
    assert!(
        out.stderr.contains("deny sendmsg4"),
        "no sendmsg4 deny event\n{}",
        out.describe()
    );
}

/// IPv4-mapped destinations on a dual-stack socket (`::ffff:a.b.c.d`, what Java and other
/// AF_INET6-only runtimes use to reach IPv4 hosts) are judged by the IPv4 rules: the kernel
/// sends them as IPv4 packets, so an IPv4 CIDR rule allows them and everything else it does
/// not allow stays denied, for TCP connect and UDP send alike.
#[test]
fn ipv4_mapped_destinations_follow_the_ipv4_rules() {
    let _serial = serial();
    let w = World::new(User::Root);
    let (other_addr, allowed, p) = same_port_listeners();
    let udp_allowed = udp_listener();
    let udp_other = udp_listener();
    let a = udp_allowed.local_addr().unwrap().port();
    let o = udp_other.local_addr().unwrap().port();
    let profile = cidr_profile(
        &w,
        "net-mapped",
        serde_json::json!([
            { "cidr": "127.0.0.2/32", "protocol": "tcp", "ports": [p] },
            { "cidr": "127.0.0.1/32", "protocol": "udp", "ports": [a] }
        ]),
    );
    let code = format!(
        r#"{CONNECT}
def sendto6(host, port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.sendto(b"datagram", (host, port))
    s.close()
attempt("mapped_allowed", lambda: connect("::ffff:127.0.0.2", P["p"]))
attempt("mapped_other_addr", lambda: connect("::ffff:127.0.0.1", P["p"]))
attempt("mapped_udp_allowed", lambda: sendto6("::ffff:127.0.0.1", P["a"]))
attempt("mapped_udp_other_port", lambda: sendto6("::ffff:127.0.0.1", P["o"]))
"#
    );
    let out = w.probe_with(
        &["-v", "--profile", &profile],
        &serde_json::json!({ "p": p, "a": a, "o": o }),
        &code,
    );
    assert_net_part_active(&out);
    out.expect("mapped_allowed", "OK")
        .expect("mapped_other_addr", "EPERM")
        .expect("mapped_udp_allowed", "OK")
        .expect("mapped_udp_other_port", "EPERM");
    assert_got_connection(&allowed);
    assert_no_tcp_connection(&other_addr);
    let mut buf = [0u8; 64];
    let got = wait_until(Duration::from_secs(5), || {
        udp_allowed.recv_from(&mut buf).is_ok()
    });
    assert!(got, "the allowed mapped datagram never arrived");
    assert_no_datagram(&udp_other);
    let event = out
        .stderr
        .lines()
        .find(|l| l.contains("deny connect6"))
        .unwrap_or_else(|| panic!("no connect6 deny event\n{}", out.describe()));
    assert!(
        event.contains("rule=default") && event.contains("127.0.0.1"),
        "wrong event: {event}"
    );
}

/// The cloud metadata address is denied even under a rule that covers every IPv4 address, and
/// reachable when a rule names it. The address lives on the loopback of a namespace the test
/// creates; nothing is sent to it from the host's namespace.
#[test]
fn metadata_address_is_denied_unless_named() {
    let _serial = serial();
    let w = World::new(User::Root);
    let ns = Netns::new("metadata", &["169.254.169.254/32"]);
    // The listener is bound by a thread that entered the namespace.
    let listener = ns.run(|| {
        let l = TcpListener::bind("169.254.169.254:8080").expect("bind in the netns");
        l.set_nonblocking(true).unwrap();
        l
    });
    let code = format!(
        r#"{CONNECT}
attempt("metadata", lambda: connect("169.254.169.254", 8080))
"#
    );
    // Every IPv4 and IPv6 address on the port: neither opens the metadata address, also not in
    // its IPv4-mapped form on a dual-stack socket (IPv4 traffic, so the IPv4 denies apply).
    let broad_code = format!(
        r#"{code}
attempt("metadata_mapped", lambda: connect("::ffff:169.254.169.254", 8080))
"#
    );
    let broad = cidr_profile(
        &w,
        "net-broad",
        serde_json::json!([
            { "cidr": "0.0.0.0/0", "protocol": "tcp", "ports": [8080] },
            { "cidr": "::/0", "protocol": "tcp", "ports": [8080] }
        ]),
    );
    let mut cmd = ns.command(&w.probe_command(
        &["-v", "--profile", &broad],
        &serde_json::json!({}),
        &broad_code,
    ));
    let out = run(&mut cmd);
    assert_net_part_active(&out);
    out.expect("metadata", "EPERM")
        .expect("metadata_mapped", "EPERM");
    assert_no_tcp_connection(&listener);

    let named = cidr_profile(
        &w,
        "net-metadata",
        serde_json::json!([{ "cidr": "169.254.169.254/32", "protocol": "tcp", "ports": [8080] }]),
    );
    let mut cmd =
        ns.command(&w.probe_command(&["-v", "--profile", &named], &serde_json::json!({}), &code));
    let out = run(&mut cmd);
    out.expect("metadata", "OK");
    assert_got_connection(&listener);
    drop(ns);
}

/// A probe under `127.0.0.2/32 tcp port P`, with `clone3` answering `clone3_errno` to nono
/// when given: it runs in the cgroup `-v` names (its `/proc/self/cgroup`), and that cgroup's
/// programs let 127.0.0.2:P through and deny 127.0.0.1:P (EPERM), which Landlock (ports only)
/// would have allowed. Returns the run and P.
fn tcp_rule_probe(clone3_errno: Option<i32>) -> (nono_e2e::Finished, u16) {
    let _serial = serial();
    let w = World::new(User::Root);
    let (other_addr, allowed, p) = same_port_listeners();
    let profile = tcp_rule_profile(&w, "net-addr", p);
    let code = format!(
        r#"{CONNECT}
print("CGROUP " + [l for l in open("/proc/self/cgroup").read().splitlines() if l.startswith("0::")][0][3:])
attempt("allowed", lambda: connect("127.0.0.2", P["p"]))
attempt("other_addr", lambda: connect("127.0.0.1", P["p"]))
"#
    );
    let mut cmd = w.probe_command(
        &["-v", "--profile", &profile],
        &serde_json::json!({ "p": p }),
        &code,
    );
    if let Some(errno) = clone3_errno {
        let rules = [(libc::SYS_clone3, vec![])].into_iter().collect();
        let filter = seccompiler::SeccompFilter::new(
            rules,
            seccompiler::SeccompAction::Allow,
            seccompiler::SeccompAction::Errno(errno as u32),
            std::env::consts::ARCH
                .try_into()
                .expect("an architecture seccompiler knows"),
        )
        .unwrap();
        let program: seccompiler::BpfProgram = filter.try_into().unwrap();
        // SAFETY: the closure makes one system call on a program built before the fork.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                let fprog = libc::sock_fprog {
                    len: program.len() as u16,
                    filter: program.as_ptr() as *mut libc::sock_filter,
                };
                // Root needs no `no_new_privs` for a filter; nono itself must run as usual.
                if libc::syscall(libc::SYS_seccomp, 1, 0, &fprog as *const libc::sock_fprog) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = nono_e2e::spawn(&mut cmd);
    let pid = child.id();
    let _ = writeln!(child.stdin.take().expect("piped stdin"), "{pid}");
    let out = nono_e2e::wait_with_timeout(child, Duration::from_secs(60));
    assert_net_part_active(&out);
    let (_, cgroup) = sandbox_of(&out.stderr)
        .unwrap_or_else(|| panic!("-v did not name the sandbox\n{}", out.describe()));
    let inside = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("CGROUP "))
        .unwrap_or_else(|| panic!("the probe did not print its cgroup\n{}", out.describe()));
    assert!(
        inside.starts_with("/nono-") && cgroup.ends_with(inside.trim_start_matches('/')),
        "the command ran in cgroup {inside}, not the sandbox's {}\n{}",
        cgroup.display(),
        out.describe()
    );
    out.expect("allowed", "OK").expect("other_addr", "EPERM");
    assert_got_connection(&allowed);
    assert_no_tcp_connection(&other_addr);
    (out, p)
}

/// Where `clone3` answers ENOSYS (Docker's seccomp profile), the child writes itself into the
/// cgroup instead: same cgroup, same enforcement. (A profile answering EPERM breaks glibc's
/// `pthread_create`, which falls back to `clone` only on ENOSYS: nono can't start there at
/// all, nor can most threaded programs.)
#[test]
fn without_clone3_the_command_still_runs_in_the_sandbox_cgroup() {
    tcp_rule_probe(Some(libc::ENOSYS));
}

/// Issue 4's lifecycle: the programs are loaded and pinned once, and a run only adds and removes
/// its own map entries. Traced with strace, a run after the first creates no BPF object: no
/// program, BTF or map load, no link (aya's kernel feature probes, five throwaway programs and
/// three maps, ran in every root run until the pinned programs were opened without it), while
/// it does attach the pinned socket programs to its cgroup.
#[test]
fn a_run_loads_nothing_once_the_layer_is_pinned() {
    let _serial = serial();
    let w = World::new(User::Root);
    let profile = tcp_rule_profile(&w, "net-pinned", 9);
    run_true(&w, &profile);
    let args = ["-v", "--profile", profile.as_str()];

    let trace = w.root.join("bpf.trace");
    let plain = w.sandbox(&args, &["/bin/true"]);
    let trace_arg = trace.display().to_string();
    let mut traced = nono_e2e::behind(
        [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=bpf",
            "-o",
            trace_arg.as_str(),
        ],
        &plain,
    );
    let out = run(&mut traced);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_net_part_active(&out);
    let calls = std::fs::read_to_string(&trace).expect("the strace output");
    assert!(
        calls.contains("BPF_PROG_ATTACH"),
        "the traced run attached no program: is the trace real?\n{calls}"
    );
    for creation in [
        "BPF_PROG_LOAD",
        "BPF_BTF_LOAD",
        "BPF_MAP_CREATE",
        "BPF_LINK_CREATE",
    ] {
        let found: Vec<&str> = calls.lines().filter(|l| l.contains(creation)).collect();
        assert!(
            found.is_empty(),
            "a run after the first must not call {creation}:\n{}",
            found.join("\n")
        );
    }
    // The layer's handles and the sandbox's own: a map pin opened more often is a set of
    // handles opened for nothing (each open is an `OBJ_GET` and an `OBJ_GET_INFO_BY_FD`).
    // Counted per pin path: the start also looks once into other builds' pins, if any.
    let mut opens = std::collections::HashMap::<&str, usize>::new();
    for line in calls.lines().filter(|l| l.contains("BPF_OBJ_GET,")) {
        if let Some(path) = line
            .split("pathname=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .filter(|path| path.ends_with("/maps/NONO_SANDBOXES"))
        {
            *opens.entry(path).or_default() += 1;
        }
    }
    assert_eq!(
        opens.values().max(),
        Some(&2),
        "the sandbox map's pin should be opened twice (the layer's handles, the sandbox's): \
         {opens:?}\n{calls}"
    );
}

/// When a run ends, only its word of the programs' cgroup filter is rewritten, from the cgroups
/// still registered. A sandbox still running must keep its bit whatever word it is in (sandbox
/// cgroups made one after the other often share a word): without it the programs would take
/// its tasks for outside ones and its network rules would stop applying. Sandbox A waits while
/// B starts and ends, then connects: the address no rule names is still EPERM, the one its rule
/// names still connects.
#[test]
fn a_live_sandbox_stays_enforced_after_another_ends() {
    let _serial = serial();
    let w = World::new(User::Root);
    let (other_addr, allowed, p) = same_port_listeners();
    let profile = tcp_rule_profile(&w, "net-live", p);
    let (ready, go) = (w.work.join("a-ready"), w.work.join("a-go"));
    let code = format!(
        r#"{CONNECT}
import time
open(P["ready"], "w").close()
deadline = time.time() + 60
while not os.path.exists(P["go"]) and time.time() < deadline:
    time.sleep(0.02)
attempt("allowed", lambda: connect("127.0.0.2", P["p"]))
attempt("other_addr", lambda: connect("127.0.0.1", P["p"]))
"#
    );
    let mut cmd = w.probe_command(
        &["-v", "--profile", &profile],
        &serde_json::json!({ "p": p, "ready": ready, "go": go }),
        &code,
    );
    cmd.stdin(Stdio::piped());
    let mut a = nono_e2e::spawn(&mut cmd);
    let pid = a.id();
    let _ = writeln!(a.stdin.take().expect("piped stdin"), "{pid}");
    assert!(
        wait_until(Duration::from_secs(30), || ready.exists()),
        "sandbox A never started"
    );

    let b = run_true(&w, &profile);
    let (b_id, b_cgroup) = sandbox_of(&b.stderr)
        .unwrap_or_else(|| panic!("-v did not name sandbox B\n{}", b.describe()));
    assert_nothing_left(b_id, &b_cgroup);

    std::fs::write(&go, "").expect("writing the go file");
    let out = nono_e2e::wait_with_timeout(a, Duration::from_secs(60));
    assert_net_part_active(&out);
    out.expect("allowed", "OK").expect("other_addr", "EPERM");
    assert_got_connection(&allowed);
    assert_no_tcp_connection(&other_addr);
}

/// After the command exits, the run's cgroup, registry record and map entries are gone.
#[test]
fn nothing_is_left_after_exit() {
    let _serial = serial();
    let w = World::new(User::Root);
    let profile = tcp_rule_profile(&w, "net-cleanup", 9);
    let out = run_true(&w, &profile);
    let (id, cgroup) = sandbox_of(&out.stderr)
        .unwrap_or_else(|| panic!("-v did not name the sandbox\n{}", out.describe()));
    assert_nothing_left(id, &cgroup);
}

/// `kill -9` of nono: its command dies with it (parent-death signal), the cgroup and map
/// entries stay until the next `nono run`, which removes them.
#[test]
fn kill_9_leftovers_are_reaped_by_the_next_run() {
    let _serial = serial();
    let w = World::new(User::Root);
    let profile = tcp_rule_profile(&w, "net-kill9", 9);
    let mut cmd = w.sandbox(
        &["-v", "--profile", &profile],
        &["/bin/sh", "-c", "echo started; exec sleep 60"],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn nono");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(found) = sandbox_of(&line) {
                let _ = tx.send(found);
            }
        }
    });
    let (id, cgroup) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("-v never named the sandbox");
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    stdout
        .read_exact(&mut first)
        .expect("the command never started");
    assert_eq!(&first, b"started\n");
    let procs = cgroup.join("cgroup.procs");
    let inside = std::fs::read_to_string(&procs).unwrap_or_default();
    assert!(
        !inside.trim().is_empty(),
        "the command is not in the sandbox cgroup {}",
        cgroup.display()
    );
    child.kill().expect("kill -9 nono");
    let _ = child.wait();
    // Something must be left, or this test proves nothing.
    assert!(cgroup.exists(), "nothing left to clean after kill -9");
    // (Its map entries can't be listed here without sweeping them: `kernel-status` loads the
    // layer, and loading sweeps. The registry record is written before any entry.)
    let record = Path::new("/run/nono/sandboxes").join(id.to_string());
    assert!(record.exists(), "the killed run left no registry record");
    // The command died with nono.
    let emptied = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&procs)
            .map(|s| s.trim().is_empty())
            .unwrap_or(true)
    });
    assert!(emptied, "the command outlived nono's kill -9");
    let next = run(&mut w.sandbox(&["--profile", &profile], &["/bin/true"]));
    assert_eq!(next.code(), Some(0), "{}", next.describe());
    assert_nothing_left(id, &cgroup);
}
