//! The segmented write-ahead log: opening and recovering a log directory,
//! appending frames, syncing, reading back, truncating and purging.
//!
//! One `Log` owns its directory (an `flock` on `LOCK` keeps a second process
//! out) and the file descriptor of the newest segment, the only one written.
//! Writes and syncs go through a [`Backend`] (io_uring, or `pwrite` +
//! `fdatasync`) chosen at open, on files opened through a [`LogFs`] (the real
//! filesystem, or a fault-injecting one in tests).
//! Writes use `O_DIRECT` where the filesystem accepts it and fall back to
//! buffered writes + `fdatasync` where it does not (reported once with
//! `tracing::warn!`, and by [`Log::io_mode`]). `O_DIRECT` needs block-aligned
//! offsets and lengths while frames are packed back to back, so the writer
//! keeps a copy of the partial last block and rewrites it, byte-identical,
//! together with the new frames; the padding past the new end is zeros, which
//! is what the preallocated file already holds there.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rkyv::util::AlignedVec;

use crate::backend::{Backend, Completion, Io, DIRECT_ALIGN};
use crate::error::WalError;
use crate::frame::{self, encode_header, frame_len, Scan};
use crate::fsio::{
    open_rw, sync_data, write_zeros, zero_fill_new, DirLock, Doorbell, LogFile, LogFs, OsFs,
};

/// Name of the zero-filled file prepared ahead of the next rollover.
const SPARE_NAME: &str = "log.spare.tmp";

/// Upper bound on one `pwrite` built by `append_batch`, so that a huge backlog
/// does not need a buffer as large as itself.
const MAX_WRITE: u64 = 8 << 20;

/// Where and how the log is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Directory holding the segments (`dataDir/log`).
    pub dir: PathBuf,
    /// Size a segment is preallocated to; the log rolls to a new segment when
    /// the next frame would not fit. A single larger frame is still accepted
    /// (its segment grows).
    pub segment_bytes: u64,
    /// Zero-fill each new segment to `segment_bytes` before use, so that
    /// appends overwrite allocated blocks and `fdatasync` has no file-size
    /// or extent metadata to write (DECISIONS.md: ~85 µs per 4 KiB sync vs
    /// ~150 µs when every write grows the file).
    pub preallocate: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: PathBuf::from("keel-data/log"),
            segment_bytes: 64 << 20,
            preallocate: true,
        }
    }
}

/// How [`Log::open_with`] writes: `O_DIRECT` or buffered, which backend, and
/// through which file layer.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// `Direct` still falls back to `Buffered` where the filesystem refuses
    /// `O_DIRECT` (reported by [`Log::io_mode`]).
    pub io_mode: IoMode,
    /// The backend wanted. `IoUring` falls back to `Pwrite`, with a warning,
    /// where no ring can be created; [`Log::backend`] reports the outcome.
    pub backend: Backend,
    /// The files the log writes through: [`OsFs`], or a test layer such as
    /// [`FaultFs`](crate::fault::FaultFs).
    pub fs: Arc<dyn LogFs>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            io_mode: IoMode::Direct,
            backend: Backend::IoUring,
            fs: Arc::new(OsFs),
        }
    }
}

/// One frame read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub first_zxid: u64,
    pub last_zxid: u64,
    pub payload: Vec<u8>,
}

/// What [`Log::open`] (or [`check_dir`]) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Last zxid of the last intact frame; 0 if the log is empty.
    pub last_zxid: u64,
    /// Intact frames in the log.
    pub frames: usize,
    /// Bytes of torn tail discarded: from the end of the last intact frame to
    /// the last non-zero byte after it.
    pub truncated_bytes: u64,
    /// Segment files holding the log after recovery.
    pub segments: usize,
}

/// How segment writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// `O_DIRECT` writes (bypassing the page cache) followed by `fdatasync`.
    Direct,
    /// Ordinary `pwrite` into the page cache followed by `fdatasync`.
    Buffered,
}

/// In-memory index entry for one segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// First zxid, from the file name (equal to its first frame's first zxid).
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    /// Only meaningful when `frames > 0`.
    pub(crate) last_zxid: u64,
    pub(crate) frames: usize,
    /// Offset just past the last frame.
    pub(crate) end: u64,
}

/// Write handle on the newest segment.
struct Writer {
    file: Arc<dyn LogFile>,
    /// Direct mode only: the bytes of the partial block `[end - end % 4096, end)`,
    /// rewritten in front of the next append.
    tail: Vec<u8>,
    /// Data written since the last fdatasync was started.
    unsynced: bool,
}

