//! The sandboxed command's life: exit status, signals, terminals; and bad input to `nono run`.
//!
//! Exit codes (nono/src/main.rs): the command's own status is passed through, 125 means
//! nono refused or failed to start, 126 not executable, 127 not found, 128+N killed by
//! signal N, 2 usage error.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use nono_e2e::{
    as_root_and_nobody, run, spawn, wait_with_timeout, PtyChild, User, World, PYTHON, RUN_TIMEOUT,
};

as_root_and_nobody!(
    exit_status_of_command_is_propagated,
    death_by_signal_reported_as_128_plus_n,
    sigint_sent_to_nono_reaches_the_child,
    interactive_program_under_pty_works,
    missing_profile_is_refused_listing_available_ones,
    missing_allow_path_is_refused_with_hint,
    command_not_found_exits_127,
    command_not_executable_exits_126,
    empty_command_is_usage_error,
    case31_kill_9_at_any_moment_runs_nothing_unconfined,
    case24_non_utf8_paths_are_refused_with_a_clear_error,
    case27_huge_profiles_are_bounded_or_refused,
);

fn exit_status_of_command_is_propagated(user: User) {
    let w = World::new(user);
    let out = run(&mut w.sandbox(&[] as &[&str], &["/bin/sh", "-c", "exit 7"]));
    assert_eq!(out.code(), Some(7), "{}", out.describe());
}

fn death_by_signal_reported_as_128_plus_n(user: User) {
    let w = World::new(user);
    let out = run(&mut w.sandbox(&[] as &[&str], &["/bin/sh", "-c", "kill -TERM $$"]));
    assert_eq!(out.code(), Some(128 + libc::SIGTERM), "{}", out.describe());
}

/// Ctrl-C at the user's terminal goes to nono (the child is in its own session); nono must
/// pass it on, or the agent could never be interrupted cleanly.
fn sigint_sent_to_nono_reaches_the_child(user: User) {
    let w = World::new(user);
    let script = "trap 'echo got-int > int-marker; exit 3' INT; echo ready; \
                  while :; do sleep 0.05; done";
    let mut cmd = w.sandbox(&[] as &[&str], &["/bin/sh", "-c", script]);
    cmd.stdin(std::process::Stdio::null());
    // A test runner started in the background of a non-interactive shell (`cmd &`) has SIGINT
    // ignored, and an ignored signal stays ignored across nono and `execve`, as it should; a
    // non-interactive `sh` then cannot trap it (POSIX). What is tested here is the forwarding,
    // so nono starts with SIGINT at its default whatever the runner inherited.
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = spawn(&mut cmd);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let pid = child.id() as i32;
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line == "ready" => {}
        other => {
            let out = wait_with_timeout(child, RUN_TIMEOUT);
            panic!("the child never said ready ({other:?})\n{}", out.describe());
        }
    }
    // SAFETY: kill(2) on the nono process we spawned.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert_eq!(
        std::fs::read_to_string(w.work.join("int-marker"))
            .ok()
            .as_deref(),
        Some("got-int\n"),
        "the child's INT trap did not run\n{}",
        out.describe()
    );
    assert_eq!(out.code(), Some(3), "{}", out.describe());
}

/// An interactive program on a real pseudo-terminal: it sees a tty, gets typed input and its
/// output reaches the terminal.
fn interactive_program_under_pty_works(user: User) {
    let w = World::new(user);
    let cmd = w.sandbox(
        &[] as &[&str],
        &[
            PYTHON,
            "-I",
            "-c",
            "import sys; print('tty=%s' % sys.stdin.isatty()); print('got:' + input('name? '))",
        ],
    );
    let mut pty = PtyChild::spawn(cmd);
    pty.expect("name? ", Duration::from_secs(30));
    pty.send("sandboxed world\n");
    pty.expect("got:sandboxed world", Duration::from_secs(30));
    let (status, output) = pty.wait(Duration::from_secs(30));
    assert!(output.contains("tty=True"), "{output}");
    assert_eq!(status.code(), Some(0), "{output}");
}

fn missing_profile_is_refused_listing_available_ones(user: User) {
    let w = World::new(user);
    let out = run(&mut w.nono(["run", "--profile", "no-such-profile-e2e", "--", "/bin/true"]));
    assert!(
        matches!(out.code(), Some(1) | Some(125)),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("no-such-profile-e2e") && out.stderr.contains("default"),
        "the error must name the missing profile and list the available ones\n{}",
        out.describe()
    );
}

