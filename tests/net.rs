//! Network threats (threat-cases.md 18 to 20).
//!
//! Every packet goes to loopback only: the test starts its own listeners on 127.0.0.1 (and
//! ::1, 127.0.0.2) and asserts that a denied attempt never reached them. A denial is told apart
//! from ECONNREFUSED (nobody listening) by its errno: Landlock denies a TCP connect with EACCES;
//! when no TCP at all is allowed, nono's seccomp filter refuses the `AF_INET` socket itself with
//! EPERM (nono/src/run/sandbox/seccomp.rs). Either is a denial; [`TCP_DENIED`] lists them.

use std::net::TcpListener;

use nono_e2e::{
    as_root_and_nobody, assert_no_datagram, assert_no_tcp_connection, run, tcp_listener,
    udp_listener, Finished, User, World,
};

as_root_and_nobody!(
    case18_tcp_connect_to_loopback_listener_denied,
    case18_bash_dev_tcp_denied,
    case18_curl_noproxy_denied,
    case18_cidr_port_rule_enforced_exactly_or_refused,
    case18_cidr_port_rule_best_effort_allows_only_its_port,
    case18_block_net_overrides_profile_cidr,
    case18_tcp_fast_open_send_denied,
    listen_without_a_rule_denied,
    case19_udp_raw_packet_netlink_vsock_sockets_denied,
    case20_io_uring_setup_denied,
);

/// The errnos of a denied TCP connect: Landlock's, or seccomp's when inet sockets are refused.
const TCP_DENIED: &[&str] = &["EACCES", "EPERM"];

/// How bash and curl print those two errnos (`strerror`, with `LC_ALL=C`).
const TCP_DENIED_TEXT: &[&str] = &["Permission denied", "Operation not permitted"];

const CONNECT: &str = r#"
def connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    s.sendall(b"hello")
    s.close()
"#;

fn port(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

/// Asserts the listener got exactly one connection (an allowed connect really went through).
/// The probe has exited, so an accepted connect is already in the listen queue.
fn assert_got_connection(listener: &TcpListener) {
    assert!(
        listener.accept().is_ok(),
        "the allowed connection to {} never arrived",
        listener.local_addr().unwrap()
    );
}

/// Case 18: plain TCP to loopback listeners (v4 and v6) that no rule allows.
fn case18_tcp_connect_to_loopback_listener_denied(user: User) {
    let w = World::new(user);
    let v4 = tcp_listener();
    let v6 = TcpListener::bind("[::1]:0").expect("bind ::1");
    v6.set_nonblocking(true).unwrap();
    let extra = serde_json::json!({ "v4": port(&v4), "v6": port(&v6) });
    let code = format!(
        r#"{CONNECT}
attempt("tcp_v4", lambda: connect("127.0.0.1", P["v4"]))
attempt("tcp_v6", lambda: connect("::1", P["v6"]))
"#
    );
    let out = w.probe_with(&[] as &[&str], &extra, &code);
    out.expect_one_of("tcp_v4", TCP_DENIED)
        .expect_one_of("tcp_v6", TCP_DENIED);
    assert_no_tcp_connection(&v4);
    assert_no_tcp_connection(&v6);
}

/// Case 18: bash's `/dev/tcp` pseudo-device, which bypasses any proxy setting.
fn case18_bash_dev_tcp_denied(user: User) {
    let w = World::new(user);
    let l = tcp_listener();
    let script = format!("echo hello > /dev/tcp/127.0.0.1/{}", port(&l));
    let out = run(&mut w.sandbox(&[] as &[&str], &["/bin/bash", "-c", &script]));
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        TCP_DENIED_TEXT.iter().any(|t| out.stderr.contains(t)),
        "expected a denial, not a refused or timed-out connection\n{}",
        out.describe()
    );
    assert_no_tcp_connection(&l);
}

/// Case 18: curl told to ignore every proxy setting.
fn case18_curl_noproxy_denied(user: User) {
    let w = World::new(user);
    let l = tcp_listener();
    let url = format!("http://127.0.0.1:{}/", port(&l));
    let out = run(&mut w.sandbox(
        &[] as &[&str],
        &[
            "curl",
            "-q",
            "-sS",
            "-v",
            "--noproxy",
            "*",
            "--max-time",
            "10",
            &url,
        ],
    ));
    // 7: couldn't connect. The verbose output carries the errno.
    assert_eq!(out.code(), Some(7), "{}", out.describe());
    assert!(
        TCP_DENIED_TEXT.iter().any(|t| out.stderr.contains(t)),
        "expected a denial, not a refused or timed-out connection\n{}",
        out.describe()
    );
    assert_no_tcp_connection(&l);
}

