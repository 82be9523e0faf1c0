//! A file layer for tests: fails the Nth write, fdatasync or directory fsync
//! on request, and (optionally) models what a power loss would leave on
//! disk, so that tests can check that nothing reported durable is lost.
//!
//! It sees the same operations on both backends: the pwrite backend calls
//! [`LogFile::write_all_at`]/[`LogFile::sync_data`], the io_uring backend the
//! `will_*` hooks just before it submits (an error there is taken as the
//! operation's result, as if the kernel had returned it).
//!
//! The power-loss model keeps two images of every segment opened through the
//! layer: *volatile* (everything written) and *durable* (the volatile image
//! as it was when the newest successful fdatasync started). A write is added
//! to the volatile image when it completes (pwrite) or is submitted (io_uring,
//! where the log submits a write only after the previous one completed and
//! links the sync behind it, so at a sync's submission every write it covers
//! has been submitted). [`FaultFs::durable_images`] is then what the disk
//! would hold after a power loss at that moment. A segment's content at open
//! is taken as durable: the log opens segments right after syncing them
//! (recovery, truncation) or creating them zero-filled and synced.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fsio::{open_rw, LogFile, LogFs};

#[derive(Default)]
struct Counter {
    done: AtomicU64,
    /// The operation number (1-based, since the layer was made) that fails;
    /// 0 for none.
    fail_at: AtomicU64,
}

impl Counter {
    /// Counts one operation; `Err(EIO)` if it is the one chosen to fail.
    fn next(&self) -> io::Result<()> {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(libc::EIO))
        } else {
            Ok(())
        }
    }

    fn arm(&self, nth_from_now: u64) {
        let now = self.done.load(Ordering::SeqCst);
        self.fail_at
            .store(now + nth_from_now.max(1), Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Image {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    /// Token of the sync whose snapshot `durable` is (tokens increase).
    durable_token: u64,
}

#[derive(Default)]
struct Model {
    files: HashMap<PathBuf, Image>,
    /// Snapshots taken when a sync started, by token.
    pending: HashMap<u64, (PathBuf, Vec<u8>)>,
    next_token: u64,
}

#[derive(Default)]
struct State {
    writes: Counter,
    syncs: Counter,
    dir_syncs: Counter,
    /// Syncs started (pwrite: running; io_uring: submitted) and not yet
    /// finished (io_uring: reaped).
    syncs_running: AtomicI64,
    /// Writes issued while a sync was running: the overlap of writing batch
    /// k+1 with syncing batch k.
    overlapped_writes: AtomicU64,
    /// Extra time each fdatasync of the pwrite path takes, in microseconds.
    sync_delay_micros: AtomicU64,
    model: Option<Mutex<Model>>,
}

impl State {
    fn model(&self) -> Option<MutexGuard<'_, Model>> {
        // A panic while holding the lock leaves images that are still valid
        // byte vectors; keep going.
        self.model
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// See the module docs. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct FaultFs {
    state: Arc<State>,
}

impl std::fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultFs")
            .field("writes", &self.writes())
            .field("syncs", &self.syncs())
            .field("dir_syncs", &self.dir_syncs())
            .field("power_loss_model", &self.state.model.is_some())
            .finish()
    }
}

impl FaultFs {
    /// Passes everything through until told to fail.
    pub fn new() -> FaultFs {
        FaultFs::default()
    }

    /// Also keeps the power-loss model (a copy of every segment in memory:
    /// for tests with small segments).
    pub fn with_power_loss_model() -> FaultFs {
        FaultFs {
            state: Arc::new(State {
                model: Some(Mutex::new(Model::default())),
                ..State::default()
            }),
        }
    }

    /// The `n`th segment write from now (1 = the next) fails with `EIO`.
    pub fn fail_nth_write(&self, n: u64) {
        self.state.writes.arm(n);
    }

    /// The `n`th fdatasync from now (1 = the next) fails with `EIO` without
    /// syncing anything; later ones succeed again, as they may on Linux
    /// after a writeback error (which is why a failed fsync is fatal).
    pub fn fail_nth_sync(&self, n: u64) {
        self.state.syncs.arm(n);
    }

    /// The `n`th directory fsync from now (1 = the next) fails with `EIO`.
    pub fn fail_nth_dir_sync(&self, n: u64) {
        self.state.dir_syncs.arm(n);
    }

