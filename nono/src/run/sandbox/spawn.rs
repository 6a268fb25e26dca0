//! Starting the command: `clone(CLONE_VM | CLONE_VFORK)` (with the kernel layer, `clone3` with
//! `CLONE_INTO_CGROUP` too), confine the child, `execve`.
//!
//! The child shares nono's memory until `execve`, as in glibc's `posix_spawn`: nothing of
//! nono's address space is copied (no page tables to duplicate, no copy-on-write faults in the
//! parent afterwards, nothing for `execve` to tear down), and nono is suspended until the
//! child has exec'd or exited. The child runs on a stack of its own and writes only to it, to
//! its own kernel state and to the error pipe. Every signal is blocked in nono around the
//! `clone`, and the child resets every caught signal to its default before unblocking any, so
//! no nono handler ever runs in the child on the shared memory.
//!
//! Privilege: none. Kernel assumptions: Linux >= 5.13 (Landlock), which implies
//! `close_range(CLOSE_RANGE_CLOEXEC)` (5.11) and `PR_SET_NO_NEW_PRIVS` (3.5).
//!
//! Everything that can allocate, fail with a message, or touch the filesystem happens in the
//! parent before `clone`: the ruleset fd already holds every rule, the seccomp programs are
//! compiled, argv/envp/cwd are C strings. Between `clone` and `execve` the child makes only
//! async-signal-safe system calls, in this order:
//!
//! 1. reset every caught signal and SIGPIPE (Rust ignores it) to the default, then restore the
//!    caller's signal mask;
//! 2. `setsid`: a new session without a controlling terminal, so the command cannot reach the
//!    caller's terminal with TIOCSTI or job-control it (the terminal stays usable as stdio);
//!    2a. in the proxy mode of domain rules, a network namespace of its own, whose listener for
//!    the proxy goes back to nono (see [`super::netns`]). It comes before the parent-death
//!    signal because entering a user namespace changes credentials;
//! 3. `PR_SET_PDEATHSIG(SIGKILL)`, then check the parent is still there: if nono is killed, the
//!    command dies with it;
//!    3a. with the kernel layer, the child is in the run's sandbox cgroup, the one every
//!    kernel-layer program decides by, before anything of the command runs. On x86_64 it is
//!    born there: `clone3(CLONE_INTO_CGROUP)` with the cgroup's directory (Linux 5.7). Writing
//!    `cgroup.procs` instead moves a running task, which takes the cgroup threadgroup lock for
//!    writing and waits for an RCU grace period: 6 to 11 ms of every privileged start on the
//!    development VM. The child opens the cgroup's `cgroup.procs` and writes `0` to it when
//!    `clone3` is refused (a container's seccomp profile answers ENOSYS), on other
//!    architectures, and in the proxy mode, whose set-up above must not be judged by the
//!    sandbox's socket programs. The write comes before the child drops capabilities (it is a
//!    cgroupfs permission check) and before Landlock (which would forbid it);
//! 4. `chdir` to the working directory (before Landlock, so the directory need not be granted);
//! 5. `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`: every inherited descriptor but 0, 1 and 2 is
//!    closed by `execve` (marking rather than closing keeps the error pipe open until then);
//! 6. drop every capability: the bounding set (so an `execve` as uid 0 gains none back), the
//!    ambient set, and the effective, permitted and inheritable sets. nono started as root runs
//!    the command as uid 0 *without* capabilities: file ownership still applies, but not
//!    CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER, CAP_SYS_ADMIN, CAP_NET_RAW...;
//! 7. `PR_SET_NO_NEW_PRIVS`; 8. `landlock_restrict_self`; 9. `seccomp(SET_MODE_FILTER)` for each
//!    program;
//!    9a. with an audit trail, read the one byte that says the run's session row is committed
//!    (`audit::session::RunAudit::take_row_gate`): the command never runs unrecorded, and the
//!    audit writer's transaction overlaps steps 1 to 9 instead of delaying the `clone`;
//! 10. `execve`.
//!
//! A failing step writes `[step, errno]` to a close-on-exec pipe and `_exit`s; the parent reads
//! that pipe (EOF means `execve` succeeded) and turns it into a message and exit code.

use std::ffi::{c_char, CString, OsString};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use seccompiler::{sock_filter, BpfProgram};

