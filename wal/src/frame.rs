//! The log frame format and the pure (I/O-free) scanner that decides, for the
//! bytes of one segment, which frames are intact, where the log ends, and
//! whether damage is a torn tail (cut back) or corruption (refuse to start).
//!
//! Layout of one frame (all integers little-endian):
//!
//! ```text
//! 0   magic        b"KWAL"
//! 4   version      u16 = 1
//! 6   flags        u16 = 0 (reserved; non-zero is rejected)
//! 8   payload_len  u32
//! 12  payload_crc  u32   CRC32C(payload)
//! 16  first_zxid   u64
//! 24  last_zxid    u64
//! 32  reserved     u32 = 0
//! 36  header_crc   u32   CRC32C(bytes 0..36), so it covers the payload CRC too
//! 40  payload      payload_len bytes
//! ```
//!
//! The header has its own checksum so that the length field can be trusted
//! before the payload is read: a flipped bit in the length is then reported as
//! corruption instead of looking like a frame that runs past the end of the
//! file (which is what a genuinely torn write looks like).

use std::path::Path;

use crate::error::WalError;

pub(crate) const MAGIC: [u8; 4] = *b"KWAL";
pub(crate) const VERSION: u16 = 1;
pub(crate) const HEADER_LEN: usize = 40;

/// Unwritten space in a segment is always zero (preallocation writes zeros,
/// recovery and truncation write zeros over what they discard), and a device
/// persists a write at least one 512-byte sector at a time. So a frame torn by
/// a crash has at least one 512-byte-aligned piece that is still all zero,
/// while a frame damaged by a flipped bit usually has none.
const SECTOR: usize = 512;

/// Size on disk of a frame with `payload_len` bytes of payload.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// The 40 header bytes for a frame.
pub(crate) fn encode_header(first_zxid: u64, last_zxid: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    // 6..8 flags and 32..36 reserved stay zero.
    // The caller has checked that the payload fits in u32 (WalError::FrameTooLarge).
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[12..16].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    h[16..24].copy_from_slice(&first_zxid.to_le_bytes());
    h[24..32].copy_from_slice(&last_zxid.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..36]);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    h
}

/// One intact frame found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    /// Byte offset of the frame header in its segment.
    pub offset: u64,
    pub first_zxid: u64,
    pub last_zxid: u64,
    pub payload_len: u32,
}

impl FrameMeta {
    pub(crate) fn payload_range(&self) -> std::ops::Range<usize> {
        let start = self.offset as usize + HEADER_LEN;
        start..start + self.payload_len as usize
    }

    pub(crate) fn end(&self) -> u64 {
        self.offset + frame_len(self.payload_len as usize) as u64
    }
}

/// A torn tail found at the end of the newest segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Torn {
    /// One past the last non-zero byte after the log's end: `[end, dirty_end)`
    /// must be zeroed to restore the "unwritten space is zero" invariant.
    pub dirty_end: u64,
    pub reason: String,
}

/// What a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    pub frames: Vec<FrameMeta>,
    /// Offset just past the last intact frame: where the next append goes.
    pub end: u64,
    pub torn: Option<Torn>,
}

