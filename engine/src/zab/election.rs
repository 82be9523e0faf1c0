//! Leader election, after ZooKeeper's FastLeaderElection: each looking server votes
//! for the best server it has heard of, ordered by (current epoch, last logged zxid,
//! id), and re-broadcasts when its vote changes. A server decides once a quorum of
//! voters agrees with its vote and no better vote arrived for a short wait; a server
//! that joins an ensemble already running follows the leader a quorum reports.

use std::collections::{HashMap, HashSet};

use super::{PeerMsg, PeerState, ReplicaConfig, ReplicaOutput, Sid, Vote};

pub(super) struct Election {
    round: i64,
    vote: Option<Vote>,
    /// Votes of looking voters in this round (ours included when we vote).
    votes: HashMap<Sid, Vote>,
    /// What servers outside the election report (whom they follow or that they lead).
    others: HashMap<Sid, Vote>,
    decide_at: Option<i64>,
    next_broadcast: i64,
    /// How long after the last broadcast to repeat it when nothing changed: starts at
    /// [`FIRST_RESEND_MS`] and doubles up to a tick or [`MAX_RESEND_MS`], whichever is
    /// less (ZooKeeper's notification timeout also starts at 200 ms), so a vote that
    /// went unheard (its receiver was still following a dead leader) is heard again in
    /// a fraction of a second whatever tickTime is. The cap matters after a partition
    /// heals: the engine hears of links going down, never of them coming back, so two
    /// voters whose votes were lost to it wait for this re-send to find each other
    /// (ZooKeeper re-sends when a connection is re-established).
    resend_ms: i64,
    /// The vote of each looking peer that we last answered with ours (see `on_vote`),
    /// so that each disagreement is answered once, never echoed.
    answered: HashMap<Sid, Vote>,
    /// Peers whose link went down and that have not sent a vote since: a candidate in
    /// here is not followed (see `Replica::decided`), because the votes that chose it
    /// may predate its crash.
    down: HashSet<Sid>,
}

/// First re-send interval of a vote nobody acted on, in ms.
pub const FIRST_RESEND_MS: i64 = 200;
/// Longest re-send interval of a vote, in ms (a looking voter sends each peer at most
/// a vote a second once the back-off is there; with tickTime below it, a tick).
pub const MAX_RESEND_MS: i64 = 1000;

impl Election {
    pub fn new(_cfg: &ReplicaConfig) -> Election {
        Election {
            round: 0,
            vote: None,
            votes: HashMap::new(),
            others: HashMap::new(),
            decide_at: None,
            next_broadcast: 0,
            resend_ms: FIRST_RESEND_MS,
            answered: HashMap::new(),
            down: HashSet::new(),
        }
    }

    pub fn round(&self) -> i64 {
        self.round
    }

    fn own_vote(&self, cfg: &ReplicaConfig, me: (i64, i64)) -> Vote {
        Vote {
            leader: cfg.my_id,
            zxid: me.1,
            peer_epoch: me.0,
            round: self.round,
            state: PeerState::Looking,
            config_version: cfg.membership_version,
        }
    }

    /// Our vote as it goes out: with our membership's version.
    pub fn outgoing(&self, cfg: &ReplicaConfig) -> Option<Vote> {
        self.vote.map(|v| stamped(cfg, v))
    }

    /// Starts a new round voting for ourselves.
    pub fn start(
        &mut self,
        cfg: &ReplicaConfig,
        me: (i64, i64),
        now: i64,
        out: &mut Vec<ReplicaOutput>,
    ) {
        self.round += 1;
        self.votes.clear();
        self.others.clear();
        self.answered.clear();
        self.decide_at = None;
        self.resend_ms = Self::first_resend(cfg);
        let v = self.own_vote(cfg, me);
        self.set_vote(cfg, v);
        self.broadcast(cfg, now, out);
    }

    fn set_vote(&mut self, cfg: &ReplicaConfig, v: Vote) {
        let v = Vote {
            round: self.round,
            state: PeerState::Looking,
            ..v
        };
        self.vote = Some(v);
        if cfg.is_voter(cfg.my_id) {
            self.votes.insert(cfg.my_id, v);
        }
    }

