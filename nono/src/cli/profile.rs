//! `nono profile list|show|init|validate|diff|schema`.
//!
//! Privilege: none. Reads profiles; `init` writes one file under the user's profile directory.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use nono_policy::ir::Policy;
use nono_policy::resolve;

use crate::exit::{CmdResult, Exit, FAILURE};
use crate::profiles::{valid_name, Profiles};

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// List built-in profiles and the user's ($XDG_CONFIG_HOME/nono/profiles).
    #[command(
        after_help = "Examples:\n  nono profile list\n  nono profile list --json | jq -r '.[].name'"
    )]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a profile with every `extends` and `use` resolved.
    #[command(
        after_help = "Examples:\n  nono profile show claude-code\n  nono profile show ./my.yaml --json"
    )]
    Show {
        /// Profile name or file.
        profile: String,
        /// The resolved profile as JSON (a self-contained profile document).
        #[arg(long)]
        json: bool,
    },
    /// Write an editable JSON profile skeleton to $XDG_CONFIG_HOME/nono/profiles/NAME.json.
    #[command(
        after_help = "Examples:\n  nono profile init my-agent\n  nono profile init web --extends node-dev -o ./web.json"
    )]
    Init {
        name: String,
        /// The profile to build on.
        #[arg(long, default_value = "default")]
        extends: String,
        /// Write here instead of the user profile directory.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a profile; exit 0 when valid, 1 with diagnostics when not.
    #[command(
        after_help = "Examples:\n  nono profile validate ./team.nono\n  nono profile validate my-agent --json"
    )]
    Validate {
        profile: String,
        #[arg(long)]
        json: bool,
    },
    /// Compare two resolved profiles rule by rule; exit 0 when they are the same, 1 when not.
    #[command(after_help = "Examples:\n  nono profile diff default claude-code")]
    Diff { a: String, b: String },
    /// Print the JSON Schema of JSON/YAML profiles.
    Schema,
}

pub fn main(cmd: ProfileCommand) -> CmdResult {
    let profiles = Profiles::from_env();
    match cmd {
        ProfileCommand::List { json } => list(&profiles, json),
        ProfileCommand::Show { profile, json } => {
            let policy = compile(&profiles, &profile)?;
            if json {
                let doc = nono_policy::export::to_doc(&policy);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).map_err(|e| Exit::failure(e.to_string()))?
                );
            } else {
                print!("{}", nono_policy::export::to_lang(&policy));
            }
            Ok(0)
        }
        ProfileCommand::Init {
            name,
            extends,
            output,
            force,
        } => init(&profiles, &name, &extends, output, force),
        ProfileCommand::Validate { profile, json } => validate(&profiles, &profile, json),
        ProfileCommand::Diff { a, b } => diff(&profiles, &a, &b),
        ProfileCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&nono_policy::doc::json_schema())
                    .map_err(|e| Exit::failure(e.to_string()))?
            );
            Ok(0)
        }
    }
}

/// Compile a profile by name or path, turning every failure into a printed diagnostic.
pub fn compile(profiles: &Profiles, name_or_path: &str) -> Result<Policy, Exit> {
    let root = profiles.lookup_root(name_or_path).map_err(Exit::failure)?;
    resolve::compile(&root, profiles)
        .map_err(|e| Exit::failure(e.to_string().trim_end().to_string()))
}

fn list(profiles: &Profiles, json: bool) -> CmdResult {
    let mut entries = Vec::new();
    for e in profiles.list() {
        // A broken user profile still lists; its description says so.
        let description = match profiles
            .lookup_root(&e.name)
            .and_then(|root| resolve::compile(&root, profiles).map_err(|err| err.to_string()))
        {
            Ok(p) => p.meta.description.unwrap_or_default(),
            Err(_) => "(invalid: run `nono profile validate` on it)".to_string(),
        };
        entries.push((e, description));
    }
    if json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|(e, d)| serde_json::json!({"name": e.name, "source": e.source, "shadows_builtin": e.shadows_builtin, "description": d}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Exit::failure(e.to_string()))?
        );
        return Ok(0);
    }
    let width = entries
        .iter()
        .map(|(e, _)| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{:width$}  {:8}  DESCRIPTION", "NAME", "SOURCE");
    for (e, d) in &entries {
        let source = if e.source == "builtin" {
            "builtin".to_string()
        } else if e.shadows_builtin {
            "user*".into()
        } else {
            "user".into()
        };
        let _ = writeln!(
            out,
            "{:width$}  {:8}  {}",
            e.name,
            source,
            crate::cli::escape_for_terminal(d)
        );
    }
    if entries.iter().any(|(e, _)| e.shadows_builtin) {
        let _ = writeln!(
            out,
            "\n* a user profile that takes the place of the built-in of the same name"
        );
    }
    Ok(0)
}

