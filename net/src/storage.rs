//! Start-up recovery and the background snapshot writer: the only place `net` touches
//! keel-wal. Recovery loads the newest valid snapshot, replays the log after it and
//! refuses to start when the log does not continue from the snapshot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Write as _;

use keel_engine::snapshot::{self, SnapshotData};
use keel_engine::zab::{Epochs, LogFrame};
use keel_engine::Engine;
use keel_wal::{Backend, GroupCommit, Log, LogConfig, LogOptions, SnapshotStore, WalError};
use thiserror::Error;
use tracing::{error, info, warn};

/// Exit status when the log, a snapshot or an epoch file cannot be written (fail-stop).
pub const EXIT_STORAGE_FAILED: i32 = 70;

/// Starts a group-commit thread for either engine loop. Its durability reports are
/// `ToEngine::Durable` carrying `generation` (an ensemble member replaces the thread
/// to truncate its log, and ignores reports of a replaced one; standalone uses 0). A
/// failed write or fdatasync is fatal: fsync errors are not retried (fsyncgate), since
/// memory may now be ahead of what the disk can give back.
pub fn spawn_group(
    log: Log,
    generation: u64,
    tx: flume::Sender<crate::msg::ToEngine>,
) -> GroupCommit {
    GroupCommit::spawn(
        log,
        Box::new(move |zxid| {
            let _ = tx.send(crate::msg::ToEngine::Durable {
                generation,
                zxid: zxid as i64,
            });
        }),
        Box::new(|e| {
            error!("FATAL: the write-ahead log failed: {e}; exiting so no unlogged write is ever acknowledged");
            std::process::exit(EXIT_STORAGE_FAILED);
        }),
    )
}

