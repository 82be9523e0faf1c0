//! Snapshot files: the data tree and sessions at one zxid, as an rkyv archive
//! followed by a checksummed trailer, in `dataDir/snap`.
//!
//! Loading maps the file with `mmap` (read-only, private) rather than reading
//! it: the CRC pass and rkyv's validation then read the page cache directly,
//! without a second copy of a file that can be hundreds of megabytes, and the
//! same mapping is what a later zero-copy reader of the archive will use. For
//! now the archive is then deserialised into an owned [`SnapshotData`].
//!
//! rkyv's validation catches damaged offsets and lengths but not a flipped
//! byte inside a string or byte vector, hence the CRC32C over the whole body.
//! The archive uses rkyv's default format (little-endian, 32-bit relative
//! pointers, so an archive is limited to 2 GiB); changing rkyv's format
//! features changes the file format and must bump [`SNAP_VERSION`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::WalError;
use crate::fsio::fsync_dir;

const SNAP_MAGIC: [u8; 8] = *b"KEELSNAP";
/// Version of the snapshot file format (trailer layout + archive layout).
pub const SNAP_VERSION: u32 = 1;
const TRAILER_LEN: usize = 24;

/// The tree and sessions, consistent at `last_zxid` (built by the engine at a
/// transaction boundary).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotData {
    pub last_zxid: u64,
    pub nodes: Vec<SnapNode>,
    pub sessions: Vec<SnapSession>,
}

/// One znode with its full `Stat` (zxid and time fields are `i64` as in
/// ZooKeeper's `Stat`; `ephemeral_owner` also carries ZooKeeper's container
/// and TTL markers).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapNode {
    pub path: String,
    /// `None` for a node whose data is null (distinct from empty, as in ZooKeeper).
    pub data: Option<Vec<u8>>,
    pub acl: Vec<SnapAcl>,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapAcl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapSession {
    pub id: i64,
    pub timeout_ms: i32,
    pub password: Vec<u8>,
}

/// Reads and writes the snapshot files of one directory.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

fn snapshot_name(zxid: u64) -> String {
    format!("snapshot.{zxid:016x}")
}

/// Snapshot files in `dir`, newest first. A missing directory holds none.
fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(WalError::io("list directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| WalError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix("snapshot.")) else {
            continue;
        };
        if hex.len() != 16 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            continue; // e.g. a `.tmp` being written
        }
        if let Ok(z) = u64::from_str_radix(hex, 16) {
            out.push((z, entry.path()));
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.0));
    Ok(out)
}

/// A read-only private mapping of a whole file, unmapped on drop.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    /// `len` must be the file's current size and non-zero (mmap of 0 bytes
    /// fails with EINVAL).
    fn map(file: &File, len: usize) -> std::io::Result<Mapped> {
        // SAFETY: a null hint lets the kernel choose the address, so no
        // existing mapping of ours is replaced; the descriptor is valid for
        // the call because `file` is borrowed; PROT_READ + MAP_PRIVATE means
        // the mapping can never write to the file. The result is checked for
        // MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of a live mapping of `len` readable bytes
        // (mmap succeeded and we unmap only in Drop, which cannot run while
        // this borrow of `self` lives); u8 has alignment 1; `len` came from a
        // file size that mmap accepted, so it is <= isize::MAX. The bytes are
        // not mutated while borrowed: the mapping is read-only and private,
        // and Keel never writes to or truncates a snapshot file after
        // renaming it into place (it writes a new file and renames). Another
        // program writing to or truncating a published snapshot would break
        // this, as it would for any mmap; keep the data directory private to
        // Keel.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mmap returned; no borrow of it can
        // outlive `self` (see `bytes`). A failure would leak address space
        // only, so its result is ignored.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// Why one snapshot file was rejected (logged, then the next older is tried).
/// Maps a snapshot file, checks its trailer and CRC32C and validates the archive,
/// then hands the validated archive to `f`. Nothing is copied or parsed before `f`.
fn with_archive<R>(
    path: &Path,
    f: impl FnOnce(&ArchivedSnapshotData) -> Result<R, String>,
) -> Result<R, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    let size = usize::try_from(size).map_err(|_| format!("file of {size} bytes is too large"))?;
    if size < TRAILER_LEN {
        return Err(format!(
            "file of {size} bytes is shorter than the {TRAILER_LEN}-byte trailer"
        ));
    }
    let map = Mapped::map(&file, size).map_err(|e| format!("cannot mmap: {e}"))?;
    let bytes = map.bytes();
    let (body, trailer) = bytes.split_at(size - TRAILER_LEN);
    if trailer[0..8] != SNAP_MAGIC {
        return Err(format!(
            "bad trailer magic at byte offset {}",
            size - TRAILER_LEN
        ));
    }
    let mut u32b = [0u8; 4];
    let mut u64b = [0u8; 8];
    u32b.copy_from_slice(&trailer[8..12]);
    let version = u32::from_le_bytes(u32b);
    u32b.copy_from_slice(&trailer[12..16]);
    let crc = u32::from_le_bytes(u32b);
    u64b.copy_from_slice(&trailer[16..24]);
    let body_len = u64::from_le_bytes(u64b);
    if version != SNAP_VERSION {
        return Err(format!(
            "unsupported snapshot version {version}; this build reads {SNAP_VERSION}"
        ));
    }
    if body_len != body.len() as u64 {
        return Err(format!(
            "trailer says the archive is {body_len} bytes but the file holds {}",
            body.len()
        ));
    }
    if crc32c::crc32c(body) != crc {
        return Err("archive checksum mismatch".into());
    }
    // The mapping is page-aligned, so the archive root meets rkyv's alignment.
    let archived = rkyv::access::<ArchivedSnapshotData, rkyv::rancor::Error>(body)
        .map_err(|e| format!("archive failed validation: {e}"))?;
    f(archived)
}

