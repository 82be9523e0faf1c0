//! One server's simulated disk: the write-ahead log, the snapshot and the two epochs.
//!
//! It models what a crash leaves behind, not how bytes are laid out in files:
//! - `Persist` appends a frame *pending*; the write completes (becomes durable) later,
//!   in the order written, when the simulator's clock reaches its completion time
//!   (slow disks complete late). Only then is `Durable` reported to the replica.
//! - `TruncateLog`, `InstallSnapshot` and `SaveEpochs` are synchronous and durable.
//! - A crash drops every pending write. With a torn write, part of the first pending
//!   frame's bytes (a random prefix, sometimes with a hole of zeros) reaches the disk.
//! - Recovery serialises the durable frames in the WAL's frame format (40-byte header
//!   with CRC32C of header and payload, see `keel_wal`'s crate doc), appends the torn
//!   bytes and parses the image back the way the WAL does: a frame that is cut short or
//!   fails its CRC at the tail is a torn write and is cut away; zxids must increase.
//!   A torn write that happened to reach the disk whole is a whole frame and is kept,
//!   as on a real disk.
//!
//! The simulator may also compact: store a snapshot of the node's committed state once
//! the log is durable through it, and drop the log frames it covers (as production's
//! snapshot thread and purge do).

use std::collections::VecDeque;
use std::sync::Arc;

use keel_engine::snapshot::SnapshotData;
use keel_engine::txn::{decode_batch, TxnRecord};
use keel_engine::zab::{Epochs, LogFrame};

use crate::rng::Rng;

/// A log frame with its transactions decoded once (for the checker's look-ups).
#[derive(Debug, Clone)]
pub struct StoredFrame {
    pub frame: LogFrame,
    pub records: Arc<Vec<TxnRecord>>,
}

impl StoredFrame {
    pub fn new(frame: LogFrame) -> StoredFrame {
        let records = Arc::new(decode_batch(&frame.payload).unwrap_or_default());
        StoredFrame { frame, records }
    }

    fn find(&self, zxid: i64) -> Option<&TxnRecord> {
        self.records
            .binary_search_by_key(&zxid, |r| r.zxid)
            .ok()
            .map(|i| &self.records[i])
    }
}

/// What a restart finds on the disk.
pub struct Recovered {
    pub snapshot: Option<Arc<SnapshotData>>,
    pub epochs: Epochs,
    /// Log frames after the snapshot, in zxid order.
    pub frames: Vec<LogFrame>,
    /// Bytes of torn tail that recovery cut away.
    pub cut_bytes: usize,
}

#[derive(Debug, Default)]
pub struct Disk {
    durable: Vec<StoredFrame>,
    pending: VecDeque<(u64, StoredFrame)>,
    next_write: u64,
    /// Completion time of the newest pending write: writes complete in order.
    last_done_at: i64,
    snapshot: Option<Arc<SnapshotData>>,
    epochs: Epochs,
    /// Bytes of a torn write the last crash left after the durable frames.
    torn: Vec<u8>,
    /// The last committed membership the server reported (`ReplicaOutput::Membership
    /// { committed: true }`): its version and `/zookeeper/config` text.
    membership: Option<(i64, String)>,
}

pub const HEADER_LEN: usize = 40;
const MAGIC: &[u8; 4] = b"KWAL";

/// A frame in the WAL's on-disk format (see `keel_wal`): little-endian header with the
/// CRC32C of the payload and of the header itself, then the payload.
pub fn encode_frame(f: &LogFrame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(f.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&f.payload).to_le_bytes());
    out.extend_from_slice(&(f.first as u64).to_le_bytes());
    out.extend_from_slice(&(f.last as u64).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let hcrc = crc32c::crc32c(&out[start..start + 36]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&f.payload);
}

