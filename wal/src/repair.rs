//! Operator tools on a log directory (`keel wal check`, `keel wal truncate`):
//! a read-only report per segment, the intact prefix of a damaged log, and
//! truncation after a zxid that also works on a log `open` refuses.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::WalError;
use crate::frame::{self, Prefix};
use crate::fsio::{fsync_dir, open_rw, sync_data, write_zeros, DirLock};
use crate::log::{list_dir, read_file, scan_dir, IoMode, Log, LogConfig, LogOptions};
use crate::Backend;

/// One segment as [`inspect_dir`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    /// The zxid in the file name.
    pub base_zxid: u64,
    pub frames: usize,
    /// First and last zxid of its intact frames; `None` without frames.
    pub zxids: Option<(u64, u64)>,
    /// Bytes holding intact frames (from offset 0).
    pub data_bytes: u64,
    /// File size (preallocated segments are larger than their data).
    pub file_bytes: u64,
    /// Bytes of torn tail `open` would zero (newest segment only).
    pub torn_bytes: u64,
}

/// Every segment of `log_dir`, checked exactly as [`Log::open`] checks them,
/// without modifying anything or taking the lock. Corruption is the same
/// [`WalError::Corrupt`] (file and byte offset) `open` would return.
pub fn inspect_dir(log_dir: impl AsRef<Path>) -> Result<Vec<SegmentInfo>, WalError> {
    let mut out = Vec::new();
    for (seg, scan) in scan_dir(log_dir.as_ref())? {
        let file_bytes = fs::metadata(&seg.path)
            .map_err(|e| WalError::io("stat", &seg.path, e))?
            .len();
        out.push(SegmentInfo {
            zxids: match (scan.frames.first(), scan.frames.last()) {
                (Some(a), Some(b)) => Some((a.first_zxid, b.last_zxid)),
                _ => None,
            },
            base_zxid: seg.base,
            frames: seg.frames,
            data_bytes: seg.end,
            file_bytes,
            torn_bytes: scan.torn.map_or(0, |t| t.dirty_end - scan.end),
            path: seg.path,
        });
    }
    Ok(out)
}

/// Where a damaged log stops being intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub file: PathBuf,
    pub offset: u64,
    pub reason: String,
}

/// The intact frames a log starts with, up to its first damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntactPrefix {
    pub frames: usize,
    /// Last zxid of the last intact frame; 0 if none.
    pub last_zxid: u64,
    /// `None` if the whole log is intact (a torn tail counts as damage here:
    /// see [`inspect_dir`] for the verdict `open` gives).
    pub damage: Option<Damage>,
}

/// One segment walked leniently.
struct Walked {
    path: PathBuf,
    prefix: Prefix,
    /// One past the last non-zero byte of the file.
    nonzero_end: u64,
}

/// Walks the segments in order, keeping intact frames, and stops after the
/// first segment with damage (later segments cannot be trusted to continue
/// the log). Returns the walked segments and every segment file.
fn walk(dir: &Path) -> Result<(Vec<Walked>, Vec<PathBuf>), WalError> {
    let segs = list_dir(dir)?.segments;
    let all: Vec<PathBuf> = segs.iter().map(|(_, p)| p.clone()).collect();
    let mut walked = Vec::new();
    let mut prev_last = None;
    let count = segs.len();
    for (i, (base, path)) in segs.into_iter().enumerate() {
        let bytes = read_file(&path)?;
        let mut prefix = frame::scan_prefix(&bytes, prev_last);
        if let Some(f) = prefix.frames.first().filter(|f| f.first_zxid != base) {
            prefix = Prefix {
                damage: Some(format!(
                    "segment is named for zxid {base:#x} but its first frame starts at {:#x}",
                    f.first_zxid
                )),
                frames: Vec::new(),
                end: 0,
            };
        } else if prefix.frames.is_empty() && prefix.damage.is_none() && i + 1 < count {
            prefix.damage = Some("a segment older than the newest holds no intact frame".into());
        }
        let nonzero_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1) as u64;
        if let Some(f) = prefix.frames.last() {
            prev_last = Some(f.last_zxid);
        }
        let stop = prefix.damage.is_some();
        walked.push(Walked {
            path,
            prefix,
            nonzero_end,
        });
        if stop {
            break;
        }
    }
    Ok((walked, all))
}

fn damage_of(walked: &[Walked]) -> Option<Damage> {
    walked.last().and_then(|w| {
        w.prefix.damage.as_ref().map(|reason| Damage {
            file: w.path.clone(),
            offset: w.prefix.end,
            reason: reason.clone(),
        })
    })
}

/// The intact prefix of `log_dir` and where it ends, read-only and without
/// the lock: what `keel wal truncate --after` can keep.
pub fn intact_prefix(log_dir: impl AsRef<Path>) -> Result<IntactPrefix, WalError> {
    let (walked, _) = walk(log_dir.as_ref())?;
    let frames = walked.iter().map(|w| w.prefix.frames.len()).sum();
    let last_zxid = walked
        .iter()
        .rev()
        .find_map(|w| w.prefix.frames.last().map(|f| f.last_zxid))
        .unwrap_or(0);
    Ok(IntactPrefix {
        frames,
        last_zxid,
        damage: damage_of(&walked),
    })
}

