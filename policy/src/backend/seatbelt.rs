//! The Seatbelt back-end: a macOS sandbox profile (SBPL) for `sandbox_init`.
//!
//! Layout: `(deny default)`, the process basics every program needs, then every grant in rule
//! order, then every deny. In SBPL the last matching rule wins, so denies placed after the
//! grants hold inside them: unlike Landlock, a deny inside a grant is exact here.
//!
//! Paths stay symbolic: `$HOME/.ssh` becomes `(string-append (param "HOME") "/.ssh")`. The
//! runtime passes every variable as a parameter (`HOME`, `WORKDIR`, `TMPDIR`, `XDG_*`, XDG
//! defaults already applied) **canonicalised**, because Seatbelt matches resolved paths. For
//! the same reason absolute paths under `/tmp`, `/var` and `/etc` are written under `/private`.
//!
//! Exact paths become `literal` (only that object), subtrees `subpath`, so exact scope is exact
//! here too.
//!
//! Seatbelt cannot filter outbound traffic by address or domain, only by port and
//! `localhost`: those rules are widened to "any host on these ports" and marked with a
//! `;; WARNING` comment. Ranges wider than [`MAX_LISTED_PORTS`] become `*`, also marked.
//!
//! Every rule is preceded by a comment naming its id, text and source. Comments and strings
//! are escaped so that no path or file name can end a comment or a string and inject rules.

use std::fmt::Write as _;

use crate::ir::{Access, Effect, ExecList, NetMode, Origin, Policy, RuleId};
use crate::net::{push_u32, IpNet, PortSet, Protocol};
use crate::path::{PolicyPath, Scope};

/// The widest port range written out port by port; wider ranges become `*`.
pub const MAX_LISTED_PORTS: u32 = 64;

/// Render the SBPL profile. Deterministic: rules appear in id order.
pub fn profile(policy: &Policy) -> String {
    let origins = first_origins(policy);
    let mut w = Writer {
        out: String::with_capacity(4096 + 160 * origins.len()),
        policy,
        origins,
    };
    w.header();
    w.basics();
    w.filesystem();
    w.exec();
    w.network();
    w.out
}

struct Writer<'p> {
    out: String,
    policy: &'p Policy,
    /// Each rule's first origin, at index `id - 1` (ids are dense from 1): one pass over the
    /// provenance map instead of a search per rule.
    origins: Vec<Option<&'p Origin>>,
}

/// [`Writer::origins`].
fn first_origins(policy: &Policy) -> Vec<Option<&Origin>> {
    let mut origins = vec![None; policy.max_rule_id() as usize];
    for (id, list) in &policy.provenance.rules {
        if let Some(slot) = (id.0 as usize)
            .checked_sub(1)
            .and_then(|i| origins.get_mut(i))
        {
            *slot = list.first();
        }
    }
    origins
}

