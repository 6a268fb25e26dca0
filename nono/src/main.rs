//! The `nono` command line.
//!
//! Exit codes (also in README "Exit codes"):
//! - `0`   success; for `nono run`, the command's own status is passed through;
//! - `1`   a command failed (an invalid profile for `validate`, a policy error for `compile`...);
//! - `2`   usage error (bad flags or arguments);
//! - `125` `nono run` did not start the command: the policy is invalid, a rule cannot be
//!   enforced on this kernel (fail closed), or sandbox set-up failed;
//! - `126` the command was found but could not be executed;
//! - `127` the command was not found;
//! - `128+N` the command was killed by signal N.

#[cfg(target_os = "linux")]
pub mod audit;
mod cli;
#[cfg(target_os = "linux")]
mod egress;
mod exit;
#[cfg(target_os = "linux")]
pub mod kernel;
mod layers;
mod profiles;
mod rollback;
mod run;

use clap::{Parser, Subcommand};

use crate::exit::Exit;

const EXAMPLES: &str = "\
Examples:
  nono run --profile claude-code --allow ~/projects/app -- claude
  nono run --allow . --allow-domain registry.npmjs.org -- npm install
  nono policy compile claude-code
  nono profile list
  nono profile init my-agent --extends default
  nono audit list --violations-only
  nono run --rollback --allow ~/projects/app -- claude; nono rollback list

Exit codes: 0 ok (run: the command's status), 1 failure, 2 usage,
125 nono run refused or failed to start, 126 not executable, 127 not found,
128+N killed by signal N.";

#[derive(Debug, Parser)]
#[command(name = "nono", version = layers::VERSION, about = "Confine AI coding agents inside kernel-enforced boundaries", after_help = EXAMPLES)]
pub struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command inside the sandbox.
    Run(run::RunArgs),
    /// Explain whether the policy allows an access, and which rule decides.
    Why(run::WhyArgs),
    /// Compile policies and inspect what the kernel will enforce.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// List, show, create and check profiles.
    #[command(subcommand)]
    Profile(cli::profile::ProfileCommand),
    /// Review what sandboxed sessions did: list, show, verify, export, prune.
    #[cfg(target_os = "linux")]
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// List, inspect and undo the file changes of `nono run --rollback` sessions.
    #[command(subcommand, after_help = rollback::cli::EXAMPLES)]
    Rollback(rollback::cli::RollbackCommand),
    /// Load the kernel layer, sweep stale sandboxes, print its state.
    #[cfg(target_os = "linux")]
    #[command(hide = true)]
    KernelStatus,
    /// Run a command with a no-op LSM program attached (overhead benchmark baseline).
    #[cfg(target_os = "linux")]
    #[command(hide = true)]
    KernelBenchNoop(kernel::cli::KernelBenchNoopArgs),
    /// Switch the file hooks' directory verdict cache on or off (overhead benchmark).
    #[cfg(target_os = "linux")]
    #[command(hide = true)]
    KernelCache(kernel::cli::KernelCacheArgs),
    /// Serve nono's egress resolver and/or proxy in the foreground (tests, benchmarks).
    #[cfg(target_os = "linux")]
    #[command(hide = true)]
    EgressServe(egress::cli::EgressServeArgs),
}

/// A parser that knows only `nono run`, the command every agent start goes through. clap
/// builds its whole command tree (every subcommand, every flag, every help text) before it
/// parses; for `run` alone that is a third of the work (about 20 µs against 60 µs warm, and
/// its code and data are faulted in on every start).
#[derive(Debug, Parser)]
#[command(name = "nono")]
struct RunOnlyCli {
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: RunOnlyCommand,
}

#[derive(Debug, Subcommand)]
enum RunOnlyCommand {
    Run(run::RunArgs),
}

impl From<RunOnlyCli> for Cli {
    fn from(run: RunOnlyCli) -> Cli {
        let RunOnlyCommand::Run(args) = run.command;
        Cli {
            verbose: run.verbose,
            command: Command::Run(args),
        }
    }
}