/// The trailer that follows the archive `body` in a snapshot file.
pub(crate) fn trailer(body: &[u8]) -> [u8; TRAILER_LEN] {
    let mut trailer = [0u8; TRAILER_LEN];
    trailer[0..8].copy_from_slice(&SNAP_MAGIC);
    trailer[8..12].copy_from_slice(&SNAP_VERSION.to_le_bytes());
    trailer[12..16].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    trailer[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    trailer
}

fn load_file(path: &Path, zxid: u64) -> Result<SnapshotData, String> {
    let snap = with_archive(path, |archived| {
        rkyv::deserialize::<SnapshotData, rkyv::rancor::Error>(archived)
            .map_err(|e| format!("archive failed to deserialise: {e}"))
    })?;
    if snap.last_zxid != zxid {
        return Err(format!(
            "file is named for zxid {zxid:#x} but holds zxid {:#x}",
            snap.last_zxid
        ));
    }
    Ok(snap)
}

/// Opens one snapshot file by mmap and validates it (trailer, CRC32C, rkyv checks)
/// without deserialising: what a restart pays before it can read the archive in
/// place. Returns the snapshot's last zxid and node count.
pub fn validate_file(path: &Path) -> Result<(u64, usize), WalError> {
    with_archive(path, |a| Ok((a.last_zxid.to_native(), a.nodes.len()))).map_err(|reason| {
        WalError::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason,
        }
    })
}