fn missing_allow_path_is_refused_with_hint(user: User) {
    let w = World::new(user);
    let missing = w.root.join("does-not-exist");
    let out = run(&mut w.nono([
        "run".as_ref(),
        "--allow".as_ref(),
        missing.as_os_str(),
        "--".as_ref(),
        "/bin/true".as_ref(),
    ]));
    assert_eq!(out.code(), Some(125), "{}", out.describe());
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "the error must name the missing path\n{}",
        out.describe()
    );
    assert!(!missing.exists(), "nono must not create a missing grant");
}

fn command_not_found_exits_127(user: User) {
    let w = World::new(user);
    let out = run(&mut w.sandbox(&[] as &[&str], &["no-such-command-e2e"]));
    assert_eq!(out.code(), Some(127), "{}", out.describe());
    assert!(
        out.stderr.contains("no-such-command-e2e"),
        "{}",
        out.describe()
    );
}

fn command_not_executable_exits_126(user: User) {
    let w = World::new(user);
    let script = w.write(&w.work.join("not-executable.sh"), "#!/bin/sh\necho ran\n");
    let out = run(&mut w.sandbox(&[] as &[&str], &[script.as_os_str()]));
    assert_eq!(out.code(), Some(126), "{}", out.describe());
    assert!(!out.stdout.contains("ran"), "{}", out.describe());
}

fn empty_command_is_usage_error(user: User) {
    let w = World::new(user);
    let out = run(&mut w.nono(["run", "--"]));
    assert_eq!(out.code(), Some(2), "{}", out.describe());
}

/// Case 24: paths that are not UTF-8. Policies name paths as text, so such a path is refused,
/// never guessed at: `--allow` of an existing directory whose name has a 0xff byte stops the
/// run (125) with an error that names the flag and the reason, and a profile with such a byte
/// is invalid at its line and column.
fn case24_non_utf8_paths_are_refused_with_a_clear_error(user: User) {
    use std::os::unix::ffi::OsStrExt;
    let w = World::new(user);
    let mut raw = w.work.as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/bad\xffdir");
    let bad = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    std::fs::create_dir(&bad).unwrap();
    let out = run(&mut w.nono([
        "run".as_ref(),
        "--allow".as_ref(),
        bad.as_os_str(),
        "--".as_ref(),
        "/bin/true".as_ref(),
    ]));
    assert_eq!(out.code(), Some(125), "{}", out.describe());
    assert!(
        out.stderr.contains("--allow") && out.stderr.contains("not valid UTF-8"),
        "the error must name the flag and the reason\n{}",
        out.describe()
    );
    let profile = w.root.join("bad-utf8.nono");
    let mut text = b"profile bad\nversion 1.0.0\nread /tmp/".to_vec();
    text.extend_from_slice(b"\xff/x\n");
    std::fs::write(&profile, text).unwrap();
    let out = run(&mut w.nono(["profile".as_ref(), "validate".as_ref(), profile.as_os_str()]));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("not valid UTF-8")
            && out.stderr.contains(&format!("{}:3:11", profile.display())),
        "the error must say why and where\n{}",
        out.describe()
    );
}

/// `cmd`'s exit code, stdout and stderr, and its peak resident set in KiB (`wait4`'s rusage:
/// the process's own, whatever else the test process runs meanwhile).
fn run_measuring_rss(w: &World, cmd: &mut std::process::Command) -> (i32, String, String, i64) {
    let out_path = w.root.join("measured.out");
    let err_path = w.root.join("measured.err");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    // Reaped by wait4 below, which also gives its rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn nono");
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for the child just spawned, with live out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(libc::WIFEXITED(status), "nono died: status {status:#x}");
    (
        libc::WEXITSTATUS(status),
        std::fs::read_to_string(out_path).unwrap(),
        std::fs::read_to_string(err_path).unwrap(),
        usage.ru_maxrss,
    )
}

