//! The auditor: a tokio task that takes events from a bounded channel and writes them to the
//! store in batched transactions, on a thread of its own.
//!
//! Privilege: none. Kernel assumptions: none beyond threads and signal masks.
//!
//! Sources never wait on SQLite. A source hands over a batch with [`AuditSender::try_send`]
//! (never waits; when the channel is full the batch is counted as dropped, and the count is
//! stored in the session) or [`AuditSender::send`] (an async wait for room: a ring-buffer
//! reader that awaits it stops consuming, so the kernel ring absorbs the burst and anything
//! it cannot hold is counted by the kernel's drop counter, reported with
//! [`AuditSender::set_kernel_drops`]). Either way memory is bounded: at most
//! [`CHANNEL_BATCHES`] batches of at most [`MAX_BATCH`] events wait in the channel, and the
//! writer takes at most [`WRITE_BATCH`] events per transaction.
//!
//! The writer drains everything already queued into one transaction, so under load batches
//! grow (fewer commits) and under a trickle each event is committed at once (little is lost
//! to a `kill -9`).
//!
//! Signals: the thread blocks every signal. `nono run` takes its signals synchronously with
//! `sigwaitinfo` on the main thread (see `run::sandbox::supervise`); a thread that left them
//! unblocked would receive SIGCHLD or SIGINT in its place and the run would hang or die.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::event::{AuditEvent, Row};
use super::store::{Cursor, End, Store};
use super::AuditError;

/// The most events in one channel message; larger batches are split.
pub const MAX_BATCH: usize = 1024;
/// Channel capacity, in messages.
pub const CHANNEL_BATCHES: usize = 64;
/// The most events in one write transaction.
pub const WRITE_BATCH: usize = 16 * 1024;

/// Events travel as stored rows: the sender's thread converts them, so the conversion runs
/// beside the writer's hashing and SQLite work instead of after it.
enum Msg {
    Batch(Vec<Row>),
    End(End),
}

fn rows(events: Vec<AuditEvent>) -> Vec<Row> {
    events.into_iter().map(AuditEvent::into_row).collect()
}

/// The handle sources use to send events. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct AuditSender {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    dropped_user: AtomicU64,
    dropped_kernel: AtomicU64,
}

/// The channel is closed: the auditor stopped (its store failed).
#[derive(Debug, thiserror::Error)]
#[error("the auditor has stopped")]
pub struct Closed;

impl AuditSender {
    /// Hands over events without ever waiting. Returns how many were dropped because the
    /// channel was full or closed (they are counted in the session's `dropped_user`).
    pub fn try_send(&self, mut events: Vec<AuditEvent>) -> usize {
        let mut dropped = 0;
        while !events.is_empty() {
            let rest = if events.len() > MAX_BATCH {
                events.split_off(MAX_BATCH)
            } else {
                Vec::new()
            };
            let n = events.len();
            if self.tx.try_send(Msg::Batch(rows(events))).is_err() {
                dropped += n;
            }
            events = rest;
        }
        if dropped > 0 {
            self.counters
                .dropped_user
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        dropped
    }

    /// Hands over events, waiting (asynchronously) for room in the channel.
    pub async fn send(&self, mut events: Vec<AuditEvent>) -> Result<(), Closed> {
        while !events.is_empty() {
            let rest = if events.len() > MAX_BATCH {
                events.split_off(MAX_BATCH)
            } else {
                Vec::new()
            };
            self.tx
                .send(Msg::Batch(rows(events)))
                .await
                .map_err(|_| Closed)?;
            events = rest;
        }
        Ok(())
    }

    /// [`AuditSender::send`] for a caller outside any tokio runtime (waits on this thread).
    pub fn blocking_send(&self, mut events: Vec<AuditEvent>) -> Result<(), Closed> {
        while !events.is_empty() {
            let rest = if events.len() > MAX_BATCH {
                events.split_off(MAX_BATCH)
            } else {
                Vec::new()
            };
            self.tx
                .blocking_send(Msg::Batch(rows(events)))
                .map_err(|_| Closed)?;
            events = rest;
        }
        Ok(())
    }

    /// The kernel's cumulative count of events it could not put in the ring buffer for this
    /// session; stored with the session and shown by `nono audit show`.
    pub fn set_kernel_drops(&self, total: u64) {
        self.counters.dropped_kernel.store(total, Ordering::Relaxed);
    }

    /// Events dropped so far because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped_user.load(Ordering::Relaxed)
    }
}

/// What the auditor wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub events: i64,
    pub violations: i64,
    pub dropped_user: u64,
    pub dropped_kernel: u64,
    /// CPU time the writer thread used (hashing, SQLite, waiting excluded).
    pub writer_cpu_ns: i64,
}

fn thread_cpu_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; the thread CPU clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The running auditor of one session.
pub struct Auditor {
    sender: AuditSender,
    /// The writer's summary, sent once the session's last transaction is committed, before the
    /// writer closes the store (see [`Auditor::finish`]).
    done: std::sync::mpsc::Receiver<Summary>,
    /// Ends with the writer's error, if it failed before sending a summary.
    thread: std::thread::JoinHandle<Result<(), AuditError>>,
}

/// Blocks every signal on the calling thread until dropped (restoring the previous mask), so a
/// thread spawned meanwhile starts with all signals blocked: no window where it could take one.
pub(crate) struct AllSignalsBlocked(libc::sigset_t);

impl AllSignalsBlocked {
    pub(crate) fn new() -> AllSignalsBlocked {
        // SAFETY: sigset_t is plain data initialised by sigfillset; pthread_sigmask only
        // changes this thread's mask.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            AllSignalsBlocked(old)
        }
    }
}

