//! Group commit: one thread owns the [`Log`] and turns every frame submitted
//! while it was busy into one write and one fdatasync, then reports the
//! batch's last zxid as durable. Under light load a batch is one frame and
//! latency is one sync; under heavy load the cost of a sync is shared by
//! everything that queued up meanwhile.
//!
//! Write and sync overlap: once batch k is written its fdatasync is started
//! (linked behind the write on io_uring, on a helper thread with pwrite) and
//! the thread goes on to write batch k+1 while it runs. At most
//! [`MAX_SYNCS_IN_FLIGHT`] syncs are outstanding; durability is reported as
//! the last zxid of the newest batch whose sync, and every earlier one,
//! succeeded, so reports are in increasing zxid order and never ahead of
//! what a restart recovers. The first failed write or fdatasync is fatal:
//! reported once through `on_fatal`, nothing is reported durable after it
//! (not even syncs that completed fine later), and the thread stops.
//!
//! The queue is a `Mutex<VecDeque>`: `submit` holds the lock only to push,
//! and the thread swaps the whole queue out, so neither side waits on the
//! other's I/O. The thread sleeps on an eventfd that submitters ring (only
//! when it is asleep) and that every sync completion rings. The queue is
//! unbounded; the sequencer bounds what it has in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};

use crate::error::WalError;
use crate::fsio::Doorbell;
use crate::log::Log;

/// How many fdatasyncs group commit keeps in flight: 2 lets the write of
/// batch k+1 overlap the sync of batch k; batch k+2 then waits for sync k
/// and grows meanwhile.
pub const MAX_SYNCS_IN_FLIGHT: usize = 2;

/// Called on the WAL thread with the last zxid of each batch once it is
/// durable, in increasing zxid order.
pub type DurableFn = Box<dyn Fn(u64) + Send + 'static>;

/// Called on the WAL thread, once, when writing or syncing fails. The thread
/// then stops: nothing submitted afterwards is written, and nothing is
/// reported durable after it.
pub type FatalFn = Box<dyn Fn(WalError) + Send + 'static>;

/// Counters for `mntr`, read without locking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupStats {
    /// Durability reports made (one per successful fdatasync that moved the
    /// durable zxid).
    pub batches: u64,
    /// Frames made durable.
    pub frames: u64,
    /// Payload bytes made durable (frame headers not counted).
    pub bytes: u64,
    /// Duration of the latest reported fdatasync, in microseconds (from its
    /// start to the WAL thread seeing it complete).
    pub last_fsync_micros: u64,
    /// Last zxid reported durable; 0 before the first batch.
    pub last_durable_zxid: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
    last_fsync_micros: AtomicU64,
    last_durable_zxid: AtomicU64,
}

/// Work for the WAL thread other than frames, run between batches.
enum Control {
    /// `Log::purge_through(zxid)`; the answer goes back to the caller.
    Purge {
        zxid: u64,
        reply: mpsc::SyncSender<Result<usize, WalError>>,
    },
}

struct Queue {
    pending: VecDeque<(u64, u64, Vec<u8>)>,
    control: Vec<Control>,
    /// `shutdown` was called: drain what is pending, then stop.
    closing: bool,
    /// An I/O error stopped the thread: drop submissions.
    failed: bool,
    /// The WAL thread is asleep on the doorbell (or about to be): the next
    /// submitter rings it and clears this.
    parked: bool,
}

impl Queue {
    /// Why new requests are refused, if they are.
    fn refusal(&self) -> Option<String> {
        if self.failed {
            Some("an earlier write or fsync failed (see the fatal error reported then)".into())
        } else if self.closing {
            Some("group commit is shutting down".into())
        } else {
            None
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    bell: Arc<Doorbell>,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock can only come from a callback
        // panicking on the WAL thread; the queue itself is still consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the WAL thread if it sleeps. Called after releasing the lock.
    fn wake(&self, was_parked: bool) {
        if was_parked {
            self.bell.ring();
        }
    }
}

/// Handle to the group-commit thread.
pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Log>>,
    /// The WAL thread's id, to refuse blocking requests made from its own
    /// callbacks (they would wait for themselves).
    thread_id: ThreadId,
}

impl GroupCommit {
    /// Starts the WAL thread, which owns `log` until [`GroupCommit::shutdown`].
    ///
    /// Panics only if the OS refuses to create a thread.
    pub fn spawn(mut log: Log, on_durable: DurableFn, on_fatal: FatalFn) -> GroupCommit {
        log.set_reporting(true);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                control: Vec::new(),
                closing: false,
                failed: false,
                parked: false,
            }),
            bell: log.doorbell(),
            counters: Counters::default(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("keel-wal".into())
            .spawn(move || run(log, &worker, on_durable, on_fatal))
            .unwrap_or_else(|e| panic!("cannot start the WAL group-commit thread: {e}"));
        GroupCommit {
            shared,
            thread_id: thread.thread().id(),
            thread: Some(thread),
        }
    }