/// Where the standalone engine's log frames go (group commit in production).
pub trait LogSink {
    fn submit(&mut self, first_zxid: i64, last_zxid: i64, payload: Vec<u8>);
    fn purge_through(&mut self, zxid: i64);
}

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{0}")]
    Wal(#[from] WalError),
    #[error("cannot create data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("log frame {first:#x}..{last:#x} in {dir} does not decode: {reason}")]
    BadFrame {
        dir: PathBuf,
        first: u64,
        last: u64,
        reason: String,
    },
    #[error("the log in {dir} starts at zxid {first:#x} but the newest snapshot ends at {snap:#x}: transactions in between are missing; refusing to start")]
    Gap { dir: PathBuf, first: u64, snap: u64 },
    #[error("{}: {reason}", path.display())]
    Epoch { path: PathBuf, reason: String },
    /// The membership saved by the last reconfiguration (the message names the file
    /// and line).
    #[error("the membership saved by the last reconfiguration is unreadable: {0}")]
    Membership(String),
    #[error(transparent)]
    SnapshotEncode(#[from] keel_engine::snapshot::EncodeError),
}

/// The snapshot files of `snap_dir`, holding the engine's archive format.
pub fn snapshot_store(snap_dir: PathBuf) -> SnapshotStore {
    SnapshotStore::new(snap_dir, snapshot::FORMAT)
}

/// Encodes `snap` and writes it durably into `store`; returns the bytes written.
pub fn write_snapshot(store: &SnapshotStore, snap: &SnapshotData) -> Result<u64, StorageError> {
    let body = snap.to_bytes()?;
    Ok(store.write(snap.last_zxid, &body)?)
}

pub struct Layout {
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Layout {
    pub fn new(data_dir: &Path, data_log_dir: &Path) -> Layout {
        Layout {
            snap_dir: data_dir.join("snap"),
            log_dir: data_log_dir.join("wal"),
        }
    }
}

pub struct Recovered {
    pub log: Log,
    pub snap_zxid: u64,
    pub replayed: usize,
}

/// Rebuilds the engine's state from disk (standalone: snapshot + log replay).
pub fn recover(
    layout: &Layout,
    engine: &mut Engine,
    segment_bytes: u64,
    preallocate: bool,
) -> Result<Recovered, StorageError> {
    let started = std::time::Instant::now();
    let snap_zxid = prepare_and_load_snapshot(layout, engine)?;
    let log = open_log(layout, segment_bytes, preallocate)?;
    let frames = frames_after(layout, &log, snap_zxid, false)?;
    let mut replayed = 0;
    for f in &frames {
        replayed += engine
            .replay(&f.payload)
            .map_err(|e| StorageError::BadFrame {
                dir: layout.log_dir.clone(),
                first: f.first_zxid,
                last: f.last_zxid,
                reason: e.to_string(),
            })?;
    }
    info!(
        "recovered to zxid {:#x}: snapshot {:#x} + {} transactions from the log, in {:?}",
        engine.last_zxid(),
        snap_zxid,
        replayed,
        started.elapsed()
    );
    Ok(Recovered {
        log,
        snap_zxid,
        replayed,
    })
}

/// Creates the data directories if needed and loads the newest valid snapshot into
/// `engine`, building the tree straight from the validated, mmap'd archive (no parse
/// into an intermediate copy). Returns the snapshot's zxid (0 without one).
fn prepare_and_load_snapshot(layout: &Layout, engine: &mut Engine) -> Result<u64, StorageError> {
    for d in [&layout.snap_dir, &layout.log_dir] {
        std::fs::create_dir_all(d).map_err(|source| StorageError::Dir {
            path: d.clone(),
            source,
        })?;
    }
    let store = snapshot_store(layout.snap_dir.clone());
    let started = std::time::Instant::now();
    let loaded = store.visit_latest(|zxid, body| {
        let a = snapshot::access(body, Some(zxid))?;
        engine.load_archived(a);
        Ok((zxid, a.nodes.len(), a.sessions.len()))
    })?;
    let snap_zxid = loaded.map(|(z, _, _)| z).unwrap_or(0);
    if let Some((zxid, nodes, sessions)) = loaded {
        info!(
            "loaded snapshot at zxid {zxid:#x} ({nodes} nodes, {sessions} sessions) in {:?}",
            started.elapsed()
        );
    }
    Ok(snap_zxid)
}

fn open_log(layout: &Layout, segment_bytes: u64, preallocate: bool) -> Result<Log, StorageError> {
    let backend = match std::env::var("KEEL_WAL_BACKEND").as_deref() {
        Ok("pwrite") => Backend::Pwrite,
        _ => Backend::IoUring,
    };
    let (log, rec) = Log::open_with(
        LogConfig {
            dir: layout.log_dir.clone(),
            segment_bytes,
            preallocate,
        },
        LogOptions {
            backend,
            ..LogOptions::default()
        },
    )?;
    if rec.truncated_bytes > 0 {
        warn!(
            "log recovery cut {} bytes of torn tail",
            rec.truncated_bytes
        );
    }
    Ok(log)
}

/// The log frames after the snapshot at `snap_zxid`; a log that starts after it is a gap.
/// In an ensemble (`epochs`), a log may also go on at the first zxid of a later epoch
/// (`epoch << 32 | 1`): the rest of the snapshot's epoch was never committed.
fn frames_after(
    layout: &Layout,
    log: &Log,
    snap_zxid: u64,
    epochs: bool,
) -> Result<Vec<keel_wal::Frame>, StorageError> {
    let frames = log.read_after(snap_zxid)?;
    if let Some(f) = frames.first() {
        let new_epoch =
            epochs && f.first_zxid >> 32 > snap_zxid >> 32 && f.first_zxid & 0xffff_ffff == 1;
        if f.first_zxid > snap_zxid + 1 && !new_epoch {
            return Err(StorageError::Gap {
                dir: layout.log_dir.clone(),
                first: f.first_zxid,
                snap: snap_zxid,
            });
        }
    }
    Ok(frames)
}

/// What an ensemble member recovers: the engine holds the newest snapshot only; the
/// log frames after it go to the replica, which decides what of them is committed.
pub struct RecoveredMember {
    pub log: Log,
    pub snap_zxid: u64,
    pub frames: Vec<LogFrame>,
    pub epochs: Epochs,
}

/// Start-up of an ensemble member: the newest snapshot into `engine` (no log replay),
/// the log frames after it, and the persisted epochs.
pub fn recover_member(
    layout: &Layout,
    data_dir: &Path,
    engine: &mut Engine,
    segment_bytes: u64,
    preallocate: bool,
) -> Result<RecoveredMember, StorageError> {
    let started = std::time::Instant::now();
    let snap_zxid = prepare_and_load_snapshot(layout, engine)?;
    let epochs = read_epochs(data_dir)?;
    let log = open_log(layout, segment_bytes, preallocate)?;
    let frames: Vec<LogFrame> = frames_after(layout, &log, snap_zxid, true)?
        .into_iter()
        .map(|f| LogFrame {
            first: f.first_zxid as i64,
            last: f.last_zxid as i64,
            payload: Arc::new(f.payload),
        })
        .collect();
    let last = frames.last().map_or(snap_zxid, |f| f.last as u64);
    check_epochs(data_dir, epochs, last)?;
    // The replica applies these once they are committed, and can only stop if one
    // does not decode then: find out now, with the frame and the directory named.
    for f in &frames {
        check_frame(layout, f)?;
    }
    info!(
        "recovered snapshot {:#x} and {} log frame(s) through {:#x}; accepted epoch {}, current epoch {}, in {:?}",
        snap_zxid,
        frames.len(),
        frames.last().map(|f| f.last as u64).unwrap_or(snap_zxid),
        epochs.accepted,
        epochs.current,
        started.elapsed()
    );
    Ok(RecoveredMember {
        log,
        snap_zxid,
        frames,
        epochs,
    })
}

/// ZooKeeper's file names for the two epochs, in `dataDir`.
pub const ACCEPTED_EPOCH_FILE: &str = "acceptedEpoch";
pub const CURRENT_EPOCH_FILE: &str = "currentEpoch";

/// Reads `acceptedEpoch` and `currentEpoch` from `data_dir` (a missing file is epoch 0).
pub fn read_epochs(data_dir: &Path) -> Result<Epochs, StorageError> {
    Ok(Epochs {
        accepted: read_epoch_file(&data_dir.join(ACCEPTED_EPOCH_FILE))?,
        current: read_epoch_file(&data_dir.join(CURRENT_EPOCH_FILE))?,
    })
}

fn read_epoch_file(path: &Path) -> Result<i64, StorageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(StorageError::Epoch {
                path: path.to_path_buf(),
                reason: format!("cannot read the epoch file: {e}"),
            })
        }
    };
    let first = text.lines().next().unwrap_or("").trim();
    match first.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(StorageError::Epoch {
            path: path.to_path_buf(),
            reason: format!(
                "`{}` is not an epoch (a whole number written by the server); the file is damaged",
                first.chars().take(40).collect::<String>()
            ),
        }),
    }
}

