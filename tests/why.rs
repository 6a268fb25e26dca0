//! `nono why`: the explanation names the deciding rule and where it was written, so a user
//! can tell a credentials deny from a missing grant.

use nono_e2e::{as_root_and_nobody, run, Finished, User, World};

as_root_and_nobody!(
    case01_why_credentials_path_names_deny_rule_and_source,
    case01_why_credentials_path_json_names_deny_rule,
    why_workspace_path_names_the_grant,
    case18_why_outbound_host_is_denied_by_default,
);

fn why(w: &World, args: &[&str]) -> Finished {
    let mut full = vec!["why"];
    full.extend_from_slice(args);
    let out = run(&mut w.nono(&full));
    // An explanation is not a failure of the command: 0, or 1 for "denied", never a usage error.
    assert!(
        matches!(out.code(), Some(0) | Some(1)),
        "{}",
        out.describe()
    );
    out
}

fn case01_why_credentials_path_names_deny_rule_and_source(user: User) {
    let w = World::new(user);
    let key = w.key().display().to_string();
    let out = why(&w, &["--path", &key, "--op", "read"]);
    let text = out.stdout.to_lowercase();
    assert!(text.contains("deny"), "must say denied\n{}", out.describe());
    assert!(
        out.stdout.contains(".ssh"),
        "must name the deny rule on ~/.ssh\n{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("builtin:"),
        "must name where the rule was written (a built-in profile or group)\n{}",
        out.describe()
    );
}

fn case01_why_credentials_path_json_names_deny_rule(user: User) {
    let w = World::new(user);
    let key = w.key().display().to_string();
    let out = why(&w, &["--path", &key, "--op", "read", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("--json output is not JSON: {e}\n{}", out.describe()));
    let flat = json.to_string().to_lowercase();
    assert!(
        flat.contains("deny") && flat.contains(".ssh") && flat.contains("builtin:"),
        "the JSON must carry the decision, the rule and its source: {json:#}"
    );
}

fn why_workspace_path_names_the_grant(user: User) {
    let w = World::new(user);
    let notes = w.work.join("notes.txt").display().to_string();
    // The current directory is the workspace, so the default profile's `$WORKDIR/**` applies.
    let out = why(&w, &["--path", &notes, "--op", "write"]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let text = out.stdout.to_lowercase();
    assert!(
        text.contains("allow"),
        "must say allowed\n{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("$WORKDIR") || out.stdout.contains(&w.work.display().to_string()),
        "must name the workspace grant\n{}",
        out.describe()
    );
}

fn case18_why_outbound_host_is_denied_by_default(user: User) {
    let w = World::new(user);
    let out = why(&w, &["--host", "127.0.0.1", "--port", "8080"]);
    let text = out.stdout.to_lowercase();
    assert!(
        text.contains("den") || text.contains("block"),
        "an outbound connection no rule allows must be explained as denied\n{}",
        out.describe()
    );
}