/// An fdatasync started and not yet accounted for.
struct PendingSync {
    ticket: u64,
    /// Last zxid written before the sync started: durable once it (and
    /// every sync started before it) succeeded.
    zxid: u64,
    path: PathBuf,
    started: Instant,
    result: Option<io::Result<()>>,
}

/// A point at which the log became durable, for group commit's reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    pub zxid: u64,
    /// How long the sync that made it durable took.
    pub micros: u64,
}

/// The write-ahead log. See the crate docs for the on-disk format.
///
/// Dropping a `Log` does not sync it: call [`Log::sync`] first for anything
/// that must survive a power loss.
pub struct Log {
    cfg: LogConfig,
    /// Sorted by zxid; never holds a segment without frames except for the
    /// instant between creating one and writing into it.
    segments: Vec<Segment>,
    /// Open on `segments.last()`; `None` exactly when there are no segments.
    writer: Option<Writer>,
    last: Option<u64>,
    mode: IoMode,
    /// Staging buffer for appends, aligned for `O_DIRECT` and reused.
    buf: AlignedVec<DIRECT_ALIGN>,
    spare: Option<Spare>,
    fs: Arc<dyn LogFs>,
    io: Io,
    /// Rung by sync completions (and, under group commit, by submitters).
    bell: Arc<Doorbell>,
    next_ticket: u64,
    /// Syncs started, oldest first; completions are applied in this order.
    inflight: VecDeque<PendingSync>,
    /// Highest zxid known durable: every sync up to it succeeded.
    durable: u64,
    /// Group commit collects durability points here (only when asked to).
    report: Option<Vec<Durable>>,
    /// Set by the first failed fsync (or write) of the log: fail-stop, every
    /// later append or sync is refused with this reason.
    failed: Option<String>,
    /// Declared last so that it is released last: after the backend (dropped
    /// above) has finished the syncs in flight.
    _lock: DirLock,
}

/// The next segment's zero-filled file, prepared on a helper thread so that
/// the WAL thread does not stall at a rollover (zero-filling 64 MiB and
/// syncing it takes 0.15–0.25 s on the development VM).
struct Spare {
    path: PathBuf,
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<Result<bool, WalError>>,
}

impl Drop for Log {
    fn drop(&mut self) {
        // The helper must not outlive the Log: a later Log in this process
        // could otherwise rename a file into place that is still being
        // written. The half-filled file is removed by the next open.
        if let Some(spare) = self.spare.take() {
            spare.cancel.store(true, Ordering::Relaxed);
            let _ = spare.thread.join();
        }
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.cfg.dir)
            .field("mode", &self.mode)
            .field("backend", &self.io.backend())
            .field("segments", &self.segments.len())
            .field("last_zxid", &self.last)
            .finish()
    }
}

fn segment_name(base: u64) -> String {
    format!("log.{base:016x}")
}

