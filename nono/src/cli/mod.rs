//! The policy and profile commands.
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
