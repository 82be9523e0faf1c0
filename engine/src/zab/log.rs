//! The frames of a replica's log kept in memory, and the bounds that describe them: the
//! history a leader synchronises followers from (DIFF and TRUNC) and a member applies
//! from as commits arrive. The durable log itself is the driver's (`Persist`); this is
//! its recent tail, bounded by `history_txns` once applied.

use std::collections::VecDeque;
use std::sync::Arc;

use super::msg::LogFrame;

/// Frames after `base`, in zxid order.
///
/// Invariants: zxids strictly increase across `frames` (`first <= last` within a
/// frame, `first > previous last` between frames), every frame lies after `base`, and
/// `txns` is the number of transactions in `frames`.
#[derive(Debug, Default)]
pub struct MemLog {
    frames: VecDeque<LogFrame>,
    /// Transactions in `frames`, what the history budget counts.
    txns: usize,
    /// The zxid just before the first frame: a snapshot's, or the last of a frame
    /// forgotten because it was applied and past the budget.
    base: i64,
}

impl MemLog {
    /// A log holding nothing after `base`.
    pub fn new(base: i64) -> MemLog {
        MemLog {
            base,
            ..MemLog::default()
        }
    }

    /// A log after `base` holding those of `frames` (in zxid order) that end after it.
    pub fn restored(base: i64, frames: Vec<LogFrame>) -> MemLog {
        let mut log = MemLog::new(base);
        for f in frames {
            if f.last > log.last() {
                log.push(f);
            }
        }
        log
    }

    pub fn base(&self) -> i64 {
        self.base
    }

    /// The last zxid logged: the last frame's, or `base` when there is none.
    pub fn last(&self) -> i64 {
        self.frames.back().map_or(self.base, |f| f.last)
    }

    pub fn frames(&self) -> &VecDeque<LogFrame> {
        &self.frames
    }

    /// Appends a frame that follows the log (the caller has checked it does).
    pub fn push(&mut self, frame: LogFrame) {
        debug_assert!(frame.first > self.last() && frame.first <= frame.last);
        self.txns += frame_txns(&frame);
        self.frames.push_back(frame);
    }

    /// Drops every frame after `zxid`. `Err(())`, with nothing dropped, when `zxid`
    /// falls inside a frame.
    pub fn truncate_after(&mut self, zxid: i64) -> Result<(), ()> {
        if self.frames.iter().any(|f| f.first <= zxid && zxid < f.last) {
            return Err(());
        }
        while self.frames.back().is_some_and(|b| b.first > zxid) {
            if let Some(b) = self.frames.pop_back() {
                self.txns -= frame_txns(&b);
            }
        }
        Ok(())
    }

    /// Forgets everything: the state through `zxid` now comes from a snapshot.
    pub fn reset(&mut self, zxid: i64) {
        *self = MemLog::new(zxid);
    }

