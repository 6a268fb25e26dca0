//! The DNS resolver nono serves on loopback (UDP and TCP), and the lookups of the proxy.
//!
//! Privilege: none (binding loopback ports above 1023; the kernel layer redirects the
//! sandbox's port-53 traffic here). Wire format: `hickory-proto`; nothing is hand-parsed.
//!
//! For each query:
//! 1. Anything but one standard `IN` question gets FORMERR/NOTIMP/REFUSED.
//! 2. A name no domain rule allows gets **REFUSED** and is **never forwarded**: a query for a
//!    non-allowed name would itself carry data out (`secret.attacker.example`).
//! 3. An allowed query is sent to the upstreams with a fresh id ([`super::upstream`]).
//! 4. From the reply, only the CNAME chain starting at the question and the records owned by
//!    names on it are kept; the additional section (glue addresses nobody asked for) is dropped
//!    and of the authority section only the SOA (negative caching) stays.
//! 5. A/AAAA addresses in a special range ([`super::rules::special_range`]) are removed unless
//!    `--allow-resolved` covers them (DNS rebinding to 127.0.0.1 or 169.254.169.254).
//! 6. Each address left is handed to the [`AllowedDestinations`] sink with the name asked for,
//!    the rule, its ports and its TTL (at least [`MIN_TTL`]), **before** the answer is sent, so
//!    a connect that follows the answer finds it allowed. The answer keeps the upstream's TTLs,
//!    so clients re-resolve when the allowance ends.
//! 7. [`expire_loop`] removes grants whose TTL is over: once the name moves, the old address is
//!    no longer allowed.
//!
//! A sink failure answers SERVFAIL: the client gets no address the sink could not allow.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use nono_policy::ir::RuleId;
use nono_policy::net::PortSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::rules::{EgressRules, Refusal};

/// The shortest time an address stays allowed after an answer, so that a TTL-0 answer can
/// still be connected to right after it arrives.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// The most addresses one answer may add: an allowed wildcard whose zone an attacker
/// controls must not fill the kernel maps every sandbox shares with one answer.
pub const MAX_ADDRS_PER_ANSWER: usize = 16;

/// How often expired grants are removed.
pub const EXPIRE_EVERY: Duration = Duration::from_millis(250);

/// One address an allowed name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The name asked for, normalised (lower case, no trailing dot).
    pub name: String,
    pub addr: IpAddr,
    /// The ports the domain rules allow for that name.
    pub ports: PortSet,
    /// The first domain rule that matched.
    pub rule: RuleId,
    /// The TTL the allowance was given (the record's, at least [`MIN_TTL`]).
    pub ttl: Duration,
    pub expires: Instant,
}

/// Where the resolver puts the addresses it returns: the kernel layer's per-sandbox maps, or
/// an in-memory [`DestinationTable`]. `allow` is called before the answer leaves; `expire`
/// periodically, and returns what it removed.
pub trait AllowedDestinations: Send + Sync {
    fn allow(&self, grant: &Grant) -> Result<()>;
    fn expire(&self, now: Instant) -> Result<Vec<Grant>>;
}

/// The allowed destinations in memory: what the kernel maps would hold, and the name each
/// address was resolved from (for messages and audit).
#[derive(Debug, Default)]
pub struct DestinationTable {
    grants: Mutex<HashMap<(IpAddr, String), Grant>>,
}

impl DestinationTable {
    /// The live grant allowing `addr`:`port`, if any (what a connect would find in the kernel
    /// map; the proxy resolves per connection and does not need it).
    #[cfg(test)]
    pub fn lookup(&self, addr: IpAddr, port: u16, now: Instant) -> Option<Grant> {
        let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        grants
            .values()
            .find(|g| g.addr == addr && g.ports.contains(port) && g.expires > now)
            .cloned()
    }
}

impl AllowedDestinations for DestinationTable {
    fn allow(&self, grant: &Grant) -> Result<()> {
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let key = (grant.addr, grant.name.clone());
        match grants.get_mut(&key) {
            // A later answer can only extend an allowance; a shorter TTL must not cut short
            // the one a client is still relying on.
            Some(g) if g.expires >= grant.expires => {}
            _ => {
                grants.insert(key, grant.clone());
            }
        }
        Ok(())
    }

