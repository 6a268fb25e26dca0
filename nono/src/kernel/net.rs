//! The policy's network rules as entries of the LPM tries the cgroup socket programs query.
//!
//! - Key: (sandbox, protocol, port) matched exactly, then the address by longest prefix. The
//!   programs look up the exact port first, then port 0, whose value carries a port range.
//! - Short port ranges (at most [`EXPAND_PORTS`] ports) become exact-port entries; wider ranges
//!   and "any port" become one port-0 entry with the range. Two different wide ranges on the
//!   same CIDR and protocol can't share that entry: the later rule is refused with both named.
//! - Link-local space (169.254.0.0/16, fe80::/10; the cloud metadata address is in it) gets a
//!   blocking entry (no direction allowed) under every key a rule uses, so a broad rule such as
//!   `0.0.0.0/0` does not reach it; only a rule whose CIDR lies inside link-local space reaches
//!   it, because its longer prefix wins.
//! - Every entry has an expiry (0 = never) so the domain resolver can add addresses with their
//!   DNS TTL at run time.
//! - Listen rules allow `bind` on the port for any address; binding port 0 (an ephemeral port)
//!   is always allowed by the programs.
//!
//! Privileges: none here (pure); the caller writes the maps.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{bail, Result};
use aya::maps::lpm_trie::Key;
use nono_common::{NetAllow, NetKeyV4, NetKeyV6, NET_BIND, NET_CONNECT, NET_KEY_FIXED_BITS};
use nono_policy::ir::{NetMode, Policy};
use nono_policy::net::{IpNet, Protocol};

/// Port ranges up to this many ports are expanded into exact-port entries.
pub const EXPAND_PORTS: u32 = 16;

const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;

