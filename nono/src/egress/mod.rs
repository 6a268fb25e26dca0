//! Egress by domain: the resolver nono serves and the local proxy of the unprivileged mode.
//!
//! Privilege: none. Everything here runs in the `nono` parent process, outside the sandbox, on
//! a tokio runtime of its own thread ([`Service::start`]); it only opens loopback listeners and
//! sockets to the upstream resolvers and to the destinations the policy allows. Kernel
//! assumptions: none beyond TCP/UDP sockets; the confinement that makes the proxy the only way
//! out (Landlock ABI 4 TCP connect rules, seccomp's UDP block) is set up by `nono run`.
//!
//! - [`rules`]: which names, ports and addresses the policy allows, and the special ranges
//!   (loopback, private, link-local, CGNAT, ...) an allowed name may not resolve into unless
//!   `--allow-resolved CIDR` says so;
//! - [`resolver`]: the DNS resolver: answers only allowed names (others get REFUSED and are
//!   never forwarded), forwards to the upstreams, strips special-range addresses from answers,
//!   and hands each address it returns, with its TTL and name, to an [`AllowedDestinations`]
//!   sink before answering;
//! - [`proxy`]: the HTTP CONNECT (and plain `http://`) proxy of the unprivileged mode, which
//!   decides with the same rules and resolver;
//! - [`kernel_sink`]: the kernel mode of `nono run` (root, cgroup socket programs active): the
//!   sink on the kernel layer's per-sandbox network maps, and the port-53 redirect to the
//!   resolver;
//! - [`strict`]: `--strict-domains`, the proxy's check that the name inside a tunnel (TLS SNI,
//!   HTTP `Host`) is the name it was allowed for;
//! - [`mode`]: which mode `nono run` uses (kernel when the network programs are active, proxy
//!   otherwise) and the line saying so;
//! - [`fallback`]: how `nono run` uses the proxy (Landlock port rule, environment, the line
//!   saying which mode is active);
//! - [`cli`]: the hidden `nono egress-serve` (resolver and proxy in the foreground, for tests,
//!   benchmarks and debugging).

pub mod cli;
pub mod fallback;
pub mod kernel_sink;
pub mod mode;
pub mod proxy;
pub mod resolver;
pub mod rules;
pub mod strict;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};

pub use resolver::Resolver;

/// Where the proxy records its decisions: the run's audit session, attached once it exists
/// (the proxy starts before the session does). Until then, and without a session, decisions
/// go to stderr only.
#[derive(Clone, Default)]
pub struct Decisions(Arc<std::sync::OnceLock<DecisionSink>>);

/// The audit session the proxy's decisions go to.
pub struct DecisionSink {
    pub sender: crate::audit::ingest::AuditSender,
    /// Where each rule was written, for the events' `rule_source`.
    pub rule_source: Box<dyn Fn(u32) -> Option<String> + Send + Sync>,
    /// Record allowed requests too (`audit all`); refusals are always recorded.
    pub allows: bool,
}

impl Decisions {
    pub fn attach(&self, sink: DecisionSink) {
        // A second session cannot exist: one run, one proxy.
        let _ = self.0.set(sink);
    }

    /// One request the proxy decided. The proxy sees a TCP connection, not a process, so the
    /// event has no pid; `addr` is `None` for a name refused before it was resolved.
    pub(crate) fn record(
        &self,
        denied: bool,
        rule: Option<nono_policy::ir::RuleId>,
        addr: Option<std::net::IpAddr>,
        port: u16,
        name: Option<&str>,
    ) {
        let Some(sink) = self.0.get() else { return };
        if !denied && !sink.allows {
            return;
        }
        let rule_id = rule.map(|r| r.0);
        let event = crate::audit::event::AuditEvent {
            time_ns: crate::audit::time::now_ns(),
            pid: 0,
            process: String::new(),
            denied,
            rule_id,
            rule_source: rule_id.and_then(|id| (sink.rule_source)(id)),
            what: crate::audit::event::What::Net {
                op: "proxy".into(),
                addr,
                port,
                protocol: "tcp".into(),
                name: name.map(str::to_string),
            },
        };
        // Never waits: a full channel is counted as dropped in the session.
        sink.sender.try_send(vec![event]);
    }
}

/// The resolver and/or proxy running on their own thread. Dropping it leaves the thread
/// running until the process exits, which is what `nono run` wants: the sandbox may use the
/// proxy until the command and every survivor are gone, and nono exits right after that.
pub struct Service {
    pub proxy: Option<SocketAddr>,
    pub dns_udp: Option<SocketAddr>,
    pub dns_tcp: Option<SocketAddr>,
    /// The resolver's second address (UDP and TCP), if [`Listen::dns6`] was given and bound.
    pub dns6: Option<SocketAddr>,
    /// With [`Listen::proxy_later`]: where the proxy's listener goes once it exists (the
    /// proxy mode's listener is made inside the command's network namespace, after this starts).
    pub late_proxy: Option<tokio::sync::oneshot::Sender<std::net::TcpListener>>,
    /// The proxy's decisions, for the audit session.
    pub decisions: Decisions,
}