fn parse_hex16(s: &str) -> Option<u64> {
    if s.len() == 16 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// What a log directory holds.
pub(crate) struct Listing {
    /// Segment files with their base zxid, sorted by it.
    pub(crate) segments: Vec<(u64, PathBuf)>,
    /// Leftover `log.*.tmp` preallocations (never holding frames).
    stale: Vec<PathBuf>,
}

pub(crate) fn list_dir(dir: &Path) -> Result<Listing, WalError> {
    let mut segs = Vec::new();
    let mut tmps = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| WalError::io("list directory", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| WalError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("log.") else {
            continue;
        };
        if let Some(base) = parse_hex16(rest) {
            segs.push((base, entry.path()));
        } else if rest.ends_with(".tmp") {
            tmps.push(entry.path());
        }
    }
    segs.sort_by_key(|s| s.0);
    Ok(Listing {
        segments: segs,
        stale: tmps,
    })
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, WalError> {
    fs::read(path).map_err(|e| WalError::io("read", path, e))
}

/// Reads `[0, len)` of a segment.
fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>, WalError> {
    let f = File::open(path).map_err(|e| WalError::io("open", path, e))?;
    let mut bytes = vec![0u8; len as usize];
    f.read_exact_at(&mut bytes, 0)
        .map_err(|e| WalError::io("read", path, e))?;
    Ok(bytes)
}

/// Scans every segment of `dir` without modifying anything.
pub(crate) fn scan_dir(dir: &Path) -> Result<Vec<(Segment, Scan)>, WalError> {
    let segs = list_dir(dir)?.segments;
    let mut out = Vec::with_capacity(segs.len());
    let mut prev_last = None;
    let count = segs.len();
    for (i, (base, path)) in segs.into_iter().enumerate() {
        let newest = i + 1 == count;
        let bytes = read_file(&path)?;
        let scan = frame::scan(&bytes, &path, prev_last, newest)?;
        match scan.frames.first() {
            Some(f) if f.first_zxid != base => {
                return Err(WalError::Corrupt {
                    file: path,
                    offset: 0,
                    reason: format!(
                        "segment is named for zxid {base:#x} but its first frame starts at {:#x}",
                        f.first_zxid
                    ),
                });
            }
            None if !newest => {
                return Err(WalError::Corrupt {
                    file: path,
                    offset: 0,
                    reason: "a segment older than the newest holds no intact frame".into(),
                });
            }
            _ => {}
        }
        if let Some(f) = scan.frames.last() {
            prev_last = Some(f.last_zxid);
        }
        let seg = Segment {
            base,
            path,
            last_zxid: scan.frames.last().map_or(base, |f| f.last_zxid),
            frames: scan.frames.len(),
            end: scan.end,
        };
        out.push((seg, scan));
    }
    Ok(out)
}

fn summarize(scanned: &[(Segment, Scan)]) -> Recovery {
    let with_frames = scanned.iter().filter(|(s, _)| s.frames > 0);
    Recovery {
        last_zxid: with_frames
            .clone()
            .next_back()
            .map_or(0, |(s, _)| s.last_zxid),
        frames: scanned.iter().map(|(s, _)| s.frames).sum(),
        truncated_bytes: scanned
            .iter()
            .filter_map(|(_, sc)| sc.torn.as_ref().map(|t| t.dirty_end - sc.end))
            .sum(),
        segments: with_frames.count(),
    }
}

/// Scans a log directory and reports what [`Log::open`] would recover,
/// without modifying anything and without taking the directory lock (for
/// `keel wal check`). Corruption is returned as the same error `open` gives.
pub fn check_dir(log_dir: impl AsRef<Path>) -> Result<Recovery, WalError> {
    Ok(summarize(&scan_dir(log_dir.as_ref())?))
}

impl Log {
    /// Opens (creating the directory if needed) and recovers the log, writing
    /// with `O_DIRECT` where the filesystem allows it.
    ///
    /// Every segment is scanned. A torn tail in the newest segment (a partial
    /// last frame, stray bytes after it) is zeroed back to the last intact
    /// frame with a `tracing::warn!`. Damage anywhere else, a bad checksum on
    /// a complete frame, or zxids that do not strictly increase is
    /// [`WalError::Corrupt`], naming the file and byte offset.
    pub fn open(cfg: LogConfig) -> Result<(Log, Recovery), WalError> {
        Log::open_with_mode(cfg, IoMode::Direct)
    }

    /// [`Log::open`] with a chosen write mode. `Direct` still falls back to
    /// `Buffered` where the filesystem refuses `O_DIRECT`.
    pub fn open_with_mode(cfg: LogConfig, mode: IoMode) -> Result<(Log, Recovery), WalError> {
        Log::open_with(
            cfg,
            LogOptions {
                io_mode: mode,
                ..LogOptions::default()
            },
        )
    }

    /// [`Log::open`] with a chosen write mode, backend and file layer.
    pub fn open_with(cfg: LogConfig, opts: LogOptions) -> Result<(Log, Recovery), WalError> {
        let LogOptions {
            io_mode: mode,
            backend,
            fs,
        } = opts;
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| WalError::io("create directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;

        // Half-built segments from a crash during preallocation hold nothing.
        let tmps = list_dir(&dir)?.stale;
        let mut dir_dirty = !tmps.is_empty();
        for t in &tmps {
            fs::remove_file(t).map_err(|e| WalError::io("remove stale", t, e))?;
        }

        let scanned = scan_dir(&dir)?;
        let recovery = summarize(&scanned);
        let mut segments = Vec::with_capacity(scanned.len());
        for (seg, scan) in scanned {
            if let Some(t) = &scan.torn {
                tracing::warn!(
                    file = %seg.path.display(),
                    offset = scan.end,
                    discarded_bytes = t.dirty_end - scan.end,
                    reason = %t.reason,
                    "WAL ends in a torn write; cutting it back to the last intact frame"
                );
                let f =
                    open_rw(&seg.path, false).map_err(|e| WalError::io("open", &seg.path, e))?;
                write_zeros(&f, &seg.path, scan.end, t.dirty_end)?;
                sync_data(&f, &seg.path)?;
            }
            segments.push(seg);
        }
        // A newest segment without frames (crash right after a rollover, or a
        // fully torn first frame) is named for a zxid that never made it to
        // disk; the next append may carry a different one, so drop it.
        if segments.last().is_some_and(|s| s.frames == 0) {
            if let Some(seg) = segments.pop() {
                fs::remove_file(&seg.path).map_err(|e| WalError::io("remove", &seg.path, e))?;
                dir_dirty = true;
            }
        }
        if dir_dirty {
            fs.sync_dir(&dir).map_err(|source| WalError::Fsync {
                path: dir.clone(),
                source,
            })?;
        }

        let bell =
            Arc::new(Doorbell::new().map_err(|e| WalError::io("create an eventfd for", &dir, e))?);
        let last = segments.last().map(|s| s.last_zxid);
        let mut log = Log {
            last,
            cfg,
            _lock: lock,
            segments,
            writer: None,
            mode,
            buf: AlignedVec::new(),
            spare: None,
            io: Io::new(backend, Arc::clone(&bell)),
            fs,
            bell,
            next_ticket: 1,
            inflight: VecDeque::new(),
            durable: 0,
            report: None,
            failed: None,
        };
        log.open_writer()?;
        // After a kill -9 the recovered frames may still be only in the page
        // cache; the caller treats them as durable from here on, so make them so.
        log.sync_newest()?;
        log.durable = log.last.unwrap_or(0);
        log.start_spare();
        tracing::info!(
            dir = %dir.display(),
            frames = recovery.frames,
            segments = recovery.segments,
            last_zxid = recovery.last_zxid,
            io_mode = ?log.mode,
            backend = %log.io.backend(),
            "WAL opened"
        );
        Ok((log, recovery))
    }

    /// How segment writes currently reach the disk (for `srvr`/`mntr`).
    pub fn io_mode(&self) -> IoMode {
        self.mode
    }

    /// Which backend carries writes and syncs (for `srvr`/`mntr`).
    pub fn backend(&self) -> Backend {
        self.io.backend()
    }

    /// Highest zxid known durable: every sync started up to it succeeded.
    /// Equal to [`Log::last_zxid`] right after `open` and after [`Log::sync`].
    pub fn durable_zxid(&self) -> u64 {
        self.durable
    }

    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Last zxid in the log (including frames not yet synced); 0 if empty.
    pub fn last_zxid(&self) -> u64 {
        self.last.unwrap_or(0)
    }

    /// First zxid still in the log (purging removes older segments), or
    /// `None` if the log is empty. Replay after a snapshot at zxid `s` needs
    /// `first_zxid() <= s + 1`, or a gap would be skipped.
    pub fn first_zxid(&self) -> Option<u64> {
        self.segments
            .first()
            .filter(|s| s.frames > 0)
            .map(|s| s.base)
    }

    /// Appends one frame. Not durable until [`Log::sync`].
    pub fn append(
        &mut self,
        first_zxid: u64,
        last_zxid: u64,
        payload: &[u8],
    ) -> Result<(), WalError> {
        self.append_batch(&[(first_zxid, last_zxid, payload)])
    }

    /// Appends several frames with one `pwrite` per segment they land in (and
    /// per 8 MiB). Either every frame is checked for order before anything is
    /// written, or an error says why none was. Not durable until [`Log::sync`].
    pub fn append_batch(&mut self, frames: &[(u64, u64, &[u8])]) -> Result<(), WalError> {
        self.append_inner(frames, false)
    }

    /// [`Log::append_batch`], then an fdatasync covering it started without
    /// waiting (linked behind the last write on io_uring). Its outcome is
    /// collected by [`Log::poll_syncs`]; meanwhile the next batch may be
    /// written.
    pub(crate) fn append_and_start_sync(
        &mut self,
        frames: &[(u64, u64, &[u8])],
    ) -> Result<(), WalError> {
        self.append_inner(frames, true)
    }

    fn check_live(&self) -> Result<(), WalError> {
        match &self.failed {
            Some(reason) => Err(WalError::Stopped {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the first fatal error (fail-stop) and passes it on.
    fn fail(&mut self, e: WalError) -> WalError {
        if self.failed.is_none() {
            self.failed = Some(format!("an earlier write or sync failed: {e}"));
        }
        e
    }

    fn append_inner(
        &mut self,
        frames: &[(u64, u64, &[u8])],
        start_sync: bool,
    ) -> Result<(), WalError> {
        self.check_live()?;
        let mut last = self.last;
        for &(first_zxid, last_zxid, payload) in frames {
            if u32::try_from(payload.len()).is_err() {
                return Err(WalError::FrameTooLarge { len: payload.len() });
            }
            if first_zxid > last_zxid || last.is_some_and(|l| first_zxid <= l) {
                return Err(WalError::OutOfOrder {
                    first_zxid,
                    last_zxid,
                    log_last_zxid: last.unwrap_or(0),
                });
            }
            last = Some(last_zxid);
        }

        let limit = self.cfg.segment_bytes;
        let mut i = 0;
        while i < frames.len() {
            let need = frame_len(frames[i].2.len()) as u64;
            let roll = match self.segments.last() {
                None => true,
                Some(s) => s.frames > 0 && s.end + need > limit,
            };
            if roll {
                self.roll(frames[i].0)?;
            }
            let seg_end = self.segments.last().map_or(0, |s| s.end);
            let mut j = i;
            let mut run = 0u64;
            while j < frames.len() {
                let size = frame_len(frames[j].2.len()) as u64;
                if j > i && (seg_end + run + size > limit || run + size > MAX_WRITE) {
                    break;
                }
                run += size;
                j += 1;
            }
            let sync_after = start_sync && j == frames.len();
            if let Err(e) = self.write_run(&frames[i..j], sync_after) {
                return Err(self.fail(e));
            }
            i = j;
        }
        Ok(())
    }

    /// Makes everything appended so far durable: `fdatasync` of the newest
    /// segment, then of the directory if a segment was created since the last
    /// sync. A failure is [`WalError::Fsync`] and is fatal: exit, never retry.
    ///
    /// Waits for syncs already in flight first. After a failure every later
    /// append and sync is refused with [`WalError::Stopped`] (fail-stop).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_live()?;
        self.wait_all_syncs()?;
        if self.writer.as_ref().is_some_and(|w| w.unsynced) {
            self.sync_newest()?;
        }
        Ok(())
    }

    /// A sync of the newest segment on this thread; everything written is
    /// durable when it succeeds (older segments were synced when the log
    /// rolled past them).
    fn sync_newest(&mut self) -> Result<(), WalError> {
        let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.last()) else {
            return Ok(());
        };
        let started = Instant::now();
        match self.io.sync_now(&w.file) {
            Ok(()) => {
                w.unsynced = false;
                let zxid = self.last.unwrap_or(0);
                self.mark_durable(zxid, started);
                Ok(())
            }
            Err(source) => {
                let e = WalError::Fsync {
                    path: seg.path.clone(),
                    source,
                };
                Err(self.fail(e))
            }
        }
    }

    fn mark_durable(&mut self, zxid: u64, started: Instant) {
        if zxid > self.durable {
            self.durable = zxid;
            if let Some(r) = self.report.as_mut() {
                r.push(Durable {
                    zxid,
                    micros: started.elapsed().as_micros().min(u64::MAX as u128) as u64,
                });
            }
        }
    }

    /// Group commit: start collecting durability points for [`Log::take_durable`].
    pub(crate) fn set_reporting(&mut self, on: bool) {
        self.report = on.then(Vec::new);
    }

    /// Durability points reached since the last call, in increasing zxid
    /// order (only while reporting is on).
    pub(crate) fn take_durable(&mut self) -> Vec<Durable> {
        self.report.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The doorbell rung by every sync completion; group commit also has
    /// submitters ring it, and sleeps on it.
    pub(crate) fn doorbell(&self) -> Arc<Doorbell> {
        Arc::clone(&self.bell)
    }

    pub(crate) fn syncs_in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Applies finished syncs, waiting for at least one first if `block`
    /// (and one is in flight). Durability advances over the oldest syncs
    /// while they succeeded; the first failure is returned as
    /// [`WalError::Fsync`] and stops the log: nothing after it is ever
    /// reported durable, even syncs that completed fine later.
    pub(crate) fn poll_syncs(&mut self, block: bool) -> Result<(), WalError> {
        self.check_live()?;
        let mut got: Vec<Completion> = Vec::new();
        if block && !self.inflight.is_empty() {
            self.io.wait(&mut got);
            if got.is_empty() {
                let e = WalError::Stopped {
                    reason: "internal error: a sync in flight produced no completion".into(),
                };
                return Err(self.fail(e));
            }
        } else {
            self.io.reap(&mut got);
        }
        for (ticket, r) in got {
            if let Some(p) = self
                .inflight
                .iter_mut()
                .find(|p| p.ticket == ticket && p.result.is_none())
            {
                p.result = Some(r);
            }
        }
        while self.inflight.front().is_some_and(|p| p.result.is_some()) {
            let Some(p) = self.inflight.pop_front() else {
                break;
            };
            match p.result {
                Some(Err(source)) => {
                    let e = WalError::Fsync {
                        path: p.path,
                        source,
                    };
                    return Err(self.fail(e));
                }
                _ => self.mark_durable(p.zxid, p.started),
            }
        }
        Ok(())
    }

    fn wait_all_syncs(&mut self) -> Result<(), WalError> {
        while !self.inflight.is_empty() {
            self.poll_syncs(true)?;
        }
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<(), WalError> {
        self.fs
            .sync_dir(&self.cfg.dir)
            .map_err(|source| WalError::Fsync {
                path: self.cfg.dir.clone(),
                source,
            })
    }

    /// Every frame whose `last_zxid > after`, in order, checksums verified
    /// again. A frame straddling `after` is returned whole (the caller skips
    /// the transactions it already has); frames appended but not yet synced
    /// are included.
    pub fn read_after(&self, after: u64) -> Result<Vec<Frame>, WalError> {
        let mut out = Vec::new();
        for seg in self
            .segments
            .iter()
            .filter(|s| s.frames > 0 && s.last_zxid > after)
        {
            let bytes = read_prefix(&seg.path, seg.end)?;
            let scan = frame::scan(&bytes, &seg.path, None, false)?;
            if scan.frames.len() != seg.frames {
                return Err(WalError::Corrupt {
                    file: seg.path.clone(),
                    offset: scan.end,
                    reason: format!(
                        "segment changed on disk while open: {} intact frames where {} were \
                         written",
                        scan.frames.len(),
                        seg.frames
                    ),
                });
            }
            for m in scan.frames.iter().filter(|m| m.last_zxid > after) {
                out.push(Frame {
                    first_zxid: m.first_zxid,
                    last_zxid: m.last_zxid,
                    payload: bytes[m.payload_range()].to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// Removes every frame with `first_zxid > zxid`, durably (for a follower
    /// told to TRUNC). A frame with `first_zxid <= zxid < last_zxid` cannot be
    /// split: [`WalError::Straddle`], and nothing is changed.
    pub fn truncate_after(&mut self, zxid: u64) -> Result<(), WalError> {
        self.check_live()?;
        if self.last.is_none_or(|l| l <= zxid) {
            return Ok(());
        }
        self.wait_all_syncs()?;
        // Newest segment that keeps at least one frame.
        let keep_idx = self
            .segments
            .iter()
            .rposition(|s| s.frames > 0 && s.base <= zxid);

        // Plan the cut inside that segment before changing anything, so a
        // straddling frame leaves the log untouched.
        let mut cut = None;
        if let Some(k) = keep_idx {
            let seg = &self.segments[k];
            if seg.last_zxid > zxid {
                let bytes = read_prefix(&seg.path, seg.end)?;
                let scan = frame::scan(&bytes, &seg.path, None, false)?;
                let keep = scan
                    .frames
                    .iter()
                    .take_while(|f| f.first_zxid <= zxid)
                    .count();
                let Some(kept_last) = keep.checked_sub(1).and_then(|i| scan.frames.get(i)) else {
                    return Err(WalError::Corrupt {
                        file: seg.path.clone(),
                        offset: 0,
                        reason: format!(
                            "segment changed on disk while open: its first frame no longer \
                             starts at {:#x}",
                            seg.base
                        ),
                    });
                };
                if kept_last.last_zxid > zxid {
                    return Err(WalError::Straddle {
                        zxid,
                        first_zxid: kept_last.first_zxid,
                        last_zxid: kept_last.last_zxid,
                        file: seg.path.clone(),
                        offset: kept_last.offset,
                    });
                }
                cut = Some((keep, kept_last.end(), kept_last.last_zxid));
            }
        }

        // Later segments go newest first, each removal made durable before the
        // next, so a crash part-way leaves a prefix of the log, never a hole.
        self.writer = None;
        let keep_segments = keep_idx.map_or(0, |k| k + 1);
        while self.segments.len() > keep_segments {
            if let Some(seg) = self.segments.pop() {
                fs::remove_file(&seg.path).map_err(|e| WalError::io("remove", &seg.path, e))?;
                self.sync_dir()?;
            }
        }
        if let (Some((frames, end, last_zxid)), Some(seg)) = (cut, self.segments.last_mut()) {
            let f = open_rw(&seg.path, false).map_err(|e| WalError::io("open", &seg.path, e))?;
            write_zeros(&f, &seg.path, end, seg.end)?;
            sync_data(&f, &seg.path)?;
            seg.frames = frames;
            seg.end = end;
            seg.last_zxid = last_zxid;
        }
        self.last = self.segments.last().map(|s| s.last_zxid);
        // Everything kept is on disk: older segments were synced at their
        // rollover, the cut one just now.
        self.durable = self.last.unwrap_or(0);
        self.open_writer()
    }

    /// Deletes the oldest segments all of whose frames have `last_zxid <=
    /// zxid`, never the newest segment. Returns how many were deleted.
    pub fn purge_through(&mut self, zxid: u64) -> Result<usize, WalError> {
        let mut n = 0;
        // Oldest first: a crash part-way leaves a suffix of the log.
        while self.segments.len() > 1 && self.segments[0].last_zxid <= zxid {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path).map_err(|e| WalError::io("remove", &seg.path, e))?;
            n += 1;
        }
        if n > 0 {
            self.sync_dir()?;
        }
        Ok(n)
    }

    /// Opens `path` for segment writes in the current mode, dropping to
    /// buffered writes (once, with a warning) if the filesystem refuses
    /// `O_DIRECT`.
    fn open_segment(&mut self, path: &Path) -> Result<Arc<dyn LogFile>, WalError> {
        if self.mode == IoMode::Direct {
            match self.fs.open_segment(path, true) {
                Ok(f) => return Ok(f),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.fall_back(path, &e);
                }
                Err(e) => return Err(WalError::io("open", path, e)),
            }
        }
        self.fs
            .open_segment(path, false)
            .map_err(|e| WalError::io("open", path, e))
    }

    fn fall_back(&mut self, path: &Path, why: &std::io::Error) {
        tracing::warn!(
            file = %path.display(),
            error = %why,
            "the filesystem refuses O_DIRECT; the WAL falls back to buffered writes + fdatasync"
        );
        self.mode = IoMode::Buffered;
    }

    /// (Re)opens the write handle on the newest segment, restoring the
    /// preallocation if the file was cut short and loading its partial block.
    fn open_writer(&mut self) -> Result<(), WalError> {
        self.writer = None;
        let Some(seg) = self.segments.last() else {
            return Ok(());
        };
        let (path, end) = (seg.path.clone(), seg.end);
        let plain = open_rw(&path, false).map_err(|e| WalError::io("open", &path, e))?;
        let size = plain
            .metadata()
            .map_err(|e| WalError::io("stat", &path, e))?
            .len();
        if self.cfg.preallocate && size < self.cfg.segment_bytes {
            write_zeros(&plain, &path, size, self.cfg.segment_bytes)?;
            sync_data(&plain, &path)?;
        }
        let file = self.open_segment(&path)?;
        let mut tail = Vec::new();
        if self.mode == IoMode::Direct {
            let start = end - end % DIRECT_ALIGN as u64;
            tail.resize((end - start) as usize, 0);
            plain
                .read_exact_at(&mut tail, start)
                .map_err(|e| WalError::io("read", &path, e))?;
        }
        self.writer = Some(Writer {
            file,
            tail,
            unsynced: false,
        });
        Ok(())
    }

    /// Seals the newest segment (synced, so that only the newest segment can
    /// ever hold a torn write) and starts a new one named for `base`.
    fn roll(&mut self, base: u64) -> Result<(), WalError> {
        // Every sync in flight is on the segment being sealed.
        self.wait_all_syncs()?;
        if self.writer.as_ref().is_some_and(|w| w.unsynced) {
            self.sync_newest()?;
        }
        self.writer = None;
        let path = self.cfg.dir.join(segment_name(base));
        if path.exists() {
            // Every file with a segment name is in `segments`, all older than
            // `base`; finding one means something else is writing here.
            return Err(WalError::io(
                "create segment",
                &path,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        if self.cfg.preallocate {
            // Zero-filled under a temporary name so that a crash never leaves
            // a short segment under a real name; normally ready in advance.
            let tmp = match self.take_spare() {
                Some(spare) => spare,
                None => {
                    let tmp = self.cfg.dir.join(format!("{}.tmp", segment_name(base)));
                    zero_fill_new(&tmp, self.cfg.segment_bytes, None)?;
                    tmp
                }
            };
            fs::rename(&tmp, &path).map_err(|e| WalError::io("rename into place", &tmp, e))?;
        } else {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| WalError::io("create segment", &path, e))?;
        }
        // The new name is made durable before any frame goes into the file,
        // so a frame reported durable is never in a file a crash unnames.
        if let Err(e) = self.sync_dir() {
            return Err(self.fail(e));
        }
        let file = self.open_segment(&path)?;
        self.segments.push(Segment {
            base,
            path,
            last_zxid: base,
            frames: 0,
            end: 0,
        });
        self.writer = Some(Writer {
            file,
            tail: Vec::new(),
            unsynced: false,
        });
        self.start_spare();
        Ok(())
    }

    /// Starts preparing the next segment's file, unless one is on its way.
    fn start_spare(&mut self) {
        if !self.cfg.preallocate || self.spare.is_some() {
            return;
        }
        let path = self.cfg.dir.join(SPARE_NAME);
        let cancel = Arc::new(AtomicBool::new(false));
        let (p, c, len) = (path.clone(), Arc::clone(&cancel), self.cfg.segment_bytes);
        let spawned = std::thread::Builder::new()
            .name("keel-wal-prealloc".into())
            .spawn(move || zero_fill_new(&p, len, Some(&c)));
        match spawned {
            Ok(thread) => {
                self.spare = Some(Spare {
                    path,
                    cancel,
                    thread,
                })
            }
            // Not fatal: the rollover zero-fills inline instead.
            Err(e) => tracing::warn!(error = %e, "cannot start the WAL preallocation thread"),
        }
    }

    /// Waits for the prepared file; `None` if there is none or it failed
    /// (then the caller zero-fills inline, and a persistent disk problem
    /// surfaces there as an error).
    fn take_spare(&mut self) -> Option<PathBuf> {
        let spare = self.spare.take()?;
        match spare.thread.join() {
            Ok(Ok(true)) => Some(spare.path),
            Ok(Ok(false)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "preparing the next WAL segment failed; retrying inline");
                None
            }
            Err(_) => {
                tracing::warn!("the WAL preallocation thread panicked; retrying inline");
                None
            }
        }
    }

    /// Writes `frames` (already checked for order and size, and known to
    /// belong in the newest segment) with one positioned write, then, if
    /// `sync_after`, starts an fdatasync covering it.
    fn write_run(
        &mut self,
        frames: &[(u64, u64, &[u8])],
        sync_after: bool,
    ) -> Result<(), WalError> {
        let (Some(seg), Some(w)) = (self.segments.last_mut(), self.writer.as_mut()) else {
            // append_batch rolls before calling us, so both exist.
            return Err(WalError::io(
                "append to",
                &self.cfg.dir,
                std::io::Error::other("no open segment"),
            ));
        };
        let direct = self.mode == IoMode::Direct;
        let align = DIRECT_ALIGN as u64;
        let start = if direct {
            seg.end - seg.end % align
        } else {
            seg.end
        };

        self.buf.clear();
        if direct {
            self.buf.extend_from_slice(&w.tail);
        }
        for &(first, last, payload) in frames {
            self.buf
                .extend_from_slice(&encode_header(first, last, payload));
            self.buf.extend_from_slice(payload);
        }
        let logical = self.buf.len();
        if direct {
            self.buf.resize(logical.next_multiple_of(DIRECT_ALIGN), 0);
        }
        let ticket = sync_after.then(|| {
            let t = self.next_ticket;
            self.next_ticket += 1;
            t
        });
        let whole = 0..self.buf.len();
        match self.io.write(&w.file, &mut self.buf, whole, start, ticket) {
            Ok(()) => {}
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                // Alignment stricter than 4 KiB, or O_DIRECT refused at write
                // time: rewrite the same bytes through the page cache. (No
                // sync was started for the failed write.)
                tracing::warn!(
                    file = %seg.path.display(),
                    error = %e,
                    "O_DIRECT write refused; the WAL falls back to buffered writes + fdatasync"
                );
                self.mode = IoMode::Buffered;
                w.file = self
                    .fs
                    .open_segment(&seg.path, false)
                    .map_err(|e| WalError::io("open", &seg.path, e))?;
                let fresh = w.tail.len()..logical;
                self.io
                    .write(&w.file, &mut self.buf, fresh, seg.end, ticket)
                    .map_err(|e| WalError::io("write", &seg.path, e))?;
            }
            Err(e) => return Err(WalError::io("write", &seg.path, e)),
        }
        seg.end = start + logical as u64;
        w.tail.clear();
        if self.mode == IoMode::Direct {
            let tail_len = (seg.end % align) as usize;
            w.tail
                .extend_from_slice(&self.buf[logical - tail_len..logical]);
        }
        seg.frames += frames.len();
        if let Some(&(_, last, _)) = frames.last() {
            seg.last_zxid = last;
            self.last = Some(last);
        }
        match ticket {
            Some(ticket) => {
                w.unsynced = false;
                self.inflight.push_back(PendingSync {
                    ticket,
                    zxid: seg.last_zxid,
                    path: seg.path.clone(),
                    started: Instant::now(),
                    result: None,
                });
            }
            None => w.unsynced = true,
        }
        Ok(())
    }
}
