//! What every role of a replica works on: the engine (committed state, client
//! sessions), the in-memory log and how far it is durable, committed and applied, the
//! epochs, the membership in force and pending, and the outputs of the current input.
//! The roles' handlers (`leader.rs`, the follower's in `replica.rs`) borrow this and
//! their own state, never the whole replica; applying committed transactions and
//! switching memberships are here because every role does them.

use tracing::{info, warn};

use super::log::MemLog;
use super::*;
use crate::txn;
use crate::Engine;

pub(super) struct Core {
    pub(super) cfg: ReplicaConfig,
    pub(super) engine: Engine,
    /// The latest time an input carried; never goes back.
    pub(super) now_ms: i64,
    pub(super) epochs: Epochs,
    /// The recent log in memory (everything after its base, applied or not).
    pub(super) log: MemLog,
    /// The highest zxid of our log known durable (`ReplicaInput::Durable`); at most
    /// `log.last()`.
    pub(super) durable: i64,
    /// The highest zxid known committed; the engine applies up to it
    /// ([`Core::apply_through`]).
    pub(super) committed: i64,
    /// Outputs of the input being handled, in order; `Replica::drain` hands them out.
    pub(super) out: Vec<ReplicaOutput>,
    /// With `cfg.record_applied`: (zxid, digest) of each transaction applied.
    pub(super) applied_log: Vec<(i64, u64)>,
    /// The membership in force: the newest committed reconfiguration applied here (or
    /// the one chosen at start). `cfg.voters` and `cfg.observers` are its.
    pub(super) membership: Membership,
    /// A reconfiguration in our log not applied yet (ZooKeeper's "last seen" one):
    /// `cfg.next_voters` is its; quorums count in both memberships while it lasts.
    pub(super) pending: Option<Membership>,
    /// Applying a reconfiguration took away the leader we follow, or our own
    /// leadership: elect again once the current input is handled.
    pub(super) elect_again: bool,
    /// The epoch we last promised (raised `acceptedEpoch` to) and the leader we promised
    /// it to, since this process started.
    pub(super) promised_to: Option<(i64, Sid)>,
    /// The voters the last membership switch replaced, until the role takes them (a
    /// leader keeps counting them for what it proposed before the switch).
    pub(super) replaced: Option<Vec<Sid>>,
}

impl Core {
    pub(super) fn save_epochs(&mut self) {
        self.out.push(ReplicaOutput::SaveEpochs(self.epochs));
    }

    /// Applies every logged transaction through `zxid` not applied yet, in order.
    /// `leader`: the leader this server follows or is, for [`Core::switch_to`].
    pub(super) fn apply_through(&mut self, zxid: i64, leader: Option<Sid>) {
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
            self.activate(&data, leader);
        }
        self.trim_log();
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

    /// A reconfiguration in our log, not applied. A leader proposes one only once the
    /// previous one committed, so one logged after another means the other is
    /// committed: it is in force (for counting quorums) even though we have not
    /// applied it yet, and the new one is pending.
    pub(super) fn logged_reconfig(&mut self, m: Membership, leader: Option<Sid>) {
        if m.version <= self.membership.version {
            return;
        }
        if let Some(prev) = self.pending.take_if(|p| p.version < m.version) {
            self.switch_to(prev, false, leader);
        }
        self.set_pending(Some(m));
    }

    pub(super) fn reconfig_in(&self, fr: &LogFrame) -> Option<Membership> {
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
    pub(super) fn find_pending(&mut self, leader: Option<Sid>) {
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
            self.logged_reconfig(m, leader);
        }
    }

    pub(super) fn parse_membership(&self, data: &[u8]) -> Membership {
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

    /// A committed reconfiguration was applied: its membership is in force.
    fn activate(&mut self, data: &[u8], leader: Option<Sid>) {
        let m = self.parse_membership(data);
        self.switch_to(m, false, leader);
    }

    /// Puts `m` in force, unless it is older than what is (`or_equal`: or as old).
    /// `leader`: the leader this server follows or is; when the new membership takes
    /// its vote away, it elects again. The voters replaced are left in
    /// [`Core::replaced`] for a leader to keep counting them.
    pub(super) fn switch_to(&mut self, m: Membership, or_equal: bool, leader: Option<Sid>) {
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
        self.replaced = Some(old);
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

    /// A frame just logged: if it is a reconfiguration (always alone in its frame), it
    /// is pending from now.
    pub(super) fn note_reconfig(&mut self, fr: &LogFrame, leader: Option<Sid>) {
        if let Some(m) = self.reconfig_in(fr) {
            self.logged_reconfig(m, leader);
        }
    }

    /// After installing the leader's snapshot: its `/zookeeper/config` is the newest
    /// committed membership.
    pub(super) fn adopt_tree_membership(&mut self, leader: Option<Sid>) {
        if let Ok(m) = Membership::parse(&self.engine.tree().config_text()) {
            if !m.servers.is_empty() {
                self.switch_to(m, false, leader);
            }
        }
    }

    /// On `UpToDate`: the leader's membership, as of the commit point we just applied
    /// through, is the ensemble's. At the same version it still wins: a server started
    /// with a list of its own (one about to be added) takes the one in force.
    pub(super) fn adopt_leader_membership(&mut self, text: &str, leader: Option<Sid>) {
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
        self.switch_to(m, same_version, leader);
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
