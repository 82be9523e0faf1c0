//! The leader: discovery (choosing a new epoch above every accepted epoch of a
//! quorum), synchronisation of each follower (DIFF, TRUNC or SNAP, then `NewLeader`),
//! and broadcast: prep of every request against a speculative tree (the committed tree
//! plus the outstanding proposals), batching into log frames, counting durable acks
//! and announcing commits.
//!
//! The speculative tree is a clone of the committed tree taken when the epoch is
//! established: the node map and child lists are persistent (`imbl`), so that clone
//! shares structure, and from then on every accepted write is applied to it at prep.
//! Nothing a client sees comes from it: replies and watch events come from the
//! committed tree when the transaction commits.

use std::collections::{HashMap, HashSet, VecDeque};

use tracing::{info, warn};

use super::log::{new_frame, MemLog};
use super::msg::{FWD_CLOSE_SESSION, FWD_CREATE_SESSION, FWD_SYNC};
use super::shared::Core;
use super::*;
use crate::prep;
use crate::proto::{op, perm, Code, Request};
use crate::tree::DataTree;
use crate::txn::{self, Txn, TxnRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Collecting `FollowerInfo` from a quorum to choose the epoch.
    Discovery,
    /// `LeaderInfo` sent; collecting `AckEpoch` from a quorum.
    AckEpoch,
    /// Followers synchronised; waiting for a quorum to have it durable.
    Sync,
    /// Established: proposing and committing.
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Sent `FollowerInfo`.
    Info,
    /// Acked the epoch, reporting its current epoch and last zxid.
    EpochAcked,
    /// Sent `Sync` and `NewLeader`; receives proposals and commits from now on.
    Syncing,
    /// Acked `NewLeader`: its acks count.
    Synced,
}

#[derive(Debug)]
struct PeerInfo {
    stage: Stage,
    accepted_epoch: i64,
    current_epoch: i64,
    last_zxid: i64,
    /// It promised our epoch (had not accepted it before): counts for establishing it.
    promised: bool,
    /// From `AckEpoch`: where its log starts, then each epoch's last zxid.
    epoch_ends: Vec<i64>,
    /// The zxid our `NewLeader` to it named: its ack must cover at least that.
    newleader_zxid: i64,
    observer: bool,
    acked: i64,
    last_heard: i64,
}

pub(super) struct Leader {
    epoch: i64,
    phase: Phase,
    peers: HashMap<Sid, PeerInfo>,
    deadline: i64,
    spec: DataTree,
    spec_sessions: HashSet<i64>,
    /// The last zxid handed out.
    last_zxid: i64,
    batch: Vec<TxnRecord>,
    /// Forwarded `sync`s: answered once everything proposed before them commits.
    syncs: VecDeque<(i64, Option<Sid>, i64, i32)>,
    exhausted: bool,
    next_reap: i64,
    /// When the periodic work (pings, quorum check, expiry) runs next: every half tick,
    /// however often the caller feeds ticks.
    next_periodic: i64,
    /// After a reconfiguration commits here: the voters before it, and the last zxid
    /// proposed while it was pending. As in ZooKeeper, the quorums a proposal needs are
    /// fixed when it is proposed: everything through that zxid still needs a majority
    /// of the old voters too, even though the new membership is in force.
    joint: Option<(Vec<Sid>, i64)>,
    /// When broadcast began (`establish`); before that, `i64::MIN`.
    established_at: i64,
    /// The servers that promised `epoch` to this leader (`AckEpoch { promise: true }`).
    /// A follower whose link broke and that asks again answers `promise: false` (it
    /// has accepted the epoch already: ours); it is still one of ours, and counts. A
    /// non-promise from anyone else never counts: each server promises an epoch once,
    /// so two leaders of one epoch cannot both gather a quorum.
    promised_to_us: HashSet<Sid>,
    /// Since when, while establishing, we and the voters that joined us (sent
    /// `FollowerInfo`, link not down since) have not been a quorum; `None` while they
    /// are, or once broadcast began. See [`LONE_MS`].
    lone_since: Option<i64>,
}

/// How long an establishing leader waits without a quorum of voters joined before it
/// gives up and looks again (or initLimit, if that is shorter). Followers that chose
/// it join within a few hundred ms (their decision waits at most 200 ms, their
/// `FollowerInfo` is re-sent every 200 ms); a leader whose voters left it (partitions,
/// crashes) would otherwise hold out for initLimit, answering votes as a leader, so
/// the others could neither join it nor elect without it.
pub const LONE_MS: i64 = 1000;

