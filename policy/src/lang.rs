//! The nono policy language front-end.
//!
//! The language is line-oriented: one statement per line, `#` comments, values that are bare
//! words or double-quoted strings (see `grammar.pest`). Each line is parsed on its own so that
//! every bad line is reported, not just the first; the walker here pairs `group NAME {` with
//! its `}`, keeps single-valued settings single, and fills a [`ProfileDoc`] with every value
//! located where it was written. Values are kept as written: checking that a path or a domain
//! makes sense is [`crate::resolve`]'s job, so that it reports the same errors for every
//! front-end.

use std::cell::Cell;
use std::collections::HashMap;

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser;

use crate::diag::{did_you_mean, Diagnostic, Loc, PolicyError, SourceText};
use crate::doc::{
    CidrEntry, DomainEntry, EnvDoc, EnvModeDoc, ExecDoc, FsDoc, GroupDoc, ListenEntry, Located,
    NetDoc, ProfileDoc,
};
use crate::ir::AuditLevel;
use crate::net::{PortSpec, Protocol};

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct LineParser;

/// The words a statement can start with, for "did you mean".
const STATEMENT_KEYWORDS: &[&str] = &[
    "profile",
    "version",
    "description",
    "extends",
    "use",
    "read",
    "write",
    "readwrite",
    "exec",
    "deny",
    "net",
    "ipc",
    "env",
    "audit",
    "rollback",
    "override",
    "group",
];

/// Past this many errors the rest are mostly echoes of the first ones (or the file is not a
/// profile at all); stop rather than bury the useful ones.
const MAX_DIAGNOSTICS: usize = 100;

/// Parse a profile written in the policy language into a document, with every value located.
///
/// A group file (one `group NAME { ... }` block) parses the same way into a document with only
/// `groups` set.
pub fn parse(source_name: &str, text: &str) -> Result<ProfileDoc, PolicyError> {
    // Editors hide a byte-order mark, so columns on the first line count from after it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let source = SourceText::new(source_name, text);
    let mut walker = Walker::new(&source);
    // `str::lines` is also what `SourceText` uses for snippets: "\n" and "\r\n" both end a line.
    for (index, text) in text.lines().enumerate() {
        if walker.truncated {
            break;
        }
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        walker.line(&Line::new(number, text));
    }
    walker.finish()
}

/// One line of the profile, and how to turn offsets within it into locations.
struct Line<'t> {
    number: u32,
    text: &'t str,
    /// The last offset located and its column. Values are located left to right, so counting
    /// on from here keeps a line with many values linear rather than quadratic.
    cursor: Cell<(usize, usize)>,
}

impl<'t> Line<'t> {
    fn new(number: u32, text: &'t str) -> Self {
        Line {
            number,
            text,
            cursor: Cell::new((0, 1)),
        }
    }

    fn loc(&self, offset: usize) -> Loc {
        let offset = offset.min(self.text.len());
        let (mut from, mut column) = self.cursor.get();
        if offset < from {
            (from, column) = (0, 1);
        }
        column += self.text.get(from..offset).map_or(0, |s| s.chars().count());
        self.cursor.set((offset, column));
        Loc {
            line: self.number,
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    /// Where the first token starts (after indentation).
    fn indent(&self) -> usize {
        self.text.len() - self.text.trim_start_matches([' ', '\t']).len()
    }

    /// The statement's first word, as written.
    fn first_word(&self) -> &str {
        self.text
            .split([' ', '\t'])
            .find(|word| !word.is_empty())
            .unwrap_or("")
    }
}

/// A statement as the walker reads it: what pest produced, or what [`fast_line`] produced for
/// a line it could read without pest (exactly what pest would have produced for it).
#[derive(Debug)]
struct Stmt<'i> {
    rule: Rule,
    /// Byte offset of the statement's first keyword in the line.
    start: usize,
    /// The statement's keywords and value positions, in order.
    parts: Vec<Part<'i>>,
}

/// A keyword (`token` is `None`) or a value position (`path`, `domain`...) of a statement.
#[derive(Debug)]
struct Part<'i> {
    rule: Rule,
    token: Option<Token<'i>>,
}

