//! File names as nono stores and prints them.
//!
//! Names come from the agent's tree, so they are hostile input: any bytes but `/` and NUL,
//! newlines, ANSI escape sequences, invalid UTF-8. Two encodings:
//! - [`encode`]/[`decode`]: lossless, for manifests and `--json`. Valid UTF-8 is kept as is;
//!   `%` and every byte of an invalid UTF-8 sequence are written `%XX`.
//! - [`shown`]: for terminals. Control characters (newlines, ESC...) are escaped like Rust
//!   strings (`\n`, `\u{1b}`), invalid bytes are shown `\xNN`, and backslashes are doubled, so
//!   two different names never print the same.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Lossless text form of a path's bytes.
pub fn encode(path: &Path) -> String {
    let mut out = String::new();
    let mut rest = path.as_os_str().as_bytes();
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_utf8(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // SAFETY-free: `good` was just validated by `from_utf8`.
                push_utf8(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str(&format!("%{b:02X}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn push_utf8(out: &mut String, s: &str) {
    for c in s.chars() {
        if c == '%' {
            out.push_str("%25");
        } else {
            out.push(c);
        }
    }
}

/// The inverse of [`encode`].
pub fn decode(text: &str) -> Result<PathBuf, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape in stored name `{}`", shown_str(text)))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err("stored name contains a NUL byte".into());
    }
    Ok(PathBuf::from(OsString::from_vec(out)))
}

/// A path, safe to print on a terminal (see the module doc).
pub fn shown(path: &Path) -> String {
    let mut out = String::new();
    let mut rest = path.as_os_str().as_bytes();
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(&shown_str(s));
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(&shown_str(std::str::from_utf8(good).unwrap_or_default()));
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

/// Text safe to print on a terminal: control characters escaped, backslashes doubled.
pub fn shown_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Unicode bidirectional overrides can make a name display as another ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// A line of file content for a diff: like [`shown_str`] but tabs are kept and backslashes are
/// left alone (content, unlike names, need not be unambiguous, only harmless).
pub fn shown_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\t' {
            out.push(c);
        } else if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Serde adapter: a `PathBuf` stored as its [`encode`]d text.
pub mod serde_path {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(p))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for `Option<PathBuf>`.
pub mod serde_opt_path {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(&encode(p)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| decode(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The bytes of a path, for building C strings.
pub fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: &[u8]) -> PathBuf {
        PathBuf::from(OsString::from_vec(b.to_vec()))
    }

    #[test]
    fn encoding_is_lossless_for_hostile_names() {
        for name in [
            &b"plain.txt"[..],
            b"100%.txt",
            b"%41",
            b"new\nline",
            b"\x1b[31mred\x1b[0m",
            b"bad\xff\xfeutf8",
            b"caf\xc3\xa9",
            b"trunc\xc3",
            b"dir/sub/\xe2\x80\xaeevil",
        ] {
            let path = p(name);
            let e = encode(&path);
            assert_eq!(decode(&e).unwrap(), path, "{e}");
        }
        assert_eq!(encode(&p(b"100%")), "100%25");
        assert_eq!(encode(&p(b"a\xffb")), "a%FFb");
        assert!(decode("%4").is_err());
        assert!(decode("%00").is_err());
    }

    #[test]
    fn shown_names_carry_no_terminal_controls() {
        let s = shown(&p(b"a\nb\x1b[2Jc\xffd\\e\xe2\x80\xaef"));
        assert_eq!(s, "a\\nb\\u{1b}[2Jc\\xffd\\\\e\\u{202e}f");
        assert!(!s.chars().any(|c| c.is_control()));
        // Two names that differ never print the same.
        assert_ne!(shown(&p(b"\\xff")), shown(&p(b"\xff")));
        assert_eq!(shown_line("\tx\x07"), "\tx\\u{7}");
    }
}

/// The names a snapshot skips (`rollback exclude`): exact names, and glob patterns (`*.log`,
/// `.env.*`, `[Bb]uild`) matched against one name at a time, never against a path (the
/// compiler refuses a `/` in them). Exact names are looked up in a set, so the common case of
/// a few build directories costs one hash per entry.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    exact: std::collections::HashSet<std::ffi::OsString>,
    patterns: Option<globset::GlobSet>,
}

/// Whether `name` uses glob syntax (else it is a literal name).
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?', '[', '{'])
}

impl Exclusions {
    /// From the policy's list. A pattern that does not parse was refused by the compiler;
    /// here it is skipped (with a warning) rather than taken literally.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Exclusions {
        let mut exact = std::collections::HashSet::new();
        let mut builder = globset::GlobSetBuilder::new();
        let mut any = false;
        for n in names {
            let n = n.as_ref();
            if !is_pattern(n) {
                exact.insert(std::ffi::OsString::from(n));
                continue;
            }
            match globset::GlobBuilder::new(n).literal_separator(true).build() {
                Ok(g) => {
                    builder.add(g);
                    any = true;
                }
                Err(e) => tracing::warn!("rollback: exclude pattern {n:?} ignored: {e}"),
            }
        }
        let patterns = any.then(|| builder.build().ok()).flatten();
        Exclusions { exact, patterns }
    }

    pub fn matches(&self, name: &std::ffi::OsStr) -> bool {
        self.exact.contains(name)
            || self
                .patterns
                .as_ref()
                .is_some_and(|p| p.is_match(std::path::Path::new(name)))
    }
}

#[cfg(test)]
mod exclusion_tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn names_and_patterns_match_one_name() {
        let e = Exclusions::new(&["target", "*.log", ".env.*", "[Bb]uild", "cache-?"]);
        for yes in [
            "target",
            "x.log",
            ".log",
            ".env.local",
            "Build",
            "build",
            "cache-1",
        ] {
            assert!(e.matches(OsStr::new(yes)), "{yes}");
        }
        for no in ["targets", "x.log.gz", ".env", "rebuild", "cache-12", "src"] {
            assert!(!e.matches(OsStr::new(no)), "{no}");
        }
        // Names need not be UTF-8.
        assert!(e.matches(OsStr::from_bytes(b"\xff.log")));
        assert!(!Exclusions::default().matches(OsStr::new("target")));
    }
}
