//! The replica: one server of an ensemble. It owns the [`Core`] every role works on
//! (engine, in-memory log, epochs, membership: `shared.rs`), the election
//! (`election.rs`, which runs beside every role) and the role it holds with that role's
//! state ([`Duty`]: looking, following (`follower.rs`) or leading (`leader.rs`)). It
//! turns each input into calls of the role's handlers, each borrowing only its own
//! state and the core ([`Replica::lead`], [`Replica::follow`]), and answers votes and
//! memberships from other servers. See the module documentation of `zab` for the
//! phases and contracts.

use std::collections::HashMap;

use tracing::{debug, error, info, warn};

use super::election::{Election, FIRST_RESEND_MS};
use super::follower::{FollowPhase, Follower};
use super::leader::Leader;
use super::log::MemLog;
use super::shared::Core;
use super::*;
use crate::Engine;

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
}

pub struct Replica {
    /// What every role works on: engine, log, epochs, membership, outputs.
    pub(super) core: Core,
    /// The role held and its state.
    pub(super) duty: Duty,
    /// The role last reported to the driver (`ReplicaOutput::Role`): only for noticing
    /// that the derived role changed.
    reported: Role,
    election: Election,
    /// When this server last started looking (read-only mode starts a while after).
    looking_since: i64,
    /// The last vote and the last membership we sent each server in answer to one of
    /// its votes, and when: an identical answer within [`FIRST_RESEND_MS`] is not sent
    /// again. Two servers that disagree on who may vote, or a peer that floods votes,
    /// then cost at most a few messages a second, never an echo that multiplies (see
    /// [`Replica::damp_answers`]). At most [`MAX_ANSWERED`] servers are kept.
    answers: HashMap<(Sid, bool), (i64, PeerMsg)>,
    /// The stranger and membership version last warned about (the same one again is
    /// logged at debug).
    stranger_warned: Option<(Sid, i64)>,
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
            core: Core {
                cfg,
                engine,
                now_ms,
                epochs,
                log,
                durable: last,
                committed: base,
                out: Vec::new(),
                applied_log: Vec::new(),
                membership,
                pending: None,
                elect_again: false,
                promised_to: None,
                replaced: None,
            },
            duty: Duty::Looking,
            reported: Role::Looking,
            looking_since: now_ms,
            answers: HashMap::new(),
            stranger_warned: None,
        };
        r.core.cfg.membership_version = r.core.membership.version;
        r.core.find_pending(None);
        r.take_replaced();
        r.look();
        r
    }

    pub fn step(&mut self, input: ReplicaInput) {
        match input {
            ReplicaInput::Tick { now_ms } => {
                self.core.now_ms = now_ms.max(self.core.now_ms);
                self.core.engine.step(crate::Input::Tick {
                    now_ms: self.core.now_ms,
                });
                self.tick();
            }
            ReplicaInput::Client(i) => self.core.engine.step(i),
            ReplicaInput::Peer { from, msg } => self.peer(from, msg),
            ReplicaInput::PeerDown { peer } => self.peer_down(peer),
            ReplicaInput::Durable { zxid } => self.on_durable(zxid),
        }
        self.take_replaced();
        self.after_step();
    }

    /// Moves every output ready now into `out`, in the order they must be carried out.
    pub fn drain(&mut self, out: &mut Vec<ReplicaOutput>) {
        if let Some(l) = self.duty.leader_mut() {
            l.flush(&mut self.core.log, &mut self.core.out);
        }
        let mut eo = Vec::new();
        self.core.engine.drain(&mut eo);
        // Protocol outputs first: a leader's `Commit`s leave before the replies to the
        // clients whose writes they commit, so that a client told "done" by a leader
        // that dies at once is less likely to find the commit (a reconfiguration's
        // above all) reached no one. Nothing the engine emits needs to go before them.
        out.append(&mut self.core.out);
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
                    id = self.core.cfg.my_id,
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
        self.core.epochs
    }
    /// The last zxid in this server's log (durable or not).
    pub fn last_logged_zxid(&self) -> i64 {
        self.core.log.last()
    }
    /// The highest zxid this server knows to be committed.
    pub fn committed_zxid(&self) -> i64 {
        self.core.committed
    }
    /// The highest zxid applied to the tree (what reads see).
    pub fn applied_zxid(&self) -> i64 {
        self.core.engine.last_zxid()
    }
    pub fn engine(&self) -> &Engine {
        &self.core.engine
    }
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.core.engine
    }
    pub fn config(&self) -> &ReplicaConfig {
        &self.core.cfg
    }
    /// When leading: (learners connected, voters synced, observers synced, `sync`s
    /// waiting for a commit), as ZooKeeper's `mntr` reports them.
    pub fn learner_counts(&self) -> Option<(usize, usize, usize, usize)> {
        self.duty.leader().map(|l| l.learner_counts(&self.core.cfg))
    }

    /// The leader this server follows (itself when leading), if any.
    pub fn leader_id(&self) -> Option<Sid> {
        match self.role() {
            Role::Leading | Role::Establishing => Some(self.core.cfg.my_id),
            Role::Following { leader } | Role::Syncing { leader } => Some(leader),
            Role::Looking => None,
        }
    }
    /// With `record_applied`: every transaction applied since the last call, as
    /// (zxid, digest of its encoded record), in order.
    pub fn take_applied(&mut self) -> Vec<(i64, u64)> {
        std::mem::take(&mut self.core.applied_log)
    }

    // ------------------------------------------------------------------ roles

    /// Tells the driver the role, if it changed since last told.
    pub(super) fn report_role(&mut self) {
        let role = self.role();
        if self.reported != role {
            info!(
                id = self.core.cfg.my_id,
                "role {:?} -> {:?} (epochs {:?}, last zxid 0x{:x})",
                self.reported,
                role,
                self.core.epochs,
                self.core.log.last()
            );
            self.reported = role;
            self.core.out.push(ReplicaOutput::Role {
                role,
                epoch: self.core.epochs.current,
            });
        }
    }

    /// Runs a leader's handler on its state and the core (never the whole replica),
    /// then reports the role: establishing may have finished. `None` when not leading.
    fn lead<R>(&mut self, f: impl FnOnce(&mut Leader, &mut Core) -> R) -> Option<R> {
        let Duty::Leading(l) = &mut self.duty else {
            return None;
        };
        let r = f(l, &mut self.core);
        self.report_role();
        Some(r)
    }

    /// Runs a follower's handler on its state and the core, then reports the role
    /// (synchronisation may have finished), or, when the handler says so, gives up on
    /// the leader and elects again.
    fn follow(&mut self, f: impl FnOnce(&mut Follower, &mut Core) -> bool) {
        let Duty::Following(fo) = &mut self.duty else {
            return;
        };
        if f(fo, &mut self.core) {
            self.report_role();
        } else {
            self.look();
        }
    }

    /// A membership switch replaced voters: a leader keeps counting them for what it
    /// proposed before ([`Leader::membership_replaced`]); other roles need nothing.
    fn take_replaced(&mut self) {
        if let Some(old) = self.core.replaced.take() {
            if let Some(l) = self.duty.leader_mut() {
                l.membership_replaced(old);
            }
        }
    }

    /// Gives up any role and starts an election.
    pub(super) fn look(&mut self) {
        self.core.engine.set_serving(false);
        self.duty = Duty::Looking;
        self.report_role();
        self.looking_since = self.core.now_ms;
        let me = self.my_vote_key();
        self.election
            .start(&self.core.cfg, me, self.core.now_ms, &mut self.core.out);
    }

    fn my_vote_key(&self) -> (i64, i64) {
        (self.core.epochs.current, self.core.log.last())
    }

    fn decided(&mut self, leader: Sid) {
        if leader != self.core.cfg.my_id && self.election.is_down(leader) {
            // The votes that chose it may all predate its crash: following it would
            // wait initLimit for a dead server. A new round counts only live votes.
            info!(
                id = self.core.cfg.my_id,
                "the election chose server {leader}, whose link is down; voting again"
            );
            let me = self.my_vote_key();
            self.election
                .start(&self.core.cfg, me, self.core.now_ms, &mut self.core.out);
            return;
        }
        if leader == self.core.cfg.my_id {
            self.duty = Duty::Leading(Box::new(Leader::new(&self.core)));
            self.report_role();
            // A one-voter ensemble needs no one else to establish its epoch.
            self.lead(|l, c| l.progress(c));
        } else {
            self.duty = Duty::Following(Follower::new(leader, &self.core));
            self.report_role();
            self.follow(|f, c| {
                f.send_info(c);
                true
            });
        }
    }

    // ------------------------------------------------------------------ inputs

    fn tick(&mut self) {
        let now = self.core.now_ms;
        match self.role() {
            Role::Looking => {
                // Read-only mode begins once an election has had a fair chance (two
                // ticks), so a quick re-election does not bounce clients twice.
                if self.core.cfg.read_only_mode
                    && !self.core.engine.is_read_only()
                    && now - self.looking_since >= 2 * self.core.cfg.tick_ms
                {
                    info!(
                        id = self.core.cfg.my_id,
                        "no quorum: serving read-only clients"
                    );
                    self.core.engine.set_read_only();
                }
                let me = self.my_vote_key();
                if let Some(l) = self
                    .election
                    .tick(&self.core.cfg, me, now, &mut self.core.out)
                {
                    self.decided(l);
                }
            }
            Role::Syncing { .. } | Role::Following { .. } => {
                self.follow(|f, c| f.tick(c));
            }
            Role::Establishing | Role::Leading => {
                if self.lead(|l, c| l.tick(c)) != Some(true) {
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
                    id = self.core.cfg.my_id,
                    leader = from,
                    "our leader is looking again; electing again"
                );
                self.look();
            }
            let with_us = v.leader == self.core.cfg.my_id
                && matches!(v.state, PeerState::Following | PeerState::Observing);
            if self.role() == Role::Establishing && !with_us {
                // It looks, or follows someone else: it left us (its vote was sent after
                // its FollowerInfo, on the same link), and must not count as joined.
                self.lead(|l, _| l.peer_left(from));
            }
            let mark = self.core.out.len();
            self.compare_memberships(from, v.config_version);
            let me = self.my_vote_key();
            let current = self.current_vote();
            if let Some(l) = self.election.on_vote(
                &self.core.cfg,
                from,
                v,
                me,
                current,
                self.core.now_ms,
                &mut self.core.out,
            ) {
                if self.role() == Role::Looking {
                    self.decided(l);
                }
            }
            self.damp_answers(from, mark);
            return;
        }
        match self.role() {
            Role::Looking => {}
            Role::Establishing | Role::Leading => {
                self.lead(|l, c| l.on_msg(c, from, msg));
            }
            Role::Syncing { leader } | Role::Following { leader }
                if from == leader && matches!(msg, PeerMsg::FollowerInfo { .. }) =>
            {
                // The server we chose as leader chose us (or follows us on someone's
                // word): neither leads, and each would wait initLimit for the other.
                // Looking again starts a newer round, which tells it to look too.
                warn!(
                    id = self.core.cfg.my_id,
                    leader, "the server we chose as leader wants to follow us; electing again"
                );
                self.look();
            }
            Role::Syncing { leader } | Role::Following { leader } => {
                if from == leader {
                    self.follow(|f, c| f.on_msg(c, msg));
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
                f.heard_leading || self.core.now_ms - f.since >= super::leader::LONE_MS
            }))
    }

    /// The vote to tell a peer that asks while this server is not looking.
    fn current_vote(&self) -> Option<Vote> {
        let (leader, state) = match self.role() {
            Role::Looking => return None,
            Role::Establishing | Role::Leading => (self.core.cfg.my_id, PeerState::Leading),
            Role::Syncing { leader } | Role::Following { leader } => (
                leader,
                if self.core.cfg.is_observer() {
                    PeerState::Observing
                } else {
                    PeerState::Following
                },
            ),
        };
        Some(Vote {
            leader,
            zxid: self.core.log.last(),
            peer_epoch: self.core.epochs.current,
            round: self.election.round(),
            state,
            config_version: self.core.membership.version,
        })
    }

    fn peer_down(&mut self, peer: Sid) {
        // What it told the election (whom it follows, that it leads) may be gone with
        // it: a looking server must not join a leader on a report from a dead link.
        self.election.peer_down(peer);
        match self.role() {
            Role::Syncing { leader } | Role::Following { leader } if leader == peer => {
                warn!(
                    id = self.core.cfg.my_id,
                    leader, "lost the link to the leader"
                );
                self.look();
            }
            Role::Establishing | Role::Leading => {
                self.lead(|l, _| l.on_peer_down(peer));
            }
            _ => {}
        }
    }

    fn on_durable(&mut self, zxid: i64) {
        let z = zxid.min(self.core.log.last());
        if z <= self.core.durable {
            return;
        }
        self.core.durable = z;
        match self.role() {
            Role::Establishing | Role::Leading => {
                self.lead(|l, c| l.on_self_durable(c));
            }
            Role::Syncing { .. } | Role::Following { .. } => {
                self.follow(|f, c| {
                    f.on_durable(c);
                    true
                });
            }
            Role::Looking => {}
        }
    }

    /// Hands the engine's requests to the leader, after every input.
    fn after_step(&mut self) {
        if std::mem::take(&mut self.core.elect_again) {
            self.look();
        }
        let fwds = self.core.engine.take_forwards();
        if fwds.is_empty() {
            return;
        }
        match self.role() {
            Role::Leading => {
                self.lead(|l, c| {
                    for f in fwds {
                        l.propose(c, None, f);
                    }
                });
            }
            Role::Following { leader } => {
                for f in fwds {
                    self.core.out.push(ReplicaOutput::Peer {
                        to: leader,
                        msg: PeerMsg::Request(f),
                    });
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ following

    // ------------------------------------------------------------------ the log

    // ------------------------------------------------------------------ membership

    /// The membership in force here.
    pub fn membership(&self) -> &Membership {
        &self.core.membership
    }

    /// A logged, uncommitted reconfiguration, if any.
    pub fn pending_membership(&self) -> Option<&Membership> {
        self.core.pending.as_ref()
    }

    /// Votes carry the sender's membership version: an older one than ours gets ours;
    /// a newer one gets our vote back, so that its sender sees ours is older and sends
    /// its membership. Each side answers at most once per vote it receives.
    fn compare_memberships(&mut self, from: Sid, theirs: i64) {
        let ours = self.core.membership.version;
        if theirs > ours && !self.core.cfg.peers().contains(&from) {
            // A stranger's membership would be ignored (`membership_from_peer`): do
            // not ask for it.
            return;
        }
        if theirs < ours {
            self.core.out.push(ReplicaOutput::Peer {
                to: from,
                msg: PeerMsg::Membership {
                    text: self.core.membership.to_text(),
                },
            });
        } else if theirs > ours {
            let mine = self
                .current_vote()
                .or_else(|| self.election.outgoing(&self.core.cfg));
            if let Some(v) = mine {
                self.core.out.push(ReplicaOutput::Peer {
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
        let now = self.core.now_ms;
        if self.answers.len() > MAX_ANSWERED {
            self.answers.clear();
        }
        let mut i = mark;
        while i < self.core.out.len() {
            let (key, msg) = match &self.core.out[i] {
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
                self.core.out.remove(i);
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
            Ok(m) if m.version > self.core.membership.version && !m.servers.is_empty() => {
                // Only from a member (voter or observer) of ours: not from any process
                // that got a link to our quorum port, even one that lists itself in
                // what it sends (a stranger is only ever a non-voting learner). A
                // server whose every known peer was removed needs a new configuration.
                let known = self.core.cfg.peers().contains(&from);
                if !known {
                    if self.stranger_warned == Some((from, m.version)) {
                        debug!(
                            id = self.core.cfg.my_id,
                            "server {from}, a stranger, sent membership 0x{:x} again; ignored",
                            m.version
                        );
                    } else {
                        warn!(
                            id = self.core.cfg.my_id,
                            "server {from}, a stranger, sent membership 0x{:x}; ignored (only a member of ours may change our membership)",
                            m.version
                        );
                        self.stranger_warned = Some((from, m.version));
                    }
                    return;
                }
                info!(
                    id = self.core.cfg.my_id,
                    "server {from} has membership 0x{:x}, newer than ours (0x{:x}); taking it",
                    m.version,
                    self.core.membership.version
                );
                self.core.switch_to(m, false, self.leader_id());
                // Whoever we follow or lead missed it too: a stale leader, which must
                // not go on (it might even propose over its own pending change).
                if self.role() != Role::Looking {
                    self.core.elect_again = true;
                }
            }
            Ok(_) => {}
            Err(e) => warn!(
                id = self.core.cfg.my_id,
                "server {from} sent a membership that does not parse: {}", e.0
            ),
        }
    }
}
