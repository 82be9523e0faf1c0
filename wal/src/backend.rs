//! How the log's writes and fdatasyncs reach the kernel: io_uring (one linked
//! write + fdatasync submission per batch) or plain `pwrite` + `fdatasync`
//! system calls with a helper thread that runs the syncs. Both let the write
//! of batch k+1 proceed while batch k's fdatasync is in flight.
//!
//! The contract, shared by both engines:
//! - [`Io::write`] returns once the write has completed (so writes never
//!   overlap each other: the next one may rewrite the previous one's partial
//!   `O_DIRECT` block). With `then_sync`, a sync covering the write has been
//!   started when it returns `Ok`; when it returns `Err`, no sync was started.
//! - [`Io::start_sync`] starts a sync covering every write that completed
//!   before it; it never fails by itself: an error is that sync's completion.
//! - A sync's completion (ticket, result) is reported exactly once, by
//!   [`Io::reap`] or [`Io::wait`], in any order; the log puts them back in
//!   ticket order.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use io_uring::{opcode, squeue, types, IoUring};
use rkyv::util::AlignedVec;

use crate::fsio::{Doorbell, LogFile};

/// Alignment of `O_DIRECT` writes: covers 512-byte and 4 KiB logical blocks.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// Which mechanism carries the log's writes and syncs to the disk; chosen
/// when the log is opened and reported by [`Log::backend`](crate::Log::backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring: a batch's write and its fdatasync go to the kernel as one
    /// linked submission; the WAL thread writes the next batch while the
    /// fdatasync runs.
    IoUring,
    /// `pwrite` + `fdatasync` system calls; a helper thread runs the
    /// fdatasyncs so that the WAL thread can write the next batch meanwhile.
    /// Used where no io_uring instance can be created (old kernel, seccomp
    /// filter, `io_uring_disabled`, locked-memory limit) or when asked for.
    Pwrite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::IoUring => "io_uring",
            Backend::Pwrite => "pwrite",
        })
    }
}

/// A finished sync: its ticket and its result.
pub(crate) type Completion = (u64, io::Result<()>);

/// `io::Error` is not `Clone`; one sync's result can cover several tickets.
fn clone_err(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn clone_result(r: &io::Result<()>) -> io::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(clone_err(e)),
    }
}

/// The engine in use, behind one interface.
pub(crate) enum Io {
    Pwrite(PwriteIo),
    Uring(Box<UringIo>),
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Io({})", self.backend())
    }
}

impl Io {
    /// Tries io_uring when `want` is [`Backend::IoUring`], falling back to
    /// pwrite (with a warning naming the reason) when the ring cannot be set
    /// up.
    pub(crate) fn new(want: Backend, bell: Arc<Doorbell>) -> Io {
        if want == Backend::IoUring {
            match UringIo::new(Arc::clone(&bell)) {
                Ok(u) => return Io::Uring(Box::new(u)),
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot set up io_uring for the WAL; falling back to pwrite + fdatasync"
                ),
            }
        }
        Io::Pwrite(PwriteIo::new(bell))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Io::Pwrite(_) => Backend::Pwrite,
            Io::Uring(_) => Backend::IoUring,
        }
    }

    /// Writes `buf[range]` at `offset` and waits for it to complete; with
    /// `then_sync`, also starts a sync of `file` covering it, reported under
    /// that ticket. `buf` is passed whole (not as a slice) so that the io_uring
    /// engine can keep the allocation alive if it ever cannot tell whether the
    /// kernel is done with it.
    pub(crate) fn write(
        &mut self,
        file: &Arc<dyn LogFile>,
        buf: &mut AlignedVec<DIRECT_ALIGN>,
        range: Range<usize>,
        offset: u64,
        then_sync: Option<u64>,
    ) -> io::Result<()> {
        match self {
            Io::Pwrite(p) => {
                file.write_all_at(&buf[range], offset)?;
                if let Some(t) = then_sync {
                    p.start_sync(file, t);
                }
                Ok(())
            }
            Io::Uring(u) => u.write(file, buf, range, offset, then_sync),
        }
    }

    /// A sync of `file` on the calling thread, waited for.
    pub(crate) fn sync_now(&mut self, file: &Arc<dyn LogFile>) -> io::Result<()> {
        match self {
            Io::Pwrite(_) => file.sync_data(),
            Io::Uring(u) => u.sync_now(file),
        }
    }

    /// Moves the completions that are in into `out`, without blocking.
    pub(crate) fn reap(&mut self, out: &mut Vec<Completion>) {
        match self {
            Io::Pwrite(p) => p.reap(out),
            Io::Uring(u) => u.reap(out),
        }
    }

    /// Blocks until at least one completion is in and moves them into `out`.
    /// The caller has a sync in flight.
    pub(crate) fn wait(&mut self, out: &mut Vec<Completion>) {
        match self {
            Io::Pwrite(p) => p.wait(out),
            Io::Uring(u) => u.wait(out),
        }
    }
}