impl Writer<'_> {
    fn line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn comment(&mut self, text: &str) {
        self.out.push_str(";; ");
        if has_control(text) {
            self.out.push_str(&comment_safe(text));
        } else {
            self.out.push_str(text);
        }
        self.out.push('\n');
    }

    fn section(&mut self, title: &str) {
        self.out.push('\n');
        self.comment(&format!("--- {title}"));
    }

    /// The comment naming a rule: its id, its text (as [`Policy::rule_summaries`] has it, which
    /// `write_text` writes) and where it was written.
    fn rule_comment(&mut self, id: RuleId, write_text: impl FnOnce(&mut String)) {
        let origin = match (id.0 as usize).checked_sub(1) {
            Some(i) if i < self.origins.len() => self.origins[i],
            // Id 0, or past every rule: not a rule of this policy, but answer as the map does.
            _ => self.policy.provenance.origin(id),
        };
        // The text is written straight into the profile, piece by piece rather than through
        // `fmt` (this runs once per rule), and taken back out in the rare case it needs
        // escaping.
        let start = self.out.len();
        self.out.push_str(";; r");
        push_u32(&mut self.out, id.0);
        self.out.push(' ');
        let text_start = self.out.len();
        write_text(&mut self.out);
        if has_control(&self.out[text_start..]) || origin.is_some_and(|o| has_control(&o.source)) {
            let text = self.out.split_off(text_start);
            self.out.truncate(start);
            match origin {
                Some(origin) => self.comment(&format!("{id} {text} from {origin}")),
                None => self.comment(&format!("{id} {text}")),
            }
            return;
        }
        if let Some(origin) = origin {
            self.out.push_str(" from ");
            self.out.push_str(&origin.source);
            // As `Origin`'s Display: no position for rules built in memory.
            if origin.line != 0 {
                self.out.push(':');
                push_u32(&mut self.out, origin.line);
                self.out.push(':');
                push_u32(&mut self.out, origin.column);
            }
        }
        self.out.push('\n');
    }

    fn header(&mut self) {
        let meta = &self.policy.meta;
        let version = meta
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        self.comment(&format!("nono policy {}{version}", meta.name));
        self.comment(&format!(
            "generated by nono-policy {}; do not edit",
            env!("CARGO_PKG_VERSION")
        ));
        self.comment("parameters: HOME WORKDIR TMPDIR XDG_* (canonical paths)");
        self.line("(version 1)");
        self.line("(deny default)");
    }

    fn basics(&mut self) {
        self.section("process basics");
        self.line("(allow process-fork)");
        self.line("(allow process-info* (target same-sandbox))");
        if self.policy.ipc.scope_signals {
            self.line("(allow signal (target same-sandbox))");
        } else {
            self.line("(allow signal)");
        }
        self.line("(allow sysctl-read)");
        self.line("(allow pseudo-tty)");
        self.line("(allow mach-lookup");
        for service in [
            "com.apple.system.logger",
            "com.apple.system.notification_center",
            "com.apple.system.opendirectoryd.libinfo",
            "com.apple.trustd.agent",
        ] {
            let _ = writeln!(self.out, "  (global-name {})", sbpl_str(service));
        }
        self.line(")");
    }

    fn filesystem(&mut self) {
        let policy = self.policy;
        self.section("filesystem grants");
        for r in policy.fs.iter().filter(|r| r.effect == Effect::Allow) {
            self.rule_comment(r.id, |s| r.write_summary(s));
            self.out.push_str("(allow ");
            self.out.push_str(operations(r.access, Effect::Allow));
            self.out.push(' ');
            push_path_filter(&mut self.out, &r.path);
            self.out.push_str(")\n");
        }
        self.section("filesystem denies (after the grants: the last match wins)");
        for r in policy.fs.iter().filter(|r| r.effect == Effect::Deny) {
            self.rule_comment(r.id, |s| r.write_summary(s));
            self.out.push_str("(deny ");
            self.out.push_str(operations(r.access, Effect::Deny));
            self.out.push(' ');
            push_path_filter(&mut self.out, &r.path);
            self.out.push_str(")\n");
        }
    }

    fn exec(&mut self) {
        let exec = &self.policy.exec;
        if exec.allow_only.is_none() && exec.deny.is_empty() {
            return;
        }
        self.section("exec restrictions");
        if let Some(only) = &exec.allow_only {
            for r in only {
                self.rule_comment(r.id, |s| r.write_summary(ExecList::Only, s));
            }
            if only.is_empty() {
                self.line("(deny process-exec)");
            } else {
                self.line("(deny process-exec (require-not (require-any");
                for r in only {
                    let _ = writeln!(self.out, "  {}", path_filter(&r.path));
                }
                self.line(")))");
            }
        }
        for r in &exec.deny {
            self.rule_comment(r.id, |s| r.write_summary(ExecList::Deny, s));
            self.out.push_str("(deny process-exec ");
            push_path_filter(&mut self.out, &r.path);
            self.out.push_str(")\n");
        }
    }

    fn network(&mut self) {
        let policy = self.policy;
        let net = &policy.net;
        self.section("network");
        if net.mode == NetMode::Unrestricted {
            self.comment("net allow all");
            self.line("(allow network*)");
            self.line("(allow mach-lookup (global-name \"com.apple.dnssd.service\"))");
        } else {
            if !net.domains.is_empty() {
                self.comment("name resolution for the domain rules");
                self.line("(allow mach-lookup (global-name \"com.apple.dnssd.service\"))");
            }
            for r in &net.domains {
                self.rule_comment(r.id, |s| r.write_summary(s));
                self.comment("WARNING: Seatbelt cannot filter by domain; any host on these ports");
                self.remote(Protocol::Tcp, "*", &r.ports);
            }
            for r in &net.cidrs {
                self.rule_comment(r.id, |s| r.write_summary(s));
                let host = if is_loopback(&r.net) {
                    "localhost"
                } else {
                    self.comment(
                        "WARNING: Seatbelt cannot filter by address; any host on these ports",
                    );
                    "*"
                };
                self.remote(r.protocol, host, &r.ports);
            }
            for r in &net.listen {
                self.rule_comment(r.id, |s| r.write_summary(s));
                for port in self.ports(&r.ports) {
                    self.out
                        .push_str("(allow network-bind network-inbound (local ");
                    self.out.push_str(r.protocol.keyword());
                    self.out.push_str(" \"*:");
                    push_port(&mut self.out, port);
                    self.out.push_str("\"))\n");
                }
            }
        }
        for r in &policy.ipc.unix_sockets {
            self.rule_comment(r.id, |s| r.write_summary(s));
            let filter = match r.path.scope() {
                Scope::Exact => format!("(path-literal {})", path_expr(&r.path)),
                Scope::Subtree => format!("(subpath {})", path_expr(&r.path)),
            };
            let _ = writeln!(
                self.out,
                "(allow network-outbound (remote unix-socket {filter}))"
            );
        }
    }

    /// One `(allow network-outbound (remote tcp "HOST:PORT"))` line per port, written piece
    /// by piece: a profile can hold thousands (a line per port of every network rule).
    fn remote(&mut self, protocol: Protocol, host: &str, ports: &PortSet) {
        for port in self.ports(ports) {
            self.out.push_str("(allow network-outbound (remote ");
            self.out.push_str(protocol.keyword());
            self.out.push_str(" \"");
            push_escaped(&mut self.out, host);
            self.out.push(':');
            push_port(&mut self.out, port);
            self.out.push_str("\"))\n");
        }
    }

    /// The ports to write out; `None` (written `*`) for "every port" and for ranges too wide
    /// to list.
    fn ports(&mut self, ports: &PortSet) -> Vec<Option<u16>> {
        if ports.is_empty() {
            return vec![None];
        }
        if ports.count() > MAX_LISTED_PORTS {
            self.comment(&format!(
                "WARNING: {} ports are more than {MAX_LISTED_PORTS}: widened to every port",
                ports.count()
            ));
            return vec![None];
        }
        ports
            .ranges()
            .iter()
            .flat_map(|r| (r.first..=r.last).map(Some))
            .collect()
    }
}

