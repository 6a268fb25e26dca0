//! The parent while the command runs: signal forwarding, job control, exit status, survivors.
//!
//! Privilege: none. Kernel assumptions: `PR_SET_CHILD_SUBREAPER` (3.4) and
//! `/proc/self/task/*/children` (`CONFIG_PROC_CHILDREN`) for finding survivors; without the
//! latter survivors are left running (still confined) and a warning says so.
//!
//! Signals: nono blocks the signals below before `clone` and takes them synchronously with
//! `sigwaitinfo`, so there are no handlers and nothing is lost in between.
//! - SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGUSR1, SIGUSR2 are forwarded to the
//!   command's process group. The command runs in its own session (see `spawn`), so the
//!   terminal's keys reach nono, the foreground job, and nono passes them on.
//! - Job control: on SIGTSTP (Ctrl-Z) nono sends the command's group SIGTSTP, for programs that
//!   catch it to tidy up, and then SIGSTOP. SIGSTOP is needed because the command's group is
//!   *orphaned* (its parent, nono, is in another session), and the kernel discards SIGTSTP,
//!   SIGTTIN and SIGTTOU whose default action would stop such a group. When the command has
//!   stopped, nono stops itself with SIGSTOP so the shell sees the job stopped; when the shell
//!   continues nono (`fg`/`bg`, SIGCONT), nono sends SIGCONT to the command. A command stopped
//!   by anything else stops nono too: nono mirrors the command's state.
//! - Exit: the command's exit status, or 128+N when signal N killed it.
//!
//! Survivors: the sandbox lives as long as the command. nono is the child subreaper of
//! everything the command starts, so double-forked and `setsid` processes stay its descendants;
//! when the command exits, nono SIGKILLs its process group and then every remaining descendant,
//! reaping until none is left. If nono itself is SIGKILLed, the command gets SIGKILL (parent
//! death signal); its descendants may then outlive it, but stay confined: the Landlock domain,
//! the seccomp filters and `no_new_privs` are inherited and cannot be removed.

use std::io;

pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGWINCH,
    libc::SIGUSR1,
    libc::SIGUSR2,
];
const JOB_CONTROL: &[libc::c_int] = &[libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];

/// Blocks the forwarded, job-control, SIGCONT and SIGCHLD signals while alive.
pub struct BlockedSignals {
    set: libc::sigset_t,
    /// The mask before blocking: restored on drop, and handed to the child.
    pub previous: libc::sigset_t,
}

impl BlockedSignals {
    pub fn block() -> io::Result<BlockedSignals> {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset/sigaddset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED
                .iter()
                .chain(JOB_CONTROL)
                .chain(&[libc::SIGCONT, libc::SIGCHLD])
            {
                libc::sigaddset(&mut set, *s);
            }
            let mut previous: libc::sigset_t = std::mem::zeroed();
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r));
            }
            Ok(BlockedSignals { set, previous })
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restoring a mask we saved.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut()) };
    }
}

/// Make nono the reaper of every orphan the command leaves. Call before `clone`.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

impl Ended {
    /// nono's exit code: the command's status, or 128+N for signal N.
    pub fn exit_code(self) -> i32 {
        match self {
            Ended::Exited(c) => c,
            Ended::Signaled(s) => 128 + s,
        }
    }
}

/// What one `waitpid` status means for the main child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ended(Ended),
    Stopped,
    Continued,
}

fn decode(status: libc::c_int) -> Status {
    if libc::WIFEXITED(status) {
        Status::Ended(Ended::Exited(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Status::Ended(Ended::Signaled(libc::WTERMSIG(status)))
    } else if libc::WIFSTOPPED(status) {
        Status::Stopped
    } else {
        Status::Continued
    }
}

fn send(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions. ESRCH (the group is gone) is fine.
    unsafe { libc::kill(-pgid, sig) };
}

/// Forward signals and mirror job control until the command ends. `child` leads its own
/// session, so its pid is also its process group id.
pub fn supervise(blocked: &BlockedSignals, child: libc::pid_t) -> io::Result<Ended> {
    loop {
        // Reap first: the command may have ended before we got here.
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status of one of our children.
            let pid = unsafe {
                libc::waitpid(
                    -1,
                    &mut status,
                    libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED,
                )
            };
            if pid == 0 {
                break;
            }
            if pid < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            if pid != child {
                continue; // an orphan we reap as subreaper
            }
            match decode(status) {
                Status::Ended(e) => return Ok(e),
                Status::Stopped => {
                    // The command stopped (Ctrl-Z or SIGSTOP): so does nono, for the shell.
                    // SAFETY: stopping ourselves; SIGSTOP cannot be blocked.
                    unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
                }
                Status::Continued => {}
            }
        }
        // SAFETY: the set is initialised; info is written by the kernel.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&blocked.set, &mut info)
        };
        if sig < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        match sig {
            libc::SIGCHLD => {}
            libc::SIGCONT => send(child, libc::SIGCONT),
            libc::SIGTSTP => {
                send(child, libc::SIGTSTP);
                send(child, libc::SIGSTOP);
            }
            s if FORWARDED.contains(&s) || JOB_CONTROL.contains(&s) => send(child, s),
            _ => {}
        }
    }
}

/// The pids of nono's direct children, from `/proc/self/task/*/children`.
fn children() -> io::Result<Vec<libc::pid_t>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let text = std::fs::read_to_string(task?.path().join("children"))?;
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<libc::pid_t>().ok()),
        );
    }
    Ok(out)
}

/// Kill and reap everything the command left behind. Returns how many survivors were killed.
pub fn kill_survivors(child: libc::pid_t) -> io::Result<usize> {
    send(child, libc::SIGKILL);
    let mut killed = 0;
    loop {
        let kids = children()?;
        for k in &kids {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(*k, libc::SIGKILL) };
        }
        killed += kids.len();
        let mut status = 0;
        // SAFETY: reaping our own children. Every child has been sent SIGKILL, so this returns;
        // orphans re-parented to us by a death are found on the next round.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ECHILD) => return Ok(killed),
                Some(libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Ended::Exited(3).exit_code(), 3);
        assert_eq!(Ended::Signaled(libc::SIGKILL).exit_code(), 137);
        assert_eq!(Ended::Signaled(libc::SIGINT).exit_code(), 130);
    }

    #[test]
    fn decodes_wait_statuses() {
        assert_eq!(decode(7 << 8), Status::Ended(Ended::Exited(7)));
        assert_eq!(
            decode(libc::SIGTERM),
            Status::Ended(Ended::Signaled(libc::SIGTERM))
        );
        assert_eq!(decode((libc::SIGTSTP << 8) | 0x7f), Status::Stopped);
        assert_eq!(decode(0xffff), Status::Continued);
    }
}
