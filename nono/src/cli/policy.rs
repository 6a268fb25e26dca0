//! `nono policy ...`
use crate::exit::{CmdResult, Exit};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Compile a profile and show what each rule becomes in the kernel.
    Compile { profile: String },
}

pub fn main(_cmd: PolicyCommand) -> CmdResult {
    Err(Exit::failure("not implemented yet"))
}
