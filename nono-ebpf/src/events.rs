//! Writing decisions to the ring buffer. Best effort by design: a full buffer costs an event
//! (counted in `NONO_DROPPED`), never a decision.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
};
use nono_common::Event;

use crate::{NONO_DROPPED, NONO_EVENTS};

/// The parts of an event the hook knows; the rest is filled in here.
pub struct Decision {
    pub sandbox_id: u32,
    pub hook: u16,
    pub denied: bool,
    pub rule_id: u32,
    pub access: u8,
    pub dev: u32,
    pub ino: u64,
    pub family: u16,
    pub port: u16,
    pub addr: [u8; 16],
}

impl Decision {
    pub const fn file(sandbox_id: u32, hook: u16) -> Decision {
        Decision {
            sandbox_id,
            hook,
            denied: false,
            rule_id: 0,
            access: 0,
            dev: 0,
            ino: 0,
            family: 0,
            port: 0,
            addr: [0; 16],
        }
    }
}

#[inline(always)]
pub fn emit(d: &Decision) {
    let Some(mut entry) = NONO_EVENTS.reserve::<Event>(0) else {
        if let Some(counter) = NONO_DROPPED.get_ptr_mut(0) {
            // SAFETY: a per-CPU slot, so no other CPU writes it concurrently.
            unsafe { *counter += 1 };
        }
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    entry.write(Event {
        time_ns: unsafe { bpf_ktime_get_ns() },
        sandbox_id: d.sandbox_id,
        tgid: (pid_tgid >> 32) as u32,
        pid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        rule_id: d.rule_id,
        hook: d.hook,
        decision: if d.denied {
            nono_common::DECISION_DENY
        } else {
            nono_common::DECISION_ALLOW
        },
        access: d.access,
        dev: d.dev,
        port: d.port,
        family: d.family,
        ino: d.ino,
        addr: d.addr,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    });
    entry.submit(0);
}
