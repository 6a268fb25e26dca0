//! The unprivileged egress mode of `nono run`: domain rules enforced by nono's local proxy.
//!
//! Privilege: none. Kernel assumptions: Landlock ABI 4 (Linux 6.7) for TCP connect rules, and
//! seccomp (the default plan already refuses UDP and raw sockets).
//!
//! When the policy allows domains (and the network is not `net allow all`), `nono run`:
//! 1. plans Landlock from the policy *without* its domain rules ([`plan_policy`]): the proxy,
//!    not a port rule open to every address, enforces them;
//! 2. starts the proxy on `127.0.0.1:<ephemeral port>` on a thread of its own
//!    ([`super::Service`]) and adds one Landlock rule: TCP connect to that port
//!    ([`Fallback::add_port_rule`]). Every other TCP connect fails with EACCES, UDP with EPERM;
//! 3. sets `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and their lower-case forms to the proxy and
//!    `NO_PROXY`/`no_proxy` to empty for the command ([`Fallback::set_env`]);
//! 4. says on stderr which mode is active ([`Fallback::describe`]).
//!
//! Limits (documented in the README): the sandbox has no DNS (the proxy resolves); programs that
//! ignore the proxy variables cannot connect at all (they fail closed, they do not leak);
//! Landlock filters by port only, so the proxy's port number is open to every address, not only
//! 127.0.0.1 — the port is ephemeral and changes every run.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use nono_policy::backend::landlock::{LandlockPlan, NetRight, PortRule};
use nono_policy::ir::{NetMode, Policy};
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
    service: Service,
    rules: EgressRules,
    upstreams: Vec<SocketAddr>,
}

impl Fallback {
    /// Start the proxy. `upstreams` empty means `/etc/resolv.conf`.
    pub fn start(
        policy: &Policy,
        upstreams: &[SocketAddr],
        allow_resolved: &[IpNet],
    ) -> Result<Fallback> {
        let rules = EgressRules::from_policy(policy, allow_resolved);
        let upstreams = super::upstream::upstreams(upstreams)?;
        let resolver = Arc::new(Resolver::new(
            rules.clone(),
            upstreams.clone(),
            Arc::new(DestinationTable::default()),
        ));
        let listen = Listen {
            proxy: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            dns: None,
        };
        let service = Service::start(resolver, &listen)?;
        Ok(Fallback {
            service,
            rules,
            upstreams,
        })
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.service
            .proxy
            .expect("the fallback always serves the proxy")
    }

    /// Allow TCP connect to the proxy's port, attributed to the domain rules.
    pub fn add_port_rule(&self, plan: &mut LandlockPlan) {
        let port = self.proxy_addr().port();
        if !plan.handled_net.contains(&NetRight::ConnectTcp) {
            // Connect is not restricted by Landlock at all (the policy opens every TCP port
            // everywhere): nothing to add.
            return;
        }
        let rules = self.rules.domain_rule_ids();
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

    /// Point the command at the proxy.
    pub fn set_env(&self, env: &mut Vec<(OsString, OsString)>) {
        let url = format!("http://{}", self.proxy_addr());
        env.retain(|(k, _)| !PROXY_VARS.iter().chain(NO_PROXY_VARS).any(|v| k == v));
        for v in PROXY_VARS {
            env.push((v.into(), url.clone().into()));
        }
        for v in NO_PROXY_VARS {
            env.push((v.into(), OsString::new()));
        }
    }

    /// The line saying which mode is active.
    pub fn describe(&self) -> String {
        let ups: Vec<String> = self.upstreams.iter().map(|u| u.to_string()).collect();
        format!(
            "nono: egress: unprivileged mode: domain rules ({}) enforced by nono's proxy at \
             http://{} (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY set); Landlock allows TCP connect to \
             its port only, seccomp blocks UDP; names resolved via {}",
            self.rules.domain_rule_ids().len(),
            self.proxy_addr(),
            ups.join(", ")
        )
    }
}

/// The `nono run --dry-run` line for this mode.
pub fn dry_run_line(policy: &Policy, landlock_abi: u8) -> Option<String> {
    if policy.net.mode != NetMode::Blocked || policy.net.domains.is_empty() {
        return None;
    }
    Some(if applies(policy, landlock_abi) {
        format!(
            "Egress: {} domain rule(s) enforced by nono's local proxy (unprivileged mode): TCP \
             connect allowed to the proxy's port only; the command gets HTTPS_PROXY/HTTP_PROXY/ALL_PROXY",
            policy.net.domains.len()
        )
    } else {
        "Egress: domain rules need Landlock ABI 4 (TCP connect rules) for nono's proxy; not \
         enforced on this kernel"
            .to_string()
    })
}