    fn first_resend(cfg: &ReplicaConfig) -> i64 {
        FIRST_RESEND_MS.min(cfg.tick_ms).max(1)
    }

    fn broadcast(&mut self, cfg: &ReplicaConfig, now: i64, out: &mut Vec<ReplicaOutput>) {
        self.next_broadcast = now + self.resend_ms;
        let Some(v) = self.outgoing(cfg) else { return };
        for p in cfg.peers() {
            out.push(ReplicaOutput::Peer {
                to: p,
                msg: PeerMsg::Vote(v),
            });
        }
    }

    fn finalize_wait(cfg: &ReplicaConfig) -> i64 {
        (cfg.tick_ms / 2).clamp(1, 200)
    }

    /// Re-broadcasts now and then (messages may be lost) and decides when the wait
    /// after reaching agreement is over.
    pub fn tick(
        &mut self,
        cfg: &ReplicaConfig,
        me: (i64, i64),
        now: i64,
        out: &mut Vec<ReplicaOutput>,
    ) -> Option<Sid> {
        if self.vote.is_none() {
            self.start(cfg, me, now, out);
        }
        if now >= self.next_broadcast {
            self.broadcast(cfg, now, out);
            // Nothing changed since the last one: wait longer before the next.
            self.resend_ms =
                (self.resend_ms * 2).min(cfg.tick_ms.clamp(FIRST_RESEND_MS, MAX_RESEND_MS));
        }
        if self.decide_at.is_none() && self.agreed(cfg) {
            self.decide_at = Some(now + Self::finalize_wait(cfg));
        }
        match self.decide_at {
            Some(t) if now >= t && self.agreed(cfg) => self.vote.map(|v| v.leader),
            _ => None,
        }
    }

    /// The link to `peer` went down: forget its report of an established leader
    /// (`others`), so that a leader whose link is down is not joined on its old word
    /// until it speaks again. Its looking vote stays counted: a vote is a position, not
    /// a claim about a live process, and the election re-sends anyway.
    pub fn peer_down(&mut self, peer: Sid) {
        self.others.remove(&peer);
        self.down.insert(peer);
    }

    /// Whether `peer`'s link went down and nothing was heard from it since.
    pub fn is_down(&self, peer: Sid) -> bool {
        self.down.contains(&peer)
    }

    fn agreed(&self, cfg: &ReplicaConfig) -> bool {
        let Some(v) = self.vote else { return false };
        cfg.has_quorum(|s| self.votes.get(&s).is_some_and(|x| x.key() == v.key()))
    }

