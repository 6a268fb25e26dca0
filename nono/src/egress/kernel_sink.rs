//! [`AllowedDestinations`] on the kernel layer's network tries: each address the resolver
//! returns becomes a `/32` (`/128`) TCP connect entry of the sandbox, with the DNS TTL as its
//! expiry.
//!
//! Privilege: CAP_BPF (root): it writes the pinned `NONO_NET_V4`/`NONO_NET_V6` maps. Kernel
//! assumptions: the cgroup socket programs of `nono-ebpf/src/net.rs`, which honour
//! `NetAllow::expires_ns` against `bpf_ktime_get_ns()` (CLOCK_MONOTONIC), so an entry stops
//! counting the moment its TTL ends even before [`AllowedDestinations::expire`] removes it.
//!
//! - Domain rules are TCP (as in the Landlock back-end). Their ports become exact-port entries
//!   when there are at most [`EXPAND_PORTS`]; one wider range becomes a port-0 entry with the
//!   range; several wide ranges are refused (the resolver then answers SERVFAIL).
//! - An entry the policy itself has (a CIDR rule on exactly that address and port) is never
//!   overwritten or removed: the policy already decides there.
//! - Several names resolving to one address share its entry; it lives as long as the longest
//!   TTL, and the first name's rule id is kept for events.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use aya::maps::lpm_trie::Key;
use nono_common::{
    names, DnsRedirect, NetAllow, NetKeyV4, NetKeyV6, NET_CONNECT, NET_KEY_FIXED_BITS,
};
use nono_policy::backend::landlock::LandlockPlan;
use nono_policy::ir::Policy;
use nono_policy::net::{IpNet, PortSet};

use super::resolver::{AllowedDestinations, DestinationTable, Grant, Resolver};
use super::rules::{canonical, EgressRules};
use super::{Listen, Service};
use crate::kernel::net::{NetEntries, EXPAND_PORTS};
use crate::kernel::{KernelLayer, Maps};

/// The most addresses a sandbox's resolver may have in the shared maps at once; past it the
/// resolver answers SERVFAIL until TTLs free room.
pub const MAX_LIVE_ENTRIES: usize = 4096;

const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;

/// One entry this sink wrote: (address, key port) with its value and the grants behind it.
type Slot = (IpAddr, u16);

pub struct KernelDestinations {
    sandbox_id: u32,
    policy: NetEntries,
    inner: Mutex<Inner>,
    names: AnsweredNames,
}

/// The last name each address was answered for, for the audit trail's network events (a deny
/// after the TTL ended still names what was asked). Bounded: cleared past
/// `4 * MAX_LIVE_ENTRIES` addresses.
#[derive(Clone, Default)]
pub struct AnsweredNames(Arc<Mutex<HashMap<IpAddr, String>>>);

impl AnsweredNames {
    /// Keyed by the canonical address: a `connect6` event carries an IPv4 answer in mapped form.
    pub fn get(&self, addr: IpAddr) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&canonical(addr)).cloned()
    }

    fn note(&self, addr: IpAddr, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 4 * MAX_LIVE_ENTRIES {
            map.clear();
        }
        map.insert(canonical(addr), name.to_string());
    }
}

/// The sink of `--strict-domains` in kernel mode: answers open nothing to the sandbox (only
/// nono's proxy is reachable; the proxy connects from outside the sandbox's cgroup), but each
/// answered address keeps its name, so a direct connect the programs deny is audited with the
/// name the sandbox asked for.
struct NamesOnly {
    names: AnsweredNames,
    table: DestinationTable,
}

impl AllowedDestinations for NamesOnly {
    fn allow(&self, grant: &Grant) -> Result<()> {
        self.names.note(grant.addr, &grant.name);
        self.table.allow(grant)
    }

    fn expire(&self, now: Instant) -> Result<Vec<Grant>> {
        self.table.expire(now)
    }
}

struct Inner {
    maps: Maps,
    live: HashMap<Slot, (NetAllow, Instant, Vec<Grant>)>,
}

