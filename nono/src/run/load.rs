//! From `--profile` and the flags to a compiled [`Policy`]: the flags are a "command line"
//! layer that extends the chosen profile (see [`super::layer`]), compiled by the resolver.

use std::path::Path;

use nono_policy::ir::Policy;
use nono_policy::source::{ProfileSource, SourceFile};

use super::layer::{self, Flags};
use crate::profiles::Profiles;

/// A profile source that also serves the root profile under its own source name, so a profile
/// given as a file path can be extended by the command-line layer like a named one.
struct WithRoot<'a> {
    root: SourceFile,
    inner: &'a Profiles,
}

impl ProfileSource for WithRoot<'_> {
    fn profile(&self, name: &str) -> Option<SourceFile> {
        if name == self.root.name {
            return Some(self.root.clone());
        }
        self.inner.profile(name)
    }
    fn group(&self, name: &str) -> Option<SourceFile> {
        self.inner.group(name)
    }
    fn profile_names(&self) -> Vec<String> {
        self.inner.profile_names()
    }
    fn group_names(&self) -> Vec<String> {
        self.inner.group_names()
    }
}

/// Compile the profile with the flags layered on top. Errors are ready to print.
pub fn compile(flags: &Flags, cwd: &Path) -> Result<Policy, String> {
    let profiles = Profiles::from_env();
    let root = profiles.lookup_root(&flags.profile)?;
    let layered = Flags {
        profile: root.name.clone(),
        ..flags.clone()
    };
    let doc = layer::layer(&layered, cwd).map_err(|e| format!("error: {e}"))?;
    let source = WithRoot {
        root,
        inner: &profiles,
    };
    nono_policy::resolve::compile_doc(doc, layer::SOURCE_NAME, &source)
        .map_err(|e| e.to_string().trim_end().to_string())
}
