//! Start-up recovery and the background snapshot writer: the only place `net` touches
//! keel-wal. Recovery loads the newest valid snapshot, replays the log after it and
//! refuses to start when the log does not continue from the snapshot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel_engine::Engine;
use keel_wal::{Backend, GroupCommit, Log, LogConfig, LogOptions, SnapshotStore, WalError};
use thiserror::Error;
use tracing::{error, info, warn};

use crate::engine_loop::LogSink;

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

/// Rebuilds the engine's state from disk.
pub fn recover(
    layout: &Layout,
    engine: &mut Engine,
    segment_bytes: u64,
    preallocate: bool,
) -> Result<Recovered, StorageError> {
    for d in [&layout.snap_dir, &layout.log_dir] {
        std::fs::create_dir_all(d).map_err(|source| StorageError::Dir {
            path: d.clone(),
            source,
        })?;
    }
    let store = SnapshotStore::new(layout.snap_dir.clone());
    let started = std::time::Instant::now();
    // The tree is built straight from the validated, mmap'd archive: no parse into an
    // intermediate copy first.
    let loaded = store.visit_latest(|a| {
        engine.load_archived(a);
        (a.last_zxid.to_native(), a.nodes.len(), a.sessions.len())
    })?;
    let snap_zxid = loaded.map(|(z, _, _)| z).unwrap_or(0);
    if let Some((zxid, nodes, sessions)) = loaded {
        info!(
            "loaded snapshot at zxid {zxid:#x} ({nodes} nodes, {sessions} sessions) in {:?}",
            started.elapsed()
        );
    }
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
    let frames = log.read_after(snap_zxid)?;
    if let Some(f) = frames.first() {
        if f.first_zxid > snap_zxid + 1 {
            return Err(StorageError::Gap {
                dir: layout.log_dir.clone(),
                first: f.first_zxid,
                snap: snap_zxid,
            });
        }
    }
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
) -> (
    flume::Sender<keel_engine::server::SnapshotView>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = flume::bounded::<keel_engine::server::SnapshotView>(1);
    let handle = std::thread::Builder::new()
        .name("keel-snapshot".into())
        .spawn(move || {
            let store = SnapshotStore::new(snap_dir);
            for view in rx.iter() {
                let started = std::time::Instant::now();
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
                match store.write(&snap) {
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
    (tx, handle)
}
