//! Pure entry points into the on-disk decoders for the fuzzers in `fuzz/` and for
//! tests: the segment scanner recovery runs over a log file's bytes, and the byte
//! layouts the fuzzers need to build well-formed inputs. Not a stable API (hidden
//! from the docs); nothing in the server calls it.

use std::ops::Range;
use std::path::Path;

use crate::error::WalError;
use crate::frame;

/// One intact frame found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFrame {
    pub offset: u64,
    pub first_zxid: u64,
    pub last_zxid: u64,
    /// Where its payload lies in the segment's bytes.
    pub payload: Range<usize>,
}

/// What recovery makes of one segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    pub frames: Vec<ScannedFrame>,
    /// Just past the last intact frame.
    pub end: u64,
    /// `Some(dirty_end)` when the segment ends in a torn write to be zeroed up to there.
    pub torn: Option<u64>,
}

fn frames(metas: &[frame::FrameMeta]) -> Vec<ScannedFrame> {
    metas
        .iter()
        .map(|m| ScannedFrame {
            offset: m.offset,
            first_zxid: m.first_zxid,
            last_zxid: m.last_zxid,
            payload: m.payload_range(),
        })
        .collect()
}

/// The scan `Log::open` and `check_dir` run over each segment file (`prev_last`: the
/// previous segment's last zxid; `newest`: whether it is the segment being written).
pub fn scan_segment(
    bytes: &[u8],
    prev_last: Option<u64>,
    newest: bool,
) -> Result<SegmentScan, WalError> {
    let s = frame::scan(bytes, Path::new("log.fuzz"), prev_last, newest)?;
    Ok(SegmentScan {
        frames: frames(&s.frames),
        end: s.end,
        torn: s.torn.map(|t| t.dirty_end),
    })
}

/// The lenient scan `keel wal check` / `keel wal truncate` run: the intact prefix, its
/// end, and why it stops (if not at zeros).
pub fn scan_segment_prefix(
    bytes: &[u8],
    prev_last: Option<u64>,
) -> (Vec<ScannedFrame>, u64, Option<String>) {
    let p = frame::scan_prefix(bytes, prev_last);
    (frames(&p.frames), p.end, p.damage)
}

/// Length of a frame's header.
pub const FRAME_HEADER_LEN: usize = frame::HEADER_LEN;

/// One whole log frame (header + payload) as the log writes it.
pub fn encode_frame(first_zxid: u64, last_zxid: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = frame::encode_header(first_zxid, last_zxid, payload).to_vec();
    v.extend_from_slice(payload);
    v
}

/// Rewrites the checksums of the frames laid back to back in `bytes` (as far as their
/// length fields allow), so that a fuzzer's mutations reach the checks behind them.
pub fn fix_frame_checksums(bytes: &mut [u8]) {
    let h = frame::HEADER_LEN;
    let mut pos = 0usize;
    while pos + h <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let end = (pos + h).saturating_add(len);
        let whole = end <= bytes.len();
        if whole {
            let crc = crc32c::crc32c(&bytes[pos + h..end]);
            bytes[pos + 12..pos + 16].copy_from_slice(&crc.to_le_bytes());
        }
        let crc = crc32c::crc32c(&bytes[pos..pos + 36]);
        bytes[pos + 36..pos + 40].copy_from_slice(&crc.to_le_bytes());
        if !whole {
            break;
        }
        pos = end;
    }
}

/// The 24-byte trailer that follows a snapshot `body` of the given format in its file.
pub fn snapshot_trailer(body: &[u8], format: u32) -> [u8; 24] {
    crate::snapshot::trailer(body, format)
}
