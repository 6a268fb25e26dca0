//! Shared helpers for the end-to-end tests.
//!
//! Every test drives the real `nono` binary on this machine's real kernel. A test builds a
//! [`World`]: its own temporary tree with a fake `$HOME` (planted `~/.ssh/id_rsa`,
//! `~/.aws/credentials`), a workspace granted read-write, a project granted read-only and
//! another project outside every grant. It then runs a probe inside the sandbox and asserts
//! both the errno the probe saw and that the target is unchanged.
//!
//! Probes are Python snippets run with the system interpreter ([`PYTHON`]): it reports the
//! exact errno of every attempted operation (`label=EACCES`), which a shell cannot do.
//!
//! Every case runs twice, as root and as an unprivileged user (uid/gid 65534, dropped with
//! `setpriv` in front of `nono`), see [`as_root_and_nobody!`].

pub mod egress_support;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// The system Python. Not `python3` from `PATH`: on developer machines that is often a pyenv
/// shim under `$HOME`, which the sandbox (rightly) cannot execute. `/usr/bin` is a system
/// directory the default profile grants read and exec on.
pub const PYTHON: &str = "/usr/bin/python3";

/// The unprivileged user the "nobody" variant of each case runs as.
pub const NOBODY: u32 = 65534;

/// How long any single `nono` invocation may take before the test fails (a hang is a bug).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The `PATH` given to the sandbox: system directories only.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Content planted in the fake private key; a probe that prints it has read the key.
pub const FAKE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nnono-e2e-fake-key\n";

/// The workspace root of this repository (`tests/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `nono` binary under test: `$NONO_BIN`, else `<workspace>/target/debug/nono`.
///
/// Panics with instructions when it is missing: a missing binary must fail the suite loudly,
/// never skip it.
pub fn nono_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = match std::env::var_os("NONO_BIN") {
            Some(p) => PathBuf::from(p),
            None => workspace_root().join("target/debug/nono"),
        };
        if !bin.is_file() {
            panic!(
                "the nono binary was not found at {}.\n\
                 Build it first: `cargo build -p nono` (then `cargo test -p nono-e2e`),\n\
                 or point NONO_BIN at a binary.",
                bin.display()
            );
        }
        // The unprivileged variant runs the binary as uid 65534: every directory above it
        // must be traversable by others.
        let mut dir = bin.parent();
        while let Some(d) = dir {
            let mode = fs::metadata(d).map(|m| m.mode()).unwrap_or(0);
            assert!(
                mode & 0o001 != 0,
                "{} is not traversable by other users (mode {:o}); uid {NOBODY} can't run {}.\n\
                 Run `chmod o+x {}` or set NONO_BIN to a binary in a world-traversable place.",
                d.display(),
                mode & 0o7777,
                bin.display(),
                d.display()
            );
            dir = d.parent();
        }
        bin
    })
    .clone()
}

/// Where test trees are created. Deliberately not under `/tmp`: a profile may grant
/// `$TMPDIR/**` or `/tmp/**`, which would make "outside every grant" untrue.
fn scratch_base() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = match std::env::var_os("NONO_E2E_TMPDIR") {
            Some(p) => PathBuf::from(p),
            None => workspace_root().join("target/nono-e2e"),
        };
        fs::create_dir_all(&base).expect("create the scratch base directory");
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod scratch base");
        base
    })
    .clone()
}

// ---------------------------------------------------------------------------------------------
// Users

/// Who runs `nono`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Root,
    /// uid/gid 65534 with no supplementary groups: a user running nono without root.
    Nobody,
}

impl User {
    pub fn uid(self) -> u32 {
        match self {
            User::Root => 0,
            User::Nobody => NOBODY,
        }
    }

    /// A command that runs `program` as this user.
    pub fn command(self, program: impl AsRef<OsStr>) -> Command {
        match self {
            User::Root => Command::new(program),
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
                c.arg(program);
                c
            }
        }
    }
}

