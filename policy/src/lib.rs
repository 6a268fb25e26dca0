//! nono's policy compiler.
//!
//! Pure code: no kernel calls, and no file system access beyond the texts a
//! [`source::ProfileSource`] hands it. Three front-ends (the nono policy language, JSON, YAML)
//! produce one [`doc::ProfileDoc`]; [`resolve`] merges `extends` and groups and validates into
//! the [`ir::Policy`]; the [`backend`]s turn that into a Landlock plan, an eBPF map plan and a
//! macOS Seatbelt profile, all carried by the compiled artifact.

pub mod artifact;
pub mod backend;
pub mod builtin;
pub mod diag;
pub mod doc;
pub mod export;
pub mod ir;
pub mod lang;
pub mod load;
pub mod net;
pub mod path;
pub mod report;
pub mod resolve;
pub mod source;

pub use diag::{Diagnostic, Loc, PolicyError};
pub use ir::Policy;
