//! The policy and profile commands.
pub mod policy;
pub mod profile;