/// Three listeners for the CIDR cases: the allowed 127.0.0.1:P, another port on the same
/// address, and the allowed port on another loopback address (127.0.0.2:P).
struct CidrSetup {
    allowed: TcpListener,
    other_port: TcpListener,
    other_addr: TcpListener,
    profile: std::path::PathBuf,
}

impl CidrSetup {
    fn new(w: &World) -> CidrSetup {
        let allowed = tcp_listener();
        let p = port(&allowed);
        let other_addr = TcpListener::bind(("127.0.0.2", p)).expect("bind 127.0.0.2");
        other_addr.set_nonblocking(true).unwrap();
        let profile = w.profile_file(
            "net-one-port",
            &serde_json::json!({
                "extends": ["default"],
                "network": { "cidrs": [
                    { "cidr": "127.0.0.1/32", "protocol": "tcp", "ports": [p] }
                ] }
            }),
        );
        CidrSetup {
            allowed,
            other_port: tcp_listener(),
            other_addr,
            profile,
        }
    }

    fn probe(&self, w: &World, best_effort: bool) -> Finished {
        let mut args = vec!["--profile".to_string(), self.profile.display().to_string()];
        if best_effort {
            args.push("--best-effort".into());
        }
        let extra = serde_json::json!({
            "allowed": port(&self.allowed), "other": port(&self.other_port),
        });
        let code = format!(
            r#"{CONNECT}
attempt("allowed_port", lambda: connect("127.0.0.1", P["allowed"]))
attempt("other_port", lambda: connect("127.0.0.1", P["other"]))
attempt("other_addr", lambda: connect("127.0.0.2", P["allowed"]))
"#
        );
        w.probe_with(&args, &extra, &code)
    }
}

/// Case 18: a CIDR rule `127.0.0.1/32 tcp port P`. Landlock filters TCP by port only, so on
/// its own it would also allow 127.0.0.2:P. Without `--best-effort`, nono must either refuse to
/// start naming the rule, or enforce the rule exactly (another layer doing the addresses).
fn case18_cidr_port_rule_enforced_exactly_or_refused(user: User) {
    let w = World::new(user);
    let s = CidrSetup::new(&w);
    let out = s.probe(&w, false);
    if out.code() == Some(125) {
        assert!(
            out.stderr.contains("127.0.0.1"),
            "the refusal must name the rule it can't enforce\n{}",
            out.describe()
        );
        assert_no_tcp_connection(&s.allowed);
    } else {
        out.expect("allowed_port", "OK")
            .expect("other_port", "EACCES")
            .expect_one_of("other_addr", &["EACCES", "EPERM"]);
        assert_got_connection(&s.allowed);
        assert_no_tcp_connection(&s.other_addr);
    }
    assert_no_tcp_connection(&s.other_port);
}

/// Case 18 with `--best-effort`: the allowed port works, another port is denied, and if the
/// address part of the rule isn't enforced the warning on stderr says so.
fn case18_cidr_port_rule_best_effort_allows_only_its_port(user: User) {
    let w = World::new(user);
    let s = CidrSetup::new(&w);
    let out = s.probe(&w, true);
    out.expect("allowed_port", "OK")
        .expect("other_port", "EACCES");
    assert_got_connection(&s.allowed);
    assert_no_tcp_connection(&s.other_port);
    if out.result("other_addr") == "OK" {
        assert!(
            out.stderr.contains("127.0.0.1"),
            "127.0.0.2:{} was reachable, so the rule is only partly enforced, and \
             --best-effort must warn about it\n{}",
            port(&s.allowed),
            out.describe()
        );
    } else {
        assert_no_tcp_connection(&s.other_addr);
    }
}

/// `--block-net` wins over a profile that allows a port.
fn case18_block_net_overrides_profile_cidr(user: User) {
    let w = World::new(user);
    let s = CidrSetup::new(&w);
    let extra = serde_json::json!({ "allowed": port(&s.allowed) });
    let code = format!(
        r#"{CONNECT}
attempt("allowed_port", lambda: connect("127.0.0.1", P["allowed"]))
"#
    );
    let profile = s.profile.display().to_string();
    let out = w.probe_with(&["--profile", &profile, "--block-net"], &extra, &code);
    out.expect_one_of("allowed_port", TCP_DENIED);
    assert_no_tcp_connection(&s.allowed);
}

