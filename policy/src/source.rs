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
