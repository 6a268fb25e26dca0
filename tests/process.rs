//! Process and IPC threats (threat-cases.md 12 to 17).
//!
//! The "outside" processes are started by the test as the *same* user as the sandbox, so the
//! kernel's ordinary permission checks would allow every attack: only the sandbox stops them.
//! The unconfined control runs prove that where it's cheap.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::{Child, Stdio};
use std::time::Duration;

use nono_e2e::{as_root_and_nobody, wait_until, PtyChild, User, Watch, World, SYSTEM_PATH};

as_root_and_nobody!(
    case12_ptrace_of_nono_parent_and_outside_process_denied,
    case12_process_vm_readv_writev_denied,
    case13_signals_to_nono_parent_and_outside_process_denied,
    case13_broadcast_group_and_sigio_signals_denied,
    case14_abstract_unix_socket_of_host_denied,
    case14_path_unix_socket_outside_grants_denied,
    case15_tiocsti_terminal_injection_fails,
    case16_cgroup_escape_bpf_module_and_sysctl_denied,
    case17_background_survivor_stays_confined,
    resource_limits_of_nono_and_outside_processes_unchanged,
);

/// A `sleep 30` outside the sandbox, as the test's user; killed when dropped.
struct Sleeper(Child);

impl Sleeper {
    fn start(user: User) -> Sleeper {
        let mut c = user.command("sleep");
        c.arg("30")
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .stdin(Stdio::null());
        Sleeper(c.spawn().expect("spawn sleep"))
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn is_alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `prlimit` on another process needs only the same uid, and Landlock does not mediate it: the
/// command could shrink nono's limits (RLIMIT_FSIZE, RLIMIT_NOFILE) and break its audit and
/// rollback writes, or an outside process's. Setting them is refused (EPERM); reading them and
/// setting its own still work, and the limits read back unchanged.
fn resource_limits_of_nono_and_outside_processes_unchanged(user: User) {
    let w = World::new(user);
    let sleeper = Sleeper::start(user);
    let code = r#"
import resource
R = resource.RLIMIT_NOFILE
targets = [("sleeper", P["sleeper"])] + ([("nono", NONO_PID)] if NONO_PID else [])
for name, pid in targets:
    before = resource.prlimit(pid, R)
    attempt("set_" + name, lambda: resource.prlimit(pid, R, (3, 3)))
    show("unchanged_" + name, resource.prlimit(pid, R) == before)
soft, hard = resource.getrlimit(R)
attempt("set_own", lambda: resource.setrlimit(R, (min(soft, 64), hard)))
"#;
    let extra = serde_json::json!({ "sleeper": sleeper.pid() });
    let out = w.probe_with(&[] as &[&str], &extra, code);
    out.expect("set_sleeper", "EPERM")
        .expect("unchanged_sleeper", "True")
        .expect("set_nono", "EPERM")
        .expect("unchanged_nono", "True")
        .expect("set_own", "OK");
}

/// Case 12: attaching to the nono parent or to another process of the same user.
fn case12_ptrace_of_nono_parent_and_outside_process_denied(user: User) {
    let w = World::new(user);
    let mut sleeper = Sleeper::start(user);
    let code = r#"
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
def attach(pid):
    rc = libc.ptrace(PTRACE_ATTACH, pid, None, None)
    if rc == 0:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    return rc
if NONO_PID:
    call("attach_nono", lambda: attach(NONO_PID))
call("attach_sleeper", lambda: attach(P["sleeper"]))
"#;
    let extra = serde_json::json!({ "sleeper": sleeper.pid() });
    let out = w.probe_with(&[] as &[&str], &extra, code);
    out.expect("attach_nono", "EPERM")
        .expect("attach_sleeper", "EPERM");
    assert!(sleeper.is_alive());
    // Control: without the sandbox the same user may trace the sleeper (no Yama here).
    w.unconfined_probe(&extra, code)
        .expect("attach_sleeper", "OK");
}

/// Case 12: reading and writing another process's memory. The remote address is unmapped, so
/// an unblocked call would fail with EFAULT and never touch the target.
fn case12_process_vm_readv_writev_denied(user: User) {
    let w = World::new(user);
    let sleeper = Sleeper::start(user);
    let code = r#"
SYS_process_vm_readv, SYS_process_vm_writev = 310, 311
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
remote = iovec(0x1000, 8)
def vm(nr, pid):
    return libc.syscall(nr, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
for name, pid in [("nono", NONO_PID), ("sleeper", P["sleeper"])]:
    call("readv_" + name, lambda: vm(SYS_process_vm_readv, pid))
    call("writev_" + name, lambda: vm(SYS_process_vm_writev, pid))
"#;
    let extra = serde_json::json!({ "sleeper": sleeper.pid() });
    let out = w.probe_with(&[] as &[&str], &extra, code);
    for label in [
        "readv_nono",
        "writev_nono",
        "readv_sleeper",
        "writev_sleeper",
    ] {
        out.expect(label, "EPERM");
    }
    // Control: unconfined, the calls reach the target (and fail on the unmapped address).
    w.unconfined_probe(&extra, code)
        .expect("readv_sleeper", "EFAULT");
}

/// Case 13: signals leave the sandbox neither to the nono parent nor to another process.
/// SIGKILL, so a success would be unmistakable (the parent dies, the sleeper is gone).
fn case13_signals_to_nono_parent_and_outside_process_denied(user: User) {
    let w = World::new(user);
    let mut sleeper = Sleeper::start(user);
    let code = r#"
import signal
attempt("kill_sleeper", lambda: os.kill(P["sleeper"], signal.SIGKILL))
attempt("probe_sleeper", lambda: os.kill(P["sleeper"], 0))
if NONO_PID:
    attempt("kill_nono", lambda: os.kill(NONO_PID, signal.SIGKILL))
attempt("signal_self", lambda: os.kill(os.getpid(), 0))
"#;
    let extra = serde_json::json!({ "sleeper": sleeper.pid() });
    let out = w.probe_with(&[] as &[&str], &extra, code);
    out.expect("kill_sleeper", "EPERM")
        .expect("probe_sleeper", "EPERM")
        .expect("kill_nono", "EPERM")
        .expect("signal_self", "OK"); // signals inside the sandbox still work
    assert!(sleeper.is_alive(), "the outside process was killed");
    // Control: the same user may signal the sleeper without the sandbox.
    let control = r#"attempt("probe_sleeper", lambda: os.kill(P["sleeper"], 0))"#;
    w.unconfined_probe(&extra, control)
        .expect("probe_sleeper", "OK");
}

/// An outside process of `user`, in a process group of its own, that counts the SIGURGs it
/// gets between its start and [`Observer::finish`]. SIGURG is ignored by default (and
/// tolerated by runtimes that use it, such as Go's), so a broadcast test that failed would have
/// disturbed nothing else on the machine.
struct Observer {
    child: Child,
    pid: i32,
}

impl Observer {
    const SCRIPT: &'static str = r#"
import os, signal, sys, time
got = []
signal.signal(signal.SIGURG, lambda *a: got.append(1))
print(os.getpid(), flush=True)
sys.stdin.readline()
time.sleep(0.3)
print(len(got), flush=True)
"#;

    fn start(user: User) -> Observer {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut c = user.command(nono_e2e::PYTHON);
        c.args(["-I", "-c", Self::SCRIPT])
            .env_clear()
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = c.spawn().expect("spawn the observer");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .expect("the observer's pid");
        let pid = line.trim().parse().expect("a pid");
        Observer { child, pid }
    }

    /// How many SIGURGs arrived.
    fn finish(mut self) -> usize {
        use std::io::{Read, Write};
        let _ = writeln!(self.child.stdin.take().unwrap());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = self.child.wait();
        out.trim().parse().expect("the observer's count")
    }
}

/// Case 13, the indirect ways: `kill(-1)` (every process the caller may signal), `kill(-pgid)`
/// of an outside process group, and SIGIO from a descriptor whose owner (`F_SETOWN`) is an
/// outside process. `kill(-1)` returns 0 even when every target refused (EPERM is not
/// reported for a broadcast), so what counts is what arrived: an outside observer must get no
/// SIGURG, and an outside sleeper, which SIGIO's default action would end, must still run.
/// Controls without the sandbox: the observer gets the group signal, and SIGIO ends a sleeper.
fn case13_broadcast_group_and_sigio_signals_denied(user: User) {
    let w = World::new(user);
    let code = r#"
import fcntl, signal, time
attempt("kill_all", lambda: os.kill(-1, signal.SIGURG))
attempt("kill_group", lambda: os.killpg(P["pgid"], signal.SIGURG))
def sigio():
    r, wr = os.pipe()
    fcntl.fcntl(r, fcntl.F_SETOWN, P["sleeper"])
    fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
    os.write(wr, b"x")
    time.sleep(0.3)
attempt("sigio", sigio)
"#;
    let observer = Observer::start(user);
    let mut sleeper = Sleeper::start(user);
    let extra = serde_json::json!({ "sleeper": sleeper.pid(), "pgid": observer.pid });
    let out = w.probe_with(&[] as &[&str], &extra, code);
    out.expect("kill_all", "OK") // (a broadcast hides its refusals)
        .expect_one_of("kill_group", &["EPERM", "ESRCH"])
        .expect("sigio", "OK");
    assert_eq!(
        observer.finish(),
        0,
        "a SIGURG from inside reached the outside observer"
    );
    assert!(sleeper.is_alive(), "SIGIO reached the outside process");
    // Controls: the same user, unconfined.
    let observer = Observer::start(user);
    let mut target = Sleeper::start(user);
    let extra = serde_json::json!({ "sleeper": target.pid(), "pgid": observer.pid });
    // Not the broadcast: unconfined, it would reach every process of the user (all of them,
    // as root), other tests' observers among them.
    let control = code.replace(
        r#"attempt("kill_all", lambda: os.kill(-1, signal.SIGURG))"#,
        "",
    );
    w.unconfined_probe(&extra, &control)
        .expect("kill_group", "OK")
        .expect("sigio", "OK");
    assert_eq!(
        observer.finish(),
        1,
        "the control's signal did not arrive: the test proves nothing"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !target.is_alive()),
        "the control's SIGIO did not end the sleeper: the test proves nothing"
    );
}

/// Case 14: an abstract unix socket of the host (think D-Bus, X11), held by the test.
/// Landlock's abstract-unix scope answers EPERM; the listener must see no connection.
fn case14_abstract_unix_socket_of_host_denied(user: User) {
    let w = World::new(user);
    let name = format!("nono-e2e-{}", w.root.file_name().unwrap().to_string_lossy());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).expect("bind abstract socket");
    listener.set_nonblocking(true).unwrap();
    let code = r#"
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + P["name"])
    s.sendall(b"hello")
attempt("connect_abstract", connect)
"#;
    let extra = serde_json::json!({ "name": name });
    let out = w.probe_with(&[] as &[&str], &extra, code);
    out.expect("connect_abstract", "EPERM");
    assert!(
        listener.accept().is_err(),
        "the host's abstract socket received a connection"
    );
    // Control: unconfined, the connection goes through (then is dropped).
    w.unconfined_probe(&extra, code)
        .expect("connect_abstract", "OK");
}