/// Case 18: TCP Fast Open. `sendto(MSG_FASTOPEN)` connects and sends in one call, without
/// `connect(2)`, where Landlock checks TCP connects: unconfined, it reached a loopback port no
/// rule allowed, data included. nono's seccomp filter refuses such sends (EPERM) whenever the
/// network is restricted, also to a port a rule allows; a plain `connect` there still works.
fn case18_tcp_fast_open_send_denied(user: User) {
    let w = World::new(user);
    let s = CidrSetup::new(&w);
    let other = tcp_listener();
    let extra = serde_json::json!({
        "allowed": port(&s.allowed),
        "other": port(&other),
    });
    let code = format!(
        r#"{CONNECT}
def fast_open(host, port, flags=0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.sendto(b"fast open", socket.MSG_FASTOPEN | flags, (host, port))
    s.close()
def fast_open_msg(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.sendmsg([b"fast open"], [], socket.MSG_FASTOPEN, (host, port))
    s.close()
attempt("tfo_other", lambda: fast_open("127.0.0.1", P["other"]))
attempt("tfo_other_nosignal", lambda: fast_open("127.0.0.1", P["other"], socket.MSG_NOSIGNAL))
attempt("tfo_msg_other", lambda: fast_open_msg("127.0.0.1", P["other"]))
attempt("tfo_allowed", lambda: fast_open("127.0.0.1", P["allowed"]))
attempt("connect_allowed", lambda: connect("127.0.0.1", P["allowed"]))
"#
    );
    let profile = s.profile.display().to_string();
    let out = w.probe_with(&["--profile", &profile, "--best-effort"], &extra, &code);
    out.expect("tfo_other", "EPERM")
        .expect("tfo_other_nosignal", "EPERM")
        .expect("tfo_msg_other", "EPERM")
        .expect("tfo_allowed", "EPERM")
        .expect("connect_allowed", "OK");
    // Exactly the plain connect arrived: none of the Fast Open sends did.
    assert_got_connection(&s.allowed);
    assert_no_tcp_connection(&s.allowed);
    assert_no_tcp_connection(&other);
}

/// Listening without a listen rule. `listen(2)` on a TCP socket never bound binds an
/// ephemeral port itself, without the bind check Landlock makes: unconfined, the socket served
/// on 0.0.0.0. The probe tries that and an explicit bind; both are refused (seccomp's EPERM for
/// `listen`, Landlock's EACCES for `bind`), and a connect from outside finds nothing to reach.
fn listen_without_a_rule_denied(user: User) {
    let w = World::new(user);
    let code = r#"
def unbound():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.listen(1)
    print("port", s.getsockname()[1], flush=True)
def unbound6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.listen(1)
def bound():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
attempt("listen_unbound", unbound)
attempt("listen_unbound6", unbound6)
attempt("bind_then_listen", bound)
"#;
    let out = w.probe_with(&[] as &[&str], &serde_json::json!({}), code);
    out.expect("listen_unbound", "EPERM")
        .expect("listen_unbound6", "EPERM")
        .expect_one_of("bind_then_listen", TCP_DENIED);
    assert!(
        !out.stdout.contains("port "),
        "a socket listened:\n{}",
        out.describe()
    );
}

/// Case 19: UDP (v4 and v6, sent to a loopback socket of the test), raw and ping sockets,
/// AF_PACKET, AF_NETLINK and AF_VSOCK. seccomp refuses the socket with EPERM.
fn case19_udp_raw_packet_netlink_vsock_sockets_denied(user: User) {
    let w = World::new(user);
    let udp = udp_listener();
    let extra = serde_json::json!({ "udp": udp.local_addr().unwrap().port() });
    let out = w.probe_with(
        &[] as &[&str],
        &extra,
        r#"
def udp_send():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"hello", ("127.0.0.1", P["udp"]))
attempt("udp_v4_send", udp_send)
attempt("udp_v6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
attempt("raw_icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("ping_dgram", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
attempt("netlink_route", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("vsock", lambda: socket.socket(40, socket.SOCK_STREAM, 0))
attempt("unix_pair", lambda: socket.socketpair())
"#,
    );
    for label in [
        "udp_v4_send",
        "udp_v6",
        "raw_icmp",
        "ping_dgram",
        "packet",
        "netlink_route",
        "vsock",
    ] {
        out.expect(label, "EPERM");
    }
    // Local IPC keeps working: the filter is on families, not on all sockets.
    out.expect("unix_pair", "OK");
    assert_no_datagram(&udp);
}

/// Case 20: io_uring would do opens and connects outside the syscall filter. It must be
/// unavailable (EPERM from seccomp, or ENOSYS if nono pretends the kernel lacks it). The
/// control run shows io_uring works on this machine without the sandbox.
fn case20_io_uring_setup_denied(user: User) {
    let w = World::new(user);
    let code = r#"
SYS_io_uring_setup = 425
params = ctypes.create_string_buffer(120)
def setup():
    fd = libc.syscall(SYS_io_uring_setup, 4, params)
    if fd >= 0:
        os.close(fd)
        return 0
    return -1
call("io_uring_setup", setup)
"#;
    let out = w.probe_with(&[] as &[&str], &serde_json::json!({}), code);
    out.expect_one_of("io_uring_setup", &["EPERM", "ENOSYS"]);
    w.unconfined_probe(&serde_json::json!({}), code)
        .expect("io_uring_setup", "OK");
}
