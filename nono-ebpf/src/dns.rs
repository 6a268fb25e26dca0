//! The DNS redirect: a sandbox's IPv4 TCP connects and UDP sends to port 53, whatever server
//! they name, go to the resolver `nono` serves for that sandbox (`NONO_DNS`), which answers only
//! allowed names and adds the answers to the sandbox's network rules. Replies are shown to come
//! from the server the program asked (`recvmsg4`), because resolvers such as glibc's drop
//! replies from any other address.
//!
//! [`redirect_dns4`] runs at the start of the `connect4`/`sendmsg4` checks (`net.rs`), so the
//! rule check then sees the resolver's address, which the loader allows for the sandbox. A
//! sandbox without a `NONO_DNS` entry is left alone: its port-53 traffic is checked against its
//! rules like any other. IPv6 port-53 traffic is not redirected; it is checked, and denied
//! unless a rule allows it.

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
    let original = DnsOriginal {
        addr: unsafe { core::ptr::read_volatile(&sock.user_ip4) }.to_ne_bytes(),
        port: port as u16,
        _pad: 0,
    };
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
        sock.user_ip4 = u32::from_ne_bytes(original.addr);
        sock.user_port = u32::from(original.port);
    }
    // recvmsg programs cannot deny; 1 is the only valid return.
    1
}