/// The token in a value position.
#[derive(Debug)]
enum Token<'i> {
    /// A bare word, kept as written.
    Word { start: usize, text: &'i str },
    /// A quoted string, decoded by the walker from its pest pairs.
    String(Pair<'i, Rule>),
    /// A quoted string without escapes, read by [`fast_line`]: `start` is the opening quote,
    /// `text` what lies between the quotes.
    Quoted { start: usize, text: &'i str },
}

impl<'i> Stmt<'i> {
    fn from_pest(statement: Pair<'i, Rule>) -> Stmt<'i> {
        let rule = statement.as_rule();
        let start = statement.as_span().start();
        let parts = statement
            .into_inner()
            .map(|part| {
                let rule = part.as_rule();
                let token = part
                    .into_inner()
                    .next()
                    .and_then(|token| match token.as_rule() {
                        Rule::word => Some(Token::Word {
                            start: token.as_span().start(),
                            text: token.as_str(),
                        }),
                        Rule::string => Some(Token::String(token)),
                        _ => None,
                    });
                Part { rule, token }
            })
            .collect();
        Stmt { rule, start, parts }
    }
}

/// Reads a line without pest when it is plain: printable ASCII, spaces and tabs only, no
/// quotes, and the shape of a common statement (or no statement: a blank or comment line).
/// `None` means "not plain: ask the grammar", which also reports any error; `Some(None)` is a
/// line without a statement. For a plain line the grammar's reading is simple to state: tokens
/// are the runs between spaces and tabs, keywords are whole tokens, and a token starting with
/// `#` starts the comment, which holds nothing forbidden. The `fast_line_agrees_with_pest` test
/// holds the two readings together.
fn fast_line<'i>(text: &'i str) -> Option<Option<Stmt<'i>>> {
    let bytes = text.as_bytes();
    // Plain means printable ASCII, spaces and tabs only. Checked as the line is split, each
    // byte once: blanks are skipped, words, strings and the comment are checked whole.
    let plain = |run: &[u8]| {
        run.iter()
            .all(|&b| (b' '..=b'~').contains(&b) || b == b'\t')
    };
    // At most a handful of tokens in the statements read here; more go to pest. A token is
    // a word, or a quoted string when its text starts with `"`.
    let mut tokens: [(usize, &'i str); 16] = [(0, ""); 16];
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' || bytes[i] == b'\t' {
            i += 1;
            continue;
        }
        if bytes[i] == b'#' {
            if !plain(&bytes[i..]) {
                return None;
            }
            break;
        }
        let start = i;
        if bytes[i] == b'"' {
            // A string without escapes, closed on this line, and followed by a blank or the
            // end of the line; anything else (escapes, a missing quote, text glued to the
            // closing quote) is for the grammar to read and report.
            let close = start + 1 + text[start + 1..].find('"')?;
            if !plain(&bytes[start + 1..close]) || text[start + 1..close].contains('\\') {
                return None;
            }
            i = close + 1;
            if i < bytes.len() && bytes[i] != b' ' && bytes[i] != b'\t' {
                return None;
            }
        } else {
            while i < bytes.len() && bytes[i] != b' ' && bytes[i] != b'\t' {
                // A quote inside a word is the walker's error to report; anything but
                // printable ASCII is for the grammar.
                if bytes[i] == b'"' || !(b'!'..=b'~').contains(&bytes[i]) {
                    return None;
                }
                i += 1;
            }
        }
        if count == tokens.len() {
            return None;
        }
        tokens[count] = (start, &text[start..i]);
        count += 1;
    }
    let tokens = &tokens[..count];
    let Some(&(start, first)) = tokens.first() else {
        return Some(None);
    };
    let keyword = |rule| Part { rule, token: None };
    let value = |rule, token: (usize, &'i str)| Part {
        rule,
        token: Some(fast_token(token)),
    };
    let second = tokens.get(1).map(|t| t.1);
    // `keywords` leading keywords, then one or more values of `value_rule`.
    let list = |rule, keywords: &[Rule], value_rule| {
        let values = &tokens[keywords.len()..];
        if values.is_empty() {
            return None;
        }
        // Sized once: collecting the keywords and then extending would reallocate per line.
        let mut parts = Vec::with_capacity(keywords.len() + values.len());
        parts.extend(keywords.iter().map(|&k| keyword(k)));
        parts.extend(values.iter().map(|&t| value(value_rule, t)));
        Some(Some(Stmt { rule, start, parts }))
    };
    // Exactly one value after the keyword.
    let single = |rule, kw, value_rule| {
        if tokens.len() != 2 {
            return None;
        }
        let parts = vec![keyword(kw), value(value_rule, tokens[1])];
        Some(Some(Stmt { rule, start, parts }))
    };
    match (first, second) {
        ("read", _) => list(Rule::read_stmt, &[Rule::kw_read], Rule::path),
        ("write", _) => list(Rule::write_stmt, &[Rule::kw_write], Rule::path),
        ("readwrite", _) => list(Rule::readwrite_stmt, &[Rule::kw_readwrite], Rule::path),
        ("exec", Some("deny")) => list(
            Rule::exec_deny_stmt,
            &[Rule::kw_exec, Rule::kw_deny],
            Rule::path,
        ),
        ("exec", Some("only")) => list(
            Rule::exec_only_stmt,
            &[Rule::kw_exec, Rule::kw_only],
            Rule::path,
        ),
        ("exec", _) => list(Rule::exec_stmt, &[Rule::kw_exec], Rule::path),
        ("deny", Some("read")) => list(
            Rule::deny_read_stmt,
            &[Rule::kw_deny, Rule::kw_read],
            Rule::path,
        ),
        ("deny", Some("write")) => list(
            Rule::deny_write_stmt,
            &[Rule::kw_deny, Rule::kw_write],
            Rule::path,
        ),
        ("deny", Some("exec")) => list(
            Rule::deny_exec_stmt,
            &[Rule::kw_deny, Rule::kw_exec],
            Rule::path,
        ),
        ("deny", _) => list(Rule::deny_stmt, &[Rule::kw_deny], Rule::path),
        // A `{` cannot be a group name: the grammar reads it as a brace (and fails).
        ("use", _) if tokens.iter().all(|t| t.1 != "{") => {
            list(Rule::use_stmt, &[Rule::kw_use], Rule::group_name)
        }
        ("extends", _) => list(Rule::extends_stmt, &[Rule::kw_extends], Rule::profile_name),
        ("env", Some("pass")) => list(
            Rule::env_pass_stmt,
            &[Rule::kw_env, Rule::kw_pass],
            Rule::var_name,
        ),
        ("env", Some("strip")) => list(
            Rule::env_strip_stmt,
            &[Rule::kw_env, Rule::kw_strip],
            Rule::var_name,
        ),
        ("profile", _) => single(Rule::profile_stmt, Rule::kw_profile, Rule::profile_name),
        ("version", _) => single(Rule::version_stmt, Rule::kw_version, Rule::version_text),
        ("description", _) => single(
            Rule::description_stmt,
            Rule::kw_description,
            Rule::description_text,
        ),
        ("group", Some(name)) if name != "{" && tokens.len() == 3 && tokens[2].1 == "{" => {
            let parts = vec![
                keyword(Rule::kw_group),
                value(Rule::group_name, tokens[1]),
                keyword(Rule::open_brace),
            ];
            Some(Some(Stmt {
                rule: Rule::group_open,
                start,
                parts,
            }))
        }
        ("}", None) => Some(Some(Stmt {
            rule: Rule::group_close,
            start,
            parts: vec![keyword(Rule::close_brace)],
        })),
        ("net", Some("allow")) => fast_net_allow(tokens, start),
        _ => None,
    }
}

/// A token of [`fast_line`] as a value: a quoted string or a word.
fn fast_token((start, text): (usize, &str)) -> Token<'_> {
    match text.strip_prefix('"') {
        Some(quoted) => Token::Quoted {
            start,
            text: &quoted[..quoted.len() - 1],
        },
        None => Token::Word { start, text },
    }
}

/// `net allow domain D... [port P]` and `net allow cidr C... tcp|udp [port P]`.
fn fast_net_allow<'i>(tokens: &[(usize, &'i str)], start: usize) -> Option<Option<Stmt<'i>>> {
    let keyword = |rule| Part { rule, token: None };
    let value = |rule, token: (usize, &'i str)| Part {
        rule,
        token: Some(fast_token(token)),
    };
    let (rule, kind, value_rule, ends) = match tokens.get(2)?.1 {
        "domain" => (
            Rule::net_allow_domain_stmt,
            Rule::kw_domain,
            Rule::domain,
            &["port"][..],
        ),
        "cidr" => (
            Rule::net_allow_cidr_stmt,
            Rule::kw_cidr,
            Rule::cidr,
            &["tcp", "udp", "port"][..],
        ),
        _ => return None,
    };
    // Room for every token: three keywords, the values, the protocol and the port.
    let mut parts = Vec::with_capacity(tokens.len());
    parts.extend([
        keyword(Rule::kw_net),
        keyword(Rule::kw_allow),
        keyword(kind),
    ]);
    let rest = &tokens[3..];
    let n = rest.iter().take_while(|t| !ends.contains(&t.1)).count();
    if n == 0 {
        return None;
    }
    parts.extend(rest[..n].iter().map(|&t| value(value_rule, t)));
    let mut rest = &rest[n..];
    if rule == Rule::net_allow_cidr_stmt {
        let proto = match rest.first()?.1 {
            "tcp" => Rule::kw_tcp,
            "udp" => Rule::kw_udp,
            _ => return None,
        };
        parts.push(keyword(proto));
        rest = &rest[1..];
    }
    match rest {
        [] => {}
        [(_, "port"), ports] => {
            parts.push(keyword(Rule::kw_port));
            parts.push(value(Rule::ports, *ports));
        }
        _ => return None,
    }
    Some(Some(Stmt { rule, start, parts }))
}