/// A port of [`Writer::ports`]: its number, or `*` for every port.
fn push_port(out: &mut String, port: Option<u16>) {
    match port {
        Some(port) => push_u32(out, port.into()),
        None => out.push('*'),
    }
}

/// The SBPL operations for an access.
fn operations(access: Access, effect: Effect) -> &'static str {
    let read =
        access.contains(Access::READ) || (effect == Effect::Allow && access.contains(Access::EXEC));
    match (
        read,
        access.contains(Access::WRITE),
        access.contains(Access::EXEC),
    ) {
        (true, true, true) => "file-read* file-write* process-exec",
        (true, true, false) => "file-read* file-write*",
        (true, false, true) => "file-read* process-exec",
        (true, false, false) => "file-read*",
        (false, true, true) => "file-write* process-exec",
        (false, true, false) => "file-write*",
        (false, false, true) => "process-exec",
        (false, false, false) => "",
    }
}

fn path_filter(path: &PolicyPath) -> String {
    let mut out = String::new();
    push_path_filter(&mut out, path);
    out
}

/// [`path_filter`], written onto `out`.
fn push_path_filter(out: &mut String, path: &PolicyPath) {
    out.push_str(match path.scope() {
        Scope::Exact => "(literal ",
        Scope::Subtree => "(subpath ",
    });
    push_path_expr(out, path);
    out.push(')');
}