impl Leader {
    /// Whether `peer` is synchronised and was heard from within `limit` ms: what counts
    /// towards a quorum the leader relies on now.
    ///
    /// `floor` is a time to count as heard at for everyone: the leader's own quorum
    /// check passes the moment the epoch was established (followers wait silently for
    /// it during synchronisation, so each gets syncLimit from then); a reconfiguration
    /// passes nothing, and counts only what each follower really said.
    fn is_current(&self, peer: Sid, now: i64, limit: i64, floor: i64) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| p.stage == Stage::Synced && now - p.last_heard.max(floor) <= limit)
    }

    /// Established: broadcasting (the role `Leading`, not `Establishing`).
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Broadcast
    }

    pub fn new(c: &Core) -> Leader {
        info!(
            id = c.cfg.my_id,
            "leading: discovering a new epoch (accepted {})", c.epochs.accepted
        );
        Leader {
            epoch: 0,
            phase: Phase::Discovery,
            peers: HashMap::new(),
            deadline: c.now_ms + c.cfg.init_limit * c.cfg.tick_ms,
            spec: DataTree::empty(),
            spec_sessions: HashSet::new(),
            last_zxid: 0,
            batch: Vec::new(),
            syncs: VecDeque::new(),
            exhausted: false,
            next_reap: c.now_ms + c.engine.config().container_check_ms.max(1),
            next_periodic: c.now_ms,
            joint: None,
            established_at: i64::MIN,
            promised_to_us: HashSet::new(),
            lone_since: Some(c.now_ms),
        }
    }

    /// The reconfiguration just applied here replaced `old` voters: proposals made
    /// before now keep needing them too.
    pub fn membership_replaced(&mut self, old: Vec<Sid>) {
        self.joint = Some((old, self.last_zxid));
    }

    /// Takes the voters a membership switch just replaced (`Core::replaced`) at once,
    /// before anything more is proposed.
    fn take_replaced(&mut self, c: &mut Core) {
        if let Some(old) = c.replaced.take() {
            self.membership_replaced(old);
        }
    }

    /// (learners connected, voters synced, observers synced, `sync`s waiting): what
    /// ZooKeeper's `mntr` reports for a leader.
    pub fn learner_counts(&self, cfg: &ReplicaConfig) -> (usize, usize, usize, usize) {
        let synced = |obs: bool| {
            self.peers
                .iter()
                .filter(|(s, p)| {
                    p.stage == Stage::Synced && (p.observer || !cfg.voters.contains(s)) == obs
                })
                .count()
        };
        (
            self.peers.len(),
            synced(false),
            synced(true),
            self.syncs.len(),
        )
    }

    /// The followers and observers that get proposals and commits: those sent a `Sync`.
    fn in_sync(&self) -> Vec<Sid> {
        self.peers
            .iter()
            .filter(|(_, p)| p.stage >= Stage::Syncing)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Whether a quorum of voters may still promise our epoch: we, those that did, and
    /// those that have not answered yet (an ack without a promise is final).
    fn may_still_establish(&self, c: &Core) -> bool {
        c.cfg.has_quorum(|s| {
            s == c.cfg.my_id
                || self
                    .peers
                    .get(&s)
                    .is_none_or(|p| p.stage < Stage::EpochAcked || p.promised)
        })
    }

    /// Whether we and the voters at `min` or beyond (having promised our epoch, from
    /// `EpochAcked` on) make a quorum.
    fn quorum_at(&self, c: &Core, min: Stage) -> bool {
        let l = self;
        c.cfg.has_quorum(|s| {
            s == c.cfg.my_id
                || l.peers
                    .get(&s)
                    .is_some_and(|p| p.stage >= min && (min < Stage::EpochAcked || p.promised))
        })
    }

    /// Moves through the establishment phases as far as the quorum allows.
    pub fn progress(&mut self, c: &mut Core) {
        let l = &*self;
        if l.phase == Phase::Discovery {
            if !l.quorum_at(c, Stage::Info) {
                return;
            }
            let l = &mut *self;
            let max = l
                .peers
                .values()
                .map(|p| p.accepted_epoch)
                .chain(std::iter::once(c.epochs.accepted))
                .max()
                .unwrap_or(0);
            l.epoch = max + 1;
            l.phase = Phase::AckEpoch;
            let epoch = l.epoch;
            let to: Vec<Sid> = l.peers.keys().copied().collect();
            c.epochs.accepted = epoch;
            c.save_epochs();
            info!(id = c.cfg.my_id, epoch, "proposing epoch");
            for p in to {
                c.out.push(ReplicaOutput::Peer {
                    to: p,
                    msg: PeerMsg::LeaderInfo { epoch },
                });
            }
        }
        let l = &*self;
        if l.phase == Phase::AckEpoch {
            if !l.quorum_at(c, Stage::EpochAcked) {
                return;
            }
            let l = &mut *self;
            l.phase = Phase::Sync;
            let ready: Vec<Sid> = l
                .peers
                .iter()
                .filter(|(_, p)| p.stage == Stage::EpochAcked)
                .map(|(s, _)| *s)
                .collect();
            for p in ready {
                self.send_sync(c, p);
            }
        }
        let l = &*self;
        if l.phase == Phase::Sync {
            let me_durable = c.durable >= c.log.last();
            let synced = c.cfg.has_quorum(|s| {
                if s == c.cfg.my_id {
                    me_durable
                } else {
                    l.peers.get(&s).is_some_and(|p| p.stage == Stage::Synced)
                }
            });
            if !synced {
                return;
            }
            self.establish(c);
        }
    }

    /// A quorum holds our history durably: it is committed; broadcast begins.
    fn establish(&mut self, c: &mut Core) {
        let epoch = self.epoch;
        c.epochs.current = epoch;
        c.save_epochs();
        c.committed = c.log.last();
        let me = Some(c.cfg.my_id);
        c.apply_through(c.committed, me);
        self.take_replaced(c);
        let spec = c.engine.tree().clone();
        let sessions: HashSet<i64> = c.engine.sessions().iter().map(|s| s.id).collect();
        c.engine.restart_session_clocks();
        let now = c.now_ms;
        let commit = c.committed;
        let l = &mut *self;
        l.spec = spec;
        l.spec_sessions = sessions;
        l.last_zxid = epoch << 32;
        l.phase = Phase::Broadcast;
        l.established_at = now;
        let mut to = Vec::new();
        for (s, p) in l.peers.iter() {
            if p.stage == Stage::Synced {
                to.push(*s);
            }
        }
        info!(
            id = c.cfg.my_id,
            epoch,
            commit = format_args!("0x{commit:x}"),
            "established; serving"
        );
        let membership = c.membership.to_text();
        for p in to {
            c.out.push(ReplicaOutput::Peer {
                to: p,
                msg: PeerMsg::UpToDate {
                    epoch,
                    commit,
                    membership: membership.clone(),
                },
            });
        }
        c.engine.set_serving(true);
    }

    /// Brings `peer`'s log in line with ours. The two logs agree up to the point where
    /// they part (found from the follower's last zxid per epoch): DIFF when that is the
    /// end of its log, TRUNC to it when the follower holds a suffix we do not, SNAP (our
    /// committed state, then our frames after it) when our in-memory log no longer
    /// reaches back that far.
    fn send_sync(&mut self, c: &mut Core, peer: Sid) {
        let l = &mut *self;
        let Some(p) = l.peers.get_mut(&peer) else {
            return;
        };
        let f = p.last_zxid;
        let common = c.log.common_point(&p.epoch_ends).min(f);
        p.stage = Stage::Syncing;
        p.newleader_zxid = c.log.last();
        let epoch = l.epoch;
        let (mode, frames) = if common == f && (f == c.log.last() || c.log.has_boundary(f)) {
            (SyncMode::Diff, c.log.after(f))
        } else if common >= c.log.base() && c.log.has_boundary(common) {
            (SyncMode::Trunc { zxid: common }, c.log.after(common))
        } else {
            // The archive is built off this thread (`SendSnapshot`); the view is O(1).
            let view = c.engine.snapshot_view();
            let zxid = view.last_zxid();
            let frames = c.log.after(zxid);
            info!(
                id = c.cfg.my_id,
                peer,
                "synchronising 0x{f:x} by SNAP 0x{zxid:x} with {} frames",
                frames.len()
            );
            c.out.push(ReplicaOutput::SendSnapshot {
                to: peer,
                epoch,
                view,
                frames,
                then: PeerMsg::NewLeader {
                    epoch,
                    zxid: c.log.last(),
                    commit: c.committed,
                },
            });
            return;
        };
        info!(
            id = c.cfg.my_id,
            peer,
            "synchronising 0x{f:x} by {} with {} frames",
            match &mode {
                SyncMode::Diff => "DIFF".to_string(),
                SyncMode::Trunc { zxid } => format!("TRUNC 0x{zxid:x}"),
                SyncMode::Snap { zxid, .. } => format!("SNAP 0x{zxid:x}"),
            },
            frames.len()
        );
        c.out.push(ReplicaOutput::Peer {
            to: peer,
            msg: PeerMsg::Sync {
                epoch,
                mode,
                frames,
            },
        });
        c.out.push(ReplicaOutput::Peer {
            to: peer,
            msg: PeerMsg::NewLeader {
                epoch,
                zxid: c.log.last(),
                commit: c.committed,
            },
        });
    }

    pub fn on_msg(&mut self, c: &mut Core, from: Sid, msg: PeerMsg) {
        // Servers outside the membership are welcome as non-voting learners: a server
        // about to be added by a reconfiguration catches up that way first.
        let now = c.now_ms;
        let l = &mut *self;
        if let Some(p) = l.peers.get_mut(&from) {
            p.last_heard = now;
        }
        match msg {
            PeerMsg::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            } => {
                if l.peers.get(&from).is_some_and(|p| p.stage > Stage::Info) {
                    if accepted_epoch < l.epoch {
                        // It acked our epoch, so it had accepted it (durably, before
                        // the ack): this was sent before that, a duplicate or a resend
                        // overtaken by its ack. Starting over with it would wait for an
                        // ack the follower, already past that step, never sends again.
                        return;
                    }
                    // It came back (looked again, restarted): start over with it.
                    l.peers.remove(&from);
                }
                l.peers.insert(
                    from,
                    PeerInfo {
                        stage: Stage::Info,
                        accepted_epoch,
                        current_epoch: 0,
                        last_zxid,
                        promised: false,
                        epoch_ends: Vec::new(),
                        newleader_zxid: 0,
                        observer: observer || c.cfg.observers.contains(&from),
                        acked: 0,
                        last_heard: now,
                    },
                );
                if l.phase > Phase::Discovery && c.cfg.is_voter(from) && accepted_epoch > l.epoch {
                    // It promised an epoch above ours (one that never got established)
                    // and cannot follow us; until a leader proposes above that, it
                    // would loop. Stepping down lets the next election do so.
                    warn!(
                        id = c.cfg.my_id,
                        "server {from} accepted epoch {accepted_epoch}, above ours ({}); electing again",
                        l.epoch
                    );
                    l.exhausted = true;
                    return;
                }
                if l.phase == Phase::Discovery {
                    self.progress(c);
                } else {
                    let epoch = l.epoch;
                    c.out.push(ReplicaOutput::Peer {
                        to: from,
                        msg: PeerMsg::LeaderInfo { epoch },
                    });
                }
            }
            PeerMsg::AckEpoch {
                epoch,
                promise,
                current_epoch,
                last_zxid,
                epoch_ends,
            } => {
                if promise && epoch == l.epoch && l.phase != Phase::Discovery {
                    // Kept even when the rest of this ack is not used (the sender left
                    // and comes back): the promise was given, to us, and stands.
                    l.promised_to_us.insert(from);
                }
                let Some(p) = l.peers.get_mut(&from) else {
                    return;
                };
                if epoch != l.epoch || p.stage != Stage::Info || l.phase == Phase::Discovery {
                    return; // an earlier term's, or a duplicate
                }
                // Only a voter of the membership in force can be ahead in a way that
                // matters: a server only a pending reconfiguration makes a voter may
                // not lead, so it is truncated instead (what it has beyond us was
                // never committed: that needed a quorum of the voters in force).
                if l.phase < Phase::Broadcast
                    && c.cfg.voters.contains(&from)
                    && (current_epoch, last_zxid) > (c.epochs.current, c.log.last())
                {
                    warn!(
                        id = c.cfg.my_id,
                        "follower {from} is ahead of us ({current_epoch}, 0x{last_zxid:x}) > ({}, 0x{:x}); giving up leadership",
                        c.epochs.current,
                        c.log.last()
                    );
                    l.exhausted = true;
                    return;
                }
                p.stage = Stage::EpochAcked;
                p.current_epoch = current_epoch;
                p.last_zxid = last_zxid;
                p.promised = promise || l.promised_to_us.contains(&from);
                p.epoch_ends = epoch_ends;
                if !p.promised && l.phase == Phase::AckEpoch && !l.may_still_establish(c) {
                    // It accepted our epoch before but never promised it to us (the
                    // promise was lost with a crash before it reached us, or went to
                    // another candidate of the same epoch), and it promises an epoch
                    // once: waiting initLimit for it is waiting for nothing. A new
                    // election proposes a higher epoch, which it can promise.
                    warn!(
                        id = c.cfg.my_id,
                        "server {from} accepted epoch {epoch} but did not promise it to us, and no quorum can promise it without that server; electing again"
                    );
                    l.exhausted = true;
                    return;
                }
                if l.phase >= Phase::Sync {
                    self.send_sync(c, from);
                } else {
                    self.progress(c);
                }
            }
            PeerMsg::AckNewLeader { epoch, zxid } => {
                let Some(p) = l.peers.get_mut(&from) else {
                    return;
                };
                if epoch != l.epoch || p.stage != Stage::Syncing || zxid < p.newleader_zxid {
                    return; // an earlier term's
                }
                p.stage = Stage::Synced;
                p.acked = zxid.min(c.log.last());
                if l.phase == Phase::Broadcast {
                    let commit = c.committed;
                    c.out.push(ReplicaOutput::Peer {
                        to: from,
                        msg: PeerMsg::UpToDate {
                            epoch,
                            commit,
                            membership: c.membership.to_text(),
                        },
                    });
                    self.recompute_commit(c);
                } else {
                    self.progress(c);
                }
            }
            PeerMsg::Ack { zxid } => {
                let Some(p) = l.peers.get_mut(&from) else {
                    return;
                };
                if p.stage == Stage::Synced {
                    p.acked = p.acked.max(zxid.min(c.log.last()));
                    if l.phase == Phase::Broadcast {
                        self.recompute_commit(c);
                    }
                }
            }
            PeerMsg::Request(fwd) => {
                let known = l
                    .peers
                    .get(&from)
                    .is_some_and(|p| p.stage >= Stage::Syncing);
                if l.phase == Phase::Broadcast && known {
                    self.propose(c, Some(from), fwd);
                }
            }
            PeerMsg::Ping { sessions } => c.engine.touch_sessions(&sessions),
            _ => {}
        }
    }

    /// While establishing: `peer` sent a vote that is not for us (it looks again, or
    /// follows another), so whatever it told us in discovery or synchronisation no
    /// longer holds; it starts over with a new `FollowerInfo` if it comes back.
    pub fn peer_left(&mut self, peer: Sid) {
        if self.phase != Phase::Broadcast {
            self.peers.remove(&peer);
        }
    }

    pub fn on_peer_down(&mut self, peer: Sid) {
        self.peers.remove(&peer);
    }

    pub fn on_self_durable(&mut self, c: &mut Core) {
        match self.phase {
            Phase::Sync => self.progress(c),
            Phase::Broadcast => self.recompute_commit(c),
            _ => {}
        }
    }

    /// Commits through the highest zxid a quorum of voters has durable.
    fn recompute_commit(&mut self, c: &mut Core) {
        let l = &*self;
        let acked = |s: Sid| {
            if s == c.cfg.my_id {
                Some(c.durable)
            } else {
                l.peers
                    .get(&s)
                    .filter(|p| p.stage == Stage::Synced)
                    .map(|p| p.acked)
            }
        };
        let mut candidate = c.cfg.quorum_zxid(acked);
        if let (Some((old, through)), Some(c)) = (&l.joint, candidate) {
            // Through `through`, a majority of the old voters is needed as well.
            candidate = match majority_zxid(old, acked) {
                Some(o) if o >= *through => Some(c),
                Some(o) => Some(c.min(o)),
                None => None,
            };
        }
        let Some(candidate) = candidate.filter(|z| *z > c.committed) else {
            return;
        };
        let to = l.in_sync();
        c.committed = candidate;
        if self.joint.as_ref().is_some_and(|(_, t)| candidate >= *t) {
            self.joint = None;
        }
        let me = Some(c.cfg.my_id);
        c.apply_through(candidate, me);
        self.take_replaced(c);
        for p in to {
            c.out.push(ReplicaOutput::Peer {
                to: p,
                msg: PeerMsg::Commit { zxid: candidate },
            });
        }
        self.answer_syncs(c);
    }

    fn answer_syncs(&mut self, c: &mut Core) {
        loop {
            let l = &mut *self;
            match l.syncs.front() {
                Some(&(z, origin, session, cxid)) if z <= c.committed => {
                    l.syncs.pop_front();
                    match origin {
                        Some(p) => c.out.push(ReplicaOutput::Peer {
                            to: p,
                            msg: PeerMsg::SyncDone {
                                session,
                                cxid,
                                zxid: z,
                            },
                        }),
                        None => c.engine.sync_done(session, cxid),
                    }
                }
                _ => return,
            }
        }
    }

    /// Preps one request into a transaction of the current batch.
    pub fn propose(&mut self, c: &mut Core, origin: Option<Sid>, fwd: Forward) {
        let l = &mut *self;
        if l.phase != Phase::Broadcast || l.exhausted {
            return;
        }
        if fwd.opcode == FWD_SYNC {
            // The last zxid actually proposed: `last_zxid` starts at the epoch's zero,
            // which no commit will ever reach until the epoch's first write.
            let proposed = if l.batch.is_empty() {
                c.log.last()
            } else {
                l.last_zxid
            };
            l.syncs
                .push_back((proposed.max(c.committed), origin, fwd.session, fwd.cxid));
            self.answer_syncs(c);
            return;
        }
        if l.last_zxid & 0xffff_ffff >= 0xffff_fffe {
            warn!(
                id = c.cfg.my_id,
                "zxid counter exhausted in epoch {}; electing a new epoch", l.epoch
            );
            l.exhausted = true;
            return;
        }
        if fwd.opcode == op::RECONFIG {
            return self.propose_reconfig(c, fwd);
        }
        let zxid = l.last_zxid + 1;
        let time = c.now_ms;
        let session = fwd.session;
        let mut triggers = Vec::new();
        let err = |c: Code| Txn::Error { code: c.as_i32() };
        let txn = match fwd.opcode {
            FWD_CREATE_SESSION => match fwd.session_to_create() {
                Some((timeout_ms, password)) => {
                    l.spec_sessions.insert(session);
                    Txn::CreateSession {
                        timeout_ms,
                        password,
                    }
                }
                None => return,
            },
            FWD_CLOSE_SESSION => {
                l.spec_sessions.remove(&session);
                let doomed: Vec<String> = l.spec.ephemerals_of(session).cloned().collect();
                for p in doomed {
                    l.spec.delete(&p, zxid, None, &mut triggers);
                }
                Txn::CloseSession
            }
            opcode => match Request::decode(opcode, &fwd.body) {
                Err(_) => err(Code::MarshallingError),
                Ok(ref req)
                    if !l.spec_sessions.contains(&session)
                        && (!c.engine.config().local_sessions || req.creates_ephemeral()) =>
                {
                    // With local sessions an unknown id is a follower's local session;
                    // an ephemeral still needs a global one (an orphan would live
                    // forever).
                    err(Code::SessionExpired)
                }
                Ok(Request::Multi(ops)) if !ops.iter().all(crate::server::is_multi_write_op) => {
                    err(Code::MarshallingError)
                }
                Ok(req) => {
                    let ids = fwd.ids();
                    prep::prep_and_apply(
                        &mut l.spec,
                        c.engine.config(),
                        &ids,
                        session,
                        zxid,
                        time,
                        req,
                        &mut triggers,
                    )
                    .0
                }
            },
        };
        l.last_zxid = zxid;
        l.batch.push(TxnRecord {
            zxid,
            time,
            session,
            cxid: fwd.cxid,
            txn,
        });
        if l.batch.len() >= c.cfg.max_batch_txns.max(1) {
            l.flush(&mut c.log, &mut c.out);
        }
    }

    /// A `reconfig`: checked here as ZooKeeper's leader checks it, then logged in a
    /// frame of its own (so followers spot it from the frame header) and pending from
    /// this moment: every quorum counts in the old and the new membership until it
    /// commits, when every server switches to the new one.
    fn propose_reconfig(&mut self, c: &mut Core, fwd: Forward) {
        let l = &*self;
        let zxid = l.last_zxid + 1;
        let time = c.now_ms;
        let txn = match l.reconfigured(c, &fwd, zxid) {
            Ok(m) => {
                let data = m.to_text().into_bytes();
                c.set_pending(Some(m));
                Txn::Reconfig { data }
            }
            Err(code) => Txn::Error {
                code: code.as_i32(),
            },
        };
        let l = &mut *self;
        let alone = matches!(txn, Txn::Reconfig { .. });
        if alone {
            l.flush(&mut c.log, &mut c.out);
            prep::apply_one(&mut l.spec, &txn, zxid, time, None, &mut Vec::new());
        }
        l.last_zxid = zxid;
        l.batch.push(TxnRecord {
            zxid,
            time,
            session: fwd.session,
            cxid: fwd.cxid,
            txn,
        });
        if alone {
            l.flush(&mut c.log, &mut c.out);
        }
    }

    /// The membership a `reconfig` asks for, or why not. Checks: enabled, session,
    /// permission, none pending, curConfigId, the new list, its voters, their quorum in
    /// sync. ZooKeeper (3.8 to 3.9.5) checks permission last, so a client that may not
    /// reconfigure still learns whether its list parses and which version is current;
    /// here it learns only NoAuth.
    fn reconfigured(&self, c: &Core, fwd: &Forward, zxid: i64) -> Result<Membership, Code> {
        let l = self;
        if !c.cfg.reconfig_enabled {
            return Err(Code::ReconfigDisabled);
        }
        // With local sessions an unknown id is a follower's local session.
        if !l.spec_sessions.contains(&fwd.session) && !c.engine.config().local_sessions {
            return Err(Code::SessionExpired);
        }
        // /zookeeper/config is world-readable only, so the superuser, or whoever an
        // operator granted WRITE there, may reconfigure.
        if !c.engine.config().skip_acl {
            let acl = l
                .spec
                .get(crate::tree::CONFIG_NODE)
                .map(|n| n.acl.clone())
                .unwrap_or_default();
            crate::acl::check(&acl, perm::WRITE, &fwd.ids())?;
        }
        let Ok(Request::Reconfig {
            joining,
            leaving,
            new_members,
            cur_config_id,
        }) = Request::decode(op::RECONFIG, &fwd.body)
        else {
            return Err(Code::MarshallingError);
        };
        if c.pending.is_some() {
            return Err(Code::ReconfigInProgress);
        }
        if cur_config_id != -1 && cur_config_id != c.membership.version {
            return Err(Code::BadVersion);
        }
        let mut next = c
            .membership
            .reconfigured(&joining, &leaving, &new_members)
            .map_err(|e| {
                let (code, why) = match e {
                    Refused::BadArguments(m) => (Code::BadArguments, m),
                    Refused::Malformed(m) => (Code::MarshallingError, m),
                };
                info!(id = c.cfg.my_id, "reconfig refused: {why}");
                code
            })?;
        let voters = next.voters();
        let least = if c.cfg.standalone_enabled { 2 } else { 1 };
        if voters.len() < least {
            info!(
                id = c.cfg.my_id,
                "reconfig refused: the new membership would have {} voter(s), at least {least} needed",
                voters.len()
            );
            return Err(Code::BadArguments);
        }
        // The new voters must be able to commit it: a quorum of them in sync and heard
        // from within syncLimit, as ZooKeeper's isQuorumSynced (and as this leader's own
        // quorum check). A paused follower is still `Synced` until its link breaks:
        // counted, a reconfiguration it cannot acknowledge would take the ensemble down.
        let (now, limit) = (c.now_ms, c.cfg.silence_ms());
        let synced = voters
            .iter()
            .filter(|s| **s == c.cfg.my_id || l.is_current(**s, now, limit, i64::MIN))
            .count();
        if synced <= voters.len() / 2 {
            info!(
                id = c.cfg.my_id,
                "reconfig refused: only {synced} of the new voters {voters:?} are in sync"
            );
            return Err(Code::NewConfigNoQuorum);
        }
        next.version = zxid;
        Ok(next)
    }

    /// ContainerManager in an ensemble: the leader deletes empty containers and expired
    /// TTL nodes of the committed tree, each checked again against the speculative tree
    /// (a child may have been proposed since), like any write.
    fn reap(&mut self, c: &mut Core) {
        let candidates = c.engine.reap_candidates();
        let time = c.now_ms;
        let l = &mut *self;
        l.next_reap = time + c.engine.config().container_check_ms.max(1);
        for p in candidates {
            let still = l.spec.get(&p).is_some_and(|n| n.children.is_empty());
            if !still || l.exhausted || l.last_zxid & 0xffff_ffff >= 0xffff_fffe {
                continue;
            }
            let zxid = l.last_zxid + 1;
            let mut triggers = Vec::new();
            l.spec.delete(&p, zxid, None, &mut triggers);
            l.last_zxid = zxid;
            l.batch.push(TxnRecord {
                zxid,
                time,
                session: 0,
                cxid: 0,
                txn: Txn::Delete { path: p },
            });
        }
    }

    /// Turns the batch into one log frame: appended here and proposed to followers.
    pub fn flush(&mut self, log: &mut MemLog, out: &mut Vec<ReplicaOutput>) {
        if self.batch.is_empty() {
            return;
        }
        let first = self.batch[0].zxid;
        let last = self.batch[self.batch.len() - 1].zxid;
        let frame = new_frame(first, last, txn::encode_batch(&self.batch));
        self.batch.clear();
        out.push(ReplicaOutput::Persist(frame.clone()));
        for (s, p) in &self.peers {
            if p.stage >= Stage::Syncing {
                out.push(ReplicaOutput::Peer {
                    to: *s,
                    msg: PeerMsg::Proposal(frame.clone()),
                });
            }
        }
        log.push(frame);
    }

    /// Heartbeats, quorum check, session expiry. False: give up leadership.
    pub fn tick(&mut self, c: &mut Core) -> bool {
        let now = c.now_ms;
        let l = &*self;
        if l.exhausted {
            return false;
        }
        if l.phase != Phase::Broadcast {
            if now > l.deadline {
                warn!(id = c.cfg.my_id, "no quorum established the epoch in time");
                return false;
            }
            let joined = c
                .cfg
                .has_quorum(|s| s == c.cfg.my_id || l.peers.contains_key(&s));
            let since = match (joined, l.lone_since) {
                (true, _) => None,
                (false, Some(t)) => Some(t),
                (false, None) => Some(now),
            };
            if since.is_some_and(|t| now - t >= LONE_MS) {
                warn!(
                    id = c.cfg.my_id,
                    "no quorum of voters joined us for {LONE_MS} ms while establishing; electing again"
                );
                return false;
            }
            self.lone_since = since;
            return true;
        }
        if now < l.next_periodic {
            return true;
        }
        let limit = c.cfg.silence_ms();
        let heard = c
            .cfg
            .has_quorum(|s| s == c.cfg.my_id || l.is_current(s, now, limit, l.established_at));
        if !heard {
            warn!(id = c.cfg.my_id, "lost the quorum; electing again");
            return false;
        }
        let to = l.in_sync();
        for p in to {
            c.out.push(ReplicaOutput::Peer {
                to: p,
                msg: PeerMsg::Ping {
                    sessions: Vec::new(),
                },
            });
        }
        c.engine.take_touched();
        self.next_periodic = now + c.cfg.ping_interval_ms();
        let l = &*self;
        if now >= l.next_reap {
            self.reap(c);
        }
        for id in c.engine.expired_sessions() {
            info!(
                id = c.cfg.my_id,
                session = format_args!("0x{id:x}"),
                "session expired"
            );
            self.propose(
                c,
                None,
                Forward {
                    session: id,
                    cxid: 0,
                    opcode: FWD_CLOSE_SESSION,
                    body: Vec::new(),
                    auth: Vec::new(),
                },
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::Engine;

    fn core(me: Sid, voters: &[Sid]) -> Core {
        let mut engine = Engine::new(EngineConfig::default(), 0);
        engine.set_replicated();
        Core {
            cfg: ReplicaConfig::new(me, voters.to_vec()),
            engine,
            now_ms: 0,
            epochs: Epochs::default(),
            log: MemLog::new(0),
            durable: 0,
            committed: 0,
            out: Vec::new(),
            applied_log: Vec::new(),
            membership: Membership::placeholder(voters, &[]),
            pending: None,
            elect_again: false,
            promised_to: None,
            replaced: None,
        }
    }

    fn info() -> PeerMsg {
        PeerMsg::FollowerInfo {
            accepted_epoch: 0,
            last_zxid: 0,
            observer: false,
        }
    }

    fn ack(promise: bool) -> PeerMsg {
        PeerMsg::AckEpoch {
            epoch: 1,
            promise,
            current_epoch: 0,
            last_zxid: 0,
            epoch_ends: vec![0],
        }
    }

    /// A voter that accepted our epoch without promising it to us (its promise was
    /// lost with a crash, or went to another candidate) promises it to no one again:
    /// when no quorum can promise without it, the candidate gives up at once instead
    /// of waiting initLimit.
    #[test]
    fn a_candidate_that_can_no_longer_gather_promises_gives_up_at_once() {
        let mut c = core(2, &[1, 2]);
        let mut l = Leader::new(&c);
        l.on_msg(&mut c, 1, info());
        assert_eq!(l.phase, Phase::AckEpoch, "epoch 1 proposed");
        l.on_msg(&mut c, 1, ack(false));
        assert!(
            !l.tick(&mut c),
            "server 1's promise is needed and will not come"
        );

        // The same with the promise: it establishes.
        let mut c = core(2, &[1, 2]);
        let mut l = Leader::new(&c);
        l.on_msg(&mut c, 1, info());
        l.on_msg(&mut c, 1, ack(true));
        assert!(l.phase >= Phase::Sync);
        assert!(l.tick(&mut c));

        // A non-promise that a quorum can do without is no reason to give up.
        let mut c = core(2, &[1, 2, 3]);
        let mut l = Leader::new(&c);
        l.on_msg(&mut c, 1, info());
        l.on_msg(&mut c, 1, ack(false));
        assert!(l.tick(&mut c), "server 3 may still promise");
        l.on_msg(&mut c, 3, info());
        l.on_msg(&mut c, 3, ack(true));
        assert!(l.phase >= Phase::Sync, "2 and 3 are a quorum");
    }

    /// A FollowerInfo sent before the follower acked our epoch (a duplicate, or a
    /// resend its ack overtook) changes nothing; one from a follower that came back
    /// (it reports our epoch as accepted) starts it over.
    #[test]
    fn a_stale_follower_info_does_not_start_a_follower_over() {
        let mut c = core(2, &[1, 2, 3]);
        let mut l = Leader::new(&c);
        l.on_msg(&mut c, 1, info());
        l.on_msg(&mut c, 1, ack(true));
        assert!(l.phase >= Phase::Sync);
        l.on_msg(&mut c, 1, info());
        assert!(
            l.peers[&1].stage >= Stage::Syncing,
            "a stale FollowerInfo does not start server 1 over"
        );
        l.on_msg(
            &mut c,
            1,
            PeerMsg::FollowerInfo {
                accepted_epoch: 1,
                last_zxid: 0,
                observer: false,
            },
        );
        assert_eq!(l.peers[&1].stage, Stage::Info, "it came back: start over");
    }
}