    /// Handles a vote from `from`. `current` is what we report when not looking.
    /// Returns the leader to follow when this vote settles the election.
    #[allow(clippy::too_many_arguments)]
    pub fn on_vote(
        &mut self,
        cfg: &ReplicaConfig,
        from: Sid,
        v: Vote,
        me: (i64, i64),
        current: Option<Vote>,
        now: i64,
        out: &mut Vec<ReplicaOutput>,
    ) -> Option<Sid> {
        self.down.remove(&from);
        if let Some(cur) = current {
            // Not looking: tell a looking server where things stand.
            if v.state == PeerState::Looking {
                out.push(ReplicaOutput::Peer {
                    to: from,
                    msg: PeerMsg::Vote(stamped(cfg, cur)),
                });
            }
            return None;
        }
        if self.vote.is_none() {
            self.start(cfg, me, now, out);
        }
        let voter = cfg.is_voter(from);
        if v.state == PeerState::Looking {
            let mine = self.vote?;
            if !voter || v.round < self.round {
                // Tell a non-voter or a voter in an older round what we think. A
                // non-voter never answers, so two non-voters cannot echo forever.
                if cfg.is_voter(cfg.my_id) {
                    out.push(ReplicaOutput::Peer {
                        to: from,
                        msg: PeerMsg::Vote(stamped(cfg, mine)),
                    });
                }
                if !voter {
                    return None;
                }
            }
            if v.round < self.round {
                return None;
            }
            let mut changed = false;
            if v.round > self.round {
                self.round = v.round;
                self.votes.clear();
                self.answered.clear();
                let own = self.own_vote(cfg, me);
                let best = if eligible(cfg, &v) && (v.key() > own.key() || !eligible(cfg, &own)) {
                    v
                } else {
                    own
                };
                self.set_vote(cfg, best);
                changed = true;
            } else if eligible(cfg, &v) && (v.key() > mine.key() || !eligible(cfg, &mine)) {
                self.set_vote(cfg, v);
                changed = true;
            }
            self.votes.insert(from, v);
            if changed {
                self.decide_at = None;
                self.resend_ms = Self::first_resend(cfg);
                self.broadcast(cfg, now, out);
            } else if let Some(mine) = self.vote.filter(|m| m.key() != v.key()) {
                // A voter in our round backs a worse candidate: it has not heard our
                // vote (it may have been following a dead leader when we sent it).
                // Tell it now rather than at the next re-send; once per vote of its,
                // so that two servers that rank differently (their memberships
                // disagree) cannot echo each other.
                if eligible(cfg, &mine)
                    && cfg.is_voter(cfg.my_id)
                    && self.answered.get(&from) != Some(&v)
                {
                    self.answered.insert(from, v);
                    out.push(ReplicaOutput::Peer {
                        to: from,
                        msg: PeerMsg::Vote(stamped(cfg, mine)),
                    });
                }
            }
            if self.agreed(cfg) {
                if self.decide_at.is_none() {
                    self.decide_at = Some(now + Self::finalize_wait(cfg));
                }
            } else {
                self.decide_at = None;
            }
            return None;
        }
        // From a server that follows or leads: join an established leader once a
        // quorum of voters reports it and it says it leads.
        if voter {
            self.others.insert(from, v);
        }
        let l = v.leader;
        // We count ourselves among those who follow it: we are about to. (Without
        // us, a pending membership of two, us included, could never be a quorum.)
        // Reports are matched on the leader alone: each server reports its own
        // current epoch, and while a leader establishes a new one its followers still
        // report the old (or, having missed terms, an older one), so requiring equal
        // epochs could leave a server that a pending membership needs outside for good.
        // A stale report cannot mislead: the leader's own word that it leads is
        // required too, and reports from a link that went down are forgotten.
        let reported = cfg
            .has_quorum(|s| s == cfg.my_id || self.others.get(&s).is_some_and(|x| x.leader == l));
        let leads = self
            .others
            .get(&l)
            .is_some_and(|x| x.state == PeerState::Leading && x.leader == l);
        if leads && reported {
            return Some(l);
        }
        // Reports that they follow *us*, made in our own round: they decided for us
        // from votes of this election while ours to them were lost (a link down when
        // we sent them). Waiting for their looking votes would wait for ever; as in
        // ZooKeeper's election (reports of the current election epoch count towards
        // the winner), a quorum of them, with our own vote for us, decides.
        if l == cfg.my_id
            && self.vote.is_some_and(|m| m.leader == cfg.my_id)
            && cfg.has_quorum(|s| {
                s == cfg.my_id
                    || self
                        .others
                        .get(&s)
                        .is_some_and(|x| x.leader == l && x.round == self.round)
            })
        {
            return Some(l);
        }
        None
    }
}

fn stamped(cfg: &ReplicaConfig, v: Vote) -> Vote {
    Vote {
        config_version: cfg.membership_version,
        ..v
    }
}

/// Whether `v`'s candidate may lead: a voter of the membership in force, as in
/// ZooKeeper (a server only a pending reconfiguration makes a voter is not one yet,
/// and servers that disagree on that would split their votes forever). A vote for
/// someone who may not lead gives way to any vote for someone who may.
fn eligible(cfg: &ReplicaConfig, v: &Vote) -> bool {
    cfg.voters.contains(&v.leader)
}