    /// Queues a frame for the next batch; never blocks on I/O. Frames must be
    /// submitted in zxid order (the log rejects anything else, fatally).
    /// After a fatal error, submissions are dropped.
    pub fn submit(&self, first_zxid: u64, last_zxid: u64, payload: Vec<u8>) {
        let mut q = self.shared.lock();
        if q.failed || q.closing {
            return;
        }
        q.pending.push_back((first_zxid, last_zxid, payload));
        let parked = std::mem::take(&mut q.parked);
        drop(q);
        self.shared.wake(parked);
    }

    /// Deletes the log segments all of whose frames have `last_zxid <= zxid`
    /// (never the segment being written), on the WAL thread between two
    /// batches, and returns how many were deleted. Call it with the zxid that
    /// [`SnapshotStore::purge`](crate::SnapshotStore::purge) returns (the
    /// oldest snapshot kept): replay from any kept snapshot still finds every
    /// frame it needs.
    ///
    /// Blocks until the WAL thread has done it (one batch write at most,
    /// plus the unlinks and a directory fsync). A failure here (an unlink, or
    /// the directory fsync that makes the unlinks durable) is returned and is
    /// not fatal for the log: at worst a deleted segment comes back after a
    /// crash and is purged again. Returns [`WalError::Stopped`] without doing
    /// anything if the WAL thread has stopped, is shutting down, or if this
    /// is called from an `on_durable`/`on_fatal` callback (it would wait for
    /// itself).
    pub fn purge_through(&self, zxid: u64) -> Result<usize, WalError> {
        if std::thread::current().id() == self.thread_id {
            return Err(WalError::Stopped {
                reason: "purge_through was called on the WAL thread itself (from a callback), \
                         where it would wait for itself"
                    .into(),
            });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let parked = {
            let mut q = self.shared.lock();
            if let Some(reason) = q.refusal() {
                return Err(WalError::Stopped { reason });
            }
            q.control.push(Control::Purge { zxid, reply });
            std::mem::take(&mut q.parked)
        };
        self.shared.wake(parked);
        // The thread answers every control it takes; if it dies first (a
        // callback panicked) the sender is dropped and recv fails.
        answer.recv().unwrap_or_else(|_| {
            Err(WalError::Stopped {
                reason: "the WAL thread ended before answering".into(),
            })
        })
    }

    /// Writes and syncs everything already submitted, stops the thread and
    /// hands the log back. After a fatal error the log is returned as is.
    pub fn shutdown(mut self) -> Log {
        match self.stop() {
            Some(Ok(log)) => log,
            // The thread only panics if a callback did; carry the panic on.
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("only shutdown and drop stop the thread, each at most once"),
        }
    }

    /// Asks the thread to drain and stop, and joins it (once).
    fn stop(&mut self) -> Option<std::thread::Result<Log>> {
        let thread = self.thread.take()?;
        let parked = {
            let mut q = self.shared.lock();
            q.closing = true;
            std::mem::take(&mut q.parked)
        };
        self.shared.wake(parked);
        Some(thread.join())
    }

    pub fn stats(&self) -> GroupStats {
        let c = &self.shared.counters;
        GroupStats {
            batches: c.batches.load(Ordering::Relaxed),
            frames: c.frames.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            last_fsync_micros: c.last_fsync_micros.load(Ordering::Relaxed),
            last_durable_zxid: c.last_durable_zxid.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupCommit {
    /// Dropping without `shutdown` still flushes and joins, so a frame that
    /// was submitted is never silently left unwritten.
    fn drop(&mut self) {
        // A callback's panic was already reported on the WAL thread; panicking
        // again inside drop could abort, so it is not re-raised here.
        drop(self.stop());
    }
}

/// The WAL thread's state besides the log.
struct Worker<'a> {
    shared: &'a Shared,
    on_durable: DurableFn,
    on_fatal: FatalFn,
    /// Batches written, not yet reported: (last zxid, frames, payload bytes).
    written: VecDeque<(u64, u64, u64)>,
}

impl Worker<'_> {
    /// Reports what became durable since the last call, in zxid order.
    fn report(&mut self, log: &mut Log) {
        let c = &self.shared.counters;
        for d in log.take_durable() {
            let (mut frames, mut bytes) = (0, 0);
            while self.written.front().is_some_and(|w| w.0 <= d.zxid) {
                if let Some((_, f, b)) = self.written.pop_front() {
                    frames += f;
                    bytes += b;
                }
            }
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.frames.fetch_add(frames, Ordering::Relaxed);
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
            c.last_fsync_micros.store(d.micros, Ordering::Relaxed);
            c.last_durable_zxid.store(d.zxid, Ordering::Relaxed);
            (self.on_durable)(d.zxid);
        }
    }

    /// Applies finished syncs and reports; `Err` is fatal.
    fn poll(&mut self, log: &mut Log, block: bool) -> Result<(), WalError> {
        let r = log.poll_syncs(block);
        // Points reached before a failure were durable: report them first.
        self.report(log);
        r
    }

    /// The fatal path: refuse everything from now on, report once.
    fn fail(&mut self, e: WalError) {
        let refused = {
            let mut q = self.shared.lock();
            q.failed = true;
            q.pending.clear();
            std::mem::take(&mut q.control)
        };
        for c in refused {
            refuse(c);
        }
        tracing::error!(error = %e, "WAL write or fsync failed; group commit stopped");
        (self.on_fatal)(e);
    }
}

fn run(log: Log, shared: &Shared, on_durable: DurableFn, on_fatal: FatalFn) -> Log {
    let mut log = run_loop(log, shared, on_durable, on_fatal);
    // Handed back for standalone use: stop collecting durability points.
    log.set_reporting(false);
    log
}

fn run_loop(mut log: Log, shared: &Shared, on_durable: DurableFn, on_fatal: FatalFn) -> Log {
    let mut w = Worker {
        shared,
        on_durable,
        on_fatal,
        written: VecDeque::new(),
    };
    let mut batch = VecDeque::new();
    let mut control = Vec::new();
    loop {
        if let Err(e) = w.poll(&mut log, false) {
            w.fail(e);
            return log;
        }
        {
            let mut q = shared.lock();
            if q.pending.is_empty() && q.control.is_empty() {
                if q.closing && log.syncs_in_flight() == 0 {
                    return log; // closing and drained
                }
                if q.closing {
                    drop(q);
                    if let Err(e) = w.poll(&mut log, true) {
                        w.fail(e);
                        return log;
                    }
                    continue;
                }
                // Sleep until a submitter or a sync completion rings. A ring
                // that came in since the poll above is not lost: the eventfd
                // counts it and the wait returns at once.
                q.parked = true;
                drop(q);
                shared.bell.wait();
                shared.lock().parked = false;
                continue;
            }
            // Swap rather than drain: the old batch's allocation becomes the
            // next queue.
            std::mem::swap(&mut q.pending, &mut batch);
            std::mem::swap(&mut q.control, &mut control);
        }
        // Between batches: the previous batch is written (its sync may still
        // run), this one not yet.
        for c in control.drain(..) {
            run_control(&mut log, c);
        }
        if batch.is_empty() {
            continue;
        }
        // Keep at most MAX_SYNCS_IN_FLIGHT syncs outstanding; the batch grows
        // while we wait (new submissions go to the queue, not to `batch`,
        // so take them too once there is room).
        if log.syncs_in_flight() >= MAX_SYNCS_IN_FLIGHT {
            while log.syncs_in_flight() >= MAX_SYNCS_IN_FLIGHT {
                if let Err(e) = w.poll(&mut log, true) {
                    w.fail(e);
                    return log;
                }
            }
            let mut q = shared.lock();
            batch.append(&mut q.pending);
        }
        let refs: Vec<(u64, u64, &[u8])> = batch
            .iter()
            .map(|(f, l, p)| (*f, *l, p.as_slice()))
            .collect();
        let bytes: usize = batch.iter().map(|f| f.2.len()).sum();
        let last = batch.back().map_or(0, |f| f.1);
        if let Err(e) = log.append_and_start_sync(&refs) {
            // Durability reached by a rollover inside the append is real.
            w.report(&mut log);
            w.fail(e);
            return log;
        }
        w.written
            .push_back((last, batch.len() as u64, bytes as u64));
        batch.clear();
    }
}

fn run_control(log: &mut Log, c: Control) {
    match c {
        Control::Purge { zxid, reply } => {
            let r = log.purge_through(zxid);
            match &r {
                Ok(n) if *n > 0 => tracing::info!(zxid, segments = n, "purged old WAL segments"),
                Ok(_) => {}
                Err(e) => tracing::warn!(zxid, error = %e, "purging old WAL segments failed"),
            }
            // The caller waits in recv; a closed channel is not an error here.
            let _ = reply.send(r);
        }
    }
}

fn refuse(c: Control) {
    match c {
        Control::Purge { reply, .. } => {
            let _ = reply.send(Err(WalError::Stopped {
                reason: "an earlier write or fsync failed".into(),
            }));
        }
    }
}
