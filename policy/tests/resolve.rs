//! Resolution: extends, groups, merging, canonical order, and every bad input the issue names.

use nono_policy::ir::*;
use nono_policy::resolve::{compile, MAX_EXTENDS_DEPTH};
use nono_policy::source::{Format, MemorySource, SourceFile};
use nono_policy::PolicyError;

fn json(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.into(),
        text: text.into(),
        format: Format::Json,
    }
}
fn yaml(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.into(),
        text: text.into(),
        format: Format::Yaml,
    }
}

fn compile_json(text: &str) -> Result<Policy, PolicyError> {
    compile(&json("p.json", text), &MemorySource::default())
}

fn first_error(r: Result<Policy, PolicyError>) -> nono_policy::Diagnostic {
    r.expect_err("expected an error")
        .diagnostics
        .into_iter()
        .next()
        .unwrap()
}

#[test]
fn merges_duplicates_and_numbers_rules_canonically() {
    let a = compile_json(
        r#"{"filesystem": {"read": ["/usr/**", "$HOME/b"], "write": ["$HOME/b"], "deny": ["~/.ssh/**"]},
            "network": {"domains": ["b.example.com", {"domain": "a.example.com", "ports": [8443]}, "B.EXAMPLE.com."]}}"#,
    )
    .unwrap();
    let b = compile_json(
        r#"{"network": {"domains": ["b.example.com", {"domain": "a.example.com", "ports": [8443]}]},
            "filesystem": {"deny": ["$HOME/.ssh/**"], "readwrite": ["$HOME/b"], "read": ["/usr//**"]}}"#,
    )
    .unwrap();
    assert!(a.semantics_eq(&b), "{a:#?}\n{b:#?}");
    let texts: Vec<String> = a
        .rule_summaries()
        .into_iter()
        .map(|(id, t)| format!("{id} {t}"))
        .collect();
    assert_eq!(
        texts,
        [
            "r1 deny $HOME/.ssh/**",
            "r2 readwrite $HOME/b",
            "r3 read /usr/**",
            "r4 net allow domain a.example.com port 8443",
            "r5 net allow domain b.example.com port 80,443",
        ]
    );
    // Both places that wrote `$HOME/b` are kept.
    assert_eq!(a.provenance.rules[&RuleId(2)].len(), 2);
    assert_eq!(
        a.provenance.origin(RuleId(1)).unwrap().to_string(),
        "p.json:1:80"
    );
}

