//! Egress by domain (issue 7), unprivileged mode: nono's local proxy, Landlock confining TCP to
//! its port, seccomp refusing UDP; and nono's resolver served by `nono egress-serve`.
//!
//! Every packet goes to loopback: the upstream is a test-served [`Zone`] on 127.0.0.1 (nono is
//! always given `--dns-upstream`, never the machine's resolver) and the HTTP servers listen on
//! 127.0.0.2 to 127.0.0.6. The zone points names at loopback, which is a special range, so the
//! allowed cases pass `--allow-resolved 127.0.0.0/8` and one case in each mode shows the default
//! refusal. The metadata address (169.254.169.254) exists only on the loopback of a network
//! namespace the test creates, with the zone and the listener inside it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use nono_e2e::egress_support::{addresses, query_tcp, query_udp, HttpServer, Zone};
use nono_e2e::{
    as_root_and_nobody, assert_no_datagram, assert_no_tcp_connection, run, tcp_listener,
    udp_listener, Finished, User, World,
};

as_root_and_nobody!(
    udp_is_denied,
    resolver_answers_only_allowed_names,
    resolver_expires_addresses_after_their_ttl,
);

/// The proxy is the unprivileged mode: as root on a host whose cgroup socket programs load,
/// `nono run` enforces domains in the kernel instead (the `kernel_mode_*` tests below), so
/// these run as `nobody` only.
macro_rules! as_nobody {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn as_nobody() {
                    super::$name(nono_e2e::User::Nobody)
                }
            }
        )*
    };
}

// `each_connect_uses_the_current_answer_after_the_ttl` lets curl resolve through libc, which
// asks the machine's resolver: as root on a host where the cgroup programs load, that query
// leaves only if nono's redirect fails, and a test must not depend on that. The kernel mode's
// TTL case (`kernel_mode_resolver_allows_answered_addresses_until_their_ttl`) asks 127.0.0.9.
as_nobody!(
    each_connect_uses_the_current_answer_after_the_ttl,
    allow_domain_flag_runs_in_proxy_mode_instead_of_refusing,
    allowed_name_resolves_and_connects_through_the_proxy,
    name_not_allowed_is_refused_and_never_reaches_the_upstream,
    direct_connect_bypassing_the_proxy_is_denied,
    wildcards_lookalikes_case_and_trailing_dot,
    special_range_answers_are_refused_unless_allowed,
    the_proxy_port_reaches_the_proxy_and_nothing_else,
    proxy_decisions_are_in_the_audit_trail,
    listen_rules_in_proxy_mode_are_named_as_inside_only,
);

/// A profile allowing `domains` on `port` only.
fn profile(w: &World, domains: &[&str], port: u16) -> PathBuf {
    let entries: Vec<_> = domains
        .iter()
        .map(|d| serde_json::json!({ "domain": d, "ports": [port] }))
        .collect();
    w.profile_file(
        "egress",
        &serde_json::json!({ "extends": ["default"], "network": { "domains": entries } }),
    )
}

/// `nono run` arguments: the profile, the test zone as upstream, and optionally names allowed
/// to resolve into 127.0.0.0/8.
fn args(profile: &Path, zone: &Zone, loopback_allowed: bool) -> Vec<String> {
    let mut a = vec![
        "--profile".to_string(),
        profile.display().to_string(),
        "--dns-upstream".into(),
        zone.addr().to_string(),
    ];
    if loopback_allowed {
        a.extend(["--allow-resolved".into(), "127.0.0.0/8".into()]);
    }
    a
}

/// `curl` inside the sandbox: plain proxied HTTP, or a CONNECT tunnel with `tunnel`.
fn curl(w: &World, nono_args: &[String], url: &str, tunnel: bool) -> Finished {
    let mut cmd = vec!["curl", "-q", "-sS", "--fail", "--max-time", "20"];
    if tunnel {
        cmd.push("--proxytunnel");
    }
    cmd.push(url);
    run(&mut w.sandbox(nono_args, &cmd))
}

/// `--allow-domain` used to refuse unprivileged runs (nothing enforced names); now the command
/// runs, nono says the proxy mode is active, and the network stays closed to direct connects.
fn allow_domain_flag_runs_in_proxy_mode_instead_of_refusing(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let listener = tcp_listener();
    let upstream = zone.addr().to_string();
    let out = w.probe_with(
        &["--allow-domain", "example.com", "--dns-upstream", &upstream],
        &serde_json::json!({ "port": listener.local_addr().unwrap().port() }),
        r#"
def connect():
    s = socket.socket()
    s.settimeout(10)
    s.connect(("127.0.0.1", P["port"]))
attempt("tcp", connect)
"#,
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out.expect("tcp", "EACCES");
    assert!(
        out.stderr.contains("egress: unprivileged mode"),
        "{}",
        out.describe()
    );
    assert_no_tcp_connection(&listener);
    // --dry-run says the same before anything runs.
    let dry = run(&mut w.sandbox(
        &["--allow-domain", "example.com", "--dry-run"],
        &["/bin/true"],
    ));
    assert!(
        dry.stdout.contains("enforced by nono's local proxy") && dry.stdout.contains("Would run"),
        "{}",
        dry.describe()
    );
}

fn allowed_name_resolves_and_connects_through_the_proxy(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.2", 0);
    let port = server.addr.port();
    zone.set("a.nono.test", &["127.0.0.2"], 60);
    let p = profile(&w, &["a.nono.test"], port);
    let a = args(&p, &zone, true);
    let url = format!("http://a.nono.test:{port}/");
    for tunnel in [false, true] {
        let out = curl(&w, &a, &url, tunnel);
        assert_eq!(out.code(), Some(0), "tunnel={tunnel}\n{}", out.describe());
        assert_eq!(out.stdout, "served-by 127.0.0.2\n", "{}", out.describe());
        assert!(
            out.stderr.contains("egress: unprivileged mode") && out.stderr.contains("proxy"),
            "nono must say which mode is active\n{}",
            out.describe()
        );
    }
    assert_eq!(server.hits(), 2);
    assert!(zone.saw("a.nono.test"));
    // The command sees the proxy variables, and no bypass list.
    let out = w.probe_with(
        &a,
        &serde_json::json!({}),
        r#"
for v in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"]:
    show(v, os.environ.get(v, "unset").startswith("http://127.0.0.1:"))
show("NO_PROXY", repr(os.environ.get("NO_PROXY")))
show("no_proxy", repr(os.environ.get("no_proxy")))
"#,
    );
    for v in [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ] {
        assert_eq!(out.result(v), "True", "{v}\n{}", out.describe());
    }
    assert_eq!(out.result("NO_PROXY"), "''");
    assert_eq!(out.result("no_proxy"), "''");
}

fn name_not_allowed_is_refused_and_never_reaches_the_upstream(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.3", 0);
    let port = server.addr.port();
    zone.set("a.nono.test", &["127.0.0.3"], 60);
    zone.set("secret-data.exfil.nono.test", &["127.0.0.3"], 60);
    let p = profile(&w, &["a.nono.test"], port);
    let a = args(&p, &zone, true);
    for tunnel in [false, true] {
        let url = format!("http://secret-data.exfil.nono.test:{port}/");
        let out = curl(&w, &a, &url, tunnel);
        assert_ne!(out.code(), Some(0), "{}", out.describe());
        assert!(
            out.stderr.contains("egress denied") && out.stderr.contains("no domain rule allows"),
            "{}",
            out.describe()
        );
    }
    // An allowed name on a port its rule does not name is refused too, before any lookup.
    let out = curl(&w, &a, "http://a.nono.test:9/", true);
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stderr.contains("port(s)"), "{}", out.describe());
    assert!(
        zone.queried().is_empty(),
        "refused names reached the upstream: {:?}",
        zone.queried()
    );
    assert_eq!(server.hits(), 0);
}

