//! The policy, profile and audit commands, and output helpers they share.
#[cfg(target_os = "linux")]
pub mod audit;
pub mod policy;
pub mod profile;

/// Make text from untrusted sources (file names, profile strings) safe to print on a terminal:
/// control characters, including ANSI escape sequences and newlines, are shown escaped.
pub fn escape_for_terminal(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// [`escape_for_terminal`] for raw bytes that need not be UTF-8 (file names, argv): invalid
/// bytes are shown as `\xNN`, control characters (newlines, ANSI escapes) and the Unicode
/// bidirectional overrides that can make text display in another order are escaped, and `\`
/// itself is doubled, so every output maps back to exactly one input.
pub fn escape_bytes_for_terminal(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_bytes_for_terminal as esc;

    #[test]
    fn hostile_names_are_escaped_unambiguously() {
        assert_eq!(esc(b"plain name.txt"), "plain name.txt");
        assert_eq!(esc(b"a\nb"), "a\\nb");
        assert_eq!(esc(b"\x1b[31mred\x1b[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(esc(b"bad\xff\xfe"), "bad\\xff\\xfe");
        // A literal backslash-n is not confused with an escaped newline.
        assert_eq!(esc(b"a\\nb"), "a\\\\nb");
        assert_eq!(esc("x\u{202e}gpj.exe".as_bytes()), "x\\u{202e}gpj.exe");
        assert_eq!(esc("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }
}
