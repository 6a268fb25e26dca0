//! The one way a hook turns what it found into the LSM's answer: fill the decision record,
//! report it (every deny; allows only under `audit all`), return 0 or -EPERM.
//!
//! Every check (`fs::check_dentry`, `fs::check_exec`, `ipc::check_unix_peer`, the name-watch
//! checks) returns a `Result<Verdict, _>`; an `Err` (kernel memory that could not be read,
//! offsets not loaded) is a deny with [`NO_VERDICT_RULE`]: a sandboxed access nono could not
//! judge is refused, and the event says why.

use nono_common::{Hook, SandboxInfo, NO_VERDICT_RULE, SANDBOX_AUDIT_ALL};

use crate::events::{emit, emit_with_path, Decision, PathScratch};

pub(crate) const EPERM: i32 = 1;

/// What a check decided about one access.
pub(crate) enum Verdict {
    /// Allowed; reported under `audit all` with the rule that allowed it (0: no rule).
    Allow { rule_id: u32, dev: u32, ino: u64 },
    /// Allowed and never reported (the access concerns only the sandbox itself, such as a unix
    /// socket one of its own tasks created).
    AllowQuiet,
    /// Denied by `rule_id` (0: the default rule), on the object `dev`/`ino`.
    Deny { rule_id: u32, dev: u32, ino: u64 },
}

/// Report `verdict` for `hook` and return the LSM answer. Each arm reports with values it
/// owns: a shared tuple of an enum's fields lets LLVM carry an undefined register the verifier
/// rejects.
#[inline(always)]
pub(crate) fn conclude(
    sandbox: &SandboxInfo,
    hook: Hook,
    access: u32,
    verdict: Result<Verdict, i64>,
) -> i32 {
    match verdict {
        Ok(Verdict::AllowQuiet) => 0,
        Ok(Verdict::Allow { rule_id, dev, ino }) => {
            if sandbox.flags & SANDBOX_AUDIT_ALL != 0 {
                report(sandbox, hook, access, false, rule_id, dev, ino);
            }
            0
        }
        Ok(Verdict::Deny { rule_id, dev, ino }) => {
            report(sandbox, hook, access, true, rule_id, dev, ino);
            -EPERM
        }
        Err(_) => {
            report(sandbox, hook, access, true, NO_VERDICT_RULE, 0, 0);
            -EPERM
        }
    }
}

/// Fill the decision record and emit it.
#[inline(always)]
fn report(
    sandbox: &SandboxInfo,
    hook: Hook,
    access: u32,
    denied: bool,
    rule_id: u32,
    dev: u32,
    ino: u64,
) {
    let mut decision = Decision::file(sandbox.sandbox_id, hook as u16);
    decision.access = access as u8;
    decision.denied = denied;
    decision.rule_id = rule_id;
    decision.dev = dev;
    decision.ino = ino;
    emit(&decision);
}

/// [`conclude`] for a sandbox under `audit all` deciding about a file: the report, allow or
/// deny, carries the path `fill` writes (see `path`: the name a file was opened by, or the
/// name a path hook acts on). Never called without `audit all`: the walk costs what a plain
/// event does not. Each arm writes its own values into the decision (no shared tuple, as in
/// [`conclude`]), so the walk is inlined once.
#[inline(always)]
pub(crate) fn conclude_with_path(
    sandbox: &SandboxInfo,
    hook: Hook,
    access: u32,
    verdict: Result<Verdict, i64>,
    fill: impl FnOnce(&mut PathScratch),
) -> i32 {
    let mut decision = Decision::file(sandbox.sandbox_id, hook as u16);
    decision.access = access as u8;
    let answer = match verdict {
        Ok(Verdict::AllowQuiet) => return 0,
        Ok(Verdict::Allow { rule_id, dev, ino }) => {
            decision.rule_id = rule_id;
            decision.dev = dev;
            decision.ino = ino;
            0
        }
        Ok(Verdict::Deny { rule_id, dev, ino }) => {
            decision.denied = true;
            decision.rule_id = rule_id;
            decision.dev = dev;
            decision.ino = ino;
            -EPERM
        }
        Err(_) => {
            decision.denied = true;
            decision.rule_id = NO_VERDICT_RULE;
            -EPERM
        }
    };
    emit_with_path(&decision, fill);
    answer
}
