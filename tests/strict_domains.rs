//! `--strict-domains` (issue 7): domain rules through nono's proxy with a name check inside
//! each tunnel. In kernel mode (root, cgroup socket programs) the sandbox may connect to the
//! proxy only, so a program ignoring `HTTPS_PROXY` can't go around it; the proxy forwards a
//! tunnel only when the TLS ClientHello's SNI (or the HTTP Host) is the name it was allowed for.
//!
//! Every packet goes to loopback: the upstream is a test-served [`Zone`] on 127.0.0.1 (nono is
//! always given `--dns-upstream`), the servers listen on 127.0.0.2. Both names of the zone point
//! at that one address, as two names on a CDN address would: the SNI check is what tells them
//! apart. The ClientHellos are real ones, made by Python's `ssl` (OpenSSL) in memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nono_e2e::egress_support::Zone;
use nono_e2e::{run, User, World};

/// A server that records the first bytes of each connection and answers `got N`.
struct FirstBytes {
    port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FirstBytes {
    fn start(ip: &str) -> FirstBytes {
        let l = TcpListener::bind((ip, 0)).expect("bind the test server");
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut b = vec![0u8; 65536];
                let n = c.read(&mut b).unwrap_or(0);
                b.truncate(n);
                s.lock().unwrap().push(b);
                let _ = c.write_all(format!("got {n}\n").as_bytes());
            }
        });
        FirstBytes { port, seen }
    }

    fn connections(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

/// The sandboxed probe. `tls HOST SNI` opens a tunnel to HOST:P through `$HTTPS_PROXY` and
/// sends a ClientHello for SNI (`-`: none); `http HOST HOSTHEADER` sends an HTTP/1.1 head
/// instead; `direct IP`/`dns NAME` connect to IP:P without the proxy / look NAME up through
/// 127.0.0.9:53 (redirected to nono's resolver). Prints the proxy's status and the
/// server's reply, `CLOSED` when the tunnel ends without one, or the errno name.
const PROBE: &str = r#"
import errno, os, socket, ssl, struct, sys
P = int(sys.argv[1])
proxy = os.environ["HTTPS_PROXY"].removeprefix("http://")
ph, pp = proxy.rsplit(":", 1)
def hello(sni):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=None if sni == "-" else sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()
def tunnel(host, first):
    s = socket.create_connection((ph, int(pp)), timeout=10)
    s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, P, host, P)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            return "CLOSED before a status"
        head += c
    status = head.split(b"\r\n")[0].decode()
    if " 200 " not in status:
        return status
    s.sendall(first)
    reply = s.recv(4096).decode().strip()
    return "200 " + (reply or "CLOSED")
def lookup(name):
    # A hand-built A query to 127.0.0.9:53 (nothing listens there: the redirect takes it to
    # nono's resolver, and a broken redirect stays on loopback).
    q = struct.pack(">HHHHHH", 0x4e4f, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(q, ("127.0.0.9", 53))
    r = s.recv(4096)
    return socket.inet_ntoa(r[-4:]) if struct.unpack(">H", r[6:8])[0] else "-"
for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "tls":
            out = tunnel(cmd[1], hello(cmd[2]))
        elif cmd[0] == "http":
            out = tunnel(cmd[1], ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % cmd[2]).encode())
        elif cmd[0] == "direct":
            s = socket.create_connection((cmd[1], P), timeout=10)
            out = "OK"
        else:
            out = "OK " + lookup(cmd[1])
    except OSError as e:
        out = errno.errorcode.get(e.errno, str(e))
    print(out, flush=True)
"#;

/// Kernel mode with `--strict-domains`: an allowed name with its own SNI (or Host) is
/// forwarded; the other name on the same address in the ClientHello (domain fronting), a
/// ClientHello without SNI, and a wrong Host are refused before anything reaches the server; a
/// direct connect to the address, even after the sandbox resolved the allowed name itself, is
/// denied by the kernel (EPERM).
#[test]
fn kernel_mode_strict_domains_checks_the_name_inside_the_tunnel() {
    // Fails rather than skips without the kernel layer: a skipped test proves nothing.
    let version = run(std::process::Command::new(nono_e2e::nono_bin()).arg("--version"));
    assert!(
        version.stdout.contains("cgroup-sock"),
        "this nono has no kernel layer; build it with `cargo xtask ebpf`"
    );
    strict_domains(User::Root);
}

/// Unprivileged mode (as `nobody`, Landlock confining TCP to the proxy's port): the same name
/// checks; a direct connect fails with Landlock's EACCES.
#[test]
fn unprivileged_strict_domains_checks_the_name_inside_the_tunnel() {
    strict_domains(User::Nobody);
}