/// CLOCK_MONOTONIC now, in ns: the clock of `bpf_ktime_get_ns` and of [`Instant`] on Linux.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The (key port, port_lo, port_hi) entries a port set needs.
fn port_slots(ports: &PortSet) -> Result<Vec<(u16, u16, u16)>> {
    if ports.count() <= EXPAND_PORTS {
        return Ok(ports
            .ranges()
            .iter()
            .flat_map(|r| r.first..=r.last)
            .map(|p| (p, p, p))
            .collect());
    }
    match ports.ranges() {
        [r] => Ok(vec![(0, r.first, r.last)]),
        [] => Ok(vec![(0, 0, u16::MAX)]),
        _ => bail!(
            "ports {ports}: the kernel layer keeps one wide port range per address; \
             list at most {EXPAND_PORTS} ports or one range"
        ),
    }
}

impl KernelDestinations {
    /// A sink for sandbox `sandbox_id` (`Sandbox::id()`), whose static entries came from
    /// `policy` (`NetEntries::from_policy` of the same policy). `maps` should be a handle of
    /// its own (`Maps::reopen`).
    pub fn new(maps: Maps, sandbox_id: u32, policy: NetEntries) -> KernelDestinations {
        KernelDestinations {
            sandbox_id,
            policy,
            inner: Mutex::new(Inner {
                maps,
                live: HashMap::new(),
            }),
            names: AnsweredNames::default(),
        }
    }

    fn write(&self, maps: &mut Maps, (addr, port): Slot, value: NetAllow) -> Result<()> {
        match addr {
            IpAddr::V4(a) => {
                let key = Key::new(
                    NET_KEY_FIXED_BITS + 32,
                    NetKeyV4 {
                        sandbox_id: self.sandbox_id,
                        protocol: IPPROTO_TCP,
                        port,
                        addr: a.octets(),
                    },
                );
                maps.net_v4.insert(&key, value, 0)?;
            }
            IpAddr::V6(a) => {
                let key = Key::new(
                    NET_KEY_FIXED_BITS + 128,
                    NetKeyV6 {
                        sandbox_id: self.sandbox_id,
                        protocol: IPPROTO_TCP,
                        port,
                        addr: a.octets(),
                    },
                );
                maps.net_v6.insert(&key, value, 0)?;
            }
        }
        Ok(())
    }

    fn remove(&self, maps: &mut Maps, (addr, port): Slot) -> Result<()> {
        match addr {
            IpAddr::V4(a) => maps.net_v4.remove(&Key::new(
                NET_KEY_FIXED_BITS + 32,
                NetKeyV4 {
                    sandbox_id: self.sandbox_id,
                    protocol: IPPROTO_TCP,
                    port,
                    addr: a.octets(),
                },
            ))?,
            IpAddr::V6(a) => maps.net_v6.remove(&Key::new(
                NET_KEY_FIXED_BITS + 128,
                NetKeyV6 {
                    sandbox_id: self.sandbox_id,
                    protocol: IPPROTO_TCP,
                    port,
                    addr: a.octets(),
                },
            ))?,
        }
        Ok(())
    }
}

impl AllowedDestinations for KernelDestinations {
    fn allow(&self, grant: &Grant) -> Result<()> {
        self.names.note(grant.addr, &grant.name);
        let remaining = grant.expires.saturating_duration_since(Instant::now());
        let expires_ns = monotonic_ns() + remaining.as_nanos() as u64;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { maps, live } = &mut *inner;
        // An IPv4-mapped answer (`::ffff:a.b.c.d` in an AAAA record) is an IPv4 destination:
        // the programs judge mapped connects by the IPv4 rules, so it is keyed there.
        let addr = canonical(grant.addr);
        for (port, lo, hi) in port_slots(&grant.ports).with_context(|| grant.rule.to_string())? {
            if self.policy.has_slot(IPPROTO_TCP, port, IpNet::from(addr)) {
                continue;
            }
            let slot = (addr, port);
            if !live.contains_key(&slot) && live.len() >= MAX_LIVE_ENTRIES {
                bail!(
                    "{} (`{}`): the sandbox already has {MAX_LIVE_ENTRIES} resolved addresses \
                     in the kernel map",
                    grant.rule,
                    grant.name
                );
            }
            let value = match live.get(&slot) {
                Some((v, _, _)) if (v.port_lo, v.port_hi) != (lo, hi) => bail!(
                    "{} (`{}`): {} already has port range {}-{} from another name",
                    grant.rule,
                    grant.name,
                    addr,
                    v.port_lo,
                    v.port_hi
                ),
                Some((v, _, _)) if v.expires_ns >= expires_ns => *v,
                Some((v, _, _)) => NetAllow { expires_ns, ..*v },
                None => NetAllow {
                    rule_id: grant.rule.0,
                    port_lo: lo,
                    port_hi: hi,
                    direction: NET_CONNECT,
                    _pad: 0,
                    expires_ns,
                },
            };
            self.write(maps, slot, value)
                .with_context(|| format!("allowing {addr} port {port} in the kernel map"))?;
            let entry = live
                .entry(slot)
                .or_insert_with(|| (value, grant.expires, Vec::new()));
            entry.0 = value;
            entry.1 = entry.1.max(grant.expires);
            entry.2.retain(|g| g.name != grant.name);
            entry.2.push(grant.clone());
        }
        Ok(())
    }

