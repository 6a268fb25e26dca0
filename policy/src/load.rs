//! Loading: any front-end's text to a [`ProfileDoc`], then resolution to the IR.

use crate::diag::PolicyError;
use crate::doc::ProfileDoc;
use crate::source::SourceFile;

/// Parse a JSON profile, locating every rule.
pub fn parse_json(_source_name: &str, _text: &str) -> Result<ProfileDoc, PolicyError> {
    todo!()
}

/// Parse a YAML profile, locating every rule.
pub fn parse_yaml(_source_name: &str, _text: &str) -> Result<ProfileDoc, PolicyError> {
    todo!()
}

/// Parse a source in whichever front-end its format names.
pub fn parse(file: &SourceFile) -> Result<ProfileDoc, PolicyError> {
    match file.format {
        crate::source::Format::Lang => crate::lang::parse(&file.name, &file.text),
        crate::source::Format::Json => parse_json(&file.name, &file.text),
        crate::source::Format::Yaml => parse_yaml(&file.name, &file.text),
    }
}
