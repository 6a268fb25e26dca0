//! Writing decisions to the sandbox's own ring buffer. Best effort by design: a full buffer
//! costs an event (counted in the sandbox's entry of `NONO_DROPPED`), never a decision.
//!
//! One ring per event slot (`nono_common::EVENT_SLOTS`), chosen by the low bits of the sandbox
//! id (`nono_common::event_slot`): the loader gives live sandboxes distinct slots, so each
//! `nono run` reads a ring that only its own sandbox writes, and no reader consumes another
//! session's events. aya-ebpf 0.1 has no map-of-maps, so the rings are separate maps and the
//! slot selects one with a `match` (each arm loads a constant map pointer, as the verifier
//! requires of a ring buffer argument).

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use nono_common::{
    event_slot, Event, ExecRecord, PathRecord, EVENT_RING_BYTES, EVENT_SLOTS, EXEC_ARGV_LEN,
    FILE_PATH_LEN, FILE_PATH_NAME_READ, PATH_RECORD_HEADER,
};

/// Per CPU, per event slot: events that did not fit in the slot's ring buffer. The loader
/// zeroes a slot's entry when a new sandbox claims the slot. The decision stands regardless.
#[map]
static NONO_DROPPED: PerCpuArray<u64> = PerCpuArray::pinned(EVENT_SLOTS, 0);

/// Per CPU: where an event is assembled before it is copied into its ring. The hooks' own
/// stacks have no room for it (the BPF stack is 512 bytes). `busy` guards against a program
/// that interrupts another on the same CPU mid-event: it counts its event as dropped instead
/// of overwriting one half built.
#[repr(C)]
pub struct Scratch {
    event: Event,
    busy: u64,
}

#[map]
static NONO_EVENT_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The ring buffers and the slot -> ring selection. The names are `nono_common::names::EVENT_RINGS`.
macro_rules! rings {
    ($($slot:literal => $name:ident),* $(,)?) => {
        $(
            #[map]
            static $name: RingBuf = RingBuf::pinned(EVENT_RING_BYTES, 0);
        )*

        /// Copies `event` into the ring of `slot`; false if it has no room. A copy
        /// (`bpf_ringbuf_output`) rather than reserve-and-fill: each arm's reservation would be
        /// a reference of its own, which keeps the verifier from merging the arms, and the
        /// event-filling code would be verified once per slot at every call site (the
        /// `d_instantiate` program went past the verifier's million-instruction limit).
        ///
        /// Generic over the record: an [`Event`], an [`ExecRecord`] or the used part of a
        /// [`PathRecord`] (a byte slice), told apart by the reader by their lengths.
        #[inline(always)]
        fn output<T: ?Sized>(slot: u32, event: &T) -> bool {
            let r = match slot {
                $($slot => $name.output::<T>(event, 0),)*
                _ => Err(0),
            };
            r.is_ok()
        }

        // Every slot has a ring, and nothing else does.
        const _: () = assert!([$($slot),*].len() == EVENT_SLOTS as usize);
    };
}

rings! {
    0 => NONO_EVENTS_0,
    1 => NONO_EVENTS_1,
    2 => NONO_EVENTS_2,
    3 => NONO_EVENTS_3,
    4 => NONO_EVENTS_4,
    5 => NONO_EVENTS_5,
    6 => NONO_EVENTS_6,
    7 => NONO_EVENTS_7,
    8 => NONO_EVENTS_8,
    9 => NONO_EVENTS_9,
    10 => NONO_EVENTS_10,
    11 => NONO_EVENTS_11,
    12 => NONO_EVENTS_12,
    13 => NONO_EVENTS_13,
    14 => NONO_EVENTS_14,
    15 => NONO_EVENTS_15,
}

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

/// Count an event of `slot` that was not written.
#[inline(always)]
fn count_drop(slot: u32) {
    if let Some(counter) = NONO_DROPPED.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot, so no other CPU writes it concurrently.
        unsafe { *counter += 1 };
    }
}

/// Per CPU: where an exec record is assembled (832 bytes, beyond the BPF stack), guarded like
/// [`Scratch`]. `slack` follows the record so that an argument string read at any masked
/// position below `EXEC_ARGV_LEN` stays inside the map value, as the verifier requires; what
/// lands there is cut off (see `exec::fill_denied`).
#[repr(C)]
pub struct ExecScratch {
    pub record: ExecRecord,
    pub slack: [u8; EXEC_ARGV_LEN],
    busy: u64,
}

#[map]
static NONO_EXEC_SCRATCH: PerCpuArray<ExecScratch> = PerCpuArray::with_max_entries(1, 0);

