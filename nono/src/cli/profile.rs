//! `nono profile ...`
use crate::exit::{CmdResult, Exit};

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// List built-in and user profiles.
    List,
}

pub fn main(_cmd: ProfileCommand) -> CmdResult {
    Err(Exit::failure("not implemented yet"))
}
