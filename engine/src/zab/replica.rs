//! The replica: one server of an ensemble. It owns the engine (committed state, client
//! sessions), the frames of its log kept in memory (`log.rs`), its epochs, the election
//! (`election.rs`, which runs beside every role) and the role it holds with that role's
//! state ([`Duty`]: looking, following, or leading, `leader.rs`). See the module
//! documentation of `zab` for the phases and contracts.

use std::collections::HashMap;

use tracing::{debug, error, info, warn};

use super::election::{Election, FIRST_RESEND_MS};
use super::leader::Leader;
use super::log::MemLog;
use super::*;
use crate::txn;
use crate::Engine;

/// What a follower is waiting for from its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowPhase {
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
    leader: Sid,
    phase: FollowPhase,
    /// The epoch of the term being joined (from the accepted `LeaderInfo`); messages
    /// of discovery and synchronisation naming another epoch are an earlier term's.
    term: i64,
    last_heard: i64,
    /// When discovery and synchronisation must be done by.
    deadline: i64,
    /// Highest durable zxid acked to the leader.
    acked: i64,
    next_info_resend: i64,
    /// The leader has sent us something only a leader sends (`LeaderInfo`, a sync, a
    /// proposal, a ping): from then on a looking vote from it means it gave up, since
    /// on one link its messages arrive in the order it sent them.
    heard_leading: bool,
    /// When we chose this leader.
    since: i64,
}

/// The role a replica holds, owning that role's protocol state: the one place the role
/// is kept. The public [`Role`] is derived from it ([`Replica::role`]); the election
/// runs beside every role (it answers other servers' votes), so it is not in here.
pub(super) enum Duty {
    Looking,
    Following(Follower),
    /// Boxed: a leader's state is many times a follower's.
    Leading(Box<Leader>),
}

impl Duty {
    pub(super) fn leader(&self) -> Option<&Leader> {
        match self {
            Duty::Leading(l) => Some(&**l),
            _ => None,
        }
    }
    pub(super) fn leader_mut(&mut self) -> Option<&mut Leader> {
        match self {
            Duty::Leading(l) => Some(&mut **l),
            _ => None,
        }
    }
    fn follower(&self) -> Option<&Follower> {
        match self {
            Duty::Following(f) => Some(f),
            _ => None,
        }
    }
    fn follower_mut(&mut self) -> Option<&mut Follower> {
        match self {
            Duty::Following(f) => Some(f),
            _ => None,
        }
    }
}

pub struct Replica {
    pub(super) cfg: ReplicaConfig,
    pub(super) engine: Engine,
    pub(super) now_ms: i64,
    pub(super) epochs: Epochs,
    /// The role held and its state.
    pub(super) duty: Duty,
    /// The role last reported to the driver (`ReplicaOutput::Role`): only for noticing
    /// that the derived role changed.
    reported: Role,
    /// The recent log in memory (everything after its base, applied or not).
    pub(super) log: MemLog,
    pub(super) durable: i64,
    pub(super) committed: i64,
    election: Election,
    pub(super) out: Vec<ReplicaOutput>,
    applied_log: Vec<(i64, u64)>,
    /// When this server last started looking (read-only mode starts a while after).
    looking_since: i64,
    /// The membership in force: the newest committed reconfiguration applied here (or
    /// `zoo.cfg`'s). `cfg.voters` and `cfg.observers` are its.
    pub(super) membership: Membership,
    /// A reconfiguration in our log not applied yet (ZooKeeper's "last seen" one):
    /// `cfg.next_voters` is its; quorums count in both memberships while it lasts.
    pub(super) pending: Option<Membership>,
    /// Applying a reconfiguration took away the leader we follow, or our own
    /// leadership: elect again once the current input is handled.
    elect_again: bool,
    /// The last vote and the last membership we sent each server in answer to one of
    /// its votes, and when: an identical answer within [`FIRST_RESEND_MS`] is not sent
    /// again. Two servers that disagree on who may vote, or a peer that floods votes,
    /// then cost at most a few messages a second, never an echo that multiplies (see
    /// [`Replica::damp_answers`]). At most [`MAX_ANSWERED`] servers are kept.
    answers: HashMap<(Sid, bool), (i64, PeerMsg)>,
    /// The stranger and membership version last warned about (the same one again is
    /// logged at debug).
    stranger_warned: Option<(Sid, i64)>,
    /// The epoch we last promised (raised `acceptedEpoch` to) and the leader we promised
    /// it to, since this process started.
    promised_to: Option<(i64, Sid)>,
}

/// Most servers [`Replica::answers`] remembers; past that it starts afresh.
const MAX_ANSWERED: usize = 256;

