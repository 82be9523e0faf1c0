//! Snapshot files: one opaque body per file (the engine's archive of the tree and
//! sessions at one zxid) followed by a checksummed trailer, in `dataDir/snap`.
//!
//! This module knows nothing of what a body holds: the engine owns the schema
//! (`keel_engine::snapshot`) and hands this store bytes tagged with the version of their
//! format. Each file is named for the zxid its body is consistent at; the trailer
//! carries the format version, a CRC32C of the body and its length.
//!
//! Loading maps the file with `mmap` (read-only, private) rather than reading it: the
//! CRC pass and the reader's own validation then read the page cache directly, without
//! a second copy of a file that can be hundreds of megabytes, and a reader can build
//! its state from the mapped body in place. The mapping is page-aligned, which an
//! archive read in place needs.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::WalError;
use crate::fsio::fsync_dir;

const SNAP_MAGIC: [u8; 8] = *b"KEELSNAP";
const TRAILER_LEN: usize = 24;

/// Reads and writes the snapshot files of one directory.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// The version of the bodies' format: written into each trailer, required on load.
    format: u32,
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

/// Maps a snapshot file, checks its trailer (magic, `format`, length) and CRC32C, then
/// hands the body to `f`, which validates it in turn. Nothing is copied before `f`.
fn with_body<R>(
    path: &Path,
    format: u32,
    f: impl FnOnce(&[u8]) -> Result<R, String>,
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
    if version != format {
        return Err(format!(
            "unsupported snapshot version {version}; this build reads {format}"
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
    f(body)
}

/// The trailer that follows `body` in a snapshot file of the given format.
pub(crate) fn trailer(body: &[u8], format: u32) -> [u8; TRAILER_LEN] {
    let mut trailer = [0u8; TRAILER_LEN];
    trailer[0..8].copy_from_slice(&SNAP_MAGIC);
    trailer[8..12].copy_from_slice(&format.to_le_bytes());
    trailer[12..16].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    trailer[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    trailer
}

/// Opens one snapshot file by mmap, checks its trailer and checksum and hands the body
/// to `f` (which validates it as the reader of `format` does): what a restart pays
/// before it can read the body in place. The reason `f` gives is reported as damage.
pub fn with_file<R>(
    path: &Path,
    format: u32,
    f: impl FnOnce(&[u8]) -> Result<R, String>,
) -> Result<R, WalError> {
    with_body(path, format, f).map_err(|reason| WalError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        reason,
    })
}

impl SnapshotStore {
    /// `dir` is `dataDir/snap`; it is created by the first `write`. `format`: the
    /// version of the bodies this store writes and accepts.
    pub fn new(dir: PathBuf, format: u32) -> SnapshotStore {
        SnapshotStore { dir, format }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `body`, consistent at `last_zxid`, durably as `snapshot.<16 hex digits of
    /// last_zxid>`: body + trailer into a `.tmp` file, fsync, rename, fsync of the
    /// directory. Returns the bytes written. A snapshot already there for the same
    /// zxid is replaced atomically.
    pub fn write(&self, last_zxid: u64, body: &[u8]) -> Result<u64, WalError> {
        let trailer = trailer(body, self.format);
        fs::create_dir_all(&self.dir)
            .map_err(|e| WalError::io("create directory", &self.dir, e))?;
        let name = snapshot_name(last_zxid);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| WalError::io("create", &tmp, e))?;
        f.write_all(body)
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

    /// Hands the newest snapshot whose trailer and checksum are good, and which `f`
    /// accepts, to `f`: its zxid (from the file name) and its body, in place in its
    /// mmap (page-aligned). A damaged one, or one `f` refuses, is logged (file, reason)
    /// and the next older is tried. `Ok(None)` when there are no snapshot files at all;
    /// [`WalError::NoValidSnapshot`] when there are some but none is valid (starting
    /// empty would lose data).
    pub fn visit_latest<R>(
        &self,
        mut f: impl FnMut(u64, &[u8]) -> Result<R, String>,
    ) -> Result<Option<R>, WalError> {
        let snaps = list_snapshots(&self.dir)?;
        for (zxid, path) in &snaps {
            match with_body(path, self.format, |body| f(*zxid, body)) {
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

    /// Removes every snapshot file newer than `zxid`, and any half-written one named
    /// past it, durably: a snapshot a leader sends replaces this server's state, so no
    /// newer one may be loaded at restart. Returns how many files went.
    pub fn remove_after(&self, zxid: u64) -> Result<usize, WalError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(WalError::io("list directory", &self.dir, e)),
        };
        let mut removed = 0;
        for entry in rd {
            let entry = entry.map_err(|e| WalError::io("list directory", &self.dir, e))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_prefix("snapshot.")) else {
                continue;
            };
            // `snapshot.<16 hex>` and its `.tmp`.
            let digits = hex.strip_suffix(".tmp").unwrap_or(hex);
            if digits.len() != 16 {
                continue;
            }
            if let Ok(z) = u64::from_str_radix(digits, 16) {
                if z > zxid {
                    let path = entry.path();
                    fs::remove_file(&path).map_err(|e| WalError::io("remove", &path, e))?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
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