/// Case 27: huge inputs are compiled in bounded memory, or refused. A profile of 100,000 rules
/// in either format validates with a peak RSS under 256 MiB (about 60 MiB in a debug build); a
/// chain of three such profiles (300,000 rules) is refused for too many rules, by name of the
/// limit; a file past the size limit is refused before it is parsed.
fn case27_huge_profiles_are_bounded_or_refused(user: User) {
    let w = World::new(user);
    let profiles = w.home.join(".config/nono/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let rules =
        |tag: &str| -> Vec<String> { (0..100_000).map(|i| format!("/data/{tag}{i}/**")).collect() };
    let json = |extends: Option<&str>, tag: &str| {
        let mut p = serde_json::json!({ "filesystem": { "read": rules(tag) } });
        if let Some(parent) = extends {
            p["extends"] = serde_json::json!([parent]);
        }
        p.to_string()
    };
    std::fs::write(profiles.join("huge-c.json"), json(None, "c")).unwrap();
    std::fs::write(profiles.join("huge-b.json"), json(Some("huge-c"), "b")).unwrap();
    std::fs::write(profiles.join("huge-a.json"), json(Some("huge-b"), "a")).unwrap();
    let lang = w.root.join("huge.nono");
    let mut text = String::from("profile huge\nversion 1.0.0\n");
    for r in rules("l") {
        text.push_str(&format!("read {r}\n"));
    }
    std::fs::write(&lang, text).unwrap();
    // Open to the test's user (the world's root is).
    for p in [&profiles, &lang] {
        std::os::unix::fs::chown(p, Some(user_uid(user)), None).unwrap();
    }
    for (what, target) in [
        ("JSON", profiles.join("huge-c.json")),
        ("nono language", lang.clone()),
    ] {
        let (code, out, err, rss_kib) = run_measuring_rss(
            &w,
            &mut w.nono(["profile".as_ref(), "validate".as_ref(), target.as_os_str()]),
        );
        assert_eq!(code, 0, "{what}: {out}{err}");
        assert!(out.contains("100000 rules"), "{what}: {out}");
        assert!(
            rss_kib < 256 * 1024,
            "{what}: validating 100,000 rules peaked at {} MiB",
            rss_kib / 1024
        );
        eprintln!("{what}: 100,000 rules, peak RSS {} MiB", rss_kib / 1024);
    }
    let (code, out, err, _) = run_measuring_rss(&w, &mut w.nono(["profile", "validate", "huge-a"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("too many rules"), "{err}");
    let big = w.root.join("big.json");
    std::fs::write(
        &big,
        format!("{{\"description\": \"{}\"}}", "x".repeat(10 * 1024 * 1024)),
    )
    .unwrap();
    let (code, out, err, rss_kib) = run_measuring_rss(
        &w,
        &mut w.nono(["profile".as_ref(), "validate".as_ref(), big.as_os_str()]),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("too large"), "{err}");
    assert!(
        rss_kib < 64 * 1024,
        "a refused file was read whole: {} MiB",
        rss_kib / 1024
    );
}

fn user_uid(user: User) -> u32 {
    match user {
        User::Root => 0,
        User::Nobody => 65534,
    }
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Case 31: `kill -9` of nono at any moment, its set-up included. Ten runs are killed after 0
/// to 80 ms, which lands in parsing, in building the sandbox, between `clone` and `execve`, and
/// while the command runs. Whichever moment it was, nothing of the command runs unconfined:
/// the command, when it started, dies with nono (`PR_SET_PDEATHSIG`, and a child that finds
/// its parent gone before that exits), and what it started in the background outlives both
/// still confined: its read of the key half a second later fails.
fn case31_kill_9_at_any_moment_runs_nothing_unconfined(user: User) {
    let w = World::new(user);
    let work = w.work.display().to_string();
    let script = format!(
        "echo $$ >> {work}/pids; \
         ( sleep 0.5; cat {key} > {work}/leak-bg.$$ 2>/dev/null ) & \
         sleep 0.5; cat {key} > {work}/leak-fg.$$ 2>/dev/null; sleep 5",
        key = w.key().display()
    );
    for delay_ms in [0, 1, 2, 3, 5, 8, 12, 20, 40, 80] {
        let mut cmd = w.sandbox(&[] as &[&str], &["/bin/sh", "-c", &script]);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut nono = cmd.spawn().expect("spawn nono");
        std::thread::sleep(Duration::from_millis(delay_ms));
        nono.kill().expect("kill -9 nono");
        let _ = nono.wait();
    }
    let pids: Vec<i32> = std::fs::read_to_string(w.work.join("pids"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect();
    for pid in &pids {
        assert!(
            nono_e2e::wait_until(Duration::from_secs(5), || !alive(*pid)),
            "command {pid} outlived the nono that started it"
        );
    }
    // The background reads come 0.5 s after their start; give them time to happen.
    std::thread::sleep(Duration::from_millis(1500));
    let mut leaks = 0;
    for entry in std::fs::read_dir(&w.work).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("leak-") {
            leaks += 1;
            let content = std::fs::read_to_string(entry.path()).unwrap_or_default();
            assert!(
                !content.contains(nono_e2e::FAKE_KEY.trim()),
                "{name}: a process of a killed run read the key"
            );
        }
    }
    eprintln!(
        "{} of 10 killed runs had started their command; {leaks} read attempts made",
        pids.len()
    );
}