/// A `group NAME {` whose `}` has not been seen yet.
struct OpenGroup {
    name: String,
    doc: GroupDoc,
    settings: HashMap<&'static str, Loc>,
    /// False when the name repeats an earlier group, or the group line itself was malformed:
    /// the body is still checked, then dropped.
    keep: bool,
    /// The group line was malformed and reported: a missing `}` may be part of that mistake,
    /// so it is not reported again.
    malformed: bool,
    /// `group` lines reported as nested inside this one whose `}` is still to come.
    nested_blocks: u32,
}

/// The rule sections a statement adds to: the profile's own, or the open group's.
struct Sections<'d> {
    filesystem: &'d mut FsDoc,
    exec: &'d mut ExecDoc,
    network: &'d mut NetDoc,
    env: &'d mut EnvDoc,
}

struct Walker<'s> {
    source: &'s SourceText<'s>,
    doc: ProfileDoc,
    /// Where each single-valued profile setting was first set, to reject a second one.
    settings: HashMap<&'static str, Loc>,
    group: Option<OpenGroup>,
    diagnostics: Vec<Diagnostic>,
    /// Set once `MAX_DIAGNOSTICS` errors are reported; later ones are dropped unbuilt.
    truncated: bool,
}

impl<'s> Walker<'s> {
    fn new(source: &'s SourceText<'s>) -> Self {
        Walker {
            source,
            doc: ProfileDoc::default(),
            settings: HashMap::new(),
            group: None,
            diagnostics: Vec::new(),
            truncated: false,
        }
    }

    fn finish(mut self) -> Result<ProfileDoc, PolicyError> {
        if let Some(group) = self.group.take().filter(|group| !group.malformed) {
            self.error(
                group.doc.loc,
                format!("group `{}` is never closed", group.name),
                group.name.chars().count(),
                Some("end the group with a line holding only `}`".into()),
            );
        }
        if self.truncated {
            let note = format!("too many errors; stopped after {MAX_DIAGNOSTICS}");
            self.diagnostics
                .push(Diagnostic::new(self.source.name, None, note));
        }
        if self.diagnostics.is_empty() {
            Ok(self.doc)
        } else {
            Err(PolicyError {
                diagnostics: self.diagnostics,
            })
        }
    }

    /// Whether there is room for another diagnostic. Past the limit they are not even built:
    /// building one scans the source for its snippet line.
    fn room_for_error(&mut self) -> bool {
        self.truncated = self.diagnostics.len() >= MAX_DIAGNOSTICS;
        !self.truncated
    }

    fn error(&mut self, loc: Option<Loc>, message: String, span: usize, help: Option<String>) {
        if !self.room_for_error() {
            return;
        }
        let mut diagnostic = self.source.error(loc, message).with_span(span);
        if let Some(help) = help {
            diagnostic = diagnostic.with_help(help);
        }
        self.diagnostics.push(diagnostic);
    }

    fn line(&mut self, line: &Line) {
        // Most lines are plain: comments, blank lines, and statements of bare ASCII words.
        // Those are read without pest (see `fast_line`); anything else, errors included, goes
        // through the grammar.
        if let Some(statement) = fast_line(line.text) {
            if let Some(statement) = statement {
                self.statement(line, statement);
            }
            return;
        }
        match LineParser::parse(Rule::line, line.text) {
            Ok(mut pairs) => {
                let parts = pairs.next().into_iter().flat_map(|line| line.into_inner());
                for part in parts {
                    if rule_is_statement(part.as_rule()) {
                        self.statement(line, Stmt::from_pest(part));
                    }
                }
            }
            Err(error) => {
                if self.room_for_error() {
                    let diagnostic = self.explain(line, &error);
                    self.diagnostics.push(diagnostic);
                }
                // A malformed `group` line still opens a block and a malformed `}` line still
                // closes one: otherwise each error would echo as a brace mismatch, and a body
                // be checked against the wrong rules.
                match line.first_word() {
                    "group" if self.group.is_none() => {
                        self.open_malformed_group(Some(line.loc(line.indent())));
                    }
                    "}" => self.group = None,
                    _ => {}
                }
            }
        }
    }

