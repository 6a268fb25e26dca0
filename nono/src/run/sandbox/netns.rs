//! The sandbox's own network namespace, for the proxy mode of domain rules.
//!
//! Privilege: none. An unprivileged `nono` puts the command in a new user namespace (mapping
//! only its own uid and gid) that owns the new network namespace; as root, the network
//! namespace alone (CAP_SYS_ADMIN). Kernel assumptions: network and user namespaces
//! (CONFIG_NET_NS, CONFIG_USER_NS) with user namespaces open to unprivileged users
//! (`user.max_user_namespaces` > 0; on kernels that have them, `kernel.unprivileged_userns_clone`
//! = 1 and `kernel.apparmor_restrict_unprivileged_userns` = 0). [`availability`] checks those
//! before anything starts, so a machine without them is a named problem, not a late failure.
//!
//! Why: in the proxy mode Landlock is the only check on TCP connect, and Landlock filters by port
//! only. Without a namespace of its own, the proxy's port number is open to *every* address:
//! a command could reach any host listening on that port. In a network namespace of its own
//! the command has a loopback interface and nothing else, so the only thing that port reaches is
//! the proxy. (Abstract unix sockets are per network namespace too, so the host's are out of
//! reach as well.)
//!
//! The proxy itself stays in nono, in the host's namespace, where it dials out. The child
//! creates the listening socket *inside* its new namespace (sockets keep the namespace they were
//! created in) and hands it to nono over a socketpair with SCM_RIGHTS, before it confines itself;
//! nono accepts on it after `execve` ([`receive_listener`]). Connections made before that wait
//! in the listen backlog.
//!
//! The child's half ([`enter`]) runs between `clone` and `execve` (see [`super::spawn`]): system
//! calls only, on data prepared here.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::spawn::Step;

/// The proxy's port inside the sandbox's namespace. The namespace is new, so any port is free;
/// a fixed one keeps the command's environment the same from run to run, and 3128 is the
/// customary HTTP proxy port.
pub const PROXY_PORT: u16 = 3128;

/// Why the command cannot get a network namespace of its own on this machine, if it cannot.
///
/// Reads the switches distributions use to close user namespaces to unprivileged users; it
/// does not try one (that would cost a namespace per run). Should a kernel refuse anyway, the
/// child's set-up fails and `nono run` names that step.
pub fn availability(euid: u32) -> Result<(), String> {
    availability_from(euid, |p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
    })
}

/// [`availability`] with the sysctl and `/proc` reads supplied (`None`: no such file).
fn availability_from(euid: u32, read: impl Fn(&str) -> Option<i64>) -> Result<(), String> {
    // Any process may read its namespace links; a kernel without network namespaces has none.
    let has_netns = std::path::Path::new("/proc/self/ns/net").exists();
    if !has_netns {
        return Err("this kernel has no network namespaces (CONFIG_NET_NS)".into());
    }
    if euid == 0 {
        return Ok(());
    }
    if read("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Err("user namespaces are disabled (user.max_user_namespaces = 0)".into());
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Err(
            "user namespaces are closed to unprivileged users (kernel.unprivileged_userns_clone = 0)"
                .into(),
        );
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        return Err("AppArmor restricts unprivileged user namespaces \
                    (kernel.apparmor_restrict_unprivileged_userns = 1)"
            .into());
    }
    Ok(())
}

/// What the child needs, prepared in the parent.
#[derive(Debug)]
pub struct Setup {
    /// `None` as root: the network namespace alone.
    user_maps: Option<UserMaps>,
    port: u16,
}

#[derive(Debug)]
struct UserMaps {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl Setup {
    /// For a command run with the caller's effective uid and gid.
    pub fn new(euid: u32, egid: u32, port: u16) -> Setup {
        Setup {
            user_maps: (euid != 0).then(|| UserMaps {
                uid_map: format!("{euid} {euid} 1\n").into_bytes(),
                gid_map: format!("{egid} {egid} 1\n").into_bytes(),
            }),
            port,
        }
    }