fn direct_connect_bypassing_the_proxy_is_denied(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.4", 0);
    let port = server.addr.port();
    zone.set("a.nono.test", &["127.0.0.4"], 60);
    let p = profile(&w, &["a.nono.test"], port);
    let a = args(&p, &zone, true);
    // The address the allowed name resolves to, and its port, connected to directly.
    let out = w.probe_with(
        &a,
        &serde_json::json!({ "port": port }),
        r#"
def direct():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(("127.0.0.4", P["port"]))
attempt("direct", direct)
"#,
    );
    out.expect("direct", "EACCES");
    // curl told to ignore the proxy fails the same way.
    let url = format!("http://127.0.0.4:{port}/");
    let cmd = [
        "curl",
        "-q",
        "-sS",
        "--noproxy",
        "*",
        "--max-time",
        "10",
        &url,
    ];
    let out = run(&mut w.sandbox(&a, &cmd));
    assert_eq!(out.code(), Some(7), "{}", out.describe());
    // And an IP literal through the proxy: no CIDR rule allows it.
    let out = curl(&w, &a, &url, true);
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stderr.contains("CIDR rule"), "{}", out.describe());
    assert_eq!(server.hits(), 0, "the target saw a connection");
}

/// Landlock filters TCP connect by port only, so the proxy's Landlock rule opens its port number
/// on every address. Before the command had a network namespace of its own, any host listening
/// on that port number was reachable from the sandbox: here, a listener on 127.0.0.2 that the
/// test binds once the command has said which port its proxy is on. Now that address has no
/// listener in the command's namespace (ECONNREFUSED, and the host's listener sees nothing),
/// the only interface there is `lo`, and the proxy still answers.
fn the_proxy_port_reaches_the_proxy_and_nothing_else(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.5", 0);
    let port = server.addr.port();
    zone.set("a.nono.test", &["127.0.0.5"], 60);
    let p = profile(&w, &["a.nono.test"], port);
    let a = args(&p, &zone, true);
    let mut cmd = w.probe_command(
        &a,
        &serde_json::json!({ "port": port }),
        r#"
proxy_port = int(os.environ["HTTPS_PROXY"].rsplit(":", 1)[1])
show("proxy_port", proxy_port)
sys.stdin.readline()
def connect(host, port):
    s = socket.socket()
    s.settimeout(10)
    s.connect((host, port))
    return s
attempt("same_port_other_address", lambda: connect("127.0.0.2", proxy_port))
def through_proxy():
    s = connect("127.0.0.1", proxy_port)
    s.sendall(b"GET http://a.nono.test:%d/ HTTP/1.0\r\n\r\n" % P["port"])
    reply = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    if b"served-by 127.0.0.5" not in reply:
        raise OSError(errno.EPROTO, repr(reply[:200]))
attempt("through_proxy", through_proxy)
lines = open("/proc/self/net/dev").read().splitlines()[2:]
show("interfaces", ",".join(sorted(l.split(":")[0].strip() for l in lines)))
"#,
    );
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = nono_e2e::spawn(&mut cmd);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let _ = writeln!(stdin, "{}", child.id());
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut first = String::new();
    let _ = stdout.read_line(&mut first);
    let proxy_port: u16 = first
        .trim()
        .strip_prefix("proxy_port=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no proxy port from the probe: {first:?}"));
    // The host side of the old hole: something else listening on the proxy's port number.
    let elsewhere = std::net::TcpListener::bind(("127.0.0.2", proxy_port))
        .expect("bind 127.0.0.2 on the proxy's port number");
    elsewhere.set_nonblocking(true).unwrap();
    let _ = writeln!(stdin, "go");
    drop(stdin);
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        rest
    });
    let mut out = nono_e2e::wait_with_timeout(child, Duration::from_secs(60));
    out.stdout = format!("{first}{}", rest.join().expect("the stdout reader"));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out.expect("same_port_other_address", "ECONNREFUSED")
        .expect("through_proxy", "OK");
    assert_eq!(out.result("interfaces"), "lo", "{}", out.describe());
    assert_no_tcp_connection(&elsewhere);
    assert_eq!(server.hits(), 1);
    assert!(
        out.stderr.contains("network namespace of its own"),
        "{}",
        out.describe()
    );
}

