//! cgroup socket-address programs: connect, UDP sendmsg and bind, checked against the
//! sandbox's network allow rules. Everything a rule does not allow is denied, link-local
//! addresses (the cloud metadata address among them) included: they can only be allowed by a
//! rule that names them, because the loader never widens a rule into them.
//!
//! An IPv4-mapped destination (`::ffff:a.b.c.d`) reaching `connect6` or `bind6` is IPv4 traffic
//! on a dual-stack socket: the IPv4 trie decides it, so IPv6 rules never open an IPv4 address.
//!
//! The loader attaches these programs to each sandbox's cgroup, so they run only for sandboxed
//! tasks (and every cgroup below the sandbox's); processes elsewhere never pay for them.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{cgroup_sock_addr, lsm},
    maps::lpm_trie::Key,
    programs::{LsmContext, SockAddrContext},
};
use nono_common::{
    Hook, NetAllow, NetKeyV4, NetKeyV6, NET_BIND, NET_CONNECT, NET_DEFAULT_RULE,
    NET_KEY_FIXED_BITS, NO_VERDICT_RULE, SANDBOX_AUDIT_ALL,
};

use crate::{
    current_sandbox,
    events::{emit, Decision},
    fs::read_at,
    kernel_offset, NONO_NET_V4, NONO_NET_V6,
};

const ALLOW: i32 = 1;
const DENY: i32 = 0;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Whether an LPM hit allows this port and direction now.
#[inline(always)]
fn permits(rule: &NetAllow, port: u16, direction: u32, now: u64) -> bool {
    rule.direction & direction != 0
        && port >= rule.port_lo
        && port <= rule.port_hi
        && (rule.expires_ns == 0 || now < rule.expires_ns)
}

/// The rule allowing (protocol, addr, port) for the sandbox, if any: first the rules for this
/// exact port, then the port-range rules (keyed with port 0).
#[inline(always)]
fn lookup_v4(
    sandbox_id: u32,
    protocol: u16,
    addr: [u8; 4],
    port: u16,
    direction: u32,
) -> Option<u32> {
    let now = unsafe { bpf_ktime_get_ns() };
    let mut key = Key::new(
        NET_KEY_FIXED_BITS + 32,
        NetKeyV4 {
            sandbox_id,
            protocol,
            port,
            addr,
        },
    );
    if let Some(rule) = NONO_NET_V4.get(&key) {
        if permits(rule, port, direction, now) {
            return Some(rule.rule_id);
        }
    }
    key.data.port = 0;
    match NONO_NET_V4.get(&key) {
        Some(rule) if permits(rule, port, direction, now) => Some(rule.rule_id),
        _ => None,
    }
}

#[inline(always)]
fn lookup_v6(
    sandbox_id: u32,
    protocol: u16,
    addr: [u8; 16],
    port: u16,
    direction: u32,
) -> Option<u32> {
    let now = unsafe { bpf_ktime_get_ns() };
    let mut key = Key::new(
        NET_KEY_FIXED_BITS + 128,
        NetKeyV6 {
            sandbox_id,
            protocol,
            port,
            addr,
        },
    );
    if let Some(rule) = NONO_NET_V6.get(&key) {
        if permits(rule, port, direction, now) {
            return Some(rule.rule_id);
        }
    }
    key.data.port = 0;
    match NONO_NET_V6.get(&key) {
        Some(rule) if permits(rule, port, direction, now) => Some(rule.rule_id),
        _ => None,
    }
}

/// `::ffff:a.b.c.d` (RFC 4291 2.5.5.2).
#[inline(always)]
fn is_ipv4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10].iter().all(|b| *b == 0) && addr[10] == 0xff && addr[11] == 0xff
}