    fn sections(&mut self) -> Sections<'_> {
        match &mut self.group {
            Some(group) => Sections {
                filesystem: &mut group.doc.filesystem,
                exec: &mut group.doc.exec,
                network: &mut group.doc.network,
                env: &mut group.doc.env,
            },
            None => Sections {
                filesystem: &mut self.doc.filesystem,
                exec: &mut self.doc.exec,
                network: &mut self.doc.network,
                env: &mut self.doc.env,
            },
        }
    }

    /// The list a path statement adds to, in the open group or the profile.
    fn path_list(&mut self, rule: Rule) -> &mut Vec<Located<String>> {
        let sections = self.sections();
        match rule {
            Rule::read_stmt => &mut sections.filesystem.read,
            Rule::write_stmt => &mut sections.filesystem.write,
            Rule::readwrite_stmt => &mut sections.filesystem.readwrite,
            Rule::exec_stmt => &mut sections.filesystem.exec,
            Rule::deny_stmt => &mut sections.filesystem.deny,
            Rule::deny_read_stmt => &mut sections.filesystem.deny_read,
            Rule::deny_write_stmt => &mut sections.filesystem.deny_write,
            Rule::deny_exec_stmt => &mut sections.filesystem.deny_exec,
            Rule::exec_deny_stmt => &mut sections.exec.deny,
            Rule::exec_only_stmt => sections.exec.allow_only.get_or_insert_with(Vec::new),
            other => unreachable!("{other:?} is not a path statement"),
        }
    }

    /// Records that a single-valued setting is set here; false (and an error) if it already was.
    fn claim(&mut self, setting: &'static str, loc: Loc, span: usize) -> bool {
        let settings = match &mut self.group {
            Some(group) => &mut group.settings,
            None => &mut self.settings,
        };
        match settings.get(setting) {
            Some(first) => {
                let first_line = first.line;
                self.error(
                    Some(loc),
                    format!("`{setting}` is already set on line {first_line}"),
                    span,
                    Some("a setting takes one value; remove one of the two lines".into()),
                );
                false
            }
            None => {
                settings.insert(setting, loc);
                true
            }
        }
    }

    fn statement(&mut self, line: &Line, statement: Stmt) {
        let rule = statement.rule;
        let start = statement.start;
        let loc = line.loc(start);
        // Only errors need the keyword and its width: found when one is reported, not for
        // every line.
        let keyword = || line.first_word();
        let keyword_span = || keyword().chars().count();
        if let Some(group) = &mut self.group {
            if rule == Rule::group_open {
                // Its `}` is part of the same mistake: let it close the nested block, not this.
                group.nested_blocks += 1;
                let (name, opened_on) = (group.name.clone(), group.doc.loc.map(|l| l.line));
                self.error(
                    Some(loc),
                    "groups cannot be nested".into(),
                    keyword_span(),
                    Some(match opened_on {
                        Some(n) => {
                            format!("close group `{name}` (opened on line {n}) with `}}` first")
                        }
                        None => format!("close group `{name}` with `}}` first"),
                    }),
                );
                return;
            }
            if !allowed_in_group(rule) {
                self.error(
                    Some(loc),
                    format!("`{}` is not allowed inside a group", keyword()),
                    keyword_span(),
                    Some(
                        "groups hold filesystem, exec, net and env rules; \
                         move this line outside the group"
                            .into(),
                    ),
                );
                return;
            }
        }
        if let Some(setting) = single_setting(rule) {
            if !self.claim(setting, loc, keyword_span()) {
                return;
            }
        }
        let pairs = statement.parts;
        match rule {
            Rule::profile_stmt => {
                if let Some(name) = self.values(line, pairs, Rule::profile_name).pop() {
                    self.doc.name = Some(name.value);
                }
            }
            Rule::version_stmt => {
                if let Some(version) = self.values(line, pairs, Rule::version_text).pop() {
                    self.doc.version = Some(version.value);
                }
            }
            Rule::description_stmt => {
                if let Some(text) = self.values(line, pairs, Rule::description_text).pop() {
                    match &mut self.group {
                        Some(group) => group.doc.description = Some(text.value),
                        None => self.doc.description = Some(text.value),
                    }
                }
            }
            Rule::extends_stmt => {
                let names = self.values(line, pairs, Rule::profile_name);
                self.doc.extends.extend(names);
            }
            Rule::use_stmt => {
                let names = self.values(line, pairs, Rule::group_name);
                self.doc.use_groups.extend(names);
            }
            Rule::read_stmt
            | Rule::write_stmt
            | Rule::readwrite_stmt
            | Rule::exec_stmt
            | Rule::deny_stmt
            | Rule::deny_read_stmt
            | Rule::deny_write_stmt
            | Rule::deny_exec_stmt
            | Rule::exec_deny_stmt
            | Rule::exec_only_stmt => {
                // Each path goes straight onto its list: most lines hold one, and collecting
                // them first would cost a vector per line.
                for part in pairs.into_iter().filter(|part| part.rule == Rule::path) {
                    if let Some(path) = self.value(line, part) {
                        self.path_list(rule).push(path);
                    }
                }
            }
            Rule::net_allow_all_stmt => {
                self.sections().network.allow_all = Some(true);
            }
            Rule::net_allow_domain_stmt => {
                let mut domains = Vec::new();
                let mut ports = None;
                for pair in pairs {
                    match pair.rule {
                        Rule::domain => domains.extend(self.value(line, pair)),
                        Rule::ports => ports = self.value(line, pair).map(|p| port_specs(&p.value)),
                        _ => {}
                    }
                }
                let entries = domains.into_iter().map(|domain| {
                    let entry = match &ports {
                        Some(ports) => DomainEntry::WithPorts {
                            domain: domain.value,
                            ports: ports.clone(),
                        },
                        None => DomainEntry::Name(domain.value),
                    };
                    Located::new(entry, domain.loc)
                });
                self.sections().network.domains.extend(entries);
            }
            Rule::net_allow_cidr_stmt => {
                let mut cidrs = Vec::new();
                let mut protocol = Protocol::Tcp;
                let mut ports = Vec::new();
                for pair in pairs {
                    match pair.rule {
                        Rule::cidr => cidrs.extend(self.value(line, pair)),
                        Rule::kw_udp => protocol = Protocol::Udp,
                        Rule::ports => {
                            ports = self
                                .value(line, pair)
                                .map(|p| port_specs(&p.value))
                                .unwrap_or_default()
                        }
                        _ => {}
                    }
                }
                let entries = cidrs.into_iter().map(|cidr| {
                    let entry = CidrEntry {
                        cidr: cidr.value,
                        protocol,
                        ports: ports.clone(),
                    };
                    Located::new(entry, cidr.loc)
                });
                self.sections().network.cidrs.extend(entries);
            }
            Rule::net_listen_stmt => {
                let mut protocol = Protocol::Tcp;
                let mut ports = None;
                for pair in pairs {
                    match pair.rule {
                        Rule::kw_udp => protocol = Protocol::Udp,
                        // Located at the ports: they are what resolve may find fault with.
                        Rule::ports => ports = self.value(line, pair),
                        _ => {}
                    }
                }
                if let Some(ports) = ports {
                    let entry = ListenEntry {
                        protocol,
                        ports: port_specs(&ports.value),
                    };
                    self.sections()
                        .network
                        .listen
                        .push(Located::new(entry, ports.loc));
                }
            }
            Rule::ipc_signals_stmt => {
                self.doc.ipc.scope_signals = Some(has(pairs, Rule::kw_scoped));
            }
            Rule::ipc_abstract_unix_stmt => {
                self.doc.ipc.scope_abstract_unix = Some(has(pairs, Rule::kw_scoped));
            }
            Rule::ipc_unix_socket_stmt => {
                let paths = self.values(line, pairs, Rule::path);
                self.doc.ipc.unix_sockets.extend(paths);
            }
            Rule::env_mode_stmt => {
                let mode = if has(pairs, Rule::kw_clean) {
                    EnvModeDoc::Clean
                } else {
                    EnvModeDoc::Inherit
                };
                self.sections().env.mode = Some(mode);
            }
            Rule::env_pass_stmt => {
                let names = self.values(line, pairs, Rule::var_name);
                self.sections().env.pass.extend(names);
            }
            Rule::env_strip_stmt => {
                let names = self.values(line, pairs, Rule::var_name);
                self.sections().env.strip.extend(names);
            }
            Rule::audit_stmt => {
                let level = pairs
                    .iter()
                    .fold(AuditLevel::Denied, |level, pair| match pair.rule {
                        Rule::kw_off => AuditLevel::Off,
                        Rule::kw_all => AuditLevel::All,
                        _ => level,
                    });
                self.doc.audit.level = Some(level);
            }
            Rule::rollback_stmt => {
                self.doc.rollback.enabled = Some(has(pairs, Rule::kw_on));
            }
            Rule::rollback_gitignore_stmt => {
                self.doc.rollback.gitignore = Some(has(pairs, Rule::kw_on));
            }
            Rule::rollback_exclude_stmt => {
                let patterns = self.values(line, pairs, Rule::exclude_pattern);
                self.doc.rollback.exclude.extend(patterns);
            }
            Rule::rollback_include_stmt => {
                let names = self.values(line, pairs, Rule::exclude_pattern);
                self.doc.rollback.include.extend(names);
            }
            Rule::override_stmt => {
                self.doc.overrides.allow_broad_write = Some(true);
            }
            Rule::group_open => {
                let name = pairs
                    .into_iter()
                    .filter(|pair| pair.rule == Rule::group_name)
                    .find_map(|pair| self.value(line, pair));
                match name {
                    Some(name) => {
                        let earlier = self.doc.groups.get(&name.value).map(|g| g.loc);
                        if let Some(earlier) = earlier {
                            let help = earlier.map(|l| format!("the first is on line {}", l.line));
                            self.error(
                                name.loc,
                                format!("group `{}` is defined twice", name.value),
                                name.value.chars().count(),
                                help,
                            );
                        }
                        self.open_group(name.value, name.loc, earlier.is_none(), false);
                    }
                    // The name was malformed (and reported); still match the `}`.
                    None => self.open_malformed_group(Some(loc)),
                }
            }
            Rule::group_close => match self.group.take() {
                Some(mut group) if group.nested_blocks > 0 => {
                    group.nested_blocks -= 1;
                    self.group = Some(group);
                }
                Some(group) if group.keep => {
                    self.doc.groups.insert(group.name, group.doc);
                }
                Some(_) => {}
                None => self.error(
                    Some(loc),
                    "`}` without a group to close".into(),
                    1,
                    Some("a group starts with `group NAME {` on a line of its own".into()),
                ),
            },
            _ => {}
        }
    }

    /// Opens a block for a `group` line that was reported as malformed.
    fn open_malformed_group(&mut self, loc: Option<Loc>) {
        self.open_group(String::new(), loc, false, true);
    }

    fn open_group(&mut self, name: String, loc: Option<Loc>, keep: bool, malformed: bool) {
        self.group = Some(OpenGroup {
            name,
            doc: GroupDoc {
                loc,
                ..GroupDoc::default()
            },
            settings: HashMap::new(),
            keep,
            malformed,
            nested_blocks: 0,
        });
    }

    /// The decoded values of the statement's `rule` positions, each located; malformed ones
    /// are reported and left out.
    fn values(&mut self, line: &Line, parts: Vec<Part>, rule: Rule) -> Vec<Located<String>> {
        // Not `collect`ed from `parts`: that would reuse (and then shrink) the parts' buffer,
        // a reallocation per statement.
        let mut values = Vec::with_capacity(parts.len());
        for part in parts.into_iter().filter(|part| part.rule == rule) {
            values.extend(self.value(line, part));
        }
        values
    }

    /// One value position (`path`, `domain`...), whose single child is a word or a string.
    fn value(&mut self, line: &Line, position: Part) -> Option<Located<String>> {
        // Located before decoding, which locates escapes further right.
        let value = match position.token? {
            Token::Word { start, text } => {
                let loc = line.loc(start);
                Located::new(self.word(line, start, text)?, Some(loc))
            }
            Token::String(string) => {
                let loc = line.loc(string.as_span().start());
                Located::new(self.string(line, string)?, Some(loc))
            }
            Token::Quoted { start, text } => Located::new(text.to_string(), Some(line.loc(start))),
        };
        Some(value)
    }

    fn word(&mut self, line: &Line, start: usize, text: &str) -> Option<String> {
        // Legal by the letter of the grammar, but `/tmp/"my dir"` would silently become two
        // odd paths: a quote inside a word is always a mistake worth stopping for.
        if let Some(quote) = text.bytes().position(|b| b == b'"') {
            self.error(
                Some(line.loc(start + quote)),
                format!("unexpected `\"` inside `{}`", shown(text)),
                1,
                Some(
                    "quote the whole value, and write a quote inside it as `\\\"`: \
                     \"/tmp/my dir\""
                        .into(),
                ),
            );
            return None;
        }
        Some(text.to_string())
    }

    fn string(&mut self, line: &Line, string: Pair<Rule>) -> Option<String> {
        let opening_quote = line.loc(string.as_span().start());
        let mut value = String::new();
        let mut ok = true;
        let mut ends_with_escaped_quote = false;
        for part in string.into_inner() {
            let start = part.as_span().start();
            match part.as_rule() {
                Rule::string_text => {
                    value.push_str(part.as_str());
                    ends_with_escaped_quote = false;
                }
                Rule::escape => {
                    ends_with_escaped_quote = part.as_str() == "\\\"";
                    match unescape(part.as_str()) {
                        Ok(Some(c)) => value.push(c),
                        // A backslash at the end of the line: the missing quote is the error.
                        Ok(None) => {}
                        Err((message, help)) => {
                            let span = part.as_str().chars().count();
                            self.error(Some(line.loc(start)), message, span, Some(help));
                            ok = false;
                        }
                    }
                }
                Rule::missing_quote => {
                    let help = if ends_with_escaped_quote {
                        "the last `\"` is escaped by the `\\` before it; write `\\\\` for a backslash"
                    } else {
                        "close it with `\"` on the same line (strings cannot span lines; \
                         write `\\n` for a line break)"
                    };
                    self.error(
                        Some(opening_quote),
                        "unterminated string".into(),
                        1,
                        Some(help.into()),
                    );
                    ok = false;
                }
                Rule::string_trailer => {
                    self.error(
                        Some(line.loc(start)),
                        format!("unexpected `{}` right after a string", shown(part.as_str())),
                        part.as_str().chars().count(),
                        Some("separate values (and comments) with a space".into()),
                    );
                    ok = false;
                }
                _ => {}
            }
        }
        ok.then_some(value)
    }

    /// A diagnostic for a line the grammar rejected, in words rather than rule names.
    fn explain(&self, line: &Line, error: &pest::error::Error<Rule>) -> Diagnostic {
        let offset = match error.location {
            InputLocation::Pos(offset) => offset,
            InputLocation::Span((start, _)) => start,
        };
        let rest = line.text.get(offset..).unwrap_or("");
        let loc = Some(line.loc(offset));

        if let Some(c) = rest.chars().next().filter(|&c| is_invisible(c)) {
            return self
                .source
                .error(
                    loc,
                    format!("invisible character {} is not allowed", name_char(c)),
                )
                .with_help(
                    "it would make this line mean something other than what it shows; \
                     delete it (inside a string, write it as `\\u{...}` if it is really meant)",
                );
        }

        let found = token_at(rest);
        let found_span = found.chars().count();
        if offset <= line.indent() {
            return self.unknown_statement(loc, found);
        }

        let (positives, negatives) = match &error.variant {
            ErrorVariant::ParsingError {
                positives,
                negatives,
            } => (positives.as_slice(), negatives.as_slice()),
            ErrorVariant::CustomError { .. } => (&[][..], &[][..]),
        };
        // Pest lists what it tried in no useful order; the grammar declares values first and
        // keywords in reading order (`on` before `off`...), so sort by declaration.
        let mut positives = positives.to_vec();
        positives.sort();
        let mut expected: Vec<String> = Vec::new();
        for phrase in positives.iter().filter_map(|&rule| expectation(rule)) {
            if !expected.contains(&phrase) {
                expected.push(phrase);
            }
        }
        // `group {`: the name position refused the brace, so pest only saw the lookahead.
        if expected.is_empty() && negatives.contains(&Rule::open_brace) {
            expected.push("a group name".into());
        }
        let previous = previous_token(line.text.get(..offset).unwrap_or(""));
        let statement = line.first_word();

        if found.is_empty() {
            let message = if expected.is_empty() {
                format!("incomplete `{statement}` statement")
            } else {
                format!("expected {} after `{}`", one_of(&expected), shown(previous))
            };
            return self.source.error(loc, message);
        }
        if expected.is_empty() {
            let help = if matches!(statement, "profile" | "version" | "description") {
                "a value with spaces goes in double quotes: \"like this\"".to_string()
            } else if matches!(statement, "group" | "}") {
                "a group's braces end their lines: put each statement on its own line".to_string()
            } else {
                format!(
                    "the `{statement}` statement ends after `{}`",
                    shown(previous)
                )
            };
            return self
                .source
                .error(loc, format!("unexpected `{}`", shown(found)))
                .with_span(found_span)
                .with_help(help);
        }
        let mut diagnostic = self
            .source
            .error(
                loc,
                format!(
                    "expected {} after `{}`, found `{}`",
                    one_of(&expected),
                    shown(previous),
                    shown(found)
                ),
            )
            .with_span(found_span);
        let keywords: Vec<&str> = positives.iter().filter_map(|&r| keyword_of(r)).collect();
        if let Some(help) = keyword_help(found, &keywords) {
            diagnostic = diagnostic.with_help(help);
        }
        diagnostic
    }

    fn unknown_statement(&self, loc: Option<Loc>, found: &str) -> Diagnostic {
        let span = found.chars().count();
        if found.starts_with('"') {
            let mut diagnostic = self
                .source
                .error(loc, "a statement starts with a keyword, not a string")
                .with_span(span);
            if let Some(help) = keyword_help(found, STATEMENT_KEYWORDS) {
                diagnostic = diagnostic.with_help(help);
            }
            return diagnostic;
        }
        let help = keyword_help(found, STATEMENT_KEYWORDS).unwrap_or_else(|| {
            format!(
                "a statement starts with one of: {}",
                STATEMENT_KEYWORDS.join(", ")
            )
        });
        self.source
            .error(loc, format!("unknown statement `{}`", shown(found)))
            .with_span(span)
            .with_help(help)
    }
}

