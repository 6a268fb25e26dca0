//! `nono run` and `nono why`.

mod sandbox;

use std::path::PathBuf;

use crate::exit::{CmdResult, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nono run --profile claude-code --allow ~/projects/app -- claude
  nono run --read /data --write ./out -- ./analyse.sh
  nono run --dry-run --profile node-dev -- npm test")]
pub struct RunArgs {
    /// Profile name (built-in or in $XDG_CONFIG_HOME/nono/profiles) or a profile file.
    #[arg(long, short, default_value = "default")]
    pub profile: String,
    /// Grant read-write to PATH and everything below it.
    #[arg(long, value_name = "PATH")]
    pub allow: Vec<PathBuf>,
    /// Grant read to PATH and everything below it.
    #[arg(long, value_name = "PATH")]
    pub read: Vec<PathBuf>,
    /// Grant write to PATH and everything below it.
    #[arg(long, value_name = "PATH")]
    pub write: Vec<PathBuf>,
    /// Allow outbound connections to a domain (ports 80 and 443).
    #[arg(long, value_name = "DOMAIN")]
    pub allow_domain: Vec<String>,
    /// Block all network access, whatever the profile allows.
    #[arg(long)]
    pub block_net: bool,
    /// Working directory of the command ($WORKDIR); defaults to the current directory.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Run even if some rules cannot be enforced on this kernel, listing them.
    #[arg(long)]
    pub best_effort: bool,
    /// Print the compiled plan and the kernel features it uses, then exit.
    #[arg(long)]
    pub dry_run: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, clap::Args)]
pub struct WhyArgs {
    #[arg(long, short, default_value = "default")]
    pub profile: String,
    #[arg(long)]
    pub path: Option<PathBuf>,
    #[arg(long, default_value = "read")]
    pub op: String,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
}

pub fn run(_args: RunArgs) -> CmdResult {
    Err(Exit::new(
        crate::exit::RUN_REFUSED,
        "nono run: not implemented yet",
    ))
}

pub fn why(_args: WhyArgs) -> CmdResult {
    Err(Exit::failure("nono why: not implemented yet"))
}