    fn expire(&self, now: Instant) -> Result<Vec<Grant>> {
        let mut grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<(IpAddr, String)> = grants
            .iter()
            .filter(|(_, g)| g.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(gone.into_iter().filter_map(|k| grants.remove(&k)).collect())
    }
}

/// What one lookup of an allowed name produced.
#[derive(Debug)]
pub struct Lookup {
    /// The filtered reply (id and question of the client's query).
    pub reply: Message,
    /// The addresses it carries, in answer order.
    pub addrs: Vec<IpAddr>,
    /// Addresses removed for lying in a special range.
    pub stripped: Vec<(IpAddr, &'static str)>,
    /// The shortest allowance given to an address of this answer.
    pub ttl: Option<Duration>,
}

/// The resolver of one run.
pub struct Resolver {
    rules: EgressRules,
    upstreams: Vec<SocketAddr>,
    sink: Arc<dyn AllowedDestinations>,
    /// The proxy's answers by name, until the shortest TTL among them ends (DNS clients do
    /// their own caching; their queries are always forwarded).
    cache: Mutex<HashMap<String, (Vec<IpAddr>, Instant)>>,
}

/// The name as grants and messages show it: lower case, no trailing dot.
fn normalised(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    s.strip_suffix('.').map(str::to_string).unwrap_or(s)
}

impl Resolver {
    pub fn new(
        rules: EgressRules,
        upstreams: Vec<SocketAddr>,
        sink: Arc<dyn AllowedDestinations>,
    ) -> Resolver {
        Resolver {
            rules,
            upstreams,
            sink,
            cache: Mutex::default(),
        }
    }

    pub fn rules(&self) -> &EgressRules {
        &self.rules
    }

    /// Answer one query as received on the wire. `None` when it is not even a DNS header (no
    /// id to answer to).
    pub async fn answer_bytes(&self, packet: &[u8]) -> Option<Message> {
        match Message::from_vec(packet) {
            Ok(m) => Some(self.answer(m).await),
            Err(_) if packet.len() >= 2 => {
                let id = u16::from_be_bytes([packet[0], packet[1]]);
                Some(Message::error_msg(id, OpCode::Query, ResponseCode::FormErr))
            }
            Err(_) => None,
        }
    }

    /// Answer one parsed query (steps 1 to 6 of the module doc).
    pub async fn answer(&self, query: Message) -> Message {
        let id = query.metadata.id;
        let error = |code: ResponseCode| {
            let mut m = Message::error_msg(id, query.metadata.op_code, code);
            m.metadata.recursion_desired = query.metadata.recursion_desired;
            m.metadata.recursion_available = true;
            m.queries = query.queries.clone();
            m
        };
        if query.metadata.message_type != MessageType::Query {
            return error(ResponseCode::FormErr);
        }
        if query.metadata.op_code != OpCode::Query {
            return error(ResponseCode::NotImp);
        }
        let [q] = query.queries.as_slice() else {
            return error(ResponseCode::FormErr);
        };
        let name = normalised(q.name());
        let Some((rule, ports)) = self.rules.name(&name) else {
            tracing::info!(
                "dns: refused {} {} (no domain rule allows it; not forwarded)",
                escape(&name),
                q.query_type()
            );
            return error(ResponseCode::Refused);
        };
        if q.query_class() != DNSClass::IN {
            return error(ResponseCode::Refused);
        }
        match self.lookup(q, &name, rule, &ports).await {
            Ok(mut l) => {
                l.reply.metadata.id = id;
                l.reply.metadata.recursion_desired = query.metadata.recursion_desired;
                l.reply.queries = query.queries.clone();
                l.reply
            }
            Err(e) => {
                tracing::warn!("dns: {} {}: {e:#}", escape(&name), q.query_type());
                error(ResponseCode::ServFail)
            }
        }
    }

