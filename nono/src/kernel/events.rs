//! Kernel decisions, read from the programs' ring buffer.
//!
//! A ring holds three kinds of records, told apart by their length: the decisions of the LSM
//! and socket programs (`nono_common::Event`, 80 bytes); exec records
//! (`nono_common::ExecRecord`, 832 bytes: the name a program was executed by and its
//! arguments), decoded as [`EventObject::Exec`]: the exec check's denies (always, with their
//! rule) and, under `audit all`, the completed execs the `sched_process_exec` tracepoint
//! reports; and, under `audit all`, file decisions with the path they are about
//! (`nono_common::PathRecord`: an `Event` followed by the path, 88 to 600 bytes), decoded as an
//! [`EventObject::File`] with its `path`.
//!
//! Each live sandbox has a ring buffer of its own, the one of its event slot
//! (`nono_common::event_slot`, claimed in [`super::sandbox`]), so concurrent runs never read
//! each other's events. A reader still checks the sandbox id of every record and skips others:
//! a reclaimed slot's ring can hold unread events of the dead run that held it before. Events are
//! a report, never the enforcement: the programs decide before they try to write one, and count
//! what does not fit in the slot's drop counter.
//!
//! Privileges: opening the pinned ring buffer needs CAP_BPF (root here).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use aya::maps::MapData;
use nono_common::{
    Event, ExecRecord, Hook, PathRecord, DECISION_DENY, EXEC_ARGV_CUT, EXEC_ARGV_UNREADABLE,
    EXEC_DENIED, EXEC_FILENAME_CUT, FILE_PATH_CUT, NO_VERDICT_RULE, PATH_RECORD_HEADER,
};
use tokio::io::unix::AsyncFd;

/// A device number as the kernel's programs report it (the in-kernel `dev_t`: major above bit
/// 20, minor below), shown `major:minor` as `/proc/self/mountinfo` and `stat` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelDev(pub u32);

impl fmt::Display for KernelDev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 20, self.0 & 0xfffff)
    }
}

/// One decoded kernel decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEvent {
    /// CLOCK_MONOTONIC nanoseconds.
    pub time_ns: u64,
    pub sandbox_id: u32,
    pub tgid: u32,
    pub pid: u32,
    pub uid: u32,
    pub comm: String,
    pub hook: Option<Hook>,
    pub denied: bool,
    /// The policy rule (`RuleId.0`); 0 for the default decision.
    pub rule_id: u32,
    pub object: EventObject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventObject {
    /// Kernel `dev_t` (`MAJOR << 20 | MINOR`) and inode of the object, or of the denied
    /// ancestor that matched.
    File {
        dev: u32,
        ino: u64,
        access: u8,
        /// The path of the file, as the kernel walked it (raw bytes), when the program
        /// recorded one (file hooks under `audit all`: the name opened, created, removed, ...).
        path: Option<Vec<u8>>,
        /// The walk did not reach the root: `path` holds the names nearest the file only,
        /// without a leading `/`.
        path_cut: bool,
    },
    Net {
        addr: IpAddr,
        port: u16,
        protocol: u8,
    },
    /// The cgroup v2 id of the target task of a signal or ptrace access.
    Task { cgroup_id: u64 },
    /// A BPF or kernel-loading hook; `id` is the kernel's read-file/load-data id where there is
    /// one (2 module, 3 kexec image, 4 kexec initramfs).
    Kernel { id: u64 },
    /// An exec: completed (an allow, reported under `audit all`; no hook, no rule), or denied
    /// by the exec check (`hook` is `bprm_check_security`, with the rule).
    Exec {
        /// The name the program was executed by, as passed to `execve` (relative if it was).
        binary: Vec<u8>,
        /// The arguments, raw (not redacted: whoever stores or prints them redacts).
        argv: Vec<Vec<u8>>,
        /// Not every argument is here: the command line was longer than the record holds, or
        /// could not be read. Only whole arguments are kept, never the start of a cut one.
        argv_truncated: bool,
        /// The name was longer than the record holds (or exactly as long).
        binary_truncated: bool,
        /// A denied exec: the object its rule matched (kernel `dev_t` and inode, as in
        /// [`EventObject::File`]); 0 for a completed one.
        dev: u32,
        ino: u64,
    },
}