/// Case 14: a path unix socket outside every grant (an ssh-agent or docker.sock stand-in).
/// Landlock up to ABI 7 does not control connecting to an existing path socket, so another
/// layer must; the errno is EACCES or EPERM depending on which.
fn case14_path_unix_socket_outside_grants_denied(user: User) {
    let w = World::new(user);
    let path = w.outside.join("agent.sock");
    let listener = UnixListener::bind(&path).expect("bind path socket");
    listener.set_nonblocking(true).unwrap();
    w.hand_over(&path);
    let code = r#"
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(P["outside"] + "/agent.sock")
    s.sendall(b"hello")
attempt("connect_agent", connect)
"#;
    let out = w.probe_with(&[] as &[&str], &serde_json::json!({}), code);
    out.expect_one_of("connect_agent", &["EACCES", "EPERM"]);
    assert!(
        listener.accept().is_err(),
        "the agent socket received a connection"
    );
    w.unconfined_probe(&serde_json::json!({}), code)
        .expect("connect_agent", "OK");
}

/// Case 15: `TIOCSTI` pushes characters into the terminal's input queue, to be run by the
/// shell once the agent exits. nono runs on a real pty here; the ioctl must fail and nothing
/// may become readable on the terminal.
fn case15_tiocsti_terminal_injection_fails(user: User) {
    let w = World::new(user);
    let cmd = w.probe_command(
        &[] as &[&str],
        &serde_json::json!({}),
        r#"
import fcntl, select, termios
show("isatty", os.isatty(0))
for i, ch in enumerate(b"id\n"):
    attempt("tiocsti_%d" % i, lambda: fcntl.ioctl(0, termios.TIOCSTI, bytes([ch])))
show("readable", bool(select.select([0], [], [], 0.2)[0]))
show("done", "yes")
"#,
    );
    let mut pty = PtyChild::spawn(cmd);
    pty.expect("done=yes", Duration::from_secs(30));
    let (status, output) = pty.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{output}");
    // Searched as substrings: an injected character would be echoed into the middle of a line.
    for expected in [
        "isatty=True",
        "tiocsti_0=EPERM",
        "tiocsti_1=EPERM",
        "tiocsti_2=EPERM",
    ] {
        assert!(
            output.contains(expected),
            "expected {expected}; terminal:\n{output}"
        );
    }
    assert!(
        output.contains("readable=False"),
        "input was injected into the terminal:\n{output}"
    );
}

