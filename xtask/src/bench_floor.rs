//! The start-up floor beside `nono run` in `bench run`: the least any launcher can cost for the
//! same sandbox on this machine.
//!
//! One `nono run` is traced (`strace -X raw`): the Landlock ruleset it creates, each path rule
//! it adds (with the path of the descriptor it added it through), the flags of
//! `landlock_restrict_self`, and the seccomp programs the child installs. `floor/floor.c`
//! replays exactly that work, compiled with the traced plan built in: no policy, argument
//! parsing, audit trail or supervision. So `floor - baseline` is what the profile's kernel work
//! costs by itself, and `nono - floor` is nono's own share.
//!
//! strace does not decode the ruleset's network and scope fields (it prints `...`); the floor
//! handles TCP bind and connect and both scopes whenever the attribute is long enough to hold
//! them. They are checked per access, not per rule, and change nothing at start-up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

const FLOOR_C: &str = include_str!("../floor/floor.c");

/// One classic BPF instruction, as `struct sock_filter` holds it: (code, jt, jf, k).
pub type Insn = (u16, u8, u8, u32);

/// What one traced `nono run` did to confine its command.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub handled_fs: u64,
    pub attr_size: u64,
    /// (allowed access, path) in the order they were added.
    pub rules: Vec<(u64, String)>,
    pub restrict_flags: u64,
    /// (flags, instructions) in the order they were installed.
    pub programs: Vec<(u64, Vec<Insn>)>,
}

/// A value as strace's raw mode prints it: `0x20`, `-100`, or an or of them (`0|0|0x20`).
fn number(text: &str) -> Result<i64> {
    let mut value = 0i64;
    for part in text.trim().split('|') {
        let part = part.trim();
        let v = if let Some(hex) = part.strip_prefix("0x") {
            i64::from_str_radix(hex, 16)
        } else {
            part.parse()
        }
        .with_context(|| format!("not a number in the trace: {text:?}"))?;
        value |= v;
    }
    Ok(value)
}

/// The text of `call(...)`'s arguments and its result, from a complete trace line.
fn split_call<'a>(text: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let args = text.strip_prefix(name)?.strip_prefix('(')?;
    // strace pads the result to a column (`)    = 7`), and an error's text has parentheses.
    args.match_indices(')').rev().find_map(|(i, _)| {
        let result = args[i + 1..].trim_start().strip_prefix("= ")?;
        Some((&args[..i], result.split_whitespace().next().unwrap_or("")))
    })
}

