//! Redacting secrets from a command line before it is stored.
//!
//! Privilege: none; pure computation.
//!
//! The rule (also in README "Audit trail"), applied to each argument:
//! 1. After an option whose name contains `token`, `password`, `passwd`, `secret`, `apikey`,
//!    `api-key`, `api_key`, `credential` or `auth` (`--token X`, `--db-password X`), the next
//!    argument is replaced by `[REDACTED]`; in the joined form (`--token=X`) the value is.
//! 2. `NAME=VALUE` where NAME (letters, digits, `_`, `-`, `.`) contains, in any case, `TOKEN`,
//!    `SECRET`, `PASSWORD`, `PASSWD`, `KEY`, `CREDENTIAL` or `AUTH` keeps NAME and loses VALUE
//!    (`GITHUB_TOKEN=[REDACTED]`).
//! 3. A URL with user information keeps the scheme and host and loses the user and password
//!    (`https://[REDACTED]@example.com/repo`), wherever it appears in an argument.
//! 4. A header argument `Authorization: ...` or `Proxy-Authorization: ...` keeps its name.
//!
//! Short options such as `-p` are not redacted: `-p` means a port (`ssh`), a parent directory
//! (`mkdir`) or a profile (`nono`) far more often than a password, and redacting it would
//! lose the record of what ran. Arguments that are not UTF-8 are stored with U+FFFD in place
//! of the invalid bytes. The rule is a best effort: a secret passed in a form it does not
//! know (a bare positional argument) is stored as typed.

use std::ffi::OsString;

pub const REDACTED: &str = "[REDACTED]";

const OPTION_WORDS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "apikey",
    "api-key",
    "api_key",
    "credential",
    "auth",
];
const NAME_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "CREDENTIAL",
    "AUTH",
];

fn secret_option(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    OPTION_WORDS.iter().any(|w| n.contains(w))
}

/// Redacts a whole command line.
pub fn argv(args: &[OsString]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        let a = a.to_string_lossy();
        if hide_next {
            hide_next = false;
            out.push(REDACTED.to_string());
            continue;
        }
        if let Some(opt) = a.strip_prefix("--") {
            match opt.split_once('=') {
                Some((name, _)) if secret_option(name) => {
                    out.push(format!("--{name}={REDACTED}"));
                    continue;
                }
                None if secret_option(opt) => {
                    hide_next = true;
                    out.push(a.into_owned());
                    continue;
                }
                _ => {}
            }
        }
        out.push(argument(&a));
    }
    out
}

/// Rules 2 to 4 on one argument.
pub fn argument(a: &str) -> String {
    let lower = a.to_ascii_lowercase();
    for header in ["authorization:", "proxy-authorization:"] {
        if lower.starts_with(header) {
            return format!("{} {REDACTED}", &a[..header.len()]);
        }
    }
    if let Some((name, _)) = a.split_once('=') {
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        let upper = name.to_ascii_uppercase();
        if is_name && NAME_WORDS.iter().any(|w| upper.contains(w)) {
            return format!("{name}={REDACTED}");
        }
    }
    url_userinfo(a)
}

/// Rule 3: `scheme://user:pass@host` becomes `scheme://[REDACTED]@host`.
fn url_userinfo(a: &str) -> String {
    let mut out = String::with_capacity(a.len());
    let mut rest = a;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or space; user info is what comes
        // before its last '@'.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(args: &[&str]) -> Vec<String> {
        argv(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn options_with_secret_names_lose_their_value() {
        assert_eq!(
            r(&["gh", "--token", "ghp_x", "--repo", "a/b"]),
            ["gh", "--token", REDACTED, "--repo", "a/b"]
        );
        assert_eq!(
            r(&["psql", "--db-password=hunter2", "--api-key", "k"]),
            ["psql", "--db-password=[REDACTED]", "--api-key", REDACTED]
        );
        // Short options are kept (see the module documentation).
        assert_eq!(r(&["mkdir", "-p", "dir"]), ["mkdir", "-p", "dir"]);
    }

    #[test]
    fn secret_assignments_urls_and_headers() {
        assert_eq!(
            r(&[
                "env",
                "GITHUB_TOKEN=abc",
                "AWS_SECRET_ACCESS_KEY=x",
                "PATH=/bin"
            ]),
            [
                "env",
                "GITHUB_TOKEN=[REDACTED]",
                "AWS_SECRET_ACCESS_KEY=[REDACTED]",
                "PATH=/bin"
            ]
        );
        assert_eq!(
            r(&["git", "clone", "https://user:pw@example.com/r.git"]),
            ["git", "clone", "https://[REDACTED]@example.com/r.git"]
        );
        assert_eq!(
            argument("see x=https://tok@h.example/p and ftp://h2/"),
            "see x=https://[REDACTED]@h.example/p and ftp://h2/"
        );
        assert_eq!(
            r(&["curl", "-H", "Authorization: Bearer abc"]),
            ["curl", "-H", "Authorization: [REDACTED]"]
        );
        // An '=' inside a value that is not a name is left alone.
        assert_eq!(argument("a b=token"), "a b=token");
    }

    #[test]
    fn non_utf8_arguments_are_kept_lossily() {
        use std::os::unix::ffi::OsStringExt;
        let a = argv(&[OsString::from_vec(b"f\xff".to_vec())]);
        assert_eq!(a, ["f\u{fffd}"]);
    }
}