/// A logged frame's transactions decode, and a reconfiguration among them has a
/// membership that parses (what the replica relies on when it applies the frame).
fn check_frame(layout: &Layout, f: &LogFrame) -> Result<(), StorageError> {
    let bad = |reason: String| StorageError::BadFrame {
        dir: layout.log_dir.clone(),
        first: f.first as u64,
        last: f.last as u64,
        reason,
    };
    let recs = keel_engine::txn::decode_batch(&f.payload).map_err(|e| bad(e.to_string()))?;
    for rec in recs {
        if let keel_engine::txn::Txn::Reconfig { data } = &rec.txn {
            let text = std::str::from_utf8(data)
                .map_err(|_| bad(format!("reconfiguration {:#x} is not UTF-8", rec.zxid)))?;
            keel_engine::zab::membership::Membership::parse(text)
                .map_err(|e| bad(format!("reconfiguration {:#x}: {}", rec.zxid, e.0)))?;
        }
    }
    Ok(())
}

/// The epoch files must account for what the data dir holds, as ZooKeeper's
/// `loadDataBase` checks: a server that lost or rolled back its `acceptedEpoch` would
/// promise epochs it has already promised away, which ZAB's safety rests on.
///
/// * `acceptedEpoch` is written (durably) when a leader's epoch is accepted, before any
///   transaction of that epoch is logged here: so it must exist once the log or the
///   snapshot holds a zxid of epoch 1 or later, and be at least that epoch.
/// * `currentEpoch` may be older than the last logged zxid's epoch (a follower logs the
///   first proposals of a new epoch before its acknowledgement of the new leader makes
///   that epoch current) or missing for the same reason; it may not be above
///   `acceptedEpoch`.
pub fn check_epochs(data_dir: &Path, e: Epochs, last_zxid: u64) -> Result<(), StorageError> {
    let epoch = (last_zxid >> 32) as i64;
    let accepted = data_dir.join(ACCEPTED_EPOCH_FILE);
    if epoch > 0 && !accepted.exists() {
        return Err(StorageError::Epoch {
            path: accepted,
            reason: format!(
                "missing, but this server holds transactions through zxid {last_zxid:#x} (epoch {epoch}): the data dir is incomplete (restore the file, or remove the whole data and log dirs to rejoin as a new server); refusing to start"
            ),
        });
    }
    if e.accepted < epoch {
        return Err(StorageError::Epoch {
            path: accepted,
            reason: format!(
                "says epoch {}, older than epoch {epoch} of the last transaction held (zxid {last_zxid:#x}): the file was rolled back; refusing to start",
                e.accepted
            ),
        });
    }
    if e.current > e.accepted {
        return Err(StorageError::Epoch {
            path: data_dir.join(CURRENT_EPOCH_FILE),
            reason: format!(
                "says epoch {}, above acceptedEpoch ({}): one of the two files was rolled back; refusing to start",
                e.current, e.accepted
            ),
        });
    }
    Ok(())
}

