//! Where profiles come from on this machine: the user's profile directory, files named on the
//! command line, and the built-ins embedded in the binary.
//!
//! Privilege: none. Reads `$XDG_CONFIG_HOME/nono/profiles` (default `~/.config/nono/profiles`),
//! `…/nono/groups`, and files the user names; writes only through `profile init`.
//!
//! Lookup by name: a user profile with a built-in's name takes its place (so `default` can be
//! customised); `nono profile list` marks such shadowing.

use std::path::{Path, PathBuf};

use nono_policy::builtin::Builtins;
use nono_policy::load::MAX_SOURCE_BYTES;
use nono_policy::source::{Format, ProfileSource, SourceFile};

const EXTENSIONS: [&str; 4] = ["nono", "json", "yaml", "yml"];

/// The profile sources of this user.
#[derive(Debug, Clone)]
pub struct Profiles {
    config_dir: Option<PathBuf>,
}

/// One entry of `nono profile list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileEntry {
    pub name: String,
    /// `builtin` or the file's path.
    pub source: String,
    pub shadows_builtin: bool,
}

impl Profiles {
    pub fn from_env() -> Profiles {
        let config_dir = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|c| c.join("nono"));
        Profiles { config_dir }
    }

    /// `$XDG_CONFIG_HOME/nono/profiles`.
    pub fn user_profile_dir(&self) -> Option<PathBuf> {
        self.config_dir.as_ref().map(|d| d.join("profiles"))
    }

    fn user_group_dir(&self) -> Option<PathBuf> {
        self.config_dir.as_ref().map(|d| d.join("groups"))
    }

    fn find_in(dir: Option<PathBuf>, name: &str) -> Option<PathBuf> {
        if !valid_name(name) {
            return None;
        }
        let dir = dir?;
        EXTENSIONS
            .iter()
            .map(|ext| dir.join(format!("{name}.{ext}")))
            .find(|p| p.is_file())
    }

    fn names_in(dir: Option<PathBuf>) -> Vec<(String, PathBuf)> {
        let Some(dir) = dir else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let file = path.file_name()?.to_str()?.to_string();
                let (stem, ext) = file.rsplit_once('.')?;
                (EXTENSIONS.contains(&ext) && valid_name(stem) && path.is_file())
                    .then(|| (stem.to_string(), path))
            })
            .collect();
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// The profile `--profile` (or a command argument) names: a file path when the argument
    /// contains `/` or ends in a profile extension, otherwise a profile name.
    pub fn lookup_root(&self, name_or_path: &str) -> Result<SourceFile, String> {
        let looks_like_path =
            name_or_path.contains('/') || Format::from_file_name(name_or_path).is_some();
        if looks_like_path {
            return read_profile_file(Path::new(name_or_path));
        }
        self.profile(name_or_path).ok_or_else(|| {
            let names = self.profile_names();
            let close =
                nono_policy::diag::close_matches(name_or_path, names.iter().map(String::as_str), 3);
            let mut msg = format!("error: unknown profile `{name_or_path}`");
            if !close.is_empty() {
                msg.push_str(&format!(
                    "\n  = help: did you mean {}?",
                    close
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
            msg.push_str(&format!("\n  = available profiles: {}", names.join(", ")));
            msg
        })
    }

    pub fn list(&self) -> Vec<ProfileEntry> {
        let builtins = Builtins.profile_names();
        let user = Self::names_in(self.user_profile_dir());
        let mut out: Vec<ProfileEntry> = user
            .iter()
            .map(|(name, path)| ProfileEntry {
                name: name.clone(),
                source: path.display().to_string(),
                shadows_builtin: builtins.contains(name),
            })
            .collect();
        for name in builtins {
            if !user.iter().any(|(n, _)| *n == name) {
                out.push(ProfileEntry {
                    name,
                    source: "builtin".into(),
                    shadows_builtin: false,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

impl ProfileSource for Profiles {
    fn profile(&self, name: &str) -> Option<SourceFile> {
        match Self::find_in(self.user_profile_dir(), name) {
            Some(path) => read_profile_file(&path).ok(),
            None => Builtins.profile(name),
        }
    }
    fn group(&self, name: &str) -> Option<SourceFile> {
        match Self::find_in(self.user_group_dir(), name) {
            Some(path) => read_profile_file(&path).ok(),
            None => Builtins.group(name),
        }
    }
    fn profile_names(&self) -> Vec<String> {
        self.list().into_iter().map(|e| e.name).collect()
    }
    fn group_names(&self) -> Vec<String> {
        let mut v: Vec<String> = Self::names_in(self.user_group_dir())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        v.extend(Builtins.group_names());
        v.sort();
        v.dedup();
        v
    }
}

/// Profile names: lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && name.len() <= 64
}

/// Read a profile file, refusing oversized and non-UTF-8 input with a clear message.
pub fn read_profile_file(path: &Path) -> Result<SourceFile, String> {
    let shown = path.display().to_string();
    let format = Format::from_file_name(&shown).ok_or_else(|| {
        format!("error: cannot tell the format of `{shown}`\n  = help: profile files end in .nono, .json, .yaml or .yml")
    })?;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("error: cannot read profile `{shown}`: {e}"))?;
    if meta.len() > MAX_SOURCE_BYTES as u64 {
        return Err(format!(
            "error: profile `{shown}` is too large: {} bytes, the limit is {MAX_SOURCE_BYTES} bytes",
            meta.len()
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("error: cannot read profile `{shown}`: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let prefix = &e.as_bytes()[..at];
        let line = prefix.iter().filter(|b| **b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(
            &prefix[prefix
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(0)..],
        )
        .chars()
        .count()
            + 1;
        format!("error: profile is not valid UTF-8 (byte {at})\n  --> {shown}:{line}:{column}")
    })?;
    Ok(SourceFile {
        name: shown,
        text,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("claude-code") && valid_name("rust-dev") && valid_name("a.b_c"));
        assert!(
            !valid_name("../x") && !valid_name("") && !valid_name("Upper") && !valid_name("-x")
        );
    }

    #[test]
    fn invalid_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.json");
        std::fs::write(&p, b"{\n  \"name\": \"\xff\"}").unwrap();
        let e = read_profile_file(&p).unwrap_err();
        assert!(e.contains("not valid UTF-8") && e.contains(":2:12"), "{e}");
    }

    #[test]
    fn user_profiles_shadow_builtins_and_unknown_names_suggest() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = Profiles {
            config_dir: Some(dir.path().to_path_buf()),
        };
        std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
        std::fs::write(dir.path().join("profiles/mine.json"), "{}").unwrap();
        assert_eq!(profiles.profile("mine").unwrap().format, Format::Json);
        let e = profiles.lookup_root("mien").unwrap_err();
        assert!(e.contains("did you mean `mine`?"), "{e}");
    }
}
