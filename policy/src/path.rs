//! Policy paths: an optional variable root, normalised components, and a scope.
//!
//! Normalisation rules (documented in README "Paths"):
//! - A path starts with `/`, a variable (`$HOME`, `${HOME}`, `$WORKDIR`, `$TMPDIR`, `$XDG_*`),
//!   or `~/` (shorthand for `$HOME/`). `~user` is rejected: nono never reads another user's home.
//! - Repeated and trailing slashes and `.` components are removed. `..` is rejected outright: a
//!   reviewer must see the path that is enforced, and `$HOME/../x` would escape its variable.
//! - A trailing `/**` makes the rule cover the whole subtree; without it the rule names exactly
//!   that file or directory (for a directory Landlock still applies it to the content, see the
//!   Landlock back-end). No other glob is accepted.
//! - Empty paths, NUL bytes and unknown variables are rejected.
//!
//! Paths are not looked up when a policy is compiled: compilation is pure, and a compiled
//! policy runs on other machines. At run time a grant whose path does not exist is skipped (and
//! reported), a deny on a missing path still holds, and symlinks in a rule's path are resolved so
//! the rule binds to the object the path names on that machine.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Variables a path may start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathVar {
    Home,
    Workdir,
    Tmpdir,
    XdgConfigHome,
    XdgDataHome,
    XdgStateHome,
    XdgCacheHome,
    XdgRuntimeDir,
}

impl PathVar {
    pub const ALL: [PathVar; 8] = [
        PathVar::Home,
        PathVar::Workdir,
        PathVar::Tmpdir,
        PathVar::XdgConfigHome,
        PathVar::XdgDataHome,
        PathVar::XdgStateHome,
        PathVar::XdgCacheHome,
        PathVar::XdgRuntimeDir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PathVar::Home => "HOME",
            PathVar::Workdir => "WORKDIR",
            PathVar::Tmpdir => "TMPDIR",
            PathVar::XdgConfigHome => "XDG_CONFIG_HOME",
            PathVar::XdgDataHome => "XDG_DATA_HOME",
            PathVar::XdgStateHome => "XDG_STATE_HOME",
            PathVar::XdgCacheHome => "XDG_CACHE_HOME",
            PathVar::XdgRuntimeDir => "XDG_RUNTIME_DIR",
        }
    }

    pub fn from_name(name: &str) -> Option<PathVar> {
        PathVar::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The XDG default relative to `$HOME`, used when the variable is unset.
    pub fn home_default(self) -> Option<&'static str> {
        match self {
            PathVar::XdgConfigHome => Some(".config"),
            PathVar::XdgDataHome => Some(".local/share"),
            PathVar::XdgStateHome => Some(".local/state"),
            PathVar::XdgCacheHome => Some(".cache"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Exactly the named file or directory.
    Exact,
    /// The named directory and everything below it (`/**`).
    Subtree,
}

/// A validated, normalised policy path. Its text form is canonical: `$HOME/.ssh/**`.
///
/// Immutable once parsed, and cheap to clone: the path is held as its one canonical text,
/// shared (the back-ends copy paths into every plan entry, and the artifact serialises them),
/// so parsing allocates once and displaying, serialising or keying by text allocates nothing.
/// Components are slices of that text. Equality and hashing are by value (the canonical text
/// determines root, components and scope, and is determined by them); ordering is by root,
/// then components, then scope, as if the components were compared as a list.
#[derive(Clone)]
pub struct PolicyPath {
    root: Option<PathVar>,
    scope: Scope,
    /// Where the components start and end in `text`: `text[rest.0..rest.1]` is every component
    /// with a leading `/` each (`/.ssh` in `$HOME/.ssh/**`), empty for `/` or a bare variable.
    rest: (u32, u32),
    /// How many components.
    depth: u32,
    text: Arc<str>,
}

impl PartialEq for PolicyPath {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || self.text == other.text
    }
}

impl Eq for PolicyPath {}

impl std::hash::Hash for PolicyPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for PolicyPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PolicyPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.root
            .cmp(&other.root)
            .then_with(|| compare_components(self.rest(), other.rest()))
            .then_with(|| self.scope.cmp(&other.scope))
    }
}

