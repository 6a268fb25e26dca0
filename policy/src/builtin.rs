//! The built-in profiles and groups, embedded from `profiles/` at build time.

use crate::source::{ProfileSource, SourceFile};

include!(concat!(env!("OUT_DIR"), "/builtin_list.rs"));

/// The profiles and groups that ship inside nono. Their source names are `builtin:NAME` and
/// `builtin:groups/NAME`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtins;

impl ProfileSource for Builtins {
    fn profile(&self, name: &str) -> Option<SourceFile> {
        PROFILES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(n, format, text)| SourceFile {
                name: format!("builtin:{n}"),
                text: text.to_string(),
                format: *format,
            })
    }
    fn group(&self, name: &str) -> Option<SourceFile> {
        GROUPS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(n, format, text)| SourceFile {
                name: format!("builtin:groups/{n}"),
                text: text.to_string(),
                format: *format,
            })
    }
    fn profile_names(&self) -> Vec<String> {
        PROFILES.iter().map(|(n, _, _)| n.to_string()).collect()
    }
    fn group_names(&self) -> Vec<String> {
        GROUPS.iter().map(|(n, _, _)| n.to_string()).collect()
    }
}
