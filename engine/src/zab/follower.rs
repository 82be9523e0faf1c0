//! The follower (and observer): discovery (`FollowerInfo`, then promising the
//! leader's epoch), synchronisation (DIFF, TRUNC or SNAP, then `NewLeader`, acked once
//! the synced log is durable), and broadcast (logging proposals, acking them once
//! durable, applying commits). Its handlers borrow the follower's state and the
//! [`Core`], never the whole replica; one that returns false asks the replica to
//! elect again.

use tracing::warn;

use super::shared::Core;
use super::*;

/// What a follower is waiting for from its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FollowPhase {
    /// Sent `FollowerInfo`, waiting for `LeaderInfo`.
    Discovery,
    /// Acked the epoch, waiting for `Sync`.
    Sync,
    /// Synchronised by `Sync`, waiting for `NewLeader`.
    Synced,
    /// Got `NewLeader`; acks it once the synced log is durable, then waits `UpToDate`.
    NewLeader { acked: bool },
    /// Broadcast: serving clients.
    Broadcast,
}

#[derive(Debug)]
pub(super) struct Follower {
    pub(super) leader: Sid,
    pub(super) phase: FollowPhase,
    /// The epoch of the term being joined (from the accepted `LeaderInfo`); messages
    /// of discovery and synchronisation naming another epoch are an earlier term's.
    term: i64,
    pub(super) last_heard: i64,
    /// When discovery and synchronisation must be done by.
    deadline: i64,
    /// Highest durable zxid acked to the leader.
    acked: i64,
    next_info_resend: i64,
    /// The leader has sent us something only a leader sends (`LeaderInfo`, a sync, a
    /// proposal, a ping): from then on a looking vote from it means it gave up, since
    /// on one link its messages arrive in the order it sent them.
    pub(super) heard_leading: bool,
    /// When we chose this leader.
    pub(super) since: i64,
}

impl Follower {
    /// Following `leader`, chosen now: discovery first, done within initLimit.
    pub(super) fn new(leader: Sid, c: &Core) -> Follower {
        Follower {
            leader,
            phase: FollowPhase::Discovery,
            term: 0,
            last_heard: c.now_ms,
            deadline: c.now_ms + c.cfg.init_limit * c.cfg.tick_ms,
            acked: 0,
            next_info_resend: c.now_ms,
            heard_leading: false,
            since: c.now_ms,
        }
    }

    /// Asks the leader to start our synchronisation (`FollowerInfo`).
    pub(super) fn send_info(&mut self, c: &mut Core) {
        let f = self;
        // Not a tick: a winner still deciding when our FollowerInfo arrived drops it
        // (it is not leading yet), and a tick of 6 s would stall the election that long.
        f.next_info_resend = c.now_ms + super::election::FIRST_RESEND_MS.min(c.cfg.tick_ms).max(1);
        let to = f.leader;
        c.out.push(ReplicaOutput::Peer {
            to,
            msg: PeerMsg::FollowerInfo {
                accepted_epoch: c.epochs.accepted,
                last_zxid: c.log.last(),
                observer: c.cfg.is_observer(),
            },
        });
    }

    /// The follower's part of a tick. False: the leader went silent, or discovery and
    /// synchronisation took too long; elect again.
    pub(super) fn tick(&mut self, c: &mut Core) -> bool {
        let now = c.now_ms;
        let limit = c.cfg.silence_ms();
        let give_up = match self.phase {
            FollowPhase::Broadcast => now - self.last_heard > limit,
            _ => now > self.deadline,
        };
        if give_up {
            warn!(
                id = c.cfg.my_id,
                leader = self.leader,
                "leader unheard or synchronisation too slow; electing again"
            );
            return false;
        }
        if self.phase == FollowPhase::Discovery && now >= self.next_info_resend {
            self.send_info(c);
        }
        true
    }