impl Replica {
    /// A replica restored from disk: `engine` holds the newest snapshot's state (or is
    /// empty), `frames` are the log frames after that snapshot in zxid order, `epochs`
    /// the persisted epochs. It starts `Looking`.
    pub fn new(
        cfg: ReplicaConfig,
        mut engine: Engine,
        epochs: Epochs,
        frames: Vec<LogFrame>,
        now_ms: i64,
    ) -> Replica {
        engine.set_replicated();
        engine.step(crate::Input::Tick { now_ms });
        let base = engine.last_zxid();
        let log = MemLog::restored(base, frames);
        let last = log.last();
        let mut cfg = cfg;
        // One source of truth: the membership the caller chose is /zookeeper/config's
        // and what quorums count.
        let membership = cfg
            .membership
            .take()
            .unwrap_or_else(|| Membership::placeholder(&cfg.voters, &cfg.observers));
        engine.set_config_znode(membership.to_text().into_bytes());
        cfg.voters = membership.voters();
        cfg.observers = membership.observers();
        let mut r = Replica {
            election: Election::new(&cfg),
            cfg,
            engine,
            now_ms,
            epochs,
            duty: Duty::Looking,
            reported: Role::Looking,
            log,
            durable: last,
            committed: base,
            out: Vec::new(),
            applied_log: Vec::new(),
            looking_since: now_ms,
            membership,
            pending: None,
            elect_again: false,
            answers: HashMap::new(),
            stranger_warned: None,
            promised_to: None,
        };
        r.cfg.membership_version = r.membership.version;
        r.find_pending();
        r.look();
        r
    }

    pub fn step(&mut self, input: ReplicaInput) {
        match input {
            ReplicaInput::Tick { now_ms } => {
                self.now_ms = now_ms.max(self.now_ms);
                self.engine.step(crate::Input::Tick {
                    now_ms: self.now_ms,
                });
                self.tick();
            }
            ReplicaInput::Client(i) => self.engine.step(i),
            ReplicaInput::Peer { from, msg } => self.peer(from, msg),
            ReplicaInput::PeerDown { peer } => self.peer_down(peer),
            ReplicaInput::Durable { zxid } => self.on_durable(zxid),
        }
        self.after_step();
    }

    /// Moves every output ready now into `out`, in the order they must be carried out.
    pub fn drain(&mut self, out: &mut Vec<ReplicaOutput>) {
        if let Some(l) = self.duty.leader_mut() {
            l.flush(&mut self.log, &mut self.out);
        }
        let mut eo = Vec::new();
        self.engine.drain(&mut eo);
        // Protocol outputs first: a leader's `Commit`s leave before the replies to the
        // clients whose writes they commit, so that a client told "done" by a leader
        // that dies at once is less likely to find the commit (a reconfiguration's
        // above all) reached no one. Nothing the engine emits needs to go before them.
        out.append(&mut self.out);
        out.extend(eo.into_iter().filter_map(|o| match o {
            crate::Output::Send { conn, frame } => {
                Some(ReplicaOutput::Client(ClientOutput::Send { conn, frame }))
            }
            crate::Output::Close { conn } => {
                Some(ReplicaOutput::Client(ClientOutput::Close { conn }))
            }
            crate::Output::Persist { first_zxid, .. } => {
                // `set_replicated` engines never make one; if one did, logging it
                // here would be wrong (it bypasses the quorum), so it is dropped.
                error!(
                    id = self.cfg.my_id,
                    "bug: a member's engine asked to log 0x{first_zxid:x} itself; dropped"
                );
                debug_assert!(false, "a replicated engine emitted Persist");
                None
            }
        }));
    }

    /// The role held, as drivers and status commands see it.
    pub fn role(&self) -> Role {
        match &self.duty {
            Duty::Looking => Role::Looking,
            Duty::Following(f) if f.phase == FollowPhase::Broadcast => {
                Role::Following { leader: f.leader }
            }
            Duty::Following(f) => Role::Syncing { leader: f.leader },
            Duty::Leading(l) if l.is_established() => Role::Leading,
            Duty::Leading(_) => Role::Establishing,
        }
    }
    pub fn epochs(&self) -> Epochs {
        self.epochs
    }
    /// The last zxid in this server's log (durable or not).
    pub fn last_logged_zxid(&self) -> i64 {
        self.log.last()
    }
    /// The highest zxid this server knows to be committed.
    pub fn committed_zxid(&self) -> i64 {
        self.committed
    }
    /// The highest zxid applied to the tree (what reads see).
    pub fn applied_zxid(&self) -> i64 {
        self.engine.last_zxid()
    }
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
    pub fn config(&self) -> &ReplicaConfig {
        &self.cfg
    }
    /// When leading: (learners connected, voters synced, observers synced, `sync`s
    /// waiting for a commit), as ZooKeeper's `mntr` reports them.
    pub fn learner_counts(&self) -> Option<(usize, usize, usize, usize)> {
        self.duty.leader().map(|l| l.learner_counts(&self.cfg))
    }

    /// The leader this server follows (itself when leading), if any.
    pub fn leader_id(&self) -> Option<Sid> {
        match self.role() {
            Role::Leading | Role::Establishing => Some(self.cfg.my_id),
            Role::Following { leader } | Role::Syncing { leader } => Some(leader),
            Role::Looking => None,
        }
    }
    /// With `record_applied`: every transaction applied since the last call, as
    /// (zxid, digest of its encoded record), in order.
    pub fn take_applied(&mut self) -> Vec<(i64, u64)> {
        std::mem::take(&mut self.applied_log)
    }