/// Fill an exec record of `sandbox_id` with `fill` (which sets the file name, arguments and
/// flags, and a denied exec's decision; the rest is filled in here) and write it to the
/// sandbox's ring, or count it as dropped.
#[inline(always)]
pub fn emit_exec(sandbox_id: u32, fill: impl FnOnce(&mut ExecScratch)) {
    if sandbox_id == 0 {
        return;
    }
    let slot = event_slot(sandbox_id);
    let Some(scratch) = NONO_EXEC_SCRATCH.get_ptr_mut(0) else {
        count_drop(slot);
        return;
    };
    // SAFETY: this CPU's scratch entry; `busy` keeps a nested program on this CPU out of it.
    let scratch = unsafe { &mut *scratch };
    if scratch.busy != 0 {
        count_drop(slot);
        return;
    }
    scratch.busy = 1;
    let pid_tgid = bpf_get_current_pid_tgid();
    let r = &mut scratch.record;
    r.time_ns = unsafe { bpf_ktime_get_ns() };
    r.sandbox_id = sandbox_id;
    r.tgid = (pid_tgid >> 32) as u32;
    r.pid = pid_tgid as u32;
    r.uid = bpf_get_current_uid_gid() as u32;
    r.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    // The scratch is shared by every sandbox on this CPU: a completed exec's record must not
    // carry the decision of an earlier denied one.
    r.rule_id = 0;
    r.dev = 0;
    r.ino = 0;
    fill(scratch);
    let written = output(slot, &scratch.record);
    scratch.busy = 0;
    if !written {
        count_drop(slot);
    }
}

/// The fields of `e` every record of a decision carries: `d`'s and the current task's.
#[inline(always)]
fn fill_event(e: &mut Event, d: &Decision) {
    let pid_tgid = bpf_get_current_pid_tgid();
    e.time_ns = unsafe { bpf_ktime_get_ns() };
    e.sandbox_id = d.sandbox_id;
    e.tgid = (pid_tgid >> 32) as u32;
    e.pid = pid_tgid as u32;
    e.uid = bpf_get_current_uid_gid() as u32;
    e.rule_id = d.rule_id;
    e.hook = d.hook;
    e.decision = if d.denied {
        nono_common::DECISION_DENY
    } else {
        nono_common::DECISION_ALLOW
    };
    e.access = d.access;
    e.dev = d.dev;
    e.port = d.port;
    e.family = d.family;
    e.ino = d.ino;
    e.addr = d.addr;
    e.comm = bpf_get_current_comm().unwrap_or([0; 16]);
}

#[inline(always)]
pub fn emit(d: &Decision) {
    // Sandbox id 0 is no sandbox (a network program in a cgroup the loader never registered,
    // which it denies): there is no session to report it to, and slot 0 belongs to a sandbox
    // that did not make the decision.
    if d.sandbox_id == 0 {
        return;
    }
    let slot = event_slot(d.sandbox_id);
    let count_drop = || count_drop(slot);
    let Some(scratch) = NONO_EVENT_SCRATCH.get_ptr_mut(0) else {
        count_drop();
        return;
    };
    // SAFETY: this CPU's scratch entry; `busy` keeps a nested program on this CPU out of it.
    let scratch = unsafe { &mut *scratch };
    if scratch.busy != 0 {
        count_drop();
        return;
    }
    scratch.busy = 1;
    fill_event(&mut scratch.event, d);
    let written = output(slot, &scratch.event);
    scratch.busy = 0;
    if !written {
        count_drop();
    }
}

/// Per CPU: where a path record is assembled, guarded like [`Scratch`]. `slack` follows the
/// record so that a name read at any masked position below `FILE_PATH_LEN` stays inside the
/// map value, as the verifier requires; what lands there is cut off.
#[repr(C)]
pub struct PathScratch {
    pub record: PathRecord,
    pub slack: [u8; FILE_PATH_NAME_READ],
    busy: u64,
}

#[map]
static NONO_PATH_SCRATCH: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// The decision `d` with the path of the file it is about, as one [`PathRecord`]: `fill`
/// writes the path, its flags and length. Written instead of the plain [`Event`] (only the
/// used part of the path goes to the ring), or counted as dropped.
#[inline(always)]
pub fn emit_with_path(d: &Decision, fill: impl FnOnce(&mut PathScratch)) {
    if d.sandbox_id == 0 {
        return;
    }
    let slot = event_slot(d.sandbox_id);
    let Some(scratch) = NONO_PATH_SCRATCH.get_ptr_mut(0) else {
        count_drop(slot);
        return;
    };
    // SAFETY: this CPU's scratch entry; `busy` keeps a nested program on this CPU out of it.
    let scratch = unsafe { &mut *scratch };
    if scratch.busy != 0 {
        count_drop(slot);
        return;
    }
    scratch.busy = 1;
    fill_event(&mut scratch.record.event, d);
    fill(scratch);
    let used = scratch.record.path_len;
    // Bounded for the verifier on both branches: the whole path, or less than it.
    let used = if used >= FILE_PATH_LEN as u32 {
        FILE_PATH_LEN
    } else {
        (used & (FILE_PATH_LEN as u32 - 1)) as usize
    };
    // SAFETY: the record's header and the first `used` bytes of its path, inside the scratch.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            &scratch.record as *const PathRecord as *const u8,
            PATH_RECORD_HEADER + used,
        )
    };
    let written = output(slot, bytes);
    scratch.busy = 0;
    if !written {
        count_drop(slot);
    }
}