/// Generates `NAME::as_root` and `NAME::as_nobody` tests calling `fn NAME(user: User)`.
#[macro_export]
macro_rules! as_root_and_nobody {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn as_root() {
                    super::$name($crate::User::Root)
                }
                #[test]
                fn as_nobody() {
                    super::$name($crate::User::Nobody)
                }
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// The per-test world

/// One test's private file tree. Dropped at the end of the test.
pub struct World {
    pub user: User,
    _dir: tempfile::TempDir,
    /// The root of the tree; nothing in it is granted by itself.
    pub root: PathBuf,
    /// `$HOME`, with `.ssh/id_rsa`, `.aws/credentials` and `.config/app/settings`.
    pub home: PathBuf,
    /// The workspace: `--allow` (read-write) and `--workdir`.
    pub work: PathBuf,
    /// A project granted read-only with `--read`; has `.git/hooks/` and `README`.
    pub ro: PathBuf,
    /// Another project outside every grant; has `secret.txt`.
    pub outside: PathBuf,
    /// `$TMPDIR` of the sandbox (its own directory, so a `$TMPDIR` grant covers only it).
    pub tmp: PathBuf,
}

impl World {
    pub fn new(user: User) -> World {
        let dir = tempfile::Builder::new()
            .prefix("w-")
            .tempdir_in(scratch_base())
            .expect("create the test tree");
        let root = dir.path().to_path_buf();
        let w = World {
            user,
            home: root.join("home"),
            work: root.join("work"),
            ro: root.join("ro"),
            outside: root.join("outside"),
            tmp: root.join("tmp"),
            root,
            _dir: dir,
        };
        for d in [&w.home, &w.work, &w.ro, &w.outside, &w.tmp] {
            fs::create_dir(d).expect("mkdir");
        }
        // Where nono keeps its audit trail ($XDG_STATE_HOME/nono), as on any real system; a
        // run then adds `nono/` below it, never an entry of $HOME that a test watches.
        fs::create_dir_all(w.home.join(".local/state")).expect("mkdir ~/.local/state");
        w.write(&w.key(), FAKE_KEY);
        fs::set_permissions(w.home.join(".ssh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(w.key(), fs::Permissions::from_mode(0o600)).unwrap();
        w.write(
            &w.aws_credentials(),
            "[default]\naws_secret_access_key = nono-e2e-fake\n",
        );
        w.write(&w.home.join(".config/app/settings"), "token = nono-e2e\n");
        w.write(&w.work.join("notes.txt"), "workspace notes\n");
        w.write(&w.ro.join("README"), "read-only project\n");
        w.write(&w.ro.join(".git/config"), "[core]\n");
        fs::create_dir_all(w.ro.join(".git/hooks")).unwrap();
        w.write(&w.secret(), "another project's secret\n");
        fs::set_permissions(&w.root, fs::Permissions::from_mode(0o755)).unwrap();
        w.hand_over(&w.root);
        w
    }

    /// `~/.ssh/id_rsa`.
    pub fn key(&self) -> PathBuf {
        self.home.join(".ssh/id_rsa")
    }
    /// `~/.aws/credentials`.
    pub fn aws_credentials(&self) -> PathBuf {
        self.home.join(".aws/credentials")
    }
    /// A file of another project, outside every grant.
    pub fn secret(&self) -> PathBuf {
        self.outside.join("secret.txt")
    }

    /// Writes `content` to `path`, creating parents, and gives it to the test's user.
    pub fn write(&self, path: &Path, content: impl AsRef<[u8]>) -> PathBuf {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir -p");
        }
        fs::write(path, content).expect("write file");
        self.hand_over(path);
        path.to_path_buf()
    }

    /// Chowns `path` (recursively, never following symlinks) to the test's user, so that an
    /// unprivileged denial is the sandbox's doing and not plain file permissions.
    pub fn hand_over(&self, path: &Path) {
        if self.user == User::Root {
            return;
        }
        let uid = self.user.uid();
        std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("lchown");
        let meta = fs::symlink_metadata(path).expect("stat");
        if meta.is_dir() {
            for entry in fs::read_dir(path).expect("readdir") {
                self.hand_over(&entry.expect("dirent").path());
            }
        }
    }

    /// A profile file in the tree (outside every grant), written as JSON.
    pub fn profile_file(&self, name: &str, profile: &serde_json::Value) -> PathBuf {
        let path = self.root.join(format!("{name}.json"));
        self.write(&path, serde_json::to_string_pretty(profile).unwrap())
    }

    /// The environment every `nono` invocation gets: nothing from the test process.
    fn base_env(&self, c: &mut Command) {
        c.env_clear()
            .env("HOME", &self.home)
            .env("PATH", SYSTEM_PATH)
            .env("TMPDIR", &self.tmp)
            .env("LC_ALL", "C")
            .current_dir(&self.work);
    }

    /// `nono ARGS...` as the test's user, in the workspace, with the test's environment.
    pub fn nono<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.user.command(nono_bin());
        c.args(args);
        self.base_env(&mut c);
        c
    }

    /// The events of the newest audit session (`audit list --json`, then `audit show --json`).
    pub fn latest_session_events(&self) -> Vec<serde_json::Value> {
        let list: serde_json::Value =
            serde_json::from_str(&run(&mut self.nono(["audit", "list", "--json"])).stdout)
                .expect("audit list --json");
        let id = list[0]["id"]
            .as_str()
            .expect("a recorded session")
            .to_string();
        let doc: serde_json::Value =
            serde_json::from_str(&run(&mut self.nono(["audit", "show", &id, "--json"])).stdout)
                .expect("audit show --json");
        doc["events"].as_array().expect("an event list").clone()
    }

    /// The standard grants of every case: the workspace read-write, `ro` read-only.
    pub fn grant_args(&self) -> Vec<OsString> {
        vec![
            "--allow".into(),
            self.work.clone().into(),
            "--read".into(),
            self.ro.clone().into(),
            "--workdir".into(),
            self.work.clone().into(),
        ]
    }

    /// `nono run [standard grants] [extra] -- CMD...`.
    pub fn sandbox<A: AsRef<OsStr>, C: AsRef<OsStr>>(&self, extra: &[A], cmd: &[C]) -> Command {
        let mut args: Vec<OsString> = vec!["run".into()];
        args.extend(self.grant_args());
        args.extend(extra.iter().map(|a| a.as_ref().to_os_string()));
        args.push("--".into());
        args.extend(cmd.iter().map(|a| a.as_ref().to_os_string()));
        self.nono(args)
    }

    /// Runs a Python probe inside the sandbox with the standard grants (see [`PRELUDE`]).
    pub fn probe(&self, code: &str) -> Finished {
        self.probe_with(&[] as &[&str], &serde_json::json!({}), code)
    }

    /// Runs a Python probe with extra `nono run` arguments and extra values for `P`.
    ///
    /// The probe gets `P`, a dict of the world's paths (`home`, `work`, `ro`, `outside`,
    /// `key`, `aws`, `secret`) plus `extra`, and `NONO_PID`, the pid of the `nono` process
    /// that started it (written to its stdin after the spawn).
    pub fn probe_with<S: AsRef<OsStr>>(
        &self,
        nono_args: &[S],
        extra: &serde_json::Value,
        code: &str,
    ) -> Finished {
        let mut cmd = self.probe_command(nono_args, extra, code);
        cmd.stdin(Stdio::piped());
        let mut child = spawn(&mut cmd);
        let pid = child.id();
        let mut stdin = child.stdin.take().expect("piped stdin");
        // The probe may already have died (a failed start): ignore EPIPE, the result says why.
        let _ = writeln!(stdin, "{pid}");
        drop(stdin);
        wait_with_timeout(child, RUN_TIMEOUT)
    }

    /// The command [`World::probe_with`] runs, for tests that need to drive it themselves.
    pub fn probe_command<S: AsRef<OsStr>>(
        &self,
        nono_args: &[S],
        extra: &serde_json::Value,
        code: &str,
    ) -> Command {
        let mut paths = serde_json::json!({
            "root": self.root, "home": self.home, "work": self.work, "ro": self.ro,
            "outside": self.outside, "key": self.key(), "aws": self.aws_credentials(),
            "secret": self.secret(),
        });
        if let (Some(p), Some(e)) = (paths.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let program = format!("{PRELUDE}\n{code}\n");
        let cmd: Vec<OsString> = vec![
            PYTHON.into(),
            "-I".into(),
            "-c".into(),
            program.into(),
            paths.to_string().into(),
        ];
        self.sandbox(nono_args, &cmd)
    }

    /// Runs the same probe *without* nono, as the test's user: the control experiment that
    /// shows an operation the sandbox denies is one the user could otherwise do.
    pub fn unconfined_probe(&self, extra: &serde_json::Value, code: &str) -> Finished {
        let mut paths = serde_json::json!({
            "root": self.root, "home": self.home, "work": self.work, "ro": self.ro,
            "outside": self.outside, "key": self.key(), "aws": self.aws_credentials(),
            "secret": self.secret(),
        });
        if let (Some(p), Some(e)) = (paths.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let mut c = self.user.command(PYTHON);
        c.args(["-I", "-c", &format!("{PRELUDE}\n{code}\n")])
            .arg(paths.to_string());
        self.base_env(&mut c);
        c.stdin(Stdio::piped());
        let mut child = spawn(&mut c);
        let _ = writeln!(child.stdin.take().unwrap(), "0");
        wait_with_timeout(child, RUN_TIMEOUT)
    }
}

/// Python run before every probe.
///
/// - `attempt(label, fn)` prints `label=OK` or `label=<ERRNO NAME>` for the `OSError` it raised.
/// - `call(label, fn)` does the same for a ctypes call returning -1 and setting errno.
/// - `show(label, value)` prints a value.
pub const PRELUDE: &str = r#"
import ctypes, errno, json, os, socket, sys
P = json.loads(sys.argv[1])
NONO_PID = int(sys.stdin.readline() or "0") if not sys.stdin.isatty() else 0
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def _name(n):
    return errno.errorcode.get(n, "errno%d" % n)
def show(label, value):
    print("%s=%s" % (label, value), flush=True)
def attempt(label, fn):
    try:
        fn()
        show(label, "OK")
    except OSError as e:
        show(label, _name(e.errno))
def call(label, fn):
    ctypes.set_errno(0)
    rc = fn()
    show(label, "OK" if rc != -1 else _name(ctypes.get_errno()))
def read(path):
    with open(path, "rb") as f:
        return f.read()
def append(path, data=b"PWNED\n"):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
"#;

// ---------------------------------------------------------------------------------------------
// Running and waiting

/// How a process ended, with everything it printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code, `None` if killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything needed to understand a failure, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {:?} (signal {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status.code(),
            self.status.signal(),
            self.stdout,
            self.stderr
        )
    }

    /// The `label=value` lines a probe printed.
    pub fn results(&self) -> BTreeMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The value a probe printed for `label`; fails the test if the probe did not get there.
    pub fn result(&self, label: &str) -> String {
        match self.results().remove(label) {
            Some(v) => v,
            None => panic!(
                "the probe printed no `{label}=` line: it did not run to that point.\n{}",
                self.describe()
            ),
        }
    }

    /// Asserts the probe ran to completion inside the sandbox (exit 0).
    pub fn assert_ran(&self) -> &Self {
        assert_eq!(
            self.code(),
            Some(0),
            "the sandboxed probe did not run to completion\n{}",
            self.describe()
        );
        self
    }

    /// Asserts the operation `label` failed with `errno` (or succeeded, for `"OK"`).
    pub fn expect(&self, label: &str, errno: &str) -> &Self {
        self.expect_one_of(label, &[errno])
    }

    /// Asserts the operation `label` ended with one of `outcomes`.
    pub fn expect_one_of(&self, label: &str, outcomes: &[&str]) -> &Self {
        self.assert_ran();
        let got = self.result(label);
        assert!(
            outcomes.contains(&got.as_str()),
            "`{label}`: expected {outcomes:?}, got {got}\n{}",
            self.describe()
        );
        self
    }
}

