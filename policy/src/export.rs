//! From the IR back to documents: a flattened [`ProfileDoc`] (for JSON/YAML output and the
//! JSON → IR → JSON round trip) and the policy language (for `nono profile show`).
//!
//! The exported profile has no `extends` or `use`: it is the resolved policy, every rule spelt
//! out, so it compiles back to the same IR on its own.

use std::fmt::Write as _;

use crate::doc::*;
use crate::ir::*;
use crate::net::{PortSet, PortSpec};

fn port_specs(ports: &PortSet) -> Vec<PortSpec> {
    ports
        .ranges()
        .iter()
        .map(|r| {
            if r.first == r.last {
                PortSpec::Number(r.first.into())
            } else {
                PortSpec::Text(r.to_string())
            }
        })
        .collect()
}

fn bare(s: impl ToString) -> Located<String> {
    Located::bare(s.to_string())
}

/// The resolved policy as a self-contained profile document.
pub fn to_doc(p: &Policy) -> ProfileDoc {
    let mut doc = ProfileDoc {
        name: Some(p.meta.name.clone()),
        version: p.meta.version.clone(),
        description: p.meta.description.clone(),
        ..ProfileDoc::default()
    };
    for r in &p.fs {
        let fs = &mut doc.filesystem;
        let path = r.path.to_string();
        match (r.effect, r.access) {
            (Effect::Deny, a) if a == Access::ALL => fs.deny.push(bare(&path)),
            (Effect::Allow, a) if a == Access::READ_WRITE => fs.readwrite.push(bare(&path)),
            (Effect::Allow, a) if a.contains(Access::READ_WRITE) => {
                fs.readwrite.push(bare(&path));
                fs.exec.push(bare(&path));
            }
            (effect, a) => {
                for kind in a.kinds() {
                    let list = match (effect, kind) {
                        (Effect::Allow, AccessKind::Read) => &mut fs.read,
                        (Effect::Allow, AccessKind::Write) => &mut fs.write,
                        (Effect::Allow, AccessKind::Exec) => &mut fs.exec,
                        (Effect::Deny, AccessKind::Read) => &mut fs.deny_read,
                        (Effect::Deny, AccessKind::Write) => &mut fs.deny_write,
                        (Effect::Deny, AccessKind::Exec) => &mut fs.deny_exec,
                    };
                    list.push(bare(&path));
                }
            }
        }
    }
    doc.exec.deny = p.exec.deny.iter().map(|r| bare(&r.path)).collect();
    doc.exec.allow_only = p
        .exec
        .allow_only
        .as_ref()
        .map(|v| v.iter().map(|r| bare(&r.path)).collect());
    if p.net.mode == NetMode::Unrestricted {
        doc.network.allow_all = Some(true);
    }
    doc.network.domains = p
        .net
        .domains
        .iter()
        .map(|r| {
            Located::bare(if r.ports == PortSet::web_default() {
                DomainEntry::Name(r.domain.to_string())
            } else {
                DomainEntry::WithPorts {
                    domain: r.domain.to_string(),
                    ports: port_specs(&r.ports),
                }
            })
        })
        .collect();
    doc.network.cidrs = p
        .net
        .cidrs
        .iter()
        .map(|r| {
            Located::bare(CidrEntry {
                cidr: r.net.to_string(),
                protocol: r.protocol,
                ports: port_specs(&r.ports),
            })
        })
        .collect();
    doc.network.listen = p
        .net
        .listen
        .iter()
        .map(|r| {
            Located::bare(ListenEntry {
                protocol: r.protocol,
                ports: port_specs(&r.ports),
            })
        })
        .collect();
    let ipc_default = IpcPolicy::default();
    if p.ipc.scope_signals != ipc_default.scope_signals {
        doc.ipc.scope_signals = Some(p.ipc.scope_signals);
    }
    if p.ipc.scope_abstract_unix != ipc_default.scope_abstract_unix {
        doc.ipc.scope_abstract_unix = Some(p.ipc.scope_abstract_unix);
    }
    doc.ipc.unix_sockets = p.ipc.unix_sockets.iter().map(|r| bare(&r.path)).collect();
    if p.env.mode == EnvMode::Clean {
        doc.env.mode = Some(EnvModeDoc::Clean);
    }
    doc.env.pass = p.env.pass.iter().map(bare).collect();
    doc.env.strip = p.env.strip.iter().map(bare).collect();
    if p.audit.level != AuditLevel::default() {
        doc.audit.level = Some(p.audit.level);
    }
    if p.rollback.enabled {
        doc.rollback.enabled = Some(true);
    }
    if p.rollback.gitignore {
        doc.rollback.gitignore = Some(true);
    }
    doc.rollback.exclude = added_exclusions(p).into_iter().map(bare).collect();
    doc.rollback.include = taken_back(p).into_iter().map(bare).collect();
    if p.overrides.allow_broad_write {
        doc.overrides.allow_broad_write = Some(true);
    }
    doc
}