fn strict_domains(user: User) {
    let kernel = user == User::Root;
    let w = World::new(user);
    let zone = Zone::start();
    let server = FirstBytes::start("127.0.0.2");
    let port = server.port;
    zone.set("a.nono.test", &["127.0.0.2"], 60);
    zone.set("b.nono.test", &["127.0.0.2"], 60);
    let profile = w.profile_file(
        "strict",
        &serde_json::json!({
            "extends": ["default"],
            "network": { "domains": [{ "domain": "a.nono.test", "ports": [port] }] }
        }),
    );
    let upstream = zone.addr().to_string();
    let profile_arg = profile.display().to_string();
    let port_arg = port.to_string();
    let mut child = w
        .sandbox(
            &[
                "--profile",
                &profile_arg,
                "--dns-upstream",
                &upstream,
                "--allow-resolved",
                "127.0.0.0/8",
                "--strict-domains",
            ],
            &[nono_e2e::PYTHON, "-I", "-c", PROBE, &port_arg],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nono run");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before = Vec::new();
    let mode = loop {
        let Some(Ok(line)) = stderr.next() else {
            panic!(
                "nono run ended before saying which egress mode is active: {:?}\n{}",
                child.wait(),
                before.join("\n")
            );
        };
        if line.starts_with("nono: egress: ") {
            break line;
        }
        before.push(line);
    };
    let expected_mode = if kernel {
        "kernel mode"
    } else {
        "unprivileged mode"
    };
    assert!(
        mode.contains(expected_mode) && mode.contains("strict domains"),
        "expected {expected_mode} with strict domains: {mode}"
    );
    let denials = Arc::new(Mutex::new(Vec::new()));
    let d = denials.clone();
    std::thread::spawn(move || {
        for l in stderr.map_while(Result::ok) {
            eprintln!("{l}");
            d.lock().unwrap().push(l);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ask = |cmd: &str| -> String {
        writeln!(stdin, "{cmd}").unwrap();
        stdout.next().expect("a probe result").unwrap()
    };

    // Allowed name, its own SNI: the ClientHello reaches the server unchanged.
    let ok = ask("tls a.nono.test a.nono.test");
    assert!(ok.starts_with("200 got "), "{ok}");
    let seen = server.connections();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].first(), Some(&0x16), "a TLS handshake record");
    assert!(
        seen[0].windows(11).any(|w| w == b"a.nono.test"),
        "the ClientHello names a.nono.test"
    );
    // Case and a trailing dot in the SNI are normalised.
    assert!(ask("tls a.nono.test A.Nono.Test.").starts_with("200 got "));
    // Plain HTTP in the tunnel: the Host header decides.
    assert!(ask("http a.nono.test a.nono.test").starts_with("200 got "));
    assert_eq!(server.connections().len(), 3);

    // Domain fronting: allowed CONNECT name, the other name on that address in the SNI.
    assert_eq!(ask("tls a.nono.test b.nono.test"), "200 CLOSED");
    // No SNI at all, and a wrong Host: refused the same way.
    assert_eq!(ask("tls a.nono.test -"), "200 CLOSED");
    assert_eq!(ask("http a.nono.test b.nono.test:80"), "200 CLOSED");
    // The name not allowed at all: 403 before any tunnel.
    assert!(ask("tls b.nono.test b.nono.test").starts_with("HTTP/1.1 403"));
    assert_eq!(
        server.connections().len(),
        3,
        "a refused tunnel must never reach the server"
    );
    assert!(!zone.saw("b.nono.test"), "{:?}", zone.queried());

    if kernel {
        // Bypassing the proxy: the address is never opened to the sandbox, not even after
        // its own (redirected) lookup of the allowed name answered it.
        assert_eq!(ask("direct 127.0.0.2"), "EPERM");
        assert_eq!(ask("dns a.nono.test"), "OK 127.0.0.2");
        assert_eq!(ask("direct 127.0.0.2"), "EPERM");
    } else {
        // Landlock allows TCP connect to the proxy's port only; UDP is refused by seccomp.
        assert_eq!(ask("direct 127.0.0.2"), "EACCES");
        assert_eq!(ask("dns a.nono.test"), "EPERM");
    }
    assert_eq!(server.connections().len(), 3);

    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let denials = denials.lock().unwrap().join("\n");
    for why in [
        "asks for `b.nono.test` in a tunnel to `a.nono.test`",
        "no SNI",
        "is for `b.nono.test:80`",
    ] {
        assert!(
            denials.contains(why),
            "no refusal saying `{why}` in:\n{denials}"
        );
    }
    if kernel {
        // The kernel's denies of the direct connects name what the address was answered for
        // (the proxy's and the sandbox's lookups of a.nono.test), though strict mode opened it
        // to nobody in the sandbox.
        let events = w.latest_session_events();
        let direct: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| {
                e["kind"] == "net"
                    && e["denied"] == true
                    && e["object"] == format!("127.0.0.2:{port}")
            })
            .collect();
        assert_eq!(direct.len(), 2, "two direct connects denied: {direct:?}");
        for event in direct {
            assert_eq!(
                event["detail"]["name"]
                    .as_str()
                    .map(|n| n.trim_end_matches('.')),
                Some("a.nono.test"),
                "{event}"
            );
        }
    }
}