#[inline(always)]
fn check(ctx: &SockAddrContext, hook: Hook, v6: bool, direction: u32) -> i32 {
    // One sandbox lookup per call: this runs on every connect and UDP send of the sandbox.
    let sandbox = current_sandbox();
    // Port-53 traffic goes to nono's resolver first (dns.rs); the check below then sees it.
    if direction == NET_CONNECT {
        if let Some(sandbox) = sandbox {
            if v6 {
                crate::dns::redirect_dns6(ctx, sandbox.sandbox_id);
            } else {
                crate::dns::redirect_dns4(ctx, sandbox.sandbox_id);
            }
        }
    }
    let sock = unsafe { &*ctx.sock_addr };
    let protocol = sock.protocol as u16;
    // `user_port` holds the port in network byte order in its low 16 bits.
    let port = u16::from_be(sock.user_port as u16);
    let mut addr = [0u8; 16];
    if v6 {
        for i in 0..4 {
            let word = sock.user_ip6[i].to_ne_bytes();
            addr[i * 4..i * 4 + 4].copy_from_slice(&word);
        }
    } else {
        addr[..4].copy_from_slice(&sock.user_ip4.to_ne_bytes());
    }
    let mut decision = Decision::file(0, hook as u16);
    decision.family = if v6 { AF_INET6 } else { AF_INET };
    decision.port = port;
    decision.addr = addr;
    decision.access = protocol as u8;
    let Some(sandbox) = sandbox else {
        // Attached only to sandbox cgroups, so an unknown cgroup is one created inside a
        // sandbox that the loader has not registered: fail closed.
        decision.denied = true;
        decision.rule_id = NO_VERDICT_RULE;
        emit(&decision);
        return DENY;
    };
    decision.sandbox_id = sandbox.sandbox_id;
    if direction == NET_BIND && port == 0 {
        // An ephemeral port (UDP clients do this): no address is claimed that a rule names.
        return ALLOW;
    }
    let allowed = if v6 && !is_ipv4_mapped(&addr) {
        lookup_v6(sandbox.sandbox_id, protocol, addr, port, direction)
    } else {
        // An IPv4-mapped address on a dual-stack socket goes out as IPv4: the IPv4 rules (and
        // the IPv4 implicit denies, the metadata address among them) decide it. `connect6`
        // sees it in this form; the kernel hands mapped UDP sends to `sendmsg4` itself.
        let start = if v6 { 12 } else { 0 };
        let mut a4 = [0u8; 4];
        a4.copy_from_slice(&addr[start..start + 4]);
        lookup_v4(sandbox.sandbox_id, protocol, a4, port, direction)
    };
    match allowed {
        Some(rule_id) => {
            if sandbox.flags & SANDBOX_AUDIT_ALL != 0 {
                decision.rule_id = rule_id;
                emit(&decision);
            }
            ALLOW
        }
        None => {
            decision.denied = true;
            decision.rule_id = NET_DEFAULT_RULE;
            emit(&decision);
            DENY
        }
    }
}

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    check(&ctx, Hook::Connect4, false, NET_CONNECT)
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    check(&ctx, Hook::Connect6, true, NET_CONNECT)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    check(&ctx, Hook::Sendmsg4, false, NET_CONNECT)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    check(&ctx, Hook::Sendmsg6, true, NET_CONNECT)
}

#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    check(&ctx, Hook::Bind4, false, NET_BIND)
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    check(&ctx, Hook::Bind6, true, NET_BIND)
}

const IPPROTO_TCP: u8 = 6;

/// `listen(2)` of a sandboxed task (BPF LSM, unlike the programs above). An inet socket that
/// was never bound gets an ephemeral port inside `listen` (`inet_autobind`), which runs neither
/// the `bind4/6` programs nor Landlock's bind check: it would serve on every address, on a port
/// no rule names. So a sandbox listens only on a port it bound, which those checks allowed.
/// Other families pass (unix servers are the unix-socket hooks' business); a socket without a
/// `struct sock` is refused (fail closed).
#[lsm(hook = "socket_listen")]
pub fn socket_listen(ctx: LsmContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 0;
    };
    let sock: *const u8 = unsafe { ctx.arg(0) };
    // SAFETY: probe reads (`fs::read_at`); a fault is an error, denied below.
    let bound = unsafe {
        read_at::<*const u8>(sock, kernel_offset!(socket_sk)).and_then(|sk| {
            if sk.is_null() {
                return Err(0);
            }
            let family: u16 = read_at(sk, kernel_offset!(sock_family))?;
            let port: u16 = read_at(sk, kernel_offset!(sock_num))?;
            Ok((family, port))
        })
    };
    let (family, rule_id) = match bound {
        Ok((family, _)) if family != AF_INET && family != AF_INET6 => return 0,
        Ok((_, port)) if port != 0 => return 0,
        Ok((family, _)) => (family, NET_DEFAULT_RULE),
        Err(_) => (AF_INET, NO_VERDICT_RULE),
    };
    // The event: the family, port 0 (unbound) and TCP, as a network event of the session.
    let mut decision = Decision::file(sandbox.sandbox_id, Hook::SocketListen as u16);
    decision.family = family;
    decision.access = IPPROTO_TCP;
    decision.denied = true;
    decision.rule_id = rule_id;
    emit(&decision);
    -crate::verdict::EPERM
}