impl SnapshotStore {
    /// `dir` is `dataDir/snap`; it is created by the first `write`.
    pub fn new(dir: PathBuf) -> SnapshotStore {
        SnapshotStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `snap` durably as `snapshot.<16 hex digits of last_zxid>`:
    /// archive + trailer into a `.tmp` file, fsync, rename, fsync of the
    /// directory. Returns the bytes written. A snapshot already there for the
    /// same zxid is replaced atomically.
    pub fn write(&self, snap: &SnapshotData) -> Result<u64, WalError> {
        let body =
            rkyv::to_bytes::<rkyv::rancor::Error>(snap).map_err(|e| WalError::Serialize {
                last_zxid: snap.last_zxid,
                reason: e.to_string(),
            })?;
        let trailer = trailer(&body);

        fs::create_dir_all(&self.dir)
            .map_err(|e| WalError::io("create directory", &self.dir, e))?;
        let name = snapshot_name(snap.last_zxid);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| WalError::io("create", &tmp, e))?;
        f.write_all(&body)
            .map_err(|e| WalError::io("write", &tmp, e))?;
        f.write_all(&trailer)
            .map_err(|e| WalError::io("write", &tmp, e))?;
        // A snapshot that failed to sync is simply not published; the error
        // is not fatal the way a log fsync failure is.
        f.sync_all().map_err(|e| WalError::io("fsync", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| WalError::io("rename into place", &tmp, e))?;
        fsync_dir(&self.dir)?;
        Ok((body.len() + TRAILER_LEN) as u64)
    }

    /// The newest snapshot that passes the CRC and rkyv validation. A damaged
    /// one is logged (file, reason) and the next older is tried. `Ok(None)`
    /// when there are no snapshot files at all; [`WalError::NoValidSnapshot`]
    /// when there are some but none is valid (starting empty would lose data).
    pub fn load_latest(&self) -> Result<Option<SnapshotData>, WalError> {
        let snaps = list_snapshots(&self.dir)?;
        for (zxid, path) in &snaps {
            match load_file(path, *zxid) {
                Ok(snap) => return Ok(Some(snap)),
                Err(reason) => tracing::warn!(
                    file = %path.display(),
                    %reason,
                    "snapshot is damaged; trying the previous one"
                ),
            }
        }
        if snaps.is_empty() {
            Ok(None)
        } else {
            Err(WalError::NoValidSnapshot {
                dir: self.dir.clone(),
                tried: snaps.len(),
            })
        }
    }

    /// Like `load_latest`, but nothing is deserialised: the newest snapshot that passes
    /// the CRC32C and rkyv validation is handed to `f` in place, in its mmap. A restart
    /// builds its tree from it directly, paying a validation pass and one traversal.
    pub fn visit_latest<R>(
        &self,
        mut f: impl FnMut(&ArchivedSnapshotData) -> R,
    ) -> Result<Option<R>, WalError> {
        let snaps = list_snapshots(&self.dir)?;
        for (zxid, path) in &snaps {
            let res = with_archive(path, |a| {
                let got = a.last_zxid.to_native();
                if got != *zxid {
                    return Err(format!(
                        "file is named for zxid {zxid:#x} but holds zxid {got:#x}"
                    ));
                }
                Ok(f(a))
            });
            match res {
                Ok(r) => return Ok(Some(r)),
                Err(reason) => tracing::warn!(
                    file = %path.display(),
                    %reason,
                    "snapshot is damaged; trying the previous one"
                ),
            }
        }
        if snaps.is_empty() {
            Ok(None)
        } else {
            Err(WalError::NoValidSnapshot {
                dir: self.dir.clone(),
                tried: snaps.len(),
            })
        }
    }

    /// Keeps the newest `retain` snapshots (at least 3, so that two damaged
    /// ones can still be skipped) and deletes the rest. Returns the zxid of
    /// the oldest kept one: the log may be purged through it, since any kept
    /// snapshot can be replayed forward from the log.
    pub fn purge(&self, retain: usize) -> Result<Option<u64>, WalError> {
        let retain = retain.max(3);
        let snaps = list_snapshots(&self.dir)?;
        let doomed = snaps.get(retain..).unwrap_or(&[]);
        for (_, path) in doomed {
            fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
        }
        if !doomed.is_empty() {
            fsync_dir(&self.dir)?;
        }
        Ok(snaps[..retain.min(snaps.len())].last().map(|s| s.0))
    }
}

impl SnapshotData {
    /// The snapshot as an rkyv archive in memory (what a leader sends a follower that
    /// needs a SNAP).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WalError> {
        rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .map(|b| b.into_vec())
            .map_err(|e| WalError::Serialize {
                last_zxid: self.last_zxid,
                reason: e.to_string(),
            })
    }

    /// Validates and reads an archive made by [`SnapshotData::to_bytes`]. The bytes are
    /// copied into an aligned buffer first, so any slice will do.
    pub fn from_bytes(bytes: &[u8]) -> Result<SnapshotData, String> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<SnapshotData, rkyv::rancor::Error>(&aligned)
            .map_err(|e| format!("snapshot archive failed validation: {e}"))
    }
}

#[cfg(test)]
mod bytes_tests {
    use super::*;

    #[test]
    fn snapshot_bytes_round_trip_and_garbage_is_refused() {
        let snap = SnapshotData {
            last_zxid: 42,
            nodes: vec![SnapNode {
                path: "/a".into(),
                data: Some(vec![1, 2]),
                acl: vec![],
                czxid: 1,
                mzxid: 2,
                pzxid: 3,
                ctime: 4,
                mtime: 5,
                version: 6,
                cversion: 7,
                aversion: 8,
                ephemeral_owner: 0,
            }],
            sessions: vec![],
        };
        let b = snap.to_bytes().unwrap();
        assert_eq!(SnapshotData::from_bytes(&b).unwrap(), snap);
        assert!(SnapshotData::from_bytes(&b[..b.len() / 2]).is_err());
    }
}
