//! Network rule values: domain patterns, CIDRs, ports and protocols, each validated on parse.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use ipnet::IpNet;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl Protocol {
    /// The keyword the policy language and the plans use: `tcp`, `udp`.
    pub fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// An inclusive port range; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }
    pub fn len(self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }
    pub fn is_empty(self) -> bool {
        false
    }
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("port `{0}` is not a number from 1 to 65535")]
    BadPort(String),
    #[error("port range `{0}` is empty: the first port is above the last")]
    EmptyRange(String),
    #[error("`{0}` is not a CIDR: {1}")]
    BadCidr(String, String),
    #[error("`{0}` has host bits set; did you mean `{1}`?")]
    HostBits(String, String),
    #[error("`{0}` is a URL, not a domain; write the host name alone, e.g. `{1}`")]
    Url(String, String),
    #[error(
        "`*` would allow every domain; list the domains the agent needs, or use `net allow all`"
    )]
    Star,
    #[error("`{0}` covers a whole public suffix (`{1}`); a wildcard needs a registrable domain below it, e.g. `*.example.{1}`")]
    PublicSuffix(String, String),
    #[error("`{0}` is not a valid domain name: {1}")]
    BadDomain(String, String),
    #[error(
        "`{0}` is an IP address; allow it with a CIDR rule (`net allow cidr {0}/32 tcp`) instead"
    )]
    IpLiteral(String),
    #[error(
        "`{0}` is an IPv4-mapped IPv6 network: traffic to `::ffff:a.b.c.d` leaves as IPv4 and the IPv4 rules decide it; write `{1}`"
    )]
    MappedCidr(String, String),
}

/// A sorted, merged set of port ranges. Empty means "every port" where a rule allows that
/// (CIDR rules), and is never stored for rules that need ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSet(Vec<PortRange>);

impl PortSet {
    pub fn new(mut ranges: Vec<PortRange>) -> PortSet {
        ranges.sort();
        // Merged in place, each range into the one kept before it when they touch or overlap:
        // every rule's ports pass through here, so no second vector per set.
        ranges.dedup_by(|r, last| {
            let touches = u32::from(r.first) <= u32::from(last.last) + 1;
            if touches {
                last.last = last.last.max(r.last);
            }
            touches
        });
        PortSet(ranges)
    }
    pub fn web_default() -> PortSet {
        PortSet::new(vec![PortRange::single(80), PortRange::single(443)])
    }
    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn contains(&self, port: u16) -> bool {
        self.0.is_empty() || self.0.iter().any(|r| r.contains(port))
    }
    pub fn union(&self, other: &PortSet) -> PortSet {
        PortSet::new(self.0.iter().chain(other.0.iter()).copied().collect())
    }
    /// The number of distinct ports (65535 for "every port").
    pub fn count(&self) -> u32 {
        if self.0.is_empty() {
            65535
        } else {
            self.0.iter().map(|r| r.len()).sum()
        }
    }

    /// Parse `443`, `8000-8100`.
    pub fn parse_range(s: &str) -> Result<PortRange, NetError> {
        let port = |p: &str| -> Result<u16, NetError> {
            match p.trim().parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(NetError::BadPort(p.trim().to_string())),
            }
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (first, last) = (port(a)?, port(b)?);
                if first > last {
                    return Err(NetError::EmptyRange(s.to_string()));
                }
                Ok(PortRange { first, last })
            }
            None => Ok(PortRange::single(port(s)?)),
        }
    }
}

impl PortSet {
    /// The set as its `Display` writes it (`80,443`, `8000-8100`, `any`), onto `out` without
    /// `fmt`: rule texts name a rule's ports, and a large policy has thousands of rules.
    pub(crate) fn push_text(&self, out: &mut String) {
        if self.0.is_empty() {
            out.push_str("any");
            return;
        }
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_u32(out, r.first.into());
            if r.first != r.last {
                out.push('-');
                push_u32(out, r.last.into());
            }
        }
    }
}