    fn expire(&self, now: Instant) -> Result<Vec<Grant>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { maps, live } = &mut *inner;
        let gone: Vec<Slot> = live
            .iter()
            .filter(|(_, (_, until, _))| *until <= now)
            .map(|(s, _)| *s)
            .collect();
        let mut out = Vec::new();
        for slot in gone {
            // The programs already ignore the entry (expires_ns); removing it frees the slot.
            self.remove(maps, slot).with_context(|| {
                format!("removing {} port {} from the kernel map", slot.0, slot.1)
            })?;
            if let Some((_, _, grants)) = live.remove(&slot) {
                out.extend(grants);
            }
        }
        out.dedup_by(|a, b| a.addr == b.addr && a.name == b.name);
        Ok(out)
    }
}

impl Drop for KernelDestinations {
    /// The sandbox's own cleanup removes every entry of its id; this only frees them sooner
    /// when the sink goes away first.
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let slots: Vec<Slot> = inner.live.keys().copied().collect();
        for slot in slots {
            let _ = self.remove(&mut inner.maps, slot);
        }
    }
}

/// The resolver of a kernel-layer sandbox and its DNS redirect; dropping it ends the redirect.
pub struct KernelEgress {
    service: Service,
    redirect: aya::maps::HashMap<aya::maps::MapData, u32, DnsRedirect>,
    sandbox_id: u32,
    resolver: SocketAddr,
    resolver6: Option<SocketAddr>,
    /// `--strict-domains`: nono's proxy, the only way to a name.
    proxy: Option<SocketAddr>,
    rules: EgressRules,
    upstreams: Vec<SocketAddr>,
    names: AnsweredNames,
}

impl Drop for KernelEgress {
    fn drop(&mut self) {
        let _ = self.redirect.remove(&self.sandbox_id);
    }
}

/// Allow (protocol, address, port) for the sandbox with a permanent entry of rule 0 (nono's
/// own: the resolver), TCP and UDP.
fn allow_resolver(maps: &mut Maps, sandbox_id: u32, addr: IpAddr, port: u16) -> Result<()> {
    let allow = NetAllow {
        rule_id: 0,
        port_lo: port,
        port_hi: port,
        direction: NET_CONNECT,
        _pad: 0,
        expires_ns: 0,
    };
    for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
        match addr {
            IpAddr::V4(a) => maps.net_v4.insert(
                &Key::new(
                    NET_KEY_FIXED_BITS + 32,
                    NetKeyV4 {
                        sandbox_id,
                        protocol,
                        port,
                        addr: a.octets(),
                    },
                ),
                allow,
                0,
            ),
            IpAddr::V6(a) => maps.net_v6.insert(
                &Key::new(
                    NET_KEY_FIXED_BITS + 128,
                    NetKeyV6 {
                        sandbox_id,
                        protocol,
                        port,
                        addr: a.octets(),
                    },
                ),
                allow,
                0,
            ),
        }
        .with_context(|| format!("allowing the sandbox's resolver at {addr} port {port}"))?;
    }
    Ok(())
}

