//! The nono policy language front-end (pest).

use crate::diag::PolicyError;
use crate::doc::ProfileDoc;

/// Parse a profile written in the policy language into a document, with every value located.
pub fn parse(_source_name: &str, _text: &str) -> Result<ProfileDoc, PolicyError> {
    todo!("policy language front-end")
}