// ---------------------------------------------------------------------------
// pwrite + fdatasync, the syncs on a helper thread
// ---------------------------------------------------------------------------

#[derive(Default)]
struct SyncQueue {
    requests: VecDeque<(u64, Arc<dyn LogFile>)>,
    done: Vec<Completion>,
    closing: bool,
}

struct SyncShared {
    q: Mutex<SyncQueue>,
    /// Signalled when `requests` grows or `closing` is set.
    work: Condvar,
    /// Signalled when `done` grows.
    finished: Condvar,
    bell: Arc<Doorbell>,
}

impl SyncShared {
    fn lock(&self) -> MutexGuard<'_, SyncQueue> {
        // Nothing panics while holding this lock except through a LogFile
        // implementation; the queue stays consistent either way.
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct PwriteIo {
    shared: Arc<SyncShared>,
    /// Started at the first asynchronous sync.
    thread: Option<JoinHandle<()>>,
}

impl PwriteIo {
    fn new(bell: Arc<Doorbell>) -> PwriteIo {
        PwriteIo {
            shared: Arc::new(SyncShared {
                q: Mutex::new(SyncQueue::default()),
                work: Condvar::new(),
                finished: Condvar::new(),
                bell,
            }),
            thread: None,
        }
    }

    fn start_sync(&mut self, file: &Arc<dyn LogFile>, ticket: u64) {
        if self.thread.is_none() {
            let shared = Arc::clone(&self.shared);
            match std::thread::Builder::new()
                .name("keel-wal-sync".into())
                .spawn(move || sync_thread(&shared))
            {
                Ok(t) => self.thread = Some(t),
                Err(e) => {
                    // Still correct, just without the overlap.
                    tracing::warn!(error = %e, "cannot start the WAL sync thread; syncing inline");
                    let r = file.sync_data();
                    self.shared.lock().done.push((ticket, r));
                    return;
                }
            }
        }
        self.shared
            .lock()
            .requests
            .push_back((ticket, Arc::clone(file)));
        self.shared.work.notify_one();
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        out.append(&mut self.shared.lock().done);
    }

    fn wait(&mut self, out: &mut Vec<Completion>) {
        let mut q = self.shared.lock();
        while q.done.is_empty() {
            q = self
                .shared
                .finished
                .wait(q)
                .unwrap_or_else(|p| p.into_inner());
        }
        out.append(&mut q.done);
    }
}

impl Drop for PwriteIo {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.lock().closing = true;
            self.shared.work.notify_one();
            // The thread finishes the syncs already requested first.
            let _ = t.join();
        }
    }
}

