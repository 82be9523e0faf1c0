//! The crate's single error type. Every variant names the file (and, for
//! damage, the byte offset) so that an operator can find what went wrong
//! without reading the source.

use std::io;
use std::path::PathBuf;

/// Everything the log, group commit and snapshot store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A read, write, open, rename or delete failed. Not a durability verdict by
    /// itself: see [`WalError::Fsync`] for that.
    #[error("I/O error while trying to {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// `fdatasync`/`fsync` failed. After a failed fsync Linux may have dropped
    /// the dirty pages, so the file's contents are unknown: the process must
    /// exit and recover from what is on disk. Retrying is never correct.
    #[error(
        "fsync of {} failed: {source}; the data written since the last successful sync may be \
         lost, so this process must exit and recover from disk (retrying the sync is not safe)",
        path.display()
    )]
    Fsync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The log holds damaged or inconsistent bytes before its tail (or damage
    /// that cannot be a torn write). Starting would risk losing acknowledged
    /// writes, so Keel refuses.
    #[error(
        "WAL file {} is corrupt at byte offset {offset}: {reason}. Keel will not start on a \
         damaged log: move this server's data directory aside and let it resync from the \
         ensemble, or restore it from a backup",
        file.display()
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A caller tried to append a frame whose zxids do not follow the log's
    /// last zxid (or whose range is inverted). A bug in the caller, not a disk
    /// problem; nothing was written.
    #[error(
        "refusing to append frame with zxids {first_zxid:#x}..={last_zxid:#x} after last zxid \
         {log_last_zxid:#x}: frames must have first <= last and strictly increasing zxids"
    )]
    OutOfOrder {
        first_zxid: u64,
        last_zxid: u64,
        log_last_zxid: u64,
    },

    /// A single frame's payload does not fit the 32-bit length field.
    #[error("frame payload of {len} bytes exceeds the 4 GiB frame limit")]
    FrameTooLarge { len: usize },

    /// `truncate_after(zxid)` would have to cut a frame in half.
    #[error(
        "cannot truncate the log after zxid {zxid:#x}: frame {first_zxid:#x}..={last_zxid:#x} \
         in {} at byte offset {offset} straddles it",
        file.display()
    )]
    Straddle {
        zxid: u64,
        first_zxid: u64,
        last_zxid: u64,
        file: PathBuf,
        offset: u64,
    },

    /// Another process (or another `Log` in this process) holds the log
    /// directory's lock file.
    #[error(
        "the WAL directory {} is in use by another process (lock file {} is held); stop the \
         other Keel server or point this one at a different data directory",
        dir.display(),
        lock.display()
    )]
    Locked { dir: PathBuf, lock: PathBuf },

    /// Snapshot files exist but none of them passed validation. Starting from
    /// an empty tree would silently drop everything the purged log held.
    #[error(
        "none of the {tried} snapshot files in {} is valid (each failure was logged); \
         restore the snapshot directory from a backup or resync this server from the ensemble",
        dir.display()
    )]
    NoValidSnapshot { dir: PathBuf, tried: usize },

    /// An operator asked to truncate a damaged log after a zxid that lies
    /// beyond the damage: frames up to that zxid cannot all be kept.
    #[error(
        "cannot truncate the log after zxid {zxid:#x}: {} is damaged at byte offset {offset} \
         ({reason}) before that zxid; the last intact zxid before the damage is {last_intact:#x}, \
         so truncate after that zxid or an earlier one (the frames after it are lost from this \
         server and must come from the ensemble)",
        file.display()
    )]
    BeyondDamage {
        zxid: u64,
        last_intact: u64,
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// The log stopped accepting requests: an earlier write or fsync failed
    /// (fatal: the process must exit and recover), or the group-commit
    /// thread is shutting down. Nothing was done.
    #[error("the write-ahead log is stopped: {reason}; the request was not carried out")]
    Stopped { reason: String },
}

impl WalError {
    /// Shorthand used throughout the crate for wrapping an `io::Error`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> WalError {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