/// The settings a profile (or group) gives one value, named for messages.
fn single_setting(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::profile_stmt => "profile",
        Rule::version_stmt => "version",
        Rule::description_stmt => "description",
        Rule::net_allow_all_stmt => "net allow all",
        Rule::ipc_signals_stmt => "ipc signals",
        Rule::ipc_abstract_unix_stmt => "ipc abstract-unix",
        Rule::env_mode_stmt => "env mode",
        Rule::audit_stmt => "audit",
        Rule::rollback_stmt => "rollback",
        Rule::rollback_gitignore_stmt => "rollback gitignore",
        Rule::override_stmt => "override allow-broad-write",
        _ => return None,
    })
}

fn rule_is_statement(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::profile_stmt
            | Rule::version_stmt
            | Rule::description_stmt
            | Rule::extends_stmt
            | Rule::use_stmt
            | Rule::group_open
            | Rule::group_close
            | Rule::ipc_signals_stmt
            | Rule::ipc_abstract_unix_stmt
            | Rule::ipc_unix_socket_stmt
            | Rule::audit_stmt
            | Rule::rollback_stmt
            | Rule::rollback_exclude_stmt
            | Rule::rollback_include_stmt
            | Rule::rollback_gitignore_stmt
            | Rule::override_stmt
    ) || allowed_in_group(rule)
}