/// Parsed header fields; `None` from [`parse_header`] means the header
/// checksum failed (the bytes cannot be trusted at all).
struct Header {
    magic: [u8; 4],
    version: u16,
    flags: u16,
    payload_len: u32,
    payload_crc: u32,
    first_zxid: u64,
    last_zxid: u64,
    reserved: u32,
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// `h` must be exactly HEADER_LEN bytes (callers slice it so).
fn parse_header(h: &[u8]) -> Option<Header> {
    if crc32c::crc32c(&h[0..36]) != le_u32(h, 36) {
        return None;
    }
    Some(Header {
        magic: [h[0], h[1], h[2], h[3]],
        version: le_u16(h, 4),
        flags: le_u16(h, 6),
        payload_len: le_u32(h, 8),
        payload_crc: le_u32(h, 12),
        first_zxid: le_u64(h, 16),
        last_zxid: le_u64(h, 24),
        reserved: le_u32(h, 32),
    })
}

pub(crate) fn all_zero(b: &[u8]) -> bool {
    // OR-folding fixed-size chunks vectorises; a byte-wise `all` with early
    // exit does not, and recovery runs this over whole preallocated segments.
    b.chunks(4096)
        .all(|c| c.iter().fold(0u8, |acc, &x| acc | x) == 0)
}

/// One past the last non-zero byte of `b[from..]`, or `from` if all zero.
fn nonzero_end(b: &[u8], from: usize) -> usize {
    match b[from..].iter().rposition(|&x| x != 0) {
        Some(i) => from + i + 1,
        None => from,
    }
}

/// Whether some 512-byte-aligned piece of `b[start..end]` is all zero: the
/// signature of a sector that a crash kept from reaching the disk.
fn has_zero_sector_piece(b: &[u8], start: usize, end: usize) -> bool {
    let end = end.min(b.len());
    let mut piece = start;
    while piece < end {
        let piece_end = ((piece / SECTOR) + 1) * SECTOR;
        let piece_end = piece_end.min(end);
        if all_zero(&b[piece..piece_end]) {
            return true;
        }
        piece = piece_end;
    }
    false
}

/// Is there a complete frame with valid checksums starting at `at`?
fn intact_frame_at(b: &[u8], at: usize) -> bool {
    let Some(h) = b.get(at..at + HEADER_LEN).and_then(parse_header) else {
        return false;
    };
    let start = at + HEADER_LEN;
    let Some(payload) = b.get(start..start + h.payload_len as usize) else {
        return false;
    };
    h.magic == MAGIC && crc32c::crc32c(payload) == h.payload_crc
}

/// Offset of the first intact frame at or after `from`, searching every byte
/// position where the magic occurs. Used only on the failure path, to tell a
/// torn tail (nothing intact follows) from damage in the middle of the log.
fn find_intact_frame(b: &[u8], from: usize) -> Option<usize> {
    if from >= b.len() || all_zero(&b[from..]) {
        return None;
    }
    let mut at = from;
    while at + HEADER_LEN <= b.len() {
        let hit = b[at..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        let cand = at + hit;
        if intact_frame_at(b, cand) {
            return Some(cand);
        }
        at = cand + 1;
    }
    None
}

/// Why a walk over a segment's frames stopped at some offset. Recovery ([`scan`])
/// and repair ([`scan_prefix`]) judge the same stops differently: for recovery a
/// header that checks out but says something impossible is an error, for repair it
/// is where the intact prefix ends.
enum Stop {
    /// Fewer than a header's bytes left, all zero (`rest_zero`) or not.
    Short { rest_zero: bool },
    /// A header of zeros: the end of what was written, if all that follows is zero.
    ZeroHeader,
    /// The header's checksum fails; `torn`: part of it was never written.
    HeaderCrc { torn: bool },
    /// A checked header that is not of this format version (or not a frame).
    Format(Header),
    /// A checked header whose zxids do not follow the previous frame's.
    Order(Header),
    /// The payload runs past the end of the file.
    PastEnd(Header),
    /// The payload's checksum fails; `torn`: part of it was never written.
    PayloadCrc { torn: bool },
}

/// Walks the intact frames from the start of `bytes`, each following the last zxid
/// before it (`prev_last`, then the previous frame's): the frames, where the walk
/// stopped, and why.
fn walk(bytes: &[u8], prev_last: Option<u64>) -> (Vec<FrameMeta>, usize, Stop) {
    let mut frames = Vec::new();
    let mut last = prev_last;
    let mut pos = 0usize;
    let stop = loop {
        let rest = &bytes[pos..];
        let Some(raw) = rest.get(..HEADER_LEN) else {
            break Stop::Short {
                rest_zero: all_zero(rest),
            };
        };
        if all_zero(raw) {
            break Stop::ZeroHeader;
        }
        let Some(h) = parse_header(raw) else {
            break Stop::HeaderCrc {
                torn: has_zero_sector_piece(bytes, pos, pos + HEADER_LEN),
            };
        };
        if h.magic != MAGIC || h.version != VERSION || h.flags != 0 || h.reserved != 0 {
            break Stop::Format(h);
        }
        if h.first_zxid > h.last_zxid || last.is_some_and(|l| h.first_zxid <= l) {
            break Stop::Order(h);
        }
        let pstart = pos + HEADER_LEN;
        let pend = pstart + h.payload_len as usize;
        let Some(payload) = bytes.get(pstart..pend) else {
            break Stop::PastEnd(h);
        };
        if crc32c::crc32c(payload) != h.payload_crc {
            break Stop::PayloadCrc {
                torn: has_zero_sector_piece(bytes, pstart, pend),
            };
        }
        frames.push(FrameMeta {
            offset: pos as u64,
            first_zxid: h.first_zxid,
            last_zxid: h.last_zxid,
            payload_len: h.payload_len,
        });
        last = Some(h.last_zxid);
        pos = pend;
    };
    (frames, pos, stop)
}

/// Scans the bytes of one segment.
///
/// `prev_last` is the last zxid of the previous segment (ordering continues
/// across segments); `newest` says whether this is the segment being written,
/// the only one that may end in a torn write (a segment is synced before the
/// log rolls past it).
pub(crate) fn scan(
    bytes: &[u8],
    file: &Path,
    prev_last: Option<u64>,
    newest: bool,
) -> Result<Scan, WalError> {
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        file: file.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let (frames, pos, stop) = walk(bytes, prev_last);
    let prev = frames.last().map(|f| f.last_zxid).or(prev_last);
    // The reason the log stops at `pos` and whether that looks like a tear. A header
    // whose checksum holds was written by some program on purpose, so problems with
    // what it says are never a tear.
    let (reason, torn_like): (Option<String>, bool) = match stop {
        Stop::Short { rest_zero: true } | Stop::ZeroHeader => (None, true),
        Stop::Short { rest_zero: false } => {
            (Some("partial frame header at end of file".into()), true)
        }
        Stop::HeaderCrc { torn } => (Some("frame header checksum mismatch".into()), torn),
        Stop::Format(h) if h.magic != MAGIC => {
            return Err(corrupt(pos, format!("bad frame magic {:02x?}", h.magic)));
        }
        Stop::Format(h) => {
            return Err(corrupt(
                pos,
                format!(
                    "unsupported frame version {} (flags {:#x}, reserved {:#x}); this build reads \
                     version {VERSION}",
                    h.version, h.flags, h.reserved
                ),
            ));
        }
        Stop::Order(h) if h.first_zxid > h.last_zxid => {
            return Err(corrupt(
                pos,
                format!(
                    "frame's first zxid {:#x} is greater than its last zxid {:#x}",
                    h.first_zxid, h.last_zxid
                ),
            ));
        }
        Stop::Order(h) => {
            return Err(corrupt(
                pos,
                format!(
                    "frame zxids {:#x}..={:#x} do not follow the previous frame's last zxid \
                     {:#x}",
                    h.first_zxid,
                    h.last_zxid,
                    prev.unwrap_or(0)
                ),
            ));
        }
        Stop::PastEnd(h) => (
            Some(format!(
                "frame of {} payload bytes runs past the end of the file ({} bytes)",
                h.payload_len,
                bytes.len()
            )),
            true,
        ),
        Stop::PayloadCrc { torn } => (Some("payload checksum mismatch".into()), torn),
    };

    // The log stops at `pos`. Anything intact after it means the stop is
    // damage in the middle of the log, never a tear: a later frame can only
    // have been synced after this one.
    let search_from = if reason.is_some() { pos + 1 } else { pos };
    if let Some(q) = find_intact_frame(bytes, search_from) {
        let what = reason.unwrap_or_else(|| "zeroed frame header".into());
        return Err(corrupt(
            pos,
            format!("{what}, but an intact frame follows at byte offset {q}"),
        ));
    }
    let dirty_end = nonzero_end(bytes, pos);
    let reason = match reason {
        Some(r) => r,
        None if dirty_end == pos => {
            return Ok(Scan {
                frames,
                end: pos as u64,
                torn: None,
            })
        }
        None => "stray non-zero bytes after the last frame".into(),
    };
    if !newest {
        return Err(corrupt(
            pos,
            format!(
                "{reason}; only the newest segment can end in a torn write, this one was synced \
                 before the log moved on"
            ),
        ));
    }
    if !torn_like {
        return Err(corrupt(
            pos,
            format!(
                "{reason}; the frame is complete and has no zeroed sector, so this is damage, not \
                 a write torn by a crash"
            ),
        ));
    }
    Ok(Scan {
        frames,
        end: pos as u64,
        torn: Some(Torn {
            dirty_end: dirty_end as u64,
            reason,
        }),
    })
}

/// The intact frames at the start of a segment, for operator repair: unlike
/// [`scan`], never an error; it stops at the first byte position that is not
/// an intact frame following the previous one, and says why unless what
/// follows is all zero (a clean end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub frames: Vec<FrameMeta>,
    /// Just past the last intact frame.
    pub end: u64,
    /// Why the prefix stops at `end`, if the rest of the file is not zeros.
    pub damage: Option<String>,
}

pub(crate) fn scan_prefix(bytes: &[u8], prev_last: Option<u64>) -> Prefix {
    let (frames, pos, stop) = walk(bytes, prev_last);
    let prev = frames.last().map(|f| f.last_zxid).or(prev_last);
    let damage = match stop {
        _ if all_zero(&bytes[pos..]) => None,
        Stop::Short { .. } => Some("partial frame header at end of file".to_string()),
        Stop::ZeroHeader | Stop::HeaderCrc { .. } => {
            Some("frame header checksum mismatch".to_string())
        }
        Stop::Format(h) => Some(format!(
            "unexpected frame header (magic {:02x?}, version {}, flags {:#x})",
            h.magic, h.version, h.flags
        )),
        Stop::Order(h) => Some(format!(
            "frame zxids {:#x}..={:#x} do not follow the previous frame's last zxid {:#x}",
            h.first_zxid,
            h.last_zxid,
            prev.unwrap_or(0)
        )),
        Stop::PastEnd(h) => Some(format!(
            "frame of {} payload bytes runs past the end of the file",
            h.payload_len
        )),
        Stop::PayloadCrc { .. } => Some("payload checksum mismatch".to_string()),
    };
    Prefix {
        frames,
        end: pos as u64,
        damage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u64, last: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = encode_header(first, last, payload).to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn p() -> &'static Path {
        Path::new("log.test")
    }

    #[test]
    fn prefix_scan_stops_at_damage_without_failing() {
        let mut b = frame(1, 1, b"a");
        let second = b.len();
        b.extend(frame(2, 2, b"bb"));
        b.extend(frame(3, 3, b"ccc"));
        b.resize(4096, 0);
        let clean = scan_prefix(&b, None);
        assert_eq!((clean.frames.len(), clean.damage), (3, None));
        b[second + HEADER_LEN] ^= 1;
        let p = scan_prefix(&b, None);
        assert_eq!(p.frames.len(), 1);
        assert_eq!(p.end, second as u64);
        assert_eq!(p.damage.as_deref(), Some("payload checksum mismatch"));
        let p = scan_prefix(&b, Some(1));
        assert_eq!((p.frames.len(), p.end), (0, 0));
    }

    #[test]
    fn clean_scan_and_zero_remainder() {
        let mut b = frame(1, 1, b"a");
        b.extend(frame(2, 5, b"bcd"));
        let end = b.len() as u64;
        b.resize(8192, 0);
        let s = scan(&b, p(), None, false).expect("clean");
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.end, end);
        assert_eq!(s.torn, None);
        assert_eq!(s.frames[1].first_zxid, 2);
        assert_eq!(s.frames[1].last_zxid, 5);
    }

