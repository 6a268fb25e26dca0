//! The upstream resolvers nono forwards allowed queries to, and the forwarding itself.
//!
//! Privilege: none. Upstreams are `--dns-upstream ADDR:PORT` (or `NONO_DNS_UPSTREAM`), else the
//! `nameserver` lines of `/etc/resolv.conf` on port 53. Each query goes out from a fresh UDP
//! socket (a random source port) with a fresh random id, and only a reply from the upstream's
//! address with that id and the same question is accepted, so an off-path spoofer must guess
//! both. A truncated reply is retried over TCP. Upstreams are tried in order, each with
//! [`TIMEOUT`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one upstream gets to answer.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The `nameserver` addresses of a resolv.conf text, on port 53. IPv6 zone ids
/// (`fe80::1%eth0`) are dropped with the address: a link-local upstream is not supported.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The configured upstreams, or the system's.
pub fn upstreams(configured: &[SocketAddr]) -> Result<Vec<SocketAddr>> {
    if !configured.is_empty() {
        return Ok(configured.to_vec());
    }
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .context("egress: no --dns-upstream given and /etc/resolv.conf is unreadable")?;
    let found = parse_resolv_conf(&text);
    if found.is_empty() {
        bail!("egress: no --dns-upstream given and /etc/resolv.conf names no nameserver");
    }
    Ok(found)
}

/// Send `query` (whose id and question the reply must match) to the upstreams in turn.
pub async fn forward(upstreams: &[SocketAddr], query: &Message) -> Result<Message> {
    let mut last = None;
    for up in upstreams {
        match tokio::time::timeout(TIMEOUT, forward_one(*up, query)).await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(e)) => last = Some(e.context(format!("upstream {up}"))),
            Err(_) => last = Some(anyhow::anyhow!("upstream {up}: no answer in {TIMEOUT:?}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no upstream resolver configured")))
}

fn matches(query: &Message, reply: &Message) -> bool {
    reply.metadata.id == query.metadata.id && reply.queries == query.queries
}

async fn forward_one(up: SocketAddr, query: &Message) -> Result<Message> {
    let bytes = query.to_vec().context("encoding the query")?;
    let bind: SocketAddr = if up.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.connect(up).await?;
    sock.send(&bytes).await?;
    let mut buf = vec![0u8; 65535];
    let reply = loop {
        // A connected UDP socket only receives datagrams from `up`.
        let n = sock.recv(&mut buf).await?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if matches(query, &m) => break m,
            _ => continue, // spoofed or stale: keep waiting until the timeout
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    forward_tcp(up, &bytes, query).await
}

async fn forward_tcp(up: SocketAddr, bytes: &[u8], query: &Message) -> Result<Message> {
    let mut s = tokio::net::TcpStream::connect(up).await?;
    let len = u16::try_from(bytes.len()).context("query too long")?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await?;
    let n = s.read_u16().await? as usize;
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await?;
    let reply = Message::from_vec(&buf).context("decoding the upstream's TCP reply")?;
    if !matches(query, &reply) {
        bail!("the TCP reply does not match the query");
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let t = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver ::1\n\
                 nameserver fe80::1%eth0\noptions ndots:2\nnameserver\n";
        assert_eq!(
            parse_resolv_conf(t),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
