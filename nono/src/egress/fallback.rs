//! The unprivileged egress mode of `nono run`: domain rules enforced by nono's local proxy.
//!
//! Privilege: none. Kernel assumptions: Landlock ABI 4 (Linux 6.7) for TCP connect rules,
//! seccomp (the default plan already refuses UDP and raw sockets), and network namespaces that
//! an unprivileged user may create through a user namespace (`crate::run::sandbox::netns`).
//!
//! When the policy allows domains (and the network is not `net allow all`), `nono run`:
//! 1. plans Landlock from the policy *without* its domain rules ([`plan_policy`]): the proxy,
//!    not a port rule open to every address, enforces them;
//! 2. starts the proxy on a thread of its own ([`super::Service`]). Its listener is made by the
//!    command's set-up inside the command's own network namespace, on `127.0.0.1:3128`, and
//!    handed to the proxy once the command runs ([`Fallback::serve_listener`]); the proxy dials
//!    out from nono's namespace. In that namespace there is a loopback interface and nothing
//!    else, so the proxy is all the command can reach. nono adds one Landlock rule, TCP
//!    connect to that port ([`Fallback::add_port_rule`]): every other TCP connect fails with
//!    EACCES, UDP with EPERM;
//! 3. sets `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and their lower-case forms to the proxy and
//!    `NO_PROXY`/`no_proxy` to empty for the command ([`Fallback::set_env`]);
//! 4. says on stderr which mode is active ([`Fallback::describe`]).
//!
//! Where the command cannot have a namespace of its own (user namespaces closed to
//! unprivileged users), `nono run` refuses, naming why; with `--best-effort` the proxy listens
//! on `127.0.0.1:<ephemeral port>` in nono's namespace instead, and because Landlock filters by
//! port only, that port number is then open to every address.
//!
//! Limits (documented in the README): the sandbox has no DNS (the proxy resolves); programs that
//! ignore the proxy variables cannot connect at all (they fail closed, they do not leak).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use nono_policy::backend::landlock::{LandlockPlan, NetRight, PortRule};
use nono_policy::ir::{NetMode, Policy, RuleId};
use nono_policy::net::IpNet;

use super::resolver::{DestinationTable, Resolver};
use super::rules::EgressRules;
use super::{Listen, Service};

/// The variables that point the command at the proxy.
pub const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "https_proxy",
    "http_proxy",
    "all_proxy",
];
/// Emptied, so no host bypasses the proxy (and fails).
pub const NO_PROXY_VARS: &[&str] = &["NO_PROXY", "no_proxy"];

/// Whether `nono run` uses the proxy: domain rules, a blocked network, and Landlock TCP rules.
pub fn applies(policy: &Policy, landlock_abi: u8) -> bool {
    policy.net.mode == NetMode::Blocked && !policy.net.domains.is_empty() && landlock_abi >= 4
}

/// The policy Landlock is planned from: the domain rules are the proxy's.
pub fn plan_policy(policy: &Policy) -> Policy {
    let mut p = policy.clone();
    p.net.domains.clear();
    p
}

/// Parse the `--allow-resolved` CIDRs.
pub fn parse_cidrs(texts: &[String]) -> Result<Vec<IpNet>, String> {
    texts
        .iter()
        .map(|t| nono_policy::net::parse_cidr(t).map_err(|e| format!("nono: --allow-resolved {e}")))
        .collect()
}

/// The proxy of one run.
pub struct Fallback {
    /// Its thread serves until nono exits; kept for what it bound.
    service: Service,
    rules: EgressRules,
    upstreams: Vec<SocketAddr>,
    strict: bool,
    /// Where the proxy listens, as the command sees it.
    addr: SocketAddr,
    /// The proxy's listener lives in the command's network namespace (else in nono's).
    in_netns: bool,
    late_proxy: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<std::net::TcpListener>>>,
}