    // ------------------------------------------------------------------ roles

    /// Tells the driver the role, if it changed since last told.
    pub(super) fn report_role(&mut self) {
        let role = self.role();
        if self.reported != role {
            info!(
                id = self.cfg.my_id,
                "role {:?} -> {:?} (epochs {:?}, last zxid 0x{:x})",
                self.reported,
                role,
                self.epochs,
                self.log.last()
            );
            self.reported = role;
            self.out.push(ReplicaOutput::Role {
                role,
                epoch: self.epochs.current,
            });
        }
    }

    /// Gives up any role and starts an election.
    pub(super) fn look(&mut self) {
        self.engine.set_serving(false);
        self.duty = Duty::Looking;
        self.report_role();
        self.looking_since = self.now_ms;
        let me = self.my_vote_key();
        self.election
            .start(&self.cfg, me, self.now_ms, &mut self.out);
    }

    fn my_vote_key(&self) -> (i64, i64) {
        (self.epochs.current, self.log.last())
    }

    fn decided(&mut self, leader: Sid) {
        if leader != self.cfg.my_id && self.election.is_down(leader) {
            // The votes that chose it may all predate its crash: following it would
            // wait initLimit for a dead server. A new round counts only live votes.
            info!(
                id = self.cfg.my_id,
                "the election chose server {leader}, whose link is down; voting again"
            );
            let me = self.my_vote_key();
            self.election
                .start(&self.cfg, me, self.now_ms, &mut self.out);
            return;
        }
        if leader == self.cfg.my_id {
            self.duty = Duty::Leading(Box::new(Leader::new(self)));
            self.report_role();
            // A one-voter ensemble needs no one else to establish its epoch.
            Leader::progress(self);
        } else {
            let deadline = self.now_ms + self.cfg.init_limit * self.cfg.tick_ms;
            self.duty = Duty::Following(Follower {
                leader,
                phase: FollowPhase::Discovery,
                term: 0,
                last_heard: self.now_ms,
                deadline,
                acked: 0,
                next_info_resend: self.now_ms,
                heard_leading: false,
                since: self.now_ms,
            });
            self.report_role();
            self.send_follower_info();
        }
    }

    fn send_follower_info(&mut self) {
        let Some(f) = self.duty.follower_mut() else {
            return;
        };
        // Not a tick: a winner still deciding when our FollowerInfo arrived drops it
        // (it is not leading yet), and a tick of 6 s would stall the election that long.
        f.next_info_resend = self.now_ms
            + super::election::FIRST_RESEND_MS
                .min(self.cfg.tick_ms)
                .max(1);
        let to = f.leader;
        self.out.push(ReplicaOutput::Peer {
            to,
            msg: PeerMsg::FollowerInfo {
                accepted_epoch: self.epochs.accepted,
                last_zxid: self.log.last(),
                observer: self.cfg.is_observer(),
            },
        });
    }

    pub(super) fn save_epochs(&mut self) {
        self.out.push(ReplicaOutput::SaveEpochs(self.epochs));
    }

    // ------------------------------------------------------------------ inputs

    fn tick(&mut self) {
        let now = self.now_ms;
        match self.role() {
            Role::Looking => {
                // Read-only mode begins once an election has had a fair chance (two
                // ticks), so a quick re-election does not bounce clients twice.
                if self.cfg.read_only_mode
                    && !self.engine.is_read_only()
                    && now - self.looking_since >= 2 * self.cfg.tick_ms
                {
                    info!(id = self.cfg.my_id, "no quorum: serving read-only clients");
                    self.engine.set_read_only();
                }
                let me = self.my_vote_key();
                if let Some(l) = self.election.tick(&self.cfg, me, now, &mut self.out) {
                    self.decided(l);
                }
            }
            Role::Syncing { .. } | Role::Following { .. } => {
                let limit = self.cfg.silence_ms();
                let Some(f) = self.duty.follower() else {
                    return self.look();
                };
                let give_up = match f.phase {
                    FollowPhase::Broadcast => now - f.last_heard > limit,
                    _ => now > f.deadline,
                };
                if give_up {
                    warn!(
                        id = self.cfg.my_id,
                        leader = f.leader,
                        "leader unheard or synchronisation too slow; electing again"
                    );
                    return self.look();
                }
                if f.phase == FollowPhase::Discovery && now >= f.next_info_resend {
                    self.send_follower_info();
                }
            }
            Role::Establishing | Role::Leading => {
                if !Leader::tick(self) {
                    self.look();
                }
            }
        }
    }