/// Send the sandbox's port-53 traffic (UDP and TCP) to `resolver`: IPv4 and IPv4-mapped
/// destinations to the IPv4 address, native IPv6 ones to `resolver6` when there is one
/// (`nono-ebpf/src/dns.rs`); and allow the rewritten destinations in its rules (the IPv4 entry
/// also serves `connect6` on a dual-stack socket, which the programs judge by the IPv4 rules
/// when the address is mapped).
fn redirect_dns(
    layer: &KernelLayer,
    maps: &mut Maps,
    sandbox_id: u32,
    resolver: SocketAddr,
    resolver6: Option<SocketAddr>,
) -> Result<aya::maps::HashMap<aya::maps::MapData, u32, DnsRedirect>> {
    let SocketAddr::V4(v4) = resolver else {
        bail!("the DNS redirect needs an IPv4 resolver address, not {resolver}");
    };
    let v6 = match resolver6 {
        Some(SocketAddr::V6(a)) => Some(a),
        Some(other) => bail!("the IPv6 DNS redirect needs an IPv6 address, not {other}"),
        None => None,
    };
    let path = layer.pin_dir().join("maps").join(names::DNS_REDIRECT);
    let data = aya::maps::MapData::from_pin(&path)
        .with_context(|| format!("opening {} (rebuild the eBPF object)", path.display()))?;
    let mut redirect: aya::maps::HashMap<_, u32, DnsRedirect> =
        aya::maps::HashMap::try_from(aya::maps::Map::HashMap(data))?;
    // A crashed run leaves its redirect behind (its other entries are swept by the next
    // load): drop redirects of sandboxes no longer registered.
    let live: std::collections::HashSet<u32> = maps
        .sandboxes
        .iter()
        .filter_map(|e| e.ok().map(|(_, info)| info.sandbox_id))
        .collect();
    let stale: Vec<u32> = redirect
        .keys()
        .filter_map(|k| k.ok())
        .filter(|id| *id != sandbox_id && !live.contains(id))
        .collect();
    for id in stale {
        let _ = redirect.remove(&id);
    }
    allow_resolver(maps, sandbox_id, IpAddr::V4(*v4.ip()), v4.port())?;
    if let Some(a) = v6 {
        allow_resolver(maps, sandbox_id, IpAddr::V6(*a.ip()), a.port())?;
    }
    redirect
        .insert(
            sandbox_id,
            DnsRedirect {
                addr: v4.ip().octets(),
                port: v4.port(),
                _pad: 0,
                addr6: v6.map_or([0; 16], |a| a.ip().octets()),
                port6: v6.map_or(0, |a| a.port()),
                _pad6: 0,
            },
            0,
        )
        .context("registering the DNS redirect")?;
    Ok(redirect)
}