impl Fallback {
    /// Start the proxy. `upstreams` empty means `/etc/resolv.conf`.
    /// `strict`: `--strict-domains` (the proxy checks the name inside each tunnel).
    /// `netns_port`: the port the command's set-up listens on inside its own network namespace
    /// (the listener arrives through [`Fallback::serve_listener`]); `None` (`--best-effort`
    /// without namespaces) listens on an ephemeral port of 127.0.0.1 in nono's namespace.
    pub fn start(
        policy: &Policy,
        upstreams: &[SocketAddr],
        allow_resolved: &[IpNet],
        strict: bool,
        netns_port: Option<u16>,
    ) -> Result<Fallback> {
        let rules = EgressRules::from_policy(policy, allow_resolved);
        let upstreams = super::upstream::upstreams(upstreams)?;
        let resolver = Arc::new(Resolver::new(
            rules.clone(),
            upstreams.clone(),
            Arc::new(DestinationTable::default()),
        ));
        let listen = Listen {
            proxy: match netns_port {
                Some(_) => None,
                None => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            },
            dns: None,
            dns6: None,
            strict,
            proxy_later: netns_port.is_some(),
        };
        let mut service = Service::start(resolver, &listen)?;
        let addr = match netns_port {
            Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            None => service
                .proxy
                .expect("a proxy address was given, so it is bound"),
        };
        let late_proxy = std::sync::Mutex::new(service.late_proxy.take());
        Ok(Fallback {
            service,
            rules,
            upstreams,
            strict,
            addr,
            in_netns: netns_port.is_some(),
            late_proxy,
        })
    }

    /// The proxy's decisions, for the audit session.
    pub fn decisions(&self) -> &super::Decisions {
        &self.service.decisions
    }

    /// Where the command reaches the proxy.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve the proxy on the listener the command's set-up made in its network namespace.
    pub fn serve_listener(&self, listener: std::net::TcpListener) {
        let sender = self
            .late_proxy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(s) = sender {
            // Fails only if the service thread is gone, and then nothing could serve it.
            let _ = s.send(listener);
        }
    }

    /// Allow TCP connect to the proxy's port, attributed to the domain rules.
    pub fn add_port_rule(&self, plan: &mut LandlockPlan) {
        add_connect_port(plan, self.proxy_addr().port(), self.rules.domain_rule_ids());
    }

    /// Point the command at the proxy.
    pub fn set_env(&self, env: &mut Vec<(OsString, OsString)>) {
        point_env_at(env, &format!("http://{}", self.proxy_addr()));
    }

    /// The line saying which mode is active.
    pub fn describe(&self) -> String {
        let ups: Vec<String> = self.upstreams.iter().map(|u| u.to_string()).collect();
        let reach = if self.in_netns {
            "the command has a network namespace of its own (loopback only), where Landlock \
             allows TCP connect to the proxy's port only"
        } else {
            "WITHOUT a network namespace of its own (--best-effort): Landlock allows TCP \
             connect to the proxy's port number only, but on every address (Landlock cannot \
             filter addresses)"
        };
        format!(
            "nono: egress: unprivileged mode: domain rules ({}) enforced by nono's proxy at \
             http://{} (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY set); {reach}; seccomp blocks UDP; \
             names resolved via {}{}",
            self.rules.domain_rule_ids().len(),
            self.proxy_addr(),
            ups.join(", "),
            if self.strict { STRICT_NOTE } else { "" }
        )
    }
}

/// The end of the mode line with `--strict-domains`.
pub(crate) const STRICT_NOTE: &str = "; strict domains: each tunnel's TLS SNI (or HTTP Host) must \
     be the name it was allowed for";

/// Allow TCP connect to `port` in a plan that restricts connect (no-op when it does not).
pub(crate) fn add_connect_port(plan: &mut LandlockPlan, port: u16, rules: Vec<RuleId>) {
    if !plan.handled_net.contains(&NetRight::ConnectTcp) {
        // Landlock does not restrict connect at all (the policy opens every TCP port
        // everywhere): nothing to add.
        return;
    }
    match plan.port_rules.iter_mut().find(|r| r.port == port) {
        Some(r) => {
            if !r.rights.contains(&NetRight::ConnectTcp) {
                r.rights.push(NetRight::ConnectTcp);
            }
            r.rules.extend(rules);
        }
        None => {
            plan.port_rules.push(PortRule {
                port,
                rights: vec![NetRight::ConnectTcp],
                rules,
            });
            plan.port_rules.sort_by_key(|r| r.port);
        }
    }
}