/// What a group may hold: rules, and a description of itself. Identity, inheritance and
/// session settings (audit, rollback, ipc, overrides) belong to the profile that uses it.
fn allowed_in_group(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::description_stmt
            | Rule::group_close
            | Rule::read_stmt
            | Rule::write_stmt
            | Rule::readwrite_stmt
            | Rule::exec_stmt
            | Rule::deny_stmt
            | Rule::deny_read_stmt
            | Rule::deny_write_stmt
            | Rule::deny_exec_stmt
            | Rule::exec_deny_stmt
            | Rule::exec_only_stmt
            | Rule::net_allow_all_stmt
            | Rule::net_allow_domain_stmt
            | Rule::net_allow_cidr_stmt
            | Rule::net_listen_stmt
            | Rule::env_mode_stmt
            | Rule::env_pass_stmt
            | Rule::env_strip_stmt
    )
}

fn has(parts: Vec<Part>, rule: Rule) -> bool {
    parts.iter().any(|part| part.rule == rule)
}

/// `80,443,8000-8100` as port specs. Anything that is not a plain number is kept as text for
/// resolve to accept as a range or report.
fn port_specs(text: &str) -> Vec<PortSpec> {
    text.split(',')
        .map(|piece| {
            let number = (!piece.is_empty() && piece.bytes().all(|b| b.is_ascii_digit()))
                .then(|| piece.parse::<i64>().ok())
                .flatten();
            match number {
                Some(n) => PortSpec::Number(n),
                None => PortSpec::Text(piece.to_string()),
            }
        })
        .collect()
}