/// Runs requested syncs in order. Requests for the same file that queued up
/// while a sync ran share the next one: an fdatasync covers every write that
/// completed before it started, and each request was made after its writes
/// completed.
fn sync_thread(shared: &SyncShared) {
    let mut todo: VecDeque<(u64, Arc<dyn LogFile>)> = VecDeque::new();
    loop {
        {
            let mut q = shared.lock();
            while q.requests.is_empty() && !q.closing {
                q = shared.work.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.requests.is_empty() {
                return;
            }
            std::mem::swap(&mut q.requests, &mut todo);
        }
        while let Some((first, file)) = todo.pop_front() {
            let mut tickets = vec![first];
            while todo.front().is_some_and(|(_, f)| Arc::ptr_eq(f, &file)) {
                if let Some((t, _)) = todo.pop_front() {
                    tickets.push(t);
                }
            }
            let r = file.sync_data();
            {
                let mut q = shared.lock();
                for t in tickets {
                    q.done.push((t, clone_result(&r)));
                }
            }
            shared.finished.notify_all();
            shared.bell.ring();
        }
    }
}

// ---------------------------------------------------------------------------
// io_uring
// ---------------------------------------------------------------------------

/// `user_data` of the (only) write in flight; syncs use their ticket.
const WRITE_TAG: u64 = u64::MAX;

/// Tickets of syncs the engine makes for itself (`sync_now`) have this bit
/// set, so they never collide with the log's (which count up from 1).
const OWN_TICKET: u64 = 1 << 63;

/// Enough for one write and the syncs the log keeps in flight (a few).
const RING_ENTRIES: u32 = 64;

/// A sync submitted to the ring.
struct InFlight {
    /// Keeps the descriptor open until the kernel is done with it.
    file: Arc<dyn LogFile>,
    token: u64,
}

pub(crate) struct UringIo {
    ring: IoUring,
    syncs: HashMap<u64, InFlight>,
    /// Completions reaped while waiting for something else.
    done: Vec<Completion>,
    /// The completion of the write in flight, once reaped.
    write_res: Option<i32>,
    next_own: u64,
    /// Set when a wait failed in a way that leaves a submitted write's fate
    /// unknown; every later call fails.
    broken: bool,
}

impl UringIo {
    fn new(bell: Arc<Doorbell>) -> io::Result<UringIo> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // Every completion also rings the doorbell, so the WAL thread can
        // sleep on one descriptor for completions and new submissions.
        ring.submitter().register_eventfd(bell.raw_fd())?;
        Ok(UringIo {
            ring,
            syncs: HashMap::new(),
            done: Vec::new(),
            write_res: None,
            next_own: 0,
            broken: false,
        })
    }

    fn broken_err() -> io::Error {
        io::Error::other("the WAL's io_uring instance failed earlier and is no longer used")
    }

    /// Queues `entries` (a link chain stays within one submission) and
    /// submits them, retrying while the kernel is momentarily short.
    fn push_and_submit(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        let free = {
            let sq = self.ring.submission();
            sq.capacity() - sq.len()
        };
        if free < entries.len() {
            self.submit_retrying()?;
        }
        for e in entries {
            // SAFETY: every entry built by this engine refers either to
            // nothing but a descriptor (fsync), kept open by the `file`
            // stored in `syncs` until its completion is reaped, or to a
            // buffer (write) that `write` keeps alive and untouched until the
            // write's completion is reaped (or leaks, if that can never be
            // known).
            let pushed = unsafe { self.ring.submission().push(e) };
            if pushed.is_err() {
                // Cannot happen: the submission queue was emptied above and
                // holds at least RING_ENTRIES.
                return Err(io::Error::other("io_uring submission queue full"));
            }
        }
        self.submit_retrying()
    }

    fn submit_retrying(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if retryable(&e) => self.drain_cq(),
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves every completion in the ring into `done`, and the write's into
    /// `write_res`.
    fn drain_cq(&mut self) {
        let cqes: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (ud, res) in cqes {
            if ud == WRITE_TAG {
                self.write_res = Some(res);
                continue;
            }
            let r = if res < 0 {
                Err(io::Error::from_raw_os_error(-res))
            } else {
                Ok(())
            };
            // Unknown tickets cannot occur; ignore rather than report twice.
            if let Some(f) = self.syncs.remove(&ud) {
                f.file.sync_done(f.token, &r);
                self.done.push((ud, r));
            }
        }
    }

    /// Blocks in the kernel until at least one completion is posted.
    fn wait_cq(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // CQ overflow or transient resource shortage: make room.
                Err(e) if retryable(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn write(
        &mut self,
        file: &Arc<dyn LogFile>,
        buf: &mut AlignedVec<DIRECT_ALIGN>,
        range: Range<usize>,
        offset: u64,
        then_sync: Option<u64>,
    ) -> io::Result<()> {
        if self.broken {
            return Err(Self::broken_err());
        }
        let (mut at, end, mut off) = (range.start, range.end, offset);
        while at < end {
            let len = u32::try_from(end - at).unwrap_or(u32::MAX);
            let chunk = at..at + len as usize;
            file.will_write(&buf[chunk.clone()], off)?;
            // Link a sync behind the write's last piece only.
            let last_piece = chunk.end == end;
            let sync = match then_sync.filter(|_| last_piece) {
                Some(t) => match file.will_sync() {
                    Ok(token) => Some((t, token)),
                    Err(e) => {
                        // The sync "failed before submission": report it as
                        // its completion; the write still goes out.
                        self.done.push((t, Err(e)));
                        None
                    }
                },
                None => None,
            };
            let fd = types::Fd(file.raw_fd());
            let mut w = opcode::Write::new(fd, buf[chunk].as_ptr(), len)
                .offset(off)
                .build()
                .user_data(WRITE_TAG);
            let mut entries = Vec::with_capacity(2);
            if let Some((t, token)) = sync {
                w = w.flags(squeue::Flags::IO_LINK);
                entries.push(w);
                entries.push(
                    opcode::Fsync::new(fd)
                        .flags(types::FsyncFlags::DATASYNC)
                        .build()
                        .user_data(t),
                );
                self.syncs.insert(
                    t,
                    InFlight {
                        file: Arc::clone(file),
                        token,
                    },
                );
            } else {
                entries.push(w);
            }
            if let Err(e) = self.push_and_submit(&entries) {
                return Err(self.lost_track(buf, e));
            }
            // Wait for the write (not the sync).
            let res = loop {
                self.drain_cq();
                if let Some(r) = self.write_res.take() {
                    break r;
                }
                if let Err(e) = self.wait_cq() {
                    return Err(self.lost_track(buf, e));
                }
            };
            let written = match usize::try_from(res) {
                Ok(n) => n,
                Err(_) => {
                    // A failed write cancels the linked sync; collect its
                    // completion so that no sync is left started.
                    if let Some((t, _)) = sync {
                        let _ = self.forget_sync(t);
                    }
                    return Err(io::Error::from_raw_os_error(-res));
                }
            };
            if written == 0 {
                if let Some((t, _)) = sync {
                    let _ = self.forget_sync(t);
                }
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring write wrote nothing",
                ));
            }
            if written < len as usize {
                // A short write breaks the link: the sync was cancelled (or,
                // if it ran, covers less than asked). Finish it and go on
                // with the rest; the last piece carries a new one.
                if let Some((t, _)) = sync {
                    self.forget_sync(t)?;
                }
            }
            at += written;
            off += written as u64;
        }
        Ok(())
    }

    /// Waits for the completion of sync `t`, whose linked write came back
    /// short or failed, and drops it. `Err` if that sync was not cancelled but
    /// ran and failed.
    fn forget_sync(&mut self, t: u64) -> io::Result<()> {
        loop {
            if let Some(i) = self.done.iter().position(|(x, _)| *x == t) {
                return match self.done.remove(i).1 {
                    Err(e) if e.raw_os_error() != Some(libc::ECANCELED) => Err(io::Error::new(
                        e.kind(),
                        format!("fdatasync linked to a short write failed: {e}"),
                    )),
                    _ => Ok(()),
                };
            }
            // Only syncs can remain: the write's completion is reaped.
            self.drain_cq();
            if !self.done.iter().any(|(x, _)| *x == t) {
                self.wait_cq()?;
            }
        }
    }

    /// The kernel may still be reading `buf` and we cannot find out: leak
    /// the allocation (so it is never reused or freed under the kernel) and
    /// stop using the ring.
    fn lost_track(&mut self, buf: &mut AlignedVec<DIRECT_ALIGN>, e: io::Error) -> io::Error {
        self.broken = true;
        std::mem::forget(std::mem::take(buf));
        io::Error::new(
            e.kind(),
            format!("io_uring failed with a write possibly in flight: {e}"),
        )
    }

    fn start_sync(&mut self, file: &Arc<dyn LogFile>, ticket: u64) {
        if self.broken {
            self.done.push((ticket, Err(Self::broken_err())));
            return;
        }
        let token = match file.will_sync() {
            Ok(t) => t,
            Err(e) => {
                self.done.push((ticket, Err(e)));
                return;
            }
        };
        let e = opcode::Fsync::new(types::Fd(file.raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(ticket);
        self.syncs.insert(
            ticket,
            InFlight {
                file: Arc::clone(file),
                token,
            },
        );
        if let Err(err) = self.push_and_submit(&[e]) {
            // Not submitted (or unknown): report it failed. If it does run
            // later, its completion finds no entry and is ignored.
            if let Some(f) = self.syncs.remove(&ticket) {
                let r = Err(err);
                f.file.sync_done(f.token, &r);
                self.done.push((ticket, r));
            }
        }
    }

    fn sync_now(&mut self, file: &Arc<dyn LogFile>) -> io::Result<()> {
        self.next_own += 1;
        let t = OWN_TICKET | self.next_own;
        self.start_sync(file, t);
        loop {
            if let Some(i) = self.done.iter().position(|(x, _)| *x == t) {
                return self.done.remove(i).1;
            }
            self.drain_cq();
            if self.done.iter().any(|(x, _)| *x == t) {
                continue;
            }
            self.wait_cq()?;
        }
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        self.drain_cq();
        out.append(&mut self.done);
    }

    fn wait(&mut self, out: &mut Vec<Completion>) {
        loop {
            self.reap(out);
            if !out.is_empty() {
                return;
            }
            if self.syncs.is_empty() {
                // Nothing can arrive: the caller's bookkeeping is off.
                // Returning empty lets it notice rather than hang.
                return;
            }
            if let Err(e) = self.wait_cq() {
                // Fail every sync still in flight rather than hang.
                for (t, f) in self.syncs.drain() {
                    let r = Err(clone_err(&e));
                    f.file.sync_done(f.token, &r);
                    out.push((t, r));
                }
                return;
            }
        }
    }
}

impl Drop for UringIo {
    fn drop(&mut self) {
        // Let syncs in flight finish before their descriptors close (the
        // ring itself keeps no buffer of ours: writes are always waited for).
        while !self.syncs.is_empty() && !self.broken {
            self.drain_cq();
            if self.syncs.is_empty() || self.wait_cq().is_err() {
                break;
            }
        }
    }
}

fn retryable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
    )
}
