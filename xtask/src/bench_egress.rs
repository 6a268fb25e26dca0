//! `bench_egress`: what nono's egress path adds, measured side by side in one run.
//!
//! - **DNS:** an A query to a test-served upstream on loopback, directly and through nono's
//!   resolver (`nono egress-serve --dns`, which forwards the allowed name to that upstream,
//!   filters the answer and records the address before answering). Target: < 1 ms added
//!   (median).
//! - **Proxy:** a full HTTP/1.0 exchange with a loopback server, directly and through nono's
//!   proxy with `CONNECT` (which checks the name and port, takes the address from its answer
//!   cache — the zone's TTL is 300 s, so only the warm-up asks the upstream — connects, and
//!   relays). The difference is what a proxied connection costs.
//!
//! Variants are interleaved (each round runs both) so machine load hits them alike. Nothing is
//! sent outside loopback; the upstream is the tests' `Zone`, never the machine's resolver.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use nono_e2e::egress_support::Zone;

const TARGET_DNS: Duration = Duration::from_millis(1);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn dns_once(sock: &UdpSocket, to: SocketAddr, query: &[u8]) -> Result<Duration> {
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    sock.send_to(query, to)?;
    let (n, _) = sock.recv_from(&mut buf).context("no DNS answer")?;
    let took = start.elapsed();
    let reply = Message::from_vec(&buf[..n])?;
    anyhow::ensure!(!reply.answers.is_empty(), "empty answer from {to}");
    Ok(took)
}

fn http_once(to: SocketAddr, connect_host: Option<&str>) -> Result<Duration> {
    let start = Instant::now();
    let mut s = TcpStream::connect(to)?;
    s.set_nodelay(true)?;
    if let Some(host) = connect_host {
        write!(s, "CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n")?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            anyhow::ensure!(s.read(&mut b)? == 1, "proxy closed");
            head.push(b[0]);
        }
        anyhow::ensure!(
            head.starts_with(b"HTTP/1.1 200"),
            "proxy refused: {}",
            String::from_utf8_lossy(&head)
        );
    }
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    anyhow::ensure!(reply.ends_with(b"bench\n"), "unexpected reply");
    Ok(start.elapsed())
}

/// A minimal HTTP server: one thread, blocking accept, answers "bench".
fn http_server(ip: &str) -> Result<SocketAddr> {
    let l = TcpListener::bind((ip, 0))?;
    let addr = l.local_addr()?;
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let _ = c.set_nodelay(true);
            let mut head = Vec::new();
            let mut b = [0u8; 512];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&b[..n]),
                }
            }
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nbench\n");
        }
    });
    Ok(addr)
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stats(name: &str, mut times: Vec<Duration>) -> (String, Duration) {
    times.sort();
    let median = percentile(&times, 0.5);
    (
        format!(
            "  {name:<28} median {:>8.1} µs   p10 {:>8.1} µs   p90 {:>8.1} µs",
            us(median),
            us(percentile(&times, 0.1)),
            us(percentile(&times, 0.9))
        ),
        median,
    )
}

pub fn bench_egress(nono: &Path, rounds: usize) -> Result<String> {
    let zone = Zone::start();
    let server = http_server("127.0.0.2")?;
    zone.set("bench.nono.test", &["127.0.0.2"], 300);
    let mut child = Command::new(nono)
        .args([
            "egress-serve",
            "--dns",
            "127.0.0.1:0",
            "--proxy",
            "127.0.0.1:0",
        ])
        .args([
            "--allow-domain",
            "bench.nono.test",
            "--allow-resolved",
            "127.0.0.0/8",
        ])
        .args(["--ports", &server.port().to_string()])
        .args(["--dns-upstream", &zone.addr().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nono egress-serve")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let served = Served(child);
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().context("no address line")??)?;
    // The allow events: drained so the pipe never fills up and blocks the resolver.
    std::thread::spawn(move || for _ in lines {});
    let dns: SocketAddr = first["dns"].as_str().context("dns")?.parse()?;
    let proxy: SocketAddr = first["proxy"].as_str().context("proxy")?.parse()?;

    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(
        Name::from_ascii("bench.nono.test.")?,
        RecordType::A,
    ));
    let query = q.to_vec()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let target = format!("bench.nono.test:{}", server.port());

    let (mut dns_direct, mut dns_nono, mut http_direct, mut http_proxy) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds + 20 {
        let warm = i < 20;
        let order = i % 2 == 0;
        for step in 0..2 {
            if (step == 0) == order {
                let t = dns_once(&sock, zone.addr(), &query)?;
                if !warm {
                    dns_direct.push(t);
                }
            } else {
                let t = dns_once(&sock, dns, &query)?;
                if !warm {
                    dns_nono.push(t);
                }
            }
        }
        for step in 0..2 {
            if (step == 0) == order {
                let t = http_once(server, None)?;
                if !warm {
                    http_direct.push(t);
                }
            } else {
                let t = http_once(proxy, Some(&target))?;
                if !warm {
                    http_proxy.push(t);
                }
            }
        }
    }
    drop(served);

    let (l1, d1) = stats("DNS direct to upstream", dns_direct);
    let (l2, d2) = stats("DNS through nono resolver", dns_nono);
    let (l3, h1) = stats("HTTP direct", http_direct);
    let (l4, h2) = stats("HTTP through nono proxy", http_proxy);
    let added_dns = d2.saturating_sub(d1);
    let added_http = h2.saturating_sub(h1);
    Ok(format!(
        "egress benchmark ({rounds} interleaved rounds, loopback upstream and server)\n\
         {l1}\n{l2}\n  added per lookup: {:.1} µs (median), ratio {:.2}x — target < {} µs: {}\n\
         {l3}\n{l4}\n  added per proxied connection (CONNECT, cached answer, relay): {:.1} µs, \
         ratio {:.2}x",
        us(added_dns),
        d2.as_secs_f64() / d1.as_secs_f64(),
        TARGET_DNS.as_micros(),
        if added_dns < TARGET_DNS {
            "met"
        } else {
            "MISSED"
        },
        us(added_http),
        h2.as_secs_f64() / h1.as_secs_f64(),
    ))
}