/// The step of the child's set-up that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    SignalMask = 1,
    Setsid,
    ParentDeath,
    Chdir,
    CloseFds,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Exec,
    Capabilities,
    Cgroup,
    Namespace,
    UserMap,
    Loopback,
    ProxyListener,
    AuditRow,
}

impl Step {
    fn from_u8(v: u8) -> Option<Step> {
        use Step::*;
        [
            SignalMask,
            Setsid,
            ParentDeath,
            Chdir,
            CloseFds,
            NoNewPrivs,
            Landlock,
            Seccomp,
            Exec,
            Capabilities,
            Cgroup,
            Namespace,
            UserMap,
            Loopback,
            ProxyListener,
            AuditRow,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::SignalMask => "restoring the signal mask",
            Step::Setsid => "setsid (new session)",
            Step::ParentDeath => "PR_SET_PDEATHSIG",
            Step::Chdir => "changing to the working directory",
            Step::CloseFds => "close_range (closing inherited descriptors)",
            Step::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            Step::Landlock => "landlock_restrict_self",
            Step::Seccomp => "loading the seccomp filter",
            Step::Exec => "execve",
            Step::Capabilities => "dropping capabilities (capset)",
            Step::Cgroup => "entering the sandbox cgroup (kernel layer)",
            Step::Namespace => {
                "entering a network namespace of its own (unshare CLONE_NEWNET, with \
                 CLONE_NEWUSER unless root)"
            }
            Step::UserMap => "mapping its uid and gid in its user namespace",
            Step::Loopback => "bringing up the loopback interface of its network namespace",
            Step::ProxyListener => "listening for the proxy inside its network namespace",
            Step::AuditRow => "waiting for the audit trail's session row",
        }
    }
}

#[derive(Debug)]
pub struct SpawnError {
    pub step: Step,
    pub errno: i32,
}

