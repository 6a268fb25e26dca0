//! The policy language front-end: every statement, the lexical corners, and the errors with
//! their exact positions.

use nono_policy::diag::{Diagnostic, Loc};
use nono_policy::doc::{CidrEntry, DomainEntry, EnvModeDoc, ListenEntry, Located, ProfileDoc};
use nono_policy::ir::AuditLevel;
use nono_policy::lang::parse;
use nono_policy::net::{PortSpec, Protocol};

fn doc(text: &str) -> ProfileDoc {
    parse("test.nono", text).unwrap_or_else(|error| panic!("{error}"))
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse("test.nono", text) {
        Ok(doc) => panic!("expected errors, parsed {doc:#?}"),
        Err(error) => error.diagnostics,
    }
}

/// The only error `text` causes.
fn error(text: &str) -> Diagnostic {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

fn at(line: u32, column: u32) -> Option<Loc> {
    Some(Loc { line, column })
}

/// Values with their `line:column`, for compact assertions.
fn located(list: &[Located<String>]) -> Vec<(&str, u32, u32)> {
    list.iter()
        .map(|v| {
            let loc = v.loc.expect("every value is located");
            (v.value.as_str(), loc.line, loc.column)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Whole files

#[test]
fn empty_and_comment_only_files_are_empty_profiles() {
    for text in [
        "",
        "\n\n",
        "   \t \n",
        "# just a comment\n\n  # indented\n",
        "#",
    ] {
        assert_eq!(doc(text), ProfileDoc::default(), "{text:?}");
    }
}

#[test]
fn byte_order_mark_is_ignored_and_columns_count_after_it() {
    let parsed = doc("\u{feff}read /usr/**\n");
    assert_eq!(located(&parsed.filesystem.read), [("/usr/**", 1, 6)]);
    let e = error("\u{feff}reed /x");
    assert_eq!(e.loc, at(1, 1));
    assert_eq!(e.snippet.as_deref(), Some("reed /x"));
}

#[test]
fn byte_order_mark_inside_the_file_is_refused() {
    let e = error("read /a\n\u{feff}read /b\n");
    assert_eq!(e.loc, at(2, 1));
    assert!(e.message.contains("U+FEFF"), "{}", e.message);
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    let lf = "profile p\nread /a /b # c\nwrite \"/x y\"\n";
    let crlf = lf.replace('\n', "\r\n");
    assert_eq!(doc(&crlf), doc(lf));
    assert_eq!(
        located(&doc(&crlf).filesystem.write),
        [("/x y", 3, 7)],
        "a CR must not shift locations"
    );
    let e = error("read /a\r\nreed /b\r\n");
    assert_eq!(e.loc, at(2, 1));
    assert_eq!(e.snippet.as_deref(), Some("reed /b"));
}

#[test]
fn a_carriage_return_alone_is_an_invisible_character() {
    let e = error("read /a\r/b\n");
    assert_eq!(e.loc, at(1, 8));
    assert!(e.message.contains("U+000D"), "{}", e.message);
}

#[test]
fn last_line_needs_no_newline() {
    assert_eq!(
        located(&doc("read /a\nread /b").filesystem.read),
        [("/a", 1, 6), ("/b", 2, 6)]
    );
}

#[test]
fn tabs_separate_tokens_and_count_as_one_column() {
    let parsed = doc("\tread\t/a \t /b\n");
    assert_eq!(
        located(&parsed.filesystem.read),
        [("/a", 1, 7), ("/b", 1, 12)]
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let parsed = doc("read /héé/ü /b\n");
    assert_eq!(
        located(&parsed.filesystem.read),
        [("/héé/ü", 1, 6), ("/b", 1, 13)]
    );
}

// ---------------------------------------------------------------------------------------------
// Header

#[test]
fn header_statements() {
    let parsed = doc(concat!(
        "profile rust-dev\n",
        "version 1.0.0\n",
        "description \"Rust toolchain, with crates.io\"\n",
        "extends default\n",
        "extends base-a base-b\n",
        "use credentials\n",
        "use system-base \"odd group\"\n",
    ));
    assert_eq!(parsed.name.as_deref(), Some("rust-dev"));
    assert_eq!(parsed.version.as_deref(), Some("1.0.0"));
    assert_eq!(
        parsed.description.as_deref(),
        Some("Rust toolchain, with crates.io")
    );
    assert_eq!(
        located(&parsed.extends),
        [("default", 4, 9), ("base-a", 5, 9), ("base-b", 5, 16)]
    );
    assert_eq!(
        located(&parsed.use_groups),
        [
            ("credentials", 6, 5),
            ("system-base", 7, 5),
            ("odd group", 7, 17)
        ]
    );
}

#[test]
fn header_may_come_anywhere() {
    let parsed = doc("read /a\nprofile late\n");
    assert_eq!(parsed.name.as_deref(), Some("late"));
}

#[test]
fn scalar_statements_set_twice_are_errors_at_the_second() {
    for (keyword, text) in [
        ("profile", "profile a\n\nprofile b\n"),
        ("version", "version 1\n\nversion 1\n"),
        ("description", "description a\n\ndescription \"b\"\n"),
        ("audit", "audit all\n\naudit off\n"),
        ("env mode", "env mode clean\n\nenv mode clean\n"),
        ("net allow all", "net allow all\n\nnet allow all\n"),
        (
            "ipc signals",
            "ipc signals scoped\n\nipc signals unscoped\n",
        ),
        (
            "ipc abstract-unix",
            "ipc abstract-unix scoped\n\nipc abstract-unix scoped\n",
        ),
        ("rollback", "rollback on\n\nrollback off\n"),
        (
            "rollback gitignore",
            "rollback gitignore on\n\nrollback gitignore on\n",
        ),
        (
            "override allow-broad-write",
            "override allow-broad-write\n\noverride allow-broad-write\n",
        ),
    ] {
        let e = error(text);
        assert_eq!(e.loc, at(3, 1), "{text:?}");
        assert_eq!(e.message, format!("`{keyword}` is already set on line 1"));
    }
}

#[test]
fn the_first_of_two_scalar_settings_is_the_one_reported_against() {
    let e = error("  version 1\nversion 2\n");
    assert_eq!(e.loc, at(2, 1));
    assert_eq!(e.span, "version".len() as u32);
}

// ---------------------------------------------------------------------------------------------
// Filesystem and exec

#[test]
fn filesystem_statements() {
    let parsed = doc(concat!(
        "read /usr/** /lib/**\n",
        "write $WORKDIR/out\n",
        "readwrite $WORKDIR/** $TMPDIR/**\n",
        "exec /usr/bin/**\n",
        "deny $HOME/.ssh/**\n",
        "deny read /etc/shadow\n",
        "deny write $WORKDIR/.git/hooks/**\n",
        "deny exec $WORKDIR/**\n",
    ));
    let fs = &parsed.filesystem;
    assert_eq!(located(&fs.read), [("/usr/**", 1, 6), ("/lib/**", 1, 14)]);
    assert_eq!(located(&fs.write), [("$WORKDIR/out", 2, 7)]);
    assert_eq!(
        located(&fs.readwrite),
        [("$WORKDIR/**", 3, 11), ("$TMPDIR/**", 3, 23)]
    );
    assert_eq!(located(&fs.exec), [("/usr/bin/**", 4, 6)]);
    assert_eq!(located(&fs.deny), [("$HOME/.ssh/**", 5, 6)]);
    assert_eq!(located(&fs.deny_read), [("/etc/shadow", 6, 11)]);
    assert_eq!(located(&fs.deny_write), [("$WORKDIR/.git/hooks/**", 7, 12)]);
    assert_eq!(located(&fs.deny_exec), [("$WORKDIR/**", 8, 11)]);
    assert!(parsed.exec.is_empty());
}

#[test]
fn statements_of_a_kind_accumulate_in_order() {
    let parsed = doc("read /a\nwrite /w\nread /b /c\n");
    assert_eq!(
        located(&parsed.filesystem.read),
        [("/a", 1, 6), ("/b", 3, 6), ("/c", 3, 9)]
    );
}

#[test]
fn values_are_kept_as_written() {
    // Checking paths is resolve's job, so that every front-end reports the same way.
    let parsed = doc("read relative ~/x $NOPE/** /a/../b\n");
    assert_eq!(
        parsed
            .filesystem
            .read
            .iter()
            .map(|v| v.value.as_str())
            .collect::<Vec<_>>(),
        ["relative", "~/x", "$NOPE/**", "/a/../b"]
    );
}

#[test]
fn exec_control_statements() {
    let parsed =
        doc("exec deny /usr/bin/curl /usr/bin/wget\nexec only /usr/bin/**\nexec only /bin/sh\n");
    assert_eq!(
        located(&parsed.exec.deny),
        [("/usr/bin/curl", 1, 11), ("/usr/bin/wget", 1, 25)]
    );
    let only = parsed
        .exec
        .allow_only
        .as_deref()
        .expect("exec only sets allow_only");
    assert_eq!(located(only), [("/usr/bin/**", 2, 11), ("/bin/sh", 3, 11)]);
    assert!(parsed.filesystem.is_empty());
}

#[test]
fn without_exec_only_anything_granted_may_run() {
    assert_eq!(doc("exec /usr/bin/**\n").exec.allow_only, None);
}

#[test]
fn keywords_are_whole_words() {
    let parsed = doc("readwrite /a\nread /b\n");
    assert_eq!(located(&parsed.filesystem.readwrite), [("/a", 1, 11)]);
    assert_eq!(located(&parsed.filesystem.read), [("/b", 2, 6)]);
}

#[test]
fn a_quoted_keyword_is_a_value() {
    let parsed = doc("deny \"read\" /x\nexec \"deny\"\n");
    assert_eq!(
        located(&parsed.filesystem.deny),
        [("read", 1, 6), ("/x", 1, 13)]
    );
    assert_eq!(located(&parsed.filesystem.exec), [("deny", 2, 6)]);
}

// ---------------------------------------------------------------------------------------------
// Network

#[test]
fn net_allow_all() {
    assert_eq!(doc("net allow all\n").network.allow_all, Some(true));
}

#[test]
fn net_allow_domain_without_ports_lists_names() {
    let parsed = doc("net allow domain crates.io *.crates.io\n");
    let domains: Vec<_> = parsed
        .network
        .domains
        .iter()
        .map(|d| (&d.value, d.loc))
        .collect();
    assert_eq!(
        domains,
        [
            (&DomainEntry::Name("crates.io".into()), at(1, 18)),
            (&DomainEntry::Name("*.crates.io".into()), at(1, 28)),
        ]
    );
}

#[test]
fn net_allow_domain_with_ports_gives_each_domain_the_ports() {
    let parsed = doc("net allow domain a.example b.example port 443,8000-8100\n");
    let ports = vec![PortSpec::Number(443), PortSpec::Text("8000-8100".into())];
    let domains: Vec<_> = parsed
        .network
        .domains
        .iter()
        .map(|d| (&d.value, d.loc))
        .collect();
    assert_eq!(
        domains,
        [
            (
                &DomainEntry::WithPorts {
                    domain: "a.example".into(),
                    ports: ports.clone()
                },
                at(1, 18)
            ),
            (
                &DomainEntry::WithPorts {
                    domain: "b.example".into(),
                    ports
                },
                at(1, 28)
            ),
        ]
    );
}

#[test]
fn a_domain_named_like_a_keyword_is_quoted() {
    let parsed = doc("net allow domain \"port\" port 443\n");
    assert_eq!(parsed.network.domains[0].value.domain(), "port");
}

#[test]
fn net_allow_cidr() {
    let parsed =
        doc("net allow cidr 10.0.0.0/8 fd00::/8 udp port 53\nnet allow cidr 192.168.1.1 tcp\n");
    let cidrs: Vec<_> = parsed
        .network
        .cidrs
        .iter()
        .map(|c| (&c.value, c.loc))
        .collect();
    let entry = |cidr: &str, protocol, ports: Vec<PortSpec>| CidrEntry {
        cidr: cidr.into(),
        protocol,
        ports,
    };
    assert_eq!(
        cidrs,
        [
            (
                &entry("10.0.0.0/8", Protocol::Udp, vec![PortSpec::Number(53)]),
                at(1, 16)
            ),
            (
                &entry("fd00::/8", Protocol::Udp, vec![PortSpec::Number(53)]),
                at(1, 27)
            ),
            (&entry("192.168.1.1", Protocol::Tcp, vec![]), at(2, 16)),
        ]
    );
}

#[test]
fn net_listen() {
    let parsed = doc("net listen tcp port 3000,8000-8100\nnet listen udp port 5353\n");
    let listen: Vec<_> = parsed
        .network
        .listen
        .iter()
        .map(|l| (&l.value, l.loc))
        .collect();
    assert_eq!(
        listen,
        [
            (
                &ListenEntry {
                    protocol: Protocol::Tcp,
                    ports: vec![PortSpec::Number(3000), PortSpec::Text("8000-8100".into())]
                },
                at(1, 21)
            ),
            (
                &ListenEntry {
                    protocol: Protocol::Udp,
                    ports: vec![PortSpec::Number(5353)]
                },
                at(2, 21)
            ),
        ]
    );
}

#[test]
fn ports_are_numbers_when_they_can_be_and_text_otherwise() {
    let ports = |list: &str| {
        let parsed = doc(&format!("net listen tcp port {list}\n"));
        parsed.network.listen[0].value.ports.clone()
    };
    use PortSpec::{Number, Text};
    assert_eq!(ports("0"), [Number(0)]);
    assert_eq!(ports("80,443"), [Number(80), Number(443)]);
    assert_eq!(ports("65536"), [Number(65536)]);
    assert_eq!(
        ports("99999999999999999999"),
        [Text("99999999999999999999".into())]
    );
    assert_eq!(ports("+80"), [Text("+80".into())]);
    assert_eq!(
        ports("80,,http"),
        [Number(80), Text("".into()), Text("http".into())]
    );
    assert_eq!(ports("\"443\""), [Number(443)]);
}

// ---------------------------------------------------------------------------------------------
// IPC, environment, audit, rollback, overrides

#[test]
fn ipc_statements() {
    let parsed = doc(concat!(
        "ipc signals unscoped\n",
        "ipc abstract-unix scoped\n",
        "ipc unix-socket $XDG_RUNTIME_DIR/bus /run/docker.sock\n",
    ));
    assert_eq!(parsed.ipc.scope_signals, Some(false));
    assert_eq!(parsed.ipc.scope_abstract_unix, Some(true));
    assert_eq!(
        located(&parsed.ipc.unix_sockets),
        [("$XDG_RUNTIME_DIR/bus", 3, 17), ("/run/docker.sock", 3, 38)]
    );
    let parsed = doc("ipc signals scoped\nipc abstract-unix unscoped\n");
    assert_eq!(parsed.ipc.scope_signals, Some(true));
    assert_eq!(parsed.ipc.scope_abstract_unix, Some(false));
}

#[test]
fn env_statements() {
    let parsed = doc("env mode clean\nenv pass PATH HOME LANG\nenv strip AWS_* GITHUB_TOKEN\n");
    assert_eq!(parsed.env.mode, Some(EnvModeDoc::Clean));
    assert_eq!(
        located(&parsed.env.pass),
        [("PATH", 2, 10), ("HOME", 2, 15), ("LANG", 2, 20)]
    );
    assert_eq!(
        located(&parsed.env.strip),
        [("AWS_*", 3, 11), ("GITHUB_TOKEN", 3, 17)]
    );
    assert_eq!(
        doc("env mode inherit\n").env.mode,
        Some(EnvModeDoc::Inherit)
    );
}

#[test]
fn audit_levels() {
    for (word, level) in [
        ("off", AuditLevel::Off),
        ("denied", AuditLevel::Denied),
        ("all", AuditLevel::All),
    ] {
        assert_eq!(doc(&format!("audit {word}\n")).audit.level, Some(level));
    }
}

#[test]
fn rollback_statements() {
    let parsed =
        doc("rollback on\nrollback exclude node_modules \"*.log\"\nrollback gitignore off\n");
    assert_eq!(parsed.rollback.enabled, Some(true));
    assert_eq!(
        located(&parsed.rollback.exclude),
        [("node_modules", 2, 18), ("*.log", 2, 31)]
    );
    assert_eq!(parsed.rollback.gitignore, Some(false));
    let parsed = doc("rollback off\nrollback gitignore on\n");
    assert_eq!(parsed.rollback.enabled, Some(false));
    assert_eq!(parsed.rollback.gitignore, Some(true));
}

#[test]
fn override_allow_broad_write() {
    assert_eq!(
        doc("override allow-broad-write\n")
            .overrides
            .allow_broad_write,
        Some(true)
    );
}

// ---------------------------------------------------------------------------------------------
// Groups

#[test]
fn group_block_holds_rules_apart_from_the_profile() {
    let parsed = doc(concat!(
        "# Secrets an agent has no business reading.\n",
        "group credentials {\n",
        "    description \"Credential stores\"\n",
        "    deny $HOME/.ssh/**\n",
        "    read /etc/hosts\n",
        "    exec deny /usr/bin/ssh\n",
        "    net allow domain example.com\n",
        "    env strip AWS_*\n",
        "    env mode clean\n",
        "} # end\n",
        "read /profile-level\n",
    ));
    assert_eq!(parsed.groups.len(), 1);
    let group = &parsed.groups["credentials"];
    assert_eq!(group.loc, at(2, 7));
    assert_eq!(group.description.as_deref(), Some("Credential stores"));
    assert_eq!(located(&group.filesystem.deny), [("$HOME/.ssh/**", 4, 10)]);
    assert_eq!(located(&group.filesystem.read), [("/etc/hosts", 5, 10)]);
    assert_eq!(located(&group.exec.deny), [("/usr/bin/ssh", 6, 15)]);
    assert_eq!(group.network.domains[0].value.domain(), "example.com");
    assert_eq!(located(&group.env.strip), [("AWS_*", 8, 15)]);
    assert_eq!(group.env.mode, Some(EnvModeDoc::Clean));
    assert_eq!(
        located(&parsed.filesystem.read),
        [("/profile-level", 11, 6)]
    );
    assert_eq!(parsed.description, None);
}

#[test]
fn a_group_file_is_a_document_with_only_groups() {
    let parsed = doc("# header comment\ngroup g {\n  read /a\n}\n");
    let groups_only = ProfileDoc {
        groups: parsed.groups.clone(),
        ..ProfileDoc::default()
    };
    assert_eq!(parsed, groups_only);
}

#[test]
fn several_groups_and_a_quoted_name() {
    let parsed = doc("group a {\n}\ngroup \"b c\" {\nread /x\n}\n");
    assert_eq!(parsed.groups.keys().collect::<Vec<_>>(), ["a", "b c"]);
    assert!(parsed.groups["a"].filesystem.is_empty());
}

#[test]
fn group_and_profile_descriptions_are_separate_settings() {
    let parsed = doc("description outer\ngroup g {\ndescription inner\n}\n");
    assert_eq!(parsed.description.as_deref(), Some("outer"));
    assert_eq!(parsed.groups["g"].description.as_deref(), Some("inner"));
    let e = error("group g {\ndescription a\ndescription b\n}\n");
    assert_eq!(e.loc, at(3, 1));
    assert_eq!(e.message, "`description` is already set on line 2");
}

#[test]
fn statements_a_group_cannot_hold() {
    for (keyword, statement) in [
        ("profile", "profile x"),
        ("version", "version 1"),
        ("extends", "extends default"),
        ("use", "use other"),
        ("audit", "audit all"),
        ("rollback", "rollback on"),
        ("rollback", "rollback exclude x"),
        ("ipc", "ipc signals scoped"),
        ("ipc", "ipc unix-socket /run/x"),
        ("override", "override allow-broad-write"),
    ] {
        let e = error(&format!("group g {{\n  {statement}\n}}\n"));
        assert_eq!(e.loc, at(2, 3), "{statement}");
        assert_eq!(
            e.message,
            format!("`{keyword}` is not allowed inside a group")
        );
        assert_eq!(e.span, keyword.len() as u32);
    }
}

#[test]
fn groups_cannot_nest() {
    let all = errors("group a {\n  group b {\n  }\n}\n");
    assert_eq!(
        all.len(),
        1,
        "the inner `}}` closes the inner block: {all:#?}"
    );
    assert_eq!(all[0].loc, at(2, 3));
    assert_eq!(all[0].message, "groups cannot be nested");
    assert_eq!(
        all[0].help,
        ["close group `a` (opened on line 1) with `}` first"]
    );
}

#[test]
fn unclosed_group_is_reported_where_it_opens() {
    let e = error("read /a\ngroup creds {\n  deny /x\n");
    assert_eq!(e.loc, at(2, 7));
    assert_eq!(e.message, "group `creds` is never closed");
}

#[test]
fn unmatched_close_brace() {
    let e = error("read /a\n}\n");
    assert_eq!(e.loc, at(2, 1));
    assert_eq!(e.message, "`}` without a group to close");
}

#[test]
fn duplicate_group_names_point_at_the_second() {
    let e = error("group g {\n}\n\ngroup g {\n  read /a\n}\n");
    assert_eq!(e.loc, at(4, 7));
    assert_eq!(e.message, "group `g` is defined twice");
    assert_eq!(e.help, ["the first is on line 1"]);
}

#[test]
fn group_line_errors() {
    let e = error("group {\n}\n");
    assert_eq!(
        (e.loc, e.message.as_str()),
        (at(1, 7), "expected a group name after `group`, found `{`")
    );
    // The malformed line still opens the block: its `}` is not a second error, and the body
    // is still checked as a group's.
    let all = errors("group g\n  audit all\n}\n");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        (all[0].loc, all[0].message.as_str()),
        (at(1, 8), "expected `{` after `g`")
    );
    assert_eq!(all[1].message, "`audit` is not allowed inside a group");
    let e = error("group g { read /a\n}\n");
    assert_eq!(
        (e.loc, e.message.as_str()),
        (at(1, 11), "unexpected `read`")
    );
    let e = error("group g {\n} read\n");
    assert_eq!((e.loc, e.message.as_str()), (at(2, 3), "unexpected `read`"));
}

// ---------------------------------------------------------------------------------------------
// Comments, words and strings

#[test]
fn comments() {
    let parsed = doc(concat!(
        "# full line\n",
        "read /a # after a value\n",
        "read /b#not-a-comment\n",
        "read \"/c # not a comment\"   # but this is\n",
        "   # indented\n",
        "read /d #\n",
    ));
    assert_eq!(
        located(&parsed.filesystem.read),
        [
            ("/a", 2, 6),
            ("/b#not-a-comment", 3, 6),
            ("/c # not a comment", 4, 6),
            ("/d", 6, 6)
        ]
    );
}

#[test]
fn comments_may_hold_any_visible_text() {
    doc("# «unicode» é 😀 \"quotes\" \\ { } \t tabs\n");
}

#[test]
fn strings_and_escapes() {
    let parsed = doc(concat!(
        r#"read "/with space" "" "q\"uote" "back\\slash""#,
        "\n",
        r#"description "line\nbreak\ttab \u{e9} \u{1F600} \u{0}""#,
        "\n",
    ));
    assert_eq!(
        located(&parsed.filesystem.read),
        [
            ("/with space", 1, 6),
            ("", 1, 20),
            ("q\"uote", 1, 23),
            ("back\\slash", 1, 33)
        ]
    );
    assert_eq!(
        parsed.description.as_deref(),
        Some("line\nbreak\ttab é 😀 \u{0}")
    );
}

#[test]
fn raw_tabs_and_unicode_in_strings() {
    assert_eq!(
        doc("description \"a\tb ⟨é⟩ 👩‍💻\"\n").description.as_deref(),
        Some("a\tb ⟨é⟩ 👩‍💻")
    );
}

#[test]
fn unterminated_string_points_at_its_opening_quote() {
    let e = error("read /a \"/b c\nread /d\n");
    assert_eq!(e.loc, at(1, 9));
    assert_eq!(e.message, "unterminated string");
    let e = error(r#"read "/b\""#);
    assert_eq!(e.loc, at(1, 6));
    assert!(e.help[0].contains("escaped"), "{:?}", e.help);
    let e = error("read \"/b\\");
    assert_eq!(
        (e.loc, e.message.as_str()),
        (at(1, 6), "unterminated string")
    );
}

#[test]
fn bad_escapes_point_at_the_escape() {
    for (text, column, message) in [
        (r#"read "/a\qb""#, 9, r"unknown escape `\q`"),
        (r#"read "/a\u{}""#, 9, r"`\u{}` is not a Unicode character"),
        (
            r#"read "/a\u{110000}""#,
            9,
            r"`\u{110000}` is not a Unicode character",
        ),
        (
            r#"read "/a\u{D800}""#,
            9,
            r"`\u{D800}` is not a Unicode character",
        ),
        (
            r#"read "/a\u{0000041}""#,
            9,
            r"`\u{0000041}` is not a Unicode character",
        ),
        (r#"read "/a\u41""#, 9, r"`\u` needs a code point in braces"),
        (
            r#"read "/a\u{zz}""#,
            9,
            r"`\u` needs a code point in braces",
        ),
    ] {
        let e = error(text);
        assert_eq!(
            (e.loc, e.message.as_str()),
            (at(1, column), message),
            "{text}"
        );
    }
}

#[test]
fn text_glued_to_a_string_is_an_error() {
    let e = error(r#"read "/a"/b"#);
    assert_eq!(
        (e.loc, e.message.as_str()),
        (at(1, 10), "unexpected `/b` right after a string")
    );
    assert_eq!(e.span, 2);
    let e = error("read \"/a\"# comment");
    assert_eq!(e.loc, at(1, 10));
}

#[test]
fn a_quote_inside_a_word_is_an_error() {
    let e = errors(r#"read /tmp/"my dir""#).remove(0);
    assert_eq!(e.loc, at(1, 11));
    assert_eq!(e.message, r#"unexpected `"` inside `/tmp/"my`"#);
}

#[test]
fn invisible_characters_are_refused() {
    for (text, column, code) in [
        ("read /a\u{202E}b\n", 8, "U+202E"),     // right-to-left override
        ("read /a\u{200B}b\n", 8, "U+200B"),     // zero-width space
        ("read /a\u{A0}/b\n", 8, "U+00A0"),      // no-break space
        ("read /a\u{1B}[31m\n", 8, "U+001B"),    // terminal escape
        ("# comment \u{2066}x\n", 11, "U+2066"), // bidi isolate in a comment
        ("read \"/a\u{7}\"\n", 9, "U+0007"),     // bell inside a string
        ("read \"/a\u{202D}\"\n", 9, "U+202D"),  // bidi override inside a string
        ("\u{200B}read /a\n", 1, "U+200B"),
    ] {
        let e = error(text);
        assert_eq!(e.loc, at(1, column), "{text:?}");
        assert_eq!(
            e.message,
            format!("invisible character {code} is not allowed")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax errors, in words, at the right place

#[test]
fn unknown_statement_suggests_the_keyword() {
    let e = error("profile p\n\n  reed /usr/**\n");
    assert_eq!(e.loc, at(3, 3));
    assert_eq!(e.message, "unknown statement `reed`");
    assert_eq!(e.help, ["did you mean `read`?"]);
    assert_eq!(e.span, 4);
    assert_eq!(e.snippet.as_deref(), Some("  reed /usr/**"));
    for (typo, keyword) in [
        ("wirte", "write"),
        ("readwrit", "readwrite"),
        ("READ", "read"),
        ("extend", "extends"),
        ("descripton", "description"),
        ("rolback", "rollback"),
    ] {
        let e = error(&format!("{typo} x\n"));
        assert_eq!(e.message, format!("unknown statement `{typo}`"));
        assert_eq!(e.help, [format!("did you mean `{keyword}`?")], "{typo}");
    }
}

#[test]
fn unknown_statement_without_a_close_keyword_lists_them() {
    let e = error("zzz\n");
    assert_eq!(e.message, "unknown statement `zzz`");
    assert!(e.help[0].starts_with("a statement starts with one of: profile, version"));
}

#[test]
fn a_statement_cannot_start_with_a_string() {
    let e = error("\"read\" /a\n");
    assert_eq!(e.loc, at(1, 1));
    assert_eq!(e.message, "a statement starts with a keyword, not a string");
    assert_eq!(e.help, ["keywords are written without quotes: `read`"]);
}

#[test]
fn missing_values() {
    for (text, column, message) in [
        ("read", 5, "expected a path after `read`"),
        ("read   # why", 8, "expected a path after `read`"),
        ("deny read", 10, "expected a path after `read`"),
        ("exec deny   ", 13, "expected a path after `deny`"),
        ("profile", 8, "expected a profile name after `profile`"),
        ("extends", 8, "expected a profile name after `extends`"),
        ("use", 4, "expected a group name after `use`"),
        ("version", 8, "expected a version after `version`"),
        (
            "description",
            12,
            "expected a description after `description`",
        ),
        (
            "env pass",
            9,
            "expected an environment variable name after `pass`",
        ),
        (
            "rollback exclude",
            17,
            "expected a file name or pattern after `exclude`",
        ),
        ("ipc unix-socket", 16, "expected a path after `unix-socket`"),
        ("net allow domain", 17, "expected a domain after `domain`"),
        (
            "net allow domain a.com port",
            28,
            "expected ports (like `443` or `80,8000-8100`) after `port`",
        ),
        (
            "net listen tcp port",
            20,
            "expected ports (like `443` or `80,8000-8100`) after `port`",
        ),
        (
            "deny",
            5,
            "expected a path, `read`, `write` or `exec` after `deny`",
        ),
        ("exec", 5, "expected a path, `deny` or `only` after `exec`"),
        ("net", 4, "expected `allow` or `listen` after `net`"),
        (
            "net allow",
            10,
            "expected `all`, `domain` or `cidr` after `allow`",
        ),
        (
            "net allow cidr 10.0.0.0/8",
            26,
            "expected an address or CIDR, `tcp` or `udp` after `10.0.0.0/8`",
        ),
        ("net listen", 11, "expected `tcp` or `udp` after `listen`"),
        ("net listen udp", 15, "expected `port` after `udp`"),
        (
            "ipc",
            4,
            "expected `signals`, `abstract-unix` or `unix-socket` after `ipc`",
        ),
        (
            "ipc signals",
            12,
            "expected `scoped` or `unscoped` after `signals`",
        ),
        ("env", 4, "expected `mode`, `pass` or `strip` after `env`"),
        ("env mode", 9, "expected `inherit` or `clean` after `mode`"),
        (
            "audit",
            6,
            "expected `off`, `denied` or `all` after `audit`",
        ),
        (
            "rollback",
            9,
            "expected `on`, `off`, `exclude`, `include` or `gitignore` after `rollback`",
        ),
        (
            "rollback gitignore",
            19,
            "expected `on` or `off` after `gitignore`",
        ),
        (
            "override",
            9,
            "expected `allow-broad-write` after `override`",
        ),
        ("group", 6, "expected a group name after `group`"),
        ("group g", 8, "expected `{` after `g`"),
    ] {
        let e = error(text);
        assert_eq!(
            (e.loc, e.message.as_str()),
            (at(1, column), message),
            "{text}"
        );
    }
}

#[test]
fn wrong_keywords_suggest_the_right_one() {
    for (text, column, message, help) in [
        (
            "net alow domain x",
            5,
            "expected `allow` or `listen` after `net`, found `alow`",
            "did you mean `allow`?",
        ),
        (
            "net allow domians x",
            11,
            "expected `all`, `domain` or `cidr` after `allow`, found `domians`",
            "did you mean `domain`?",
        ),
        (
            "audit everything",
            7,
            "expected `off`, `denied` or `all` after `audit`, found `everything`",
            "",
        ),
        (
            "audit deny",
            7,
            "expected `off`, `denied` or `all` after `audit`, found `deny`",
            "did you mean `denied`?",
        ),
        (
            "net allow cidr 10.0.0.0/8 port 53",
            27,
            "expected `tcp` or `udp` after `10.0.0.0/8`, found `port`",
            "",
        ),
        (
            "net listen tcp 8080",
            16,
            "expected `port` after `tcp`, found `8080`",
            "",
        ),
        (
            "ipc signals scope",
            13,
            "expected `scoped` or `unscoped` after `signals`, found `scope`",
            "did you mean `scoped`?",
        ),
        (
            "env mode \"clean\"",
            10,
            "expected `inherit` or `clean` after `mode`, found `\"clean\"`",
            "keywords are written without quotes: `clean`",
        ),
        (
            "override allow_broad_write",
            10,
            "expected `allow-broad-write` after `override`, found `allow_broad_write`",
            "did you mean `allow-broad-write`?",
        ),
    ] {
        let e = error(text);
        assert_eq!(
            (e.loc, e.message.as_str()),
            (at(1, column), message),
            "{text}"
        );
        let expected_help: Vec<&str> = if help.is_empty() { vec![] } else { vec![help] };
        assert_eq!(e.help, expected_help, "{text}");
    }
}

#[test]
fn extra_values_after_a_complete_statement() {
    let e = error("version 1.0 beta\n");
    assert_eq!(
        (e.loc, e.message.as_str()),
        (at(1, 13), "unexpected `beta`")
    );
    assert_eq!(
        e.help,
        ["a value with spaces goes in double quotes: \"like this\""]
    );
    let e = error("audit all  denied\n");
    assert_eq!(
        (e.loc, e.message.as_str()),
        (at(1, 12), "unexpected `denied`")
    );
    assert_eq!(e.help, ["the `audit` statement ends after `all`"]);
    let e = error("description \"a b\" c\n");
    assert_eq!(e.loc, at(1, 19));
    let e = error("net allow all please\n");
    assert_eq!(e.help, ["the `net` statement ends after `all`"]);
    let e = error("net allow domain a.com port 443 8080\n");
    assert_eq!(
        (e.loc, e.message.as_str()),
        (at(1, 33), "unexpected `8080`")
    );
}

#[test]
fn errors_on_many_lines_are_all_reported_in_order() {
    let all = errors(concat!(
        "profile p\n",
        "reed /a\n",
        "read /ok\n",
        "net allow domian x\n",
        "read \"/open\n",
        "version 1\n",
        "version 2\n",
    ));
    let locs: Vec<_> = all.iter().map(|d| d.loc).collect();
    assert_eq!(locs, [at(2, 1), at(4, 11), at(5, 6), at(7, 1)]);
    assert!(all.iter().all(|d| d.source == "test.nono"));
}

#[test]
fn errors_stop_after_a_hundred() {
    let garbage = "???\n".repeat(1000);
    let all = errors(&garbage);
    assert_eq!(all.len(), 101);
    assert_eq!(all[100].message, "too many errors; stopped after 100");
}

#[test]
fn diagnostics_render_with_file_line_column_and_caret() {
    let text = parse("p.nono", "profile p\n  reed /usr/**\n")
        .expect_err("typo")
        .to_string();
    assert!(text.contains("error: unknown statement `reed`"), "{text}");
    assert!(text.contains("--> p.nono:2:3"), "{text}");
    assert!(text.contains("2 |   reed /usr/**"), "{text}");
    assert!(text.contains("  |   ^^^^\n"), "{text}");
    assert!(text.contains("= help: did you mean `read`?"), "{text}");
}

#[test]
fn long_tokens_are_shortened_in_messages() {
    let long = "x".repeat(500);
    let e = error(&format!("audit {long}\n"));
    assert!(e.message.len() < 200, "{}", e.message);
    assert!(e.message.contains('…'));
}

// ---------------------------------------------------------------------------------------------
// The built-in profiles in `profiles/`

/// Every `.nono` file under `profiles/`, as (path relative to it, text).
fn builtin_files() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("groups")] {
        for entry in std::fs::read_dir(&dir).expect("profiles/ is readable") {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|ext| ext == "nono") {
                let text = std::fs::read_to_string(&path).expect("profile is UTF-8");
                let relative = path.strip_prefix(&root).expect("under root");
                files.push((relative.display().to_string(), text));
            }
        }
    }
    files.sort();
    files
}

fn builtin(relative: &str) -> ProfileDoc {
    let (_, text) = builtin_files()
        .into_iter()
        .find(|(name, _)| name == relative)
        .unwrap_or_else(|| panic!("no profiles/{relative}"));
    parse(relative, &text).unwrap_or_else(|error| panic!("{error}"))
}

fn values_of(list: &[Located<String>]) -> Vec<&str> {
    list.iter().map(|v| v.value.as_str()).collect()
}

#[test]
fn every_builtin_file_parses() {
    let files = builtin_files();
    assert_eq!(
        files.len(),
        10,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let mut failures = String::new();
    for (name, text) in &files {
        if let Err(error) = parse(&format!("profiles/{name}"), text) {
            failures.push_str(&error.to_string());
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn builtin_profiles_are_named_versioned_described_and_deny_credentials() {
    let profiles: std::collections::BTreeMap<String, ProfileDoc> = builtin_files()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("groups"))
        .map(|(name, text)| {
            let stem = name.trim_end_matches(".nono").to_string();
            (stem, parse(&name, &text).expect("parses"))
        })
        .collect();
    for (stem, profile) in &profiles {
        assert_eq!(profile.name.as_deref(), Some(stem.as_str()));
        assert!(profile.version.is_some(), "{stem} has no version");
        assert!(profile.description.is_some(), "{stem} has no description");
        assert!(profile.groups.is_empty(), "{stem} defines groups inline");
        // Through `extends`, every profile must reach one that uses the credentials group.
        let mut current = profile;
        let mut hops = 0;
        while !values_of(&current.use_groups).contains(&"credentials") {
            let parent = current.extends.first().unwrap_or_else(|| {
                panic!("{stem} neither uses credentials nor extends a profile that does")
            });
            current = &profiles[&parent.value];
            hops += 1;
            assert!(hops < 10, "extends cycle from {stem}");
        }
    }
}

#[test]
fn builtin_group_files_hold_one_group_named_after_the_file() {
    for (name, text) in builtin_files()
        .into_iter()
        .filter(|(name, _)| name.starts_with("groups"))
    {
        let parsed = parse(&name, &text).expect("parses");
        let stem = name.trim_start_matches("groups/").trim_end_matches(".nono");
        assert_eq!(parsed.groups.keys().collect::<Vec<_>>(), [stem], "{name}");
        let only_groups = ProfileDoc {
            groups: parsed.groups.clone(),
            ..ProfileDoc::default()
        };
        assert_eq!(
            parsed, only_groups,
            "{name} has statements outside its group"
        );
        assert!(parsed.groups[stem].description.is_some(), "{name}");
    }
}

#[test]
fn builtin_values_land_in_their_fields() {
    let credentials = builtin("groups/credentials.nono");
    let credentials = &credentials.groups["credentials"];
    assert!(values_of(&credentials.filesystem.deny).contains(&"$HOME/.ssh/**"));
    assert!(values_of(&credentials.filesystem.deny).contains(&"$HOME/.cargo/credentials.toml"));
    assert!(values_of(&credentials.env.strip).contains(&"AWS_*"));
    assert!(values_of(&credentials.env.strip).contains(&"GITHUB_TOKEN"));

    let base = builtin("groups/system-base.nono");
    let base = &base.groups["system-base"];
    assert!(values_of(&base.filesystem.read).contains(&"/etc/**"));
    assert!(values_of(&base.filesystem.exec).contains(&"/usr/**"));
    assert!(values_of(&base.filesystem.deny).contains(&"/etc/shadow"));
    assert!(values_of(&base.filesystem.readwrite).contains(&"/dev/null"));
    assert!(base.filesystem.write.is_empty());

    let default = builtin("default.nono");
    assert_eq!(
        values_of(&default.use_groups),
        ["system-base", "credentials"]
    );
    assert!(values_of(&default.filesystem.readwrite).contains(&"$WORKDIR/**"));
    // Denies inside the writable project need the kernel layer, so they live in agent-guard.
    assert!(default.filesystem.deny_write.is_empty());
    let guard = builtin("groups/agent-guard.nono");
    assert!(
        values_of(&guard.groups["agent-guard"].filesystem.deny_write)
            .contains(&"$WORKDIR/.git/hooks/**")
    );
    assert!(
        default.network.is_empty(),
        "the default profile has no network"
    );

    let rust = builtin("rust-dev.nono");
    assert_eq!(values_of(&rust.extends), ["default"]);
    assert!(values_of(&rust.filesystem.readwrite).contains(&"$HOME/.cargo/registry/**"));
    assert!(values_of(&rust.filesystem.exec).contains(&"$HOME/.rustup/**"));
    assert!(!values_of(&rust.filesystem.readwrite).contains(&"$HOME/.rustup/**"));
    let domains = |doc: &ProfileDoc| -> Vec<String> {
        doc.network
            .domains
            .iter()
            .map(|d| d.value.domain().to_string())
            .collect()
    };
    assert!(domains(&rust).contains(&"index.crates.io".to_string()));
    assert!(domains(&builtin("node-dev.nono")).contains(&"registry.npmjs.org".to_string()));
    assert!(domains(&builtin("python-dev.nono")).contains(&"files.pythonhosted.org".to_string()));
    assert!(domains(&builtin("go-dev.nono")).contains(&"sum.golang.org".to_string()));
    let claude = builtin("claude-code.nono");
    assert_eq!(values_of(&claude.extends), ["node-dev"]);
    assert!(domains(&claude).contains(&"api.anthropic.com".to_string()));
    assert!(values_of(&claude.filesystem.readwrite).contains(&"$HOME/.claude.json"));
    let codex = builtin("codex.nono");
    assert!(domains(&codex).contains(&"api.openai.com".to_string()));
    assert!(values_of(&codex.filesystem.readwrite).contains(&"$HOME/.codex/**"));
}

#[test]
fn errors_stop_after_a_hundred_even_on_one_line() {
    let one_line = format!("read {}\n", "\"\\q\" ".repeat(10_000));
    let all = errors(&one_line);
    assert_eq!(all.len(), 101);
    assert_eq!(all[99].loc, at(1, 7 + 99 * 5), "the 100th escape");
}

#[test]
fn a_long_line_of_values_parses_in_linear_time() {
    let values = 200_000;
    let line = format!("read {}\n", "/a ".repeat(values));
    let started = std::time::Instant::now();
    let parsed = doc(&line);
    assert_eq!(parsed.filesystem.read.len(), values);
    let last = parsed.filesystem.read[values - 1].loc.expect("located");
    assert_eq!(last.column as usize, 6 + (values - 1) * 3);
    // Generous for debug builds on a loaded machine; quadratic column counting took minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
