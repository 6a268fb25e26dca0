//! The DNS redirect: a sandbox's TCP connects and UDP sends to port 53, IPv4 and IPv6, whatever
//! server they name, go to the resolver `nono` serves for that sandbox (`NONO_DNS`), which
//! answers only allowed names and adds the answers to the sandbox's network rules. Replies are
//! shown to come from the server the program asked (`recvmsg4`/`recvmsg6`), because resolvers
//! such as glibc's drop replies from any other address.
//!
//! [`redirect_dns4`]/[`redirect_dns6`] run at the start of the `connect4/6`/`sendmsg4/6`
//! checks (`net.rs`), so the rule check then sees the resolver's address, which the loader
//! allows for the sandbox. Where IPv6 goes:
//! - a native IPv6 server goes to the resolver's IPv6 loopback address (`addr6:port6`); when
//!   the host has no `::1` (`port6` 0) it is not redirected, and the rules deny it;
//! - an IPv4-mapped server (`::ffff:a.b.c.d`, a dual-stack socket asking an IPv4 server) goes
//!   to the IPv4 resolver in mapped form: the kernel then carries it as IPv4 traffic. Only
//!   `connect6` sees these; a dual-stack socket's `sendmsg` to a mapped address runs the
//!   `sendmsg4` program, and its reply the `recvmsg6` one, in mapped form.
//!
//! A sandbox without a `NONO_DNS` entry is left alone: its port-53 traffic is checked against
//! its rules like any other.

use aya_ebpf::{
    helpers::bpf_get_socket_cookie, macros::cgroup_sock_addr, programs::SockAddrContext,
};
use nono_common::{DnsOriginal, DNS_PORT};

use crate::{current_sandbox, NONO_DNS, NONO_DNS_ORIG};

/// Rewrite an IPv4 port-53 destination of sandbox `sandbox_id` to its resolver, remembering
/// the original per socket.
#[inline(always)]
pub fn redirect_dns4(ctx: &SockAddrContext, sandbox_id: u32) {
    let sock = unsafe { &mut *ctx.sock_addr };
    let port = unsafe { core::ptr::read_volatile(&sock.user_port) };
    if u16::from_be(port as u16) != DNS_PORT {
        return;
    }
    // SAFETY: the value is copied out before any other map operation.
    let Some(target) = (unsafe { NONO_DNS.get(&sandbox_id) }).copied() else {
        return;
    };
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr as *mut _) };
    let mut original = DnsOriginal {
        addr: [0; 16],
        port: port as u16,
        _pad: 0,
    };
    original.addr[..4]
        .copy_from_slice(&unsafe { core::ptr::read_volatile(&sock.user_ip4) }.to_ne_bytes());
    // If the cookie map is full the LRU entry goes; at worst a reply then shows the
    // resolver's address and the program ignores it: nothing is allowed by this.
    let _ = NONO_DNS_ORIG.insert(&cookie, &original, 0);
    sock.user_ip4 = u32::from_ne_bytes(target.addr);
    sock.user_port = u32::from(target.port.to_be());
}

/// Replies from the resolver to a redirected socket appear to come from the original server.
#[cgroup_sock_addr(recvmsg4)]
pub fn recvmsg4(ctx: SockAddrContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 1;
    };
    let Some(target) = (unsafe { NONO_DNS.get(&sandbox.sandbox_id) }).copied() else {
        return 1;
    };
    let sock = unsafe { &mut *ctx.sock_addr };
    // Whole-field volatile reads: a narrowed or merged load of these context fields was
    // compiled into one the kernel rewrites differently for recvmsg, and never matched.
    let ip = unsafe { core::ptr::read_volatile(&sock.user_ip4) };
    let port = unsafe { core::ptr::read_volatile(&sock.user_port) };
    if ip != u32::from_ne_bytes(target.addr) || port & 0xffff != u32::from(target.port.to_be()) {
        return 1;
    }
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr as *mut _) };
    if let Some(original) = unsafe { NONO_DNS_ORIG.get(&cookie) }.copied() {
        sock.user_ip4 = u32::from_ne_bytes([
            original.addr[0],
            original.addr[1],
            original.addr[2],
            original.addr[3],
        ]);
        sock.user_port = u32::from(original.port);
    }
    // recvmsg programs cannot deny; 1 is the only valid return.
    1
}

