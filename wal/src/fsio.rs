//! Small filesystem helpers shared by the log and the snapshot store: opening
//! with `O_DIRECT`, syncing a directory, the data-directory lock, and
//! zero-filling. Kept here so that every raw syscall (and its `unsafe`) lives in
//! one short file.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::WalError;

/// Opens `path` for reading and writing, with `O_DIRECT` when `direct`.
pub(crate) fn open_rw(path: &Path, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// Makes a directory's entries (creates, renames, unlinks) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), WalError> {
    let d = File::open(dir).map_err(|e| WalError::io("open directory", dir, e))?;
    d.sync_all().map_err(|source| WalError::Fsync {
        path: dir.to_path_buf(),
        source,
    })
}

/// fdatasync with the crate's fatal error.
pub(crate) fn sync_data(file: &File, path: &Path) -> Result<(), WalError> {
    file.sync_data().map_err(|source| WalError::Fsync {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes zeros over `[from, to)` of `file` with ordinary (buffered) writes.
pub(crate) fn write_zeros(file: &File, path: &Path, from: u64, to: u64) -> Result<(), WalError> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min((to.saturating_sub(from)) as usize)];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| WalError::io("write zeros to", path, e))?;
        at += n as u64;
    }
    Ok(())
}

/// Creates (or truncates) `path` and zero-fills it to `len` bytes, durably.
/// Syncs every 8 MiB so that dirty zeros never pile up: on ext4 a WAL
/// `fdatasync` can be made to wait for other files' dirty data. Returns
/// `Ok(false)` if `cancel` was raised part-way (the file is then incomplete).
pub(crate) fn zero_fill_new(
    path: &Path,
    len: u64,
    cancel: Option<&AtomicBool>,
) -> Result<bool, WalError> {
    const CHUNK: u64 = 1 << 20;
    const SYNC_EVERY: u64 = 8 << 20;
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| WalError::io("create", path, e))?;
    let (mut at, mut synced) = (0, 0);
    while at < len {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Ok(false);
        }
        let next = (at + CHUNK).min(len);
        write_zeros(&f, path, at, next)?;
        if next - synced >= SYNC_EVERY {
            sync_data(&f, path)?;
            synced = next;
        }
        at = next;
    }
    sync_data(&f, path)?;
    Ok(true)
}

/// Holds an exclusive `flock` on a file for as long as it lives, so that two
/// processes never write the same log.
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, WalError> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| WalError::io("open lock file", &path, e))?;
        // SAFETY: flock only reads the integer descriptor, which is valid for
        // the duration of the call because `file` is alive; it touches no
        // memory of ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(WalError::Locked {
                    dir: dir.to_path_buf(),
                    lock: path,
                });
            }
            return Err(WalError::io("lock", &path, err));
        }
        // The lock is released when the descriptor is closed, i.e. on drop.
        Ok(DirLock { _file: file })
    }
}

// ---------------------------------------------------------------------------
// The file layer: the few operations the log performs on its segment files
// and directory, behind a trait so that tests can fail them (see
// `crate::fault`).
// ---------------------------------------------------------------------------

/// A segment file opened for writing by the log.
///
/// The pwrite backend calls [`LogFile::write_all_at`] and
/// [`LogFile::sync_data`]. The io_uring backend hands [`LogFile::raw_fd`] to
/// the kernel instead and calls the `will_*` hooks just before submitting, so
/// that a test layer sees (and can fail) the same operations in the same
/// order on either backend.
pub trait LogFile: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// `fdatasync`: every write that completed before the call is durable
    /// when it returns `Ok`.
    fn sync_data(&self) -> io::Result<()>;

    /// The open descriptor, valid for as long as `self` lives.
    fn raw_fd(&self) -> RawFd;

    /// io_uring backend: called before a write of `buf` at `offset` is
    /// submitted. An error is taken as the write's result and nothing is
    /// submitted.
    fn will_write(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Ok(())
    }

    /// io_uring backend: called before an fdatasync is submitted (it covers
    /// every write already submitted for this file: it is linked behind the
    /// last one, which is submitted only after the one before it completed).
    /// An error is taken as the sync's result and nothing is submitted.
    /// The returned token is handed to [`LogFile::sync_done`].
    fn will_sync(&self) -> io::Result<u64> {
        Ok(0)
    }

    /// io_uring backend: the sync started with `token` completed.
    fn sync_done(&self, _token: u64, _result: &io::Result<()>) {}
}

/// Opens segment files and syncs the log directory. [`OsFs`] is the real one.
pub trait LogFs: Send + Sync + fmt::Debug {
    /// Opens an existing segment for reading and writing (`O_DIRECT` when
    /// `direct`).
    fn open_segment(&self, path: &Path, direct: bool) -> io::Result<Arc<dyn LogFile>>;

    /// fsync of a directory, making creates, renames and unlinks durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The operating system's files.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

/// A segment file of [`OsFs`].
#[derive(Debug)]
pub struct OsFile(pub File);

impl LogFile for OsFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl LogFs for OsFs {
    fn open_segment(&self, path: &Path, direct: bool) -> io::Result<Arc<dyn LogFile>> {
        Ok(Arc::new(OsFile(open_rw(path, direct)?)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

// ---------------------------------------------------------------------------
// Doorbell: an eventfd the WAL thread sleeps on. Rung by submitters, by the
// pwrite backend's sync thread, and (registered with the ring) by the kernel
// for every io_uring completion, so one blocking read waits for all three.
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    pub(crate) fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd takes two integers and returns a new descriptor or
        // -1; it touches no memory of ours.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd, is open, and nothing
        // else owns it; OwnedFd closes it exactly once.
        Ok(Doorbell {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Wakes the sleeper (or makes its next `wait` return at once).
    pub(crate) fn ring(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes the 8 bytes of `one`, a live local, to an eventfd
            // this struct owns (open until drop).
            let n = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    (&one as *const u64).cast::<libc::c_void>(),
                    8,
                )
            };
            // EAGAIN cannot happen on a blocking eventfd short of 2^64 - 2
            // pending rings; any other failure leaves nothing to do.
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }

    /// Sleeps until rung at least once since the last `wait`.
    pub(crate) fn wait(&self) {
        let mut count: u64 = 0;
        loop {
            // SAFETY: reads at most 8 bytes into `count`, a live local u64,
            // from an eventfd this struct owns (open until drop).
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut count as *mut u64).cast::<libc::c_void>(),
                    8,
                )
            };
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }
}
