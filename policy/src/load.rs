//! Loading JSON and YAML profiles (the language front-end is [`crate::lang`]).
//!
//! Values come through serde into [`ProfileDoc`], so the JSON Schema and the loader can never
//! disagree. serde does not report where each value was written, so a second, read-only pass
//! over the same text with a position-aware YAML parser (saphyr; JSON is YAML) finds the
//! line and column of every rule and fills the [`Located`] fields. Errors from serde carry
//! their own location, and unknown keys get a "did you mean".

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::diag::{Diagnostic, Loc, PolicyError, SourceText};
use crate::doc::{Located, ProfileDoc};
use crate::source::{Format, SourceFile};

/// Profiles larger than this are refused before parsing, so that a hostile or accidental huge
/// file costs no more than reading it. The largest built-in profile is a few KiB.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// Refuse oversized input with a size error.
pub fn check_size(source_name: &str, text: &str) -> Result<(), PolicyError> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(PolicyError::one(
            Diagnostic::new(
                source_name,
                None,
                format!(
                    "profile is too large: {} bytes, the limit is {} bytes",
                    text.len(),
                    MAX_SOURCE_BYTES
                ),
            )
            .with_help("split the policy into profiles that extend each other, or use groups"),
        ));
    }
    Ok(())
}

/// Parse a JSON profile, locating every rule.
pub fn parse_json(source_name: &str, text: &str) -> Result<ProfileDoc, PolicyError> {
    check_size(source_name, text)?;
    let src = SourceText::new(source_name, text);
    let mut doc: ProfileDoc = serde_json::from_str(text).map_err(|e| {
        let loc = (e.line() > 0).then(|| Loc {
            line: e.line() as u32,
            column: e.column().max(1) as u32,
        });
        serde_diagnostic(&src, loc, &e.to_string())
    })?;
    locate(&src, &mut doc);
    Ok(doc)
}

/// Parse a YAML profile, locating every rule.
pub fn parse_yaml(source_name: &str, text: &str) -> Result<ProfileDoc, PolicyError> {
    check_size(source_name, text)?;
    let src = SourceText::new(source_name, text);
    if text.trim().is_empty() {
        return Ok(ProfileDoc::default());
    }
    let mut doc: ProfileDoc = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location().map(|l| Loc {
            line: l.line() as u32,
            column: l.column() as u32,
        });
        serde_diagnostic(&src, loc, &e.to_string())
    })?;
    locate(&src, &mut doc);
    Ok(doc)
}

/// Parse a source in whichever front-end its format names.
pub fn parse(file: &SourceFile) -> Result<ProfileDoc, PolicyError> {
    match file.format {
        Format::Lang => crate::lang::parse(&file.name, &file.text),
        Format::Json => parse_json(&file.name, &file.text),
        Format::Yaml => parse_yaml(&file.name, &file.text),
    }
}

/// Turn a serde error into a diagnostic: strip serde's own " at line X column Y" suffix (the
/// location is shown separately), point the caret at an unknown key, and suggest a close one.
fn serde_diagnostic(src: &SourceText, loc: Option<Loc>, raw: &str) -> PolicyError {
    let message = match raw.find(" at line ") {
        Some(i) => raw[..i].to_string(),
        None => raw.to_string(),
    };
    let message = message.trim_start_matches(['.', ':', ' ']).to_string();
    let mut loc = loc;
    let mut help = None;
    let mut span = 1;
    let unknown = message
        .find("unknown field `")
        .map(|i| &message[i + "unknown field `".len()..]);
    if let Some(rest) = unknown {
        if let Some((key, tail)) = rest.split_once('`') {
            let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            help = Some(
                match crate::diag::did_you_mean(key, expected.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of: {}", expected.join(", ")),
                },
            );
            span = key.chars().count() + 2;
            // serde reports the position after the key; move the caret back to its start.
            if let Some(l) = loc {
                if let Some(line) = src.line_text(l.line) {
                    let upto: String = line
                        .chars()
                        .take(l.column as usize + key.chars().count())
                        .collect();
                    if let Some(byte) = upto.rfind(key) {
                        let col = upto[..byte].chars().count() as u32;
                        let quoted = byte > 0 && matches!(upto.as_bytes()[byte - 1], b'"' | b'\'');
                        loc = Some(Loc {
                            line: l.line,
                            column: if quoted { col } else { col + 1 },
                        });
                        if !quoted {
                            span = key.chars().count();
                        }
                    }
                }
            }
        }
    }
    let mut d = src.error(loc, message).with_span(span);
    if let Some(h) = help {
        d = d.with_help(h);
    }
    PolicyError::one(d)
}

// ---------------------------------------------------------------------------------------------
// Locating values

/// Positions of every node, keyed by its path in the document: `filesystem.read.3`.
type Positions = HashMap<String, Loc>;

fn locate(src: &SourceText, doc: &mut ProfileDoc) {
    let Ok(docs) = MarkedYaml::load_from_str(src.text) else {
        return;
    };
    let Some(root) = docs.first() else { return };
    let mut positions = Positions::new();
    collect_positions(root, String::new(), &mut positions);
    apply_positions(doc, &positions);
}

fn key_text(node: &MarkedYaml) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}

fn collect_positions(node: &MarkedYaml, path: String, out: &mut Positions) {
    let start = node.span.start;
    out.insert(
        path.clone(),
        Loc {
            line: start.line() as u32,
            column: start.col() as u32 + 1,
        },
    );
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match &node.data {
        YamlData::Mapping(map) => {
            for (k, v) in map.iter() {
                if let Some(key) = key_text(k) {
                    collect_positions(v, join(&key), out);
                }
            }
        }
        YamlData::Sequence(seq) => {
            for (i, v) in seq.iter().enumerate() {
                collect_positions(v, join(&i.to_string()), out);
            }
        }
        _ => {}
    }
}