impl Drop for AllSignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new` on the same thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

impl Auditor {
    /// Starts writing the session at `cursor` to `store`.
    pub fn start(store: Store, cursor: Cursor) -> std::io::Result<Auditor> {
        Self::start_with(store, cursor, |_| {})
    }

    /// As [`Auditor::start`], running `before` on the writer thread first (e.g. pruning).
    pub fn start_with(
        store: Store,
        cursor: Cursor,
        before: impl FnOnce(&mut Store) + Send + 'static,
    ) -> std::io::Result<Auditor> {
        Self::start_opening(move || Ok((store, cursor)), before)
    }

    /// As [`Auditor::start_with`], opening the store and the session on the writer thread
    /// too: `nono run` starts the command meanwhile instead of waiting for SQLite. Events sent
    /// before the store is open wait in the channel; if `open` fails, the channel closes
    /// (senders see [`Closed`], `try_send` counts drops) and [`Auditor::finish`] returns the
    /// error.
    pub fn start_opening(
        open: impl FnOnce() -> Result<(Store, Cursor), AuditError> + Send + 'static,
        before: impl FnOnce(&mut Store) + Send + 'static,
    ) -> std::io::Result<Auditor> {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let counters = Arc::new(Counters::default());
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let thread_counters = counters.clone();
        let thread = {
            let _blocked = AllSignalsBlocked::new();
            std::thread::Builder::new()
                .name("nono-audit".into())
                .spawn(move || {
                    let (mut store, cursor) = open()?;
                    before(&mut store);
                    let (summary, store) =
                        runtime.block_on(write_loop(store, cursor, rx, thread_counters))?;
                    let _ = done_tx.send(summary);
                    // Closing the connection may be cut short by nono's exit (see `finish`).
                    drop(store);
                    Ok(())
                })?
        };
        Ok(Auditor {
            sender: AuditSender { tx, counters },
            done,
            thread,
        })
    }

    pub fn sender(&self) -> AuditSender {
        self.sender.clone()
    }

    /// Ends the session: writes what is queued, then the `end` event, and marks it complete.
    /// Stop the sources first; events sent after this are not recorded.
    ///
    /// Returns once the last transaction is committed, without waiting for the writer to close
    /// the store and its thread to end (about 0.13 ms at the end of every `nono run`): if nono
    /// exits meanwhile, the store is left as a `kill -9` after that commit would leave it,
    /// which SQLite's WAL mode recovers from by design, and with nothing lost (no checkpoint
    /// runs at close, see `Store::open`).
    pub fn finish(self, time_ns: i64, exit_code: Option<i32>) -> Result<Summary, AuditError> {
        let end = End {
            time_ns,
            exit_code,
            // Filled in by the writer from the counters, when it has written everything.
            dropped_kernel: 0,
            dropped_user: 0,
        };
        let Auditor {
            sender,
            done,
            thread,
        } = self;
        // If the writer already stopped on an error, the join below reports it.
        let _ = sender.tx.blocking_send(Msg::End(end));
        drop(sender);
        if let Ok(summary) = done.recv() {
            return Ok(summary);
        }
        match thread.join() {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(AuditError::Other(
                "the audit writer ended without a summary".into(),
            )),
            Err(_) => Err(AuditError::Other("the audit writer thread panicked".into())),
        }
    }
}

/// The writer; returns the store with the summary, so the summary can be handed over before
/// the store is closed.
async fn write_loop(
    mut store: Store,
    mut cursor: Cursor,
    mut rx: mpsc::Receiver<Msg>,
    counters: Arc<Counters>,
) -> Result<(Summary, Store), AuditError> {
    let cpu_start = thread_cpu_ns();
    let mut pending: Vec<Row> = Vec::with_capacity(WRITE_BATCH);
    let mut end = None;
    while end.is_none() {
        match rx.recv().await {
            // Every sender is gone without an end: the session stays incomplete.
            None => break,
            Some(Msg::End(e)) => end = Some(e),
            Some(Msg::Batch(b)) => pending.extend(b),
        }
        while pending.len() < WRITE_BATCH && end.is_none() {
            match rx.try_recv() {
                Ok(Msg::Batch(b)) => pending.extend(b),
                Ok(Msg::End(e)) => end = Some(e),
                Err(_) => break,
            }
        }
        // The last batch goes in the end's transaction.
        if !pending.is_empty() && end.is_none() {
            store.append(
                &mut cursor,
                &pending,
                counters.dropped_kernel.load(Ordering::Relaxed),
                counters.dropped_user.load(Ordering::Relaxed),
            )?;
            pending.clear();
        }
    }
    let dropped_kernel = counters.dropped_kernel.load(Ordering::Relaxed);
    let dropped_user = counters.dropped_user.load(Ordering::Relaxed);
    if let Some(mut e) = end {
        e.dropped_kernel = dropped_kernel;
        e.dropped_user = dropped_user;
        store.end_session(&mut cursor, &pending, &e)?;
    } else if !pending.is_empty() {
        // Unreachable in practice (the loop writes each batch unless an end came with it),
        // but a batch must never be dropped on the way out.
        store.append(&mut cursor, &pending, dropped_kernel, dropped_user)?;
    }
    if let Err(e) = store.tidy() {
        tracing::warn!("audit: checkpointing the store: {e}");
    }
    let summary = Summary {
        id: cursor.id,
        events: cursor.seq,
        violations: cursor.violations,
        dropped_user,
        dropped_kernel,
        writer_cpu_ns: thread_cpu_ns() - cpu_start,
    };
    Ok((summary, store))
}