/// Order two component texts (`/a/b`) as their component lists would be ordered: byte order,
/// except that a separator sorts before any other byte, since it ends the component (`/a/b`
/// before `/a-b`, because `a` is a prefix of `a-b`). Components never hold a NUL or a `/`.
pub(crate) fn compare_components(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let common = a.iter().zip(b).position(|(x, y)| x != y);
    match common {
        Some(i) => {
            let key = |c: u8| if c == b'/' { 0 } else { c };
            key(a[i]).cmp(&key(b[i]))
        }
        None => a.len().cmp(&b.len()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("relative path `{0}`: paths must start with `/`, `~/` or a variable such as `$HOME` or `$WORKDIR`")]
    Relative(String),
    #[error("`~{0}` names another user's home directory; only `~/` (your own $HOME) is allowed")]
    OtherUserHome(String),
    #[error("unknown variable `${0}`{1}")]
    UnknownVar(String, String),
    #[error("`..` is not allowed in policy paths (`{0}`): write the path it leads to")]
    DotDot(String),
    #[error("unsupported glob in `{0}`: only a trailing `/**` (the whole subtree) is allowed")]
    Glob(String),
}

/// A text buffer on the stack for the short texts that are nearly all paths, spilling to the
/// heap past its size, so that making a path's canonical text allocates only the shared copy.
struct TextBuf {
    stack: [u8; 256],
    len: usize,
    heap: Option<String>,
}

impl TextBuf {
    fn new() -> Self {
        TextBuf {
            stack: [0; 256],
            len: 0,
            heap: None,
        }
    }
    fn push_str(&mut self, s: &str) {
        if let Some(heap) = &mut self.heap {
            heap.push_str(s);
            return;
        }
        let end = self.len + s.len();
        if end <= self.stack.len() {
            self.stack[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
        } else {
            let mut heap = String::with_capacity(end * 2);
            heap.push_str(self.as_str());
            heap.push_str(s);
            self.heap = Some(heap);
        }
    }
    fn len(&self) -> usize {
        self.heap.as_ref().map_or(self.len, String::len)
    }
    fn as_str(&self) -> &str {
        match &self.heap {
            Some(heap) => heap,
            // Only whole `&str`s are copied in, so this is valid UTF-8.
            None => std::str::from_utf8(&self.stack[..self.len]).expect("whole str pieces"),
        }
    }
}

impl PolicyPath {
    /// Parse and normalise the text form of a policy path.
    pub fn parse(text: &str) -> Result<PolicyPath, PathError> {
        match PolicyPath::parse_canonical(text) {
            Some(path) => Ok(path),
            None => PolicyPath::parse_normalising(text),
        }
    }

    /// A text already in canonical form, read in one pass over its bytes and shared as it is;
    /// `None` for anything else (`~`, `${..}`, empty or `.` components, a trailing slash, any
    /// glob character, a NUL, errors), which [`Self::parse_normalising`] reads.
    ///
    /// Profiles nearly always write paths this way, and every path the compiler writes out
    /// (artifacts, exports) is canonical, so this is what runs once per rule. Whenever it
    /// answers, it answers exactly what the normalising reader would: the
    /// `canonical_reader_agrees_with_the_normalising_one` test holds the two together.
    fn parse_canonical(text: &str) -> Option<PolicyPath> {
        let bytes = text.as_bytes();
        let (root, rest_start) = match bytes.first()? {
            b'/' => (None, 0),
            b'$' => {
                let end = bytes.iter().position(|&b| b == b'/').unwrap_or(bytes.len());
                (Some(PathVar::from_name(&text[1..end])?), end)
            }
            _ => return None,
        };
        // `/` alone: its canonical text is not `/` followed by components.
        if root.is_none() && bytes.len() == 1 {
            return None;
        }
        let mut depth = 0u32;
        let mut scope = Scope::Exact;
        let mut rest_end = bytes.len();
        // Each step is at a `/` and reads the component after it.
        let mut at = rest_start;
        while at < bytes.len() {
            let start = at + 1;
            let mut end = start;
            // Whether the component holds a byte that may make it other than a plain name:
            // `.` and `..`, a glob, a NUL. Most components have none, and are read in this
            // one pass.
            let mut unusual = false;
            while end < bytes.len() && bytes[end] != b'/' {
                unusual |= matches!(bytes[end], b'.' | b'*' | b'?' | b'[' | b']' | b'\0');
                end += 1;
            }
            let component = &bytes[start..end];
            if component.is_empty() {
                return None;
            }
            at = end;
            if unusual {
                match component {
                    b"." | b".." => return None,
                    b"**" if end == bytes.len() => {
                        scope = Scope::Subtree;
                        rest_end = start - 1;
                        continue;
                    }
                    // What the normalising reader refuses as a glob, and a NUL: its errors.
                    _ if component.iter().any(|b| matches!(b, b'*' | b'?' | b'\0'))
                        || (component.contains(&b'[') && component.contains(&b']')) =>
                    {
                        return None
                    }
                    _ => {}
                }
            }
            depth += 1;
        }
        Some(PolicyPath::from_parts(
            root,
            scope,
            (rest_start, rest_end),
            depth,
            text,
        ))
    }

    /// [`Self::parse`] for any text: checks it and writes its canonical form.
    fn parse_normalising(text: &str) -> Result<PolicyPath, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.contains('\0') {
            return Err(PathError::Nul);
        }
        let (root, rest) = if let Some(rest) = text.strip_prefix('$') {
            let (name, rest) = if let Some(braced) = rest.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| PathError::UnknownVar(braced.to_string(), String::new()))?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = rest.find('/').unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            let var = PathVar::from_name(name).ok_or_else(|| {
                let hint = crate::diag::did_you_mean(name, PathVar::ALL.iter().map(|v| v.name()))
                    .map(|s| format!(" (did you mean `${s}`?)"))
                    .unwrap_or_else(|| {
                        format!(
                            " (known: {})",
                            PathVar::ALL
                                .iter()
                                .map(|v| format!("${}", v.name()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                PathError::UnknownVar(name.to_string(), hint)
            })?;
            if !rest.is_empty() && !rest.starts_with('/') {
                return Err(PathError::UnknownVar(
                    format!("{name}{rest}"),
                    String::new(),
                ));
            }
            (Some(var), rest)
        } else if let Some(rest) = text.strip_prefix('~') {
            if !(rest.is_empty() || rest.starts_with('/')) {
                let user = rest.split('/').next().unwrap_or_default();
                return Err(PathError::OtherUserHome(user.to_string()));
            }
            (Some(PathVar::Home), rest)
        } else if text.starts_with('/') {
            (None, text)
        } else {
            return Err(PathError::Relative(text.to_string()));
        };

        // The canonical text is written as the components are checked.
        let mut buf = TextBuf::new();
        if let Some(v) = root {
            buf.push_str("$");
            buf.push_str(v.name());
        }
        let rest_start = buf.len();
        let mut depth = 0u32;
        let mut scope = Scope::Exact;
        // Components are split by a byte scan (this runs once per rule, and `/` is ASCII);
        // empty and `.` components are dropped.
        // `/` is ASCII, so slicing at its byte offsets keeps whole characters.
        let mut parts = ByteSplit(rest)
            .filter(|c| !c.is_empty() && *c != ".")
            .peekable();
        while let Some(part) = parts.next() {
            if part == ".." {
                return Err(PathError::DotDot(text.to_string()));
            }
            if part == "**" && parts.peek().is_none() {
                scope = Scope::Subtree;
                continue;
            }
            let has = |c: u8| part.as_bytes().contains(&c);
            if has(b'*') || has(b'?') || (has(b'[') && has(b']')) {
                return Err(PathError::Glob(text.to_string()));
            }
            buf.push_str("/");
            buf.push_str(part);
            depth += 1;
        }
        let rest_end = buf.len();
        match scope {
            Scope::Exact if root.is_none() && depth == 0 => buf.push_str("/"),
            Scope::Exact => {}
            Scope::Subtree => buf.push_str("/**"),
        }
        Ok(PolicyPath::from_parts(
            root,
            scope,
            (rest_start, rest_end),
            depth,
            buf.as_str(),
        ))
    }

    fn from_parts(
        root: Option<PathVar>,
        scope: Scope,
        rest: (usize, usize),
        depth: u32,
        text: &str,
    ) -> PolicyPath {
        // Paths come from profile lines, themselves bounded well below 4 GiB (see
        // `resolve`'s limits), so the offsets fit.
        let offset = |n: usize| u32::try_from(n).expect("path text under 4 GiB");
        PolicyPath {
            root,
            scope,
            rest: (offset(rest.0), offset(rest.1)),
            depth,
            text: Arc::from(text),
        }
    }

    pub fn root(&self) -> Option<PathVar> {
        self.root
    }

    /// The components, in order (`.ssh` for `$HOME/.ssh/**`).
    pub fn components(&self) -> Components<'_> {
        Components {
            rest: self.rest(),
            len: self.depth as usize,
        }
    }

    /// How many components.
    pub fn depth(&self) -> usize {
        self.depth as usize
    }

    /// Every component with a leading `/` each (`/.ssh` for `$HOME/.ssh/**`), empty for `/`
    /// and for a bare variable.
    pub fn rest(&self) -> &str {
        &self.text[self.rest.0 as usize..self.rest.1 as usize]
    }

    /// The first component, if any.
    pub fn first_component(&self) -> Option<&str> {
        self.components().next()
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub fn with_scope(&self, scope: Scope) -> PolicyPath {
        if scope == self.scope {
            return self.clone();
        }
        let mut buf = TextBuf::new();
        buf.push_str(self.base());
        if scope == Scope::Subtree {
            buf.push_str(if self.root.is_none() && self.depth == 0 {
                "**"
            } else {
                "/**"
            });
        }
        PolicyPath::from_parts(
            self.root,
            scope,
            (self.rest.0 as usize, self.rest.1 as usize),
            self.depth,
            buf.as_str(),
        )
    }

    /// The path without its scope suffix: `$HOME/.ssh`, `/`.
    fn base(&self) -> &str {
        match self.scope {
            Scope::Exact => &self.text,
            Scope::Subtree => &self.text[..self.text.len() - 3 + usize::from(self.is_slash())],
        }
    }

    /// `/` or `/**`.
    fn is_slash(&self) -> bool {
        self.root.is_none() && self.depth == 0
    }

    /// The path without its scope suffix: `$HOME/.ssh`.
    pub fn base_text(&self) -> String {
        self.base().to_string()
    }

    /// The text form (what `to_string()` gives), as a `&str`: for sort keys and map keys.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text form, shared: cloning it copies no text.
    pub fn shared_text(&self) -> Arc<str> {
        self.text.clone()
    }

    /// The text form as an owned `String` (what `to_string()` gives).
    pub fn text(&self) -> String {
        self.text.to_string()
    }

    /// Is `self` the same object as, or below, `other` when `other` covers a subtree? Compares
    /// symbolically: both must share a root. Used to find denies inside grants.
    pub fn is_within(&self, other: &PolicyPath) -> bool {
        if self.root != other.root || self.depth < other.depth {
            return false;
        }
        let (inner, outer) = (self.rest(), other.rest());
        // Whole components: `/usr/libx` is not within `/usr/lib`.
        let Some(tail) = inner.strip_prefix(outer) else {
            return false;
        };
        if !(tail.is_empty() || tail.starts_with('/')) {
            return false;
        }
        self.depth == other.depth || other.scope == Scope::Subtree
    }

    /// Would granting write here hand over `/` or `$HOME` as a whole?
    pub fn is_broad(&self) -> bool {
        self.depth == 0 && matches!(self.root, None | Some(PathVar::Home))
    }

    /// The same path with its variable replaced by its value for one run. The value must be
    /// absolute UTF-8; the result has no variable root.
    pub fn expanded(&self, vars: &PathVars) -> Result<PolicyPath, String> {
        let Some(var) = self.root else {
            return Ok(self.clone());
        };
        let base = vars
            .get(var)
            .ok_or_else(|| format!("${} is not set", var.name()))?;
        let text = base
            .to_str()
            .ok_or_else(|| format!("${} is not valid UTF-8: {}", var.name(), base.display()))?;
        let p = PolicyPath::parse(text).map_err(|e| format!("${} = `{text}`: {e}", var.name()))?;
        if p.root.is_some() {
            return Err(format!(
                "${} must be an absolute path, not `{text}`",
                var.name()
            ));
        }
        let mut buf = TextBuf::new();
        buf.push_str(p.rest());
        buf.push_str(self.rest());
        let rest_end = buf.len();
        match self.scope {
            Scope::Exact if rest_end == 0 => buf.push_str("/"),
            Scope::Exact => {}
            Scope::Subtree => buf.push_str("/**"),
        }
        Ok(PolicyPath::from_parts(
            None,
            self.scope,
            (0, rest_end),
            p.depth + self.depth,
            buf.as_str(),
        ))
    }

    /// Expand variables against the values of one run.
    pub fn expand(&self, vars: &PathVars) -> Result<PathBuf, String> {
        let mut p = match self.root {
            None => PathBuf::from("/"),
            Some(v) => vars
                .get(v)
                .ok_or_else(|| format!("${} is not set", v.name()))?,
        };
        for c in self.components() {
            p.push(c);
        }
        Ok(p)
    }
}

/// The non-empty pieces of `str::split('/')` in order, by a plain byte scan, which beats a
/// searcher set up per path for the short runs between separators. (It may yield fewer empty
/// pieces than `split`; its caller drops them all.)
struct ByteSplit<'a>(&'a str);

impl<'a> Iterator for ByteSplit<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let text = self.0;
        if text.is_empty() {
            return None;
        }
        match text.bytes().position(|b| b == b'/') {
            Some(end) => {
                self.0 = &text[end + 1..];
                Some(&text[..end])
            }
            None => {
                self.0 = "";
                Some(text)
            }
        }
    }
}

/// The components of a [`PolicyPath`], borrowed from its text.
#[derive(Clone)]
pub struct Components<'a> {
    /// What is left: each component with its leading `/`.
    rest: &'a str,
    len: usize,
}

impl<'a> Iterator for Components<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // Components are short: a plain byte scan beats a searcher set up per call.
        let body = &self.rest[1..];
        let end = body.bytes().position(|b| b == b'/').unwrap_or(body.len());
        let (component, rest) = body.split_at(end);
        self.rest = rest;
        Some(component)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl ExactSizeIterator for Components<'_> {}

impl fmt::Display for PolicyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PolicyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyPath({self})")
    }
}