/// Case 16: leaving the cgroup (open `cgroup.procs` of the root cgroup, and of a cgroup
/// delegated to the user, for writing), changing a sysctl (opened for writing only, never
/// written), loading a BPF program or a kernel module. The module image is garbage and the BPF
/// program a two-instruction socket filter, so an unblocked call does no harm.
fn case16_cgroup_escape_bpf_module_and_sysctl_denied(user: User) {
    let w = World::new(user);
    let cgroup_root = cgroup2_mount().expect("no cgroup2 mount in /proc/self/mountinfo");
    let code = r#"
attempt("cgroup_procs", lambda: os.close(os.open(P["cgroup"] + "/cgroup.procs", os.O_WRONLY)))
attempt("sysctl", lambda: os.close(os.open("/proc/sys/kernel/hostname", os.O_WRONLY)))
insns = bytes([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit
insn_buf = ctypes.create_string_buffer(insns, len(insns))
license = ctypes.create_string_buffer(b"GPL")
attr = ctypes.create_string_buffer(128)
ctypes.memmove(attr, (ctypes.c_uint32 * 2)(1, 2), 8)  # SOCKET_FILTER, 2 insns
ctypes.memmove(ctypes.byref(attr, 8), (ctypes.c_uint64 * 2)(ctypes.addressof(insn_buf), ctypes.addressof(license)), 16)
SYS_bpf, BPF_PROG_LOAD, SYS_init_module = 321, 5, 175
def bpf():
    fd = libc.syscall(SYS_bpf, BPF_PROG_LOAD, attr, 128)
    if fd >= 0:
        os.close(fd)
        return 0
    return -1
call("bpf_prog_load", bpf)
image = ctypes.create_string_buffer(b"\0" * 64)
call("init_module", lambda: libc.syscall(SYS_init_module, image, 64, b""))
"#;
    // A cgroup delegated to the test's user (its directory and `cgroup.procs` are the user's,
    // as systemd delegates them): the user may move processes into it, so only the sandbox
    // stops the command (the control below opens it).
    let delegated = std::path::Path::new(&cgroup_root).join(format!(
        "nono-e2e-delegated-{}-{}",
        std::process::id(),
        w.root.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir(&delegated).expect("create the delegated cgroup");
    let uid = match user {
        User::Root => 0,
        User::Nobody => 65534,
    };
    for p in [delegated.clone(), delegated.join("cgroup.procs")] {
        std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
    }
    let code = format!(
        "{code}\nattempt(\"delegated_procs\", lambda: os.close(os.open(P[\"delegated\"] + \"/cgroup.procs\", os.O_WRONLY)))\n"
    );
    let extra = serde_json::json!({ "cgroup": cgroup_root, "delegated": delegated });
    let out = w.probe_with(&[] as &[&str], &extra, &code);
    let control = w.unconfined_probe(
        &extra,
        r#"attempt("delegated_procs", lambda: os.close(os.open(P["delegated"] + "/cgroup.procs", os.O_WRONLY)))"#,
    );
    let _ = std::fs::remove_dir(&delegated);
    out.expect("cgroup_procs", "EACCES")
        .expect("delegated_procs", "EACCES")
        .expect("sysctl", "EACCES")
        .expect("bpf_prog_load", "EPERM")
        .expect("init_module", "EPERM");
    control.expect("delegated_procs", "OK");
}

fn cgroup2_mount() -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("cgroup2"))
            .then(|| left.split(' ').nth(4).unwrap().to_string())
    })
}