/// The arguments of an exec record: its NUL-terminated strings. When the record was cut, the
/// bytes after the last NUL are the start of an argument and are left out: half a secret could
/// escape the redaction that the whole one would meet.
fn split_argv(bytes: &[u8], cut: bool) -> Vec<Vec<u8>> {
    let mut parts: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
    // After the last NUL: empty for a complete list, the partial argument for a cut one.
    let tail = parts.pop().unwrap_or_default();
    if !cut && !tail.is_empty() {
        // Not NUL-terminated and not cut (the program changed its arguments in place): keep it.
        parts.push(tail);
    }
    parts.into_iter().map(<[u8]>::to_vec).collect()
}

impl KernelEvent {
    pub fn decode(raw: &[u8]) -> Option<KernelEvent> {
        if raw.len() == std::mem::size_of::<ExecRecord>() {
            return Some(Self::decode_exec(raw));
        }
        if (PATH_RECORD_HEADER..=std::mem::size_of::<PathRecord>()).contains(&raw.len()) {
            return Self::decode_path(raw);
        }
        if raw.len() < std::mem::size_of::<Event>() {
            return None;
        }
        // SAFETY: `Event` is plain old data of this size; read_unaligned copes with alignment.
        let e: Event = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast::<Event>()) };
        let hook = Hook::from_u16(e.hook);
        let comm_len = e.comm.iter().position(|b| *b == 0).unwrap_or(e.comm.len());
        let object = if matches!(hook, Some(Hook::TaskKill | Hook::PtraceAccessCheck)) {
            EventObject::Task { cgroup_id: e.ino }
        } else if matches!(
            hook,
            Some(
                Hook::Bpf | Hook::KernelReadFile | Hook::KernelLoadData | Hook::KernelModuleRequest
            )
        ) {
            EventObject::Kernel { id: e.ino }
        } else if e.family == 0 {
            EventObject::File {
                dev: e.dev,
                ino: e.ino,
                access: e.access,
                path: None,
                path_cut: false,
            }
        } else {
            let addr = if e.family == libc::AF_INET6 as u16 {
                IpAddr::V6(Ipv6Addr::from(e.addr))
            } else {
                IpAddr::V4(Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]))
            };
            EventObject::Net {
                addr,
                port: e.port,
                protocol: e.access,
            }
        };
        Some(KernelEvent {
            time_ns: e.time_ns,
            sandbox_id: e.sandbox_id,
            tgid: e.tgid,
            pid: e.pid,
            uid: e.uid,
            comm: String::from_utf8_lossy(&e.comm[..comm_len]).into_owned(),
            hook,
            denied: e.decision == DECISION_DENY,
            rule_id: e.rule_id,
            object,
        })
    }
}

/// The path of a [`PathRecord`] from its names, leaf first and each NUL-terminated: reversed
/// and joined. The bytes after the last NUL are a name the record cut and are left out. A cut
/// path (`cut`, or a name left out) has no leading `/`: it is not the whole path.
fn join_path(names: &[u8], mut cut: bool) -> (Option<Vec<u8>>, bool) {
    let mut parts: Vec<&[u8]> = names.split(|b| *b == 0).collect();
    // After the last NUL: empty when every name was whole.
    if !parts.pop().unwrap_or_default().is_empty() {
        cut = true;
    }
    let mut path = Vec::with_capacity(names.len() + 1);
    for (i, name) in parts.iter().rev().enumerate() {
        if !cut || i > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(name);
    }
    if path.is_empty() {
        if cut {
            return (None, true);
        }
        // No name below the root: the root itself.
        path.push(b'/');
    }
    (Some(path), cut)
}

impl KernelEvent {
    /// A [`PathRecord`]: its [`Event`], with the path (`raw` is its header and the used part
    /// of its path).
    fn decode_path(raw: &[u8]) -> Option<KernelEvent> {
        let mut event = Self::decode(&raw[..std::mem::size_of::<Event>()])?;
        let word = |at: usize| {
            u32::from_ne_bytes(raw[at..at + 4].try_into().expect("4 bytes in the header"))
        };
        let flags = word(std::mem::size_of::<Event>());
        let used =
            (word(std::mem::size_of::<Event>() + 4) as usize).min(raw.len() - PATH_RECORD_HEADER);
        let names = &raw[PATH_RECORD_HEADER..PATH_RECORD_HEADER + used];
        if let EventObject::File { path, path_cut, .. } = &mut event.object {
            (*path, *path_cut) = join_path(names, flags & FILE_PATH_CUT != 0);
        }
        Some(event)
    }

