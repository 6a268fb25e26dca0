//! What the policy allows on the way out, as the resolver and the proxy ask it.
//!
//! Pure (no I/O, no privilege).
//!
//! - A **name** is allowed when a domain rule matches it ([`DomainPattern::matches`]: case and a
//!   trailing dot are normalised, punycode compared in ASCII, `*.example.com` matches names
//!   strictly below `example.com`). Its ports are the union of the matching rules' ports (80
//!   and 443 when a rule names none).
//! - An **address an allowed name resolves to** is usable unless it lies in a special range
//!   ([`special_range`]: loopback, private, link-local with the cloud metadata address,
//!   CGNAT, ULA, multicast, documentation, ...). This defeats DNS rebinding: a public name that
//!   an attacker points at 127.0.0.1 or 169.254.169.254 reaches nothing. `--allow-resolved CIDR`
//!   lets names resolve into CIDR anyway (an internal registry on 10.0.0.0/8, a test zone on
//!   127.0.0.0/8); it allows no direct connection to CIDR.
//! - An **IP literal** (`CONNECT 1.2.3.4:443`) is allowed only by a TCP CIDR rule that contains it
//!   with the port. An address in a special range needs a rule whose CIDR lies inside that
//!   range (as the kernel layer treats link-local space): `0.0.0.0/0` does not open
//!   169.254.169.254 or 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nono_policy::ir::{NetMode, Policy, RuleId};
use nono_policy::net::{DomainPattern, IpNet, PortSet, Protocol};

/// The egress rules of one run.
#[derive(Debug, Clone, Default)]
pub struct EgressRules {
    domains: Vec<(RuleId, DomainPattern, PortSet)>,
    cidrs: Vec<(RuleId, IpNet, PortSet)>,
    resolve_into: Vec<IpNet>,
}

/// Why a name, port or address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No domain rule matches the name.
    Name(String),
    /// A domain rule matches, but not on this port.
    Port {
        name: String,
        port: u16,
        allowed: PortSet,
    },
    /// Every address the name resolved to is in a special range.
    Special {
        name: String,
        addrs: Vec<(IpAddr, &'static str)>,
    },
    /// The upstream has no address for the name.
    NoAddress(String),
    /// An IP literal no TCP CIDR rule allows.
    Literal {
        addr: IpAddr,
        port: u16,
        special: Option<&'static str>,
    },
    /// The upstream resolvers failed.
    Upstream(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Name(n) => write!(f, "no domain rule allows `{n}`"),
            Refusal::Port {
                name,
                port,
                allowed,
            } => write!(
                f,
                "`{name}` is allowed on port(s) {allowed} only, not {port}"
            ),
            Refusal::Special { name, addrs } => {
                let list: Vec<String> = addrs.iter().map(|(a, r)| format!("{a} ({r})")).collect();
                write!(
                    f,
                    "`{name}` resolves only to special-range addresses: {} (allow with \
                     --allow-resolved CIDR)",
                    list.join(", ")
                )
            }
            Refusal::NoAddress(n) => write!(f, "`{n}` has no address"),
            Refusal::Literal {
                addr,
                port,
                special,
            } => write!(
                f,
                "{addr} port {port}: IP addresses need a TCP CIDR rule allowing them{}",
                special
                    .map(|s| format!(" ({s}: the CIDR rule must lie inside that range)"))
                    .unwrap_or_default()
            ),
            Refusal::Upstream(e) => write!(f, "the upstream resolver failed: {e}"),
        }
    }
}

impl EgressRules {
    /// The rules of `policy`; `resolve_into` are the `--allow-resolved` CIDRs. With `net allow
    /// all` nothing is restricted and no rule is needed: callers do not start the proxy then.
    pub fn from_policy(policy: &Policy, resolve_into: &[IpNet]) -> EgressRules {
        if policy.net.mode == NetMode::Unrestricted {
            return EgressRules::default();
        }
        EgressRules {
            domains: policy
                .net
                .domains
                .iter()
                .map(|r| (r.id, r.domain.clone(), r.ports.clone()))
                .collect(),
            cidrs: policy
                .net
                .cidrs
                .iter()
                .filter(|r| r.protocol == Protocol::Tcp)
                .map(|r| (r.id, r.net, r.ports.clone()))
                .collect(),
            resolve_into: resolve_into.to_vec(),
        }
    }

    /// Rules built directly (tests and `nono egress-serve`).
    pub fn new(domains: Vec<(RuleId, DomainPattern, PortSet)>, resolve_into: Vec<IpNet>) -> Self {
        EgressRules {
            domains,
            cidrs: Vec::new(),
            resolve_into,
        }
    }

    pub fn domain_rule_ids(&self) -> Vec<RuleId> {
        self.domains.iter().map(|(id, _, _)| *id).collect()
    }