/// [`path_expr`], written onto `out`. Escaping works character by character, so the pieces
/// are escaped as they are written.
fn push_path_expr(out: &mut String, path: &PolicyPath) {
    let private = path.root().is_none()
        && path
            .first_component()
            .is_some_and(|c| matches!(c, "tmp" | "var" | "etc"));
    // Every component with its leading `/`: escaping is per character, so the whole text
    // escapes as the components one by one would.
    let components = path.rest();
    let rest = |out: &mut String| {
        out.push('"');
        if private {
            out.push_str("/private");
        }
        push_escaped(out, components);
        out.push('"');
    };
    match path.root() {
        None if components.is_empty() => out.push_str("\"/\""),
        None => rest(out),
        Some(var) => {
            out.push_str(if components.is_empty() {
                "(param "
            } else {
                "(string-append (param "
            });
            push_sbpl_str(out, var.name());
            out.push(')');
            if !components.is_empty() {
                out.push(' ');
                rest(out);
                out.push(')');
            }
        }
    }
}

/// The SBPL expression for a path: a string, a parameter, or their concatenation.
fn path_expr(path: &PolicyPath) -> String {
    let mut out = String::new();
    push_path_expr(&mut out, path);
    out
}

fn is_loopback(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.prefix_len() >= 8 && n.network().is_loopback(),
        IpNet::V6(n) => n.prefix_len() == 128 && n.network().is_loopback(),
    }
}

/// An SBPL string literal: backslash, quote and control characters escaped.
fn sbpl_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_sbpl_str(&mut out, s);
    out
}

/// [`sbpl_str`], written onto `out`.
fn push_sbpl_str(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// The inside of an SBPL string literal.
fn push_escaped(out: &mut String, s: &str) {
    // Printable ASCII but for the quote and the backslash, the usual case, is answered from
    // the bytes alone.
    let plain = |b: &u8| (b' '..=b'~').contains(b) && !matches!(b, b'"' | b'\\');
    if s.as_bytes().iter().all(plain)
        || !s.chars().any(|c| matches!(c, '"' | '\\') || c.is_control())
    {
        out.push_str(s);
        return;
    }
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x};", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Does `s` hold a control character (what [`comment_safe`] escapes)? Printable ASCII, the
/// usual case, is answered from the bytes alone.
fn has_control(s: &str) -> bool {
    if s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return false;
    }
    s.chars().any(char::is_control)
}

/// Comment text on one line: control characters (a newline would end the comment and let the
/// rest of a path be read as rules) are shown escaped.
fn comment_safe(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PolicyPath {
        PolicyPath::parse(s).unwrap()
    }

    #[test]
    fn path_expressions() {
        assert_eq!(path_expr(&p("/")), "\"/\"");
        assert_eq!(path_expr(&p("/usr/lib/**")), "\"/usr/lib\"");
        assert_eq!(path_expr(&p("/tmp/x")), "\"/private/tmp/x\"");
        assert_eq!(path_expr(&p("$HOME")), "(param \"HOME\")");
        assert_eq!(
            path_expr(&p("$HOME/.ssh/**")),
            "(string-append (param \"HOME\") \"/.ssh\")"
        );
        assert_eq!(path_expr(&p("/a\"b\\c")), "\"/a\\\"b\\\\c\"");
    }

    #[test]
    fn nothing_escapes_a_comment_or_string() {
        let evil = "/x\n(allow default)";
        assert_eq!(comment_safe(evil), "/x\\n(allow default)");
        assert_eq!(sbpl_str(evil), "\"/x\\n(allow default)\"");
    }

    #[test]
    fn numbers_and_control_characters() {
        for n in [0, 7, 10, 99, 100, 65_535, 1_000_000, u32::MAX] {
            let mut s = String::from("x");
            push_u32(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
        for s in [
            "",
            "plain /a b~",
            "é",
            "\u{85}",
            "a\tb",
            "\u{7f}",
            "\u{2028}",
        ] {
            assert_eq!(has_control(s), s.chars().any(char::is_control), "{s:?}");
        }
    }

    #[test]
    fn loopback() {
        assert!(is_loopback(&"127.0.0.0/8".parse().unwrap()));
        assert!(is_loopback(&"127.0.0.1/32".parse().unwrap()));
        assert!(!is_loopback(&"0.0.0.0/0".parse().unwrap()));
        assert!(is_loopback(&"::1/128".parse().unwrap()));
        assert!(!is_loopback(&"::/0".parse().unwrap()));
    }
}