    /// An [`ExecRecord`] (`raw` is exactly its size).
    fn decode_exec(raw: &[u8]) -> KernelEvent {
        // SAFETY: `ExecRecord` is plain old data of this size; read_unaligned copes with
        // alignment.
        let r: ExecRecord = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast::<ExecRecord>()) };
        let until_nul = |b: &[u8]| b[..b.iter().position(|c| *c == 0).unwrap_or(b.len())].to_vec();
        let argv_len = (r.argv_len as usize).min(r.argv.len());
        let cut = r.flags & EXEC_ARGV_CUT != 0;
        let denied = r.flags & EXEC_DENIED != 0;
        KernelEvent {
            time_ns: r.time_ns,
            sandbox_id: r.sandbox_id,
            tgid: r.tgid,
            pid: r.pid,
            uid: r.uid,
            comm: String::from_utf8_lossy(&until_nul(&r.comm)).into_owned(),
            hook: denied.then_some(Hook::BprmCheck),
            denied,
            rule_id: if denied { r.rule_id } else { 0 },
            object: EventObject::Exec {
                binary: until_nul(&r.filename),
                argv: split_argv(&r.argv[..argv_len], cut),
                argv_truncated: r.flags & (EXEC_ARGV_CUT | EXEC_ARGV_UNREADABLE) != 0,
                binary_truncated: r.flags & EXEC_FILENAME_CUT != 0,
                dev: if denied { r.dev } else { 0 },
                ino: if denied { r.ino } else { 0 },
            },
        }
    }
}

impl fmt::Display for KernelEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.denied { "deny" } else { "allow" };
        let rule = match self.rule_id {
            NO_VERDICT_RULE => "no-verdict".to_string(),
            nono_common::CGROUPFS_RULE => "cgroupfs".to_string(),
            nono_common::ISOLATION_RULE => "isolation".to_string(),
            0 => "default".to_string(),
            id => format!("r{id}"),
        };
        let hook = self.hook.map(Hook::name).unwrap_or("?");
        match (&self.object, self.denied) {
            // A completed exec has no hook nor rule.
            (EventObject::Exec { .. }, false) => write!(f, "kernel: allow exec")?,
            _ => write!(f, "kernel: {verdict} {hook} rule={rule}")?,
        }
        write!(f, " pid={} comm={} uid={}", self.tgid, self.comm, self.uid)?;
        match &self.object {
            EventObject::File {
                dev, ino, access, ..
            } => write!(f, " dev={} ino={ino} access={access}", KernelDev(*dev)),
            EventObject::Net {
                addr,
                port,
                protocol,
            } => write!(f, " addr={addr} port={port} proto={protocol}"),
            EventObject::Task { cgroup_id } => write!(f, " target_cgroup={cgroup_id}"),
            EventObject::Kernel { id } => write!(f, " id={id}"),
            EventObject::Exec {
                binary,
                argv,
                argv_truncated,
                dev,
                ino,
                ..
            } => {
                // A denied exec names the object its rule matched, like a file deny.
                if self.denied {
                    write!(f, " dev={} ino={ino}", KernelDev(*dev))?;
                }
                // Printed redacted, as stored: `-v` output lands in terminals and CI logs.
                let args: Vec<std::ffi::OsString> = argv
                    .iter()
                    .map(|a| std::os::unix::ffi::OsStringExt::from_vec(a.clone()))
                    .collect();
                let shown: Vec<String> = crate::audit::redact::argv(&args)
                    .iter()
                    .map(|a| crate::cli::escape_for_terminal(a))
                    .collect();
                write!(
                    f,
                    " binary={} argv=[{}]{}",
                    crate::cli::escape_for_terminal(&String::from_utf8_lossy(binary)),
                    shown.join(", "),
                    if *argv_truncated { " (argv cut)" } else { "" }
                )
            }
        }
    }
}

/// A consumer of a BPF ring buffer that may have been consumed before (a pinned map reused
/// by an earlier run). aya 0.13's `RingBuf` assumes the consumer position starts at zero and
/// loops over stale memory when it does not, so nono reads the ring itself, following the
/// kernel's protocol (`kernel/bpf/ringbuf.c`): a consumer page (read-write), then the producer
/// page and the data pages (read-only).
///
/// The kernel lays the data pages out twice in a row, so that a reader may see a record that
/// wraps past the ring's end as one run of bytes, and maps every page of the range when it is
/// mapped, not when it is first read. nono maps them once and copies the rare wrapping record
/// instead: mapping both copies would make the ring count twice in the parent's resident set
/// (2 MiB of a root run's 10, for a 1 MiB ring).
pub(crate) struct RingReader {
    map: MapData,
    consumer: *mut u8,
    producer: *const u8,
    page: usize,
    size: usize,
    /// Where a record that wraps past the end of the data pages is put back together.
    wrapped: Vec<u8>,
}