    /// The first rule matching `name` and the ports every matching rule allows together.
    pub fn name(&self, name: &str) -> Option<(RuleId, PortSet)> {
        let mut found: Option<(RuleId, PortSet)> = None;
        for (id, pattern, ports) in &self.domains {
            if pattern.matches(name) {
                found = Some(match found {
                    None => (*id, ports.clone()),
                    Some((first, acc)) => (first, acc.union(ports)),
                });
            }
        }
        found
    }

    /// The rule allowing `name` on `port`.
    pub fn name_port(&self, name: &str, port: u16) -> Result<RuleId, Refusal> {
        match self.name(name) {
            None => Err(Refusal::Name(name.to_string())),
            Some((id, ports)) if ports.contains(port) => Ok(id),
            Some((_, ports)) => Err(Refusal::Port {
                name: name.to_string(),
                port,
                allowed: ports,
            }),
        }
    }

    /// Whether an allowed name may resolve to `addr`: `Err` names the special range.
    pub fn resolved_address(&self, addr: IpAddr) -> Result<(), &'static str> {
        match special_range(addr) {
            None => Ok(()),
            Some(_) if self.resolve_into.iter().any(|n| n.contains(&addr)) => Ok(()),
            Some((name, _)) => Err(name),
        }
    }

    /// The CIDR rule allowing a connection to the literal `addr`:`port`.
    pub fn literal(&self, addr: IpAddr, port: u16) -> Result<RuleId, Refusal> {
        let addr = canonical(addr);
        let special = special_range(addr);
        self.cidrs
            .iter()
            .filter(|(_, net, ports)| net.contains(&addr) && ports.contains(port))
            .filter(|(_, net, _)| match special {
                None => true,
                Some((_, range)) => range.contains(net),
            })
            .map(|(id, _, _)| *id)
            .next()
            .ok_or(Refusal::Literal {
                addr,
                port,
                special: special.map(|(n, _)| n),
            })
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as the IPv4 address it is.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> (Ipv4Addr, u8) {
    (Ipv4Addr::new(a, b, c, d), len)
}

/// IPv4 special-purpose ranges (RFC 6890 and successors) nothing public lives in.
const SPECIAL_V4: &[(&str, (Ipv4Addr, u8))] = &[
    ("this network", v4(0, 0, 0, 0, 8)),
    ("private", v4(10, 0, 0, 0, 8)),
    ("shared address space (CGNAT)", v4(100, 64, 0, 0, 10)),
    ("loopback", v4(127, 0, 0, 0, 8)),
    ("link-local (cloud metadata)", v4(169, 254, 0, 0, 16)),
    ("private", v4(172, 16, 0, 0, 12)),
    ("IETF protocol assignments", v4(192, 0, 0, 0, 24)),
    ("documentation", v4(192, 0, 2, 0, 24)),
    ("6to4 relay anycast", v4(192, 88, 99, 0, 24)),
    ("private", v4(192, 168, 0, 0, 16)),
    ("benchmarking", v4(198, 18, 0, 0, 15)),
    ("documentation", v4(198, 51, 100, 0, 24)),
    ("documentation", v4(203, 0, 113, 0, 24)),
    ("multicast", v4(224, 0, 0, 0, 4)),
    ("reserved", v4(240, 0, 0, 0, 4)),
];

/// IPv6 special-purpose ranges. IPv4-mapped addresses are checked as IPv4 ([`canonical`]);
/// NAT64 (64:ff9b::/96) by the IPv4 address it embeds.
const SPECIAL_V6: &[(&str, (u16, u8))] = &[
    ("unique local (ULA)", (0xfc00, 7)),
    ("link-local", (0xfe80, 10)),
    ("site-local (deprecated)", (0xfec0, 10)),
    ("multicast", (0xff00, 8)),
];

/// The special range `addr` lies in, by name and CIDR; `None` for a public address.
pub fn special_range(addr: IpAddr) -> Option<(&'static str, IpNet)> {
    match canonical(addr) {
        IpAddr::V4(a) => SPECIAL_V4.iter().find_map(|(name, (base, len))| {
            let net = IpNet::new(IpAddr::V4(*base), *len).expect("valid prefix");
            net.contains(&IpAddr::V4(a)).then_some((*name, net))
        }),
        IpAddr::V6(a) => {
            let exact = |s: &str| -> IpNet { s.parse().expect("valid CIDR") };
            if a == Ipv6Addr::LOCALHOST {
                return Some(("loopback", exact("::1/128")));
            }
            if a == Ipv6Addr::UNSPECIFIED {
                return Some(("unspecified", exact("::/128")));
            }
            let nat64 = exact("64:ff9b::/96");
            if nat64.contains(&IpAddr::V6(a)) {
                let o = a.octets();
                let embedded = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
                return special_range(IpAddr::V4(embedded)).map(|(n, _)| (n, nat64));
            }
            let doc = exact("2001:db8::/32");
            if doc.contains(&IpAddr::V6(a)) {
                return Some(("documentation", doc));
            }
            SPECIAL_V6.iter().find_map(|(name, (first, len))| {
                let base = Ipv6Addr::new(*first, 0, 0, 0, 0, 0, 0, 0);
                let net = IpNet::new(IpAddr::V6(base), *len).expect("valid prefix");
                net.contains(&IpAddr::V6(a)).then_some((*name, net))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(domains: &[(&str, &[u16])], cidrs: &[(&str, &[u16])], into: &[&str]) -> EgressRules {
        let ports = |p: &[u16]| {
            if p.is_empty() {
                PortSet::web_default()
            } else {
                PortSet::new(
                    p.iter()
                        .map(|p| nono_policy::net::PortRange::single(*p))
                        .collect(),
                )
            }
        };
        EgressRules {
            domains: domains
                .iter()
                .enumerate()
                .map(|(i, (d, p))| {
                    (
                        RuleId(i as u32 + 1),
                        DomainPattern::parse(d).unwrap(),
                        ports(p),
                    )
                })
                .collect(),
            cidrs: cidrs
                .iter()
                .enumerate()
                .map(|(i, (c, p))| {
                    let ports = if p.is_empty() {
                        PortSet::default()
                    } else {
                        ports(p)
                    };
                    (RuleId(i as u32 + 100), c.parse().unwrap(), ports)
                })
                .collect(),
            resolve_into: into.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn names_match_with_the_policy_semantics_and_default_ports() {
        let r = rules(
            &[("*.example.com", &[]), ("api.github.com", &[8443])],
            &[],
            &[],
        );
        assert_eq!(r.name_port("a.example.com", 443), Ok(RuleId(1)));
        assert_eq!(r.name_port("A.B.Example.COM.", 80), Ok(RuleId(1)));
        assert!(matches!(
            r.name_port("a.example.com", 22),
            Err(Refusal::Port { .. })
        ));
        assert!(matches!(
            r.name_port("example.com", 443),
            Err(Refusal::Name(_))
        ));
        assert!(matches!(
            r.name_port("evilexample.com", 443),
            Err(Refusal::Name(_))
        ));
        assert!(matches!(
            r.name_port("example.com.evil.net", 443),
            Err(Refusal::Name(_))
        ));
        assert_eq!(r.name_port("API.github.com.", 8443), Ok(RuleId(2)));
        assert!(matches!(
            r.name_port("api.github.com", 443),
            Err(Refusal::Port { .. })
        ));
    }

    #[test]
    fn special_ranges_are_named_and_mapped_addresses_unwrapped() {
        let s = |a: &str| special_range(a.parse().unwrap()).map(|(n, _)| n);
        assert_eq!(s("169.254.169.254"), Some("link-local (cloud metadata)"));
        assert_eq!(s("127.0.0.1"), Some("loopback"));
        assert_eq!(s("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(s("64:ff9b::a9fe:a9fe"), Some("link-local (cloud metadata)"));
        assert_eq!(s("10.1.2.3"), Some("private"));
        assert_eq!(s("100.100.1.1"), Some("shared address space (CGNAT)"));
        assert_eq!(s("fd00::1"), Some("unique local (ULA)"));
        assert_eq!(s("fe80::1"), Some("link-local"));
        assert_eq!(s("::1"), Some("loopback"));
        assert_eq!(s("93.184.216.34"), None);
        assert_eq!(s("2606:4700::1111"), None);
        assert_eq!(s("64:ff9b::808:808"), None);
    }

    #[test]
    fn resolving_into_a_special_range_needs_allow_resolved() {
        let r = rules(&[("a.test", &[])], &[], &["127.0.0.0/8"]);
        assert_eq!(r.resolved_address("127.0.0.2".parse().unwrap()), Ok(()));
        assert!(r
            .resolved_address("169.254.169.254".parse().unwrap())
            .is_err());
        assert!(r.resolved_address("10.0.0.1".parse().unwrap()).is_err());
        assert_eq!(r.resolved_address("93.184.216.34".parse().unwrap()), Ok(()));
        // --allow-resolved opens no literal.
        assert!(r.literal("127.0.0.2".parse().unwrap(), 443).is_err());
    }

    #[test]
    fn literals_need_a_cidr_rule_inside_the_special_range() {
        let r = rules(&[], &[("0.0.0.0/0", &[443]), ("127.0.0.0/8", &[])], &[]);
        assert_eq!(
            r.literal("93.184.216.34".parse().unwrap(), 443),
            Ok(RuleId(100))
        );
        assert!(r.literal("93.184.216.34".parse().unwrap(), 80).is_err());
        assert!(r.literal("169.254.169.254".parse().unwrap(), 443).is_err());
        assert_eq!(r.literal("127.0.0.5".parse().unwrap(), 9), Ok(RuleId(101)));
        assert_eq!(
            r.literal("::ffff:127.0.0.5".parse().unwrap(), 9),
            Ok(RuleId(101))
        );
    }
}
