//! `--strict-domains`: the name inside a tunnel must be the name the tunnel was allowed for.
//!
//! Privilege: none; pure functions over the first bytes a client sends into a `CONNECT` tunnel
//! of nono's proxy ([`super::proxy`]), which runs in the `nono` parent. Kernel assumptions:
//! none here; in kernel mode the cgroup socket programs allow the sandbox's TCP connects only
//! to the proxy (see [`super::kernel_sink::KernelEgress::start`]), so a program ignoring
//! `HTTPS_PROXY` cannot go around this check.
//!
//! Why: domain rules open addresses, and an address may serve many names (a CDN). A client
//! allowed `CONNECT allowed.example:443` could present the TLS name `other.example` in its
//! ClientHello, and a CDN routes by that name (domain fronting). In strict mode the proxy reads
//! what the client sends first and forwards nothing until it knows which name it carries:
//! - a TLS handshake record must hold a whole ClientHello (parsed with `tls-parser`), with a
//!   `server_name` (SNI) equal to the `CONNECT` host after normalisation (case, trailing dot,
//!   IDNA to ASCII). A ClientHello without SNI, with the Encrypted Client Hello extension (its
//!   real name is hidden), or split over several records is refused;
//! - anything else must be an HTTP/1 request head whose `Host` (without port) is the host;
//! - anything else (another protocol, SSH, a bare byte stream) is refused.
//!
//! IP-literal tunnels (allowed by a CIDR rule, which already names the address) are not
//! inspected. Only the start of the stream is checked: a client could send a second request
//! for another name on a kept-alive HTTP/1 connection, which strict mode does not parse. nono
//! does not terminate TLS, so the HTTP `Host` inside an encrypted tunnel is not seen (SNI the
//! allowed name, encrypted Host another name on the same CDN): only a CDN that refuses a Host
//! differing from the SNI stops that. The README states both limits.

use tls_parser::{
    parse_tls_extensions, parse_tls_plaintext, TlsExtension, TlsMessage, TlsMessageHandshake,
};

/// The most bytes read before a verdict: one TLS record (16 KiB plus header and slack) or an
/// HTTP head of the proxy's own limit.
pub const MAX_PREFIX: usize = 16 * 1024 + 512;

/// TLS record content type `handshake`.
const TLS_HANDSHAKE: u8 = 0x16;
/// The Encrypted Client Hello extension (draft-ietf-tls-esni).
const EXT_ECH: u16 = 0xfe0d;
const SNI_HOST_NAME: u8 = 0;

/// What the first bytes of a tunnel say.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough bytes to decide yet.
    NeedMore,
    /// The name inside matches: forward.
    Match,
    /// Refuse, with the reason.
    Refuse(String),
}

/// Lower case, no trailing dot, IDNA to ASCII (as domain rules are stored).
fn normalise(name: &str) -> Option<String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    idna::domain_to_ascii_strict(trimmed)
        .ok()
        .map(|a| a.to_ascii_lowercase())
}