/// What to serve, and where.
#[derive(Debug, Clone, Default)]
pub struct Listen {
    pub proxy: Option<SocketAddr>,
    /// The DNS resolver, on UDP and TCP at the same address (the TCP port follows the UDP
    /// one when the port is 0).
    pub dns: Option<SocketAddr>,
    /// The resolver again at a second address (kernel mode: `[::1]:0`, where native IPv6
    /// port-53 traffic is redirected). Best effort: a host without IPv6 loopback serves none.
    pub dns6: Option<SocketAddr>,
    /// `--strict-domains`: the proxy checks the name inside each tunnel ([`strict`]).
    pub strict: bool,
    /// Serve the proxy on a listener handed over later through [`Service::late_proxy`].
    pub proxy_later: bool,
}

impl Service {
    /// Bind the listeners (so errors are reported here, before the command starts) and run
    /// them on a new thread with every signal blocked: `nono run` takes its signals
    /// synchronously on the main thread (see `run::sandbox::supervise`), and a thread with
    /// them unblocked would receive them and die of the default action.
    pub fn start(resolver: Arc<Resolver>, listen: &Listen) -> Result<Service> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("egress: cannot start the tokio runtime")?;
        let (proxy, udp, tcp, dns6) = rt.block_on(async {
            let proxy = match listen.proxy {
                Some(a) => Some(
                    tokio::net::TcpListener::bind(a)
                        .await
                        .with_context(|| format!("egress proxy: cannot listen on {a}"))?,
                ),
                None => None,
            };
            let (udp, tcp) = match listen.dns {
                Some(a) => {
                    let (u, t) = resolver::bind(a).await?;
                    (Some(u), Some(t))
                }
                None => (None, None),
            };
            let dns6 = match listen.dns6 {
                Some(a) => resolver::bind(a).await.ok(),
                None => None,
            };
            anyhow::Ok((proxy, udp, tcp, dns6))
        })?;
        let (late_proxy, late_listener) = match listen.proxy_later {
            true => {
                let (tx, rx) = tokio::sync::oneshot::channel::<std::net::TcpListener>();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let service = Service {
            proxy: proxy.as_ref().and_then(|l| l.local_addr().ok()),
            dns_udp: udp.as_ref().and_then(|s| s.local_addr().ok()),
            dns_tcp: tcp.as_ref().and_then(|s| s.local_addr().ok()),
            dns6: dns6.as_ref().and_then(|(s, _)| s.local_addr().ok()),
            late_proxy,
            decisions: Decisions::default(),
        };
        let strict = listen.strict;
        let decisions = service.decisions.clone();
        let blocked = BlockAllSignals::new();
        std::thread::Builder::new()
            .name("nono-egress".into())
            .spawn(move || {
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    if let Some(l) = proxy {
                        tasks.spawn(proxy::serve(l, resolver.clone(), strict, decisions.clone()));
                    }
                    if let Some(rx) = late_listener {
                        let resolver = resolver.clone();
                        tasks.spawn(async move {
                            // A dropped sender (the command never started) ends only this task.
                            let Ok(l) = rx.await else { return };
                            match l
                                .set_nonblocking(true)
                                .and_then(|()| tokio::net::TcpListener::from_std(l))
                            {
                                Ok(l) => proxy::serve(l, resolver, strict, decisions).await,
                                Err(e) => tracing::warn!("egress proxy: cannot serve: {e}"),
                            }
                        });
                    }
                    if let Some(u) = udp {
                        tasks.spawn(resolver::serve_udp(u, resolver.clone()));
                    }
                    if let Some(t) = tcp {
                        tasks.spawn(resolver::serve_tcp(t, resolver.clone()));
                    }
                    if let Some((u, t)) = dns6 {
                        tasks.spawn(resolver::serve_udp(u, resolver.clone()));
                        tasks.spawn(resolver::serve_tcp(t, resolver.clone()));
                    }
                    tasks.spawn(resolver::expire_loop(resolver.clone()));
                    while tasks.join_next().await.is_some() {}
                })
            })
            .context("egress: cannot start its thread")?;
        drop(blocked);
        Ok(service)
    }
}

/// Blocks every signal in the calling thread while alive, so threads spawned meanwhile start
/// with all of them blocked.
struct BlockAllSignals(libc::sigset_t);

impl BlockAllSignals {
    fn new() -> BlockAllSignals {
        // SAFETY: sigset_t is plain data, initialised by sigfillset; pthread_sigmask only
        // reads `all` and writes `old`.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            BlockAllSignals(old)
        }
    }
}

impl Drop for BlockAllSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}