/// Parses a log image: the whole frames, and where the intact prefix ends. Anything
/// after the intact prefix is a torn tail (the simulator only ever tears the tail).
/// Zxids going backwards is corruption, an error.
pub fn parse_image(img: &[u8]) -> Result<(Vec<LogFrame>, usize), String> {
    let mut frames: Vec<LogFrame> = Vec::new();
    let mut off = 0;
    loop {
        let rest = &img[off..];
        if rest.len() < HEADER_LEN {
            break;
        }
        if &rest[0..4] != MAGIC || crc32c::crc32c(&rest[..36]) != u32_at(rest, 36) {
            break;
        }
        let len = u32_at(rest, 8) as usize;
        if rest.len() < HEADER_LEN + len {
            break;
        }
        let payload = &rest[HEADER_LEN..HEADER_LEN + len];
        if crc32c::crc32c(payload) != u32_at(rest, 12) {
            break;
        }
        let first = u64_at(rest, 16) as i64;
        let last = u64_at(rest, 24) as i64;
        if first > last || frames.last().is_some_and(|p| first <= p.last) {
            return Err(format!(
                "corrupt log: frame {first:#x}..{last:#x} at byte {off} does not follow the previous one"
            ));
        }
        frames.push(LogFrame {
            first,
            last,
            payload: Arc::new(payload.to_vec()),
        });
        off += HEADER_LEN + len;
    }
    Ok((frames, off))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl Disk {
    pub fn new() -> Disk {
        Disk::default()
    }

    /// Appends a frame; returns the write's id and when it completes (in order after
    /// every earlier pending write, `latency_ms` from now at the earliest).
    pub fn append(&mut self, frame: LogFrame, now_ms: i64, latency_ms: i64) -> (u64, i64) {
        self.next_write += 1;
        let id = self.next_write;
        let at = (now_ms + latency_ms).max(self.last_done_at);
        self.last_done_at = at;
        self.pending.push_back((id, StoredFrame::new(frame)));
        (id, at)
    }

    /// Write `id` completed: it and every earlier pending write are durable. Returns
    /// the zxid to report as `Durable` if anything became durable.
    pub fn complete(&mut self, id: u64) -> Option<i64> {
        let mut changed = false;
        while let Some((wid, _)) = self.pending.front() {
            if *wid > id {
                break;
            }
            let (_, f) = self.pending.pop_front().unwrap();
            self.durable.push(f);
            changed = true;
        }
        if changed {
            Some(self.durable_log_zxid())
        } else {
            None
        }
    }

    /// The last zxid of the durable log (0 if empty).
    pub fn durable_log_zxid(&self) -> i64 {
        self.durable.last().map(|f| f.frame.last).unwrap_or(0)
    }

    /// Everything through this zxid is durable (the log, or the snapshot if the log is
    /// empty).
    pub fn durable_through(&self) -> i64 {
        let s = self.snapshot_zxid();
        self.durable_log_zxid().max(s)
    }

    pub fn snapshot_zxid(&self) -> i64 {
        self.snapshot
            .as_ref()
            .map(|s| s.last_zxid as i64)
            .unwrap_or(0)
    }

    pub fn snapshot(&self) -> Option<&Arc<SnapshotData>> {
        self.snapshot.as_ref()
    }

    /// When the last pending write completes, if any is pending.
    pub fn pending_until(&self) -> Option<i64> {
        (!self.pending.is_empty()).then_some(self.last_done_at)
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn epochs(&self) -> Epochs {
        self.epochs
    }

    /// `TruncateLog { after }`: drops every frame (durable or pending) whose first zxid
    /// is after `after`.
    pub fn truncate_after(&mut self, after: i64) {
        self.durable.retain(|f| f.frame.first <= after);
        self.pending.retain(|(_, f)| f.frame.first <= after);
    }

    /// `InstallSnapshot`: the snapshot replaces ours and the log is emptied.
    pub fn install_snapshot(&mut self, data: SnapshotData) {
        self.snapshot = Some(Arc::new(data));
        self.durable.clear();
        self.pending.clear();
    }

    pub fn save_epochs(&mut self, e: Epochs) {
        self.epochs = e;
    }

    /// Saves the committed membership (synchronous and durable, like the epochs).
    pub fn save_membership(&mut self, version: i64, text: String) {
        self.membership = Some((version, text));
    }

    /// Sabotage (tests only): the saved membership is gone.
    pub fn forget_membership(&mut self) {
        self.membership = None;
    }

    /// The saved membership: (version, text).
    pub fn membership(&self) -> Option<&(i64, String)> {
        self.membership.as_ref()
    }

    /// The simulator's own compaction: `snap` (committed state) becomes the snapshot and
    /// the frames it wholly covers are dropped. Only call once the log is durable
    /// through it.
    pub fn compact(&mut self, snap: SnapshotData) {
        let z = snap.last_zxid as i64;
        if z <= self.snapshot_zxid() {
            return;
        }
        self.snapshot = Some(Arc::new(snap));
        self.durable.retain(|f| f.frame.last > z);
    }

    /// Sabotage (to test the checks, never the default): a disk that acknowledged its
    /// last `n` frames as durable but loses them at a crash.
    pub fn lose_durable_tail(&mut self, n: usize) {
        let keep = self.durable.len().saturating_sub(n);
        self.durable.truncate(keep);
    }

    /// The process dies: pending writes are lost; with `torn`, part of the first one
    /// reaches the disk.
    pub fn crash(&mut self, rng: &mut Rng, torn: bool) {
        if torn {
            if let Some((_, f)) = self.pending.front() {
                let mut bytes = Vec::new();
                encode_frame(&f.frame, &mut bytes);
                let cut = rng.range(0, bytes.len() as i64 + 1) as usize;
                bytes.truncate(cut);
                if cut > 0 && rng.chance(0.5) {
                    // A sector in the middle never made it.
                    let a = rng.index(cut);
                    let b = (a + 512).min(cut);
                    bytes[a..b].iter_mut().for_each(|x| *x = 0);
                }
                self.torn = bytes;
            }
        }
        self.pending.clear();
        self.last_done_at = 0;
    }

    /// What a restart reads: the log image is parsed like the WAL does at open, and a
    /// torn tail is cut.
    pub fn recover(&mut self) -> Result<Recovered, String> {
        let mut img = Vec::new();
        for f in &self.durable {
            encode_frame(&f.frame, &mut img);
        }
        let whole = img.len();
        img.extend_from_slice(&self.torn);
        let (frames, end) = parse_image(&img)?;
        if end < whole {
            return Err(format!(
                "log damaged before its tail: intact prefix ends at byte {end} of {whole} durable bytes"
            ));
        }
        let cut_bytes = img.len() - end;
        if frames.len() != self.durable.len() {
            // The torn write reached the disk whole: it is a frame like any other.
            for f in &frames[self.durable.len()..] {
                self.durable.push(StoredFrame::new(f.clone()));
            }
        }
        self.torn.clear();
        let s = self.snapshot_zxid();
        Ok(Recovered {
            snapshot: self.snapshot.clone(),
            epochs: self.epochs,
            frames: frames.into_iter().filter(|f| f.last > s).collect(),
            cut_bytes,
        })
    }

    /// The record with this zxid in the log, durable or (with `pending`) not yet.
    pub fn find(&self, zxid: i64, pending: bool) -> Option<&TxnRecord> {
        let i = self.durable.partition_point(|f| f.frame.last < zxid);
        if let Some(f) = self.durable.get(i) {
            if f.frame.first <= zxid {
                return f.find(zxid);
            }
        }
        if pending {
            for (_, f) in &self.pending {
                if f.frame.first <= zxid && zxid <= f.frame.last {
                    return f.find(zxid);
                }
            }
        }
        None
    }

    /// Whether `rec` is durable here: in the durable log with the same content, or
    /// covered by the snapshot.
    pub fn durably_holds(&self, rec: &TxnRecord) -> bool {
        if rec.zxid <= self.snapshot_zxid() {
            return true;
        }
        self.find(rec.zxid, false).is_some_and(|r| r == rec)
    }

    /// Number of durable frames (for traces).
    pub fn durable_frames(&self) -> usize {
        self.durable.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::txn::{encode_batch, Txn};

    fn frame(first: i64, last: i64) -> LogFrame {
        let recs: Vec<TxnRecord> = (first..=last)
            .map(|z| TxnRecord {
                zxid: z,
                time: 0,
                session: 1,
                cxid: z as i32,
                txn: Txn::SetData {
                    path: "/k".into(),
                    data: Some(format!("v{z}").into_bytes()),
                    version: z as i32,
                },
            })
            .collect();
        LogFrame {
            first,
            last,
            payload: Arc::new(encode_batch(&recs)),
        }
    }

    #[test]
    fn pending_writes_are_lost_at_crash_and_durable_ones_kept() {
        let mut d = Disk::new();
        let (a, _) = d.append(frame(1, 2), 0, 5);
        let (_b, _) = d.append(frame(3, 3), 0, 5);
        assert_eq!(d.complete(a), Some(2));
        let mut rng = Rng::new(1);
        d.crash(&mut rng, false);
        let r = d.recover().unwrap();
        assert_eq!(r.frames.len(), 1);
        assert_eq!(r.frames[0].last, 2);
        assert!(d.find(3, true).is_none());
        assert_eq!(d.find(2, false).unwrap().zxid, 2);
    }

    #[test]
    fn writes_complete_in_order() {
        let mut d = Disk::new();
        let (_, t1) = d.append(frame(1, 1), 0, 100);
        let (_, t2) = d.append(frame(2, 2), 10, 1);
        assert!(t2 >= t1);
    }

    #[test]
    fn torn_tail_is_cut_or_kept_whole_never_half() {
        for seed in 0..300 {
            let mut d = Disk::new();
            let (a, _) = d.append(frame(1, 3), 0, 1);
            d.complete(a);
            d.append(frame(4, 6), 0, 1);
            let mut rng = Rng::new(seed);
            d.crash(&mut rng, true);
            let r = d.recover().unwrap();
            let last = r.frames.last().unwrap().last;
            assert!(last == 3 || last == 6, "seed {seed}: {last}");
            if last == 6 {
                assert_eq!(r.frames[1], frame(4, 6));
                assert_eq!(r.cut_bytes, 0);
            }
            // A second recovery finds the same.
            let again = d.recover().unwrap();
            assert_eq!(again.frames, r.frames);
        }
    }

    #[test]
    fn truncate_snapshot_and_compaction() {
        let mut d = Disk::new();
        for (i, (f, l)) in [(1, 2), (3, 4), (5, 6)].into_iter().enumerate() {
            let (id, _) = d.append(frame(f, l), i as i64, 1);
            d.complete(id);
        }
        d.truncate_after(4);
        assert_eq!(d.durable_log_zxid(), 4);
        d.compact(SnapshotData {
            last_zxid: 2,
            nodes: vec![],
            sessions: vec![],
        });
        let r = d.recover().unwrap();
        assert_eq!(r.frames.len(), 1);
        assert_eq!(r.frames[0].first, 3);
        let rec = d.find(4, false).unwrap().clone();
        assert!(d.durably_holds(&rec));
        d.install_snapshot(SnapshotData {
            last_zxid: 9,
            nodes: vec![],
            sessions: vec![],
        });
        assert_eq!(d.durable_through(), 9);
        assert!(d.recover().unwrap().frames.is_empty());
    }

    #[test]
    fn image_round_trips_and_damage_in_the_middle_is_an_error_or_a_cut() {
        let mut img = Vec::new();
        encode_frame(&frame(1, 1), &mut img);
        encode_frame(&frame(2, 2), &mut img);
        let (f, end) = parse_image(&img).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(end, img.len());
        let mut bad = img.clone();
        bad[HEADER_LEN + 3] ^= 1; // payload of the first frame
        let (f, end) = parse_image(&bad).unwrap();
        assert!(f.is_empty());
        assert_eq!(end, 0);
    }
}