impl SpawnError {
    pub fn io(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` (`linux/capability.h`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drop every capability of the calling process. Async-signal-safe: system calls only.
///
/// Shrinking the bounding set needs CAP_SETPCAP, which an unprivileged caller lacks; it then
/// has no capability that `execve` could restore either, so EPERM there is not a failure. The
/// final `capset` to empty sets must succeed: dropping is always permitted.
///
/// # Safety
/// Only system calls; meant for the child between `clone` and `execve`.
unsafe fn drop_capabilities() -> Result<(), ()> {
    for cap in 0..64 {
        // EINVAL marks the end of the kernel's capability list; EPERM says CAP_SETPCAP is
        // missing, so no later drop can succeed either (and none is needed, as above).
        if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
            break;
        }
    }
    // Fails with EINVAL before Linux 4.3, which has no ambient set to clear.
    libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL,
        0,
        0,
        0,
    );
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    if libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) != 0 {
        return Err(());
    }
    Ok(())
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

/// What the child needs, prepared in the parent. Holds no fd: the ruleset fd is borrowed from
/// its owner for the duration of [`spawn`].
pub struct Launch {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    cwd: CString,
}

fn cstring(bytes: Vec<u8>, what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

impl Launch {
    pub fn new(
        path: &Path,
        argv: &[OsString],
        env: &[(OsString, OsString)],
        cwd: &Path,
    ) -> io::Result<Launch> {
        let path = cstring(path.as_os_str().to_owned().into_vec(), "the command path")?;
        let argv = argv
            .iter()
            .map(|a| cstring(a.clone().into_vec(), "an argument"))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone().into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_encoded_bytes());
                cstring(kv, "an environment variable")
            })
            .collect::<io::Result<Vec<_>>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|a| a.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        Ok(Launch {
            path,
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            cwd: cstring(
                cwd.as_os_str().to_owned().into_vec(),
                "the working directory",
            )?,
        })
    }
}

/// The confinement the child applies to itself.
pub struct Confinement<'a> {
    /// `None` only in tests of the spawn machinery itself.
    pub landlock: Option<(std::os::fd::BorrowedFd<'a>, u32)>,
    pub seccomp: &'a [BpfProgram],
    /// With the kernel layer: how the child enters the sandbox cgroup (step 3a).
    pub cgroup: Option<CgroupEntry<'a>>,
    /// The proxy mode's network namespace, and the child's end of the socketpair its listener
    /// goes back over.
    pub netns: Option<(&'a super::netns::Setup, std::os::fd::BorrowedFd<'a>)>,
    /// The audit trail's row gate: one byte once the session row is committed (step 9a).
    pub row_gate: Option<std::os::fd::BorrowedFd<'a>>,
}

/// How the child enters the kernel layer's sandbox cgroup (step 3a).
#[derive(Clone, Copy)]
pub struct CgroupEntry<'a> {
    /// The cgroup's directory.
    pub dir: std::os::fd::BorrowedFd<'a>,
    /// Born in it (`clone3(CLONE_INTO_CGROUP)`) where `clone3` allows. Otherwise, and always
    /// when false, the child opens the directory's `cgroup.procs` and writes itself in.
    pub at_clone: bool,
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The child between `clone` and `execve`. Async-signal-safe: no allocation, no locks.
fn child(
    launch: &Launch,
    conf: &Confinement<'_>,
    progs: &[SockFprog],
    caller_mask: &libc::sigset_t,
    parent: libc::pid_t,
    report: libc::c_int,
    born_in_cgroup: bool,
) -> ! {
    use std::os::fd::AsRawFd;
    let fail = |step: Step| -> ! {
        let e = errno();
        let b = e.to_le_bytes();
        let msg = [step as u8, b[0], b[1], b[2], b[3]];
        // SAFETY: write and _exit are async-signal-safe; `msg` is a live stack buffer.
        unsafe {
            libc::write(report, msg.as_ptr().cast(), msg.len());
            libc::_exit(match (step, e) {
                (Step::Exec, libc::ENOENT) => 127,
                (Step::Exec, _) => 126,
                _ => 125,
            })
        }
    };
    // SAFETY (whole block): raw system calls on live, pre-built data; see the module comment
    // for why each is here and in this order.
    unsafe {
        // Handlers are nono's code and data, shared with nono until `execve`: none may run
        // here. Ignored signals stay ignored, as across `execve`.
        for sig in 1..=libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if libc::pthread_sigmask(libc::SIG_SETMASK, caller_mask, std::ptr::null_mut()) != 0 {
            fail(Step::SignalMask);
        }
        if libc::setsid() < 0 {
            fail(Step::Setsid);
        }
        if let Some((setup, channel)) = &conf.netns {
            if let Err((step, e)) = super::netns::enter(setup, channel.as_raw_fd()) {
                *libc::__errno_location() = e;
                fail(step);
            }
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(Step::ParentDeath);
        }
        if libc::getppid() != parent {
            libc::_exit(125);
        }
        if let (Some(entry), false) = (&conf.cgroup, born_in_cgroup) {
            let procs = libc::openat(
                entry.dir.as_raw_fd(),
                c"cgroup.procs".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if procs < 0 || libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                fail(Step::Cgroup);
            }
            libc::close(procs);
        }
        if libc::chdir(launch.cwd.as_ptr()) != 0 {
            fail(Step::Chdir);
        }
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            fail(Step::CloseFds);
        }
        drop_capabilities().unwrap_or_else(|()| fail(Step::Capabilities));
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(Step::NoNewPrivs);
        }
        if let Some((fd, flags)) = &conf.landlock {
            if libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), *flags) != 0 {
                fail(Step::Landlock);
            }
        }
        for p in progs {
            const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
            if libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                0u32,
                p as *const SockFprog,
            ) != 0
            {
                fail(Step::Seccomp);
            }
        }
        if let Some(gate) = &conf.row_gate {
            // Exactly one byte opens the gate; its writer writes it before closing, so EOF
            // means something broke. If nono dies meanwhile, the child dies with it (step 3).
            let mut byte = 0u8;
            loop {
                match libc::read(gate.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) {
                    1 => break,
                    n if n < 0 && errno() == libc::EINTR => continue,
                    _ => fail(Step::AuditRow),
                }
            }
        }
        libc::execve(
            launch.path.as_ptr(),
            launch.argv_ptrs.as_ptr(),
            launch.envp_ptrs.as_ptr(),
        );
        fail(Step::Exec)
    }
}

/// The child's stack size. glibc's `posix_spawn` uses 32 KiB plus the argument size; nono's
/// child needs no argument space (argv and envp are prepared in the parent).
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// What [`child_entry`] needs, borrowed from [`spawn`]'s frame.
struct ChildArgs<'l, 'c> {
    launch: &'l Launch,
    conf: &'l Confinement<'c>,
    progs: &'l [SockFprog],
    caller_mask: &'l libc::sigset_t,
    parent: libc::pid_t,
    report: libc::c_int,
    /// Started by `clone3(CLONE_INTO_CGROUP)`: already in the sandbox cgroup.
    born_in_cgroup: bool,
}

/// The entry point `clone` runs in the child.
extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` `spawn` passed, alive until this child execs or exits.
    let a = unsafe { &*arg.cast::<ChildArgs<'_, '_>>() };
    // The read end of the error pipe is close-on-exec, like every descriptor but stdio here.
    child(
        a.launch,
        a.conf,
        a.progs,
        a.caller_mask,
        a.parent,
        a.report,
        a.born_in_cgroup,
    )
}

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, Linux 5.7).
#[cfg(target_arch = "x86_64")]
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7), a `clone3`-only flag.
#[cfg(target_arch = "x86_64")]
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP)`: `entry(arg)` runs in a child born in
/// the cgroup `cgroup_dir`, on `stack`. Returns the child's pid, or -1 with errno set.
///
/// glibc exports no `clone3` wrapper, and a child on a stack of its own cannot return from the
/// system call into Rust code (that code would look for the caller's frame on the new, empty
/// stack), so the child's side is three instructions, as in glibc's `clone3.S`: it calls
/// `entry` on its new stack with `arg`, and `entry` never returns (`ud2` if it did). The
/// parent's side returns normally. `rcx` and `r11` are clobbered by `syscall`; `r12` and `r13`
/// carry `entry` and `arg` across it, since the child starts with the caller's registers.
///
/// # Safety
/// As `libc::clone` with `CLONE_VM | CLONE_VFORK`: `entry` must never return, run only
/// async-signal-safe code, and `arg` and `stack` must outlive the child's `execve` or exit
/// (CLONE_VFORK suspends the caller until then).
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_into_cgroup(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
    stack: &mut [u128],
    cgroup_dir: libc::c_int,
) -> libc::pid_t {
    let args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.as_mut_ptr() as u64,
        stack_size: std::mem::size_of_val(stack) as u64,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_dir as u64,
    };
    let ret: i64;
    // SAFETY: see the function's contract; the parent's side is an ordinary system call.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry as usize,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = (-ret) as i32 };
        return -1;
    }
    ret as libc::pid_t
}

/// Start the confined command (see the module comment). The caller has blocked the signals it
/// will forward (`caller_mask` is the mask from before that), so none is lost between `clone`
/// and supervision.
pub fn spawn(
    launch: &Launch,
    conf: &Confinement<'_>,
    caller_mask: &libc::sigset_t,
) -> Result<libc::pid_t, SpawnError> {
    let progs = conf
        .seccomp
        .iter()
        .map(|p| {
            Ok(SockFprog {
                len: libc::c_ushort::try_from(p.len()).map_err(|_| SpawnError {
                    step: Step::Seccomp,
                    errno: libc::E2BIG,
                })?,
                filter: p.as_ptr(),
            })
        })
        .collect::<Result<Vec<_>, SpawnError>>()?;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError {
            step: Step::SignalMask,
            errno: errno(),
        });
    }
    let [read_end, write_end] = fds;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let mut args = ChildArgs {
        launch,
        conf,
        progs: &progs,
        caller_mask,
        parent,
        report: write_end,
        born_in_cgroup: false,
    };
    // The child's stack, 16-byte aligned at the top (x86_64 and aarch64 ABIs); the child only
    // makes system calls through libc wrappers, far below this size.
    let mut stack = vec![0u128; CHILD_STACK_BYTES / 16];
    let stack_top = stack.as_mut_ptr_range().end.cast::<libc::c_void>();
    // SAFETY: sigset_t is plain data, filled by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `all` and `before` are live, writable sigsets.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
    }
    let mut pid = -1;
    #[cfg(target_arch = "x86_64")]
    if let Some(CgroupEntry {
        dir,
        at_clone: true,
    }) = &conf.cgroup
    {
        use std::os::fd::AsRawFd;
        args.born_in_cgroup = true;
        // SAFETY: as for `clone` below.
        pid = unsafe {
            clone3_into_cgroup(
                child_entry,
                (&args as *const ChildArgs<'_, '_>).cast_mut().cast(),
                &mut stack,
                dir.as_raw_fd(),
            )
        };
    }
    // Not attempted, or refused however it was (ENOSYS from a container's seccomp profile, or
    // whatever a kernel or sandbox that rejects the flag answers): the child writes itself into
    // the cgroup, if any. A refusal about the cgroup itself fails that write too, and the
    // write's error is the one reported.
    if pid < 0 {
        args.born_in_cgroup = false;
        // SAFETY: `child_entry` runs only async-signal-safe code on its own stack (see `child`)
        // and never returns; `args` and `stack` outlive it, because CLONE_VFORK suspends this
        // thread until the child has exec'd or exited.
        pid = unsafe {
            libc::clone(
                child_entry,
                stack_top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&args as *const ChildArgs<'_, '_>).cast_mut().cast(),
            )
        };
    }
    let clone_errno = errno();
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    drop(stack);
    if pid < 0 {
        let e = clone_errno;
        // SAFETY: both fds are ours.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        return Err(SpawnError {
            step: Step::Exec,
            errno: e,
        });
    }
    // SAFETY: the parent's copy of the write end is ours to close.
    unsafe { libc::close(write_end) };
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of a live buffer.
        let n = unsafe { libc::read(read_end, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    // SAFETY: the read end is ours.
    unsafe { libc::close(read_end) };
    if got == 0 {
        return Ok(pid);
    }
    // The child failed before exec and has exited (or is about to): reap it.
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let step = Step::from_u8(buf[0]).unwrap_or(Step::Exec);
    let errno = if got == 5 {
        i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]])
    } else {
        libc::EIO
    };
    Err(SpawnError { step, errno })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_mask() -> libc::sigset_t {
        // SAFETY: sigemptyset initialises the set.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            s
        }
    }

    fn wait(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    fn sh(script: &str) -> Launch {
        Launch::new(
            Path::new("/bin/sh"),
            &["sh".into(), "-c".into(), script.into()],
            &[("PATH".into(), "/usr/bin:/bin".into())],
            Path::new("/"),
        )
        .unwrap()
    }

    #[test]
    fn exec_errors_come_back_with_their_step() {
        let l = Launch::new(
            Path::new("/nonexistent/x"),
            &["x".into()],
            &[],
            Path::new("/"),
        )
        .unwrap();
        let e = spawn(
            &l,
            &Confinement {
                landlock: None,
                seccomp: &[],
                cgroup: None,
                netns: None,
                row_gate: None,
            },
            &empty_mask(),
        )
        .unwrap_err();
        assert_eq!((e.step, e.errno), (Step::Exec, libc::ENOENT));
        let l = Launch::new(
            Path::new("/bin/true"),
            &["x".into()],
            &[],
            Path::new("/nonexistent"),
        )
        .unwrap();
        let e = spawn(
            &l,
            &Confinement {
                landlock: None,
                seccomp: &[],
                cgroup: None,
                netns: None,
                row_gate: None,
            },
            &empty_mask(),
        )
        .unwrap_err();
        assert_eq!((e.step, e.errno), (Step::Chdir, libc::ENOENT));
    }

    #[test]
    fn inherited_fds_are_closed_and_session_is_new() {
        // An fd without close-on-exec, as a careless caller would leave it.
        // SAFETY: plain dup of stderr; closed below.
        let leaked = unsafe { libc::dup(2) };
        assert!(leaked > 2);
        let script = format!(
            "test ! -e /proc/self/fd/{leaked} || exit 3; \
             test \"$(cut -d' ' -f6 /proc/$$/stat)\" = \"$$\" || exit 4; \
             grep -qE '^NoNewPrivs:[[:space:]]+1' /proc/$$/status || exit 5; \
             exit 0"
        );
        let pid = spawn(
            &sh(&script),
            &Confinement {
                landlock: None,
                seccomp: &[],
                cgroup: None,
                netns: None,
                row_gate: None,
            },
            &empty_mask(),
        )
        .unwrap();
        let code = wait(pid);
        // SAFETY: our dup.
        unsafe { libc::close(leaked) };
        assert_eq!(code, 0);
    }

    #[test]
    fn environment_is_exactly_what_was_given() {
        let l = Launch::new(
            Path::new("/bin/sh"),
            &[
                "sh".into(),
                "-c".into(),
                "test \"$A\" = b && test -z \"$HOME\"".into(),
            ],
            &[("A".into(), "b".into())],
            Path::new("/"),
        )
        .unwrap();
        let pid = spawn(
            &l,
            &Confinement {
                landlock: None,
                seccomp: &[],
                cgroup: None,
                netns: None,
                row_gate: None,
            },
            &empty_mask(),
        )
        .unwrap();
        assert_eq!(wait(pid), 0);
    }
}