    /// Forward an allowed question, filter the reply, feed the sink.
    async fn lookup(&self, q: &Query, name: &str, rule: RuleId, ports: &PortSet) -> Result<Lookup> {
        let mut up = Message::query();
        up.metadata.recursion_desired = true;
        up.add_query(q.clone());
        let reply = super::upstream::forward(&self.upstreams, &up).await?;

        // The CNAME chain from the question, in any order the upstream sent it.
        let mut chain = vec![q.name().to_lowercase()];
        loop {
            let before = chain.len();
            for r in &reply.answers {
                if let RData::CNAME(target) = &r.data {
                    if chain.contains(&r.name.to_lowercase())
                        && !chain.contains(&target.0.to_lowercase())
                    {
                        chain.push(target.0.to_lowercase());
                    }
                }
            }
            if chain.len() == before {
                break;
            }
        }

        let mut out = Message::response(0, OpCode::Query);
        out.metadata.recursion_available = true;
        out.metadata.response_code = reply.metadata.response_code;
        let mut addrs = Vec::new();
        let mut stripped = Vec::new();
        let mut shortest: Option<Duration> = None;
        let now = Instant::now();
        for r in reply.answers {
            if !chain.contains(&r.name.to_lowercase()) {
                continue;
            }
            if let Some(addr) = r.data.ip_addr() {
                if addrs.len() >= MAX_ADDRS_PER_ANSWER {
                    tracing::info!(
                        "dns: {}: more than {MAX_ADDRS_PER_ANSWER} addresses; {addr} dropped",
                        escape(name)
                    );
                    continue;
                }
                if let Err(range) = self.rules.resolved_address(addr) {
                    tracing::info!(
                        "dns: {}: removed {addr} from the answer ({range})",
                        escape(name)
                    );
                    stripped.push((addr, range));
                    continue;
                }
                let ttl = Duration::from_secs(r.ttl.into()).max(MIN_TTL);
                let grant = Grant {
                    name: name.to_string(),
                    addr,
                    ports: ports.clone(),
                    rule,
                    ttl,
                    expires: now + ttl,
                };
                self.sink
                    .allow(&grant)
                    .with_context(|| format!("allowing {addr} for `{name}` ({rule})"))?;
                addrs.push(addr);
                shortest = Some(shortest.map_or(ttl, |s| s.min(ttl)));
            }
            out.add_answer(r);
        }
        for r in reply.authorities {
            if r.record_type() == RecordType::SOA {
                out.add_authority(r);
            }
        }
        Ok(Lookup {
            reply: out,
            addrs,
            stripped,
            ttl: shortest,
        })
    }

    /// The addresses `name`:`port` may be reached at, for the proxy: the same rules, the same
    /// upstream path and the same filtering as a DNS client gets (IPv4 first).
    pub async fn resolve(&self, name: &str, port: u16) -> Result<(RuleId, Vec<IpAddr>), Refusal> {
        let rule = self.rules.name_port(name, port)?;
        let (_, ports) = self.rules.name(name).expect("name_port matched");
        // `from_utf8` applies IDNA: a Unicode name is looked up in its punycode form, as the
        // rule matched it.
        let mut qname = Name::from_utf8(name).map_err(|_| Refusal::Name(name.to_string()))?;
        // On the wire every name is absolute; the reply's question must compare equal.
        qname.set_fqdn(true);
        let norm = normalised(&qname);
        let now = Instant::now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(&norm) {
                Some((addrs, until)) if *until > now => return Ok((rule, addrs.clone())),
                Some(_) => {
                    cache.remove(&norm);
                }
                None => {}
            }
        }
        let a = Query::query(qname.clone(), RecordType::A);
        let aaaa = Query::query(qname, RecordType::AAAA);
        let (r4, r6) = tokio::join!(
            self.lookup(&a, &norm, rule, &ports),
            self.lookup(&aaaa, &norm, rule, &ports)
        );
        let mut addrs = Vec::new();
        let mut stripped = Vec::new();
        let mut failure = None;
        let mut shortest: Option<Duration> = None;
        for r in [r4, r6] {
            match r {
                Ok(l) => {
                    addrs.extend(l.addrs);
                    stripped.extend(l.stripped);
                    if let Some(t) = l.ttl {
                        shortest = Some(shortest.map_or(t, |s| s.min(t)));
                    }
                }
                Err(e) => failure = Some(format!("{e:#}")),
            }
        }
        if !addrs.is_empty() {
            if let (None, Some(ttl)) = (&failure, shortest) {
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(norm, (addrs.clone(), now + ttl));
            }
            return Ok((rule, addrs));
        }
        if !stripped.is_empty() {
            return Err(Refusal::Special {
                name: norm,
                addrs: stripped,
            });
        }
        match failure {
            Some(e) => Err(Refusal::Upstream(e)),
            None => Err(Refusal::NoAddress(norm)),
        }
    }
}

/// A name from the network, safe to print: anything but letters, digits, `-`, `.` and `_`
/// is shown escaped.
pub fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || "-._*".contains(c) {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect()
}

/// Bind the resolver's UDP socket at `addr` and its TCP listener on the same address and
/// port (when `addr` has port 0, the UDP port the kernel picks).
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("egress resolver: cannot listen on udp {addr}"))?;
        let at = udp.local_addr()?;
        match tokio::net::TcpListener::bind(at).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // Port 0: the TCP port may be taken; pick another pair.
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("egress resolver: cannot listen on tcp {at}"))
            }
        }
    }
    Err(last.expect("tried at least once")).context("egress resolver: no free port pair")
}

