//! `nono-lab-tests probe OP ARGS.. [-- OP ARGS..]..`: the program the tests run inside a
//! sandbox. It performs each operation and prints one line per operation, `ok` or `errno N`,
//! so the tests can assert the exact errno the kernel returned.

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn cstr(p: &str) -> CString {
    CString::new(Path::new(p).as_os_str().as_bytes()).unwrap_or_default()
}

fn errno_of(rc: libc::c_int) -> Result<(), i32> {
    if rc < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    } else {
        Ok(())
    }
}

fn io_errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn addr(text: &str) -> Result<SocketAddr, i32> {
    text.parse().map_err(|_| -2)
}

fn run_op(op: &str, args: &[String]) -> Result<(), i32> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    // SAFETY (all libc calls): plain syscalls on NUL-terminated paths that outlive the call.
    unsafe {
        match op {
            "read" => {
                let mut f = std::fs::File::open(a(0)).map_err(io_errno)?;
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).map_err(io_errno)?;
                Ok(())
            }
            "append" => {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(a(0))
                    .map_err(io_errno)?;
                f.write_all(b"x").map_err(io_errno)
            }
            "create" => {
                let fd = libc::open(
                    cstr(a(0)).as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                    0o644,
                );
                errno_of(fd)?;
                libc::close(fd);
                Ok(())
            }
            // Copy SRC to a new executable file DST (a new inode with the same content).
            "copy" => {
                std::fs::copy(a(0), a(1)).map_err(io_errno)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(a(1), std::fs::Permissions::from_mode(0o755))
                    .map_err(io_errno)
            }
            "unlink" => errno_of(libc::unlink(cstr(a(0)).as_ptr())),
            "rmdir" => errno_of(libc::rmdir(cstr(a(0)).as_ptr())),
            "mkdir" => errno_of(libc::mkdir(cstr(a(0)).as_ptr(), 0o755)),
            "rename" => errno_of(libc::rename(cstr(a(0)).as_ptr(), cstr(a(1)).as_ptr())),
            "exchange" => errno_of(libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                cstr(a(0)).as_ptr(),
                libc::AT_FDCWD,
                cstr(a(1)).as_ptr(),
                libc::RENAME_EXCHANGE,
            ) as i32),
            "link" => errno_of(libc::link(cstr(a(0)).as_ptr(), cstr(a(1)).as_ptr())),
            "symlink" => errno_of(libc::symlink(cstr(a(0)).as_ptr(), cstr(a(1)).as_ptr())),
            "truncate" => errno_of(libc::truncate(cstr(a(0)).as_ptr(), 0)),
            "chmod" => errno_of(libc::chmod(cstr(a(0)).as_ptr(), 0o600)),
            "cgjoin" => {
                // Write our pid into another cgroup.procs: leaving the sandbox's cgroup.
                std::fs::write(a(0), std::process::id().to_string()).map_err(io_errno)
            }
            "clone-into" => {
                // clone3(CLONE_INTO_CGROUP): start a child directly in another cgroup, which
                // opens no cgroupfs file for writing.
                let dir = std::fs::File::open(a(0)).map_err(io_errno)?;
                use std::os::fd::AsRawFd;
                let mut clone_args = [0u64; 11];
                clone_args[0] = 0x2_0000_0000; // CLONE_INTO_CGROUP
                clone_args[4] = libc::SIGCHLD as u64; // exit_signal
                clone_args[10] = dir.as_raw_fd() as u64; // cgroup
                let pid = libc::syscall(libc::SYS_clone3, clone_args.as_ptr(), 88usize);
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid < 0 {
                    return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1));
                }
                let mut status = 0;
                libc::waitpid(pid as libc::pid_t, &mut status, 0);
                Ok(())
            }
            "openloop" => {
                // N opens of one file: the workload of the overhead benchmark.
                let n: usize = a(1).parse().unwrap_or(1000);
                for _ in 0..n {
                    let fd = libc::open(cstr(a(0)).as_ptr(), libc::O_RDONLY);
                    errno_of(fd)?;
                    libc::close(fd);
                }
                Ok(())
            }
            // N opens of a file the sandbox denies: ok when every one failed with EPERM (a
            // burst of exactly N deny events).
            "denyloop" => {
                let n: usize = a(1).parse().unwrap_or(1000);
                for _ in 0..n {
                    let fd = libc::open(cstr(a(0)).as_ptr(), libc::O_RDONLY);
                    if fd >= 0 {
                        libc::close(fd);
                        return Err(0);
                    }
                    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
                    if errno != libc::EPERM {
                        return Err(errno);
                    }
                }
                Ok(())
            }
            // N UDP sends to ADDR from one socket: ok when every one failed with EPERM.
            "sendloop" => {
                let target = addr(a(0))?;
                let n: usize = a(1).parse().unwrap_or(1000);
                let sock = UdpSocket::bind("0.0.0.0:0").map_err(io_errno)?;
                for _ in 0..n {
                    match sock.send_to(b"nono-lab", target) {
                        Ok(_) => return Err(0),
                        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                        Err(e) => return Err(io_errno(e)),
                    }
                }
                Ok(())
            }
            // `exec PATH [ARG..]`: run PATH with the arguments, and wait for it.
            "exec" => {
                let status = std::process::Command::new(a(0))
                    .args(args.iter().skip(1))
                    .status()
                    .map_err(io_errno)?;
                if status.success() {
                    Ok(())
                } else {
                    Err(-5)
                }
            }
            // Map PATH's first page executable, as a loader (`ld.so PATH`) does: directly
            // (`map-exec`), or readable first and then mprotect'ed (`map-then-protect`).
            "map-exec" | "map-then-protect" => {
                let fd = libc::open(cstr(a(0)).as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                errno_of(fd)?;
                let direct = op == "map-exec";
                let prot = if direct {
                    libc::PROT_READ | libc::PROT_EXEC
                } else {
                    libc::PROT_READ
                };
                let page = libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_PRIVATE, fd, 0);
                libc::close(fd);
                if page == libc::MAP_FAILED {
                    return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1));
                }
                let rc = if direct {
                    0
                } else {
                    libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_EXEC)
                };
                let result = errno_of(rc);
                libc::munmap(page, 4096);
                result
            }
            // Watch PATH for every event: an inotify watch, or a fanotify inode mark (the
            // unprivileged kind, which must report file handles).
            "inotify-watch" => {
                let fd = libc::inotify_init1(libc::IN_CLOEXEC);
                errno_of(fd)?;
                let wd = libc::inotify_add_watch(fd, cstr(a(0)).as_ptr(), libc::IN_ALL_EVENTS);
                let result = errno_of(wd);
                libc::close(fd);
                result
            }
            "fanotify-watch" => {
                const FAN_CLASS_NOTIF: libc::c_uint = 0;
                const FAN_REPORT_FID: libc::c_uint = 0x200;
                const FAN_MARK_ADD: libc::c_uint = 0x1;
                const FAN_CREATE: u64 = 0x100;
                const FAN_ONDIR: u64 = 0x4000_0000;
                let fd = libc::fanotify_init(
                    FAN_CLASS_NOTIF | FAN_REPORT_FID | libc::FAN_CLOEXEC,
                    libc::O_RDONLY as libc::c_uint,
                );
                errno_of(fd)?;
                let rc = libc::fanotify_mark(
                    fd,
                    FAN_MARK_ADD,
                    FAN_CREATE | FAN_ONDIR,
                    libc::AT_FDCWD,
                    cstr(a(0)).as_ptr(),
                );
                let result = errno_of(rc);
                libc::close(fd);
                result
            }
            // Copy SRC into a memfd and run it through /proc/self/fd, with ARGs after SRC: a
            // binary with no path.
            "exec-memfd" => {
                let bytes = std::fs::read(a(0)).map_err(io_errno)?;
                let fd = libc::memfd_create(c"payload".as_ptr(), 0);
                errno_of(fd)?;
                let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
                if written != bytes.len() as isize {
                    libc::close(fd);
                    return Err(-6);
                }
                let status = std::process::Command::new(format!("/proc/self/fd/{fd}"))
                    .args(args.iter().skip(1))
                    .status();
                libc::close(fd);
                match status.map_err(io_errno)?.success() {
                    true => Ok(()),
                    false => Err(-5),
                }
            }
            // Wait for a file to exist: SECONDS (default 20) at most.
            "wait" => {
                let limit = a(1).parse().unwrap_or(20);
                let deadline = Instant::now() + Duration::from_secs(limit);
                while !Path::new(a(0)).exists() {
                    if Instant::now() > deadline {
                        return Err(-3);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(())
            }
            "sleep" => {
                std::thread::sleep(Duration::from_secs(a(0).parse().unwrap_or(1)));
                Ok(())
            }
            // Unix sockets: connect to a path (stream), to an abstract name, send a datagram
            // to a path, and connect to a listener this probe binds itself at PATH.
            "unix-connect" => std::os::unix::net::UnixStream::connect(a(0))
                .map(drop)
                .map_err(io_errno),
            "unix-connect-abstract" => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(a(0).as_bytes())
                    .map_err(io_errno)?;
                std::os::unix::net::UnixStream::connect_addr(&addr)
                    .map(drop)
                    .map_err(io_errno)
            }
            "unix-dgram" => {
                let s = std::os::unix::net::UnixDatagram::unbound().map_err(io_errno)?;
                s.send_to(b"x", a(0)).map(drop).map_err(io_errno)
            }
            "unix-self" => {
                let listener = std::os::unix::net::UnixListener::bind(a(0)).map_err(io_errno)?;
                let stream = std::os::unix::net::UnixStream::connect(a(0)).map_err(io_errno)?;
                listener.accept().map_err(io_errno)?;
                drop(stream);
                Ok(())
            }
            // kill(PID, SIG): signal 0 checks permission only.
            "kill" => errno_of(libc::kill(
                a(0).parse().unwrap_or(-1),
                a(1).parse().unwrap_or(0),
            )),
            // Start a child and signal it: tasks inside the sandbox reach each other.
            "kill-own-child" => {
                let mut child = std::process::Command::new("/bin/sleep")
                    .arg("5")
                    .spawn()
                    .map_err(io_errno)?;
                let rc = errno_of(libc::kill(child.id() as libc::pid_t, libc::SIGTERM));
                let _ = child.wait();
                rc
            }
            // bpf(BPF_MAP_CREATE) of a small array.
            "bpf" => {
                #[repr(C)]
                struct MapCreate {
                    map_type: u32,
                    key_size: u32,
                    value_size: u32,
                    max_entries: u32,
                    pad: [u32; 28],
                }
                let attr = MapCreate {
                    map_type: 2, // BPF_MAP_TYPE_ARRAY
                    key_size: 4,
                    value_size: 4,
                    max_entries: 1,
                    pad: [0; 28],
                };
                let fd = libc::syscall(
                    libc::SYS_bpf,
                    0, // BPF_MAP_CREATE
                    &attr as *const MapCreate,
                    std::mem::size_of::<MapCreate>(),
                );
                errno_of(fd as libc::c_int)?;
                libc::close(fd as libc::c_int);
                Ok(())
            }
            // finit_module(fd of PATH): a module load attempt (the file need not be a module:
            // the denial comes before it is parsed).
            "finit-module" => {
                let fd = libc::open(cstr(a(0)).as_ptr(), libc::O_RDONLY);
                errno_of(fd)?;
                let rc = libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0);
                libc::close(fd);
                errno_of(rc as libc::c_int)
            }
            "connect" => {
                TcpStream::connect_timeout(&addr(a(0))?, Duration::from_secs(5))
                    .map_err(io_errno)?;
                Ok(())
            }
            "sendto" => {
                let target = addr(a(0))?;
                let local = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let sock = UdpSocket::bind(local).map_err(io_errno)?;
                sock.send_to(b"nono-lab", target).map_err(io_errno)?;
                Ok(())
            }
            // A DNS A query for NAME to SERVER over UDP: ok when the answer is NOERROR and
            // comes from SERVER itself (the redirect must hide nono's resolver); errno -3 for
            // another source, -(10 + rcode) for an error answer. With ADDR (`dnsq SERVER NAME
            // ADDR`), the answer's last record must be the A record ADDR, else errno -7.
            "dnsq" => {
                let server = addr(a(0))?;
                let local = if server.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let sock = UdpSocket::bind(local).map_err(io_errno)?;
                sock.set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(io_errno)?;
                let mut q = vec![0x4e, 0x4f, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
                for label in a(1).split('.') {
                    q.push(label.len() as u8);
                    q.extend_from_slice(label.as_bytes());
                }
                q.extend_from_slice(&[0, 0, 1, 0, 1]);
                sock.send_to(&q, server).map_err(io_errno)?;
                let mut buf = [0u8; 1500];
                let (n, from) = sock.recv_from(&mut buf).map_err(io_errno)?;
                if from != server {
                    return Err(-3);
                }
                let rcode = if n > 3 { buf[3] & 0xf } else { 15 };
                if rcode != 0 {
                    return Err(-(10 + i32::from(rcode)));
                }
                let answers = if n >= 8 {
                    u16::from_be_bytes([buf[6], buf[7]])
                } else {
                    0
                };
                match a(2) {
                    "" => Ok(()),
                    want => match want.parse::<std::net::Ipv4Addr>() {
                        Ok(ip) if answers > 0 && n >= 4 && buf[n - 4..n] == ip.octets() => Ok(()),
                        _ => Err(-7),
                    },
                }
            }
            "bind" => {
                TcpListener::bind(addr(a(0))?).map_err(io_errno)?;
                Ok(())
            }
            // listen(2) on a TCP socket never bound (the kernel would pick the port itself).
            "listen-unbound" => {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                errno_of(fd)?;
                let rc = errno_of(libc::listen(fd, 1));
                libc::close(fd);
                rc
            }
            "netns" => {
                // Enter a network namespace the test made; later operations happen inside it.
                let f = std::fs::File::open(format!("/run/netns/{}", a(0))).map_err(io_errno)?;
                use std::os::fd::AsRawFd;
                errno_of(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET))
            }
            _ => Err(-4),
        }
    }
}

/// Run the operations; a failed `netns` stops the run, so nothing meant for a namespace is
/// ever sent from the host's.
pub fn main(args: &[String]) -> i32 {
    for (i, group) in args.split(|a| a == "--").enumerate() {
        let Some((op, rest)) = group.split_first() else {
            continue;
        };
        let result = run_op(op, rest);
        match result {
            Ok(()) => println!("{i} {op}: ok"),
            Err(e) => println!("{i} {op}: errno {e}"),
        }
        if op == "netns" && result.is_err() {
            return 3;
        }
    }
    0
}