impl Serialize for PolicyPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for PolicyPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PolicyPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The values of path variables for one run. Unset XDG variables fall back to their defaults
/// under `$HOME`; an unset `$TMPDIR` falls back to `/tmp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathVars {
    values: std::collections::BTreeMap<PathVar, PathBuf>,
}

impl PathVars {
    pub fn new() -> PathVars {
        PathVars::default()
    }

    pub fn set(&mut self, var: PathVar, value: impl Into<PathBuf>) -> &mut Self {
        self.values.insert(var, value.into());
        self
    }

    pub fn get(&self, var: PathVar) -> Option<PathBuf> {
        if let Some(v) = self.values.get(&var) {
            return Some(v.clone());
        }
        match var {
            PathVar::Tmpdir => Some(PathBuf::from("/tmp")),
            _ => {
                let rel = var.home_default()?;
                Some(self.values.get(&PathVar::Home)?.join(rel))
            }
        }
    }

    /// Build from a process environment (`$HOME`, `$TMPDIR`, `$XDG_*`) plus the working
    /// directory. Only absolute values are taken, as the XDG spec says.
    pub fn from_env(get: impl Fn(&str) -> Option<String>, workdir: &Path) -> PathVars {
        let mut vars = PathVars::new();
        vars.set(PathVar::Workdir, workdir);
        for v in PathVar::ALL {
            if v == PathVar::Workdir {
                continue;
            }
            if let Some(val) = get(v.name()).filter(|s| s.starts_with('/')) {
                vars.set(v, val);
            }
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PolicyPath {
        PolicyPath::parse(s).unwrap()
    }

    /// Texts built from the pieces paths are made of, canonical or not, valid or not.
    fn generated_path_texts(count: usize) -> Vec<String> {
        const PIECES: &[&str] = &[
            "/",
            "/",
            "/",
            "a",
            "bc",
            ".ssh",
            ".",
            "..",
            "**",
            "*",
            "?",
            "[",
            "]",
            "\0",
            "$HOME",
            "$WORKDIR",
            "$XDG_CONFIG_HOME",
            "$HOMEX",
            "${HOME}",
            "~",
            "~root",
            "$",
            "{",
            "}",
            "é",
            " ",
            "\n",
        ];
        // xorshift64: a fixed sequence, so a failure reproduces.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 9) as usize;
                (0..len)
                    .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    fn parts(p: &PolicyPath) -> (Option<PathVar>, Scope, (u32, u32), u32, &str) {
        (p.root, p.scope, p.rest, p.depth, p.as_str())
    }

    #[test]
    fn canonical_reader_agrees_with_the_normalising_one() {
        let mut texts = generated_path_texts(200_000);
        texts.extend(
            [
                "/", "/**", "$HOME", "$HOME/**", "/a/**/b", "/a/**/**", "/a/b/", "$HOME//x",
            ]
            .map(String::from),
        );
        let mut read_canonically = 0;
        for text in &texts {
            let normalised = PolicyPath::parse_normalising(text);
            if let Some(fast) = PolicyPath::parse_canonical(text) {
                read_canonically += 1;
                let normalised = normalised
                    .unwrap_or_else(|e| panic!("`{text}`: read canonically, but refused: {e}"));
                assert_eq!(parts(&fast), parts(&normalised), "`{text}`");
            } else if let Ok(path) = normalised {
                // Declining is only allowed for texts that are not already canonical.
                assert!(
                    path.as_str() != text || text == "/",
                    "`{text}` is canonical but was not read as such"
                );
            }
        }
        // Both branches above ran many times: the generator makes canonical texts too.
        assert!(
            read_canonically > 1_000,
            "{read_canonically} read canonically"
        );
    }

    #[test]
    fn normalises() {
        assert_eq!(p("/usr//lib/./x/").to_string(), "/usr/lib/x");
        assert_eq!(p("~/.ssh/**").to_string(), "$HOME/.ssh/**");
        assert_eq!(p("${HOME}/x").to_string(), "$HOME/x");
        assert_eq!(p("~").to_string(), "$HOME");
        assert_eq!(p("/").to_string(), "/");
        assert_eq!(p("/**").to_string(), "/**");
        assert_eq!(p("$WORKDIR/**").scope(), Scope::Subtree);
    }

    #[test]
    fn rejects() {
        assert_eq!(PolicyPath::parse(""), Err(PathError::Empty));
        assert_eq!(PolicyPath::parse("/a\0b"), Err(PathError::Nul));
        assert!(matches!(
            PolicyPath::parse("etc/passwd"),
            Err(PathError::Relative(_))
        ));
        assert!(matches!(
            PolicyPath::parse("./x"),
            Err(PathError::Relative(_))
        ));
        assert!(
            matches!(PolicyPath::parse("~root/.ssh"), Err(PathError::OtherUserHome(u)) if u == "root")
        );
        assert!(matches!(
            PolicyPath::parse("$HOME/../etc"),
            Err(PathError::DotDot(_))
        ));
        assert!(matches!(
            PolicyPath::parse("/a/*.txt"),
            Err(PathError::Glob(_))
        ));
        assert!(matches!(
            PolicyPath::parse("/a/**/b"),
            Err(PathError::Glob(_))
        ));
        let e = PolicyPath::parse("$HOEM/x").unwrap_err().to_string();
        assert!(e.contains("did you mean `$HOME`"), "{e}");
        assert!(matches!(
            PolicyPath::parse("$HOMEX"),
            Err(PathError::UnknownVar(..))
        ));
    }

    #[test]
    fn long_paths_display_and_serialise_whole() {
        let long = format!("$HOME/{}/x/**", "d".repeat(300));
        let path = p(&long);
        assert_eq!(path.to_string(), long);
        assert_eq!(path.text(), long);
        assert_eq!(serde_json::to_string(&path).unwrap(), format!("\"{long}\""));
        let short = p("/a\"b/**");
        assert_eq!(serde_json::to_string(&short).unwrap(), r#""/a\"b/**""#);
    }

    /// The shape paths had before they were one shared text: a root, a list of component
    /// strings and a scope, with derived ordering. Every comparison, containment answer and
    /// text must be the same in both shapes, because rule ids follow the order of paths.
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct OldShape {
        root: Option<PathVar>,
        components: Vec<String>,
        scope: Scope,
    }

    impl OldShape {
        fn of(p: &PolicyPath) -> OldShape {
            OldShape {
                root: p.root(),
                components: p.components().map(str::to_string).collect(),
                scope: p.scope(),
            }
        }
        fn is_within(&self, other: &OldShape) -> bool {
            self.root == other.root
                && self.components.starts_with(&other.components)
                && (self.components.len() == other.components.len()
                    || other.scope == Scope::Subtree)
        }
        fn text(&self) -> String {
            let mut s = match self.root {
                Some(v) => format!("${}", v.name()),
                None if self.components.is_empty() => "/".into(),
                None => String::new(),
            };
            for c in &self.components {
                s.push('/');
                s.push_str(c);
            }
            match self.scope {
                Scope::Exact => s,
                Scope::Subtree if s == "/" => "/**".into(),
                Scope::Subtree => s + "/**",
            }
        }
    }

    /// Every path of up to three components from an alphabet chosen to sit on either side of
    /// `/` in byte order (`-`, `.`, `!`, space, control and non-ASCII characters), under every
    /// root kind and scope.
    fn tricky_paths() -> Vec<PolicyPath> {
        let alphabet = [
            "a", "a-b", "ab", "a.b", "b", "!", " x", "\u{1}", "é", "a~", "A",
        ];
        let mut lists: Vec<Vec<&str>> = vec![vec![]];
        for depth in 1..=3 {
            let prev: Vec<Vec<&str>> = lists
                .iter()
                .filter(|l| l.len() == depth - 1)
                .cloned()
                .collect();
            for l in prev {
                for c in alphabet {
                    let mut n = l.clone();
                    n.push(c);
                    lists.push(n);
                }
            }
        }
        let mut out = Vec::new();
        for root in ["", "$HOME", "$XDG_CONFIG_HOME", "$WORKDIR"] {
            for l in &lists {
                let body: String = l.iter().map(|c| format!("/{c}")).collect();
                for suffix in ["", "/**"] {
                    let text = match (root, body.as_str(), suffix) {
                        ("", "", "") => "/".to_string(),
                        _ => format!("{root}{body}{suffix}"),
                    };
                    out.push(p(&text));
                }
            }
        }
        out
    }

    #[test]
    fn one_text_behaves_as_the_component_list_did() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        let hash = |p: &PolicyPath| {
            let mut h = DefaultHasher::new();
            p.hash(&mut h);
            h.finish()
        };
        let paths = tricky_paths();
        assert!(paths.len() > 10_000, "{}", paths.len());
        let old: Vec<OldShape> = paths.iter().map(OldShape::of).collect();
        for (path, shape) in paths.iter().zip(&old) {
            assert_eq!(path.as_str(), shape.text());
            assert_eq!(path.to_string(), shape.text());
            assert_eq!(path.depth(), shape.components.len());
            assert_eq!(p(path.as_str()), *path, "re-parsing {path} changes it");
            assert_eq!(
                path.with_scope(Scope::Subtree).as_str(),
                OldShape {
                    scope: Scope::Subtree,
                    ..OldShape::of(path)
                }
                .text()
            );
            assert_eq!(
                path.with_scope(Scope::Exact).as_str(),
                OldShape {
                    scope: Scope::Exact,
                    ..OldShape::of(path)
                }
                .text()
            );
        }
        // Pairs: a stride through the list keeps this quadratic test fast while still
        // pairing every kind of path with every other.
        for (i, a) in paths.iter().enumerate() {
            for (j, b) in paths.iter().enumerate().skip(i % 23).step_by(23) {
                assert_eq!(a.cmp(b), old[i].cmp(&old[j]), "{a} vs {b}");
                assert_eq!(a == b, old[i] == old[j], "{a} vs {b}");
                if a == b {
                    assert_eq!(hash(a), hash(b));
                }
                assert_eq!(a.is_within(b), old[i].is_within(&old[j]), "{a} within {b}");
            }
        }
    }

    #[test]
    fn expanded_paths_are_what_parsing_the_expansion_gives() {
        let mut vars = PathVars::new();
        vars.set(PathVar::Home, "/home/a b");
        vars.set(PathVar::Workdir, "/");
        for path in tricky_paths().iter().step_by(13) {
            let Ok(expanded) = path.expanded(&vars) else {
                continue;
            };
            let text = path.expand(&vars).unwrap();
            let mut want = text.to_str().unwrap().to_string();
            if path.scope() == Scope::Subtree {
                want = if want == "/" {
                    "/**".into()
                } else {
                    want + "/**"
                };
            }
            assert_eq!(expanded, p(&want), "{path}");
            assert_eq!(expanded.as_str(), want, "{path}");
            assert_eq!(expanded.root(), None);
        }
    }

    #[test]
    fn containment() {
        assert!(p("$HOME/.ssh/**").is_within(&p("$HOME/**")));
        assert!(p("$HOME/.ssh").is_within(&p("$HOME/**")));
        assert!(!p("$HOME/.ssh").is_within(&p("$HOME")));
        assert!(p("$HOME").is_within(&p("$HOME")));
        assert!(!p("/home/x").is_within(&p("$HOME/**")));
        assert!(!p("/usr/libx").is_within(&p("/usr/lib/**")));
        assert!(p("/etc/x").is_within(&p("/**")));
    }

    #[test]
    fn expands_with_xdg_defaults() {
        let mut vars = PathVars::new();
        vars.set(PathVar::Home, "/home/a");
        assert_eq!(
            p("$XDG_CONFIG_HOME/nono").expand(&vars).unwrap(),
            PathBuf::from("/home/a/.config/nono")
        );
        assert_eq!(
            p("$TMPDIR/x").expand(&vars).unwrap(),
            PathBuf::from("/tmp/x")
        );
        assert!(p("$WORKDIR/x").expand(&vars).is_err());
        let env = PathVars::from_env(
            |k| (k == "XDG_CACHE_HOME").then(|| "relative".to_string()),
            Path::new("/w"),
        );
        assert_eq!(env.get(PathVar::XdgCacheHome), None);
    }
}
