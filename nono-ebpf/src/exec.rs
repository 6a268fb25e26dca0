//! The exec report: under `audit all`, every completed `execve` of a sandboxed task is written
//! to its sandbox's ring with the name it was executed by and its arguments
//! ([`nono_common::ExecRecord`]). The LSM exec check (`fs::bprm_check_security`) runs before the
//! new program exists and reports by inode only; the arguments are on the new program's stack
//! only once the exec has succeeded, which is when the `sched_process_exec` tracepoint fires
//! (in the task itself, `current->mm` already the new one). A denied exec never gets here: its
//! report is the exec check's deny event.
//!
//! Kernel assumptions: BTF-enabled tracepoints (`tp_btf`, 5.5+) with typed arguments
//! `(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`, the same in 6.1 and
//! 6.12; the fields read (`linux_binprm.filename`, `task_struct.mm`, `mm_struct.arg_start` and
//! `arg_end`) are at the offsets the loader read from the kernel's BTF. The argument pages were
//! just written by the kernel, so the non-faulting `bpf_probe_read_user` finds them resident;
//! if it does not, the record says the arguments were unreadable. Loading needs CAP_BPF +
//! CAP_PERFMON, as the rest. It never decides anything: it only reports.

use core::ffi::c_void;

use aya_ebpf::{helpers::gen, macros::btf_tracepoint, programs::BtfTracePointContext};
use nono_common::{
    ExecRecord, EXEC_ARGV_CUT, EXEC_ARGV_LEN, EXEC_ARGV_UNREADABLE, EXEC_FILENAME_CUT,
    EXEC_FILENAME_LEN, SANDBOX_AUDIT_ALL,
};

use crate::{current_sandbox, events::emit_exec, fs::load, kernel_offset};

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
    emit_exec(sandbox.sandbox_id, |r| unsafe { fill(r, task, bprm) });
    0
}

/// The file name and arguments of the exec. `task` and `bprm` are the tracepoint's BTF-typed
/// arguments (see `fs::load`).
#[inline(always)]
unsafe fn fill(r: &mut ExecRecord, task: *const u8, bprm: *const u8) {
    // The scratch record is shared by every sandbox on this CPU: nothing of an earlier exec
    // may be written to this one's ring past the new strings.
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