/// What [`truncate_dir_after`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Truncation {
    /// Frames left in the log, and the last zxid among them (0 if none).
    pub kept_frames: usize,
    pub last_zxid: u64,
    /// Intact frames removed (frames past damage are not counted: they
    /// could not be read as part of the log).
    pub removed_frames: usize,
    pub removed_segments: usize,
    /// The damage that was cut away, if the log was damaged.
    pub damage_removed: Option<Damage>,
}

/// Operator-requested repair: removes every frame with `first_zxid > zxid`
/// from the log in `log_dir`, durably, taking the directory lock (so never
/// under a running server).
///
/// On a log that [`Log::open`] accepts this is [`Log::truncate_after`] (a
/// torn tail is cut as `open` cuts it). On a damaged log it keeps the intact
/// frames up to `zxid` and removes the damage and everything after it,
/// provided `zxid` is not beyond the damage ([`WalError::BeyondDamage`]
/// names the last intact zxid then). A frame spanning `zxid` is
/// [`WalError::Straddle`]. Nothing is changed when an error is returned,
/// except when the error comes from the disk part-way, which leaves a
/// prefix of the log.
pub fn truncate_dir_after(log_dir: impl AsRef<Path>, zxid: u64) -> Result<Truncation, WalError> {
    let dir = log_dir.as_ref();
    if !dir.is_dir() {
        return Err(WalError::io(
            "open log directory",
            dir,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let cfg = LogConfig {
        dir: dir.to_path_buf(),
        // Keep the existing files' size: segments are not re-preallocated.
        preallocate: false,
        ..LogConfig::default()
    };
    let opts = LogOptions {
        io_mode: IoMode::Buffered,
        backend: Backend::Pwrite,
        ..LogOptions::default()
    };
    match Log::open_with(cfg, opts) {
        Ok((mut log, rec)) => {
            let before = rec.frames;
            let segments_before = rec.segments;
            log.truncate_after(zxid)?;
            let after = check_counts(dir)?;
            drop(log);
            Ok(Truncation {
                kept_frames: after.0,
                last_zxid: after.1,
                removed_frames: before - after.0,
                removed_segments: segments_before.saturating_sub(after.2),
                damage_removed: None,
            })
        }
        Err(WalError::Corrupt { .. }) => truncate_damaged(dir, zxid),
        Err(e) => Err(e),
    }
}

/// (frames, last zxid, segments) of a healthy log.
fn check_counts(dir: &Path) -> Result<(usize, u64, usize), WalError> {
    let r = crate::log::check_dir(dir)?;
    Ok((r.frames, r.last_zxid, r.segments))
}

fn truncate_damaged(dir: &Path, zxid: u64) -> Result<Truncation, WalError> {
    let _lock = DirLock::acquire(dir)?;
    let (walked, all) = walk(dir)?;
    let damage = damage_of(&walked);
    let last_intact = walked
        .iter()
        .rev()
        .find_map(|w| w.prefix.frames.last().map(|f| f.last_zxid))
        .unwrap_or(0);
    if let Some(d) = &damage {
        if zxid > last_intact {
            return Err(WalError::BeyondDamage {
                zxid,
                last_intact,
                file: d.file.clone(),
                offset: d.offset,
                reason: d.reason.clone(),
            });
        }
    }
    // Plan: the last walked segment keeping a frame, and where it is cut.
    let mut keep_seg = None;
    let (mut kept, mut removed) = (0, 0);
    for (i, w) in walked.iter().enumerate() {
        for f in &w.prefix.frames {
            if f.first_zxid > zxid {
                removed += 1;
                continue;
            }
            if f.last_zxid > zxid {
                return Err(WalError::Straddle {
                    zxid,
                    first_zxid: f.first_zxid,
                    last_zxid: f.last_zxid,
                    file: w.path.clone(),
                    offset: f.offset,
                });
            }
            kept += 1;
            keep_seg = Some((i, f.end(), f.last_zxid));
        }
    }
    // Later segments go newest first, each removal made durable before the
    // next, so a crash part-way leaves a prefix of the log.
    let keep_files = keep_seg.map_or(0, |(i, _, _)| i + 1);
    let mut removed_segments = 0;
    for path in all.iter().skip(keep_files).rev() {
        fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
        fsync_dir(dir)?;
        removed_segments += 1;
    }
    if let Some((i, cut, _)) = keep_seg {
        let w = &walked[i];
        if w.nonzero_end > cut {
            let f = open_rw(&w.path, false).map_err(|e| WalError::io("open", &w.path, e))?;
            write_zeros(&f, &w.path, cut, w.nonzero_end)?;
            sync_data(&f, &w.path)?;
        }
    }
    tracing::warn!(
        dir = %dir.display(),
        zxid,
        kept_frames = kept,
        removed_frames = removed,
        removed_segments,
        "WAL truncated on operator request"
    );
    Ok(Truncation {
        kept_frames: kept,
        last_zxid: keep_seg.map_or(0, |(_, _, z)| z),
        removed_frames: removed,
        removed_segments,
        damage_removed: damage,
    })
}