/// The proxy's decisions are audit events, as the kernel programs' are in kernel mode: a
/// refused name (no address: it was never resolved) and, under `audit all`, an allowed request
/// with the address it went to, the name and the rule that allowed it.
fn proxy_decisions_are_in_the_audit_trail(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.6", 0);
    let port = server.addr.port();
    zone.set("a.nono.test", &["127.0.0.6"], 60);
    zone.set("exfil.nono.test", &["127.0.0.6"], 60);
    let p = w.profile_file(
        "egress-audit",
        &serde_json::json!({
            "extends": ["default"],
            "audit": { "level": "all" },
            "network": { "domains": [{ "domain": "a.nono.test", "ports": [port] }] },
        }),
    );
    let a = args(&p, &zone, true);
    let script = format!(
        "curl -q -sS --fail --max-time 20 http://a.nono.test:{port}/ && \
         ! curl -q -sS --fail --max-time 20 http://exfil.nono.test:{port}/"
    );
    let out = run(&mut w.sandbox(&a, &["sh", "-c", &script]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let proxy: Vec<serde_json::Value> = w
        .latest_session_events()
        .into_iter()
        .filter(|e| e["kind"] == "net" && e["op"] == "proxy")
        .collect();
    let allowed = proxy
        .iter()
        .find(|e| e["denied"] == false)
        .unwrap_or_else(|| panic!("no allowed proxy event in {proxy:#?}"));
    assert_eq!(allowed["detail"]["name"], "a.nono.test", "{allowed:#}");
    assert_eq!(allowed["detail"]["addr"], "127.0.0.6", "{allowed:#}");
    assert_eq!(allowed["detail"]["port"], port, "{allowed:#}");
    assert!(
        allowed["rule_source"]
            .as_str()
            .is_some_and(|s| s.contains("egress-audit")),
        "the allowing rule's source: {allowed:#}"
    );
    let refused = proxy
        .iter()
        .find(|e| e["denied"] == true)
        .unwrap_or_else(|| panic!("no refused proxy event in {proxy:#?}"));
    assert_eq!(refused["detail"]["name"], "exfil.nono.test", "{refused:#}");
    assert!(refused["detail"].get("addr").is_none(), "{refused:#}");
    assert_eq!(
        refused["object"],
        format!("exfil.nono.test:{port}"),
        "{refused:#}"
    );
    assert_eq!(server.hits(), 1);
}

/// A server the profile lets the command run listens in the command's own network namespace:
/// nono says it is reachable from inside the sandbox only (listen rules are a gap without the
/// kernel layer, so this runs with `--best-effort`).
fn listen_rules_in_proxy_mode_are_named_as_inside_only(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let p = w.profile_file(
        "egress-listen",
        &serde_json::json!({
            "extends": ["default"],
            "network": {
                "domains": [{ "domain": "a.nono.test" }],
                "listen": [{ "protocol": "tcp", "ports": [3000] }],
            },
        }),
    );
    let mut a = args(&p, &zone, false);
    a.push("--best-effort".into());
    let out = run(&mut w.sandbox(&a, &["/bin/true"]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stderr
            .contains("(TCP port 3000) listen in its own network namespace"),
        "{}",
        out.describe()
    );
}

fn udp_is_denied(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let target = udp_listener();
    let p = profile(&w, &["a.nono.test"], 443);
    let a = args(&p, &zone, true);
    let out = w.probe_with(
        &a,
        &serde_json::json!({ "zone": zone.addr().port(), "udp": target.local_addr().unwrap().port() }),
        r#"
def send(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x00\x00\x01\x00\x01", ("127.0.0.1", port))
attempt("dns_to_upstream", lambda: send(P["zone"]))
attempt("udp_other", lambda: send(P["udp"]))
"#,
    );
    out.expect("dns_to_upstream", "EPERM")
        .expect("udp_other", "EPERM");
    assert_no_datagram(&target);
    assert!(zone.queried().is_empty(), "{:?}", zone.queried());
}

fn wildcards_lookalikes_case_and_trailing_dot(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.5", 0);
    let port = server.addr.port();
    for n in [
        "api.example.nono.test",
        "deep.api.example.nono.test",
        "example.nono.test",
        "evilexample.nono.test",
        "example.nono.test.evil.nono.test",
    ] {
        zone.set(n, &["127.0.0.5"], 60);
    }
    let p = profile(&w, &["*.example.nono.test"], port);
    let a = args(&p, &zone, true);
    for (host, allowed) in [
        ("api.example.nono.test", true),
        ("deep.api.example.nono.test", true),
        ("API.Example.NONO.test", true),
        ("api.example.nono.test.", true),
        ("example.nono.test", false),
        ("evilexample.nono.test", false),
        ("example.nono.test.evil.nono.test", false),
    ] {
        let url = format!("http://{host}:{port}/");
        let out = curl(&w, &a, &url, true);
        if allowed {
            assert_eq!(out.code(), Some(0), "{host}\n{}", out.describe());
            assert_eq!(out.stdout, "served-by 127.0.0.5\n");
        } else {
            assert_ne!(out.code(), Some(0), "{host}\n{}", out.describe());
            assert!(
                out.stderr.contains("no domain rule allows"),
                "{}",
                out.describe()
            );
        }
    }
    assert_eq!(server.hits(), 4);
    for refused in [
        "example.nono.test",
        "evilexample.nono.test",
        "example.nono.test.evil.nono.test",
    ] {
        assert!(!zone.saw(refused), "{refused} reached the upstream");
    }
}

fn special_range_answers_are_refused_unless_allowed(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.6", 0);
    let port = server.addr.port();
    zone.set("lo.nono.test", &["127.0.0.6"], 60);
    zone.set("metadata.nono.test", &["169.254.169.254"], 60);
    let p = profile(&w, &["lo.nono.test", "metadata.nono.test"], port);
    // By default neither the loopback nor the metadata answer is usable.
    let strict = args(&p, &zone, false);
    for host in ["lo.nono.test", "metadata.nono.test"] {
        let out = curl(&w, &strict, &format!("http://{host}:{port}/"), true);
        assert_ne!(out.code(), Some(0), "{host}\n{}", out.describe());
        assert!(out.stderr.contains("special-range"), "{}", out.describe());
    }
    assert_eq!(server.hits(), 0);
    // --allow-resolved 127.0.0.0/8 opens loopback answers, not link-local ones.
    let loopback = args(&p, &zone, true);
    let out = curl(&w, &loopback, &format!("http://lo.nono.test:{port}/"), true);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(server.hits(), 1);
    let out = curl(
        &w,
        &loopback,
        &format!("http://metadata.nono.test:{port}/"),
        true,
    );
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("169.254.169.254 (link-local"),
        "{}",
        out.describe()
    );
}

fn each_connect_uses_the_current_answer_after_the_ttl(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    let old = HttpServer::start("127.0.0.2", 0);
    let port = old.addr.port();
    let new = HttpServer::start("127.0.0.3", port);
    zone.set_steps("t.nono.test", &[(&["127.0.0.2"], 1), (&["127.0.0.3"], 1)]);
    let p = profile(&w, &["t.nono.test"], port);
    let a = args(&p, &zone, true);
    let url = format!("http://t.nono.test:{port}/");
    let script = format!(
        "curl -q -sS --proxytunnel --max-time 10 {url} && sleep 2 && \
         curl -q -sS --proxytunnel --max-time 10 {url}"
    );
    let out = run(&mut w.sandbox(&a, &["/bin/sh", "-c", &script]));
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.stdout, "served-by 127.0.0.2\nserved-by 127.0.0.3\n");
    assert_eq!((old.hits(), new.hits()), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// The resolver itself, served by `nono egress-serve`

/// `nono egress-serve` as the test's user; its first line (the bound addresses) and the rest
/// of its stdout (one JSON event per line).
struct Served {
    child: Child,
    dns: std::net::SocketAddr,
    events: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Served {
    fn start(w: &World, zone: &Zone, domains: &[&str], loopback_allowed: bool) -> Served {
        let mut a = vec![
            "egress-serve".to_string(),
            "--dns".into(),
            "127.0.0.1:0".into(),
            "--dns-upstream".into(),
            zone.addr().to_string(),
        ];
        for d in domains {
            a.extend(["--allow-domain".to_string(), d.to_string()]);
        }
        if loopback_allowed {
            a.extend(["--allow-resolved".into(), "127.0.0.0/8".into()]);
        }
        let mut child = w
            .nono(&a)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start nono egress-serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().expect("a first line").unwrap()).unwrap();
        let dns = first["dns"].as_str().unwrap().parse().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                    return;
                }
            }
        });
        Served { child, dns, events }
    }

    fn next_event(&self, timeout: Duration) -> Option<serde_json::Value> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn resolver_answers_only_allowed_names(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    zone.set("a.nono.test", &["127.0.0.2", "93.184.216.34"], 60);
    zone.set("b.nono.test", &["127.0.0.3"], 60);
    zone.set(
        "mixed.nono.test",
        &["169.254.169.254", "10.0.0.1", "93.184.216.34"],
        60,
    );
    let s = Served::start(&w, &zone, &["a.nono.test", "mixed.nono.test"], true);

    let r = query_udp(s.dns, "A.nono.TEST.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        addresses(&r),
        vec![
            "127.0.0.2".parse::<std::net::IpAddr>().unwrap(),
            "93.184.216.34".parse().unwrap()
        ]
    );
    // Every returned address reached the sink before the answer.
    let mut allowed = Vec::new();
    while let Some(e) = s.next_event(Duration::from_millis(200)) {
        assert_eq!(e["event"], "allow");
        assert_eq!(e["name"], "a.nono.test");
        assert_eq!(e["ports"], "80,443");
        allowed.push(e["addr"].as_str().unwrap().to_string());
    }
    assert_eq!(allowed, ["127.0.0.2", "93.184.216.34"]);

    // Not allowed: REFUSED over UDP and TCP, and never forwarded.
    for r in [
        query_udp(s.dns, "b.nono.test.", RecordType::A),
        query_tcp(s.dns, "b.nono.test.", RecordType::A),
        query_udp(s.dns, "x.a.nono.test.", RecordType::A),
    ] {
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(r.answers.is_empty());
    }
    assert!(
        !zone.saw("b.nono.test") && !zone.saw("x.a.nono.test"),
        "{:?}",
        zone.queried()
    );

    // TCP answers allowed names too.
    let r = query_tcp(s.dns, "a.nono.test.", RecordType::A);
    assert_eq!(addresses(&r).len(), 2);

    // Special ranges are stripped even with --allow-resolved for loopback.
    let r = query_udp(s.dns, "mixed.nono.test.", RecordType::A);
    assert_eq!(
        addresses(&r),
        vec!["93.184.216.34".parse::<std::net::IpAddr>().unwrap()]
    );
}

fn resolver_expires_addresses_after_their_ttl(user: User) {
    let w = World::new(user);
    let zone = Zone::start();
    zone.set_steps("t.nono.test", &[(&["127.0.0.2"], 1), (&["127.0.0.3"], 1)]);
    let s = Served::start(&w, &zone, &["t.nono.test"], true);
    let r = query_udp(s.dns, "t.nono.test.", RecordType::A);
    assert_eq!(
        addresses(&r),
        vec!["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(r.answers[0].ttl, 1, "the client sees the upstream's TTL");
    let e = s.next_event(Duration::from_secs(5)).expect("allow event");
    assert_eq!(
        (e["event"].as_str(), e["addr"].as_str()),
        (Some("allow"), Some("127.0.0.2"))
    );
    let started = Instant::now();
    let e = s.next_event(Duration::from_secs(10)).expect("expire event");
    assert_eq!(
        (e["event"].as_str(), e["addr"].as_str()),
        (Some("expire"), Some("127.0.0.2"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The name moved: only the new address is allowed now.
    let r = query_udp(s.dns, "t.nono.test.", RecordType::A);
    assert_eq!(
        addresses(&r),
        vec!["127.0.0.3".parse::<std::net::IpAddr>().unwrap()]
    );
    let e = s.next_event(Duration::from_secs(5)).expect("allow event");
    assert_eq!(
        (e["event"].as_str(), e["addr"].as_str()),
        (Some("allow"), Some("127.0.0.3"))
    );
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------------------------
// Kernel mode, natively: the resolver feeding the cgroup socket programs' maps

/// `nono run` as root with the kernel layer's network part: spawns `probe` (a line-driven Python
/// loop) with `profile`, the test zone as upstream and `--allow-resolved 127.0.0.0/8`, waits for
/// the line saying the kernel mode is active and returns the child, its resolver's address, and
/// a function asking the probe.
fn start_kernel_mode(
    w: &World,
    zone: &Zone,
    profile: &Path,
    probe: &str,
) -> (Child, std::net::SocketAddr, impl FnMut(&str) -> String) {
    spawn_kernel_mode(kernel_mode_command(w, &args(profile, zone, true), probe))
}

/// The `nono run` command of [`start_kernel_mode`] with these arguments.
fn kernel_mode_command(w: &World, nono_args: &[String], probe: &str) -> Command {
    w.sandbox(nono_args, &[nono_e2e::PYTHON, "-I", "-c", probe])
}

/// [`start_kernel_mode`] for a command built by the caller (other arguments, another network
/// namespace).
fn spawn_kernel_mode(
    mut cmd: Command,
) -> (Child, std::net::SocketAddr, impl FnMut(&str) -> String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nono run");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let resolver: std::net::SocketAddr = loop {
        let line = stderr
            .next()
            .expect("nono run ended before saying which egress mode is active")
            .unwrap();
        assert!(
            !line.contains("egress: unprivileged mode"),
            "as root with the network programs, nono must not fall back to the proxy: {line}"
        );
        if let Some(rest) = line.strip_prefix("nono: egress: kernel mode: resolver at ") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || {
        for l in stderr.map_while(Result::ok) {
            eprintln!("{l}");
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let ask = move |cmd: &str| -> String {
        writeln!(stdin, "{cmd}").unwrap();
        stdout.next().expect("a probe result").unwrap()
    };
    (child, resolver, ask)
}

/// One kernel-mode test at a time: every run reads the shared ring buffer for the audit trail
/// and discards other sandboxes' events, so concurrent runs may miss each other's denies.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A kernel-mode test's set-up: the serial lock and a world as root. A nono that can't load
/// the network programs fails the test, as in `kernel_net.rs`: a skipped test proves nothing.
fn kernel_mode_world() -> (std::sync::MutexGuard<'static, ()>, World) {
    let serial = serial();
    assert_cgroup_sock();
    (serial, World::new(User::Root))
}

/// This nono has the kernel layer's network programs built in.
fn assert_cgroup_sock() {
    let version = run(std::process::Command::new(nono_e2e::nono_bin()).arg("--version"));
    assert!(
        version.stdout.contains("cgroup-sock"),
        "this nono has no kernel layer ({}); build it with `cargo xtask ebpf` (the README's \
         test command does)",
        version.stdout.trim()
    );
}

/// `nono run` with domain rules, as root: nothing is reachable until nono's resolver answers
/// for an allowed name; then exactly the answered address is, on the rule's port, until its TTL
/// ends, from an IPv4 socket and in IPv4-mapped form from a dual-stack one. The sandboxed probe connects on the test's command, and the test queries nono's
/// resolver from outside (the redirect of the sandbox's own queries is the next test).
#[test]
fn kernel_mode_resolver_allows_answered_addresses_until_their_ttl() {
    let (_serial, w) = kernel_mode_world();
    let zone = Zone::start();
    let a = HttpServer::start("127.0.0.2", 0);
    let port = a.addr.port();
    let b = HttpServer::start("127.0.0.3", port);
    let t_old = HttpServer::start("127.0.0.4", port);
    let t_new = HttpServer::start("127.0.0.5", port);
    zone.set("a.nono.test", &["127.0.0.2"], 60);
    zone.set("b.nono.test", &["127.0.0.3"], 60);
    zone.set_steps("t.nono.test", &[(&["127.0.0.4"], 1), (&["127.0.0.5"], 1)]);
    let probe = r#"
import errno, socket, sys
for line in sys.stdin:
    ip, port = line.split()
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
    s.settimeout(5)
    try:
        s.connect((ip, int(port)))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        print("OK " + reply.decode().split("\r\n\r\n", 1)[-1].strip(), flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    s.close()
"#;
    let profile = profile(&w, &["a.nono.test", "t.nono.test"], port);
    let (mut child, resolver, mut ask) = start_kernel_mode(&w, &zone, &profile, probe);
    let mut connect = |ip: &str| ask(&format!("{ip} {port}"));

    // Nothing is allowed before an answer.
    assert_eq!(connect("127.0.0.2"), "EPERM");
    // An answer for an allowed name opens exactly its address.
    let r = query_udp(resolver, "a.nono.test.", RecordType::A);
    assert_eq!(
        addresses(&r),
        vec!["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(connect("127.0.0.2"), "OK served-by 127.0.0.2");
    // The same address from a dual-stack socket, in IPv4-mapped form (what Java does).
    assert_eq!(connect("::ffff:127.0.0.2"), "OK served-by 127.0.0.2");
    // A non-allowed name: REFUSED, never forwarded, its address stays closed.
    let r = query_udp(resolver, "b.nono.test.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(!zone.saw("b.nono.test"));
    assert_eq!(connect("127.0.0.3"), "EPERM");
    assert_eq!(connect("::ffff:127.0.0.3"), "EPERM");
    // TTL: the old address closes when the TTL ends; the new answer opens the new one.
    let r = query_udp(resolver, "t.nono.test.", RecordType::A);
    assert_eq!(
        addresses(&r),
        vec!["127.0.0.4".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(connect("127.0.0.4"), "OK served-by 127.0.0.4");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(connect("127.0.0.4"), "EPERM");
    let r = query_udp(resolver, "t.nono.test.", RecordType::A);
    assert_eq!(
        addresses(&r),
        vec!["127.0.0.5".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(connect("127.0.0.5"), "OK served-by 127.0.0.5");
    assert_eq!(connect("127.0.0.4"), "EPERM");

    // Closing the probe's stdin ends it.
    drop(ask);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        (a.hits(), b.hits(), t_old.hits(), t_new.hits()),
        (2, 0, 1, 1)
    );
    // The audit trail has the kernel's denies, the one after the TTL naming what was asked.
    let events = w.latest_session_events();
    let net_denies: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "net" && e["denied"] == true)
        .collect();
    let expired = net_denies
        .iter()
        .find(|e| e["object"] == format!("127.0.0.4:{port}"))
        .unwrap_or_else(|| panic!("no deny of 127.0.0.4 in {net_denies:?}"));
    assert_eq!(
        expired["detail"]["name"]
            .as_str()
            .map(|n| n.trim_end_matches('.')),
        Some("t.nono.test"),
        "{expired}"
    );
    let unresolved = net_denies
        .iter()
        .find(|e| e["object"] == format!("127.0.0.3:{port}"))
        .unwrap_or_else(|| panic!("no deny of 127.0.0.3 in {net_denies:?}"));
    assert!(unresolved["detail"]["name"].is_null(), "{unresolved}");
}

/// The sandboxed probe of the kernel-mode DNS tests: `udp NAME [SERVER]` / `tcp NAME [SERVER]`
/// query SERVER port 53, by default 127.0.0.9 (nothing listens there, so a broken redirect
/// stays on loopback; an IPv6 SERVER uses an AF_INET6 socket), `connect IP PORT`, and
/// `udp-other` (a datagram to 127.0.0.9:54). NAME may end in a dot (the absolute form, the same
/// query on the wire). A query built by hand: the probe is plain Python,
/// and the test only reads the header's rcode and the single A record a filtered answer carries.
const DNS_PROBE: &str = r#"
import errno, socket, struct, sys
def query(name, tcp, server):
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    q = struct.pack(">HHHHHH", 0x4e4f, 0x0100, 1, 0, 0, 0)
    # A trailing dot is the absolute form: on the wire every name ends in the root label.
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    q += b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"
    q += struct.pack(">HH", 1, 1)
    if tcp:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((server, 53))
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
        # getpeername() shows the resolver for TCP (no getpeername hook): not compared.
        r, frm = s.recv(n, socket.MSG_WAITALL), ("-", 0)
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q, (server, 53))
        r, frm = s.recvfrom(4096)
    ancount = struct.unpack(">H", r[6:8])[0]
    addr = socket.inet_ntoa(r[-4:]) if ancount else "-"
    return "rcode=%d from=%s:%d addr=%s" % (r[3] & 0xF, frm[0], frm[1], addr)
def connect(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((ip, port))
    return "OK"
def udp_other():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.9", 54))
    return "OK"
for line in sys.stdin:
    cmd = line.split()
    try:
        server = cmd[2] if len(cmd) > 2 else "127.0.0.9"
        if cmd[0] == "udp":
            out = query(cmd[1], False, server)
        elif cmd[0] == "tcp":
            out = query(cmd[1], True, server)
        elif cmd[0] == "connect":
            out = connect(cmd[1], int(cmd[2]))
        else:
            out = udp_other()
    except OSError as e:
        out = errno.errorcode.get(e.errno, str(e.errno))
    print(out, flush=True)
"#;

/// The DNS redirect: whatever server the sandboxed program asks on port 53 (here 127.0.0.9,
/// where nothing listens, so a broken redirect stays on loopback), UDP and TCP queries reach
/// nono's resolver; the UDP reply appears to come from the server asked; a refused name never
/// reaches the upstream; an answer opens its address.
#[test]
fn kernel_mode_port_53_is_redirected_to_nono_resolver() {
    let (_serial, w) = kernel_mode_world();
    let zone = Zone::start();
    let a = HttpServer::start("127.0.0.2", 0);
    let port = a.addr.port();
    zone.set("a.nono.test", &["127.0.0.2"], 60);
    zone.set("b.nono.test", &["127.0.0.3"], 60);
    let profile = profile(&w, &["a.nono.test"], port);
    let (mut child, _, mut ask) = start_kernel_mode(&w, &zone, &profile, DNS_PROBE);

    assert_eq!(ask(&format!("connect 127.0.0.2 {port}")), "EPERM");
    assert_eq!(
        ask("udp a.nono.test"),
        "rcode=0 from=127.0.0.9:53 addr=127.0.0.2",
        "the redirected UDP reply must look like it came from the server asked"
    );
    assert_eq!(ask(&format!("connect 127.0.0.2 {port}")), "OK");
    assert_eq!(ask("tcp a.nono.test"), "rcode=0 from=-:0 addr=127.0.0.2");
    assert_eq!(ask("udp b.nono.test"), "rcode=5 from=127.0.0.9:53 addr=-");
    assert_eq!(ask("tcp b.nono.test"), "rcode=5 from=-:0 addr=-");
    assert!(!zone.saw("b.nono.test"), "{:?}", zone.queried());
    assert_eq!(ask("udp-other"), "EPERM", "only port 53 is redirected");
    drop(ask);
    assert!(child.wait().unwrap().success());
    // The probe only connected; the server thread accepts from its backlog shortly after.
    nono_e2e::wait_until(Duration::from_secs(5), || a.hits() == 1);
    assert_eq!(a.hits(), 1);
}

/// Kernel mode, through the sandbox's own (redirected) DNS: wildcard semantics, look-alike
/// names and case are decided as in the proxy mode; refused names never reach the upstream;
/// an allowed name resolving into a special range (here the metadata address) gets no address,
/// even with `--allow-resolved 127.0.0.0/8`, so nothing opens (and the test sends nothing
/// there); an allowed name on loopback opens only with that flag (always given here).
#[test]
fn kernel_mode_wildcards_lookalikes_and_special_ranges() {
    let (_serial, w) = kernel_mode_world();
    let zone = Zone::start();
    let server = HttpServer::start("127.0.0.5", 0);
    let port = server.addr.port();
    let lo = HttpServer::start("127.0.0.6", port);
    for n in [
        "api.example.nono.test",
        "deep.api.example.nono.test",
        "example.nono.test",
        "evilexample.nono.test",
        "example.nono.test.evil.nono.test",
    ] {
        zone.set(n, &["127.0.0.5"], 60);
    }
    zone.set("lo.nono.test", &["127.0.0.6"], 60);
    zone.set("metadata.nono.test", &["169.254.169.254"], 60);
    let profile = profile(
        &w,
        &["*.example.nono.test", "lo.nono.test", "metadata.nono.test"],
        port,
    );
    let (mut child, _, mut ask) = start_kernel_mode(&w, &zone, &profile, DNS_PROBE);

    // Nothing is open before an answer; refused look-alikes open nothing either.
    assert_eq!(ask(&format!("connect 127.0.0.5 {port}")), "EPERM");
    for refused in [
        "example.nono.test",
        "evilexample.nono.test",
        "example.nono.test.evil.nono.test",
    ] {
        assert_eq!(
            ask(&format!("udp {refused}")),
            "rcode=5 from=127.0.0.9:53 addr=-",
            "{refused}"
        );
    }
    assert_eq!(ask(&format!("connect 127.0.0.5 {port}")), "EPERM");
    for allowed in [
        "api.example.nono.test",
        "deep.api.example.nono.test",
        "API.Example.NONO.test",
    ] {
        assert_eq!(
            ask(&format!("udp {allowed}")),
            "rcode=0 from=127.0.0.9:53 addr=127.0.0.5",
            "{allowed}"
        );
    }
    assert_eq!(ask(&format!("connect 127.0.0.5 {port}")), "OK");
    // The metadata answer is stripped: no address comes back, none is opened.
    let meta = ask("udp metadata.nono.test");
    assert!(meta.ends_with("addr=-"), "{meta}");
    // Loopback with --allow-resolved 127.0.0.0/8: open after the answer, not before.
    assert_eq!(ask(&format!("connect 127.0.0.6 {port}")), "EPERM");
    assert_eq!(
        ask("udp lo.nono.test"),
        "rcode=0 from=127.0.0.9:53 addr=127.0.0.6"
    );
    assert_eq!(ask(&format!("connect 127.0.0.6 {port}")), "OK");
    drop(ask);
    assert!(child.wait().unwrap().success());
    for refused in [
        "example.nono.test",
        "evilexample.nono.test",
        "example.nono.test.evil.nono.test",
    ] {
        assert!(!zone.saw(refused), "{refused} reached the upstream");
    }
    nono_e2e::wait_until(Duration::from_secs(5), || {
        server.hits() == 1 && lo.hits() == 1
    });
    assert_eq!((server.hits(), lo.hits()), (1, 1));
}

/// IPv6 port 53 is redirected too: a native IPv6 server (`::1`, where nothing listens on port
/// 53 here, so a broken redirect stays on loopback) goes to nono's resolver on `[::1]`, and an
/// IPv4-mapped one (`::ffff:127.0.0.9`, a dual-stack socket asking an IPv4 server) to the IPv4
/// resolver; UDP replies appear to come from the server asked, in the form it was asked; a
/// refused name never reaches the upstream; an allowed one opens its address.
#[test]
fn kernel_mode_ipv6_port_53_is_redirected_to_nono_resolver() {
    let _serial = serial();
    assert_cgroup_sock();
    assert!(
        std::net::UdpSocket::bind("[::1]:0").is_ok(),
        "this test needs IPv6 loopback (::1)"
    );
    let w = World::new(User::Root);
    let zone = Zone::start();
    let a = HttpServer::start("127.0.0.2", 0);
    let port = a.addr.port();
    zone.set("a.nono.test", &["127.0.0.2"], 60);
    zone.set("b.nono.test", &["127.0.0.3"], 60);
    let profile = profile(&w, &["a.nono.test"], port);
    let (mut child, _, mut ask) = start_kernel_mode(&w, &zone, &profile, DNS_PROBE);

    assert_eq!(ask(&format!("connect 127.0.0.2 {port}")), "EPERM");
    assert_eq!(
        ask("udp a.nono.test ::1"),
        "rcode=0 from=::1:53 addr=127.0.0.2",
        "a native IPv6 UDP query must reach the resolver, its reply seem to come from ::1:53"
    );
    assert_eq!(ask(&format!("connect 127.0.0.2 {port}")), "OK");
    assert_eq!(
        ask("tcp a.nono.test ::1"),
        "rcode=0 from=-:0 addr=127.0.0.2"
    );
    assert_eq!(
        ask("udp a.nono.test ::ffff:127.0.0.9"),
        "rcode=0 from=::ffff:127.0.0.9:53 addr=127.0.0.2",
        "a mapped UDP query must reach the resolver, its reply seem to come from the server asked"
    );
    assert_eq!(
        ask("tcp a.nono.test ::ffff:127.0.0.9"),
        "rcode=0 from=-:0 addr=127.0.0.2"
    );
    for server in ["::1", "::ffff:127.0.0.9"] {
        assert_eq!(
            ask(&format!("udp b.nono.test {server}")),
            format!("rcode=5 from={server}:53 addr=-")
        );
        assert_eq!(
            ask(&format!("tcp b.nono.test {server}")),
            "rcode=5 from=-:0 addr=-"
        );
    }
    assert!(!zone.saw("b.nono.test"), "{:?}", zone.queried());
    drop(ask);
    assert!(child.wait().unwrap().success());
    nono_e2e::wait_until(Duration::from_secs(5), || a.hits() == 1);
    assert_eq!(a.hits(), 1);
}

/// The special-range refusal in kernel mode, with no `--allow-resolved`: an allowed name the
/// zone answers with loopback (127.0.0.6) is forwarded, but its answer comes back with no
/// address (over UDP and TCP), nothing is opened, and a direct connect to that address and the
/// rule's port is EPERM while the test's listener there sees nothing.
#[test]
fn kernel_mode_loopback_answers_open_nothing_without_allow_resolved() {
    let (_serial, w) = kernel_mode_world();
    let zone = Zone::start();
    let listener = std::net::TcpListener::bind("127.0.0.6:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    zone.set("lo.nono.test", &["127.0.0.6"], 60);
    let profile = profile(&w, &["lo.nono.test"], port);
    let (mut child, _, mut ask) = spawn_kernel_mode(kernel_mode_command(
        &w,
        &args(&profile, &zone, false),
        DNS_PROBE,
    ));

    assert_eq!(ask("udp lo.nono.test"), "rcode=0 from=127.0.0.9:53 addr=-");
    assert_eq!(ask("tcp lo.nono.test"), "rcode=0 from=-:0 addr=-");
    assert!(
        zone.saw("lo.nono.test"),
        "an allowed name is forwarded; only its answer is filtered: {:?}",
        zone.queried()
    );
    assert_eq!(ask(&format!("connect 127.0.0.6 {port}")), "EPERM");
    drop(ask);
    assert!(child.wait().unwrap().success());
    assert_no_tcp_connection(&listener);
    let denied = w.latest_session_events().into_iter().any(|e| {
        e["kind"] == "net" && e["denied"] == true && e["object"] == format!("127.0.0.6:{port}")
    });
    assert!(denied, "no deny event for 127.0.0.6:{port}");
}

/// The same for the cloud metadata address, which the test puts on the loopback of a network
/// namespace it creates (with the zone and the listener), so nothing is ever sent towards a
/// real 169.254.169.254: an allowed name the zone answers with it gets no address, and a
/// direct connect to it on the rule's port is EPERM; the listener saw nothing, though it is
/// reachable from outside the sandbox (the control at the end).
#[test]
fn kernel_mode_metadata_answers_open_nothing() {
    let (_serial, w) = kernel_mode_world();
    let ns = nono_e2e::Netns::new("egress-metadata", &["169.254.169.254/32"]);
    let (zone, metadata) = ns.run(|| (Zone::start(), HttpServer::start("169.254.169.254", 0)));
    let port = metadata.addr.port();
    zone.set("metadata.nono.test", &["169.254.169.254"], 60);
    let profile = profile(&w, &["metadata.nono.test"], port);
    let (mut child, _, mut ask) = spawn_kernel_mode(ns.command(&kernel_mode_command(
        &w,
        &args(&profile, &zone, false),
        DNS_PROBE,
    )));

    assert_eq!(
        ask("udp metadata.nono.test"),
        "rcode=0 from=127.0.0.9:53 addr=-"
    );
    assert_eq!(ask("tcp metadata.nono.test"), "rcode=0 from=-:0 addr=-");
    assert!(zone.saw("metadata.nono.test"), "{:?}", zone.queried());
    assert_eq!(ask(&format!("connect 169.254.169.254 {port}")), "EPERM");
    drop(ask);
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(metadata.hits(), 0, "the metadata listener saw a connection");
    // Control: the listener answers a connect from its namespace outside the sandbox.
    let addr = metadata.addr;
    ns.run(move || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("connect to the namespace's listener");
    });
    assert!(nono_e2e::wait_until(Duration::from_secs(5), || metadata
        .hits()
        == 1));
}

/// Kernel mode, a rule written with a trailing dot and in mixed case (`A.Nono.Test.`) and a
/// second rule on another port: the sandbox's queries for `a.nono.test.` (absolute form) and
/// `A.NONO.TEST` are answered; the answered address opens on its rule's port only. A connect
/// to it on the other rule's port (which Landlock allows, so EPERM is the kernel layer's) is
/// EPERM and the listener there sees nothing, and the other name's address is open on its own
/// port only once that name is answered. The deny names the normalised name.
#[test]
fn kernel_mode_trailing_dot_and_the_rules_ports() {
    let (_serial, w) = kernel_mode_world();
    let zone = Zone::start();
    let a = HttpServer::start("127.0.0.2", 0);
    let p = a.addr.port();
    let b = HttpServer::start("127.0.0.3", 0);
    let q = b.addr.port();
    let a_on_q = std::net::TcpListener::bind(("127.0.0.2", q)).unwrap();
    a_on_q.set_nonblocking(true).unwrap();
    let b_on_p = std::net::TcpListener::bind(("127.0.0.3", p)).unwrap();
    b_on_p.set_nonblocking(true).unwrap();
    zone.set("a.nono.test", &["127.0.0.2"], 60);
    zone.set("b.nono.test", &["127.0.0.3"], 60);
    let profile = w.profile_file(
        "egress-ports",
        &serde_json::json!({ "extends": ["default"], "network": { "domains": [
            { "domain": "A.Nono.Test.", "ports": [p] },
            { "domain": "b.nono.test", "ports": [q] },
        ] } }),
    );
    let (mut child, _, mut ask) = start_kernel_mode(&w, &zone, &profile, DNS_PROBE);

    for name in ["a.nono.test.", "A.NONO.TEST"] {
        assert_eq!(
            ask(&format!("udp {name}")),
            "rcode=0 from=127.0.0.9:53 addr=127.0.0.2",
            "{name}"
        );
    }
    assert_eq!(ask("tcp a.nono.test."), "rcode=0 from=-:0 addr=127.0.0.2");
    assert_eq!(ask(&format!("connect 127.0.0.2 {p}")), "OK");
    assert_eq!(ask(&format!("connect 127.0.0.2 {q}")), "EPERM");
    assert_eq!(ask(&format!("connect 127.0.0.3 {q}")), "EPERM");
    assert_eq!(
        ask("udp b.nono.test"),
        "rcode=0 from=127.0.0.9:53 addr=127.0.0.3"
    );
    assert_eq!(ask(&format!("connect 127.0.0.3 {q}")), "OK");
    assert_eq!(ask(&format!("connect 127.0.0.3 {p}")), "EPERM");
    assert_eq!(ask(&format!("connect 127.0.0.2 {q}")), "EPERM");
    drop(ask);
    assert!(child.wait().unwrap().success());
    assert_no_tcp_connection(&a_on_q);
    assert_no_tcp_connection(&b_on_p);
    nono_e2e::wait_until(Duration::from_secs(5), || a.hits() == 1 && b.hits() == 1);
    assert_eq!((a.hits(), b.hits()), (1, 1));
    let events = w.latest_session_events();
    let wrong_port = events
        .iter()
        .find(|e| {
            e["kind"] == "net" && e["denied"] == true && e["object"] == format!("127.0.0.2:{q}")
        })
        .unwrap_or_else(|| panic!("no deny of 127.0.0.2:{q} in {events:#?}"));
    assert_eq!(
        wrong_port["detail"]["name"], "a.nono.test",
        "{wrong_port:#}"
    );
}

/// Kernel mode, punycode: the rule `bücher.nono.test` is the name `xn--bcher-kva.nono.test`,
/// which resolves and connects; look-alikes one code point away (Cyrillic `е` for `e`, the
/// policy crate's `domains_normalise_and_match` case, and ASCII `u` for `ü`) are other names:
/// REFUSED, never forwarded, and the address the zone gives them stays closed.
#[test]
fn kernel_mode_punycode_lookalikes_are_distinct() {
    let (_serial, w) = kernel_mode_world();
    let zone = Zone::start();
    let real = HttpServer::start("127.0.0.4", 0);
    let port = real.addr.port();
    let fake = HttpServer::start("127.0.0.5", port);
    // bücher, büchеr (Cyrillic е, U+0435) and bucher.
    let lookalikes = ["xn--bchr-0ra660c.nono.test", "bucher.nono.test"];
    zone.set("xn--bcher-kva.nono.test", &["127.0.0.4"], 60);
    for n in lookalikes {
        zone.set(n, &["127.0.0.5"], 60);
    }
    let profile = profile(&w, &["bücher.nono.test"], port);
    let (mut child, _, mut ask) = start_kernel_mode(&w, &zone, &profile, DNS_PROBE);

    for n in lookalikes {
        assert_eq!(
            ask(&format!("udp {n}")),
            "rcode=5 from=127.0.0.9:53 addr=-",
            "{n}"
        );
    }
    assert_eq!(ask(&format!("connect 127.0.0.5 {port}")), "EPERM");
    assert_eq!(
        ask("udp xn--bcher-kva.nono.test"),
        "rcode=0 from=127.0.0.9:53 addr=127.0.0.4"
    );
    assert_eq!(ask(&format!("connect 127.0.0.4 {port}")), "OK");
    assert_eq!(ask(&format!("connect 127.0.0.5 {port}")), "EPERM");
    drop(ask);
    assert!(child.wait().unwrap().success());
    for n in lookalikes {
        assert!(
            !zone.saw(n),
            "{n} reached the upstream: {:?}",
            zone.queried()
        );
    }
    nono_e2e::wait_until(Duration::from_secs(5), || real.hits() == 1);
    assert_eq!((real.hits(), fake.hits()), (1, 0));
}
