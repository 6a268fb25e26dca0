//! One policy, three front-ends, one IR; and JSON → IR → JSON round trips.

use nono_policy::builtin::Builtins;
use nono_policy::export;
use nono_policy::resolve::compile;
use nono_policy::source::{Format, MemorySource, ProfileSource, SourceFile};

const LANG: &str = r#"
# The same policy in the language...
profile same
version 1.2.3
description "one policy, three spellings"

read      /usr/** /etc/hosts
readwrite $WORKDIR/**
exec      /usr/bin/**
deny      $HOME/.ssh/**
deny write $WORKDIR/.git/hooks/**

exec deny /usr/bin/sudo

net allow domain registry.npmjs.org
net allow domain *.github.com port 443,8443
net allow cidr 10.0.0.0/8 tcp port 5432
net listen tcp port 3000-3010

ipc signals unscoped
ipc unix-socket $XDG_RUNTIME_DIR/bus

env mode clean
env pass TERM LANG LC_*
env strip AWS_*

audit all
rollback on
rollback exclude vendor
rollback include build
"#;

const JSON: &str = r#"{
  "name": "same",
  "version": "1.2.3",
  "description": "one policy, three spellings",
  "filesystem": {
    "read": ["/usr/**", "/etc/hosts"],
    "readwrite": ["$WORKDIR/**"],
    "exec": ["/usr/bin/**"],
    "deny": ["$HOME/.ssh/**"],
    "deny_write": ["$WORKDIR/.git/hooks/**"]
  },
  "exec": {"deny": ["/usr/bin/sudo"]},
  "network": {
    "domains": ["registry.npmjs.org", {"domain": "*.github.com", "ports": [443, 8443]}],
    "cidrs": [{"cidr": "10.0.0.0/8", "protocol": "tcp", "ports": [5432]}],
    "listen": [{"protocol": "tcp", "ports": ["3000-3010"]}]
  },
  "ipc": {"scope_signals": false, "unix_sockets": ["$XDG_RUNTIME_DIR/bus"]},
  "env": {"mode": "clean", "pass": ["TERM", "LANG", "LC_*"], "strip": ["AWS_*"]},
  "audit": {"level": "all"},
  "rollback": {"enabled": true, "exclude": ["vendor"], "include": ["build"]}
}"#;

const YAML: &str = r#"
name: same
version: "1.2.3"
description: one policy, three spellings
filesystem:
  read: [/usr/**, /etc/hosts]
  readwrite: [$WORKDIR/**]
  exec: [/usr/bin/**]
  deny: [$HOME/.ssh/**]
  deny_write: [$WORKDIR/.git/hooks/**]
exec:
  deny: [/usr/bin/sudo]
network:
  domains:
    - registry.npmjs.org
    - domain: "*.github.com"
      ports: [443, 8443]
  cidrs:
    - {cidr: 10.0.0.0/8, protocol: tcp, ports: [5432]}
  listen:
    - {protocol: tcp, ports: ["3000-3010"]}
ipc:
  scope_signals: false
  unix_sockets: [$XDG_RUNTIME_DIR/bus]
env:
  mode: clean
  pass: [TERM, LANG, LC_*]
  strip: [AWS_*]
audit: {level: all}
rollback: {enabled: true, exclude: [vendor], include: [build]}
"#;

fn file(name: &str, text: &str, format: Format) -> SourceFile {
    SourceFile {
        name: name.into(),
        text: text.into(),
        format,
    }
}

#[test]
fn the_three_front_ends_produce_an_identical_ir() {
    let none = MemorySource::default();
    let lang = compile(&file("same.nono", LANG, Format::Lang), &none).unwrap();
    let json = compile(&file("same.json", JSON, Format::Json), &none).unwrap();
    let yaml = compile(&file("same.yaml", YAML, Format::Yaml), &none).unwrap();
    assert!(
        lang.semantics_eq(&json),
        "lang vs json:\n{lang:#?}\n{json:#?}"
    );
    assert!(
        json.semantics_eq(&yaml),
        "json vs yaml:\n{json:#?}\n{yaml:#?}"
    );
    // Provenance differs only in where things were written; every rule is located.
    for p in [&lang, &json, &yaml] {
        for origins in p.provenance.rules.values() {
            assert!(origins.iter().all(|o| o.line > 0), "{:?}", p.provenance);
        }
    }
    assert_eq!(
        &*lang.provenance.origin(lang.fs[0].id).unwrap().source,
        "same.nono"
    );
}

#[test]
fn json_ir_json_round_trip_is_stable() {
    let none = MemorySource::default();
    let ir = compile(&file("same.json", JSON, Format::Json), &none).unwrap();
    let out = serde_json::to_string_pretty(&export::to_doc(&ir)).unwrap();
    let ir2 = compile(&file("out.json", &out, Format::Json), &none).unwrap();
    assert!(ir.semantics_eq(&ir2));
    let out2 = serde_json::to_string_pretty(&export::to_doc(&ir2)).unwrap();
    assert_eq!(out, out2, "exported JSON must be a fixed point");
    // The language export compiles back to the same IR too.
    let lang = export::to_lang(&ir);
    let ir3 = compile(&file("out.nono", &lang, Format::Lang), &none).unwrap();
    assert!(ir.semantics_eq(&ir3), "{lang}");
}

#[test]
fn every_builtin_profile_compiles_and_round_trips() {
    let names = Builtins.profile_names();
    for required in [
        "default",
        "python-dev",
        "node-dev",
        "rust-dev",
        "go-dev",
        "claude-code",
        "codex",
    ] {
        assert!(
            names.contains(&required.to_string()),
            "missing built-in profile {required}"
        );
    }
    for name in names {
        let root = Builtins.profile(&name).unwrap();
        let p = compile(&root, &Builtins).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert_eq!(p.meta.name, name);
        assert!(
            p.meta.description.is_some() && p.meta.version.is_some(),
            "{name} needs a version and a description"
        );
        // Every built-in denies the credentials group.
        assert!(
            p.fs.iter()
                .any(|r| r.effect == nono_policy::ir::Effect::Deny
                    && r.path.to_string() == "$HOME/.ssh/**"),
            "{name} must deny ~/.ssh"
        );
        let json = serde_json::to_string(&export::to_doc(&p)).unwrap();
        let back = compile(
            &file("x.json", &json, Format::Json),
            &MemorySource::default(),
        )
        .unwrap();
        assert!(
            p.semantics_eq(&Policy {
                meta: p.meta.clone(),
                ..back
            }),
            "{name} does not round-trip"
        );
    }
}

use nono_policy::ir::Policy;
