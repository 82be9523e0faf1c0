//! Group commit: one thread owns the [`Log`] and turns every frame submitted
//! while it was busy into one `append_batch` and one `fdatasync`, then reports
//! the batch's last zxid as durable. Under light load a batch is one frame and
//! latency is one sync; under heavy load the cost of a sync is shared by
//! everything that queued up during the previous one.
//!
//! The queue is a `Mutex<VecDeque>` + `Condvar`: `submit` holds the lock only to
//! push, and the thread swaps the whole queue out, so neither side waits on
//! the other's I/O. The queue is unbounded; the sequencer bounds what it has
//! in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::WalError;
use crate::log::Log;

/// Called on the WAL thread with the last zxid of each batch once it is
/// durable, in increasing zxid order.
pub type DurableFn = Box<dyn Fn(u64) + Send + 'static>;

/// Called on the WAL thread, once, when writing or syncing fails. The thread
/// then stops: nothing submitted afterwards is written.
pub type FatalFn = Box<dyn Fn(WalError) + Send + 'static>;

/// Counters for `mntr`, read without locking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupStats {
    /// Batches made durable (= fdatasync calls that succeeded).
    pub batches: u64,
    /// Frames made durable.
    pub frames: u64,
    /// Payload bytes made durable (frame headers not counted).
    pub bytes: u64,
    /// Duration of the latest batch's fdatasync, in microseconds.
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

struct Queue {
    pending: VecDeque<(u64, u64, Vec<u8>)>,
    /// `shutdown` was called: drain what is pending, then stop.
    closing: bool,
    /// An I/O error stopped the thread: drop submissions.
    failed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock can only come from a callback
        // panicking on the WAL thread; the queue itself is still consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to the group-commit thread.
pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Log>>,
}

impl GroupCommit {
    /// Starts the WAL thread, which owns `log` until [`GroupCommit::shutdown`].
    ///
    /// Panics only if the OS refuses to create a thread.
    pub fn spawn(log: Log, on_durable: DurableFn, on_fatal: FatalFn) -> GroupCommit {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                closing: false,
                failed: false,
            }),
            wake: Condvar::new(),
            counters: Counters::default(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("keel-wal".into())
            .spawn(move || run(log, &worker, on_durable, on_fatal))
            .unwrap_or_else(|e| panic!("cannot start the WAL group-commit thread: {e}"));
        GroupCommit {
            shared,
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
        drop(q);
        self.shared.wake.notify_one();
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
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
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

fn run(mut log: Log, shared: &Shared, on_durable: DurableFn, on_fatal: FatalFn) -> Log {
    let mut batch = VecDeque::new();
    loop {
        {
            let mut q = shared.lock();
            while q.pending.is_empty() && !q.closing {
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.pending.is_empty() {
                return log; // closing and drained
            }
            // Swap rather than drain: the old batch's allocation becomes the
            // next queue.
            std::mem::swap(&mut q.pending, &mut batch);
        }
        match commit(&mut log, &batch) {
            Ok(micros) => {
                let c = &shared.counters;
                let bytes: usize = batch.iter().map(|f| f.2.len()).sum();
                let last = batch.back().map_or(0, |f| f.1);
                c.batches.fetch_add(1, Ordering::Relaxed);
                c.frames.fetch_add(batch.len() as u64, Ordering::Relaxed);
                c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                c.last_fsync_micros.store(micros, Ordering::Relaxed);
                c.last_durable_zxid.store(last, Ordering::Relaxed);
                on_durable(last);
            }
            Err(e) => {
                {
                    let mut q = shared.lock();
                    q.failed = true;
                    q.pending.clear();
                }
                tracing::error!(error = %e, "WAL write failed; group commit stopped");
                on_fatal(e);
                return log;
            }
        }
        batch.clear();
    }
}

/// One append + one sync for the whole batch; returns the sync's duration.
fn commit(log: &mut Log, batch: &VecDeque<(u64, u64, Vec<u8>)>) -> Result<u64, WalError> {
    let refs: Vec<(u64, u64, &[u8])> = batch
        .iter()
        .map(|(f, l, p)| (*f, *l, p.as_slice()))
        .collect();
    log.append_batch(&refs)?;
    let t = Instant::now();
    log.sync()?;
    Ok(t.elapsed().as_micros().min(u64::MAX as u128) as u64)
}
