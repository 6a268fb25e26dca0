//! Rollback end to end: `nono run --rollback`, then `nono rollback show|restore|list|prune`,
//! against the real binary, as root and as an unprivileged user.
//!
//! The central assertion is [`assert_same_tree`]: after a restore, the workspace is identical
//! to a `cp -a` copy taken before the run — every entry's type, mode (setuid/setgid
//! included), owner, content byte for byte, symlink target and modification time.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nono_e2e::{
    as_root_and_nobody, run, spawn, wait_until, wait_with_timeout, Finished, User, Watch, World,
};

as_root_and_nobody!(
    restore_returns_the_tree_byte_for_byte,
    included_defaults_are_snapshotted,
    after_run_content_is_capped,
    gitignored_paths_are_left_out_and_shown,
    planted_symlinks_are_never_followed,
    hostile_names_are_escaped_and_restored,
    store_is_unreachable_from_the_sandbox,
    too_large_tree_is_refused_before_the_run,
    excluded_names_are_left_alone,
    unreadable_files_keep_the_change_record,
    restore_regains_access_the_agent_took_away,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// `nono run --rollback [extra] -- /bin/sh -c SCRIPT` in the world's workspace.
fn run_rollback(w: &World, extra: &[&str], script: &str) -> Finished {
    let mut args = vec!["--rollback"];
    args.extend_from_slice(extra);
    run(&mut w.sandbox(&args, &["/bin/sh", "-c", script]))
}

fn nono(w: &World, args: &[&str]) -> Finished {
    run(&mut w.nono(args))
}

fn store(w: &World) -> PathBuf {
    w.home.join(".local/state/nono/rollback")
}

fn latest_session(w: &World) -> String {
    let out = nono(w, &["rollback", "list", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("list --json");
    v[0]["id"].as_str().expect("a session").to_string()
}

fn show_json(w: &World, id: &str) -> serde_json::Value {
    let out = nono(w, &["rollback", "show", id, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    serde_json::from_str(&out.stdout).expect("show --json")
}

fn restore(w: &World, id: &str, extra: &[&str]) -> Finished {
    let mut args = vec!["rollback", "restore", id];
    args.extend_from_slice(extra);
    let out = nono(w, &args);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out
}

/// `cp -a` of a tree: the reference a restore must reproduce.
fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp -a");
    assert!(st.success());
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    /// Files and directories (symlink times are not restored).
    mtime: Option<(i64, i64)>,
    target: Option<PathBuf>,
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        let p = root.join(rel);
        let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else {
            "special"
        };
        out.insert(
            rel.to_path_buf(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if ft.is_file() { m.size() } else { 0 },
                mtime: (!ft.is_symlink()).then(|| (m.mtime(), m.mtime_nsec())),
                target: ft.is_symlink().then(|| fs::read_link(&p).unwrap()),
            },
        );
        if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                walk(root, &rel.join(e.unwrap().file_name()), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Differences between two trees (empty when identical), content compared byte for byte.
fn tree_diff(expected: &Path, actual: &Path) -> Vec<String> {
    let (e, a) = (tree(expected), tree(actual));
    let mut out = Vec::new();
    for (p, n) in &e {
        match a.get(p) {
            None => out.push(format!("missing: {p:?}")),
            Some(m) if m != n => out.push(format!("differs: {p:?}\n  want {n:?}\n  got  {m:?}")),
            Some(_) if n.kind == "file" && !same_content(&expected.join(p), &actual.join(p)) => {
                out.push(format!("content differs: {p:?}"))
            }
            Some(_) => {}
        }
    }
    for p in a.keys() {
        if !e.contains_key(p) {
            out.push(format!("unexpected: {p:?}"));
        }
    }
    out
}

/// Do the trees differ in anything but the times of directories?
fn entries_differ(expected: &Path, actual: &Path) -> bool {
    let entries = |root: &Path| {
        let mut t = tree(root);
        for n in t.values_mut().filter(|n| n.kind == "dir") {
            n.mtime = None;
        }
        t
    };
    let (e, a) = (entries(expected), entries(actual));
    e != a
        || e.iter()
            .any(|(p, n)| n.kind == "file" && !same_content(&expected.join(p), &actual.join(p)))
}

fn assert_same_tree(expected: &Path, actual: &Path) {
    let d = tree_diff(expected, actual);
    assert!(d.is_empty(), "trees differ:\n{}", d.join("\n"));
}

/// A second restore finds nothing to do. The exact line: "0 path(s)" alone would also match
/// "10 path(s)".
fn assert_nothing_left_to_restore(w: &World, id: &str) {
    let again = restore(w, id, &[]);
    let want = format!("{id}: 0 path(s) to change: the files already match the snapshot");
    assert!(
        again.stdout.lines().any(|l| l == want),
        "{}",
        again.describe()
    );
}

/// `rollback restore` makes `tree` the same as `expected`; a second restore finds nothing to do
/// and changes nothing (idempotent).
fn assert_restores_idempotently(w: &World, id: &str, expected: &Path, tree: &Path) {
    restore(w, id, &[]);
    assert_same_tree(expected, tree);
    assert_nothing_left_to_restore(w, id);
    assert_same_tree(expected, tree);
}

/// Relative path -> op of every change `show --json` lists.
fn change_ops(w: &World, id: &str) -> BTreeMap<String, String> {
    let v = show_json(w, id);
    let prefix = format!("{}/", w.work.display());
    v["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no change record: {v}"))
        .iter()
        .map(|c| {
            let p = c["path"].as_str().unwrap();
            let rel = p.strip_prefix(&prefix).unwrap_or(p);
            (rel.to_string(), c["op"].as_str().unwrap().to_string())
        })
        .collect()
}

fn os(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// Deterministic non-text bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn count_objects(store: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(store.join("objects")) {
        for shard in rd.flatten() {
            n += fs::read_dir(shard.path()).map(|r| r.count()).unwrap_or(0);
        }
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Cases

fn restore_returns_the_tree_byte_for_byte(user: User) {
    let w = World::new(user);
    let t = &w.work;
    w.write(
        &t.join("src/main.rs"),
        "fn main() {\n    println!(\"hi\");\n}\n",
    );
    w.write(&t.join("src/lib.rs"), "pub fn f() {}\n");
    w.write(&t.join("doomed.txt"), "delete me\n");
    w.write(&t.join("old-name.txt"), "renamed content\n");
    w.write(&t.join("swap.txt"), "becomes a symlink\n");
    w.write(&t.join("run.sh"), "#!/bin/sh\necho run\n");
    w.write(&t.join("blob.bin"), noise(300_000, 1));
    w.write(&t.join("dir-to-file/inner.txt"), "inner\n");
    fs::set_permissions(t.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(t.join("src/lib.rs"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::create_dir_all(t.join("empty/nested-empty")).unwrap();
    fs::create_dir_all(t.join("ro-dir")).unwrap();
    w.write(&t.join("ro-dir/file"), "in a read-only dir\n");
    std::os::unix::fs::symlink("src/main.rs", t.join("link-to-main")).unwrap();
    w.write(&t.join("tool"), "#!/bin/sh\necho tool\n");
    fs::create_dir_all(t.join("shared")).unwrap();
    w.hand_over(t);
    fs::set_permissions(t.join("ro-dir"), fs::Permissions::from_mode(0o555)).unwrap();
    // Set-id bits the tree had before the run come back (and no others appear): writing to
    // `tool` clears its setuid bit, and the command drops the setgid bit of `shared`.
    fs::set_permissions(t.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(t.join("shared"), fs::Permissions::from_mode(0o2775)).unwrap();
    let expected = w.root.join("expected");
    copy_tree(t, &expected);

    let script = r#"
set -e
printf 'fn main() {}\n' > src/main.rs
rm doomed.txt
mv old-name.txt new-name.txt
rm swap.txt && ln -s "$HOME/.bashrc" swap.txt
chmod 700 run.sh
chmod 644 src/lib.rs
printf '\001\002\000binary' >> blob.bin
echo created > created.txt
mkdir -p newdir/deeper && echo x > newdir/deeper/f
rmdir empty/nested-empty
rm -r dir-to-file && echo now-a-file > dir-to-file
chmod 755 ro-dir && rm ro-dir/file && chmod 500 ro-dir
rm link-to-main && ln -s src/lib.rs link-to-main
echo patched >> tool
chmod g-s shared
"#;
    let out = run_rollback(&w, &[], script);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("nono rollback restore"),
        "{}",
        out.describe()
    );
    assert!(
        !tree_diff(&expected, t).is_empty(),
        "the script changed nothing"
    );

    let id = latest_session(&w);
    let v = show_json(&w, &id);
    let ops: BTreeMap<String, String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let p = c["path"].as_str().unwrap();
            let rel = p
                .strip_prefix(t.to_str().unwrap())
                .unwrap()
                .trim_start_matches('/');
            (rel.to_string(), c["op"].as_str().unwrap().to_string())
        })
        .collect();
    let want = [
        ("src/main.rs", "modified"),
        ("doomed.txt", "deleted"),
        ("new-name.txt", "renamed"),
        ("swap.txt", "modified"),
        ("run.sh", "mode_changed"),
        ("src/lib.rs", "mode_changed"),
        ("blob.bin", "modified"),
        ("created.txt", "created"),
        ("newdir/deeper/f", "created"),
        ("empty/nested-empty", "deleted"),
        ("dir-to-file", "modified"),
        ("ro-dir/file", "deleted"),
        ("link-to-main", "modified"),
    ];
    for (p, op) in want {
        assert_eq!(ops.get(p).map(String::as_str), Some(op), "{p}: {ops:#?}");
    }
    let c = &v["counts"];
    assert_eq!(c["renamed"], 1, "{c}");

    // --diff: a unified diff for text, a size/hash line for binary.
    let d = nono(&w, &["rollback", "show", &id[..12], "--diff"]);
    assert_eq!(d.code(), Some(0), "{}", d.describe());
    assert!(d.stdout.contains("-    println!(\"hi\");"), "{}", d.stdout);
    assert!(d.stdout.contains("+fn main() {}"), "{}", d.stdout);
    assert!(
        d.stdout.contains("binary or large: 300000 bytes sha256:"),
        "{}",
        d.stdout
    );

    // Dry run changes nothing.
    let before_dry = tree(t);
    let dry = restore(&w, &id, &["--dry-run"]);
    assert!(dry.stdout.contains("would restore file"), "{}", dry.stdout);
    assert_eq!(tree(t), before_dry);

    assert_restores_idempotently(&w, &id, &expected, t);
}

fn planted_symlinks_are_never_followed(user: User) {
    let w = World::new(user);
    let t = &w.work;
    let bashrc = w.write(&w.home.join(".bashrc"), "# the user's bashrc\n");
    w.write(&t.join("config.txt"), "original config\n");
    w.write(&t.join("src/a.txt"), "a\n");
    w.write(&t.join("docs/readme"), "docs\n");
    w.hand_over(&w.root);
    let expected = w.root.join("expected");
    copy_tree(t, &expected);
    let victims = Watch::new(&[bashrc.clone(), w.outside.clone(), w.secret()]);
    let outside_before = tree(&w.outside);

    // The agent replaces a file by a link to ~/.bashrc and directories by links to places
    // outside the workspace; a naive restore would write through them.
    let script = format!(
        "set -e; rm config.txt; ln -s {bashrc} config.txt; rm -r src; ln -s {out} src; \
         rm -r docs; ln -s {home} docs",
        bashrc = bashrc.display(),
        out = w.outside.display(),
        home = w.home.display()
    );
    let out = run_rollback(&w, &[], &script);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);

    // Restoring one path below a planted directory link must not go through it.
    restore(&w, &id, &["--path", "src/a.txt"]);
    assert!(fs::symlink_metadata(t.join("src")).unwrap().is_dir());
    assert_eq!(fs::read(t.join("src/a.txt")).unwrap(), b"a\n");
    assert!(!w.outside.join("a.txt").exists());

    restore(&w, &id, &[]);
    assert_same_tree(&expected, t);
    victims.assert_unchanged();
    assert_eq!(tree(&w.outside), outside_before);
    assert!(!w.home.join("readme").exists());
}

fn hostile_names_are_escaped_and_restored(user: User) {
    let w = World::new(user);
    let t = &w.work;
    let names: Vec<OsString> = vec![
        os(b"new\nline"),
        os(b"\x1b[31mred\x1b[0m"),
        os(b"bad\xff\xfeutf8"),
        os(b"-rf"),
        os(b"100%41"),
        os(b"back\\slash"),
        os(b"\xe2\x80\xaecod.exe"),
    ];
    for n in &names {
        w.write(&t.join(n), b"original\n");
    }
    w.hand_over(t);
    let expected = w.root.join("expected");
    copy_tree(t, &expected);
    // Modify every existing hostile name, and create new ones (same names in a new dir).
    let out = run_rollback(
        &w,
        &[],
        "set -e; for f in ./*; do echo changed >> \"$f\"; done; mkdir new; \
         for f in ./*; do [ -f \"$f\" ] && cp \"$f\" new/; done; true",
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        !out.stderr.contains('\x1b'),
        "raw escape printed: {:?}",
        out.stderr
    );
    let id = latest_session(&w);
    let shown = nono(&w, &["rollback", "show", &id, "--diff"]);
    assert_eq!(shown.code(), Some(0), "{}", shown.describe());
    assert!(!shown.stdout.contains('\x1b'), "{:?}", shown.stdout);
    assert!(!shown.stdout.contains('\u{202e}'), "{:?}", shown.stdout);
    assert!(shown.stdout.contains("new\\nline"), "{}", shown.stdout);
    assert!(shown.stdout.contains("\\u{1b}[31mred"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("bad\\xff\\xfeutf8"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("back\\\\slash"), "{}", shown.stdout);
    // No line of output starts with a name's second half: every name is on one line.
    assert!(
        !shown.stdout.lines().any(|l| l.starts_with("line")),
        "{}",
        shown.stdout
    );
    // --json is lossless: invalid UTF-8 as %XX, `%` as %25.
    let v = show_json(&w, &id);
    let paths: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/bad%FF%FEutf8")),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p.ends_with("/100%2541")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("/new\nline")), "{paths:?}");

    let r = restore(&w, &id, &[]);
    assert!(!r.stdout.contains('\x1b'), "{:?}", r.stdout);
    assert_same_tree(&expected, t);
}

fn store_is_unreachable_from_the_sandbox(user: User) {
    let w = World::new(user);
    w.write(&w.work.join("file.txt"), "secret-ish content\n");
    let out = run_rollback(&w, &[], "echo changed > file.txt");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);
    let store = store(&w);
    let session = store.join("sessions").join(&id).join("session.json");
    let object = fs::read_dir(store.join("objects"))
        .unwrap()
        .flatten()
        .flat_map(|s| fs::read_dir(s.path()).unwrap().flatten())
        .map(|e| e.path())
        .next()
        .expect("an object");
    // The probe runs in a rollback session of its own, which adds a session to the store;
    // what existed before it must not change.
    let watch = Watch::new(&[
        store.join("sessions").join(&id),
        session.clone(),
        store.join("sessions").join(&id).join("before.json"),
        object.clone(),
    ]);
    let probe = w.probe_with(
        &["--rollback"],
        &serde_json::json!({
            "store": store, "session": session, "object": object,
        }),
        r#"
attempt("read_session", lambda: read(P["session"]))
attempt("read_object", lambda: read(P["object"]))
attempt("list_store", lambda: os.listdir(P["store"]))
attempt("write_object", lambda: append(P["object"]))
attempt("create_in_store", lambda: open(P["store"] + "/objects/planted", "w"))
attempt("unlink_object", lambda: os.unlink(P["object"]))
attempt("rename_session", lambda: os.rename(P["session"], P["session"] + ".x"))
"#,
    );
    probe.assert_ran();
    for label in [
        "read_session",
        "read_object",
        "list_store",
        "write_object",
        "create_in_store",
        "unlink_object",
        "rename_session",
    ] {
        probe.expect(label, "EACCES");
    }
    watch.assert_unchanged();
    assert!(!store.join("objects/planted").exists());
    // The probe's own session was recorded by nono, outside the sandbox.
    assert_ne!(latest_session(&w), id);
}

fn too_large_tree_is_refused_before_the_run(user: User) {
    let w = World::new(user);
    for i in 0..50 {
        w.write(&w.work.join(format!("f{i}")), "x");
    }
    let marker = w.work.join("marker");
    let mut cmd = w.sandbox(&["--rollback"], &["/bin/sh", "-c", "touch marker"]);
    cmd.env("NONO_ROLLBACK_MAX_FILES", "20");
    let out = run(&mut cmd);
    assert_eq!(out.code(), Some(125), "{}", out.describe());
    assert!(
        out.stderr.contains("too large to snapshot"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("NONO_ROLLBACK_MAX_FILES"),
        "{}",
        out.stderr
    );
    assert!(
        !marker.exists(),
        "the command ran although the snapshot was refused"
    );
    assert!(
        !store(&w).join("sessions").exists()
            || fs::read_dir(store(&w).join("sessions"))
                .unwrap()
                .next()
                .is_none()
    );

    let mut cmd = w.sandbox(&["--rollback"], &["/bin/sh", "-c", "touch marker"]);
    cmd.env("NONO_ROLLBACK_MAX_BYTES", "10");
    let out = run(&mut cmd);
    assert_eq!(out.code(), Some(125), "{}", out.describe());
    assert!(out.stderr.contains("size limit"), "{}", out.stderr);
    assert!(!marker.exists());

    // Only with the explicit opt-out does it run, and it says it has no rollback.
    let mut cmd = w.sandbox(&["--rollback=optional"], &["/bin/sh", "-c", "touch marker"]);
    cmd.env("NONO_ROLLBACK_MAX_FILES", "20");
    let out = run(&mut cmd);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stderr.contains("WITHOUT rollback"), "{}", out.stderr);
    assert!(marker.exists());
}

fn excluded_names_are_left_alone(user: User) {
    let w = World::new(user);
    let t = &w.work;
    w.write(&t.join("src/lib.rs"), "code\n");
    w.write(&t.join("target/debug/app"), "old build\n");
    w.write(&t.join("sub/node_modules/pkg/index.js"), "old dep\n");
    w.write(&t.join("logs/run.log"), "old log\n");
    w.hand_over(t);
    // A pattern from the profile, on top of the default names.
    let profile = w.profile_file(
        "rollback-logs",
        &serde_json::json!({ "extends": ["default"], "rollback": { "exclude": ["*.log"] } }),
    );
    let profile = profile.display().to_string();
    let out = run_rollback(
        &w,
        &["--profile", &profile],
        "set -e; echo new build > target/debug/app; echo dep > sub/node_modules/pkg/new.js; \
         echo more >> logs/run.log; echo fresh > logs/new.log; echo edited > src/lib.rs",
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);
    let v = show_json(&w, &id);
    let changed: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].ends_with("/src/lib.rs"));
    restore(&w, &id, &[]);
    assert_eq!(fs::read(t.join("src/lib.rs")).unwrap(), b"code\n");
    // Build output is neither snapshotted nor touched.
    assert_eq!(
        fs::read(t.join("target/debug/app")).unwrap(),
        b"new build\n"
    );
    assert!(t.join("sub/node_modules/pkg/new.js").exists());
    assert_eq!(
        fs::read(t.join("logs/run.log")).unwrap(),
        b"old log\nmore\n"
    );
    assert!(t.join("logs/new.log").exists());
}

/// `rollback include build` takes a default exclusion back: a source directory named `build`
/// is snapshotted and restored like any other, while `target` stays excluded.
fn included_defaults_are_snapshotted(user: User) {
    let w = World::new(user);
    let t = &w.work;
    w.write(&t.join("build/gen.py"), "source, not output\n");
    w.write(&t.join("target/app"), "old build\n");
    w.hand_over(t);
    let profile = w.profile_file(
        "rollback-build",
        &serde_json::json!({ "extends": ["default"], "rollback": { "include": ["build"] } }),
    );
    let profile = profile.display().to_string();
    let out = run_rollback(
        &w,
        &["--profile", &profile],
        "set -e; rm build/gen.py; echo new > target/app",
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);
    restore(&w, &id, &[]);
    assert_eq!(
        fs::read(t.join("build/gen.py")).unwrap(),
        b"source, not output\n"
    );
    assert_eq!(fs::read(t.join("target/app")).unwrap(), b"new\n");
}

/// The agent makes files unreadable to their owner (`chmod 000`): the change record must
/// still be written, with their content, and restore must still return the tree.
fn unreadable_files_keep_the_change_record(user: User) {
    let w = World::new(user);
    let t = &w.work;
    w.write(&t.join("edited.txt"), "before the session\n");
    w.write(&t.join("locked.txt"), "only its mode changes\n");
    w.write(&t.join("src/lib.rs"), "pub fn f() {}\n");
    w.hand_over(t);
    let expected = w.root.join("expected");
    copy_tree(t, &expected);

    let script = "set -e; echo s > secret; chmod 000 secret; \
                  echo agent > edited.txt; chmod 000 edited.txt; chmod 000 locked.txt; \
                  echo new > src/new.rs; chmod 000 src/new.rs";
    let out = run_rollback(&w, &[], script);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        !out.stderr.contains("could not record"),
        "{}",
        out.describe()
    );
    let id = latest_session(&w);
    let ops = change_ops(&w, &id);
    let want = [
        ("secret", "created"),
        ("edited.txt", "modified"),
        ("locked.txt", "mode_changed"),
        ("src/new.rs", "created"),
    ];
    for (p, op) in want {
        assert_eq!(ops.get(p).map(String::as_str), Some(op), "{p}: {ops:#?}");
    }
    assert_eq!(ops.len(), want.len(), "{ops:#?}");
    // The content was saved (nono regained read access to the user's own files), so
    // `show --diff` can show it.
    let d = nono(&w, &["rollback", "show", &id, "--diff"]);
    assert_eq!(d.code(), Some(0), "{}", d.describe());
    assert!(d.stdout.contains("+agent"), "{}", d.stdout);
    assert!(!d.stdout.contains("content not saved"), "{}", d.stdout);
    // ...and the files were left as the agent left them.
    let mode = |p: &str| fs::symlink_metadata(t.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("secret"), 0);
    assert_eq!(mode("edited.txt"), 0);

    assert_restores_idempotently(&w, &id, &expected, t);
}

/// The agent takes its owner's permissions away from directories (`chmod 000`): ones it
/// changed inside, one it emptied, one it created, and the workspace itself. Restore regains
/// access, finishes everything, and sets the recorded modes again.
fn restore_regains_access_the_agent_took_away(user: User) {
    let w = World::new(user);
    let t = &w.work;
    w.write(&t.join("src/deep/f.rs"), "fn f() {}\n");
    w.write(&t.join("src/main.rs"), "fn main() {}\n");
    w.write(&t.join("gone/g.txt"), "deleted by the agent\n");
    w.write(&t.join("zz-last.txt"), "after the others in walk order\n");
    fs::create_dir_all(t.join("ro")).unwrap();
    w.write(&t.join("ro/keep"), "in a read-only directory\n");
    w.hand_over(t);
    fs::set_permissions(t.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let expected = w.root.join("expected");
    copy_tree(t, &expected);

    let script = "set -e; echo agent > src/deep/f.rs; echo new > src/deep/new.rs; \
                  rm gone/g.txt; mkdir -p junk/inner; echo j > junk/inner/x; \
                  echo z > zz-last.txt; chmod u+w ro; echo r > ro/keep; \
                  chmod 000 src/deep junk/inner; chmod 000 src gone junk ro .";
    let out = run_rollback(&w, &[], script);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);
    let ops = change_ops(&w, &id);
    let want = [
        ("src/deep/f.rs", "modified"),
        ("src/deep/new.rs", "created"),
        ("gone/g.txt", "deleted"),
        ("junk", "created"),
        ("junk/inner/x", "created"),
        ("zz-last.txt", "modified"),
        ("ro/keep", "modified"),
        ("src", "mode_changed"),
        ("src/deep", "mode_changed"),
        ("gone", "mode_changed"),
        ("ro", "mode_changed"),
    ];
    for (p, op) in want {
        assert_eq!(ops.get(p).map(String::as_str), Some(op), "{p}: {ops:#?}");
    }

    // A dry run looks without changing anything, modes included.
    let before_dry = tree(t);
    restore(&w, &id, &["--dry-run"]);
    assert_eq!(tree(t), before_dry);

    // One file below locked directories: they are opened on the way and keep the mode they
    // had (the whole restore below sets the recorded ones).
    let one = t.join("src/deep/f.rs");
    restore(&w, &id, &["--path", one.to_str().unwrap()]);
    let mode = |p: &str| fs::symlink_metadata(t.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(fs::read(&one).unwrap(), b"fn f() {}\n");
    assert_eq!((mode("src"), mode("src/deep"), mode("")), (0, 0, 0));

    assert_restores_idempotently(&w, &id, &expected, t);
}

/// A file nono cannot read after the run even by regaining access (someone else's, here
/// root's, mode 000: the user may not change its mode) is recorded without its content,
/// marked so, and the rest of the record is kept; restore does not need that content.
/// Only an unprivileged nono can meet this (root reads everything), and only if something
/// outside the sandbox makes the file so: the test does it while the command waits.
#[test]
fn content_that_cannot_be_read_is_recorded_as_not_saved() {
    let w = World::new(User::Nobody);
    let t = &w.work;
    w.write(&t.join("edited.txt"), "before the session\n");
    w.write(&t.join("plain.txt"), "unchanged\n");
    w.hand_over(t);
    let expected = w.root.join("expected");
    copy_tree(t, &expected);

    let mut cmd = w.sandbox(
        &["--rollback"],
        &[
            "/bin/sh",
            "-c",
            "set -e; echo agent > edited.txt; echo new > made.txt; echo s > made-2.txt; \
             touch ready; while [ ! -e go ]; do sleep 0.05; done; rm ready go",
        ],
    );
    cmd.stdin(std::process::Stdio::null());
    let child = spawn(&mut cmd);
    assert!(wait_until(Duration::from_secs(30), || t
        .join("ready")
        .exists()));
    for f in ["edited.txt", "made.txt"] {
        std::os::unix::fs::lchown(t.join(f), Some(0), Some(0)).unwrap();
        fs::set_permissions(t.join(f), fs::Permissions::from_mode(0o000)).unwrap();
    }
    fs::write(t.join("go"), "").unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(60));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("could not be saved"),
        "{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains("could not record"),
        "{}",
        out.describe()
    );

    let id = latest_session(&w);
    let v = show_json(&w, &id);
    let changes = v["changes"].as_array().expect("a change record");
    let find = |name: &str| {
        changes
            .iter()
            .find(|c| c["path"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name}: {v}"))
    };
    for (name, op) in [("/edited.txt", "modified"), ("/made.txt", "created")] {
        let c = find(name);
        assert_eq!(c["op"], op, "{c}");
        assert!(c["after"].get("hash").is_none(), "{c}");
        assert!(
            c["after"]["content_not_saved"]
                .as_str()
                .is_some_and(|r| r.contains("Permission denied")),
            "{c}"
        );
    }
    let saved = find("/made-2.txt");
    assert_eq!(saved["op"], "created", "{saved}");
    assert!(saved["after"]["hash"].is_string(), "{saved}");
    assert_eq!(changes.len(), 3, "{v}");
    let shown = nono(&w, &["rollback", "show", &id, "--diff"]);
    assert_eq!(shown.code(), Some(0), "{}", shown.describe());
    assert!(
        shown.stdout.contains("content not saved: cannot read it"),
        "{}",
        shown.stdout
    );

    restore(&w, &id, &[]);
    assert_same_tree(&expected, t);
    assert_nothing_left_to_restore(&w, &id);
}

/// What the command writes is stored only for `show --diff`, up to the byte limit: past it,
/// the change is recorded without its content, and restore (which needs only what was there
/// before) still returns the tree.
fn after_run_content_is_capped(user: User) {
    let w = World::new(user);
    let t = &w.work;
    w.write(&t.join("notes.txt"), "before\n");
    w.hand_over(t);
    let expected = w.root.join("expected");
    copy_tree(t, &expected);
    let mut cmd = w.sandbox(
        &["--rollback"],
        &[
            "/bin/sh",
            "-c",
            "set -e; echo after > notes.txt; head -c 1048576 /dev/zero > big.bin",
        ],
    );
    cmd.env("NONO_ROLLBACK_MAX_BYTES", "64K");
    let out = run(&mut cmd);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);
    let v = show_json(&w, &id);
    let changes = v["changes"].as_array().expect("a change record");
    let big = changes
        .iter()
        .find(|c| c["path"].as_str().unwrap().ends_with("/big.bin"))
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(big["op"], "created", "{big}");
    assert!(
        big["after"]["content_not_saved"]
            .as_str()
            .is_some_and(|r| r.contains("after-run limit")),
        "{big}"
    );
    let notes = changes
        .iter()
        .find(|c| c["path"].as_str().unwrap().ends_with("/notes.txt"))
        .unwrap_or_else(|| panic!("{v}"));
    assert!(notes["after"]["hash"].is_string(), "{notes}");
    restore(&w, &id, &[]);
    assert_same_tree(&expected, t);
}

/// `rollback gitignore on`: what `.gitignore` ignores is neither snapshotted nor restored, and
/// `show` says which paths were left out, so nobody expects a restore to bring them back.
fn gitignored_paths_are_left_out_and_shown(user: User) {
    let w = World::new(user);
    let t = &w.work;
    w.write(&t.join(".gitignore"), "*.tmp\n");
    w.write(&t.join("scratch.tmp"), "ignored\n");
    w.write(&t.join("kept.txt"), "kept\n");
    w.hand_over(t);
    let profile = w.profile_file(
        "rollback-gitignore",
        &serde_json::json!({ "extends": ["default"], "rollback": { "gitignore": true } }),
    );
    let profile = profile.display().to_string();
    let out = run_rollback(
        &w,
        &["--profile", &profile],
        "set -e; echo changed > scratch.tmp; echo changed > kept.txt",
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);
    let v = show_json(&w, &id);
    let left: Vec<&str> = v["left_out"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(left.iter().any(|p| p.ends_with("/scratch.tmp")), "{v}");
    let changed: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].ends_with("/kept.txt"));
    let text = nono(&w, &["rollback", "show", &id]);
    assert!(
        text.stdout.contains("left out") && text.stdout.contains("scratch.tmp"),
        "{}",
        text.stdout
    );
    restore(&w, &id, &[]);
    assert_eq!(fs::read(t.join("kept.txt")).unwrap(), b"kept\n");
    assert_eq!(fs::read(t.join("scratch.tmp")).unwrap(), b"changed\n");
}

/// A 100 MB file: stored once, diffed as binary, restored byte for byte.
#[test]
fn large_file_round_trip() {
    let w = World::new(User::Nobody);
    let big = w.work.join("big.bin");
    {
        let mut f = fs::File::create(&big).unwrap();
        let block = noise(1 << 20, 7);
        for i in 0..100u8 {
            let mut b = block.clone();
            b[0] = i;
            f.write_all(&b).unwrap();
        }
    }
    w.hand_over(&big);
    let expected = w.root.join("expected");
    copy_tree(&w.work, &expected);
    let out = run_rollback(
        &w,
        &[],
        "printf XYZ | dd of=big.bin bs=1 seek=52428800 conv=notrunc 2>/dev/null && \
         echo tail >> big.bin",
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);
    let d = nono(&w, &["rollback", "show", &id, "--diff"]);
    assert!(
        d.stdout
            .contains("binary or large: 104857600 bytes sha256:"),
        "{}",
        d.stdout
    );
    restore(&w, &id, &[]);
    assert_same_tree(&expected, &w.work);
}

/// A restore killed with SIGKILL part-way leaves a tree that is neither before nor after;
/// running the restore again completes it.
#[test]
fn interrupted_restore_completes_when_run_again() {
    let w = World::new(User::Root);
    for i in 0..3000 {
        w.write(
            &w.work.join(format!("d{}/f{i}.txt", i % 30)),
            format!("file {i}\n").repeat(200),
        );
    }
    let expected = w.root.join("expected");
    copy_tree(&w.work, &expected);
    let out = run_rollback(
        &w,
        &[],
        "set -e; for d in d*; do for f in $d/*; do echo agent >> $f; done; done; rm -r d0 d1",
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let id = latest_session(&w);

    let mut interrupted = false;
    for delay_ms in [150u64, 60, 20, 5, 1] {
        let mut child = spawn(&mut w.nono(["rollback", "restore", &id]));
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        if status.code().is_none() && entries_differ(&expected, &w.work) {
            interrupted = true;
            break;
        }
        // It finished first, or was killed only after the last file was back (the tree is
        // whole again but for the directory times, which restore sets silently as it leaves
        // each directory, so a second run would have no path to report): redo the damage with
        // a new session and try faster.
        let out = run_rollback(&w, &[], "set -e; for f in d*/*; do echo again >> $f; done");
        assert_eq!(out.code(), Some(0), "{}", out.describe());
    }
    assert!(interrupted, "could not interrupt a restore part-way");
    let again = restore(&w, &id, &[]);
    // `ID: N path(s) restored`; a bare "0 path(s)" would also match "10 path(s)".
    assert!(
        again.stdout.contains(" path(s) restored") && !again.stdout.contains(": 0 path(s)"),
        "{}",
        again.stdout
    );
    assert_same_tree(&expected, &w.work);
}

/// The second snapshot of an unchanged 10,000-file tree stores no new object and reads no
/// file; with the fast-path index gone it rehashes but still stores nothing new.
#[test]
fn second_snapshot_of_an_unchanged_tree_writes_no_objects() {
    let w = World::new(User::Nobody);
    for i in 0..10_000 {
        let p = w.work.join(format!("d{}/f{i}", i % 100));
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, format!("content of file {i}\n")).unwrap();
    }
    w.hand_over(&w.work);
    let out = run_rollback(&w, &[], "true");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let first = latest_session(&w);
    let store = store(&w);
    let objects = count_objects(&store);
    assert!(objects >= 10_000, "{objects}");

    let out = run_rollback(&w, &[], "true");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let second = latest_session(&w);
    assert_ne!(first, second);
    assert_eq!(count_objects(&store), objects);
    let v = show_json(&w, &second);
    assert_eq!(v["new_objects"], 0, "{v}");
    assert_eq!(v["snapshot"]["hashed_files"], 0, "{v}");
    assert_eq!(v["snapshot"]["entries"].as_u64().unwrap(), 10_000 + 100 + 2);

    // Without the fast path (index removed) every file is read again, and deduplicated.
    fs::remove_dir_all(store.join("last")).unwrap();
    let out = run_rollback(&w, &[], "true");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let third = latest_session(&w);
    let v = show_json(&w, &third);
    assert_eq!(v["snapshot"]["hashed_files"], 10_001, "{v}");
    assert_eq!(v["new_objects"], 0, "{v}");
    assert_eq!(count_objects(&store), objects);
}

#[test]
fn prune_keeps_what_retained_sessions_need() {
    let w = World::new(User::Nobody);
    w.write(&w.work.join("a.txt"), "v0\n");
    for i in 1..=3 {
        let out = run_rollback(&w, &[], &format!("echo v{i} > a.txt"));
        assert_eq!(out.code(), Some(0), "{}", out.describe());
    }
    let newest = latest_session(&w);
    // --dry-run says what --keep 0 would delete (everything) and deletes nothing.
    let dry = nono(
        &w,
        &["rollback", "prune", "--keep", "0", "--dry-run", "--json"],
    );
    assert_eq!(dry.code(), Some(0), "{}", dry.describe());
    let d: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(d["sessions_removed"].as_array().unwrap().len(), 3, "{d}");
    let list = nono(&w, &["rollback", "list", "--json"]);
    let l: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(
        l.as_array().unwrap().len(),
        3,
        "a dry run deleted something"
    );
    let out = nono(&w, &["rollback", "prune", "--keep", "1", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["sessions_removed"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["objects_removed"].as_u64().unwrap() >= 2, "{v}");
    let list = nono(&w, &["rollback", "list", "--json"]);
    let l: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(l.as_array().unwrap().len(), 1);
    // The kept session still restores (its objects survived the sweep).
    restore(&w, &newest, &[]);
    assert_eq!(fs::read(w.work.join("a.txt")).unwrap(), b"v2\n");
    // An ambiguous or unknown prefix is refused with the reason.
    let bad = nono(&w, &["rollback", "show", "nope"]);
    assert_eq!(bad.code(), Some(1));
    assert!(bad.stderr.contains("no session"), "{}", bad.stderr);
}