/// Spawns `cmd` with piped output in its own process group (so a timeout can kill it whole).
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.process_group(0);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {cmd:?}: {e}"))
}

/// Runs `cmd` to completion (see [`spawn`]), failing the test after [`RUN_TIMEOUT`].
pub fn run(cmd: &mut Command) -> Finished {
    cmd.stdin(Stdio::null());
    wait_with_timeout(spawn(cmd), RUN_TIMEOUT)
}

/// Waits for `child`, collecting its piped stdout and stderr; kills its process group and
/// fails the test if it takes longer than `timeout`.
pub fn wait_with_timeout(mut child: Child, timeout: Duration) -> Finished {
    let pid = child.id() as i32;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(s) => s.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on a process group we created; no memory involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            panic!("process {pid} did not finish within {timeout:?} (killed its group)");
        }
    };
    Finished {
        status,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

/// Polls `cond` until it is true or `timeout` passes; returns whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots: "the target is unchanged"

/// Everything about a path an attack could change: existence, type, mode, owner, content
/// (files), target (symlinks) and entries (directories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub path: PathBuf,
    pub state: Option<SnapshotState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotState {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub ino: u64,
    pub nlink: u64,
    pub content: Option<Vec<u8>>,
    pub link_target: Option<PathBuf>,
    pub entries: Option<Vec<String>>,
}

pub fn snapshot(path: &Path) -> Snapshot {
    let state = fs::symlink_metadata(path).ok().map(|m| {
        let ft = m.file_type();
        SnapshotState {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            ino: m.ino(),
            nlink: m.nlink(),
            content: ft.is_file().then(|| fs::read(path).expect("read")),
            link_target: ft
                .is_symlink()
                .then(|| fs::read_link(path).expect("readlink")),
            entries: ft.is_dir().then(|| {
                let mut e: Vec<String> = fs::read_dir(path)
                    .expect("readdir")
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                e.sort();
                e
            }),
        }
    });
    Snapshot {
        path: path.to_path_buf(),
        state,
    }
}

/// Snapshots of several paths, to compare after the attack.
pub struct Watch(Vec<Snapshot>);

impl Watch {
    pub fn new<P: AsRef<Path>>(paths: &[P]) -> Watch {
        Watch(paths.iter().map(|p| snapshot(p.as_ref())).collect())
    }

    /// Asserts that no watched path changed in any way.
    pub fn assert_unchanged(&self) {
        for before in &self.0 {
            let after = snapshot(&before.path);
            assert_eq!(
                &after,
                before,
                "{} changed although the sandbox should have denied it",
                before.path.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loopback listeners: "the listener saw nothing"

/// A TCP listener on 127.0.0.1 with an OS-chosen port.
pub fn tcp_listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback TCP listener");
    l.set_nonblocking(true).unwrap();
    l
}

/// Asserts `listener` has no pending connection: a denied connect never reached it.
pub fn assert_no_tcp_connection(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!(
            "the loopback listener on {} received a connection from {peer}",
            listener.local_addr().unwrap()
        ),
        Err(e) => panic!("accept failed: {e}"),
    }
}

/// A UDP socket on 127.0.0.1 with an OS-chosen port.
pub fn udp_listener() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket");
    s.set_nonblocking(true).unwrap();
    s
}

/// Asserts `socket` has received no datagram.
pub fn assert_no_datagram(socket: &UdpSocket) {
    let mut buf = [0u8; 64];
    match socket.recv_from(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((n, peer)) => panic!("the loopback UDP socket received {n} bytes from {peer}"),
        Err(e) => panic!("recv failed: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Network namespaces: addresses the test assigns, where no packet can leave the machine

/// A network namespace the test creates (`ip netns add`, root only) and deletes however the
/// test ends. Its only interface is `lo`, up, carrying 127.0.0.0/8 and the addresses the test
/// gives it (such as 169.254.169.254/32): nothing sent there can route out, so a test can aim at
/// an address that would otherwise leave the machine.
pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A fresh namespace, named after `tag` and this process, with `addrs` (CIDRs) on its `lo`.
    pub fn new(tag: &str, addrs: &[&str]) -> Netns {
        let name = format!("nono-e2e-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        for a in addrs {
            ip(&["-n", &ns.name, "addr", "add", a, "dev", "lo"]);
        }
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// `f`'s result, run on a thread that entered the namespace: the sockets it creates (and
    /// the threads it starts) live there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = fs::File::open(&path).expect("open the netns");
            // SAFETY: setns(2) on this thread only, with a namespace file it holds open.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            f()
        })
        .join()
        .expect("the thread in the netns")
    }

    /// `cmd`, run inside the namespace (nsenter changes only the network namespace: nono still
    /// sees the host's cgroup and BPF filesystems).
    pub fn command(&self, cmd: &Command) -> Command {
        let net = format!("--net=/run/netns/{}", self.name);
        behind(["nsenter", net.as_str(), "--"], cmd)
    }
}

/// `cmd` run by `prefix` (`nsenter ... --`, `strace ...`): its program and arguments after the
/// prefix, with only the environment `cmd` sets (the [`World`] commands clear theirs) and its
/// directory.
pub fn behind<I, S>(prefix: I, cmd: &Command) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut prefix = prefix.into_iter();
    let mut c = Command::new(prefix.next().expect("a prefix program"));
    c.args(prefix)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// Pseudo-terminals

/// A child process whose stdin, stdout and stderr are a fresh pseudo-terminal that is also
/// its controlling terminal; the test holds the master side.
pub struct PtyChild {
    pub child: Child,
    master: fs::File,
    pub output: Vec<u8>,
}

impl PtyChild {
    pub fn spawn(mut cmd: Command) -> PtyChild {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two fds into the given ints; null name/termios/winsize are
        // allowed.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just returned by openpty and are owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: fcntl on an fd we own.
        unsafe {
            libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(slave.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
            let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn under a pty");
        drop(cmd); // closes our copies of the slave side, so EOF/EIO follows the child's exit
        PtyChild {
            child,
            master: fs::File::from(master),
            output: Vec::new(),
        }
    }

    /// Reads whatever is available within `timeout`, appending to `self.output`.
    fn pump(&mut self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        if n <= 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => false, // EIO: the slave side is closed
            Ok(n) => {
                self.output.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Waits until the terminal output contains `needle`; fails the test after `timeout`.
    pub fn expect(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !String::from_utf8_lossy(&self.output).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let exited = !self.pump(left.min(Duration::from_millis(200)))
                && self.child.try_wait().unwrap().is_some();
            if left.is_zero() || exited {
                while self.pump(Duration::from_millis(50)) {}
                panic!(
                    "terminal output never contained {needle:?} (child exited: {exited}); got:\n{}",
                    String::from_utf8_lossy(&self.output)
                );
            }
        }
    }

    /// Types `text` on the terminal.
    pub fn send(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .expect("write to pty");
    }

    /// Waits for the child to exit, draining its output.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while self.pump(Duration::from_millis(50)) {}
                return (status, String::from_utf8_lossy(&self.output).into_owned());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the program under the pty did not exit within {timeout:?}; output:\n{}",
                    String::from_utf8_lossy(&self.output)
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }
}