    #[test]
    fn ordering_across_segments_is_checked() {
        let b = frame(3, 3, b"x");
        let e = scan(&b, p(), Some(3), false).expect_err("out of order");
        assert!(matches!(e, WalError::Corrupt { offset: 0, .. }), "{e}");
    }

    #[test]
    fn flipped_bit_in_a_complete_last_frame_is_not_a_tear() {
        let mut b = frame(1, 1, &[7u8; 100]);
        let second = b.len();
        b.extend(frame(2, 2, &[9u8; 100]));
        let n = b.len();
        b[n - 10] ^= 0x04;
        b.resize(4096, 0);
        let e = scan(&b, p(), None, true).expect_err("bit flip");
        match e {
            WalError::Corrupt { offset, .. } => assert_eq!(offset, second as u64),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn zeroed_sector_in_last_frame_is_a_tear() {
        let mut b = frame(1, 1, &[7u8; 100]);
        let second = b.len();
        b.extend(frame(2, 2, &[9u8; 2000]));
        // The sector holding bytes 1024..1536 never reached the disk.
        b[1024..1536].fill(0);
        b.resize(8192, 0);
        let s = scan(&b, p(), None, true).expect("torn");
        assert_eq!(s.frames.len(), 1);
        assert_eq!(s.end, second as u64);
        let torn = s.torn.expect("torn");
        assert_eq!(torn.dirty_end, (second + HEADER_LEN + 2000) as u64);
    }
}