    /// A message from our leader. False: give up on it and elect again.
    pub(super) fn on_msg(&mut self, c: &mut Core, msg: PeerMsg) -> bool {
        let now = c.now_ms;
        let f = &mut *self;
        f.last_heard = now;
        f.heard_leading = true;
        let leader = f.leader;
        let phase = f.phase;
        let term = f.term;
        match msg {
            PeerMsg::LeaderInfo { epoch } => {
                let fresh = phase == FollowPhase::Discovery
                    || (phase != FollowPhase::Broadcast && epoch > term);
                // A non-voter's promise counts for nothing, so it may follow any leader.
                let behind = epoch < c.epochs.accepted && c.cfg.is_voter(c.cfg.my_id);
                if !fresh || behind {
                    // A duplicate, an earlier term's message still on the link, or a
                    // leader behind what we promised: not answered (ZooKeeper gives up
                    // on the last; the deadline does that here).
                    return true;
                }
                // A promise is given once per epoch, to one leader; asked again by that
                // same leader (our link broke, or our ack was lost while we looked), we
                // renew it, or the leader could count us only after initLimit.
                let promise = epoch > c.epochs.accepted || c.promised_to == Some((epoch, leader));
                if epoch > c.epochs.accepted {
                    c.epochs.accepted = epoch;
                    c.save_epochs();
                    c.promised_to = Some((epoch, leader));
                }
                {
                    let f = &mut *self;
                    f.phase = FollowPhase::Sync;
                    f.term = epoch;
                }
                let epoch_ends = c.log.epoch_ends();
                c.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::AckEpoch {
                        epoch,
                        promise,
                        current_epoch: c.epochs.current,
                        last_zxid: c.log.last(),
                        epoch_ends,
                    },
                });
            }
            PeerMsg::Sync {
                epoch,
                mode,
                frames,
            } => {
                if epoch != term {
                    return true;
                }
                if phase != FollowPhase::Sync {
                    return false;
                }
                if !self.apply_sync(c, mode) {
                    return false;
                }
                for fr in frames {
                    if !self.append(c, fr) {
                        return false;
                    }
                }
                {
                    let f = &mut *self;
                    f.phase = FollowPhase::Synced;
                }
            }
            PeerMsg::NewLeader { epoch, commit, .. } => {
                if epoch != term {
                    return true;
                }
                if phase != FollowPhase::Synced {
                    return false;
                }
                {
                    let f = &mut *self;
                    f.phase = FollowPhase::NewLeader { acked: false };
                }
                // Apply what the leader has committed before acking: a reconfiguration
                // among it must be in force here before our acks count in its
                // membership (the leader counts them there from now on).
                c.committed = c.committed.max(commit.min(c.log.last()));
                c.apply_through(c.committed, Some(leader));
                self.on_durable(c);
            }
            PeerMsg::UpToDate {
                epoch,
                commit,
                membership,
            } => {
                if epoch != term {
                    return true;
                }
                if phase != (FollowPhase::NewLeader { acked: true }) {
                    return false;
                }
                {
                    let f = &mut *self;
                    f.phase = FollowPhase::Broadcast;
                }
                c.committed = c.committed.max(commit);
                c.apply_through(c.committed, Some(leader));
                c.adopt_leader_membership(&membership, Some(leader));
                c.engine.set_serving(true);
            }
            PeerMsg::Proposal(fr) => {
                if !matches!(
                    phase,
                    FollowPhase::NewLeader { .. } | FollowPhase::Broadcast
                ) {
                    return false;
                }
                if fr.first >> 32 != term {
                    // Every proposal of this term carries its epoch; an older one is a
                    // previous term's, still on the link.
                    if fr.first >> 32 < term {
                        return true;
                    }
                    return false;
                }
                if !self.append(c, fr) {
                    return false;
                }
            }
            PeerMsg::Commit { zxid } => {
                if zxid > c.log.last() {
                    warn!(
                        id = c.cfg.my_id,
                        "commit of 0x{zxid:x} beyond our log (0x{:x}); resynchronising",
                        c.log.last()
                    );
                    return false;
                }
                c.committed = c.committed.max(zxid);
                // Also before `UpToDate`: a committed reconfiguration must be in force
                // before we ack what the leader proposes after it.
                if matches!(
                    phase,
                    FollowPhase::NewLeader { .. } | FollowPhase::Broadcast
                ) {
                    c.apply_through(c.committed, Some(leader));
                }
            }
            PeerMsg::SyncDone { session, cxid, .. } => {
                c.engine.sync_done(session, cxid);
            }
            PeerMsg::Ping { .. } => {
                let sessions = c.engine.take_touched();
                c.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::Ping { sessions },
                });
            }
            other => {
                warn!(
                    id = c.cfg.my_id,
                    "unexpected {} from leader {leader}; ignored",
                    other.name()
                );
            }
        }
        true
    }

    /// Carries out the leader's synchronisation mode. False: cannot (resynchronise).
    fn apply_sync(&mut self, c: &mut Core, mode: SyncMode) -> bool {
        match mode {
            SyncMode::Diff => true,
            SyncMode::Trunc { zxid } => {
                if zxid < c.engine.last_zxid() {
                    warn!(
                        id = c.cfg.my_id,
                        "told to truncate to 0x{zxid:x} below what we applied (0x{:x})",
                        c.engine.last_zxid()
                    );
                    return false;
                }
                if c.log.truncate_after(zxid).is_err() {
                    warn!(
                        id = c.cfg.my_id,
                        "truncation point 0x{zxid:x} splits a frame"
                    );
                    return false;
                }
                c.durable = c.durable.min(c.log.last());
                c.out.push(ReplicaOutput::TruncateLog { after: zxid });
                c.find_pending(Some(self.leader));
                true
            }
            SyncMode::Snap { zxid, data } => {
                let snap = match crate::snapshot::SnapshotData::from_bytes(&data) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(id = c.cfg.my_id, "leader's snapshot refused: {e}");
                        return false;
                    }
                };
                if snap.last_zxid as i64 != zxid || zxid < c.engine.last_zxid() {
                    warn!(
                        id = c.cfg.my_id,
                        "leader's snapshot at 0x{zxid:x} is behind what we applied (0x{:x})",
                        c.engine.last_zxid()
                    );
                    return false;
                }
                c.engine.load_snapshot(&snap);
                c.log.reset(zxid);
                // What our log had pending is gone with it.
                c.set_pending(None);
                c.adopt_tree_membership(Some(self.leader));
                c.durable = zxid;
                c.committed = zxid;
                c.out.push(ReplicaOutput::InstallSnapshot { data: snap });
                true
            }
        }
    }

    /// Appends a frame the leader sent. False when it does not follow our log.
    fn append(&mut self, c: &mut Core, fr: LogFrame) -> bool {
        if fr.last <= c.log.last() {
            return true; // a duplicate
        }
        let epoch_start = (fr.first >> 32) << 32 | 1;
        let follows = fr.first == c.log.last() + 1
            || (fr.first == epoch_start && (c.log.last() >> 32) < (fr.first >> 32));
        if !follows || fr.first > fr.last {
            warn!(
                id = c.cfg.my_id,
                "frame 0x{:x}..0x{:x} does not follow our log (last 0x{:x}); resynchronising",
                fr.first,
                fr.last,
                c.log.last()
            );
            return false;
        }
        c.out.push(ReplicaOutput::Persist(fr.clone()));
        c.note_reconfig(&fr, Some(self.leader));
        c.log.push(fr);
        true
    }

    /// More of our log is durable: acknowledge `NewLeader`, or proposals.
    pub(super) fn on_durable(&mut self, c: &mut Core) {
        let f = &mut *self;
        match f.phase {
            FollowPhase::NewLeader { acked: false } if c.durable >= c.log.last() => {
                f.phase = FollowPhase::NewLeader { acked: true };
                f.acked = c.durable;
                let (leader, epoch) = (f.leader, f.term);
                if epoch > c.epochs.current {
                    c.epochs.current = epoch;
                    c.epochs.accepted = c.epochs.accepted.max(epoch);
                    c.save_epochs();
                }
                c.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::AckNewLeader {
                        epoch,
                        zxid: c.durable,
                    },
                });
            }
            // Observers ack too: a pending reconfiguration may make one a voter, and
            // what was proposed before a reconfiguration demoted a voter still counts
            // its ack (the quorums a proposal needs are fixed when it is proposed).
            FollowPhase::NewLeader { acked: true } | FollowPhase::Broadcast
                if c.durable > f.acked =>
            {
                f.acked = c.durable;
                let leader = f.leader;
                c.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::Ack { zxid: c.durable },
                });
            }
            _ => {}
        }
    }
}