/// `n` in decimal, without going through `fmt` (rule texts and the Seatbelt profile write
/// numbers once per rule or port).
pub(crate) fn push_u32(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // One char per ASCII digit: cheaper than checking the digits are UTF-8 to push a `str`.
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// A network as its `Display` writes it (`10.0.0.0/24`), onto `out`; IPv4 without `fmt`.
/// IPv6 keeps `fmt`, whose text (the longest run of zero groups shortened to `::`, embedded
/// IPv4 forms) is not worth restating.
pub(crate) fn push_net(out: &mut String, net: &IpNet) {
    match net {
        IpNet::V4(n) => {
            for (i, octet) in n.addr().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u32(out, octet.into());
            }
            out.push('/');
            push_u32(out, n.prefix_len().into());
        }
        IpNet::V6(_) => {
            use fmt::Write as _;
            let _ = write!(out, "{net}");
        }
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("any");
        }
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            fmt::Display::fmt(r, f)?;
        }
        Ok(())
    }
}

impl Serialize for PortSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in &self.0 {
            if r.first == r.last {
                seq.serialize_element(&r.first)?;
            } else {
                seq.serialize_element(&format_args!("{r}"))?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PortSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<PortSpec>::deserialize(d)?;
        let ranges = items
            .into_iter()
            .map(|p| p.to_range())
            .collect::<Result<Vec<_>, _>>()
            .map_err(serde::de::Error::custom)?;
        Ok(PortSet::new(ranges))
    }
}

/// A port as written in JSON/YAML: a number or a `"first-last"` string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PortSpec {
    Number(i64),
    Text(String),
}

impl PortSpec {
    pub fn to_range(&self) -> Result<PortRange, NetError> {
        match self {
            PortSpec::Number(n) if (1..=65535).contains(n) => Ok(PortRange::single(*n as u16)),
            PortSpec::Number(n) => Err(NetError::BadPort(n.to_string())),
            PortSpec::Text(s) => PortSet::parse_range(s),
        }
    }
}

/// Parse a CIDR (`10.0.0.0/8`, `::1/128`) or a bare address (taken as a single host).
pub fn parse_cidr(s: &str) -> Result<IpNet, NetError> {
    let net = match s.parse::<std::net::IpAddr>() {
        Ok(ip) => IpNet::from(ip),
        Err(_) => s
            .parse()
            .map_err(|e: ipnet::AddrParseError| NetError::BadCidr(s.to_string(), e.to_string()))?,
    };
    if net.trunc() != net {
        return Err(NetError::HostBits(s.to_string(), net.trunc().to_string()));
    }
    // The kernel layer judges a mapped destination by the IPv4 rules (nono-ebpf's `net.rs`),
    // so a rule written in the mapped form would never match: ask for the IPv4 form instead.
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.network().to_ipv4_mapped() {
                let suggestion = IpNet::new(v4.into(), v6.prefix_len() - 96)
                    .expect("a prefix of 96..=128 less 96 fits IPv4");
                return Err(NetError::MappedCidr(s.to_string(), suggestion.to_string()));
            }
        }
    }
    Ok(net)
}

/// A domain allowed for egress: an exact name, or `*.suffix` for every name strictly below it.
/// Stored in normalised ASCII form: lower case, punycode for non-ASCII labels, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainPattern {
    wildcard: bool,
    /// The name (for a wildcard, the suffix without `*.`), normalised.
    name: String,
}

impl DomainPattern {
    /// The pattern as its `Display` writes it, onto `out`.
    pub(crate) fn push_text(&self, out: &mut String) {
        if self.wildcard {
            out.push_str("*.");
        }
        out.push_str(&self.name);
    }

