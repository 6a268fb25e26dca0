//! Rules the kernel layer can't enforce are refused at start (exit 125, naming the rule and
//! what's missing), never silently dropped; `--best-effort` runs anyway and warns.
//!
//! Threat-cases.md 2 (deny inside a *writable* grant: Landlock only grants, and splitting a
//! writable grant around the deny would take away creating entries; inside a read-only grant
//! nono splits the grant and enforces the deny), 14 (a granted path unix socket: Landlock cannot
//! filter connect(2) by path). Domain rules (18/21) no longer refuse: nono's local proxy
//! enforces them (tests/egress.rs).
//!
//! These run on the CI host, whose kernel refuses BPF LSM programs, so every deny inside a
//! writable grant refuses here. Where BPF LSM runs (the VM lab, `lab/src/tests.rs`), such a deny
//! is enforced instead, also on paths that don't exist yet (name watches:
//! `missing_paths_bound_when_created` and the tests after it); there the refusal remains only for
//! what can't be watched (`unwatchable_missing_path_still_refuses`).

use nono_e2e::{as_root_and_nobody, run, User, Watch, World};
use serde_json::json;

as_root_and_nobody!(
    case02_allow_home_with_credentials_deny_is_refused_naming_both_rules,
    case02_read_home_is_split_around_the_credentials,
    case14_granted_unix_socket_is_refused_without_the_kernel_layer,
    case28_nono_state_is_unreachable_under_a_broad_read_grant,
    case02_profile_deny_inside_workspace_grant_is_refused,
    case02_best_effort_runs_and_warns_what_is_not_enforced,
);

fn refused_command(w: &World) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("echo ran > {}/ran", w.work.display()),
    ]
}

/// Asserts a refusal: exit 125, the command never ran, stderr contains every `needle`.
fn assert_refused(w: &World, out: &nono_e2e::Finished, needles: &[&str]) {
    assert_eq!(out.code(), Some(125), "{}", out.describe());
    assert!(
        !w.work.join("ran").exists(),
        "the command ran although nono refused"
    );
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "the refusal must mention {needle:?}\n{}",
            out.describe()
        );
    }
}

/// Case 2: `--allow ~` with the default profile's deny on `~/.ssh`.
fn case02_allow_home_with_credentials_deny_is_refused_naming_both_rules(user: User) {
    let w = World::new(user);
    let watch = Watch::new(&[w.key()]);
    let home = w.home.display().to_string();
    let mut args = vec![
        "run".to_string(),
        "--allow".into(),
        home.clone(),
        "--".into(),
    ];
    args.extend(refused_command(&w));
    let out = run(&mut w.nono(&args));
    assert_refused(&w, &out, &[".ssh", &home]);
    watch.assert_unchanged();
}

/// Case 2 with a read grant on `~`: Landlock enforces the credentials deny by splitting the
/// read grant around it, so the run starts; `~/.ssh` and `~/.aws` stay unreadable (and
/// unlistable), the rest of `$HOME` is readable.
fn case02_read_home_is_split_around_the_credentials(user: User) {
    let w = World::new(user);
    let watch = Watch::new(&[w.key(), w.aws_credentials()]);
    w.write(&w.home.join("notes.txt"), "notes\n");
    let home = w.home.display().to_string();
    let out = w.probe_with(
        &["--read", &home],
        &json!({}),
        r#"
attempt("read_key", lambda: read(P["key"]))
attempt("read_aws", lambda: read(P["aws"]))
attempt("list_ssh", lambda: os.listdir(P["home"] + "/.ssh"))
attempt("read_notes", lambda: read(P["home"] + "/notes.txt"))
"#,
    );
    out.expect("read_key", "EACCES")
        .expect("read_aws", "EACCES")
        .expect("list_ssh", "EACCES")
        .expect("read_notes", "OK");
    watch.assert_unchanged();
}