// SAFETY: the mappings are owned by the reader and only touched through `&mut self`.
unsafe impl Send for RingReader {}

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HEADER_LEN: usize = 8;

impl RingReader {
    pub(crate) fn new(map: MapData) -> Result<RingReader> {
        let size = map
            .info()
            .context("reading the ring buffer's size")?
            .max_entries() as usize;
        // SAFETY: sysconf cannot fail for _SC_PAGESIZE.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if size == 0 || !size.is_power_of_two() {
            bail!("ring buffer size {size} is not a power of two");
        }
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: mmap(2) of the ring buffer's fd as the kernel lays it out; checked below.
        let consumer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if consumer == libc::MAP_FAILED {
            bail!(
                "mapping the ring buffer's consumer page: {}",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: as above.
        let producer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page + size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                page as libc::off_t,
            )
        };
        if producer == libc::MAP_FAILED {
            let err = std::io::Error::last_os_error();
            // SAFETY: unmapping what was mapped above.
            unsafe { libc::munmap(consumer, page) };
            bail!("mapping the ring buffer's data pages: {err}");
        }
        Ok(RingReader {
            map,
            consumer: consumer.cast(),
            producer: producer.cast(),
            page,
            size,
            wrapped: Vec::new(),
        })
    }

    /// Pass every complete record to `f`, consuming it.
    pub(crate) fn consume(&mut self, mut f: impl FnMut(&[u8])) {
        // SAFETY: both positions are 8-byte aligned words at the start of their pages, shared
        // with the kernel, hence atomics.
        let (consumer_pos, producer_pos) = unsafe {
            (
                &*(self.consumer as *const AtomicU64),
                &*(self.producer as *const AtomicU64),
            )
        };
        let mut cons = consumer_pos.load(Ordering::Acquire);
        let prod = producer_pos.load(Ordering::Acquire);
        let mask = (self.size - 1) as u64;
        if cons > prod {
            // A consumer position past the producer is corrupt (a buggy earlier reader): skip
            // to the present rather than read stale memory.
            cons = prod;
            consumer_pos.store(cons, Ordering::Release);
        }
        // SAFETY: the data pages follow the producer page in the mapping.
        let data = unsafe { self.producer.add(self.page) };
        while cons < prod {
            let start = (cons & mask) as usize;
            // SAFETY: positions are 8-byte aligned and the ring's size a power of two of at
            // least a page, so the header lies whole before the end of the data pages.
            let header = unsafe { &*(data.add(start) as *const AtomicU32) }.load(Ordering::Acquire);
            if header & BUSY_BIT != 0 {
                break; // being written: stop here, it will be read next time
            }
            let len = (header & !(BUSY_BIT | DISCARD_BIT)) as usize;
            if len + HEADER_LEN > self.size {
                // No record is longer than the ring: the memory is not a ring this reader
                // understands. Skip to the present rather than read past the record.
                cons = prod;
                consumer_pos.store(cons, Ordering::Release);
                break;
            }
            if header & DISCARD_BIT == 0 {
                // SAFETY: the kernel cleared the busy bit after writing the record, and does not
                // write its bytes again until the consumer position passes them.
                f(unsafe { record_body(data, self.size, start, len, &mut self.wrapped) });
            }
            cons += ((len + HEADER_LEN + 7) & !7) as u64;
            consumer_pos.store(cons, Ordering::Release);
        }
    }
}

/// The `len` bytes of the record whose header is at `start` in a ring's data pages (`size`
/// bytes at `data`, mapped once): borrowed where they lie in one run, copied into `wrapped`
/// where they go past the end of the ring and continue at its start.
///
/// # Safety
/// `data` points to `size` readable bytes, `start + HEADER_LEN <= size`, `len <= size`, and the
/// record's bytes do not change while the returned slice lives.
unsafe fn record_body(
    data: *const u8,
    size: usize,
    start: usize,
    len: usize,
    wrapped: &mut Vec<u8>,
) -> &[u8] {
    let body = (start + HEADER_LEN) % size;
    if body + len <= size {
        return std::slice::from_raw_parts(data.add(body), len);
    }
    let before_end = size - body;
    wrapped.clear();
    wrapped.extend_from_slice(std::slice::from_raw_parts(data.add(body), before_end));
    wrapped.extend_from_slice(std::slice::from_raw_parts(data, len - before_end));
    wrapped
}

