//! Test-served network for the egress tests: an upstream DNS server for a test zone and HTTP
//! servers on 127.0.0.x addresses named in it. Everything listens on loopback; nothing here
//! ever sends to another address, and nono's upstream in every test is a [`Zone`], never the
//! machine's resolver.
//!
//! - [`Zone`]: a UDP DNS server (wire format by hickory-proto) answering A/AAAA from a table the
//!   test edits while it runs, NXDOMAIN for unknown names, and logging every question that
//!   arrives, so a test can prove that a refused name never reached the upstream.
//! - [`HttpServer`]: answers every request with its own address as the body and counts the
//!   connections it accepted, so a test can prove that a denied connect never arrived.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One name's answers: a sequence of (addresses, TTL), one step per A query; the last repeats.
type Steps = Vec<(Vec<IpAddr>, u32)>;

#[derive(Default)]
struct ZoneState {
    records: HashMap<String, Steps>,
    /// How many A queries each name got (selects the step).
    a_queries: HashMap<String, usize>,
    /// Every question that arrived, normalised (lower case, no trailing dot), in order.
    log: Vec<String>,
}

/// An upstream DNS server for the test zone, on UDP `127.0.0.1:<port>`.
pub struct Zone {
    addr: SocketAddr,
    state: Arc<Mutex<ZoneState>>,
    stop: Arc<AtomicBool>,
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    pub fn start() -> Zone {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the test zone's UDP socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ZoneState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !sp.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&st, &buf[..n]) {
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        Zone { addr, state, stop }
    }

    /// The address to give nono as `--dns-upstream`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `name` resolves to `addrs` with `ttl`.
    pub fn set(&self, name: &str, addrs: &[&str], ttl: u32) {
        self.set_steps(name, &[(addrs, ttl)]);
    }

    /// `name` answers each A query with the next step (the last repeats).
    pub fn set_steps(&self, name: &str, steps: &[(&[&str], u32)]) {
        let steps = steps
            .iter()
            .map(|(a, ttl)| (a.iter().map(|s| s.parse().unwrap()).collect(), *ttl))
            .collect();
        let mut s = self.state.lock().unwrap();
        s.records.insert(norm(name), steps);
        s.a_queries.remove(&norm(name));
    }

    /// Every question that reached this server, normalised.
    pub fn queried(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Whether `name` (in any case, with or without the trailing dot) ever arrived.
    pub fn saw(&self, name: &str) -> bool {
        self.queried().contains(&norm(name))
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(state: &Mutex<ZoneState>, packet: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(packet).ok()?;
    if q.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut r = Message::response(q.metadata.id, OpCode::Query);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.authoritative = true;
    r.queries = q.queries.clone();
    let question = q.queries.first()?;
    let name = norm(&question.name().to_ascii());
    let mut s = state.lock().unwrap();
    s.log.push(name.clone());
    let Some(steps) = s.records.get(&name).cloned() else {
        r.metadata.response_code = ResponseCode::NXDomain;
        return r.to_vec().ok();
    };
    let step = if question.query_type() == RecordType::A {
        let n = s.a_queries.entry(name.clone()).or_default();
        *n += 1;
        (*n - 1).min(steps.len() - 1)
    } else {
        s.a_queries
            .get(&name)
            .copied()
            .unwrap_or(1)
            .saturating_sub(1)
            .min(steps.len() - 1)
    };
    let (addrs, ttl) = &steps[step];
    let owner = question.name().clone();
    for a in addrs {
        let data = match (a, question.query_type()) {
            (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        r.add_answer(Record::from_rdata(owner.clone(), *ttl, data));
    }
    r.to_vec().ok()
}

/// An HTTP server on `ip`:`port` that answers every request with its own address.
pub struct HttpServer {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Listen on `ip` at `port` (0: any free port).
    pub fn start(ip: &str, port: u16) -> HttpServer {
        let l = TcpListener::bind((ip, port)).expect("bind a test HTTP server");
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, sp) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                h.fetch_add(1, Ordering::SeqCst);
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let body = format!("served-by {}\n", addr.ip());
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(reply.as_bytes());
            }
        });
        HttpServer { addr, hits, stop }
    }

    /// How many connections reached this server.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A DNS query for `name`/`qtype` sent over UDP to `server`; the reply.
pub fn query_udp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(hickory_proto::op::Query::query(
        Name::from_ascii(name).unwrap(),
        qtype,
    ));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).expect("an answer from the resolver");
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.metadata.id, m.metadata.id);
    reply
}

/// The same query over TCP (two-byte length prefix).
pub fn query_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.add_query(hickory_proto::op::Query::query(
        Name::from_ascii(name).unwrap(),
        qtype,
    ));
    let bytes = m.to_vec().unwrap();
    let mut c = std::net::TcpStream::connect(server).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    c.write_all(&bytes).unwrap();
    let mut len = [0u8; 2];
    c.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

/// The addresses in a reply's answer section.
pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers.iter().filter_map(|r| r.data.ip_addr()).collect()
}