/// The character an escape (`\n`, `\u{1F600}`...) stands for; `None` for a bare backslash at
/// the end of a line.
fn unescape(escape: &str) -> Result<Option<char>, (String, String)> {
    const ESCAPES: &str = "strings accept `\\\"`, `\\\\`, `\\n`, `\\t` and `\\u{HEX}`";
    let body = escape.strip_prefix('\\').unwrap_or(escape);
    let c = match body {
        "" => return Ok(None),
        "\"" => '"',
        "\\" => '\\',
        "n" => '\n',
        "t" => '\t',
        "u" => {
            return Err((
                "`\\u` needs a code point in braces".into(),
                "write for example `\\u{e9}` for é".into(),
            ))
        }
        _ => match body.strip_prefix("u{").and_then(|b| b.strip_suffix('}')) {
            Some(hex) => {
                let code = (1..=6)
                    .contains(&hex.len())
                    .then(|| u32::from_str_radix(hex, 16).ok())
                    .flatten();
                match code.and_then(char::from_u32) {
                    Some(c) => c,
                    None => {
                        return Err((
                            format!("`{escape}` is not a Unicode character"),
                            "write 1 to 6 hex digits naming a character, as in `\\u{e9}`".into(),
                        ))
                    }
                }
            }
            None => {
                return Err((
                    format!("unknown escape `{}`", shown(escape)),
                    ESCAPES.into(),
                ))
            }
        },
    };
    Ok(Some(c))
}

/// Characters the grammar refuses where they would be invisible: control characters (but
/// tab), blanks other than space and tab, format characters (zero-width spaces, bidirectional
/// overrides...). Asked of pest's own tables so that explanations match the grammar.
fn is_invisible(c: char) -> bool {
    use pest::unicode::{BIDI_CONTROL, CONTROL, FORMAT, WHITE_SPACE};
    c != '\t' && c != ' ' && (CONTROL(c) || WHITE_SPACE(c) || FORMAT(c) || BIDI_CONTROL(c))
}

fn name_char(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// The token starting at the beginning of `rest`: a string up to its closing quote, or a word.
/// Empty at the end of the line or at a comment.
fn token_at(rest: &str) -> &str {
    if rest.starts_with('#') {
        return "";
    }
    let end = if rest.starts_with('"') {
        // The grammar's own lexer decides where the string ends.
        LineParser::parse(Rule::tokens, rest)
            .ok()
            .and_then(|mut pairs| pairs.next())
            .and_then(|tokens| tokens.into_inner().next())
            .map(|string| string.as_span().end())
    } else {
        None
    };
    let end = end.unwrap_or_else(|| rest.find([' ', '\t']).unwrap_or(rest.len()));
    rest.get(..end).unwrap_or(rest)
}

/// The last token of a line prefix that the grammar accepted, for "after `...`".
fn previous_token(prefix: &str) -> &str {
    LineParser::parse(Rule::tokens, prefix)
        .ok()
        .and_then(|mut pairs| pairs.next())
        .and_then(|tokens| tokens.into_inner().last())
        .map(|token| token.as_str())
        .unwrap_or_else(|| prefix.trim_end().rsplit([' ', '\t']).next().unwrap_or(""))
}

/// What the grammar expected at a position, in words; `None` for "the end of the statement".
fn expectation(rule: Rule) -> Option<String> {
    if let Some(keyword) = keyword_of(rule) {
        return Some(format!("`{keyword}`"));
    }
    let phrase = match rule {
        Rule::path => "a path",
        Rule::profile_name => "a profile name",
        Rule::group_name => "a group name",
        Rule::var_name => "an environment variable name",
        Rule::exclude_pattern => "a file name or pattern",
        Rule::version_text => "a version",
        Rule::description_text => "a description",
        Rule::domain => "a domain",
        Rule::cidr => "an address or CIDR",
        Rule::ports => "ports (like `443` or `80,8000-8100`)",
        Rule::open_brace => "`{`",
        Rule::close_brace => "`}`",
        _ => return None,
    };
    Some(phrase.to_string())
}

/// The keyword a `kw_*` rule matches: the rule's name with `-` for `_`.
fn keyword_of(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::kw_profile => "profile",
        Rule::kw_version => "version",
        Rule::kw_description => "description",
        Rule::kw_extends => "extends",
        Rule::kw_use => "use",
        Rule::kw_read => "read",
        Rule::kw_write => "write",
        Rule::kw_readwrite => "readwrite",
        Rule::kw_exec => "exec",
        Rule::kw_deny => "deny",
        Rule::kw_only => "only",
        Rule::kw_net => "net",
        Rule::kw_allow => "allow",
        Rule::kw_all => "all",
        Rule::kw_domain => "domain",
        Rule::kw_cidr => "cidr",
        Rule::kw_listen => "listen",
        Rule::kw_port => "port",
        Rule::kw_tcp => "tcp",
        Rule::kw_udp => "udp",
        Rule::kw_ipc => "ipc",
        Rule::kw_signals => "signals",
        Rule::kw_abstract_unix => "abstract-unix",
        Rule::kw_unix_socket => "unix-socket",
        Rule::kw_scoped => "scoped",
        Rule::kw_unscoped => "unscoped",
        Rule::kw_env => "env",
        Rule::kw_mode => "mode",
        Rule::kw_inherit => "inherit",
        Rule::kw_clean => "clean",
        Rule::kw_pass => "pass",
        Rule::kw_strip => "strip",
        Rule::kw_audit => "audit",
        Rule::kw_off => "off",
        Rule::kw_on => "on",
        Rule::kw_denied => "denied",
        Rule::kw_rollback => "rollback",
        Rule::kw_exclude => "exclude",
        Rule::kw_include => "include",
        Rule::kw_gitignore => "gitignore",
        Rule::kw_override => "override",
        Rule::kw_allow_broad_write => "allow-broad-write",
        Rule::kw_group => "group",
        _ => return None,
    })
}

/// "did you mean" for a token written where a keyword belongs.
fn keyword_help(found: &str, keywords: &[&str]) -> Option<String> {
    let unquoted = found
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(found);
    if unquoted != found && keywords.contains(&unquoted) {
        return Some(format!("keywords are written without quotes: `{unquoted}`"));
    }
    did_you_mean(unquoted, keywords.iter().copied()).map(|k| format!("did you mean `{k}`?"))
}

