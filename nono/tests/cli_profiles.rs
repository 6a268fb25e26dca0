//! The policy and profile commands, through the real binary.

use std::path::Path;
use std::process::{Command, Output};

struct Env {
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            home: tempfile::tempdir().unwrap(),
        }
    }
    fn nono(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_nono"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("cfg"))
            .current_dir(self.home.path())
            .output()
            .unwrap()
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.home.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const BUILTINS: [&str; 7] = [
    "default",
    "python-dev",
    "node-dev",
    "rust-dev",
    "go-dev",
    "claude-code",
    "codex",
];

#[test]
fn version_and_help_have_examples() {
    let env = Env::new();
    let v = env.nono(&["--version"]);
    assert!(v.status.success() && stdout(&v).starts_with("nono "));
    for args in [
        vec!["--help"],
        vec!["policy", "compile", "--help"],
        vec!["profile", "init", "--help"],
        vec!["run", "--help"],
    ] {
        let o = env.nono(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(
            stdout(&o).contains("Examples:"),
            "{args:?} --help has no examples:\n{}",
            stdout(&o)
        );
    }
}

#[test]
fn list_shows_every_builtin_and_user_profiles() {
    let env = Env::new();
    let o = env.nono(&["profile", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for b in BUILTINS {
        assert!(names.contains(&b), "{b} missing from {names:?}");
    }
    // A user profile with a hostile description is listed with the escape sequence escaped.
    std::fs::create_dir_all(env.home.path().join("cfg/nono/profiles")).unwrap();
    env.write(
        "cfg/nono/profiles/evil.json",
        "{\"description\": \"\\u001b[31mred\\nline\"}",
    );
    let o = env.nono(&["profile", "list"]);
    let out = stdout(&o);
    assert!(
        out.contains("evil") && !out.contains('\u{1b}') && out.contains("\\u{1b}[31mred\\nline"),
        "{out}"
    );
}

#[test]
fn show_resolves_extends_and_groups() {
    let env = Env::new();
    let o = env.nono(&["profile", "show", "claude-code"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("profile claude-code"));
    assert!(out.contains("deny $HOME/.ssh/**"), "{out}");
    assert!(
        out.contains("builtin:groups/credentials:"),
        "origins are shown: {out}"
    );
    let o = env.nono(&["profile", "show", "claude-code", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        doc.get("extends").is_none(),
        "the shown profile is flattened"
    );
    // The JSON shown is itself a valid, self-contained profile.
    let path = env.write("shown.json", &stdout(&o));
    let o = env.nono(&["profile", "validate", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn init_writes_a_valid_skeleton_and_never_overwrites_silently() {
    let env = Env::new();
    let o = env.nono(&["profile", "init", "my-agent", "--extends", "node-dev"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = env.home.path().join("cfg/nono/profiles/my-agent.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"node-dev\"") && text.contains("$schema"));
    assert!(env
        .nono(&["profile", "validate", "my-agent"])
        .status
        .success());
    let again = env.nono(&["profile", "init", "my-agent"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "the existing profile is untouched"
    );
    assert_eq!(
        env.nono(&["profile", "init", "../escape"]).status.code(),
        Some(2)
    );
    let bad_parent = env.nono(&["profile", "init", "x", "--extends", "nodedev"]);
    assert_eq!(bad_parent.status.code(), Some(1));
    assert!(
        stderr(&bad_parent).contains("did you mean `node-dev`?"),
        "{}",
        stderr(&bad_parent)
    );
}

#[test]
fn validate_reports_file_line_column_with_a_caret() {
    let env = Env::new();
    let path = env.write(
        "bad.yaml",
        "name: bad\nfilesystem:\n  read:\n    - /usr/**\n    - relative/path\n",
    );
    let o = env.nono(&["profile", "validate", &path]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("{path}:5:7")), "{err}");
    assert!(
        err.contains("5 |     - relative/path") && err.contains("^^^^^^^^^^^^^"),
        "{err}"
    );
    let o = env.nono(&["profile", "validate", &path, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["loc"]["line"], 5);
    // An unknown name lists close matches.
    let o = env.nono(&["profile", "validate", "pyton-dev"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("python-dev"), "{}", stderr(&o));
    // Language errors too.
    let path = env.write("bad.nono", "profile bad\nreed /usr/**\n");
    let o = env.nono(&["profile", "validate", &path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{path}:2:1")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn diff_compares_resolved_rules() {
    let env = Env::new();
    let same = env.nono(&["profile", "diff", "default", "default"]);
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));
    let d = env.nono(&["profile", "diff", "default", "claude-code"]);
    assert_eq!(d.status.code(), Some(1));
    assert!(
        stdout(&d)
            .lines()
            .any(|l| l.starts_with("+net allow domain api.anthropic.com")),
        "{}",
        stdout(&d)
    );
    assert!(
        !stdout(&d).contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn schema_is_published() {
    let env = Env::new();
    let o = env.nono(&["profile", "schema"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["title"], "nono profile");
    assert!(v["properties"]["filesystem"].is_object());
}

#[test]
fn compile_text_names_mechanisms_and_json_is_byte_identical() {
    let env = Env::new();
    let text = env.nono(&["policy", "compile", "default"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let out = stdout(&text);
    assert!(
        out.contains("Landlock") && out.contains("builtin:default:"),
        "{out}"
    );
    let a = env.nono(&["policy", "compile", "claude-code", "--format", "json"]);
    let b = env.nono(&["policy", "compile", "claude-code", "--format", "json"]);
    assert!(a.status.success());
    assert_eq!(
        a.stdout, b.stdout,
        "the same input must give byte-identical output"
    );
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    let out_file = env.home.path().join("cc.policy.json");
    let o = env.nono(&[
        "policy",
        "compile",
        "claude-code",
        "--format",
        "json",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(&out_file).unwrap(), a.stdout);
    assert!(!Path::new(&format!("{}.tmp", out_file.display())).exists());
}

#[test]
fn compile_warns_about_what_an_old_kernel_cannot_enforce() {
    let env = Env::new();
    let o = env.nono(&["policy", "compile", "claude-code", "--target-abi", "3"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.to_lowercase().contains("warning"), "{out}");
    assert!(out.contains("ABI 4") || out.contains("6.7"), "{out}");
    assert_eq!(
        env.nono(&["policy", "compile", "default", "--target-abi", "9"])
            .status
            .code(),
        Some(2)
    );
}
