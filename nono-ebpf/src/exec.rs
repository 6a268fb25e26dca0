//! The exec report: the name a program was executed by and its arguments
//! ([`nono_common::ExecRecord`]), for two kinds of exec of a sandboxed task.
//!
//! - **Completed** (under `audit all`): the `sched_process_exec` tracepoint fires in the task
//!   itself once the exec has succeeded, `current->mm` already the new one, and the arguments
//!   are read from the new program's stack (`mm.arg_start..arg_end`).
//! - **Denied** (always: every deny is reported): the LSM exec check (`fs::bprm_check_security`)
//!   reports its deny as an exec record ([`fill_denied`]) instead of a plain event. The new
//!   program's stack exists then, but in the new mm, which no helper reads from here (and
//!   `current->mm` is still the old one). The arguments are read instead through the pointer
//!   array the task passed to `execve`/`execveat`, found in the registers saved at syscall entry
//!   (`bpf_task_pt_regs` of the current task; `orig_ax` tells the two syscalls apart). The
//!   kernel has just copied those strings (`copy_strings`), so their pages are resident. A task
//!   whose other thread rewrites them in between can make the record differ from what the
//!   kernel copied; it is a report about a refused exec, never a decision.
//!
//! Kernel assumptions: BTF-enabled tracepoints (`tp_btf`, 5.5+) with typed arguments
//! `(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`, the same in 6.1 and
//! 6.12; `bpf_task_pt_regs` (5.15+) and `bpf_get_current_task_btf` callable from LSM programs,
//! as both lab kernels allow; x86_64 syscall numbers and `pt_regs` (on other architectures the
//! loader leaves the register offsets 0 and a denied exec's arguments are flagged unreadable).
//! The fields read (`linux_binprm.filename`, `task_struct.mm`, `mm_struct.arg_start` and
//! `arg_end`, the `pt_regs` registers) are at the offsets the loader read from the kernel's
//! BTF. User memory is read with the non-faulting `bpf_probe_read_user{,_str}`: what is not
//! resident makes the record say the arguments were unreadable or cut. Loading needs CAP_BPF +
//! CAP_PERFMON, as the rest.

use core::ffi::c_void;

use aya_ebpf::{helpers::gen, macros::btf_tracepoint, programs::BtfTracePointContext};
use nono_common::{
    ExecRecord, EXEC_ARGV_CUT, EXEC_ARGV_LEN, EXEC_ARGV_UNREADABLE, EXEC_DENIED,
    EXEC_DENIED_ARGS, EXEC_FILENAME_CUT, EXEC_FILENAME_LEN, SANDBOX_AUDIT_ALL,
};

use crate::{
    current_sandbox,
    events::{emit_exec, ExecScratch},
    fs::load,
    kernel_offset,
};

/// x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const NR_EXECVE: u64 = 59;
const NR_EXECVEAT: u64 = 322;

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    // Allowed accesses, this exec among them, are reported only under `audit all`.
    if sandbox.flags & SANDBOX_AUDIT_ALL == 0 {
        return 0;
    }
    let task: *const u8 = unsafe { ctx.arg(0) };
    let bprm: *const u8 = unsafe { ctx.arg(2) };
    emit_exec(sandbox.sandbox_id, |s| unsafe { fill(&mut s.record, task, bprm) });
    0
}

/// Start a record: nothing of an earlier exec may be written to this one's ring past the new
/// strings (the scratch record is shared by every sandbox on this CPU), then the file name
/// `bprm` (a BTF-typed `struct linux_binprm *`, see `fs::load`) was executed by.
#[inline(always)]
unsafe fn fill_filename(r: &mut ExecRecord, bprm: *const u8) {
    r.filename = [0; EXEC_FILENAME_LEN];
    r.argv = [0; EXEC_ARGV_LEN];
    r.flags = 0;
    r.argv_len = 0;
    if !bprm.is_null() {
        let name: *const u8 = load(bprm, kernel_offset!(binprm_filename));
        // The length copied, NUL included; the whole buffer when the name was cut (or fit
        // exactly, which the record can't tell apart: flagged as cut).
        let copied = gen::bpf_probe_read_kernel_str(
            r.filename.as_mut_ptr() as *mut c_void,
            EXEC_FILENAME_LEN as u32,
            name as *const c_void,
        );
        if copied >= EXEC_FILENAME_LEN as i64 {
            r.flags |= EXEC_FILENAME_CUT;
        }
    }
}

