//! Where profile texts come from. The compiler reads no files itself: callers hand it a
//! [`ProfileSource`] (the CLI's looks in the user's profile directory; [`Builtins`] serves the
//! profiles embedded from `profiles/`).

/// The three front-ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// nono's policy language (`.nono`).
    Lang,
    Json,
    Yaml,
}

impl Format {
    /// The format a file name implies: `.nono`, `.json`, `.yaml`/`.yml`.
    pub fn from_file_name(name: &str) -> Option<Format> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "nono" => Some(Format::Lang),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// One profile or group text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Shown in diagnostics and provenance: `builtin:NAME` or the path as the user gave it.
    pub name: String,
    pub text: String,
    pub format: Format,
}

/// Where `extends` and `use` look names up.
pub trait ProfileSource {
    fn profile(&self, name: &str) -> Option<SourceFile>;
    fn group(&self, name: &str) -> Option<SourceFile>;
    /// Every profile name this source knows, for "did you mean" and `profile list`.
    fn profile_names(&self) -> Vec<String>;
    fn group_names(&self) -> Vec<String>;
}

/// Profiles and groups held in memory, by name. Used by tests and by callers that assemble
/// sources themselves.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub profiles: std::collections::BTreeMap<String, SourceFile>,
    pub groups: std::collections::BTreeMap<String, SourceFile>,
}

impl MemorySource {
    pub fn with_profile(mut self, name: &str, file: SourceFile) -> Self {
        self.profiles.insert(name.to_string(), file);
        self
    }
    pub fn with_group(mut self, name: &str, file: SourceFile) -> Self {
        self.groups.insert(name.to_string(), file);
        self
    }
}

impl ProfileSource for MemorySource {
    fn profile(&self, name: &str) -> Option<SourceFile> {
        self.profiles.get(name).cloned()
    }
    fn group(&self, name: &str) -> Option<SourceFile> {
        self.groups.get(name).cloned()
    }
    fn profile_names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }
    fn group_names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }
}

/// Chain two sources: names are looked up in `first`, then `second`.
pub struct Layered<'a>(pub &'a dyn ProfileSource, pub &'a dyn ProfileSource);

impl ProfileSource for Layered<'_> {
    fn profile(&self, name: &str) -> Option<SourceFile> {
        self.0.profile(name).or_else(|| self.1.profile(name))
    }
    fn group(&self, name: &str) -> Option<SourceFile> {
        self.0.group(name).or_else(|| self.1.group(name))
    }
    fn profile_names(&self) -> Vec<String> {
        let mut v = self.0.profile_names();
        v.extend(self.1.profile_names());
        v.sort();
        v.dedup();
        v
    }
    fn group_names(&self) -> Vec<String> {
        let mut v = self.0.group_names();
        v.extend(self.1.group_names());
        v.sort();
        v.dedup();
        v
    }
}
