//! The local HTTP proxy of the unprivileged mode: `CONNECT host:port` tunnels (HTTPS and
//! anything else over TCP) and plain `http://` requests in absolute form.
//!
//! Privilege: none; it listens on loopback in the `nono` parent, outside the sandbox. The
//! sandbox can reach it and nothing else over TCP (Landlock ABI 4 connect rule on its port;
//! seccomp refuses UDP), so every connection out goes through [`decide`]:
//! - a name must be allowed on that port by a domain rule; it is resolved through the
//!   [`Resolver`] (same upstreams, same special-range filtering as a DNS client gets) and the
//!   connection goes to one of the addresses it returned, never to an address the client
//!   supplies;
//! - an IP literal needs a TCP CIDR rule ([`super::rules::EgressRules::literal`]).
//!
//! A refusal is a `403` whose body and `X-Nono-Denied` header say why, and a line on
//! nono's stderr. Limits: by default the proxy checks the name the client names, not the TLS SNI
//! inside the tunnel (several names sharing an address are reachable by whichever is allowed);
//! with `--strict-domains` ([`super::strict`]) a tunnel to a name forwards nothing until its
//! first bytes show that same name (TLS SNI or HTTP `Host`), and a plain `http://` request's
//! `Host` must be the URL's host. Requests are not inspected after the head; the request head
//! is limited to [`MAX_HEAD`] bytes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use nono_policy::ir::RuleId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::resolver::{escape, Resolver};
use super::rules::Refusal;

/// A message quoting the network, safe for a terminal and a header: control characters and
/// non-ASCII escaped, the rest kept.
fn escape_text(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect()
}

/// The longest request head the proxy reads.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a client gets to send its request head, and the proxy to connect out.
/// The reply to a CONNECT the proxy lets through (strict mode sends it before the check).
const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The request head, as far as the proxy needs it.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub host: String,
    pub port: u16,
    /// For plain HTTP: the request head to send on, in origin form, without proxy headers.
    pub forward: Option<Vec<u8>>,
}

/// Parse a request head (up to and including the blank line).
pub fn parse_head(raw: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "the request head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let request = lines.next().unwrap_or("");
    let mut parts = request.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line `{}`", escape(request)));
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Err(format!("malformed request line `{}`", escape(request)));
    }
    if method == "CONNECT" {
        let (host, port) = split_host_port(target, None)?;
        return Ok(Head {
            method: method.into(),
            host,
            port,
            forward: None,
        });
    }
    let rest = target
        .strip_prefix("http://")
        .ok_or_else(|| "only CONNECT and absolute http:// requests are proxied".to_string())?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err("credentials in the URL are not proxied".into());
    }
    let (host, port) = split_host_port(authority, Some(80))?;
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // One request per connection: a second request on it could name another host.
        if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Head {
        method: method.into(),
        host,
        port,
        forward: Some(out.into_bytes()),
    })
}

/// `host:port`, `[v6]:port`; `default` when the port is absent (plain HTTP only).
fn split_host_port(s: &str, default: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("`{}` is not host:port", escape(s));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        None => default.ok_or_else(bad)?,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Where a request may go: the rule and the addresses to try.
pub async fn decide(
    resolver: &Resolver,
    host: &str,
    port: u16,
) -> Result<(RuleId, Vec<IpAddr>), Refusal> {
    if let Ok(addr) = host.parse::<IpAddr>() {
        let rule = resolver.rules().literal(addr, port)?;
        return Ok((rule, vec![addr]));
    }
    resolver.resolve(host, port).await
}

/// Serve the proxy; `strict`: `--strict-domains` (see [`super::strict`]).
pub async fn serve(
    listener: TcpListener,
    resolver: Arc<Resolver>,
    strict: bool,
    decisions: super::Decisions,
) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let resolver = resolver.clone();
        let decisions = decisions.clone();
        tokio::spawn(async move {
            let _ = conn.set_nodelay(true);
            handle(conn, &resolver, strict, &decisions).await;
        });
    }
}

/// Strict mode, in a tunnel to a name: read the client's first bytes (after `early`) until
/// they show which name they are for; `Ok` holds every byte read, to forward.
async fn read_named_prefix(
    conn: &mut TcpStream,
    host: &str,
    mut prefix: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut chunk = [0u8; 4096];
    loop {
        match super::strict::check(host, &prefix) {
            super::strict::Verdict::Match => return Ok(prefix),
            super::strict::Verdict::Refuse(why) => return Err(why),
            super::strict::Verdict::NeedMore => {}
        }
        let want = (super::strict::MAX_PREFIX - prefix.len()).min(chunk.len());
        let n = conn
            .read(&mut chunk[..want])
            .await
            .map_err(|e| format!("reading the tunnel's first bytes: {e}"))?;
        if n == 0 {
            return Err("the client closed the tunnel before naming a server".into());
        }
        prefix.extend_from_slice(&chunk[..n]);
    }
}

async fn read_head(conn: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("request head over {MAX_HEAD} bytes"));
        }
        let n = conn
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("the client closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn refuse(conn: &mut TcpStream, status: &str, why: &str) {
    // `why` quotes what the client sent: escaped, so it can neither inject a header nor
    // reach a terminal as control characters.
    let why = escape_text(why);
    let body = format!("nono: {why}\n");
    let reason = &why;
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         X-Nono-Denied: {reason}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(msg.as_bytes()).await;
    let _ = conn.shutdown().await;
}