/// Case 28: nono's own state (audit database, rollback store, configuration and profiles)
/// is denied implicitly, so even a read grant on all of `$HOME` cannot reach it; a writable
/// one is refused (case 2).
fn case28_nono_state_is_unreachable_under_a_broad_read_grant(user: User) {
    let w = World::new(user);
    let state = w.write(&w.home.join(".local/state/nono/audit.db"), "audit\n");
    let config = w.write(&w.home.join(".config/nono/profiles/mine.json"), "{}\n");
    let watch = Watch::new(&[state.clone(), config.clone()]);
    let home = w.home.display().to_string();
    let out = w.probe_with(
        &["--read", &home],
        &json!({"state": state, "config": config}),
        r#"
attempt("read_state", lambda: read(P["state"]))
attempt("append_state", lambda: append(P["state"]))
attempt("read_config", lambda: read(P["config"]))
"#,
    );
    out.expect("read_state", "EACCES")
        .expect("append_state", "EACCES")
        .expect("read_config", "EACCES");
    watch.assert_unchanged();
    // The same user can read it outside the sandbox: the denial is nono's.
    w.unconfined_probe(
        &json!({"state": state}),
        r#"attempt("read_state", lambda: read(P["state"]))"#,
    )
    .expect("read_state", "OK");
}

/// Case 14: a profile that grants a path unix socket. Landlock cannot filter connect(2) by
/// path, so without the kernel layer the AF_UNIX family stays closed and the grant cannot be
/// honoured: nono refuses, naming the rule.
fn case14_granted_unix_socket_is_refused_without_the_kernel_layer(user: User) {
    let w = World::new(user);
    let profile = w.profile_file(
        "unix-socket",
        &json!({
            "extends": ["default"],
            "ipc": {"unix_sockets": ["/run/nono-e2e-agent.sock"]}
        }),
    );
    let mut args = vec![
        "run".to_string(),
        "--profile".into(),
        profile.display().to_string(),
        "--allow".into(),
        w.work.display().to_string(),
        "--".into(),
    ];
    args.extend(refused_command(&w));
    let out = run(&mut w.nono(&args));
    assert_refused(
        &w,
        &out,
        &["/run/nono-e2e-agent.sock", "path unix socket filtering"],
    );
}

/// Case 2 from a profile: a deny written inside the workspace grant.
fn case02_profile_deny_inside_workspace_grant_is_refused(user: User) {
    let w = World::new(user);
    w.write(&w.work.join("secrets/token"), "nono-e2e-token\n");
    let profile = w.profile_file(
        "deny-inside",
        &serde_json::json!({
            "extends": ["default"],
            "filesystem": {
                "readwrite": ["$WORKDIR/**"],
                "deny": ["$WORKDIR/secrets/**"]
            }
        }),
    );
    let mut args = vec![
        "run".to_string(),
        "--profile".into(),
        profile.display().to_string(),
        "--workdir".into(),
        w.work.display().to_string(),
        "--".into(),
    ];
    args.extend(refused_command(&w));
    let out = run(&mut w.nono(&args));
    assert_refused(&w, &out, &["secrets"]);
}

/// Case 2 with `--best-effort`: it runs, and stderr lists the deny it can't enforce.
fn case02_best_effort_runs_and_warns_what_is_not_enforced(user: User) {
    let w = World::new(user);
    let watch = Watch::new(&[w.key()]);
    let home = w.home.display().to_string();
    let mut args = vec![
        "run".to_string(),
        "--allow".into(),
        home,
        "--allow".into(),
        w.work.display().to_string(),
        "--best-effort".into(),
        "--".into(),
    ];
    args.extend(refused_command(&w));
    // nono's own state must lie outside the `$HOME` grant: `--best-effort` never waives its
    // implicit deny (`tests/audit.rs`, `best_effort_never_opens_the_store`).
    let mut cmd = w.nono(&args);
    for (var, dir) in [("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")] {
        let dir = w.root.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        w.hand_over(&dir);
        cmd.env(var, dir);
    }
    let out = run(&mut cmd);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(w.work.join("ran").exists(), "the command did not run");
    assert!(
        out.stderr.contains(".ssh"),
        "--best-effort must warn about the unenforced deny on ~/.ssh\n{}",
        out.describe()
    );
    watch.assert_unchanged();
}