fn init(
    profiles: &Profiles,
    name: &str,
    extends: &str,
    output: Option<PathBuf>,
    force: bool,
) -> CmdResult {
    if !valid_name(name) {
        return Err(Exit::usage(format!(
            "error: invalid profile name `{name}`\n  = help: use lower-case letters, digits, `-`, `_` and `.`, starting with a letter or digit"
        )));
    }
    // The parent must exist now, or the new profile would fail on first use.
    compile(profiles, extends)?;
    let path = match output {
        Some(p) => p,
        None => profiles
            .user_profile_dir()
            .ok_or_else(|| {
                Exit::failure("error: neither $XDG_CONFIG_HOME nor $HOME is set; use --output")
            })?
            .join(format!("{name}.json")),
    };
    if path.exists() && !force {
        return Err(Exit::failure(format!(
            "error: `{}` already exists\n  = help: pass --force to replace it",
            path.display()
        )));
    }
    let skeleton = serde_json::json!({
        "$schema": "https://nono.dev/schema/profile-v1.json",
        "name": name,
        "version": "0.1.0",
        "description": format!("{name}: describe what this agent is for"),
        "extends": [extends],
        "filesystem": {
            "read": [],
            "readwrite": ["$WORKDIR/**"],
            "exec": [],
            "deny": []
        },
        "network": {
            "domains": [],
            "cidrs": [],
            "listen": []
        },
        "env": {"pass": [], "strip": []}
    });
    let text =
        serde_json::to_string_pretty(&skeleton).map_err(|e| Exit::failure(e.to_string()))? + "\n";
    // Never write a skeleton that does not compile.
    let file = nono_policy::source::SourceFile {
        name: path.display().to_string(),
        text: text.clone(),
        format: nono_policy::source::Format::Json,
    };
    resolve::compile(&file, profiles)
        .map_err(|e| Exit::failure(format!("internal error: skeleton does not compile:\n{e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Exit::failure(format!("error: cannot create `{}`: {e}", dir.display())))?;
    }
    // Write to a temporary file and rename, so an interrupted init leaves no half profile.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Exit::failure(format!("error: cannot write `{}`: {e}", path.display()))
        })?;
    println!("wrote {}", path.display());
    println!(
        "edit it, then check it with: nono profile validate {}",
        if path.parent() == profiles.user_profile_dir().as_deref() {
            name.to_string()
        } else {
            path.display().to_string()
        }
    );
    Ok(0)
}

fn validate(profiles: &Profiles, name_or_path: &str, json: bool) -> CmdResult {
    let result = profiles
        .lookup_root(name_or_path)
        .map_err(|msg| {
            vec![nono_policy::Diagnostic::new(
                name_or_path,
                None,
                msg.trim_start_matches("error: ").to_string(),
            )]
        })
        .and_then(|root| resolve::compile(&root, profiles).map_err(|e| e.diagnostics));
    match (result, json) {
        (Ok(p), false) => {
            println!(
                "ok: {} is valid ({} rules)",
                p.meta.name,
                p.provenance.rules.len()
            );
            Ok(0)
        }
        (Ok(p), true) => {
            println!(
                "{}",
                serde_json::json!({"valid": true, "profile": p.meta.name, "rules": p.provenance.rules.len(), "diagnostics": []})
            );
            Ok(0)
        }
        (Err(diags), false) => {
            let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            eprint!("{}", text.join("\n"));
            eprintln!(
                "{name_or_path}: {} error{}",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            Ok(FAILURE)
        }
        (Err(diags), true) => {
            println!(
                "{}",
                serde_json::json!({"valid": false, "profile": name_or_path, "diagnostics": diags})
            );
            Ok(FAILURE)
        }
    }
}

/// Rule lines without their ids and origins, so two profiles compare by meaning.
fn rule_lines(p: &Policy) -> Vec<String> {
    nono_policy::export::to_lang(p)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("profile ") && !l.trim().is_empty())
        .map(|l| l.split("  # ").next().unwrap_or(l).to_string())
        .collect()
}

fn diff(profiles: &Profiles, a: &str, b: &str) -> CmdResult {
    let (pa, pb) = (compile(profiles, a)?, compile(profiles, b)?);
    let (la, lb) = (rule_lines(&pa), rule_lines(&pb));
    let color = std::io::stdout().is_terminal();
    let paint = |s: String, code: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "--- {a}\n+++ {b}");
    let mut same = true;
    for l in &la {
        if !lb.contains(l) {
            same = false;
            let _ = writeln!(out, "{}", paint(format!("-{l}"), "31"));
        }
    }
    for l in &lb {
        if !la.contains(l) {
            same = false;
            let _ = writeln!(out, "{}", paint(format!("+{l}"), "32"));
        }
    }
    if same {
        let _ = writeln!(out, "(no difference in rules or settings)");
    }
    Ok(if same { 0 } else { FAILURE })
}