/// Writes the epochs that differ from `old` as ZooKeeper does (the number as text),
/// each durably: temporary file, fsync, rename, fsync of the directory.
pub fn write_epochs(data_dir: &Path, old: Epochs, new: Epochs) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let mut changed = false;
    // acceptedEpoch first, as ZooKeeper (a current epoch is never above the accepted).
    for (name, before, after) in [
        (ACCEPTED_EPOCH_FILE, old.accepted, new.accepted),
        (CURRENT_EPOCH_FILE, old.current, new.current),
    ] {
        let path = data_dir.join(name);
        if before == after && path.exists() {
            continue;
        }
        let tmp = data_dir.join(format!("{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(after.to_string().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        changed = true;
    }
    if changed {
        std::fs::File::open(data_dir)?.sync_all()?;
    }
    Ok(())
}

/// Group commit as the engine loop's log sink.
pub struct GroupSink(pub GroupCommit);

impl LogSink for GroupSink {
    fn submit(&mut self, first_zxid: i64, last_zxid: i64, payload: Vec<u8>) {
        self.0.submit(first_zxid as u64, last_zxid as u64, payload);
    }

    fn purge_through(&mut self, zxid: i64) {
        match self.0.purge_through(zxid as u64) {
            Ok(0) => {}
            Ok(n) => info!("purged {n} log segment(s) through zxid {zxid:#x}"),
            Err(e) => warn!("purging log segments through {zxid:#x} failed: {e}"),
        }
    }
}

/// A snapshot may start only this many times its predecessor's duration after that
/// one started, so writing snapshots takes at most about a tenth of a core.
pub const SNAPSHOT_PACE: u32 = 10;

/// When to take the next snapshot, for both engine loops.
///
/// * After between `snapCount`/2 and `snapCount` transactions since the last one, a new
///   random point in that range each time, as ZooKeeper's SyncRequestProcessor rolls
///   it: the members of an ensemble apply the same transactions, and without the roll
///   they would all stop to write a snapshot at the same moment. ZooKeeper counts
///   transactions, not zxid distance; across an epoch change only the new epoch's
///   counter is known, so that is what counts.
/// * And not before [`SNAPSHOT_PACE`] times the last snapshot's duration has passed
///   since it started. A snapshot costs time in proportion to the tree, a transaction
///   count does not: with 260k znodes (a 70 MB snapshot) and 50k writes/s, `snapCount`
///   alone had each member of a 3-member ensemble writing a snapshot every two seconds,
///   the snapshot threads taking 40% of the ensemble's CPU (and every write to a shared
///   part of the tree paying for a copy while a view was held). The log between two
///   snapshots then holds more than `snapCount` transactions under heavy load, which
///   only lengthens a restart's replay, by at most that pace's worth of writes.
pub struct SnapSchedule {
    every: i64,
    last: i64,
    /// Transactions after `last` that make the next snapshot due: drawn in
    /// `every / 2 ..= every` after each snapshot.
    next: i64,
    /// When the last snapshot was offered (its duration is read from the thread).
    offered: Option<Instant>,
}

impl SnapSchedule {
    /// `every`: `snapCount`; `last`: the zxid of the state the newest snapshot holds.
    pub fn new(every: i64, last: i64) -> SnapSchedule {
        SnapSchedule {
            every,
            last,
            next: roll(every),
            offered: None,
        }
    }

    /// After a turn: offers the snapshot thread a view when one is due (and the thread
    /// is free to take it).
    pub fn after_turn(&mut self, snap_tx: &SnapshotTx, engine: &Engine) {
        if txns_between(self.last, engine.last_zxid()) < self.next {
            return;
        }
        if let Some(at) = self.offered {
            if at.elapsed() < snap_tx.last_duration() * SNAPSHOT_PACE {
                return;
            }
        }
        if let Some(zxid) = offer_snapshot(snap_tx, engine) {
            self.last = zxid;
            self.next = roll(self.every);
            self.offered = Some(Instant::now());
        }
    }

    /// A snapshot of `zxid` was installed from elsewhere (a leader's SNAP): count from
    /// there.
    pub fn installed(&mut self, zxid: i64) {
        self.last = zxid;
    }
}

/// A random point in `every / 2 ..= every` (ZooKeeper: `snapCount / 2 + randRoll`).
fn roll(every: i64) -> i64 {
    use rand::Rng as _;
    let half = (every / 2).max(1);
    half + rand::thread_rng().gen_range(0..=(every - half).max(0))
}

/// The engine loops' handle on the snapshot thread: where views go, and how long the
/// last snapshot took.
#[derive(Clone)]
pub struct SnapshotTx {
    tx: flume::Sender<keel_engine::server::SnapshotView>,
    /// The last snapshot's duration in µs: from taking the view off the channel to
    /// written (or failed).
    last_us: Arc<AtomicU64>,
}

impl SnapshotTx {
    fn last_duration(&self) -> Duration {
        Duration::from_micros(self.last_us.load(Ordering::Relaxed))
    }
}

/// Transactions from zxid `from` to `to`. A zxid is epoch (high 32 bits) and counter
/// (low 32); across an epoch change only the new epoch's counter is known.
fn txns_between(from: i64, to: i64) -> i64 {
    if to >> 32 == from >> 32 {
        to - from
    } else {
        to & 0xffff_ffff
    }
}

/// Hands the snapshot thread an O(1) copy-on-write view of `engine`'s state. Never
/// blocks: while the thread is still busy with the previous one, nothing is sent and
/// the caller tries again on a later turn. Returns the zxid of the view sent.
pub fn offer_snapshot(snap_tx: &SnapshotTx, engine: &Engine) -> Option<i64> {
    let started = std::time::Instant::now();
    let view = engine.snapshot_view();
    let (zxid, nodes) = (view.last_zxid(), view.node_count());
    snap_tx.tx.try_send(view).ok()?;
    info!(
        zxid = format_args!("0x{zxid:x}"),
        nodes,
        "snapshot view taken in {:?}",
        started.elapsed()
    );
    Some(zxid)
}

/// Writes snapshots handed over by the engine thread, once the log has made their
/// zxid durable (a snapshot must never hold a write a crash could still take back),
/// then applies the retention policy.
/// After retention, segments wholly before the oldest kept snapshot are no longer
/// needed: `purge` (the engine thread, which owns the log) is asked to delete them.
pub fn spawn_snapshot_writer(
    snap_dir: PathBuf,
    durable: Arc<AtomicI64>,
    retain: usize,
    purge: flume::Sender<crate::msg::ToEngine>,
) -> (SnapshotTx, std::thread::JoinHandle<()>) {
    let (tx, rx) = flume::bounded::<keel_engine::server::SnapshotView>(1);
    let last_us = Arc::new(AtomicU64::new(0));
    let took = last_us.clone();
    let handle = std::thread::Builder::new()
        .name("keel-snapshot".into())
        .spawn(move || {
            let store = snapshot_store(snap_dir);
            for view in rx.iter() {
                let started = std::time::Instant::now();
                let _took = Took(&took, started);
                let snap = view.into_data();
                tracing::debug!(
                    "snapshot {:#x} converted in {:?}",
                    snap.last_zxid,
                    started.elapsed()
                );
                while durable.load(Ordering::Acquire) < snap.last_zxid as i64 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let started = std::time::Instant::now();
                match write_snapshot(&store, &snap) {
                    Ok(bytes) => info!(
                        "snapshot {:#x} written: {} bytes in {:?}",
                        snap.last_zxid,
                        bytes,
                        started.elapsed()
                    ),
                    Err(e) => {
                        error!("writing snapshot {:#x} failed: {e}", snap.last_zxid);
                        continue;
                    }
                }
                match store.purge(retain) {
                    Ok(Some(oldest)) => {
                        let _ = purge.send(crate::msg::ToEngine::PurgeLog {
                            through_zxid: oldest as i64,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => warn!("purging old snapshots failed: {e}"),
                }
            }
        })
        .expect("spawning the snapshot thread");
    (SnapshotTx { tx, last_us }, handle)
}

/// Records a snapshot's duration when it ends, however it ends.
struct Took<'a>(&'a AtomicU64, Instant);

impl Drop for Took<'_> {
    fn drop(&mut self) {
        let us = self.1.elapsed().as_micros().min(u64::MAX as u128) as u64;
        self.0.store(us, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_due_at_a_random_point_between_half_and_all_of_snap_count() {
        let draws: Vec<i64> = (0..1000).map(|_| roll(100_000)).collect();
        assert!(draws.iter().all(|d| (50_000..=100_000).contains(d)));
        assert!(draws.iter().any(|d| *d < 60_000) && draws.iter().any(|d| *d > 90_000));
        assert!((1..=2).contains(&roll(2)));
        assert_eq!(roll(1), 1);
    }

    #[test]
    fn snap_count_counts_transactions_not_zxid_distance() {
        assert_eq!(txns_between(0x1_0000_0005, 0x1_0000_0010), 11);
        assert_eq!(txns_between(0, 0x1_0000_0001), 1);
        assert_eq!(txns_between(0x1_0000_01b5, 0x2_0000_0001), 1);
        assert_eq!(txns_between(5, 105), 100, "standalone: one epoch");
    }

    #[test]
    fn epochs_missing_are_zero_written_durably_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_epochs(d.path()).unwrap(), Epochs::default());
        let e = Epochs {
            accepted: 3,
            current: 2,
        };
        write_epochs(d.path(), Epochs::default(), e).unwrap();
        assert_eq!(read_epochs(d.path()).unwrap(), e);
        // ZooKeeper's format: the number as text, nothing else.
        assert_eq!(
            std::fs::read_to_string(d.path().join("acceptedEpoch")).unwrap(),
            "3"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("currentEpoch")).unwrap(),
            "2"
        );
        let e2 = Epochs {
            accepted: 4,
            current: 2,
        };
        write_epochs(d.path(), e, e2).unwrap();
        assert_eq!(read_epochs(d.path()).unwrap(), e2);
        assert!(!d.path().join("acceptedEpoch.tmp").exists());
        // A file ZooKeeper wrote (with a newline) reads too.
        std::fs::write(d.path().join("currentEpoch"), "7\n").unwrap();
        assert_eq!(read_epochs(d.path()).unwrap().current, 7);
    }

    fn member_log(frames: &[(u64, u64)]) -> (tempfile::TempDir, Layout) {
        let framed: Vec<(u64, u64, Vec<u8>)> =
            frames.iter().map(|&(a, b)| (a, b, batch(a, b))).collect();
        member_log_of(&framed)
    }

    /// A member's data dir whose log holds these frames (first, last, payload).
    fn member_log_of(frames: &[(u64, u64, Vec<u8>)]) -> (tempfile::TempDir, Layout) {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path(), d.path());
        std::fs::create_dir_all(&layout.log_dir).unwrap();
        let (mut log, _) = Log::open(LogConfig {
            dir: layout.log_dir.clone(),
            segment_bytes: 1 << 20,
            preallocate: false,
        })
        .unwrap();
        for (a, b, payload) in frames {
            log.append(*a, *b, payload).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        (d, layout)
    }

    /// A log frame's payload: one transaction per zxid from `a` to `b`.
    fn batch(a: u64, b: u64) -> Vec<u8> {
        let recs: Vec<keel_engine::txn::TxnRecord> = (a..=b)
            .map(|z| keel_engine::txn::TxnRecord {
                zxid: z as i64,
                time: 0,
                session: 1,
                cxid: 0,
                txn: keel_engine::txn::Txn::Delete { path: "/x".into() },
            })
            .collect();
        keel_engine::txn::encode_batch(&recs)
    }

    #[test]
    fn a_logged_frame_that_does_not_decode_stops_start_up_naming_it() {
        let (d, layout) = member_log_of(&[(1, 1, batch(1, 1)), (2, 2, b"not a batch".to_vec())]);
        let e = recover_it(&d, &layout).err().expect("refused");
        assert!(matches!(e, StorageError::BadFrame { first: 2, .. }), "{e}");
    }

    fn recover_it(d: &tempfile::TempDir, layout: &Layout) -> Result<RecoveredMember, StorageError> {
        let mut engine = Engine::new(Default::default(), 0);
        recover_member(layout, d.path(), &mut engine, 1 << 20, false)
    }

    #[test]
    fn a_member_log_may_start_a_new_epoch_but_not_skip_inside_one() {
        // No snapshot, a log that begins with epoch 1: the usual first start.
        let (d, layout) = member_log(&[
            (0x1_0000_0001, 0x1_0000_0003),
            (0x2_0000_0001, 0x2_0000_0001),
        ]);
        std::fs::write(d.path().join("acceptedEpoch"), "2").unwrap();
        let r = recover_it(&d, &layout).expect("recovers");
        assert_eq!(r.snap_zxid, 0);
        assert_eq!(
            r.frames
                .iter()
                .map(|f| (f.first, f.last))
                .collect::<Vec<_>>(),
            vec![
                (0x1_0000_0001, 0x1_0000_0003),
                (0x2_0000_0001, 0x2_0000_0001)
            ]
        );
        assert_eq!(
            r.frames[0].payload.as_slice(),
            batch(0x1_0000_0001, 0x1_0000_0003)
        );
        assert_eq!(
            r.epochs,
            Epochs {
                accepted: 2,
                current: 0
            }
        );
        drop(r);
        // Transactions missing inside an epoch are a gap.
        let (d, layout) = member_log(&[(0x1_0000_0005, 0x1_0000_0006)]);
        assert!(matches!(
            recover_it(&d, &layout),
            Err(StorageError::Gap { .. })
        ));
        // A bad epoch file stops start-up, naming it.
        let (d, layout) = member_log(&[]);
        std::fs::write(d.path().join("currentEpoch"), "zz").unwrap();
        let e = recover_it(&d, &layout).err().expect("bad epoch file");
        assert!(e.to_string().contains("currentEpoch"), "{e}");
    }

    #[test]
    fn epoch_files_must_account_for_the_log() {
        let (d, layout) = member_log(&[(0x3_0000_0001, 0x3_0000_0004)]);
        // No acceptedEpoch with epoch-3 transactions: refused, naming the file.
        let e = recover_it(&d, &layout)
            .err()
            .expect("missing acceptedEpoch");
        assert!(
            e.to_string().contains("acceptedEpoch") && e.to_string().contains("missing"),
            "{e}"
        );
        // Rolled back below the log's epoch.
        std::fs::write(d.path().join("acceptedEpoch"), "2").unwrap();
        let e = recover_it(&d, &layout).err().expect("old acceptedEpoch");
        assert!(e.to_string().contains("acceptedEpoch"), "{e}");
        // currentEpoch above acceptedEpoch.
        std::fs::write(d.path().join("acceptedEpoch"), "3").unwrap();
        std::fs::write(d.path().join("currentEpoch"), "4").unwrap();
        let e = recover_it(&d, &layout)
            .err()
            .expect("current above accepted");
        assert!(e.to_string().contains("currentEpoch"), "{e}");
        // currentEpoch behind the log (or missing) is a state a follower passes through.
        std::fs::write(d.path().join("currentEpoch"), "2").unwrap();
        assert!(recover_it(&d, &layout).is_ok());
        std::fs::remove_file(d.path().join("currentEpoch")).unwrap();
        assert!(recover_it(&d, &layout).is_ok());
        // An epoch-0 log (a standalone data dir) needs no epoch files.
        let (d, layout) = member_log(&[(1, 5)]);
        assert!(recover_it(&d, &layout).is_ok());
    }

    #[test]
    fn a_garbage_epoch_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("currentEpoch"), "x1").unwrap();
        let e = read_epochs(d.path()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&d.path().join("currentEpoch").display().to_string())
                && text.contains("`x1` is not an epoch"),
            "{text}"
        );
        std::fs::write(d.path().join("currentEpoch"), "").unwrap();
        assert!(read_epochs(d.path()).is_err());
    }
}