/// The third 32-bit word of an IPv4-mapped IPv6 address (`::ffff:0:0/96`), as the context
/// holds it (network byte order in a native-endian load).
const MAPPED_WORD2: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// The context's IPv6 address, by whole 32-bit loads (the only access the kernel allows).
#[inline(always)]
fn read_ip6(sock: &aya_ebpf::bindings::bpf_sock_addr) -> [u32; 4] {
    unsafe {
        [
            core::ptr::read_volatile(&sock.user_ip6[0]),
            core::ptr::read_volatile(&sock.user_ip6[1]),
            core::ptr::read_volatile(&sock.user_ip6[2]),
            core::ptr::read_volatile(&sock.user_ip6[3]),
        ]
    }
}

#[inline(always)]
fn write_ip6(sock: &mut aya_ebpf::bindings::bpf_sock_addr, ip: [u32; 4]) {
    sock.user_ip6[0] = ip[0];
    sock.user_ip6[1] = ip[1];
    sock.user_ip6[2] = ip[2];
    sock.user_ip6[3] = ip[3];
}

#[inline(always)]
fn words(bytes: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// Rewrite an IPv6 port-53 destination of sandbox `sandbox_id` to its resolver (see the module
/// comment for which one), remembering the original per socket.
#[inline(always)]
pub fn redirect_dns6(ctx: &SockAddrContext, sandbox_id: u32) {
    let sock = unsafe { &mut *ctx.sock_addr };
    let port = unsafe { core::ptr::read_volatile(&sock.user_port) };
    if u16::from_be(port as u16) != DNS_PORT {
        return;
    }
    // SAFETY: the value is copied out before any other map operation.
    let Some(target) = (unsafe { NONO_DNS.get(&sandbox_id) }).copied() else {
        return;
    };
    let ip = read_ip6(sock);
    let mapped = ip[0] == 0 && ip[1] == 0 && ip[2] == MAPPED_WORD2;
    let mut original = DnsOriginal {
        addr: [0; 16],
        port: port as u16,
        _pad: 0,
    };
    let (new_ip, new_port) = if mapped {
        // Kept in IPv4 form, as `sendmsg4` keeps it: `recvmsg6` maps it back.
        original.addr[..4].copy_from_slice(&ip[3].to_ne_bytes());
        (
            [0, 0, MAPPED_WORD2, u32::from_ne_bytes(target.addr)],
            target.port,
        )
    } else {
        if target.port6 == 0 {
            return;
        }
        for i in 0..4 {
            original.addr[i * 4..i * 4 + 4].copy_from_slice(&ip[i].to_ne_bytes());
        }
        (words(&target.addr6), target.port6)
    };
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr as *mut _) };
    let _ = NONO_DNS_ORIG.insert(&cookie, &original, 0);
    write_ip6(sock, new_ip);
    sock.user_port = u32::from(new_port.to_be());
}

/// Replies from the resolver to a redirected IPv6 socket appear to come from the original
/// server: the IPv6 resolver for native IPv6 servers, the IPv4 one in mapped form for mapped
/// servers (a dual-stack socket's IPv4 traffic arrives here, not at `recvmsg4`).
#[cgroup_sock_addr(recvmsg6)]
pub fn recvmsg6(ctx: SockAddrContext) -> i32 {
    let Some(sandbox) = current_sandbox() else {
        return 1;
    };
    let Some(target) = (unsafe { NONO_DNS.get(&sandbox.sandbox_id) }).copied() else {
        return 1;
    };
    let sock = unsafe { &mut *ctx.sock_addr };
    let ip = read_ip6(sock);
    let port = unsafe { core::ptr::read_volatile(&sock.user_port) } & 0xffff;
    let from_v4 = ip[0] == 0
        && ip[1] == 0
        && ip[2] == MAPPED_WORD2
        && ip[3] == u32::from_ne_bytes(target.addr)
        && port == u32::from(target.port.to_be());
    let from_v6 = target.port6 != 0
        && ip == words(&target.addr6)
        && port == u32::from(target.port6.to_be());
    if !from_v4 && !from_v6 {
        return 1;
    }
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr as *mut _) };
    if let Some(original) = unsafe { NONO_DNS_ORIG.get(&cookie) }.copied() {
        let restored = if from_v4 {
            [
                0,
                0,
                MAPPED_WORD2,
                u32::from_ne_bytes([
                    original.addr[0],
                    original.addr[1],
                    original.addr[2],
                    original.addr[3],
                ]),
            ]
        } else {
            words(&original.addr)
        };
        write_ip6(sock, restored);
        sock.user_port = u32::from(original.port);
    }
    1
}