/// The file name and arguments of a completed exec. `task` and `bprm` are the tracepoint's
/// BTF-typed arguments.
#[inline(always)]
unsafe fn fill(r: &mut ExecRecord, task: *const u8, bprm: *const u8) {
    fill_filename(r, bprm);
    let mm: *const u8 = if task.is_null() {
        core::ptr::null()
    } else {
        load(task, kernel_offset!(task_mm))
    };
    if mm.is_null() {
        r.flags |= EXEC_ARGV_UNREADABLE;
        return;
    }
    let start: u64 = load(mm, kernel_offset!(mm_arg_start));
    let end: u64 = load(mm, kernel_offset!(mm_arg_end));
    if end <= start {
        r.flags |= EXEC_ARGV_UNREADABLE;
        return;
    }
    let total = end - start;
    // Bounded for the verifier on both branches: the whole buffer, or less than it.
    let len = if total >= EXEC_ARGV_LEN as u64 {
        r.flags |= EXEC_ARGV_CUT;
        EXEC_ARGV_LEN as u32
    } else {
        total as u32 & (EXEC_ARGV_LEN as u32 - 1)
    };
    let read = gen::bpf_probe_read_user(
        r.argv.as_mut_ptr() as *mut c_void,
        len,
        start as *const c_void,
    );
    if read < 0 {
        r.flags |= EXEC_ARGV_UNREADABLE;
    } else {
        r.argv_len = len;
    }
}

/// The record of an exec the exec check denied: `rule_id`, `dev` and `ino` of the decision,
/// the file name from `bprm` (the check's BTF-typed argument), and the arguments the task
/// passed to the syscall (see the module comment). Each argument is in the record whole or
/// not at all: one that does not fit ends the list, flagged as cut, so a secret is never
/// recorded half (the redaction matches whole arguments).
#[inline(always)]
pub(crate) unsafe fn fill_denied(
    s: &mut ExecScratch,
    bprm: *const u8,
    rule_id: u32,
    dev: u32,
    ino: u64,
) {
    fill_filename(&mut s.record, bprm);
    s.record.flags |= EXEC_DENIED;
    s.record.rule_id = rule_id;
    s.record.dev = dev;
    s.record.ino = ino;
    let Some(argv) = syscall_argv() else {
        s.record.flags |= EXEC_ARGV_UNREADABLE;
        return;
    };
    let mut pos: u32 = 0;
    let mut ended = false;
    for i in 0..EXEC_DENIED_ARGS {
        let mut arg: u64 = 0;
        let read = gen::bpf_probe_read_user(
            &mut arg as *mut u64 as *mut c_void,
            8,
            (argv + 8 * i as u64) as *const c_void,
        );
        if read < 0 {
            s.record.flags |= if i == 0 {
                EXEC_ARGV_UNREADABLE
            } else {
                EXEC_ARGV_CUT
            };
            ended = true;
            break;
        }
        if arg == 0 {
            ended = true;
            break;
        }
        if pos >= EXEC_ARGV_LEN as u32 {
            s.record.flags |= EXEC_ARGV_CUT;
            ended = true;
            break;
        }
        // Masked for the verifier (a no-op: `pos` is below EXEC_ARGV_LEN here), read back
        // volatile so the compiler keeps the mask (see `path::walk`). The slack after the
        // record takes a string that runs past its end.
        let at = (core::ptr::read_volatile(&pos) & (EXEC_ARGV_LEN as u32 - 1)) as usize;
        let copied = gen::bpf_probe_read_user_str(
            s.record.argv.as_mut_ptr().add(at) as *mut c_void,
            EXEC_ARGV_LEN as u32,
            arg as *const c_void,
        );
        if copied < 0 {
            s.record.flags |= EXEC_ARGV_CUT;
            ended = true;
            break;
        }
        // The user-string helper returns 0, not 1, for an empty string
        // (`strncpy_from_user_nofault`): an empty argument, one NUL.
        let copied = if copied == 0 {
            s.record.argv[at] = 0;
            1
        } else {
            copied as u32 & (2 * EXEC_ARGV_LEN as u32 - 1)
        };
        // A string that filled the whole read may have been cut by it (or fit exactly, which
        // can't be told apart): left out, like one that runs past the record's end.
        if copied >= EXEC_ARGV_LEN as u32 || pos + copied > EXEC_ARGV_LEN as u32 {
            s.record.flags |= EXEC_ARGV_CUT;
            ended = true;
            break;
        }
        pos += copied;
    }
    if !ended {
        // More arguments than the loop follows.
        s.record.flags |= EXEC_ARGV_CUT;
    }
    s.record.argv_len = pos;
}

/// The user address of the argv array of the `execve` or `execveat` the current task is in,
/// from its saved registers; `None` for any other syscall (or none known: the offsets are 0
/// off x86_64).
#[inline(always)]
unsafe fn syscall_argv() -> Option<u64> {
    let nr_at = kernel_offset!(regs_syscall_nr);
    if nr_at == 0 {
        return None;
    }
    let task = gen::bpf_get_current_task_btf();
    let regs = gen::bpf_task_pt_regs(task) as *const u8;
    if regs.is_null() {
        return None;
    }
    let nr: u64 = load(regs, nr_at);
    let argv: u64 = if nr == NR_EXECVE {
        load(regs, kernel_offset!(regs_execve_argv))
    } else if nr == NR_EXECVEAT {
        load(regs, kernel_offset!(regs_execveat_argv))
    } else {
        return None;
    };
    (argv != 0).then_some(argv)
}