impl AsRawFd for RingReader {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe {
            libc::munmap(self.consumer.cast(), self.page);
            libc::munmap(self.producer as *mut libc::c_void, self.page + self.size);
        }
    }
}

/// The events of one sandbox.
pub struct EventStream {
    ring: Option<RingReader>,
    async_ring: Option<AsyncFd<RingReader>>,
    sandbox_id: u32,
}

impl EventStream {
    pub(crate) fn new(ring: RingReader, sandbox_id: u32) -> EventStream {
        EventStream {
            ring: Some(ring),
            async_ring: None,
            sandbox_id,
        }
    }

    /// Everything already in the buffer for this sandbox, without waiting.
    pub fn drain(&mut self) -> Vec<KernelEvent> {
        let sandbox_id = self.sandbox_id;
        let mut out = Vec::new();
        let ring = match (&mut self.ring, &mut self.async_ring) {
            (Some(r), _) => r,
            (None, Some(a)) => a.get_mut(),
            (None, None) => return out,
        };
        ring.consume(|raw| {
            if let Some(event) = KernelEvent::decode(raw) {
                if event.sandbox_id == sandbox_id {
                    out.push(event);
                }
            }
        });
        out
    }

    /// Wait for the next batch of this sandbox's events (needs a tokio runtime with IO).
    pub async fn next_batch(&mut self) -> Result<Vec<KernelEvent>> {
        if let Some(ring) = self.ring.take() {
            // SAFETY: the reader owns its map fd, keeps it open and returns the same fd from
            // as_raw_fd for as long as the AsyncFd owns it.
            let registered =
                unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
            self.async_ring = Some(registered.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        loop {
            let Some(async_ring) = self.async_ring.as_mut() else {
                return Ok(Vec::new());
            };
            {
                // Clear readiness before draining: data arriving after the drain re-arms it.
                let mut guard = async_ring.readable_mut().await?;
                guard.clear_ready();
            }
            let batch = self.drain();
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }
}

/// Hands a sandbox's events to a callback as they arrive, one batch per ring-buffer drain, on a
/// thread of its own running a small tokio runtime, until [`EventPrinter::stop`]; what is still
/// buffered then is handed over too. The callback returns a future the reader awaits before it
/// drains again: `nono run` stores each batch in the audit session with `send().await`, so when
/// the auditor falls behind the reader stops consuming, the sandbox's own ring absorbs the burst,
/// and what the ring can't hold is counted by the kernel in the sandbox's drop counter, never
/// lost between the reader and the store. A caller with its own runtime can drive
/// [`EventStream::next_batch`] itself.
pub struct EventPrinter {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EventPrinter {
    pub fn spawn<F>(
        mut stream: EventStream,
        mut print: impl FnMut(Vec<KernelEvent>) -> F + Send + 'static,
    ) -> Result<EventPrinter>
    where
        F: std::future::Future<Output = ()>,
    {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("starting the event reader's runtime")?;
        let thread = std::thread::Builder::new()
            .name("nono-events".into())
            .spawn(move || {
                // Signals are for the thread that supervises the command (`nono run` takes them
                // with sigwaitinfo); a default action taken here would kill nono mid-run.
                // SAFETY: a full sigset_t initialised by sigfillset; masks this thread only.
                unsafe {
                    let mut all: libc::sigset_t = std::mem::zeroed();
                    libc::sigfillset(&mut all);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
                }
                runtime.block_on(async {
                    loop {
                        tokio::select! {
                            batch = stream.next_batch() => match batch {
                                Ok(events) => print(events).await,
                                Err(e) => {
                                    tracing::warn!("kernel events: {e:#}");
                                    break;
                                }
                            },
                            _ = &mut stopped => break,
                        }
                    }
                    let rest = stream.drain();
                    if !rest.is_empty() {
                        print(rest).await;
                    }
                });
            })
            .context("starting the event reader thread")?;
        Ok(EventPrinter {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stop after printing everything already in the buffer.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EventPrinter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ring's data pages whose byte `i` is `i`.
    fn ring_of_64() -> Vec<u8> {
        (0..64).collect()
    }

    #[test]
    fn a_record_before_the_end_of_the_ring_is_read_in_place() {
        let ring = ring_of_64();
        let mut wrapped = Vec::new();
        // Header at 8, body 16..40.
        let body = unsafe { record_body(ring.as_ptr(), 64, 8, 24, &mut wrapped) };
        assert_eq!(body, &ring[16..40]);
        assert_eq!(body.as_ptr(), ring[16..].as_ptr(), "borrowed, not copied");
        // A body that ends exactly at the end of the ring is still in one piece.
        let body = unsafe { record_body(ring.as_ptr(), 64, 40, 16, &mut wrapped) };
        assert_eq!(body, &ring[48..64]);
        assert!(wrapped.is_empty());
    }

    #[test]
    fn a_record_that_wraps_past_the_end_is_put_back_together() {
        let ring = ring_of_64();
        let mut wrapped = Vec::new();
        // Header at 48, body 56..64 then 0..12.
        let body = unsafe { record_body(ring.as_ptr(), 64, 48, 20, &mut wrapped) };
        let expected: Vec<u8> = (56..64).chain(0..12).collect();
        assert_eq!(body, &expected[..]);
        // A header in the ring's last 8 bytes: the whole body is at the start.
        let body = unsafe { record_body(ring.as_ptr(), 64, 56, 10, &mut wrapped) };
        assert_eq!(body, &ring[0..10]);
        assert_eq!(body.as_ptr(), ring.as_ptr(), "borrowed, not copied");
    }

    fn exec_record(filename: &[u8], argv: &[u8], flags: u32) -> Vec<u8> {
        let mut r = ExecRecord {
            time_ns: 5,
            sandbox_id: 7,
            tgid: 100,
            pid: 101,
            uid: 0,
            flags,
            argv_len: argv.len() as u32,
            comm: [0; 16],
            // What a denied exec carries; a completed one's record has zeros here, and the
            // reader ignores them unless the record says denied.
            rule_id: 3,
            dev: 8 << 20 | 1,
            ino: 77,
            filename: [0; nono_common::EXEC_FILENAME_LEN],
            argv: [0; nono_common::EXEC_ARGV_LEN],
        };
        r.comm[..4].copy_from_slice(b"true");
        r.filename[..filename.len()].copy_from_slice(filename);
        r.argv[..argv.len()].copy_from_slice(argv);
        // SAFETY: plain old data without padding (the size assertion in nono-common).
        unsafe {
            std::slice::from_raw_parts(
                (&r as *const ExecRecord).cast::<u8>(),
                std::mem::size_of::<ExecRecord>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn exec_records_are_told_from_events_by_length() {
        let raw = exec_record(b"/bin/true", b"true\0--token\0x\0", 0);
        let e = KernelEvent::decode(&raw).expect("decodes");
        assert_eq!((e.sandbox_id, e.tgid, e.pid), (7, 100, 101));
        assert_eq!(e.comm, "true");
        assert!(!e.denied && e.hook.is_none());
        assert_eq!(
            e.object,
            EventObject::Exec {
                binary: b"/bin/true".to_vec(),
                argv: vec![b"true".to_vec(), b"--token".to_vec(), b"x".to_vec()],
                argv_truncated: false,
                binary_truncated: false,
                dev: 0,
                ino: 0,
            }
        );
        assert_eq!(e.rule_id, 0);
        // Printed redacted.
        let line = e.to_string();
        assert!(line.contains("argv=[true, --token, [REDACTED]]"), "{line}");
        assert!(line.starts_with("kernel: allow exec pid=100 "), "{line}");
    }

    #[test]
    fn denied_exec_records_carry_the_decision() {
        let raw = exec_record(
            b"/work/bin/tool",
            b"/work/bin/tool\0--password\0hunter2\0x\0",
            EXEC_DENIED,
        );
        let e = KernelEvent::decode(&raw).expect("decodes");
        assert!(e.denied);
        assert_eq!(e.hook, Some(Hook::BprmCheck));
        assert_eq!(e.rule_id, 3);
        assert_eq!(
            e.object,
            EventObject::Exec {
                binary: b"/work/bin/tool".to_vec(),
                argv: vec![
                    b"/work/bin/tool".to_vec(),
                    b"--password".to_vec(),
                    b"hunter2".to_vec(),
                    b"x".to_vec()
                ],
                argv_truncated: false,
                binary_truncated: false,
                dev: 8 << 20 | 1,
                ino: 77,
            }
        );
        assert_eq!(
            e.to_string(),
            "kernel: deny bprm_check_security rule=r3 pid=100 comm=true uid=0 dev=8:1 ino=77 \
             binary=/work/bin/tool argv=[/work/bin/tool, --password, [REDACTED], x]"
        );
        // Hostile names are escaped on the -v line: the binary's and every argument's.
        let raw = exec_record(b"/tmp/\x1b[2Jx\n", b"a\x1b]0;t\x07\0\xff\0", EXEC_DENIED);
        let line = KernelEvent::decode(&raw).expect("decodes").to_string();
        assert!(
            !line.contains('\x1b') && !line.contains('\n') && !line.contains('\x07'),
            "{line:?}"
        );
    }

    fn path_record(names: &[u8], flags: u32) -> Vec<u8> {
        let mut event: Event = unsafe { std::mem::zeroed() };
        event.sandbox_id = 7;
        event.tgid = 100;
        event.hook = Hook::FileOpen as u16;
        event.dev = 8 << 20 | 1;
        event.ino = 42;
        // SAFETY: plain old data without padding (the size assertion in nono-common).
        let mut raw = unsafe {
            std::slice::from_raw_parts(
                (&event as *const Event).cast::<u8>(),
                std::mem::size_of::<Event>(),
            )
        }
        .to_vec();
        raw.extend_from_slice(&flags.to_ne_bytes());
        raw.extend_from_slice(&(names.len() as u32).to_ne_bytes());
        raw.extend_from_slice(names);
        raw
    }

    fn file_path(raw: &[u8]) -> (Option<Vec<u8>>, bool) {
        match KernelEvent::decode(raw).expect("decodes").object {
            EventObject::File {
                path,
                path_cut,
                ino,
                ..
            } => {
                assert_eq!(ino, 42);
                (path, path_cut)
            }
            other => panic!("not a file event: {other:?}"),
        }
    }

    #[test]
    fn path_records_are_reversed_into_paths() {
        assert_eq!(
            file_path(&path_record(b"c.txt\0b\0a\0", 0)),
            (Some(b"/a/b/c.txt".to_vec()), false)
        );
        // The root itself, and raw bytes kept as they are.
        assert_eq!(
            file_path(&path_record(b"", 0)),
            (Some(b"/".to_vec()), false)
        );
        assert_eq!(
            file_path(&path_record(b"\xff\0tmp\0", 0)),
            (Some(b"/tmp/\xff".to_vec()), false)
        );
        // Cut by the kernel: no leading slash. A name cut at the end is left out.
        assert_eq!(
            file_path(&path_record(b"c\0b\0", FILE_PATH_CUT)),
            (Some(b"b/c".to_vec()), true)
        );
        assert_eq!(
            file_path(&path_record(b"c\0b\0partia", 0)),
            (Some(b"b/c".to_vec()), true)
        );
        assert_eq!(file_path(&path_record(b"", FILE_PATH_CUT)), (None, true));
        // A plain event has no path.
        let plain = path_record(b"", 0)[..std::mem::size_of::<Event>()].to_vec();
        assert_eq!(file_path(&plain), (None, false));
    }

    #[test]
    fn a_cut_command_line_keeps_whole_arguments_only() {
        // The record ends inside `https://user:pw@host`: that start is left out.
        let raw = exec_record(b"git", b"git\0clone\0https://user:p", EXEC_ARGV_CUT);
        let e = KernelEvent::decode(&raw).expect("decodes");
        match e.object {
            EventObject::Exec {
                argv,
                argv_truncated,
                ..
            } => {
                assert_eq!(argv, vec![b"git".to_vec(), b"clone".to_vec()]);
                assert!(argv_truncated);
            }
            other => panic!("not an exec: {other:?}"),
        }
        let unreadable = exec_record(b"/bin/x", b"", EXEC_ARGV_UNREADABLE);
        match KernelEvent::decode(&unreadable).expect("decodes").object {
            EventObject::Exec {
                argv,
                argv_truncated,
                ..
            } => assert!(argv.is_empty() && argv_truncated),
            other => panic!("not an exec: {other:?}"),
        }
    }
}