    pub fn parse(text: &str) -> Result<DomainPattern, NetError> {
        let t = text.trim();
        if t == "*" || t == "*." {
            return Err(NetError::Star);
        }
        if t.contains("://") || t.contains('/') || t.contains('?') || t.contains('#') {
            let host = t
                .split("://")
                .last()
                .unwrap_or(t)
                .split(['/', '?', '#', ':'])
                .next()
                .unwrap_or("");
            return Err(NetError::Url(
                text.to_string(),
                if host.is_empty() {
                    "example.com".into()
                } else {
                    host.to_string()
                },
            ));
        }
        if t.contains(':') && t.parse::<std::net::IpAddr>().is_err() {
            return Err(NetError::BadDomain(
                text.to_string(),
                "a port does not belong in a domain; use `port N`".into(),
            ));
        }
        let (wildcard, rest) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        if rest.parse::<std::net::IpAddr>().is_ok()
            || rest
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
        {
            return Err(NetError::IpLiteral(rest.to_string()));
        }
        let rest = rest.strip_suffix('.').unwrap_or(rest);
        if rest.is_empty() {
            return Err(NetError::BadDomain(text.to_string(), "empty name".into()));
        }
        if rest.contains('*') {
            return Err(NetError::BadDomain(
                text.to_string(),
                "`*` is only allowed as the whole first label (`*.example.com`)".into(),
            ));
        }
        let ascii = idna::domain_to_ascii_strict(rest).map_err(|_| {
            NetError::BadDomain(
                text.to_string(),
                "not a valid internationalised domain name".into(),
            )
        })?;
        if ascii.split('.').any(|l| l.is_empty() || l.len() > 63) || ascii.len() > 253 {
            return Err(NetError::BadDomain(
                text.to_string(),
                "labels must be 1 to 63 characters, the name at most 253".into(),
            ));
        }
        if !ascii.contains('.') && !wildcard && ascii != "localhost" {
            // A single label such as `com` is a suffix, not a host.
            if psl::suffix(ascii.as_bytes()).is_some_and(|s| s.is_known()) {
                return Err(NetError::PublicSuffix(text.to_string(), ascii.clone()));
            }
        }
        if wildcard {
            // `*.co.uk` would cover every registrable domain under a public suffix.
            let is_suffix = psl::suffix(ascii.as_bytes())
                .map(|s| s.is_known() && s.as_bytes().len() == ascii.len())
                .unwrap_or(false);
            if is_suffix || !ascii.contains('.') {
                return Err(NetError::PublicSuffix(text.to_string(), ascii.clone()));
            }
        }
        Ok(DomainPattern {
            wildcard,
            name: ascii,
        })
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }
    /// The normalised name (the suffix, for a wildcard).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Does a queried name match? The query is normalised the same way first; a wildcard
    /// matches names strictly below its suffix only.
    pub fn matches(&self, query: &str) -> bool {
        let q = query.trim().strip_suffix('.').unwrap_or(query.trim());
        let Ok(q) = idna::domain_to_ascii_strict(q) else {
            return false;
        };
        if self.wildcard {
            q.len() > self.name.len() + 1
                && q.ends_with(&self.name)
                && q.as_bytes()[q.len() - self.name.len() - 1] == b'.'
        } else {
            q == self.name
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            write!(f, "*.{}", self.name)
        } else {
            f.write_str(&self.name)
        }
    }
}