fn fill<T>(items: &mut [Located<T>], prefix: &str, positions: &Positions) {
    for (i, item) in items.iter_mut().enumerate() {
        item.loc = positions.get(&format!("{prefix}.{i}")).copied();
    }
}

fn apply_positions(doc: &mut ProfileDoc, pos: &Positions) {
    fill(&mut doc.extends, "extends", pos);
    fill(&mut doc.use_groups, "use", pos);
    for (name, group) in doc.groups.iter_mut() {
        let prefix = format!("groups.{name}");
        group.loc = pos.get(&prefix).copied();
        fill_rules(
            &mut group.filesystem,
            &mut group.exec,
            &mut group.network,
            &mut group.env,
            &prefix,
            pos,
        );
    }
    fill_rules(
        &mut doc.filesystem,
        &mut doc.exec,
        &mut doc.network,
        &mut doc.env,
        "",
        pos,
    );
    fill(&mut doc.ipc.unix_sockets, "ipc.unix_sockets", pos);
    fill(&mut doc.rollback.exclude, "rollback.exclude", pos);
}

fn fill_rules(
    fs: &mut crate::doc::FsDoc,
    exec: &mut crate::doc::ExecDoc,
    net: &mut crate::doc::NetDoc,
    env: &mut crate::doc::EnvDoc,
    prefix: &str,
    pos: &Positions,
) {
    let p = |s: &str| {
        if prefix.is_empty() {
            s.to_string()
        } else {
            format!("{prefix}.{s}")
        }
    };
    fill(&mut fs.read, &p("filesystem.read"), pos);
    fill(&mut fs.write, &p("filesystem.write"), pos);
    fill(&mut fs.readwrite, &p("filesystem.readwrite"), pos);
    fill(&mut fs.exec, &p("filesystem.exec"), pos);
    fill(&mut fs.deny, &p("filesystem.deny"), pos);
    fill(&mut fs.deny_read, &p("filesystem.deny_read"), pos);
    fill(&mut fs.deny_write, &p("filesystem.deny_write"), pos);
    fill(&mut fs.deny_exec, &p("filesystem.deny_exec"), pos);
    fill(&mut exec.deny, &p("exec.deny"), pos);
    if let Some(only) = exec.allow_only.as_mut() {
        fill(only, &p("exec.allow_only"), pos);
    }
    fill(&mut net.domains, &p("network.domains"), pos);
    fill(&mut net.cidrs, &p("network.cidrs"), pos);
    fill(&mut net.listen, &p("network.listen"), pos);
    fill(&mut env.pass, &p("env.pass"), pos);
    fill(&mut env.strip, &p("env.strip"), pos);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_located() {
        let text = "{\n  \"name\": \"x\",\n  \"filesystem\": {\n    \"read\": [\"/usr/**\",\n      \"/etc/hosts\"]\n  }\n}\n";
        let doc = parse_json("x.json", text).unwrap();
        assert_eq!(
            doc.filesystem.read[0].loc,
            Some(Loc {
                line: 4,
                column: 14
            })
        );
        assert_eq!(doc.filesystem.read[1].loc, Some(Loc { line: 5, column: 7 }));
    }

    #[test]
    fn yaml_values_are_located() {
        let text = "name: x\nnetwork:\n  domains:\n    - crates.io\n    - domain: '*.github.com'\n      ports: [443]\n";
        let doc = parse_yaml("x.yaml", text).unwrap();
        assert_eq!(doc.network.domains[0].loc, Some(Loc { line: 4, column: 7 }));
        assert_eq!(doc.network.domains[1].loc, Some(Loc { line: 5, column: 7 }));
    }

    #[test]
    fn unknown_json_key_points_at_key_with_suggestion() {
        let text = "{\n  \"filesytem\": {}\n}";
        let err = parse_json("p.json", text).unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!(d.loc, Some(Loc { line: 2, column: 3 }), "{err}");
        assert_eq!(d.help, vec!["did you mean `filesystem`?".to_string()]);
        assert!(
            d.message.starts_with("unknown field `filesytem`"),
            "{}",
            d.message
        );
        assert!(err.to_string().contains("2 |   \"filesytem\": {}"), "{err}");
    }

    #[test]
    fn unknown_yaml_key_suggests() {
        let err = parse_yaml("p.yaml", "network:\n  domain: [x.com]\n").unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!(d.loc.map(|l| l.line), Some(2), "{err}");
        assert_eq!(d.help, vec!["did you mean `domains`?".to_string()]);
    }

    #[test]
    fn syntax_errors_have_locations() {
        let err = parse_json("p.json", "{\n  \"name\": \"x\",,\n}").unwrap_err();
        assert_eq!(err.diagnostics[0].loc.map(|l| l.line), Some(2));
        let err = parse_yaml("p.yaml", "name: x\nfilesystem: [\n").unwrap_err();
        assert!(err.diagnostics[0].loc.is_some());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = format!("{{\"description\": \"{}\"}}", "x".repeat(MAX_SOURCE_BYTES));
        let err = parse_json("big.json", &big).unwrap_err();
        assert!(err.diagnostics[0].message.contains("too large"));
    }

    #[test]
    fn empty_yaml_is_an_empty_profile() {
        assert_eq!(parse_yaml("e.yaml", "").unwrap(), ProfileDoc::default());
    }
}