impl KernelEgress {
    /// Start the resolver for sandbox `sandbox_id` with `policy`'s domain rules (`upstreams`
    /// empty means `/etc/resolv.conf`; `allow_resolved` are the `--allow-resolved` CIDRs), and
    /// redirect the sandbox's port-53 traffic to it. Call it before the command starts: until
    /// then no domain's address is in the maps, so nothing is reachable by name.
    ///
    /// `strict` (`--strict-domains`): answers open nothing in the kernel. nono's proxy is served
    /// too (strict: each tunnel's TLS SNI or HTTP Host must be the allowed name), the sandbox
    /// may connect to it and nowhere else by name, and the command gets the proxy variables.
    /// The resolver still answers the sandbox's DNS (allowed names only, so nothing leaks), so
    /// programs that look a name up before using the proxy keep working.
    pub fn start(
        policy: &Policy,
        layer: &KernelLayer,
        sandbox_id: u32,
        upstreams: &[SocketAddr],
        allow_resolved: &[IpNet],
        strict: bool,
    ) -> Result<KernelEgress> {
        let rules = EgressRules::from_policy(policy, allow_resolved);
        let upstreams = super::upstream::upstreams(upstreams)?;
        let maps = layer.maps();
        let sink =
            KernelDestinations::new(maps.reopen()?, sandbox_id, NetEntries::from_policy(policy)?);
        let names = sink.names.clone();
        let sink: Arc<dyn AllowedDestinations> = if strict {
            Arc::new(NamesOnly {
                names: names.clone(),
                table: DestinationTable::default(),
            })
        } else {
            Arc::new(sink)
        };
        let resolver = Arc::new(Resolver::new(rules.clone(), upstreams.clone(), sink));
        let service = Service::start(
            resolver,
            &Listen {
                dns: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                dns6: Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))),
                proxy: strict.then(|| SocketAddr::from(([127, 0, 0, 1], 0))),
                strict,
                proxy_later: false,
            },
        )?;
        let addr = service.dns_udp.context("the resolver has no address")?;
        let mut kmaps = maps.reopen()?;
        let redirect = redirect_dns(layer, &mut kmaps, sandbox_id, addr, service.dns6)?;
        if let Some(SocketAddr::V4(p)) = service.proxy {
            // TCP only matters, but one helper writes both protocols; UDP to the proxy's port
            // reaches nothing (it listens on TCP). The IPv4 entry also serves a dual-stack
            // socket connecting to the proxy in mapped form.
            allow_resolver(&mut kmaps, sandbox_id, IpAddr::V4(*p.ip()), p.port())?;
        }
        Ok(KernelEgress {
            redirect,
            sandbox_id,
            resolver: addr,
            resolver6: service.dns6,
            proxy: service.proxy,
            service,
            rules,
            upstreams,
            names,
        })
    }

    /// The strict-domains proxy's decisions, for the audit session.
    pub fn decisions(&self) -> &super::Decisions {
        &self.service.decisions
    }

    /// The names the resolver answered, by address (for network events).
    pub fn names(&self) -> AnsweredNames {
        self.names.clone()
    }

    /// Allow TCP connect to port 53 in the Landlock plan, attributed to the domain rules:
    /// Landlock checks the address the program names (port 53) before the cgroup program
    /// rewrites it to the resolver, and the socket programs still decide where it goes.
    pub fn add_port_rule(&self, plan: &mut LandlockPlan) {
        super::fallback::add_connect_port(
            plan,
            nono_common::DNS_PORT,
            self.rules.domain_rule_ids(),
        );
        if let Some(p) = self.proxy {
            super::fallback::add_connect_port(plan, p.port(), self.rules.domain_rule_ids());
        }
    }

    /// `--strict-domains`: point the command at the proxy (nothing otherwise).
    pub fn set_env(&self, env: &mut Vec<(std::ffi::OsString, std::ffi::OsString)>) {
        if let Some(p) = self.proxy {
            super::fallback::point_env_at(env, &format!("http://{p}"));
        }
    }

    /// The line saying which mode is active (`nono run` prints it; tests read the address).
    pub fn describe(&self) -> String {
        let ups: Vec<String> = self.upstreams.iter().map(|u| u.to_string()).collect();
        let v6 = match self.resolver6 {
            Some(a) => format!(" and {a}"),
            None => " (no IPv6 loopback: IPv6 port 53 stays denied)".into(),
        };
        let ups = ups.join(", ");
        let n = self.rules.domain_rule_ids().len();
        match self.proxy {
            None => format!(
                "nono: egress: kernel mode: resolver at {}{v6} (udp, tcp); port 53 redirected \
                 to it; domain rules ({n}) enforced by the cgroup socket programs on the \
                 addresses it answers, until their TTL ends; names resolved via {ups}",
                self.resolver,
            ),
            Some(p) => format!(
                "nono: egress: kernel mode: resolver at {}{v6} (udp, tcp); port 53 redirected \
                 to it; strict domains: domain rules ({n}) enforced by nono's proxy at \
                 http://{p} (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY set), the only address the cgroup \
                 socket programs let the sandbox reach by name; each tunnel's TLS SNI (or HTTP \
                 Host) must be the name it was allowed for; names resolved via {ups}",
                self.resolver,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nono_policy::net::PortRange;

    #[test]
    fn ports_become_exact_entries_or_one_range() {
        assert_eq!(
            port_slots(&PortSet::web_default()).unwrap(),
            vec![(80, 80, 80), (443, 443, 443)]
        );
        let wide = PortSet::new(vec![PortRange {
            first: 8000,
            last: 9000,
        }]);
        assert_eq!(port_slots(&wide).unwrap(), vec![(0, 8000, 9000)]);
        let two = PortSet::new(vec![
            PortRange {
                first: 1000,
                last: 2000,
            },
            PortRange {
                first: 3000,
                last: 4000,
            },
        ]);
        assert!(port_slots(&two).is_err());
    }
}