fn protocol_number(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

/// (protocol, port, network) identifying one trie entry of a sandbox.
type Slot = (u16, u16, IpNet);

/// The trie entries of one sandbox, before the sandbox id is put in the keys.
#[derive(Debug, Default)]
pub struct NetEntries {
    entries: BTreeMap<Slot, NetAllow>,
}

fn link_local_v4() -> IpNet {
    "169.254.0.0/16".parse().expect("valid CIDR")
}
fn link_local_v6() -> IpNet {
    "fe80::/10".parse().expect("valid CIDR")
}

fn is_link_local(net: &IpNet) -> bool {
    link_local_v4().contains(net) || link_local_v6().contains(net)
}

impl NetEntries {
    /// Whether the network programs should be attached at all (`net allow all` needs none).
    pub fn enforced(policy: &Policy) -> bool {
        policy.net.mode == NetMode::Blocked
    }

    pub fn from_policy(policy: &Policy) -> Result<NetEntries> {
        let mut out = NetEntries::default();
        for rule in &policy.net.cidrs {
            let proto = protocol_number(rule.protocol);
            let ranges: Vec<(u16, u16)> = if rule.ports.is_empty() {
                vec![(0, u16::MAX)]
            } else {
                rule.ports
                    .ranges()
                    .iter()
                    .map(|r| (r.first, r.last))
                    .collect()
            };
            for (lo, hi) in ranges {
                out.add(rule.id.0, proto, lo, hi, rule.net, NET_CONNECT)?;
            }
        }
        for rule in &policy.net.listen {
            let proto = protocol_number(rule.protocol);
            for r in rule.ports.ranges() {
                for any in ["0.0.0.0/0", "::/0"] {
                    let net: IpNet = any.parse().expect("valid CIDR");
                    out.add(rule.id.0, proto, r.first, r.last, net, NET_BIND)?;
                }
            }
        }
        out.block_link_local();
        Ok(out)
    }

    fn add(
        &mut self,
        rule_id: u32,
        proto: u16,
        lo: u16,
        hi: u16,
        net: IpNet,
        direction: u32,
    ) -> Result<()> {
        let span = u32::from(hi) - u32::from(lo) + 1;
        let slots: Vec<(u16, u16, u16)> = if span <= EXPAND_PORTS && lo != 0 {
            (lo..=hi).map(|p| (p, p, p)).collect()
        } else {
            vec![(0, lo, hi)]
        };
        for (port, port_lo, port_hi) in slots {
            let slot = (proto, port, net);
            match self.entries.get_mut(&slot) {
                Some(existing) if existing.port_lo == port_lo && existing.port_hi == port_hi => {
                    existing.direction |= direction;
                }
                Some(existing) => bail!(
                    "rules r{} and r{rule_id} both allow port ranges on {net}: the kernel layer keeps one wide port range per network and protocol; merge them into one rule",
                    existing.rule_id
                ),
                None => {
                    self.entries.insert(
                        slot,
                        NetAllow {
                            rule_id,
                            port_lo,
                            port_hi,
                            direction,
                            _pad: 0,
                            expires_ns: 0,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Shadow link-local space under every key a broader rule uses.
    fn block_link_local(&mut self) {
        let keys: Vec<(u16, u16, bool)> = self
            .entries
            .keys()
            .map(|(proto, port, net)| (*proto, *port, matches!(net, IpNet::V6(_))))
            .collect();
        for (proto, port, v6) in keys {
            let ll = if v6 { link_local_v6() } else { link_local_v4() };
            let explicit = self
                .entries
                .keys()
                .any(|(p, q, n)| *p == proto && *q == port && is_link_local(n) && ll.contains(n));
            if explicit {
                continue; // a rule inside link-local space: its longer prefix decides
            }
            self.entries.entry((proto, port, ll)).or_insert(NetAllow {
                rule_id: 0,
                port_lo: 0,
                port_hi: u16::MAX,
                direction: 0,
                _pad: 0,
                expires_ns: 0,
            });
        }
    }

    /// Whether the policy itself has the entry (protocol, port, net). The domain resolver
    /// (`egress::kernel_sink`) adds its own entries at run time and must neither overwrite nor
    /// remove these.
    pub fn has_slot(&self, protocol: u16, port: u16, net: IpNet) -> bool {
        self.entries.contains_key(&(protocol, port, net))
    }

    /// The IPv4 and IPv6 trie entries of sandbox `sandbox_id`.
    #[allow(clippy::type_complexity)]
    pub fn keyed(
        &self,
        sandbox_id: u32,
    ) -> (
        Vec<(Key<NetKeyV4>, NetAllow)>,
        Vec<(Key<NetKeyV6>, NetAllow)>,
    ) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for ((protocol, port, net), allow) in &self.entries {
            match net.addr() {
                IpAddr::V4(a) => v4.push((
                    Key::new(
                        NET_KEY_FIXED_BITS + u32::from(net.prefix_len()),
                        NetKeyV4 {
                            sandbox_id,
                            protocol: *protocol,
                            port: *port,
                            addr: a.octets(),
                        },
                    ),
                    *allow,
                )),
                IpAddr::V6(a) => v6.push((
                    Key::new(
                        NET_KEY_FIXED_BITS + u32::from(net.prefix_len()),
                        NetKeyV6 {
                            sandbox_id,
                            protocol: *protocol,
                            port: *port,
                            addr: a.octets(),
                        },
                    ),
                    *allow,
                )),
            }
        }
        (v4, v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type RuleSpec<'a> = (&'a str, Protocol, &'a [(u16, u16)]);

    fn entries(rules: &[RuleSpec]) -> Result<NetEntries> {
        let mut out = NetEntries::default();
        for (i, (net, proto, ports)) in rules.iter().enumerate() {
            let ports: Vec<(u16, u16)> = if ports.is_empty() {
                vec![(0, u16::MAX)]
            } else {
                ports.to_vec()
            };
            for (lo, hi) in ports {
                out.add(
                    i as u32 + 1,
                    protocol_number(*proto),
                    lo,
                    hi,
                    net.parse()?,
                    NET_CONNECT,
                )?;
            }
        }
        out.block_link_local();
        Ok(out)
    }

    #[test]
    fn short_ranges_expand_and_wide_ones_use_port_zero() {
        let e = entries(&[("10.0.0.0/8", Protocol::Tcp, &[(80, 81), (1000, 2000)])]).unwrap();
        let slots: Vec<_> = e
            .entries
            .keys()
            .map(|(_, port, net)| (*port, net.to_string()))
            .collect();
        assert!(slots.contains(&(80, "10.0.0.0/8".into())));
        assert!(slots.contains(&(81, "10.0.0.0/8".into())));
        assert!(slots.contains(&(0, "10.0.0.0/8".into())));
        // Each key used gets a link-local blocker.
        assert!(slots.contains(&(80, "169.254.0.0/16".into())));
        assert!(slots.contains(&(0, "169.254.0.0/16".into())));
    }

    #[test]
    fn an_explicit_link_local_rule_is_not_blocked() {
        let e = entries(&[("169.254.169.254/32", Protocol::Tcp, &[(80, 80)])]).unwrap();
        assert!(e.entries.values().all(|a| a.direction == NET_CONNECT));
    }

    #[test]
    fn conflicting_wide_ranges_are_refused_naming_both_rules() {
        let err = entries(&[
            ("10.0.0.0/8", Protocol::Tcp, &[(1000, 2000)]),
            ("10.0.0.0/8", Protocol::Tcp, &[(3000, 4000)]),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("r1") && err.contains("r2"), "{err}");
    }
}