/// Parse the command line. When the subcommand is `run` (the first argument that is not a
/// flag; the only flags before a subcommand are `-v`, `--help` and `--version`, none taking a
/// value), [`RunOnlyCli`] parses it; anything it does not accept, `--help` included, is parsed
/// again by the full [`Cli`], so help, errors and their exit codes are exactly the full
/// parser's.
fn parse_args<I, T>(args: I) -> Cli
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let subcommand = args
        .iter()
        .skip(1)
        .find(|a| !a.as_encoded_bytes().starts_with(b"-"));
    if subcommand.is_some_and(|s| s == "run") {
        if let Ok(run) = RunOnlyCli::try_parse_from(&args) {
            return run.into();
        }
    }
    Cli::parse_from(args)
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::filter::LevelFilter;
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time();
    // RUST_LOG's directives need EnvFilter; without them a level is all there is to filter,
    // and every `nono run` skips parsing directives on its start-up path.
    match std::env::var_os("RUST_LOG") {
        Some(_) => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.to_string()));
            fmt.with_env_filter(filter).init()
        }
        None => fmt.with_max_level(level).init(),
    }
}

fn main() {
    let cli = parse_args(std::env::args_os());
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Why(args) => run::why(args),
        Command::Policy(cmd) => cli::policy::main(cmd),
        Command::Profile(cmd) => cli::profile::main(cmd),
        Command::Rollback(cmd) => rollback::cli::main(cmd),
        #[cfg(target_os = "linux")]
        Command::Audit(cmd) => cli::audit::main(cmd),
        #[cfg(target_os = "linux")]
        Command::KernelStatus => kernel::cli::kernel_status(),
        #[cfg(target_os = "linux")]
        Command::KernelBenchNoop(args) => kernel::cli::kernel_bench_noop(args),
        #[cfg(target_os = "linux")]
        Command::KernelCache(args) => kernel::cli::kernel_cache(args),
        #[cfg(target_os = "linux")]
        Command::EgressServe(args) => egress::cli::egress_serve(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(Exit { code, message }) => {
            if let Some(m) = message {
                eprintln!("{m}");
            }
            code
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run-only parser gives what the full one gives, for every way of writing `run`.
    #[test]
    fn run_only_parser_agrees_with_the_full_one() {
        let lines: &[&[&str]] = &[
            &["nono", "run", "--", "/bin/true"],
            &[
                "nono",
                "-v",
                "run",
                "--profile",
                "claude-code",
                "--allow",
                "/tmp/x",
                "--",
                "claude",
            ],
            &[
                "nono",
                "run",
                "-vv",
                "--allow-domain",
                "a.test",
                "--rollback",
                "--",
                "sh",
                "-c",
                "x",
            ],
            &[
                "nono",
                "--verbose",
                "run",
                "--rollback=optional",
                "--read",
                "a",
                "--write",
                "b",
                "--",
                "c",
            ],
            &[
                "nono",
                "run",
                "-p",
                "./p.nono",
                "--block-net",
                "--best-effort",
                "--dry-run",
                "--",
                "c",
                "--",
                "d",
            ],
            &[
                "nono",
                "run",
                "--workdir",
                "w",
                "--strict-domains",
                "--allow-resolved",
                "10.0.0.0/8",
                "--",
                "c",
            ],
        ];
        for line in lines {
            let fast: Cli = RunOnlyCli::try_parse_from(*line).unwrap().into();
            let full = Cli::try_parse_from(*line).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line:?}");
            assert_eq!(
                format!("{:?}", parse_args(*line)),
                format!("{full:?}"),
                "{line:?}"
            );
        }
        // What the run-only parser refuses, the full one decides (and reports) itself.
        for line in [
            &["nono", "run"][..],
            &["nono", "run", "--help"],
            &["nono", "run", "--no-such-flag", "--", "x"],
        ] {
            assert!(RunOnlyCli::try_parse_from(line).is_err(), "{line:?}");
        }
    }
}