async fn handle(
    mut conn: TcpStream,
    resolver: &Resolver,
    strict: bool,
    decisions: &super::Decisions,
) {
    let (raw, early) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut conn)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return refuse(&mut conn, "400 Bad Request", &e).await,
        Err(_) => return,
    };
    let head = match parse_head(&raw) {
        Ok(h) => h,
        Err(e) => return refuse(&mut conn, "400 Bad Request", &e).await,
    };
    let shown = format!("{} {}:{}", head.method, escape(&head.host), head.port);
    // What the audit trail names: an IP literal is the address, anything else a name.
    let literal = head.host.parse::<IpAddr>().ok();
    let asked_name = literal.is_none().then_some(head.host.as_str());
    let (rule, addrs) = match decide(resolver, &head.host, head.port).await {
        Ok(x) => x,
        Err(r) => {
            eprintln!(
                "nono: egress denied: {shown}: {}",
                escape_text(&r.to_string())
            );
            decisions.record(true, None, literal, head.port, asked_name);
            return refuse(&mut conn, "403 Forbidden", &r.to_string()).await;
        }
    };
    // Strict mode: a tunnel to a name is opened towards the client first, and nothing is
    // connected or forwarded until its first bytes name that same server; a plain request's
    // Host must be the URL's host. IP literals are CIDR-ruled: the address is the rule.
    let mut early = early;
    let named = literal.is_none();
    let mut established = false;
    if strict && named {
        let checked = match &head.forward {
            None => {
                if conn.write_all(ESTABLISHED).await.is_err() {
                    return;
                }
                established = true;
                match tokio::time::timeout(
                    HEAD_TIMEOUT,
                    read_named_prefix(&mut conn, &head.host, std::mem::take(&mut early)),
                )
                .await
                {
                    Ok(r) => r.map(|prefix| early = prefix),
                    Err(_) => Err("the client named no server in time".into()),
                }
            }
            Some(fwd) => match super::strict::check(&head.host, fwd) {
                super::strict::Verdict::Match => Ok(()),
                super::strict::Verdict::Refuse(why) => Err(why),
                super::strict::Verdict::NeedMore => Err("incomplete request head".into()),
            },
        };
        if let Err(why) = checked {
            eprintln!("nono: egress denied: {shown}: {}", escape_text(&why));
            decisions.record(true, None, None, head.port, asked_name);
            if established {
                // The tunnel is already open: all the client can be told is a close.
                let _ = conn.shutdown().await;
                return;
            }
            return refuse(&mut conn, "403 Forbidden", &why).await;
        }
    }
    let mut out = None;
    let mut errors = Vec::new();
    for addr in &addrs {
        let to = SocketAddr::new(*addr, head.port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
            Ok(Ok(s)) => {
                out = Some(s);
                break;
            }
            Ok(Err(e)) => errors.push(format!("{to}: {e}")),
            Err(_) => errors.push(format!("{to}: timed out")),
        }
    }
    let Some(mut upstream) = out else {
        let why = format!("{shown}: cannot connect: {}", errors.join("; "));
        if established {
            eprintln!("nono: egress: {}", escape_text(&why));
            let _ = conn.shutdown().await;
            return;
        }
        return refuse(&mut conn, "502 Bad Gateway", &why).await;
    };
    let _ = upstream.set_nodelay(true);
    decisions.record(
        false,
        Some(rule),
        upstream.peer_addr().ok().map(|a| a.ip()),
        head.port,
        asked_name,
    );
    tracing::info!(
        "egress: {shown} allowed by {rule} via {:?}",
        upstream.peer_addr().ok()
    );
    match &head.forward {
        None if established => {}
        None => {
            if conn.write_all(ESTABLISHED).await.is_err() {
                return;
            }
        }
        Some(fwd) => {
            if upstream.write_all(fwd).await.is_err() {
                return;
            }
        }
    }
    if !early.is_empty() && upstream.write_all(&early).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_heads() {
        let h = parse_head(b"CONNECT a.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (h.host.as_str(), h.port, h.forward),
            ("a.example.com", 443, None)
        );
        let h = parse_head(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", 8443));
        let h = parse_head(
            b"GET http://a.test:8080/x?y HTTP/1.1\r\nHost: a.test:8080\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.host.as_str(), h.port), ("a.test", 8080));
        assert_eq!(
            String::from_utf8(h.forward.unwrap()).unwrap(),
            "GET /x?y HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n"
        );
        let h = parse_head(b"GET http://a.test HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(h.port, 80);
        assert_eq!(
            String::from_utf8(h.forward.unwrap()).unwrap(),
            "GET / HTTP/1.0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn refusals_quoting_the_client_are_escaped() {
        assert_eq!(
            escape_text("no domain rule allows `a\r\nX-Evil: 1\u{1b}[2J`"),
            "no domain rule allows `a\\r\\nX-Evil: 1\\u{1b}[2J`"
        );
    }

    #[test]
    fn bad_heads_are_refused() {
        for bad in [
            &b"GET /local HTTP/1.1\r\n\r\n"[..],
            b"CONNECT a.test HTTP/1.1\r\n\r\n",
            b"CONNECT a.test:0 HTTP/1.1\r\n\r\n",
            b"CONNECT :443 HTTP/1.1\r\n\r\n",
            b"GET https://a.test/ HTTP/1.1\r\n\r\n",
            b"GET http://u:p@a.test/ HTTP/1.1\r\n\r\n",
            b"CONNECT a.test:443 HTTP/2\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