/// "`a`", "`a` or `b`", "`a`, `b` or `c`".
fn one_of(phrases: &[String]) -> String {
    match phrases {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A token for a message: invisible characters escaped, and long ones shortened.
fn shown(token: &str) -> String {
    const LIMIT: usize = 60;
    let mut out: String = token
        .chars()
        .take(LIMIT)
        .map(|c| {
            if is_invisible(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if token.chars().count() > LIMIT {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `keyword_of` is written out by hand; it must say exactly what each `kw_*` rule matches.
    #[test]
    fn keyword_table_matches_the_grammar() {
        let keyword_rules: Vec<Rule> = Rule::all_rules()
            .iter()
            .copied()
            .filter(|rule| format!("{rule:?}").starts_with("kw_"))
            .collect();
        assert!(keyword_rules.len() > 40);
        for rule in keyword_rules {
            let keyword = keyword_of(rule).unwrap_or_else(|| panic!("{rule:?} has no text"));
            let matched = LineParser::parse(rule, keyword).map(|pairs| pairs.as_str().to_owned());
            assert_eq!(matched.as_deref(), Ok(keyword), "{rule:?}");
        }
    }

    #[test]
    fn every_statement_keyword_starts_a_statement() {
        for keyword in STATEMENT_KEYWORDS {
            let error = LineParser::parse(Rule::line, keyword).expect_err("incomplete");
            let offset = match error.location {
                InputLocation::Pos(offset) => offset,
                InputLocation::Span((start, _)) => start,
            };
            assert_eq!(offset, keyword.len(), "`{keyword}` should be recognised");
        }
    }

    /// A statement as comparable data: rule, offset, and each part's rule and word.
    /// A statement's rule, offset, and each part's rule and (offset, text).
    type Shape = (Rule, usize, Vec<(Rule, Option<(usize, String)>)>);

    fn shape(statement: &Stmt) -> Shape {
        let parts = statement
            .parts
            .iter()
            .map(|part| {
                let token = part.token.as_ref().map(|token| match token {
                    Token::Word { start, text } => (*start, text.to_string()),
                    // Only strings without escapes are compared: their value is their text.
                    Token::String(pair) => (pair.as_span().start(), pair.as_str().to_string()),
                    Token::Quoted { start, text } => (*start, format!("\"{text}\"")),
                });
                (part.rule, token)
            })
            .collect();
        (statement.rule, statement.start, parts)
    }

    /// Wherever `fast_line` reads a line, pest reads it the same way.
    #[test]
    fn fast_line_agrees_with_pest() {
        let mut lines: Vec<String> = [
            "",
            "   ",
            "# c",
            "\t# c\t",
            "#",
            "read /a #c",
            "read /a#c",
            "read",
            "read #x",
            "exec deny",
            "exec deny /x",
            "exec only /x /y",
            "exec denyx /y",
            "exec /deny",
            "exec only",
            "deny read",
            "deny read /x",
            "deny readx /y",
            "deny write /x",
            "deny exec /x # c",
            "deny /x",
            "deny deny /x",
            "use a b",
            "use a {",
            "use {",
            "use",
            "extends a b",
            "extends",
            "profile a",
            "profile a b",
            "profile",
            "version 1",
            "description x",
            "description x y",
            "group g {",
            "group { {",
            "group g",
            "group g { x",
            "group g {{",
            "}",
            "} x",
            "}}",
            "} # end",
            "net allow domain a.com",
            "net allow domain a.com port 443",
            "net allow domain a.com port",
            "net allow domain a.com port 1 2",
            "net allow domain port 1",
            "net allow domain tcp port 1",
            "net allow domain",
            "net allow cidr 10.0.0.0/8 tcp",
            "net allow cidr 10.0.0.0/8 udp port 53",
            "net allow cidr 10.0.0.0/8 port 53",
            "net allow cidr tcp",
            "net allow cidr a b tcp port 1",
            "net allow cidr a udp port",
            "net allow all",
            "net allow",
            "net listen tcp port 80",
            "env strip A B*",
            "env pass X",
            "env pass",
            "env mode clean",
            "readwrite /a /b /c",
            "write x",
            "read a\\b",
            "read {",
            "read }",
            "read a b c d e f g h i j k l m n o p q r",
            "  read   /a  ",
            "read\t/a",
            "reads /a",
            "exec",
            "deny",
            "audit all",
            "ipc signals scoped",
            "rollback on",
            "override allow-broad-write",
            "read \"/a b\"",
            "read /a\u{a0}#c",
            "read /é",
            "read /a\r",
            "read /a \u{202e}",
            "#\u{7f}",
            // Each place a byte that is not plain may sit: a word, a string, a comment.
            "read /a\u{7f}",
            "read /a\u{1}b",
            "read \"/a\u{7}b\"",
            "read \"/é\"",
            "read \"/a\tb\"",
            "read /a #\u{1}",
            "read /a #\tc",
            "read /a\u{b}#c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let builtin: Vec<&str> = crate::builtin::PROFILES
            .iter()
            .chain(crate::builtin::GROUPS)
            .flat_map(|(_, _, text)| text.lines())
            .collect();
        let plain = builtin.iter().filter(|l| fast_line(l).is_some()).count();
        assert!(
            plain * 10 > builtin.len() * 9,
            "the fast path reads most lines"
        );
        lines.extend(builtin.iter().map(|l| l.to_string()));
        // Random lines over the keywords and some values: every keyword, in every order.
        let mut vocabulary: Vec<&str> = STATEMENT_KEYWORDS.to_vec();
        vocabulary.extend([
            "deny",
            "only",
            "allow",
            "domain",
            "cidr",
            "port",
            "tcp",
            "udp",
            "all",
            "pass",
            "strip",
            "{",
            "}",
            "#",
            "#x",
            "/a",
            "$HOME/**",
            "a.com",
            "10.0.0.0/8",
            "443",
            "x#y",
            "listen",
            "mode",
            "clean",
            r#""a b""#,
            r#""x""#,
            r#""""#,
            r#""a\"b""#,
            r#""open"#,
            r#""a"b"#,
            r#"a"b"#,
            r##""#""##,
            r#""{""#,
            r#""port""#,
            r#""\\""#,
            "\"é\"",
        ]);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let len = 1 + next(6);
            let words: Vec<&str> = (0..len)
                .map(|_| vocabulary[next(vocabulary.len())])
                .collect();
            lines.push(words.join(if next(4) == 0 { "\t " } else { " " }));
        }
        for line in &lines {
            let Some(statement) = fast_line(line) else {
                continue;
            };
            let pairs = LineParser::parse(Rule::line, line)
                .unwrap_or_else(|e| panic!("fast path read `{line}`, pest refused it: {e}"));
            let from_pest: Vec<_> = pairs
                .flat_map(|line| line.into_inner())
                .filter(|part| rule_is_statement(part.as_rule()))
                .map(|part| shape(&Stmt::from_pest(part)))
                .collect();
            let from_fast: Vec<_> = statement.iter().map(shape).collect();
            assert_eq!(from_fast, from_pest, "`{line}`");
        }
    }
}
