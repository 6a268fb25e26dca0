//! Which egress mode `nono run` uses for the policy's domain rules, and starting it.
//!
//! Privilege: the kernel mode needs the kernel layer's network part (root, or CAP_BPF plus
//! CAP_SYS_ADMIN: it writes the pinned network and DNS-redirect maps); the proxy mode needs
//! nothing. Kernel assumptions: the kernel mode needs the cgroup socket programs
//! (`connect4/6`, `sendmsg4/6`, `recvmsg4`), which every kernel with cgroup v2 and BPF loads,
//! BPF LSM or not; the proxy mode needs Landlock ABI 4 (TCP connect rules).
//!
//! - **Kernel mode** ([`KernelEgress`]), when the kernel layer's network part is active: the
//!   socket programs deny every destination no rule names; nono serves a resolver on loopback,
//!   the programs redirect the sandbox's port-53 traffic (UDP and TCP, IPv4) to it whatever
//!   server it names, and the resolver adds each address it answers for an allowed name to the
//!   sandbox's map with the answer's TTL. Programs that ignore proxy variables, raw UDP and DNS
//!   for other names are all covered, because the kernel decides every connect and send.
//! - **Proxy mode** ([`Fallback`]), without it: the command in a network namespace of its own
//!   (loopback only) where nono's HTTP CONNECT proxy listens, Landlock TCP connect to its port
//!   only, seccomp blocking UDP, proxy variables set.
//!
//! The same rules (names, wildcards, ports, special ranges, `--allow-resolved`) decide in both:
//! both use `super::rules::EgressRules` through `super::resolver::Resolver`.

use std::ffi::OsString;
use std::net::SocketAddr;

use anyhow::Result;
use nono_policy::backend::landlock::LandlockPlan;
use nono_policy::ir::{NetMode, Policy};
use nono_policy::net::IpNet;

use super::fallback::{self, Fallback};
use super::kernel_sink::KernelEgress;
use crate::kernel::KernelLayer;

/// The egress service of one run; dropping it ends the DNS redirect.
pub enum Egress {
    Proxy(Fallback),
    Kernel(KernelEgress),
}

/// Whether the domain rules are enforced in the kernel: the policy has some, the network is
/// restricted, and the kernel layer's network programs are active.
pub fn kernel_applies(policy: &Policy, kernel_net: bool) -> bool {
    kernel_net && policy.net.mode == NetMode::Blocked && !policy.net.domains.is_empty()
}

/// Whether the proxy enforces them: domain rules, no kernel network part, Landlock ABI 4.
pub fn proxy_applies(policy: &Policy, landlock_abi: u8, kernel_net: bool) -> bool {
    !kernel_net && fallback::applies(policy, landlock_abi)
}

/// Where the kernel mode gets its maps from: the loaded layer and the run's sandbox id.
pub struct KernelTarget<'a> {
    pub layer: &'a KernelLayer,
    pub sandbox_id: u32,
}

impl Egress {
    /// Start the mode the policy and this machine call for (`None`: no domain rules, or no
    /// mode can enforce them, which the plan already reported as a problem).
    pub fn start(
        policy: &Policy,
        landlock_abi: u8,
        kernel: Option<KernelTarget<'_>>,
        upstreams: &[SocketAddr],
        allow_resolved: &[IpNet],
        strict: bool,
        netns_port: Option<u16>,
    ) -> Result<Option<Egress>> {
        if let Some(k) = kernel {
            if !kernel_applies(policy, true) {
                return Ok(None);
            }
            return Ok(Some(Egress::Kernel(KernelEgress::start(
                policy,
                k.layer,
                k.sandbox_id,
                upstreams,
                allow_resolved,
                strict,
            )?)));
        }
        if !proxy_applies(policy, landlock_abi, false) {
            return Ok(None);
        }
        Ok(Some(Egress::Proxy(Fallback::start(
            policy,
            upstreams,
            allow_resolved,
            strict,
            netns_port,
        )?)))
    }

    /// Record the proxy's decisions in the run's audit session. Kernel mode has a proxy only
    /// with `--strict-domains`; its kernel programs report through the kernel layer.
    pub fn attach_audit(&self, sink: super::DecisionSink) {
        match self {
            Egress::Proxy(p) => p.decisions().attach(sink),
            Egress::Kernel(k) => k.decisions().attach(sink),
        }
    }

    /// Hand the proxy the listener made in the command's network namespace (proxy mode).
    pub fn serve_listener(&self, listener: std::net::TcpListener) {
        if let Egress::Proxy(p) = self {
            p.serve_listener(listener);
        }
    }

    /// Add what the mode needs to the Landlock plan and the command's environment.
    pub fn apply(&self, plan: &mut LandlockPlan, env: &mut Vec<(OsString, OsString)>) {
        match self {
            Egress::Proxy(p) => {
                p.add_port_rule(plan);
                p.set_env(env);
            }
            Egress::Kernel(k) => {
                k.add_port_rule(plan);
                k.set_env(env);
            }
        }
    }

    /// The line saying which mode is active.
    pub fn describe(&self) -> String {
        match self {
            Egress::Proxy(p) => p.describe(),
            Egress::Kernel(k) => k.describe(),
        }
    }

    /// The names the kernel mode's resolver answered, by address (`None` in proxy mode: the
    /// proxy reports its own refusals).
    pub fn answered_names(&self) -> Option<super::kernel_sink::AnsweredNames> {
        match self {
            Egress::Kernel(k) => Some(k.names()),
            Egress::Proxy(_) => None,
        }
    }

    /// `mode` for the audit trail's layer list.
    pub fn name(&self) -> &'static str {
        match self {
            Egress::Proxy(_) => "proxy",
            Egress::Kernel(_) => "kernel",
        }
    }
}

/// The `--dry-run` line about domain rules (`strict`: `--strict-domains`).
pub fn dry_run_line(
    policy: &Policy,
    landlock_abi: u8,
    kernel_net: bool,
    strict: bool,
) -> Option<String> {
    if strict && kernel_applies(policy, kernel_net) {
        return Some(format!(
            "Egress: {} domain rule(s) enforced by nono's proxy (strict domains, kernel mode): \
             the cgroup socket programs let the command connect to the proxy only, never to an \
             address a name resolves to; the proxy requires each tunnel's TLS SNI or HTTP Host \
             to be the name it was allowed for; port 53 redirected to nono's resolver (allowed \
             names only); the command gets HTTPS_PROXY/HTTP_PROXY/ALL_PROXY",
            policy.net.domains.len()
        ));
    }
    let line = dry_run_mode(policy, landlock_abi, kernel_net)?;
    Some(
        if strict && proxy_applies(policy, landlock_abi, kernel_net) {
            format!("{line}{}", super::fallback::STRICT_NOTE)
        } else {
            line
        },
    )
}

fn dry_run_mode(policy: &Policy, landlock_abi: u8, kernel_net: bool) -> Option<String> {
    if kernel_applies(policy, kernel_net) {
        return Some(format!(
            "Egress: {} domain rule(s) enforced in the kernel (cgroup socket programs): port 53 \
             redirected to nono's resolver, which admits the addresses it answers for allowed \
             names until their TTL ends",
            policy.net.domains.len()
        ));
    }
    fallback::dry_run_line(policy, landlock_abi)
}