impl Serialize for DomainPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DomainPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DomainPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_written_without_fmt_agree_with_display() {
        for spec in [
            "",
            "1",
            "80,443",
            "8000-8100",
            "1-65535",
            "22,80-81,443,65535",
        ] {
            let set = if spec.is_empty() {
                PortSet::default()
            } else {
                PortSet::new(
                    spec.split(',')
                        .map(|p| PortSet::parse_range(p).unwrap())
                        .collect(),
                )
            };
            let mut pushed = String::new();
            set.push_text(&mut pushed);
            assert_eq!(pushed, set.to_string(), "{spec:?}");
        }
        for cidr in [
            "0.0.0.0/0",
            "10.1.2.0/24",
            "255.255.255.255/32",
            "192.168.0.7/16",
            "::/0",
            "2001:db8::/32",
            "fe80::1/128",
        ] {
            let net: IpNet = cidr.parse().unwrap();
            let mut pushed = String::new();
            push_net(&mut pushed, &net);
            assert_eq!(pushed, net.to_string(), "{cidr}");
        }
        for domain in ["example.com", "*.example.com", "xn--bcher-kva.example"] {
            let d = DomainPattern::parse(domain).unwrap();
            let mut pushed = String::new();
            d.push_text(&mut pushed);
            assert_eq!(pushed, d.to_string(), "{domain}");
        }
        for n in [0, 7, 10, 99, 100, 65535, u32::MAX] {
            let mut pushed = String::new();
            push_u32(&mut pushed, n);
            assert_eq!(pushed, n.to_string());
        }
    }

    #[test]
    fn domains_normalise_and_match() {
        let d = DomainPattern::parse("*.Example.COM.").unwrap();
        assert_eq!(d.to_string(), "*.example.com");
        assert!(d.matches("api.example.com"));
        assert!(d.matches("A.B.EXAMPLE.com."));
        assert!(!d.matches("example.com"));
        assert!(!d.matches("evilexample.com"));
        assert!(!d.matches("example.com.evil.net"));
        let exact = DomainPattern::parse("registry.npmjs.org").unwrap();
        assert!(exact.matches("Registry.NPMJS.org."));
        assert!(!exact.matches("x.registry.npmjs.org"));
        // Punycode: the look-alike stays distinct from the ASCII name.
        let idn = DomainPattern::parse("bücher.example").unwrap();
        assert_eq!(idn.name(), "xn--bcher-kva.example");
        assert!(idn.matches("xn--bcher-kva.example"));
        assert!(!DomainPattern::parse("example.com")
            .unwrap()
            .matches("еxample.com")); // Cyrillic е
    }

    #[test]
    fn domains_rejected() {
        assert_eq!(DomainPattern::parse("*"), Err(NetError::Star));
        assert!(matches!(
            DomainPattern::parse("*.com"),
            Err(NetError::PublicSuffix(..))
        ));
        assert!(matches!(
            DomainPattern::parse("*.co.uk"),
            Err(NetError::PublicSuffix(..))
        ));
        assert!(matches!(
            DomainPattern::parse("com"),
            Err(NetError::PublicSuffix(..))
        ));
        assert!(DomainPattern::parse("*.example.co.uk").is_ok());
        assert!(
            matches!(DomainPattern::parse("https://github.com/x"), Err(NetError::Url(_, h)) if h == "github.com")
        );
        assert!(matches!(
            DomainPattern::parse("1.2.3.4"),
            Err(NetError::IpLiteral(_))
        ));
        assert!(matches!(
            DomainPattern::parse("::1"),
            Err(NetError::IpLiteral(_))
        ));
        assert!(matches!(
            DomainPattern::parse("a.*.com"),
            Err(NetError::BadDomain(..))
        ));
        assert!(matches!(
            DomainPattern::parse("example.com:443"),
            Err(NetError::BadDomain(..))
        ));
        assert!(matches!(
            DomainPattern::parse("a..b"),
            Err(NetError::BadDomain(..))
        ));
    }

    #[test]
    fn cidrs_and_ports() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert!(
            matches!(parse_cidr("::ffff:10.1.0.0/112"), Err(NetError::MappedCidr(_, s)) if s == "10.1.0.0/16")
        );
        assert!(
            matches!(parse_cidr("::ffff:127.0.0.1"), Err(NetError::MappedCidr(_, s)) if s == "127.0.0.1/32")
        );
        // Networks around the mapped range are IPv6 rules like any other.
        assert_eq!(parse_cidr("::/0").unwrap().to_string(), "::/0");
        assert_eq!(
            parse_cidr("::fffe:0:0/96").unwrap().to_string(),
            "::fffe:0:0/96"
        );
        assert!(
            matches!(parse_cidr("10.0.0.1/8"), Err(NetError::HostBits(_, s)) if s == "10.0.0.0/8")
        );
        assert!(matches!(
            parse_cidr("10.0.0.0/33"),
            Err(NetError::BadCidr(..))
        ));
        assert!(matches!(
            parse_cidr("300.1.1.1"),
            Err(NetError::BadCidr(..))
        ));
        assert_eq!(
            PortSet::parse_range("8000-8100").unwrap(),
            PortRange {
                first: 8000,
                last: 8100
            }
        );
        assert!(matches!(
            PortSet::parse_range("0"),
            Err(NetError::BadPort(_))
        ));
        assert!(matches!(
            PortSet::parse_range("65536"),
            Err(NetError::BadPort(_))
        ));
        assert!(matches!(
            PortSet::parse_range("90-80"),
            Err(NetError::EmptyRange(_))
        ));
        let set = PortSet::new(vec![
            PortRange::single(81),
            PortRange::single(80),
            PortRange {
                first: 82,
                last: 90,
            },
        ]);
        assert_eq!(set.to_string(), "80-90");
        assert!(set.contains(85) && !set.contains(91));
    }
}
