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
/// Immutable once parsed, and cheap to clone: the components are shared (the back-ends copy
/// paths into every plan entry). Comparison and hashing are by value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyPath {
    root: Option<PathVar>,
    components: Arc<[String]>,
    scope: Scope,
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

impl PolicyPath {
    /// Parse and normalise the text form of a policy path.
    pub fn parse(text: &str) -> Result<PolicyPath, PathError> {
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

        let mut components: Vec<String> = Vec::with_capacity(rest.matches('/').count());
        let mut scope = Scope::Exact;
        let mut parts = rest
            .split('/')
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
            if part.contains('*')
                || part.contains('?')
                || (part.contains('[') && part.contains(']'))
            {
                return Err(PathError::Glob(text.to_string()));
            }
            components.push(part.to_string());
        }
        Ok(PolicyPath {
            root,
            components: components.into(),
            scope,
        })
    }

    pub fn root(&self) -> Option<PathVar> {
        self.root
    }
    pub fn components(&self) -> &[String] {
        &self.components
    }
    pub fn scope(&self) -> Scope {
        self.scope
    }
    pub fn with_scope(&self, scope: Scope) -> PolicyPath {
        PolicyPath {
            scope,
            ..self.clone()
        }
    }

    /// The path without its scope suffix: `$HOME/.ssh`.
    pub fn base_text(&self) -> String {
        let mut s = String::with_capacity(self.text_len());
        let _ = self.write_base(&mut s);
        s
    }

    /// The text form (what `to_string()` gives), built in one allocation of the right size.
    /// For sort keys and map keys in hot loops.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.text_len());
        let _ = self.write_text(&mut s);
        s
    }

    /// Call `f` with the text form, built on the stack when it is short (nearly always):
    /// serialising or displaying a path is then one write instead of one per component.
    pub(crate) fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        /// A fixed buffer that refuses what does not fit.
        struct Stack {
            buf: [u8; 256],
            len: usize,
        }
        impl fmt::Write for Stack {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let end = self.len + s.len();
                if end > self.buf.len() {
                    return Err(fmt::Error);
                }
                self.buf[self.len..end].copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
        }
        let mut stack = Stack {
            buf: [0; 256],
            len: 0,
        };
        if self.text_len() <= stack.buf.len() && self.write_text(&mut stack).is_ok() {
            // Only whole `&str`s were copied in, so this is valid UTF-8.
            if let Ok(text) = std::str::from_utf8(&stack.buf[..stack.len]) {
                return f(text);
            }
        }
        f(&self.text())
    }

    /// The text form, written piece by piece.
    fn write_text(&self, f: &mut impl fmt::Write) -> fmt::Result {
        self.write_base(f)?;
        match self.scope {
            Scope::Exact => Ok(()),
            Scope::Subtree if self.root.is_none() && self.components.is_empty() => {
                f.write_str("**")
            }
            Scope::Subtree => f.write_str("/**"),
        }
    }

    /// The length of the text form, to size buffers.
    fn text_len(&self) -> usize {
        self.root.map_or(0, |v| v.name().len() + 1)
            + self.components.iter().map(|c| c.len() + 1).sum::<usize>()
            + 3
    }

    fn write_base(&self, f: &mut impl fmt::Write) -> fmt::Result {
        if let Some(v) = self.root {
            f.write_char('$')?;
            f.write_str(v.name())?;
        } else if self.components.is_empty() {
            return f.write_char('/');
        }
        for c in self.components.iter() {
            f.write_char('/')?;
            f.write_str(c)?;
        }
        Ok(())
    }

    /// Is `self` the same object as, or below, `other` when `other` covers a subtree? Compares
    /// symbolically: both must share a root. Used to find denies inside grants.
    pub fn is_within(&self, other: &PolicyPath) -> bool {
        if self.root != other.root || self.components.len() < other.components.len() {
            return false;
        }
        if !self.components.starts_with(&other.components) {
            return false;
        }
        self.components.len() == other.components.len() || other.scope == Scope::Subtree
    }

    /// Would granting write here hand over `/` or `$HOME` as a whole?
    pub fn is_broad(&self) -> bool {
        self.components.is_empty() && matches!(self.root, None | Some(PathVar::Home))
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
        let mut p =
            PolicyPath::parse(text).map_err(|e| format!("${} = `{text}`: {e}", var.name()))?;
        if p.root.is_some() {
            return Err(format!(
                "${} must be an absolute path, not `{text}`",
                var.name()
            ));
        }
        p.components = p
            .components
            .iter()
            .chain(self.components.iter())
            .cloned()
            .collect();
        p.scope = self.scope;
        Ok(p)
    }

    /// Expand variables against the values of one run.
    pub fn expand(&self, vars: &PathVars) -> Result<PathBuf, String> {
        let mut p = match self.root {
            None => PathBuf::from("/"),
            Some(v) => vars
                .get(v)
                .ok_or_else(|| format!("${} is not set", v.name()))?,
        };
        for c in self.components.iter() {
            p.push(c);
        }
        Ok(p)
    }
}

impl fmt::Display for PolicyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|text| f.write_str(text))
    }
}

impl fmt::Debug for PolicyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyPath({self})")
    }
}

impl Serialize for PolicyPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_text(|text| s.serialize_str(text))
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
