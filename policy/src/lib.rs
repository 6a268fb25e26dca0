//! nono's policy compiler.
//!
//! Pure code: no kernel calls, no file system access beyond what a [`loader`] is handed. Three
//! front-ends (the nono policy language, JSON, YAML) produce one [`doc::ProfileDoc`];
//! [`resolve`] merges `extends` and groups and validates into the [`ir::Policy`]; the
//! [`backend`]s turn that into a Landlock plan, an eBPF map plan and a macOS Seatbelt profile,
//! all carried by the [`artifact::CompiledPolicy`].

pub mod backend;
pub mod diag;
pub mod doc;
pub mod ir;
pub mod net;
pub mod path;

pub use diag::{Diagnostic, Loc, PolicyError};
pub use ir::Policy;
pub mod builtin;
pub mod export;
pub mod lang;
pub mod load;
pub mod resolve;
pub mod source;