/// The largest UDP answer the client accepts.
fn udp_limit(query: &[u8]) -> usize {
    Message::from_vec(query)
        .ok()
        .and_then(|m| m.edns.map(|e| usize::from(e.max_payload())))
        .unwrap_or(512)
        .max(512)
}

pub async fn serve_udp(sock: tokio::net::UdpSocket, resolver: Arc<Resolver>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("dns: udp receive failed: {e}");
                continue;
            }
        };
        let packet = buf[..n].to_vec();
        let (sock, resolver) = (sock.clone(), resolver.clone());
        tokio::spawn(async move {
            let Some(reply) = resolver.answer_bytes(&packet).await else {
                return;
            };
            let mut bytes = match reply.to_vec() {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("dns: cannot encode an answer: {e}");
                    return;
                }
            };
            if bytes.len() > udp_limit(&packet) {
                // The client retries over TCP.
                match reply.truncate().to_vec() {
                    Ok(b) => bytes = b,
                    Err(_) => return,
                }
            }
            let _ = sock.send_to(&bytes, peer).await;
        });
    }
}

pub async fn serve_tcp(listener: tokio::net::TcpListener, resolver: Arc<Resolver>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let resolver = resolver.clone();
        tokio::spawn(async move {
            // One query after another until the client closes or idles.
            loop {
                let idle = Duration::from_secs(10);
                let Ok(Ok(len)) = tokio::time::timeout(idle, conn.read_u16()).await else {
                    return;
                };
                let mut packet = vec![0u8; len.into()];
                if conn.read_exact(&mut packet).await.is_err() {
                    return;
                }
                let Some(reply) = resolver.answer_bytes(&packet).await else {
                    return;
                };
                let Ok(bytes) = reply.to_vec() else { return };
                let Ok(len) = u16::try_from(bytes.len()) else {
                    return;
                };
                let mut framed = len.to_be_bytes().to_vec();
                framed.extend_from_slice(&bytes);
                if conn.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Remove expired grants every [`EXPIRE_EVERY`].
pub async fn expire_loop(resolver: Arc<Resolver>) {
    let mut tick = tokio::time::interval(EXPIRE_EVERY);
    loop {
        tick.tick().await;
        match resolver.sink.expire(Instant::now()) {
            Ok(gone) => {
                for g in gone {
                    tracing::debug!(
                        "dns: {} no longer allowed for `{}` (TTL over)",
                        g.addr,
                        g.name
                    );
                }
            }
            Err(e) => tracing::warn!("dns: removing expired addresses failed: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The resolver against a real upstream on a loopback UDP socket.
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::Record;
    use nono_policy::net::DomainPattern;
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream answering every query with `answers(question name)`; counts queries.
    fn upstream(answers: fn(&Name) -> Vec<Record>) -> (SocketAddr, Arc<AtomicUsize>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                let q = Message::from_vec(&buf[..n]).unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.queries = q.queries.clone();
                if q.queries[0].query_type() == RecordType::A {
                    r.answers = answers(q.queries[0].name());
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), peer);
            }
        });
        (addr, count)
    }

    fn a(owner: &str, ip: [u8; 4], ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_ascii(owner).unwrap(),
            ttl,
            RData::A(A(ip.into())),
        )
    }

    fn resolver(up: SocketAddr, sink: Arc<dyn AllowedDestinations>) -> Resolver {
        let rules = EgressRules::new(
            vec![(
                RuleId(7),
                DomainPattern::parse("*.example.com").unwrap(),
                PortSet::web_default(),
            )],
            vec![],
        );
        Resolver::new(rules, vec![up], sink)
    }

    fn query(name: &str) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn cname_chain_is_followed_and_strays_and_special_ranges_dropped() {
        let (up, _) = upstream(|_| {
            vec![
                Record::from_rdata(
                    Name::from_ascii("api.example.com.").unwrap(),
                    300,
                    RData::CNAME(CNAME(Name::from_ascii("edge.cdn.net.").unwrap())),
                ),
                a("edge.cdn.net.", [93, 184, 216, 34], 30),
                a("edge.cdn.net.", [127, 0, 0, 1], 30),
                // Not on the chain: an injected record for another name.
                a("bank.example.org.", [203, 0, 114, 9], 30),
            ]
        });
        let table = Arc::new(DestinationTable::default());
        let r = resolver(up, table.clone());
        let reply = block_on(r.answer(query("API.example.com.")));
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        let addrs: Vec<IpAddr> = reply
            .answers
            .iter()
            .filter_map(|r| r.data.ip_addr())
            .collect();
        assert_eq!(addrs, vec![IpAddr::from([93, 184, 216, 34])]);
        assert_eq!(reply.answers.len(), 2, "the CNAME and one address");
        let now = Instant::now();
        let g = table
            .lookup(IpAddr::from([93, 184, 216, 34]), 443, now)
            .unwrap();
        assert_eq!(
            (g.name.as_str(), g.rule, g.ttl),
            ("api.example.com", RuleId(7), Duration::from_secs(30))
        );
        assert!(table
            .lookup(IpAddr::from([93, 184, 216, 34]), 22, now)
            .is_none());
        assert!(table
            .lookup(IpAddr::from([127, 0, 0, 1]), 443, now)
            .is_none());
        assert!(table
            .lookup(IpAddr::from([203, 0, 114, 9]), 443, now)
            .is_none());
    }

    #[test]
    fn one_answer_adds_at_most_a_bounded_number_of_addresses() {
        let (up, _) = upstream(|_| {
            (0..40u8)
                .map(|i| a("a.example.com.", [93, 184, 216, i], 30))
                .collect()
        });
        let table = Arc::new(DestinationTable::default());
        let r = resolver(up, table.clone());
        let reply = block_on(r.answer(query("a.example.com.")));
        assert_eq!(reply.answers.len(), MAX_ADDRS_PER_ANSWER);
        let now = Instant::now();
        assert!(table
            .lookup(IpAddr::from([93, 184, 216, 15]), 443, now)
            .is_some());
        assert!(table
            .lookup(IpAddr::from([93, 184, 216, 16]), 443, now)
            .is_none());
    }

    #[test]
    fn refused_names_are_not_forwarded() {
        let (up, count) = upstream(|_| vec![a("x.", [93, 184, 216, 34], 30)]);
        let r = resolver(up, Arc::new(DestinationTable::default()));
        for name in ["example.com.", "evilexample.com.", "example.com.evil.net."] {
            let reply = block_on(r.answer(query(name)));
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::Refused,
                "{name}"
            );
        }
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn grants_expire_and_ttl_zero_lives_min_ttl() {
        let (up, _) = upstream(|_| vec![a("a.example.com.", [93, 184, 216, 34], 0)]);
        let table = Arc::new(DestinationTable::default());
        let r = resolver(up, table.clone());
        block_on(r.answer(query("a.example.com.")));
        let ip = IpAddr::from([93, 184, 216, 34]);
        let now = Instant::now();
        assert!(table.lookup(ip, 80, now).is_some());
        assert!(table.expire(now).unwrap().is_empty());
        let later = now + MIN_TTL + Duration::from_millis(10);
        assert!(table.lookup(ip, 80, later).is_none());
        assert_eq!(table.expire(later).unwrap().len(), 1);
    }

    #[test]
    fn the_proxy_reuses_an_answer_until_its_ttl_ends() {
        let (up, count) = upstream(|_| vec![a("a.example.com.", [93, 184, 216, 34], 1)]);
        let r = resolver(up, Arc::new(DestinationTable::default()));
        let ip = IpAddr::from([93, 184, 216, 34]);
        for _ in 0..3 {
            assert_eq!(
                block_on(r.resolve("a.example.com", 443)),
                Ok((RuleId(7), vec![ip]))
            );
        }
        assert_eq!(count.load(Ordering::SeqCst), 2, "one A and one AAAA query");
        std::thread::sleep(MIN_TTL + Duration::from_millis(50));
        assert_eq!(
            block_on(r.resolve("a.example.com", 443)),
            Ok((RuleId(7), vec![ip]))
        );
        assert_eq!(count.load(Ordering::SeqCst), 4, "asked again after the TTL");
        // The port is checked on every call, cached or not.
        assert!(block_on(r.resolve("a.example.com", 22)).is_err());
    }

    struct Failing;
    impl AllowedDestinations for Failing {
        fn allow(&self, _: &Grant) -> Result<()> {
            anyhow::bail!("map full")
        }
        fn expire(&self, _: Instant) -> Result<Vec<Grant>> {
            Ok(vec![])
        }
    }

    #[test]
    fn a_sink_failure_answers_servfail_without_addresses() {
        let (up, _) = upstream(|_| vec![a("a.example.com.", [93, 184, 216, 34], 30)]);
        let r = resolver(up, Arc::new(Failing));
        let reply = block_on(r.answer(query("a.example.com.")));
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert!(reply.answers.is_empty());
    }

    #[test]
    fn names_are_escaped_for_output() {
        assert_eq!(escape("a.b-c_d"), "a.b-c_d");
        assert_eq!(escape("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }
}
