//! `nono policy compile`.
//!
//! Privilege: none, and no kernel calls: the target kernel is what the flags say, so the same
//! input gives byte-identical output on every machine (fleet admins sign that output).

use std::io::Write;
use std::path::PathBuf;

use nono_policy::artifact::CompiledPolicy;
use nono_policy::backend::Target;

use crate::exit::{CmdResult, Exit};
use crate::profiles::Profiles;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For human review: every rule, its source, the kernel mechanism, and warnings.
    Text,
    /// The compiled artifact: versioned, self-describing, with a SHA-256 digest.
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Compile a profile and show what each rule becomes in the kernel.
    #[command(after_help = "Examples:
  nono policy compile claude-code
  nono policy compile ./team.nono --target-abi 4
  nono policy compile claude-code --format json -o claude-code.policy.json
  nono policy compile default --kernel-layer")]
    Compile {
        /// Profile name or file (.nono, .json, .yaml).
        profile: String,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        /// Write to FILE instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The Landlock ABI of the target kernel (0 = no Landlock).
        #[arg(long, value_name = "N", default_value_t = Target::LATEST_ABI, value_parser = clap::value_parser!(u8).range(0..=(Target::LATEST_ABI as i64)))]
        target_abi: u8,
        /// Assume nono's eBPF kernel layer is available (nono runs as root on a BPF-LSM kernel).
        #[arg(long)]
        kernel_layer: bool,
    },
}

pub fn main(cmd: PolicyCommand) -> CmdResult {
    let PolicyCommand::Compile {
        profile,
        format,
        output,
        target_abi,
        kernel_layer,
    } = cmd;
    let profiles = Profiles::from_env();
    let policy = crate::cli::profile::compile(&profiles, &profile)?;
    let compiled = CompiledPolicy::from_policy(
        policy,
        Target {
            landlock_abi: target_abi,
            kernel_layer,
        },
    );
    let text = match format {
        OutputFormat::Text => nono_policy::report::render_text(&compiled),
        OutputFormat::Json => compiled.to_json_pretty(),
    };
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .map_err(|e| Exit::failure(format!("error: cannot write output: {e}")))?;
        }
        Some(path) => {
            // Write then rename: an artifact is either complete or absent.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &text)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    Exit::failure(format!("error: cannot write `{}`: {e}", path.display()))
                })?;
            eprintln!("wrote {} ({})", path.display(), compiled.digest);
        }
    }
    Ok(0)
}
