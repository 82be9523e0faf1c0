//! keel-wal: Keel's durable state on disk — the write-ahead log (CRC32C-framed,
//! preallocated segments, group commit) and rkyv snapshots of the tree.
//!
//! # On-disk formats
//!
//! **Log directory** (`dataDir/log`): segment files named `log.<16 lowercase
//! hex digits>`, the first zxid of the segment's first frame (e.g.
//! `log.0000000100000001`), plus a `LOCK` file that the running server holds
//! with `flock`. A segment is zero-filled to `segment_bytes` (64 MiB by
//! default) ahead of time by a helper thread as `log.spare.tmp` (or, failing
//! that, inline as `log.<hex>.tmp`) and renamed into place at the rollover;
//! leftover `log.*.tmp` files are deleted at open. Frames are packed back to
//! back from offset 0 (no padding, even with `O_DIRECT`); the unused remainder
//! of a segment is zeros. A segment is synced before the log rolls to the next
//! one, so only the newest segment can end in a torn write. Each frame is a
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
//! last_zxid>`, each an rkyv archive of [`SnapshotData`] followed by a 24-byte
//! trailer: magic `"KEELSNAP"` (8 bytes), format version u32 = 1, CRC32C of the
//! archive u32, archive length u64 (little-endian). Written as `<name>.tmp`,
//! fsynced, renamed, directory fsynced.
//!
//! # Threads
//!
//! A [`Log`] is used by one thread at a time; [`GroupCommit`] gives it a thread
//! of its own. Errors from `sync` ([`WalError::Fsync`]) are fatal by contract:
//! the caller exits and recovers from disk rather than retrying.

mod error;
mod frame;
mod fsio;
mod group;
mod log;
mod snapshot;

pub use error::WalError;
pub use group::{DurableFn, FatalFn, GroupCommit, GroupStats};
pub use log::{check_dir, Frame, IoMode, Log, LogConfig, Recovery};
pub use snapshot::{SnapAcl, SnapNode, SnapSession, SnapshotData, SnapshotStore, SNAP_VERSION};