/// A value as the policy language writes it: bare when it is a plain word, quoted otherwise.
pub fn lang_value(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with('#')
        && !s.starts_with('"')
        && !s.chars().any(|c| {
            c.is_whitespace() || c == '"' || c == '\\' || c.is_control() || c == '{' || c == '}'
        });
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The resolved policy in the policy language, one rule per line, each with a comment naming
/// its rule id and where it was written.
pub fn to_lang(p: &Policy) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Resolved profile: every `extends` and `use` expanded."
    );
    if !p.meta.extends.is_empty() {
        let _ = writeln!(out, "# Built from: {}", p.meta.extends.join(", "));
    }
    let _ = writeln!(out, "profile {}", lang_value(&p.meta.name));
    if let Some(v) = &p.meta.version {
        let _ = writeln!(out, "version {}", lang_value(v));
    }
    if let Some(d) = &p.meta.description {
        let _ = writeln!(out, "description {}", lang_value(d));
    }
    let origin = |id: RuleId| {
        let all = p.provenance.rules.get(&id).map(|v| {
            v.iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        });
        format!(
            "{id}{}",
            all.map(|a| format!(" from {a}")).unwrap_or_default()
        )
    };
    let rules: Vec<(String, RuleId)> =
        p.fs.iter()
            .map(|r| {
                let verb = match (r.effect, r.access) {
                    (Effect::Deny, a) if a == Access::ALL => "deny".to_string(),
                    (Effect::Deny, a) => format!("deny {}", a.keyword().replace('+', " ")),
                    (Effect::Allow, a) => a.keyword(),
                };
                (format!("{verb} {}", lang_value(&r.path.to_string())), r.id)
            })
            .collect();
    if !rules.is_empty() {
        out.push('\n');
    }
    for (text, id) in rules {
        // `read+exec` is two statements in the language; both carry the same rule id.
        if let Some((verb, path)) = text.split_once(' ') {
            if verb.contains('+') {
                for v in verb.split('+') {
                    let _ = writeln!(out, "{v} {path}  # {}", origin(id));
                }
                continue;
            }
        }
        let _ = writeln!(out, "{text}  # {}", origin(id));
    }
    for r in &p.exec.deny {
        let _ = writeln!(
            out,
            "exec deny {}  # {}",
            lang_value(&r.path.to_string()),
            origin(r.id)
        );
    }
    for r in p.exec.allow_only.iter().flatten() {
        let _ = writeln!(
            out,
            "exec only {}  # {}",
            lang_value(&r.path.to_string()),
            origin(r.id)
        );
    }
    out.push('\n');
    match p.net.mode {
        NetMode::Unrestricted => out.push_str("net allow all\n"),
        NetMode::Blocked => out.push_str("# outbound network: blocked except the rules below\n"),
    }
    for r in &p.net.domains {
        let ports = if r.ports == PortSet::web_default() {
            String::new()
        } else {
            format!(" port {}", r.ports)
        };
        let _ = writeln!(
            out,
            "net allow domain {}{ports}  # {}",
            r.domain,
            origin(r.id)
        );
    }
    for r in &p.net.cidrs {
        let ports = if r.ports.is_empty() {
            String::new()
        } else {
            format!(" port {}", r.ports)
        };
        let _ = writeln!(
            out,
            "net allow cidr {} {}{ports}  # {}",
            r.net,
            r.protocol,
            origin(r.id)
        );
    }
    for r in &p.net.listen {
        let _ = writeln!(
            out,
            "net listen {} port {}  # {}",
            r.protocol,
            r.ports,
            origin(r.id)
        );
    }
    out.push('\n');
    let scoped = |b: bool| if b { "scoped" } else { "unscoped" };
    let _ = writeln!(out, "ipc signals {}", scoped(p.ipc.scope_signals));
    let _ = writeln!(
        out,
        "ipc abstract-unix {}",
        scoped(p.ipc.scope_abstract_unix)
    );
    for r in &p.ipc.unix_sockets {
        let _ = writeln!(
            out,
            "ipc unix-socket {}  # {}",
            lang_value(&r.path.to_string()),
            origin(r.id)
        );
    }
    let _ = writeln!(
        out,
        "env mode {}",
        if p.env.mode == EnvMode::Clean {
            "clean"
        } else {
            "inherit"
        }
    );
    if !p.env.pass.is_empty() {
        let _ = writeln!(out, "env pass {}", p.env.pass.join(" "));
    }
    if !p.env.strip.is_empty() {
        let _ = writeln!(out, "env strip {}", p.env.strip.join(" "));
    }
    let _ = writeln!(
        out,
        "audit {}",
        match p.audit.level {
            AuditLevel::Off => "off",
            AuditLevel::Denied => "denied",
            AuditLevel::All => "all",
        }
    );
    let _ = writeln!(
        out,
        "rollback {}",
        if p.rollback.enabled { "on" } else { "off" }
    );
    for (statement, names) in [
        ("rollback exclude", added_exclusions(p)),
        ("rollback include", taken_back(p)),
    ] {
        if !names.is_empty() {
            let values: Vec<String> = names.iter().map(|s| lang_value(s)).collect();
            let _ = writeln!(out, "{statement} {}", values.join(" "));
        }
    }
    if p.rollback.gitignore {
        out.push_str("rollback gitignore on\n");
    }
    if p.overrides.allow_broad_write {
        out.push_str("override allow-broad-write\n");
    }
    out
}

/// The exclusions the policy added to the defaults (`rollback exclude`).
fn added_exclusions(p: &Policy) -> Vec<String> {
    p.rollback
        .exclude
        .iter()
        .filter(|e| !DEFAULT_ROLLBACK_EXCLUDES.contains(&e.as_str()))
        .cloned()
        .collect()
}

/// The default exclusions the policy took back (`rollback include`).
fn taken_back(p: &Policy) -> Vec<String> {
    DEFAULT_ROLLBACK_EXCLUDES
        .iter()
        .filter(|d| !p.rollback.exclude.iter().any(|e| e == *d))
        .map(|d| d.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::lang_value;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(lang_value("$HOME/.ssh/**"), "$HOME/.ssh/**");
        assert_eq!(lang_value("a b"), "\"a b\"");
        assert_eq!(lang_value("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(lang_value(""), "\"\"");
        assert_eq!(lang_value("#x"), "\"#x\"");
        assert_eq!(lang_value("\u{1b}[31m"), "\"\\u{1b}[31m\"");
    }
}
