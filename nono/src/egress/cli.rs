//! `nono egress-serve` (hidden): the resolver and/or proxy in the foreground, for the
//! end-to-end tests, `cargo xtask bench egress` and debugging an allowlist.
//!
//! Privilege: none. Prints one JSON line with the bound addresses, then one JSON line per
//! address the resolver allows (`"event":"allow"`) or expires (`"event":"expire"`): what the
//! kernel layer's map would receive. Runs until stdin closes or the process is killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use nono_policy::ir::RuleId;
use nono_policy::net::{parse_cidr, DomainPattern, PortSet};

use super::resolver::{AllowedDestinations, DestinationTable, Grant, Resolver};
use super::rules::EgressRules;
use super::{Listen, Service};
use crate::exit::{CmdResult, Exit};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nono egress-serve --allow-domain '*.example.com' --dns-upstream 127.0.0.1:5353 --dns 127.0.0.1:0
  nono egress-serve --allow-domain a.test --ports 8080 --allow-resolved 127.0.0.0/8 \\
      --dns-upstream 127.0.0.1:5353 --proxy 127.0.0.1:0")]
pub struct EgressServeArgs {
    /// An allowed domain (`*.example.com` matches subdomains only).
    #[arg(long, value_name = "DOMAIN")]
    pub allow_domain: Vec<String>,
    /// The ports of every --allow-domain (default 80 and 443).
    #[arg(long, value_name = "PORT,...", value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// Let allowed names resolve into CIDR although it is a special range.
    #[arg(long, value_name = "CIDR")]
    pub allow_resolved: Vec<String>,
    /// Upstream DNS server(s); default: /etc/resolv.conf.
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',')]
    pub dns_upstream: Vec<SocketAddr>,
    /// Serve the resolver (UDP and TCP) here.
    #[arg(long, value_name = "ADDR:PORT")]
    pub dns: Option<SocketAddr>,
    /// Serve the HTTP proxy here.
    #[arg(long, value_name = "ADDR:PORT")]
    pub proxy: Option<SocketAddr>,
}

/// A [`DestinationTable`] that also prints each change as a JSON line.
#[derive(Default)]
struct Printing {
    table: DestinationTable,
    out: Mutex<()>,
}

impl Printing {
    fn print(&self, event: &str, g: &Grant) {
        let _guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let line = serde_json::json!({
            "event": event, "name": g.name, "addr": g.addr.to_string(),
            "ports": g.ports.to_string(), "rule": g.rule.to_string(), "ttl_s": g.ttl.as_secs_f64(),
        });
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}

impl AllowedDestinations for Printing {
    fn allow(&self, grant: &Grant) -> Result<()> {
        self.table.allow(grant)?;
        self.print("allow", grant);
        Ok(())
    }
    fn expire(&self, now: Instant) -> Result<Vec<Grant>> {
        let gone = self.table.expire(now)?;
        for g in &gone {
            self.print("expire", g);
        }
        Ok(gone)
    }
}

pub fn egress_serve(args: EgressServeArgs) -> CmdResult {
    let usage = |e: String| Exit::usage(format!("nono egress-serve: {e}"));
    if args.dns.is_none() && args.proxy.is_none() {
        return Err(usage(
            "give --dns ADDR:PORT and/or --proxy ADDR:PORT".into(),
        ));
    }
    let ports = if args.ports.is_empty() {
        PortSet::web_default()
    } else {
        PortSet::new(
            args.ports
                .iter()
                .map(|p| nono_policy::net::PortRange::single(*p))
                .collect(),
        )
    };
    let mut domains = Vec::new();
    for (i, d) in args.allow_domain.iter().enumerate() {
        let pattern = DomainPattern::parse(d).map_err(|e| usage(format!("--allow-domain {e}")))?;
        domains.push((RuleId(i as u32 + 1), pattern, ports.clone()));
    }
    let mut into = Vec::new();
    for c in &args.allow_resolved {
        into.push(parse_cidr(c).map_err(|e| usage(format!("--allow-resolved {e}")))?);
    }
    let upstreams = super::upstream::upstreams(&args.dns_upstream)
        .map_err(|e| Exit::failure(format!("{e:#}")))?;
    let resolver = Arc::new(Resolver::new(
        EgressRules::new(domains, into),
        upstreams,
        Arc::new(Printing::default()),
    ));
    let listen = Listen {
        proxy: args.proxy,
        dns: args.dns,
        dns6: None,
        strict: false,
        proxy_later: false,
    };
    let service = Service::start(resolver, &listen).map_err(|e| Exit::failure(format!("{e:#}")))?;
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string());
    let line = serde_json::json!({
        "dns": addr(service.dns_udp), "dns_tcp": addr(service.dns_tcp), "proxy": addr(service.proxy),
    });
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
    // Serve until stdin closes: the parent test or benchmark going away ends this process.
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(0)
}