/// Replace every proxy variable of `env` with `url`, and empty the bypass lists.
pub(crate) fn point_env_at(env: &mut Vec<(OsString, OsString)>, url: &str) {
    env.retain(|(k, _)| !PROXY_VARS.iter().chain(NO_PROXY_VARS).any(|v| k == v));
    for v in PROXY_VARS {
        env.push((v.into(), url.into()));
    }
    for v in NO_PROXY_VARS {
        env.push((v.into(), OsString::new()));
    }
}

/// The `nono run --dry-run` line for this mode.
pub fn dry_run_line(policy: &Policy, landlock_abi: u8) -> Option<String> {
    if policy.net.mode != NetMode::Blocked || policy.net.domains.is_empty() {
        return None;
    }
    Some(if applies(policy, landlock_abi) {
        format!(
            "Egress: {} domain rule(s) enforced by nono's local proxy (unprivileged mode): the \
             command gets a network namespace of its own (loopback only) holding the proxy's \
             listener, TCP connect allowed to the proxy's port only; the command gets \
             HTTPS_PROXY/HTTP_PROXY/ALL_PROXY",
            policy.net.domains.len()
        )
    } else {
        "Egress: domain rules need Landlock ABI 4 (TCP connect rules) for nono's proxy; not \
         enforced on this kernel"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nono_policy::backend::landlock::plan;
    use nono_policy::backend::Target;
    use nono_policy::source::{Format, MemorySource, SourceFile};

    fn policy(text: &str) -> Policy {
        let root = SourceFile {
            name: "t.nono".into(),
            text: text.into(),
            format: Format::Lang,
        };
        nono_policy::resolve::compile(&root, &MemorySource::default()).expect("valid policy")
    }

    #[test]
    fn the_plan_opens_only_the_proxy_port_and_no_domain_port() {
        let p = policy("profile t\nnet allow domain a.example.com\n");
        assert!(applies(&p, 4) && !applies(&p, 3));
        let target = Target {
            landlock_abi: 6,
            kernel_layer: false,
        };
        // Planned with its domain rule, the policy opens 80 and 443 to every address.
        let direct = plan(&p, &target);
        assert!(direct.gaps.iter().any(|g| g.feature == "domain allowlist"));
        assert_eq!(direct.port_rules.len(), 2);
        let mut planned = plan(&plan_policy(&p), &target);
        assert!(planned.gaps.is_empty(), "{:?}", planned.gaps);
        assert!(planned.port_rules.is_empty());
        assert!(planned.handled_net.contains(&NetRight::ConnectTcp));
        add_connect_port(&mut planned, 41000, vec![RuleId(1)]);
        let ports: Vec<u16> = planned.port_rules.iter().map(|r| r.port).collect();
        assert_eq!(ports, vec![41000]);
        assert_eq!(planned.port_rules[0].rights, vec![NetRight::ConnectTcp]);
        assert!(planned.seccomp.deny_udp_and_raw);
    }

    #[test]
    fn the_environment_points_at_the_proxy_only() {
        let mut env: Vec<(OsString, OsString)> = vec![
            ("https_proxy".into(), "http://elsewhere:1".into()),
            ("NO_PROXY".into(), "*".into()),
            ("PATH".into(), "/bin".into()),
        ];
        point_env_at(&mut env, "http://127.0.0.1:9");
        let get = |k: &str| {
            env.iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        for v in PROXY_VARS {
            assert_eq!(get(v), vec!["http://127.0.0.1:9"], "{v}");
        }
        assert_eq!(get("NO_PROXY"), vec![""]);
        assert_eq!(get("no_proxy"), vec![""]);
        assert_eq!(get("PATH"), vec!["/bin"]);
    }
}
