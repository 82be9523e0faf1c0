//! Small filesystem helpers shared by the log and the snapshot store: opening
//! with `O_DIRECT`, syncing a directory, the data-directory lock, and
//! zero-filling. Kept here so that every raw syscall (and its `unsafe`) lives in
//! one short file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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