    /// Segment writes so far (including a failed one).
    pub fn writes(&self) -> u64 {
        self.state.writes.done.load(Ordering::SeqCst)
    }

    /// Segment fdatasyncs so far (including a failed one).
    pub fn syncs(&self) -> u64 {
        self.state.syncs.done.load(Ordering::SeqCst)
    }

    /// Directory fsyncs so far (including a failed one).
    pub fn dir_syncs(&self) -> u64 {
        self.state.dir_syncs.done.load(Ordering::SeqCst)
    }

    /// Makes every fdatasync on the pwrite path take `d` longer (a slow
    /// disk), so that a test can count on writes overlapping syncs. The
    /// io_uring backend's syncs run in the kernel and are not slowed.
    pub fn delay_syncs(&self, d: std::time::Duration) {
        let micros = d.as_micros().min(u64::MAX as u128) as u64;
        self.state.sync_delay_micros.store(micros, Ordering::SeqCst);
    }

    /// Writes issued while an fdatasync was in flight (write/sync overlap).
    pub fn overlapped_writes(&self) -> u64 {
        self.state.overlapped_writes.load(Ordering::SeqCst)
    }

    /// What each segment opened through this layer would hold after a power
    /// loss now, by path; empty without the power-loss model.
    pub fn durable_images(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let Some(m) = self.state.model() else {
            return Vec::new();
        };
        let mut v: Vec<_> = m
            .files
            .iter()
            .map(|(p, i)| (p.clone(), i.durable.clone()))
            .collect();
        v.sort();
        v
    }
}

impl LogFs for FaultFs {
    fn open_segment(&self, path: &Path, direct: bool) -> io::Result<Arc<dyn LogFile>> {
        let file = open_rw(path, direct)?;
        if let Some(mut m) = self.state.model() {
            let content = std::fs::read(path)?;
            let img = m.files.entry(path.to_path_buf()).or_default();
            img.volatile = content.clone();
            img.durable = content;
        }
        Ok(Arc::new(FaultFile {
            file,
            path: path.to_path_buf(),
            state: Arc::clone(&self.state),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.state.dir_syncs.next()?;
        File::open(dir)?.sync_all()
    }
}

/// A segment file of [`FaultFs`].
#[derive(Debug)]
struct FaultFile {
    file: File,
    path: PathBuf,
    state: Arc<State>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultFs state")
    }
}

impl FaultFile {
    fn count_write(&self) -> io::Result<()> {
        self.state.writes.next()?;
        if self.state.syncs_running.load(Ordering::SeqCst) > 0 {
            self.state.overlapped_writes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn record_write(&self, buf: &[u8], offset: u64) {
        if let Some(mut m) = self.state.model() {
            let img = m.files.entry(self.path.clone()).or_default();
            let (start, end) = (offset as usize, offset as usize + buf.len());
            if img.volatile.len() < end {
                img.volatile.resize(end, 0);
            }
            img.volatile[start..end].copy_from_slice(buf);
        }
    }
}

impl LogFile for FaultFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.count_write()?;
        self.file.write_all_at(buf, offset)?;
        self.record_write(buf, offset);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let token = self.will_sync()?;
        let delay = self.state.sync_delay_micros.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        let r = self.file.sync_data();
        self.sync_done(token, &r);
        r
    }

    fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn will_write(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.count_write()?;
        self.record_write(buf, offset);
        Ok(())
    }

    fn will_sync(&self) -> io::Result<u64> {
        self.state.syncs.next()?;
        self.state.syncs_running.fetch_add(1, Ordering::SeqCst);
        let Some(mut m) = self.state.model() else {
            return Ok(0);
        };
        m.next_token += 1;
        let token = m.next_token;
        let snap = m
            .files
            .get(&self.path)
            .map(|i| i.volatile.clone())
            .unwrap_or_default();
        m.pending.insert(token, (self.path.clone(), snap));
        Ok(token)
    }

    fn sync_done(&self, token: u64, result: &io::Result<()>) {
        self.state.syncs_running.fetch_sub(1, Ordering::SeqCst);
        let Some(mut m) = self.state.model() else {
            return;
        };
        let Some((path, snap)) = m.pending.remove(&token) else {
            return;
        };
        if result.is_ok() {
            let img = m.files.entry(path).or_default();
            if token > img.durable_token {
                img.durable = snap;
                img.durable_token = token;
            }
        }
    }
}