    fn peer(&mut self, from: Sid, msg: PeerMsg) {
        if let PeerMsg::Membership { text } = msg {
            return self.membership_from_peer(from, &text);
        }
        if let PeerMsg::Vote(v) = msg {
            if v.state == PeerState::Looking && self.leader_gave_up(from, v.round) {
                // ZooKeeper's leader closes its learners' connections when it stops
                // leading; ours says so by looking. Waiting for initLimit or syncLimit
                // to notice would hold the election up for ticks.
                warn!(
                    id = self.cfg.my_id,
                    leader = from,
                    "our leader is looking again; electing again"
                );
                self.look();
            }
            let with_us = v.leader == self.cfg.my_id
                && matches!(v.state, PeerState::Following | PeerState::Observing);
            if self.role() == Role::Establishing && !with_us {
                // It looks, or follows someone else: it left us (its vote was sent after
                // its FollowerInfo, on the same link), and must not count as joined.
                Leader::peer_left(self, from);
            }
            let mark = self.out.len();
            self.compare_memberships(from, v.config_version);
            let me = self.my_vote_key();
            let current = self.current_vote();
            if let Some(l) =
                self.election
                    .on_vote(&self.cfg, from, v, me, current, self.now_ms, &mut self.out)
            {
                if self.role() == Role::Looking {
                    self.decided(l);
                }
            }
            self.damp_answers(from, mark);
            return;
        }
        match self.role() {
            Role::Looking => {}
            Role::Establishing | Role::Leading => Leader::on_msg(self, from, msg),
            Role::Syncing { leader } | Role::Following { leader }
                if from == leader && matches!(msg, PeerMsg::FollowerInfo { .. }) =>
            {
                // The server we chose as leader chose us (or follows us on someone's
                // word): neither leads, and each would wait initLimit for the other.
                // Looking again starts a newer round, which tells it to look too.
                warn!(
                    id = self.cfg.my_id,
                    leader, "the server we chose as leader wants to follow us; electing again"
                );
                self.look();
            }
            Role::Syncing { leader } | Role::Following { leader } => {
                if from == leader {
                    self.follower_msg(msg);
                }
            }
        }
    }

    /// Whether a looking vote of `round` from `from` says that the leader we sync with
    /// or follow is looking again: it has already acted as one towards us (so the vote
    /// is newer than its leadership: a link delivers in order), the vote is of a round
    /// after the one we decided in (votes of our round are the election that chose it,
    /// still arriving while it decides), or it is still looking [`LONE_MS`] after we
    /// chose it (it decides within a few hundred ms of a quorum agreeing, so it never
    /// will: it may have restarted, or seen votes we did not).
    fn leader_gave_up(&self, from: Sid, round: i64) -> bool {
        let ours = matches!(self.role(), Role::Syncing { leader } | Role::Following { leader } if leader == from);
        ours && (round > self.election.round()
            || self.duty.follower().is_some_and(|f| {
                f.heard_leading || self.now_ms - f.since >= super::leader::LONE_MS
            }))
    }

    /// The vote to tell a peer that asks while this server is not looking.
    fn current_vote(&self) -> Option<Vote> {
        let (leader, state) = match self.role() {
            Role::Looking => return None,
            Role::Establishing | Role::Leading => (self.cfg.my_id, PeerState::Leading),
            Role::Syncing { leader } | Role::Following { leader } => (
                leader,
                if self.cfg.is_observer() {
                    PeerState::Observing
                } else {
                    PeerState::Following
                },
            ),
        };
        Some(Vote {
            leader,
            zxid: self.log.last(),
            peer_epoch: self.epochs.current,
            round: self.election.round(),
            state,
            config_version: self.membership.version,
        })
    }

    fn peer_down(&mut self, peer: Sid) {
        // What it told the election (whom it follows, that it leads) may be gone with
        // it: a looking server must not join a leader on a report from a dead link.
        self.election.peer_down(peer);
        match self.role() {
            Role::Syncing { leader } | Role::Following { leader } if leader == peer => {
                warn!(id = self.cfg.my_id, leader, "lost the link to the leader");
                self.look();
            }
            Role::Establishing | Role::Leading => Leader::on_peer_down(self, peer),
            _ => {}
        }
    }

    fn on_durable(&mut self, zxid: i64) {
        let z = zxid.min(self.log.last());
        if z <= self.durable {
            return;
        }
        self.durable = z;
        match self.role() {
            Role::Establishing | Role::Leading => Leader::on_self_durable(self),
            Role::Syncing { .. } | Role::Following { .. } => self.follower_durable(),
            Role::Looking => {}
        }
    }