fn same_name(inside: &str, host: &str) -> bool {
    match (normalise(inside), normalise(host)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Decide on `prefix`, the first bytes the client sent into a tunnel to `host`.
pub fn check(host: &str, prefix: &[u8]) -> Verdict {
    let Some(&first) = prefix.first() else {
        return Verdict::NeedMore;
    };
    let verdict = if first == TLS_HANDSHAKE {
        check_tls(host, prefix)
    } else {
        check_http(host, prefix)
    };
    if verdict == Verdict::NeedMore && prefix.len() >= MAX_PREFIX {
        return Verdict::Refuse(format!(
            "strict domains: no complete TLS ClientHello or HTTP head in the first {MAX_PREFIX} \
             bytes"
        ));
    }
    verdict
}

fn check_tls(host: &str, prefix: &[u8]) -> Verdict {
    let record = match parse_tls_plaintext(prefix) {
        Ok((_, record)) => record,
        Err(tls_parser::nom::Err::Incomplete(_)) => return Verdict::NeedMore,
        Err(_) => {
            return Verdict::Refuse(
                "strict domains: the tunnel starts with a malformed TLS record, or a \
                 ClientHello split over several records"
                    .into(),
            )
        }
    };
    let hello = record.msg.iter().find_map(|m| match m {
        TlsMessage::Handshake(TlsMessageHandshake::ClientHello(h)) => Some(h),
        _ => None,
    });
    let Some(hello) = hello else {
        return Verdict::Refuse("strict domains: the first TLS record is not a ClientHello".into());
    };
    let Some(ext) = hello.ext else {
        return Verdict::Refuse(format!(
            "strict domains: the ClientHello names no server (no SNI) for `{host}`"
        ));
    };
    let Ok((_, extensions)) = parse_tls_extensions(ext) else {
        return Verdict::Refuse("strict domains: malformed ClientHello extensions".into());
    };
    let mut sni = Vec::new();
    for e in &extensions {
        match e {
            TlsExtension::SNI(names) => {
                for (kind, name) in names {
                    if kind.0 == SNI_HOST_NAME {
                        sni.push(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            TlsExtension::Unknown(t, _) if t.0 == EXT_ECH => {
                return Verdict::Refuse(
                    "strict domains: the ClientHello uses Encrypted Client Hello, which hides \
                     the name it asks for"
                        .into(),
                )
            }
            _ => {}
        }
    }
    match sni.as_slice() {
        [] => Verdict::Refuse(format!(
            "strict domains: the ClientHello names no server (no SNI) for `{host}`"
        )),
        [one] if same_name(one, host) => Verdict::Match,
        [one] => Verdict::Refuse(format!(
            "strict domains: the ClientHello asks for `{}` in a tunnel to `{host}`",
            super::resolver::escape(one)
        )),
        _ => Verdict::Refuse("strict domains: the ClientHello names several servers".into()),
    }
}

fn check_http(host: &str, prefix: &[u8]) -> Verdict {
    // A request line starts with a method token: upper-case ASCII letters, then a space.
    let token_len = prefix.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if token_len == prefix.len() && token_len < 16 {
        return Verdict::NeedMore;
    }
    if token_len == 0 || prefix.get(token_len) != Some(&b' ') {
        return Verdict::Refuse(
            "strict domains: the tunnel carries neither TLS nor HTTP/1 (its name can't be \
             checked)"
                .into(),
        );
    }
    let Some(end) = prefix.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Verdict::NeedMore;
    };
    let Ok(head) = std::str::from_utf8(&prefix[..end]) else {
        return Verdict::Refuse("strict domains: the HTTP head is not UTF-8".into());
    };
    let hosts: Vec<&str> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim())
        .collect();
    match hosts.as_slice() {
        [] => Verdict::Refuse(format!(
            "strict domains: the HTTP request has no Host header for `{host}`"
        )),
        [one] => {
            let name = host_of(one);
            if same_name(name, host) {
                Verdict::Match
            } else {
                Verdict::Refuse(format!(
                    "strict domains: the HTTP request is for `{}` in a tunnel to `{host}`",
                    super::resolver::escape(one)
                ))
            }
        }
        _ => Verdict::Refuse("strict domains: the HTTP request has several Host headers".into()),
    }
}

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`).
pub fn host_of(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match value.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS 1.2-style ClientHello record with the given extensions (type, body).
    fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (t, body) in extensions {
            ext.extend_from_slice(&t.to_be_bytes());
            ext.extend_from_slice(&(body.len() as u16).to_be_bytes());
            ext.extend_from_slice(body);
        }
        let mut hello = vec![0x03, 0x03];
        hello.extend_from_slice(&[7u8; 32]); // random
        hello.push(0); // session id
        hello.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        hello.extend_from_slice(&[1, 0]); // null compression
        if !extensions.is_empty() {
            hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
            hello.extend_from_slice(&ext);
        }
        let mut hs = vec![1u8]; // client_hello
        hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&hello);
        let mut rec = vec![TLS_HANDSHAKE, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    fn sni(name: &str) -> (u16, Vec<u8>) {
        let mut entry = vec![SNI_HOST_NAME];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        let mut body = (entry.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&entry);
        (0, body)
    }

    #[test]
    fn sni_must_equal_the_connect_host() {
        let hello = client_hello(&[sni("api.example.com")]);
        assert_eq!(check("api.example.com", &hello), Verdict::Match);
        assert_eq!(check("API.Example.com.", &hello), Verdict::Match);
        let fronted = check("allowed.example.com", &hello);
        assert!(
            matches!(&fronted, Verdict::Refuse(r) if r.contains("`api.example.com`")),
            "{fronted:?}"
        );
    }

    #[test]
    fn missing_sni_ech_and_other_records_are_refused() {
        for (hello, why) in [
            (client_hello(&[]), "no SNI"),
            (client_hello(&[(0x000a, vec![0, 2, 0, 0x1d])]), "no SNI"),
            (
                client_hello(&[sni("a.example"), (EXT_ECH, vec![0; 8])]),
                "Encrypted Client Hello",
            ),
        ] {
            let v = check("a.example", &hello);
            assert!(matches!(&v, Verdict::Refuse(r) if r.contains(why)), "{v:?}");
        }
        // A TLS alert record, not a handshake: refused, not waited for.
        let alert = [0x15, 3, 3, 0, 2, 2, 40];
        assert!(matches!(check("a.example", &alert), Verdict::Refuse(_)));
        // Two SNI host names.
        let mut entry = Vec::new();
        for n in ["a.example", "b.example"] {
            entry.push(SNI_HOST_NAME);
            entry.extend_from_slice(&(n.len() as u16).to_be_bytes());
            entry.extend_from_slice(n.as_bytes());
        }
        let mut body = (entry.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&entry);
        let two = client_hello(&[(0, body)]);
        assert!(matches!(check("a.example", &two), Verdict::Refuse(_)));
    }

    #[test]
    fn partial_prefixes_wait_then_decide() {
        let hello = client_hello(&[sni("a.example")]);
        for cut in [1, 3, 5, 20, hello.len() - 1] {
            assert_eq!(
                check("a.example", &hello[..cut]),
                Verdict::NeedMore,
                "{cut}"
            );
        }
        let head = b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n";
        for cut in [1, 3, 4, 20, head.len() - 1] {
            assert_eq!(check("a.example", &head[..cut]), Verdict::NeedMore, "{cut}");
        }
        assert_eq!(check("a.example", head), Verdict::Match);
        // A record header announcing more than fits: refused once the limit is reached.
        let mut big = vec![TLS_HANDSHAKE, 3, 1, 0xff, 0xff];
        big.resize(MAX_PREFIX, 0);
        assert!(matches!(check("a.example", &big), Verdict::Refuse(_)));
    }

    #[test]
    fn http_host_must_equal_the_connect_host() {
        assert_eq!(
            check("a.example", b"GET / HTTP/1.1\r\nhost: A.EXAMPLE\r\n\r\n"),
            Verdict::Match
        );
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"\x00\x01binary",
            b"get / HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ] {
            assert!(
                matches!(check("a.example", bad), Verdict::Refuse(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("a.example:80"), "a.example");
        assert_eq!(host_of("a.example"), "a.example");
    }

    /// Whatever the bytes, `check` answers without panicking, and a prefix at the limit is
    /// never left undecided.
    #[test]
    fn arbitrary_prefixes_never_panic_or_hang() {
        let hello = client_hello(&[sni("a.example")]);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = if round % 2 == 0 {
                hello.clone()
            } else {
                b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n".to_vec()
            };
            let flips = (seed % 6) as usize;
            for k in 0..flips {
                let i = ((seed >> (8 * k)) as usize) % bytes.len();
                bytes[i] ^= (seed >> (3 * k)) as u8 | 1;
            }
            let _ = check("a.example", &bytes);
            let mut long = bytes.clone();
            long.resize(MAX_PREFIX, b'A');
            assert_ne!(check("a.example", &long), Verdict::NeedMore);
        }
    }
}