    /// For the calling process.
    pub fn for_caller(port: u16) -> Setup {
        // SAFETY: geteuid and getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Setup::new(uid, gid, port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The socketpair the child hands its listener over: `(nono's end, the child's end)`, both
/// close-on-exec.
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two ints.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `SIOCGIFFLAGS` / `SIOCSIFFLAGS` (`linux/sockios.h`) and `IFF_UP` (`linux/if.h`).
const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
const IFF_UP: libc::c_short = 0x1;

/// `struct ifreq` as the flag ioctls use it: the name, then `ifr_flags` at the start of the
/// 24-byte union.
#[repr(C)]
struct IfreqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _rest_of_union: [u8; 22],
}

/// Write all of `data` to the file at `path`. Async-signal-safe.
unsafe fn write_file(path: &CStr, data: &[u8]) -> bool {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return false;
    }
    let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
    let e = errno();
    libc::close(fd);
    // close must not hide why the write failed.
    *libc::__errno_location() = e;
    ok
}

/// The child's half: enter a new network namespace (and user namespace, unprivileged), bring
/// its loopback up, listen on `127.0.0.1:port` there and send the listener to nono over
/// `channel`. Returns the failed step and its errno.
///
/// # Safety
/// System calls only, on `setup`'s pre-built data; meant for the child between `clone` and
/// `execve`.
pub unsafe fn enter(setup: &Setup, channel: RawFd) -> Result<(), (Step, i32)> {
    let flags = match setup.user_maps {
        Some(_) => libc::CLONE_NEWUSER | libc::CLONE_NEWNET,
        None => libc::CLONE_NEWNET,
    };
    if libc::unshare(flags) != 0 {
        return Err((Step::Namespace, errno()));
    }
    if let Some(m) = &setup.user_maps {
        // An unprivileged process may map only its own ids, and its gid only once setgroups(2)
        // is denied in the namespace (user_namespaces(7)).
        if !write_file(c"/proc/self/setgroups", b"deny")
            || !write_file(c"/proc/self/uid_map", &m.uid_map)
            || !write_file(c"/proc/self/gid_map", &m.gid_map)
        {
            return Err((Step::UserMap, errno()));
        }
    }
    // A new namespace's loopback is down, and 127.0.0.1 exists only once it is up.
    let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if s < 0 {
        return Err((Step::Loopback, errno()));
    }
    let mut req = IfreqFlags {
        name: [0; 16],
        flags: 0,
        _rest_of_union: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    let up = libc::ioctl(s, SIOCGIFFLAGS as _, &mut req as *mut IfreqFlags) == 0 && {
        req.flags |= IFF_UP;
        libc::ioctl(s, SIOCSIFFLAGS as _, &req as *const IfreqFlags) == 0
    };
    let e = errno();
    libc::close(s);
    if !up {
        return Err((Step::Loopback, e));
    }
    let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if l < 0 {
        return Err((Step::ProxyListener, errno()));
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: setup.port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let listening = libc::bind(
        l,
        (&addr as *const libc::sockaddr_in).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
    ) == 0
        && libc::listen(l, libc::SOMAXCONN) == 0
        && send_fd(channel, l);
    let e = errno();
    libc::close(l);
    if !listening {
        return Err((Step::ProxyListener, e));
    }
    Ok(())
}

/// Room for one `SCM_RIGHTS` message carrying one fd (`CMSG_SPACE(sizeof(int))`), aligned for
/// `cmsghdr`.
#[repr(C, align(8))]
struct OneFdControl([u8; 24]);

/// Send `fd` over the unix socket `over`. Async-signal-safe.
unsafe fn send_fd(over: RawFd, fd: RawFd) -> bool {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = OneFdControl([0; 24]);
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    libc::sendmsg(over, &msg, libc::MSG_NOSIGNAL) == 1
}

/// nono's half: the listener the child sent over `channel`. Call it once the child has exec'd
/// or exited and nono's copy of the child's end is closed, so that a child that failed before
/// sending gives EOF instead of a wait.
pub fn receive_listener(channel: &OwnedFd) -> io::Result<std::net::TcpListener> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = OneFdControl([0; 24]);
    // SAFETY: msghdr is plain data; every pointer in it refers to a live local above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of::<OneFdControl>() as _;
    let n = loop {
        // SAFETY: `msg` describes live, writable buffers.
        let n = unsafe { libc::recvmsg(channel.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        break n;
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CMSG_FIRSTHDR reads the msghdr the kernel filled in.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if n == 0 || cmsg.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the command's set-up sent no proxy listener",
        ));
    }
    // SAFETY: a non-null header from the kernel, inside `control`.
    let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    if level != libc::SOL_SOCKET || kind != libc::SCM_RIGHTS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected control message from the command's set-up",
        ));
    }
    // SAFETY: an SCM_RIGHTS message carries at least one fd, now ours (close-on-exec).
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
    // SAFETY: the fd was just received and is owned by nothing else.
    Ok(unsafe { std::net::TcpListener::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::sandbox::spawn::{spawn, Confinement, Launch};
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::path::Path;

    #[test]
    fn maps_only_the_callers_own_ids() {
        let s = Setup::new(1000, 1001, 3128);
        let m = s.user_maps.as_ref().unwrap();
        assert_eq!(m.uid_map, b"1000 1000 1\n");
        assert_eq!(m.gid_map, b"1001 1001 1\n");
        assert!(Setup::new(0, 0, 3128).user_maps.is_none());
    }

    #[test]
    fn closed_user_namespaces_are_named() {
        let with = |key: &'static str, v: i64| {
            move |p: &str| if p.ends_with(key) { Some(v) } else { None }
        };
        assert_eq!(availability_from(1000, |_| None), Ok(()));
        for (key, off, needle) in [
            ("max_user_namespaces", 0, "user.max_user_namespaces = 0"),
            (
                "unprivileged_userns_clone",
                0,
                "kernel.unprivileged_userns_clone = 0",
            ),
            (
                "apparmor_restrict_unprivileged_userns",
                1,
                "apparmor_restrict",
            ),
        ] {
            let e = availability_from(1000, with(key, off)).unwrap_err();
            assert!(e.contains(needle), "{e}");
            // Root needs no user namespace, so these switches do not concern it.
            assert_eq!(availability_from(0, with(key, off)), Ok(()));
        }
        assert_eq!(
            availability_from(1000, with("unprivileged_userns_clone", 1)),
            Ok(())
        );
    }

    /// The whole hand-over, as whoever runs the tests (root: the network namespace alone; any
    /// other user: with a user namespace): the command sees only `lo`, connects to the proxy's
    /// port there, and nono accepts that connection on the listener the child sent.
    #[test]
    fn the_child_listens_in_its_own_namespace_and_nono_accepts() {
        if !Path::new("/bin/bash").exists() || availability(unsafe { libc::geteuid() }).is_err() {
            eprintln!("no bash or no namespaces for this user; skipping");
            return;
        }
        let setup = Setup::for_caller(PROXY_PORT);
        let script = format!(
            "test \"$(tail -n +3 /proc/self/net/dev | cut -d: -f1 | tr -d ' ')\" = lo || exit 3; \
             exec 3<>/dev/tcp/127.0.0.1/{PROXY_PORT} || exit 4; echo through >&3; exit 0"
        );
        let launch = Launch::new(
            Path::new("/bin/bash"),
            &["bash".into(), "-c".into(), script.into()],
            &[],
            Path::new("/"),
        )
        .unwrap();
        let (nono_end, child_end) = channel().unwrap();
        // SAFETY: sigemptyset initialises the set.
        let mask = unsafe {
            let mut m: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut m);
            m
        };
        let pid = spawn(
            &launch,
            &Confinement {
                landlock: None,
                seccomp: &[],
                cgroup: None,
                netns: Some((&setup, child_end.as_fd())),
                row_gate: None,
            },
            &mask,
        )
        .unwrap();
        drop(child_end);
        let listener = receive_listener(&nono_end).unwrap();
        assert_eq!(
            listener.local_addr().unwrap(),
            std::net::SocketAddr::from(([127, 0, 0, 1], PROXY_PORT))
        );
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "no connection came");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through\n");
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0, "status {status:#x}");
        // A child that fails before sending leaves EOF, not a wait.
        let (nono_end, child_end) = channel().unwrap();
        drop(child_end);
        assert!(receive_listener(&nono_end).is_err());
    }
}