    /// Hands the engine's requests to the leader, after every input.
    fn after_step(&mut self) {
        if std::mem::take(&mut self.elect_again) {
            self.look();
        }
        let fwds = self.engine.take_forwards();
        if fwds.is_empty() {
            return;
        }
        match self.role() {
            Role::Leading => {
                for f in fwds {
                    Leader::propose(self, None, f);
                }
            }
            Role::Following { leader } => {
                for f in fwds {
                    self.out.push(ReplicaOutput::Peer {
                        to: leader,
                        msg: PeerMsg::Request(f),
                    });
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ following

    fn follower_msg(&mut self, msg: PeerMsg) {
        let now = self.now_ms;
        let Some(f) = self.duty.follower_mut() else {
            return;
        };
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
                let behind = epoch < self.epochs.accepted && self.cfg.is_voter(self.cfg.my_id);
                if !fresh || behind {
                    // A duplicate, an earlier term's message still on the link, or a
                    // leader behind what we promised: not answered (ZooKeeper gives up
                    // on the last; the deadline does that here).
                    return;
                }
                // A promise is given once per epoch, to one leader; asked again by that
                // same leader (our link broke, or our ack was lost while we looked), we
                // renew it, or the leader could count us only after initLimit.
                let promise =
                    epoch > self.epochs.accepted || self.promised_to == Some((epoch, leader));
                if epoch > self.epochs.accepted {
                    self.epochs.accepted = epoch;
                    self.save_epochs();
                    self.promised_to = Some((epoch, leader));
                }
                if let Some(f) = self.duty.follower_mut() {
                    f.phase = FollowPhase::Sync;
                    f.term = epoch;
                }
                let epoch_ends = self.log.epoch_ends();
                self.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::AckEpoch {
                        epoch,
                        promise,
                        current_epoch: self.epochs.current,
                        last_zxid: self.log.last(),
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
                    return;
                }
                if phase != FollowPhase::Sync {
                    return self.look();
                }
                if !self.apply_sync(mode) {
                    return self.look();
                }
                for fr in frames {
                    if !self.append(fr) {
                        return self.look();
                    }
                }
                if let Some(f) = self.duty.follower_mut() {
                    f.phase = FollowPhase::Synced;
                }
            }
            PeerMsg::NewLeader { epoch, commit, .. } => {
                if epoch != term {
                    return;
                }
                if phase != FollowPhase::Synced {
                    return self.look();
                }
                if let Some(f) = self.duty.follower_mut() {
                    f.phase = FollowPhase::NewLeader { acked: false };
                }
                // Apply what the leader has committed before acking: a reconfiguration
                // among it must be in force here before our acks count in its
                // membership (the leader counts them there from now on).
                self.committed = self.committed.max(commit.min(self.log.last()));
                self.apply_through(self.committed);
                self.follower_durable();
            }
            PeerMsg::UpToDate {
                epoch,
                commit,
                membership,
            } => {
                if epoch != term {
                    return;
                }
                if phase != (FollowPhase::NewLeader { acked: true }) {
                    return self.look();
                }
                if let Some(f) = self.duty.follower_mut() {
                    f.phase = FollowPhase::Broadcast;
                }
                self.committed = self.committed.max(commit);
                self.apply_through(self.committed);
                self.adopt_leader_membership(&membership);
                self.report_role();
                self.engine.set_serving(true);
            }
            PeerMsg::Proposal(fr) => {
                if !matches!(
                    phase,
                    FollowPhase::NewLeader { .. } | FollowPhase::Broadcast
                ) {
                    return self.look();
                }
                if fr.first >> 32 != term {
                    // Every proposal of this term carries its epoch; an older one is a
                    // previous term's, still on the link.
                    if fr.first >> 32 < term {
                        return;
                    }
                    return self.look();
                }
                if !self.append(fr) {
                    self.look();
                }
            }
            PeerMsg::Commit { zxid } => {
                if zxid > self.log.last() {
                    warn!(
                        id = self.cfg.my_id,
                        "commit of 0x{zxid:x} beyond our log (0x{:x}); resynchronising",
                        self.log.last()
                    );
                    return self.look();
                }
                self.committed = self.committed.max(zxid);
                // Also before `UpToDate`: a committed reconfiguration must be in force
                // before we ack what the leader proposes after it.
                if matches!(
                    phase,
                    FollowPhase::NewLeader { .. } | FollowPhase::Broadcast
                ) {
                    self.apply_through(self.committed);
                }
            }
            PeerMsg::SyncDone { session, cxid, .. } => {
                self.engine.sync_done(session, cxid);
            }
            PeerMsg::Ping { .. } => {
                let sessions = self.engine.take_touched();
                self.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::Ping { sessions },
                });
            }
            other => {
                warn!(
                    id = self.cfg.my_id,
                    "unexpected {} from leader {leader}; ignored",
                    other.name()
                );
            }
        }
    }

