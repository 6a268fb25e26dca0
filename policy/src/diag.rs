//! Diagnostics: every error a profile can cause, with `file:line:column` and a caret snippet.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

/// One source text, for turning byte offsets into locations and showing snippets.
#[derive(Debug, Clone)]
pub struct SourceText<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl<'a> SourceText<'a> {
    pub fn new(name: &'a str, text: &'a str) -> Self {
        SourceText { name, text }
    }

    pub fn loc_of(&self, offset: usize) -> Loc {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() as u32 + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() as u32 + 1;
        Loc { line, column }
    }

    pub fn line_text(&self, line: u32) -> Option<&'a str> {
        self.text.lines().nth(line.saturating_sub(1) as usize)
    }

    /// A diagnostic pointing at `loc`, with the offending line as its snippet.
    pub fn error(&self, loc: Option<Loc>, message: impl Into<String>) -> Diagnostic {
        let mut d = Diagnostic::new(self.name, loc, message);
        if let Some(l) = loc {
            d.snippet = self.line_text(l.line).map(|s| s.to_string());
        }
        d
    }
}

/// Unicode's Bidi_Control characters: they reorder the text displayed around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem in a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub message: String,
    /// The file (or `builtin:NAME`) the problem is in.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loc: Option<Loc>,
    /// The text of the offending line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// How many characters the caret underline covers (at least 1).
    #[serde(default = "one")]
    pub span: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub help: Vec<String>,
}

fn one() -> u32 {
    1
}

impl Diagnostic {
    pub fn new(source: &str, loc: Option<Loc>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            source: source.to_string(),
            loc,
            snippet: None,
            span: 1,
            help: Vec::new(),
        }
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help.push(help.into());
        self
    }
    pub fn with_span(mut self, span: usize) -> Diagnostic {
        self.span = span.max(1) as u32;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match self.loc {
            Some(l) => writeln!(f, "  --> {}:{}:{}", self.source, l.line, l.column)?,
            None => writeln!(f, "  --> {}", self.source)?,
        }
        if let (Some(l), Some(snippet)) = (self.loc, &self.snippet) {
            let num = l.line.to_string();
            let pad = " ".repeat(num.len());
            // Control characters in a snippet could drive the terminal, and bidirectional
            // overrides reorder what it shows; show them as `?`.
            let shown: String = snippet
                .chars()
                .map(|c| {
                    if (c.is_control() && c != '\t') || is_bidi_control(c) {
                        '?'
                    } else {
                        c
                    }
                })
                .collect();
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {shown}")?;
            let lead: String = shown
                .chars()
                .take(l.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {lead}{}", "^".repeat(self.span as usize))?;
        }
        for h in &self.help {
            writeln!(f, "  = help: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in one compile. Compilation is all-or-nothing: when this is returned,
/// no policy was produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyError {
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyError {
    pub fn one(d: Diagnostic) -> PolicyError {
        PolicyError {
            diagnostics: vec![d],
        }
    }
}

impl From<Diagnostic> for PolicyError {
    fn from(d: Diagnostic) -> Self {
        PolicyError::one(d)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// The closest candidate to a misspelt word, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    close_matches(word, candidates, 1).into_iter().next()
}

/// Up to `max` candidates close to `word`, best first.
pub fn close_matches<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, c)| {
            *score >= 0.8 || c.starts_with(word) || (word.len() >= 3 && c.contains(word))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(max)
        .map(|(_, c)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_characters() {
        let src = SourceText::new("f", "ab\nçd x\n");
        assert_eq!(src.loc_of(0), Loc { line: 1, column: 1 });
        assert_eq!(src.loc_of(3), Loc { line: 2, column: 1 });
        assert_eq!(src.loc_of(6), Loc { line: 2, column: 3 }); // after the 2-byte ç and d
    }

    #[test]
    fn renders_caret_snippet() {
        let src = SourceText::new("p.nono", "profile x\nreed /usr/**\n");
        let d = src
            .error(Some(Loc { line: 2, column: 1 }), "unknown statement `reed`")
            .with_span(4)
            .with_help("did you mean `read`?");
        let text = d.to_string();
        assert!(text.contains("--> p.nono:2:1"), "{text}");
        assert!(text.contains("2 | reed /usr/**"), "{text}");
        assert!(text.contains("  | ^^^^"), "{text}");
        assert!(text.contains("help: did you mean `read`?"), "{text}");
    }

    #[test]
    fn snippets_cannot_reorder_or_drive_the_terminal() {
        let src = SourceText::new("p.nono", "read /a\u{202E}b \u{1b}[2J\n");
        let text = src.error(Some(Loc { line: 1, column: 8 }), "x").to_string();
        assert!(text.contains("1 | read /a?b ?[2J"), "{text}");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("filesytem", ["filesystem", "network"]),
            Some("filesystem".into())
        );
        assert_eq!(did_you_mean("zzz", ["filesystem", "network"]), None);
        assert_eq!(
            close_matches("pyton-dev", ["python-dev", "node-dev", "go-dev"], 3)[0],
            "python-dev"
        );
    }
}
