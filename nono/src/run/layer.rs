//! `nono run` flags as a profile layer: the flags become a [`ProfileDoc`] named "command line"
//! that extends the chosen profile, so they go through the same resolver, validation and
//! provenance as any profile rule (an error in `--allow` points at the flag).
//!
//! Pure apart from resolving the flags' paths: `--allow`, `--read` and `--write` name paths on
//! this machine, so they are made absolute against the current directory and their symlinks
//! resolved now (the grant binds to the object the user named). A missing path is an error with
//! a hint: granting something that does not exist is almost always a typo, and Landlock could
//! not grant it anyway.

use std::path::{Path, PathBuf};

use nono_policy::diag::Loc;
use nono_policy::doc::{DomainEntry, Located, ProfileDoc};

/// The source name of the layer, shown in provenance and errors.
pub const SOURCE_NAME: &str = "command line";

/// What the flags ask for, before any path is looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub profile: String,
    pub allow: Vec<PathBuf>,
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub allow_domain: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("--{flag} {}: no such file or directory\n  hint: create it first (`mkdir -p {}`), or grant its parent directory", .path.display(), .path.display())]
    Missing { flag: &'static str, path: PathBuf },
    #[error("--{flag} {}: {reason}", .path.display())]
    Unusable {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// The policy text for one path flag: `/abs/dir/**` for a directory (the flag grants the
/// subtree), `/abs/file` for anything else.
pub fn grant_text(flag: &'static str, path: &Path, cwd: &Path) -> Result<String, LayerError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let canon = std::fs::canonicalize(&abs).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LayerError::Missing {
            flag,
            path: path.to_path_buf(),
        },
        _ => LayerError::Unusable {
            flag,
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let text = canon.to_str().ok_or_else(|| LayerError::Unusable {
        flag,
        path: path.to_path_buf(),
        reason: "the path is not valid UTF-8, which policies cannot name".into(),
    })?;
    Ok(if canon.is_dir() {
        if text == "/" {
            "/**".into()
        } else {
            format!("{text}/**")
        }
    } else {
        text.to_string()
    })
}

/// Build the "command line" layer. Each flag's location is line 1, column N for the N-th flag,
/// so provenance can tell two `--allow`s apart.
pub fn layer(flags: &Flags, cwd: &Path) -> Result<ProfileDoc, LayerError> {
    let mut doc = ProfileDoc {
        name: Some(SOURCE_NAME.into()),
        extends: vec![Located::bare(flags.profile.clone())],
        ..ProfileDoc::default()
    };
    let mut column = 0u32;
    let mut loc = || {
        column += 1;
        Some(Loc { line: 1, column })
    };
    for (flag, paths) in [
        ("allow", &flags.allow),
        ("read", &flags.read),
        ("write", &flags.write),
    ] {
        for p in paths {
            let text = grant_text(flag, p, cwd)?;
            let at = loc();
            let list = match flag {
                "allow" => &mut doc.filesystem.readwrite,
                "read" => &mut doc.filesystem.read,
                _ => &mut doc.filesystem.write,
            };
            list.push(Located::new(text, at));
        }
    }
    for d in &flags.allow_domain {
        doc.network
            .domains
            .push(Located::new(DomainEntry::Name(d.clone()), loc()));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[Located<String>]) -> Vec<String> {
        v.iter().map(|l| l.value.clone()).collect()
    }

    #[test]
    fn flags_become_a_layer_over_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("proj")).unwrap();
        std::fs::write(root.join("notes.txt"), "").unwrap();
        std::os::unix::fs::symlink(root.join("proj"), root.join("link")).unwrap();
        let flags = Flags {
            profile: "node-dev".into(),
            allow: vec!["proj".into(), "link".into()],
            read: vec![root.join("notes.txt")],
            write: vec![],
            allow_domain: vec!["registry.npmjs.org".into()],
        };
        let doc = layer(&flags, &root).unwrap();
        assert_eq!(doc.extends[0].value, "node-dev");
        let proj = format!("{}/proj/**", root.display());
        // The symlink binds to its target.
        assert_eq!(values(&doc.filesystem.readwrite), vec![proj.clone(), proj]);
        assert_eq!(
            values(&doc.filesystem.read),
            vec![format!("{}/notes.txt", root.display())]
        );
        assert_eq!(
            doc.filesystem.readwrite[1].loc,
            Some(Loc { line: 1, column: 2 })
        );
        assert_eq!(doc.network.domains[0].value.domain(), "registry.npmjs.org");
        assert_eq!(doc.network.domains[0].loc, Some(Loc { line: 1, column: 4 }));
    }

    #[test]
    fn missing_paths_are_errors_with_a_hint() {
        let flags = Flags {
            profile: "default".into(),
            allow: vec!["/nonexistent/nono/x".into()],
            ..Flags::default()
        };
        let e = layer(&flags, Path::new("/")).unwrap_err();
        assert!(matches!(e, LayerError::Missing { flag: "allow", .. }));
        assert!(e.to_string().contains("hint: create it first"), "{e}");
    }

    #[test]
    fn root_is_the_whole_tree() {
        assert_eq!(
            grant_text("read", Path::new("/"), Path::new("/")).unwrap(),
            "/**"
        );
    }
}