    /// Forgets frames from the front while more than `budget` transactions are held
    /// and the front frame is applied (ends at or before `applied`).
    pub fn trim(&mut self, budget: usize, applied: i64) {
        while self.txns > budget {
            match self.frames.front() {
                Some(f) if f.last <= applied => {
                    self.txns -= frame_txns(f);
                    self.base = f.last;
                    self.frames.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Copies of the frames that start after `zxid`.
    pub fn after(&self, zxid: i64) -> Vec<LogFrame> {
        self.frames
            .iter()
            .filter(|fr| fr.first > zxid)
            .cloned()
            .collect()
    }

    /// The frames from the first one not wholly at or before `applied`.
    pub fn unapplied(&self, applied: i64) -> impl Iterator<Item = &LogFrame> {
        let start = self.frames.partition_point(|fr| fr.last <= applied);
        self.frames.range(start..)
    }

    /// Whether our log ends a frame (or starts) exactly at `zxid`: a point a follower
    /// can be truncated or diffed to.
    pub fn has_boundary(&self, zxid: i64) -> bool {
        zxid == self.base || self.frames.iter().any(|fr| fr.last == zxid)
    }

    /// The zxid the log starts after, then the last zxid of each epoch in it.
    pub fn epoch_ends(&self) -> Vec<i64> {
        let mut v = vec![self.base];
        for f in &self.frames {
            let n = v.len();
            if n > 1 && v[n - 1] >> 32 == f.last >> 32 {
                v[n - 1] = f.last;
            } else {
                v.push(f.last);
            }
        }
        v
    }

    /// Where a follower's log and ours part, from its `epoch_ends` (the zxid its log
    /// starts after, then each epoch's last zxid). Every server holding frames of epoch
    /// `e` holds, before them, exactly the history that epoch's leader established, and
    /// a prefix of that leader's frames of `e`. So the latest epoch both logs hold
    /// decides: they agree through the shorter one's end of it, and part there (an
    /// epoch the follower has after it, we never saw). With no epoch in common, they
    /// agree through the follower's snapshot, which is committed state.
    pub fn common_point(&self, ends: &[i64]) -> i64 {
        let Some((&start, rest)) = ends.split_first() else {
            return 0;
        };
        for &end_f in rest.iter().rev() {
            let e = end_f >> 32;
            let end_l = self
                .frames
                .iter()
                .filter(|fr| fr.last >> 32 == e)
                .map(|fr| fr.last)
                .max();
            if let Some(end_l) = end_l {
                return start.max(end_f.min(end_l));
            }
        }
        start
    }
}

/// Transactions in a frame (within a frame zxids are consecutive).
pub fn frame_txns(f: &LogFrame) -> usize {
    (f.last - f.first + 1).max(1) as usize
}

pub fn new_frame(first: i64, last: i64, payload: Vec<u8>) -> LogFrame {
    LogFrame {
        first,
        last,
        payload: Arc::new(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(base: i64, ranges: &[(i64, i64)]) -> MemLog {
        MemLog::restored(
            base,
            ranges
                .iter()
                .map(|(a, b)| new_frame(*a, *b, Vec::new()))
                .collect(),
        )
    }

    const E1: i64 = 1 << 32;
    const E2: i64 = 2 << 32;
    const E3: i64 = 3 << 32;

    #[test]
    fn logs_part_where_an_epoch_ends_differently_or_is_missing() {
        let ours = log(0, &[(E1 | 1, E1 | 3), (E1 | 4, E1 | 5), (E3 | 1, E3 | 2)]);
        // Behind in epoch 1: agrees through its end.
        assert_eq!(ours.common_point(&[0, E1 | 3]), E1 | 3);
        // Took epoch 2 frames we never saw after the first three of epoch 1.
        assert_eq!(ours.common_point(&[0, E1 | 3, E2 | 4]), E1 | 3);
        // Epoch 1 is below our in-memory log; epoch 3 is shared and decides.
        let trimmed = log(E1 | 5, &[(E3 | 1, E3 | 2)]);
        assert_eq!(trimmed.common_point(&[E1 | 2, E1 | 5, E3 | 1]), E3 | 1);
        assert_eq!(trimmed.common_point(&[E1 | 2, E1 | 5, E2 | 3]), E1 | 2);
        // Holds all of epoch 1 and then epoch 2: parts after epoch 1.
        assert_eq!(ours.common_point(&[0, E1 | 5, E2 | 4]), E1 | 5);
        // Identical through epoch 3's second transaction.
        assert_eq!(ours.common_point(&[0, E1 | 5, E3 | 2]), E3 | 2);
        // Ahead of us in epoch 3 (we never got its tail).
        assert_eq!(ours.common_point(&[0, E1 | 5, E3 | 9]), E3 | 2);
        // Only a snapshot.
        assert_eq!(ours.common_point(&[E1 | 4]), E1 | 4);
    }

    #[test]
    fn bounds_follow_appends_truncation_trimming_and_reset() {
        // A restore skips frames the snapshot already covers.
        let mut l = log(
            E1 | 2,
            &[(E1 | 1, E1 | 2), (E1 | 3, E1 | 5), (E1 | 6, E1 | 6)],
        );
        assert_eq!((l.base(), l.last(), l.frames().len()), (E1 | 2, E1 | 6, 2));
        assert_eq!(l.epoch_ends(), vec![E1 | 2, E1 | 6]);
        l.push(new_frame(E2 | 1, E2 | 2, Vec::new()));
        assert_eq!(l.epoch_ends(), vec![E1 | 2, E1 | 6, E2 | 2]);
        assert!(l.has_boundary(E1 | 5) && l.has_boundary(E1 | 2) && !l.has_boundary(E1 | 4));
        assert_eq!(l.after(E1 | 5).len(), 2);
        // Truncation inside a frame is refused; at a boundary it drops what follows.
        assert_eq!(l.truncate_after(E1 | 4), Err(()));
        assert_eq!(l.last(), E2 | 2, "a refused truncation drops nothing");
        assert_eq!(l.truncate_after(E1 | 2), Ok(()));
        assert_eq!(l.last(), E1 | 2);
        // Trimming keeps unapplied frames whatever the budget.
        let mut l = log(0, &[(1, 3), (4, 6), (7, 9)]);
        l.trim(0, 5);
        assert_eq!(
            (l.base(), l.last()),
            (3, 9),
            "frame 4..6 is not wholly applied"
        );
        assert_eq!(l.unapplied(6).map(|f| f.first).collect::<Vec<_>>(), vec![7]);
        l.trim(3, 9);
        assert_eq!(
            (l.base(), l.frames().len()),
            (6, 1),
            "three transactions fit"
        );
        l.reset(20);
        assert_eq!((l.base(), l.last(), l.frames().len()), (20, 20, 0));
    }
}