#[test]
fn extends_merges_parents_left_to_right_and_child_settings_win() {
    let src = MemorySource::default()
        .with_profile("base", json("builtin:base", r#"{"name": "base", "filesystem": {"read": ["/usr/**"]}, "audit": {"level": "all"}, "ipc": {"scope_signals": false}}"#))
        .with_profile("net", yaml("builtin:net", "name: net\nnetwork:\n  domains: [crates.io]\n  allow_all: true\n"));
    let child = json(
        "child.json",
        r#"{"name": "child", "extends": ["base", "net"], "network": {"allow_all": false}, "ipc": {"scope_signals": true}}"#,
    );
    let p = compile(&child, &src).unwrap();
    assert_eq!(p.meta.name, "child");
    assert_eq!(p.meta.extends, ["base", "net"]);
    assert_eq!(p.fs.len(), 1);
    assert_eq!(p.net.domains.len(), 1);
    assert_eq!(p.net.mode, NetMode::Blocked);
    assert_eq!(p.audit.level, AuditLevel::All);
    assert!(p.ipc.scope_signals);
    assert_eq!(
        &*p.provenance.origin(RuleId(1)).unwrap().source,
        "builtin:base"
    );
}

#[test]
fn diamond_is_merged_once() {
    let src = MemorySource::default()
        .with_profile(
            "root",
            json("root", r#"{"filesystem": {"read": ["/usr/**"]}}"#),
        )
        .with_profile("a", json("a", r#"{"extends": ["root"]}"#))
        .with_profile("b", json("b", r#"{"extends": ["root"]}"#));
    let p = compile(&json("c.json", r#"{"extends": ["a", "b"]}"#), &src).unwrap();
    assert_eq!(p.provenance.rules[&RuleId(1)].len(), 1);
    assert_eq!(p.meta.extends, ["root", "a", "b"]);
}

#[test]
fn extends_cycle_is_reported_with_the_chain() {
    let src = MemorySource::default()
        .with_profile(
            "a",
            json("a.json", "{\"name\": \"a\",\n \"extends\": [\"b\"]}"),
        )
        .with_profile(
            "b",
            json("b.json", "{\"name\": \"b\",\n \"extends\": [\"a\"]}"),
        );
    let d = first_error(compile(
        &json("a.json", "{\"name\": \"a\",\n \"extends\": [\"b\"]}"),
        &src,
    ));
    assert!(d.message.contains("cycle: a → b → a"), "{d}");
    assert_eq!(d.source, "b.json");
    assert_eq!(d.loc.unwrap().line, 2);
}

#[test]
fn deep_chains_are_bounded() {
    let mut src = MemorySource::default();
    for i in 0..40 {
        src = src.with_profile(
            &format!("p{i}"),
            json(
                &format!("p{i}"),
                &format!(r#"{{"name": "p{i}", "extends": ["p{}"]}}"#, i + 1),
            ),
        );
    }
    src = src.with_profile("p40", json("p40", r#"{"name": "p40"}"#));
    let d = first_error(compile(
        &json("top", r#"{"name": "top", "extends": ["p0"]}"#),
        &src,
    ));
    assert!(
        d.message
            .contains(&format!("deeper than {MAX_EXTENDS_DEPTH}")),
        "{d}"
    );
}

#[test]
fn unknown_profile_lists_close_matches() {
    let src = MemorySource::default()
        .with_profile("python-dev", json("x", "{}"))
        .with_profile("node-dev", json("y", "{}"));
    let d = first_error(compile(
        &json("p.json", r#"{"extends": ["pyhton-dev"]}"#),
        &src,
    ));
    assert_eq!(d.message, "unknown profile `pyhton-dev`");
    assert_eq!(d.help, ["did you mean `python-dev`?"]);
    assert_eq!(d.loc.unwrap().column, 14);
}

#[test]
fn groups_builtin_and_inline() {
    let src = MemorySource::default().with_group(
        "credentials",
        yaml("builtin:groups/credentials", "groups:\n  credentials:\n    filesystem:\n      deny: [\"$HOME/.ssh/**\"]\n    env:\n      strip: [AWS_*]\n"),
    );
    let p = compile(
        &json("p.json", r#"{"use": ["credentials", "mine"], "groups": {"mine": {"filesystem": {"read": ["/opt/**"]}}}}"#),
        &src,
    )
    .unwrap();
    assert_eq!(p.fs.len(), 2);
    assert_eq!(p.env.strip, ["AWS_*"]);
    assert_eq!(
        p.provenance.origin(p.fs[0].id).unwrap().to_string(),
        "builtin:groups/credentials:4:14"
    );
    let d = first_error(compile(&json("p.json", r#"{"use": ["credential"]}"#), &src));
    assert_eq!(d.help, ["did you mean `credentials`?"]);
}

#[test]
fn bad_paths_are_rejected_with_locations() {
    for (path, needle) in [
        ("", "empty path"),
        ("relative/x", "relative path"),
        ("~bob/.ssh", "another user's home"),
        ("$HOME/../etc", "`..` is not allowed"),
        ("/a/\u{0}b", "NUL"),
        ("$NOPE/x", "unknown variable"),
        ("/a/*.rs", "glob"),
    ] {
        let text = format!(
            "{{\"filesystem\": {{\"read\": [{}]}}}}",
            serde_json::to_string(path).unwrap()
        );
        let d = first_error(compile_json(&text));
        assert!(d.message.contains(needle), "{path:?}: {d}");
        assert_eq!(d.loc.map(|l| (l.line, l.column)), Some((1, 26)), "{path:?}");
    }
}

#[test]
fn broad_write_needs_an_override() {
    for p in ["/", "/**", "~", "$HOME/**"] {
        let d = first_error(compile_json(&format!(
            r#"{{"filesystem": {{"readwrite": ["{p}"]}}}}"#
        )));
        assert!(d.message.contains("granted writable"), "{p}: {d}");
        assert!(d.help[0].contains("allow-broad-write"));
    }
    assert!(
        compile_json(r#"{"filesystem": {"read": ["/**"], "readwrite": ["$HOME/src/**"]}}"#).is_ok()
    );
    assert!(compile_json(
        r#"{"filesystem": {"write": ["$HOME/**"]}, "overrides": {"allow_broad_write": true}}"#
    )
    .is_ok());
}

#[test]
fn bad_network_values_are_rejected_with_reasons() {
    for (net, needle) in [
        (r#"{"domains": ["*"]}"#, "every domain"),
        (r#"{"domains": ["*.com"]}"#, "public suffix"),
        (r#"{"domains": ["*.co.uk"]}"#, "public suffix"),
        (r#"{"domains": ["https://github.com/org"]}"#, "URL"),
        (
            r#"{"domains": [{"domain": "x.example.com", "ports": [0]}]}"#,
            "port `0`",
        ),
        (
            r#"{"domains": [{"domain": "x.example.com", "ports": [70000]}]}"#,
            "port `70000`",
        ),
        (
            r#"{"domains": [{"domain": "x.example.com", "ports": ["90-80"]}]}"#,
            "empty",
        ),
        (
            r#"{"cidrs": [{"cidr": "10.0.0.1/8", "protocol": "tcp"}]}"#,
            "host bits",
        ),
        (
            r#"{"cidrs": [{"cidr": "10.0.0.0/40", "protocol": "tcp"}]}"#,
            "not a CIDR",
        ),
        (
            r#"{"listen": [{"protocol": "tcp", "ports": []}]}"#,
            "at least one port",
        ),
    ] {
        let d = first_error(compile_json(&format!(r#"{{"network": {net}}}"#)));
        assert!(d.message.contains(needle), "{net}: {d}");
        assert!(d.loc.is_some(), "{net}");
    }
    let d = first_error(compile_json(
        r#"{"network": {"cidrs": [{"cidr": "10.0.0.0/8", "protocol": "tpc"}]}}"#,
    ));
    assert!(d.message.contains("unknown variant `tpc`"), "{d}");
}

#[test]
fn cidr_port_lists_merge_and_every_port_absorbs() {
    let p = compile_json(
        r#"{"network": {"cidrs": [
            {"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": [22]},
            {"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": [80]},
            {"cidr": "127.0.0.1", "protocol": "udp", "ports": [53]},
            {"cidr": "127.0.0.1", "protocol": "udp"}]}}"#,
    )
    .unwrap();
    assert_eq!(p.net.cidrs.len(), 2);
    assert_eq!(p.net.cidrs[0].ports.to_string(), "22,80");
    assert!(p.net.cidrs[1].ports.is_empty());
}

#[test]
fn every_error_is_reported_at_once_and_nothing_is_produced() {
    let err =
        compile_json(r#"{"filesystem": {"read": ["rel", "~x/y"]}, "network": {"domains": ["*"]}}"#)
            .unwrap_err();
    assert_eq!(err.diagnostics.len(), 3, "{err}");
}

#[test]
fn env_names_are_validated() {
    let d = first_error(compile_json(r#"{"env": {"strip": ["BAD-NAME"]}}"#));
    assert!(d.message.contains("not an environment variable name"));
    let p = compile_json(r#"{"env": {"mode": "clean", "pass": ["TERM", "LC_*"]}}"#).unwrap();
    assert!(p.env.passes("LC_ALL") && p.env.passes("TERM") && !p.env.passes("HOME"));
}

#[test]
fn env_policy_strips_dangerous_variables_unless_passed_by_exact_name() {
    let p = compile_json(r#"{"env": {"pass": ["LD_*"], "strip": ["SECRET_*"]}}"#).unwrap();
    assert!(
        !p.env.passes("LD_PRELOAD"),
        "a prefix must not smuggle LD_PRELOAD in"
    );
    assert!(p.env.passes("LD_BIND_NOW"));
    assert!(!p.env.passes("NODE_OPTIONS"));
    assert!(!p.env.passes("SECRET_KEY"));
    assert!(p.env.passes("PATH"));
    let p = compile_json(r#"{"env": {"pass": ["NODE_OPTIONS"]}}"#).unwrap();
    assert!(p.env.passes("NODE_OPTIONS"));
}

#[test]
fn huge_inputs_compile_in_bounded_time_or_are_refused() {
    // 100,000 distinct rules: accepted, and canonical.
    let paths: Vec<String> = (0..100_000).map(|i| format!("\"/data/d{i}/**\"")).collect();
    let text = format!("{{\"filesystem\": {{\"read\": [{}]}}}}", paths.join(","));
    let started = std::time::Instant::now();
    let p = compile_json(&text).unwrap();
    assert_eq!(p.fs.len(), 100_000);
    // Generous bound: this is a complexity guard (quadratic behaviour would take minutes),
    // not a speed target; the speed targets live in the criterion bench.
    assert!(started.elapsed().as_secs() < 60);
    // A 10 MB file is refused with a size error before parsing.
    let big = format!("{{\"description\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    let d = first_error(compile_json(&big));
    assert!(d.message.contains("too large"), "{d}");
}

#[test]
fn rollback_and_overrides_are_carried() {
    let p = compile_json(
        r#"{"rollback": {"enabled": true, "exclude": ["vendor"], "gitignore": true}}"#,
    )
    .unwrap();
    assert!(p.rollback.enabled && p.rollback.gitignore);
    assert!(
        p.rollback.exclude.contains(&"vendor".to_string())
            && p.rollback.exclude.contains(&"target".to_string())
    );
    let d = first_error(compile_json(r#"{"rollback": {"exclude": ["a/b"]}}"#));
    assert!(d.message.contains("not a path"));
}

#[test]
fn rollback_excludes_are_names_or_patterns_for_one_name() {
    let p = compile(
        &SourceFile {
            name: "p.nono".into(),
            text: "profile p\nrollback exclude vendor \"*.log\" \"[Bb]uild\"\n".into(),
            format: Format::Lang,
        },
        &MemorySource::default(),
    )
    .expect("names and patterns compile");
    for n in ["vendor", "*.log", "[Bb]uild"] {
        assert!(p.rollback.exclude.iter().any(|e| e == n), "{n}");
    }
    for (bad, needle) in [
        ("src/gen", "not a path"),
        ("[abc", "not a valid pattern"),
        ("{a,b", "not a valid pattern"),
    ] {
        let text = format!(
            "{{\"rollback\": {{\"exclude\": [{}]}}}}",
            serde_json::to_string(bad).unwrap()
        );
        let d = first_error(compile_json(&text));
        assert!(d.message.contains(needle), "{bad:?}: {d}");
        assert!(d.loc.is_some(), "{bad:?}: a location");
    }
}

#[test]
fn rollback_include_takes_back_an_exclusion() {
    let lang = |text: &str| SourceFile {
        name: "p.nono".into(),
        text: text.into(),
        format: Format::Lang,
    };
    let p = compile(
        &lang("profile p\nrollback exclude vendor\nrollback include build dist\n"),
        &MemorySource::default(),
    )
    .expect("compiles");
    let ex = &p.rollback.exclude;
    assert!(ex.iter().any(|e| e == "vendor") && ex.iter().any(|e| e == "target"));
    assert!(!ex.iter().any(|e| e == "build" || e == "dist"), "{ex:?}");
    // A child takes back what a parent excluded.
    let src = MemorySource::default()
        .with_profile("base", lang("profile base\nrollback exclude generated\n"));
    let child = compile(
        &lang("profile child\nextends base\nrollback include generated\n"),
        &src,
    )
    .expect("compiles");
    assert!(!child.rollback.exclude.iter().any(|e| e == "generated"));
    // Nothing by that name: a typo, reported where it was written.
    let d = first_error(compile(
        &lang("profile p\nrollback include biuld\n"),
        &MemorySource::default(),
    ));
    assert!(d.message.contains("no exclusion by that name"), "{d}");
    assert_eq!(d.loc.map(|l| l.line), Some(2));
    // The policy language export says it again, and compiles back to the same list.
    let text = nono_policy::export::to_lang(&p);
    assert!(text.contains("rollback include build dist"), "{text}");
    let back = compile(&lang(&text), &MemorySource::default()).expect("the export compiles");
    let mut a = p.rollback.exclude.clone();
    let mut b = back.rollback.exclude.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}
