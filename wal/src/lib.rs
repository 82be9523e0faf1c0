//! keel-wal: Keel's durable state on disk — the write-ahead log (CRC32C-framed,
//! preallocated segments, group commit) and checksummed snapshot files.
//!
//! Where this crate sits on a request's way through Keel: docs/architecture.md, "One
//! setData, file by file".
//!
//! # On-disk formats
//!
//! **Log directory** (`dataDir/log`): segment files named `log.<16 lowercase
//! hex digits>`, the first zxid of the segment's first frame (e.g.
//! `log.0000000100000001`), plus a `LOCK` file that the running server holds
//! with `flock`. A segment is zero-filled to `segment_bytes` (64 MiB by
//! default) ahead of time by a helper thread as `log.spare.tmp` (or, failing
//! that, inline as `log.<hex>.tmp`) and renamed into place at the rollover;
//! leftover `log.*.tmp` files are deleted at open; the directory is fsynced
//! right after the rename, before any frame goes into the new file. Frames are
//! packed back to back from offset 0 (no padding, even with `O_DIRECT`); the
//! unused remainder of a segment is zeros. A segment is synced (and every
//! sync in flight on it waited for) before the log rolls to the next one, so
//! only the newest segment can end in a torn write. Each frame is a
//! 40-byte header then the payload, integers little-endian:
//!
//! ```text
//! 0  magic "KWAL"   4  version u16 = 1   6  flags u16 = 0
//! 8  payload_len u32                      12 payload_crc u32 = CRC32C(payload)
//! 16 first_zxid u64                       24 last_zxid u64
//! 32 reserved u32 = 0                     36 header_crc u32 = CRC32C(bytes 0..36)
//! 40 payload
//! ```
//!
//! Zxids strictly increase across the whole log (`first <= last` within a
//! frame, `first > previous last` between frames). On open, damage at the end
//! of the newest segment that looks like a crash (the file ends inside a
//! frame, or a bad frame has an all-zero 512-byte sector piece, and no intact
//! frame follows) is zeroed away with a warning; anything else is
//! [`WalError::Corrupt`] naming the file and byte offset. Known limit: if a
//! power loss persists a later block of an unsynced write but not an earlier
//! one, the intact later frame makes the tear look like damage in the middle,
//! and the server refuses to start rather than guess (a durable commit marker
//! would resolve this; not built yet).
//!
//! **Snapshot directory** (`dataDir/snap`): files `snapshot.<16 hex digits of
//! last_zxid>`, each a body (for Keel, the engine's rkyv archive of the tree and
//! sessions, `keel_engine::snapshot`; opaque to this crate) followed by a 24-byte
//! trailer: magic `"KEELSNAP"` (8 bytes), the body's format version u32 (given by the
//! writer; 1 today), CRC32C of the body u32, body length u64 (little-endian).
//! Written as `<name>.tmp`, fsynced, renamed, directory fsynced.
//!
//! # Backends
//!
//! Writes and fdatasyncs reach the disk through a [`Backend`] chosen at
//! [`Log::open_with`] and reported by [`Log::backend`] (and in the "WAL opened"
//! log line): [`Backend::IoUring`] submits each batch's write and its
//! fdatasync as one linked io_uring submission; [`Backend::Pwrite`] uses the
//! `pwrite` and `fdatasync` system calls. Asking for io_uring falls back to
//! pwrite, with a warning, when no ring can be created (old kernel, seccomp,
//! `kernel.io_uring_disabled`, or `RLIMIT_MEMLOCK` for an unprivileged user on
//! kernels that charge rings to it). Independently, [`IoMode`] says whether
//! `O_DIRECT` is in use. Both backends pass the same test suite.
//!
//! Files are reached through a [`LogFs`]: [`OsFs`] in production,
//! [`fault::FaultFs`] in tests (fails the Nth write, fdatasync or directory
//! fsync, and models what a power loss would leave).
//!
//! # Threads and durability
//!
//! A [`Log`] is used by one thread at a time; [`GroupCommit`] gives it a thread
//! of its own, which writes batch k+1 while batch k's fdatasync is in flight
//! (in the kernel with io_uring; on a helper thread, `keel-wal-sync`, with
//! pwrite), with at most [`MAX_SYNCS_IN_FLIGHT`] syncs outstanding. Durability
//! is reported in zxid order as the last zxid of the newest batch whose sync
//! and every earlier one succeeded ([`Log::durable_zxid`]). Log segments are
//! purged on the WAL thread between batches ([`GroupCommit::purge_through`]).
//! A helper thread (`keel-wal-prealloc`) zero-fills the next segment.
//!
//! Errors from a sync ([`WalError::Fsync`]) are fatal by contract (fail-stop):
//! the log refuses every later append and sync ([`WalError::Stopped`]), group
//! commit reports the error once through its `on_fatal` callback and nothing
//! as durable after it, and the caller exits and recovers from disk rather
//! than retrying.
//!
//! # Operator tools
//!
//! [`inspect_dir`] and [`intact_prefix`] read a log directory without
//! changing it (`keel wal check`); [`truncate_dir_after`] removes the frames
//! after a zxid, also from a log `open` refuses, when an operator asks
//! (`keel wal truncate --after`).

mod backend;
mod error;
pub mod fault;
mod frame;
mod fsio;
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod log;
mod repair;
mod snapshot;

pub use backend::Backend;
pub use error::WalError;
pub use fsio::{LogFile, LogFs, OsFile, OsFs};
pub use group::{DurableFn, FatalFn, GroupCommit, GroupStats, MAX_SYNCS_IN_FLIGHT};
pub use log::{check_dir, Frame, IoMode, Log, LogConfig, LogOptions, Recovery};
pub use repair::{
    inspect_dir, intact_prefix, truncate_dir_after, Damage, IntactPrefix, SegmentInfo, Truncation,
};
pub use snapshot::{with_file, SnapshotStore};