/// The first `"..."` string of `text`, as strace printed it (C escapes kept), and what follows.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let start = text.find('"')? + 1;
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((&text[start..i], &text[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// `name=VALUE` inside a struct strace printed.
fn field(text: &str, name: &str) -> Result<i64> {
    let at = text
        .find(&format!("{name}="))
        .with_context(|| format!("no {name} in {text:?}"))?;
    let rest = &text[at + name.len() + 1..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    number(&rest[..end])
}

/// The instructions of a `filter=[BPF_STMT(code, k), BPF_JUMP(code, k, jt, jf), ...]`.
fn filter(text: &str) -> Result<Vec<Insn>> {
    let list = text
        .split_once("filter=[")
        .context("a seccomp call without its filter")?
        .1;
    let mut out = Vec::new();
    for item in list.split("BPF_").skip(1) {
        let (kind, args) = item
            .split_once('(')
            .context("a malformed BPF instruction")?;
        let args = args.split(')').next().unwrap_or("");
        let v: Vec<i64> = args.split(", ").map(number).collect::<Result<_>>()?;
        out.push(match (kind, v.as_slice()) {
            ("STMT", [code, k]) => (*code as u16, 0, 0, *k as u32),
            ("JUMP", [code, k, jt, jf]) => (*code as u16, *jt as u8, *jf as u8, *k as u32),
            _ => bail!("a BPF instruction the floor does not know: {item:?}"),
        });
    }
    Ok(out)
}

/// Parse `strace -f -X raw -v` output (`TID call(...) = result` per line, with calls split
/// across `<unfinished ...>` and `<... resumed>` when threads interleave). `cwd` resolves
/// relative paths opened at `AT_FDCWD`.
pub fn parse(trace: &str, cwd: &Path) -> Result<Plan> {
    let mut pending: HashMap<&str, String> = HashMap::new();
    // Descriptor -> the path it was opened by; rule descriptors stay open until the spawn.
    let mut paths: HashMap<i64, String> = HashMap::new();
    let mut plan = Plan::default();
    let mut confined_tid = None;
    for line in trace.lines() {
        let Some((tid, text)) = line.split_once(' ') else {
            continue;
        };
        let text = text.trim_start();
        let call = if let Some(head) = text.strip_suffix(" <unfinished ...>") {
            pending.insert(tid, head.to_string());
            continue;
        } else if text.starts_with("<... ") {
            let Some(head) = pending.remove(tid) else {
                continue;
            };
            let tail = text.split_once("resumed>").map_or("", |(_, t)| t);
            format!("{head}{tail}")
        } else {
            text.to_string()
        };
        if let Some((args, result)) = split_call(&call, "openat") {
            let Ok(fd) = number(result) else { continue };
            if fd < 0 {
                continue;
            }
            let dirfd = number(args.split(',').next().unwrap_or(""))?;
            let (name, _) = quoted(args).context("openat without a path")?;
            let path = if name.starts_with('/') {
                name.to_string()
            } else if dirfd == -100 {
                format!("{}/{name}", cwd.display())
            } else {
                let dir = paths
                    .get(&dirfd)
                    .with_context(|| format!("openat relative to an unknown descriptor: {call}"))?;
                format!("{}/{name}", dir.trim_end_matches('/'))
            };
            paths.insert(fd, path);
        } else if let Some((args, result)) = split_call(&call, "landlock_create_ruleset") {
            if args.starts_with("NULL") || number(result).map_or(true, |fd| fd < 0) {
                continue; // the ABI probe, or a failure
            }
            plan.handled_fs = field(args, "handled_access_fs")? as u64;
            let size = args.rsplit_once("}, ").context("ruleset size")?.1;
            plan.attr_size = number(size.split(',').next().unwrap_or(""))? as u64;
        } else if let Some((args, result)) = split_call(&call, "landlock_add_rule") {
            ensure!(
                result == "0",
                "a failed landlock_add_rule in the trace: {call}"
            );
            let kind = number(args.split(',').nth(1).unwrap_or(""))?;
            ensure!(kind == 1, "the floor replays path rules only, not {call}");
            let fd = field(args, "parent_fd")?;
            let path = paths
                .get(&fd)
                .with_context(|| format!("a rule on an unknown descriptor: {call}"))?;
            plan.rules
                .push((field(args, "allowed_access")? as u64, path.clone()));
        } else if let Some((args, result)) = split_call(&call, "landlock_restrict_self") {
            ensure!(result == "0", "a failed landlock_restrict_self: {call}");
            plan.restrict_flags = number(args.split(", ").nth(1).unwrap_or("0"))? as u64;
            confined_tid = Some(tid.to_string());
        } else if let Some((args, result)) = split_call(&call, "seccomp") {
            // SECCOMP_SET_MODE_FILTER by the child that confined itself; nono's own
            // SECCOMP_GET_ACTION_AVAIL probes are not part of the sandbox.
            if confined_tid.as_deref() != Some(tid) || !args.starts_with("0x1,") {
                continue;
            }
            ensure!(result == "0", "a failed seccomp call: {call}");
            let flags = number(args.split(", ").nth(1).unwrap_or("0"))? as u64;
            plan.programs.push((flags, filter(args)?));
        }
    }
    ensure!(
        plan.attr_size > 0 && !plan.rules.is_empty(),
        "the traced run built no Landlock ruleset"
    );
    ensure!(
        confined_tid.is_some(),
        "the traced run never confined a child"
    );
    Ok(plan)
}

/// `floor_plan.h` for `plan`.
pub fn header(plan: &Plan) -> Result<String> {
    let mut h = String::new();
    // Network rights exist from the 16-byte attribute (ABI 4), scopes from 24 bytes (ABI 6).
    let handled_net = if plan.attr_size >= 16 { 0x3 } else { 0 };
    let scoped = if plan.attr_size >= 24 { 0x3 } else { 0 };
    writeln!(h, "#define HANDLED_FS {:#x}ULL", plan.handled_fs)?;
    writeln!(h, "#define HANDLED_NET {handled_net:#x}ULL")?;
    writeln!(h, "#define SCOPED {scoped:#x}ULL")?;
    writeln!(h, "#define RULESET_ATTR_SIZE {}", plan.attr_size)?;
    writeln!(h, "#define RESTRICT_FLAGS {:#x}", plan.restrict_flags)?;
    writeln!(h, "static const struct rule RULES[] = {{")?;
    for (access, path) in &plan.rules {
        // strace printed the path with C escapes: a valid C string literal as it stands.
        writeln!(h, "  {{{access:#x}ULL, \"{path}\"}},")?;
    }
    writeln!(h, "}};")?;
    for (i, (_, insns)) in plan.programs.iter().enumerate() {
        writeln!(h, "static struct sock_filter P{i}[] = {{")?;
        for (code, jt, jf, k) in insns {
            writeln!(h, "  {{{code:#x}, {jt}, {jf}, {k:#x}}},")?;
        }
        writeln!(h, "}};")?;
    }
    writeln!(h, "static const struct prog PROGS[] = {{")?;
    for (i, (flags, insns)) in plan.programs.iter().enumerate() {
        writeln!(h, "  {{{flags:#x}, {}, P{i}}},", insns.len())?;
    }
    writeln!(h, "}};")?;
    Ok(h)
}

/// Trace `argv` (a `nono run`, run with `env` in `cwd`), then build the floor launcher for the
/// sandbox it set up in `dir`. Returns the launcher and the traced plan.
pub fn build(
    argv: &[String],
    env: &[(&str, &Path)],
    cwd: &Path,
    dir: &Path,
) -> Result<(PathBuf, Plan)> {
    std::fs::create_dir_all(dir)?;
    let trace = dir.join("trace.txt");
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-v", "-X", "raw", "-s", "65536", "-e"])
        .arg(
            "trace=openat,landlock_create_ruleset,landlock_add_rule,landlock_restrict_self,seccomp",
        )
        .arg("-o")
        .arg(&trace)
        .args(argv)
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(cwd);
    for (k, v) in env {
        strace.env(k, v);
    }
    let out = strace.output().context("cannot run strace")?;
    ensure!(
        out.status.success(),
        "the traced run failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = std::fs::read_to_string(&trace)?;
    let plan = parse(&text, cwd)?;
    std::fs::write(dir.join("floor_plan.h"), header(&plan)?)?;
    std::fs::write(dir.join("floor.c"), FLOOR_C)?;
    let launcher = dir.join("floor");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&launcher)
        .arg(dir.join("floor.c"))
        .status()
        .context("cannot run the C compiler (cc)")?;
    ensure!(status.success(), "compiling the floor launcher failed");
    Ok((launcher, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as strace 6.1 prints them for a `nono run` (threads interleaved).
    const TRACE: &str = r#"100 landlock_create_ruleset(NULL, 0, 0x1) = 7
101 landlock_create_ruleset({handled_access_fs=0xffff, ...}, 24, 0) = 6
101 openat(-100, "/bin", 0x2080000)    = 7
101 openat(-100, "/nonexistent", 0x2080000) = -1 ENOENT (No such file or directory)
101 landlock_add_rule(6, 0x1, {allowed_access=0xd, parent_fd=7}, 0) = 0
101 openat(-100, "/etc", 0x90800 <unfinished ...>
102 openat(-100, "/home/u/.local/state/nono/audit.db", 0x80442, 0600) = 9
101 <... openat resumed>) = 18
101 openat(18, "passwd", 0x2080000) = 19
101 landlock_add_rule(6, 0x1, {allowed_access=0x4, parent_fd=19}, 0) = 0
101 openat(-100, "rel", 0x2080000) = 20
101 landlock_add_rule(6, 0x1, {allowed_access=0xc, parent_fd=20}, 0) = 0
100 seccomp(0x2, 0, [0x50000]) = 0
103 landlock_restrict_self(6, 0x2) = 0
103 seccomp(0x1, 0, {len=3, filter=[BPF_STMT(0|0|0x20, 0x4), BPF_JUMP(0x5|0|0x10, 0xc000003e, 0x1, 0), BPF_STMT(0x6|0, 0x50000|0x26)]}) = 0
"#;

    #[test]
    fn parses_a_trace() {
        let plan = parse(TRACE, Path::new("/work")).unwrap();
        assert_eq!(plan.handled_fs, 0xffff);
        assert_eq!(plan.attr_size, 24);
        assert_eq!(
            plan.rules,
            vec![
                (0xd, "/bin".to_string()),
                (0x4, "/etc/passwd".to_string()),
                (0xc, "/work/rel".to_string()),
            ]
        );
        assert_eq!(plan.restrict_flags, 2);
        assert_eq!(
            plan.programs,
            vec![(
                0,
                vec![
                    (0x20, 0, 0, 4),
                    (0x15, 1, 0, 0xc000003e),
                    (0x06, 0, 0, 0x50026)
                ]
            )]
        );
        let h = header(&plan).unwrap();
        assert!(h.contains("{0x4ULL, \"/etc/passwd\"},"), "{h}");
        assert!(h.contains("{0x15, 1, 0, 0xc000003e},"), "{h}");
        assert!(h.contains("#define SCOPED 0x3ULL"), "{h}");
    }

    #[test]
    fn refuses_a_trace_without_a_sandbox() {
        let err = parse("100 openat(-100, \"/x\", 0) = 3\n", Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("no Landlock ruleset"), "{err}");
        let unknown = "101 landlock_create_ruleset({handled_access_fs=0xffff, ...}, 24, 0) = 6\n\
                       101 landlock_add_rule(6, 0x1, {allowed_access=0xd, parent_fd=9}, 0) = 0\n";
        let err = parse(unknown, Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("unknown descriptor"), "{err}");
    }

    #[test]
    fn numbers_as_strace_prints_them() {
        assert_eq!(number("0|0|0x20").unwrap(), 0x20);
        assert_eq!(number("0x50000|0x26").unwrap(), 0x50026);
        assert_eq!(number("-100").unwrap(), -100);
        assert!(number("O_RDONLY").is_err());
    }
}