    /// Carries out the leader's synchronisation mode. False: cannot (resynchronise).
    fn apply_sync(&mut self, mode: SyncMode) -> bool {
        match mode {
            SyncMode::Diff => true,
            SyncMode::Trunc { zxid } => {
                if zxid < self.engine.last_zxid() {
                    warn!(
                        id = self.cfg.my_id,
                        "told to truncate to 0x{zxid:x} below what we applied (0x{:x})",
                        self.engine.last_zxid()
                    );
                    return false;
                }
                if self.log.truncate_after(zxid).is_err() {
                    warn!(
                        id = self.cfg.my_id,
                        "truncation point 0x{zxid:x} splits a frame"
                    );
                    return false;
                }
                self.durable = self.durable.min(self.log.last());
                self.out.push(ReplicaOutput::TruncateLog { after: zxid });
                self.find_pending();
                true
            }
            SyncMode::Snap { zxid, data } => {
                let snap = match crate::snapshot::SnapshotData::from_bytes(&data) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(id = self.cfg.my_id, "leader's snapshot refused: {e}");
                        return false;
                    }
                };
                if snap.last_zxid as i64 != zxid || zxid < self.engine.last_zxid() {
                    warn!(
                        id = self.cfg.my_id,
                        "leader's snapshot at 0x{zxid:x} is behind what we applied (0x{:x})",
                        self.engine.last_zxid()
                    );
                    return false;
                }
                self.engine.load_snapshot(&snap);
                self.log.reset(zxid);
                // What our log had pending is gone with it.
                self.set_pending(None);
                self.adopt_tree_membership();
                self.durable = zxid;
                self.committed = zxid;
                self.out.push(ReplicaOutput::InstallSnapshot { data: snap });
                true
            }
        }
    }

    /// Appends a frame the leader sent. False when it does not follow our log.
    fn append(&mut self, fr: LogFrame) -> bool {
        if fr.last <= self.log.last() {
            return true; // a duplicate
        }
        let epoch_start = (fr.first >> 32) << 32 | 1;
        let follows = fr.first == self.log.last() + 1
            || (fr.first == epoch_start && (self.log.last() >> 32) < (fr.first >> 32));
        if !follows || fr.first > fr.last {
            warn!(
                id = self.cfg.my_id,
                "frame 0x{:x}..0x{:x} does not follow our log (last 0x{:x}); resynchronising",
                fr.first,
                fr.last,
                self.log.last()
            );
            return false;
        }
        self.out.push(ReplicaOutput::Persist(fr.clone()));
        self.note_reconfig(&fr);
        self.log.push(fr);
        true
    }

    fn follower_durable(&mut self) {
        let Some(f) = self.duty.follower_mut() else {
            return;
        };
        match f.phase {
            FollowPhase::NewLeader { acked: false } if self.durable >= self.log.last() => {
                f.phase = FollowPhase::NewLeader { acked: true };
                f.acked = self.durable;
                let (leader, epoch) = (f.leader, f.term);
                if epoch > self.epochs.current {
                    self.epochs.current = epoch;
                    self.epochs.accepted = self.epochs.accepted.max(epoch);
                    self.save_epochs();
                }
                self.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::AckNewLeader {
                        epoch,
                        zxid: self.durable,
                    },
                });
            }
            // Observers ack too: a pending reconfiguration may make one a voter, and
            // what was proposed before a reconfiguration demoted a voter still counts
            // its ack (the quorums a proposal needs are fixed when it is proposed).
            FollowPhase::NewLeader { acked: true } | FollowPhase::Broadcast
                if self.durable > f.acked =>
            {
                f.acked = self.durable;
                let leader = f.leader;
                self.out.push(ReplicaOutput::Peer {
                    to: leader,
                    msg: PeerMsg::Ack { zxid: self.durable },
                });
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ the log

    /// Applies every logged transaction through `zxid` not applied yet, in order.
    pub(super) fn apply_through(&mut self, zxid: i64) {
        let target = zxid.min(self.log.last());
        let mut applied = self.engine.last_zxid();
        if target <= applied {
            return;
        }
        // The log is in zxid order: start at the first frame not yet applied rather
        // than walking the whole in-memory history on every commit.
        let mut reconfigs = Vec::new();
        for fr in self.log.unapplied(applied) {
            if fr.first > target {
                break;
            }
            let recs = match txn::decode_batch(&fr.payload) {
                Ok(r) => r,
                Err(e) => {
                    // The frame passed the log's CRC (or came from the leader's own
                    // encoder): undecodable means a bug, and applying around it would
                    // fork the state. Fail-stop.
                    panic!(
                        "log frame 0x{:x}..0x{:x} does not decode: {e}",
                        fr.first, fr.last
                    );
                }
            };
            for rec in &recs {
                if rec.zxid <= applied || rec.zxid > target {
                    continue;
                }
                self.engine.apply_committed(rec);
                applied = rec.zxid;
                if let txn::Txn::Reconfig { data } = &rec.txn {
                    reconfigs.push(data.clone());
                }
                if self.cfg.record_applied {
                    let bytes = txn::encode_batch(std::slice::from_ref(rec));
                    self.applied_log.push((rec.zxid, fnv1a(&bytes)));
                }
            }
        }
        for data in reconfigs {
            self.activate(&data);
        }
        self.trim_log();
    }

    // ------------------------------------------------------------------ membership

    /// The membership in force here.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// A logged, uncommitted reconfiguration, if any.
    pub fn pending_membership(&self) -> Option<&Membership> {
        self.pending.as_ref()
    }

    /// Makes `m` the pending reconfiguration (or clears it): from now on quorums count
    /// in both memberships.
    pub(super) fn set_pending(&mut self, m: Option<Membership>) {
        if self.pending == m {
            return;
        }
        match &m {
            Some(m) => {
                info!(
                    id = self.cfg.my_id,
                    "reconfiguration 0x{:x} logged: voters {:?}, observers {:?}; quorums now need both memberships",
                    m.version,
                    m.voters(),
                    m.observers()
                );
                self.cfg.next_voters = Some(m.voters());
                self.cfg.next_observers = m.observers();
                self.out.push(ReplicaOutput::Membership {
                    text: m.to_text(),
                    committed: false,
                });
            }
            None => {
                self.cfg.next_voters = None;
                self.cfg.next_observers.clear();
            }
        }
        self.pending = m;
    }

    /// A frame just logged: if it is a reconfiguration (always alone in its frame), it
    /// is pending from now.
    fn note_reconfig(&mut self, fr: &LogFrame) {
        if let Some(m) = self.reconfig_in(fr) {
            self.logged_reconfig(m);
        }
    }

    /// A reconfiguration in our log, not applied. A leader proposes one only once the
    /// previous one committed, so one logged after another means the other is
    /// committed: it is in force (for counting quorums) even though we have not
    /// applied it yet, and the new one is pending.
    fn logged_reconfig(&mut self, m: Membership) {
        if m.version <= self.membership.version {
            return;
        }
        if let Some(prev) = self.pending.take_if(|p| p.version < m.version) {
            self.switch_to(prev, false);
        }
        self.set_pending(Some(m));
    }

    fn reconfig_in(&self, fr: &LogFrame) -> Option<Membership> {
        if !txn::batch_is_reconfig(&fr.payload) {
            return None;
        }
        let recs = txn::decode_batch(&fr.payload).ok()?;
        match recs.first().map(|r| &r.txn) {
            Some(txn::Txn::Reconfig { data }) => Some(self.parse_membership(data)),
            _ => None,
        }
    }

    /// The pending reconfiguration, found again in the unapplied part of the log
    /// (after a restart or a truncation).
    fn find_pending(&mut self) {
        let applied = self.engine.last_zxid();
        let logged: Vec<Membership> = self
            .log
            .frames()
            .iter()
            .filter(|fr| fr.last > applied)
            .filter_map(|fr| self.reconfig_in(fr))
            .collect();
        self.set_pending(None);
        for m in logged {
            self.logged_reconfig(m);
        }
    }

    fn parse_membership(&self, data: &[u8]) -> Membership {
        let parsed = std::str::from_utf8(data)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|t| Membership::parse(t).map_err(|e| e.0));
        match parsed {
            Ok(m) => m,
            // Only a text the leader did not write fails here (specs are read as they
            // are): running on with another membership than the others is unsafe.
            Err(e) => panic!("a logged reconfiguration does not parse: {e}"),
        }
    }

    /// Votes carry the sender's membership version: an older one than ours gets ours;
    /// a newer one gets our vote back, so that its sender sees ours is older and sends
    /// its membership. Each side answers at most once per vote it receives.
    fn compare_memberships(&mut self, from: Sid, theirs: i64) {
        let ours = self.membership.version;
        if theirs > ours && !self.cfg.peers().contains(&from) {
            // A stranger's membership would be ignored (`membership_from_peer`): do
            // not ask for it.
            return;
        }
        if theirs < ours {
            self.out.push(ReplicaOutput::Peer {
                to: from,
                msg: PeerMsg::Membership {
                    text: self.membership.to_text(),
                },
            });
        } else if theirs > ours {
            let mine = self
                .current_vote()
                .or_else(|| self.election.outgoing(&self.cfg));
            if let Some(v) = mine {
                self.out.push(ReplicaOutput::Peer {
                    to: from,
                    msg: PeerMsg::Vote(v),
                });
            }
        }
    }

    /// Drops what handling `from`'s vote queued for `from` (from `out[mark..]`) that
    /// repeats, within [`FIRST_RESEND_MS`], the vote or membership last sent it in
    /// answer: a peer that got our answer a moment ago has it; one that lost it gets
    /// it again from the next vote it sends after that interval, or from our own
    /// re-broadcast. Without this, two servers whose rules say "answer that one" about
    /// each other (one counts the other as a voter, the other does not) echo forever.
    fn damp_answers(&mut self, from: Sid, mark: usize) {
        let now = self.now_ms;
        if self.answers.len() > MAX_ANSWERED {
            self.answers.clear();
        }
        let mut i = mark;
        while i < self.out.len() {
            let (key, msg) = match &self.out[i] {
                ReplicaOutput::Peer {
                    to,
                    msg: m @ PeerMsg::Vote(_),
                } if *to == from => ((from, true), m),
                ReplicaOutput::Peer {
                    to,
                    msg: m @ PeerMsg::Membership { .. },
                } if *to == from => ((from, false), m),
                _ => {
                    i += 1;
                    continue;
                }
            };
            let repeat = self
                .answers
                .get(&key)
                .is_some_and(|(at, last)| now - at < FIRST_RESEND_MS && last == msg);
            let msg = msg.clone();
            if repeat {
                self.out.remove(i);
            } else {
                self.answers.insert(key, (now, msg));
                i += 1;
            }
        }
    }

    /// Another server's membership in force, newer than ours: we missed
    /// reconfigurations (down, cut off, or outside the membership when they were
    /// made), and counting votes or acks by our old list could leave us out forever.
    /// What a server has in force was committed, so it is safe to take.
    fn membership_from_peer(&mut self, from: Sid, text: &str) {
        match Membership::parse(text) {
            Ok(m) if m.version > self.membership.version && !m.servers.is_empty() => {
                // Only from a member (voter or observer) of ours: not from any process
                // that got a link to our quorum port, even one that lists itself in
                // what it sends (a stranger is only ever a non-voting learner). A
                // server whose every known peer was removed needs a new configuration.
                let known = self.cfg.peers().contains(&from);
                if !known {
                    if self.stranger_warned == Some((from, m.version)) {
                        debug!(
                            id = self.cfg.my_id,
                            "server {from}, a stranger, sent membership 0x{:x} again; ignored",
                            m.version
                        );
                    } else {
                        warn!(
                            id = self.cfg.my_id,
                            "server {from}, a stranger, sent membership 0x{:x}; ignored (only a member of ours may change our membership)",
                            m.version
                        );
                        self.stranger_warned = Some((from, m.version));
                    }
                    return;
                }
                info!(
                    id = self.cfg.my_id,
                    "server {from} has membership 0x{:x}, newer than ours (0x{:x}); taking it",
                    m.version,
                    self.membership.version
                );
                self.switch_to(m, false);
                // Whoever we follow or lead missed it too: a stale leader, which must
                // not go on (it might even propose over its own pending change).
                if self.role() != Role::Looking {
                    self.elect_again = true;
                }
            }
            Ok(_) => {}
            Err(e) => warn!(
                id = self.cfg.my_id,
                "server {from} sent a membership that does not parse: {}", e.0
            ),
        }
    }

    /// A committed reconfiguration was applied: its membership is in force.
    fn activate(&mut self, data: &[u8]) {
        let m = self.parse_membership(data);
        self.switch_to(m, false);
    }

    /// After installing the leader's snapshot: its `/zookeeper/config` is the newest
    /// committed membership.
    fn adopt_tree_membership(&mut self) {
        if let Ok(m) = Membership::parse(&self.engine.tree().config_text()) {
            if !m.servers.is_empty() {
                self.switch_to(m, false);
            }
        }
    }

    /// On `UpToDate`: the leader's membership, as of the commit point we just applied
    /// through, is the ensemble's. At the same version it still wins: a server started
    /// with a list of its own (one about to be added) takes the one in force.
    fn adopt_leader_membership(&mut self, text: &str) {
        let Ok(m) = Membership::parse(text) else {
            warn!(
                id = self.cfg.my_id,
                "the leader's membership does not parse; kept ours"
            );
            return;
        };
        if m.servers.is_empty() || m == self.membership {
            return;
        }
        let same_version = m.version == self.membership.version;
        if same_version {
            self.engine.set_config_znode(text.as_bytes().to_vec());
        }
        self.switch_to(m, same_version);
    }

    /// Puts `m` in force, unless it is older than what is (`or_equal`: or as old).
    fn switch_to(&mut self, m: Membership, or_equal: bool) {
        let older = if or_equal {
            m.version < self.membership.version
        } else {
            m.version <= self.membership.version
        };
        if older {
            return; // replaying history older than what is in force
        }
        info!(
            id = self.cfg.my_id,
            "membership 0x{:x} in force: voters {:?}, observers {:?}",
            m.version,
            m.voters(),
            m.observers()
        );
        let old = std::mem::replace(&mut self.cfg.voters, m.voters());
        if let Some(l) = self.duty.leader_mut() {
            l.membership_replaced(old);
        }
        self.cfg.observers = m.observers();
        self.cfg.membership_version = m.version;
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.version <= m.version)
        {
            self.set_pending(None);
        }
        self.out.push(ReplicaOutput::Membership {
            text: m.to_text(),
            committed: true,
        });
        self.membership = m;
        // As in ZooKeeper, a leader that is no longer a voter hands over by stepping
        // down, and its followers elect again at once instead of waiting to miss it.
        let leader = self.leader_id();
        if leader.is_some_and(|l| !self.cfg.voters.contains(&l)) {
            info!(
                id = self.cfg.my_id,
                "the leader (server {}) is not a voter of the new membership; electing again",
                leader.unwrap_or_default()
            );
            self.elect_again = true;
        }
    }

    /// Forgets applied frames beyond the in-memory history budget.
    fn trim_log(&mut self) {
        self.log
            .trim(self.cfg.history_txns, self.engine.last_zxid());
    }
}

fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for x in b {
        h ^= *x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