/// Case 17: a daemonised grandchild (`setsid`, in the background), started directly and by a
/// double fork, outlives the sandboxed command. While the command still runs it tries to copy
/// the key into the workspace: denied, it is as confined as the command. When the command
/// exits, nono (a child subreaper, so orphans are re-parented to it) kills every survivor
/// before it exits itself: the grandchild never reaches its second step, and is gone by the
/// time `nono run` returns.
fn case17_background_survivor_stays_confined(user: User) {
    for (shape, spawn) in [
        (
            "setsid &",
            "setsid sh -c 'SURVIVOR' </dev/null >/dev/null 2>&1 &",
        ),
        (
            "double fork",
            "( setsid sh -c 'SURVIVOR' </dev/null >/dev/null 2>&1 & ) ; :",
        ),
    ] {
        let w = World::new(user);
        let watch = Watch::new(&[w.key()]);
        let work = w.work.display().to_string();
        let survivor = format!(
            "echo $$ > {work}/survivor-pid; cat {key} > {work}/leak 2> {work}/leak.err; \
             echo $? > {work}/tried; sleep 3; echo > {work}/survived",
            key = w.key().display()
        );
        // (The survivor's script has no single quote.)
        let script = format!(
            "{}\nwhile [ ! -s {work}/tried ]; do sleep 0.01; done; exit 0",
            spawn.replace("SURVIVOR", &survivor)
        );
        let out = nono_e2e::run(&mut w.sandbox(&[] as &[&str], &["/bin/sh", "-c", &script]));
        assert_eq!(out.code(), Some(0), "{shape}: {}", out.describe());
        let pid: i32 = std::fs::read_to_string(w.work.join("survivor-pid"))
            .expect("survivor-pid")
            .trim()
            .parse()
            .expect("a pid");
        // SAFETY: kill(pid, 0) only checks for existence.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        assert!(gone, "{shape}: survivor {pid} still runs after nono exited");
        let leak = std::fs::read_to_string(w.work.join("leak")).unwrap_or_default();
        assert!(
            !leak.contains("nono-e2e-fake-key"),
            "{shape}: the survivor read the key"
        );
        let err = std::fs::read_to_string(w.work.join("leak.err")).unwrap_or_default();
        assert!(
            err.contains("Permission denied"),
            "{shape}: survivor's error: {err:?}"
        );
        assert!(
            !w.work.join("survived").exists(),
            "{shape}: the survivor outlived the command"
        );
        watch.assert_unchanged();
    }
}
