//! `nono run` and `nono why`.
//!
//! - [`command`]: the `run` flow (compile, check on this machine, refuse or confine, run);
//! - [`layer`] and [`load`]: the flags as a "command line" profile layer, compiled;
//! - [`concrete`]: the policy for this run (variables expanded, nono's state denied,
//!   deny-inside-grant on canonical paths);
//! - [`sandbox`]: the kernel side (Landlock, seccomp, fork/exec, supervision);
//! - [`kernel_layer`]: the eBPF kernel layer in a run (parts, plan coverage, cgroup, events);
//! - [`why`]: which rule decides an access.

mod command;
mod concrete;
#[cfg(target_os = "linux")]
mod kernel_layer;
mod layer;
mod load;
mod sandbox;
pub(crate) mod why;

use std::path::PathBuf;

use crate::exit::{CmdResult, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nono run --profile claude-code --allow ~/projects/app -- claude
  nono run --read /data --write ./out -- ./analyse.sh
  nono run --dry-run --profile node-dev -- npm test
  nono run --allow-domain api.example.com --dns-upstream 10.0.0.2:53 -- curl https://api.example.com
  nono run --allow-domain registry.internal --allow-resolved 10.0.0.0/8 -- npm install
  nono run --allow-domain api.github.com --strict-domains -- curl https://api.github.com
  nono run --rollback --allow ~/projects/app -- claude")]
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
    /// DNS server(s) nono forwards allowed names to (default: the nameservers of
    /// /etc/resolv.conf).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "NONO_DNS_UPSTREAM",
        value_delimiter = ','
    )]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Let allowed domains resolve to addresses in CIDR although it is a special range
    /// (loopback, private, link-local, CGNAT, ULA...). Allows no direct connection to CIDR.
    #[arg(long, value_name = "CIDR")]
    pub allow_resolved: Vec<String>,
    /// Domain rules through nono's proxy with a name check inside each tunnel: the TLS SNI (or
    /// HTTP Host) must be the allowed name, so another name on a shared (CDN) address is not
    /// reachable. As root the kernel lets the sandbox connect to the proxy only; the command
    /// gets HTTPS_PROXY/HTTP_PROXY/ALL_PROXY. A TLS ClientHello without SNI, or with Encrypted
    /// Client Hello, and anything neither TLS nor HTTP/1 is refused.
    #[arg(long)]
    pub strict_domains: bool,
    /// Snapshot what the command may write, so `nono rollback restore` can undo it
    /// (`--rollback=optional`: run without rollback if the tree exceeds the limits).
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "on")]
    pub rollback: Option<crate::rollback::Mode>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nono why --path ~/.ssh/id_rsa
  nono why --profile rust-dev --path ~/.cargo/bin/cargo --op exec
  nono why --profile claude-code --host api.anthropic.com --port 443 --json")]
pub struct WhyArgs {
    /// Profile name or file to explain.
    #[arg(long, short, default_value = "default")]
    pub profile: String,
    /// A file or directory to explain an access to.
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// The access: read, write or exec.
    #[arg(long, default_value = "read", value_name = "OP")]
    pub op: String,
    /// A host name or IP address to explain an outbound connection to.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The port of that connection (required with --host).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunArgs) -> CmdResult {
    command::run(args)
}

pub fn why(args: WhyArgs) -> CmdResult {
    let cwd = std::env::current_dir()
        .map_err(|e| Exit::failure(format!("nono: cannot read the current directory: {e}")))?;
    let flags = layer::Flags {
        profile: args.profile.clone(),
        ..layer::Flags::default()
    };
    let policy = load::compile(&flags, &cwd).map_err(Exit::failure)?;
    let vars = nono_policy::path::PathVars::from_env(|k| std::env::var(k).ok(), &cwd);
    let policy = concrete::expand(&policy, &vars)
        .map_err(|e| Exit::failure(format!("nono: cannot expand the policy's paths: {e}")))?;
    let decision = match (&args.path, &args.host) {
        (Some(path), None) => {
            let op = why::Op::parse(&args.op).ok_or_else(|| {
                Exit::usage(format!(
                    "nono why: unknown --op `{}` (read, write or exec)",
                    args.op
                ))
            })?;
            why::decide_path(&policy, &cwd.join(path), op)
        }
        (None, Some(host)) => {
            let port = args
                .port
                .ok_or_else(|| Exit::usage("nono why: --host needs --port"))?;
            why::decide_net(&policy, host, port)
        }
        _ => {
            return Err(Exit::usage(
                "nono why: give either --path P [--op read|write|exec] or --host H --port N",
            ))
        }
    };
    if args.json {
        let text = serde_json::to_string_pretty(&decision)
            .map_err(|e| Exit::failure(format!("nono why: {e}")))?;
        println!("{text}");
    } else {
        print!("{decision}");
    }
    Ok(0)
}
